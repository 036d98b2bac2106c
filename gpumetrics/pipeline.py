"""The Sampler: each source sampled in the background on its own thread and interval, its
status recorded, and one cached Snapshot handed to every scrape (DESIGN.md §3.4).

A scrape never waits on NVML or an engine: `Sampler.snapshot()` returns the latest merged
Snapshot, a plain attribute read. A source that raises is marked down (its samples are dropped:
stale numbers mislead) while the others keep flowing. One kind of failure keeps them: an
exception with a true `keep_last_good` attribute (an engine page rejected whole for a limit,
`sources/engine/limits.py`) leaves the source's last good samples in place, marked stale
(`gpumetrics_source_stale` 1, `gpumetrics_source_up` 0), until a cycle succeeds or fails
otherwise. Every source has `gpumetrics_source_up` (0) from the first snapshot on, before its
first cycle ends.

`stop(timeout)` gives all sources one deadline together: with any number of hung sources it
returns within `timeout` seconds (their daemon threads are abandoned).

A failing source is logged when its error changes (a WARNING with the whole message), then
at most once every `warn_every` seconds while it keeps failing the same way (one short line
with the count), and once when it recovers: a source down for a day is a few hundred lines,
not 86,400. `gpumetrics_source_up` and `_errors_total` count every failure regardless.

With `derived` (a `gpumetrics.derive.DerivedGauges`), every successful cycle is also added to
the derived gauges' history, stamped with the time the cycle started (the time passed to the
source), and each snapshot carries the gauges computed from it; a failed cycle drops that
source's history, as it drops its samples.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from . import __version__
from .catalog import health as selfmetrics
from .derive import DerivedGauges
from .samples import Collection, Sample, Snapshot, SourceStatus
from .sources import Source

__all__ = ["DEFAULT_WARN_EVERY_S", "Sampler", "error_code", "keeps_last_good", "status_samples"]

log = logging.getLogger(__name__)

#: Seconds between reminders that a source is still failing with the same error.
DEFAULT_WARN_EVERY_S = 300.0


def error_code(exc: BaseException) -> str:
    """A short, stable code for an exception: its `code` attribute if it has one (NVML return
    code names, "timeout", "parse", "http_503"), else its class name."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) and code else type(exc).__name__


def keeps_last_good(exc: BaseException) -> bool:
    """Whether a failure keeps the source's last good samples (stale) instead of dropping
    them: its `keep_last_good` attribute (engine limits set it)."""
    return getattr(exc, "keep_last_good", False) is True


def status_samples(statuses: Sequence[SourceStatus]) -> tuple[Sample, ...]:
    """The exporter's self-metrics for a set of source statuses, plus build info."""
    samples = [selfmetrics.BUILD_INFO.sample(1, __version__)]
    for status in statuses:
        name = status.source
        samples.append(selfmetrics.SOURCE_UP.sample(1.0 if status.up else 0.0, name))
        samples.append(selfmetrics.SOURCE_STALE.sample(1.0 if status.stale else 0.0, name))
        samples.append(selfmetrics.SOURCE_DURATION.sample(status.duration_seconds, name))
        if status.last_success is not None:
            samples.append(selfmetrics.SOURCE_LAST_SUCCESS.sample(status.last_success, name))
        for code, count in sorted(status.errors_total.items()):
            samples.append(selfmetrics.SOURCE_ERRORS.sample(float(count), name, code))
    return tuple(samples)


@dataclass(slots=True)
class _SourceState:
    """Mutable bookkeeping for one source; only its own thread writes it."""

    source: Source
    interval: float
    collection: Collection = field(default_factory=Collection)
    status: SourceStatus | None = None
    errors_total: dict[str, int] = field(default_factory=dict)
    last_success: float | None = None
    logged_error: str | None = None
    """The failure last logged (None: the source is not known to be failing)."""
    logged_at: float = 0.0
    repeats: int = 0
    """Failures like `logged_error` since it was last logged."""


