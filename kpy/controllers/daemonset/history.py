"""A DaemonSet's history as ControllerRevisions (Kubernetes'
pkg/controller/daemon/update.go: constructHistory, snapshot, cleanupHistory).

Each template a DaemonSet has run is one ControllerRevision, named
`<daemonset>-<hash>`, labelled with the template's labels and
`controller-revision-hash`, owned by the DaemonSet, holding in `data` the
patch that restores the template (`{"spec": {"template": {..., "$patch":
"replace"}}}`, what `kpyctl rollout undo` applies) and a `revision` number.

- `construct(ds)` returns the current revision (creating it, numbered one
  past the highest old one, if the template is new; renumbering it if an
  undo brought an older template back) and the old ones.
- A revision whose name is taken by a different template is a hash
  collision: `status.collisionCount` goes up, so the next sync hashes
  differently (the error makes the sync retry).
- `cleanup(ds, old, live_hashes)` deletes the oldest old revisions beyond
  `revisionHistoryLimit`, never one a live pod still runs.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from google.protobuf.struct_pb2 import Struct

from kpy.api import errors
from kpy.api.apps.v1 import ControllerRevision, DaemonSet
from kpy.api.codec import to_dict
from kpy.api.labels import selector_from_label_selector
from kpy.controllers.daemonset.util import REVISION_HASH_LABEL, template_hash
from kpy.controllers.ownership import ControllerRefManager, new_controller_ref

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.cache.informer import Lister
    from kpy.client import ClientProtocol

log = logging.getLogger("kpy.controllers.daemonset")

__all__ = ["History", "revision_patch"]


def revision_patch(ds: DaemonSet) -> Struct:
    """Kubernetes' getPatch: the template as a patch that replaces it."""
    template = to_dict(ds.spec.template) or {}
    template["$patch"] = "replace"
    data = Struct()
    data.update({"spec": {"template": template}})
    return data


class History:
    """The ControllerRevisions of DaemonSets, read from a lister."""

    def __init__(self, client: ClientProtocol, revisions: Lister[ControllerRevision]) -> None:
        self._client = client
        self._revisions = revisions

    async def construct(self, ds: DaemonSet) -> tuple[ControllerRevision, list[ControllerRevision]]:
        """(current, old) revisions; see the module docstring."""
        patch = revision_patch(ds)
        current: list[ControllerRevision] = []
        old: list[ControllerRevision] = []
        for revision in await self._claim(ds):
            if REVISION_HASH_LABEL not in revision.metadata.labels:
                revision = await self._label(revision)
            (current if revision.data == patch else old).append(revision)
        next_number = max((r.revision for r in old), default=0) + 1
        if not current:
            return await self._snapshot(ds, patch, next_number), old
        cur = await self._dedup(current)
        if cur.revision < next_number:
            fresh = ControllerRevision()
            fresh.CopyFrom(cur)
            fresh.revision = next_number
            cur = await self._client.update(fresh)
        return cur, old

    async def cleanup(
        self, ds: DaemonSet, old: Sequence[ControllerRevision], live_hashes: set[str]
    ) -> None:
        limit = ds.spec.revision_history_limit if ds.spec.HasField("revision_history_limit") else 10
        excess = len(old) - limit
        for revision in sorted(old, key=lambda r: r.revision):
            if excess <= 0:
                return
            if revision.metadata.labels.get(REVISION_HASH_LABEL) in live_hashes:
                continue
            await self._delete(revision)
            excess -= 1

    async def _claim(self, ds: DaemonSet) -> list[ControllerRevision]:
        selector = selector_from_label_selector(ds.spec.selector)
        ref = new_controller_ref(ds, "apps/v1", "DaemonSet")

        async def recheck() -> Any:
            return await self._client.get(
                DaemonSet, ds.metadata.name, namespace=ds.metadata.namespace
            )

        manager = ControllerRefManager(self._client, ds, selector, ref, recheck)
        return await manager.claim(self._revisions.list(ds.metadata.namespace))

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

    async def _snapshot(self, ds: DaemonSet, patch: Struct, number: int) -> ControllerRevision:
        revision_hash = template_hash(ds)
        revision = ControllerRevision(data=patch, revision=number)
        meta = revision.metadata
        meta.name = f"{ds.metadata.name}-{revision_hash}"
        meta.namespace = ds.metadata.namespace
        meta.labels.update(ds.spec.template.metadata.labels)
        meta.labels[REVISION_HASH_LABEL] = revision_hash
        meta.annotations.update(ds.metadata.annotations)
        meta.owner_references.append(new_controller_ref(ds, "apps/v1", "DaemonSet"))
        try:
            created: ControllerRevision = await self._client.create(revision)
        except errors.AlreadyExists:
            existing = await self._client.get(
                ControllerRevision, meta.name, namespace=meta.namespace
            )
            owner = next((r for r in existing.metadata.owner_references if r.controller), None)
            if owner is not None and owner.uid == ds.metadata.uid and existing.data == patch:
                return existing
            await self._bump_collision_count(ds)
            raise
        log.info(
            "created revision",
            extra={"daemonset": ds.metadata.name, "revision": meta.name, "number": number},
        )
        return created

    async def _bump_collision_count(self, ds: DaemonSet) -> None:
        fresh = DaemonSet()
        fresh.CopyFrom(ds)
        fresh.status.collision_count = ds.status.collision_count + 1
        await self._client.update_status(fresh)
