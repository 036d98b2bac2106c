"""from_hf_config on config.json files shaped like the real Hugging Face ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gpumetrics.costmodel import (
    PRESETS,
    ModelSpec,
    decode_batch,
    find_model,
    from_hf_config,
    from_hf_dict,
)
from gpumetrics.errors import ConfigError

FIELDS = (
    "layers",
    "hidden",
    "heads",
    "kv_heads",
    "head_dim",
    "intermediate",
    "vocab",
    "experts",
    "active_experts",
    "tied_embeddings",
    "qkv_bias",
    "o_bias",
    "qk_norm",
)

# meta-llama/Meta-Llama-3-8B config.json (no head_dim key: d = hidden / heads)
LLAMA_3_8B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 128000,
    "eos_token_id": 128001,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 14336,
    "max_position_embeddings": 8192,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": None,
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.40.0.dev0",
    "use_cache": True,
    "vocab_size": 128256,
}

# meta-llama/Llama-3.1-70B config.json shape (same architecture as the 3.0 preset)
LLAMA_3_70B: dict[str, Any] = {
    **LLAMA_3_8B,
    "hidden_size": 8192,
    "intermediate_size": 28672,
    "num_attention_heads": 64,
    "num_hidden_layers": 80,
    "num_key_value_heads": 8,
}

# meta-llama/Llama-3.2-1B config.json (explicit head_dim, tied embeddings)
LLAMA_32_1B: dict[str, Any] = {
    **LLAMA_3_8B,
    "head_dim": 64,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "max_position_embeddings": 131072,
    "num_attention_heads": 32,
    "num_hidden_layers": 16,
    "num_key_value_heads": 8,
    "rope_scaling": {
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "tie_word_embeddings": True,
}

# Qwen/Qwen2.5-7B-Instruct config.json
QWEN25_7B: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "hidden_act": "silu",
    "hidden_size": 3584,
    "initializer_range": 0.02,
    "intermediate_size": 18944,
    "max_position_embeddings": 32768,
    "max_window_layers": 28,
    "model_type": "qwen2",
    "num_attention_heads": 28,
    "num_hidden_layers": 28,
    "num_key_value_heads": 4,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 131072,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.43.1",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 152064,
}

# Qwen/Qwen3-8B config.json (q/k-norm; attention_bias false; explicit head_dim)
QWEN3_8B: dict[str, Any] = {
    "architectures": ["Qwen3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 12288,
    "max_position_embeddings": 40960,
    "max_window_layers": 36,
    "model_type": "qwen3",
    "num_attention_heads": 32,
    "num_hidden_layers": 36,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.51.0",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 151936,
}

# mistralai/Mixtral-8x7B-v0.1 config.json
MIXTRAL_8X7B: dict[str, Any] = {
    "architectures": ["MixtralForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 14336,
    "max_position_embeddings": 32768,
    "model_type": "mixtral",
    "num_attention_heads": 32,
    "num_experts_per_tok": 2,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "num_local_experts": 8,
    "output_router_logits": False,
    "rms_norm_eps": 1e-05,
    "rope_theta": 1000000.0,
    "router_aux_loss_coef": 0.02,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.36.0.dev0",
    "use_cache": True,
    "vocab_size": 32000,
}

# deepseek-ai/DeepSeek-V2-Lite config.json (MLA: latent KV, not Hkv·d per token)
DEEPSEEK_V2_LITE: dict[str, Any] = {
    "architectures": ["DeepseekV2ForCausalLM"],
    "hidden_size": 2048,
    "intermediate_size": 10944,
    "kv_lora_rank": 512,
    "max_position_embeddings": 163840,
    "model_type": "deepseek_v2",
    "moe_intermediate_size": 1408,
    "n_routed_experts": 64,
    "n_shared_experts": 2,
    "num_attention_heads": 16,
    "num_experts_per_tok": 6,
    "num_hidden_layers": 27,
    "num_key_value_heads": 16,
    "q_lora_rank": None,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "vocab_size": 102400,
}


def _write(tmp_path: Path, data: dict[str, Any], name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=2))
    return path


def _arch(spec: ModelSpec) -> tuple[object, ...]:
    return tuple(getattr(spec, f) for f in FIELDS)


@pytest.mark.parametrize(
    ("config", "preset"),
    [
        pytest.param(LLAMA_3_8B, "llama-3-8b", id="llama-3-8b"),
        pytest.param(LLAMA_3_70B, "llama-3-70b", id="llama-3-70b"),
        pytest.param(LLAMA_32_1B, "llama-3.2-1b", id="llama-3.2-1b"),
        pytest.param(QWEN25_7B, "qwen2.5-7b", id="qwen2.5-7b"),
        pytest.param(QWEN3_8B, "qwen3-8b", id="qwen3-8b"),
        pytest.param(MIXTRAL_8X7B, "mixtral-8x7b", id="mixtral-8x7b"),
    ],
)
def test_real_configs_match_presets(tmp_path: Path, config: dict[str, Any], preset: str) -> None:
    spec = from_hf_config(_write(tmp_path, config))
    assert _arch(spec) == _arch(PRESETS[preset])
    assert spec.max_context == config["max_position_embeddings"]
    assert spec.total_params == PRESETS[preset].total_params
    assert spec.kv_bytes_per_token() == PRESETS[preset].kv_bytes_per_token()


@pytest.mark.parametrize(
    ("config", "published"),
    [
        # The checkpoints' safetensors totals as the Hub reports them ("parameters": BF16),
        # counted from the real tensors, independently of this cost model.
        pytest.param(QWEN25_7B, 7_615_616_512, id="qwen2.5-7b"),
        pytest.param(QWEN3_8B, 8_190_735_360, id="qwen3-8b"),
        pytest.param(LLAMA_3_8B, 8_030_261_248, id="llama-3-8b"),
    ],
)
def test_total_params_match_the_published_checkpoints(
    tmp_path: Path, config: dict[str, Any], published: int
) -> None:
    assert from_hf_config(_write(tmp_path, config)).total_params == published


def test_qwen2_qkv_biases_counted(tmp_path: Path) -> None:
    spec = from_hf_config(_write(tmp_path, QWEN25_7B))
    assert (spec.qkv_bias, spec.o_bias, spec.qk_norm) == (True, False, False)
    # Q/K/V biases: (Hq + 2·Hkv)·d = (28 + 8)·128 per layer, 28 layers.
    no_bias = ModelSpec(**{**_kwargs(spec), "qkv_bias": False})
    assert spec.total_params - no_bias.total_params == 28 * 36 * 128 == 129_024
    # They are weights read every step too.
    assert spec.weight_bytes("bf16") - no_bias.weight_bytes("bf16") == 2 * 129_024
    step, plain = decode_batch(spec, 4, 100), decode_batch(no_bias, 4, 100)
    assert step.weight_bytes - plain.weight_bytes == 2 * 129_024
    assert step.flops == plain.flops  # added, not multiplied: no matmul FLOPs


def test_qwen3_qk_norm_counted(tmp_path: Path) -> None:
    spec = from_hf_config(_write(tmp_path, QWEN3_8B))
    assert (spec.qkv_bias, spec.o_bias, spec.qk_norm) == (False, False, True)
    no_norm = ModelSpec(**{**_kwargs(spec), "qk_norm": False})
    assert spec.total_params - no_norm.total_params == 36 * 2 * 128 == 9216


def test_attention_bias_true_biases_q_k_v_and_o(tmp_path: Path) -> None:
    spec = from_hf_config(_write(tmp_path, {**LLAMA_3_8B, "attention_bias": True}))
    assert (spec.qkv_bias, spec.o_bias, spec.qk_norm) == (True, True, False)
    # (Hq + 2·Hkv)·d + D per layer = 6144 + 4096, 32 layers.
    assert spec.total_params - PRESETS["llama-3-8b"].total_params == 32 * (6144 + 4096)
    with pytest.raises(ConfigError, match="attention_bias"):
        from_hf_config(_write(tmp_path, {**LLAMA_3_8B, "attention_bias": "yes"}))


def _kwargs(spec: ModelSpec) -> dict[str, Any]:
    return {f: getattr(spec, f) for f in ModelSpec.__dataclass_fields__}


def test_mixtral_experts_read(tmp_path: Path) -> None:
    spec = from_hf_config(_write(tmp_path, MIXTRAL_8X7B))
    assert spec.experts == 8
    assert spec.active_experts == 2
    assert spec.is_moe
    assert spec.head_dim == 4096 // 32  # no head_dim key in Mixtral's config


def test_text_config_nesting(tmp_path: Path) -> None:
    """Multimodal wrappers (Llama 4, Mistral 3, Gemma 3, ...) nest the LM under text_config."""
    wrapped = {
        "architectures": ["SomeForConditionalGeneration"],
        "model_type": "some_vlm",
        "vision_config": {"hidden_size": 1152, "num_hidden_layers": 27},
        "text_config": LLAMA_3_8B,
        "torch_dtype": "bfloat16",
    }
    spec = from_hf_config(_write(tmp_path, wrapped))
    assert _arch(spec) == _arch(PRESETS["llama-3-8b"])


def test_missing_kv_heads_means_mha(tmp_path: Path) -> None:
    config = {k: v for k, v in LLAMA_3_8B.items() if k != "num_key_value_heads"}
    spec = from_hf_config(_write(tmp_path, config))
    assert spec.kv_heads == spec.heads == 32
    assert spec.kv_bytes_per_token() == 2 * 32 * 32 * 128 * 2  # 4x Llama-3-8B's GQA


def test_missing_head_dim_is_hidden_over_heads(tmp_path: Path) -> None:
    assert "head_dim" not in LLAMA_3_8B
    spec = from_hf_config(_write(tmp_path, LLAMA_3_8B))
    assert spec.head_dim == 128


def test_explicit_head_dim_wins_over_hidden_over_heads(tmp_path: Path) -> None:
    """Gemma-style: Hq·d != D; the config's head_dim must be used, not D/Hq."""
    config = {**LLAMA_3_8B, "hidden_size": 2048, "num_attention_heads": 16, "head_dim": 256}
    spec = from_hf_config(_write(tmp_path, config))
    assert spec.hidden == 2048
    assert spec.heads == 16
    assert spec.head_dim == 256


