"""Issue 11, live: a real vLLM CPU server loads the gpumetrics stat-logger plugin by itself.

Two servers in all (each costs a minute or two to start): a roomy KV pool driven one request
at a time (exact FLOPs oracle, the sidecar's mapping, a real Prometheus with our recording
rules) and a 24-block pool driven concurrently (preemptions and recompute). Needs the
environment from scripts/vllm-cpu-env.sh (GPUMETRICS_VLLM_ENV); skipped without it, failed
under GPUMETRICS_REQUIRE_TOOLS=1.
"""

from __future__ import annotations

import os
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from gpumetrics.catalog import engine as cat
from gpumetrics.costmodel import RequestWork, find_model, step_cost

from ..integration.servers import prometheus, wait_for
from ..integration.sidecar import gpumetrics_serve
from .vllm_live import REPO, LoadResult, Series, chat_load, env_dir, env_problem, scrape, total
from .vllm_live import vllm_server as start_vllm

pytestmark = [pytest.mark.vllm, pytest.mark.integration, pytest.mark.slow]

#: Plugin family -> vLLM's own counter that must hold the same value.
SAME = (
    (cat.PREFIX_QUERIED.name, "vllm:prefix_cache_queries_total"),
    (cat.PREFIX_HIT.name, "vllm:prefix_cache_hits_total"),
    (cat.PROMPT_TOKENS.name, "vllm:prompt_tokens_total"),
    (cat.PROMPT_CACHED_TOKENS.name, "vllm:prompt_tokens_cached_total"),
    (cat.GENERATED_TOKENS.name, "vllm:generation_tokens_total"),
    (cat.PREEMPTIONS.name, "vllm:num_preemptions_total"),
    (cat.FINISHED_REQUESTS.name, "vllm:request_success_total"),
    (cat.EXTERNAL_PREFIX_QUERIED.name, "vllm:external_prefix_cache_queries_total"),
    (cat.EXTERNAL_PREFIX_HIT.name, "vllm:external_prefix_cache_hits_total"),
)

#: Plugin origin -> vLLM's `source` of vllm:prompt_tokens_by_source_total.
ORIGINS = (("computed", "local_compute"), ("local_cache", "local_cache_hit"),
           ("external", "external_kv_transfer"))  # fmt: skip

#: Spec-decode families: the live servers do not speculate, so vLLM has none of its own and
#: the plugin's (present from the start, as the bridge needs) stay 0.
SPEC = (cat.SPEC_DRAFTS.name, cat.SPEC_DRAFT_TOKENS.name, cat.SPEC_ACCEPTED_TOKENS.name)


@pytest.fixture(scope="module")
def vllm_env() -> Path:
    folder = env_dir()
    problem = env_problem(folder)
    if problem is not None:
        if os.environ.get("GPUMETRICS_REQUIRE_TOOLS") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    return folder


def _settled(url: str, load: LoadResult) -> Series:
    """The page once vLLM and the plugin have recorded every finished request."""
    n = len(load.replies)

    def done() -> Series | None:
        page = scrape(f"{url}/metrics")
        finished = total(page, cat.FINISHED_REQUESTS.name)
        return page if total(page, "vllm:request_success_total") == n == finished else None

    return wait_for(done, 60, f"{n} finished requests on the page")


def _assert_same(page: Series) -> None:
    for ours, theirs in SAME:
        assert total(page, ours, engine="vllm", model="tiny", dp_rank="0") == total(page, theirs), (
            f"{ours} != {theirs}"
        )
    ours = {"engine": "vllm", "model": "tiny", "dp_rank": "0"}
    for origin, source in ORIGINS:
        key = (cat.PROMPT_KV_TOKENS.name, frozenset({**ours, "origin": origin}.items()))
        theirs = [
            v
            for (n, labels), v in page.items()
            if n == "vllm:prompt_tokens_by_source_total" and ("source", source) in labels
        ]
        assert key in page, key
        assert len(theirs) == 1, source
        assert page[key] == theirs[0], f"prompt KV tokens {origin} != {source}"
    for name in SPEC:
        assert page[(name, frozenset(ours.items()))] == 0
    assert not any(n.startswith("vllm:spec_decode") for n, _ in page)
    assert total(page, cat.HOOK_ERRORS.name) == 0


def _oracle_flops(load: LoadResult, spec_dir: Path) -> float:
    """The cost model over each request's own work, one request at a time: a prefill of its
    uncached prompt tokens, then one decode per further output token."""
    spec = find_model(str(spec_dir / "config.json"))
    flops = 0.0
    for r in load.replies:
        flops += step_cost(spec, [RequestWork.prefill(r.prompt_tokens, r.cached_tokens)]).flops
        for j in range(1, r.completion_tokens):
            flops += step_cost(spec, [RequestWork.decode(r.prompt_tokens + j)]).flops
    return flops


