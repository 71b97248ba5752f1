"""Validation of Ingress and IngressClass (networking.k8s.io/v1): each case
is a manifest, decoded and defaulted as the API server would, and the field
paths of the errors it must produce (none for the valid ones)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from kpy.api import codec
from kpy.api.defaults import set_defaults
from kpy.api.validation import validate, validate_update


def ingress(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": spec,
    }


def ingress_class(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": "kpy"},
        "spec": spec,
    }


def svc(name: str = "web", port: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"service": {"name": name, "port": {"number": 80} if port is None else port}}


def path(p: str | None, path_type: str | None = "Prefix", **backend: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": backend or svc()}
    if p is not None:
        out["path"] = p
    if path_type is not None:
        out["pathType"] = path_type
    return out


def rule(*paths: dict[str, Any], host: str = "a.example") -> dict[str, Any]:
    return {"host": host, "http": {"paths": list(paths)}}


@dataclass(frozen=True)
class Case:
    name: str
    manifest: dict[str, Any]
    paths: tuple[str, ...] = ()
    detail: str = ""


P0 = "spec.rules[0].http.paths[0]"

CASES = [
    Case("one rule", ingress({"rules": [rule(path("/"))]})),
    Case("default backend only", ingress({"defaultBackend": svc()})),
    Case("wildcard host", ingress({"rules": [rule(path("/"), host="*.example.com")]})),
    Case("no host", ingress({"rules": [{"http": {"paths": [path("/api", "Exact")]}}]})),
    Case(
        "implementation specific, no path",
        ingress({"rules": [rule(path(None, "ImplementationSpecific"))]}),
    ),
    Case(
        "port by name",
        ingress({"rules": [rule(path("/", service={"name": "web", "port": {"name": "http"}}))]}),
    ),
    Case(
        "resource backend",
        ingress(
            {
                "defaultBackend": {
                    "resource": {"apiGroup": "k8s.example.com", "kind": "Bucket", "name": "static"}
                }
            }
        ),
    ),
    Case(
        "tls",
        ingress(
            {
                "tls": [{"hosts": ["a.example", "*.b.example"], "secretName": "a-tls"}],
                "rules": [rule(path("/"))],
            }
        ),
    ),
    Case("class name", ingress({"ingressClassName": "kpy", "defaultBackend": svc()})),
    Case("nothing to route", ingress({}), ("spec",), "either `defaultBackend` or `rules`"),
    Case(
        "pathType missing",
        ingress({"rules": [rule(path("/", None))]}),
        (f"{P0}.pathType",),
        "pathType must be specified",
    ),
    Case(
        "pathType unknown",
        ingress({"rules": [rule(path("/", "Regex"))]}),
        (f"{P0}.pathType",),
        '"Exact"',
    ),
    Case(
        "prefix path relative",
        ingress({"rules": [rule(path("api"))]}),
        (f"{P0}.path",),
        "must be an absolute path",
    ),
    Case(
        "exact path relative",
        ingress({"rules": [rule(path("api", "Exact"))]}),
        (f"{P0}.path",),
        "absolute",
    ),
    Case(
        "exact path with //",
        ingress({"rules": [rule(path("/a//b", "Exact"))]}),
        (f"{P0}.path",),
        "'//'",
    ),
    Case(
        "implementation specific relative",
        ingress({"rules": [rule(path("api", "ImplementationSpecific"))]}),
        (f"{P0}.path",),
        "absolute",
    ),
    Case(
        "both backends",
        ingress({"defaultBackend": {**svc(), "resource": {"kind": "Bucket", "name": "b"}}}),
        ("spec.defaultBackend",),
        "cannot set both",
    ),
    Case(
        "no backend",
        ingress({"defaultBackend": {}}),
        ("spec.defaultBackend",),
        "one backend must be specified",
    ),
    Case(
        "service name missing",
        ingress({"defaultBackend": svc("")}),
        ("spec.defaultBackend.service.name",),
    ),
    Case(
        "service name not DNS-1035",
        ingress({"defaultBackend": svc("1web")}),
        ("spec.defaultBackend.service.name",),
    ),
    Case(
        "port both",
        ingress({"defaultBackend": svc(port={"name": "http", "number": 80})}),
        ("spec.defaultBackend.service.port",),
        "cannot set both",
    ),
    Case(
        "port neither",
        ingress({"defaultBackend": svc(port={})}),
        ("spec.defaultBackend.service.port",),
        "port name or number is required",
    ),
    Case(
        "port out of range",
        ingress({"defaultBackend": svc(port={"number": 70000})}),
        ("spec.defaultBackend.service.port.number",),
    ),
    Case(
        "resource without kind",
        ingress({"defaultBackend": {"resource": {"name": "b"}}}),
        ("spec.defaultBackend.resource.kind",),
    ),
    Case(
        "host is an IP",
        ingress({"rules": [rule(path("/"), host="10.0.0.1")]}),
        ("spec.rules[0].host",),
        "not an IP address",
    ),
    Case(
        "host bad wildcard",
        ingress({"rules": [rule(path("/"), host="a.*.example")]}),
        ("spec.rules[0].host",),
    ),
    Case(
        "host uppercase",
        ingress({"rules": [rule(path("/"), host="A.example")]}),
        ("spec.rules[0].host",),
    ),
    Case(
        "http without paths",
        ingress({"rules": [{"host": "a.example", "http": {"paths": []}}]}),
        ("spec.rules[0].http.paths",),
    ),
    Case(
        "tls host bad",
        ingress({"tls": [{"hosts": ["a_b.example"]}], "defaultBackend": svc()}),
        ("spec.tls[0].hosts[0]",),
    ),
    Case(
        "tls secret name bad",
        ingress({"tls": [{"secretName": "A"}], "defaultBackend": svc()}),
        ("spec.tls[0].secretName",),
    ),
    Case(
        "class name bad",
        ingress({"ingressClassName": "Kpy!", "defaultBackend": svc()}),
        ("spec.ingressClassName",),
    ),
    Case("class", ingress_class({"controller": "kpy.io/ingress"})),
    Case(
        "class with parameters",
        ingress_class(
            {
                "controller": "kpy.io/ingress",
                "parameters": {
                    "kind": "Config",
                    "name": "c",
                    "scope": "Namespace",
                    "namespace": "x",
                },
            }
        ),
    ),
    Case("class without controller", ingress_class({}), ("spec.controller",)),
    Case("class controller not a path", ingress_class({"controller": "kpy"}), ("spec.controller",)),
    Case(
        "class namespace scope without namespace",
        ingress_class(
            {
                "controller": "kpy.io/ingress",
                "parameters": {"kind": "C", "name": "c", "scope": "Namespace"},
            }
        ),
        ("spec.parameters.namespace",),
    ),
    Case(
        "class cluster scope with namespace",
        ingress_class(
            {
                "controller": "kpy.io/ingress",
                "parameters": {"kind": "C", "name": "c", "namespace": "x"},
            }
        ),
        ("spec.parameters.namespace",),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_networking_validation(case: Case) -> None:
    errs = validate(set_defaults(codec.decode_object(case.manifest)))
    assert tuple(e.path for e in errs) == case.paths, f"{case.name}: {errs}"
    assert not case.detail or any(case.detail in e.detail for e in errs), f"{case.name}: {errs}"


def test_ingress_class_controller_is_immutable() -> None:
    old = codec.decode_object(ingress_class({"controller": "kpy.io/ingress"}))
    new = codec.decode_object(ingress_class({"controller": "example.com/other"}))
    errs = validate_update(new, old)
    assert [e.path for e in errs] == ["spec.controller"], errs
