"""HTML through selectolax (lexbor): the page's content as headings, paragraphs, lists,
tables and code, without the page chrome.

Content root: <main>, else a single <article>, else <body>. Skipped: scripts, styles,
templates, SVG, forms controls, hidden elements, <nav> and <aside>, and <header>/<footer>
outside an article or main element (inside one they hold the article's title or notes).
h1-h6 give headings, ul/ol a LIST block (nested lists indented), pre a CODE block, table a
TABLE block (one line per row, cells joined with " | ", and `rows`), and the remaining text
a PARAGRAPH per block-level element; inline markup is flattened, whitespace collapsed, <br>
kept as a line break. Every element boundary is whitespace (`text<a>duck</a>` is two words,
as are sub- and superscripts); an image gives its alt text; a paragraph's `markdown` keeps
its links as `[text](url)`.

Encoding: BOM, else <meta charset> in the first KB, else UTF-8 if it decodes, else
charset-normalizer. The whole page is parsed at once (HTML cannot be parsed in pieces);
blocks are produced lazily from the tree.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from knowra_worker.document import Block, BlockKind
from knowra_worker.parsers._common import (
    FlowDocument,
    UnitLimits,
    collapse_inline_spaces,
    estimate_units,
    file_size,
    io_error,
    strip_controls,
)
from knowra_worker.parsers._encoding import bom_encoding, sniff_encoding
from knowra_worker.parsers._tables import table_block
from knowra_worker.parsers.base import Content, Format
from knowra_worker.parsers.detect import HTML

if TYPE_CHECKING:  # selectolax is imported where a page is parsed, not with this module
    from selectolax.lexbor import LexborHTMLParser, LexborNode

_SKIP = frozenset(
    {
        "script", "style", "noscript", "template", "svg", "math", "nav", "aside", "head",
        "title", "meta", "link", "iframe", "object", "embed", "canvas", "video", "audio",
        "button", "select", "datalist", "input", "textarea", "map", "base",
    }
)  # fmt: skip
_CHROME = frozenset({"header", "footer"})
_CONTENT_ROOTS = frozenset({"main", "article"})
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_INLINE = frozenset(
    {
        "a", "abbr", "acronym", "b", "bdi", "bdo", "big", "cite", "code", "data", "del", "dfn",
        "em", "font", "i", "ins", "kbd", "label", "mark", "nobr", "q", "rp", "rt", "ruby", "s",
        "samp", "small", "span", "strike", "strong", "sub", "sup", "time", "tt", "u", "var",
        "wbr", "output", "meter", "progress",
    }
)  # fmt: skip
_LISTS = frozenset({"ul", "ol", "menu"})
_MAX_DEPTH = 120  # deeper subtrees are flattened to text
_BREAK = "\ue000"  # stands for <br> until whitespace is collapsed (a private-use char)
_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE
)
_SPACE_BEFORE_PUNCT = re.compile(r" +([.,;:!?)\]])")
_LATIN1_ALIASES = {"iso8859-1", "iso-8859-1", "latin-1", "latin1", "ascii", "us-ascii"}
_LIMITS = UnitLimits(max_chars=32_000, max_blocks=100, section_chars=8_000)


class HtmlDocument(FlowDocument):
    format_label = "HTML file"
    limits = _LIMITS

    def __init__(self, path: Path, mime_type: str) -> None:
        self.path = path
        size = file_size(path)
        # Markup takes about two thirds of a typical page.
        super().__init__(mime_type, estimate_units(size, 3 * _LIMITS.max_chars))

    def iter_blocks(self) -> Iterator[Block]:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise io_error(exc) from exc
        yield from page_blocks(_parse(decode_html(data)))


def _parse(html: str) -> LexborHTMLParser:
    from selectolax.lexbor import LexborHTMLParser

    return LexborHTMLParser(html)


def decode_html(data: bytes) -> str:
    """The page's text: BOM, then <meta charset>, then UTF-8, then a guess."""
    encoding = bom_encoding(data) or _meta_charset(data[:4096])
    if encoding is None:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            encoding = sniff_encoding(data[: 64 * 1024], complete=len(data) <= 64 * 1024)
    return data.decode(encoding or "cp1252", errors="replace")


