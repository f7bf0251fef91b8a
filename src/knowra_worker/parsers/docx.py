"""Word documents (.docx) through python-docx, reading the body XML in document order.

Paragraphs and tables come interleaved as they are in the body (content controls and custom
XML wrappers are looked through). A paragraph is a heading when its style (or a style it is
based on) is "Heading N" or "Title", or when it has an outline level. The Title is level 1;
"Heading N" is level N, or N + 1 (capped at 6) in a document that has a Title, so that the
sections sit below it. A paragraph is a list item when it has numbering or a "List ..."
style; consecutive list items make one LIST block, one item per line ("- item" or "N. item",
indented two spaces per level). Tables give a TABLE block, one line per row with cells
joined by " | "; a merged cell appears once; a one-cell table is read as the content it
frames. Text includes hyperlinks, fields, text boxes and equations (as their characters);
deleted revisions, headers, footers, comments and notes are left out. Strict Open XML files
are mapped to the Transitional namespaces before parsing.
"""

from __future__ import annotations

import functools
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowra_worker.document import Block, BlockKind
from knowra_worker.parsers._common import (
    FlowDocument,
    UnitLimits,
    collapse_spaces,
    strip_controls,
    translate_errors,
)
from knowra_worker.parsers._tables import row_line, table_text
from knowra_worker.parsers.base import Content, Format
from knowra_worker.parsers.detect import DOCX

_LIMITS = UnitLimits(max_chars=32_000, max_blocks=50, section_chars=8_000)
# The namespaces this module reads (python-docx's `nsmap` has the same URIs); spelled out
# here so that importing the module does not import python-docx and lxml.
_NS = {
    "w": "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
    "m": "http://schemas.openxmlformats.org/officeDocument/2006/math",
    "mc": "http://schemas.openxmlformats.org/markup-compatibility/2006",
}


def qn(tag: str) -> str:
    """Clark notation of a prefixed tag, "w:p" -> "{http://...}p" (as python-docx's qn)."""
    prefix, local = tag.split(":")
    return f"{{{_NS[prefix]}}}{local}"


@functools.cache
def _text_nodes() -> Callable[[Any], list[Any]]:
    """The compiled XPath that finds the text-bearing nodes of a paragraph, in order."""
    from lxml import etree

    items = ("w:r/w:t", "w:r/w:tab", "w:r/w:br", "w:r/w:cr", "w:r/w:noBreakHyphen", "m:r/m:t",
             "w:p")  # fmt: skip
    query = " | ".join(f".//{item}[not(ancestor::mc:Fallback)]" for item in items)
    xpath: Callable[[Any], list[Any]] = etree.XPath(query, namespaces=_NS)
    return xpath


_P, _TBL, _TR, _TC = qn("w:p"), qn("w:tbl"), qn("w:tr"), qn("w:tc")
_WRAPPERS = {qn("w:sdt"): qn("w:sdtContent"), qn("w:customXml"): None}
_VAL = qn("w:val")
_HEADING_NAME = re.compile(r"heading\s*([1-9])$", re.IGNORECASE)
_MAX_LEVEL = 6
_BULLET_FORMATS = {"bullet", "none"}
_MAX_DEPTH = 50
# Strict Open XML uses other namespace URIs for the same vocabulary as Transitional.
_STRICT_NAMESPACE = re.compile(rb"http://purl\.oclc\.org/ooxml/(\w+)/(\w+)")
_STRICT_RENAMES = {
    b"extendedProperties": b"extended-properties",
    b"customProperties": b"custom-properties",
}


