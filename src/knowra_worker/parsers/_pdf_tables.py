"""Ruled tables of a PDF page, from pdfium's path objects (called with PDFIUM_LOCK held).

The ruling lines a page draws (stroked or filled paths, thin rectangles included) become
horizontal and vertical edges; pdfplumber's geometry (MIT: snapping and joining edges, their
intersections, the cells those describe, cells grouped into tables) finds the tables, and
each cell's text is pdfium's characters whose centre lies in the cell. pdfplumber's own PDF parsing
(pdfminer) is never used: the page is read once, by pdfium. A page without both horizontal
and vertical rules costs one pass over its objects and nothing more.

Grids with few cells of their own (boxes drawn around a figure or a code sample) are not
tables; a position covered by a merged cell is left empty (the text is given once).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from knowra_worker.parsers._common import strip_controls
from knowra_worker.parsers._pdf_layout import join_lines, space_scripts
from knowra_worker.parsers._pdfium_calls import address, calls

if TYPE_CHECKING:
    import pypdfium2 as pdfium

_MAX_PATHS = 4000  # a page drawing more is a figure, not a table
_MAX_SEGMENTS = 12  # a longer path is a drawing's outline, not cell borders
_MIN_EDGE = 3.0  # points: shorter segments are glyph-like marks, not rules
_AXIS_SLACK = 1.0  # points a rule may lean and still count as horizontal or vertical
_TOLERANCE = 3.0  # pdfplumber's default snap, join and intersection tolerances

_MIN_FILLED = 0.5  # of a grid's positions that hold a cell of their own
_ALEFS = "\u0622\u0623\u0625\u0627"
_LAM = "\u0644"

Box = tuple[float, float, float, float]  # x0, top, x1, bottom; top measured from the page top
# an edge until the page is known to have enough of them: orientation ("h" or "v"), x0, x1,
# top, bottom (top measured from the page top); pdfplumber's dicts are made only then
Edge = tuple[str, float, float, float, float]


@dataclass(frozen=True, slots=True)
class Char:
    """One character of the page's text: its offset in the text, and its box."""

    offset: int
    text: str
    left: float
    bottom: float
    right: float
    top: float

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.left, self.bottom, self.right, self.top)


# the page's characters that may lie in a box (x0, top, x1, bottom; page height), read only
# for the tables found
CharBoxes = Callable[[Box, float], list[Char]]


@dataclass(frozen=True, slots=True)
class Table:
    bbox: Box
    rows: tuple[tuple[str, ...], ...]
    covered: frozenset[int]  # text offsets of the characters its cells hold


def find_tables(
    page: pdfium.PdfPage, textpage: pdfium.PdfTextPage, height: float, chars: CharBoxes
) -> list[Table]:
    edges = _edges(page, height)
    if not _enough_rules(edges):
        return []
    from pdfplumber.table import Table as CellTable
    from pdfplumber.table import (
        cells_to_tables,
        edges_to_intersections,
        intersections_to_cells,
        merge_edges,
    )

    merged = merge_edges(
        [_plumber_edge(edge) for edge in edges], _TOLERANCE, _TOLERANCE, _TOLERANCE, _TOLERANCE
    )
    merged = [e for e in merged if max(e["x1"] - e["x0"], e["bottom"] - e["top"]) >= _MIN_EDGE]
    cells = intersections_to_cells(edges_to_intersections(merged, _TOLERANCE, _TOLERANCE))
    tables = []
    for group in cells_to_tables(cells):
        grid = CellTable(None, group)  # type: ignore[arg-type]  # rows need only the cells
        if not _grid_like(grid):
            continue
        texts, covered = _cell_texts(grid.cells, chars(grid.bbox, height), height)
        rows = _rows(grid, texts)
        if len(rows) >= 2 and max(len(row) for row in rows) >= 2 and _has_text(rows):
            tables.append(Table(grid.bbox, rows, covered))
    return tables


