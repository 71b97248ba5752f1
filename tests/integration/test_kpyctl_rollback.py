"""`kpyctl rollout undo`'s rollback (kpy/cli/_rollback.py) over the real API
server, with the ReplicaSet and Deployment controllers rolling out what it
writes back; the test plays the node agent (it marks the pods ready)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from kpy.api import errors
from kpy.api.apps.v1 import Deployment, ReplicaSet
from kpy.api.codec import from_dict
from kpy.cli._rollback import rollback
from kpy.controllers.deployment import util
from kpy.controllers.ownership import get_controller_of
from tests.integration._controllers import eventually, make_all_ready, running

if TYPE_CHECKING:
    from kpy.client import Client

HASH = util.DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY


def web(replicas: int, image: str) -> Deployment:
    return from_dict(
        Deployment,
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": image}]},
                },
            },
        },
    )


async def set_image(client: Client, ns: str, image: str) -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}
    await client.patch(Deployment, "web", patch, namespace=ns)


async def replica_sets(client: Client, ns: str) -> list[ReplicaSet]:
    """The ReplicaSets controlled by a Deployment, oldest revision first."""
    items = (await client.list(ReplicaSet, namespace=ns)).items
    owned = [r for r in items if (ref := get_controller_of(r)) and ref.kind == "Deployment"]
    return util.replica_sets_by_revision(owned)


async def rolled_out(client: Client, ns: str) -> Deployment:
    """What `kubectl rollout status` waits for; makes pods ready meanwhile."""

    async def check() -> Deployment | None:
        await make_all_ready(client, ns, "app=web")
        d = await client.get(Deployment, "web", namespace=ns)
        s, want = d.status, d.spec.replicas
        complete = (
            s.observed_generation >= d.metadata.generation
            and s.updated_replicas == want
            and s.replicas == want
            and s.available_replicas == want
        )
        return d if complete else None

    d = await eventually(check, timeout=20, what="the rollout to complete")
    assert d is not None  # eventually returns only a true value
    return d


async def revisions_settle(client: Client, ns: str, want: dict[str, str]) -> None:
    """Each image's ReplicaSet carries that revision."""

    async def check() -> dict[str, str] | None:
        got = {
            r.spec.template.spec.containers[0].image: r.metadata.annotations.get(
                util.REVISION_ANNOTATION, ""
            )
            for r in await replica_sets(client, ns)
        }
        return got if got == want else None

    await eventually(check, what=f"revisions {want}")


async def test_rollback_to_previous_and_to_a_named_revision(
    client: Client, api_namespace: str
) -> None:
    ns = api_namespace
    async with running(client, ns, "replicaset", "deployment"):
        await client.create(web(2, image="busybox:1"))
        await rolled_out(client, ns)
        for image in ("busybox:2", "busybox:3"):
            await set_image(client, ns, image)
            await rolled_out(client, ns)

        result = await rollback(client, ns, "web")  # to the previous: revision 2
        assert (result.revision, result.skipped) == (2, False)
        d = await rolled_out(client, ns)
        assert d.spec.template.spec.containers[0].image == "busybox:2"
        assert HASH not in d.spec.template.metadata.labels
        await revisions_settle(client, ns, {"busybox:1": "1", "busybox:3": "3", "busybox:2": "4"})
        newest = (await replica_sets(client, ns))[-1]
        assert newest.metadata.annotations[util.REVISION_HISTORY_ANNOTATION] == "2"

        result = await rollback(client, ns, "web", to_revision=1)
        assert result.revision == 1
        d = await rolled_out(client, ns)
        assert d.spec.template.spec.containers[0].image == "busybox:1"
        await revisions_settle(client, ns, {"busybox:3": "3", "busybox:2": "4", "busybox:1": "5"})
        assert d.metadata.annotations[util.REVISION_ANNOTATION] == "5"

        again = await rollback(client, ns, "web", to_revision=5)
        assert again.skipped
        with pytest.raises(errors.NotFound, match="revision 99"):
            await rollback(client, ns, "web", to_revision=99)
        with pytest.raises(errors.Invalid):
            await rollback(client, ns, "web", to_revision=-1)
