"""The report's JSON, CSV, HTML and PNG carry the same numbers as the rows."""

from __future__ import annotations

import csv
import io
import json

import pytest

from gpumetrics.costmodel import PRESETS
from gpumetrics.hardware import find_gpu
from gpumetrics.kvsize import Request, Trace, exact_curve, kv_costs, size
from gpumetrics.kvsize.report import (
    SCHEMA,
    report_to_csv,
    report_to_dict,
    report_to_html,
    summary_lines,
    verdict_lines,
)
from gpumetrics.kvsize.sizing import SizingReport


def _report(with_costs: bool = True) -> SizingReport:
    requests = [
        Request((1, 2, 3), 48, timestamp_ms=0),
        Request((1, 2, 4), 48, timestamp_ms=1000),
        Request((1, 2, 3), 48, timestamp_ms=2000),
    ]
    costs = kv_costs(PRESETS["llama-3-70b"], find_gpu("h200"), tp=2) if with_costs else None
    return size(exact_curve(Trace.from_requests(requests, 16)), costs=costs, target=0.9)


def test_json_rows_have_the_promised_fields() -> None:
    report = _report()
    data = json.loads(json.dumps(report_to_dict(report, {"path": "t.jsonl"})))
    assert data["schema"] == SCHEMA
    assert data["trace"]["path"] == "t.jsonl"
    assert data["trace"]["requests"] == 3
    assert data["max_hit_ratio"] == 5 / 9
    for row, original in zip(data["rows"], report.rows, strict=True):
        for key in ("capacity_blocks", "capacity_tokens", "hit_ratio", "max_hit_ratio"):
            assert row[key] == getattr(original, key)
    assert data["target_row"]["is_target"] is True
    assert data["costs"]["tp"] == 2
    assert data["verdict"] == verdict_lines(report)


def test_infinite_gpus_are_null_in_json() -> None:
    requests = [Request((1,), 16), Request((1,), 16)]
    costs = kv_costs(PRESETS["llama-3-70b"], find_gpu("h200"), tp=1)
    report = size(exact_curve(Trace.from_requests(requests, 16)), costs=costs)
    assert report_to_dict(report, {})["rows"][0]["gpus"] is None


def test_csv_matches_rows() -> None:
    report = _report(with_costs=False)
    rows = list(csv.DictReader(io.StringIO(report_to_csv(report))))
    assert [int(r["capacity_blocks"]) for r in rows] == [r.capacity_blocks for r in report.rows]
    assert [float(r["hit_ratio"]) for r in rows] == [r.hit_ratio for r in report.rows]
    assert all(r["kv_bytes"] == "" for r in rows)


def test_text_lines() -> None:
    report = _report()
    summary = "\n".join(summary_lines(report))
    assert "3 requests, 9 block lookups of 16 tokens, 4 distinct blocks" in summary
    assert "1.5 requests/s" in summary
    assert "320 KiB of bf16 KV a token x TP2" in summary
    verdict = verdict_lines(report)
    assert verdict[0].startswith("verdict: 90% of the infinite-cache hit ratio")
    assert "NVIDIA H200" in verdict[0]
    assert "at TP2" in verdict[0]
    assert verdict[1].startswith("twice that")


def test_html_is_self_contained() -> None:
    report = _report()
    page = report_to_html(report, "t <trace>", png=b"\x89PNG fake")
    assert "t &lt;trace&gt;" in page
    assert "<script" not in page
    assert "http" not in page
    assert "data:image/png;base64,iVBORyBmYWtl" in page
    assert page.count("<tr") == len(report.rows) + 1
    assert "class=target" in page


def test_png() -> None:
    pytest.importorskip("matplotlib")
    from gpumetrics.kvsize.plot import curve_png  # noqa: PLC0415 - optional dependency

    png = curve_png(_report(), "title")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 10_000
