"""Throughput and memory of PDF parsing: raw pypdfium2 vs `parse` vs the whole service.

    .venv/bin/python -m bench.throughput [--corpus DIR] [--out bench/results/latest.json]
                                         [--repeat N] [--timeout S]

On one set of PDFs (those pypdfium2 opens and extracts; the others are skipped everywhere):
1. raw pypdfium2 text extraction, in this process (the baseline);
2. `parse_file` in this process, and the `knowra-worker parse` CLI as one subprocess a file;
3. one `knowra-worker serve` (embedded Valkey, KNOWRA_CONCURRENCY=2) given every PDF at once;
4. peak RSS of the worker's pool process on the largest PDF, against raw pypdfium2 and
   `parse_file` of the same PDF, each in a fresh interpreter.
See bench/README.md for how to read the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
import pypdfium2 as pdfium
from rich.console import Console
from rich.table import Table
from tests.harness import FINAL_STATES, Service, free_port, knowra_env

from knowra_worker.errors import KnowraError
from knowra_worker.pipeline import parse_file

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
SHARED_CORPUS = HERE.parents[2] / "shared" / "corpus"
FALLBACK_CORPUS = REPO / "tests" / "data"
DEFAULT_OUT = REPO / "bench" / "results" / "latest.json"

CHUNK_SIZE, CHUNK_OVERLAP = 1000, 200
SERVICE_PHASE_S = 15 * 60  # start, every batch, stop
MEMORY_PHASE_S = 10 * 60
READY_TIMEOUT_S = 120
CLI_TIMEOUT_S = 300  # one `knowra-worker parse`
PROBE_TIMEOUT_S = 300  # one fresh-interpreter RSS probe
SHUTDOWN_GRACE_S = 10  # KNOWRA_SHUTDOWN_GRACE_S of the services we start
RSS_SAMPLE_S = 0.02
STATUS_POLL_S = 0.1
BATCH_POLL_S = 0.25
MIB = 1024 * 1024


# --- data ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pdf:
    path: Path
    name: str  # relative to the corpus
    pages: int


@dataclass
class Timing:
    """One way of parsing the whole set: pages it went through, and how long it took."""

    key: str  # short: raw, parse_file, cli, service
    name: str
    files: int
    pages: int
    seconds: float
    failures: dict[str, str] = field(default_factory=dict)  # file name -> error code
    rounds: list[float] = field(default_factory=list)  # pages/s of each run, of a median

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self, baseline: Timing) -> dict[str, Any]:
        return {
            **asdict(self),
            "pages_per_s": round(self.pages_per_s, 1),
            "ratio_to_raw": round(self.pages_per_s / baseline.pages_per_s, 3),
        }


@dataclass
class Rss:
    """Resident memory of one process (or tree) before and at the peak of one parse."""

    name: str
    baseline: int  # bytes
    peak: int
    method: str  # how the peak was measured

    @property
    def delta(self) -> int:
        return self.peak - self.baseline

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "baseline_mib": _mib(self.baseline),
            "peak_mib": _mib(self.peak),
            "delta_mib": _mib(self.delta),
            "method": self.method,
        }


@dataclass
class MemoryRun:
    pdf: Pdf
    rows: list[Rss]
    state: str  # the task's final state in the service


def _mib(n: int) -> float:
    return round(n / MIB, 1)


# --- corpus and the raw baseline -----------------------------------------------------------


def default_corpus() -> Path:
    return SHARED_CORPUS if SHARED_CORPUS.is_dir() else FALLBACK_CORPUS


def raw_extract(path: Path) -> int:
    """pypdfium2 alone: open, each page's whole text, close. The number of pages."""
    pdf = pdfium.PdfDocument(path)
    try:
        for index in range(len(pdf)):
            page = pdf[index]
            textpage = page.get_textpage()
            textpage.get_text_range()
            textpage.close()
            page.close()
        return len(pdf)
    finally:
        pdf.close()


def load_corpus(corpus: Path) -> tuple[list[Pdf], dict[str, str]]:
    """The PDFs raw extraction goes through (this pass also warms the file cache), and the
    ones it fails on (encrypted, corrupt) with the reason."""
    pdfs: list[Pdf] = []
    skipped: dict[str, str] = {}
    for path in sorted(corpus.rglob("*.pdf")):
        name = str(path.relative_to(corpus))
        try:
            pdfs.append(Pdf(path, name, raw_extract(path)))
        except (pdfium.PdfiumError, OSError) as exc:
            skipped[name] = str(exc)
    return pdfs, skipped


