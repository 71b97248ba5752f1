"""`kpyctl describe TYPE [NAME...]`: an object as kubectl describes it.

- Every kind gets Name, Namespace, Labels, Annotations and
  CreationTimestamp, then its own lines (pods: Node, Status, IP, Containers
  with image, state and requests, Conditions, Tolerations; deployments:
  Selector, the Replicas line, StrategyType, Conditions, OldReplicaSets /
  NewReplicaSet; replica sets: Replicas and Pods Status; nodes: Taints,
  Unschedulable, Conditions, Addresses, Capacity, Allocatable and the pods
  on it), then `Events:`: the Events whose involvedObject uid is the
  object's, oldest first (or `Events:  <none>`).
- For a pod that has no node yet, the scheduler is asked (gRPC Explain at
  `--scheduler`, 2 s) which nodes it would fit and why not the others; if
  it cannot be asked, one line says so and the exit code stays 0 (the
  PodScheduled condition's message is under Conditions anyway).
- Without NAME every object of TYPE in the namespace is described; a
  missing NAME is `Error from server (NotFound): ...`, exit 1.
- Layout: kubectl's describe tabwriter (padding 2), two spaces per level.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any, TextIO

import grpc
import grpc.aio

from kpy.api import codec, errors
from kpy.api.apps.v1 import ReplicaSet
from kpy.api.core.v1 import Event, Pod
from kpy.cli import _client, _printers
from kpy.cli.get import resolve_type
from kpy.rpc.scheduler import v1 as sched_rpc

if TYPE_CHECKING:
    import argparse

    from google.protobuf.message import Message

    from kpy.api.core.v1 import Toleration
    from kpy.api.scheme import ResourceInfo
    from kpy.client import Client

__all__ = ["DEFAULT_SCHEDULER", "add_parser", "run"]

DEFAULT_SCHEDULER = "127.0.0.1:10251"
EXPLAIN_TIMEOUT = 2.0
REVISION = "deployment.kubernetes.io/revision"

Rows = list[list[str]]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("describe", help="show details of a resource, with its events")
    p.add_argument("type", metavar="TYPE[/NAME]", help="pods, deploy, nodes, ... or TYPE/NAME")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("-l", "--selector", default="", help="describe the objects this selects")
    p.add_argument(
        "--scheduler",
        default=DEFAULT_SCHEDULER,
        metavar="HOST:PORT",
        help="the scheduler's explain service, asked about pending pods (default %(default)s)",
    )
    _client.add_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return _client.run(args, _describe)


async def _describe(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    info, names = resolve_type(args.type, args.names)
    namespace = _client.namespace_of(client, args)
    code = 0
    objects: list[Message] = []
    if names:
        objects, code = await _client.get_named(client, info, names, namespace, err)
    else:
        listed = await client.list(info.message, namespace=namespace, label_selector=args.selector)
        objects = listed.items
        if not objects:
            where = f" in {namespace} namespace" if info.namespaced else ""
            err.write(f"No resources found{where}.\n")
    for i, obj in enumerate(objects):
        if i:
            out.write("\n\n")
        out.write(await describe(client, info, obj, scheduler=args.scheduler))
    return code


async def describe(client: Client, info: ResourceInfo, obj: Any, *, scheduler: str) -> str:
    """The whole description of one object (see the module docstring)."""
    rows = _meta(obj, info)
    kind = info.kind
    if kind == "Pod":
        rows += _pod(obj)
    elif kind == "Deployment":
        rows += await _deployment(client, obj)
    elif kind == "ReplicaSet":
        rows += _replica_set(obj)
    elif kind == "Node":
        rows += await _node(client, obj)
    rows += await _events(client, obj)
    text = _printers.tabulate(rows, padding=2, min_width=0)
    if kind == "Pod" and not obj.spec.node_name and not obj.metadata.HasField("deletion_timestamp"):
        text += await explain(obj, scheduler)
    return text


# ------------------------------------------------------------------ helpers


def _ind(level: int, text: str) -> str:
    return "  " * level + text


def _map_rows(label: str, values: dict[str, str], sep: str, level: int = 0) -> Rows:
    """`Labels:  a=b` then one line per further entry, as kubectl prints maps."""
    return _list_rows(label, [f"{k}{sep}{v}" for k, v in sorted(values.items())], level)


def _list_rows(label: str, items: list[str], level: int = 0) -> Rows:
    if not items:
        return [[_ind(level, label), _printers.NONE]]
    return [[_ind(level, label) if i == 0 else "", item] for i, item in enumerate(items)]


def timestamp(ts: Any) -> str:
    """kubectl's describe time: `Mon, 02 Jan 2006 15:04:05 -0700`, local."""
    at = _printers.seconds_of(ts)
    if at is None:
        return _printers.NONE
    local = datetime.datetime.fromtimestamp(at, tz=datetime.UTC).astimezone()
    return local.strftime("%a, %d %b %Y %H:%M:%S %z")


