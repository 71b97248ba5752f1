"""`kpy-controller-manager`: the controllers as a process.

Prints `kpy-controller-manager serving metrics on HOST:PORT` once its
metrics endpoint is up (before it leads, so a standby replica is visible
too), then `kpy-controller-manager leading as IDENTITY` once it holds the
Lease and its controllers run. Stops cleanly on SIGTERM or SIGINT and hands
the Lease over; exits with code 1 if it loses the Lease (run it under a
supervisor that restarts it, as Kubernetes' is). See kpy.component.
"""

from __future__ import annotations

import argparse
import sys

from kpy import component
from kpy.controllers.manager import (
    COMPONENT,
    LEASE_NAME,
    ControllerManager,
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
    component.add_flags(p, lease_name=LEASE_NAME, metrics_port=10257)
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
        value = getattr(args, f"concurrent_{name}_syncs")
        if value < 1:
            parser.error(f"--concurrent-{name}-syncs must be at least 1, got {value}")
        workers[name] = value
    return ManagerConfig(controllers=tuple(chosen), workers=workers)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    config = _config(parser, args)
    opts = component.options(parser, args)
    config = ManagerConfig(
        controllers=config.controllers,
        workers=config.workers,
        election=opts.election,
        metrics_host=opts.metrics_host,
        metrics_port=opts.metrics_port,
    )
    return component.main(COMPONENT, opts, lambda client: ControllerManager(client, config))


if __name__ == "__main__":
    sys.exit(main())
