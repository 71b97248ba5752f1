"""The token port and the `kubernetes` Service, against a real etcd: private
API servers in the test's loop, serving mTLS (--client-ca-file) on their
port and bearer tokens on their --token-port, as `kpy up` runs them.

- On the token port a token is its user, a caller without one is
  Unauthorized, and a client certificate is not asked for (so it does not
  authenticate anyone there); the mTLS port still refuses token-only callers.
- Each server with a token port keeps Service default/kubernetes (the range's
  first IP, 443/https) and lists itself in its EndpointSlice and Endpoints;
  a second server adds itself, a stopping one withdraws, and the Lease of a
  server that died without withdrawing is dropped once it expires.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from ipaddress import IPv4Network
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from kpy.api import errors
from kpy.api.coordination.v1 import Lease
from kpy.api.core.v1 import Endpoints, Service
from kpy.api.discovery.v1 import EndpointSlice
from kpy.api.scheme import scheme
from kpy.apiserver import main as apiserver_main
from kpy.apiserver import master_endpoints
from kpy.apiserver.authentication import TLSConfig
from kpy.apiserver.service_alloc import PortRange, ServiceAllocator, ServiceRanges
from kpy.auth.authentication import Chain, TokenAuthenticator, X509Authenticator
from kpy.client import Client, load_config
from kpy.client.client import TLSHandshakeFailed
from kpy.storage import Store, new_client
from tests.integration._apiserver import serving
from tests.integration.test_apiserver_tls import ADMIN, CA, SERVING, TOKENS, kpy_config, whoami

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from kpy.apiserver.server import APIServer
    from kpy.storage import EtcdServer


@contextlib.asynccontextmanager
async def _server(
    etcd_server: EtcdServer, prefix: str, *, token_port: int | None = 0
) -> AsyncIterator[APIServer]:
    """An API server requiring client certificates of CA on its port, and
    serving token callers on a token port (None: none); both take alice's
    token."""
    async with serving(
        etcd_server,
        "token-port",
        token_port=token_port,
        prefix=prefix,
        tls=TLSConfig(SERVING.cert_pem, SERVING.key_pem, CA.cert_pem),
        authenticators=Chain([X509Authenticator(), TokenAuthenticator(TOKENS)]),
    ) as server:
        yield server


def _admin(tmp_path: Path, server: APIServer) -> Client:
    config = kpy_config(
        tmp_path,
        f"127.0.0.1:{server.port}",
        certificate_authority=CA.cert_pem,
        client_certificate=ADMIN.cert_pem,
        client_key=ADMIN.key_pem,
    )
    return Client(load_config(config), retry_timeout=5.0)


@pytest.mark.timeout(120)
async def test_token_port_takes_tokens_and_asks_for_no_certificate(
    etcd_server: EtcdServer, tmp_path: Path
) -> None:
    async with _server(etcd_server, f"/tp-{uuid.uuid4().hex[:8]}") as server:
        assert server.token_port
        assert server.token_port != server.port
        tokens = f"127.0.0.1:{server.token_port}"
        mtls = f"127.0.0.1:{server.port}"

        alice = kpy_config(tmp_path, tokens, certificate_authority=CA.cert_pem, token="alice-token")
        assert await whoami(alice) == ("alice", ["dev", "system:authenticated"], "u-alice")
        async with Client(load_config(alice), retry_timeout=5.0) as client:  # a whole call too
            with pytest.raises(errors.Forbidden):  # RBAC applies there as on the port
                await client.list(Service, namespace="default")

        cases: list[tuple[str, dict[str, bytes | str]]] = [
            ("no credentials", {"certificate_authority": CA.cert_pem}),
            ("a bad token", {"certificate_authority": CA.cert_pem, "token": "wrong"}),
            # Not asked for, the admin's certificate is never sent: no one is known.
            (
                "a client certificate and no token",
                {
                    "certificate_authority": CA.cert_pem,
                    "client_certificate": ADMIN.cert_pem,
                    "client_key": ADMIN.key_pem,
                },
            ),
        ]
        for name, fields in cases:
            config = kpy_config(tmp_path, tokens, **fields)
            began = time.monotonic()
            with pytest.raises(errors.Unauthorized) as caught:
                await whoami(config, retry_timeout=20.0)
            assert str(caught.value) == "Unauthorized", name
            assert time.monotonic() - began < 10.0, f"{name}: refused at once, not retried"

        # The admin's certificate still works on the mTLS port ...
        admin = kpy_config(
            tmp_path,
            mtls,
            certificate_authority=CA.cert_pem,
            client_certificate=ADMIN.cert_pem,
            client_key=ADMIN.key_pem,
        )
        assert (await whoami(admin))[0] == "admin"
        # ... which still refuses a caller with a token and no certificate.
        token_only = kpy_config(tmp_path, mtls, certificate_authority=CA.cert_pem, token="t")
        with pytest.raises(TLSHandshakeFailed) as refused:
            await whoami(token_only, retry_timeout=1.0)
        assert "may require a client certificate" in str(refused.value)
        assert "use the server's --token-port" in str(refused.value)


async def _eventually(check: Any, what: str, seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        try:
            got = await check()
            if got:
                return got
        except errors.NotFound:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        await anyio.sleep(0.1)


async def _endpoints(client: Client) -> tuple[dict[str, tuple[list[str], list[int]]], Any]:
    """The kubernetes EndpointSlices as {name: (addresses, ports)}, and the
    Endpoints' subsets as [(ips, ports)]."""
    slices = await client.list(
        EndpointSlice, namespace="default", label_selector="kubernetes.io/service-name=kubernetes"
    )
    by_name = {
        s.metadata.name: (
            [a for e in s.endpoints for a in e.addresses if e.conditions.ready],
            [p.port for p in s.ports if p.name == "https"],
        )
        for s in slices.items
    }
    endpoints = await client.get(Endpoints, "kubernetes", namespace="default")
    subsets = [([a.ip for a in s.addresses], [p.port for p in s.ports]) for s in endpoints.subsets]
    return by_name, subsets


