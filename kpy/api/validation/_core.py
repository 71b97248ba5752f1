"""Validation of core/v1 kinds: pods and their templates, services, config.

The pod spec checks are shared by every workload kind through
`validate_pod_template_spec`; the rules and their wording follow Kubernetes'
`pkg/apis/core/validation`.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from kpy.api import names
from kpy.api.validation._field import (
    Errors,
    duplicate,
    each,
    forbidden,
    immutable,
    invalid,
    non_negative,
    not_supported,
    one_of,
    positive,
    required,
    too_long,
)
from kpy.api.validation._meta import validate_annotations, validate_label_selector, validate_labels
from kpy.api.validation._quantities import resource_value, value_of
from kpy.api.validation._registry import update_validators, validators

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kpy.api.quantity import Quantity

RESTART_POLICIES = ("Always", "OnFailure", "Never")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
PROTOCOLS = ("TCP", "UDP", "SCTP")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
HOST_PATH_TYPES = (
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
)
#: Recycle is Kubernetes' deprecated third policy: accepted here, refused in `_unsupported`.
RECLAIM_POLICIES = ("Retain", "Delete", "Recycle")
VOLUME_MODES = ("Filesystem", "Block")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
ENV_FIELD_PATHS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels",
    "metadata.annotations",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
)
RESOURCE_FIELD_NAMES = (
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
)
MAX_CONFIG_SIZE = 1024 * 1024
_BYTE_DIVISORS = ("1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei")
# The divisors Kubernetes allows for a resourceFieldRef, by the resource's
# name without its "limits." / "requests." prefix, with the name it uses in
# its message.
DIVISORS: dict[str, tuple[tuple[str, ...], str]] = {
    "cpu": (("1m", "1"), "cpu"),
    "memory": (_BYTE_DIVISORS, "memory"),
    "ephemeral-storage": (_BYTE_DIVISORS, "local ephemeral storage"),
}


def _set_once(msg: Any, path: str, fields: Iterable[str], what: str) -> Errors:
    """Exactly one of `fields` must be set on `msg`."""
    chosen = [f for f in fields if msg.HasField(f)]
    if not chosen:
        return [required(path, f"must specify a {what}")]
    if len(chosen) > 1:
        return [forbidden(path, f"may not specify more than 1 {what}")]
    return []


# ------------------------------------------------------------------ pods


def validate_pod_template_spec(
    template: Any, path: str, *, restart_policies: tuple[str, ...] = RESTART_POLICIES
) -> Errors:
    """A pod template: its labels, annotations and pod spec."""
    errs = validate_labels(template.metadata.labels, f"{path}.metadata.labels")
    errs += validate_annotations(template.metadata.annotations, f"{path}.metadata.annotations")
    errs += validate_pod_spec(template.spec, f"{path}.spec")
    policy = template.spec.restart_policy
    if policy in RESTART_POLICIES and policy not in restart_policies:
        errs.append(not_supported(f"{path}.spec.restartPolicy", policy, restart_policies))
    return errs


def validate_pod_spec(spec: Any, path: str) -> Errors:
    errs: Errors = []
    volumes, errs_v = _volumes(spec.volumes, f"{path}.volumes")
    errs += errs_v
    if not spec.containers:
        errs.append(required(f"{path}.containers"))
    seen: set[str] = set()
    for field, group in (("initContainers", spec.init_containers), ("containers", spec.containers)):
        for i, container in enumerate(group):
            cpath = f"{path}.{field}[{i}]"
            errs += _container(container, cpath, volumes, init=field == "initContainers")
            if container.name in seen:
                errs.append(duplicate(f"{cpath}.name", container.name))
            seen.add(container.name)
    for i, container in enumerate(spec.ephemeral_containers):
        res = container.resources
        if res.limits or res.requests:
            errs.append(
                forbidden(
                    f"{path}.ephemeralContainers[{i}].resources",
                    "cannot be set for an Ephemeral Container",
                )
            )
    for name, quantity in sorted(spec.overhead.items()):
        errs += _resource_name(name, f"{path}.overhead[{name}]")
        errs += resource_value(name, quantity, f"{path}.overhead[{name}]")
    if spec.HasField("resources"):
        errs += _resources(spec.resources, f"{path}.resources")
    errs += _host_ports(spec, path)
    errs += one_of(f"{path}.restartPolicy", spec.restart_policy, RESTART_POLICIES)
    errs += one_of(f"{path}.dnsPolicy", spec.dns_policy, DNS_POLICIES) if spec.dns_policy else []
    if spec.HasField("termination_grace_period_seconds"):
        errs += non_negative(
            f"{path}.terminationGracePeriodSeconds", spec.termination_grace_period_seconds
        )
    if spec.HasField("active_deadline_seconds"):
        errs += positive(f"{path}.activeDeadlineSeconds", spec.active_deadline_seconds)
    errs += validate_labels(spec.node_selector, f"{path}.nodeSelector")
    for field in ("hostname", "subdomain"):
        value = getattr(spec, field)
        if value:
            errs += each(f"{path}.{field}", value, names.is_dns1123_label(value))
    if spec.node_name:
        errs += each(f"{path}.nodeName", spec.node_name, names.is_dns1123_subdomain(spec.node_name))
    if spec.service_account_name:
        errs += each(
            f"{path}.serviceAccountName",
            spec.service_account_name,
            names.is_dns1123_subdomain(spec.service_account_name),
        )
    for i, toleration in enumerate(spec.tolerations):
        errs += _toleration(toleration, f"{path}.tolerations[{i}]")
    if spec.HasField("affinity"):
        errs += _affinity(spec.affinity, f"{path}.affinity")
    return errs


def _container(c: Any, path: str, volumes: set[str], *, init: bool) -> Errors:
    errs: Errors = []
    if not c.name:
        errs.append(required(f"{path}.name"))
    else:
        errs += each(f"{path}.name", c.name, names.is_dns1123_label(c.name))
    if not c.image.strip():
        errs.append(required(f"{path}.image"))
    if c.image_pull_policy:
        errs += one_of(f"{path}.imagePullPolicy", c.image_pull_policy, PULL_POLICIES)
    port_names: set[str] = set()
    for i, port in enumerate(c.ports):
        errs += _container_port(port, f"{path}.ports[{i}]", port_names)
    for i, env in enumerate(c.env):
        errs += _env_var(env, f"{path}.env[{i}]")
    for i, source in enumerate(c.env_from):
        errs += _env_from(source, f"{path}.envFrom[{i}]")
    errs += _resources(c.resources, f"{path}.resources")
    errs += _volume_mounts(c.volume_mounts, f"{path}.volumeMounts", volumes)
    for field, json_name in (
        ("liveness_probe", "livenessProbe"),
        ("readiness_probe", "readinessProbe"),
        ("startup_probe", "startupProbe"),
    ):
        if c.HasField(field):
            errs += _probe(
                getattr(c, field), f"{path}.{json_name}", single_success=field != "readiness_probe"
            )
            if init and c.restart_policy != "Always":
                errs.append(
                    forbidden(
                        f"{path}.{json_name}",
                        "may not be set for init containers without restartPolicy=Always",
                    )
                )
    for hook, json_name in (("post_start", "postStart"), ("pre_stop", "preStop")):
        if c.lifecycle.HasField(hook):
            errs += _set_once(
                getattr(c.lifecycle, hook),
                f"{path}.lifecycle.{json_name}",
                ("exec", "http_get", "tcp_socket", "sleep"),
                "handler",
            )
    if c.restart_policy and (not init or c.restart_policy != "Always"):
        errs.append(
            not_supported(f"{path}.restartPolicy", c.restart_policy, ("Always",) if init else ())
        )
    return errs


def _container_port(port: Any, path: str, seen: set[str]) -> Errors:
    errs: Errors = []
    if not port.HasField("container_port"):
        errs.append(required(f"{path}.containerPort"))
    else:
        errs += each(
            f"{path}.containerPort",
            port.container_port,
            names.is_valid_port_num(port.container_port),
        )
    if port.HasField("host_port") and port.host_port != 0:
        errs += each(f"{path}.hostPort", port.host_port, names.is_valid_port_num(port.host_port))
    if port.name:
        errs += each(f"{path}.name", port.name, names.is_valid_port_name(port.name))
        if port.name in seen:
            errs.append(duplicate(f"{path}.name", port.name))
        seen.add(port.name)
    errs += one_of(f"{path}.protocol", port.protocol, PROTOCOLS) if port.protocol else []
    return errs


def _env_var(env: Any, path: str) -> Errors:
    errs: Errors = []
    if not env.name:
        errs.append(required(f"{path}.name"))
    else:
        errs += each(f"{path}.name", env.name, names.is_env_var_name(env.name))
    if not env.HasField("value_from"):
        return errs
    source = env.value_from
    vpath = f"{path}.valueFrom"
    if env.value:
        errs.append(invalid(vpath, "", "may not be specified when `value` is not empty"))
    errs += _set_once(
        source,
        vpath,
        ("field_ref", "resource_field_ref", "config_map_key_ref", "secret_key_ref", "file_key_ref"),
        "source",
    )
    if source.HasField("field_ref"):
        errs += _field_ref(source.field_ref, f"{vpath}.fieldRef")
    if source.HasField("resource_field_ref"):
        errs += _resource_field_ref(source.resource_field_ref, f"{vpath}.resourceFieldRef")
    for field, json_name in (
        ("config_map_key_ref", "configMapKeyRef"),
        ("secret_key_ref", "secretKeyRef"),
    ):
        if source.HasField(field):
            ref = getattr(source, field)
            if not ref.name:
                errs.append(required(f"{vpath}.{json_name}.name"))
            if not ref.key:
                errs.append(required(f"{vpath}.{json_name}.key"))
            else:
                errs += each(f"{vpath}.{json_name}.key", ref.key, names.is_config_map_key(ref.key))
    return errs


def _field_ref(ref: Any, path: str) -> Errors:
    field_path = ref.field_path
    if not field_path:
        return [required(f"{path}.fieldPath")]
    base = field_path.split("[", 1)[0]
    if base in ("metadata.labels", "metadata.annotations") and "[" in field_path:
        key = field_path[len(base) + 1 :].rstrip("]").strip("'\"")
        return each(f"{path}.fieldPath", field_path, names.is_qualified_name(key))
    return one_of(f"{path}.fieldPath", field_path, ENV_FIELD_PATHS)


def _resource_field_ref(ref: Any, path: str) -> Errors:
    if not ref.resource:
        return [required(f"{path}.resource")]
    errs = one_of(f"{path}.resource", ref.resource, RESOURCE_FIELD_NAMES)
    if ref.HasField("divisor"):
        errs += _divisor(ref.resource, ref.divisor, f"{path}.divisor")
    return errs


def _divisor(resource: str, quantity: Any, path: str) -> Errors:
    divisor = value_of(quantity)
    allowed = DIVISORS.get(resource.partition(".")[2])
    # Zero means "not set" (a divisor of 1), as in Kubernetes; a divisor that
    # does not parse is reported by _quantities.syntax_errors.
    if divisor is None or divisor.is_zero() or allowed is None:
        return []
    values, name = allowed
    if divisor.canonical() in values:
        return []
    listed = ", ".join(values[:-1]) + (" and " if len(values) == 2 else ", ") + values[-1]
    return [
        invalid(
            path, resource, f"only divisor's values {listed} are supported with the {name} resource"
        )
    ]


def _env_from(source: Any, path: str) -> Errors:
    errs = _set_once(source, path, ("config_map_ref", "secret_ref"), "source")
    if source.prefix:
        errs += each(f"{path}.prefix", source.prefix, names.is_env_var_name(source.prefix))
    for field, json_name in (("config_map_ref", "configMapRef"), ("secret_ref", "secretRef")):
        if source.HasField(field) and not getattr(source, field).name:
            errs.append(required(f"{path}.{json_name}.name"))
    return errs


def _resource_name(name: str, path: str) -> Errors:
    if name in ("cpu", "memory", "ephemeral-storage", "pods") or name.startswith("hugepages-"):
        return []
    if "/" not in name:
        return [invalid(path, name, "must be a standard resource type or fully qualified")]
    return each(path, name, names.is_qualified_name(name))


def _resources(res: Any, path: str) -> Errors:
    errs: Errors = []
    parsed: dict[str, dict[str, Quantity]] = {"limits": {}, "requests": {}}
    for kind in ("limits", "requests"):
        for name, quantity in sorted(getattr(res, kind).items()):
            qpath = f"{path}.{kind}[{name}]"
            errs += _resource_name(name, qpath)
            errs += resource_value(name, quantity, qpath)
            value = value_of(quantity)
            if value is not None:  # else reported by _quantities.syntax_errors
                parsed[kind][name] = value
    for name, request in parsed["requests"].items():
        limit = parsed["limits"].get(name)
        if limit is not None and request > limit:
            errs.append(
                invalid(
                    f"{path}.requests",
                    str(request),
                    f"must be less than or equal to {name} limit of {limit}",
                )
            )
    return errs


def _volume_mounts(mounts: Any, path: str, volumes: set[str]) -> Errors:
    errs: Errors = []
    paths: set[str] = set()
    for i, mount in enumerate(mounts):
        mpath = f"{path}[{i}]"
        if not mount.name:
            errs.append(required(f"{mpath}.name"))
        elif mount.name not in volumes:
            errs.append(not_supported(f"{mpath}.name", mount.name, sorted(volumes)))
        if not mount.mount_path:
            errs.append(required(f"{mpath}.mountPath"))
        elif mount.mount_path in paths:
            errs.append(invalid(f"{mpath}.mountPath", mount.mount_path, "must be unique"))
        paths.add(mount.mount_path)
        if mount.sub_path and (mount.sub_path.startswith("/") or ".." in mount.sub_path.split("/")):
            errs.append(
                invalid(f"{mpath}.subPath", mount.sub_path, "must be a relative path without '..'")
            )
    return errs


def _probe(probe: Any, path: str, *, single_success: bool) -> Errors:
    errs = _set_once(probe, path, ("exec", "http_get", "tcp_socket", "grpc"), "handler")
    for field, json_name in (
        ("initial_delay_seconds", "initialDelaySeconds"),
        ("timeout_seconds", "timeoutSeconds"),
        ("period_seconds", "periodSeconds"),
        ("success_threshold", "successThreshold"),
        ("failure_threshold", "failureThreshold"),
    ):
        value = getattr(probe, field)
        errs += non_negative(f"{path}.{json_name}", value)
    if single_success and probe.HasField("success_threshold") and probe.success_threshold != 1:
        errs.append(invalid(f"{path}.successThreshold", probe.success_threshold, "must be 1"))
    for field in ("http_get", "tcp_socket"):
        if probe.HasField(field):
            errs += _handler_port(getattr(probe, field).port, f"{path}.{_camel(field)}.port")
    if probe.HasField("grpc"):
        errs += each(f"{path}.grpc.port", probe.grpc.port, names.is_valid_port_num(probe.grpc.port))
    return errs


def _camel(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(part.title() for part in rest)


def _handler_port(port: Any, path: str) -> Errors:
    which = port.WhichOneof("value")
    if which == "int_val":
        return each(path, port.int_val, names.is_valid_port_num(port.int_val))
    if which == "str_val":
        return each(path, port.str_val, names.is_valid_port_name(port.str_val))
    return [required(path)]


def _host_ports(spec: Any, path: str) -> Errors:
    errs: Errors = []
    used: set[tuple[str, int, str]] = set()
    for i, c in enumerate(spec.containers):
        for j, port in enumerate(c.ports):
            if port.host_port:
                key = (port.host_ip, port.host_port, port.protocol or "TCP")
                if key in used:
                    errs.append(
                        duplicate(
                            f"{path}.containers[{i}].ports[{j}].hostPort", f"{key[2]}/{key[1]}"
                        )
                    )
                used.add(key)
    return errs


def _toleration(t: Any, path: str) -> Errors:
    errs: Errors = []
    if t.key:
        errs += each(f"{path}.key", t.key, names.is_qualified_name(t.key))
    operator = t.operator or "Equal"
    if not t.key and operator != "Exists":
        errs.append(
            invalid(
                f"{path}.operator",
                t.operator,
                "operator must be Exists when `key` is empty, which means "
                '"match all values and all keys"',
            )
        )
    if operator == "Exists" and t.value:
        errs.append(
            invalid(
                f"{path}.operator", t.operator, "value must be empty when `operator` is 'Exists'"
            )
        )
    elif operator == "Equal":
        errs += each(f"{path}.value", t.value, names.is_valid_label_value(t.value))
    elif operator != "Exists":
        errs.append(not_supported(f"{path}.operator", t.operator, ("Equal", "Exists")))
    if t.effect:
        errs += one_of(f"{path}.effect", t.effect, TAINT_EFFECTS)
    if t.HasField("toleration_seconds") and t.effect != "NoExecute":
        errs.append(
            invalid(
                f"{path}.effect",
                t.effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            )
        )
    return errs


def _affinity(affinity: Any, path: str) -> Errors:
    errs: Errors = []
    node = affinity.node_affinity
    npath = f"{path}.nodeAffinity"
    if node.HasField("required_during_scheduling_ignored_during_execution"):
        rpath = f"{npath}.requiredDuringSchedulingIgnoredDuringExecution"
        errs += validate_node_selector(
            node.required_during_scheduling_ignored_during_execution, rpath
        )
    for i, term in enumerate(node.preferred_during_scheduling_ignored_during_execution):
        ppath = f"{npath}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
        if not 1 <= term.weight <= 100:
            errs.append(invalid(f"{ppath}.weight", term.weight, "must be in the range 1-100"))
        errs += _node_selector_term(term.preference, f"{ppath}.preference")
    for kind in ("pod_affinity", "pod_anti_affinity"):
        if affinity.HasField(kind):
            errs += _pod_affinity(getattr(affinity, kind), f"{path}.{_camel(kind)}")
    return errs


def validate_node_selector(selector: Any, path: str) -> Errors:
    if not selector.node_selector_terms:
        return [required(f"{path}.nodeSelectorTerms", "must have at least one node selector term")]
    errs: Errors = []
    for i, term in enumerate(selector.node_selector_terms):
        errs += _node_selector_term(term, f"{path}.nodeSelectorTerms[{i}]")
    return errs


def _node_selector_term(term: Any, path: str) -> Errors:
    errs: Errors = []
    for field, json_name in (
        ("match_expressions", "matchExpressions"),
        ("match_fields", "matchFields"),
    ):
        for i, req in enumerate(getattr(term, field)):
            errs += _node_selector_requirement(
                req, f"{path}.{json_name}[{i}]", fields=field == "match_fields"
            )
    return errs


def _node_selector_requirement(req: Any, path: str, *, fields: bool) -> Errors:
    errs: Errors = []
    op = req.operator
    if op in ("In", "NotIn"):
        if not req.values:
            errs.append(
                required(f"{path}.values", "must be specified when `operator` is 'In' or 'NotIn'")
            )
    elif op in ("Exists", "DoesNotExist"):
        if req.values:
            errs.append(
                forbidden(
                    f"{path}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
            )
    elif op in ("Gt", "Lt"):
        if len(req.values) != 1:
            errs.append(
                required(
                    f"{path}.values",
                    "must be specified single value when `operator` is 'Lt' or 'Gt'",
                )
            )
        elif not req.values[0].lstrip("-").isdigit():
            errs.append(invalid(f"{path}.values[0]", req.values[0], "must be an integer"))
    else:
        errs.append(invalid(f"{path}.operator", op, "not a valid selector operator"))
    if fields:
        if req.key != "metadata.name":
            errs.append(not_supported(f"{path}.key", req.key, ("metadata.name",)))
    else:
        errs += each(f"{path}.key", req.key, names.is_qualified_name(req.key))
    return errs


def _pod_affinity(affinity: Any, path: str) -> Errors:
    errs: Errors = []
    required_terms = affinity.required_during_scheduling_ignored_during_execution
    for i, term in enumerate(required_terms):
        errs += _pod_affinity_term(
            term, f"{path}.requiredDuringSchedulingIgnoredDuringExecution[{i}]"
        )
    for i, weighted in enumerate(affinity.preferred_during_scheduling_ignored_during_execution):
        wpath = f"{path}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
        if not 1 <= weighted.weight <= 100:
            errs.append(invalid(f"{wpath}.weight", weighted.weight, "must be in the range 1-100"))
        errs += _pod_affinity_term(weighted.pod_affinity_term, f"{wpath}.podAffinityTerm")
    return errs


def _pod_affinity_term(term: Any, path: str) -> Errors:
    errs: Errors = []
    if not term.topology_key:
        errs.append(required(f"{path}.topologyKey", "can not be empty"))
    else:
        errs += each(
            f"{path}.topologyKey", term.topology_key, names.is_qualified_name(term.topology_key)
        )
    if term.HasField("label_selector"):
        errs += validate_label_selector(term.label_selector, f"{path}.labelSelector")
    return errs


# ------------------------------------------------------------------ volumes

_VOLUME_SOURCE_FIELDS = (
    "host_path",
    "empty_dir",
    "secret",
    "nfs",
    "persistent_volume_claim",
    "downward_api",
    "config_map",
    "projected",
    "csi",
    "ephemeral",
    "image",
)


def _volumes(volumes: Any, path: str) -> tuple[set[str], Errors]:
    errs: Errors = []
    seen: set[str] = set()
    for i, volume in enumerate(volumes):
        vpath = f"{path}[{i}]"
        if not volume.name:
            errs.append(required(f"{vpath}.name"))
        else:
            errs += each(f"{vpath}.name", volume.name, names.is_dns1123_label(volume.name))
            if volume.name in seen:
                errs.append(duplicate(f"{vpath}.name", volume.name))
            seen.add(volume.name)
        errs += _set_once(volume, vpath, _VOLUME_SOURCE_FIELDS, "volume type")
        errs += _volume_source(volume, vpath)
    return seen, errs


def _volume_source(v: Any, path: str) -> Errors:
    errs: Errors = []
    if v.HasField("empty_dir") and v.empty_dir.HasField("size_limit"):
        limit = value_of(v.empty_dir.size_limit)
        if limit is not None and limit.sign() < 0:
            errs.append(
                forbidden(
                    f"{path}.emptyDir.sizeLimit",
                    "SizeLimit field must be a valid resource quantity",
                )
            )
    if v.HasField("host_path"):
        if not v.host_path.path:
            errs.append(required(f"{path}.hostPath.path"))
        errs += one_of(f"{path}.hostPath.type", v.host_path.type, HOST_PATH_TYPES)
    if v.HasField("config_map"):
        if not v.config_map.name:
            errs.append(required(f"{path}.configMap.name"))
        errs += _key_to_paths(v.config_map, f"{path}.configMap")
    if v.HasField("secret"):
        if not v.secret.secret_name:
            errs.append(required(f"{path}.secret.secretName"))
        errs += _key_to_paths(v.secret, f"{path}.secret")
    if v.HasField("persistent_volume_claim") and not v.persistent_volume_claim.claim_name:
        errs.append(required(f"{path}.persistentVolumeClaim.claimName"))
    if v.HasField("downward_api"):
        for i, item in enumerate(v.downward_api.items):
            errs += _downward_file(item, f"{path}.downwardAPI.items[{i}]")
    if v.HasField("projected"):
        for i, source in enumerate(v.projected.sources):
            errs += _set_once(
                source,
                f"{path}.projected.sources[{i}]",
                (
                    "secret",
                    "downward_api",
                    "config_map",
                    "service_account_token",
                    "cluster_trust_bundle",
                ),
                "projection",
            )
    return errs


def _key_to_paths(source: Any, path: str) -> Errors:
    errs: Errors = []
    if source.HasField("default_mode") and not 0 <= source.default_mode <= 0o777:
        errs.append(
            invalid(
                f"{path}.defaultMode",
                source.default_mode,
                "must be a number between 0 and 0777 (octal), both inclusive",
            )
        )
    for i, item in enumerate(source.items):
        ipath = f"{path}.items[{i}]"
        if not item.key:
            errs.append(required(f"{ipath}.key"))
        errs += _relative_path(item.path, f"{ipath}.path")
    return errs


def _downward_file(item: Any, path: str) -> Errors:
    errs = _relative_path(item.path, f"{path}.path")
    errs += _set_once(item, path, ("field_ref", "resource_field_ref"), "source")
    if item.HasField("field_ref"):
        errs += _field_ref(item.field_ref, f"{path}.fieldRef")
    if item.HasField("resource_field_ref"):
        errs += _resource_field_ref(item.resource_field_ref, f"{path}.resourceFieldRef")
    return errs


def _relative_path(value: str, path: str) -> Errors:
    if not value:
        return [required(path)]
    if value.startswith("/"):
        return [invalid(path, value, "must be a relative path")]
    if ".." in value.split("/"):
        return [invalid(path, value, "must not contain '..'")]
    return []


# ------------------------------------------------------------------ kinds


@validators("Pod")
def _validate_pod(pod: Any) -> Errors:
    return validate_pod_spec(pod.spec, "spec")


@update_validators("Pod")
def _validate_pod_update(new: Any, old: Any) -> Errors:
    """Only images, activeDeadlineSeconds, terminationGracePeriodSeconds and
    added tolerations may change in a pod's spec."""
    mutable = type(old.spec)()
    mutable.CopyFrom(old.spec)
    for field in ("containers", "init_containers"):
        for i, container in enumerate(getattr(mutable, field)):
            updated = getattr(new.spec, field)
            if i < len(updated):
                container.image = updated[i].image
    for field in ("active_deadline_seconds", "termination_grace_period_seconds"):
        if new.spec.HasField(field):
            setattr(mutable, field, getattr(new.spec, field))
    old_tolerations = list(old.spec.tolerations)
    if list(new.spec.tolerations)[: len(old_tolerations)] == old_tolerations:
        del mutable.tolerations[:]
        mutable.tolerations.extend(new.spec.tolerations)
    if old.spec.node_name == "" and new.spec.node_name:
        mutable.node_name = new.spec.node_name  # set by binding
    if mutable != new.spec:
        return [
            forbidden(
                "spec",
                "pod updates may not change fields other than "
                "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to "
                "existing tolerations) or `spec.terminationGracePeriodSeconds`",
            )
        ]
    return []


