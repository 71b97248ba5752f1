"""securityContext on the process runtime: the shim runs the container as
its user and groups with no_new_privs, and the agent refuses what a host
process cannot be given (capabilities) with a message naming the field.

Each test runs in its own tmp_path; the `node` fixture of
test_process_runtime.py checks by pid that nothing outlives it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from kpy.agent.runtime import Mount, SecurityConfig
from tests.integration._agent import running_agent
from tests.integration.test_docker_runtime import make_pod, pod_where, status_of
from tests.integration.test_process_runtime import node as node  # the fixture

if TYPE_CHECKING:
    from pathlib import Path

    from kpy.api.core.v1 import Pod
    from kpy.client import Client
    from tests.integration.test_process_runtime import Node


async def test_the_container_runs_as_its_user_and_groups(node: Node) -> None:
    security = SecurityConfig(
        run_as_user=1000,
        run_as_group=3000,
        supplemental_groups=(4000,),
        no_new_privileges=True,
    )
    script = "id -u; id -g; id -G; grep NoNewPrivs /proc/self/status"

    cid = await node.run(["sh", "-c", script], security=security)

    await node.next_event(cid)
    exited = await node.next_event(cid)
    log = await node.log(cid)
    assert exited.exit_code == 0, log
    assert log.splitlines()[:3] == [b"1000", b"3000", b"3000 4000"]
    assert b"NoNewPrivs:\t1" in log


@pytest.mark.parametrize("with_mounts", [False, True], ids=["no mounts", "bind mounts"])
async def test_exec_runs_as_the_containers_user(
    node: Node, tmp_path: Path, with_mounts: bool
) -> None:
    mounts = [Mount(str(tmp_path), "/mnt/kpy-test")] if with_mounts else []
    cid = await node.run(
        ["sleep", "100"],
        security=SecurityConfig(run_as_user=1000, run_as_group=3000),
        mounts=mounts,
    )

    out = b""
    async for piece in node.runtime.exec(cid, ["sh", "-c", "id -u; id -g"]):
        out += piece.data

    assert out.split() == [b"1000", b"3000"]


async def test_exec_gets_the_containers_groups_and_no_new_privs(node: Node) -> None:
    security = SecurityConfig(
        run_as_user=1000, supplemental_groups=(4000, 4001), no_new_privileges=True
    )
    cid = await node.run(["sleep", "100"], security=security)

    out = b""
    script = "id -G; grep NoNewPrivs /proc/self/status"
    async for piece in node.runtime.exec(cid, ["sh", "-c", script]):
        out += piece.data

    groups, privs = out.decode().splitlines()
    assert set(groups.split()[1:]) == {"4000", "4001"}
    assert privs.split() == ["NoNewPrivs:", "1"]


def _waiting(pod: Pod) -> tuple[str, str]:
    state = status_of(pod, "app").state
    return state.waiting.reason, state.waiting.message


async def test_capabilities_are_refused_with_the_field_named(
    client: Client, api_namespace: str, tmp_path: Path
) -> None:
    hardened = {
        "name": "app",
        "image": "busybox",
        "command": ["sh", "-c", "sleep 3600"],
        "securityContext": {"runAsUser": 1000, "capabilities": {"drop": ["ALL"]}},
    }
    async with running_agent(client, runtime="process", root=tmp_path) as agent:
        await client.create(make_pod("caps", agent.node_name, hardened))

        pod = await pod_where(
            client,
            "caps",
            lambda p: (
                bool(p.status.container_statuses) and _waiting(p)[0] == "CreateContainerConfigError"
            ),
            "refused",
        )

    assert _waiting(pod)[1] == (
        "spec.containers[0].securityContext.capabilities: not supported by kpy's process "
        "runtime; run it on a Docker node, or remove the field"
    )
