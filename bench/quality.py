"""Word-level fidelity of the extracted text against the corpus's ground-truth Markdown.

    .venv/bin/python -m bench.quality [--corpus DIR] [--formats pdf,docx,...]
                                      [--out bench/results/quality.json] [--timeout S] [--jobs N]

For every document of the corpus that has a ground truth (`<set>/sources/<file>` beside
`<set>/groundtruth/<file>.md`, or `<stem>.md` for the PDFs), in one run:
- ours: the chunks of `parse_file(path, 4000, chunk_overlap=0)` joined in order (no overlap,
  so no word is counted twice);
- the plain library of the format (pypdfium2, python-docx, python-pptx, openpyxl), as a
  program calling it directly would get it;
- markitdown, the converter most RAG pipelines start from.
Each text and the ground truth go through the same tokenizer (`words`), and precision,
recall and F1 are computed on the two bags of words. Glued words (two neighbouring words of
the ground truth that come out as one token) are counted apart: they cost retrieval even
when F1 hides them. Every extraction runs in a worker process with a time limit, and with
sockets refused, so a pathological file cannot hang the run and no converter can fetch
anything. See bench/README.md for how to read the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import importlib
import importlib.util
import json
import multiprocessing as mp
import platform
import queue
import re
import statistics
import subprocess
import sys
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
DEFAULT_CORPUS = HERE.parents[2] / "shared" / "corpus"
DEFAULT_OUT = REPO / "bench" / "results" / "quality.json"

CHUNK_SIZE = 4000
DOC_TIMEOUT_S = 60.0
WORKER_START_S = 60.0  # spawning a worker and importing the libraries
GLUED_EXAMPLES = 8

# File extension -> format name, for the formats the service reads or is to read.
FORMATS: dict[str, str] = {
    "pdf": "pdf",
    "docx": "docx",
    "docm": "docx",
    "html": "html",
    "htm": "html",
    "xhtml": "html",
    "pptx": "pptx",
    "pptm": "pptx",
    "xlsx": "xlsx",
    "xlsm": "xlsx",
    "md": "md",
    "markdown": "md",
    "csv": "csv",
    "tsv": "csv",
    "odt": "odt",
    "ods": "ods",
    "odp": "odp",
    "epub": "epub",
    "rtf": "rtf",
    "eml": "eml",
    "txt": "txt",
    **{ext: "image" for ext in ("png", "jpg", "jpeg", "tif", "tiff", "bmp", "webp")},
}
OURS, MARKITDOWN = "ours", "markitdown"
PLAIN_BY_FORMAT = {
    "pdf": "pypdfium2",
    "docx": "python-docx",
    "pptx": "python-pptx",
    "xlsx": "openpyxl",
}


# --- words -----------------------------------------------------------------------------------

# Markdown and HTML syntax that carries no words of the document. Everything else that is
# not a word character (`#`, `|`, `-`, `*`, `_`, `>`, backslash escapes, table rules) falls
# away in the tokenizer itself.
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_LINK = re.compile(r"!?\[([^\[\]]*)\]\((?:[^()\s]|\([^()\s]*\))*(?:\s+\"[^\"]*\")?\s*\)")
_TASK_BOX = re.compile(r"(^|[\s|])((?:[-*+]|\d+[.)])[ \t]+)\[[ xX]\](?=\s)", re.MULTILINE)
_FENCE = re.compile(r"^[ \t]*(?:```|~~~)[^\n]*$", re.MULTILINE)
# Scripts written without spaces between words: each character is a word of its own.
_TATWEEL = {0x0640: None}  # Arabic elongation: typography, not spelling
_CJK = re.compile(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f])")


@lru_cache(maxsize=1)
def _word_pattern() -> re.Pattern[str]:
    """Letters, digits and combining marks (`\\w` alone would cut "हिंदी" or vowelled Arabic
    at every mark); the underscore is not a word character (it is Markdown emphasis)."""
    marks = "".join(
        re.escape(chr(cp))
        for cp in range(0x300, 0x20000)
        if unicodedata.category(chr(cp)).startswith("M")
    )
    return re.compile(rf"(?:[^\W_]|[{marks}])+")


def strip_markdown(text: str) -> str:
    """The visible text of Markdown (or plain text, unchanged but for look-alikes of it):
    link and image targets, task-list boxes (`- [x]`), HTML comments and tags, and fence
    info strings removed."""
    text = _TASK_BOX.sub(r"\1\2", _HTML_COMMENT.sub(" ", text))
    previous = None
    while previous != text:  # [![alt](img)](url) needs two passes
        previous, text = text, _LINK.sub(r" \1 ", text)
    text = _FENCE.sub(" ", text)
    text = _HTML_TAG.sub(" ", text)
    return html.unescape(text)


def words(text: str) -> list[str]:
    """The document's words in order: Markdown stripped, NFKC (ligatures, full-width forms
    and Arabic presentation forms to plain letters), tatweel dropped, case-folded, Unicode
    word runs."""
    text = unicodedata.normalize("NFKC", strip_markdown(text)).casefold().translate(_TATWEEL)
    return _word_pattern().findall(_CJK.sub(r" \1 ", text))


@dataclass
class Score:
    precision: float
    recall: float
    f1: float
    words: int  # words of the extracted text
    glued: int  # distinct glued tokens
    glued_examples: list[str] = field(default_factory=list)


def score(truth: list[str], ours: list[str]) -> Score:
    """Precision, recall and F1 on bags of words (Counter intersection), and glued words."""
    want, got = Counter(truth), Counter(ours)
    common = sum((want & got).values())
    precision = common / len(ours) if ours else 0.0
    recall = common / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if common else 0.0
    glued = glued_words(truth, want, got)
    return Score(precision, recall, f1, len(ours), len(glued), glued[:GLUED_EXAMPLES])


def glued_words(truth: list[str], want: Counter[str], got: Counter[str]) -> list[str]:
    """Tokens of ours that are two neighbouring ground-truth words run together (and not a
    word of the ground truth themselves), e.g. "polynesiansettlers". A token of digits only
    is left out: "2019" + "120" -> "2019120" is more often a coincidence than a glue."""
    seen: dict[str, None] = {}
    for first, second in zip(truth, truth[1:], strict=False):
        joined = first + second
        if got[joined] and not want[joined] and not joined.isdigit():
            seen[joined] = None
    return list(seen)


# --- documents ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    name: str  # relative to the corpus
    fmt: str
    path: Path
    truth: Path


def ground_truth_of(source: Path, truth_dir: Path) -> Path | None:
    """`<file>.md`, or `<stem>.md` when the stem has no extension of its own (docling names
    its PDF ground truth so; `x.odt.pdf` is a rendering of `x.odt`, whose truth it is not)."""
    exact = truth_dir / f"{source.name}.md"
    if exact.is_file():
        return exact
    stem = truth_dir / f"{source.stem}.md"
    return stem if not Path(source.stem).suffix and stem.is_file() else None


def discover(corpus: Path, formats: set[str]) -> list[Sample]:
    samples = []
    for truth_dir in sorted(corpus.rglob("groundtruth")):
        sources = truth_dir.parent / "sources"
        for source in sorted(sources.iterdir()) if sources.is_dir() else []:
            fmt = FORMATS.get(source.suffix.lower().lstrip("."))
            truth = ground_truth_of(source, truth_dir) if fmt in formats else None
            if fmt and truth:
                samples.append(Sample(str(source.relative_to(corpus)), fmt, source, truth))
    return samples


# --- extractors (run in the worker processes) ---------------------------------------------


def extract_ours(path: Path) -> str:
    from knowra_worker.pipeline import parse_file

    texts = [r["text"] for _d, _u, records in parse_file(path, CHUNK_SIZE, 0) for r in records]
    return "\n\n".join(texts)


def extract_pypdfium2(path: Path) -> str:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    try:
        return "\n".join(page.get_textpage().get_text_range() for page in pdf)
    finally:
        pdf.close()


def extract_python_docx(path: Path) -> str:
    import docx

    return "\n".join(p.text for p in docx.Document(str(path)).paragraphs)


def extract_python_pptx(path: Path) -> str:
    import pptx

    deck = pptx.Presentation(str(path))
    return "\n".join(
        shape.text_frame.text
        for slide in deck.slides
        for shape in slide.shapes
        if shape.has_text_frame
    )


def extract_openpyxl(path: Path) -> str:
    import openpyxl

    book = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    try:
        return "\n".join(_sheet_lines(book))
    finally:
        book.close()


def _sheet_lines(book: Any) -> Iterable[str]:
    for sheet in book.worksheets:
        for row in sheet.iter_rows(values_only=True):
            yield " ".join(str(v) for v in row if v is not None)


_markitdown: Any = None


def extract_markitdown(path: Path) -> str:
    global _markitdown
    if _markitdown is None:
        from markitdown import MarkItDown  # the `bench` extra

        _markitdown = MarkItDown(enable_plugins=False)
    return str(_markitdown.convert(str(path)).text_content)


def warm_up() -> None:
    """Import the extractors' libraries once per worker, before the first document, so
    that no document's time (nor its time limit) pays for them. What fails to import here
    fails again, and is reported, with the first document that needs it."""
    for module in ("docx", "openpyxl", "pptx", "pypdfium2", "knowra_worker.pipeline"):
        with contextlib.suppress(Exception):
            importlib.import_module(module)
    with contextlib.suppress(Exception):
        extract_markitdown(Path(__file__))  # builds the converter once


EXTRACTORS: dict[str, Callable[[Path], str]] = {
    OURS: extract_ours,
    "pypdfium2": extract_pypdfium2,
    "python-docx": extract_python_docx,
    "python-pptx": extract_python_pptx,
    "openpyxl": extract_openpyxl,
    MARKITDOWN: extract_markitdown,
}


class NetworkRefused(OSError):
    """Raised by every socket connect in a worker: extraction must work offline."""


def refuse_network() -> None:
    """No converter may reach the network: a connect or a name lookup fails at once, and
    the document is reported with the code NETWORK_ATTEMPT."""
    import socket

    def refuse(*_args: object, **_kwargs: object) -> Any:
        raise NetworkRefused("network access attempted")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign]
    socket.getaddrinfo = refuse
    socket.create_connection = refuse


def error_code(exc: BaseException) -> str:
    from knowra_worker.errors import KnowraError

    if isinstance(exc, KnowraError):
        return exc.code
    if isinstance(exc, NetworkRefused):
        return "NETWORK_ATTEMPT"
    return type(exc).__name__


def worker_main(conn: Connection) -> None:
    """Serve extraction requests until the pipe closes: (extractor, path) -> result."""
    refuse_network()
    warm_up()
    while True:
        try:
            name, path = conn.recv()
        except EOFError:
            return
        started = time.perf_counter()
        try:
            text, code, message = EXTRACTORS[name](Path(path)), None, None
        except Exception as exc:  # reported per document, never fatal for the run
            text, code, message = "", error_code(exc), str(exc)[:300]
        conn.send((text, code, message, time.perf_counter() - started))


# --- running ---------------------------------------------------------------------------------


@dataclass
class Extraction:
    text: str
    error: str | None  # an error code, "TIMEOUT" or None
    message: str | None
    seconds: float


class Worker:
    """One spawned process (a clean interpreter, not a fork of this one), killed and
    replaced when an extraction overruns its time."""

    def __init__(self) -> None:
        self.proc: Any = None
        self.conn: Connection | None = None
        self.fresh = True  # the next answer includes the process's start-up

    def run(self, name: str, path: Path, timeout: float) -> Extraction:
        if self.proc is None or not self.proc.is_alive():
            self._start()
        assert self.conn is not None
        self.conn.send((name, str(path)))
        if not self.conn.poll(timeout + (WORKER_START_S if self.fresh else 0.0)):
            self.stop()
            return Extraction("", "TIMEOUT", f"no answer within {timeout:.0f} s", timeout)
        self.fresh = False
        try:
            return Extraction(*self.conn.recv())
        except EOFError:
            self.stop()
            return Extraction("", "WORKER_DIED", "the extraction process died", 0.0)

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.fresh = True

    def stop(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()
        self.proc = self.conn = None


@dataclass
class Job:
    sample: Sample
    extractor: str


def extractors_for(fmt: str) -> list[str]:
    plain = PLAIN_BY_FORMAT.get(fmt)
    return [OURS, *([plain] if plain else []), MARKITDOWN]


def run_all(
    samples: list[Sample], jobs: int, timeout: float, progress: Callable[[str], None]
) -> dict[tuple[str, str], Extraction]:
    """Every (document, extractor) pair, on `jobs` worker processes."""
    todo: queue.Queue[Job] = queue.Queue()
    for sample in samples:
        for name in extractors_for(sample.fmt):
            todo.put(Job(sample, name))
    results: dict[tuple[str, str], Extraction] = {}

    def drain() -> None:
        worker = Worker()
        try:
            while True:
                try:
                    job = todo.get_nowait()
                except queue.Empty:
                    return
                result = worker.run(job.extractor, job.sample.path, timeout)
                results[job.sample.name, job.extractor] = result
                progress(f"{job.sample.name} [{job.extractor}] {result.error or 'ok'}")
        finally:
            worker.stop()

    threads = [threading.Thread(target=drain) for _ in range(max(1, jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


# --- scoring and report --------------------------------------------------------------------


@dataclass
class DocResult:
    name: str
    fmt: str
    truth_words: int
    scores: dict[str, dict[str, Any]]


def score_document(sample: Sample, extractions: dict[tuple[str, str], Extraction]) -> DocResult:
    truth = words(sample.truth.read_text(encoding="utf-8", errors="replace"))
    scores = {}
    for name in extractors_for(sample.fmt):
        ext = extractions[sample.name, name]
        entry = asdict(score(truth, words(ext.text)))
        entry.update(error=ext.error, message=ext.message, seconds=round(ext.seconds, 3))
        scores[name] = entry
    return DocResult(sample.name, sample.fmt, len(truth), scores)


def _stats(docs: list[DocResult], name: str) -> dict[str, Any] | None:
    rows = [d.scores[name] for d in docs if name in d.scores]
    if not rows:
        return None
    f1s = [r["f1"] for r in rows]
    return {
        "documents": len(rows),
        "failed": sum(1 for r in rows if r["error"]),
        "precision_mean": statistics.fmean(r["precision"] for r in rows),
        "recall_mean": statistics.fmean(r["recall"] for r in rows),
        "f1_mean": statistics.fmean(f1s),
        "f1_median": statistics.median(f1s),
        "glued": sum(r["glued"] for r in rows),
    }


def summarize(docs: list[DocResult]) -> dict[str, dict[str, Any]]:
    """Per format and overall: for each extractor, means and medians over documents."""
    groups = {fmt: [d for d in docs if d.fmt == fmt] for fmt in sorted({d.fmt for d in docs})}
    groups["overall"] = docs
    summary: dict[str, dict[str, Any]] = {}
    for group, members in groups.items():
        names = [OURS, *sorted(set(PLAIN_BY_FORMAT.values())), MARKITDOWN]
        stats = {name: _stats(members, name) for name in names}
        summary[group] = {name: s for name, s in stats.items() if s}
    return summary


def _f(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def summary_table(summary: dict[str, dict[str, Any]]) -> Table:
    table = Table(title="Word F1 against the ground truth (mean / median over documents)")
    for column in ("format", "docs", "ours F1", "ours P / R", "ours glued", "failed"):
        table.add_column(column, justify="left" if column == "format" else "right")
    for column in ("plain library F1", "markitdown F1", "markitdown glued"):
        table.add_column(column, justify="right")
    for group, stats in summary.items():
        ours, md = stats[OURS], stats.get(MARKITDOWN)
        plain = next((n for n in stats if n not in (OURS, MARKITDOWN)), None)
        table.add_row(
            group,
            str(ours["documents"]),
            f"{_f(ours['f1_mean'])} / {_f(ours['f1_median'])}",
            f"{_f(ours['precision_mean'])} / {_f(ours['recall_mean'])}",
            str(ours["glued"]),
            str(ours["failed"]),
            "—" if plain is None or group == "overall" else _plain_cell(plain, stats[plain]),
            "—" if md is None else f"{_f(md['f1_mean'])} / {_f(md['f1_median'])}",
            "—" if md is None else str(md["glued"]),
        )
    return table


def _plain_cell(name: str, stats: dict[str, Any]) -> str:
    return f"{name} {_f(stats['f1_mean'])} / {_f(stats['f1_median'])}"


def worst_table(docs: list[DocResult], count: int) -> Table:
    table = Table(title=f"The {count} documents where our F1 is lowest")
    for column in ("document", "words", "ours F1", "P", "R", "glued", "error", "best other"):
        table.add_column(column, justify="left" if column in ("document", "error") else "right")
    for doc in sorted(docs, key=lambda d: d.scores[OURS]["f1"])[:count]:
        ours = doc.scores[OURS]
        others = [(s["f1"], n) for n, s in doc.scores.items() if n != OURS]
        best_f1, best_name = max(others)
        table.add_row(
            doc.name,
            str(doc.truth_words),
            _f(ours["f1"]),
            _f(ours["precision"]),
            _f(ours["recall"]),
            str(ours["glued"]),
            ours["error"] or "",
            f"{best_name} {_f(best_f1)}",
        )
    return table


def failures(docs: list[DocResult]) -> list[str]:
    return [
        f"{doc.name} [{name}]: {s['error']} {s['message'] or ''}".rstrip()
        for doc in docs
        for name, s in doc.scores.items()
        if s["error"]
    ]


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def meta(args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    packages = ("knowra-worker", "pypdfium2", "python-docx", "python-pptx", "openpyxl")
    spec = importlib.util.find_spec("knowra_worker")
    return {
        "commit": commit or None,
        "package": str(Path(spec.origin).parent) if spec and spec.origin else None,
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in (*packages, "markitdown")},
        "corpus": str(args.corpus),
        "chunk_size": CHUNK_SIZE,
        "chunk_overlap": 0,
        "timeout_s": args.timeout,
        "jobs": args.jobs,
        "seconds": round(seconds, 1),
    }


# --- command line --------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument(
        "--formats",
        default=",".join(sorted(set(FORMATS.values()))),
        help="comma-separated format names (default: every format the service reads)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--timeout", type=float, default=DOC_TIMEOUT_S, help="per extraction")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--worst", type=int, default=15, help="rows of the lowest-F1 table")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser.parse_args(argv)


def _printer(console: Console) -> Callable[[str], None]:
    return lambda line: console.print(line, markup=False, highlight=False)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console, err = Console(width=None if sys.stdout.isatty() else 150), Console(stderr=True)
    formats = {f.strip() for f in args.formats.split(",") if f.strip()}
    unknown = formats - set(FORMATS.values())
    if unknown:
        err.print(f"unknown formats: {', '.join(sorted(unknown))}")
        return 2
    samples = discover(args.corpus, formats)
    if not samples:
        err.print(f"no document with a ground truth under {args.corpus}")
        return 1
    started = time.perf_counter()
    extractions = run_all(
        samples, args.jobs, args.timeout, (lambda _m: None) if args.quiet else _printer(err)
    )
    docs = [score_document(s, extractions) for s in samples]
    summary = summarize(docs)
    console.print(summary_table(summary))
    console.print(worst_table(docs, min(args.worst, len(docs))))
    for line in failures(docs):
        console.print(f"  failed: {line}", markup=False, highlight=False)
    report = {
        "meta": meta(args, time.perf_counter() - started),
        "summary": summary,
        "documents": [asdict(d) for d in docs],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    console.print(f"per-document results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
