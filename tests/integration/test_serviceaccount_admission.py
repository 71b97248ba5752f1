"""ServiceAccount plumbing end to end, over a real etcd: an API server that
issues tokens (a signing key) refuses a pod whose ServiceAccount does not
exist, in Kubernetes' words; the controller manager's `serviceaccount` and
`root-ca-cert-publisher` controllers make `default` and `kube-root-ca.crt`
in the namespace; a pod then gets the kube-api-access projected volume,
and a node agent writes a real token (a signed JWT, bound to the pod), the
CA and the namespace into it."""

from __future__ import annotations

import base64
import contextlib
import json
import time
import uuid
from typing import TYPE_CHECKING

import anyio
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from kpy import pki
from kpy.api import errors
from kpy.api.core.v1 import ConfigMap, Event, Namespace, Pod, ServiceAccount
from kpy.apiserver.serviceaccounts import TokenOptions
from kpy.client import Client
from kpy.controllers.manager import ControllerManager, ManagerConfig
from tests.integration._agent import running_agent
from tests.integration._apiserver import serving

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from kpy.storage import EtcdServer

SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())
MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


@contextlib.asynccontextmanager
async def _token_issuing_server(etcd_server: EtcdServer) -> AsyncIterator[str]:
    """An API server with a signing key and no authenticators (anyone is
    let in, as anonymous): what matters here is that it issues tokens."""
    tokens = TokenOptions(signing_key=SIGNING_KEY, audiences=("api",))
    async with serving(etcd_server, "sa-admission", service_accounts=tokens) as server:
        yield f"127.0.0.1:{server.port}"


def _pod(name: str, node: str = "") -> Pod:
    pod = Pod()
    pod.metadata.name = name
    pod.spec.node_name = node
    pod.spec.containers.add(name="app", image="busybox")
    return pod


async def _eventually(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await anyio.sleep(0.1)


async def _exists(
    client: Client, kind: type[ServiceAccount | ConfigMap], name: str, ns: str
) -> bool:
    try:
        await client.get(kind, name, namespace=ns)
    except errors.NotFound:
        return False
    return True


@pytest.mark.timeout(120)
async def test_pods_get_their_service_account_and_a_real_token(
    etcd_server: EtcdServer, tmp_path: Path
) -> None:
    ns = f"sa-{uuid.uuid4().hex[:6]}"
    ca = pki.new_ca()
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca.cert_pem)
    async with (
        _token_issuing_server(etcd_server) as server,
        Client(server, retry_timeout=10.0) as client,
    ):
        namespace = Namespace()
        namespace.metadata.name = ns
        await client.create(namespace)

        # No controller yet: no `default` account, and the pod is refused.
        with pytest.raises(errors.Forbidden) as refused:
            await client.create(_pod("early"), namespace=ns)
        assert str(refused.value) == (
            f'pods "early" is forbidden: error looking up service account {ns}/default: '
            'serviceaccount "default" not found'
        )

        manager = ControllerManager(
            client,
            ManagerConfig(
                controllers=("serviceaccount", "root-ca-cert-publisher"),
                root_ca_file=ca_file,
                metrics_port=None,
            ),
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(manager.run_controllers)
            await _eventually(
                lambda: _exists(client, ServiceAccount, "default", ns), "the default account"
            )
            await _eventually(
                lambda: _exists(client, ConfigMap, "kube-root-ca.crt", ns), "kube-root-ca.crt"
            )
            published = await client.get(ConfigMap, "kube-root-ca.crt", namespace=ns)
            assert published.data["ca.crt"] == ca.cert_pem.decode()

            async with running_agent(client, runtime="simulated", root=tmp_path) as agent:
                pod = await client.create(_pod("web", agent.node_name), namespace=ns)
                assert pod.spec.service_account_name == "default"
                [volume] = pod.spec.volumes
                assert volume.name.startswith("kube-api-access-")
                assert len(volume.name) == len("kube-api-access-") + 5
                [mount] = pod.spec.containers[0].volume_mounts
                assert (mount.name, mount.mount_path, mount.read_only) == (volume.name, MOUNT, True)

                files = (
                    agent.root / "pods" / pod.metadata.uid / "volumes" / "kubernetes.io~projected"
                ) / volume.name

                async def written() -> bool:
                    return (files / "token").exists()

                await _eventually(written, "the token in the pod's volume")
                token = (files / "token").read_text()
                claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
                assert claims["sub"] == f"system:serviceaccount:{ns}:default", claims
                assert claims["aud"] == ["api"], claims
                assert claims["exp"] - claims["iat"] == 3607, claims
                bound = claims["kubernetes.io"]["pod"]
                assert bound == {"name": "web", "uid": pod.metadata.uid}, claims
                assert (files / "ca.crt").read_bytes() == ca.cert_pem
                assert (files / "namespace").read_text() == ns
            tg.cancel_scope.cancel()


async def test_without_a_token_the_pod_waits_saying_why(
    client: Client, api_namespace: str, tmp_path: Path
) -> None:
    """The session's API server issues no tokens: a pod whose projected
    volume asks for one stays ContainerCreating, with a FailedMount event
    that says why, as the kubelet's."""
    pod = _pod("needs-token")
    volume = pod.spec.volumes.add(name="token")
    volume.projected.sources.add().service_account_token.path = "token"
    pod.spec.containers[0].volume_mounts.add(name="token", mount_path="/var/run/token")
    async with running_agent(client, runtime="simulated", root=tmp_path) as agent:
        pod.spec.node_name = agent.node_name
        await client.create(pod, namespace=api_namespace)

        async def failed_mount() -> bool:
            events = (await client.list(Event, namespace=api_namespace)).items
            return any(
                e.reason == "FailedMount"
                and e.involved_object.name == "needs-token"
                and e.message.startswith('MountVolume.SetUp failed for volume "token" : ')
                and "failed to fetch token: " in e.message
                and "--service-account-signing-key-file" in e.message
                for e in events
            )

        await _eventually(failed_mount, "a FailedMount event naming the missing signing key")
        stored = await client.get(Pod, "needs-token", namespace=api_namespace)
        [status] = stored.status.container_statuses
        assert status.state.waiting.reason == "ContainerCreating", status
        assert "failed to fetch token" in status.state.waiting.message, status
