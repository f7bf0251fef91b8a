"""OpenDocument: text in document order, sheets as row tables, slides as units."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from knowra_worker.document import BlockKind
from knowra_worker.errors import CorruptFile
from knowra_worker.parsers import open_document, registry

from .conftest import DATA, read_blocks, read_units, warnings_as_given

H, P, L, T = BlockKind.HEADING, BlockKind.PARAGRAPH, BlockKind.LIST, BlockKind.TABLE
_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:xlink="http://www.w3.org/1999/xlink"'
)


def _package(path: Path, mime_type: str, body: str) -> Path:
    """A minimal OpenDocument package around a content.xml body (for cases the corpus lacks)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", mime_type, compress_type=zipfile.ZIP_STORED)
        content = f'<?xml version="1.0"?><office:document-content {_NS}>{body}'
        archive.writestr("content.xml", content + "</office:document-content>")
    return path


@pytest.mark.parametrize(
    ("name", "mime_type"),
    [
        ("text_document_01.odt", "application/vnd.oasis.opendocument.text"),
        ("odf_table_with_title_01.ods", "application/vnd.oasis.opendocument.spreadsheet"),
        ("odf_presentation_01.odp", "application/vnd.oasis.opendocument.presentation"),
    ],
)
def test_detected_by_content(name: str, mime_type: str, tmp_path: Path) -> None:
    renamed = tmp_path / "renamed.bin"
    renamed.write_bytes((DATA / name).read_bytes())
    assert registry.detect(renamed) == mime_type


def test_text_document_headings_lists_and_order() -> None:
    blocks = read_blocks(DATA / "text_document_01.odt")
    # The Title is level 1 with its Subtitle at 2; outline level N sits at N + 1 below it.
    assert [(b.level, b.text) for b in blocks if b.kind is H] == [
        (1, "Title"),
        (2, "Subtitle"),
        (2, "heading level 1.0"),
        (3, "Heading level 2: A"),
        (3, "Heading level 2: B"),
    ]
    lists = [b.text.splitlines() for b in blocks if b.kind is L]
    assert len(lists) == 1  # a list continued after a nested one stays one block
    assert lists[0][:4] == [
        "1. numbered list 1",
        "2. numbered list 2",
        "  - bullet list 2.1",
        "  - bullet list 2.2",
    ]
    assert "    - bullet list 2.2.1" in lists[0]
    kinds = [b.kind for b in blocks]
    assert kinds.index(L) == kinds.index(H, 3) + 2  # heading A, its paragraph, then the list


def test_superscripts_are_not_glued() -> None:
    texts = [b.text for b in read_blocks(DATA / "text_document_01.odt")]
    assert "X 2 + Y 2 = Z" in texts


def test_rich_table_cells_and_nested_tables() -> None:
    blocks = read_blocks(DATA / "text_document_03.odt")
    tables = [b for b in blocks if b.kind is T]
    assert tables[0].rows[0] == ("Column A", "Column B")
    assert tables[0].rows[1][0] == "This is a list: - A First - A Second - A Third"
    nested = tables[1].rows[2]
    assert nested[0] == "A B C Cell 1 Cell 2 Cell 3"  # no " | " inside a cell
    assert nested[1].startswith("Rich cell A nested table A B C")
    # Sections in order, the text around a table on each side of it.
    texts = [b.text for b in blocks]
    before = texts.index("Before table")
    assert blocks[before + 1] is tables[1]
    assert texts[before + 2].startswith("After table with bold, underline")


def test_spreadsheet_sheet_heading_and_rows() -> None:
    units = read_units(DATA / "odf_table_with_title_01.ods")
    assert len(units) == 1
    heading, table = units[0].blocks
    assert (heading.kind, heading.text) == (H, "Sheet1")
    assert table.kind is T
    assert table.rows[1:3] == (("", "Year", "Freshwater Ducks"), ("", "2019", "120"))
    assert table.rows[-1] == ("", "2024", "180")
    assert "Number of freshwater ducks per year" in table.rows[0]


def test_huge_repeat_counts_are_not_expanded(tmp_path: Path) -> None:
    filled = "<table:table-cell><text:p>{}</text:p></table:table-cell>"
    row = (
        filled.format("a")
        + '<table:table-cell table:number-columns-repeated="1000000"/>'
        + filled.format("b")
        + '<table:table-cell table:number-columns-repeated="16000000"/>'
    )
    body = (
        '<office:body><office:spreadsheet><table:table table:name="Big">'
        f'<table:table-row table:number-rows-repeated="3">{row}</table:table-row>'
        '<table:table-row table:number-rows-repeated="1048000"><table:table-cell/>'
        "</table:table-row></table:table></office:spreadsheet></office:body>"
    )
    path = _package(tmp_path / "big.ods", "application/vnd.oasis.opendocument.spreadsheet", body)
    blocks = read_blocks(path)
    assert [b.text for b in blocks if b.kind is H] == ["Big"]
    (table,) = [b for b in blocks if b.kind is T]
    assert len(table.rows) == 3
    assert all(len(cells) <= 1024 and cells[0] == "a" for cells in table.rows)
    assert set(warnings_as_given(path)) == {"cells beyond column 1024 were skipped"}


def test_links_in_markdown(tmp_path: Path) -> None:
    body = (
        "<office:body><office:text><text:p>See "
        '<text:a xlink:href="https://example.org/docs">the docs</text:a>'
        " now.</text:p></office:text></office:body>"
    )
    path = _package(tmp_path / "link.odt", "application/vnd.oasis.opendocument.text", body)
    (block,) = read_blocks(path)
    assert block.text == "See the docs now."
    assert block.markdown == "See [the docs](https://example.org/docs) now."


def test_presentation_slides_titles_tables_and_notes() -> None:
    units = read_units(DATA / "odf_presentation_01.odp")
    assert len(units) == 3
    first = units[0].blocks
    assert [(b.kind, b.text, b.page) for b in first[:2]] == [
        (H, "Test Table Slide", 1),
        (H, "With footnote", 1),
    ]
    table = first[2]
    assert table.kind is T and table.rows[1][1] == "- A merged with B"
    assert table.rows[1][2] == ""  # the covered cell of the merge
    second = [b.text for b in units[1].blocks]
    assert second[0] == "Second slide title"
    assert second[1].endswith("\n- With foo\n- Bar\n- And baz things")
    assert second[-1] == "Some notes on the second slide."  # notes come last
    assert all(b.page == 3 for b in units[2].blocks)


def test_not_an_opendocument_package(tmp_path: Path) -> None:
    path = tmp_path / "broken.odt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.text")
    with pytest.raises(CorruptFile), open_document(path) as doc:
        list(doc.units())
