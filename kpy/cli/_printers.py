"""kubectl's human-readable output: the columns `kpyctl get` shows per kind,
ages as kubectl writes them, a pod's STATUS as kubectl's printer derives it,
and the tab-aligned layout of kubectl's tabwriter.

Contracts:
- Every function here is pure: objects are read, never mutated, and the
  current time is passed in (`now`, seconds since the epoch), so the same
  input always prints the same text.
- `printer_for(kind)` always answers: a kind without its own columns gets
  the generic NAME AGE. `Printer.row(obj, now)` returns the default cells
  followed by the `-o wide` cells; `cells(...)` cuts them to what is asked.
- `tabulate(rows, padding=3, min_width=6)` aligns like Go's tabwriter as
  kubectl configures it: a column is as wide as its widest cell plus
  `padding` (at least `min_width`), the last cell of a line is never padded,
  and a column runs over consecutive lines that have it (so describe's
  nested sections align on their own).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.protobuf.timestamp_pb2 import Timestamp

NONE = "<none>"
UNKNOWN = "<unknown>"

# ------------------------------------------------------------------ time


def human_duration(seconds: float) -> str:
    """kubectl's HumanDuration (k8s.io/apimachinery/pkg/util/duration)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 60 * 2:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, (hours // 24) % 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def seconds_of(ts: Timestamp | None) -> float | None:
    """A protobuf Timestamp as epoch seconds; None when it is unset."""
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return ts.seconds + ts.nanos / 1e9


def age(ts: Any, now: float) -> str:
    """Time since `ts` as kubectl prints it; `<unknown>` when unset."""
    at = seconds_of(ts)
    return UNKNOWN if at is None else human_duration(now - at)


# ------------------------------------------------------------------ layout


def tabulate(rows: Sequence[Sequence[str]], *, padding: int = 3, min_width: int = 6) -> str:
    """Rows of cells aligned as Go's tabwriter does (see the module docstring)."""
    widths = _widths(rows, padding, min_width)
    return "".join(pad_row(row, w) for row, w in zip(rows, widths, strict=True))


def table_widths(rows: Sequence[Sequence[str]]) -> list[int]:
    """The column widths `tabulate` gives a table whose rows all have the
    same cells (`get -w` lays out later rows with them)."""
    return _widths(rows, 3, 6)[0] if rows else []


def pad_row(row: Sequence[str], widths: Sequence[int]) -> str:
    """One line: each cell but the last padded to its column's width."""
    cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=False)]
    return "".join([*cells, *row[len(cells) :]]) + "\n"


def _widths(rows: Sequence[Sequence[str]], padding: int, min_width: int) -> list[list[int]]:
    widths: list[list[int]] = [[0] * max(len(r) - 1, 0) for r in rows]

    def block(first: int, end: int, col: int) -> None:
        i = first
        while i < end:
            if col >= len(rows[i]) - 1:
                i += 1
                continue
            j, width = i, min_width
            while j < end and col < len(rows[j]) - 1:
                width = max(width, len(rows[j][col]) + padding)
                j += 1
            for k in range(i, j):
                widths[k][col] = width
            block(i, j, col + 1)
            i = j

    block(0, len(rows), 0)
    return widths


# ------------------------------------------------------------------ printers


Row = Callable[[Any, float], list[str]]


@dataclass(frozen=True, slots=True)
class Printer:
    """The columns of one kind: `headers`, then `wide` for `-o wide`;
    `row(obj, now)` returns cells for both, in that order. `wide_order`,
    when set, is the `-o wide` column order where kubectl interleaves the
    extra columns (events)."""

    headers: tuple[str, ...]
    wide: tuple[str, ...]
    row: Row
    wide_order: tuple[str, ...] = ()

    def header(self, *, wide: bool) -> list[str]:
        if not wide:
            return list(self.headers)
        return list(self.wide_order or self.headers + self.wide)

    def cells(self, obj: Any, now: float, *, wide: bool) -> list[str]:
        cells = self.row(obj, now)
        if not wide:
            return cells[: len(self.headers)]
        if not self.wide_order:
            return cells
        where = {name: i for i, name in enumerate(self.headers + self.wide)}
        return [cells[where[name]] for name in self.wide_order]


