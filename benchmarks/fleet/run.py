"""Fleet-scale benchmark: N simulated GPU nodes on loopback, scraped by one real Prometheus.

For each N in `--nodes`, this starts:
- one process of simulated engines (`engines.py`): `--engines` hooks endpoints per node;
- the sidecars: up to `--process-limit` nodes, one real `gpumetrics serve --fake-gpus h200x8
  --fake-ib 2 --interval 15 --engine ...` process per node; above it, N/K processes of
  `node.py`, each hosting K nodes wired like `serve` (process count, and its memory, being the
  bottleneck there); every node has 8 fake H200s and 2 fake InfiniBand ports;
- Debian's `prometheus` on 127.0.0.1 with temporary storage, scraping every node at 15 s
  (`--scrape-interval`) and evaluating all recording and alert rules of alerts/*.yml.

After every target is up it measures for `--window` seconds, then reads from Prometheus:
per-scrape latency (`scrape_duration_seconds`, every raw sample of the window), samples per
scrape, head series (`prometheus_tsdb_head_series`), rule-group evaluation time
(`prometheus_rule_group_last_duration_seconds`), missed rule iterations and the 0.99 quantile
of the actual scrape interval; and from /proc: CPU seconds and RSS of the sidecars, the engine
process and Prometheus, and the whole machine's busy share. Every child is started with its own
deadline (`--lifetime`, and `timeout` around Prometheus), so everything stops by itself even if
this script is killed.

    .venv/bin/python benchmarks/fleet/run.py                       # default sweep, < 15 min
    .venv/bin/python benchmarks/fleet/run.py --nodes 4 --window 30 # a quick look
    .venv/bin/python benchmarks/fleet/run.py --json results.json   # also write the rows
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO, Any

from node import engine_configs, gpu_refs

from gpumetrics.testing import FakeNvml, parse_fake_gpus

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
RULE_FILES = ("alerts/gpumetrics-recording-rules.yml", "alerts/gpumetrics-alerts.yml")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class Row:
    """One N of the sweep; times in seconds, CPU in cores (CPU seconds per second)."""

    nodes: int
    gpus: int
    engines: int
    processes: int
    targets_up: int
    samples_per_scrape: float
    head_series: float
    samples_per_second: float
    scrape_p50: float
    scrape_p90: float
    scrape_p99: float
    scrape_max: float
    interval_p99: float
    rule_eval_total: float
    rule_eval_max_group: float
    rule_iterations_missed: float
    sidecar_cpu_cores: float
    sidecar_cpu_per_node: float
    sidecar_rss_mib_per_process: float
    sidecar_rss_mib_per_node: float
    engines_cpu_cores: float
    prometheus_cpu_cores: float
    prometheus_rss_mib: float
    harness_cpu_cores: float
    remote_write_bytes_per_sample: float
    remote_write_bytes_per_second: float
    machine_busy: float
    seconds: float


# --- /proc -----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (`ps -o time`), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS), bytes."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def machine_times() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def child(
    argv: Sequence[str], log: IO[bytes], stdout: int = subprocess.PIPE
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process (stdout piped by default); terminated (then killed) on exit."""
    process = subprocess.Popen(argv, stdout=stdout, stderr=log)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def answers(url: str) -> bool:
    """True when GET `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def fake_gpu_refs() -> list[str]:
    """INDEX:UUID of the h200x8 fake GPUs (FakeNvml's UUIDs are the same in every process)."""
    fake = FakeNvml(parse_fake_gpus("h200x8")).install()
    try:
        return gpu_refs()
    finally:
        fake.uninstall()


def first_json_line(process: subprocess.Popen[bytes], what: str) -> Any:
    """The JSON object a child prints when it is ready."""
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"{what} exited before it was ready (rc {process.wait()})")
    return json.loads(line)


# --- Prometheus ------------------------------------------------------------------------------


def prometheus_config(
    targets: Sequence[str], port: int, scrape_interval: int, remote_write: int | None = None
) -> str:
    """A scrape config like exporters/prometheus/prometheus.yml, with static loopback targets
    (and remote write to a receiver on port `remote_write`)."""
    write = (
        f"remote_write:\n  - url: http://127.0.0.1:{remote_write}/api/v1/write\n"
        if remote_write is not None
        else ""
    )
    rules = "".join(f"  - {REPO / path}\n" for path in RULE_FILES)
    lines = "".join(f"          - {t}\n" for t in targets)
    return (
        "global:\n"
        f"  scrape_interval: {scrape_interval}s\n"
        f"  evaluation_interval: {scrape_interval}s\n"
        "  scrape_timeout: 10s\n"
        "  external_labels: {cluster: bench, region: loopback}\n"
        f"rule_files:\n{rules}"
        f"{write}"
        "scrape_configs:\n"
        "  - job_name: gpumetrics\n"
        "    static_configs:\n"
        f"      - targets:\n{lines}"
        "  - job_name: prometheus\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{port}']\n"
    )


