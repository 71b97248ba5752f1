"""`kpy-supervisor`: keeps the processes of a `kpy up` cluster running.

The controller manager and the scheduler exit when they lose the API
server or their Lease, so that a supervisor starts them again; on a
machine that is systemd (deploy/systemd), in a `kpy up` cluster it is this
process. It restarts any member that exits (etcd, API servers, controller
managers, schedulers, agents) with its recorded command line, environment
and log (appended to), after a back-off of 1 s doubling to 30 s, reset once
the member ran 60 s; it records each restart, the last exit code and the new
pid and start time in `cluster.json`, and its own log is
`logs/kpy-supervisor.log`.

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
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from kpy import logs
from kpy.cluster.local import ClusterState, Member, start_time

COMPONENT = "kpy-supervisor"
LOG = "kpy-supervisor.log"
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
RESET_AFTER = 60.0  # seconds a member must run for its back-off to start again
_PR_SET_CHILD_SUBREAPER = 36
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

log = logging.getLogger("kpy.cluster.supervisor")


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
        signal.signal(signal.SIGCHLD, lambda *_: None)

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

    def _adopt(self, state: ClusterState, member: Member) -> None:
        watched = self._watched[member.name] = _Watched()
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
        members = {m.pid: m for m in state.members if self._watched[m.name].pidfd is not None}
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
        watched = self._watched[member.name]
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
        state.replace(replace(member, last_exit=code))
        state.save()

    def _restart(self, state: ClusterState, member: Member) -> None:
        if not member.argv:
            log.error("%s has no recorded command line; cannot restart it", member.name)
            return
        restarts = member.restarts + 1
        try:
            with open(member.log, "a") as f:
                f.write(f"\n--- {COMPONENT}: restart {restarts} of {member.name} ---\n")
            pid = spawn(list(member.argv), member.log)
        except OSError as e:
            log.error("cannot restart %s: %s; trying again later", member.name, e)
            self._exited(state, member, member.last_exit)
            return
        started = replace(member, pid=pid, started=start_time(pid), restarts=restarts)
        state.replace(started)
        state.save()
        log.info("restarted %s", member.name, extra={"pid": pid, "restarts": restarts})
        self._watched[member.name].pidfd = _pidfd(started)
        if self._watched[member.name].pidfd is None:  # cannot be: our child waits for us
            self._exited(state, started, None)


def spawn(argv: list[str], log_path: str) -> int:
    """Starts `argv` in a session of its own, stdin from /dev/null, stdout
    and stderr appended to `log_path`, with this process's environment;
    returns its pid. (posix_spawn, not subprocess: a Popen object would reap
    the child behind our back.)"""
    return os.posix_spawn(
        argv[0],
        argv,
        dict(os.environ),
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
