"""The JSON Schema (draft 2020-12) of `gpumetrics profile --json`: `gpumetrics.profile/v1`.

docs/profile-schema.md explains every field; this is the machine-checkable form (the tests
validate real reports against it with `jsonschema`). A change that removes or renames a field,
or changes its meaning or unit, is a new version (`gpumetrics.profile/v2`); adding an optional
field is not.
"""

from __future__ import annotations

from typing import Any, Final

from .report import CELL_FIELDS, SCHEMA

__all__ = ["JSON_SCHEMA"]


def _num(minimum: float | None = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "number"}
    if minimum is not None:
        out["minimum"] = minimum
    return out


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Any], *, nullable: bool = False) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": properties,
        "required": sorted(properties),
        "additionalProperties": False,
    }
    return _nullable(schema) if nullable else schema


_RATIO = {"type": "number", "minimum": 0, "maximum": 1}
_COUNT = {"type": "integer", "minimum": 0}
_POSITIVE = {"type": "integer", "minimum": 1}
_TEXT = {"type": "string"}
_BOUND = {"enum": ["memory", "compute"]}

_ROOF = _object(
    {
        "kind": {"enum": ["datasheet", "user", "achievable"]},
        "peak_flops": {"type": "number", "exclusiveMinimum": 0},
        "bandwidth": {"type": "number", "exclusiveMinimum": 0},
        "ridge": {"type": "number", "exclusiveMinimum": 0},
        "source": _TEXT,
    }
)

_GPU = _object(
    {
        "tensor_active": _nullable(_RATIO),
        "dram_active": _nullable(_RATIO),
        "sm_active": _nullable(_RATIO),
        "utilization_naive": _nullable(_RATIO),
        "seconds": _num(),
    },
    nullable=True,
)

_CELL_NUMBERS: dict[str, Any] = {
    "steps": _POSITIVE,
    "step_seconds_p50": _num(),
    "step_seconds_p95": _num(),
    "step_seconds_mean": _num(),
    "tokens_per_second": _num(),
    "flops_per_step": _num(),
    "bytes_per_step": _num(),
    "achieved_flops_per_second": _num(),
    "achieved_bytes_per_second": _num(),
    "arithmetic_intensity": _num(),
    "predicted_step_seconds": _num(),
    "roofline_fraction": _num(),
    "bound": _BOUND,
    "mfu": _num(),
    "mbu": _num(),
    "mfu_achievable": _nullable(_num()),
    "mbu_achievable": _nullable(_num()),
    "mean_sequences": _num(),
    "mean_context": _nullable(_num()),
    "kv_used_blocks": _COUNT,
    "kv_used_bytes": _num(),
}

_CELL_BASE: dict[str, Any] = {
    "label": _TEXT,
    "phase": {"enum": ["decode", "prefill"]},
    "batch": _POSITIVE,
    "context": _POSITIVE,
    "chunk": _nullable(_POSITIVE),
    "skip_reason": _nullable(_TEXT),
    "kv_fits": {"type": "boolean"},
    "marks": {
        "type": "array",
        "items": {"enum": ["first-compute-bound", "knee", "largest-fit"]},
        "uniqueItems": True,
    },
    "gpu": _GPU,
}

_CELL: dict[str, Any] = {
    "type": "object",
    "required": list(CELL_FIELDS),
    "additionalProperties": False,
    "properties": {**_CELL_BASE, "status": {"enum": ["ok", "skipped"]}}
    | {k: _nullable(v) for k, v in _CELL_NUMBERS.items()},
    "oneOf": [
        {  # a cell that ran has every number and no skip reason
            "properties": {
                "status": {"const": "ok"},
                "skip_reason": {"type": "null"},
                **_CELL_NUMBERS,
            }
        },
        {  # a skipped cell says why and has no numbers
            "properties": {
                "status": {"const": "skipped"},
                "skip_reason": _TEXT,
                **{k: {"type": "null"} for k in _CELL_NUMBERS},
                "gpu": {"type": "null"},
            }
        },
    ],
}

