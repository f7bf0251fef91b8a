"""OpenDocument files (.odt text, .ods spreadsheets, .odp presentations) read from the XML
of the package (content.xml, and styles.xml for the named styles) with lxml.

Text documents, in document order: `text:h` gives a HEADING at its outline level (one
deeper when the document has a Title paragraph, which is level 1, with its Subtitle at 2),
`text:p` a PARAGRAPH, `text:list` one LIST block ("- item" or "N. item" lines, indented two
spaces per level, numbered where the list style numbers that level), `table:table` a TABLE
block (`rows` cell by cell, a covered cell of a merge left empty, a nested table's text in
its cell). Sections, indexes and text boxes are looked through; footnote and endnote bodies
follow their paragraph as paragraphs of their own; tracked deletions and comments are left
out. Links give `[text](url)` in `markdown`.

Spreadsheets: each sheet is a HEADING with its name and TABLE blocks of up to 200 non-empty
rows; a unit is a sheet or a run of rows of a longer sheet. content.xml is read as a stream
of rows, so a big sheet never sits whole in memory, and repeated rows and columns
(`table:number-rows-repeated`, `table:number-columns-repeated`, often a million empty ones
to the sheet's edge) are expanded only up to the last non-empty cell and within caps.

Presentations: one unit per slide (`page` is the slide number): the title frame as a
HEADING (level 1), then the other frames' text, tables and lists in their order, then the
speaker notes as paragraphs. Header, footer, date and slide-number placeholders are skipped.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowra_worker.document import Block, BlockKind, Unit
from knowra_worker.errors import CorruptFile
from knowra_worker.parsers._common import (
    FlowDocument,
    UnitLimits,
    clark,
    collapse_inline_spaces,
    estimate_units,
    translate_errors,
)
from knowra_worker.parsers._tables import ROWS_PER_BLOCK, row_line, rows_block
from knowra_worker.parsers.base import BaseDocument, Content, Format

ODT = "application/vnd.oasis.opendocument.text"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
ODP = "application/vnd.oasis.opendocument.presentation"

_NS = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
    "presentation": "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0",
    "style": "urn:oasis:names:tc:opendocument:xmlns:style:1.0",
    "xlink": "http://www.w3.org/1999/xlink",
    "fo": "urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0",
    "chart": "urn:oasis:names:tc:opendocument:xmlns:chart:1.0",
}


def qn(tag: str) -> str:
    """Clark notation of a prefixed name of this format's vocabulary."""
    return clark(_NS, tag)


_MAX_LEVEL = 6
_MAX_DEPTH = 60
_MAX_COLUMNS = 1024  # cells of one row beyond this are dropped (with a warning)
_MAX_ROW_REPEAT = 10_000  # a non-empty row repeated more often is given this many times
_MAX_BLOCK_CHARS = 30_000
_TEXT_LIMITS = UnitLimits(max_chars=32_000, max_blocks=50, section_chars=8_000)
_SHEET_LIMITS = UnitLimits(max_chars=32_000, max_blocks=2, section_chars=0, table_per_unit=True)
_SKIPPED_CLASSES = {"page-number", "footer", "header", "date-time", "page", "handout"}
_SKIPPED = {
    qn(tag)
    for tag in (
        "text:tracked-changes", "text:note-citation", "office:annotation",
        "office:annotation-end", "text:sequence-decls", "text:variable-decls",
        "text:user-field-decls", "office:forms", "draw:image",
        "text:soft-page-break",
    )
}  # fmt: skip
_CONTAINERS = {
    qn(tag)
    for tag in (
        "text:section", "text:table-of-content", "text:index-body", "text:index-title",
        "text:illustration-index", "text:alphabetical-index", "text:user-index",
        "text:bibliography", "text:object-index", "text:table-index", "draw:text-box",
        "draw:frame", "draw:g", "draw:custom-shape", "draw:rect", "draw:ellipse",
        "draw:polygon", "draw:path", "office:text", "text:note-body", "text:note",
    )
}  # fmt: skip