def _labels(selector: Any) -> str:
    if selector is None:
        return NONE
    parts = [f"{k}={v}" for k, v in sorted(selector.match_labels.items())]
    for req in selector.match_expressions:
        parts.append(f"{req.key} {req.operator.lower()} ({','.join(req.values)})")
    return ",".join(parts) or NONE


def _containers_images(template: Any) -> list[str]:
    containers = template.spec.containers
    names = ",".join(c.name for c in containers) or NONE
    images = ",".join(c.image for c in containers) or NONE
    return [names, images]


def pod_status(pod: Any) -> tuple[str, int, int, float | None]:
    """(STATUS, ready containers, restarts, time of the last restart) as
    kubectl's printPod derives them."""
    status = pod.status
    reason = status.reason or status.phase
    restarts = 0
    last_restart: float | None = None
    initializing = False
    for i, cs in enumerate(status.init_container_statuses):
        restarts += cs.restart_count
        last_restart = _later(last_restart, cs)
        term, wait = _state(cs, "terminated"), _state(cs, "waiting")
        if term is not None and term.exit_code == 0:
            continue
        initializing = True
        if term is not None:
            if term.reason:
                reason = "Init:" + term.reason
            elif term.signal:
                reason = f"Init:Signal:{term.signal}"
            else:
                reason = f"Init:ExitCode:{term.exit_code}"
        elif wait is not None and wait.reason and wait.reason != "PodInitializing":
            reason = "Init:" + wait.reason
        else:
            reason = f"Init:{i}/{len(pod.spec.init_containers)}"
        break
    ready = 0
    if not initializing:
        restarts, last_restart, has_running = 0, None, False
        for cs in reversed(status.container_statuses):
            restarts += cs.restart_count
            last_restart = _later(last_restart, cs)
            term, wait = _state(cs, "terminated"), _state(cs, "waiting")
            if wait is not None and wait.reason:
                reason = wait.reason
            elif term is not None and term.reason:
                reason = term.reason
            elif term is not None:
                reason = f"Signal:{term.signal}" if term.signal else f"ExitCode:{term.exit_code}"
            elif cs.ready and _state(cs, "running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(c.type == "Ready" and c.status == "True" for c in status.conditions)
            reason = "Running" if pod_ready else "NotReady"
    if pod.metadata.HasField("deletion_timestamp"):
        reason = "Unknown" if status.reason == "NodeLost" else "Terminating"
    return reason, ready, restarts, last_restart


def _state(cs: Any, which: str) -> Any:
    return getattr(cs.state, which) if cs.state.HasField(which) else None


def _later(current: float | None, cs: Any) -> float | None:
    if not cs.last_state.HasField("terminated"):
        return current
    at = seconds_of(cs.last_state.terminated.finished_at)
    if at is None:
        return current
    return at if current is None else max(current, at)


def _pod_row(pod: Any, now: float) -> list[str]:
    status, ready, restarts, last = pod_status(pod)
    restart_text = str(restarts)
    if restarts and last is not None:
        restart_text += f" ({human_duration(now - last)} ago)"
    gates = pod.spec.readiness_gates
    return [
        pod.metadata.name,
        f"{ready}/{len(pod.spec.containers)}",
        status,
        restart_text,
        age(pod.metadata.creation_timestamp, now),
        pod.status.pod_ip or NONE,
        pod.spec.node_name or NONE,
        pod.status.nominated_node_name or NONE,
        f"{sum(1 for c in pod.status.conditions if _gate(c, gates))}/{len(gates)}"
        if gates
        else NONE,
    ]


def _gate(condition: Any, gates: Any) -> bool:
    return condition.status == "True" and any(g.condition_type == condition.type for g in gates)


def _deployment_row(d: Any, now: float) -> list[str]:
    return [
        d.metadata.name,
        f"{d.status.ready_replicas}/{d.spec.replicas}",
        str(d.status.updated_replicas),
        str(d.status.available_replicas),
        age(d.metadata.creation_timestamp, now),
        *_containers_images(d.spec.template),
        _labels(d.spec.selector if d.spec.HasField("selector") else None),
    ]


def _replicaset_row(rs: Any, now: float) -> list[str]:
    return [
        rs.metadata.name,
        str(rs.spec.replicas),
        str(rs.status.replicas),
        str(rs.status.ready_replicas),
        age(rs.metadata.creation_timestamp, now),
        *_containers_images(rs.spec.template),
        _labels(rs.spec.selector if rs.spec.HasField("selector") else None),
    ]


def node_status(node: Any) -> str:
    """Ready / NotReady / Unknown, with ",SchedulingDisabled" when cordoned."""
    ready = next((c for c in node.status.conditions if c.type == "Ready"), None)
    if ready is None:
        text = "Unknown"
    elif ready.status == "True":
        text = "Ready"
    elif ready.status == "False":
        text = "NotReady"
    else:
        text = "Unknown"
    if node.spec.unschedulable:
        text += ",SchedulingDisabled"
    return text


def node_roles(node: Any) -> str:
    roles = set()
    for key, value in node.metadata.labels.items():
        if key.startswith("node-role.kubernetes.io/"):
            roles.add(key.removeprefix("node-role.kubernetes.io/"))
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(r for r in roles if r)) or NONE


