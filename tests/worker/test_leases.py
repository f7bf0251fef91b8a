"""Leases of running tasks, renewed by one thread per process, on the suite's real Redis: a held
lease outlives its TTL many times over, a released one lapses and is never renewed again,
and a lease whose task moved to another epoch is lost and left alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from knowra_worker import pipeline
from knowra_worker.errors import WorkerCrashed
from knowra_worker.pipeline import TaskRunner

from .conftest import Rig

TTL_S = 0.3
BEAT_S = 0.05


def _runner(rig: Rig) -> TaskRunner:
    settings = rig.settings.model_copy(
        update={"lease_ttl_s": TTL_S, "heartbeat_interval_s": BEAT_S}
    )
    return TaskRunner(rig.store, settings, "w1")


def _claimed(rig: Rig, runner: TaskRunner) -> tuple[str, int]:
    task_id = rig.new_task("multi_page.pdf")
    claim = rig.store.claim(task_id, "w1", runner.lease_ms, 3, WorkerCrashed("gave up"))
    assert claim.ok
    return task_id, claim.epoch


def _until(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.01)
    return check()


def test_a_held_lease_is_renewed_and_a_released_one_lapses(rig: Rig) -> None:
    runner = _runner(rig)
    task_id, epoch = _claimed(rig, runner)
    key = rig.store.keys.lease(task_id)
    with pipeline._Lease(runner, task_id, epoch) as lease:
        end = time.monotonic() + 4 * TTL_S
        while time.monotonic() < end:  # many TTLs: only renewals keep the key
            assert rig.store.r.exists(key)
            time.sleep(0.02)
        assert not lease.lost
    assert _until(lambda: not rig.store.r.exists(key))
    time.sleep(3 * BEAT_S)
    assert not rig.store.r.exists(key)  # no renewal after the release


def test_a_lease_of_another_epoch_is_lost_and_the_others_go_on(rig: Rig) -> None:
    runner = _runner(rig)
    first, first_epoch = _claimed(rig, runner)
    second, second_epoch = _claimed(rig, runner)
    with (
        pipeline._Lease(runner, first, first_epoch) as lost,
        pipeline._Lease(runner, second, second_epoch) as kept,
    ):
        rig.store.r.hincrby(rig.store.keys.task(first), "epoch", 1)  # another worker's now
        assert _until(lambda: lost.lost)
        end = time.monotonic() + 3 * TTL_S
        while time.monotonic() < end:
            assert rig.store.r.exists(rig.store.keys.lease(second))
            time.sleep(0.02)
        assert not kept.lost
        assert _until(lambda: not rig.store.r.exists(rig.store.keys.lease(first)))


def _renewer(runner: TaskRunner) -> threading.Thread | None:
    """The runner's renewing thread (other runners of the suite have their own)."""
    return runner.leases._thread


def test_one_thread_renews_every_lease_of_the_process(rig: Rig) -> None:
    runner = _runner(rig)
    task_id, epoch = _claimed(rig, runner)
    with pipeline._Lease(runner, task_id, epoch):
        first = _renewer(runner)
    assert first is not None
    for _ in range(30):
        with pipeline._Lease(runner, task_id, epoch):
            assert _renewer(runner) is first
    with pipeline._Lease(runner, task_id, epoch), pipeline._Lease(runner, task_id, epoch):
        assert _renewer(runner) is first and first.is_alive()


def test_the_thread_ends_when_idle_and_the_next_lease_starts_another(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline._Leases, "_IDLE_S", 0.1)
    runner = _runner(rig)
    task_id, epoch = _claimed(rig, runner)
    key = rig.store.keys.lease(task_id)
    with pipeline._Lease(runner, task_id, epoch):
        first = _renewer(runner)
    assert first is not None
    assert _until(lambda: not first.is_alive())
    with pipeline._Lease(runner, task_id, epoch):  # renewed again, by a new thread
        second = _renewer(runner)
        assert second is not None and second is not first and second.is_alive()
        end = time.monotonic() + 3 * TTL_S
        while time.monotonic() < end:
            assert rig.store.r.exists(key)
            time.sleep(0.02)
