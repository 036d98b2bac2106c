"""A hooks endpoint with counters that follow the clock exactly, for tests that compare two
readings of the same engine (serve's derived gauges and Prometheus' rules, `top` and
/metrics): the real `gpumetrics.hooks` endpoint, driven deterministically."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gpumetrics.hooks import EngineMetrics

#: Steps a second.
TICKS_PER_S = 50


class SteadyEngine(EngineMetrics):
    """Hook counters that follow the clock exactly: before every render, the steps due since
    start (TICKS_PER_S a second) are recorded. Every 5th step is a prefill (4 sequences, 400
    tokens, 40 of them recomputed), the others decode 32 sequences; each looks up 100 prompt
    tokens, 30 of which hit; KV usage stays at 0.55."""

    __slots__ = ("_done", "_lock", "_start")

    def __init__(self) -> None:
        super().__init__(
            "e0", "steady", max_batch_sequences=64, max_batch_tokens=2048, kv_capacity_blocks=1000
        )
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._done = 0

    def _catch_up(self) -> None:
        with self._lock:
            due = int((time.monotonic() - self._start) * TICKS_PER_S)
            for tick in range(self._done, due):
                if tick % 5 == 0:
                    self.record_step(
                        phase="prefill", sequences=4, prefill_tokens=400, decode_tokens=0,
                        duration_s=0.01, flops=4e12, read_bytes=2e10, write_bytes=4e9,
                    )  # fmt: skip
                    self.record_recompute(40, flops=4e11)
                else:
                    self.record_step(
                        phase="decode", sequences=32, prefill_tokens=0, decode_tokens=32,
                        duration_s=0.01, flops=6e11, read_bytes=4e10, write_bytes=2e7,
                    )  # fmt: skip
                self.record_prefix_lookup(queried_tokens=100, hit_tokens=30)
            self._done = max(self._done, due)
            self.record_kv(used_blocks=550, total_blocks=1000)

    def collect(self) -> Any:
        self._catch_up()
        return super().collect()


@contextmanager
def steady_engine() -> Iterator[str]:
    """Serve a SteadyEngine on 127.0.0.1; yields its /metrics URL."""
    metrics = SteadyEngine()
    with metrics.serve() as endpoint:
        yield endpoint.url
