"""Helpers for controller tests over the real API server.

- `running(client, namespace, "replicaset", ...)`: the controller manager,
  in this process, running the named controllers over one namespace (so
  objects other tests left behind are not its business), without leader
  election or metrics port. Stopped when the block ends.
- `eventually(check, timeout)`: calls an async check until it returns a
  truthy value; fails with the last value seen. Bounded in time.
- `make_ready(client, pod)`, `make_all_ready(client, namespace, selector)`:
  what a node agent would do: the pod Running with Ready=True since now (or
  since `ready_since`).
- `workload(Kind, name, replicas)`: a ReplicaSet or Deployment selecting
  `app=<name>` (or `app`) with one busybox container.
- `elected_pair(new, namespace, ...)`: two replicas "a" and "b" of a
  leader-elected component sharing a Lease named after the test, with short
  lease timings; each stopped by its pid at the end (asserted gone).
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from google.protobuf.timestamp_pb2 import Timestamp

from kpy.api import errors
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Pod, PodCondition
from kpy.component import ElectionOptions
from kpy.controllers.manager import ControllerManager, ManagerConfig

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

    from kpy._process import ElectedProcess
    from kpy.client import Client

T = TypeVar("T")
W = TypeVar("W")
P = TypeVar("P", bound="ElectedProcess")

LEASE, RENEW, RETRY = 3.0, 2.0, 0.5


def workload(kind: type[W], name: str, replicas: int, *, app: str = "", **spec: Any) -> W:
    labels = {"app": app or name}
    body: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        },
        **spec,
    }
    made: W = from_dict(kind, {"metadata": {"name": name}, "spec": body})  # type: ignore[type-var]
    return made


@contextmanager
def elected_pair(new: Callable[..., P], namespace: str, *flags: str) -> Iterator[dict[str, P]]:
    lease_flags = (
        f"--leader-elect-resource-name={namespace}",
        f"--leader-elect-lease-duration={LEASE}",
        f"--leader-elect-renew-deadline={RENEW}",
        f"--leader-elect-retry-period={RETRY}",
    )
    started = {name: new(identity=name, extra_args=(*flags, *lease_flags)) for name in ("a", "b")}
    try:
        yield started
    finally:
        for process in started.values():
            pid = process.pid if process.running else None
            process.stop()
            if pid is not None:
                assert not Path(f"/proc/{pid}").exists(), (
                    f"{process.name} pid {pid} survived stop()"
                )
            process.log_path.unlink(missing_ok=True)


@asynccontextmanager
async def running(
    client: Client, namespace: str, *controllers: str, workers: dict[str, int] | None = None
) -> AsyncIterator[ControllerManager]:
    manager = ControllerManager(
        client,
        ManagerConfig(
            controllers=controllers,
            workers=workers or {},
            namespace=namespace,
            election=ElectionOptions(enabled=False),
            metrics_port=None,
        ),
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.run)
        with anyio.fail_after(15):
            await manager.leading.wait()
        yield manager
        tg.cancel_scope.cancel()


async def eventually(
    check: Callable[[], Awaitable[T]],
    timeout: float = 15.0,  # noqa: ASYNC109 (the failure message names what was awaited)
    what: str = "condition",
) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = await check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s; last seen: {last!r}")
        await anyio.sleep(0.05)


def _now() -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(time.time_ns())
    return ts


async def make_ready(client: Client, pod: Pod, *, ready_since: float | None = None) -> Pod:
    """Marks the pod Running and Ready, as its node agent would; retries on conflict."""
    while True:
        fresh = await client.get(Pod, pod.metadata.name, namespace=pod.metadata.namespace)
        fresh.status.phase = "Running"
        del fresh.status.conditions[:]
        since = _now()
        if ready_since is not None:
            since.FromNanoseconds(int(ready_since * 1e9))
        fresh.status.conditions.append(
            PodCondition(type="Ready", status="True", last_transition_time=since)
        )
        try:
            return await client.update_status(fresh)
        except errors.Conflict:
            continue


async def make_all_ready(
    client: Client, namespace: str, label_selector: str = "", **kwargs: Any
) -> list[Pod]:
    """Every active, not-yet-ready pod matching the selector made ready."""
    pods = (await client.list(Pod, namespace=namespace, label_selector=label_selector)).items
    done = []
    for pod in pods:
        if pod.metadata.HasField("deletion_timestamp"):
            continue
        if any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions):
            continue
        try:
            done.append(await make_ready(client, pod, **kwargs))
        except errors.NotFound:
            continue
    return done
