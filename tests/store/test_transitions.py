"""Every (state, action) pair of `lifecycle.TABLE`, driven through the real Lua scripts on a
real Redis: the state reached, the effects of reaching it, refusals that write nothing, a
stale worker's writes, and a call the client retried (the script ran twice)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from knowra_worker.errors import InvalidTransition, WorkerCrashed
from knowra_worker.lifecycle import CALLER_ACTIONS, TABLE, Action, Position, State, rule
from knowra_worker.models import StartTaskRequest
from knowra_worker.store import TaskStore

from .conftest import LEASE_MS, RetryingStore, chunk, make_store, new_task, put_in_state, snapshot

PAIRS = [(state, action) for state in State for action in Action]
SETTLES = (Action.SUCCEED, Action.FAIL, Action.STOP, Action.YIELD, Action.RETRY)


def act(store: TaskStore, task_id: str, state: State, action: Action, epoch: int = 1) -> str:
    """Run `action` the way its actor does; the reply's outcome (and state) as text."""
    if action in CALLER_ACTIONS:
        try:
            reached, _ = store.control(task_id, action)
        except InvalidTransition:
            return "invalid"
        return f"ok:{reached}"
    if action in (Action.CLAIM, Action.TAKE_OVER):
        if action is Action.TAKE_OVER:
            store.r.delete(store.keys.lease(task_id))  # its worker died
        claim = store.claim(task_id, "w2", LEASE_MS, 5, WorkerCrashed("gave up"))
        return f"{claim.outcome}:{claim.state}"
    if action is Action.PART:  # a part of a split task, claimed by the worker parsing it
        store.r.hset(store.keys.parts(task_id), mapping={
            "0:start": 0, "0:end": 2, "0:next": 0, "0:epoch": 0, "0:done": 0, "count": 1,
            "source": "s"})  # fmt: skip
        part = store.claim_part(task_id, 0, "p", LEASE_MS, "s")
        return f"{part.outcome}:{part.state}"
    if action is Action.COMMIT:
        n = int(store.r.hget(store.keys.task(task_id), "chunks") or 0)
        reply = store.commit(
            task_id, epoch, "w1", LEASE_MS, Position(n, n), Position(n + 1, n + 1),
            {"checkpoint": "{}"}, [chunk(n)], units_parsed=1,
        )  # fmt: skip
    else:
        reply = store.settle(task_id, epoch, action, {})
    return f"{reply.outcome}:{reply.state}"


def expected(state: State, action: Action, guard_holds: bool = True) -> str:
    r = rule(state, action)
    if action in CALLER_ACTIONS:
        return f"ok:{r.to}" if r is not None and guard_holds else "invalid"
    if action is Action.CLAIM:
        if state is State.QUEUED:
            return "ok:running"
        return f"busy:{state}" if state.is_held else f"skip:{state}"
    if action is Action.TAKE_OVER:
        if not state.is_held:
            return "ok:running" if state is State.QUEUED else f"skip:{state}"
        assert r is not None
        return "ok:running" if r.to is State.RUNNING else f"skip:{r.to}"
    if action is Action.PART:
        return f"ok:{r.to}" if r is not None else f"refused:{state}"
    if r is None:
        return f"refused:{state}" if state.is_held and action in SETTLES else f"stale:{state}"
    return f"ok:{r.to}"


@pytest.mark.parametrize(("state", "action"), PAIRS, ids=lambda v: str(v))
def test_each_pair_reaches_what_the_table_says(store: TaskStore, state: State, action: Action
                                               ) -> None:  # fmt: skip
    task_id = new_task(store)
    put_in_state(store, task_id, state)
    before = snapshot(store, task_id)
    got = act(store, task_id, state, action)
    # put_in_state fails tasks with CORRUPT_FILE: only LIMIT_EXCEEDED resumes (tested below)
    assert got == expected(
        state, action, guard_holds=(state, action) != (State.FAILED, Action.RESUME)
    )
    after = snapshot(store, task_id)
    outcome = got.split(":")[0]
    noop = action in CALLER_ACTIONS and after["state"] == state and action is not Action.RERUN
    if outcome in ("invalid", "stale", "refused", "busy") or noop:
        assert after == before, "a refused or empty action wrote something"
    else:
        check_effects(store, task_id, before, after, state, action)


