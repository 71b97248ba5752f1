"""What every leader-elected kpy component shares (the controller manager,
the scheduler): its common flags, its metrics endpoint, leader election
and the process's life.

- `add_flags(parser, ...)` adds `--server`, `--kubeconfig`, `--leader-elect*`, `--identity`,
  `--metrics-bind-address` and `--log-level` with Kubernetes' names and
  defaults; `options(parser, args)` checks them (exit 2 naming the flag).
- `run_elected(...)` serves metrics at once (so a standby can be watched
  too), then runs `lead` only while holding the Lease, and raises
  `LeadershipLost` if the Lease is lost: the process exits so its
  supervisor restarts it as a fresh candidate, never acting on a stale view.
- `main(...)` is the process: dies with its launcher, stops cleanly on
  SIGTERM / SIGINT, and prints `<component> serving metrics on HOST:PORT`
  then `<component> leading as IDENTITY` for launchers to wait on.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import anyio
import anyio.abc

from kpy import logs
from kpy import metrics as metrics_server
from kpy._process import cancel_on_signal, exit_with_parent
from kpy.cache.leader_election import LeaderElectionConfig, LeaderElector
from kpy.client import Client
from kpy.client.config import ClientConfig, ConfigError, load_config

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from kpy.metrics import Metrics

log = logging.getLogger("kpy.component")

__all__ = [
    "Elected",
    "ElectionOptions",
    "LeadershipLost",
    "Options",
    "add_flags",
    "main",
    "options",
    "run_elected",
]


class LeadershipLost(RuntimeError):
    """This replica could not renew its Lease; another may lead now."""


@dataclass(frozen=True, slots=True)
class ElectionOptions:
    enabled: bool = True
    name: str = ""
    namespace: str = "kube-system"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    identity: str = ""

    def resolved_identity(self) -> str:
        return self.identity or f"{socket.gethostname()}_{os.getpid()}"


@dataclass(frozen=True, slots=True)
class Options:
    client: ClientConfig
    election: ElectionOptions
    metrics_host: str
    metrics_port: int | None  # None: no metrics endpoint
    log_level: str


def add_flags(parser: argparse.ArgumentParser, *, lease_name: str, metrics_port: int) -> None:
    parser.add_argument(
        "--server",
        default=None,
        help="comma-separated API servers host:port (default: ~/.kpy/config, else 127.0.0.1:6443)",
    )
    parser.add_argument(
        "--kubeconfig",
        default=None,
        metavar="FILE",
        help="the kpy client config (servers, certificate-authority, client-certificate, "
        "client-key) to call the API with; --server overrides its servers "
        "(default: KPY_CONFIG, else ~/.kpy/config)",
    )
    parser.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run only while holding the Lease (default on)",
    )
    parser.add_argument("--leader-elect-lease-duration", type=float, default=15.0, metavar="S")
    parser.add_argument("--leader-elect-renew-deadline", type=float, default=10.0, metavar="S")
    parser.add_argument("--leader-elect-retry-period", type=float, default=2.0, metavar="S")
    parser.add_argument("--leader-elect-resource-name", default=lease_name, metavar="NAME")
    parser.add_argument("--leader-elect-resource-namespace", default="kube-system", metavar="NS")
    parser.add_argument(
        "--identity", default="", help="this replica's name in the Lease (default host_pid)"
    )
    parser.add_argument(
        "--metrics-bind-address",
        default=f"127.0.0.1:{metrics_port}",
        metavar="HOST:PORT",
        help="where /metrics and /healthz are served; port 0 picks a free one; '' turns them off",
    )
    parser.add_argument("--log-level", default="INFO")


def options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Options:
    """The common options; exits with code 2 naming the flag at fault."""
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
    servers = [s.strip() for s in args.server.split(",") if s.strip()] if args.server else None
    try:
        client = load_config(args.kubeconfig, servers=servers)
    except ConfigError as e:
        parser.error(str(e))
    election = ElectionOptions(
        enabled=args.leader_elect,
        name=args.leader_elect_resource_name,
        namespace=args.leader_elect_resource_namespace,
        lease_duration=lease,
        renew_deadline=renew,
        retry_period=retry,
        identity=args.identity,
    )
    return Options(client, election, host, port, args.log_level)


async def run_elected(
    component: str,
    client: Client,
    metrics: Metrics,
    election: ElectionOptions,
    lead: Callable[[], Awaitable[None]],
    *,
    metrics_host: str = "127.0.0.1",
    metrics_port: int | None = None,
    task_status: anyio.abc.TaskStatus[int | None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """See the module docstring; reports the metrics port (None if off)."""
    async with anyio.create_task_group() as tg:
        port = None
        if metrics_port is not None:
            port = await tg.start(metrics_server.serve, metrics, metrics_host, metrics_port)
        task_status.started(port)

        async def leading() -> None:
            metrics.leader.labels(component).set(1)
            try:
                await lead()
            finally:
                metrics.leader.labels(component).set(0)

        if not election.enabled:
            await leading()
            tg.cancel_scope.cancel()
            return
        elector = LeaderElector(
            client,
            LeaderElectionConfig(
                name=election.name,
                identity=election.resolved_identity(),
                namespace=election.namespace,
                lease_duration=election.lease_duration,
                renew_deadline=election.renew_deadline,
                retry_period=election.retry_period,
            ),
        )
        log.info("waiting for the lease", extra={"lease": election.name, "component": component})
        await elector.run(leading)
        raise LeadershipLost(f"lost the lease {election.namespace}/{election.name}")


class Elected(Protocol):
    """A component as `main` runs it: `run` reports its metrics port and
    runs until cancelled; `leading` is set once it leads."""

    leading: anyio.Event

    async def run(self, *, task_status: anyio.abc.TaskStatus[int | None]) -> None: ...


def main(component: str, opts: Options, new: Callable[[Client], Elected]) -> int:
    """Runs the component `new(client)` as the process (see the module docstring)."""
    exit_with_parent()
    logs.configure(opts.log_level)

    async def serve() -> None:
        async with Client(opts.client) as client, anyio.create_task_group() as tg:
            elected = new(client)

            async def announce_leading() -> None:
                await elected.leading.wait()
                identity = opts.election.resolved_identity()
                print(f"{component} leading as {identity}", flush=True)

            tg.start_soon(cancel_on_signal, tg.cancel_scope)
            port = await tg.start(lambda task_status: elected.run(task_status=task_status))
            where = f"{opts.metrics_host}:{port}" if port is not None else "(off)"
            print(f"{component} serving metrics on {where}", flush=True)
            tg.start_soon(announce_leading)

    failures: list[str] = []
    try:
        anyio.run(serve)
    except* LeadershipLost as group:
        failures += [f"{e}; exiting so a supervisor restarts it" for e in group.exceptions]
    except* OSError as group:
        failures += [str(e) for e in group.exceptions]
    for failure in failures:
        print(f"{component}: {failure}", file=sys.stderr)
    return 1 if failures else 0
