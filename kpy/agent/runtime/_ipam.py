"""Pod sandbox IPs: the one interface runtimes allocate them through.

An IPAM hands out an address per sandbox (`allocate(sandbox_id)`), takes it
back when the sandbox stops (`release(ip)`, a no-op for an address it does
not hold), and after a restart keeps exactly the addresses of the sandboxes
still ready (`reclaim(live_ips)` frees the rest and returns them). Running
out is AddressExhaustedError. Two implementations:

- `LoopbackIPAM`, the process runtime's: real loopback addresses, claimed
  in a directory shared by every agent of the machine (below).
- `NodeRangeIPAM`, the simulated runtime's: addresses that are only names,
  10.x.y.z with x from the node name, held in memory.

(Docker's engine allocates its own addresses on its bridge.)

Loopback addresses:
Linux routes the whole of 127.0.0.0/8 to `lo`, so every pod can have an
address of its own with no configuration. `LoopbackIPAM` hands them out so
that they are unique on the machine even when several agents (different node
names, different state directories, different clusters) share it: an address
is claimed by creating the file `<ip_dir>/<ip>` exclusively, holding the node
name, the sandbox id and the cluster uid (one line each). An IPAM owns the
claims that carry both its node name and its cluster uid: two clusters on one
machine both have a `kpy-node-1`, and neither may free the other's addresses.
A claim written before claims carried a cluster uid has the empty uid. The
file appears atomically with its content (a hard link of a finished
temporary file, which fails like O_CREAT|O_EXCL if the name exists), so a
reader never sees a claim without its owner.

Addresses are scanned from 127.1.0.1 upward; 127.0.0.0/16 (127.0.0.1 and
friends, used by everything else on the machine) is never handed out, nor is
127.96.0.0/11 (`SERVICE_RANGES`: where every kpy cluster on the machine
takes its Service cluster IPs, see kpy.cluster.local), nor an address whose
last octet is 0 or 255.

The IPAM is not safe for concurrent use by two instances with the same node
name and cluster uid (one agent per node of a cluster); other instances may
race freely.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from kpy.agent.runtime.base import RuntimeError_

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

log = logging.getLogger("kpy.agent.runtime.ipam")

# One directory for the whole machine: claims in two different directories
# could hand the same address to two pods.
DEFAULT_IP_DIR = Path("/run/kpy/pod-ips")
FIRST = ipaddress.IPv4Address("127.1.0.1")
LAST = ipaddress.IPv4Address("127.255.255.254")
# Kept for Service cluster IPs (a pod holding one would be shadowed by the
# proxy's rules for it).
SERVICE_RANGES: Final = (ipaddress.IPv4Network("127.96.0.0/11"),)
_TMP_PREFIX = ".claim."


class AddressExhaustedError(RuntimeError_):
    reason = "CreatePodSandboxError"


@dataclass(frozen=True, slots=True)
class Claim:
    """Who holds an address: the node name, the sandbox id and the cluster."""

    node_name: str
    sandbox_id: str
    cluster_uid: str = ""


def is_assignable(ip: ipaddress.IPv4Address) -> bool:
    """Whether `ip` is one this IPAM may hand out."""
    last_octet = int(ip) & 0xFF
    return (
        FIRST <= ip <= LAST
        and last_octet not in (0, 255)
        and not any(ip in net for net in SERVICE_RANGES)
    )


def candidates(start: ipaddress.IPv4Address = FIRST) -> Iterator[ipaddress.IPv4Address]:
    """Assignable addresses from `start` (included if assignable) upward."""
    value = int(start)
    while value <= int(LAST):
        ip = ipaddress.IPv4Address(value)
        reserved = next((net for net in SERVICE_RANGES if ip in net), None)
        if reserved is not None:
            value = int(reserved.broadcast_address) + 1  # skipped whole, not address by address
            continue
        if is_assignable(ip):
            yield ip
        value += 1


class LoopbackIPAM:
    """Claims, releases and reclaims loopback addresses for one node of one
    cluster."""

    def __init__(self, ip_dir: Path, node_name: str, cluster_uid: str = "") -> None:
        if not node_name or "\n" in node_name:
            raise ValueError(f"node_name {node_name!r} must be a non-empty single line")
        if "\n" in cluster_uid:
            raise ValueError(f"cluster_uid {cluster_uid!r} must be a single line")
        self.ip_dir = ip_dir
        self.node_name = node_name
        self.cluster_uid = cluster_uid

    def owns(self, claim: Claim) -> bool:
        """Whether `claim` is this node's, in this cluster."""
        return (claim.node_name, claim.cluster_uid) == (self.node_name, self.cluster_uid)

    def allocate(self, sandbox_id: str) -> str:
        """Claims the lowest free address for `sandbox_id` and returns it.
        Raises AddressExhaustedError when every address is taken."""
        self.ip_dir.mkdir(parents=True, exist_ok=True)
        taken = set(os.listdir(self.ip_dir))
        tmp = self._write_tmp_claim(sandbox_id)
        try:
            for ip in candidates():
                name = str(ip)
                if name in taken:
                    continue
                try:
                    os.link(tmp, self.ip_dir / name)
                except FileExistsError:
                    continue  # another agent claimed it since the listing
                log.debug("claimed %s", name, extra={"sandbox": sandbox_id})
                return name
        finally:
            tmp.unlink(missing_ok=True)
        raise AddressExhaustedError(
            f"no free loopback address for sandbox {sandbox_id} in {self.ip_dir}: "
            f"all of {FIRST}-{LAST} are claimed; remove pods or stale claims there"
        )

    def release(self, ip: str) -> None:
        """Gives `ip` back if this node (of this cluster) holds it; a no-op
        otherwise."""
        claim = self.claim(ip)
        if claim is None:
            return
        if not self.owns(claim):
            log.warning(
                "not releasing %s: it is claimed by node %s of cluster %r, not %s of %r",
                ip,
                claim.node_name,
                claim.cluster_uid,
                self.node_name,
                self.cluster_uid,
            )
            return
        (self.ip_dir / ip).unlink(missing_ok=True)

    def reclaim(self, live_ips: Iterable[str]) -> list[str]:
        """Releases this node's claims (in this cluster) that are not in
        `live_ips` (left by a crash between claiming and recording an
        address, or by a sandbox record that is gone); returns the released
        addresses."""
        live = set(live_ips)
        released = []
        for name, claim in self.claims().items():
            if self.owns(claim) and name not in live:
                (self.ip_dir / name).unlink(missing_ok=True)
                released.append(name)
        self._remove_stale_tmp_claims()
        if released:
            log.info("reclaimed %d loopback addresses", len(released), extra={"ips": released})
        return released

    def claim(self, ip: str) -> Claim | None:
        """The claim on `ip`, or None if it is free."""
        return _read_claim(self.ip_dir / ip)

    def claims(self) -> dict[str, Claim]:
        """Every claimed address in the directory, by any node of any cluster."""
        if not self.ip_dir.is_dir():
            return {}
        result = {}
        for name in os.listdir(self.ip_dir):
            if not _is_ipv4(name):
                continue
            claim = _read_claim(self.ip_dir / name)
            if claim is not None:
                result[name] = claim
        return result

    def _write_tmp_claim(self, sandbox_id: str) -> Path:
        tmp = self.ip_dir / f"{_TMP_PREFIX}{os.getpid()}.{uuid.uuid4().hex}"
        tmp.write_text(f"{self.node_name}\n{sandbox_id}\n{self.cluster_uid}\n")
        return tmp

    def _remove_stale_tmp_claims(self) -> None:
        # A crash in allocate() can leave its temporary file behind.
        if not self.ip_dir.is_dir():
            return
        for name in os.listdir(self.ip_dir):
            if not name.startswith(_TMP_PREFIX):
                continue
            claim = _read_claim(self.ip_dir / name)
            if claim is not None and self.owns(claim):
                (self.ip_dir / name).unlink(missing_ok=True)


