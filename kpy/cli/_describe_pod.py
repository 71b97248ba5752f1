"""A pod as `kubectl describe pod` shows it, as rows for describe's
tabwriter (kpy.cli._printers.tabulate with padding 2).

Contracts:
- Pure: the pod is read, never mutated; the time is passed in.
- `pod_rows(pod, now)` is everything kubectl prints from `Name:` to
  `Tolerations:` (events and the scheduler's verdicts are the caller's):
  Priority, Service Account, Node, Start Time, Labels, Annotations,
  Status (or `Terminating (lasts ...)`), Reason, Message, IP, IPs,
  Controlled By, NominatedNodeName, Init Containers and Containers, Readiness
  Gates, Conditions, Volumes by type, QoS Class, Node-Selectors, Tolerations.
- `container_rows(...)` is one container: Container ID, Image, Image ID,
  Port(s), Host Port(s), Command, Args, State and Last State (Reason,
  Message, Exit Code, Signal, Started, Finished), Ready, Restart Count,
  Limits, Requests, Liveness / Readiness / Startup, Environment Variables
  from, Environment (`<set to the key 'k' of config map 'c'>` and its
  kin), Mounts. Without a status (a pod template) the status lines are left
  out, as kubectl does.
"""

from __future__ import annotations

import datetime
import math
from typing import TYPE_CHECKING, Any

from kpy.api.quantity import Quantity
from kpy.cli import _printers

if TYPE_CHECKING:
    from kpy.api.core.v1 import Toleration

__all__ = [
    "Rows",
    "annotations_rows",
    "container_rows",
    "containers_rows",
    "describe_probe",
    "indent",
    "labels_rows",
    "list_rows",
    "pod_rows",
    "qos_class",
    "state_rows",
    "timestamp",
    "toleration",
    "volume_rows",
]

Rows = list[list[str]]
NONE = _printers.NONE


def indent(level: int, text: str) -> str:
    return "  " * level + text


def labels_rows(label: str, values: dict[str, str], sep: str = "=", level: int = 0) -> Rows:
    """`Labels:  a=b` then one line per further entry, as kubectl prints maps."""
    return list_rows(label, [f"{k}{sep}{v}" for k, v in sorted(values.items())], level)


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MAX_ANNOTATION = 140


def annotations_rows(label: str, annotations: dict[str, str], level: int = 0) -> Rows:
    """Annotations as kubectl describes them: without the last applied
    configuration; a long or multi-line value on lines of its own, each cut
    at 138 characters with `...`."""
    keys = sorted(k for k in annotations if k != LAST_APPLIED)
    if not keys:
        return [[indent(level, label), NONE]]
    rows: Rows = []
    for i, key in enumerate(keys):
        first = indent(level, label) if i == 0 else ""
        value = annotations[key].removesuffix("\n")
        if len(value) + len(key) + 2 > MAX_ANNOTATION or "\n" in value:
            rows.append([first, f"{key}:"])
            rows += [["", _shorten(line, MAX_ANNOTATION - 2)] for line in value.split("\n")]
        else:
            rows.append([first, f"{key}: {value}"])
    return rows


def _shorten(text: str, limit: int) -> str:
    return text[:limit] + "..." if len(text) > limit else text


def list_rows(label: str, items: list[str], level: int = 0) -> Rows:
    if not items:
        return [[indent(level, label), NONE]]
    return [[indent(level, label) if i == 0 else "", item] for i, item in enumerate(items)]


def timestamp(ts: Any) -> str:
    """kubectl's describe time (RFC 1123 with a numeric zone), local time."""
    at = _printers.seconds_of(ts)
    if at is None:
        return NONE
    local = datetime.datetime.fromtimestamp(at, tz=datetime.UTC).astimezone()
    return local.strftime("%a, %d %b %Y %H:%M:%S %z")


def toleration(t: Toleration) -> str:
    """kubectl's one-line toleration: `key=value:Effect op=Exists for 300s`."""
    text = t.key + (f"={t.value}" if t.value else "") + (f":{t.effect}" if t.effect else "")
    if t.operator == "Exists" and not t.value:
        text += " op=Exists" if text else "op=Exists"
    if t.HasField("toleration_seconds"):
        text += f" for {t.toleration_seconds}s"
    return text


