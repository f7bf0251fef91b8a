"""Which parser opens which format: the parsers' own declarations, keyed by MIME type.

Every public module of this package that defines `FORMATS` (a tuple of `base.Format`) is a
parser module; the registry imports them all on first use and collects what they declare,
refusing two declarations that claim one MIME type, extension or short name. Type detection
reads the same declarations, so a new format is one new module (and its tests): nothing
else lists the formats.

Why import the parser modules rather than read their declarations some other way (a table
here, entry points in pyproject.toml): either would be a second place to edit for each
format, while a declaration next to the code it describes cannot drift from it. Importing is
cheap because a parser module imports its parsing library (pypdfium2, python-docx, lxml,
python-pptx, openpyxl, selectolax, markdown-it) only inside the functions that open or
parse a file. Listing the formats (the API's registration, the CLI) therefore loads none of
them; `tests/parsers/test_registry.py` checks that it stays so.

`register` adds a format at start-up (a plug-in); the pipeline only ever calls
`open_document`.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Iterable
from pathlib import Path

from knowra_worker.document import Document
from knowra_worker.errors import UnsupportedFormat
from knowra_worker.parsers import detect as _detect
from knowra_worker.parsers.base import Format, Parser

_PACKAGE = __name__.rpartition(".")[0]
_HINTS = {
    "image": "convert it to PNG, JPEG, TIFF or WebP, whose text is read by OCR",
    "legacy": "save it in the current Office format (.docx, .xlsx, .pptx) and submit it again",
}


class Registry:
    """Declared formats by MIME type; adding one that clashes with another raises ValueError."""

    def __init__(self, formats: Iterable[Format] = ()) -> None:
        self._by_mime: dict[str, Format] = {}
        for declared in formats:
            self.add(declared)

    @property
    def formats(self) -> tuple[Format, ...]:
        return tuple(self._by_mime.values())

    def get(self, mime_type: str) -> Format | None:
        return self._by_mime.get(mime_type)

    def add(self, declared: Format, *, replace: bool = False) -> None:
        """Add a format; with `replace`, it takes over its MIME type from an earlier one."""
        others: Iterable[Format] = self._by_mime.values()
        if replace:
            others = [f for f in others if f.mime_type != declared.mime_type]
        clash = clashes(declared, others)
        if clash:
            raise ValueError(f"format {declared.name!r} ({declared.mime_type}): {clash}")
        self._by_mime[declared.mime_type] = declared


def clashes(declared: Format, others: Iterable[Format]) -> str:
    """What `declared` claims that one of `others` claims already, or ''."""
    for other in others:
        if other.mime_type == declared.mime_type:
            return f"MIME type already declared by {other.name!r}"
        if other.name == declared.name:
            return f"short name already declared for {other.mime_type}"
        shared = set(other.extensions) & set(declared.extensions)
        if shared:
            return f"extension {min(shared)} already declared by {other.name!r}"
    return ""


def discover() -> Registry:
    """A registry of the formats declared by the parser modules of this package."""
    package = importlib.import_module(_PACKAGE)
    registry = Registry()
    for name in sorted(info.name for info in pkgutil.iter_modules(package.__path__)):
        if not name.startswith("_"):
            module = importlib.import_module(f"{_PACKAGE}.{name}")
            for declared in getattr(module, "FORMATS", ()):
                registry.add(declared)
    return registry


_registry: Registry | None = None
_lock = threading.Lock()


def _current() -> Registry:
    global _registry
    with _lock:
        if _registry is None:
            _registry = discover()
        return _registry


def register(declared: Format) -> None:
    """Add a format at start-up, or take over a MIME type a built-in parser reads."""
    registry = _current()
    with _lock:
        registry.add(declared, replace=True)


def formats() -> tuple[Format, ...]:
    """Every declared format."""
    return _current().formats


def preload() -> list[str]:
    """Import the parsing libraries every parser module names in its `PRELOAD` tuple, ahead
    of the first document: a worker process does it when it starts, so that its first task
    does not wait for them. Answers the libraries imported."""
    loaded = []
    modules = sorted({declared.parser.__module__ for declared in formats()})
    for module in modules:
        for library in getattr(importlib.import_module(module), "PRELOAD", ()):
            importlib.import_module(library)
            loaded.append(library)
    return loaded


def detect(path: Path) -> str:
    """The MIME type of the file's content (raises EmptyDocument, EncryptedFile, IO errors)."""
    return _detect.detect_type(path, formats())


def supported_mime_types() -> list[str]:
    return sorted(declared.mime_type for declared in formats())


def supported_formats() -> list[str]:
    """Short names of the supported formats, e.g. ["csv", "docx", "html", ...]."""
    return sorted(declared.name for declared in formats())


def parser_for(mime_type: str) -> Parser | None:
    """The parser declared for a MIME type, or None."""
    declared = _current().get(mime_type)
    return declared.parser if declared is not None else None


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
