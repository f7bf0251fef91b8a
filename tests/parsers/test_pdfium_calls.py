"""The lean prototypes of pdfium's functions answer what pypdfium2's own bindings answer, on
every character and object of real pages (a page with ruled tables, and a text page)."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest

from knowra_worker.parsers._pdfium_calls import address, calls

from .conftest import DATA


@pytest.mark.parametrize(
    ("name", "index"), [("2305.03393v1-pg9.pdf", 0), ("redp5110_sampled.pdf", 2)]
)
def test_they_answer_as_the_bindings_do(name: str, index: int) -> None:
    fast = calls()
    pdf = pdfium.PdfDocument(Path(DATA / name))
    page = pdf[index]
    textpage = page.get_textpage()
    try:
        handle, text = address(page.raw), address(textpage.raw)
        objects = pdfium_c.FPDFPage_CountObjects(page.raw)
        assert objects > 0
        paths = 0
        for i in range(objects):
            obj = pdfium_c.FPDFPage_GetObject(page.raw, i)
            assert fast.page_object(handle, i) == address(obj)
            kind = pdfium_c.FPDFPageObj_GetType(obj)
            assert fast.object_type(address(obj)) == kind
            if kind != pdfium_c.FPDF_PAGEOBJ_PATH:
                continue
            paths += 1
            fill, stroke = ctypes.c_int(0), ctypes.c_int(0)
            ok = pdfium_c.FPDFPath_GetDrawMode(obj, ctypes.byref(fill), ctypes.byref(stroke))
            fill2, stroke2 = ctypes.c_int(0), ctypes.c_int(0)
            args = [ctypes.addressof(fill2), ctypes.addressof(stroke2)]
            assert fast.draw_mode(address(obj), *args) == ok
            assert (fill2.value, stroke2.value) == (fill.value, stroke.value)
            bounds = [ctypes.c_float(0) for _ in range(4)]
            bounds2 = [ctypes.c_float(0) for _ in range(4)]
            ok = pdfium_c.FPDFPageObj_GetBounds(obj, *(ctypes.byref(v) for v in bounds))
            assert fast.object_bounds(address(obj), *map(ctypes.addressof, bounds2)) == ok
            assert [v.value for v in bounds2] == [v.value for v in bounds]
        assert index != 0 or paths > 0  # the table page draws its rules
        name_buffer, flags = ctypes.create_string_buffer(128), ctypes.c_int(0)
        name_buffer2, flags2 = ctypes.create_string_buffer(128), ctypes.c_int(0)
        box = pdfium_c.FS_RECTF()
        chars = textpage.count_chars()
        assert chars > 100
        for i in range(chars):
            expected = textpage.get_charbox(i, loose=True)
            assert fast.loose_char_box(text, i, ctypes.addressof(box))
            assert (box.left, box.bottom, box.right, box.top) == pytest.approx(expected)
            weight = pdfium_c.FPDFText_GetFontWeight(textpage.raw, i)
            assert fast.font_weight(text, i) == weight
            size = pdfium_c.FPDFText_GetFontInfo(
                textpage.raw, i, name_buffer, 128, ctypes.byref(flags)
            )
            size2 = fast.font_info(
                text, i, ctypes.addressof(name_buffer2), 128, ctypes.addressof(flags2)
            )
            assert (size2, name_buffer2.value, flags2.value) == (
                size,
                name_buffer.value,
                flags.value,
            )
    finally:
        textpage.close()
        page.close()
        pdf.close()
