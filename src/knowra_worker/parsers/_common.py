"""Helpers shared by the parsers: error translation, text clean-up, grouping blocks into units.

Flow formats (text, Markdown, HTML, DOCX, CSV, ...) have no natural pages, so their unit is a
bounded run of blocks cut deterministically from one pass over the document: the same file
always gives the same units, which is what lets a resumed task skip the units before its
checkpoint and produce exactly the chunks an uninterrupted run produces.
"""

from __future__ import annotations

import io
import math
import os
import re
import signal
import threading
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from billiard.exceptions import SoftTimeLimitExceeded

from knowra_worker.document import Block, BlockKind, Unit
from knowra_worker.errors import (
    CorruptFile,
    FileNotFound,
    KnowraError,
    SourceIOError,
)
from knowra_worker.parsers.base import BaseDocument

_MAX_DETAIL = 200


def describe_exception(exc: BaseException) -> str:
    """A short, one-line description of a library exception for an error message."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    if len(detail) > _MAX_DETAIL:
        detail = detail[: _MAX_DETAIL - 3] + "..."
    return detail


def io_error(exc: OSError) -> KnowraError:
    """The Knowra error for an OSError met while reading the source file."""
    if isinstance(exc, FileNotFoundError):
        return FileNotFound(f"the file no longer exists: {exc.filename or exc}")
    return SourceIOError(f"cannot read the file: {exc.strerror or describe_exception(exc)}")


def file_size(path: Path) -> int:
    """The file's size in bytes; SourceIOError (or FileNotFound) when it cannot be read."""
    try:
        return path.stat().st_size
    except OSError as exc:
        raise io_error(exc) from exc


@contextmanager
def deferred_soft_limit() -> Iterator[None]:
    """Hold the soft time limit (SIGUSR1, as billiard sends it) back for the block: its
    handler is swapped for one that only notes the signal, and the real one runs when the
    block ends. (Masking the signal would not do: any other thread may take it, and Python
    then runs the handler in the main thread at once.) For native code that must not be
    interrupted half-way (see pdf.pdfium_section); only the main thread handles signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[tuple[int, FrameType | None]] = []

    def note(signum: int, frame: FrameType | None) -> None:
        pending.append((signum, frame))

    previous = signal.signal(signal.SIGUSR1, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGUSR1, previous)
        if pending and callable(previous):
            previous(*pending[0])
        elif pending and previous == signal.SIG_DFL:
            os.kill(os.getpid(), signal.SIGUSR1)


@contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Turn anything a parsing library raises into a KnowraError.

    `what` names the format for the message, e.g. "DOCX file" gives "not a valid DOCX file:
    ...". Knowra errors and the worker's soft time limit pass through, OSError becomes
    SourceIOError (FileNotFound when the file vanished), anything else becomes CorruptFile.
    """
    try:
        yield
    except (KnowraError, SoftTimeLimitExceeded):
        raise  # ours already, or the worker's time limit: not the file's fault
    except OSError as exc:
        raise io_error(exc) from exc
    except RecursionError as exc:
        raise CorruptFile(f"not a valid {what}: structure nested too deeply") from exc
    except Exception as exc:  # noqa: BLE001 - library errors are varied and undocumented
        raise CorruptFile(f"not a valid {what}: {describe_exception(exc)}") from exc


