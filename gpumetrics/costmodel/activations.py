"""Peak activation memory of one forward step, and the reserve a KV budget leaves for it.

An engine sizes its KV pool after a profiling forward pass at its largest step (vLLM runs a
dummy batch of `max_num_batched_tokens` tokens, samples `max_num_seqs` logits, then captures
CUDA graphs) and keeps that peak out of the pool. Without a GPU to profile on, this module
counts the same peak analytically, per GPU of a tensor-parallel group of `tp`, in the
activation dtype (bytes per element `a`), for a step of T tokens of which S sample:

* the residual stream, live across the whole layer: T·D;
* attention, live at once: its normed input T·D, the fused QKV output T·(Hq+2Hkv)·d/tp and
  the attention output T·Hq·d/tp;
* the FFN, live at once: its normed input T·D, the fused gate/up output T·2·k·I/tp and the
  activation T·k·I/tp (k active experts, 1 for a dense model);
* the logits of the S sampling sequences in fp32 after the vocabulary all-gather: 4·S·V.

peak = a·T·(D + max(attention, FFN)) + 4·S·V bytes. Intermediates of one layer are freed
before the next (inference keeps no autograd graph), so one layer's peak is the step's. The
reserve is that peak for the largest prefill chunk, but at least `MIN_RESERVE_BYTES`, which
also covers CUDA graphs and the allocator's fragmentation (vLLM's profile of Llama-3-8B on
an H100 reports ~1-2 GiB for activations and graphs together).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..units import format_bytes
from .spec import ModelSpec, dtype_bytes

__all__ = [
    "DEFAULT_PREFILL_CHUNK",
    "DEFAULT_SAMPLING_SEQUENCES",
    "MIN_RESERVE_BYTES",
    "Reserve",
    "activation_bytes",
    "activation_reserve",
]

#: Tokens in the largest prefill chunk (vLLM's `max_num_batched_tokens` for serving, 8192).
DEFAULT_PREFILL_CHUNK = 8192
#: Sequences sampled in that step (vLLM's `max_num_seqs` default, 256).
DEFAULT_SAMPLING_SEQUENCES = 256
#: Floor of the reserve: 1 GiB, for CUDA graphs and allocator slack besides activations.
MIN_RESERVE_BYTES = float(1 << 30)
_LOGIT_BYTES = 4  # fp32 logits for sampling


def activation_bytes(
    model: ModelSpec,
    tokens: int,
    *,
    sampling_sequences: int = 1,
    act_dtype: str = "bf16",
    tp: int = 1,
) -> float:
    """Peak activation bytes on one GPU for a step of `tokens` tokens (module docstring)."""
    if tokens <= 0:
        raise ConfigError("tokens", f"must be > 0, got {tokens}")
    if sampling_sequences < 0:
        raise ConfigError("sampling_sequences", f"must be >= 0, got {sampling_sequences}")
    if tp <= 0:
        raise ConfigError("tp", f"must be > 0, got {tp}")
    m = model
    attention = m.hidden + ((m.heads + 2 * m.kv_heads) * m.head_dim + m.heads * m.head_dim) / tp
    ffn = m.hidden + 3 * m.active_experts * m.intermediate / tp
    per_token = m.hidden + max(attention, ffn)
    logits = _LOGIT_BYTES * sampling_sequences * m.vocab
    return dtype_bytes(act_dtype) * tokens * per_token + logits


@dataclass(frozen=True, slots=True)
class Reserve:
    """Bytes kept back per GPU from the KV budget, and how they were chosen."""

    bytes: float
    why: str
    """A short phrase for output, e.g. `activations of an 8,192-token prefill chunk`."""


def activation_reserve(
    model: ModelSpec,
    *,
    chunk: int = DEFAULT_PREFILL_CHUNK,
    sampling_sequences: int = DEFAULT_SAMPLING_SEQUENCES,
    act_dtype: str = "bf16",
    tp: int = 1,
) -> Reserve:
    """The default reserve: activations of a `chunk`-token step, at least 1 GiB."""
    peak = activation_bytes(
        model, chunk, sampling_sequences=sampling_sequences, act_dtype=act_dtype, tp=tp
    )
    what = f"activations of a prefill chunk of {chunk:,} tokens"
    if peak >= MIN_RESERVE_BYTES:
        return Reserve(peak, what)
    return Reserve(MIN_RESERVE_BYTES, f"at least 1 GiB; {what}: {format_bytes(peak)}")
