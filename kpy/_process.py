"""Run a kpy component (`kpy-apiserver`, `kpy-controller-manager`, ...) as
a child process: for tests, benchmarks and the local cluster launcher.

`ChildProcess.start()` spawns `python -m <module> <args>`, waits for the
component's ready line on stdout (or for it to die, quoting its log), and
`stop()` sends SIGTERM to that pid, then SIGKILL after a grace; nothing is
ever looked up by name. The child's log (stderr) goes to a file, so a
failure can quote it.

The child is asked to die with its launcher: the launcher puts its pid in
KPY_EXIT_WITH_PARENT and the component calls `exit_with_parent()` first
thing, so an interrupted run leaves nothing behind. (Not a preexec_fn: code
run between fork and exec can crash a child of a gRPC process.)

A `detached` child (what `kpy up` starts) is the opposite: it gets its own
session, writes stdout and stderr to its log file, and outlives the
launcher; its ready line is read from that file. Such a process is stopped
later by its pid (see kpy.cluster), after checking its start time so that a
reused pid is never signalled.
"""

from __future__ import annotations

import ctypes
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import Iterator

PARENT_PID_ENV = "KPY_EXIT_WITH_PARENT"


class StartError(RuntimeError):
    """The component exited or did not get ready; the message quotes its log."""


