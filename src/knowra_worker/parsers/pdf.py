"""PDF text layer through pypdfium2: one unit per page, blocks are the page's paragraphs.

pdfium gives a page's text as lines, each placed by its first and last characters' boxes.
From them (see `_pdf_layout` for the pure layout rules):
- running headers and footers are dropped: lines near the top or bottom edge whose text,
  page numbers aside, recurs on a fixed sample of pages read before the first page is
  given (so a run started at any page drops the same lines; the sampled pages are kept per
  process and served to whichever run or part of the file reaches them);
- ruled tables (`_pdf_tables`, from the page's path objects) become TABLE blocks with their
  cells row by row, and their text is not repeated as paragraphs;
- a page set in columns is read column after column, full-width lines kept in place;
- lines are grouped into paragraphs by layout: a vertical gap of more than half a line
  beyond the page's usual line spacing, a change of font size or of boldness, a jump back
  up the page, a bullet or a first-line indent (from the right in right-to-left text)
  starts a new paragraph; a word hyphenated at a line end is joined again;
- headings come from the outline (bookmark titles matched to text on their page, with the
  bookmark's depth as level), else from the font: clearly larger than the body text, or
  bold at body size on a page whose text is not bold;
- what pdfium's text gets wrong is put right per line: a reference mark raised, smaller or
  set apart from its word gets a space (`center1`), Arabic lam-alef ligatures come in
  logical order, right-to-left text stored in visual order is reversed, Arabic and Latin
  words never touch.
Without position data (rare), blank lines split paragraphs.

pdfium is not thread-safe: every call into it holds one module-wide lock, and each page and
its text page are closed as soon as their lines are out, so memory stays at one page.
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import functools
import itertools
import json
import logging
import re
import statistics
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knowra_worker.document import Block, BlockKind, Unit
from knowra_worker.errors import (
    CorruptFile,
    EmptyDocument,
    EncryptedFile,
    KnowraError,
    PermanentError,
    SourceIOError,
)
from knowra_worker.parsers._common import (
    deferred_soft_limit,
    describe_exception,
    io_error,
    size_level,
    strip_controls,
    translate_errors,
)
from knowra_worker.parsers._ocr import needs_ocr, ocr_page
from knowra_worker.parsers._pdf_layout import (
    EDGE_SAMPLE_PAGES,
    Line,
    PageLines,
    drop_edges,
    edge_lines,
    has_arabic,
    join_lines,
    logical_order,
    reading_order,
    repeated_edges,
    sample_pages,
    space_scripts,
)
from knowra_worker.parsers._pdf_tables import Box, Char, CharBoxes, Table, find_tables
from knowra_worker.parsers._pdfium_calls import address, calls
from knowra_worker.parsers._tables import rows_block
from knowra_worker.parsers.base import BaseDocument, Content, Format
from knowra_worker.parsers.detect import PDF
from knowra_worker.paths import signature

if TYPE_CHECKING:  # pypdfium2 is imported where a file is opened, not with this module
    import pypdfium2 as pdfium

PDFIUM_LOCK = threading.RLock()
_FACTS_KEPT = 4  # documents whose running headers and outline a process remembers
_FACTS_VERSION = 1  # of the facts' JSON handed to other processes


@dataclass(frozen=True, slots=True)
class _Facts:
    """What is decided once from a whole document, and kept per process for every run and
    part of it: its running heads, its outline, and the pages read to find the running
    heads (served to whichever run or part reaches them, not read again)."""

    edges: frozenset[str]
    outline: dict[int, tuple[tuple[int, str], ...]]
    sampled: dict[int, PageLines]


_FACTS: dict[tuple[str, str], _Facts] = {}  # by path and signature


@contextlib.contextmanager
def pdfium_section() -> Iterator[None]:
    """pdfium's lock, with the worker's soft time limit held back until pdfium is done.

    Celery raises the limit from a signal handler, between any two bytecodes: inside a
    finally that closes a page, it would leave pdfium's objects half freed, and the next
    document of the process would read them as damage (CORRUPT_FILE). The signal waits and
    is raised right after the section (see _common.deferred_soft_limit).
    """
    with PDFIUM_LOCK, deferred_soft_limit():
        yield


log = logging.getLogger(__name__)

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_BULLET = re.compile(
    r"^([\u2022\u25cf\u25cb\u25e6\u25aa\u25a0\u2023\u2043\u2219\u00b7*\u2013-]\s|\d{1,2}[.)]\s)"
)
_SECTION_NUMBER = re.compile(r"(\d+(?:\.\d+)*)\.?\s+\S")
_SOFT_HYPHEN = "\ufffe"
_SOFT_BREAK = re.compile(r"(\w+)\ufffe(\w+)")
_BOLD_NAME = re.compile(rb"bold|black|heavy|demi|(?:cm|sf|ec|lm)bx|medi(?!um)")
_NOT_WORD = re.compile(r"[\W_]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffe\uffff]")  # as strip_controls
_DIGITS = re.compile(r"\d+")
_ALEF_LAM = re.compile("[\u0622\u0623\u0625\u0627]\u0644")
_ARABIC_WORD = re.compile("[\u0621-\u064a\u066e-\u06d3]{2,}")
_PARAGRAPH_GAP = 0.5  # of a line's height, beyond the page's usual leading
_MAX_LEADING = 1.5  # of a line's height: a larger usual gap is not line spacing
_FONT_CHANGE = 1.25  # ratio of line heights
_HEADING_RATIO = 1.3  # of the body text's line height
_HEADING_MAX_CHARS = 150
_HEADING_MAX_LINES = 2
_BOLD_HEADING_MAX_CHARS = 100
_BOLD_LEVEL = 4
_BOLD_TITLE_RATIO = 1.1  # bold and somewhat larger than the body text: a title
_MIN_BODY_CHARS = 200
_MAX_LEVEL = 9
_OUTLINE_MAX_DEPTH = 8
_OUTLINE_MAX_ITEMS = 20_000
_TITLE_SPREAD = 4  # a text this many times longer than a title's key cannot match it
_BOLD_WEIGHT = 600
_FORCE_BOLD = 1 << 18  # PDF font descriptor flag ForceBold
_MARK_SIZE = 0.85  # a mark's box height against its word's
_MARK_GAP = 0.25  # of the word's height: a gap pdfium did not turn into a space
_MARK_RAISE = 0.2  # of the word's height: a baseline raised like a superscript's
_SAME_BOX = 0.01  # points
_LEVEL = 0.01  # radians: a character's angle that is still horizontal text
_FONT_NAME_SIZE = 128
_TITLE_BYTES = 1024
_TITLE = ctypes.create_string_buffer(_TITLE_BYTES)  # used with PDFIUM_LOCK held
_FONT_NAME = ctypes.create_string_buffer(_FONT_NAME_SIZE)  # used with PDFIUM_LOCK held
_FONT_FLAGS = ctypes.c_int(0)  # likewise


class PdfDocument(BaseDocument):
    unit_name = "page"
    units_total_exact = True

    def __init__(self, path: Path, mime_type: str) -> None:
        self.mime_type = mime_type
        self._pdf: pdfium.PdfDocument | None = _load(path)
        self._key = (str(path), signature(path))
        self._own_facts: _Facts | None = None
        with pdfium_section():
            self.units_total = len(self._pdf)

    def units(self, start: int = 0) -> Iterator[Unit]:
        facts = self._facts()
        for index in range(max(0, start), self.units_total):
            page = facts.sampled.get(index) or self._page_lines(index)
            reason = needs_ocr(page)  # no usable text layer (a scan): read it by OCR
            if reason and (page.lines or self._has_images(index)):  # not a blank page
                yield ocr_page(self._pdf, index, reason, PDFIUM_LOCK)
                continue
            warnings = [f"page {index + 1}: {warning}" for warning in page.warnings]
            lines = reading_order(drop_edges(page, facts.edges))
            outline = facts.outline.get(index, ())
            yield Unit(index, _blocks(lines, page.tables or [], index + 1, outline), warnings)

    def _facts(self) -> _Facts:
        """The document's facts (see _Facts): decided when its pages are first asked for (a
        document opened for its page count reads none), from the whole document, so that
        every page reads alike whatever page a run starts at.

        Those of a document longer than its sample are kept per process, the most recently
        used first, for every run and part of it; a shorter document's sample is the whole
        document, read once whatever is kept, so its facts stay with the open document and
        never push a long one's out (a batch of short files between a long one's parts)."""
        if self._own_facts is not None:
            return self._own_facts
        remembered = self.units_total > EDGE_SAMPLE_PAGES
        with PDFIUM_LOCK:  # documents may be read from several threads
            facts = _FACTS.pop(self._key, None) if remembered else None
            if facts is not None:
                _FACTS[self._key] = facts  # now the most recently used
        if facts is None:
            if self._pdf is None:
                raise RuntimeError("the document is closed")
            with pdfium_section():
                outline = _outline(self._pdf)
            sampled = self._sample()
            edges = [[line.text for line in edge_lines(page)] for page in sampled.values()]
            running = repeated_edges(edges) if len(edges) >= 2 else frozenset()
            facts = _Facts(running, outline, sampled)
            if remembered:
                _remember(self._key, facts)
        self._own_facts = facts
        return facts

    def shared_facts(self) -> str:
        facts = self._facts()
        outline = {str(index): [list(item) for item in items]
                   for index, items in facts.outline.items()}  # fmt: skip
        return json.dumps({"v": _FACTS_VERSION, "edges": sorted(facts.edges), "outline": outline})

    def adopt_facts(self, facts: str) -> None:
        if self._own_facts is not None or self._key in _FACTS:
            return  # decided here already
        try:
            data = json.loads(facts)
            if data.get("v") != _FACTS_VERSION:
                return
            outline = {
                int(index): tuple((int(level), str(key)) for level, key in items)
                for index, items in data["outline"].items()
            }
            edges = frozenset(str(key) for key in data["edges"])
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.debug("facts not adopted: %s", exc)
            return
        self._own_facts = _Facts(edges, outline, {})
        if self.units_total > EDGE_SAMPLE_PAGES:
            _remember(self._key, self._own_facts)

    def close(self) -> None:
        pdf, self._pdf = self._pdf, None
        if pdf is not None:
            with pdfium_section():
                pdf.close()

    def _sample(self) -> dict[int, PageLines]:
        """A fixed sample of pages, spread over the document (a short one entirely), read
        whole: their edge bands tell the running headers and footers."""
        sampled = {}
        for index in sample_pages(self.units_total):
            try:
                sampled[index] = self._page_lines(index)
            except PermanentError as exc:  # an unreadable page says nothing about the others
                log.debug("page %d skipped while looking for running headers: %s", index + 1, exc)
                # (the run reads it again, and fails there). A transient error is raised: the
                # running heads must not depend on a moment's I/O trouble.
        return sampled

    def _has_images(self, index: int) -> bool:
        """Whether the page draws an image: a page without text, images or anything to read
        is blank, and is not worth loading the OCR engine for."""
        import pypdfium2.raw as pdfium_c

        if self._pdf is None:
            raise RuntimeError("the document is closed")
        with pdfium_section(), translate_errors(f"PDF (page {index + 1})"):
            page = self._pdf[index]
            try:
                images = page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=3)
                return next(iter(images), None) is not None
            finally:
                page.close()

    def _page_lines(self, index: int) -> PageLines:
        if self._pdf is None:
            raise RuntimeError("the document is closed")
        with pdfium_section(), translate_errors(f"PDF (page {index + 1})"):
            page = self._pdf[index]
            try:
                textpage = page.get_textpage()
                try:
                    return _read_page(page, textpage)
                finally:
                    textpage.close()
            finally:
                page.close()


def _remember(key: tuple[str, str], facts: _Facts) -> None:
    with PDFIUM_LOCK:
        _FACTS.pop(key, None)
        _FACTS[key] = facts
        while len(_FACTS) > _FACTS_KEPT:
            del _FACTS[next(iter(_FACTS))]


def forget_documents() -> None:
    """Drop what this process keeps of the documents it has read (their facts and sampled
    pages): what is read next is read afresh."""
    with PDFIUM_LOCK:
        _FACTS.clear()


def _load(path: Path) -> pdfium.PdfDocument:
    import pypdfium2 as pdfium

    with pdfium_section():
        try:
            pdf = pdfium.PdfDocument(path)
        except pdfium.PdfiumError as exc:
            raise _load_error(exc) from exc
        except OSError as exc:
            raise io_error(exc) from exc
        if len(pdf) == 0:  # pragma: no cover - pdfium refuses page-less files already
            pdf.close()
            raise EmptyDocument("the PDF has no pages")
    return pdf


def _load_error(exc: pdfium.PdfiumError) -> KnowraError:
    import pypdfium2.raw as pdfium_c

    code = exc.err_code
    if code == pdfium_c.FPDF_ERR_PASSWORD:
        return EncryptedFile(
            "the PDF is password-protected; remove the password and submit it again"
        )
    if code == pdfium_c.FPDF_ERR_SECURITY:
        return EncryptedFile("the PDF is encrypted with an unsupported security handler")
    if code == pdfium_c.FPDF_ERR_FILE:
        return SourceIOError("cannot read the file (pdfium reports a file access error)")
    if code == pdfium_c.FPDF_ERR_SUCCESS:
        return EmptyDocument("the PDF has no pages")
    return CorruptFile(f"not a valid PDF: {describe_exception(exc)}")


# --- the document as a whole (called with the lock held) ----------------------------------


def _outline(pdf: pdfium.PdfDocument) -> dict[int, tuple[tuple[int, str], ...]]:
    """The document's bookmarks by page index: (heading level, title key), in the outline's
    order (depth first, as a reader sees it). pdfium's functions are called directly (a
    file cut from a longer one may keep its thousands of bookmarks): a title is read, into
    one buffer, only for a bookmark that leads to a page."""
    import pypdfium2.raw as pdfium_c

    handle = pdf.raw
    by_page: dict[int, list[tuple[int, str]]] = {}
    get_dest, page_of = pdfium_c.FPDFBookmark_GetDest, pdfium_c.FPDFDest_GetDestPageIndex
    for count, (bookmark, depth) in enumerate(_bookmarks(handle)):
        if count >= _OUTLINE_MAX_ITEMS:
            break
        dest = get_dest(handle, bookmark)
        index = page_of(handle, dest) if dest else -1
        if index < 0:
            continue
        key = _title_key(_bookmark_title(bookmark))
        if key:
            by_page.setdefault(index, []).append((min(depth + 1, _MAX_LEVEL), key))
    return {index: tuple(items) for index, items in by_page.items()}


def _bookmarks(
    handle: Any, parent: Any = None, depth: int = 0, seen: set[int] | None = None
) -> Iterator[tuple[Any, int]]:
    """Every bookmark under `parent` with its depth, depth first, down to
    _OUTLINE_MAX_DEPTH; a bookmark met again (a cycle in a broken outline) ends its list."""
    import pypdfium2.raw as pdfium_c

    seen = set() if seen is None else seen
    bookmark = pdfium_c.FPDFBookmark_GetFirstChild(handle, parent)
    while bookmark:
        at = address(bookmark)
        if at in seen:
            log.debug("a bookmark cycle in the outline was cut")
            break
        seen.add(at)
        yield bookmark, depth
        if depth < _OUTLINE_MAX_DEPTH - 1:
            yield from _bookmarks(handle, bookmark, depth + 1, seen)
        bookmark = pdfium_c.FPDFBookmark_GetNextSibling(handle, bookmark)


def _bookmark_title(bookmark: Any) -> str:
    import pypdfium2.raw as pdfium_c

    size = pdfium_c.FPDFBookmark_GetTitle(bookmark, _TITLE, _TITLE_BYTES)
    if size > _TITLE_BYTES:  # longer than the buffer: read again into one that fits
        buffer = ctypes.create_string_buffer(size)
        pdfium_c.FPDFBookmark_GetTitle(bookmark, buffer, size)
        return buffer.raw[: size - 2].decode("utf-16-le", errors="replace")
    return _TITLE.raw[: max(size - 2, 0)].decode("utf-16-le", errors="replace")


def _title_key(text: str) -> str:
    return " ".join(_NOT_WORD.sub(" ", text.casefold()).split())


# --- a page's lines (called with the lock held) ------------------------------------------


def _read_page(page: pdfium.PdfPage, textpage: pdfium.PdfTextPage) -> PageLines:
    height = page.get_height()
    count = textpage.count_chars()
    if count <= 0:
        return PageLines([], height, [])
    text = textpage.get_text_range(0, count)
    # Positions are by char index; text offsets differ where pdfium left chars out.
    index = _CharIndex(textpage, len(text) != count)
    lines = _extract_lines(textpage, _soft_hyphens(text), index)
    warnings: list[str] = []
    try:
        tables = find_tables(page, textpage, height, _chars_near(textpage, text, index, lines))
    except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
        # an odd drawing the table finder cannot read: the page's text is still all there
        log.debug("table finder failed: %s", exc)
        tables, warnings = [], ["its ruled tables could not be read; their text is kept"]
    if tables:
        lines = _stand_in_tables(lines, tables, height, text)
    return PageLines(lines, height, [table.rows for table in tables], warnings)


def _extract_lines(textpage: pdfium.PdfTextPage, text: str, index: _CharIndex) -> list[Line]:
    """The page's lines, each with its box, size and boldness. The checks for what pdfium
    gets wrong (reference marks, right-to-left text, control characters) are made once on
    the page's text, and per line only where the page needs them. This is the parser's hot
    loop (every line of every page): pdfium's functions are looked up once per page, and
    each line's box comes from its first and last visible characters' (loose) boxes."""
    fixes, bold = _Fixes(text), _Bold(textpage)
    handle, get_box, mapped = address(textpage.raw), calls().loose_char_box, index.mapped
    box, box2 = _rects()
    at, at2 = ctypes.addressof(box), ctypes.addressof(box2)
    lines = []
    for start, end in _line_spans(text):
        raw = text[start:end]
        visible = fixes.apply(textpage, raw, start, index) if raw and not raw.isspace() else ""
        line = Line(visible, 0.0, 0.0, 0.0, 0.0, 0.0, False, False, -1, (start, end))
        lines.append(line)
        if not visible or visible.isspace():
            continue
        first = end - len(raw.lstrip())
        last = start + len(raw.rstrip()) - 1
        if mapped and ((first := index(first)) < 0 or (last := index(last)) < 0):
            continue
        if not (get_box(handle, first, at) and get_box(handle, last, at2)):
            continue
        left, bottom, right, top = box.left, box.bottom, box.right, box.top
        left2, bottom2, right2, top2 = box2.left, box2.bottom, box2.right, box2.top
        line.left = left if left < left2 else left2
        line.right = right if right > right2 else right2
        line.bottom = bottom if bottom < bottom2 else bottom2
        line.top = top if top > top2 else top2
        size = line.size = max(top - bottom, top2 - bottom2)
        line.placed = size > 0
        # only a short line can be a heading, or a bold one run into its paragraph
        if end - start <= _HEADING_MAX_CHARS:
            line.bold = bold(first) and bold(last)
    return lines


class _Fixes:
    """Which of the per-line text fixes a page needs, decided from the whole page's text."""

    def __init__(self, text: str) -> None:
        self.marks = _glued_marks(text)
        self.arabic = has_arabic(text)
        self.controls = _CONTROL.search(text) is not None

    def apply(self, textpage: pdfium.PdfTextPage, raw: str, start: int, index: _CharIndex) -> str:
        marks = self.marks
        if marks:  # those inside the line, as offsets into it
            first = bisect.bisect_left(marks, start)
            last = bisect.bisect_left(marks, start + len(raw), first)
            marks = [at - start for at in marks[first:last]]
        if marks or self.arabic:
            return _fix_text(textpage, raw, start, index, marks)
        return (strip_controls(raw) if self.controls else raw).rstrip()


