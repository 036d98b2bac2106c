"""One writer thread recording while readers render and snapshot: no exception, counters
monotone, histograms self-consistent, and the final values exact (no lost updates)."""

from __future__ import annotations

import threading

from prometheus_client.parser import text_string_to_metric_families

from gpumetrics.catalog import engine as cat
from gpumetrics.hooks import EngineMetrics
from gpumetrics.samples import HistogramValue

STEPS = 20_000


def test_readers_during_writes() -> None:
    m = EngineMetrics("e0", "m0")
    done = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(STEPS):
                m.record_step(
                    phase="decode",
                    sequences=2,
                    prefill_tokens=0,
                    decode_tokens=2,
                    duration_s=0.001 * (i % 7),
                    flops=10.0,
                    read_bytes=5.0,
                    write_bytes=1.0,
                )
                m.record_eviction()
                m.record_request_finished(
                    ttft_s=0.1,
                    inter_token_s=[0.01, 0.02],
                    e2e_s=1.0,
                    prompt_tokens=3,
                    cached_tokens=1,
                    output_tokens=2,
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    def reader(render: bool) -> None:
        last: dict[str, float] = {}
        try:
            while not done.is_set():
                if render:
                    text = m.render_text().decode()
                    for family in text_string_to_metric_families(text):
                        if family.type != "counter":
                            continue
                        for sample in family.samples:
                            key = sample.name + repr(sorted(sample.labels.items()))
                            assert sample.value >= last.get(key, 0.0)
                            last[key] = sample.value
                else:
                    for ours in m.snapshot():
                        if isinstance(ours.value, HistogramValue):
                            assert ours.value.counts[-1] <= ours.value.count
                        elif ours.metric.endswith("_total"):
                            key = ours.metric + repr(ours.labels)
                            assert ours.value >= last.get(key, 0.0)
                            last[key] = ours.value
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer)]
    threads += [threading.Thread(target=reader, args=(flag,)) for flag in (True, False, True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert m.hook_errors == 0
    final = {(s.metric, s.labels): s.value for s in m.snapshot()}
    assert final[(cat.STEPS.name, ("e0", "m0", "decode"))] == STEPS
    assert final[(cat.KV_EVICTED_BLOCKS.name, ("e0", "m0"))] == STEPS
    assert final[(cat.FLOPS.name, ("e0", "m0"))] == 10.0 * STEPS
    itl = final[(cat.ITL.name, ("e0", "m0"))]
    assert isinstance(itl, HistogramValue)
    assert itl.count == 2 * STEPS