def _node_row(node: Any, now: float) -> list[str]:
    addresses = {a.type: a.address for a in node.status.addresses}
    info = node.status.node_info
    return [
        node.metadata.name,
        node_status(node),
        node_roles(node),
        age(node.metadata.creation_timestamp, now),
        info.kubelet_version,
        addresses.get("InternalIP", NONE),
        addresses.get("ExternalIP", NONE),
        info.os_image or UNKNOWN,
        info.kernel_version or UNKNOWN,
        info.container_runtime_version or UNKNOWN,
    ]


def _service_ports(svc: Any) -> str:
    ports = []
    for p in svc.spec.ports:
        node_port = f":{p.node_port}" if p.node_port else ""
        ports.append(f"{p.port}{node_port}/{p.protocol or 'TCP'}")
    return ",".join(ports) or NONE


def _external_ip(svc: Any) -> str:
    kind = svc.spec.type or "ClusterIP"
    external = list(svc.spec.external_ips)
    if kind == "ExternalName":
        return svc.spec.external_name or NONE
    if kind == "LoadBalancer":
        ingress = [i.ip or i.hostname for i in svc.status.load_balancer.ingress]
        return ",".join(ingress + external) or "<pending>"
    return ",".join(external) or NONE


def _service_row(svc: Any, now: float) -> list[str]:
    return [
        svc.metadata.name,
        svc.spec.type or "ClusterIP",
        svc.spec.cluster_ip or NONE,
        _external_ip(svc),
        _service_ports(svc),
        age(svc.metadata.creation_timestamp, now),
        ",".join(f"{k}={v}" for k, v in sorted(svc.spec.selector.items())) or NONE,
    ]


def _namespace_row(ns: Any, now: float) -> list[str]:
    return [ns.metadata.name, ns.status.phase or "Active", age(ns.metadata.creation_timestamp, now)]


def event_time(event: Any) -> Any:
    """The time an Event last happened (lastTimestamp, else eventTime, else
    its creation)."""
    for ts in (event.last_timestamp, event.event_time, event.metadata.creation_timestamp):
        if seconds_of(ts) is not None:
            return ts
    return event.last_timestamp


def involved(event: Any) -> str:
    ref = event.involved_object
    return f"{ref.kind.lower()}/{ref.name}"


def _event_row(event: Any, now: float) -> list[str]:
    first = event.first_timestamp if seconds_of(event.first_timestamp) else event.event_time
    first_seen = age(first, now)
    last_seen = age(event.last_timestamp, now) if seconds_of(event.last_timestamp) else first_seen
    ref = event.involved_object
    target = f"{ref.kind.lower()}/{ref.name}" if ref.name else ref.kind.lower()
    component = event.source.component or event.reporting_component
    instance = event.source.host or event.reporting_instance
    return [
        last_seen,
        event.type,
        event.reason,
        target,
        event.message.strip(),
        ref.field_path,
        f"{component}, {instance}" if instance else component,
        first_seen,
        str(event.count or 1),
        event.metadata.name,
    ]


