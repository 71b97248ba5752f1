"""Run `kpy-controller-manager` as a child process: for tests, benchmarks
and the local cluster launcher (see kpy._process: stopped by pid, dies with
its launcher, log kept in a file)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpy._process import ElectedProcess

if TYPE_CHECKING:
    from pathlib import Path


class ControllerManagerProcess(ElectedProcess):
    def __init__(
        self,
        servers: str,
        *,
        identity: str = "",
        metrics_port: int = 0,
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        super().__init__(
            "kpy-controller-manager",
            "kpy.controllers.main",
            servers,
            identity=identity,
            metrics_port=metrics_port,
            log_path=log_path,
            extra_args=extra_args,
        )
