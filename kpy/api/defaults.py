"""Kubernetes' defaults, applied to an object before it is validated and stored.

`set_defaults(obj)` walks the whole object, as Kubernetes' generated
`SetObjectDefaults_*` functions do: every nested message that is set gets the
defaults of its type, wherever it occurs (a Probe is defaulted the same in a
Pod, a Deployment's template or a CronJob's job template). A default only
fills a field that is unset; it never overwrites what the user wrote.

Defaults that Kubernetes adds at admission rather than in its API types (the
300 s not-ready / unreachable tolerations, the service account) belong to the
API server's admission, not here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from google.protobuf.message import Message

from kpy.api import intstr
from kpy.api._descriptors import is_map, is_message, map_value

if TYPE_CHECKING:
    from google.protobuf.descriptor import Descriptor

M = TypeVar("M", bound=Message)
_Defaulter = Callable[[Any], None]
_DEFAULTERS: dict[str, _Defaulter] = {}

DEFAULT_FILE_MODE = 0o644
MAX_INT32 = 2**31 - 1


def _defaults_for(*names: str) -> Callable[[_Defaulter], _Defaulter]:
    def register(fn: _Defaulter) -> _Defaulter:
        for name in names:
            _DEFAULTERS[name] = fn
        return fn

    return register


def set_defaults(obj: M) -> M:
    """Fill every unset field that Kubernetes defaults, in place; returns obj."""
    _walk(obj)
    return obj


def _walk(msg: Message) -> None:
    defaulter, children = _plan(msg.DESCRIPTOR)
    if defaulter is not None:
        defaulter(msg)
    for name, shape in children:
        if shape == _SINGLE:
            if msg.HasField(name):
                _walk(getattr(msg, name))
        elif shape == _REPEATED:
            for item in getattr(msg, name):
                _walk(item)
        else:
            for item in getattr(msg, name).values():
                _walk(item)


_SINGLE, _REPEATED, _MAP = range(3)
_Plan = tuple[_Defaulter | None, tuple[tuple[str, int], ...]]
_PLANS: dict[str, _Plan] = {}


def _plan(descriptor: Any) -> _Plan:  # a Descriptor (upb or Python)
    """What the walk does at a message of one type, worked out once per
    type: its defaulter, and the message fields (attribute name; single,
    repeated or map) whose type can hold one, the only subtrees worth
    entering (most of an object holds none)."""
    plan = _PLANS.get(descriptor.full_name)
    if plan is None:
        children: list[tuple[str, int]] = []
        for field in descriptor.fields:
            if not is_message(field):
                continue
            if is_map(field):
                item = map_value(field)
                if is_message(item) and _reaches_defaulter(item.message_type):
                    children.append((field.name, _MAP))
            elif _reaches_defaulter(field.message_type):
                children.append((field.name, _REPEATED if field.is_repeated else _SINGLE))
        defaulter = _DEFAULTERS.get(descriptor.full_name)
        plan = _PLANS[descriptor.full_name] = (defaulter, tuple(children))
    return plan


@functools.cache
def _reaches_defaulter(descriptor: Descriptor) -> bool:
    """Whether a message of this type can contain (or be) a message that has
    defaults; the walk skips the subtrees that cannot (most of an object)."""
    seen = {descriptor}
    todo = [descriptor]
    while todo:
        current = todo.pop()
        if current.full_name in _DEFAULTERS:
            return True
        for field in current.fields:
            child = field.message_type
            if child is not None and child not in seen:
                seen.add(child)
                todo.append(child)
    return False


def _default(msg: Any, field: str, value: Any) -> None:
    if not msg.HasField(field):
        setattr(msg, field, value)


# ------------------------------------------------------------------ core/v1


def image_pull_policy_for(image: str) -> str:
    """Always for `:latest` or an untagged image, else IfNotPresent (a digest
    counts as pinned)."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


@_defaults_for("kpy.api.core.v1.Pod")
def _pod(pod: Any) -> None:
    spec = pod.spec
    for container in [*spec.init_containers, *spec.containers]:
        # A container that sets a limit but no request requests its limit.
        for resource, limit in container.resources.limits.items():
            if resource not in container.resources.requests:
                container.resources.requests[resource].CopyFrom(limit)
        if spec.host_network:
            for port in container.ports:
                _default(port, "host_port", port.container_port)


@_defaults_for("kpy.api.core.v1.PodSpec")
def _pod_spec(spec: Any) -> None:
    _default(spec, "restart_policy", "Always")
    _default(spec, "termination_grace_period_seconds", 30)
    _default(spec, "dns_policy", "ClusterFirst")
    _default(spec, "scheduler_name", "default-scheduler")
    _default(spec, "enable_service_links", True)
    spec.security_context.SetInParent()


@_defaults_for("kpy.api.core.v1.Container")
def _container(container: Any) -> None:
    if container.HasField("image"):
        _default(container, "image_pull_policy", image_pull_policy_for(container.image))
    _default(container, "termination_message_path", "/dev/termination-log")
    _default(container, "termination_message_policy", "File")


