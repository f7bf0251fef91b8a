"""E-mail messages (.eml, RFC 822 / MIME) through the standard library's `email` package.

A message gives a HEADING (level 1) with its subject, a PARAGRAPH with its From, To, Cc and
Date lines, then its body: the text/plain part split into paragraphs at blank lines, or,
when the message has no plain text, its HTML part through the HTML parser's block walker.
Text parts shown beside the body (not alternatives of it) follow it.

Attachments are documents of their own: each is written to a temporary file, its type
detected and its parser run, and its blocks follow a HEADING (level 2) "Attachment: name",
its own headings two levels deeper (at most 6). An attached message (message/rfc822, or a
.eml file) is read the same way as the message itself. Attachments are bounded in size,
number and nesting depth; one that is too big, of a format no parser reads, or damaged is
named under its heading and in a warning, and never fails the message.
"""

from __future__ import annotations

import email
import email.policy
import re
import tempfile
from collections.abc import Iterator
from email.message import EmailMessage, Message
from io import StringIO
from pathlib import Path
from typing import Any

from knowra_worker.document import Block, BlockKind
from knowra_worker.errors import KnowraError
from knowra_worker.parsers._common import (
    FlowDocument,
    UnitLimits,
    collapse_spaces,
    estimate_units,
    file_size,
    io_error,
)
from knowra_worker.parsers._encoding import SAMPLE_SIZE, bom_encoding, sniff_encoding
from knowra_worker.parsers.base import Content, Format
from knowra_worker.parsers.detect import EML

_LIMITS = UnitLimits(max_chars=32_000, max_blocks=100, section_chars=8_000)
_ADDRESS_HEADERS = ("From", "To", "Cc", "Date")
MAX_ATTACHMENT_BYTES = 50 * 2**20
MAX_ATTACHMENTS = 50
MAX_DEPTH = 3  # messages attached to messages attached to ...
_ATTACHMENT_LEVEL_SHIFT = 2
_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")


class EmlDocument(FlowDocument):
    format_label = "e-mail message"
    limits = _LIMITS

    def __init__(self, path: Path, mime_type: str) -> None:
        self.path = path
        super().__init__(mime_type, estimate_units(file_size(path), 2 * _LIMITS.max_chars))

    def iter_blocks(self) -> Iterator[Block]:
        yield from _Reader(self.warnings).message(_load(self.path), 0)


def _load(path: Path) -> EmailMessage:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise io_error(exc) from exc
    policy = email.policy.default
    encoding = _wide_encoding(data)
    if encoding is not None:  # a message saved as UTF-16 text: parse the decoded text
        text = data.decode(encoding, errors="replace").lstrip("\ufeff")
        message = email.message_from_string(text, policy=policy)
    else:
        message = email.message_from_bytes(data, policy=policy)
    assert isinstance(message, EmailMessage)
    return message


def _wide_encoding(data: bytes) -> str | None:
    """UTF-16 or UTF-32 when the message was saved as such (with or without a BOM): then
    it is text to decode first, while a normal message is bytes with a charset per part."""
    encoding = bom_encoding(data)
    if encoding is None:
        sample = data[:SAMPLE_SIZE]
        encoding = sniff_encoding(sample, complete=len(sample) == len(data))
    if encoding and encoding.lower().replace("_", "-").startswith(("utf-16", "utf-32")):
        return encoding
    return None


class _Reader:
    """Blocks of a message and its attachments; warnings go to the list it is given."""

    def __init__(self, warnings: list[str]) -> None:
        self.warnings = warnings
        self.attachments = 0

    def message(self, message: EmailMessage, depth: int, shift: int = 0) -> Iterator[Block]:
        yield from _header_blocks(message, shift)
        body, extra_texts, attachments = _parts(message)
        if body is not None:
            yield from _text_part_blocks(body, shift)
        for part in extra_texts:
            yield from _text_part_blocks(part, shift)
        for part in attachments:
            yield from self.attachment(part, depth, shift)

    def attachment(self, part: EmailMessage, depth: int, shift: int) -> Iterator[Block]:
        name = _attachment_name(part)
        self.attachments += 1
        yield Block(BlockKind.HEADING, f"Attachment: {name}", level=min(1 + shift + 1, 6))
        problem = self._refusal(part, depth)
        if problem:
            yield from self._failed(name, problem)
            return
        inner = shift + _ATTACHMENT_LEVEL_SHIFT
        if part.get_content_type() == "message/rfc822":
            attached = part.get_content()
            if isinstance(attached, EmailMessage):
                yield from self.message(attached, depth + 1, inner)
            return
        try:
            blocks = list(self._document_blocks(part, name, depth, inner))
        except KnowraError as exc:
            yield from self._failed(name, exc.message)
            return
        yield from blocks

    def _refusal(self, part: EmailMessage, depth: int) -> str:
        if depth >= MAX_DEPTH:
            return f"attachments nested deeper than {MAX_DEPTH} levels are not read"
        if self.attachments > MAX_ATTACHMENTS:
            return f"only the first {MAX_ATTACHMENTS} attachments are read"
        payload = part.get_payload(decode=True)
        size = len(payload) if isinstance(payload, bytes) else 0
        if size > MAX_ATTACHMENT_BYTES:
            return f"larger than {MAX_ATTACHMENT_BYTES // 2**20} MiB"
        return ""

    def _failed(self, name: str, problem: str) -> Iterator[Block]:
        problem = collapse_spaces(problem).split(". Supported formats")[0]
        self.warnings.append(f"attachment {name!r} was not read: {problem}")
        yield Block(BlockKind.PARAGRAPH, f"(not read: {problem.split(';')[0]})")

    def _document_blocks(
        self, part: EmailMessage, name: str, depth: int, shift: int
    ) -> Iterator[Block]:
        from knowra_worker.parsers import registry

        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            data = b""
        with tempfile.TemporaryDirectory(prefix="knowra-attachment-") as folder:
            path = Path(folder) / ("attachment" + _suffix(name))
            path.write_bytes(data)
            mime_type = registry.detect(path)
            if mime_type == EML:
                nested = _load(path)
                yield from self.message(nested, depth + 1, shift)
                return
            with registry.open_document(path) as document:
                for unit in document.units():
                    self.warnings.extend(f"attachment {name!r}: {w}" for w in unit.warnings)
                    yield from (_shifted(block, shift) for block in unit.blocks)


