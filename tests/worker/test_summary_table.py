"""summary_rows: FLOPs with an SI prefix, counts grouped, other floats rounded."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the worker needs torch: pip install 'gpumetrics[worker]'")

from gpumetrics.worker.summary import WorkerSummary
from gpumetrics.worker.summary_table import summary_rows


def _summary(flops: float) -> WorkerSummary:
    return WorkerSummary(
        model="tiny",
        device="cpu",
        attention_path="sdpa",
        steps=1234,
        requests=50,
        prompt_tokens=12_345,
        generated_tokens=800,
        prefix_query_tokens=12_345,
        prefix_hit_tokens=4000,
        evicted_blocks=0,
        recomputed_tokens=0,
        preemptions=0,
        mean_batch_occupancy=0.15,
        mean_batch_sequences=2.4,
        flops=flops,
        wall_s=1.0834,
        step_s=1.0,
        hook_s=0.001,
        cost_model_s=0.001,
        tokens_per_second=44.3071,
    )


@pytest.mark.parametrize(
    ("flops", "text"),
    [(9_239_506_944.0, "9.24 G"), (169_609_216.0, "170 M"), (1.5e15, "1.5 P"), (12.0, "12")],
)
def test_flops_print_with_an_si_prefix(flops: float, text: str) -> None:
    rows = dict(summary_rows(_summary(flops)))
    assert rows["flops"] == text


def test_other_fields_keep_their_format() -> None:
    rows = dict(summary_rows(_summary(1e9)))
    assert rows["steps"] == "1,234"
    assert rows["prompt_tokens"] == "12,345"
    assert rows["wall_s"] == "1.083"
    assert rows["tokens_per_second"] == "44.307"
    assert rows["prefix_hit_ratio"] == "0.324"  # 4000 / 12345
    assert rows["model"] == "tiny"
    assert list(rows) == list(_summary(1e9).as_dict())
