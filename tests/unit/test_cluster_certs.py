"""`kpy up`'s PKI (kpy.cluster.certs): who each certificate names, that
files are kept across restarts, that nothing is renewed by surprise, and
that `kpy renew-certs` and `kpy status` see every certificate."""

from __future__ import annotations

import argparse
import datetime
import importlib
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from kpy import component, pki
from kpy.client.config import load_config
from kpy.cluster import certs, local
from kpy.cluster.certs import ExpiredError
from kpy.cluster.main import _parser, _up_words

if TYPE_CHECKING:
    from pathlib import Path

NOW = datetime.datetime(2030, 6, 1, tzinfo=datetime.UTC)
SERVERS = "127.0.0.1:26443,127.0.0.1:26444"


def subject(path: Path) -> tuple[str, tuple[str, ...]]:
    info = pki.describe(path.read_bytes())
    return info.common_name, tuple(sorted(info.organizations))


@dataclass(frozen=True)
class Who:
    name: str
    flags: str  # which ClusterPKI method made the files
    file: str  # the client certificate, under pki/
    user: str
    groups: tuple[str, ...]


WHO = [
    Who("admin", "admin", "admin.crt", "kubernetes-admin", ("system:masters",)),
    Who(
        "API server towards agents",
        "apiserver",
        "apiserver-kubelet-client.crt",
        "kube-apiserver-kubelet-client",
        ("system:masters",),
    ),
    Who(
        "controller manager",
        "controller-manager",
        "controller-manager.crt",
        "system:kube-controller-manager",
        (),
    ),
    Who("scheduler", "scheduler", "scheduler.crt", "system:kube-scheduler", ()),
    Who("proxy", "kube-proxy", "kube-proxy.crt", "system:kube-proxy", ()),
    Who(
        "dns, as its ServiceAccount",
        "dns",
        "dns.crt",
        "system:serviceaccount:kube-system:kube-dns",
        ("system:serviceaccounts", "system:serviceaccounts:kube-system"),
    ),
    Who("ingress", "ingress", "ingress.crt", "system:kpy-ingress", ()),
    Who("a node", "agent", "nodes/kpy-node-2.crt", "system:node:kpy-node-2", ("system:nodes",)),
    Who(
        "many simulated nodes",
        "simulated",
        "simulated-nodes.crt",
        "system:kpy-simulated-nodes",
        (),
    ),
]


def make_all(pkis: certs.ClusterPKI) -> dict[str, tuple[str, ...]]:
    """The flags of every process `kpy up` starts, by the names in WHO."""
    pkis.client(certs.ADMIN)
    return {
        "admin": (),
        "apiserver": pkis.apiserver_flags(),
        "controller-manager": pkis.controller_manager_flags(SERVERS),
        "scheduler": pkis.scheduler_flags(SERVERS),
        "kube-proxy": pkis.component_flags(certs.KUBE_PROXY, SERVERS),
        "dns": pkis.component_flags(certs.DNS, SERVERS),
        "ingress": pkis.component_flags(certs.INGRESS, SERVERS),
        "agent": pkis.agent_flags("kpy-node-2", SERVERS),
        "simulated": pkis.simulated_nodes_flags(SERVERS),
    }


def test_each_process_gets_its_own_identity(tmp_path: Path) -> None:
    flags = make_all(certs.ClusterPKI.open(tmp_path))
    for who in WHO:
        path = tmp_path / "pki" / who.file
        assert subject(path) == (who.user, tuple(sorted(who.groups))), who.name
        key = path.with_suffix(".key")
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, f"{who.name}: {key}"
        if "--kubeconfig" in flags[who.flags]:
            config_file = flags[who.flags][flags[who.flags].index("--kubeconfig") + 1]
            config = load_config(config_file)
            assert config.servers == tuple(SERVERS.split(",")), who.name
            assert config.tls is not None, who.name
            assert config.tls.cert_pem == path.read_bytes(), who.name
    assert stat.S_IMODE((tmp_path / "pki").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "pki" / "sa.key").stat().st_mode) == 0o600
    assert b"PUBLIC KEY" in (tmp_path / "pki" / "sa.pub").read_bytes()


