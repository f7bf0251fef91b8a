"""PDF: one unit per page, paragraphs from the text layer, errors for locked or broken files;
layout (columns, running heads, outline headings, ruled tables, right-to-left text)."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from knowra_worker.document import BlockKind, Unit
from knowra_worker.errors import CorruptFile, EncryptedFile
from knowra_worker.parsers import open_document

from .conftest import DATA, glued_pairs, read_units, words

MULTI_PAGE = DATA / "multi_page.pdf"


def page_of(units: list[Unit], needle: str) -> int | None:
    for unit in units:
        for block in unit.blocks:
            if needle in block.text:
                return block.page
    return None


def test_units_are_pages_with_an_exact_total() -> None:
    with open_document(MULTI_PAGE) as doc:
        assert (doc.mime_type, doc.unit_name) == ("application/pdf", "page")
        assert (doc.units_total, doc.units_total_exact) == (5, True)
        units = list(doc.units())
    assert [unit.index for unit in units] == [0, 1, 2, 3, 4]
    for unit in units:
        assert unit.blocks
        assert {block.page for block in unit.blocks} == {unit.index + 1}


@pytest.mark.parametrize(
    ("needle", "page"),
    [
        ("The Evolution of the Word Processor", 1),
        ("Patented in 1868 by Christopher Latham Sholes", 1),
        ("The Modern Era (1990s - Present)", 2),
        ("Specialized Word Processing Tools", 3),
    ],
)
def test_text_is_found_on_its_page(needle: str, page: int) -> None:
    assert page_of(read_units(MULTI_PAGE), needle) == page


def test_lines_are_joined_into_paragraphs() -> None:
    first_page = read_units(MULTI_PAGE)[0].blocks
    texts = [block.text for block in first_page]
    assert texts[:3] == [
        "The Evolution of the Word Processor",
        "The concept of the word processor predates modern computers and has evolved "
        "through several technological milestones.",
        "Pre-Digital Era (19th - Early 20th Century)",
    ]
    bullet = next(text for text in texts if text.startswith("• IBM MT/ST"))
    assert bullet.endswith("an early example of digital text storage.")
    assert "• Wang Laboratories" not in bullet  # the next bullet is its own paragraph
    assert all("\r" not in text and "\n" not in text and text == text.strip() for text in texts)


def test_start_opens_the_page_directly() -> None:
    every = read_units(MULTI_PAGE)
    assert read_units(MULTI_PAGE, start=3) == every[3:]
    assert read_units(MULTI_PAGE, start=5) == []


def test_clearly_larger_short_lines_are_headings() -> None:
    units = read_units(DATA / "redp5110_sampled.pdf")
    preface = units[3].blocks
    assert [(b.kind, b.text, b.level) for b in preface if b.kind is BlockKind.HEADING] == [
        (BlockKind.HEADING, "Preface", 1),
        (BlockKind.HEADING, "Authors", 2),
    ]
    found = [(b.text, b.page) for u in units for b in u.blocks if b.kind is BlockKind.HEADING]
    assert ("1.1 Security fundamentals", 6) in found
    assert ("Chapter 1. Securing and protecting IBM DB2 data", 5) in found


def test_password_protected_pdf_is_encrypted() -> None:
    with pytest.raises(EncryptedFile, match="password-protected"):
        open_document(DATA / "password.pdf")


def test_truncated_pdf_is_corrupt() -> None:
    with pytest.raises(CorruptFile, match="^not a valid PDF: "):
        open_document(DATA / "truncated_multi_page.pdf")


def test_page_without_text_gives_a_unit_without_blocks(tmp_path: Path) -> None:
    path = tmp_path / "blank.pdf"
    pdf = pdfium.PdfDocument.new()
    pdf.new_page(595, 842)
    pdf.save(path)
    pdf.close()
    assert read_units(path) == [Unit(0, [])]


def test_documents_parse_the_same_from_many_threads() -> None:
    paths = [MULTI_PAGE, DATA / "redp5110_sampled.pdf"] * 4
    expected = {path: read_units(path) for path in set(paths)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(read_units, paths))
    assert results == [expected[path] for path in paths]


# --- layout read from the corpus PDFs -------------------------------------------------------

REDP = DATA / "redp5110_sampled.pdf"
RUNNING_HEADS = re.compile(
    r"© Copyright IBM Corp\. 2014|^\d+ Row and Column Access Control Support in IBM DB2 for i"
    r"|^Chapter \d+\. [^.]{1,80} \d+$"
)


def texts_of(unit: Unit) -> list[str]:
    return [block.text for block in unit.blocks]


def test_two_column_page_is_read_column_after_column() -> None:
    page = texts_of(read_units(DATA / "multi-column.pdf")[0])
    title = page.index("Dense Passage Retrieval for Open-Domain Question Answering")
    abstract = page.index("Abstract")
    introduction = page.index("1 Introduction")
    left_end = next(i for i, t in enumerate(page) if t.endswith("needs of improving retrieval."))
    right_start = next(
        i for i, t in enumerate(page) if t.startswith("Retrieval in open-domain QA is usually")
    )
    assert title < abstract < introduction < left_end < right_start
    # a word pdfium marks as hyphenated at a line end comes back whole; a compound broken
    # at its own hyphen keeps it
    whole = " ".join(page)
    assert "relies on efficient passage retrieval" in whole
    assert "implemented using dense representations" in whole
    assert "outperforms a strong Lucene-BM25 system" in whole
    assert "on a wide range of open-domain QA datasets" in whole


def test_running_headers_and_footers_are_gone_from_every_page() -> None:
    units = read_units(REDP)
    for unit in units:
        assert not [text for text in texts_of(unit) if RUNNING_HEADS.search(text)], unit.index
    # the same words in the body of a page stay
    assert page_of(units, "Row and Column Access Control") == 1
    assert "Chapter 1. Securing and protecting IBM DB2 data" in texts_of(units[4])  # a title


def test_running_heads_are_decided_alike_whatever_page_a_run_starts_at() -> None:
    every = read_units(REDP)
    assert read_units(REDP, start=9) == every[9:]


def _build(path: Path, source: Path, pages: list[int]) -> None:
    built, src = pdfium.PdfDocument.new(), pdfium.PdfDocument(source)
    built.import_pages(src, pages)
    built.save(path)
    built.close()
    src.close()


def test_a_file_replaced_at_its_path_gets_its_own_running_heads(tmp_path: Path) -> None:
    """The running heads a process keeps per (long) document are keyed by the file's size
    and modification time: another file at the same path is looked at afresh. Here REDP
    twice over, then one page of REDP alone, where nothing recurs, so its running heads
    stay text."""
    path = tmp_path / "doc.pdf"
    _build(path, REDP, list(range(18)) * 2)
    for unit in read_units(path, start=30):  # REDP's running heads now known
        assert not [text for text in texts_of(unit) if RUNNING_HEADS.search(text)]
    _build(path, REDP, [4])
    [unit] = read_units(path)
    assert [text for text in texts_of(unit) if RUNNING_HEADS.search(text)]


def test_a_long_documents_sample_is_read_once_per_process_whatever_is_read_between(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A split document's parts reach a worker process between other, short, documents:
    those never push the long one's facts out, so its sampled pages are read once."""
    from knowra_worker.parsers import pdf as pdf_parser

    long = tmp_path / "long.pdf"
    _build(long, REDP, list(range(18)) * 3)
    expected = read_units(long)
    pdf_parser.forget_documents()
    real, reads = pdf_parser._read_page, []

    def counted(*args: object) -> object:
        reads.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(pdf_parser, "_read_page", counted)
    assert read_units(long, start=36) == expected[36:]
    for n in range(2 * pdf_parser._FACTS_KEPT):  # short documents after the first part
        _build(tmp_path / f"short-{n}.pdf", REDP, [n])
        assert len(read_units(tmp_path / f"short-{n}.pdf")) == 1
    reads.clear()
    assert read_units(long, start=36) == expected[36:]
    sampled = set(pdf_parser.sample_pages(54))
    assert len(reads) == len(set(range(36, 54)) - sampled)  # the sample is not read again


