"""`kpyctl rollout status|history|undo` for StatefulSets, as kubectl does
them (kubectl's StatefulSetStatusViewer, StatefulSetHistoryViewer and
StatefulSetRollbacker).

- Status: only a RollingUpdate StatefulSet has one (BadRequest otherwise);
  it waits for the generation to be observed, then for every replica to be
  ready, then, with a partition, for the pods at or above it to be updated
  ("partitioned roll out complete: N new pods have been updated..."), as
  kubectl says even for partition 0; without one, for the current revision
  to be the update revision.
- History: the set's ControllerRevisions by `revision` (`revisions`; the
  rows and templates are `_daemonset_rollout`'s, shared by every kind whose
  history is ControllerRevisions).
- Undo: the revision's `data` (a patch that replaces the template) is
  patched onto the set; 0 means the revision before the newest. The
  controller then renumbers that revision as the newest and rolls the pods
  back, highest ordinal first, down to the partition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kpy.api import errors
from kpy.api.apps.v1 import ControllerRevision, StatefulSet
from kpy.api.codec import to_dict
from kpy.cli._daemonset_rollout import revision_template
from kpy.controllers.ownership import get_controller_of

if TYPE_CHECKING:
    from kpy.client import ClientProtocol

__all__ = ["revisions", "status_message", "undo"]


def status_message(sts: StatefulSet) -> tuple[str, bool]:
    """kubectl's rollout status line for `sts`, and whether it is done.
    BadRequest for an OnDelete set, which has no rollout to watch."""
    spec, s = sts.spec, sts.status
    if spec.update_strategy.type != "RollingUpdate":
        raise errors.BadRequest(
            "rollout status is only available for RollingUpdate strategy type",
            kind="statefulsets",
            name=sts.metadata.name,
        )
    if s.observed_generation == 0 or sts.metadata.generation > s.observed_generation:
        return "Waiting for statefulset spec update to be observed...", False
    if s.ready_replicas < spec.replicas:
        return f"Waiting for {spec.replicas - s.ready_replicas} pods to be ready...", False
    if spec.update_strategy.HasField("rolling_update"):
        partition = spec.update_strategy.rolling_update.partition
        if s.updated_replicas < spec.replicas - partition:
            return (
                "Waiting for partitioned roll out to finish: "
                f"{s.updated_replicas} out of {spec.replicas - partition} "
                "new pods have been updated...",
                False,
            )
        return (
            f"partitioned roll out complete: {s.updated_replicas} new pods have been updated...",
            True,
        )
    if s.update_revision != s.current_revision:
        return (
            f"waiting for statefulset rolling update to complete {s.updated_replicas} "
            f"pods at revision {s.update_revision}...",
            False,
        )
    return (
        f"statefulset rolling update complete {s.current_replicas} pods "
        f"at revision {s.current_revision}...",
        True,
    )


async def revisions(client: ClientProtocol, owner: Any) -> dict[int, ControllerRevision]:
    """The ControllerRevisions `owner` (a StatefulSet or DaemonSet) controls,
    by number, read from the API."""
    listed = await client.list(ControllerRevision, namespace=owner.metadata.namespace)
    return {
        r.revision: r
        for r in listed.items
        if (ref := get_controller_of(r)) is not None and ref.uid == owner.metadata.uid
    }


async def undo(client: ClientProtocol, namespace: str, name: str, to_revision: int) -> str:
    """Rolls the StatefulSet back; kubectl's message ("rolled back", or why not)."""
    if to_revision < 0:
        raise errors.NotFound(f"unable to find specified revision {to_revision} in history")
    sts = await client.get(StatefulSet, name, namespace=namespace)
    by_number = await revisions(client, sts)
    if to_revision == 0 and len(by_number) <= 1:
        raise errors.BadRequest("no last revision to roll back to", kind="statefulsets", name=name)
    if to_revision == 0:
        to_revision = sorted(by_number)[-2]
    target = by_number.get(to_revision)
    if target is None:
        raise errors.NotFound(f"unable to find specified revision {to_revision} in history")
    if revision_template(target) == sts.spec.template:
        return f"skipped rollback (current template already matches revision {to_revision})"
    patch: Any = to_dict(target.data)
    await client.patch(StatefulSet, name, patch, namespace=namespace)
    return "rolled back"
