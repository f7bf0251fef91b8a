"""Which parser opens which format: a registry keyed by MIME type, parsers imported lazily.

A new format plugs in with one module defining a `Parser` (usually its Document class, built
from the path and the MIME type) and one entry in `_PARSERS` (or a call to `register` at
start-up); the pipeline only ever calls `open_document`.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from pathlib import Path

from knowra_worker.errors import UnsupportedFormat
from knowra_worker.parsers import detect as _detect
from knowra_worker.parsers.base import Document, Parser


@dataclass(frozen=True, slots=True)
class _Entry:
    target: str  # "module:Parser", the module relative to this package when it starts with "."
    short_name: str  # the format's name in listings, e.g. "pdf"


_PARSERS: dict[str, _Entry] = {
    _detect.PDF: _Entry(".pdf:PdfDocument", "pdf"),
    _detect.DOCX: _Entry(".docx:DocxDocument", "docx"),
    _detect.PPTX: _Entry(".pptx:PptxDocument", "pptx"),
    _detect.XLSX: _Entry(".xlsx:XlsxDocument", "xlsx"),
    _detect.HTML: _Entry(".html:HtmlDocument", "html"),
    _detect.MARKDOWN: _Entry(".markdown:MarkdownDocument", "md"),
    _detect.PLAIN: _Entry(".text:TextDocument", "txt"),
    _detect.CSV: _Entry(".csv:CsvDocument", "csv"),
    _detect.TSV: _Entry(".csv:CsvDocument", "tsv"),
}
_loaded: dict[str, Parser] = {}
_lock = threading.Lock()

_HINTS = {
    "image": "images are not supported (text recognition is not available)",
    "legacy": "save it in the current Office format (.docx, .xlsx, .pptx) and submit it again",
}


def register(mime_type: str, target: str, short_name: str) -> None:
    """Add or replace the parser for a MIME type; `target` is "package.module:Parser"."""
    with _lock:
        _PARSERS[mime_type] = _Entry(target, short_name)
        _loaded.pop(mime_type, None)


def detect(path: Path) -> str:
    """The MIME type of the file's content (raises EmptyDocument, EncryptedFile, IO errors)."""
    return _detect.detect_type(path)


def supported_mime_types() -> list[str]:
    return sorted(_PARSERS)


def supported_formats() -> list[str]:
    """Short names of the supported formats, e.g. ["csv", "docx", "html", ...]."""
    return sorted({entry.short_name for entry in _PARSERS.values()})


def parser_for(mime_type: str) -> Parser | None:
    """The parser registered for a MIME type (imported on first use), or None."""
    with _lock:
        entry = _PARSERS.get(mime_type)
        if entry is None:
            return None
        parser = _loaded.get(mime_type)
        if parser is None:
            parser = _load(entry.target)
            _loaded[mime_type] = parser
        return parser


def open_document(path: Path) -> Document:
    """Detect the file's type and open it with the matching parser.

    Raises UnsupportedFormat (naming the detected type) when no parser handles it, and the
    parser's own KnowraError subclasses (CorruptFile, EncryptedFile, ...) for bad files.
    """
    path = Path(path)
    mime_type = detect(path)
    parser = parser_for(mime_type)
    if parser is None:
        raise UnsupportedFormat(unsupported_message(mime_type, path))
    return parser(path, mime_type)


def unsupported_message(mime_type: str, path: Path) -> str:
    name = _detect.type_name(mime_type)
    message = f"unsupported format: the file is {_article(name)} {name} ({mime_type})"
    message += _detect.mismatch_note(mime_type, path)
    hint = _hint(mime_type, name)
    if hint:
        message += f"; {hint}"
    return message + f". Supported formats: {', '.join(supported_formats())}"


def _hint(mime_type: str, name: str) -> str:
    if mime_type.startswith("image/"):
        return _HINTS["image"]
    if name.startswith("legacy ") or "macro-enabled" in name:
        return _HINTS["legacy"]
    return ""


def _article(name: str) -> str:
    word = name.split(" ", 1)[0]
    if word.isupper() and len(word) > 1:  # an acronym: "an XML", "an SVG", "a PDF"
        return "an" if word[0] in "AEFHILMNORSX" else "a"
    return "an" if word[:1].lower() in "aeiou" else "a"


def _load(target: str) -> Parser:
    module_name, _, name = target.partition(":")
    module = importlib.import_module(module_name, package=__package__)
    parser: Parser = getattr(module, name)
    return parser
