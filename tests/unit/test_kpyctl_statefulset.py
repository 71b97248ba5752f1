"""kpyctl for StatefulSets without a server: `rollout status` messages
(kubectl's StatefulSetStatusViewer), `describe sts` as kubectl prints it,
`get sts` columns, and `rollout undo|history` on the fake client."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any

import pytest

from kpy.api import errors
from kpy.api.apps.v1 import ControllerRevision, StatefulSet
from kpy.api.codec import from_dict
from kpy.api.defaults import set_defaults
from kpy.cli import _client, _printers, _statefulset_rollout, describe, rollout
from kpy.client.fake import FakeClient
from kpy.controllers.history import revision_patch
from kpy.controllers.ownership import new_controller_ref


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


# -- rollout status ----------------------------------------------------------------------------


def stateful_set(
    *,
    generation: int = 2,
    observed: int = 2,
    replicas: int = 3,
    ready: int = 3,
    updated: int = 3,
    current: int = 3,
    partition: int | None = 0,
    strategy: str = "RollingUpdate",
    revisions: tuple[str, str] = ("web-1", "web-1"),
) -> StatefulSet:
    sts = StatefulSet()
    sts.metadata.name = "web"
    sts.metadata.generation = generation
    sts.spec.replicas = replicas
    sts.spec.update_strategy.type = strategy
    if partition is not None:
        sts.spec.update_strategy.rolling_update.partition = partition
    s = sts.status
    s.observed_generation = observed
    s.ready_replicas = ready
    s.updated_replicas = updated
    s.current_replicas = current
    s.current_revision, s.update_revision = revisions
    return sts


@dataclass(frozen=True)
class Case:
    name: str
    sts: StatefulSet
    message: str
    done: bool


CASES = [
    Case(
        "the new generation is not observed yet",
        stateful_set(generation=3),
        "Waiting for statefulset spec update to be observed...",
        False,
    ),
    Case(
        "never observed",
        stateful_set(observed=0),
        "Waiting for statefulset spec update to be observed...",
        False,
    ),
    Case("pods not ready", stateful_set(ready=1), "Waiting for 2 pods to be ready...", False),
    Case(
        "partition 1: web-1 not updated yet",
        stateful_set(partition=1, updated=1),
        "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated...",
        False,
    ),
    Case(
        "partition 1: done once web-2 and web-1 are updated",
        stateful_set(partition=1, updated=2),
        "partitioned roll out complete: 2 new pods have been updated...",
        True,
    ),
    Case(
        "partition 0 (the default): kubectl's partitioned wording too",
        stateful_set(),
        "partitioned roll out complete: 3 new pods have been updated...",
        True,
    ),
    Case(
        "no rollingUpdate: waits for the current revision",
        stateful_set(partition=None, updated=1, revisions=("web-1", "web-2")),
        "waiting for statefulset rolling update to complete 1 pods at revision web-2...",
        False,
    ),
    Case(
        "no rollingUpdate: complete",
        stateful_set(partition=None, revisions=("web-2", "web-2")),
        "statefulset rolling update complete 3 pods at revision web-2...",
        True,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_status_message(case: Case) -> None:
    got = _statefulset_rollout.status_message(case.sts)
    assert got == (case.message, case.done), f"{case.name}: got {got}"


def test_status_of_an_on_delete_set_is_refused() -> None:
    with pytest.raises(errors.BadRequest, match="only available for RollingUpdate"):
        _statefulset_rollout.status_message(stateful_set(strategy="OnDelete", partition=None))


# -- describe and get ------------------------------------------------------------------------------

WEB: dict[str, Any] = {
    "metadata": {
        "name": "web",
        "namespace": "default",
        "uid": "sts-uid",
        "creationTimestamp": "2026-12-07T10:00:00Z",
    },
    "spec": {
        "replicas": 3,
        "serviceName": "nginx",
        "selector": {"matchLabels": {"app": "nginx"}},
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
        "template": {
            "metadata": {"labels": {"app": "nginx"}},
            "spec": {
                "containers": [
                    {
                        "name": "nginx",
                        "image": "registry.k8s.io/nginx-slim:0.24",
                        "ports": [{"containerPort": 80, "name": "web"}],
                        "volumeMounts": [{"name": "www", "mountPath": "/usr/share/nginx/html"}],
                    }
                ]
            },
        },
        "volumeClaimTemplates": [
            {
                "metadata": {"name": "www"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "my-storage-class",
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        ],
    },
    "status": {"replicas": 2, "readyReplicas": 2},
}

WEB_TEXT = """\
Name:               web
Namespace:          default
CreationTimestamp:  Mon, 07 Dec 2026 10:00:00 +0000
Selector:           app=nginx
Labels:             <none>
Annotations:        <none>
Replicas:           3 desired | 2 total
Update Strategy:    RollingUpdate
  Partition:        1
Pods Status:        0 Running / 0 Waiting / 0 Succeeded / 0 Failed
Pod Template:
  Labels:  app=nginx
  Containers:
   nginx:
    Image:        registry.k8s.io/nginx-slim:0.24
    Port:         80/TCP
    Host Port:    0/TCP
    Environment:  <none>
    Mounts:
      /usr/share/nginx/html from www (rw)
  Volumes:  <none>
