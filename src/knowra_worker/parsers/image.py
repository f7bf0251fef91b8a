"""Images (PNG, JPEG, TIFF, BMP, WebP) read by OCR: one unit per image, or per page (frame)
of a multi-page TIFF or an animated WebP.

Size is checked before any pixel is decoded: Pillow's `Image.open` and `seek` read only the
header, whose dimensions are refused above `KNOWRA_MAX_IMAGE_PIXELS` (LIMIT_EXCEEDED);
Pillow's own decompression-bomb check stays on as a second line. A frame is decoded only
when its unit is read (a JPEG at a reduced scale straight away), and shrunk for OCR.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from knowra_worker.document import Unit
from knowra_worker.errors import CorruptFile, LimitExceeded, SourceIOError, UnsupportedFormat
from knowra_worker.parsers import _ocr
from knowra_worker.parsers._common import describe_exception, io_error, translate_errors
from knowra_worker.parsers.base import BaseDocument, Content, Format

if TYPE_CHECKING:  # Pillow is imported where a file is opened, not with this module
    from PIL import Image


class ImageDocument(BaseDocument):
    unit_name = "page"
    units_total_exact = True

    def __init__(self, path: Path, mime_type: str) -> None:
        if not _ocr.enabled():
            raise UnsupportedFormat(
                "images are read by text recognition, which is turned off (KNOWRA_OCR_ENGINE=none)"
            )
        self.mime_type = mime_type
        self._limit = _ocr.config().max_image_pixels
        self._image: Image.Image | None = _open(path, self._limit)
        self.units_total = _frame_count(self._image)

    def units(self, start: int = 0) -> Iterator[Unit]:
        for index in range(max(0, start), self.units_total):
            try:
                image = self._frame(index)
            except CorruptFile as exc:
                if self.units_total == 1:
                    raise
                # one broken page of a multi-page image: skipped, not the whole document
                yield Unit(index, [], [f"page {index + 1} was skipped: {exc.message}"])
                continue
            yield _ocr.ocr_unit(index, image, index + 1, "")

    def close(self) -> None:
        image, self._image = self._image, None
        if image is not None:
            image.close()

    def _frame(self, index: int) -> Image.Image:
        """Frame `index`, its size checked, then decoded (greyscale) and shrunk for OCR."""
        if self._image is None:
            raise RuntimeError("the document is closed")
        with _decoding_errors(), translate_errors(f"image (page {index + 1})"):
            self._image.seek(index)
            check_size(self._image.size, self._limit)
            return _decode(self._image)


@contextmanager
def _decoding_errors() -> Iterator[None]:
    """Pillow reports broken pixel data ("image file is truncated") as an OSError without
    an errno: that is the file's fault (CORRUPT_FILE), not the storage's (retried)."""
    try:
        yield
    except SourceIOError as exc:
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.errno is None:
            raise CorruptFile(f"not a valid image: {describe_exception(cause)}") from cause
        raise


def _open(path: Path, limit: int) -> Image.Image:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below
            image = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise LimitExceeded(f"the image is too large: {describe_exception(exc)}") from exc
    except UnidentifiedImageError as exc:
        raise CorruptFile(f"not a valid image: {describe_exception(exc)}") from exc
    except OSError as exc:
        if exc.errno is None:  # Pillow's word for a broken header, not a storage error
            raise CorruptFile(f"not a valid image: {describe_exception(exc)}") from exc
        raise io_error(exc) from exc
    except Exception as exc:  # noqa: BLE001 - decoders raise varied errors on bad headers
        raise CorruptFile(f"not a valid image: {describe_exception(exc)}") from exc
    try:
        check_size(image.size, limit)
    except LimitExceeded:
        image.close()
        raise
    return image


def check_size(size: tuple[int, int], limit: int) -> None:
    """Refuse an image of more than `limit` pixels (read from its header: nothing decoded)."""
    width, height = size
    if width * height > limit:
        raise LimitExceeded(
            f"the image is {width} x {height} pixels ({width * height / 1e6:.1f} megapixels), "
            f"more than the {limit / 1e6:.1f} megapixels this service accepts "
            "(KNOWRA_MAX_IMAGE_PIXELS)"
        )
    if width < 1 or height < 1:
        raise CorruptFile("not a valid image: it has no pixels")


def _frame_count(image: Image.Image) -> int:
    with translate_errors("image"):
        return max(1, int(getattr(image, "n_frames", 1)))


def _decode(image: Image.Image) -> Image.Image:
    """The current frame as a greyscale image of at most MAX_OCR_PIXELS."""
    width, height = image.size
    if image.format == "JPEG" and width * height > _ocr.MAX_OCR_PIXELS:
        scale = (_ocr.MAX_OCR_PIXELS / (width * height)) ** 0.5
        image.draft("L", (int(width * scale), int(height * scale)))
    frame = image.convert("RGBA") if _has_alpha(image) else image
    if frame.mode == "RGBA":  # transparent text on nothing: put it on white
        from PIL import Image

        background = Image.new("RGBA", frame.size, "white")
        frame = Image.alpha_composite(background, frame)
    return _ocr.downscaled(frame.convert("L"))


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in {"RGBA", "LA", "PA"} or "transparency" in image.info


_IMAGES = (
    ("png", "image/png", (".png",)),
    ("jpeg", "image/jpeg", (".jpg", ".jpeg", ".jpe")),
    ("tiff", "image/tiff", (".tif", ".tiff")),
    ("bmp", "image/bmp", (".bmp", ".dib")),
    ("webp", "image/webp", (".webp",)),
)

FORMATS = tuple(
    Format(name, mime_type, extensions, Content.BINARY, ImageDocument)
    for name, mime_type, extensions in _IMAGES
)
