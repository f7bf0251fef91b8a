"""What every parser promises the pipeline, checked on every sample format."""

from __future__ import annotations

import pytest

from knowra_worker.document import BlockKind
from knowra_worker.parsers import open_document, registry

from .conftest import DATA, read_units

SAMPLES = [
    ("multi_page.pdf", True),
    ("redp5110_sampled.pdf", True),
    ("right_to_left_03.pdf", True),
    ("powerpoint_sample.pptx", True),
    ("word_sample.docx", False),
    ("docx_lists.docx", False),
    ("xlsx_01.xlsx", False),
    ("equations.docx", False),
    ("drawingml.docx", False),
    ("tablecell.docm", False),
    ("tablecell.dotx", False),
    ("tablecell.dotm", False),
    ("pptx_chart.pptx", True),
    ("powerpoint_sample.pptm", True),
    ("powerpoint_sample.ppsx", True),
    ("powerpoint_sample.ppsm", True),
    ("powerpoint_sample.potx", True),
    ("powerpoint_sample.potm", True),
    ("xlsx_comments.xlsx", False),
    ("xlsx_03_chartsheet.xlsx", False),
    ("xlsx_03_chartsheet.xlsm", False),
    ("xlsx_03_chartsheet.xltx", False),
    ("xlsx_03_chartsheet.xltm", False),
    ("example_03.html", False),
    ("fake-html-cp1252.html", False),
    ("mixed.md", False),
    ("blocks.md", False),
    ("book-war-and-peace-1p.txt", False),
    ("text_gbk.txt", False),
    ("semicolon-delimited.csv", False),
    ("stanley-cups.tsv", False),
    ("text_document_03.odt", False),
    ("odf_table_with_title_01.ods", False),
    ("odf_presentation_01.odp", True),
    ("epub_purvis_poetry.epub", False),
    ("fake-doc.rtf", False),
    ("eml_with_attachment.eml", False),
    ("factbook.xml", False),
    ("factbook.json", False),
    ("ocr_test.pdf", True),
    ("ocr_lines.png", True),
    ("ocr_lines.jpg", True),
    ("ocr_lines_2p.tif", True),
    ("ocr_lines.bmp", True),
    ("ocr_lines.webp", True),
]


@pytest.mark.parametrize(("name", "paginated"), SAMPLES)
def test_units_and_blocks_keep_the_contract(name: str, paginated: bool) -> None:
    path = DATA / name
    with open_document(path) as doc:
        assert doc.units_total >= 1 and doc.units_total_exact is paginated
        units = list(doc.units())
        assert doc.units_total == len(units) and doc.units_total_exact
    assert [unit.index for unit in units] == list(range(len(units)))
    for unit in units:
        for block in unit.blocks:
            assert block.text and block.text == block.text.strip("\n") and "\r" not in block.text
            assert (1 <= block.level <= 6) if block.kind is BlockKind.HEADING else block.level == 0
            assert (block.page == unit.index + 1) if paginated else block.page is None
    for start in range(len(units) + 1):
        assert read_units(path, start) == units[start:]


@pytest.mark.parametrize(("name", "paginated"), SAMPLES)
def test_documents_can_be_iterated_twice_and_closed_twice(name: str, paginated: bool) -> None:
    doc = open_document(DATA / name)
    first = list(doc.units())
    assert list(doc.units()) == first
    doc.close()
    doc.close()


def test_every_declared_format_has_a_sample_here() -> None:
    assert {registry.detect(DATA / name) for name, _ in SAMPLES} >= set(
        registry.supported_mime_types()
    )
