"""Excel workbooks (.xlsx, .xlsm, .xltx, .xltm) through openpyxl in read-only (streaming) mode.

Each sheet starts with a HEADING (level 1) holding its name. A worksheet's cells come as
TABLE blocks (`rows` the cells, text one line per row with cells joined by " | ", trailing
empty cells dropped, cached formula results rather than formulas); a merged cell's value is
repeated in every cell it covers. On a sheet of modest size, tables standing side by side
(blocks of columns with an empty column between them) and tables one above the other (runs
of rows with an empty row between them) are told apart and given one block each; a bigger
sheet is streamed in blocks of up to 200 rows, so memory stays bounded. After the cells come
the sheet's charts (title and kind, then the data as a TABLE, see `_charts.py`) and its
comments ("Comment on B3 by Author: text"). A chart sheet gives its charts. A unit is a
sheet, or a block of a longer one; `units_total` is estimated from the sheets' dimensions.

Merged ranges, comments and charts are not in openpyxl's streaming mode: they are read from
the package's XML (`_xlsx_package.py`). openpyxl warns about workbook features it does not
read (data validation, conditional formatting extensions, ...); those UserWarnings are
silenced around its calls only.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from knowra_worker.document import Block, BlockKind
from knowra_worker.parsers._charts import chart_blocks
from knowra_worker.parsers._common import FlowDocument, UnitLimits, translate_errors
from knowra_worker.parsers._tables import ROWS_PER_BLOCK, RowBatcher
from knowra_worker.parsers._xlsx_package import Package, SheetInfo
from knowra_worker.parsers.base import Content, Format
from knowra_worker.parsers.detect import XLSM, XLSX, XLTM, XLTX

_MAX_BLOCK_CHARS = 30_000  # leaves room for the sheet's heading in the unit
# A unit: one table block, after its sheet's heading; every heading (a new sheet) starts one.
_LIMITS = UnitLimits(max_chars=32_000, max_blocks=2, section_chars=0, table_per_unit=True)
# A sheet up to this many cells is read whole, to tell its separate tables apart.
_WHOLE_SHEET_CELLS = 100_000
_WHOLE_SHEET_ROWS = 2_000

Cells = list[str]
Range = tuple[int, int, int, int]


class XlsxDocument(FlowDocument):
    unit_name = "sheet"
    format_label = "XLSX file"
    limits = _LIMITS

    def __init__(self, path: Path, mime_type: str) -> None:
        import openpyxl  # here, not at the top: the registry imports this module to list it

        self._workbook: Any = None
        with translate_errors(self.format_label), _quiet():
            self._archive = zipfile.ZipFile(path)
            # A file object, not the path: openpyxl refuses names without an Excel extension.
            self._handle = path.open("rb")
            try:
                self._package = Package(self._archive)
                self._workbook = openpyxl.load_workbook(
                    self._handle, read_only=True, data_only=True, keep_links=False
                )
            finally:
                if self._workbook is None:
                    self._handle.close()
                    self._archive.close()
            estimate = sum(_sheet_units(sheet) for sheet in self._workbook.worksheets)
        super().__init__(mime_type, estimate + sum(s.chartsheet for s in self._package.sheets))

    def iter_blocks(self) -> Iterator[Block]:
        names = set(self._workbook.sheetnames)
        for info in self._package.sheets:
            if not info.chartsheet and info.name not in names:
                continue
            yield Block(BlockKind.HEADING, " ".join(info.name.split()) or "Sheet", level=1)
            if not info.chartsheet:
                sheet = self._workbook[info.name]
                yield from _sheet_blocks(sheet, self._package.merged_ranges(info))
            yield from self._charts(info)
            yield from self._comments(info)

    def _charts(self, info: SheetInfo) -> Iterator[Block]:
        for chart in self._package.charts(info):
            if chart is None:
                self.warnings.append(f"sheet '{info.name}': a chart that could not be read")
                continue
            yield from chart_blocks(chart)

    def _comments(self, info: SheetInfo) -> Iterator[Block]:
        for comment in self._package.comments(info):
            by = f" by {comment.author}" if comment.author else ""
            yield Block(BlockKind.PARAGRAPH, f"Comment on {comment.ref}{by}: {comment.text}")

    def close(self) -> None:
        workbook, self._workbook = self._workbook, None
        if workbook is not None:
            with _quiet():
                workbook.close()
            self._handle.close()
            self._archive.close()


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence openpyxl's UserWarnings about features it drops (scoped, not global)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"openpyxl(\.|$)")
        yield


def _sheet_units(sheet: Any) -> int:
    max_row = sheet.max_row if isinstance(sheet.max_row, int) else 0
    return max(1, math.ceil(max_row / ROWS_PER_BLOCK))


def _sheet_blocks(sheet: Any, merged: list[Range]) -> Iterator[Block]:
    """TABLE blocks of the sheet: its separate tables when it is small, else row batches."""
    with _quiet():
        rows = _MergeFiller(merged).fill(sheet.iter_rows(values_only=True))
        if _small(sheet):
            grid = list(rows)
            blocks = [block for region in _regions(grid) for block in _tables(region)]
        else:
            blocks = None
    if blocks is not None:
        yield from blocks
        return
    batcher = RowBatcher(_MAX_BLOCK_CHARS)
    while (block := _next_batch(rows, batcher)) is not None:
        yield block


def _tables(rows: list[Cells]) -> Iterator[Block]:
    """TABLE blocks of a region (in row batches), the columns empty throughout it at its
    edges left out."""
    width = max(len(row) for row in rows)
    used = [c for c in range(width) if any(c < len(row) and row[c] for row in rows)]
    if not used:
        return
    batcher = RowBatcher(_MAX_BLOCK_CHARS)
    for row in rows:
        block = batcher.add_row(row[used[0] : used[-1] + 1])
        if block is not None:
            yield block
    if (block := batcher.flush_block()) is not None:
        yield block


def _small(sheet: Any) -> bool:
    rows, columns = sheet.max_row, sheet.max_column
    if not isinstance(rows, int) or not isinstance(columns, int):
        return False
    return rows <= _WHOLE_SHEET_ROWS and rows * columns <= _WHOLE_SHEET_CELLS


def _next_batch(rows: Iterator[Cells], batcher: RowBatcher) -> Block | None:
    """The next row batch; None when the sheet is exhausted (warnings silenced here)."""
    with _quiet():
        for row in rows:
            block = batcher.add_row(row)
            if block is not None:
                return block
    return batcher.flush_block()


class _MergeFiller:
    """Repeats each merged range's value (its top-left cell's) in every cell it covers."""

    def __init__(self, merged: list[Range]) -> None:
        self.starting: dict[int, list[Range]] = {}
        for bounds in merged:
            self.starting.setdefault(bounds[0], []).append(bounds)

    def fill(self, rows: Iterator[tuple[Any, ...]]) -> Iterator[Cells]:
        active: dict[Range, str] = {}
        for number, values in enumerate(rows, 1):
            cells = [cell_text(value) for value in values]
            for bounds in self.starting.get(number, ()):
                active[bounds] = cells[bounds[1] - 1] if bounds[1] <= len(cells) else ""
            for bounds, text in list(active.items()):
                if bounds[2] < number:
                    del active[bounds]
                    continue
                if len(cells) < bounds[3]:
                    cells.extend([""] * (bounds[3] - len(cells)))
                cells[bounds[1] - 1 : bounds[3]] = [text] * (bounds[3] - bounds[1] + 1)
            yield cells


def _regions(grid: list[Cells]) -> Iterator[list[Cells]]:
    """The sheet's tables: blocks of non-empty columns split at empty columns, each cut into
    runs of non-empty rows; in reading order (top to bottom, then left to right)."""
    width = max((len(row) for row in grid), default=0)
    used = [any(c < len(row) and row[c] for row in grid) for c in range(width)]
    groups: list[tuple[int, int]] = []
    for column, filled in enumerate(used):
        if filled and (not groups or groups[-1][1] != column):
            groups.append((column, column + 1))
        elif filled:
            groups[-1] = (groups[-1][0], column + 1)
    regions: list[tuple[int, int, list[Cells]]] = []
    for left, right in groups:
        run: list[Cells] = []
        for number, row in enumerate(grid):
            cells = row[left:right]
            if any(cells):
                if not run:
                    top = number
                run.append(cells)
            elif run:
                regions.append((top, left, run))
                run = []
        if run:
            regions.append((top, left, run))
    for _top, _left, rows in sorted(regions, key=lambda region: region[:2]):
        yield rows


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


# imported when a worker process starts (registry.preload), not on import
PRELOAD = ("openpyxl", "lxml.etree")
FORMATS = (
    Format("xlsx", XLSX, (".xlsx",), Content.PACKAGE, XlsxDocument),
    Format("xlsm", XLSM, (".xlsm",), Content.PACKAGE, XlsxDocument),
    Format("xltx", XLTX, (".xltx",), Content.PACKAGE, XlsxDocument),
    Format("xltm", XLTM, (".xltm",), Content.PACKAGE, XlsxDocument),
)