@pytest.mark.timeout(180)
async def test_kubernetes_service_lists_every_api_server(
    etcd_server: EtcdServer, tmp_path: Path
) -> None:
    prefix = f"/tp-{uuid.uuid4().hex[:8]}"
    async with _server(etcd_server, prefix) as first, _admin(tmp_path, first) as admin:
        svc = await _eventually(
            lambda: admin.get(Service, "kubernetes", namespace="default"), "the Service"
        )
        assert svc.spec.cluster_ip == "127.96.0.1"  # the first of 127.96.0.0/16
        assert not svc.spec.selector
        assert [(p.name, p.port, p.protocol, p.target_port.int_val) for p in svc.spec.ports] == [
            ("https", 443, "TCP", first.token_port)
        ]
        assert dict(svc.metadata.labels) == {"component": "apiserver", "provider": "kubernetes"}
        alone = (
            {"kubernetes": (["127.0.0.1"], [first.token_port])},
            [(["127.0.0.1"], [first.token_port])],
        )

        async def listed_alone() -> bool:
            return await _endpoints(admin) == alone

        await _eventually(listed_alone, "the first server listed")

        # A server that died without withdrawing: its Lease expired long ago.
        dead = Lease()
        dead.metadata.name = "apiserver-endpoint-127.0.0.1-1"
        dead.metadata.labels[master_endpoints.LEASE_LABEL] = "true"
        dead.spec.holder_identity = "127.0.0.1:1"
        dead.spec.lease_duration_seconds = 15
        dead.spec.renew_time.FromSeconds(int(time.time()) - 60)
        await admin.create(dead, namespace="kube-system")

        async with _server(etcd_server, prefix) as second:
            both = {
                "kubernetes": (["127.0.0.1"], [min(first.token_port, second.token_port)]),
                f"kubernetes-{max(first.token_port, second.token_port)}": (
                    ["127.0.0.1"],
                    [max(first.token_port, second.token_port)],
                ),
            }
            ports = sorted((first.token_port, second.token_port))
            want = (both, [(["127.0.0.1"], [ports[0]]), (["127.0.0.1"], [ports[1]])])

            async def listed_both() -> bool:
                return await _endpoints(admin) == want

            await _eventually(listed_both, "both servers listed")
            leases = await admin.list(
                Lease, namespace="kube-system", label_selector=master_endpoints.LEASE_LABEL
            )
            assert sorted(lease.spec.holder_identity for lease in leases.items) == sorted(
                f"127.0.0.1:{p}" for p in ports
            ), "the expired Lease is gone"

        # The second one stopped: it withdrew, well before its Lease would
        # expire (its slice may have been the one named `kubernetes`: the
        # first server's next round names its own so).
        async def withdrawn() -> bool:
            slices, subsets = await _endpoints(admin)
            return list(slices.values()) == list(alone[0].values()) and subsets == alone[1]

        await _eventually(withdrawn, "the second server withdrawn", seconds=5.0)


