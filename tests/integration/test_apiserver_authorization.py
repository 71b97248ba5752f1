"""Authorization end to end: a private API server serving TLS with client
certificates (Node,RBAC, its default with authenticators), and SDK clients
and kpyctl for an admin (system:masters), a user bound to `view` in one
namespace, and two nodes."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import anyio
import pytest

from kpy import pki
from kpy.api import errors
from kpy.api.core.v1 import Namespace, Pod, Secret
from kpy.api.rbac.v1 import RoleBinding
from kpy.cli import main as kpyctl
from kpy.client import Client, load_config
from kpy.rpc.apiserver import v1 as api
from tests.integration.test_apiserver_tls import ADMIN, CA, kpy_config, mtls_server

if TYPE_CHECKING:
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
