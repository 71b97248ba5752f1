"""A container's environment: env, envFrom and the Downward API, as the
kubelet resolves them before it creates a container.

Contract:

- `resolve_env` (and its shortcut `container_env`) returns `(name, value)`
  pairs in the order each name first appears: envFrom sources first, then
  `env` in order, then the service variables no entry defined (sorted). A
  later entry with the same name replaces the value of the earlier one in
  place. Kubernetes builds the list from a Go map, so its order is undefined;
  kpy keeps a stable one so that a container's config hashes the same twice.
- `$(VAR)` in an `env[].value` expands with Kubernetes' rules (`expand`):
  it refers to the envFrom variables, the `env` entries before it and the
  service variables; `$$` is a literal `$`; an unknown reference stays as
  written. Values from a source (`valueFrom`) are never expanded.
- A missing ConfigMap, Secret or key raises `ConfigError` (the container
  waits with reason CreateContainerConfigError) unless the reference is
  `optional`, in which case the variable (or envFrom source) is skipped.
- envFrom keys that are not valid variable names are skipped and reported
  in `ResolvedEnv.skipped`, so the agent can record the Warning Event the
  kubelet records (InvalidEnvironmentVariableNames).
- Secret bytes become str with `surrogateescape`, so bytes that are not
  UTF-8 reach the process unchanged through `os.fsencode`.
- `service_env` builds the service link variables the kubelet injects
  (getServiceEnvVarMap): for each Service of the pod's namespace with a
  cluster IP (not headless, not ExternalName) when `enableServiceLinks` is
  not false, and always for the `kubernetes` Service of `default`:
  `<SVC>_SERVICE_HOST`, `<SVC>_SERVICE_PORT` (the first port),
  `<SVC>_SERVICE_PORT_<NAME>` per named port, and Docker's link variables
  `<SVC>_PORT`, `<SVC>_PORT_<port>_<PROTO>` with `_PROTO`, `_PORT` and
  `_ADDR`; names upper-cased with `-` as `_`. They go in
  `PodContext.service_env`, below the container's own env.
- Nothing here blocks or mutates its inputs: the lookups are the agent's
  informer caches, read synchronously.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Final, Protocol

from kpy.api import names
from kpy.api.quantity import Quantity

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from kpy.api.core.v1 import (
        ConfigMap,
        Container,
        EnvFromSource,
        EnvVar,
        EphemeralContainer,
        PersistentVolume,
        PersistentVolumeClaim,
        Pod,
        Secret,
        Service,
        ServiceAccountTokenProjection,
    )

__all__ = [
    "CONFIG_MAP",
    "PERSISTENT_VOLUME_CLAIM",
    "SECRET",
    "ConfigError",
    "Objects",
    "PodContext",
    "ResolvedEnv",
    "SkippedKeys",
    "config_map_data",
    "container_env",
    "expand",
    "field_value",
    "references",
    "resolve_env",
    "resource_value",
    "secret_data",
    "service_env",
]

CONFIG_MAP: Final = "ConfigMap"
SECRET: Final = "Secret"
PERSISTENT_VOLUME_CLAIM: Final = "PersistentVolumeClaim"

_ZERO: Final = Quantity(0)
_ONE: Final = Quantity(1)
_RESOURCES: Final = frozenset({"cpu", "memory", "ephemeral-storage"})


class Objects(Protocol):
    """What env and volumes need of the agent's caches. Each object lookup
    returns None when the object does not exist (or is not in the cache
    yet); `service_account_token` gives the token a pod's
    serviceAccountToken projection holds (`kpy.agent.tokens`), raising
    `volumes.VolumeError` while there is none."""

    def config_map(self, namespace: str, name: str) -> ConfigMap | None: ...

    def secret(self, namespace: str, name: str) -> Secret | None: ...

    def persistent_volume_claim(
        self, namespace: str, name: str
    ) -> PersistentVolumeClaim | None: ...

    def persistent_volume(self, name: str) -> PersistentVolume | None: ...

    def service_account_token(
        self, pod: Pod, projection: ServiceAccountTokenProjection
    ) -> bytes: ...


class ConfigError(Exception):
    """A container's configuration cannot be resolved (a missing ConfigMap,
    Secret or key, an unsupported field path). The message reads like the
    kubelet's; `reason` is the waiting reason the container shows."""

    reason = "CreateContainerConfigError"