def _quantities(label: str, values: Any, level: int) -> Rows:
    if not values:
        return []
    rows = [[_ind(level, label)]]
    rows += [[_ind(level + 1, f"{k}:"), values[k].string] for k in sorted(values)]
    return rows


def _meta(obj: Any, info: ResourceInfo) -> Rows:
    m = obj.metadata
    rows = [["Name:", m.name]]
    if info.namespaced:
        rows.append(["Namespace:", m.namespace])
    rows += _map_rows("Labels:", dict(m.labels), "=")
    rows += _map_rows("Annotations:", dict(m.annotations), ": ")
    rows.append(["CreationTimestamp:", timestamp(m.creation_timestamp)])
    controller = next((r for r in m.owner_references if r.controller), None)
    if controller is not None:
        rows.append(["Controlled By:", f"{controller.kind}/{controller.name}"])
    return rows


# ------------------------------------------------------------------ pods


def _pod(pod: Any) -> Rows:
    status = pod.status
    node = pod.spec.node_name
    if node and status.host_ip:
        node = f"{node}/{status.host_ip}"
    phase = status.phase
    if pod.metadata.HasField("deletion_timestamp"):
        phase = f"Terminating (lasts {_printers.age(pod.metadata.deletion_timestamp, _now())})"
    rows = [
        ["Node:", node or _printers.NONE],
        ["Start Time:", timestamp(status.start_time)],
        ["Status:", phase],
    ]
    if status.reason:
        rows.append(["Reason:", status.reason])
    if status.message:
        rows.append(["Message:", status.message])
    rows.append(["IP:", status.pod_ip or ""])
    rows += _containers(
        "Init Containers:", pod.spec.init_containers, status.init_container_statuses
    )
    rows += _containers("Containers:", pod.spec.containers, status.container_statuses)
    rows += _conditions(status.conditions)
    if status.qos_class:
        rows.append(["QoS Class:", status.qos_class])
    rows += _map_rows("Node-Selectors:", dict(pod.spec.node_selector), "=")
    rows += _list_rows("Tolerations:", [toleration(t) for t in pod.spec.tolerations])
    return rows


def _containers(label: str, containers: Any, statuses: Any, level: int = 0) -> Rows:
    if not containers:
        return []
    by_name = {s.name: s for s in statuses}
    inner = level + 2
    rows: Rows = [[_ind(level, label)]]
    for c in containers:
        rows.append([_ind(level + 1, f"{c.name}:")])
        rows.append([_ind(inner, "Image:"), c.image])
        ports = [f"{p.container_port}/{p.protocol or 'TCP'}" for p in c.ports]
        rows.append(
            [
                _ind(inner, "Port:" if len(ports) < 2 else "Ports:"),
                ", ".join(ports) or _printers.NONE,
            ]
        )
        cs = by_name.get(c.name)
        if cs is not None:
            rows += _state_rows("State:", cs.state, inner)
            if cs.last_state.ListFields():
                rows += _state_rows("Last State:", cs.last_state, inner)
            rows.append([_ind(inner, "Ready:"), str(cs.ready)])
            rows.append([_ind(inner, "Restart Count:"), str(cs.restart_count)])
        rows += _quantities("Limits:", c.resources.limits, inner)
        rows += _quantities("Requests:", c.resources.requests, inner)
    return rows


def _state_rows(label: str, state: Any, level: int) -> Rows:
    if state.HasField("running"):
        return [
            [_ind(level, label), "Running"],
            [_ind(level + 1, "Started:"), timestamp(state.running.started_at)],
        ]
    if state.HasField("terminated"):
        t = state.terminated
        rows = [[_ind(level, label), "Terminated"]]
        if t.reason:
            rows.append([_ind(level + 1, "Reason:"), t.reason])
        rows.append([_ind(level + 1, "Exit Code:"), str(t.exit_code)])
        return rows
    rows = [[_ind(level, label), "Waiting"]]
    if state.HasField("waiting") and state.waiting.reason:
        rows.append([_ind(level + 1, "Reason:"), state.waiting.reason])
    return rows


