"""RTF: paragraphs, headings, lists and tables from the reader's own tokenizer."""

from __future__ import annotations

from pathlib import Path

from knowra_worker.document import BlockKind
from knowra_worker.parsers import registry

from .conftest import DATA, read_blocks

H, P, L, T = BlockKind.HEADING, BlockKind.PARAGRAPH, BlockKind.LIST, BlockKind.TABLE


def test_detected_by_content(tmp_path: Path) -> None:
    renamed = tmp_path / "notes.txt"
    renamed.write_bytes((DATA / "fake-doc.rtf").read_bytes())
    assert registry.detect(renamed) == "application/rtf"


def test_heading_paragraphs_and_table_rows() -> None:
    blocks = read_blocks(DATA / "fake-doc.rtf")
    assert [(b.kind, b.text) for b in blocks[:3]] == [
        (H, "My First Heading"),
        (P, "My first paragraph."),
        (P, "Table Example:"),
    ]
    assert blocks[3].kind is T
    assert blocks[3].rows == (
        ("Column 1", "Column 2"),
        ("Row 1, Cell 1", "Row 1, Cell 2"),
        ("Row 2, Cell 1", "Row 2, Cell 2"),
    )


def test_word_processor_output_skips_its_tables_of_fonts_and_styles() -> None:
    blocks = read_blocks(DATA / "eng_spa_mult.rtf")
    assert blocks[0].text.startswith("All human beings are born free and equal in dignity")
    spanish = [b.text for b in blocks if b.text.startswith('"Todos los seres humanos')]
    assert spanish and "dotados como están de razón" in spanish[0]  # \'e1 in cp1252
    assert not any("Times New Roman" in b.text or "heading 1" in b.text for b in blocks)


def test_unicode_styles_lists_and_skipped_destinations(tmp_path: Path) -> None:
    path = tmp_path / "sample.rtf"
    path.write_bytes(
        rb"{\rtf1\ansi\ansicpg1252\uc1{\fonttbl{\f0 Arial;}}"
        rb"{\stylesheet{\s0 Normal;}{\s2\sbasedon0 heading 2;}}"
        rb"{\info{\title Not body text}}{\header Page header}"
        b"\n"
        rb"\pard\s2 Caf\'e9 menu\par"
        rb"\pard Price: 5\u8364?{\*\unknowndestination hidden}\par"
        rb"{\listtext 1.\tab}\pard\ls1\ilvl0 Soup\par"
        rb"{\listtext 2.\tab}\pard\ls1\ilvl0 Bread\par"
        rb"{\listtext \'b7\tab}\pard\ls2\ilvl1 with butter\par"
        rb"\pard Line one\line line two{\v secret}\par}"
    )
    blocks = read_blocks(path)
    assert [(b.kind, b.text, b.level) for b in blocks] == [
        (H, "Café menu", 2),
        (P, "Price: 5€", 0),
        (L, "1. Soup\n2. Bread\n  - with butter", 0),
        (P, "Line one\nline two", 0),
    ]
