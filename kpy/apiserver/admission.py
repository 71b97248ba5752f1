"""Mutating admission: what Kubernetes adds to an object on create, beyond
the defaults of its API types (`kpy.api.defaults`).

- Pods tolerate the `node.kubernetes.io/not-ready` and
  `node.kubernetes.io/unreachable` NoExecute taints for 300 s unless they
  already tolerate them (DefaultTolerationSeconds; the API server's
  `--default-not-ready-toleration-seconds` and
  `--default-unreachable-toleration-seconds` set the times), so a pod is
  evicted five minutes after its node stops answering; they run as the `default` service
  account unless they name one (mirror pods excepted).
- A Job without `manualSelector` gets a selector generated from its uid, and
  its template the matching labels (`controller-uid`, `job-name`, and their
  `batch.kubernetes.io/` forms), so two Jobs never adopt each other's pods.

- PersistentVolumeClaims get the `kubernetes.io/pvc-protection` finalizer
  and PersistentVolumes `kubernetes.io/pv-protection` (Kubernetes'
  StorageObjectInUseProtection), so that neither goes while in use.

- Pods get their priority from their PriorityClass (Kubernetes' Priority
  admission, `admit_priority`): `spec.priorityClassName` resolves to
  `spec.priority` and `spec.preemptionPolicy`; a pod naming no class gets
  the globalDefault class (the lowest, should several claim it), else
  priority 0. The built-in `system-cluster-critical` (2000000000) and
  `system-node-critical` (2000001000) are stored when the server starts
  (`ensure_system_priority_classes`) and resolve even if deleted. An unknown class is
  Forbidden ("no PriorityClass with name X was found"), and so is a pod
  whose own priority or preemptionPolicy contradicts its class. An update
  that omits them keeps them (`admit_update`).

- A new PersistentVolumeClaim without `storageClassName` gets the default
  StorageClass (DefaultStorageClass, `admit_default_storage_class`), and a
  claim may grow only if its class has `allowVolumeExpansion`
  (PersistentVolumeClaimResize, `admit_claim_resize`, after validation).

- A new Ingress naming no class (neither `spec.ingressClassName` nor the
  legacy `kubernetes.io/ingress.class` annotation) gets the IngressClass
  annotated `ingressclass.kubernetes.io/is-default-class: "true"` (the
  newest, should several be), as Kubernetes' DefaultIngressClass does
  (`admit_default_ingress_class`).

- ServiceAccount admission (Kubernetes' plugin/pkg/admission/serviceaccount,
  `admit_service_account`), when the API server issues tokens
  (`--service-account-signing-key-file`): a pod naming a ServiceAccount
  that does not exist is Forbidden (`error looking up service account
  NS/NAME: serviceaccount "NAME" not found`; `default` is looked for a few
  times over about a second, since the ServiceAccount controller makes it
  just after its namespace). Unless `automountServiceAccountToken` is false
  (the pod's, else the account's), the pod gets the projected volume
  `kube-api-access-<5 random characters>` (a serviceAccountToken at `token`
  for 3607 s, `ca.crt` from ConfigMap kube-root-ca.crt, `namespace` from
  the Downward API) mounted read-only at
  /var/run/secrets/kubernetes.io/serviceaccount in every container and init
  container that has no mount of its own there. A pod without
  imagePullSecrets gets the account's. Mirror pods are left alone.

Admission runs after the server has set uid and creationTimestamp, before
defaulting and validation.
"""

from __future__ import annotations

import contextlib
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

import anyio

