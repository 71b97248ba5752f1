"""Run `kpy-apiserver` as a child process: for tests, benchmarks and the
local cluster launcher (see kpy._process for the contract: stopped by pid,
dies with its launcher, log kept in a file)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpy._process import ChildProcess, StartError

if TYPE_CHECKING:
    import re
    from pathlib import Path

APIServerStartError = StartError


class APIServerProcess(ChildProcess):
    def __init__(
        self,
        etcd_endpoints: str,
        *,
        port: int = 0,
        bookmark_interval: float | None = None,
        watch_cache_size: int | None = None,
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
        detached: bool = False,
        workers: int = 1,
    ) -> None:
        """`workers` > 1 runs `kpy-apiserver --workers N`: N servers on
        `port`, `port`+1, ... (any free ports with 0), supervised by the
        process this object starts and stops."""
        args = ["--etcd-servers", etcd_endpoints, "--port", str(port)]
        if workers != 1:
            args += ["--workers", str(workers)]
        if bookmark_interval is not None:
            args += ["--bookmark-interval", str(bookmark_interval)]
        if watch_cache_size is not None:
            args += ["--watch-cache-size", str(watch_cache_size)]
        super().__init__(
            "kpy-apiserver",
            "kpy.apiserver.main",
            [*args, *extra_args],
            ready=r"kpy-apiserver serving on (\S+):(\d+)(?: \(workers: (\S+); pids: (\S+)\))?",
            log_path=log_path,
            detached=detached,
        )
        self.etcd_endpoints = etcd_endpoints
        self.port = port
        self.workers = workers
        #: every worker's port (one entry without workers), set by start()
        self.ports: list[int] = [port]
        #: each worker's pid by its port, as `kpy-apiserver --workers` reported them
        self.worker_pids: dict[int, int] = {}

    @property
    def address(self) -> str:
        """The (first) server's address."""
        return f"127.0.0.1:{self.port}"

    @property
    def addresses(self) -> list[str]:
        """Every worker's address, worker 1 first (one without workers)."""
        return [f"127.0.0.1:{port}" for port in self.ports]

    def start(self, timeout: float = 30.0) -> re.Match[str]:
        """Returns once the server (every worker) serves; `port`, `ports` and
        `worker_pids` are then set (and kept after stop(), so a new process
        can reuse the ports)."""
        match = super().start(timeout)
        self.port = int(match.group(2))
        listed, pids = match.group(3), match.group(4)
        self.ports = (
            [int(a.rpartition(":")[2]) for a in listed.split(",")] if listed else [self.port]
        )
        self.worker_pids = (
            dict(zip(self.ports, map(int, pids.split(",")), strict=True)) if pids else {}
        )
        return match

    def wait_for_worker(self, port: int, timeout: float = 60.0) -> int:
        """Blocks until the worker on `port` reports serving again (after a
        restart); returns its new pid, also kept in `worker_pids`."""
        match = self.wait_for_line(
            rf"kpy-apiserver worker \d+ \(pid (\d+)\) serving on \S+:{port}\b", timeout
        )
        self.worker_pids[port] = int(match.group(1))
        return self.worker_pids[port]
