"""`kpyctl rollout status|history|undo` for DaemonSets, as kubectl does them
(kubectl's DaemonSetStatusViewer, DaemonSetHistoryViewer and
DaemonSetRollbacker).

- Status: only a RollingUpdate DaemonSet has one; it waits for the
  generation to be observed, then for every desired node to run an updated
  pod, then for those to be available.
- History: the DaemonSet's ControllerRevisions by `revision`, with the
  `kubernetes.io/change-cause` annotation each carries; `--revision N`
  shows that revision's pod template.
- Undo: the revision's `data` (a strategic-merge patch that replaces the
  template) is patched onto the DaemonSet; 0 means the revision before the
  newest. The controller then renumbers that revision as the newest, as it
  does for any template it has seen before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kpy.api import errors
from kpy.api.apps.v1 import ControllerRevision, DaemonSet
from kpy.api.codec import from_dict, to_dict
from kpy.api.core.v1 import PodTemplateSpec
from kpy.controllers.ownership import get_controller_of

if TYPE_CHECKING:
    from kpy.client import ClientProtocol

__all__ = ["history_rows", "revision_template", "status_message", "undo"]

CHANGE_CAUSE = "kubernetes.io/change-cause"


def status_message(ds: DaemonSet) -> tuple[str, bool]:
    """kubectl's rollout status line for `ds`, and whether it is done.
    BadRequest for an OnDelete DaemonSet, which has no rollout to watch."""
    name = ds.metadata.name
    if ds.spec.update_strategy.type != "RollingUpdate":
        raise errors.BadRequest(
            "rollout status is only available for RollingUpdate strategy type",
            kind="daemonsets",
            name=name,
        )
    if ds.metadata.generation > ds.status.observed_generation:
        return "Waiting for daemon set spec update to be observed...", False
    s = ds.status
    if s.updated_number_scheduled < s.desired_number_scheduled:
        return (
            f'Waiting for daemon set "{name}" rollout to finish: '
            f"{s.updated_number_scheduled} out of {s.desired_number_scheduled} "
            "new pods have been updated...",
            False,
        )
    if s.number_available < s.desired_number_scheduled:
        return (
            f'Waiting for daemon set "{name}" rollout to finish: '
            f"{s.number_available} of {s.desired_number_scheduled} updated pods are available...",
            False,
        )
    return f'daemon set "{name}" successfully rolled out', True


async def revisions(client: ClientProtocol, ds: DaemonSet) -> dict[int, ControllerRevision]:
    """The DaemonSet's ControllerRevisions by number, read from the API."""
    listed = await client.list(ControllerRevision, namespace=ds.metadata.namespace)
    return {
        r.revision: r
        for r in listed.items
        if (ref := get_controller_of(r)) is not None and ref.uid == ds.metadata.uid
    }


def history_rows(by_number: dict[int, ControllerRevision]) -> list[tuple[int, str]]:
    """(revision, change cause) oldest first, as `rollout history` lists them."""
    return [
        (n, by_number[n].metadata.annotations.get(CHANGE_CAUSE, "<none>"))
        for n in sorted(by_number)
    ]


def revision_template(revision: ControllerRevision) -> PodTemplateSpec:
    """The pod template a revision holds."""
    template = dict(to_dict(revision.data).get("spec", {}).get("template", {}))
    template.pop("$patch", None)
    return from_dict(PodTemplateSpec, template)


async def undo(client: ClientProtocol, namespace: str, name: str, to_revision: int) -> str:
    """Rolls the DaemonSet back; kubectl's message ("rolled back", or why not)."""
    if to_revision < 0:
        raise errors.NotFound(f"unable to find specified revision {to_revision} in history")
    ds = await client.get(DaemonSet, name, namespace=namespace)
    by_number = await revisions(client, ds)
    if to_revision == 0 and len(by_number) <= 1:
        raise errors.BadRequest(
            f'daemon set "{name}": no last revision to roll back to', kind="daemonsets", name=name
        )
    if to_revision == 0:
        to_revision = sorted(by_number)[-2]
    target = by_number.get(to_revision)
    if target is None:
        raise errors.NotFound(f"unable to find specified revision {to_revision} in history")
    if revision_template(target) == ds.spec.template:
        return f"skipped rollback (current template already matches revision {to_revision})"
    patch: Any = to_dict(target.data)
    await client.patch(DaemonSet, name, patch, namespace=namespace)
    return "rolled back"
