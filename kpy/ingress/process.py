"""Run `kpy-ingress` as a child process: for tests and the local cluster
launcher (see kpy._process: stopped by pid, dies with its launcher, log
kept in a file)."""

from __future__ import annotations

from typing import Any

from kpy._process import ChildProcess

READY = r"kpy-ingress serving http on (\S+):(\d+) https on (\S+):(\d+)"


class IngressProcess(ChildProcess):
    """kpy-ingress against `servers`; ports 0 pick free ones, read back from
    `http_port` and `https_port` once started."""

    def __init__(
        self,
        servers: str,
        *,
        http_port: int = 0,
        https_port: int = 0,
        extra_args: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> None:
        args = [
            "--server",
            servers,
            "--http-port",
            str(http_port),
            "--https-port",
            str(https_port),
            *extra_args,
        ]
        super().__init__("kpy-ingress", "kpy.ingress.main", args, ready=READY, **kwargs)

    @property
    def http_port(self) -> int:
        return self._port(2)

    @property
    def https_port(self) -> int:
        return self._port(4)

    def _port(self, group: int) -> int:
        if self.ready_match is None:
            raise RuntimeError("kpy-ingress has not started")
        return int(self.ready_match.group(group))
