"""OCR: scanned PDF pages read through the engine, the engine itself, and lines to blocks."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from knowra_worker.document import BlockKind
from knowra_worker.parsers import _ocr
from knowra_worker.parsers._ocr import OcrConfig, OcrLine
from knowra_worker.settings import Settings
from tests.parsers.conftest import DATA, glued_pairs, read_units, recall, words

OCR_TEST_TEXT = (
    "Docling bundles PDF document conversion to JSON and Markdown in an easy self contained package"
)


@pytest.fixture
def ocr_config() -> Iterator[None]:
    """Tests that change the OCR configuration get the defaults back afterwards."""
    yield
    _ocr.configure(OcrConfig())


def document_text(path: Path) -> str:
    return "\n\n".join(block.text for unit in read_units(path) for block in unit.blocks)


# --- scanned PDFs ------------------------------------------------------------------------


def test_scanned_pdf_page_gives_its_words_back_with_spaces() -> None:
    # A page of docling's 2305.03393v1-pg9.pdf rendered to an image-only PDF (150 DPI JPEG);
    # its ground truth is docling's Markdown of the page.
    truth = words((DATA / "scanned_2305.03393v1-pg9.pdf.md").read_text(encoding="utf-8"))
    ours = words(document_text(DATA / "scanned_2305.03393v1-pg9.pdf"))
    assert recall(truth, ours) >= 0.9
    assert glued_pairs(truth, ours, marks_joined=True) == []


def test_scanned_pdf_page_warns_it_was_read_by_ocr() -> None:
    [unit] = read_units(DATA / "ocr_test.pdf")
    assert unit.warnings == ["page 1 has no text layer; its text was recognised by OCR"]
    assert [(b.kind, b.text, b.page) for b in unit.blocks] == [
        (BlockKind.PARAGRAPH, OCR_TEST_TEXT, 1)
    ]


def test_scanned_page_reads_the_same_from_a_later_start() -> None:
    units = read_units(DATA / "scanned_2305.03393v1-pg9.pdf")
    assert read_units(DATA / "scanned_2305.03393v1-pg9.pdf", 0) == units
    assert read_units(DATA / "scanned_2305.03393v1-pg9.pdf", 1) == []


def test_pdf_with_a_text_layer_is_not_read_by_ocr() -> None:
    units = read_units(DATA / "multi_page.pdf")
    assert units and not any("OCR" in w for unit in units for w in unit.warnings)


def test_without_ocr_a_scanned_page_stays_empty(ocr_config: None) -> None:
    _ocr.configure(engine="none")
    [unit] = read_units(DATA / "ocr_test.pdf")
    assert unit.blocks == [] and unit.warnings == []


# --- which pages need OCR ----------------------------------------------------------------


@dataclass
class _Line:
    text: str


@dataclass
class _Page:
    lines: list[_Line]
    tables: list[tuple[tuple[str, ...], ...]] | None = field(default=None)


def page(*texts: str) -> _Page:
    return _Page([_Line(text) for text in texts])


def test_a_page_without_letters_or_digits_needs_ocr() -> None:
    assert _ocr.needs_ocr(page()) == "has no text layer"
    assert _ocr.needs_ocr(page("", "  ", "\u00b7 \u2022")) == "has no text layer"


def test_a_page_of_unmapped_glyphs_needs_ocr() -> None:
    garbage = "\ue001\ue002\ue003 \ufffd\ufffd \ue004ab"
    assert _ocr.needs_ocr(page(garbage)) == "has an unreadable text layer"


def test_a_page_with_readable_text_or_a_table_does_not() -> None:
    assert _ocr.needs_ocr(page("Quarterly results", "\ue001 one odd glyph")) == ""
    assert _ocr.needs_ocr(_Page([], [(("Year", "Sales"), ("2024", "12"))])) == ""


def test_replacement_characters_are_unreadable_though_printable() -> None:
    assert _ocr.needs_ocr(page("ab \ufffd\ufffd\ufffd\ufffd")) == "has an unreadable text layer"
    assert _ocr.needs_ocr(page("abcde \ufffd")) == ""


def _reference(texts: list[str]) -> str:
    """needs_ocr's rule, character by character."""
    text = "".join(texts)
    if not any(c.isalnum() for c in text):
        return "has no text layer"
    visible = [c for c in text if not c.isspace()]
    bad = sum(c == "\ufffd" or unicodedata.category(c) in {"Co", "Cn", "Cs", "Cc"} for c in visible)
    return "has an unreadable text layer" if len(visible) - bad < 0.5 * len(visible) else ""


