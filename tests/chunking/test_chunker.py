"""The chunker's contract: size bound, overlap, exact offsets, nothing lost, resumable."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knowra_worker.chunking import Chunker, ChunkerState, RawChunk, extracted_text
from knowra_worker.document import Block, BlockKind

WORDS = ["alpha", "beta", "gamma", "delta.", "epsilon,", "zeta!", "eta", "théta", "中文句子。"]


def run(
    blocks: list[Block], size: int, overlap: int, cuts: set[int] = frozenset()
) -> list[RawChunk]:
    """Chunk blocks, rebuilding the chunker from its JSON state before each index in cuts."""
    chunker = Chunker(size, overlap)
    out: list[RawChunk] = []
    for i, block in enumerate(blocks):
        if i in cuts:
            saved = json.loads(json.dumps(chunker.state.to_dict()))
            chunker = Chunker(size, overlap, ChunkerState.from_dict(saved))
        out.extend(chunker.feed(block))
    return out + chunker.finish()


def check_contract(blocks: list[Block], chunks: list[RawChunk], size: int, overlap: int) -> None:
    text = extracted_text(blocks)
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    covered = bytearray(len(text))
    for c in chunks:
        assert 0 < len(c.text) <= size
        assert text[c.char_start : c.char_end] == c.text
        covered[c.char_start : c.char_end] = b"\x01" * (c.char_end - c.char_start)
    lost = [i for i, ch in enumerate(text) if not covered[i] and not ch.isspace()]
    assert not lost, f"characters in no chunk, first at {lost[0]}: {text[lost[0] : lost[0] + 20]!r}"
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.char_start > a.char_start
        assert a.char_end - b.char_start <= overlap


block_st = st.builds(
    Block,
    kind=st.sampled_from(list(BlockKind)),
    text=st.lists(st.sampled_from(WORDS + ["\n", "x" * 70]), min_size=0, max_size=120).map(
        " ".join
    ),
    page=st.integers(1, 20),
    level=st.integers(0, 4),
)


@settings(max_examples=150, deadline=None)
@given(
    blocks=st.lists(block_st, min_size=1, max_size=40),
    size=st.integers(20, 400),
    overlap_ratio=st.floats(0, 0.95),
    data=st.data(),
)
def test_contract_and_resume_at_any_block(blocks, size, overlap_ratio, data) -> None:
    overlap = min(int(size * overlap_ratio), size - 1)
    chunks = run(blocks, size, overlap)
    check_contract(blocks, chunks, size, overlap)
    cuts = data.draw(st.sets(st.integers(0, len(blocks) - 1)))
    assert run(blocks, size, overlap, cuts) == chunks


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
