"""Starting and stopping the service: embedded Redis, clean shutdown, no orphans,
start-up failures that say what is wrong in one line, the port it registers however it
was started, and several API processes in front of one instance."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psutil
import pytest

from ..harness import DATA, Service, free_port, service_env, uvicorn_args


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


def cmdlines(procs: list[psutil.Process]) -> list[str]:
    lines = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            lines.append(" ".join(proc.cmdline()))
    return lines


def celery_processes(svc: Service) -> list[str]:
    """The Celery worker's main process and its pool processes, under the service."""
    return [c for c in cmdlines(svc.descendants()) if "celery" in c and "knowra_worker" in c]


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never true: {what}"
        time.sleep(0.2)


def check_one_instance(svc: Service, api_processes: int) -> dict[str, Any]:
    """However many API processes serve the port: one registration with the real port,
    one Celery worker (main + KNOWRA_CONCURRENCY pool processes), the same instance
    whichever process answers, and a task served to the end."""
    svc.wait_ready()
    reg = svc.http.get("/worker/register").json()
    assert reg["port"] == svc.port and reg["worker_id"].rsplit("-", 2)[1] == str(svc.port)
    workers = svc.http.get("/worker/workers").json()
    assert [(w["worker_id"], w["port"]) for w in workers] == [(reg["worker_id"], svc.port)]
    tree = cmdlines(svc.descendants())
    assert sum("spawn_main" in c for c in tree) == api_processes, tree
    wait_for("one Celery worker with 2 pool processes", lambda: len(celery_processes(svc)) == 3)
    for _ in range(3 * api_processes):  # a new connection each time: any process may answer
        beat = httpx.get(f"{svc.base}/worker/heartbeat", headers={"Connection": "close"}).json()
        assert beat["status"] == "ok" and beat["worker_id"] == reg["worker_id"], beat
    r = svc.start_task(file_path=str(DATA / "mixed.md"))
    status = svc.wait_final(r.json()["task_id"])
    assert status["state"] == "succeeded" and status["worker_id"] == reg["worker_id"]
    return dict(reg)


def check_stops_clean(svc: Service) -> None:
    children = svc.descendants()
    assert svc.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert not wait_gone(children), names(children)


def test_uvicorn_registers_the_port_it_listens_on(tmp_path: Path, redis_url: str) -> None:
    """`uvicorn knowra_worker.main:app --port P` binds after the app's startup: the
    instance still registers P, not KNOWRA_PORT, keeps its worker, and stops it all on
    SIGTERM."""
    port, configured = free_port(), free_port()
    env = service_env(
        tmp_path,
        KNOWRA_REDIS_URL=redis_url,
        KNOWRA_KEY_PREFIX=f"u{uuid.uuid4().hex[:8]}:",
        KNOWRA_PORT=str(configured),
    )
    with Service(env, port, tmp_path, uvicorn_args(port)) as svc:
        reg = check_one_instance(svc, api_processes=0)
        assert svc.heartbeat()["worker"]["ready"] is True
        assert str(configured) not in reg["worker_id"]
        check_stops_clean(svc)


def test_uvicorn_workers_serve_one_instance(tmp_path: Path) -> None:
    """`uvicorn --workers 3` on an embedded Redis: three API processes, one instance. When
    the process that owns it dies, the instance comes back (the dead owner's Celery worker
    and Redis exit), on the same port, and serves again."""
    port = free_port()
    env = service_env(tmp_path, KNOWRA_REDIS_MODE="embedded")
    with Service(env, port, tmp_path, uvicorn_args(port, "--workers", "3")) as svc:
        first = check_one_instance(svc, api_processes=3)
        owner = psutil.Process(first["pid"])
        owned = owner.children(recursive=True)
        assert any("valkey-server" in c for c in cmdlines(owned))
        owner.kill()
        assert not wait_gone(owned), names(owned)

        def replaced() -> bool:
            with contextlib.suppress(httpx.TransportError, ValueError, KeyError):
                beat = svc.heartbeat()
                return beat["status"] == "ok" and beat["worker_id"] != first["worker_id"]
            return False

        wait_for("a new owner", replaced, timeout=90)
        second = check_one_instance(svc, api_processes=3)
        assert second["pid"] != first["pid"]
        check_stops_clean(svc)


def test_serve_with_api_workers(tmp_path: Path, redis_url: str) -> None:
    """`knowra-worker serve` with KNOWRA_API_WORKERS=2: two API processes, one instance."""
    port = free_port()
    env = service_env(
        tmp_path,
        KNOWRA_REDIS_URL=redis_url,
        KNOWRA_KEY_PREFIX=f"a{uuid.uuid4().hex[:8]}:",
        KNOWRA_API_WORKERS="2",
    )
    with Service(env, port, tmp_path) as svc:
        check_one_instance(svc, api_processes=2)
        check_stops_clean(svc)


def test_gunicorn_with_uvicorn_workers(tmp_path: Path, redis_url: str) -> None:
    """gunicorn's arbiter binds the socket and forks two uvicorn workers: one instance.
    (gunicorn comes with the `test` extra.)"""
    port = free_port()
    env = service_env(
        tmp_path, KNOWRA_REDIS_URL=redis_url, KNOWRA_KEY_PREFIX=f"g{uuid.uuid4().hex[:8]}:"
    )
    args = [
        *(sys.executable, "-m", "gunicorn", "knowra_worker.main:create_app()"),
        *("-k", "uvicorn.workers.UvicornWorker", "-w", "2", "-b", f"127.0.0.1:{port}"),
    ]
    with Service(env, port, tmp_path, args) as svc:
        svc.wait_ready()
        tree = cmdlines(svc.descendants())
        api = [c for c in tree if "celery" not in c]
        assert len(api) == 2, tree
        check_one_instance(svc, api_processes=0)
        check_stops_clean(svc)


def test_api_only_instance_with_a_separate_worker(tmp_path: Path, redis_url: str) -> None:
    """`KNOWRA_EMBEDDED_WORKER=false` serves the API alone; `knowra-worker worker` (on
    another machine, say) consumes its queue."""
    prefix = f"w{os.getpid()}{free_port()}:"
    env = service_env(tmp_path, KNOWRA_REDIS_URL=redis_url, KNOWRA_KEY_PREFIX=prefix)
    api = Service({**env, "KNOWRA_EMBEDDED_WORKER": "false"}, free_port(), tmp_path)
    worker = subprocess.Popen(
        [sys.executable, "-m", "knowra_worker", "worker", "--concurrency", "1"],
        env={**env, "KNOWRA_INSTANCE_ID": "standalone-1"},
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
