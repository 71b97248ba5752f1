"""The pure logic of kpyctl's agent verbs, as tables: top's units, columns
and order; drain's pod filter, its messages and --timeout; exec's and
logs' argument forms; which pod a workload's logs show."""

from __future__ import annotations

from typing import Any

import pytest

from kpy.api import codec
from kpy.api.core.v1 import Pod
from kpy.cli._manifests import UsageError
from kpy.cli._pods import pick_pod
from kpy.cli.drain import (
    DAEMONSET_FATAL,
    DAEMONSET_WARNING,
    LOCAL_STORAGE_FATAL,
    LOCAL_STORAGE_WARNING,
    MIRROR_WARNING,
    ORPHAN_DAEMONSET_FATAL,
    ORPHAN_DAEMONSET_WARNING,
    UNMANAGED_FATAL,
    UNMANAGED_WARNING,
    Action,
    Rules,
    Verdict,
    judge,
    parse_duration,
    plan,
)
from kpy.cli.main import build_parser, parse
from kpy.cli.top import (
    Usage,
    cpu_text,
    memory_text,
    node_rows,
    percent_text,
    pod_rows,
    unreachable_nodes,
    usages,
)
from kpy.rpc.apiserver.v1 import ContainerUsage, NodeUsage, PodUsage, StatsResponse

MI = 1024 * 1024

# -- top: units -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nanocores", "want"),
    [
        (0, "0m"),
        (1, "1m"),
        (999_999, "1m"),
        (1_000_000, "1m"),
        (1_000_001, "2m"),
        (2_500_000_000, "2500m"),
    ],
    ids=["idle", "a nanocore rounds up", "just under", "one millicore", "just over", "2.5 cores"],
)
def test_cpu_text(nanocores: int, want: str) -> None:
    assert cpu_text(nanocores) == want


@pytest.mark.parametrize(
    ("memory", "want"),
    [
        (0, "0Mi"),
        (MI - 1, "0Mi"),
        (MI, "1Mi"),
        (12 * MI + MI // 2, "12Mi"),
        (3 * 1024 * MI, "3072Mi"),
    ],
    ids=["nothing", "under a MiB rounds down", "one MiB", "12.5 MiB", "3 GiB"],
)
def test_memory_text(memory: int, want: str) -> None:
    assert memory_text(memory) == want


@pytest.mark.parametrize(
    ("used", "allocatable", "want"),
    [
        (500, 2000, "25%"),
        (2, 3, "66%"),
        (0, 4000, "0%"),
        (3000, 1000, "300%"),
        (5, 0, "<unknown>"),
    ],
    ids=["quarter", "truncated, not rounded", "idle", "over allocatable", "allocatable unknown"],
)
def test_percent_text(used: int, allocatable: int, want: str) -> None:
    assert percent_text(used, allocatable) == want


# -- top: tables ------------------------------------------------------------------------------

LINES = [
    Usage("a", "web", "", 5_000_000, 30 * MI),
    Usage("a", "db", "", 200_000_000, 10 * MI),
    Usage("b", "cache", "", 1, 90 * MI),
]
CONTAINER_LINES = [
    Usage("a", "web", "app", 4_000_000, 20 * MI),
    Usage("a", "web", "sidecar", 1_000_000, 10 * MI),
]


@pytest.mark.parametrize(
    ("options", "lines", "want"),
    [
        (
            {"containers": False, "namespace_column": False},
            LINES,
            [
                ["NAME", "CPU(cores)", "MEMORY(bytes)"],
                ["web", "5m", "30Mi"],
                ["db", "200m", "10Mi"],
                ["cache", "1m", "90Mi"],
            ],
        ),
        (
            {"containers": False, "namespace_column": True, "sort_by": "cpu"},
            LINES,
            [
                ["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"],
                ["a", "db", "200m", "10Mi"],
                ["a", "web", "5m", "30Mi"],
                ["b", "cache", "1m", "90Mi"],
            ],
        ),
        (
            {"containers": False, "namespace_column": False, "sort_by": "memory"},
            LINES,
            [
                ["NAME", "CPU(cores)", "MEMORY(bytes)"],
                ["cache", "1m", "90Mi"],
                ["web", "5m", "30Mi"],
                ["db", "200m", "10Mi"],
            ],
        ),
        (
            {"containers": True, "namespace_column": False},
            CONTAINER_LINES,
            [
                ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"],
                ["web", "app", "4m", "20Mi"],
                ["web", "sidecar", "1m", "10Mi"],
            ],
        ),
        (
            {"containers": True, "namespace_column": True},
            CONTAINER_LINES[:1],
            [
                ["NAMESPACE", "POD", "NAME", "CPU(cores)", "MEMORY(bytes)"],
                ["a", "web", "app", "4m", "20Mi"],
            ],
        ),
    ],
    ids=["pods", "all namespaces by cpu", "by memory", "containers", "containers, all namespaces"],
)
def test_pod_rows(options: dict[str, Any], lines: list[Usage], want: list[list[str]]) -> None:
    assert pod_rows(lines, **options) == want


def test_usages_sum_a_pods_containers_in_name_order() -> None:
    pods = [
        PodUsage(
            namespace="b",
            name="z",
            containers=[ContainerUsage(name="c", cpu_nanocores=1, memory_bytes=MI)],
        ),
        PodUsage(
            namespace="a",
            name="y",
            containers=[
                ContainerUsage(name="app", cpu_nanocores=3_000_000, memory_bytes=2 * MI),
                ContainerUsage(name="log", cpu_nanocores=500_000, memory_bytes=MI),
            ],
        ),
    ]
    assert usages(pods, containers=False) == [
        Usage("a", "y", "", 3_500_000, 3 * MI),
        Usage("b", "z", "", 1, MI),
    ]
    assert usages(pods, containers=True) == [
        Usage("a", "y", "app", 3_000_000, 2 * MI),
        Usage("a", "y", "log", 500_000, MI),
        Usage("b", "z", "c", 1, MI),
    ]


NODES = [
    NodeUsage(
        name="n2",
        cpu_nanocores=1_500_000_000,
        memory_bytes=512 * MI,
        cpu_allocatable_millis=4000,
        memory_allocatable_bytes=2048 * MI,
    ),
    NodeUsage(
        name="n1",
        cpu_nanocores=250_000_000,
        memory_bytes=1024 * MI,
        cpu_allocatable_millis=1000,
        memory_allocatable_bytes=4096 * MI,
    ),
    NodeUsage(name="n3", cpu_nanocores=1_000_000, memory_bytes=MI),
]
NODE_HEADER = ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]
UNKNOWN_ROW = ["<unknown>"] * 4


