"""Text recognition (OCR) for scanned PDF pages and images.

One engine serves the process: RapidOCR (PP-OCRv6 models run by onnxruntime, shipped inside
the `rapidocr` wheel, so nothing is downloaded) by default, Tesseract through pytesseract
where its binary is installed, or none. The engine is built on first use and kept for the
process's life, because loading the models takes seconds; it is rebuilt in a process forked
after it was built (a Celery prefork pool process never uses its parent's onnxruntime
session). Measured on the corpus, the bundled PP-OCRv6 models keep the spaces between Latin
words (word recall 0.96, no glued pairs on a rendered paper page) where the PP-OCRv4 models
of `rapidocr_onnxruntime` 1.x reach 0.90 and glue words ("quantitativeresults").

Configuration is read once per process, on first use, from the environment and a `.env`
file as `settings.Settings` reads them (`KNOWRA_OCR_ENGINE`, `KNOWRA_OCR_DPI`,
`KNOWRA_OCR_THREADS`, `KNOWRA_OCR_LANGUAGES`, `KNOWRA_MAX_IMAGE_PIXELS`; Settings validates
them at the service's start), not through Settings: `knowra-worker parse` never builds one,
and parsers do not import it. `configure()` replaces them (tests, embedding applications).

Recognised lines are put in reading order by a recursive XY cut (bands split by wide
horizontal gaps, columns by wide vertical channels), then joined into paragraphs by line
gaps, as the PDF text layer is.
"""

from __future__ import annotations

import os
import re
import statistics
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from billiard.exceptions import SoftTimeLimitExceeded

from knowra_worker.document import Block, BlockKind, Unit
from knowra_worker.errors import KnowraError, UnsupportedFormat
from knowra_worker.parsers._common import describe_exception, size_level, translate_errors

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

ENGINES = ("rapidocr", "tesseract", "none")

# A page is rendered (or an image downscaled) to at most this many pixels before OCR: an A4
# page at about 250 DPI. RapidOCR itself works on at most 2000 pixels a side.
MAX_OCR_PIXELS = 8_000_000

_PARAGRAPH_GAP = 0.7  # of a line's height
_SIZE_CHANGE = 1.3  # ratio of line heights that starts a new paragraph
_HEADING_RATIO = 1.3  # of the body text's line height
_HEADING_MAX_CHARS = 150
_HEADING_MAX_LINES = 2
_MIN_BODY_LINES = 4
_TESSERACT_SIDE = 2400  # pixels on an image's longest side: A4 at about 200 DPI
_TESSERACT_MAX_SCALE = 4.0
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class OcrConfig:
    """How text is recognised; the defaults are those of `settings.Settings`."""

    engine: str = "rapidocr"  # one of ENGINES
    dpi: int = 150  # PDF pages are rendered at this resolution
    threads: int = 0  # onnxruntime threads per process; 0: the runtime's choice
    languages: str = "eng"  # Tesseract's language codes, joined with '+'
    max_image_pixels: int = 80_000_000  # images above are refused before decoding

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> OcrConfig:
        """The configuration the KNOWRA_ variables give (invalid values raise ValueError)."""
        default = cls()
        config = cls(
            engine=environ.get("KNOWRA_OCR_ENGINE", default.engine).strip().lower(),
            dpi=int(environ.get("KNOWRA_OCR_DPI", default.dpi)),
            threads=int(environ.get("KNOWRA_OCR_THREADS", default.threads)),
            languages=environ.get("KNOWRA_OCR_LANGUAGES", default.languages).strip(),
            max_image_pixels=int(environ.get("KNOWRA_MAX_IMAGE_PIXELS", default.max_image_pixels)),
        )
        config.validate()
        return config

    def validate(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"KNOWRA_OCR_ENGINE must be one of {', '.join(ENGINES)}")
        if not 36 <= self.dpi <= 600 or self.threads < 0 or self.max_image_pixels < 1:
            raise ValueError(
                "KNOWRA_OCR_DPI must be 36..600, KNOWRA_OCR_THREADS >= 0 and "
                "KNOWRA_MAX_IMAGE_PIXELS >= 1"
            )


