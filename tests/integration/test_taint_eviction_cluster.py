"""`kpyctl taint nodes N k=v:NoExecute` evicts as users expect, over the
real API server: the taint eviction controller deletes the pods on the node
that do not tolerate the taint, marked DisruptionTarget, and leaves the
pods that do; the API server gave every pod the 300 s default tolerations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpy.api.codec import from_dict
from kpy.api.core.v1 import Node, Pod
from tests.integration._controllers import eventually, running
from tests.integration._kpyctl import kpyctl

if TYPE_CHECKING:
    from kpy.apiserver.process import APIServerProcess
    from kpy.client import Client


def bound_pod(name: str, node: str, tolerations: list[dict[str, str]]) -> Pod:
    return from_dict(
        Pod,
        {
            "metadata": {"name": name},
            "spec": {
                "nodeName": node,
                "tolerations": tolerations,
                "containers": [{"name": "c", "image": "busybox"}],
            },
        },
    )


async def test_a_no_execute_taint_evicts_the_pods_that_do_not_tolerate_it(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    ns, node = api_namespace, f"{api_namespace[:40]}-node"
    await client.create(from_dict(Node, {"metadata": {"name": node}}))
    try:
        plain = await client.create(bound_pod("plain", node, []))
        defaults = {(t.key, t.effect, t.toleration_seconds) for t in plain.spec.tolerations}
        assert defaults == {
            ("node.kubernetes.io/not-ready", "NoExecute", 300),
            ("node.kubernetes.io/unreachable", "NoExecute", 300),
        }
        forever = [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]
        await client.create(bound_pod("tolerant", node, forever))
        async with running(client, ns, "taint-eviction-controller"):
            code, out, err = await kpyctl(
                apiserver, ns, "taint", "nodes", node, "dedicated=db:NoExecute"
            )
            assert (code, out) == (0, f"node/{node} tainted\n"), err

            async def evicted() -> Pod | None:
                pod = await client.get(Pod, "plain")
                return pod if pod.metadata.HasField("deletion_timestamp") else None

            pod = await eventually(evicted, 15, "the intolerant pod being deleted")
            assert pod is not None
            [target] = [c for c in pod.status.conditions if c.type == "DisruptionTarget"]
            assert (target.status, target.reason) == ("True", "DeletionByTaintManager")
            tolerant = await client.get(Pod, "tolerant")
            assert not tolerant.metadata.HasField("deletion_timestamp")
    finally:
        await client.delete(Node, node)
