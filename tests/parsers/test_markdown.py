"""Markdown: structure kept as blocks, markup dropped, parsed in bounded segments."""

from __future__ import annotations

from pathlib import Path

from knowra_worker.document import Block, BlockKind

from .conftest import DATA, headings, markdown_headings, read_blocks, read_units

H, P, L, T, C = (BlockKind.HEADING, BlockKind.PARAGRAPH, BlockKind.LIST, BlockKind.TABLE,
                 BlockKind.CODE)  # fmt: skip


def test_mixed_markdown_blocks_in_order() -> None:
    blocks = read_blocks(DATA / "mixed.md")
    assert [(b.kind, b.text) for b in blocks] == [
        (H, "Title"),
        (P, "Some text"),
        (H, "Famous ducks"),
        (P, "Here is a table:"),
        (
            T,
            "Character | Name in German | Name in French | Name in Italian\n"
            "Scrooge McDuck | Dagobert Duck | Balthazar Picsou | Paperone\n"
            "Huey | Tick | Riri | Qui\nDewey | Trick | Fifi | Quo\nLouie | Track | Loulou | Qua",
        ),
        (P, "And here is more HTML:"),
        (P, "Some paragraph."),
        (P, "Now a div — almost there..."),
        (L, "- foo\n- bar"),
        (P, "The end!"),
    ]
    assert headings(blocks) == markdown_headings(DATA / "mixed.md.md")


def test_code_lists_and_setext_headings() -> None:
    blocks = read_blocks(DATA / "blocks.md")
    assert Block(L, "- foo") in blocks and Block(L, "1. bar") in blocks
    assert Block(H, "my setext heading level 2", level=2) in blocks
    assert Block(C, 'print("Hi!")') in blocks
    code = 'print("Hello world!")'
    assert Block(C, code, markdown=f"```python\n{code}\n```") in blocks
    assert all(b.text.strip() not in {"-", "1."} for b in blocks)  # empty lists give nothing


def test_legacy_encoded_markdown() -> None:
    blocks = read_blocks(DATA / "umlauts-non-utf8.md")
    assert blocks[0] == Block(H, "können", level=2)
    assert "äöüß" in blocks[-1].text


def test_inline_markup_becomes_clean_text(tmp_path: Path) -> None:
    path = tmp_path / "inline.md"
    path.write_text(
        "---\ntitle: Front matter\n---\n"
        "## A *styled* `heading` [link](http://x)\n\n"
        'Text with **bold**, a [link](http://example.com "t"), ![an image](i.png),\n'
        "an &amp; entity and an escaped \\* star.\n\n"
        "> Quoted words.\n\n"
        "- item *one*\n  - nested item\n\n    continued paragraph\n- item two\n\n"
        "3. third\n4. fourth\n",
        encoding="utf-8",
    )
    assert read_blocks(path) == [
        Block(H, "A styled heading link", level=2),
        Block(
            P,
            "Text with bold, a link, an image,\nan & entity and an escaped * star.",
            markdown="Text with bold, a [link](http://example.com), an image,\n"
            "an & entity and an escaped * star.",
        ),
        Block(P, "Quoted words."),
        Block(L, "- item one\n  - nested item\n    continued paragraph\n- item two"),
        Block(L, "3. third\n4. fourth"),
    ]


def test_a_thematic_break_at_the_start_is_not_front_matter(tmp_path: Path) -> None:
    path = tmp_path / "hr.md"
    path.write_text("---\n\nJust text after a rule.\n", encoding="utf-8")
    assert read_blocks(path) == [Block(P, "Just text after a rule.")]


def test_big_markdown_is_parsed_in_segments_without_breaking_fences(tmp_path: Path) -> None:
    sections = []
    for n in range(40):
        body = "\n\n".join(f"Paragraph {n}.{k} " + "text " * 60 for k in range(6))
        code = "\n\n".join(f"line_{n}_{k} = {k}" for k in range(30))  # blank lines inside
        sections.append(f"# Section {n}\n\n{body}\n\n```python\n{code}\n```\n")
    path = tmp_path / "big.md"
    path.write_text("\n".join(sections), encoding="utf-8")
    units = read_units(path)
    blocks = [block for unit in units for block in unit.blocks]
    assert len(units) > 3
    assert [b.text for b in blocks if b.kind is H] == [f"Section {n}" for n in range(40)]
    codes = [b.text for b in blocks if b.kind is C]
    assert len(codes) == 40 and all(code.count("\n\n") == 29 for code in codes)
    assert all(unit.blocks[0].kind is H for unit in units)  # units follow sections here
    assert read_units(path, start=2) == units[2:]


def test_tables_carry_rows_and_code_keeps_its_language(tmp_path: Path) -> None:
    path = tmp_path / "table.md"
    path.write_text(
        "| Name | Link |\n| --- | --- |\n| duck | [site](https://d.example) |\n\n"
        "~~~ js\nlet x = 1;\n~~~\n",
        encoding="utf-8",
    )
    table, code = read_blocks(path)
    assert table == Block(T, "Name | Link\nduck | site", rows=(("Name", "Link"), ("duck", "site")))
    assert code == Block(C, "let x = 1;", markdown="```js\nlet x = 1;\n```")
