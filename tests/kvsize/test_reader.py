"""Trace files: the three formats, auto-detection, .gz, and malformed lines counted with
their line numbers (never silently skipped)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from gpumetrics.errors import ConfigError
from gpumetrics.kvsize import ReadReport, Trace, chain_hashes, concat, load_tokenizer, read_trace


def _write(path: Path, records: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def _read(path: Path, **kwargs: object) -> tuple[Trace, ReadReport]:
    report = ReadReport(str(path))
    return concat(read_trace(path, report, **kwargs)), report  # type: ignore[arg-type]


MOONCAKE_LINES = [
    {"timestamp": 0, "input_length": 600, "output_length": 5, "hash_ids": [0, 1]},
    {"timestamp": 3000, "input_length": 1100, "output_length": 9, "hash_ids": [0, 1, 2]},
]


def test_mooncake_lines(tmp_path: Path) -> None:
    trace, report = _read(_write(tmp_path / "t.jsonl", MOONCAKE_LINES))
    assert (report.format, report.block_size, report.requests) == ("mooncake", 512, 2)
    assert trace.block_ids.tolist() == [0, 1, 0, 1, 2]
    assert trace.blocks_per_request.tolist() == [2, 3]
    assert trace.input_lengths.tolist() == [600, 1100]
    assert trace.refs().tokens.tolist() == [512, 88, 512, 512, 76]
    assert trace.duration_s() == 3.0
    assert report.malformed_count == 0


def test_gzip_and_block_size_flag(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(json.dumps(r) for r in MOONCAKE_LINES) + "\n")
    trace, report = _read(path, fmt="mooncake", block_size=256)
    assert (report.block_size, trace.requests) == (256, 2)
    assert trace.refs().tokens.tolist() == [256, 256, 256, 256, 256]
    # 2 ids of 1024 tokens cannot belong to a 600-token prompt: both lines are malformed
    report = ReadReport(str(path))
    assert list(read_trace(path, report, block_size=1024)) == []
    assert report.malformed_count == 2
    assert "exceed input_length 600 (at most 1)" in report.malformed[0].reason


def test_malformed_lines_are_counted_with_line_numbers(tmp_path: Path) -> None:
    lines: list[object] = [
        MOONCAKE_LINES[0],
        "{not json",
        {"timestamp": 1, "input_length": 10, "output_length": 1, "hash_ids": ["a"]},
        "",
        {"timestamp": 2, "input_length": 10, "output_length": -1, "hash_ids": [3]},
        {"timestamp": True, "input_length": 10, "output_length": 1, "hash_ids": [3]},
        [1, 2],
        {"timestamp": 4, "input_length": 10, "output_length": 1, "hash_ids": [4], "block_size": 8},
        MOONCAKE_LINES[1],
    ]
    trace, report = _read(_write(tmp_path / "t.jsonl", lines))
    assert trace.requests == report.requests == 2
    assert report.lines == 9
    assert report.malformed_count == 6
    assert [m.line for m in report.malformed] == [2, 3, 5, 6, 7, 8]
    reasons = " | ".join(m.reason for m in report.malformed)
    for text in ("not JSON", "hash_ids", "output_length", "timestamp", "JSON object"):
        assert text in reasons
    assert "looks like gpumetrics" in report.malformed[-1].reason
    summary = report.malformed_summary()
    assert summary.startswith("6 malformed lines left out of ")
    assert "line 2: not JSON" in summary
    assert "and 1 more" in summary
    assert "\n" not in summary


def test_empty_file_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    report = ReadReport(str(path))
    assert list(read_trace(path, report)) == []
    assert report.requests == 0


def test_gpumetrics_format_takes_its_block_size(tmp_path: Path) -> None:
    lines = [
        {"timestamp": 0, "input_length": 40, "output_length": 1, "hash_ids": [5, 6],
         "block_size": 32, "conversation": "c1"},
        {"timestamp": 1, "input_length": 64, "output_length": 1, "hash_ids": [5, 6],
         "block_size": 32, "conversation": 7},
        {"timestamp": 2, "input_length": 64, "output_length": 1, "hash_ids": [5, 6],
         "block_size": 16},
        {"timestamp": 3, "input_length": 64, "output_length": 1, "hash_ids": [5],
         "block_size": 32, "conversation": [1]},
    ]  # fmt: skip
    trace, report = _read(_write(tmp_path / "g.jsonl", lines))
    assert (report.format, report.block_size, trace.block_size) == ("gpumetrics", 32, 32)
    assert trace.requests == 2
    assert [m.line for m in report.malformed] == [3, 4]
    assert "block_size 16 is not 32" in report.malformed[0].reason
    assert "conversation" in report.malformed[1].reason
    with pytest.raises(ConfigError, match="block-size"):
        list(read_trace(tmp_path / "g.jsonl", ReadReport("x"), block_size=0))
    _, flagged = _read(tmp_path / "g.jsonl", block_size=16)
    assert flagged.requests == 1  # only the 16-token line agrees with --block-size 16


def test_conversations_hash_token_ids_like_vllm(tmp_path: Path) -> None:
    tokens = list(range(40))
    lines = [
        {"prompt_token_ids": tokens, "output_length": 3, "timestamp": 10},
        {"prompt_token_ids": tokens[:20]},
        {"prompt_token_ids": [1, -2]},
    ]
    trace, report = _read(_write(tmp_path / "c.jsonl", lines), block_size=16)
    assert report.format == "conversations"
    assert trace.blocks_per_request.tolist() == [2, 1]  # full blocks only
    assert trace.block_ids.tolist() == [*chain_hashes(tokens, 16), chain_hashes(tokens, 16)[0]]
    assert trace.input_lengths.tolist() == [40, 20]
    assert report.malformed_count == 1


def test_text_needs_an_encoder_and_uses_it(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.jsonl", [{"prompt": "hello world, hello"}])
    report = ReadReport(str(path))
    assert list(read_trace(path, report)) == []
    assert report.malformed_count == 1
    assert "tokenizer" in report.malformed[0].reason

    def encode(text: str) -> list[int]:
        return list(text.encode())

    trace, report = _read(path, block_size=4, encode=encode)
    assert trace.block_ids.tolist() == chain_hashes(list(b"hello world, hello"), 4)


def test_tokenizer_json_through_the_tokenizers_library(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {"[UNK]": 0, "hello": 1, "world": 2}
    model = tokenizers.models.WordLevel(vocab, unk_token="[UNK]")
    tokenizer = tokenizers.Tokenizer(model)
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    encode = load_tokenizer(tmp_path / "tokenizer.json")
    assert encode("hello world hello") == [1, 2, 1]
    path = _write(tmp_path / "c.jsonl", [{"prompt": "hello world hello world"}])
    trace, _ = _read(path, block_size=2, encode=encode)
    assert trace.block_ids.tolist() == chain_hashes([1, 2, 1, 2], 2)
    with pytest.raises(ConfigError, match="cannot load"):
        load_tokenizer(path)


def test_unreadable_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        list(read_trace(tmp_path / "missing.jsonl", ReadReport("m")))
    with pytest.raises(ConfigError, match="unknown 'csv'"):
        list(read_trace(tmp_path / "missing.jsonl", ReadReport("m"), fmt="csv"))
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(ConfigError, match="failed"):
        list(read_trace(bad, ReadReport("b")))


def test_large_and_negative_ids_wrap_modulo_2_64(tmp_path: Path) -> None:
    lines = [
        {"timestamp": 0, "input_length": 3, "output_length": 0, "hash_ids": [-1]},
        {"timestamp": 0, "input_length": 3, "output_length": 0, "hash_ids": [2**64 - 1]},
        {"timestamp": 0, "input_length": 3, "output_length": 0, "hash_ids": [2**64 + 5]},
    ]
    trace, _ = _read(_write(tmp_path / "w.jsonl", lines))
    assert trace.block_ids.tolist() == [2**64 - 1, 2**64 - 1, 5]


def test_chunks_hold_whole_requests(tmp_path: Path) -> None:
    lines = [
        {"timestamp": i, "input_length": 1024, "output_length": 1, "hash_ids": [0, i]}
        for i in range(10)
    ]
    report = ReadReport("x")
    chunks = list(read_trace(_write(tmp_path / "c.jsonl", lines), report, chunk_requests=4))
    assert [c.requests for c in chunks] == [4, 4, 2]
    assert concat(chunks).block_ids.tolist() == [x for i in range(10) for x in (0, i)]
