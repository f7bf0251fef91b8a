"""What openpyxl's streaming (read-only) mode does not give, read from the package's XML.

For each sheet of a workbook, in the workbook's order: whether it is a worksheet or a chart
sheet, its merged cell ranges, its comments (legacy notes and threaded comments, with their
authors) and its charts (the drawings' chart parts). Each part is read on its own when its
sheet comes, with lxml; merged ranges are taken from a streaming pass over the sheet part so
that a big sheet is never held whole.
"""

from __future__ import annotations

import posixpath
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from knowra_worker.parsers._charts import Chart, parse_chart

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_C = "{http://schemas.openxmlformats.org/drawingml/2006/chart}"
_THREADED = "{http://schemas.microsoft.com/office/spreadsheetml/2018/threadedcomments}"
_MAX_MERGES = 100_000


@dataclass(frozen=True, slots=True)
class Rel:
    type: str
    target: str  # a part name inside the package (no leading slash)


@dataclass(slots=True)
class Comment:
    ref: str  # "B3"
    author: str
    text: str


@dataclass(slots=True)
class SheetInfo:
    name: str
    chartsheet: bool
    part: str
    rels: dict[str, Rel] = field(default_factory=dict)


class Package:
    """The workbook package, opened once; parts are read when asked for."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.names = set(archive.namelist())
        workbook = self._workbook_part()
        self.sheets = list(self._sheets(workbook))
        self.persons = self._persons(workbook)

    def merged_ranges(self, sheet: SheetInfo) -> list[tuple[int, int, int, int]]:
        """(min_row, min_col, max_row, max_col) of each merged range, 1-based."""
        from lxml import etree

        ranges: list[tuple[int, int, int, int]] = []
        if sheet.part not in self.names:
            return ranges
        with self.archive.open(sheet.part) as handle:
            for _event, node in etree.iterparse(handle, tag=f"{_MAIN}mergeCell"):
                bounds = cell_range(node.get("ref") or "")
                if bounds is not None and len(ranges) < _MAX_MERGES:
                    ranges.append(bounds)
                node.clear()
        return ranges

    def comments(self, sheet: SheetInfo) -> list[Comment]:
        """Threaded comments, then the legacy notes of cells that have no threaded comment."""
        threaded: list[Comment] = []
        legacy: list[Comment] = []
        for rel in sheet.rels.values():
            if rel.type.endswith("/threadedComment"):
                threaded.extend(self._threaded(rel.target))
            elif rel.type.endswith("/comments"):
                legacy.extend(self._legacy(rel.target))
        covered = {comment.ref for comment in threaded}
        return threaded + [c for c in legacy if c.ref not in covered]

    def charts(self, sheet: SheetInfo) -> Iterator[Chart | None]:
        """The sheet's charts in drawing order (None for one that cannot be read)."""
        for rel in sheet.rels.values():
            if not rel.type.endswith("/drawing"):
                continue
            drawing = self._xml(rel.target)
            if drawing is None:
                continue
            drawing_rels = self._rels(rel.target)
            for ref in drawing.iter(f"{_C}chart"):
                target = drawing_rels.get(ref.get(f"{_R}id") or "")
                yield self._chart(target.target) if target is not None else None

    # --- parts --------------------------------------------------------------------------

    def _chart(self, part: str) -> Chart | None:
        try:
            return parse_chart(self.archive.read(part))
        except Exception:  # noqa: BLE001 - the caller warns about an unreadable chart
            return None

    def _workbook_part(self) -> str:
        for rel in self._rels("").values():
            if rel.type.endswith("/officeDocument"):
                return rel.target
        return "xl/workbook.xml"

    def _sheets(self, workbook: str) -> Iterator[SheetInfo]:
        root = self._xml(workbook)
        rels = self._rels(workbook)
        if root is None:
            return
        for node in root.iter(f"{_MAIN}sheet"):
            rel = rels.get(node.get(f"{_R}id") or "")
            if rel is None:
                continue
            yield SheetInfo(
                name=node.get("name") or "",
                chartsheet=rel.type.endswith("/chartsheet"),
                part=rel.target,
                rels=self._rels(rel.target),
            )

    def _persons(self, workbook: str) -> dict[str, str]:
        persons: dict[str, str] = {}
        for rel in self._rels(workbook).values():
            if rel.type.endswith("/person"):
                root = self._xml(rel.target)
                for person in root.iter(f"{_THREADED}person") if root is not None else ():
                    persons[person.get("id") or ""] = person.get("displayName") or ""
        return persons

    def _threaded(self, part: str) -> Iterator[Comment]:
        root = self._xml(part)
        for node in root.iter(f"{_THREADED}threadedComment") if root is not None else ():
            text = node.find(f"{_THREADED}text")
            body = " ".join((text.text or "").split()) if text is not None else ""
            if body:
                author = self.persons.get(node.get("personId") or "", "")
                yield Comment(node.get("ref") or "", author, body)

    def _legacy(self, part: str) -> Iterator[Comment]:
        root = self._xml(part)
        if root is None:
            return
        authors = [" ".join((a.text or "").split()) for a in root.iter(f"{_MAIN}author")]
        for node in root.iter(f"{_MAIN}comment"):
            text = node.find(f"{_MAIN}text")
            body = "".join(t.text or "" for t in text.iter(f"{_MAIN}t")) if text is not None else ""
            body = " ".join(body.split())
            index = _int(node.get("authorId"))
            author = authors[index] if index is not None and 0 <= index < len(authors) else ""
            if body:
                # Legacy notes start with their author's name: "Jane: text".
                if author and body.startswith(f"{author}:"):
                    body = body[len(author) + 1 :].strip()
                yield Comment(node.get("ref") or "", author, body)

    def _xml(self, part: str) -> Any | None:
        from lxml import etree

        if part not in self.names:
            return None
        parser = etree.XMLParser(resolve_entities=False)
        return etree.fromstring(self.archive.read(part), parser=parser)

    def _rels(self, part: str) -> dict[str, Rel]:
        """The relationships of a part ("" for the package's own), targets resolved."""
        folder, name = posixpath.split(part)
        rels_part = posixpath.join(folder, "_rels", f"{name}.rels")
        root = self._xml(rels_part)
        rels: dict[str, Rel] = {}
        for node in root.iter(f"{_REL}Relationship") if root is not None else ():
            if node.get("TargetMode") == "External":
                continue
            target = node.get("Target") or ""
            if target.startswith("/"):
                resolved = target.lstrip("/")
            else:
                resolved = posixpath.normpath(posixpath.join(folder, target))
            rels[node.get("Id") or ""] = Rel(node.get("Type") or "", resolved)
        return rels


def cell_range(ref: str) -> tuple[int, int, int, int] | None:
    """ "B2:D4" -> (2, 2, 4, 4); None for a reference that is not a range."""
    if ":" not in ref:
        return None
    start, end = (cell_position(part) for part in ref.split(":", 1))
    if start is None or end is None:
        return None
    return start[0], start[1], end[0], end[1]


def cell_position(ref: str) -> tuple[int, int] | None:
    """ "B3" -> (3, 2): the 1-based row and column of a cell reference."""
    ref = ref.replace("$", "").upper()
    letters = "".join(c for c in ref if "A" <= c <= "Z")
    digits = ref[len(letters) :]
    if not letters or not digits.isdigit():
        return None
    column = 0
    for letter in letters:
        column = column * 26 + ord(letter) - 64
    return int(digits), column


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
