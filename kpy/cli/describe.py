"""`kpyctl describe TYPE [NAME...]`: an object as kubectl describes it.

- Kinds with a description of their own (a strategy per kind in
  `_DESCRIBERS`): pods (kpy.cli._describe_pod: containers with their
  state, probes, environment and mounts, volumes, QoS class, ...),
  deployments (Selector, the Replicas line, StrategyType, Pod Template,
  Conditions, OldReplicaSets / NewReplicaSet), replica sets (Replicas and
  Pods Status), daemon sets (Node-Selector, the numbers of nodes scheduled,
  up to date, available and misscheduled, Pods Status), nodes (Taints,
  Unschedulable, Conditions, Addresses, Capacity, Allocatable and the pods
  on it), services (ports with their target ports and endpoints), config
  maps (each key and value), secrets (each key's size, never its value)
  namespaces, and horizontal pod autoscalers (Reference, each metric as
  `current / target`, Min / Max replicas, Behavior, the target's pods,
  Conditions), jobs and cron jobs (kpy.cli._describe_job: Pods Statuses,
  the schedule, Last Schedule Time, Active Jobs, ...), persistent volumes,
  claims (with the pods that use them) and storage classes
  (kpy.cli._describe_storage), stateful sets (kpy.cli._describe_statefulset:
  update strategy, pods' statuses, volume claims), ingresses and ingress
  classes (kpy.cli._describe_ingress: address, TLS, rules with each
  backend's endpoints), pod disruption budgets (kpy.cli._describe_pdb: the
  bound, selector and allowed disruptions), custom kinds
  (kpy.cli._describe_custom: kubectl's generic describer, every field of
  the object nested as key/values). Every other kind gets
  Name, Namespace, Labels, Annotations (never the last applied
  configuration) and CreationTimestamp.
- Then `Events:`: the Events whose involvedObject uid is the object's,
  oldest first (or `Events:  <none>`); secrets and namespaces, as in
  kubectl, have none.
- For a pod that has no node yet, the scheduler is asked (gRPC Explain at
  `--scheduler`, else the config's first `schedulers` entry, else
  127.0.0.1:10251; 2 s) which nodes it would fit and why not the others;
  if it cannot be asked, one line says so and the exit code stays 0 (the
  FailedScheduling event says why anyway).
- Without NAME every object of TYPE in the namespace is described; a
  missing NAME is `Error from server (NotFound): ...`, exit 1.
- Layout: kubectl's describe tabwriter (padding 2), two spaces per level.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any, Final, TextIO

import grpc
import grpc.aio

from kpy import door
from kpy.api import codec, errors
from kpy.api.apps.v1 import ReplicaSet
from kpy.api.core.v1 import Endpoints, Event, Pod
from kpy.api.discovery.v1 import EndpointSlice
from kpy.api.labels import format_labels
from kpy.api.unstructured import is_custom
from kpy.cli import (
    _client,
    _describe_custom,
    _describe_ingress,
    _describe_job,
    _describe_pdb,
    _describe_pod,
    _describe_statefulset,
    _describe_storage,
    _printers,
)
from kpy.rpc.scheduler import v1 as sched_rpc

if TYPE_CHECKING:
    import argparse
    from collections.abc import Awaitable, Callable

    from google.protobuf.message import Message

    from kpy.api.scheme import ResourceInfo
    from kpy.client import Client
    from kpy.client.config import TLSCredentials

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
        default=None,
        metavar="HOST:PORT",
        help="the scheduler's explain service, asked about pending pods "
        f"(default: the config's first `schedulers` entry, else {DEFAULT_SCHEDULER})",
    )
    _client.add_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return _client.run(args, _describe)


async def _describe(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    await _client.discover(client, _client.type_words([args.type]))
    info, names = _client.resolve_type(args.type, args.names)
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
        scheduler = args.scheduler or (*client.config.schedulers, DEFAULT_SCHEDULER)[0]
        out.write(
            await describe(client, info, obj, scheduler=scheduler, scheduler_tls=client.config.tls)
        )
    return code


async def describe(
    client: Client,
    info: ResourceInfo,
    obj: Any,
    *,
    scheduler: str,
    scheduler_tls: TLSCredentials | None = None,
) -> str:
    """The whole description of one object (see the module docstring); a
    pending pod's adds the scheduler's verdicts, asked over TLS with
    `scheduler_tls` (the kpy config's CA and client certificate)."""
    # a custom kind may share a built-in kind's name; its describer never
    kind = "" if is_custom(info.message) else info.kind
    describer = _DESCRIBERS.get(kind)
    if not kind:
        rows = _describe_custom.custom_rows(obj)
    else:
        rows = await describer(client, obj) if describer else _meta(obj, info)
    if kind not in _WITHOUT_EVENTS:
        rows += await _events(client, obj)
    text = _printers.tabulate(rows, padding=2, min_width=0)
    if kind == "Pod" and not obj.spec.node_name and not obj.metadata.HasField("deletion_timestamp"):
        text += await explain(obj, scheduler, scheduler_tls)
    return text


async def _describe_pod_rows(client: Client, pod: Any) -> Rows:
    return _describe_pod.pod_rows(pod, _now())


async def _describe_deployment(client: Client, d: Any) -> Rows:
    return _meta(d, _client.resolve("deployments.apps")) + await _deployment(client, d)


async def _describe_replica_set(client: Client, rs: Any) -> Rows:
    return _meta(rs, _client.resolve("replicasets.apps")) + _replica_set(rs)


async def _describe_daemon_set(client: Client, ds: Any) -> Rows:
    pods = await client.list(Pod, namespace=ds.metadata.namespace)
    owned = [
        p
        for p in pods.items
        if any(r.uid == ds.metadata.uid and r.controller for r in p.metadata.owner_references)
    ]
    return daemon_set_rows(ds, owned)


async def _describe_node(client: Client, node: Any) -> Rows:
    return _meta(node, _client.resolve("nodes")) + await _node(client, node)


async def _describe_service(client: Client, svc: Any) -> Rows:
    try:
        endpoints: Any = await client.get(
            Endpoints, svc.metadata.name, namespace=svc.metadata.namespace
        )
    except errors.NotFound:
        endpoints = Endpoints()
    return service_rows(svc, endpoints)


async def _describe_config_map(client: Client, cm: Any) -> Rows:
    return config_map_rows(cm)


async def _describe_secret(client: Client, secret: Any) -> Rows:
    return secret_rows(secret)


async def _describe_namespace(client: Client, ns: Any) -> Rows:
    return namespace_rows(ns)


async def _describe_hpa(client: Client, hpa: Any) -> Rows:
    return _meta(hpa, _client.resolve("horizontalpodautoscalers.autoscaling")) + hpa_rows(hpa)


async def _describe_job_rows(client: Client, job: Any) -> Rows:
    return _describe_job.job_rows(job, _template(job.spec.template))


async def _describe_cron_job_rows(client: Client, cj: Any) -> Rows:
    return _describe_job.cron_job_rows(cj, _template(cj.spec.job_template.spec.template))


async def _describe_stateful_set_rows(client: Client, sts: Any) -> Rows:
    pods = await client.list(Pod, namespace=sts.metadata.namespace)
    owned = [
        p
        for p in pods.items
        if any(r.uid == sts.metadata.uid and r.controller for r in p.metadata.owner_references)
    ]
    return _describe_statefulset.statefulset_rows(sts, owned, _template(sts.spec.template))


async def _describe_pv(client: Client, pv: Any) -> Rows:
    return _describe_storage.pv_rows(pv)


async def _describe_pvc(client: Client, pvc: Any) -> Rows:
    pods = (await client.list(Pod, namespace=pvc.metadata.namespace)).items
    return _describe_storage.pvc_rows(pvc, pods)


async def _describe_storage_class(client: Client, sc: Any) -> Rows:
    return _describe_storage.storage_class_rows(sc)


async def _describe_pdb_rows(client: Client, pdb: Any) -> Rows:
    return _describe_pdb.pdb_rows(pdb)


async def _describe_ingress_rows(client: Client, ing: Any) -> Rows:
    slices = await client.list(EndpointSlice, namespace=ing.metadata.namespace)
    endpoints: dict[str, list[str]] = {}
    for sl in slices.items:
        service = sl.metadata.labels.get("kubernetes.io/service-name")
        if not service:
            continue
        found = endpoints.setdefault(service, [])
        for ep in sl.endpoints:
            if ep.conditions.HasField("ready") and not ep.conditions.ready:
                continue
            found += [f"{a}:{p.port}" for a in ep.addresses for p in sl.ports[:1]]
    return _describe_ingress.ingress_rows(ing, endpoints)


async def _describe_ingress_class(client: Client, ic: Any) -> Rows:
    return _describe_ingress.ingress_class_rows(ic)


_DESCRIBERS: dict[str, Callable[[Client, Any], Awaitable[Rows]]] = {
    "Pod": _describe_pod_rows,
    "Deployment": _describe_deployment,
    "ReplicaSet": _describe_replica_set,
    "DaemonSet": _describe_daemon_set,
    "StatefulSet": _describe_stateful_set_rows,
    "Node": _describe_node,
    "Service": _describe_service,
    "ConfigMap": _describe_config_map,
    "Secret": _describe_secret,
    "Namespace": _describe_namespace,
    "HorizontalPodAutoscaler": _describe_hpa,
    "Job": _describe_job_rows,
    "CronJob": _describe_cron_job_rows,
    "PersistentVolume": _describe_pv,
    "PersistentVolumeClaim": _describe_pvc,
    "StorageClass": _describe_storage_class,
    "Ingress": _describe_ingress_rows,
    "IngressClass": _describe_ingress_class,
    "PodDisruptionBudget": _describe_pdb_rows,
}
# kubectl describes these without their events
_WITHOUT_EVENTS = frozenset({"Secret", "Namespace"})


# ------------------------------------------------------------------ helpers


_ind = _describe_pod.indent
_map_rows = _describe_pod.labels_rows
_list_rows = _describe_pod.list_rows
timestamp = _describe_pod.timestamp
toleration = _describe_pod.toleration


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
    rows += _describe_pod.annotations_rows("Annotations:", dict(m.annotations))
    rows.append(["CreationTimestamp:", timestamp(m.creation_timestamp)])
    controller = next((r for r in m.owner_references if r.controller), None)
    if controller is not None:
        rows.append(["Controlled By:", f"{controller.kind}/{controller.name}"])
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


# ------------------------------------------------------------------ workloads


def _selector(obj: Any) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(obj.spec.selector.match_labels.items()))


