"""A StatefulSet pod's identity and storage, pure (Kubernetes'
pkg/controller/statefulset/stateful_set_utils.go).

- A pod is `<set>-<ordinal>` for ordinals `ordinals.start` up to
  `start + replicas - 1`; it carries the labels
  `statefulset.kubernetes.io/pod-name` and `apps.kubernetes.io/pod-index`,
  `hostname` = its name and `subdomain` = the set's `serviceName`, and
  `controller-revision-hash` = the name of the revision it was made from.
- Each `volumeClaimTemplates` entry gives the pod one claim,
  `<template>-<set>-<ordinal>`, and a volume of the template's name
  referring to it (replacing a template volume of that name).
- `claim_owners_match(claim, set, pod)`: whether a claim's owner references
  agree with `persistentVolumeClaimRetentionPolicy` (Kubernetes'
  claimOwnerMatchesSetAndPod); `with_retention_owners` returns the claim
  with them made to agree.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from kpy.api.core.v1 import PersistentVolumeClaim, Pod
from kpy.api.meta.v1 import OwnerReference
from kpy.controllers.history import REVISION_HASH_LABEL
from kpy.controllers.ownership import (
    is_pod_available,
    is_pod_ready,
    new_controller_ref,
    pod_from_template,
)

if TYPE_CHECKING:
    from kpy.api.apps.v1 import StatefulSet
    from kpy.api.core.v1 import PodTemplateSpec

__all__ = [
    "POD_INDEX_LABEL",
    "POD_NAME_LABEL",
    "claim_name",
    "claim_owners_match",
    "claims_for",
    "identity_matches",
    "in_ordinal_range",
    "is_available",
    "is_healthy",
    "is_member_of",
    "new_stateful_pod",
    "parent_and_ordinal",
    "pod_revision",
    "start_ordinal",
    "with_identity",
    "with_retention_owners",
]

#: Kubernetes' apps.StatefulSetPodNameLabel and apps.PodIndexLabel.
POD_NAME_LABEL: Final = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL: Final = "apps.kubernetes.io/pod-index"

_ORDINAL_NAME: Final = re.compile(r"^(.*)-([0-9]+)$")


def parent_and_ordinal(pod: Pod) -> tuple[str, int]:
    """(set name, ordinal) from the pod's name; ("", -1) if it has none."""
    match = _ORDINAL_NAME.match(pod.metadata.name)
    if match is None:
        return "", -1
    return match.group(1), int(match.group(2))


def is_member_of(sts: StatefulSet, pod: Pod) -> bool:
    """Whether the pod's name makes it one of the set's (Kubernetes' isMemberOf)."""
    return parent_and_ordinal(pod)[0] == sts.metadata.name


def start_ordinal(sts: StatefulSet) -> int:
    return sts.spec.ordinals.start if sts.spec.HasField("ordinals") else 0


def in_ordinal_range(sts: StatefulSet, ordinal: int) -> bool:
    start = start_ordinal(sts)
    return start <= ordinal < start + sts.spec.replicas


def pod_revision(pod: Pod) -> str:
    return pod.metadata.labels.get(REVISION_HASH_LABEL, "")


def is_healthy(pod: Pod) -> bool:
    """Running and Ready, and not being deleted (Kubernetes' isHealthy)."""
    return (
        pod.status.phase == "Running"
        and is_pod_ready(pod)
        and not pod.metadata.HasField("deletion_timestamp")
    )


def is_available(pod: Pod, min_ready_seconds: int, now: float) -> bool:
    """Healthy, and ready for at least minReadySeconds."""
    return is_healthy(pod) and is_pod_available(pod, min_ready_seconds, now)


def claim_name(template_name: str, set_name: str, ordinal: int) -> str:
    return f"{template_name}-{set_name}-{ordinal}"


def claims_for(sts: StatefulSet, ordinal: int) -> list[PersistentVolumeClaim]:
    """The claims of the pod with this ordinal, made from the templates
    (Kubernetes' getPersistentVolumeClaims): named per ordinal, in the set's
    namespace, with the set's matchLabels added."""
    claims = []
    for template in sts.spec.volume_claim_templates:
        claim = PersistentVolumeClaim()
        claim.CopyFrom(template)
        meta = claim.metadata
        meta.name = claim_name(template.metadata.name, sts.metadata.name, ordinal)
        meta.namespace = sts.metadata.namespace
        meta.labels.update(sts.spec.selector.match_labels)
        claim.ClearField("status")
        claims.append(claim)
    return claims