# ------------------------------------------------------------------ the pod


def pod_rows(pod: Any, now: float) -> Rows:
    spec, status, meta = pod.spec, pod.status, pod.metadata
    rows: Rows = [["Name:", meta.name], ["Namespace:", meta.namespace]]
    if spec.HasField("priority"):
        rows.append(["Priority:", str(spec.priority)])
    if spec.priority_class_name:
        rows.append(["Priority Class Name:", spec.priority_class_name])
    if spec.service_account_name:
        rows.append(["Service Account:", spec.service_account_name])
    rows.append(["Node:", f"{spec.node_name}/{status.host_ip}" if spec.node_name else NONE])
    if _printers.seconds_of(status.start_time) is not None:
        rows.append(["Start Time:", timestamp(status.start_time)])
    rows += labels_rows("Labels:", dict(meta.labels))
    rows += annotations_rows("Annotations:", dict(meta.annotations))
    if meta.HasField("deletion_timestamp") and status.phase not in ("Failed", "Succeeded"):
        lasts = _printers.age(meta.deletion_timestamp, now)
        rows.append(["Status:", f"Terminating (lasts {lasts})"])
        rows.append(["Termination Grace Period:", f"{meta.deletion_grace_period_seconds}s"])
    else:
        rows.append(["Status:", status.phase])
    if status.reason:
        rows.append(["Reason:", status.reason])
    if status.message:
        rows.append(["Message:", status.message])
    rows.append(["IP:", status.pod_ip])
    ips = [ip.ip for ip in status.pod_ips] or ([status.pod_ip] if status.pod_ip else [])
    if ips:
        rows.append(["IPs:"])
        rows += [[indent(1, "IP:"), ip] for ip in ips]
    else:
        rows.append(["IPs:", NONE])
    controller = next((r for r in meta.owner_references if r.controller), None)
    if controller is not None:
        rows.append(["Controlled By:", f"{controller.kind}/{controller.name}"])
    if status.nominated_node_name:
        rows.append(["NominatedNodeName:", status.nominated_node_name])
    if spec.init_containers:
        rows += containers_rows(
            "Init Containers:", spec.init_containers, status.init_container_statuses, pod
        )
    rows += containers_rows("Containers:", spec.containers, status.container_statuses, pod)
    if spec.readiness_gates:
        rows += [["Readiness Gates:"], [indent(1, "Type"), "Status"]]
        for gate in spec.readiness_gates:
            condition = next((c for c in status.conditions if c.type == gate.condition_type), None)
            rows.append([indent(1, gate.condition_type), condition.status if condition else NONE])
    if status.conditions:
        # kubectl writes "%v \t%v \n": each cell keeps a trailing space
        rows += [["Conditions:"], [indent(1, "Type"), "Status"]]
        rows += [[indent(1, f"{c.type} "), f"{c.status} "] for c in status.conditions]
    rows += volume_rows(spec.volumes)
    rows.append(["QoS Class:", status.qos_class or qos_class(pod)])
    rows += labels_rows("Node-Selectors:", dict(spec.node_selector))
    rows += list_rows("Tolerations:", [toleration(t) for t in spec.tolerations])
    return rows