def test_the_rule_holds_on_random_pages() -> None:
    """Readable letters and marks, spaces of every kind (tab, no-break, ideographic), format
    characters, replacement, private-use, unassigned, surrogate and control code points."""
    pool = list("aZ9é中ب ,.-\t\u00a0\u3000\u200b\u00ad") + [
        "\ufffd", "\ue001", "\U000f0001", "\u0378", "\ud800", "\x07", "\x1c", "\x7f",
    ]  # fmt: skip
    rng = random.Random(9)
    for _ in range(3000):
        weights = [rng.random() ** 3 for _ in pool]
        texts = ["".join(rng.choices(pool, weights, k=rng.randint(0, 12))) for _ in range(3)]
        assert _ocr.needs_ocr(page(*texts)) == _reference(texts), texts


def test_nothing_needs_ocr_when_it_is_off(ocr_config: None) -> None:
    _ocr.configure(engine="none")
    assert _ocr.needs_ocr(page()) == ""


# --- lines to blocks ---------------------------------------------------------------------


def line(text: str, left: float, top: float, width: float = 300, height: float = 20) -> OcrLine:
    return OcrLine(text, left, top, left + width, top + height)


def test_two_columns_are_read_one_after_the_other() -> None:
    lines = [
        line("A title across the page", 50, 0, width=700, height=40),
        line("left one", 50, 80),
        line("right one", 450, 80),
        line("left two", 50, 104),
        line("right two", 450, 104),
    ]
    blocks = _ocr.text_blocks(lines[::-1], page=2)
    assert [b.text for b in blocks] == [
        "A title across the page",
        "left one left two",
        "right one right two",
    ]
    assert all(b.page == 2 for b in blocks)


def test_paragraphs_split_at_wide_gaps_and_hyphens_join() -> None:
    lines = [
        line("First para-", 50, 0),
        line("graph ends.", 50, 24),
        line("Second paragraph.", 50, 80),
    ]
    assert [b.text for b in _ocr.text_blocks(lines, None)] == [
        "First para-graph ends.",
        "Second paragraph.",
    ]


def test_a_short_line_in_large_type_is_a_heading() -> None:
    lines = [line("Results", 50, 0, height=40)] + [
        line(f"body line {i}", 50, 70 + 24 * i) for i in range(5)
    ]
    blocks = _ocr.text_blocks(lines, 1)
    assert [(b.kind, b.level, b.text) for b in blocks][0] == (BlockKind.HEADING, 1, "Results")
    assert blocks[1].kind is BlockKind.PARAGRAPH and blocks[1].text.startswith("body line 0")


def test_lines_on_one_row_read_left_to_right() -> None:
    # boxes of one row rarely share a top: the row is found by the lines' middles
    lines = [line("second", 400, 3, width=100), line("first", 50, 0, width=100)]
    assert [b.text for b in _ocr.text_blocks(lines, 1)] == ["first", "second"]


# --- the engine --------------------------------------------------------------------------


def test_the_engine_is_built_once_per_process() -> None:
    config = _ocr.config()
    assert _ocr._engine(config) is _ocr._engine(config)


def test_rapidocr_models_ship_in_the_package() -> None:
    import rapidocr

    models = Path(rapidocr.__file__).parent / "models"
    assert {p.name for p in models.glob("*.onnx")} >= {
        "PP-OCRv6_det_small.onnx",
        "PP-OCRv6_rec_small.onnx",
        "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
    }