@dataclass(frozen=True, slots=True)
class OcrLine:
    """One recognised line of text and its box in image pixels (top-left origin)."""

    text: str
    left: float
    top: float
    right: float
    bottom: float

    @property
    def height(self) -> float:
        return max(self.bottom - self.top, 1.0)


# --- configuration and the engine, once per process -------------------------------------

_lock = threading.Lock()
_config: OcrConfig | None = None
_engines: dict[tuple[int, str, int, str], Any] = {}


def configure(config: OcrConfig | None = None, **changes: Any) -> OcrConfig:
    """Replace this process's configuration (None: read the environment again)."""
    global _config
    config = config or OcrConfig.from_env(environment())
    config = replace(config, **changes) if changes else config
    config.validate()
    with _lock:
        _config = config
    return config


def config() -> OcrConfig:
    """This process's configuration, read from the environment on first use."""
    global _config
    with _lock:
        if _config is None:
            _config = OcrConfig.from_env(environment())
        return _config


def environment(env_file: str = ".env") -> dict[str, str]:
    """The KNOWRA_ variables as `settings.Settings` sees them: the process's environment over
    those of a `.env` file in the working directory."""
    from dotenv import dotenv_values

    values = {
        key: value
        for key, value in dotenv_values(env_file).items()
        if value is not None and key.startswith("KNOWRA_")
    }
    values.update((k, v) for k, v in os.environ.items() if k.startswith("KNOWRA_"))
    return values


def enabled() -> bool:
    return config().engine != "none"


def _engine(current: OcrConfig) -> Any:
    """The process's engine for `current`; built once per process id."""
    key = (os.getpid(), current.engine, current.threads, current.languages)
    with _lock:
        if key not in _engines:
            _engines.clear()  # another configuration, or a fork's inherited copy
            _engines[key] = _build_engine(current)
        return _engines[key]


def _build_engine(current: OcrConfig) -> Any:
    if current.engine == "tesseract":
        return _tesseract_module()
    from rapidocr import RapidOCR

    params: dict[str, Any] = {"Global.log_level": "error"}  # not one line per blank page
    if current.threads:
        params["EngineConfig.onnxruntime.intra_op_num_threads"] = current.threads
    return RapidOCR(params=params)


def _tesseract_module() -> Any:
    import shutil

    if shutil.which("tesseract") is None:
        raise UnsupportedFormat(
            "text recognition is configured to use Tesseract (KNOWRA_OCR_ENGINE=tesseract) "
            "but the tesseract program is not installed"
        )
    try:
        import pytesseract
    except ImportError as exc:
        raise UnsupportedFormat(
            "KNOWRA_OCR_ENGINE=tesseract needs the pytesseract package: "
            "pip install 'knowra-worker[tesseract]'"
        ) from exc
    return pytesseract


def tesseract_available() -> bool:
    """Whether the Tesseract engine can run here (its binary and pytesseract)."""
    try:
        _tesseract_module()
    except UnsupportedFormat:
        return False
    return True


# --- recognition -------------------------------------------------------------------------


def recognise(image: Image.Image | np.ndarray) -> list[OcrLine]:
    """The lines of text in an image (PIL image or H x W [x 3] uint8 array), unordered."""
    current = config()
    if current.engine == "none":
        raise UnsupportedFormat("text recognition is turned off (KNOWRA_OCR_ENGINE=none)")
    pixels = _rgb_array(image)
    engine = _engine(current)
    if current.engine == "tesseract":
        return _tesseract_lines(engine, pixels, current.languages)
    return _rapidocr_upright(engine, pixels)


# --- pages scanned sideways or upside down (RapidOCR) ---------------------------------------

_SIDEWAYS = 1.5  # a box this many times taller than wide holds a line turned by 90 degrees
_SAMPLE_LINES = 6  # lines whose orientation is asked to decide a page's


