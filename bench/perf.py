"""The performance suite: each figure of the performance targets beside its baseline, measured
in the same run, with the target and whether it is met.

    .venv/bin/python -m bench.perf [--only P1,P5] [--quick] [--out bench/results/perf.json]

P1 the service on the corpus's text PDFs vs raw single-process pypdfium2; P2 the same files
through LangChain (PyPDFLoader + RecursiveCharacterTextSplitter) and kreuzberg; P3 the
chunker vs LangChain's splitter on tens of MB of real text; P4 the pool process's peak RSS
on 10-, 600- and 5,000-page PDFs; P5 one-page task latency and rate; P6 pause latency and
crash recovery; P7 1 vs 2 worker processes; P8 one 1,500-page PDF vs raw pypdfium2.
`--quick` runs every row on small inputs, to check that the suite works. See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pypdfium2 as pdfium
from rich.console import Console
from rich.table import Table
from tests.harness import FINAL_STATES, Service

from bench import durability
from bench.throughput import (
    CHUNK_OVERLAP,
    CHUNK_SIZE,
    MIB,
    Overtime,
    Pdf,
    Timing,
    bounded,
    default_corpus,
    git_describe,
    raw_extract,
    service_batch,
    service_memory,
    start_service,
    time_raw,
)

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
RESULTS = REPO / "bench" / "results"
DEFAULT_OUT = RESULTS / "perf.json"
BUILT_PDFS = RESULTS / "pdfs"  # repeated-page PDFs, built once and reused by later runs
ONE_PAGE_TEXT = REPO / "tests" / "data" / "book-war-and-peace-1p.txt"
# The pages the long PDFs repeat: a real 619-page text document (the 5,112-page PDF
# is this one repeated), so that P4, P7 and P8 see ordinary text pages, not the few corpus
# pages whose pictures go through OCR.
REPEATED_SOURCE = REPO / "tests" / "data" / "DA-619p.pdf"
ROWS = ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8")
MIN_CHARS_PER_PAGE = 20  # a page with less has no text layer (scanned, or empty)
MIN_TEXT_PAGES = 0.9  # a text PDF: at least this share of its pages have a text layer


@dataclass(frozen=True)
class Sizes:
    """Inputs of one mode: the full run, or --quick (every row, small inputs)."""

    corpus_max_pages: int  # largest corpus PDF taken into P1, P2, P7
    library_budget_s: float  # P2: each library's pass stops after this
    chunk_text_mb: float  # P3
    memory_pages: tuple[int, int, int]  # P4
    latency_tasks: int  # P5, sequential
    rate_tasks: int  # P5, concurrent
    rate_clients: int
    rate_budget_s: float
    pause_rounds: int  # P6
    crash_rounds: int
    lease_s: float
    long_pages: int  # P7, P8
    timeout_s: int  # the whole run
    section_limit_s: int  # one row
    rounds: int  # P1, P7, P8: raw passes, and fresh services per process count (median)


FULL = Sizes(10_000, 240, 24, (10, 600, 5000), 200, 3000, 32, 120, 5, 2, 30, 1500, 1800, 600, 3)
QUICK = Sizes(40, 30, 2, (10, 60, 300), 30, 320, 32, 60, 2, 1, 6, 150, 420, 150, 1)


# --- rows ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """`measured` (or `ratio`) op value: e.g. ratio >= 1.8, measured < 0.5."""

    on: str  # "ratio" or "measured"
    op: str  # ">=", "<=", "<"
    value: float

    def met(self, measured: float | None, ratio: float | None) -> bool | None:
        x = ratio if self.on == "ratio" else measured
        if x is None or math.isnan(x):
            return None
        return {">=": x >= self.value, "<=": x <= self.value, "<": x < self.value}[self.op]

    def text(self) -> str:
        return f"{self.op} {self.value:g}{'x' if self.on == 'ratio' else ''}"


@dataclass
class Row:
    """One line of the table: what was measured, against what, and the target."""

    id: str
    what: str
    unit: str
    target: Target
    measured: float | None = None
    baseline: float | None = None
    baseline_what: str = ""
    ratio: float | None = None
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        return self.target.met(self.measured, self.ratio)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "what": self.what,
            "unit": self.unit,
            "measured": _round(self.measured),
            "baseline": _round(self.baseline),
            "baseline_what": self.baseline_what,
            "ratio": _round(self.ratio),
            "target": self.target.text(),
            "met": self.met,
            "note": self.note,
            "detail": self.detail,
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def failed_row(row_id: str, what: str, target: Target, why: str) -> Row:
    return Row(row_id, what, "", target, note=f"error: {why}"[:300])


# --- inputs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextPdf:
    pdf: Pdf
    text: str  # raw pypdfium2 text of every page, joined by blank lines
    bare_pages: int  # pages without a text layer (the service may run OCR on them)


def raw_text(path: Path) -> list[str]:
    """The text of each page, as raw pypdfium2 extraction gives it."""
    pdf = pdfium.PdfDocument(path)
    try:
        texts = []
        for index in range(len(pdf)):
            page = pdf[index]
            textpage = page.get_textpage()
            texts.append(textpage.get_text_range())
            textpage.close()
            page.close()
        return texts
    finally:
        pdf.close()


def text_pdfs(corpus: Path) -> tuple[list[TextPdf], dict[str, str]]:
    """The corpus's text PDFs: a text layer on nearly every page (a blank page here and there
    is part of real documents). This pass also warms the file cache. The others (encrypted,
    corrupt, scanned) with the reason they are left out."""
    found: list[TextPdf] = []
    skipped: dict[str, str] = {}
    for path in sorted(corpus.rglob("*.pdf")):
        name = str(path.relative_to(corpus))
        try:
            pages = raw_text(path)
        except (pdfium.PdfiumError, OSError) as exc:
            skipped[name] = str(exc)
            continue
        bare = sum(len(text.strip()) < MIN_CHARS_PER_PAGE for text in pages)
        if not pages or bare > (1 - MIN_TEXT_PAGES) * len(pages):
            skipped[name] = f"{bare} of {len(pages)} pages without a text layer"
            continue
        found.append(TextPdf(Pdf(path, name, len(pages)), "\n\n".join(pages), bare))
    return found, skipped


def build_repeated_pdf(source: Path, pages: int, folder: Path) -> Pdf:
    """A PDF of `pages` real pages: the source's pages in order, over and over. Built once
    (its name carries the source's digest) and kept for later runs."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:8]
    out = folder / f"{source.stem}-x-{pages}p-{digest}.pdf"
    if not out.exists():
        folder.mkdir(parents=True, exist_ok=True)
        doc = pdfium.PdfDocument(source)
        new = pdfium.PdfDocument.new()
        try:
            while len(new) < pages:
                new.import_pages(doc, list(range(min(pages - len(new), len(doc)))))
            part = out.with_suffix(".part")
            new.save(part)
            part.replace(out)
        finally:
            new.close()
            doc.close()
    return Pdf(out, out.name, pages)


# --- what several rows share ---------------------------------------------------------------


@dataclass
class ServiceRun:
    corpus: Timing  # every corpus PDF submitted at once
    long: Timing  # the long PDF alone


class Suite:
    """The inputs and measurements rows share, each made once, when first needed."""

    def __init__(self, sizes: Sizes, corpus: Path, workdir: Path, console: Console) -> None:
        self.sizes = sizes
        self.corpus_dir = corpus
        self.workdir = workdir
        self.console = console

    def say(self, text: str) -> None:
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {text}")

    @cached_property
    def _corpus(self) -> tuple[list[TextPdf], dict[str, str]]:
        self.say(f"reading the PDFs of {self.corpus_dir}")
        found, skipped = text_pdfs(self.corpus_dir)
        kept = [t for t in found if t.pdf.pages <= self.sizes.corpus_max_pages]
        for t in found:
            if t not in kept:
                skipped[t.pdf.name] = f"more than {self.sizes.corpus_max_pages} pages (--quick)"
        if not kept:
            raise SystemExit(f"no PDF with a text layer under {self.corpus_dir}")
        return kept, skipped

    @property
    def texts(self) -> list[TextPdf]:
        return self._corpus[0]

    @property
    def skipped(self) -> dict[str, str]:
        return self._corpus[1]

    @property
    def pdfs(self) -> list[Pdf]:
        return [t.pdf for t in self.texts]

    @property
    def roots(self) -> list[Path]:
        return [self.corpus_dir, BUILT_PDFS]

    @cached_property
    def raw(self) -> Timing:
        self.say(f"raw pypdfium2 on the corpus, {self.sizes.rounds} passes")
        return median([time_raw(self.pdfs) for _ in range(self.sizes.rounds)])

    def repeated(self, pages: int) -> Pdf:
        return build_repeated_pdf(REPEATED_SOURCE, pages, BUILT_PDFS)

    @cached_property
    def long_pdf(self) -> Pdf:
        self.say(f"building a {self.sizes.long_pages}-page PDF")
        return self.repeated(self.sizes.long_pages)

    @cached_property
    def raw_long(self) -> Timing:
        self.say(f"raw pypdfium2 on {self.long_pdf.name}")
        raw_extract(self.long_pdf.path)  # file cache
        return median([time_raw([self.long_pdf]) for _ in range(self.sizes.rounds)])

    def service_run(self, concurrency: int) -> ServiceRun:
        """`rounds` fresh services with `concurrency` pool processes, each given the corpus,
        then the long PDF; the median of each. A fresh service each time, as a batch on a
        service that has read the same files would find their sampled pages kept."""
        self.long_pdf  # noqa: B018 - built before the timed part
        corpus, long = [], []
        for round_ in range(self.sizes.rounds):
            self.say(f"service, {concurrency} worker process(es), round {round_ + 1}: "
                     "corpus, then the long PDF")  # fmt: skip
            deadline = time.monotonic() + 15 * 60
            with start_service(self.workdir, self.roots, concurrency) as svc:
                corpus.append(service_batch(svc, self.pdfs, deadline))
                long.append(service_batch(svc, [self.long_pdf], deadline))
        return ServiceRun(median(corpus), median(long))

    @cached_property
    def service2(self) -> ServiceRun:
        return self.service_run(2)

    @cached_property
    def service1(self) -> ServiceRun:
        return self.service_run(1)


def median(timings: list[Timing]) -> Timing:
    """The run of median duration, carrying every run's pages per second (`rounds`)."""
    ordered = sorted(timings, key=lambda t: t.seconds)
    chosen = ordered[len(ordered) // 2]
    chosen.rounds = [round(t.pages_per_s, 1) for t in timings]
    return chosen


def failures_note(timing: Timing) -> str:
    if not timing.failures:
        return ""
    codes = sorted(set(timing.failures.values()))
    return f"{len(timing.failures)} task(s) not succeeded: {', '.join(codes)}"


def timing_detail(timing: Timing) -> dict[str, Any]:
    return {
        "files": timing.files,
        "pages": timing.pages,
        "seconds": round(timing.seconds, 3),
        "pages_per_s": round(timing.pages_per_s, 1),
        "rounds_pages_per_s": timing.rounds,
        "failures": timing.failures,
    }


# --- P1, P8: the service vs raw pypdfium2 --------------------------------------------------


def p1(suite: Suite) -> list[Row]:
    raw, svc = suite.raw, suite.service2.corpus
    bare = sum(t.bare_pages for t in suite.texts)
    return [
        Row(
            "P1",
            f"service, 2 processes, {svc.files} text PDFs ({svc.pages} pages)",
            "pages/s",
            Target("ratio", ">=", 1.0),
            svc.pages_per_s,
            raw.pages_per_s,
            "raw pypdfium2, 1 process",
            ratio(svc.pages_per_s, raw.pages_per_s),
            "; ".join(filter(None, (f"{bare} pages without a text layer", failures_note(svc)))),
            {"service": timing_detail(svc), "raw": timing_detail(raw), "bare_pages": bare},
        )
    ]


def p8(suite: Suite) -> list[Row]:
    raw, svc = suite.raw_long, suite.service2.long
    return [
        Row(
            "P8",
            f"service, 2 processes, one {suite.long_pdf.pages}-page PDF",
            "pages/s",
            Target("ratio", ">=", 1.3),
            svc.pages_per_s,
            raw.pages_per_s,
            "raw pypdfium2, 1 process",
            ratio(svc.pages_per_s, raw.pages_per_s),
            failures_note(svc),
            {"service": timing_detail(svc), "raw": timing_detail(raw)},
        )
    ]


# --- P7: 1 vs 2 worker processes -----------------------------------------------------------


def p7(suite: Suite) -> list[Row]:
    two, one = suite.service2, suite.service1
    rows = []
    for what, t2, t1 in (
        (f"{two.corpus.files} text PDFs", two.corpus, one.corpus),
        (f"one {suite.long_pdf.pages}-page PDF", two.long, one.long),
    ):
        rows.append(
            Row(
                "P7",
                f"2 worker processes, {what}",
                "pages/s",
                Target("ratio", ">=", 1.8),
                t2.pages_per_s,
                t1.pages_per_s,
                "1 worker process",
                ratio(t2.pages_per_s, t1.pages_per_s),
                "; ".join(filter(None, (failures_note(t2), failures_note(t1)))),
                {"two": timing_detail(t2), "one": timing_detail(t1)},
            )
        )
    return rows


# --- P2: the LangChain way and kreuzberg ---------------------------------------------------


def _langchain_pdf() -> Callable[[Path], int]:
    from langchain_community.document_loaders import PyPDFLoader
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP)

    def run(path: Path) -> int:
        return len(splitter.split_documents(PyPDFLoader(str(path)).load()))

    return run


def _kreuzberg() -> Callable[[Path], int]:
    from kreuzberg import extract_file_sync

    def run(path: Path) -> int:
        return len(extract_file_sync(str(path)).content)

    return run


def library_pass(
    pdfs: list[Pdf], run: Callable[[Path], int], budget_s: float
) -> tuple[Timing, bool]:
    """Files one after another in this process until all are done or `budget_s` passed;
    whether it stopped early. A file the library fails on is counted as failed, not timed
    out."""
    timing = Timing("lib", "", 0, 0, 0.0)
    start = time.perf_counter()
    for pdf in pdfs:
        if time.perf_counter() - start > budget_s:
            timing.seconds = time.perf_counter() - start
            return timing, True
        try:
            run(pdf.path)
        except Exception as exc:  # noqa: BLE001 - a library's own failure on one file
            timing.failures[pdf.name] = type(exc).__name__
        timing.files += 1
        timing.pages += pdf.pages
    timing.seconds = time.perf_counter() - start
    return timing, False


# (what, short name, packages, loader, target ratio of ours to it)
LIBRARIES: tuple[
    tuple[str, str, tuple[str, ...], Callable[[], Callable[[Path], int]], float], ...
] = (
    (
        "LangChain PyPDFLoader + RecursiveCharacterTextSplitter(1000, 200)",
        "langchain",
        ("langchain-community", "pypdf", "langchain-text-splitters"),
        _langchain_pdf,
        20.0,
    ),
    ("kreuzberg extract_file_sync", "kreuzberg", ("kreuzberg",), _kreuzberg, 1.8),
)


def p2(suite: Suite) -> list[Row]:
    ours = suite.service2.corpus
    rows = []
    for what, key, packages, load, goal in LIBRARIES:
        target = Target("ratio", ">=", goal)
        label = f"service vs {what}"
        try:
            run = load()
        except ImportError as exc:
            rows.append(
                Row("P2", label, "pages/s", target, ours.pages_per_s, note=f"not installed: {exc}")
            )
            continue
        suite.say(f"{key} on the corpus, {suite.sizes.rounds} passes")
        passes = [
            library_pass(suite.pdfs, run, suite.sizes.library_budget_s)
            for _ in range(suite.sizes.rounds)
        ]
        timing, cut = median([t for t, _ in passes]), any(c for _, c in passes)
        note = [failures_note(timing)]
        if cut:
            note.append(f"stopped after {suite.sizes.library_budget_s:.0f} s: {timing.files} files")
        rows.append(
            Row(
                "P2",
                label,
                "pages/s",
                target,
                ours.pages_per_s,
                timing.pages_per_s,
                key + ", 1 process",
                ratio(ours.pages_per_s, timing.pages_per_s),
                "; ".join(filter(None, note)),
                {
                    "library": timing_detail(timing),
                    "service": timing_detail(ours),
                    "versions": {p: _version(p) for p in packages},
                },
            )
        )
    return rows


# --- P3: the chunker vs LangChain's splitter -----------------------------------------------


def corpus_text(suite: Suite) -> str:
    """The corpus's text and Markdown files and the PDFs' extracted text, in one string."""
    parts = []
    for path in sorted(suite.corpus_dir.rglob("*")):
        if path.suffix in (".txt", ".md") and path.is_file():
            parts.append(path.read_text(errors="replace"))
    parts.extend(t.text for t in suite.texts)
    return "\n\n".join(p.strip() for p in parts if p.strip())


def chunker_rate(text: str, repeats: int, budget_s: float) -> tuple[int, float, int]:
    """Characters per second of the chunker fed one paragraph block per blank-line-separated
    paragraph, the text `repeats` times: (characters, seconds, chunks)."""
    from knowra_worker.chunking import Chunker
    from knowra_worker.document import Block, BlockKind

    blocks = [Block(BlockKind.PARAGRAPH, p) for p in text.split("\n\n") if p.strip()]
    chunker = Chunker(CHUNK_SIZE, CHUNK_OVERLAP)
    chunks = chars = 0
    start = time.perf_counter()
    for _ in range(repeats):
        for block in blocks:
            chunks += len(chunker.feed(block))
        chars += len(text)
        if time.perf_counter() - start > budget_s:
            break
    chunks += len(chunker.finish())
    return chars, time.perf_counter() - start, chunks


def splitter_rate(text: str, repeats: int, budget_s: float) -> tuple[int, float, int]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP)
    chunks = chars = 0
    start = time.perf_counter()
    for _ in range(repeats):
        chunks += len(splitter.split_text(text))
        chars += len(text)
        if time.perf_counter() - start > budget_s:
            break
    return chars, time.perf_counter() - start, chunks


