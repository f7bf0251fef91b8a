"""Regenerates the derived OCR samples in this directory (see NOTICE.md). Not a test.

Run from the repository root: python tests/data/make_ocr_samples.py
"""

from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image

HERE = Path(__file__).parent
CORPUS = HERE.resolve().parents[2] / "shared" / "corpus"  # beside the repository
DOCLING = CORPUS / "docling"
UNSTRUCTURED = CORPUS / "unstructured" / "example-docs"


def render(pdf_path: Path, dpi: int) -> Image.Image:
    pdf = pdfium.PdfDocument(pdf_path)
    try:
        return pdf[0].render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
    finally:
        pdf.close()


def scanned_pdf() -> None:
    """A paper page with a known ground truth, as a scan: an image-only PDF."""
    page = render(DOCLING / "pdf/sources/2305.03393v1-pg9.pdf", 150)
    page.save(HERE / "scanned_2305.03393v1-pg9.pdf", "PDF", resolution=150, quality=85)
    truth = (DOCLING / "pdf/groundtruth/2305.03393v1-pg9.md").read_text(encoding="utf-8")
    (HERE / "scanned_2305.03393v1-pg9.pdf.md").write_text(truth, encoding="utf-8")


def image_truth() -> None:
    """The text layer of the PDF that layout-parser-paper-fast.jpg is a picture of."""
    pdf = pdfium.PdfDocument(UNSTRUCTURED / "pdf/layout-parser-paper-fast.pdf")
    try:
        text = pdf[0].get_textpage().get_text_range()
    finally:
        pdf.close()
    target = HERE / "layout-parser-paper-fast.jpg.txt"
    target.write_text(text.replace("\r\n", "\n"), encoding="utf-8")


def small_images() -> None:
    """The three lines of docling's ocr_test.pdf, cropped, in every image format."""
    lines = render(DOCLING / "ocr/sources/ocr_test.pdf", 100).crop((85, 90, 720, 225))
    lines.save(HERE / "ocr_lines.png", optimize=True)
    lines.save(HERE / "ocr_lines.jpg", quality=70)
    lines.save(HERE / "ocr_lines.webp", quality=70)
    lines.point(lambda v: 255 if v > 128 else 0).convert("1").save(HERE / "ocr_lines.bmp")
    first, second = lines.crop((0, 0, 635, 88)), lines.crop((0, 88, 635, 135))
    pages = [page.point(lambda v: 255 if v > 128 else 0).convert("1") for page in (first, second)]
    pages[0].save(
        HERE / "ocr_lines_2p.tif", save_all=True, append_images=pages[1:], compression="group4"
    )
    # three scanned pages, each the lines cut at another place, as an image-only PDF
    scans = [lines.convert("L"), *(page.convert("L") for page in (first, second))]
    scans[0].save(
        HERE / "ocr_lines_3p.pdf", "PDF", resolution=100, save_all=True, append_images=scans[1:]
    )


def main() -> None:
    scanned_pdf()
    image_truth()
    small_images()


if __name__ == "__main__":
    main()
