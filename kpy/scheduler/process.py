"""Run `kpy-scheduler` as a child process: for tests, benchmarks and the
local cluster launcher (see kpy._process: stopped by pid, dies with its
launcher, log kept in a file)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from kpy._process import ElectedProcess

if TYPE_CHECKING:
    from pathlib import Path

_EXPLAIN = re.compile(r"kpy-scheduler serving explain on (\S+):(\d+)")


class SchedulerProcess(ElectedProcess):
    def __init__(
        self,
        servers: str,
        *,
        identity: str = "",
        port: int = 0,
        metrics_port: int = 0,
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        super().__init__(
            "kpy-scheduler",
            "kpy.scheduler.main",
            servers,
            identity=identity,
            metrics_port=metrics_port,
            log_path=log_path,
            extra_args=("--port", str(port), *extra_args),
        )

    @property
    def explain_address(self) -> str:
        """host:port of the Scheduler gRPC service (once started)."""
        for line in self.output:
            match = _EXPLAIN.search(line)
            if match:
                return f"{match.group(1)}:{match.group(2)}"
        raise RuntimeError("kpy-scheduler has not said where it serves explain")