def test_facts_handed_over_read_every_page_alike_and_unreadable_ones_are_ignored(
    tmp_path: Path,
) -> None:
    """A part's worker given the document's facts reads its pages as the worker that
    decided them; facts it cannot read are ignored, not half taken."""
    from knowra_worker.parsers import pdf as pdf_parser

    path = tmp_path / "long.pdf"
    _build(path, REDP, list(range(18)) * 2)
    expected = read_units(path)
    with pdf_parser.PdfDocument(path, "application/pdf") as doc:
        facts = doc.shared_facts()
    assert "row and column access control" in facts  # a running head decided
    for given in (facts, "not JSON", '{"v": 99}', '{"v": 1, "edges": 3}'):
        pdf_parser.forget_documents()
        with pdf_parser.PdfDocument(path, "application/pdf") as doc:
            doc.adopt_facts(given)
            assert list(doc.units(start=20)) == expected[20:], given


def test_a_read_error_while_sampling_running_heads_is_raised_not_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A moment's I/O trouble on a sampled page fails the read (transient: the task is
    retried); the running heads are not decided without that page, so the retry reads the
    document as an uninterrupted run does."""
    from knowra_worker.errors import SourceIOError
    from knowra_worker.parsers import pdf as pdf_parser

    expected = read_units(REDP)
    pdf_parser.forget_documents()
    real, calls = pdf_parser._read_page, []

    def flaky(*args: object) -> object:
        calls.append(1)
        if len(calls) == 3:
            raise OSError(5, "Input/output error")
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(pdf_parser, "_read_page", flaky)
    with pytest.raises(SourceIOError):
        read_units(REDP)
    assert read_units(REDP) == expected


def _outline_pdf(title: str) -> bytes:
    """One blank page and an outline whose one bookmark (to the page) is its own next
    sibling: a cycle, as broken files have."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /Outlines 4 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
        b"<< /Type /Outlines /First 5 0 R /Last 5 0 R /Count 1 >>",
        b"<< /Title (%s) /Parent 4 0 R /Dest [3 0 R /Fit] /Next 5 0 R >>" % title.encode(),
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def test_an_outline_with_a_cycle_and_a_long_title_is_read_once_and_whole() -> None:
    from knowra_worker.parsers.pdf import _outline

    title = "Chapter One " + "x" * 700  # longer than the title buffer
    pdf = pdfium.PdfDocument(_outline_pdf(title))
    try:
        assert _outline(pdf) == {0: ((1, title.casefold()),)}
    finally:
        pdf.close()


