"""End to end: a real Prometheus scrapes `gpumetrics serve --fake-gpus` and PromQL returns the
NVLink and InfiniBand rates the fake workload defines, over OpenMetrics (what Prometheus
prefers); a live classic-text scrape passes promtool."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

import pytest

from gpumetrics import catalog
from gpumetrics.testing.fabric import FabricRates
from gpumetrics.testing.workloads import STEADY_RATES

from .servers import http_get_json, prometheus, wait_for
from .sidecar import gpumetrics_serve

pytestmark = pytest.mark.integration

NVLINK = catalog.gpu.NVLINK_DATA_BYTES.name
NVLINK_LINK = catalog.gpu.NVLINK_LINK_DATA_BYTES.name
IB = catalog.network.IB_DATA_BYTES.name


def _scalar(result: list[dict[str, object]]) -> float | None:
    if len(result) != 1:
        return None
    value = result[0]["value"]
    assert isinstance(value, list)
    return float(value[1])


def test_prometheus_sees_the_expected_rates(tmp_path: Path, promtool: str) -> None:
    with gpumetrics_serve(
        tmp_path,
        "--fake-gpus",
        "h200x8",
        "--fake-workload",
        "steady",
        "--fake-ib",
        "2",
        "--interval",
        "0.5",
        "--nvlink-per-link",
    ) as port:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            live = response.read()
        lint = subprocess.run(
            [promtool, "check", "metrics"], input=live, capture_output=True, timeout=60, check=False
        )
        assert lint.returncode == 0, lint.stdout.decode() + lint.stderr.decode()

        with prometheus(tmp_path / "prom", [f"127.0.0.1:{port}"]) as prom:
            wait_for(prom.targets_up, 60, "scrape target up")
            nvlink = f'rate({NVLINK_LINK}{{gpu="3",link="7",direction="tx"}}[10s])'
            ib = f'rate({IB}{{ib_device="mlx5_1",port="1",direction="rx"}}[10s])'
            total = f'sum(rate({NVLINK}{{direction="rx"}}[10s]))'
            # rate() extrapolates a window the series only partly covers: wait until the
            # series is older than the 10 s window (13 scrapes at 1 s).
            full = f'count_over_time({NVLINK_LINK}{{gpu="3",link="7",direction="tx"}}[15s]) >= 13'
            wait_for(lambda: prom.query(full), 60, "a full 10 s window of samples")
            got_nvlink = wait_for(lambda: _scalar(prom.query(nvlink)), 60, "NVLink rate")
            got_ib = wait_for(lambda: _scalar(prom.query(ib)), 60, "IB rate")
            got_total = wait_for(lambda: _scalar(prom.query(total)), 60, "NVLink total")
            up = prom.query('gpumetrics_source_up{source="nvml"}')
            metadata = http_get_json(f"{prom.url}/api/v1/targets/metadata?limit=1000")["data"]
            info = catalog.gpu.GPU_INFO.name
            info_series = prom.query(f'count({info}{{gpu="3"}} == 1)')

    # The scrape was OpenMetrics (Prometheus prefers it and the front honours the Accept
    # header's q-values): its metadata has the OpenMetrics types `info` (a classic scrape says
    # `gauge`) and counter families named without `_total`; the series names are the same as
    # in the classic format (what the generated dashboards and rules query).
    types = {entry["metric"]: entry["type"] for entry in metadata}
    assert types.get(info.removesuffix("_info")) == "info", types
    assert types.get(NVLINK.removesuffix("_total")) == "counter", types
    assert NVLINK not in types
    assert info not in types
    assert _scalar(info_series) == 1.0

    # Sampling every 0.5 s and scraping every 1 s, a 10 s rate() window sees the counter's
    # true slope up to one sampling step of jitter at each end: a few percent at most.
    assert got_nvlink == pytest.approx(STEADY_RATES.nvlink_tx_bytes_per_second, rel=0.05)
    assert got_ib == pytest.approx(FabricRates().rx_bytes_per_second, rel=0.05)
    links, gpus = 18, 8
    assert got_total == pytest.approx(
        STEADY_RATES.nvlink_rx_bytes_per_second * links * gpus, rel=0.1
    )
    assert _scalar(up) == 1.0
