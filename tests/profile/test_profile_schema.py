"""The `gpumetrics.profile/v1` JSON Schema: a valid schema, met by hand-made reports (skipped
cells and GPU activity included), and strict enough to catch broken ones."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from gpumetrics.costmodel import PRESETS
from gpumetrics.profile.analysis import Roof, Roofs
from gpumetrics.profile.measure import (
    DECODE,
    CellMeasurement,
    CellSpec,
    DeviceInfo,
    GpuActivity,
    KvPool,
    StepPlan,
    StepRecord,
)
from gpumetrics.profile.report import CELL_FIELDS, SCHEMA, report_to_dict
from gpumetrics.profile.report_csv import CSV_COLUMNS, report_to_csv
from gpumetrics.profile.run import sweep_report
from gpumetrics.profile.schema import JSON_SCHEMA
from gpumetrics.profile.sweep import SkippedCell, SweepOutcome

jsonschema = pytest.importorskip("jsonschema")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "profile-schema.md"


def _report() -> dict[str, Any]:
    gpu = GpuActivity(0.2, 0.8, 0.7, 1.0, 0.3)
    outcomes: list[SweepOutcome] = [
        CellMeasurement(
            CellSpec(DECODE, b, 512),
            (StepRecord(1e-3 * b**0.5, 1e9 * b, 2e9, b, b, 512.0),) * 3,
            kv_used_blocks=b * 33,
            kv_used_bytes=b * 33 * 16 * 32768.0,
            gpu=gpu,
        )
        for b in (1, 4)
    ]
    outcomes.append(SkippedCell(CellSpec(DECODE, 4096, 512), "KV blocks insufficient: test"))
    report = sweep_report(
        outcomes,
        model=PRESETS["1b"],
        device=DeviceInfo("cuda", "NVIDIA H200", "bf16", "GPU-1234", "2.13.0", None),
        roofs=Roofs(Roof("datasheet", 989.4e12, 4.8e12, "table")),
        calibration=None,
        pool=KvPool(10_000, 16, 32768.0, 200_000, "test"),
        plan=StepPlan(3, 1),
        gpu_counters="sampled through NVML, with GPM",
        gpu_counters_available=True,
        created="2026-11-01T12:00:00Z",
    )
    return report_to_dict(report)


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(JSON_SCHEMA)
    assert JSON_SCHEMA["properties"]["schema"] == {"const": SCHEMA}


def test_a_report_with_skipped_cells_and_gpu_activity_validates() -> None:
    data = json.loads(json.dumps(_report()))  # what a file holds
    jsonschema.validate(data, JSON_SCHEMA, format_checker=jsonschema.FormatChecker())
    assert [c["status"] for c in data["cells"]] == ["ok", "ok", "skipped"]
    assert data["cells"][0]["gpu"]["tensor_active"] == 0.2
    assert list(data["cells"][0]) == list(CELL_FIELDS)


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d.update(schema="gpumetrics.profile/v0"),
        lambda d: d["cells"][0].update(steps=None),  # ok cell without numbers
        lambda d: d["cells"][2].update(tokens_per_second=5.0),  # skipped cell with numbers
        lambda d: d["cells"][2].update(skip_reason=None),  # skipped without a reason
        lambda d: d["cells"][0].update(bound="network"),
        lambda d: d["cells"][0]["gpu"].update(dram_active=1.5),
        lambda d: d["cells"][0].update(extra=1),
        lambda d: d.pop("verdict"),
        lambda d: d.update(verdict=[]),
        lambda d: d["groups"][0].update(axis="steps"),
    ],
)
def test_broken_reports_fail_validation(breakage: Any) -> None:
    data = copy.deepcopy(_report())
    breakage(data)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, JSON_SCHEMA)


def test_csv_columns_match_the_json_fields() -> None:
    assert CSV_COLUMNS[: len(CELL_FIELDS) - 1] == CELL_FIELDS[:-1]
    assert CSV_COLUMNS[-5:] == (
        "gpu_tensor_active",
        "gpu_dram_active",
        "gpu_sm_active",
        "gpu_utilization_naive",
        "gpu_seconds",
    )


def test_csv_rows_carry_the_skip_reason_and_gpu_activity() -> None:
    outcomes: list[SweepOutcome] = [
        SkippedCell(CellSpec(DECODE, 8, 64), 'needs "more" blocks, sorry')
    ]
    report = sweep_report(
        outcomes,
        model=PRESETS["tiny"],
        device=DeviceInfo("cpu", "CPU", "fp32"),
        roofs=Roofs(Roof("user", 1e11, 1e10, "test")),
        calibration=None,
        pool=KvPool(4, 16, 1024.0, 4, "test"),
        plan=StepPlan(2, 0),
        gpu_counters="not available: test",
        gpu_counters_available=False,
    )
    header, row = report_to_csv(report).splitlines()
    assert header.split(",")[0] == "label"
    assert row.startswith('b8/c64,decode,8,64,,skipped,"needs ""more"" blocks, sorry",false,')


def test_every_field_is_documented() -> None:
    text = DOCS.read_text()
    assert SCHEMA in text
    assert "gpumetrics.profile.schema" in text
    for field in (*CELL_FIELDS, *JSON_SCHEMA["properties"]):
        assert f"`{field}`" in text, f"docs/profile-schema.md does not describe `{field}`"
