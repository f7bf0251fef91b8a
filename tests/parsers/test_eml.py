"""E-mail: subject and addresses, the body, attachments read as documents of their own."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from knowra_worker.document import BlockKind
from knowra_worker.parsers import registry

from .conftest import DATA, read_blocks, read_units, warnings_as_given

H, P, T = BlockKind.HEADING, BlockKind.PARAGRAPH, BlockKind.TABLE


def test_detected_as_a_message() -> None:
    assert registry.detect(DATA / "eml_with_attachment.eml") == "message/rfc822"


def test_headers_body_and_a_text_attachment() -> None:
    blocks = read_blocks(DATA / "eml_with_attachment.eml")
    assert [(b.kind, b.text, b.level) for b in blocks] == [
        (H, "Email with Attachment", 1),
        (P, "From: Alice Example <alice@example.com>\nTo: Bob Example <bob@example.com>", 0),
        (P, "Hello Bob,", 0),
        (P, "This email contains an attachment.", 0),
        (P, "Best regards,\nAlice", 0),
        (H, "Attachment: test.txt", 2),
        (P, "This is a test attachment file.\nIt contains some dummy content.", 0),
    ]


def test_plain_text_preferred_over_its_html_alternative() -> None:
    texts = [b.text for b in read_blocks(DATA / "fake-email-attachment.eml")]
    assert texts.count("Hello!") == 1  # the HTML alternative is not read as well
    assert texts[-2:] == ["Attachment: fake-attachment.txt", "Hey this is a fake attachment!"]
    assert "Date: Fri, 23 Dec 2022 12:08:48 -0600" in texts[1].splitlines()


def test_html_only_body_goes_through_the_html_walker() -> None:
    texts = [b.text for b in read_blocks(DATA / "mime-html-only.eml")]
    assert texts[0] == "Example HTML Only MIME Email"
    assert texts[2] == "This is a text/html part."
    assert not any("<" in text for text in texts)


def test_message_saved_as_utf16_without_bom() -> None:
    texts = [b.text for b in read_blocks(DATA / "fake-email-utf-16-le.eml")]
    assert texts[0] == "Test Email"
    assert "This is a test email to use for unit tests." in texts


def test_unreadable_attachment_is_named_with_a_warning() -> None:
    units = read_units(DATA / "mime-attach-mp3.eml")
    texts = [b.text for unit in units for b in unit.blocks]
    assert texts[-2] == "Attachment: sample-3s.mp3"
    assert texts[-1].startswith("(not read: unsupported format")
    assert warnings_as_given(DATA / "mime-attach-mp3.eml") == [
        "attachment 'sample-3s.mp3' was not read: unsupported format: "
        "the file is an MP3 audio (audio/mpeg)"
    ]


def test_a_long_message_gives_the_warning_with_the_unit_it_falls_in(tmp_path: Path) -> None:
    """Hundreds of paragraphs make several units; the unreadable attachment after them is
    named in the warnings of a unit handed over after it was met, not of the first one."""
    message = EmailMessage()
    message["Subject"] = "Long"
    message.set_content("\n\n".join(f"Paragraph {n} of the body." for n in range(300)))
    noise = bytes(range(256)) * 8  # no format at all
    message.add_attachment(noise, maintype="application", subtype="octet-stream",
                           filename="song.mp3")  # fmt: skip
    path = tmp_path / "long.eml"
    path.write_bytes(message.as_bytes())
    assert len(read_units(path)) > 1
    (warning,) = warnings_as_given(path)
    assert warning.startswith("attachment 'song.mp3' was not read")


def test_attached_documents_and_messages_nest(tmp_path: Path) -> None:
    inner = EmailMessage()
    inner["Subject"] = "Inner note"
    inner.set_content("Forwarded words.")
    outer = EmailMessage()
    outer["Subject"] = "Outer"
    outer["From"] = "a@example.org"
    outer.set_content("See the table.")
    table = (DATA / "semicolon-delimited.csv").read_bytes()
    outer.add_attachment(table, maintype="text", subtype="csv", filename="data.csv")
    outer.add_attachment(inner)
    path = tmp_path / "outer.eml"
    path.write_bytes(outer.as_bytes())
    blocks = read_blocks(path)
    headings = [(b.level, b.text) for b in blocks if b.kind is H]
    assert headings == [
        (1, "Outer"),
        (2, "Attachment: data.csv"),
        (2, "Attachment: attached message"),
        (3, "Inner note"),
    ]
    assert any(b.kind is T and b.rows for b in blocks)
    assert blocks[-1].text == "Forwarded words."
    assert all(b.page is None for b in blocks)
