"""Validation of Services (what issue 20 added) and EndpointSlices, and the
API server's refusal of service ranges at start, table by table."""

from __future__ import annotations

from typing import Any

import pytest

from kpy.api import codec
from kpy.api.core.v1 import Service
from kpy.api.defaults import set_defaults
from kpy.api.discovery.v1 import EndpointSlice
from kpy.api.validation import validate, validate_update
from kpy.apiserver import main


def _service(spec: dict[str, Any]) -> Service:
    return set_defaults(
        codec.from_dict(Service, {"metadata": {"name": "s", "namespace": "n"}, "spec": spec})
    )


PORTS = [{"port": 80}]
SERVICE_CASES = [
    ("ClusterIP", {"ports": PORTS}, []),
    (
        "nodePort on a ClusterIP Service",
        {"ports": [{"port": 80, "nodePort": 30001}]},
        ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
    ),
    (
        "nodePort on a NodePort Service",
        {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30001}]},
        [],
    ),
    (
        "ExternalName with a cluster IP",
        {"type": "ExternalName", "externalName": "a.example", "clusterIP": "127.96.0.1"},
        ["spec.clusterIPs: Forbidden: may not be set for ExternalName services"],
    ),
    (
        "ClientIP timeout too long",
        {
            "ports": PORTS,
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}},
        },
        [
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: "
            "must be greater than 0 and less than 86400"
        ],
    ),
    (
        "affinity config without ClientIP",
        {"ports": PORTS, "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10}}},
        ["spec.sessionAffinityConfig: Forbidden: must not be set when session affinity is None"],
    ),
    (
        "ClientIP with a timeout",
        {
            "ports": PORTS,
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
        },
        [],
    ),
]


@pytest.mark.parametrize(("name", "spec", "want"), SERVICE_CASES, ids=[c[0] for c in SERVICE_CASES])
def test_service(name: str, spec: dict[str, Any], want: list[str]) -> None:
    got = [f"{e.path}: {e.detail}" for e in validate(_service(spec))]
    assert got == want, name


UPDATE_CASES = [
    ("clusterIP changed", {"clusterIP": "127.96.0.2", "ports": PORTS}, ["spec.clusterIP"]),
    ("clusterIP kept", {"clusterIP": "127.96.0.1", "ports": PORTS}, []),
    ("becoming ExternalName", {"type": "ExternalName", "externalName": "a.example"}, []),
]


@pytest.mark.parametrize(("name", "spec", "want"), UPDATE_CASES, ids=[c[0] for c in UPDATE_CASES])
def test_service_update(name: str, spec: dict[str, Any], want: list[str]) -> None:
    old = _service({"clusterIP": "127.96.0.1", "ports": PORTS})
    got = [e.path for e in validate_update(_service(spec), old)]
    assert got == want, name


def _slice(doc: dict[str, Any]) -> EndpointSlice:
    return codec.from_dict(EndpointSlice, {"metadata": {"name": "s-1", "namespace": "n"}, **doc})


SLICE_CASES = [
    (
        "valid",
        {
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        },
        [],
    ),
    ("no address type", {}, ["addressType"]),
    ("unknown address type", {"addressType": "IPX"}, ["addressType"]),
    (
        "an endpoint without addresses",
        {"addressType": "IPv4", "endpoints": [{}]},
        ["endpoints[0].addresses"],
    ),
    (
        "an IPv6 address in an IPv4 slice",
        {"addressType": "IPv4", "endpoints": [{"addresses": ["::1"]}]},
        ["endpoints[0].addresses[0]"],
    ),
    (
        "duplicate port names and a bad protocol",
        {
            "addressType": "IPv4",
            "ports": [{"name": "a", "port": 1}, {"name": "a", "port": 2, "protocol": "ICMP"}],
        },
        ["ports[1].name", "ports[1].protocol"],
    ),
    (
        "too many endpoints",
        {"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}] * 1001},
        ["endpoints"],
    ),
]


@pytest.mark.parametrize(("name", "doc", "want"), SLICE_CASES, ids=[c[0] for c in SLICE_CASES])
def test_endpoint_slice(name: str, doc: dict[str, Any], want: list[str]) -> None:
    got = [e.path for e in validate(_slice(doc))]
    assert got == want, name


def test_endpoint_slice_address_type_is_immutable() -> None:
    old = _slice({"addressType": "IPv4"})
    assert [e.path for e in validate_update(_slice({"addressType": "IPv6"}), old)] == [
        "addressType"
    ]


FLAG_CASES = [
    ("--service-cluster-ip-range", "10.96.0.0/12", "could route off this machine"),
    ("--service-cluster-ip-range", "nope", "is not a CIDR"),
    ("--service-node-port-range", "40000-30000", "1 <= FIRST <= LAST"),
]


@pytest.mark.parametrize(("flag", "value", "why"), FLAG_CASES, ids=[c[1] for c in FLAG_CASES])
def test_apiserver_refuses_a_bad_range_at_start(
    flag: str, value: str, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = main._parser()
    with pytest.raises(SystemExit) as exited:
        main._check(parser, parser.parse_args([flag, value]))
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert flag in err, err
    assert why in err, err
