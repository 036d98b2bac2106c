"""The paged KV cache's bookkeeping: blocks, prefix caching by chained hashes, LRU eviction.

Pure Python: the K/V tensors themselves live in `attention.PagedKV`; this module decides which
block holds what. The rules, as in vLLM's v1 block pool:

* The cache is `num_blocks` blocks of `block_size` token slots. A sequence owns a block table
  (block ids in order); block i holds its tokens [i·block_size, (i+1)·block_size).
* A block whose slots are all computed is *registered* under the chained hash of its tokens,
  h_i = hash(h_{i-1}, tokens of block i), and remembers its parent hash and tokens. A lookup
  walks the chain and accepts a block only if the stored tokens and parent hash match
  (a hash collision is a miss, never wrong KV).
* Blocks are reference counted (a shared system prompt is one set of blocks). A block whose
  count drops to 0 is *free but still cached*: it joins the tail of an LRU queue and can be hit
  until it is reused. Allocation takes the queue's head; reusing a block that still holds a
  hash is an **eviction** (its prefix is lost). Free blocks without a hash go to the head, so
  nothing cached is evicted while blank blocks remain. A sequence frees its blocks last-first,
  so its tail is evicted before its (more shared) head.
* Prefix-cache accounting is in tokens: `queried` = tokens looked up, `hit` = tokens found.
  Tokens that miss although their block had been computed before (its hash was evicted, or it
  is cached behind a broken chain) are *lost* tokens: the caller recomputes them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Block", "BlockManager", "HashFn", "PrefixMatch", "chain_hash"]

HashFn = Callable[[int | None, tuple[int, ...]], int]
"""(parent hash or None for the first block, the block's tokens) -> the block's hash."""


def chain_hash(parent: int | None, tokens: tuple[int, ...]) -> int:
    """The default chained block hash (Python's tuple hash: deterministic for ints)."""
    return hash((parent, tokens))


@dataclass(slots=True)
class Block:
    """One KV block's state (mutable bookkeeping, not a record)."""

    block_id: int
    ref_count: int = 0
    hash: int | None = None
    """Set while the block is registered in the prefix cache."""
    parent_hash: int | None = None
    tokens: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class PrefixMatch:
    """The result of a prefix lookup for one token sequence (tokens, not blocks)."""

    block_ids: tuple[int, ...]
    """Cached blocks holding the longest matching prefix, in order."""
    hashes: tuple[int, ...]
    """Their chained hashes."""
    queried_tokens: int
    """Tokens looked up (the whole sequence)."""
    hit_tokens: int
    """Tokens whose KV was found: len(block_ids) · block_size."""
    lost_tokens: int
    """Tokens right after the hit whose full blocks had been computed before (evicted, or
    cached behind the miss): they will be recomputed."""


class BlockManager:
    """Allocates KV blocks, caches full blocks by prefix hash and evicts them LRU.

    `hash_fn` is injectable (tests use a colliding one). `lost_memory` bounds how many evicted
    hashes are remembered for recompute accounting (default 64 per block; a miss on a hash
    forgotten since is not counted as recomputed).
    """

    def __init__(
        self,
        num_blocks: int,
        block_size: int,
        *,
        hash_fn: HashFn = chain_hash,
        lost_memory: int | None = None,
    ) -> None:
        if num_blocks <= 0 or block_size <= 0:
            raise ValueError(f"need num_blocks, block_size > 0, got {num_blocks}, {block_size}")
        self.num_blocks, self.block_size, self._hash = num_blocks, block_size, hash_fn
        self.blocks = [Block(i) for i in range(num_blocks)]
        self._free: OrderedDict[int, None] = OrderedDict.fromkeys(range(num_blocks))
        self._by_hash: dict[int, int] = {}
        self._lost: OrderedDict[int, None] = OrderedDict()
        self._lost_cap = lost_memory if lost_memory is not None else 64 * num_blocks
        self._cached_free = 0
        self.evicted_blocks = 0
        """Blocks reused while still holding a cached prefix, since creation."""

    # --- state ---------------------------------------------------------------------------

    @property
    def num_free(self) -> int:
        """Blocks with no owner (cached or blank): what `allocate` can hand out."""
        return len(self._free)

    @property
    def num_used(self) -> int:
        """Blocks owned by at least one sequence."""
        return self.num_blocks - len(self._free)

    @property
    def num_evictable(self) -> int:
        """Free blocks still holding a cached prefix (hit until reused)."""
        return self._cached_free

    def blocks_for(self, tokens: int) -> int:
        """Blocks needed to hold `tokens` tokens."""
        return -(-tokens // self.block_size)

    # --- lookup ----------------------------------------------------------------------------

    def prompt_hashes(self, tokens: Sequence[int]) -> list[int]:
        """The chained hashes of the full blocks of `tokens`, in order: the ids this cache
        registers them under (a partial last block has none). What a trace records."""
        bs = self.block_size
        out: list[int] = []
        parent: int | None = None
        for i in range(len(tokens) // bs):
            parent = self._hash(parent, tuple(tokens[i * bs : (i + 1) * bs]))
            out.append(parent)
        return out

    def match_prefix(self, tokens: Sequence[int]) -> PrefixMatch:
        """The longest cached prefix of `tokens`, in whole blocks, leaving at least the last
        token to compute (the step that computes it yields the next token's logits)."""
        bs = self.block_size
        hits: list[int] = []
        hashes: list[int] = []
        parent: int | None = None
        lost = 0
        for i in range((len(tokens) - 1) // bs):
            chunk = tuple(tokens[i * bs : (i + 1) * bs])
            h = self._hash(parent, chunk)
            block_id = self._by_hash.get(h, -1)
            found = block_id >= 0 and self._holds(block_id, parent, chunk)
            if found and not lost:
                hits.append(block_id)
                hashes.append(h)
            elif found or h in self._lost:
                lost += bs  # computed before, unreachable now: this miss recomputes it
            else:
                break
            parent = h
        return PrefixMatch(tuple(hits), tuple(hashes), len(tokens), len(hits) * bs, lost)

    def _holds(self, block_id: int, parent: int | None, chunk: tuple[int, ...]) -> bool:
        block = self.blocks[block_id]
        return block.parent_hash == parent and block.tokens == chunk

    # --- ownership -------------------------------------------------------------------------

    def can_allocate(self, new_blocks: int, match: PrefixMatch | None = None) -> bool:
        """Whether `new_blocks` blocks can be allocated after acquiring `match`'s blocks
        (hit blocks that are free leave the free queue when acquired)."""
        taken = 0
        if match is not None:
            taken = sum(1 for b in match.block_ids if self.blocks[b].ref_count == 0)
        return new_blocks <= len(self._free) - taken

    def acquire(self, match: PrefixMatch) -> list[int]:
        """Take a reference on every block of `match`; returns their ids (a block table)."""
        for block_id in match.block_ids:
            block = self.blocks[block_id]
            if block.ref_count == 0:
                del self._free[block_id]
                self._cached_free -= 1
            block.ref_count += 1
        return list(match.block_ids)

    def allocate(self, count: int) -> list[int]:
        """`count` blank blocks from the LRU head, evicting cached ones (counted)."""
        if count > len(self._free):
            raise RuntimeError(f"out of KV blocks: need {count}, {len(self._free)} free")
        out = []
        for _ in range(count):
            block_id, _ = self._free.popitem(last=False)
            block = self.blocks[block_id]
            if block.hash is not None:
                self._evict(block)
            block.ref_count = 1
            out.append(block_id)
        return out

    def _evict(self, block: Block) -> None:
        assert block.hash is not None
        del self._by_hash[block.hash]
        self._lost[block.hash] = None
        if len(self._lost) > self._lost_cap:
            self._lost.popitem(last=False)
        block.hash, block.parent_hash, block.tokens = None, None, ()
        self._cached_free -= 1
        self.evicted_blocks += 1

    def free(self, block_table: Sequence[int]) -> None:
        """Drop one reference on each block, last block first. Blocks reaching 0 stay cached
        (LRU tail) if registered, else go to the head to be reused first."""
        for block_id in reversed(block_table):
            block = self.blocks[block_id]
            block.ref_count -= 1
            if block.ref_count > 0:
                continue
            self._free[block_id] = None
            if block.hash is None:
                self._free.move_to_end(block_id, last=False)
            else:
                self._cached_free += 1

    def commit(
        self, block_table: Sequence[int], tokens: Sequence[int], computed: int, hashes: list[int]
    ) -> None:
        """Register the blocks of `block_table` that `computed` tokens now fill, extending
        the sequence's chain `hashes` in place. A hash already registered for another block
        (the same prefix computed twice at once) leaves this block unregistered."""
        bs = self.block_size
        for i in range(len(hashes), computed // bs):
            parent = hashes[-1] if hashes else None
            chunk = tuple(tokens[i * bs : (i + 1) * bs])
            h = self._hash(parent, chunk)
            hashes.append(h)
            if h in self._by_hash:
                continue
            block = self.blocks[block_table[i]]
            block.hash, block.parent_hash, block.tokens = h, parent, chunk
            self._by_hash[h] = block.block_id
            self._lost.pop(h, None)