def _suffix(name: str) -> str:
    suffix = Path(name).suffix
    return suffix.lower() if _SAFE_SUFFIX.match(suffix) else ""


def _shifted(block: Block, shift: int) -> Block:
    """An attachment's block under the message: headings deeper, no page numbers."""
    level = min(block.level + shift, 6) if block.kind is BlockKind.HEADING else 0
    if block.kind is BlockKind.HEADING and level == 0:
        level = min(1 + shift, 6)
    return Block(block.kind, block.text, None, level, block.markdown, block.rows)


def _attachment_name(part: Message) -> str:
    name = part.get_filename()
    if not name and part.get_content_type() == "message/rfc822":
        return "attached message"
    return collapse_spaces(str(name or "")) or f"unnamed {part.get_content_type()} part"


# --- header and body -------------------------------------------------------------------


def _header_blocks(message: EmailMessage, shift: int) -> Iterator[Block]:
    subject = collapse_spaces(_header(message, "Subject"))
    if subject:
        yield Block(BlockKind.HEADING, subject, level=min(1 + shift, 6))
    lines = [
        f"{name}: {value}"
        for name in _ADDRESS_HEADERS
        if (value := collapse_spaces(_header(message, name)))
    ]
    if lines:
        yield Block(BlockKind.PARAGRAPH, "\n".join(lines))


def _header(message: Message, name: str) -> str:
    """A header's decoded value; '' when absent, its raw form when it does not decode."""
    try:
        value = message.get(name)
    except (ValueError, TypeError, IndexError):
        value = message.get_all(name, failobj=[""])[0] if message.keys() else ""
    return str(value or "")


def _parts(message: EmailMessage) -> tuple[Any, list[Any], list[Any]]:
    """The body part, other inline text parts, and the attachments, in message order."""
    body = message.get_body(preferencelist=("plain", "html"))
    texts: list[Any] = []
    attachments: list[Any] = []
    _collect(message, body, texts, attachments, in_alternative=False)
    return body, texts, attachments


def _collect(part: Any, body: Any, texts: list[Any], attachments: list[Any], **flags: bool) -> None:
    if part is body:
        return
    content_type = part.get_content_type()
    if content_type == "message/rfc822":  # multipart to `email`, a document to the reader
        attachments.append(part)
        return
    if part.is_multipart():
        alternative = content_type == "multipart/alternative"
        for child in part.iter_parts():
            _collect(child, body, texts, attachments, in_alternative=alternative)
        return
    disposition = part.get_content_disposition()
    is_text = part.get_content_maintype() == "text" and content_type in ("text/plain", "text/html")
    if is_text and disposition != "attachment" and not part.get_filename():
        if not flags["in_alternative"] and part is not body:
            texts.append(part)
        return
    attachments.append(part)


def _text_part_blocks(part: EmailMessage, shift: int) -> Iterator[Block]:
    text = _part_text(part)
    if part.get_content_type() == "text/html":
        from knowra_worker.parsers.html import fragment_blocks

        yield from (_shifted(block, shift) for block in fragment_blocks(text))
        return
    from knowra_worker.parsers.text import iter_paragraphs

    for paragraph in iter_paragraphs(StringIO(text), _LIMITS.max_chars):
        yield Block(BlockKind.PARAGRAPH, paragraph)


def _part_text(part: EmailMessage) -> str:
    """A text part's content; undecodable bytes replaced, an unknown charset read as UTF-8."""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, ValueError, AssertionError):
        data = part.get_payload(decode=True)
        return data.decode("utf-8", errors="replace") if isinstance(data, bytes) else ""
    return content if isinstance(content, str) else ""


FORMATS = (Format("eml", EML, (".eml",), Content.TEXT, EmlDocument),)