def _meta_charset(head: bytes) -> str | None:
    match = _META_CHARSET.search(head)
    if not match:
        return None
    label = match.group(1).decode("ascii").lower()
    if label in _LATIN1_ALIASES:
        return "cp1252"  # as browsers do (WHATWG encoding standard)
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    # A page that decodes as UTF-16 can't have declared it in ASCII: the meta is wrong.
    return None if name.startswith("utf-16") else name


def page_blocks(tree: LexborHTMLParser) -> Iterator[Block]:
    """The blocks of a whole page, from its content root."""
    root, in_content = _content_root(tree)
    if root is None:
        return
    yield from _Walker(in_content).run(root)


def fragment_blocks(html: str) -> Iterator[Block]:
    """The blocks of an HTML fragment (e.g. raw HTML inside Markdown)."""
    tree = _parse(html)
    if tree.body is not None:
        yield from _Walker(in_content=True).run(tree.body)


def _content_root(tree: LexborHTMLParser) -> tuple[LexborNode | None, bool]:
    main = tree.css_first("main")
    if main is not None:
        return main, True
    articles = tree.css("article")
    if len(articles) == 1:
        return articles[0], True
    return tree.body, False


def _is_hidden(node: LexborNode) -> bool:
    attrs = node.attributes
    if "hidden" in attrs or attrs.get("aria-hidden") == "true":
        return True
    style = (attrs.get("style") or "").replace(" ", "").lower()
    return "display:none" in style or "visibility:hidden" in style


def _finish(text: str) -> str:
    """Collapse whitespace, turn the <br> markers into line breaks; no space is left before
    closing punctuation (element boundaries add spaces: "<a>here</a>.")."""
    text = strip_controls(" ".join(text.split())).replace(_BREAK, "\n")
    return _SPACE_BEFORE_PUNCT.sub(r"\1", collapse_inline_spaces(text))


def _flat(text: str) -> str:
    """Collapse whitespace, <br> markers included: one line."""
    return " ".join(strip_controls(text.replace(_BREAK, " ")).split())


class _Walker:
    """Depth-first walk producing blocks; inline text gathers until a block boundary."""

    def __init__(self, in_content: bool) -> None:
        self.in_content = in_content
        self.inline: list[str] = []
        self.markdown: list[str] = []  # the same run with links as [text](url)

    def run(self, root: LexborNode) -> Iterator[Block]:
        yield from self._children(root, 0)
        yield from self._flush()

    def _flush(self) -> Iterator[Block]:
        text = _finish("".join(self.inline))
        markdown = _finish("".join(self.markdown))
        self.inline.clear()
        self.markdown.clear()
        if text:
            yield Block(BlockKind.PARAGRAPH, text, markdown="" if markdown == text else markdown)

    def _add(self, text: str, markdown: str | None = None) -> None:
        self.inline.append(text)
        self.markdown.append(text if markdown is None else markdown)

    def _children(self, node: LexborNode, depth: int) -> Iterator[Block]:
        for child in node.iter(include_text=True):
            yield from self._visit(child, depth + 1)

    def _visit(self, node: LexborNode, depth: int) -> Iterator[Block]:
        tag = node.tag or ""
        if tag == "-text":
            self._add(node.text(deep=False))
            return
        if tag.startswith("-") or tag.startswith("!") or self._skipped(node, tag):
            return
        if tag == "br":
            self._add(_BREAK)
        elif tag == "img":
            self._add(f" {_alt(node)} ")
        elif depth > _MAX_DEPTH:
            self._add(f" {node.text(deep=True, separator=' ')} ")
        elif tag == "a":
            yield from self._link(node, depth)
        elif tag in _INLINE:
            self._add(" ")
            yield from self._children(node, depth)
            self._add(" ")
        else:
            yield from self._flush()
            yield from self._block(node, tag, depth)
            yield from self._flush()

    def _link(self, node: LexborNode, depth: int) -> Iterator[Block]:
        """A link: its text in the plain run, `[text](url)` in the Markdown one."""
        start = len(self.markdown)
        self._add(" ")
        yield from self._children(node, depth)
        self._add(" ")
        href = (node.attributes.get("href") or "").strip()
        label = _flat("".join(self.markdown[start:]))
        if href and label and not href.lower().startswith("javascript:") and " " not in href:
            self.markdown[start:] = [f" [{label}]({href}) "]

    def _skipped(self, node: LexborNode, tag: str) -> bool:
        if tag in _SKIP or (tag in _CHROME and not self.in_content):
            return True
        return _is_hidden(node)

    def _block(self, node: LexborNode, tag: str, depth: int) -> Iterator[Block]:
        if tag in _HEADINGS:
            text = _flat(node_text(node))
            if text:
                yield Block(BlockKind.HEADING, text, level=_HEADINGS[tag])
        elif tag in _LISTS:
            lines = list_lines(node, 0)
            if lines:
                yield Block(BlockKind.LIST, "\n".join(lines))
        elif tag == "pre":
            text = strip_controls(node.text(deep=True)).strip("\n").rstrip()
            if text.strip():
                yield Block(BlockKind.CODE, text)
        elif tag == "table":
            yield from _table_blocks(node)
        else:
            entered = tag in _CONTENT_ROOTS and not self.in_content
            self.in_content = self.in_content or entered
            yield from self._children(node, depth)
            self.in_content = self.in_content and not entered


