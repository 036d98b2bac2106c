"""Fleet benchmark, distributed: N simulated GPU nodes scraped by A Prometheus agents, which
remote-write everything to one central Prometheus that evaluates every rule of alerts/.

The topology of docs/fleet-scale.md's "shard the scraping, remote-write to a store, evaluate
centrally", run for real on loopback: the same simulated nodes and engines as `run.py` (nodes
hosted `--per-process` per process by `node.py`), split round-robin over `--agents` Prometheus
servers in agent mode (`--enable-feature=agent`: scrape and remote-write only, no local rules,
no queries), each adding `cluster`, `region` and `shard` external labels, and one central
Prometheus started with `--web.enable-remote-write-receiver` that loads alerts/*.yml and
scrapes only itself and the agents' own /metrics. With `--baseline`, the same N is first run
the way `run.py` runs it (one Prometheus scraping every node), for side-by-side numbers.

Measured over `--window` seconds once the central server sees every node's `up == 1`:
- ingestion: samples appended to the central head per second, and the agents' sent samples/s
  and wire bytes per sample (`prometheus_remote_storage_{samples,bytes}_total`);
- remote-write lag, end to end: every 0.5 s the central server is asked for each node's newest
  `up` sample; when a newer one appears, (now - its timestamp) is one lag value (so it includes
  the scrape itself and has 0.5 s resolution); and the agents' own view, the largest
  `highest_timestamp_in_seconds - queue_highest_sent_timestamp_seconds`;
- central rule evaluation (`prometheus_rule_group_last_duration_seconds`, the largest of each
  group summed: one round) and missed iterations;
- CPU and RSS of the central server, the agents and the sidecars (from /proc).

    .venv/bin/python benchmarks/fleet/remote_write.py                   # 64, 256 nodes; ~6 min
    .venv/bin/python benchmarks/fleet/remote_write.py --baseline        # + one Prometheus each
    .venv/bin/python benchmarks/fleet/remote_write.py --nodes 8 --window 20   # a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from run import (
    HERE,
    REPO,
    RULE_FILES,
    Api,
    child,
    cpu_seconds,
    first_json_line,
    free_port,
    machine_times,
    measure,
    percentile,
    rss_bytes,
    wait_until,
)


@dataclass(frozen=True, slots=True)
class RwRow:
    """One N; seconds, cores (CPU seconds per second), MiB."""

    nodes: int
    agents: int
    targets_up: int
    samples_per_scrape: float
    head_series: float
    ingested_per_second: float
    sent_per_second: float
    bytes_per_sample: float
    failed_samples: float
    lag_p50: float
    lag_p99: float
    lag_max: float
    lag_count: int
    agent_lag_max: float
    rule_eval_total: float
    rule_eval_max_group: float
    rule_iterations_missed: float
    central_cpu: float
    central_rss_mib: float
    agents_cpu: float
    agent_rss_mib: float
    sidecar_cpu: float
    machine_busy: float
    seconds: float


def _yaml_list(items: list[str], indent: int) -> str:
    return "".join(f"{' ' * indent}- {item}\n" for item in items)


def central_config(port: int, agents: list[int], interval: int) -> str:
    """Rules of alerts/, a scrape of itself and of the agents' own metrics, nothing else."""
    rules = _yaml_list([str(REPO / path) for path in RULE_FILES], 2)
    agent_targets = _yaml_list([f"127.0.0.1:{p}" for p in agents], 10)
    return (
        f"global:\n  scrape_interval: {interval}s\n  evaluation_interval: {interval}s\n"
        f"rule_files:\n{rules}"
        "scrape_configs:\n"
        f"  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        f"  - job_name: agents\n    static_configs:\n      - targets:\n{agent_targets}"
    )


def agent_config(shard: int, targets: list[str], central: int, interval: int) -> str:
    """An agent: scrape its share of the nodes, remote-write everything (default queue)."""
    return (
        f"global:\n  scrape_interval: {interval}s\n  scrape_timeout: {min(10, interval)}s\n"
        f"  external_labels: {{cluster: bench, region: loopback, shard: agent-{shard}}}\n"
        f"remote_write:\n  - url: http://127.0.0.1:{central}/api/v1/write\n"
        "scrape_configs:\n  - job_name: gpumetrics\n    static_configs:\n      - targets:\n"
        f"{_yaml_list(targets, 10)}"
    )


def prometheus(stack: ExitStack, args: argparse.Namespace, lifetime: float, *flags: str) -> int:
    """Start Debian's prometheus under `timeout` with `flags`; its pid (the child of timeout)."""
    process = stack.enter_context(
        child(["timeout", str(int(lifetime)), args.prometheus, "--log.level=warn", *flags], LOG[0])
    )
    for _ in range(50):
        found = subprocess.run(
            ["pgrep", "-P", str(process.pid)], check=False, capture_output=True, text=True
        )
        if found.stdout.split():
            return int(found.stdout.split()[0])
        time.sleep(0.1)
    raise RuntimeError(f"prometheus {' '.join(flags)} did not start")


LOG: list[Any] = []  # the children's log file of the current N


