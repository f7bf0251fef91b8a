"""PowerPoint presentations (.pptx, .pptm, .ppsx, .potx, ...) through python-pptx: one unit per
slide.

Blocks of a slide, in the slide's shape order: the title placeholder as a HEADING (level 1);
every other text frame as PARAGRAPH blocks, its bulleted or numbered paragraphs as LIST blocks
(explicit bullets, and the inherited ones of body and content placeholders); tables as TABLE
blocks (`rows` on the table's grid, a merged cell's text repeated in every cell it covers);
charts as their title and kind, then their data as a TABLE (see `_charts.py`); group shapes
and alternate-content wrappers looked into. Then the slide's comments (legacy and modern
comment parts, "Author: text", replies after their comment) and its speaker notes.
Hyperlinks of text runs are `[text](url)` in `markdown`. `page` is the slide number.

A shape that python-pptx does not know, or that fails to read, is skipped and named in the
unit's warnings; the rest of the slide is read.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from knowra_worker.document import Block, BlockKind, Unit
from knowra_worker.parsers._charts import chart_blocks, parse_chart
from knowra_worker.parsers._common import rewritten_package, strip_controls, translate_errors
from knowra_worker.parsers._tables import rows_block
from knowra_worker.parsers.base import BaseDocument, Content, Format
from knowra_worker.parsers.detect import (
    POTM,
    POTX,
    PPSM,
    PPSX,
    PPTM,
    PPTX,
)

_MAX_GROUP_DEPTH = 20
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_P = "{http://schemas.openxmlformats.org/presentationml/2006/main}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_SHAPE_TAGS = {f"{_P}{name}" for name in ("sp", "grpSp", "graphicFrame", "cxnSp", "pic")}
_SHAPE_TAGS.add(f"{_P}contentPart")
_TREE_PROPERTIES = {f"{_P}nvGrpSpPr", f"{_P}grpSpPr", f"{_P}extLst"}
_BULLETED_PLACEHOLDERS = {"body", "obj", None}  # None: a placeholder given by index only
_LEGACY_COMMENTS = "/relationships/comments"
_MODERN_COMMENTS = "/2018/10/relationships/comments"
_LEGACY_AUTHORS = "/relationships/commentAuthors"
_MODERN_AUTHORS = "/2018/10/relationships/authors"
# Main parts of the PowerPoint package types python-pptx does not open as such (templates,
# slide shows): renamed to the presentation's content type in a copy, the content is the same.
_OTHER_MAIN_TYPES = re.compile(
    rb"application/vnd\.(?:openxmlformats-officedocument\.presentationml\.(?:slideshow|template)"
    rb"|ms-powerpoint\.(?:slideshow|template)\.macroEnabled)\.main\+xml"
)
_PRESENTATION_MAIN_TYPE = (
    b"application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"
)


class PptxDocument(BaseDocument):
    unit_name = "slide"
    units_total_exact = True
    format_label = "PPTX file"

    def __init__(self, path: Path, mime_type: str) -> None:
        self.mime_type = mime_type
        with translate_errors(self.format_label):
            presentation = _load(path)
            self._slides = presentation.slides
            self._authors = _authors(presentation.part)
            self.units_total = len(self._slides)

    def units(self, start: int = 0) -> Iterator[Unit]:
        for index in range(max(0, start), self.units_total):
            unit = Unit(index)
            with translate_errors(f"{self.format_label} (slide {index + 1})"):
                slide = _Slide(self._slides[index], index + 1, self._authors, unit.warnings)
                unit.blocks = list(slide.blocks())
            yield unit

    def close(self) -> None:
        self._slides = None


def _load(path: Path) -> Any:
    """Open with python-pptx; a template or slide show first gets the presentation's type."""
    import pptx  # here, not at the top: the registry imports this module to list it

    with zipfile.ZipFile(path) as archive:
        if not _OTHER_MAIN_TYPES.search(archive.read("[Content_Types].xml")):
            return pptx.Presentation(str(path))
        return pptx.Presentation(rewritten_package(archive, _presentation_type))


def _presentation_type(name: str, data: bytes) -> bytes:
    if name == "[Content_Types].xml":
        return _OTHER_MAIN_TYPES.sub(_PRESENTATION_MAIN_TYPE, data)
    return data


