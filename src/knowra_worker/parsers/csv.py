"""CSV and TSV tables, read as a stream: each unit is one TABLE block of up to 200 rows.

The encoding is detected as for plain text; the delimiter is tab for .tsv/.tab files and
otherwise sniffed from the first lines among comma, semicolon, tab and pipe (comma when in
doubt). Each row becomes one line, its cells stripped, newlines inside a cell flattened and
joined with " | "; empty rows are skipped. The first row is the table's header (`rows`).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from knowra_worker.document import Block
from knowra_worker.parsers._common import (
    FlowDocument,
    UnitLimits,
    estimate_units,
    file_size,
    strip_controls,
)
from knowra_worker.parsers._encoding import file_encoding, open_text
from knowra_worker.parsers._tables import RowBatcher
from knowra_worker.parsers.base import Content, Format

CSV = "text/csv"
TSV = "text/tab-separated-values"
_TAB_EXTENSIONS = (".tsv", ".tab")
_LIMITS = UnitLimits(max_chars=32_000, max_blocks=1, section_chars=0)
_SNIFF_CHARS = 16 * 1024
_DELIMITERS = ",;\t|"


class CsvDocument(FlowDocument):
    format_label = "CSV file"
    limits = _LIMITS

    def __init__(self, path: Path, mime_type: str) -> None:
        self.path = path
        self.encoding = file_encoding(path)
        self.delimiter = self._delimiter(path, mime_type)
        size = file_size(path)
        super().__init__(mime_type, estimate_units(size, _LIMITS.max_chars))

    def iter_blocks(self) -> Iterator[Block]:
        with open_text(self.path, self.encoding, newline="") as stream:
            batcher = RowBatcher(_LIMITS.max_chars)
            for row in csv.reader(stream, delimiter=self.delimiter):
                block = batcher.add_row([strip_controls(cell) for cell in row])
                if block:
                    yield block
            block = batcher.flush_block()
            if block:
                yield block

    def _delimiter(self, path: Path, mime_type: str) -> str:
        if mime_type == TSV or path.suffix.lower() in _TAB_EXTENSIONS:
            return "\t"
        with open_text(path, self.encoding, newline="") as stream:
            sample = stream.read(_SNIFF_CHARS)
        return sniff_delimiter(sample)


def sniff_delimiter(sample: str) -> str:
    """The most likely delimiter of a CSV sample (comma when the sniffer cannot tell)."""
    cut = sample.rfind("\n")
    if cut > 0:
        sample = sample[:cut]  # whole lines only
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        return ","


FORMATS = (
    Format("csv", CSV, (".csv",), Content.TEXT, CsvDocument),
    Format("tsv", TSV, _TAB_EXTENSIONS, Content.TEXT, CsvDocument),
)