def measure_remote_write(args: argparse.Namespace, nodes: int, workdir: Path) -> RwRow:
    lifetime = args.window + 300.0 + nodes * 0.5
    python = sys.executable
    with ExitStack() as stack:
        LOG[:] = [stack.enter_context((workdir / "children.log").open("wb"))]
        engines = stack.enter_context(
            child(
                [
                    *(python, str(HERE / "engines.py"), "--count", str(nodes * args.engines)),
                    *("--per-node", str(args.engines), "--lifetime", str(lifetime)),
                ],
                LOG[0],
            )
        )
        urls: list[str] = first_json_line(engines, "engines.py")["urls"]
        per_node = [urls[i * args.engines : (i + 1) * args.engines] for i in range(nodes)]
        sidecars = []
        for index, start in enumerate(range(0, nodes, args.per_process)):
            url_file = workdir / f"urls-{index}.json"
            group = per_node[start : start + args.per_process]
            url_file.write_text(json.dumps(group))
            argv = [python, str(HERE / "node.py"), "--nodes", str(len(group))]
            argv += ["--engine-urls", str(url_file), "--fake-gpus", "h200x8", "--fake-ib", "2"]
            argv += ["--interval", str(args.interval), "--lifetime", str(lifetime)]
            sidecars.append(stack.enter_context(child(argv, LOG[0])))
        ports = [p for s in sidecars for p in first_json_line(s, "node.py")["ports"]]
        targets = [f"127.0.0.1:{p}" for p in ports]

        central_port, agent_ports = free_port(), [free_port() for _ in range(args.agents)]
        (workdir / "central.yml").write_text(
            central_config(central_port, agent_ports, args.scrape_interval)
        )
        central_pid = prometheus(
            stack,
            args,
            lifetime,
            f"--config.file={workdir / 'central.yml'}",
            f"--storage.tsdb.path={workdir / 'central'}",
            f"--web.listen-address=127.0.0.1:{central_port}",
            "--web.enable-remote-write-receiver",
        )
        api = Api(central_port)
        wait_until(api.ready, 60, "the central Prometheus ready")
        agent_pids = []
        for shard, port in enumerate(agent_ports):
            config = workdir / f"agent-{shard}.yml"
            share = targets[shard :: args.agents]
            config.write_text(agent_config(shard, share, central_port, args.scrape_interval))
            agent_pids.append(
                prometheus(
                    stack,
                    args,
                    lifetime,
                    "--enable-feature=agent",
                    f"--config.file={config}",
                    f"--storage.agent.path={workdir / f'agent-{shard}'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                )
            )
        for port in agent_ports:
            wait_until(Api(port).ready, 60, f"the agent on port {port} ready")
        up = 'count(up{job="gpumetrics"} == 1)'
        try:
            wait_until(lambda: api.scalar(up) == nodes, 150 + nodes / 2, f"{nodes} nodes up")
        except TimeoutError as exc:  # saturated: measure what arrives, the row says how many
            print(f"N={nodes}: {exc} centrally; measuring anyway", file=sys.stderr, flush=True)

        pids = [central_pid, *agent_pids, *(s.pid for s in sidecars)]
        before, machine0 = [cpu_seconds(p) for p in pids], machine_times()
        lags, newest = [], {}
        t0 = time.monotonic()
        while time.monotonic() - t0 < args.window:
            now = time.time()
            for series in api.query('timestamp(up{job="gpumetrics"})'):
                stamp = float(series["value"][1])
                instance = series["metric"]["instance"]
                if instance in newest and stamp > newest[instance]:
                    lags.append(now - stamp)
                newest[instance] = stamp
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
        after, machine1 = [cpu_seconds(p) for p in pids], machine_times()
        cpu = [(a - b) / elapsed for a, b in zip(after, before, strict=True)]
        rss = [rss_bytes(p) / 2**20 for p in pids[: 1 + args.agents]]
        w = f"{int(elapsed)}s"
        agents = f'{{job="agents"}}[{w}]'
        sent = api.scalar(f"sum(rate(prometheus_remote_storage_samples_total{agents}))")
        wire = api.scalar(f"sum(rate(prometheus_remote_storage_bytes_total{agents}))")
        agent_lag = (
            "prometheus_remote_storage_highest_timestamp_in_seconds{job='agents'} - ignoring "
            "(remote_name, url) group_right "
            "prometheus_remote_storage_queue_highest_sent_timestamp_seconds{job='agents'}"
        )
        groups = api.raw(f'prometheus_rule_group_last_duration_seconds{{job="prometheus"}}[{w}]')
        return RwRow(
            nodes=nodes,
            agents=args.agents,
            targets_up=int(api.scalar(up)),
            samples_per_scrape=api.scalar('sum(scrape_samples_scraped{job="gpumetrics"})') / nodes,
            head_series=api.scalar('prometheus_tsdb_head_series{job="prometheus"}'),
            ingested_per_second=api.scalar(
                f'sum(rate(prometheus_tsdb_head_samples_appended_total{{job="prometheus"}}[{w}]))'
            ),
            sent_per_second=sent,
            bytes_per_sample=wire / sent if sent else math.nan,
            failed_samples=api.scalar(
                "sum(increase(prometheus_remote_storage_samples_failed_total"
                f'{{job="agents"}}[{w}])) or vector(0)'
            ),
            lag_p50=percentile(lags, 50),
            lag_p99=percentile(lags, 99),
            lag_max=max(lags, default=math.nan),
            lag_count=len(lags),
            agent_lag_max=api.scalar(f"max(max_over_time(({agent_lag})[{w}:5s]))"),
            rule_eval_total=sum(max(g) for g in groups if g),
            rule_eval_max_group=max((max(g) for g in groups if g), default=math.nan),
            rule_iterations_missed=api.scalar(
                "sum(increase(prometheus_rule_group_iterations_missed_total"
                f'{{job="prometheus"}}[{w}])) or vector(0)'
            ),
            central_cpu=cpu[0],
            central_rss_mib=rss[0],
            agents_cpu=sum(cpu[1 : 1 + args.agents]),
            agent_rss_mib=sum(rss[1:]) / args.agents,
            sidecar_cpu=sum(cpu[1 + args.agents :]),
            machine_busy=(machine1[0] - machine0[0]) / max(1.0, machine1[1] - machine0[1]),
            seconds=math.nan,
        )


HEADER = (
    "| nodes (GPUs) | agents | up | head series (central) | ingested samples/s | sent samples/s "
    "(B/sample) | lag p50 / p99 / max (s) | agents' own lag max (s) | rule eval per round (ms; "
    "largest group) | missed | central CPU, RSS MiB | agents CPU, RSS MiB each | sidecars CPU "
    "| machine busy |"
)


def markdown(r: RwRow) -> str:
    return (
        f"| {r.nodes} ({r.nodes * 8:,}) | {r.agents} | {r.targets_up} | {r.head_series:,.0f} "
        f"| {r.ingested_per_second:,.0f} | {r.sent_per_second:,.0f} ({r.bytes_per_sample:.1f}) "
        f"| {r.lag_p50:.2f} / {r.lag_p99:.2f} / {r.lag_max:.2f} | {r.agent_lag_max:.1f} "
        f"| {r.rule_eval_total * 1000:,.0f} ({r.rule_eval_max_group * 1000:,.0f}) "
        f"| {r.rule_iterations_missed:.0f} | {r.central_cpu:.3f}, {r.central_rss_mib:,.0f} "
        f"| {r.agents_cpu:.3f}, {r.agent_rss_mib:,.0f} | {r.sidecar_cpu:.2f} "
        f"| {r.machine_busy:.0%} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", default="64,256", help="comma-separated N (8 GPUs per node)")
    parser.add_argument("--agents", type=int, default=4, help="Prometheus agents (shards)")
    parser.add_argument("--engines", type=int, default=2, help="simulated engines per node")
    parser.add_argument("--window", type=float, default=45.0, help="seconds measured per N")
    parser.add_argument("--interval", type=float, default=15.0, help="sidecar sampling, s")
    parser.add_argument("--scrape-interval", type=int, default=15, help="agents and central, s")
    parser.add_argument("--per-process", type=int, default=16, help="nodes per node.py process")
    parser.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    parser.add_argument("--baseline", action="store_true", help="also run.py's one Prometheus")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if shutil.which(args.prometheus) is None:
        parser.error("prometheus not found (Debian: apt-get install prometheus)")
    version = subprocess.run(
        [args.prometheus, "--version"], capture_output=True, text=True, check=False
    ).stdout.split("\n", 1)[0]
    print(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M %Z"), "prometheus": version}))
    rows: list[dict[str, Any]] = []
    print(HEADER)
    print("|" + "---|" * (HEADER.count(" | ") + 1))
    for nodes in (int(n) for n in args.nodes.split(",")):
        if args.baseline:  # run.py's topology, hosted the same way (node.py for every N)
            single = argparse.Namespace(**vars(args), process_limit=0, sidecar="node")
            single.remote_write = False
            workdir = Path(tempfile.mkdtemp(prefix=f"gpumetrics-fleet-single-{nodes}-"))
            try:
                base = measure(single, nodes, workdir)
                rows.append({"mode": "single", **asdict(base)})
                print(
                    f"single Prometheus, N={nodes}: head series {base.head_series:,.0f}, rule "
                    f"eval {base.rule_eval_total * 1000:,.0f} ms (largest group "
                    f"{base.rule_eval_max_group * 1000:,.0f}), CPU "
                    f"{base.prometheus_cpu_cores:.3f}, RSS {base.prometheus_rss_mib:,.0f} MiB",
                    flush=True,
                )
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
        workdir = Path(tempfile.mkdtemp(prefix=f"gpumetrics-fleet-rw-{nodes}-"))
        began = time.monotonic()
        try:
            row = measure_remote_write(args, nodes, workdir)
        except (RuntimeError, TimeoutError) as exc:  # the logs stay for a look
            print(f"N={nodes}: {exc} (logs: {workdir}/children.log)", file=sys.stderr)
            break
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        row = replace(row, seconds=time.monotonic() - began)
        rows.append({"mode": "remote_write", **asdict(row)})
        print(markdown(row), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
