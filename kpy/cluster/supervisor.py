"""`kpy-supervisor`: keeps the processes of a `kpy up` cluster running.

The controller manager and the scheduler exit when they lose the API
server or their Lease, so that a supervisor starts them again; on a
machine that is systemd (deploy/systemd), in a `kpy up` cluster it is this
process. It restarts a member that exits with its recorded command line,
environment and log (appended to), after a back-off of 1 s doubling to 30 s,
reset once the member ran 60 s; it records each restart, the last exit code
and the new pid and start time in `cluster.json`, and its own log is
`logs/kpy-supervisor.log`.

What it restarts (`restarts_after`): a control-plane member (etcd, API
servers, controller managers, schedulers, kpy-dns, ...) whenever it exits,
as systemd's `Restart=always`; a node's process (`kpy-agent-<node>`,
`kpy-proxy-<node>`) only when it failed on its own (a non-zero exit code, or
a signal such as SIGSEGV or SIGABRT), as a machine's kubelet under
`Restart=on-failure`. A node's process that exits 0 or is killed from
outside (SIGKILL, SIGTERM, SIGINT, SIGHUP, SIGQUIT) is held down, `lost`,
and its containers keep running, as a dead kubelet leaves them: the node is
lost until `kpy start-node` (kpy.cluster.nodes) clears the mark. `kpy
stop-node` marks its processes `stopped` before it stops them. Those marks
(`Member.held`) are written by those commands, under `state_lock`, and the
supervisor takes them from cluster.json whenever it reads it: a member
whose mark is cleared, or recorded without a process yet (pid 0), is
started at once, as the supervisor's own child.

How it becomes the members' parent (so that it learns their exit codes):
`kpy up` starts the supervisor first, in a session of its own; the
supervisor marks itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER)
and runs the starter (`kpy up --supervised`), which starts the members
exactly as an unsupervised `kpy up` would and exits. Its orphaned children
are then the supervisor's, which waits for them through pidfds: no polling,
and a pid is never trusted without its start time (a reused pid is never
signalled nor mistaken for a member). The starter's exit code goes back to
`kpy up` on a pipe (`--status-fd`); the supervisor has by then let go of
the terminal.

`kpy down` stops the supervisor first (SIGTERM: it stops restarting and
exits at once, members keep running), then the members by pid.

Members added while it runs (`kpy add-node`, see kpy.cluster.nodes) are
recorded in cluster.json by their starter, which then sends SIGHUP: the
supervisor reads the file again and watches them too. Both sides write the
file under `state_lock`, and the supervisor keeps the members it finds
there that it did not know of (and the marks there), so that neither write
loses the other's.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import logging
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from kpy import logs
from kpy.cluster.local import STATE, ClusterState, Member, start_time

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

COMPONENT = "kpy-supervisor"
LOG = "kpy-supervisor.log"
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
RESET_AFTER = 60.0  # seconds a member must run for its back-off to start again
_PR_SET_CHILD_SUBREAPER = 36
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LOST = "lost"  # Member.held: a node's process killed from outside, or exited 0
STOPPED = "stopped"  # Member.held: stopped by `kpy stop-node`
# Signals that mean "stopped from outside" rather than "failed", for a node's
# process: an operator's or a shutdown's, not a crash.
OUTSIDE_SIGNALS = frozenset(
    {signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT}
)

log = logging.getLogger("kpy.cluster.supervisor")


@contextlib.contextmanager
def state_lock(directory: Path) -> Iterator[None]:
    """Held around every read-modify-write of `directory`'s cluster.json by
    the supervisor and by `kpy add-node` (an flock on a file next to it)."""
    with open(directory / f"{STATE}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def boot_seconds() -> float:
    """Now, on the clock of /proc start times (seconds since boot)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class RestartBackoff:
    """How long a member waits before it is started again: `base` after its
    first exit, doubling with each exit up to `cap`; a member that ran at
    least `reset_after` seconds before it exited waits `base` again. Times
    are passed in (seconds on any one clock)."""

    def __init__(
        self, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP, reset_after: float = RESET_AFTER
    ) -> None:
        self.base = base
        self.cap = cap
        self.reset_after = reset_after
        self._delays: dict[str, float] = {}

    def delay(self, name: str, started_at: float | None, exited_at: float) -> float:
        """The wait before restarting `name`, which ran from `started_at`
        (None: unknown, counted as a short run) until `exited_at`."""
        last = self._delays.get(name)
        ran = exited_at - started_at if started_at is not None else 0.0
        if last is None or ran >= self.reset_after:
            delay = self.base
        else:
            delay = min(last * 2, self.cap)
        self._delays[name] = delay
        return delay


