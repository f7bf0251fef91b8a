"""The Celery task: a thin adapter from a message (a task id) to the pipeline.

Per-process resources (the Redis connection, the runner) are built in worker_process_init,
never at import, and each pool process dies with its Celery worker.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
from contextlib import closing
from functools import lru_cache

from celery import Task
from celery.signals import worker_process_init, worker_ready, worker_shutdown

from knowra_worker import callbacks
from knowra_worker.errors import KnowraError
from knowra_worker.parsers import registry
from knowra_worker.parts import PartRunner
from knowra_worker.pipeline import Outcome, TaskRunner
from knowra_worker.procs import die_with_parent, pid_alive
from knowra_worker.settings import get_settings
from knowra_worker.store import Keys, TaskStore
from knowra_worker.worker.celery_app import PART_TASK_NAME, TASK_NAME, app, warm_producer

log = logging.getLogger(__name__)


def instance_id() -> str:
    """The id of the instance this Celery worker serves (set by the instance that starts
    it, or by `knowra-worker worker`); tasks record it as their `worker_id`."""
    return os.environ.get("KNOWRA_INSTANCE_ID") or socket.gethostname()


@lru_cache(maxsize=1)
def runner() -> TaskRunner:
    return TaskRunner(
        _main_store(), get_settings(), instance_id(), should_yield=_instance_gone,
        enqueue_part=_enqueue_part,
    )  # fmt: skip


@lru_cache(maxsize=1)
def part_runner() -> PartRunner:
    return PartRunner(runner().store, get_settings(), instance_id(), should_yield=_instance_gone)


def _enqueue_part(task_id: str, part: int, source: str, priority: int) -> None:
    """The message that makes some worker, of any instance, parse one part of a split task."""
    parse_part.apply_async(
        args=[task_id, part, source], queue=get_settings().queues[0], priority=9 - priority
    )


def _instance_gone() -> bool:
    """The instance that started this worker is stopping, or its API process has died."""
    stop_file = os.environ.get("KNOWRA_STOP_FILE")
    if stop_file and os.path.exists(stop_file):
        return True
    pid = int(os.environ.get("KNOWRA_INSTANCE_PID") or 0)
    return bool(pid) and not pid_alive(pid)


@worker_process_init.connect
def _init_pool_process(**_: object) -> None:
    """Warm up before the first task: the parsing libraries imported, the Redis connection
    and the producer of part messages open; then say so (the instance reports ready once
    every pool process has)."""
    die_with_parent(signal.SIGKILL)
    runner.cache_clear()
    part_runner.cache_clear()
    run = runner()
    registry.preload()
    run.store.ping()
    warm_producer(app)
    run.store.mark_pool_warm(instance_id(), os.getpid())


@worker_ready.connect
def _ready(**_: object) -> None:
    # Only the Celery worker's main process; the heartbeat reports it ready from now on.
    with closing(_main_store()) as store:
        store.set_celery_ready(instance_id(), os.getpid())


@worker_shutdown.connect
def _shutdown(**_: object) -> None:
    try:
        with closing(_main_store()) as store:
            store.set_celery_ready(instance_id(), None)
    except KnowraError:
        log.warning("could not record this worker's shutdown")


def _main_store() -> TaskStore:
    settings = get_settings()
    return TaskStore.from_url(
        str(app.conf.broker_url), Keys(settings.key_prefix), settings.result_ttl_seconds
    )


def backoff_s(retries: int) -> float:
    """Exponential backoff, capped, with jitter over its upper half."""
    settings = get_settings()
    cap = min(settings.retry_backoff_max_s, settings.retry_backoff_s * 2**retries)
    return random.uniform(cap / 2, cap)


@app.task(bind=True, name=TASK_NAME, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def parse_document(self: Task, task_id: str) -> str:
    run = runner()
    outcome = run.run(task_id)
    if outcome is Outcome.RETRY:  # a transient error: again after a backoff
        raise self.retry(countdown=backoff_s(self.request.retries))
    if outcome is Outcome.REQUEUED:  # handed back: any worker may take it at once
        raise self.retry(countdown=0)
    if outcome in FINAL_OUTCOMES and run.callback_url:
        notify(run.store, task_id, run.callback_url)
    return outcome.value


FINAL_OUTCOMES = {Outcome.SUCCEEDED, Outcome.FAILED, Outcome.CANCELLED}


@app.task(name=PART_TASK_NAME, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def parse_part(task_id: str, part: int, source: str) -> str:
    """Parse one page range of a split task; what it does not finish, the task's own worker
    takes over, so a lost or failed part message costs time, never chunks."""
    return part_runner().run(task_id, part, source)


def notify(store: TaskStore, task_id: str, url: str) -> None:
    """POST the final status to the task's callback_url."""
    status = store.get_status(task_id)
    if status is not None and status.state.is_final:
        callbacks.send(url, status)