def _glued_marks(text: str) -> list[int]:
    """Offsets of the digits that directly follow a letter (`center1`): maybe a reference
    mark that pdfium set against its word. Digit runs are few: found first, then each one's
    preceding character is looked at (a letter class scanned over the whole page is slow)."""
    marks = []
    for match in _DIGITS.finditer(text):
        at = match.start()
        if at and text[at - 1].isalnum() and not text[at - 1].isdecimal():
            marks.append(at)
    return marks


def _chars_near(
    textpage: pdfium.PdfTextPage, text: str, index: _CharIndex, lines: list[Line]
) -> CharBoxes:
    """The characters, with their boxes, of the lines that reach a table's area (a line's
    box is its first and last characters': a line's height of slack covers the others)."""

    def chars(box: Box, height: float) -> list[Char]:
        _, top, _, bottom = box
        low, high = height - bottom, height - top  # in PDF space, y upwards
        spans = [
            line.span
            for line in lines
            if not line.placed or (line.bottom - line.size <= high and line.top + line.size >= low)
        ]
        return _page_chars(textpage, text, index, spans)

    return chars


def _page_chars(
    textpage: pdfium.PdfTextPage, text: str, index: _CharIndex, spans: list[tuple[int, int]]
) -> list[Char]:
    """The visible characters of the given text spans, each with its box."""
    import pypdfium2.raw as pdfium_c

    left, bottom, right, top = (ctypes.c_double(0) for _ in range(4))
    boxes = [ctypes.byref(v) for v in (left, right, bottom, top)]
    get_box, handle = pdfium_c.FPDFText_GetCharBox, textpage.raw
    chars = []
    for start, end in spans:
        for offset in range(start, end):
            char = text[offset]
            if char.isspace() or (at := index(offset)) < 0:
                continue
            if get_box(handle, at, *boxes):
                chars.append(Char(offset, char, left.value, bottom.value, right.value, top.value))
    return chars


