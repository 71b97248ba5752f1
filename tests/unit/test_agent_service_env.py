"""The service link variables the kubelet injects into every container
(getServiceEnvVarMap and envvars.FromServices), table by table; and that a
container's own env wins over them."""

from __future__ import annotations

from typing import Any

import pytest

from kpy.agent.env import PodContext, container_env, service_env
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Pod, Service


def svc(name: str, cluster_ip: str, ports: list[dict[str, Any]], namespace: str = "ns") -> Service:
    return from_dict(
        Service,
        {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterIP": cluster_ip, "ports": ports},
        },
    )


WEB = svc("web-app", "127.96.0.20", [{"name": "http", "port": 80}, {"port": 53, "protocol": "UDP"}])
WEB_VARS = {
    "WEB_APP_SERVICE_HOST": "127.96.0.20",
    "WEB_APP_SERVICE_PORT": "80",
    "WEB_APP_SERVICE_PORT_HTTP": "80",
    "WEB_APP_PORT": "tcp://127.96.0.20:80",
    "WEB_APP_PORT_80_TCP": "tcp://127.96.0.20:80",
    "WEB_APP_PORT_80_TCP_PROTO": "tcp",
    "WEB_APP_PORT_80_TCP_PORT": "80",
    "WEB_APP_PORT_80_TCP_ADDR": "127.96.0.20",
    "WEB_APP_PORT_53_UDP": "udp://127.96.0.20:53",
    "WEB_APP_PORT_53_UDP_PROTO": "udp",
    "WEB_APP_PORT_53_UDP_PORT": "53",
    "WEB_APP_PORT_53_UDP_ADDR": "127.96.0.20",
}
KUBERNETES = svc("kubernetes", "127.96.0.1", [{"name": "https", "port": 443}], "default")
KUBERNETES_VARS = {
    "KUBERNETES_SERVICE_HOST": "127.96.0.1",
    "KUBERNETES_SERVICE_PORT": "443",
    "KUBERNETES_SERVICE_PORT_HTTPS": "443",
    "KUBERNETES_PORT": "tcp://127.96.0.1:443",
    "KUBERNETES_PORT_443_TCP": "tcp://127.96.0.1:443",
    "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
    "KUBERNETES_PORT_443_TCP_PORT": "443",
    "KUBERNETES_PORT_443_TCP_ADDR": "127.96.0.1",
}
ONE_PORT = svc("db", "127.96.0.30", [{"port": 5432}])
ONE_PORT_VARS = {
    "DB_SERVICE_HOST": "127.96.0.30",
    "DB_SERVICE_PORT": "5432",
    "DB_PORT": "tcp://127.96.0.30:5432",
    "DB_PORT_5432_TCP": "tcp://127.96.0.30:5432",
    "DB_PORT_5432_TCP_PROTO": "tcp",
    "DB_PORT_5432_TCP_PORT": "5432",
    "DB_PORT_5432_TCP_ADDR": "127.96.0.30",
}

CASES: list[tuple[str, list[Service], str, bool, dict[str, str]]] = [
    # (case name, services, pod namespace, enableServiceLinks, variables)
    ("a service of the namespace, named and UDP ports", [WEB], "ns", True, WEB_VARS),
    ("one unnamed port", [ONE_PORT], "ns", True, ONE_PORT_VARS),
    ("another namespace's service: none", [WEB], "other", True, {}),
    ("headless: none", [svc("h", "None", [{"port": 1}])], "ns", True, {}),
    ("no cluster IP (ExternalName): none", [svc("x", "", [])], "ns", True, {}),
    ("enableServiceLinks false: none", [WEB, ONE_PORT], "ns", False, {}),
    ("kubernetes of default: in every namespace", [KUBERNETES], "ns", True, KUBERNETES_VARS),
    ("kubernetes even without service links", [KUBERNETES, WEB], "ns", False, KUBERNETES_VARS),
    (
        "several services",
        [WEB, ONE_PORT, KUBERNETES],
        "ns",
        True,
        {**WEB_VARS, **ONE_PORT_VARS, **KUBERNETES_VARS},
    ),
]


@pytest.mark.parametrize(
    ("name", "services", "namespace", "links", "want"), CASES, ids=[c[0] for c in CASES]
)
def test_service_env(
    name: str, services: list[Service], namespace: str, links: bool, want: dict[str, str]
) -> None:
    assert service_env(services, namespace, enable_service_links=links) == want, name


def test_container_env_wins_and_may_refer_to_them() -> None:
    pod = from_dict(
        Pod,
        {
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "env": [
                            {"name": "DB_SERVICE_HOST", "value": "mine"},
                            {
                                "name": "URL",
                                "value": "http://$(DB_SERVICE_HOST):$(DB_SERVICE_PORT)",
                            },
                        ],
                    }
                ]
            },
        },
    )
    ctx = PodContext(service_env=service_env([ONE_PORT], "ns"))
    env = dict(container_env(pod, pod.spec.containers[0], None, ctx))  # type: ignore[arg-type]
    assert env["DB_SERVICE_HOST"] == "mine"
    assert env["URL"] == "http://mine:5432"
    assert env["DB_PORT"] == "tcp://127.96.0.30:5432"
