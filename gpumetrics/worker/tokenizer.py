"""A byte-level tokenizer: token ids 0–255 are the UTF-8 bytes, then a few specials.

No vocabulary file and no download: the `tiny` preset's vocabulary (320) holds the 256 bytes,
the specials below and unused ids that a randomly initialised model may still emit (they
decode to nothing).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["BOS", "EOS", "PAD", "ByteTokenizer"]

BOS = 256
"""Beginning of a conversation."""
EOS = 257
"""End of a turn (the worker's load stops on output length, not on EOS: see `loadgen`)."""
PAD = 258
"""Padding id (never attended to)."""

_SPECIALS = 3


class ByteTokenizer:
    """UTF-8 bytes ↔ token ids for a model whose vocabulary has at least 259 ids."""

    __slots__ = ("vocab",)

    def __init__(self, vocab: int) -> None:
        if vocab < 256 + _SPECIALS:
            raise ValueError(f"a byte-level vocabulary needs >= {256 + _SPECIALS} ids, got {vocab}")
        self.vocab = vocab

    def encode(self, text: str, *, bos: bool = False) -> list[int]:
        """Token ids of `text` (one per UTF-8 byte), optionally preceded by BOS."""
        ids = list(text.encode("utf-8"))
        return [BOS, *ids] if bos else ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of the byte ids; specials and unused ids are dropped, invalid UTF-8 replaced."""
        return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")
