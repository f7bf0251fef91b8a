"""Layout of a PDF page's lines, in pure Python (no pdfium call, no lock needed).

What pdfium gives is a page's lines in content-stream order, each with a box. This module
decides what a reader would see:
- which lines are running headers and footers (a line near the top or bottom edge whose
  text, digits aside, recurs on several pages of a fixed sample of the document, or, for a
  line led or ended by a page number, whose first and last words do);
- the reading order of a page set in columns (left column top to bottom, then the right one;
  a line crossing the gutter, such as a full-width heading or caption, stays where it is);
- how lines join into paragraph text (a word hyphenated at a line end is joined again);
- where two scripts meet without a space (Arabic beside Latin), which gets one.
Coordinates are PDF points with y growing upwards, as pdfium gives them.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

EDGE_BAND = 0.12  # of the page height: where running headers and footers sit
EDGE_SAMPLE_PAGES = 24  # pages scanned when a document is opened
EDGE_MIN_SHARE = 0.15  # of the sampled pages a line must recur on (and at least twice)
_EDGE_MAX_CHARS = 160
_GUTTER_MIN_LINES = 4  # lines on each side of a column gutter
_GUTTER_MAX_CROSSING = 0.15  # of a page's lines: full-width ones crossing the gutter
_GUTTER_MIN_WIDTH = 0.25  # of the text's width: the widest line of a column at least
_GUTTER_RANGE = (0.25, 0.75)  # where, across the text's width, a gutter may lie

_DIGITS = re.compile(r"\d+")
_ROMAN = re.compile(r"\b[ivxlcdm]{1,7}\b")
_NOT_WORD = re.compile(r"[\W_]+")
_ARABIC = "\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff"
_SCRIPT_GLUE = re.compile(rf"(?<=[{_ARABIC}])(?=[A-Za-z])|(?<=[A-Za-z])(?=[{_ARABIC}])")
_HYPHENS = "-\u00ad"
_ARABIC_LETTER = re.compile(f"[{_ARABIC}]")


@dataclass(slots=True)
class Line:
    text: str
    left: float = 0.0
    right: float = 0.0
    bottom: float = 0.0
    top: float = 0.0
    size: float = 0.0  # height of one character's box: a proxy for the font size
    placed: bool = False  # whether the position is known
    bold: bool = False  # the line's first and last characters are in a bold font
    table: int = -1  # >= 0: a stand-in for the page's table of that index
    span: tuple[int, int] = (0, 0)  # offsets of the line in the page's text


@dataclass(slots=True)
class PageLines:
    """A page's lines as extracted, and its tables (cells row by row, header first)."""

    lines: list[Line]
    height: float = 0.0
    tables: list[tuple[tuple[str, ...], ...]] | None = None
    warnings: list[str] = field(default_factory=list)  # what could not be read, and why


# --- running headers and footers ------------------------------------------------------------


def sample_pages(total: int) -> list[int]:
    """Evenly spread page indexes: the same for a document whatever page a run starts at."""
    if total <= EDGE_SAMPLE_PAGES:
        return list(range(total))
    step = (total - 1) / (EDGE_SAMPLE_PAGES - 1)
    return sorted({round(i * step) for i in range(EDGE_SAMPLE_PAGES)})


def edge_key(text: str) -> str:
    """A line's text with page numbers (Arabic or Roman) and punctuation taken out."""
    text = _DIGITS.sub("0", text.casefold())
    return _NOT_WORD.sub(" ", _ROMAN.sub("0", text)).strip() or "0"


@functools.lru_cache(maxsize=4096)  # running heads recur page after page
def edge_keys(text: str) -> frozenset[str]:
    """The line's key, and for a line that starts or ends (not both) with a page number,
    its shape: first and last words (`Chapter 2. Roles ... 11` and `Chapter 3. Row ... 15` share
    `chapter … 0`), as running heads that name the chapter differ in their middle."""
    key = edge_key(text)
    words = key.split()
    if len(words) < 3 or (words[0] == "0") == (words[-1] == "0"):
        return frozenset((key,))  # numbered at both ends is a contents line, not a running head
    return frozenset((key, f"{words[0]} … {words[-1]}"))


def repeated_edges(sampled: Sequence[Iterable[str]]) -> frozenset[str]:
    """Keys of the edge lines that recur on enough sampled pages to be running text."""
    counts: Counter[str] = Counter()
    for lines in sampled:
        counts.update({key for line in lines if _edge_sized(line) for key in edge_keys(line)})
    needed = max(2, round(EDGE_MIN_SHARE * len(sampled)))
    return frozenset(key for key, count in counts.items() if count >= needed)


def _edge_sized(text: str) -> bool:
    return 0 < len(text.strip()) <= _EDGE_MAX_CHARS


def edge_lines(page: PageLines) -> list[Line]:
    """The page's placed lines inside its top or bottom band."""
    if page.height <= 0:
        return []
    low, high = EDGE_BAND * page.height, (1 - EDGE_BAND) * page.height
    return [line for line in page.lines if line.placed and (line.bottom >= high or line.top <= low)]


def drop_edges(page: PageLines, repeated: frozenset[str]) -> list[Line]:
    """The page's lines without its running headers and footers."""
    if not repeated:
        return page.lines
    edges = [
        line
        for line in edge_lines(page)
        if _edge_sized(line.text) and not edge_keys(line.text).isdisjoint(repeated)
    ]
    if not edges:
        return page.lines
    return [line for line in page.lines if not any(line is edge for edge in edges)]


