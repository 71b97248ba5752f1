"""`kpy-agent`: the node agent as a process.

Prints `kpy-agent <node> serving on HOST:PORT` once the Node is registered
and its pods are known, and stops cleanly on SIGTERM or SIGINT; containers
keep running across a restart of the agent.

Settings come from flags, or from a YAML file (`--config`) whose keys are
the flags' long names (`node-name: n1`, `node-labels: {zone: a}`,
`register-with-taints: ["dedicated=db:NoSchedule"]`); flags given on the
command line win over the file.

`--tls-cert-file`, `--tls-private-key-file` and `--client-ca-file` put the
agent's service (logs, exec, port-forward, stats) behind TLS and a client
certificate check; it then answers only `--authorized-clients` (default
kube-apiserver-kubelet-client) and members of system:masters (`kpy.door`).

`--cluster-uid` names the cluster the agent belongs to (`kpy up` passes the
uid it made): its containers and pod IP claims carry it, and the agent
touches nothing of another cluster that shares the Docker engine or the
machine, even on a node of the same name. Without it, the uid is derived
from the agent's root dir (`root-` and a hash of its absolute path): stable
across restarts of one agent, different for agents on different root dirs.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import logging
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import yaml

from kpy import door, logs
from kpy._process import cancel_on_signal, exit_with_parent
from kpy.agent.agent import COMPONENT, DEFAULT_AUTHORIZED_CLIENTS, Agent, AgentConfig
from kpy.agent.dns import DEFAULT_DOMAIN, DNSSettings
from kpy.agent.eviction import parse_eviction_config
from kpy.agent.node import NodeConfig
from kpy.agent.runtime import DEFAULT_IP_DIR
from kpy.agent.runtime.base import check_cluster_uid
from kpy.agent.simulated_nodes import SimulatedNodes
from kpy.api import errors
from kpy.client import Client
from kpy.client.config import ConfigError, load_config

if TYPE_CHECKING:
    from kpy.agent.runtime import Runtime

RUNTIMES = ("auto", "docker", "process", "simulated")

log = logging.getLogger("kpy.agent")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kpy-agent", description="Run the pods bound to this node (kpy's kubelet)."
    )
    p.add_argument("--config", type=Path, help="YAML file of settings (keys: the long flag names)")
    p.add_argument(
        "--server", help="API server address(es), comma-separated (default: client config)"
    )
    p.add_argument(
        "--kubeconfig",
        help="the kpy client config (servers, certificate-authority, client-certificate, "
        "client-key) to call the API with; --server overrides its servers "
        "(default: KPY_CONFIG, else ~/.kpy/config)",
    )
    p.add_argument("--node-name", help="the Node's name (default: the host name)")
    p.add_argument(
        "--node-ip", help="address the API server reaches this agent at (default 127.0.0.1)"
    )
    p.add_argument("--address", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on; 0 picks a free one (default 10250)")
    p.add_argument(
        "--runtime",
        choices=RUNTIMES,
        help="container runtime (default auto: docker when an engine answers at --docker-host, "
        "else process; an agent keeps what auto chose for its --root-dir)",
    )
    p.add_argument(
        "--docker-host",
        help="the Docker engine of --runtime docker (default: $DOCKER_HOST, else kpy's own "
        "engine at unix:///run/kpy-docker/docker.sock; see deploy/docker-engine.sh)",
    )
    p.add_argument(
        "--root-dir", type=Path, help="state, volumes and logs (default /var/lib/kpy/agent/<node>)"
    )
    p.add_argument(
        "--pod-ip-dir",
        type=Path,
        help="claims of loopback pod IPs, shared by every agent of the machine "
        f"(default {DEFAULT_IP_DIR})",
    )
    p.add_argument(
        "--cluster-uid",
        help="the cluster this node belongs to; its containers and pod IPs carry it "
        "(default: derived from --root-dir)",
    )
    p.add_argument("--pod-manifest-path", type=Path, help="directory of static pod manifests")
    p.add_argument(
        "--cluster-dns",
        help="IP address(es) of the cluster DNS server, comma-separated: the nameserver of pods "
        "with dnsPolicy ClusterFirst (default none: they get the host's resolv.conf)",
    )
    p.add_argument(
        "--cluster-domain",
        help=f"the cluster's DNS domain, searched by pods (default {DEFAULT_DOMAIN})",
    )
    p.add_argument("--cpu", help="cpu capacity to publish (default: the machine's)")
    p.add_argument("--memory", help="memory capacity to publish, e.g. 8Gi (default: the machine's)")
    p.add_argument("--max-pods", type=int, help="pods this node takes (default 110)")
    p.add_argument("--node-labels", help="labels to add to the Node: k=v,k2=v2")
    p.add_argument("--register-with-taints", help="taints of the Node: k=v:Effect,k2:Effect")
    p.add_argument(
        "--crashloop-backoff-base", type=float, help="first restart delay, seconds (default 10)"
    )
    p.add_argument(
        "--crashloop-backoff-max", type=float, help="longest restart delay, seconds (default 300)"
    )
    p.add_argument("--heartbeat", type=float, help="seconds between Lease renewals (default 10)")
    p.add_argument(
        "--eviction-hard",
        help="thresholds that evict pods at once, signal<quantity or signal<percent, "
        "comma-separated (default memory.available<100Mi,nodefs.available<10%%,"
        "nodefs.inodesFree<5%%,imagefs.available<15%%; given, it replaces them all)",
    )
    p.add_argument(
        "--eviction-soft",
        help="thresholds that evict pods once met for their grace period, as --eviction-hard",
    )
    p.add_argument(
        "--eviction-soft-grace-period",
        help="grace period of each soft threshold, signal=duration (memory.available=1m30s)",
    )
    p.add_argument(
        "--eviction-pressure-transition-period",
        help="how long a pressure condition stays True after its threshold is no longer "
        "met (default 5m)",
    )
    p.add_argument(
        "--eviction-max-pod-grace-period",
        type=int,
        help="longest grace period, seconds, of a pod evicted for a soft threshold; "
        "negative: the pod's own (default 0)",
    )
    p.add_argument(
        "--housekeeping-interval",
        help="how often the node is measured against the eviction thresholds (default 10s)",
    )
    p.add_argument(
        "--simulated-nodes",
        type=int,
        help="run N simulated nodes in this process, named NODE-NAME-1 ... NODE-NAME-N, each "
        "with its state under ROOT-DIR/<node> (the simulated runtime only; no static pods, "
        "no logs or exec)",
    )
    p.add_argument(
        "--tls-cert-file",
        metavar="FILE",
        help="serve the agent's service (logs, exec, port-forward, stats) over TLS with this "
        "PEM certificate, whose SANs hold --node-ip; needs --tls-private-key-file and "
        "--client-ca-file. Without them the service speaks plaintext to anyone",
    )
    p.add_argument("--tls-private-key-file", metavar="FILE", help="the PEM key of --tls-cert-file")
    p.add_argument(
        "--client-ca-file",
        metavar="FILE",
        help="with --tls-cert-file: callers must present a client certificate this CA signed",
    )
    p.add_argument(
        "--authorized-clients",
        metavar="USERS",
        help="with --tls-cert-file: the users (client certificate CN) the service answers, "
        f"comma-separated (default {DEFAULT_AUTHORIZED_CLIENTS}, the API server's "
        "--kubelet-client-certificate); members of group system:masters are answered too",
    )
    p.add_argument("--log-level", default="info", help="debug, info, warning or error")
    return p


def _settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """Flags over the config file; keys are attribute names (node_name)."""
    out: dict[str, Any] = {}
    if args.config is not None:
        try:
            data = yaml.safe_load(args.config.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            parser.error(f"cannot read --config {args.config}: {e}")
        if not isinstance(data, dict):
            parser.error(f"--config {args.config}: expected a mapping of settings")
        known = {a.dest for a in parser._actions}
        for key, value in data.items():
            name = str(key).replace("-", "_")
            if name not in known or name in ("config", "help"):
                parser.error(f"--config {args.config}: unknown setting {key!r}")
            out[name] = value
    out.update({k: v for k, v in vars(args).items() if v is not None})
    return out


def _pairs(value: Any, what: str, parser: argparse.ArgumentParser) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    out = {}
    for word in str(value or "").split(","):
        if not word:
            continue
        key, eq, val = word.partition("=")
        if not eq or not key:
            parser.error(f"--{what}: {word!r} is not key=value")
        out[key] = val
    return out


def _list(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return tuple(w for w in str(value or "").split(",") if w)


def config_from(argv: list[str] | None) -> tuple[AgentConfig, dict[str, Any]]:
    parser = _parser()
    s = _settings(parser, parser.parse_args(argv))
    name = str(s.get("node_name") or socket.gethostname()).lower()
    root = Path(s.get("root_dir") or f"/var/lib/kpy/agent/{name}")
    port = int(s.get("port", 10250))
    if not 0 <= port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {port}")
    node = NodeConfig(
        name=name,
        address=str(s.get("node_ip") or "127.0.0.1"),
        cpu=str(s.get("cpu") or ""),
        memory=str(s.get("memory") or ""),
        max_pods=int(s.get("max_pods", 110)),
        labels=_pairs(s.get("node_labels"), "node-labels", parser),
        taints=_list(s.get("register_with_taints")),
        root_dir=str(root),
        heartbeat=float(s.get("heartbeat", 10.0)),
    )
    if s.get("cluster_uid") is not None:
        try:
            check_cluster_uid(str(s["cluster_uid"]))
        except ValueError as e:
            parser.error(f"--cluster-uid: {e}")
    manifests = s.get("pod_manifest_path")
    dns = _dns_settings(s, parser)
    tls = _serving_tls(s, parser)
    try:
        eviction = parse_eviction_config(s)
    except ValueError as e:
        parser.error(str(e))
    config = AgentConfig(
        node=node,
        root_dir=root,
        address=str(s.get("address") or "127.0.0.1"),
        port=port,
        pod_manifest_path=Path(manifests) if manifests else None,
        backoff_base=float(s.get("crashloop_backoff_base", 10.0)),
        backoff_max=float(s.get("crashloop_backoff_max", 300.0)),
        eviction=eviction,
        dns=dns,
        tls=tls,
        authorized_clients=frozenset(
            _list(s.get("authorized_clients", DEFAULT_AUTHORIZED_CLIENTS))
        ),
    )
    return config, s


def _serving_tls(s: dict[str, Any], parser: argparse.ArgumentParser) -> door.ServingTLS | None:
    """The agent's door (`kpy.door`): all three TLS files, or none."""
    try:
        return door.ServingTLS.from_flags(
            s.get("tls_cert_file"), s.get("tls_private_key_file"), s.get("client_ca_file")
        )
    except door.TLSFileError as e:
        parser.error(str(e))


