"""`kpyctl expose`: the Service it builds from each kind, its refusals in
kubectl's words, and the verb end to end on a fake client."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from kpy.api import codec, errors
from kpy.api.apps.v1 import Deployment
from kpy.api.core.v1 import Pod, Service
from kpy.api.scheme import scheme
from kpy.cli import expose, main
from kpy.cli._manifests import UsageError
from kpy.cli.expose import ExposeOptions, service_for
from kpy.client.fake import FakeClient

if TYPE_CHECKING:
    import argparse

TEMPLATE = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {
        "containers": [
            {"name": "web", "image": "nginx", "ports": [{"containerPort": 8080, "protocol": "TCP"}]}
        ]
    },
}
DEPLOYMENT: dict[str, Any] = {
    "metadata": {"name": "web", "namespace": "default", "labels": {"team": "a"}},
    "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
}


def deployment(**spec: Any) -> dict[str, Any]:
    return {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], **spec}}


def pod(labels: dict[str, str], ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"name": "solo", "namespace": "default", "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "x", "ports": ports}]},
    }


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    obj: dict[str, Any]
    options: ExposeOptions = field(default_factory=ExposeOptions)
    want: dict[str, Any] | None = None  # the Service as YAML keeps it (metadata + spec)
    error: str = ""


CASES = [
    Case(
        "deployment, port and target port from flags",
        "Deployment",
        DEPLOYMENT,
        ExposeOptions(port="80", target_port="8080"),
        want={
            "metadata": {"name": "web", "labels": {"team": "a"}},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
            },
        },
    ),
    Case(
        "deployment, the container's one port when --port is not given",
        "Deployment",
        DEPLOYMENT,
        ExposeOptions(name="front", type="NodePort"),
        want={
            "metadata": {"name": "front", "labels": {"team": "a"}},
            "spec": {
                "type": "NodePort",
                "selector": {"app": "web"},
                "ports": [{"port": 8080, "protocol": "TCP", "targetPort": 8080}],
            },
        },
    ),
    Case(
        "a named target port stays a name",
        "Deployment",
        DEPLOYMENT,
        ExposeOptions(port="80", target_port="http"),
        want={
            "metadata": {"name": "web", "labels": {"team": "a"}},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": "http"}],
            },
        },
    ),
    Case(
        "pod: its labels select, its ports named port-N, protocols its own",
        "Pod",
        pod(
            {"run": "solo"},
            [{"containerPort": 53, "protocol": "UDP"}, {"containerPort": 80, "protocol": "TCP"}],
        ),
        want={
            "metadata": {"name": "solo", "labels": {"run": "solo"}},
            "spec": {
                "selector": {"run": "solo"},
                "ports": [
                    {"name": "port-1", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "port-2", "port": 80, "protocol": "TCP", "targetPort": 80},
                ],
            },
        },
    ),
    Case(
        "--selector, --labels and --protocol win over the object's",
        "Pod",
        pod({"run": "solo"}, []),
        ExposeOptions(port="53", protocol="UDP", selector="tier=dns", labels="x=y"),
        want={
            "metadata": {"name": "solo", "labels": {"x": "y"}},
            "spec": {
                "selector": {"tier": "dns"},
                "ports": [{"port": 53, "protocol": "UDP", "targetPort": 53}],
            },
        },
    ),
    Case(
        "service: its selector and ports, under a new name",
        "Service",
        {
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}]},
        },
        ExposeOptions(name="web-2", type="NodePort"),
        want={
            "metadata": {"name": "web-2"},
            "spec": {
                "type": "NodePort",
                "selector": {"app": "web"},
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
            },
        },
    ),
    Case(
        "replication controller: spec.selector",
        "ReplicationController",
        {
            "metadata": {"name": "old", "namespace": "default"},
            "spec": {"selector": {"app": "old"}, "template": TEMPLATE},
        },
        ExposeOptions(port="80"),
        want={
            "metadata": {"name": "old"},
            "spec": {
                "selector": {"app": "old"},
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
            },
        },
    ),
    Case(
        "a kind that cannot be exposed",
        "StatefulSet",
        {"metadata": {"name": "db"}},
        ExposeOptions(port="80"),
        error="cannot expose a StatefulSet.apps: only deployments, replica sets, replication "
        "controllers, pods and services can be exposed",
    ),
    Case(
        "matchExpressions are refused",
        "Deployment",
        deployment(
            selector={"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}
        ),
        ExposeOptions(port="80"),
        error='couldn\'t convert expressions - "app In [web]" to map-based selector format; '
        "give the service's selector with --selector",
    ),
    Case(
        "no port given nor declared",
        "Pod",
        pod({"run": "solo"}, []),
        error="couldn't find port via --port flag or introspection",
    ),
    Case(
        "a pod without labels",
        "Pod",
        pod({}, []),
        ExposeOptions(port="80"),
        error="the pod has no labels and cannot be exposed",
    ),
    Case(
        "a service without a selector",
        "Service",
        {"metadata": {"name": "ext"}, "spec": {"ports": [{"port": 80}]}},
        error="the service has no pod selector set",
    ),
    Case(
        "a port that is not a number",
        "Deployment",
        DEPLOYMENT,
        ExposeOptions(port="http"),
        error="--port must be a port number, got 'http'",
    ),
    Case(
        "a bad --selector",
        "Deployment",
        DEPLOYMENT,
        ExposeOptions(port="80", selector="app"),
        error="--selector: invalid selector: [app]",
    ),
]


def info_of(kind: str) -> Any:
    return next(i for i in scheme.all() if i.kind == kind)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_service_for(case: Case) -> None:
    info = info_of(case.kind)
    obj = codec.from_dict(info.message, case.obj)
    if case.error:
        with pytest.raises(UsageError) as raised:
            service_for(info, obj, case.options)
        assert str(raised.value) == case.error, case.name
        return
    encoded = codec.encode_object(service_for(info, obj, case.options))
    got = {"metadata": encoded["metadata"], "spec": encoded["spec"]}
    assert got == case.want, case.name


def parse(*argv: str) -> argparse.Namespace:
    return main.parse(main.build_parser(), ["expose", *argv])


async def run(client: FakeClient, *argv: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await expose._expose(client, parse(*argv), out, err)  # type: ignore[arg-type]
    assert code == 0, err.getvalue()
    return out.getvalue(), err.getvalue()


async def test_expose_deployment_creates_the_service() -> None:
    client = FakeClient()
    client.add(codec.from_dict(Deployment, DEPLOYMENT))
    out, _ = await run(client, "deployment", "web", "--port=80", "--target-port=8080")
    assert out == "service/web exposed\n"
    svc = client.stored(Service, "web")
    assert svc is not None
    assert dict(svc.spec.selector) == {"app": "web"}
    assert [(p.port, p.target_port.int_val) for p in svc.spec.ports] == [(80, 8080)]


async def test_expose_dry_run_client_prints_yaml_and_stores_nothing() -> None:
    client = FakeClient()
    client.add(codec.from_dict(Pod, pod({"run": "solo"}, [{"containerPort": 80}])))
    out, _ = await run(client, "pod/solo", "--dry-run=client", "-o", "yaml")
    assert "kind: Service\n" in out
    assert "targetPort: 80\n" in out
    assert client.stored(Service, "solo") is None


async def test_expose_a_missing_deployment_is_not_found() -> None:
    client = FakeClient()
    with pytest.raises(errors.NotFound, match=r'deployments\.apps "web" not found'):
        await run(client, "deployment", "web", "--port=80")


async def test_expose_a_taken_name_is_already_exists() -> None:
    client = FakeClient()
    client.add(codec.from_dict(Deployment, DEPLOYMENT))
    await run(client, "deployment/web", "--port=80")
    with pytest.raises(errors.AlreadyExists, match='services "web" already exists'):
        await run(client, "deployment/web", "--port=80")
