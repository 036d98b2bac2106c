"""Pod UID and container id from /proc/<pid>/cgroup, in every shape the kubelet's cgroup
drivers and the container runtimes write (lines copied from real nodes' shapes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpumetrics.sources.pods.cgroup import owner_of, parse_cgroup
from gpumetrics.sources.pods.model import Owner

UID = "8e2c4a1f-3b5d-4e6f-9a0b-1c2d3e4f5a6b"
CID = "4f1d" * 16  # 64 hex digits

CASES = {
    "v2 systemd containerd": (
        "0::/kubepods.slice/kubepods-burstable.slice/"
        f"kubepods-burstable-pod{UID.replace('-', '_')}.slice/cri-containerd-{CID}.scope\n",
        Owner(UID, CID),
    ),
    "v2 systemd cri-o guaranteed": (
        f"0::/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/crio-{CID}.scope\n",
        Owner(UID, CID),
    ),
    "v2 cgroupfs": (f"0::/kubepods/besteffort/pod{UID}/{CID}\n", Owner(UID, CID)),
    "v2 through a cgroup namespace": (
        f"0::/../../kubepods-besteffort-pod{UID.replace('-', '_')}.slice/"
        f"cri-containerd-{CID}.scope\n",
        Owner(UID, CID),
    ),
    "v1 cgroupfs": (
        "12:pids:/kubepods/burstable/pod" + UID + "/" + CID + "\n"
        "11:memory:/kubepods/burstable/pod" + UID + "/" + CID + "\n"
        "1:name=systemd:/kubepods/burstable/pod" + UID + "/" + CID + "\n",
        Owner(UID, CID),
    ),
    "v1 systemd docker": (
        "12:devices:/kubepods.slice/kubepods-besteffort.slice/"
        f"kubepods-besteffort-pod{UID.replace('-', '_')}.slice/docker-{CID}.scope\n",
        Owner(UID, CID),
    ),
    "pod sandbox level only": (f"0::/kubepods/pod{UID}\n", Owner(UID, "")),
    "docker outside kubernetes": (f"0::/system.slice/docker-{CID}.scope\n", Owner("", CID)),
    "docker cgroupfs v1": (f"9:cpu,cpuacct:/docker/{CID}\n", Owner("", CID)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_shapes(case: str) -> None:
    text, owner = CASES[case]
    assert parse_cgroup(text) == owner


@pytest.mark.parametrize(
    "text",
    [
        "0::/user.slice/user-1000.slice/session-3.scope\n",
        "0::/\n",
        "0::/system.slice/nvidia-persistenced.service\n",
        "",
        "garbage\n",
        # close, but not a UUID / not 64 hex digits
        "0::/kubepods/podnot-a-uid/abc123\n",
    ],
)
def test_host_processes_have_no_owner(text: str) -> None:
    assert parse_cgroup(text) is None


def test_owner_of_reads_a_proc_tree(tmp_path: Path) -> None:
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "cgroup").write_text(CASES["v2 cgroupfs"][0])
    assert owner_of(4242, tmp_path) == Owner(UID, CID)
    assert owner_of(4343, tmp_path) is None  # exited: no /proc entry