def check_effects(store: TaskStore, task_id: str, before: dict[str, Any], after: dict[str, Any],
                  state: State, action: Action) -> None:  # fmt: skip
    reached = State(after["state"])
    k = store.keys
    assert after["run_chunks"] == int(after["chunks"]), "chunk hash and count disagree"
    assert after["lease"] is (reached.is_held and action is not Action.TAKE_OVER
                              or reached is State.RUNNING)  # fmt: skip
    assert after["active"] is not reached.is_final
    ttl = store.r.ttl(k.task(task_id))
    assert (ttl > 0) is reached.is_final
    if reached is State.SUCCEEDED:
        assert after["pub"] == after["gen"]
    if reached is State.CANCELLED:
        assert after["run_chunks"] == 0 and after["checkpoint"] == ""
    if action is Action.RERUN:
        assert int(after["gen"]) == int(before["gen"]) + 1
        assert after["chunks"] == "0" and after["attempts"] == "0" and after["error"] == ""
    if action is Action.COMMIT:
        assert int(after["chunks"]) == int(before["chunks"]) + 1
    starts_attempt = reached is State.RUNNING and action in (Action.CLAIM, Action.TAKE_OVER)
    if starts_attempt:
        charged = before["charge"] != "0"
        assert int(after["attempts"]) == int(before["attempts"]) + int(charged)
        assert int(after["epoch"]) == int(before["epoch"]) + 1
    else:
        assert after["attempts"] == before["attempts"] or action is Action.RERUN
    charge = TABLE[(state, action)].charge.value if (state, action) in TABLE else ""
    if charge:
        assert after["charge"] == charge


@pytest.mark.parametrize("published", [False, True])
def test_resume_after_a_failure_needs_the_time_limit_error(store: TaskStore, published: bool
                                                           ) -> None:  # fmt: skip
    stopped, broken = new_task(store), new_task(store)
    put_in_state(store, stopped, State.FAILED, error_code="LIMIT_EXCEEDED", published=published)
    put_in_state(store, broken, State.FAILED, error_code="CORRUPT_FILE", published=published)
    assert act(store, stopped, State.FAILED, Action.RESUME) == "ok:queued"
    assert act(store, broken, State.FAILED, Action.RESUME) == "invalid"
    k = store.keys
    # back to active: the task and every chunk generation it keeps lose their expiry together
    for key in (k.task(stopped), k.chunks(stopped, 1 if published else 0), k.chunks(stopped, 0)):
        assert store.r.ttl(key) == -1, key
    assert snapshot(store, stopped)["charge"] == "0"  # the time limit is no death


@pytest.mark.parametrize(("state", "action"), [
    (s, a) for s in State for a in Action
    if a.by_worker and a not in (Action.CLAIM, Action.TAKE_OVER, Action.PART)
], ids=lambda v: str(v))  # fmt: skip
def test_a_stale_worker_writes_nothing(store: TaskStore, state: State, action: Action) -> None:
    task_id = new_task(store)
    put_in_state(store, task_id, state)
    before = snapshot(store, task_id)
    assert act(store, task_id, state, action, epoch=7).startswith("stale")
    assert snapshot(store, task_id) == before


@pytest.mark.parametrize(("state", "action"), [p for p in PAIRS if p in TABLE or p[1] is
                                               Action.CLAIM], ids=lambda v: str(v))  # fmt: skip
def test_a_retried_call_takes_effect_once(redis_url: str, key_prefix: str, state: State,
                                          action: Action) -> None:  # fmt: skip
    once, twice = (
        make_store(redis_url, key_prefix),
        make_store(redis_url, key_prefix, RetryingStore),
    )
    try:
        a, b = new_task(once), new_task(once)
        put_in_state(once, a, state)
        put_in_state(once, b, state)
        assert act(twice, b, state, action) == act(once, a, state, action)
        assert snapshot(twice, b) == snapshot(once, a)
    finally:
        once.close()
        twice.close()


def test_the_table_is_what_the_scripts_use() -> None:
    """Every script carries the rendered table, and only the prelude's `enter` writes a
    state: no rule is written anywhere else."""
    from knowra_worker.store import scripts

    rendered = scripts._rules_table()
    lines = {line.strip().split("=", 1)[0]: line for line in rendered.splitlines()[1:-1]}
    for (state, action), r in TABLE.items():
        assert f"{action.value}={{to='{r.to.value}',guard='{r.guard.value}'" in lines[state]
    for name in ("CLAIM", "STAGE", "COMMIT", "SETTLE", "CONTROL", "READ_CHUNKS"):
        source = getattr(scripts, name)
        assert source.startswith(rendered)
        body = source[len(scripts._PRELUDE) :]
        assert "task, 'state'" not in body, f"{name} writes a state outside enter()"


