"""The Endpoints and EndpointSlice controllers' `sync`, table by table, on
the fake client (the shape of test_replicaset_sync.py; the cases follow
Kubernetes' endpoints_controller_test.go and endpointslice reconciler tests).

Each case names the Service and the pods in the listers, and what the
stored Endpoints (and EndpointSlices) then show, as short strings:
`ip:port` ready, `~ip:port` not ready; slices as `ip [ready serving
terminating]`."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

from kpy.api import codec
from kpy.api.core.v1 import Endpoints, Pod, PodCondition, Service
from kpy.api.defaults import set_defaults
from kpy.api.discovery.v1 import EndpointSlice
from kpy.api.validation import validate
from kpy.cache.informer import SharedInformer
from kpy.cli._printers import printer_for
from kpy.client.fake import FakeClient
from kpy.controllers.endpoints import EndpointsController
from kpy.controllers.endpointslice import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    EndpointSliceController,
)

NOW = 1_700_000_000.0
_ips = itertools.count(1)


def service(
    *,
    ports: list[dict[str, Any]] | None = None,
    selector: dict[str, str] | None = None,
    publish: bool = False,
    headless: bool = False,
) -> Service:
    doc: dict[str, Any] = {
        "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid"},
        "spec": {
            "selector": {"app": "web"} if selector is None else selector,
            "ports": [{"port": 80, "targetPort": 8080}] if ports is None else ports,
        },
    }
    if publish:
        doc["spec"]["publishNotReadyAddresses"] = True
    if headless:
        doc["spec"]["clusterIP"] = "None"
    return set_defaults(codec.from_dict(Service, doc))


def pod(
    name: str,
    ip: str,
    *,
    ready: bool = True,
    labels: dict[str, str] | None = None,
    deleting: bool = False,
    phase: str = "Running",
    ports: dict[str, int] | None = None,
    namespace: str = "default",
) -> Pod:
    p = Pod()
    p.metadata.name = name
    p.metadata.namespace = namespace
    p.metadata.uid = f"{name}-uid"
    p.metadata.labels.update({"app": "web"} if labels is None else labels)
    if deleting:
        p.metadata.deletion_timestamp.FromSeconds(int(NOW))
    container = p.spec.containers.add(name="app", image="busybox")
    for port_name, number in (ports or {}).items():
        container.ports.add(name=port_name, container_port=number)
    p.spec.node_name = "node-1"
    p.status.phase = phase
    if ip:
        p.status.pod_ip = ip
    p.status.conditions.append(PodCondition(type="Ready", status="True" if ready else "False"))
    return set_defaults(p)


def shown(ep: Endpoints | None) -> list[str]:
    """`ip:port,port` per address ("~" for not ready), subset by subset."""
    if ep is None:
        return ["<none>"]
    out = []
    for subset in ep.subsets:
        ports = ",".join(str(p.port) for p in subset.ports)
        out += [f"{a.ip}:{ports}" for a in subset.addresses]
        out += [f"~{a.ip}:{ports}" for a in subset.not_ready_addresses]
    return out


# -- the Endpoints table ---------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    svc: Service | None
    pods: list[Pod] = field(default_factory=list)
    want: list[str] = field(default_factory=list)
    existing: Endpoints | None = None
    writes: list[str] | None = None  # the write actions, when the case is about them


def _endpoints(*ips: str) -> Endpoints:
    return codec.from_dict(
        Endpoints,
        {
            "metadata": {"name": "web", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": ip} for ip in ips], "ports": [{"port": 1}]}],
        },
    )


CASES = [
    Case("no pods: an empty Endpoints", service(), want=[]),
    Case(
        "ready and not-ready pods, sorted by IP",
        service(),
        pods=[pod("b", "10.0.0.2"), pod("a", "10.0.0.10"), pod("c", "10.0.0.3", ready=False)],
        want=["10.0.0.2:8080", "10.0.0.10:8080", "~10.0.0.3:8080"],
    ),
    Case(
        "publishNotReadyAddresses lists every pod as ready",
        service(publish=True),
        pods=[pod("a", "10.0.0.1", ready=False)],
        want=["10.0.0.1:8080"],
    ),
    Case(
        "pods without an IP, finished or terminating are left out",
        service(),
        pods=[
            pod("no-ip", ""),
            pod("done", "10.0.0.5", phase="Succeeded"),
            pod("going", "10.0.0.6", deleting=True),
            pod("ok", "10.0.0.7"),
        ],
        want=["10.0.0.7:8080"],
    ),
    Case(
        "pods of other labels are left out",
        service(),
        pods=[pod("other", "10.0.0.1", labels={"app": "db"}), pod("mine", "10.0.0.2")],
        want=["10.0.0.2:8080"],
    ),
    Case(
        "a named targetPort resolves per pod; a pod without it is left out",
        service(ports=[{"name": "http", "port": 80, "targetPort": "web"}]),
        pods=[
            pod("a", "10.0.0.1", ports={"web": 8080}),
            pod("b", "10.0.0.2", ports={"web": 9090}),
            pod("c", "10.0.0.3"),
        ],
        want=["10.0.0.1:8080", "10.0.0.2:9090"],
    ),
    Case(
        "targetPort defaults to port",
        service(ports=[{"port": 80}]),
        pods=[pod("a", "10.0.0.1")],
        want=["10.0.0.1:80"],
    ),
    Case(
        "a Service without a selector: its Endpoints are left alone",
        service(selector={}),
        pods=[pod("a", "10.0.0.1")],
        existing=_endpoints("192.0.2.1"),
        want=["192.0.2.1:1"],
        writes=[],
    ),
    Case(
        "already right: nothing written",
        service(ports=[{"port": 1}]),
        pods=[pod("a", "10.0.0.1")],
        existing=None,
        want=["10.0.0.1:1"],
    ),
    Case(
        "a stale Endpoints is updated",
        service(),
        pods=[pod("a", "10.0.0.1")],
        existing=_endpoints("10.0.0.9"),
        want=["10.0.0.1:8080"],
        writes=["update Endpoints default/web"],
    ),
    Case(
        "a Service gone: its Endpoints are deleted",
        None,
        existing=_endpoints("10.0.0.9"),
        want=["<none>"],
        writes=["delete Endpoints default/web"],
    ),
]


@dataclass
class Fixture:
    client: FakeClient
    informers: dict[type[Any], SharedInformer[Any]]
    endpoints: EndpointsController
    slices: EndpointSliceController

    @classmethod
    def new(cls, *, max_endpoints: int = 100) -> Fixture:
        client = FakeClient(now=lambda: NOW)
        informers: dict[type[Any], SharedInformer[Any]] = {
            kind: SharedInformer(client, kind) for kind in (Service, Pod, Endpoints, EndpointSlice)
        }
        endpoints = EndpointsController(
            client, informers[Service], informers[Pod], informers[Endpoints]
        )
        slices = EndpointSliceController(
            client,
            informers[Service],
            informers[Pod],
            informers[EndpointSlice],
            max_endpoints=max_endpoints,
        )
        return cls(client, informers, endpoints, slices)

    def seed(self, *objects: Any) -> None:
        for stored in self.client.add(*objects):
            self.informers[type(stored)].indexer.add(stored)

    def resync(self) -> None:
        """Puts what the client stores into the listers (the watch's job)."""
        for kind in (Endpoints, EndpointSlice):
            indexer = self.informers[kind].indexer
            for old in list(indexer.list()):
                indexer.delete(old)
            for obj in self.client.stored_list(kind):
                indexer.add(obj)

    def close(self) -> None:
        self.endpoints.queue.shut_down()
        self.slices.queue.shut_down()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_endpoints_sync(case: Case) -> None:
    fx = Fixture.new()
    if case.svc is not None:
        fx.seed(case.svc)
    fx.seed(*case.pods)
    if case.existing is not None:
        fx.seed(case.existing)
    try:
        await fx.endpoints.sync("default/web")
        if case.writes is not None:
            got = [str(a) for a in fx.client.writes()]
            assert got == case.writes, f"{case.name}: wrote {got}"
        stored = fx.client.stored(Endpoints, "web")
        assert shown(stored) == case.want, f"{case.name}: {shown(stored)}"
        if stored is not None:
            assert not validate(stored), f"{case.name}: {validate(stored)}"
        # A second sync over what the first wrote changes nothing.
        fx.resync()
        fx.client.clear_actions()
        await fx.endpoints.sync("default/web")
        assert fx.client.writes() == [], f"{case.name}: the second sync wrote"
    finally:
        fx.close()


async def test_addresses_carry_the_pod_reference_and_node() -> None:
    fx = Fixture.new()
    fx.seed(service(headless=True), pod("a", "10.0.0.1"))
    await fx.endpoints.sync("default/web")
    fx.close()
    stored = fx.client.stored(Endpoints, "web")
    assert stored is not None
    [address] = stored.subsets[0].addresses
    assert (address.target_ref.kind, address.target_ref.name, address.target_ref.uid) == (
        "Pod",
        "a",
        "a-uid",
    )
    assert address.node_name == "node-1"
    assert stored.metadata.labels["service.kubernetes.io/headless"] == ""


async def test_pods_with_different_ports_get_their_own_subsets() -> None:
    fx = Fixture.new()
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": "web"}])
    fx.seed(
        svc, pod("a", "10.0.0.1", ports={"web": 8080}), pod("b", "10.0.0.2", ports={"web": 9090})
    )
    fx.seed(pod("c", "10.0.0.3", ports={"web": 8080}, ready=False))
    await fx.endpoints.sync("default/web")
    fx.close()
    stored = fx.client.stored(Endpoints, "web")
    assert stored is not None
    subsets = [
        (
            [a.ip for a in s.addresses],
            [a.ip for a in s.not_ready_addresses],
            [p.port for p in s.ports],
        )
        for s in stored.subsets
    ]
    assert subsets == [(["10.0.0.1"], ["10.0.0.3"], [8080]), (["10.0.0.2"], [], [9090])]
    assert stored.subsets[0].ports[0].name == "http"


# -- the EndpointSlice table -----------------------------------------------------------------


def slice_view(client: FakeClient) -> list[str]:
    out = []
    for s in client.stored_list(EndpointSlice):
        for e in s.endpoints:
            flags = [k for k in ("ready", "serving", "terminating") if getattr(e.conditions, k)]
            out.append(f"{e.addresses[0]} [{' '.join(flags)}]")
    return out


SLICE_CASES = [
    (
        "ready, not ready and terminating pods with their conditions",
        service(),
        [
            pod("a", "10.0.0.1"),
            pod("b", "10.0.0.2", ready=False),
            pod("c", "10.0.0.3", deleting=True),
        ],
        ["10.0.0.1 [ready serving]", "10.0.0.2 []", "10.0.0.3 [serving terminating]"],
    ),
    (
        "publishNotReadyAddresses makes every endpoint ready",
        service(publish=True),
        [pod("a", "10.0.0.1", ready=False), pod("c", "10.0.0.3", ready=False, deleting=True)],
        ["10.0.0.1 [ready]", "10.0.0.3 [ready terminating]"],
    ),
    ("no pods: one empty slice", service(), [], []),
]


@pytest.mark.parametrize(
    ("name", "svc", "pods", "want"), SLICE_CASES, ids=[c[0] for c in SLICE_CASES]
)
async def test_endpointslice_sync(
    name: str, svc: Service, pods: list[Pod], want: list[str]
) -> None:
    fx = Fixture.new()
    fx.seed(svc, *pods)
    try:
        await fx.slices.sync("default/web")
        assert slice_view(fx.client) == want, name
        slices = fx.client.stored_list(EndpointSlice)
        assert len(slices) == 1, name
        [s] = slices
        assert s.metadata.labels[SERVICE_NAME_LABEL] == "web"
        assert s.metadata.labels[MANAGED_BY_LABEL] == MANAGED_BY
        assert s.metadata.owner_references[0].kind == "Service"
        assert s.address_type == "IPv4"
        assert not validate(s), f"{name}: {validate(s)}"
        fx.resync()
        fx.client.clear_actions()
        await fx.slices.sync("default/web")
        assert fx.client.writes() == [], f"{name}: the second sync wrote"
    finally:
        fx.close()


async def test_slices_hold_at_most_max_endpoints_and_shrink_back() -> None:
    fx = Fixture.new(max_endpoints=2)
    pods = [pod(f"p{i}", f"10.0.1.{i}") for i in range(1, 6)]
    fx.seed(service(), *pods)
    await fx.slices.sync("default/web")
    sizes = sorted(len(s.endpoints) for s in fx.client.stored_list(EndpointSlice))
    assert sizes == [1, 2, 2]
    # Four pods go: two slices are surplus and deleted, one is updated.
    fx.resync()
    for p in pods[1:]:
        fx.informers[Pod].indexer.delete(p)
    fx.client.clear_actions()
    await fx.slices.sync("default/web")
    fx.close()
    assert slice_view(fx.client) == ["10.0.1.1 [ready serving]"]
    verbs = sorted(a.verb for a in fx.client.writes())
    assert verbs == ["delete", "delete", "update"], verbs


async def test_a_service_gone_or_without_selector() -> None:
    fx = Fixture.new()
    fx.seed(service(), pod("a", "10.0.0.1"))
    await fx.slices.sync("default/web")
    fx.resync()
    fx.informers[Service].indexer.delete(service())
    await fx.slices.sync("default/web")
    assert fx.client.stored_list(EndpointSlice) == []

    fx.seed(service(selector={}), pod("b", "10.0.0.2"))
    fx.client.clear_actions()
    await fx.slices.sync("default/web")
    await fx.endpoints.sync("default/web")
    fx.close()
    assert fx.client.writes() == []


async def test_endpoint_slice_printer_row() -> None:
    fx = Fixture.new()
    fx.seed(service(), *(pod(f"p{i}", f"10.0.2.{i}") for i in range(1, 6)))
    await fx.slices.sync("default/web")
    fx.close()
    [s] = fx.client.stored_list(EndpointSlice)
    printer = printer_for("EndpointSlice")
    assert printer.headers == ("NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE")
    row = printer.row(s, NOW + 60)
    assert row[1:4] == ["IPv4", "8080", "10.0.2.1,10.0.2.2,10.0.2.3 + 2 more..."]


# -- what enqueues a Service (the informers' handlers) ----------------------------------------


def _changed(p: Pod, **changes: Any) -> Pod:
    new = Pod()
    new.CopyFrom(p)
    new.metadata.resource_version = str(int(p.metadata.resource_version or "1") + 1)
    if "ready" in changes:
        new.status.conditions[0].status = "True" if changes["ready"] else "False"
    if "labels" in changes:
        new.metadata.labels.clear()
        new.metadata.labels.update(changes["labels"])
    if "annotation" in changes:
        new.metadata.annotations["note"] = changes["annotation"]
    if "deleting" in changes:
        new.metadata.deletion_timestamp.FromSeconds(int(NOW))
    return new


BASE = pod("a", "10.0.0.1")
BASE.metadata.resource_version = "1"
HANDLER_CASES: list[tuple[str, str, tuple[Any, ...], list[str]]] = [
    ("a pod added", "add", (BASE, False), ["default/web"]),
    ("a pod deleted", "delete", (BASE,), ["default/web"]),
    ("readiness lost", "update", (BASE, _changed(BASE, ready=False)), ["default/web"]),
    ("terminating", "update", (BASE, _changed(BASE, deleting=True)), ["default/web"]),
    (
        "labels no longer match: the old Service hears of it",
        "update",
        (BASE, _changed(BASE, labels={"app": "db"})),
        ["default/web"],
    ),
    ("a resync (same version)", "update", (BASE, BASE), []),
    ("an annotation only", "update", (BASE, _changed(BASE, annotation="x")), []),
    ("a pod of another namespace", "add", (pod("b", "10.0.0.2", namespace="other"), False), []),
    ("a pod no Service selects", "add", (pod("c", "10.0.0.3", labels={"app": "db"}), False), []),
]


@pytest.mark.parametrize(
    ("name", "event", "args", "want"), HANDLER_CASES, ids=[c[0] for c in HANDLER_CASES]
)
async def test_pod_events_enqueue_the_services_selecting_the_pod(
    name: str, event: str, args: tuple[Any, ...], want: list[str]
) -> None:
    fx = Fixture.new()
    fx.seed(service())
    fx.informers[Pod]._dispatch(event, *args)
    for controller in (fx.endpoints, fx.slices):
        got = [await controller.queue.get() for _ in range(len(controller.queue))]
        assert got == want, f"{name} ({controller.name}): {got}"
    fx.close()
