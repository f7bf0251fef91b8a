"""File type detection by content: magic bytes first, the file name's extension second.

`detect_type(path, formats)` answers a MIME type for any readable, non-empty file; whether a
parser exists for it is the registry's business. It raises only for what is certain from the
bytes alone: an empty file (EmptyDocument) and a password-protected Office file
(EncryptedFile).

Order of checks:
1. PDF header (`%PDF-`), at the start or, as pdfium tolerates, after junk within 1 KB;
2. ZIP containers, told apart by their entries (DOCX, PPTX, XLSX, ODF, EPUB, ...); a damaged
   one by the extension of a declared PACKAGE format;
3. OLE2 compound files (legacy .doc/.xls/.ppt/.msg, or encrypted OOXML);
4. the magic bytes of declared BINARY formats, then images and other well-known formats;
5. text: it must decode (BOM, UTF-8, charset-normalizer) to something that looks like text;
   then HTML by sniffing, and the extension chooses among the declared TEXT formats
   (Markdown, CSV, ...), plain text when none claims it.

`formats` are the parsers' declarations (see base.Format), which the registry collects. The
rules and names below describe what the bytes say, including formats no parser reads (legacy
Office, images, archives), so that an unsupported file is named precisely.
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

from knowra_worker.errors import EmptyDocument, EncryptedFile, LimitExceeded
from knowra_worker.parsers._common import io_error
from knowra_worker.parsers._encoding import (
    SAMPLE_SIZE,
    decode_sample,
    sniff_encoding,
)
from knowra_worker.parsers.base import Content, Format

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# The macro-enabled and template variants of the OOXML packages (same content, other types).
DOCM = "application/vnd.ms-word.document.macroEnabled.12"
DOTX = "application/vnd.openxmlformats-officedocument.wordprocessingml.template"
DOTM = "application/vnd.ms-word.template.macroEnabled.12"
PPTM = "application/vnd.ms-powerpoint.presentation.macroEnabled.12"
PPSX = "application/vnd.openxmlformats-officedocument.presentationml.slideshow"
PPSM = "application/vnd.ms-powerpoint.slideshow.macroEnabled.12"
POTX = "application/vnd.openxmlformats-officedocument.presentationml.template"
POTM = "application/vnd.ms-powerpoint.template.macroEnabled.12"
XLSM = "application/vnd.ms-excel.sheet.macroEnabled.12"
XLTX = "application/vnd.openxmlformats-officedocument.spreadsheetml.template"
XLTM = "application/vnd.ms-excel.template.macroEnabled.12"
HTML = "text/html"
PLAIN = "text/plain"
XML = "application/xml"
JSON = "application/json"
EML = "message/rfc822"
ZIP = "application/zip"
OLE = "application/x-ole-storage"
BINARY = "application/octet-stream"

# Names for the messages about types no parser reads, and the extensions each normally has.
TYPE_NAMES: dict[str, tuple[str, tuple[str, ...]]] = {
    XML: ("XML document", (".xml",)),
    ZIP: ("ZIP archive", (".zip",)),
    OLE: ("OLE2 compound file", ()),
    BINARY: ("unrecognised binary file", ()),
    "application/msword": ("legacy Word 97-2003 document", (".doc",)),
    "application/vnd.ms-excel": ("legacy Excel 97-2003 workbook", (".xls",)),
    "application/vnd.ms-powerpoint": ("legacy PowerPoint 97-2003 presentation", (".ppt",)),
    "application/vnd.ms-outlook": ("Outlook message", (".msg",)),
    "application/vnd.oasis.opendocument.text": ("OpenDocument text", (".odt",)),
    "application/vnd.oasis.opendocument.spreadsheet": ("OpenDocument spreadsheet", (".ods",)),
    "application/vnd.oasis.opendocument.presentation": ("OpenDocument presentation", (".odp",)),
    "application/epub+zip": ("EPUB e-book", (".epub",)),
    "application/rtf": ("RTF document", (".rtf",)),
    "application/vnd.apple.pages": ("Apple Pages document", (".pages",)),
    "application/vnd.apple.numbers": ("Apple Numbers spreadsheet", (".numbers",)),
    "application/vnd.apple.keynote": ("Apple Keynote presentation", (".key",)),
    "application/postscript": ("PostScript document", (".ps", ".eps")),
    "application/gzip": ("gzip archive", (".gz",)),
    "application/x-7z-compressed": ("7-Zip archive", (".7z",)),
    "application/vnd.rar": ("RAR archive", (".rar",)),
    "application/x-xz": ("xz archive", (".xz",)),
    "image/png": ("PNG image", (".png",)),
    "image/jpeg": ("JPEG image", (".jpg", ".jpeg")),
    "image/gif": ("GIF image", (".gif",)),
    "image/tiff": ("TIFF image", (".tif", ".tiff")),
    "image/webp": ("WebP image", (".webp",)),
    "image/bmp": ("BMP image", (".bmp",)),
    "image/heic": ("HEIC image", (".heic", ".heif")),
    "image/avif": ("AVIF image", (".avif",)),
    "image/svg+xml": ("SVG image", (".svg",)),
    "video/mp4": ("MP4/QuickTime media file", (".mp4", ".m4a", ".mov")),
    "audio/wav": ("WAV audio", (".wav",)),
    "audio/mpeg": ("MP3 audio", (".mp3",)),
    "audio/ogg": ("Ogg media file", (".ogg", ".oga", ".opus")),
    "audio/flac": ("FLAC audio", (".flac",)),
}

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"{\\rtf", "application/rtf"),
    (b"%!PS", "application/postscript"),
    (b"\x1f\x8b", "application/gzip"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"Rar!\x1a\x07", "application/vnd.rar"),
    (b"\xfd7zXZ\x00", "application/x-xz"),
    (b"ID3", "audio/mpeg"),
    (b"OggS", "audio/ogg"),
    (b"fLaC", "audio/flac"),
)
_RIFF_TYPES = {b"WEBP": "image/webp", b"WAVE": "audio/wav"}
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1"}
_BMP_HEADER_SIZES = {12, 40, 52, 56, 64, 108, 124}

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_OLE_SCAN = 64 * 1024
_OLE_STREAMS: tuple[tuple[str, str], ...] = (
    ("WordDocument", "application/msword"),
    ("Workbook", "application/vnd.ms-excel"),
    ("Book", "application/vnd.ms-excel"),
    ("PowerPoint Document", "application/vnd.ms-powerpoint"),
    ("__substg1.0_", "application/vnd.ms-outlook"),
)

# Main-part content types of the OOXML packages, from [Content_Types].xml.
_OOXML_MAIN: tuple[tuple[str, str], ...] = (
    ("wordprocessingml.document.main+xml", DOCX),
    ("wordprocessingml.template.main+xml", DOTX),
    ("ms-word.document.macroEnabled.main+xml", DOCM),
    ("ms-word.template.macroEnabledTemplate.main+xml", DOTM),
    ("presentationml.presentation.main+xml", PPTX),
    ("presentationml.slideshow.main+xml", PPSX),
    ("presentationml.template.main+xml", POTX),
    ("ms-powerpoint.presentation.macroEnabled.main+xml", PPTM),
    ("ms-powerpoint.slideshow.macroEnabled.main+xml", PPSM),
    ("ms-powerpoint.template.macroEnabled.main+xml", POTM),
    ("spreadsheetml.sheet.main+xml", XLSX),
    ("spreadsheetml.template.main+xml", XLTX),
    ("ms-excel.sheet.macroEnabled.main+xml", XLSM),
    ("ms-excel.template.macroEnabled.main+xml", XLTM),
)
_OOXML_DIRS = (("word/", DOCX), ("ppt/", PPTX), ("xl/", XLSX))
_IWORK_EXTENSIONS = {
    ".pages": "application/vnd.apple.pages",
    ".numbers": "application/vnd.apple.numbers",
    ".key": "application/vnd.apple.keynote",
}
_IWORK_ENTRIES = ("index.xml", "Index/", "QuickLook/")
_MAX_CONTENT_TYPES = 1024 * 1024
MAX_UNPACKED_BYTES = 512 * 2**20  # all parts of a ZIP package (DOCX, PPTX, XLSX), unpacked
# What zipfile raises for a damaged archive (UnicodeDecodeError is a ValueError).
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    ValueError,
    RuntimeError,
    NotImplementedError,
)

_STRONG_HTML = re.compile(r"<!doctype\s+html|<html[\s>]")
_WEAK_HTML = re.compile(r"<(head|body|div|p|table|meta|title|h[1-6]|section|article|span)[\s>/]")
_LEADING_COMMENTS = re.compile(r"^(\s*<!--.*?-->)*\s*", re.DOTALL)
_SNIFF_CHARS = 1024


def detect_type(path: Path, formats: Sequence[Format]) -> str:
    """The MIME type of the file's content (see the module docstring for the rules)."""
    head, size = _read_head(path)
    if size == 0:
        raise EmptyDocument("the file is empty (0 bytes)")
    extension = path.suffix.lower()
    if _is_pdf(head, path, extension):
        return PDF
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_type(path, _declared(formats, Content.PACKAGE, extension))
    if head.startswith(_OLE_MAGIC):
        return _ole_type(path, head)
    binary = _binary_type(head, formats)
    if binary is not None:
        return binary
    text_type = _declared(formats, Content.TEXT, extension)
    return _text_type(head, complete=size <= len(head), extension=extension, declared=text_type)