def _rapidocr_upright(engine: Any, pixels: np.ndarray) -> list[OcrLine]:
    """The lines of a page in its upright frame, whichever way up it was scanned.

    A page turned by 90 degrees (most of its text in tall boxes) is turned and read again.
    RapidOCR's classifier turns a line it finds upside down before reading it, but only when
    sure (and a page's lines then run bottom to top): when most of the longest lines are
    upside down by its vote, sure or not, the page is turned and read again instead.
    """
    import numpy as np

    lines = _rapidocr_lines(_rapidocr(engine, pixels))
    if _sideways(lines):
        pixels = np.ascontiguousarray(np.rot90(pixels))
        lines = _rapidocr_lines(_rapidocr(engine, pixels))
    if _upside_down(engine, pixels, lines):
        pixels = np.ascontiguousarray(np.rot90(pixels, 2))
        lines = _rapidocr_lines(_rapidocr(engine, pixels))
    return lines


def _rapidocr(engine: Any, pixels: np.ndarray, *, read: bool = True) -> Any:
    """One RapidOCR call. Every step is named each time: RapidOCR keeps the flags of the
    previous call."""
    return engine(pixels, use_det=read, use_cls=True, use_rec=read)


def _sideways(lines: list[OcrLine]) -> bool:
    tall = sum(len(line.text) for line in lines if _tall(line))
    return tall > sum(len(line.text) for line in lines) / 2


def _tall(line: OcrLine) -> bool:
    return line.bottom - line.top > _SIDEWAYS * (line.right - line.left)


def _upside_down(engine: Any, pixels: np.ndarray, lines: list[OcrLine]) -> bool:
    longest = sorted(lines, key=lambda line: len(line.text), reverse=True)[:_SAMPLE_LINES]
    votes = [_line_turned(engine, pixels, line) for line in longest if not _tall(line)]
    return sum(votes) > len(votes) / 2


def _line_turned(engine: Any, pixels: np.ndarray, line: OcrLine) -> bool:
    crop = pixels[int(line.top) : int(line.bottom) + 1, int(line.left) : int(line.right) + 1]
    result = _rapidocr(engine, crop, read=False)
    labels = getattr(result, "cls_res", None) or [("0", 0.0)]
    return str(labels[0][0]) == "180"


def _rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    import numpy as np
    from PIL import Image

    if isinstance(image, Image.Image):
        image = image.convert("RGB")
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    return pixels


def _rapidocr_lines(result: Any) -> list[OcrLine]:
    if result.boxes is None or result.txts is None:
        return []
    lines = []
    for box, text in zip(result.boxes, result.txts, strict=False):
        xs, ys = [float(p[0]) for p in box], [float(p[1]) for p in box]
        line = OcrLine(_SPACES.sub(" ", text).strip(), min(xs), min(ys), max(xs), max(ys))
        if line.text:
            lines.append(line)
    return lines


def _tesseract_lines(pytesseract: Any, pixels: np.ndarray, languages: str) -> list[OcrLine]:
    """Tesseract's words grouped into its lines. A small image is enlarged first: Tesseract
    wants text about 30 pixels high (a page at 300 DPI), and a page photographed at screen
    resolution loses half its words without it (word recall 0.44 against 0.94)."""
    from PIL import Image

    image = Image.fromarray(pixels)
    scale = min(_TESSERACT_MAX_SCALE, max(1.0, _TESSERACT_SIDE / max(image.size)))
    if scale > 1:
        size = (round(image.width * scale), round(image.height * scale))
        image = image.resize(size, Image.Resampling.LANCZOS)
    data = pytesseract.image_to_data(image, lang=languages, output_type=pytesseract.Output.DICT)
    words: dict[tuple[int, int, int], list[int]] = {}
    for i, text in enumerate(data["text"]):
        if str(text).strip():
            key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
            words.setdefault(key, []).append(i)
    return [_tesseract_line(data, indexes, scale) for indexes in words.values()]


def _tesseract_line(data: dict[str, list[Any]], indexes: list[int], scale: float) -> OcrLine:
    left = min(data["left"][i] for i in indexes)
    top = min(data["top"][i] for i in indexes)
    right = max(data["left"][i] + data["width"][i] for i in indexes)
    bottom = max(data["top"][i] + data["height"][i] for i in indexes)
    text = " ".join(str(data["text"][i]).strip() for i in indexes)
    return OcrLine(text, left / scale, top / scale, right / scale, bottom / scale)


