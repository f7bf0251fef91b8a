"""Document parsers: type detection, a registry of the formats they declare, a module a format.

    open_document(path) -> Document   detect the type, open it with the matching parser
    detect(path) -> str               the MIME type of the file's content
    supported_formats()               short names: "csv", "docx", "html", "md", "pdf", ...
    supported_mime_types()
    formats()                         every declaration (base.Format)

A parser turns a file into a stream of units (page, slide, sheet, or a bounded run of blocks
for flow formats), each a list of blocks (heading, paragraph, list, table, code); that
vocabulary is `knowra_worker.document`. Each parser module declares what it reads in its
`FORMATS`; see base.py and registry.py.
"""

from knowra_worker.parsers.base import Content, Format, Parser
from knowra_worker.parsers.registry import (
    detect,
    formats,
    open_document,
    register,
    supported_formats,
    supported_mime_types,
)

__all__ = [
    "Content",
    "Format",
    "Parser",
    "detect",
    "formats",
    "open_document",
    "register",
    "supported_formats",
    "supported_mime_types",
]
