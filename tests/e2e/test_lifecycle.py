"""Starting and stopping the service: embedded Redis, clean shutdown, no orphans, and
start-up failures that say what is wrong in one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import psutil
import pytest

from ..conftest import DATA, Service, free_port, service_env


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def wait_gone(procs: list[psutil.Process], timeout: float = 30) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return alive


def names(procs: list[psutil.Process]) -> set[str]:
    return {" ".join(p.cmdline()[:4]) for p in procs}


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Service]:
    svc = Service(service_env(tmp_path, KNOWRA_REDIS_MODE="embedded"), free_port(), tmp_path)
    try:
        svc.wait_ready()
        yield svc
    finally:
        svc.stop()  # a no-op when the test stopped it already


def test_embedded_redis_serves_and_sigterm_leaves_no_process(embedded: Service) -> None:
    reg = embedded.http.get("/worker/register").json()
    assert reg["broker"]["mode"] == "embedded"
    assert (embedded.tmp / "state" / "redis" / "appendonlydir").is_dir()
    children = descendants(embedded.proc.pid)
    assert any("valkey-server" in " ".join(p.cmdline()) for p in children)
    assert sum("celery" in " ".join(p.cmdline()) for p in children) == 3  # main + 2 pool
    assert embedded.http.get("/worker/heartbeat").json()["worker"]["ready"] is True
    r = embedded.start_task(file_path=str(DATA / "mixed.md"))
    assert embedded.wait_final(r.json()["task_id"])["state"] == "succeeded"
    assert embedded.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert not wait_gone(children), names(children)
    assert "embedded server" in embedded.log()


def test_killing_the_api_process_stops_its_worker_and_redis(embedded: Service) -> None:
    children = descendants(embedded.proc.pid)
    embedded.stop(signal.SIGKILL)
    assert not wait_gone(children), names(children)


def run_serve(env: dict[str, str], port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "knowra_worker", "serve", "--port", str(port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unreachable_configured_redis_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    dead = free_port()
    res = run_serve(
        service_env(tmp_path, KNOWRA_REDIS_URL=f"redis://127.0.0.1:{dead}/0"), free_port()
    )
    assert res.returncode != 0
    assert f"KNOWRA_REDIS_URL=redis://127.0.0.1:{dead}/0 does not answer" in res.stderr
    assert "Traceback" not in res.stderr


def test_port_in_use_is_reported(tmp_path: Path, redis_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = run_serve(service_env(tmp_path, KNOWRA_REDIS_URL=redis_url), port)
    assert res.returncode != 0
    assert f"port {port} on 0.0.0.0 is already in use" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_missing_allowed_root_is_reported(tmp_path: Path, redis_url: str) -> None:
    env = service_env(
        tmp_path, KNOWRA_REDIS_URL=redis_url, KNOWRA_ALLOWED_ROOTS=f"{DATA}:/no/such/root"
    )
    res = run_serve(env, free_port())
    assert res.returncode != 0
    assert res.stderr.strip() == (
        "knowra-worker: allowed root(s) not found: /no/such/root; create them or fix "
        "KNOWRA_ALLOWED_ROOTS (directories separated by ':')"
    )


def test_two_instances_cannot_share_one_embedded_data_dir(embedded: Service) -> None:
    env = service_env(embedded.tmp, KNOWRA_REDIS_MODE="embedded")
    res = run_serve(env, free_port())
    assert res.returncode != 0
    assert "another instance runs an embedded Redis" in res.stderr
    embedded.stop()


def test_uvicorn_entry_point_keeps_its_worker(tmp_path: Path, redis_url: str) -> None:
    """`uvicorn knowra_worker.main:app` starts the same instance, with its worker, and
    stops it all on SIGTERM."""
    env = service_env(tmp_path, KNOWRA_REDIS_URL=redis_url)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "knowra_worker.main:app", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/worker/heartbeat"
    try:
        deadline = time.monotonic() + 60
        beat: dict = {}
        while time.monotonic() < deadline and beat.get("status") != "ok":
            try:
                beat = httpx.get(url).json()
            except httpx.TransportError:
                time.sleep(0.2)
        assert beat["status"] == "ok" and beat["worker"]["ready"] is True
        children = descendants(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) in (0, -signal.SIGTERM)
    assert not wait_gone(children), names(children)


def test_api_only_instance_with_a_separate_worker(tmp_path: Path, redis_url: str) -> None:
    """`KNOWRA_EMBEDDED_WORKER=false` serves the API alone; `knowra-worker worker` (on
    another machine, say) consumes its queue."""
    prefix = f"w{os.getpid()}{free_port()}:"
    env = service_env(tmp_path, KNOWRA_REDIS_URL=redis_url, KNOWRA_KEY_PREFIX=prefix)
    api = Service({**env, "KNOWRA_EMBEDDED_WORKER": "false"}, free_port(), tmp_path)
    worker = subprocess.Popen(
        [sys.executable, "-m", "knowra_worker", "worker", "--concurrency", "1"],
        env={**env, "KNOWRA_WORKER_ID": "standalone-1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        beat = api.wait_ready()
        assert beat["worker"]["embedded"] is False and beat["worker"]["alive"] is False
        r = api.start_task(file_path=str(DATA / "mixed.md"))
        status = api.wait_final(r.json()["task_id"])
        assert status["state"] == "succeeded" and status["worker_id"] == "standalone-1"
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) in (0, -signal.SIGTERM)
        api.stop()
