"""`kpyctl label|annotate|cordon|uncordon|taint|set image|create` as a user
runs them against the real API server."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from kpy.api import errors
from kpy.api.apps.v1 import Deployment
from kpy.api.codec import from_dict
from kpy.api.core.v1 import ConfigMap, Node
from tests.integration._controllers import workload
from tests.integration._kpyctl import kpyctl

if TYPE_CHECKING:
    from pathlib import Path

    from kpy.apiserver.process import APIServerProcess
    from kpy.client import Client


async def test_label_and_annotate(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    ns = api_namespace
    await client.create(
        from_dict(ConfigMap, {"metadata": {"name": "cm", "labels": {"app": "web"}}})
    )
    assert await kpyctl(apiserver, ns, "label", "configmap/cm", "tier=front") == (
        0,
        "configmap/cm labeled\n",
        "",
    )
    code, _, err = await kpyctl(apiserver, ns, "label", "cm", "cm", "app=api")
    assert (code, err) == (1, "error: 'app' already has a value (web), and --overwrite is false\n")
    assert (await kpyctl(apiserver, ns, "label", "cm/cm", "app=api", "tier-", "--overwrite"))[
        0
    ] == 0
    assert (await kpyctl(apiserver, ns, "annotate", "cm/cm", "note=hello"))[
        1
    ] == "configmap/cm annotated\n"
    cm = await client.get(ConfigMap, "cm")
    assert dict(cm.metadata.labels) == {"app": "api"}
    assert cm.metadata.annotations["note"] == "hello"
    code, _, err = await kpyctl(apiserver, ns, "label", "cm/cm", "oops")
    assert (code, err) == (
        1,
        "error: invalid change 'oops': use KEY=VALUE to set, KEY- to remove\n",
    )


async def test_cordon_uncordon_and_taint(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    ns, name = api_namespace, f"{api_namespace[:40]}-node"
    await client.create(from_dict(Node, {"metadata": {"name": name}}))
    try:
        assert (await kpyctl(apiserver, ns, "cordon", name))[1] == f"node/{name} cordoned\n"
        assert (await kpyctl(apiserver, ns, "cordon", name))[1] == f"node/{name} already cordoned\n"
        assert (await client.get(Node, name)).spec.unschedulable
        assert (await kpyctl(apiserver, ns, "uncordon", name))[1] == f"node/{name} uncordoned\n"
        assert not (await client.get(Node, name)).spec.unschedulable

        assert (await kpyctl(apiserver, ns, "taint", "nodes", name, "gpu=yes:NoSchedule"))[
            1
        ] == f"node/{name} tainted\n"
        code, _, err = await kpyctl(apiserver, ns, "taint", "nodes", name, "gpu=no:NoSchedule")
        assert code == 1
        assert "already has gpu taint(s) with same effect(s) and --overwrite is false" in err
        assert (
            await kpyctl(apiserver, ns, "taint", "nodes", name, "gpu=no:NoSchedule", "--overwrite")
        )[0] == 0
        [taint] = (await client.get(Node, name)).spec.taints
        assert (taint.key, taint.value, taint.effect) == ("gpu", "no", "NoSchedule")
        assert (await kpyctl(apiserver, ns, "taint", "nodes", name, "gpu-"))[
            1
        ] == f"node/{name} untainted\n"
        assert not (await client.get(Node, name)).spec.taints
        code, _, err = await kpyctl(apiserver, ns, "taint", "nodes", name, "gpu=yes:Sometimes")
        assert code == 1
        assert err.startswith("error: invalid taint effect 'Sometimes': use one of NoSchedule")
    finally:
        with contextlib.suppress(errors.NotFound):
            await client.delete(Node, name)


async def test_set_image_and_create(
    client: Client, api_namespace: str, apiserver: APIServerProcess, tmp_path: Path
) -> None:
    ns = api_namespace
    await client.create(workload(Deployment, "web", 1))
    assert await kpyctl(apiserver, ns, "set", "image", "deployment/web", "c=busybox:2") == (
        0,
        "deployment.apps/web image updated\n",
        "",
    )
    d = await client.get(Deployment, "web")
    assert [c.image for c in d.spec.template.spec.containers] == ["busybox:2"]
    code, _, err = await kpyctl(apiserver, ns, "set", "image", "deployment/web", "nope=x")
    assert (code, err) == (1, 'error: unable to find container named "nope"\n')

    manifest = tmp_path / "cm.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: made}\ndata: {k: v}\n")
    assert await kpyctl(apiserver, ns, "create", "-f", str(manifest)) == (
        0,
        "configmap/made created\n",
        "",
    )
    code, _, err = await kpyctl(apiserver, ns, "create", "-f", str(manifest))
    assert code == 1
    assert err.startswith("Error from server (AlreadyExists):")
