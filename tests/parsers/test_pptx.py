"""PPTX: charts, comments, lists, links, and shapes that cannot be read skipped with a warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowra_worker.document import BlockKind
from knowra_worker.parsers import open_document

from .conftest import DATA, edit_package, read_units

H, P, L, T = BlockKind.HEADING, BlockKind.PARAGRAPH, BlockKind.LIST, BlockKind.TABLE
_NS_P = "http://schemas.openxmlformats.org/presentationml/2006/main"
_NS_P188 = "http://schemas.microsoft.com/office/powerpoint/2018/8/main"
_NS_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_MS_RELS = "http://schemas.microsoft.com/office/2018/10/relationships"


def test_chart_title_series_categories_and_values() -> None:
    units = read_units(DATA / "pptx_chart.pptx")
    first = units[0].blocks
    assert [(b.kind, b.text) for b in first[:2]] == [
        (H, "Quarterly Duck Survey"),
        (P, "Wild Duck Observations by Year (Bar chart)"),
    ]
    assert first[2].kind is T and first[2].page == 1
    assert first[2].rows == (
        ("", "Freshwater Ducks", "Saltwater Ducks"),
        ("2019", "120", "80"),
        ("2020", "130", "95"),
        ("2021", "150", "110"),
        ("2022", "175", "130"),
    )
    assert units[1].blocks[2].rows == (("", "2026"), ("Q1", "10"), ("Q2", "20"), ("Q3", "30"))


def _edit_deck(path: Path, edits: dict[str, tuple[str, str]], extra: dict[str, str]) -> None:
    """A copy of powerpoint_sample.pptx, edited (see edit_package)."""
    edit_package(DATA / "powerpoint_sample.pptx", path, edits, extra)


def _override(part: str, content_type: str) -> str:
    return f'<Override PartName="/{part}" ContentType="{content_type}"/>'


def _rel(rel_id: str, rel_type: str, target: str) -> str:
    return f'<Relationship Id="{rel_id}" Type="{rel_type}" Target="{target}"/>'


_UNKNOWN = '<x:hologram xmlns:x="urn:example:future"/>'
_BROKEN_CHART = (
    f'<p:graphicFrame xmlns:a="{_NS_A}" xmlns:r="{_RELS}"><p:nvGraphicFramePr>'
    '<p:cNvPr id="99" name="Broken chart"/><p:cNvGraphicFramePr/><p:nvPr/>'
    '</p:nvGraphicFramePr><p:xfrm><a:off x="0" y="0"/><a:ext cx="10" cy="10"/></p:xfrm>'
    '<a:graphic><a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/chart">'
    '<c:chart xmlns:c="http://schemas.openxmlformats.org/drawingml/2006/chart" r:id="rId999"/>'
    "</a:graphicData></a:graphic></p:graphicFrame>"
)
_LEGACY_COMMENTS = (
    f'<p:cmLst xmlns:p="{_NS_P}"><p:cm authorId="0" dt="2024-01-01T00:00:00" idx="1">'
    '<p:pos x="10" y="10"/><p:text>Check the order of the list</p:text></p:cm></p:cmLst>'
)
_LEGACY_AUTHORS = (
    f'<p:cmAuthorLst xmlns:p="{_NS_P}"><p:cmAuthor id="0" name="Ada Reviewer" initials="AR" '
    'lastIdx="1" clrIdx="0"/></p:cmAuthorLst>'
)
_MODERN_COMMENTS = (
    f'<p188:cmLst xmlns:p188="{_NS_P188}" xmlns:a="{_NS_A}">'
    '<p188:cm id="{1}" authorId="{A1}" created="2024-01-02T00:00:00">'
    '<p188:replyLst><p188:reply id="{2}" authorId="{A2}" created="2024-01-03T00:00:00">'
    "<p188:txBody><a:bodyPr/><a:p><a:r><a:t>Agreed</a:t></a:r></a:p></p188:txBody>"
    "</p188:reply></p188:replyLst>"
    "<p188:txBody><a:bodyPr/><a:p><a:r><a:t>Is the table complete?</a:t></a:r></a:p>"
    "</p188:txBody></p188:cm></p188:cmLst>"
)
_MODERN_AUTHORS = (
    f'<p188:authorLst xmlns:p188="{_NS_P188}">'
    '<p188:author id="{A1}" name="Grace Editor" initials="GE" userId="g" providerId="None"/>'
    '<p188:author id="{A2}" name="Alan Author" initials="AA" userId="a" providerId="None"/>'
    "</p188:authorLst>"
)


@pytest.fixture
def odd_deck(tmp_path: Path) -> Path:
    """powerpoint_sample.pptx with an element of an unknown kind and a chart frame whose
    part is missing on slide 2, and comments of both kinds."""
    path = tmp_path / "odd.pptx"
    pml = "application/vnd.openxmlformats-officedocument.presentationml"
    types = (
        _override("ppt/comments/comment1.xml", f"{pml}.comments+xml")
        + _override("ppt/commentAuthors.xml", f"{pml}.commentAuthors+xml")
        + _override(
            "ppt/comments/modernComment_1.xml", "application/vnd.ms-powerpoint.comments+xml"
        )
        + _override("ppt/authors.xml", "application/vnd.ms-powerpoint.authors+xml")
    )
    edits = {
        "[Content_Types].xml": ("</Types>", types + "</Types>"),
        "ppt/slides/slide2.xml": ("</p:spTree>", _UNKNOWN + _BROKEN_CHART + "</p:spTree>"),
        "ppt/slides/_rels/slide2.xml.rels": (
            "</Relationships>",
            _rel("rId90", f"{_RELS}/comments", "../comments/comment1.xml") + "</Relationships>",
        ),
        "ppt/slides/_rels/slide1.xml.rels": (
            "</Relationships>",
            _rel("rId90", f"{_MS_RELS}/comments", "../comments/modernComment_1.xml")
            + "</Relationships>",
        ),
        "ppt/_rels/presentation.xml.rels": (
            "</Relationships>",
            _rel("rId90", f"{_RELS}/commentAuthors", "commentAuthors.xml")
            + _rel("rId91", f"{_MS_RELS}/authors", "authors.xml")
            + "</Relationships>",
        ),
    }
    extra = {
        "ppt/comments/comment1.xml": _LEGACY_COMMENTS,
        "ppt/commentAuthors.xml": _LEGACY_AUTHORS,
        "ppt/comments/modernComment_1.xml": _MODERN_COMMENTS,
        "ppt/authors.xml": _MODERN_AUTHORS,
    }
    _edit_deck(path, edits, extra)
    return path


def test_odd_shapes_are_skipped_with_warnings_and_the_deck_is_read(odd_deck: Path) -> None:
    units = read_units(odd_deck)
    assert len(units) == 3
    assert units[1].warnings == [
        "slide 2: a shape of an unknown kind (hologram) was skipped",
        "slide 2: the shape 'Broken chart' could not be read and was skipped",
    ]
    assert [b.text for b in units[1].blocks][:3] == [
        "Second slide title",
        "Let’s introduce a list",
        "- With foo\n- Bar\n- And baz things",
    ]
    assert units[0].warnings == [] and units[2].warnings == []


def test_legacy_and_modern_comments_with_their_authors(odd_deck: Path) -> None:
    units = read_units(odd_deck)
    slide1 = [b.text for b in units[0].blocks if b.kind is P]
    assert slide1[-2:] == [
        "Comment by Grace Editor: Is the table complete?",
        "Comment by Alan Author: Agreed",
    ]
    slide2 = [b.text for b in units[1].blocks]
    assert "Comment by Ada Reviewer: Check the order of the list" in slide2
    # Comments come before the speaker notes.
    assert slide2[-1] == "Some notes on the second slide."


def test_numbered_lists_and_slide_show_type(tmp_path: Path) -> None:
    path = tmp_path / "deck.ppsx"
    main = "presentationml.presentation.main+xml"
    _edit_deck(path, {"[Content_Types].xml": (main, "presentationml.slideshow.main+xml")}, {})
    with open_document(path) as doc:
        assert doc.mime_type == (
            "application/vnd.openxmlformats-officedocument.presentationml.slideshow"
        )
        units = list(doc.units())
    lists = [b.text for b in units[2].blocks if b.kind is L]
    assert "1. List item4\n2. List item5\n3. List item6" in lists
    assert "- I1\n- I2\n- I3\n- I4" in lists
