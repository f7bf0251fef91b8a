"""PPTX (one unit per slide), XLSX (sheets in row blocks) and CSV/TSV (row blocks)."""

from __future__ import annotations

from pathlib import Path

import openpyxl

from knowra_worker.document import Block, BlockKind
from knowra_worker.parsers import open_document

from .conftest import DATA, read_blocks, read_units

H, P, T = BlockKind.HEADING, BlockKind.PARAGRAPH, BlockKind.TABLE


def test_pptx_slides_titles_text_tables_and_notes() -> None:
    with open_document(DATA / "powerpoint_sample.pptx") as doc:
        assert (doc.unit_name, doc.units_total, doc.units_total_exact) == ("slide", 3, True)
        units = list(doc.units())
    assert units[1].blocks == [
        Block(H, "Second slide title", page=2, level=1),
        # The first paragraph turns its bullet off; the others inherit the placeholder's.
        Block(P, "Let’s introduce a list", page=2),
        Block(BlockKind.LIST, "- With foo\n- Bar\n- And baz things", page=2),
        Block(P, "A rectangle shape with this text inside.", page=2),
        Block(P, "Some notes on the second slide.", page=2),
    ]
    table = units[0].blocks[2]
    assert table.kind is T and table.page == 1
    assert table.text.splitlines()[2] == "R1 | True | False |  | False | True | True"
    # Merged cells: their text in every cell they cover, across and down.
    assert table.rows[0] == ("", "Class1", "Class1", "Class1", "Class2", "Class2", "Class2")
    assert table.rows[1][1:3] == ("A merged with B", "A merged with B")
    assert read_units(DATA / "powerpoint_sample.pptx", start=2) == units[2:]


def test_xlsx_sheet_names_are_headings_and_rows_are_lines() -> None:
    blocks = read_blocks(DATA / "xlsx_01.xlsx")
    assert [b.text for b in blocks if b.kind is H] == ["Sheet1", "Sheet2", "Sheet3", "Sheet4"]
    assert blocks[1].text == (
        "first | second | third\n1 | 5 | 9\n2 | 4 | 6\n3 | 3 | 3\n4 | 2 | 0\n5 | 1 | -3\n6 | 0 | -6"
    )
    assert blocks[1].rows[:2] == (("first", "second", "third"), ("1", "5", "9"))
    assert blocks[-1] == Block(T, "header\n1", rows=(("header",), ("1",)))


def test_long_sheet_is_split_into_row_blocks(tmp_path: Path) -> None:
    path = tmp_path / "long.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Data"
    sheet.append(["id", "value", "when"])
    for n in range(1, 451):
        sheet.append([n, n / 4, None if n % 2 else "even"])
    workbook.create_sheet("Empty")
    workbook.save(path)
    with open_document(path) as doc:
        assert doc.unit_name == "sheet" and doc.units_total == 4  # 3 for Data + 1 for Empty
        units = list(doc.units())
    assert [len(u.blocks) for u in units] == [2, 1, 1, 1]
    rows = [line for u in units for b in u.blocks if b.kind is T for line in b.text.splitlines()]
    assert rows[:3] == ["id | value | when", "1 | 0.25", "2 | 0.5 | even"]
    assert rows[-1] == "450 | 112.5 | even" and len(rows) == 451
    assert units[-1].blocks == [Block(H, "Empty", level=1)]
    assert read_units(path, 2) == units[2:]


def test_csv_delimiter_is_sniffed() -> None:
    assert read_blocks(DATA / "semicolon-delimited.csv") == [
        Block(
            T,
            "Lorem, ipsum | dolor sit | amet\nconsectetur | adipiscing | elit\n"
            "sed, do | eiusmod | tempor incididunt\nut labore | et, dolore | magna aliqua\n"
            "Ut enim | ad minim | veniam, quis",
            rows=(
                ("Lorem, ipsum", "dolor sit", "amet"),
                ("consectetur", "adipiscing", "elit"),
                ("sed, do", "eiusmod", "tempor incididunt"),
                ("ut labore", "et, dolore", "magna aliqua"),
                ("Ut enim", "ad minim", "veniam, quis"),
            ),
        ),
    ]


def test_tsv_rows() -> None:
    table = read_blocks(DATA / "stanley-cups.tsv")[0]
    assert table.text.splitlines()[:3] == [
        "Stanley Cups",
        "Team | Location | Stanley Cups",
        "Blues | STL | 1",
    ]


def test_long_csv_units_hold_200_rows(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    lines = ["id,name,comment"] + [
        f'{n},name {n},"quoted, with comma\nand newline"' for n in range(1000)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    units = read_units(path)
    assert [len(u.blocks[0].text.splitlines()) for u in units] == [200] * 5 + [1]
    assert units[0].blocks[0].text.splitlines()[1] == "0 | name 0 | quoted, with comma and newline"
    assert read_units(path, 4) == units[4:]