Volume Claims:
  Name:          www
  StorageClass:  my-storage-class
  Labels:        <none>
  Annotations:   <none>
  Capacity:      1Gi
  Access Modes:  [ReadWriteOnce]
Events:          <none>
"""


async def test_describe_statefulset_as_kubectl_prints_it() -> None:
    client: Any = FakeClient()
    sts = from_dict(StatefulSet, WEB)
    text = await describe.describe(client, _client.resolve("statefulsets.apps"), sts, scheduler="")
    assert text == WEB_TEXT, text


async def test_describe_counts_the_pods_the_set_controls() -> None:
    from kpy.api.core.v1 import Pod

    sts = from_dict(StatefulSet, WEB)
    client = FakeClient()
    for i, phase in enumerate(("Running", "Running", "Pending")):
        pod = Pod()
        pod.metadata.name = f"web-{i}"
        pod.metadata.namespace = "default"
        pod.metadata.owner_references.append(new_controller_ref(sts, "apps/v1", "StatefulSet"))
        pod.spec.containers.add(name="nginx", image="nginx")
        pod.status.phase = phase
        client.add(pod)
    text = await describe.describe(
        client,  # type: ignore[arg-type]
        _client.resolve("statefulsets.apps"),
        sts,
        scheduler="",
    )
    assert "Pods Status:        2 Running / 1 Waiting / 0 Succeeded / 0 Failed" in text, text


def test_get_statefulsets_columns() -> None:
    sts = from_dict(StatefulSet, WEB)
    now = sts.metadata.creation_timestamp.seconds + 3600
    assert _printers.table("StatefulSet", [sts], now, wide=True) == [
        ["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"],
        ["web", "2/3", "60m", "nginx", "registry.k8s.io/nginx-slim:0.24"],
    ]


# -- rollout undo and history ----------------------------------------------------------------------


def _set(image: str) -> StatefulSet:
    body = {**WEB, "status": {}}
    sts = from_dict(StatefulSet, body)
    sts.spec.template.spec.containers[0].image = image
    return set_defaults(sts)


def _revision(sts: StatefulSet, number: int, cause: str = "") -> ControllerRevision:
    revision = ControllerRevision(data=revision_patch(sts), revision=number)
    revision.metadata.name = f"web-{number}"
    revision.metadata.namespace = "default"
    if cause:
        revision.metadata.annotations["kubernetes.io/change-cause"] = cause
    revision.metadata.owner_references.append(new_controller_ref(sts, "apps/v1", "StatefulSet"))
    return revision


async def _seeded(*revisions: int) -> FakeClient:
    """A set at nginx:2 whose revisions are nginx:<number> for each number given."""
    client = FakeClient()
    [current] = client.add(_set("nginx:2"))
    for n in revisions:
        old = _set(f"nginx:{n}")
        old.metadata.uid = current.metadata.uid
        client.add(_revision(old, n, cause=f"image {n}"))
    return client


async def test_undo_patches_the_previous_template_back() -> None:
    client = await _seeded(1, 2)
    message = await _statefulset_rollout.undo(client, "default", "web", 0)
    assert message == "rolled back"
    stored = client.stored(StatefulSet, "web")
    assert stored is not None
    assert stored.spec.template.spec.containers[0].image == "nginx:1"


@pytest.mark.parametrize(
    ("name", "revisions", "to_revision", "error", "match"),
    [
        ("no previous revision", (2,), 0, errors.BadRequest, "no last revision to roll back to"),
        ("an unknown revision", (1, 2), 7, errors.NotFound, "unable to find specified revision 7"),
        ("a negative revision", (1, 2), -1, errors.NotFound, "unable to find specified revision"),
    ],
)
async def test_undo_refuses(
    name: str, revisions: tuple[int, ...], to_revision: int, error: type[Exception], match: str
) -> None:
    client = await _seeded(*revisions)
    with pytest.raises(error, match=match):
        await _statefulset_rollout.undo(client, "default", "web", to_revision)


async def test_undo_to_the_current_template_is_skipped() -> None:
    client = await _seeded(1, 2)
    message = await _statefulset_rollout.undo(client, "default", "web", 2)
    assert message == "skipped rollback (current template already matches revision 2)"


async def test_history_lists_revisions_with_their_change_cause() -> None:
    client: Any = await _seeded(1, 2)
    out = io.StringIO()
    await rollout._revision_history(client, "StatefulSet", "web", "default", 0, out)
    assert out.getvalue() == (
        "statefulset.apps/web \nREVISION  CHANGE-CAUSE\n1         image 1\n2         image 2\n\n"
    )
    out = io.StringIO()
    await rollout._revision_history(client, "StatefulSet", "web", "default", 1, out)
    assert out.getvalue().startswith("statefulset.apps/web with revision #1\nPod Template:\n")
    assert "Image:\tnginx:1" in out.getvalue()
