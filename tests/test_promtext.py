"""The fast text renderer says exactly what prometheus_client's encoder says."""

from __future__ import annotations

import math
import subprocess

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics import exposition as om_exposition
from prometheus_client.openmetrics import parser as om_parser
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from gpumetrics import catalog
from gpumetrics.export.prometheus import PrometheusEndpoint, SnapshotCollector, render_text
from gpumetrics.promtext import TextRenderer, format_value
from gpumetrics.samples import HistogramValue, Sample, Snapshot

from .catalog.test_catalog import _one_sample_each


def _parsed(text: bytes) -> set[tuple[str, tuple[tuple[str, str], ...], str]]:
    out = set()
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            value = "nan" if math.isnan(sample.value) else repr(float(sample.value))
            out.add((sample.name, tuple(sorted(sample.labels.items())), value))
    return out


def _parsed_openmetrics(text: bytes) -> set[tuple[str, ...]]:
    """(family, type, help, sample name, labels, value) by prometheus_client's strict OpenMetrics
    parser, which refuses a page without `# EOF`, suffixes that do not fit the family's
    type, and non-canonical `le` bounds."""
    out = set()
    for family in om_parser.text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            value = "nan" if math.isnan(sample.value) else repr(float(sample.value))
            labels = tuple(sorted(sample.labels.items()))
            out.add(
                (family.name, family.type, family.documentation, sample.name, str(labels), value)
            )
    return out


def _client_openmetrics(snapshot: Snapshot) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snapshot))
    return bytes(om_exposition.generate_latest(registry))


def test_whole_catalog_in_openmetrics_matches_prometheus_client() -> None:
    snapshot = _one_sample_each()
    ours = TextRenderer(catalog.ALL, openmetrics=True).render(snapshot)
    assert ours.endswith(b"# EOF\n")
    assert _parsed_openmetrics(ours) == _parsed_openmetrics(_client_openmetrics(snapshot))


def test_whole_catalog_matches_prometheus_client() -> None:
    snapshot = _one_sample_each()
    assert _parsed(TextRenderer(catalog.ALL).render(snapshot)) == _parsed(render_text(snapshot))


def test_endpoint_serves_the_fast_path_and_promtool_accepts_it(promtool: str) -> None:
    snapshot = _one_sample_each()
    body, content_type = PrometheusEndpoint(lambda: snapshot).render(None)
    assert content_type.startswith("text/plain; version=0.0.4")
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60, check=False
    )
    assert lint.returncode == 0, lint.stdout.decode()


def test_prometheus_default_accept_header_gets_openmetrics_and_plain_text_the_fast_path() -> None:
    snapshot = Snapshot(0.0, (catalog.gpu.GPU_POWER.sample(1.0, "0", "u", "m"),))
    endpoint = PrometheusEndpoint(lambda: snapshot)
    accept = (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    assert endpoint.render(accept)[1].startswith("application/openmetrics-text; version=1.0.0")
    assert endpoint.render("text/plain;version=0.0.4")[1].startswith("text/plain")
    assert endpoint.render(None)[0] == TextRenderer(catalog.ALL).render(snapshot)


def test_special_values() -> None:
    assert format_value(float("inf")) == "+Inf"
    assert format_value(float("-inf")) == "-Inf"
    assert format_value(float("nan")) == "NaN"
    assert format_value(3) == "3"  # ints exact
    assert format_value(3.0) == "3.0"
    assert format_value(2**64 - 1) == "18446744073709551615"
    assert format_value(2.5e10) == "25000000000.0"


_label_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    model=_label_text,
    value=st.floats(allow_nan=True, allow_infinity=True),
    counts=st.lists(st.integers(0, 10**9), min_size=14, max_size=14),
)
def test_escaping_and_values_round_trip(model: str, value: float, counts: list[int]) -> None:
    cumulative = tuple(float(c) for c in sorted(counts))
    ttft = catalog.engine.TTFT
    samples = (
        catalog.engine.KV_USAGE.sample(value, 'eng"1\\', model),
        catalog.engine.PREFIX_HIT.sample(abs(value) if not math.isnan(value) else 0.0, "e", model),
        Sample(
            ttft.name,
            ("e", model),
            HistogramValue(ttft.buckets, cumulative, 1.5, cumulative[-1] + 1),
        ),
    )
    snapshot = Snapshot(0.0, samples)
    assert _parsed(TextRenderer(catalog.ALL).render(snapshot)) == _parsed(render_text(snapshot))
    om = TextRenderer(catalog.ALL, openmetrics=True).render(snapshot)
    assert _parsed_openmetrics(om) == _parsed_openmetrics(_client_openmetrics(snapshot))