class ChildProcess:
    """One run of a component; `ready` is a regex its stdout prints once
    it serves (its match is kept in `ready_match`)."""

    def __init__(
        self,
        name: str,
        module: str,
        args: list[str],
        *,
        ready: str,
        log_path: Path | None = None,
        detached: bool = False,
    ) -> None:
        self.name = name
        self.detached = detached
        self.log_path = log_path or _new_log_file(name)
        self.ready_match: re.Match[str] | None = None
        #: every stdout line read so far (launchers parse more than the ready line)
        self.output: list[str] = []
        self._args = [sys.executable, "-m", module, *args]
        self._ready = re.compile(ready)
        self._process: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30.0) -> re.Match[str]:
        """Spawns the component and returns its ready line's match once it
        prints it; StartError (quoting its log) if it exits or is not ready
        within `timeout` seconds. RuntimeError if it already runs."""
        if self._process is not None:
            raise RuntimeError(f"{self.name} already runs (pid {self._process.pid})")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("w") as log:
            if self.detached:
                self._process = subprocess.Popen(
                    self._args,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env=env,
                    start_new_session=True,
                )
            else:
                env[PARENT_PID_ENV] = str(os.getpid())
                self._process = subprocess.Popen(
                    self._args, stdout=subprocess.PIPE, stderr=log, text=True, env=env
                )
        self.ready_match = self._await_line(self._ready, timeout)
        return self.ready_match

    def release(self) -> None:
        """Forgets a detached child without stopping it: it lives on."""
        if not self.detached:
            raise RuntimeError(f"{self.name} is not detached; stop() it instead")
        self._process = None

    def wait_for_line(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """Blocks until the running child prints a line matching `pattern`;
        StartError (quoting its log) if it exits or does not within `timeout`."""
        return self._await_line(re.compile(pattern), timeout)

    def _await_line(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        """The first stdout line matching `pattern`; on exit or timeout the
        child is stopped, its log quoted in a StartError."""
        process = self._process
        if process is None or (process.stdout is None and not self.detached):
            raise RuntimeError(f"{self.name} is not running")
        deadline = time.monotonic() + timeout
        lines = self._log_lines() if self.detached else self._pipe_lines(process)
        while time.monotonic() < deadline:
            for line in next(lines):
                self.output.append(line)
                match = pattern.search(line)
                if match:
                    return match
            if process.poll() is not None:
                code = process.returncode
                self.stop()
                raise StartError(
                    f"{self.name} exited with code {code}; "
                    f"its log ({self.log_path}):\n{self.tail()}"
                )
        self.stop()
        raise StartError(
            f"{self.name} did not print {pattern.pattern!r} within {timeout:.0f} s; "
            f"its log ({self.log_path}):\n{self.tail()}"
        )

    @staticmethod
    def _pipe_lines(process: subprocess.Popen[str]) -> Iterator[list[str]]:
        """Batches of stdout lines, each after waiting up to 0.1 s."""
        assert process.stdout is not None
        while True:
            ready, _, _ = select.select([process.stdout], [], [], 0.1)
            yield [process.stdout.readline()] if ready else []

    def _log_lines(self) -> Iterator[list[str]]:
        """Batches of new complete lines of the log file (a detached child
        writes stdout there), read every 0.1 s."""
        with self.log_path.open() as f:
            pending = ""
            while True:
                pending += f.read()
                *complete, pending = pending.split("\n")
                yield [line + "\n" for line in complete]
                time.sleep(0.1)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the child's pid, SIGKILL after `grace` seconds; idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def kill(self) -> None:
        """Stops the child abruptly (SIGKILL), as a crash would."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        self.stop()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"


async def cancel_on_signal(scope: anyio.CancelScope) -> None:
    """Cancels `scope` at the first SIGTERM or SIGINT: how every component
    process stops cleanly (run it in the task group it should end)."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            scope.cancel()
            return


def exit_with_parent() -> None:
    """When a launcher asked for it (KPY_EXIT_WITH_PARENT=<its pid>), send
    ourselves SIGTERM when that process dies.

    A daemon thread waits on a pidfd of the launcher, which turns readable
    when the whole launcher process exits. (PR_SET_PDEATHSIG, the obvious
    tool, fires when the launcher's *thread* that forked us exits: a
    component started from a worker thread, which anyio retires after 10 s
    idle, would be stopped while its launcher runs on.) Without pidfds
    (Linux < 5.3) it falls back to PR_SET_PDEATHSIG."""
    parent = os.environ.pop(PARENT_PID_ENV, "")
    if not parent.isdigit():
        return
    try:
        fd = os.pidfd_open(int(parent))
    except ProcessLookupError:
        sys.exit(1)  # it died before we asked
    except (OSError, AttributeError):
        _pdeathsig()
    else:
        threading.Thread(
            target=_signal_when_readable, args=(fd,), name="exit-with-parent", daemon=True
        ).start()
    # The pid may have been reused: it must still be our parent.
    if os.getppid() != int(parent):
        sys.exit(1)


def _signal_when_readable(fd: int) -> None:
    select.select([fd], [], [])
    os.kill(os.getpid(), signal.SIGTERM)


def _pdeathsig() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        return  # not Linux: the launcher's stop() is the way out


def _new_log_file(name: str) -> Path:
    fd, path = tempfile.mkstemp(prefix=f"{name}-", suffix=".log")
    os.close(fd)  # start() opens it by name, once per run
    return Path(path)


class ElectedProcess(ChildProcess):
    """A leader-elected component (see kpy.component) as a child process;
    subclasses name it (`component`, `module`). `start()` returns once its
    metrics endpoint is up (`metrics_port` is then set); the replica may
    still be waiting for the Lease (`wait_leading`)."""

    component: str
    module: str

    def __init__(
        self,
        servers: str,
        *,
        identity: str = "",
        metrics_port: int = 0,
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
        detached: bool = False,
    ) -> None:
        args = ["--server", servers, "--metrics-bind-address", f"127.0.0.1:{metrics_port}"]
        if identity:
            args += ["--identity", identity]
        super().__init__(
            self.component,
            self.module,
            [*args, *extra_args],
            ready=rf"{re.escape(self.component)} serving metrics on (\S+):(\d+)",
            log_path=log_path,
            detached=detached,
        )
        self.metrics_port = metrics_port

    def start(self, timeout: float = 30.0) -> re.Match[str]:
        match = super().start(timeout)
        self.metrics_port = int(match.group(2))
        return match

    def wait_leading(self, timeout: float = 60.0) -> None:
        """Blocks until this replica holds the Lease and does its work."""
        self.wait_for_line(rf"{re.escape(self.name)} leading as ", timeout)
