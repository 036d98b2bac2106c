"""Alerts on GPUs, their interconnect, and the exporter itself, each with its runbook."""

from __future__ import annotations

from ...catalog import gpu as g
from ...catalog import health as x
from .model import DEFAULT_CONFIG, Alert, RuleConfig, Runbook, Severity
from .promql import increase, rate, sel

__all__ = ["exporter_alerts", "gpu_alerts"]

_GPU_WHO = "GPU {{ $labels.gpu }} ({{ $labels.gpu_model }}) on {{ $labels.instance }}"
_ONE = 'instance="<instance>", gpu="<gpu>"'
_NODE = 'instance="<instance>"'


def _nvlink(_: RuleConfig) -> Alert:
    return Alert(
        name="GPUNVLinkErrors",
        expr=(
            f"{increase(g.NVLINK_ERRORS, '10m')} > 0 or {increase(g.NVLINK_DL_ERRORS, '10m')} > 0"
        ),
        severity=Severity.WARNING,
        summary="NVLink errors are increasing",
        description=(
            f"{_GPU_WHO} counted {{{{ $value | humanize }}}} NVLink "
            '"{{ $labels.error }}" errors in the last 10 minutes.'
        ),
        runbook=Runbook(
            dashboard="GPU node",
            meaning=(
                "The NVLink data link detected errors. CRC errors are retried (replay); "
                "recovery errors mean a link retrained; ECC errors hit the link's buffers. "
                "A rising count degrades collective bandwidth (tensor-parallel all-reduce) and "
                "can precede a link going down. Both per-GPU families count: "
                f"{g.NVLINK_ERRORS.name} (driver totals) and {g.NVLINK_DL_ERRORS.name} "
                "(data-link errors summed over links, present at 0 from the start)."
            ),
            causes=(
                "A marginal NVLink connection, bridge or NVSwitch port.",
                "Thermal stress on the baseboard.",
                "Firmware or driver issues after an update.",
            ),
            checks=(
                ("Data-link errors by kind", increase(g.NVLINK_DL_ERRORS, "1h", _ONE)),
                (
                    "Links up, of links",
                    f"{sel(g.NVLINK_LINKS_UP, _ONE)} / {sel(g.NVLINK_LINKS, _ONE)}",
                ),
                ("NVLink throughput", rate(g.NVLINK_DATA_BYTES, "5m", _ONE)),
                (
                    "Errors per link, to find the link (serve --nvlink-per-link)",
                    rate(g.NVLINK_LINK_ERRORS, "10m", _ONE),
                ),
                ("XID errors on the node", increase(g.GPU_XID_ERRORS, "1h", _NODE)),
            ),
            actions=(
                "Check `nvidia-smi nvlink -e -i <gpu>` and `nvidia-smi nvlink -s` on the node.",
                "To find the link, restart the exporter with --nvlink-per-link (or read "
                "`nvidia-smi nvlink -e -i <gpu>`). If one link keeps counting recovery or replay "
                "errors, drain the node and open a hardware ticket naming GPU, link and counts.",
            ),
        ),
    )


