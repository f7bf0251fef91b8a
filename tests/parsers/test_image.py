"""Images read by OCR: every declared format, pages of a TIFF, and size limits met before
any pixel is decoded."""

from __future__ import annotations

import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from knowra_worker.errors import CorruptFile, LimitExceeded, UnsupportedFormat
from knowra_worker.parsers import _ocr, open_document, registry
from knowra_worker.parsers._ocr import OcrConfig
from knowra_worker.parsers.image import ImageDocument
from tests.parsers.conftest import DATA, glued_pairs, read_units, recall, words
from tests.parsers.test_ocr import OCR_TEST_TEXT


@pytest.fixture
def ocr_config() -> Iterator[None]:
    yield
    _ocr.configure(OcrConfig())


def png_header(width: int, height: int, pixels: bytes) -> bytes:
    """A PNG claiming `width` x `height` whose pixel data is `pixels` (compressed as is)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels))
        + chunk(b"IEND", b"")
    )


def test_a_photographed_page_gives_its_words_back_with_spaces() -> None:
    # unstructured's layout-parser-paper-fast.jpg is page 1 of layout-parser-paper-fast.pdf:
    # that PDF's text layer is the ground truth.
    truth = words((DATA / "layout-parser-paper-fast.jpg.txt").read_text(encoding="utf-8"))
    [unit] = read_units(DATA / "layout-parser-paper-fast.jpg")
    ours = words(" ".join(block.text for block in unit.blocks))
    assert recall(truth, ours) >= 0.9
    assert glued_pairs(truth, ours, marks_joined=True) == []
    assert unit.blocks[0].text.startswith("LayoutParser: A Unified Toolkit for Deep Learning")
    assert all(block.page == 1 for block in unit.blocks)


@pytest.mark.parametrize(
    ("name", "mime_type"),
    [
        ("ocr_lines.png", "image/png"),
        ("ocr_lines.jpg", "image/jpeg"),
        ("ocr_lines.webp", "image/webp"),
        ("ocr_lines.bmp", "image/bmp"),
    ],
)
def test_every_image_format_is_read(name: str, mime_type: str) -> None:
    with open_document(DATA / name) as doc:
        assert isinstance(doc, ImageDocument) and doc.mime_type == mime_type
        assert (doc.units_total, doc.unit_name) == (1, "page")
        [unit] = list(doc.units())
    assert [block.text for block in unit.blocks] == [OCR_TEST_TEXT]
    assert unit.warnings == []


def test_a_multi_page_tiff_gives_one_unit_per_page() -> None:
    units = read_units(DATA / "ocr_lines_2p.tif")
    assert [[(b.page, b.text) for b in unit.blocks] for unit in units] == [
        [(1, OCR_TEST_TEXT.removesuffix(" package"))],
        [(2, "package")],
    ]
    assert read_units(DATA / "ocr_lines_2p.tif", 1) == units[1:]


def test_an_image_above_the_pixel_limit_fails_before_decoding(
    tmp_path: Path, ocr_config: None
) -> None:
    # The pixel data is garbage: decoding it would fail CORRUPT_FILE, so LIMIT_EXCEEDED
    # shows that the header alone decided.
    path = tmp_path / "huge.png"
    path.write_bytes(png_header(9000, 9000, b"not pixels"))
    _ocr.configure(max_image_pixels=80_000_000)
    with pytest.raises(LimitExceeded, match=r"9000 x 9000 pixels \(81\.0 megapixels\)"):
        open_document(path)


def test_the_pixel_limit_is_a_setting(ocr_config: None) -> None:
    _ocr.configure(max_image_pixels=10_000)
    with pytest.raises(LimitExceeded, match="KNOWRA_MAX_IMAGE_PIXELS") as caught:
        open_document(DATA / "ocr_lines.png")
    assert caught.value.code == "LIMIT_EXCEEDED"


def test_pillows_bomb_check_is_the_second_line(tmp_path: Path, ocr_config: None) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(60_000, 60_000, b"\x00"))
    _ocr.configure(max_image_pixels=10**10)  # above Pillow's own limit
    with pytest.raises(LimitExceeded, match="too large"):
        open_document(path)


def test_a_truncated_image_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "truncated.png"
    path.write_bytes((DATA / "ocr_lines.png").read_bytes()[:300])
    with pytest.raises(CorruptFile):
        read_units(path)


def test_images_are_unsupported_when_ocr_is_off(ocr_config: None) -> None:
    _ocr.configure(engine="none")
    with pytest.raises(UnsupportedFormat, match="KNOWRA_OCR_ENGINE=none"):
        open_document(DATA / "ocr_lines.png")


def test_an_image_without_text_gives_an_empty_unit() -> None:
    # a 1x1 PNG named .docx: detection trusts the bytes, and the image holds no text
    assert registry.detect(DATA / "image_renamed.docx") == "image/png"
    [unit] = read_units(DATA / "image_renamed.docx")
    assert unit.blocks == [] and unit.warnings == []


def test_the_image_formats_are_declared() -> None:
    assert {"png", "jpeg", "tiff", "bmp", "webp"} <= set(registry.supported_formats())
    for mime_type in ("image/png", "image/jpeg", "image/tiff", "image/bmp", "image/webp"):
        assert registry.parser_for(mime_type) is ImageDocument


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="the tesseract program is absent")
def test_tesseract_reads_a_page_photographed_at_screen_resolution(ocr_config: None) -> None:
    pytest.importorskip("pytesseract")
    _ocr.configure(engine="tesseract")
    truth = words((DATA / "layout-parser-paper-fast.jpg.txt").read_text(encoding="utf-8"))
    [unit] = read_units(DATA / "layout-parser-paper-fast.jpg")
    ours = words(" ".join(block.text for block in unit.blocks))
    assert recall(truth, ours) >= 0.9
    assert glued_pairs(truth, ours, marks_joined=True) == []


def test_a_broken_page_of_a_tiff_is_skipped_with_a_warning(tmp_path: Path) -> None:
    from PIL import Image

    data = bytearray((DATA / "ocr_lines_2p.tif").read_bytes())
    with Image.open(DATA / "ocr_lines_2p.tif") as image:
        image.seek(1)
        offset, length = image.tag_v2[273][0], image.tag_v2[279][0]  # page 2's strip
    data[offset : offset + length] = bytes(length)  # not valid Group 4 data
    path = tmp_path / "broken.tif"
    path.write_bytes(bytes(data))
    first, second = read_units(path)
    assert [b.text for b in first.blocks] == [OCR_TEST_TEXT.removesuffix(" package")]
    assert second.blocks == []
    assert second.warnings == ["page 2 was skipped: not a valid image: decoder error -2"]
