"""Fields kpy accepts from Kubernetes' schema but cannot honour: refused.

A manifest field that kpy stored but did not act on would be a lie to the
user (a pod asking for `hostNetwork: true` would run in its own network
namespace all the same). Every such field is listed once, in `REFUSALS`,
with the condition that makes it refused and the reason; a refused field is
reported as

    spec.hostNetwork: Forbidden: not supported by kpy (kpy-agent gives every
    pod its own network namespace); remove the field

Contract:

- Only values that would change behaviour are refused. A field that is
  unset, or set to its default or to an explicit "off" value
  (`hostNetwork: false`, `tty: false`), is accepted, because real
  manifests carry those.
- A rule names the message it lives in (`within`, the proto message's
  name) and a camelCase path below it; every instance of that message in
  the object is checked, so a Container rule covers `initContainers` and
  `containers` of a Pod and of every pod template alike.
- Rules apply to the kinds kpy runs today (`KINDS`). Job, CronJob,
  StatefulSet, DaemonSet and HorizontalPodAutoscaler are left to the issues
  that implement them; the pods they make are checked when they are
  created.
- On an update, a refused value that the stored object already held at the
  same path is let through (ratcheting, as Kubernetes does for tightened
  rules), so an object stored before a rule existed can still have its
  status written, its finalizers removed and be deleted.
- A path another validator already reported (`reported`) gets no second
  error.

`docs/fields.md` lists, per kind, what kpy acts on, what it refuses (this
table) and what it stores for a later issue.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from kpy.api.apps.v1 import Deployment, ReplicaSet
from kpy.api.coordination.v1 import Lease
from kpy.api.core.v1 import (
    ConfigMap,
    Endpoints,
    Event,
    Namespace,
    Node,
    PersistentVolume,
    PersistentVolumeClaim,
    Pod,
    ReplicationController,
    Secret,
    Service,
)
from kpy.api.storage.v1 import StorageClass
from kpy.api.validation._field import Errors, forbidden

if TYPE_CHECKING:
    from google.protobuf.descriptor import Descriptor, FieldDescriptor
    from google.protobuf.message import Message

    from kpy.api.errors import FieldError

__all__ = ["KINDS", "REFUSALS", "SAFE_SYSCTLS", "Refusal", "refused_fields"]

#: The kinds whose fields are checked here.
_KIND_TYPES: Final[tuple[type[Message], ...]] = (
    Pod,
    ReplicaSet,
    ReplicationController,
    Deployment,
    Node,
    Namespace,
    Service,
    Endpoints,
    ConfigMap,
    Secret,
    Event,
    Lease,
    PersistentVolume,
    PersistentVolumeClaim,
    StorageClass,
)
KINDS: Final = frozenset(t.__name__ for t in _KIND_TYPES)

# A condition: the field's value and the message the rule's path starts in.
Test = Callable[[Any, Any], bool]


def _is_set(value: Any, owner: Any) -> bool:
    return True  # called only for a field that is present


def _is_true(value: Any, owner: Any) -> bool:
    return value is True


def _is_false(value: Any, owner: Any) -> bool:
    return value is False


def _non_empty(value: Any, owner: Any) -> bool:
    return bool(value)


def _other_than(*accepted: str) -> Test:
    def test(value: Any, owner: Any) -> bool:
        return bool(value) and value not in accepted

    return test


def _one_of(*refused: str) -> Test:
    def test(value: Any, owner: Any) -> bool:
        return value in refused

    return test


def _starts_with(prefix: str) -> Test:
    def test(value: Any, owner: Any) -> bool:
        return isinstance(value, str) and value.startswith(prefix)

    return test


def _profile_other_than(accepted: str) -> Test:
    """A seccompProfile / appArmorProfile whose type is not `accepted`."""

    def test(value: Any, owner: Any) -> bool:
        return bool(value.type) and value.type != accepted

    return test


def _profile_of(refused: str) -> Test:
    """A seccompProfile whose type is `refused`."""

    def test(value: Any, owner: Any) -> bool:
        return bool(value.type == refused)

    return test


def _unsafe_sysctl(value: Any, owner: Any) -> bool:
    # Kubernetes accepts "/" as the separator too (net/ipv4/tcp_rmem).
    return any(s.name.replace("/", ".") not in SAFE_SYSCTLS for s in value)


def _differs_from_service_account_name(value: Any, owner: Any) -> bool:
    return bool(value) and value != owner.service_account_name


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused field: `path` (camelCase, dotted) below every `within`
    message, refused when `test(value, that message)` holds; `when` says the
    condition in words, `reason` why kpy cannot honour it, `fix` what to do."""

    within: str
    path: str
    when: str
    test: Test
    reason: str
    fix: str = "remove the field"