def type_name(mime_type: str) -> str:
    """A human-readable name for a MIME type no parser reads, for messages."""
    if mime_type in TYPE_NAMES:
        return TYPE_NAMES[mime_type][0]
    if mime_type.startswith("image/"):
        return "image"
    return "file"


def mismatch_note(mime_type: str, path: Path) -> str:
    """A note when the content's type does not match the file name's extension, else ''."""
    extension = path.suffix.lower()
    expected = TYPE_NAMES.get(mime_type, ("", ()))[1]
    if not extension or not expected or extension in expected:
        return ""
    return f" although its name ends in '{extension}'"


def _declared(formats: Sequence[Format], content: Content, extension: str) -> str | None:
    """The MIME type of the declared format of this content that claims the extension."""
    for declared in formats:
        if declared.content is content and extension in declared.extensions:
            return declared.mime_type
    return None


# --- reading ---------------------------------------------------------------------------


def _read_head(path: Path) -> tuple[bytes, int]:
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(0)
            return handle.read(SAMPLE_SIZE), size
    except OSError as exc:
        raise io_error(exc) from exc


def _read_tail(path: Path, length: int) -> bytes:
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - length))
            return handle.read(length)
    except OSError as exc:
        raise io_error(exc) from exc


# --- binary formats --------------------------------------------------------------------