def test_the_api_server_serves_tls_and_asks_for_client_certificates(tmp_path: Path) -> None:
    flags = dict(zip(*[iter(certs.ClusterPKI.open(tmp_path).apiserver_flags())] * 2, strict=True))
    assert flags["--client-ca-file"] == str(tmp_path.absolute() / "pki" / "ca.crt")
    info = pki.describe((tmp_path / "pki" / "apiserver.crt").read_bytes())
    assert "127.0.0.1" in info.ip_addresses
    assert "kubernetes.default.svc.cluster.local" in info.dns_names


def test_the_serving_certificate_follows_the_kubernetes_service_ip(tmp_path: Path) -> None:
    pkis = certs.ClusterPKI.open(tmp_path)
    path = tmp_path / "pki" / "apiserver.crt"
    cases = [
        ("first up", "127.96.0.1", True),
        ("same Service range again: kept", "127.96.0.1", False),
        ("another range: issued again", "127.97.0.1", True),
    ]
    for name, ip, remade in cases:
        before = path.read_bytes() if path.exists() else b""
        pkis.apiserver_flags(ip)
        assert (path.read_bytes() != before) == remade, name
        assert ip in pki.describe(path.read_bytes()).ip_addresses, name


def test_a_restart_keeps_every_file(tmp_path: Path) -> None:
    make_all(certs.ClusterPKI.open(tmp_path))
    before = {p: p.read_bytes() for p in (tmp_path / "pki").rglob("*") if p.is_file()}
    again = certs.ClusterPKI.open(tmp_path)
    assert not again.fresh_ca
    make_all(again)
    after = {p: p.read_bytes() for p in (tmp_path / "pki").rglob("*") if p.is_file()}
    assert after == before


def test_a_new_ca_remakes_the_certificates_it_did_not_sign(tmp_path: Path) -> None:
    make_all(certs.ClusterPKI.open(tmp_path))
    old = (tmp_path / "pki" / "admin.crt").read_bytes()
    (tmp_path / "pki" / "ca.crt").unlink()
    (tmp_path / "pki" / "ca.key").unlink()
    fresh = certs.ClusterPKI.open(tmp_path)
    assert fresh.fresh_ca
    make_all(fresh)
    new = (tmp_path / "pki" / "admin.crt").read_bytes()
    assert new != old
    ca = pki.describe((tmp_path / "pki" / "ca.crt").read_bytes())
    assert pki.describe(new).issuer == ca.subject
    # Each is issued once: a process started earlier in the same `kpy up`
    # (every kpy-proxy shares kube-proxy.crt) never sees its files replaced.
    snapshot = {p: p.read_bytes() for p in (tmp_path / "pki").rglob("*") if p.is_file()}
    make_all(fresh)
    assert {p: p.read_bytes() for p in (tmp_path / "pki").rglob("*") if p.is_file()} == snapshot


def test_an_expired_certificate_stops_up_and_says_how_to_renew(tmp_path: Path) -> None:
    year_ago = NOW - datetime.timedelta(days=400)
    pkis = certs.ClusterPKI.open(tmp_path, now=year_ago)
    pkis.client(certs.SCHEDULER, now=year_ago)
    again = certs.ClusterPKI.open(tmp_path, now=NOW)
    with pytest.raises(certs.ExpiredError) as caught:
        again.client(certs.SCHEDULER, now=NOW)
    message = str(caught.value)
    assert "pki/scheduler.crt expired at" in message
    assert "kpy renew-certs" in message


@dataclass(frozen=True)
class Left:
    name: str
    issued_days_ago: int
    days_left: int
    warned: bool


LEFT = [
    Left("new", 0, 365, False),
    Left("a month left", 335, 30, False),
    Left("29 days left", 336, 29, True),
    Left("expired a day ago", 366, -1, True),
]


