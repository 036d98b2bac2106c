"""Limits on what an engine page may hold (sources/engine/limits.py).

Each limit at its boundary (at the limit: applied; one over: the whole cycle rejected with its
code), the series limit enforced before the parser sees the lines past it, duplicates kept
first and counted, and over real HTTP: a page over a limit keeps the engine's last good
samples, marked stale, until the engine serves a good page again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gpumetrics.catalog import engine as e
from gpumetrics.catalog import health
from gpumetrics.config import load_config
from gpumetrics.engine_config import EngineConfig, parse_engine_flag
from gpumetrics.errors import ConfigError
from gpumetrics.pipeline import Sampler
from gpumetrics.sources.engine import EngineError, EngineSource
from gpumetrics.sources.engine.limits import LimitError, Limits, PageGuard
from gpumetrics.sources.engine.parse import parse_page
from gpumetrics.sources.engine.source import collection_from_page
from gpumetrics.testing.sample_values import metric_values

URL = "http://127.0.0.1:1/metrics"
RUNNING = "vllm:num_requests_running"


def _page(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _series(n: int, *, label: str = "model_name", prefix: str = "m") -> list[str]:
    return [f'{RUNNING}{{{label}="{prefix}{i}"}} {i}' for i in range(n)]


def _code(body: bytes, limits: Limits) -> str | None:
    try:
        parse_page(body, limits)
    except EngineError as exc:
        return exc.code
    return None


# --- each limit at its boundary -------------------------------------------------------------


def test_series_limit_at_and_over_the_boundary() -> None:
    limits = Limits(max_series=5)
    assert _code(_page("# TYPE x gauge", *_series(5)), limits) is None
    assert _code(_page("# TYPE x gauge", *_series(6)), limits) == "too_many_series"


def test_series_limit_stops_before_the_parser_reads_further() -> None:
    """Lines past the limit are never parsed: garbage there cannot turn the error into a
    parse error, and the guard has counted exactly one line past the limit."""
    body = _page(*_series(3), *["garbage {"] * 1000)
    assert _code(body, Limits(max_series=2000)) == "parse"  # within the limit: parsed, bad
    assert _code(body, Limits(max_series=3)) == "too_many_series"  # never parsed
    # The guard stops at the first line over the limit: the parser never sees it.
    guard, lines = PageGuard(Limits(max_series=3)), []
    with pytest.raises(LimitError) as info:
        lines.extend(guard.lines(_page(*_series(3), *["garbage {"] * 1000)))
    assert (info.value.code, len(lines), guard.series) == ("too_many_series", 3, 4)


def test_label_value_length_at_and_over_the_boundary() -> None:
    limits = Limits(max_label_value_length=10)
    assert _code(_page(f'{RUNNING}{{model_name="{"a" * 10}"}} 1'), limits) is None
    assert _code(_page(f'{RUNNING}{{model_name="{"a" * 11}"}} 1'), limits) == (
        "label_value_too_long"
    )


def test_a_line_too_long_for_any_label_set_is_refused_unparsed() -> None:
    limits = Limits(max_label_value_length=8, max_labels=2)
    # Not even valid text, but far too long to fit: refused by length before the parser.
    huge = f'{RUNNING}{{model_name="{"x" * (limits.max_line_bytes + 10)}' + " 1"
    assert _code(_page(huge), limits) == "label_value_too_long"


def test_label_count_at_and_over_the_boundary() -> None:
    limits = Limits(max_labels=3)
    three = ",".join(f'l{i}="v"' for i in range(3))
    four = ",".join(f'l{i}="v"' for i in range(4))
    assert _code(_page(f"{RUNNING}{{{three}}} 1"), limits) is None
    assert _code(_page(f"{RUNNING}{{{four}}} 1"), limits) == "too_many_labels"


def test_distinct_label_values_per_family_at_and_over_the_boundary() -> None:
    limits = Limits(max_label_values=4)
    four = _page(f"# TYPE {RUNNING} gauge", *_series(4))
    assert _code(four, limits) is None
    five = _page(f"# TYPE {RUNNING} gauge", *_series(5))
    assert _code(five, limits) == "too_many_label_values"
    # Counted per family: four values in each of two families is within the limit.
    other = "vllm:num_requests_waiting"
    two_families = _page(
        f"# TYPE {RUNNING} gauge",
        *_series(4),
        f"# TYPE {other} gauge",
        *[f'{other}{{model_name="n{i}"}} 1' for i in range(4)],
    )
    assert _code(two_families, limits) is None


def test_limits_are_validated() -> None:
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="max_series"):
            Limits(max_series=bad)  # type: ignore[arg-type]


# --- duplicates -----------------------------------------------------------------------------


def test_exact_duplicate_series_keep_the_first_and_are_counted_not_summed() -> None:
    body = _page(
        f"# TYPE {RUNNING} gauge",
        f'{RUNNING}{{model_name="m"}} 3',
        f'{RUNNING}{{model_name="m"}} 4',
        f'{RUNNING}{{model_name="m"}} 5',
        f'{RUNNING}{{model_name="other"}} 7',
    )
    exposition, duplicates = parse_page(body, Limits())
    assert duplicates == 2
    assert [(s.labels["model_name"], s.value) for s in exposition.get(RUNNING)] == [
        ("m", 3.0),
        ("other", 7.0),
    ]
    collection = collection_from_page(body, EngineConfig("v", URL, kind="vllm"))
    running = metric_values(collection, e.RUNNING_SEQUENCES.name)
    assert running == {("v", "m"): 3.0, ("v", "other"): 7.0}  # 3, not 3 + 4 + 5
    assert collection.errors.count("duplicate_series") == 2


# --- config keys ------------------------------------------------------------------------------


def test_limits_are_engine_config_keys_in_the_file_and_the_flag(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text(
        '[[engines]]\nname = "a"\nurl = "http://127.0.0.1:1"\nmax_series = 7\n'
        "max_label_value_length = 8\nmax_labels = 9\nmax_label_values = 10\n"
    )
    (engine,) = load_config(path).engines
    assert Limits.of(engine) == Limits(7, 8, 9, 10)
    flag = parse_engine_flag("a=http://127.0.0.1:1,max_series=7,max_labels=9")
    assert (flag.max_series, flag.max_labels) == (7, 9)
    assert Limits.of(EngineConfig("a", URL)) == Limits()  # the documented defaults
    with pytest.raises(ConfigError, match="max_series"):
        parse_engine_flag("a=http://127.0.0.1:1,max_series=lots")
    path.write_text('[[engines]]\nname = "a"\nurl = "http://127.0.0.1:1"\nmax_series = 0\n')
    with pytest.raises(ConfigError, match=r"engines\[0\]\.max_series"):
        load_config(path)


# --- over real HTTP: reject whole, keep the last good samples, marked stale -----------------


class _Handler(BaseHTTPRequestHandler):
    server: _Engine

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        body = self.server.body
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Engine(ThreadingHTTPServer):
    daemon_threads = True
    body = b""
    status = 200


@pytest.fixture
def engine() -> Iterator[_Engine]:
    server = _Engine(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _vllm(running: float, waiting: float, extra: int = 0) -> bytes:
    return _page(
        f"# TYPE {RUNNING} gauge",
        f'{RUNNING}{{model_name="m"}} {running}',
        "# TYPE vllm:num_requests_waiting gauge",
        f'vllm:num_requests_waiting{{model_name="m"}} {waiting}',
        *[f'vllm:num_requests_swapped{{model_name="m{i}"}} 0' for i in range(extra)],
    )


def test_a_page_over_a_limit_keeps_the_last_good_samples_marked_stale(engine: _Engine) -> None:
    port = engine.server_address[1]
    config = EngineConfig("v", f"http://127.0.0.1:{port}/metrics", kind="vllm", max_series=10)
    sampler = Sampler([EngineSource(config)])
    name = config.source_name

    def state() -> tuple[dict[tuple[str, ...], float], float, float, float]:
        snapshot = sampler.snapshot()
        running = metric_values(snapshot, e.RUNNING_SEQUENCES.name)
        up = metric_values(snapshot, health.SOURCE_UP.name)[(name,)]
        stale = metric_values(snapshot, health.SOURCE_STALE.name)[(name,)]
        errors = metric_values(snapshot, health.SOURCE_ERRORS.name)
        return running, up, stale, errors.get((name, "too_many_series"), 0.0)

    # Before the first cycle: the source is already there, down.
    assert state() == ({}, 0.0, 0.0, 0.0)
    engine.body = _vllm(3, 1)
    sampler.sample_once()
    assert state() == ({("v", "m"): 3.0}, 1.0, 0.0, 0.0)
    # Over the limit (2 + 9 = 11 series > 10): nothing of the new page (running 99) applied.
    engine.body = _vllm(99, 99, extra=9)
    sampler.sample_once()
    assert state() == ({("v", "m"): 3.0}, 0.0, 1.0, 1.0)
    sampler.sample_once()  # still over: still the last good samples
    assert state() == ({("v", "m"): 3.0}, 0.0, 1.0, 2.0)
    # At the limit again (2 + 8 = 10): applied, fresh.
    engine.body = _vllm(5, 2, extra=8)
    sampler.sample_once()
    assert state() == ({("v", "m"): 5.0}, 1.0, 0.0, 2.0)
    # Another kind of failure (the engine answers 503) drops the samples as before.
    engine.body, engine.status = _vllm(99, 99, extra=9), 503
    sampler.sample_once()
    engine.status = 200
    sampler.sample_once()  # over the limit now, but nothing good is left to keep
    assert state() == ({}, 0.0, 0.0, 3.0)
