"""pods/log, pods/exec, pods/portforward and usage figures: reaching the
node agent that has them.

The API server never runs containers; it resolves the pod to its node and
hands the request to a `NodeConnector`, which talks to that node's agent.
`AgentConnector` dials the address the Node publishes (its InternalIP, else
its first address, and `status.daemonEndpoints.kubeletEndpoint.Port`) and
forwards the request unchanged: the agent's service takes the API server's
own messages. `resolve_container` applies Kubernetes' rules for which
container is meant.

With `KubeletClientTLS` (`--kubelet-certificate-authority`,
`--kubelet-client-certificate`, `--kubelet-client-key`) every agent is
dialled over TLS: its serving certificate must chain to the CA and name the
address dialled (an IP: the certificate's SAN holds it), and the API server
presents its client certificate, which the agent's door (kpy.door) checks.
A handshake that fails for a reason retrying cannot fix (a plaintext agent,
a certificate from another CA, the agent refusing ours) is an Internal
error at once, as kube-apiserver's "error dialing backend", naming the
node, the address and the flag to check.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import grpc
import grpc.aio

from kpy import door
from kpy.api import errors
from kpy.rpc import status
from kpy.rpc.agent import v1 as agent

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

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


@dataclass(frozen=True, slots=True)
class KubeletClientTLS:
    """How the API server dials agents over TLS (PEM): the CA their serving
    certificates chain to and, optionally, the client certificate it
    presents. `ca_file` and `cert_file` name the files, for messages."""

    ca_pem: bytes
    ca_file: str = ""
    cert_pem: bytes | None = None
    key_pem: bytes | None = field(default=None, repr=False)
    cert_file: str = ""

    @classmethod
    def from_flags(
        cls,
        certificate_authority: str | Path | None,
        client_certificate: str | Path | None = None,
        client_key: str | Path | None = None,
    ) -> KubeletClientTLS | None:
        """The files of `--kubelet-certificate-authority`,
        `--kubelet-client-certificate` and `--kubelet-client-key`; None
        without any. door.TLSFileError naming the flag when a file is
        unusable, or when a client certificate comes without its key or
        without the CA (it is presented only over TLS)."""
        if (client_certificate is None) != (client_key is None):
            raise door.TLSFileError(
                "--kubelet-client-certificate and --kubelet-client-key go together: give both"
            )
        if certificate_authority is None:
            if client_certificate is not None:
                raise door.TLSFileError(
                    "--kubelet-client-certificate needs --kubelet-certificate-authority (the "
                    "CA that signed the agents' serving certificates): it is presented only "
                    "over TLS"
                )
            return None
        ca = door.read_pem("--kubelet-certificate-authority", certificate_authority, b"CERTIFICATE")
        if client_certificate is None or client_key is None:
            return cls(ca, str(certificate_authority))
        return cls(
            ca,
            str(certificate_authority),
            door.read_pem("--kubelet-client-certificate", client_certificate, b"CERTIFICATE"),
            door.read_pem("--kubelet-client-key", client_key, b"PRIVATE KEY"),
            str(client_certificate),
        )


class AgentConnector:
    """Talks to node agents over gRPC, one cached channel per address;
    over TLS with `tls` (see the module docstring), else in plaintext."""

    def __init__(self, tls: KubeletClientTLS | None = None) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._tls = tls
        self._credentials = (
            None
            if tls is None
            else grpc.ssl_channel_credentials(tls.ca_pem, tls.key_pem, tls.cert_pem)
        )

    def _stub(self, node: Node) -> agent.AgentAsyncStub:
        address = agent_address(node)
        channel = self._channels.get(address)
        if channel is None:
            if self._credentials is None:
                channel = grpc.aio.insecure_channel(address)
            else:
                channel = grpc.aio.secure_channel(address, self._credentials)
            self._channels[address] = channel
        return agent.AgentStub(channel)

    async def logs(self, node: Node, pod: Pod, request: api.LogRequest) -> AsyncIterator[bytes]:
        call = self._stub(node).Logs(request)
        try:
            async for chunk in call:
                yield chunk.data
        except grpc.aio.AioRpcError as e:
            raise self._error(e, node, pod, "logs") from None
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
            raise self._error(e, node, pod, "exec") from None
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
            raise self._error(e, node, pod, "port-forward") from None
        finally:
            call.cancel()

    async def stats(self, node: Node, request: api.StatsRequest) -> api.StatsResponse:
        try:
            response: api.StatsResponse = await self._stub(node).Stats(
                request, timeout=STATS_TIMEOUT
            )
            return response
        except grpc.aio.AioRpcError as e:
            raise self._error(e, node, None, "stats") from None

    def _error(self, e: grpc.aio.AioRpcError, node: Node, pod: Pod | None, what: str) -> Exception:
        if e.code() == grpc.StatusCode.UNAVAILABLE:
            problem = door.handshake_problem(e.details() or "")
            if problem is not None:
                return _handshake_error(problem, self._tls, node, pod, what)
        if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return _unreachable(node, pod, what, f"{e.details()}")
        error = status.from_grpc(e.code(), e.details(), e.trailing_metadata() or ())
        if isinstance(error, errors.Forbidden | errors.Unauthorized):
            # The agent's door refused the API server itself, not the user.
            return errors.Internal(
                f"{_prefix(node, pod, what)} refused the API server: {error.message}; check "
                "kpy-apiserver's --kubelet-client-certificate and the agent's "
                "--authorized-clients",
                kind="nodes",
                name=node.metadata.name,
            )
        return error

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


def _prefix(node: Node, pod: Pod | None, what: str) -> str:
    target = f' of pod "{pod.metadata.namespace}/{pod.metadata.name}"' if pod else ""
    try:
        at = f" at {agent_address(node)}"
    except errors.Unavailable:
        at = ""
    return f'cannot get {what}{target}: the agent of node "{node.metadata.name}"{at}'


def _handshake_error(
    problem: door.HandshakeProblem,
    tls: KubeletClientTLS | None,
    node: Node,
    pod: Pod | None,
    what: str,
) -> errors.StatusError:
    """What a failed TLS handshake with an agent means, and what to check."""
    head = _prefix(node, pod, what)
    if tls is None:
        # Without TLS only a closed connection is a sign: the agent may want TLS.
        return _unreachable(
            node,
            pod,
            what,
            "it closed the connection before answering; if it serves TLS, start kpy-apiserver "
            "with --kubelet-certificate-authority, --kubelet-client-certificate and "
            "--kubelet-client-key",
        )
    if problem == "plaintext":
        why = (
            "does not speak TLS; start kpy-agent with --tls-cert-file, --tls-private-key-file "
            "and --client-ca-file, or drop --kubelet-certificate-authority from kpy-apiserver"
        )
    elif problem == "untrusted":
        why = (
            f"presented a certificate not signed by the CA in {tls.ca_file}: certificate "
            "verify failed; check --kubelet-certificate-authority (it must be the CA that "
            "signed the agents' --tls-cert-file)"
        )
    elif problem == "expired":
        why = (
            "presented an expired certificate: certificate verify failed; issue the agent "
            "a new --tls-cert-file"
        )
    elif problem == "hostname":
        why = (
            "presented a certificate that does not name the address it was dialled at: "
            "certificate verify failed; issue the agent a serving certificate whose SANs hold "
            "the node's address (kpy.pki.issue_server(ca, hosts=(ip,)))"
        )
    else:
        presented = tls.cert_file or "none: no --kubelet-client-certificate"
        why = (
            "closed the connection during the TLS handshake: it refused the API server's "
            f"client certificate ({presented}); check --kubelet-client-certificate (it must "
            "be signed by the agent's --client-ca-file)"
        )
    return errors.Internal(f"{head} {why}", kind="nodes", name=node.metadata.name)


def _unreachable(node: Node, pod: Pod | None, what: str, why: str) -> errors.Unavailable:
    return errors.Unavailable(
        f"{_prefix(node, pod, what)} is not reachable ({why}); check that kpy-agent runs "
        "on that node",
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
