"""Loading a recorded trace (tests/data/h200/README.md: a tgz of `trace/sNNNN_<epoch>.prom`
scrapes and a phases file) for replay tests; the scrapes are parsed by prometheus_client.

    trace = load_trace(DATA / "trace.tgz", DATA / "trace-phases.txt")
    for scrape in trace.in_phase("gemm", settle=1.0):
        scrape.value("gpumetrics_gpu_tensor_active_ratio", gpu="0")
"""

from __future__ import annotations

import re
import statistics
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from gpumetrics.testing.workloads import PhaseMark, Stretch, parse_phase_marks, stretches

__all__ = ["Scrape", "Trace", "load_trace", "parse_scrape"]

_MEMBER = re.compile(r"(?:^|/)s(\d{4,})_(\d+(?:\.\d+)?)\.prom$")

Series = tuple[str, frozenset[tuple[str, str]]]


@dataclass(frozen=True, slots=True)
class Scrape:
    """One scrape: its sequence number, Unix time and every sample by (name, labels)."""

    index: int
    at: float
    samples: dict[Series, float]

    def find(self, name: str, **labels: str) -> list[float]:
        """Values of the `name` samples whose labels include `labels`."""
        wanted = set(labels.items())
        return [v for (n, have), v in self.samples.items() if n == name and wanted <= have]

    def value(self, name: str, **labels: str) -> float:
        """The one sample of `name` with `labels` (KeyError when none or several match)."""
        found = self.find(name, **labels)
        if len(found) != 1:
            raise KeyError(f"{len(found)} samples of {name}{labels} at scrape {self.index}")
        return found[0]


def parse_scrape(index: int, at: float, text: str) -> Scrape:
    """A Scrape from one exposition body."""
    samples: dict[Series, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            if key in samples:
                raise ValueError(f"scrape {index}: duplicate series {key}")
            samples[key] = float(sample.value)
    return Scrape(index, at, samples)


@dataclass(frozen=True, slots=True)
class Trace:
    """A recording: scrapes in time order and the phase marks."""

    scrapes: tuple[Scrape, ...]
    marks: tuple[PhaseMark, ...]

    @property
    def stretches(self) -> tuple[Stretch, ...]:
        return stretches(self.marks)

    def in_phase(self, name: str, *, settle: float = 0.0, tail: float = 0.0) -> list[Scrape]:
        """Scrapes inside the stretches named `name`, from `settle` s after each start to
        `tail` s before its end."""
        return [
            scrape
            for stretch in self.stretches
            if stretch.name == name
            for scrape in self.scrapes
            if stretch.start + settle <= scrape.at < stretch.end - tail
        ]


def load_trace(tgz: Path, phases: Path) -> Trace:
    """Read a tgz of `trace/sNNNN_<epoch>.prom` scrapes and its phases file (other tar members
    are ignored; nothing is extracted to disk)."""
    scrapes = []
    with tarfile.open(tgz, "r:gz") as archive:
        for member in archive.getmembers():
            match = _MEMBER.search(member.name)
            if not member.isfile() or match is None:
                continue
            handle = archive.extractfile(member)
            assert handle is not None
            text = handle.read().decode()
            scrapes.append(parse_scrape(int(match.group(1)), float(match.group(2)), text))
    if not scrapes:
        raise ValueError(f"{tgz}: no trace/sNNNN_<epoch>.prom members")
    scrapes.sort(key=lambda s: (s.at, s.index))
    return Trace(tuple(scrapes), parse_phase_marks(phases.read_text()))


def median_of(scrapes: Iterable[Scrape], read: Callable[[Scrape], float]) -> float:
    """The median of `read(scrape)` over `scrapes`."""
    return statistics.median(read(scrape) for scrape in scrapes)
