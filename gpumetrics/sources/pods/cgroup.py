"""A process's pod UID and container id from `<proc_root>/<pid>/cgroup`.

The shapes handled (v1 lines are `id:controllers:path`, v2 has the one line `0::path`):

    cgroupfs driver   /kubepods/burstable/pod<uid>/<64-hex container id>
                      /kubepods/pod<uid>/<id>                   (Guaranteed QoS)
    systemd driver    /kubepods.slice/kubepods-besteffort.slice/
                        kubepods-besteffort-pod<uid, _ for ->.slice/cri-containerd-<id>.scope
                      (crio-<id>.scope and docker-<id>.scope alike)
    Docker, no pod    /docker/<id>   or   /system.slice/docker-<id>.scope

Paths seen through a cgroup namespace may start with `/../..`; the match is on path parts, so
that is fine. The first line (in file order) naming a pod or a container wins.
"""

from __future__ import annotations

import re
from pathlib import Path

from .model import Owner

__all__ = ["owner_of", "parse_cgroup"]

_UUID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"
_POD = re.compile(rf"(?:^|[-/])pod({_UUID})(?:\.slice)?$")
_CONTAINER = re.compile(
    r"^(?:(?:docker|crio|cri-containerd|containerd|libpod)-)?([0-9a-f]{64})(?:\.scope)?$"
)


def parse_cgroup(text: str) -> Owner | None:
    """The owner named by a `/proc/<pid>/cgroup` text, or None for a host process."""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        pod = container = ""
        for part in parts[2].split("/"):
            if match := _POD.search(part):
                pod = match.group(1).replace("_", "-")
            elif match := _CONTAINER.match(part):
                container = match.group(1)
        if pod or container:
            return Owner(pod, container)
    return None


def owner_of(pid: int, proc_root: Path = Path("/proc")) -> Owner | None:
    """The owner of process `pid`, or None (a host process, or one that exited: its cgroup
    file is gone)."""
    try:
        text = (proc_root / str(pid) / "cgroup").read_text()
    except OSError:
        return None
    return parse_cgroup(text)
