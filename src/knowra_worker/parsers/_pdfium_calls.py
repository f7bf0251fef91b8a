"""pdfium's functions as the PDF parser's per-line and per-object loops call them.

pypdfium2 declares pdfium's handles as typed pointers: every call checks each argument's
type and wraps a returned handle in a new pointer object. The loops that call pdfium for
every line of a page or every object on it use these prototypes of the same functions of
the same library instead, handles and buffers given as plain addresses (`c_void_p`): a
call costs about a quarter less. Like any pdfium call, with pdf.PDFIUM_LOCK held.
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Calls:
    """The functions, each named after pdfium's, with handles as addresses (int)."""

    page_object: Any  # FPDFPage_GetObject(page, index) -> object
    object_type: Any  # FPDFPageObj_GetType(object) -> FPDF_PAGEOBJ_*
    draw_mode: Any  # FPDFPath_GetDrawMode(path, int* fill mode, int* stroke) -> ok
    object_bounds: Any  # FPDFPageObj_GetBounds(object, float* left, bottom, right, top) -> ok
    loose_char_box: Any  # FPDFText_GetLooseCharBox(textpage, index, FS_RECTF*) -> ok
    font_weight: Any  # FPDFText_GetFontWeight(textpage, index) -> weight or -1
    font_info: Any  # FPDFText_GetFontInfo(textpage, index, buffer, size, int* flags) -> size


def address(handle: Any) -> int:
    """A pypdfium2 handle (a typed pointer) as the address these functions take."""
    return ctypes.cast(handle, ctypes.c_void_p).value or 0


@functools.cache
def calls() -> Calls:
    import pypdfium2.raw as pdfium_c  # loaded with the first document, not on import

    handle, number, ok, size = ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_ulong

    def declare(function: Any, restype: Any, *argtypes: Any) -> Any:
        return ctypes.CFUNCTYPE(restype, *argtypes)(address(function))

    return Calls(
        page_object=declare(pdfium_c.FPDFPage_GetObject, handle, handle, number),
        object_type=declare(pdfium_c.FPDFPageObj_GetType, number, handle),
        draw_mode=declare(pdfium_c.FPDFPath_GetDrawMode, ok, handle, handle, handle),
        object_bounds=declare(
            pdfium_c.FPDFPageObj_GetBounds, ok, handle, handle, handle, handle, handle
        ),
        loose_char_box=declare(pdfium_c.FPDFText_GetLooseCharBox, ok, handle, number, handle),
        font_weight=declare(pdfium_c.FPDFText_GetFontWeight, number, handle, number),
        font_info=declare(
            pdfium_c.FPDFText_GetFontInfo, size, handle, number, handle, size, handle
        ),
    )