class Api:
    """The few Prometheus HTTP API calls the benchmark makes."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}/api/v1/"

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = self.base + "query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=30) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"{expr}: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def scalar(self, expr: str) -> float:
        """The value of a one-series instant query (NaN when empty)."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else math.nan

    def raw(self, expr: str) -> list[list[float]]:
        """The sample values of every series of a range-vector selector."""
        return [[float(v) for _, v in series["values"]] for series in self.query(expr)]

    def ready(self) -> bool:
        return answers(self.base.replace("api/v1/", "-/ready"))


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} not reached within {timeout:.0f} s")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


# --- one N -----------------------------------------------------------------------------------


def measure(args: argparse.Namespace, nodes: int, workdir: Path) -> Row:
    per_process = args.per_process if nodes > args.process_limit else 1
    groups = [min(per_process, nodes - i) for i in range(0, nodes, per_process)]
    lifetime = args.window + 240.0 + nodes * 0.5
    python = sys.executable
    with ExitStack() as stack:
        log = stack.enter_context((workdir / "children.log").open("wb"))
        engines = stack.enter_context(
            child(
                [
                    python,
                    str(HERE / "engines.py"),
                    "--count",
                    str(nodes * args.engines),
                    "--per-node",
                    str(args.engines),
                    "--lifetime",
                    str(lifetime),
                ],
                log,
            )
        )
        urls: list[str] = first_json_line(engines, "engines.py")["urls"]
        per_node = [urls[i * args.engines : (i + 1) * args.engines] for i in range(nodes)]
        sidecars: list[subprocess.Popen[bytes]] = []
        ports: list[int] = []
        if per_process == 1 and args.sidecar == "serve":
            gpus = fake_gpu_refs()
            for urls in per_node:
                port = free_port()
                argv = [python, "-m", "gpumetrics", "serve", "--address", "127.0.0.1"]
                argv += ["--port", str(port), "--interval", str(args.interval)]
                argv += ["--fake-gpus", "h200x8", "--fake-ib", "2", "--log-level", "warning"]
                for engine in engine_configs(urls, gpus):
                    refs = "+".join(engine.gpus)
                    argv += ["--engine", f"{engine.name}={engine.url},kind=gpumetrics,gpus={refs}"]
                stdout = subprocess.DEVNULL
                sidecars.append(stack.enter_context(child(argv, log, stdout=stdout)))
                ports.append(port)
            wait_until(
                lambda: all(answers(f"http://127.0.0.1:{p}/ready") for p in ports),
                120 + nodes,
                f"{nodes} x gpumetrics serve ready",
            )
        else:
            start = 0
            for index, count in enumerate(groups):
                url_file = workdir / f"urls-{index}.json"
                url_file.write_text(json.dumps(per_node[start : start + count]))
                start += count
                argv = [python, str(HERE / "node.py"), "--nodes", str(count)]
                argv += ["--engine-urls", str(url_file), "--fake-gpus", "h200x8"]
                argv += ["--fake-ib", "2", "--interval", str(args.interval)]
                argv += ["--lifetime", str(lifetime)]
                sidecars.append(stack.enter_context(child(argv, log)))
            ports = [p for s in sidecars for p in first_json_line(s, "node.py")["ports"]]
        prom_port = free_port()
        receiver: int | None = None
        if args.remote_write:
            receiver = free_port()
            (workdir / "receiver.yml").write_text("global: {}\n")
            stack.enter_context(
                child(
                    [
                        "timeout",
                        str(int(lifetime)),
                        args.prometheus,
                        f"--config.file={workdir / 'receiver.yml'}",
                        f"--storage.tsdb.path={workdir / 'receiver'}",
                        f"--web.listen-address=127.0.0.1:{receiver}",
                        "--web.enable-remote-write-receiver",
                        "--log.level=warn",
                    ],
                    log,
                )
            )
            wait_until(Api(receiver).ready, 60, "the remote-write receiver ready")
        config = workdir / "prometheus.yml"
        targets = [f"127.0.0.1:{p}" for p in ports]
        config.write_text(prometheus_config(targets, prom_port, args.scrape_interval, receiver))
        prometheus = stack.enter_context(
            child(
                [
                    "timeout",
                    str(int(lifetime)),
                    args.prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                    "--log.level=warn",
                ],
                log,
            )
        )
        api = Api(prom_port)
        wait_until(api.ready, 60, "Prometheus ready")
        try:
            wait_until(
                lambda: api.scalar('count(up{job="gpumetrics"} == 1)') == nodes,
                120 + nodes / 4,
                f"all {nodes} targets up",
            )
        except TimeoutError as exc:
            down = api.query('up{job="gpumetrics"} == 0')
            raise TimeoutError(f"{exc}; down: {[d['metric']['instance'] for d in down]}") from None
        prom_pid = int(
            subprocess.run(
                ["pgrep", "-P", str(prometheus.pid)], capture_output=True, text=True, check=True
            ).stdout.split()[0]
        )
        pids = [s.pid for s in sidecars]
        before = (
            [cpu_seconds(p) for p in pids],
            cpu_seconds(engines.pid),
            cpu_seconds(prom_pid),
            machine_times(),
        )
        t0 = time.monotonic()
        time.sleep(args.window)
        elapsed = time.monotonic() - t0
        after = (
            [cpu_seconds(p) for p in pids],
            cpu_seconds(engines.pid),
            cpu_seconds(prom_pid),
            machine_times(),
        )
        rss = [rss_bytes(p) for p in pids]
        prom_rss = rss_bytes(prom_pid)
        window = f"{int(elapsed)}s"
        sent_bytes = api.scalar(f"sum(increase(prometheus_remote_storage_bytes_total[{window}]))")
        sent_samples = api.scalar(
            f"sum(increase(prometheus_remote_storage_samples_total[{window}]))"
        )
        durations = [
            v for s in api.raw(f'scrape_duration_seconds{{job="gpumetrics"}}[{window}]') for v in s
        ]
        rule_groups = api.raw(f"prometheus_rule_group_last_duration_seconds[{window}]")
        sidecar_cpu = (sum(after[0]) - sum(before[0])) / elapsed
        engines_cpu = (after[1] - before[1]) / elapsed
        prometheus_cpu = (after[2] - before[2]) / elapsed
        busy = (after[3][0] - before[3][0]) / max(1.0, after[3][1] - before[3][1])
        samples = api.scalar('sum(scrape_samples_scraped{job="gpumetrics"})')
        return Row(
            nodes=nodes,
            gpus=nodes * 8,
            engines=nodes * args.engines,
            processes=len(sidecars),
            targets_up=int(api.scalar('count(up{job="gpumetrics"} == 1)')),
            samples_per_scrape=samples / nodes,
            head_series=api.scalar("prometheus_tsdb_head_series"),
            samples_per_second=samples / args.scrape_interval,
            scrape_p50=percentile(durations, 50),
            scrape_p90=percentile(durations, 90),
            scrape_p99=percentile(durations, 99),
            scrape_max=max(durations),
            interval_p99=api.scalar(
                'max(prometheus_target_interval_length_seconds{quantile="0.99",'
                f'interval="{args.scrape_interval}s"}})'
            ),
            rule_eval_total=sum(max(g) for g in rule_groups if g),
            rule_eval_max_group=max((max(g) for g in rule_groups if g), default=math.nan),
            rule_iterations_missed=api.scalar(
                "sum(increase(prometheus_rule_group_iterations_missed_total"
                f"[{window}])) or vector(0)"
            ),
            sidecar_cpu_cores=sidecar_cpu,
            sidecar_cpu_per_node=sidecar_cpu / nodes,
            sidecar_rss_mib_per_process=sum(rss) / len(rss) / 2**20,
            sidecar_rss_mib_per_node=sum(rss) / nodes / 2**20,
            engines_cpu_cores=engines_cpu,
            prometheus_cpu_cores=prometheus_cpu,
            prometheus_rss_mib=prom_rss / 2**20,
            harness_cpu_cores=sidecar_cpu + engines_cpu + prometheus_cpu,
            remote_write_bytes_per_sample=(
                sent_bytes / sent_samples if receiver is not None and sent_samples else math.nan
            ),
            remote_write_bytes_per_second=sent_bytes / elapsed
            if receiver is not None
            else math.nan,
            machine_busy=busy,
            seconds=math.nan,  # set by the caller, teardown included
        )


