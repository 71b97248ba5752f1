"""What the eviction manager measures: the machine's signals and the pods'
usage. Blocking reads of /proc and the filesystem; call them off the event
loop (`anyio.to_thread`).

- memory.available: MemAvailable of /proc/meminfo, of MemTotal;
- nodefs.available / nodefs.inodesFree: statvfs of the agent's root dir
  (blocks and inodes an unprivileged user may still take);
- imagefs.available / imagefs.inodesFree: statvfs of the runtime's data
  dir (`<root dir>/runtime`; the same filesystem unless mounted apart);
- pid.available: pid_max (or threads-max, if lower) less the processes
  running.

A pod's disk usage is what its containers' log directories and its
emptyDir volumes hold (bytes and inodes), the part of the node's disk the
agent can put down to a pod.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from kpy.agent.eviction.manager import Observation

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["disk_usage", "observe_node"]


def observe_node(root_dir: Path) -> dict[str, Observation]:
    """Every signal that can be measured here, by name."""
    out: dict[str, Observation] = {}
    mem = _meminfo()
    if "MemAvailable" in mem and "MemTotal" in mem:
        out["memory.available"] = Observation(mem["MemAvailable"], mem["MemTotal"])
    for prefix, path in (("nodefs", root_dir), ("imagefs", root_dir / "runtime")):
        fs = _statvfs(path)
        if fs is None:
            continue
        if fs.f_blocks:
            out[f"{prefix}.available"] = Observation(
                fs.f_bavail * fs.f_frsize, fs.f_blocks * fs.f_frsize
            )
        if fs.f_files:  # some filesystems have no inode table to count
            out[f"{prefix}.inodesFree"] = Observation(fs.f_favail, fs.f_files)
    limits = (_int("/proc/sys/kernel/pid_max"), _int("/proc/sys/kernel/threads-max"))
    capacity = min((v for v in limits if v), default=0)
    if capacity:
        running = sum(1 for name in os.listdir("/proc") if name.isdigit())
        out["pid.available"] = Observation(capacity - running, capacity)
    return out


def disk_usage(paths: Iterable[Path]) -> tuple[int, int]:
    """(bytes, inodes) under some directories, symlinks not followed; what
    goes meanwhile is not counted."""
    used = inodes = 0
    stack = list(paths)
    while stack:
        path = stack.pop()
        try:
            st = os.lstat(path)
        except OSError:
            continue
        inodes += 1
        used += st.st_blocks * 512
        if stat.S_ISDIR(st.st_mode):
            with contextlib.suppress(OSError):
                stack.extend(Path(e.path) for e in os.scandir(path))
    return used, inodes


def _statvfs(path: Path) -> os.statvfs_result | None:
    try:
        return os.statvfs(path)
    except OSError:
        return None


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                out[name] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    return out


def _int(path: str) -> int:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return 0
