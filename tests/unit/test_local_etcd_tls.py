"""kpy up's etcd members, as `kpy.cluster.local` configures them (nothing
started): TLS for clients always, for peers with several members, the API
servers' --etcd-* flags; plaintext for `kpy up --insecure`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from kpy.cluster import etcd_certs
from kpy.cluster.local import ClusterState, _etcd_client_flags, _etcd_members

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True)
class MemberCase:
    name: str
    members: int
    insecure: bool
    client: str  # scheme of the client URLs
    peer: str  # scheme of the peer URLs


CASES = [
    MemberCase("one member: clients over TLS, no peers to speak to", 1, False, "https", "http"),
    MemberCase("three members (--ha): clients and peers over TLS", 3, False, "https", "https"),
    MemberCase("kpy up --insecure: plaintext", 1, True, "http", "http"),
    MemberCase("kpy up --insecure --ha: plaintext", 3, True, "http", "http"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_members_and_apiserver_flags(case: MemberCase, tmp_path: Path) -> None:
    files = None if case.insecure else etcd_certs.ensure(tmp_path, peers=case.members > 1)
    names = [f"etcd-{i}" for i in range(1, case.members + 1)] if case.members > 1 else ["etcd"]
    members = _etcd_members(tmp_path, names, files)
    for m in members:
        assert m.client_url.startswith(f"{case.client}://127.0.0.1:"), case.name
        assert m.peer_url.startswith(f"{case.peer}://127.0.0.1:"), case.name
        assert (m.client_tls is None) is case.insecure, case.name
        if files is not None:
            assert m.client_tls == files.serving(), case.name
            assert m.peer_tls == (files.peering() if case.members > 1 else None), case.name
    state = ClusterState(str(tmp_path), "", "simulated", insecure=case.insecure)
    flags = _etcd_client_flags(tmp_path, state)
    if case.insecure:
        assert flags == (), case.name
    else:
        assert files is not None
        assert flags == files.apiserver_flags(), case.name