def _dns_settings(s: dict[str, Any], parser: argparse.ArgumentParser) -> DNSSettings:
    servers = _list(s.get("cluster_dns"))
    for server in servers:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            parser.error(f"--cluster-dns: {server!r} is not an IP address (such as 127.96.0.10)")
    domain = str(s.get("cluster_domain") or DEFAULT_DOMAIN).strip(".")
    return DNSSettings(cluster_dns=servers, cluster_domain=domain)


def new_runtime(kind: str, config: AgentConfig, settings: dict[str, Any]) -> Runtime:
    """The runtime named by --runtime."""
    ip_dir = Path(settings.get("pod_ip_dir") or DEFAULT_IP_DIR)
    docker_host = settings.get("docker_host")
    uid = settings.get("cluster_uid")
    return runtime_for_dir(
        kind,
        config.root_dir,
        config.node.name,
        ip_dir,
        docker_host=docker_host or None,
        cluster_uid=str(uid) if uid else None,
    )


def cluster_uid_for_dir(root_dir: Path) -> str:
    """The cluster uid of an agent given none: `root-` and a hash of its
    absolute root dir (see the module docstring)."""
    digest = hashlib.sha256(str(root_dir.expanduser().absolute()).encode()).hexdigest()
    return f"root-{digest[:16]}"