def test_find_model_reads_a_path(tmp_path: Path) -> None:
    path = _write(tmp_path, QWEN25_7B)
    assert _arch(find_model(str(path))) == _arch(PRESETS["qwen2.5-7b"])


def test_missing_hidden_size_names_key_and_file(tmp_path: Path) -> None:
    config = {k: v for k, v in LLAMA_3_8B.items() if k != "hidden_size"}
    path = _write(tmp_path, config, "broken-config.json")
    with pytest.raises(ConfigError) as excinfo:
        from_hf_config(path)
    message = str(excinfo.value)
    assert "hidden_size" in message
    assert str(path) in message


def test_invalid_json_is_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"hidden_size": 4096, "num_hidden_layers": ')
    with pytest.raises(ConfigError) as excinfo:
        from_hf_config(path)
    assert str(path) in str(excinfo.value)


def test_json_not_an_object_is_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("[1, 2, 3]")
    with pytest.raises(ConfigError):
        from_hf_config(path)


def test_mla_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, DEEPSEEK_V2_LITE)
    with pytest.raises(ConfigError) as excinfo:
        from_hf_config(path)
    assert "kv_lora_rank" in str(excinfo.value)


def test_non_integer_field_is_config_error(tmp_path: Path) -> None:
    path = _write(tmp_path, {**LLAMA_3_8B, "num_hidden_layers": "thirty-two"})
    with pytest.raises(ConfigError) as excinfo:
        from_hf_config(path)
    assert "num_hidden_layers" in str(excinfo.value)
    assert str(path) in str(excinfo.value)


def test_from_hf_dict_reads_a_loaded_config_as_the_file_reader_does(tmp_path: Path) -> None:
    """An engine (the vLLM plugin) holds its config loaded: the same shape, errors naming the
    source given."""
    raw: dict[str, Any] = {
        "model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
        "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 64, "vocab_size": 455, "tie_word_embeddings": True,
    }  # fmt: skip
    (tmp_path / "tiny").mkdir()
    path = tmp_path / "tiny" / "config.json"
    path.write_text(json.dumps(raw))
    from_file, loaded = from_hf_config(path), from_hf_dict(raw, source="vllm hf_config")
    assert [getattr(loaded, f) for f in FIELDS] == [getattr(from_file, f) for f in FIELDS]
    assert from_file.name == "tiny"
    assert loaded.name == "custom"
    with pytest.raises(ConfigError, match="vllm hf_config"):
        from_hf_dict({"hidden_size": 8}, source="vllm hf_config")
