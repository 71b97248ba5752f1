"""securityContext on the Docker runtime: what a container sees of its
user, groups, capabilities, root filesystem, confinement and sysctls, and
the kubelet's runAsNonRoot check as a user reads it in the pod's status.

The engine is kpy's (skipped without it, failed under CI: see
test_docker_runtime.py, whose `node` fixture and helpers these tests use);
each test touches only containers of its own node and cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from kpy.agent.runtime import SecurityConfig
from tests.integration._runtimes import docker_host_or_skip
from tests.integration.test_docker_runtime import (
    Node,
    container,
    docker_agent,
    make_pod,
    pod_where,
    status_of,
)
from tests.integration.test_docker_runtime import node as node  # the fixture

if TYPE_CHECKING:
    from pathlib import Path

    from kpy.api.core.v1 import Pod
    from kpy.client import Client


@pytest.fixture(scope="session")
def docker_host() -> str:
    return docker_host_or_skip()


# -- Docker, directly ------------------------------------------------------------


@dataclass(frozen=True)
class DockerCase:
    name: str
    script: str
    security: SecurityConfig
    exit_code: int
    log: bytes  # a piece of the log


DOCKER_CASES = [
    DockerCase(
        "runAsUser, runAsGroup and groups",
        "id -u; id -g; id -G",
        SecurityConfig(run_as_user=1000, run_as_group=3000, supplemental_groups=(4000,)),
        0,
        b"1000\n3000\n3000 4000\n",
    ),
    DockerCase(
        "drop ALL and a read-only root filesystem: touch fails",
        "touch /x",
        SecurityConfig(capabilities_drop=("ALL",), read_only_root_filesystem=True),
        1,
        b"Read-only file system",
    ),
    DockerCase(
        "drop ALL: root cannot chown",
        "touch /tmp/f && chown 1 /tmp/f",
        SecurityConfig(capabilities_drop=("ALL",)),
        1,
        b"Operation not permitted",
    ),
    DockerCase(
        "by default root can chown", "touch /tmp/f && chown 1 /tmp/f", SecurityConfig(), 0, b""
    ),
    DockerCase(
        "allowPrivilegeEscalation false",
        "grep NoNewPrivs /proc/self/status",
        SecurityConfig(no_new_privileges=True),
        0,
        b"NoNewPrivs:\t1",
    ),
    DockerCase(
        "seccomp RuntimeDefault filters",
        "grep Seccomp: /proc/self/status",
        SecurityConfig(seccomp_profile="RuntimeDefault"),
        0,
        b"Seccomp:\t2",
    ),
    DockerCase(
        "seccomp Unconfined does not",
        "grep Seccomp: /proc/self/status",
        SecurityConfig(seccomp_profile="Unconfined"),
        0,
        b"Seccomp:\t0",
    ),
]


@pytest.mark.parametrize("case", DOCKER_CASES, ids=lambda c: c.name)
async def test_docker_applies_the_security_settings(node: Node, case: DockerCase) -> None:
    cid = await node.run(["sh", "-c", case.script], security=case.security)

    exited = await node.exited(cid)

    log = await node.log(cid)
    assert exited.exit_code == case.exit_code, f"{case.name}: {log!r}"
    assert case.log in log, f"{case.name}: {log!r}"


async def test_docker_sets_the_pods_sysctls(node: Node) -> None:
    pod = await node.sandbox(sysctls={"net.ipv4.ip_local_port_range": "20000 30000"})

    cid = await node.run(["cat", "/proc/sys/net/ipv4/ip_local_port_range"], pod=pod)

    await node.exited(cid)
    assert (await node.log(cid)).split() == [b"20000", b"30000"]


# -- Docker, through the agent ---------------------------------------------------


def _waiting(pod: Pod, name: str) -> tuple[str, str]:
    state = status_of(pod, name).state
    return state.waiting.reason, state.waiting.message


async def test_run_as_non_root_refuses_a_root_image(
    client: Client, api_namespace: str, tmp_path: Path, docker_host: str
) -> None:
    root = container("root", "sleep 3600", securityContext={"runAsNonRoot": True})
    user = container("user", "id -u; sleep 3600", securityContext={"runAsUser": 1000})
    async with docker_agent(client, tmp_path, docker_host) as agent:
        created = await client.create(
            make_pod(
                "nonroot",
                agent.node_name,
                root,
                user,
                securityContext={"runAsNonRoot": True},
            )
        )

        pod = await pod_where(
            client,
            "nonroot",
            lambda p: (
                len(p.status.container_statuses) == 2
                and _waiting(p, "root")[0] == "CreateContainerConfigError"
                and status_of(p, "user").state.HasField("running")
            ),
            "root refused, user running",
        )

        m = created.metadata
        assert _waiting(pod, "root")[1] == (
            "container has runAsNonRoot and image will run as root "
            f'(pod: "{m.name}_{m.namespace}({m.uid})", container: root)'
        )