def _template(template: Any) -> Rows:
    rows: Rows = [["Pod Template:"]]
    rows += _map_rows("Labels:", dict(template.metadata.labels), "=", level=1)
    rows += _describe_pod.containers_rows(
        "Containers:", template.spec.containers, [], None, space="  "
    )
    rows += _describe_pod.volume_rows(template.spec.volumes, space="  ")
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


def daemon_set_rows(ds: Any, pods: list[Pod]) -> Rows:
    """A DaemonSet as kubectl describes it (no Namespace line, as there);
    `pods`: the pods it controls."""
    s = ds.status
    phases = [p.status.phase for p in pods]
    node_selector = ",".join(
        f"{k}={v}" for k, v in sorted(ds.spec.template.spec.node_selector.items())
    )
    return [
        ["Name:", ds.metadata.name],
        ["Selector:", _selector(ds)],
        ["Node-Selector:", node_selector or _printers.NONE],
        *_map_rows("Labels:", dict(ds.metadata.labels), "="),
        *_describe_pod.annotations_rows("Annotations:", dict(ds.metadata.annotations)),
        [f"Desired Number of Nodes Scheduled: {s.desired_number_scheduled}"],
        [f"Current Number of Nodes Scheduled: {s.current_number_scheduled}"],
        [f"Number of Nodes Scheduled with Up-to-date Pods: {s.updated_number_scheduled}"],
        [f"Number of Nodes Scheduled with Available Pods: {s.number_available}"],
        [f"Number of Nodes Misscheduled: {s.number_misscheduled}"],
        [
            "Pods Status:",
            f"{phases.count('Running')} Running / {phases.count('Pending')} Waiting / "
            f"{phases.count('Succeeded')} Succeeded / {phases.count('Failed')} Failed",
        ],
        *_template(ds.spec.template),
    ]