def _xid(_: RuleConfig) -> Alert:
    return Alert(
        name="GPUXidErrors",
        expr=f"{increase(g.GPU_XID_ERRORS, '10m')} > 0",
        severity=Severity.WARNING,
        summary="The driver reported XID errors",
        description=f"{_GPU_WHO} reported XID {{{{ $labels.xid }}}} in the last 10 minutes.",
        runbook=Runbook(
            dashboard="GPU node",
            meaning=(
                "XIDs are error events of the NVIDIA driver. Some come from the application "
                "(13 graphics engine exception, 31 memory page fault, 43 stopped channel), "
                "others from the hardware (48 double-bit ECC, 63/64 row remapping, 74 NVLink, "
                "79 fell off the bus, 94/95 contained/uncontained ECC, 119/120 GSP)."
            ),
            causes=(
                "Application bugs (out-of-bounds access, killed process) for 13, 31, 43.",
                "Memory errors (48, 63, 64, 94, 95), interconnect (74), bus or power (79).",
            ),
            checks=(
                ("XIDs by code", increase(g.GPU_XID_ERRORS, "1h", _ONE)),
                (
                    "Uncorrected ECC errors",
                    increase(g.GPU_ECC_ERRORS, "1h", f'{_ONE}, type="uncorrected"'),
                ),
                ("Row remap pending or failed", sel(g.GPU_ROW_REMAP_PENDING, _ONE)),
                ("GPU still answering", sel(g.GPU_UP, _ONE)),
            ),
            actions=(
                "Look the code up in NVIDIA's XID catalogue and read `dmesg | grep -i xid` on "
                "the node for the process and details.",
                "Application XIDs: fix or restart the workload. Hardware XIDs (48, 79, 94/95 "
                "repeating, row remap failed): drain the node, reset the GPU, and open a "
                "hardware ticket if it recurs.",
            ),
        ),
    )


def _throttled(c: RuleConfig) -> Alert:
    matcher = 'reason=~"' + "|".join(c.throttle_reasons) + '"'
    active = f"avg_over_time({sel(g.GPU_THROTTLE_ACTIVE, matcher)}[10m])"
    return Alert(
        name="GPUThermalOrPowerThrottling",
        expr=f"{active} > {c.throttle_share:g}",
        for_="5m",
        severity=Severity.WARNING,
        summary="GPU clocks held down by heat or power delivery",
        description=(
            f"{_GPU_WHO} was throttled by {{{{ $labels.reason }}}} "
            "{{ $value | humanizePercentage }} of the last 10 minutes."
        ),
        runbook=Runbook(
            dashboard="GPU node",
            meaning=(
                "NVML reports clock-event reasons that hold the clocks below what the load "
                "asks for. Thermal slowdowns (software or hardware) and hardware power "
                "slowdowns (power brake, hw_slowdown) cut throughput of every engine on the "
                "GPU. The power cap (sw_power_cap) is not included: a busy GPU sits at it."
            ),
            causes=(
                "Cooling: failed fans, blocked airflow, high inlet temperature, liquid cooling "
                "faults.",
                "Power delivery: PSU failure or a rack power brake signal.",
            ),
            checks=(
                ("Temperatures", sel(g.GPU_TEMPERATURE, _ONE)),
                ("SM clock vs its maximum", sel(g.GPU_CLOCK, f'{_ONE}, clock="sm"')),
                ("Power draw vs limit", sel(g.GPU_POWER, _ONE)),
                ("Time throttled per reason", rate(g.GPU_THROTTLE_TIME, "10m", _ONE)),
            ),
            actions=(
                "Check the node's fans, inlet temperature and BMC events; "
                "`nvidia-smi -q -d PERFORMANCE,TEMPERATURE` shows the active reasons.",
                "For power brake or hw_slowdown, check the PSUs and the rack's power.",
            ),
        ),
    )


def _lost(_: RuleConfig) -> Alert:
    return Alert(
        name="GPULost",
        expr=f"{sel(g.GPU_UP)} == 0",
        for_="1m",
        severity=Severity.CRITICAL,
        summary="A GPU stopped answering NVML",
        description=f"{_GPU_WHO} did not answer NVML in the exporter's last sampling cycles.",
        runbook=Runbook(
            dashboard="GPU node",
            meaning=(
                "The exporter still lists the GPU but NVML calls on it fail (typically "
                "NVML_ERROR_GPU_IS_LOST): the GPU fell off the bus or hung. Processes on it are "
                "dead or stuck; the engine using it serves nothing."
            ),
            causes=(
                "XID 79 (fell off the bus): PCIe, power or thermal event.",
                "A hung GPU after a driver or firmware fault.",
            ),
            checks=(
                ("NVML error codes", increase(x.SOURCE_ERRORS, "15m", 'source="nvml"')),
                ("XIDs on the node", increase(g.GPU_XID_ERRORS, "1h", _NODE)),
                ("Other GPUs of the node", sel(g.GPU_UP, _NODE)),
            ),
            actions=(
                "Drain the node; try `nvidia-smi -r -i <gpu>` (reset) once the GPU is idle; "
                "reboot if the reset fails.",
                "If it recurs, open a hardware ticket with the XIDs and `nvidia-bug-report.sh`.",
            ),
        ),
    )