@dataclass(frozen=True, slots=True)
class PodContext:
    """What the Downward API needs beyond the pod itself.

    `pod_ips`/`host_ips` list every address (dual stack); when empty, the
    single `pod_ip`/`host_ip` is used, and failing that the pod's status.
    `node_allocatable` stands in for unset limits. `service_env` holds the
    service link variables (`FOO_SERVICE_HOST`, ...) the agent computed."""

    pod_ip: str = ""
    host_ip: str = ""
    node_allocatable: Mapping[str, Quantity | str] = field(default_factory=dict)
    pod_ips: Sequence[str] = ()
    host_ips: Sequence[str] = ()
    service_env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SkippedKeys:
    """Keys of one envFrom source that were not valid variable names."""

    kind: str  # CONFIG_MAP or SECRET
    namespace: str
    name: str
    keys: tuple[str, ...]

    reason: ClassVar[str] = "InvalidEnvironmentVariableNames"

    @property
    def message(self) -> str:
        """The Warning Event's message, worded as the kubelet words it."""
        what = "configMap" if self.kind == CONFIG_MAP else "secret"
        return (
            f"Keys [{', '.join(self.keys)}] from the EnvFrom {what} "
            f"{self.namespace}/{self.name} were skipped since they are considered "
            "invalid environment variable names."
        )


@dataclass(frozen=True, slots=True)
class ResolvedEnv:
    env: list[tuple[str, str]]
    skipped: list[SkippedKeys]


# --- $(VAR) expansion (Kubernetes' third_party/forked/golang/expansion) ---


