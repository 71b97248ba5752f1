"""`kpy-ingress`: kpy's ingress controller as a process.

Serves HTTP and HTTPS on `--bind-address` (127.0.0.1) and routes by the
Ingresses of its IngressClasses (`--controller-name`, kpy.io/ingress).
Prints `kpy-ingress serving http on HOST:PORT https on HOST:PORT` once
both listeners are up and the first routing table is in place (launchers
wait on it; port 0 picks a free port). Stops cleanly on SIGTERM or SIGINT.
Every replica serves: there is no leader election, a second replica is a
second entry point.
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
from kpy.ingress._controller import CONTROLLER_NAME, IngressController, StatusAddress
from kpy.ingress._proxy import IngressProxy, ProxyOptions
from kpy.ingress._routes import Certificate

COMPONENT = "kpy-ingress"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=COMPONENT, description="Route HTTP(S) to Services by the cluster's Ingresses."
    )
    p.add_argument(
        "--server",
        default=None,
        help="comma-separated API servers host:port (default: ~/.kpy/config, else 127.0.0.1:6443)",
    )
    p.add_argument(
        "--kubeconfig",
        default=None,
        metavar="FILE",
        help="the kpy client config (servers, certificate-authority, client-certificate, "
        "client-key) to call the API with; --server overrides its servers",
    )
    p.add_argument(
        "--bind-address", default="127.0.0.1", help="where to listen (default %(default)s)"
    )
    p.add_argument("--http-port", type=int, default=80, metavar="PORT", help="0: a free port")
    p.add_argument("--https-port", type=int, default=443, metavar="PORT", help="0: a free port")
    p.add_argument(
        "--controller-name",
        default=CONTROLLER_NAME,
        help="serve IngressClasses whose spec.controller is this (default %(default)s)",
    )
    p.add_argument(
        "--default-tls-cert",
        type=Path,
        metavar="FILE",
        help="PEM certificate for server names no Ingress's TLS covers (with --default-tls-key); "
        "without it such TLS handshakes fail with unrecognized_name",
    )
    p.add_argument("--default-tls-key", type=Path, metavar="FILE")
    p.add_argument(
        "--resync-period", type=float, default=30.0, metavar="S", help="status retry period"
    )
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    for flag in ("http_port", "https_port"):
        if not 0 <= getattr(args, flag) <= 65535:
            parser.error(f"--{flag.replace('_', '-')} must be 0..65535")
    if (args.default_tls_cert is None) != (args.default_tls_key is None):
        parser.error("--default-tls-cert and --default-tls-key go together: give both or neither")
    default_cert = None
    if args.default_tls_cert is not None:
        try:
            default_cert = Certificate(
                "default", args.default_tls_cert.read_bytes(), args.default_tls_key.read_bytes()
            )
        except OSError as e:
            parser.error(f"reading the default certificate: {e}")
    servers = [s.strip() for s in args.server.split(",") if s.strip()] if args.server else None
    try:
        config = load_config(args.kubeconfig, servers=servers)
    except ConfigError as e:
        parser.error(str(e))
    exit_with_parent()
    logs.configure(args.log_level)
    options = ProxyOptions(
        bind_address=args.bind_address,
        http_port=args.http_port,
        https_port=args.https_port,
        default_certificate=default_cert,
    )

    async def serve() -> None:
        async with Client(config) as client, anyio.create_task_group() as tg:
            tg.start_soon(cancel_on_signal, tg.cancel_scope)
            proxy = IngressProxy(options)
            http_port, https_port = await tg.start(proxy.serve)
            address = StatusAddress(args.bind_address, http_port, https_port)
            controller = IngressController(
                client,
                proxy,
                address,
                controller=args.controller_name,
                resync_period=args.resync_period,
            )
            tg.start_soon(controller.run)
            await controller.synced.wait()
            host = args.bind_address
            print(
                f"{COMPONENT} serving http on {host}:{http_port} https on {host}:{https_port}",
                flush=True,
            )

    failures: list[str] = []
    try:
        anyio.run(serve)
    except* OSError as group:
        failures += [str(exc) for exc in group.exceptions]
    for failure in failures:
        print(f"{COMPONENT}: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