def _alt(img: LexborNode) -> str:
    return " ".join((img.attributes.get("alt") or "").split())


def node_text(node: LexborNode, exclude: frozenset[str] = frozenset(), depth: int = 0) -> str:
    """All text under `node`, every element boundary a space."""
    parts: list[str] = []
    for child in node.iter(include_text=True):
        tag = child.tag or ""
        if tag == "-text":
            parts.append(child.text(deep=False))
        elif tag.startswith("-") or tag in _SKIP or tag in exclude or _is_hidden(child):
            continue
        elif tag == "br":
            parts.append(_BREAK)
        elif tag == "img":
            parts.append(f" {_alt(child)} ")
        elif depth > _MAX_DEPTH:
            parts.append(child.text(deep=True, separator=" "))
        else:
            parts.append(f" {node_text(child, exclude, depth + 1)} ")
    return "".join(parts)


def list_lines(node: LexborNode, depth: int) -> list[str]:
    """One line per item, "- item" or "1. item", nested lists indented two spaces a level."""
    ordered = node.tag == "ol"
    number = _start_number(node)
    indent = "  " * depth
    if depth >= _MAX_DEPTH:  # absurdly deep: the rest as one item
        text = _flat(node.text(deep=True, separator=" "))
        return [f"{indent}- {text}"] if text else []
    lines: list[str] = []
    for child in node.iter():
        tag = child.tag or ""
        if tag in _LISTS:
            lines.extend(list_lines(child, depth + 1))
            continue
        if tag in _SKIP or _is_hidden(child):
            continue
        text = _flat(node_text(child, exclude=_LISTS))
        if text:
            marker = f"{number}." if ordered else "-"
            lines.append(f"{indent}{marker} {text}")
            number += 1
        for nested in _nested_lists(child, depth):
            lines.extend(list_lines(nested, depth + 1))
    return lines


def _nested_lists(node: LexborNode, depth: int) -> Iterator[LexborNode]:
    """Lists anywhere under `node` that are not inside another of those lists."""
    for child in node.iter():
        tag = child.tag or ""
        if tag in _LISTS:
            yield child
        elif tag not in _SKIP and depth < _MAX_DEPTH:
            yield from _nested_lists(child, depth + 1)


def _start_number(node: LexborNode) -> int:
    start = node.attributes.get("start") or "1"
    try:
        return int(start)
    except ValueError:
        return 1


def _table_blocks(table: LexborNode) -> Iterator[Block]:
    for child in table.iter():
        if child.tag == "caption":
            text = _flat(node_text(child))
            if text:
                yield Block(BlockKind.PARAGRAPH, text)
    block = table_block(_row_cells(row) for row in _rows(table))
    if block:
        yield block


def _rows(table: LexborNode) -> Iterator[LexborNode]:
    for child in table.iter():
        if child.tag == "tr":
            yield child
        elif child.tag in {"thead", "tbody", "tfoot"}:
            yield from (row for row in child.iter() if row.tag == "tr")


def _row_cells(row: LexborNode) -> list[str]:
    visible = (cell for cell in row.iter() if cell.tag in {"td", "th"} and not _is_hidden(cell))
    return [_finish(node_text(cell)) for cell in visible]


# imported when a worker process starts (registry.preload), not on import
PRELOAD = ("selectolax.lexbor",)
FORMATS = (Format("html", HTML, (".html", ".htm", ".xhtml"), Content.TEXT, HtmlDocument),)