def p3(suite: Suite) -> list[Row]:
    text = corpus_text(suite)
    repeats = max(1, round(suite.sizes.chunk_text_mb * 1e6 / len(text)))
    target = Target("ratio", ">=", 1.5)
    what = f"chunker, {len(text) * repeats / 1e6:.0f} M characters of corpus text"
    suite.say(f"chunker on {len(text) / 1e6:.1f} M characters x {repeats}")
    ours = chunker_rate(text, repeats, 300)
    rate = ours[0] / ours[1]
    detail: dict[str, Any] = {"chars": ours[0], "seconds": round(ours[1], 3), "chunks": ours[2]}
    try:
        suite.say("LangChain's splitter on the same text")
        theirs = splitter_rate(text, repeats, 300)
    except ImportError as exc:
        return [Row("P3", what, "M chars/s", target, rate / 1e6, note=f"not installed: {exc}")]
    base = theirs[0] / theirs[1]
    detail["langchain"] = {"chars": theirs[0], "seconds": round(theirs[1], 3), "chunks": theirs[2]}
    return [
        Row(
            "P3",
            what,
            "M chars/s",
            target,
            rate / 1e6,
            base / 1e6,
            "RecursiveCharacterTextSplitter(1000, 200)",
            rate / base,
            detail=detail,
        )
    ]


