"""`kpy-apiserver`: the API server as a process.

Prints `kpy-apiserver serving on HOST:PORT` on stdout once it accepts calls
(so a launcher can wait for that line), and stops cleanly on SIGTERM or
SIGINT.
"""

from __future__ import annotations

import argparse
import sys

import anyio

from kpy import logs
from kpy._process import cancel_on_signal, exit_with_parent
from kpy.apiserver import admission, service_alloc
from kpy.apiserver.compaction import parse_interval
from kpy.apiserver.server import APIServer, ServerConfig


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kpy-apiserver", description="Serve the kpy API over gRPC, backed by etcd."
    )
    p.add_argument(
        "--etcd-servers",
        default="127.0.0.1:2379",
        help="comma-separated etcd endpoints host:port (default %(default)s)",
    )
    p.add_argument("--bind-address", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=6443, help="port to listen on; 0 picks a free one")
    p.add_argument("--etcd-prefix", default="/registry", help="key prefix of every object")
    p.add_argument("--watch-cache-size", type=int, default=20_000, help="events kept per resource")
    p.add_argument(
        "--watch-queue-size",
        type=int,
        default=1_000,
        help="events a watch may fall behind by before it is closed (default %(default)s)",
    )
    p.add_argument(
        "--bookmark-interval", type=float, default=5.0, help="seconds between watch bookmarks"
    )
    p.add_argument(
        "--etcd-compaction-interval",
        default="5m",
        help="how often an API server compacts etcd's history, keeping one interval of it: "
        "seconds or a duration (5m, 90s); 0 disables (default %(default)s)",
    )
    p.add_argument(
        "--etcd-request-timeout",
        type=float,
        default=10.0,
        help="seconds one etcd request may take before the call fails with Timeout "
        "(default %(default)s; keep it under clients' timeouts)",
    )
    for which in ("not-ready", "unreachable"):
        p.add_argument(
            f"--default-{which}-toleration-seconds",
            type=int,
            default=admission.DEFAULT_TOLERATION_SECONDS,
            metavar="S",
            help=f"seconds every pod tolerates the node.kubernetes.io/{which}:NoExecute taint "
            "unless it says otherwise (DefaultTolerationSeconds; default %(default)s)",
        )
    p.add_argument(
        "--service-cluster-ip-range",
        default=service_alloc.DEFAULT_CLUSTER_IP_RANGE,
        help="CIDR Services' cluster IPs come from: inside 127.0.0.0/8, or inside "
        f"{service_alloc.DOCKER_SERVICES} (the part of kpy's Docker bridge no container gets) "
        "(default %(default)s)",
    )
    p.add_argument(
        "--service-node-port-range",
        default=service_alloc.DEFAULT_NODE_PORT_RANGE,
        help="FIRST-LAST: the ports NodePort Services get (default %(default)s)",
    )
    p.add_argument("--log-level", default="INFO")
    return p


async def _serve(config: ServerConfig) -> None:
    server = APIServer(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_on_signal, tg.cancel_scope)
        port = await tg.start(server.run)
        print(f"kpy-apiserver serving on {config.address}:{port}", flush=True)


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Rejects values the server cannot run with, naming the flag (exit 2)."""
    positive = {
        "--watch-cache-size": args.watch_cache_size,
        "--watch-queue-size": args.watch_queue_size,
        "--bookmark-interval": args.bookmark_interval,
        "--etcd-request-timeout": args.etcd_request_timeout,
    }
    for flag, value in positive.items():
        if not value > 0:
            parser.error(f"{flag} must be positive, got {value}")
    for flag, seconds in (
        ("--default-not-ready-toleration-seconds", args.default_not_ready_toleration_seconds),
        ("--default-unreachable-toleration-seconds", args.default_unreachable_toleration_seconds),
    ):
        if seconds < 0:
            parser.error(f"{flag} must not be negative, got {seconds}")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {args.port}")
    try:
        parse_interval(args.etcd_compaction_interval)
    except ValueError as e:
        parser.error(f"--etcd-compaction-interval: {e}")
    for flag, parse in (
        ("--service-cluster-ip-range", service_alloc.parse_cluster_ip_range),
        ("--service-node-port-range", service_alloc.parse_node_port_range),
    ):
        try:
            parse(getattr(args, flag[2:].replace("-", "_")))
        except ValueError as e:
            parser.error(f"{flag}: {e}")


def main(argv: list[str] | None = None) -> int:
    exit_with_parent()
    parser = _parser()
    args = parser.parse_args(argv)
    _check(parser, args)
    logs.configure(args.log_level)
    endpoints = tuple(e.strip() for e in args.etcd_servers.split(",") if e.strip())
    config = ServerConfig(
        etcd_endpoints=endpoints,
        address=args.bind_address,
        port=args.port,
        prefix=args.etcd_prefix,
        watch_cache_capacity=args.watch_cache_size,
        watcher_queue_size=args.watch_queue_size,
        bookmark_interval=args.bookmark_interval,
        compaction_interval=parse_interval(args.etcd_compaction_interval),
        etcd_request_timeout=args.etcd_request_timeout,
        service_ranges=service_alloc.ServiceRanges(
            service_alloc.parse_cluster_ip_range(args.service_cluster_ip_range),
            service_alloc.parse_node_port_range(args.service_node_port_range),
        ),
        admission_options=admission.AdmissionOptions(
            not_ready_toleration_seconds=args.default_not_ready_toleration_seconds,
            unreachable_toleration_seconds=args.default_unreachable_toleration_seconds,
        ),
    )
    failed: list[OSError] = []
    try:
        anyio.run(_serve, config)
    except* OSError as group:  # raised inside the server's task group
        failed = _leaves(group)
    for e in failed:
        print(f"kpy-apiserver: {e}", file=sys.stderr)
    return 1 if failed else 0


def _leaves(group: BaseExceptionGroup[OSError]) -> list[OSError]:
    out: list[OSError] = []
    for e in group.exceptions:
        out.extend(_leaves(e) if isinstance(e, BaseExceptionGroup) else [e])
    return out


if __name__ == "__main__":
    sys.exit(main())
