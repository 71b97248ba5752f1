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
from pathlib import Path
from typing import Final

from kpy import component
from kpy.controllers.manager import (
    COMPONENT,
    LEASE_NAME,
    ControllerManager,
    ManagerConfig,
    known_controllers,
    select_controllers,
)
from kpy.controllers.node_lifecycle import NodeLifecycleOptions
from kpy.controllers.podautoscaler import HPAOptions
from kpy.controllers.root_ca_publisher import read_root_ca
from kpy.controllers.volume import DEFAULT_LOCAL_PATH_DIR


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
    _node_lifecycle_flags(p)
    _hpa_flags(p)
    p.add_argument(
        "--local-path-dir",
        type=Path,
        default=Path(DEFAULT_LOCAL_PATH_DIR),
        metavar="DIR",
        help="where the local-path provisioner puts volumes on nodes when their StorageClass "
        "names no path; it removes a released volume's directory only under it "
        "(default %(default)s)",
    )
    p.add_argument(
        "--root-ca-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="the cluster CA's certificate (PEM), published in every namespace as ConfigMap "
        "kube-root-ca.crt (key ca.crt) for pods' kube-api-access volumes; without it nothing "
        "is published",
    )
    component.add_flags(p, lease_name=LEASE_NAME, metrics_port=10257)
    return p


_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration(text: str) -> float:
    """Seconds from `40`, `40s`, `500ms`, `5m` or `1h` (Go durations as
    kube-controller-manager's flags take them, one unit)."""
    for unit in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            number = text.removesuffix(unit)
            try:
                return float(number) * _UNITS[unit]
            except ValueError:
                break
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: give seconds or a number with ms, s, m or h (40s)"
        ) from None


#: kube-controller-manager's node lifecycle flags: (flag, type, help).
_NODE_LIFECYCLE_FLAGS: Final = (
    ("--node-monitor-period", duration, "seconds between checks of every node's heartbeat"),
    (
        "--node-monitor-grace-period",
        duration,
        "seconds a node may go without a heartbeat before it is marked Unknown",
    ),
    (
        "--node-startup-grace-period",
        duration,
        "seconds a new node may take to post its first status before it is marked Unknown",
    ),
    ("--node-eviction-rate", float, "nodes a second tainted NoExecute in a healthy zone"),
    (
        "--secondary-node-eviction-rate",
        float,
        "nodes a second tainted NoExecute in a partially disrupted zone",
    ),
    (
        "--unhealthy-zone-threshold",
        float,
        "share of not-ready nodes (at least 3) that makes a zone partially disrupted",
    ),
    (
        "--large-cluster-size-threshold",
        int,
        "zones larger than this keep the secondary rate when partially disrupted; "
        "smaller ones stop",
    ),
)


def _node_lifecycle_flags(p: argparse.ArgumentParser) -> None:
    defaults = NodeLifecycleOptions()
    for flag, kind, text in _NODE_LIFECYCLE_FLAGS:
        default = getattr(defaults, flag.removeprefix("--").replace("-", "_"))
        p.add_argument(
            flag, type=kind, default=default, metavar="N", help=f"{text} (default %(default)s)"
        )


def _node_lifecycle_options(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> NodeLifecycleOptions:
    values = {
        flag.removeprefix("--").replace("-", "_"): getattr(
            args, flag.removeprefix("--").replace("-", "_")
        )
        for flag, _, _ in _NODE_LIFECYCLE_FLAGS
    }
    options = NodeLifecycleOptions(**values)
    try:
        options.check()
    except ValueError as e:
        parser.error(str(e))
    return options


#: kube-controller-manager's HPA flags: (flag, HPAOptions field, type, help).
_HPA_FLAGS: Final = (
    ("sync-period", "sync_period", duration, "seconds between two syncs of each autoscaler"),
    (
        "downscale-stabilization",
        "downscale_stabilization",
        lambda text: int(duration(text)),
        "seconds of recommendations a scale-down looks back over (without behavior)",
    ),
    ("tolerance", "tolerance", float, "usage ratio change below which nothing is scaled"),
    (
        "cpu-initialization-period",
        "cpu_initialization_period",
        duration,
        "seconds after a pod starts during which CPU samples may be skipped",
    ),
    (
        "initial-readiness-delay",
        "initial_readiness_delay",
        duration,
        "seconds after a pod starts during which readiness changes are initial",
    ),
)


def _hpa_flags(p: argparse.ArgumentParser) -> None:
    defaults = HPAOptions()
    for flag, name, kind, text in _HPA_FLAGS:
        p.add_argument(
            f"--horizontal-pod-autoscaler-{flag}",
            dest=f"hpa_{name}",
            type=kind,
            default=getattr(defaults, name),
            metavar="N",
            help=f"{text} (default %(default)s)",
        )


def _hpa_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> HPAOptions:
    options = HPAOptions(**{name: getattr(args, f"hpa_{name}") for _, name, _, _ in _HPA_FLAGS})
    if options.sync_period <= 0:
        parser.error("--horizontal-pod-autoscaler-sync-period must be more than 0")
    return options


def _config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ManagerConfig:
    """The manager's config; exits with code 2 naming the flag at fault."""
    known = known_controllers()
    try:
        chosen = select_controllers(args.controllers.split(","), known)
    except ValueError as e:
        parser.error(str(e))
    workers = {}
    for name in known:
        value = getattr(args, f"concurrent_{name.replace('-', '_')}_syncs")
        if value < 1:
            parser.error(f"--concurrent-{name}-syncs must be at least 1, got {value}")
        workers[name] = value
    root_ca_file = args.root_ca_file.absolute() if args.root_ca_file is not None else None
    if root_ca_file is not None:
        try:
            read_root_ca(root_ca_file)
        except ValueError as e:
            parser.error(str(e))
    return ManagerConfig(
        controllers=tuple(chosen),
        workers=workers,
        node_monitor=_node_lifecycle_options(parser, args),
        hpa=_hpa_options(parser, args),
        local_path_dir=args.local_path_dir.absolute(),
        root_ca_file=root_ca_file,
    )


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    config = _config(parser, args)
    opts = component.options(parser, args)
    config = ManagerConfig(
        controllers=config.controllers,
        workers=config.workers,
        node_monitor=config.node_monitor,
        hpa=config.hpa,
        local_path_dir=config.local_path_dir,
        root_ca_file=config.root_ca_file,
        election=opts.election,
        metrics_host=opts.metrics_host,
        metrics_port=opts.metrics_port,
    )
    return component.main(COMPONENT, opts, lambda client: ControllerManager(client, config))


if __name__ == "__main__":
    sys.exit(main())
