"""Data files: JSON and XML, read for retrieval, in bounded memory.

JSON becomes CODE blocks of the document pretty-printed (two-space indent, keys in their
order, non-ASCII kept), cut between lines into blocks of at most 200 lines. Why the JSON
itself rather than its values as prose: a value means little without its key ("42" vs
`"max_retries": 42`), and one key per line keeps each chunk readable and searchable. A
file above MAX_JSON_BYTES (or that is not valid JSON) is not loaded whole: its lines are
taken as they are, which keeps memory bounded.

XML becomes its text content, with every element boundary made whitespace. Why not the XML
as a code block: XML documents (articles, patents, books, feeds) carry their words in the
text, and tags and attributes would fill chunks with markup that retrieval does not need.
An element with its own text beside its children (mixed content: `<p>a <b>b</b> c</p>`)
stays one line; the text lines of one parent element (a record's fields) make one
PARAGRAPH. The file is read as a stream (lxml's iterparse) and every element is dropped
once read; DTDs, external entities and the network are never loaded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from knowra_worker.document import Block, BlockKind
from knowra_worker.parsers._common import (
    FlowDocument,
    UnitLimits,
    estimate_units,
    file_size,
    io_error,
)
from knowra_worker.parsers._encoding import file_encoding, open_text
from knowra_worker.parsers.base import Content, Format
from knowra_worker.parsers.detect import JSON, XML

MAX_JSON_BYTES = 16 * 2**20
_LINES_PER_BLOCK = 200
_MAX_PARAGRAPH_CHARS = 4_000
_LIMITS = UnitLimits(max_chars=32_000, max_blocks=100, section_chars=8_000)


class JsonDocument(FlowDocument):
    format_label = "JSON file"
    limits = _LIMITS

    def __init__(self, path: Path, mime_type: str) -> None:
        self.path = path
        self.size = file_size(path)
        super().__init__(mime_type, estimate_units(self.size, 0.7 * _LIMITS.max_chars))

    def iter_blocks(self) -> Iterator[Block]:
        yield from _code_blocks(self._lines())

    def _lines(self) -> Iterator[str]:
        encoding = file_encoding(self.path)
        try:
            with open_text(self.path, encoding) as stream:
                value = _load(stream.read()) if self.size <= MAX_JSON_BYTES else None
                if value is None:
                    stream.seek(0)
                    yield from (line.rstrip("\r\n") for line in stream)
                    return
        except OSError as exc:
            raise io_error(exc) from exc
        yield from _pretty_lines(value)


def _load(text: str) -> Any | None:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _pretty_lines(value: Any) -> Iterator[str]:
    """The pretty-printed JSON line by line, from the encoder's stream of pieces."""
    encoder = json.JSONEncoder(indent=2, ensure_ascii=False)
    line = ""
    for piece in encoder.iterencode(value):
        parts = piece.split("\n")
        for part in parts[:-1]:
            yield line + part
            line = ""
        line += parts[-1]
    if line:
        yield line


def _code_blocks(lines: Iterator[str]) -> Iterator[Block]:
    batch: list[str] = []
    size = 0
    for line in lines:
        if batch and (len(batch) >= _LINES_PER_BLOCK or size + len(line) > _LIMITS.max_chars):
            yield from _code_block(batch)
            batch, size = [], 0
        batch.append(line)
        size += len(line) + 1
    yield from _code_block(batch)


def _code_block(lines: list[str]) -> Iterator[Block]:
    text = "\n".join(lines).strip("\n")
    if text.strip():
        yield Block(BlockKind.CODE, text)


# --- XML -------------------------------------------------------------------------------


class XmlDocument(FlowDocument):
    format_label = "XML file"
    limits = _LIMITS

    def __init__(self, path: Path, mime_type: str) -> None:
        self.path = path
        super().__init__(mime_type, estimate_units(file_size(path), 2 * _LIMITS.max_chars))

    def iter_blocks(self) -> Iterator[Block]:
        from lxml import etree

        collector = _TextCollector()
        events = etree.iterparse(
            str(self.path),
            events=("end",),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=True,
            remove_comments=True,
            remove_pis=True,
        )
        for _, element in events:
            yield from collector.end(element)
        yield from collector.flush()


class _TextCollector:
    """Lines of text from elements as they end; the lines of one parent make a paragraph."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.parent: Any = None
        self.size = 0

    def end(self, element: Any) -> Iterator[Block]:
        parent = element.getparent()
        if parent is not None and (parent.text or "").strip():
            return  # inside mixed content: read with its parent
        text = " ".join(" ".join(_texts(element)).split())
        if parent is not self.parent or self.size > _MAX_PARAGRAPH_CHARS:
            yield from self.flush()
            self.parent = parent
        if text:
            self.lines.append(text)
            self.size += len(text)
        element.clear(keep_tail=True)
        _drop_read_siblings(element)

    def flush(self) -> Iterator[Block]:
        if self.lines:
            yield Block(BlockKind.PARAGRAPH, "\n".join(self.lines))
        self.lines, self.size = [], 0


def _texts(element: Any) -> Iterator[str]:
    """The text of an element and its descendants, without unresolved entity references."""
    from lxml import etree

    return element.itertext(etree.Element)  # type: ignore[no-any-return]


def _drop_read_siblings(element: Any) -> None:
    """Remove earlier siblings already read (cleared, with no tail text) to free memory."""
    parent = element.getparent()
    while parent is not None:
        previous = element.getprevious()
        if previous is None or len(previous) or previous.text or (previous.tail or "").strip():
            return
        parent.remove(previous)


# imported when a worker process starts (registry.preload), not on import
PRELOAD = ("lxml.etree",)
FORMATS = (
    Format("json", JSON, (".json",), Content.TEXT, JsonDocument),
    Format("xml", XML, (".xml",), Content.TEXT, XmlDocument),
)