def _soft_hyphens(text: str) -> str:
    """pdfium joins a word broken at a line end and marks the break (U+FFFE, dropped later
    with the other controls). Where the word was a compound broken at its own hyphen
    (`Lucene-BM25`, or `dual-encoder` when the page writes it so elsewhere), the mark
    becomes a hyphen again; the text keeps its length, so offsets stay char indexes."""
    if _SOFT_HYPHEN not in text:
        return text
    chars = list(text)
    for match in _SOFT_BREAK.finditer(text):
        before, after = match.group(1), match.group(2)
        if after[0].isupper() or after[0].isdigit() or f"{before}-{after}" in text:
            chars[match.start(2) - 1] = "-"
    return "".join(chars)


class _CharIndex:
    """Text offsets to pdfium char indexes (the same unless pdfium left chars out)."""

    def __init__(self, textpage: pdfium.PdfTextPage, mapped: bool) -> None:
        self.textpage, self.mapped = textpage, mapped

    def __call__(self, offset: int) -> int:
        if not self.mapped:
            return offset
        import pypdfium2.raw as pdfium_c

        return int(pdfium_c.FPDFText_GetCharIndexFromTextIndex(self.textpage, offset))


def _line_spans(text: str) -> list[tuple[int, int]]:
    """Where each line of the page's text starts and ends (pdfium ends lines with CRLF;
    a lone CR or LF ends one too)."""
    lines = text.split("\r\n")
    if any("\r" in line or "\n" in line for line in lines):
        breaks = list(_LINE_BREAK.finditer(text))
        starts = [0, *(match.end() for match in breaks)]
        ends = [*(match.start() for match in breaks), len(text)]
        return list(zip(starts, ends, strict=True))
    spans, start = [], 0
    for line in lines:
        spans.append((start, start + len(line)))
        start += len(line) + 2
    return spans