class Sampler:
    """Samples `sources` in the background; `snapshot()` is what scrapes read.

    `interval` is the default period in seconds; `intervals` overrides it per source name.
    `clock` gives Unix time (passed to sources and stamped on snapshots); `monotonic` times
    cycles and paces repeated warnings (`warn_every` seconds apart). Both are injectable for
    tests. `derived` adds the windowed derived gauges.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        *,
        interval: float = 1.0,
        intervals: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        warn_every: float = DEFAULT_WARN_EVERY_S,
        derived: DerivedGauges | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        if warn_every <= 0:
            raise ValueError(f"warn_every must be > 0, got {warn_every}")
        self._warn_every = warn_every
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique, got {names}")
        overrides = intervals or {}
        self._states = [_SourceState(s, overrides.get(s.name, interval)) for s in sources]
        self._clock = clock
        self._monotonic = monotonic
        self._derived = derived
        self._merge_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._cycles_done = 0
        # Every source's up (0) is there before its first cycle ends.
        self._snapshot = Snapshot(clock())
        self._publish(self._snapshot.taken_at)

    # --- what scrapes call --------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The latest merged Snapshot (never blocks on a source)."""
        return self._snapshot

    @property
    def ready(self) -> bool:
        """True once every source has completed at least one cycle."""
        return all(state.status is not None for state in self._states)

    # --- sampling -------------------------------------------------------------------------

    def sample_once(self) -> Snapshot:
        """Run one cycle of every source in the calling thread; returns the new Snapshot."""
        for state in self._states:
            self._cycle(state)
        return self._snapshot

    def start(self) -> None:
        """Start one daemon thread per source."""
        if self._threads:
            raise RuntimeError("sampler already started")
        for state in self._states:
            thread = threading.Thread(
                target=self._run,
                args=(state,),
                name=f"gpumetrics-{state.source.name}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the threads and close every source, within `timeout` seconds for all of them
        together (one deadline, not one per source): a source still inside a cycle at the
        deadline is left to its daemon thread, which ends with the process."""
        self._stop.set()
        deadline = self._monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - self._monotonic()))
        for state in self._states:
            try:
                state.source.close()
            except Exception:  # closing must not mask the others
                log.exception("closing source %s failed", state.source.name)

    def _run(self, state: _SourceState) -> None:
        next_due = self._monotonic()
        while not self._stop.is_set():
            self._cycle(state)
            next_due += state.interval
            delay = next_due - self._monotonic()
            if delay < 0:  # the cycle overran: skip the missed ticks instead of bursting
                next_due = self._monotonic()
                delay = 0.0
            self._stop.wait(delay)

    def _cycle(self, state: _SourceState) -> None:
        name = state.source.name
        now = self._clock()
        started = self._monotonic()
        error: str | None = None
        stale = False
        try:
            collection = state.source.collect(now)
        except Exception as exc:  # isolate: one source failing never stops another
            code = error_code(exc)
            state.errors_total[code] = state.errors_total.get(code, 0) + 1
            stale = keeps_last_good(exc) and bool(state.collection.samples)
            if not stale:
                state.collection = Collection()
            error = f"{code}: {exc}"
            self._log_failure(state, error, code)
        else:
            if state.logged_error is not None:
                log.info("source %s recovered", name)
                state.logged_error, state.repeats = None, 0
            for code in collection.errors:
                state.errors_total[code] = state.errors_total.get(code, 0) + 1
            state.collection = collection
            state.last_success = now
            if self._derived is not None:
                with self._merge_lock:
                    self._derived.observe(name, now, collection.samples)
        state.status = SourceStatus(
            source=name,
            up=error is None,
            duration_seconds=self._monotonic() - started,
            last_success=state.last_success,
            error=error,
            errors_total=dict(state.errors_total),
            stale=stale,
        )
        self._publish()

    def _log_failure(self, state: _SourceState, error: str, code: str) -> None:
        """WARNING on a new error; a short reminder every `warn_every` s while it repeats."""
        now = self._monotonic()
        if error != state.logged_error:
            log.warning("source %s failed: %s", state.source.name, error)
            state.logged_error, state.logged_at, state.repeats = error, now, 0
            return
        state.repeats += 1
        if now - state.logged_at >= self._warn_every:
            log.warning(
                "source %s still failing (%s, %d times in %.0f s)",
                state.source.name,
                code,
                state.repeats,
                now - state.logged_at,
            )
            state.logged_at, state.repeats = now, 0

    def _publish(self, taken_at: float | None = None) -> None:
        with self._merge_lock:
            statuses = tuple(
                s.status or SourceStatus(s.source.name, up=False, duration_seconds=0.0)
                for s in self._states
            )
            samples: list[Sample] = []
            for state in self._states:
                samples.extend(state.collection.samples)
            samples.extend(status_samples(statuses))
            if self._derived is not None:
                for state in self._states:
                    if state.status is not None and not state.status.up:
                        self._derived.forget(state.source.name)
                samples.extend(self._derived.samples())
            when = self._clock() if taken_at is None else taken_at
            self._snapshot = Snapshot(when, tuple(samples), statuses)
