"""The chunker: blocks in, size-bounded overlapping chunks out, resumable at any block.

The document's *extracted text* is the stripped text of every non-blank block, joined by
one blank line ("\\n\\n"). Every chunk is an exact slice of that text:
``text == extracted[char_start:char_end]``.

Rules (DESIGN.md "Chunks"):
- no chunk is longer than ``chunk_size`` characters;
- a heading starts a new section: the text before it is flushed, and no overlap crosses it.
  Headings directly under one another (no body between, each deeper) stay together. A
  heading's level places it in the heading path: 0 is a document title, 1..9 headings;
- a table is chunked on its own (``content_type`` "table"), preferring row boundaries;
- inside a section, consecutive chunks share up to ``chunk_overlap`` characters, starting on
  a word boundary;
- split points prefer, in order: paragraph breaks, line breaks, sentence ends, spaces; a
  word longer than ``chunk_size`` is cut hard.

Emission depends only on the text seen so far, never on where unit boundaries fall, and
all carry-over lives in :class:`ChunkerState`, a JSON-serializable dataclass: a chunker
rebuilt from a saved state produces exactly what the original would have.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from knowra_worker.document import Block, BlockKind

BLOCK_SEPARATOR = "\n\n"
_SENTENCE_END = re.compile(r"[.!?;:。！？；](?=\s)|[。！？；]")
_SEPARATORS = ("\n\n", "\n")


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
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChunkerState:
        state = cls(**data)
        state.page_marks = [(int(r), p) for r, p in state.page_marks]
        state.headings = [(int(lv), str(t)) for lv, t in state.headings]
        return state


class Chunker:
    def __init__(
        self, chunk_size: int, chunk_overlap: int, state: ChunkerState | None = None
    ) -> None:
        if chunk_size < 1 or not 0 <= chunk_overlap < chunk_size:
            raise ValueError("need chunk_size >= 1 and 0 <= chunk_overlap < chunk_size")
        self.size = chunk_size
        self.overlap = chunk_overlap
        self.min_split = max(chunk_size // 3, chunk_overlap + 1)
        self.state = state or ChunkerState()

    # -- feeding ------------------------------------------------------------------------

    def feed(self, block: Block) -> list[RawChunk]:
        text = block.text.strip()
        if not text:
            return []
        out: list[RawChunk] = []
        if block.kind is BlockKind.HEADING:
            self._open_heading(block.level, text, out)
        elif block.kind is BlockKind.TABLE:
            self._flush(out)
            self._append(text, block.page)
            self._flush(out, content_type="table")
            return out
        self._append(text, block.page)
        if block.kind is not BlockKind.HEADING:
            self.state.pending_body = True
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

    def _append(self, text: str, page: int | None) -> None:
        st = self.state
        sep = BLOCK_SEPARATOR if st.doc_offset > 0 else ""
        block_start = st.doc_offset + len(sep)
        st.doc_offset = block_start + len(text)
        if st.pending:
            st.pending += sep
        else:
            st.pending_start = block_start
            st.page_marks = []
        if not st.page_marks or st.page_marks[-1][1] != page:
            st.page_marks.append((len(st.pending), page))
        st.pending += text

    def _flush(self, out: list[RawChunk], content_type: str = "text") -> None:
        """Emit everything pending: the open section (or table) ends here."""
        self._emit_full(out, content_type)
        st = self.state
        start, end = _strip_span(st.pending, 0, len(st.pending))
        if end > start:
            out.append(self._make_chunk(start, end, content_type))
        st.pending, st.page_marks = "", []
        st.pending_body, st.pending_heading_level = False, -1

    # -- splitting ------------------------------------------------------------------------

    def _emit_full(self, out: list[RawChunk], content_type: str = "text") -> None:
        """Emit chunks while more than one chunk's worth of text is pending."""
        st = self.state
        pos = 0
        while len(st.pending) - pos > self.size:
            cut, hard = self._find_split(st.pending, pos)
            start, end = _strip_span(st.pending, pos, cut)
            if end > start:
                out.append(self._make_chunk(start, end, content_type))
            pos = self._next_start(st.pending, start, end, hard)
        if pos:
            self._drop_prefix(pos)

    def _find_split(self, text: str, pos: int) -> tuple[int, bool]:
        """Best end of a chunk starting at pos: (cut, whether it was cut hard)."""
        lo, hi = pos + self.min_split, pos + self.size
        for sep in _SEPARATORS:
            idx = text.rfind(sep, lo, hi + len(sep))
            if idx >= lo:
                return idx, False
        best = -1
        for m in _SENTENCE_END.finditer(text, lo, hi):
            best = m.end()
        if best >= lo:
            return best, False
        for idx in range(hi, lo - 1, -1):
            if text[idx].isspace():
                return idx, False
        return hi, True

    def _next_start(self, text: str, start: int, end: int, hard: bool) -> int:
        """Where the next chunk starts: a word boundary within the overlap window."""
        lo = max(end - self.overlap, start + 1)
        for q in range(lo, end):
            if not text[q].isspace() and text[q - 1].isspace():
                return q
        if hard and self.overlap:
            return lo
        q = end
        while q < len(text) and text[q].isspace():
            q += 1
        return q

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

    def _page_at(self, rel: int) -> int | None:
        page = None
        for mark, p in self.state.page_marks:
            if mark > rel:
                break
            page = p
        return page

    def _make_chunk(self, start: int, end: int, content_type: str) -> RawChunk:
        st = self.state
        chunk = RawChunk(
            seq=st.seq,
            text=st.pending[start:end],
            char_start=st.pending_start + start,
            char_end=st.pending_start + end,
            page_start=self._page_at(start),
            page_end=self._page_at(end - 1),
            headings=tuple(t for _, t in st.headings),
            content_type=content_type,
        )
        st.seq += 1
        return chunk


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def extracted_text(blocks: list[Block]) -> str:
    """The extracted text of a block sequence, as the chunker's offsets count it."""
    return BLOCK_SEPARATOR.join(t for b in blocks if (t := b.text.strip()))