@pytest.mark.parametrize(
    ("missing", "sort_by", "want"),
    [
        (
            [],
            "",
            [
                NODE_HEADER,
                ["n1", "250m", "25%", "1024Mi", "25%"],
                ["n2", "1500m", "37%", "512Mi", "25%"],
                ["n3", "1m", "<unknown>", "1Mi", "<unknown>"],
            ],
        ),
        (
            ["n9", "n0"],
            "cpu",
            [
                NODE_HEADER,
                ["n2", "1500m", "37%", "512Mi", "25%"],
                ["n1", "250m", "25%", "1024Mi", "25%"],
                ["n3", "1m", "<unknown>", "1Mi", "<unknown>"],
                ["n0", *UNKNOWN_ROW],
                ["n9", *UNKNOWN_ROW],
            ],
        ),
        (
            [],
            "memory",
            [
                NODE_HEADER,
                ["n1", "250m", "25%", "1024Mi", "25%"],
                ["n2", "1500m", "37%", "512Mi", "25%"],
                ["n3", "1m", "<unknown>", "1Mi", "<unknown>"],
            ],
        ),
    ],
    ids=["by name, allocatable unknown on n3", "by cpu, silent nodes last", "by memory"],
)
def test_node_rows(missing: list[str], sort_by: Any, want: list[list[str]]) -> None:
    assert node_rows(NODES, missing, sort_by=sort_by) == want


def test_unreachable_nodes_are_split_from_their_reason() -> None:
    stats = StatsResponse(unreachable=["n1: connection refused: port 10250", "n2"])
    assert unreachable_nodes(stats) == {
        "n1": "connection refused: port 10250",
        "n2": "no reason given",
    }


# -- drain: which pods go ---------------------------------------------------------------------