def _replication_controller_row(rc: Any, now: float) -> list[str]:
    return [
        rc.metadata.name,
        str(rc.spec.replicas),
        str(rc.status.replicas),
        str(rc.status.ready_replicas),
        age(rc.metadata.creation_timestamp, now),
        *_containers_images(rc.spec.template),
        ",".join(f"{k}={v}" for k, v in sorted(rc.spec.selector.items())) or NONE,
    ]


def _has_condition(obj: Any, kind: str) -> bool:
    return any(c.type == kind and c.status == "True" for c in obj.status.conditions)


def job_status(job: Any) -> str:
    """kubectl's STATUS column of a Job."""
    if _has_condition(job, "Complete"):
        return "Complete"
    if _has_condition(job, "Failed"):
        return "Failed"
    if job.metadata.HasField("deletion_timestamp"):
        return "Terminating"
    for condition in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if _has_condition(job, condition):
            return condition
    return "Running"


def _job_row(job: Any, now: float) -> list[str]:
    spec, status = job.spec, job.status
    if spec.HasField("completions"):
        completions = f"{status.succeeded}/{spec.completions}"
    elif spec.parallelism > 1:
        completions = f"{status.succeeded}/1 of {spec.parallelism}"
    else:
        completions = f"{status.succeeded}/1"
    start, done = seconds_of(status.start_time), seconds_of(status.completion_time)
    duration = "" if start is None else human_duration((done or now) - start)
    return [
        job.metadata.name,
        job_status(job),
        completions,
        duration,
        age(job.metadata.creation_timestamp, now),
        *_containers_images(spec.template),
        _labels(spec.selector if spec.HasField("selector") else None),
    ]


def _cronjob_row(cj: Any, now: float) -> list[str]:
    spec = cj.spec
    last = cj.status.last_schedule_time
    job_spec = spec.job_template.spec
    return [
        cj.metadata.name,
        spec.schedule,
        spec.time_zone or NONE,
        ("True" if spec.suspend else "False") if spec.HasField("suspend") else "<unset>",
        str(len(cj.status.active)),
        NONE if seconds_of(last) is None else age(last, now),
        age(cj.metadata.creation_timestamp, now),
        *_containers_images(job_spec.template),
        _labels(job_spec.selector if job_spec.HasField("selector") else None),
    ]


def _statefulset_row(sts: Any, now: float) -> list[str]:
    return [
        sts.metadata.name,
        f"{sts.status.ready_replicas}/{sts.spec.replicas}",
        age(sts.metadata.creation_timestamp, now),
        *_containers_images(sts.spec.template),
    ]


def _daemonset_row(ds: Any, now: float) -> list[str]:
    s = ds.status
    node_selector = ds.spec.template.spec.node_selector
    return [
        ds.metadata.name,
        str(s.desired_number_scheduled),
        str(s.current_number_scheduled),
        str(s.number_ready),
        str(s.updated_number_scheduled),
        str(s.number_available),
        ",".join(f"{k}={v}" for k, v in sorted(node_selector.items())) or NONE,
        age(ds.metadata.creation_timestamp, now),
        *_containers_images(ds.spec.template),
        _labels(ds.spec.selector if ds.spec.HasField("selector") else None),
    ]


