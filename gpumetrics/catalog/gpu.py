"""GPU device, NVLink, GPM and peak families (sources: NVML, GPM, the spec table)."""

from __future__ import annotations

from .spec import Group, MetricType, Source, Stability, metric

G, C, INFO = MetricType.GAUGE, MetricType.COUNTER, MetricType.INFO
NVML, GPM, TABLE = Source.NVML, Source.GPM, Source.SPEC_TABLE

#: Labels on every per-GPU series. MIG devices get their own `gpu` value ("0/mig-3").
GPU_LABELS = ("gpu", "gpu_uuid", "gpu_model")

GPU_INFO = metric(
    "gpumetrics_gpu_info",
    INFO,
    "Static facts about a GPU; value is always 1 (nvidia-smi -q). mig is enabled|disabled on a "
    "GPU and the MIG profile (e.g. 3g.40gb) on a MIG device.",
    (*GPU_LABELS, "pci_bus_id", "driver_version", "cuda_version", "mig"),
    source=NVML,
    group=Group.GPU,
)
GPU_UP = metric(
    "gpumetrics_gpu_up",
    G,
    "Whether the GPU answered NVML in the last sampling cycle (1) or fell off the bus (0).",
    GPU_LABELS,
    source=NVML,
    group=Group.GPU,
    otel_name="hw.status",
)
GPU_MEMORY_TOTAL = metric(
    "gpumetrics_gpu_memory_total_bytes",
    G,
    "Framebuffer memory installed (nvidia-smi --query-gpu=memory.total).",
    GPU_LABELS,
    source=NVML,
    group=Group.GPU,
    otel_name="hw.gpu.memory.limit",
)
GPU_MEMORY_USED = metric(
    "gpumetrics_gpu_memory_used_bytes",
    G,
    "Framebuffer memory in use, excluding the driver's reservation (nvmlDeviceGetMemoryInfo_v2).",
    GPU_LABELS,
    source=NVML,
    group=Group.GPU,
    otel_name="hw.gpu.memory.usage",
)
GPU_MEMORY_RESERVED = metric(
    "gpumetrics_gpu_memory_reserved_bytes",
    G,
    "Framebuffer memory reserved by the driver and firmware (memory v2).",
    GPU_LABELS,
    source=NVML,
    group=Group.GPU,
)
GPU_PROCESS_MEMORY = metric(
    "gpumetrics_gpu_process_memory_bytes",
    G,
    "GPU memory used by one process (nvidia-smi --query-compute-apps=pid,used_memory).",
    (*GPU_LABELS, "pid", "process_name"),
    source=NVML,
    group=Group.GPU,
    stability=Stability.EXPERIMENTAL,
)
GPU_UTILIZATION_NAIVE = metric(
    "gpumetrics_gpu_utilization_naive_ratio",
    G,
    "NAIVE: share of time at least one kernel ran (nvidia-smi utilization.gpu). One tiny "
    "kernel reads as 100%; use SM active, tensor active and DRAM active instead.",
    GPU_LABELS,
    source=NVML,
    group=Group.GPU,
    otel_name="hw.gpu.utilization",
)
GPU_MEMORY_UTILIZATION_NAIVE = metric(
    "gpumetrics_gpu_memory_utilization_naive_ratio",
    G,
    "NAIVE: share of time the memory controller was busy (nvidia-smi utilization.memory); "
    "not bandwidth used. Prefer gpumetrics_gpu_dram_active_ratio.",
    GPU_LABELS,
    source=NVML,
    group=Group.GPU,
)
GPU_POWER = metric(
    "gpumetrics_gpu_power_watts",
    G,
    "Instantaneous board power draw (NVML field 186, nvidia-smi power.draw.instant).",
    GPU_LABELS,
    source=NVML,
    group=Group.GPU,
    otel_name="hw.power",
)
GPU_POWER_LIMIT = metric(
    "gpumetrics_gpu_power_limit_watts",
    G,
    "Power limit currently enforced (NVML field 190, nvidia-smi power.limit).",
    GPU_LABELS,
    source=NVML,
    group=Group.GPU,
)
GPU_ENERGY = metric(
    "gpumetrics_gpu_energy_joules_total",
    C,
    "Energy consumed since the driver loaded (NVML field 191); rate() gives average watts.",
    GPU_LABELS,
    source=NVML,
    group=Group.GPU,
    otel_name="hw.energy",
)
GPU_TEMPERATURE = metric(
    "gpumetrics_gpu_temperature_celsius",
    G,
    "Temperature by sensor: gpu (nvmlDeviceGetTemperature, nvidia-smi temperature.gpu) or "
    "memory/HBM (field 82).",
    (*GPU_LABELS, "sensor"),
    source=NVML,
    group=Group.GPU,
    otel_name="hw.temperature",
)
GPU_CLOCK = metric(
    "gpumetrics_gpu_clock_hertz",
    G,
    "Current clock by domain: sm, memory, graphics (nvidia-smi clocks.sm, clocks.mem).",
    (*GPU_LABELS, "clock"),
    source=NVML,
    group=Group.GPU,
)
GPU_CLOCK_MAX = metric(
    "gpumetrics_gpu_clock_max_hertz",
    G,
    "Maximum clock by domain (nvidia-smi clocks.max.sm, clocks.max.mem).",
    (*GPU_LABELS, "clock"),
    source=NVML,
    group=Group.GPU,
)
GPU_THROTTLE_ACTIVE = metric(
    "gpumetrics_gpu_throttle_reason_active",
    G,
    "1 while a clock event (throttle) reason holds clocks down, one series per reason "
    "(nvidia-smi -q -d PERFORMANCE).",
    (*GPU_LABELS, "reason"),
    source=NVML,
    group=Group.GPU,
)
GPU_THROTTLE_TIME = metric(
    "gpumetrics_gpu_throttle_seconds_total",
    C,
    "Time clocks were held down, by reason sw_power_cap|thermal|sync_boost|board_limit|"
    "low_utilization|reliability|sw_thermal_slowdown|hw_thermal_slowdown|"
    "hw_power_brake_slowdown (NVML fields 74-79, 269-271).",
    (*GPU_LABELS, "reason"),
    source=NVML,
    group=Group.GPU,
)
GPU_PCIE_BYTES = metric(
    "gpumetrics_gpu_pcie_bytes_total",
    C,
    "PCIe bytes by direction tx|rx (NVML fields 197/198).",
    (*GPU_LABELS, "direction"),
    source=NVML,
    group=Group.GPU,
    otel_name="hw.gpu.io",
)
GPU_PCIE_REPLAYS = metric(
    "gpumetrics_gpu_pcie_replays_total",
    C,
    "PCIe link replays, a sign of a marginal link (NVML field 94).",
    GPU_LABELS,
    source=NVML,
    group=Group.GPU,
)
GPU_ECC_ERRORS = metric(
    "gpumetrics_gpu_ecc_errors_total",
    C,
    "ECC errors by type corrected|uncorrected and scope volatile|aggregate (fields 3-6).",
    (*GPU_LABELS, "type", "scope"),
    source=NVML,
    group=Group.GPU,
    otel_name="hw.errors",
)
GPU_REMAPPED_ROWS = metric(
    "gpumetrics_gpu_remapped_rows_total",
    C,
    "HBM rows remapped, by cause correctable|uncorrectable (fields 142/143).",
    (*GPU_LABELS, "cause"),
    source=NVML,
    group=Group.GPU,
)
GPU_ROW_REMAP_PENDING = metric(
    "gpumetrics_gpu_row_remap_pending",
    G,
    "1 when a row remap waits for a GPU reset to take effect (field 144).",
    GPU_LABELS,
    source=NVML,
    group=Group.GPU,
)
GPU_ROW_REMAP_FAILED = metric(
    "gpumetrics_gpu_row_remap_failed",
    G,
    "1 when a row remap failed and the GPU needs service (field 145).",
    GPU_LABELS,
    source=NVML,
    group=Group.GPU,
)
GPU_XID_ERRORS = metric(
    "gpumetrics_gpu_xid_errors_total",
    C,
    "XID errors reported by the driver, by XID code (nvmlEventSetWait, dmesg NVRM: Xid).",
    (*GPU_LABELS, "xid"),
    source=NVML,
    group=Group.GPU,
)

