"""Importing gpumetrics.hooks pulls nothing heavy (DESIGN.md §2): engines import it."""

from __future__ import annotations

import subprocess
import sys

from gpumetrics import hooks

#: numpy too: the hooks' live ghost cache comes from kvsize's standard-library half
#: (ghost, hashing, replay), and kvsize imports its numpy modules only on first use.
HEAVY = ("prometheus_client", "opentelemetry", "pynvml", "torch", "click", "rich", "numpy")


def test_importing_the_hooks_pulls_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "import gpumetrics.hooks\n"
        "from gpumetrics.hooks import EngineMetrics\n"
        "m = EngineMetrics('e', 'm', kv_block_size=2, kv_capacity_blocks=4)\n"
        "m.record_eviction(); m.record_prefix_lookup(queried_tokens=4, hit_tokens=0,"
        " block_hashes=[1, 2]); assert m.ghost is not None; m.render_text()\n"
        f"print(','.join(x for x in {HEAVY!r} if x in sys.modules or "
        "any(k.startswith(x + '.') for k in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""


def test_public_api() -> None:
    assert sorted(hooks.__all__) == sorted(
        [
            "CONTENT_TYPE",
            "PHASES",
            "EngineMetrics",
            "MetricsEndpoint",
            "SampleReader",
            "render_samples",
            "serve",
        ]
    )
    assert all(hasattr(hooks, name) for name in hooks.__all__)
    assert hooks.PHASES == ("prefill", "decode", "mixed")
