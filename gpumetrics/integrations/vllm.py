"""vLLM stat-logger plugin: gpumetrics' engine families from inside vLLM, with no code change.

Installed with gpumetrics into vLLM's environment, it is found through the entry point group
`vllm.stat_logger_plugins` (name `gpumetrics`; `VLLM_PLUGINS` filters it like any plugin).
vLLM builds one `GpumetricsStatLogger` per data-parallel engine and calls `record()` once per
engine step with that step's `SchedulerStats` and `IterationStats`. By default the families
appear on vLLM's own /metrics (see `vllm_prom`); `GPUMETRICS_VLLM_ENDPOINT=host:port` serves
them on gpumetrics' hooks endpoint instead (see `vllm_record`). What each family holds, and how
a step's attention work is estimated, is in `vllm_step`.

Only vLLM imports this module (it imports vLLM); nothing in gpumetrics imports it.
"""

from __future__ import annotations

import logging
from typing import Any

from vllm.v1.metrics.loggers import StatLoggerBase

from .vllm_record import Recorder, make_recorder

__all__ = ["GpumetricsStatLogger"]

log = logging.getLogger("gpumetrics.integrations.vllm")


class GpumetricsStatLogger(StatLoggerBase):  # type: ignore[misc]
    """vLLM's per-engine stat logger feeding gpumetrics' engine families."""

    def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
        self.engine_index = engine_index
        self._recorder: Recorder | None = None
        try:
            self._recorder = make_recorder(vllm_config, engine_index)
        except Exception:  # a plugin that cannot start must not stop vLLM
            log.exception("gpumetrics vLLM plugin disabled: setting it up failed")

    def record(
        self,
        scheduler_stats: Any,
        iteration_stats: Any,
        mm_cache_stats: Any = None,
        engine_idx: int = 0,
    ) -> None:
        recorder = self._recorder
        if recorder is not None:
            recorder.record(scheduler_stats, iteration_stats)

    def log_engine_initialized(self) -> None:
        log.info("gpumetrics vLLM plugin recording engine %d", self.engine_index)
