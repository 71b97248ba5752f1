"""The controller half of kpy-ingress: informers on Ingresses,
IngressClasses, Services, EndpointSlices and Secrets; on any change the
routing table is rebuilt from the informers' stores and swapped into the
proxy, and every served Ingress gets the proxy's address in its status.

Which Ingresses it serves: those whose `spec.ingressClassName` names an
IngressClass with `spec.controller` equal to this controller's name
(`kpy.io/ingress`), and those naming no class (nor the legacy
`kubernetes.io/ingress.class` annotation) while one of its classes is the
default. Admission gives a new classless Ingress the default class; the
second rule covers Ingresses stored before the class was made default.

Changes are coalesced: a burst of events (an EndpointSlice per Service at
start) costs one rebuild. A failed status write is retried on the next
resync (`resync_period`), so a conflict or an unreachable server only
delays the status. An Ingress it stops serving (its class changed) loses
the address entry this controller wrote, and keeps any other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import anyio

from kpy.api import errors
from kpy.api.core.v1 import Secret, Service
from kpy.api.discovery.v1 import EndpointSlice
from kpy.api.networking import is_default_class
from kpy.api.networking.v1 import (
    Ingress,
    IngressClass,
    IngressLoadBalancerIngress,
    IngressPortStatus,
)
from kpy.cache.informer import EventHandler, SharedInformerFactory
from kpy.ingress._routes import build_table

if TYPE_CHECKING:
    from kpy.client import ClientProtocol
    from kpy.ingress._proxy import IngressProxy

log = logging.getLogger("kpy.ingress.controller")

__all__ = ["CONTROLLER_NAME", "IngressController", "serves"]

CONTROLLER_NAME: Final = "kpy.io/ingress"
LEGACY_CLASS_ANNOTATION: Final = "kubernetes.io/ingress.class"
TLS_SECRET_TYPE: Final = "kubernetes.io/tls"


@dataclass(frozen=True, slots=True)
class StatusAddress:
    """What the controller writes into status.loadBalancer.ingress[0]."""

    ip: str
    http_port: int
    https_port: int

    def entry(self) -> IngressLoadBalancerIngress:
        return IngressLoadBalancerIngress(
            ip=self.ip,
            ports=[
                IngressPortStatus(port=self.http_port, protocol="TCP"),
                IngressPortStatus(port=self.https_port, protocol="TCP"),
            ],
        )


def serves(ing: Ingress, classes: list[IngressClass], controller: str) -> bool:
    """Whether the controller named `controller` serves `ing` (see the module docstring)."""
    mine = [c for c in classes if c.spec.controller == controller]
    if ing.spec.HasField("ingress_class_name"):
        return any(c.metadata.name == ing.spec.ingress_class_name for c in mine)
    if LEGACY_CLASS_ANNOTATION in ing.metadata.annotations:
        return any(
            c.metadata.name == ing.metadata.annotations[LEGACY_CLASS_ANNOTATION] for c in mine
        )
    return any(is_default_class(c.metadata.annotations) for c in mine)


class IngressController:
    def __init__(
        self,
        client: ClientProtocol,
        proxy: IngressProxy,
        address: StatusAddress,
        *,
        controller: str = CONTROLLER_NAME,
        resync_period: float = 30.0,
    ) -> None:
        self._client = client
        self._proxy = proxy
        self._address = address
        self._controller = controller
        self._resync = resync_period
        self._factory = SharedInformerFactory(client)
        self._ingresses = self._factory.informer(Ingress)
        self._classes = self._factory.informer(IngressClass)
        self._services = self._factory.informer(Service)
        self._slices = self._factory.informer(EndpointSlice)
        self._secrets = self._factory.informer(Secret)
        self._changed = anyio.Event()
        handler: EventHandler[Any] = EventHandler(
            on_add=lambda _o, _i: self._changed.set(),
            on_update=lambda _o, _n: self._changed.set(),
            on_delete=lambda _o: self._changed.set(),
        )
        for informer in (
            self._ingresses,
            self._classes,
            self._services,
            self._slices,
            self._secrets,
        ):
            informer.add_event_handler(handler)
        #: set once the first table is in the proxy
        self.synced = anyio.Event()

    async def run(self) -> None:
        """Runs until cancelled."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._factory.run)
            await self._factory.wait_for_cache_sync()
            while True:
                self._changed = anyio.Event()
                served = self.sync()
                self.synced.set()
                await self._write_statuses(served)
                await self._clear_statuses(served)
                with anyio.move_on_after(self._resync):
                    await self._changed.wait()
                await anyio.sleep(0.05)  # coalesce a burst of events into one rebuild

    def sync(self) -> list[Ingress]:
        """Rebuilds the table from the stores and swaps it in; returns the
        Ingresses it serves."""
        classes = self._classes.lister().list()
        served = [
            i for i in self._ingresses.lister().list() if serves(i, classes, self._controller)
        ]
        secrets = [s for s in self._secrets.lister().list() if s.type == TLS_SECRET_TYPE]
        table = build_table(
            served, self._services.lister().list(), self._slices.lister().list(), secrets
        )
        self._proxy.swap(table)
        log.debug("routing table swapped", extra={"ingresses": len(served)})
        return served

    async def _write_statuses(self, served: list[Ingress]) -> None:
        want = self._address.entry()
        for ing in served:
            current = ing.status.load_balancer.ingress
            if len(current) == 1 and current[0] == want:
                continue
            if await self._set_status(ing, [want]):
                log.info("ingress %s served at %s", _key(ing), self._address.ip)

    async def _clear_statuses(self, served: list[Ingress]) -> None:
        """An Ingress this controller no longer serves (its class changed or
        went) loses the address this controller wrote, and only that one."""
        mine = self._address.entry()
        keys = {_key(i) for i in served}
        for ing in self._ingresses.lister().list():
            current = ing.status.load_balancer.ingress
            if _key(ing) in keys or not any(e == mine for e in current):
                continue
            if await self._set_status(ing, [e for e in current if e != mine]):
                log.info("ingress %s no longer served here", _key(ing))

    async def _set_status(self, ing: Ingress, entries: list[IngressLoadBalancerIngress]) -> bool:
        updated = Ingress()
        updated.CopyFrom(ing)
        del updated.status.load_balancer.ingress[:]
        updated.status.load_balancer.ingress.extend(entries)
        try:
            await self._client.update_status(updated)
        except (errors.Conflict, errors.NotFound):
            self._changed.set()  # the informer brings the newer version
        except (errors.StatusError, OSError) as e:
            log.warning("writing the status of ingress %s failed: %s", _key(ing), e)
        else:
            return True
        return False


def _key(ing: Ingress) -> str:
    return f"{ing.metadata.namespace}/{ing.metadata.name}"
