"""The two families an inference gateway's endpoint picker reads (Gateway API Inference
Extension, model-server protocol): the KV-cache layout as one info series, and the LoRA
adapters with the time they were reported. Read back through the real exposition parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from gpumetrics.catalog import engine as cat
from gpumetrics.hooks import EngineMetrics
from gpumetrics.hooks.metrics import MAX_LORA_ADAPTERS, MAX_LORA_NAME


class FakeWallClock:
    """Unix time that moves only when told to."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _series(m: EngineMetrics, name: str) -> list[tuple[dict[str, str], float]]:
    families = text_string_to_metric_families(m.render_text().decode())
    return [(dict(s.labels), s.value) for f in families for s in f.samples if s.name == name]


def test_cache_config_info_appears_once_layout_and_size_are_known() -> None:
    m = EngineMetrics("e0", "m0", kv_dtype="fp8", kv_block_size=16)
    assert _series(m, cat.CACHE_CONFIG_INFO.name) == []  # pool size not known yet
    m.set_cache_config(block_size=32, num_gpu_blocks=4096)
    assert _series(m, cat.CACHE_CONFIG_INFO.name) == [
        (
            {
                "engine": "e0",
                "model": "m0",
                "block_size": "32",
                "num_gpu_blocks": "4096",
                "cache_dtype": "fp8",
            },
            1.0,
        )
    ]
    # The gauges say the same as the info series.
    assert _series(m, cat.KV_BLOCK_SIZE.name) == [({"engine": "e0", "model": "m0"}, 32.0)]
    assert _series(m, cat.KV_CAPACITY_BLOCKS.name) == [({"engine": "e0", "model": "m0"}, 4096.0)]


def test_cache_config_info_follows_the_pool_the_engine_reports() -> None:
    m = EngineMetrics("e0", "m0", kv_block_size=16, kv_capacity_blocks=100)
    m.record_kv(used_blocks=10, total_blocks=120)
    ((labels, _),) = _series(m, cat.CACHE_CONFIG_INFO.name)
    assert (labels["block_size"], labels["num_gpu_blocks"]) == ("16", "120")


def test_bad_cache_config_is_dropped_and_changes_nothing() -> None:
    m = EngineMetrics("e0", "m0", kv_block_size=16, kv_capacity_blocks=100)
    for block_size, blocks in ((0, 10), (16, 0), (True, 10), (16, 2.5), (-1, 10)):
        m.set_cache_config(block_size=block_size, num_gpu_blocks=blocks)  # type: ignore[arg-type]
    assert m.hook_errors == 5
    ((labels, _),) = _series(m, cat.CACHE_CONFIG_INFO.name)
    assert (labels["block_size"], labels["num_gpu_blocks"]) == ("16", "100")


def test_lora_adapters_info_carries_the_lists_and_the_report_time() -> None:
    clock = FakeWallClock(1_764_800_000.5)
    m = EngineMetrics("e0", "m0", wall_clock=clock)
    assert _series(m, cat.LORA_ADAPTERS_INFO.name) == []
    m.set_lora(max_lora=4, running=["sql-lora", "chat-lora"], waiting=["tool-lora"])
    assert _series(m, cat.LORA_ADAPTERS_INFO.name) == [
        (
            {
                "engine": "e0",
                "model": "m0",
                "max_lora": "4",
                "running_lora_adapters": "sql-lora,chat-lora",
                "waiting_lora_adapters": "tool-lora",
            },
            1_764_800_000.5,
        )
    ]
    clock.now += 10.0
    m.set_lora(max_lora=4)  # everything finished: one series, empty lists, the new time
    ((labels, value),) = _series(m, cat.LORA_ADAPTERS_INFO.name)
    assert labels["running_lora_adapters"] == labels["waiting_lora_adapters"] == ""
    assert value == 1_764_800_010.5


def test_bad_lora_reports_are_dropped_and_keep_the_last_good_one() -> None:
    m = EngineMetrics("e0", "m0", wall_clock=FakeWallClock(100.0))
    m.set_lora(max_lora=2, running=["a"])
    before = _series(m, cat.LORA_ADAPTERS_INFO.name)
    bad = [
        {"max_lora": -1},
        {"max_lora": 2, "running": "a,b"},  # a str, not a list of names
        {"max_lora": 2, "running": ["a,b"]},  # a comma would split the name
        {"max_lora": 2, "waiting": [""]},
        {"max_lora": 2, "waiting": ["x" * (MAX_LORA_NAME + 1)]},
        {"max_lora": 2, "running": [f"a{i}" for i in range(MAX_LORA_ADAPTERS + 1)]},
    ]
    for kwargs in bad:
        m.set_lora(**kwargs)  # type: ignore[arg-type]
    assert m.hook_errors == len(bad)
    assert _series(m, cat.LORA_ADAPTERS_INFO.name) == before
