"""One line of the gpumetrics prefix trace (JSONL), standard library only.

The format `gpumetrics kv-size --format gpumetrics` reads (docs/kv-size.md): Mooncake's fields
`timestamp` (ms), `input_length` and `output_length` (tokens) and `hash_ids` (the chained
hashes of the prompt's full blocks, in prefix order), plus `block_size` (tokens a block) and
an optional `conversation` id. The worker's `--record-trace` and the hooks' trace writer both
write it with `trace_line`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Protocol

__all__ = ["TraceSink", "trace_line"]


class TraceSink(Protocol):
    """Where trace lines go: a text file opened for writing is one."""

    def write(self, line: str, /) -> object: ...


def trace_line(
    *,
    timestamp_ms: float,
    input_length: int,
    output_length: int,
    hash_ids: Sequence[int],
    block_size: int,
    conversation: str | int | None = None,
) -> str:
    """The JSON line (with its newline) of one request."""
    record: dict[str, object] = {
        "timestamp": timestamp_ms,
        "input_length": input_length,
        "output_length": output_length,
        "hash_ids": list(hash_ids),
        "block_size": block_size,
    }
    if conversation is not None:
        record["conversation"] = conversation
    return json.dumps(record, separators=(",", ":")) + "\n"
