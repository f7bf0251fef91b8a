"""Helpers for the parser tests: the sample files and a way to read a document whole."""

from __future__ import annotations

import itertools
import re
import unicodedata
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from knowra_worker.document import Block, BlockKind, Unit
from knowra_worker.parsers import open_document

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(autouse=True)
def fresh_documents() -> None:
    """Each test reads its PDFs afresh: a process keeps a document's facts and sampled pages,
    which would hide what a test changes in how pages are read."""
    from knowra_worker.parsers.pdf import forget_documents

    forget_documents()


def read_units(path: Path, start: int = 0) -> list[Unit]:
    with open_document(path) as doc:
        return list(doc.units(start))


def warnings_as_given(path: Path) -> list[str]:
    """Each unit's warnings as they are when the unit is handed over (the pipeline takes
    them then: a warning added to a unit afterwards is lost)."""
    with open_document(path) as doc:
        return [warning for unit in doc.units() for warning in list(unit.warnings)]


def edit_package(
    source: Path,
    path: Path,
    edits: dict[str, tuple[str, str]] | None = None,
    extra: dict[str, str] | None = None,
) -> None:
    """A copy at `path` of the ZIP package `source` (DOCX, XLSX, PPTX, EPUB...): in each
    named part, `old` replaced once by `new` (it must be there); the `extra` parts added."""
    edits, extra = edits or {}, extra or {}
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(path, "w") as out:
        for info in archive.infolist():
            data = archive.read(info)
            if info.filename in edits:
                old, new = edits[info.filename]
                assert old.encode() in data, (info.filename, old)
                data = data.replace(old.encode(), new.encode(), 1)
            out.writestr(info, data)
        for name, text in extra.items():
            out.writestr(name, text)


def words(text: str) -> list[str]:
    """Case-folded word runs (NFKC, Arabic tatweel dropped), Markdown marks and punctuation
    left out: how text is compared with a ground truth."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("\u0640", "")
    return re.findall(r"[^\W_]+", text)


def recall(truth: list[str], ours: list[str]) -> float:
    return sum((Counter(truth) & Counter(ours)).values()) / len(truth)


def glued_pairs(truth: list[str], ours: list[str], *, marks_joined: bool = False) -> list[str]:
    """Tokens of ours that are two neighbouring ground-truth words run together (and not a
    word of the truth themselves); numbers run together are left out. `marks_joined`: a
    number joined to the word before it is left out too, as OCR reads a superscript
    footnote or affiliation mark ("Shen¹") as part of its word, which a text layer must
    keep apart (`center1` is a fault there)."""
    got, want = Counter(ours), Counter(truth)
    return [
        a + b
        for a, b in itertools.pairwise(truth)
        if got[a + b]
        and not want[a + b]
        and not (a + b).isdigit()
        and not (marks_joined and b.isdigit())
    ]


def read_blocks(path: Path) -> list[Block]:
    return [block for unit in read_units(path) for block in unit.blocks]


def kinds_and_texts(blocks: list[Block]) -> list[tuple[BlockKind, str]]:
    return [(block.kind, block.text) for block in blocks]


def headings(blocks: list[Block]) -> list[tuple[int, str]]:
    return [(b.level, b.text) for b in blocks if b.kind is BlockKind.HEADING]


def markdown_headings(path: Path) -> list[tuple[int, str]]:
    """(level, text) of the ATX headings of a Markdown file (the corpus ground truth)."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        marks, _, text = line.partition(" ")
        if marks and set(marks) == {"#"}:
            found.append((len(marks), text.strip()))
    return found


@pytest.fixture
def data() -> Path:
    return DATA