def expand(s: str, env: Mapping[str, str]) -> str:
    """Expand `$(NAME)` references in `s` from `env`, as Kubernetes expands
    env values, `command` and `args`: `$$` is a literal `$`; a reference to
    an unknown name, an unterminated `$(` and a `$` before anything else stay
    as written; the result is not expanded again."""
    out: list[str] = []
    i = 0
    while i < len(s):
        ch = s[i]
        if ch != "$" or i + 1 == len(s):
            out.append(ch)
            i += 1
            continue
        nxt = s[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(" and (close := s.find(")", i + 2)) != -1:
            name = s[i + 2 : close]
            out.append(env.get(name, f"$({name})"))
            i = close + 1
        else:
            # `$x`, or `$(` never closed: the `$` stays and what follows
            # reads as plain text (it cannot be a `$`: that was the escape).
            out.append("$")
            i += 1
    return "".join(out)


# --- the Downward API ---


def field_value(pod: Pod, field_path: str, ctx: PodContext) -> str:
    """The value of a Downward API `fieldRef.fieldPath` for `pod`.

    Supports metadata.name, .namespace, .uid, .labels['k'], .annotations['k']
    (a missing key is ""), metadata.labels and metadata.annotations whole (the
    volume form: sorted `k="v"` lines), spec.nodeName, spec.serviceAccountName,
    status.podIP(s) and status.hostIP(s) (plural forms comma-separated).
    Raises ConfigError for any other path."""
    subscripted = _split_subscript(field_path)
    if subscripted is not None:
        path, key = subscripted
        if path == "metadata.labels":
            return pod.metadata.labels.get(key, "")
        if path == "metadata.annotations":
            return pod.metadata.annotations.get(key, "")
    getter = _FIELDS.get(field_path)
    if getter is None:
        raise ConfigError(f"unsupported fieldPath: {field_path}")
    return getter(pod, ctx)


def _split_subscript(field_path: str) -> tuple[str, str] | None:
    """`metadata.labels['app']` -> ("metadata.labels", "app")."""
    if not field_path.endswith("']"):
        return None
    path, sep, key = field_path[:-2].partition("['")
    if not sep or not path:
        return None
    return path, key


def _format_map(values: Mapping[str, str]) -> str:
    return "\n".join(f"{k}={names.go_quote(values[k])}" for k in sorted(values))


def _pod_ips(pod: Pod, ctx: PodContext) -> list[str]:
    status = pod.status
    return _ips(ctx.pod_ips, ctx.pod_ip, [ip.ip for ip in status.pod_ips], status.pod_ip)


def _host_ips(pod: Pod, ctx: PodContext) -> list[str]:
    status = pod.status
    return _ips(ctx.host_ips, ctx.host_ip, [ip.ip for ip in status.host_ips], status.host_ip)


def _ips(known: Sequence[str], one: str, in_status: list[str], one_in_status: str) -> list[str]:
    """What the agent knows first (it may be ahead of the pod's status)."""
    for ips in (list(known), [one], in_status, [one_in_status]):
        if any(ips):
            return ips
    return []


def _first(values: list[str]) -> str:
    return values[0] if values else ""


_FIELDS: Final[dict[str, Callable[[Pod, PodContext], str]]] = {
    "metadata.name": lambda pod, _: pod.metadata.name,
    "metadata.namespace": lambda pod, _: pod.metadata.namespace,
    "metadata.uid": lambda pod, _: pod.metadata.uid,
    "metadata.labels": lambda pod, _: _format_map(pod.metadata.labels),
    "metadata.annotations": lambda pod, _: _format_map(pod.metadata.annotations),
    "spec.nodeName": lambda pod, _: pod.spec.node_name,
    "spec.serviceAccountName": lambda pod, _: pod.spec.service_account_name,
    "status.podIP": lambda pod, ctx: _first(_pod_ips(pod, ctx)),
    "status.podIPs": lambda pod, ctx: ",".join(_pod_ips(pod, ctx)),
    "status.hostIP": lambda pod, ctx: _first(_host_ips(pod, ctx)),
    "status.hostIPs": lambda pod, ctx: ",".join(_host_ips(pod, ctx)),
}


def resource_value(
    pod: Pod, container_name: str, resource: str, divisor: Quantity | str, ctx: PodContext
) -> str:
    """A Downward API `resourceFieldRef` value: `resource` (limits.cpu,
    requests.memory, ...) of the named container, in whole `divisor` units
    rounded up (a divisor of "" or 0 means 1; cpu is counted in millicores,
    so 250m with divisor 1 is "1", with divisor 1m "250").

    An unset limit is the node's allocatable amount, as the kubelet has it;
    an unset request is the declared limit, else 0."""
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or name not in _RESOURCES:
        raise ConfigError(f"unsupported container resource: {resource}")
    container = _find_container(pod, container_name)
    amount = _limit(container, name, ctx) if kind == "limits" else _request(container, name)
    unit = _parse(divisor, "resourceFieldRef.divisor") if divisor else _ONE
    if unit.sign() <= 0:
        unit = _ONE
    if name == "cpu":
        return str(_ceil_div(amount.milli_value(), unit.milli_value()))
    return str(_ceil_div(amount.value(), unit.value()))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _find_container(pod: Pod, name: str) -> Container:
    if not name:
        raise ConfigError(
            "resourceFieldRef.containerName is required outside a container's own env"
        )
    for container in (*pod.spec.containers, *pod.spec.init_containers):
        if container.name == name:
            return container
    raise ConfigError(
        f"container {name} not found in pod {pod.metadata.namespace}/{pod.metadata.name}"
    )


def _declared(container: Container, kind: str, name: str) -> Quantity | None:
    values = getattr(container.resources, kind)
    if name not in values or not values[name].string:
        return None
    return _parse(values[name].string, f"container {container.name} resources.{kind}.{name}")


def _limit(container: Container, name: str, ctx: PodContext) -> Quantity:
    declared = _declared(container, "limits", name)
    if declared is not None:
        return declared
    allocatable = ctx.node_allocatable.get(name)
    return _parse(allocatable, f"node allocatable {name}") if allocatable else _ZERO


def _request(container: Container, name: str) -> Quantity:
    declared = _declared(container, "requests", name)
    if declared is not None:
        return declared
    limit = _declared(container, "limits", name)
    return limit if limit is not None else _ZERO


def _parse(value: Quantity | str, what: str) -> Quantity:
    if isinstance(value, Quantity):
        return value
    try:
        return Quantity.parse(value)
    except ValueError as err:
        raise ConfigError(f"{what}: {value!r} is not a quantity: {err}") from None


# --- ConfigMap and Secret lookups (shared with volumes) ---


def config_map_data(
    objects: Objects, namespace: str, name: str, *, optional: bool, binary: bool
) -> dict[str, bytes] | None:
    """The ConfigMap's data as bytes (with `binary_data` when `binary`), or
    None when it is missing and `optional`; ConfigError when it is missing."""
    config_map = objects.config_map(namespace, name)
    if config_map is None:
        if optional:
            return None
        raise ConfigError(f'configmap "{name}" not found')
    data = {key: value.encode() for key, value in config_map.data.items()}
    if binary:
        data.update(config_map.binary_data)
    return data


def secret_data(
    objects: Objects, namespace: str, name: str, *, optional: bool
) -> dict[str, bytes] | None:
    """The Secret's data, or None when it is missing and `optional`;
    ConfigError when it is missing."""
    secret = objects.secret(namespace, name)
    if secret is None:
        if optional:
            return None
        raise ConfigError(f'secret "{name}" not found')
    return dict(secret.data)


def _text(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


# --- the container's environment ---


def container_env(
    pod: Pod, container: Container, objects: Objects, ctx: PodContext
) -> list[tuple[str, str]]:
    """The container's environment; see the module docstring. Raises
    ConfigError. Use `resolve_env` to learn which envFrom keys were skipped."""
    return resolve_env(pod, container, objects, ctx).env


def resolve_env(pod: Pod, container: Container, objects: Objects, ctx: PodContext) -> ResolvedEnv:
    """The container's environment and the envFrom keys skipped as invalid
    variable names; see the module docstring. Raises ConfigError."""
    env: dict[str, str] = {}
    skipped: list[SkippedKeys] = []
    for source in container.env_from:
        skip = _add_env_from(env, source, pod.metadata.namespace, objects)
        if skip is not None:
            skipped.append(skip)
    visible = collections.ChainMap(env, dict(ctx.service_env))
    for var in container.env:
        value = _env_value(var, pod, container, objects, ctx, visible)
        if value is not None:
            env[var.name] = value
    service = [(k, v) for k, v in sorted(ctx.service_env.items()) if k not in env]
    return ResolvedEnv(env=[*env.items(), *service], skipped=skipped)


def _add_env_from(
    env: dict[str, str], source: EnvFromSource, namespace: str, objects: Objects
) -> SkippedKeys | None:
    kind, name, data = _env_from_data(source, namespace, objects)
    if data is None:
        return None
    invalid: list[str] = []
    for key, value in sorted(data.items()):
        var = source.prefix + key
        if names.is_env_var_name(var):
            invalid.append(var)
        else:
            env[var] = _text(value)
    if not invalid:
        return None
    return SkippedKeys(kind, namespace, name, tuple(sorted(invalid)))


def _env_from_data(
    source: EnvFromSource, namespace: str, objects: Objects
) -> tuple[str, str, dict[str, bytes] | None]:
    """(kind, name, data) of an envFrom source; data None: optional, missing."""
    if source.HasField("config_map_ref"):
        cm = source.config_map_ref
        data = config_map_data(objects, namespace, cm.name, optional=cm.optional, binary=False)
        return CONFIG_MAP, cm.name, data
    if source.HasField("secret_ref"):
        ref = source.secret_ref
        return SECRET, ref.name, secret_data(objects, namespace, ref.name, optional=ref.optional)
    raise ConfigError("envFrom entry names neither configMapRef nor secretRef")


def _env_value(
    var: EnvVar,
    pod: Pod,
    container: Container,
    objects: Objects,
    ctx: PodContext,
    visible: Mapping[str, str],
) -> str | None:
    """The entry's value, or None when an optional source is missing."""
    if var.value or not var.HasField("value_from"):
        return expand(var.value, visible)
    source = var.value_from
    namespace = pod.metadata.namespace
    if source.HasField("field_ref"):
        return field_value(pod, source.field_ref.field_path, ctx)
    if source.HasField("resource_field_ref"):
        ref = source.resource_field_ref
        name = ref.container_name or container.name
        return resource_value(pod, name, ref.resource, ref.divisor.string, ctx)
    if source.HasField("config_map_key_ref"):
        cm = source.config_map_key_ref
        data = config_map_data(objects, namespace, cm.name, optional=cm.optional, binary=False)
        return _key(data, cm.key, cm.optional, f"ConfigMap {namespace}/{cm.name}")
    if source.HasField("secret_key_ref"):
        sk = source.secret_key_ref
        data = secret_data(objects, namespace, sk.name, optional=sk.optional)
        return _key(data, sk.key, sk.optional, f"Secret {namespace}/{sk.name}")
    raise ConfigError(
        f"env {var.name}: valueFrom names no source kpy supports "
        "(fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef)"
    )


def _key(data: dict[str, bytes] | None, key: str, optional: bool, where: str) -> str | None:
    if data is None:
        return None
    if key not in data:
        if optional:
            return None
        raise ConfigError(f"couldn't find key {key} in {where}")
    return _text(data[key])


# --- service links (kubelet's getServiceEnvVarMap, envvars.FromServices) ---

MASTER_SERVICES: Final = frozenset({"kubernetes"})


def service_env(
    services: Iterable[Service], namespace: str, *, enable_service_links: bool = True
) -> dict[str, str]:
    """The service link variables of a pod in `namespace`; see the module
    docstring. `services` may hold every namespace's Services."""
    chosen: dict[str, Service] = {}
    for svc in services:
        if not _has_cluster_ip(svc):
            continue
        name = svc.metadata.name
        if svc.metadata.namespace == "default" and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif svc.metadata.namespace == namespace and enable_service_links:
            chosen[name] = svc
    out: dict[str, str] = {}
    for name in sorted(chosen):
        out.update(_service_vars(chosen[name]))
    return out


def _has_cluster_ip(svc: Service) -> bool:
    return svc.spec.cluster_ip not in ("", "None")


def _env_name(name: str) -> str:
    return name.replace("-", "_").upper()


def _service_vars(svc: Service) -> dict[str, str]:
    prefix = _env_name(svc.metadata.name)
    ip = svc.spec.cluster_ip
    out = {f"{prefix}_SERVICE_HOST": ip}
    ports = svc.spec.ports
    if ports:
        out[f"{prefix}_SERVICE_PORT"] = str(ports[0].port)
    for port in ports:
        if port.name:
            out[f"{prefix}_SERVICE_PORT_{_env_name(port.name)}"] = str(port.port)
    host = f"[{ip}]" if ":" in ip else ip
    for i, port in enumerate(ports):
        proto = port.protocol or "TCP"
        url = f"{proto.lower()}://{host}:{port.port}"
        if i == 0:
            out[f"{prefix}_PORT"] = url  # Docker special-cases the first port
        link = f"{prefix}_PORT_{port.port}_{proto.upper()}"
        out[link] = url
        out[f"{link}_PROTO"] = proto.lower()
        out[f"{link}_PORT"] = str(port.port)
        out[f"{link}_ADDR"] = ip
    return out


# --- what a pod refers to ---


def references(pod: Pod) -> set[tuple[str, str, str]]:
    """Every (CONFIG_MAP | SECRET | PERSISTENT_VOLUME_CLAIM, namespace,
    name) the pod's env, envFrom and volumes (projected sources included)
    refer to, so that the agent can re-sync the pod when one of them
    changes (a claim getting bound lets a waiting pod start)."""
    namespace = pod.metadata.namespace
    refs: set[tuple[str, str]] = set()
    spec = pod.spec
    containers: list[Container | EphemeralContainer] = [
        *spec.init_containers,
        *spec.containers,
        *spec.ephemeral_containers,
    ]
    for container in containers:
        refs.update(_env_references(container.env_from, container.env))
    for volume in spec.volumes:
        if volume.HasField("config_map"):
            refs.add((CONFIG_MAP, volume.config_map.name))
        if volume.HasField("secret"):
            refs.add((SECRET, volume.secret.secret_name))
        if volume.HasField("persistent_volume_claim"):
            refs.add((PERSISTENT_VOLUME_CLAIM, volume.persistent_volume_claim.claim_name))
        for projection in volume.projected.sources:
            if projection.HasField("config_map"):
                refs.add((CONFIG_MAP, projection.config_map.name))
            if projection.HasField("secret"):
                refs.add((SECRET, projection.secret.name))
    return {(kind, namespace, name) for kind, name in refs if name}


def _env_references(
    env_from: Iterable[EnvFromSource], env: Iterable[EnvVar]
) -> Iterable[tuple[str, str]]:
    for source in env_from:
        if source.HasField("config_map_ref"):
            yield CONFIG_MAP, source.config_map_ref.name
        if source.HasField("secret_ref"):
            yield SECRET, source.secret_ref.name
    for var in env:
        if var.value_from.HasField("config_map_key_ref"):
            yield CONFIG_MAP, var.value_from.config_map_key_ref.name
        if var.value_from.HasField("secret_key_ref"):
            yield SECRET, var.value_from.secret_key_ref.name