def test_lifetimes_and_warnings(tmp_path: Path) -> None:
    for case in LEFT:
        directory = tmp_path / case.name.replace(" ", "-")
        issued = NOW - datetime.timedelta(days=case.issued_days_ago)
        certs.ClusterPKI.open(directory, now=NOW - datetime.timedelta(days=400)).client(
            certs.ADMIN, now=issued
        )
        by_path = {str(lt.path): lt for lt in certs.lifetimes(directory, now=NOW)}
        assert next(iter(by_path)) == "pki/ca.crt", case.name
        admin = by_path["pki/admin.crt"]
        assert admin.subject == "CN=kubernetes-admin,O=system:masters", case.name
        assert admin.days_left == case.days_left, case.name
        assert bool(admin.warning) == case.warned, case.name
        assert ("pki/admin.crt" in {str(lt.path) for lt in certs.expiring(directory, now=NOW)}) == (
            case.warned
        ), case.name


def test_up_warns_of_a_certificate_expiring_soon_and_stops_at_an_expired_one(
    tmp_path: Path,
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    pkis = certs.ClusterPKI.open(tmp_path)
    pkis.client(certs.ADMIN, now=now - datetime.timedelta(days=350))
    said: list[str] = []
    local._open_pki(tmp_path, said.append)
    warnings = [line for line in said if line.startswith("WARNING: ")]
    assert len(warnings) == 1, said
    assert "pki/admin.crt (CN=kubernetes-admin,O=system:masters) expires" in warnings[0]
    assert "in 14 day(s)" in warnings[0]
    assert "kpy renew-certs --dir" in warnings[0]

    pkis.client(certs.SCHEDULER, now=now - datetime.timedelta(days=370))
    with pytest.raises(ExpiredError, match=r"pki/scheduler\.crt expired at .*kpy renew-certs"):
        local._open_pki(tmp_path, said.append).scheduler_flags(SERVERS)


def test_renew_issues_the_same_certificates_again(tmp_path: Path) -> None:
    long_ago = NOW - datetime.timedelta(days=360)
    pkis = certs.ClusterPKI.open(tmp_path, now=long_ago)
    pkis.client(certs.DNS, now=long_ago)
    pkis.node_serving("kpy-node-1", now=long_ago)
    before = {str(lt.path): lt for lt in certs.lifetimes(tmp_path, now=NOW)}
    renewed = certs.renew(tmp_path, now=NOW)
    assert {p.name for p in renewed} == {"dns.crt", "kpy-node-1-serving.crt"}
    after = {str(lt.path): lt for lt in certs.lifetimes(tmp_path, now=NOW)}
    for path in ("pki/dns.crt", "pki/nodes/kpy-node-1-serving.crt"):
        assert after[path].subject == before[path].subject, path
        assert after[path].days_left == pki.LEAF_DAYS, path
    assert after["pki/ca.crt"] == before["pki/ca.crt"], "the CA is kept"
    serving = pki.describe((tmp_path / "pki/nodes/kpy-node-1-serving.crt").read_bytes())
    assert "kpy-node-1" in serving.dns_names


def test_renew_signs_each_certificate_with_its_own_ca(tmp_path: Path) -> None:
    certs.ClusterPKI.open(tmp_path).client(certs.ADMIN)
    etcd_ca = pki.new_ca("etcd-ca")
    pki.write(etcd_ca, tmp_path / "pki/etcd/ca.crt", tmp_path / "pki/etcd/ca.key")
    server = pki.issue_server(etcd_ca, "kpy-etcd", client_auth=True)
    pki.write(server, tmp_path / "pki/etcd/server.crt", tmp_path / "pki/etcd/server.key")
    renewed = certs.renew(tmp_path)
    assert sorted(p.name for p in renewed) == ["admin.crt", "server.crt"]
    for path, issuer in [("pki/admin.crt", "CN=kpy-ca"), ("pki/etcd/server.crt", "CN=etcd-ca")]:
        assert pki.describe((tmp_path / path).read_bytes()).issuer == issuer, path
    assert (tmp_path / "pki/etcd/ca.crt").read_bytes() == etcd_ca.cert_pem, "no CA is renewed"


def test_renew_refuses_a_ca_about_to_expire(tmp_path: Path) -> None:
    old = NOW - datetime.timedelta(days=pki.CA_DAYS - 10)
    certs.ClusterPKI.open(tmp_path, now=old)
    with pytest.raises(certs.CertError, match="a CA is not renewed in place"):
        certs.renew(tmp_path, now=NOW)


@dataclass(frozen=True)
class Words:
    name: str
    argv: list[str]
    insecure: bool


WORDS = [
    Words("secure by default", ["up"], False),
    Words("--insecure is kept under the supervisor", ["up", "--insecure"], True),
]


def test_insecure_is_passed_to_the_supervised_starter() -> None:
    for case in WORDS:
        args = _parser().parse_args(case.argv)
        again = _parser().parse_args(_up_words(args))
        assert again.insecure is case.insecure, case.name


def test_components_read_their_kubeconfig_and_server_overrides_it(tmp_path: Path) -> None:
    config = certs.ClusterPKI.open(tmp_path).kubeconfig("scheduler", certs.SCHEDULER, SERVERS)
    cases = [
        ("the file's servers", [], SERVERS.split(",")),
        ("--server wins", ["--server", "127.0.0.1:26999"], ["127.0.0.1:26999"]),
    ]
    for name, extra, servers in cases:
        parser = argparse.ArgumentParser()
        component.add_flags(parser, lease_name="x", metrics_port=0)
        opts = component.options(parser, parser.parse_args(["--kubeconfig", str(config), *extra]))
        assert opts.client.servers == tuple(servers), name
        assert opts.client.tls is not None, name
        assert opts.client.tls.cert_source == str(tmp_path.absolute() / "pki" / "scheduler.crt")


COMPONENTS = [
    ("kpy-agent", "kpy.agent.main", []),
    ("kpy-proxy", "kpy.proxy.main", []),
    ("kpy-dns", "kpy.dns.main", []),
    ("kpy-ingress", "kpy.ingress.main", []),
    ("kpy-controller-manager", "kpy.controllers.main", []),
    ("kpy-scheduler", "kpy.scheduler.main", []),
    ("kpy-operator", "kpy.operator.main", ["pkg.mod:app"]),
]


def test_every_component_takes_kubeconfig() -> None:
    for name, module, positional in COMPONENTS:
        parser = importlib.import_module(module)._parser()
        args = parser.parse_args([*positional, "--kubeconfig", "/etc/kpy/x.config"])
        assert args.kubeconfig == "/etc/kpy/x.config", name


def test_the_default_cluster_s_config_becomes_kpyctl_s_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_config = tmp_path / "home" / ".kpy" / "config"
    monkeypatch.setattr(local, "DEFAULT_DIR", tmp_path / "cluster")
    monkeypatch.setattr(local, "DEFAULT_CONFIG", user_config)
    pkis = certs.ClusterPKI.open(tmp_path / "cluster")
    cases = [
        ("none yet: written", None, True),
        ("written by an earlier kpy up: replaced", "# written by `kpy up`\nservers: [a:1]\n", True),
        ("the user's own: kept", "servers: [10.0.0.1:6443]\n", False),
    ]
    for name, existing, replaced in cases:
        if existing is None:
            user_config.unlink(missing_ok=True)
        else:
            user_config.parent.mkdir(parents=True, exist_ok=True)
            user_config.write_text(existing)
        local._write_client_config(tmp_path / "cluster", ["127.0.0.1:26443"], [], "u1", pkis)
        written = (tmp_path / "cluster" / "config").read_text()
        assert (user_config.read_text() == written) == replaced, name
        if replaced:
            assert load_config(user_config).tls is not None, name
    other = tmp_path / "other"
    other.mkdir()
    user_config.unlink()
    local._write_client_config(other, ["127.0.0.1:26443"], [], "u2", pkis)
    assert not user_config.exists(), "only the default directory's cluster"