# --- NVLink -------------------------------------------------------------------------------
# Per GPU by default (a few series per GPU); the per-link families (`link` label, 9 per link,
# 162 per 18-link GPU) only with `serve --nvlink-per-link`.

NVLINK_DATA_BYTES = metric(
    "gpumetrics_gpu_nvlink_data_bytes_total",
    C,
    "NVLink payload bytes summed over the GPU's links, by direction tx|rx (fields 138/139 per "
    "link, KiB x 1024). A link whose counter restarts shows as a counter reset.",
    (*GPU_LABELS, "direction"),
    source=NVML,
    group=Group.NVLINK,
)
NVLINK_LINKS = metric(
    "gpumetrics_gpu_nvlink_links",
    G,
    "NVLink links the GPU has (field 91; nvidia-smi nvlink -s lists them).",
    GPU_LABELS,
    source=NVML,
    group=Group.NVLINK,
)
NVLINK_LINKS_UP = metric(
    "gpumetrics_gpu_nvlink_links_up",
    G,
    "NVLink links active, counted over the GPU's links (field 165 per link); links minus this "
    "is the number of links down.",
    GPU_LABELS,
    source=NVML,
    group=Group.NVLINK,
)
NVLINK_ERRORS = metric(
    "gpumetrics_gpu_nvlink_errors_total",
    C,
    "NVLink errors summed over links, by error crc_flit|crc_data|replay|recovery|ecc "
    "(fields 38, 45, 52, 59, 160).",
    (*GPU_LABELS, "error"),
    source=NVML,
    group=Group.NVLINK,
)
NVLINK_DL_ERRORS = metric(
    "gpumetrics_gpu_nvlink_dl_errors_total",
    C,
    "NVLink data-link errors summed over the GPU's links, by error replay|recovery|crc "
    "(fields 161-163 per link); present at 0 from the first sample so increase() sees the "
    "first error.",
    (*GPU_LABELS, "error"),
    source=NVML,
    group=Group.NVLINK,
)
NVLINK_LINK_DATA_BYTES = metric(
    "gpumetrics_gpu_nvlink_link_data_bytes_total",
    C,
    "NVLink payload bytes per link and direction tx|rx (fields 138/139, KiB x 1024). Only with "
    "serve --nvlink-per-link.",
    (*GPU_LABELS, "link", "direction"),
    source=NVML,
    group=Group.NVLINK,
)
NVLINK_RAW_BYTES = metric(
    "gpumetrics_gpu_nvlink_raw_bytes_total",
    C,
    "NVLink bytes including protocol overhead per link and direction (fields 140/141). Only "
    "with serve --nvlink-per-link.",
    (*GPU_LABELS, "link", "direction"),
    source=NVML,
    group=Group.NVLINK,
)
NVLINK_LINK_UP = metric(
    "gpumetrics_gpu_nvlink_link_up",
    G,
    "1 when the NVLink link is active (field 165; nvidia-smi nvlink -s). Only with serve "
    "--nvlink-per-link.",
    (*GPU_LABELS, "link"),
    source=NVML,
    group=Group.NVLINK,
)
NVLINK_SPEED = metric(
    "gpumetrics_gpu_nvlink_speed_bytes_per_second",
    G,
    "NVLink link line rate per direction (field 164, MB/s = 10^6 bytes/s, converted to bytes/s). "
    "Only with serve --nvlink-per-link.",
    (*GPU_LABELS, "link"),
    source=NVML,
    group=Group.NVLINK,
)
NVLINK_LINK_ERRORS = metric(
    "gpumetrics_gpu_nvlink_link_errors_total",
    C,
    "NVLink data-link errors per link, by error replay|recovery|crc (fields 161-163). Only with "
    "serve --nvlink-per-link.",
    (*GPU_LABELS, "link", "error"),
    source=NVML,
    group=Group.NVLINK,
)

