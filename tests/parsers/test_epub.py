"""EPUB: spine order, the book's title first, each chapter through the HTML walker."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowra_worker.document import BlockKind
from knowra_worker.errors import EncryptedFile
from knowra_worker.parsers import open_document, registry

from .conftest import DATA, edit_package, read_blocks, read_units

BOOK = DATA / "epub_purvis_poetry.epub"
H = BlockKind.HEADING


def test_detected_by_content(tmp_path: Path) -> None:
    renamed = tmp_path / "book.zip"
    renamed.write_bytes(BOOK.read_bytes())
    assert registry.detect(renamed) == "application/epub+zip"


def test_title_first_then_sections_in_spine_order() -> None:
    blocks = read_blocks(BOOK)
    titles = [b.text for b in blocks if b.kind is H]
    assert titles[0] == "Poetry by Sarah Louisa Forten Purvis"  # from the OPF metadata
    assert titles[1:5] == ["Poetry", "Imprint", "The Grave of the Slave",
                           "The Slave Girl’s Address to Her Mother"]  # fmt: skip
    assert titles[-2:] == ["Colophon", "Uncopyright"]


def test_a_spine_document_starts_a_unit() -> None:
    units = read_units(BOOK)
    firsts = [unit.blocks[0].text for unit in units]
    assert firsts[:3] == ["Poetry by Sarah Louisa Forten Purvis", "Imprint",
                          "The Grave of the Slave"]  # fmt: skip


def test_links_and_verse_lines() -> None:
    blocks = read_blocks(BOOK)
    markdown = [b.markdown for b in blocks if b.markdown]
    assert any("[Standard Ebooks](https://standardebooks.org/)" in m for m in markdown)
    verse = next(b.text for b in blocks if b.text.startswith("The cold storms of winter"))
    assert verse.splitlines()[1] == "His woes and his sorrows, his pains are all o’er;"


def test_drm_protected_content_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "drm.epub"
    encryption = (
        '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container"'
        ' xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
        '<enc:CipherData><enc:CipherReference URI="epub/text/imprint.xhtml"/>'
        "</enc:CipherData></enc:EncryptedData></encryption>"
    )
    edit_package(BOOK, path, extra={"META-INF/encryption.xml": encryption})
    with pytest.raises(EncryptedFile):
        open_document(path)