class _Bold:
    """Whether a character's font is bold: a weight of 600 or more, or a font named bold
    (many fonts report no weight, TeX's report a wrong one): `Arial-BoldMT`,
    `NimbusRomNo9L-Medi`, `CMBX10`, `SFBX1000`."""

    def __init__(self, textpage: pdfium.PdfTextPage) -> None:
        fast = calls()
        self.handle = address(textpage.raw)
        self.get_weight, self.get_font = fast.font_weight, fast.font_info
        self.flags = _FONT_FLAGS
        self.name_at, self.flags_at = ctypes.addressof(_FONT_NAME), ctypes.addressof(_FONT_FLAGS)

    def __call__(self, index: int) -> bool:
        if self.get_weight(self.handle, index) >= _BOLD_WEIGHT:
            return True
        self.flags.value = 0  # left as it is when pdfium has no font for the character
        size = self.get_font(self.handle, index, self.name_at, _FONT_NAME_SIZE, self.flags_at)
        if self.flags.value & _FORCE_BOLD:
            return True
        return 0 < size <= _FONT_NAME_SIZE and _bold_name(_FONT_NAME.value)


@functools.cache
def _rects() -> tuple[Any, Any]:
    """Two boxes for pdfium to fill, made once (used with PDFIUM_LOCK held)."""
    import pypdfium2.raw as pdfium_c

    return pdfium_c.FS_RECTF(), pdfium_c.FS_RECTF()