def _conditions(conditions: Any, *, with_reason: bool = False) -> Rows:
    if not conditions:
        return []
    with_message = any(c.message for c in conditions)
    header = ["Type", "Status"]
    if with_reason or with_message:
        header.append("Reason")
    if with_message:
        header.append("Message")
    rows: Rows = [["Conditions:"], [_ind(1, header[0]), *header[1:]]]
    rows.append([_ind(1, "-" * len(header[0])), *("-" * len(h) for h in header[1:])])
    for c in conditions:
        cells = [_ind(1, c.type), c.status, c.reason, c.message][: len(header)]
        rows.append(cells)
    return rows


def toleration(t: Toleration) -> str:
    """kubectl's one-line toleration: `key=value:Effect op=Exists for 300s`."""
    text = t.key + (f"={t.value}" if t.value else "") + (f":{t.effect}" if t.effect else "")
    if t.operator == "Exists" and not t.value:
        text += " op=Exists" if text else "op=Exists"
    if t.HasField("toleration_seconds"):
        text += f" for {t.toleration_seconds}s"
    return text


# ------------------------------------------------------------------ workloads


def _selector(obj: Any) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(obj.spec.selector.match_labels.items()))


def _template(template: Any) -> Rows:
    rows: Rows = [["Pod Template:"]]
    rows += _map_rows("Labels:", dict(template.metadata.labels), "=", level=1)
    rows += _containers("Containers:", template.spec.containers, [], level=1)
    return rows


async def _deployment(client: Client, d: Any) -> Rows:
    s = d.status
    unavailable = s.unavailable_replicas
    rows = [
        ["Selector:", _selector(d)],
        [
            "Replicas:",
            f"{d.spec.replicas} desired | {s.updated_replicas} updated | {s.replicas} total | "
            f"{s.available_replicas} available | {unavailable} unavailable",
        ],
        ["StrategyType:", d.spec.strategy.type or "RollingUpdate"],
        ["MinReadySeconds:", str(d.spec.min_ready_seconds)],
    ]
    if (d.spec.strategy.type or "RollingUpdate") == "RollingUpdate":
        ru = codec.to_dict(d.spec.strategy).get("rollingUpdate", {})
        rows.append(
            [
                "RollingUpdateStrategy:",
                f"{ru.get('maxUnavailable', '25%')} max unavailable, "
                f"{ru.get('maxSurge', '25%')} max surge",
            ]
        )
    rows += _template(d.spec.template)
    rows += _conditions(s.conditions, with_reason=True)
    owned = [
        rs
        for rs in (await client.list(ReplicaSet, namespace=d.metadata.namespace)).items
        if any(r.uid == d.metadata.uid and r.controller for r in rs.metadata.owner_references)
    ]
    owned.sort(key=_revision)
    new = owned[-1] if owned else None
    old = [rs for rs in owned[:-1] if rs.spec.replicas or rs.status.replicas]
    rows.append(["OldReplicaSets:", ", ".join(_rs_line(rs) for rs in old) or _printers.NONE])
    rows.append(["NewReplicaSet:", _rs_line(new) if new else _printers.NONE])
    return rows


def _revision(rs: Any) -> int:
    value = rs.metadata.annotations.get(REVISION, "0")
    return int(value) if value.isdigit() else 0


def _rs_line(rs: Any) -> str:
    return f"{rs.metadata.name} ({rs.status.replicas}/{rs.spec.replicas} replicas created)"


def _replica_set(rs: Any) -> Rows:
    s = rs.status
    return [
        ["Selector:", _selector(rs)],
        ["Replicas:", f"{s.replicas} current / {rs.spec.replicas} desired"],
        ["Pods Status:", f"{s.ready_replicas} Running / {s.replicas - s.ready_replicas} Waiting"],
        *_template(rs.spec.template),
        *_conditions(s.conditions, with_reason=True),
    ]


# ------------------------------------------------------------------ nodes