# --- P4: peak RSS against the page count ---------------------------------------------------


def p4(suite: Suite) -> list[Row]:
    peaks: dict[int, dict[str, Any]] = {}
    for pages in suite.sizes.memory_pages:
        pdf = suite.repeated(pages)
        suite.say(f"peak RSS of the pool process on {pdf.name}")
        rows, state = service_memory(pdf, suite.roots, suite.workdir)
        pool = rows[0]
        peaks[pages] = {
            "file_mib": round(pdf.path.stat().st_size / MIB, 1),
            "state": state,
            "baseline_mib": round(pool.baseline / MIB, 1),
            "peak_mib": round(pool.peak / MIB, 1),
            "delta_mib": round(pool.delta / MIB, 1),
            "method": pool.method,
        }
    small, _, large = suite.sizes.memory_pages
    states = {p["state"] for p in peaks.values()}
    return [
        Row(
            "P4",
            f"pool process peak RSS, {large}-page PDF",
            "MiB",
            Target("ratio", "<=", 1.3),
            peaks[large]["peak_mib"],
            peaks[small]["peak_mib"],
            f"{small}-page PDF",
            ratio(peaks[large]["peak_mib"], peaks[small]["peak_mib"]),
            "; ".join(
                [
                    "peaks " + ", ".join(f"{k} p: {v['peak_mib']:.0f}" for k, v in peaks.items()),
                    *([] if states == {"succeeded"} else [f"task states: {sorted(states)}"]),
                ]
            ),
            {str(k): v for k, v in peaks.items()},
        )
    ]


