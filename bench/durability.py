"""Pause latency, crash recovery time and units re-parsed, on a large PDF, through a real
service (embedded Redis, real Celery worker processes).

    .venv/bin/python -m bench.durability [--pdf PATH] [--rounds 3] [--lease 30]

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
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tests.harness import Service, free_port, knowra_env

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PDF = ROOT / "tests" / "data" / "DA-619p.pdf"


def start_service(pdf_dir: Path, tmp: Path, lease: float) -> Service:
    """One `knowra-worker serve` with an embedded Valkey, the lease under test, and the
    recovery loop scaled to it."""
    env = knowra_env(
        KNOWRA_REDIS_MODE="embedded",
        KNOWRA_DATA_DIR=str(tmp / "state"),
        KNOWRA_ALLOWED_ROOTS=str(pdf_dir),
        KNOWRA_CONCURRENCY="2",
        KNOWRA_LEASE_TTL_S=str(lease),
        KNOWRA_HEARTBEAT_INTERVAL_S=str(lease / 6),
        KNOWRA_RECOVERY_INTERVAL_S=str(min(10.0, lease / 3)),
        KNOWRA_LOG_LEVEL="WARNING",
    )
    svc = Service(env, free_port(), tmp)
    try:
        svc.wait_ready()
    except BaseException:
        svc.close()
        raise
    return svc


def wait(svc: Service, task_id: str, pred: Any, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = svc.status(task_id)
        if pred(status):
            return status
        time.sleep(0.01)
    raise TimeoutError(f"{task_id}: {status}")


def submit(svc: Service, pdf: Path) -> str:
    response = svc.start_task(
        task_id=f"bench-{uuid.uuid4().hex[:8]}",
        file_path=str(pdf),
        kb_id="bench",
        chunk_size=1000,
        chunk_overlap=200,
    )
    response.raise_for_status()
    return str(response.json()["task_id"])


def started(status: dict[str, Any]) -> bool:
    return status["state"] == "running" and status["progress"]["units_done"] >= 20


def final(status: dict[str, Any]) -> bool:
    return status["state"] in ("succeeded", "failed", "cancelled")


def pause_round(svc: Service, pdf: Path) -> dict[str, float]:
    task_id = submit(svc, pdf)
    wait(svc, task_id, started)
    t0 = time.perf_counter()
    svc.http.post("/worker/pause_task", json={"task_id": task_id})
    paused = wait(svc, task_id, lambda s: s["state"] in ("paused", "succeeded"))
    latency = time.perf_counter() - t0
    svc.http.post("/worker/resume_task", json={"task_id": task_id})
    done = wait(svc, task_id, final)
    return {
        "pause_latency_s": latency,
        "paused_at_unit": paused["progress"]["units_done"],
        "reparsed_units": done["units_parsed"] - done["progress"]["units_total"],
    }


def crash_round(svc: Service, pdf: Path) -> dict[str, float]:
    task_id = submit(svc, pdf)
    running = wait(svc, task_id, started)
    os.kill(running["worker_pid"], signal.SIGKILL)
    t0 = time.perf_counter()
    wait(svc, task_id, lambda s: s["attempts"] >= 2 and s["state"] == "running")
    claimed = time.perf_counter() - t0
    done = wait(svc, task_id, final)
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
        with start_service(pdf.parent, Path(tmp), args.lease) as svc:
            pauses = [pause_round(svc, pdf) for _ in range(args.rounds)]
            crashes = [crash_round(svc, pdf) for _ in range(args.rounds)]
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
