"""The distributed path, real end to end: two Prometheus agents (`--enable-feature=agent`, no
local rules or queries) each scrape their own engines (gpumetrics.hooks endpoints) and
remote-write to a central Prometheus started with `--web.enable-remote-write-receiver`, which
evaluates alerts/'s recording rules. The cluster roll-up `gpumetrics:cluster_waiting_requests:
avg5m` needs both agents' samples: centrally it must be the hand-computed sum over all
engines of both shards, for the cluster label the agents add as an external label.
(benchmarks/fleet/remote_write.py measures the same topology at 64 and 256 nodes.)"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from gpumetrics.hooks import EngineMetrics

from .servers import prometheus_server, wait_for

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "alerts" / "gpumetrics-recording-rules.yml"

pytestmark = pytest.mark.integration

#: Waiting requests per engine, per agent shard; the roll-up's expected value is their sum.
SHARDS = {"agent-a": (3, 4), "agent-b": (5,)}


def test_agents_remote_write_and_the_central_rules_see_every_shard(tmp_path: Path) -> None:
    with ExitStack() as stack:
        central = stack.enter_context(
            prometheus_server(
                tmp_path / "central",
                {
                    "global": {"evaluation_interval": "1s"},
                    "rule_files": [str(RULES)],
                },
                f"--storage.tsdb.path={tmp_path / 'central' / 'data'}",
                "--web.enable-remote-write-receiver",
            )
        )
        for shard, waiting in SHARDS.items():
            targets = []
            for index, count in enumerate(waiting):
                engine = EngineMetrics(f"{shard}-engine-{index}", "llama-3-8b")
                engine.set_queue(waiting=count, running=1)
                endpoint = engine.serve("127.0.0.1", 0)
                stack.callback(endpoint.close)
                targets.append(f"127.0.0.1:{endpoint.port}")
            config = {
                "global": {
                    "scrape_interval": "1s",
                    "external_labels": {"cluster": "c1", "region": "r1", "shard": shard},
                },
                "scrape_configs": [
                    {"job_name": "engines", "static_configs": [{"targets": targets}]}
                ],
                "remote_write": [
                    {
                        "url": f"{central.url}/api/v1/write",
                        "queue_config": {"batch_send_deadline": "1s"},
                    }
                ],
            }
            stack.enter_context(
                prometheus_server(
                    tmp_path / shard,
                    config,
                    "--enable-feature=agent",
                    f"--storage.agent.path={tmp_path / shard / 'wal'}",
                )
            )

        def rollup() -> float | None:
            result = central.query("gpumetrics:cluster_waiting_requests:avg5m")
            if len(result) != 1:
                return None
            assert result[0]["metric"] == {
                "__name__": "gpumetrics:cluster_waiting_requests:avg5m",
                "cluster": "c1",
                "region": "r1",
            }
            value = float(result[0]["value"][1])
            return value if value == sum(sum(w) for w in SHARDS.values()) else None

        assert wait_for(rollup, 45, "the central roll-up over both agents' engines") == 12.0
        # Both shards arrived as such (their external label), and the agents hold no rules.
        shards = central.query("count by (shard) (gpumetrics_engine_waiting_requests)")
        assert {s["metric"]["shard"]: s["value"][1] for s in shards} == {
            "agent-a": "2",
            "agent-b": "1",
        }
