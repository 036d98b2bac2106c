"""The Sampler isolates sources, records status and error codes, and serves a cached snapshot."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gpumetrics import catalog
from gpumetrics.cli._build import _Unavailable
from gpumetrics.derive import DerivedGauges
from gpumetrics.engine_config import EngineConfig
from gpumetrics.errors import UnavailableError
from gpumetrics.hooks import EngineMetrics
from gpumetrics.pipeline import Sampler, error_code, status_samples
from gpumetrics.samples import Collection
from gpumetrics.sources import Source
from gpumetrics.sources.engine import EngineSource
from gpumetrics.sources.infiniband import InfinibandSource
from gpumetrics.sources.nvml import NvmlSource
from gpumetrics.testing import FakeNvml
from gpumetrics.testing.fabric import FakeFabricSource
from gpumetrics.testing.sample_values import metric_values
from gpumetrics.testing.sysfs import FakeInfinibandTree

GPU = ("0", "GPU-0", "NVIDIA H200")


class _Fixed:
    """A source returning a fixed power sample, with optional partial errors."""

    def __init__(self, name: str, watts: float, errors: tuple[str, ...] = ()) -> None:
        self._name, self.watts, self.errors = name, watts, errors
        self.closed = False
        self.calls: list[float] = []

    @property
    def name(self) -> str:
        return self._name

    def collect(self, now: float) -> Collection:
        self.calls.append(now)
        return Collection((catalog.gpu.GPU_POWER.sample(self.watts, *GPU),), self.errors)

    def close(self) -> None:
        self.closed = True


class _Broken(_Fixed):
    def collect(self, now: float) -> Collection:
        error = RuntimeError("engine went away")
        error.code = "http_503"  # type: ignore[attr-defined]
        raise error


class _Blocking(_Fixed):
    """Blocks inside collect() until released: a hung NVML call."""

    def __init__(self, name: str) -> None:
        super().__init__(name, 0.0)
        self.entered = threading.Event()
        self.release = threading.Event()

    def collect(self, now: float) -> Collection:
        self.entered.set()
        self.release.wait(10)
        return super().collect(now)


class _NoClose:
    """Has a name and collect() but no close(): not a Source."""

    name = "half"

    def collect(self, now: float) -> Collection:
        return Collection()


def test_every_real_source_is_a_source_the_sampler_runs(tmp_path: Path) -> None:
    """The sidecar's sources (NVML, InfiniBand, the fake fabric, an engine, the stand-in for
    one that could not start) satisfy the Protocol and run through a Sampler cycle; an object
    missing a method does not satisfy it."""
    assert not isinstance(_NoClose(), Source)
    tree = FakeInfinibandTree(tmp_path / "ib")
    tree.add_port()
    unavailable = UnavailableError("NVML", "no driver", "install it")
    with FakeNvml("a100"), EngineMetrics("e", "m").serve() as endpoint:
        sources: list[Source] = [
            NvmlSource(xid=False),
            InfinibandSource(tree.root),
            FakeFabricSource(1, epoch=1000.0),
            EngineSource(EngineConfig("e", endpoint.url)),
            _Unavailable("nvml-missing", unavailable),
        ]
        assert all(isinstance(source, Source) for source in sources)
        ib_real, others = sources[1:2], sources[:1] + sources[2:]  # both are "infiniband"
        up = {}
        for group in (ib_real, others):
            snapshot = Sampler(group, clock=lambda: 1000.0).sample_once()
            up |= metric_values(snapshot, catalog.health.SOURCE_UP.name)
            assert {s.metric for s in snapshot.samples} - {
                catalog.health.SOURCE_UP.name
            }  # real samples, not only statuses
        for source in sources:
            source.close()
    assert up == {("nvml",): 1.0, ("infiniband",): 1.0, ("engine:e",): 1.0, ("nvml-missing",): 0.0}


def test_one_failing_source_does_not_stop_another() -> None:
    ok, broken = _Fixed("nvml", 300.0), _Broken("engine:vllm", 0.0)
    sampler = Sampler([ok, broken], clock=lambda: 1000.0)
    snapshot = sampler.sample_once()
    sampler.sample_once()
    snapshot = sampler.snapshot()
    assert metric_values(snapshot, "gpumetrics_gpu_power_watts") == {GPU: 300.0}
    up = metric_values(snapshot, "gpumetrics_source_up")
    assert up == {("nvml",): 1.0, ("engine:vllm",): 0.0}
    errors = metric_values(snapshot, "gpumetrics_source_errors_total")
    assert errors == {("engine:vllm", "http_503"): 2.0}
    status = {s.source: s for s in snapshot.statuses}
    assert status["engine:vllm"].error == "http_503: engine went away"
    assert status["nvml"].last_success == 1000.0
    assert status["engine:vllm"].last_success is None


def test_partial_errors_count_but_keep_the_source_up() -> None:
    source = _Fixed("nvml", 1.0, errors=("NVML_ERROR_GPU_IS_LOST",))
    sampler = Sampler([source])
    for _ in range(3):
        sampler.sample_once()
    snapshot = sampler.snapshot()
    assert metric_values(snapshot, "gpumetrics_source_up") == {("nvml",): 1.0}
    assert metric_values(snapshot, "gpumetrics_source_errors_total") == {
        ("nvml", "NVML_ERROR_GPU_IS_LOST"): 3.0
    }


def test_a_hung_source_never_blocks_the_snapshot_or_other_sources() -> None:
    hung, fine = _Blocking("nvml"), _Fixed("infiniband", 5.0)
    sampler = Sampler([hung, fine], interval=0.01)
    sampler.start()
    try:
        assert hung.entered.wait(5)
        # The other source keeps cycling while nvml is stuck inside collect().
        deadline = threading.Event()
        for _ in range(500):
            if len(fine.calls) >= 3:
                break
            deadline.wait(0.01)
        assert len(fine.calls) >= 3
        snapshot = sampler.snapshot()  # returns at once
        assert ("infiniband",) in metric_values(snapshot, "gpumetrics_source_up")
        assert not sampler.ready  # nvml has not finished its first cycle
        hung.release.set()
        for _ in range(500):
            if sampler.ready:
                break
            deadline.wait(0.01)
        assert sampler.ready
    finally:
        hung.release.set()
        sampler.stop()
    assert hung.closed
    assert fine.closed


def test_status_samples_and_error_codes() -> None:
    assert error_code(ValueError("x")) == "ValueError"
    samples = status_samples(())
    assert [s.metric for s in samples] == ["gpumetrics_build_info"]


def test_interval_and_names_are_validated() -> None:
    with pytest.raises(ValueError, match="interval"):
        Sampler([], interval=0)
    with pytest.raises(ValueError, match="unique"):
        Sampler([_Fixed("a", 1), _Fixed("a", 2)])


class _Flaky(_Fixed):
    """Fails with whatever `error` says (None: works)."""

    def __init__(self, name: str) -> None:
        super().__init__(name, 1.0)
        self.error: str | None = "NVML_ERROR_GPU_IS_LOST"

    def collect(self, now: float) -> Collection:
        if self.error is not None:
            error = RuntimeError(f"{self.error}: " + "a long hint " * 20)
            error.code = self.error  # type: ignore[attr-defined]
            raise error
        return super().collect(now)


def test_a_failing_source_warns_on_change_then_every_n_seconds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One cycle a second for 20 minutes with warn_every=300: the first failure, then a
    reminder at 300, 600, 900, 1200 s; a new error at once; a recovery once."""
    flaky = _Flaky("nvml")
    seconds = iter(range(10**6))
    now = [0.0]
    sampler = Sampler([flaky], monotonic=lambda: now[0], warn_every=300.0)
    caplog.set_level("INFO", logger="gpumetrics.pipeline")

    def cycles(n: int) -> None:
        for _ in range(n):
            now[0] = float(next(seconds))
            sampler.sample_once()

    cycles(1201)  # t = 0 .. 1200
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 5
    assert warnings[0].startswith("source nvml failed: NVML_ERROR_GPU_IS_LOST: ")
    assert warnings[1] == "source nvml still failing (NVML_ERROR_GPU_IS_LOST, 300 times in 300 s)"
    assert all(len(w) < 100 for w in warnings[1:])
    caplog.clear()

    flaky.error = "NVML_ERROR_TIMEOUT"  # a different error: logged at once
    cycles(2)
    assert [r.getMessage()[:40] for r in caplog.records] == [
        "source nvml failed: NVML_ERROR_TIMEOUT: "
    ]
    caplog.clear()

    flaky.error = None
    cycles(3)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "source nvml recovered")
    ]
    caplog.clear()
    flaky.error = "NVML_ERROR_TIMEOUT"  # failing again after a recovery is news again
    cycles(1)
    assert len(caplog.records) == 1
    # Every failure still counts in the self-metrics.
    status = sampler.snapshot().statuses[0]
    assert status.errors_total == {"NVML_ERROR_GPU_IS_LOST": 1201, "NVML_ERROR_TIMEOUT": 3}


