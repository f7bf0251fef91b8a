"""Everything a caller, a worker, a crash, a retry and the store itself can do, interleaved at
random, with the invariants checked after every step.

Real Redis, real scripts, real TaskRunner and parsers. Hypothesis draws, at every unit a worker
reaches, whether a caller pauses, resumes or cancels, the worker dies or meets a transient
error, the instance asks for its tasks back, or Redis loses its last writes (the task and chunk
hashes restored to an earlier copy), or other workers parse some of the parts of a task split
into page ranges (one may die in its part, holding it until its lease lapses, while the joiner
parses later parts, with the same events drawn inside those); it also draws whether each
worker's store calls are retried by the client (every script run twice), and between runs what
callers and the recovery do next. Invariants, after every step:

- the run's chunk hash holds exactly `chunks` entries, with seq 0..n-1;
- a `succeeded` task's chunks equal an uninterrupted run's (text, seq, metadata, stable ids);
- `attempts` counts the first attempt plus deaths and transient errors, nothing else;
- a published result is there, and expires with its task (never before it);
- a lease exists only while a worker holds the task; final tasks leave the active set;
- progress never shows more units done than in total.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knowra_worker import parts
from knowra_worker.errors import SourceIOError
from knowra_worker.lifecycle import State
from knowra_worker.parts import PartRunner
from knowra_worker.pipeline import Outcome, TaskRunner
from knowra_worker.store import TaskStore

from ..store.conftest import RetryingStore
from .conftest import Crash, Rig, baseline, normalize, status

DOC = "multi_page.pdf"
HOOK_EVENTS = ["nothing"] * 6 + [
    "pause",
    "resume",
    "cancel",
    "crash",
    "transient",
    "leave",
    "snapshot",
    "rollback",
    "parts",  # other workers parse parts of a split task (nothing when there are none)
    "parts",
    "part dies",  # the worker of the next part waiting dies in it, holding its lease
]


@dataclass
class Model:
    """What `attempts` must be: one more at each claim that follows a death or an error."""

    attempts: int = 0
    charged: bool = True

    def claimed(self) -> None:
        if self.charged:
            self.attempts += 1
        self.charged = True

    def ended(self, outcome: Outcome | None) -> None:
        """After a run: a crash (None) or an error charges the next claim; a clean stop not."""
        if outcome in (Outcome.PAUSED, Outcome.REQUEUED):
            self.charged = False


class Worker:
    """One worker run whose unit boundaries are where Hypothesis interleaves events."""

    def __init__(self, rig: Rig, data: st.DataObject, task_id: str, store: TaskStore,
                 messages: list[tuple[str, int, str]]) -> None:  # fmt: skip
        self.rig, self.data, self.task_id, self.store = rig, data, task_id, store
        self.messages = messages  # part messages of a split task, not yet delivered
        self.leaving = False
        self.saved: dict[str, bytes | None] = {}
        rig.hook = self.hook

    def hook(self, index: int) -> None:
        check_invariants(self.rig, self.task_id)
        event = self.data.draw(st.sampled_from(HOOK_EVENTS), label=f"unit {index}")
        store, task_id = self.rig.store, self.task_id
        if not self.saved:  # the copy a rollback goes back to: this run's first boundary
            event = "snapshot" if event == "rollback" else event
            self._snapshot()
        if event in ("pause", "resume", "cancel"):
            state = status(self.rig, task_id).state
            if not (event != "cancel" and state is State.CANCELLING):
                store.control(task_id, event)
        elif event == "crash":
            raise Crash()
        elif event == "transient":
            raise SourceIOError("the disk went away for a moment")
        elif event == "leave":
            self.leaving = True
        elif event == "parts":
            self._deliver_parts()
        elif event == "part dies" and self.messages:
            self._part_dies(self.messages.pop(0))
        elif event == "snapshot":
            self._snapshot()
        elif event == "rollback":
            self._rollback()

    def _deliver_parts(self) -> None:
        """Other workers parse some of the parts whose messages were sent (the others wait
        in the queue); the first of them may die after its first unit (its lease then
        lapses)."""
        dies = self.data.draw(st.booleans(), label="a part's worker dies")
        count = self.data.draw(st.integers(0, len(self.messages)), label="messages delivered")
        sent, self.messages[:] = self.messages[:count], self.messages[count:]
        hook, self.rig.hook = self.rig.hook, lambda index: None
        try:
            for number, message in enumerate(sent):
                if number == 0 and dies:
                    self._part_dies(message)
                else:
                    PartRunner(self.store, self.rig.settings, "p", lambda: False).run(*message)
        finally:
            self.rig.hook = hook

    def _part_dies(self, message: tuple[str, int, str]) -> None:
        seen: list[int] = []

        def second_unit(index: int) -> None:
            seen.append(index)
            if len(seen) == 2:
                raise Crash()

        hook, self.rig.hook = self.rig.hook, second_unit
        try:
            PartRunner(self.store, self.rig.settings, "p", lambda: False).run(*message)
        except Crash:
            # a dead worker gives nothing up (the exception ran the runner's finally, which
            # released the part): its lease lapses at once, or a little later, and meanwhile
            # the joiner finds the part held and not stored, and parses later parts instead
            lease = self.rig.store.keys.part_lease(self.task_id, message[1])
            lapses = self.data.draw(st.sampled_from(["at once", "later", "later"]), label="lease")
            if lapses == "at once":
                self.rig.store.r.delete(lease)
            else:
                self.rig.store.r.set(lease, "p:dead", px=300)
        finally:
            self.rig.hook = hook

    def _rollback(self) -> None:
        """The store lost what came after the snapshot."""
        for key, value in self.saved.items():
            if value is None:
                self.rig.store.r.delete(key)
            else:
                self.rig.store.r.restore(key, 0, value, replace=True)

    def _snapshot(self) -> None:
        r = self.rig.store.r
        self.saved = {key: r.dump(key) for key in self._keys()}  # None: the key was absent

    def _keys(self) -> list[str]:
        k, gen = self.rig.store.keys, int(self.rig.store.r.hget(self.rig.store.keys.task(
            self.task_id), "gen") or 0)  # fmt: skip
        return [k.task(self.task_id), k.chunks(self.task_id, gen)]

    def run(self) -> Outcome | None:
        runner = TaskRunner(
            self.store, self.rig.settings, "w", should_yield=lambda: self.leaving,
            enqueue_part=lambda task_id, part, source, _: self.messages.append(
                (task_id, part, source)),
        )  # fmt: skip
        try:
            return runner.run(self.task_id)
        except Crash:
            return None


def epoch(rig: Rig, task_id: str) -> int:
    return int(rig.store.r.hget(rig.store.keys.task(task_id), "epoch") or 0)


def check_invariants(rig: Rig, task_id: str, expected: list[Any] | None = None) -> None:
    r, k = rig.store.r, rig.store.keys
    raw = r.hgetall(k.task(task_id))
    state = State(raw["state"])
    gen, pub = int(raw["gen"]), raw["pub"]
    run_chunks = r.hkeys(k.chunks(task_id, gen))
    assert sorted(map(int, run_chunks)) == list(range(int(raw["chunks"]))), raw
    if state is State.CANCELLED:
        assert int(raw["chunks"]) == 0 or pub == str(gen)
    if pub:
        assert r.exists(k.chunks(task_id, int(pub))), "the published chunks vanished"
        task_ttl, pub_ttl = r.ttl(k.task(task_id)), r.ttl(k.chunks(task_id, int(pub)))
        assert (task_ttl == pub_ttl == -1) or (task_ttl > 0 and abs(task_ttl - pub_ttl) <= 1)
    assert (r.ttl(k.task(task_id)) > 0) is state.is_final
    assert bool(r.sismember(k.active, task_id)) is not state.is_final
    if not state.is_held:
        assert not r.exists(k.lease(task_id)), f"a lease on a {state} task"
    if not state.is_final and int(raw["units_total"] or 0):
        assert int(raw["units_done"]) <= int(raw["units_total"])
    if state is State.SUCCEEDED and expected is not None:
        assert normalize(rig.chunks(task_id), task_id) == expected


def after_run(rig: Rig, data: st.DataObject, task_id: str, model: Model) -> bool:
    """What callers and the recovery do between runs; False when the test is over."""
    state = status(rig, task_id).state
    if state.is_held:  # its worker died: its leases lapse and the recovery re-sends it
        rig.lapse_lease(task_id)
        for key in rig.store.r.keys(rig.store.keys.part_lease(task_id, 0)[:-1] + "*"):
            rig.store.r.delete(key)
    elif state is State.PAUSED:
        choice = data.draw(st.sampled_from(["resume", "resume", "cancel"]), label="paused")
        rig.store.control(task_id, choice)
    elif state.is_final:
        if not data.draw(st.booleans(), label="force a re-run"):
            return False
        rig.store.rerun(task_id)
        model.attempts, model.charged = 0, True
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_interleavings_keep_every_invariant(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, data: st.DataObject
) -> None:
    # parts store each unit they parse: what happens depends on the draws only, not on time
    monkeypatch.setattr(parts, "STORE_EVERY_S", 0.0)
    rig.mid_unit = False
    rig.hook = lambda index: None
    expected = baseline(rig, DOC)
    split = data.draw(st.booleans(), label="split into parts")
    rig.settings = rig.settings.model_copy(update={"max_attempts": 50, "split_pages": 2,
                                                   "part_pages": 2} if split else
                                           {"max_attempts": 50})  # fmt: skip
    messages: list[tuple[str, int, str]] = []
    task_id, model = rig.new_task(DOC), Model()
    retrying = RetryingStore(rig.store.r, rig.store.keys, 3600)
    for _ in range(30):
        check_invariants(rig, task_id, expected)
        store = retrying if data.draw(st.booleans(), label="client retries") else rig.store
        before = epoch(rig, task_id)
        rig.mid_unit = data.draw(st.booleans(), label="events mid-unit")
        outcome = Worker(rig, data, task_id, store, messages).run()
        rig.hook = lambda index: None
        if epoch(rig, task_id) > before:
            model.claimed()
        model.ended(outcome)
        check_invariants(rig, task_id, expected)
        assert status(rig, task_id).attempts == model.attempts
        if not after_run(rig, data, task_id, model):
            break