def _enough_rules(edges: list[Edge]) -> bool:
    """Whether the rules could make a table of two rows and two columns at least: three
    horizontal rules at distinct heights and three vertical ones at distinct places, once
    positions closer than the snap tolerance count as one (as pdfplumber snaps them). Most
    pages fail this, and skip the geometry."""
    heights = [top for orientation, _, _, top, _ in edges if orientation == "h"]
    places = [x0 for orientation, x0, _, _, _ in edges if orientation == "v"]
    return _positions(heights) >= 3 and _positions(places) >= 3


def _positions(values: list[float]) -> int:
    """How many groups the values make when neighbours closer than the tolerance join."""
    values.sort()
    return sum(1 for a, b in zip(values, values[1:], strict=False) if b - a > _TOLERANCE) + (
        1 if values else 0
    )


def _grid_like(grid: Any) -> bool:
    """Most positions of the grid hold a cell of their own: boxes drawn around a figure or
    a code sample make one big cell among slivers, not a table."""
    rows = grid.rows
    positions = sum(len(row.cells) for row in rows)
    filled = sum(cell is not None for row in rows for cell in row.cells)
    return positions > 0 and filled >= _MIN_FILLED * positions


def _has_text(rows: tuple[tuple[str, ...], ...]) -> bool:
    return sum(bool(cell) for row in rows for cell in row) >= 2


def _rows(grid: Any, texts: dict[Box, str]) -> tuple[tuple[str, ...], ...]:
    rows = []
    for row in grid.rows:
        cells = tuple(texts.get(cell, "") if cell else "" for cell in row.cells)
        if any(cells):
            rows.append(cells)
    return tuple(rows)


def _cell_texts(
    cells: list[Box], chars: list[Char], height: float
) -> tuple[dict[Box, str], frozenset[int]]:
    """Each cell's characters (by their centre), in pdfium's order, a break between runs
    that pdfium does not give one after the other; and the offsets of all of them."""
    runs: dict[Box, list[list[Char]]] = {}
    covered: set[int] = set()
    for char in chars:
        x, y = (char.left + char.right) / 2, height - (char.bottom + char.top) / 2
        cell = next((c for c in cells if c[0] <= x < c[2] and c[1] <= y < c[3]), None)
        if cell is None:
            continue
        covered.add(char.offset)
        pieces = runs.setdefault(cell, [])
        if pieces and pieces[-1][-1].offset == char.offset - 1:
            pieces[-1].append(char)
        else:
            pieces.append([char])
    return {cell: _cell_text(pieces) for cell, pieces in runs.items()}, frozenset(covered)


def _cell_text(pieces: list[list[Char]]) -> str:
    lines = [space_scripts(strip_controls(_ligatures_in_order(piece))) for piece in pieces]
    return " ".join(join_lines(lines).split())


def _ligatures_in_order(piece: list[Char]) -> str:
    """The run's text, a lam-alef ligature's two letters (one glyph, one box) lam first."""
    text = [char.text for char in piece]
    for i in range(len(piece) - 1):
        first, second = piece[i], piece[i + 1]
        if first.text in _ALEFS and second.text == _LAM and first.box == second.box:
            text[i], text[i + 1] = second.text, first.text
    return "".join(text)


# --- ruling lines -----------------------------------------------------------------------------


def _edges(page: pdfium.PdfPage, height: float) -> list[Edge]:
    """The page's ruling lines. Every page pays for this walk over its objects, so the
    walk calls pdfium through lean prototypes (see _pdfium_calls), and the values pdfium
    fills are made once per page."""
    import pypdfium2.raw as pdfium_c

    fast = calls()
    handle, get_object, get_type = address(page.raw), fast.page_object, fast.object_type
    path_type = pdfium_c.FPDF_PAGEOBJ_PATH
    paths = []
    for i in range(pdfium_c.FPDFPage_CountObjects(page.raw)):
        obj = get_object(handle, i)
        if get_type(obj) == path_type:
            paths.append(obj)
    if not paths or len(paths) > _MAX_PATHS:
        return []
    get_mode, get_bounds = fast.draw_mode, fast.object_bounds
    fill, stroke = ctypes.c_int(0), ctypes.c_int(0)
    modes = (ctypes.addressof(fill), ctypes.addressof(stroke))
    left, bottom, right, top = (ctypes.c_float(0) for _ in range(4))
    bounds = [ctypes.addressof(v) for v in (left, bottom, right, top)]
    edges: list[Edge] = []
    for obj in paths:
        if not get_mode(obj, *modes) or not (fill.value or stroke.value):
            continue  # drawn neither filled nor stroked: nothing to see
        if get_bounds(obj, *bounds):
            box = (left.value, bottom.value, right.value, top.value)
            edges.extend(_object_edges(obj, box, height))
    return edges