# --- P5: small tasks -----------------------------------------------------------------------


def small_task_body(path: Path, kb_id: str) -> dict[str, Any]:
    return {
        "task_id": f"bench-{uuid.uuid4().hex}",
        "file_path": str(path),
        "kb_id": kb_id,
        "chunk_size": CHUNK_SIZE,
        "chunk_overlap": CHUNK_OVERLAP,
    }


def one_latency(svc: Service, path: Path, timeout: float = 30) -> tuple[float, dict[str, Any]]:
    """Seconds from before the submission to the first status read that says it is final."""
    start = time.perf_counter()
    response = svc.http.post("/worker/start_task", json=small_task_body(path, "bench-latency"))
    response.raise_for_status()
    task_id = response.json()["task_id"]
    deadline = start + timeout
    while time.perf_counter() < deadline:
        status = svc.status(task_id)
        if status["state"] in FINAL_STATES:
            return time.perf_counter() - start, status
        time.sleep(0.0005)
    raise TimeoutError(f"{task_id} not final in {timeout} s")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def latencies(svc: Service, path: Path, count: int, budget_s: float) -> dict[str, Any]:
    first, _ = one_latency(svc, path)
    for _ in range(4):  # warm-up, not counted
        one_latency(svc, path)
    client: list[float] = []
    server: list[float] = []
    states: set[str] = set()
    end = time.monotonic() + budget_s
    while len(client) < count and time.monotonic() < end:
        seconds, status = one_latency(svc, path)
        client.append(seconds)
        server.append(status["finished_at"] - status["created_at"])
        states.add(status["state"])
    return {
        "first_task_s": round(first, 4),
        "tasks": len(client),
        "p50_ms": round(percentile(client, 50) * 1000, 2),
        "p95_ms": round(percentile(client, 95) * 1000, 2),
        "server_p50_ms": round(percentile(server, 50) * 1000, 2),
        "states": sorted(states),
    }