# ------------------------------------------------------------------ services and configuration


def service_rows(svc: Any, endpoints: Any) -> Rows:
    """A Service as kubectl describes it, with each port's endpoints."""
    spec = svc.spec
    rows = _header(svc)
    rows.append(["Selector:", format_labels(dict(spec.selector))])
    rows.append(["Type:", spec.type])
    if spec.ip_family_policy:
        rows.append(["IP Family Policy:", spec.ip_family_policy])
    rows.append(["IP Families:", ",".join(spec.ip_families) or _printers.NONE])
    rows.append(["IP:", spec.cluster_ip])
    rows.append(["IPs:", ",".join(spec.cluster_ips) or _printers.NONE])
    if spec.external_ips:
        rows.append(["External IPs:", ",".join(spec.external_ips)])
    if spec.load_balancer_ip:
        rows.append(["Desired LoadBalancer IP:", spec.load_balancer_ip])
    if spec.external_name:
        rows.append(["External Name:", spec.external_name])
    if svc.status.load_balancer.ingress:
        ingress = [i.ip or i.hostname for i in svc.status.load_balancer.ingress]
        rows.append(["LoadBalancer Ingress:", ", ".join(ingress)])
    for port in spec.ports:
        name = port.name or "<unset>"
        rows.append(["Port:", name, f"{port.port}/{port.protocol}"])
        target = port.target_port
        target_text = target.str_val if target.WhichOneof("value") == "str_val" else target.int_val
        rows.append(["TargetPort:", f"{target_text}/{port.protocol}"])
        if port.node_port:
            rows.append(["NodePort:", name, f"{port.node_port}/{port.protocol}"])
        rows.append(["Endpoints:", _printers.format_endpoints(endpoints, port_name=port.name)])
    rows.append(["Session Affinity:", spec.session_affinity])
    if spec.external_traffic_policy:
        rows.append(["External Traffic Policy:", spec.external_traffic_policy])
    if spec.internal_traffic_policy:
        rows.append(["Internal Traffic Policy:", spec.internal_traffic_policy])
    if spec.health_check_node_port:
        rows.append(["HealthCheck NodePort:", str(spec.health_check_node_port)])
    if spec.load_balancer_source_ranges:
        rows.append(["LoadBalancer Source Ranges:", ",".join(spec.load_balancer_source_ranges)])
    return rows