@_defaults_for(
    "kpy.api.core.v1.ContainerPort", "kpy.api.core.v1.EndpointPort", "kpy.api.core.v1.ServicePort"
)
def _port(port: Any) -> None:
    _default(port, "protocol", "TCP")
    if port.DESCRIPTOR.name == "ServicePort" and not port.HasField("target_port"):
        port.target_port.CopyFrom(intstr.from_value(port.port))


@_defaults_for("kpy.api.core.v1.Probe")
def _probe(probe: Any) -> None:
    _default(probe, "timeout_seconds", 1)
    _default(probe, "period_seconds", 10)
    _default(probe, "success_threshold", 1)
    _default(probe, "failure_threshold", 3)


@_defaults_for("kpy.api.core.v1.HTTPGetAction")
def _http_get(action: Any) -> None:
    _default(action, "path", "/")
    _default(action, "scheme", "HTTP")


@_defaults_for("kpy.api.core.v1.ObjectFieldSelector")
def _field_selector(selector: Any) -> None:
    _default(selector, "api_version", "v1")


@_defaults_for("kpy.api.core.v1.Volume")
def _volume(volume: Any) -> None:
    # A volume that names no source is an emptyDir.
    if not any(volume.HasField(f.name) for f in volume.DESCRIPTOR.fields if f.name != "name"):
        volume.empty_dir.SetInParent()


@_defaults_for(
    "kpy.api.core.v1.ConfigMapVolumeSource",
    "kpy.api.core.v1.SecretVolumeSource",
    "kpy.api.core.v1.DownwardAPIVolumeSource",
    "kpy.api.core.v1.ProjectedVolumeSource",
)
def _file_mode(source: Any) -> None:
    _default(source, "default_mode", DEFAULT_FILE_MODE)


@_defaults_for("kpy.api.core.v1.HostPathVolumeSource")
def _host_path(source: Any) -> None:
    _default(source, "type", "")


@_defaults_for("kpy.api.core.v1.ServiceSpec")
def _service_spec(spec: Any) -> None:
    _default(spec, "type", "ClusterIP")
    _default(spec, "session_affinity", "None")
    if spec.type != "ExternalName":
        _default(spec, "internal_traffic_policy", "Cluster")
    if spec.type in ("NodePort", "LoadBalancer"):
        _default(spec, "external_traffic_policy", "Cluster")


@_defaults_for("kpy.api.core.v1.Secret")
def _secret(secret: Any) -> None:
    _default(secret, "type", "Opaque")


@_defaults_for("kpy.api.core.v1.Namespace")
def _namespace(ns: Any) -> None:
    _default(ns.status, "phase", "Active")


@_defaults_for("kpy.api.core.v1.Node")
def _node(node: Any) -> None:
    if node.HasField("status") and not node.status.allocatable:
        for resource, quantity in node.status.capacity.items():
            node.status.allocatable[resource].CopyFrom(quantity)


@_defaults_for("kpy.api.core.v1.PersistentVolume")
def _pv(pv: Any) -> None:
    _default(pv.spec, "persistent_volume_reclaim_policy", "Retain")
    _default(pv.spec, "volume_mode", "Filesystem")
    _default(pv.status, "phase", "Pending")


@_defaults_for("kpy.api.core.v1.PersistentVolumeClaim")
def _pvc(pvc: Any) -> None:
    _default(pvc.spec, "volume_mode", "Filesystem")
    _default(pvc.status, "phase", "Pending")


@_defaults_for("kpy.api.core.v1.ReplicationController")
def _replication_controller(rc: Any) -> None:
    template_labels = rc.spec.template.metadata.labels if rc.spec.HasField("template") else {}
    if template_labels:
        if not rc.spec.selector:
            rc.spec.selector.update(template_labels)
        if not rc.metadata.labels:
            rc.metadata.labels.update(template_labels)
    _default(rc.spec, "replicas", 1)


# ------------------------------------------------------------------ apps/v1


@_defaults_for("kpy.api.apps.v1.ReplicaSet")
def _replica_set(rs: Any) -> None:
    _default(rs.spec, "replicas", 1)


@_defaults_for("kpy.api.apps.v1.Deployment")
def _deployment(deploy: Any) -> None:
    spec = deploy.spec
    _default(spec, "replicas", 1)
    _default(spec.strategy, "type", "RollingUpdate")
    if spec.strategy.type == "RollingUpdate":
        rolling = spec.strategy.rolling_update
        if not rolling.HasField("max_unavailable"):
            rolling.max_unavailable.str_val = "25%"
        if not rolling.HasField("max_surge"):
            rolling.max_surge.str_val = "25%"
    _default(spec, "revision_history_limit", 10)
    _default(spec, "progress_deadline_seconds", 600)


