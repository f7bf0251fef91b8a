"""Parsing speed per format: units (pages, slides, sheets, sections) per second of
`parse_file`, in this process, over every document of the corpus a parser reads.

    .venv/bin/python -m bench.speed [--corpus DIR] [--out bench/results/speed.json]

Each file is parsed once to warm the caches, then timed; OCR'd units (scanned pages,
images) are counted apart, since they cost seconds where a text page costs milliseconds.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from knowra_worker.errors import KnowraError
from knowra_worker.parsers import registry
from knowra_worker.pipeline import parse_file

HERE = Path(__file__).resolve()
DEFAULT_CORPUS = HERE.parents[2] / "shared" / "corpus"
DEFAULT_OUT = HERE.parents[1] / "bench" / "results" / "speed.json"


def measure(path: Path) -> tuple[str, int, int, float] | None:
    """(format, units, OCR'd units, seconds) of one parse, or None when not read."""
    try:
        mime_type = registry.detect(path)
        name = next(f.name for f in registry.formats() if f.mime_type == mime_type)
        for _ in parse_file(path, 1000, 200):  # warm: imports, file cache
            pass
        units = ocr = 0
        started = time.perf_counter()
        for _, unit, _ in parse_file(path, 1000, 200):
            if unit.index >= 0:
                units += 1
                ocr += any("OCR" in warning for warning in unit.warnings)
        return name, units, ocr, time.perf_counter() - started
    except (KnowraError, StopIteration):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0.0])  # files, units, ocr, s
    for path in sorted(p for p in args.corpus.rglob("*") if p.is_file()):
        if "groundtruth" in path.parts or path.suffix.lower() in {".md5", ".json"}:
            continue
        found = measure(path)
        if found is None:
            continue
        name, units, ocr, seconds = found
        row = totals["ocr" if ocr else name]
        row[0] += 1
        row[1] += units
        row[2] += ocr
        row[3] += seconds
    report(totals, args.out)


def report(totals: dict[str, list[float]], out: Path) -> None:
    table = Table(title="parse_file speed by format (units per second, one process)")
    for column in ("format", "files", "units", "seconds", "units/s"):
        table.add_column(column, justify="left" if column == "format" else "right")
    rows: list[dict[str, Any]] = []
    for name, (files, units, _, seconds) in sorted(totals.items()):
        rate = units / seconds if seconds else 0.0
        rows.append({"format": name, "files": files, "units": units, "seconds": seconds,
                     "units_per_s": rate})  # fmt: skip
        table.add_row(name, str(int(files)), str(int(units)), f"{seconds:.2f}", f"{rate:.1f}")
    Console().print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
