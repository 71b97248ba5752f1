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
    ) -> None:
        args = ["--etcd-servers", etcd_endpoints, "--port", str(port)]
        if bookmark_interval is not None:
            args += ["--bookmark-interval", str(bookmark_interval)]
        if watch_cache_size is not None:
            args += ["--watch-cache-size", str(watch_cache_size)]
        super().__init__(
            "kpy-apiserver",
            "kpy.apiserver.main",
            [*args, *extra_args],
            ready=r"kpy-apiserver serving on (\S+):(\d+)",
            log_path=log_path,
            detached=detached,
        )
        self.etcd_endpoints = etcd_endpoints
        self.port = port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> re.Match[str]:
        """Returns once the server serves; `port` is then set (and kept
        after stop(), so a new process can reuse it)."""
        match = super().start(timeout)
        self.port = int(match.group(2))
        return match
