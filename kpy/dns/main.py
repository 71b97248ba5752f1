"""`kpy-dns`: the cluster DNS server as a process (kpy's CoreDNS).

    kpy-dns --listen 127.96.0.10:53 [--listen 172.30.0.1:53] [--cluster-domain cluster.local]
            [--upstream 1.2.3.4:53]

Watches Services, EndpointSlices and Pods, and answers over UDP and TCP on
every `--listen` address (see `records` for the names). Names outside the
cluster domain are REFUSED unless `--upstream` names a resolver to forward
them to. Prints `kpy-dns serving on HOST:PORT` once per address after the
informers have synced; stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from typing import TYPE_CHECKING, Any, Final

import anyio

from kpy import logs
from kpy._process import cancel_on_signal, exit_with_parent
from kpy.api import errors
from kpy.api.core.v1 import Pod, Service
from kpy.api.discovery.v1 import EndpointSlice
from kpy.cache import SharedInformer
from kpy.client import Client
from kpy.client.config import ConfigError, load_config
from kpy.dns import records
from kpy.dns.server import DNSServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from anyio.abc import Listener, SocketStream, UDPSocket

    from kpy.client import ClientProtocol

COMPONENT: Final = "kpy-dns"
SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
_SLICE_INDEX: Final = "service"
_POD_IP_INDEX: Final = "ip"

log = logging.getLogger("kpy.dns")


def _slice_service(piece: EndpointSlice) -> list[str]:
    name = piece.metadata.labels.get(SERVICE_NAME_LABEL, "")
    return [f"{piece.metadata.namespace}/{name}"] if name else []


def _pod_ips(pod: Pod) -> list[str]:
    ips = {ip.ip for ip in pod.status.pod_ips} | {pod.status.pod_ip}
    return [f"{pod.metadata.namespace}/{ip}" for ip in sorted(ips) if ip]


class InformerCluster:
    """`records.Cluster` over the informers' caches."""

    def __init__(self, client: ClientProtocol) -> None:
        self.service_informer: SharedInformer[Service] = SharedInformer(client, Service)
        self.slice_informer: SharedInformer[EndpointSlice] = SharedInformer(
            client, EndpointSlice, indexers={_SLICE_INDEX: _slice_service}
        )
        self.pod_informer: SharedInformer[Pod] = SharedInformer(
            client, Pod, indexers={_POD_IP_INDEX: _pod_ips}
        )

    @property
    def informers(self) -> list[SharedInformer[Any]]:
        return [self.service_informer, self.slice_informer, self.pod_informer]

    def service(self, namespace: str, name: str) -> Service | None:
        found: Service | None = self.service_informer.indexer.get_by_key(f"{namespace}/{name}")
        return found

    def endpoint_slices(self, namespace: str, service: str) -> Sequence[EndpointSlice]:
        found: list[EndpointSlice] = self.slice_informer.indexer.by_index(
            _SLICE_INDEX, f"{namespace}/{service}"
        )
        return sorted(found, key=lambda s: s.metadata.name)

    def services(self) -> Iterable[Service]:
        found: list[Service] = self.service_informer.indexer.list()
        return found

    def pod_has_ip(self, namespace: str, ip: str) -> bool:
        return bool(self.pod_informer.indexer.by_index(_POD_IP_INDEX, f"{namespace}/{ip}"))


