"""`kpy`: a local cluster in one command.

    kpy up [--nodes N] [--runtime auto|process|simulated] [--port 6443] [--dir D]
           [--ha | --etcd-members N --apiservers N --replicas N]
    kpy status [--dir D]
    kpy down [--dir D]

`up` prints what it starts as it goes and, at the end, how to use the
cluster; a second `up` while one runs says so and changes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict
from pathlib import Path

import anyio

from kpy.api import errors
from kpy.api.core.v1 import Node
from kpy.client import Client
from kpy.cluster.local import (
    DEFAULT_DIR,
    HA,
    ClusterError,
    ClusterState,
    Topology,
    down,
    running,
    up,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kpy", description="Run a local kpy cluster.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, text in (
        ("up", "start a cluster: etcd, API server, controllers, scheduler, agents"),
        ("down", "stop the cluster `kpy up` started, and its containers"),
        ("status", "show the cluster's processes and nodes"),
    ):
        c = sub.add_parser(name, help=text)
        c.add_argument(
            "--dir", type=Path, default=DEFAULT_DIR, help="cluster directory (default %(default)s)"
        )
        if name == "up":
            c.add_argument("--nodes", type=int, help="agents to start (default 1; 3 with --ha)")
            c.add_argument(
                "--ha",
                action="store_true",
                help="mirror deploy/'s layout: 3 etcd members, 2 API servers, "
                "2 controller managers, 2 schedulers, 3 agents",
            )
            for flag, text in (
                ("--etcd-members", "etcd members"),
                ("--apiservers", "API servers (on --port, --port+1, ...)"),
                ("--replicas", "controller managers and schedulers, one leading"),
            ):
                c.add_argument(flag, type=int, help=f"{text} (default 1)")
            c.add_argument(
                "--runtime",
                default="auto",
                choices=("auto", "process", "simulated"),
                help="the agents' container runtime (default auto)",
            )
            c.add_argument("--port", type=int, default=6443, help="API server port (default 6443)")
    return p


def _topology(args: argparse.Namespace) -> Topology:
    base = HA if args.ha else Topology()
    topology = Topology(
        nodes=base.nodes if args.nodes is None else args.nodes,
        etcd_members=base.etcd_members if args.etcd_members is None else args.etcd_members,
        apiservers=base.apiservers if args.apiservers is None else args.apiservers,
        replicas=base.replicas if args.replicas is None else args.replicas,
    )
    for name, value in asdict(topology).items():
        if value < 1:
            raise ClusterError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    return topology


def _up(args: argparse.Namespace) -> int:
    state = up(args.dir, _topology(args), runtime=args.runtime, port=args.port, progress=_say)
    config = Path(state.directory) / "config"
    kpyctl = Path(sys.executable).parent / "kpyctl"
    print(
        f"\nkpy cluster up: API server(s) {state.api}, nodes {', '.join(state.nodes)} Ready.\n"
        f"Logs are in {state.directory}/logs. Next:\n"
        f"  export KPY_CONFIG={config}\n"
        f"  {kpyctl} apply -f examples/demo.yaml\n"
        f"  {kpyctl} get pods -o wide\n"
        "  kpy status        # processes and nodes\n"
        "  kpy down          # stop everything"
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    state = ClusterState.load(args.dir)
    if state is None:
        print(f"no kpy cluster recorded in {args.dir}; start one with `kpy up`")
        return 1
    print(f"{'COMPONENT':<28} {'PID':>7}  {'STATE':<8} LOG")
    for m in state.members:
        print(f"{m.name:<28} {m.pid:>7}  {'running' if running(m) else 'stopped':<8} {m.log}")
    if state.alive():
        anyio.run(_print_nodes, state.api.split(",")[0])
    return 0 if len(state.alive()) == len(state.members) else 1


async def _print_nodes(address: str) -> None:
    try:
        async with Client(address, retry_timeout=2.0) as client:
            nodes = (await client.list(Node)).items
    except errors.StatusError as e:
        print(f"\nthe API server at {address} does not answer: {e}")
        return
    print(f"\n{'NODE':<20} STATUS")
    for n in nodes:
        ready = any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
        print(f"{n.metadata.name:<20} {'Ready' if ready else 'NotReady'}")


def _down(args: argparse.Namespace) -> int:
    stopped = down(args.dir, progress=_say)
    print(f"kpy cluster down ({stopped} process(es) stopped)" if stopped else "no kpy cluster runs")
    return 0


def _say(line: str) -> None:
    print(f"  {line}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.umask(0o022)
    try:
        return {"up": _up, "down": _down, "status": _status}[args.command](args)
    except ClusterError as e:
        print(f"kpy {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