def test_headings_take_their_levels_from_the_outline() -> None:
    with open_document(DATA / "DA-619p.pdf") as doc:
        page_6 = next(doc.units(start=5))
    found = [(b.level, b.text) for b in page_6.blocks if b.kind is BlockKind.HEADING]
    assert found[:4] == [
        (2, "MAIN GAME"),
        (3, "CREATURES"),
        (4, "Abomination"),
        (4, "Arcane Horror"),
    ]


def test_ruled_table_comes_as_rows_and_not_as_paragraphs() -> None:
    eighth = read_units(REDP, start=7)[0]
    tables = [block for block in eighth.blocks if block.kind is BlockKind.TABLE]
    assert len(tables) == 1
    rows = tables[0].rows
    assert rows[0] == ("Column name", "Data type", "Description")
    assert rows[1] == ("FUNCTION_ID", "VARCHAR(30)", "ID of the function.")
    assert rows[2][:2] == ("USER_NAME", "VARCHAR(10)")
    assert tables[0].text.splitlines()[1] == "FUNCTION_ID | VARCHAR(30) | ID of the function."
    paragraphs = [b.text for b in eighth.blocks if b.kind is not BlockKind.TABLE]
    assert not [text for text in paragraphs if "FUNCTION_ID" in text or "VARCHAR" in text]


def test_cells_of_a_permission_table_keep_their_columns() -> None:
    ninth = read_units(REDP, start=8)[0]
    table = next(block for block in ninth.blocks if block.kind is BlockKind.TABLE)
    assert table.rows[0] == (
        "User action",
        "*JOBCTL",
        "QIBM_DB_SECADM",
        "QIBM_DB_SQLADM",
        "QIBM_DB_SYSMON",
        "No Authority",
    )
    assert table.rows[1] == ("SET CURRENT DEGREE (SQL statement)", "X", "", "X", "", "")


