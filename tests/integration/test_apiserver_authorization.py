"""Authorization end to end: a private API server serving TLS with client
certificates (Node,RBAC, its default with authenticators), and SDK clients
and kpyctl for an admin (system:masters), a user bound to `view` in one
namespace, and two nodes."""

from __future__ import annotations

import contextlib
import uuid
from typing import TYPE_CHECKING

import anyio
import pytest

from kpy import pki
from kpy.agent.runtime import LABEL_POD_UID
from kpy.api import codec, errors
from kpy.api.core.v1 import ConfigMap, Event, Namespace, Pod, Secret
from kpy.api.rbac.v1 import RoleBinding
from kpy.cli import main as kpyctl
from kpy.client import Client, load_config
from kpy.rpc.apiserver import v1 as api
from tests.integration._agent import AgentHandle, stop_everything
from tests.integration.test_apiserver_tls import ADMIN, CA, kpy_config, mtls_server

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from kpy.storage import EtcdServer

JANE = pki.issue_client(CA, "jane", ())
NODE_A = pki.issue_client(CA, "system:node:node-a", ("system:nodes",))
NODE_B = pki.issue_client(CA, "system:node:node-b", ("system:nodes",))


def config_for(tmp_path: Path, server: str, cert: pki.CertKey) -> Path:
    directory = tmp_path / uuid.uuid4().hex[:6]
    directory.mkdir()
    return kpy_config(
        directory,
        server,
        certificate_authority=CA.cert_pem,
        client_certificate=cert.cert_pem,
        client_key=cert.key_pem,
    )


async def _setup(admin: Client, dev: str, prod: str) -> None:
    for name in (dev, prod):
        ns = Namespace()
        ns.metadata.name = name
        await admin.create(ns)
    binding = RoleBinding()
    binding.metadata.name = "jane-view"
    binding.role_ref.api_group, binding.role_ref.kind = "rbac.authorization.k8s.io", "ClusterRole"
    binding.role_ref.name = "view"
    subject = binding.subjects.add()
    subject.kind, subject.name = "User", "jane"
    subject.api_group = "rbac.authorization.k8s.io"
    await admin.create(binding, namespace=dev)
    for node in ("a", "b"):
        secret = Secret()
        secret.metadata.name = f"{node}-secret"
        secret.string_data["password"] = "hunter2"
        await admin.create(secret, namespace=dev)
        pod = Pod()
        pod.metadata.name = f"web-{node}"
        pod.spec.node_name = f"node-{node}"
        container = pod.spec.containers.add(name="web", image="nginx")
        container.env_from.add().secret_ref.name = f"{node}-secret"
        await admin.create(pod, namespace=dev)


async def _eventually_allowed(client: Client, request: api.AccessReviewRequest) -> None:
    """The binding takes effect once the watch cache has it."""
    for _ in range(200):  # 10 s: the cache's delay is milliseconds
        if (await client.access_review(request)).allowed:
            return
        await anyio.sleep(0.05)
    raise AssertionError(f"still not allowed after 10 s: {request}")