def test_warn_every_is_validated() -> None:
    with pytest.raises(ValueError, match="warn_every"):
        Sampler([_Fixed("a", 1.0)], warn_every=0)


class _Counting:
    """An engine whose prefix-cache counters follow a script, one entry per cycle (None:
    the cycle fails)."""

    def __init__(self, script: list[tuple[float, float] | None]) -> None:
        self._script = script

    @property
    def name(self) -> str:
        return "engine:e0"

    def collect(self, now: float) -> Collection:
        step = self._script.pop(0)
        if step is None:
            raise RuntimeError("engine went away")
        queried, hit = step
        e = catalog.engine
        return Collection(
            (e.PREFIX_QUERIED.sample(queried, "e0", "m"), e.PREFIX_HIT.sample(hit, "e0", "m"))
        )

    def close(self) -> None:
        pass


def test_snapshots_carry_derived_gauges_stamped_with_cycle_times() -> None:
    """The cycle's start time (the clock passed to the source) is the derived history's time
    (the clock is read at construction, then at each cycle's start and publish): cycles at
    100 and 110 s, 40 of 200 new tokens hit -> hit ratio 0.2 over window "1m"."""
    times = iter([0.0, 100.0, 100.5, 110.0, 110.5, 120.0, 120.5])
    source = _Counting([(1000.0, 500.0), (1200.0, 540.0), None])
    sampler = Sampler([source], clock=lambda: next(times), derived=DerivedGauges(60))
    ratio = catalog.derived.PREFIX_HIT_RATIO.name
    assert metric_values(sampler.sample_once(), ratio) == {}
    assert metric_values(sampler.sample_once(), ratio) == {("e0", "m", "1m"): pytest.approx(0.2)}
    # The source fails: its samples and its derived gauges go together.
    assert metric_values(sampler.sample_once(), ratio) == {}


