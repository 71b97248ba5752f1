"""`kpy up / status / down` as a user runs them: a whole cluster of
processes in a directory of the test's own, on a port of its own."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from kpy.cluster.local import ClusterState, running

KPY = str(Path(sys.executable).parent / "kpy")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kpy(*words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KPY, *words], capture_output=True, text=True, timeout=180, check=False)


def test_up_status_down(tmp_path: Path) -> None:
    port = str(free_port())
    started = kpy("up", "--dir", str(tmp_path), "--nodes", "2", "--port", port)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert "nodes kpy-node-1, kpy-node-2 Ready" in started.stdout
        state = ClusterState.load(tmp_path)
        assert state is not None
        names = [m.name for m in state.members]
        assert names == [
            "etcd",
            "kpy-apiserver",
            "kpy-controller-manager",
            "kpy-scheduler",
            "kpy-agent-kpy-node-1",
            "kpy-agent-kpy-node-2",
        ]
        assert all(running(m) for m in state.members)
        assert (tmp_path / "config").read_text().endswith(f"127.0.0.1:{port}\n")

        status = kpy("status", "--dir", str(tmp_path))
        assert status.returncode == 0, status.stderr
        assert "kpy-node-2           Ready" in status.stdout

        again = kpy("up", "--dir", str(tmp_path), "--port", port)
        assert again.returncode == 1
        assert "already running" in again.stderr
        assert "kpy down" in again.stderr
    finally:
        stopped = kpy("down", "--dir", str(tmp_path))
    assert stopped.returncode == 0, stopped.stderr
    assert "6 process(es) stopped" in stopped.stdout
    assert not any(running(m) for m in state.members)
    assert kpy("status", "--dir", str(tmp_path)).returncode == 1
