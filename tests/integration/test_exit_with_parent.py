"""`kpy._process.exit_with_parent`: a component started by a launcher dies
with the launcher process, and only with it (not with the launcher's thread
that happened to start it). Real processes; each is stopped by its pid."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time

from kpy._process import PARENT_PID_ENV

# A stand-in component: asks to exit with its parent, says so, then waits.
CHILD = (
    "from kpy._process import exit_with_parent\n"
    "exit_with_parent()\n"
    "print('ready', flush=True)\n"
    "import time\n"
    "time.sleep(120)\n"
)

# A launcher: starts the child with its own pid, prints the child's pid, waits.
LAUNCHER = (
    "import os, subprocess, sys, time\n"
    f"env = dict(os.environ, {PARENT_PID_ENV}=str(os.getpid()))\n"
    "child = subprocess.Popen([sys.executable, '-c', sys.argv[1]], env=env,"
    " stdout=subprocess.PIPE, text=True)\n"
    "assert child.stdout.readline() == 'ready\\n'\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(120)\n"
)


def _exited_within(pid: int, seconds: float) -> bool:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], seconds)
        return bool(readable)
    finally:
        os.close(fd)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def test_a_child_outlives_the_thread_that_started_it() -> None:
    started: list[subprocess.Popen[str]] = []

    def start() -> None:
        env = dict(os.environ, **{PARENT_PID_ENV: str(os.getpid())})
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, text=True
        )
        started.append(child)
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"

    thread = threading.Thread(target=start)
    thread.start()
    thread.join(30)
    (child,) = started
    try:
        # PR_SET_PDEATHSIG would have fired as the thread ended.
        assert not _exited_within(child.pid, 1.5), "the child died with its launcher's thread"
    finally:
        child.kill()
        child.wait(10)
        assert child.stdout is not None
        child.stdout.close()


def test_a_child_dies_with_its_launcher_process() -> None:
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, CHILD], stdout=subprocess.PIPE, text=True
    )
    child_pid = 0
    try:
        assert launcher.stdout is not None
        child_pid = int(launcher.stdout.readline())
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(10)
        start = time.monotonic()
        assert _exited_within(child_pid, 10), "the child outlived its launcher"
        assert time.monotonic() - start < 10
    finally:
        _kill(launcher.pid)
        launcher.wait(10)
        if child_pid:
            _kill(child_pid)
        assert launcher.stdout is not None
        launcher.stdout.close()
