"""kpy.door's pure parts: who passes a door, what it says to those who do
not, and how a failed handshake reads from the client's side."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from kpy import pki
from kpy.auth.attributes import UserInfo
from kpy.door import Door, ServingTLS, TLSFileError, handshake_problem

if TYPE_CHECKING:
    from pathlib import Path

KUBELET_CLIENT = "kube-apiserver-kubelet-client"
AGENT = Door('the agent of node "n1"', frozenset({KUBELET_CLIENT}))
SCHEDULER = Door("the scheduler's explain service")


def test_who_passes() -> None:
    cases = [
        ("the API server's kubelet client", AGENT, UserInfo(KUBELET_CLIENT), True),
        ("an admin", AGENT, UserInfo("kubernetes-admin", ("system:masters",)), True),
        ("a node", AGENT, UserInfo("system:node:n1", ("system:nodes",)), False),
        ("a user's name as a group", AGENT, UserInfo("x", (KUBELET_CLIENT,)), False),
        ("the scheduler's door: an admin", SCHEDULER, UserInfo("a", ("system:masters",)), True),
        ("the scheduler's door: anyone else", SCHEDULER, UserInfo(KUBELET_CLIENT), False),
    ]  # fmt: skip
    for name, door, user, allowed in cases:
        assert door.allows(user) is allowed, name


def test_refusals_name_the_user_and_who_is_answered() -> None:
    cases = [
        (
            "a node at the agent",
            AGENT,
            UserInfo("system:node:n2", ("system:nodes", "system:authenticated")),
            'user "system:node:n2" (groups system:nodes, system:authenticated) may not call '
            'the agent of node "n1": it answers only users "kube-apiserver-kubelet-client" '
            "(--authorized-clients) and members of group system:masters",
        ),
        (
            "a user with no groups at the scheduler",
            SCHEDULER,
            UserInfo("jane"),
            'user "jane" may not call the scheduler\'s explain service: it answers only '
            "members of group system:masters",
        ),
    ]
    for name, door, user, message in cases:
        refused = door.refusal(user)
        assert (refused.code, refused.message) == (403, message), name


def test_handshake_problems_from_grpc_details() -> None:
    cases = [
        (
            "a plaintext server",
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Tls "
            "handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:100000f7:SSL "
            "routines:OPENSSL_internal:WRONG_VERSION_NUMBER: Invalid certificate verification",
            "plaintext",
        ),
        (
            "a server of another CA",
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Tls "
            "handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL "
            "routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unable to get local issuer",
            "untrusted",
        ),
        (
            "an expired server certificate",
            "Tls handshake failed: CERTIFICATE_VERIFY_FAILED: certificate has expired",
            "expired",
        ),
        ("a name mismatch", "Peer name 127.0.0.2 is not in peer certificate; Hostname", "hostname"),
        (
            "the server refused us",
            "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:1: "
            "Socket closed",
            "closed",
        ),
        (
            "nobody listens",
            "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:1: "
            "Failed to connect to remote host: Connection refused",
            None,
        ),
    ]
    for name, details, problem in cases:
        assert handshake_problem(details) == problem, name


def test_serving_tls_from_flags(tmp_path: Path) -> None:
    ca = pki.new_ca()
    pki.write(ca, tmp_path / "ca.crt", tmp_path / "ca.key")
    pki.write(pki.issue_server(ca), tmp_path / "s.crt", tmp_path / "s.key")
    cert, key, client_ca = tmp_path / "s.crt", tmp_path / "s.key", tmp_path / "ca.crt"
    assert ServingTLS.from_flags(None, None, None) is None
    loaded = ServingTLS.from_flags(cert, key, client_ca)
    assert loaded == ServingTLS(cert.read_bytes(), key.read_bytes(), client_ca.read_bytes())
    cases = [
        ("no key", (cert, None, client_ca), "--tls-cert-file, --client-ca-file without "
         "--tls-private-key-file: the TLS door needs all three"),
        ("only a CA", (None, None, client_ca), "--client-ca-file without --tls-cert-file and "
         "--tls-private-key-file"),
        ("a CA that is a key", (cert, key, key), f"--client-ca-file: {key} holds no PEM "
         "certificate"),
    ]  # fmt: skip
    for name, files, message in cases:
        with pytest.raises(TLSFileError) as caught:
            ServingTLS.from_flags(*files)
        assert message in str(caught.value), name
