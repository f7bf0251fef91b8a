"""The chunker: blocks in, size-bounded overlapping chunks out, resumable at any block.

The document's *extracted text* is every non-blank block rendered in the task's text format
(`document.render`: Markdown by default, or plain text), joined by one blank line
("\\n\\n"). Every chunk is a slice of that text: ``text == extracted[char_start:char_end]``,
except a part of a Markdown table split between rows: it starts with the table's header
row and separator line again, ``header_chars`` characters that the offsets do not cover
(``text[header_chars:] == extracted[char_start:char_end]``; the header itself is in the
extracted text above, where the table starts).

Sizes count characters, or tokens of a tiktoken encoding (`length_unit` "tokens"); offsets
always count characters.

Rules (DESIGN.md "Chunks"):
- no chunk is longer than ``chunk_size`` (characters or tokens), repeated header included;
- a heading starts a new section: the text before it is flushed, and no overlap crosses it.
  Headings directly under one another (no body between, each deeper) stay together. A
  heading's level places it in the heading path: 0 is a document title, 1..9 headings;
- a table is chunked on its own (``content_type`` "table"), preferring row boundaries. In
  Markdown, a table too long for one chunk is cut into parts of whole rows, each part after
  the first repeating the header; a row too long for a chunk (with the header) is cut as text;
- inside a section, consecutive chunks share up to ``chunk_overlap`` characters (or tokens),
  starting on a word boundary; parts of a Markdown table share none;
- split points prefer, in order: paragraph breaks, line breaks, sentence ends, spaces; a
  word longer than ``chunk_size`` is cut hard.

Emission depends only on the text seen so far, never on where unit boundaries fall, and
all carry-over lives in :class:`ChunkerState`, a JSON-serializable dataclass: a chunker
rebuilt from a saved state produces exactly what the original would have.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from knowra_worker.document import Block, BlockKind, TextFormat, pipe_table, render
from knowra_worker.tokens import TokenCounter, token_counter

BLOCK_SEPARATOR = "\n\n"
_SEP_LEN = len(BLOCK_SEPARATOR)
_SENTENCE_END = r"[.!?;:。！？；](?=\s)|[。！？；]"
_SEPARATORS = ("\n\n", "\n")
# Matched from a window's start, these end where the window's last sentence end (or last
# whitespace) does: one search from the right instead of a match object per sentence or a
# loop over characters.
_LAST_SENTENCE_END = re.compile(rf"(?s:.*)(?:{_SENTENCE_END})")
_LAST_SPACE = re.compile(r"(?s:.*)\s")
_WORD_START = re.compile(r"(?<=\s)\S")  # a non-space after a space (may look before `pos`)


@dataclass(frozen=True, slots=True)
class RawChunk:
    seq: int
    text: str
    char_start: int
    char_end: int
    page_start: int | None
    page_end: int | None
    headings: tuple[str, ...]
    content_type: str
    header_chars: int = 0  # leading characters repeating a table's header, outside the offsets


_ChunkMaker = Callable[
    [int, str, int, int, int | None, int | None, tuple[str, ...], str, int], RawChunk
]


def _chunk_maker() -> _ChunkMaker:
    """A RawChunk constructor taking every field in order. The generated __init__ of a
    frozen dataclass sets each field through object.__setattr__, more than twice as slow as
    calling the slots' own setters: with it, making chunks took a fifth of the chunker's
    time on paragraphs of a corpus (bench/perf.py P3)."""
    new = object.__new__
    s0, s1, s2, s3, s4, s5, s6, s7, s8 = (
        getattr(RawChunk, name).__set__ for name in RawChunk.__slots__
    )

    def make(
        seq: int,
        text: str,
        char_start: int,
        char_end: int,
        page_start: int | None,
        page_end: int | None,
        headings: tuple[str, ...],
        content_type: str,
        header_chars: int,
    ) -> RawChunk:
        chunk = new(RawChunk)
        s0(chunk, seq)
        s1(chunk, text)
        s2(chunk, char_start)
        s3(chunk, char_end)
        s4(chunk, page_start)
        s5(chunk, page_end)
        s6(chunk, headings)
        s7(chunk, content_type)
        s8(chunk, header_chars)
        return chunk

    return make


_new_chunk = _chunk_maker()


@dataclass(slots=True)
class ChunkerState:
    seq: int = 0  # next chunk's sequence number
    doc_offset: int = 0  # length of the extracted text so far
    pending: str = ""  # text of the open section not yet emitted (may start with overlap)
    pending_start: int = 0  # offset of pending[0] in the extracted text
    pending_body: bool = False  # pending holds more than headings
    pending_heading_level: int = -1  # level of the last heading in pending (-1: none)
    page_marks: list[tuple[int, int | None]] = field(default_factory=list)  # (rel, page)
    headings: list[tuple[int, str]] = field(default_factory=list)  # (level, text) path

    def to_dict(self) -> dict[str, Any]:
        """As `dataclasses.asdict` gives it (tuples copied as they are), without its deep
        copy of every value: this is written with every checkpoint."""
        data = {name: getattr(self, name) for name in _STATE_FIELDS}
        data["page_marks"], data["headings"] = list(self.page_marks), list(self.headings)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChunkerState:
        state = cls(**data)
        state.page_marks = [(int(r), p) for r, p in state.page_marks]
        state.headings = [(int(lv), str(t)) for lv, t in state.headings]
        return state


_STATE_FIELDS = tuple(f.name for f in fields(ChunkerState))


class Measure:
    """Lengths in characters, or in tokens of a tiktoken encoding.

    The splitter asks for character positions: where the first `n` units of a text end
    (`span`), where its last `n` begin (`tail_start`), and checks each candidate piece once
    (`length`). Characters answer exactly; tokens from one encoding of a window of text, the
    candidate then counted exactly (a piece cut out of a text may encode to a token more or
    less than its share of the whole).
    """

    def __init__(self, tokenizer: str | None = None) -> None:
        self.tokens: TokenCounter | None = token_counter(tokenizer) if tokenizer else None
        self.exact = self.tokens is None

    def length(self, text: str) -> int:
        return len(text) if self.tokens is None else self.tokens.count(text)

    def span(self, text: str, pos: int, n: int) -> int | None:
        """The index after the first `n` units of text[pos:]; None if it has at most `n`."""
        if self.tokens is None or len(text) - pos <= n:  # a token holds one character or more
            return pos + n if len(text) - pos > n else None
        window = 8 * (n + 1)
        while True:
            ends = self.tokens.token_ends(text[pos : pos + window], n + 1)
            if len(ends) > n:
                return pos + (ends[n - 1] if n else 0)
            if pos + window >= len(text):
                return None
            window *= 4

    def tail_start(self, text: str, start: int, end: int, n: int) -> int:
        """Where the last `n` units of text[start:end] begin."""
        if self.tokens is None:
            return max(end - n, start)
        ends = self.tokens.token_ends(text[start:end])
        first = len(ends) - n  # tokens before the last n
        return start + (ends[first - 1] if first >= 1 else 0)


class Chunker:
    def __init__(
        self,
        chunk_size: int,
        chunk_overlap: int,
        state: ChunkerState | None = None,
        *,
        text_format: TextFormat = "markdown",
        tokenizer: str | None = None,
    ) -> None:
        """`tokenizer` (a name of `tokens.TOKENIZERS`) makes sizes count tokens."""
        if chunk_size < 1 or not 0 <= chunk_overlap < chunk_size:
            raise ValueError("need chunk_size >= 1 and 0 <= chunk_overlap < chunk_size")
        self.size = chunk_size
        self.overlap = chunk_overlap
        self.min_split = max(chunk_size // 3, chunk_overlap + 1)
        # in characters, a chunk at pos is cut in [pos + lo_step, pos + size] (as `_piece`)
        self._lo_step = min(self.min_split, chunk_size - 1)
        self.text_format = text_format
        self.measure = Measure(tokenizer)
        self.state = state or ChunkerState()
        # the heading path as chunks carry it, built again only when `state.headings` is
        # replaced (`_open_heading` assigns a new list, nothing changes one in place)
        self._path_of: list[tuple[int, str]] | None = None
        self._path: tuple[str, ...] = ()

    # -- feeding ------------------------------------------------------------------------

    def feed(self, block: Block) -> list[RawChunk]:
        kind = block.kind
        if kind is BlockKind.PARAGRAPH and not block.markdown:
            text = block.text.strip()  # what `render` gives in either format
        else:
            text = render(block, self.text_format)
        if not text:
            return []
        out: list[RawChunk] = []
        if kind is BlockKind.HEADING:
            self._open_heading(block.level, block.text.strip(), out)
        elif kind is BlockKind.TABLE:
            self._table(block, text, out)
            return out
        else:
            self.state.pending_body = True
        # a unit (character or token) holds at least one character: with no more characters
        # than a chunk's size pending there is nothing to emit yet, and most blocks stop here
        if len(self._append(text, block.page)) > self.size:
            self._emit_full(out)
        return out

    def feed_all(self, blocks: list[Block]) -> list[RawChunk]:
        out: list[RawChunk] = []
        for block in blocks:
            out.extend(self.feed(block))
        return out

    def finish(self) -> list[RawChunk]:
        out: list[RawChunk] = []
        self._flush(out)
        return out

    # -- sections -------------------------------------------------------------------------

    def _open_heading(self, level: int, text: str, out: list[RawChunk]) -> None:
        st = self.state
        keeps_together = not st.pending_body and -1 < st.pending_heading_level < level
        if not keeps_together:
            self._flush(out)
        st.headings = [(lv, t) for lv, t in st.headings if lv < level] + [(level, text)]
        st.pending_heading_level = level

    def _append(self, text: str, page: int | None) -> str:
        """Add a block's text to the extracted text and to pending; answers pending."""
        st = self.state
        block_start = st.doc_offset + _SEP_LEN if st.doc_offset > 0 else 0
        st.doc_offset = block_start + len(text)
        pending = st.pending
        if pending:  # then some text came before: the separator goes between
            rel = len(pending) + _SEP_LEN
            pending = f"{pending}{BLOCK_SEPARATOR}{text}"
        else:
            st.pending_start, st.page_marks, rel, pending = block_start, [], 0, text
        st.pending = pending
        marks = st.page_marks
        if not marks or marks[-1][1] != page:
            marks.append((rel, page))
        return pending

    def _flush(self, out: list[RawChunk], content_type: str = "text") -> None:
        """Emit everything pending: the open section (or table) ends here."""
        st = self.state
        self._cut(0, len(st.pending), content_type, out, final=True)
        self._clear()

    def _clear(self) -> None:
        st = self.state
        st.pending, st.page_marks = "", []
        st.pending_body, st.pending_heading_level = False, -1

    # -- tables ---------------------------------------------------------------------------

    def _table(self, block: Block, text: str, out: list[RawChunk]) -> None:
        """A table on its own: in Markdown with rows, parts of whole rows under the header."""
        self._flush(out)
        self._append(text, block.page)
        lines = pipe_table(block.rows) if self.text_format == "markdown" and block.rows else []
        if not lines or self.measure.length(text) <= self.size:
            self._flush(out, content_type="table")
            return
        _TableSplitter(self, lines).run(out)
        self._clear()

    # -- splitting ------------------------------------------------------------------------

    def _emit_full(self, out: list[RawChunk], content_type: str = "text") -> None:
        """Emit chunks while more than one chunk's worth of text is pending."""
        pos = self._cut(0, len(self.state.pending), content_type, out, final=False)
        if pos:
            self._drop_prefix(pos)

    def _cut(self, pos: int, stop: int, content_type: str, out: list[RawChunk], final: bool) -> int:
        """Emit chunks of pending[pos:stop] while more than a chunk's worth is left; with
        `final` the rest too. Answers where the text not yet emitted starts."""
        text = self.state.pending[:stop]
        if self.measure.exact:
            pos = self._cut_chars(text, pos, content_type, out)
        else:
            while (hi := self.measure.span(text, pos, self.size)) is not None:
                start, end, hard = self._piece(text, pos, hi)
                if end > start:
                    out.append(self._make_chunk(start, end, content_type))
                pos = self._next_start(text, start, end, hard)
        if final:
            start, end = _strip_span(text, pos, stop)
            if end > start:
                out.append(self._make_chunk(start, end, content_type))
            pos = stop
        return pos

    def _cut_chars(self, text: str, pos: int, content_type: str, out: list[RawChunk]) -> int:
        """`_cut`'s loop when sizes count characters, where every length is an index
        difference: the pieces `_piece` and `_next_start` would find, and the chunks
        `_make_chunk` would make, without measuring or a call per step."""
        size, overlap, n = self.size, self.overlap, len(text)
        if n - pos <= size:
            return pos
        st, lo_step = self.state, self._lo_step
        base, seq, path = st.pending_start, st.seq, self._heading_path()
        marks = st.page_marks
        one_page = len(marks) == 1 and marks[0][0] <= pos  # no chunk below starts before pos
        page_start = page_end = marks[0][1] if one_page else None
        word_start = _WORD_START.search
        while n - pos > size:
            lo, hi = pos + lo_step, pos + size
            # `_find_split`: a paragraph break, a line break (rfind gives -1 or lo on), ...
            cut, hard = text.rfind("\n\n", lo, hi + 2), False
            if cut <= pos and (cut := text.rfind("\n", lo, hi + 1)) <= pos:
                cut, hard = _split_in_line(text, pos, lo, hi)
            start, end = pos, cut  # `_strip_span`
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
            if end > start:
                if not one_page:
                    page_start, page_end = _page_at(marks, start), _page_at(marks, end - 1)
                chunk = _new_chunk(
                    seq, text[start:end], base + start, base + end, page_start, page_end, path,
                    content_type, 0,
                )  # fmt: skip
                out.append(chunk)
                seq += 1
            # `_next_start`: the first word start in the overlap window, every length fitting
            lo = end - overlap if end - overlap > start else start + 1
            if word := word_start(text, lo, end):
                pos = word.start()
            elif hard and overlap:
                pos = lo
            else:
                pos = _skip_space(text, end)
        st.seq = seq
        return pos

    def _piece(self, text: str, pos: int, hi: int) -> tuple[int, int, bool]:
        """The next chunk's (start, end, cut hard) in text[pos:hi], checked in the unit."""
        while True:
            lo = self.measure.span(text, pos, self.min_split) or pos
            lo = min(lo, hi - 1) if hi > pos + 1 else pos
            cut, hard = _find_split(text, pos, lo, hi)
            start, end = _strip_span(text, pos, cut)
            if self.measure.exact or self.measure.length(text[start:end]) <= self.size:
                return start, end, hard
            hi = max(pos + 1, min(cut, hi) - max(1, (hi - pos) // 20))

    def _next_start(self, text: str, start: int, end: int, hard: bool) -> int:
        """Where the next chunk starts: a word boundary within the overlap window."""
        lo = max(self.measure.tail_start(text, start, end, self.overlap), start + 1)
        for word in _WORD_START.finditer(text, lo, end):
            if self._shares(text, word.start(), end):
                return word.start()
        if hard and self.overlap and self._shares(text, lo, end):
            return lo
        return _skip_space(text, end)

    def _shares(self, text: str, q: int, end: int) -> bool:
        return self.measure.exact or self.measure.length(text[q:end]) <= self.overlap

    def _drop_prefix(self, pos: int) -> None:
        st = self.state
        st.pending = st.pending[pos:]
        st.pending_start += pos
        page = None
        marks: list[tuple[int, int | None]] = []
        for rel, p in st.page_marks:
            if rel <= pos:
                page = p
            else:
                marks.append((rel - pos, p))
        st.page_marks = [(0, page), *marks]

    def _heading_path(self) -> tuple[str, ...]:
        """The heading path of chunks made now (the texts of `state.headings`)."""
        headings = self.state.headings
        if headings is not self._path_of:
            self._path_of, self._path = headings, tuple(t for _, t in headings)
        return self._path

    def _make_chunk(self, start: int, end: int, content_type: str, header: str = "") -> RawChunk:
        st = self.state
        chunk = _new_chunk(
            st.seq,
            header + st.pending[start:end],
            st.pending_start + start,
            st.pending_start + end,
            _page_at(st.page_marks, start),
            _page_at(st.page_marks, end - 1),
            self._heading_path(),
            content_type,
            len(header),
        )
        st.seq += 1
        return chunk


class _TableSplitter:
    """Cuts a pending Markdown table into parts of whole rows, each under the header.

    The first part holds the header where the table has it; each later part starts with the
    header row and separator again (`header_chars`), unless even one row does not fit under
    it. A row too long for a chunk is cut as text. Parts share no overlap.
    """

    def __init__(self, chunker: Chunker, lines: list[str]) -> None:
        self.chunker = chunker
        self.header = lines[0] + "\n" + lines[1] + "\n"
        self.lines = lines
        self.size = chunker.size
        self.length = chunker.measure.length

    def run(self, out: list[RawChunk]) -> None:
        text = self.chunker.state.pending
        starts = _line_starts(self.lines)
        header_end = starts[1] + len(self.lines[1])
        part: tuple[int, int] | None = (0, header_end)  # the header opens the first part
        first = True
        size = self.length(text[:header_end])
        for i in range(2, len(self.lines)):
            row = (starts[i], starts[i] + len(self.lines[i]))
            if part and (grown := self._grown(size, part, row, first)) is not None:
                part, size = (part[0], row[1]), grown
                continue
            if part:
                self._emit(part, first, out)
            first = False
            size = self.length(self.header + text[row[0] : row[1]])
            if size <= self.size:
                part = row
            else:  # too long under the header: the row alone, cut as text
                self.chunker._cut(row[0], row[1], "table", out, final=True)
                part = None
        if part:
            self._emit(part, first, out)

    def _grown(
        self, size: int, part: tuple[int, int], row: tuple[int, int], first: bool
    ) -> int | None:
        """The part's length with the row added, or None if it does not fit. Lengths add up
        exactly in characters; in tokens the sum is an estimate (tokens may merge across the
        line break), trusted below nine tenths of the size and counted exactly above."""
        text = self.chunker.state.pending
        estimate = size + self.length("\n" + text[row[0] : row[1]])
        exact = self.chunker.measure.exact
        if estimate <= (self.size if exact else self.size * 9 // 10):
            return estimate
        if exact:
            return None
        counted = self.length(("" if first else self.header) + text[part[0] : row[1]])
        return counted if counted <= self.size else None

    def _emit(self, part: tuple[int, int], first: bool, out: list[RawChunk]) -> None:
        start, end = part
        header = "" if first else self.header
        if self.length(header + self.chunker.state.pending[start:end]) > self.size:
            # a header too wide for the size, or an estimate that was off: cut as text
            self.chunker._cut(start, end, "table", out, final=True)
            return
        out.append(self.chunker._make_chunk(start, end, "table", header))


def _line_starts(lines: list[str]) -> list[int]:
    starts, pos = [], 0
    for line in lines:
        starts.append(pos)
        pos += len(line) + 1
    return starts


def _find_split(text: str, pos: int, lo: int, hi: int) -> tuple[int, bool]:
    """Best end of a chunk starting at pos, in [lo, hi]: (cut, whether it was cut hard)."""
    for sep in _SEPARATORS:
        idx = text.rfind(sep, lo, hi + len(sep))
        if idx >= lo and idx > pos:
            return idx, False
    return _split_in_line(text, pos, lo, hi)


def _split_in_line(text: str, pos: int, lo: int, hi: int) -> tuple[int, bool]:
    """`_find_split` past the line breaks: a sentence end, a space, else a hard cut at hi."""
    sentence = _LAST_SENTENCE_END.match(text, lo, hi)  # ends after lo, if at all
    if sentence and sentence.end() > pos:
        return sentence.end(), False
    space = _LAST_SPACE.match(text, max(lo, pos + 1), min(hi + 1, len(text)))
    if space:
        return space.end() - 1, False
    return hi, True


def _page_at(marks: list[tuple[int, int | None]], rel: int) -> int | None:
    """The page of pending[rel]: that of the last mark at or before it."""
    page = None
    for mark, p in marks:
        if mark > rel:
            break
        page = p
    return page


def _skip_space(text: str, q: int) -> int:
    while q < len(text) and text[q].isspace():
        q += 1
    return q


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def extracted_text(blocks: list[Block], text_format: TextFormat = "markdown") -> str:
    """The extracted text of a block sequence, as the chunker's offsets count it."""
    return BLOCK_SEPARATOR.join(t for b in blocks if (t := render(b, text_format)))
