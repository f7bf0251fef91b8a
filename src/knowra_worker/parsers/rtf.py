"""Rich Text Format (.rtf) through a small reader of its own.

Why not a library: striprtf, the common permissive one, gives plain text only (no
paragraph kinds, no table rows), and the formats' essentials fit in one short tokenizer:
groups, control words, `\\'hh` bytes in the document's code page (`\\ansicpg`), `\\uN`
Unicode characters with their `\\ucN` fallbacks skipped, and `\\binN` data skipped.

Paragraphs end at `\\par` (`\\line` is a line break inside one). A paragraph is a HEADING
when it has `\\outlinelevelN` or a "heading N" style from the style sheet; a LIST item
when it has list numbering (`\\lsN`, `\\listtext` or `\\pntext`), with "N." or "-" from its
marker text, consecutive items making one LIST block. Rows of `\\intbl` paragraphs ending in
`\\row` make a TABLE block (`\\cell` ends a cell; a nested table's cells are flattened into
their outer cell). Left out: font, colour and style tables, document information,
pictures, objects, headers and footers, footnotes, field instructions (their results are
kept), hidden text and every `{\\* ...}` destination the reader does not know.

The file is read in chunks, so memory holds one chunk and the block being built.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from knowra_worker.document import Block, BlockKind
from knowra_worker.parsers._common import (
    FlowDocument,
    UnitLimits,
    collapse_inline_spaces,
    estimate_units,
    file_size,
    io_error,
)
from knowra_worker.parsers._tables import rows_block
from knowra_worker.parsers.base import Content, Format

RTF = "application/rtf"
_LIMITS = UnitLimits(max_chars=32_000, max_blocks=100, section_chars=8_000)
_CHUNK = 1 << 20
_TOKEN = re.compile(
    rb"\\([a-zA-Z]{1,32})(-?\d{1,10})? ?"  # control word with its optional parameter
    rb"|\\'([0-9a-fA-F]{2})"  # a byte in the code page
    rb"|\\([^a-zA-Z'])"  # control symbol
    rb"|([{}])"
    rb"|[\r\n]+"
    rb"|([^\\{}\r\n]+)"
)
_SKIPPED_DESTINATIONS = frozenset(
    {
        "fonttbl", "colortbl", "info", "pict", "object", "header", "headerl", "headerr",
        "headerf", "footer", "footerl", "footerr", "footerf", "footnote", "fldinst",
        "themedata", "colorschememapping", "datastore", "latentstyles", "listtable",
        "listoverridetable", "rsidtbl", "generator", "xmlnstbl", "mmathPr", "pntxta",
        "pntxtb", "bkmkstart", "bkmkend", "filetbl", "revtbl", "userprops", "template",
        "docvar", "annotation", "atnid", "atnauthor", "private", "shpinst", "nonshppict",
        "xe", "tc", "txe", "stylesheet",
    }
)  # fmt: skip
_SYMBOLS = {
    "emdash": "\u2014", "endash": "\u2013", "bullet": "\u2022", "lquote": "\u2018",
    "rquote": "\u2019", "ldblquote": "\u201c", "rdblquote": "\u201d", "emspace": " ",
    "enspace": " ", "qmspace": " ", "tab": "\t", "line": "\n", "lbr": "\n",
}  # fmt: skip
_ESCAPES = {"\\": "\\", "{": "{", "}": "}", "~": "\u00a0", "_": "\u2011", "-": "", "\n": ""}
_HEADING_STYLE = re.compile(r"^\s*heading\s*([1-9])\b", re.IGNORECASE)
_NUMBERED_MARKER = re.compile(r"^\(?[0-9A-Za-z]{1,6}[.)]")
_MAX_LEVEL = 6


@dataclass(slots=True)
class _State:
    """What a group inherits: whether its text is dropped, and the Unicode fallback size."""

    skip: bool = False
    hidden: bool = False
    uc: int = 1
    target: str = ""  # "", "listtext" (a list marker) or "style" (a style sheet entry)


@dataclass(slots=True)
class _Paragraph:
    level: int = 0  # heading level
    style: int = 0
    in_table: bool = False
    listed: bool = False
    list_level: int = 0


@dataclass(slots=True)
class _Output:
    """The block being built and the blocks finished since the last look."""

    text: list[str] = field(default_factory=list)
    marker: list[str] = field(default_factory=list)
    cells: list[str] = field(default_factory=list)
    rows: list[tuple[str, ...]] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    done: list[Block] = field(default_factory=list)


class RtfDocument(FlowDocument):
    format_label = "RTF file"
    limits = _LIMITS

    def __init__(self, path: Path, mime_type: str) -> None:
        self.path = path
        super().__init__(mime_type, estimate_units(file_size(path), 3 * _LIMITS.max_chars))

    def iter_blocks(self) -> Iterator[Block]:
        reader = _Reader()
        try:
            with self.path.open("rb") as stream:
                while chunk := stream.read(_CHUNK):
                    yield from reader.feed(chunk)
        except OSError as exc:
            raise io_error(exc) from exc
        yield from reader.finish()


class _Reader:
    def __init__(self) -> None:
        self.stack: list[_State] = []
        self.state = _State()
        self.paragraph = _Paragraph()
        self.out = _Output()
        self.pending = b""  # the start of a token cut by the end of a chunk
        self.bytes = bytearray()  # \'hh bytes waiting to be decoded together
        self.codec = "cp1252"
        self.skip_chars = 0  # fallback characters after \uN still to skip
        self.binary = 0  # \binN bytes still to skip
        self.styles: dict[int, int] = {}  # style number -> heading level
        self.style_number = 0
        self.new_group = False  # the last token opened a group (a destination may follow)
        self.listed = False  # the current paragraph had a list marker

    def feed(self, chunk: bytes, final: bool = False) -> Iterator[Block]:
        data = self.pending + chunk
        position = self._skip_binary(data, 0)
        while position < len(data):
            match = _TOKEN.match(data, position)
            if match is None:  # a lone backslash at the very end
                break
            if not final and match.end() == len(data):
                break  # the token may go on in the next chunk
            self._token(match)
            position = self._skip_binary(data, match.end())
        self.pending = data[position:]
        yield from self._take()

    def finish(self) -> Iterator[Block]:
        yield from self.feed(b"", final=True)
        self._end_paragraph()
        self._end_table()
        self._end_list()
        yield from self._take()

    def _take(self) -> Iterator[Block]:
        done, self.out.done = self.out.done, []
        yield from done

    def _skip_binary(self, data: bytes, position: int) -> int:
        step = min(self.binary, len(data) - position)
        self.binary -= step
        return position + step

    # --- tokens ----------------------------------------------------------------------

    def _token(self, match: re.Match[bytes]) -> None:
        word, parameter, hex_byte, symbol, brace, text = match.groups()
        if match.lastindex is None:
            return  # a line break in the source: no meaning in RTF
        opened, self.new_group = self.new_group, False
        if word is not None:
            self._flush_bytes()
            self._word(word.decode("ascii"), _int(parameter), opened)
        elif hex_byte is not None:
            if not self._skipping_fallback():
                self.bytes.append(int(hex_byte, 16))
        elif symbol is not None:
            self._flush_bytes()
            self._symbol(symbol.decode("latin-1"), opened)
        elif brace is not None:
            self._flush_bytes()
            self._brace(brace)
        elif text is not None:
            self._flush_bytes()
            self._text(text.decode("latin-1"))

    def _brace(self, brace: bytes) -> None:
        self.skip_chars = 0
        if brace == b"{":
            self.stack.append(self.state)
            self.state = replace(self.state)
            self.new_group = True
            return
        if self.state.target == "style" and self.stack and self.stack[-1].target == "style":
            self._end_style()
        if self.stack:
            self.state = self.stack.pop()

    def _symbol(self, symbol: str, opened: bool) -> None:
        if symbol == "*":
            if opened:
                self.state.skip = True  # an optional destination this reader does not know
            return
        if symbol in ("\n", "\r"):
            self._word("par", None, False)
            return
        if symbol in _ESCAPES:
            self._text(_ESCAPES[symbol], count=False)

    def _word(self, word: str, parameter: int | None, opened: bool) -> None:
        if self._skipping_fallback():
            return
        handler = _WORDS.get(word)
        if handler is not None:
            handler(self, parameter)
        elif word in _SYMBOLS:
            self._text(_SYMBOLS[word], count=False)
        elif word in _SKIPPED_DESTINATIONS:
            self._destination(word)
        elif word == "u" and parameter is not None:
            self._text(chr(parameter % 65536) if parameter < 0 else chr(parameter), count=False)
            self.skip_chars = self.state.uc

    def _destination(self, word: str) -> None:
        if word == "stylesheet":
            self.state.target = "style"
        else:
            self.state.skip = True

    def _skipping_fallback(self) -> bool:
        if self.skip_chars > 0:
            self.skip_chars -= 1
            return True
        return False

    def _text(self, text: str, count: bool = True) -> None:
        if count and self.skip_chars:
            cut = min(self.skip_chars, len(text))
            self.skip_chars -= cut
            text = text[cut:]
        if not text or self.state.hidden or self.state.skip:
            return
        if self.state.target:  # a style's name or a list item's marker
            self.out.marker.append(text)
        else:
            self.out.text.append(text)

    def _flush_bytes(self) -> None:
        if self.bytes:
            data, self.bytes = bytes(self.bytes), bytearray()
            self._text(data.decode(self.codec, errors="replace"), count=False)

    # --- structure -------------------------------------------------------------------

    def _end_paragraph(self) -> None:
        paragraph = self.paragraph
        if paragraph.in_table:
            return  # the text belongs to the cell, which \cell ends
        text = collapse_inline_spaces("".join(self.out.text))
        marker = collapse_inline_spaces("".join(self.out.marker))
        self.out.text, self.out.marker = [], []
        listed, self.listed = paragraph.listed or self.listed, False
        self._end_table()
        if listed and text:
            self._list_item(text, marker, paragraph.list_level)
            return
        self._end_list()
        if not text:
            return
        level = paragraph.level or self.styles.get(paragraph.style, 0)
        if level:
            self.out.done.append(Block(BlockKind.HEADING, " ".join(text.split()), level=level))
        else:
            self.out.done.append(Block(BlockKind.PARAGRAPH, text))

    def _list_item(self, text: str, marker: str, level: int) -> None:
        sign = marker.rstrip(".)").lstrip("(") + "." if _NUMBERED_MARKER.match(marker) else "-"
        self.out.items.append(f"{'  ' * level}{sign} {' '.join(text.split())}")

    def _end_list(self) -> None:
        if self.out.items:
            self.out.done.append(Block(BlockKind.LIST, "\n".join(self.out.items)))
            self.out.items = []

    def _end_cell(self) -> None:
        text = " ".join(collapse_inline_spaces("".join(self.out.text)).split())
        self.out.text, self.out.marker = [], []
        self.listed = False
        self.out.cells.append(text)

    def _end_row(self) -> None:
        if self.out.text:
            self._end_cell()
        if any(self.out.cells):
            self.out.rows.append(tuple(self.out.cells))
        self.out.cells = []

    def _end_table(self) -> None:
        table = rows_block(self.out.rows)
        if table:
            self.out.done.append(table)
        self.out.rows, self.out.cells = [], []

    def _end_style(self) -> None:
        match = _HEADING_STYLE.match("".join(self.out.marker))
        if match:
            self.styles[self.style_number] = min(int(match.group(1)), _MAX_LEVEL)
        self.out.marker = []
        self.style_number = 0


def _int(parameter: bytes | None) -> int | None:
    return int(parameter) if parameter is not None else None


# --- control words with an effect ------------------------------------------------------


def _par(reader: _Reader, _: int | None) -> None:
    if reader.state.skip or reader.state.target:
        return
    if reader.paragraph.in_table:
        reader.out.text.append("\n")  # a cell of several paragraphs
        return
    reader._end_paragraph()


def _pard(reader: _Reader, _: int | None) -> None:
    reader.paragraph = _Paragraph()


def _cell(reader: _Reader, _: int | None) -> None:
    if not reader.state.skip:
        reader._end_cell()


def _nestcell(reader: _Reader, _: int | None) -> None:
    reader.out.text.append(" ")


def _row(reader: _Reader, _: int | None) -> None:
    if not reader.state.skip:
        reader._end_row()


def _intbl(reader: _Reader, _: int | None) -> None:
    if not reader.paragraph.in_table:
        reader._end_list()
    reader.paragraph.in_table = True


def _outline(reader: _Reader, parameter: int | None) -> None:
    if parameter is not None and 0 <= parameter < 9:
        reader.paragraph.level = min(parameter + 1, _MAX_LEVEL)


def _style(reader: _Reader, parameter: int | None) -> None:
    if reader.state.target == "style":
        reader.style_number = parameter or 0
    else:
        reader.paragraph.style = parameter or 0


def _listed(reader: _Reader, _: int | None) -> None:
    reader.paragraph.listed = True


def _list_level(reader: _Reader, parameter: int | None) -> None:
    reader.paragraph.list_level = max(0, min(parameter or 0, 8))


def _list_text(reader: _Reader, _: int | None) -> None:
    reader.listed = True  # the paragraph's own \pard comes after its marker
    reader.state.target = "listtext"


def _hidden(reader: _Reader, parameter: int | None) -> None:
    reader.state.hidden = parameter != 0


def _uc(reader: _Reader, parameter: int | None) -> None:
    reader.state.uc = max(0, parameter or 0)


def _codepage(reader: _Reader, parameter: int | None) -> None:
    name = f"cp{parameter}"
    try:
        codecs.lookup(name)
    except LookupError:
        return
    reader.codec = name


def _bin(reader: _Reader, parameter: int | None) -> None:
    reader.binary = max(0, parameter or 0)


def _plain(reader: _Reader, _: int | None) -> None:
    reader.state.hidden = False


_WORDS = {
    "par": _par,
    "sect": _par,
    "page": _par,
    "pard": _pard,
    "cell": _cell,
    "nestcell": _nestcell,
    "nestrow": _nestcell,
    "row": _row,
    "intbl": _intbl,
    "outlinelevel": _outline,
    "s": _style,
    "ls": _listed,
    "ilvl": _list_level,
    "listtext": _list_text,
    "pntext": _list_text,
    "v": _hidden,
    "uc": _uc,
    "ansicpg": _codepage,
    "bin": _bin,
    "plain": _plain,
}

FORMATS = (Format("rtf", RTF, (".rtf",), Content.BINARY, RtfDocument, magic=(b"{\\rtf",)),)
