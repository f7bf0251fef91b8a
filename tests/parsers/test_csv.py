"""CSV tables carry their rows; a long one repeats its header at the top of every block."""

from __future__ import annotations

from pathlib import Path

from knowra_worker.chunking import Chunker
from knowra_worker.document import BlockKind
from knowra_worker.parsers._tables import ROWS_PER_BLOCK
from knowra_worker.parsers.csv import CSV, CsvDocument


def blocks_of(path: Path) -> list:
    with CsvDocument(path, CSV) as doc:
        return [b for unit in doc.units() for b in unit.blocks]


def test_rows_are_the_cells_with_the_header_first(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('name,note\nduck,"a | b\nc"\n,\n', encoding="utf-8")
    [table] = blocks_of(path)
    assert table.kind is BlockKind.TABLE
    assert table.rows == (("name", "note"), ("duck", "a | b c"))
    assert table.text == "name | note\nduck | a | b c"
    chunker = Chunker(200, 0)
    [chunk] = chunker.feed_all([table]) + chunker.finish()
    assert chunk.text == "| name | note |\n| --- | --- |\n| duck | a \\| b c |"


def test_each_block_of_a_long_csv_starts_with_the_header(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    rows = [f"r{i},{i}" for i in range(ROWS_PER_BLOCK + 10)]
    path.write_text("key,value\n" + "\n".join(rows) + "\n", encoding="utf-8")
    first, second = blocks_of(path)
    assert first.rows[0] == second.rows[0] == ("key", "value")
    assert second.rows[1] == (f"r{ROWS_PER_BLOCK - 1}", str(ROWS_PER_BLOCK - 1))
    assert not second.text.startswith("key")  # the plain text gives the header once
    assert len(first.rows) + len(second.rows) == ROWS_PER_BLOCK + 12