def submit_share(
    base: str, path: Path, kb_id: str, count: int, stop: threading.Event, out: list[str]
) -> None:
    """One client: `count` submissions one after another, on its own connection."""
    with httpx.Client(base_url=base, timeout=30) as http:
        for _ in range(count):
            if stop.is_set():
                return
            response = http.post("/worker/start_task", json=small_task_body(path, kb_id))
            if response.is_success:
                out.append(response.json()["task_id"])


def wait_all(svc: Service, task_ids: list[str], deadline: float) -> list[dict[str, Any]]:
    """The final status of each task (in submission order) reached before `deadline`."""
    done: list[dict[str, Any]] = []
    for task_id in task_ids:
        while time.monotonic() < deadline:
            status = svc.status(task_id)
            if status["state"] in FINAL_STATES:
                done.append(status)
                break
            time.sleep(0.02)
    return done


def task_rate(svc: Service, path: Path, sizes: Sizes) -> dict[str, Any]:
    """`rate_clients` clients submit `rate_tasks` one-page tasks at once; tasks succeeded per
    second from the first submission to the last `finished_at`."""
    kb_id = f"bench-rate-{uuid.uuid4().hex[:8]}"
    clients = sizes.rate_clients
    shares = [
        sizes.rate_tasks // clients + (i < sizes.rate_tasks % clients) for i in range(clients)
    ]
    outs: list[list[str]] = [[] for _ in range(clients)]
    stop = threading.Event()
    deadline = time.monotonic() + sizes.rate_budget_s
    threads = [
        threading.Thread(
            target=submit_share, args=(svc.base, path, kb_id, n, stop, out), daemon=True
        )
        for n, out in zip(shares, outs, strict=True)
    ]
    start = time.time()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
    finally:
        stop.set()
    submitted_s = time.time() - start
    task_ids = [t for out in outs for t in out]
    done = wait_all(svc, task_ids, deadline)
    ok = [s for s in done if s["state"] == "succeeded"]
    last = max((s["finished_at"] for s in ok), default=start)
    in_task = [s["finished_at"] - s["created_at"] for s in ok]
    return {
        "clients": clients,
        "submitted": len(task_ids),
        "succeeded": len(ok),
        "not_final_by_deadline": len(task_ids) - len(done),
        "submit_seconds": round(submitted_s, 3),
        "seconds": round(last - start, 3),
        "tasks_per_s": len(ok) / (last - start) if ok else 0.0,
        "server_p50_ms": round(percentile(in_task, 50) * 1000, 2) if in_task else None,
    }


