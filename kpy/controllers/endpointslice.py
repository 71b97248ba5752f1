"""The EndpointSlice controller (Kubernetes' pkg/controller/endpointslice).

Keeps the EndpointSlices (discovery.k8s.io/v1) of every Service with a
selector: the same pods as the Endpoints controller, plus terminating ones,
each endpoint with Kubernetes' conditions:

- `serving`: the pod is Ready; `terminating`: it has a deletionTimestamp;
  `ready`: serving and not terminating (always true when the Service
  publishes not-ready addresses).
- Endpoints with the same resolved ports share slices; a slice holds at
  most `max_endpoints` (100) of them.
- Every slice is labelled `kubernetes.io/service-name` and
  `endpointslice.kubernetes.io/managed-by`, and owned by its Service (so the
  garbage collector removes it with the Service; this controller also
  deletes the slices of a Service it finds gone).
- `sync(key)` compares the slices the controller manages for the Service
  with the ones wanted, port set by port set: slices already right are left
  alone, the others updated in place, missing ones created (generateName
  `<service>-`), surplus ones deleted. A Service without a selector is left
  alone, as in Kubernetes.

Handlers and the selection rules are the Endpoints controller's.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Final

from kpy.api import errors
from kpy.api.core.v1 import Pod, Service
from kpy.api.discovery.v1 import Endpoint, EndpointConditions, EndpointPort, EndpointSlice
from kpy.api.labels import selector_from_set
from kpy.cache.informer import EventHandler
from kpy.cache.store import split_key
from kpy.controllers.base import Controller, deleted_object
from kpy.controllers.endpoints import (
    HEADLESS_LABEL,
    PodEndpoint,
    PodServiceHandlers,
    endpoint_port,
    pod_endpoints,
    pod_hostname,
    pod_reference,
)
from kpy.controllers.ownership import new_controller_ref

if TYPE_CHECKING:
    from kpy.cache.informer import Lister, SharedInformer
    from kpy.client import ClientProtocol
    from kpy.controllers.base import ControllerContext
    from kpy.metrics import Metrics

log = logging.getLogger("kpy.controllers.endpointslice")

__all__ = [
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "MAX_ENDPOINTS_PER_SLICE",
    "SERVICE_NAME_LABEL",
    "EndpointSliceController",
    "desired_slices",
    "new_endpointslice_controller",
]

SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
MANAGED_BY_LABEL: Final = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY: Final = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE: Final = 100

Ports = tuple[tuple[str, int, str, str], ...]


def desired_slices(
    svc: Service, pods: list[Pod], max_endpoints: int = MAX_ENDPOINTS_PER_SLICE
) -> list[tuple[Ports, list[Endpoint]]]:
    """The slices `svc` should have: per port set, its endpoints in chunks of
    at most `max_endpoints`, in a stable order (port sets sorted, endpoints
    by IP)."""
    groups: dict[Ports, list[Endpoint]] = {}
    for endpoint in pod_endpoints(svc, pods, keep_terminating=True):
        groups.setdefault(tuple(sorted(endpoint.ports)), []).append(_endpoint(svc, endpoint))
    out: list[tuple[Ports, list[Endpoint]]] = []
    for ports in sorted(groups):
        endpoints = groups[ports]
        for start in range(0, len(endpoints), max_endpoints):
            out.append((ports, endpoints[start : start + max_endpoints]))
    if not out:
        # Kubernetes keeps one empty slice, so a reader tells "no endpoints"
        # from "not yet synced".
        out.append(((), []))
    return out


def _endpoint(svc: Service, endpoint: PodEndpoint) -> Endpoint:
    pod = endpoint.pod
    out = Endpoint(
        addresses=[pod.status.pod_ip],
        conditions=EndpointConditions(
            ready=endpoint.ready, serving=endpoint.serving, terminating=endpoint.terminating
        ),
        target_ref=pod_reference(pod),
    )
    if pod.spec.node_name:
        out.node_name = pod.spec.node_name
    hostname = pod_hostname(pod, svc)
    if hostname:
        out.hostname = hostname
    return out


class EndpointSliceController(Controller):
    name = "endpointslice"

    def __init__(
        self,
        client: ClientProtocol,
        services: SharedInformer[Service],
        pods: SharedInformer[Pod],
        slices: SharedInformer[EndpointSlice],
        *,
        metrics: Metrics | None = None,
        max_endpoints: int = MAX_ENDPOINTS_PER_SLICE,
    ) -> None:
        super().__init__(metrics=metrics)
        self._client = client
        self._services: Lister[Service] = services.lister()
        self._pods: Lister[Pod] = pods.lister()
        self._slices: Lister[EndpointSlice] = slices.lister()
        self._max = max_endpoints
        self._handlers = PodServiceHandlers(self, services, pods)
        # A managed slice changed or deleted by someone else is put back;
        # those found at start are checked once (their Service may be gone).
        slices.add_event_handler(
            EventHandler(
                on_add=lambda s, initial: self._enqueue_owner(s) if initial else None,
                on_update=lambda _old, new: self._enqueue_owner(new),
                on_delete=self._enqueue_owner,
            )
        )

    def _enqueue_owner(self, obj: object) -> None:
        slice_ = deleted_object(obj)
        service = slice_.metadata.labels.get(SERVICE_NAME_LABEL)
        if service and slice_.metadata.labels.get(MANAGED_BY_LABEL) == MANAGED_BY:
            self.enqueue_key(f"{slice_.metadata.namespace}/{service}")

    def _managed(self, namespace: str, name: str) -> list[EndpointSlice]:
        selector = selector_from_set({SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: MANAGED_BY})
        return sorted(self._slices.list(namespace, selector), key=lambda s: s.metadata.name)

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        svc = self._services.get(namespace, name)
        existing = self._managed(namespace, name)
        if svc is None:
            for stale in existing:
                await self._delete(stale)
            return
        if not svc.spec.selector:
            return
        pods = self._pods.list(namespace, selector_from_set(dict(svc.spec.selector)))
        wanted = desired_slices(svc, pods, self._max)
        labels = {**svc.metadata.labels, SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: MANAGED_BY}
        if svc.spec.cluster_ip == "None":
            labels[HEADLESS_LABEL] = ""
        by_ports: dict[Ports, list[EndpointSlice]] = {}
        for found in existing:
            by_ports.setdefault(_ports_of(found), []).append(found)
        for ports, endpoints in wanted:
            reusable = by_ports.get(ports)
            await self._write(svc, reusable.pop(0) if reusable else None, ports, endpoints, labels)
        for leftovers in by_ports.values():
            for stale in leftovers:
                await self._delete(stale)

    async def _write(
        self,
        svc: Service,
        current: EndpointSlice | None,
        ports: Ports,
        endpoints: list[Endpoint],
        labels: dict[str, str],
    ) -> None:
        desired = EndpointSlice(
            address_type="IPv4",
            endpoints=endpoints,
            ports=[endpoint_port(EndpointPort, p) for p in ports],
        )
        if current is None:
            desired.metadata.generate_name = f"{svc.metadata.name}-"
            desired.metadata.namespace = svc.metadata.namespace
            desired.metadata.labels.update(labels)
            desired.metadata.owner_references.append(new_controller_ref(svc, "v1", "Service"))
            await self._client.create(desired)
            return
        if (
            list(current.endpoints) == list(desired.endpoints)
            and list(current.ports) == list(desired.ports)
            and dict(current.metadata.labels) == labels
        ):
            return
        updated = EndpointSlice()
        updated.CopyFrom(current)
        updated.address_type = desired.address_type
        del updated.endpoints[:]
        updated.endpoints.extend(desired.endpoints)
        del updated.ports[:]
        updated.ports.extend(desired.ports)
        updated.metadata.labels.clear()
        updated.metadata.labels.update(labels)
        await self._client.update(updated)

    async def _delete(self, slice_: EndpointSlice) -> None:
        with contextlib.suppress(errors.NotFound):
            await self._client.delete(
                EndpointSlice, slice_.metadata.name, namespace=slice_.metadata.namespace
            )


def _ports_of(slice_: EndpointSlice) -> Ports:
    return tuple(
        sorted((p.name, p.port, p.protocol or "TCP", p.app_protocol) for p in slice_.ports)
    )


def new_endpointslice_controller(ctx: ControllerContext) -> EndpointSliceController:
    return EndpointSliceController(
        ctx.client,
        ctx.informers.informer(Service),
        ctx.informers.informer(Pod),
        ctx.informers.informer(EndpointSlice),
        metrics=ctx.metrics,
    )
