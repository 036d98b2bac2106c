"""Model architecture for the cost model: Llama-style decoders with GQA and optional MoE.

Presets are written from the models' published `config.json`; `from_hf_config` reads any
such file (no download: pass a path).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from ..errors import ConfigError, UnknownModelError

__all__ = [
    "DTYPE_BYTES",
    "PRESETS",
    "ModelSpec",
    "dtype_bytes",
    "find_model",
    "from_hf_config",
    "from_hf_dict",
]

#: Bytes per element of each storage dtype.
DTYPE_BYTES: Mapping[str, float] = MappingProxyType(
    {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "fp4": 0.5}
)


def dtype_bytes(dtype: str) -> float:
    """Bytes per element; ConfigError lists the dtypes known."""
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise ConfigError("dtype", f"unknown {dtype!r}; known: {', '.join(DTYPE_BYTES)}") from None


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A decoder-only transformer in the symbols of REFERENCE.md §2.

    `intermediate` is the FFN width of one expert (of the dense FFN when `experts == 1`);
    `active_experts` experts run per token (top-k routing). `qkv_bias`: the Q, K and V
    projections have biases (Qwen2: (Hq+2Hkv)·d per layer); `o_bias`: so does O (D per
    layer; HF `attention_bias: true` sets both); `qk_norm`: RMSNorm over each query and key
    head (Qwen3: 2·d weights per layer).
    """

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    experts: int = 1
    active_experts: int = 1
    tied_embeddings: bool = False
    max_context: int = 8192
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: bool = False

    def __post_init__(self) -> None:
        for name in (
            "layers",
            "hidden",
            "heads",
            "kv_heads",
            "head_dim",
            "intermediate",
            "vocab",
            "experts",
            "active_experts",
            "max_context",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(name, f"must be > 0, got {getattr(self, name)}")
        if self.heads % self.kv_heads:
            raise ConfigError("kv_heads", f"{self.kv_heads} does not divide heads {self.heads}")
        if self.active_experts > self.experts:
            raise ConfigError("active_experts", "cannot exceed experts")

    @property
    def is_moe(self) -> bool:
        return self.experts > 1

    # --- parameter counts (elements) ---------------------------------------------------

    @property
    def attention_params_per_layer(self) -> int:
        """Q, K, V and O projection matrices: D(Hq+2Hkv)d + Hq·d·D."""
        d = self.head_dim
        return self.hidden * (self.heads + 2 * self.kv_heads) * d + self.heads * d * self.hidden

    @property
    def attention_bias_params_per_layer(self) -> int:
        """Projection biases: (Hq+2Hkv)·d if `qkv_bias`, + D if `o_bias` (added, not
        multiplied: weight bytes, no matmul FLOPs)."""
        qkv = (self.heads + 2 * self.kv_heads) * self.head_dim if self.qkv_bias else 0
        return qkv + (self.hidden if self.o_bias else 0)

    @property
    def norm_params_per_layer(self) -> int:
        """RMSNorm weights: before attention and FFN (2·D), plus q/k-norm (2·d) if any."""
        return 2 * self.hidden + (2 * self.head_dim if self.qk_norm else 0)

    @property
    def expert_params(self) -> int:
        """One expert's (or the dense FFN's) gate, up and down projections: 3·D·I."""
        return 3 * self.hidden * self.intermediate

    @property
    def router_params_per_layer(self) -> int:
        return self.hidden * self.experts if self.is_moe else 0

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def total_params(self) -> int:
        """Every weight, including embeddings and norms (what sits in GPU memory)."""
        per_layer = (
            self.attention_params_per_layer
            + self.attention_bias_params_per_layer
            + self.experts * self.expert_params
            + self.router_params_per_layer
            + self.norm_params_per_layer
        )
        head = 0 if self.tied_embeddings else self.embedding_params
        return self.layers * per_layer + self.embedding_params + head + self.hidden

    @property
    def active_params_per_token(self) -> int:
        """Matrix weights one token multiplies with (MoE: only its top-k experts); biases
        and norms are not counted (2 FLOPs per parameter holds for these)."""
        per_layer = (
            self.attention_params_per_layer
            + self.active_experts * self.expert_params
            + self.router_params_per_layer
        )
        return self.layers * per_layer + self.embedding_params

    def kv_bytes_per_token(self, kv_dtype: str = "bf16") -> float:
        """K and V for one token across layers: 2·L·Hkv·d·kv_b (Llama-3-8B bf16: 128 KiB)."""
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes(kv_dtype)

    def weight_bytes(self, dtype: str = "bf16") -> float:
        """Bytes of all weights in memory."""
        return self.total_params * dtype_bytes(dtype)


def _preset(**kw: object) -> ModelSpec:
    return ModelSpec(**kw)  # type: ignore[arg-type]


_PRESETS = (
    # meta-llama/Meta-Llama-3-8B config.json
    _preset(
        name="llama-3-8b",
        layers=32,
        hidden=4096,
        heads=32,
        kv_heads=8,
        head_dim=128,
        intermediate=14336,
        vocab=128256,
        max_context=8192,
    ),
    # meta-llama/Meta-Llama-3-70B config.json
    _preset(
        name="llama-3-70b",
        layers=80,
        hidden=8192,
        heads=64,
        kv_heads=8,
        head_dim=128,
        intermediate=28672,
        vocab=128256,
        max_context=8192,
    ),
    # meta-llama/Llama-3.2-1B config.json (tied embeddings)
    _preset(
        name="llama-3.2-1b",
        layers=16,
        hidden=2048,
        heads=32,
        kv_heads=8,
        head_dim=64,
        intermediate=8192,
        vocab=128256,
        tied_embeddings=True,
        max_context=131072,
    ),
    # Qwen/Qwen2.5-7B-Instruct config.json (model_type qwen2: Q/K/V biases)
    _preset(
        name="qwen2.5-7b",
        layers=28,
        hidden=3584,
        heads=28,
        kv_heads=4,
        head_dim=128,
        intermediate=18944,
        vocab=152064,
        max_context=32768,
        qkv_bias=True,
    ),
    # Qwen/Qwen3-8B config.json (model_type qwen3: q/k-norm, head_dim given)
    _preset(
        name="qwen3-8b",
        layers=36,
        hidden=4096,
        heads=32,
        kv_heads=8,
        head_dim=128,
        intermediate=12288,
        vocab=151936,
        max_context=40960,
        qk_norm=True,
    ),
    # mistralai/Mixtral-8x7B-v0.1 config.json: 8 experts, top-2
    _preset(
        name="mixtral-8x7b",
        layers=32,
        hidden=4096,
        heads=32,
        kv_heads=8,
        head_dim=128,
        intermediate=14336,
        vocab=32000,
        experts=8,
        active_experts=2,
        max_context=32768,
    ),
    # The reference worker's CPU test config: byte-level vocabulary (256 bytes + specials).
    _preset(
        name="tiny",
        layers=2,
        hidden=128,
        heads=4,
        kv_heads=2,
        head_dim=32,
        intermediate=256,
        vocab=320,
        max_context=2048,
    ),
)

#: Presets by name; "1b" is the worker's ~1B GPU preset (Llama-3.2-1B's shape).
PRESETS: Mapping[str, ModelSpec] = MappingProxyType(
    {**{p.name: p for p in _PRESETS}, "1b": next(p for p in _PRESETS if p.name == "llama-3.2-1b")}
)


def find_model(name_or_path: str) -> ModelSpec:
    """A preset by name, or a Hugging Face config.json by path."""
    if name_or_path.lower() in PRESETS:
        return PRESETS[name_or_path.lower()]
    path = Path(name_or_path)
    if path.is_dir():
        path = path / "config.json"
    if path.suffix == ".json" or path.exists():
        return from_hf_config(path)
    raise UnknownModelError(name_or_path, sorted(PRESETS))


def from_hf_config(path: Path) -> ModelSpec:
    """Read a Hugging Face `config.json` (Llama, Mistral, Mixtral, Qwen2/3 and MoE shapes).

    Attention extras follow the modelling code: `model_type` qwen2/qwen2_moe always has Q/K/V
    biases (and no O bias); `attention_bias: true` (Llama, Qwen3) puts biases on Q, K, V and
    O; qwen3/qwen3_moe have q/k-norm. A missing required field raises ConfigError naming the
    field and the file.
    """
    source = str(path)
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError("config.json", f"cannot read: {exc.strerror}", source=source) from exc
    except json.JSONDecodeError as exc:
        raise ConfigError("config.json", f"not valid JSON: {exc}", source=source) from exc
    if not isinstance(raw, dict):
        raise ConfigError("config.json", "must be a JSON object", source=source)
    return from_hf_dict(raw, source=source)


def from_hf_dict(raw: Mapping[str, object], *, source: str = "config") -> ModelSpec:
    """`from_hf_config` over a config already loaded (transformers' `config.to_dict()`, as an
    engine holds it); `source` names it in errors."""
    text = raw.get("text_config")
    cfg: Mapping[str, object] = text if isinstance(text, dict) else raw
    if "kv_lora_rank" in cfg:
        raise ConfigError(
            "kv_lora_rank", "MLA attention (DeepSeek) is not modelled yet", source=source
        )

    def need(key: str) -> int:
        if key not in cfg:
            raise ConfigError(key, "required field missing", source=source)
        return _int(key, cfg[key], source)

    hidden = need("hidden_size")
    heads = need("num_attention_heads")
    experts = _int(
        "num_local_experts", cfg.get("num_local_experts", cfg.get("num_experts", 1)) or 1, source
    )
    intermediate = (
        need("moe_intermediate_size")
        if experts > 1 and "moe_intermediate_size" in cfg
        else need("intermediate_size")
    )
    head_dim_raw = cfg.get("head_dim")
    model_type = str(cfg.get("model_type") or raw.get("model_type") or "")
    attention_bias = cfg.get("attention_bias", False)
    if not isinstance(attention_bias, bool):
        raise ConfigError(
            "attention_bias", f"must be true or false, got {attention_bias!r}", source=source
        )
    qwen2 = model_type in _QKV_BIAS_TYPES
    try:
        return ModelSpec(
            name=str(
                cfg.get("_name_or_path") or raw.get("_name_or_path") or _stem(source) or "custom"
            ),
            layers=need("num_hidden_layers"),
            hidden=hidden,
            heads=heads,
            kv_heads=_int("num_key_value_heads", cfg.get("num_key_value_heads") or heads, source),
            head_dim=_int("head_dim", head_dim_raw, source) if head_dim_raw else hidden // heads,
            intermediate=intermediate,
            vocab=need("vocab_size"),
            experts=experts,
            active_experts=_int(
                "num_experts_per_tok", cfg.get("num_experts_per_tok", 1) or 1, source
            )
            if experts > 1
            else 1,
            tied_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            max_context=_int(
                "max_position_embeddings", cfg.get("max_position_embeddings", 8192), source
            ),
            qkv_bias=qwen2 or attention_bias,
            o_bias=attention_bias and not qwen2,
            qk_norm=model_type in _QK_NORM_TYPES,
        )
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.problem, source=source) from exc


#: HF model types whose attention hard-codes Q/K/V biases (transformers' Qwen2Attention).
_QKV_BIAS_TYPES = frozenset({"qwen2", "qwen2_moe"})
#: HF model types with per-head RMSNorm on queries and keys (Qwen3Attention.q_norm/k_norm).
_QK_NORM_TYPES = frozenset({"qwen3", "qwen3_moe"})


def _stem(source: str) -> str:
    """The folder a config file path names ("" for a source that is not a .json path)."""
    path = Path(source)
    return path.parent.name if path.suffix == ".json" else ""


def _int(key: str, value: object, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"must be an integer, got {value!r}", source=source)
    return value
