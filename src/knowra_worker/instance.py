"""One running instance: its broker, store, Celery client and embedded Celery worker.

The API's lifespan starts an Instance and stops it on exit; the instance registers itself
in Redis (GET /worker/workers) and refreshes that registration while it lives.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery

from knowra_worker import __version__, broker, procs
from knowra_worker.metrics import Metrics
from knowra_worker.parsers import registry
from knowra_worker.settings import Settings
from knowra_worker.store import Keys, TaskStore
from knowra_worker.worker.celery_app import TASK_NAME, create_celery

log = logging.getLogger(__name__)
REGISTRATION_TTL_S = 30


def new_worker_id(settings: Settings) -> str:
    return f"{settings.advertise_host}-{settings.port}-{uuid.uuid4().hex[:8]}"


def check_roots(settings: Settings) -> None:
    missing = [str(r) for r in settings.allowed_roots if not r.is_dir()]
    if missing:
        raise broker.StartupError(
            f"allowed root(s) not found: {', '.join(missing)}; create them or fix "
            "KNOWRA_ALLOWED_ROOTS (directories separated by ':')"
        )


@dataclass
class Instance:
    settings: Settings
    broker: broker.Broker
    store: TaskStore
    celery: Celery
    worker_id: str
    started_at: float = field(default_factory=time.time)
    worker: subprocess.Popen[bytes] | None = None
    stopped: bool = False
    metrics: Metrics = field(default_factory=Metrics)

    @classmethod
    def start(cls, settings: Settings) -> Instance:
        check_roots(settings)
        found = broker.resolve(settings)
        try:
            store = TaskStore.from_url(
                found.url, Keys(settings.key_prefix), settings.result_ttl_seconds
            )
            inst = cls(
                settings, found, store, create_celery(settings, found.url), new_worker_id(settings)
            )
            inst.metrics.watch(store)
            if settings.embedded_worker:
                inst.worker = inst._spawn_worker()
            inst.register()
        except BaseException:
            found.stop()
            raise
        log.info(
            "instance %s up: broker %s (%s), %d worker process(es)",
            inst.worker_id,
            found.public_url,
            found.mode,
            settings.concurrency,
        )
        return inst

    def _spawn_worker(self) -> subprocess.Popen[bytes]:
        s = self.settings
        env = {
            **os.environ,
            "KNOWRA_REDIS_URL": self.broker.url,
            "KNOWRA_WORKER_ID": self.worker_id,
            "KNOWRA_INSTANCE_PID": str(os.getpid()),
            "KNOWRA_STOP_FILE": str(self.stop_file),
        }
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "knowra_worker.celery_app",
            "worker",
            "--loglevel",
            s.log_level.upper(),
            "--concurrency",
            str(s.concurrency),
            "--queues",
            ",".join(s.queues),
            "--hostname",
            f"{self.worker_id}@%h",
            "--without-gossip",
            "--without-mingle",
            "--pool",
            "prefork",
        ]
        return procs.spawn(args, env=env)

    @property
    def stop_file(self) -> Path:
        """Exists while the instance stops: its worker hands running tasks back at once."""
        return self.settings.data_dir / "run" / f"{self.worker_id}.stopping"

    def worker_alive(self) -> bool:
        return self.worker is not None and self.worker.poll() is None

    def worker_ready(self) -> bool:
        """The embedded Celery worker runs and has said it consumes."""
        return self.worker_alive() and self.store.celery_ready(self.worker_id)

    def _mark_stopping(self) -> None:
        try:
            self.stop_file.parent.mkdir(parents=True, exist_ok=True)
            self.stop_file.touch()
        except OSError as exc:
            log.warning(
                "cannot write %s (%s): running tasks finish or are taken over later",
                self.stop_file,
                exc.strerror,
            )

    def registration(self) -> dict[str, Any]:
        s = self.settings
        return {
            "worker_id": self.worker_id,
            "host": s.advertise_host,
            "port": s.port,
            "version": __version__,
            "concurrency": s.concurrency,
            "queues": list(s.queues),
            "formats": registry.supported_formats(),
            "started_at": self.started_at,
            "broker": self.broker.describe(),
            "pid": os.getpid(),
            "fqdn": socket.getfqdn(),
            "last_seen": time.time(),
            "worker_alive": self.worker_alive(),
        }

    def enqueue(self, task_id: str, priority: int = 5) -> None:
        """Send the message that makes some worker claim the task (duplicates are harmless)."""
        self.celery.send_task(
            TASK_NAME, args=[task_id], queue=self.settings.queues[0], priority=9 - priority
        )

    def recover(self) -> list[str]:
        """Re-send the message of every orphaned task: its worker died (lease lapsed) or its
        message was lost (queued too long). One instance of the cluster sweeps at a time."""
        s = self.settings
        if not self.store.try_lead_recovery(self.worker_id, s.recovery_interval_s * 0.9):
            return []
        orphans = self.store.orphans(s.requeue_queued_after_s)
        for task_id in orphans:
            log.warning(
                "task %s is orphaned (lapsed lease or lost message); re-queueing it", task_id
            )
            self.store.touch(task_id)
            self.enqueue(task_id)
            self.metrics.recovered.inc()
        return orphans

    def register(self) -> None:
        self.store.register_instance(self.worker_id, self.registration(), REGISTRATION_TTL_S)

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.worker is not None:
            # Running tasks hand themselves back at their next unit boundary (they see the
            # stop file); the warm shutdown then ends quickly, a cold one after the grace.
            self._mark_stopping()
            procs.stop(
                self.worker,
                "Celery worker",
                grace_s=self.settings.shutdown_grace_s,
                then=signal.SIGQUIT,
            )
            self.stop_file.unlink(missing_ok=True)
        try:
            self.store.unregister_instance(self.worker_id)
        except Exception:  # the broker may already be gone; the registration expires anyway
            log.debug("could not unregister %s", self.worker_id, exc_info=True)
        self.store.close()
        self.broker.stop()
        log.info("instance %s stopped", self.worker_id)