_NETNS = "kpy-agent gives every pod its own network namespace"
_RUNTIME_DEFAULT = (
    "kpy's Docker runtime applies Docker's default profile and no other; "
    "type RuntimeDefault is accepted"
)
_LOCALHOST_SECCOMP = "kpy's runtimes load no seccomp profile from the node"
_SECCOMP_FIX = "use type RuntimeDefault or Unconfined"

#: Kubernetes' safe sysctls (the kubelet's default allowlist): namespaced,
#: and without effect outside the pod.
SAFE_SYSCTLS: Final = (
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ping_group_range",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_wmem",
)
_NODE_DIRECTORIES = "kpy-agent mounts only directories of its node"
_NO_BLOCK = "kpy-agent mounts volumes as directories, never as block devices"
_NO_DNS = "kpy writes no resolv.conf: containers use their node's DNS configuration"

REFUSALS: Final[tuple[Refusal, ...]] = (
    # --- PodSpec
    Refusal(
        "PodSpec",
        "ephemeralContainers",
        "not empty",
        _non_empty,
        "kpy-agent never starts ephemeral containers",
        "remove the field and debug with `kpyctl exec`",
    ),
    Refusal(
        "PodSpec",
        "activeDeadlineSeconds",
        "set",
        _is_set,
        "kpy-agent does not stop a pod at a deadline",
    ),
    Refusal("PodSpec", "hostNetwork", "true", _is_true, _NETNS),
    Refusal(
        "PodSpec", "hostPID", "true", _is_true, "kpy-agent never shares the node's PID namespace"
    ),
    Refusal(
        "PodSpec", "hostIPC", "true", _is_true, "kpy-agent never shares the node's IPC namespace"
    ),
    Refusal(
        "PodSpec",
        "shareProcessNamespace",
        "true",
        _is_true,
        "each container of a kpy pod has its own process namespace",
    ),
    Refusal(
        "PodSpec",
        "serviceAccount",
        "set and different from serviceAccountName",
        _differs_from_service_account_name,
        "it is a deprecated alias that kpy does not copy into serviceAccountName",
        "set serviceAccountName instead",
    ),
    Refusal("PodSpec", "dnsPolicy", '"None"', _one_of("None"), _NO_DNS),
    Refusal("PodSpec", "dnsConfig", "set", _is_set, _NO_DNS),
    Refusal(
        "PodSpec", "hostAliases", "not empty", _non_empty, "kpy-agent writes no /etc/hosts entries"
    ),
    Refusal(
        "PodSpec",
        "imagePullSecrets",
        "not empty",
        _non_empty,
        "kpy pulls images without registry credentials",
    ),
    Refusal(
        "PodSpec",
        "readinessGates",
        "not empty",
        _non_empty,
        "kpy-agent's Ready condition does not wait for readiness gates",
    ),
    Refusal(
        "PodSpec",
        "runtimeClassName",
        "set",
        _non_empty,
        "kpy has no RuntimeClass: each node runs every pod with its own runtime (--runtime)",
    ),
    Refusal(
        "PodSpec",
        "setHostnameAsFQDN",
        "true",
        _is_true,
        "kpy has no cluster DNS domain to make a fully qualified hostname from",
    ),
    Refusal(
        "PodSpec",
        "os.name",
        'other than "linux"',
        _other_than("linux"),
        "kpy runs Linux containers only",
    ),
    Refusal(
        "PodSpec", "hostUsers", "false", _is_false, "kpy-agent runs no pod in a user namespace"
    ),
    Refusal(
        "PodSpec",
        "schedulingGates",
        "not empty",
        _non_empty,
        "kpy's scheduler does not hold gated pods back",
    ),
    Refusal(
        "PodSpec",
        "resourceClaims",
        "not empty",
        _non_empty,
        "kpy has no dynamic resource allocation",
    ),
    # --- PodSecurityContext (spec.securityContext); the agent refuses on
    # its runtime what that runtime cannot apply (docs/fields.md).
    Refusal(
        "PodSecurityContext",
        "supplementalGroupsPolicy",
        'other than "Merge"',
        _other_than("Merge"),
        "kpy's runtimes merge supplementalGroups with the groups of the image's user",
    ),
    Refusal(
        "PodSecurityContext",
        "sysctls",
        "naming a sysctl outside Kubernetes' safe set",
        _unsafe_sysctl,
        f"kpy-agent sets only the safe, namespaced sysctls: {', '.join(SAFE_SYSCTLS)}",
        "remove the other sysctls",
    ),
    Refusal(
        "PodSecurityContext", "seLinuxOptions", "set", _is_set, "kpy applies no SELinux labels"
    ),
    Refusal(
        "PodSecurityContext", "windowsOptions", "set", _is_set, "kpy runs Linux containers only"
    ),
    Refusal(
        "PodSecurityContext",
        "seccompProfile",
        'type "Localhost"',
        _profile_of("Localhost"),
        _LOCALHOST_SECCOMP,
        _SECCOMP_FIX,
    ),
    Refusal(
        "PodSecurityContext",
        "appArmorProfile",
        'type other than "RuntimeDefault"',
        _profile_other_than("RuntimeDefault"),
        _RUNTIME_DEFAULT,
    ),
    # --- Container (initContainers and containers)
    Refusal(
        "Container",
        "restartPolicy",
        "set (Always: a sidecar)",
        _non_empty,
        "kpy-agent runs no sidecar containers: an init container that never exits "
        "would hold the pod's start forever",
    ),
    Refusal(
        "Container",
        "restartPolicyRules",
        "not empty",
        _non_empty,
        "kpy-agent restarts containers by the pod's restartPolicy only",
    ),
    Refusal("Container", "volumeDevices", "not empty", _non_empty, "kpy has no block volumes"),
    Refusal(
        "Container",
        "terminationMessagePath",
        'other than "/dev/termination-log"',
        _other_than("/dev/termination-log"),
        "kpy-agent does not read termination messages",
    ),
    Refusal(
        "Container",
        "terminationMessagePolicy",
        '"FallbackToLogsOnError"',
        _one_of("FallbackToLogsOnError"),
        "kpy-agent does not copy a failed container's last log lines into its status",
    ),
    Refusal(
        "Container",
        "stdin",
        "true",
        _is_true,
        "kpy-agent gives containers no standard input (kpyctl exec -i works)",
    ),
    Refusal(
        "Container",
        "stdinOnce",
        "true",
        _is_true,
        "kpy-agent gives containers no standard input (kpyctl exec -i works)",
    ),
    Refusal("Container", "tty", "true", _is_true, "kpy-agent gives containers no terminal"),
    Refusal(
        "Container",
        "resources.claims",
        "not empty",
        _non_empty,
        "kpy has no dynamic resource allocation",
    ),
    # --- SecurityContext (a container's securityContext)
    Refusal(
        "SecurityContext",
        "procMount",
        'other than "Default"',
        _other_than("Default"),
        "kpy's runtimes mount /proc with its default masked paths",
    ),
    Refusal("SecurityContext", "seLinuxOptions", "set", _is_set, "kpy applies no SELinux labels"),
    Refusal("SecurityContext", "windowsOptions", "set", _is_set, "kpy runs Linux containers only"),
    Refusal(
        "SecurityContext",
        "seccompProfile",
        'type "Localhost"',
        _profile_of("Localhost"),
        _LOCALHOST_SECCOMP,
        _SECCOMP_FIX,
    ),
    Refusal(
        "SecurityContext",
        "appArmorProfile",
        'type other than "RuntimeDefault"',
        _profile_other_than("RuntimeDefault"),
        _RUNTIME_DEFAULT,
    ),
    # --- probes, env, mounts
    Refusal(
        "Probe",
        "grpc",
        "set",
        _is_set,
        "kpy-agent has no gRPC prober",
        "use exec, httpGet or tcpSocket",
    ),
    Refusal("EnvVarSource", "fileKeyRef", "set", _is_set, "kpy-agent reads no env files"),
    Refusal(
        "VolumeMount",
        "mountPropagation",
        'other than "None"',
        _other_than("None"),
        "kpy mounts every volume private to its container",
    ),
    Refusal(
        "VolumeMount",
        "recursiveReadOnly",
        '"Enabled"',
        _one_of("Enabled"),
        "kpy's read-only mounts are not recursive; IfPossible is accepted",
    ),
    # --- volumes
    Refusal(
        "Volume",
        "nfs",
        "set",
        _is_set,
        "kpy-agent mounts only directories of its node",
        "use hostPath or a persistentVolumeClaim",
    ),
    Refusal(
        "Volume",
        "csi",
        "set",
        _is_set,
        "kpy-agent mounts only directories of its node",
        "use hostPath or a persistentVolumeClaim",
    ),
    Refusal(
        "Volume",
        "image",
        "set",
        _is_set,
        "kpy-agent mounts only directories of its node",
        "use hostPath or a persistentVolumeClaim",
    ),
    Refusal(
        "EmptyDirVolumeSource",
        "medium",
        "HugePages",
        _starts_with("HugePages"),
        "kpy has no huge pages",
    ),
    Refusal(
        "VolumeProjection",
        "clusterTrustBundle",
        "set",
        _is_set,
        "kpy has no ClusterTrustBundle",
    ),
    # --- persistent volumes
    Refusal(
        "PersistentVolumeSpec",
        "nfs",
        "set",
        _is_set,
        _NODE_DIRECTORIES,
        "use hostPath or local",
    ),
    Refusal(
        "PersistentVolumeSpec",
        "csi",
        "set",
        _is_set,
        _NODE_DIRECTORIES,
        "use hostPath or local",
    ),
    Refusal(
        "PersistentVolumeSpec",
        "persistentVolumeReclaimPolicy",
        '"Recycle"',
        _one_of("Recycle"),
        "kpy has no volume recycler, which Kubernetes deprecated",
        "use Delete or Retain",
    ),
    Refusal(
        "PersistentVolumeSpec",
        "volumeMode",
        '"Block"',
        _one_of("Block"),
        _NO_BLOCK,
        "use Filesystem",
    ),
    Refusal(
        "PersistentVolumeClaimSpec",
        "volumeMode",
        '"Block"',
        _one_of("Block"),
        _NO_BLOCK,
        "use Filesystem",
    ),
    Refusal(
        "PersistentVolumeClaimSpec",
        "dataSource",
        "set",
        _is_set,
        "kpy's provisioner makes empty volumes only",
    ),
    Refusal(
        "PersistentVolumeClaimSpec",
        "dataSourceRef",
        "set",
        _is_set,
        "kpy's provisioner makes empty volumes only",
    ),
    # --- workloads and the rest
    Refusal(
        "DeploymentSpec",
        "podReplacementPolicy",
        '"TerminationComplete"',
        _one_of("TerminationComplete"),
        "kpy's controllers replace a pod as soon as it starts terminating",
    ),
    Refusal(
        "LeaseSpec",
        "strategy",
        "set",
        _non_empty,
        "kpy's leader election has no coordinated election: only holderIdentity counts",
    ),
    Refusal(
        "LeaseSpec",
        "preferredHolder",
        "set",
        _non_empty,
        "kpy's leader election has no coordinated election: only holderIdentity counts",
    ),
)


