"""The worker's prefix trace: record the requests it is sent, replay them through its cache.

`TraceRecorder` writes one gpumetrics trace line (`hooks._trace.trace_line`, the format
`gpumetrics kv-size --format gpumetrics` reads) per request added: `timestamp` in ms on the
load's clock (simulated seconds under `--virtual-clock`), `input_length`, `output_length`,
`hash_ids` = the worker's own chained block hashes of the prompt's full blocks
(`BlockManager.prompt_hashes`), `block_size` and the conversation id.

`replay_trace` is the oracle for what such a trace says: it rebuilds token sequences with the
same block structure from the hash ids (one token chunk per id, a conversation's later turn
extends its earlier ones) and runs them through the worker's own `Scheduler` and
`BlockManager` on a simulated clock, exactly as `run_load` with a `VirtualClock` drives the
engine: pinning of running sequences, partial blocks, chunked prefill and preemption included.
Pure Python (no torch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from ..hooks._trace import TraceSink, trace_line
from .block_manager import BlockManager
from .scheduler import Scheduler
from .sequence import Sequence as Seq

__all__ = ["ReplayResult", "TraceRecorder", "replay_trace"]


class TraceRecorder:
    """Writes one trace line per request to `sink` (a text file, say)."""

    __slots__ = ("block_size", "lines", "sink")

    def __init__(self, sink: TraceSink, block_size: int) -> None:
        self.sink, self.block_size = sink, block_size
        self.lines = 0

    def record(
        self,
        *,
        timestamp_s: float,
        input_length: int,
        output_length: int,
        hash_ids: Sequence[int],
        conversation: str | int | None = None,
    ) -> None:
        """One request, sent at `timestamp_s` seconds (written in ms)."""
        self.sink.write(
            trace_line(
                timestamp_ms=timestamp_s * 1000.0,
                input_length=input_length,
                output_length=output_length,
                hash_ids=hash_ids,
                block_size=self.block_size,
                conversation=conversation,
            )
        )
        self.lines += 1


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What the worker's cache did with a replayed trace (tokens, blocks)."""

    queried_tokens: int
    """Tokens looked up, every admission (a preempted request's again) included."""
    hit_tokens: int
    """Tokens found cached: what the hooks' prefix hit counter measures."""
    first_queried_blocks: int
    """Full prompt blocks of the requests (one lookup each): the LRU model's references."""
    first_hit_blocks: int
    """Blocks hit at each request's first admission."""
    evicted_blocks: int
    preemptions: int

    @property
    def block_hit_ratio(self) -> float:
        """first_hit_blocks / first_queried_blocks (0 when nothing was queried)."""
        if not self.first_queried_blocks:
            return 0.0
        return self.first_hit_blocks / self.first_queried_blocks


def _ids(record: Mapping[str, object]) -> list[int]:
    return cast("list[int]", record["hash_ids"])


def _int(record: Mapping[str, object], key: str) -> int:
    return int(cast("int", record[key]))


def _transcripts(records: Sequence[Mapping[str, object]], block_size: int) -> list[list[int]]:
    """Per record, tokens (prompt then output) with the record's block structure: a hash id
    is one chunk of fresh tokens everywhere; a conversation's turns share the tokens of its
    longest turn, so turn k's output is turn k+1's prompt continued."""
    chunks: dict[int, list[int]] = {}
    fresh = iter(range(1 << 62))

    def build(record: Mapping[str, object]) -> list[int]:
        tokens: list[int] = []
        for h in _ids(record):
            tokens += chunks.setdefault(h, [next(fresh) for _ in range(block_size)])
        total = _int(record, "input_length") + _int(record, "output_length")
        return tokens + [next(fresh) for _ in range(total - len(tokens))]

    longest: dict[object, list[int]] = {}
    turns = [r for r in records if r.get("conversation") is not None]
    for record in sorted(turns, key=lambda r: -_int(r, "input_length")):
        longest.setdefault(record["conversation"], build(record))
    out = []
    for record in records:
        conv = record.get("conversation")
        tokens = longest[conv] if conv is not None else build(record)
        ids = _ids(record)
        held = [tokens[j * block_size : (j + 1) * block_size] for j in range(len(ids))]
        if held != [chunks.get(h) for h in ids]:
            raise ValueError(f"conversation {conv!r}: a turn is not a prefix of its last turn")
        out.append(tokens)
    return out


def replay_trace(
    records: Sequence[Mapping[str, object]],
    *,
    kv_blocks: int,
    max_batch: int,
    max_batch_tokens: int,
    chunked_prefill: bool = True,
    step_s: float,
) -> ReplayResult:
    """Replay a recorded trace (parsed JSON lines, in order) through a `Scheduler` over a
    `BlockManager` of `kv_blocks` blocks, one engine step per `step_s` simulated seconds,
    idle time skipped (`run_load` with a `VirtualClock` of the same step: pass its
    `step_s`, `loadgen.DEFAULT_VIRTUAL_STEP_S` by default)."""
    if not records:
        raise ValueError("an empty trace")
    block_size = _int(records[0], "block_size")
    transcripts = _transcripts(records, block_size)
    blocks = BlockManager(kv_blocks, block_size)
    scheduler = Scheduler(
        blocks,
        max_batch=max_batch,
        max_batch_tokens=max_batch_tokens,
        chunked_prefill=chunked_prefill,
    )
    times = [float(cast("float", r["timestamp"])) for r in records]
    queried = hit = first_queried = first_hit = evicted = preempted = 0
    now, i = 0.0, 0
    while True:
        while i < len(records) and times[i] <= now * 1000.0 + 1e-6:
            r = records[i]
            prompt = transcripts[i][: _int(r, "input_length")]
            seq = Seq(i, prompt, _int(r, "output_length"), now)
            scheduler.add(seq)
            i += 1
        if scheduler.has_work:
            out = scheduler.schedule()
            for match, hashes in zip(out.lookups, out.lookup_hashes, strict=True):
                queried += match.queried_tokens
                hit += match.hit_tokens
                if hashes is not None:
                    first_queried += len(hashes)
                    first_hit += len(match.block_ids)
            evicted += out.evicted_blocks
            preempted += out.preempted
            sampled = [
                transcripts[e.seq.request_id][e.seq.num_tokens] for e in out.entries if e.samples
            ]
            scheduler.update(out, sampled, now)
            now += step_s
        elif i >= len(records):
            break
        else:
            now = max(now, times[i] / 1000.0)
    return ReplayResult(queried, hit, first_queried, first_hit, evicted, preempted)
