"""Durable tasks end to end: real worker processes killed with SIGKILL, whole services
restarted, the Redis server itself restarted; every task ends with exactly the chunks of an
uninterrupted run. Pause, cancel and crash points are whatever the real timing gives; the
exact-boundary cases are covered in tests/worker/test_durability.py."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from knowra_worker.broker import Broker, start_embedded

from ..harness import DATA, Service, free_port, service_env

BIG = "DA-619p.pdf"  # 619 pages: a run takes long enough to be interrupted
BIG_PAGES = 619
FAST = {
    "KNOWRA_LEASE_TTL_S": "3",
    "KNOWRA_HEARTBEAT_INTERVAL_S": "0.5",
    "KNOWRA_RECOVERY_INTERVAL_S": "0.5",
    "KNOWRA_REQUEUE_QUEUED_AFTER_S": "5",
    "KNOWRA_MAX_FILE_SIZE_MB": "50",
}


class Cluster:
    """A dedicated Redis (AOF on, restartable on its port) and services sharing it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.redis: Broker = start_embedded(tmp / "redis", port=self.port)
        self.prefix = f"c{uuid.uuid4().hex[:6]}:"
        self.services: list[Service] = []

    def service(self, **extra: str) -> Service:
        env = service_env(
            self.tmp,
            KNOWRA_REDIS_URL=self.redis.url,
            KNOWRA_KEY_PREFIX=self.prefix,
            **{**FAST, **extra},
        )
        svc = Service(env, free_port(), self.tmp)
        self.services.append(svc)  # stopped by close(), whatever happens
        svc.wait_ready()
        return svc

    def restart_redis(self, down_s: float = 1.0) -> None:
        self.redis.stop()
        time.sleep(down_s)
        self.redis = start_embedded(self.tmp / "redis", port=self.port)

    def close(self) -> None:
        for svc in self.services:
            svc.stop()
        self.redis.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    yield c
    c.close()