@dataclass(frozen=True, slots=True)
class _Rule:
    refusal: Refusal
    fields: tuple[FieldDescriptor, ...]  # the path, resolved on the message type
    # the same path as attribute names, read once (descriptor attributes are slow)
    through: tuple[str, ...] = ()  # the singular messages on the way
    last: str = ""
    last_repeated: bool = False

    @classmethod
    def of(cls, refusal: Refusal, fields: tuple[FieldDescriptor, ...]) -> _Rule:
        names = tuple(f.name for f in fields)
        return cls(refusal, fields, names[:-1], names[-1], fields[-1].is_repeated)


@dataclass(frozen=True, slots=True)
class _Found:
    error: FieldError
    value: Any


def _resolve(descriptor: Descriptor, path: str) -> tuple[FieldDescriptor, ...]:
    """The field descriptors along `path` (camelCase) from `descriptor`;
    every segment but the last is a singular message field."""
    fields: list[FieldDescriptor] = []
    for i, segment in enumerate(path.split(".")):
        by_json = {f.json_name: f for f in descriptor.fields}
        field = by_json.get(segment)
        if field is None:
            raise ValueError(f"{descriptor.name} has no field {segment!r} (in {path!r})")
        fields.append(field)
        if i < path.count("."):
            if field.message_type is None or field.is_repeated:
                raise ValueError(f"{descriptor.name}.{segment} is not a singular message")
            descriptor = field.message_type
    return tuple(fields)


