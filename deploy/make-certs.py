"""Makes every certificate, key and client config of deploy/'s cluster.

    /opt/kpy/.venv/bin/python /opt/kpy/deploy/make-certs.py --out ./kpy-pki \\
        --control-plane machine-1=10.0.0.1 --control-plane machine-2=10.0.0.2 \\
        --node machine-1=10.0.0.1 --node machine-2=10.0.0.2 --node machine-3=10.0.0.3 \\
        --etcd etcd-1=10.0.0.1 --etcd etcd-2=10.0.0.2 --etcd etcd-3=10.0.0.3

The certificates are those `kpy up` makes for a local cluster, by the same
code (kpy.cluster.certs, kpy.cluster.etcd_certs), naming the machines'
addresses instead of 127.0.0.1. Under --out:

    store/                    the master copy of everything, the CA keys
                              included: keep it on this workstation (run the
                              script again with it to add a machine)
    control-plane/<machine>/  copy into /etc/kpy/ of each API server machine
    node/<machine>/           copy into /etc/kpy/ of each machine running pods
    etcd/<member>/            copy into /etc/kpy/ of each etcd machine
    admin/                    copy into ~/.kpy/ of the administrator

A machine with several roles gets each of its directories (they never
hold two different files under one name). Certificates and keys that
exist in store/ are kept (a certificate is issued again only when it
misses a name it must now carry: an API server added later); the role
directories are written anew from store/ each run. Private keys are 0600.
The client configs name their files by relative paths (`../pki/ca.crt`),
read from the config's own directory, so they work wherever the directory
is copied. deploy/README.md walks through the steps.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from kpy.cluster import certs, etcd_certs
from kpy.pki import PKIError

STORE = "store"
API_PORT = 6443  # kpy-apiserver --port in systemd/kpy-apiserver.service
SCHEDULER_PORT = 10251  # the scheduler's Explain service (kpy-scheduler's default)
# The first address of kpy-apiserver's default --service-cluster-ip-range
# (127.96.0.0/16): the `kubernetes` Service that pods dial.
SERVICE_IP = "127.96.0.1"
# DNS-1123 subdomain, as a Node's name must be.
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclass(frozen=True, slots=True)
class Machine:
    """A machine of the layout: its name (host name, Node name or etcd
    member name) and the address (IP or DNS name) it is reached at."""

    name: str
    address: str


@dataclass(frozen=True, slots=True)
class Layout:
    control_plane: tuple[Machine, ...]
    nodes: tuple[Machine, ...]
    etcd: tuple[Machine, ...]
    service_ip: str = SERVICE_IP

    def api_servers(self) -> list[str]:
        return [f"{m.address}:{API_PORT}" for m in self.control_plane]


def parse_machine(word: str, flag: str) -> Machine:
    """NAME=ADDRESS, ValueError naming the flag and the fix otherwise."""
    name, eq, address = word.partition("=")
    if not (name and eq and address):
        raise ValueError(f"{flag} {word!r}: give NAME=ADDRESS, e.g. {flag} machine-1=10.0.0.1")
    if not _NAME.fullmatch(name) or len(name) > 253:
        raise ValueError(
            f"{flag} {word!r}: {name!r} is not a valid name (lower-case letters, digits, "
            "'-' and '.', starting and ending with a letter or digit)"
        )
    return Machine(name, address)


class Writer:
    """Copies files from store/ into the role directories, keeping each
    file's mode (keys stay 0600), and writes the client configs."""

    def copy(self, source: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.unlink(missing_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, source.stat().st_mode & 0o777)
            os.write(fd, source.read_bytes())
        finally:
            os.close(fd)
        os.replace(temporary, target)

    def pair(self, store: Path, stem: str, target: Path) -> None:
        """`<stem>.crt .key` of store/pki as `<target>.crt .key`."""
        for suffix in (".crt", ".key"):
            self.copy(store / f"{stem}{suffix}", target.with_name(target.name + suffix))

    def config(self, target: Path, comment: str, body: str) -> None:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        target.write_text(f"# written by deploy/make-certs.py: {comment}\n{body}")
        target.chmod(0o600)


def make(out: Path, layout: Layout) -> list[str]:
    """Makes store/ (where missing) and every role directory under `out`;
    returns the lines saying what was made. CertError, EtcdCertError or
    PKIError when a file of store/ cannot be used."""
    out = out.absolute()
    store = out / STORE
    before = _snapshot(store)
    cluster = certs.ClusterPKI.open(store)
    names = tuple(h for m in layout.control_plane for h in (m.name, m.address))
    cluster.apiserver(layout.service_ip, hosts=names)
    cluster.server("scheduler-serving", "kpy-scheduler", names)
    for identity in (
        certs.APISERVER_KUBELET_CLIENT,
        certs.CONTROLLER_MANAGER,
        certs.SCHEDULER,
        certs.KUBE_PROXY,
        certs.DNS,
        certs.ADMIN,
    ):
        cluster.client(identity)
    cluster.service_account_keys()
    for m in layout.nodes:
        cluster.node(m.name)
        cluster.node_serving(m.name, (m.address,))
    etcd_store = store / etcd_certs.ETCD_DIR
    etcd_certs.for_machines(
        etcd_store, [etcd_certs.Machine(m.name, m.address) for m in layout.etcd]
    )
    lines = [f"made {p.relative_to(out)}" for p in sorted(_changed(before, _snapshot(store)))]
    if not lines:
        lines.append(f"every certificate was already in {store.relative_to(out)}/; none made")

    pki = store / certs.PKI_DIR
    w = Writer()
    servers = layout.api_servers()

    def client_config(directory: Path, name: str, identity: certs.Identity, what: str) -> None:
        body = certs.render_config(
            servers, Path("../pki/ca.crt"), Path(f"../pki/{name}.crt"), Path(f"../pki/{name}.key")
        )
        w.config(directory / "kubeconfigs" / f"{name}.config", f"{what}, as {identity.user}", body)

    for m in layout.control_plane:
        d = out / "control-plane" / m.name
        w.copy(pki / "ca.crt", d / "pki/ca.crt")
        for stem in ("apiserver", "apiserver-kubelet-client", "scheduler-serving"):
            w.pair(pki, stem, d / "pki" / stem)
        w.copy(pki / "sa.key", d / "pki/sa.key")
        w.copy(pki / "sa.pub", d / "pki/sa.pub")
        for identity, what in (
            (certs.CONTROLLER_MANAGER, "how kpy-controller-manager calls the API"),
            (certs.SCHEDULER, "how kpy-scheduler calls the API"),
        ):
            w.pair(pki, identity.stem, d / "pki" / identity.stem)
            client_config(d, identity.stem, identity, what)
        w.copy(etcd_store / "ca.crt", d / "pki/etcd/ca.crt")
        w.pair(etcd_store, "apiserver-etcd-client", d / "pki/etcd/apiserver-etcd-client")
        lines.append(_wrote(out, d, f"/etc/kpy/ on {m.name} ({m.address})"))
    for m in layout.nodes:
        d = out / "node" / m.name
        w.copy(pki / "ca.crt", d / "pki/ca.crt")
        w.pair(pki, f"nodes/{m.name}", d / "pki/node")
        w.pair(pki, f"nodes/{m.name}-serving", d / "pki/node-serving")
        client_config(
            d, "node", certs.node_identity(m.name), f"how kpy-agent of {m.name} calls the API"
        )
        for identity, what in (
            (certs.KUBE_PROXY, "how kpy-proxy calls the API"),
            (certs.DNS, "how kpy-dns calls the API"),
        ):
            w.pair(pki, identity.stem, d / "pki" / identity.stem)
            client_config(d, identity.stem, identity, what)
        lines.append(_wrote(out, d, f"/etc/kpy/ on {m.name} ({m.address})"))
    for m in layout.etcd:
        d = out / "etcd" / m.name
        w.copy(etcd_store / "ca.crt", d / "pki/etcd/ca.crt")
        w.pair(etcd_store, f"{m.name}/server", d / "pki/etcd/server")
        w.pair(etcd_store, f"{m.name}/peer", d / "pki/etcd/peer")
        lines.append(_wrote(out, d, f"/etc/kpy/ on the machine of {m.name} ({m.address})"))
    admin = out / "admin"
    w.copy(pki / "ca.crt", admin / "ca.crt")
    w.pair(pki, certs.ADMIN.stem, admin / "admin")
    schedulers = "".join(f"  - {m.address}:{SCHEDULER_PORT}\n" for m in layout.control_plane)
    w.config(
        admin / "config",
        f"kpyctl's and the SDK's ~/.kpy/config, as {certs.ADMIN.user} (system:masters): "
        "keep it and admin.key private",
        certs.render_config(servers, Path("ca.crt"), Path("admin.crt"), Path("admin.key"))
        + f"namespace: default\nschedulers:\n{schedulers}",
    )
    lines.append(_wrote(out, admin, "~/.kpy/ of the administrator (kpyctl's config)"))
    lines.append(
        f"keep {STORE}/ here, off the machines: its ca.key and pki/etcd/ca.key sign new "
        "certificates; run this again with the same --out to add a machine"
    )
    return lines


def _snapshot(root: Path) -> dict[Path, int]:
    if not root.exists():
        return {}
    return {p: p.stat().st_mtime_ns for p in root.rglob("*.crt") if p.is_file()}


def _changed(before: dict[Path, int], after: dict[Path, int]) -> list[Path]:
    return [p for p, mtime in after.items() if before.get(p) != mtime]


def _wrote(out: Path, directory: Path, where: str) -> str:
    return f"wrote {directory.relative_to(out)}/  -> copy into {where}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Make every certificate, key and client config of deploy/'s cluster."
    )
    p.add_argument("--out", type=Path, required=True, help="directory to write them to")
    p.add_argument(
        "--control-plane", action="append", default=[], metavar="NAME=ADDRESS",
        help="a machine running kpy-apiserver, the controller manager and the scheduler "
        "(its host name and address; both go into the serving certificates); repeat",
    )  # fmt: skip
    p.add_argument(
        "--node", action="append", default=[], metavar="NAME=ADDRESS",
        help="a machine running kpy-agent, kpy-proxy and kpy-dns: its node-name "
        "(agent.yaml) and KPY_NODE_IP; repeat",
    )  # fmt: skip
    p.add_argument(
        "--etcd", action="append", default=[], metavar="NAME=ADDRESS",
        help="an etcd member (its name in etcd/etcd-N.conf.yml) and address; repeat",
    )  # fmt: skip
    p.add_argument(
        "--service-ip", default=SERVICE_IP, metavar="IP",
        help="the `kubernetes` Service's address, the first of the API servers' "
        f"--service-cluster-ip-range (default {SERVICE_IP})",
    )  # fmt: skip
    args = p.parse_args(argv)
    try:
        layout = Layout(
            tuple(parse_machine(w, "--control-plane") for w in args.control_plane),
            tuple(parse_machine(w, "--node") for w in args.node),
            tuple(parse_machine(w, "--etcd") for w in args.etcd),
            args.service_ip,
        )
    except ValueError as e:
        p.error(str(e))
    for flag, machines in (
        ("--control-plane", layout.control_plane),
        ("--node", layout.nodes),
        ("--etcd", layout.etcd),
    ):
        if not machines:
            p.error(f"name at least one machine with {flag} NAME=ADDRESS")
        seen = [m.name for m in machines]
        if len(set(seen)) != len(seen):
            p.error(f"{flag}: each name once, got {', '.join(seen)}")
    try:
        lines = make(args.out, layout)
    except (certs.CertError, etcd_certs.EtcdCertError, PKIError, OSError) as e:
        print(f"make-certs: {e}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
