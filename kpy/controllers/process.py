"""Run `kpy-controller-manager` as a child process: for tests, benchmarks
and the local cluster launcher (see kpy._process: stopped by pid, dies with
its launcher, log kept in a file)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpy._process import ChildProcess

if TYPE_CHECKING:
    import re
    from pathlib import Path


class ControllerManagerProcess(ChildProcess):
    """`start()` returns once the metrics endpoint is up; the replica may
    still be waiting for the Lease (see `wait_leading`)."""

    def __init__(
        self,
        servers: str,
        *,
        identity: str = "",
        metrics_port: int = 0,
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        args = ["--server", servers, "--metrics-bind-address", f"127.0.0.1:{metrics_port}"]
        if identity:
            args += ["--identity", identity]
        super().__init__(
            "kpy-controller-manager",
            "kpy.controllers.main",
            [*args, *extra_args],
            ready=r"serving metrics on (\S+):(\d+)",
            log_path=log_path,
        )
        self.metrics_port = metrics_port

    def start(self, timeout: float = 30.0) -> re.Match[str]:
        match = super().start(timeout)
        self.metrics_port = int(match.group(2))
        return match

    def wait_leading(self, timeout: float = 60.0) -> None:
        """Blocks until this replica holds the Lease and its controllers run."""
        self.wait_for_line(r"kpy-controller-manager leading as ", timeout)
