"""`kpy-proxy`: the Service proxy of one node (kpy's kube-proxy), as a process.

Prints `kpy-proxy <node> proxying in <mode> mode` once its rules are in
place (see kpy.proxy.proxier); stops cleanly on SIGTERM or SIGINT,
removing what it installed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import anyio

from kpy import logs
from kpy._process import cancel_on_signal, exit_with_parent
from kpy.client import Client
from kpy.client.config import ConfigError, load_config
from kpy.proxy import iptables
from kpy.proxy.proxier import MODES, Proxier

COMPONENT = "kpy-proxy"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=COMPONENT, description="Route Service addresses to ready endpoints (kube-proxy)."
    )
    p.add_argument("--server", default=None, help="API server address(es), comma-separated")
    p.add_argument(
        "--kubeconfig",
        default=None,
        metavar="FILE",
        help="the kpy client config (servers, certificate-authority, client-certificate, "
        "client-key) to call the API with; --server overrides its servers",
    )
    p.add_argument("--node-name", default="", help="the node this proxy runs on (required)")
    p.add_argument(
        "--cluster-uid",
        default="",
        help="the cluster's uid (`kpy up` passes it): its first 8 hex digits name the "
        "iptables chains (KPY-<id>-...), so clusters sharing a machine never touch each "
        "other's (default: derived from --server)",
    )
    p.add_argument("--proxy-mode", choices=MODES, default="auto", help="default %(default)s")
    p.add_argument("--node-ip", default="", help="address of node ports (default: InternalIP)")
    p.add_argument("--status-file", type=Path, default=None, help="where the mode is written")
    p.add_argument("--resync-period", type=float, default=30.0, metavar="SECONDS")
    p.add_argument(
        "--cleanup",
        action="store_true",
        help="remove the iptables chains of --cluster-uid and exit (as kube-proxy --cleanup)",
    )
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.resync_period > 0:
        parser.error(f"--resync-period must be positive, got {args.resync_period:g}")
    uid = args.cluster_uid or (args.server or "default")
    if not args.cleanup and not args.node_name:
        parser.error("--node-name is required (the node this proxy runs on)")
    if args.cleanup:
        try:
            iptables.cleanup(uid)
        except iptables.IptablesError as e:
            print(f"{COMPONENT}: {e}", file=sys.stderr)
            return 1
        return 0
    servers = [s.strip() for s in args.server.split(",") if s.strip()] if args.server else None
    try:
        config = load_config(args.kubeconfig, servers=servers)
    except ConfigError as e:
        parser.error(str(e))
    exit_with_parent()
    logs.configure(args.log_level)

    async def serve() -> None:
        async with Client(config) as client, anyio.create_task_group() as tg:
            tg.start_soon(cancel_on_signal, tg.cancel_scope)
            proxier = Proxier(
                client,
                node_name=args.node_name,
                cluster_uid=uid,
                mode=args.proxy_mode,
                node_ip=args.node_ip,
                status_file=args.status_file,
                resync_period=args.resync_period,
            )
            mode = await tg.start(lambda task_status: proxier.run(task_status=task_status))
            print(f"{COMPONENT} {args.node_name} proxying in {mode} mode", flush=True)

    failures: list[str] = []
    try:
        anyio.run(serve)
    except* iptables.IptablesError as group:
        failures += [str(failure) for failure in group.exceptions]
    for failure in failures:
        print(f"{COMPONENT}: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