class DocxDocument(FlowDocument):
    format_label = "DOCX file"
    limits = _LIMITS

    def __init__(self, path: Path, mime_type: str) -> None:
        with translate_errors(self.format_label):
            document = _load(path)
            self._body = document.element.body
            self._styles = _Styles(document.styles.element)
            self._numbering = _Numbering(_numbering_element(document))
            children = len(self._body)
            self._title_shift = int(_uses_title(self._body, self._styles))
        super().__init__(mime_type, -(-children // _LIMITS.max_blocks))

    def iter_blocks(self) -> Iterator[Block]:
        builder = _BlockBuilder(self._styles, self._numbering.fresh(), self._title_shift)
        for element in _content(self._body):
            yield from builder.add(element)
        yield from builder.flush_list()

    def close(self) -> None:
        self._body = None


def _uses_title(body: Any, styles: _Styles) -> bool:
    """Whether a paragraph has the Title style: then headings sit one level below it."""
    return any(styles.describe(node.get(_VAL)).title for node in body.iter(qn("w:pStyle")))


def _load(path: Path) -> Any:
    """Open with python-docx; a Strict Open XML package is first mapped to Transitional."""
    import docx  # here, not at the top: the registry imports this module to list it

    with zipfile.ZipFile(path) as archive:
        if b"purl.oclc.org/ooxml/" not in archive.read("_rels/.rels"):
            return docx.Document(str(path))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as converted:
            for info in archive.infolist():
                data = archive.read(info)
                if info.filename.endswith((".xml", ".rels")):
                    data = _STRICT_NAMESPACE.sub(_transitional_namespace, data)
                converted.writestr(info.filename, data)
    buffer.seek(0)
    return docx.Document(buffer)


def _transitional_namespace(match: re.Match[bytes]) -> bytes:
    area, name = match.groups()
    name = _STRICT_RENAMES.get(name, name)
    return b"http://schemas.openxmlformats.org/" + area + b"/2006/" + name


def _numbering_element(document: Any) -> Any:
    try:
        return document.part.numbering_part.element
    except (KeyError, NotImplementedError):
        return None


def _content(parent: Any, depth: int = 0) -> Iterator[Any]:
    """The w:p and w:tbl elements under `parent`, looking through sdt/customXml wrappers."""
    for child in parent.iterchildren():
        tag = child.tag
        if tag in (_P, _TBL, _TR, _TC):
            yield child
        elif tag in _WRAPPERS and depth < _MAX_DEPTH:
            inner_tag = _WRAPPERS[tag]
            inner = child.find(inner_tag) if inner_tag else child
            if inner is not None:
                yield from _content(inner, depth + 1)


def paragraph_text(paragraph: Any) -> str:
    """The visible text of a w:p element: runs, tabs, breaks, text boxes, equations."""
    parts: list[str] = []
    for node in _text_nodes()(paragraph):
        local = node.tag.rsplit("}", 1)[-1]
        if local == "t":
            parts.append(node.text or "")
        elif local == "tab":
            parts.append("\t")
        elif local in {"br", "cr", "p"}:
            parts.append("\n")
        elif local == "noBreakHyphen":
            parts.append("-")
    lines = (" ".join(line.split()) for line in strip_controls("".join(parts)).split("\n"))
    return "\n".join(line for line in lines if line)


# --- styles and numbering --------------------------------------------------------------


@dataclass(slots=True)
class _StyleInfo:
    name: str
    based_on: str | None
    outline: int | None  # 0-based outline level
    num_id: str | None  # numbering the style applies ("0" switches it off)
    num_level: int | None


class _Styles:
    """Paragraph styles by id, with inherited heading level and list-ness cached."""

    def __init__(self, element: Any) -> None:
        self._styles: dict[str, _StyleInfo] = {}
        self._default: str | None = None
        for style in element.iterchildren(qn("w:style")):
            if style.get(qn("w:type")) != "paragraph":
                continue
            style_id = style.get(qn("w:styleId")) or ""
            self._styles[style_id] = _style_info(style)
            if style.get(qn("w:default")) in {"1", "true", "on"}:
                self._default = style_id
        self._cache: dict[str | None, _ResolvedStyle] = {}

    def describe(self, style_id: str | None) -> _ResolvedStyle:
        """Heading level, list-ness and numbering of a paragraph style, inheritance applied."""
        if style_id not in self._cache:
            self._cache[style_id] = self._resolve(style_id or self._default)
        return self._cache[style_id]

    def _resolve(self, style_id: str | None) -> _ResolvedStyle:
        resolved = _ResolvedStyle()
        seen: set[str] = set()
        while style_id and style_id in self._styles and style_id not in seen:
            seen.add(style_id)
            info = self._styles[style_id]
            resolved.list_name = resolved.list_name or info.name.lower().startswith("list")
            if not resolved.level:
                resolved.level = _style_level(info)
                resolved.title = info.name.strip().lower() == "title"
            if resolved.num_id is None:
                resolved.num_id = info.num_id
            if resolved.num_level is None:
                resolved.num_level = info.num_level
            style_id = info.based_on
        return resolved


@dataclass(slots=True)
class _ResolvedStyle:
    level: int = 0  # heading level, 0 when not a heading style
    title: bool = False  # the Title style (or one based on it)
    list_name: bool = False  # a "List ..." style
    num_id: str | None = None
    num_level: int | None = None


def _style_info(style: Any) -> _StyleInfo:
    name = style.find(qn("w:name"))
    based_on = style.find(qn("w:basedOn"))
    ppr = style.find(qn("w:pPr"))
    num_id, num_level = _num_pr(ppr)
    return _StyleInfo(
        name=(name.get(_VAL) if name is not None else "") or "",
        based_on=based_on.get(_VAL) if based_on is not None else None,
        outline=_int(_child_val(ppr, "w:outlineLvl")),
        num_id=num_id,
        num_level=num_level,
    )


def _style_level(info: _StyleInfo) -> int:
    match = _HEADING_NAME.match(info.name.strip())
    if match:
        return min(int(match.group(1)), _MAX_LEVEL)
    if info.name.strip().lower() == "title":
        return 1
    if info.outline is not None and 0 <= info.outline < 9:
        return min(info.outline + 1, _MAX_LEVEL)
    return 0


def _int(value: str | None, default: int | None = None) -> int | None:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


@dataclass(slots=True)
class _Numbering:
    """Numbering formats by (numId, level), and running counters for numbered lists."""

    element: Any
    formats: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    counters: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.element is None:
            return
        abstract: dict[str, dict[int, tuple[str, int]]] = {}
        for node in self.element.iterchildren(qn("w:abstractNum")):
            abstract[node.get(qn("w:abstractNumId")) or ""] = _levels(node)
        for num in self.element.iterchildren(qn("w:num")):
            ref = num.find(qn("w:abstractNumId"))
            levels = abstract.get(ref.get(_VAL) if ref is not None else "", {})
            for level, spec in levels.items():
                self.formats[(num.get(qn("w:numId")) or "", level)] = spec

    def fresh(self) -> _Numbering:
        """A copy with the counters reset, for a new pass over the document."""
        return _Numbering(None, self.formats, {})

    def marker(self, num_id: str, level: int) -> str:
        fmt, start = self.formats.get((num_id, level), ("bullet", 1))
        counters = self.counters.setdefault(num_id, [0] * 9)
        level = max(0, min(level, 8))
        counters[level] += 1
        for deeper in range(level + 1, 9):
            counters[deeper] = 0
        if fmt in _BULLET_FORMATS:
            return "-"
        return f"{start - 1 + counters[level]}."


def _levels(abstract_num: Any) -> dict[int, tuple[str, int]]:
    levels = {}
    for lvl in abstract_num.iterchildren(qn("w:lvl")):
        fmt = lvl.find(qn("w:numFmt"))
        start = lvl.find(qn("w:start"))
        level = _int(lvl.get(qn("w:ilvl")), 0) or 0
        levels[level] = (
            (fmt.get(_VAL) if fmt is not None else None) or "bullet",
            (_int(start.get(_VAL), 1) if start is not None else 1) or 1,
        )
    return levels


# --- body to blocks --------------------------------------------------------------------


class _BlockBuilder:
    def __init__(self, styles: _Styles, numbering: _Numbering, title_shift: int) -> None:
        self.styles = styles
        self.numbering = numbering
        self.title_shift = title_shift  # 1 when the document has a Title above its headings
        self.items: list[str] = []

    def add(self, element: Any, depth: int = 0) -> Iterator[Block]:
        if element.tag == _P:
            yield from self._paragraph(element)
        elif element.tag == _TBL and (cell := _single_cell(element)) is not None:
            # A one-cell table is a frame around content, not data: read what it holds.
            if depth < _MAX_DEPTH:
                for inner in _content(cell):
                    yield from self.add(inner, depth + 1)
        else:
            yield from self.flush_list()
            rows = table_rows(element) if element.tag == _TBL else [_row_line(element)]
            text = table_text(rows)
            if text:
                yield Block(BlockKind.TABLE, text)

    def flush_list(self) -> Iterator[Block]:
        if self.items:
            yield Block(BlockKind.LIST, "\n".join(self.items))
        self.items = []

    def _paragraph(self, paragraph: Any) -> Iterator[Block]:
        text = paragraph_text(paragraph)
        ppr = paragraph.find(qn("w:pPr"))
        style = self.styles.describe(_child_val(ppr, "w:pStyle"))
        level = style.level
        own_outline = _int(_child_val(ppr, "w:outlineLvl"))
        if own_outline is not None and 0 <= own_outline < 9:
            level = own_outline + 1
        if level and not style.title:
            level = min(level + self.title_shift, _MAX_LEVEL)
        item = None if level else self._list_item(ppr, style, text)
        if item is not None:
            if text:
                self.items.append(item)
            return
        if not text:
            return
        yield from self.flush_list()
        if level:
            yield Block(BlockKind.HEADING, " ".join(text.split()), level=level)
        else:
            yield Block(BlockKind.PARAGRAPH, text)

    def _list_item(self, ppr: Any, style: _ResolvedStyle, text: str) -> str | None:
        """The item's line if the paragraph is a list item, else None."""
        own_id, own_level = _num_pr(ppr)
        num_id = own_id if own_id is not None else style.num_id
        if num_id == "0" or (not num_id and not style.list_name):
            return None
        level = own_level if own_level is not None else (style.num_level or 0)
        marker = self.numbering.marker(num_id, level) if num_id and text else "-"
        return f"{'  ' * level}{marker} {' '.join(text.split())}"


def _child_val(parent: Any, tag: str) -> str | None:
    if parent is None:
        return None
    child = parent.find(qn(tag))
    return child.get(_VAL) if child is not None else None


def _num_pr(ppr: Any) -> tuple[str | None, int | None]:
    """(numId, level) from a w:pPr's numbering properties; None where not given."""
    num_pr = ppr.find(qn("w:numPr")) if ppr is not None else None
    if num_pr is None:
        return None, None
    level = _int(_child_val(num_pr, "w:ilvl"))
    return _child_val(num_pr, "w:numId"), None if level is None else max(0, min(level, 8))


def _single_cell(table: Any) -> Any | None:
    rows = [row for row in _content(table) if row.tag == _TR]
    if len(rows) != 1:
        return None
    cells = [cell for cell in _content(rows[0]) if cell.tag == _TC]
    return cells[0] if len(cells) == 1 else None


def table_rows(table: Any, depth: int = 0) -> list[str]:
    """One " | "-joined line per row (rows of nested tables are flattened into their cell)."""
    return [_row_line(row, depth) for row in _content(table) if row.tag == _TR]


def _row_line(row: Any, depth: int = 0) -> str:
    return row_line(_cell_text(cell, depth) for cell in _content(row) if cell.tag == _TC)


def _cell_text(cell: Any, depth: int) -> str:
    tc_pr = cell.find(qn("w:tcPr"))
    v_merge = tc_pr.find(qn("w:vMerge")) if tc_pr is not None else None
    if v_merge is not None and v_merge.get(_VAL) in (None, "continue"):
        return ""  # continuation of a vertically merged cell: shown once, in its first row
    parts = []
    for child in _content(cell):
        if child.tag == _P:
            parts.append(paragraph_text(child))
        elif child.tag == _TBL and depth < _MAX_DEPTH:
            parts.append("; ".join(row for row in table_rows(child, depth + 1) if row))
    return collapse_spaces(" ".join(parts))


FORMATS = (Format("docx", DOCX, (".docx",), Content.PACKAGE, DocxDocument),)
