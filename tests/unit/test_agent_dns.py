"""A pod's resolv.conf (`kpy.agent.dns`), table by table after the kubelet's
dns_test.go: each dnsPolicy, hostNetwork, dnsConfig merged in, the limits
cut with a warning, and what the API refuses as a clear ConfigError; then
`PodDNS.mounts`, which writes the file and mounts it at /etc/resolv.conf."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from kpy.agent.agent import _reachable_dns
from kpy.agent.dns import (
    DNSSettings,
    PodDNS,
    ResolvConf,
    format_resolv_conf,
    parse_resolv_conf,
    pod_resolv_conf,
)
from kpy.agent.env import ConfigError
from kpy.agent.main import config_from
from kpy.agent.runtime.base import Mount
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Pod

if TYPE_CHECKING:
    from pathlib import Path

HOST_TEXT = """\
# written by the host
nameserver 10.255.255.53
nameserver 10.255.255.54 ; second
search corp.example. lab.example
options timeout:2 rotate
"""
HOST = parse_resolv_conf(HOST_TEXT)
CLUSTER = DNSSettings(cluster_dns=("127.96.0.10",), cluster_domain="cluster.local")
NO_CLUSTER_DNS = DNSSettings()
CLUSTER_SEARCH = ("ns.svc.cluster.local", "svc.cluster.local", "cluster.local")


def pod(**spec: Any) -> Pod:
    doc = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": [], **spec}}
    return from_dict(Pod, doc)


def test_parse_host_resolv_conf() -> None:
    assert (
        ResolvConf(
            ("10.255.255.53", "10.255.255.54"),
            ("corp.example", "lab.example"),
            ("timeout:2", "rotate"),
        )
        == HOST
    )


MANY = [f"d{i}.example" for i in range(40)]

CASES: list[tuple[str, Pod, DNSSettings, ResolvConf, list[str]]] = [
    # (case name, pod, agent settings, resolv.conf, warnings)
    (
        "ClusterFirst (default)",
        pod(),
        CLUSTER,
        ResolvConf(("127.96.0.10",), (*CLUSTER_SEARCH, *HOST.searches), ("ndots:5",)),
        [],
    ),
    (
        "ClusterFirst without --cluster-dns: Default",
        pod(dnsPolicy="ClusterFirst"),
        NO_CLUSTER_DNS,
        HOST,
        [],
    ),
    ("ClusterFirst with hostNetwork: Default", pod(hostNetwork=True), CLUSTER, HOST, []),
    (
        "ClusterFirstWithHostNet keeps cluster DNS",
        pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"),
        CLUSTER,
        ResolvConf(("127.96.0.10",), (*CLUSTER_SEARCH, *HOST.searches), ("ndots:5",)),
        [],
    ),
    ("Default: the host's", pod(dnsPolicy="Default"), CLUSTER, HOST, []),
    (
        "None: only dnsConfig",
        pod(
            dnsPolicy="None",
            dnsConfig={
                "nameservers": ["1.2.3.4"],
                "searches": ["a.example"],
                "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
            },
        ),
        CLUSTER,
        ResolvConf(("1.2.3.4",), ("a.example",), ("ndots:2", "edns0")),
        [],
    ),
    (
        "ClusterFirst merged with dnsConfig: appended, options by name",
        pod(
            dnsConfig={
                "nameservers": ["127.96.0.10", "1.2.3.4"],
                "searches": ["svc.cluster.local", "x.example"],
                "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}],
            }
        ),
        CLUSTER,
        ResolvConf(
            ("127.96.0.10", "1.2.3.4"),
            (*CLUSTER_SEARCH, *HOST.searches, "x.example"),
            ("ndots:1", "single-request"),
        ),
        [],
    ),
    (
        "another cluster domain",
        pod(),
        DNSSettings(("127.97.0.10",), "kpy.test."),
        ResolvConf(
            ("127.97.0.10",),
            ("ns.svc.kpy.test", "svc.kpy.test", "kpy.test", *HOST.searches),
            ("ndots:5",),
        ),
        [],
    ),
    (
        "merged nameservers past 3: cut, with a warning",
        pod(dnsPolicy="Default", dnsConfig={"nameservers": ["1.1.1.1", "2.2.2.2"]}),
        CLUSTER,
        ResolvConf(("10.255.255.53", "10.255.255.54", "1.1.1.1"), HOST.searches, HOST.options),
        [
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied "
            "nameserver line is: 10.255.255.53 10.255.255.54 1.1.1.1"
        ],
    ),
    (
        "merged searches past 32: cut, with a warning",
        pod(dnsConfig={"searches": MANY[:30]}),
        CLUSTER,
        ResolvConf(
            ("127.96.0.10",),
            (*CLUSTER_SEARCH, *HOST.searches, *MANY[:27]),
            ("ndots:5",),
        ),
        [
            "Search Line limits were exceeded, some search paths have been omitted, the applied "
            "search line is: " + " ".join((*CLUSTER_SEARCH, *HOST.searches, *MANY[:27]))
        ],
    ),
]


@pytest.mark.parametrize(
    ("name", "the_pod", "settings", "want", "warnings"), CASES, ids=[c[0] for c in CASES]
)
def test_pod_resolv_conf(
    name: str, the_pod: Pod, settings: DNSSettings, want: ResolvConf, warnings: list[str]
) -> None:
    assert pod_resolv_conf(the_pod, settings, HOST) == (want, warnings), name


REFUSED = [
    # (case name, pod, words the error must contain)
    ("None without nameservers", pod(dnsPolicy="None"), "at least one DNS nameserver"),
    (
        "more than 3 nameservers",
        pod(dnsConfig={"nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"]}),
        "spec.dnsConfig.nameservers: must not have more than 3 nameservers",
    ),
    (
        "a nameserver that is not an IP",
        pod(dnsConfig={"nameservers": ["dns.example"]}),
        "'dns.example' must be a valid IP address",
    ),
    (
        "more than 32 searches",
        pod(dnsConfig={"searches": MANY[:33]}),
        "spec.dnsConfig.searches: must not have more than 32 search paths",
    ),
]


@pytest.mark.parametrize(("name", "the_pod", "words"), REFUSED, ids=[c[0] for c in REFUSED])
def test_dns_config_the_api_refuses(name: str, the_pod: Pod, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        pod_resolv_conf(the_pod, CLUSTER, HOST)
    assert words in str(caught.value), name
    assert "pod ns/p" in str(caught.value), name


def test_format() -> None:
    conf = ResolvConf(("127.96.0.10",), CLUSTER_SEARCH, ("ndots:5",))
    assert format_resolv_conf(conf) == (
        "nameserver 127.96.0.10\n"
        "search ns.svc.cluster.local svc.cluster.local cluster.local\n"
        "options ndots:5\n"
    )


def test_mounts_write_the_file(tmp_path: Path) -> None:
    host = tmp_path / "host-resolv.conf"
    host.write_text(HOST_TEXT)
    warned: list[str] = []
    dns = PodDNS(CLUSTER, list, host, warn=lambda _, message: warned.append(message))
    the_pod = pod(containers=[{"name": "c"}])
    container = the_pod.spec.containers[0]
    pod_dir = tmp_path / "pod"

    mounts = dns.mounts(the_pod, container, pod_dir)
    assert mounts == [Mount(str(pod_dir / "resolv.conf"), "/etc/resolv.conf", read_only=True)]
    assert (pod_dir / "resolv.conf").read_text() == (
        "nameserver 127.96.0.10\n"
        "search ns.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n"
        "options ndots:5\n"
    )
    assert warned == []
    # The host's own file: nothing to mount (every runtime gives it already).
    assert dns.mounts(pod(dnsPolicy="Default"), container, pod_dir) == []
    # A container that mounts its own /etc/resolv.conf keeps it.
    own = pod(
        containers=[{"name": "c", "volumeMounts": [{"name": "v", "mountPath": "/etc/resolv.conf"}]}]
    )
    assert dns.mounts(own, own.spec.containers[0], pod_dir) == []


FLAGS = [
    # (case name, kpy-agent flags, DNSSettings or the error's words)
    ("none: no cluster DNS", [], DNSSettings((), "cluster.local")),
    (
        "kubelet's flags",
        ["--cluster-dns", "127.96.0.10", "--cluster-domain", "kpy.test."],
        DNSSettings(("127.96.0.10",), "kpy.test"),
    ),
    (
        "several servers",
        ["--cluster-dns", "10.0.0.10,10.0.0.11"],
        DNSSettings(("10.0.0.10", "10.0.0.11")),
    ),
    ("not an address", ["--cluster-dns", "dns.local"], "'dns.local' is not an IP address"),
]


@pytest.mark.parametrize(("name", "argv", "want"), FLAGS, ids=[c[0] for c in FLAGS])
def test_agent_flags(
    name: str, argv: list[str], want: DNSSettings | str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        got: DNSSettings | str = config_from(argv)[0].dns
    except SystemExit:
        got = capsys.readouterr().err
    if isinstance(want, str):
        assert isinstance(got, str), name
        assert want in got, name
    else:
        assert got == want, name


class _Runtime:
    def __init__(self, name: str) -> None:
        self.name = name


REACHABLE = [
    # (case name, runtime, --cluster-dns, what its pods are given)
    ("process: loopback is the host's", "process", ("127.96.0.10",), ("127.96.0.10",)),
    ("docker: loopback leads nowhere", "docker", ("127.96.0.10",), ()),
    ("docker: the DNS address of a bridge range", "docker", ("172.30.128.10",), ("172.30.128.10",)),
]


@pytest.mark.parametrize(
    ("name", "runtime", "servers", "want"), REACHABLE, ids=[c[0] for c in REACHABLE]
)
def test_cluster_dns_a_runtime_reaches(
    name: str, runtime: str, servers: tuple[str, ...], want: tuple[str, ...]
) -> None:
    got = _reachable_dns(DNSSettings(servers), _Runtime(runtime))  # type: ignore[arg-type]
    assert got.cluster_dns == want, name
