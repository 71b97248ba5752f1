"""deploy/ runs secure as its README says: the files deploy/make-certs.py
writes, copied into one machine's /etc/kpy (its control-plane, node and
etcd directories), and the processes started by the ExecStart lines of
deploy/systemd/ (paths moved to a temporary /etc/kpy, addresses to
127.0.0.1, ports to 29000-29999): etcd over TLS, kpy-apiserver with TLS,
client certificates and ServiceAccount keys, and a simulated node's
kpy-agent calling it as system:node:machine-1. The node registers; the
admin config lists it; a caller without a certificate is refused."""

from __future__ import annotations

import asyncio
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest
import yaml

from kpy.api import errors
from kpy.api.codec import from_dict
from kpy.api.core.v1 import ConfigMap, Node, Pod
from kpy.client import Client
from kpy.client.client import TLSHandshakeFailed
from kpy.client.config import TLSCredentials, load_config

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

pytestmark = pytest.mark.etcd

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
BIN = Path(sys.executable).parent
T = TypeVar("T")


def free_ports(count: int) -> list[int]:
    """`count` ports of 29000-29999 free on 127.0.0.1 now."""
    found: list[int] = []
    for port in random.sample(range(29000, 30000), 1000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise AssertionError("no free ports in 29000-29999")


def exec_start(unit: str) -> str:
    """The ExecStart line of deploy/systemd/<unit>, continuation lines joined."""
    lines = iter((DEPLOY / "systemd" / unit).read_text().splitlines())
    for line in lines:
        if line.startswith("ExecStart="):
            command = line.removeprefix("ExecStart=")
            while command.endswith("\\"):
                command = command[:-1] + " " + next(lines).strip()
            return command
    raise AssertionError(f"{unit} has no ExecStart")


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.partition("=") for line in path.read_text().splitlines())
    return {k.strip(): v.strip() for k, eq, v in pairs if eq and not k.startswith("#")}


def command_of(
    unit: str,
    env: dict[str, str],
    etc: Path,
    ports: dict[str, tuple[int, int]],
    extra: tuple[str, ...] = (),
) -> list[str]:
    """The unit's command as systemd runs it (${VAR}: one word, $VAR: split
    on spaces, %H: the host name), /etc/kpy moved to `etc`, kpy's
    executables to this virtualenv's, and each flag of `ports` given its
    port here (the unit's own value checked against the README's), then
    `extra` (flags the unit leaves at their defaults, moved here)."""
    words: list[str] = []
    for token in shlex.split(exec_start(unit)):
        alone = re.fullmatch(r"\$([A-Z_]+)", token)
        if alone:
            words += env[alone.group(1)].split()
            continue
        token = re.sub(r"\$\{([A-Z_]+)\}", lambda m: env[m.group(1)], token)
        token = token.replace("%H", socket.gethostname())
        token = token.replace("/opt/kpy/.venv/bin/", f"{BIN}/").replace("/etc/kpy", str(etc))
        words.append(token)
    for flag, (unit_port, port) in ports.items():
        at = words.index(flag) + 1
        assert words[at] == str(unit_port), f"{unit}: {flag} {words[at]}, README says {unit_port}"
        words[at] = str(port)
    words += extra
    text = " ".join(words)
    assert "10.0.0." not in text, text
    assert "/opt/kpy" not in text, text
    return words


