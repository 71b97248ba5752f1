"""`kpyctl port-forward`'s arguments: how `[LOCAL:]REMOTE` is read, and how
a pod's named ports and a service's ports (with their targetPorts) become
the pod port forwarded to, as kubectl resolves them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from kpy.api import codec
from kpy.api.core.v1 import Pod, Service
from kpy.cli._manifests import UsageError
from kpy.cli.port_forward import Forward, forwards_for_pod, forwards_for_service

POD: Pod = codec.from_dict(
    Pod,
    {
        "metadata": {"name": "web"},
        "spec": {
            "containers": [
                {"name": "a", "image": "x", "ports": [{"name": "http", "containerPort": 8080}]},
                {"name": "b", "image": "x", "ports": [{"name": "metrics", "containerPort": 9090}]},
            ]
        },
    },
)


def service(ports: list[dict[str, Any]], cluster_ip: str = "127.96.0.10") -> Service:
    made: Service = codec.from_dict(
        Service,
        {
            "metadata": {"name": "web"},
            "spec": {"clusterIP": cluster_ip, "selector": {"app": "web"}, "ports": ports},
        },
    )
    return made


SVC = service(
    [
        {"name": "web", "port": 80, "targetPort": "http"},
        {"name": "stats", "port": 9000, "targetPort": 9090},
        {"name": "same", "port": 7000},
    ]
)


@dataclass(frozen=True)
class Case:
    name: str
    specs: list[str]
    want: list[Forward] | None = None
    error: str = ""
    svc: Service | None = None  # None: forwarding to POD itself


CASES = [
    Case("local and remote", ["8888:8080"], [Forward(8888, 8080)]),
    Case("remote alone: the same local port", ["8080"], [Forward(8080, 8080)]),
    Case("empty local: a free port", [":8080"], [Forward(0, 8080)]),
    Case("0 local: a free port", ["0:8080"], [Forward(0, 8080)]),
    Case("several ports", ["8080", "1:9090"], [Forward(8080, 8080), Forward(1, 9090)]),
    Case("a named container port", ["5000:metrics"], [Forward(5000, 9090)]),
    Case("a named port alone listens on its number", ["http"], [Forward(8080, 8080)]),
    Case(
        "an unknown port name",
        ["5000:grpc"],
        error="Pod 'web' does not have a named port 'grpc'",
    ),
    Case(
        "three parts",
        ["1:2:3"],
        error="invalid port format '1:2:3': use [LOCAL_PORT:]REMOTE_PORT, e.g. 8080:80",
    ),
    Case(
        "a local port out of range",
        ["70000:80"],
        error="error parsing local port '70000': a port is a number, 0 to 65535",
    ),
    Case("remote zero", ["8080:0"], error="remote port cannot be zero"),
    Case(
        "service port to a named targetPort",
        ["8888:80"],
        [Forward(8888, 8080)],
        svc=SVC,
    ),
    Case(
        "service port alone keeps it as the local port",
        ["80"],
        [Forward(80, 8080)],
        svc=SVC,
    ),
    Case("service port to a numbered targetPort", [":9000"], [Forward(0, 9090)], svc=SVC),
    Case(
        "service port by name, alone: the local port is the service port",
        ["stats"],
        [Forward(9000, 9090)],
        svc=SVC,
    ),
    Case("a targetPort left unset is the port", ["7000"], [Forward(7000, 7000)], svc=SVC),
    Case(
        "headless: the service port is the pod's",
        ["80"],
        [Forward(80, 80)],
        svc=service([{"port": 80, "targetPort": "http"}], cluster_ip="None"),
    ),
    Case(
        "a port the service does not have",
        ["81"],
        error="Service web does not have a service port 81",
        svc=SVC,
    ),
    Case(
        "a service port name it does not have",
        ["grpc"],
        error="Service 'web' does not have a named port 'grpc'",
        svc=SVC,
    ),
    Case(
        "a targetPort name no container declares",
        ["80"],
        error="Pod 'web' does not have a named port 'api'",
        svc=service([{"port": 80, "targetPort": "api"}]),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_forwards(case: Case) -> None:
    def resolve() -> list[Forward]:
        if case.svc is None:
            return forwards_for_pod(case.specs, POD)
        return forwards_for_service(case.specs, case.svc, POD)

    if case.error:
        with pytest.raises(UsageError) as raised:
            resolve()
        assert str(raised.value) == case.error, case.name
        return
    assert resolve() == case.want, case.name