OFFLINE = """
import socket, sys
def refuse(*args, **kwargs):
    raise OSError("network access attempted")
socket.socket.connect = socket.socket.connect_ex = refuse
socket.getaddrinfo = socket.create_connection = refuse
from knowra_worker.parsers import open_document
with open_document(sys.argv[1]) as doc:
    print(" ".join(b.text for u in doc.units() for b in u.blocks))
"""


def test_recognition_works_without_network(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KNOWRA_OCR_ENGINE": "rapidocr"}
    done = subprocess.run(
        [sys.executable, "-c", OFFLINE, str(DATA / "ocr_lines.png")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == OCR_TEST_TEXT
    assert not list(tmp_path.rglob("*.onnx"))  # no model fetched into HOME's caches


def test_configuration_comes_from_the_environment() -> None:
    config = OcrConfig.from_env(
        {"KNOWRA_OCR_ENGINE": "Tesseract", "KNOWRA_OCR_DPI": "200", "KNOWRA_OCR_THREADS": "1"}
    )
    assert (config.engine, config.dpi, config.threads) == ("tesseract", 200, 1)
    assert OcrConfig.from_env({}) == OcrConfig()
    with pytest.raises(ValueError, match="KNOWRA_OCR_ENGINE"):
        OcrConfig.from_env({"KNOWRA_OCR_ENGINE": "paddle"})
    with pytest.raises(ValueError, match="KNOWRA_OCR_DPI"):
        OcrConfig.from_env({"KNOWRA_OCR_DPI": "5"})


def test_settings_declare_the_same_defaults() -> None:
    settings, config = Settings(), OcrConfig()
    assert (settings.ocr_engine, settings.ocr_dpi, settings.ocr_threads) == (
        config.engine,
        config.dpi,
        config.threads,
    )
    assert (settings.ocr_languages, settings.max_image_pixels) == (
        config.languages,
        config.max_image_pixels,
    )


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="the tesseract program is absent")
def test_tesseract_reads_the_scanned_page(ocr_config: None) -> None:
    pytest.importorskip("pytesseract")
    _ocr.configure(engine="tesseract")
    [unit] = read_units(DATA / "ocr_test.pdf")
    assert words(" ".join(b.text for b in unit.blocks)) == words(OCR_TEST_TEXT)
    assert unit.warnings == ["page 1 has no text layer; its text was recognised by OCR"]


@pytest.mark.parametrize("angle", [90, 180, 270])
def test_a_page_scanned_sideways_or_upside_down_reads_upright(tmp_path: Path, angle: int) -> None:
    from PIL import Image

    path = tmp_path / f"turned_{angle}.png"
    with Image.open(DATA / "ocr_lines.png") as image:
        image.rotate(angle, expand=True, fillcolor=255).save(path)
    [unit] = read_units(path)
    assert [block.text for block in unit.blocks] == [OCR_TEST_TEXT]


def test_the_environment_overrides_a_dotenv_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("KNOWRA_OCR_DPI=222\nKNOWRA_OCR_THREADS=3\nOTHER=1\n", encoding="utf-8")
    monkeypatch.setenv("KNOWRA_OCR_THREADS", "1")
    values = _ocr.environment(str(env_file))
    assert (values["KNOWRA_OCR_DPI"], values["KNOWRA_OCR_THREADS"]) == ("222", "1")
    assert "OTHER" not in values
    assert OcrConfig.from_env(values).dpi == 222


def test_a_blank_page_is_not_read_by_ocr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Page 17 of redp5110_sampled.pdf draws nothing (no text, no image): it is an empty
    unit, and no OCR engine is loaded for it."""
    from knowra_worker.parsers import pdf

    def no_ocr(*args: object) -> None:
        raise AssertionError("a blank page was sent to OCR")

    monkeypatch.setattr(pdf, "ocr_page", no_ocr)
    units = read_units(DATA / "redp5110_sampled.pdf")
    assert units[16].blocks == [] and len(units) == 18
