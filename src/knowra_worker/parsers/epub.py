"""EPUB e-books: the XHTML documents of the ZIP package, in reading (spine) order, each read
by the HTML parser's block walker.

META-INF/container.xml names the package document (OPF); its manifest maps ids to files and
its spine gives the reading order. The book's title (with its authors) comes first as a
HEADING (level 1). Each spine document then gives its headings, paragraphs, lists, tables
and code as an HTML page does; its units are bounded runs of its blocks, and no unit spans
two spine documents, so a chapter starts a unit. Spine items that are not XHTML (images,
SVG pages) are skipped with a warning; a book whose content documents are encrypted (DRM)
is refused with ENCRYPTED_FILE (obfuscated fonts alone are fine).
"""

from __future__ import annotations

import posixpath
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from knowra_worker.document import Block, BlockKind, Unit
from knowra_worker.errors import CorruptFile, EncryptedFile
from knowra_worker.parsers._common import UnitLimits, group_units, translate_errors
from knowra_worker.parsers.base import BaseDocument, Content, Format

EPUB = "application/epub+zip"
_LIMITS = UnitLimits(max_chars=32_000, max_blocks=100, section_chars=8_000)
_XHTML_TYPES = {"application/xhtml+xml", "text/html", "application/xml", "text/xml"}
_CONTAINER = "META-INF/container.xml"
_ENCRYPTION = "META-INF/encryption.xml"
_MAX_AUTHORS = 5


@dataclass(slots=True)
class _Book:
    title: str = ""
    authors: list[str] = field(default_factory=list)
    spine: list[str] = field(default_factory=list)  # archive names, in reading order
    skipped: list[str] = field(default_factory=list)  # spine items that are not XHTML


class EpubDocument(BaseDocument):
    unit_name = "section"
    units_total_exact = False

    def __init__(self, path: Path, mime_type: str) -> None:
        self.path = path
        self.mime_type = mime_type
        with translate_errors("EPUB file"), zipfile.ZipFile(path) as archive:
            self._book = _read_book(archive)
        self.units_total = max(1, len(self._book.spine))
        self._counts: dict[int, int] = {}  # units of each spine document, once read

    def units(self, start: int = 0) -> Iterator[Unit]:
        with translate_errors("EPUB file"), zipfile.ZipFile(self.path) as archive:
            index = 0
            for number, name in enumerate(self._book.spine):
                known = self._counts.get(number)
                if known is not None and index + known <= start:
                    index += known
                    continue
                count = 0
                for unit in self._document_units(archive, number, name):
                    if index + count >= start:
                        yield Unit(index + count, unit.blocks, unit.warnings)
                    count += 1
                self._counts[number] = count
                index += count
            if index == 0:
                if start == 0:
                    yield Unit(0, self._front_blocks(), self._front_warnings())
                index = 1
            self.units_total = index
            self.units_total_exact = True

    def _document_units(self, archive: zipfile.ZipFile, number: int, name: str) -> Iterator[Unit]:
        blocks: Iterator[Block] = _document_blocks(archive, name)
        if number == 0:
            blocks = _chain(self._front_blocks(), blocks)
        for unit in group_units(blocks, _LIMITS):
            if number == 0 and unit.index == 0:
                unit.warnings.extend(self._front_warnings())
            if unit.blocks or unit.warnings:
                yield unit

    def _front_blocks(self) -> list[Block]:
        heading = self._book.title
        if self._book.authors:
            heading += " by " + ", ".join(self._book.authors[:_MAX_AUTHORS])
        return [Block(BlockKind.HEADING, heading.strip(), level=1)] if heading.strip() else []

    def _front_warnings(self) -> list[str]:
        return [f"{name}: not an XHTML document, skipped" for name in self._book.skipped]


def _chain(first: list[Block], rest: Iterator[Block]) -> Iterator[Block]:
    yield from first
    yield from rest


def _document_blocks(archive: zipfile.ZipFile, name: str) -> Iterator[Block]:
    from knowra_worker.parsers.html import decode_html, fragment_blocks

    try:
        data = archive.read(name)
    except KeyError:
        return
    yield from fragment_blocks(decode_html(data))


# --- the package document --------------------------------------------------------------


def _parse_xml(data: bytes) -> Any:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(data, parser)


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _children(node: Any, name: str) -> list[Any]:
    return [child for child in node.iter() if _local(child.tag) == name]


def _read_book(archive: zipfile.ZipFile) -> _Book:
    opf_name = _package_name(archive)
    opf = _parse_xml(archive.read(opf_name))
    base = posixpath.dirname(opf_name)
    book = _Book(title=_metadata(opf, "title"), authors=_all_metadata(opf, "creator"))
    manifest = {
        item.get("id"): (item.get("href") or "", item.get("media-type") or "")
        for item in _children(opf, "item")
    }
    for ref in _children(opf, "itemref"):
        href, media_type = manifest.get(ref.get("idref"), ("", ""))
        name = posixpath.normpath(posixpath.join(base, unquote(href.split("#")[0])))
        if not href:
            continue
        if media_type.lower() in _XHTML_TYPES or name.lower().endswith((".xhtml", ".html")):
            book.spine.append(name)
        else:
            book.skipped.append(name)
    _refuse_encrypted(archive, book.spine)
    return book


def _package_name(archive: zipfile.ZipFile) -> str:
    """The OPF file's name: from container.xml, else the first .opf in the archive."""
    names = archive.namelist()
    if _CONTAINER in names:
        for rootfile in _children(_parse_xml(archive.read(_CONTAINER)), "rootfile"):
            path = rootfile.get("full-path") or ""
            if path in names:
                return path
    for name in names:
        if name.lower().endswith(".opf"):
            return name
    raise CorruptFile("not a valid EPUB file: it has no package document (.opf)")


def _metadata(opf: Any, name: str) -> str:
    values = _all_metadata(opf, name)
    return values[0] if values else ""


def _all_metadata(opf: Any, name: str) -> list[str]:
    values = []
    for metadata in _children(opf, "metadata"):
        for node in metadata.iter():
            if _local(node.tag) == name:
                text = " ".join("".join(node.itertext()).split())
                if text and text not in values:
                    values.append(text)
    return values


def _refuse_encrypted(archive: zipfile.ZipFile, spine: list[str]) -> None:
    if _ENCRYPTION not in archive.namelist():
        return
    encrypted = {
        posixpath.normpath(unquote(ref.get("URI") or ""))
        for ref in _children(_parse_xml(archive.read(_ENCRYPTION)), "CipherReference")
    }
    if encrypted & set(spine):
        raise EncryptedFile(
            "the e-book's content is encrypted (DRM); submit a copy without DRM protection"
        )


# imported when a worker process starts (registry.preload), not on import
PRELOAD = ("lxml.etree", "selectolax.lexbor")
FORMATS = (Format("epub", EPUB, (".epub",), Content.PACKAGE, EpubDocument),)
