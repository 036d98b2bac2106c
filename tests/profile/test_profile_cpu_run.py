"""`gpumetrics profile` end to end on the CPU with the tiny model: every output file checked
(JSON against the schema, CSV, PNG dimensions, HTML structure), and skipped cells kept."""

from __future__ import annotations

import csv
import html
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch", reason="the sweep runs the worker: pip install 'gpumetrics[worker]'")
jsonschema = pytest.importorskip("jsonschema")
pytest.importorskip("matplotlib", reason="plots need the plot extra")

from click.testing import CliRunner, Result  # noqa: E402
from matplotlib.image import imread  # noqa: E402

from gpumetrics.cli import cli  # noqa: E402
from gpumetrics.profile.plot import DPI, SIZE_INCHES  # noqa: E402
from gpumetrics.profile.report_csv import CSV_COLUMNS  # noqa: E402
from gpumetrics.profile.schema import JSON_SCHEMA  # noqa: E402
from gpumetrics.profile.table import LEGEND  # noqa: E402

SWEEP = ["profile", "--device", "cpu", "--model", "tiny", "--batch", "1,4", "--context", "64,128"]
FAST = ["--steps", "4", "--warmup", "1"]


class _Page(HTMLParser):
    """Collects tags, table cells and image sources; remembers external references."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []
        self.external: list[str] = []
        self.cells: list[str] = []
        self._in_td = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("src") or "")
        for key in ("src", "href"):
            ref = values.get(key) or ""
            if ref and not ref.startswith("data:"):
                self.external.append(ref)
        self._in_td = tag == "td"

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in_td = False

    def handle_data(self, data: str) -> None:
        if self._in_td:
            self.cells.append(data)


def _run(args: list[str]) -> Result:
    result = CliRunner().invoke(cli, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    out = tmp_path_factory.mktemp("profile")
    files = ["--json", "r.json", "--csv", "r.csv", "--plot", "r.png", "--html", "r.html"]
    result = _run([*SWEEP, *FAST, "--chunk", "64", *[str(out / f) if f.startswith("r.") else f
                                                     for f in files]])  # fmt: skip
    return result, out


def test_the_run_prints_a_table_and_a_verdict(outputs: tuple[Result, Path]) -> None:
    result, _ = outputs
    assert result.exit_code == 0, result.output
    assert "gpumetrics profile: one row per cell" in result.stdout
    assert "b4/c128" in result.stdout
    assert "Verdict" in result.stdout
    assert "decode at context 64:" in result.stdout
    assert "calibrated automatically" in result.stdout  # a CPU has no datasheet row
    assert "not available: the sweep runs on the CPU" in result.stdout


def test_json_is_valid_against_the_schema(outputs: tuple[Result, Path]) -> None:
    _, out = outputs
    report = json.loads((out / "r.json").read_text())
    jsonschema.Draft202012Validator.check_schema(JSON_SCHEMA)
    jsonschema.validate(report, JSON_SCHEMA, format_checker=jsonschema.FormatChecker())
    assert report["schema"] == "gpumetrics.profile/v1"
    assert report["mode"] == "sweep"
    assert report["device"]["kind"] == "cpu"
    assert report["roofs"]["reference"]["kind"] == "achievable"
    assert report["calibration"]["matmul_flops"] > 0
    assert report["gpu_counters"]["available"] is False
    cells = report["cells"]
    assert [c["label"] for c in cells] == [
        "b1/c64",
        "b4/c64",
        "b1/c128",
        "b4/c128",
        "prefill k64/c64",
        "prefill k64/c128",
    ]
    for cell in cells:
        assert cell["status"] == "ok"
        assert cell["kv_fits"] is True
        assert cell["steps"] == 4
        assert cell["step_seconds_p95"] >= cell["step_seconds_p50"] > 0
        assert cell["gpu"] is None
        ratio = cell["achieved_flops_per_second"] / cell["achieved_bytes_per_second"]
        assert cell["arithmetic_intensity"] == pytest.approx(ratio)
    decode = {(c["batch"], c["context"]): c for c in cells if c["phase"] == "decode"}
    # Decode tokens/s is batch / median step time: batch 4 makes 4 tokens a step.
    c = decode[(4, 128)]
    assert c["tokens_per_second"] == pytest.approx(4 / c["step_seconds_p50"])
    assert c["achieved_flops_per_second"] == pytest.approx(
        c["flops_per_step"] / c["step_seconds_p50"]
    )
    assert c["mean_sequences"] == 4
    assert 128 <= c["mean_context"] <= 128 + 4
    assert {g["context"] for g in report["groups"] if g["phase"] == "decode"} == {64, 128}


def test_csv_has_a_header_and_one_row_per_cell(outputs: tuple[Result, Path]) -> None:
    _, out = outputs
    with (out / "r.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 1 + 6
    parsed = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert parsed[0]["label"] == "b1/c64"
    assert float(parsed[0]["step_seconds_p50"]) > 0
    assert parsed[0]["gpu_tensor_active"] == ""


def test_png_has_the_documented_size(outputs: tuple[Result, Path]) -> None:
    _, out = outputs
    image: Any = imread(out / "r.png")
    height, width = image.shape[:2]
    assert (width, height) == (int(SIZE_INCHES[0] * DPI), int(SIZE_INCHES[1] * DPI))
    assert image.std() > 0.05  # not a blank canvas


def test_html_is_one_self_contained_page(outputs: tuple[Result, Path]) -> None:
    _, out = outputs
    page = _Page()
    page.feed((out / "r.html").read_text())
    assert page.tags.count("table") == 1
    assert "b4/c128" in page.cells
    assert len(page.images) == 2  # roofline and throughput
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert page.external == []
    assert "script" not in page.tags
    assert "link" not in page.tags
    # The terminal's column legend, word for word.
    assert LEGEND in html.unescape((out / "r.html").read_text())
    assert "largest fit: the largest swept batch" in LEGEND


def test_the_terminal_prints_the_legend(outputs: tuple[Result, Path]) -> None:
    result, _ = outputs
    assert "% roof: that over the measured step" in result.stdout


def test_cells_that_do_not_fit_are_skipped_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    result = _run([*SWEEP, *FAST, "--kv-blocks", "16", "--peak-flops", "50G",
                   "--hbm-bandwidth", "10G", "--json", str(path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(path.read_text())
    jsonschema.validate(report, JSON_SCHEMA)
    status = {c["label"]: c["status"] for c in report["cells"]}
    assert status == {"b1/c64": "ok", "b4/c64": "skipped", "b1/c128": "ok", "b4/c128": "skipped"}
    skipped = next(c for c in report["cells"] if c["label"] == "b4/c64")
    assert skipped["skip_reason"].startswith("KV blocks insufficient")
    assert skipped["kv_fits"] is False
    assert "largest-fit" in next(c for c in report["cells"] if c["label"] == "b1/c64")["marks"]
    assert report["roofs"]["reference"] == {
        "kind": "user",
        "peak_flops": 50e9,
        "bandwidth": 10e9,
        "ridge": 5.0,
        "source": "--peak-flops, --hbm-bandwidth",
    }
    assert report["calibration"] is None  # both peaks given: nothing to measure
    assert "skipped" in result.stdout
    assert "2 cell(s) skipped" in result.stdout
    # The verdict's batch bound agrees with the marks: b1 fits, b4 does not, so 1 <= bound < 4.
    for group in report["groups"]:
        if group["phase"] == "decode":
            assert 1 <= group["max_batch_fits"] < 4, group
            line = next(
                v
                for v in report["verdict"]
                if v.startswith(f"decode at context {group['context']}:")
            )
            assert f"holds batch ≤ {group['max_batch_fits']} at this context" in line


def test_a_sweep_where_nothing_fits_exits_1_and_still_writes(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    result = _run([*SWEEP, *FAST, "--kv-blocks", "1", "--peak-flops", "50G",
                   "--hbm-bandwidth", "10G", "--json", str(path)])  # fmt: skip
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    report = json.loads(path.read_text())
    assert {c["status"] for c in report["cells"]} == {"skipped"}
