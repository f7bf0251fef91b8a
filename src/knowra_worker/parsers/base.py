"""What a parser module declares, and the plumbing its documents share.

A parser module reads one family of formats. It says which in a module-level `FORMATS`
tuple of `Format` declarations (short name, MIME type, extensions, how detection finds the
file, and the parser that opens it); the registry collects them and type detection reads
them, so a new format is one new module. The parser is usually the module's Document class,
which also carries the format's `unit_name` ("page", "slide", "sheet", "section").

What parsers produce (units of blocks, the Document protocol) lives in
`knowra_worker.document`, shared with the chunker.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from knowra_worker.document import Document, Unit


class Parser(Protocol):
    """Opens one format: called with the path and the detected MIME type, it answers the
    Document (a Document class is a Parser). Raises errors.CorruptFile, EncryptedFile,
    EmptyDocument as fits."""

    def __call__(self, path: Path, mime_type: str) -> Document: ...


class Content(StrEnum):
    """What a format's files are on disk, which decides how detection recognises them."""

    TEXT = "text"  # decodes as text; unless the content is markup, the extension decides
    PACKAGE = "package"  # a ZIP package told apart by its entries; a damaged one by extension
    BINARY = "binary"  # recognised by its magic bytes only, never by its extension


@dataclass(frozen=True, slots=True)
class Format:
    """One format a parser reads, as listings, detection and the registry know it.

    `extensions` are lower-case with their dot. `magic` lists leading bytes that identify a
    BINARY format detection does not already know (PDF, ZIP packages and well-known binary
    formats are sniffed by `detect.py` itself).
    """

    name: str  # short name in listings: "pdf", "md", "tsv"
    mime_type: str  # what detection answers for a file of this format
    extensions: tuple[str, ...]
    content: Content
    parser: Parser
    magic: tuple[bytes, ...] = ()


class BaseDocument:
    """Context-manager plumbing shared by the concrete documents (a helper, not a contract).

    Subclasses set the `Document` attributes and implement `units`; they override `close`
    when they hold resources.
    """

    mime_type: str
    unit_name: str
    units_total: int
    units_total_exact: bool

    def units(self, start: int = 0) -> Iterator[Unit]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the document holds; safe to call more than once."""

    def __enter__(self) -> BaseDocument:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