# --- output ----------------------------------------------------------------------------------

HEADER = (
    "| nodes | GPUs | procs | up | samples/scrape | head series | samples/s "
    "| scrape p50 / p90 / p99 / max (ms) | interval p99 (s) | rule eval (ms) "
    "| max group (ms) | missed | sidecar CPU (cores, per node) "
    "| sidecar RSS MiB (per proc, per node) | engines CPU | Prometheus CPU, RSS MiB "
    "| all of it, CPU | remote write B/sample | machine busy |"
)


def markdown(row: Row) -> str:
    ms = 1000.0
    rw = row.remote_write_bytes_per_sample
    return (
        f"| {row.nodes} | {row.gpus} | {row.processes} | {row.targets_up} "
        f"| {row.samples_per_scrape:,.0f} | {row.head_series:,.0f} "
        f"| {row.samples_per_second:,.0f} "
        f"| {row.scrape_p50 * ms:.1f} / {row.scrape_p90 * ms:.1f} / {row.scrape_p99 * ms:.1f}"
        f" / {row.scrape_max * ms:.1f} | {row.interval_p99:.2f} "
        f"| {row.rule_eval_total * ms:.1f} | {row.rule_eval_max_group * ms:.1f} "
        f"| {row.rule_iterations_missed:.0f} "
        f"| {row.sidecar_cpu_cores:.3f}, {row.sidecar_cpu_per_node * ms:.1f} m "
        f"| {row.sidecar_rss_mib_per_process:.0f}, {row.sidecar_rss_mib_per_node:.1f} "
        f"| {row.engines_cpu_cores:.3f} "
        f"| {row.prometheus_cpu_cores:.3f}, {row.prometheus_rss_mib:.0f} "
        f"| {row.harness_cpu_cores:.2f} "
        f"| {'-' if math.isnan(rw) else f'{rw:.2f}'} | {row.machine_busy:.0%} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--nodes", default="16,64,256,512", help="comma-separated N (8 GPUs per node)"
    )
    parser.add_argument("--engines", type=int, default=2, help="simulated engines per node")
    parser.add_argument("--window", type=float, default=45.0, help="seconds measured per N")
    parser.add_argument("--interval", type=float, default=15.0, help="sidecar sampling, s")
    parser.add_argument("--scrape-interval", type=int, default=15, help="Prometheus, s")
    parser.add_argument(
        "--process-limit",
        type=int,
        default=64,
        help="up to this N, one process per node; above, --per-process nodes per process",
    )
    parser.add_argument("--per-process", type=int, default=16)
    parser.add_argument(
        "--sidecar",
        choices=("serve", "node"),
        default="serve",
        help="one node per process: the real `gpumetrics serve` CLI (default), or node.py",
    )
    parser.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    parser.add_argument(
        "--remote-write",
        action="store_true",
        help="also remote-write everything to a second Prometheus (receiver) and measure it",
    )
    parser.add_argument("--json", type=Path, help="also write the rows and machine info here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so that every child is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if shutil.which(args.prometheus) is None:
        parser.error("prometheus not found (Debian: apt-get install prometheus)")

    version = subprocess.run(
        [args.prometheus, "--version"], capture_output=True, text=True, check=False
    ).stdout.split("\n", 1)[0]
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "prometheus": version,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    print(json.dumps(info), file=sys.stderr)
    rows: list[Row] = []
    print(HEADER)
    print("|" + "---|" * HEADER.count(" | ") + "---|")
    for nodes in (int(n) for n in args.nodes.split(",")):
        workdir = Path(tempfile.mkdtemp(prefix=f"gpumetrics-fleet-{nodes}-"))
        began = time.monotonic()
        try:
            row = measure(args, nodes, workdir)
        except (RuntimeError, TimeoutError) as exc:
            print(f"N={nodes}: {exc} (logs: {workdir}/children.log)", file=sys.stderr)
            break
        finally:
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
        row = replace(row, seconds=time.monotonic() - began)
        rows.append(row)
        print(markdown(row), flush=True)
        print(f"N={nodes}: {row.seconds:.0f} s", file=sys.stderr, flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps({**info, "rows": [asdict(r) for r in rows]}, indent=1))


if __name__ == "__main__":
    main()
