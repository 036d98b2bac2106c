"""Fixtures for the NVML source tests: a manual clock, FakeNvml installs and NVML sources that
are always torn down, and a guard that pynvml's globals come back as they were."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pynvml
import pytest

from gpumetrics.sources.nvml import NvmlSource
from gpumetrics.testing import FakeNvml, ManualClock

#: Seconds on the manual clock when a test starts (the workload's time 0).
START = 1_000.0


def _pynvml_globals() -> tuple[object, dict[str, object], int, object]:
    return (
        pynvml.nvmlLib,
        dict(pynvml._nvmlGetFunctionPointer_cache),
        pynvml._nvmlLib_refcount,
        pynvml.CDLL,
    )


@pytest.fixture(autouse=True)
def _pynvml_restored() -> Iterator[None]:
    before = _pynvml_globals()
    yield
    assert _pynvml_globals() == before, "a test left pynvml pointing at a fake"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def install_fake(clock: ManualClock) -> Iterator[Callable[..., FakeNvml]]:
    """install_fake("h100x8", **FakeNvml kwargs) -> an installed FakeNvml on `clock`."""
    installed: list[FakeNvml] = []

    def install(profile: str = "h100x8", **kwargs: Any) -> FakeNvml:
        kwargs.setdefault("clock", clock)
        fake = FakeNvml(profile, **kwargs).install()
        installed.append(fake)
        return fake

    yield install
    for fake in reversed(installed):
        fake.uninstall()


@pytest.fixture
def open_source(
    install_fake: Callable[..., FakeNvml],
) -> Iterator[Callable[..., NvmlSource]]:
    """open_source(**NvmlSource kwargs): closed at teardown, before the fake goes away."""
    sources: list[NvmlSource] = []

    def open_(**kwargs: Any) -> NvmlSource:
        kwargs.setdefault("xid_timeout_ms", 20)
        source = NvmlSource(**kwargs)
        sources.append(source)
        return source

    yield open_
    for source in sources:
        source.close()