def _parser() -> Any:
    """An XML parser that never loads DTDs, entities or anything over the network."""
    from lxml import etree

    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _read_xml(archive: zipfile.ZipFile, name: str) -> Any | None:
    from lxml import etree

    try:
        data = archive.read(name)
    except KeyError:
        return None
    return etree.fromstring(data, _parser())


def _open_archive(path: Path) -> zipfile.ZipFile:
    archive = zipfile.ZipFile(path)
    if "content.xml" not in archive.namelist():
        archive.close()
        raise CorruptFile("not a valid OpenDocument file: it has no content.xml")
    return archive


# --- styles ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Styles:
    """Paragraph styles' parents and display names, and list styles' kind per level."""

    parents: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    numbered: dict[str, set[int]] = field(default_factory=dict)
    raised: set[str] = field(default_factory=set)  # superscript and subscript text styles

    def add(self, root: Any) -> None:
        if root is None:
            return
        for style in root.iter(qn("style:style")):
            name = style.get(qn("style:name")) or ""
            self.parents[name] = style.get(qn("style:parent-style-name")) or ""
            self.names[name] = (style.get(qn("style:display-name")) or name).lower()
            properties = style.find(qn("style:text-properties"))
            if properties is not None and properties.get(qn("style:text-position")):
                self.raised.add(name)
        for list_style in root.iter(qn("text:list-style")):
            levels = {
                int(level.get(qn("text:level")) or 1)
                for level in list_style.iter(qn("text:list-level-style-number"))
                if level.get(qn("style:num-format"))
            }
            self.numbered[list_style.get(qn("style:name")) or ""] = levels

    def role(self, name: str | None) -> str:
        """'title', 'subtitle' or '' for a paragraph style, following its parents."""
        seen: set[str] = set()
        while name and name not in seen:
            seen.add(name)
            display = self.names.get(name, name.lower()).replace("_20_", " ")
            if display in {"title", "subtitle"}:
                return display
            name = self.parents.get(name)
        return ""


def _load_styles(archive: zipfile.ZipFile, content: Any) -> _Styles:
    styles = _Styles()
    styles.add(_read_xml(archive, "styles.xml"))
    styles.add(content.find(qn("office:automatic-styles")))
    return styles


# --- inline text -----------------------------------------------------------------------


@dataclass(slots=True)
class _Inline:
    """The text of a paragraph in two forms, and what it holds that comes after it."""

    plain: list[str] = field(default_factory=list)
    markdown: list[str] = field(default_factory=list)
    linked: bool = False
    after: list[Any] = field(default_factory=list)  # note bodies and text boxes

    def add(self, text: str | None) -> None:
        if text:
            self.plain.append(text)
            self.markdown.append(text)

    def result(self) -> tuple[str, str]:
        plain = collapse_inline_spaces("".join(self.plain))
        markdown = collapse_inline_spaces("".join(self.markdown)) if self.linked else ""
        return plain, "" if markdown == plain else markdown


def _inline(node: Any, out: _Inline, depth: int = 0, raised: frozenset[str] = frozenset()) -> None:
    out.add(node.text)
    for child in node:
        _inline_child(child, out, depth, raised)
        out.add(child.tail)


def _inline_child(child: Any, out: _Inline, depth: int, raised: frozenset[str]) -> None:
    tag = child.tag
    if not isinstance(tag, str) or tag in _SKIPPED:
        return
    if tag == qn("text:s"):
        out.add(" " * min(int(child.get(qn("text:c")) or 1), 100))
    elif tag == qn("text:tab"):
        out.add("\t")
    elif tag == qn("text:line-break"):
        out.add("\n")
    elif tag in {qn("text:note"), qn("draw:frame"), qn("draw:custom-shape"), qn("draw:a")}:
        out.add(" ")
        out.after.append(child)
    elif tag == qn("text:a") and depth < _MAX_DEPTH:
        _link(child, out, depth, raised)
    elif child.get(qn("text:style-name")) in raised and depth < _MAX_DEPTH:
        out.add(" ")  # a superscript or subscript: "x<sup>2</sup>" must not read "x2"
        _inline(child, out, depth + 1, raised)
        out.add(" ")
    elif depth < _MAX_DEPTH:
        _inline(child, out, depth + 1, raised)