@functools.cache
def _table() -> dict[str, list[_Rule]]:
    """The table by message name, each path resolved once (a path that names
    no field raises ValueError, so a typo cannot disable a rule)."""
    descriptors: dict[str, Descriptor] = {}

    def collect(descriptor: Descriptor) -> None:
        if descriptor.name in descriptors:
            return
        descriptors[descriptor.name] = descriptor
        for f in descriptor.fields:
            if f.message_type is not None:
                collect(f.message_type)

    for kind in _KIND_TYPES:
        collect(kind.DESCRIPTOR)  # type: ignore[arg-type]  # upb's Descriptor
    rules: dict[str, list[_Rule]] = {}
    for refusal in REFUSALS:
        descriptor = descriptors.get(refusal.within)
        if descriptor is None:
            raise ValueError(f"no kind in KINDS holds a {refusal.within} message")
        rule = _Rule.of(refusal, _resolve(descriptor, refusal.path))
        rules.setdefault(refusal.within, []).append(rule)
    return rules


def refused_fields(
    obj: Message, old: Message | None = None, *, reported: Errors | None = None
) -> Errors:
    """A Forbidden error for every refused field of `obj` (see the module
    docstring); `old` is the stored object on an update, `reported` the
    errors other validators already found."""
    if type(obj).__name__ not in KINDS:
        return []
    found = list(_walk(obj))
    if not found:
        return []  # the common case: `old` need not be walked
    skip = {e.path for e in reported or ()}
    held = {f.error.path: f.value for f in _walk(old)} if old is not None else {}
    errs: Errors = []
    for one in found:
        path = one.error.path
        if path in skip or (path in held and held[path] == one.value):
            continue
        errs.append(one.error)
    return errs