_GROUP = _object(
    {
        "phase": {"enum": ["decode", "prefill"]},
        "context": _POSITIVE,
        "axis": {"enum": ["batch", "chunk"]},
        "first_compute_bound": _nullable(_POSITIVE),
        "knee": _nullable(_POSITIVE),
        "knee_gain": _nullable(_num(None)),
        "top_gain": _nullable(_num(None)),
        "largest_fit": _nullable(_POSITIVE),
        "max_batch_fits": _nullable(_COUNT),
        "crossover_batch": _nullable(_POSITIVE),
        "skipped": _COUNT,
    }
)

_ATTACH = _object(
    {
        "url": _TEXT,
        "kind": _TEXT,
        "detected_kind": _nullable(_TEXT),
        "engine_model": _nullable(_TEXT),
        "gpus": {"type": "array", "items": _TEXT},
        "requested_seconds": _num(),
        "window_seconds": _num(),
        "scrapes": _COUNT,
        "failures": {
            "type": "array",
            "items": _object({"at_seconds": _num(), "message": _TEXT}),
        },
        "complete": {"type": "boolean"},
        **{
            k: _nullable(_num())
            for k in (
                "tokens_per_second",
                "prefill_tokens_per_second",
                "decode_tokens_per_second",
                "steps_per_second",
                "mean_batch",
                "flops_per_second",
                "bytes_per_second",
                "arithmetic_intensity",
                "mfu",
                "mbu",
            )
        },
        "hit_ratio": _nullable(_RATIO),
        "kv_usage": _nullable(_RATIO),
        "busy_ratio": _nullable(_RATIO),
        "bound": _nullable(_BOUND),
        "gpu_count": _POSITIVE,
        "gpu": _GPU,
    },
    nullable=True,
)

#: The JSON Schema of a `gpumetrics.profile/v1` report.
JSON_SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://gpumetrics.dev/schemas/profile-v1.json",
    "title": "gpumetrics profile report",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "schema",
        "mode",
        "created",
        "gpumetrics_version",
        "model",
        "device",
        "roofs",
        "calibration",
        "kv_pool",
        "plan",
        "gpu_counters",
        "cells",
        "groups",
        "attach",
        "verdict",
        "notes",
    ],
    "properties": {
        "schema": {"const": SCHEMA},
        "mode": {"enum": ["sweep", "attach"]},
        "created": {"type": "string", "format": "date-time"},
        "gpumetrics_version": _TEXT,
        "model": _object(
            {
                "name": _TEXT,
                "params": _POSITIVE,
                "dtype": _nullable(_TEXT),
                "kv_bytes_per_token": _num(),
            },
            nullable=True,
        ),
        "device": _object(
            {
                "kind": {"enum": ["cpu", "cuda"]},
                "name": _TEXT,
                "uuid": _nullable(_TEXT),
                "dtype": _TEXT,
                "torch_version": _TEXT,
                "threads": _nullable(_POSITIVE),
            },
            nullable=True,
        ),
        "roofs": _object({"reference": _ROOF, "achievable": _nullable(_ROOF)}, nullable=True),
        "calibration": _object(
            {
                "device": _TEXT,
                "dtype": _TEXT,
                "matmul_flops": {"type": "number", "exclusiveMinimum": 0},
                "copy_bandwidth": {"type": "number", "exclusiveMinimum": 0},
                "matmul_size": _POSITIVE,
                "copy_bytes": _POSITIVE,
                "trials": _POSITIVE,
            },
            nullable=True,
        ),
        "kv_pool": _object(
            {
                "blocks": _POSITIVE,
                "block_size": _POSITIVE,
                "bytes_per_token": _num(),
                "budget_blocks": _COUNT,
                "budget_tokens": _COUNT,
                "budget_source": _TEXT,
            },
            nullable=True,
        ),
        "plan": _object(
            {
                "steps": _POSITIVE,
                "warmup": _COUNT,
                "min_seconds": _num(),
                "max_steps": _POSITIVE,
            },
            nullable=True,
        ),
        "gpu_counters": _object({"available": {"type": "boolean"}, "note": _TEXT}),
        "cells": {"type": "array", "items": _CELL},
        "groups": {"type": "array", "items": _GROUP},
        "attach": _ATTACH,
        "verdict": {"type": "array", "items": _TEXT, "minItems": 1},
        "notes": {"type": "array", "items": _TEXT},
    },
}
