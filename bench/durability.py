"""Pause latency, crash recovery time and units re-parsed, on a large PDF, through a real
service (embedded Redis, real Celery worker processes).

    .venv/bin/python bench/durability.py [--pdf PATH] [--rounds 3] [--lease 30]

For each round: submit, wait until some pages are done, then
- pause: time from the pause request to `paused`, pages re-parsed after resume;
- crash: SIGKILL the worker process running the task, time until another process has
  claimed it again and until it succeeded, pages re-parsed.
The lease (KNOWRA_LEASE_TTL_S) bounds the recovery time; the default is the service's.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2 as httpx

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PDF = ROOT / "tests" / "data" / "DA-619p.pdf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    def __init__(self, pdf_dir: Path, tmp: Path, lease: float) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KNOWRA_")}
        env.update(
            {
                "KNOWRA_REDIS_MODE": "embedded",
                "KNOWRA_DATA_DIR": str(tmp / "state"),
                "KNOWRA_ALLOWED_ROOTS": str(pdf_dir),
                "KNOWRA_CONCURRENCY": "2",
                "KNOWRA_LEASE_TTL_S": str(lease),
                "KNOWRA_HEARTBEAT_INTERVAL_S": str(lease / 6),
                "KNOWRA_RECOVERY_INTERVAL_S": str(min(10.0, lease / 3)),
                "KNOWRA_LOG_LEVEL": "WARNING",
            }
        )
        port = free_port()
        self.log = (tmp / "service.log").open("wb")
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
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.http.get("/worker/heartbeat").json()["status"] == "ok":
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the service did not start; see " + str(tmp / "service.log"))

    def status(self, task_id: str) -> dict[str, Any]:
        return dict(self.http.get("/worker/task_status", params={"task_id": task_id}).json())

    def wait(self, task_id: str, pred: Any, timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status(task_id)
            if pred(status):
                return status
            time.sleep(0.01)
        raise TimeoutError(f"{task_id}: {status}")

    def submit(self, pdf: Path) -> str:
        task_id = f"bench-{uuid.uuid4().hex[:8]}"
        self.http.post(
            "/worker/start_task",
            json={
                "task_id": task_id,
                "file_path": str(pdf),
                "kb_id": "bench",
                "chunk_size": 1000,
                "chunk_overlap": 200,
            },
        ).raise_for_status()
        return task_id

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def started(status: dict[str, Any]) -> bool:
    return status["state"] == "running" and status["progress"]["units_done"] >= 20


def final(status: dict[str, Any]) -> bool:
    return status["state"] in ("succeeded", "failed", "cancelled")


def pause_round(svc: Service, pdf: Path) -> dict[str, float]:
    task_id = svc.submit(pdf)
    svc.wait(task_id, started)
    t0 = time.perf_counter()
    svc.http.post("/worker/pause_task", json={"task_id": task_id})
    paused = svc.wait(task_id, lambda s: s["state"] in ("paused", "succeeded"))
    latency = time.perf_counter() - t0
    svc.http.post("/worker/resume_task", json={"task_id": task_id})
    done = svc.wait(task_id, final)
    return {
        "pause_latency_s": latency,
        "paused_at_unit": paused["progress"]["units_done"],
        "reparsed_units": done["units_parsed"] - done["progress"]["units_total"],
    }


def crash_round(svc: Service, pdf: Path) -> dict[str, float]:
    task_id = svc.submit(pdf)
    running = svc.wait(task_id, started)
    os.kill(running["worker_pid"], signal.SIGKILL)
    t0 = time.perf_counter()
    svc.wait(task_id, lambda s: s["attempts"] >= 2 and s["state"] == "running")
    claimed = time.perf_counter() - t0
    done = svc.wait(task_id, final)
    return {
        "reclaimed_s": claimed,
        "completed_s": time.perf_counter() - t0,
        "reparsed_units": done["units_parsed"] - done["progress"]["units_total"],
        "state": done["state"] == "succeeded",
    }


def summarize(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = rows[0].keys()
    return {k: round(statistics.median(float(r[k]) for r in rows), 3) for k in keys}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pdf", type=Path, default=DEFAULT_PDF)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lease", type=float, default=30.0, help="KNOWRA_LEASE_TTL_S")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "durability.json")
    args = ap.parse_args()
    pdf = args.pdf.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        svc = Service(pdf.parent, Path(tmp), args.lease)
        try:
            pauses = [pause_round(svc, pdf) for _ in range(args.rounds)]
            crashes = [crash_round(svc, pdf) for _ in range(args.rounds)]
        finally:
            svc.stop()
    report = {
        "pdf": pdf.name,
        "lease_s": args.lease,
        "rounds": args.rounds,
        "pause": summarize(pauses),
        "crash": summarize(crashes),
        "pause_rounds": pauses,
        "crash_rounds": crashes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: report[k] for k in ("pdf", "lease_s", "pause", "crash")}, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
