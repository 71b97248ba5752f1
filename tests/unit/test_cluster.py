"""The pure parts of `kpy up`: the supervisor's back-off and exit texts,
and the cluster uids agents are given or derive."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from kpy.agent.main import cluster_uid_for_dir, config_from
from kpy.agent.runtime.base import check_cluster_uid
from kpy.cluster.local import Member, _tiers, new_cluster_uid, start_time
from kpy.cluster.supervisor import RestartBackoff, describe_exit


@dataclass(frozen=True)
class BackoffCase:
    name: str
    runs: list[tuple[float, float]]  # (started, exited) of each instance, in order
    want: list[float]  # the wait before each restart


BACKOFF_CASES = [
    BackoffCase("first exit waits 1 s", [(0, 5)], [1]),
    BackoffCase("doubling", [(0, 5), (6, 7), (9, 10), (14, 15)], [1, 2, 4, 8]),
    BackoffCase(
        "capped at 30 s",
        [(0, 1), (2, 3), (5, 6), (10, 11), (19, 20), (36, 37), (67, 68)],
        [1, 2, 4, 8, 16, 30, 30],
    ),
    BackoffCase("a run of 60 s starts again at 1 s", [(0, 1), (2, 3), (5, 65)], [1, 2, 1]),
    BackoffCase("59 s is not enough", [(0, 1), (2, 3), (5, 64)], [1, 2, 4]),
]


@pytest.mark.parametrize("case", BACKOFF_CASES, ids=lambda c: c.name)
def test_restart_backoff(case: BackoffCase) -> None:
    backoff = RestartBackoff()
    got = [backoff.delay("kpy-scheduler", started, exited) for started, exited in case.runs]
    assert got == case.want, case.name


def test_restart_backoff_is_per_member() -> None:
    backoff = RestartBackoff()
    backoff.delay("etcd", 0, 1)
    assert backoff.delay("etcd", 2, 3) == 2
    assert backoff.delay("kpy-agent-kpy-node-1", 0, 1) == 1


def test_unknown_start_counts_as_a_short_run() -> None:
    backoff = RestartBackoff()
    assert [backoff.delay("etcd", None, t) for t in (100, 200)] == [1, 2]


@pytest.mark.parametrize(
    ("code", "want"),
    [
        (0, "exit code 0"),
        (1, "exit code 1"),
        (-9, "killed by SIGKILL"),
        (-15, "killed by SIGTERM"),
        (-200, "killed by signal 200"),
        (None, "exit code unknown"),
    ],
)
def test_describe_exit(code: int | None, want: str) -> None:
    assert describe_exit(code) == want


@pytest.mark.parametrize(
    ("uid", "valid"),
    [
        ("0123456789abcdef", True),
        ("root-abc", True),
        ("a", True),
        ("a.b-c", True),
        ("", False),
        ("-a", False),
        ("a-", False),
        ("A", False),  # Docker labels are fine with it; names and claims keep to one case
        ("a_b", False),  # `_` separates the parts of a Docker name
        ("a/b", False),
        ("a\nb", False),
        ("a" * 63, True),
        ("a" * 64, False),
    ],
)
def test_check_cluster_uid(uid: str, valid: bool) -> None:
    if valid:
        assert check_cluster_uid(uid) == uid
    else:
        with pytest.raises(ValueError, match="is not valid: use 1 to 63 lower-case"):
            check_cluster_uid(uid)


def test_new_cluster_uids_are_valid_and_fresh() -> None:
    uids = {check_cluster_uid(new_cluster_uid()) for _ in range(100)}
    assert len(uids) == 100


def test_an_agent_without_a_uid_derives_one_from_its_root_dir(tmp_path: Path) -> None:
    one, two = tmp_path / "run-1" / "node", tmp_path / "run-2" / "node"

    assert cluster_uid_for_dir(one) == cluster_uid_for_dir(one), "stable across restarts"
    assert cluster_uid_for_dir(one) != cluster_uid_for_dir(two), "two test runs never share"
    assert check_cluster_uid(cluster_uid_for_dir(one)).startswith("root-")


def test_the_agent_refuses_a_bad_cluster_uid(capsys: pytest.CaptureFixture[str]) -> None:
    _, settings = config_from(["--cluster-uid", "abc123"])
    assert settings["cluster_uid"] == "abc123"
    with pytest.raises(SystemExit):
        config_from(["--cluster-uid", "Not_Valid"])
    assert "--cluster-uid: cluster uid 'Not_Valid' is not valid" in capsys.readouterr().err


# `kpy status | head`: a reader that goes away ends the command quietly.
_STATUS_SCRIPT = """
import sys
from kpy.cluster import main as cluster_main

def status(args):
    for _ in range(10_000):
        print("x" * 1000, flush=True)
    return 0

cluster_main._status = status
sys.exit(cluster_main.main(["status", "--dir", sys.argv[1]]))
"""


def test_kpy_status_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _STATUS_SCRIPT, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stderr is not None
            assert proc.stdout.read(10) == b"x" * 10
            proc.stdout.close()  # as `head` exits
            err = proc.stderr.read().decode()
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()  # this test's own child, by its pid
    assert (code, err) == (0, "")


def test_down_stops_the_members_in_tiers() -> None:
    """Agents first, then the elected components, then API servers, then
    etcd: each tier at once, so a cluster stops in the time of its slowest
    member per tier rather than the sum of all."""
    names = [
        "etcd-1", "etcd-2", "kpy-apiserver-1", "kpy-apiserver-2", "kpy-controller-manager-1",
        "kpy-scheduler-1", "kpy-scheduler-2", "kpy-agent-kpy-node-1", "kpy-agent-kpy-node-2",
        "kpy-proxy-kpy-node-1",
    ]  # fmt: skip
    members = [Member(n, 100 + i, 1, f"/logs/{n}.log") for i, n in enumerate(names)]
    tiers = [[m.name for m in tier] for tier in _tiers(members)]
    assert tiers == [
        ["kpy-agent-kpy-node-1", "kpy-agent-kpy-node-2", "kpy-proxy-kpy-node-1"],
        ["kpy-controller-manager-1", "kpy-scheduler-1", "kpy-scheduler-2"],
        ["kpy-apiserver-1", "kpy-apiserver-2"],
        ["etcd-1", "etcd-2"],
    ]


def test_an_exited_process_waiting_to_be_reaped_is_not_running() -> None:
    """A member whose supervisor is gone is reaped by pid 1, maybe late:
    `kpy down` must not wait for that."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # exited, not reaped: a zombie
            state = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                break
            time.sleep(0.01)
        assert state == "Z"
        assert start_time(child.pid) == 0
        assert start_time(os.getpid()) != 0
    finally:
        child.wait(timeout=30)  # this test's own child, by its pid