def p5(suite: Suite) -> list[Row]:
    path = suite.workdir / "one-page.txt"
    shutil.copyfile(ONE_PAGE_TEXT, path)
    sizes = suite.sizes
    suite.say("one-page tasks: sequential latency, then many clients at once")
    with start_service(suite.workdir, suite.roots, 2) as svc:
        lat = latencies(svc, path, sizes.latency_tasks, 120)
        rate = task_rate(svc, path, sizes)
    return [
        Row(
            "P5",
            f"one-page text, submit to succeeded, idle instance, p50 of {lat['tasks']}",
            "ms",
            Target("measured", "<=", 10),
            lat["p50_ms"],
            note=f"p95 {lat['p95_ms']} ms; first task {lat['first_task_s'] * 1000:.0f} ms",
            detail=lat,
        ),
        Row(
            "P5",
            f"one-page tasks, {rate['clients']} clients at once, {rate['submitted']} tasks",
            "tasks/s",
            Target("measured", ">=", 200),
            rate["tasks_per_s"],
            note=f"{rate['succeeded']} succeeded, {rate['not_final_by_deadline']} not final "
            "by the deadline",
            detail=rate,
        ),
    ]


# --- P6: pause latency and crash recovery --------------------------------------------------


def p6(suite: Suite) -> list[Row]:
    sizes = suite.sizes
    pdf = durability.DEFAULT_PDF
    suite.say(f"pause and crash rounds on {pdf.name}, lease {sizes.lease_s:g} s")
    tmp = suite.workdir / "durability"
    tmp.mkdir(exist_ok=True)
    with durability.start_service(pdf.parent, tmp, sizes.lease_s) as svc:
        pauses = [durability.pause_round(svc, pdf) for _ in range(sizes.pause_rounds)]
        crashes = [durability.crash_round(svc, pdf) for _ in range(sizes.crash_rounds)]
    lease_note = f"lease {sizes.lease_s:g} s" + ("" if sizes.lease_s == 30 else " (not default)")
    claimed = [c["reclaimed_s"] for c in crashes]
    completed = [c["completed_s"] for c in crashes]
    pause_s = [p["pause_latency_s"] for p in pauses]
    return [
        Row(
            "P6",
            f"pause request to paused, p95 of {len(pauses)} rounds",
            "s",
            Target("measured", "<", 0.5),
            percentile(pause_s, 95),
            note=f"median {statistics.median(pause_s):.3f} s",
            detail={"rounds": pauses},
        ),
        Row(
            "P6",
            f"SIGKILL of the pool process to another claiming the task, max of {len(crashes)}",
            "s",
            Target("measured", "<", 60),
            max(claimed),
            note=f"{lease_note}; to succeeded: max {max(completed):.1f} s; "
            f"units re-parsed: {[int(c['reparsed_units']) for c in crashes]}",
            detail={"rounds": crashes, "lease_s": sizes.lease_s},
        ),
    ]