def time_raw(pdfs: list[Pdf]) -> Timing:
    start = time.perf_counter()
    pages = sum(raw_extract(pdf.path) for pdf in pdfs)
    return Timing("raw", "raw pypdfium2", len(pdfs), pages, time.perf_counter() - start)


def best_of(repeat: int, run: Callable[[], Timing]) -> Timing:
    return min((run() for _ in range(repeat)), key=lambda t: t.seconds)


# --- the parse path ------------------------------------------------------------------------


def parse_one(path: Path) -> tuple[int, str | None]:
    """Pages parse_file went through, and its error code if it raised one."""
    pages = 0
    try:
        for _doc, unit, _chunks in parse_file(path, CHUNK_SIZE, CHUNK_OVERLAP):
            pages += unit.index >= 0
    except KnowraError as exc:
        return pages, exc.code
    return pages, None


def time_parse(pdfs: list[Pdf]) -> Timing:
    timing = Timing("parse_file", "parse_file (in-process)", len(pdfs), 0, 0.0)
    start = time.perf_counter()
    for pdf in pdfs:
        pages, code = parse_one(pdf.path)
        timing.pages += pages
        if code:
            timing.failures[pdf.name] = code
    timing.seconds = time.perf_counter() - start
    return timing


def cli() -> list[str]:
    script = Path(sys.executable).parent / "knowra-worker"
    return [str(script)] if script.exists() else [sys.executable, "-m", "knowra_worker"]