def format_endpoints(endpoints: Any, limit: int = 3, port_name: str | None = None) -> str:
    """`ip:port` of the ready addresses, at most three, then `+ N more...`
    (only the ports named `port_name` when it is given, as describe does)."""
    if not endpoints.subsets:
        return NONE
    shown: list[str] = []
    count = 0
    for subset in endpoints.subsets:
        ports: list[int | None] = [
            p.port for p in subset.ports if port_name is None or p.name == port_name
        ]
        if not subset.ports:
            ports = [None]  # a headless service without ports: addresses alone
        for port in ports:
            count += len(subset.addresses)
            for address in subset.addresses:
                if len(shown) < limit:
                    ip = f"[{address.ip}]" if ":" in address.ip and port is not None else address.ip
                    shown.append(ip if port is None else f"{ip}:{port}")
    text = ",".join(shown)
    return f"{text} + {count - limit} more..." if count > limit else text


def _endpoints_row(ep: Any, now: float) -> list[str]:
    return [ep.metadata.name, format_endpoints(ep), age(ep.metadata.creation_timestamp, now)]


def _endpoint_slice_row(slice_: Any, now: float) -> list[str]:
    """kubectl's columns: the first three ports (by number, else by name,
    else `*`) and the first three addresses, each with how many more, and
    `<unset>` for none."""
    ports = [
        str(p.port) if p.HasField("port") else (p.name if p.HasField("name") else "*")
        for p in slice_.ports
    ]
    addresses = [a for endpoint in slice_.endpoints for a in endpoint.addresses]
    return [
        slice_.metadata.name,
        slice_.address_type,
        _first_three(ports),
        _first_three(addresses),
        age(slice_.metadata.creation_timestamp, now),
    ]


def _first_three(items: Sequence[str]) -> str:
    """kubectl's listWithMoreString: `a,b,c + N more...`, `<unset>` for none."""
    shown = ",".join(items[:3])
    if len(items) > 3:
        return f"{shown} + {len(items) - 3} more..."
    return shown or "<unset>"


def _configmap_row(cm: Any, now: float) -> list[str]:
    count = len(cm.data) + len(cm.binary_data)
    return [cm.metadata.name, str(count), age(cm.metadata.creation_timestamp, now)]


def _secret_row(secret: Any, now: float) -> list[str]:
    return [
        secret.metadata.name,
        secret.type or "Opaque",
        str(len(secret.data)),
        age(secret.metadata.creation_timestamp, now),
    ]


_ACCESS_MODES = {
    "ReadWriteOnce": "RWO",
    "ReadOnlyMany": "ROX",
    "ReadWriteMany": "RWX",
    "ReadWriteOncePod": "RWOP",
}


def access_modes(modes: Iterable[str]) -> str:
    """`RWO,RWX` as kubectl abbreviates access modes."""
    return ",".join(_ACCESS_MODES.get(m, m) for m in modes)


def _storage(capacity: Any) -> str:
    return capacity["storage"].string if "storage" in capacity else ""


def _pv_row(pv: Any, now: float) -> list[str]:
    claim = pv.spec.claim_ref
    phase = pv.status.phase
    if pv.metadata.HasField("deletion_timestamp"):
        phase = "Terminating"
    return [
        pv.metadata.name,
        _storage(pv.spec.capacity),
        access_modes(pv.spec.access_modes),
        pv.spec.persistent_volume_reclaim_policy,
        phase,
        f"{claim.namespace}/{claim.name}" if claim.name else "",
        pv.spec.storage_class_name,
        pv.spec.volume_attributes_class_name or "<unset>",
        pv.status.reason,
        age(pv.metadata.creation_timestamp, now),
        pv.spec.volume_mode or "Filesystem",
    ]


def _pvc_row(pvc: Any, now: float) -> list[str]:
    phase = pvc.status.phase
    if pvc.metadata.HasField("deletion_timestamp"):
        phase = "Terminating"
    bound = bool(pvc.spec.volume_name)
    return [
        pvc.metadata.name,
        phase,
        pvc.spec.volume_name,
        _storage(pvc.status.capacity) if bound else "",
        access_modes(pvc.status.access_modes) if bound else "",
        pvc.spec.storage_class_name,
        pvc.spec.volume_attributes_class_name or "<unset>",
        age(pvc.metadata.creation_timestamp, now),
        pvc.spec.volume_mode or "Filesystem",
    ]


DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"