def parse_address(text: str, *, default_port: int = 53) -> tuple[str, int]:
    """`IP:PORT` or `IP` (port 53) as (host, port); ValueError naming the text."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(default_port)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r} is not IP:PORT (such as 127.96.0.10:53)") from None
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: the port must be 0-65535 (such as 127.96.0.10:53)")
    return host, int(port)


async def serve(
    client: ClientProtocol,
    listen: Sequence[tuple[str, int]],
    *,
    domain: str = records.DEFAULT_DOMAIN,
    upstream: tuple[str, int] | None = None,
    announce: Callable[[str], None] = lambda _: None,
    task_status: anyio.abc.TaskStatus[list[tuple[str, int]]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Runs the informers and answers on every address of `listen` (port 0:
    a free one, the same for UDP and TCP) until cancelled; reports the
    addresses it bound once the caches have synced."""
    cluster = InformerCluster(client)
    server = DNSServer(cluster, domain=domain, upstream=upstream)
    async with anyio.create_task_group() as tg:
        for informer in cluster.informers:
            tg.start_soon(informer.run)
        for informer in cluster.informers:
            await informer.wait_for_sync()
        bound: list[tuple[str, int]] = []
        for host, port in listen:
            udp, tcp = await _bind(host, port)
            tg.start_soon(server.serve_udp, udp)
            tg.start_soon(server.serve_tcp, tcp)
            bound.append((host, udp.extra(anyio.abc.SocketAttribute.local_port)))
            announce(f"{COMPONENT} serving on {host}:{bound[-1][1]}")
        log.info("serving", extra={"addresses": bound, "domain": domain, "upstream": upstream})
        task_status.started(bound)


async def _bind(host: str, port: int) -> tuple[UDPSocket, Listener[SocketStream]]:
    """A UDP socket and a TCP listener on the same address and port."""
    for _ in range(20 if port == 0 else 1):
        udp = await anyio.create_udp_socket(local_host=host, local_port=port)
        chosen = udp.extra(anyio.abc.SocketAttribute.local_port)
        try:
            tcp = await anyio.create_tcp_listener(local_host=host, local_port=chosen)
        except OSError:
            await udp.aclose()
            if port == 0:
                continue  # that port is taken for TCP: try another
            raise
        return udp, tcp
    raise OSError(f"no port free for both UDP and TCP on {host}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=COMPONENT, description="Answer DNS for the cluster's Services and Pods (CoreDNS)."
    )
    p.add_argument("--server", help="API server address(es), comma-separated (default: config)")
    p.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="the kpy client config (servers, certificate-authority, client-certificate, "
        "client-key) to call the API with; --server overrides its servers",
    )
    p.add_argument(
        "--listen",
        action="append",
        metavar="HOST:PORT",
        help="address to answer on, UDP and TCP; repeat for more (default 127.0.0.1:53)",
    )
    p.add_argument(
        "--cluster-domain",
        default=records.DEFAULT_DOMAIN,
        help="the domain of cluster names (default %(default)s)",
    )
    p.add_argument(
        "--upstream",
        metavar="HOST:PORT",
        help="resolver for names outside the cluster domain (default: none; they are REFUSED "
        "and no query leaves this machine)",
    )
    p.add_argument("--log-level", default="info", help="debug, info, warning or error")
    return p


def main(argv: list[str] | None = None) -> int:
    exit_with_parent()
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        listen = [parse_address(a) for a in (args.listen or ["127.0.0.1:53"])]
        upstream = parse_address(args.upstream) if args.upstream else None
    except ValueError as e:
        parser.error(str(e))
    domain = args.cluster_domain.lower().strip(".")
    if not domain:
        parser.error("--cluster-domain must not be empty (Kubernetes' default: cluster.local)")
    logs.configure(args.log_level)
    try:
        config = load_config(args.kubeconfig, servers=args.server or None)
    except ConfigError as e:
        print(f"{COMPONENT}: {e}", file=sys.stderr)
        return 2

    async def run() -> None:
        async with Client(config) as client, anyio.create_task_group() as tg:
            tg.start_soon(cancel_on_signal, tg.cancel_scope)
            announce = lambda line: print(line, flush=True)  # noqa: E731
            await tg.start(
                lambda task_status: serve(
                    client,
                    listen,
                    domain=domain,
                    upstream=upstream,
                    announce=announce,
                    task_status=task_status,
                )
            )

    failures: list[str] = []
    try:
        anyio.run(run)
    except* (OSError, errors.StatusError) as group:
        failures += [str(e) for e in group.exceptions]
    for failure in failures:
        print(
            f"{COMPONENT}: {failure}; is the address free, and may this user bind it?",
            file=sys.stderr,
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
