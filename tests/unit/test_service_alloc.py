"""Tables for the Service allocation rules that need no etcd: the ranges the
API server accepts, what a Service defaults to, what an update keeps, and
which requested values are out of range."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from kpy.api import codec
from kpy.api.core.v1 import Service
from kpy.apiserver import service_alloc as sa


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("127.96.0.0/16", "127.96.0.0/16"),
        ("127.0.0.0/8", "127.0.0.0/8"),
        ("172.30.128.0/17", "172.30.128.0/17"),
        ("172.30.200.0/24", "172.30.200.0/24"),
        ("10.96.0.0/12", "could route off this machine"),
        ("172.30.0.0/24", "could route off this machine"),  # containers get these
        ("172.30.0.0/16", "could route off this machine"),  # overlaps the containers' part
        ("127.96.0.1/16", "is not a CIDR"),  # host bits set
        ("banana", "is not a CIDR"),
        ("::1/128", "IPv6"),
    ],
)
def test_cluster_ip_range(text: str, want: str) -> None:
    try:
        got = str(sa.parse_cluster_ip_range(text))
    except ValueError as e:
        got = str(e)
    assert want in got, f"{text}: {got}"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("30000-32767", "30000-32767"),
        ("80-80", "80-80"),
        ("32767-30000", "1 <= FIRST <= LAST"),
        ("0-10", "1 <= FIRST <= LAST"),
        ("30000", "not a port range"),
        ("a-b", "not a port range"),
    ],
)
def test_node_port_range(text: str, want: str) -> None:
    try:
        got = str(sa.parse_node_port_range(text))
    except ValueError as e:
        got = str(e)
    assert want in got, f"{text}: {got}"


def test_usable_ips_skip_network_and_broadcast() -> None:
    cases = [
        ("127.96.0.0/30", ["127.96.0.1", "127.96.0.2"]),
        ("127.96.0.8/31", ["127.96.0.8", "127.96.0.9"]),
        ("127.96.0.5/32", ["127.96.0.5"]),
    ]
    for cidr, want in cases:
        ranges = sa.ServiceRanges(ipaddress.IPv4Network(cidr), sa.PortRange(1, 2))
        got = [str(ipaddress.IPv4Address(i)) for i in ranges.usable_ips()]
        assert got == want, cidr


def _svc(doc: dict[str, Any]) -> Service:
    return codec.from_dict(
        Service, {"metadata": {"name": "s", "namespace": "n", "uid": "u"}, **doc}
    )


CREATE_CASES = [
    (
        "clusterIP copied into clusterIPs",
        {"spec": {"clusterIP": "127.96.0.5", "ports": [{"port": 80}]}},
        {"clusterIP": "127.96.0.5", "clusterIPs": ["127.96.0.5"], "ipFamilies": ["IPv4"]},
    ),
    (
        "clusterIPs alone sets clusterIP",
        {"spec": {"clusterIPs": ["127.96.0.6"], "ports": [{"port": 80}]}},
        {"clusterIP": "127.96.0.6", "ipFamilyPolicy": "SingleStack"},
    ),
    (
        "headless",
        {"spec": {"clusterIP": "None"}},
        {"clusterIP": "None", "clusterIPs": ["None"], "ipFamilies": ["IPv4"]},
    ),
    (
        "ExternalName has no IP family",
        {"spec": {"type": "ExternalName", "externalName": "example.com"}},
        {"ipFamilies": None, "ipFamilyPolicy": None},
    ),
    (
        "ClientIP affinity gets the default timeout",
        {"spec": {"sessionAffinity": "ClientIP", "ports": [{"port": 80}]}},
        {"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}}},
    ),
    (
        "a timeout given is kept",
        {
            "spec": {
                "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
            }
        },
        {"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}},
    ),
]


@pytest.mark.parametrize(("name", "doc", "want"), CREATE_CASES, ids=[c[0] for c in CREATE_CASES])
def test_prepare_for_create(name: str, doc: dict[str, Any], want: dict[str, Any]) -> None:
    svc = _svc(doc)
    sa.prepare_for_create(svc)
    spec = codec.to_dict(svc)["spec"]
    for key, value in want.items():
        assert spec.get(key) == value, f"{name}: {key} is {spec.get(key)!r}"


UPDATE_CASES = [
    (
        "an update without the IP keeps it",
        {"spec": {"clusterIP": "127.96.0.5", "clusterIPs": ["127.96.0.5"]}},
        {"spec": {"ports": [{"port": 80}]}},
        {"clusterIP": "127.96.0.5", "clusterIPs": ["127.96.0.5"]},
    ),
    (
        "becoming ExternalName gives the IP up",
        {"spec": {"clusterIP": "127.96.0.5", "clusterIPs": ["127.96.0.5"]}},
        {"spec": {"type": "ExternalName", "externalName": "a.example"}},
        {"clusterIP": None, "clusterIPs": None},
    ),
    (
        "node ports kept by port and protocol",
        {
            "spec": {
                "type": "NodePort",
                "clusterIP": "127.96.0.5",
                "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}],
            }
        },
        {"spec": {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]}},
        {"ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]},
    ),
    (
        "becoming ClusterIP drops node ports",
        {
            "spec": {
                "type": "NodePort",
                "clusterIP": "127.96.0.5",
                "ports": [{"port": 80, "nodePort": 30080}],
            }
        },
        {"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}},
        {"ports": [{"port": 80}]},
    ),
    (
        "a patch of type alone drops the stored node ports",
        {
            "spec": {
                "type": "NodePort",
                "clusterIP": "127.96.0.5",
                "ports": [{"port": 80, "nodePort": 30080}],
            }
        },
        {
            "spec": {
                "type": "ClusterIP",
                "clusterIP": "127.96.0.5",
                "ports": [{"port": 80, "nodePort": 30080}],
            }
        },
        {"ports": [{"port": 80}], "clusterIP": "127.96.0.5"},
    ),
    (
        "a patch to ExternalName drops the stored IP",
        {"spec": {"clusterIP": "127.96.0.5", "clusterIPs": ["127.96.0.5"]}},
        {
            "spec": {
                "type": "ExternalName",
                "externalName": "a.example",
                "clusterIP": "127.96.0.5",
                "clusterIPs": ["127.96.0.5"],
            }
        },
        {"clusterIP": None, "clusterIPs": None, "ipFamilies": None},
    ),
]


@pytest.mark.parametrize(
    ("name", "old", "new", "want"), UPDATE_CASES, ids=[c[0] for c in UPDATE_CASES]
)
def test_prepare_for_update(
    name: str, old: dict[str, Any], new: dict[str, Any], want: dict[str, Any]
) -> None:
    updated = _svc(new)
    sa.prepare_for_update(updated, _svc(old))
    spec = codec.to_dict(updated)["spec"]
    for key, value in want.items():
        assert spec.get(key) == value, f"{name}: {key} is {spec.get(key)!r}"


RANGES = sa.ServiceRanges(ipaddress.IPv4Network("127.96.0.0/24"), sa.PortRange(30000, 30010))
REQUEST_CASES = [
    ("inside", {"clusterIP": "127.96.0.7"}, []),
    ("network address", {"clusterIP": "127.96.0.0"}, ["spec.clusterIP"]),
    ("outside", {"clusterIP": "127.96.1.7"}, ["spec.clusterIP"]),
    ("headless", {"clusterIP": "None"}, []),
    ("node port inside", {"type": "NodePort", "ports": [{"port": 1, "nodePort": 30010}]}, []),
    (
        "node port outside",
        {"type": "NodePort", "ports": [{"port": 1}, {"port": 2, "nodePort": 30011}]},
        ["spec.ports[1].nodePort"],
    ),
    ("ClusterIP ignores nodePort", {"ports": [{"port": 1, "nodePort": 9}]}, []),
]


@pytest.mark.parametrize(
    ("name", "spec", "paths"), REQUEST_CASES, ids=[c[0] for c in REQUEST_CASES]
)
def test_check_requested(name: str, spec: dict[str, Any], paths: list[str]) -> None:
    causes = sa.check_requested(_svc({"spec": spec}), RANGES)
    assert [c.path for c in causes] == paths, name
    for cause in causes:
        assert "not in the valid range" in cause.detail, name


def test_claims_held() -> None:
    svc = _svc(
        {
            "spec": {
                "type": "NodePort",
                "clusterIP": "127.96.0.5",
                "ports": [{"port": 80, "nodePort": 30080}, {"port": 81}],
            }
        }
    )
    assert sa.held(svc) == {
        "ranges/serviceips/127.96.0.5": b"n/s/u",
        "ranges/servicenodeports/30080": b"n/s/u",
    }
    assert sa.held(_svc({"spec": {"clusterIP": "None"}})) == {}
