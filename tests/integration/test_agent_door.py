"""The agent's door and the scheduler's (issue 23, item 4): TLS, a client
certificate from the cluster CA, and only the callers each names.

Everything runs in the test's loop against the session's etcd: private API
servers (one prefix per test, so they share its objects), a node agent on
the process runtime serving TLS with a certificate of a CA made in
tmp_path by kpy.pki, and kpyctl as a user runs it. Several API servers
look at one cluster, each dialling the agent with other credentials,
which is how a user would meet each misconfiguration.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import grpc
import grpc.aio
import pytest

from kpy import pki
from kpy.agent.process import AgentProcess
from kpy.api import codec
from kpy.api.core.v1 import Node, Pod
from kpy.apiserver.authentication import TLSConfig
from kpy.apiserver.process import APIServerProcess
from kpy.apiserver.proxy import KubeletClientTLS
from kpy.auth.authentication import Chain, X509Authenticator
from kpy.cli import describe
from kpy.client import Client, load_config
from kpy.client.config import TLSCredentials
from kpy.component import ElectionOptions
from kpy.door import ServingTLS
from kpy.rpc.agent import v1 as agent_rpc
from kpy.rpc.apiserver import v1 as api
from kpy.scheduler.scheduler import Scheduler
from tests.integration._agent import running_agent, stop_everything
from tests.integration._apiserver import serving
from tests.integration._controllers import eventually
from tests.integration._kpyctl import KPYCTL

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from kpy.storage import EtcdServer

pytestmark = pytest.mark.timeout(180)


@dataclass(frozen=True)
class PKI:
    """A cluster's CA and certificates, written under tmp_path/pki as
    `kpy up` lays them out; `other_*` come from a CA of another cluster."""

    dir: Path
    ca: pki.CertKey
    other_ca: pki.CertKey

    def file(self, name: str) -> Path:
        return self.dir / name


def make_pki(tmp_path: Path) -> PKI:
    d = tmp_path / "pki"
    ca, other = pki.new_ca("cluster-ca"), pki.new_ca("another-cluster-ca")
    pki.write(ca, d / "ca.crt", d / "ca.key")
    pki.write(other, d / "other-ca.crt", d / "other-ca.key")
    issued = {
        "agent-serving": pki.issue_server(ca, "node-serving"),
        "other-serving": pki.issue_server(other, "node-serving"),
        "kubelet-client": pki.issue_client(
            ca, "kube-apiserver-kubelet-client", ("system:masters",)
        ),
        "node": pki.issue_client(ca, "system:node:x", ("system:nodes",)),
        "admin": pki.issue_client(ca, "kubernetes-admin", ("system:masters",)),
        "jane": pki.issue_client(ca, "jane", ("dev",)),
        "stranger": pki.issue_client(other, "kube-apiserver-kubelet-client", ("system:masters",)),
        "apiserver": pki.issue_server(ca, "kpy-apiserver"),
        "scheduler-serving": pki.issue_server(ca, "kpy-scheduler"),
    }
    for name, pair in issued.items():
        pki.write(pair, d / f"{name}.crt", d / f"{name}.key")
    return PKI(d, ca, other)


def agent_tls(p: PKI, serving: str = "agent-serving") -> ServingTLS:
    return ServingTLS.load(p.file(f"{serving}.crt"), p.file(f"{serving}.key"), p.file("ca.crt"))


@contextlib.asynccontextmanager
async def api_server(
    etcd_server: EtcdServer, prefix: str, kubelet: KubeletClientTLS | None, **config: Any
) -> AsyncIterator[str]:
    """An API server on `prefix` dialling agents with `kubelet`; its address."""
    async with serving(etcd_server, "door", prefix=prefix, kubelet_tls=kubelet, **config) as server:
        yield f"127.0.0.1:{server.port}"


def kubelet_client(p: PKI, cert: str | None = "kubelet-client", ca: str = "ca") -> KubeletClientTLS:
    found = KubeletClientTLS.from_flags(
        p.file(f"{ca}.crt"),
        p.file(f"{cert}.crt") if cert else None,
        p.file(f"{cert}.key") if cert else None,
    )
    assert found is not None
    return found


def sleeper(name: str, node: str) -> Pod:
    made: Pod = codec.from_dict(
        Pod,
        {
            "metadata": {"name": name},
            "spec": {
                "nodeName": node,
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox",
                        "command": ["sh", "-c", "echo hello from the pod; exec sleep 300"],
                    }
                ],
            },
        },
    )
    return made


async def wait_running(client: Client, name: str) -> None:
    async def check() -> bool | None:
        got = await client.get(Pod, name)
        statuses = got.status.container_statuses
        up = statuses and all(s.state.HasField("running") for s in statuses)
        return True if got.status.phase == "Running" and up else None

    await eventually(check, 30, what=f"pod {name} running")


async def run_kpyctl(*words: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    done = await anyio.run_process([KPYCTL, *words], check=False, env={**os.environ, **(env or {})})
    return done.returncode, done.stdout.decode(), done.stderr.decode()


# -- the agent, called directly ------------------------------------------------------


async def call_agent(
    address: str, credentials: grpc.ChannelCredentials | None, ns: str, pod: str
) -> tuple[str, str]:
    """("OK", the pod's log) or (status code name, details) of a Logs call
    made straight to the agent."""
    if credentials is None:
        channel = grpc.aio.insecure_channel(address)
    else:
        channel = grpc.aio.secure_channel(address, credentials)
    async with channel:
        stub = agent_rpc.AgentStub(channel)
        request = api.LogRequest(ref=api.ResourceRef(namespace=ns, name=pod), container="c")
        try:
            chunks = [c.data async for c in stub.Logs(request, timeout=10)]
        except grpc.aio.AioRpcError as e:
            return e.code().name, e.details() or ""
    return "OK", b"".join(chunks).decode()


def creds(p: PKI, name: str | None, ca: str = "ca") -> grpc.ChannelCredentials:
    root = p.file(f"{ca}.crt").read_bytes()
    if name is None:
        return grpc.ssl_channel_credentials(root)
    return grpc.ssl_channel_credentials(
        root, p.file(f"{name}.key").read_bytes(), p.file(f"{name}.crt").read_bytes()
    )


async def test_agent_answers_only_the_api_servers_certificate(
    etcd_server: EtcdServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = make_pki(tmp_path)
    prefix = f"/door-{uuid.uuid4().hex[:8]}"
    async with (
        api_server(etcd_server, prefix, kubelet_client(p)) as server,
        Client(server, retry_timeout=10.0) as client,
        running_agent(client, runtime="process", root=tmp_path, tls=agent_tls(p)) as agent,
    ):
        await client.create(sleeper("box", agent.node_name), namespace="default")
        await wait_running(client, "box")
        assert agent.agent is not None
        address = f"127.0.0.1:{agent.agent.port}"
        cases: list[tuple[str, grpc.ChannelCredentials | None, str, str]] = [
            # name, credentials, code, what the details hold
            ("the API server's kubelet client", creds(p, "kubelet-client"), "OK", "hello from"),
            ("an admin (system:masters)", creds(p, "admin"), "OK", "hello from"),
            (
                "a node's own certificate",
                creds(p, "node"),
                "PERMISSION_DENIED",
                f'user "system:node:x" (groups system:nodes) may not call the agent of node '
                f'"{agent.node_name}": it answers only users "kube-apiserver-kubelet-client" '
                "(--authorized-clients) and members of group system:masters",
            ),
            ("no certificate", creds(p, None), "UNAVAILABLE", ""),
            ("a certificate of another CA", creds(p, "stranger"), "UNAVAILABLE", ""),
            ("plaintext", None, "UNAVAILABLE", ""),
        ]
        with caplog.at_level("WARNING", logger="kpy.door"):
            for name, credentials, code, details in cases:
                got_code, got_details = await call_agent(address, credentials, "default", "box")
                assert got_code == code, f"{name}: {got_details}"
                assert details in got_details, name
                if code == "UNAVAILABLE":  # nothing but a failed handshake
                    assert "hello" not in got_details, name
        refusals = [r.getMessage() for r in caplog.records if r.name == "kpy.door"]
        assert refusals == [f"refused a call: {cases[2][3]}"]


# -- through the API server ----------------------------------------------------------


async def test_logs_exec_and_stats_go_through_the_api_server_over_tls(
    etcd_server: EtcdServer, tmp_path: Path
) -> None:
    p = make_pki(tmp_path)
    prefix = f"/door-{uuid.uuid4().hex[:8]}"
    servers: dict[str, KubeletClientTLS | None] = {
        "good": kubelet_client(p),
        "plaintext": None,
        "no client certificate": kubelet_client(p, cert=None),
        "a node's certificate": kubelet_client(p, cert="node"),
        "another CA": kubelet_client(p, ca="other-ca"),
    }
    async with contextlib.AsyncExitStack() as stack:
        address = {
            name: await stack.enter_async_context(api_server(etcd_server, prefix, kubelet))
            for name, kubelet in servers.items()
        }
        client = await stack.enter_async_context(Client(address["good"], retry_timeout=10.0))
        agent = await stack.enter_async_context(
            running_agent(client, runtime="process", root=tmp_path, tls=agent_tls(p))
        )
        await client.create(sleeper("box", agent.node_name), namespace="default")
        await wait_running(client, "box")
        assert agent.agent is not None
        at = f'the agent of node "{agent.node_name}" at 127.0.0.1:{agent.agent.port}'

        good = address["good"]
        assert await run_kpyctl("logs", "box", "--server", good) == (
            0,
            "hello from the pod\n",
            "",
        )
        assert await run_kpyctl("exec", "box", "--server", good, "--", "echo", "in") == (
            0,
            "in\n",
            "",
        )
        usage = await client.stats(nodes=True)
        assert [n.name for n in usage.nodes] == [agent.node_name]

        failures = {
            "plaintext": (
                f'cannot get logs of pod "default/box": {at} is not reachable (it closed the '
                "connection before answering; if it serves "
                "TLS, start kpy-apiserver with --kubelet-certificate-authority, "
                "--kubelet-client-certificate and --kubelet-client-key)"
            ),
            "no client certificate": (
                f'cannot get logs of pod "default/box": {at} closed the connection during the '
                "TLS handshake: it refused the API server's client certificate (none: no "
                "--kubelet-client-certificate); check --kubelet-client-certificate"
            ),
            "a node's certificate": (
                f'cannot get logs of pod "default/box": {at} refused the API server: user '
                '"system:node:x" (groups system:nodes) may not call'
            ),
            "another CA": (
                f'cannot get logs of pod "default/box": {at} presented a certificate not '
                f"signed by the CA in {p.file('other-ca.crt')}: certificate verify failed; "
                "check --kubelet-certificate-authority"
            ),
        }
        async with Client(address["another CA"], retry_timeout=10.0) as other:
            usage = await other.stats(nodes=True)
        assert list(usage.nodes) == []
        [why] = usage.unreachable
        assert why.startswith(f"{agent.node_name}: cannot get stats: {at} presented"), why
        assert "certificate verify failed; check --kubelet-certificate-authority" in why
        for name, expected in failures.items():
            code, out, err = await run_kpyctl("logs", "box", "--server", address[name])
            assert (code, out) == (1, ""), f"{name}: {err}"
            assert expected in err, f"{name}: {err}"
            code, out, err = await run_kpyctl(
                "exec", "box", "--server", address[name], "--", "echo", "in"
            )
            assert (code, out) == (1, ""), f"{name}: {err}"
            assert expected.replace("get logs", "get exec") in err, f"{name}: {err}"


async def test_a_tls_api_server_names_a_plaintext_agent(
    etcd_server: EtcdServer, tmp_path: Path
) -> None:
    """Plaintext agents are unchanged (tests/integration/test_kpyctl_agent.py);
    an API server told to dial agents over TLS says which one does not."""
    p = make_pki(tmp_path)
    prefix = f"/door-{uuid.uuid4().hex[:8]}"
    async with (
        api_server(etcd_server, prefix, None) as plain,
        api_server(etcd_server, prefix, kubelet_client(p)) as tls,
        Client(plain, retry_timeout=10.0) as client,
        running_agent(client, runtime="process", root=tmp_path) as agent,
    ):
        await client.create(sleeper("box", agent.node_name), namespace="default")
        await wait_running(client, "box")
        assert await run_kpyctl("logs", "box", "--server", plain) == (
            0,
            "hello from the pod\n",
            "",
        )
        code, _, err = await run_kpyctl("logs", "box", "--server", tls)
        assert code == 1
        assert agent.agent is not None
        assert (
            f'the agent of node "{agent.node_name}" at 127.0.0.1:{agent.agent.port} '
            "does not speak TLS; start kpy-agent with --tls-cert-file" in err
        ), err


# -- the scheduler's Explain -----------------------------------------------------------


def kpy_config(p: PKI, server: str, user: str | None) -> Path:
    lines = [f"servers: [{server}]", f"certificate-authority: {p.file('ca.crt')}"]
    if user is not None:
        lines += [f"client-certificate: {p.file(user + '.crt')}"]
        lines += [f"client-key: {p.file(user + '.key')}"]
    path = p.dir / f"config-{user}"
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_scheduler_explains_over_tls_to_admins_only(
    etcd_server: EtcdServer, tmp_path: Path
) -> None:
    p = make_pki(tmp_path)
    prefix = f"/door-{uuid.uuid4().hex[:8]}"
    serving = TLSConfig(
        p.file("apiserver.crt").read_bytes(),
        p.file("apiserver.key").read_bytes(),
        p.file("ca.crt").read_bytes(),
    )
    secure = {"tls": serving, "authenticators": Chain([X509Authenticator()])}
    async with api_server(etcd_server, prefix, None, **secure) as server:
        admin = kpy_config(p, server, "admin")
        explain_tls = ServingTLS.load(
            p.file("scheduler-serving.crt"), p.file("scheduler-serving.key"), p.file("ca.crt")
        )
        async with (
            Client(load_config(admin), retry_timeout=10.0) as client,
            anyio.create_task_group() as tg,
        ):
            scheduler = Scheduler(
                client,
                scheduler_name="door-scheduler",
                election=ElectionOptions(enabled=False),
                explain_address=("127.0.0.1", 0),
                explain_tls=explain_tls,
            )
            tg.start_soon(scheduler.run)
            with anyio.fail_after(20):
                await scheduler.leading.wait()
            explain = f"127.0.0.1:{scheduler.explain_port}"
            node: Node = codec.from_dict(Node, {"metadata": {"name": "door-node"}})
            await client.create(node)
            pending: Pod = codec.from_dict(
                Pod,
                {
                    "metadata": {"name": "pending"},
                    "spec": {
                        "schedulerName": "door-scheduler",
                        "nodeSelector": {"zone": "nowhere"},
                        "containers": [{"name": "c", "image": "busybox"}],
                    },
                },
            )
            await client.create(pending, namespace="default")

            async def described() -> str:
                code, out, err = await run_kpyctl(
                    "describe", "pod", "pending", "--scheduler", explain,
                    env={"KPY_CONFIG": str(admin)},
                )  # fmt: skip
                assert code == 0, err
                return out if "door-node" in out else ""

            out = await eventually(described, 20, what="the scheduler's verdicts")
            assert f"Scheduler ({explain}):" in out
            [line] = [line for line in out.splitlines() if "door-node" in line]
            assert line.split()[:3] == ["door-node", "no", "NodeAffinity:"], line

            pod = await client.get(Pod, "pending", namespace="default")
            ca_only = TLSCredentials.from_files(p.file("ca.crt"))
            refusals = {
                "a user outside system:masters": (
                    ca_only.with_client(p.file("jane.crt"), p.file("jane.key")),
                    'user "jane" (groups dev) may not call the scheduler\'s explain service: '
                    "it answers only members of group system:masters; use a config whose "
                    "client certificate it answers",
                ),
                "no client certificate": (
                    ca_only,
                    "it refused the client certificate (none: the kpy config has no "
                    "client-certificate); use one signed by its --client-ca-file",
                ),
                "plaintext": (None, "it closed the connection before answering"),
            }
            for name, (tls, expected) in refusals.items():
                text = await describe.explain(pod, explain, tls)
                assert text.startswith(f"Scheduler:  could not ask the scheduler at {explain} ")
                assert expected in text, f"{name}: {text}"
            tg.cancel_scope.cancel()
        with contextlib.suppress(Exception):
            async with Client(load_config(admin)) as cleanup:
                await cleanup.delete(Node, "door-node")


def test_door_flags_are_read_from_flags_and_yaml(tmp_path: Path) -> None:
    from kpy.agent.main import config_from

    p = make_pki(tmp_path)
    config, _ = config_from(
        [
            "--tls-cert-file", str(p.file("agent-serving.crt")),
            "--tls-private-key-file", str(p.file("agent-serving.key")),
            "--client-ca-file", str(p.file("ca.crt")),
            "--authorized-clients", "apiserver-a,apiserver-b",
        ]
    )  # fmt: skip
    assert config.tls is not None
    assert config.authorized_clients == frozenset({"apiserver-a", "apiserver-b"})
    yaml_file = tmp_path / "agent.yaml"
    yaml_file.write_text(
        f"tls-cert-file: {p.file('agent-serving.crt')}\n"
        f"tls-private-key-file: {p.file('agent-serving.key')}\n"
        f"client-ca-file: {p.file('ca.crt')}\n"
    )
    config, _ = config_from(["--config", str(yaml_file)])
    assert config.tls == agent_tls(p)
    assert config.authorized_clients == frozenset({"kube-apiserver-kubelet-client"})
    config, _ = config_from([])
    assert config.tls is None  # plaintext, as before


def _apiserver_flags(argv: list[str]) -> object:
    from kpy.apiserver import main as apiserver_main

    parser = apiserver_main._parser()
    return apiserver_main._kubelet_tls(parser, parser.parse_args(argv))


def _agent_flags(argv: list[str]) -> object:
    from kpy.agent.main import config_from

    return config_from(argv)


def _scheduler_flags(argv: list[str]) -> object:
    from kpy.scheduler.main import main

    return main(argv)


def test_unusable_door_flags_stop_the_component_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = make_pki(tmp_path)
    cert, key, ca = (str(p.file(f)) for f in ("agent-serving.crt", "agent-serving.key", "ca.crt"))
    client, client_key = str(p.file("kubelet-client.crt")), str(p.file("kubelet-client.key"))
    cases = [
        (
            "agent: a certificate alone (a door without a CA would answer anyone)",
            _agent_flags,
            ["--tls-cert-file", cert],
            "--tls-cert-file without --tls-private-key-file and --client-ca-file: the TLS "
            "door needs all three",
        ),
        (
            "scheduler: no client CA",
            _scheduler_flags,
            ["--tls-cert-file", cert, "--tls-private-key-file", key],
            "--tls-cert-file, --tls-private-key-file without --client-ca-file",
        ),
        (
            "agent: a key file that holds no key",
            _agent_flags,
            ["--tls-cert-file", cert, "--tls-private-key-file", cert, "--client-ca-file", ca],
            f"--tls-private-key-file: {cert} holds no PEM private key",
        ),
        (
            "apiserver: a client certificate without the agents' CA",
            _apiserver_flags,
            ["--kubelet-client-certificate", client, "--kubelet-client-key", client_key],
            "--kubelet-client-certificate needs --kubelet-certificate-authority",
        ),
        (
            "apiserver: a client certificate without its key",
            _apiserver_flags,
            ["--kubelet-certificate-authority", ca, "--kubelet-client-certificate", client],
            "--kubelet-client-certificate and --kubelet-client-key go together",
        ),
        (
            "apiserver: a CA file that is missing",
            _apiserver_flags,
            ["--kubelet-certificate-authority", str(tmp_path / "nope.crt")],
            f"--kubelet-certificate-authority: cannot read {tmp_path / 'nope.crt'}",
        ),
    ]
    for name, parse, argv, expected in cases:
        with pytest.raises(SystemExit) as stopped:
            parse(argv)
        assert stopped.value.code == 2, name
        assert expected in capsys.readouterr().err, name


# -- the processes, with their flags -------------------------------------------------


async def test_agent_and_api_server_processes_take_the_door_flags(
    etcd_server: EtcdServer, tmp_path: Path, namespace: str
) -> None:
    """kpy-agent and kpy-apiserver as `kpy up` starts them, with the flags
    of the PKI layout (docs/security.md): logs through the API server work,
    a direct plaintext call to the agent gets nothing."""
    p = make_pki(tmp_path)
    server = APIServerProcess(
        etcd_server.endpoint,
        extra_args=(
            "--kubelet-certificate-authority", str(p.file("ca.crt")),
            "--kubelet-client-certificate", str(p.file("kubelet-client.crt")),
            "--kubelet-client-key", str(p.file("kubelet-client.key")),
        ),
    )  # fmt: skip
    node = f"door-{namespace[-6:]}"
    root = tmp_path / "node"
    door_flags = (
        "--tls-cert-file", str(p.file("agent-serving.crt")),
        "--tls-private-key-file", str(p.file("agent-serving.key")),
        "--client-ca-file", str(p.file("ca.crt")),
    )  # fmt: skip
    agent: AgentProcess | None = None
    pids = []
    try:
        await anyio.to_thread.run_sync(server.start)
        pids.append(server.pid)
        agent = AgentProcess(server.address, node, root, runtime="process", extra_args=door_flags)
        await anyio.to_thread.run_sync(agent.start)
        pids.append(agent.pid)
        async with Client(server.address, retry_timeout=10.0) as client:
            await client.create(sleeper("box", node), namespace="default")
            await wait_running(client, "box")
            assert await run_kpyctl("logs", "box", "--server", server.address) == (
                0,
                "hello from the pod\n",
                "",
            )
            address = f"127.0.0.1:{agent.port}"
            assert (await call_agent(address, None, "default", "box"))[0] == "UNAVAILABLE"
            await client.delete(Pod, "box", namespace="default")
    finally:
        if agent is not None:
            await anyio.to_thread.run_sync(agent.stop)
        await stop_everything("process", root, node)
        await anyio.to_thread.run_sync(server.stop)
    for pid in pids:
        assert not await anyio.Path(f"/proc/{pid}").exists(), pid