def runtime_for_dir(
    kind: str,
    root_dir: Path,
    node_name: str,
    ip_dir: Path,
    *,
    docker_host: str | None = None,
    cluster_uid: str | None = None,
) -> Runtime:
    """The runtime of an agent whose --root-dir is `root_dir` (also how a
    cluster going down finds the containers an agent left running), in
    cluster `cluster_uid` (default: `cluster_uid_for_dir(root_dir)`).
    `auto` is what auto chose before for `root_dir`, so that containers are
    found again; the first time, Docker if an engine answers at
    `docker_host` within a second, else the process runtime."""
    uid = cluster_uid or cluster_uid_for_dir(root_dir)
    state = root_dir / "runtime"
    if kind == "auto":
        kind = _choose_runtime(state, docker_host)
    if kind == "simulated":
        from kpy.agent.runtime.simulated import SimulatedRuntime

        return SimulatedRuntime(node_name=node_name, state_file=state / "simulated.json")
    if kind == "docker":
        from kpy.agent.runtime.docker import DockerRuntime

        return DockerRuntime(node_name=node_name, cluster_uid=uid, docker_host=docker_host)
    from kpy.agent.runtime.process import ProcessRuntime

    return ProcessRuntime(state / "process", ip_dir=ip_dir, node_name=node_name, cluster_uid=uid)


