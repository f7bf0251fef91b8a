"""Markdown through markdown-it-py (CommonMark plus tables and strikethrough).

Blocks keep the structure and drop the markup: headings (ATX and setext) with their level,
paragraphs, lists as LIST blocks ("- item" / "1. item" lines, nested items indented), fenced
and indented code as CODE, tables as TABLE (one line per row, cells joined with " | "),
block quotes as their inner blocks, raw HTML blocks through the HTML parser. Inline markup is
reduced to its text: links and images give their text, entities and escapes are decoded; a
paragraph's `markdown` keeps its links as [text](url), fenced code keeps its info string, and
tables carry their `rows`.

The file is decoded as a stream (same encoding detection as plain text) and parsed in
segments of about 32 KB cut at blank lines outside fenced code, so memory stays bounded.
A leading YAML front-matter block is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from knowra_worker.document import Block, BlockKind, fenced
from knowra_worker.parsers._common import (
    FlowDocument,
    UnitLimits,
    estimate_units,
    file_size,
    strip_controls,
)
from knowra_worker.parsers._encoding import file_encoding, open_text
from knowra_worker.parsers._tables import table_block
from knowra_worker.parsers.base import Content, Format
from knowra_worker.parsers.html import fragment_blocks
from knowra_worker.parsers.text import iter_lines

if TYPE_CHECKING:  # markdown-it is imported where a file is parsed, not with this module
    from markdown_it.token import Token

MARKDOWN = "text/markdown"
SEGMENT_CHARS = 32_000
MAX_SEGMENT_CHARS = 1_000_000  # cut even inside a fence beyond this
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_FRONT_MATTER_END = re.compile(r"^(---|\.\.\.)\s*$")
_FRONT_MATTER_LINES = 200
_LIMITS = UnitLimits(max_chars=32_000, max_blocks=100, section_chars=8_000)


class MarkdownDocument(FlowDocument):
    format_label = "Markdown file"
    limits = _LIMITS

    def __init__(self, path: Path, mime_type: str) -> None:
        self.path = path
        self.encoding = file_encoding(path)
        size = file_size(path)
        super().__init__(mime_type, estimate_units(size, _LIMITS.max_chars))

    def iter_blocks(self) -> Iterator[Block]:
        from markdown_it import MarkdownIt

        parser = MarkdownIt("commonmark").enable(["table", "strikethrough"])
        with open_text(self.path, self.encoding) as stream:
            for segment in iter_segments(stream):
                yield from markdown_blocks(parser.parse(segment))


# --- segmentation ----------------------------------------------------------------------


class _FenceState:
    """Tracks whether a line is inside a fenced code block."""

    def __init__(self) -> None:
        self.fence = ""

    def feed(self, line: str) -> None:
        match = _FENCE.match(line)
        if not match:
            return
        marker = match.group(1)
        if not self.fence:
            self.fence = marker
        elif marker[0] == self.fence[0] and len(marker) >= len(self.fence):
            if not line.strip().strip(marker[0]):
                self.fence = ""

    @property
    def open(self) -> bool:
        return bool(self.fence)


def iter_segments(stream: IO[str]) -> Iterator[str]:
    """The text in pieces of about SEGMENT_CHARS, cut at blank lines outside fences."""
    lines: list[str] = []
    size = 0
    fences = _FenceState()
    for piece, complete in _without_front_matter(iter_lines(stream)):
        piece = strip_controls(piece.replace("\r", ""))
        if complete:
            fences.feed(piece)
        lines.append(piece + ("\n" if complete else ""))
        size += len(piece)
        blank = complete and not piece.strip()
        if (size >= SEGMENT_CHARS and blank and not fences.open) or size >= MAX_SEGMENT_CHARS:
            yield "".join(lines)
            lines, size = [], 0
    if lines:
        yield "".join(lines)


def _without_front_matter(
    lines: Iterator[tuple[str, bool]],
) -> Iterator[tuple[str, bool]]:
    """Drop a YAML front matter: '---' on the first line, closed by '---' or '...' soon."""
    first = next(lines, None)
    if first is None:
        return
    if first != ("---", True):
        yield first
        yield from lines
        return
    held: list[tuple[str, bool]] = [first]
    for line in lines:
        held.append(line)
        if line[1] and _FRONT_MATTER_END.match(line[0]):
            break  # a complete front matter: drop it
        if len(held) > _FRONT_MATTER_LINES:
            yield from held  # no end in sight: it was a thematic break after all
            break
    else:
        yield from held  # the file ended before the front matter did
    yield from lines


# --- tokens to blocks ------------------------------------------------------------------

_LIST_OPEN = {"bullet_list_open", "ordered_list_open"}


def markdown_blocks(tokens: Sequence[Token]) -> Iterator[Block]:
    """Blocks from a markdown-it token stream."""
    index = 0
    while index < len(tokens):
        token = tokens[index]
        kind = token.type
        if kind == "heading_open":
            text = _one_line(inline_text(tokens[index + 1]))
            if text:
                yield Block(BlockKind.HEADING, text, level=int(token.tag[1:]))
        elif kind == "paragraph_open":
            yield from _paragraph(tokens[index + 1])
        elif kind in _LIST_OPEN or kind == "table_open":
            end = _closing(tokens, index)
            yield from _container(tokens[index : end + 1])
            index = end
        elif kind in {"fence", "code_block"}:
            text = token.content.strip("\n").rstrip()
            info = token.info.strip() if kind == "fence" else ""
            if text.strip():
                yield Block(BlockKind.CODE, text, markdown=fenced(text, info) if info else "")
        elif kind == "html_block":
            yield from fragment_blocks(token.content)
        index += 1


def _paragraph(inline: Token) -> Iterator[Block]:
    text = inline_text(inline).strip()
    markdown = inline_markdown(inline).strip()
    if text:
        yield Block(BlockKind.PARAGRAPH, text, markdown="" if markdown == text else markdown)


def _container(tokens: Sequence[Token]) -> Iterator[Block]:
    """A list as a LIST block, a table as a TABLE block with its rows."""
    if tokens[0].type in _LIST_OPEN:
        lines = _list_lines(tokens)
        if lines:
            yield Block(BlockKind.LIST, "\n".join(lines))
    elif block := table_block(_table_rows(tokens)):
        yield block


def _closing(tokens: Sequence[Token], index: int) -> int:
    """The index of the token closing the one at `index`."""
    closing = tokens[index].type.replace("_open", "_close")
    level = tokens[index].level
    for position in range(index + 1, len(tokens)):
        if tokens[position].type == closing and tokens[position].level == level:
            return position
    return len(tokens) - 1


def inline_text(token: Token) -> str:
    """The plain text of an inline token: markup dropped, breaks kept as newlines."""
    parts: list[str] = []
    for child in token.children or ():
        if child.type in {"text", "text_special", "code_inline"}:
            parts.append(child.content)
        elif child.type in {"softbreak", "hardbreak"}:
            parts.append("\n")
        elif child.type == "image":
            parts.append(child.content)
    return "".join(parts)


def inline_markdown(token: Token) -> str:
    """An inline token as Markdown: links kept as [text](url), images as their alt text,
    inline code in backticks, other markup dropped."""
    parts: list[str] = []
    targets: list[str] = []
    for child in token.children or ():
        if child.type == "link_open":
            targets.append(str(child.attrs.get("href") or ""))
            parts.append("[")
        elif child.type == "link_close" and targets:
            parts.append(f"]({targets.pop()})")
        elif child.type == "code_inline":
            parts.append(f"`{child.content}`" if "`" not in child.content else child.content)
        elif child.type in {"text", "text_special", "image"}:
            parts.append(child.content)
        elif child.type in {"softbreak", "hardbreak"}:
            parts.append("\n")
    return "".join(parts)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _list_lines(tokens: Sequence[Token]) -> list[str]:
    """ "- item" / "1. item" lines; continuation paragraphs and code indented under the item."""
    lines: list[tuple[str, str]] = []  # (marker or indentation, text)
    depth = -1
    fresh = False  # the last line is an item marker waiting for its text
    for token in tokens:
        if token.type in _LIST_OPEN:
            depth += 1
        elif token.type in {"bullet_list_close", "ordered_list_close"}:
            depth -= 1
        elif token.type == "list_item_open":
            marker = f"{token.info}{token.markup}" if token.info else "-"
            lines.append((f"{'  ' * depth}{marker} ", ""))
            fresh = True
        elif token.type == "inline" or token.type in {"fence", "code_block"}:
            text = _one_line(inline_text(token)) if token.type == "inline" else token.content
            fresh = _add_to_item(lines, text, depth, fresh)
    return [(prefix + text).rstrip() for prefix, text in lines if text.strip()]


def _add_to_item(lines: list[tuple[str, str]], text: str, depth: int, fresh: bool) -> bool:
    rows = [row.rstrip() for row in text.split("\n") if row.strip()]
    if not rows:
        return fresh
    if fresh and lines:
        lines[-1] = (lines[-1][0], rows.pop(0))
    indent = "  " * (depth + 1)
    lines.extend((indent, row) for row in rows)
    return False


def _table_rows(tokens: Sequence[Token]) -> list[list[str]]:
    rows: list[list[str]] = []
    for token in tokens:
        if token.type == "tr_open":
            rows.append([])
        elif token.type == "inline" and rows:
            rows[-1].append(_one_line(inline_text(token)))
    return rows


# imported when a worker process starts (registry.preload), not on import
PRELOAD = ("markdown_it", "selectolax.lexbor")
FORMATS = (Format("md", MARKDOWN, (".md", ".markdown"), Content.TEXT, MarkdownDocument),)
