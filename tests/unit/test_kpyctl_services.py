"""`kpyctl get svc|endpoints|endpointslices` columns and `kpyctl describe
svc` (its endpoints and events from a fake client), as kubectl prints them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from kpy.api.codec import from_dict
from kpy.api.core.v1 import Endpoints, Event, Service
from kpy.api.discovery.v1 import EndpointSlice
from kpy.cli import _client, _printers, describe
from kpy.client.fake import FakeClient

NOW = 1_700_000_000.0


def ts(seconds_ago: float) -> str:
    t = Timestamp()
    t.FromNanoseconds(int((NOW - seconds_ago) * 1e9))
    return t.ToJsonString()


META = {"name": "web", "namespace": "default", "creationTimestamp": ts(3600)}


@dataclass(frozen=True)
class RowCase:
    name: str
    kind: type[Any]
    body: dict[str, Any]
    row: list[str]
    wide: bool = False


ROWS = [
    RowCase(
        "cluster IP, several ports",
        Service,
        {
            "spec": {
                "type": "ClusterIP",
                "clusterIP": "127.96.0.10",
                "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
            }
        },
        ["web", "ClusterIP", "127.96.0.10", "<none>", "80/TCP,53/UDP", "60m"],
    ),
    RowCase(
        "node port, wide: the selector",
        Service,
        {
            "spec": {
                "type": "NodePort",
                "clusterIP": "127.96.0.11",
                "selector": {"app": "web", "tier": "front"},
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}],
            }
        },
        [
            *("web", "NodePort", "127.96.0.11", "<none>", "80:30080/TCP", "60m"),
            "app=web,tier=front",
        ],
        wide=True,
    ),
    RowCase(
        "headless, wide, no selector",
        Service,
        {"spec": {"clusterIP": "None", "ports": [{"port": 80, "protocol": "TCP"}]}},
        ["web", "ClusterIP", "None", "<none>", "80/TCP", "60m", "<none>"],
        wide=True,
    ),
    RowCase(
        "external name, no ports",
        Service,
        {"spec": {"type": "ExternalName", "externalName": "db.example.com"}},
        ["web", "ExternalName", "<none>", "db.example.com", "<none>", "60m"],
    ),
    RowCase(
        "endpoints, four addresses on one port",
        Endpoints,
        {
            "subsets": [
                {
                    "addresses": [{"ip": f"127.1.0.{i}"} for i in range(1, 5)],
                    "ports": [{"port": 8080}],
                }
            ]
        },
        ["web", "127.1.0.1:8080,127.1.0.2:8080,127.1.0.3:8080 + 1 more...", "60m"],
    ),
    RowCase(
        "endpoints of a headless service without ports: addresses alone",
        Endpoints,
        {"subsets": [{"addresses": [{"ip": "127.1.0.1"}, {"ip": "127.1.0.2"}]}]},
        ["web", "127.1.0.1,127.1.0.2", "60m"],
    ),
    RowCase(
        "endpoints, none ready (not-ready addresses are not shown)",
        Endpoints,
        {"subsets": [{"notReadyAddresses": [{"ip": "127.1.0.1"}], "ports": [{"port": 80}]}]},
        ["web", "", "60m"],
    ),
    RowCase(
        "endpoint slice",
        EndpointSlice,
        {
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["127.1.0.1"]}, {"addresses": ["127.1.0.2"]}],
        },
        ["web", "IPv4", "8080", "127.1.0.1,127.1.0.2", "60m"],
    ),
    RowCase(
        "endpoint slice, more than three of each; a port without a number",
        EndpointSlice,
        {
            "addressType": "IPv4",
            "ports": [{"port": 1}, {"name": "named"}, {}, {"port": 4}, {"port": 5}],
            "endpoints": [{"addresses": [f"127.1.0.{i}"]} for i in range(1, 6)],
        },
        [
            "web",
            "IPv4",
            "1,named,* + 2 more...",
            "127.1.0.1,127.1.0.2,127.1.0.3 + 2 more...",
            "60m",
        ],
    ),
    RowCase(
        "endpoint slice, empty",
        EndpointSlice,
        {"addressType": "IPv4"},
        ["web", "IPv4", "<unset>", "<unset>", "60m"],
    ),
]


@pytest.mark.parametrize("case", ROWS, ids=lambda c: c.name)
def test_get_row(case: RowCase) -> None:
    obj = from_dict(case.kind, {"metadata": META, **case.body})
    rows = _printers.table(case.kind.DESCRIPTOR.name, [obj], NOW, wide=case.wide)
    assert rows[1] == case.row, case.name


SERVICE = {
    "metadata": {**META, "uid": "u-1", "labels": {"app": "web"}},
    "spec": {
        "type": "NodePort",
        "selector": {"app": "web"},
        "clusterIP": "127.96.0.10",
        "clusterIPs": ["127.96.0.10"],
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "sessionAffinity": "ClientIP",
        "externalTrafficPolicy": "Cluster",
        "internalTrafficPolicy": "Cluster",
        "ports": [
            {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"}
        ],
    },
}


async def test_describe_service_with_endpoints_and_events() -> None:
    client: Any = FakeClient()
    client.add(
        from_dict(
            Endpoints,
            {
                "metadata": {"name": "web", "namespace": "default"},
                "subsets": [
                    {
                        "addresses": [{"ip": "127.1.0.1"}, {"ip": "127.1.0.2"}],
                        "ports": [{"name": "http", "port": 8080}],
                    }
                ],
            },
        ),
        from_dict(
            Event,
            {
                "metadata": {"name": "web.1", "namespace": "default"},
                "involvedObject": {"kind": "Service", "name": "web", "uid": "u-1"},
                "type": "Normal",
                "reason": "Type",
                "message": "ClusterIP -> NodePort",
                "source": {"component": "service-controller"},
                "count": 1,
            },
        ),
    )
    svc = from_dict(Service, SERVICE)
    text = await describe.describe(client, _client.resolve("svc"), svc, scheduler="")
    head, events = text.split("Events:\n")
    assert head == (
        "Name:                     web\n"
        "Namespace:                default\n"
        "Labels:                   app=web\n"
        "Annotations:              <none>\n"
        "Selector:                 app=web\n"
        "Type:                     NodePort\n"
        "IP Family Policy:         SingleStack\n"
        "IP Families:              IPv4\n"
        "IP:                       127.96.0.10\n"
        "IPs:                      127.96.0.10\n"
        "Port:                     http  80/TCP\n"
        "TargetPort:               8080/TCP\n"
        "NodePort:                 http  30080/TCP\n"
        "Endpoints:                127.1.0.1:8080,127.1.0.2:8080\n"
        "Session Affinity:         ClientIP\n"
        "External Traffic Policy:  Cluster\n"
        "Internal Traffic Policy:  Cluster\n"
    )
    lines = events.splitlines()
    assert lines[0].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert lines[2].split()[:2] == ["Normal", "Type"]
    assert lines[2].endswith("service-controller  ClusterIP -> NodePort")


async def test_describe_service_without_selector_nor_endpoints() -> None:
    client: Any = FakeClient()
    svc = from_dict(
        Service,
        {
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {
                "type": "LoadBalancer",
                "clusterIP": "127.96.0.12",
                "loadBalancerIP": "192.0.2.1",
                "sessionAffinity": "None",
                "ports": [{"port": 5432, "targetPort": 5432, "protocol": "TCP"}],
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}},
        },
    )
    text = await describe.describe(client, _client.resolve("services"), svc, scheduler="")
    assert text == (
        "Name:                     db\n"
        "Namespace:                default\n"
        "Labels:                   <none>\n"
        "Annotations:              <none>\n"
        "Selector:                 <none>\n"
        "Type:                     LoadBalancer\n"
        "IP Families:              <none>\n"
        "IP:                       127.96.0.12\n"
        "IPs:                      <none>\n"
        "Desired LoadBalancer IP:  192.0.2.1\n"
        "LoadBalancer Ingress:     192.0.2.1\n"
        "Port:                     <unset>  5432/TCP\n"
        "TargetPort:               5432/TCP\n"
        "Endpoints:                <none>\n"
        "Session Affinity:         None\n"
        "Events:                   <none>\n"
    )
