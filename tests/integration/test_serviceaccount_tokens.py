"""ServiceAccount tokens end to end: a private API server over a real etcd,
serving TLS with static tokens (the admin, a node) and service account
tokens (an EC signing key). A token asked for through the TokenRequest API
(`Client.request_token`, `kpyctl create token`) is sent as `Authorization:
Bearer` and is its ServiceAccount, under RBAC; it stops working when the
ServiceAccount, or the pod it is bound to, goes. A node gets tokens only
for its pods' accounts, bound to those pods. A server without a signing
key says which flag it lacks."""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kpy.api import errors
from kpy.api.core.v1 import Namespace, Pod, Secret, ServiceAccount
from kpy.api.rbac.v1 import Role, RoleBinding
from kpy.apiserver import main as apiserver_main
from kpy.apiserver.authentication import TLSConfig
from kpy.apiserver.serviceaccounts import TokenOptions
from kpy.auth.attributes import UserInfo
from kpy.auth.authentication import Chain, TokenAuthenticator
from kpy.cli import main as kpyctl
from kpy.client import Client, load_config
from tests.integration._apiserver import serving
from tests.integration.test_apiserver_tls import CA, SERVING, kpy_config

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from kpy.storage import EtcdServer

SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())
STATIC = {
    "admin-token": UserInfo("admin", ("system:masters",)),
    "node-a-token": UserInfo("system:node:node-a", ("system:nodes",)),
}


@contextlib.asynccontextmanager
async def _server(etcd_server: EtcdServer, tokens: TokenOptions | None) -> AsyncIterator[str]:
    async with serving(
        etcd_server,
        "sa",
        tls=TLSConfig(SERVING.cert_pem, SERVING.key_pem),
        authenticators=Chain([TokenAuthenticator(STATIC)]),
        service_accounts=tokens,
    ) as server:
        yield f"127.0.0.1:{server.port}"


def _client(tmp_path: Path, server: str, token: str) -> Client:
    directory = tmp_path / uuid.uuid4().hex[:6]
    directory.mkdir()
    config = kpy_config(directory, server, certificate_authority=CA.cert_pem, token=token)
    return Client(load_config(config), retry_timeout=5.0)


async def _eventually(check: Any, what: str, seconds: float = 10.0) -> None:
    """`check()` (a coroutine function) returns True within `seconds`: the
    watch caches the authenticator and RBAC read lag by milliseconds."""
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        await anyio.sleep(0.05)


async def _works(tmp_path: Path, server: str, token: str) -> bool:
    async with _client(tmp_path, server, token) as client:
        try:
            await client.whoami()
        except errors.Unauthorized:
            return False
    return True


async def _setup(admin: Client, ns: str) -> ServiceAccount:
    namespace = Namespace()
    namespace.metadata.name = ns
    await admin.create(namespace)
    account = ServiceAccount()
    account.metadata.name = "robot"
    account = await admin.create(account, namespace=ns)
    role = Role()
    role.metadata.name = "pod-reader"
    role.rules.add(verbs=["get", "list"], api_groups=[""], resources=["pods"])
    await admin.create(role, namespace=ns)
    binding = RoleBinding()
    binding.metadata.name = "robot-reads-pods"
    binding.role_ref.api_group, binding.role_ref.kind = "rbac.authorization.k8s.io", "Role"
    binding.role_ref.name = "pod-reader"
    subject = binding.subjects.add()
    subject.kind, subject.name, subject.namespace = "ServiceAccount", "robot", ns
    await admin.create(binding, namespace=ns)
    return account


async def _pod(admin: Client, ns: str, name: str, node: str = "") -> Pod:
    pod = Pod()
    pod.metadata.name = name
    pod.spec.service_account_name = "robot"
    pod.spec.node_name = node
    pod.spec.containers.add(name="c", image="busybox")
    return await admin.create(pod, namespace=ns)


