"""`kpyctl apply` against the real API server, run as a user runs it: create,
re-apply unchanged, a field removed from the file removed from the object,
fields other writers set left alone, and bad manifests refused whole."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpy.api.apps.v1 import Deployment
from kpy.api.core.v1 import ConfigMap
from tests.integration._kpyctl import kpyctl

if TYPE_CHECKING:
    from pathlib import Path

    from kpy.apiserver.process import APIServerProcess
    from kpy.client import Client


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "busybox:1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast, level: "3"}
"""


async def test_apply_creates_then_configures_and_prunes_removed_fields(
    client: Client, api_namespace: str, apiserver: APIServerProcess
) -> None:
    ns = api_namespace
    code, out, err = await kpyctl(apiserver, ns, "apply", "-f", "-", stdin=DEPLOYMENT)
    assert (code, err) == (0, "")
    assert out == "deployment.apps/web created\nconfigmap/settings created\n"
    assert (await kpyctl(apiserver, ns, "apply", "-f", "-", stdin=DEPLOYMENT))[1] == (
        "deployment.apps/web unchanged\nconfigmap/settings unchanged\n"
    )
    # Another writer's change survives a re-apply that does not mention it.
    await client.patch(Deployment, "web", {"metadata": {"annotations": {"owner": "ops"}}})
    edited = DEPLOYMENT.replace("tier: front", "").replace("replicas: 2", "replicas: 3")
    edited = edited.replace('mode: fast, level: "3"', "mode: fast")
    code, out, err = await kpyctl(apiserver, ns, "apply", "-f", "-", stdin=edited)
    assert err == ""
    assert out == "deployment.apps/web configured\nconfigmap/settings configured\n"
    d = await client.get(Deployment, "web")
    assert dict(d.metadata.labels) == {"app": "web"}  # tier removed with the file's line
    assert d.spec.replicas == 3
    assert d.metadata.annotations["owner"] == "ops"
    assert d.spec.template.spec.containers[0].termination_message_path  # server defaults kept
    cm = await client.get(ConfigMap, "settings")
    assert dict(cm.data) == {"mode": "fast"}


async def test_dry_runs_and_bad_manifests_store_nothing(
    client: Client, api_namespace: str, apiserver: APIServerProcess, tmp_path: Path
) -> None:
    ns = api_namespace
    code, out, _ = await kpyctl(
        apiserver, ns, "apply", "--dry-run=server", "-f", "-", stdin=DEPLOYMENT
    )
    assert code == 0
    assert out.splitlines() == [
        "deployment.apps/web created (server dry run)",
        "configmap/settings created (server dry run)",
    ]
    assert (await client.list(Deployment, namespace=ns)).items == []
    first, second = DEPLOYMENT.split("---\n")
    (tmp_path / "1-deployment.yaml").write_text(first.replace("replicas: 2", "replicas: -1"))
    (tmp_path / "2-settings.yaml").write_text(
        second.replace("kind: ConfigMap", "kind: ConfigMap\nbogus: 1")
    )
    (tmp_path / "3-fine.yaml").write_text(second.replace("name: settings", "name: fine"))
    bad = tmp_path
    code, out, err = await kpyctl(apiserver, ns, "apply", "-f", str(bad))
    assert code == 1
    assert out == ""
    assert "spec.replicas" in err
    assert "bogus" in err
    assert "nothing was applied" in err
    assert (await client.list(Deployment, namespace=ns)).items == []
    assert (await client.list(ConfigMap, namespace=ns)).items == []  # not even the valid one
