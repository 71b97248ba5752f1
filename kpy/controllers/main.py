"""`kpy-controller-manager`: the controllers as a process.

Prints `kpy-controller-manager serving metrics on HOST:PORT` once its
metrics endpoint is up (before it leads, so a standby replica is visible
too), then `kpy-controller-manager leading as IDENTITY` once it holds the
Lease and its controllers run. Stops cleanly on SIGTERM or SIGINT and hands
the Lease over; exits with code 1 if it loses the Lease (run it under a
supervisor that restarts it, as Kubernetes' is).
"""

from __future__ import annotations

import argparse
import signal
import sys

import anyio

from kpy import logs
from kpy._process import exit_with_parent
from kpy.client import Client
from kpy.client.config import ClientConfig, ConfigError, load_config
from kpy.controllers.manager import (
    ControllerManager,
    LeadershipLost,
    ManagerConfig,
    known_controllers,
    select_controllers,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kpy-controller-manager",
        description="Run kpy's controllers (ReplicaSet, Deployment, garbage collector, ...).",
    )
    p.add_argument(
        "--server",
        default=None,
        help="comma-separated API servers host:port (default: ~/.kpy/config, else 127.0.0.1:6443)",
    )
    p.add_argument(
        "--controllers",
        default="*",
        help="comma-separated controllers: '*' for all, 'foo' to add one, '-foo' to leave one "
        f"out (known: {', '.join(sorted(known_controllers()))})",
    )
    for name, spec in sorted(known_controllers().items()):
        p.add_argument(
            f"--concurrent-{name}-syncs",
            type=int,
            default=spec.workers,
            metavar="N",
            help=f"workers of the {name} controller (default %(default)s)",
        )
    p.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run only while holding the Lease (default on)",
    )
    p.add_argument("--leader-elect-lease-duration", type=float, default=15.0, metavar="SECONDS")
    p.add_argument("--leader-elect-renew-deadline", type=float, default=10.0, metavar="SECONDS")
    p.add_argument("--leader-elect-retry-period", type=float, default=2.0, metavar="SECONDS")
    p.add_argument("--leader-elect-resource-name", default="kpy-controller-manager")
    p.add_argument("--leader-elect-resource-namespace", default="kube-system")
    p.add_argument(
        "--identity", default="", help="this replica's name in the Lease (default host_pid)"
    )
    p.add_argument(
        "--metrics-bind-address",
        default="127.0.0.1:10257",
        help="HOST:PORT of /metrics and /healthz; port 0 picks a free one; '' turns them off",
    )
    p.add_argument("--log-level", default="INFO")
    return p


def _config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ManagerConfig:
    """The manager's config; exits with code 2 naming the flag at fault."""
    known = known_controllers()
    try:
        chosen = select_controllers(args.controllers.split(","), known)
    except ValueError as e:
        parser.error(str(e))
    workers = {}
    for name in known:
        flag = f"concurrent_{name}_syncs"
        value = getattr(args, flag)
        if value < 1:
            parser.error(f"--concurrent-{name}-syncs must be at least 1, got {value}")
        workers[name] = value
    host, port = "127.0.0.1", None
    if args.metrics_bind_address:
        host, _, port_text = args.metrics_bind_address.rpartition(":")
        if not host or not port_text.isdigit() or int(port_text) > 65535:
            parser.error(
                f"--metrics-bind-address must be HOST:PORT, got {args.metrics_bind_address!r}"
            )
        port = int(port_text)
    lease, renew, retry = (
        args.leader_elect_lease_duration,
        args.leader_elect_renew_deadline,
        args.leader_elect_retry_period,
    )
    if not 0 < retry < renew < lease:
        parser.error(
            "leader election needs 0 < --leader-elect-retry-period < "
            "--leader-elect-renew-deadline < --leader-elect-lease-duration, "
            f"got {retry} < {renew} < {lease}"
        )
    return ManagerConfig(
        controllers=tuple(chosen),
        workers=workers,
        leader_elect=args.leader_elect,
        lease_name=args.leader_elect_resource_name,
        lease_namespace=args.leader_elect_resource_namespace,
        lease_duration=lease,
        renew_deadline=renew,
        retry_period=retry,
        identity=args.identity,
        metrics_host=host,
        metrics_port=port,
    )


async def _serve(client_config: ClientConfig, config: ManagerConfig) -> None:
    async with Client(client_config) as client:
        manager = ControllerManager(client, config)
        async with anyio.create_task_group() as tg:

            async def stop_on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for _ in signals:
                        tg.cancel_scope.cancel()
                        return

            async def announce_leading() -> None:
                await manager.leading.wait()
                print(f"kpy-controller-manager leading as {manager.identity}", flush=True)

            tg.start_soon(stop_on_signal)
            port = await tg.start(manager.run)
            if port is not None:
                print(
                    f"kpy-controller-manager serving metrics on {config.metrics_host}:{port}",
                    flush=True,
                )
            else:
                print("kpy-controller-manager serving metrics on (off)", flush=True)
            tg.start_soon(announce_leading)


def main(argv: list[str] | None = None) -> int:
    exit_with_parent()
    parser = _parser()
    args = parser.parse_args(argv)
    config = _config(parser, args)
    logs.configure(args.log_level)
    servers = [s.strip() for s in args.server.split(",") if s.strip()] if args.server else None
    try:
        client_config = load_config(servers=servers) if servers else load_config()
    except ConfigError as e:
        print(f"kpy-controller-manager: {e}", file=sys.stderr)
        return 2
    failures: list[str] = []
    try:
        anyio.run(_serve, client_config, config)
    except* LeadershipLost as group:
        failures += [f"{e}; exiting so a supervisor restarts it" for e in group.exceptions]
    except* OSError as group:
        failures += [str(e) for e in group.exceptions]
    for failure in failures:
        print(f"kpy-controller-manager: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
