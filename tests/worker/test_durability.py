"""The central invariant, at the pipeline: a task paused and resumed, cancelled, or whose
worker died at any unit (between units or in the middle of one) ends with exactly the
chunks of an uninterrupted run. Real Redis, real parsers, real TaskRunner; interruptions
are injected at the parser boundary so that each one lands exactly where the test says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knowra_worker.models import State
from knowra_worker.pipeline import Outcome, TaskRunner

from ..harness import DATA
from .conftest import DOCS, Crash, Rig, baseline, crash_at, normalize, pause_at, status


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(sorted(DOCS)),
    data=st.data(),
    mid_unit=st.booleans(),
    kind=st.sampled_from(["pause", "crash"]),
)
def test_interrupted_runs_end_with_the_uninterrupted_chunks(
    rig: Rig, name: str, data: st.DataObject, mid_unit: bool, kind: str
) -> None:
    rig.mid_unit = False
    rig.hook = lambda index: None
    expected = baseline(rig, name)
    units = DOCS[name]
    at = data.draw(st.integers(0, units - 1))
    task_id = rig.new_task(name)
    rig.mid_unit = mid_unit
    if kind == "pause":
        pause_at(rig, task_id, at)
        outcome = rig.runner().run(task_id)
        # a pause seen after the last unit is too late: the task simply finishes
        if outcome is Outcome.PAUSED:
            assert status(rig, task_id).state is State.PAUSED
            assert rig.store.control(task_id, "resume") == ("queued", True)
            assert rig.runner("w2").run(task_id) is Outcome.SUCCEEDED
        else:
            assert outcome is Outcome.SUCCEEDED
        assert status(rig, task_id).units_parsed == units  # nothing parsed twice
    else:
        crash_at(rig, at)
        with pytest.raises(Crash):
            rig.runner().run(task_id)
        assert status(rig, task_id).state is State.RUNNING
        rig.hook = lambda index: None
        assert rig.runner("w2").run(task_id) is Outcome.SKIPPED  # the lease is still held
        rig.lapse_lease(task_id)
        assert rig.runner("w2").run(task_id) is Outcome.SUCCEEDED
        # committed units are never parsed again; only the one in flight was
        assert status(rig, task_id).units_parsed == units
    final = status(rig, task_id)
    assert final.state is State.SUCCEEDED and final.progress.units_done == units
    got = rig.chunks(task_id)
    assert final.progress.chunks == len(got)
    assert normalize(got, task_id) == expected
    assert all(c["id_is_stable"] for c in normalize(got, task_id))


@pytest.mark.parametrize("at", [0, 2, 4])
def test_cancel_stops_at_the_next_unit_and_leaves_no_chunk(rig: Rig, at: int) -> None:
    task_id = rig.new_task("multi_page.pdf")

    def hook(index: int) -> None:
        if index == at:
            assert rig.store.control(task_id, "cancel") == ("cancelling", True)

    rig.hook = hook
    assert rig.runner().run(task_id) is Outcome.CANCELLED
    final = status(rig, task_id)
    assert final.state is State.CANCELLED and final.progress.chunks == 0
    assert rig.chunks(task_id) == []
    assert rig.runner("w2").run(task_id) is Outcome.SKIPPED  # never runs again
    assert status(rig, task_id).state is State.CANCELLED


def test_a_worker_that_lost_its_task_cannot_write(rig: Rig) -> None:
    expected = baseline(rig, "multi_page.pdf")
    task_id = rig.new_task("multi_page.pdf")

    def hook(index: int) -> None:
        if index == 2:  # the first worker stalls; its lease lapses; another takes over
            rig.hook = lambda i: None
            rig.lapse_lease(task_id)
            assert rig.runner("w2").run(task_id) is Outcome.SUCCEEDED

    rig.hook = hook
    assert rig.runner("w1").run(task_id) is Outcome.LOST
    final = status(rig, task_id)
    assert final.state is State.SUCCEEDED and final.worker_id == "w2" and final.attempts == 2
    assert normalize(rig.chunks(task_id), task_id) == expected


def test_pausing_worker_that_died_leaves_the_task_paused(rig: Rig) -> None:
    task_id = rig.new_task("multi_page.pdf")

    def hook(index: int) -> None:
        if index == 2:
            rig.store.control(task_id, "pause")
            raise Crash()

    rig.hook = hook
    with pytest.raises(Crash):
        rig.runner().run(task_id)
    assert status(rig, task_id).state is State.PAUSING
    rig.lapse_lease(task_id)
    assert rig.runner("w2").run(task_id) is Outcome.SKIPPED
    assert status(rig, task_id).state is State.PAUSED
    assert status(rig, task_id).progress.units_done == 2


def test_a_task_whose_worker_dies_every_time_fails_with_worker_crashed(rig: Rig) -> None:
    task_id = rig.new_task("multi_page.pdf")
    crash_at(rig, 1)
    for attempt in range(rig.settings.max_attempts):
        with pytest.raises(Crash):
            rig.runner(f"w{attempt}").run(task_id)
        rig.lapse_lease(task_id)
    assert rig.runner("last").run(task_id) is Outcome.FAILED
    final = status(rig, task_id)
    assert final.state is State.FAILED and final.error.code == "WORKER_CRASHED"
    assert final.attempts == rig.settings.max_attempts


def test_a_runner_tells_only_the_task_it_ran_about_its_end(rig: Rig) -> None:
    """The callback a worker process sends after a run is the URL of that run's task: never
    the one of the task it ran before (a claim refused keeps none), and the task's own when
    the claim itself fails it (its worker died too often)."""

    def task_with(url: str) -> str:
        task_id = rig.new_task("multi_page.pdf")
        rig.store.r.hset(rig.store.keys.task(task_id), "callback_url", url)
        return task_id

    runner = rig.runner()
    first = task_with("https://first.example/hook")
    assert runner.run(first) is Outcome.SUCCEEDED
    assert runner.callback_url == "https://first.example/hook"
    assert runner.run(first) is Outcome.SKIPPED  # a second message for a finished task
    assert runner.callback_url is None

    other = rig.new_task("multi_page.pdf")  # no callback of its own
    exhausted = task_with("https://exhausted.example/hook")
    crash_at(rig, 1)
    for task_id in (other, exhausted):
        for attempt in range(rig.settings.max_attempts):
            with pytest.raises(Crash):
                rig.runner(f"w{attempt}").run(task_id)
            rig.lapse_lease(task_id)
    assert runner.run(other) is Outcome.FAILED  # failed by this claim
    assert runner.callback_url is None
    assert runner.run(exhausted) is Outcome.FAILED
    assert runner.callback_url == "https://exhausted.example/hook"
    assert runner.run(exhausted) is Outcome.FAILED  # failed already: told once, not again
    assert runner.callback_url is None


def test_rerun_replaces_the_chunks_only_when_it_succeeds(rig: Rig) -> None:
    task_id = rig.new_task("multi_page.pdf")
    assert rig.runner().run(task_id) is Outcome.SUCCEEDED
    first = rig.chunks(task_id)
    rig.store.rerun(task_id)
    seen_during: list[int] = []
    rig.hook = lambda index: seen_during.append(len(rig.chunks(task_id)))
    assert rig.runner().run(task_id) is Outcome.SUCCEEDED
    assert set(seen_during) == {len(first)}  # readers saw the old run, whole, throughout
    assert rig.chunks(task_id) == first
    keys = rig.store.r.keys(rig.store.keys.chunks_base(task_id) + ":*")
    assert keys == [rig.store.keys.chunks(task_id, 1)]  # the old generation is gone


def test_transient_source_errors_are_retried_then_fail_after_the_bounded_attempts(
    rig: Rig,
) -> None:
    from knowra_worker.errors import SourceIOError

    expected = baseline(rig, "multi_page.pdf")
    task_id = rig.new_task("multi_page.pdf")
    plan = [2, 3]  # the first attempt fails at unit 2, the second at unit 3

    def hook(index: int) -> None:
        if plan and plan[0] == index:
            plan.pop(0)
            raise SourceIOError(f"I/O error reading the source at unit {index}")

    rig.hook = hook
    for _ in range(2):
        assert rig.runner().run(task_id) is Outcome.RETRY
        st_ = status(rig, task_id)
        assert st_.state is State.QUEUED and st_.error.code == "SOURCE_IO_ERROR"
        assert st_.error.retryable is True
    assert rig.runner().run(task_id) is Outcome.SUCCEEDED
    final = status(rig, task_id)
    assert final.attempts == 3 and final.error is None and final.units_parsed == 5
    assert normalize(rig.chunks(task_id), task_id) == expected

    always = rig.new_task("multi_page.pdf")
    rig.hook = lambda index: (_ for _ in ()).throw(SourceIOError("disk gone"))
    outcomes = [rig.runner().run(always) for _ in range(rig.settings.max_attempts)]
    assert outcomes == [Outcome.RETRY] * (rig.settings.max_attempts - 1) + [Outcome.FAILED]
    assert status(rig, always).error.code == "SOURCE_IO_ERROR"


def test_redis_outage_mid_task_is_survived(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from knowra_worker.broker import start_embedded

    redis_dir = tmp_path / "redis"
    servers = [start_embedded(redis_dir)]
    port = int(servers[0].url.rsplit(":", 1)[1].split("/")[0])
    rig = Rig(servers[0].url)
    rig.settings = rig.settings.model_copy(update={"lease_ttl_s": 1.0})
    try:
        with rig.hooked(monkeypatch):
            expected = baseline(rig, "multi_page.pdf")
            task_id = rig.new_task("multi_page.pdf")

            def hook(index: int) -> None:
                if index == 3:
                    rig.hook = lambda i: None
                    servers[0].stop()  # AOF fsynced on shutdown

            rig.hook = hook
            # the commit after unit 3 finds no Redis for longer than the client's retries
            assert rig.runner().run(task_id) is Outcome.RETRY
            servers.append(start_embedded(redis_dir, port=port))
            time.sleep(1.2)  # the lease the first worker held lapses
            assert rig.runner("w2").run(task_id) is Outcome.SUCCEEDED
            final = status(rig, task_id)
            assert final.attempts == 2 and final.progress.units_done == 5
            assert normalize(rig.chunks(task_id), task_id) == expected
    finally:
        rig.store.close()
        for server in servers:
            server.stop()


def test_a_file_changed_between_attempts_is_parsed_again_from_the_start(
    rig: Rig, tmp_path: Path
) -> None:
    import shutil

    rig.settings = rig.settings.model_copy(update={"allowed_roots": [DATA, tmp_path]})
    doc = tmp_path / "doc.pdf"
    shutil.copy(DATA / "multi_page.pdf", doc)
    reference = rig.new_task_at(doc)
    assert rig.runner().run(reference) is Outcome.SUCCEEDED
    want = [(c["seq"], c["text"]) for c in rig.chunks(reference)]

    shutil.copy(DATA / "multi-column.pdf", doc)  # the task starts on a longer document
    task_id = rig.new_task_at(doc)
    pause_at(rig, task_id, 9)
    assert rig.runner().run(task_id) is Outcome.PAUSED
    assert len(rig.chunks(task_id)) > len(want)
    shutil.copy(DATA / "multi_page.pdf", doc)  # and is resumed on another one
    rig.hook = lambda index: None
    rig.store.control(task_id, "resume")
    assert rig.runner().run(task_id) is Outcome.SUCCEEDED
    assert [(c["seq"], c["text"]) for c in rig.chunks(task_id)] == want
    final = status(rig, task_id)
    assert final.progress.units_done == final.progress.units_total == 5
    assert final.progress.chunks == len(want)


# --- faults found in review, each reproduced ----------------------------------------------


def test_pauses_and_hand_backs_are_not_counted_as_attempts(rig: Rig) -> None:
    """Only deaths and transient errors are attempts: with two allowed, five pauses and five
    hand-backs of one healthy task leave it at its first attempt, and it succeeds."""
    rig.settings = rig.settings.model_copy(update={"max_attempts": 2})
    expected = baseline(rig, "multi-column.pdf")
    task_id = rig.new_task("multi-column.pdf")
    for at in (1, 2, 3, 4, 5):
        pause_at(rig, task_id, at)
        assert rig.runner().run(task_id) is Outcome.PAUSED
        assert rig.store.control(task_id, "resume") == ("queued", True)
    rig.hook = lambda index: None
    for _ in range(5):  # the instance is going away at every checkpoint
        leaving = TaskRunner(rig.store, rig.settings, "w1", should_yield=lambda: True)
        assert leaving.run(task_id) is Outcome.REQUEUED
        assert status(rig, task_id).state is State.QUEUED
    assert rig.runner().run(task_id) is Outcome.SUCCEEDED
    final = status(rig, task_id)
    assert final.attempts == 1 and final.units_parsed == DOCS["multi-column.pdf"]
    assert normalize(rig.chunks(task_id), task_id) == expected


def _many_chunks_text(tmp_path: Path) -> Path:
    doc = tmp_path / "dense.txt"
    words = (DATA / "norwich-city.txt").read_text(encoding="utf-8").split()
    doc.write_text(" ".join(words[:6500]), encoding="utf-8")  # ~38 KB, one paragraph
    return doc


def test_a_unit_making_thousands_of_chunks_commits_in_parts(rig: Rig, tmp_path: Path) -> None:
    """chunk_size 50 with overlap 45 on 38 KB makes over 5,000 chunks in one unit: they are
    staged in bounded parts and made visible with the checkpoint, atomically."""
    from knowra_worker.pipeline import STAGE_CHUNKS, parse_file

    rig.settings = rig.settings.model_copy(update={"allowed_roots": [DATA, tmp_path]})
    doc = _many_chunks_text(tmp_path)
    task_id = rig.new_task_at(doc, size=50, overlap=45)
    assert rig.runner().run(task_id) is Outcome.SUCCEEDED
    got = rig.chunks(task_id)
    local = [c for _, _, chunks in parse_file(doc, 50, 45, task_id, "kb") for c in chunks]
    assert len(got) > 4 * STAGE_CHUNKS and len(got) > 5000
    assert [c["text"] for c in got] == [c["text"] for c in local]
    assert status(rig, task_id).progress.chunks == len(got)
    assert not rig.store.r.exists(rig.store.keys.stage(task_id))


def test_a_worker_dying_between_parts_of_a_unit_leaves_nothing_half_done(
    rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig.settings = rig.settings.model_copy(update={"allowed_roots": [DATA, tmp_path]})
    doc = _many_chunks_text(tmp_path)
    reference = rig.new_task_at(doc, size=50, overlap=45)
    assert rig.runner().run(reference) is Outcome.SUCCEEDED
    want = [(c["seq"], c["text"]) for c in rig.chunks(reference)]
    task_id = rig.new_task_at(doc, size=50, overlap=45)
    real_stage, calls = rig.store.stage, []

    def dying_stage(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise Crash()
        return real_stage(*args, **kwargs)

    monkeypatch.setattr(rig.store, "stage", dying_stage)
    with pytest.raises(Crash):
        rig.runner().run(task_id)
    half = status(rig, task_id)
    assert half.progress.chunks == 0 and rig.chunks(task_id) == []  # staged parts unseen
    monkeypatch.setattr(rig.store, "stage", real_stage)
    rig.lapse_lease(task_id)
    assert rig.runner("w2").run(task_id) is Outcome.SUCCEEDED
    assert [(c["seq"], c["text"]) for c in rig.chunks(task_id)] == want
    assert status(rig, task_id).attempts == 2


def test_a_store_that_lost_writes_under_a_live_worker_is_caught(rig: Rig) -> None:
    """Redis rolled back to an earlier copy of the task (AOF everysec after a host crash, a
    lagging replica) while the worker runs: its next commit does not extend what the store
    holds, so it hands the task back and the run resumes from the store's checkpoint."""
    expected = baseline(rig, "multi-column.pdf")
    task_id = rig.new_task("multi-column.pdf")
    k, saved = rig.store.keys, {}

    def hook(index: int) -> None:
        keys = [k.task(task_id), k.chunks(task_id, 0)]
        if index == 3:
            saved.update({key: rig.store.r.dump(key) for key in keys})
        if index == 8:
            for key in keys:
                rig.store.r.restore(key, 0, saved[key], replace=True)

    rig.hook = hook
    assert rig.runner().run(task_id) is Outcome.REQUEUED
    rolled_back = status(rig, task_id)
    assert rolled_back.state is State.QUEUED and rolled_back.progress.units_done == 3
    rig.hook = lambda index: None
    assert rig.runner().run(task_id) is Outcome.SUCCEEDED
    final = status(rig, task_id)
    assert final.progress.chunks == len(rig.chunks(task_id))
    assert normalize(rig.chunks(task_id), task_id) == expected