from kpy.api import errors
from kpy.api.core.v1 import (
    PersistentVolumeClaim,
    Pod,
    ServiceAccount,
    Toleration,
    Volume,
    VolumeMount,
    VolumeProjection,
)
from kpy.api.networking import is_default_class as is_default_ingress_class
from kpy.api.networking.v1 import Ingress, IngressClass
from kpy.api.quantity import Quantity
from kpy.api.scheduling import (
    DEFAULT_PRIORITY_WHEN_NO_DEFAULT_CLASS_EXISTS,
    PREEMPT_LOWER_PRIORITY,
    SYSTEM_CLUSTER_CRITICAL,
    SYSTEM_NODE_CRITICAL,
    SYSTEM_PRIORITY_CLASSES,
)
from kpy.api.scheduling.v1 import PriorityClass
from kpy.api.storage import PV_PROTECTION_FINALIZER, PVC_PROTECTION_FINALIZER, is_default_class
from kpy.api.storage.v1 import StorageClass
from kpy.auth.node import MIRROR_ANNOTATION

if TYPE_CHECKING:
    from collections.abc import Sequence

    from google.protobuf.message import Message

    from kpy.api.scheme import ResourceInfo
    from kpy.apiserver.watch_cache import WatchCache
    from kpy.storage import Store

DEFAULT_SERVICE_ACCOUNT: Final = "default"
NOT_READY_TAINT: Final = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT: Final = "node.kubernetes.io/unreachable"
DEFAULT_TOLERATION_SECONDS: Final = 300


@dataclass(frozen=True, slots=True)
class AdmissionOptions:
    """The API server's admission flags."""

    #: --default-not-ready-toleration-seconds
    not_ready_toleration_seconds: int = DEFAULT_TOLERATION_SECONDS
    #: --default-unreachable-toleration-seconds
    unreachable_toleration_seconds: int = DEFAULT_TOLERATION_SECONDS


DEFAULT_OPTIONS: Final = AdmissionOptions()

_Admit = Callable[[Any, AdmissionOptions], None]


def admit(obj: Message, options: AdmissionOptions = DEFAULT_OPTIONS) -> None:
    """Applies the create-time admission of `obj`'s kind, in place."""
    plugin = _ON_CREATE.get(type(obj).__name__)
    if plugin is not None:
        plugin(obj, options)


def _tolerates(tolerations: Any, key: str) -> bool:
    """Whether some toleration already covers NoExecute taints of `key`."""
    for t in tolerations:
        key_matches = t.key == key or (not t.key and t.operator == "Exists")
        if key_matches and t.effect in ("", "NoExecute"):
            return True
    return False


def _pod(pod: Any, options: AdmissionOptions) -> None:
    spec = pod.spec
    defaults = (
        (NOT_READY_TAINT, options.not_ready_toleration_seconds),
        (UNREACHABLE_TAINT, options.unreachable_toleration_seconds),
    )
    for key, seconds in defaults:
        if not _tolerates(spec.tolerations, key):
            spec.tolerations.append(
                Toleration(
                    key=key, operator="Exists", effect="NoExecute", toleration_seconds=seconds
                )
            )
    # A mirror pod is the agent's copy of a static pod: its spec is left as
    # the node wrote it (Kubernetes' ServiceAccount admission skips it too).
    if not spec.service_account_name and MIRROR_ANNOTATION not in pod.metadata.annotations:
        spec.service_account_name = DEFAULT_SERVICE_ACCOUNT


def _job(job: Any, _options: AdmissionOptions) -> None:
    spec = job.spec
    if spec.manual_selector:
        return
    uid, name = job.metadata.uid, job.metadata.name
    generated = {
        "controller-uid": uid,
        "batch.kubernetes.io/controller-uid": uid,
        "job-name": name,
        "batch.kubernetes.io/job-name": name,
    }
    labels = spec.template.metadata.labels
    for key, value in generated.items():
        labels.setdefault(key, value)
    # As Kubernetes' generateSelector: the uid label joins whatever selector
    # was given, so a selector that does not select this Job's own pods (or a
    # template that contradicts the generated labels) fails validation.
    spec.selector.match_labels.setdefault("batch.kubernetes.io/controller-uid", uid)


def _protected_by(finalizer: str) -> _Admit:
    """Storage object in use protection: the finalizer its controller
    removes only once the object is unused (`kpy.controllers.volume.protection`)."""

    def admit(obj: Any, _options: AdmissionOptions) -> None:
        if finalizer not in obj.metadata.finalizers:
            obj.metadata.finalizers.append(finalizer)

    return admit