@pytest.mark.timeout(120)
async def test_token_is_its_service_account_under_rbac_until_it_goes(
    etcd_server: EtcdServer, tmp_path: Path
) -> None:
    ns = f"sa-{uuid.uuid4().hex[:6]}"
    async with (
        _server(
            etcd_server,
            TokenOptions(
                keys=(SIGNING_KEY.public_key(),), signing_key=SIGNING_KEY, audiences=("api",)
            ),
        ) as server,
        _client(tmp_path, server, "admin-token") as admin,
    ):
        account = await _setup(admin, ns)
        before = int(time.time())
        issued = await admin.request_token(ns, "robot")
        assert issued.status.token.count(".") == 2
        assert list(issued.spec.audiences) == ["api"]
        assert issued.spec.expiration_seconds == 3600
        expires = issued.status.expiration_timestamp.seconds
        assert before + 3600 <= expires <= int(time.time()) + 3600
        token = issued.status.token

        await _eventually(lambda: _works(tmp_path, server, token), "the new token works")
        async with _client(tmp_path, server, token) as robot:
            me = await robot.whoami()
            assert (me.username, list(me.groups), me.uid) == (
                f"system:serviceaccount:{ns}:robot",
                ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"],
                account.metadata.uid,
            )

            async def can_list() -> bool:
                try:
                    await robot.list(Pod, namespace=ns)
                except errors.Forbidden:
                    return False
                return True

            await _eventually(can_list, "the RoleBinding lets the robot list pods")
            with pytest.raises(errors.Forbidden) as refused:
                await robot.list(Secret, namespace=ns)
            assert refused.value.message == (
                f'secrets is forbidden: User "system:serviceaccount:{ns}:robot" cannot list '
                f'resource "secrets" in API group "" in the namespace "{ns}"'
            )
            with pytest.raises(errors.Forbidden):
                await robot.list(Pod, namespace="default")

        # Another audience than the server's: not for this server.
        vault = await admin.request_token(ns, "robot", audiences=["vault"])
        assert not await _works(tmp_path, server, vault.status.token)

        # Bound to a pod: works while the pod lives.
        pod = await _pod(admin, ns, "web")
        bound = (await admin.request_token(ns, "robot", bound_pod=pod)).status.token
        await _eventually(lambda: _works(tmp_path, server, bound), "the bound token works")
        await admin.delete(Pod, "web", namespace=ns)
        await _eventually(
            lambda: _not(_works(tmp_path, server, bound)), "the bound token dies with its pod"
        )
        assert await _works(tmp_path, server, token)  # the unbound one lives on

        # The ServiceAccount deleted: its tokens die.
        await admin.delete(ServiceAccount, "robot", namespace=ns)
        await _eventually(
            lambda: _not(_works(tmp_path, server, token)), "the token dies with its account"
        )

        # Refusals of the TokenRequest API.
        with pytest.raises(errors.NotFound) as missing:
            await admin.request_token(ns, "robot")
        assert missing.value.message == 'serviceaccounts "robot" not found'
        await _setup_account_again(admin, ns)
        with pytest.raises(errors.Invalid) as invalid:
            await admin.request_token(ns, "robot", expiration_seconds=60)
        assert "spec.expirationSeconds" in invalid.value.message
        assert "less than 10 minutes" in invalid.value.message
        long = await admin.request_token(ns, "robot", expiration_seconds=7 * 86400)
        assert long.spec.expiration_seconds == 48 * 3600  # cut to the server's maximum
        other = await _pod(admin, ns, "other-account")
        other_sa = ServiceAccount()
        other_sa.metadata.name = "builder"
        await admin.create(other_sa, namespace=ns)
        with pytest.raises(errors.BadRequest, match="different serviceaccount name"):
            await admin.request_token(ns, "builder", bound_pod=other)


async def _not(works: Any) -> bool:
    return not await works


async def _setup_account_again(admin: Client, ns: str) -> None:
    account = ServiceAccount()
    account.metadata.name = "robot"
    await admin.create(account, namespace=ns)


@pytest.mark.timeout(120)
async def test_node_gets_tokens_only_for_its_pods(etcd_server: EtcdServer, tmp_path: Path) -> None:
    ns = f"sa-{uuid.uuid4().hex[:6]}"
    options = TokenOptions(
        keys=(SIGNING_KEY.public_key(),), signing_key=SIGNING_KEY, audiences=("api",)
    )
    async with (
        _server(etcd_server, options) as server,
        _client(tmp_path, server, "admin-token") as admin,
        _client(tmp_path, server, "node-a-token") as node,
    ):
        await _setup(admin, ns)
        mine = await _pod(admin, ns, "on-a", node="node-a")
        theirs = await _pod(admin, ns, "on-b", node="node-b")

        async def allowed() -> bool:
            try:
                await node.request_token(ns, "robot", audiences=["api"], bound_pod=mine)
            except errors.Forbidden:
                return False
            return True

        await _eventually(allowed, "node-a gets a token bound to its pod")
        token = (await node.request_token(ns, "robot", bound_pod=mine)).status.token
        await _eventually(lambda: _works(tmp_path, server, token), "the node's token works")
        with pytest.raises(errors.Forbidden) as refused:
            await node.request_token(ns, "robot")
        assert refused.value.message == (
            'serviceaccounts "robot" is forbidden: node requested token not bound to a pod'
        )
        with pytest.raises(errors.Forbidden) as refused:
            await node.request_token(ns, "robot", bound_pod=theirs)
        assert "scheduled on a different node" in refused.value.message


