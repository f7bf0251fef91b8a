"""JSON as pretty-printed code, XML as its text with element boundaries as whitespace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from knowra_worker.document import BlockKind
from knowra_worker.parsers import registry, structured

from .conftest import DATA, read_blocks


def test_xml_records_become_paragraphs() -> None:
    blocks = read_blocks(DATA / "factbook.xml")
    assert registry.detect(DATA / "factbook.xml") == "application/xml"
    assert [b.text for b in blocks] == [
        "United States\nWashington, DC\nJoe Biden\nBaseball",
        "Canada\nOttawa\nJustin Trudeau\nHockey",
        "France\nParis\nEmmanuel Macron\nSoccer",
        "Trinidad & Tobado\nPort of Spain\nKeith Rowley\nTrack & Field",
    ]


def test_xml_mixed_content_is_not_glued_and_entities_stay_unloaded(tmp_path: Path) -> None:
    path = tmp_path / "doc.xml"
    path.write_text(
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        "<article><title>Heat</title><p>Water<sub>2</sub>boils at<b>100</b>°C &x;</p>"
        "<p>Second</p></article>"
    )
    texts = [b.text for b in read_blocks(path)]
    assert texts == ["Heat\nWater 2 boils at 100 °C\nSecond"]


def test_json_is_pretty_printed_code(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text('{"name": "Knowra", "tags": ["a"], "size": {"é": 1}}', encoding="utf-8")
    assert registry.detect(path) == "application/json"
    (block,) = read_blocks(path)
    assert block.kind is BlockKind.CODE
    assert block.text.splitlines() == [
        "{",
        '  "name": "Knowra",',
        '  "tags": [',
        '    "a"',
        "  ],",
        '  "size": {',
        '    "é": 1',
        "  }",
        "}",
    ]


@pytest.mark.parametrize("limit", [0, structured.MAX_JSON_BYTES])
def test_big_or_invalid_json_is_read_line_by_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    path = tmp_path / "rows.json"
    rows = [json.dumps({"id": n, "text": f"row {n}"}) for n in range(500)]
    path.write_text("\n".join(rows))  # JSON Lines: not one JSON value
    monkeypatch.setattr(structured, "MAX_JSON_BYTES", limit)
    blocks = read_blocks(path)
    lines = [line for b in blocks for line in b.text.splitlines()]
    assert lines == rows
    assert all(len(b.text.splitlines()) <= 200 for b in blocks)
