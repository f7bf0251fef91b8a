"""TaskStore: the task records, checkpoints and chunks in Redis.

Every method is one round trip or one atomic Lua script; connection trouble surfaces as
errors.StoreUnavailable (transient), never as a raw redis exception.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import redis

from knowra_worker.errors import (
    InvalidTransition,
    KnowraError,
    StoreUnavailable,
    TaskConflict,
    TaskNotFound,
)
from knowra_worker.models import (
    ErrorInfo,
    Progress,
    StartTaskRequest,
    State,
    TaskStatus,
)
from knowra_worker.store import scripts
from knowra_worker.store.keys import Keys

P = ParamSpec("P")
R = TypeVar("R")

_STATUS_FIELDS = (
    "task_id kb_id state file_path chunk_size chunk_overlap priority metadata error attempts "
    "worker_id created_at started_at updated_at finished_at units_done units_total unit "
    "chunks mime_type units_parsed worker_pid"
).split()


def _store_errors(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"Redis is unreachable: {exc}") from exc

    return wrapper


@dataclass(frozen=True, slots=True)
class Claim:
    """What CLAIM answered: `ok` (the caller now runs the task) or why not."""

    outcome: str  # ok | busy | skip | missing | exhausted
    state: str | None = None
    epoch: int = 0
    attempts: int = 0
    checkpoint: dict[str, Any] | None = None


def fingerprint(req: StartTaskRequest) -> str:
    """The parameters that make two start_task requests 'the same' (DESIGN.md)."""
    return json.dumps(
        [req.file_path, req.kb_id, req.chunk_size, req.chunk_overlap, "chars"],
        separators=(",", ":"),
    )


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _f(value: str | None) -> float | None:
    return float(value) if value else None


class TaskStore:
    def __init__(self, client: redis.Redis, keys: Keys, result_ttl_s: int) -> None:
        self.r = client
        self.keys = keys
        self.ttl = result_ttl_s
        self._scripts = {
            name: client.register_script(getattr(scripts, name))
            for name in (
                "CREATE",
                "CLAIM",
                "COMMIT",
                "RENEW",
                "SETTLE",
                "CONTROL",
                "RERUN",
                "READ_CHUNKS",
            )
        }

    @classmethod
    def from_url(cls, url: str, keys: Keys, result_ttl_s: int) -> TaskStore:
        client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=30,
            socket_connect_timeout=5,
            health_check_interval=30,
            retry_on_timeout=True,
        )
        return cls(client, keys, result_ttl_s)

    def close(self) -> None:
        self.r.close()

    def _run(
        self, script: str, task_id: str, args: list[Any], extra_keys: tuple[str, ...] = ()
    ) -> Any:
        keys = [
            self.keys.task(task_id),
            self.keys.chunks_base(task_id),
            self.keys.lease(task_id),
            self.keys.active,
            *extra_keys,
        ]
        return self._scripts[script](keys=keys, args=args)

    # -- API side -------------------------------------------------------------------------

    @_store_errors
    def create_task(self, req: StartTaskRequest, unit: str = "unit") -> tuple[bool, TaskStatus]:
        """Create the task unless it exists; (created, status). Other parameters: 409."""
        now = time.time()
        fields: dict[str, Any] = {
            "task_id": req.task_id,
            "kb_id": req.kb_id,
            "state": State.QUEUED.value,
            "file_path": req.file_path,
            "chunk_size": req.chunk_size,
            "chunk_overlap": req.chunk_overlap,
            "priority": req.priority,
            "metadata": json.dumps(req.metadata),
            "callback_url": _s(req.callback_url),
            "fingerprint": fingerprint(req),
            "attempts": 0,
            "epoch": 0,
            "created_at": now,
            "updated_at": now,
            "units_done": 0,
            "units_total": 0,
            "unit": unit,
            "chunks": 0,
            "units_parsed": 0,
            "checkpoint": "",
            "error": "",
            "gen": 0,
            "pub": "",
        }
        flat = [_s(x) for kv in fields.items() for x in kv]
        res = self._run(
            "CREATE",
            req.task_id,
            [fields["fingerprint"], now, req.task_id, *flat],
            (self.keys.tasks, self.keys.kb_tasks(req.kb_id)),
        )
        if res == -1:
            raise TaskConflict(
                f"task {req.task_id!r} already exists with other parameters "
                "(file_path, kb_id, chunk_size or chunk_overlap differ)"
            )
        status = self.get_status(req.task_id)
        assert status is not None
        return res == 1, status

    @_store_errors
    def get_status(self, task_id: str) -> TaskStatus | None:
        values = self.r.hmget(self.keys.task(task_id), _STATUS_FIELDS)
        raw = dict(zip(_STATUS_FIELDS, values, strict=True))
        if not raw["state"]:
            return None
        return _status_from_hash(raw)

    @_store_errors
    def callback_url(self, task_id: str) -> str | None:
        url = self.r.hget(self.keys.task(task_id), "callback_url")
        return str(url) if url else None

    @_store_errors
    def list_tasks(
        self, kb_id: str | None = None, state: State | None = None, limit: int = 100
    ) -> list[TaskStatus]:
        """Newest first; tasks expired since they were indexed are dropped from the index."""
        index = self.keys.kb_tasks(kb_id) if kb_id else self.keys.tasks
        out: list[TaskStatus] = []
        start, batch = 0, max(limit, 100)
        while len(out) < limit and (ids := self.r.zrevrange(index, start, start + batch - 1)):
            start += batch
            pipe = self.r.pipeline(transaction=False)
            for task_id in ids:
                pipe.hmget(self.keys.task(str(task_id)), _STATUS_FIELDS)
            gone: list[str] = []
            for task_id, values in zip(ids, pipe.execute(), strict=True):
                raw = dict(zip(_STATUS_FIELDS, values, strict=True))
                if not raw["state"]:
                    gone.append(str(task_id))
                elif state is None or raw["state"] == state.value:
                    out.append(_status_from_hash(raw))
            if gone:
                self.r.zrem(index, *gone)
                start -= len(gone)
        return out[:limit]

    @_store_errors
    def get_chunks(self, task_id: str, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """(total, chunks offset..offset+limit-1) of the task's readable run."""
        res = self._run("READ_CHUNKS", task_id, [offset, limit])
        return int(res[0]), [json.loads(v) for v in res[1:] if v is not None]

    @_store_errors
    def control(self, task_id: str, action: str) -> tuple[str, bool]:
        """A caller's pause, resume or cancel: (state now, whether it changed).
        Raises TaskNotFound, or InvalidTransition when the state does not allow it."""
        res = self._run("CONTROL", task_id, [action, time.time(), self.ttl, task_id])
        if res[0] == "missing":
            raise TaskNotFound(f"no task {task_id!r}")
        if res[0] == "invalid":
            raise InvalidTransition(f"cannot {action} task {task_id!r}: it is {res[1]}")
        return str(res[1]), bool(int(res[2]))

    @_store_errors
    def rerun(self, task_id: str) -> None:
        """Queue a finished task again from the start (its chunks replaced on success)."""
        res = self._run("RERUN", task_id, [time.time(), task_id])
        if res[0] == "missing":
            raise TaskNotFound(f"no task {task_id!r}")
        if res[0] == "invalid":
            raise InvalidTransition(
                f"task {task_id!r} is {res[1]}; only a finished task can be run again"
            )

    # -- worker side ----------------------------------------------------------------------

    @_store_errors
    def claim(
        self, task_id: str, worker_id: str, lease_ms: int, max_attempts: int, gave_up: KnowraError
    ) -> Claim:
        """Take the task if it may run now. After max_attempts it fails with `gave_up`."""
        error = json.dumps(gave_up.to_dict())
        args = [
            worker_id,
            time.time(),
            lease_ms,
            max_attempts,
            error,
            self.ttl,
            task_id,
            os.getpid(),
        ]
        res = self._run("CLAIM", task_id, args)
        outcome = str(res[0])
        if outcome != "ok":
            state = str(res[1]) if len(res) > 1 else None
            attempts = int(res[2]) if len(res) > 2 else 0
            return Claim(outcome, state=state, attempts=attempts)
        checkpoint = json.loads(res[3]) if res[3] else None
        return Claim("ok", State.RUNNING, int(res[1]), int(res[2]), checkpoint)

    @_store_errors
    def commit(
        self,
        task_id: str,
        epoch: int,
        worker_id: str,
        lease_ms: int,
        fields: dict[str, Any],
        chunks: list[dict[str, Any]],
        units_parsed: int = 0,
        restart: bool = False,
    ) -> str | None:
        """Atomically store chunks, checkpoint and progress (with `restart`, after dropping
        the chunks this run stored so far). Returns the task's state, or None when this
        worker no longer owns the task (stale epoch)."""
        flat_fields = [_s(x) for kv in fields.items() for x in kv]
        flat_chunks = [x for c in chunks for x in (str(c["seq"]), json.dumps(c))]
        args = [
            epoch,
            worker_id,
            lease_ms,
            units_parsed,
            int(restart),
            len(fields),
            *flat_fields,
            *flat_chunks,
        ]
        res = self._run("COMMIT", task_id, args)
        return str(res[1]) if res[0] == "ok" else None

    @_store_errors
    def renew_lease(self, task_id: str, epoch: int, worker_id: str, lease_ms: int) -> bool:
        keys = [self.keys.task(task_id), self.keys.lease(task_id)]
        return bool(self._scripts["RENEW"](keys=keys, args=[epoch, worker_id, lease_ms]))

    @_store_errors
    def settle(
        self, task_id: str, epoch: int, target: State, fields: dict[str, Any] | None = None
    ) -> str | None:
        """Leave the task in `target` (or what a pending pause/cancel turns it into).
        Returns the state reached, or None when the epoch is stale."""
        flat = [_s(x) for kv in (fields or {}).items() for x in kv]
        args = [epoch, target.value, time.time(), self.ttl, task_id, *flat]
        res = self._run("SETTLE", task_id, args)
        return str(res[1]) if res[0] == "ok" else None

    # -- recovery -------------------------------------------------------------------------

    @_store_errors
    def orphans(self, queued_after_s: float) -> list[str]:
        """Active tasks that need a new message: running (or pausing, cancelling) with a
        lapsed lease, or queued for longer than queued_after_s (their message may be lost)."""
        ids = sorted(str(i) for i in self.r.smembers(self.keys.active))
        if not ids:
            return []
        pipe = self.r.pipeline(transaction=False)
        for task_id in ids:
            pipe.hmget(self.keys.task(task_id), ["state", "updated_at"])
            pipe.exists(self.keys.lease(task_id))
        replies = pipe.execute()
        now, out = time.time(), []
        for i, task_id in enumerate(ids):
            (state, updated), leased = replies[2 * i], replies[2 * i + 1]
            if state is None:
                self.r.srem(self.keys.active, task_id)
            elif state in ("running", "pausing", "cancelling") and not leased:
                out.append(task_id)
            elif state == "queued" and now - float(updated or 0) > queued_after_s:
                out.append(task_id)
        return out

    @_store_errors
    def active_states(self) -> list[str]:
        """The state of every task not yet final."""
        ids = list(self.r.smembers(self.keys.active))
        pipe = self.r.pipeline(transaction=False)
        for task_id in ids:
            pipe.hget(self.keys.task(str(task_id)), "state")
        return [str(s) for s in pipe.execute() if s] if ids else []

    @_store_errors
    def touch(self, task_id: str) -> None:
        """Mark a queued task as just queued again (so it is not re-sent at once)."""
        self.r.hset(self.keys.task(task_id), "updated_at", time.time())

    @_store_errors
    def try_lead_recovery(self, worker_id: str, ttl_s: float) -> bool:
        """One instance sweeps at a time: the one that holds the short-lived lock."""
        return bool(self.r.set(self.keys.recovery, worker_id, nx=True, px=int(ttl_s * 1000)))

    # -- instances ------------------------------------------------------------------------

    @_store_errors
    def register_instance(self, worker_id: str, info: dict[str, Any], ttl_s: int) -> None:
        with self._pipe() as pipe:
            pipe.set(self.keys.instance(worker_id), json.dumps(info), ex=ttl_s)
            pipe.zadd(self.keys.instances, {worker_id: time.time()})

    @_store_errors
    def unregister_instance(self, worker_id: str) -> None:
        with self._pipe() as pipe:
            pipe.delete(self.keys.instance(worker_id), self.keys.celery_ready(worker_id))
            pipe.zrem(self.keys.instances, worker_id)

    @_store_errors
    def list_instances(self) -> list[dict[str, Any]]:
        ids = [str(i) for i in self.r.zrange(self.keys.instances, 0, -1)]
        values = self.r.mget([self.keys.instance(i) for i in ids]) if ids else []
        gone = [i for i, v in zip(ids, values, strict=True) if v is None]
        if gone:
            self.r.zrem(self.keys.instances, *gone)
        return [json.loads(v) for v in values if v is not None]

    @_store_errors
    def set_celery_ready(self, worker_id: str, pid: int | None) -> None:
        """The Celery worker of an instance says it consumes (pid) or has stopped (None)."""
        if pid is None:
            self.r.delete(self.keys.celery_ready(worker_id))
        else:
            self.r.set(self.keys.celery_ready(worker_id), pid)

    @_store_errors
    def celery_ready(self, worker_id: str) -> bool:
        return bool(self.r.exists(self.keys.celery_ready(worker_id)))

    @_store_errors
    def ping(self) -> bool:
        return bool(self.r.ping())

    @contextmanager
    def _pipe(self) -> Iterator[Any]:
        pipe = self.r.pipeline(transaction=True)
        yield pipe
        pipe.execute()


