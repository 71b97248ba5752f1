"""A workload's history as ControllerRevisions, shared by the DaemonSet and
StatefulSet controllers (Kubernetes' pkg/controller/history and the
constructHistory / getStatefulSetRevisions code of both controllers).

Each template an owner (a DaemonSet or StatefulSet: anything with
`spec.template`, `spec.selector`, `spec.revisionHistoryLimit` and
`status.collisionCount`) has run is one ControllerRevision, named
`<owner>-<hash>`, labelled with the template's labels and
`controller-revision-hash: <hash>`, controlled by the owner, holding in
`data` the patch that restores the template (`{"spec": {"template": {...,
"$patch": "replace"}}}`, what `kpyctl rollout undo` applies) and a
`revision` number.

- `construct(owner)` returns the revision of the owner's template (creating
  it, numbered one past the highest other one, if the template is new;
  renumbering it if an undo brought an older template back) and the others.
- A revision whose name is taken by a different template is a hash
  collision: `status.collisionCount` goes up, so the next sync hashes
  differently (the AlreadyExists error makes the sync retry).
- `cleanup(owner, old, live)` deletes the oldest old revisions beyond
  `revisionHistoryLimit`, never one named in `live` (by hash or by name:
  DaemonSet pods carry the hash, StatefulSet pods the revision's name).

Reads come from the revisions lister; the owner's kind is its message type.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any, Final

from google.protobuf.struct_pb2 import Struct

from kpy.api import errors
from kpy.api.apps.v1 import ControllerRevision
from kpy.api.codec import from_dict, to_dict
from kpy.api.core.v1 import PodTemplateSpec
from kpy.api.labels import selector_from_label_selector
from kpy.controllers.deployment.util import compute_hash
from kpy.controllers.ownership import ControllerRefManager, new_controller_ref

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from kpy.cache.informer import Lister
    from kpy.client import ClientProtocol

log = logging.getLogger("kpy.controllers.history")

__all__ = [
    "REVISION_HASH_LABEL",
    "History",
    "revision_patch",
    "revision_template",
    "template_hash",
]

#: Kubernetes' ControllerRevisionHashLabelKey.
REVISION_HASH_LABEL: Final = "controller-revision-hash"


def template_hash(owner: Any) -> str:
    """The hash of the owner's current template and collision count."""
    collisions = owner.status.collision_count if owner.status.HasField("collision_count") else None
    return compute_hash(owner.spec.template, collisions)


def revision_patch(owner: Any) -> Struct:
    """Kubernetes' getPatch: the template as a patch that replaces it."""
    template = to_dict(owner.spec.template) or {}
    template["$patch"] = "replace"
    data = Struct()
    data.update({"spec": {"template": template}})
    return data


def revision_template(revision: ControllerRevision) -> PodTemplateSpec:
    """The pod template a revision holds (Kubernetes' ApplyRevision, for the template)."""
    template = dict(to_dict(revision.data).get("spec", {}).get("template", {}))
    template.pop("$patch", None)
    return from_dict(PodTemplateSpec, template)


class History:
    """The ControllerRevisions of owners of one kind, read from a lister."""

    def __init__(self, client: ClientProtocol, revisions: Lister[ControllerRevision]) -> None:
        self._client = client
        self._revisions = revisions

    async def construct(self, owner: Any) -> tuple[ControllerRevision, list[ControllerRevision]]:
        """(current, old) revisions; see the module docstring."""
        patch = revision_patch(owner)
        current: list[ControllerRevision] = []
        old: list[ControllerRevision] = []
        for revision in await self._claim(owner):
            if REVISION_HASH_LABEL not in revision.metadata.labels:
                revision = await self._label(revision)
            (current if revision.data == patch else old).append(revision)
        next_number = max((r.revision for r in old), default=0) + 1
        if not current:
            return await self._snapshot(owner, patch, next_number), old
        cur = await self._dedup(current)
        if cur.revision < next_number:
            fresh = ControllerRevision()
            fresh.CopyFrom(cur)
            fresh.revision = next_number
            cur = await self._client.update(fresh)
        return cur, old

    async def cleanup(
        self, owner: Any, old: Sequence[ControllerRevision], live: Collection[str]
    ) -> None:
        spec = owner.spec
        limit = spec.revision_history_limit if spec.HasField("revision_history_limit") else 10
        excess = len(old) - limit
        for revision in sorted(old, key=lambda r: r.revision):
            if excess <= 0:
                return
            if (
                revision.metadata.labels.get(REVISION_HASH_LABEL) in live
                or revision.metadata.name in live
            ):
                continue
            await self._delete(revision)
            excess -= 1

    async def _claim(self, owner: Any) -> list[ControllerRevision]:
        selector = selector_from_label_selector(owner.spec.selector)
        ref = new_controller_ref(owner, "apps/v1", type(owner).__name__)

        async def recheck() -> Any:
            return await self._client.get(
                type(owner), owner.metadata.name, namespace=owner.metadata.namespace
            )

        manager = ControllerRefManager(self._client, owner, selector, ref, recheck)
        return await manager.claim(self._revisions.list(owner.metadata.namespace))

    async def _label(self, revision: ControllerRevision) -> ControllerRevision:
        # The name is unique where a recomputed hash might collide.
        fresh = ControllerRevision()
        fresh.CopyFrom(revision)
        fresh.metadata.labels[REVISION_HASH_LABEL] = revision.metadata.name
        return await self._client.update(fresh)

    async def _dedup(self, current: list[ControllerRevision]) -> ControllerRevision:
        """Keeps the highest-numbered of revisions holding the same template."""
        if len(current) == 1:
            return current[0]
        keep = max(current, key=lambda r: r.revision)
        for duplicate in current:
            if duplicate is keep:
                continue
            await self._delete(duplicate)
        return keep

    async def _delete(self, revision: ControllerRevision) -> None:
        with contextlib.suppress(errors.NotFound):
            await self._client.delete(
                ControllerRevision, revision.metadata.name, namespace=revision.metadata.namespace
            )

    async def _snapshot(self, owner: Any, patch: Struct, number: int) -> ControllerRevision:
        revision_hash = template_hash(owner)
        revision = ControllerRevision(data=patch, revision=number)
        meta = revision.metadata
        meta.name = f"{owner.metadata.name}-{revision_hash}"
        meta.namespace = owner.metadata.namespace
        meta.labels.update(owner.spec.template.metadata.labels)
        meta.labels[REVISION_HASH_LABEL] = revision_hash
        meta.annotations.update(owner.metadata.annotations)
        meta.owner_references.append(new_controller_ref(owner, "apps/v1", type(owner).__name__))
        try:
            created: ControllerRevision = await self._client.create(revision)
        except errors.AlreadyExists:
            existing = await self._client.get(
                ControllerRevision, meta.name, namespace=meta.namespace
            )
            owner_ref = next((r for r in existing.metadata.owner_references if r.controller), None)
            if (
                owner_ref is not None
                and owner_ref.uid == owner.metadata.uid
                and (existing.data == patch)
            ):
                return existing
            await self._bump_collision_count(owner)
            raise
        log.info(
            "created revision",
            extra={
                "kind": type(owner).__name__,
                "owner": f"{meta.namespace}/{owner.metadata.name}",
                "revision": meta.name,
                "number": number,
            },
        )
        return created

    async def _bump_collision_count(self, owner: Any) -> None:
        fresh = type(owner)()
        fresh.CopyFrom(owner)
        fresh.status.collision_count = owner.status.collision_count + 1
        await self._client.update_status(fresh)
