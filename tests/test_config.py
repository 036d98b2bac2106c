"""Config file and web config: valid files load; every bad input names its key and file."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpumetrics import catalog
from gpumetrics.config import load_config, load_web_config, select_specs
from gpumetrics.engine_config import EngineConfig, parse_engine_flag
from gpumetrics.errors import ConfigError

#: A well-formed bcrypt hash (of "s3cret", cost 4); malformed ones are refused at load.
HASH = "$2b$04$OU/ykY7Rs07HOYhf4Vobs.rQh4yoo4lxkdqD.ZMwacf/Mo.dYZuVy"

GOOD = """
[serve]
port = 9100
interval = 0.5
[sources]
fake_gpus = "h200x8"
ib_root = "ib"
[metrics]
exclude = ["gpumetrics_gpu_process_*"]
[otlp]
endpoint = "http://collector:4318"
headers = { "x-token" = "abc" }
[web]
config = "web.yml"
[[engines]]
name = "vllm-0"
url = "http://127.0.0.1:8000"
kind = "vllm"
gpus = [0, "GPU-1234"]
"""


def _write(tmp_path: Path, text: str, name: str = "gpumetrics.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_full_file_loads(tmp_path: Path) -> None:
    loaded = load_config(_write(tmp_path, GOOD))
    assert loaded.options["port"] == 9100
    assert loaded.options["fake_gpus"] == "h200x8"
    assert loaded.options["ib_root"] == str(tmp_path / "ib")  # relative to the file
    assert loaded.options["web_config"] == str(tmp_path / "web.yml")
    assert loaded.options["otlp_endpoint"] == "http://collector:4318"
    assert loaded.otlp_headers == {"x-token": "abc"}
    assert loaded.exclude == ("gpumetrics_gpu_process_*",)
    (engine,) = loaded.engines
    assert (engine.name, engine.kind, engine.gpus) == ("vllm-0", "vllm", ("0", "GPU-1234"))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[serve]\nprot = 1\n", "serve.prot"),
        ('[serve]\nport = "9100"\n', "serve.port"),
        ("[serve]\nport = true\n", "serve.port"),
        ("[sourcez]\nnvml = true\n", "sourcez"),
        ('[[engines]]\nname = "a"\n', "engines[0].url"),
        ('[[engines]]\nname = "a"\nurl = "u"\ncolour = 1\n', "engines[0].colour"),
        ("engines = 3\n", "engines"),
        ('[metrics]\ninclude = "gpumetrics_*"\n', "metrics.include"),
        ("[serve\n", "config"),
    ],
)
def test_bad_files_name_the_key_and_the_file(tmp_path: Path, text: str, key: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == key
    assert str(path) in str(info.value)


def test_web_config(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("x")
    (tmp_path / "k.pem").write_text("x")
    path = _write(
        tmp_path,
        "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n"
        f"basic_auth_users:\n  alice: {HASH}\n",
        "web.yml",
    )
    web = load_web_config(path)
    assert web.tls
    assert web.cert_file == tmp_path / "c.pem"
    assert web.basic_auth_users == {"alice": HASH}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("basic_auth_users:\n  bob: plaintext\n", "basic_auth_users.bob"),
        (
            "tls_server_config:\n  cert_file: missing.pem\n  key_file: k.pem\n",
            "tls_server_config.cert_file",
        ),
        (
            "tls_server_config:\n  client_auth_type: Sometimes\n",
            "tls_server_config.client_auth_type",
        ),
        (
            "tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n",
            "tls_server_config.client_ca_file",
        ),
        ("listen: 1\n", "listen"),
    ],
)
def test_bad_web_configs(tmp_path: Path, text: str, key: str) -> None:
    (tmp_path / "k.pem").write_text("x")
    path = _write(tmp_path, text, "web.yml")
    with pytest.raises(ConfigError) as info:
        load_web_config(path)
    assert info.value.key == key
    assert str(path) in str(info.value)


def test_engine_flags() -> None:
    entry = parse_engine_flag("sg=http://h:30000/metrics,kind=sglang,model=qwen,gpus=0+1")
    assert (entry.name, entry.kind, entry.model, entry.gpus) == ("sg", "sglang", "qwen", ("0", "1"))
    for bad in ("nourl", "a=http://x,color=red", "a=http://x,timeout_s=soon"):
        with pytest.raises(ConfigError, match="--engine"):
            parse_engine_flag(bad)


@pytest.mark.parametrize(
    ("flag", "problem"),
    [
        ("a=http://x:1,kind=bogus", "kind: 'bogus': one of gpumetrics, vllm"),
        ("a=ftp://x:1", "scheme must be http or https"),
        ("a=http://x:1,gpus=zero", "is not a GPU index"),
        ("a=http://x:1,timeout_s=0", "timeout_s: 0.0: must be a finite number > 0"),
    ],
)
def test_engine_flags_are_validated_like_the_file(flag: str, problem: str) -> None:
    """One type: the flag builds the same validated EngineConfig as `[[engines]]`."""
    with pytest.raises(ConfigError) as info:
        parse_engine_flag(flag)
    assert info.value.key == "--engine"
    assert problem in info.value.problem


def test_file_engines_are_engine_configs(tmp_path: Path) -> None:
    (engine,) = load_config(_write(tmp_path, GOOD)).engines
    assert engine == EngineConfig(
        "vllm-0", "http://127.0.0.1:8000", kind="vllm", gpus=("0", "GPU-1234")
    )
    bad = '[[engines]]\nname = "a"\nurl = "http://x:1"\nkind = "bogus"\n'
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, bad))
    assert info.value.key == "engines[0].kind"
    assert str(tmp_path) in str(info.value)


def test_the_old_gpu_spec_key_says_what_it_became(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"renamed sources\.gpu ") as info:
        load_config(_write(tmp_path, '[sources]\ngpu_spec = "h200"\n'))
    assert info.value.key == "sources.gpu_spec"


def test_metric_selection() -> None:
    engine_only = select_specs(catalog.ALL, ("gpumetrics_engine_*",), ())
    assert engine_only
    assert all(s.name.startswith("gpumetrics_engine_") for s in engine_only)
    without_nvlink = select_specs(catalog.ALL, (), ("gpumetrics_gpu_nvlink_*",))
    assert len(without_nvlink) == len(catalog.ALL) - sum(
        1 for s in catalog.ALL if s.name.startswith("gpumetrics_gpu_nvlink_")
    )
    with pytest.raises(ConfigError, match="matches no metric"):
        select_specs(catalog.ALL, ("gpumetrics_gpu_powr_*",), ())
