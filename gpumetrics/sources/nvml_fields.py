"""NVML field-id tables: which field feeds which catalog metric, with which labels and scale.

All of a GPU's fields go out in ONE `nvmlDeviceGetFieldValues` call per sample; per-link
NVLink fields carry the link in `scopeId`. Each field has its own `nvmlReturn`: success gives
a sample, NOT_SUPPORTED gives none. Scales convert NVML units to base units:

| fields            | NVML unit        | x scale  | metric                                      |
|-------------------|------------------|----------|---------------------------------------------|
| 186 / 190         | mW               | 1e-3     | gpu_power_watts / gpu_power_limit_watts     |
| 191               | mJ, cumulative   | 1e-3     | gpu_energy_joules_total                     |
| 82                | °C               | 1        | gpu_temperature_celsius{sensor="memory"}    |
| 197 / 198         | bytes, cumul.    | 1        | gpu_pcie_bytes_total{direction}             |
| 74-79, 269-271    | ns, cumulative   | 1e-9     | gpu_throttle_seconds_total{reason}          |
| 138-141 per link  | KiB, cumulative  | 1024     | gpu_nvlink_link_data_bytes_total, ..._raw_  |
| 164 per link      | MBps (10^6 B/s)  | 1e6      | gpu_nvlink_speed_bytes_per_second           |
| 165 per link      | state enum       | active=1 | gpu_nvlink_link_up                          |

Per-GPU NVLink totals are sums over the links of the per-link reads, made here: payload bytes
(138/139 -> gpu_nvlink_data_bytes_total{direction}), links active (165 ->
gpu_nvlink_links_up) and data-link errors (161-163 -> gpu_nvlink_dl_errors_total{error}).
They are the default; the per-link series themselves are emitted only with `per_link`
(`serve --nvlink-per-link`), and the per-link-only fields (raw bytes, speed) are then the only
ones requested for them. A total is emitted when any of its links answered, so error totals
are present at 0 from the first sample.

The hot path (`FieldBatch`, built once per GPU): the request array is built once and copied
per sample (`from_buffer_copy`, what pynvml's wrapper would build entry by entry), the call
goes through pynvml's function pointer exactly as `pynvml.nvmlDeviceGetFieldValues` makes it,
and the filled array is decoded with one `struct` unpack instead of pynvml's per-attribute
Python accessors. A field whose (type, return, value) is the same as last sample reuses last
sample's (immutable) Sample object; nothing that changed is ever reused.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pynvml

from ..catalog import MetricSpec
from ..catalog import gpu as g
from ..samples import Labels, Sample
from .nvml_lib import GpuLostError, error_name
from .nvml_names import CLOCK_EVENT_REASONS, NAMES, throttle_time_fields

__all__ = [
    "CLOCK_EVENT_REASONS",
    "GPU_TEMPERATURE_FIELD",
    "STATIC_FIELDS",
    "STATIC_REFRESH_CYCLES",
    "FieldBatch",
    "FieldRead",
    "field_reads",
    "field_value",
    "read_field_values",
]

#: GPU core temperature as a field, where this pynvml knows the id (no release so far does);
#: else the source calls nvmlDeviceGetTemperature (nvidia-smi --query-gpu=temperature.gpu).
GPU_TEMPERATURE_FIELD: int | None = NAMES.constant("NVML_FI_DEV_TEMPERATURE_CURRENT", record=False)

#: NVML_NVLINK_STATE_ACTIVE (nvml.h: 1); releases before 12.570 lack it, and then the link
#: state is not read.
_LINK_ACTIVE: int | None = NAMES.constant("NVML_NVLINK_STATE_ACTIVE", what="NVLink link state")


@dataclass(frozen=True, slots=True)
class FieldRead:
    """One entry of the batched field request and the sample its value becomes.

    `scope` is the NVLink link for per-link fields (None otherwise); the sample's value is
    `raw x scale` in the catalog's base unit, or 1/0 for `link_state` (NVLink active or not).
    `total` (with `total_labels` after the GPU's) is the per-GPU family this read's value is
    summed into over links; `emit` False keeps the read's own sample out of the output (a
    per-link read that only feeds its total).
    """

    field_id: int
    scope: int | None
    spec: MetricSpec
    extra_labels: tuple[str, ...] = ()
    scale: float = 1.0
    link_state: bool = False
    total: MetricSpec | None = None
    total_labels: tuple[str, ...] = ()
    emit: bool = True

    @property
    def request(self) -> int | tuple[int, int]:
        """The entry for pynvml.nvmlDeviceGetFieldValues: `fid` or `(fid, scopeId)`."""
        return self.field_id if self.scope is None else (self.field_id, self.scope)

    def sample(self, raw: float, gpu_labels: Labels) -> Sample:
        value = (1.0 if raw == _LINK_ACTIVE else 0.0) if self.link_state else raw * self.scale
        return self.spec.sample(value, *gpu_labels, *self.extra_labels)


def _field(name: str) -> int | None:
    """A field id by its pynvml name (None, and listed by doctor, when this pynvml lacks it)."""
    return NAMES.constant(name)


def _scalar(name: str, spec: MetricSpec, *labels: str, scale: float = 1.0) -> FieldRead | None:
    field_id = _field(name)
    return None if field_id is None else FieldRead(field_id, None, spec, labels, scale)


def _throttle(field_id: int, reason: str) -> FieldRead:
    return FieldRead(field_id, None, g.GPU_THROTTLE_TIME, (reason,), 1e-9)


_ECC, _NVLINK = "NVML_FI_DEV_ECC_", "NVML_FI_DEV_NVLINK_"
_SCALARS: tuple[FieldRead, ...] = tuple(
    read
    for read in (
        _scalar("NVML_FI_DEV_POWER_INSTANT", g.GPU_POWER, scale=1e-3),
        _scalar("NVML_FI_DEV_POWER_CURRENT_LIMIT", g.GPU_POWER_LIMIT, scale=1e-3),
        _scalar("NVML_FI_DEV_ENERGY", g.GPU_ENERGY, scale=1e-3),
        _scalar("NVML_FI_DEV_MEMORY_TEMP", g.GPU_TEMPERATURE, "memory"),
        _scalar("NVML_FI_DEV_PCIE_COUNT_TX_BYTES", g.GPU_PCIE_BYTES, "tx"),
        _scalar("NVML_FI_DEV_PCIE_COUNT_RX_BYTES", g.GPU_PCIE_BYTES, "rx"),
        _scalar("NVML_FI_DEV_PCIE_REPLAY_COUNTER", g.GPU_PCIE_REPLAYS),
        *(_throttle(field_id, reason) for field_id, reason in throttle_time_fields(NAMES)),
        _scalar(_ECC + "SBE_VOL_TOTAL", g.GPU_ECC_ERRORS, "corrected", "volatile"),
        _scalar(_ECC + "DBE_VOL_TOTAL", g.GPU_ECC_ERRORS, "uncorrected", "volatile"),
        _scalar(_ECC + "SBE_AGG_TOTAL", g.GPU_ECC_ERRORS, "corrected", "aggregate"),
        _scalar(_ECC + "DBE_AGG_TOTAL", g.GPU_ECC_ERRORS, "uncorrected", "aggregate"),
        _scalar("NVML_FI_DEV_REMAPPED_COR", g.GPU_REMAPPED_ROWS, "correctable"),
        _scalar("NVML_FI_DEV_REMAPPED_UNC", g.GPU_REMAPPED_ROWS, "uncorrectable"),
        _scalar("NVML_FI_DEV_REMAPPED_PENDING", g.GPU_ROW_REMAP_PENDING),
        _scalar("NVML_FI_DEV_REMAPPED_FAILURE", g.GPU_ROW_REMAP_FAILED),
        _scalar(_NVLINK + "CRC_FLIT_ERROR_COUNT_TOTAL", g.NVLINK_ERRORS, "crc_flit"),
        _scalar(_NVLINK + "CRC_DATA_ERROR_COUNT_TOTAL", g.NVLINK_ERRORS, "crc_data"),
        _scalar(_NVLINK + "REPLAY_ERROR_COUNT_TOTAL", g.NVLINK_ERRORS, "replay"),
        _scalar(_NVLINK + "RECOVERY_ERROR_COUNT_TOTAL", g.NVLINK_ERRORS, "recovery"),
        _scalar(_NVLINK + "ECC_DATA_ERROR_COUNT_TOTAL", g.NVLINK_ERRORS, "ecc"),
    )
    if read is not None
)

#: A per-link read: field name, per-link metric, labels after the link, scale, is the link
#: state, and the per-GPU total it is summed into (None: per-link only) with its labels.
_LinkRead = tuple[str, MetricSpec, tuple[str, ...], float, bool, MetricSpec | None, tuple[str, ...]]
_DATA, _LDATA, _DL, _LERR = (
    g.NVLINK_DATA_BYTES,
    g.NVLINK_LINK_DATA_BYTES,
    g.NVLINK_DL_ERRORS,
    g.NVLINK_LINK_ERRORS,
)
_PER_LINK: tuple[_LinkRead, ...] = (
    ("THROUGHPUT_DATA_TX", _LDATA, ("tx",), 1024.0, False, _DATA, ("tx",)),
    ("THROUGHPUT_DATA_RX", _LDATA, ("rx",), 1024.0, False, _DATA, ("rx",)),
    ("THROUGHPUT_RAW_TX", g.NVLINK_RAW_BYTES, ("tx",), 1024.0, False, None, ()),
    ("THROUGHPUT_RAW_RX", g.NVLINK_RAW_BYTES, ("rx",), 1024.0, False, None, ()),
    ("GET_STATE", g.NVLINK_LINK_UP, (), 1.0, True, g.NVLINK_LINKS_UP, ()),
    ("GET_SPEED", g.NVLINK_SPEED, (), 1e6, False, None, ()),
    ("ERROR_DL_REPLAY", _LERR, ("replay",), 1.0, False, _DL, ("replay",)),
    ("ERROR_DL_RECOVERY", _LERR, ("recovery",), 1.0, False, _DL, ("recovery",)),
    ("ERROR_DL_CRC", _LERR, ("crc",), 1.0, False, _DL, ("crc",)),
)
#: The per-link reads with their field id, for the fields this pynvml names (the state only
#: where it also names NVML_NVLINK_STATE_ACTIVE).
_PER_LINK_FIELDS = tuple(
    (field_id, *read[1:])
    for field_id, read in ((_field(_NVLINK + read[0]), read) for read in _PER_LINK)
    if field_id is not None and (_LINK_ACTIVE is not None or not read[4])
)


def _per_link(link: int, per_link: bool) -> tuple[FieldRead, ...]:
    name = str(link)
    return tuple(
        FieldRead(field_id, link, spec, (name, *labels), scale, state, total, totals, per_link)
        for field_id, spec, labels, scale, state, total, totals in _PER_LINK_FIELDS
        if per_link or total is not None
    )


def field_reads(links: int, per_link: bool = False) -> tuple[FieldRead, ...]:
    """The whole per-sample field request for a GPU with `links` NVLink links: the per-GPU
    NVLink totals always, the per-link series (and their only fields) with `per_link`."""
    temperature: tuple[FieldRead, ...] = ()
    if GPU_TEMPERATURE_FIELD is not None:
        temperature = (FieldRead(GPU_TEMPERATURE_FIELD, None, g.GPU_TEMPERATURE, ("gpu",)),)
    reads = tuple(read for link in range(links) for read in _per_link(link, per_link))
    return (*_SCALARS, *temperature, *reads)


_UNION = dict(pynvml.c_nvmlValue_t._fields_)
#: valueType -> the nvmlValue_t member holding it, for the types this pynvml's union has
#: (12.560 names NVML_VALUE_TYPE_UNSIGNED_SHORT but its union has no usVal).
_MEMBERS = {
    value_type: member
    for value_type, member in (
        (pynvml.NVML_VALUE_TYPE_DOUBLE, "dVal"),
        (pynvml.NVML_VALUE_TYPE_UNSIGNED_INT, "uiVal"),
        (pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG, "ulVal"),
        (pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG, "ullVal"),
        (pynvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG, "sllVal"),
        (pynvml.NVML_VALUE_TYPE_SIGNED_INT, "siVal"),
        (NAMES.constant("NVML_VALUE_TYPE_UNSIGNED_SHORT", record=False), "usVal"),
    )
    if value_type is not None and member in _UNION
}


def field_value(value: Any) -> float | None:
    """The number in an `nvmlFieldValue_t` per its `valueType` (None for an unknown type)."""
    member = _MEMBERS.get(int(value.valueType))
    return None if member is None else float(getattr(value.value, member))


# --- the hot path -----------------------------------------------------------------------------

_ENTRY = pynvml.c_nvmlFieldValue_t
_ENTRY_SIZE = ctypes.sizeof(_ENTRY)
_VALUE_AT: int = _ENTRY.value.offset


def _entry_format() -> str:
    """struct format of one nvmlFieldValue_t read as (valueType, nvmlReturn, value as u64),
    from the offsets ctypes laid out (nvml.h order: type, return, then the 8-byte union)."""
    members = (
        (_ENTRY.valueType.offset, ctypes.sizeof(pynvml._nvmlValueType_t), "I"),
        (_ENTRY.nvmlReturn.offset, ctypes.sizeof(pynvml._nvmlReturn_t), "I"),
        (_VALUE_AT, ctypes.sizeof(pynvml.c_nvmlValue_t), "Q"),
    )
    parts, at = [], 0
    for offset, size, code in members:
        if offset < at or size != struct.calcsize("=" + code):
            raise ImportError("unexpected nvmlFieldValue_t layout in this pynvml")
        parts.append(f"{offset - at}x{code}")
        at = offset + size
    parts.append(f"{_ENTRY_SIZE - at}x")
    return "=" + "".join(parts)


_ENTRY_STRUCT = struct.Struct(_entry_format())
_ULL = pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
#: valueType -> how to read the union when it is not the u64 the bulk unpack already gave.
_VALUE_READERS: dict[int, struct.Struct] = {
    value_type: struct.Struct("@" + _UNION[member]._type_)
    for value_type, member in _MEMBERS.items()
    if value_type != _ULL
}
_SUCCESS = pynvml.NVML_SUCCESS
_NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED
_GPU_IS_LOST = pynvml.NVML_ERROR_GPU_IS_LOST


#: Fields that only change when a link retrains (NVLink line rate): read on the first sample,
#: then every STATIC_REFRESH_CYCLES-th sample and on the sample after any link changed state.
STATIC_FIELDS = frozenset({pynvml.NVML_FI_DEV_NVLINK_GET_SPEED})
STATIC_REFRESH_CYCLES = 60


class FieldBatch:
    """One GPU's whole per-sample field request and the samples its answer becomes.

    Built once per GPU: the request array (field ids and link scopes, as pynvml builds it),
    each entry's metric name, full label tuple (validated against the catalog here, once),
    scale and kind. `decode` turns a filled array into samples; it keeps the last (type,
    return, value) and Sample per entry to reuse Samples whose value did not change.

    The STATIC_FIELDS entries sit at the end of the request; a sample that does not refresh
    them requests only the entries before them and repeats their last samples (a failure to
    read them is reported on the samples that read them). Not thread-safe (one sampler
    thread per source).
    """

    __slots__ = (
        "_arrays",
        "_cached",
        "_countdown",
        "_emit",
        "_kinds",
        "_labels",
        "_last",
        "_names",
        "_scales",
        "_temperature_at",
        "_templates",
        "_totals",
        "count",
        "reads",
    )

    def __init__(self, reads: tuple[FieldRead, ...], gpu_labels: Labels) -> None:
        volatile = tuple(read for read in reads if read.field_id not in STATIC_FIELDS)
        self.reads = (*volatile, *(read for read in reads if read.field_id in STATIC_FIELDS))
        self.count = len(self.reads)
        full: Any = (_ENTRY * self.count)()
        for entry, read in zip(full, self.reads, strict=True):
            entry.fieldId = read.field_id
            entry.scopeId = 0 if read.scope is None else read.scope
        template = bytes(full)
        #: [request without the static fields, the full request]
        self._arrays: tuple[Any, Any] = (_ENTRY * len(volatile), _ENTRY * self.count)
        self._templates = (template[: len(volatile) * _ENTRY_SIZE], template)
        self._countdown = 0  # samples until the static fields are read again
        self._names = tuple(read.spec.name for read in self.reads)
        # spec.sample checks the label count against the catalog, once per series.
        self._labels = tuple(
            read.spec.sample(0.0, *gpu_labels, *read.extra_labels).labels for read in self.reads
        )
        self._scales = tuple(read.scale for read in self.reads)
        self._kinds = tuple(read.link_state for read in self.reads)
        self._emit = tuple(read.emit for read in self.reads)
        self._totals = _totals(self.reads, gpu_labels)
        self._temperature_at: int | None = next(
            (i for i, read in enumerate(self.reads) if read.field_id == GPU_TEMPERATURE_FIELD),
            None,
        )
        self._last: list[tuple[int, int, int] | None] = [None] * self.count
        self._cached: list[Sample | None] = [None] * self.count

    def request(self) -> Any:
        """A fresh request array (output members zero), as pynvml's wrapper would build it:
        every field when the static ones are due, else all but the static ones."""
        full = int(self._countdown <= 0)
        return self._arrays[full].from_buffer_copy(self._templates[full])

    def decode(self, values: Any, out: list[Sample], failed: set[str]) -> bool:
        """Append a sample per successful field of `values` (an array from `request()`, as
        NVML filled it) to `out`, then the last samples of static fields it did not request;
        add the name of each failed field's return code (other than NOT_SUPPORTED) to
        `failed`. True when the GPU temperature field gave a sample. Raises GpuLostError when
        a field says the GPU is lost."""
        entries = list(_iter_entries(values))
        last, cached, kinds = self._last, self._cached, self._kinds
        emit = self._emit
        append = out.append
        relink = False
        for i, entry in enumerate(entries):
            if entry == last[i]:
                sample = cached[i]
                if sample is not None:
                    if emit[i]:
                        append(sample)
                    continue
            value_type, code, raw = entry
            if kinds[i] and last[i] is not None and entry != last[i]:
                relink = True  # this link's state changed: its speed may have changed too
            cached[i] = None
            if code != _SUCCESS:
                if code == _GPU_IS_LOST:
                    raise GpuLostError(error_name(code))
                if code != _NOT_SUPPORTED:
                    failed.add(error_name(code))
                continue
            if value_type == _ULL:
                number = float(raw)
            else:
                reader = _VALUE_READERS.get(value_type)
                if reader is None:  # a value type this pynvml does not know: no sample
                    continue
                number = float(reader.unpack_from(values, i * _ENTRY_SIZE + _VALUE_AT)[0])
            if kinds[i]:
                number = 1.0 if number == _LINK_ACTIVE else 0.0
            else:
                number *= self._scales[i]
            sample = cached[i] = Sample(self._names[i], self._labels[i], number)
            if emit[i]:
                append(sample)
        read = len(entries)
        last[:read] = entries
        if read == self.count:
            self._countdown = STATIC_REFRESH_CYCLES - 1
        else:
            out.extend(
                sample
                for sample, emitted in zip(cached[read:], emit[read:], strict=True)
                if sample is not None and emitted
            )
            self._countdown -= 1
        for name, labels, indices in self._totals:  # per-GPU sums over links
            total, answered = 0.0, False
            for i in indices:
                part = cached[i]
                if part is not None and isinstance(part.value, float):
                    total += part.value
                    answered = True
            if answered:
                append(Sample(name, labels, total))
        if relink:
            self._countdown = 0
        at = self._temperature_at
        return at is not None and cached[at] is not None


def _totals(
    reads: tuple[FieldRead, ...], gpu_labels: Labels
) -> tuple[tuple[str, Labels, tuple[int, ...]], ...]:
    """(metric name, labels, indices of the reads summed into it) per per-GPU total, in the
    order the totals first appear; labels checked against the catalog here, once."""
    groups: dict[tuple[str, Labels], list[int]] = {}
    for i, read in enumerate(reads):
        if read.total is not None:
            labels = read.total.sample(0.0, *gpu_labels, *read.total_labels).labels
            groups.setdefault((read.total.name, labels), []).append(i)
    return tuple((name, labels, tuple(indices)) for (name, labels), indices in groups.items())


def _iter_entries(values: Any) -> Iterator[tuple[int, int, int]]:
    return _ENTRY_STRUCT.iter_unpack(values)


def read_field_values(handle: Any, batch: FieldBatch) -> Any:
    """nvmlDeviceGetFieldValues for `batch`, made the way `pynvml.nvmlDeviceGetFieldValues`
    makes it (same array type, same function pointer lookup, same return check), minus its
    per-entry Python setattr loop. Raises pynvml.NVMLError like the wrapper."""
    values = batch.request()
    function: Callable[..., int] = pynvml._nvmlGetFunctionPointer("nvmlDeviceGetFieldValues")
    pynvml._nvmlCheckReturn(function(handle, ctypes.c_int32(len(values)), ctypes.byref(values)))
    return values