async def _node(client: Client, node: Any) -> Rows:
    taints = [f"{t.key}{'=' + t.value if t.value else ''}:{t.effect}" for t in node.spec.taints]
    rows = [["Roles:", _printers.node_roles(node)]]
    rows += _list_rows("Taints:", taints)
    rows.append(["Unschedulable:", str(node.spec.unschedulable).lower()])
    rows += _conditions(node.status.conditions, with_reason=True)
    if node.status.addresses:
        rows.append(["Addresses:"])
        rows += [[_ind(1, f"{a.type}:"), a.address] for a in node.status.addresses]
    rows += _quantities("Capacity:", node.status.capacity, 0)
    rows += _quantities("Allocatable:", node.status.allocatable, 0)
    pods = await _pods_on(client, node.metadata.name)
    rows.append(["Non-terminated Pods:", f"({len(pods)} in total)"])
    if pods:
        header = ["Namespace", "Name", "CPU Requests", "Memory Requests", "Age"]
        rows.append([_ind(1, header[0]), *header[1:]])
        rows.append([_ind(1, "-" * len(header[0])), *("-" * len(h) for h in header[1:])])
        now = _now()
        for p in pods:
            requests = [c.resources.requests for c in p.spec.containers]
            cpu = "+".join(r["cpu"].string for r in requests if "cpu" in r) or "0"
            mem = "+".join(r["memory"].string for r in requests if "memory" in r) or "0"
            age = _printers.age(p.metadata.creation_timestamp, now)
            rows.append([_ind(1, p.metadata.namespace), p.metadata.name, cpu, mem, age])
    return rows


async def _pods_on(client: Client, node: str) -> list[Pod]:
    try:
        pods = (await client.list(Pod, field_selector=f"spec.nodeName={node}")).items
    except errors.BadRequest:  # a server without that field selector
        pods = (await client.list(Pod)).items
    return [
        p
        for p in pods
        if p.spec.node_name == node and p.status.phase not in ("Succeeded", "Failed")
    ]


# ------------------------------------------------------------------ events


async def _events(client: Client, obj: Any) -> Rows:
    m = obj.metadata
    events = [
        e
        for e in (await client.list(Event, namespace=m.namespace or "default")).items
        if e.involved_object.uid == m.uid
    ]
    if not events:
        return [["Events:", _printers.NONE]]
    events.sort(key=lambda e: _printers.seconds_of(_printers.event_time(e)) or 0.0)
    now = _now()
    rows: Rows = [["Events:"], ["  Type", "Reason", "Age", "From", "Message"]]
    rows.append(["  ----", "------", "----", "----", "-------"])
    for e in events:
        age = _printers.age(_printers.event_time(e), now)
        if e.count > 1:
            age = f"{age} (x{e.count} over {_printers.age(e.first_timestamp, now)})"
        source = e.source.component or e.reporting_component
        rows.append([_ind(1, e.type), e.reason, age, source, e.message])
    return rows


def _now() -> float:
    return datetime.datetime.now(tz=datetime.UTC).timestamp()


# ------------------------------------------------------------------ scheduler


async def explain(pod: Any, address: str) -> str:
    """The scheduler's per-node verdicts for a pending pod, or one line
    saying why they are not available."""
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = sched_rpc.SchedulerStub(channel)
            request = sched_rpc.ExplainRequest(
                namespace=pod.metadata.namespace, name=pod.metadata.name
            )
            answer = await stub.Explain(request, timeout=EXPLAIN_TIMEOUT)
    except grpc.aio.AioRpcError as e:
        return (
            f"Scheduler:  could not ask the scheduler at {address} "
            f"({e.code().name}: {e.details()}); pass --scheduler HOST:PORT to ask another\n"
        )
    return format_explain(answer, address)


def format_explain(answer: Any, address: str) -> str:
    rows: Rows = [[f"Scheduler ({address}):"]]
    if answer.message:
        rows.append([_ind(1, "Message:"), answer.message])
    if answer.nodes:
        rows.append([_ind(1, "Node"), "Fits", "Reasons"])
        rows.append([_ind(1, "----"), "----", "-------"])
    for n in answer.nodes:
        if n.feasible:
            rows.append([_ind(1, n.node), "yes", f"score {n.score}"])
        else:
            reasons = ", ".join(n.reasons) or "rejected"
            rows.append([_ind(1, n.node), "no", f"{n.plugin}: {reasons}" if n.plugin else reasons])
    if not answer.nodes:
        rows.append([_ind(1, "Nodes:"), _printers.NONE])
    return _printers.tabulate(rows, padding=2, min_width=0)
