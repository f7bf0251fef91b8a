"""One running instance: its broker, store, Celery client and Celery worker; and the API
processes in front of it.

Three things are called "worker" by the API (for compatibility) and are named apart here:
- the *instance*, registered in Redis (GET /worker/workers) under its `instance_id`
  (`host-port-random`; the API's `worker_id`);
- its *Celery worker*, the `celery worker` subprocess the instance starts;
- the Celery worker's *pool processes*, which run the tasks (a task's `worker_pid`).

An instance is owned by one API process. Several API processes may serve one port
(`uvicorn --workers N`, gunicorn, `knowra-worker serve` with KNOWRA_API_WORKERS): they hold
one listening socket, inherited from their supervisor. They elect the owner with a lock file
keyed by that port; the others follow it: they serve the API on the Redis the owner
publishes beside the lock, and one of them takes the instance over when its owner dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from celery import Celery

from knowra_worker import __version__, broker, procs
from knowra_worker.errors import StoreUnavailable
from knowra_worker.metrics import Metrics
from knowra_worker.parsers import registry
from knowra_worker.settings import Settings
from knowra_worker.store import Keys, TaskStore
from knowra_worker.worker.celery_app import TASK_NAME, create_celery, warm_producer

log = logging.getLogger(__name__)
REGISTRATION_TTL_S = 30
# How long a new owner waits for the embedded Redis of the owner it replaces to exit.
TAKEOVER_WAIT_S = 15.0


def new_instance_id(settings: Settings, port: int) -> str:
    return f"{settings.advertise_host}-{port}-{uuid.uuid4().hex[:8]}"


def check_roots(settings: Settings) -> None:
    missing = [str(r) for r in settings.allowed_roots if not r.is_dir()]
    if missing:
        raise broker.StartupError(
            f"allowed root(s) not found: {', '.join(missing)}; create them or fix "
            "KNOWRA_ALLOWED_ROOTS (directories separated by ':')"
        )


# --- the port this process serves ---------------------------------------------------------


def listening_port(or_about_to: bool = False) -> int | None:
    """The TCP port of a listening socket this process holds, if it holds one.

    That is the port the API really serves, however the server was started: a socket
    inherited from uvicorn's supervisor or gunicorn's arbiter, or bound by `knowra-worker
    serve`, exists before the app starts; a single uvicorn process binds its own after the
    app's startup. None also once the server has closed its socket to shut down.

    `or_about_to`: also a bound socket that does not listen yet, nor is connected. uvicorn's
    supervisor binds the socket it hands its processes, and each of them listens on it only
    after the app's startup (the first one to start sees it bound, not listening)."""
    found = [_tcp_port(fd, or_about_to) for fd in _open_fds()]
    ports = sorted(port for port in found if port is not None)
    return ports[0] if ports else None


def _open_fds() -> list[int]:
    for folder in ("/proc/self/fd", "/dev/fd"):
        with contextlib.suppress(OSError):
            return [int(name) for name in os.listdir(folder)]
    return []


def _tcp_port(fd: int, or_about_to: bool) -> int | None:
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return None
        sock = socket.socket(fileno=fd)
    except (OSError, ValueError):
        return None
    try:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return None
        if sock.type != socket.SOCK_STREAM:
            return None
        port = int(sock.getsockname()[1])
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            return port
        return port if or_about_to and port and not _connected(sock) else None
    except OSError:
        return None
    finally:
        sock.detach()  # the descriptor is not ours to close


def _connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


# --- the instance -------------------------------------------------------------------------


@dataclass(frozen=True)
class OwnerRecord:
    """What the owner of an instance publishes for the other API processes of its port."""

    instance_id: str
    port: int
    owner_pid: int
    celery_worker_pid: int | None
    broker_url: str
    broker_mode: str
    started_at: float