def test_token_port_flags_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kpy import pki

    pki.write(SERVING, tmp_path / "tls.crt", tmp_path / "tls.key")
    (tmp_path / "tokens.csv").write_text("t1,bob,1\n")
    tls = ["--tls-cert-file", str(tmp_path / "tls.crt"), "--tls-private-key-file"]
    tls.append(str(tmp_path / "tls.key"))
    tokens = ["--token-auth-file", str(tmp_path / "tokens.csv")]
    cases = [
        ("without TLS", ["--token-port", "7443"], "--token-port needs TLS"),
        ("without a token authenticator", [*tls, "--token-port", "7443"], "give --service-acc"),
        ("the same port", [*tls, *tokens, "--port", "7443", "--token-port", "7443"], "overlaps"),
        (
            "overlapping workers",
            [*tls, *tokens, "--port", "7443", "--token-port", "7444", "--workers", "2"],
            "overlaps",
        ),
        ("out of range", [*tls, *tokens, "--token-port", "70000"], "between 0 and 65535"),
    ]
    for name, argv, error in cases:
        parser = apiserver_main._parser()
        args = parser.parse_args(argv)
        with pytest.raises(SystemExit):
            apiserver_main._check_token_port(parser, args)
        err = capsys.readouterr().err
        assert error in err, (name, err)
    parser = apiserver_main._parser()
    apiserver_main._check_token_port(
        parser, parser.parse_args([*tls, *tokens, "--token-port", "0"])
    )


async def test_the_kubernetes_ip_is_given_to_another_service_last(
    etcd_server: EtcdServer,
) -> None:
    """In 127.96.0.0/29 (6 usable addresses) five Services without a
    requested IP get .2 to .6; the sixth, with nothing else left, gets .1."""
    client = new_client(etcd_server.endpoint)
    try:
        store = Store(client, prefix=f"/svc-first-{uuid.uuid4().hex[:8]}")
        ranges = ServiceRanges(IPv4Network("127.96.0.0/29"), PortRange(30000, 30001))
        allocator = ServiceAllocator(store, scheme.resolve("services"), ranges)
        got = []
        for i in range(6):
            svc = Service()
            svc.metadata.name, svc.metadata.namespace, svc.metadata.uid = f"s{i}", "d", f"u{i}"
            svc.spec.ports.add(port=80)
            made: Any = await allocator.create(svc)
            got.append(made.spec.cluster_ip)
        assert sorted(got[:5]) == [f"127.96.0.{i}" for i in range(2, 7)], got
        assert got[5] == "127.96.0.1", got
    finally:
        await client.close()


@pytest.mark.timeout(120)
async def test_a_service_holding_the_kubernetes_ip_is_named(
    etcd_server: EtcdServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A Service made before the API servers had a token port took the
    range's first IP: the `kubernetes` Service cannot be made, the log says
    what to do, and its endpoints are kept all the same."""
    prefix = f"/tp-{uuid.uuid4().hex[:8]}"
    async with (
        _server(etcd_server, prefix, token_port=None) as plain,
        _admin(tmp_path, plain) as admin,
    ):
        squatter = Service()
        squatter.metadata.name = "squatter"
        squatter.spec.cluster_ip = "127.96.0.1"
        squatter.spec.ports.add(port=80)
        await admin.create(squatter, namespace="default")
    async with _server(etcd_server, prefix) as server, _admin(tmp_path, server) as admin:

        async def endpoints_written() -> bool:
            slices, _ = await _endpoints(admin)
            return slices == {"kubernetes": (["127.0.0.1"], [server.token_port])}

        await _eventually(endpoints_written, "the endpoints")
        with pytest.raises(errors.NotFound):
            await admin.get(Service, "kubernetes", namespace="default")
    warnings = [r.getMessage() for r in caplog.records if "default/kubernetes" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "cannot create Service default/kubernetes at 127.96.0.1" in warnings[0]
    assert "--service-cluster-ip-range" in warnings[0]