def _choose_runtime(state: Path, docker_host: str | None) -> str:
    from kpy.agent.runtime.docker import default_docker_host, docker_answers

    record = state / "auto"
    try:
        chosen = record.read_text().strip()
    except FileNotFoundError:
        chosen = ""
    if chosen in ("docker", "process"):
        log.info(
            "runtime auto: %s, as chosen before for this root dir (%s); --runtime names another",
            chosen,
            record,
        )
        return chosen
    host = docker_host or default_docker_host()
    if docker_answers(host, timeout=1.0):
        chosen, why = "docker", f"a Docker engine answers at {host}"
    else:
        chosen, why = "process", f"no Docker engine answers at {host}"
    log.info("runtime auto: %s, as %s", chosen, why)
    try:
        state.mkdir(parents=True, exist_ok=True)
        record.write_text(chosen + "\n")
    except OSError as e:
        log.warning("cannot record the runtime auto chose in %s: %s", record, e)
    return chosen


def _simulated_nodes_problem(count: int, runtime: str, config: AgentConfig) -> str:
    """Why --simulated-nodes cannot run with these settings ("" if it can)."""
    if count < 1:
        return f"must be at least 1, got {count}"
    if runtime not in ("auto", "simulated"):
        return f"simulated nodes run the simulated runtime, not --runtime {runtime}"
    if config.pod_manifest_path is not None:
        return "simulated nodes run no static pods; drop --pod-manifest-path"
    return ""


def main(argv: list[str] | None = None) -> int:
    exit_with_parent()
    config, settings = config_from(argv)
    logs.configure(str(settings.get("log_level", "info")))
    kind = str(settings.get("runtime") or "auto")
    simulated_nodes = settings.get("simulated_nodes")
    if simulated_nodes is not None:
        problem = _simulated_nodes_problem(int(simulated_nodes), kind, config)
        if problem:
            print(f"kpy-agent: --simulated-nodes: {problem}", file=sys.stderr)
            return 2
        kind = "simulated"
        if config.tls is not None:
            log.info(
                "simulated nodes serve no logs, exec, port-forward or stats (their Nodes "
                "publish port 0): --tls-cert-file and --client-ca-file have no door to guard"
            )
    if kind not in RUNTIMES:
        print(
            f"kpy-agent: unknown runtime {kind!r}; use one of {', '.join(RUNTIMES)}",
            file=sys.stderr,
        )
        return 2
    try:
        config.root_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(
            f"kpy-agent: cannot use --root-dir {config.root_dir}: {e}; pick a writable directory",
            file=sys.stderr,
        )
        return 1
    servers = settings.get("server")
    kubeconfig = settings.get("kubeconfig")
    try:
        client_config = load_config(kubeconfig, servers=servers or None)
    except ConfigError as e:
        print(f"kpy-agent: --kubeconfig: {e}", file=sys.stderr)
        return 2

    async def serve() -> None:
        async with Client(client_config) as client, anyio.create_task_group() as tg:
            tg.start_soon(cancel_on_signal, tg.cancel_scope)
            if simulated_nodes is not None:
                nodes = SimulatedNodes(client, config, int(simulated_nodes))
                names = await tg.start(nodes.run)
                print(
                    f"{COMPONENT} {len(names)} simulated nodes ready: {names[0]} ... {names[-1]}",
                    flush=True,
                )
                return
            agent = Agent(client, config, new_runtime(kind, config, settings))
            port = await tg.start(agent.run)
            print(f"{COMPONENT} {config.node.name} serving on {config.address}:{port}", flush=True)

    failures: list[str] = []
    try:
        anyio.run(serve)
    except* (OSError, errors.StatusError) as group:
        failures += [str(e) for e in group.exceptions]
    for failure in failures:
        print(f"{COMPONENT}: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
