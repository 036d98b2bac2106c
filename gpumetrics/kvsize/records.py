"""One JSONL record of a trace -> one request, or the reason it is malformed.

Formats (docs/kv-size.md):

* `mooncake` (kvcache-ai/Mooncake `FAST25-release/traces/`): `timestamp` (ms), `input_length`
  and `output_length` (tokens), `hash_ids` (block ids in prefix order, 512 tokens a block
  unless `--block-size` says otherwise).
* `gpumetrics` (what our worker and hooks record): Mooncake's fields plus `block_size`, the
  same on every line, and an optional `conversation` (a string or integer id).
* `conversations`: one request per line with its prompt as `prompt` (text) or
  `prompt_token_ids` (token ids); optional `timestamp` (ms), `output_length` and
  `conversation`. Prompts are cut into blocks and hashed as vLLM does (`hashing.chain_hashes`:
  full blocks only), text through the tokenizer given.

`detect` names the format of a first record; the reader holds every later line to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from .hashing import chain_hashes
from .trace import Request

__all__ = ["FORMATS", "Encode", "RecordError", "detect", "parse"]

FORMATS: Final = ("mooncake", "gpumetrics", "conversations")

Encode = Callable[[str], Sequence[int]]
"""Text -> token ids (a tokenizer's encode)."""


_INT: Final = frozenset({int})


class RecordError(ValueError):
    """Why one record is malformed (the reader adds the line number)."""


def detect(record: Mapping[str, object]) -> str | None:
    """The format a record belongs to, or None when it matches none."""
    if "hash_ids" in record:
        return "gpumetrics" if "block_size" in record else "mooncake"
    if "prompt" in record or "prompt_token_ids" in record:
        return "conversations"
    return None


def _int(
    record: Mapping[str, object], key: str, *, minimum: int, default: int | None = None
) -> int:
    value = record.get(key, default)
    if value is None:
        raise RecordError(f"missing {key!r}")
    if type(value) is not int:
        raise RecordError(f"{key!r} must be an integer, got {value!r:.40}")
    if value < minimum:
        raise RecordError(f"{key!r} must be >= {minimum}, got {value}")
    return value


def _timestamp(record: Mapping[str, object], *, required: bool) -> float:
    value = record.get("timestamp")
    if value is None:
        if required:
            raise RecordError("missing 'timestamp'")
        return 0.0
    if type(value) not in (int, float) or math.isnan(value):  # type: ignore[arg-type]
        raise RecordError(f"'timestamp' must be a number of ms, got {value!r:.40}")
    return float(value)  # type: ignore[arg-type]


def _conversation(record: Mapping[str, object]) -> None:
    value = record.get("conversation")
    if value is not None and type(value) not in (str, int):
        raise RecordError(f"'conversation' must be a string or integer, got {value!r:.40}")


def parse(
    record: object, fmt: str, block_size: int, encode: Encode | None = None
) -> tuple[Request, int | None]:
    """(request, the record's own block_size or None); RecordError if malformed."""
    if not isinstance(record, dict):
        raise RecordError(f"a record must be a JSON object, got {type(record).__name__}")
    found = detect(record)
    if found != fmt:
        raise RecordError(f"not a {fmt} record" + (f" (looks like {found})" if found else ""))
    if fmt == "conversations":
        return _conversation_request(record, block_size, encode), None
    own = _int(record, "block_size", minimum=1) if fmt == "gpumetrics" else None
    size = own if own is not None else block_size
    prompt = _int(record, "input_length", minimum=1)
    ids = record["hash_ids"]
    if not isinstance(ids, list) or not {*map(type, ids)} <= _INT:  # no bools, no floats
        raise RecordError("'hash_ids' must be a list of integers")
    if len(ids) * size - size >= prompt:
        raise RecordError(
            f"{len(ids)} hash_ids of {size} tokens exceed input_length {prompt} "
            f"(at most {-(-prompt // size)})"
        )
    _conversation(record)
    request = Request(
        tuple(ids),
        prompt,
        _int(record, "output_length", minimum=0),
        _timestamp(record, required=True),
    )
    return request, own


def _conversation_request(
    record: Mapping[str, object], block_size: int, encode: Encode | None
) -> Request:
    if "prompt_token_ids" in record:
        tokens = record["prompt_token_ids"]
        if not isinstance(tokens, list) or any(
            type(x) is not int or not 0 <= x < 1 << 63 for x in tokens
        ):
            raise RecordError("'prompt_token_ids' must be a list of non-negative integers")
    else:
        text = record["prompt"]
        if not isinstance(text, str):
            raise RecordError(f"'prompt' must be a string, got {type(text).__name__}")
        if encode is None:
            raise RecordError("a text prompt needs a tokenizer")
        tokens = list(encode(text))
    if not tokens:
        raise RecordError("empty prompt")
    _conversation(record)
    return Request(
        tuple(chain_hashes(tokens, block_size)),
        len(tokens),
        _int(record, "output_length", minimum=0, default=0),
        _timestamp(record, required=False),
    )
