"""kpy-supervisor and members recorded after it started (`kpy add-node`):
told by SIGHUP, it restarts them too, and starts those recorded without a
process; its own writes of cluster.json keep a member recorded there
meanwhile. A node's process killed from outside is left down (`lost`)
until its mark is cleared (`kpy start-node`); one that crashed comes back.
Real processes (`sleep`) stand in for the members; every one is stopped by
its pid."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from kpy.cluster.local import ClusterState, Member, running, start_time
from kpy.cluster.supervisor import state_lock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

SLEEP = shutil.which("sleep") or "/bin/sleep"


def member(name: str, directory: Path) -> tuple[Member, subprocess.Popen[bytes]]:
    argv = (SLEEP, "300")
    process = subprocess.Popen(argv)
    log = str(directory / "logs" / f"{name}.log")
    return Member(name, process.pid, start_time(process.pid), log, argv=argv), process


def until(check: Callable[[], bool], what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {seconds:.0f} s"
        time.sleep(0.1)


def recorded(directory: Path, name: str) -> Member | None:
    state = ClusterState.load(directory)
    assert state is not None
    return next((m for m in state.members if m.name == name), None)


@contextlib.contextmanager
def supervised(directory: Path, first: Member, nodes: tuple[str, ...] = ()) -> Iterator[int]:
    """A supervisor of a cluster.json recording `first` (and `nodes`); its
    pid. Stops it, then every member recorded, by pid."""
    (directory / "logs").mkdir()
    state = ClusterState(str(directory), "127.0.0.1:1", "process", members=[first])
    state.nodes = list(nodes)
    state.save()
    command = [sys.executable, "-m", "kpy.cluster.supervisor", "--dir", str(directory)]
    supervisor = subprocess.Popen(command)
    try:
        log = directory / "logs" / "kpy-supervisor.log"
        until(lambda: log.exists() and "supervising" in log.read_text(), "the supervisor ready")
        yield supervisor.pid
    finally:
        supervisor.terminate()
        supervisor.wait(timeout=10)
        last = ClusterState.load(directory)
        for m in last.members if last is not None else []:
            if running(m):
                os.kill(m.pid, signal.SIGKILL)


def test_an_added_member_is_restarted_after_sighup(tmp_path: Path) -> None:
    first, first_process = member("first", tmp_path)
    added, added_process = member("added", tmp_path)
    with supervised(tmp_path, first) as supervisor:
        with state_lock(tmp_path):
            state = ClusterState.load(tmp_path)
            assert state is not None
            state.members.append(added)
            state.save()
        os.kill(supervisor, signal.SIGHUP)
        time.sleep(0.5)  # the supervisor reads cluster.json again
        added_process.kill()
        added_process.wait()

        def restarted() -> bool:
            now = recorded(tmp_path, "added")
            return now is not None and now.restarts == 1 and running(now)

        until(restarted, "the added member restarted")
    first_process.kill()
    first_process.wait()


def test_the_supervisors_writes_keep_a_member_added_meanwhile(tmp_path: Path) -> None:
    first, first_process = member("first", tmp_path)
    added, added_process = member("added", tmp_path)
    with supervised(tmp_path, first):
        with state_lock(tmp_path):
            state = ClusterState.load(tmp_path)
            assert state is not None
            state.members.append(added)
            state.save()
        # No SIGHUP: the supervisor writes cluster.json when `first` exits.
        first_process.kill()
        first_process.wait()

        def first_restarted() -> bool:
            now = recorded(tmp_path, "first")
            return now is not None and now.restarts == 1

        until(first_restarted, "first restarted")
        assert recorded(tmp_path, "added") == added
    added_process.kill()
    added_process.wait()


def mark(directory: Path, name: str, held: str) -> None:
    """What `kpy stop-node` and `kpy start-node` write."""
    with state_lock(directory):
        state = ClusterState.load(directory)
        assert state is not None
        state.replace(replace(state.member(name), held=held))
        state.save()


def test_a_node_process_killed_from_outside_stays_down_until_started(tmp_path: Path) -> None:
    agent, agent_process = member("kpy-agent-n1", tmp_path)
    with supervised(tmp_path, agent, nodes=("n1",)) as supervisor:
        # Not the supervisor's child: how it ended is unknown to it, which
        # is no evidence of a kill from outside: restarted.
        agent_process.kill()
        agent_process.wait()

        def restarted(times: int) -> Callable[[], bool]:
            def check() -> bool:
                m = recorded(tmp_path, "kpy-agent-n1")
                return m is not None and m.restarts == times and running(m)

            return check

        until(restarted(1), "the agent restarted")
        # Crashed (SIGSEGV): a failure, restarted.
        now = recorded(tmp_path, "kpy-agent-n1")
        assert now is not None
        os.kill(now.pid, signal.SIGSEGV)
        until(restarted(2), "the crashed agent restarted")
        # Killed from outside: lost, and not restarted.
        now = recorded(tmp_path, "kpy-agent-n1")
        assert now is not None
        os.kill(now.pid, signal.SIGKILL)

        def lost() -> bool:
            m = recorded(tmp_path, "kpy-agent-n1")
            return m is not None and m.held == "lost"

        until(lost, "the killed agent marked lost")
        time.sleep(4.5)  # past the back-off of its third exit (4 s)
        down = recorded(tmp_path, "kpy-agent-n1")
        assert down is not None
        assert not running(down), "left down"
        assert (down.last_exit, down.restarts) == (-signal.SIGKILL, 2)
        assert down.exited.endswith("Z"), down.exited
        # The mark cleared, and SIGHUP: started again, the supervisor's child.
        mark(tmp_path, "kpy-agent-n1", "")
        os.kill(supervisor, signal.SIGHUP)

        def started_again() -> bool:
            m = recorded(tmp_path, "kpy-agent-n1")
            return m is not None and m.restarts == 3 and running(m) and not m.held

        until(started_again, "the agent started again")
        # Marked stopped, then terminated: left down, and still "stopped".
        mark(tmp_path, "kpy-agent-n1", "stopped")
        again = recorded(tmp_path, "kpy-agent-n1")
        assert again is not None
        os.kill(again.pid, signal.SIGTERM)
        until(lambda: not running(again), "the agent stopped")
        time.sleep(1.5)
        after = recorded(tmp_path, "kpy-agent-n1")
        assert after is not None
        assert (after.held, after.restarts, after.last_exit) == ("stopped", 3, -signal.SIGTERM)
        assert not running(after)


def test_a_member_recorded_without_a_process_is_started(tmp_path: Path) -> None:
    first, first_process = member("first", tmp_path)
    with supervised(tmp_path, first, nodes=("n2",)) as supervisor:
        log = str(tmp_path / "logs" / "kpy-agent-n2.log")
        with state_lock(tmp_path):
            state = ClusterState.load(tmp_path)
            assert state is not None
            state.members.append(Member("kpy-agent-n2", 0, 0, log, argv=(SLEEP, "300")))
            state.save()
        os.kill(supervisor, signal.SIGHUP)

        def started() -> bool:
            m = recorded(tmp_path, "kpy-agent-n2")
            return m is not None and m.pid != 0 and running(m)

        until(started, "the recorded agent started")
        now = recorded(tmp_path, "kpy-agent-n2")
        assert now is not None
        assert now.restarts == 0, "a first start is no restart"
        # The supervisor's child: it learns that it was killed, and keeps it down.
        os.kill(now.pid, signal.SIGKILL)

        def lost() -> bool:
            m = recorded(tmp_path, "kpy-agent-n2")
            return m is not None and m.held == "lost" and m.last_exit == -signal.SIGKILL

        until(lost, "the agent marked lost, killed by SIGKILL")
    first_process.kill()
    first_process.wait()
