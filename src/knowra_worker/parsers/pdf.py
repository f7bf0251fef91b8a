"""PDF text layer through pypdfium2: one unit per page, blocks are the page's paragraphs.

pdfium gives a page's text as lines. Lines are grouped into paragraphs by layout: a vertical
gap of more than half a line, a change of font size, a jump back up the page (next column),
a bullet or a first-line indent starts a new paragraph. A short paragraph in a font clearly
larger than the page's body text becomes a heading. Lines of a paragraph are joined with a
space (no space after a hyphen). Without position data (rare), blank lines split paragraphs.

pdfium is not thread-safe: every call into it holds one module-wide lock, and each page and
its text page are closed as soon as their text is out, so memory stays at one page.
"""

from __future__ import annotations

import re
import statistics
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from knowra_worker.document import Block, BlockKind, Unit
from knowra_worker.errors import (
    CorruptFile,
    EmptyDocument,
    EncryptedFile,
    KnowraError,
    SourceIOError,
)
from knowra_worker.parsers._common import (
    describe_exception,
    io_error,
    strip_controls,
    translate_errors,
)
from knowra_worker.parsers.base import BaseDocument, Content, Format
from knowra_worker.parsers.detect import PDF

if TYPE_CHECKING:  # pypdfium2 is imported where a file is opened, not with this module
    import pypdfium2 as pdfium

PDFIUM_LOCK = threading.RLock()

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_BULLET = re.compile(
    r"^([\u2022\u25cf\u25cb\u25e6\u25aa\u25a0\u2023\u2043\u2219\u00b7*\u2013-]\s|\d{1,2}[.)]\s)"
)
_PARAGRAPH_GAP = 0.5  # of a line's height
_FONT_CHANGE = 1.25  # ratio of line heights
_HEADING_RATIO = 1.3  # of the body text's line height
_HEADING_MAX_CHARS = 150
_HEADING_MAX_LINES = 2
_MIN_BODY_CHARS = 200


@dataclass(slots=True)
class _Line:
    text: str
    left: float = 0.0
    bottom: float = 0.0
    top: float = 0.0
    size: float = 0.0  # height of one character's box: a proxy for the font size
    placed: bool = False  # whether the position is known


class PdfDocument(BaseDocument):
    unit_name = "page"
    units_total_exact = True

    def __init__(self, path: Path, mime_type: str) -> None:
        self.mime_type = mime_type
        self._pdf: pdfium.PdfDocument | None = _load(path)
        with PDFIUM_LOCK:
            self.units_total = len(self._pdf)

    def units(self, start: int = 0) -> Iterator[Unit]:
        for index in range(max(0, start), self.units_total):
            lines = self._page_lines(index)
            yield Unit(index, _blocks(lines, page=index + 1))

    def close(self) -> None:
        pdf, self._pdf = self._pdf, None
        if pdf is not None:
            with PDFIUM_LOCK:
                pdf.close()

    def _page_lines(self, index: int) -> list[_Line]:
        if self._pdf is None:
            raise RuntimeError("the document is closed")
        with PDFIUM_LOCK, translate_errors(f"PDF (page {index + 1})"):
            page = self._pdf[index]
            try:
                textpage = page.get_textpage()
                try:
                    return _extract_lines(textpage)
                finally:
                    textpage.close()
            finally:
                page.close()


def _load(path: Path) -> pdfium.PdfDocument:
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
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


# --- text extraction (called with the lock held) ----------------------------------------


def _extract_lines(textpage: pdfium.PdfTextPage) -> list[_Line]:
    count = textpage.count_chars()
    if count <= 0:
        return []
    text = textpage.get_text_range(0, count)
    # Positions are by char index; text offsets differ where pdfium left chars out.
    mapped = len(text) != count
    lines = []
    for start, end in _line_spans(text):
        line = _Line(strip_controls(text[start:end]).rstrip())
        if line.text.strip():
            _place(textpage, line, text, (start, end), mapped)
        lines.append(line)
    return lines


def _line_spans(text: str) -> Iterator[tuple[int, int]]:
    start = 0
    for match in _LINE_BREAK.finditer(text):
        yield start, match.start()
        start = match.end()
    yield start, len(text)


