"""Each local cluster's own Service cluster IP range.

Every kpy proxy on a machine programs the machine's one set of tables (or
listens on its one loopback interface), so two clusters must never hand
out the same cluster IP: `claim(uid, directory)` gives each cluster a /16
of 127.96.0.0/11 (`SERVICE_RANGES` of the process runtime's IPAM, which
never gives those addresses to pods), the lowest one no other live cluster
holds, passed to its API server as `--service-cluster-ip-range`. A cluster
of Docker pods (`docker=True`) gets a /20 of 172.30.128.0/17 instead: the
part of kpy's Docker bridge no container gets, reachable from the
containers (a loopback address is not: it is each container's own).

A range is claimed by creating `<claim_dir>/<network>` exclusively (as pod
IPs are, see kpy.agent.runtime), holding the cluster uid and directory. A
claim is stale, and taken over, when that directory's `cluster.json` no
longer names that uid (the cluster went down or was started again) and
the claim is older than `GRACE` seconds (a cluster starting meanwhile has
not written its `cluster.json` yet). `release(uid)` frees the cluster's
claim (`kpy down`).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

from kpy.agent.runtime import SERVICE_RANGES
from kpy.apiserver.service_alloc import DOCKER_SERVICES

if TYPE_CHECKING:
    import ipaddress

DEFAULT_CLAIM_DIR: Final = Path("/run/kpy/service-ranges")
PREFIX_LENGTH: Final = 16
DOCKER_PREFIX_LENGTH: Final = 20
GRACE: Final = 300.0  # seconds: longer than any `kpy up`


class NoServiceRangeError(RuntimeError):
    """Every range is held by a live cluster."""


def candidates(*, docker: bool = False) -> list[ipaddress.IPv4Network]:
    if docker:
        return list(DOCKER_SERVICES.subnets(new_prefix=DOCKER_PREFIX_LENGTH))
    return [sub for net in SERVICE_RANGES for sub in net.subnets(new_prefix=PREFIX_LENGTH)]


def claim(
    uid: str, directory: Path, claim_dir: Path = DEFAULT_CLAIM_DIR, *, docker: bool = False
) -> str:
    """The range of cluster `uid` (in `directory`): the one it holds, or
    the lowest free one, claimed. NoServiceRangeError if none is free."""
    claim_dir.mkdir(parents=True, exist_ok=True)
    for net in candidates(docker=docker):
        path = claim_dir / _file_name(net)
        content = json.dumps({"uid": uid, "directory": str(directory.absolute())})
        for _ in range(2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = _read(path)
                if holder.get("uid") == uid:
                    return str(net)
                if not _stale(path, holder):
                    break
                path.unlink(missing_ok=True)  # then try to create it again
                continue
            with os.fdopen(fd, "w") as f:
                f.write(content + "\n")
            return str(net)
    supernets = [DOCKER_SERVICES] if docker else SERVICE_RANGES
    raise NoServiceRangeError(
        f"every Service range of {', '.join(map(str, supernets))} is held by a running "
        f"kpy cluster (claims in {claim_dir}); stop one with `kpy down`"
    )


def release(uid: str, claim_dir: Path = DEFAULT_CLAIM_DIR) -> None:
    """Frees the range cluster `uid` holds, if any."""
    if not claim_dir.is_dir():
        return
    for path in claim_dir.iterdir():
        if _read(path).get("uid") == uid:
            path.unlink(missing_ok=True)


def _file_name(net: ipaddress.IPv4Network) -> str:
    return str(net).replace("/", "_")


def _read(path: Path) -> dict[str, str]:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            return {str(k): str(v) for k, v in data.items()}
    return {}


def _stale(path: Path, holder: dict[str, str]) -> bool:
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return True
    if age < GRACE:
        return False
    try:
        state = json.loads((Path(holder.get("directory", "")) / "cluster.json").read_text())
    except (OSError, ValueError):
        return True
    return not isinstance(state, dict) or state.get("uid") != holder.get("uid")