def with_identity(pod: Pod, sts: StatefulSet, ordinal: int) -> None:
    """Kubernetes' initIdentity: name, hostname, subdomain and the labels."""
    name = f"{sts.metadata.name}-{ordinal}"
    pod.metadata.name = name
    pod.metadata.ClearField("generate_name")
    pod.metadata.labels[POD_NAME_LABEL] = name
    pod.metadata.labels[POD_INDEX_LABEL] = str(ordinal)
    pod.spec.hostname = name
    pod.spec.subdomain = sts.spec.service_name


def identity_matches(sts: StatefulSet, pod: Pod) -> bool:
    """Whether the pod's identity labels are the ones its ordinal asks for
    (hostname and subdomain are fixed at creation)."""
    _, ordinal = parent_and_ordinal(pod)
    labels = pod.metadata.labels
    return labels.get(POD_NAME_LABEL) == pod.metadata.name and labels.get(POD_INDEX_LABEL) == str(
        ordinal
    )


def _with_storage(pod: Pod, sts: StatefulSet, ordinal: int) -> None:
    """Kubernetes' updateStorage: a volume per claim template, replacing a
    template volume of the same name."""
    templates = {t.metadata.name for t in sts.spec.volume_claim_templates}
    if not templates:
        return
    kept = [v for v in pod.spec.volumes if v.name not in templates]
    del pod.spec.volumes[:]
    for template in sts.spec.volume_claim_templates:
        volume = pod.spec.volumes.add(name=template.metadata.name)
        volume.persistent_volume_claim.claim_name = claim_name(
            template.metadata.name, sts.metadata.name, ordinal
        )
    pod.spec.volumes.extend(kept)


def new_stateful_pod(
    sts: StatefulSet, template: PodTemplateSpec, revision_name: str, ordinal: int
) -> Pod:
    """The pod for `ordinal`, made from `template` (the set's, or an older
    revision's) and labelled with `revision_name`."""
    pod = pod_from_template(template, sts, new_controller_ref(sts, "apps/v1", "StatefulSet"))
    with_identity(pod, sts, ordinal)
    _with_storage(pod, sts, ordinal)
    pod.metadata.labels[REVISION_HASH_LABEL] = revision_name
    return pod


# -- retention policy ----------------------------------------------------------------------


def _has_owner(claim: PersistentVolumeClaim, uid: str) -> bool:
    return any(ref.uid == uid for ref in claim.metadata.owner_references)


def _wanted_owners(sts: StatefulSet, pod: Pod) -> tuple[bool, bool]:
    """(owned by the set, owned by the pod) as the retention policy asks:
    whenDeleted Delete makes the set an owner; whenScaled Delete makes the
    pod of a condemned (scaled-away) ordinal the owner instead."""
    policy = sts.spec.persistent_volume_claim_retention_policy
    when_deleted = policy.when_deleted or "Retain"
    when_scaled = policy.when_scaled or "Retain"
    condemned = not in_ordinal_range(sts, parent_and_ordinal(pod)[1])
    scaled_away = when_scaled == "Delete" and condemned
    return when_deleted == "Delete" and not scaled_away, scaled_away


def claim_owners_match(claim: PersistentVolumeClaim, sts: StatefulSet, pod: Pod) -> bool:
    by_set, by_pod = _wanted_owners(sts, pod)
    return (
        _has_owner(claim, sts.metadata.uid) == by_set
        and _has_owner(claim, pod.metadata.uid) == by_pod
    )


def with_retention_owners(
    claim: PersistentVolumeClaim, sts: StatefulSet, pod: Pod
) -> PersistentVolumeClaim:
    """A copy of `claim` whose references to the set and the pod follow the
    retention policy; other owners are kept."""
    by_set, by_pod = _wanted_owners(sts, pod)
    fresh = PersistentVolumeClaim()
    fresh.CopyFrom(claim)
    refs = [
        r
        for r in claim.metadata.owner_references
        if r.uid not in (sts.metadata.uid, pod.metadata.uid)
    ]
    if by_set:
        refs.append(new_controller_ref(sts, "apps/v1", "StatefulSet"))
    if by_pod:
        refs.append(
            OwnerReference(
                api_version="v1", kind="Pod", name=pod.metadata.name, uid=pod.metadata.uid
            )
        )
    del fresh.metadata.owner_references[:]
    fresh.metadata.owner_references.extend(refs)
    return fresh
