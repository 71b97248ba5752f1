"""Run `kpy-apiserver` as a child process: for tests, benchmarks and the
local cluster launcher.

`APIServerProcess.start()` spawns the server on a free port, waits for its
"serving on" line (or for it to die, quoting its log), and `stop()` sends
SIGTERM to that pid, then SIGKILL after a grace; it never looks a process up
by name. The server's log goes to a file beside its data, so a failure can
quote it.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARENT_PID_ENV = "KPY_EXIT_WITH_PARENT"

_SERVING = re.compile(r"kpy-apiserver serving on (\S+):(\d+)")


class APIServerStartError(RuntimeError):
    pass


class APIServerProcess:
    def __init__(
        self,
        etcd_endpoints: str,
        *,
        port: int = 0,
        bookmark_interval: float | None = None,
        watch_cache_size: int | None = None,
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.etcd_endpoints = etcd_endpoints
        self.requested_port = port
        self.port = 0
        self.log_path = log_path or _new_log_file()
        self._args = [
            sys.executable,
            "-m",
            "kpy.apiserver.main",
            "--etcd-servers",
            etcd_endpoints,
            "--port",
            str(port),
        ]
        if bookmark_interval is not None:
            self._args += ["--bookmark-interval", str(bookmark_interval)]
        if watch_cache_size is not None:
            self._args += ["--watch-cache-size", str(watch_cache_size)]
        self._args += list(extra_args)
        self._process: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the API server is not running")
        return self._process.pid

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        """Spawns the server and returns once it serves (`port` is then
        set); APIServerStartError, with its log, if it exits or does not
        serve within `timeout` seconds. RuntimeError if it already runs."""
        if self._process is not None:
            raise RuntimeError(f"the API server already runs (pid {self._process.pid})")
        log = self.log_path.open("w")
        # The server asks Linux to stop it when we die (see kpy.apiserver.main),
        # so an interrupted run leaves nothing behind. Not a preexec_fn: code
        # run between fork and exec can crash a child of a gRPC process.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", PARENT_PID_ENV: str(os.getpid())}
        self._process = subprocess.Popen(
            self._args,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
        )
        log.close()
        stdout = self._process.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([stdout], [], [], 0.1)
            if ready:
                match = _SERVING.search(stdout.readline())
                if match:
                    self.port = int(match.group(2))
                    return
            if self._process.poll() is not None:
                code = self._process.returncode
                self.stop()
                raise APIServerStartError(
                    f"kpy-apiserver exited with code {code} before serving; "
                    f"its log ({self.log_path}):\n{self._tail()}"
                )
        self.stop()
        raise APIServerStartError(
            f"kpy-apiserver did not start serving within {timeout:.0f} s; "
            f"its log ({self.log_path}):\n{self._tail()}"
        )

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the server's pid, SIGKILL after `grace` seconds;
        idempotent. `port` keeps its value, so a new process can reuse it."""
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
        """Stops the server abruptly (SIGKILL), as a crash would."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        self.stop()

    def _tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _new_log_file() -> Path:
    fd, name = tempfile.mkstemp(prefix="kpy-apiserver-", suffix=".log")
    os.close(fd)  # start() opens it by name, once per run
    return Path(name)
