"""TaskStore: the task records, checkpoints and chunks in Redis.

Every method is one round trip or one atomic Lua script; connection trouble surfaces as
errors.StoreUnavailable (transient), never as a raw redis exception.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import redis

from knowra_worker.errors import KnowraError, StoreUnavailable, TaskConflict
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
    "chunks mime_type units_parsed"
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
        self._create = client.register_script(scripts.CREATE)
        self._claim = client.register_script(scripts.CLAIM)
        self._commit = client.register_script(scripts.COMMIT)
        self._renew = client.register_script(scripts.RENEW)
        self._settle = client.register_script(scripts.SETTLE)

    @classmethod
    def from_url(cls, url: str, keys: Keys, result_ttl_s: int) -> TaskStore:
        client = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=30, socket_connect_timeout=5,
            health_check_interval=30, retry_on_timeout=True,
        )
        return cls(client, keys, result_ttl_s)

    def close(self) -> None:
        self.r.close()

    # -- API side -------------------------------------------------------------------------

    @_store_errors
    def create_task(self, req: StartTaskRequest, unit: str = "unit") -> tuple[bool, TaskStatus]:
        """Create the task unless it exists; (created, status). Other parameters: 409."""
        now = time.time()
        fields: dict[str, Any] = {
            "task_id": req.task_id, "kb_id": req.kb_id, "state": State.QUEUED.value,
            "file_path": req.file_path, "chunk_size": req.chunk_size,
            "chunk_overlap": req.chunk_overlap, "priority": req.priority,
            "metadata": json.dumps(req.metadata), "callback_url": _s(req.callback_url),
            "fingerprint": fingerprint(req), "attempts": 0, "epoch": 0, "created_at": now,
            "updated_at": now, "units_done": 0, "units_total": 0, "unit": unit, "chunks": 0,
            "units_parsed": 0, "checkpoint": "", "error": "",
        }
        flat = [_s(x) for kv in fields.items() for x in kv]
        keys = [self.keys.task(req.task_id), self.keys.tasks, self.keys.kb_tasks(req.kb_id)]
        res = self._create(keys=keys, args=[fields["fingerprint"], now, req.task_id, *flat])
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
    def get_field(self, task_id: str, name: str) -> str | None:
        value = self.r.hget(self.keys.task(task_id), name)
        return value if value is None else str(value)

    @_store_errors
    def list_tasks(
        self, kb_id: str | None = None, state: State | None = None, limit: int = 100
    ) -> list[TaskStatus]:
        index = self.keys.kb_tasks(kb_id) if kb_id else self.keys.tasks
        out: list[TaskStatus] = []
        for batch in self._scan_index(index):
            for task_id in batch:
                status = self.get_status(task_id)
                if status is None:
                    self.r.zrem(index, task_id)  # expired
                elif state is None or status.state == state:
                    out.append(status)
                if len(out) >= limit:
                    return out
        return out

    def _scan_index(self, index: str, batch: int = 200) -> Iterator[list[str]]:
        start = 0
        while ids := self.r.zrevrange(index, start, start + batch - 1):
            yield [str(i) for i in ids]
            start += batch

    @_store_errors
    def get_chunks(self, task_id: str, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        key = self.keys.chunks(task_id)
        total = int(self.r.hlen(key))
        seqs = list(range(offset, min(offset + limit, total)))
        if not seqs:
            return total, []
        values = self.r.hmget(key, [str(s) for s in seqs])
        return total, [json.loads(v) for v in values if v is not None]

    # -- worker side ----------------------------------------------------------------------

    @_store_errors
    def claim(
        self, task_id: str, worker_id: str, lease_ms: int, max_attempts: int, gave_up: KnowraError
    ) -> Claim:
        """Take the task if it may run now. After max_attempts it fails with `gave_up`."""
        keys = [self.keys.task(task_id), self.keys.lease(task_id), self.keys.chunks(task_id)]
        error = json.dumps(gave_up.to_dict())
        args = [worker_id, time.time(), lease_ms, max_attempts, error, self.ttl]
        res = self._claim(keys=keys, args=args)
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
    ) -> str | None:
        """Atomically store chunks, checkpoint and progress. Returns the task's state,
        or None when this worker no longer owns the task (stale epoch)."""
        flat_fields = [_s(x) for kv in fields.items() for x in kv]
        flat_chunks = [x for c in chunks for x in (str(c["seq"]), json.dumps(c))]
        keys = [self.keys.task(task_id), self.keys.chunks(task_id), self.keys.lease(task_id)]
        args = [epoch, worker_id, lease_ms, units_parsed, len(fields), *flat_fields, *flat_chunks]
        res = self._commit(keys=keys, args=args)
        return str(res[1]) if res[0] == "ok" else None

    @_store_errors
    def renew_lease(self, task_id: str, epoch: int, worker_id: str, lease_ms: int) -> bool:
        keys = [self.keys.task(task_id), self.keys.lease(task_id)]
        return bool(self._renew(keys=keys, args=[epoch, worker_id, lease_ms]))

    @_store_errors
    def settle(
        self, task_id: str, epoch: int, target: State, fields: dict[str, Any] | None = None
    ) -> str | None:
        """Leave the task in `target` (or what a pending pause/cancel turns it into).
        Returns the state reached, or None when the epoch is stale."""
        flat = [_s(x) for kv in (fields or {}).items() for x in kv]
        keys = [self.keys.task(task_id), self.keys.chunks(task_id), self.keys.lease(task_id)]
        res = self._settle(keys=keys, args=[epoch, target.value, time.time(), self.ttl, *flat])
        return str(res[1]) if res[0] == "ok" else None

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
    percent = 100.0 if state is State.SUCCEEDED else (
        round(100.0 * min(units_done, units_total) / units_total, 1) if units_total else 0.0
    )
    return TaskStatus(
        task_id=raw["task_id"], kb_id=raw["kb_id"], state=state,
        progress=Progress(
            percent=percent, units_done=units_done, units_total=units_total,
            unit=raw["unit"] or "unit", chunks=int(raw["chunks"] or 0),
        ),
        error=ErrorInfo(**json.loads(raw["error"])) if raw["error"] else None,
        attempts=int(raw["attempts"] or 0), worker_id=raw["worker_id"] or None,
        created_at=float(raw["created_at"]), started_at=_f(raw["started_at"]),
        updated_at=float(raw["updated_at"]), finished_at=_f(raw["finished_at"]),
        file_path=raw["file_path"], chunk_size=int(raw["chunk_size"]),
        chunk_overlap=int(raw["chunk_overlap"]), mime_type=raw["mime_type"] or None,
        priority=int(raw["priority"] or 5), metadata=json.loads(raw["metadata"] or "{}"),
        units_parsed=int(raw["units_parsed"] or 0),
    )
