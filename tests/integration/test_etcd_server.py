"""The embedded etcd launcher: it starts a healthy etcd and leaves nothing behind."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kpy.storage import EtcdServer, EtcdStartError, new_client

if TYPE_CHECKING:
    from kpy.storage import EtcdServer as _EtcdServer


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def health(server: _EtcdServer) -> object:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{server.endpoint}/health", timeout=5) as response:
        return json.loads(response.read())["health"]


def test_start_and_stop_leave_no_process_and_no_temp_dir() -> None:
    server = EtcdServer(unsafe_no_fsync=True)
    with server:
        pid, data_dir = server.pid, server.data_dir
        assert alive(pid)
        assert server.host == "127.0.0.1"
        assert server.endpoint == f"127.0.0.1:{server.port}"
        assert health(server) == "true"
        assert (data_dir / "etcd.log").is_file()
    assert not alive(pid), f"etcd pid {pid} survived stop()"
    assert not data_dir.exists(), "the temporary data directory was not removed"
    server.stop()  # stopping twice is harmless


async def test_a_given_data_dir_is_kept_and_its_data_survive_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "etcd"
    with EtcdServer(data_dir, unsafe_no_fsync=True) as server:
        client = new_client(server.endpoint)
        await client.put(b"/kpy-test/kept", b"yes")
        await client.close()
        first_pid = server.pid
    assert not alive(first_pid)
    assert (data_dir / "etcd.log").is_file()

    with EtcdServer(data_dir) as server:
        client = new_client(server.endpoint)
        kept = await client.get(b"/kpy-test/kept")
        await client.close()
    assert kept is not None
    assert kept.value == b"yes"


def test_a_failed_start_explains_itself_and_leaves_no_process() -> None:
    server = EtcdServer(extra_args=["--no-such-flag"], start_timeout=10)
    with pytest.raises(EtcdStartError, match="etcd exited with code") as caught:
        server.start()
    assert "flag provided but not defined" in str(caught.value)
    assert not server.running
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.pid


async def test_a_client_of_several_endpoints_uses_the_one_that_answers(
    etcd_server: EtcdServer, unused_port: int
) -> None:
    from kpy.storage import Store

    client = new_client(f"127.0.0.1:{unused_port},{etcd_server.endpoint}", timeout=10)
    try:
        assert await Store(client).current_revision() > 0
    finally:
        await client.close()


@pytest.mark.parametrize(
    "endpoints",
    ["", "127.0.0.1", "127.0.0.1:x", "127.0.0.1:2379,nohost"],
    ids=["empty", "no port", "bad port", "one bad of two"],
)
def test_malformed_endpoints_are_refused(endpoints: str) -> None:
    with pytest.raises(ValueError, match="etcd endpoint"):
        new_client(endpoints)


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
