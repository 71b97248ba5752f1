"""kpy-ingress's routing table (kpy/ingress/_routes.py): Kubernetes' host and
path matching rules, table by table, and endpoint resolution from Services
and EndpointSlices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from kpy.api import codec
from kpy.api.core.v1 import Secret, Service
from kpy.api.discovery.v1 import EndpointSlice
from kpy.api.networking.v1 import Ingress
from kpy.ingress._routes import Endpoint, build_table, path_matches


def backend(service: str, port: int | str = 80) -> dict[str, Any]:
    ref = {"name": port} if isinstance(port, str) else {"number": port}
    return {"service": {"name": service, "port": ref}}


def path(p: str, service: str, path_type: str = "Prefix") -> dict[str, Any]:
    return {"path": p, "pathType": path_type, "backend": backend(service)}


def ingress(name: str, spec: dict[str, Any], created: int = 1, ns: str = "default") -> Ingress:
    obj = codec.decode_object(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }
    )
    assert isinstance(obj, Ingress)
    obj.metadata.creation_timestamp.FromSeconds(created)
    return obj


def service(name: str, ports: list[dict[str, Any]] | None = None) -> Service:
    obj = codec.decode_object(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": ports or [{"name": "http", "port": 80, "targetPort": 8080}]},
        }
    )
    assert isinstance(obj, Service)
    return obj


def slice_of(
    svc: str, endpoints: list[tuple[str, bool | None]], port: int = 8080, name: str = "http"
) -> EndpointSlice:
    eps = []
    for ip, ready in endpoints:
        ep: dict[str, Any] = {"addresses": [ip]}
        if ready is not None:
            ep["conditions"] = {"ready": ready}
        eps.append(ep)
    obj = codec.decode_object(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{svc}-abc",
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": svc},
            },
            "addressType": "IPv4",
            "endpoints": eps,
            "ports": [{"name": name, "port": port, "protocol": "TCP"}],
        }
    )
    assert isinstance(obj, EndpointSlice)
    return obj


INGRESSES = [
    ingress(
        "main",
        {
            "rules": [
                {"host": "a.example", "http": {"paths": [path("/", "a")]}},
                {
                    "host": "b.example",
                    "http": {
                        "paths": [
                            path("/", "b"),
                            path("/api", "api"),
                            path("/api/v1", "v1", "Exact"),
                            path("/api/v2/", "v2"),
                            path("/docs", "docs-exact", "Exact"),
                            path("/docs", "docs-prefix"),
                            path("/impl", "impl", "ImplementationSpecific"),
                        ]
                    },
                },
                {"host": "*.w.example", "http": {"paths": [path("/", "wild")]}},
                {"host": "x.w.example", "http": {"paths": [path("/only", "x")]}},
                {"http": {"paths": [path("/any", "anyhost")]}},
            ]
        },
    ),
    ingress(
        "newer",
        {
            "defaultBackend": backend("fallback-newer"),
            "rules": [{"host": "a.example", "http": {"paths": [path("/", "a-newer")]}}],
        },
        created=5,
    ),
    ingress("older-default", {"defaultBackend": backend("fallback")}, created=0),
]

SERVICES = [
    service(n)
    for n in (
        "a",
        "a-newer",
        "b",
        "api",
        "v1",
        "v2",
        "docs-exact",
        "docs-prefix",
        "impl",
        "wild",
        "x",
        "anyhost",
        "fallback",
    )
]


@dataclass(frozen=True)
class Case:
    name: str
    host: str
    path: str
    want: str | None  # the Service; None: no route (404)


CASES = [
    Case("exact host", "a.example", "/anything", "a"),
    Case("host port and case ignored", "A.Example:8080", "/", "a"),
    Case("older Ingress keeps a contested route", "a.example", "/", "a"),
    Case("second host", "b.example", "/", "b"),
    Case("prefix", "b.example", "/api", "api"),
    Case("prefix by element", "b.example", "/api/users", "api"),
    Case("prefix is not a string prefix", "b.example", "/apis", "b"),
    Case("trailing slash ignored by Prefix", "b.example", "/api/", "api"),
    Case("exact beats shorter prefix", "b.example", "/api/v1", "v1"),
    Case("exact is whole path", "b.example", "/api/v1/x", "api"),
    Case("prefix with trailing slash in rule", "b.example", "/api/v2", "v2"),
    Case("longest prefix wins", "b.example", "/api/v2/x", "v2"),
    Case("exact beats prefix of same length", "b.example", "/docs", "docs-exact"),
    Case("prefix of same path still matches deeper", "b.example", "/docs/x", "docs-prefix"),
    Case("implementation specific is prefix", "b.example", "/impl/x", "impl"),
    Case("query string ignored", "b.example", "/api?x=/docs", "api"),
    Case("wildcard one label", "y.w.example", "/", "wild"),
    Case("wildcard not two labels", "z.y.w.example", "/", "fallback"),
    Case("wildcard not the bare domain", "w.example", "/", "fallback"),
    Case("exact host beats wildcard", "x.w.example", "/only", "x"),
    Case("exact host without match falls to wildcard", "x.w.example", "/else", "wild"),
    Case("hostless rule for any host", "c.example", "/any/thing", "anyhost"),
    Case("a host's own rules come before hostless ones", "a.example", "/any", "a"),
    Case("default backend: oldest Ingress's", "nobody.example", "/", "fallback"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_route(case: Case) -> None:
    table = build_table(INGRESSES, SERVICES, [], [])
    got = table.route(case.host, case.path)
    assert (got.service if got else None) == case.want, case.name


def test_no_default_backend_is_404() -> None:
    table = build_table(INGRESSES[:1], SERVICES, [], [])
    assert table.route("nobody.example", "/") is None


PATH_CASES = [
    # (rule path as stored, exact, request, matches)
    ("/foo", False, "/foo", True),
    ("/foo", False, "/foo/", True),
    ("/foo", False, "/foo/bar", True),
    ("/foo", False, "/foobar", False),
    ("", False, "/anything", True),
    ("/foo", True, "/foo", True),
    ("/foo", True, "/foo/", False),
    ("/aaa/bbb", False, "/aaa/bbbxyz", False),
]


@pytest.mark.parametrize(("rule", "exact", "request_path", "want"), PATH_CASES)
def test_path_matches(rule: str, exact: bool, request_path: str, want: bool) -> None:
    assert path_matches(rule, exact, request_path) is want


@dataclass(frozen=True)
class EndpointCase:
    name: str
    services: list[Service]
    slices: list[EndpointSlice]
    port: int | str
    want: tuple[Endpoint, ...]
    problem: str = ""


NAMED_TARGET = [{"name": "web", "port": 80, "targetPort": "http-alt"}]

ENDPOINT_CASES = [
    EndpointCase(
        "ready endpoints with the slice's port",
        [service("s")],
        [slice_of("s", [("127.1.0.1", True), ("127.1.0.2", None)])],
        80,
        (Endpoint("127.1.0.1", 8080), Endpoint("127.1.0.2", 8080)),
    ),
    EndpointCase(
        "not ready left out",
        [service("s")],
        [slice_of("s", [("127.1.0.1", False)])],
        80,
        (),
        "no ready endpoints",
    ),
    EndpointCase(
        "port by name; named target port resolved in the slice",
        [service("s", NAMED_TARGET)],
        [slice_of("s", [("127.1.0.3", True)], port=9090, name="web")],
        "web",
        (Endpoint("127.1.0.3", 9090),),
    ),
    EndpointCase("no service", [], [], 80, (), 'service "s" not found'),
    EndpointCase("no such port", [service("s")], [], 81, (), "has no port 81"),
    EndpointCase(
        "slices of other services ignored",
        [service("s")],
        [slice_of("other", [("127.1.0.9", True)])],
        80,
        (),
        "no ready endpoints",
    ),
]


@pytest.mark.parametrize("case", ENDPOINT_CASES, ids=lambda c: c.name)
def test_backend_endpoints(case: EndpointCase) -> None:
    ing = ingress("i", {"defaultBackend": backend("s", case.port)})
    got = build_table([ing], case.services, case.slices, []).route("any", "/")
    assert got is not None, case.name
    assert got.endpoints == case.want, case.name
    assert case.problem in got.problem, case.name


def test_certificates_by_sni() -> None:
    secret = Secret(type="kubernetes.io/tls")
    secret.metadata.name, secret.metadata.namespace = "tls", "default"
    secret.data["tls.crt"], secret.data["tls.key"] = b"CERT", b"KEY"
    spec = {
        "tls": [{"hosts": ["a.example", "*.w.example"], "secretName": "tls"}],
        "defaultBackend": backend("s"),
    }
    table = build_table([ingress("i", spec)], [], [], [secret])
    cert = table.certificate("a.example")
    assert cert is not None
    assert cert.cert_pem == b"CERT"
    assert table.certificate("q.w.example") is not None
    assert table.certificate("b.example") is None