def _storageclass_row(sc: Any, now: float) -> list[str]:
    name = sc.metadata.name
    if sc.metadata.annotations.get(DEFAULT_CLASS) == "true":
        name += " (default)"
    return [
        name,
        sc.provisioner,
        sc.reclaim_policy or "Delete",
        sc.volume_binding_mode or "Immediate",
        "true" if sc.allow_volume_expansion else "false",
        age(sc.metadata.creation_timestamp, now),
    ]


def _lease_row(lease: Any, now: float) -> list[str]:
    return [
        lease.metadata.name,
        lease.spec.holder_identity,
        age(lease.metadata.creation_timestamp, now),
    ]


def hpa_targets(hpa: Any, limit: int = 2) -> str:
    """kubectl's TARGETS of an HPA: `cpu: 40%/80%`, `<unknown>` until measured."""
    statuses = list(hpa.status.current_metrics)
    shown: list[str] = []
    for i, spec in enumerate(hpa.spec.metrics):
        status = statuses[i] if i < len(statuses) else None
        if spec.type in ("Resource", "ContainerResource"):
            field = "resource" if spec.type == "Resource" else "container_resource"
            source = getattr(spec, field)
            current_of = getattr(status, field) if status is not None else None
            present = status is not None and status.HasField(field)
            shown.append(
                f"{source.name}: {_metric(source.target, current_of if present else None)}"
            )
        else:
            shown.append(f"<unknown>/<unknown> ({spec.type})")
    if not shown:
        return NONE
    text = ", ".join(shown[:limit])
    return text + f" + {len(shown) - limit} more..." if len(shown) > limit else text


def _metric(target: Any, status: Any) -> str:
    if target.HasField("average_value"):
        current = UNKNOWN
        if status is not None and status.current.average_value.string:
            current = status.current.average_value.string
        return f"{current}/{target.average_value.string}"
    current = UNKNOWN
    if status is not None and status.current.HasField("average_utilization"):
        current = f"{status.current.average_utilization}%"
    goal = f"{target.average_utilization}%" if target.HasField("average_utilization") else "<auto>"
    return f"{current}/{goal}"


def _hpa_row(hpa: Any, now: float) -> list[str]:
    ref = hpa.spec.scale_target_ref
    return [
        hpa.metadata.name,
        f"{ref.kind}/{ref.name}",
        hpa_targets(hpa),
        str(hpa.spec.min_replicas) if hpa.spec.HasField("min_replicas") else "<unset>",
        str(hpa.spec.max_replicas),
        str(hpa.status.current_replicas),
        age(hpa.metadata.creation_timestamp, now),
    ]


def _pdb_row(pdb: Any, now: float) -> list[str]:
    def bound(field: str) -> str:
        if not pdb.spec.HasField(field):
            return "N/A"
        value = getattr(pdb.spec, field)
        return value.str_val if value.WhichOneof("value") == "str_val" else str(value.int_val)

    return [
        pdb.metadata.name,
        bound("min_available"),
        bound("max_unavailable"),
        str(pdb.status.disruptions_allowed),
        age(pdb.metadata.creation_timestamp, now),
    ]


def _controller_revision_row(cr: Any, now: float) -> list[str]:
    owner = next((r for r in cr.metadata.owner_references if r.controller), None)
    controller = NONE
    if owner is not None:
        group = owner.api_version.rpartition("/")[0]
        controller = f"{owner.kind.lower()}{'.' + group if group else ''}/{owner.name}"
    return [
        cr.metadata.name,
        controller,
        str(cr.revision),
        age(cr.metadata.creation_timestamp, now),
    ]


def _priority_class_row(pc: Any, now: float) -> list[str]:
    return [
        pc.metadata.name,
        str(pc.value),
        "true" if pc.global_default else "false",
        age(pc.metadata.creation_timestamp, now),
        pc.preemption_policy or "PreemptLowerPriority",
    ]


def _ingress_hosts(rules: Any, limit: int = 3) -> str:
    """kubectl's formatHosts: up to three hosts, `*` for none."""
    hosts = [r.host for r in rules if r.host][:limit]
    if not hosts:
        return "*"
    more = len(rules) - limit
    return ",".join(hosts) + (f" + {more} more..." if more > 0 else "")


