"""One request inside the worker: its tokens, progress, KV blocks and an explicit status.

Pure Python (no torch). The status moves only along these edges (vLLM v1's request states,
minus the ones for structured output and remote KV):

    WAITING ──admit──▶ RUNNING ──last token──▶ FINISHED
                        │   ▲
                 preempt│   │admit (recompute)
                        ▼   │
                      PREEMPTED

A preempted sequence waits again at the front of the queue with its blocks freed; when it is
admitted again the tokens it had computed are computed again (`high_water`). `move_to`
refuses any other edge, so a scheduler bug surfaces as an error, not as a sequence that is
silently in two places.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

__all__ = ["Sequence", "SequenceStatus"]


class SequenceStatus(enum.Enum):
    """Where a sequence is in its life (see the module docstring for the edges)."""

    WAITING = "waiting"
    """Queued, never run."""
    RUNNING = "running"
    """Admitted: owns KV blocks and is scheduled each step until it finishes or is preempted."""
    PREEMPTED = "preempted"
    """Queued again after preemption; its KV is gone and is recomputed on admission."""
    FINISHED = "finished"
    """All `max_tokens` outputs sampled; its blocks are freed (full ones stay cached)."""


_EDGES = {
    SequenceStatus.WAITING: frozenset({SequenceStatus.RUNNING}),
    SequenceStatus.RUNNING: frozenset({SequenceStatus.PREEMPTED, SequenceStatus.FINISHED}),
    SequenceStatus.PREEMPTED: frozenset({SequenceStatus.RUNNING}),
    SequenceStatus.FINISHED: frozenset(),
}


class Sequence:
    """One request's mutable state: its tokens (prompt, then outputs), progress and blocks.

    `arrival` is on the worker's clock (seconds).
    """

    __slots__ = (
        "arrival",
        "block_hashes",
        "block_table",
        "cached_tokens",
        "high_water",
        "max_tokens",
        "num_computed",
        "prompt_len",
        "request_id",
        "status",
        "token_times",
        "tokens",
    )

    def __init__(self, request_id: int, prompt: Iterable[int], max_tokens: int, arrival: float):
        self.request_id = request_id
        self.tokens = list(prompt)
        self.prompt_len = len(self.tokens)
        self.max_tokens = max_tokens
        self.arrival = arrival
        self.status = SequenceStatus.WAITING
        self.num_computed = 0
        """Tokens whose K/V are in this sequence's blocks."""
        self.high_water = 0
        """Most tokens ever computed before a preemption (what a recompute redoes)."""
        self.block_table: list[int] = []
        self.block_hashes: list[int] = []
        self.cached_tokens: int | None = None
        """Prompt tokens found in the prefix cache at first admission."""
        self.token_times: list[float] = []
        """When each output token was sampled (worker clock, seconds)."""

    def move_to(self, status: SequenceStatus) -> None:
        """Change status along an allowed edge; ValueError for any other."""
        if status not in _EDGES[self.status]:
            raise ValueError(
                f"request {self.request_id}: no transition {self.status.name} -> {status.name}"
            )
        self.status = status

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    @property
    def output_len(self) -> int:
        return len(self.tokens) - self.prompt_len

    @property
    def reached_max_tokens(self) -> bool:
        """All `max_tokens` outputs are sampled (the scheduler then finishes it)."""
        return self.output_len >= self.max_tokens

    @property
    def is_finished(self) -> bool:
        return self.status is SequenceStatus.FINISHED

    def __repr__(self) -> str:
        return (
            f"Sequence({self.request_id}, {self.status.name}, tokens={self.num_tokens}, "
            f"computed={self.num_computed}, blocks={len(self.block_table)})"
        )