def _is_pdf(head: bytes, path: Path, extension: str) -> bool:
    offset = head.find(b"%PDF-", 0, 1024)
    if offset == 0:
        return True
    if offset < 0:
        return False
    # Junk before the header (pdfium accepts up to 1 KB): demand some other sign of a PDF.
    return extension == ".pdf" or b"%%EOF" in _read_tail(path, 2048)


def _zip_type(path: Path, by_extension: str | None) -> str:
    """The package's type from its entries; `by_extension` is the declared PACKAGE format
    its name claims, if any."""
    try:
        with zipfile.ZipFile(path) as archive:
            _check_unpacked_size(archive)
            names = archive.namelist()
            declared = _declared_type(archive, names)
    except _ZIP_ERRORS:
        # A damaged package: trust the extension so that its parser reports CORRUPT_FILE.
        return by_extension or ZIP
    except OSError as exc:
        raise io_error(exc) from exc
    if declared:
        return declared
    for prefix, mime_type in _OOXML_DIRS:
        if any(name.startswith(prefix) for name in names):
            return mime_type
    extension = path.suffix.lower()
    if extension in _IWORK_EXTENSIONS and any(n.startswith(_IWORK_ENTRIES) for n in names):
        return _IWORK_EXTENSIONS[extension]
    return ZIP


def _check_unpacked_size(archive: zipfile.ZipFile) -> None:
    """Refuse a package that would unpack to more than MAX_UNPACKED_BYTES (a zip bomb):
    its parts are read whole, so their declared sizes bound the memory a parser needs."""
    total = sum(info.file_size for info in archive.infolist())
    if total > MAX_UNPACKED_BYTES:
        raise LimitExceeded(
            f"the package unpacks to {total / 2**20:.0f} MiB, more than the "
            f"{MAX_UNPACKED_BYTES / 2**20:.0f} MiB this service accepts"
        )


def _declared_type(archive: zipfile.ZipFile, names: list[str]) -> str | None:
    """The type named inside the package ([Content_Types].xml or ODF/EPUB 'mimetype')."""
    try:
        if "[Content_Types].xml" in names:
            info = archive.getinfo("[Content_Types].xml")
            if info.file_size <= _MAX_CONTENT_TYPES:
                found = _ooxml_type(archive.read(info).decode("utf-8", "replace"))
                if found:
                    return found
        if "mimetype" in names:
            return _declared_mimetype(archive)
    except _ZIP_ERRORS:
        return None  # a damaged entry: fall back on the entry names
    return None


def _ooxml_type(content_types: str) -> str | None:
    for marker, mime_type in _OOXML_MAIN:
        if marker in content_types:
            return mime_type
    return None


def _declared_mimetype(archive: zipfile.ZipFile) -> str:
    """ODF and EPUB store their MIME type in a first entry called 'mimetype'."""
    declared = archive.read("mimetype")[:200].decode("ascii", "replace").strip()
    return declared if re.fullmatch(r"[\w.+-]+/[\w.+-]+", declared) else ZIP


