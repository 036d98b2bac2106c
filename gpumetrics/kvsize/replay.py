"""The cache model replayed directly: one `OrderedDict` LRU of block ids at one capacity.

Standard library only. It is the definition the curve algorithms are tested against
(`mrc.exact_curve` must equal it at every capacity) and the building block of the live ghost
cache. Semantics (docs/kv-size.md): a request hits the longest prefix of its blocks that is
cached; then every block is touched tail first, so the request's first block ends up most
recently used; a touch of an absent block inserts it and evicts the least recently used block
when the cache is over capacity.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:  # trace imports numpy; this module stays standard-library only
    from .trace import Request

__all__ = ["PrefixLru", "replay"]


class PrefixLru:
    """An LRU cache of `capacity` block ids with prefix lookups and tail-first touches."""

    __slots__ = ("_blocks", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ConfigError("capacity", f"must be > 0 blocks, got {capacity}")
        self.capacity = capacity
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def __contains__(self, block_id: object) -> bool:
        return block_id in self._blocks

    def lookup(self, block_ids: Sequence[int]) -> int:
        """How many leading blocks of `block_ids` are cached (changes nothing)."""
        blocks = self._blocks
        hits = 0
        for block_id in block_ids:
            if block_id not in blocks:
                break
            hits += 1
        return hits

    def touch(self, block_ids: Sequence[int]) -> None:
        """Use every block, last first: the first block becomes the most recently used."""
        blocks, capacity = self._blocks, self.capacity
        for block_id in reversed(block_ids):
            if block_id in blocks:
                blocks.move_to_end(block_id)
            else:
                blocks[block_id] = None
                if len(blocks) > capacity:
                    blocks.popitem(last=False)

    def access(self, block_ids: Sequence[int]) -> int:
        """`lookup` then `touch`: one request's visit; returns its hit blocks."""
        hits = self.lookup(block_ids)
        self.touch(block_ids)
        return hits


def replay(requests: Iterable[Request], capacity: int, block_size: int) -> tuple[int, int]:
    """(hit blocks, hit tokens) of the whole trace through one `PrefixLru` of `capacity`
    blocks; block j of a request holds min(block_size, input_length - j·block_size) tokens."""
    cache = PrefixLru(capacity)
    hit_blocks = hit_tokens = 0
    for request in requests:
        hits = cache.access(request.block_ids)
        hit_blocks += hits
        hit_tokens += sum(
            min(block_size, request.input_length - j * block_size) for j in range(hits)
        )
    return hit_blocks, hit_tokens
