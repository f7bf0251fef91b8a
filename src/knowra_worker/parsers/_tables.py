"""Tables as text, the same way in every format: one line per row, cells joined with " | ".

A TABLE block's text is its non-empty rows, one per line. Each parser extracts and cleans
its cells its own way (merged cells, formulas, markup); joining them and cutting long
tables into row batches happen here, so every format writes tables alike.
"""

from __future__ import annotations

from collections.abc import Iterable

CELL_SEPARATOR = " | "
ROWS_PER_BLOCK = 200  # rows of a streamed table (CSV, a worksheet) in one TABLE block


def row_line(cells: Iterable[str], *, drop_trailing_empty: bool = False) -> str:
    """A row as one line, "" when every cell is empty.

    Spreadsheets and CSV files drop their trailing empty cells (ragged rows, unused columns);
    tables inside documents keep them, as there a cell's position says which column it is.
    """
    texts = list(cells)
    if drop_trailing_empty:
        while texts and not texts[-1]:
            texts.pop()
    return CELL_SEPARATOR.join(texts) if any(texts) else ""


def table_text(lines: Iterable[str]) -> str:
    """The text of a TABLE block: its non-empty row lines, one per line."""
    return "\n".join(line for line in lines if line)


class RowBatcher:
    """Cuts a stream of row lines into TABLE texts of at most `max_rows` rows and
    `max_chars` characters (a single longer row makes a text of its own).

    Push-style, so that a caller can read its rows inside a context it must not yield from
    (openpyxl's warnings are silenced only while rows are read): `add` answers the finished
    text when a row does not fit, `flush` the last one.
    """

    def __init__(self, max_chars: int, max_rows: int = ROWS_PER_BLOCK) -> None:
        self.max_chars = max_chars
        self.max_rows = max_rows
        self._lines: list[str] = []
        self._size = 0

    def add(self, line: str) -> str | None:
        """Add a row line (empty ones are skipped); the finished text if this one did not fit."""
        if not line:
            return None
        done = None
        if self._lines and (
            len(self._lines) >= self.max_rows or self._size + len(line) > self.max_chars
        ):
            done = self.flush()
        self._lines.append(line)
        self._size += len(line) + 1
        return done

    def flush(self) -> str | None:
        """The rows held so far as one text (None when there are none), and start afresh."""
        text = "\n".join(self._lines) if self._lines else None
        self._lines, self._size = [], 0
        return text
