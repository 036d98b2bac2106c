"""Trace files -> chunks of whole requests. The one module of kvsize that touches files.

JSONL, optionally gzip-compressed (`.gz`). Each line is parsed by `records.parse`; a line
that is not JSON or not a valid record is counted in the `ReadReport` with its line number
and reason, and left out of the trace: never silently. Blank lines are ignored. With
`fmt="auto"` the first record names the format (`records.detect`) and later lines must match
it. Block size: `--block-size`, else the records' own (`gpumetrics` format), else 512 for
Mooncake traces and 16 (vLLM's default) for conversations.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

import numpy as np

from ..errors import ConfigError
from ..extras import require
from .hashing import MASK64
from .records import FORMATS, Encode, RecordError, detect, parse
from .trace import Request, Trace

__all__ = ["DEFAULT_BLOCK_SIZE", "Malformed", "ReadReport", "load_tokenizer", "read_trace"]

DEFAULT_BLOCK_SIZE: Final = {"mooncake": 512, "gpumetrics": 512, "conversations": 16}
_KEEP_MALFORMED: Final = 20


@dataclass(frozen=True, slots=True)
class Malformed:
    """A line left out of the trace and why."""

    line: int
    reason: str


@dataclass(slots=True)
class ReadReport:
    """What reading a trace found; filled in while the chunks stream."""

    path: str
    format: str | None = None
    block_size: int | None = None
    lines: int = 0
    requests: int = 0
    malformed_count: int = 0
    malformed: list[Malformed] = field(default_factory=list)
    """The first 20 malformed lines (all are counted in `malformed_count`)."""

    def add_malformed(self, line: int, reason: str) -> None:
        self.malformed_count += 1
        if len(self.malformed) < _KEEP_MALFORMED:
            self.malformed.append(Malformed(line, reason))

    def malformed_summary(self) -> str:
        """One line: '3 malformed lines left out: line 4: ...; line 9: ...'."""
        shown = "; ".join(f"line {m.line}: {m.reason}" for m in self.malformed[:5])
        more = self.malformed_count - min(len(self.malformed), 5)
        tail = f"; and {more} more" if more > 0 else ""
        noun = "line" if self.malformed_count == 1 else "lines"
        return f"{self.malformed_count} malformed {noun} left out of {self.path}: {shown}{tail}"


def load_tokenizer(path: Path) -> Encode:
    """A Hugging Face `tokenizer.json` through the `tokenizers` library (special tokens added
    as an engine adds them)."""
    tokenizers = require("kvsize", "reading tokenizer.json (--tokenizer)", "tokenizers")
    try:
        tokenizer = tokenizers.Tokenizer.from_file(str(path))
    except Exception as exc:  # the library raises its own Exception subclasses
        raise ConfigError("tokenizer", f"cannot load {path}: {exc}") from None

    def encode(text: str) -> list[int]:
        return list(tokenizer.encode(text).ids)

    return encode


def _open(path: Path) -> IO[str]:
    try:
        if path.suffix == ".gz":
            return gzip.open(path, "rt", encoding="utf-8", errors="replace")
        return path.open(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError("trace", f"cannot read {path}: {exc.strerror or exc}") from None


def read_trace(
    path: Path,
    report: ReadReport,
    *,
    fmt: str = "auto",
    block_size: int | None = None,
    encode: Encode | None = None,
    chunk_requests: int = 16_384,
) -> Iterator[Trace]:
    """Chunks of up to `chunk_requests` whole requests from `path`; `report` is filled in."""
    if fmt != "auto" and fmt not in FORMATS:
        raise ConfigError("format", f"unknown {fmt!r}; known: auto, {', '.join(FORMATS)}")
    if block_size is not None and block_size <= 0:
        raise ConfigError("block-size", f"must be > 0, got {block_size}")
    chosen = None if fmt == "auto" else fmt
    buffer = _Buffer()
    try:
        with _open(path) as lines:
            for number, line in enumerate(lines, start=1):
                report.lines = number
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except (json.JSONDecodeError, RecursionError) as exc:
                    report.add_malformed(number, f"not JSON ({getattr(exc, 'msg', exc)})")
                    continue
                if chosen is None:
                    found = detect(record) if isinstance(record, dict) else None
                    if found is None:
                        report.add_malformed(number, "no hash_ids, prompt or prompt_token_ids")
                        continue
                    chosen = found
                if report.format is None:
                    report.format = chosen
                    report.block_size = block_size or DEFAULT_BLOCK_SIZE[chosen]
                size = report.block_size
                assert size is not None
                try:
                    request, own = parse(record, chosen, size, encode)
                except RecordError as exc:
                    report.add_malformed(number, str(exc))
                    continue
                if own is not None and own != size:
                    if buffer.requests or report.requests or block_size is not None:
                        given = "--block-size" if block_size is not None else "earlier lines"
                        report.add_malformed(number, f"block_size {own} is not {size} ({given})")
                        continue
                    report.block_size = size = own
                buffer.add(request)
                report.requests += 1
                if buffer.requests >= chunk_requests:
                    yield buffer.take(size)
    except (OSError, EOFError) as exc:  # a truncated .gz or a file that vanished mid-read
        raise ConfigError("trace", f"reading {path} failed: {exc}") from None
    if buffer.requests:
        assert report.block_size is not None
        yield buffer.take(report.block_size)


class _Buffer:
    """Requests gathered as Python lists until a chunk is full."""

    __slots__ = ("ids", "inputs", "lengths", "outputs", "requests", "stamps")

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.lengths: list[int] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self.stamps: list[float] = []
        self.requests = 0

    def _reset(self) -> None:
        self.ids = []
        self.lengths = []
        self.inputs = []
        self.outputs = []
        self.stamps = []
        self.requests = 0

    def add(self, request: Request) -> None:
        self.ids.extend(request.block_ids)
        self.lengths.append(len(request.block_ids))
        self.inputs.append(request.input_length)
        self.outputs.append(request.output_length)
        self.stamps.append(request.timestamp_ms)
        self.requests += 1

    def take(self, block_size: int) -> Trace:
        try:  # non-negative 64-bit ids (the usual case), then negative ones (signed hashes)
            ids = np.array(self.ids, dtype=np.uint64)
        except OverflowError:
            try:
                ids = np.array(self.ids, dtype=np.int64).view(np.uint64)
            except OverflowError:  # both signs, or beyond 64 bits: reduce modulo 2^64
                ids = np.array([x & MASK64 for x in self.ids], dtype=np.uint64)
        chunk = Trace(
            ids,
            np.array(self.lengths, dtype=np.int64),
            np.array(self.inputs, dtype=np.int64),
            np.array(self.outputs, dtype=np.int64),
            np.array(self.stamps, dtype=np.float64),
            block_size,
        )
        self._reset()
        return chunk