# --- the table -----------------------------------------------------------------------------

SECTIONS: dict[str, tuple[str, Target, Callable[[Suite], list[Row]]]] = {
    "P1": ("service vs raw pypdfium2", Target("ratio", ">=", 1.0), p1),
    "P2": ("service vs LangChain, kreuzberg", Target("ratio", ">=", 20), p2),
    "P3": ("chunker vs LangChain's splitter", Target("ratio", ">=", 1.5), p3),
    "P4": ("peak RSS, 5,000 vs 10 pages", Target("ratio", "<=", 1.3), p4),
    "P5": ("small tasks", Target("measured", "<=", 10), p5),
    "P6": ("pause latency, crash recovery", Target("measured", "<", 0.5), p6),
    "P7": ("2 vs 1 worker processes", Target("ratio", ">=", 1.8), p7),
    "P8": ("long PDF vs raw pypdfium2", Target("ratio", ">=", 1.3), p8),
}


def _fmt(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    digits = 3 if abs(x) < 1 else 2 if abs(x) < 100 else 1 if abs(x) < 1000 else 0
    return f"{x:,.{digits}f}{unit}"


def table(rows: list[Row], title: str) -> Table:
    out = Table(title=title, show_lines=False)
    for col in ("", "what", "measured", "baseline", "ratio", "target", "met", "note"):
        out.add_column(col, justify="right" if col in ("measured", "baseline", "ratio") else "left")
    for row in rows:
        met = {True: "[green]yes[/green]", False: "[red]no[/red]", None: "-"}[row.met]
        baseline = (
            f"{_fmt(row.baseline)} ({row.baseline_what})" if row.baseline is not None else "-"
        )
        out.add_row(
            row.id,
            row.what,
            f"{_fmt(row.measured)} {row.unit}",
            baseline,
            _fmt(row.ratio, "x"),
            row.target.text() + ("" if row.target.on == "ratio" else f" {row.unit}"),
            met,
            row.note,
        )
    return out


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def meta(quick: bool, only: list[str]) -> dict[str, Any]:
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": git_describe(),
        "command": " ".join([".venv/bin/python -m bench.perf", *sys.argv[1:]]),
        "mode": "quick" if quick else "full",
        "rows": only,
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "versions": {
            p: _version(p)
            for p in (
                "pypdfium2",
                "langchain-community",
                "langchain-text-splitters",
                "pypdf",
                "kreuzberg",
            )
        },
    }