def node_of(name: str, nodes: Iterable[str]) -> str | None:
    """The node whose process member `name` is (its name ends in `-<node>`:
    `kpy-agent-<node>`, `kpy-proxy-<node>`), or None for a control-plane
    member. The longest such node name wins."""
    return max((n for n in nodes if name.endswith(f"-{n}")), key=len, default=None)


def restarts_after(name: str, nodes: Iterable[str], code: int | None) -> bool:
    """Whether member `name` is started again after it exited with `code`
    (Popen's convention: -N is signal N; None: unknown): a control-plane
    member always; a node's process only when it failed on its own (not 0,
    not killed by one of OUTSIDE_SIGNALS). An unknown exit is no evidence
    of a stop from outside: restarted."""
    if node_of(name, nodes) is None or code is None:
        return True
    if code < 0:
        return -code not in {int(s) for s in OUTSIDE_SIGNALS}
    return code != 0


@dataclass(slots=True)
class _Watched:
    """A member the supervisor waits for: its pidfd while it runs, or when
    it is due to start again."""

    pidfd: int | None = None
    restart_at: float | None = None


class Supervisor:
    """Supervises the members recorded in `directory`'s cluster.json; see the
    module docstring. `run()` returns when asked to stop (`stop()`, or
    SIGTERM / SIGINT once `install_signals()` ran)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.backoff = RestartBackoff()
        self._watched: dict[str, _Watched] = {}
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stopping = False
        self._rescan = False
        self._starter: subprocess.Popen[bytes] | None = None

    @property
    def stopping(self) -> bool:
        return self._stopping

    def install_signals(self) -> None:
        """SIGTERM and SIGINT stop `run()`; SIGCHLD wakes it to reap (every
        handled signal wakes its poll through the wakeup fd)."""
        signal.set_wakeup_fd(self._wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())
        # `kpy add-node` recorded members: read cluster.json again.
        signal.signal(signal.SIGHUP, lambda *_: self.rescan())
        signal.signal(signal.SIGCHLD, lambda *_: None)

    def rescan(self) -> None:
        """Asks `run()` to read cluster.json again and watch the members
        recorded there since (`kpy add-node`)."""
        self._rescan = True
        os.write(self._wake_w, b"x")

    def stop(self) -> None:
        self._stopping = True
        if self._starter is not None and self._starter.poll() is None:
            # Interrupted while starting: the starter stops what it started.
            self._starter.send_signal(signal.SIGINT)
        os.write(self._wake_w, b"x")

    def start(self, starter: list[str]) -> int:
        """Runs the starter to its end; its exit code. Its orphans (the
        members) become ours: see the module docstring."""
        _become_subreaper()
        self._starter = subprocess.Popen(starter)
        code = self._starter.wait()
        self._starter = None
        return code

    def run(self) -> None:
        state = self._load()
        for member in state.members:
            self._adopt(state, member)
        if state.supervisor is None or state.supervisor.pid != os.getpid():
            log.warning("cluster.json does not record this process as its supervisor")
        log.info("supervising %d members", len(state.members), extra={"dir": self.directory})
        while not self._stopping:
            if self._rescan:
                self._rescan = False
                with state_lock(self.directory):
                    self._merge_recorded(state)
            for member in list(state.members):
                if member.name not in self._watched:
                    log.info("watching %s, added to the cluster", member.name)
                    self._adopt(state, member)
                self._follow_mark(member)
            self._reap_children(state)
            for member in list(state.members):
                self._step(state, member)
            self._wait(state)
        log.info("stopped; the members keep running", extra={"dir": self.directory})

    def _load(self) -> ClusterState:
        state = ClusterState.load(self.directory)
        if state is None:
            raise RuntimeError(f"no cluster recorded in {self.directory}")
        return state

    def _merge_recorded(self, state: ClusterState) -> None:
        """Adds to `state` the members (and nodes) that cluster.json records
        and `state` does not (added by `kpy add-node`); under `state_lock`."""
        recorded = ClusterState.load(self.directory)
        if recorded is None:
            return
        known = {m.name for m in state.members}
        state.members += [m for m in recorded.members if m.name not in known]
        state.nodes += [n for n in recorded.nodes if n not in state.nodes]
        # The marks are `kpy stop-node`'s and `kpy start-node`'s; ours are
        # written under the same lock as we take them (see _exited).
        marks = {m.name: m.held for m in recorded.members}
        for m in list(state.members):
            if m.name in marks and marks[m.name] != m.held:
                state.replace(replace(m, held=marks[m.name]))

    def _follow_mark(self, member: Member) -> None:
        """A held member is not restarted; one not held whose process is
        gone and not due to start (its mark just cleared, or never started)
        is started at once."""
        watched = self._watched.get(member.name)
        if watched is None or watched.pidfd is not None:
            return
        if member.held:
            watched.restart_at = None
        elif watched.restart_at is None and member.argv:
            log.info("starting %s", member.name)
            watched.restart_at = boot_seconds()

    def _adopt(self, state: ClusterState, member: Member) -> None:
        watched = self._watched[member.name] = _Watched()
        if member.held or member.pid == 0:
            return  # left down, or started by _follow_mark
        watched.pidfd = _pidfd(member)
        if watched.pidfd is None:  # gone before it could be watched
            self._exited(state, member, None)

    def _wait(self, state: ClusterState) -> None:
        """Blocks until a member exits, a restart is due, or a signal."""
        due = [w.restart_at for w in self._watched.values() if w.restart_at is not None]
        timeout = None if not due else max(min(due) - boot_seconds(), 0.0)
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        for watched in self._watched.values():
            if watched.pidfd is not None:
                poller.register(watched.pidfd, select.POLLIN)
        poller.poll(None if timeout is None else int(timeout * 1000) + 1)
        while True:
            try:
                if not os.read(self._wake_r, 64):
                    break
            except BlockingIOError:
                break

    def _reap_children(self, state: ClusterState) -> None:
        """Reaps every child that exited: a member's exit is recorded; any
        other child is an orphan this subreaper adopted (a container shim
        that double-forked away from its agent, say) and is only reaped."""
        members = {
            m.pid: m
            for m in state.members
            if m.name in self._watched and self._watched[m.name].pidfd is not None
        }
        while True:
            try:
                found = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return  # no children at all
            if found is None:
                return
            member = members.pop(found.si_pid, None)
            if member is None:
                os.waitpid(found.si_pid, 0)
                continue
            watched = self._watched[member.name]
            if watched.pidfd is not None:
                os.close(watched.pidfd)
                watched.pidfd = None
            self._exited(state, member, _reap(member.pid))

    def _step(self, state: ClusterState, member: Member) -> None:
        watched = self._watched.get(member.name)
        if watched is None:  # just found in cluster.json: watched from the next turn
            return
        # Readable but not reaped above: it was not our child (gone before
        # it could be adopted), so its exit code is not ours to learn.
        if watched.pidfd is not None and _readable(watched.pidfd):
            os.close(watched.pidfd)
            watched.pidfd = None
            self._exited(state, member, _reap(member.pid))
        if watched.restart_at is not None and boot_seconds() >= watched.restart_at:
            watched.restart_at = None
            self._restart(state, state.member(member.name))

    def _exited(self, state: ClusterState, member: Member, code: int | None) -> None:
        now = boot_seconds()
        exited = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with state_lock(self.directory):
            self._merge_recorded(state)  # `kpy stop-node` may have marked it
            member = state.member(member.name)
            held = member.held or ("" if restarts_after(member.name, state.nodes, code) else LOST)
            if held:
                self._watched[member.name].restart_at = None
                log.warning(
                    "%s exited (%s); left down (%s) until `kpy start-node %s`",
                    member.name,
                    describe_exit(code),
                    held,
                    node_of(member.name, state.nodes),
                    extra={"pid": member.pid},
                )
            else:
                started = member.started / _CLOCK_TICKS if member.started else None
                delay = self.backoff.delay(member.name, started, now)
                self._watched[member.name].restart_at = now + delay
                log.warning(
                    "%s exited (%s); restarting it in %g s",
                    member.name,
                    describe_exit(code),
                    delay,
                    extra={"pid": member.pid},
                )
            state.replace(replace(member, last_exit=code, held=held, exited=exited))
            state.save()

    def _restart(self, state: ClusterState, member: Member) -> None:
        if not member.argv:
            log.error("%s has no recorded command line; cannot restart it", member.name)
            return
        error: OSError | None = None
        with state_lock(self.directory):
            self._merge_recorded(state)  # `kpy stop-node` may have marked it meanwhile
            member = state.member(member.name)
            if member.held:
                return
            first = member.pid == 0  # recorded by `kpy add-node`, never started
            restarts = member.restarts + (0 if first else 1)
            try:
                with open(member.log, "a") as f:
                    if not first:
                        f.write(f"\n--- {COMPONENT}: restart {restarts} of {member.name} ---\n")
                pid = spawn(list(member.argv), member.log)
            except OSError as e:
                error = e
            else:
                started = replace(member, pid=pid, started=start_time(pid), restarts=restarts)
                state.replace(started)
                state.save()
        if error is not None:
            log.error("cannot start %s: %s; trying again later", member.name, error)
            self._exited(state, member, member.last_exit)
            return
        log.info("started %s", member.name, extra={"pid": pid, "restarts": restarts})
        self._watched[member.name].pidfd = _pidfd(started)
        if self._watched[member.name].pidfd is None:  # cannot be: our child waits for us
            self._exited(state, started, None)


def spawn(argv: list[str], log_path: str, env: Mapping[str, str] | None = None) -> int:
    """Starts `argv` in a session of its own, stdin from /dev/null, stdout
    and stderr appended to `log_path`, with `env` (default: this process's
    environment); returns its pid. (posix_spawn, not subprocess: a Popen
    object would reap the child behind our back.)"""
    return os.posix_spawn(
        argv[0],
        argv,
        dict(os.environ if env is None else env),
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )


def describe_exit(code: int | None) -> str:
    """An exit status as `kpy status` shows it (Popen's convention: -N is
    signal N)."""
    if code is None:
        return "exit code unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _pidfd(member: Member) -> int | None:
    """A pidfd on the member's process, or None if that process (pid and
    start time) is gone."""
    try:
        fd = os.pidfd_open(member.pid)
    except ProcessLookupError:
        return None
    # Checked after opening: the fd now pins the process it names.
    if start_time(member.pid) != member.started:
        os.close(fd)
        return None
    return fd


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def _reap(pid: int) -> int | None:
    """The exit code of our child `pid` (it has exited), or None if it was
    not our child (nothing to learn: its parent reaped it)."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status)


def _become_subreaper() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=COMPONENT, description="Start a kpy cluster and keep its processes running."
    )
    p.add_argument("--dir", type=Path, required=True, help="the cluster directory")
    p.add_argument(
        "--status-fd", type=int, help="write the starter's exit code here, then close it"
    )
    p.add_argument("starter", nargs=argparse.REMAINDER, help="-- the command that starts it")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    starter = args.starter[1:] if args.starter[:1] == ["--"] else args.starter
    supervisor = Supervisor(args.dir)
    supervisor.install_signals()
    code = supervisor.start(starter) if starter else 0
    # The starter wrote the logs directory afresh: only now is there a log
    # to write to, and the terminal (or a caller's pipes) is let go.
    log_path = args.dir / "logs" / LOG
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    logs.configure("INFO")
    if args.status_fd is not None:
        os.write(args.status_fd, f"{code}\n".encode())
        os.close(args.status_fd)
    if code != 0 or supervisor.stopping:
        log.error("the cluster did not start (exit code %d); nothing to supervise", code)
        return code or 1
    try:
        supervisor.run()
    except Exception:
        log.exception("%s failed; the members keep running unsupervised", COMPONENT)
        return 1
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