def comparable(chunks: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What must not depend on interruptions (ids derive from the task id, compared apart)."""
    return [
        (
            c["seq"],
            c["text"],
            c["metadata"]["page_start"],
            c["metadata"]["page_end"],
            c["metadata"]["char_start"],
            c["metadata"]["char_end"],
            tuple(c["metadata"]["headings"]),
        )
        for c in chunks
    ]


_expected: dict[tuple[str, int], list[tuple[Any, ...]]] = {}


def expected(svc: Service, name: str, size: int) -> list[tuple[Any, ...]]:
    if (name, size) not in _expected:
        task_id = submit(svc, name, size)
        status = svc.wait_final(task_id, timeout=300)
        assert status["state"] == "succeeded", status
        _expected[(name, size)] = comparable(svc.all_chunks(task_id))
    return _expected[(name, size)]


def submit(svc: Service, name: str, size: int = 600) -> str:
    r = svc.start_task(file_path=str(DATA / name), chunk_size=size, chunk_overlap=60)
    assert r.status_code == 202, r.text
    return str(r.json()["task_id"])


def mid_run(status: dict[str, Any]) -> bool:
    return status["state"] == "running" and status["progress"]["units_done"] >= 5


def check_complete(svc: Service, task_id: str, want: list[tuple[Any, ...]]) -> dict[str, Any]:
    status = svc.wait_final(task_id, timeout=300)
    assert status["state"] == "succeeded", status
    chunks = svc.all_chunks(task_id)
    assert comparable(chunks) == want
    assert len({c["chunk_id"] for c in chunks}) == len(chunks) == status["progress"]["chunks"]
    return status


def test_sigkill_of_the_worker_process_resumes_from_the_checkpoint(cluster: Cluster) -> None:
    svc = cluster.service()
    want = expected(svc, BIG, 600)
    task_id = submit(svc, BIG)
    running = svc.wait_until(task_id, mid_run)
    killed_at = time.monotonic()
    os.kill(running["worker_pid"], signal.SIGKILL)
    status = check_complete(svc, task_id, want)
    took = time.monotonic() - killed_at
    assert status["attempts"] == 2 and status["worker_pid"] != running["worker_pid"]
    # committed pages are never parsed again; only the page in flight was
    assert status["units_parsed"] == BIG_PAGES
    print(f"recovered a SIGKILLed task in {took:.1f} s")  # noqa: T201


def test_pause_restart_every_worker_then_resume(cluster: Cluster) -> None:
    svc = cluster.service()
    want = expected(svc, BIG, 600)
    task_id = submit(svc, BIG)
    svc.wait_until(task_id, mid_run)
    asked = time.monotonic()
    r = svc.http.post("/worker/pause_task", json={"task_id": task_id})
    assert r.json()["state"] in ("pausing", "paused")
    paused = svc.wait_until(task_id, lambda s: s["state"] == "paused")
    print(f"pause took {time.monotonic() - asked:.2f} s")  # noqa: T201
    assert 0 < paused["progress"]["units_done"] < BIG_PAGES
    svc.stop()
    svc = cluster.service()
    time.sleep(2)  # several recovery sweeps: a paused task stays paused
    assert (
        svc.http.get("/worker/task_status", params={"task_id": task_id}).json()["state"] == "paused"
    )
    assert svc.http.post("/worker/resume_task", json={"task_id": task_id}).json()["state"] in (
        "queued",
        "running",
        "succeeded",
    )
    status = check_complete(svc, task_id, want)
    assert status["units_parsed"] == BIG_PAGES


def test_cancel_then_restart_never_runs_again(cluster: Cluster) -> None:
    svc = cluster.service()
    task_id = submit(svc, BIG)
    svc.wait_until(task_id, mid_run)
    assert svc.http.post("/worker/cancel_task", json={"task_id": task_id}).json()["state"] in (
        "cancelling",
        "cancelled",
    )
    status = svc.wait_final(task_id)
    assert status["state"] == "cancelled"
    svc.stop()
    cluster.restart_redis()
    svc = cluster.service()
    time.sleep(2)
    status = svc.http.get("/worker/task_status", params={"task_id": task_id}).json()
    assert status["state"] == "cancelled" and status["progress"]["chunks"] == 0
    result = svc.http.get("/worker/task_result", params={"task_id": task_id}).json()
    assert result["total"] == 0 and result["chunks"] == []


def test_redis_restart_while_tasks_queue_and_run(cluster: Cluster) -> None:
    svc = cluster.service()
    want_big = expected(svc, BIG, 600)
    want_small = expected(svc, "multi-column.pdf", 600)
    big = [submit(svc, BIG) for _ in range(2)]
    small = [submit(svc, "multi-column.pdf") for _ in range(3)]
    svc.wait_until(big[0], mid_run)
    cluster.restart_redis(down_s=2)
    for task_id in big:
        check_complete(svc, task_id, want_big)
    for task_id in small:
        check_complete(svc, task_id, want_small)


def test_sigkill_of_a_whole_instance_is_taken_over_by_another(cluster: Cluster) -> None:
    first, second = cluster.service(), cluster.service()
    want = expected(first, BIG, 600)
    task_ids = [submit(first, BIG) for _ in range(2)]
    running = first.wait_until(task_ids[0], mid_run)
    owner = next(
        s
        for s in (first, second)
        if running["worker_pid"] in [p.pid for p in psutil.Process(s.proc.pid).children(True)]
    )
    survivor = second if owner is first else first
    survivor_id = survivor.http.get("/worker/register").json()["worker_id"]
    owner.stop(signal.SIGKILL)
    statuses = [check_complete(survivor, task_id, want) for task_id in task_ids]
    # the killed API's Celery worker got the parent-death signal and handed its task back
    # at a page boundary: a hand-back, not a death, so still the first attempt
    assert statuses[0]["worker_id"] == survivor_id and statuses[0]["attempts"] == 1
    workers = survivor.http.get("/worker/workers").json()
    assert survivor_id in [w["worker_id"] for w in workers]


def test_time_limit_stops_at_a_checkpoint_and_resume_goes_on(cluster: Cluster) -> None:
    svc = cluster.service()
    want = expected(svc, BIG, 600)
    svc.stop()
    # not split: the bound below is about the one worker's checkpoints (a split task's
    # parts are covered in tests/worker/test_parts.py)
    svc = cluster.service(KNOWRA_TASK_TIME_LIMIT_S="0.5", KNOWRA_SPLIT_PAGES="0")
    task_id = submit(svc, BIG)
    stops = 0
    while (status := svc.wait_final(task_id, timeout=120))["state"] == "failed":
        assert status["error"]["code"] == "LIMIT_EXCEEDED", status
        assert status["error"]["retryable"] is False
        assert 0 < status["progress"]["units_done"] < BIG_PAGES
        stops += 1
        assert stops < 200  # each attempt commits pages: this only stops an endless loop
        r = svc.http.post("/worker/resume_task", json={"task_id": task_id})
        assert r.status_code == 200 and r.json()["state"] in ("queued", "running", "succeeded")
    assert stops >= 1
    status = check_complete(svc, task_id, want)
    assert status["units_parsed"] <= BIG_PAGES + stops  # at most the unit in flight, per stop


def test_sigterm_hands_running_tasks_to_another_instance_at_once(cluster: Cluster) -> None:
    first, second = cluster.service(), cluster.service()
    want = expected(first, BIG, 600)
    task_id = submit(first, BIG)
    running = first.wait_until(task_id, mid_run)
    owner = next(
        s
        for s in (first, second)
        if running["worker_pid"] in [p.pid for p in psutil.Process(s.proc.pid).children(True)]
    )
    survivor = second if owner is first else first
    assert owner.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    # handed back at a page boundary, not cut short by the cold shutdown after the grace
    assert f"task {task_id}: this instance is going away; handing the task back" in owner.log()
    assert "did not stop within" not in owner.log()
    status = check_complete(survivor, task_id, want)
    # a hand-back is no death: still the first attempt
    assert status["units_parsed"] == BIG_PAGES and status["attempts"] == 1


def test_a_document_that_kills_its_worker_every_time_ends_worker_crashed(
    cluster: Cluster,
) -> None:
    svc = cluster.service(KNOWRA_MAX_ATTEMPTS="3")
    task_id = submit(svc, BIG)
    killed: set[int] = set()
    deadline = time.monotonic() + 180
    while (status := svc.http.get("/worker/task_status", params={"task_id": task_id}).json())[
        "state"
    ] not in ("succeeded", "failed") and time.monotonic() < deadline:
        pid = status["worker_pid"]
        if status["state"] == "running" and pid and pid not in killed:
            os.kill(pid, signal.SIGKILL)  # as a document that crashes its parser would
            killed.add(pid)
        time.sleep(0.02)
    assert status["state"] == "failed", status
    assert status["error"]["code"] == "WORKER_CRASHED"
    assert status["attempts"] == 3 and len(killed) == 3
    assert svc.http.get("/worker/heartbeat").json()["status"] == "ok"  # the pool replaced them


def _pool_processes(svc: Service) -> list[psutil.Process]:
    """The Celery pool processes of a service (children of its Celery main process)."""
    tree = psutil.Process(svc.proc.pid).children(recursive=True)
    return [p for p in tree if "celery" in " ".join(p.cmdline())
            and "celery" in " ".join(p.parent().cmdline())]  # fmt: skip


def test_a_split_pdf_equals_an_unsplit_run_even_when_a_part_worker_dies(
    cluster: Cluster,
) -> None:
    """619 pages in parts of 50 across both pool processes; the process parsing a part (not
    the one joining) is killed: its part is taken over, and the chunks are those of a run
    that never split."""
    plain = cluster.service(KNOWRA_SPLIT_PAGES="0")
    unsplit = submit(plain, BIG)
    status = plain.wait_final(unsplit, timeout=300)
    assert status["state"] == "succeeded", status
    want = comparable(plain.all_chunks(unsplit))
    plain.stop()
    svc = cluster.service(KNOWRA_SPLIT_PAGES="100", KNOWRA_PART_PAGES="50")
    task_id = submit(svc, BIG)
    running = svc.wait_until(task_id, mid_run)
    others = [p for p in _pool_processes(svc) if p.pid != running["worker_pid"]]
    assert len(others) == 1
    time.sleep(0.3)  # it has taken a part by now
    others[0].kill()
    status = check_complete(svc, task_id, want)
    assert status["worker_pid"] == running["worker_pid"] and status["attempts"] == 1
    # pages the killed worker parsed but had not stored yet are parsed again: at most a part
    assert BIG_PAGES <= status["units_parsed"] <= BIG_PAGES + 50
