"""Character-encoding detection for text-like files (plain text, Markdown, CSV, HTML).

Order: a byte-order mark wins; then BOM-less UTF-16 (NUL bytes in every other position); then
strict UTF-8; then charset-normalizer on a bounded sample. A guess is accepted only if the
sample, decoded with it, looks like text (few control characters), which is also how type
detection tells text from binary data.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import IO

import charset_normalizer

from knowra_worker.parsers._common import io_error

SAMPLE_SIZE = 64 * 1024

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Controls that do occur in real text files: tab, newlines, form feed, vertical tab, escape.
_TEXT_CONTROLS = frozenset("\t\n\r\f\v\x1b")
_MAX_BAD_RATIO = 0.02
# Encodings that decode the same bytes equally well are many (cp1250, cp1252, latin-1...);
# among equally good guesses prefer the most common one.
_PREFERRED = ("utf_8", "cp1252", "gb18030", "shift_jis", "euc_kr", "big5")


def bom_encoding(data: bytes) -> str | None:
    """The codec for a byte-order mark at the start of `data`, if there is one."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    return None


def bom_length(data: bytes) -> int:
    for bom, _ in _BOMS:
        if data.startswith(bom):
            return len(bom)
    return 0


def read_sample(path: Path, size: int = SAMPLE_SIZE) -> tuple[bytes, bool]:
    """The first `size` bytes of the file and whether that is the whole file."""
    try:
        with path.open("rb") as handle:
            data = handle.read(size + 1)
    except OSError as exc:
        raise io_error(exc) from exc
    return data[:size], len(data) <= size


def decode_sample(sample: bytes, encoding: str, *, complete: bool) -> str:
    """Decode a prefix of a file, tolerating a multi-byte character cut at its end."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    return decoder.decode(sample, final=complete)


def sniff_encoding(sample: bytes, *, complete: bool) -> str | None:
    """The encoding of a text sample, or None when the sample does not look like text."""
    encoding = bom_encoding(sample)
    if encoding is None and b"\x00" in sample:
        encoding = _utf16_without_bom(sample)
    if encoding is None:
        if _is_utf8(sample, complete=complete):
            encoding = "utf-8"
        else:
            encoding = _guess(sample, complete=complete)
    if encoding is None or not looks_like_text(decode_sample(sample, encoding, complete=complete)):
        return None
    return encoding


def looks_like_text(text: str) -> bool:
    """Few control characters and replacement characters: text rather than binary data."""
    if not text:
        return True
    bad = sum(1 for ch in text if (ch < " " and ch not in _TEXT_CONTROLS) or ch == "\ufffd")
    return bad / len(text) <= _MAX_BAD_RATIO


def file_encoding(path: Path) -> str:
    """The encoding to read a text file with (UTF-8 when nothing better is found)."""
    sample, complete = read_sample(path)
    return sniff_encoding(sample, complete=complete) or "utf-8"


def open_text(path: Path, encoding: str, newline: str | None = None) -> IO[str]:
    """Open a text file for streaming decoding; undecodable bytes become U+FFFD."""
    try:
        return path.open("r", encoding=encoding, errors="replace", newline=newline)
    except OSError as exc:
        raise io_error(exc) from exc


def _is_utf8(sample: bytes, *, complete: bool) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    try:
        decoder.decode(sample, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def _utf16_without_bom(sample: bytes) -> str | None:
    """UTF-16 text of mostly Latin script has NUL in every other byte; binary data does not."""
    even = sample[0::2]
    odd = sample[1::2]
    if not even or not odd:
        return None
    even_nul = even.count(0) / len(even)
    odd_nul = odd.count(0) / len(odd)
    if odd_nul > 0.3 and even_nul < 0.02:
        return "utf-16-le"
    if even_nul > 0.3 and odd_nul < 0.02:
        return "utf-16-be"
    return None


def _guess(sample: bytes, *, complete: bool) -> str | None:
    if not complete:
        # Cut at the last line break so that the sample does not end inside a character.
        cut = sample.rfind(b"\n")
        if cut > len(sample) // 2:
            sample = sample[: cut + 1]
    matches = list(charset_normalizer.from_bytes(sample))
    if not matches:
        return None
    best = matches[0]
    equally_good = [
        m for m in matches if m.chaos <= best.chaos + 0.01 and m.coherence >= best.coherence - 0.01
    ]
    for preferred in _PREFERRED:
        for match in equally_good:
            if preferred in match.could_be_from_charset:
                return preferred
    return str(best.encoding)