class _Slide:
    """Reads one slide into blocks, collecting warnings about what it had to skip."""

    def __init__(self, slide: Any, number: int, authors: dict[str, str], warnings: list[str]):
        self.slide = slide
        self.number = number
        self.authors = authors
        self.warnings = warnings

    def blocks(self) -> Iterator[Block]:
        title = self.slide.shapes.title
        title_id = title.shape_id if title is not None else None
        if title is not None and title.has_text_frame:
            text = _one_line(title.text_frame.text)
            if text:
                yield Block(BlockKind.HEADING, text, page=self.number, level=1)
        for shape in self._members(self.slide.shapes._spTree, self.slide.shapes):
            if shape.shape_id != title_id:
                yield from self._shape(shape, 0)
        yield from self._comments()
        if self.slide.has_notes_slide:
            notes = self.slide.notes_slide.notes_text_frame
            if notes is not None:
                yield from self._frame(notes, bulleted=False)

    def _members(self, tree: Any, parent: Any) -> Iterator[Any]:
        """The shapes of a shape tree (or group) in order, alternate content resolved."""
        from pptx.shapes.shapetree import SlideShapeFactory

        for child in tree.iterchildren():
            if child.tag in _SHAPE_TAGS:
                yield SlideShapeFactory(child, parent)
            elif child.tag == f"{_MC}AlternateContent":
                choice = child.find(f"{_MC}Choice")
                if choice is not None:
                    yield from self._members(choice, parent)
            elif isinstance(child.tag, str) and child.tag not in _TREE_PROPERTIES:
                self._warn(f"a shape of an unknown kind ({_local(child)}) was skipped")

    def _shape(self, shape: Any, depth: int) -> Iterator[Block]:
        try:
            blocks = list(self._shape_blocks(shape, depth))
        except Exception:  # noqa: BLE001 - one unreadable shape must not fail the deck
            self._warn(f"the shape '{_shape_name(shape)}' could not be read and was skipped")
            return
        yield from blocks

    def _shape_blocks(self, shape: Any, depth: int) -> Iterator[Block]:
        from pptx.enum.shapes import MSO_SHAPE_TYPE

        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            if depth < _MAX_GROUP_DEPTH:
                for inner in self._members(shape._element, shape.shapes):
                    yield from self._shape(inner, depth + 1)
        elif getattr(shape, "has_chart", False) and shape.has_chart:
            chart = parse_chart(shape.chart_part.blob)
            if chart is not None:
                yield from chart_blocks(chart, self.number)
        elif getattr(shape, "has_table", False) and shape.has_table:
            yield from self._table(shape.table)
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            yield from self._frame(shape.text_frame, _bulleted_placeholder(shape))

    def _table(self, table: Any) -> Iterator[Block]:
        block = rows_block([row for row in table_grid(table) if any(row)], self.number)
        if block:
            yield block

    def _frame(self, frame: Any, bulleted: bool) -> Iterator[Block]:
        """A text frame's paragraphs: runs of plain ones as a PARAGRAPH, of items as a LIST."""
        group: list[tuple[str, str]] = []
        group_is_list = False
        counters: dict[int, int] = {}
        for paragraph in frame.paragraphs:
            text, markdown = _paragraph_text(paragraph)
            if not text:
                continue
            marker = _marker(paragraph, bulleted, counters)
            if group and (marker is not None) != group_is_list:
                yield self._block(group, group_is_list)
                group = []
            group_is_list = marker is not None
            if marker is not None:
                indent = "  " * max(0, min(paragraph.level, 8))
                text, markdown = f"{indent}{marker} {text}", f"{indent}{marker} {markdown}"
            group.append((text, markdown))
        if group:
            yield self._block(group, group_is_list)

    def _block(self, lines: list[tuple[str, str]], is_list: bool) -> Block:
        text = "\n".join(line for line, _ in lines)
        markdown = "\n".join(line for _, line in lines)
        kind = BlockKind.LIST if is_list else BlockKind.PARAGRAPH
        return Block(kind, text, page=self.number, markdown="" if markdown == text else markdown)

    def _comments(self) -> Iterator[Block]:
        for rel in self.slide.part.rels.values():
            if rel.is_external or not rel.reltype.endswith(_LEGACY_COMMENTS):
                continue
            try:
                comments = list(_comment_lines(rel.target_part.blob, self.authors))
            except Exception:  # noqa: BLE001 - a broken comment part: skip it, say so
                self._warn("comments that could not be read were skipped")
                continue
            for line in comments:
                yield Block(BlockKind.PARAGRAPH, line, page=self.number)

    def _warn(self, message: str) -> None:
        self.warnings.append(f"slide {self.number}: {message}")


def table_grid(table: Any) -> list[tuple[str, ...]]:
    """The table's cells on its grid, a merged cell's text in every cell it covers."""
    grid: list[list[str]] = [
        ["" if cell.is_spanned else _one_line(cell.text) for cell in row.cells]
        for row in table.rows
    ]
    for r, row in enumerate(table.rows):
        for c, cell in enumerate(row.cells):
            if cell.is_merge_origin:
                for rr in range(r, min(r + cell.span_height, len(grid))):
                    for cc in range(c, min(c + cell.span_width, len(grid[rr]))):
                        grid[rr][cc] = grid[r][c]
    return [tuple(row) for row in grid]


def _bulleted_placeholder(shape: Any) -> bool:
    """Whether the shape is a placeholder whose paragraphs are bulleted unless told not."""
    if not getattr(shape, "is_placeholder", False):
        return False
    ph = shape._element.find(f".//{_P}nvPr/{_P}ph")
    return ph is not None and ph.get("type") in _BULLETED_PLACEHOLDERS


