"""`kpyctl logs|exec|top|drain` as a user runs them, against the session's
API server and a real node agent (process runtime) running the pods."""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING, Any

import anyio

from kpy.api import codec, errors
from kpy.api.apps.v1 import ReplicaSet
from kpy.api.core.v1 import Node, Pod
from kpy.cli.drain import wait_for_deletion
from tests.integration._agent import running_agent
from tests.integration._controllers import eventually, workload
from tests.integration._kpyctl import KPYCTL, kpyctl

if TYPE_CHECKING:
    from pathlib import Path

    from kpy.apiserver.process import APIServerProcess
    from kpy.client import Client

# A container that holds this much memory, so `top` has a figure well above 0Mi.
HELD_MIB = 64


def pod(
    name: str,
    node: str,
    containers: dict[str, list[str]],
    *,
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> Pod:
    made: Pod = codec.from_dict(
        Pod,
        {
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {
                "nodeName": node,
                "containers": [
                    {"name": c, "image": "busybox", "command": cmd} for c, cmd in containers.items()
                ],
                **spec,
            },
        },
    )
    return made


async def running(client: Client, name: str) -> Pod:
    """The pod once every container runs."""

    async def check() -> Pod | None:
        got = await client.get(Pod, name)
        statuses = got.status.container_statuses
        up = statuses and all(s.state.HasField("running") for s in statuses)
        return got if got.status.phase == "Running" and up else None

    return await eventually(check, 30, what=f"pod {name} running")


async def exec_kpyctl(
    server: APIServerProcess, ns: str, *words: str, stdin: str = ""
) -> tuple[int, str, str]:
    """`kpyctl exec --server S -n NS WORDS`: the connection flags before
    `--`, where exec still reads flags."""
    done = await anyio.run_process(
        [KPYCTL, "exec", "--server", server.address, "-n", ns, *words],
        input=stdin.encode(),
        check=False,
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def gone(client: Client, name: str) -> bool:
    try:
        await client.get(Pod, name)
    except errors.NotFound:
        return True
    return False


# -- logs -------------------------------------------------------------------------------------


async def test_logs_tail_and_container_choice(
    client: Client, api_namespace: str, apiserver: APIServerProcess, tmp_path: Path
) -> None:
    ns = api_namespace
    async with running_agent(client, runtime="process", root=tmp_path) as agent:
        await client.create(
            pod(
                "two",
                agent.node_name,
                {
                    "a": ["sh", "-c", "echo a1; echo a2; echo a3; exec sleep 300"],
                    "b": ["sh", "-c", "echo from-b; exec sleep 300"],
                },
                labels={"app": "two"},
            )
        )
        await client.create(workload(ReplicaSet, "two", 0))  # selects app=two
        await running(client, "two")

        async def logged() -> str:
            return (await kpyctl(apiserver, ns, "logs", "two", "-c", "a"))[1]

        assert await eventually(logged, what="a's three lines") == "a1\na2\na3\n"
        assert await kpyctl(apiserver, ns, "logs", "two", "-c", "a", "--tail", "2") == (
            0,
            "a2\na3\n",
            "",
        )
        assert await kpyctl(apiserver, ns, "logs", "pod/two", "b") == (0, "from-b\n", "")
        assert await kpyctl(apiserver, ns, "logs", "rs/two", "-c", "b") == (0, "from-b\n", "")
        assert await kpyctl(apiserver, ns, "logs", "two") == (
            1,
            "",
            "Error from server (BadRequest): a container name must be specified for pod two, "
            "choose one of: [a b]\n",
        )
        code, _, err = await kpyctl(apiserver, ns, "logs", "two", "-c", "nope")
        assert (code, err) == (
            1,
            "Error from server (BadRequest): container nope is not valid for pod two; "
            "choose one of: [a b]\n",
        )
        code, _, err = await kpyctl(apiserver, ns, "logs", "missing")
        assert (code, err) == (1, 'Error from server (NotFound): pods "missing" not found\n')


async def test_logs_previous_after_a_restart(
    client: Client, api_namespace: str, apiserver: APIServerProcess, tmp_path: Path
) -> None:
    ns, marker = api_namespace, tmp_path / "ran-once"
    # The first run leaves a marker and fails; the restart finds it and stays up.
    script = (
        f"if [ -e {marker} ]; then echo second; exec sleep 300; fi; "
        f"touch {marker}; echo first; exit 3"
    )
    async with running_agent(client, runtime="process", root=tmp_path, backoff_base=1.0) as agent:
        await client.create(pod("again", agent.node_name, {"c": ["sh", "-c", script]}))

        async def restarted() -> bool:
            got = await running(client, "again")
            return got.status.container_statuses[0].restart_count == 1

        await eventually(restarted, 30, what="one restart")
        assert await kpyctl(apiserver, ns, "logs", "again", "--previous") == (0, "first\n", "")
        assert await kpyctl(apiserver, ns, "logs", "again", "-p") == (0, "first\n", "")
        assert await kpyctl(apiserver, ns, "logs", "again") == (0, "second\n", "")


async def test_logs_follow_streams_and_ends_with_the_container(
    client: Client, api_namespace: str, apiserver: APIServerProcess, tmp_path: Path
) -> None:
    ns = api_namespace
    script = "echo one; sleep 3; echo two; sleep 1; echo three"
    async with running_agent(client, runtime="process", root=tmp_path) as agent:
        await client.create(
            pod("talk", agent.node_name, {"c": ["sh", "-c", script]}, restartPolicy="Never")
        )
        await running(client, "talk")
        argv = [KPYCTL, "logs", "-f", "talk", "--server", apiserver.address, "-n", ns]
        async with await anyio.open_process(argv) as follower:
            try:
                assert follower.stdout is not None
                first = await follower.stdout.receive()
                # The first line arrives while the container (and so -f) goes on.
                assert first == b"one\n"
                assert follower.returncode is None
                rest = b"".join([chunk async for chunk in follower.stdout])
                with anyio.fail_after(30):
                    assert await follower.wait() == 0
            finally:
                if follower.returncode is None:
                    follower.kill()
                    await follower.wait()
        assert rest == b"two\nthree\n"


# -- exec -------------------------------------------------------------------------------------


async def test_exec_output_exit_code_and_stdin(
    client: Client, api_namespace: str, apiserver: APIServerProcess, tmp_path: Path
) -> None:
    ns = api_namespace
    async with running_agent(client, runtime="process", root=tmp_path) as agent:
        await client.create(pod("box", agent.node_name, {"c": ["sleep", "300"]}))
        await running(client, "box")
        assert await exec_kpyctl(
            apiserver, ns, "box", "--", "sh", "-c", "echo out; echo err >&2"
        ) == (0, "out\n", "err\n")
        assert await exec_kpyctl(apiserver, ns, "box", "-c", "c", "--", "sh", "-c", "exit 7") == (
            7,
            "",
            "command terminated with exit code 7\n",
        )
        assert await exec_kpyctl(apiserver, ns, "-i", "pod/box", "--", "cat", stdin="hi\nyo\n") == (
            0,
            "hi\nyo\n",
            "",
        )
        # Without -i the command sees no input at all.
        assert await exec_kpyctl(apiserver, ns, "box", "--", "cat", stdin="ignored") == (0, "", "")
        assert await exec_kpyctl(apiserver, ns, "box", "-c", "nope", "--", "true") == (
            1,
            "",
            "Error from server (BadRequest): container nope is not valid for pod box; "
            "choose one of: [c]\n",
        )
        # The exec ends with its command, though our stdin is still open.
        argv = [KPYCTL, "exec", "-i", "box", "--server", apiserver.address, "-n", ns, "--", "true"]
        async with await anyio.open_process(argv) as quick:
            try:
                with anyio.fail_after(20):
                    assert await quick.wait() == 0
            finally:
                if quick.returncode is None:
                    quick.kill()
                    await quick.wait()
        code, _, err = await exec_kpyctl(apiserver, ns, "box")
        assert code == 1
        assert err.startswith("error: you must specify at least one command for the container")


# -- top --------------------------------------------------------------------------------------


def table(text: str) -> dict[str, list[str]]:
    """Rows of a table keyed by their first cell (the header under its own)."""
    return {cells[0]: cells for cells in (line.split() for line in text.splitlines())}


def millicores(cell: str) -> int:
    assert cell.endswith("m"), cell
    return int(cell[:-1])


def mebibytes(cell: str) -> int:
    assert cell.endswith("Mi"), cell
    return int(cell[:-2])


# About an eighth of a core: 30 ms of shell arithmetic, then 200 ms asleep.
BUSY = "while :; do i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done; sleep 0.2; done"


async def test_top_pods_containers_and_nodes(
    client: Client, api_namespace: str, apiserver: APIServerProcess, tmp_path: Path
) -> None:
    ns = api_namespace
    hold = f"import time; x = bytearray({HELD_MIB} << 20); time.sleep(300)"
    ghost = f"{ns[:40]}-ghost"  # a Node no agent answers for
    await client.create(codec.from_dict(Node, {"metadata": {"name": ghost}}))
    try:
        async with running_agent(client, runtime="process", root=tmp_path) as agent:
            await client.create(
                pod(
                    "busy",
                    agent.node_name,
                    {
                        "spin": ["sh", "-c", BUSY],
                        "hold": [sys.executable, "-c", hold],
                    },
                )
            )
            await running(client, "busy")

            code, out, _ = await kpyctl(apiserver, ns, "top", "pods")
            assert code == 0
            rows = table(out)
            assert rows["NAME"] == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
            # The busy shell uses about an eighth of a core when it has
            # one; on a loaded machine less, but never nothing.
            assert millicores(rows["busy"][1]) > 0, out
            assert mebibytes(rows["busy"][2]) >= HELD_MIB, out

            code, out, _ = await kpyctl(apiserver, ns, "top", "pod", "--containers")
            assert code == 0
            lines = [line.split() for line in out.splitlines()]
            assert lines[0] == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
            by_container = {cells[1]: cells for cells in lines[1:]}
            assert set(by_container) == {"spin", "hold"}
            assert millicores(by_container["spin"][2]) > millicores(by_container["hold"][2]), out
            assert mebibytes(by_container["hold"][3]) >= HELD_MIB, out

            code, out, _ = await kpyctl(apiserver, ns, "top", "pods", "busy", "--no-headers")
            assert (code, [cells[0] for cells in table(out).values()]) == (0, ["busy"])
            code, _, err = await kpyctl(apiserver, ns, "top", "pods", "nosuch")
            assert (code, err) == (1, 'Error from server (NotFound): pods "nosuch" not found\n')

            code, out, _ = await kpyctl(apiserver, ns, "top", "pods", "-A")
            assert code == 0
            header, *rest = (line.split() for line in out.splitlines())
            assert header == ["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"]
            assert [ns, "busy"] in [cells[:2] for cells in rest]

            code, out, err = await kpyctl(apiserver, ns, "top", "nodes")
            assert code == 0
            rows = table(out)
            assert rows["NAME"] == ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]
            mine = rows[agent.node_name]
            assert millicores(mine[1]) > 0, out  # the busy pod runs on it
            assert re.fullmatch(r"\d+%", mine[2]), out
            assert re.fullmatch(r"\d+%", mine[4]), out
            assert mebibytes(mine[3]) >= HELD_MIB, out
            assert rows[ghost] == [ghost, "<unknown>", "<unknown>", "<unknown>", "<unknown>"]
            assert f'Warning: no metrics from node "{ghost}": ' in err

        empty = f"{ns[:50]}-empty"
        assert await kpyctl(apiserver, empty, "top", "pods") == (
            0,
            "",
            f"No resources found in {empty} namespace.\n",
        )
    finally:
        await client.delete(Node, ghost)


# -- drain ------------------------------------------------------------------------------------


async def test_drain_refuses_a_bare_pod_then_deletes_with_force(
    client: Client, api_namespace: str, apiserver: APIServerProcess, tmp_path: Path
) -> None:
    ns = api_namespace
    async with running_agent(client, runtime="process", root=tmp_path) as agent:
        node = agent.node_name
        static = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "static", "namespace": ns},
            "spec": {
                "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "300"]}]
            },
        }
        (agent.manifests / "static.json").write_text(json.dumps(static))
        owner = await client.create(workload(ReplicaSet, "rs", 0))
        owned = pod("owned", node, {"c": ["sleep", "300"]})
        owned.metadata.owner_references.add(
            api_version="apps/v1",
            kind="ReplicaSet",
            name="rs",
            uid=owner.metadata.uid,
            controller=True,
        )
        await client.create(owned)
        await client.create(pod("bare", node, {"c": ["sleep", "300"]}))
        for name in ("owned", "bare", f"static-{node}"):
            await running(client, name)

        code, out, err = await kpyctl(apiserver, ns, "drain", node)
        refusal = (
            f"cannot delete Pods that declare no controller (use --force to override): {ns}/bare"
        )
        assert (code, out) == (1, f"node/{node} cordoned\n")
        assert err == (
            f'error: unable to drain node "{node}" due to error: {refusal}, continuing command...\n'
            f"There are pending nodes to be drained:\n {node}\n{refusal}\n"
        )
        assert (await client.get(Node, node)).spec.unschedulable
        assert not await gone(client, "bare")  # a refusal deletes nothing

        code, out, err = await kpyctl(
            apiserver, ns, "drain", node, "--force", "--grace-period", "1", "--timeout", "60s"
        )
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0] == f"node/{node} already cordoned"
        assert lines[1:3] == [f"evicting pod {ns}/bare", f"evicting pod {ns}/owned"]
        assert sorted(lines[3:5]) == ["pod/bare evicted", "pod/owned evicted"]
        assert lines[5:] == [f"node/{node} drained"]
        assert err == (
            f"Warning: deleting Pods that declare no controller: {ns}/bare; "
            f"ignoring mirror Pods: {ns}/static-{node}\n"
        )
        assert await gone(client, "bare")
        assert await gone(client, "owned")
        assert not await gone(client, f"static-{node}")  # a mirror pod stays with its node


