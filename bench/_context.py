"""What every benchmark is handed: where the servers are, how big to run,
how to report progress, and the child processes it may start.

Child processes (the watch benchmark's writer and raw watcher) are started
through `Context.children.spawn`, which remembers them so that
`Children.stop_all` can end every one still running, by its pid, whatever
way the run ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import anyio

from kpy.api import codec, errors
from kpy.api.core.v1 import Namespace, Pod

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from bench._security import Security
    from kpy._process import ElectedProcess
    from kpy.client import Client

ROOT = Path(__file__).resolve().parent.parent
"""The repository root: children import `bench` from it, wherever the run started."""

RAW_PREFIX = "/bench-raw"
"""Where raw etcd baselines write: keys shaped like kpy's, outside /registry."""

SENT_AT = "bench/sent-at"
"""The annotation in which a writer stamps time.time() before its call."""


@dataclass(slots=True)
class Children:
    """The child processes a run started; `stop_all` ends those still alive."""

    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    def spawn(self, args: list[str]) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=child_environment(),
        )
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen[str], grace: float = 5.0) -> None:
        """SIGTERM to its pid, SIGKILL after `grace`; reaps it."""
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None and not stream.closed:
                with contextlib.suppress(OSError):  # the child is gone: nothing to flush into
                    stream.close()
        if process in self.processes:
            self.processes.remove(process)

    def stop_all(self) -> None:
        for process in list(self.processes):
            self.stop(process)


def child_environment() -> dict[str, str]:
    """This process's environment, with the repository root on PYTHONPATH."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}


class Progress:
    """One line per benchmark phase on stderr: what runs, then how long it took."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self._stream = stream
        self._started: float | None = None

    def phase(self, benchmark: str, what: str) -> None:
        self.done()
        self._stream.write(f"  {benchmark:<7} {what} ...")
        self._stream.flush()
        self._started = time.monotonic()

    def done(self, summary: str = "") -> None:
        if self._started is None:
            return
        took = time.monotonic() - self._started
        tail = f" {summary}" if summary else ""
        self._stream.write(f" {took:.1f}s{tail}\n")
        self._stream.flush()
        self._started = None

    def note(self, text: str) -> None:
        self.done()
        self._stream.write(f"{text}\n")
        self._stream.flush()


@dataclass(slots=True)
class Context:
    """`security`: the run's TLS and credentials. Every `Client` given only
    addresses, here and in children, reads the run's admin config through
    KPY_CONFIG (set by bench.run); a component a benchmark starts takes
    `security.component_args(...)`, `security.node_args(...)` or
    `security.simulated_nodes_args()` as extra args, to call as its own
    user."""

    api_address: str
    api_pid: int
    etcd_endpoint: str
    etcd_pid: int
    quick: bool
    run_id: str
    progress: Progress
    children: Children
    security: Security

    def namespace(self, benchmark: str) -> str:
        """A namespace name of this run for one benchmark."""
        return f"bench-{benchmark}-{self.run_id}"


def realistic_pod(namespace: str, name: str) -> Pod:
    """A Pod as a Deployment would make it: one container with image, ports,
    resources, environment and labels (594 bytes as kpy stores it, once
    defaulted and given a uid and creation time)."""
    return codec.from_dict(
        Pod,
        {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"app": "web", "tier": "frontend", "pod-template-hash": "7d9f8c6b5"},
            },
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": "registry.example.com/shop/web:1.24.3",
                        "ports": [
                            {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                            {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
                        ],
                        "resources": {
                            "requests": {"cpu": "250m", "memory": "256Mi"},
                            "limits": {"cpu": "1", "memory": "512Mi"},
                        },
                        "env": [
                            {"name": "LOG_LEVEL", "value": "info"},
                            {"name": "CACHE_URL", "value": "redis://cache.shop.svc:6379"},
                            {"name": "WORKERS", "value": "4"},
                        ],
                    }
                ]
            },
        },
    )


def renamed(template: Pod, name: str) -> Pod:
    """A copy of `template` named `name`."""
    pod = Pod()
    pod.CopyFrom(template)
    pod.metadata.name = name
    return pod


async def create_namespace(client: Client, name: str) -> None:
    namespace = Namespace()
    namespace.metadata.name = name
    with contextlib.suppress(errors.AlreadyExists):
        await client.create(namespace)


def kpy_key(namespace: str, name: str = "") -> bytes:
    """The etcd key (or, without a name, the key prefix) of a pod kpy stores."""
    return f"/registry/core/v1/pods/{namespace}/{name}".encode()


def raw_key(namespace: str, name: str = "") -> bytes:
    """The same shape of key under the raw baseline's prefix."""
    return f"{RAW_PREFIX}/core/v1/pods/{namespace}/{name}".encode()


@contextlib.asynccontextmanager
async def leading(process: ElectedProcess) -> AsyncIterator[ElectedProcess]:
    """Starts a leader-elected component, returns once it leads; on failure
    prints its log; always stops it by its pid and removes its log."""
    process.start()
    try:
        await anyio.to_thread.run_sync(process.wait_leading)
        yield process
    except BaseException:
        print(f"kpy bench: the {process.name} log:\n{process.tail()}")
        raise
    finally:
        process.stop()
        process.log_path.unlink(missing_ok=True)