def downscaled(image: Image.Image, max_pixels: int = MAX_OCR_PIXELS) -> Image.Image:
    """The image, shrunk to at most `max_pixels` (aspect kept): more is slower, not better."""
    from PIL import Image

    width, height = image.size
    if width * height <= max_pixels:
        return image
    scale = (max_pixels / (width * height)) ** 0.5
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


# --- lines to blocks ---------------------------------------------------------------------


def text_blocks(lines: Sequence[OcrLine], page: int | None) -> list[Block]:
    """Paragraphs (and large-type headings) of recognised lines, in reading order."""
    paragraphs = _paragraphs(reading_order(lines))
    body = _body_height(paragraphs)
    blocks = []
    for paragraph in paragraphs:
        text = _join(paragraph)
        level = _heading_level(paragraph, text, body)
        kind = BlockKind.HEADING if level else BlockKind.PARAGRAPH
        blocks.append(Block(kind, text, page=page, level=level))
    return blocks


def reading_order(lines: Sequence[OcrLine]) -> list[OcrLine]:
    """Lines by a recursive XY cut: bands top to bottom, columns left to right within."""
    if not lines:
        return []
    gap = statistics.median(line.height for line in lines)
    return list(_xy_cut(list(lines), gap))


def _xy_cut(lines: list[OcrLine], gap: float) -> Iterator[OcrLine]:
    for split in (_split_rows, _split_columns):
        groups = split(lines, gap)
        if len(groups) > 1:
            for group in groups:
                yield from _xy_cut(group, gap)
            return
    for row in _rows(lines):
        yield from sorted(row, key=lambda line: line.left)


def _rows(lines: list[OcrLine]) -> list[list[OcrLine]]:
    """Lines top to bottom, those whose middles lie within half a line of a row's first
    line's middle together in one row."""
    rows: list[list[OcrLine]] = []
    for line in sorted(lines, key=lambda line: line.top):
        middle = (line.top + line.bottom) / 2
        if rows:
            first = rows[-1][0]
            if abs(middle - (first.top + first.bottom) / 2) <= 0.5 * first.height:
                rows[-1].append(line)
                continue
        rows.append([line])
    return rows


def _split_rows(lines: list[OcrLine], gap: float) -> list[list[OcrLine]]:
    """Groups separated by a horizontal band of white at least `gap` high."""
    return _split(lines, gap, lambda line: (line.top, line.bottom))


def _split_columns(lines: list[OcrLine], gap: float) -> list[list[OcrLine]]:
    """Groups separated by a vertical channel of white at least `gap` wide."""
    return _split(lines, gap, lambda line: (line.left, line.right))


def _split(lines: list[OcrLine], gap: float, span: Any) -> list[list[OcrLine]]:
    groups: list[list[OcrLine]] = []
    end = float("-inf")
    for line in sorted(lines, key=lambda line: span(line)[0]):
        start, stop = span(line)
        if not groups or start - end >= gap:
            groups.append([])
        groups[-1].append(line)
        end = max(end, stop)
    return groups


def _paragraphs(lines: Iterable[OcrLine]) -> list[list[OcrLine]]:
    paragraphs: list[list[OcrLine]] = []
    for line in lines:
        if paragraphs and _continues(paragraphs[-1][-1], line):
            paragraphs[-1].append(line)
        else:
            paragraphs.append([line])
    return paragraphs


def _continues(previous: OcrLine, line: OcrLine) -> bool:
    """Whether `line` goes on the paragraph `previous` ends: just below it, overlapping it
    horizontally, in type of about the same size."""
    height = min(previous.height, line.height)
    below = -0.5 * height <= line.top - previous.bottom <= _PARAGRAPH_GAP * height
    overlaps = line.left < previous.right and line.right > previous.left
    similar = max(previous.height, line.height) <= _SIZE_CHANGE * height
    return below and overlaps and similar


def _join(paragraph: list[OcrLine]) -> str:
    text = ""
    for line in paragraph:
        if not text:
            text = line.text
        elif text.endswith("-"):
            text += line.text
        else:
            text += " " + line.text
    return text


def _body_height(paragraphs: list[list[OcrLine]]) -> float | None:
    heights = [line.height for paragraph in paragraphs for line in paragraph]
    return statistics.median(heights) if len(heights) >= _MIN_BODY_LINES else None


