"""`kpy add-node`'s naming: the next node's name, and a template node's
command line and log renamed for it."""

from __future__ import annotations

from kpy.cluster.nodes import next_node_name, renamed


def test_next_node_name() -> None:
    cases = [
        ("none yet", [], "kpy-node-1"),
        ("after three", ["kpy-node-1", "kpy-node-2", "kpy-node-3"], "kpy-node-4"),
        ("after the highest, not the count", ["kpy-node-1", "kpy-node-7"], "kpy-node-8"),
        ("numbers, not strings", ["kpy-node-9", "kpy-node-10"], "kpy-node-11"),
        ("other names ignored", ["kpy-node-2", "edge", "kpy-node-x"], "kpy-node-3"),
    ]
    for name, nodes, want in cases:
        assert next_node_name(nodes) == want, name


def test_renamed() -> None:
    cases = [
        ("the name itself", "kpy-node-1", "kpy-node-4"),
        ("a path component", "/c/nodes/kpy-node-1/root", "/c/nodes/kpy-node-4/root"),
        ("a member's name", "kpy-agent-kpy-node-1", "kpy-agent-kpy-node-4"),
        ("a log file", "/c/logs/kpy-proxy-kpy-node-1.log", "/c/logs/kpy-proxy-kpy-node-4.log"),
        ("in a flag's value", "--node-name=kpy-node-1", "--node-name=kpy-node-4"),
        ("not a longer name", "kpy-node-10", "kpy-node-10"),
        ("not a longer name in a path", "/c/nodes/kpy-node-12/x", "/c/nodes/kpy-node-12/x"),
        ("not inside a word", "xkpy-node-1", "xkpy-node-1"),
        ("other words untouched", "--runtime", "--runtime"),
    ]
    for name, word, want in cases:
        assert renamed(word, "kpy-node-1", "kpy-node-4") == want, name