@dataclass
class Instance:
    """An instance as one API process sees it: owned (this process started the broker and
    the Celery worker, and registers) or followed (another API process of the port owns it)."""

    settings: Settings
    broker: broker.Broker
    store: TaskStore
    celery: Celery
    instance_id: str
    port: int
    owned: bool = True
    owner_pid: int = field(default_factory=os.getpid)
    started_at: float = field(default_factory=time.time)
    celery_worker: subprocess.Popen[bytes] | None = None
    followed_celery_pid: int | None = None  # a follower's view of the owner's Celery worker
    stopped: bool = False
    metrics: Metrics = field(default_factory=Metrics)

    @classmethod
    def start(cls, settings: Settings, port: int, embedded_wait_s: float = 0.0) -> Instance:
        """Open and launch an owned instance: the usual start."""
        inst = cls.open(settings, port, embedded_wait_s)
        inst.launch()
        return inst

    @classmethod
    def open(cls, settings: Settings, port: int, embedded_wait_s: float = 0.0) -> Instance:
        """An owned instance with its broker, store and Celery client, not yet launched."""
        check_roots(settings)
        found = broker.resolve(settings, embedded_wait_s)
        try:
            store = TaskStore.from_url(
                found.url, Keys(settings.key_prefix), settings.result_ttl_seconds
            )
            celery = create_celery(settings, found.url)
            inst = cls(settings, found, store, celery, new_instance_id(settings, port), port)
            inst.metrics.watch(store)
        except BaseException:
            found.stop()
            raise
        return inst

    @classmethod
    def follow(cls, settings: Settings, record: OwnerRecord) -> Instance:
        """The instance another API process of this port owns, on the Redis it published."""
        found = broker.Broker(record.broker_url, record.broker_mode)
        store = TaskStore.from_url(
            found.url, Keys(settings.key_prefix), settings.result_ttl_seconds
        )
        inst = cls(
            settings,
            found,
            store,
            create_celery(settings, found.url),
            record.instance_id,
            record.port,
            owned=False,
            owner_pid=record.owner_pid,
            started_at=record.started_at,
            followed_celery_pid=record.celery_worker_pid,
        )
        inst.metrics.watch(store)
        return inst

    def move_to(self, port: int) -> None:
        """Take the port the server really listens on, found only after opening (a single
        uvicorn process binds after the app's startup); before launch() only."""
        if port == self.port:
            return
        with contextlib.suppress(Exception):  # a provisional registration; it expires anyway
            self.store.unregister_instance(self.instance_id)
        self.instance_id = new_instance_id(self.settings, port)
        self.port = port

    def launch(self) -> None:
        """Start the Celery worker (unless KNOWRA_EMBEDDED_WORKER is off) and register."""
        try:
            if self.settings.embedded_worker:
                self.celery_worker = self._spawn_celery_worker()
            warm_producer(self.celery)
            self.register()
        except BaseException:
            self.stop()
            raise
        log.info(
            "instance %s up on port %d: broker %s (%s), %d pool process(es)",
            self.instance_id,
            self.port,
            self.broker.public_url,
            self.broker.mode,
            self.settings.concurrency,
        )

    def _spawn_celery_worker(self) -> subprocess.Popen[bytes]:
        s = self.settings
        env = {
            **os.environ,
            "KNOWRA_REDIS_URL": self.broker.url,
            "KNOWRA_INSTANCE_ID": self.instance_id,
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
            f"{self.instance_id}@%h",
            "--without-gossip",
            "--without-mingle",
            "--pool",
            "prefork",
        ]
        return procs.spawn(args, env=env)

    @property
    def stop_file(self) -> Path:
        """Exists while the instance stops: its Celery worker hands running tasks back."""
        return self.settings.data_dir / "run" / f"{self.instance_id}.stopping"

    @property
    def celery_worker_pid(self) -> int | None:
        return self.celery_worker.pid if self.celery_worker else self.followed_celery_pid

    def celery_worker_alive(self) -> bool:
        if self.celery_worker is not None:
            return self.celery_worker.poll() is None
        pid = self.followed_celery_pid
        return pid is not None and procs.pid_alive(pid)

    def celery_worker_ready(self) -> bool:
        """The instance's Celery worker runs, has said it consumes, and its pool processes
        have warmed up (parsers imported, Redis connected)."""
        pool = self.settings.concurrency
        return self.celery_worker_alive() and self.store.celery_ready(self.instance_id, pool)

    def record(self) -> OwnerRecord:
        return OwnerRecord(
            self.instance_id,
            self.port,
            self.owner_pid,
            self.celery_worker_pid,
            self.broker.url,
            self.broker.mode,
            self.started_at,
        )

    def registration(self) -> dict[str, Any]:
        s = self.settings
        return {
            "worker_id": self.instance_id,
            "host": s.advertise_host,
            "port": self.port,
            "version": __version__,
            "concurrency": s.concurrency,
            "queues": list(s.queues),
            "formats": registry.supported_formats(),
            "started_at": self.started_at,
            "broker": self.broker.describe(),
            "pid": self.owner_pid,
            "fqdn": socket.getfqdn(),
            "last_seen": time.time(),
            "worker_alive": self.celery_worker_alive(),
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
        if not self.owned:
            return []
        if not self.store.try_lead_recovery(self.instance_id, s.recovery_interval_s * 0.9):
            return []
        orphans = self.store.orphans(s.requeue_queued_after_s)
        if orphans:  # at most one message waits per task: none is sent while one waits
            waiting = self.store.waiting_task_ids(s.queues, TASK_NAME)
            orphans = [orphan for orphan in orphans if orphan.task_id not in waiting]
        for orphan in orphans:
            why = "its lease lapsed" if orphan.lease_lapsed else "its message may be lost"
            log.warning("task %s is orphaned (%s); re-queueing it", orphan.task_id, why)
            self.store.touch(orphan.task_id)
            self.enqueue(orphan.task_id, orphan.priority)
            self.metrics.recovered.inc()
        return [orphan.task_id for orphan in orphans]

    def register(self) -> None:
        """Refresh the registration; only the owner registers, once for the whole port."""
        if self.owned:
            self.store.register_instance(self.instance_id, self.registration(), REGISTRATION_TTL_S)

    def check_celery_worker(self) -> None:
        if self.owned and self.settings.embedded_worker and not self.celery_worker_alive():
            log.error("the Celery worker of this instance has exited")

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

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.owned:
            self._stop_owned()
        self.store.close()

    def _stop_owned(self) -> None:
        if self.celery_worker is not None:
            # Running tasks hand themselves back at their next unit boundary (they see the
            # stop file); the warm shutdown then ends quickly, a cold one after the grace.
            self._mark_stopping()
            procs.stop(
                self.celery_worker,
                "Celery worker",
                grace_s=self.settings.shutdown_grace_s,
                then=signal.SIGQUIT,
            )
            self.stop_file.unlink(missing_ok=True)
        try:
            self.store.unregister_instance(self.instance_id)
        except Exception:  # the broker may already be gone; the registration expires anyway
            log.debug("could not unregister %s", self.instance_id, exc_info=True)
        self.broker.stop()
        log.info("instance %s stopped", self.instance_id)


# --- the API processes of one port --------------------------------------------------------


class PortLock:
    """The lock that elects the owner of a port's instance, and the record the owner
    publishes beside it, both under KNOWRA_DATA_DIR/run."""

    def __init__(self, settings: Settings, port: int) -> None:
        folder = settings.data_dir / "run"
        self.port = port
        self.lock_path = folder / f"api-{port}.lock"
        self.record_path = folder / f"api-{port}.json"
        self._handle: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def try_acquire(self) -> bool:
        """Take the lock if no other process holds it. The kernel frees it when its holder
        dies, whatever the death."""
        if self._handle is not None:
            return True
        try:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            handle = self.lock_path.open("w")
        except OSError as exc:
            raise broker.StartupError(
                f"cannot write {self.lock_path} ({exc.strerror}); set KNOWRA_DATA_DIR to a "
                "writable directory"
            ) from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def publish(self, record: OwnerRecord) -> None:
        """Written whole (a rename), readable by the owner's user only: it holds the
        broker URL, password included."""
        tmp = self.record_path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(record), out)
        tmp.replace(self.record_path)

    def read(self) -> OwnerRecord | None:
        """The record of a live owner other than this process, if there is one."""
        record = self.read_last()
        if record is None or record.owner_pid == os.getpid():
            return None
        return record if procs.pid_alive(record.owner_pid) else None

    def read_last(self) -> OwnerRecord | None:
        try:
            return OwnerRecord(**json.loads(self.record_path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def withdraw(self, instance_id: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(self.record_path.read_text()).get("instance_id") == instance_id:
                self.record_path.unlink()


class Seat:
    """This API process's place in front of an instance: the instance it serves now, owned
    or followed, replaced when the owner of its port changes.

    Without a port lock (`knowra-worker serve`, a single uvicorn process) the process is
    alone on its port and owns its instance for its whole life."""

    def __init__(self, settings: Settings, lock: PortLock | None = None) -> None:
        self.settings = settings
        self.lock = lock
        self.instance: Instance | None = None

    @classmethod
    def alone(cls, settings: Settings, instance: Instance) -> Seat:
        seat = cls(settings)
        seat.instance = instance
        return seat

    def current(self) -> Instance:
        if self.instance is None:
            raise StoreUnavailable("the instance is starting; try again in a moment")
        return self.instance

    def try_join(self) -> bool:
        """Own the port's instance if no process does, else follow the one that does; False
        while the owner has not yet published its instance."""
        assert self.lock is not None
        if self.lock.try_acquire():
            self._own(embedded_wait_s=TAKEOVER_WAIT_S)
            return True
        record = self.lock.read()
        if record is not None:
            self._replace(Instance.follow(self.settings, record))
        return record is not None

    def tend(self) -> None:
        """Run every few seconds by a follower: take the instance over when its owner has
        died, follow the new owner when another process took it over."""
        if self.lock is None or self.lock.held:
            return
        if listening_port() is None:
            return  # the server closed its socket: this process shuts down too
        if self.lock.try_acquire():
            log.warning("the API process owning this instance has exited; taking it over")
            self._own(embedded_wait_s=TAKEOVER_WAIT_S)
            return
        record = self.lock.read()
        current = self.instance.instance_id if self.instance else None
        if record is not None and record.instance_id != current:
            self._replace(Instance.follow(self.settings, record))

    def _own(self, embedded_wait_s: float) -> None:
        assert self.lock is not None
        previous = self.lock.read_last()
        try:
            inst = Instance.start(self.settings, self.lock.port, embedded_wait_s)
            self.lock.publish(inst.record())
        except BaseException:
            self.lock.release()
            raise
        if previous is not None:  # a dead owner's registration would linger until its TTL
            with contextlib.suppress(Exception):
                inst.store.unregister_instance(previous.instance_id)
        self._replace(inst)

    def _replace(self, inst: Instance) -> None:
        old, self.instance = self.instance, inst
        if old is not None:
            old.stop()

    def stop(self) -> None:
        inst = self.instance
        if inst is not None:
            inst.stop()
        if self.lock is not None and self.lock.held:
            if inst is not None:
                self.lock.withdraw(inst.instance_id)
            self.lock.release()
