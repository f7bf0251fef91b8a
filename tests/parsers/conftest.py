"""Helpers for the parser tests: the sample files and a way to read a document whole."""

from __future__ import annotations

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