# --- reading order ----------------------------------------------------------------------------


def reading_order(lines: list[Line]) -> list[Line]:
    """Lines in reading order: columns one after the other, lines crossing the gutter kept
    between them. Pages without a clear gutter keep pdfium's order, which is the producer's
    and right for single-column text."""
    placed = [line for line in lines if line.placed and line.text.strip()]
    gutter = _gutter(placed)
    if gutter is None:
        return lines
    return _by_columns(lines, gutter)


def _gutter(lines: list[Line]) -> float | None:
    """The middle of the widest vertical strip that (almost) no line crosses, with enough
    lines of column width entirely on both sides of it, or None. The few lines allowed to
    cross are the full-width ones: a title, a caption, a footnote."""
    if len(lines) < 2 * _GUTTER_MIN_LINES:
        return None
    left, right = min(line.left for line in lines), max(line.right for line in lines)
    width = right - left
    if width <= 0:
        return None
    low, high = left + _GUTTER_RANGE[0] * width, left + _GUTTER_RANGE[1] * width
    allowed = max(2, int(_GUTTER_MAX_CROSSING * len(lines)))
    strips = [(a, b) for a, b in _free_strips(lines, allowed) if b > low and a < high]
    if not strips:
        return None
    start, end = max(strips, key=lambda strip: min(strip[1], high) - max(strip[0], low))
    middle = (max(start, low) + min(end, high)) / 2
    if not _columns_on_both_sides(lines, middle, _GUTTER_MIN_WIDTH * width):
        return None
    return middle


def _free_strips(lines: list[Line], allowed: int) -> list[tuple[float, float]]:
    """Strips of x that at most `allowed` lines cross (a sweep over the lines' ends)."""
    events = sorted([(line.left, 1) for line in lines] + [(line.right, -1) for line in lines])
    strips: list[tuple[float, float]] = []
    crossing, start = 0, None
    for x, step in events:
        crossing += step
        if crossing <= allowed and start is None:
            start = x
        elif crossing > allowed and start is not None:
            if x > start:
                strips.append((start, x))
            start = None
    return strips


def _columns_on_both_sides(lines: list[Line], gutter: float, min_width: float) -> bool:
    """Both sides hold several lines, one of them as wide as a column, and the two sides
    share a vertical range (side by side, not one above the other)."""
    left = [line for line in lines if line.right <= gutter]
    right = [line for line in lines if line.left >= gutter]
    for side in (left, right):
        if len(side) < _GUTTER_MIN_LINES:
            return False
        if max(line.right - line.left for line in side) < min_width:
            return False
    overlap = min(max(x.top for x in left), max(x.top for x in right)) - max(
        min(x.bottom for x in left), min(x.bottom for x in right)
    )
    return overlap > 0


def _by_columns(lines: list[Line], gutter: float) -> list[Line]:
    """Sections between gutter-crossing lines (top to bottom); in each, the left column's
    lines, then the right column's, each in pdfium's order."""
    crossing = [line for line in lines if line.placed and line.left < gutter < line.right]
    crossing.sort(key=lambda line: -line.top)
    ordered: list[Line] = []
    rest = [line for line in lines if not any(line is c for c in crossing)]
    for separator in [*crossing, None]:
        above = [line for line in rest if separator is None or _above(line, separator)]
        rest = [line for line in rest if not any(line is a for a in above)]
        ordered.extend(line for line in above if _side(line, gutter) <= 0)
        ordered.extend(line for line in above if _side(line, gutter) > 0)
        if separator is not None:
            ordered.append(separator)
    return ordered


def _above(line: Line, separator: Line) -> bool:
    if not line.placed:
        return True  # unplaced and blank lines stay with what comes before them
    return (line.top + line.bottom) / 2 > (separator.top + separator.bottom) / 2


def _side(line: Line, gutter: float) -> int:
    if not line.placed:
        return 0
    return -1 if (line.left + line.right) / 2 < gutter else 1


# --- text of a paragraph ----------------------------------------------------------------------


def join_lines(parts: Iterable[str]) -> str:
    """Lines of one paragraph as one string: a space between lines, none where a word was
    hyphenated at the line end (`infor-` + `mation`); a hyphen before a capital or a digit
    (`Jean-` + `Paul`, `COVID-` + `19`) is a real one and stays."""
    pieces: list[str] = []
    for raw in parts:
        part = raw.strip()
        if not part:
            continue
        if not pieces:
            pieces.append(part)
            continue
        previous = pieces[-1]
        if previous[-1] in _HYPHENS and len(previous) > 1 and previous[-2].isalpha():
            keep = previous[-1] == "-" and not part[0].islower()
            pieces[-1] = previous if keep else previous[:-1]
            pieces.append(part)
        elif previous[-1] in _HYPHENS:
            pieces.append(part)
        else:
            pieces.append(" " + part)
    return "".join(pieces)


def space_scripts(text: str) -> str:
    """A space where an Arabic letter touches a Latin one: two words, never one."""
    return _SCRIPT_GLUE.sub(" ", text)


def has_arabic(text: str) -> bool:
    return _ARABIC_LETTER.search(text) is not None


_LTR_RUN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 .,:/%+-]*[A-Za-z0-9]|[A-Za-z0-9]")


def logical_order(visual: str) -> str:
    """A right-to-left line stored in visual order (left to right as drawn) in logical
    order: the whole line reversed, then each run of Latin letters and digits turned back."""
    return _LTR_RUN.sub(lambda match: match.group(0)[::-1], visual[::-1])
