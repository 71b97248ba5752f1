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
    `row(obj, now)` returns cells for both."""

    headers: tuple[str, ...]
    wide: tuple[str, ...]
    row: Row

    def header(self, *, wide: bool) -> list[str]:
        return list(self.headers + self.wide) if wide else list(self.headers)

    def cells(self, obj: Any, now: float, *, wide: bool) -> list[str]:
        cells = self.row(obj, now)
        return cells if wide else cells[: len(self.headers)]


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
    return [
        age(event_time(event), now),
        event.type,
        event.reason,
        involved(event),
        event.message,
        event.source.component or event.reporting_component,
        str(event.count or 1),
        age(event.first_timestamp, now),
    ]


def _generic_row(obj: Any, now: float) -> list[str]:
    return [obj.metadata.name, age(obj.metadata.creation_timestamp, now)]


_AGE = "AGE"
_PRINTERS: dict[str, Printer] = {
    "Pod": Printer(
        ("NAME", "READY", "STATUS", "RESTARTS", _AGE),
        ("IP", "NODE", "NOMINATED NODE", "READINESS GATES"),
        _pod_row,
    ),
    "Deployment": Printer(
        ("NAME", "READY", "UP-TO-DATE", "AVAILABLE", _AGE),
        ("CONTAINERS", "IMAGES", "SELECTOR"),
        _deployment_row,
    ),
    "ReplicaSet": Printer(
        ("NAME", "DESIRED", "CURRENT", "READY", _AGE),
        ("CONTAINERS", "IMAGES", "SELECTOR"),
        _replicaset_row,
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
    "Namespace": Printer(("NAME", "STATUS", _AGE), (), _namespace_row),
    "Event": Printer(
        ("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"),
        ("SOURCE", "COUNT", "FIRST SEEN"),
        _event_row,
    ),
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
) -> list[list[str]]:
    """The header and one row per object, as `kpyctl get` prints them
    (NAMESPACE first when listing across namespaces)."""
    printer = printer_for(kind)
    rows = [(["NAMESPACE"] if namespace_column else []) + printer.header(wide=wide)]
    for obj in objects:
        ns = [obj.metadata.namespace] if namespace_column else []
        rows.append(ns + printer.cells(obj, now, wide=wide))
    return rows
