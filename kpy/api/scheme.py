"""The scheme: which kinds exist, and how each is named and stored.

A `ResourceInfo` ties a kind (`Deployment`) to its group and version
(`apps/v1`), its resource plural (`deployments`), its short names (`deploy`),
whether it lives in a namespace, and the protobuf message that holds it. The
codec, storage keys, the API server and kpyctl all read this one table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from google.protobuf.message import Message


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """How one kind is served and stored. Instances are shared; never mutate."""

    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool
    message: type[Message]
    short_names: tuple[str, ...] = ()
    #: Whether status is written only through the `status` subresource: the
    #: main path then keeps the stored status and the status path keeps the
    #: rest. False for kinds whose status, if any, is plain data (ConfigMap,
    #: Lease, ...). The API server and `kpy.client.fake` both read it.
    status_subresource: bool = True
    #: custom kinds: the CRD's singular name (built-in kinds: the kind, lower case)
    singular_name: str = ""
    #: custom kinds: the CRD's categories (`kpyctl get all` style groupings)
    categories: tuple[str, ...] = ()
    #: the version objects are stored under (custom kinds with several
    #: versions share one storage version; "" means `version`)
    storage_version: str = ""
    #: applied to every object read from storage (a custom kind's schema
    #: defaults, which Kubernetes applies on read as well as on write)
    on_read: Callable[[Any], None] | None = None

    @property
    def api_version(self) -> str:
        """apiVersion as written in manifests: `v1` for core, else `group/version`."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.singular_name or self.kind.lower()

    @property
    def stored_version(self) -> str:
        """The version segment of this resource's etcd keys."""
        return self.storage_version or self.version

    @property
    def storage_group(self) -> str:
        """The group as spelled in etcd keys: the core group is `core`."""
        return self.group or "core"

    @property
    def group_resource(self) -> str:
        """`deployments.apps`, or just `pods` for the core group."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


class Scheme:
    """The registry of kinds. Lookups are by (apiVersion, kind), by message
    type, or by any name a user may type for a resource (plural, singular,
    short name, `plural.group`)."""

    def __init__(self) -> None:
        self._by_kind: dict[tuple[str, str], ResourceInfo] = {}
        self._by_message: dict[type[Message], ResourceInfo] = {}
        self._by_name: dict[str, list[ResourceInfo]] = {}

    def register(self, info: ResourceInfo) -> None:
        key = (info.api_version, info.kind)
        if key in self._by_kind:
            raise ValueError(f"{info.kind} in {info.api_version} is registered twice")
        self._by_kind[key] = info
        self._by_message.setdefault(info.message, info)
        names = {info.plural, info.singular, info.group_resource, *info.short_names}
        if info.group:
            names.add(f"{info.plural}.{info.version}.{info.group}")
        for name in names:
            self._by_name.setdefault(name.lower(), []).append(info)

    def register_custom(self, info: ResourceInfo) -> None:
        """Registers a custom kind, replacing what was registered for its
        group, version and kind (a CRD whose names changed)."""
        self.unregister(info.api_version, info.kind)
        self.register(info)

    def unregister(self, api_version: str, kind: str) -> None:
        """Forgets a kind (a CRD deleted or no longer serving the version)."""
        info = self._by_kind.pop((api_version, kind), None)
        if info is None:
            return
        if self._by_message.get(info.message) is info:
            del self._by_message[info.message]
        for name, infos in list(self._by_name.items()):
            kept = [i for i in infos if i is not info]
            if kept:
                self._by_name[name] = kept
            else:
                del self._by_name[name]

    def lookup(self, api_version: str, kind: str) -> ResourceInfo | None:
        return self._by_kind.get((api_version, kind))

    def versions_of(self, kind: str) -> list[str]:
        """Every apiVersion that serves `kind` (to explain a wrong apiVersion)."""
        return [api for (api, k) in self._by_kind if k == kind]

    def for_message(self, message: type[Message]) -> ResourceInfo:
        try:
            return self._by_message[message]
        except KeyError:
            raise KeyError(f"{message.__name__} is not a registered kind") from None

    def resolve(self, name: str) -> ResourceInfo:
        """The resource a user means by `pods`, `pod`, `po`, `deployments.apps`
        or `Deployment`; raises KeyError with a hint when it is unknown or
        ambiguous."""
        found = self._by_name.get(name.lower(), [])
        if not found:
            raise KeyError(f'the server doesn\'t have a resource type "{name}"')
        return found[0]

    def all(self) -> list[ResourceInfo]:
        return list(self._by_kind.values())


def _build_default() -> Scheme:
    from kpy.api.apiextensions import v1 as apiextensions_v1
    from kpy.api.apps import v1 as apps_v1
    from kpy.api.autoscaling import v2 as autoscaling_v2
    from kpy.api.batch import v1 as batch_v1
    from kpy.api.coordination import v1 as coordination_v1
    from kpy.api.core import v1 as core_v1
    from kpy.api.discovery import v1 as discovery_v1
    from kpy.api.networking import v1 as networking_v1
    from kpy.api.policy import v1 as policy_v1
    from kpy.api.rbac import v1 as rbac_v1
    from kpy.api.scheduling import v1 as scheduling_v1
    from kpy.api.storage import v1 as storage_v1

    s = Scheme()
    R = ResourceInfo
    for info in (
        R("", "v1", "Namespace", "namespaces", False, core_v1.Namespace, ("ns",)),
        R("", "v1", "Pod", "pods", True, core_v1.Pod, ("po",)),
        R("", "v1", "Node", "nodes", False, core_v1.Node, ("no",)),
        R("", "v1", "Service", "services", True, core_v1.Service, ("svc",)),
        R(
            "",
            "v1",
            "Endpoints",
            "endpoints",
            True,
            core_v1.Endpoints,
            ("ep",),
            status_subresource=False,
        ),
        R(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            True,
            core_v1.ConfigMap,
            ("cm",),
            status_subresource=False,
        ),
        R("", "v1", "Secret", "secrets", True, core_v1.Secret, status_subresource=False),
        R(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            True,
            core_v1.ServiceAccount,
            ("sa",),
            status_subresource=False,
        ),
        R("", "v1", "Event", "events", True, core_v1.Event, ("ev",), status_subresource=False),
        R(
            "",
            "v1",
            "PersistentVolume",
            "persistentvolumes",
            False,
            core_v1.PersistentVolume,
            ("pv",),
        ),
        R(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            True,
            core_v1.PersistentVolumeClaim,
            ("pvc",),
        ),
        R(
            "",
            "v1",
            "ReplicationController",
            "replicationcontrollers",
            True,
            core_v1.ReplicationController,
            ("rc",),
        ),
        R(
            "storage.k8s.io",
            "v1",
            "StorageClass",
            "storageclasses",
            False,
            storage_v1.StorageClass,
            ("sc",),
            status_subresource=False,
        ),
        R(
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            True,
            discovery_v1.EndpointSlice,
            status_subresource=False,
        ),
        R("networking.k8s.io", "v1", "Ingress", "ingresses", True, networking_v1.Ingress, ("ing",)),
        R(
            "networking.k8s.io",
            "v1",
            "IngressClass",
            "ingressclasses",
            False,
            networking_v1.IngressClass,
            status_subresource=False,
        ),
        R("apps", "v1", "ReplicaSet", "replicasets", True, apps_v1.ReplicaSet, ("rs",)),
        R("apps", "v1", "Deployment", "deployments", True, apps_v1.Deployment, ("deploy",)),
        R("apps", "v1", "StatefulSet", "statefulsets", True, apps_v1.StatefulSet, ("sts",)),
        R("apps", "v1", "DaemonSet", "daemonsets", True, apps_v1.DaemonSet, ("ds",)),
        R(
            "apps",
            "v1",
            "ControllerRevision",
            "controllerrevisions",
            True,
            apps_v1.ControllerRevision,
            status_subresource=False,
        ),
        R("batch", "v1", "Job", "jobs", True, batch_v1.Job),
        R("batch", "v1", "CronJob", "cronjobs", True, batch_v1.CronJob, ("cj",)),
        R(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            True,
            autoscaling_v2.HorizontalPodAutoscaler,
            ("hpa",),
        ),
        R(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            True,
            policy_v1.PodDisruptionBudget,
            ("pdb",),
        ),
        R(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            True,
            coordination_v1.Lease,
            status_subresource=False,
        ),
        R(
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            "priorityclasses",
            False,
            scheduling_v1.PriorityClass,
            ("pc",),
            status_subresource=False,
        ),
        R(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            True,
            rbac_v1.Role,
            status_subresource=False,
        ),
        R(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            False,
            rbac_v1.ClusterRole,
            status_subresource=False,
        ),
        R(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            True,
            rbac_v1.RoleBinding,
            status_subresource=False,
        ),
        R(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            False,
            rbac_v1.ClusterRoleBinding,
            status_subresource=False,
        ),
        R(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            False,
            apiextensions_v1.CustomResourceDefinition,
            ("crd", "crds"),
        ),
    ):
        s.register(info)
    return s


scheme = _build_default()
"""The kinds kpy serves. Custom resources are added at run time."""