@functools.lru_cache(maxsize=1024)
def _bold_name(name: bytes) -> bool:
    return _BOLD_NAME.search(name.lower()) is not None


def _fix_text(
    textpage: pdfium.PdfTextPage, raw: str, start: int, chars: _CharIndex, marks: list[int]
) -> str:
    """The line's text with what pdfium's order and spacing get wrong put right: reference
    marks apart from their word (`marks`: offsets in the line of digits after a letter),
    lam-alef ligatures in logical order, right-to-left text stored in visual order
    reversed, Arabic and Latin words apart."""
    if marks:
        raw = _space_marks(textpage, raw, start, chars, marks)
    if has_arabic(raw):
        raw = _fix_ligatures(textpage, raw, start, chars)
        if _visual_order(textpage, raw, start, chars):
            raw = logical_order(raw)
        raw = space_scripts(raw)
    return strip_controls(raw).rstrip()


def _space_marks(
    textpage: pdfium.PdfTextPage, raw: str, start: int, chars: _CharIndex, marks: list[int]
) -> str:
    """A space before a digit set apart from the letter it follows: raised, smaller or
    distant (a footnote or reference mark, `center1` -> `center 1`)."""
    cuts = [at for at in marks if _set_apart(textpage, chars(start + at - 1), chars(start + at))]
    for cut in reversed(cuts):
        raw = raw[:cut] + " " + raw[cut:]
    return raw


