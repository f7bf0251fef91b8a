"""XLSX: charts and chart sheets, comments, merged cells, separate tables, macro-enabled files."""

from __future__ import annotations

from pathlib import Path

import openpyxl

from knowra_worker.document import BlockKind
from knowra_worker.parsers import open_document

from .conftest import DATA, edit_package, read_blocks

H, P, T = BlockKind.HEADING, BlockKind.PARAGRAPH, BlockKind.TABLE
_DUCKS = (
    ("", "Freshwater Ducks", "Saltwater Ducks"),
    ("2019", "120", "80"),
    ("2020", "135", "95"),
    ("2021", "150", "100"),
    ("2022", "170", "110"),
    ("2023", "160", "120"),
    ("2024", "180", "130"),
)


def test_chart_sheet_gives_its_chart() -> None:
    blocks = read_blocks(DATA / "xlsx_03_chartsheet.xlsx")
    assert [(b.kind, b.text) for b in blocks if b.kind is not T] == [
        (H, "Duck Observations"),
        (H, "Duck Chart"),
        (P, "Wild Duck Observations by Year (Bar chart)"),
    ]
    assert blocks[1].rows[0] == ("Year", "Freshwater Ducks", "Saltwater Ducks", "Ducks")
    assert blocks[-1].kind is T and blocks[-1].rows == _DUCKS


def test_comments_with_their_authors_after_the_cells() -> None:
    blocks = read_blocks(DATA / "xlsx_comments.xlsx")
    comments = [b.text for b in blocks if b.kind is P]
    # Threaded comments (with replies) first; the legacy notes of other cells after them.
    assert comments == [
        "Comment on F7 by Jane Smith (JS): Minimum number of saltwater ducks",
        "Comment on F7 by Marcus Sterling (MS): I never thought it would be so low",
        "Comment on G12 by Jane Smith (JS): Maximum number of ducks",
        "Comment on A1 by John Reviewer: Why Python specifically?",
        "Comment on B2 by Jane Editor: Which libraries are you referring to?",
    ]
    tables = [b for b in blocks if b.kind is T]
    assert tables[-1].rows[0] == ("Year", "Freshwater Ducks", "Saltwater Ducks", "Ducks")
    assert tables[-1].rows[-1] == ("2024", "180", "130", "310")


def test_merged_cells_repeated_and_side_by_side_tables_apart(tmp_path: Path) -> None:
    path = tmp_path / "layout.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Layout"
    sheet.append(["Region", "Sales", None, None, "Name", "Role"])
    sheet.append(["North", 10, None, None, "Ada", "Lead"])
    sheet.append([None, 12, None, None, "Alan", "Dev"])
    sheet.append(["South", 7])
    sheet.merge_cells("A2:A3")  # "North" covers two rows
    sheet.append([])
    sheet.append(["Total over all regions", None, None])
    sheet.merge_cells("A6:C6")
    workbook.save(path)
    tables = [b.rows for b in read_blocks(path) if b.kind is T]
    assert tables == [
        (("Region", "Sales"), ("North", "10"), ("North", "12"), ("South", "7")),
        (("Name", "Role"), ("Ada", "Lead"), ("Alan", "Dev")),
        (("Total over all regions", "Total over all regions", "Total over all regions"),),
    ]


def test_macro_enabled_workbook_is_detected_and_read(tmp_path: Path) -> None:
    source = DATA / "xlsx_01.xlsx"
    main = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
    macro = "application/vnd.ms-excel.sheet.macroEnabled.main+xml"
    for name in ("book.xlsm", "book-without-extension"):
        path = tmp_path / name
        edit_package(source, path, {"[Content_Types].xml": (main, macro)})
        with open_document(path) as doc:
            assert doc.mime_type == "application/vnd.ms-excel.sheet.macroEnabled.12"
            blocks = [b for unit in doc.units() for b in unit.blocks]
        assert blocks == read_blocks(source)
        assert [b.text for b in blocks if b.kind is H] == ["Sheet1", "Sheet2", "Sheet3", "Sheet4"]
