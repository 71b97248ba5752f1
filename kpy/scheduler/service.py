"""The Scheduler gRPC service: `Explain` answers "which nodes would this pod
fit, and why not the others?" from the scheduler's cache, binding nothing.

`serve(scheduler, host, port)` runs a grpc.aio server until cancelled and
reports the bound port. Errors travel as everywhere in kpy (kpy.rpc.status):
a named pod that does not exist is NOT_FOUND with a Status naming it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import anyio
import anyio.abc
import grpc

from kpy.api import errors
from kpy.api.core.v1 import Pod
from kpy.rpc import status
from kpy.rpc.scheduler import v1 as rpc

if TYPE_CHECKING:
    from kpy.cache import SharedInformerFactory

log = logging.getLogger("kpy.scheduler.service")

__all__ = ["SchedulerService", "serve"]


class Explains(Protocol):
    """What the service needs of the scheduler (so this module, which the
    scheduler imports to serve, does not import it back)."""

    informers: SharedInformerFactory

    def explain(self, pod: Pod) -> rpc.ExplainResponse: ...


class SchedulerService(rpc.SchedulerServicer):
    def __init__(self, scheduler: Explains) -> None:
        self._scheduler = scheduler

    async def Explain(self, request: rpc.ExplainRequest, context: Any) -> rpc.ExplainResponse:
        try:
            pod = self._pod(request)
        except errors.StatusError as e:
            await _abort(context, e)
        return self._scheduler.explain(pod)

    def _pod(self, request: rpc.ExplainRequest) -> Pod:
        if request.pod:
            return Pod.FromString(request.pod)
        if not request.name:
            raise errors.BadRequest("give a pod, or its namespace and name")
        namespace = request.namespace or "default"
        found = self._scheduler.informers.informer(Pod).lister().get(namespace, request.name)
        if found is None:
            raise errors.NotFound(
                f'pods "{request.name}" not found in namespace "{namespace}"',
                kind="pods",
                name=request.name,
            )
        return found


async def _abort(context: Any, error: errors.StatusError) -> NoReturn:
    await context.abort(status.code_for(error), error.message, status.trailing_metadata(error))
    raise AssertionError("unreachable")  # abort raises


async def serve(
    scheduler: Explains,
    host: str,
    port: int,
    *,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    rpc.add_SchedulerServicer_to_server(SchedulerService(scheduler), server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:
        bound = 0
    if not bound:
        raise OSError(
            f"cannot listen on {host}:{port}; pick another with --port (0: any free port)"
        )
    await server.start()
    log.info("serving explain", extra={"address": f"{host}:{bound}"})
    task_status.started(bound)
    try:
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            await server.stop(grace=1.0)
