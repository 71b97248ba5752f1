"""The `kubernetes` Service's address and the endpoint an API server
advertises (`kpy.apiserver.master_endpoints`), as pure functions."""

from __future__ import annotations

import ipaddress

from kpy.apiserver.master_endpoints import advertised, kubernetes_service_ip


def test_kubernetes_service_ip_is_the_first_usable_address() -> None:
    cases = [
        ("kpy's default range", "127.96.0.0/16", "127.96.0.1"),
        ("a cluster's own /16", "127.101.0.0/16", "127.101.0.1"),
        ("kpy's Docker service range", "172.30.128.0/20", "172.30.128.1"),
        ("a /31 has no network address", "127.96.0.4/31", "127.96.0.4"),
        ("a /32 is its one address", "127.96.0.9/32", "127.96.0.9"),
    ]
    for name, network, want in cases:
        got = kubernetes_service_ip(ipaddress.IPv4Network(network))
        assert got == want, f"{name}: {got}"


def test_advertised_address() -> None:
    cases = [
        ("loopback", "127.0.0.1", "127.0.0.1"),
        ("an address of this machine", "10.0.0.5", "10.0.0.5"),
        ("IPv4 wildcard", "0.0.0.0", "127.0.0.1"),
        ("IPv6 wildcard", "::", "127.0.0.1"),
        ("a name", "localhost", "127.0.0.1"),
    ]
    for name, bind, want in cases:
        assert advertised(bind) == want, name
