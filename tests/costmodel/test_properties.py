"""Properties of the cost model and the roofline that hold for any model and any step."""

from __future__ import annotations

import math

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gpumetrics.costmodel import (
    PRESETS,
    ModelSpec,
    RequestWork,
    decode_batch,
    kv_capacity,
    step_cost,
    valid_tp,
)
from gpumetrics.derive import roofline_time

SETTINGS = settings(max_examples=100, deadline=None)


@st.composite
def models(draw: st.DrawFn, *, moe: bool | None = None) -> ModelSpec:
    kv_heads = draw(st.sampled_from([1, 2, 4, 8]))
    group = draw(st.sampled_from([1, 2, 4]))
    is_moe = draw(st.booleans()) if moe is None else moe
    experts = draw(st.integers(2, 16)) if is_moe else 1
    active = draw(st.integers(1, experts)) if is_moe else 1
    return ModelSpec(
        name="prop",
        layers=draw(st.integers(1, 8)),
        hidden=draw(st.integers(1, 64)) * 16,
        heads=kv_heads * group,
        kv_heads=kv_heads,
        head_dim=draw(st.sampled_from([16, 32, 64, 128])),
        intermediate=draw(st.integers(1, 256)) * 16,
        vocab=draw(st.integers(100, 200_000)),
        experts=experts,
        active_experts=active,
    )


@st.composite
def requests(draw: st.DrawFn) -> RequestWork:
    new = draw(st.integers(1, 512))
    earlier = draw(st.integers(0, 4096))
    return RequestWork(new_tokens=new, context=new + earlier, samples=draw(st.booleans()))


request_lists = st.lists(requests(), min_size=1, max_size=6)
kv_dtypes = st.sampled_from(["fp8", "bf16", "fp32"])


@SETTINGS
@given(
    base=models(),
    heads=st.sampled_from([1, 2, 4, 8, 16]),
    more=st.sampled_from([1, 2, 4, 8, 16]),
    work=request_lists,
    kv_dtype=kv_dtypes,
)
def test_more_kv_heads_never_reduce_kv_bytes(
    base: ModelSpec, heads: int, more: int, work: list[RequestWork], kv_dtype: str
) -> None:
    fewer, more = sorted((heads, more))

    def with_kv(kv: int) -> ModelSpec:
        return ModelSpec(
            name="prop",
            layers=base.layers,
            hidden=base.hidden,
            heads=16,
            kv_heads=kv,
            head_dim=base.head_dim,
            intermediate=base.intermediate,
            vocab=base.vocab,
            experts=base.experts,
            active_experts=base.active_experts,
        )

    small, large = with_kv(fewer), with_kv(more)
    assert small.kv_bytes_per_token(kv_dtype) <= large.kv_bytes_per_token(kv_dtype)
    a = step_cost(small, work, kv_dtype=kv_dtype)
    b = step_cost(large, work, kv_dtype=kv_dtype)
    assert a.kv_read_bytes <= b.kv_read_bytes
    assert a.kv_write_bytes <= b.kv_write_bytes


@SETTINGS
@given(
    model=st.one_of(models(), st.sampled_from(list(PRESETS.values()))),
    batch=st.integers(1, 2048),
    extra=st.integers(0, 2048),
    context=st.integers(1, 32768),
)
def test_decode_intensity_rises_with_batch(
    model: ModelSpec, batch: int, extra: int, context: int
) -> None:
    smaller = decode_batch(model, batch, context)
    larger = decode_batch(model, batch + extra, context)
    assert smaller.arithmetic_intensity <= larger.arithmetic_intensity * (1 + 1e-12)


@SETTINGS
@given(model=models(moe=False), a=request_lists, b=request_lists, kv_dtype=kv_dtypes)
def test_dense_step_is_additive_over_requests(
    model: ModelSpec, a: list[RequestWork], b: list[RequestWork], kv_dtype: str
) -> None:
    ca = step_cost(model, a, kv_dtype=kv_dtype)
    cb = step_cost(model, b, kv_dtype=kv_dtype)
    both = step_cost(model, a + b, kv_dtype=kv_dtype)
    assert both.flops == ca.flops + cb.flops
    assert both.qkv_flops == ca.qkv_flops + cb.qkv_flops
    assert both.attention_flops == ca.attention_flops + cb.attention_flops
    assert both.lm_head_flops == ca.lm_head_flops + cb.lm_head_flops
    assert both.kv_read_bytes == ca.kv_read_bytes + cb.kv_read_bytes
    assert both.kv_write_bytes == ca.kv_write_bytes + cb.kv_write_bytes
    # Weights are read once per step, not once per request.
    assert both.weight_bytes == ca.weight_bytes == cb.weight_bytes
    assert both.bytes == ca.bytes + cb.bytes - ca.weight_bytes
    assert both.tokens == ca.tokens + cb.tokens
    assert both.sequences == ca.sequences + cb.sequences