class Processes:
    """Started processes, each logging to a file; stopped by pid."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, command: list[str]) -> None:
        with (self.logs / f"{name}.log").open("wb") as log:
            self.running[name] = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def report(self) -> str:
        parts = []
        for name, process in self.running.items():
            state = "running" if process.poll() is None else f"exited {process.returncode}"
            tail = (self.logs / f"{name}.log").read_text(errors="replace")[-2500:]
            parts.append(f"--- {name} ({state}):\n{tail}")
        return "\n".join(parts)

    def stop_all(self) -> None:
        for process in reversed(list(self.running.values())):
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait()


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[tuple[Path, int, int, Processes]]:
    """One machine of deploy/'s layout on 127.0.0.1: its files in
    tmp_path/etc (as /etc/kpy), etcd, the API server and the agent running.
    Yields the admin config, the API server's port and token port, and the
    processes."""
    out, etc = tmp_path / "out", tmp_path / "etc"
    made = subprocess.run(
        [sys.executable, str(DEPLOY / "make-certs.py"), "--out", str(out),
         "--control-plane", "machine-1=127.0.0.1", "--node", "machine-1=127.0.0.1",
         "--etcd", "etcd-1=127.0.0.1"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    for role in ("control-plane/machine-1", "node/machine-1", "etcd/etcd-1"):
        shutil.copytree(out / role, etc, dirs_exist_ok=True)  # README step: copy into /etc/kpy
    client_port, peer_port, api_port, token_port, agent_port, explain_port = free_ports(6)

    etcd_conf = (DEPLOY / "etcd" / "etcd-1.conf.yml").read_text()
    etcd_conf = (
        etcd_conf.replace(
            "https://10.0.0.1:2379,https://127.0.0.1:2379", f"https://127.0.0.1:{client_port}"
        )
        .replace("10.0.0.1:2379", f"127.0.0.1:{client_port}")
        .replace(
            "etcd-1=https://10.0.0.1:2380,etcd-2=https://10.0.0.2:2380,etcd-3=https://10.0.0.3:2380",
            f"etcd-1=https://127.0.0.1:{peer_port}",
        )
        .replace("10.0.0.1:2380", f"127.0.0.1:{peer_port}")
        .replace("/etc/kpy", str(etc))
        .replace("/var/lib/kpy/etcd", str(tmp_path / "etcd-data"))
    )
    (etc / "etcd.conf.yml").write_text(etcd_conf)

    agent = yaml.safe_load((DEPLOY / "config" / "agent.yaml").read_text())
    agent.update({
        "node-name": "machine-1", "runtime": "simulated", "port": agent_port,
        "root-dir": str(tmp_path / "agent"), "pod-manifest-path": str(tmp_path / "manifests"),
    })  # fmt: skip
    (etc / "agent.yaml").write_text(yaml.safe_dump(agent))

    env = read_env(DEPLOY / "config" / "kpy.env")
    env.update({
        "KPY_ETCD_SERVERS": f"127.0.0.1:{client_port}", "KPY_API_SERVERS": f"127.0.0.1:{api_port}",
        "KPY_NODE_IP": "127.0.0.1", "KPY_NODE_NAME": "machine-1",
    })  # fmt: skip
    api_ports = {"--port": (6443, api_port), "--token-port": (6543, token_port)}
    processes = Processes(tmp_path)
    try:
        processes.start("etcd", command_of("kpy-etcd.service", env, etc, {}))
        processes.start("apiserver", command_of("kpy-apiserver.service", env, etc, api_ports))
        processes.start("agent", command_of("kpy-agent.service", env, etc, {}))
        no_metrics = ("--metrics-bind-address", "")
        processes.start(
            "controller-manager",
            command_of("kpy-controller-manager.service", env, etc, {}, no_metrics),
        )
        processes.start(
            "scheduler",
            command_of(
                "kpy-scheduler.service", env, etc, {}, ("--port", str(explain_port), *no_metrics)
            ),
        )
        yield out / "admin" / "config", api_port, token_port, processes
    finally:
        processes.stop_all()


async def test_a_deployed_machine_runs_with_tls_and_client_certificates(
    deployed: tuple[Path, int, int, Processes],
) -> None:
    admin_config, api_port, token_port, processes = deployed
    config = load_config(admin_config, servers=f"127.0.0.1:{api_port}")
    assert config.tls is not None
    assert config.tls.cert_pem is not None

    async def until(what: str, check: Callable[[], Awaitable[T | None]]) -> T:
        """`check()`'s first result that is not None, within 90 s (slack for
        a loaded machine); fails at once if a process exits."""
        deadline = time.monotonic() + 90
        while True:
            try:
                found = await check()
                if found is not None:
                    return found
            except (errors.Unavailable, errors.NotFound, errors.Forbidden):
                pass  # still starting; the ServiceAccount not made yet
            if time.monotonic() > deadline or any(
                p.poll() is not None for p in processes.running.values()
            ):
                raise AssertionError(f"{what}: never happened\n{processes.report()}")
            await asyncio.sleep(0.5)

    async with Client(config, retry_timeout=5) as client:
        # The agent registered as system:node:machine-1 and heartbeats.
        async def ready_node() -> Node | None:
            node = await client.get(Node, "machine-1")
            ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
            return node if ready else None

        node = await until("node machine-1 Ready", ready_node)
        assert node.status.addresses[0].address == "127.0.0.1"
        # The controller manager (its own config, --root-ca-file) publishes the CA.
        root_ca = await until(
            "ConfigMap kube-root-ca.crt",
            lambda: client.get(ConfigMap, "kube-root-ca.crt", namespace="default"),
        )
        assert root_ca.data["ca.crt"].encode() == config.tls.ca_pem
        # The scheduler (its own config) binds a pod; the agent runs it.
        pod = from_dict(Pod, {
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        })  # fmt: skip
        await until("pod web created", lambda: client.create(pod))

        async def running() -> Pod | None:
            got = await client.get(Pod, "web", namespace="default")
            return got if got.status.phase == "Running" else None

        assert (await until("pod web Running", running)).spec.node_name == "machine-1"
        # The API server reaches the agent over TLS with its kubelet client certificate.
        stats = await client.stats(nodes=True)
        assert list(stats.unreachable) == []
        assert [n.name for n in stats.nodes] == ["machine-1"]

    # A caller trusting the CA but holding no certificate of it is refused:
    # on --port at the handshake, on --token-port (pods') for want of a token.
    anonymous = replace(config, tls=TLSCredentials(ca_pem=config.tls.ca_pem))
    async with Client(anonymous, retry_timeout=2) as client:
        with pytest.raises(TLSHandshakeFailed, match="may require a client certificate"):
            await client.list(Node)
    pod_config = replace(anonymous, servers=(f"127.0.0.1:{token_port}",))
    async with Client(pod_config, retry_timeout=2) as client:
        with pytest.raises(errors.Unauthorized):
            await client.list(Node)
