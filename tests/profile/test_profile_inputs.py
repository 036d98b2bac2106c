"""Bad input gets a clear message and exit status 2, never a traceback; and how the roofs
are chosen for each kind of device."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gpumetrics.cli import cli
from gpumetrics.errors import ConfigError
from gpumetrics.hardware import GPUS
from gpumetrics.profile.measure import Calibration
from gpumetrics.profile.run import needs_calibration, resolve_roofs

CAL = Calibration("cpu", "fp32", 2e11, 5e10, 1024, 64 << 20, 3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "tpu"], "'tpu' is not one of 'cpu', 'cuda'"),
        (["--model", "no-such-model"], "unknown model 'no-such-model'"),
        (["--model", "mixtral-8x7b"], "mixture-of-experts"),
        (["--batch", "1,zero"], "'zero' is not an integer"),
        (["--context", "0"], "must be positive"),
        (["--peak-flops", "lots"], "is not a number"),
        (["--gpu", "h200"], "a --device cpu run has none"),
        (["--gpu", "no-such-gpu"], "unknown GPU 'no-such-gpu'"),
        (["--duration", "5"], "--duration cannot be used without --engine"),
        (["--engine", "http://127.0.0.1:9", "--batch", "4"], "--batch cannot be used with"),
        (["--engine", "ftp://engine"], "scheme must be http or https"),
        (["--engine", "http://127.0.0.1:9", "--gpus", "zero"], "is not a GPU index"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["profile", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_cuda_without_a_gpu_says_so() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = CliRunner().invoke(cli, ["profile", "--device", "cuda"])
    assert result.exit_code == 2
    assert "sees no CUDA device" in result.output
    assert "use --device cpu" in result.output


def test_a_gpu_with_a_table_row_uses_its_dense_datasheet_peaks() -> None:
    h200 = GPUS["h200"]
    roofs = resolve_roofs(h200, "bf16")
    assert roofs.reference.kind == "datasheet"
    assert roofs.reference.peak_flops == pytest.approx(989.4e12)
    assert roofs.reference.bandwidth == pytest.approx(4.8e12)
    assert roofs.reference.ridge == pytest.approx(206.125)
    assert roofs.achievable is None
    assert not needs_calibration(h200, None, None)


def test_calibrating_a_gpu_adds_achievable_roofs_beside_the_datasheet() -> None:
    cal = Calibration("cuda:0", "bf16", 780e12, 4.3e12, 8192, 1 << 30, 3)
    roofs = resolve_roofs(GPUS["h200"], "bf16", calibration=cal)
    assert roofs.reference.kind == "datasheet"
    assert roofs.achievable is not None
    assert roofs.achievable.kind == "achievable"
    assert roofs.achievable.peak_flops == 780e12
    assert roofs.achievable.bandwidth == 4.3e12


def test_user_peaks_override_the_datasheet() -> None:
    roofs = resolve_roofs(GPUS["h100-sxm"], "bf16", bandwidth=3.0e12)
    assert roofs.reference.kind == "user"
    assert roofs.reference.peak_flops == pytest.approx(989.4e12)
    assert roofs.reference.bandwidth == 3.0e12
    assert "bandwidth from the command line" in roofs.reference.source


def test_a_cpu_gets_measured_roofs_or_the_users() -> None:
    assert needs_calibration(None, None, None)
    assert needs_calibration(None, 1e12, None)
    assert not needs_calibration(None, 1e12, 1e11)
    measured = resolve_roofs(None, "fp32", calibration=CAL)
    assert measured.reference.kind == "achievable"
    assert measured.reference.ridge == pytest.approx(4.0)
    assert measured.achievable is None
    mixed = resolve_roofs(None, "fp32", calibration=CAL, peak_flops=1e11)
    assert (mixed.reference.kind, mixed.reference.peak_flops) == ("user", 1e11)
    assert mixed.reference.bandwidth == CAL.copy_bandwidth
    user = resolve_roofs(None, "fp32", peak_flops=1e11, bandwidth=1e10)
    assert (user.reference.kind, user.reference.ridge) == ("user", 10.0)
    with pytest.raises(ConfigError, match="no spec-table row"):
        resolve_roofs(None, "fp32")
    with pytest.raises(ConfigError, match="has no fp32 peak"):
        resolve_roofs(GPUS["b200"], "fp32")