def test_roomy_pool_counters_sidecar_prometheus_and_flops(vllm_env: Path, tmp_path: Path) -> None:
    rules = [REPO / "alerts" / "gpumetrics-recording-rules.yml"]
    with start_vllm(vllm_env, tmp_path / "vllm-roomy.log") as server:
        target = urllib.parse.urlsplit(server.url).netloc
        with (
            prometheus(tmp_path / "prom", [target], rule_files=rules) as prom,
            gpumetrics_serve(
                tmp_path, "--no-nvml", "--no-infiniband", "--interval", "0.5",
                "--engine", f"vllm-0={server.url}/metrics,kind=vllm",
            ) as port,
        ):  # fmt: skip
            wait_for(prom.targets_up, 60, "vLLM scraped by Prometheus")
            load = chat_load(server.url, seed=11, conversations=3, turns=4, concurrency=1)
            page = _settled(server.url, load)
            _assert_same(page)
            queries = total(page, "vllm:prefix_cache_queries_total")
            hits = total(page, "vllm:prefix_cache_hits_total")
            assert 0 < hits < queries
            # Tokens scheduled: exact with vLLM's iteration details, as vLLM itself counts.
            tokens = total(page, cat.STEP_TOKENS.name, phase="prefill")
            assert tokens == total(
                page, "vllm:prompt_tokens_by_source_total", source="local_compute"
            )
            decode = total(page, cat.STEP_TOKENS.name, phase="decode")
            assert decode == total(page, "vllm:generation_tokens_total") - len(load.replies)
            # FLOPs: the cost model over each request's real work (one request at a time, so
            # the plugin's attention estimate is exact; see vllm_step's docstring).
            flops = total(page, cat.FLOPS.name)
            assert flops == pytest.approx(_oracle_flops(load, vllm_env / "model"), rel=1e-9)
            assert total(page, cat.STEP_BUSY.name) > 0
            # The sidecar maps the same live page to the same values (once it has sampled
            # the settled page: it scrapes in the background).
            mapped = [(ours, total(page, theirs)) for ours, theirs in SAME]

            def sidecar() -> list[tuple[str, float]] | None:
                seen = scrape(f"http://127.0.0.1:{port}/metrics")
                got = [(n, total(seen, n, engine="vllm-0")) for n, _ in mapped]
                return got if got == mapped else None

            wait_for(sidecar, 30, f"gpumetrics serve to show {mapped}")
            # Prometheus with our recording rules: the hit ratio vLLM's own counters imply.
            implied = hits / queries

            def recorded() -> float | None:
                found = prom.query('gpumetrics:kv_cache_hit_ratio:rate5m{dp_rank="0"}')
                value = float(found[0]["value"][1]) if found else None
                return value if value is not None and abs(value - implied) < 1e-9 else None

            assert wait_for(recorded, 60, f"recorded hit ratio {implied}") == pytest.approx(
                implied, rel=1e-9
            )
            vllm_ratio = prom.query(
                "rate(vllm:prefix_cache_hits_total[5m]) / rate(vllm:prefix_cache_queries_total[5m])"
            )
            assert float(vllm_ratio[0]["value"][1]) == pytest.approx(implied, rel=1e-9)


def test_small_pool_preempts_and_counts_recompute(vllm_env: Path, tmp_path: Path) -> None:
    with start_vllm(
        vllm_env,
        tmp_path / "vllm-small.log",
        "--num-gpu-blocks-override",
        "24",
        extra_env={"VLLM_PLUGINS": "gpumetrics"},
    ) as server:
        # 8 at once, each growing by 160 tokens (more than one 128-token block) after it
        # was admitted into a full pool: running requests run out of blocks.
        load = chat_load(
            server.url, seed=12, conversations=8, turns=2, concurrency=8, max_tokens=160
        )
        page = _settled(server.url, load)
    _assert_same(page)
    assert total(page, "vllm:num_preemptions_total") > 0
    assert total(page, cat.RECOMPUTED_TOKENS.name) > 0
    assert total(page, cat.RECOMPUTED_FLOPS.name) > 0
    assert total(page, cat.KV_CAPACITY_BLOCKS.name) == 24


def test_vllm_plugins_filters_the_plugin(vllm_env: Path) -> None:
    """vLLM's own loader: VLLM_PLUGINS naming another plugin leaves ours out."""
    code = (
        "from vllm.v1.metrics.loggers import load_stat_logger_plugin_factories as f;"
        "print([c.__name__ for c in f()])"
    )
    python = str(vllm_env / "venv" / "bin" / "python")
    seen = {}
    for allowed in ("gpumetrics", "someone_else"):
        env = {**os.environ, "VLLM_PLUGINS": allowed, "PYTHONPATH": str(REPO)}
        out = subprocess.run(
            [python, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=True
        )
        seen[allowed] = out.stdout.strip().splitlines()[-1]
    assert seen == {"gpumetrics": "['GpumetricsStatLogger']", "someone_else": "[]"}