def test_a_claim_finding_fewer_chunks_than_counted_starts_the_run_over(rig: Rig) -> None:
    expected = baseline(rig, "multi_page.pdf")
    task_id = rig.new_task("multi_page.pdf")
    pause_at(rig, task_id, 3)
    assert rig.runner().run(task_id) is Outcome.PAUSED
    rig.store.r.hdel(rig.store.keys.chunks(task_id, 0), "1")  # the store lost a chunk
    rig.hook = lambda index: None
    rig.store.control(task_id, "resume")
    assert rig.runner().run(task_id) is Outcome.SUCCEEDED
    assert normalize(rig.chunks(task_id), task_id) == expected


def test_a_resume_between_commit_and_stop_keeps_the_task_running(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's commit answers `pausing`; before it stops, the caller resumes: the pause
    is withdrawn, the stop is refused, and the worker goes on to the end."""
    from knowra_worker.lifecycle import Action

    expected = baseline(rig, "multi_page.pdf")
    task_id = rig.new_task("multi_page.pdf")
    pause_at(rig, task_id, 2)
    real_settle = rig.store.settle

    def settle(task: str, epoch: int, action: Action, fields: Any = None) -> Any:
        if action is Action.STOP:
            assert rig.store.control(task, "resume") == ("running", True)
        return real_settle(task, epoch, action, fields)

    monkeypatch.setattr(rig.store, "settle", settle)
    assert rig.runner().run(task_id) is Outcome.SUCCEEDED
    assert status(rig, task_id).state is State.SUCCEEDED
    assert normalize(rig.chunks(task_id), task_id) == expected


def test_a_cancelled_rerun_leaves_the_published_chunks(rig: Rig) -> None:
    task_id = rig.new_task("multi_page.pdf")
    assert rig.runner().run(task_id) is Outcome.SUCCEEDED
    first = rig.chunks(task_id)
    rig.store.rerun(task_id)

    def hook(index: int) -> None:
        if index == 2:
            rig.store.control(task_id, "cancel")

    rig.hook = hook
    assert rig.runner().run(task_id) is Outcome.CANCELLED
    final = status(rig, task_id)
    assert final.state is State.CANCELLED and final.progress.chunks == 0
    assert (final.generation, final.result_generation) == (1, 0)
    assert rig.chunks(task_id) == first  # the previous run, whole
    assert not rig.store.r.exists(rig.store.keys.chunks(task_id, 1))  # none of the cancelled
    task_ttl = rig.store.r.ttl(rig.store.keys.task(task_id))
    assert abs(rig.store.r.ttl(rig.store.keys.chunks(task_id, 0)) - task_ttl) <= 1


def test_pages_of_a_replaced_generation_are_refused(rig: Rig) -> None:
    from knowra_worker.errors import GenerationChanged

    task_id = rig.new_task("multi_page.pdf")
    assert rig.runner().run(task_id) is Outcome.SUCCEEDED
    page, _ = rig.store.get_chunks(task_id, 0, 2)
    assert page.generation == 0
    rig.store.rerun(task_id)
    assert rig.store.get_chunks(task_id, 2, 2, generation=0)[0].generation == 0  # still there
    assert rig.runner().run(task_id) is Outcome.SUCCEEDED
    with pytest.raises(GenerationChanged):
        rig.store.get_chunks(task_id, 2, 2, generation=0)
    assert rig.store.get_chunks(task_id, 0, 2)[0].generation == 1


def test_every_script_call_retried_by_the_client_changes_nothing(rig: Rig, redis_url: str) -> None:
    """A client retrying each call after a lost reply (the script ran twice) gets the same
    run: same chunks, one attempt, nothing counted twice."""
    from tests.store.conftest import RetryingStore

    expected = baseline(rig, "multi_page.pdf")
    task_id = rig.new_task("multi_page.pdf")
    twice = RetryingStore(rig.store.r, rig.store.keys, 3600)
    pause_at(rig, task_id, 2)
    assert TaskRunner(twice, rig.settings, "w1").run(task_id) is Outcome.PAUSED
    assert twice.control(task_id, "resume") == ("queued", True)
    rig.hook = lambda index: None
    assert TaskRunner(twice, rig.settings, "w1").run(task_id) is Outcome.SUCCEEDED
    final = status(rig, task_id)
    assert final.attempts == 1 and final.units_parsed == 5
    assert normalize(rig.chunks(task_id), task_id) == expected


def test_progress_of_a_resumed_flow_document_never_passes_its_total(
    rig: Rig, tmp_path: Path
) -> None:
    """A text file of many short paragraphs makes more units than its size suggests: after a
    pause the resumed run keeps what it learned instead of falling back on the estimate."""
    rig.settings = rig.settings.model_copy(update={"allowed_roots": [DATA, tmp_path]})
    doc = tmp_path / "short-paragraphs.txt"
    doc.write_text("\n\n".join(f"w{i}" for i in range(20_000)), encoding="utf-8")
    task_id = rig.new_task_at(doc)
    seen: list[tuple[int, int]] = []

    def hook(index: int) -> None:
        progress = status(rig, task_id).progress
        seen.append((progress.units_done, progress.units_total))
        if index == 6 and len(seen) == 7:
            rig.store.control(task_id, "pause")

    rig.hook = hook
    assert rig.runner().run(task_id) is Outcome.PAUSED
    assert rig.store.control(task_id, "resume") == ("queued", True)
    assert rig.runner().run(task_id) is Outcome.SUCCEEDED
    assert all(done <= total for done, total in seen), seen
    final = status(rig, task_id).progress
    assert final.units_done == final.units_total == len(seen)
    assert seen[0][1] < final.units_total  # the estimate was short: the case that matters


@pytest.mark.parametrize("kind", ["pause", "crash"])
def test_warnings_of_every_unit_reach_the_status_once(rig: Rig, kind: str) -> None:
    rig.warn_every_unit = True
    rig.mid_unit = True  # interrupted with the unit parsed but not committed
    task_id = rig.new_task("multi_page.pdf")
    if kind == "pause":
        pause_at(rig, task_id, 2)
        assert rig.runner().run(task_id) is Outcome.PAUSED
        rig.store.control(task_id, "resume")
    else:
        crash_at(rig, 2)
        with pytest.raises(Crash):
            rig.runner().run(task_id)
        rig.lapse_lease(task_id)
    done = status(rig, task_id).progress.units_done
    assert 0 < done < 5  # the warnings of the committed units, and only theirs
    assert status(rig, task_id).warnings == [
        f"unit {i}: something was skipped" for i in range(done)
    ]
    rig.hook = lambda index: None
    assert rig.runner().run(task_id) is Outcome.SUCCEEDED
    assert status(rig, task_id).warnings == [f"unit {i}: something was skipped" for i in range(5)]