def _set_apart(textpage: pdfium.PdfTextPage, letter: int, mark: int) -> bool:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    if letter < 0 or mark < 0 or pdfium_c.FPDFText_GetCharAngle(textpage, letter) > _LEVEL:
        return False  # rotated text: boxes do not compare along the line
    try:
        _, low, right, high = textpage.get_charbox(letter, loose=True)
        left, low2, _, high2 = textpage.get_charbox(mark, loose=True)
    except pdfium.PdfiumError:
        return False
    size, size2 = high - low, high2 - low2
    if size <= 0:
        return False
    if size2 < _MARK_SIZE * size or left - right > _MARK_GAP * size:
        return True
    y, y2 = ctypes.c_double(0), ctypes.c_double(0)
    x = ctypes.c_double(0)
    if not pdfium_c.FPDFText_GetCharOrigin(textpage, letter, ctypes.byref(x), ctypes.byref(y)):
        return False
    if not pdfium_c.FPDFText_GetCharOrigin(textpage, mark, ctypes.byref(x), ctypes.byref(y2)):
        return False
    return y2.value - y.value > _MARK_RAISE * size


def _fix_ligatures(textpage: pdfium.PdfTextPage, raw: str, start: int, chars: _CharIndex) -> str:
    """pdfium gives a lam-alef ligature's two letters alef first (`اإل` for `الإ`): swap
    the pairs that come from one glyph (both letters share one box)."""
    swaps = [
        match.start()
        for match in _ALEF_LAM.finditer(raw)
        if _same_box(textpage, chars(start + match.start()), chars(start + match.start() + 1))
    ]
    for at in swaps:
        raw = raw[:at] + raw[at + 1] + raw[at] + raw[at + 2 :]
    return raw