@pytest.mark.timeout(120)
async def test_view_user_and_nodes_see_only_theirs(
    etcd_server: EtcdServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dev, prod = f"dev-{uuid.uuid4().hex[:6]}", f"prod-{uuid.uuid4().hex[:6]}"
    async with mtls_server(etcd_server) as server:
        admin_config = config_for(tmp_path, server, ADMIN)
        async with (
            Client(load_config(admin_config)) as admin,
            Client(load_config(config_for(tmp_path, server, JANE))) as jane,
            Client(load_config(config_for(tmp_path, server, NODE_A))) as node_a,
        ):
            await _setup(admin, dev, prod)
            list_pods = api.AccessReviewRequest(verb="list", resource="pods", namespace=dev)
            await _eventually_allowed(jane, list_pods)

            # The view user: pods in dev, no Secrets, nothing elsewhere.
            assert {p.metadata.name for p in (await jane.list(Pod, namespace=dev)).items} == {
                "web-a",
                "web-b",
            }
            with pytest.raises(errors.Forbidden) as refused:
                await jane.get(Secret, "a-secret", namespace=dev)
            assert refused.value.message == (
                'secrets "a-secret" is forbidden: User "jane" cannot get resource "secrets" in '
                f'API group "" in the namespace "{dev}"'
            )
            with pytest.raises(errors.Forbidden) as refused:
                await jane.list(Pod, namespace=prod)
            assert refused.value.message == (
                'pods is forbidden: User "jane" cannot list resource "pods" in API group "" '
                f'in the namespace "{prod}"'
            )
            with pytest.raises(errors.Forbidden):
                await jane.list(Pod)  # all namespaces
            with pytest.raises(errors.Forbidden):
                await jane.delete(Pod, "web-a", namespace=dev)
            with pytest.raises(errors.Forbidden) as refused:  # a stream: its first message
                async for _ in jane.exec("web-a", ["sh"], namespace=dev):
                    pass
            assert refused.value.message.startswith(
                'pods "web-a" is forbidden: User "jane" cannot create resource "pods/exec"'
            )
            # view grants pods/log: the call passes authorization and reaches
            # its handler, which finds no Node "node-a" (none was registered).
            with pytest.raises(errors.NotFound):
                async for _ in jane.logs("web-a", namespace=dev):
                    pass

            # Node A: its pod's Secret and status, not node B's.
            secret = await node_a.get(Secret, "a-secret", namespace=dev)
            assert secret.data["password"] == b"hunter2"
            with pytest.raises(errors.Forbidden) as refused:
                await node_a.get(Secret, "b-secret", namespace=dev)
            assert 'no relationship found between node "node-a"' in refused.value.message
            status = {"status": {"message": "seen by node-a"}}
            await node_a.patch(
                Pod, "web-a", status, namespace=dev, patch_type="merge", subresource="status"
            )
            with pytest.raises(errors.Forbidden):
                await node_a.patch(
                    Pod, "web-b", status, namespace=dev, patch_type="merge", subresource="status"
                )
            own = await node_a.list(Pod, field_selector="spec.nodeName=node-a")
            assert [p.metadata.name for p in own.items] == ["web-a"]
            with pytest.raises(errors.Forbidden):
                await node_a.list(Pod)

            # The node is who its certificate says, whatever `kpy-node` claims.
            with pytest.raises(errors.Forbidden):
                await node_a.delete(Pod, "web-b", namespace=dev, as_node="node-b")
            deleted = await admin.delete(Pod, "web-b", namespace=dev, as_node="node-a")
            assert deleted.object.metadata.name == "web-b"  # an admin is no node: allowed

        # kpyctl auth can-i, as jane and as the admin asking for jane.
        jane_config = config_for(tmp_path, server, JANE)
        cases = [
            ("jane lists pods in dev", jane_config, ["list", "pods", "-n", dev], 0, "yes\n"),
            ("jane gets secrets", jane_config, ["get", "secrets", "-n", dev], 1, "no\n"),
            ("jane in prod", jane_config, ["list", "pods", "-n", prod], 1, "no\n"),
            ("jane, all namespaces", jane_config, ["list", "pods", "-A"], 1, "no\n"),
            ("jane by short name", jane_config, ["get", "po", "web-a", "-n", dev], 0, "yes\n"),
            ("admin", admin_config, ["delete", "nodes"], 0, "yes\n"),
            (
                "admin as jane",
                admin_config,
                ["get", "secret", "-n", dev, "--as", "jane"],
                1,
                "no\n",
            ),
            (
                "admin as jane, pods",
                admin_config,
                ["list", "pods", "-n", dev, "--as", "jane"],
                0,
                "yes\n",
            ),
        ]
        for case, config, argv, code, out in cases:
            got, printed, _ = await _kpyctl(config, ["auth", "can-i", *argv], monkeypatch, capsys)
            assert (got, printed) == (code, out), case
        got, _, err = await _kpyctl(
            jane_config, ["auth", "can-i", "get", "pods", "--as", "bob"], monkeypatch, capsys
        )
        assert got == 1
        assert 'users "bob" is forbidden: User "jane" cannot impersonate resource "users"' in err
        got, printed, _ = await _kpyctl(
            jane_config, ["auth", "can-i", "--list", "-n", dev], monkeypatch, capsys
        )
        assert got == 0
        assert printed.splitlines()[0].split() == [
            "Resources",
            "Non-Resource",
            "URLs",
            "Resource",
            "Names",
            "Verbs",
        ]
        assert any(line.split()[0] == "pods" for line in printed.splitlines()[1:]), printed


async def _kpyctl(
    config: Path,
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, str, str]:
    """kpyctl's exit code, stdout and stderr."""
    monkeypatch.setenv("KPY_CONFIG", str(config))
    capsys.readouterr()
    code = await anyio.to_thread.run_sync(kpyctl.main, argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@contextlib.asynccontextmanager
async def _agent_of(client: Client, node: str, root: Path) -> AsyncIterator[AgentHandle]:
    """A process-runtime agent of `node` in the test's loop, calling the API
    as `client` (whose certificate says which node it is)."""
    manifests = root / f"{node}-manifests"
    manifests.mkdir(parents=True)
    handle = AgentHandle(client, "process", root / node, node, manifests)
    try:
        async with anyio.create_task_group() as tg:
            handle._tg = tg
            await handle.start()
            try:
                yield handle
            finally:
                await handle.stop()
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await stop_everything("process", root / node, node)


async def _log_of(handle: AgentHandle, pod_uid: str, text: str) -> str:
    """The log of the pod's container (read from the agent's runtime), once
    it holds `text`."""
    assert handle.agent is not None
    runtime = handle.agent.runtime
    out = ""
    with anyio.fail_after(60):
        while text not in out:
            await anyio.sleep(0.1)
            for container in await runtime.list_containers():
                if container.labels.get(LABEL_POD_UID) == pod_uid:
                    out = b"".join([c async for c in runtime.logs(container.id)]).decode()
    return out


MOUNTS = "/tmp/kpy-node-authorizer"


async def _running(client: Client, namespace: str, name: str) -> None:
    with anyio.fail_after(30):
        selector = f"metadata.name={name}"
        async with client.watch(Pod, namespace=namespace, field_selector=selector) as events:
            async for event in events:
                if event.object.status.phase == "Running":
                    return


def _pod_using_secret_and_config_map() -> Pod:
    """A pod of node-a that prints `a-secret` (env and file) and
    `a-config` (file), then sleeps."""
    script = (
        f'echo "env=$password"; echo "secret=$(cat {MOUNTS}/secret/password)"; '
        f'echo "config=$(cat {MOUNTS}/config/greeting)"; sleep 3600'
    )
    container = {
        "name": "c",
        "image": "busybox",
        "command": ["sh", "-c", script],
        "envFrom": [{"secretRef": {"name": "a-secret"}}],
        "volumeMounts": [
            {"name": "secret", "mountPath": f"{MOUNTS}/secret"},
            {"name": "config", "mountPath": f"{MOUNTS}/config"},
        ],
    }
    volumes = [
        {"name": "secret", "secret": {"secretName": "a-secret"}},
        {"name": "config", "configMap": {"name": "a-config"}},
    ]
    spec = {
        "nodeName": "node-a",
        "terminationGracePeriodSeconds": 1,
        "containers": [container],
        "volumes": volumes,
    }
    return codec.from_dict(Pod, {"metadata": {"name": "uses-both"}, "spec": spec})


@pytest.mark.timeout(120)
async def test_an_agent_under_the_node_authorizer_reads_only_its_pods_objects(
    etcd_server: EtcdServer, tmp_path: Path
) -> None:
    """An agent with node A's certificate runs A's pod, its Secret and
    ConfigMap in its env and files (each watched by name: nothing
    cluster-wide, which a node may not list), and cannot read the Secret of
    node B's pod."""
    dev = f"dev-{uuid.uuid4().hex[:6]}"
    async with (
        mtls_server(etcd_server) as server,
        Client(load_config(config_for(tmp_path, server, ADMIN))) as admin,
        Client(load_config(config_for(tmp_path, server, NODE_A))) as node_a,
    ):
        await _setup(admin, dev, f"prod-{uuid.uuid4().hex[:6]}")  # web-a, web-b, their Secrets
        config = ConfigMap()
        config.metadata.name = "a-config"
        config.data["greeting"] = "hello"
        await admin.create(config, namespace=dev)
        pod = await admin.create(_pod_using_secret_and_config_map(), namespace=dev)
        async with _agent_of(node_a, "node-a", tmp_path) as agent:
            out = await _log_of(agent, pod.metadata.uid, "config=")
            assert out.splitlines() == ["env=hunter2", "secret=hunter2", "config=hello"], out
            await _running(admin, dev, "uses-both")  # its status, written as node A
            events = (await admin.list(Event, namespace=dev)).items
            warnings = [
                e.message
                for e in events
                if e.type == "Warning" and e.involved_object.name == "uses-both"
            ]
            assert warnings == [], "its objects were there: nothing to wait for"

        # What the agent's watches ask, allowed for node A's objects only,
        # one at a time by name.
        by_name = "metadata.name=a-secret"
        mine = await node_a.list(Secret, namespace=dev, field_selector=by_name)
        assert [s.metadata.name for s in mine.items] == ["a-secret"]
        refusals: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("get B's", lambda: node_a.get(Secret, "b-secret", namespace=dev)),
            (
                "list B's by name",
                lambda: node_a.list(Secret, namespace=dev, field_selector="metadata.name=b-secret"),
            ),
            ("list all in the namespace", lambda: node_a.list(Secret, namespace=dev)),
            ("list every ConfigMap", lambda: node_a.list(ConfigMap)),
        ]
        for case, call in refusals:
            with pytest.raises(errors.Forbidden) as refused:
                await call()
            assert 'User "system:node:node-a"' in refused.value.message, case