def _object_edges(obj: int, box: tuple[float, float, float, float], height: float) -> list[Edge]:
    """A thin path (a rule, a thin filled rectangle) is one edge, read from its bounds;
    other paths are walked segment by segment, unless they are long (curves of a figure)."""
    import pypdfium2.raw as pdfium_c

    x0, y0, x1, y1 = box
    if y1 - y0 <= 2 * _AXIS_SLACK or x1 - x0 <= 2 * _AXIS_SLACK:
        if y1 - y0 <= 2 * _AXIS_SLACK:
            edge = _edge(x0, (y0 + y1) / 2, x1, (y0 + y1) / 2, height)
        else:
            edge = _edge((x0 + x1) / 2, y0, (x0 + x1) / 2, y1, height)
        return [edge] if edge else []
    path = ctypes.cast(obj, pdfium_c.FPDF_PAGEOBJECT)
    if pdfium_c.FPDFPath_CountSegments(path) > _MAX_SEGMENTS:
        return []
    return _path_edges(path, height)


def _path_edges(obj: Any, height: float) -> list[Edge]:
    points = _path_points(obj)
    edges = []
    for (xa, ya), (xb, yb) in zip(points, points[1:], strict=False):
        if xa is None or xb is None:
            continue
        edge = _edge(xa, ya, xb, yb, height)
        if edge is not None:
            edges.append(edge)
    return edges


def _path_points(obj: Any) -> list[tuple[Any, Any]]:
    """The path's points in page space, (None, None) between subpaths; closed subpaths end
    at their first point again. Curves count by their end points only (a rounded corner
    still joins its two rules)."""
    import pypdfium2.raw as pdfium_c

    matrix = pdfium_c.FS_MATRIX()
    if not pdfium_c.FPDFPageObj_GetMatrix(obj, ctypes.byref(matrix)):
        return []
    a, b, c, d, e, f = matrix.a, matrix.b, matrix.c, matrix.d, matrix.e, matrix.f
    x, y = ctypes.c_float(0), ctypes.c_float(0)
    points: list[tuple[Any, Any]] = []
    start: tuple[float, float] | None = None
    for i in range(pdfium_c.FPDFPath_CountSegments(obj)):
        segment = pdfium_c.FPDFPath_GetPathSegment(obj, i)
        if not pdfium_c.FPDFPathSegment_GetPoint(segment, ctypes.byref(x), ctypes.byref(y)):
            continue
        point = (a * x.value + c * y.value + e, b * x.value + d * y.value + f)
        if pdfium_c.FPDFPathSegment_GetType(segment) == pdfium_c.FPDF_SEGMENT_MOVETO:
            points.append((None, None))
            start = point
        points.append(point)
        if pdfium_c.FPDFPathSegment_GetClose(segment) and start is not None:
            points.append(start)
    return points


def _edge(xa: float, ya: float, xb: float, yb: float, height: float) -> Edge | None:
    if abs(ya - yb) <= _AXIS_SLACK and abs(xa - xb) >= _MIN_EDGE:
        top = height - (ya + yb) / 2
        return ("h", xa, xb, top, top) if xa < xb else ("h", xb, xa, top, top)
    if abs(xa - xb) <= _AXIS_SLACK and abs(ya - yb) >= _MIN_EDGE:
        x = (xa + xb) / 2
        return ("v", x, x, height - max(ya, yb), height - min(ya, yb))
    return None


def _plumber_edge(edge: Edge) -> dict[str, Any]:
    """An edge as pdfplumber's geometry takes it."""
    orientation, x0, x1, top, bottom = edge
    return {"x0": x0, "x1": x1, "top": top, "bottom": bottom, "width": x1 - x0,
            "height": bottom - top, "orientation": orientation}  # fmt: skip
