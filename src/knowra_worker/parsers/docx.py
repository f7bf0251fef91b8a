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
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowra_worker.document import Block, BlockKind
from knowra_worker.parsers._charts import chart_blocks, parse_chart
from knowra_worker.parsers._common import (
    FlowDocument,
    UnitLimits,
    clark,
    collapse_inline_spaces,
    collapse_spaces,
    rewritten_package,
    translate_errors,
)
from knowra_worker.parsers._omml import convert as convert_math
from knowra_worker.parsers._tables import row_line, rows_block
from knowra_worker.parsers.base import Content, Format
from knowra_worker.parsers.detect import DOCM, DOCX, DOTM, DOTX

_LIMITS = UnitLimits(max_chars=32_000, max_blocks=50, section_chars=8_000)
# The namespaces this module reads (python-docx's `nsmap` has the same URIs); spelled out
# here so that importing the module does not import python-docx and lxml.
_NS = {
    "w": "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
    "m": "http://schemas.openxmlformats.org/officeDocument/2006/math",
    "mc": "http://schemas.openxmlformats.org/markup-compatibility/2006",
    "c": "http://schemas.openxmlformats.org/drawingml/2006/chart",
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
}


def qn(tag: str) -> str:
    """Clark notation of a prefixed name of this format's vocabulary."""
    return clark(_NS, tag)


@functools.cache
def _text_nodes() -> Callable[[Any], list[Any]]:
    """The compiled XPath that finds the content nodes of a paragraph, in order: text, tabs
    and breaks of runs, nested paragraphs (text boxes), equations and chart references."""
    from lxml import etree

    items = ("w:r/w:t", "w:r/w:tab", "w:r/w:ptab", "w:r/w:br", "w:r/w:cr",
             "w:r/w:noBreakHyphen", "w:r/w:sym", "w:p", "m:oMath", "c:chart")  # fmt: skip
    outside = "[not(ancestor::mc:Fallback)][not(ancestor::m:oMath)]"
    query = " | ".join(f".//{item}{outside}" for item in items)
    xpath: Callable[[Any], list[Any]] = etree.XPath(query, namespaces=_NS)
    return xpath