# Host numbers 1..65534 of a node's 10.x.0.0/16.
NODE_RANGE_SIZE: Final = 65534


class NodeRangeIPAM:
    """Addresses 10.x.y.z for a simulated node, x from a hash of the node
    name (so nodes usually differ), y.z unique among the addresses held.
    Next-fit, so an allocation is O(1) until the range is nearly full.
    Nothing is kept on disk: `reclaim` with the live sandboxes' addresses
    restores the holdings after a restart."""

    def __init__(self, node_name: str) -> None:
        self._prefix = f"10.{zlib.crc32(node_name.encode()) % 256}."
        self._used: set[int] = set()
        self._next = 1

    def allocate(self, sandbox_id: str) -> str:
        """The next free address; AddressExhaustedError when all are held."""
        for _ in range(NODE_RANGE_SIZE):
            host = self._next
            self._next = host % NODE_RANGE_SIZE + 1
            if host not in self._used:
                self._used.add(host)
                return f"{self._prefix}{host >> 8}.{host & 255}"
        raise AddressExhaustedError(
            f"no free sandbox IP in {self._prefix}0.0/16 for sandbox {sandbox_id}: "
            f"{NODE_RANGE_SIZE} sandboxes are ready; stop some pods"
        )

    def release(self, ip: str) -> None:
        """Gives `ip` back; a no-op if it is not held."""
        self._used.discard(self._host(ip))

    def reclaim(self, live_ips: Iterable[str]) -> list[str]:
        """Holds exactly `live_ips`; returns the addresses it let go."""
        live = {self._host(ip) for ip in live_ips}
        released = sorted(self._used - live)
        self._used = live
        return [f"{self._prefix}{host >> 8}.{host & 255}" for host in released]

    def _host(self, ip: str) -> int:
        _, _, y, z = ip.split(".")
        return int(y) << 8 | int(z)


def _is_ipv4(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def _read_claim(path: Path) -> Claim | None:
    try:
        lines = path.read_text().splitlines()
    except (FileNotFoundError, IsADirectoryError):
        return None
    # Missing lines are empty: a claim from before claims named their cluster.
    node_name, sandbox_id, cluster_uid = [*lines, "", "", ""][:3]
    return Claim(node_name=node_name, sandbox_id=sandbox_id, cluster_uid=cluster_uid)