def _header(obj: Any) -> Rows:
    rows = [["Name:", obj.metadata.name], ["Namespace:", obj.metadata.namespace]]
    rows += _map_rows("Labels:", dict(obj.metadata.labels), "=")
    rows += _describe_pod.annotations_rows("Annotations:", dict(obj.metadata.annotations))
    return rows


def config_map_rows(cm: Any) -> Rows:
    """A ConfigMap as kubectl describes it: each key, a rule, its value."""
    rows = [*_header(cm), [""], ["Data"], ["===="]]
    for key in sorted(cm.data):
        rows += [[f"{key}:"], ["----"]]
        rows += [[line] for line in cm.data[key].split("\n")]
        rows.append([""])
    rows += [[""], ["BinaryData"], ["===="]]
    rows += [[f"{k}: {len(cm.binary_data[k])} bytes"] for k in sorted(cm.binary_data)]
    rows.append([""])
    return rows


def secret_rows(secret: Any) -> Rows:
    """A Secret as kubectl describes it: its type and each key's size, never
    the values."""
    rows = [*_header(secret), [""], ["Type:", secret.type or "Opaque"], [""], ["Data"], ["===="]]
    rows += [[f"{k}:", f"{len(secret.data[k])} bytes"] for k in sorted(secret.data)]
    return rows


def namespace_rows(ns: Any) -> Rows:
    """A Namespace as kubectl describes it (kpy has no quotas or limit ranges)."""
    rows = [["Name:", ns.metadata.name]]
    rows += _map_rows("Labels:", dict(ns.metadata.labels), "=")
    rows += _describe_pod.annotations_rows("Annotations:", dict(ns.metadata.annotations))
    rows.append(["Status:", ns.status.phase or "Active"])
    rows += [[""], ["No resource quota."], [""], ["No LimitRange resource."]]
    return rows


# ------------------------------------------------------------------ autoscalers


def hpa_rows(hpa: Any) -> Rows:
    """What kubectl describes of an HPA after its metadata: Reference, each
    metric as `current / target`, the replica bounds, Behavior when set, the
    target's pods and the Conditions."""
    spec, status = hpa.spec, hpa.status
    ref = spec.scale_target_ref
    rows: Rows = [["Reference:", f"{ref.kind}/{ref.name}"]]
    rows.append(["Metrics:", "( current / target )"])
    current = list(status.current_metrics)
    for i, metric in enumerate(spec.metrics):
        got = current[i] if i < len(current) else None
        rows.append(_hpa_metric_row(metric, got))
    rows.append(["Min replicas:", str(spec.min_replicas) if spec.HasField("min_replicas") else "1"])
    rows.append(["Max replicas:", str(spec.max_replicas)])
    if spec.HasField("behavior"):
        rows.append(["Behavior:"])
        for label, rules in (
            ("Scale Up", spec.behavior.scale_up),
            ("Scale Down", spec.behavior.scale_down),
        ):
            rows += _hpa_rules_rows(label, rules)
    rows.append(
        [
            f"{ref.kind} pods:",
            f"{status.current_replicas} current / {status.desired_replicas} desired",
        ]
    )
    rows += _conditions(status.conditions, with_reason=True)
    return rows


