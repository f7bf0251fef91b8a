"""Plain text: encodings, paragraphs, bounded units that resume exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowra_worker.document import Block, BlockKind
from knowra_worker.parsers import open_document

from .conftest import DATA, read_blocks, read_units


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("text_utf8_bom.txt", "im Geist der Brüderlichkeit begegnen."),
        ("text_utf16le_bom.txt", "Все люди рождаются свободными"),
        ("text_utf16be_bom.txt", "Όλοι οι άνθρωποι γεννιούνται ελεύθεροι"),
        ("text_gbk.txt", "人人生而自由，在尊严和权利上一律平等。"),
        ("text_cp1252.txt", 'Sie sagte: "Das war köstlich!" und lächelte dabei.'),
    ],
)
def test_encodings_are_detected(name: str, expected: str) -> None:
    blocks = read_blocks(DATA / name)
    text = "\n\n".join(block.text for block in blocks)
    assert expected in text
    assert "\ufffd" not in text and "\ufeff" not in text


def test_cp1252_specific_characters_survive() -> None:
    text = "\n".join(block.text for block in read_blocks(DATA / "text_cp1252.txt"))
    assert "15,50 €" in text and "L'été était très chaud" in text and "El niño" in text


def test_paragraphs_split_on_blank_lines_and_keep_line_breaks() -> None:
    blocks = read_blocks(DATA / "book-war-and-peace-1p.txt")
    assert {block.kind for block in blocks} == {BlockKind.PARAGRAPH}
    assert blocks[0].text == "CHAPTER I"
    assert blocks[1].text.startswith('"Well, Prince, so Genoa and Lucca are now just family')
    assert blocks[1].text.splitlines()[1] == (
        "Buonapartes. But I warn you, if you don't tell me that this means war,"
    )


def test_crlf_is_normalised() -> None:
    assert read_blocks(DATA / "text_crlf.txt") == read_blocks(DATA / "book-war-and-peace-1p.txt")


def test_control_characters_and_trailing_spaces_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    intro = "A line of ordinary text to make the stray control characters rare. " * 3
    path.write_bytes(intro.encode() + b"\n\none \x00two   \r\nthree\t\r\n \t \r\n\x0cfour\x07\n")
    assert read_blocks(path)[1:] == [
        Block(BlockKind.PARAGRAPH, "one two\nthree"),
        Block(BlockKind.PARAGRAPH, "four"),
    ]


def _big_text(paragraphs: int) -> str:
    return "\n\n".join(
        f"Paragraph {n}. " + " ".join(f"word{n}-{k}" for k in range(120)) for n in range(paragraphs)
    )


def test_long_text_is_cut_into_bounded_units_that_resume_exactly(tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_text(_big_text(300), encoding="utf-8")
    with open_document(path) as doc:
        assert doc.unit_name == "section"
        assert not doc.units_total_exact
        estimate = doc.units_total
        units = list(doc.units())
        assert (doc.units_total, doc.units_total_exact) == (len(units), True)
    assert len(units) > 5 and abs(estimate - len(units)) <= 2
    assert [unit.index for unit in units] == list(range(len(units)))
    for unit in units:
        assert 0 < sum(len(block.text) for block in unit.blocks) <= 32_000
    paragraphs = [block.text for unit in units for block in unit.blocks]
    assert paragraphs[0].startswith("Paragraph 0. ") and len(paragraphs) == 300
    for start in (1, 4, len(units) - 1, len(units)):
        assert read_units(path, start) == units[start:]


def test_a_file_without_line_breaks_is_cut_into_bounded_blocks(tmp_path: Path) -> None:
    path = tmp_path / "one-line.txt"
    words = " ".join(f"w{n:05d}" for n in range(20_000))  # 120 000 characters, no newline
    path.write_text(words, encoding="utf-8")
    blocks = read_blocks(path)
    assert len(blocks) > 3
    assert all(len(block.text) <= 32_000 for block in blocks)
    assert "".join(block.text for block in blocks).replace(" ", "") == words.replace(" ", "")


def test_whitespace_only_text_gives_one_empty_unit(tmp_path: Path) -> None:
    path = tmp_path / "blank.txt"
    path.write_text("   \n\n\t\n", encoding="utf-8")
    units = read_units(path)
    assert len(units) == 1 and units[0].blocks == []