@pytest.mark.timeout(90)
async def test_kpyctl_create_token(
    etcd_server: EtcdServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ns = f"sa-{uuid.uuid4().hex[:6]}"
    options = TokenOptions(
        keys=(SIGNING_KEY.public_key(),), signing_key=SIGNING_KEY, audiences=("api",)
    )
    async with (
        _server(etcd_server, options) as server,
        _client(tmp_path, server, "admin-token") as admin,
    ):
        await _setup(admin, ns)
        await _pod(admin, ns, "web")
        config = kpy_config(
            tmp_path, server, certificate_authority=CA.cert_pem, token="admin-token"
        )
        monkeypatch.setenv("KPY_CONFIG", str(config))
        argv = [
            "create", "token", "robot", "-n", ns, "--duration", "2h", "--audience", "api",
            "--bound-object-kind", "Pod", "--bound-object-name", "web",
        ]  # fmt: skip
        capsys.readouterr()
        assert await anyio.to_thread.run_sync(kpyctl.main, argv) == 0
        token = capsys.readouterr().out.strip()
        assert token.count(".") == 2
        assert "\n" not in token
        await _eventually(lambda: _works(tmp_path, server, token), "kpyctl's token works")
        async with _client(tmp_path, server, token) as robot:
            assert (await robot.whoami()).username == f"system:serviceaccount:{ns}:robot"

        code = await anyio.to_thread.run_sync(kpyctl.main, ["create", "token", "nobody", "-n", ns])
        assert code == 1
        assert 'Error from server (NotFound): serviceaccounts "nobody" not found' in (
            capsys.readouterr().err
        )


@pytest.mark.timeout(90)
async def test_server_without_signing_key_names_the_flag(
    etcd_server: EtcdServer, tmp_path: Path
) -> None:
    async with (
        _server(etcd_server, None) as server,
        _client(tmp_path, server, "admin-token") as admin,
    ):
        account = ServiceAccount()
        account.metadata.name = "robot"
        await admin.create(account, namespace="default")
        with pytest.raises(errors.MethodNotAllowed) as refused:
            await admin.request_token("default", "robot")
        assert "--service-account-signing-key-file" in refused.value.message


def test_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "sa.key"
    key.write_bytes(
        SIGNING_KEY.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    tls = ["--tls-cert-file", str(tmp_path / "c"), "--tls-private-key-file", str(tmp_path / "k")]
    cases = [
        ("tokens need TLS", ["--service-account-signing-key-file", str(key)], "need TLS"),
        (
            "a key file that is not a key",
            [*tls, "--service-account-key-file", str(tmp_path / "c")],
            "--service-account-key-file: cannot read",
        ),
        (
            "an issuer without keys",
            [*tls, "--service-account-issuer", "https://x"],
            "need --service-account-key-file",
        ),
    ]
    for name, argv, error in cases:
        parser = apiserver_main._parser()
        with pytest.raises(SystemExit):
            apiserver_main._service_accounts(parser, parser.parse_args(argv))
        assert error in capsys.readouterr().err, name
    parser = apiserver_main._parser()
    args = parser.parse_args(
        [*tls, "--service-account-signing-key-file", str(key), "--api-audiences", "a,b"]
    )
    options = apiserver_main._service_accounts(parser, args)
    assert options is not None
    assert options.audiences == ("a", "b")
    assert options.signing_key is not None
    assert len(options.keys) == 1


@pytest.mark.timeout(90)
async def test_token_file_is_read_again_when_it_changes(
    etcd_server: EtcdServer, tmp_path: Path
) -> None:
    """A pod's projected token is replaced before it expires (by a rename):
    a client configured with `token-file` sends the new one, as client-go."""
    ns = f"sa-{uuid.uuid4().hex[:6]}"
    options = TokenOptions(
        keys=(SIGNING_KEY.public_key(),), signing_key=SIGNING_KEY, audiences=("api",)
    )
    async with (
        _server(etcd_server, options) as server,
        _client(tmp_path, server, "admin-token") as admin,
    ):
        await _setup(admin, ns)
        token_file = tmp_path / "token"
        token_file.write_text("admin-token\n")
        config = kpy_config(
            tmp_path, server, certificate_authority=CA.cert_pem, **{"token-file": str(token_file)}
        )
        async with Client(load_config(config), retry_timeout=5.0) as client:
            assert (await client.whoami()).username == "admin"
            fresh = (await admin.request_token(ns, "robot")).status.token
            staged = tmp_path / "token.new"
            staged.write_text(fresh)
            staged.rename(token_file)
            robot = f"system:serviceaccount:{ns}:robot"

            async def is_robot() -> bool:
                try:
                    return (await client.whoami()).username == robot
                except errors.Unauthorized:
                    return False  # the server's cache has not seen the account yet

            await _eventually(is_robot, "the client sends the new token")
