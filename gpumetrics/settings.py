"""Each command's settings: one frozen, typed record per command, built once.

`gpumetrics.cli.loader.load_settings` builds them from the command's resolved parameters: click
has applied the precedence (flags, then `GPUMETRICS_<COMMAND>_<OPTION>` environment variables,
then `serve --config`'s TOML file, then the option defaults) and converted every value with
its parameter type (`1,16,64` -> (1, 16, 64), `4.8T` -> 4.8e12, `NAME=URL,...` -> an
EngineConfig). Field names are the parameter names; the defaults live on the options (shown
by `--help`), not here. Cross-field rules are checked at construction and raise ConfigError,
which the CLI reports as a usage error (exit 2). Units: seconds, bytes, FLOP/s, bytes/s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .engine_config import EngineConfig
from .errors import ConfigError

__all__ = [
    "DoctorSettings",
    "KvSizeSettings",
    "ProfileSettings",
    "RenderSettings",
    "RooflineSettings",
    "ServeSettings",
    "TopSettings",
    "WorkerSettings",
]


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """`gpumetrics serve` (docs/configuration.md names each TOML key).

    `interval` and `otlp_interval` in seconds; `derived_window` the derived gauges' window
    (`5m`, checked against `interval` by the command); `gpu` a spec-table key or NVML name whose
    peaks replace every GPU's; `engines` from `--engine` or the file's `[[engines]]`;
    `include`/`exclude` metric-name globs; `otlp_headers` (name, value) pairs."""

    address: str
    port: int
    interval: float
    derived_window: str
    require_gpu: bool
    fake_gpus: str | None
    fake_workload: str
    fake_ib: int | None
    nvml: bool
    gpm: bool
    nvlink_per_link: bool
    process_memory: bool
    infiniband: bool
    ib_root: Path
    gpu: str | None
    engines: tuple[EngineConfig, ...]
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    web_config: Path | None
    otlp_endpoint: str | None
    otlp_interval: float
    otlp_headers: tuple[tuple[str, str], ...]
    log_level: str
    pod_attribution: str = "off"
    """off | auto | kubelet | cgroup (gpumetrics.sources.pods)."""
    kubelet_socket: Path = Path("/var/lib/kubelet/pod-resources/kubelet.sock")
    """The kubelet PodResources socket."""
    max_connections: int | None = None
    """Open HTTP connections at most; None: the web config's (256 by default)."""

    def __post_init__(self) -> None:
        names = [e.name for e in self.engines]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError("engines", f"names must be unique, repeated: {', '.join(duplicates)}")


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """`gpumetrics worker`: the engine's shape, the chat load, and what to print.

    `duration` and `think_time` in seconds, `arrival_rate` in conversations per second;
    `serve_at` is (address, port) for the hooks' /metrics."""

    device: str
    model: str
    kv_blocks: int
    block_size: int
    max_batch: int
    max_batch_tokens: int
    attention: str
    fast_decode: str
    scenario: str
    requests: int | None
    duration: float | None
    arrival_rate: float | None
    think_time: float | None
    serve_at: tuple[str, int] | None
    as_json: bool
    seed: int
    virtual_clock: bool
    record_trace: Path | None = None
    """Write each turn sent as a gpumetrics trace line (JSONL) to this file."""
    kv_predict_sample_rate: float = 1.0
    """Highest SHARDS sample rate of the live ghost cache (lowered to fit 8 MiB)."""

    def __post_init__(self) -> None:
        if self.requests is not None and self.duration is not None:
            raise ConfigError("--requests/--duration", "give --requests or --duration, not both")

    @property
    def turns(self) -> int | None:
        """Finished turns to stop after: --requests, else 50 unless --duration is given."""
        if self.requests is not None or self.duration is not None:
            return self.requests
        return 50


@dataclass(frozen=True, slots=True)
class ProfileSettings:
    """`gpumetrics profile`: a sweep of the reference worker, or attach (`engine` set).

    `batch`, `context`, `chunk` in sequences and tokens; `peak_flops` in FLOP/s and
    `hbm_bandwidth` in bytes/s (override the roofs); `duration` and `interval` in seconds
    (attach); the four paths are the files to write, checked writable before any work."""

    device: str
    model: str
    batch: tuple[int, ...]
    context: tuple[int, ...]
    chunk: tuple[int, ...]
    steps: int
    warmup: int
    dtype: str | None
    kv_blocks: int | None
    block_size: int
    gpu: str | None
    peak_flops: float | None
    hbm_bandwidth: float | None
    calibrate: bool
    engine: str | None
    kind: str
    gpus: tuple[str, ...]
    duration: float
    interval: float | None
    json_path: Path | None
    csv_path: Path | None
    plot_path: Path | None
    html_path: Path | None
    seed: int
    fast_decode: str

    @property
    def attach(self) -> bool:
        """Attach mode: observe a running engine instead of sweeping the worker."""
        return self.engine is not None


