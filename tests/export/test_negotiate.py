"""Accept negotiation: q-values, versions, wildcards and specificity, against hand-picked
answers and, where both should agree, prometheus_client's own choose_encoder."""

from __future__ import annotations

import pytest
from prometheus_client.exposition import choose_encoder

from gpumetrics.export.negotiate import Format, choose_format, parse_accept

PROMETHEUS_2 = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
PROMETHEUS_3 = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)
PROMETHEUS_CLASSIC_FIRST = (  # scrape_protocols: [PrometheusText0.0.4, OpenMetricsText1.0.0]
    "text/plain;version=0.0.4;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,*/*;q=0.1"
)

OM, CLASSIC = Format.OPENMETRICS, Format.CLASSIC


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, CLASSIC),
        ("", CLASSIC),
        ("*/*", CLASSIC),  # a tie between the offers goes to the classic format
        ("application/json", CLASSIC),  # nothing acceptable: the classic format anyway
        (PROMETHEUS_2, OM),
        (PROMETHEUS_3, OM),
        (PROMETHEUS_CLASSIC_FIRST, CLASSIC),
        ("application/openmetrics-text", OM),
        ("Application/OpenMetrics-Text; Version=1.0.0", OM),
        ('application/openmetrics-text; version="1.0.0"', OM),
        ("application/openmetrics-text;version=0.0.1", CLASSIC),  # a version not offered
        ("application/openmetrics-text;version=2.0.0, text/plain;q=0.1", CLASSIC),
        ("text/plain;q=1, application/openmetrics-text;q=0.1", CLASSIC),
        ("text/plain;q=0.1, application/openmetrics-text", OM),
        ("text/plain, application/openmetrics-text", CLASSIC),  # tie: the first range wins
        ("application/openmetrics-text, text/plain", OM),
        ("text/plain;q=0, */*", OM),  # classic refused, the wildcard takes OpenMetrics
        ("application/openmetrics-text;q=0, */*", CLASSIC),
        ("application/*;q=0.9, text/plain;q=0.8", OM),
        ("text/*;q=0.9, application/openmetrics-text;q=0.8", CLASSIC),
        ("application/openmetrics-text;q=abc, text/plain;q=0.2", CLASSIC),  # bad q: 0
        ("application/openmetrics-text;q=7, text/plain;q=0.2", CLASSIC),  # out of range: 0
        ("application/openmetrics-text;q=nan", CLASSIC),
        ("garbage, ;;, /x, application/openmetrics-text", OM),  # malformed items skipped
        ("text/plain;version=1.0.0", CLASSIC),  # not offered; nothing matches: classic
    ],
)
def test_choose_format(accept: str | None, expected: Format) -> None:
    assert choose_format(accept) is expected


@pytest.mark.parametrize(
    "accept",
    [
        PROMETHEUS_2,
        PROMETHEUS_3,
        "application/openmetrics-text",
        "application/openmetrics-text;version=1.0.0",
        "text/plain;version=0.0.4",
        "*/*",
        "",
        "application/json",
    ],
)
def test_agrees_with_prometheus_client_where_q_values_do_not_matter(accept: str) -> None:
    _, content_type = choose_encoder(accept)
    expected = OM if content_type.startswith("application/openmetrics-text") else CLASSIC
    assert choose_format(accept) is expected


def test_parse_accept_reads_quality_version_and_position() -> None:
    ranges = parse_accept(PROMETHEUS_2)
    assert [(r.type, r.subtype, r.version, r.quality, r.position) for r in ranges] == [
        ("application", "openmetrics-text", "1.0.0", 1.0, 0),
        ("application", "openmetrics-text", "0.0.1", 0.75, 1),
        ("text", "plain", "0.0.4", 0.5, 2),
        ("*", "*", None, 0.1, 3),
    ]
