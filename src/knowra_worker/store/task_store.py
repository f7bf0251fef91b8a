"""TaskStore: the task records, checkpoints and chunks in Redis.

Every method is one round trip or one atomic Lua script (store/scripts.py, whose replies are
decoded in store/replies.py); connection trouble surfaces as errors.StoreUnavailable
(transient), never as a raw redis exception. A script call carries an operation id and is
retried with that id on a connection error or a timeout, so a call that reached Redis before
the connection broke is not applied twice.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import redis

from knowra_worker.errors import (
    GenerationChanged,
    InvalidTransition,
    KnowraError,
    StoreUnavailable,
    TaskConflict,
    TaskNotFound,
)
from knowra_worker.lifecycle import Action, Position, State
from knowra_worker.models import ErrorInfo, Progress, StartTaskRequest, TaskStatus
from knowra_worker.store import replies, scripts
from knowra_worker.store.keys import Keys
from knowra_worker.store.replies import Claim, Outcome, Page, Part, PartClaim, Reply

P = ParamSpec("P")
R = TypeVar("R")

_STATUS_FIELDS = (
    "task_id kb_id state file_path chunk_size chunk_overlap priority metadata error attempts "
    "worker_id created_at started_at updated_at finished_at units_done units_total unit "
    "chunks mime_type units_parsed worker_pid gen pub warnings text_format length_unit tokenizer"
).split()
_SCRIPT_TRIES = 4
_SCRIPT_BACKOFF_S = 0.2
_SCAN_PAGE = 1000


def _store_errors(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"Redis is unreachable: {exc}") from exc

    return wrapper


@dataclass(frozen=True, slots=True)
class Orphan:
    """An active task that may need its message sent again."""

    task_id: str
    state: State
    priority: int
    lease_lapsed: bool  # held by a worker that died (else: queued for too long)


def fingerprint(req: StartTaskRequest) -> str:
    """The parameters that make two start_task requests 'the same' (DESIGN.md)."""
    return json.dumps(
        [req.file_path, req.kb_id, req.chunk_size, req.chunk_overlap, _unit(req), req.text_format],
        separators=(",", ":"),
    )


def _unit(req: StartTaskRequest) -> str:
    """What sizes count: "chars", or "tokens:<tokenizer>"."""
    return f"tokens:{req.tokenizer}" if req.length_unit == "tokens" else "chars"


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _f(value: str | None) -> float | None:
    return float(value) if value else None


def _pairs(fields: dict[str, Any]) -> list[str]:
    return [_s(x) for kv in fields.items() for x in kv]


def _chunk_pairs(chunks: Iterable[tuple[int, str]]) -> list[str | int]:
    return [x for seq, encoded in chunks for x in (seq, encoded)]


class TaskStore:
    def __init__(self, client: redis.Redis, keys: Keys, result_ttl_s: int) -> None:
        self.r = client
        self.keys = keys
        self.ttl = result_ttl_s
        self._scripts = {
            name: client.register_script(getattr(scripts, name))
            for name in (
                "CREATE", "CLAIM", "STAGE", "COMMIT", "RENEW", "SETTLE", "CONTROL", "READ_CHUNKS",
                "SPLIT", "PART_CLAIM", "PART_STORE", "PART_RENEW",
            )
        }  # fmt: skip

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

    # -- script calls ---------------------------------------------------------------------

    def _task_keys(self, task_id: str) -> list[str]:
        k = self.keys
        return [k.task(task_id), k.chunks_base(task_id), k.lease(task_id), k.active,
                k.stage(task_id), k.parts(task_id), k.units(task_id)]  # fmt: skip

    def _run(
        self, script: str, task_id: str, args: list[Any], extra_keys: tuple[str, ...] = ()
    ) -> Any:
        """Run a script; with an operation id first in `args`, retried on connection trouble
        (the script answers a repeated id with the reply it gave the first time)."""
        keys = [*self._task_keys(task_id), *extra_keys]
        for attempt in range(1, _SCRIPT_TRIES + 1):
            try:
                return self._call(script, keys, args)
            except (redis.ConnectionError, redis.TimeoutError):
                if attempt == _SCRIPT_TRIES:
                    raise
                time.sleep(_SCRIPT_BACKOFF_S * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        return self._scripts[script](keys=keys, args=args)

    @staticmethod
    def _op() -> str:
        return uuid.uuid4().hex

    # -- API side -------------------------------------------------------------------------

    @_store_errors
    def create_task(self, req: StartTaskRequest, unit: str = "unit") -> tuple[bool, TaskStatus]:
        """Create the task unless it exists; (created, status). Other parameters: 409."""
        now = time.time()
        fields: dict[str, Any] = {
            "task_id": req.task_id, "kb_id": req.kb_id, "state": State.QUEUED.value,
            "file_path": req.file_path, "chunk_size": req.chunk_size,
            "chunk_overlap": req.chunk_overlap, "priority": req.priority,
            "text_format": req.text_format, "length_unit": req.length_unit,
            "tokenizer": _s(req.tokenizer),
            "metadata": json.dumps(req.metadata), "callback_url": _s(req.callback_url),
            "fingerprint": fingerprint(req), "attempts": 0, "charge": "1", "epoch": 0,
            "created_at": now, "updated_at": now, "units_done": 0, "units_total": 0,
            "unit": unit, "chunks": 0, "units_parsed": 0, "checkpoint": "", "error": "",
            "gen": 0, "pub": "",
        }  # fmt: skip
        args = [self._op(), fields["fingerprint"], now, req.task_id, *_pairs(fields)]
        extra = (self.keys.tasks, self.keys.kb_tasks(req.kb_id))
        reply = replies.decode(self._run("CREATE", req.task_id, args, extra))
        if reply.outcome is Outcome.CONFLICT:
            raise TaskConflict(
                f"task {req.task_id!r} already exists with other parameters "
                "(file_path, kb_id, chunk_size, chunk_overlap, text_format or length unit differ)"
            )
        if reply.outcome is Outcome.CREATED:  # the hash holds just what was written
            written = {name: _s(fields[name]) if name in fields else None
                       for name in _STATUS_FIELDS}  # fmt: skip
            return True, _status_from_hash(written)
        status = self.get_status(req.task_id)
        if status is None:  # expired between the two calls: vanishingly rare
            raise TaskNotFound(f"task {req.task_id!r} expired while it was being created")
        return False, status

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
        """Newest first. Tasks expired since they were indexed (or re-created under another
        knowledge base) are dropped from the index."""
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
                if not raw["state"] or (kb_id and raw["kb_id"] != kb_id):
                    gone.append(str(task_id))
                elif state is None or raw["state"] == state.value:
                    out.append(_status_from_hash(raw))
            if gone:
                self.r.zrem(index, *gone)
                start -= len(gone)
        return out[:limit]

    @_store_errors
    def get_chunk_page(
        self, task_id: str, offset: int, limit: int, generation: int | None = None
    ) -> Page:
        """A page of the task's readable run, its chunks as the JSON they are stored as.
        Raises GenerationChanged when `generation` is given and is no longer the readable one."""
        wanted = "" if generation is None else str(generation)
        page = replies.decode_page(self._run("READ_CHUNKS", task_id, [offset, limit, wanted]))
        if page.total < 0:
            raise GenerationChanged(
                f"the chunks of generation {generation} of task {task_id!r} were replaced by "
                f"generation {page.generation}; read again from offset 0"
            )
        return page

    def get_chunks(
        self, task_id: str, offset: int, limit: int, generation: int | None = None
    ) -> tuple[Page, list[dict[str, Any]]]:
        """As get_chunk_page, with the chunks decoded."""
        page = self.get_chunk_page(task_id, offset, limit, generation)
        return page, [json.loads(v) for v in page.chunks]

    @_store_errors
    def control(self, task_id: str, action: Action | str) -> tuple[State, bool]:
        """A caller's pause, resume, cancel or rerun: (state now, whether it changed).
        Raises TaskNotFound, or InvalidTransition when the state does not allow it."""
        action = Action(action)
        args = [self._op(), action.value, time.time(), self.ttl, task_id]
        reply = replies.decode(self._run("CONTROL", task_id, args))
        if reply.outcome is Outcome.MISSING:
            raise TaskNotFound(f"no task {task_id!r}")
        if reply.outcome is Outcome.INVALID or reply.state is None:
            verb = "run again" if action is Action.RERUN else action.value
            raise InvalidTransition(f"cannot {verb} task {task_id!r}: it is {reply.state}")
        return reply.state, reply.changed

    def rerun(self, task_id: str) -> None:
        """Queue a finished task again from the start (its chunks replaced on success)."""
        self.control(task_id, Action.RERUN)

    # -- worker side ----------------------------------------------------------------------

    @_store_errors
    def claim(
        self,
        task_id: str,
        instance_id: str,
        lease_ms: int,
        max_attempts: int,
        gave_up: KnowraError,
    ) -> Claim:
        """Take the task if it may run now. A charged claim past max_attempts fails it with
        `gave_up` instead."""
        error = json.dumps(gave_up.to_dict())
        args = [self._op(), instance_id, time.time(), lease_ms, max_attempts, error, self.ttl,
                task_id, os.getpid()]  # fmt: skip
        return replies.decode_claim(self._run("CLAIM", task_id, args))

    @_store_errors
    def stage(
        self, task_id: str, epoch: int, base: Position, chunks: list[tuple[int, str]], ttl_ms: int
    ) -> Reply:
        """Hold a part of a large unit's chunks apart until the unit's commit."""
        args = [self._op(), epoch, base.units_done, base.chunks, base.staged, ttl_ms,
                *_chunk_pairs(chunks)]  # fmt: skip
        return replies.decode(self._run("STAGE", task_id, args))

    @_store_errors
    def commit(
        self,
        task_id: str,
        epoch: int,
        instance_id: str,
        lease_ms: int,
        base: Position,
        reached: Position,
        fields: dict[str, Any],
        chunks: list[tuple[int, str]],
        units_parsed: int = 0,
        reset: bool = False,
        finish: bool = False,
    ) -> Reply:
        """Atomically store the unit's chunks (and those staged), the progress and the
        checkpoint, moving the task from checkpoint `base` to `reached` (with `reset`, after
        dropping this run's chunks). The reply's state tells of a pause or cancel asked for.
        With `finish` this is the run's last checkpoint and the task succeeds with it (or
        ends as a pending cancel says)."""
        flags = ",".join(name for name, on in (("reset", reset), ("finish", finish)) if on)
        args = [self._op(), epoch, instance_id, lease_ms, base.units_done, base.chunks,
                base.staged, reached.units_done, reached.chunks, units_parsed, flags,
                len(fields), *_pairs(fields), *_chunk_pairs(chunks), time.time(), self.ttl,
                task_id]  # fmt: skip
        return replies.decode(self._run("COMMIT", task_id, args))

    def status_of(self, fields: dict[str, str]) -> TaskStatus:
        """A task status from the task's fields as a claim answers them."""
        return _status_from_hash({name: fields.get(name) for name in _STATUS_FIELDS})

    @_store_errors
    def renew_lease(self, task_id: str, epoch: int, instance_id: str, lease_ms: int) -> bool:
        keys = [self.keys.task(task_id), self.keys.lease(task_id)]
        return bool(self._call("RENEW", keys, [epoch, instance_id, lease_ms]))

    @_store_errors
    def settle(
        self, task_id: str, epoch: int, action: Action, fields: dict[str, Any] | None = None
    ) -> Reply:
        """Leave the task by `action` (succeed, fail, stop, yield, retry)."""
        args = [self._op(), epoch, action.value, time.time(), self.ttl, task_id,
                *_pairs(fields or {})]  # fmt: skip
        return replies.decode(self._run("SETTLE", task_id, args))

    # -- a task split into page-range parts -----------------------------------------------

    @_store_errors
    def split(
        self,
        task_id: str,
        epoch: int,
        source: str,
        next_unit: int,
        ranges: list[tuple[int, int]],
        facts: str = "",
    ) -> tuple[Reply, list[Part]]:
        """Split the task into `ranges` (once; a later call answers the parts made, unless
        the file's signature `source` changed), keeping the document's `facts` (see
        document.SharesFacts) for the parts' workers."""
        flat = [x for first, stop in ranges for x in (first, stop)]
        args = [self._op(), epoch, source, next_unit, facts, *flat]
        return replies.decode_split(self._run("SPLIT", task_id, args))

    @_store_errors
    def claim_part(
        self, task_id: str, part: int, holder: str, lease_ms: int, source: str
    ) -> PartClaim:
        args = [self._op(), part, holder, lease_ms, source]
        lease = self.keys.part_lease(task_id, part)
        return replies.decode_part_claim(self._run("PART_CLAIM", task_id, args, (lease,)))

    @_store_errors
    def store_units(
        self,
        task_id: str,
        part: int,
        epoch: int,
        holder: str,
        lease_ms: int,
        units: list[tuple[int, str]],
        finished: bool = False,
    ) -> Reply:
        """Units parsed by a part's worker, in order; `finished`: the part needs no more."""
        args = [self._op(), part, epoch, holder, lease_ms, "1" if finished else "",
                *_chunk_pairs(units)]  # fmt: skip
        lease = self.keys.part_lease(task_id, part)
        return replies.decode(self._run("PART_STORE", task_id, args, (lease,)))

    @_store_errors
    def renew_part(self, task_id: str, part: int, holder: str, lease_ms: int) -> bool:
        """Renew the part's lease while `holder` has it; lease_ms 0 gives the part up (so
        that another worker may take it at once rather than after the lease)."""
        keys = [self.keys.part_lease(task_id, part)]
        return bool(self._call("PART_RENEW", keys, [holder, lease_ms]))

    @_store_errors
    def part_facts(self, task_id: str, source: str) -> str:
        """The facts the task's worker decided for its parts' workers ('' when none were
        kept, or when the parts were made for another version of the file)."""
        source_now, facts = self.r.hmget(self.keys.parts(task_id), ["source", "facts"])
        if source_now is None or str(source_now) != source:
            return ""
        return "" if facts is None else str(facts)

    @_store_errors
    def parsed_units(self, task_id: str, first: int, count: int) -> list[str | None]:
        """The stored units first..first+count-1 (None where not parsed yet)."""
        fields = [str(u) for u in range(first, first + count)]
        return [
            None if v is None else str(v) for v in self.r.hmget(self.keys.units(task_id), fields)
        ]

    # -- recovery -------------------------------------------------------------------------

    @_store_errors
    def orphans(self, queued_after_s: float) -> list[Orphan]:
        """Active tasks that may need a new message: held (running, pausing, cancelling) with
        a lapsed lease, or queued for longer than queued_after_s."""
        ids = sorted(str(i) for i in self.r.smembers(self.keys.active))
        if not ids:
            return []
        pipe = self.r.pipeline(transaction=False)
        for task_id in ids:
            pipe.hmget(self.keys.task(task_id), ["state", "updated_at", "priority"])
            pipe.exists(self.keys.lease(task_id))
        replies_ = pipe.execute()
        now, out = time.time(), []
        for i, task_id in enumerate(ids):
            (state, updated, priority), leased = replies_[2 * i], replies_[2 * i + 1]
            if state is None:
                self.r.srem(self.keys.active, task_id)
                continue
            held = State(state).is_held and not leased
            stale = state == State.QUEUED and now - float(updated or 0) > queued_after_s
            if held or stale:
                out.append(Orphan(task_id, State(state), int(priority or 5), held))
        return out

    @_store_errors
    def waiting_task_ids(self, queues: Iterable[str], message: str) -> set[str]:
        """Ids of the tasks that have a `message` (a Celery task name) waiting in one of
        Celery's queues (messages a worker has taken but not acknowledged are not counted:
        their worker may be dead)."""
        found: set[str] = set()
        for queue in queues:
            for key in self.keys.celery_queue_lists(queue):
                for raw in self._list_items(key):
                    task_id = _message_task_id(raw, message)
                    if task_id:
                        found.add(task_id)
        return found

    def _list_items(self, key: str) -> Iterator[str]:
        start = 0
        while items := self.r.lrange(key, start, start + _SCAN_PAGE - 1):
            yield from (str(item) for item in items)
            start += _SCAN_PAGE

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
    def try_lead_recovery(self, instance_id: str, ttl_s: float) -> bool:
        """One instance sweeps at a time: the one that holds the short-lived lock."""
        return bool(self.r.set(self.keys.recovery, instance_id, nx=True, px=int(ttl_s * 1000)))

    # -- instances ------------------------------------------------------------------------

    @_store_errors
    def register_instance(self, instance_id: str, info: dict[str, Any], ttl_s: int) -> None:
        with self._pipe() as pipe:
            pipe.set(self.keys.instance(instance_id), json.dumps(info), ex=ttl_s)
            pipe.zadd(self.keys.instances, {instance_id: time.time()})

    @_store_errors
    def unregister_instance(self, instance_id: str) -> None:
        with self._pipe() as pipe:
            pipe.delete(
                self.keys.instance(instance_id),
                self.keys.celery_ready(instance_id),
                self.keys.pool_warm(instance_id),
            )
            pipe.zrem(self.keys.instances, instance_id)

    @_store_errors
    def list_instances(self) -> list[dict[str, Any]]:
        ids = [str(i) for i in self.r.zrange(self.keys.instances, 0, -1)]
        values = self.r.mget([self.keys.instance(i) for i in ids]) if ids else []
        gone = [i for i, v in zip(ids, values, strict=True) if v is None]
        if gone:
            self.r.zrem(self.keys.instances, *gone)
        return [json.loads(v) for v in values if v is not None]

    @_store_errors
    def set_celery_ready(self, instance_id: str, pid: int | None) -> None:
        """The Celery worker of an instance says it consumes (pid) or has stopped (None)."""
        if pid is None:
            self.r.delete(self.keys.celery_ready(instance_id))
        else:
            self.r.set(self.keys.celery_ready(instance_id), pid)

    @_store_errors
    def celery_ready(self, instance_id: str, pool_size: int = 0) -> bool:
        """The Celery worker consumes, and `pool_size` of its pool processes are warm."""
        pipe = self.r.pipeline(transaction=False)
        pipe.exists(self.keys.celery_ready(instance_id))
        pipe.scard(self.keys.pool_warm(instance_id))
        consuming, warm = pipe.execute()
        return bool(consuming) and int(warm) >= pool_size

    @_store_errors
    def mark_pool_warm(self, instance_id: str, pid: int | None) -> None:
        """A pool process has loaded what tasks need; None forgets every pool process."""
        key = self.keys.pool_warm(instance_id)
        if pid is None:
            self.r.delete(key)
        else:
            self.r.sadd(key, pid)

    @_store_errors
    def ping(self) -> bool:
        return bool(self.r.ping())

    @contextmanager
    def _pipe(self) -> Iterator[Any]:
        pipe = self.r.pipeline(transaction=True)
        yield pipe
        pipe.execute()


