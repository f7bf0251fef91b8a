"""PDF layout rules on lines placed by hand: columns, running heads, hyphens, RTL order."""

from __future__ import annotations

from knowra_worker.parsers._pdf_layout import (
    EDGE_SAMPLE_PAGES,
    Line,
    PageLines,
    drop_edges,
    join_lines,
    logical_order,
    reading_order,
    repeated_edges,
    sample_pages,
    space_scripts,
)

LEADING = 12.0


def line(text: str, left: float, width: float, top: float) -> Line:
    return Line(text, left, left + width, top - 10, top, 10.0, placed=True)


def two_column_page() -> list[Line]:
    """A title across the page, two columns of five lines drawn row by row (left, right,
    left, right...: the order a producer may write them in), and a footnote across."""
    lines = [line("Title across the page", 100, 400, 780)]
    for row in range(5):
        top = 740 - row * LEADING
        lines.append(line(f"left {row}", 72, 220, top))
        lines.append(line(f"right {row}", 310, 220, top))
    lines.append(line("A figure caption across both columns", 72, 458, 660))
    for row in range(5):
        top = 640 - row * LEADING
        lines.append(line(f"lower left {row}", 72, 220, top))
        lines.append(line(f"lower right {row}", 310, 220, top))
    return lines


def test_columns_are_read_one_after_the_other_with_full_width_lines_in_place() -> None:
    texts = [x.text for x in reading_order(two_column_page())]
    assert texts == [
        "Title across the page",
        *(f"left {row}" for row in range(5)),
        *(f"right {row}" for row in range(5)),
        "A figure caption across both columns",
        *(f"lower left {row}" for row in range(5)),
        *(f"lower right {row}" for row in range(5)),
    ]


def test_single_column_pages_keep_their_order() -> None:
    lines = [
        line(f"line {row}", 72, 450 - (row % 3) * 100, 700 - row * LEADING) for row in range(12)
    ]
    lines.insert(3, line("", 0, 0, 0))  # a blank line between paragraphs
    assert reading_order(lines) == lines


def test_a_two_column_key_value_list_is_not_taken_for_columns() -> None:
    """Short labels left and values right are a list, read row by row."""
    lines = []
    for row in range(8):
        lines.append(line(f"label {row}", 72, 60, 700 - row * LEADING))
        lines.append(line(f"value {row}", 300, 60, 700 - row * LEADING))
    lines.append(line("A wide line of body text that crosses the middle of the page", 72, 450, 500))
    assert reading_order(lines) == lines


def test_repeated_edge_lines_are_dropped_on_every_page_and_body_text_is_kept() -> None:
    pages = [
        [
            f"{n} Row and Column Access Control Support in IBM DB2 for i",
            f"Chapter {n // 4}. Title {n}",
            "© Copyright IBM Corp. 2014. All rights reserved.",
            str(n + 1),
        ]
        for n in range(10)
    ]
    repeated = repeated_edges(pages)
    page = PageLines(
        [
            line("12 Row and Column Access Control Support in IBM DB2 for i", 72, 300, 770),
            line("Row and Column Access Control Support in IBM DB2 for i", 72, 300, 400),
            line("Chapter 7. Something else entirely 12", 72, 300, 770),
            line("xiv", 300, 10, 40),
            line("Body text on the page", 72, 300, 600),
        ],
        height=792,
    )
    assert [x.text for x in drop_edges(page, repeated)] == [
        "Row and Column Access Control Support in IBM DB2 for i",  # mid-page: the body's
        "Body text on the page",
    ]


def test_a_line_on_one_sampled_page_only_is_not_running_text() -> None:
    assert repeated_edges([["Front cover"], ["Contents"], ["Preface"]]) == frozenset()


def test_the_sample_depends_on_the_page_count_only() -> None:
    assert sample_pages(5) == [0, 1, 2, 3, 4]
    big = sample_pages(1000)
    assert len(big) == EDGE_SAMPLE_PAGES and big[0] == 0 and big[-1] == 999
    assert big == sample_pages(1000)


def test_words_hyphenated_at_line_ends_are_joined_and_real_hyphens_kept() -> None:
    assert join_lines(["the infor-", "mation is well-known"]) == "the information is well-known"
    assert join_lines(["a COVID-", "19 case and Jean-", "Paul"]) == "a COVID-19 case and Jean-Paul"
    assert join_lines(["soft\u00ad", "ware", " ", "and more"]) == "software and more"
    assert join_lines(["- a dash line", "next"]) == "- a dash line next"


def test_visual_order_right_to_left_text_is_put_in_logical_order() -> None:
    """Stored as drawn, left to right: the Arabic words' letters reversed, the Latin run
    and the number as they read."""
    visual = " ".join(["ملی"[::-1], "ISO 9001", "استاندارد"[::-1], "نام"[::-1]])
    assert logical_order(visual) == "نام استاندارد ISO 9001 ملی"


def test_arabic_and_latin_words_never_touch() -> None:
    assert space_scripts("کالاDNA و PDFسند") == "کالا DNA و PDF سند"
