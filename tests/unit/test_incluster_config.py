"""The SDK's in-cluster config (`kpy.client.config.load_incluster_config`,
client-go's InClusterConfig): a process in a pod finds the API server from
the `kubernetes` Service's variables and its ServiceAccount's files; and
`load_config()` falls back to it only when no kpy config is in the way.
A temporary directory stands in for /var/run/secrets/kubernetes.io/serviceaccount."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from kpy import pki
from kpy.client import ConfigError, load_config
from kpy.client.client import TokenFile
from kpy.client.config import in_cluster, load_incluster_config

if TYPE_CHECKING:
    from pathlib import Path

CA = pki.new_ca("incluster-ca")
IN_POD = {"KUBERNETES_SERVICE_HOST": "127.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def service_account_dir(
    root: Path, *, token: str | None = "tok-1", ca: bool = True, namespace: str | None = "dev"
) -> Path:
    """What the kube-api-access volume holds: token, ca.crt, namespace."""
    directory = root / "serviceaccount"
    directory.mkdir()
    if token is not None:
        (directory / "token").write_text(token)
    if ca:
        (directory / "ca.crt").write_bytes(CA.cert_pem)
    if namespace is not None:
        (directory / "namespace").write_text(namespace)
    return directory


@dataclass(frozen=True)
class Case:
    name: str
    env: dict[str, str] = field(default_factory=lambda: dict(IN_POD))
    token: str | None = "tok-1"
    ca: bool = True
    namespace: str | None = "dev"
    want_servers: tuple[str, ...] = ("127.96.0.1:443",)
    want_namespace: str = "dev"
    want_error: str = ""


CASES = [
    Case("a pod's files and variables"),
    Case("POD_NAMESPACE wins over the file", env={**IN_POD, "POD_NAMESPACE": "other"},
         want_namespace="other"),
    Case("no namespace file: default", namespace=None, want_namespace="default"),
    Case("an IPv6 service address is bracketed",
         env={"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"},
         want_servers=("[fd00::1]:443",)),
    Case("no service variables", env={},
         want_error="KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined"),
    Case("no port variable", env={"KUBERNETES_SERVICE_HOST": "127.96.0.1"},
         want_error="KUBERNETES_SERVICE_PORT must be defined"),
    Case("no token file", token=None, want_error=r"token-file: cannot read .*token"),
    Case("an empty token", token="\n", want_error="token: must be a non-empty string"),
    Case("no CA", ca=False, want_error=r"certificate-authority: cannot read .*ca\.crt"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_load_incluster_config(case: Case, tmp_path: Path) -> None:
    directory = service_account_dir(
        tmp_path, token=case.token, ca=case.ca, namespace=case.namespace
    )
    if case.want_error:
        with pytest.raises(ConfigError, match=case.want_error):
            load_incluster_config(directory, case.env)
        return
    config = load_incluster_config(directory, case.env)
    assert config.servers == case.want_servers, case.name
    assert config.namespace == case.want_namespace, case.name
    assert config.tls is not None, case.name
    assert config.tls.ca_pem == CA.cert_pem, case.name
    assert config.tls.cert_pem is None, case.name  # a pod has no client certificate
    assert config.token == "tok-1", case.name
    assert config.token_file == str(directory / "token"), case.name
    assert str(directory) in config.source, case.name


def test_the_token_is_read_again_when_the_agent_replaces_it(tmp_path: Path) -> None:
    directory = service_account_dir(tmp_path)
    config = load_incluster_config(directory, IN_POD)
    reader = TokenFile(config.token_file, config.token)
    assert reader.current() == "tok-1"
    replacement = directory / "token.new"
    replacement.write_text("tok-2-longer")
    replacement.rename(directory / "token")  # as the agent writes it: atomically
    assert reader.current() == "tok-2-longer"


@dataclass(frozen=True)
class FallbackCase:
    name: str
    env: dict[str, str]
    home_config: bool = False
    kpy_config: bool = False
    token: bool = True
    want_in_cluster: bool = True


FALLBACK_CASES = [
    FallbackCase("in a pod, no kpy config", IN_POD),
    FallbackCase("~/.kpy/config wins", IN_POD, home_config=True, want_in_cluster=False),
    FallbackCase("KPY_CONFIG wins", IN_POD, kpy_config=True, want_in_cluster=False),
    FallbackCase("no KUBERNETES_SERVICE_HOST: not a pod", {}, want_in_cluster=False),
    FallbackCase("no token: not a pod with a ServiceAccount", IN_POD, token=False,
                 want_in_cluster=False),
]  # fmt: skip


@pytest.mark.parametrize("case", FALLBACK_CASES, ids=lambda c: c.name)
def test_load_config_falls_back_to_incluster(
    case: FallbackCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("KPY_CONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    if case.home_config:
        (home / ".kpy").mkdir()
        (home / ".kpy" / "config").write_text("servers: [10.0.0.1:6443]\n")
    if case.kpy_config:
        (tmp_path / "named").write_text("servers: [10.0.0.2:6443]\n")
        monkeypatch.setenv("KPY_CONFIG", str(tmp_path / "named"))
    directory = service_account_dir(tmp_path, token="tok-1" if case.token else None)
    assert in_cluster(directory) == (bool(case.env) and case.token), case.name
    config = load_config(service_account_dir=directory)
    if case.want_in_cluster:
        assert config.servers == ("127.96.0.1:443",), case.name
        assert config.token_file == str(directory / "token"), case.name
        assert config.namespace == "dev", case.name
    else:
        assert config.token == "", case.name
        assert config.servers[0] != "127.96.0.1:443", case.name
    # flags still win over the in-cluster server, as over a file's
    assert load_config(servers="127.0.0.1:7000", service_account_dir=directory).servers == (
        "127.0.0.1:7000",
    )
