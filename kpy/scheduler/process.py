"""Run `kpy-scheduler` as a child process: for tests, benchmarks and the
local cluster launcher (see kpy._process: stopped by pid, dies with its
launcher, log kept in a file)."""

from __future__ import annotations

import re
from typing import Any

from kpy._process import ElectedProcess

_EXPLAIN = re.compile(r"kpy-scheduler serving explain on (\S+):(\d+)")


class SchedulerProcess(ElectedProcess):
    """`port` is the explain service's (0: any free one, see `explain_address`)."""

    component = "kpy-scheduler"
    module = "kpy.scheduler.main"

    def __init__(self, servers: str, *, port: int = 0, **kwargs: Any) -> None:
        extra = ("--port", str(port), *kwargs.pop("extra_args", ()))
        super().__init__(servers, extra_args=extra, **kwargs)

    @property
    def explain_address(self) -> str:
        """host:port of the Scheduler gRPC service (once started)."""
        for line in self.output:
            match = _EXPLAIN.search(line)
            if match:
                return f"{match.group(1)}:{match.group(2)}"
        raise RuntimeError("kpy-scheduler has not said where it serves explain")