def _heading_level(paragraph: list[OcrLine], text: str, body: float | None) -> int:
    if body is None or len(paragraph) > _HEADING_MAX_LINES or len(text) > _HEADING_MAX_CHARS:
        return 0
    visible = [c for c in text if not c.isspace()]
    if sum(c.isalpha() for c in visible) < 0.6 * len(visible):
        return 0
    return size_level(statistics.fmean(line.height for line in paragraph) / body, _HEADING_RATIO)


# --- units ---------------------------------------------------------------------------------


def ocr_unit(index: int, image: Image.Image, page: int | None, note: str) -> Unit:
    """A unit of the image's recognised text. `note` is the warning the unit carries when
    text was found; a failure of the engine on this one image becomes a warning too."""
    label = f"page {index + 1}"
    try:
        blocks = text_blocks(recognise(downscaled(image)), page)
    except (KnowraError, SoftTimeLimitExceeded, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - one unreadable page must not fail the document
        return Unit(index, [], [f"{label}: text recognition failed ({describe_exception(exc)})"])
    return Unit(index, blocks, [note] if blocks and note else [])


# --- PDF pages without a usable text layer ------------------------------------------------

_MIN_GOOD_SHARE = 0.5  # of a text layer's visible characters
_ALNUM = re.compile(r"[^\W_]")  # a letter or digit (str.isalnum)


class _TextLine(Protocol):
    @property
    def text(self) -> str: ...


class _TextLayer(Protocol):
    """What `needs_ocr` reads of a PDF page as the PDF parser extracted it."""

    @property
    def lines(self) -> Sequence[_TextLine]: ...

    @property
    def tables(self) -> Sequence[Sequence[Sequence[str]]] | None: ...


def needs_ocr(page: _TextLayer) -> str:
    """Why a PDF page's text layer (its lines and table cells) should be replaced by OCR,
    or '' if not.

    A page is recognised when OCR is on and its text layer has no letter or digit at all
    (a scan), or when fewer than half of its visible characters are readable, the rest being
    U+FFFD, private-use, unassigned or control code points, as fonts without a Unicode map
    give.
    """
    if not enabled():
        return ""
    text = "".join(_texts(page))
    if _ALNUM.search(text) is None:
        return "has no text layer"
    if text.isprintable() and "\ufffd" not in text:
        return ""  # no control, private-use, unassigned or surrogate code point: most pages
    # by distinct character: a page has thousands of characters but few distinct ones
    distinct = set(text)
    unreadable = [c for c in distinct if not c.isspace() and not _readable(c)]
    if not unreadable:
        return ""
    visible = len(text) - sum(text.count(c) for c in distinct if c.isspace())
    if visible - sum(text.count(c) for c in unreadable) < _MIN_GOOD_SHARE * visible:
        return "has an unreadable text layer"
    return ""


def _texts(page: _TextLayer) -> list[str]:
    texts = [line.text for line in page.lines]
    for table in page.tables or ():
        for row in table:
            texts.extend(row)
    return texts


def _readable(char: str) -> bool:
    return char != "\ufffd" and unicodedata.category(char) not in {"Co", "Cn", "Cs", "Cc"}


def ocr_page(pdf: Any, index: int, reason: str, lock: threading.RLock) -> Unit:
    """The unit of PDF page `index` read by OCR: rendered at the configured DPI (under
    pdfium's lock), recognised outside it. `reason` comes from `needs_ocr`."""
    if pdf is None:
        raise RuntimeError("the document is closed")
    with lock, translate_errors(f"PDF (page {index + 1})"):
        image = _render(pdf, index, config().dpi)
    note = f"page {index + 1} {reason}; its text was recognised by OCR"
    return ocr_unit(index, image, index + 1, note)


def _render(pdf: Any, index: int, dpi: int) -> Image.Image:
    page = pdf[index]
    try:
        width, height = page.get_size()
        scale = dpi / 72
        pixels = width * height * scale * scale
        if pixels > MAX_OCR_PIXELS:
            scale *= (MAX_OCR_PIXELS / pixels) ** 0.5
        bitmap = page.render(scale=scale, grayscale=True)
        try:
            return bitmap.to_pil().convert("L")
        finally:
            bitmap.close()
    finally:
        page.close()