class _Rejecting(_Fixed):
    """Good cycles until `reject` is set, then a whole-cycle rejection that keeps the last
    good samples (what an engine page over a limit raises), or another failure."""

    def __init__(self, name: str) -> None:
        super().__init__(name, 100.0)
        self.failure: Exception | None = None

    def collect(self, now: float) -> Collection:
        if self.failure is not None:
            raise self.failure
        return super().collect(now)


class _RejectedError(RuntimeError):
    code = "too_many_series"
    keep_last_good = True


def test_a_rejected_cycle_keeps_the_last_good_samples_marked_stale() -> None:
    source = _Rejecting("engine:e0")
    sampler = Sampler([source])

    def seen() -> tuple[dict[tuple[str, ...], object], object, object]:
        snapshot = sampler.snapshot()
        up = metric_values(snapshot, "gpumetrics_source_up")[("engine:e0",)]
        stale = metric_values(snapshot, "gpumetrics_source_stale")[("engine:e0",)]
        return metric_values(snapshot, catalog.gpu.GPU_POWER.name), up, stale

    source.failure = _RejectedError("page over max_series")
    sampler.sample_once()  # nothing good yet: nothing to keep, not stale
    assert seen() == ({}, 0.0, 0.0)
    source.failure = None
    sampler.sample_once()
    assert seen() == ({GPU: 100.0}, 1.0, 0.0)
    source.watts, source.failure = 999.0, _RejectedError("page over max_series")
    sampler.sample_once()
    sampler.sample_once()
    assert seen() == ({GPU: 100.0}, 0.0, 1.0)
    status = sampler.snapshot().statuses[0]
    assert (status.stale, status.up, dict(status.errors_total)) == (
        True,
        False,
        {"too_many_series": 3},  # the first rejection, before any good cycle, counts too
    )
    source.failure = RuntimeError("engine went away")  # no keep_last_good: dropped
    sampler.sample_once()
    assert seen() == ({}, 0.0, 0.0)


def test_every_source_is_down_from_the_first_snapshot_until_its_first_cycle() -> None:
    hung = _Blocking("engine:slow")
    sampler = Sampler([hung, _Fixed("nvml", 1.0)], interval=0.01)
    ups = metric_values(sampler.snapshot(), "gpumetrics_source_up")
    assert ups == {("engine:slow",): 0.0, ("nvml",): 0.0}
    assert not sampler.ready
    sampler.start()
    try:
        assert hung.entered.wait(5)
        for _ in range(500):
            ups = metric_values(sampler.snapshot(), "gpumetrics_source_up")
            if ups[("nvml",)] == 1.0:
                break
            threading.Event().wait(0.01)
        assert ups == {("engine:slow",): 0.0, ("nvml",): 1.0}
    finally:
        hung.release.set()
        sampler.stop()


class _Joins:
    """Wraps a thread and records the timeout of each join."""

    def __init__(self, thread: threading.Thread, timeouts: list[float]) -> None:
        self._thread, self._timeouts = thread, timeouts

    def join(self, timeout: float | None = None) -> None:
        assert timeout is not None
        self._timeouts.append(timeout)
        self._thread.join(timeout)


def test_stop_gives_all_hung_sources_one_deadline_together() -> None:
    """Four sources hung inside collect(): stop(0.2) spends at most 0.2 s joining them all
    (it used to give each one the whole timeout, 4 x 5 s on SIGTERM), and still closes
    every source."""
    hung = [_Blocking(f"engine:e{i}") for i in range(4)]
    sampler = Sampler(hung, interval=0.01)
    sampler.start()
    timeouts: list[float] = []
    try:
        for source in hung:
            assert source.entered.wait(5)
        sampler._threads = [_Joins(t, timeouts) for t in sampler._threads]  # type: ignore[misc]
        sampler.stop(timeout=0.2)
    finally:
        for source in hung:
            source.release.set()
    assert len(timeouts) == 4
    assert 0 < timeouts[0] <= 0.2
    assert sum(timeouts) <= 0.2
    assert all(source.closed for source in hung)
