"""Tables the same way in every format: `text` one line per row, cells joined with " | ",
and `rows`, the cells row by row (the header first), that the chunker renders as a pipe table.

A TABLE block's text is its non-empty rows, one per line. Each parser extracts and cleans
its cells its own way (merged cells, formulas, markup); building the block (`table_block`)
and cutting long tables into row batches (`RowBatcher.add_row`) happen here, so every
format writes tables alike. A batch after the first starts its `rows` with the table's
header row again, so that each TABLE block is a table of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from knowra_worker.document import Block, BlockKind

CELL_SEPARATOR = " | "
ROWS_PER_BLOCK = 200  # rows of a streamed table (CSV, a worksheet) in one TABLE block


def row_line(cells: Iterable[str]) -> str:
    """A row as one line, "" when every cell is empty."""
    texts = list(cells)
    return CELL_SEPARATOR.join(texts) if any(texts) else ""


def clean_row(cells: Iterable[str], *, drop_trailing_empty: bool = False) -> tuple[str, ...]:
    """A row's cells on one line each (whitespace collapsed); () when every cell is empty.

    Spreadsheets and CSV files drop their trailing empty cells (ragged rows, unused columns);
    tables inside documents keep them, as there a cell's position says which column it is.
    """
    texts = [" ".join(cell.split()) for cell in cells]
    if drop_trailing_empty:
        while texts and not texts[-1]:
            texts.pop()
    return tuple(texts) if any(texts) else ()


def table_block(rows: Iterable[Sequence[str]], page: int | None = None) -> Block | None:
    """A TABLE block from its rows (the header first), empty rows left out; None if none."""
    return rows_block([r for row in rows if (r := clean_row(row))], page)


def rows_block(rows: Sequence[Sequence[str]], page: int | None = None) -> Block | None:
    """A TABLE block of rows taken as they are (the header first): its text has a line per
    row with text, `rows` keeps them all; None when no cell has text."""
    text = table_text(map(row_line, rows))
    if not text:
        return None
    return Block(BlockKind.TABLE, text, page=page, rows=tuple(tuple(row) for row in rows))


def table_text(lines: Iterable[str]) -> str:
    """The text of a TABLE block: its non-empty row lines, one per line."""
    return "\n".join(line for line in lines if line)


class RowBatcher:
    """Cuts a stream of row lines into TABLE texts of at most `max_rows` rows and
    `max_chars` characters (a single longer row makes a text of its own).

    Push-style, so that a caller can read its rows inside a context it must not yield from
    (openpyxl's warnings are silenced only while rows are read): `add_row` answers the
    finished block when a row does not fit, `flush_block` the last one.
    """

    def __init__(self, max_chars: int, max_rows: int = ROWS_PER_BLOCK) -> None:
        self.max_chars = max_chars
        self.max_rows = max_rows
        self._lines: list[str] = []
        self._size = 0
        self._rows: list[tuple[str, ...]] = []
        self._header: tuple[str, ...] = ()

    def add_row(self, cells: Sequence[str], page: int | None = None) -> Block | None:
        """Add a row of cells; the finished TABLE block if this row did not fit. The first
        non-empty row is the table's header, repeated at the top of every later block's rows."""
        row = clean_row(cells, drop_trailing_empty=True)
        if not row:
            return None
        done = None
        if self._lines and self._full(row_line(row)):
            done = self.flush_block(page)
        if not self._header:
            self._header = row
        elif not self._rows:
            self._rows.append(self._header)
        self._rows.append(row)
        self._push(row_line(row))
        return done

    def flush_block(self, page: int | None = None) -> Block | None:
        """The rows held so far as one TABLE block (None when there are none)."""
        rows, text = tuple(self._rows), self.flush()
        self._rows = []
        return Block(BlockKind.TABLE, text, page=page, rows=rows) if text else None

    def _full(self, line: str) -> bool:
        return len(self._lines) >= self.max_rows or self._size + len(line) > self.max_chars

    def _push(self, line: str) -> None:
        self._lines.append(line)
        self._size += len(line) + 1

    def flush(self) -> str | None:
        """The rows held so far as one text (None when there are none), and start afresh."""
        text = "\n".join(self._lines) if self._lines else None
        self._lines, self._size = [], 0
        return text