def _ole_type(path: Path, head: bytes) -> str:
    """Legacy Office files and encrypted OOXML packages share the OLE2 container."""
    # The directory entries (UTF-16LE stream names) sit near the start or near the end.
    window = head[:_OLE_SCAN] + _read_tail(path, _OLE_SCAN)
    if "EncryptedPackage".encode("utf-16-le") in window:
        raise EncryptedFile(
            "the file is a password-protected (encrypted) Office document; "
            "remove the password and submit it again"
        )
    for stream, mime_type in _OLE_STREAMS:
        if stream.encode("utf-16-le") in window:
            return mime_type
    return OLE


def _binary_type(head: bytes, formats: Sequence[Format]) -> str | None:
    for declared in formats:
        if declared.content is Content.BINARY and head.startswith(declared.magic):
            return declared.mime_type
    for magic, mime_type in _MAGIC:
        if head.startswith(magic):
            return mime_type
    if head[:4] == b"RIFF" and head[8:12] in _RIFF_TYPES:
        return _RIFF_TYPES[head[8:12]]
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return "image/heic"
        return "image/avif" if brand in {b"avif", b"avis"} else "video/mp4"
    if _is_bmp(head):
        return "image/bmp"
    return None


def _is_bmp(head: bytes) -> bool:
    if len(head) < 18 or head[:2] != b"BM":
        return False
    return int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES


# --- text formats ----------------------------------------------------------------------


def _text_type(head: bytes, *, complete: bool, extension: str, declared: str | None) -> str:
    """Markup the first characters show, else `declared` (the TEXT format the extension
    names), else plain text."""
    encoding = sniff_encoding(head, complete=complete)
    if encoding is None:
        return BINARY
    start = head[: 4 * _SNIFF_CHARS]
    whole = complete and len(start) == len(head)
    prefix = decode_sample(start, encoding, complete=whole)[: 2 * _SNIFF_CHARS]
    prefix = _LEADING_COMMENTS.sub("", prefix.lstrip("\ufeff"), count=1).lower()
    markup = _markup_type(prefix[:_SNIFF_CHARS], declared)
    if markup is not None:
        return markup
    if declared in (None, PLAIN):  # the name says nothing more specific: the content may
        sniffed = _structured_type(prefix, whole, markup=declared is None)
        if sniffed is not None:
            return sniffed
    return declared or PLAIN


_HEADER_LINE = re.compile(r"([a-z][a-z0-9-]*):[^\n]*\n((?:[ \t][^\n]*\n)*)")
_MAIL_HEADERS = frozenset(
    "from to cc subject date received message-id mime-version return-path reply-to".split()
)
_JSON_START = re.compile(r"\s*(\{\s*(\"|\})|\[\s*(\{|\[|\"|-?\d|true|false|null|\]))")
_JSON_OPENS_RECORDS = re.compile(r"\s*(\{\s*\"[^\"\n]*\"\s*:|\[\s*\{\s*\")")
_XML_ROOT = re.compile(r"<([a-z_][\w.:-]*)[\s>/]")


def _structured_type(prefix: str, whole: bool, markup: bool) -> str | None:
    """An e-mail (a block of RFC 5322 header lines naming at least two usual mail headers),
    JSON (an object or array, the whole of it parsing when the sample is the whole file),
    or, with `markup` (no extension names the file's kind: a text file may well begin with
    a tag), XML (a root element and a closing tag), from the first characters of a file."""
    names, position = set(), 0
    while match := _HEADER_LINE.match(prefix, position):
        names.add(match.group(1))
        position = match.end()
    if position and len(names & _MAIL_HEADERS) >= 2 and len(names) >= 3:
        return EML
    if whole and len(prefix) < 2 * _SNIFF_CHARS and _JSON_START.match(prefix):
        try:  # the whole file is here: it must parse
            json.loads(prefix)
        except ValueError:
            return None
        return JSON
    if _JSON_OPENS_RECORDS.match(prefix):  # a longer file: an object, or an array of them
        return JSON
    if markup and _XML_ROOT.match(prefix) and "</" in prefix:
        return XML
    return None


def _markup_type(prefix: str, declared: str | None) -> str | None:
    """HTML, XML or SVG from the first characters of a text file, if they say so."""
    if prefix.startswith("<?xml"):
        if _STRONG_HTML.search(prefix):
            return HTML
        if "<svg" in prefix:
            return "image/svg+xml"
        return HTML if declared == HTML else XML
    if _STRONG_HTML.match(prefix):
        return HTML
    if prefix.startswith("<svg"):
        return "image/svg+xml"
    # Markdown and text files may well begin with a tag: trust their extension.
    if declared is None and _WEAK_HTML.match(prefix):
        return HTML
    return None
