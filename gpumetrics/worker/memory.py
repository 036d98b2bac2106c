"""Free memory of a torch device, for `costmodel.fit.check_fit` (torch side).

CUDA: the driver's free bytes on the device (`torch.cuda.mem_get_info`, what `nvidia-smi
--query-gpu=memory.free` shows for this process' view). CPU: the kernel's MemAvailable, read
without torch by `costmodel.fit.host_memory_available`.
"""

from __future__ import annotations

import torch

from ..costmodel.fit import host_memory_available

__all__ = ["device_memory_available"]


def device_memory_available(device: str) -> tuple[int, str] | None:
    """(bytes, whose and what) for `device`, or None when it cannot be told."""
    dev = torch.device(device)
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        return free, f"{torch.cuda.get_device_name(dev)} ({device}, free)"
    available = host_memory_available()
    return None if available is None else (available, "this host (MemAvailable)")
