"""bench._security: the PKI and configs a benchmark run makes for itself."""

from __future__ import annotations

import stat
from typing import TYPE_CHECKING

import pytest

from bench import _security
from bench._security import Security
from kpy import pki
from kpy.client.config import load_config

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def secured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Security:
    monkeypatch.setattr(_security, "takes_kubeconfig", lambda module: True)
    return Security.create(tmp_path / "pki", tls=True)


def test_every_client_identity_is_written_with_its_user_and_groups(secured: Security) -> None:
    node = "bench-abc-agent-00"
    node_args = secured.node_args(node)
    simulated_args = secured.simulated_nodes_args()
    cases = [
        # (name, files under pki/, user, groups)
        ("admin", "admin", "kubernetes-admin", ("system:masters",)),
        ("controller manager", "controller-manager", "system:kube-controller-manager", ()),
        ("scheduler", "scheduler", "system:kube-scheduler", ()),
        ("node", f"nodes/{node}", f"system:node:{node}", ("system:nodes",)),
        ("simulated nodes", "simulated-nodes", "system:kpy-simulated-nodes", ()),
    ]
    for name, stem, user, groups in cases:
        cert = secured.directory / f"{stem}.crt"
        key = secured.directory / f"{stem}.key"
        info = pki.describe(cert.read_bytes())
        assert (info.common_name, info.organizations) == (user, groups), name
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, name
        config = load_config(secured.directory / f"{stem}.yaml", servers="127.0.0.1:1")
        assert config.tls is not None, name
        assert config.tls.cert_pem == cert.read_bytes(), name
        assert config.tls.ca_pem == secured.ca_file.read_bytes(), name
    assert node_args == ("--kubeconfig", str(secured.directory / "nodes" / f"{node}.yaml"))
    assert simulated_args == ("--kubeconfig", str(secured.directory / "simulated-nodes.yaml"))
    assert secured.setup()["identity_fallbacks"] == {}
    assert stat.S_IMODE((secured.directory / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(secured.serving_key.stat().st_mode) == 0o600
    serving = pki.describe(secured.serving_cert.read_bytes())
    assert "127.0.0.1" in serving.ip_addresses


def test_the_api_server_and_the_clients_are_secured(secured: Security) -> None:
    args = secured.apiserver_args()
    flags = dict(zip(args[::2], args[1::2], strict=True))
    assert flags == {
        "--tls-cert-file": str(secured.serving_cert),
        "--tls-private-key-file": str(secured.serving_key),
        "--client-ca-file": str(secured.ca_file),
        "--authorization-mode": "Node,RBAC",
    }
    assert secured.environment() == {"KPY_CONFIG": str(secured.directory / "admin.yaml")}
    assert load_config(secured.plaintext_config).tls is None
    assert secured.setup()["tls"] is True
    assert secured.component_args("scheduler") == (
        "--kubeconfig",
        str(secured.directory / "scheduler.yaml"),
    )


def test_a_component_without_kubeconfig_runs_as_the_admin_and_the_setup_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_security, "takes_kubeconfig", lambda module: False)
    monkeypatch.setattr(_security, "simulated_nodes_bound", lambda: False)
    security = Security.create(tmp_path, tls=True)
    cases = [
        (
            "controller manager",
            security.component_args("controller-manager"),
            "kpy-controller-manager",
        ),
        ("node", security.node_args("n1"), "kpy-agent"),
        ("simulated nodes", security.simulated_nodes_args(), "kpy-agent --simulated-nodes"),
    ]
    for name, args, command in cases:
        assert args == (), name
        assert "kubernetes-admin" in security.setup()["identity_fallbacks"][command], name


def test_insecure_makes_no_pki_and_adds_no_flags(tmp_path: Path) -> None:
    security = Security.create(tmp_path, tls=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plaintext.yaml"]
    assert security.apiserver_args() == ()
    assert security.component_args("scheduler") == ()
    assert security.node_args("n1") == ()
    assert security.environment() == {"KPY_CONFIG": str(tmp_path / "plaintext.yaml")}
    assert load_config(security.admin_config).tls is None
    assert security.setup()["tls"] is False


def test_the_simulated_nodes_user_has_a_role_in_the_bootstrap_policy() -> None:
    # the benchmark's scale run calls as this user; without a binding it
    # would be refused everything
    assert _security.simulated_nodes_bound()
