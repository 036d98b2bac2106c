"""The fast decode path: static-shape decode steps over the paged cache, CUDA-graph captured.

A step in which every scheduled sequence decodes one token (the steady state of serving) is
run by `FastDecoder` instead of the reference path (`llama.CausalLM.forward` with `attention`):

* **Static inputs.** Token ids, positions, cache slots and context lengths live in one
  persistent device buffer [4, max_batch] and the block tables in another, [W, max_batch]
  (W = max blocks per sequence; transposed so that the columns a step uses are one contiguous
  copy). A batch of B sequences is padded to the smallest captured size n >= B; the padding
  rows decode token 0 at position 0 into the KV cache's scratch block (`PagedKV.scratch_block`,
  owned by no sequence) with context length 1, and their results are dropped. The host fills
  pinned mirrors with a few list assignments (block-table rows are rewritten only when a
  sequence's table changed) and copies them with two non-blocking copies.
* **Fewer, fused operations** (`paged_decode.DecodeOps`): QKV and gate/up are one matmul each
  (the module weights become views of the fused matrices, so nothing is stored twice); the
  residual add is fused into the next RMSNorm; rotary embedding reads a precomputed cos/sin
  table by position and writes K/V into the cache in the same kernel; attention reads K/V in
  place through the block table (`triton_ops`), with no padded copy.
* **CUDA graphs.** On CUDA the whole step — embedding, layers, final norm, LM head, argmax —
  is captured once per batch size in `capture_sizes(max_batch)` on one private memory pool
  and replayed; prefill and mixed steps keep the reference path.

On CPU (or with `graphs=False`) the same step function runs eagerly with `TorchDecodeOps`:
that is what the tests compare with the reference path (fp32: logits within 1e-5, greedy
tokens identical). In bf16 the logits differ from the reference path's by rounding order
(fused matmuls, another attention kernel); `BF16_ERROR_RATIO` states the tolerance the GPU
check holds them to, against fp32 logits (`decode_oracle`).

FLOPs and bytes are unchanged: the engine still reports the cost model of the scheduled work.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias
from torch import Tensor, nn

from ..costmodel import ModelSpec
from . import triton_ops
from .attention import PagedKV
from .llama import RMS_EPS, ROPE_THETA, CausalLM, DecoderLayer
from .paged_decode import DecodeOps, TorchDecodeOps, rope_cache
from .scheduler import SchedulerOutput

__all__ = [
    "BF16_ERROR_FLOOR",
    "BF16_ERROR_RATIO",
    "FAST_DECODE_MODES",
    "FastDecoder",
    "build_fast_decoder",
    "capture_sizes",
    "unsupported_reason",
]

log = logging.getLogger("gpumetrics.worker")

#: --fast-decode values: auto = on for CUDA (when triton is there), off elsewhere.
FAST_DECODE_MODES = ("auto", "on", "off")
BF16_ERROR_RATIO = 1.5
"""bf16 tolerance: against fp32 logits of the same (upcast) weights, the fast path's error
may be at most BF16_ERROR_RATIO x the reference path's + BF16_ERROR_FLOOR (max and mean over
all logits). The two bf16 paths round in another order (fused matmuls, another attention
kernel), and on the seeded random 1B model that alone moves logits by ~0.02 on average and
~0.1 at most (measured on CPU with the torch ops), flipping a few near-tied greedy tokens:
a fixed tolerance on |fast − reference| would either pass anything or fail rounding."""
BF16_ERROR_FLOOR = 1e-3
_GRAPH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_PROGRAMS_PER_SM = 2
"""Context splits only while the grid would hold fewer than this many attention programs per
SM. On an H200 (132 SMs), 1B preset, batch 64 x 1024 (512 programs), one split ran 43.9 µs a
layer against two splits' 74.1 µs in one run (the merge pass and the partial results cost
more than the extra parallelism buys); the kernel-alone timing is noisy (one split 66.8 µs in
a second run), the whole decode step unchanged at 1.85 ms (BENCHMARKS.md)."""


def capture_sizes(max_batch: int) -> tuple[int, ...]:
    """Batch sizes to capture: powers of two below `max_batch` (up to 256), then it."""
    return tuple(sorted({*(s for s in _GRAPH_SIZES if s < max_batch), max_batch}))


def unsupported_reason(spec: ModelSpec, device: torch.device) -> str | None:
    """Why the fast path cannot run this model on this device, or None."""
    d = spec.head_dim
    if spec.is_moe:
        return "mixture-of-experts model"
    if d < 16 or d & (d - 1):
        return f"head_dim {d} is not a power of two >= 16"
    if device.type == "cuda" and not triton_ops.AVAILABLE:
        return "triton is not installed"
    return None


class FastDecoder:
    """Runs all-decode steps of `model` over `kv` (see the module docstring).

    `graphs` (default: on for CUDA) captures the steps; `ops` (default: Triton on CUDA,
    torch on CPU) picks the kernels. ValueError when the model or device is unsupported.
    """

    def __init__(
        self,
        model: CausalLM,
        kv: PagedKV,
        spec: ModelSpec,
        max_batch: int,
        block_size: int,
        max_blocks_per_seq: int,
        device: torch.device,
        *,
        graphs: bool | None = None,
        ops: DecodeOps | None = None,
    ) -> None:
        reason = unsupported_reason(spec, device)
        if reason is not None:
            raise ValueError(f"fast decode unavailable: {reason}")
        if kv.scratch_block is None:
            raise ValueError("fast decode needs a KV cache with a scratch block")
        cuda = device.type == "cuda"
        self.spec, self.kv, self.device = spec, kv, device
        self.block_size, self.width = block_size, max_blocks_per_seq
        self.ops: DecodeOps = ops or (triton_ops.TritonDecodeOps() if cuda else TorchDecodeOps())
        self.sizes = capture_sizes(max_batch)
        self.max_batch = self.sizes[-1]
        self.steps = 0
        """Decode steps run through this path."""
        self.last_logits: Tensor | None = None
        """Logits [B, V] of the last step (model dtype; valid until the next step)."""
        self._fuse(model)
        sms = torch.cuda.get_device_properties(device).multi_processor_count if cuda else 1
        self._splits = {
            n: triton_ops.splits_for(n, spec.kv_heads, _PROGRAMS_PER_SM * sms) for n in self.sizes
        }
        self._cos, self._sin = rope_cache(
            spec.max_context, spec.head_dim, ROPE_THETA, self._embed.dtype, device
        )
        self._scratch = kv.scratch_block
        pin = cuda
        self._host_meta = torch.zeros(4, self.max_batch, dtype=torch.long, pin_memory=pin)
        self._host_meta[2], self._host_meta[3] = self._scratch * block_size, 1  # all padding
        self._host_table = torch.full(
            (self.width, self.max_batch), self._scratch, dtype=torch.int32, pin_memory=pin
        )
        self._meta = self._host_meta.to(device)
        self._table = self._host_table.to(device)
        self._rows: list[tuple[list[int], int] | None] = [None] * self.max_batch
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, Tensor, Tensor]] = {}
        if graphs if graphs is not None else cuda:
            self._capture()

    # --- build ----------------------------------------------------------------------------

    def _fuse(self, model: CausalLM) -> None:
        """Concatenate QKV and gate/up once; the modules keep views of the fused matrices."""
        self._embed = model.model.embed_tokens.weight
        self._lm_head = model.lm_head.weight
        self._final_norm = model.model.norm.weight
        self._layers: list[tuple[Tensor, ...]] = []
        with torch.no_grad():
            for module in model.model.layers:
                layer: DecoderLayer = module  # type: ignore[assignment]
                attn, mlp = layer.self_attn, layer.mlp
                qkv = _fuse_linears(attn.q_proj, attn.k_proj, attn.v_proj)
                gate_up = _fuse_linears(mlp.gate_proj, mlp.up_proj)
                self._layers.append(
                    (
                        layer.input_layernorm.weight,
                        qkv,
                        attn.o_proj.weight,
                        layer.post_attention_layernorm.weight,
                        gate_up,
                        mlp.down_proj.weight,
                    )
                )

    def _capture(self) -> None:
        pool = None
        with torch.inference_mode():
            for n in reversed(self.sizes):
                self._step(n)  # warm-up: compiles the kernels outside the capture
                torch.cuda.synchronize(self.device)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=pool):
                    logits, tokens = self._step(n)
                pool = graph.pool()
                self._graphs[n] = (graph, logits, tokens)
        torch.cuda.synchronize(self.device)

    # --- the step ---------------------------------------------------------------------------

    def _step(self, n: int) -> tuple[Tensor, Tensor]:
        """The decode step over rows [0, n) of the static buffers: logits [n, V] and greedy
        tokens [n]. Graph-safe: fixed shapes, no host syncs."""
        ops, spec = self.ops, self.spec
        ids, positions, slots, context = self._meta[:, :n]
        table = self._table[:, :n].t()  # [n, W]
        splits, scale = self._splits[n], spec.head_dim**-0.5
        residual = F.embedding(ids, self._embed)
        h, _ = ops.rms_norm(residual, self._layers[0][0], RMS_EPS)
        for i, (_, qkv_w, o_w, post_w, gate_up_w, down_w) in enumerate(self._layers):
            k_cache, v_cache = self.kv.k[i], self.kv.v[i]
            qkv = F.linear(h, qkv_w)
            q = ops.rope_write(qkv, positions, slots, self._cos, self._sin, k_cache, v_cache,
                               spec.heads)  # fmt: skip
            o = ops.attention(q, k_cache, v_cache, table, context, scale, splits)
            h, residual = ops.rms_norm(F.linear(o, o_w), post_w, RMS_EPS, residual)
            mlp = F.linear(ops.silu_mul(F.linear(h, gate_up_w)), down_w)
            after = self._layers[i + 1][0] if i + 1 < len(self._layers) else self._final_norm
            h, residual = ops.rms_norm(mlp, after, RMS_EPS, residual)
        logits = F.linear(h, self._lm_head)
        return logits, logits.argmax(dim=-1)

    # --- the engine's side ------------------------------------------------------------------

    @property
    def description(self) -> str:
        """How steps run, e.g. "CUDA graphs of 1..64 sequences, triton kernels"."""
        how = (
            f"CUDA graphs of {self.sizes[0]}..{self.max_batch} sequences"
            if self._graphs
            else "eager"
        )
        return f"{how}, {self.ops.name} kernels"

    def applies(self, out: SchedulerOutput) -> bool:
        """Every entry decodes (and samples) one token, and the batch fits a captured size."""
        return 0 < len(out.entries) <= self.max_batch and all(
            e.decode and e.samples for e in out.entries
        )

    def decode(self, out: SchedulerOutput) -> list[int]:
        """Greedy next token of each entry of an all-decode step (`applies` must hold)."""
        entries = out.entries
        b = len(entries)
        n = next(s for s in self.sizes if s >= b)
        bs, pad = self.block_size, n - b
        starts = [e.start for e in entries]
        tables = [e.seq.block_table for e in entries]
        # Rows: token ids, positions, cache slots, context lengths; padding after row b.
        self._host_meta[:, :n] = torch.tensor(
            [
                *[e.seq.tokens[e.start] for e in entries], *[0] * pad,
                *starts, *[0] * pad,
                *[t[s // bs] * bs + s % bs for t, s in zip(tables, starts, strict=True)],
                *[self._scratch * bs] * pad,
                *[s + 1 for s in starts], *[1] * pad,
            ]
        ).view(4, n)  # fmt: skip
        width = self._write_tables(tables, b, n)
        self._meta.copy_(self._host_meta, non_blocking=True)
        self._table[:width].copy_(self._host_table[:width], non_blocking=True)
        with torch.inference_mode():
            if n in self._graphs:
                graph, logits, tokens = self._graphs[n]
                graph.replay()
            else:
                logits, tokens = self._step(n)
            self.last_logits = logits[:b]
            sampled: list[int] = tokens[:b].tolist()
        self.steps += 1
        return sampled

    def replay(self, n: int) -> Tensor:
        """Run the step for padded size `n` on the buffers as the last `decode` left them
        (the graph's replay on CUDA): the device work alone, for timing. Greedy tokens [n]."""
        with torch.inference_mode():
            if n in self._graphs:
                graph, _, tokens = self._graphs[n]
                graph.replay()
                return tokens
            return self._step(n)[1]

    def _write_tables(self, tables: Sequence[list[int]], b: int, n: int) -> int:
        """Block-table rows [0, n) into the host mirror (only what changed since the last
        step); returns the columns the step reads."""
        cached = self._rows
        cols: list[int] = []
        rows: list[int] = []
        values: list[int] = []
        width = 1
        for i, table in enumerate(tables):
            used = len(table)
            width = max(width, used)
            seen = cached[i]
            # The same list object only grows (a decode appends blocks in place); a new
            # list (admission, preemption) or another sequence in the row is rewritten.
            start = seen[1] if seen is not None and seen[0] is table and seen[1] <= used else 0
            if start < used:
                cols += range(start, used)
                rows += [i] * (used - start)
                values += table[start:]
            cached[i] = (table, used)
        for i in range(b, n):
            if cached[i] is not None:
                cols.append(0)
                rows.append(i)
                values.append(self._scratch)
                cached[i] = None
        if values:
            index = (torch.tensor(cols), torch.tensor(rows))
            self._host_table.index_put_(index, torch.tensor(values, dtype=torch.int32))
        return width


def build_fast_decoder(
    mode: str,
    model: CausalLM,
    kv: PagedKV,
    spec: ModelSpec,
    *,
    max_batch: int,
    kv_blocks: int,
    device: torch.device,
) -> FastDecoder | None:
    """The engine's fast decoder for `mode` (FAST_DECODE_MODES): None when off; `auto` is
    on for CUDA when the model and device allow it (else logged and off), `on` anywhere
    (CPU runs the same step eagerly) or a ValueError saying why not."""
    if mode not in FAST_DECODE_MODES:
        raise ValueError(f"fast_decode must be one of {FAST_DECODE_MODES}, got {mode!r}")
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    reason = unsupported_reason(spec, device)
    if reason is not None:
        if mode == "on":
            raise ValueError(f"fast decode unavailable: {reason}")
        log.warning("fast decode off: %s", reason)
        return None
    width = min(-(-spec.max_context // kv.block_size), kv_blocks)
    return FastDecoder(model, kv, spec, max_batch, kv.block_size, width, device)


def _fuse_linears(*linears: nn.Linear) -> Tensor:
    """One [Σ out, in] matrix; each module's weight becomes a view of its rows."""
    fused = torch.cat([m.weight for m in linears]).contiguous()
    start = 0
    for m in linears:
        rows = m.weight.shape[0]
        m.weight = nn.Parameter(fused[start : start + rows], requires_grad=False)
        start += rows
    return fused
