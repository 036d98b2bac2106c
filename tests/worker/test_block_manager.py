"""Block manager: chained hashes checked against stored tokens, refcounts, LRU reuse,
eviction and lost-token accounting — with numbers small enough to follow by hand."""

from __future__ import annotations

import pytest

from gpumetrics.worker.block_manager import BlockManager

BS = 4


def _take(bm: BlockManager, tokens: list[int]) -> tuple[list[int], list[int]]:
    """Admit `tokens` like the scheduler does: acquire the hit, allocate the rest, compute
    every token and register the full blocks. Returns (block table, chain hashes)."""
    match = bm.match_prefix(tokens)
    table = bm.acquire(match) + bm.allocate(bm.blocks_for(len(tokens)) - len(match.block_ids))
    hashes = list(match.hashes)
    bm.commit(table, tokens, len(tokens), hashes)
    return table, hashes


def test_full_blocks_are_registered_and_hit_in_tokens() -> None:
    bm = BlockManager(8, BS)
    prompt = list(range(10))  # blocks [0..3] [4..7] and a partial [8, 9]
    table, hashes = _take(bm, prompt)
    assert len(table) == 3
    assert len(hashes) == 2
    bm.free(table)
    assert (bm.num_used, bm.num_free, bm.num_evictable) == (0, 8, 2)
    match = bm.match_prefix([*prompt, 10, 11])
    assert (match.queried_tokens, match.hit_tokens, match.lost_tokens) == (12, 8, 0)
    assert match.block_ids == tuple(table[:2])


def test_the_last_token_is_never_a_hit() -> None:
    """A prompt cached whole still computes its last token (its logits give the next one),
    so a block-aligned prompt hits one block fewer than it has."""
    bm = BlockManager(8, BS)
    table, _ = _take(bm, list(range(8)))
    bm.free(table)
    assert bm.match_prefix(list(range(8))).hit_tokens == 4
    assert bm.match_prefix(list(range(9))).hit_tokens == 8


def test_shared_prefix_blocks_are_reference_counted() -> None:
    bm = BlockManager(8, BS)
    a, _ = _take(bm, [1, 2, 3, 4, 5, 6])
    b, _ = _take(bm, [1, 2, 3, 4, 9, 9])
    assert a[0] == b[0]
    assert a[1] != b[1]
    assert bm.blocks[a[0]].ref_count == 2
    assert bm.num_used == 3
    bm.free(a)
    assert bm.blocks[a[0]].ref_count == 1
    assert bm.num_used == 2
    bm.free(b)
    assert bm.num_used == 0
    assert bm.num_evictable == 1


def test_the_chain_includes_the_parent() -> None:
    """The same block of tokens after a different prefix hashes differently (and misses)."""
    bm = BlockManager(8, BS)
    a, ha = _take(bm, [1, 1, 1, 1, 7, 7, 7, 7, 0])
    b, hb = _take(bm, [2, 2, 2, 2, 7, 7, 7, 7, 0])
    assert ha[1] != hb[1]
    assert a[1] != b[1]
    bm.free(a)
    match = bm.match_prefix([3, 3, 3, 3, 7, 7, 7, 7, 0])
    assert match.hit_tokens == 0


def test_hash_collisions_are_caught_by_the_stored_tokens() -> None:
    """With a hash function that maps everything to 0, only a block whose stored tokens (and
    parent) match is accepted: a collision is a miss, never somebody else's KV."""
    bm = BlockManager(8, BS, hash_fn=lambda parent, tokens: 0)
    first, _ = _take(bm, [1, 2, 3, 4, 0])
    bm.free(first)
    assert bm.match_prefix([5, 6, 7, 8, 0]).hit_tokens == 0  # same hash, other tokens
    assert bm.match_prefix([1, 2, 3, 4, 0]).hit_tokens == 4  # the stored tokens match
    # Block 2 of [1,2,3,4,1,2,3,4,0] hashes to 0 too and holds the same tokens, but its parent
    # differs from the stored block's (None): still a miss.
    assert bm.match_prefix([1, 2, 3, 4, 1, 2, 3, 4, 0]).hit_tokens == 4


