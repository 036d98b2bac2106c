"""Continuous batching: which sequences run this step, with how many tokens each.

Each step (vLLM v1's policy, simplified):

1. Running sequences first, oldest first: a decode takes 1 token, an unfinished (chunked)
   prefill takes what the step's token budget allows. A sequence that needs a new block when
   none is free preempts the newest running sequence (possibly itself): its blocks are freed
   (full ones stay cached and may be hit again) and it goes back to the front of the queue, to
   be recomputed — *preemption by recompute*, counted.
2. Then waiting sequences, first come first served, while the batch has room (`max_batch`
   sequences) and the budget has tokens (`max_batch_tokens`): look up the prefix cache,
   allocate blocks for the uncached part of this chunk, start it. Admission never preempts;
   a sequence that does not fit waits, and so does everything behind it.

A sequence samples a token in a step whose chunk reaches its last token. Tokens whose KV had
been computed before and is gone (evicted blocks, a preempted sequence's lost progress) are
counted as recomputed when the sequence is admitted.

The scheduler is the only writer of a sequence's `status` (`sequence.SequenceStatus`):
admission makes it RUNNING, preemption PREEMPTED, its last sampled token FINISHED.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from .block_manager import BlockManager, PrefixMatch
from .sequence import Sequence, SequenceStatus

__all__ = ["ScheduledSeq", "Scheduler", "SchedulerOutput"]


@dataclass(frozen=True, slots=True)
class ScheduledSeq:
    """One sequence's share of a step: tokens [start, start + new_tokens) are computed."""

    seq: Sequence
    start: int
    new_tokens: int
    decode: bool
    """A generated token's single decode (else a prefill chunk, recompute included)."""
    samples: bool
    """The chunk reaches the last token: this step samples the next one."""

    @property
    def context(self) -> int:
        return self.start + self.new_tokens


@dataclass(frozen=True, slots=True)
class SchedulerOutput:
    """What one `schedule()` call decided and what it cost the cache."""

    entries: tuple[ScheduledSeq, ...]
    lookups: tuple[PrefixMatch, ...]
    """Prefix lookups of the sequences admitted this step."""
    lookup_hashes: tuple[tuple[int, ...] | None, ...]
    """Per lookup: the chained hashes of the prompt's full blocks at a request's first
    admission, None when a preempted request is admitted again (one entry per request)."""
    recomputed: tuple[int, ...]
    """Per admitted sequence with lost KV: tokens to compute again."""
    preempted: int
    evicted_blocks: int

    @property
    def phase(self) -> str:
        """prefill | decode | mixed, as `EngineMetrics.record_step` takes it."""
        decodes = sum(e.decode for e in self.entries)
        return "decode" if decodes == len(self.entries) else "prefill" if not decodes else "mixed"


class Scheduler:
    """Queues and the per-step policy above, over a `BlockManager`."""

    def __init__(
        self,
        blocks: BlockManager,
        *,
        max_batch: int,
        max_batch_tokens: int,
        chunked_prefill: bool = True,
    ) -> None:
        if max_batch <= 0 or max_batch_tokens <= 0:
            raise ValueError("max_batch and max_batch_tokens must be > 0")
        self.blocks = blocks
        self.max_batch, self.max_batch_tokens = max_batch, max_batch_tokens
        self.chunked_prefill = chunked_prefill
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []

    def add(self, seq: Sequence) -> None:
        """Queue a new (WAITING) sequence behind the others."""
        if seq.status is not SequenceStatus.WAITING:
            raise ValueError(f"only a new sequence can be added, got {seq!r}")
        self.waiting.append(seq)

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self) -> SchedulerOutput:
        """Decide this step (see the module docstring)."""
        evicted_before = self.blocks.evicted_blocks
        budget = self.max_batch_tokens
        entries: list[ScheduledSeq] = []
        preempted = 0
        i = 0
        while i < len(self.running) and budget > 0:
            seq = self.running[i]
            new = min(seq.num_tokens - seq.num_computed, budget)
            need = self.blocks.blocks_for(seq.num_computed + new) - len(seq.block_table)
            while not self.blocks.can_allocate(need):
                victim = self.running.pop()
                self._preempt(victim)
                preempted += 1
                if victim is seq:
                    break
            else:
                seq.block_table += self.blocks.allocate(need)
                entries.append(self._entry(seq, new))
                budget -= new
                i += 1
        lookups, recomputed = [], []
        lookup_hashes: list[tuple[int, ...] | None] = []
        while self.waiting and len(self.running) < self.max_batch and budget > 0:
            seq = self.waiting[0]
            match = self.blocks.match_prefix(seq.tokens)
            left = seq.num_tokens - match.hit_tokens
            new = min(left, budget) if self.chunked_prefill else left
            need = self.blocks.blocks_for(match.hit_tokens + new) - len(match.block_ids)
            if new > budget or not self.blocks.can_allocate(need, match):
                break
            self.waiting.popleft()
            seq.move_to(SequenceStatus.RUNNING)
            seq.block_table = self.blocks.acquire(match) + self.blocks.allocate(need)
            seq.block_hashes = list(match.hashes)
            seq.num_computed = match.hit_tokens
            if seq.cached_tokens is None:
                seq.cached_tokens = min(match.hit_tokens, seq.prompt_len)
                lookup_hashes.append(tuple(self.blocks.prompt_hashes(seq.tokens)))
            else:
                lookup_hashes.append(None)
            lost = max(seq.high_water, match.hit_tokens + match.lost_tokens) - match.hit_tokens
            if lost > 0:
                recomputed.append(lost)
            lookups.append(match)
            self.running.append(seq)
            entries.append(self._entry(seq, new))
            budget -= new
        return SchedulerOutput(
            tuple(entries),
            tuple(lookups),
            tuple(lookup_hashes),
            tuple(recomputed),
            preempted,
            self.blocks.evicted_blocks - evicted_before,
        )

    @staticmethod
    def _entry(seq: Sequence, new: int) -> ScheduledSeq:
        start = seq.num_computed
        decode = new == 1 and seq.output_len > 0 and start == seq.num_tokens - 1
        return ScheduledSeq(seq, start, new, decode, start + new == seq.num_tokens)

    def _preempt(self, seq: Sequence) -> None:
        seq.move_to(SequenceStatus.PREEMPTED)
        self.blocks.free(seq.block_table)
        seq.high_water = max(seq.high_water, seq.num_computed)
        seq.num_computed = 0
        seq.block_table, seq.block_hashes = [], []
        self.waiting.appendleft(seq)

    def update(self, out: SchedulerOutput, sampled: Iterable[int], now: float) -> list[Sequence]:
        """Apply a step's results: progress, new full blocks into the prefix cache, one
        sampled token per sampling entry (in order). Returns the sequences that finished
        (their blocks freed, still cached)."""
        tokens = iter(sampled)
        finished = []
        for entry in out.entries:
            seq = entry.seq
            seq.num_computed = entry.context
            self.blocks.commit(seq.block_table, seq.tokens, seq.num_computed, seq.block_hashes)
            if not entry.samples:
                continue
            seq.tokens.append(next(tokens))
            seq.token_times.append(now)
            if seq.reached_max_tokens:
                seq.move_to(SequenceStatus.FINISHED)
                self.blocks.free(seq.block_table)
                seq.block_table = []
                self.running.remove(seq)
                finished.append(seq)
        return finished