def run_cli(path: Path, out: Path) -> str | None:
    """One `knowra-worker parse`; None on success, else the error code it printed."""
    args = [
        *cli(),
        "parse",
        str(path),
        "--out",
        str(out),
        "--no-progress",
        "--chunk-size",
        str(CHUNK_SIZE),
        "--chunk-overlap",
        str(CHUNK_OVERLAP),
    ]
    try:
        proc = subprocess.run(
            args,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "TIMEOUT"
    if proc.returncode == 0:
        return None
    last = (proc.stderr.strip().splitlines() or [""])[-1]
    parts = last.split(": ")  # "knowra-worker: CODE: message"
    return parts[1] if len(parts) > 2 else f"EXIT {proc.returncode}"


def time_cli(pdfs: list[Pdf], workdir: Path) -> Timing:
    timing = Timing(
        "cli",
        "knowra-worker parse (CLI, incl. start-up)",
        len(pdfs),
        sum(p.pages for p in pdfs),
        0.0,
    )
    out = workdir / "cli.jsonl"
    start = time.perf_counter()
    for pdf in pdfs:
        code = run_cli(pdf.path, out)
        if code:
            timing.failures[pdf.name] = code
    timing.seconds = time.perf_counter() - start
    out.unlink(missing_ok=True)
    return timing


# --- a service subprocess ------------------------------------------------------------------


def start_service(workdir: Path, roots: list[Path], concurrency: int) -> Service:
    """One `knowra-worker serve` with its own embedded Valkey; dies with this process."""
    port = free_port()
    env = knowra_env(
        KNOWRA_REDIS_MODE="embedded",
        KNOWRA_DATA_DIR=str(workdir / f"state-{port}"),
        KNOWRA_ALLOWED_ROOTS=":".join(str(r) for r in [*roots, workdir]),
        KNOWRA_CONCURRENCY=str(concurrency),
        KNOWRA_LOG_LEVEL="INFO",
        KNOWRA_SHUTDOWN_GRACE_S=str(SHUTDOWN_GRACE_S),
    )
    svc = Service(env, port, workdir, [*cli(), "serve", "--port", str(port), "--host", "127.0.0.1"])
    try:
        svc.wait_ready(READY_TIMEOUT_S)
    except BaseException:
        svc.close(SHUTDOWN_GRACE_S)
        raise
    return svc


def log_tail(svc: Service) -> str:
    return svc.log()[-3000:]


def submit(svc: Service, pdf: Pdf, kb_id: str) -> str:
    response = svc.start_task(
        task_id=f"bench-{uuid.uuid4().hex[:12]}",
        file_path=str(pdf.path),
        kb_id=kb_id,
        chunk_size=CHUNK_SIZE,
        chunk_overlap=CHUNK_OVERLAP,
    )
    if response.is_error:
        raise RuntimeError(
            f"start_task {pdf.name}: {response.status_code} {response.text}\n{log_tail(svc)}"
        )
    return str(response.json()["task_id"])


def list_tasks(svc: Service, kb_id: str) -> list[dict[str, Any]]:
    response = svc.http.get("/worker/tasks", params={"kb_id": kb_id, "limit": 1000})
    response.raise_for_status()
    return list(response.json())


# --- whole service throughput --------------------------------------------------------------


def error_code(status: dict[str, Any]) -> str:
    error = status.get("error") or {}
    return str(error.get("code") or status["state"]).upper()


def wait_batch(svc: Service, kb_id: str, count: int, deadline: float) -> list[dict[str, Any]]:
    while time.monotonic() < deadline:
        svc.check_alive()
        tasks = list_tasks(svc, kb_id)
        if len(tasks) >= count and all(t["state"] in FINAL_STATES for t in tasks):
            return tasks
        time.sleep(BATCH_POLL_S)
    raise TimeoutError(f"the service did not finish {count} tasks in time:\n{log_tail(svc)}")


def service_batch(svc: Service, pdfs: list[Pdf], deadline: float) -> Timing:
    """Every PDF submitted at once; from the first submission to the last finished_at."""
    kb_id = f"bench-{uuid.uuid4().hex[:8]}"
    names = {str(pdf.path): pdf.name for pdf in pdfs}
    start = time.time()
    for pdf in pdfs:
        submit(svc, pdf, kb_id)
    tasks = wait_batch(svc, kb_id, len(pdfs), deadline)
    end = max(t["finished_at"] or t["updated_at"] for t in tasks)
    failures = {
        names.get(t["file_path"], t["file_path"]): error_code(t)
        for t in tasks
        if t["state"] != "succeeded"
    }
    pages = sum(t["progress"]["units_done"] for t in tasks)
    return Timing("service", "service (concurrency 2)", len(tasks), pages, end - start, failures)


def time_service(pdfs: list[Pdf], roots: list[Path], workdir: Path, repeat: int) -> Timing:
    deadline = time.monotonic() + SERVICE_PHASE_S
    with start_service(workdir, roots, concurrency=2) as svc:
        return best_of(repeat, lambda: service_batch(svc, pdfs, deadline))


# --- peak memory ---------------------------------------------------------------------------


def reset_peak_rss(pid: int | str = "self") -> bool:
    """Zero the kernel's peak-RSS mark (VmHWM, ru_maxrss) of a process; Linux 4.0 and later."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def kernel_peak_rss(pid: int) -> int:
    """The process's VmHWM in bytes; 0 when unknown."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _rss(proc: psutil.Process) -> int:
    try:
        return int(proc.memory_info().rss)
    except psutil.Error:
        return 0


def _is_celery(proc: psutil.Process) -> bool:
    try:
        return any("celery" in part for part in proc.cmdline())
    except psutil.Error:
        return False


def pool_child(svc: Service, timeout: float = 30) -> psutil.Process:
    """The Celery pool process: a celery process whose parent is the celery main process."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        celery = [p for p in svc.tree() if _is_celery(p)]
        pids = {p.pid for p in celery}
        children = [p for p in celery if p.ppid() in pids]
        if children:
            return children[0]
        time.sleep(0.2)
    raise TimeoutError("found no Celery pool process under the service")


def watch_rss(
    svc: Service, child: psutil.Process, task_id: str, deadline: float
) -> tuple[int, int, str]:
    """Peak RSS of the pool child and of the whole tree, sampled until the task is final."""
    peak_child = peak_tree = 0
    next_poll = 0.0
    while time.monotonic() < deadline:
        peak_child = max(peak_child, _rss(child))
        peak_tree = max(peak_tree, sum(_rss(p) for p in svc.tree()))
        if time.monotonic() >= next_poll:
            svc.check_alive()
            state = svc.status(task_id)["state"]
            if state in FINAL_STATES:
                return peak_child, peak_tree, state
            next_poll = time.monotonic() + STATUS_POLL_S
        time.sleep(RSS_SAMPLE_S)
    raise TimeoutError(f"task {task_id} did not finish in time:\n{log_tail(svc)}")


def service_memory(pdf: Pdf, roots: list[Path], workdir: Path) -> tuple[list[Rss], str]:
    deadline = time.monotonic() + MEMORY_PHASE_S
    with start_service(workdir, roots, concurrency=1) as svc:
        child = pool_child(svc)
        base_child, base_tree = _rss(child), sum(_rss(p) for p in svc.tree())
        reset = reset_peak_rss(child.pid)
        task_id = submit(svc, pdf, f"bench-{uuid.uuid4().hex[:8]}")
        peak_child, peak_tree, state = watch_rss(svc, child, task_id, deadline)
        if reset:
            peak_child = max(peak_child, kernel_peak_rss(child.pid))
    sampled = f"RSS sampled every {RSS_SAMPLE_S * 1000:.0f} ms"
    return [
        Rss(
            "service: Celery pool process",
            base_child,
            peak_child,
            sampled + (" and VmHWM" if reset else ""),
        ),
        Rss("service: whole process tree (sum)", base_tree, peak_tree, sampled),
    ], state


def probe(mode: str, path: Path) -> dict[str, Any]:
    """In a fresh interpreter (see main): RSS after imports, then ru_maxrss after one
    extraction, with the peak mark reset in between so import-time peaks do not count."""
    gc.collect()
    baseline = _rss(psutil.Process())
    reset = reset_peak_rss()
    if mode == "raw":
        raw_extract(path)
    else:
        parse_one(path)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    method = "ru_maxrss" + (" (reset after imports)" if reset else " (includes imports)")
    return {"baseline": baseline, "peak": peak, "method": method}


def run_probe(mode: str, path: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.throughput", "--probe", mode, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_S,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return dict(json.loads(proc.stdout))


def measure_memory(pdfs: list[Pdf], roots: list[Path], workdir: Path) -> MemoryRun:
    largest = max(pdfs, key=lambda p: p.pages)
    rows, state = service_memory(largest, roots, workdir)
    for mode, name in (
        ("raw", "raw pypdfium2 (fresh process)"),
        ("parse", "parse_file (fresh process)"),
    ):
        rows.append(Rss(name, **run_probe(mode, largest.path)))
    return MemoryRun(largest, rows, state)


# --- report --------------------------------------------------------------------------------


def git_describe() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + ("-dirty" if git("status", "--porcelain") else "")


def run_meta(repeat: int) -> dict[str, Any]:
    """Taken at the start: the load average shows what else was running."""
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": git_describe(),
        "python": platform.python_version(),
        "pypdfium2": version("pypdfium2"),
        "cpus": os.cpu_count(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "repeat": repeat,
        "chunk_size": CHUNK_SIZE,
        "chunk_overlap": CHUNK_OVERLAP,
    }


def results_json(
    meta: dict[str, Any],
    corpus: Path,
    pdfs: list[Pdf],
    skipped: dict[str, str],
    timings: list[Timing],
    memory: MemoryRun,
) -> dict[str, Any]:
    return {
        "meta": meta,
        "corpus": str(corpus),
        "files": {p.name: p.pages for p in pdfs},
        "skipped": skipped,
        "throughput": [t.to_dict(timings[0]) for t in timings],
        "memory": {
            "file": memory.pdf.name,
            "pages": memory.pdf.pages,
            "task_state": memory.state,
            "rows": [r.to_dict() for r in memory.rows],
        },
    }


def throughput_table(timings: list[Timing]) -> Table:
    table = Table(title="Throughput (best of --repeat)")
    for col in ("path", "files", "pages", "seconds", "pages/s", "vs raw", "failed"):
        table.add_column(col, justify="left" if col in ("path", "failed") else "right")
    base = timings[0].pages_per_s
    for t in timings:
        failed = ", ".join(sorted(set(t.failures.values()))) if t.failures else "-"
        if t.failures:
            failed = f"{len(t.failures)} ({failed})"
        table.add_row(
            t.name,
            str(t.files),
            str(t.pages),
            f"{t.seconds:.2f}",
            f"{t.pages_per_s:.1f}",
            f"{t.pages_per_s / base:.2f}x",
            failed,
        )
    return table


def failures_table(timings: list[Timing]) -> Table:
    table = Table(title="Files that failed (error code per path; - succeeded)")
    table.add_column("file")
    for t in timings[1:]:
        table.add_column(t.key)
    for name in sorted({name for t in timings for name in t.failures}):
        table.add_row(name, *(t.failures.get(name, "-") for t in timings[1:]))
    return table


def memory_table(memory: MemoryRun) -> Table:
    table = Table(
        title=f"Peak RSS on the largest PDF: {memory.pdf.name} "
        f"({memory.pdf.pages} pages, task {memory.state})"
    )
    for col in ("process", "baseline MiB", "peak MiB", "delta MiB", "peak from"):
        table.add_column(col, justify="right" if "MiB" in col else "left")
    for r in memory.rows:
        table.add_row(
            r.name,
            f"{r.baseline / MIB:.1f}",
            f"{r.peak / MIB:.1f}",
            f"{r.delta / MIB:.1f}",
            r.method,
        )
    return table


def report(
    console: Console, result: dict[str, Any], timings: list[Timing], memory: MemoryRun, out: Path
) -> None:
    meta = result["meta"]
    console.print(
        f"commit {meta['commit']}, {meta['cpus']} CPUs, 1-min load average at start "
        f"{meta['loadavg_at_start'][0]}"
    )
    console.print(
        f"corpus {result['corpus']}: {len(result['files'])} PDFs, "
        f"{timings[0].pages} pages; skipped {len(result['skipped'])}"
    )
    for name, reason in result["skipped"].items():
        console.print(f"  skipped {name}: {reason}")
    console.print(throughput_table(timings))
    if any(t.failures for t in timings):
        console.print(failures_table(timings))
    console.print(memory_table(memory))
    console.print(f"results written to {out}")


# --- main ----------------------------------------------------------------------------------


class Overtime(BaseException):
    """--timeout passed. A BaseException, so no `except OSError/Exception` on the way swallows
    it (TimeoutError is an OSError)."""


def _raise_overtime(signum: int, _frame: FrameType | None) -> None:
    raise Overtime("the benchmark ran past --timeout")


def _exit_on_term(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--corpus",
        type=Path,
        default=None,
        help=f"folder searched for *.pdf [default: {SHARED_CORPUS}, else {FALLBACK_CORPUS}]",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs of each throughput measurement; the best is reported",
    )
    parser.add_argument("--timeout", type=int, default=3600, help="seconds for the whole run")
    parser.add_argument("--probe", nargs=2, metavar=("MODE", "PDF"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run(corpus: Path, out: Path, repeat: int) -> None:
    meta = run_meta(repeat)
    pdfs, skipped = load_corpus(corpus)
    if not pdfs:
        raise SystemExit(f"no readable PDF under {corpus}")
    roots = [corpus]
    with tempfile.TemporaryDirectory(prefix="knowra-bench-") as tmp:
        workdir = Path(tmp)
        timings = [
            best_of(repeat, lambda: time_raw(pdfs)),
            best_of(repeat, lambda: time_parse(pdfs)),
            best_of(repeat, lambda: time_cli(pdfs, workdir)),
            time_service(pdfs, roots, workdir, repeat),
        ]
        memory = measure_memory(pdfs, roots, workdir)
    result = results_json(meta, corpus, pdfs, skipped, timings, memory)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    report(Console(width=None if sys.stdout.isatty() else 120), result, timings, memory, out)


@contextlib.contextmanager
def bounded(seconds: int) -> Iterator[None]:
    """SIGALRM after `seconds` and SIGTERM both unwind the stack, so every finally runs."""
    signal.signal(signal.SIGALRM, _raise_overtime)
    signal.signal(signal.SIGTERM, _exit_on_term)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.probe:
        mode, path = args.probe
        sys.stdout.write(json.dumps(probe(mode, Path(path))) + "\n")
        return
    try:
        with bounded(args.timeout):
            run(
                (args.corpus or default_corpus()).resolve(), args.out.resolve(), max(1, args.repeat)
            )
    except Overtime as exc:
        raise SystemExit(f"throughput.py: {exc} ({args.timeout} s)") from exc


if __name__ == "__main__":
    main()
