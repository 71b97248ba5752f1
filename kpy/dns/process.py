"""Run `kpy-dns` as a child process (for tests and the local cluster
launcher; see kpy._process: stopped by pid, dies with its launcher), and
where a cluster's DNS lives: `service_ip(range)`, the 10th address of the
Service range, which Kubernetes reserves for kube-dns."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Final

from kpy._process import ChildProcess
from kpy.dns.records import DEFAULT_DOMAIN

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

SERVICE_NAME: Final = "kube-dns"
SERVICE_NAMESPACE: Final = "kube-system"
SERVICE_OFFSET: Final = 10


def service_ip(cluster_ip_range: str) -> str:
    """The cluster DNS address of a Service range (10.96.0.0/12 ->
    10.96.0.10); ValueError when the range is not a CIDR or too small."""
    network = ipaddress.ip_network(cluster_ip_range, strict=False)
    if network.num_addresses <= SERVICE_OFFSET + 1:
        raise ValueError(f"Service range {cluster_ip_range} is too small for a DNS address")
    return str(network.network_address + SERVICE_OFFSET)


class DNSProcess(ChildProcess):
    """`kpy-dns` answering on each of `listen` (HOST:PORT); forwarding stays
    off unless `upstream` is given."""

    component = "kpy-dns"

    def __init__(
        self,
        servers: str,
        listen: Sequence[str],
        *,
        domain: str = DEFAULT_DOMAIN,
        upstream: str = "",
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
        detached: bool = False,
    ) -> None:
        args = ["--server", servers, "--cluster-domain", domain]
        for address in listen:
            args += ["--listen", address]
        if upstream:
            args += ["--upstream", upstream]
        super().__init__(
            self.component,
            "kpy.dns.main",
            [*args, *extra_args],
            ready=r"kpy-dns serving on (\S+):(\d+)",
            log_path=log_path,
            detached=detached,
        )

    @property
    def address(self) -> str:
        """HOST:PORT of the first address it answers on (once started)."""
        if self.ready_match is None:
            raise RuntimeError(f"{self.component} has not started")
        return f"{self.ready_match.group(1)}:{self.ready_match.group(2)}"
