"""PDF: one unit per page, paragraphs from the text layer, errors for locked or broken files."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from knowra_worker.document import BlockKind, Unit
from knowra_worker.errors import CorruptFile, EncryptedFile
from knowra_worker.parsers import open_document

from .conftest import DATA, read_units

MULTI_PAGE = DATA / "multi_page.pdf"


def page_of(units: list[Unit], needle: str) -> int | None:
    for unit in units:
        for block in unit.blocks:
            if needle in block.text:
                return block.page
    return None


def test_units_are_pages_with_an_exact_total() -> None:
    with open_document(MULTI_PAGE) as doc:
        assert (doc.mime_type, doc.unit_name) == ("application/pdf", "page")
        assert (doc.units_total, doc.units_total_exact) == (5, True)
        units = list(doc.units())
    assert [unit.index for unit in units] == [0, 1, 2, 3, 4]
    for unit in units:
        assert unit.blocks
        assert {block.page for block in unit.blocks} == {unit.index + 1}


@pytest.mark.parametrize(
    ("needle", "page"),
    [
        ("The Evolution of the Word Processor", 1),
        ("Patented in 1868 by Christopher Latham Sholes", 1),
        ("The Modern Era (1990s - Present)", 2),
        ("Specialized Word Processing Tools", 3),
    ],
)
def test_text_is_found_on_its_page(needle: str, page: int) -> None:
    assert page_of(read_units(MULTI_PAGE), needle) == page


def test_lines_are_joined_into_paragraphs() -> None:
    first_page = read_units(MULTI_PAGE)[0].blocks
    texts = [block.text for block in first_page]
    assert texts[:3] == [
        "The Evolution of the Word Processor",
        "The concept of the word processor predates modern computers and has evolved "
        "through several technological milestones.",
        "Pre-Digital Era (19th - Early 20th Century)",
    ]
    bullet = next(text for text in texts if text.startswith("• IBM MT/ST"))
    assert bullet.endswith("an early example of digital text storage.")
    assert "• Wang Laboratories" not in bullet  # the next bullet is its own paragraph
    assert all("\r" not in text and "\n" not in text and text == text.strip() for text in texts)


def test_start_opens_the_page_directly() -> None:
    every = read_units(MULTI_PAGE)
    assert read_units(MULTI_PAGE, start=3) == every[3:]
    assert read_units(MULTI_PAGE, start=5) == []


def test_clearly_larger_short_lines_are_headings() -> None:
    units = read_units(DATA / "redp5110_sampled.pdf")
    preface = units[3].blocks
    assert [(b.kind, b.text, b.level) for b in preface if b.kind is BlockKind.HEADING] == [
        (BlockKind.HEADING, "Preface", 1),
        (BlockKind.HEADING, "Authors", 2),
    ]
    found = [(b.text, b.page) for u in units for b in u.blocks if b.kind is BlockKind.HEADING]
    assert ("1.1 Security fundamentals", 6) in found
    assert ("Chapter 1. Securing and protecting IBM DB2 data", 5) in found


def test_password_protected_pdf_is_encrypted() -> None:
    with pytest.raises(EncryptedFile, match="password-protected"):
        open_document(DATA / "password.pdf")


def test_truncated_pdf_is_corrupt() -> None:
    with pytest.raises(CorruptFile, match="^not a valid PDF: "):
        open_document(DATA / "truncated_multi_page.pdf")


def test_page_without_text_gives_a_unit_without_blocks(tmp_path: Path) -> None:
    path = tmp_path / "blank.pdf"
    pdf = pdfium.PdfDocument.new()
    pdf.new_page(595, 842)
    pdf.save(path)
    pdf.close()
    assert read_units(path) == [Unit(0, [])]


def test_documents_parse_the_same_from_many_threads() -> None:
    paths = [MULTI_PAGE, DATA / "redp5110_sampled.pdf"] * 4
    expected = {path: read_units(path) for path in set(paths)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(read_units, paths))
    assert results == [expected[path] for path in paths]
