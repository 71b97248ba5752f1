"""The Scheduler gRPC service: `Explain` answers "which nodes would this pod
fit, and why not the others?" from the scheduler's cache, binding nothing.

`serve(scheduler, host, port)` runs a grpc.aio server until cancelled and
reports the bound port. Errors travel as everywhere in kpy (kpy.rpc.status):
a named pod that does not exist is NOT_FOUND with a Status naming it.

With `tls` (kpy-scheduler's --tls-cert-file, --tls-private-key-file and
--client-ca-file) the service is behind a door (kpy.door): TLS, a client
certificate from the CA, and only members of system:masters (a cluster
admin's kpyctl describe) and the users `clients` names
(--authorized-clients). The answer shows the cluster's nodes and why pods do
not fit them, which is the API's data (nodes, pods): it is not for anyone
who can reach the port, and the admins are who read it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import anyio
import anyio.abc
import grpc

from kpy import door
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
    tls: door.ServingTLS | None = None,
    clients: frozenset[str] = frozenset(),
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    interceptors = []
    if tls is not None:
        guard = door.Door("the scheduler's explain service", clients)
        interceptors.append(door.DoorInterceptor(guard))
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)], interceptors=interceptors)
    rpc.add_SchedulerServicer_to_server(SchedulerService(scheduler), server)
    bound = door.listen(server, host, port, tls)
    if not bound:
        raise OSError(
            f"cannot listen on {host}:{port}; pick another with --port (0: any free port)"
        )
    await server.start()
    log.info("serving explain", extra={"address": f"{host}:{bound}", "tls": tls is not None})
    task_status.started(bound)
    try:
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            await server.stop(grace=1.0)