def _place(
    textpage: pdfium.PdfTextPage, line: _Line, text: str, span: tuple[int, int], mapped: bool
) -> None:
    """Set the line's box from its first and last visible characters' (loose) boxes."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    start, end = span
    first = next(i for i in range(start, end) if not text[i].isspace())
    last = next(i for i in range(end - 1, start - 1, -1) if not text[i].isspace())
    if mapped:
        first = pdfium_c.FPDFText_GetCharIndexFromTextIndex(textpage, first)
        last = pdfium_c.FPDFText_GetCharIndexFromTextIndex(textpage, last)
        if first < 0 or last < 0:
            return
    try:
        left, bottom, _, top = textpage.get_charbox(first, loose=True)
        _, bottom2, _, top2 = textpage.get_charbox(last, loose=True)
    except pdfium.PdfiumError:
        return
    line.left, line.bottom, line.top = left, min(bottom, bottom2), max(top, top2)
    line.size = max(top - bottom, top2 - bottom2)
    line.placed = line.size > 0


# --- paragraphs (pure Python, no lock needed) -------------------------------------------


def _blocks(lines: list[_Line], page: int) -> list[Block]:
    paragraphs = _paragraphs(lines)
    body = _body_height(paragraphs)
    blocks = []
    for paragraph in paragraphs:
        text = _join(paragraph)
        if not text:
            continue
        level = _heading_level(paragraph, text, body)
        kind = BlockKind.HEADING if level else BlockKind.PARAGRAPH
        blocks.append(Block(kind, text, page=page, level=level))
    return blocks


def _paragraphs(lines: list[_Line]) -> list[list[_Line]]:
    paragraphs: list[list[_Line]] = []
    current: list[_Line] = []
    for line in lines:
        if not line.text.strip():
            if current:
                paragraphs.append(current)
            current = []
            continue
        if current and _starts_paragraph(current, line):
            paragraphs.append(current)
            current = []
        current.append(line)
    if current:
        paragraphs.append(current)
    return paragraphs


def _starts_paragraph(current: list[_Line], line: _Line) -> bool:
    previous = current[-1]
    if _BULLET.match(line.text.lstrip()):
        return True
    if not (previous.placed and line.placed):
        return False
    height = min(previous.size, line.size)
    if line.top > previous.top + 0.5 * height:  # moved up: next column or a new region
        return True
    if previous.bottom - line.top > _PARAGRAPH_GAP * height:
        return True
    if max(previous.size, line.size) > _FONT_CHANGE * height:
        return True
    indented = line.left - previous.left > 0.8 * height
    return indented and len(current) > 1 and not _BULLET.match(current[0].text.lstrip())


def _join(paragraph: list[_Line]) -> str:
    text = ""
    for line in paragraph:
        part = line.text.strip()
        if not part:
            continue
        if not text:
            text = part
        elif text.endswith("-"):
            text += part
        else:
            text += " " + part
    return text


def _body_height(paragraphs: list[list[_Line]]) -> float | None:
    """The line height carrying most characters on the page (None if too little text)."""
    weights: dict[float, int] = {}
    for paragraph in paragraphs:
        for line in paragraph:
            if line.placed:
                key = round(line.size * 2) / 2
                weights[key] = weights.get(key, 0) + len(line.text)
    if sum(weights.values()) < _MIN_BODY_CHARS:
        return None
    return max(weights, key=lambda height: weights[height])


def _heading_level(paragraph: list[_Line], text: str, body: float | None) -> int:
    if body is None or len(paragraph) > _HEADING_MAX_LINES or len(text) > _HEADING_MAX_CHARS:
        return 0
    if not all(line.placed for line in paragraph) or not _wordy(text):
        return 0
    ratio = statistics.fmean(line.size for line in paragraph) / body
    if ratio >= 1.8:
        return 1
    if ratio >= 1.5:
        return 2
    return 3 if ratio >= _HEADING_RATIO else 0


def _wordy(text: str) -> bool:
    """Mostly letters: a heading, not a row of numbers."""
    visible = [c for c in text if not c.isspace()]
    return sum(c.isalpha() for c in visible) >= 0.6 * len(visible)


FORMATS = (Format("pdf", PDF, (".pdf",), Content.BINARY, PdfDocument),)
