"""Excel workbooks (.xlsx) through openpyxl in read-only (streaming) mode.

Each worksheet starts with a HEADING (level 1) holding the sheet's name, followed by TABLE
blocks of up to 200 non-empty rows, one line per row with cells joined by " | " (trailing
empty cells dropped, cached formula results rather than formulas). A unit is a sheet, or a
run of 200 rows of a longer sheet, so memory stays bounded; `units_total` is estimated from
the sheets' declared dimensions. Chart sheets have no cells and are skipped.

openpyxl warns about workbook features it does not read (data validation, conditional
formatting extensions, ...); those UserWarnings are silenced around its calls only.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from knowra_worker.document import Block, BlockKind
from knowra_worker.parsers._common import FlowDocument, UnitLimits, translate_errors
from knowra_worker.parsers._tables import ROWS_PER_BLOCK, RowBatcher, row_line
from knowra_worker.parsers.base import Content, Format
from knowra_worker.parsers.detect import XLSX

_MAX_BLOCK_CHARS = 30_000  # leaves room for the sheet's heading in the unit
# A unit: one table block, after its sheet's heading; every heading (a new sheet) starts one.
_LIMITS = UnitLimits(max_chars=32_000, max_blocks=2, section_chars=0, table_per_unit=True)


class XlsxDocument(FlowDocument):
    unit_name = "sheet"
    format_label = "XLSX file"
    limits = _LIMITS

    def __init__(self, path: Path, mime_type: str) -> None:
        import openpyxl  # here, not at the top: the registry imports this module to list it

        with translate_errors(self.format_label), _quiet():
            self._workbook = openpyxl.load_workbook(
                path, read_only=True, data_only=True, keep_links=False
            )
            estimate = sum(_sheet_units(sheet) for sheet in self._workbook.worksheets)
        super().__init__(mime_type, estimate)

    def iter_blocks(self) -> Iterator[Block]:
        for sheet in self._workbook.worksheets:
            yield Block(BlockKind.HEADING, " ".join(str(sheet.title).split()) or "Sheet", level=1)
            yield from _sheet_blocks(sheet)

    def close(self) -> None:
        workbook, self._workbook = self._workbook, None
        if workbook is not None:
            with _quiet():
                workbook.close()


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence openpyxl's UserWarnings about features it drops (scoped, not global)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"openpyxl(\.|$)")
        yield


def _sheet_units(sheet: Any) -> int:
    max_row = sheet.max_row if isinstance(sheet.max_row, int) else 0
    return max(1, math.ceil(max_row / ROWS_PER_BLOCK))


def _sheet_blocks(sheet: Any) -> Iterator[Block]:
    """TABLE blocks of the sheet's non-empty rows, ROWS_PER_BLOCK rows at most each."""
    rows = sheet.iter_rows(values_only=True)
    batcher = RowBatcher(_MAX_BLOCK_CHARS)
    while (text := _next_table(rows, batcher)) is not None:
        yield Block(BlockKind.TABLE, text)


def _next_table(rows: Iterator[tuple[Any, ...]], batcher: RowBatcher) -> str | None:
    """The next block's text; None when the sheet is exhausted (warnings silenced here)."""
    with _quiet():
        for row in rows:
            text = batcher.add(row_line(map(cell_text, row), drop_trailing_empty=True))
            if text:
                return text
    return batcher.flush()


def cell_text(value: Any) -> str:
    """A cell's value as display text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return " ".join(str(value).split())


FORMATS = (Format("xlsx", XLSX, (".xlsx",), Content.PACKAGE, XlsxDocument),)