_ON_CREATE: Final[dict[str, _Admit]] = {
    "Pod": _pod,
    "Job": _job,
    "PersistentVolumeClaim": _protected_by(PVC_PROTECTION_FINALIZER),
    "PersistentVolume": _protected_by(PV_PROTECTION_FINALIZER),
}


# -- Priority -------------------------------------------------------------------------


class PriorityClasses(Protocol):
    """Where the Priority step reads PriorityClasses (the API server's
    watch cache, falling back to storage for one just created)."""

    async def get(self, name: str) -> PriorityClass | None: ...

    async def list(self) -> Sequence[PriorityClass]: ...


class StoredPriorityClasses:
    """PriorityClasses as the API server holds them: its watch cache, and
    storage for a class the cache has not seen yet (created a moment ago)."""

    def __init__(self, store: Store, info: ResourceInfo, cache: WatchCache) -> None:
        self._store, self._info, self._cache = store, info, cache

    async def get(self, name: str) -> PriorityClass | None:
        found = self._cache.get("", name)
        if found is None:
            try:
                found = await self._store.get(self._info, "", name)
            except errors.NotFound:
                return None
        return found if isinstance(found, PriorityClass) else None

    async def list(self) -> Sequence[PriorityClass]:
        items, _ = self._cache.list()
        return [pc for pc in items if isinstance(pc, PriorityClass)]


_SYSTEM_CLASS_DESCRIPTIONS: Final = {
    SYSTEM_CLUSTER_CRITICAL: "Used for system critical pods that must run in the cluster, "
    "but can be moved to another node if necessary.",
    SYSTEM_NODE_CRITICAL: "Used for system critical pods that must not be moved from their "
    "current node.",
}


async def ensure_system_priority_classes(create: Callable[..., Awaitable[object]]) -> None:
    """Store the built-in PriorityClasses unless they exist (the API
    server's start, as kube-apiserver's scheduling post-start hook does);
    `create(obj, namespace="")` is the registry's create."""
    for name, value in SYSTEM_PRIORITY_CLASSES.items():
        pc = PriorityClass(
            value=value,
            description=_SYSTEM_CLASS_DESCRIPTIONS[name],
            preemption_policy=PREEMPT_LOWER_PRIORITY,
        )
        pc.metadata.name = name
        with contextlib.suppress(errors.AlreadyExists):
            await create(pc, namespace="")


def _builtin(name: str) -> PriorityClass | None:
    value = SYSTEM_PRIORITY_CLASSES.get(name)
    if value is None:
        return None
    pc = PriorityClass(value=value, preemption_policy=PREEMPT_LOWER_PRIORITY)
    pc.metadata.name = name
    return pc


async def _default_class(classes: PriorityClasses) -> PriorityClass | None:
    # Should a race leave two global defaults, the lower value wins, as in Kubernetes.
    defaults = [pc for pc in await classes.list() if pc.global_default]
    return min(defaults, key=lambda pc: pc.value, default=None)


async def admit_priority(obj: Message, classes: PriorityClasses) -> None:
    """Resolve a new Pod's priority from its PriorityClass, in place (see
    the module docstring); other kinds pass untouched. Raises Forbidden."""
    if not isinstance(obj, Pod):
        return
    spec = obj.spec
    # Without any class, the pod's own policy stands (Kubernetes' is nil then).
    policy = spec.preemption_policy or PREEMPT_LOWER_PRIORITY
    if not spec.priority_class_name:
        pc = await _default_class(classes)
        priority = pc.value if pc is not None else DEFAULT_PRIORITY_WHEN_NO_DEFAULT_CLASS_EXISTS
        if pc is not None:
            spec.priority_class_name = pc.metadata.name
            policy = pc.preemption_policy or PREEMPT_LOWER_PRIORITY
    else:
        found = await classes.get(spec.priority_class_name) or _builtin(spec.priority_class_name)
        if found is None:
            raise _forbidden(
                obj, f"no PriorityClass with name {spec.priority_class_name} was found"
            )
        priority = found.value
        policy = found.preemption_policy or PREEMPT_LOWER_PRIORITY
    if spec.HasField("priority") and spec.priority != priority:
        raise _forbidden(
            obj,
            f"the integer value of priority ({spec.priority}) must not be provided in pod spec; "
            f"priority admission controller computed {priority} from the given PriorityClass name",
        )
    spec.priority = priority
    if spec.HasField("preemption_policy") and spec.preemption_policy != policy:
        raise _forbidden(
            obj,
            f"the string value of PreemptionPolicy ({spec.preemption_policy}) must not be "
            f"provided in pod spec; priority admission controller computed {policy} from the "
            "given PriorityClass name",
        )
    spec.preemption_policy = policy


