"""`kpyctl rollout status|history|undo|restart` and `describe` for a
DaemonSet as a user runs them: the real command in a subprocess against the
real API server, with the DaemonSet controller keeping its
ControllerRevisions. The DaemonSet selects no node (its nodeSelector names
a label no node has), so no scheduler or agent is needed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kpy.api.apps.v1 import ControllerRevision, DaemonSet
from kpy.api.codec import from_dict, to_dict
from tests.integration._controllers import eventually, running
from tests.integration._kpyctl import kpyctl

if TYPE_CHECKING:
    from kpy.apiserver.process import APIServerProcess
    from kpy.client import Client


def daemon_set(image: str) -> DaemonSet:
    labels = {"app": "agent"}
    body: dict[str, Any] = {
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"kpy.test/no-such-node": "true"},
                    "containers": [{"name": "c", "image": image}],
                },
            },
        },
    }
    return from_dict(DaemonSet, body)


async def revisions(client: Client, ns: str, count: int) -> dict[int, str] | None:
    """Revision number -> image, once there are `count` revisions."""
    listed = (await client.list(ControllerRevision, namespace=ns)).items
    found = {
        r.revision: to_dict(r.data)["spec"]["template"]["spec"]["containers"][0]["image"]
        for r in listed
    }
    return found if len(found) == count else None


async def test_rollout_history_undo_restart_status_and_describe(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    ns = api_namespace
    async with running(client, ns, "daemonset"):
        await client.create(daemon_set("agent:1"))
        await eventually(lambda: revisions(client, ns, 1), what="revision 1")
        await client.patch(
            DaemonSet,
            "agent",
            {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "agent:2"}]}}}},
        )
        seen = await eventually(lambda: revisions(client, ns, 2), what="revision 2")
        assert seen == {1: "agent:1", 2: "agent:2"}

        code, out, err = await kpyctl(apiserver, ns, "rollout", "history", "ds/agent")
        assert (code, err) == (0, "")
        assert out == (
            "daemonset.apps/agent \nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n\n"
        )
        code, out, _ = await kpyctl(apiserver, ns, "rollout", "history", "ds/agent", "--revision=1")
        assert code == 0
        assert out.startswith("daemonset.apps/agent with revision #1\nPod Template:\n")
        assert "Image:\tagent:1" in out

        code, out, err = await kpyctl(apiserver, ns, "rollout", "undo", "daemonset/agent")
        assert (code, out, err) == (0, "daemonset.apps/agent rolled back\n", "")
        ds = await client.get(DaemonSet, "agent")
        assert ds.spec.template.spec.containers[0].image == "agent:1"
        # The controller renumbers the revision brought back as the newest.
        await eventually(
            lambda: _equals(revisions(client, ns, 2), {3: "agent:1", 2: "agent:2"}),
            what="revision 1 renumbered 3",
        )
        code, out, err = await kpyctl(
            apiserver, ns, "rollout", "undo", "daemonset/agent", "--to-revision=3"
        )
        assert out == (
            "daemonset.apps/agent skipped rollback (current template already matches revision 3)\n"
        )
        code, out, err = await kpyctl(
            apiserver, ns, "rollout", "undo", "daemonset/agent", "--to-revision=9"
        )
        assert (code, err) == (
            1,
            "Error from server (NotFound): unable to find specified revision 9 in history\n",
        )

        code, out, err = await kpyctl(apiserver, ns, "rollout", "restart", "ds/agent")
        assert (code, out, err) == (0, "daemonset.apps/agent restarted\n", "")
        await eventually(lambda: revisions(client, ns, 3), what="a revision for the restart")

        code, out, err = await kpyctl(
            apiserver, ns, "rollout", "status", "ds/agent", "--timeout=20"
        )
        assert (code, out, err) == (0, 'daemon set "agent" successfully rolled out\n', "")

        code, out, err = await kpyctl(apiserver, ns, "rollout", "pause", "ds/agent")
        assert (code, err) == (1, "error: rollout pause works on deployments, not daemonsets\n")

        code, out, err = await kpyctl(apiserver, ns, "describe", "ds", "agent")
        assert (code, err) == (0, "")
        lines = out.splitlines()
        assert lines[0].split() == ["Name:", "agent"]
        assert lines[1].split() == ["Selector:", "app=agent"]
        assert lines[2].split() == ["Node-Selector:", "kpy.test/no-such-node=true"]
        assert "Desired Number of Nodes Scheduled: 0" in lines
        assert "Number of Nodes Misscheduled: 0" in lines
        assert "Pods Status:  0 Running / 0 Waiting / 0 Succeeded / 0 Failed" in lines


async def _equals(found: Any, want: dict[int, str]) -> bool:
    return bool(await found == want)