def _same_box(textpage: pdfium.PdfTextPage, first: int, second: int) -> bool:
    import pypdfium2 as pdfium

    if first < 0 or second < 0:
        return False
    try:
        box, box2 = textpage.get_charbox(first), textpage.get_charbox(second)
    except pdfium.PdfiumError:
        return False
    return all(abs(a - b) < _SAME_BOX for a, b in zip(box, box2, strict=True))


def _visual_order(textpage: pdfium.PdfTextPage, raw: str, start: int, chars: _CharIndex) -> bool:
    """Whether the line's Arabic letters run left to right in pdfium's order: the text was
    stored in visual order, not logical."""
    match = _ARABIC_WORD.search(raw)
    if match is None:
        return False
    import pypdfium2 as pdfium

    first, last = chars(start + match.start()), chars(start + match.end() - 1)
    if first < 0 or last < 0:
        return False
    try:
        return bool(textpage.get_charbox(last)[0] > textpage.get_charbox(first)[0])
    except pdfium.PdfiumError:
        return False


def _stand_in_tables(
    lines: list[Line], tables: list[Table], height: float, text: str
) -> list[Line]:
    """The page's lines with those whose characters are mostly in a table's cells replaced
    by one stand-in per table, where the table's first line was. What a line holds outside
    the cells (a caption or a note inside the ruled area, a column the rules do not close)
    stays as a line of its own, so that no text is lost and none is given twice."""
    result: list[Line] = []
    placed: set[int] = set()
    for line in lines:
        number, inside = _table_of(line, tables)
        if not inside:
            result.append(line)
            continue
        if 2 * inside >= len(line.text.replace(" ", "")) and number not in placed:
            placed.add(number)
            x0, top, x1, bottom = tables[number].bbox
            result.append(
                Line("", x0, x1, height - bottom, height - top, 1.0, placed=True, table=number)
            )
        rest = _outside_cells(text, line.span, tables[number].covered)
        if rest:
            box = (line.left, line.right, line.bottom, line.top, line.size, line.placed)
            result.append(Line(rest, *box, bold=line.bold))
    return result


def _table_of(line: Line, tables: list[Table]) -> tuple[int, int]:
    """The table holding characters of the line, and how many (0 when none does)."""
    offsets = range(*line.span)
    for number, table in enumerate(tables):
        inside = sum(offset in table.covered for offset in offsets)
        if inside:
            return number, inside
    return 0, 0


def _outside_cells(text: str, span: tuple[int, int], covered: frozenset[int]) -> str:
    """The line's characters that no cell holds, runs joined with a space."""
    kept = "".join(" " if offset in covered else text[offset] for offset in range(*span))
    return " ".join(strip_controls(kept).split())


# --- paragraphs (pure Python, no lock needed) -------------------------------------------


def _blocks(
    lines: list[Line],
    tables: list[tuple[tuple[str, ...], ...]],
    page: int,
    outline: tuple[tuple[int, str], ...],
) -> list[Block]:
    paragraphs = _split_outline_titles(_paragraphs(lines), outline)
    body = _body_height(paragraphs)
    bold_body = _bold_body(paragraphs)
    blocks = []
    for paragraph in paragraphs:
        if paragraph[0].table >= 0:
            table = rows_block(tables[paragraph[0].table], page)
            if table:
                blocks.append(table)
            continue
        text = join_lines(line.text for line in paragraph)
        if not text:
            continue
        level = _outline_level(text, outline) or _heading_level(paragraph, text, body, bold_body)
        kind = BlockKind.HEADING if level else BlockKind.PARAGRAPH
        blocks.append(Block(kind, text, page=page, level=level))
    return blocks


def _paragraphs(lines: list[Line]) -> list[list[Line]]:
    paragraphs: list[list[Line]] = []
    current: list[Line] = []
    leading = _usual_gap(lines)
    for line in lines:
        if line.table >= 0 or not line.text.strip():
            if current:
                paragraphs.append(current)
            current = []
            if line.table >= 0:
                paragraphs.append([line])
            continue
        if current and _starts_paragraph(current, line, leading):
            paragraphs.append(current)
            current = []
        current.append(line)
    if current:
        paragraphs.append(current)
    return paragraphs


def _usual_gap(lines: list[Line]) -> float:
    """The most common gap between a line and the next one below it, in line heights: the
    page's leading, which a paragraph break exceeds (0 when lines touch, as is usual)."""
    gaps = []
    for previous, line in itertools.pairwise(lines):
        if previous.placed and line.placed and line.table < 0 and previous.table < 0:
            gap = (previous.bottom - line.top) / min(previous.size, line.size)
            if 0 <= gap <= _MAX_LEADING:
                gaps.append(round(gap, 1))
    return Counter(gaps).most_common(1)[0][0] if gaps else 0.0