def _link(node: Any, out: _Inline, depth: int, raised: frozenset[str]) -> None:
    inner = _Inline()
    _inline(node, inner, depth + 1, raised)
    out.after.extend(inner.after)
    text = "".join(inner.plain)
    href = node.get(qn("xlink:href")) or ""
    out.plain.append(text)
    if href and text.strip() and not href.startswith("#"):
        out.markdown.append(f" [{' '.join(text.split())}]({href.replace(' ', '%20')}) ")
        out.linked = True
    else:
        out.markdown.append("".join(inner.markdown))


# --- text bodies to blocks -------------------------------------------------------------


class _Builder:
    """Turns the elements of a text body (or a text box, a slide frame) into blocks."""

    def __init__(
        self,
        styles: _Styles,
        title_shift: int = 0,
        page: int | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        self.styles = styles
        self.title_shift = title_shift
        self.page = page
        self.warnings: list[str] = [] if warnings is None else warnings  # what was skipped
        self.counters: dict[tuple[str, int], int] = {}
        self.raised = frozenset(styles.raised)
        self.objects: _Objects | None = None

    def blocks(self, parent: Any, depth: int = 0) -> Iterator[Block]:
        """The blocks of `parent`'s children; consecutive lists make one LIST block (a
        list that goes on after a nested one is often a new `text:list` element)."""
        lines: list[str] = []
        for child in parent:
            if child.tag == qn("text:list"):
                lines.extend(self._list_lines(child, 0, depth, ""))
                continue
            if lines:
                yield Block(BlockKind.LIST, "\n".join(lines), self.page)
                lines = []
            yield from self.element(child, depth)
        if lines:
            yield Block(BlockKind.LIST, "\n".join(lines), self.page)

    def element(self, node: Any, depth: int) -> Iterator[Block]:
        tag = node.tag
        if not isinstance(tag, str) or tag in _SKIPPED or depth > _MAX_DEPTH:
            return
        if tag in (qn("text:p"), qn("text:h")):
            yield from self._paragraph(node, depth)
        elif tag == qn("text:list"):
            lines = list(self._list_lines(node, 0, depth, ""))
            if lines:
                yield Block(BlockKind.LIST, "\n".join(lines), self.page)
        elif tag == qn("table:table"):
            yield from self._table(node, depth)
        elif tag == qn("draw:object") and self.objects is not None:
            yield from self._object(node, depth)
        elif tag in _CONTAINERS:
            if node.get(qn("presentation:class")) not in _SKIPPED_CLASSES:
                yield from self.blocks(node, depth + 1)

    def _paragraph(self, node: Any, depth: int) -> Iterator[Block]:
        inline = _Inline()
        _inline(node, inline, raised=self.raised)
        plain, markdown = inline.result()
        if plain:
            level = self._heading_level(node)
            if level:
                yield Block(BlockKind.HEADING, " ".join(plain.split()), self.page, level, markdown)
            else:
                yield Block(BlockKind.PARAGRAPH, plain, self.page, 0, markdown)
        for extra in inline.after:
            yield from self.element(extra, depth + 1)

    def _heading_level(self, node: Any) -> int:
        role = self.styles.role(node.get(qn("text:style-name")))
        if role:
            return 1 if role == "title" else 2
        if node.tag != qn("text:h"):
            return 0
        level = _int(node.get(qn("text:outline-level")), 1)
        return max(1, min(level + self.title_shift, _MAX_LEVEL))

    def _list_lines(self, node: Any, level: int, depth: int, style: str) -> Iterator[str]:
        """Item lines of a list; a nested list without a style takes its parent's, and
        numbering goes on from an earlier list of the same style when asked to."""
        style = node.get(qn("text:style-name")) or style
        numbered = level + 1 in self.styles.numbered.get(style, set())
        key = (style, level)
        if level == 0 and not _continues(node):
            self.counters = {k: v for k, v in self.counters.items() if k[0] != style}
        for item in node:
            if item.tag not in (qn("text:list-item"), qn("text:list-header")):
                continue
            number = _int(item.get(qn("text:start-value")), self.counters.get(key, 0) + 1)
            marker = "-"
            if numbered and item.tag == qn("text:list-item") and _has_text(item):
                self.counters[key] = number
                marker = f"{number}."
            yield from self._item_lines(item, level, marker, depth + 1, style)

    def _item_lines(
        self, item: Any, level: int, marker: str, depth: int, style: str
    ) -> Iterator[str]:
        indent = "  " * level
        for child in item:
            if child.tag == qn("text:list") and depth < _MAX_DEPTH:
                yield from self._list_lines(child, level + 1, depth + 1, style)
                continue
            text = " ".join(b.markdown or b.text for b in self.element(child, depth))
            text = " ".join(text.split())
            if text:
                yield f"{indent}{marker} {text}"
                marker = " " * len(marker)  # a second paragraph of the same item

    def _table(self, node: Any, depth: int) -> Iterator[Block]:
        reader = _RowReader(lambda cell: self.cell_text(cell, depth + 1), keep_trailing=True)
        rows = [row for element in _table_rows(node) for row in reader.rows(element)]
        self.warnings.extend(reader.warnings)
        table = rows_block(rows, self.page)
        if table:
            yield table

    def cell_text(self, cell: Any, depth: int) -> str:
        blocks = self.blocks(cell, depth) if depth < _MAX_DEPTH and len(cell) else iter(())
        text = " ".join(" ".join(_flat(block).split()) for block in blocks)
        return text or _cell_value(cell)

    def _object(self, node: Any, depth: int) -> Iterator[Block]:
        """An embedded object (a chart, a formula, a text): its title, text and data table."""
        assert self.objects is not None
        root = self.objects.content(node.get(qn("xlink:href")) or "")
        if root is None:
            return
        for title in root.iter(qn("chart:title"), qn("chart:subtitle")):
            yield from self.blocks(title, depth + 1)
        body = root.find(qn("office:body"))
        for part in body if body is not None else ():
            if part.tag == qn("office:chart"):
                for table in part.iter(qn("table:table")):
                    yield from self._table(table, depth + 1)
            elif part.tag == qn("office:text"):
                yield from self.blocks(part, depth + 1)


def _cell_value(cell: Any) -> str:
    """A cell's typed value when it has no text paragraph (as some writers store numbers)."""
    for name in ("office:value", "office:date-value", "office:boolean-value"):
        value = cell.get(qn(name))
        if value:
            return value
    return ""


class _Objects:
    """The embedded objects of a package (charts and the like), read when met."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def content(self, href: str) -> Any | None:
        name = href.removeprefix("./").strip("/")
        if not name or ".." in name.split("/"):
            return None
        try:
            with zipfile.ZipFile(self.path) as archive:
                return _read_xml(archive, f"{name}/content.xml")
        except (zipfile.BadZipFile, ValueError, SyntaxError):
            return None


def _flat(block: Block) -> str:
    """A block's words for a table cell: a nested table's cells without separators."""
    if block.rows:
        return " ".join(cell for row in block.rows for cell in row)
    return block.text


def _continues(node: Any) -> bool:
    return node.get(qn("text:continue-numbering")) == "true" or bool(
        node.get(qn("text:continue-list"))
    )


def _has_text(item: Any) -> bool:
    """Whether a list item has a paragraph of its own (not only a nested list)."""
    return any(child.tag in (qn("text:p"), qn("text:h")) for child in item)


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _table_rows(table: Any) -> Iterator[Any]:
    """The table:table-row elements of a table, through header and group wrappers."""
    for child in table:
        if child.tag == qn("table:table-row"):
            yield child
        elif child.tag in (
            qn("table:table-header-rows"),
            qn("table:table-rows"),
            qn("table:table-row-group"),
        ):
            yield from _table_rows(child)


class _RowReader:
    """Cells of rows with their repeat counts applied, without expanding empty runs."""

    def __init__(
        self, cell_text: Any, *, keep_trailing: bool, warnings: list[str] | None = None
    ) -> None:
        self.cell_text = cell_text
        self.keep_trailing = keep_trailing
        self.warnings: list[str] = [] if warnings is None else warnings  # what was skipped

    def rows(self, row: Any) -> Iterator[tuple[str, ...]]:
        cells = self._cells(row)
        repeat = max(1, _int(row.get(qn("table:number-rows-repeated")), 1))
        if not any(cells):
            return
        if repeat > _MAX_ROW_REPEAT:
            self.warnings.append(f"a row repeated {repeat} times was given {_MAX_ROW_REPEAT}")
            repeat = _MAX_ROW_REPEAT
        for _ in range(repeat):
            yield cells

    def _cells(self, row: Any) -> tuple[str, ...]:
        cells: list[str] = []
        pending = 0  # empty cells not yet written: only written when a filled one follows
        for cell in row:
            if cell.tag not in (qn("table:table-cell"), qn("table:covered-table-cell")):
                continue
            repeat = max(1, _int(cell.get(qn("table:number-columns-repeated")), 1))
            text = self.cell_text(cell) if len(cell) else ""
            if not text:
                pending += repeat
                continue
            room = _MAX_COLUMNS - len(cells)
            cells.extend([""] * min(pending, room))
            cells.extend([text] * min(repeat, max(0, room - pending)))
            pending = 0
        if len(cells) >= _MAX_COLUMNS:
            self.warnings.append(f"cells beyond column {_MAX_COLUMNS} were skipped")
        if self.keep_trailing and pending and len(cells) + pending <= _MAX_COLUMNS:
            cells.extend([""] * pending)
        return tuple(cells)


# --- text documents --------------------------------------------------------------------


class OdtDocument(FlowDocument):
    format_label = "OpenDocument text file"
    limits = _TEXT_LIMITS

    def __init__(self, path: Path, mime_type: str) -> None:
        self._path = path
        with translate_errors(self.format_label), _open_archive(path) as archive:
            self._content = _read_xml(archive, "content.xml")
            self._styles = _load_styles(archive, self._content)
        self._body = _body(self._content, "office:text")
        super().__init__(mime_type, -(-len(self._body) // _TEXT_LIMITS.max_blocks))

    def iter_blocks(self) -> Iterator[Block]:
        title = any(
            self._styles.role(p.get(qn("text:style-name"))) == "title"
            for p in self._body.iter(qn("text:p"))
        )
        builder = _Builder(self._styles, title_shift=int(title), warnings=self.warnings)
        builder.objects = _Objects(self._path)
        yield from builder.blocks(self._body)

    def close(self) -> None:
        self._content = None


def _body(content: Any, kind: str) -> Any:
    body = content.find(f"{qn('office:body')}/{qn(kind)}")
    if body is None:
        raise CorruptFile(f"not a valid OpenDocument file: content.xml has no {kind} body")
    return body


# --- presentations ---------------------------------------------------------------------


class OdpDocument(BaseDocument):
    unit_name = "slide"
    units_total_exact = True

    def __init__(self, path: Path, mime_type: str) -> None:
        self.mime_type = mime_type
        with translate_errors("OpenDocument presentation"), _open_archive(path) as archive:
            content = _read_xml(archive, "content.xml")
            self._styles = _load_styles(archive, content)
        self._slides = list(_body(content, "office:presentation").iter(qn("draw:page")))
        self._objects = _Objects(path)
        self.units_total = max(1, len(self._slides))

    def units(self, start: int = 0) -> Iterator[Unit]:
        for index in range(start, len(self._slides)):
            with translate_errors("OpenDocument presentation"):
                yield self._unit(index)
        if not self._slides and start == 0:
            yield Unit(0)

    def _unit(self, index: int) -> Unit:
        builder = _Builder(self._styles, page=index + 1)
        builder.objects = self._objects
        blocks = [block for frame in self._slides[index] for block in _slide_blocks(builder, frame)]
        return Unit(index, blocks, [f"slide {index + 1}: {w}" for w in builder.warnings])

    def close(self) -> None:
        self._slides = []


def _slide_blocks(builder: _Builder, frame: Any) -> Iterator[Block]:
    kind = frame.get(qn("presentation:class"))
    if frame.tag == qn("presentation:notes"):
        for note in frame.iter(qn("draw:frame")):
            if note.get(qn("presentation:class")) == "notes":
                yield from builder.blocks(note)
        return
    if kind in ("title", "subtitle"):
        text = " ".join(b.text for b in builder.blocks(frame))
        if text.strip():
            level = 1 if kind == "title" else 2
            yield Block(BlockKind.HEADING, " ".join(text.split()), builder.page, level)
        return
    yield from builder.element(frame, 0)


# --- spreadsheets ----------------------------------------------------------------------


class OdsDocument(FlowDocument):
    unit_name = "sheet"
    format_label = "OpenDocument spreadsheet"
    limits = _SHEET_LIMITS

    def __init__(self, path: Path, mime_type: str) -> None:
        self.path = path
        with translate_errors(self.format_label), _open_archive(path) as archive:
            size = archive.getinfo("content.xml").file_size
        super().__init__(mime_type, estimate_units(size, 8 * _MAX_BLOCK_CHARS))

    def iter_blocks(self) -> Iterator[Block]:
        with _open_archive(self.path) as archive, archive.open("content.xml") as stream:
            yield from _SheetStream(self.warnings).blocks(stream)


class _SheetStream:
    """Reads sheets row by row from content.xml, freeing each row once it is read."""

    def __init__(self, warnings: list[str]) -> None:
        self.builder = _Builder(_Styles(), warnings=warnings)
        self.reader = _RowReader(
            lambda cell: self.builder.cell_text(cell, 1), keep_trailing=False, warnings=warnings
        )
        self.rows: list[tuple[str, ...]] = []
        self.chars = 0

    def blocks(self, stream: Any) -> Iterator[Block]:
        from lxml import etree

        depth = 0
        tags = (qn("table:table"), qn("table:table-row"))
        events = etree.iterparse(stream, events=("start", "end"), tag=tags, **_ITER_OPTIONS)
        for event, node in events:
            if node.tag == qn("table:table"):
                depth += 1 if event == "start" else -1
                if event == "start" and depth == 1:
                    yield from self._flush()
                    yield _sheet_heading(node)
                elif event == "end" and depth == 0:
                    yield from self._flush()
                    node.clear()
            elif event == "end" and depth == 1:
                yield from self._row(node)
        yield from self._flush()

    def _row(self, node: Any) -> Iterator[Block]:
        for cells in self.reader.rows(node):
            while cells and not cells[-1]:
                cells = cells[:-1]
            line = row_line(cells)
            if len(self.rows) >= ROWS_PER_BLOCK or self.chars + len(line) > _MAX_BLOCK_CHARS:
                yield from self._flush()
            self.rows.append(cells)
            self.chars += len(line) + 1
        node.clear()
        while node.getprevious() is not None:
            del node.getparent()[0]

    def _flush(self) -> Iterator[Block]:
        table = rows_block(self.rows)
        if table:
            yield table
        self.rows, self.chars = [], 0


_ITER_OPTIONS = {"resolve_entities": False, "no_network": True, "load_dtd": False}


def _sheet_heading(table: Any) -> Block:
    name = " ".join((table.get(qn("table:name")) or "").split())
    return Block(BlockKind.HEADING, name or "Sheet", level=1)


# imported when a worker process starts (registry.preload), not on import
PRELOAD = ("lxml.etree",)
FORMATS = (
    Format("odt", ODT, (".odt", ".ott"), Content.PACKAGE, OdtDocument),
    Format("ods", ODS, (".ods", ".ots"), Content.PACKAGE, OdsDocument),
    Format("odp", ODP, (".odp", ".otp"), Content.PACKAGE, OdpDocument),
)
