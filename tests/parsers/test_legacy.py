"""Legacy binary Office files and Outlook messages are refused, naming their format."""

from __future__ import annotations

import pytest

from knowra_worker.errors import UnsupportedFormat
from knowra_worker.parsers import registry

from .conftest import DATA


@pytest.mark.parametrize(
    ("name", "mime_type", "named"),
    [
        ("fake.doc", "application/msword", "legacy Word 97-2003 document"),
        ("legacy_sample.xls", "application/vnd.ms-excel", "legacy Excel 97-2003 workbook"),
        (
            "legacy_sample.ppt",
            "application/vnd.ms-powerpoint",
            "legacy PowerPoint 97-2003 presentation",
        ),
        ("msg_simple.msg", "application/vnd.ms-outlook", "Outlook message"),
    ],
)
def test_legacy_binary_formats_are_unsupported(name: str, mime_type: str, named: str) -> None:
    assert registry.detect(DATA / name) == mime_type
    with pytest.raises(UnsupportedFormat) as raised:
        registry.open_document(DATA / name)
    assert raised.value.code == "UNSUPPORTED_FORMAT"
    assert f"{named} ({mime_type})" in raised.value.message