def _starts_paragraph(current: list[Line], line: Line, leading: float) -> bool:
    previous = current[-1]
    if _BULLET.match(line.text.lstrip()):
        return True
    if not (previous.placed and line.placed):
        return False
    height = min(previous.size, line.size)
    if line.top > previous.top + 0.5 * height:  # moved up: next column or a new region
        return True
    if previous.bottom - line.top > (leading + _PARAGRAPH_GAP) * height:
        return True
    if max(previous.size, line.size) > _FONT_CHANGE * height:
        return True
    if previous.bold != line.bold and len(current) <= _HEADING_MAX_LINES:
        return True  # a bold heading run straight into its text
    if len(current) <= 1 or _BULLET.match(current[0].text.lstrip()):
        return False  # an indent starts a paragraph only after one of several lines
    if has_arabic(line.text):  # right-to-left: a first line is indented from the right
        return previous.right - line.right > 0.8 * height
    return line.left - previous.left > 0.8 * height


def _split_outline_titles(
    paragraphs: list[list[Line]], outline: tuple[tuple[int, str], ...]
) -> list[list[Line]]:
    """A paragraph whose first lines are a bookmark's title is cut after them: the title is
    a heading even where its font does not set it apart from the text below."""
    if not outline:
        return paragraphs
    titles = {key for _, key in outline}
    result = []
    for paragraph in paragraphs:
        # the first line's key starts any key of the first lines joined: most paragraphs
        # are ruled out by it
        first = _title_key(paragraph[0].text)
        if not any(title.startswith(first) for title in titles):
            result.append(paragraph)
            continue
        cut = next(
            (
                n
                for n in range(1, min(len(paragraph), _HEADING_MAX_LINES + 1))
                if _title_key(join_lines(line.text for line in paragraph[:n])) in titles
            ),
            0,
        )
        result.extend([paragraph[:cut], paragraph[cut:]] if cut else [paragraph])
    return result


def _outline_level(text: str, outline: tuple[tuple[int, str], ...]) -> int:
    if not outline or len(text) > _TITLE_SPREAD * max(len(title) for _, title in outline):
        return 0  # far longer than any title: not worth comparing
    key = _title_key(text)
    return next((level for level, title in outline if title == key), 0)


def _body_height(paragraphs: list[list[Line]]) -> float | None:
    """The line height carrying most characters on the page (None if too little text)."""
    weights: dict[float, int] = {}
    for paragraph in paragraphs:
        for line in paragraph:
            if line.placed and line.table < 0:
                key = round(line.size * 2) / 2
                weights[key] = weights.get(key, 0) + len(line.text)
    if sum(weights.values()) < _MIN_BODY_CHARS:
        return None
    return max(weights, key=lambda height: weights[height])


def _bold_body(paragraphs: list[list[Line]]) -> bool:
    """Whether most of the page's text is bold (then bold sets nothing apart)."""
    bold = total = 0
    for paragraph in paragraphs:
        for line in paragraph:
            total += len(line.text)
            bold += len(line.text) if line.bold else 0
    return bold * 2 > total


def _heading_level(paragraph: list[Line], text: str, body: float | None, ignore_bold: bool) -> int:
    """A level from the font: clearly larger than the body text (1 to 3 by how much), or
    bold at body size on a page whose text is not bold (by its section number's depth;
    else 1 when somewhat larger than the body text, a title, and 4 when not)."""
    if body is None or len(paragraph) > _HEADING_MAX_LINES or len(text) > _HEADING_MAX_CHARS:
        return 0
    if not all(line.placed for line in paragraph) or not _wordy(text):
        return 0
    ratio = statistics.fmean(line.size for line in paragraph) / body
    level = size_level(ratio, _HEADING_RATIO)
    if level:
        return level
    bold = all(line.bold for line in paragraph) and not ignore_bold
    if not (bold and ratio >= 0.95 and _heading_like(text)):
        return 0
    numbered = _SECTION_NUMBER.match(text)  # "3.2 Training": level 2
    if numbered:
        return min(numbered.group(1).count(".") + 1, _MAX_LEVEL)
    return 1 if ratio >= _BOLD_TITLE_RATIO else _BOLD_LEVEL


def _heading_like(text: str) -> bool:
    """Short, starting like a title (a capital or a number), and not a sentence: a bold
    sentence or a bold fragment inside a line is emphasis, not a heading."""
    if len(text) > _BOLD_HEADING_MAX_CHARS or text.rstrip().endswith((".", ",", ";")):
        return False
    return text[0].isdigit() or text[0].isupper()


def _wordy(text: str) -> bool:
    """Mostly letters: a heading, not a row of numbers."""
    visible = len(text) - sum(map(str.isspace, text))
    return sum(map(str.isalpha, text)) >= 0.6 * visible


# imported when a worker process starts (registry.preload), not on import
PRELOAD = ("pypdfium2", "pypdfium2.raw", "pdfplumber.table")
FORMATS = (Format("pdf", PDF, (".pdf",), Content.BINARY, PdfDocument),)
