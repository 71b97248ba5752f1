"""kpy-supervisor's restart policy: the control plane always comes back; a
node's processes only when they failed on their own (systemd's
`Restart=on-failure` for a kubelet)."""

from __future__ import annotations

import signal

from kpy.cluster.supervisor import node_of, restarts_after

NODES = ["kpy-node-1", "kpy-node-2", "kpy-node-10"]

# (case, member, exit code as Popen gives it, restarted?)
RESTART_CASES: list[tuple[str, str, int | None, bool]] = [
    ("etcd killed", "etcd", -signal.SIGKILL, True),
    ("API server exits 0", "kpy-apiserver", 0, True),
    ("controller manager exits 1", "kpy-controller-manager-1", 1, True),
    ("scheduler terminated", "kpy-scheduler", -signal.SIGTERM, True),
    ("kpy-dns killed", "kpy-dns", -signal.SIGKILL, True),
    ("agent exits 1", "kpy-agent-kpy-node-2", 1, True),
    ("agent exits 2", "kpy-agent-kpy-node-2", 2, True),
    ("agent segfaults", "kpy-agent-kpy-node-2", -signal.SIGSEGV, True),
    ("agent aborts", "kpy-agent-kpy-node-2", -signal.SIGABRT, True),
    ("agent bus error", "kpy-agent-kpy-node-2", -signal.SIGBUS, True),
    ("agent illegal instruction", "kpy-agent-kpy-node-2", -signal.SIGILL, True),
    ("agent floating point error", "kpy-agent-kpy-node-2", -signal.SIGFPE, True),
    ("agent exit unknown", "kpy-agent-kpy-node-2", None, True),
    ("agent exits 0", "kpy-agent-kpy-node-2", 0, False),
    ("agent killed", "kpy-agent-kpy-node-2", -signal.SIGKILL, False),
    ("agent terminated", "kpy-agent-kpy-node-2", -signal.SIGTERM, False),
    ("agent interrupted", "kpy-agent-kpy-node-2", -signal.SIGINT, False),
    ("agent hung up", "kpy-agent-kpy-node-2", -signal.SIGHUP, False),
    ("agent quit", "kpy-agent-kpy-node-2", -signal.SIGQUIT, False),
    ("proxy killed", "kpy-proxy-kpy-node-1", -signal.SIGKILL, False),
    ("proxy exits 1", "kpy-proxy-kpy-node-1", 1, True),
    ("agent of node 10 killed", "kpy-agent-kpy-node-10", -signal.SIGKILL, False),
]


def test_restarts_after() -> None:
    for case, member, code, want in RESTART_CASES:
        got = restarts_after(member, NODES, code)
        assert got == want, f"{case}: restarts_after({member!r}, {code}) = {got}, want {want}"


NODE_CASES: list[tuple[str, str, str | None]] = [
    ("agent", "kpy-agent-kpy-node-1", "kpy-node-1"),
    ("proxy", "kpy-proxy-kpy-node-2", "kpy-node-2"),
    ("node 10 is not node 1", "kpy-agent-kpy-node-10", "kpy-node-10"),
    ("etcd", "etcd-1", None),
    ("API server", "kpy-apiserver", None),
    ("a node's name alone is no member of it", "kpy-node-3", None),
]


def test_node_of() -> None:
    for case, member, want in NODE_CASES:
        got = node_of(member, NODES)
        assert got == want, f"{case}: node_of({member!r}) = {got!r}, want {want!r}"