def run_sections(suite: Suite, only: list[str], deadline: float) -> list[Row]:
    """Each section under its own time limit (and the run's): a section that fails or
    overruns gives an error row, and the next one still runs while the run has time."""
    rows: list[Row] = []
    for index, key in enumerate(only):
        what, target, measure = SECTIONS[key]
        started = time.monotonic()
        left = deadline - started
        if left < 1:
            rows.extend(
                failed_row(k, SECTIONS[k][0], SECTIONS[k][1], "not run: no time left")
                for k in only[index:]
            )
            break
        limit = min(suite.sizes.section_limit_s, left)
        signal.alarm(max(1, int(limit)))
        try:
            got = measure(suite)
        except Overtime:
            got = [failed_row(key, what, target, f"ran past its {limit:.0f} s limit")]
        except Exception as exc:  # noqa: BLE001 - one row failing does not lose the others
            got = [failed_row(key, what, target, f"{type(exc).__name__}: {exc}")]
        finally:
            signal.alarm(0)
        for row in got:
            row.detail.setdefault("section_seconds", round(time.monotonic() - started, 1))
        rows.extend(got)
    return rows


def run(args: argparse.Namespace, console: Console, timeout: int) -> None:
    sizes = QUICK if args.quick else FULL
    only = [r.strip().upper() for r in args.only.split(",")] if args.only else list(ROWS)
    unknown = [r for r in only if r not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; known: {', '.join(ROWS)}")
    info = meta(args.quick, only)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="knowra-perf-") as tmp:
        suite = Suite(sizes, (args.corpus or default_corpus()).resolve(), Path(tmp), console)
        rows = run_sections(suite, only, started + timeout)
        corpus: dict[str, Any] = {"dir": str(suite.corpus_dir)}
        if "_corpus" in suite.__dict__:
            corpus |= {"files": {t.pdf.name: t.pdf.pages for t in suite.texts}}
            corpus |= {"skipped": suite.skipped}
    info["seconds"] = round(time.monotonic() - started, 1)
    info["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result = {"meta": info, "corpus": corpus, "rows": [r.to_dict() for r in rows]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    title = (
        f"bench.perf ({info['mode']}), commit {info['commit']}, nproc {info['nproc']}, "
        f"load {info['loadavg_at_start'][0]} -> {info['loadavg_at_end'][0]}, "
        f"{info['seconds']:.0f} s"
    )
    console.print(table(rows, title))
    console.print(f"results written to {args.out}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--only", help=f"comma-separated rows among {','.join(ROWS)}")
    parser.add_argument("--quick", action="store_true", help="every row on small inputs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results")
    parser.add_argument("--corpus", type=Path, default=None, help="folder searched for *.pdf")
    parser.add_argument(
        "--timeout", type=int, default=None, help="seconds for the whole run [1800; quick 600]"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.out = args.out.resolve()
    timeout = args.timeout or (QUICK if args.quick else FULL).timeout_s
    console = Console(width=None if sys.stdout.isatty() else 200)
    quiet_libraries()
    with bounded(timeout + 120):  # SIGTERM unwinds too; sections have their own alarms
        run(args, console, timeout)


def quiet_libraries() -> None:
    """pypdf logs every font it cannot fully decode, langchain-community warns that it is
    being retired: neither says anything about speed."""
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


if __name__ == "__main__":
    main()
