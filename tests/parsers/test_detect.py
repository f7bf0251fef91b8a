"""Type detection: content first, extension second; clear errors for what can't be parsed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from knowra_worker.errors import (
    CorruptFile,
    EmptyDocument,
    EncryptedFile,
    FileNotFound,
    SourceIOError,
    UnsupportedFormat,
)
from knowra_worker.parsers import registry
from knowra_worker.parsers.detect import DOCX, PPTX, XLSX

from .conftest import DATA, read_blocks


@pytest.mark.parametrize(
    ("name", "mime_type"),
    [
        ("multi_page.pdf", "application/pdf"),
        ("word_sample.docx", DOCX),
        ("powerpoint_sample.pptx", PPTX),
        ("xlsx_01.xlsx", XLSX),
        ("example_03.html", "text/html"),
        ("example-steelJIS-datasheet-utf-16.html", "text/html"),
        ("mixed.md", "text/markdown"),
        ("umlauts-non-utf8.md", "text/markdown"),
        ("book-war-and-peace-1p.txt", "text/plain"),
        ("text_utf16be_bom.txt", "text/plain"),
        ("text_gbk.txt", "text/plain"),
        ("semicolon-delimited.csv", "text/csv"),
        ("stanley-cups.tsv", "text/tab-separated-values"),
        ("fake.doc", "application/msword"),
        ("image_renamed.docx", "image/png"),
        ("garbage.bin", "application/octet-stream"),
    ],
)
def test_detects_type_of_samples(name: str, mime_type: str) -> None:
    assert registry.detect(DATA / name) == mime_type


@pytest.mark.parametrize(
    ("name", "mime_type"),
    [
        ("multi_page.pdf", "application/pdf"),
        ("word_sample.docx", DOCX),
        ("powerpoint_sample.pptx", PPTX),
        ("xlsx_01.xlsx", XLSX),
        ("example_03.html", "text/html"),
    ],
)
def test_content_wins_over_a_wrong_extension(tmp_path: Path, name: str, mime_type: str) -> None:
    renamed = tmp_path / "upload.bin"
    shutil.copyfile(DATA / name, renamed)
    assert registry.detect(renamed) == mime_type


def test_pdf_header_after_junk_is_a_pdf_that_opens(tmp_path: Path) -> None:
    path = tmp_path / "junk.pdf"
    path.write_bytes(b"\r\n%% mail gateway banner\r\n" + (DATA / "multi_page.pdf").read_bytes())
    assert registry.detect(path) == "application/pdf"
    with registry.open_document(path) as doc:
        assert doc.units_total == 5


def test_zero_byte_file_is_an_empty_document() -> None:
    with pytest.raises(EmptyDocument) as caught:
        registry.open_document(DATA / "zero_bytes.txt")
    assert caught.value.message == "the file is empty (0 bytes)"


def test_gif_renamed_docx_names_detected_type_and_extension() -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        registry.open_document(DATA / "gif_renamed.docx")
    message = caught.value.message
    assert caught.value.code == "UNSUPPORTED_FORMAT"
    assert "GIF image (image/gif)" in message
    assert "'.docx'" in message


def test_legacy_word_document_is_unsupported_with_advice() -> None:
    with pytest.raises(UnsupportedFormat, match=r"legacy Word 97-2003 document.*\.docx"):
        registry.open_document(DATA / "fake.doc")


def test_password_protected_office_file_is_encrypted() -> None:
    with pytest.raises(EncryptedFile, match="password-protected"):
        registry.open_document(DATA / "password_protected.xlsx")


def test_binary_garbage_is_unsupported() -> None:
    with pytest.raises(UnsupportedFormat, match=r"application/octet-stream"):
        registry.open_document(DATA / "garbage.bin")


def test_broken_zip_with_docx_name_is_a_corrupt_docx() -> None:
    assert registry.detect(DATA / "not_a_zip.docx") == DOCX
    with pytest.raises(CorruptFile, match="not a valid DOCX file"):
        registry.open_document(DATA / "not_a_zip.docx")


@pytest.mark.parametrize(
    ("name", "content", "mime_type"),
    [
        ("page.txt", "<!DOCTYPE html><title>x</title><p>hi</p>", "text/html"),
        ("page", "\ufeff  <!-- saved -->\n<html><body>hi</body></html>", "text/html"),
        ("fragment", "<div class='x'>hello</div>", "text/html"),
        ("README.md", '<p align="center">logo</p>\n\n# Project\n', "text/markdown"),
        ("notes.txt", "<div>not html, says the name</div>", "text/plain"),
        ("data.xml", '<?xml version="1.0"?><root><a>1</a></root>', "application/xml"),
        (
            "page.xhtml",
            '<?xml version="1.0"?>\n<html xmlns="http://www.w3.org/1999/xhtml"/>',
            "text/html",
        ),
        ("doc.rst", "Title\n=====\n\nSome text.\n", "text/plain"),
        ("table.CSV", "a,b\n1,2\n", "text/csv"),
        ("table.tsv", "a\tb\n1\t2\n", "text/tab-separated-values"),
        ("notes.markdown", "# Hi\n", "text/markdown"),
    ],
)
def test_text_formats_by_sniffing_then_extension(
    tmp_path: Path, name: str, content: str, mime_type: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert registry.detect(path) == mime_type


def test_utf16_without_bom_is_text(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes("Plain words in UTF-16, no byte-order mark.\n".encode("utf-16-le"))
    assert registry.detect(path) == "text/plain"
    assert read_blocks(path)[0].text == "Plain words in UTF-16, no byte-order mark."


def test_missing_file_and_directory_are_io_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFound):
        registry.detect(tmp_path / "gone.pdf")
    with pytest.raises(SourceIOError):
        registry.detect(tmp_path)


def test_a_package_that_unpacks_too_big_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib
    import zipfile

    from knowra_worker.errors import CorruptFile, LimitExceeded

    detect = importlib.import_module("knowra_worker.parsers.detect")

    monkeypatch.setattr(detect, "MAX_UNPACKED_BYTES", 4 * 2**20)
    bomb = tmp_path / "bomb.docx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w") as part:
            for _ in range(8):
                part.write(b"\0" * 2**20)
    assert bomb.stat().st_size < 64 * 1024
    with pytest.raises(LimitExceeded, match="unpacks to 8 MiB, more than the 4 MiB"):
        registry.open_document(bomb)
    monkeypatch.setattr(detect, "MAX_UNPACKED_BYTES", 16 * 2**20)
    with pytest.raises(CorruptFile):  # within the limit: an ordinary broken DOCX
        registry.open_document(bomb)


@pytest.mark.parametrize(
    ("name", "mime_type"),
    [
        ("fake-email-attachment.eml", "message/rfc822"),
        ("mime-html-only.eml", "message/rfc822"),
        ("factbook.json", "application/json"),
        ("factbook.xml", "application/xml"),
    ],
)
def test_mail_json_and_xml_are_told_by_content_without_their_extension(
    tmp_path: Path, name: str, mime_type: str
) -> None:
    names = ["noext"] + ([] if mime_type == "application/xml" else ["misnamed.txt"])
    for renamed in (tmp_path / n for n in names):  # a .txt that begins with a tag stays text
        renamed.write_bytes((DATA / name).read_bytes())
        assert registry.detect(renamed) == mime_type, renamed


@pytest.mark.parametrize(
    "text",
    [
        "[1] Introduction\n\nThe first section of a paper.\n",
        "{ this is not json } but prose\n",
        "Note: one colon line\nAnother: line\nThird: line\n\nBody.\n",
        "<b>bold</b> start of a plain note\n",
    ],
)
def test_text_that_only_looks_structured_stays_plain(tmp_path: Path, text: str) -> None:
    path = tmp_path / "note.txt"
    path.write_text(text)
    assert registry.detect(path) == "text/plain"
