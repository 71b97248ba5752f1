"""Run `kpy-proxy` as a child process: for tests and the local cluster
launcher (see kpy._process: stopped by pid, dies with its launcher)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpy._process import ChildProcess

if TYPE_CHECKING:
    from pathlib import Path


class ProxyProcess(ChildProcess):
    component = "kpy-proxy"

    def __init__(
        self,
        servers: str,
        node_name: str,
        *,
        cluster_uid: str,
        mode: str = "auto",
        status_file: Path | None = None,
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
        detached: bool = False,
    ) -> None:
        args = ["--server", servers, "--node-name", node_name, "--cluster-uid", cluster_uid]
        args += ["--proxy-mode", mode]
        if status_file is not None:
            args += ["--status-file", str(status_file)]
        super().__init__(
            self.component,
            "kpy.proxy.main",
            [*args, *extra_args],
            ready=r"kpy-proxy \S+ proxying in (\S+) mode",
            log_path=log_path,
            detached=detached,
        )

    @property
    def mode(self) -> str:
        """The mode it chose (once started)."""
        if self.ready_match is None:
            raise RuntimeError("kpy-proxy has not started")
        return self.ready_match.group(1)
