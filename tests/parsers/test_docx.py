"""DOCX: body in document order, headings from styles, lists merged, tables as rows."""

from __future__ import annotations

import zipfile
from pathlib import Path

import docx
import pytest

from knowra_worker.document import Block, BlockKind
from knowra_worker.errors import CorruptFile
from knowra_worker.parsers import open_document

from .conftest import DATA, edit_package, headings, markdown_headings, read_blocks, read_units

H, P, L, T = BlockKind.HEADING, BlockKind.PARAGRAPH, BlockKind.LIST, BlockKind.TABLE


def test_headings_match_the_ground_truth() -> None:
    blocks = read_blocks(DATA / "unit_test_headers.docx")
    # The Title is level 1 and, below it, "Heading N" is level N + 1, as in the ground truth.
    assert headings(blocks) == markdown_headings(DATA / "unit_test_headers.docx.md")
    assert [b.text for b in blocks if b.kind is P][:2] == ["Paragraph 1.1", "Paragraph 1.2"]


def test_word_sample_in_document_order() -> None:
    blocks = read_blocks(DATA / "word_sample.docx")
    assert [(b.kind, b.text, b.level) for b in blocks] == [
        (P, "Summer activities", 0),
        (H, "Swimming in the lake", 1),
        (P, "Duck", 0),
        (P, "Figure 1: This is a cute duckling", 0),
        (H, "Let’s swim!", 2),
        (P, "To get started with swimming, first lay down in a water and try not to drown:", 0),
        (L, "- You can relax and look around\n- Paddle about\n- Enjoy summer warmth", 0),
        (P, "Also, don’t forget:", 0),  # a List Bullet paragraph with its numbering removed
        (L, "1. Wear sunglasses\n2. Don’t forget to drink water\n3. Use sun cream", 0),
        (P, "Hmm, what else…", 0),
        (H, "Let’s eat", 3),
        (
            P,
            "After we had a good day of swimming in the lake, it’s important to eat something nice",
            0,
        ),
        (P, "I like to eat leaves", 0),
        (P, "Here are some interesting things a respectful duck could eat:", 0),
        (
            T,
            " | Food | Calories per portion\n"
            "Leaves | Ash, Elm, Maple | 50\n"
            "Berries | Blueberry, Strawberry, Cranberry | 150\n"
            "Grain | Corn, Buckwheat, Barley | 200",
            0,
        ),
        (P, "And let’s add another list in the end:", 0),
        (L, "1. Leaves\n2. Berries\n3. Grain", 0),
    ]
    assert headings(blocks) == markdown_headings(DATA / "word_sample.docx.md")


def test_nested_and_numbered_lists() -> None:
    lists = [b.text for b in read_blocks(DATA / "docx_lists.docx") if b.kind is L]
    assert lists[1] == "1. List item a\n2. List item b\n3. List item c"
    assert lists[4] == "- List item 1\n  - List item 1.1\n    - List item 1.1.1\n- List item 3"
    from_styles = "- First item\n- Second item\n- Third item\n  - Sub-item A\n  - Sub-item B"
    assert any(text.startswith(from_styles) for text in lists)


def test_one_cell_frame_is_read_as_content_and_nested_tables_as_rows() -> None:
    assert read_blocks(DATA / "tablecell.docx") == [
        Block(L, "- Hello world1\n- Hello2"),
        Block(P, "Some text before"),
        Block(
            T,
            "Tab1 | Tab2 | Tab3\nA | B | C\nD | E | F",
            rows=(("Tab1", "Tab2", "Tab3"), ("A", "B", "C"), ("D", "E", "F")),
        ),
        Block(P, "Some text after"),
    ]


def test_strict_open_xml() -> None:
    assert read_blocks(DATA / "Strict.docx") == [Block(P, "Some text")]


def _make_docx(path: Path) -> None:
    document = docx.Document()
    for chapter in range(6):
        document.add_heading(f"Chapter {chapter}", level=1)
        for n in range(30):
            document.add_paragraph(f"Paragraph {chapter}.{n} " + "lorem ipsum " * 20)
        table = document.add_table(rows=2, cols=3)
        for r, row in enumerate(table.rows):
            for c, cell in enumerate(row.cells):
                cell.text = f"r{r}c{c}"
        table.rows[1].cells[1].merge(table.rows[1].cells[2])
        document.add_paragraph("first point", style="List Bullet")
        document.add_paragraph("second point", style="List Bullet")
    document.save(str(path))


def test_generated_document_units_are_bounded_and_resume_exactly(tmp_path: Path) -> None:
    path = tmp_path / "generated.docx"
    _make_docx(path)
    with open_document(path) as doc:
        assert not doc.units_total_exact and doc.units_total >= 3
        units = list(doc.units())
    blocks = [b for u in units for b in u.blocks]
    assert len(units) >= 4 and all(len(u.blocks) <= 50 for u in units)
    assert [b.text for b in blocks if b.kind is H] == [f"Chapter {n}" for n in range(6)]
    # The merged cell's text is in both grid cells it covers.
    table = [b for b in blocks if b.kind is T][0]
    assert table.text == "r0c0 | r0c1 | r0c2\nr1c0 | r1c1 r1c2 | r1c1 r1c2"
    assert table.rows == (("r0c0", "r0c1", "r0c2"), ("r1c0", "r1c1 r1c2", "r1c1 r1c2"))
    assert [b.text for b in blocks if b.kind is L][0] == "- first point\n- second point"
    for start in (1, len(units) - 1):
        assert read_units(path, start) == units[start:]