#: The per-link families (`serve --nvlink-per-link`).
NVLINK_PER_LINK = (
    NVLINK_LINK_DATA_BYTES,
    NVLINK_RAW_BYTES,
    NVLINK_LINK_UP,
    NVLINK_SPEED,
    NVLINK_LINK_ERRORS,
)

# --- GPM (Hopper and newer): the signals that replace naive utilization -------------------

GPM_GRAPHICS_ACTIVE = metric(
    "gpumetrics_gpu_graphics_active_ratio",
    G,
    "Share of time any graphics or compute engine was busy over the sample window (GPM "
    "graphics util, NVML_GPM_METRIC_GRAPHICS_UTIL; DCGM_FI_PROF_GR_ENGINE_ACTIVE).",
    GPU_LABELS,
    source=GPM,
    group=Group.GPM,
)
GPM_SM_ACTIVE = metric(
    "gpumetrics_gpu_sm_active_ratio",
    G,
    "Share of SMs busy over the sample window (GPM SM util; DCGM_FI_PROF_SM_ACTIVE).",
    GPU_LABELS,
    source=GPM,
    group=Group.GPM,
)
GPM_SM_OCCUPANCY = metric(
    "gpumetrics_gpu_sm_occupancy_ratio",
    G,
    "Resident warps over the theoretical maximum (GPM; DCGM_FI_PROF_SM_OCCUPANCY).",
    GPU_LABELS,
    source=GPM,
    group=Group.GPM,
)
GPM_TENSOR_ACTIVE = metric(
    "gpumetrics_gpu_tensor_active_ratio",
    G,
    "Share of time any tensor pipe was busy (GPM; DCGM_FI_PROF_PIPE_TENSOR_ACTIVE). "
    "A compute-bound serving GPU shows it high.",
    GPU_LABELS,
    source=GPM,
    group=Group.GPM,
)
GPM_DRAM_ACTIVE = metric(
    "gpumetrics_gpu_dram_active_ratio",
    G,
    "HBM bandwidth used over its peak (GPM; DCGM_FI_PROF_DRAM_ACTIVE). Memory-bound decode "
    "shows it high while tensor active stays low.",
    GPU_LABELS,
    source=GPM,
    group=Group.GPM,
)
GPM_PIPE_ACTIVE = metric(
    "gpumetrics_gpu_pipe_active_ratio",
    G,
    "Share of time a non-tensor pipe was busy, by pipe fp16|fp32|fp64|integer (GPM).",
    (*GPU_LABELS, "pipe"),
    source=GPM,
    group=Group.GPM,
)
GPM_PCIE_BANDWIDTH = metric(
    "gpumetrics_gpu_pcie_bandwidth_bytes_per_second",
    G,
    "PCIe throughput over the sample window by direction tx|rx (GPM, MiB/s x 1024^2).",
    (*GPU_LABELS, "direction"),
    source=GPM,
    group=Group.GPM,
)
GPM_NVLINK_BANDWIDTH = metric(
    "gpumetrics_gpu_nvlink_bandwidth_bytes_per_second",
    G,
    "NVLink throughput over all links by direction tx|rx (GPM, MiB/s x 1024^2).",
    (*GPU_LABELS, "direction"),
    source=GPM,
    group=Group.GPM,
)