@pytest.mark.parametrize("state", [State.RUNNING, State.PAUSING, State.CANCELLING])
def test_the_last_commit_ends_the_run_as_succeed_would(store: TaskStore, state: State) -> None:
    task_id = new_task(store)
    put_in_state(store, task_id, state)
    reply = store.commit(task_id, 1, "w1", LEASE_MS, Position(2, 2), Position(3, 3), {},
                         [chunk(2)], units_parsed=1, finish=True)  # fmt: skip
    r = rule(state, Action.SUCCEED)
    assert r is not None and (reply.outcome, reply.state) == ("ok", r.to)
    after = snapshot(store, task_id)
    assert after["state"] == r.to and not after["lease"] and not after["active"]
    if r.to is State.SUCCEEDED:
        assert after["pub"] == after["gen"] and after["run_chunks"] == 3


def test_the_last_commit_refuses_a_run_whose_chunks_went_missing(store: TaskStore) -> None:
    task_id = new_task(store)
    put_in_state(store, task_id, State.RUNNING)
    store.r.hdel(store.keys.chunks(task_id, 0), "1")  # the store lost a write
    before = snapshot(store, task_id)
    reply = store.commit(task_id, 1, "w1", LEASE_MS, Position(2, 2), Position(3, 3), {},
                         [chunk(2)], units_parsed=1, finish=True)  # fmt: skip
    assert reply.diverged and snapshot(store, task_id) == before


def test_a_part_worker_whose_part_was_taken_over_writes_nothing(store: TaskStore) -> None:
    task_id = new_task(store)
    put_in_state(store, task_id, State.RUNNING)
    reply, made = store.split(task_id, 1, "file-1", 0, [(0, 2), (2, 4)])
    assert reply.ok and [(p.start, p.end, p.next, p.done) for p in made] == [
        (0, 2, 0, False), (2, 4, 2, False)]  # fmt: skip
    first = store.claim_part(task_id, 1, "w-a", LEASE_MS, "file-1")
    assert first.ok and (first.epoch, first.next, first.end) == (1, 2, 4)
    assert store.claim_part(task_id, 1, "w-b", LEASE_MS, "file-1").outcome == "busy"
    store.r.delete(store.keys.part_lease(task_id, 1))  # w-a died
    second = store.claim_part(task_id, 1, "w-b", LEASE_MS, "file-1")
    assert second.ok and second.epoch == 2
    assert store.store_units(task_id, 1, 1, "w-a", LEASE_MS, [(2, "{}")]).outcome == "stale"
    assert store.parsed_units(task_id, 2, 2) == [None, None]
    assert store.store_units(task_id, 1, 2, "w-b", LEASE_MS, [(3, "{}")]).outcome == "invalid"
    assert store.store_units(task_id, 1, 2, "w-b", LEASE_MS, [(2, "{}"), (3, "{}")]).ok
    assert store.claim_part(task_id, 1, "w-c", LEASE_MS, "file-1").outcome == "skip"  # done
    assert store.claim_part(task_id, 0, "w-c", LEASE_MS, "file-2").outcome == "stale"
    again, _ = store.split(task_id, 1, "file-1", 0, [(0, 4)])  # the parts made stay
    assert again.ok and store.r.hget(store.keys.parts(task_id), "count") == "2"


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"metadata": {"team": "docs", "n": 3}, "priority": 9, "text_format": "plain"},
        {"length_unit": "tokens", "tokenizer": "o200k_base", "callback_url": "http://x/cb"},
    ],
)
def test_the_status_create_answers_is_the_one_the_store_then_reads(
    store: TaskStore, extra: dict[str, Any]
) -> None:
    """A new task's status is answered from what CREATE wrote, without reading it back: it
    must be the status every later read gives."""
    req = StartTaskRequest(task_id=f"t-{uuid.uuid4().hex[:8]}", file_path="/data/doc.pdf",
                           kb_id="kb", chunk_size=300, chunk_overlap=60, **extra)  # fmt: skip
    created, answered = store.create_task(req)
    assert created and answered == store.get_status(req.task_id)
    again, existing = store.create_task(req)
    assert not again and existing == answered