def _ingress_row(ing: Any, now: float) -> list[str]:
    lb = ing.status.load_balancer.ingress
    return [
        ing.metadata.name,
        ing.spec.ingress_class_name or NONE,
        _ingress_hosts(ing.spec.rules),
        ",".join(e.ip or e.hostname for e in lb if e.ip or e.hostname),
        "80, 443" if ing.spec.tls else "80",
        age(ing.metadata.creation_timestamp, now),
    ]


def _ingress_class_row(ic: Any, now: float) -> list[str]:
    params = NONE
    if ic.spec.HasField("parameters"):
        p = ic.spec.parameters
        params = p.kind + (f".{p.api_group}" if p.api_group else "") + f"/{p.name}"
    return [ic.metadata.name, ic.spec.controller, params, age(ic.metadata.creation_timestamp, now)]


def _crd_row(crd: Any, now: float) -> list[str]:
    created = seconds_of(crd.metadata.creation_timestamp)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)) if created is not None else ""
    return [crd.metadata.name, stamp]


def _created_at_row(obj: Any, now: float) -> list[str]:
    """NAME and CREATED AT, as kubectl prints Roles and ClusterRoles."""
    return _crd_row(obj, now)


def _binding_row(binding: Any, now: float) -> list[str]:
    """kubectl's RoleBinding and ClusterRoleBinding columns; -o wide adds
    the subjects by kind (ServiceAccounts as NAMESPACE/NAME)."""

    def names(kind: str) -> str:
        found = [
            f"{s.namespace}/{s.name}" if kind == "ServiceAccount" else s.name
            for s in binding.subjects
            if s.kind == kind
        ]
        return ", ".join(found)

    ref = binding.role_ref
    return [
        binding.metadata.name,
        f"{ref.kind}/{ref.name}",
        age(binding.metadata.creation_timestamp, now),
        names("User"),
        names("Group"),
        names("ServiceAccount"),
    ]


def _service_account_row(sa: Any, now: float) -> list[str]:
    return [sa.metadata.name, str(len(sa.secrets)), age(sa.metadata.creation_timestamp, now)]


def _generic_row(obj: Any, now: float) -> list[str]:
    return [obj.metadata.name, age(obj.metadata.creation_timestamp, now)]