def qos_class(pod: Any) -> str:
    """The QoS class kubectl derives when the status has none: BestEffort
    without any cpu or memory request or limit; Guaranteed when every
    container limits both and requests what it limits; else Burstable."""
    containers = [*pod.spec.init_containers, *pod.spec.containers]
    amounts = [(_amounts(c.resources.requests), _amounts(c.resources.limits)) for c in containers]
    if not any(req or lim for req, lim in amounts):
        return "BestEffort"
    guaranteed = all(
        set(lim) == {"cpu", "memory"} and all(lim[k] == v for k, v in req.items())
        for req, lim in amounts
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _amounts(values: Any) -> dict[str, Quantity | str]:
    """The cpu and memory amounts; a text that is no quantity stays text."""
    out: dict[str, Quantity | str] = {}
    for key in ("cpu", "memory"):
        if key in values:
            try:
                out[key] = Quantity.parse(values[key].string)
            except ValueError:
                out[key] = values[key].string
    return out


# ------------------------------------------------------------------ containers


def containers_rows(label: str, containers: Any, statuses: Any, pod: Any, space: str = "") -> Rows:
    """`Containers:` (or `Init Containers:`) and each container under it.
    `space` prefixes the label (a pod template's is indented); then, as in
    kubectl, the names are indented one space more than a pod's. `pod` is
    None for a pod template: its Downward API values are left blank."""
    by_name = {s.name: s for s in statuses}
    rows: Rows = [[space + label]]
    for c in containers:
        rows += container_rows(c, by_name.get(c.name), pod, " " if space else "")
    return rows


def container_rows(c: Any, cs: Any, pod: Any, name_indent: str = "") -> Rows:
    level = 1
    inner = level + 1
    rows: Rows = [[indent(level, name_indent + f"{c.name}:")]]
    if cs is not None:
        rows.append([indent(inner, "Container ID:"), cs.container_id])
    rows.append([indent(inner, "Image:"), c.image])
    if cs is not None:
        rows.append([indent(inner, "Image ID:"), cs.image_id])
    ports = ", ".join(f"{p.container_port}/{p.protocol or 'TCP'}" for p in c.ports)
    host_ports = ", ".join(f"{p.host_port}/{p.protocol or 'TCP'}" for p in c.ports)
    rows.append([indent(inner, "Ports:" if "," in ports else "Port:"), ports or NONE])
    rows.append(
        [indent(inner, "Host Ports:" if "," in host_ports else "Host Port:"), host_ports or NONE]
    )
    for title, words in (("Command:", c.command), ("Args:", c.args)):
        if words:
            rows.append([indent(inner, title)])
            rows += [[indent(inner + 1, line)] for word in words for line in word.split("\n")]
    if cs is not None:
        rows += state_rows("State:", cs.state, inner)
        if cs.last_state.HasField("terminated"):
            rows += state_rows("Last State:", cs.last_state, inner)
        rows.append([indent(inner, "Ready:"), "True" if cs.ready else "False"])
        rows.append([indent(inner, "Restart Count:"), str(cs.restart_count)])
    for title, values in (("Limits:", c.resources.limits), ("Requests:", c.resources.requests)):
        if values:
            rows.append([indent(inner, title)])
            rows += [[indent(inner + 1, f"{k}:"), values[k].string] for k in sorted(values)]
    for title, field in (
        ("Liveness:", "liveness_probe"),
        ("Readiness:", "readiness_probe"),
        ("Startup:", "startup_probe"),
    ):
        if c.HasField(field):
            rows.append([indent(inner, title), describe_probe(getattr(c, field))])
    if c.env_from:
        rows.append([indent(inner, "Environment Variables from:")])
        rows += [_env_from_row(e, inner + 1) for e in c.env_from]
    if c.env:
        rows.append([indent(inner, "Environment:")])
        for e in c.env:
            rows += _env_rows(e, c, pod, inner + 1)
    else:
        rows.append([indent(inner, "Environment:"), NONE])
    mounts = sorted(c.volume_mounts, key=lambda m: m.mount_path)
    if mounts:
        rows.append([indent(inner, "Mounts:")])
        rows += [[indent(inner + 1, _mount(m))] for m in mounts]
    else:
        rows.append([indent(inner, "Mounts:"), NONE])
    return rows


def state_rows(label: str, state: Any, level: int) -> Rows:
    """`State:` or `Last State:` and what kubectl prints under it."""
    below = level + 1
    if state.HasField("running"):
        return [
            [indent(level, label), "Running"],
            [indent(below, "Started:"), timestamp(state.running.started_at)],
        ]
    if state.HasField("terminated"):
        t = state.terminated
        rows = [[indent(level, label), "Terminated"]]
        if t.reason:
            rows.append([indent(below, "Reason:"), t.reason])
        if t.message:
            rows.append([indent(below, "Message:"), t.message])
        rows.append([indent(below, "Exit Code:"), str(t.exit_code)])
        if t.signal > 0:
            rows.append([indent(below, "Signal:"), str(t.signal)])
        rows.append([indent(below, "Started:"), timestamp(t.started_at)])
        rows.append([indent(below, "Finished:"), timestamp(t.finished_at)])
        return rows
    rows = [[indent(level, label), "Waiting"]]
    if state.HasField("waiting"):
        if state.waiting.reason:
            rows.append([indent(below, "Reason:"), state.waiting.reason])
        if state.waiting.message:
            rows.append([indent(below, "Message:"), state.waiting.message])
    return rows


def _port(port: Any) -> str:
    which = port.WhichOneof("value")
    return "" if which is None else str(getattr(port, which))


def describe_probe(probe: Any) -> str:
    """kubectl's probe line: `http-get http://:8080/healthz delay=0s
    timeout=1s period=10s #success=1 #failure=3`."""
    attrs = (
        f"delay={probe.initial_delay_seconds}s timeout={probe.timeout_seconds}s "
        f"period={probe.period_seconds}s #success={probe.success_threshold} "
        f"#failure={probe.failure_threshold}"
    )
    if probe.HasField("exec"):
        return f"exec [{' '.join(probe.exec.command)}] {attrs}"
    if probe.HasField("http_get"):
        get = probe.http_get
        port = _port(get.port)
        host = (f"[{get.host}]" if ":" in get.host else get.host) + (f":{port}" if port else "")
        return f"http-get {(get.scheme or 'HTTP').lower()}://{host}{get.path} {attrs}"
    if probe.HasField("tcp_socket"):
        return f"tcp-socket {probe.tcp_socket.host}:{_port(probe.tcp_socket.port)} {attrs}"
    if probe.HasField("grpc"):
        return f"grpc <pod>:{probe.grpc.port} {probe.grpc.service} {attrs}"
    return f"unknown {attrs}"


def _env_from_row(e: Any, level: int) -> list[str]:
    if e.HasField("config_map_ref"):
        source, ref = "ConfigMap", e.config_map_ref
    else:
        source, ref = "Secret", e.secret_ref
    what = f"{source} with prefix '{e.prefix}'" if e.prefix else source
    return [indent(level, ref.name), what, f"Optional: {'true' if ref.optional else 'false'}"]


def _env_rows(e: Any, container: Any, pod: Any, level: int) -> Rows:
    name = indent(level, f"{e.name}:")
    if not e.HasField("value_from"):
        lines = e.value.split("\n")
        return [[name, lines[0]], *[["", line] for line in lines[1:]]]
    source = e.value_from
    if source.HasField("field_ref"):
        ref = source.field_ref
        value = "" if pod is None else _field_value(pod, ref.field_path)
        return [[name, f"{value} ({ref.api_version or 'v1'}:{ref.field_path})"]]
    if source.HasField("resource_field_ref"):
        ref = source.resource_field_ref
        value = _resource_value(ref, container)
        if value == "0" and ref.resource in ("limits.cpu", "limits.memory"):
            value = "node allocatable"
        return [[name, f"{value} ({ref.resource})"]]
    if source.HasField("secret_key_ref"):
        ref = source.secret_key_ref
        text = f"<set to the key '{ref.key}' in secret '{ref.name}'>"
        return [[name, text, f"Optional: {'true' if ref.optional else 'false'}"]]
    if source.HasField("config_map_key_ref"):
        ref = source.config_map_key_ref
        text = f"<set to the key '{ref.key}' of config map '{ref.name}'>"
        return [[name, text, f"Optional: {'true' if ref.optional else 'false'}"]]
    return [[name, ""]]


def _field_value(pod: Any, path: str) -> str:
    """The Downward API value of `path`, as kubectl resolves it for describe."""
    meta = pod.metadata
    simple = {
        "metadata.name": meta.name,
        "metadata.namespace": meta.namespace,
        "metadata.uid": meta.uid,
        "spec.nodeName": pod.spec.node_name,
        "spec.serviceAccountName": pod.spec.service_account_name,
        "status.hostIP": pod.status.host_ip,
        "status.podIP": pod.status.pod_ip,
        "status.podIPs": ",".join(ip.ip for ip in pod.status.pod_ips),
    }
    if path in simple:
        return str(simple[path])
    for prefix, values in (
        ("metadata.labels", meta.labels),
        ("metadata.annotations", meta.annotations),
    ):
        if path == prefix:
            return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str(values.get(path[len(prefix) + 2 : -2], ""))
    return ""


def _resource_value(ref: Any, container: Any) -> str:
    kind, _, resource = ref.resource.partition(".")
    values = container.resources.limits if kind == "limits" else container.resources.requests
    if resource not in values:
        return "0"
    text: str = values[resource].string
    try:
        amount = Quantity.parse(text).as_fraction()
        divisor = Quantity.parse(ref.divisor.string or "1").as_fraction()
    except ValueError:
        return text
    return str(math.ceil(amount / divisor)) if divisor else "0"


def _mount(m: Any) -> str:
    flags = ["ro" if m.read_only else "rw"]
    if m.sub_path:
        flags.append(f'path="{m.sub_path}"')
    return f"{m.mount_path} from {m.name} ({','.join(flags)})"


# ------------------------------------------------------------------ volumes


def volume_rows(volumes: Any, space: str = "") -> Rows:
    """`Volumes:` and each volume with its type, as kubectl describes them
    (`space` as for `containers_rows`)."""
    if not volumes:
        return [[space + "Volumes:", NONE]]
    rows: Rows = [[space + "Volumes:"]]
    for v in volumes:
        rows.append([indent(1, (" " if space else "") + f"{v.name}:")])
        inner = 2
        rows += [[indent(inner, k), value] for k, value in _volume_source(v)]
        if v.HasField("downward_api"):
            rows.append([indent(inner, "Items:")])
            for item in v.downward_api.items:
                source = item.field_ref.field_path or item.resource_field_ref.resource
                rows.append([indent(inner + 1, f"{source} -> {item.path}")])
    return rows


def _optional(message: Any) -> str:
    return ("true" if message.optional else "false") if message.HasField("optional") else "<nil>"


def _volume_source(v: Any) -> list[tuple[str, str]]:
    if v.HasField("host_path"):
        return [
            ("Type:", "HostPath (bare host directory volume)"),
            ("Path:", v.host_path.path),
            ("HostPathType:", v.host_path.type),
        ]
    if v.HasField("empty_dir"):
        size = v.empty_dir.size_limit.string if v.empty_dir.HasField("size_limit") else ""
        return [
            ("Type:", "EmptyDir (a temporary directory that shares a pod's lifetime)"),
            ("Medium:", v.empty_dir.medium),
            ("SizeLimit:", size if size and size != "0" else "<unset>"),
        ]
    if v.HasField("secret"):
        return [
            ("Type:", "Secret (a volume populated by a Secret)"),
            ("SecretName:", v.secret.secret_name),
            ("Optional:", "true" if v.secret.optional else "false"),
        ]
    if v.HasField("config_map"):
        return [
            ("Type:", "ConfigMap (a volume populated by a ConfigMap)"),
            ("Name:", v.config_map.name),
            ("Optional:", "true" if v.config_map.optional else "false"),
        ]
    if v.HasField("persistent_volume_claim"):
        claim = v.persistent_volume_claim
        return [
            (
                "Type:",
                "PersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same "
                "namespace)",
            ),
            ("ClaimName:", claim.claim_name),
            ("ReadOnly:", "true" if claim.read_only else "false"),
        ]
    if v.HasField("downward_api"):
        return [("Type:", "DownwardAPI (a volume populated by information about the pod)")]
    if v.HasField("projected"):
        return _projected(v.projected)
    kind = next((f.json_name for f, _ in v.ListFields() if f.name != "name"), "")
    return [("Type:", f"{kind[:1].upper()}{kind[1:]}" if kind else NONE)]


def _projected(projected: Any) -> list[tuple[str, str]]:
    rows = [("Type:", "Projected (a volume that contains injected data from multiple sources)")]
    for source in projected.sources:
        if source.HasField("secret"):
            rows += [
                ("SecretName:", source.secret.name),
                ("SecretOptionalName:", _optional(source.secret)),
            ]
        elif source.HasField("downward_api"):
            rows.append(("DownwardAPI:", "true"))
        elif source.HasField("config_map"):
            rows += [
                ("ConfigMapName:", source.config_map.name),
                ("ConfigMapOptional:", _optional(source.config_map)),
            ]
        elif source.HasField("service_account_token"):
            seconds = source.service_account_token.expiration_seconds
            rows.append(("TokenExpirationSeconds:", str(seconds)))
    return rows