async def test_drain_gives_up_after_the_timeout(
    client: Client, api_namespace: str, apiserver: APIServerProcess, tmp_path: Path
) -> None:
    ns = api_namespace
    stubborn = ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"]  # ignores SIGTERM
    async with running_agent(client, runtime="process", root=tmp_path) as agent:
        node = agent.node_name
        await client.create(
            pod("stubborn", node, {"c": stubborn}, terminationGracePeriodSeconds=60)
        )
        await running(client, "stubborn")
        code, out, err = await kpyctl(apiserver, ns, "drain", node, "--force", "--timeout", "2s")
        assert code == 1
        assert out == f"node/{node} cordoned\nevicting pod {ns}/stubborn\n"
        assert err.splitlines()[1:4] == [
            f'error: unable to drain node "{node}" due to error: drain did not complete within '
            "2s, continuing command...",
            "There are pending nodes to be drained:",
            f" {node}",
        ], err
        assert f"still terminating: {ns}/stubborn" in err

        # The wait itself: progress while the pod stays, each pod reported as it goes.
        stuck = await client.get(Pod, "stubborn")
        waits: list[float] = []
        went: list[str] = []
        left = await wait_for_deletion(
            client,
            [stuck],
            1.0,
            on_gone=lambda p: went.append(p.metadata.name),
            on_wait=lambda pods, waited: waits.append(waited),
            interval=0.05,
            progress_every=0.3,
        )
        assert ([p.metadata.name for p in left], went) == (["stubborn"], [])
        assert len(waits) >= 2, waits
        await client.delete(Pod, "stubborn", grace_period_seconds=0)
        left = await wait_for_deletion(
            client,
            [stuck],
            30.0,
            on_gone=lambda p: went.append(p.metadata.name),
            on_wait=lambda pods, waited: None,
            interval=0.05,
        )
        assert (left, went) == ([], ["stubborn"])


async def test_drain_of_a_missing_node(api_namespace: str, apiserver: APIServerProcess) -> None:
    assert await kpyctl(apiserver, api_namespace, "drain", "no-such-node") == (
        1,
        "",
        'Error from server (NotFound): nodes "no-such-node" not found\n',
    )
