"""`kpyctl delete` as a user runs it: by name, label, file, and each cascade
mode over a Deployment with the controllers and the garbage collector
running."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from kpy.api import errors
from kpy.api.apps.v1 import Deployment, ReplicaSet
from kpy.api.codec import from_dict
from kpy.api.core.v1 import ConfigMap, Pod
from tests.integration._controllers import eventually, running, workload
from tests.integration._kpyctl import kpyctl

if TYPE_CHECKING:
    from pathlib import Path

    from kpy.apiserver.process import APIServerProcess
    from kpy.client import Client


def configmap(name: str, **labels: str) -> ConfigMap:
    return from_dict(ConfigMap, {"metadata": {"name": name, "labels": labels}})


async def names(client: Client, kind: type, ns: str) -> set[str]:
    return {o.metadata.name for o in (await client.list(kind, namespace=ns)).items}


async def test_delete_by_name_label_and_file(
    client: Client, api_namespace: str, apiserver: APIServerProcess, tmp_path: Path
) -> None:
    ns = api_namespace
    for cm in (configmap("a"), configmap("b", app="x"), configmap("c", app="x"), configmap("d")):
        await client.create(cm)
    assert await kpyctl(apiserver, ns, "delete", "configmap", "a") == (
        0,
        'configmap "a" deleted\n',
        "",
    )
    code, _, err = await kpyctl(apiserver, ns, "delete", "cm/a")
    assert (code, err) == (1, 'Error from server (NotFound): configmaps "a" not found\n')
    assert (await kpyctl(apiserver, ns, "delete", "cm/a", "--ignore-not-found"))[0] == 0
    code, out, _ = await kpyctl(apiserver, ns, "delete", "configmaps", "-l", "app=x")
    assert sorted(out.splitlines()) == ['configmap "b" deleted', 'configmap "c" deleted']
    manifest = tmp_path / "d.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\n")
    assert (await kpyctl(apiserver, ns, "delete", "-f", str(manifest)))[
        1
    ] == 'configmap "d" deleted\n'
    assert await names(client, ConfigMap, ns) == set()
    code, _, err = await kpyctl(apiserver, ns, "delete", "pods")
    assert code == 1
    assert "-l SELECTOR, or --all" in err
    code, _, err = await kpyctl(apiserver, ns, "delete", "pod/x", "--grace-period=0")
    assert (code, err) == (
        1,
        "error: --grace-period=0 deletes at once only together with --force\n",
    )


async def test_cascade_modes(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    ns = api_namespace
    async with running(client, ns, "replicaset", "deployment", "garbagecollector"):
        for name in ("kept", "front", "back"):
            await client.create(workload(Deployment, name, 2))

        async def settled() -> bool:
            return (
                len(await names(client, Pod, ns)) == 6
                and len(await names(client, ReplicaSet, ns)) == 3
            )

        await eventually(settled, what="three deployments running")

        code, out, _ = await kpyctl(
            apiserver, ns, "delete", "deployment", "kept", "--cascade=orphan"
        )
        assert (code, out) == (0, 'deployment "kept" deleted\n')
        await eventually(lambda: _gone(client, Deployment, "kept", ns), what="kept deleted")
        rs = [
            r
            for r in (await client.list(ReplicaSet, namespace=ns)).items
            if r.metadata.name.startswith("kept-")
        ]
        assert len(rs) == 1
        assert not rs[0].metadata.owner_references

        # A finalizer on one of front's pods holds the foreground deletion open.
        held = next(
            p
            for p in (await client.list(Pod, namespace=ns)).items
            if p.metadata.name.startswith("front-")
        )
        await client.patch(
            Pod, held.metadata.name, {"metadata": {"finalizers": ["example.com/hold"]}}
        )
        assert (await kpyctl(apiserver, ns, "delete", "deploy/front", "--cascade=foreground"))[
            0
        ] == 0
        await anyio.sleep(0.5)
        front = await client.get(Deployment, "front")
        assert front.metadata.HasField("deletion_timestamp")
        assert "foregroundDeletion" in front.metadata.finalizers
        await client.patch(Pod, held.metadata.name, {"metadata": {"finalizers": None}})
        await eventually(
            lambda: _gone(client, Deployment, "front", ns), what="front gone after its pods"
        )

        assert (await kpyctl(apiserver, ns, "delete", "deploy/back"))[0] == 0

        async def only_kept_left() -> bool:
            rss = await names(client, ReplicaSet, ns)
            return all(n.startswith("kept-") for n in rss) and all(
                n.startswith("kept-") for n in await names(client, Pod, ns)
            )

        await eventually(only_kept_left, what="front's and back's replica sets and pods gone")


async def _gone(client: Client, kind: type, name: str, ns: str) -> bool:
    try:
        await client.get(kind, name, namespace=ns)
    except errors.NotFound:
        return True
    return False
