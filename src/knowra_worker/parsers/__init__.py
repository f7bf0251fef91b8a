"""Document parsers: type detection, a registry of parsers by MIME type, one module a format.

    open_document(path) -> Document   detect the type, open it with the matching parser
    detect(path) -> str               the MIME type of the file's content
    supported_formats()               short names: "csv", "docx", "html", "md", "pdf", ...
    supported_mime_types()

A parser turns a file into a stream of units (page, slide, sheet, or a bounded run of blocks
for flow formats), each a list of blocks (heading, paragraph, list, table, code); see base.py.
"""

from knowra_worker.parsers.base import Block, BlockKind, Document, Parser, Unit
from knowra_worker.parsers.registry import (
    detect,
    open_document,
    register,
    supported_formats,
    supported_mime_types,
)

__all__ = [
    "Block",
    "BlockKind",
    "Document",
    "Parser",
    "Unit",
    "detect",
    "open_document",
    "register",
    "supported_formats",
    "supported_mime_types",
]
