"""What parsers produce and the chunker consumes: a stream of units, each a list of blocks.

This vocabulary sits outside `parsers/` because two sides share it: the parsers write it and
`chunking.py` and `pipeline.py` read it, and neither side should have to import the other.

A *unit* is the smallest piece of a document the pipeline checkpoints after: a PDF page, a
slide, a sheet (or a block of rows), a bounded run of paragraphs for flow formats. A document
must be able to start at any unit index (`units(start)`) so that a resumed task does not
parse the units before its checkpoint again, and must hold at most one unit (plus its own
bounded state) in memory at a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

TextFormat = Literal["markdown", "plain"]
_MAX_HEADING_MARKS = 6  # Markdown has six heading levels; deeper ones are shown as the sixth


class BlockKind(StrEnum):
    HEADING = "heading"
    PARAGRAPH = "paragraph"
    LIST = "list"
    TABLE = "table"
    CODE = "code"


@dataclass(frozen=True, slots=True)
class Block:
    """One element of a document, in two forms: plain text, and Markdown.

    `text` is the block as plain text (what `"text_format": "plain"` gives), never empty.
    `markdown` is its content as Markdown where that differs from `text` (links as
    `[text](url)`, equations as LaTeX, ...); empty means the same as `text`. The chunker adds
    the block-level Markdown itself: `#` marks from `level` for headings, fences for code,
    and a pipe table from `rows` for tables (split between rows, the header repeated). A CODE
    block's `markdown` may be its whole fenced form (`fenced`) when the source names the
    code's language; otherwise the chunker fences `text` itself.
    """

    kind: BlockKind
    text: str
    page: int | None = None  # 1-based page number, paginated formats only
    level: int = 0  # headings: 0 for a document title, 1..9 by depth; 0 for other blocks
    markdown: str = ""
    rows: tuple[tuple[str, ...], ...] = ()  # TABLE: the cells row by row, the header first


@dataclass(slots=True)
class Unit:
    index: int  # 0-based position in the document's unit stream
    blocks: list[Block] = field(default_factory=list)
    # what could not be read in this unit and was skipped, or how it was read (OCR), in a
    # few words a user understands: "slide 3: a shape of an unknown kind was skipped"
    warnings: list[str] = field(default_factory=list)


class Document(Protocol):
    """An opened document. Close it (or use it as a context manager) when done."""

    mime_type: str
    unit_name: str  # "page", "slide", "sheet", "section"
    units_total: int  # exact for paginated formats, an estimate (>= 1) elsewhere
    units_total_exact: bool

    def units(self, start: int = 0) -> Iterator[Unit]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Document: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class SharesFacts(Protocol):
    """A document whose every page reads alike only with facts decided from the whole
    document (a PDF's running heads and outline). Split into parts parsed by several worker
    processes, the task's own worker decides them once and hands them to the others, which
    then need not decide them again."""

    def shared_facts(self) -> str:
        """The facts, as JSON (decided now if they were not yet)."""
        ...

    def adopt_facts(self, facts: str) -> None:
        """Take facts another process decided for this same file (as shared_facts gave
        them); facts that cannot be read are ignored (the document decides its own)."""
        ...


# --- rendering: a block in the chosen text format (used by the chunker) --------------------


def render(block: Block, text_format: TextFormat) -> str:
    """The block as chunk text, stripped ("" for a block with no text).

    Plain text is `text`. Markdown adds the block-level marks: `#` by heading level (a level-0
    title is `#` too), fences around code, a pipe table from `rows`.
    """
    if not block.text.strip():
        return ""
    if text_format == "plain":
        return block.text.strip()
    content = (block.markdown or block.text).strip()
    if block.kind is BlockKind.HEADING:
        marks = "#" * min(max(block.level, 1), _MAX_HEADING_MARKS)
        return f"{marks} {' '.join(content.split())}"
    if block.kind is BlockKind.CODE:
        return block.markdown.strip() if block.markdown else fenced(block.text.strip("\n"))
    if block.kind is BlockKind.TABLE and block.rows:
        return "\n".join(pipe_table(block.rows)) or content
    return content


def fenced(code: str, info: str = "") -> str:
    """Code as a fenced block, the fence longer than any backtick run inside the code."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{' '.join(info.split())}\n{code}\n{fence}"


def pipe_table(rows: tuple[tuple[str, ...], ...]) -> list[str]:
    """A pipe table's lines: the header row, its `---` separator, then the other rows.

    Rows are padded to the widest one; cells are escaped (`|` as `\\|`, line breaks as
    spaces). No lines when every cell is empty.
    """
    if not any(any(cell.strip() for cell in row) for row in rows):
        return []
    width = max(len(row) for row in rows)
    lines = [_pipe_row(rows[0], width), "|" + " --- |" * width]
    lines.extend(_pipe_row(row, width) for row in rows[1:] if any(c.strip() for c in row))
    return lines


def _pipe_row(row: tuple[str, ...], width: int) -> str:
    cells = [_pipe_cell(cell) for cell in row] + [""] * (width - len(row))
    return "| " + " | ".join(cells) + " |"


def _pipe_cell(cell: str) -> str:
    return " ".join(cell.split()).replace("|", "\\|")
