"""Regenerates the derived samples in this directory (see NOTICE.md). Not a test.

Run from the repository root: python tests/data/make_samples.py
"""

import random
import struct
import zipfile
import zlib
from pathlib import Path

HERE = Path(__file__).parent
CORPUS = HERE.resolve().parents[2] / "shared" / "corpus"  # beside the repository
UDHR = CORPUS / "unstructured/example-docs/language-docs/UDHR_first_article_all.txt"


def udhr_lines(numbers: list[int]) -> list[str]:
    lines = UDHR.read_text(encoding="utf-8").splitlines()
    return [lines[n - 1] for n in numbers]


def png_1x1() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def main() -> None:
    # English, French, German, Greek, Russian: first article of the UDHR, blank-line separated.
    multilingual = "\n\n".join(udhr_lines([365, 407, 452, 464, 1127])) + "\n"
    (HERE / "text_utf8_bom.txt").write_bytes(multilingual.encode("utf-8-sig"))
    (HERE / "text_utf16le_bom.txt").write_bytes(multilingual.encode("utf-16"))  # LE + BOM
    (HERE / "text_utf16be_bom.txt").write_bytes(b"\xfe\xff" + multilingual.encode("utf-16-be"))
    # Chinese (Mandarin, simplified), repeated from several UDHR variants, in GBK.
    chinese = "\n\n".join(udhr_lines([245, 248, 251, 254, 257, 281])) + "\n"
    (HERE / "text_gbk.txt").write_bytes(chinese.encode("gbk"))
    # The <pre> text of fake-html-cp1252.html, as a cp1252 text file.
    html = (HERE / "fake-html-cp1252.html").read_bytes().decode("cp1252")
    pre = html.split("<pre>")[1].split("</pre>")[0].strip("\n")
    (HERE / "text_cp1252.txt").write_bytes(pre.replace("\n", "\n\n").encode("cp1252"))
    # War and Peace, first page, with Windows line ends.
    book = (HERE / "book-war-and-peace-1p.txt").read_text(encoding="utf-8")
    (HERE / "text_crlf.txt").write_bytes(book.replace("\n", "\r\n").encode("utf-8"))
    # Bad files.
    (HERE / "zero_bytes.txt").write_bytes(b"")
    (HERE / "image_renamed.docx").write_bytes(png_1x1())
    (HERE / "truncated_multi_page.pdf").write_bytes((HERE / "multi_page.pdf").read_bytes()[:64_000])
    rng = random.Random(1234)
    (HERE / "garbage.bin").write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    (HERE / "not_a_zip.docx").write_bytes(
        b"PK\x03\x04" + bytes(rng.randrange(256) for _ in range(2048))
    )
    ooxml_variants()


# Macro-enabled, template and slide-show packages: a sample's main part given another type.
_OOXML = "application/vnd.openxmlformats-officedocument"
_VARIANTS = {
    "tablecell.docx": (f"{_OOXML}.wordprocessingml.document.main+xml", {
        ".docm": "application/vnd.ms-word.document.macroEnabled.main+xml",
        ".dotx": f"{_OOXML}.wordprocessingml.template.main+xml",
        ".dotm": "application/vnd.ms-word.template.macroEnabledTemplate.main+xml",
    }),
    "powerpoint_sample.pptx": (f"{_OOXML}.presentationml.presentation.main+xml", {
        ".pptm": "application/vnd.ms-powerpoint.presentation.macroEnabled.main+xml",
        ".ppsx": f"{_OOXML}.presentationml.slideshow.main+xml",
        ".ppsm": "application/vnd.ms-powerpoint.slideshow.macroEnabled.main+xml",
        ".potx": f"{_OOXML}.presentationml.template.main+xml",
        ".potm": "application/vnd.ms-powerpoint.template.macroEnabled.main+xml",
    }),
    "xlsx_03_chartsheet.xlsx": (f"{_OOXML}.spreadsheetml.sheet.main+xml", {
        ".xlsm": "application/vnd.ms-excel.sheet.macroEnabled.main+xml",
        ".xltx": f"{_OOXML}.spreadsheetml.template.main+xml",
        ".xltm": "application/vnd.ms-excel.template.macroEnabled.main+xml",
    }),
}  # fmt: skip


def ooxml_variants() -> None:
    for source, (main_type, variants) in _VARIANTS.items():
        for suffix, content_type in variants.items():
            target = HERE / f"{Path(source).stem}{suffix}"
            with zipfile.ZipFile(HERE / source) as archive, zipfile.ZipFile(target, "w") as out:
                for info in archive.infolist():
                    data = archive.read(info)
                    if info.filename == "[Content_Types].xml":
                        data = data.replace(main_type.encode(), content_type.encode())
                    out.writestr(info, data)


if __name__ == "__main__":
    main()