def admit_update(new: Message, old: Message) -> None:
    """On update, a Pod that omits the priority (or preemptionPolicy) that
    admission gave it at creation keeps it, as Kubernetes' Priority
    admission does; a change is then refused by validation."""
    if not isinstance(new, Pod) or not isinstance(old, Pod):
        return
    if not new.spec.HasField("priority") and old.spec.HasField("priority"):
        new.spec.priority = old.spec.priority
    if not new.spec.HasField("preemption_policy") and old.spec.HasField("preemption_policy"):
        new.spec.preemption_policy = old.spec.preemption_policy


# -- DefaultStorageClass and PersistentVolumeClaimResize ------------------------------


class StorageClasses(Protocol):
    """Where the storage steps read StorageClasses (the API server's watch
    cache, falling back to storage for one just created)."""

    async def get(self, name: str) -> StorageClass | None: ...

    async def list(self) -> Sequence[StorageClass]: ...


class StoredStorageClasses:
    """StorageClasses as the API server holds them (see `StoredPriorityClasses`)."""

    def __init__(self, store: Store, info: ResourceInfo, cache: WatchCache) -> None:
        self._store, self._info, self._cache = store, info, cache

    async def get(self, name: str) -> StorageClass | None:
        found = self._cache.get("", name)
        if found is None:
            try:
                found = await self._store.get(self._info, "", name)
            except errors.NotFound:
                return None
        return found if isinstance(found, StorageClass) else None

    async def list(self) -> Sequence[StorageClass]:
        items, _ = self._cache.list()
        return [sc for sc in items if isinstance(sc, StorageClass)]


async def admit_default_storage_class(obj: Message, classes: StorageClasses) -> None:
    """Kubernetes' DefaultStorageClass admission: a new claim that does not
    set `storageClassName` at all gets the default class (the newest, should
    several be annotated default); `storageClassName: ""` asks for no class
    and is kept. Other kinds pass untouched."""
    if not isinstance(obj, PersistentVolumeClaim) or obj.spec.HasField("storage_class_name"):
        return
    defaults = [c for c in await classes.list() if is_default_class(c.metadata.annotations)]
    if defaults:
        newest = max(
            defaults,
            key=lambda c: (c.metadata.creation_timestamp.ToNanoseconds(), c.metadata.name),
        )
        obj.spec.storage_class_name = newest.metadata.name


async def admit_claim_resize(new: Message, old: Message, classes: StorageClasses) -> None:
    """Kubernetes' PersistentVolumeClaimResize admission: a claim asks for
    more storage only if its class allows volume expansion. Forbidden
    otherwise; other kinds and other updates pass."""
    if not isinstance(new, PersistentVolumeClaim) or not isinstance(old, PersistentVolumeClaim):
        return
    if not _grows(new.spec.resources.requests, old.spec.resources.requests):
        return
    sc = await classes.get(old.spec.storage_class_name) if old.spec.storage_class_name else None
    if sc is None or not sc.allow_volume_expansion:
        name = new.metadata.name
        raise errors.Forbidden(
            f'persistentvolumeclaims "{name}" is forbidden: only dynamically provisioned pvc '
            "can be resized and the storageclass that provisions the pvc must support resize",
            kind="persistentvolumeclaims",
            name=name,
        )