# --- Peaks from the spec table (joined onto engine metrics by gpu_uuid) -------------------

PEAK_FLOPS = metric(
    "gpumetrics_gpu_peak_flops_per_second",
    G,
    "Dense (non-sparse) peak FLOP/s by dtype, from the GPU spec table or the user's override.",
    (*GPU_LABELS, "dtype"),
    source=TABLE,
    group=Group.PEAKS,
)
PEAK_MEMORY_BANDWIDTH = metric(
    "gpumetrics_gpu_peak_memory_bandwidth_bytes_per_second",
    G,
    "Peak HBM bandwidth, from the GPU spec table or the user's override.",
    GPU_LABELS,
    source=TABLE,
    group=Group.PEAKS,
)
PEAK_NVLINK_BANDWIDTH = metric(
    "gpumetrics_gpu_peak_nvlink_bandwidth_bytes_per_second",
    G,
    "Peak NVLink bandwidth per GPU, both directions together, from the GPU spec table.",
    GPU_LABELS,
    source=TABLE,
    group=Group.PEAKS,
)

ALL = (
    GPU_INFO,
    GPU_UP,
    GPU_MEMORY_TOTAL,
    GPU_MEMORY_USED,
    GPU_MEMORY_RESERVED,
    GPU_PROCESS_MEMORY,
    GPU_UTILIZATION_NAIVE,
    GPU_MEMORY_UTILIZATION_NAIVE,
    GPU_POWER,
    GPU_POWER_LIMIT,
    GPU_ENERGY,
    GPU_TEMPERATURE,
    GPU_CLOCK,
    GPU_CLOCK_MAX,
    GPU_THROTTLE_ACTIVE,
    GPU_THROTTLE_TIME,
    GPU_PCIE_BYTES,
    GPU_PCIE_REPLAYS,
    GPU_ECC_ERRORS,
    GPU_REMAPPED_ROWS,
    GPU_ROW_REMAP_PENDING,
    GPU_ROW_REMAP_FAILED,
    GPU_XID_ERRORS,
    NVLINK_DATA_BYTES,
    NVLINK_LINKS,
    NVLINK_LINKS_UP,
    NVLINK_ERRORS,
    NVLINK_DL_ERRORS,
    *NVLINK_PER_LINK,
    GPM_GRAPHICS_ACTIVE,
    GPM_SM_ACTIVE,
    GPM_SM_OCCUPANCY,
    GPM_TENSOR_ACTIVE,
    GPM_DRAM_ACTIVE,
    GPM_PIPE_ACTIVE,
    GPM_PCIE_BANDWIDTH,
    GPM_NVLINK_BANDWIDTH,
    PEAK_FLOPS,
    PEAK_MEMORY_BANDWIDTH,
    PEAK_NVLINK_BANDWIDTH,
)