@dataclass(frozen=True, slots=True)
class RooflineSettings:
    """`gpumetrics roofline`: `gpu` a table key or NVML name, `gpu_spec` a TOML/JSON file
    (wins over `gpu`); `peak_flops` FLOP/s, `hbm_bandwidth` bytes/s and `gpu_memory` bytes
    override the GPU's figures; `memory_fraction` of GPU memory holds weights + KV."""

    model: str
    gpu: str | None
    gpu_spec: Path | None
    dtype: str
    kv_dtype: str
    tp: int
    batch: tuple[int, ...]
    context: tuple[int, ...]
    memory_fraction: float
    peak_flops: float | None
    hbm_bandwidth: float | None
    gpu_memory: float | None
    as_json: bool


@dataclass(frozen=True, slots=True)
class RenderSettings:
    """`gpumetrics render`: `root` the checkout to write into (None: the gpumetrics checkout
    holding the current directory); `check_only` writes nothing; `runbook_base_url` (None:
    the repository-relative `docs/runbooks/`) the absolute URL the alerts' `runbook_url`
    annotations start with, a `/` appended when missing."""

    root: Path | None
    check_only: bool
    runbook_base_url: str | None

    def __post_init__(self) -> None:
        url = self.runbook_base_url
        if url is None:
            return
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ConfigError(
                "runbook_base_url",
                f"must be an absolute http(s) URL without a query, got {url!r}",
            )
        if not url.endswith("/"):
            object.__setattr__(self, "runbook_base_url", url + "/")


@dataclass(frozen=True, slots=True)
class DoctorSettings:
    """`gpumetrics doctor`: JSON or a table, the InfiniBand sysfs root, fake GPUs (demo)."""

    as_json: bool
    ib_root: Path
    fake_gpus: str | None


@dataclass(frozen=True, slots=True)
class TopSettings:
    """`gpumetrics top`: read `url` (with the client's basic auth and TLS files), or with
    `local` / `fake_gpus` / `fake_ib` / `engines` this machine's sources directly; `interval`
    seconds between frames; `derived_window` the local sampler's gauge window (`5m`)."""

    url: str
    basic_auth_user: str | None
    basic_auth_password_file: Path | None
    ca_file: Path | None
    cert_file: Path | None
    key_file: Path | None
    insecure: bool
    local: bool
    fake_gpus: str | None
    fake_workload: str
    fake_ib: int | None
    engines: tuple[EngineConfig, ...]
    derived_window: str
    dtype: str
    interval: float
    once: bool

    @property
    def reads_local(self) -> bool:
        """Local sources instead of a `serve` endpoint."""
        return bool(self.local or self.fake_gpus or self.fake_ib or self.engines)


@dataclass(frozen=True, slots=True)
class KvSizeSettings:
    """`gpumetrics kv-size`: the trace and how to read it (`fmt`: auto | mooncake |
    gpumetrics | conversations; `block_size` tokens, None: the trace's), what to price
    capacities in (`model`, `gpu`, `tp`, dtypes, `memory_fraction` of GPU memory), the
    `target` share of the infinite-cache hit ratio, `capacities` in blocks to evaluate,
    SHARDS `sample_rate` and `sample_seed`, and the outputs."""

    trace_path: Path
    fmt: str
    block_size: int | None
    tokenizer_path: Path | None
    model: str | None
    gpu: str | None
    tp: int | None
    dtype: str
    kv_dtype: str
    memory_fraction: float
    target: float
    capacities: tuple[int, ...]
    sample_rate: float | None
    sample_seed: int
    strict: bool
    as_json: bool
    as_csv: bool
    plot: Path | None
    html: Path | None

    def __post_init__(self) -> None:
        if self.as_json and self.as_csv:
            raise ConfigError("--json", "give --json or --csv, not both")
        if self.gpu is not None and self.model is None:
            raise ConfigError("--gpu", "--gpu needs --model (GPUs are counted after the weights)")
        if not 0 < self.target <= 1:
            raise ConfigError("--target", f"must be in (0, 1], got {self.target}")
