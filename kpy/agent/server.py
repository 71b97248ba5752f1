"""The agent's gRPC service: logs, exec, port forwarding and usage, as the
API server asks.

The API server forwards its own LogRequest / ExecRequest / StatsRequest
messages here (see `kpy.apiserver.proxy`); who may call is settled before a
handler runs (`kpy.door`, when the agent serves TLS). A pod is found among the pods
this agent runs by namespace and name; its container by name (the API
server has already applied Kubernetes' rules for which one is meant).
`--previous` means the instance before the newest. A port forward
connects to the pod's IP (its sandbox's) and relays bytes both ways until
the pod's side closes; the end of the caller's stream shuts down our side
for writing, as a TCP half-close.

CPU usage is a rate: each answer compares the runtime's cumulative CPU
time with the sample taken at the previous request (kept per container,
dropped with it), or with one taken a second earlier on the first request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any, NoReturn

import anyio

from kpy.agent.runtime import ContainerState, RuntimeError_
from kpy.agent.status import newest
from kpy.api import errors
from kpy.api.quantity import Quantity
from kpy.rpc import status
from kpy.rpc.agent import v1 as agent
from kpy.rpc.apiserver import v1 as api

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    import grpc

    from kpy.agent.pods import PodRecord, PodWorkers
    from kpy.agent.runtime import ContainerStats, ContainerStatus, Runtime
    from kpy.api.core.v1 import Node

log = logging.getLogger("kpy.agent")

Context = Any

FIRST_SAMPLE_WINDOW = 1.0  # seconds between two samples when there is no earlier one
CONNECT_TIMEOUT = 10.0  # seconds a port forward may take to connect to the pod
_CHUNK = 64 * 1024


class AgentService(agent.AgentServicer):
    def __init__(self, workers: PodWorkers, runtime: Runtime, node: Callable[[], Node]) -> None:
        self._workers = workers
        self._runtime = runtime
        self._node = node
        self._samples: dict[str, ContainerStats] = {}

    # -- lookups ------------------------------------------------------------------------

    def _pod(self, ref: api.ResourceRef) -> PodRecord:
        for rec in self._workers.records():
            m = rec.pod.metadata
            if m.namespace == (ref.namespace or "default") and m.name == ref.name and not rec.gone:
                return rec
        raise errors.NotFound(
            f'pod "{ref.name}" is not running on node "{self._node().metadata.name}"',
            kind="pods",
            name=ref.name,
        )

    async def _instance(self, rec: PodRecord, container: str, previous: bool) -> ContainerStatus:
        if rec.sandbox is None:
            raise errors.BadRequest(
                f'container "{container}" in pod "{rec.pod.metadata.name}" is waiting to start'
            )
        instances = await self._runtime.list_containers(rec.sandbox.id)
        latest, before = newest(instances, container)
        found = before if previous else latest
        if found is None:
            if previous:
                raise errors.BadRequest(
                    f'previous terminated container "{container}" in pod '
                    f'"{rec.pod.metadata.name}" not found'
                )
            raise errors.BadRequest(
                f'container "{container}" in pod "{rec.pod.metadata.name}" is waiting to start: '
                "ContainerCreating"
            )
        return found

    # -- RPCs ---------------------------------------------------------------------------

    async def Logs(self, request: api.LogRequest, context: Context) -> AsyncIterator[api.LogChunk]:
        try:
            rec = self._pod(request.ref)
            instance = await self._instance(rec, request.container, request.previous)
            follow = request.follow and instance.state is ContainerState.RUNNING
            async for data in self._runtime.logs(
                instance.id, follow=follow, tail_lines=int(request.tail_lines)
            ):
                yield api.LogChunk(data=data)
        except Exception as e:
            await _fail(context, e)

    async def Exec(
        self, request_iterator: AsyncIterator[api.ExecRequest], context: Context
    ) -> AsyncIterator[api.ExecResponse]:
        try:
            first = await anext(request_iterator)
            rec = self._pod(first.ref)
            instance = await self._instance(rec, first.container, False)
            if instance.state is not ContainerState.RUNNING:
                raise errors.BadRequest(
                    f'cannot exec in container "{first.container}" of pod '
                    f'"{rec.pod.metadata.name}": it is not running'
                )

            async def stdin() -> AsyncIterator[bytes]:
                async for request in request_iterator:
                    if request.stdin_data:
                        yield request.stdin_data
                    if request.stdin_closed:
                        return

            async for out in self._runtime.exec(
                instance.id, list(first.command), stdin=stdin() if first.stdin else None
            ):
                if out.exit_code is not None:
                    yield api.ExecResponse(exit_code=out.exit_code)
                elif out.stream == 2:
                    yield api.ExecResponse(stderr=out.data)
                else:
                    yield api.ExecResponse(stdout=out.data)
        except Exception as e:
            await _fail(context, e)

    async def PortForward(
        self, request_iterator: AsyncIterator[api.PortForwardRequest], context: Context
    ) -> AsyncIterator[api.PortForwardResponse]:
        try:
            first = await anext(request_iterator)
            reader, writer = await self._connect(self._pod(first.ref), first.port)
        except Exception as e:
            await _fail(context, e)
        # A task group cannot span the yields of an async generator: the
        # caller's bytes are copied by a task of their own.
        feeder = asyncio.ensure_future(_copy_to(writer, first.data, request_iterator))
        try:
            while data := await reader.read(_CHUNK):
                yield api.PortForwardResponse(data=data)
        except ConnectionError:
            pass  # the pod reset the connection: its end, as a close is
        finally:
            feeder.cancel()
            writer.close()

    async def _connect(
        self, rec: PodRecord, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to `port` on the pod's IP; BadRequest naming the pod,
        the address and the reason when there is none."""
        m = rec.pod.metadata
        if rec.sandbox is None or not rec.sandbox.ip:
            raise errors.BadRequest(
                f'cannot forward port {port} of pod "{m.namespace}/{m.name}": it has no '
                "IP yet (its sandbox is not running); wait until the pod is Running"
            )
        ip = rec.sandbox.ip
        shown = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        try:
            return await asyncio.wait_for(asyncio.open_connection(ip, port), CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as e:
            # asyncio's own text ("Connect call failed ...") hides the errno's
            why = "i/o timeout"
            if isinstance(e, OSError) and not isinstance(e, TimeoutError):
                why = (os.strerror(e.errno) if e.errno else str(e)).lower()
            raise errors.BadRequest(
                f'error forwarding port {port} to pod "{m.namespace}/{m.name}": '
                f"dial tcp {shown}: connect: {why}; check that a container of the pod "
                f"listens on port {port}"
            ) from None

    async def Stats(self, request: api.StatsRequest, context: Context) -> api.StatsResponse:
        try:
            return await self.stats(request)
        except Exception as e:
            await _fail(context, e)

    async def stats(self, request: api.StatsRequest) -> api.StatsResponse:
        node = self._node()
        running: list[tuple[PodRecord, ContainerStatus]] = []
        for rec in self._workers.records():
            if rec.sandbox is None or rec.gone:
                continue
            if request.namespace and rec.pod.metadata.namespace != request.namespace:
                continue
            for i in await self._runtime.list_containers(rec.sandbox.id):
                if i.state is ContainerState.RUNNING:
                    running.append((rec, i))
        rates = await self._rates([i.id for _, i in running])
        response = api.StatsResponse()
        pods: dict[str, api.PodUsage] = {}
        total_cpu = total_memory = 0
        for rec, i in running:
            if i.id not in rates:
                continue
            cpu, memory = rates[i.id]
            total_cpu += cpu
            total_memory += memory
            usage = pods.get(rec.uid)
            if usage is None:
                m = rec.pod.metadata
                usage = pods[rec.uid] = api.PodUsage(
                    namespace=m.namespace, name=m.name, node=node.metadata.name
                )
            usage.containers.append(
                api.ContainerUsage(name=i.name, cpu_nanocores=cpu, memory_bytes=memory)
            )
        response.pods.extend(pods.values())
        if request.nodes or not request.namespace:
            allocatable = node.status.allocatable
            response.nodes.append(
                api.NodeUsage(
                    name=node.metadata.name,
                    cpu_nanocores=total_cpu,
                    memory_bytes=total_memory,
                    cpu_allocatable_millis=_quantity(allocatable, "cpu", milli=True),
                    memory_allocatable_bytes=_quantity(allocatable, "memory", milli=False),
                )
            )
        return response

    async def _rates(self, ids: list[str]) -> dict[str, tuple[int, int]]:
        """(cpu nanocores, memory bytes) per container id."""
        now = await self._sample(ids)
        if any(i not in self._samples for i in now):
            self._samples.update(now)
            await anyio.sleep(FIRST_SAMPLE_WINDOW)
            now = await self._sample(ids)
        out: dict[str, tuple[int, int]] = {}
        for cid, s in now.items():
            before = self._samples.get(cid)
            window = s.timestamp - before.timestamp if before else 0.0
            cpu = (
                int((s.cpu_usage_ns - before.cpu_usage_ns) / window) if before and window > 0 else 0
            )
            out[cid] = (max(cpu, 0), s.memory_bytes)
        self._samples = now  # containers that went are dropped here
        return out

    async def _sample(self, ids: list[str]) -> dict[str, ContainerStats]:
        out = {}
        for cid in ids:
            try:
                out[cid] = await self._runtime.stats(cid)
            except RuntimeError_:
                continue  # exited meanwhile
        return out


async def _copy_to(
    writer: asyncio.StreamWriter, first: bytes, rest: AsyncIterator[api.PortForwardRequest]
) -> None:
    """Writes the caller's bytes to the pod, then shuts down our side for
    writing; a pod that closed its side ends the copy quietly."""
    with contextlib.suppress(ConnectionError, RuntimeError):
        if first:
            writer.write(first)
            await writer.drain()
        async for request in rest:
            if request.data:
                writer.write(request.data)
                await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


def _quantity(values: Any, key: str, *, milli: bool) -> int:
    q = values.get(key)
    if q is None or not q.string:
        return 0
    value = Quantity(q.string)
    return value.milli_value() if milli else value.value()


async def _fail(context: Context, e: Exception) -> NoReturn:
    error: errors.StatusError
    if isinstance(e, errors.StatusError):
        error = e
    elif isinstance(e, RuntimeError_ | TimeoutError):
        error = errors.BadRequest(str(e) or "the command timed out")
    else:
        log.exception("agent request failed", exc_info=e)
        error = errors.Internal(f"agent error: {e!r}; see the agent's log")
    await context.abort(status.code_for(error), error.message, status.trailing_metadata(error))
    raise AssertionError("unreachable")  # abort raises


def add_to_server(service: AgentService, server: grpc.aio.Server) -> None:
    agent.add_AgentServicer_to_server(service, server)