@validators("Service")
def _validate_service(svc: Any) -> Errors:
    spec = svc.spec
    errs = one_of("spec.type", spec.type, SERVICE_TYPES) if spec.type else []
    if spec.type == "ExternalName":
        if spec.cluster_ip or spec.cluster_ips:
            errs.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        if not spec.external_name:
            errs.append(required("spec.externalName"))
        else:
            errs += each(
                "spec.externalName",
                spec.external_name,
                names.is_dns1123_subdomain(spec.external_name),
            )
    elif not spec.ports and spec.cluster_ip != "None":
        errs.append(required("spec.ports"))
    seen: set[str] = set()
    for i, port in enumerate(spec.ports):
        ppath = f"spec.ports[{i}]"
        if len(spec.ports) > 1 and not port.name:
            errs.append(required(f"{ppath}.name"))
        elif port.name:
            errs += each(f"{ppath}.name", port.name, names.is_dns1123_label(port.name))
            if port.name in seen:
                errs.append(duplicate(f"{ppath}.name", port.name))
            seen.add(port.name)
        errs += each(f"{ppath}.port", port.port, names.is_valid_port_num(port.port))
        if port.HasField("target_port"):
            errs += _handler_port(port.target_port, f"{ppath}.targetPort")
        errs += one_of(f"{ppath}.protocol", port.protocol, PROTOCOLS) if port.protocol else []
        if port.node_port and spec.type in ("", "ClusterIP"):
            errs.append(
                forbidden(f"{ppath}.nodePort", "may not be used when `type` is 'ClusterIP'")
            )
    errs += _session_affinity(spec)
    if spec.cluster_ip and spec.cluster_ip != "None":
        errs += _ip(spec.cluster_ip, "spec.clusterIP")
    errs += validate_labels(spec.selector, "spec.selector")
    errs += (
        one_of("spec.sessionAffinity", spec.session_affinity, ("None", "ClientIP"))
        if spec.session_affinity
        else []
    )
    return errs