def _grows(new: Any, old: Any) -> bool:
    if "storage" not in new or "storage" not in old:
        return False
    try:
        return Quantity.parse(new["storage"].string) > Quantity.parse(old["storage"].string)
    except ValueError:
        return False  # validation names the quantity that does not parse


def _forbidden(pod: Pod, reason: str) -> errors.Forbidden:
    name = pod.metadata.name or pod.metadata.generate_name
    return errors.Forbidden(f'pods "{name}" is forbidden: {reason}', kind="pods", name=name)


# -- DefaultIngressClass --------------------------------------------------------------

#: The annotation that named an Ingress's class before spec.ingressClassName.
LEGACY_INGRESS_CLASS_ANNOTATION: Final = "kubernetes.io/ingress.class"


class IngressClasses(Protocol):
    """Where DefaultIngressClass reads IngressClasses (the API server's watch cache)."""

    async def list(self) -> Sequence[IngressClass]: ...


class StoredIngressClasses:
    """IngressClasses as the API server's watch cache holds them."""

    def __init__(self, cache: WatchCache) -> None:
        self._cache = cache

    async def list(self) -> Sequence[IngressClass]:
        items, _ = self._cache.list()
        return [ic for ic in items if isinstance(ic, IngressClass)]


async def admit_default_ingress_class(obj: Message, classes: IngressClasses) -> None:
    """Kubernetes' DefaultIngressClass admission: a new Ingress that names no
    class gets the default IngressClass (the newest, should several be
    annotated default); without a default it stays classless. Other kinds
    pass untouched."""
    if not isinstance(obj, Ingress) or obj.spec.HasField("ingress_class_name"):
        return
    if LEGACY_INGRESS_CLASS_ANNOTATION in obj.metadata.annotations:
        return
    defaults = [c for c in await classes.list() if is_default_ingress_class(c.metadata.annotations)]
    if defaults:
        newest = max(
            defaults,
            key=lambda c: (c.metadata.creation_timestamp.ToNanoseconds(), c.metadata.name),
        )
        obj.spec.ingress_class_name = newest.metadata.name


# -- ServiceAccount -------------------------------------------------------------------

#: Where the kube-api-access volume is mounted in every container.
SERVICE_ACCOUNT_MOUNT_PATH: Final = "/var/run/secrets/kubernetes.io/serviceaccount"
#: The projected volume's name prefix (Kubernetes' ServiceAccountVolumeName).
API_ACCESS_VOLUME_PREFIX: Final = "kube-api-access-"
#: Kubernetes' WarnOnlyBoundTokenExpirationSeconds: 1 h and 7 s, so that a
#: token of this exact lifetime is recognisable as the one admission asked for.
API_ACCESS_TOKEN_SECONDS: Final = 3607
ROOT_CA_CONFIG_MAP: Final = "kube-root-ca.crt"
#: How often a missing `default` account is looked for (made by the
#: ServiceAccount controller just after its namespace), as Kubernetes' 10.
DEFAULT_ACCOUNT_ATTEMPTS: Final = 10
_SUFFIX_CHARS: Final = "bcdfghjklmnpqrstvwxz2456789"


class ServiceAccounts(Protocol):
    """Where ServiceAccount admission reads accounts (the API server's
    watch cache, falling back to storage for one just created)."""

    async def get(self, namespace: str, name: str) -> ServiceAccount | None: ...


class StoredServiceAccounts:
    """ServiceAccounts as the API server holds them (see `StoredPriorityClasses`)."""

    def __init__(self, store: Store, info: ResourceInfo, cache: WatchCache) -> None:
        self._store, self._info, self._cache = store, info, cache

    async def get(self, namespace: str, name: str) -> ServiceAccount | None:
        found = self._cache.get(namespace, name)
        if found is None:
            try:
                found = await self._store.get(self._info, namespace, name)
            except errors.NotFound:
                return None
        return found if isinstance(found, ServiceAccount) else None


