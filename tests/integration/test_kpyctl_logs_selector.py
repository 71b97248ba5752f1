"""`kpyctl logs -l SELECTOR` as a user runs it, against the session's API
server and a real node agent (process runtime) running the pods."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.integration._agent import running_agent
from tests.integration._controllers import eventually
from tests.integration._kpyctl import kpyctl
from tests.integration.test_kpyctl_agent import pod, running

if TYPE_CHECKING:
    from pathlib import Path

    from kpy.apiserver.process import APIServerProcess
    from kpy.client import Client


async def test_logs_of_every_pod_a_selector_matches(
    client: Client, api_namespace: str, apiserver: APIServerProcess, tmp_path: Path
) -> None:
    ns = api_namespace
    async with running_agent(client, runtime="process", root=tmp_path) as agent:
        lines = " ".join(f"echo {i};" for i in range(12))
        for name in ("web-a", "web-b"):
            script = f"echo {name} says hi; {lines} exec sleep 300"
            await client.create(
                pod(
                    name,
                    agent.node_name,
                    {"main": ["sh", "-c", script], "side": ["sh", "-c", "echo side; sleep 300"]},
                    labels={"app": "web"},
                )
            )
        await client.create(
            pod("other", agent.node_name, {"c": ["sh", "-c", "echo no; sleep 300"]})
        )
        for name in ("web-a", "web-b", "other"):
            await running(client, name)

        async def both() -> str:
            out = (await kpyctl(apiserver, ns, "logs", "-l", "app=web", "--tail=-1"))[1]
            return out if out.count("11\n") == 2 else ""

        everything = await eventually(both, what="both pods' lines")
        # Each pod's first container, one pod after the other, by name.
        assert everything.startswith("web-a says hi\n0\n")
        assert "web-b says hi\n0\n" in everything
        assert "side" not in everything
        assert "no\n" not in everything

        # With a selector the default tail is 10 lines per pod, as kubectl's.
        code, out, err = await kpyctl(apiserver, ns, "logs", "-l", "app=web", "--prefix")
        assert (code, err) == (0, "")
        want = [f"[pod/web-a/main] {i}" for i in range(2, 12)]
        want += [f"[pod/web-b/main] {i}" for i in range(2, 12)]
        assert out.splitlines() == want

        code, out, _ = await kpyctl(
            apiserver, ns, "logs", "-l", "app=web", "-c", "side", "--prefix"
        )
        assert out == "[pod/web-a/side] side\n[pod/web-b/side] side\n"
        code, out, _ = await kpyctl(
            apiserver, ns, "logs", "-l", "app=web", "--all-containers", "--tail=1"
        )
        assert out == "11\nside\n11\nside\n"

        code, _, err = await kpyctl(
            apiserver, ns, "logs", "-l", "app=web", "-f", "--all-containers", "--max-log-requests=3"
        )
        assert (code, err) == (
            1,
            "error: you are attempting to follow 4 log streams, but maximum allowed concurrency "
            "is 3, use --max-log-requests to increase the limit\n",
        )
        assert await kpyctl(apiserver, ns, "logs", "-l", "app=none") == (
            0,
            "",
            f"No resources found in {ns} namespace.\n",
        )


async def test_follow_every_matching_pod_until_they_end(
    client: Client, api_namespace: str, apiserver: APIServerProcess, tmp_path: Path
) -> None:
    ns = api_namespace
    async with running_agent(client, runtime="process", root=tmp_path) as agent:
        for name in ("job-a", "job-b"):
            script = f"echo {name} one; sleep 2; echo {name} two"
            await client.create(
                pod(
                    name,
                    agent.node_name,
                    {"c": ["sh", "-c", script]},
                    labels={"app": "job"},
                    restartPolicy="Never",
                )
            )
        for name in ("job-a", "job-b"):
            await running(client, name)
        code, out, err = await kpyctl(apiserver, ns, "logs", "-l", "app=job", "-f", "--prefix")
        assert (code, err) == (0, "")
        assert sorted(out.splitlines()) == [
            "[pod/job-a/c] job-a one",
            "[pod/job-a/c] job-a two",
            "[pod/job-b/c] job-b one",
            "[pod/job-b/c] job-b two",
        ]
