"""DrawingML charts (the `c:chartSpace` parts of Word, PowerPoint and Excel files) as blocks.

The three Office formats embed the same chart part, and each chart keeps a cache of the
numbers it draws, so a chart is read alike everywhere from its XML: its title, its kind
("Bar chart", "Line chart", ...), and its data as a table, the series as columns and the
categories as rows (the header row names the series), which is how a reader would tabulate
what the chart shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from knowra_worker.document import Block, BlockKind
from knowra_worker.parsers._tables import rows_block

_C = "{http://schemas.openxmlformats.org/drawingml/2006/chart}"
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_KINDS = {
    "barChart": "Bar", "bar3DChart": "Bar", "lineChart": "Line", "line3DChart": "Line",
    "pieChart": "Pie", "pie3DChart": "Pie", "ofPieChart": "Pie", "doughnutChart": "Doughnut",
    "areaChart": "Area", "area3DChart": "Area", "scatterChart": "Scatter",
    "bubbleChart": "Bubble", "radarChart": "Radar", "stockChart": "Stock",
    "surfaceChart": "Surface", "surface3DChart": "Surface",
}  # fmt: skip
_MAX_POINTS = 10_000  # of one series: a chart's cache is small, a hostile one need not be


@dataclass(slots=True)
class Series:
    name: str
    categories: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Chart:
    title: str
    kind: str  # "Bar chart", ..., "Other chart" for mixed or unknown kinds
    series: list[Series]

    def rows(self) -> list[tuple[str, ...]]:
        """The data table: a header row naming the series, then one row per category."""
        if not self.series:
            return []
        categories = next((s.categories for s in self.series if s.categories), [])
        length = max(len(categories), *(len(s.values) for s in self.series))
        header = ("", *(s.name or f"Series {n}" for n, s in enumerate(self.series, 1)))
        rows = [header]
        for index in range(length):
            label = categories[index] if index < len(categories) else str(index + 1)
            values = (s.values[index] if index < len(s.values) else "" for s in self.series)
            rows.append((label, *values))
        return rows


def parse_chart(xml: bytes) -> Chart | None:
    """The chart a chart part describes; None when the part holds no chart."""
    from lxml import etree

    root = etree.fromstring(xml, parser=etree.XMLParser(resolve_entities=False, huge_tree=False))
    chart = root.find(f"{_C}chart")
    if chart is None:
        return None
    plot = chart.find(f"{_C}plotArea")
    groups = [g for g in plot if _local(g) in _KINDS] if plot is not None else []
    kinds = {_KINDS[_local(g)] for g in groups}
    kind = f"{kinds.pop()} chart" if len(kinds) == 1 else "Other chart"
    series = [_series(ser) for group in groups for ser in group.iterfind(f"{_C}ser")]
    return Chart(_title(chart.find(f"{_C}title")), kind, series)


def chart_blocks(chart: Chart, page: int | None = None) -> Iterator[Block]:
    """The title and kind as a paragraph, then the data as a TABLE block."""
    caption = f"{chart.title} ({chart.kind})" if chart.title else chart.kind
    yield Block(BlockKind.PARAGRAPH, caption, page=page)
    table = rows_block(chart.rows(), page)
    if table:
        yield table


def _local(element: Any) -> str:
    tag = element.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _title(title: Any) -> str:
    if title is None:
        return ""
    rich = [t.text or "" for t in title.iter(f"{_A}t")]
    if rich:
        return " ".join("".join(rich).split())
    return " ".join(" ".join(_points(title.find(f"{_C}tx"))).split())


def _series(ser: Any) -> Series:
    name = " ".join(" ".join(_points(ser.find(f"{_C}tx"))).split())
    categories = _points(ser.find(f"{_C}cat")) or _points(ser.find(f"{_C}xVal"))
    values = _points(ser.find(f"{_C}val")) or _points(ser.find(f"{_C}yVal"))
    return Series(name, categories, [_number(v) for v in values])


def _points(holder: Any) -> list[str]:
    """The cached values under a c:tx, c:cat or c:val, in index order (gaps left empty)."""
    if holder is None:
        return []
    direct = holder.find(f"{_C}v")
    if direct is not None:
        return [direct.text or ""]
    cache = next((c for c in holder.iter() if _local(c) in {"strCache", "numCache", "lvl"}), None)
    if cache is None:
        return []
    points: dict[int, str] = {}
    for point in cache.iterfind(f"{_C}pt"):
        index = _index(point.get("idx"))
        value = point.find(f"{_C}v")
        if index is not None and index < _MAX_POINTS and value is not None:
            points[index] = " ".join((value.text or "").split())
    if not points:
        return []
    return [points.get(i, "") for i in range(max(points) + 1)]


def _index(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _number(value: str) -> str:
    """A cached number as a reader writes it: "120" not "120.0", "4.3" not "4.2999999"."""
    try:
        number = float(value)
    except ValueError:
        return value
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return repr(round(number, 10))