MAX_AFFINITY_SECONDS = 86400


def _session_affinity(spec: Any) -> Errors:
    """ClientIP's timeout within a day; no config with affinity None."""
    if not spec.HasField("session_affinity_config"):
        return []
    if spec.session_affinity != "ClientIP":
        return [
            forbidden(
                "spec.sessionAffinityConfig",
                f"must not be set when session affinity is {spec.session_affinity or 'None'}",
            )
        ]
    client_ip = spec.session_affinity_config.client_ip
    timeout = client_ip.timeout_seconds
    if client_ip.HasField("timeout_seconds") and not 0 < timeout <= MAX_AFFINITY_SECONDS:
        return [
            invalid(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                timeout,
                f"must be greater than 0 and less than {MAX_AFFINITY_SECONDS}",
            )
        ]
    return []


def _ip(value: str, path: str) -> Errors:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return [
            invalid(path, value, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")
        ]
    return []


@update_validators("Service")
def _validate_service_update(new: Any, old: Any) -> Errors:
    if new.spec.type == "ExternalName" and old.spec.type != "ExternalName":
        return []  # becoming ExternalName gives the cluster IP up, as in Kubernetes
    if old.spec.cluster_ip and new.spec.cluster_ip != old.spec.cluster_ip:
        return [immutable("spec.clusterIP")]
    return []


def _config_data(obj: Any, fields: tuple[tuple[str, str], ...]) -> Errors:
    errs: Errors = []
    total = 0
    seen: set[str] = set()
    for field, json_name in fields:
        for key, value in getattr(obj, field).items():
            errs += each(f"{json_name}[{key}]", key, names.is_config_map_key(key))
            if key in seen and json_name != "stringData":
                errs.append(duplicate(f"{json_name}[{key}]", key))
            seen.add(key)
            total += len(value)
    if total > MAX_CONFIG_SIZE:
        errs.append(too_long(fields[0][1], MAX_CONFIG_SIZE))
    return errs


@validators("ConfigMap")
def _validate_config_map(cm: Any) -> Errors:
    return _config_data(cm, (("data", "data"), ("binary_data", "binaryData")))


@validators("Secret")
def _validate_secret(secret: Any) -> Errors:
    return _config_data(secret, (("data", "data"), ("string_data", "stringData")))


def _immutable_data(new: Any, old: Any, fields: tuple[str, ...]) -> Errors:
    if not old.immutable:
        return []
    errs: Errors = []
    if not new.immutable:
        errs.append(forbidden("immutable", "field is immutable when `immutable` is set"))
    for field in fields:
        if getattr(new, field) != getattr(old, field):
            errs.append(forbidden(field, "field is immutable when `immutable` is set"))
    return errs


@update_validators("ConfigMap")
def _validate_config_map_update(new: Any, old: Any) -> Errors:
    return _immutable_data(new, old, ("data", "binary_data"))


@update_validators("Secret")
def _validate_secret_update(new: Any, old: Any) -> Errors:
    errs = _immutable_data(new, old, ("data",))
    if old.type and new.type != old.type:
        errs.append(immutable("type"))
    return errs


@validators("Node")
def _validate_node(node: Any) -> Errors:
    errs: Errors = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(node.spec.taints):
        tpath = f"spec.taints[{i}]"
        if not taint.key:
            errs.append(required(f"{tpath}.key"))
        else:
            errs += each(f"{tpath}.key", taint.key, names.is_qualified_name(taint.key))
        if taint.value:
            errs += each(f"{tpath}.value", taint.value, names.is_valid_label_value(taint.value))
        if not taint.effect:
            errs.append(required(f"{tpath}.effect"))
        else:
            errs += one_of(f"{tpath}.effect", taint.effect, TAINT_EFFECTS)
        if (taint.key, taint.effect) in seen:
            errs.append(duplicate(tpath, f"{taint.key}:{taint.effect}"))
        seen.add((taint.key, taint.effect))
    for field in ("capacity", "allocatable"):
        for name, quantity in sorted(getattr(node.status, field).items()):
            errs += resource_value(name, quantity, f"status.{field}[{name}]")
    return errs


def validate_pvc_spec(spec: Any, path: str) -> Errors:
    """A PersistentVolumeClaimSpec (of a claim, or of a StatefulSet's
    volumeClaimTemplates)."""
    errs = _access_modes(spec.access_modes, f"{path}.accessModes")
    if "storage" not in spec.resources.requests:
        errs.append(required(f"{path}.resources[storage]"))
    else:
        errs += _positive_storage(spec.resources.requests["storage"], f"{path}.resources[storage]")
    if spec.HasField("selector"):
        errs += validate_label_selector(spec.selector, f"{path}.selector")
    if spec.volume_mode:
        errs += one_of(f"{path}.volumeMode", spec.volume_mode, VOLUME_MODES)
    errs += _storage_class_name(spec, path)
    return errs


def _access_modes(modes: Any, path: str) -> Errors:
    """Kubernetes' access mode rules, for claims and volumes alike."""
    if not modes:
        return [required(path, "at least 1 access mode is required")]
    errs: Errors = []
    for i, mode in enumerate(modes):
        errs += one_of(f"{path}[{i}]", mode, ACCESS_MODES)
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        errs.append(forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return errs


def _storage_class_name(spec: Any, path: str) -> Errors:
    name = spec.storage_class_name
    if not name:
        return []
    return each(f"{path}.storageClassName", name, names.is_dns1123_subdomain(name))


def _positive_storage(quantity: Any, path: str) -> Errors:
    storage = value_of(quantity)
    if storage is not None and storage.sign() <= 0:
        return [invalid(path, str(storage), "must be greater than zero")]
    return []


@validators("PersistentVolumeClaim")
def _validate_pvc(pvc: Any) -> Errors:
    return validate_pvc_spec(pvc.spec, "spec")


@update_validators("PersistentVolumeClaim")
def _validate_pvc_update(new: Any, old: Any) -> Errors:
    """As Kubernetes' ValidatePersistentVolumeClaimUpdate: the spec is fixed
    at creation, except that the PV controller sets volumeName once (when
    it binds) and storageClassName once where it was never set (the default
    class, given retroactively), and that a bound claim may ask for more
    storage (whether its class allows that is admission's call)."""
    before, after = type(old.spec)(), type(new.spec)()
    before.CopyFrom(old.spec)
    after.CopyFrom(new.spec)
    if not old.spec.volume_name:
        before.volume_name = after.volume_name
        if not after.HasField("volume_name"):
            before.ClearField("volume_name")
    if not old.spec.HasField("storage_class_name") and after.HasField("storage_class_name"):
        before.storage_class_name = after.storage_class_name
    if new.status.phase == "Bound":
        after.resources.requests["storage"].CopyFrom(before.resources.requests["storage"])
    errs: Errors = []
    if after != before:
        errs.append(
            forbidden(
                "spec",
                "spec is immutable after creation except resources.requests "
                "and volumeAttributesClassName for bound claims",
            )
        )
    if _less(new.spec.resources.requests, old.spec.resources.requests):
        errs.append(
            forbidden(
                "spec.resources.requests.storage", "field can not be less than previous value"
            )
        )
    return errs


def _less(new: Any, old: Any) -> bool:
    """Whether the storage of `new` is less than that of `old` (both parse)."""
    if "storage" not in new or "storage" not in old:
        return False
    a, b = value_of(new["storage"]), value_of(old["storage"])
    return a is not None and b is not None and a < b


_PV_SOURCES = ("host_path", "nfs", "local", "csi")


@validators("PersistentVolume")
def _validate_pv(pv: Any) -> Errors:
    spec = pv.spec
    errs = _access_modes(spec.access_modes, "spec.accessModes")
    if "storage" not in spec.capacity:
        errs.append(required("spec.capacity[storage]"))
    else:
        errs += _positive_storage(spec.capacity["storage"], "spec.capacity[storage]")
    for resource in sorted(spec.capacity):
        if resource != "storage":
            errs.append(not_supported("spec.capacity", resource, ("storage",)))
    errs += _set_once(spec, "spec", _PV_SOURCES, "volume type")
    if spec.HasField("host_path"):
        if not spec.host_path.path:
            errs.append(required("spec.hostPath.path"))
        errs += one_of("spec.hostPath.type", spec.host_path.type, HOST_PATH_TYPES)
    if spec.HasField("local"):
        if not spec.local.path:
            errs.append(required("spec.local.path"))
        if not spec.node_affinity.HasField("required"):
            errs.append(required("spec.nodeAffinity", "Local volume requires node affinity"))
    if spec.node_affinity.HasField("required"):
        errs += validate_node_selector(spec.node_affinity.required, "spec.nodeAffinity.required")
    elif spec.HasField("node_affinity"):
        errs.append(
            required("spec.nodeAffinity.required", "must specify required node constraints")
        )
    if spec.HasField("claim_ref"):
        for field in ("namespace", "name"):
            if not getattr(spec.claim_ref, field):
                errs.append(required(f"spec.claimRef.{field}"))
    if spec.persistent_volume_reclaim_policy:
        errs += one_of(
            "spec.persistentVolumeReclaimPolicy",
            spec.persistent_volume_reclaim_policy,
            RECLAIM_POLICIES,
        )
    if spec.volume_mode:
        errs += one_of("spec.volumeMode", spec.volume_mode, VOLUME_MODES)
    errs += _storage_class_name(spec, "spec")
    return errs


@update_validators("PersistentVolume")
def _validate_pv_update(new: Any, old: Any) -> Errors:
    """As Kubernetes: the volume source and mode never change; node
    affinity may be set once, then never changes."""
    errs: Errors = []
    if any(getattr(new.spec, f) != getattr(old.spec, f) for f in _PV_SOURCES):
        errs.append(
            forbidden(
                "spec.persistentvolumesource",
                "spec.persistentvolumesource is immutable after creation",
            )
        )
    if new.spec.volume_mode != old.spec.volume_mode:
        errs.append(immutable("spec.volumeMode"))
    if old.spec.HasField("node_affinity") and new.spec.node_affinity != old.spec.node_affinity:
        errs.append(immutable("spec.nodeAffinity"))
    return errs


@validators("Endpoints")
def _validate_endpoints(ep: Any) -> Errors:
    errs: Errors = []
    for i, subset in enumerate(ep.subsets):
        spath = f"subsets[{i}]"
        for field, json_name in (
            ("addresses", "addresses"),
            ("not_ready_addresses", "notReadyAddresses"),
        ):
            for j, address in enumerate(getattr(subset, field)):
                errs += _ip(address.ip, f"{spath}.{json_name}[{j}].ip")
        for j, port in enumerate(subset.ports):
            errs += each(f"{spath}.ports[{j}].port", port.port, names.is_valid_port_num(port.port))
    return errs


@validators("Event")
def _validate_event(event: Any) -> Errors:
    errs: Errors = []
    if not event.involved_object.kind and not event.involved_object.name:
        errs.append(required("involvedObject"))
    if event.type and event.type not in ("Normal", "Warning"):
        errs.append(not_supported("type", event.type, ("Normal", "Warning")))
    return errs


@validators("Namespace")
def _validate_namespace(ns: Any) -> Errors:
    for i, finalizer in enumerate(ns.spec.finalizers):
        if "/" not in finalizer and finalizer != "kubernetes":
            return [
                invalid(
                    f"spec.finalizers[{i}]",
                    finalizer,
                    "name is neither a standard finalizer name nor is it fully qualified",
                )
            ]
    return []