def _source_down(_: RuleConfig) -> Alert:
    return Alert(
        name="GpumetricsSourceDown",
        expr=f"{sel(x.SOURCE_UP)} == 0",
        for_="5m",
        severity=Severity.WARNING,
        summary="A gpumetrics source fails to sample",
        description=(
            'Source "{{ $labels.source }}" of the exporter on {{ $labels.instance }} failed '
            "its sampling cycles for 5 minutes; its metrics are missing or stale."
        ),
        runbook=Runbook(
            dashboard="GPU node",
            meaning=(
                "The exporter keeps serving the other sources (degrade, don't die), but this "
                "one (nvml, gpm, infiniband or engine:<name>) fails every cycle, so its series "
                "are gone from dashboards and the alerts that need them stay silent."
            ),
            causes=(
                "nvml: driver not loaded, library not found, or a GPU lost.",
                "gpm: NO_PERMISSION in a locked-down container, or a GPU without GPM.",
                "engine:<name>: the engine's metrics endpoint is down, moved, or returns "
                "an HTTP error or unparsable text.",
                "infiniband: sysfs not mounted into the container.",
            ),
            checks=(
                ("Errors by code", increase(x.SOURCE_ERRORS, "15m", _NODE)),
                ("Last success", sel(x.SOURCE_LAST_SUCCESS, _NODE)),
                ("Cycle duration", sel(x.SOURCE_DURATION, _NODE)),
            ),
            actions=(
                "Read the exporter's log for the source's error and hint.",
                "Fix access (device nodes, capabilities, sysfs mount, engine URL) and watch "
                "gpumetrics_source_up return to 1.",
            ),
        ),
    )


def _exporter_down(c: RuleConfig) -> Alert:
    return Alert(
        name="GpumetricsExporterDown",
        expr=f'up{{job=~"{c.exporter_job_regex}"}} == 0',
        for_="5m",
        severity=Severity.CRITICAL,
        summary="Prometheus cannot scrape a gpumetrics exporter",
        description=(
            "Target {{ $labels.instance }} of job {{ $labels.job }} has been down for "
            "5 minutes: no GPU or engine metrics from that node."
        ),
        runbook=Runbook(
            dashboard="GPU node",
            meaning=(
                "Prometheus' scrape of the exporter fails, so every series of that node is "
                "missing and all other alerts for it are blind."
            ),
            causes=(
                "The exporter process or pod crashed or was not scheduled.",
                "Network policy, TLS or authentication changes block the scrape.",
                "The node is down.",
            ),
            checks=(
                ("Targets down", f'up{{job=~"{c.exporter_job_regex}"}} == 0'),
                (
                    "Scrape duration before it failed",
                    f'scrape_duration_seconds{{job=~"{c.exporter_job_regex}"}}',
                ),
            ),
            actions=(
                "Check the exporter's pod or unit status and logs; curl its /health, /ready "
                "and /metrics from the Prometheus host.",
                "The job matcher is a setting of the rule generator "
                "(RuleConfig.exporter_job_regex); adjust it if your job is named differently.",
            ),
        ),
    )


def gpu_alerts(config: RuleConfig = DEFAULT_CONFIG) -> tuple[Alert, ...]:
    return (_nvlink(config), _xid(config), _throttled(config), _lost(config))


def exporter_alerts(config: RuleConfig = DEFAULT_CONFIG) -> tuple[Alert, ...]:
    return (_source_down(config), _exporter_down(config))