@SETTINGS
@given(model=models(moe=True), a=request_lists, b=request_lists)
def test_moe_flops_and_kv_additive_weights_subadditive(
    model: ModelSpec, a: list[RequestWork], b: list[RequestWork]
) -> None:
    ca, cb, both = step_cost(model, a), step_cost(model, b), step_cost(model, a + b)
    assert math.isclose(both.flops, ca.flops + cb.flops, rel_tol=1e-12)
    assert both.router_flops == ca.router_flops + cb.router_flops
    assert both.kv_read_bytes == ca.kv_read_bytes + cb.kv_read_bytes
    assert both.kv_write_bytes == ca.kv_write_bytes + cb.kv_write_bytes
    # More tokens touch at least as many experts, never more than all of them.
    assert both.weight_bytes >= max(ca.weight_bytes, cb.weight_bytes) * (1 - 1e-12)
    assert both.weight_bytes <= (ca.weight_bytes + cb.weight_bytes) * (1 + 1e-12)


@SETTINGS
@given(
    model=st.one_of(models(), st.sampled_from(list(PRESETS.values()))),
    prompt=st.integers(2, 8192),
    data=st.data(),
)
def test_prefix_hit_costs_fewer_flops(model: ModelSpec, prompt: int, data: st.DataObject) -> None:
    cached = data.draw(st.integers(1, prompt - 1))
    hit = step_cost(model, [RequestWork.prefill(prompt, cached=cached)])
    miss = step_cost(model, [RequestWork.prefill(prompt)])
    assert hit.flops < miss.flops
    assert hit.kv_write_bytes < miss.kv_write_bytes
    assert hit.kv_read_bytes == miss.kv_read_bytes


@SETTINGS
@given(
    model=st.sampled_from(list(PRESETS.values())),
    memory=st.floats(1e9, 1e12),
    more_memory=st.floats(0, 1e12),
    fraction=st.floats(0.05, 1.0),
    more_fraction=st.floats(0.0, 0.5),
    tp=st.sampled_from([1, 2, 4, 8, 16]),
)
def test_kv_capacity_monotone(
    model: ModelSpec,
    memory: float,
    more_memory: float,
    fraction: float,
    more_fraction: float,
    tp: int,
) -> None:
    assume(tp in valid_tp(model))  # check_tp refuses the rest (tested in test_capacity)
    base = kv_capacity(model, memory, tp=tp, memory_fraction=fraction)
    bigger = kv_capacity(model, memory + more_memory, tp=tp, memory_fraction=fraction)
    looser = kv_capacity(model, memory, tp=tp, memory_fraction=min(1.0, fraction + more_fraction))
    assert base.tokens >= 0
    assert bigger.tokens >= base.tokens
    assert looser.tokens >= base.tokens
    fp8 = kv_capacity(model, memory, tp=tp, memory_fraction=fraction, kv_dtype="fp8")
    fp32 = kv_capacity(model, memory, tp=tp, memory_fraction=fraction, kv_dtype="fp32")
    assert fp8.tokens >= base.tokens >= fp32.tokens


@SETTINGS
@given(
    flops=st.floats(0, 1e18),
    moved=st.floats(0, 1e15),
    peak=st.floats(1e9, 1e17),
    bandwidth=st.floats(1e8, 1e14),
)
def test_roofline_time_is_the_larger_roof(
    flops: float, moved: float, peak: float, bandwidth: float
) -> None:
    t = roofline_time(flops, moved, peak, bandwidth)
    assert t >= flops / peak
    assert t >= moved / bandwidth
    assert t == max(flops / peak, moved / bandwidth)


@SETTINGS
@given(model=models(), work=request_lists)
def test_step_totals_are_sums_of_terms(model: ModelSpec, work: list[RequestWork]) -> None:
    c = step_cost(model, work)
    terms = (
        c.qkv_flops + c.o_proj_flops + c.attention_flops + c.ffn_flops + c.router_flops
    ) + c.lm_head_flops
    assert math.isclose(c.flops, terms, rel_tol=1e-12)
    assert math.isclose(c.read_bytes, c.weight_bytes + c.kv_read_bytes, rel_tol=1e-12)
    assert math.isclose(c.bytes, c.read_bytes + c.kv_write_bytes, rel_tol=1e-12)
    assert math.isclose(c.arithmetic_intensity, c.flops / c.bytes, rel_tol=1e-12)
    assert c.tokens == sum(r.new_tokens for r in work)
    assert c.sequences == len(work)