def _hpa_metric_row(metric: Any, got: Any) -> list[str]:
    if metric.type != "Resource":
        return [_ind(1, f"{metric.type} metric:"), "<unknown> / <unknown>"]
    source = metric.resource
    target = source.target
    now = got.resource.current if got is not None and got.HasField("resource") else None
    if target.HasField("average_utilization"):
        shown = _printers.UNKNOWN
        if now is not None and now.HasField("average_utilization"):
            shown = f"{now.average_utilization}% ({now.average_value.string})"
        label = f"resource {source.name} on pods  (as a percentage of request):"
        return [_ind(1, label), f"{shown} / {target.average_utilization}%"]
    value = _printers.UNKNOWN
    if now is not None and now.average_value.string:
        value = now.average_value.string
    label = f"resource {source.name} on pods:"
    return [_ind(1, label), f"{value} / {target.average_value.string}"]


def _hpa_rules_rows(label: str, rules: Any) -> Rows:
    rows: Rows = [[_ind(1, f"{label}:")]]
    if rules.HasField("stabilization_window_seconds"):
        window = rules.stabilization_window_seconds
        rows.append([_ind(2, f"Stabilization Window: {window} seconds")])
    if rules.select_policy:
        rows.append([_ind(2, f"Select Policy: {rules.select_policy}")])
    if rules.policies:
        rows.append([_ind(2, "Policies:")])
        for p in rules.policies:
            line = f"- Type: {p.type}  Value: {p.value}  Period: {p.period_seconds} seconds"
            rows.append([_ind(3, line)])
    return rows


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


async def explain(pod: Any, address: str, tls: TLSCredentials | None = None) -> str:
    """The scheduler's per-node verdicts for a pending pod, or one line
    saying why they are not available. With `tls` the scheduler is asked
    over TLS, presenting the client certificate (as the API servers are)."""
    try:
        async with _scheduler_channel(address, tls) as channel:
            stub = sched_rpc.SchedulerStub(channel)
            request = sched_rpc.ExplainRequest(
                namespace=pod.metadata.namespace, name=pod.metadata.name
            )
            answer = await stub.Explain(request, timeout=EXPLAIN_TIMEOUT)
    except grpc.aio.AioRpcError as e:
        why = _explain_failure(e, tls) or f"{e.code().name}: {e.details()}"
        return (
            f"Scheduler:  could not ask the scheduler at {address} "
            f"({why}); pass --scheduler HOST:PORT to ask another\n"
        )
    return format_explain(answer, address)


def _scheduler_channel(address: str, tls: TLSCredentials | None) -> grpc.aio.Channel:
    if tls is None:
        return grpc.aio.insecure_channel(address)
    credentials = grpc.ssl_channel_credentials(tls.ca_pem, tls.key_pem, tls.cert_pem)
    return grpc.aio.secure_channel(address, credentials)


def _explain_failure(e: grpc.aio.AioRpcError, tls: TLSCredentials | None) -> str:
    """What a refused Explain call means, in words ("" when it is no
    refusal: the scheduler is down, say)."""
    if e.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
        return f"{e.details()}; use a config whose client certificate it answers"
    if e.code() != grpc.StatusCode.UNAVAILABLE:
        return ""
    problem = door.handshake_problem(e.details() or "")
    if tls is None:
        if problem == "closed":
            return (
                "it closed the connection before answering: if it serves TLS, set "
                "certificate-authority, client-certificate and client-key in the kpy config"
            )
        return ""
    if problem == "plaintext":
        return "it does not speak TLS; start kpy-scheduler with --tls-cert-file"
    if problem in ("untrusted", "expired", "hostname"):
        return (
            f"certificate verify failed: its certificate is {_VERIFY_WORDS[problem]}; check "
            f"the certificate-authority of the kpy config ({tls.ca_source})"
        )
    if problem == "closed":
        presented = tls.cert_source or "none: the kpy config has no client-certificate"
        return (
            "it closed the connection during the TLS handshake: it refused the client "
            f"certificate ({presented}); use one signed by its --client-ca-file"
        )
    return ""


_VERIFY_WORDS: Final = {
    "untrusted": "not signed by the configured CA",
    "expired": "expired",
    "hostname": "not for this address",
}


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
