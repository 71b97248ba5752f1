"""pods/log, pods/exec, pods/portforward and usage figures: reaching the
node agent that has them.

The API server never runs containers; it resolves the pod to its node and
hands the request to a `NodeConnector`, which talks to that node's agent.
`AgentConnector` dials the address the Node publishes (its InternalIP, else
its first address, and `status.daemonEndpoints.kubeletEndpoint.Port`) and
forwards the request unchanged: the agent's service takes the API server's
own messages. `resolve_container` applies Kubernetes' rules for which
container is meant.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

import grpc
import grpc.aio

from kpy.api import errors
from kpy.rpc import status
from kpy.rpc.agent import v1 as agent

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from kpy.api.core.v1 import Node, Pod
    from kpy.rpc.apiserver import v1 as api

STATS_TIMEOUT = 5.0  # seconds one agent may take to report its usage


class NodeConnector(Protocol):
    """Forwards a pod's log, exec and port-forward requests, and usage
    queries, to the agent on a node."""

    def logs(self, node: Node, pod: Pod, request: api.LogRequest) -> AsyncIterator[bytes]: ...

    def exec(
        self, node: Node, pod: Pod, first: api.ExecRequest, rest: AsyncIterator[api.ExecRequest]
    ) -> AsyncIterator[api.ExecResponse]: ...

    def port_forward(
        self,
        node: Node,
        pod: Pod,
        first: api.PortForwardRequest,
        rest: AsyncIterator[api.PortForwardRequest],
    ) -> AsyncIterator[api.PortForwardResponse]: ...

    async def stats(self, node: Node, request: api.StatsRequest) -> api.StatsResponse: ...

    async def close(self) -> None: ...


class NoAgents:
    """The connector of a server told to reach no node agents."""

    def logs(self, node: Node, pod: Pod, request: api.LogRequest) -> AsyncIterator[bytes]:
        raise _unreachable(node, pod, "logs", "this API server does not connect to agents")

    def exec(
        self, node: Node, pod: Pod, first: api.ExecRequest, rest: AsyncIterator[api.ExecRequest]
    ) -> AsyncIterator[api.ExecResponse]:
        raise _unreachable(node, pod, "exec", "this API server does not connect to agents")

    def port_forward(
        self,
        node: Node,
        pod: Pod,
        first: api.PortForwardRequest,
        rest: AsyncIterator[api.PortForwardRequest],
    ) -> AsyncIterator[api.PortForwardResponse]:
        raise _unreachable(node, pod, "port-forward", "this API server does not connect to agents")

    async def stats(self, node: Node, request: api.StatsRequest) -> api.StatsResponse:
        raise errors.Unavailable("this API server does not connect to node agents")

    async def close(self) -> None:
        pass


class AgentConnector:
    """Talks to node agents over gRPC, one cached channel per address."""

    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _stub(self, node: Node) -> agent.AgentAsyncStub:
        address = agent_address(node)
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = grpc.aio.insecure_channel(address)
        return agent.AgentStub(channel)

    async def logs(self, node: Node, pod: Pod, request: api.LogRequest) -> AsyncIterator[bytes]:
        call = self._stub(node).Logs(request)
        try:
            async for chunk in call:
                yield chunk.data
        except grpc.aio.AioRpcError as e:
            raise _agent_error(e, node, pod, "logs") from None
        finally:
            call.cancel()

    async def exec(
        self, node: Node, pod: Pod, first: api.ExecRequest, rest: AsyncIterator[api.ExecRequest]
    ) -> AsyncIterator[api.ExecResponse]:
        async def requests() -> AsyncIterator[api.ExecRequest]:
            yield first
            async for request in rest:
                yield request

        call = self._stub(node).Exec(requests())
        try:
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as e:
            raise _agent_error(e, node, pod, "exec") from None
        finally:
            call.cancel()

    async def port_forward(
        self,
        node: Node,
        pod: Pod,
        first: api.PortForwardRequest,
        rest: AsyncIterator[api.PortForwardRequest],
    ) -> AsyncIterator[api.PortForwardResponse]:
        async def requests() -> AsyncIterator[api.PortForwardRequest]:
            yield first
            async for request in rest:
                yield request

        call = self._stub(node).PortForward(requests())
        try:
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as e:
            raise _agent_error(e, node, pod, "port-forward") from None
        finally:
            call.cancel()

    async def stats(self, node: Node, request: api.StatsRequest) -> api.StatsResponse:
        try:
            response: api.StatsResponse = await self._stub(node).Stats(
                request, timeout=STATS_TIMEOUT
            )
            return response
        except grpc.aio.AioRpcError as e:
            raise _agent_error(e, node, None, "stats") from None

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        await asyncio.gather(*(c.close() for c in channels), return_exceptions=True)


def agent_address(node: Node) -> str:
    """host:port of the node's agent, from what the Node publishes."""
    port = node.status.daemon_endpoints.kubelet_endpoint.port
    addresses = node.status.addresses
    host = next((a.address for a in addresses if a.type == "InternalIP"), "")
    host = host or (addresses[0].address if addresses else "")
    if not host or not port:
        raise errors.Unavailable(
            f'node "{node.metadata.name}" publishes no agent address (status.addresses and '
            "status.daemonEndpoints.kubeletEndpoint.Port); check that kpy-agent runs there",
            kind="nodes",
            name=node.metadata.name,
        )
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _agent_error(e: grpc.aio.AioRpcError, node: Node, pod: Pod | None, what: str) -> Exception:
    if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return _unreachable(node, pod, what, f"{e.details()}")
    return status.from_grpc(e.code(), e.details(), e.trailing_metadata() or ())


def _unreachable(node: Node, pod: Pod | None, what: str, why: str) -> errors.Unavailable:
    target = f' of pod "{pod.metadata.namespace}/{pod.metadata.name}"' if pod else ""
    return errors.Unavailable(
        f'cannot get {what}{target}: the agent of node "{node.metadata.name}" is not '
        f"reachable ({why}); check that kpy-agent runs on that node",
        kind="nodes",
        name=node.metadata.name,
    )


def resolve_container(pod: Pod, container: str) -> str:
    """The container a log or exec request means: the one named, or the only
    one. BadRequest when the pod is not on a node yet, the name is unknown,
    or the pod has several containers and none was named."""
    name = pod.metadata.name
    if not pod.spec.node_name:
        raise errors.BadRequest(
            f'pod "{name}" is not scheduled to a node yet; wait until it is', name=name
        )
    names = [c.name for c in (*pod.spec.init_containers, *pod.spec.containers)]
    if container:
        if container not in names:
            raise errors.BadRequest(
                f"container {container} is not valid for pod {name}; choose one of: "
                f"[{' '.join(names)}]",
                name=name,
            )
        return container
    if len(pod.spec.containers) == 1:
        return pod.spec.containers[0].name
    choices = " ".join(c.name for c in pod.spec.containers)
    raise errors.BadRequest(
        f"a container name must be specified for pod {name}, choose one of: [{choices}]",
        name=name,
    )