# Written by the system, never a user's request: no rule lives there.
_NOT_WALKED: Final = frozenset({"metadata", "status"})


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the walk does at a message of one type, worked out once per type:
    the rules that live there, and the message fields (attribute name, JSON
    name, repeated) whose type can hold a rule's message: the only subtrees
    worth entering (most of an object holds none)."""

    rules: tuple[_Rule, ...]
    children: tuple[tuple[str, str, bool], ...]


_PLANS: dict[tuple[str, bool], _Plan] = {}


def _plan(descriptor: Descriptor, top: bool) -> _Plan:
    """The plan of `descriptor`; `top`: the object itself, whose metadata
    and status are not walked."""
    key = (descriptor.full_name, top)
    plan = _PLANS.get(key)
    if plan is None:
        rules = _table()
        children = tuple(
            (f.name, f.json_name, f.is_repeated)
            for f in descriptor.fields
            if f.message_type is not None
            and not f.message_type.GetOptions().map_entry
            and not (top and f.name in _NOT_WALKED)
            and _reaches_rule(f.message_type)
        )
        plan = _PLANS[key] = _Plan(tuple(rules.get(descriptor.name, ())), children)
    return plan


@functools.cache
def _reaches_rule(descriptor: Descriptor) -> bool:
    """Whether a message of this type is, or can contain, one a rule lives in."""
    rules = _table()
    seen = {descriptor}
    todo = [descriptor]
    while todo:
        current = todo.pop()
        if current.name in rules:
            return True
        for field in current.fields:
            child = field.message_type
            if child is not None and child not in seen and not child.GetOptions().map_entry:
                seen.add(child)
                todo.append(child)
    return False


def _walk(obj: Message) -> Iterator[_Found]:
    """Every refused field of `obj`, depth first, with its error."""

    def visit(msg: Any, path: str, top: bool) -> Iterator[_Found]:
        plan = _plan(msg.DESCRIPTOR, top)
        for rule in plan.rules:
            found = _check(rule, msg, path)
            if found is not None:
                yield found
        for name, json_name, repeated in plan.children:
            where = f"{path}.{json_name}" if path else json_name
            if repeated:
                for i, item in enumerate(getattr(msg, name)):
                    yield from visit(item, f"{where}[{i}]", False)
            elif msg.HasField(name):
                yield from visit(getattr(msg, name), where, False)

    yield from visit(obj, "", True)


def _check(rule: _Rule, owner: Any, path: str) -> _Found | None:
    msg = owner
    for name in rule.through:
        if not msg.HasField(name):
            return None
        msg = getattr(msg, name)
    last = rule.last
    if rule.last_repeated:
        value: Any = list(getattr(msg, last))
        if not value:
            return None
    elif not msg.HasField(last):
        return None
    else:
        value = getattr(msg, last)
    refusal = rule.refusal
    if not refusal.test(value, owner):
        return None
    where = f"{path}.{refusal.path}" if path else refusal.path
    shown = f'"{value}" is ' if isinstance(value, str) else ""
    detail = f"{shown}not supported by kpy ({refusal.reason}); {refusal.fix}"
    return _Found(forbidden(where, detail), value)