def test_right_to_left_text_comes_in_logical_order() -> None:
    blocks = [b for unit in read_units(DATA / "right_to_left_03.pdf") for b in unit.blocks]
    texts = [b.text for b in blocks]
    assert "-2-5 استاندارد کالا" in texts
    assert "اميدنامه پذيرش در بازار اصلی - کالای داخلی" in texts
    assert not [text for text in texts if "کاال" in text]  # lam-alef given alef first
    cells = [cell for b in blocks for row in b.rows for cell in row]
    assert "تاريخ ارائه مدارک" in cells
    second = " ".join(b.text for u in read_units(DATA / "right_to_left_02.pdf") for b in u.blocks)
    assert "الأولويوخت" in second and "الإنسخن" in second
    assert "األولويوخت" not in second and "اإلنسخن" not in second


# Words the ground truth splits where the PDF draws one word without a gap (a lam-alef
# ligature then the rest of the word, in a font without spacing): not glued here.
ONE_WORD_SPLIT_IN_TRUTH = {"الأهودا"}


@pytest.mark.parametrize(
    "name",
    ["multi_page.pdf", "redp5110_sampled.pdf", "right_to_left_02.pdf", "right_to_left_03.pdf"],
)
def test_no_two_words_of_the_ground_truth_are_glued(name: str) -> None:
    """Two neighbouring words of the ground truth never come out as one token (a reference
    mark glued to its word was `center1`)."""
    truth = words((DATA / f"{name}.md").read_text(encoding="utf-8"))
    ours = words(" ".join(b.text for u in read_units(DATA / name) for b in u.blocks))
    assert not set(glued_pairs(truth, ours)) - ONE_WORD_SPLIT_IN_TRUTH


def test_a_table_the_finder_cannot_read_is_a_warning_and_its_text_stays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from knowra_worker.parsers import pdf as pdf_parser

    def broken(*_args: object) -> list[object]:
        raise ValueError("a degenerate grid")

    monkeypatch.setattr(pdf_parser, "find_tables", broken)
    eighth = read_units(REDP, start=7)[0]
    assert eighth.warnings == ["page 8: its ruled tables could not be read; their text is kept"]
    assert not [b for b in eighth.blocks if b.kind is BlockKind.TABLE]
    assert any("FUNCTION_ID VARCHAR(30) ID of the function." in b.text for b in eighth.blocks)


def test_bold_headings_take_their_section_depth_and_partly_ruled_tables_lose_nothing() -> None:
    """A LaTeX page: bold section titles at body size (a TeX font reporting no weight), a
    table whose outer columns the rules leave open."""
    path = DATA / "2305.03393v1-pg9.pdf"
    [page] = read_units(path)
    found = [(b.level, b.text) for b in page.blocks if b.kind is BlockKind.HEADING]
    assert found == [(2, "5.1 Hyper Parameter Optimization"), (2, "5.2 Quantitative Results")]
    [table] = [b for b in page.blocks if b.kind is BlockKind.TABLE]
    assert table.rows[0][1:3] == ("Language", "TEDs")
    assert table.rows[2][1:3] == ("OTSL HTML", "0.965 0.969")
    pdf = pdfium.PdfDocument(path)
    raw = pdf[0].get_textpage().get_text_range().replace("\ufffe", "")
    pdf.close()
    ours = " ".join(b.text for b in page.blocks)
    assert sorted(re.sub(r"[\W_]+", "", ours)) == sorted(re.sub(r"[\W_]+", "", raw))


def test_line_spans_end_lines_at_crlf_and_at_a_lone_cr_or_lf() -> None:
    """The CRLF fast path and the general one agree with a split at every line break."""
    import random
    import re

    from knowra_worker.parsers.pdf import _line_spans

    rng = random.Random(5)
    for _ in range(2000):
        text = "".join(rng.choice(["a", "bc", " ", "\r\n", "\r\n", "\r", "\n"]) for _ in range(12))
        spans = _line_spans(text)
        assert [text[start:end] for start, end in spans] == re.split(r"\r\n|\r|\n", text), text