def _message_task_id(raw: str, message: str) -> str | None:
    """The task id a Celery `message` carries (its first argument), from its headers."""
    try:
        headers = json.loads(raw)["headers"]
        if headers.get("task") != message:
            return None
        args = ast.literal_eval(headers["argsrepr"])
    except (ValueError, KeyError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(args, list | tuple) and args and isinstance(args[0], str):
        return args[0]
    return None


def _status_from_hash(raw: dict[str, Any]) -> TaskStatus:
    units_total = int(raw["units_total"] or 0)
    units_done = int(raw["units_done"] or 0)
    state = State(raw["state"])
    percent = (
        100.0
        if state is State.SUCCEEDED
        else (round(100.0 * min(units_done, units_total) / units_total, 1) if units_total else 0.0)
    )
    pub = raw["pub"] or ""
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
        text_format=raw["text_format"] or "plain",  # tasks created before text_format: plain
        length_unit=raw["length_unit"] or "chars",
        tokenizer=raw["tokenizer"] or None,
        mime_type=raw["mime_type"] or None,
        priority=int(raw["priority"] or 5),
        metadata=json.loads(raw["metadata"] or "{}"),
        units_parsed=int(raw["units_parsed"] or 0),
        worker_pid=int(raw["worker_pid"]) if raw["worker_pid"] else None,
        generation=int(raw["gen"] or 0),
        result_generation=int(pub) if pub else int(raw["gen"] or 0),
        warnings=json.loads(raw["warnings"] or "[]"),
    )
