"""PowerPoint presentations (.pptx) through python-pptx: one unit per slide.

Blocks of a slide, in the slide's shape order: the title placeholder as a HEADING (level 1),
every other text frame as a PARAGRAPH (its paragraphs one per line), tables as TABLE blocks
(one line per row, cells joined with " | ", a merged cell once), group shapes looked into,
then the speaker notes as a PARAGRAPH. `page` is the slide number. Pictures and charts carry
no text here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from knowra_worker.document import Block, BlockKind, Unit
from knowra_worker.parsers._common import strip_controls, translate_errors
from knowra_worker.parsers._tables import row_line, table_text
from knowra_worker.parsers.base import BaseDocument, Content, Format
from knowra_worker.parsers.detect import PPTX

_MAX_GROUP_DEPTH = 20


class PptxDocument(BaseDocument):
    unit_name = "slide"
    units_total_exact = True
    format_label = "PPTX file"

    def __init__(self, path: Path, mime_type: str) -> None:
        import pptx  # here, not at the top: the registry imports this module to list it

        self.mime_type = mime_type
        with translate_errors(self.format_label):
            self._slides = pptx.Presentation(str(path)).slides
            self.units_total = len(self._slides)

    def units(self, start: int = 0) -> Iterator[Unit]:
        for index in range(max(0, start), self.units_total):
            with translate_errors(f"{self.format_label} (slide {index + 1})"):
                blocks = list(slide_blocks(self._slides[index], index + 1))
            yield Unit(index, blocks)

    def close(self) -> None:
        self._slides = None


def slide_blocks(slide: Any, number: int) -> Iterator[Block]:
    title = slide.shapes.title
    title_id = title.shape_id if title is not None else None
    if title is not None:
        text = _one_line(title.text_frame.text) if title.has_text_frame else ""
        if text:
            yield Block(BlockKind.HEADING, text, page=number, level=1)
    for shape in slide.shapes:
        if shape.shape_id != title_id:
            yield from _shape_blocks(shape, number, 0)
    if slide.has_notes_slide:
        notes = slide.notes_slide.notes_text_frame
        text = _frame_text(notes) if notes is not None else ""
        if text:
            yield Block(BlockKind.PARAGRAPH, text, page=number)


def _shape_blocks(shape: Any, number: int, depth: int) -> Iterator[Block]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    if shape.shape_type == MSO_SHAPE_TYPE.GROUP and depth < _MAX_GROUP_DEPTH:
        for inner in shape.shapes:
            yield from _shape_blocks(inner, number, depth + 1)
    elif getattr(shape, "has_table", False) and shape.has_table:
        text = table_text(_row_line(row) for row in shape.table.rows)
        if text:
            yield Block(BlockKind.TABLE, text, page=number)
    elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        text = _frame_text(shape.text_frame)
        if text:
            yield Block(BlockKind.PARAGRAPH, text, page=number)


def _frame_text(frame: Any) -> str:
    lines = (" ".join(strip_controls(p.text).split()) for p in frame.paragraphs)
    return "\n".join(line for line in lines if line)


def _row_line(row: Any) -> str:
    return row_line("" if cell.is_spanned else _one_line(cell.text) for cell in row.cells)


def _one_line(text: str) -> str:
    return " ".join(strip_controls(text.replace("\v", " ")).split())


FORMATS = (Format("pptx", PPTX, (".pptx",), Content.PACKAGE, PptxDocument),)