async def admit_service_account(
    obj: Message,
    accounts: ServiceAccounts,
    *,
    retry_interval: Callable[[], float] = lambda: random.uniform(0.1, 0.2),
    suffix: Callable[[], str] = lambda: "".join(secrets.choice(_SUFFIX_CHARS) for _ in range(5)),
) -> None:
    """Kubernetes' ServiceAccount admission of a new Pod, in place (see the
    module docstring); other kinds and mirror pods pass untouched. Raises
    Forbidden for an account that does not exist. Called only by a server
    that issues tokens: without them a pod could never use its account's
    token, and refusing pods for a missing account would change what every
    cluster without a signing key accepts today."""
    if not isinstance(obj, Pod) or MIRROR_ANNOTATION in obj.metadata.annotations:
        return
    spec = obj.spec
    if not spec.service_account_name:
        spec.service_account_name = DEFAULT_SERVICE_ACCOUNT
    namespace, name = obj.metadata.namespace, spec.service_account_name
    account = await _find_account(accounts, namespace, name, retry_interval)
    if account is None:
        raise _forbidden(
            obj,
            f"error looking up service account {namespace}/{name}: "
            f'serviceaccount "{name}" not found',
        )
    if _automount(obj, account):
        mount_api_access(obj, suffix())
    if not spec.image_pull_secrets:
        for ref in account.image_pull_secrets:
            spec.image_pull_secrets.add(name=ref.name)


async def _find_account(
    accounts: ServiceAccounts, namespace: str, name: str, interval: Callable[[], float]
) -> ServiceAccount | None:
    attempts = DEFAULT_ACCOUNT_ATTEMPTS if name == DEFAULT_SERVICE_ACCOUNT else 1
    for attempt in range(attempts):
        if attempt:
            await anyio.sleep(interval())
        found = await accounts.get(namespace, name)
        if found is not None:
            return found
    return None


def _automount(pod: Pod, account: ServiceAccount) -> bool:
    """The pod's preference wins, then the account's; true when neither says."""
    if pod.spec.HasField("automount_service_account_token"):
        return pod.spec.automount_service_account_token
    if account.HasField("automount_service_account_token"):
        return account.automount_service_account_token
    return True


def api_access_volume(name: str) -> Volume:
    """The projected volume Kubernetes gives a pod for its account: a
    token, the cluster CA and the namespace (its TokenVolumeSource)."""
    volume = Volume(name=name)
    projected = volume.projected
    projected.default_mode = 0o644
    token = VolumeProjection()
    token.service_account_token.path = "token"
    token.service_account_token.expiration_seconds = API_ACCESS_TOKEN_SECONDS
    ca = VolumeProjection()
    ca.config_map.name = ROOT_CA_CONFIG_MAP
    ca.config_map.items.add(key="ca.crt", path="ca.crt")
    namespace = VolumeProjection()
    item = namespace.downward_api.items.add(path="namespace")
    item.field_ref.api_version = "v1"
    item.field_ref.field_path = "metadata.namespace"
    projected.sources.extend([token, ca, namespace])
    return volume


def mount_api_access(pod: Pod, suffix: str) -> None:
    """Mounts the kube-api-access volume (one the pod has already, by its
    prefix, else a new one named with `suffix`) read-only at
    SERVICE_ACCOUNT_MOUNT_PATH in every container and init container with
    no mount there; the volume is added only if some container mounts it."""
    spec = pod.spec
    existing = next(
        (v.name for v in spec.volumes if v.name.startswith(API_ACCESS_VOLUME_PREFIX)), None
    )
    name = existing or API_ACCESS_VOLUME_PREFIX + suffix
    mounted = False
    for container in (*spec.init_containers, *spec.containers):
        if any(m.mount_path == SERVICE_ACCOUNT_MOUNT_PATH for m in container.volume_mounts):
            continue
        container.volume_mounts.append(
            VolumeMount(name=name, read_only=True, mount_path=SERVICE_ACCOUNT_MOUNT_PATH)
        )
        mounted = True
    if mounted and existing is None:
        spec.volumes.append(api_access_volume(name))