def make_pod(
    name: str = "p",
    *,
    owner: str = "",
    phase: str = "Running",
    mirror: bool = False,
    empty_dir: bool = False,
) -> Pod:
    meta: dict[str, Any] = {"name": name, "namespace": "ns"}
    if owner:
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner, "name": "o", "uid": "u", "controller": True}
        ]
    if mirror:
        meta["annotations"] = {"kubernetes.io/config.mirror": "hash"}
        meta.setdefault("ownerReferences", []).append(
            {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "n", "controller": False}
        )
    volumes = [{"name": "scratch", "emptyDir": {}}] if empty_dir else []
    made: Pod = codec.from_dict(
        Pod,
        {
            "metadata": meta,
            "spec": {"containers": [{"name": "c", "image": "i"}], "volumes": volumes},
            "status": {"phase": phase},
        },
    )
    return made


NONE = Rules()
FORCE = Rules(force=True)
IGNORE_DS = Rules(ignore_daemonsets=True)
EMPTYDIR = Rules(delete_emptydir_data=True)
ALL = Rules(force=True, ignore_daemonsets=True, delete_emptydir_data=True)

JUDGE_CASES = [
    ("controlled pod goes", make_pod(owner="ReplicaSet"), NONE, True, Verdict(Action.DELETE)),
    ("bare pod refused", make_pod(), NONE, True, Verdict(Action.REFUSE, UNMANAGED_FATAL)),
    ("bare pod with --force", make_pod(), FORCE, True, Verdict(Action.DELETE, UNMANAGED_WARNING)),
    ("finished bare pod goes", make_pod(phase="Succeeded"), NONE, True, Verdict(Action.DELETE)),
    (
        "DaemonSet pod refused",
        make_pod(owner="DaemonSet"),
        FORCE,
        True,
        Verdict(Action.REFUSE, DAEMONSET_FATAL),
    ),
    (
        "DaemonSet pod skipped with --ignore-daemonsets",
        make_pod(owner="DaemonSet"),
        IGNORE_DS,
        True,
        Verdict(Action.SKIP, DAEMONSET_WARNING),
    ),
    (
        "failed DaemonSet pod goes",
        make_pod(owner="DaemonSet", phase="Failed"),
        NONE,
        True,
        Verdict(Action.DELETE),
    ),
    (
        "orphaned DaemonSet pod refused",
        make_pod(owner="DaemonSet"),
        IGNORE_DS,
        False,
        Verdict(Action.REFUSE, ORPHAN_DAEMONSET_FATAL),
    ),
    (
        "orphaned DaemonSet pod with --force",
        make_pod(owner="DaemonSet"),
        FORCE,
        False,
        Verdict(Action.DELETE, ORPHAN_DAEMONSET_WARNING),
    ),
    ("mirror pod skipped", make_pod(mirror=True), ALL, True, Verdict(Action.SKIP, MIRROR_WARNING)),
    (
        "mirror pod with emptyDir still skipped",
        make_pod(mirror=True, empty_dir=True),
        NONE,
        True,
        Verdict(Action.SKIP, MIRROR_WARNING),
    ),
    (
        "emptyDir refused",
        make_pod(owner="ReplicaSet", empty_dir=True),
        FORCE,
        True,
        Verdict(Action.REFUSE, LOCAL_STORAGE_FATAL),
    ),
    (
        "emptyDir with --delete-emptydir-data",
        make_pod(owner="ReplicaSet", empty_dir=True),
        EMPTYDIR,
        True,
        Verdict(Action.DELETE, LOCAL_STORAGE_WARNING),
    ),
    (
        "bare emptyDir pod: the last remark stands",
        make_pod(empty_dir=True),
        ALL,
        True,
        Verdict(Action.DELETE, UNMANAGED_WARNING),
    ),
    (
        "bare emptyDir pod without --force",
        make_pod(empty_dir=True),
        EMPTYDIR,
        True,
        Verdict(Action.REFUSE, UNMANAGED_FATAL),
    ),
]


@pytest.mark.parametrize(
    ("pod", "rules", "daemonset_exists", "want"),
    [case[1:] for case in JUDGE_CASES],
    ids=[case[0] for case in JUDGE_CASES],
)
def test_judge(pod: Pod, rules: Rules, daemonset_exists: bool, want: Verdict) -> None:
    assert judge(pod, rules, daemonset_exists=daemonset_exists) == want


