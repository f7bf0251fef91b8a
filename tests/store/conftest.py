"""A real TaskStore on the suite's Redis, one key prefix per test, and ways to put a task in any
state directly (as the scripts would have left it) so that each rule can be driven alone."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from knowra_worker.lifecycle import State
from knowra_worker.models import StartTaskRequest
from knowra_worker.store import Keys, TaskStore

LEASE_MS = 60_000


class RetryingStore(TaskStore):
    """Every script call reaches Redis twice with the same arguments, as when the client
    retries a call whose reply was lost: the caller sees the second reply."""

    def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        super()._call(script, keys, args)
        return super()._call(script, keys, args)


def make_store(redis_url: str, prefix: str, cls: type[TaskStore] = TaskStore) -> TaskStore:
    return cls.from_url(redis_url, Keys(prefix), 3600)


@pytest.fixture
def store(redis_url: str, key_prefix: str) -> Iterator[TaskStore]:
    s = make_store(redis_url, key_prefix)
    yield s
    s.close()


def new_task(store: TaskStore, file_path: str = "/data/doc.pdf") -> str:
    task_id = f"t-{uuid.uuid4().hex[:8]}"
    req = StartTaskRequest(task_id=task_id, file_path=file_path, kb_id="kb", chunk_size=300,
                           chunk_overlap=60)  # fmt: skip
    store.create_task(req)
    return task_id


def chunk(seq: int, gen: int = 0) -> tuple[int, str]:
    return seq, json.dumps({"seq": seq, "text": f"chunk {seq} of run {gen}"})


def put_in_state(store: TaskStore, task_id: str, state: State, *, chunks: int = 2,
                 error_code: str = "CORRUPT_FILE", published: bool = False) -> None:  # fmt: skip
    """Write the hash as the scripts leave a task in `state`: epoch 1, `chunks` chunks of
    the current run checkpointed, a lease while held, an error when failed; with `published`,
    a previous run (generation 0) succeeded and this is generation 1."""
    k, r = store.keys, store.r
    gen = 1 if published else 0
    fields: dict[str, Any] = {
        "state": state.value, "epoch": 1, "attempts": 1, "charge": "1", "gen": gen,
        "pub": "0" if published else "", "units_done": chunks, "chunks": chunks,
        "checkpoint": json.dumps({"next_unit": chunks}), "error": "",
    }  # fmt: skip
    if state is State.SUCCEEDED:
        fields["pub"] = str(gen)
    if state is State.FAILED:
        fields["error"] = json.dumps({"code": error_code, "message": "x", "retryable": False})
    if state is State.CANCELLED:
        fields.update(chunks=0, checkpoint="")
    r.hset(k.task(task_id), mapping=fields)
    r.delete(k.chunks(task_id, gen))
    n = 0 if state is State.CANCELLED else chunks
    for seq in range(n):
        r.hset(k.chunks(task_id, gen), str(seq), chunk(seq, gen)[1])
    if published:
        for seq in range(3):
            r.hset(k.chunks(task_id, 0), str(seq), chunk(seq, 0)[1])
    if state.is_held:
        r.set(k.lease(task_id), "someone", px=LEASE_MS)
    if state.is_final:
        r.srem(k.active, task_id)
        for key in (k.task(task_id), k.chunks(task_id, gen), k.chunks(task_id, 0)):
            r.expire(key, 3600)


def snapshot(store: TaskStore, task_id: str) -> dict[str, Any]:
    """What a rule may change, for comparing two runs of the same action."""
    k, r = store.keys, store.r
    raw = r.hgetall(k.task(task_id))
    keep = ("state", "epoch", "attempts", "charge", "gen", "pub", "units_done", "chunks",
            "checkpoint", "error", "units_parsed")  # fmt: skip
    gen = raw.get("gen", "0")
    return {
        **{name: raw.get(name) for name in keep},
        "lease": bool(r.exists(k.lease(task_id))),
        "active": bool(r.sismember(k.active, task_id)),
        "run_chunks": r.hlen(k.chunks(task_id, int(gen))),
        "stage": bool(r.exists(k.stage(task_id))),
    }
