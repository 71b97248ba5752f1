"""pods/log and pods/exec: finding the node agent that serves them.

The API server never runs containers; it resolves the pod to its node and
hands the request to a `NodeConnector`, which talks to that node's agent.
`resolve_container` applies Kubernetes' rules for which container is meant.
The connector that speaks to real agents arrives with the node agent; until
one is configured, `NoAgents` answers every request with Unavailable and says
why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from kpy.api import errors

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from kpy.api.core.v1 import Node, Pod
    from kpy.rpc.apiserver.v1 import ExecRequest, ExecResponse, LogRequest


class NodeConnector(Protocol):
    """Forwards a pod's log and exec requests to the agent on its node."""

    def logs(self, node: Node, pod: Pod, request: LogRequest) -> AsyncIterator[bytes]: ...

    def exec(
        self, node: Node, pod: Pod, first: ExecRequest, rest: AsyncIterator[ExecRequest]
    ) -> AsyncIterator[ExecResponse]: ...


class NoAgents:
    """The connector of a server that knows no node agents."""

    def logs(self, node: Node, pod: Pod, request: LogRequest) -> AsyncIterator[bytes]:
        raise _unreachable(node, pod, "logs")

    def exec(
        self, node: Node, pod: Pod, first: ExecRequest, rest: AsyncIterator[ExecRequest]
    ) -> AsyncIterator[ExecResponse]:
        raise _unreachable(node, pod, "exec")


def _unreachable(node: Node, pod: Pod, what: str) -> errors.Unavailable:
    return errors.Unavailable(
        f'cannot get {what} of pod "{pod.metadata.namespace}/{pod.metadata.name}": no agent '
        f'of node "{node.metadata.name}" is reachable from this API server; check that '
        "kpy-agent runs on that node",
        kind="pods",
        name=pod.metadata.name,
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