def _status_from_hash(raw: dict[str, Any]) -> TaskStatus:
    units_total = int(raw["units_total"] or 0)
    units_done = int(raw["units_done"] or 0)
    state = State(raw["state"])
    percent = (
        100.0
        if state is State.SUCCEEDED
        else (round(100.0 * min(units_done, units_total) / units_total, 1) if units_total else 0.0)
    )
    return TaskStatus(
        task_id=raw["task_id"],
        kb_id=raw["kb_id"],
        state=state,
        progress=Progress(
            percent=percent,
            units_done=units_done,
            units_total=units_total,
            unit=raw["unit"] or "unit",
            chunks=int(raw["chunks"] or 0),
        ),
        error=ErrorInfo(**json.loads(raw["error"])) if raw["error"] else None,
        attempts=int(raw["attempts"] or 0),
        worker_id=raw["worker_id"] or None,
        created_at=float(raw["created_at"]),
        started_at=_f(raw["started_at"]),
        updated_at=float(raw["updated_at"]),
        finished_at=_f(raw["finished_at"]),
        file_path=raw["file_path"],
        chunk_size=int(raw["chunk_size"]),
        chunk_overlap=int(raw["chunk_overlap"]),
        mime_type=raw["mime_type"] or None,
        priority=int(raw["priority"] or 5),
        metadata=json.loads(raw["metadata"] or "{}"),
        units_parsed=int(raw["units_parsed"] or 0),
        worker_pid=int(raw["worker_pid"]) if raw["worker_pid"] else None,
    )
