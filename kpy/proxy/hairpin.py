"""Hairpin mode on the ports of kpy's Docker bridge (kubelet's
`--hairpin-mode=hairpin-veth`, which kpy's Docker runtime does not do),
and `route_localnet` on the bridge (as kube-proxy sets it, here on that one
interface only): `127.0.0.1:<node port>` DNATed to a container leaves the
host with a loopback source until MASQUERADE rewrites it, which the kernel
refuses to route out of an interface without it.

A container reaching its own Service may be sent to itself: the packet
comes in from its veth, is DNATed back to its own address, and must leave
by the same bridge port, which a bridge refuses unless that port is in
hairpin mode. `enable(bridge)` turns it on for every port of `bridge`
(`/sys/class/net/<bridge>/brif/*/hairpin_mode`); kpy-proxy calls it at each
sync of the iptables mode, so a new pod's port gets it within a sync of its
endpoint appearing. It is never turned off: the setting goes with the veth
when the container does.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

log = logging.getLogger("kpy.proxy.hairpin")

BRIDGE: Final = "docker0"  # kpy's engine's bridge (deploy/docker-engine.sh)
SYS_NET: Final = Path("/sys/class/net")


def enable(bridge: str = BRIDGE, sys_net: Path = SYS_NET) -> list[str]:
    """Puts every port of `bridge` in hairpin mode; returns the ports it
    changed (none if there is no such bridge)."""
    ports = sys_net / bridge / "brif"
    changed = []
    try:
        names = sorted(p.name for p in ports.iterdir())
    except OSError:
        return []
    for name in names:
        mode = ports / name / "hairpin_mode"
        try:
            if mode.read_text().strip() != "1":
                mode.write_text("1")
                changed.append(name)
        except OSError as e:  # the port went meanwhile, or no permission
            log.debug("cannot set hairpin mode on %s: %s", name, e)
    if changed:
        log.info("hairpin mode on %s", ", ".join(changed), extra={"bridge": bridge})
    _route_localnet(sys_net, bridge)
    return changed


def _route_localnet(sys_net: Path, bridge: str) -> None:
    if not (sys_net / bridge).is_dir():
        return
    # /proc/sys/net/ipv4/conf/<bridge>/route_localnet, next to a real /sys.
    setting = Path("/proc/sys/net/ipv4/conf") / bridge / "route_localnet"
    if sys_net != SYS_NET:  # a test's fake tree: its own file
        setting = sys_net / bridge / "route_localnet"
    try:
        if setting.read_text().strip() != "1":
            setting.write_text("1")
            log.info("route_localnet on %s", bridge)
    except OSError as e:
        log.debug("cannot set route_localnet on %s: %s", bridge, e)
