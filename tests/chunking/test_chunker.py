"""The chunker's contract: size bound, overlap, exact offsets, nothing lost, resumable."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knowra_worker.chunking import Chunker, ChunkerState, RawChunk, extracted_text
from knowra_worker.document import Block, BlockKind, TextFormat, fenced
from knowra_worker.tokens import token_counter

WORDS = ["alpha", "beta", "gamma", "delta.", "epsilon,", "zeta!", "eta", "théta", "中文句子。"]


def run(
    blocks: list[Block],
    size: int,
    overlap: int,
    cuts: set[int] = frozenset(),
    text_format: TextFormat = "plain",
    tokenizer: str | None = None,
) -> list[RawChunk]:
    """Chunk blocks, rebuilding the chunker from its JSON state before each index in cuts."""
    options: dict[str, Any] = {"text_format": text_format, "tokenizer": tokenizer}
    chunker = Chunker(size, overlap, **options)
    out: list[RawChunk] = []
    for i, block in enumerate(blocks):
        if i in cuts:
            saved = json.loads(json.dumps(chunker.state.to_dict()))
            chunker = Chunker(size, overlap, ChunkerState.from_dict(saved), **options)
        out.extend(chunker.feed(block))
    return out + chunker.finish()


def check_contract(
    blocks: list[Block],
    chunks: list[RawChunk],
    size: int,
    overlap: int,
    text_format: TextFormat = "plain",
    tokenizer: str | None = None,
) -> None:
    """Sizes, offsets, nothing lost, overlap bounds; a repeated table header is the header
    of the table the chunk's rows belong to, and is the only text outside the offsets."""
    length = token_counter(tokenizer).count if tokenizer else len
    text = extracted_text(blocks, text_format)
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    covered = bytearray(len(text))
    for c in chunks:
        assert 0 < length(c.text) <= size and c.text.strip() == c.text
        assert text[c.char_start : c.char_end] == c.text[c.header_chars :]
        if c.header_chars:
            check_repeated_header(text, c)
        covered[c.char_start : c.char_end] = b"\x01" * (c.char_end - c.char_start)
    lost = [i for i, ch in enumerate(text) if not covered[i] and not ch.isspace()]
    assert not lost, f"characters in no chunk, first at {lost[0]}: {text[lost[0] : lost[0] + 20]!r}"
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.char_start > a.char_start
        shared = text[b.char_start : a.char_end] if a.char_end > b.char_start else ""
        assert length(shared) <= overlap


def check_repeated_header(text: str, chunk: RawChunk) -> None:
    """The repeated header is the first two lines of the table holding the chunk's rows."""
    assert chunk.content_type == "table" and text[chunk.char_start - 1] == "\n"
    table_start = text.rfind("\n\n", 0, chunk.char_start) + 2  # 0 for the first block
    table_start = table_start if table_start > 1 else 0
    header = chunk.text[: chunk.header_chars]
    assert text.startswith(header, table_start), (header, text[table_start : table_start + 80])
    assert header.count("\n") == 2 and header.split("\n")[1].startswith("| ---")


word_st = st.sampled_from(WORDS + ["\n", "x" * 70, "a|b", "[link](http://x.org/a)"])
cell_st = st.lists(word_st, min_size=0, max_size=12).map(" ".join)


@st.composite
def block_st(draw: st.DrawFn) -> Block:
    """Any block kind; tables with rows (some of them long), some blocks with Markdown."""
    kind = draw(st.sampled_from(list(BlockKind)))
    text = " ".join(draw(st.lists(word_st, min_size=0, max_size=120)))
    rows: tuple[tuple[str, ...], ...] = ()
    if kind is BlockKind.TABLE and draw(st.booleans()):
        width = draw(st.integers(1, 4))
        cells = st.lists(cell_st, min_size=1, max_size=width).map(tuple)
        rows = tuple(draw(st.lists(cells, min_size=1, max_size=30)))
        text = "\n".join(" | ".join(row) for row in rows) or text
    markdown = draw(st.sampled_from(["", f"**{text}**"])) if kind is BlockKind.PARAGRAPH else ""
    return Block(
        kind, text, page=draw(st.integers(1, 20)), level=draw(st.integers(0, 4)),
        markdown=markdown if text.strip() else "", rows=rows,
    )  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    blocks=st.lists(block_st(), min_size=1, max_size=40),
    size=st.integers(20, 400),
    overlap_ratio=st.floats(0, 0.95),
    text_format=st.sampled_from(["markdown", "plain"]),
    data=st.data(),
)
def test_contract_and_resume_at_any_block(blocks, size, overlap_ratio, text_format, data) -> None:
    overlap = min(int(size * overlap_ratio), size - 1)
    chunks = run(blocks, size, overlap, text_format=text_format)
    check_contract(blocks, chunks, size, overlap, text_format)
    cuts = data.draw(st.sets(st.integers(0, len(blocks) - 1)))
    assert run(blocks, size, overlap, cuts, text_format) == chunks


