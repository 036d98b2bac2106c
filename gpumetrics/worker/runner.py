"""The torch side of a step: the model and its paged KV tensors, run over what was scheduled.

`ModelRunner.run(out)` turns a `SchedulerOutput` into one flat batch (each entry's tokens
[start, context), their positions, the block tables), runs the model over the paged cache and
returns the greedy next token of every entry that samples, in order. The engine loop and the
scheduler never touch torch; this module, `llama` and `attention` are where torch lives.

The attention path is chosen once (`auto`: sdpa, the fused batched path). If the fused path
fails on the first step, the runner falls back to the portable eager path for good and says so
in `attention_path`. Decode-only steps go through the CUDA-graph `FastDecoder` when one is
built (`fast_decode`: auto = on for CUDA); every other step takes the reference path above.
"""

from __future__ import annotations

import logging

import torch

from ..costmodel import ModelSpec
from .attention import PagedKV, build_metadata, eager_attention, resolve_path, sdpa_attention
from .fast_decode import build_fast_decoder
from .llama import build_model
from .scheduler import SchedulerOutput

__all__ = ["DTYPES", "ModelRunner", "check_device"]

log = logging.getLogger("gpumetrics.worker")

#: The weight / KV dtypes the worker runs, by the names the cost model uses.
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

_Span = tuple[int, int, list[int]]
"""(start, new tokens, block table) of one scheduled sequence."""


def check_device(device: str) -> torch.device:
    """The torch device for `cpu` or `cuda[:N]`; ValueError with a hint when it is unusable."""
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r} (use cpu or cuda)") from exc
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r} (use cpu or cuda)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"{device!r} asked for, but torch {torch.__version__} sees no CUDA device "
            f"(a CPU-only build, or no GPU/driver here); use --device cpu"
        )
    return dev


class ModelRunner:
    """A seeded random `spec` model on `device` with a KV pool of `kv_blocks` blocks of
    `block_size` tokens, weights and KV in `dtype` (fp32 | bf16 | fp16).

    Raises ValueError for an unknown dtype, an unusable device or attention path, or a model
    the worker cannot build (mixture-of-experts).
    """

    def __init__(
        self,
        spec: ModelSpec,
        *,
        device: str = "cpu",
        dtype: str = "fp32",
        kv_blocks: int = 128,
        block_size: int = 16,
        attention: str = "auto",
        fast_decode: str = "off",
        max_batch: int = 16,
        seed: int = 0,
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        self.spec, self.dtype, self.block_size = spec, dtype, block_size
        self.device = check_device(device)
        self.model = build_model(spec, seed=seed, device=self.device, dtype=DTYPES[dtype])
        self.kv = PagedKV.allocate(
            spec.layers,
            kv_blocks,
            block_size,
            spec.kv_heads,
            spec.head_dim,
            dtype=DTYPES[dtype],
            device=self.device,
        )
        self._attention_path, self._attend = resolve_path(attention)
        self._path_checked = False
        self.fast = build_fast_decoder(
            fast_decode, self.model, self.kv, spec,
            max_batch=max_batch, kv_blocks=kv_blocks, device=self.device,
        )  # fmt: skip

    @property
    def attention_path(self) -> str:
        """The attention path the steps use (`eager`, `sdpa`, or a fallback note), prefixed
        `fast-decode+` once a decode step has run through the fast decoder."""
        if self.fast is not None and self.fast.steps:
            return f"fast-decode+{self._attention_path}"
        return self._attention_path

    def run(self, out: SchedulerOutput) -> list[int]:
        """Run the model over the step's tokens; greedy next tokens of the sampling entries."""
        if self.fast is not None and self.fast.applies(out):
            return self.fast.decode(out)
        with torch.inference_mode():
            ids, positions, spans, rows = self._inputs(out)
            logits = self._run_model(ids, positions, spans, rows)
            sampled: list[int] = logits.argmax(dim=-1).tolist()
        return sampled

    def _inputs(
        self, out: SchedulerOutput
    ) -> tuple[torch.Tensor, torch.Tensor, list[_Span], torch.Tensor]:
        """The flat batch: token ids, their positions, each entry's span, the sampling rows."""
        ids: list[int] = []
        positions: list[int] = []
        rows: list[int] = []
        for e in out.entries:
            ids += e.seq.tokens[e.start : e.context]
            positions += range(e.start, e.context)
            if e.samples:
                rows.append(len(ids) - 1)
        spans = [(e.start, e.new_tokens, e.seq.block_table) for e in out.entries]
        dev = self.device
        return (
            torch.tensor(ids, dtype=torch.long, device=dev),
            torch.tensor(positions, dtype=torch.long, device=dev),
            spans,
            torch.tensor(rows, dtype=torch.long, device=dev),
        )

    def _run_model(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        spans: list[_Span],
        rows: torch.Tensor,
    ) -> torch.Tensor:
        """The forward pass; if the fused path fails on the first step, fall back to the
        portable one for good (and say so in `attention_path`)."""
        batched = self._attend is sdpa_attention
        meta = build_metadata(spans, self.block_size, self.device, batched=batched)
        try:
            logits: torch.Tensor = self.model(ids, positions, self.kv, meta, self._attend, rows)
        except RuntimeError as exc:
            if self._path_checked or not batched:
                raise
            log.warning("attention path %s failed (%s); using eager", self._attention_path, exc)
            self._attention_path = f"eager ({self._attention_path} failed: {exc})"
            self._attend = eager_attention
            return self._run_model(ids, positions, spans, rows)
        self._path_checked = True
        return logits