def rewritten_package(
    archive: zipfile.ZipFile, rewrite: Callable[[str, bytes], bytes]
) -> io.BytesIO:
    """A copy of a ZIP package in memory, each entry's bytes passed through
    `rewrite(name, data)`: how an OOXML variant (template, macro-enabled, Strict) is given the
    content types and namespaces its library reads."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as converted:
        for info in archive.infolist():
            converted.writestr(info.filename, rewrite(info.filename, archive.read(info)))
    buffer.seek(0)
    return buffer


def clark(namespaces: dict[str, str], tag: str) -> str:
    """Clark notation of a prefixed XML name: "w:p" -> "{http://...}p"."""
    prefix, local = tag.split(":")
    return f"{{{namespaces[prefix]}}}{local}"


def size_level(ratio: float, least: float) -> int:
    """A heading level from how much larger than the body text a line's type is: 1 from
    1.8 times, 2 from 1.5 times, 3 from `least`, else 0 (not a heading by its size)."""
    if ratio >= 1.8:
        return 1
    if ratio >= 1.5:
        return 2
    return 3 if ratio >= least else 0


# --- text clean-up ---------------------------------------------------------------------

# C0/C1 controls except tab and newline, plus the non-characters pdfium and broken
# encoders leave behind.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffe\uffff]")
_SPACE_RE = re.compile(r"\s+")
_INLINE_SPACE_RE = re.compile(r"[^\S\n]+")


def strip_controls(text: str) -> str:
    """Remove control characters other than tab and newline (\\r is expected gone already)."""
    return _CONTROL_RE.sub("", text)


def collapse_spaces(text: str) -> str:
    """Collapse every run of whitespace, newlines included, to one space; strip the ends."""
    return _SPACE_RE.sub(" ", strip_controls(text)).strip()


def collapse_inline_spaces(text: str) -> str:
    """Without control characters, whitespace runs within lines collapsed, single line
    breaks kept, blank lines dropped."""
    lines = (_INLINE_SPACE_RE.sub(" ", line).strip() for line in strip_controls(text).split("\n"))
    return "\n".join(line for line in lines if line)


# --- grouping blocks into units --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnitLimits:
    """How big a unit of a flow format may grow.

    A unit closes before the block that would take it over `max_chars` or `max_blocks`, and
    before a heading once it holds at least `section_chars`, so that units follow sections
    where the document has them, and, with `table_per_unit`, before a second TABLE block. A
    single block longer than `max_chars` is split.
    """

    max_chars: int = 32_000
    max_blocks: int = 100
    section_chars: int = 8_000
    table_per_unit: bool = False


def split_oversized(block: Block, max_chars: int) -> Iterator[Block]:
    """Split a block longer than `max_chars` at line breaks, else spaces, else anywhere."""
    text = block.text
    while len(text) > max_chars:
        cut = text.rfind("\n", 0, max_chars + 1)
        if cut <= 0:
            cut = text.rfind(" ", 0, max_chars + 1)
        if cut <= 0:
            cut = max_chars
        head, text = text[:cut].rstrip(), text[cut:].lstrip()
        if head:
            yield Block(block.kind, head, block.page, block.level)
    if text:
        yield Block(block.kind, text, block.page, block.level)


def _bounded(blocks: Iterable[Block], max_chars: int) -> Iterator[Block]:
    for block in blocks:
        if len(block.text) > max_chars:
            yield from split_oversized(block, max_chars)
        elif block.text:
            yield block


def group_units(blocks: Iterable[Block], limits: UnitLimits) -> Iterator[Unit]:
    """Cut a block stream into units; yields at least one (possibly empty) unit."""
    current: list[Block] = []
    chars = 0
    index = 0
    for block in _bounded(blocks, limits.max_chars):
        if current and _must_cut(current, chars, block, limits):
            yield Unit(index, current)
            index += 1
            current, chars = [], 0
        current.append(block)
        chars += len(block.text)
    if current or index == 0:
        yield Unit(index, current)


def _must_cut(current: list[Block], chars: int, block: Block, limits: UnitLimits) -> bool:
    if chars + len(block.text) > limits.max_chars or len(current) >= limits.max_blocks:
        return True
    if block.kind is BlockKind.TABLE and limits.table_per_unit:
        return any(b.kind is BlockKind.TABLE for b in current)
    return block.kind is BlockKind.HEADING and chars >= limits.section_chars


def estimate_units(size: int, chars_per_unit: float) -> int:
    """An estimate (>= 1) of how many units `size` bytes of source make."""
    return max(1, math.ceil(size / max(chars_per_unit, 1.0)))


class FlowDocument(BaseDocument):
    """A document whose units are bounded runs of blocks from one pass over the source.

    Subclasses implement `iter_blocks` (a fresh pass over the whole document each call) and
    set `format_label` (for error messages) and `limits`. `units_total` starts as an estimate
    and becomes exact once a pass has run to the end.
    """

    unit_name = "section"
    format_label = "document"
    limits = UnitLimits()

    def __init__(self, mime_type: str, units_estimate: int) -> None:
        self.mime_type = mime_type
        self.units_total = max(1, units_estimate)
        self.units_total_exact = False
        # what could not be read, appended while blocks are read: it goes to the unit
        # being built (subclasses hand this list to their readers)
        self.warnings: list[str] = []

    def iter_blocks(self) -> Iterator[Block]:
        raise NotImplementedError

    def units(self, start: int = 0) -> Iterator[Unit]:
        with translate_errors(self.format_label):
            count = 0
            self.warnings.clear()
            for unit in group_units(self.iter_blocks(), self.limits):
                unit.warnings.extend(self.warnings)
                self.warnings.clear()
                count += 1
                if not self.units_total_exact and unit.index + 1 >= self.units_total:
                    self.units_total = unit.index + 2  # still going: keep the estimate ahead
                if unit.index >= start:
                    yield unit
            self.units_total = count
            self.units_total_exact = True