@settings(max_examples=40, deadline=None)
@given(
    blocks=st.lists(block_st(), min_size=1, max_size=15),
    size=st.integers(8, 120),
    overlap_ratio=st.floats(0, 0.9),
    tokenizer=st.sampled_from(["cl100k_base", "o200k_base"]),
    data=st.data(),
)
def test_token_lengths_keep_the_contract_and_resume(
    blocks, size, overlap_ratio, tokenizer, data
) -> None:
    overlap = min(int(size * overlap_ratio), size - 1)
    chunks = run(blocks, size, overlap, tokenizer=tokenizer, text_format="markdown")
    check_contract(blocks, chunks, size, overlap, "markdown", tokenizer)
    cuts = data.draw(st.sets(st.integers(0, len(blocks) - 1)))
    assert run(blocks, size, overlap, cuts, "markdown", tokenizer) == chunks


def paragraphs(n: int, words: int = 60) -> list[Block]:
    return [
        Block(BlockKind.PARAGRAPH, " ".join(f"w{i}x{j}" for j in range(words)), page=i // 3 + 1)
        for i in range(n)
    ]


def test_overlap_is_used_inside_a_section() -> None:
    blocks = paragraphs(30)
    chunks = run(blocks, 300, 80)
    overlaps = [a.char_end - b.char_start for a, b in zip(chunks, chunks[1:], strict=False)]
    assert all(0 <= o <= 80 for o in overlaps)
    assert sum(o > 0 for o in overlaps) >= len(overlaps) // 2
    check_contract(blocks, chunks, 300, 80)


def test_small_paragraphs_are_packed_and_split_at_paragraph_breaks() -> None:
    blocks = [
        Block(BlockKind.PARAGRAPH, f"Paragraph number {i} says something.") for i in range(40)
    ]
    chunks = run(blocks, 200, 0)
    assert all(c.text.startswith("Paragraph number") for c in chunks)
    assert all(c.text.endswith("something.") for c in chunks)
    assert max(len(c.text) for c in chunks) > 150


def test_headings_start_sections_and_form_the_path() -> None:
    blocks = [
        Block(BlockKind.HEADING, "Guide", level=1),
        Block(BlockKind.HEADING, "Install", level=2),
        Block(BlockKind.PARAGRAPH, "Run the installer."),
        Block(BlockKind.HEADING, "Use", level=2),
        Block(BlockKind.PARAGRAPH, "Open the app."),
        Block(BlockKind.HEADING, "Appendix", level=1),
        Block(BlockKind.PARAGRAPH, "Nothing here."),
    ]
    chunks = run(blocks, 1000, 100)
    assert [c.text for c in chunks] == [
        "Guide\n\nInstall\n\nRun the installer.",
        "Use\n\nOpen the app.",
        "Appendix\n\nNothing here.",
    ]
    assert [c.headings for c in chunks] == [("Guide", "Install"), ("Guide", "Use"), ("Appendix",)]


def test_tables_are_their_own_chunks_split_at_rows() -> None:
    rows = "\n".join(f"r{i} | value {i} | more {i}" for i in range(40))
    blocks = [
        Block(BlockKind.PARAGRAPH, "Before."),
        Block(BlockKind.TABLE, rows),
        Block(BlockKind.PARAGRAPH, "After."),
    ]
    chunks = run(blocks, 200, 0)
    kinds = [c.content_type for c in chunks]
    assert kinds[0] == "text" and kinds[-1] == "text" and set(kinds[1:-1]) == {"table"}
    assert all(c.text.startswith("r") and c.text[-1].isdigit() for c in chunks[1:-1])


def test_long_word_is_cut_hard() -> None:
    blocks = [Block(BlockKind.PARAGRAPH, "a" * 1000)]
    chunks = run(blocks, 300, 50)
    assert [len(c.text) for c in chunks][:3] == [300, 300, 300]
    check_contract(blocks, chunks, 300, 50)


def test_pages_follow_the_text() -> None:
    blocks = paragraphs(12, words=40)
    chunks = run(blocks, 500, 0)
    text = extracted_text(blocks)
    for c in chunks:
        first_para = text[: c.char_start].count("\n\n")
        last_para = text[: c.char_end].count("\n\n")
        assert (c.page_start, c.page_end) == (first_para // 3 + 1, last_para // 3 + 1)


@pytest.mark.parametrize(("size", "overlap"), [(10, 10), (10, 11), (0, 0)])
def test_bad_parameters_are_refused(size: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        Chunker(size, overlap)


def test_markdown_renders_every_block_kind() -> None:
    blocks = [
        Block(BlockKind.HEADING, "Report", level=0),
        Block(BlockKind.HEADING, "Scope", level=2),
        Block(BlockKind.PARAGRAPH, "See the site.", markdown="See [the site](https://a.org)."),
        Block(BlockKind.LIST, "- one\n1. two"),
        Block(BlockKind.CODE, "x = 1\ny = `2`"),
        Block(BlockKind.CODE, "print()", markdown=fenced("print()", "python")),
        Block(BlockKind.TABLE, "a | b\n1 | x|y", rows=(("a", "b"), ("1", "x|y\nz"))),
    ]
    chunk, table = run(blocks, 1000, 0, text_format="markdown")
    assert chunk.text == (
        "# Report\n\n## Scope\n\nSee [the site](https://a.org).\n\n- one\n1. two\n\n"
        "```\nx = 1\ny = `2`\n```\n\n```python\nprint()\n```"
    )
    assert table.text == "| a | b |\n| --- | --- |\n| 1 | x\\|y z |"
    assert table.content_type == "table"
    plain = run(blocks, 1000, 0, text_format="plain")
    assert plain[0].text.startswith("Report\n\nScope\n\nSee the site.\n\n- one")
    assert plain[-1].text == "a | b\n1 | x|y"


def test_a_long_table_is_split_between_rows_under_its_header() -> None:
    rows = (("Name", "Value"),) + tuple((f"row {i}", f"value {i}") for i in range(40))
    blocks = [
        Block(BlockKind.PARAGRAPH, "Before."),
        Block(BlockKind.TABLE, "unused", rows=rows),
        Block(BlockKind.PARAGRAPH, "After."),
    ]
    chunks = run(blocks, 150, 20, text_format="markdown")
    check_contract(blocks, chunks, 150, 20, "markdown")
    parts = chunks[1:-1]
    assert len(parts) > 3 and {c.content_type for c in parts} == {"table"}
    header = "| Name | Value |\n| --- | --- |\n"
    assert all(c.text.startswith(header) for c in parts)
    assert parts[0].header_chars == 0 and all(c.header_chars == len(header) for c in parts[1:])
    body = "".join(c.text[len(header) :] + "\n" for c in parts)
    assert body == "".join(f"| row {i} | value {i} |\n" for i in range(40))


def test_a_row_too_long_for_a_chunk_is_cut_as_text() -> None:
    rows = (("h",), ("short",), (" ".join(["word"] * 60),), ("tail",))
    blocks = [Block(BlockKind.TABLE, "unused", rows=rows)]
    chunks = run(blocks, 80, 10, text_format="markdown")
    check_contract(blocks, chunks, 80, 10, "markdown")
    assert chunks[0].text == "| h |\n| --- |\n| short |"
    assert chunks[-1].text == "| h |\n| --- |\n| tail |" and chunks[-1].header_chars == 14
    assert all(c.header_chars == 0 and "| ---" not in c.text for c in chunks[1:-1])


@pytest.mark.parametrize("tokenizer", ["cl100k_base", "o200k_base"])
def test_sizes_count_tokens(tokenizer: str) -> None:
    blocks = paragraphs(20, words=50)
    chunks = run(blocks, 100, 20, tokenizer=tokenizer)
    count = token_counter(tokenizer).count
    check_contract(blocks, chunks, 100, 20, "plain", tokenizer)
    assert max(count(c.text) for c in chunks) > 80  # filled in tokens, not characters
    assert max(len(c.text) for c in chunks) > 100


def test_tokens_of_the_shipped_encodings() -> None:
    """Known counts: the encodings are the published ones, loaded without any network."""
    assert token_counter("cl100k_base").count("hello world") == 2
    assert token_counter("o200k_base").count("hello world") == 2
    assert token_counter("cl100k_base").count("<|endoftext|>") > 1  # plain text, not special


def run_measured(blocks: list[Block], size: int, overlap: int, text_format: TextFormat) -> list:
    """Chunk in characters through the measuring path (the one tokens take), not the
    character path that compares indices: the two must cut exactly alike."""
    chunker = Chunker(size, overlap, text_format=text_format)
    chunker.measure.exact = False  # no tokenizer: lengths are still len(), measured
    return chunker.feed_all(blocks) + chunker.finish()


@settings(max_examples=150, deadline=None)
@given(
    blocks=st.lists(block_st(), min_size=1, max_size=40),
    size=st.integers(1, 400),
    overlap_ratio=st.floats(0, 0.99),
    text_format=st.sampled_from(["markdown", "plain"]),
)
def test_character_path_cuts_as_measuring_does(blocks, size, overlap_ratio, text_format) -> None:
    overlap = min(int(size * overlap_ratio), size - 1)
    chunks = run(blocks, size, overlap, text_format=text_format)
    assert run_measured(blocks, size, overlap, text_format) == chunks


GUIDE = [
    Block(BlockKind.HEADING, "Guide", level=1, page=1),
    Block(
        BlockKind.PARAGRAPH,
        "First sentence here. Second one follows; then a clause: and more words to fill",
        page=1,
    ),
    Block(BlockKind.PARAGRAPH, "line one\nline two is longer\nline three", page=2),
    Block(BlockKind.PARAGRAPH, "x" * 75 + " tail words", page=2),
    Block(BlockKind.PARAGRAPH, "中文句子。第二句！第三句", page=3),
]


@pytest.mark.parametrize(
    ("size", "overlap", "expected"),
    [
        (
            40,
            10,
            [
                ("Guide\n\nFirst sentence here.", 0, 27, 1, 1),
                ("here. Second one follows;", 22, 47, 1, 1),
                ("follows; then a clause:", 39, 62, 1, 1),
                ("a clause: and more words to fill", 53, 85, 1, 1),
                ("to fill\n\nline one\nline two is longer", 78, 114, 1, 2),
                ("is longer\nline three", 105, 125, 2, 2),
                ("line three\n\n" + "x" * 28, 115, 155, 2, 2),
                ("x" * 40, 145, 185, 2, 2),
                ("x" * 27 + " tail words", 175, 213, 2, 2),
                ("tail words\n\n中文句子。第二句！第三句", 203, 227, 2, 3),
            ],
        ),
        (
            25,
            0,
            [
                ("Guide\n\nFirst sentence", 0, 21, 1, 1),
                ("here. Second one follows;", 22, 47, 1, 1),
                ("then a clause:", 48, 62, 1, 1),
                ("and more words to fill", 63, 85, 1, 1),
                ("line one", 87, 95, 2, 2),
                ("line two is longer", 96, 114, 2, 2),
                ("line three", 115, 125, 2, 2),
                ("x" * 25, 127, 152, 2, 2),
                ("x" * 25, 152, 177, 2, 2),
                ("x" * 25, 177, 202, 2, 2),
                ("tail words\n\n中文句子。第二句！第三句", 203, 227, 2, 3),
            ],
        ),
    ],
)
def test_known_cuts(size: int, overlap: int, expected: list[tuple[Any, ...]]) -> None:
    """Cuts at sentence ends, clauses, line breaks, spaces and hard in a long word, with the
    overlap on word boundaries and pages: exactly as chunks already stored were cut."""
    for cuts in (set(), {2, 4}):
        chunks = run(GUIDE, size, overlap, cuts)
        got = [(c.text, c.char_start, c.char_end, c.page_start, c.page_end) for c in chunks]
        assert got == expected
        assert {c.headings for c in chunks} == {("Guide",)}
    assert run_measured(GUIDE, size, overlap, "plain") == run(GUIDE, size, overlap)


def test_chunks_made_in_the_loop_are_ordinary_raw_chunks() -> None:
    """The chunker's own constructor (slot setters) gives what RawChunk(...) gives."""
    from knowra_worker.chunking import _new_chunk

    fields = (3, "text", 10, 14, 1, 2, ("A", "B"), "table", 5)
    made, plain = _new_chunk(*fields), RawChunk(*fields)
    assert made == plain and hash(made) == hash(plain) and repr(made) == repr(plain)
    with pytest.raises(AttributeError):
        made.text = "other"  # type: ignore[misc]
