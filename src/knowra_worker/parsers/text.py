"""Plain text: paragraphs separated by blank lines, decoded as a stream.

The encoding is sniffed once from a bounded sample (BOM, UTF-8, charset-normalizer); the file
is then decoded incrementally line by line, lines read with a length cap, so memory stays
bounded even for a file without a single line break. Line breaks are normalised to "\\n" and
kept inside paragraphs; trailing spaces and control characters are dropped. A paragraph
longer than the unit size is cut at a line boundary.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO

from knowra_worker.document import Block, BlockKind
from knowra_worker.parsers._common import (
    FlowDocument,
    UnitLimits,
    estimate_units,
    file_size,
    strip_controls,
)
from knowra_worker.parsers._encoding import file_encoding, open_text
from knowra_worker.parsers.base import Content, Format
from knowra_worker.parsers.detect import PLAIN

MAX_LINE = 16 * 1024  # characters read at once; longer lines come in pieces
_LIMITS = UnitLimits(max_chars=32_000, max_blocks=2_000, section_chars=32_000)
_WIDE = {"utf-16": 2, "utf-16-le": 2, "utf-16-be": 2, "utf-32": 4}


class TextDocument(FlowDocument):
    format_label = "text file"
    limits = _LIMITS

    def __init__(self, path: Path, mime_type: str) -> None:
        self.path = path
        self.encoding = file_encoding(path)
        super().__init__(mime_type, _estimate(path, self.encoding, _LIMITS.max_chars))

    def iter_blocks(self) -> Iterator[Block]:
        with open_text(self.path, self.encoding) as stream:
            for paragraph in iter_paragraphs(stream, self.limits.max_chars):
                yield Block(BlockKind.PARAGRAPH, paragraph)


def _estimate(path: Path, encoding: str, chars_per_unit: int) -> int:
    return estimate_units(file_size(path), _WIDE.get(encoding, 1) * chars_per_unit)


def iter_lines(stream: IO[str]) -> Iterator[tuple[str, bool]]:
    """(piece, complete) pairs: a line without its "\\n", or a piece of an overlong line."""
    while piece := stream.readline(MAX_LINE):
        if piece.endswith("\n"):
            yield piece[:-1], True
        else:
            yield piece, False


def iter_paragraphs(stream: IO[str], max_chars: int) -> Iterator[str]:
    """Blank-line separated paragraphs, none longer than about `max_chars`."""
    builder = _ParagraphBuilder(max_chars)
    for piece, complete in iter_lines(stream):
        yield from builder.add(piece, complete)
    yield from builder.flush()


class _ParagraphBuilder:
    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.lines: list[str] = []
        self.size = 0
        self.open_line = False  # the last line has not ended yet

    def add(self, piece: str, complete: bool) -> Iterator[str]:
        piece = _clean(piece)
        if self.open_line:
            self.lines[-1] += piece
        elif complete and not piece.strip():
            yield from self.flush()
            return
        else:
            self.lines.append(piece)
        self.size += len(piece)
        self.open_line = not complete
        if complete:
            self.lines[-1] = self.lines[-1].rstrip()
        if self.size >= self.max_chars and (complete or self.size >= 2 * self.max_chars):
            yield from self.flush()

    def flush(self) -> Iterator[str]:
        text = "\n".join(self.lines).strip("\n")
        self.lines, self.size, self.open_line = [], 0, False
        if text.strip():
            yield text


def _clean(piece: str) -> str:
    return strip_controls(piece.replace("\r", ""))


FORMATS = (Format("txt", PLAIN, (".txt", ".text"), Content.TEXT, TextDocument),)
