"""kpyctl's view of Ingresses and IngressClasses: `get` columns as kubectl
prints them (NAME CLASS HOSTS ADDRESS PORTS AGE; NAME CONTROLLER PARAMETERS
AGE) and `describe` rows, table by table."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from kpy.api.codec import from_dict
from kpy.api.networking.v1 import Ingress, IngressClass
from kpy.cli import _describe_ingress, _printers

NOW = 1_700_000_000.0


def _meta(name: str = "web", namespace: str = "default") -> dict[str, Any]:
    t = Timestamp()
    t.FromSeconds(int(NOW - 5 * 3600))
    meta: dict[str, Any] = {"name": name, "creationTimestamp": t.ToJsonString()}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _backend(name: str, port: int | str = 80) -> dict[str, Any]:
    ref = {"name": port} if isinstance(port, str) else {"number": port}
    return {"service": {"name": name, "port": ref}}


def _rule(host: str, *paths: tuple[str, str]) -> dict[str, Any]:
    items = [{"path": p, "pathType": "Prefix", "backend": _backend(s)} for p, s in paths]
    return {"host": host, "http": {"paths": items}} if host else {"http": {"paths": items}}


def ingress(spec: dict[str, Any], status: dict[str, Any] | None = None) -> Ingress:
    return from_dict(Ingress, {"metadata": _meta(), "spec": spec, "status": status or {}})


SERVED = {"loadBalancer": {"ingress": [{"ip": "127.0.0.1", "ports": [{"port": 8080}]}]}}

ROWS = [
    (
        "two hosts, served, TLS",
        ingress(
            {
                "ingressClassName": "kpy",
                "tls": [{"hosts": ["a.example"], "secretName": "a-tls"}],
                "rules": [_rule("a.example", ("/", "a")), _rule("b.example", ("/", "b"))],
            },
            SERVED,
        ),
        ["web", "kpy", "a.example,b.example", "127.0.0.1", "80, 443", "5h"],
    ),
    (
        "no class, no host, not served",
        ingress({"rules": [_rule("", ("/", "a"))]}),
        ["web", "<none>", "*", "", "80", "5h"],
    ),
    (
        "more than three hosts",
        ingress({"rules": [_rule(f"h{i}.example", ("/", "a")) for i in range(5)]}),
        ["web", "<none>", "h0.example,h1.example,h2.example + 2 more...", "", "80", "5h"],
    ),
    (
        "class",
        from_dict(
            IngressClass, {"metadata": _meta("kpy", ""), "spec": {"controller": "kpy.io/ingress"}}
        ),
        ["kpy", "kpy.io/ingress", "<none>", "5h"],
    ),
    (
        "class with parameters",
        from_dict(
            IngressClass,
            {
                "metadata": _meta("kpy", ""),
                "spec": {
                    "controller": "kpy.io/ingress",
                    "parameters": {"apiGroup": "k8s.example.com", "kind": "Params", "name": "p"},
                },
            },
        ),
        ["kpy", "kpy.io/ingress", "Params.k8s.example.com/p", "5h"],
    ),
]


@pytest.mark.parametrize(("obj", "row"), [c[1:] for c in ROWS], ids=[c[0] for c in ROWS])
def test_get_columns(obj: Any, row: list[str]) -> None:
    kind = type(obj).DESCRIPTOR.name
    header = {
        "Ingress": ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"],
        "IngressClass": ["NAME", "CONTROLLER", "PARAMETERS", "AGE"],
    }[kind]
    assert _printers.table(kind, [obj], NOW) == [header, row]


def test_describe_ingress() -> None:
    ing = ingress(
        {
            "ingressClassName": "kpy",
            "tls": [{"hosts": ["a.example"], "secretName": "a-tls"}],
            "rules": [
                _rule("a.example", ("/", "a")),
                _rule("b.example", ("/", "b"), ("/api", "api")),
            ],
        },
        SERVED,
    )
    endpoints = {"a": ["127.1.0.1:8080"], "b": []}
    text = _printers.tabulate(
        _describe_ingress.ingress_rows(ing, endpoints), padding=2, min_width=0
    )
    lines = [line.rstrip() for line in text.splitlines()]
    assert lines == [
        "Name:             web",
        "Labels:           <none>",
        "Namespace:        default",
        "Address:          127.0.0.1",
        "Ingress Class:    kpy",
        "Default backend:  <default>",
        "TLS:",
        "  a-tls terminates a.example",
        "Rules:",
        "  Host        Path  Backends",
        "  ----        ----  --------",
        "  a.example",
        "              /   a:80 (127.1.0.1:8080)",
        "  b.example",
        "              /      b:80 (<none>)",
        '              /api   api:80 (<error: endpoints "api" not found>)',
        "Annotations:  <none>",
    ]


def test_describe_ingress_class() -> None:
    ic = from_dict(
        IngressClass,
        {
            "metadata": {
                "name": "kpy",
                "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"},
            },
            "spec": {"controller": "kpy.io/ingress"},
        },
    )
    rows = _describe_ingress.ingress_class_rows(ic)
    assert ["Controller:", "kpy.io/ingress"] in rows
    assert any("is-default-class" in " ".join(r) for r in rows)