_P, _TBL, _TR, _TC = qn("w:p"), qn("w:tbl"), qn("w:tr"), qn("w:tc")
_HYPERLINK, _OMATH_PARA = qn("w:hyperlink"), qn("m:oMathPara")
_RELATIONSHIP_ID = qn("r:id")
_RPR, _VERT_ALIGN = qn("w:rPr"), qn("w:vertAlign")
_SCRIPT_TAGS = {"superscript": "sup", "subscript": "sub"}
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
            self._part = _Part(document.part)
            children = len(self._body)
            self._title_shift = int(_uses_title(self._body, self._styles))
        super().__init__(mime_type, -(-children // _LIMITS.max_blocks))
        self._part.warnings = self.warnings

    def iter_blocks(self) -> Iterator[Block]:
        builder = _BlockBuilder(
            self._styles, self._numbering.fresh(), self._title_shift, self._part
        )
        for element in _content(self._body):
            yield from builder.add(element)
        yield from builder.flush_list()
        yield from _notes(self._part)

    def close(self) -> None:
        self._body = None


class _Part:
    """The document part's relationships: hyperlink targets, charts, notes; and the
    warnings about what could not be read, collected for the unit being built."""

    def __init__(self, part: Any) -> None:
        self.part = part
        self.warnings: list[str] = []

    def link(self, rel_id: str) -> str:
        rel = self.part.rels.get(rel_id)
        return str(rel.target_ref) if rel is not None and rel.is_external else ""

    def chart(self, rel_id: str) -> Iterator[Block]:
        try:
            chart = parse_chart(self.part.related_parts[rel_id].blob)
        except Exception:  # noqa: BLE001 - one unreadable chart must not fail the document
            chart = None
        if chart is None:
            self.warnings.append("a chart that could not be read was skipped")
            return
        yield from chart_blocks(chart)

    def related_xml(self, reltype_suffix: str) -> Any | None:
        """The XML root of the part related by a relationship type ending in the suffix."""
        from lxml import etree

        for rel in self.part.rels.values():
            if not rel.is_external and rel.reltype.endswith(reltype_suffix):
                parser = etree.XMLParser(resolve_entities=False)
                return etree.fromstring(rel.target_part.blob, parser=parser)
        return None


def _notes(part: _Part) -> Iterator[Block]:
    """Footnotes, then endnotes, as paragraphs after the body (separators left out)."""
    for kind in ("footnote", "endnote"):
        try:
            root = part.related_xml(f"/{kind}s")
        except Exception:  # noqa: BLE001 - notes are extras: a broken part is skipped
            part.warnings.append(f"the {kind}s could not be read and were skipped")
            continue
        if root is None:
            continue
        for note in root.iterchildren(qn(f"w:{kind}")):
            if note.get(qn("w:type")) not in (None, "normal"):
                continue
            text = collapse_inline_spaces("\n".join(read_paragraph(p).text for p in note.iter(_P)))
            if text:
                yield Block(BlockKind.PARAGRAPH, " ".join(text.split()))


def _uses_title(body: Any, styles: _Styles) -> bool:
    """Whether a paragraph has the Title style: then headings sit one level below it."""
    return any(styles.describe(node.get(_VAL)).title for node in body.iter(qn("w:pStyle")))


# Main parts of the Word package types python-docx does not open as such (macro-enabled,
# templates): renamed to the document's content type in a copy, the content is the same.
_OTHER_MAIN_TYPES = re.compile(
    rb"application/vnd\.(?:ms-word\.(?:document|template)\.macroEnabled(?:Template)?"
    rb"|openxmlformats-officedocument\.wordprocessingml\.template)\.main\+xml"
)
_DOCUMENT_MAIN_TYPE = (
    b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
)


def _load(path: Path) -> Any:
    """Open with python-docx; a Strict Open XML package is first mapped to Transitional, and
    a macro-enabled document or a template is given the document's content type."""
    import docx  # here, not at the top: the registry imports this module to list it

    with zipfile.ZipFile(path) as archive:
        strict = b"purl.oclc.org/ooxml/" in archive.read("_rels/.rels")
        other = _OTHER_MAIN_TYPES.search(archive.read("[Content_Types].xml")) is not None
        if not strict and not other:
            return docx.Document(str(path))

        def rewrite(name: str, data: bytes) -> bytes:
            if name == "[Content_Types].xml":
                data = _OTHER_MAIN_TYPES.sub(_DOCUMENT_MAIN_TYPE, data)
            if strict and name.endswith((".xml", ".rels")):
                data = _STRICT_NAMESPACE.sub(_transitional_namespace, data)
            return data

        return docx.Document(rewritten_package(archive, rewrite))


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
    return read_paragraph(paragraph).text


@dataclass(slots=True)
class Paragraph:
    """A paragraph's content: plain text, Markdown (links, LaTeX), and the charts it shows."""

    text: str
    markdown: str
    charts: list[str] = field(default_factory=list)  # relationship ids of chart parts


def read_paragraph(paragraph: Any, links: Callable[[str], str] | None = None) -> Paragraph:
    """Read a w:p: `links` answers a hyperlink's URL from its relationship id."""
    text: list[str] = []
    markdown: list[str] = []
    charts: list[str] = []
    nodes = _text_nodes()(paragraph)
    only_math = all(_local(node) in {"oMath", "chart"} for node in nodes if _local(node) != "p")
    link: tuple[Any, str] | None = None  # the hyperlink being written, and its text so far
    for node in nodes:
        piece, piece_markdown = _node_text(node, only_math, charts)
        target = _hyperlink(node, paragraph)
        if link is not None and (target is None or target is not link[0]):
            markdown.append(_link_markdown(link, links))
            link = None
        text.append(piece)
        if target is not None and _local(node) != "oMath":
            link = (target, (link[1] if link else "") + piece)
        else:
            markdown.append(piece_markdown)
    if link is not None:
        markdown.append(_link_markdown(link, links))
    plain = collapse_inline_spaces("".join(text))
    rich = collapse_inline_spaces("".join(markdown))
    return Paragraph(plain, "" if rich == plain else rich, charts)


def _node_text(node: Any, only_math: bool, charts: list[str]) -> tuple[str, str]:
    """A content node as (text, markdown)."""
    local = _local(node)
    if local == "t":
        return _run_text(node)
    if local in {"tab", "ptab"}:
        return "\t", "\t"
    if local in {"br", "cr", "p"}:
        return "\n", "\n"
    if local == "noBreakHyphen":
        return "-", "-"
    if local == "sym":
        char = _symbol(node.get(qn("w:char")))
        return char, char
    if local == "chart":
        if node.get(_RELATIONSHIP_ID):
            charts.append(node.get(_RELATIONSHIP_ID))
        return "", ""
    math = convert_math(node)
    if not math.latex:
        return "", ""
    if only_math or node.getparent().tag == _OMATH_PARA:
        return f"\n{math.text}\n", f"\n$${math.latex}$$\n"
    return f" {math.text} ", f" ${math.latex}$ "


def _run_text(node: Any) -> tuple[str, str]:
    """A w:t as (text, markdown); a superscript or subscript is set apart (`x 2`,
    `x<sup>2</sup>`) so that it does not glue to the word it follows."""
    text = node.text or ""
    align = node.getparent().find(f"{_RPR}/{_VERT_ALIGN}")
    position = align.get(_VAL) if align is not None else None
    if not text.strip() or position not in _SCRIPT_TAGS:
        return text, text
    tag = _SCRIPT_TAGS[position]
    return f" {text} ", f"<{tag}>{text}</{tag}>"


def _symbol(code: str | None) -> str:
    """The character of a w:sym (a code point, often in the private use area of a font)."""
    try:
        value = int(code or "", 16)
    except ValueError:
        return ""
    if 0xF000 <= value <= 0xF0FF:
        value -= 0xF000  # Symbol and Wingdings fonts: the low byte is the character
    return chr(value) if value >= 0x20 else ""


def _hyperlink(node: Any, paragraph: Any) -> Any | None:
    """The w:hyperlink element a content node sits in, if any (below `paragraph`)."""
    parent = node.getparent()
    while parent is not None and parent is not paragraph:
        if parent.tag == _HYPERLINK:
            return parent
        if parent.tag == _P:
            return None
        parent = parent.getparent()
    return None


def _link_markdown(link: tuple[Any, str], links: Callable[[str], str] | None) -> str:
    element, text = link
    target = ""
    rel_id = element.get(_RELATIONSHIP_ID)
    if rel_id and links is not None:
        target = links(rel_id)
    elif element.get(qn("w:anchor")):
        target = "#" + (element.get(qn("w:anchor")) or "")
    label = " ".join(text.split())
    if not target or not label:
        return text
    lead = " " if text[:1].isspace() else ""
    trail = " " if text[-1:].isspace() else ""
    return f"{lead}[{label}]({target.replace(' ', '%20').replace(')', '%29')}){trail}"


def _local(node: Any) -> str:
    tag = node.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


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
    def __init__(
        self, styles: _Styles, numbering: _Numbering, title_shift: int, part: _Part
    ) -> None:
        self.styles = styles
        self.numbering = numbering
        self.title_shift = title_shift  # 1 when the document has a Title above its headings
        self.part = part
        self.items: list[tuple[str, str]] = []  # list items: (text line, Markdown line)

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
            rows = table_cells(element) if element.tag == _TBL else [_row_cells(element)]
            yield from _table_block(rows)

    def flush_list(self) -> Iterator[Block]:
        if self.items:
            text = "\n".join(line for line, _ in self.items)
            markdown = "\n".join(line for _, line in self.items)
            yield Block(BlockKind.LIST, text, markdown="" if markdown == text else markdown)
        self.items = []

    def _paragraph(self, paragraph: Any) -> Iterator[Block]:
        content = read_paragraph(paragraph, self.part.link)
        text = content.text
        ppr = paragraph.find(qn("w:pPr"))
        style = self.styles.describe(_child_val(ppr, "w:pStyle"))
        level = style.level
        own_outline = _int(_child_val(ppr, "w:outlineLvl"))
        if own_outline is not None and 0 <= own_outline < 9:
            level = own_outline + 1
        if level and not style.title:
            level = min(level + self.title_shift, _MAX_LEVEL)
        marker = None if level else self._list_marker(ppr, style, text)
        if marker is not None:
            if text:
                markdown = content.markdown or text
                self.items.append(
                    (f"{marker} {_one_line(text)}", f"{marker} {_one_line(markdown)}")
                )
        elif text:
            yield from self.flush_list()
            if level:
                markdown = _one_line(content.markdown)
                yield Block(BlockKind.HEADING, _one_line(text), level=level, markdown=markdown)
            else:
                yield Block(BlockKind.PARAGRAPH, text, markdown=content.markdown)
        for rel_id in content.charts:
            yield from self.flush_list()
            yield from self.part.chart(rel_id)

    def _list_marker(self, ppr: Any, style: _ResolvedStyle, text: str) -> str | None:
        """The item's marker, indented, if the paragraph is a list item, else None."""
        own_id, own_level = _num_pr(ppr)
        num_id = own_id if own_id is not None else style.num_id
        if num_id == "0" or (not num_id and not style.list_name):
            return None
        level = own_level if own_level is not None else (style.num_level or 0)
        marker = self.numbering.marker(num_id, level) if num_id and text else "-"
        return f"{'  ' * level}{marker}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _table_block(rows: list[list[str]]) -> Iterator[Block]:
    """A TABLE block of the rows that have text, cells kept in `rows`."""
    kept = [tuple(row) for row in rows if any(row)]
    width = max((len(row) for row in kept), default=0)
    table = rows_block([row + ("",) * (width - len(row)) for row in kept])
    if table:
        yield table


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


def table_cells(table: Any, depth: int = 0) -> list[list[str]]:
    """The cells of a w:tbl row by row, on the table's grid: a merged cell's text repeated in
    every grid cell it covers, across (gridSpan) and down (vMerge); nested tables are read
    into their cell as rows joined by "; "."""
    rows: list[list[str]] = []
    above: dict[int, str] = {}  # the text of each grid column in the row above
    for row in _content(table):
        if row.tag != _TR:
            continue
        cells = _row_cells(row, depth, above)
        above = dict(enumerate(cells))
        rows.append(cells)
    return rows


def table_rows(table: Any, depth: int = 0) -> list[str]:
    """One " | "-joined line per row (see `table_cells`)."""
    return [row_line(cells) for cells in table_cells(table, depth)]


def _row_cells(row: Any, depth: int = 0, above: dict[int, str] | None = None) -> list[str]:
    cells: list[str] = [""] * _grid_skip(row, "w:gridBefore")
    for cell in _content(row):
        if cell.tag != _TC:
            continue
        tc_pr = cell.find(qn("w:tcPr"))
        span = max(1, min(_int(_child_val(tc_pr, "w:gridSpan"), 1) or 1, 1000))
        v_merge = tc_pr.find(qn("w:vMerge")) if tc_pr is not None else None
        if v_merge is not None and v_merge.get(_VAL) in (None, "continue"):
            text = (above or {}).get(len(cells), "")  # covered by the merged cell above
        else:
            text = _cell_text(cell, depth)
        cells.extend([text] * span)
    return cells


def _grid_skip(row: Any, tag: str) -> int:
    tr_pr = row.find(qn("w:trPr"))
    return max(0, min(_int(_child_val(tr_pr, tag), 0) or 0, 1000))


def _cell_text(cell: Any, depth: int) -> str:
    parts = []
    for child in _content(cell):
        if child.tag == _P:
            parts.append(paragraph_text(child))
        elif child.tag == _TBL and depth < _MAX_DEPTH:
            parts.append("; ".join(row for row in table_rows(child, depth + 1) if row))
    return collapse_spaces(" ".join(parts))


# imported when a worker process starts (registry.preload), not on import
PRELOAD = ("docx", "lxml.etree")
FORMATS = (
    Format("docx", DOCX, (".docx",), Content.PACKAGE, DocxDocument),
    Format("docm", DOCM, (".docm",), Content.PACKAGE, DocxDocument),
    Format("dotx", DOTX, (".dotx",), Content.PACKAGE, DocxDocument),
    Format("dotm", DOTM, (".dotm",), Content.PACKAGE, DocxDocument),
)
