"""Rollback for `kpyctl rollout undo`, the way kubectl does it (kubectl's
DeploymentRollbacker): apps/v1 has no spec.rollbackTo, so the client writes
an old ReplicaSet's template back into the Deployment and the controller
rolls it out like any template change. The old ReplicaSet is found equal to
the template again, becomes the new ReplicaSet and gets the next revision
number; the number it had is kept in its revision-history annotation.

Contract of `rollback(client, namespace, name, to_revision)`:
- `to_revision` 0 means the revision before the current one; otherwise the
  ReplicaSet of the Deployment whose revision annotation is that number.
- The Deployment's template becomes that ReplicaSet's template without the
  pod-template-hash label; its annotations become the ReplicaSet's, but for
  the ones the controller owns (revision, replicas annotations, ...), which
  the Deployment keeps.
- Errors: `NotFound` naming the revision when it is not in the history (or
  there is no previous revision), `Invalid` for a negative revision,
  `BadRequest` for a paused Deployment (resume it first, as kubectl says),
  `NotFound` for a missing Deployment. A concurrent change of the
  Deployment (Conflict) is retried on a fresh read a few times.
- A rollback to the template the Deployment already has writes nothing and
  says so (`skipped`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from kpy.api import errors
from kpy.api.apps.v1 import Deployment, ReplicaSet
from kpy.api.labels import selector_from_label_selector
from kpy.controllers.deployment import util
from kpy.controllers.ownership import get_controller_of

if TYPE_CHECKING:
    from kpy.client import ClientProtocol

__all__ = ["RollbackResult", "rollback"]

_CONFLICT_RETRIES: Final = 5


@dataclass(frozen=True, slots=True)
class RollbackResult:
    deployment: Deployment
    #: the revision whose template the Deployment now has.
    revision: int
    #: True when the Deployment already had that template: nothing was written.
    skipped: bool

    @property
    def message(self) -> str:
        """kubectl's wording."""
        if self.skipped:
            return f"skipped rollback (current template already matches revision {self.revision})"
        return "rolled back"


async def rollback(
    client: ClientProtocol, namespace: str, name: str, to_revision: int = 0
) -> RollbackResult:
    """See the module docstring."""
    if to_revision < 0:
        raise errors.Invalid(
            [
                errors.FieldError(
                    "toRevision", errors.INVALID, f"revision {to_revision} must not be negative"
                )
            ],
            kind="Deployment",
            name=name,
        )
    for attempt in range(_CONFLICT_RETRIES):
        d = await client.get(Deployment, name, namespace=namespace)
        if d.spec.paused:
            raise errors.BadRequest(
                f'deployment "{name}": you cannot rollback a paused deployment; resume it '
                f"first with 'kpyctl rollout resume deployment/{name}' and try again",
                kind="deployments",
                name=name,
            )
        target = await _replica_set_for_revision(client, d, to_revision)
        number = util.revision(target)
        if util.equal_ignore_hash(target.spec.template, d.spec.template):
            return RollbackResult(d, number, skipped=True)
        util.set_from_replica_set_template(d, target.spec.template)
        util.set_deployment_annotations_to(d, target)
        try:
            updated = await client.update(d)
        except errors.Conflict:
            if attempt == _CONFLICT_RETRIES - 1:
                raise
            continue
        return RollbackResult(updated, number, skipped=False)
    raise AssertionError("unreachable")  # the loop returns or raises


async def _replica_set_for_revision(
    client: ClientProtocol, d: Deployment, to_revision: int
) -> ReplicaSet:
    """The Deployment's ReplicaSet for that revision (0: the one before the
    newest), read from the API rather than a cache."""
    selector = selector_from_label_selector(d.spec.selector)
    listed = await client.list(
        ReplicaSet, namespace=d.metadata.namespace, label_selector=str(selector)
    )
    owned = [
        rs
        for rs in listed.items
        if (ref := get_controller_of(rs)) is not None and ref.uid == d.metadata.uid
    ]
    latest: tuple[int, ReplicaSet] | None = None
    previous: tuple[int, ReplicaSet] | None = None
    for rs in owned:
        try:
            number = util.revision(rs)
        except ValueError:
            continue
        if to_revision > 0:
            if number == to_revision:
                return rs
            continue
        if latest is None or latest[0] < number:
            previous, latest = latest, (number, rs)
        elif previous is None or previous[0] < number:
            previous = (number, rs)
    if to_revision > 0:
        raise errors.NotFound(
            f'deployment "{d.metadata.name}": unable to find specified revision '
            f"{to_revision} in history",
            kind="deployments",
            name=d.metadata.name,
        )
    if previous is None:
        raise errors.NotFound(
            f'no rollout history found for deployment "{d.metadata.name}"',
            kind="deployments",
            name=d.metadata.name,
        )
    return previous[1]
