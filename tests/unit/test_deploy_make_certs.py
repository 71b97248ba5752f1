"""deploy/make-certs.py writes what deploy/README.md says: per role and
machine, each certificate with its identity and names, private keys 0600,
and client configs that load and name the right files."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from kpy import pki
from kpy.client.config import load_config

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "make-certs.py"
LAYOUT = (
    *("--control-plane", "machine-1=10.0.0.1", "--control-plane", "machine-2=10.0.0.2"),
    *("--node", "machine-1=10.0.0.1", "--node", "machine-2=10.0.0.2"),
    *("--node", "machine-3=10.0.0.3"),
    *("--etcd", "etcd-1=10.0.0.1", "--etcd", "etcd-2=10.0.0.2", "--etcd", "etcd-3=10.0.0.3"),
)
LOOPBACK = ("127.0.0.1", "localhost")
API_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


def run(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("deploy-pki")
    made = run(directory, *LAYOUT)
    assert made.returncode == 0, made.stderr
    return directory


@dataclass(frozen=True)
class Cert:
    path: str  # under --out; its key is the same path with .key
    cn: str
    o: tuple[str, ...] = ()
    sans: tuple[str, ...] | None = None  # None: a client certificate (no SANs)
    ca: str = "store/pki/ca.crt"  # the CA that signed it


ETCD_CA = "store/pki/etcd/ca.crt"
CERTS = [
    Cert("control-plane/machine-1/pki/apiserver.crt", "kpy-apiserver", (),
         (*LOOPBACK, *API_NAMES, "machine-1", "10.0.0.1", "machine-2", "10.0.0.2", "127.96.0.1")),
    Cert("control-plane/machine-2/pki/apiserver-kubelet-client.crt",
         "kube-apiserver-kubelet-client", ("system:masters",)),
    Cert("control-plane/machine-1/pki/controller-manager.crt", "system:kube-controller-manager"),
    Cert("control-plane/machine-1/pki/scheduler.crt", "system:kube-scheduler"),
    Cert("control-plane/machine-2/pki/scheduler-serving.crt", "kpy-scheduler", (),
         (*LOOPBACK, "machine-1", "10.0.0.1", "machine-2", "10.0.0.2")),
    Cert("control-plane/machine-1/pki/etcd/apiserver-etcd-client.crt",
         "kube-apiserver-etcd-client", ca=ETCD_CA),
    Cert("node/machine-1/pki/node.crt", "system:node:machine-1", ("system:nodes",)),
    Cert("node/machine-3/pki/node.crt", "system:node:machine-3", ("system:nodes",)),
    Cert("node/machine-3/pki/node-serving.crt", "machine-3", (),
         (*LOOPBACK, "machine-3", "10.0.0.3")),
    Cert("node/machine-2/pki/kube-proxy.crt", "system:kube-proxy"),
    Cert("node/machine-2/pki/dns.crt", "system:serviceaccount:kube-system:kube-dns",
         ("system:serviceaccounts", "system:serviceaccounts:kube-system")),
    Cert("etcd/etcd-2/pki/etcd/server.crt", "etcd-2", (), (*LOOPBACK, "10.0.0.2", "etcd-2"),
         ca=ETCD_CA),
    Cert("etcd/etcd-2/pki/etcd/peer.crt", "etcd-2-peer", (), (*LOOPBACK, "10.0.0.2", "etcd-2"),
         ca=ETCD_CA),
    Cert("admin/admin.crt", "kubernetes-admin", ("system:masters",)),
]  # fmt: skip


def test_each_certificate_names_its_identity_and_hosts(out: Path) -> None:
    for case in CERTS:
        pem = (out / case.path).read_bytes()
        info = pki.describe(pem, what=case.path)
        ca = pki.describe((out / case.ca).read_bytes())
        assert (info.common_name, info.organizations) == (case.cn, case.o), case.path
        assert info.issuer == ca.subject, f"{case.path}: signed by {info.issuer}"
        names = (*info.dns_names, *info.ip_addresses)
        if case.sans is None:
            assert names == (), f"{case.path}: a client certificate, no SANs"
        else:
            assert sorted(names) == sorted(set(case.sans)), case.path
        assert pki.load(out / case.path, (out / case.path).with_suffix(".key")), case.path


def test_private_keys_are_0600_and_the_ca_keys_stay_in_the_store(out: Path) -> None:
    keys = list(out.rglob("*.key"))
    assert len(keys) > 20
    for key in keys:
        assert key.stat().st_mode & 0o777 == 0o600, f"{key.relative_to(out)} is not 0600"
    outside = [str(k.relative_to(out)) for k in keys if k.name == "ca.key"]
    assert sorted(outside) == ["store/pki/ca.key", "store/pki/etcd/ca.key"]


@dataclass(frozen=True)
class Config:
    path: str
    cert: str  # the certificate it must present, under --out
    schedulers: tuple[str, ...] = ()


SERVERS = ("10.0.0.1:6443", "10.0.0.2:6443")
CONFIGS = [
    Config("control-plane/machine-1/kubeconfigs/controller-manager.config",
           "store/pki/controller-manager.crt"),
    Config("control-plane/machine-2/kubeconfigs/scheduler.config", "store/pki/scheduler.crt"),
    Config("node/machine-2/kubeconfigs/node.config", "store/pki/nodes/machine-2.crt"),
    Config("node/machine-3/kubeconfigs/kube-proxy.config", "store/pki/kube-proxy.crt"),
    Config("node/machine-1/kubeconfigs/dns.config", "store/pki/dns.crt"),
    Config("admin/config", "store/pki/admin.crt", ("10.0.0.1:10251", "10.0.0.2:10251")),
]  # fmt: skip


def test_client_configs_load_and_name_their_role_directorys_files(out: Path) -> None:
    ca_pem = (out / "store/pki/ca.crt").read_bytes()
    for case in CONFIGS:
        config = load_config(out / case.path)
        assert config.servers == SERVERS, case.path
        assert config.schedulers == case.schedulers, case.path
        assert config.tls is not None, f"{case.path}: no TLS"
        assert config.tls.ca_pem == ca_pem, case.path
        assert config.tls.cert_pem == (out / case.cert).read_bytes(), case.path
        # Relative paths, inside the directory that is copied to the machine.
        role_dir = (out / case.path).parent.parent if "kubeconfigs" in case.path else out / "admin"
        for source in (config.tls.ca_source, config.tls.cert_source):
            assert Path(source).resolve().is_relative_to(role_dir.resolve()), (case.path, source)
        assert "/store/" not in (out / case.path).read_text(), case.path


def test_a_second_run_keeps_every_file_and_a_new_api_server_gets_named(out: Path) -> None:
    store = out / "store/pki"
    before = {p: p.read_bytes() for p in store.rglob("*.crt")}
    again = run(out, *LAYOUT)
    assert again.returncode == 0, again.stderr
    assert "none made" in again.stdout
    assert {p: p.read_bytes() for p in store.rglob("*.crt")} == before
    more = run(out, *LAYOUT, "--control-plane", "machine-3=10.0.0.3")
    assert more.returncode == 0, more.stderr
    assert more.stdout.splitlines()[:2] == [
        "made store/pki/apiserver.crt",
        "made store/pki/scheduler-serving.crt",
    ]
    info = pki.describe((out / "control-plane/machine-3/pki/apiserver.crt").read_bytes())
    assert "10.0.0.3" in info.ip_addresses
    assert (store / "ca.crt").read_bytes() == before[store / "ca.crt"], "same CA"


BAD_ARGS = [
    ("no equals sign", ("--node", "machine-1"), "--node 'machine-1': give NAME=ADDRESS"),
    ("upper-case name", ("--node", "Machine-1=10.0.0.1"), "'Machine-1' is not a valid name"),
    ("node twice", ("--node", "machine-1=10.0.0.1"), "--node: each name once"),
]


def test_bad_arguments_name_the_flag_and_the_fix(tmp_path: Path) -> None:
    for name, extra, message in BAD_ARGS:
        made = run(tmp_path / name, *LAYOUT, *extra)
        assert made.returncode == 2, name
        assert message in made.stderr, f"{name}: {made.stderr}"
    missing = run(tmp_path / "none", "--node", "machine-1=10.0.0.1")
    assert missing.returncode == 2
    assert "name at least one machine with --control-plane NAME=ADDRESS" in missing.stderr