_AGE = "AGE"
_WORKLOAD_WIDE = ("CONTAINERS", "IMAGES", "SELECTOR")
_PRINTERS: dict[str, Printer] = {
    "Pod": Printer(
        ("NAME", "READY", "STATUS", "RESTARTS", _AGE),
        ("IP", "NODE", "NOMINATED NODE", "READINESS GATES"),
        _pod_row,
    ),
    "Deployment": Printer(
        ("NAME", "READY", "UP-TO-DATE", "AVAILABLE", _AGE), _WORKLOAD_WIDE, _deployment_row
    ),
    "ReplicaSet": Printer(
        ("NAME", "DESIRED", "CURRENT", "READY", _AGE), _WORKLOAD_WIDE, _replicaset_row
    ),
    "ReplicationController": Printer(
        ("NAME", "DESIRED", "CURRENT", "READY", _AGE), _WORKLOAD_WIDE, _replication_controller_row
    ),
    "StatefulSet": Printer(("NAME", "READY", _AGE), ("CONTAINERS", "IMAGES"), _statefulset_row),
    "DaemonSet": Printer(
        ("NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", _AGE),
        _WORKLOAD_WIDE,
        _daemonset_row,
    ),
    "Job": Printer(("NAME", "STATUS", "COMPLETIONS", "DURATION", _AGE), _WORKLOAD_WIDE, _job_row),
    "CronJob": Printer(
        ("NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", _AGE),
        _WORKLOAD_WIDE,
        _cronjob_row,
    ),
    "Node": Printer(
        ("NAME", "STATUS", "ROLES", _AGE, "VERSION"),
        ("INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"),
        _node_row,
    ),
    "Service": Printer(
        ("NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", _AGE),
        ("SELECTOR",),
        _service_row,
    ),
    "Endpoints": Printer(("NAME", "ENDPOINTS", _AGE), (), _endpoints_row),
    "EndpointSlice": Printer(
        ("NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", _AGE), (), _endpoint_slice_row
    ),
    "Namespace": Printer(("NAME", "STATUS", _AGE), (), _namespace_row),
    "ConfigMap": Printer(("NAME", "DATA", _AGE), (), _configmap_row),
    "Secret": Printer(("NAME", "TYPE", "DATA", _AGE), (), _secret_row),
    "Event": Printer(
        ("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"),
        ("SUBOBJECT", "SOURCE", "FIRST SEEN", "COUNT", "NAME"),
        _event_row,
        wide_order=(
            *("LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE", "MESSAGE"),
            *("FIRST SEEN", "COUNT", "NAME"),
        ),
    ),
    "PersistentVolume": Printer(
        (
            *("NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM"),
            *("STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON", _AGE),
        ),
        ("VOLUMEMODE",),
        _pv_row,
    ),
    "PersistentVolumeClaim": Printer(
        (
            *("NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS"),
            *("VOLUMEATTRIBUTESCLASS", _AGE),
        ),
        ("VOLUMEMODE",),
        _pvc_row,
    ),
    "StorageClass": Printer(
        (
            *("NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE"),
            *("ALLOWVOLUMEEXPANSION", _AGE),
        ),
        (),
        _storageclass_row,
    ),
    "Lease": Printer(("NAME", "HOLDER", _AGE), (), _lease_row),
    "HorizontalPodAutoscaler": Printer(
        ("NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", _AGE), (), _hpa_row
    ),
    "ControllerRevision": Printer(
        ("NAME", "CONTROLLER", "REVISION", _AGE), (), _controller_revision_row
    ),
    "PodDisruptionBudget": Printer(
        ("NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", _AGE), (), _pdb_row
    ),
    "PriorityClass": Printer(
        ("NAME", "VALUE", "GLOBAL-DEFAULT", _AGE, "PREEMPTIONPOLICY"), (), _priority_class_row
    ),
    "Ingress": Printer(("NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", _AGE), (), _ingress_row),
    "IngressClass": Printer(("NAME", "CONTROLLER", "PARAMETERS", _AGE), (), _ingress_class_row),
    "CustomResourceDefinition": Printer(("NAME", "CREATED AT"), (), _crd_row),
    "Role": Printer(("NAME", "CREATED AT"), (), _created_at_row),
    "ClusterRole": Printer(("NAME", "CREATED AT"), (), _created_at_row),
    "RoleBinding": Printer(
        ("NAME", "ROLE", _AGE), ("USERS", "GROUPS", "SERVICEACCOUNTS"), _binding_row
    ),
    "ClusterRoleBinding": Printer(
        ("NAME", "ROLE", _AGE), ("USERS", "GROUPS", "SERVICEACCOUNTS"), _binding_row
    ),
    "ServiceAccount": Printer(("NAME", "SECRETS", _AGE), (), _service_account_row),
}
_GENERIC = Printer(("NAME", _AGE), (), _generic_row)


def printer_for(kind: str) -> Printer:
    return _PRINTERS.get(kind, _GENERIC)


def table(
    kind: str,
    objects: Iterable[Any],
    now: float,
    *,
    wide: bool = False,
    namespace_column: bool = False,
    printer: Printer | None = None,
) -> list[list[str]]:
    """The header and one row per object, as `kpyctl get` prints them
    (NAMESPACE first when listing across namespaces); `printer` gives the
    columns of a kind that has no printer of its own here (a custom kind's,
    from its CRD: kpy.cli._columns.crd_printer)."""
    printer = printer or printer_for(kind)
    rows = [(["NAMESPACE"] if namespace_column else []) + printer.header(wide=wide)]
    for obj in objects:
        ns = [obj.metadata.namespace] if namespace_column else []
        rows.append(ns + printer.cells(obj, now, wide=wide))
    return rows