@_defaults_for("kpy.api.apps.v1.StatefulSet")
def _stateful_set(sts: Any) -> None:
    spec = sts.spec
    _default(spec, "replicas", 1)
    _default(spec, "pod_management_policy", "OrderedReady")
    _default(spec.update_strategy, "type", "RollingUpdate")
    if spec.update_strategy.type == "RollingUpdate":
        _default(spec.update_strategy.rolling_update, "partition", 0)
    _default(spec, "revision_history_limit", 10)
    policy = spec.persistent_volume_claim_retention_policy
    _default(policy, "when_deleted", "Retain")
    _default(policy, "when_scaled", "Retain")


@_defaults_for("kpy.api.apps.v1.DaemonSet")
def _daemon_set(ds: Any) -> None:
    spec = ds.spec
    _default(spec.update_strategy, "type", "RollingUpdate")
    if spec.update_strategy.type == "RollingUpdate":
        rolling = spec.update_strategy.rolling_update
        if not rolling.HasField("max_unavailable"):
            rolling.max_unavailable.int_val = 1
        if not rolling.HasField("max_surge"):
            rolling.max_surge.int_val = 0
    _default(spec, "revision_history_limit", 10)


# ------------------------------------------------------------------ batch/v1


@_defaults_for("kpy.api.batch.v1.JobSpec")
def _job_spec(spec: Any) -> None:
    # Neither set: one pod, once. Only parallelism set: a work queue, so
    # completions stays unset. Only completions set: one at a time.
    if not spec.HasField("completions") and not spec.HasField("parallelism"):
        spec.completions = 1
        spec.parallelism = 1
    _default(spec, "parallelism", 1)
    if spec.HasField("backoff_limit_per_index"):
        _default(spec, "backoff_limit", MAX_INT32)
    _default(spec, "backoff_limit", 6)
    _default(spec, "completion_mode", "NonIndexed")
    _default(spec, "suspend", False)
    # With a podFailurePolicy, a pod is replaced only once it has fully failed.
    policy = "Failed" if spec.HasField("pod_failure_policy") else "TerminatingOrFailed"
    _default(spec, "pod_replacement_policy", policy)


@_defaults_for("kpy.api.batch.v1.CronJob")
def _cron_job(cj: Any) -> None:
    spec = cj.spec
    _default(spec, "concurrency_policy", "Allow")
    _default(spec, "suspend", False)
    _default(spec, "successful_jobs_history_limit", 3)
    _default(spec, "failed_jobs_history_limit", 1)


# ------------------------------------------------------------------ others


@_defaults_for("kpy.api.autoscaling.v2.HorizontalPodAutoscaler")
def _hpa(hpa: Any) -> None:
    spec = hpa.spec
    _default(spec, "min_replicas", 1)
    if not spec.metrics:
        metric = spec.metrics.add()
        metric.type = "Resource"
        metric.resource.name = "cpu"
        metric.resource.target.type = "Utilization"
        metric.resource.target.average_utilization = 80
    if spec.HasField("behavior"):
        _scaling_rules(spec.behavior.scale_up, window=0, policies=(("Pods", 4), ("Percent", 100)))
        _scaling_rules(spec.behavior.scale_down, window=300, policies=(("Percent", 100),))


def _scaling_rules(rules: Any, *, window: int, policies: tuple[tuple[str, int], ...]) -> None:
    _default(rules, "stabilization_window_seconds", window)
    _default(rules, "select_policy", "Max")
    if not rules.policies:
        for kind, value in policies:
            rules.policies.add(type=kind, value=value, period_seconds=15)


@_defaults_for("kpy.api.scheduling.v1.PriorityClass")
def _priority_class(pc: Any) -> None:
    _default(pc, "preemption_policy", "PreemptLowerPriority")


@_defaults_for("kpy.api.storage.v1.StorageClass")
def _storage_class(sc: Any) -> None:
    _default(sc, "reclaim_policy", "Delete")
    _default(sc, "volume_binding_mode", "Immediate")


@_defaults_for("kpy.api.apiextensions.v1.CustomResourceDefinitionSpec")
def _crd_spec(spec: Any) -> None:
    _default(spec.conversion, "strategy", "None")
    names = spec.names
    if names.HasField("kind"):
        _default(names, "list_kind", names.kind + "List")
        _default(names, "singular", names.kind.lower())


# -------------------------------------------------------- rbac.authorization.k8s.io/v1

_RBAC_GROUP = "rbac.authorization.k8s.io"


@_defaults_for("kpy.api.rbac.v1.RoleBinding", "kpy.api.rbac.v1.ClusterRoleBinding")
def _binding(binding: Any) -> None:
    if not binding.role_ref.api_group:
        binding.role_ref.api_group = _RBAC_GROUP


@_defaults_for("kpy.api.rbac.v1.Subject")
def _subject(subject: Any) -> None:
    # A ServiceAccount is a core kind: its subjects keep apiGroup "".
    if not subject.api_group and subject.kind in ("User", "Group"):
        subject.api_group = _RBAC_GROUP