def test_plan_groups_messages_by_kind_in_order() -> None:
    pods = [
        make_pod("bare1"),
        make_pod("ds1", owner="DaemonSet"),
        make_pod("web", owner="ReplicaSet"),
        make_pod("bare2"),
        make_pod("static-n1", mirror=True),
    ]
    refused = plan(pods, NONE, set())
    assert refused.refusals == [
        f"cannot delete {UNMANAGED_FATAL}: ns/bare1, ns/bare2",
        f"cannot delete {DAEMONSET_FATAL}: ns/ds1",
    ]
    allowed = plan(pods, ALL, set())
    assert allowed.refusals == []
    assert [p.metadata.name for p in allowed.delete] == ["bare1", "web", "bare2"]
    assert allowed.warnings == [
        f"{UNMANAGED_WARNING}: ns/bare1, ns/bare2",
        f"{DAEMONSET_WARNING}: ns/ds1",
        f"{MIRROR_WARNING}: ns/static-n1",
    ]
    orphaned = plan([make_pod("ds1", owner="DaemonSet")], FORCE, {("ns", "o")})
    assert [p.metadata.name for p in orphaned.delete] == ["ds1"]


# -- drain: --timeout -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("0s", 0.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("500ms", 0.5),
        ("2m30s", 150.0),
    ],
    ids=["bare zero", "zero", "seconds", "minutes", "hours and minutes", "fraction", "ms", "mixed"],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    ["", "5", "abc", "5x", "-1s", "1s junk"],
    ids=["empty", "no unit", "word", "bad unit", "negative", "junk"],
)
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(UsageError, match=f'invalid duration "{text}" for --timeout'):
        parse_duration(text)


# -- exec and logs: the command line ----------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (
            ["exec", "web", "--", "ls", "-l"],
            {"pod": "web", "command": ["ls", "-l"], "container": "", "stdin": False},
        ),
        (
            ["exec", "web", "-c", "app", "-i", "--", "sh", "-c", "echo hi"],
            {"pod": "web", "command": ["sh", "-c", "echo hi"], "container": "app", "stdin": True},
        ),
        (
            ["exec", "-it", "pod/web", "-n", "prod", "--", "cat", "-n", "x"],
            {"pod": "pod/web", "command": ["cat", "-n", "x"], "namespace": "prod", "tty": True},
        ),
        (
            ["logs", "web", "app", "-f", "--tail", "5", "-p"],
            {
                "pod": "web",
                "positional_container": "app",
                "follow": True,
                "tail": 5,
                "previous": True,
            },
        ),
        (
            ["logs", "deploy/web", "-c", "app"],
            {"pod": "deploy/web", "container": "app", "tail": -1},
        ),
    ],
    ids=[
        "exec: command after --",
        "exec: flags after the pod",
        "exec: flags of the command are its own",
        "logs: positional container and flags",
        "logs: a workload",
    ],
)
def test_command_line(argv: list[str], want: dict[str, Any]) -> None:
    args = vars(parse(build_parser(), argv))
    assert {k: args[k] for k in want} == want


# -- logs of a workload: which pod ------------------------------------------------------------


def candidate(name: str, *, phase: str, ready: bool, created: int, node: str = "n1") -> Pod:
    made: Pod = codec.from_dict(
        Pod,
        {
            "metadata": {"name": name, "creationTimestamp": f"2026-01-01T00:00:{created:02d}Z"},
            "spec": {"nodeName": node},
            "status": {
                "phase": phase,
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            },
        },
    )
    return made


@pytest.mark.parametrize(
    ("pods", "want"),
    [
        (
            [
                candidate("pending", phase="Pending", ready=False, created=1),
                candidate("up", phase="Running", ready=True, created=5),
            ],
            "up",
        ),
        (
            [
                candidate("unready", phase="Running", ready=False, created=1),
                candidate("ready", phase="Running", ready=True, created=9),
            ],
            "ready",
        ),
        (
            [
                candidate("young", phase="Running", ready=True, created=9),
                candidate("old", phase="Running", ready=True, created=1),
            ],
            "old",
        ),
        (
            [
                candidate("unscheduled", phase="Pending", ready=False, created=1, node=""),
                candidate("scheduled", phase="Pending", ready=False, created=9),
            ],
            "scheduled",
        ),
    ],
    ids=["running over pending", "ready over unready", "oldest of equals", "scheduled first"],
)
def test_pick_pod(pods: list[Pod], want: str) -> None:
    assert pick_pod(pods).metadata.name == want