def test_blank_blocks_are_used_before_cached_ones_and_reuse_is_lru() -> None:
    bm = BlockManager(6, BS)
    a, _ = _take(bm, [10] * 8)  # 2 full blocks
    b, _ = _take(bm, [20] * 8)
    bm.free(a)  # freed first: least recently used
    bm.free(b)
    assert bm.num_evictable == 4
    assert bm.evicted_blocks == 0
    fresh = bm.allocate(2)  # the 2 blank blocks go first
    assert set(fresh).isdisjoint(a + b)
    assert bm.evicted_blocks == 0
    assert bm.allocate(1) == [a[1]]  # then LRU: a's tail before a's head
    assert bm.evicted_blocks == 1
    assert bm.allocate(1) == [a[0]]
    assert bm.evicted_blocks == 2
    assert bm.num_evictable == 2
    assert bm.match_prefix([20] * 9).hit_tokens == 8  # b survived


def test_a_hit_takes_a_cached_block_out_of_the_free_queue() -> None:
    bm = BlockManager(4, BS)
    a, _ = _take(bm, [1] * 4 + [2] * 4)
    bm.free(a)
    match = bm.match_prefix([1] * 4 + [2] * 4 + [3])
    assert bm.can_allocate(2, match)
    assert not bm.can_allocate(3, match)
    table = bm.acquire(match)
    assert table == a
    assert bm.num_free == 2
    assert bm.num_evictable == 0
    bm.allocate(2)
    assert bm.evicted_blocks == 0


def test_evicted_blocks_are_counted_and_their_tokens_reported_lost() -> None:
    bm = BlockManager(4, BS)
    a, _ = _take(bm, list(range(12)))  # 3 full blocks
    bm.free(a)
    _take(bm, [99] * 13)  # needs 4 blocks: 1 blank + evicts a's 3
    assert bm.evicted_blocks == 3
    match = bm.match_prefix([*range(12), 50, 51])
    assert (match.hit_tokens, match.lost_tokens) == (0, 12)


def test_lost_tokens_end_at_the_first_block_never_computed() -> None:
    bm = BlockManager(4, BS)
    a, _ = _take(bm, list(range(8)))
    bm.free(a)
    bm.allocate(4)  # evicts both
    match = bm.match_prefix([0, 1, 2, 3, 9, 9, 9, 9, 4, 5, 6, 7, 0])
    assert (match.hit_tokens, match.lost_tokens) == (0, 4)


def test_a_recomputed_block_is_cached_again_and_no_longer_lost() -> None:
    bm = BlockManager(4, BS)
    a, _ = _take(bm, list(range(4)))
    bm.free(a)
    bm.free(bm.allocate(4))  # evict, then give everything back blank
    assert bm.match_prefix([0, 1, 2, 3, 4]).lost_tokens == 4
    again, _ = _take(bm, [0, 1, 2, 3, 4])
    bm.free(again)
    match = bm.match_prefix([0, 1, 2, 3, 4])
    assert (match.hit_tokens, match.lost_tokens) == (4, 0)


def test_duplicate_registration_keeps_the_first_block() -> None:
    bm = BlockManager(4, BS)
    a, _ = _take(bm, [5] * 5)
    b = bm.allocate(2)  # the same prefix computed again at the same time
    hashes: list[int] = []
    bm.commit(b, [5] * 5, 5, hashes)
    assert bm.blocks[b[0]].hash is None
    assert bm.blocks[a[0]].hash == hashes[0]
    bm.free(b)
    assert bm.num_evictable == 0  # b's copy went back blank


def test_allocating_more_than_free_raises() -> None:
    bm = BlockManager(2, BS)
    bm.allocate(2)
    assert not bm.can_allocate(1)
    with pytest.raises(RuntimeError, match="out of KV blocks"):
        bm.allocate(1)
