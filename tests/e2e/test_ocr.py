"""End to end: scanned PDFs and images read by OCR in the service's worker processes; the
pages read so reach the task status's warnings, and pause and resume work between them."""

from __future__ import annotations

import re
from typing import Any

from ..harness import DATA, Service
from .test_parsing import run_task

TEXT = (
    "Docling bundles PDF document conversion to JSON and Markdown in an easy self contained package"
)
OCR_WARNINGS = [f"page {n} has no text layer; its text was recognised by OCR" for n in (1, 2, 3)]


def words(chunks: list[dict[str, Any]]) -> set[str]:
    return {w for c in chunks for w in re.findall(r"[^\W_]+", c["text"].casefold())}


def pages(chunks: list[dict[str, Any]]) -> tuple[int, int]:
    """The first and the last page the chunks cover."""
    return min(c["metadata"]["page_start"] for c in chunks), max(
        c["metadata"]["page_end"] for c in chunks
    )


def test_a_scanned_pdf_succeeds_with_its_text_and_says_which_pages_were_ocrd(
    service: Service,
) -> None:
    # three image-only pages: the three lines of docling's ocr_test.pdf, cut differently
    status, chunks = run_task(service, "ocr_lines_3p.pdf")
    assert status["state"] == "succeeded", status
    assert status["warnings"] == OCR_WARNINGS
    assert status["progress"]["units_done"] == status["progress"]["units_total"] == 3
    assert words(chunks) == set(TEXT.casefold().split())
    assert pages(chunks) == (1, 3)
    assert "bundles PDF document" in chunks[0]["text"]


def test_a_multi_page_image_succeeds_page_by_page(service: Service) -> None:
    status, chunks = run_task(service, "ocr_lines_2p.tif")
    assert status["state"] == "succeeded", status
    assert status["progress"]["units_total"] == 2 and status["warnings"] == []
    assert words(chunks) == set(TEXT.casefold().split())
    assert pages(chunks) == (1, 2)
    assert chunks[0]["metadata"]["mime_type"] == "image/tiff"


def test_a_paused_scanned_pdf_resumes_to_the_chunks_of_an_uninterrupted_run(
    service: Service,
) -> None:
    _, want = run_task(service, "ocr_lines_3p.pdf", task_id="ocr-straight")
    r = service.start_task(file_path=str(DATA / "ocr_lines_3p.pdf"), task_id="ocr-paused")
    assert r.status_code == 202, r.text
    paused = service.http.post("/worker/pause_task", json={"task_id": "ocr-paused"})
    assert paused.status_code == 200 and paused.json()["state"] in ("pausing", "paused")
    status = service.wait_until("ocr-paused", paused_not_failed)
    assert status["progress"]["units_done"] < 3
    assert service.http.post("/worker/resume_task", json={"task_id": "ocr-paused"}).is_success
    status = service.wait_final("ocr-paused")
    assert status["state"] == "succeeded" and status["warnings"] == OCR_WARNINGS
    got = service.all_chunks("ocr-paused")
    assert [(c["text"], c["seq"]) for c in got] == [(c["text"], c["seq"]) for c in want]
    assert [strip_ids(c["metadata"]) for c in got] == [strip_ids(c["metadata"]) for c in want]


def paused_not_failed(status: dict[str, Any]) -> bool:
    assert status["state"] in ("queued", "running", "pausing", "paused"), status
    return status["state"] == "paused"


def strip_ids(metadata: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata.items() if k not in ("task_id",)}
