"""deploy/'s etcd runs as the README says: certificates from
deploy/etcd-certs.py, a member started from deploy/etcd/etcd-1.conf.yml
(addresses, ports and paths moved to this machine's loopback and a
temporary directory; the member alone in its cluster), serving clients
TLS only to a certificate of its CA, as kpy-apiserver reaches it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kpy.api import errors
from kpy.storage import ClientTLS, EtcdTLSError, Store, etcd_tls, find_etcd_binary, new_client

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.etcd

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_etcd_certs_script_writes_the_readmes_files(tmp_path: Path) -> None:
    out = tmp_path / "etcd-pki"
    members = ["etcd-1=10.0.0.1", "etcd-2=10.0.0.2", "etcd-3=10.0.0.3"]
    made = subprocess.run(
        [sys.executable, str(DEPLOY / "etcd-certs.py"), "--out", str(out), *members],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    per_member = [f"etcd-{n}/{f}" for n in (1, 2, 3) for f in
                  ("peer.crt", "peer.key", "server.crt", "server.key")]  # fmt: skip
    assert written == sorted(
        ["ca.crt", "ca.key", "apiserver-etcd-client.crt", "apiserver-etcd-client.key",
         *per_member]
    )  # fmt: skip
    again = subprocess.run(
        [sys.executable, str(DEPLOY / "etcd-certs.py"), "--out", str(out), *members],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "nothing written" in again.stdout, "existing files are kept"


@pytest.fixture
def deployed_member(
    tmp_path: Path,
) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """deploy/etcd/etcd-1.conf.yml on 127.0.0.1, its files under tmp_path."""
    pki = tmp_path / "etcd-pki"
    subprocess.run(
        [sys.executable, str(DEPLOY / "etcd-certs.py"), "--out", str(pki), "etcd-1=127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    for name in ("server.crt", "server.key", "peer.crt", "peer.key"):
        (pki / name).symlink_to(pki / "etcd-1" / name)
    client, peer = free_port(), free_port()
    text = (DEPLOY / "etcd" / "etcd-1.conf.yml").read_text()
    text = (
        text.replace("https://10.0.0.1:2379,https://127.0.0.1:2379", f"https://127.0.0.1:{client}")
        .replace("10.0.0.1:2379", f"127.0.0.1:{client}")
        .replace(
            "etcd-1=https://10.0.0.1:2380,etcd-2=https://10.0.0.2:2380,etcd-3=https://10.0.0.3:2380",
            f"etcd-1=https://127.0.0.1:{peer}",
        )
        .replace("10.0.0.1:2380", f"127.0.0.1:{peer}")
        .replace("/etc/kpy/pki/etcd", str(pki))
        .replace("/var/lib/kpy/etcd", str(tmp_path / "data"))
    )
    settings = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    assert "10.0.0." not in settings, settings
    assert "/etc/kpy" not in settings, settings
    config = tmp_path / "etcd.conf.yml"
    config.write_text(text)
    with (tmp_path / "etcd.log").open("wb") as log:
        process = subprocess.Popen(
            [find_etcd_binary(), "--config-file", str(config)], stdout=log, stderr=log
        )
    try:
        yield f"127.0.0.1:{client}", pki, process
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


async def test_a_deployed_member_serves_tls_to_the_apiserver_certificate_only(
    deployed_member: tuple[str, Path, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    endpoint, pki, process = deployed_member
    tls = ClientTLS.load(
        pki / "ca.crt", pki / "apiserver-etcd-client.crt", pki / "apiserver-etcd-client.key"
    )
    client = new_client(endpoint, tls=tls, timeout=5)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert await Store(client).current_revision() > 0
                break
            except errors.Unavailable:  # not listening yet
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (tmp_path / "etcd.log").read_text()[-3000:]
                    raise AssertionError(f"etcd did not serve over TLS:\n{log}") from None
                await asyncio.sleep(0.2)
    finally:
        await client.close()
    etcd_tls.check([endpoint], tls)
    with pytest.raises(EtcdTLSError, match="serves TLS, but this client speaks plaintext"):
        etcd_tls.check([endpoint], None)