def _marker(paragraph: Any, bulleted: bool, counters: dict[int, int]) -> str | None:
    """ "-" or "N." when the paragraph is a bulleted or numbered item, else None."""
    ppr = paragraph._p.find(f"{_A}pPr")
    explicit = None
    if ppr is not None:
        for child in ppr:
            if child.tag in {f"{_A}buChar", f"{_A}buAutoNum", f"{_A}buNone", f"{_A}buBlip"}:
                explicit = child
    if explicit is not None and explicit.tag == f"{_A}buNone":
        return None
    if explicit is None and not bulleted:
        return None
    level = paragraph.level
    for deeper in [key for key in counters if key > level]:
        del counters[deeper]
    if explicit is not None and explicit.tag == f"{_A}buAutoNum":
        start = _int(explicit.get("startAt"), 1)
        counters[level] = counters.get(level, start - 1) + 1
        return f"{counters[level]}."
    return "-"


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _paragraph_text(paragraph: Any) -> tuple[str, str]:
    """A paragraph's (text, markdown): runs joined, line breaks as spaces, links as
    `[text](url)`."""
    text: list[str] = []
    markdown: list[str] = []
    for child in paragraph._p.iterchildren():
        local = _local(child)
        if local == "br":
            text.append(" ")
            markdown.append(" ")
        elif local in {"r", "fld"}:
            run_text = "".join(t.text or "" for t in child.iter(f"{_A}t"))
            text.append(run_text)
            markdown.append(_link(child, run_text, paragraph.part))
    plain = _one_line("".join(text))
    rich = _one_line("".join(markdown))
    return plain, rich


def _link(run: Any, text: str, part: Any) -> str:
    click = run.find(f"{_A}rPr/{_A}hlinkClick")
    rel_id = click.get("{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id") \
        if click is not None else None  # fmt: skip
    if not rel_id or not text.strip():
        return text
    rel = part.rels.get(rel_id)
    if rel is None or not rel.is_external:
        return text
    lead = " " if text[:1].isspace() else ""
    trail = " " if text[-1:].isspace() else ""
    target = str(rel.target_ref).replace(" ", "%20").replace(")", "%29")
    return f"{lead}[{text.strip()}]({target}){trail}"


def _authors(presentation_part: Any) -> dict[str, str]:
    """Comment authors by id, from the legacy and the modern author lists."""
    from lxml import etree

    authors: dict[str, str] = {}
    for rel in presentation_part.rels.values():
        if rel.is_external or not rel.reltype.endswith((_LEGACY_AUTHORS, _MODERN_AUTHORS)):
            continue
        try:
            root = etree.fromstring(rel.target_part.blob, etree.XMLParser(resolve_entities=False))
        except Exception:  # noqa: BLE001 - without names, comments are still read
            continue
        for author in root:
            if author.get("id") is not None and author.get("name"):
                authors[author.get("id")] = author.get("name")
    return authors


def _comment_lines(xml: bytes, authors: dict[str, str]) -> Iterator[str]:
    """ "Author: text" for each comment (and reply) of a legacy or modern comment part."""
    from lxml import etree

    root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False))
    for comment in root.iter():
        if _local(comment) not in {"cm", "reply"}:
            continue
        body = next((c for c in comment if _local(c) in {"text", "txBody"}), None)
        if body is None:
            continue
        if _local(body) == "text":
            text = _one_line(body.text or "")
        else:
            text = _one_line(" ".join("".join(t.text or "" for t in p.iter(f"{_A}t"))
                                      for p in body.iter(f"{_A}p")))  # fmt: skip
        if text:
            author = authors.get(comment.get("authorId") or "", "")
            yield f"Comment by {author}: {text}" if author else f"Comment: {text}"


def _shape_name(shape: Any) -> str:
    try:
        return str(shape.name) or "unnamed"
    except Exception:  # noqa: BLE001 - the name of a broken shape may itself be unreadable
        return "unnamed"


def _local(element: Any) -> str:
    tag = element.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _one_line(text: str) -> str:
    return " ".join(strip_controls(text.replace("\v", " ")).split())


# imported when a worker process starts (registry.preload), not on import
PRELOAD = ("pptx", "pptx.enum.shapes", "pptx.shapes.shapetree", "lxml.etree")
FORMATS = (
    Format("pptx", PPTX, (".pptx",), Content.PACKAGE, PptxDocument),
    Format("pptm", PPTM, (".pptm",), Content.PACKAGE, PptxDocument),
    Format("ppsx", PPSX, (".ppsx",), Content.PACKAGE, PptxDocument),
    Format("ppsm", PPSM, (".ppsm",), Content.PACKAGE, PptxDocument),
    Format("potx", POTX, (".potx",), Content.PACKAGE, PptxDocument),
    Format("potm", POTM, (".potm",), Content.PACKAGE, PptxDocument),
)
