"""The Endpoints controller (Kubernetes' pkg/controller/endpoint).

Keeps one Endpoints object per Service with a selector, named as the
Service, listing the pods the selector matches in the Service's namespace:

- Handlers: a Service change enqueues it; a pod change enqueues every
  Service whose selector matches the pod before or after the change, when
  something the endpoints show changed (IP, readiness, labels, node,
  deletion). No polling: a readiness probe that fails reaches the agent's
  status update, then the pod watch, then this controller.
- `sync(key)`: a Service gone deletes its Endpoints; a Service without a
  selector is left alone (its Endpoints are the user's); otherwise every
  matching pod with an IP is an address, in `addresses` when Ready (or the
  Service publishes not-ready addresses), else in `notReadyAddresses`.
  Finished pods are left out, and so are terminating pods unless the
  Service publishes not-ready addresses, as in Kubernetes. Each Service port
  is resolved per pod (a named targetPort is looked up in the pod's
  container ports; a pod without it gets no address for that port), and
  addresses with the same ports share one subset (Kubernetes' RepackSubsets).
  Nothing is written when the stored Endpoints already say the same.

The selection and port rules are shared with the EndpointSlice controller.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from kpy.api import errors, intstr
from kpy.api.core.v1 import (
    EndpointAddress,
    EndpointPort,
    Endpoints,
    EndpointSubset,
    ObjectReference,
    Pod,
    Service,
)
from kpy.api.labels import selector_from_set
from kpy.cache.informer import EventHandler
from kpy.cache.store import split_key
from kpy.controllers.base import Controller, deleted_object
from kpy.controllers.ownership import is_pod_ready

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kpy.cache.informer import Lister, SharedInformer
    from kpy.client import ClientProtocol
    from kpy.controllers.base import ControllerContext
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers.endpoints")

__all__ = [
    "HEADLESS_LABEL",
    "EndpointsController",
    "PodEndpoint",
    "new_endpoints_controller",
    "pod_endpoints",
    "resolve_port",
    "services_selecting",
]

HEADLESS_LABEL: Final = "service.kubernetes.io/headless"


# -- shared with the EndpointSlice controller ------------------------------------------------


def resolve_port(pod: Pod, port: Any) -> int | None:
    """The pod's port for the Service port `port`: a number as is, a name
    looked up among the pod's container ports of the same protocol; None when
    the pod has no such port (Kubernetes' podutil.FindPort)."""
    target = intstr.to_python(port.target_port) if port.HasField("target_port") else port.port
    if isinstance(target, int):
        return target
    if target.isdigit():
        return int(target)
    protocol = port.protocol or "TCP"
    for container in pod.spec.containers:
        for cport in container.ports:
            if cport.name == target and (cport.protocol or "TCP") == protocol:
                return int(cport.container_port)
    return None


@dataclass(frozen=True, slots=True)
class PodEndpoint:
    """One pod as a Service's endpoint: whether it is ready, serving and
    terminating (EndpointSlice's conditions), and its resolved ports (one
    per Service port it has, as (name, port, protocol, appProtocol))."""

    pod: Pod
    ready: bool
    serving: bool
    terminating: bool
    ports: tuple[tuple[str, int, str, str], ...]


def pod_endpoints(
    svc: Service, pods: Iterable[Pod], *, keep_terminating: bool
) -> list[PodEndpoint]:
    """The pods that are endpoints of `svc`, sorted by IP then name: those
    with an IP that have not finished; terminating ones only with
    `keep_terminating` (the slice controller keeps them, marked) or when the
    Service publishes not-ready addresses."""
    publish = svc.spec.publish_not_ready_addresses
    out: list[PodEndpoint] = []
    for pod in pods:
        if not pod.status.pod_ip or pod.status.phase in ("Succeeded", "Failed"):
            continue
        terminating = pod.metadata.HasField("deletion_timestamp")
        if terminating and not (keep_terminating or publish):
            continue
        ready = is_pod_ready(pod)
        ports = []
        for port in svc.spec.ports:
            number = resolve_port(pod, port)
            if number is not None:
                ports.append((port.name, number, port.protocol or "TCP", port.app_protocol))
        out.append(
            PodEndpoint(
                pod,
                ready=(ready and not terminating) or publish,
                serving=ready,
                terminating=terminating,
                ports=tuple(ports),
            )
        )
    out.sort(key=lambda e: (_ip_order(e.pod.status.pod_ip), e.pod.metadata.name))
    return out


def _ip_order(ip: str) -> tuple[int, int]:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return (9, 0)
    return (address.version, int(address))


def services_selecting(services: Lister[Service], pod: Pod) -> list[Service]:
    """The Services of the pod's namespace whose selector matches it."""
    labels = dict(pod.metadata.labels)
    return [
        svc
        for svc in services.list(pod.metadata.namespace)
        if svc.spec.selector and selector_from_set(dict(svc.spec.selector)).matches(labels)
    ]


def endpoint_changed(old: Pod, new: Pod) -> bool:
    """Whether a pod update changes what a Service's endpoints show of it."""
    return (
        old.status.pod_ip != new.status.pod_ip
        or is_pod_ready(old) != is_pod_ready(new)
        or old.metadata.labels != new.metadata.labels
        or old.spec.node_name != new.spec.node_name
        or old.status.phase != new.status.phase
        or old.metadata.HasField("deletion_timestamp")
        != new.metadata.HasField("deletion_timestamp")
        or old.spec.hostname != new.spec.hostname
        or old.spec.subdomain != new.spec.subdomain
    )


def endpoint_port(message: type[Any], port: tuple[str, int, str, str]) -> Any:
    """`port` (name, number, protocol, appProtocol) as an Endpoints' or an
    EndpointSlice's port message, leaving out the empty name and appProtocol."""
    name, number, protocol, app_protocol = port
    out = message(port=number, protocol=protocol)
    if name:
        out.name = name
    if app_protocol:
        out.app_protocol = app_protocol
    return out


def pod_reference(pod: Pod) -> ObjectReference:
    return ObjectReference(
        kind="Pod", namespace=pod.metadata.namespace, name=pod.metadata.name, uid=pod.metadata.uid
    )


def pod_hostname(pod: Pod, svc: Service) -> str:
    """A pod's hostname, published when its subdomain is the Service (as for
    StatefulSet pods under their headless Service)."""
    if pod.spec.hostname and pod.spec.subdomain == svc.metadata.name:
        return pod.spec.hostname
    return ""


class PodServiceHandlers:
    """Wires a Service informer and a pod informer to a controller's queue:
    a Service change enqueues it, a pod change the Services selecting it."""

    def __init__(
        self, controller: Controller, services: SharedInformer[Service], pods: SharedInformer[Pod]
    ) -> None:
        self._controller = controller
        self._services: Lister[Service] = services.lister()
        services.add_event_handler(controller.enqueue_handler())
        pods.add_event_handler(
            EventHandler(
                on_add=lambda pod, _initial: self._enqueue_for(pod),
                on_update=self._update_pod,
                on_delete=lambda obj: self._enqueue_for(deleted_object(obj)),
            )
        )

    def _enqueue_for(self, pod: Pod) -> None:
        for svc in services_selecting(self._services, pod):
            self._controller.enqueue(svc)

    def _update_pod(self, old: Pod, new: Pod) -> None:
        if old.metadata.resource_version == new.metadata.resource_version:
            return
        if not endpoint_changed(old, new):
            return
        keys = {self._key(s) for s in services_selecting(self._services, new)}
        if old.metadata.labels != new.metadata.labels:
            keys |= {self._key(s) for s in services_selecting(self._services, old)}
        for key in sorted(keys):
            self._controller.enqueue_key(key)

    @staticmethod
    def _key(svc: Service) -> str:
        return f"{svc.metadata.namespace}/{svc.metadata.name}"


# -- the controller --------------------------------------------------------------------------


class EndpointsController(Controller):
    name = "endpoint"

    def __init__(
        self,
        client: ClientProtocol,
        services: SharedInformer[Service],
        pods: SharedInformer[Pod],
        endpoints: SharedInformer[Endpoints],
        *,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(metrics=metrics)
        self._client = client
        self._services: Lister[Service] = services.lister()
        self._pods: Lister[Pod] = pods.lister()
        self._endpoints: Lister[Endpoints] = endpoints.lister()
        self._handlers = PodServiceHandlers(self, services, pods)
        # An Endpoints changed or deleted by someone else is put back; those
        # found at start are checked once, so one whose Service went while
        # no controller ran is deleted (Kubernetes' checkLeftoverEndpoints).
        endpoints.add_event_handler(
            EventHandler(
                on_add=lambda ep, initial: self.enqueue(ep) if initial else None,
                on_update=lambda _old, new: self.enqueue(new),
                on_delete=self.enqueue,
            )
        )

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        svc = self._services.get(namespace, name)
        if svc is None:
            await self._delete(namespace, name)
            return
        if not svc.spec.selector:
            return  # the user's Endpoints: not ours to write
        selector = selector_from_set(dict(svc.spec.selector))
        pods = self._pods.list(namespace, selector)
        desired = Endpoints(subsets=endpoint_subsets(svc, pods))
        desired.metadata.name, desired.metadata.namespace = name, namespace
        desired.metadata.labels.update(svc.metadata.labels)
        if svc.spec.cluster_ip == "None":
            desired.metadata.labels[HEADLESS_LABEL] = ""
        current = self._endpoints.get(namespace, name)
        if current is None:
            try:
                await self._client.create(desired)
            except errors.AlreadyExists:
                current = await self._client.get(Endpoints, name, namespace=namespace)
            else:
                return
        if list(current.subsets) == list(desired.subsets) and dict(current.metadata.labels) == dict(
            desired.metadata.labels
        ):
            return
        updated = Endpoints()
        updated.CopyFrom(current)
        del updated.subsets[:]
        updated.subsets.extend(desired.subsets)
        updated.metadata.labels.clear()
        updated.metadata.labels.update(desired.metadata.labels)
        await self._client.update(updated)

    async def _delete(self, namespace: str, name: str) -> None:
        if self._endpoints.get(namespace, name) is None:
            return
        with contextlib.suppress(errors.NotFound):
            await self._client.delete(Endpoints, name, namespace=namespace)


def endpoint_subsets(svc: Service, pods: Iterable[Pod]) -> list[EndpointSubset]:
    """The subsets of `svc`'s Endpoints: each address with the ports it has,
    then addresses with the same ports grouped into one subset."""
    groups: dict[tuple[tuple[str, int, str, str], ...], EndpointSubset] = {}
    for endpoint in pod_endpoints(svc, pods, keep_terminating=False):
        if svc.spec.ports and not endpoint.ports:
            continue  # the pod has none of the Service's ports
        ports = tuple(sorted(endpoint.ports))
        subset = groups.get(ports)
        if subset is None:
            subset = groups[ports] = EndpointSubset(
                ports=[endpoint_port(EndpointPort, port) for port in ports]
            )
        pod = endpoint.pod
        address = EndpointAddress(ip=pod.status.pod_ip, target_ref=pod_reference(pod))
        if pod.spec.node_name:
            address.node_name = pod.spec.node_name
        hostname = pod_hostname(pod, svc)
        if hostname:
            address.hostname = hostname
        (subset.addresses if endpoint.ready else subset.not_ready_addresses).append(address)
    return [groups[k] for k in sorted(groups)]


def new_endpoints_controller(ctx: ControllerContext) -> EndpointsController:
    return EndpointsController(
        ctx.client,
        ctx.informers.informer(Service),
        ctx.informers.informer(Pod),
        ctx.informers.informer(Endpoints),
        metrics=ctx.metrics,
    )
