"""NodePorts and host-port bookkeeping, with cases ported from Kubernetes'
pkg/scheduler/framework/plugins/nodeports/node_ports_test.go and the
HostPortInfo tests of pkg/scheduler/framework/types_test.go."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kpy.api.core.v1 import ContainerPort, Pod
from kpy.scheduler.framework import (
    SUCCESS,
    Code,
    CycleState,
    HostPortInfo,
    NodeInfo,
    Status,
    new_status,
)
from kpy.scheduler.plugins.node_ports import ERR_REASON, NodePorts
from tests.unit.scheduler.sched_builders import container, host_port, node, pod

REJECTED = new_status(Code.UNSCHEDULABLE, ERR_REASON)
SKIP = new_status(Code.SKIP)


def ports_pod(*specs: str) -> Pod:
    return pod(container(ports=[host_port(s) for s in specs]))


def init_ports_pod(*, sidecar: bool) -> Pod:
    port = ContainerPort(container_port=8001, host_port=8001, protocol="TCP")
    init = container(ports=[port], restart_policy="Always" if sidecar else None)
    return pod(init=[init])


@dataclass
class Case:
    name: str
    pod: Pod
    existing: list[str]
    want_pre_filter: Status = SUCCESS
    want: Status = SUCCESS


CASES = [
    Case("skip filter", pod(), [], want_pre_filter=SKIP),
    Case("other port", ports_pod("UDP/127.0.0.1/8080"), ["UDP/127.0.0.1/9090"]),
    Case("same udp port", ports_pod("UDP/127.0.0.1/8080"), ["UDP/127.0.0.1/8080"], want=REJECTED),
    Case("same tcp port", ports_pod("TCP/127.0.0.1/8080"), ["TCP/127.0.0.1/8080"], want=REJECTED),
    Case("different host ip", ports_pod("TCP/127.0.0.1/8080"), ["TCP/127.0.0.2/8080"]),
    Case("different protocol", ports_pod("UDP/127.0.0.1/8080"), ["TCP/127.0.0.1/8080"]),
    Case(
        "second udp port conflict",
        ports_pod("UDP/127.0.0.1/8000", "UDP/127.0.0.1/8080"),
        ["UDP/127.0.0.1/8080"],
        want=REJECTED,
    ),
    Case(
        "first tcp port conflict",
        ports_pod("TCP/127.0.0.1/8001", "UDP/127.0.0.1/8080"),
        ["TCP/127.0.0.1/8001", "UDP/127.0.0.1/8081"],
        want=REJECTED,
    ),
    Case(
        "first tcp port conflict due to 0.0.0.0 hostIP",
        ports_pod("TCP/0.0.0.0/8001"),
        ["TCP/127.0.0.1/8001"],
        want=REJECTED,
    ),
    Case(
        "TCP hostPort conflict due to 0.0.0.0 hostIP",
        ports_pod("TCP/10.0.10.10/8001", "TCP/0.0.0.0/8001"),
        ["TCP/127.0.0.1/8001"],
        want=REJECTED,
    ),
    Case(
        "second tcp port conflict to 0.0.0.0 hostIP",
        ports_pod("TCP/127.0.0.1/8001"),
        ["TCP/0.0.0.0/8001"],
        want=REJECTED,
    ),
    Case("second different protocol", ports_pod("UDP/127.0.0.1/8001"), ["TCP/0.0.0.0/8001"]),
    Case(
        "UDP hostPort conflict due to 0.0.0.0 hostIP",
        ports_pod("UDP/127.0.0.1/8001"),
        ["TCP/0.0.0.0/8001", "UDP/0.0.0.0/8001"],
        want=REJECTED,
    ),
    Case(
        "an empty hostIP means 0.0.0.0 and an empty protocol TCP",
        ports_pod("//8001"),
        ["TCP/127.0.0.1/8001"],
        want=REJECTED,
    ),
    Case(
        "non-sidecar initContainer using hostPort",
        init_ports_pod(sidecar=False),
        ["TCP/0.0.0.0/8001"],
        want_pre_filter=SKIP,
    ),
    Case(
        "TCP hostPort conflict from sidecar initContainer",
        init_ports_pod(sidecar=True),
        ["TCP/0.0.0.0/8001"],
        want=REJECTED,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_node_ports(case: Case) -> None:
    plugin = NodePorts()
    node_info = NodeInfo(node("m1"), [ports_pod(*case.existing)])
    state = CycleState()
    _, status = plugin.pre_filter(state, case.pod, [node_info])
    assert status == case.want_pre_filter, case.name
    if status.is_skip():
        return
    assert plugin.filter(state, case.pod, node_info) == case.want, case.name


def test_filter_without_pre_filter_is_an_error() -> None:
    status = NodePorts().filter(CycleState(), pod(), NodeInfo(node("n")))
    assert status.code is Code.ERROR


@pytest.mark.parametrize(
    ("wanted", "existing", "fits"),
    [
        pytest.param(["TCP/127.0.0.1/80"], ["TCP/127.0.0.1/9090"], True, id="non-conflicting"),
        pytest.param(
            ["TCP/127.0.0.1/80", "TCP/127.0.1.1/80", "TCP/127.0.1.1/90", "TCP/127.0.1.1/100"],
            ["TCP/127.0.0.1/9090", "TCP/127.0.0.1/9191", "TCP/127.0.1.1/8080"],
            True,
            id="multiple non-conflicting ports",
        ),
        pytest.param(["TCP/127.0.0.1/80"], ["UDP/127.0.0.1/80"], True, id="different protocols"),
        pytest.param(["TCP/127.0.0.1/80"], ["TCP/127.0.0.1/80"], False, id="conflicting ports"),
        pytest.param(
            ["TCP/127.0.0.1/80", "TCP/127.0.1.1/80", "TCP/127.0.1.1/90", "TCP/127.0.1.1/100"],
            ["TCP/127.0.0.1/9090", "TCP/127.0.1.1/90", "TCP/127.0.1.1/8080"],
            False,
            id="multiple ports, some conflicting",
        ),
    ],
)
def test_fits(wanted: list[str], existing: list[str], fits: bool) -> None:
    plugin = NodePorts()
    wanting = ports_pod(*wanted)
    node_info = NodeInfo(node("n"), [ports_pod(*existing)])
    state = CycleState()
    plugin.pre_filter(state, wanting, [node_info])
    assert plugin.filter(state, wanting, node_info).is_success() is fits


def test_host_port_info_counts_pods_sharing_a_port() -> None:
    ports = HostPortInfo()
    ports.add("", "", 8080)
    ports.add("0.0.0.0", "TCP", 8080)
    ports.add("127.0.0.1", "UDP", 0)  # port 0 is not a host port
    assert len(ports) == 1
    ports.remove("0.0.0.0", "TCP", 8080)
    assert ports.check_conflict("10.0.0.1", "TCP", 8080)
    ports.remove("", "TCP", 8080)
    assert not ports.check_conflict("10.0.0.1", "TCP", 8080)
    assert len(ports) == 0


def test_removing_a_pod_frees_its_ports() -> None:
    first = pod(container(ports=[host_port("TCP/0.0.0.0/80")]), name="a", uid="a")
    node_info = NodeInfo(node("n"), [first])
    assert node_info.used_ports.check_conflict("1.2.3.4", "TCP", 80)
    assert node_info.remove_pod(first)
    assert not node_info.used_ports.check_conflict("1.2.3.4", "TCP", 80)