def test_zip_without_a_word_document_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "broken.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/other.xml", "<x/>")
    with pytest.raises(CorruptFile, match="not a valid DOCX file"):
        open_document(path)


# --- equations, charts, links, merged cells, package variants --------------------------


def _tokens(blocks: list[Block]) -> set[str]:
    return {token for block in blocks for token in block.text.split()}


def test_equations_are_latex_in_markdown_and_spaced_in_text() -> None:
    blocks = read_blocks(DATA / "equations.docx")
    first = blocks[0]
    assert first.text == "This is a word document and this is an inline equation: A=π r^2 ."
    assert first.markdown == (
        r"This is a word document and this is an inline equation: $A=\pi r^{2}$ ."
    )
    items = next(b for b in blocks if b.kind is L)
    assert r"$E=mc^{2}$ and $F=ma$ are physics formulas." in items.markdown
    assert "E=m c^2 and F=ma are physics formulas." in items.text
    # Equations on a line of their own are display math.
    display = [b.markdown for b in blocks if b.markdown.startswith("$$")]
    assert r"$$a^{2}+b^{2}=c^{2} \times 23$$" in display
    assert any(
        r"\sum_{n=1}^{\infty}" in latex and r"\frac{n\pi x}{L}" in latex for latex in display
    )
    assert any(r"\frac{x^{2}}{2!}" in latex for latex in display)
    # No equation's symbols glued into one word of the plain text.
    assert not {"mc2", "πr2", "A=πr2", "a2+b2=c2"} & _tokens(blocks)


def test_chart_data_is_a_table() -> None:
    blocks = read_blocks(DATA / "drawingml.docx")
    caption = next(i for i, b in enumerate(blocks) if b.text == "Line chart")
    chart = blocks[caption + 1]
    assert chart.kind is T
    assert chart.rows[0] == ("", "Series 1", "Series 2", "Series 3")
    assert chart.rows[1:] == (
        ("Category 1", "4.3", "2.4", "2"),
        ("Category 2", "2.5", "4.4", "2"),
        ("Category 3", "3.5", "1.8", "3"),
        ("Category 4", "4.5", "2.8", "5"),
    )
    assert blocks[-1].text == "Fig – Torque v/s Speed characteristics"


def test_hyperlinks_are_markdown_links() -> None:
    blocks = read_blocks(DATA / "unit_test_formatting.docx")
    line = next(b for b in blocks if b.text.startswith("Normal italic"))
    assert line.text == "Normal italic bold underline and hyperlink on the same line"
    assert line.markdown == (
        "Normal italic bold underline and [hyperlink](https://github.com/DS4SD/docling) "
        "on the same line"
    )


def test_superscripts_and_subscripts_are_set_apart() -> None:
    blocks = read_blocks(DATA / "docx_rich_cells.docx")
    cell = next(c for b in blocks if b.kind is T for row in b.rows for c in row if "H" in c)
    assert cell.endswith("with x 2 and H 2 O")
    assert not {"x2", "H2O"} & _tokens(blocks)


def test_merged_cells_are_repeated_across_and_down(tmp_path: Path) -> None:
    path = tmp_path / "merged.docx"
    document = docx.Document()
    table = document.add_table(rows=3, cols=3)
    for r, row in enumerate(table.rows):
        for c, cell in enumerate(row.cells):
            cell.text = f"r{r}c{c}"
    table.cell(0, 0).merge(table.cell(0, 1)).text = "wide"
    table.cell(1, 2).merge(table.cell(2, 2)).text = "tall"
    document.save(str(path))
    [block] = read_blocks(path)
    assert block.rows == (
        ("wide", "wide", "r0c2"),
        ("r1c0", "r1c1", "tall"),
        ("r2c0", "r2c1", "tall"),
    )
    assert block.text.splitlines()[2] == "r2c0 | r2c1 | tall"


_WORDML = "application/vnd.openxmlformats-officedocument.wordprocessingml"


@pytest.mark.parametrize(
    ("suffix", "content_type", "mime_type"),
    [
        (".docm", "application/vnd.ms-word.document.macroEnabled.main+xml",
         "application/vnd.ms-word.document.macroEnabled.12"),
        (".dotx", f"{_WORDML}.template.main+xml", f"{_WORDML}.template"),
    ],
)  # fmt: skip
def test_macro_enabled_documents_and_templates_are_read(
    tmp_path: Path, suffix: str, content_type: str, mime_type: str
) -> None:
    source = DATA / "word_sample.docx"
    path = tmp_path / f"sample{suffix}"
    main = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
    edit_package(source, path, {"[Content_Types].xml": (main, content_type)})
    with open_document(path) as doc:
        assert doc.mime_type == mime_type
        blocks = [b for unit in doc.units() for b in unit.blocks]
    assert blocks == read_blocks(source)
