"""End to end: real documents over HTTP through a real service, its Celery worker processes
and a real Redis; every chunk checked against the document's own text."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest

from knowra_worker.chunking import extracted_text
from knowra_worker.document import TextFormat
from knowra_worker.parsers import registry
from knowra_worker.tokens import token_counter

from ..conftest import CallbackSink
from ..harness import DATA, Service

SIZE, OVERLAP = 400, 80


def local_text(path: Path, text_format: TextFormat = "markdown") -> str:
    with registry.open_document(path) as doc:
        return extracted_text([b for unit in doc.units() for b in unit.blocks], text_format)


def run_task(service: Service, name: str, **body: Any) -> tuple[dict[str, Any], list[dict]]:
    body = {"file_path": str(DATA / name), "chunk_size": SIZE, "chunk_overlap": OVERLAP, **body}
    r = service.start_task(**body)
    assert r.status_code == 202, r.text
    status = service.wait_final(r.json()["task_id"])
    return status, service.all_chunks(status["task_id"])


def check_chunks(chunks: list[dict], text: str, size: int, overlap: int) -> None:
    assert chunks, "no chunks"
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    assert len({c["chunk_id"] for c in chunks}) == len(chunks)
    covered = bytearray(len(text))
    for c in chunks:
        m = c["metadata"]
        assert 0 < len(c["text"]) <= size
        # a table part after the first repeats the table's header: the offsets cover the rest
        head = m["header_chars"]
        assert text[m["char_start"] : m["char_end"]] == c["text"][head:]
        if head:
            table_start = text.rfind("\n\n", 0, m["char_start"]) + 2
            assert m["content_type"] == "table"
            assert text.startswith(c["text"][:head], table_start if table_start > 1 else 0)
        covered[m["char_start"] : m["char_end"]] = b"\x01" * (m["char_end"] - m["char_start"])
    lost = [i for i, ch in enumerate(text) if not covered[i] and not ch.isspace()]
    assert not lost, f"text in no chunk at {lost[0]}: {text[lost[0] : lost[0] + 40]!r}"
    for a, b in zip(chunks, chunks[1:], strict=False):
        shared = a["metadata"]["char_end"] - b["metadata"]["char_start"]
        assert shared <= overlap
        if shared > 0:
            assert a["text"][-shared:] == b["text"][b["metadata"]["header_chars"] :][:shared]


FORMATS = [
    ("multi_page.pdf", "application/pdf", "page"),
    (
        "unit_test_headers.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        None,
    ),
    ("example-10k-1p.html", "text/html", None),
    ("mixed.md", "text/markdown", None),
    ("norwich-city.txt", "text/plain", None),
]


@pytest.mark.parametrize(("name", "mime", "unit"), FORMATS)
def test_document_parses_into_valid_chunks(
    service: Service, name: str, mime: str, unit: str
) -> None:
    status, chunks = run_task(service, name, kb_id="kb-formats", metadata={"origin": "e2e"})
    assert status["state"] == "succeeded", status
    assert status["error"] is None and status["attempts"] == 1
    progress = status["progress"]
    assert progress["percent"] == 100 and progress["chunks"] == len(chunks)
    assert progress["units_done"] == progress["units_total"] >= 1
    if unit:
        assert progress["unit"] == unit
    check_chunks(chunks, local_text(DATA / name), SIZE, OVERLAP)
    meta = chunks[0]["metadata"]
    assert meta["mime_type"] == mime == status["mime_type"]
    assert (meta["kb_id"], meta["task_id"], meta["source"]) == (
        "kb-formats",
        status["task_id"],
        name,
    )
    assert meta["origin"] == "e2e"


def _alnum(s: str) -> str:
    """Letters and digits only: what no whitespace or hyphenation choice may change."""
    return re.sub(r"[\W_]+", "", s)


def test_pdf_pages_and_words_match_pdfium(service: Service) -> None:
    status, chunks = run_task(service, "multi_page.pdf")
    assert status["progress"]["units_total"] == 5
    pdf = pdfium.PdfDocument(DATA / "multi_page.pdf")
    pages = [_alnum(pdf[i].get_textpage().get_text_range()) for i in range(len(pdf))]
    pdf.close()
    for c in chunks:
        m, text = c["metadata"], _alnum(c["text"])
        assert 1 <= m["page_start"] <= m["page_end"] <= 5
        assert text[:30] in pages[m["page_start"] - 1], (m, text[:30])
        assert text[-30:] in pages[m["page_end"] - 1], (m, text[-30:])
    assert {c["metadata"]["page_start"] for c in chunks} == {1, 2, 3, 4, 5}
    # nothing lost or reordered between pdfium's raw text and the chunks
    assert _alnum(local_text(DATA / "multi_page.pdf")) == "".join(pages)


# The running heads and feet of redp5110_sampled.pdf: the only lines of its text layer that
# parsing drops.
REDP_RUNNING_HEADS = re.compile(
    r"^© Copyright IBM Corp\. 2014\. All rights reserved\.( [ivxlc\d]+)?$"
    r"|^\d+ Row and Column Access Control Support in IBM DB2 for i$"
    r"|^Chapter \d+\. [^.]{1,80} \d+$"
)


def test_pdf_loses_nothing_but_its_running_heads(service: Service) -> None:
    """With running heads dropped, table cells and columns read in their own order, the
    chunks still hold every letter and digit of pdfium's text but those of the running
    heads, and each chunk begins and ends with text of the pages it names."""
    status, chunks = run_task(service, "redp5110_sampled.pdf", text_format="plain")
    assert status["progress"]["units_total"] == 18
    pdf = pdfium.PdfDocument(DATA / "redp5110_sampled.pdf")
    pages, kept, dropped = [], [], 0
    for i in range(len(pdf)):
        lines = pdf[i].get_textpage().get_text_range().splitlines()
        heads = [line for line in lines if REDP_RUNNING_HEADS.match(line.strip())]
        dropped += len(heads)
        pages.append(_alnum("".join(lines)))
        kept.append(_alnum("".join(line for line in lines if line not in heads)))
    pdf.close()
    assert dropped == 14
    for c in chunks:
        m, text = c["metadata"], _alnum(c["text"])
        first, last = m["page_start"], m["page_end"]
        assert 1 <= first <= last <= 18
        span = "".join(pages[first - 1 : last])  # a chunk's ends may straddle a page break
        assert 0 <= span.find(text[:20]) < len(pages[first - 1]), (m, text[:20])
        end = span.rfind(text[-20:])
        assert end >= 0 and len(span) - len(pages[last - 1]) < end + 20, (m, text[-20:])
    whole = _alnum(local_text(DATA / "redp5110_sampled.pdf", "plain"))
    assert sorted(whole) == sorted("".join(kept))


def _headings_of(chunks: list[dict], needle: str) -> list[str]:
    found = [c for c in chunks if needle in c["text"]]
    assert found, f"{needle!r} in no chunk"
    return found[0]["metadata"]["headings"]


def test_docx_headings(service: Service) -> None:
    _, chunks = run_task(service, "unit_test_headers.docx", chunk_size=100, chunk_overlap=0)
    assert _headings_of(chunks, "Paragraph 1.2.3.1") == [
        "Test Document",
        "Section 1",
        "Section 1.2",
        "Section 1.2.3",
    ]
    assert _headings_of(chunks, "Paragraph 2.1.1.1") == [
        "Test Document",
        "Section 2",
        "Section 2.1.1",
    ]


def test_markdown_headings_and_table(service: Service) -> None:
    _, chunks = run_task(service, "mixed.md", chunk_size=200, chunk_overlap=0)
    assert _headings_of(chunks, "Some text") == ["Title"]
    assert _headings_of(chunks, "Here is a table") == ["Title", "Famous ducks"]
    assert _headings_of(chunks, "Scrooge McDuck") == ["Title", "Famous ducks"]
    assert chunks[0]["text"].startswith("# Title")
    assert any(c["text"].startswith("| Character |") for c in chunks)


@pytest.mark.parametrize("text_format", ["plain", "markdown"])
def test_plain_and_markdown_chunks(service: Service, text_format: str) -> None:
    status, chunks = run_task(service, "mixed.md", text_format=text_format, chunk_size=120)
    assert status["state"] == "succeeded" and status["text_format"] == text_format
    check_chunks(chunks, local_text(DATA / "mixed.md", text_format), 120, OVERLAP)
    text = "\n".join(c["text"] for c in chunks)
    assert ("# Title" in text) == (text_format == "markdown")
    assert ("| --- |" in text) == (text_format == "markdown")


def test_same_input_gives_the_same_chunks_as_the_cli(service: Service, tmp_path: Path) -> None:
    status, chunks = run_task(service, "norwich-city.txt", kb_id="kb-same")
    out = tmp_path / "chunks.jsonl"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "knowra_worker",
            "parse",
            str(DATA / "norwich-city.txt"),
            "--chunk-size",
            str(SIZE),
            "--chunk-overlap",
            str(OVERLAP),
            "--out",
            str(out),
            "--task-id",
            status["task_id"],
            "--kb-id",
            "kb-same",
        ],
        check=True,
        capture_output=True,
    )
    import json

    cli = [json.loads(line) for line in out.read_text().splitlines()]
    assert cli == chunks
    _, again = run_task(service, "norwich-city.txt", kb_id="kb-same")
    assert [c["text"] for c in again] == [c["text"] for c in chunks]
    assert not {c["chunk_id"] for c in again} & {c["chunk_id"] for c in chunks}


BAD = [
    ("truncated_multi_page.pdf", "CORRUPT_FILE"),
    ("password.pdf", "ENCRYPTED_FILE"),
    ("zero_bytes.txt", "EMPTY_DOCUMENT"),
    ("gif_renamed.docx", "UNSUPPORTED_FORMAT"),
]


@pytest.mark.parametrize(("name", "code"), BAD)
def test_bad_files_fail_with_their_code_after_one_attempt(
    service: Service, name: str, code: str
) -> None:
    status, chunks = run_task(service, name)
    assert status["state"] == "failed"
    assert status["error"]["code"] == code and status["error"]["retryable"] is False
    assert "Traceback" not in status["error"]["message"] and status["error"]["message"]
    assert status["attempts"] == 1 and chunks == []


def test_worker_survives_bad_files_and_serves_the_next(service: Service) -> None:
    for name, _ in BAD:
        service.start_task(file_path=str(DATA / name))
    status, _ = run_task(service, "mixed.md")
    assert status["state"] == "succeeded"


def test_files_that_vanish_grow_or_escape_fail_with_their_code(service: Service) -> None:
    tmp = service.tmp
    gone = tmp / "gone.txt"
    gone.write_text("soon gone")
    big = tmp / "big.txt"
    with big.open("wb") as f:  # sparse: 3 MiB over the service's 2 MiB limit, no disk used
        f.truncate(3 * 1024 * 1024)
    r = service.start_task(file_path=str(gone))
    gone.unlink()
    st = service.wait_final(r.json()["task_id"])
    assert st["state"] == "failed" and st["error"]["code"] == "FILE_NOT_FOUND", st
    st = service.wait_final(service.start_task(file_path=str(big)).json()["task_id"])
    assert st["state"] == "failed" and st["error"]["code"] == "FILE_TOO_LARGE", st
    link = tmp / "escape.md"
    link.symlink_to("/etc/hostname")
    r = service.start_task(file_path=str(link))
    assert r.status_code == 403 and r.json()["error"]["code"] == "PATH_NOT_ALLOWED"


def test_task_events_stream_until_final(service: Service) -> None:
    r = service.start_task(file_path=str(DATA / "multi_page.pdf"))
    task_id = r.json()["task_id"]
    events = []
    with service.http.stream("GET", "/worker/task_events", params={"task_id": task_id}) as s:
        for line in s.iter_lines():
            if line.startswith("data: "):
                import json

                events.append(json.loads(line[6:]))
    assert events[-1]["state"] == "succeeded"
    done = [e["progress"]["units_done"] for e in events]
    assert done == sorted(done) and done[-1] == 5


def test_callback_receives_the_final_status(service: Service, callback_sink: CallbackSink) -> None:
    ok = service.start_task(file_path=str(DATA / "mixed.md"), callback_url=callback_sink.url)
    bad = service.start_task(file_path=str(DATA / "password.pdf"), callback_url=callback_sink.url)
    posted = {p["task_id"]: p for p in callback_sink.wait(2)}
    assert posted[ok.json()["task_id"]]["state"] == "succeeded"
    assert posted[ok.json()["task_id"]]["progress"]["chunks"] > 0
    assert posted[bad.json()["task_id"]]["error"]["code"] == "ENCRYPTED_FILE"
    assert len(callback_sink.received) == 2


def test_text_format_and_length_unit_are_validated_and_part_of_the_parameters(
    service: Service,
) -> None:
    path = str(DATA / "mixed.md")
    assert service.start_task(file_path=path, text_format="html").status_code == 422
    assert service.start_task(file_path=path, tokenizer="o200k_base").status_code == 422
    assert service.start_task(file_path=path, length_unit="words").status_code == 422
    status, chunks = run_task(
        service, "mixed.md", length_unit="tokens", tokenizer="o200k_base", chunk_size=60,
        chunk_overlap=10,
    )  # fmt: skip
    assert status["state"] == "succeeded" and status["tokenizer"] == "o200k_base"
    count = token_counter("o200k_base").count
    assert chunks and max(count(c["text"]) for c in chunks) <= 60
    assert max(len(c["text"]) for c in chunks) > 60  # sizes counted in tokens
    again = service.start_task(
        task_id=status["task_id"], file_path=str(DATA / "mixed.md"), chunk_size=60,
        chunk_overlap=10, length_unit="tokens", tokenizer="cl100k_base",
    )  # fmt: skip
    assert again.status_code == 409
