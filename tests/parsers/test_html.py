"""HTML: content without page chrome, structure as blocks, encodings."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowra_worker.document import Block, BlockKind

from .conftest import DATA, read_blocks, read_units

H, P, L, T, C = (BlockKind.HEADING, BlockKind.PARAGRAPH, BlockKind.LIST, BlockKind.TABLE,
                 BlockKind.CODE)  # fmt: skip


def test_structure_of_a_document() -> None:
    assert read_blocks(DATA / "example_03.html") == [
        Block(H, "Example Document", level=1),
        Block(H, "Introduction", level=2),
        Block(P, "This is the first paragraph of the introduction."),
        Block(H, "Background", level=2),
        Block(P, "Some background information here."),
        Block(
            L,
            "- First item in unordered list\n  - Nested item 1\n  - Nested item 2\n"
            "- Second item in unordered list",
        ),
        Block(
            L,
            "1. First item in ordered list\n  1. Nested ordered item 1\n"
            "  2. Nested ordered item 2\n2. Second item in ordered list",
        ),
        Block(H, "Data Table", level=2),
        Block(
            T,
            "Header 1 | Header 2 | Header 3\nRow 1, Col 1 | Row 1, Col 2 | Row 1, Col 3\n"
            "Row 2, Col 1 | Row 2, Col 2 | Row 2, Col 3\n"
            "Row 3, Col 1 | Row 3, Col 2 | Row 3, Col 3",
            rows=(
                ("Header 1", "Header 2", "Header 3"),
                *((f"Row {r}, Col 1", f"Row {r}, Col 2", f"Row {r}, Col 3") for r in (1, 2, 3)),
            ),
        ),
    ]


def test_page_header_and_footer_are_dropped() -> None:
    assert read_blocks(DATA / "fake-html-with-footer-and-header.html") == [
        Block(H, "My First Heading", level=1),
        Block(P, "My first paragraph."),
    ]


def test_pre_is_code_with_whitespace_kept() -> None:
    codes = [b.text for b in read_blocks(DATA / "html_code_snippets.html") if b.kind is C]
    assert codes[0].splitlines()[:3] == [
        "from docling.document_converter import DocumentConverter",
        "",
        'source = "https://arxiv.org/pdf/2408.09869"',
    ]


def test_legacy_and_utf16_encodings() -> None:
    cp1252 = read_blocks(DATA / "fake-html-cp1252.html")
    assert cp1252[2] == Block(P, "Some text with CP1252-specific characters:")
    assert 'Sie sagte: "Das war köstlich!"' in cp1252[3].text and "15,50 €" in cp1252[3].text
    utf16 = "\n".join(b.text for b in read_blocks(DATA / "example-steelJIS-datasheet-utf-16.html"))
    assert "JIS" in utf16 and "\ufffd" not in utf16


def test_main_content_chrome_hidden_and_inline_markup(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>T</title><style>p{}</style></head><body>"
        "<nav><a href='/'>Home</a></nav><header><p>Site banner</p></header>"
        "<main><article><header><h1>Article  title</h1></header>"
        "<p>Some <b>bold</b> and <a href='#'>linked</a>\n   text.<br>Second line.</p>"
        "<div>Loose div text<p>inner paragraph</p>tail text</div>"
        "<script>var x = 1;</script><p hidden>secret</p><p style='display: none'>gone</p>"
        "<ol start='3'><li>three</li><li>four</li></ol>"
        "<table><caption>Prices</caption><thead><tr><th>Item</th><th>Cost</th></tr></thead>"
        "<tbody><tr><td>Tea</td><td>2 &euro;</td></tr></tbody></table>"
        "</article><aside>Related</aside></main><footer>Copyright</footer></body></html>",
        encoding="utf-8",
    )
    assert read_blocks(path) == [
        Block(H, "Article title", level=1),
        Block(
            P,
            "Some bold and linked text.\nSecond line.",
            markdown="Some bold and [linked](#) text.\nSecond line.",
        ),
        Block(P, "Loose div text"),
        Block(P, "inner paragraph"),
        Block(P, "tail text"),
        Block(L, "3. three\n4. four"),
        Block(P, "Prices"),
        Block(T, "Item | Cost\nTea | 2 €", rows=(("Item", "Cost"), ("Tea", "2 €"))),
    ]


def test_meta_charset_is_honoured(tmp_path: Path) -> None:
    path = tmp_path / "latin.html"
    html = '<html><head><meta charset="windows-1252"></head><body><p>Grüße – „Zitat“</p>'
    path.write_bytes(html.encode("cp1252"))
    assert read_blocks(path) == [Block(P, "Grüße – „Zitat“")]


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ("<div>" * 5000 + "deep text" + "</div>" * 5000, Block(P, "deep text")),
        ("<p>" + "<span>" * 5000 + "deep" + "</span>" * 5000 + "</p>", Block(P, "deep")),
        ("<h2>" + "<b>" * 5000 + "title" + "</b>" * 5000 + "</h2>", Block(H, "title", level=2)),
        (
            "<table><tr><td>" * 2000 + "cell" + "</td></tr></table>" * 2000,
            Block(T, "cell", rows=(("cell",),)),
        ),
    ],
)
def test_deeply_nested_markup_does_not_overflow(
    tmp_path: Path, markup: str, expected: Block
) -> None:
    path = tmp_path / "deep.html"
    path.write_text(f"<html><body>{markup}</body></html>", encoding="utf-8")
    assert read_blocks(path) == [expected]


def test_deeply_nested_lists_keep_their_text(tmp_path: Path) -> None:
    path = tmp_path / "lists.html"
    path.write_text("<ul><li>top" + "<ul><li>" * 3000 + "bottom", encoding="utf-8")
    (block,) = read_blocks(path)
    top, bottom = block.text.splitlines()
    assert block.kind is L and top == "- top" and bottom.strip() == "- bottom"


def test_long_page_units_resume_exactly(tmp_path: Path) -> None:
    path = tmp_path / "long.html"
    paragraph = "<p>Sentence {n}.{k} " + "filler " * 40 + "</p>"
    sections = "".join(
        f"<h2>Part {n}</h2>" + "".join(paragraph.format(n=n, k=k) for k in range(20))
        for n in range(30)
    )
    path.write_text(f"<html><body>{sections}</body></html>", encoding="utf-8")
    units = read_units(path)
    assert len(units) > 4
    assert read_units(path, 3) == units[3:]


def test_element_boundaries_are_spaces_links_markdown_and_alt_text(tmp_path: Path) -> None:
    path = tmp_path / "inline.html"
    path.write_text(
        "<p>text<a href='https://duck.example/'>duck</a> and polynesian<a>settlers</a>,"
        " H<sub>2</sub>O, E=mc<sup>2</sup> <img src='a.png' alt='a  cat'>"
        "<a href='javascript:void(0)'>js</a></p>"
        "<h2>See <a href='/x'>x</a></h2><table><tr><td>a<b>b</b></td><td>|c</td></tr></table>",
        encoding="utf-8",
    )
    para, heading, table = read_blocks(path)
    assert para.text == "text duck and polynesian settlers, H 2 O, E=mc 2 a cat js"
    assert para.markdown == (
        "text [duck](https://duck.example/) and polynesian settlers, H 2 O, E=mc 2 a cat js"
    )
    assert heading == Block(H, "See x", level=2)
    assert table.rows == (("a b", "|c"),)
