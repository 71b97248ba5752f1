"""`kpy`: a local cluster in one command.

    kpy up [--nodes N] [--runtime auto|process|simulated] [--port 6443] [--dir D]
           [--ha | --etcd-members N --apiservers N --replicas N]
           [--pod-manifest-path DIR] [--insecure]
           [--controller-manager-arg=ARG ...] [--agent-arg=ARG ...] [--dns-arg=ARG ...]
    kpy status [--dir D]
    kpy renew-certs [--dir D]
    kpy add-node [--dir D] [--name NAME]
    kpy stop-node NAME [--dir D]
    kpy start-node NAME [--dir D]
    kpy down [--dir D]
    kpy rotate-encryption-key [--dir D] [--rewrite-only]

`up` prints what it starts as it goes and, at the end, how to use the
cluster; a second `up` while one runs says so and changes nothing. The
cluster is supervised: `up` starts kpy-supervisor, which runs the starting
(`kpy up --supervised`, the same code) and then restarts a control-plane
process whenever it exits, and a node's only when it failed on its own (see
kpy.cluster.supervisor): a node whose agent was killed is lost until `kpy
start-node`. `status` shows each process's pid, state, restarts and last
exit, each node that is down, with what to do next, and each certificate's
subject and days left.

`up` is secure by default (see kpy.cluster.certs): TLS, client
certificates, Node,RBAC authorization, a certificate per component, and
`<dir>/config` holding the CA and the admin's certificate. `up --insecure`
is the plaintext, unauthenticated cluster of before, for benchmarks, and
says so loudly. `renew-certs` issues every certificate again (same CA);
nothing else renews one.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from kpy.api import errors
from kpy.api.core.v1 import Node
from kpy.client import Client
from kpy.cluster import certs
from kpy.cluster.keys import KEY_FILE
from kpy.cluster.local import (
    DEFAULT_DIR,
    ENV_PREFIX,
    HA,
    PROXY_STATUS,
    SUPERVISOR,
    ClusterError,
    ClusterState,
    Member,
    Topology,
    client_config,
    down,
    insecure_warning,
    running,
    up,
)
from kpy.cluster.nodes import add_node, start_node, stop_node
from kpy.cluster.rotate import rotate
from kpy.cluster.supervisor import LOST, describe_exit, node_of

if TYPE_CHECKING:
    from kpy.client.config import ClientConfig


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kpy", description="Run a local kpy cluster.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, text in (
        ("up", "start a cluster: etcd, API server, controllers, scheduler, agents"),
        ("down", "stop the cluster `kpy up` started, and its containers"),
        ("status", "show the cluster's processes and nodes"),
        ("add-node", "start one more node (agent) in the running cluster, like kpy-node-1"),
        ("stop-node", "stop a node's agent and proxy (its containers keep running)"),
        ("start-node", "start a stopped or lost node's processes again"),
        (
            "rotate-encryption-key",
            "encrypt Secrets with a new key: add it first, restart the API servers, "
            "rewrite every Secret",
        ),
        (
            "renew-certs",
            "issue every certificate under DIR/pki again (same CA, one more year); "
            "restart the cluster to use them",
        ),
    ):
        c = sub.add_parser(name, help=text)
        c.add_argument(
            "--dir", type=Path, default=DEFAULT_DIR, help="cluster directory (default %(default)s)"
        )
        if name in ("stop-node", "start-node"):
            c.add_argument("name", metavar="NAME", help="the node, as `kpy status` names it")
        if name == "rotate-encryption-key":
            c.add_argument(
                "--rewrite-only",
                action="store_true",
                help="only rewrite the Secrets not sealed with the first key yet (to finish "
                "a rotation that failed while rewriting)",
            )
        if name == "add-node":
            c.add_argument(
                "--name", default="", help="the node's name (default: the next kpy-node-N)"
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
                ("--etcd-members", "etcd members (default 1)"),
                (
                    "--apiservers",
                    "API servers (on --port, --port+1, ...; default one per 4 cores, "
                    f"at most 4: {default_apiservers()} here)",
                ),
                ("--replicas", "controller managers and schedulers, one leading (default 1)"),
            ):
                c.add_argument(flag, type=int, help=text)
            c.add_argument(
                "--runtime",
                default="auto",
                choices=("auto", "process", "simulated"),
                help="the agents' container runtime (default auto)",
            )
            c.add_argument("--port", type=int, default=6443, help="API server port (default 6443)")
            c.add_argument(
                "--insecure",
                action="store_true",
                help="INSECURE, for benchmarks: plaintext, no authentication, no authorization "
                "(anyone who reaches the port can read every Secret)",
            )
            c.add_argument(
                "--pod-manifest-path",
                type=Path,
                metavar="DIR",
                help="static pods: agent NODE runs the manifests in DIR/NODE (made if missing)",
            )
            for component, dest in (
                ("controller-manager", "controller_manager_arg"),
                ("agent", "agent_arg"),
                ("dns", "dns_arg"),
            ):
                c.add_argument(
                    f"--{component}-arg",
                    dest=dest,
                    action="append",
                    default=[],
                    metavar="ARG",
                    help=f"one more word for every kpy-{component}'s command line, as in "
                    f"--{component}-arg=--flag=value (repeatable, in order)",
                )
            # Internal: this process is the starter that kpy-supervisor runs.
            c.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)
    return p


def default_apiservers(cores: int | None = None) -> int:
    """API servers `kpy up` starts without --apiservers: one per 4 cores (the
    rest run etcd, the controllers, the scheduler and the agents), at most 4.
    Each API server process uses up to a core, and each also follows every
    write in etcd (about 0.3 ms of CPU per create each, measured): on 2
    cores, 2 or 4 of them gave no steady gain over 1 (`python -m bench.floor
    curve`)."""
    cores = cores if cores is not None else os.cpu_count() or 1
    return max(1, min(4, cores // 4))


def _topology(args: argparse.Namespace) -> Topology:
    base = HA if args.ha else Topology(apiservers=default_apiservers())
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
    if not args.supervised:
        return _supervised_up(args)
    state = up(
        args.dir,
        _topology(args),
        runtime=args.runtime,
        port=args.port,
        pod_manifest_path=args.pod_manifest_path,
        supervisor=os.getppid(),
        progress=_say,
        extra_args=_extra_args(args),
        insecure=args.insecure,
    )
    config = Path(state.directory) / "config"
    kpyctl = Path(sys.executable).parent / "kpyctl"
    print(
        f"\nkpy cluster up: API server(s) {state.api}, nodes {', '.join(state.nodes)} Ready.\n"
        f"Logs are in {state.directory}/logs; {SUPERVISOR} restarts what exits (a node's\n"
        "agent only if it failed: `kpy start-node NAME` brings back a lost node). Next:\n"
        f"  export KPY_CONFIG={config}\n"
        f"  {kpyctl} apply -f examples/demo.yaml\n"
        f"  {kpyctl} get pods -o wide\n"
        "  kpy status        # processes, restarts, nodes and certificates\n"
        "  kpy down          # stop everything"
    )
    if state.insecure:
        print(f"\n{insecure_warning(args.port)}")
    return 0


def _supervised_up(args: argparse.Namespace) -> int:
    """Starts kpy-supervisor in a session of its own, which runs this
    command again with --supervised (the starter; its output is ours) and
    then stays to supervise; returns the starter's exit code."""
    _topology(args)  # a usage error is reported here, before anything starts
    existing = ClusterState.load(args.dir)
    if existing is not None and existing.alive():
        raise ClusterError(
            f"a kpy cluster is already running from {args.dir} (API server {existing.api}); "
            "use it, or stop it first with `kpy down`"
        )
    starter = [sys.executable, "-m", "kpy.cluster.main", *_up_words(args), "--supervised"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env["PYTHONUNBUFFERED"] = "1"
    read_end, write_end = os.pipe()
    command = [sys.executable, "-m", "kpy.cluster.supervisor", "--dir", str(args.dir)]
    supervisor = subprocess.Popen(
        [*command, "--status-fd", str(write_end), "--", *starter],
        stdin=subprocess.DEVNULL,
        env=env,
        pass_fds=(write_end,),
        start_new_session=True,
    )
    os.close(write_end)
    with os.fdopen(read_end) as status:
        try:
            answer = status.read().strip()
        except KeyboardInterrupt:
            # Its own session does not see the terminal's ^C: passed on, and
            # the starter stops what it started before the answer comes.
            supervisor.send_signal(signal.SIGINT)
            answer = status.read().strip()
    if not answer.lstrip("-").isdigit():
        raise ClusterError(
            f"{SUPERVISOR} ended before the cluster started; "
            f"see {args.dir / 'logs' / 'kpy-supervisor.log'}"
        )
    return int(answer)


def _up_words(args: argparse.Namespace) -> list[str]:
    """`kpy up` with `args` again, every choice spelt out."""
    words = ["up", "--dir", str(args.dir), "--runtime", args.runtime, "--port", str(args.port)]
    for flag in ("nodes", "etcd_members", "apiservers", "replicas", "pod_manifest_path"):
        value = getattr(args, flag)
        if value is not None:
            words += [f"--{flag.replace('_', '-')}", str(value)]
    # "=" keeps a word that starts with "-" the flag's value.
    words += [f"--controller-manager-arg={a}" for a in args.controller_manager_arg]
    words += [f"--agent-arg={a}" for a in args.agent_arg]
    words += [f"--dns-arg={a}" for a in args.dns_arg]
    words += ["--insecure"] if args.insecure else []
    return [*words, "--ha"] if args.ha else words


def _extra_args(args: argparse.Namespace) -> dict[str, tuple[str, ...]]:
    """The words `--controller-manager-arg`, `--agent-arg` and `--dns-arg`
    add, by component."""
    return {
        "kpy-controller-manager": tuple(args.controller_manager_arg),
        "kpy-agent": tuple(args.agent_arg),
        "kpy-dns": tuple(args.dns_arg),
    }


def _status(args: argparse.Namespace) -> int:
    state = ClusterState.load(args.dir)
    if state is None:
        print(f"no kpy cluster recorded in {args.dir}; start one with `kpy up`")
        return 1
    supervised = state.supervisor is not None and running(state.supervisor)
    print(f"{'COMPONENT':<28} {'PID':>7}  {'STATE':<10} {'RESTARTS':>8}  {'LAST EXIT':<22} LOG")
    rows = [state.supervisor] if state.supervisor is not None else []
    for m in [*rows, *state.members]:
        print(
            f"{m.name:<28} {m.pid:>7}  {_state(m, supervised):<10} {m.restarts:>8}  "
            f"{_last_exit(m):<22} {m.log}"
        )
    _print_held(state)
    _print_proxies(state)
    _print_certificates(state)
    if state.alive():
        config = client_config(args.dir, state.api.split(",")[0])
        anyio.run(_print_nodes, config)
    return 0 if len(state.alive()) == len(state.members) else 1


def _print_certificates(state: ClusterState) -> None:
    """Each certificate's subject, expiry and days left, with a warning
    under 30 days; or the insecure banner."""
    if state.insecure:
        port = state.api.split(",")[0].rpartition(":")[2]
        print(f"\n{insecure_warning(int(port) if port.isdigit() else 0)}")
        return
    lifetimes = certs.lifetimes(Path(state.directory))
    if not lifetimes:
        return
    width = max(len(str(lt.path)) for lt in lifetimes)
    print(f"\n{'CERTIFICATE':<{width}}  {'EXPIRES (UTC)':<16} {'DAYS LEFT':>9}  SUBJECT")
    for lt in lifetimes:
        warning = f"  WARNING: {lt.warning}" if lt.warning else ""
        print(
            f"{lt.path!s:<{width}}  {lt.not_after:%Y-%m-%d %H:%M} {lt.days_left:>9}  "
            f"{lt.subject}{warning}"
        )


def _print_held(state: ClusterState) -> None:
    """A line per process the supervisor leaves down: why, since when, and
    the command that brings its node back."""
    lines = []
    for m in state.members:
        node = node_of(m.name, state.nodes) or m.name
        what = "agent" if m.name.startswith("kpy-agent-") else m.name.removesuffix(f"-{node}")
        at = m.exited or "an unknown time"
        if m.held == LOST:
            lines.append(
                f"{node}: {what} stopped ({describe_exit(m.last_exit)}) at {at}; "
                f"the node is lost until `kpy start-node {node}`"
            )
        elif m.held:
            lines.append(
                f"{node}: {what} stopped by `kpy stop-node` at {at}; "
                f"start it with `kpy start-node {node}`"
            )
    if lines:
        print("\n" + "\n".join(lines))


def _print_proxies(state: ClusterState) -> None:
    """A line per node: the mode its kpy-proxy runs in (as it wrote it), and
    the cluster's Service range."""
    lines = []
    for node in state.nodes:
        path = Path(state.directory) / "nodes" / node / PROXY_STATUS
        try:
            mode = path.read_text().rstrip("\n")
        except OSError:
            mode = "(not reported yet)"
        lines.append(f"proxy {node}: {mode}")
    if state.service_range:
        lines.append(f"service cluster IP range: {state.service_range}")
    if lines:
        print("\n" + "\n".join(lines))


def _state(member: Member, supervised: bool) -> str:
    if running(member):
        return "running"
    if member.held:
        return member.held
    # A member the supervisor watches is started again after its back-off.
    return "restarting" if supervised and member.name != SUPERVISOR else "stopped"


def _last_exit(member: Member) -> str:
    if member.restarts == 0 and member.last_exit is None:
        return "-"
    return describe_exit(member.last_exit)


async def _print_nodes(config: ClientConfig) -> None:
    try:
        # The cluster's own server and admin, whatever the caller's KPY_CONFIG names.
        async with Client(config, retry_timeout=2.0) as client:
            nodes = (await client.list(Node)).items
    except errors.StatusError as e:
        print(f"\nthe API server at {config.servers[0]} does not answer: {e}")
        return
    print(f"\n{'NODE':<20} STATUS")
    for n in nodes:
        ready = any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
        print(f"{n.metadata.name:<20} {'Ready' if ready else 'NotReady'}")


def _add_node(args: argparse.Namespace) -> int:
    name = add_node(args.dir, args.name, progress=_say)
    print(f"node {name} Ready; `kpy down` stops it with the rest")
    return 0


def _stop_node(args: argparse.Namespace) -> int:
    stopped = stop_node(args.dir, args.name, progress=_say)
    print(
        f"node {args.name} stopped ({stopped} process(es)); its containers keep running; "
        f"`kpy start-node {args.name}` starts it again"
    )
    return 0


def _start_node(args: argparse.Namespace) -> int:
    start_node(args.dir, args.name, progress=_say)
    print(f"node {args.name} Ready")
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = down(args.dir, progress=_say)
    print(f"kpy cluster down ({stopped} process(es) stopped)" if stopped else "no kpy cluster runs")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    done = rotate(args.dir, rewrite_only=args.rewrite_only, progress=_say)
    print(
        f"every Secret is sealed with the first key of {args.dir / KEY_FILE} "
        f"({done.rewritten} of {done.total} rewritten). The older keys stay there to read "
        "etcd's history and backups; remove one (and restart the API servers) only once "
        "nothing sealed with it is needed."
    )
    return 0


def _renew_certs(args: argparse.Namespace) -> int:
    try:
        renewed = certs.renew(args.dir)  # etcd's too, with etcd's CA
    except certs.CertError as e:
        raise ClusterError(str(e)) from None
    for path in renewed:
        _say(f"renewed {path.relative_to(args.dir)}")
    running_now = ClusterState.load(args.dir)
    restart = (
        " The cluster's processes read them when they start: `kpy down` and `kpy up`."
        if running_now is not None and running_now.alive()
        else ""
    )
    print(f"{len(renewed)} certificate(s) renewed, valid one more year.{restart}")
    return 0


def _say(line: str) -> None:
    print(f"  {line}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.dir = args.dir.absolute()  # the supervisor and the members may not share our cwd
    if getattr(args, "pod_manifest_path", None) is not None:
        args.pod_manifest_path = args.pod_manifest_path.absolute()
    os.umask(0o022)
    try:
        commands = {
            "up": _up,
            "down": _down,
            "status": _status,
            "add-node": _add_node,
            "stop-node": _stop_node,
            "start-node": _start_node,
            "rotate-encryption-key": _rotate,
            "renew-certs": _renew_certs,
        }
        return commands[args.command](args)
    except ClusterError as e:
        print(f"kpy {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # whoever read our output stopped (`kpy status | head`)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit cannot fail again
        return 0


if __name__ == "__main__":
    sys.exit(main())
