"""Token counting for `"length_unit": "tokens"`: tiktoken encodings loaded from package data.

tiktoken fetches its BPE files from the network on first use, which a worker must never do
(DESIGN.md: nothing downloads models or data at run time). The files of the two encodings
offered ship gzip-compressed in `knowra_worker/bpe/`, byte for byte the published ones: each
is checked against the published SHA-256 before use, and the Encoding is built from its
mergeable ranks with tiktoken's own split pattern and special tokens.

tiktoken is imported on first use, so a task counting characters never loads it.
"""

from __future__ import annotations

import base64
import codecs
import gzip
import hashlib
from functools import lru_cache
from importlib.resources import files
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import tiktoken

TOKENIZERS: Final = ("cl100k_base", "o200k_base")

_ENDOFTEXT, _ENDOFPROMPT = "<|endoftext|>", "<|endofprompt|>"
_FIM = ("<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>")

# The published SHA-256 of each encoding's .tiktoken file (as tiktoken_ext.openai_public).
_SHA256: Final = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}

# The split patterns and special tokens, as tiktoken_ext.openai_public defines them.
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"""
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"""
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_SPECS: Final = {
    "cl100k_base": (
        _CL100K_PATTERN,
        {
            _ENDOFTEXT: 100257,
            _FIM[0]: 100258,
            _FIM[1]: 100259,
            _FIM[2]: 100260,
            _ENDOFPROMPT: 100276,
        },
    ),  # fmt: skip
    "o200k_base": (_O200K_PATTERN, {_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018}),
}


class TokenizerDataError(RuntimeError):
    """A shipped BPE file is missing or does not match its published hash: a broken install."""


def bpe_file(name: str) -> bytes:
    """The encoding's .tiktoken file, decompressed and checked against the published hash."""
    try:
        data = gzip.decompress(
            files("knowra_worker.bpe").joinpath(f"{name}.tiktoken.gz").read_bytes()
        )
    except (OSError, KeyError) as exc:
        raise TokenizerDataError(f"the BPE file of {name} is missing: {exc}") from exc
    if hashlib.sha256(data).hexdigest() != _SHA256[name]:
        raise TokenizerDataError(f"the BPE file of {name} does not match its published hash")
    return data


def mergeable_ranks(data: bytes) -> dict[bytes, int]:
    """Ranks from a .tiktoken file: one "base64(token) rank" per line."""
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@lru_cache(maxsize=len(TOKENIZERS))
def encoding(name: str) -> tiktoken.Encoding:
    """The named encoding, built once per process from the shipped file."""
    if name not in _SPECS:
        raise ValueError(f"unknown tokenizer {name!r}; known: {', '.join(TOKENIZERS)}")
    import tiktoken

    pattern, special = _SPECS[name]
    return tiktoken.Encoding(
        name, pat_str=pattern, mergeable_ranks=mergeable_ranks(bpe_file(name)),
        special_tokens=special,
    )  # fmt: skip


def token_counter(name: str) -> TokenCounter:
    """Counts tokens of the named encoding (special-token text counts as plain text)."""
    return TokenCounter(encoding(name))


class TokenCounter:
    """Lengths in tokens, and where tokens end in a text (for the chunker's cuts)."""

    def __init__(self, enc: tiktoken.Encoding) -> None:
        self._enc = enc

    def count(self, text: str) -> int:
        return len(self._enc.encode_ordinary(text))

    def token_ends(self, text: str, limit: int | None = None) -> list[int]:
        """Character offsets in `text` where each of its first `limit` tokens ends. A token
        ending inside a character (a byte of a multi-byte one) ends where that character
        starts, so a cut there never splits a character."""
        tokens = self._enc.encode_ordinary(text)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        ends: list[int] = []
        chars = 0
        for raw in self._enc.decode_tokens_bytes(tokens[:limit]):
            chars += len(decoder.decode(raw))
            ends.append(chars)
        return ends
