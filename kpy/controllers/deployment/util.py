"""Pure helpers of the Deployment controller (Kubernetes'
pkg/controller/deployment/util/deployment_util.go, in snake_case).

Contract:
- Nothing here talks to the API or keeps state. Functions that take a
  Deployment or ReplicaSet only read it, except the ones whose name says they
  set or remove something (`set_*`, `remove_*`, `copy_*`), which mutate the
  object they are given: callers pass their own copy, never a lister's.
- Lists of ReplicaSets may contain None (a Deployment without a new
  ReplicaSet yet), as Kubernetes' slices may contain nil; counting and
  filtering skip it.
- Go's multiple results become tuples (`find_old_replica_sets`,
  `resolve_fenceposts`, `get_desired_replicas_annotation`), Go's errors become
  `ValueError`s.
- Times are epoch seconds (floats); conditions carry protobuf Timestamps.
"""

from __future__ import annotations

import functools
import math
import re
import struct
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from google.protobuf.timestamp_pb2 import Timestamp

from kpy.api.apps.v1 import Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet
from kpy.api.core.v1 import PodTemplateSpec
from kpy.api.intstr import get_scaled_value_from_int_or_percent
from kpy.api.labels import selector_from_label_selector
from kpy.api.meta.v1 import IntOrString, LabelSelector

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from kpy.api.apps.v1 import ReplicaSetCondition

# -- names -------------------------------------------------------------------------------

#: the label that tells a Deployment's ReplicaSets (and their pods) apart.
DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY: Final = "pod-template-hash"

REVISION_ANNOTATION: Final = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION: Final = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION: Final = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION: Final = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED_CONFIG_ANNOTATION: Final = "kubectl.kubernetes.io/last-applied-configuration"
DEPRECATED_ROLLBACK_TO: Final = "deprecated.deployment.rollback.to"

#: the revision-history annotation is cut to about this many characters.
MAX_REV_HISTORY_LENGTH_IN_CHARS: Final = 2000

ROLLING_UPDATE: Final = "RollingUpdate"
RECREATE: Final = "Recreate"

# Condition types and reasons, as `kubectl rollout status` reads them.
DEPLOYMENT_AVAILABLE: Final = "Available"
DEPLOYMENT_PROGRESSING: Final = "Progressing"
DEPLOYMENT_REPLICA_FAILURE: Final = "ReplicaFailure"
REPLICA_SET_UPDATED_REASON: Final = "ReplicaSetUpdated"
FAILED_RS_CREATE_REASON: Final = "ReplicaSetCreateError"
NEW_REPLICA_SET_REASON: Final = "NewReplicaSetCreated"
FOUND_NEW_RS_REASON: Final = "FoundNewReplicaSet"
NEW_RS_AVAILABLE_REASON: Final = "NewReplicaSetAvailable"
TIMED_OUT_REASON: Final = "ProgressDeadlineExceeded"
PAUSED_DEPLOY_REASON: Final = "DeploymentPaused"
RESUMED_DEPLOY_REASON: Final = "DeploymentResumed"
MINIMUM_REPLICAS_AVAILABLE: Final = "MinimumReplicasAvailable"
MINIMUM_REPLICAS_UNAVAILABLE: Final = "MinimumReplicasUnavailable"

_MAX_INT32: Final = 2**31 - 1
_INT64: Final = re.compile(r"[+-]?[0-9]+")
_UNSIGNED: Final = re.compile(r"[0-9]+")

_ANNOTATIONS_TO_SKIP: Final = frozenset(
    {
        LAST_APPLIED_CONFIG_ANNOTATION,
        REVISION_ANNOTATION,
        REVISION_HISTORY_ANNOTATION,
        DESIRED_REPLICAS_ANNOTATION,
        MAX_REPLICAS_ANNOTATION,
        DEPRECATED_ROLLBACK_TO,
    }
)

Now = float | datetime | Timestamp


# -- conditions --------------------------------------------------------------------------


def new_deployment_condition(
    cond_type: str, status: str, reason: str, message: str, *, now: Now | None = None
) -> DeploymentCondition:
    """A condition updated and transitioned `now` (default: the current time)."""
    stamp = _timestamp(now)
    return DeploymentCondition(
        type=cond_type,
        status=status,
        reason=reason,
        message=message,
        last_update_time=stamp,
        last_transition_time=stamp,
    )


def get_deployment_condition(
    status: DeploymentStatus, cond_type: str
) -> DeploymentCondition | None:
    """A copy of the condition of that type, or None."""
    for c in status.conditions:
        if c.type == cond_type:
            found = DeploymentCondition()
            found.CopyFrom(c)
            return found
    return None


def set_deployment_condition(status: DeploymentStatus, condition: DeploymentCondition) -> None:
    """Puts `condition` in `status`, replacing one of its type. Nothing changes
    when the present one has the same status and reason; the transition time
    is kept when only the reason changes."""
    current = get_deployment_condition(status, condition.type)
    if current is not None and (current.status, current.reason) == (
        condition.status,
        condition.reason,
    ):
        return
    new = DeploymentCondition()
    new.CopyFrom(condition)
    if current is not None and current.status == condition.status:
        new.last_transition_time.CopyFrom(current.last_transition_time)
    remove_deployment_condition(status, condition.type)
    status.conditions.append(new)


def remove_deployment_condition(status: DeploymentStatus, cond_type: str) -> None:
    for i in reversed(range(len(status.conditions))):
        if status.conditions[i].type == cond_type:
            del status.conditions[i]


def replica_set_to_deployment_condition(cond: ReplicaSetCondition) -> DeploymentCondition:
    """A ReplicaSet's failure condition promoted to its Deployment."""
    return DeploymentCondition(
        type=cond.type,
        status=cond.status,
        last_transition_time=cond.last_transition_time,
        last_update_time=cond.last_transition_time,
        reason=cond.reason,
        message=cond.message,
    )


# -- revisions and annotations -----------------------------------------------------------


def revision(obj: Any) -> int:
    """The revision annotation of a Deployment or ReplicaSet; 0 without one;
    ValueError when it is not an integer."""
    value = obj.metadata.annotations.get(REVISION_ANNOTATION)
    return 0 if value is None else _parse_int64(value)


def max_revision(all_rss: Iterable[ReplicaSet | None]) -> int:
    """The highest revision among the ReplicaSets (unreadable ones skipped)."""
    highest = 0
    for rs in all_rss:
        if rs is None:
            continue
        try:
            highest = max(highest, revision(rs))
        except ValueError:
            continue
    return highest


def last_revision(all_rss: Iterable[ReplicaSet | None]) -> int:
    """The second highest revision (the one before the current)."""
    first, second = 0, 0
    for rs in all_rss:
        if rs is None:
            continue
        try:
            v = revision(rs)
        except ValueError:
            continue
        if v >= first:
            first, second = v, first
        elif v > second:
            second = v
    return second


def set_deployment_revision(deployment: Deployment, value: str) -> bool:
    """Sets the Deployment's revision annotation; whether it changed."""
    annotations = deployment.metadata.annotations
    if annotations.get(REVISION_ANNOTATION) == value:
        return False
    annotations[REVISION_ANNOTATION] = value
    return True


def set_new_replica_set_annotations(
    deployment: Deployment,
    new_rs: ReplicaSet,
    new_revision: str | int,
    exists: bool,
    rev_history_limit_in_chars: int = MAX_REV_HISTORY_LENGTH_IN_CHARS,
) -> bool:
    """Copies the Deployment's annotations to its new ReplicaSet, raises the
    ReplicaSet's revision to `new_revision` (recording the one it had in the
    revision-history annotation: a rollback re-uses a ReplicaSet), and on
    creation (`exists` False) sets the replicas annotations. Whether the
    annotations changed."""
    changed = copy_deployment_annotations_to_replica_set(deployment, new_rs)
    annotations = new_rs.metadata.annotations
    old_revision = annotations.get(REVISION_ANNOTATION)
    try:
        old_int = _parse_int64(old_revision) if old_revision else 0
        new_int = _parse_int64(str(new_revision))
    except ValueError:
        return False
    if old_int < new_int:
        annotations[REVISION_ANNOTATION] = str(new_revision)
        changed = True
        if old_revision is not None:
            _append_revision_history(new_rs, old_revision, rev_history_limit_in_chars)
    replicas = deployment.spec.replicas
    if not exists and set_replicas_annotations(new_rs, replicas, replicas + max_surge(deployment)):
        changed = True
    return changed


def _append_revision_history(rs: ReplicaSet, old_revision: str, limit: int) -> None:
    annotations = rs.metadata.annotations
    history = annotations.get(REVISION_HISTORY_ANNOTATION, "")
    if not history:
        annotations[REVISION_HISTORY_ANNOTATION] = old_revision
        return
    revisions = history.split(",")
    total = len(history) + len(old_revision) + 1
    start = 0
    # Drop the oldest entries until the new one fits.
    while total > limit and start < len(revisions):
        total -= len(revisions[start]) + 1
        start += 1
    if total <= limit:
        annotations[REVISION_HISTORY_ANNOTATION] = ",".join([*revisions[start:], old_revision])


def skip_copy_annotation(key: str) -> bool:
    """Annotations the controller owns, never copied between a Deployment and
    its ReplicaSets."""
    return key in _ANNOTATIONS_TO_SKIP


def copy_deployment_annotations_to_replica_set(deployment: Deployment, rs: ReplicaSet) -> bool:
    changed = False
    target = rs.metadata.annotations
    for key, value in deployment.metadata.annotations.items():
        if skip_copy_annotation(key) or target.get(key) == value:
            continue
        target[key] = value
        changed = True
    return changed


def get_skipped_annotations(annotations: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in annotations.items() if skip_copy_annotation(k)}


def set_deployment_annotations_to(deployment: Deployment, rollback_to_rs: ReplicaSet) -> None:
    """The Deployment's annotations become the ReplicaSet's (a rollback), but
    for the ones the controller owns, which the Deployment keeps."""
    kept = get_skipped_annotations(deployment.metadata.annotations)
    kept.update(
        (k, v)
        for k, v in rollback_to_rs.metadata.annotations.items()
        if not skip_copy_annotation(k)
    )
    deployment.metadata.annotations.clear()
    deployment.metadata.annotations.update(kept)


def get_desired_replicas_annotation(rs: ReplicaSet) -> tuple[int, bool]:
    """(value, found) of the desired-replicas annotation; see
    `_non_negative_int32_annotation` for what counts as found."""
    return _non_negative_int32_annotation(rs, DESIRED_REPLICAS_ANNOTATION)


def get_max_replicas_annotation(rs: ReplicaSet) -> tuple[int, bool]:
    """(value, found) of the max-replicas annotation, as the desired one."""
    return _non_negative_int32_annotation(rs, MAX_REPLICAS_ANNOTATION)


def _non_negative_int32_annotation(rs: ReplicaSet, key: str) -> tuple[int, bool]:
    """Kubernetes' getNonNegativeInt32FromAnnotation: decimal digits only
    (Go's strconv.ParseUint(s, 10, 32): no sign, no spaces) and at most
    2^31-1; anything else, like no annotation, is (0, False)."""
    value = rs.metadata.annotations.get(key)
    if value is None or not _UNSIGNED.fullmatch(value):
        return 0, False
    number = int(value)
    return (number, True) if number <= _MAX_INT32 else (0, False)


def set_replicas_annotations(rs: ReplicaSet, desired_replicas: int, max_replicas: int) -> bool:
    """Records the Deployment size (and size plus surge) the ReplicaSet was
    last scaled for; whether anything changed."""
    changed = replicas_annotations_need_update(rs, desired_replicas, max_replicas)
    rs.metadata.annotations[DESIRED_REPLICAS_ANNOTATION] = str(desired_replicas)
    rs.metadata.annotations[MAX_REPLICAS_ANNOTATION] = str(max_replicas)
    return changed


def replicas_annotations_need_update(
    rs: ReplicaSet, desired_replicas: int, max_replicas: int
) -> bool:
    annotations = rs.metadata.annotations
    return annotations.get(DESIRED_REPLICAS_ANNOTATION) != str(desired_replicas) or (
        annotations.get(MAX_REPLICAS_ANNOTATION) != str(max_replicas)
    )


# -- surge, unavailability and proportions -----------------------------------------------


def is_rolling_update(deployment: Deployment) -> bool:
    return deployment.spec.strategy.type == ROLLING_UPDATE


def resolve_fenceposts(
    max_surge: IntOrString | int | str | None,
    max_unavailable: IntOrString | int | str | None,
    desired: int,
) -> tuple[int, int]:
    """(surge, unavailable) for `desired` replicas: percentages of surge round
    up, of unavailability down; None counts as 0. When both come to 0,
    unavailability becomes 1 so that a rollout can proceed (validation
    forbids both being 0 explicitly, rounding can still get there).
    ValueError for a value that is neither an int nor a percentage."""
    surge = get_scaled_value_from_int_or_percent(_or_zero(max_surge), desired, True)
    unavailable = get_scaled_value_from_int_or_percent(_or_zero(max_unavailable), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _or_zero(value: IntOrString | int | str | None) -> IntOrString | int | str:
    return 0 if value is None else value


def _fenceposts(deployment: Deployment) -> tuple[int, int]:
    rolling = deployment.spec.strategy.rolling_update
    return resolve_fenceposts(
        rolling.max_surge if rolling.HasField("max_surge") else None,
        rolling.max_unavailable if rolling.HasField("max_unavailable") else None,
        deployment.spec.replicas,
    )


def max_unavailable(deployment: Deployment) -> int:
    """Pods a rolling Deployment may have unavailable, at most its replicas;
    0 for Recreate or a Deployment scaled to 0."""
    replicas = deployment.spec.replicas
    if not is_rolling_update(deployment) or replicas == 0:
        return 0
    return min(_fenceposts(deployment)[1], replicas)


def min_available(deployment: Deployment) -> int:
    if not is_rolling_update(deployment):
        return 0
    return deployment.spec.replicas - max_unavailable(deployment)


def max_surge(deployment: Deployment) -> int:
    """Pods a rolling Deployment may run above its replicas; 0 for Recreate."""
    if not is_rolling_update(deployment):
        return 0
    return _fenceposts(deployment)[0]


def get_proportion(
    rs: ReplicaSet | None,
    deployment: Deployment,
    deployment_replicas_to_add: int,
    deployment_replicas_added: int,
) -> int:
    """Replicas to add to (or, negative, remove from) `rs` in a proportional
    scale, never more than is still left to distribute."""
    if (
        rs is None
        or rs.spec.replicas == 0
        or deployment_replicas_to_add == 0
        or deployment_replicas_to_add == deployment_replicas_added
    ):
        return 0
    fraction = get_replica_set_fraction(rs, deployment)
    allowed = deployment_replicas_to_add - deployment_replicas_added
    if deployment_replicas_to_add > 0:
        return min(fraction, allowed)
    return max(fraction, allowed)


def get_replica_set_fraction(rs: ReplicaSet, deployment: Deployment) -> int:
    """The change in `rs`'s size that keeps its share of the Deployment when
    the Deployment (plus surge) goes from the size recorded in the
    ReplicaSet's max-replicas annotation to its current one."""
    if deployment.spec.replicas == 0:
        return -rs.spec.replicas
    deployment_replicas = deployment.spec.replicas + max_surge(deployment)
    annotated, ok = get_max_replicas_annotation(rs)
    if not ok or annotated == 0:
        # Without a usable annotation (removed, or set to 0 by a third
        # party) the current size is the best guess; the min/max in
        # get_proportion keeps the result within bounds anyway.
        annotated = deployment.status.replicas
        if annotated == 0:
            return 0  # no size to scale from: never divide by zero
    new_size = rs.spec.replicas * deployment_replicas / annotated
    return _round_half_away(new_size) - rs.spec.replicas


def _round_half_away(x: float) -> int:
    """Go's math.Round: halves round away from zero (Python's round() does not)."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def new_rs_new_replicas(
    deployment: Deployment, all_rss: Sequence[ReplicaSet | None], new_rs: ReplicaSet
) -> int:
    """The size the new ReplicaSet may have now: for RollingUpdate as many as
    the surge allows and no more than the Deployment's replicas; for Recreate
    the Deployment's replicas. ValueError for another strategy."""
    strategy = deployment.spec.strategy.type
    replicas = deployment.spec.replicas
    if strategy == ROLLING_UPDATE:
        surge = get_scaled_value_from_int_or_percent(
            deployment.spec.strategy.rolling_update.max_surge, replicas, True
        )
        current = get_replica_count_for_replica_sets(all_rss)
        max_total = replicas + surge
        if current >= max_total:
            return new_rs.spec.replicas
        scale_up = min(max_total - current, replicas - new_rs.spec.replicas)
        return new_rs.spec.replicas + scale_up
    if strategy == RECREATE:
        return replicas
    raise ValueError(f"deployment strategy type {strategy!r} isn't supported")


def is_saturated(deployment: Deployment, rs: ReplicaSet | None) -> bool:
    """Whether `rs` holds all of the Deployment's replicas, all available, and
    both agree on the size (the desired-replicas annotation)."""
    if rs is None:
        return False
    # Kubernetes reads the annotation here with strconv.ParseInt(s, 10, 32).
    text = rs.metadata.annotations.get(DESIRED_REPLICAS_ANNOTATION, "")
    if not _INT64.fullmatch(text) or not -_MAX_INT32 - 1 <= int(text) <= _MAX_INT32:
        return False
    replicas = deployment.spec.replicas
    return (
        rs.spec.replicas == replicas
        and int(text) == replicas
        and rs.status.available_replicas == replicas
    )


# -- which ReplicaSet is which -----------------------------------------------------------


def equal_ignore_hash(template1: PodTemplateSpec, template2: PodTemplateSpec) -> bool:
    """Whether two pod templates are equal but for their pod-template-hash label."""
    t1, t2 = PodTemplateSpec(), PodTemplateSpec()
    t1.CopyFrom(template1)
    t2.CopyFrom(template2)
    t1.metadata.labels.pop(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY, None)
    t2.metadata.labels.pop(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY, None)
    return t1 == t2


def find_new_replica_set(
    deployment: Deployment, rs_list: Iterable[ReplicaSet | None]
) -> ReplicaSet | None:
    """The ReplicaSet whose template is the Deployment's; the oldest one when
    several are (which happened after some upgrades)."""
    for rs in replica_sets_by_creation_timestamp(rs_list):
        if equal_ignore_hash(rs.spec.template, deployment.spec.template):
            return rs
    return None


def find_old_replica_sets(
    deployment: Deployment, rs_list: Sequence[ReplicaSet | None]
) -> tuple[list[ReplicaSet], list[ReplicaSet]]:
    """(old ReplicaSets with replicas, all old ReplicaSets)."""
    new_rs = find_new_replica_set(deployment, rs_list)
    required: list[ReplicaSet] = []
    every: list[ReplicaSet] = []
    for rs in rs_list:
        if rs is None or (new_rs is not None and rs.metadata.uid == new_rs.metadata.uid):
            continue
        every.append(rs)
        if rs.spec.replicas != 0:
            required.append(rs)
    return required, every


def find_active_or_latest(
    new_rs: ReplicaSet | None, old_rss: Sequence[ReplicaSet | None]
) -> ReplicaSet | None:
    """The one ReplicaSet with replicas, or the newest when none has any;
    None when several have replicas (they are scaled proportionally)."""
    newest_first = replica_sets_by_creation_timestamp(old_rss)[::-1]
    if new_rs is None and not newest_first:
        return None
    active = filter_active_replica_sets([*newest_first, new_rs])
    if not active:
        return new_rs if new_rs is not None else newest_first[0]
    return active[0] if len(active) == 1 else None


def set_from_replica_set_template(deployment: Deployment, template: PodTemplateSpec) -> Deployment:
    """The Deployment's template becomes `template` without its hash label."""
    deployment.spec.template.CopyFrom(template)
    deployment.spec.template.metadata.labels.pop(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY, None)
    return deployment


def get_deployments_for_replica_set(
    deployments: Iterable[Deployment], rs: ReplicaSet
) -> list[Deployment]:
    """The Deployments of the ReplicaSet's namespace whose selector matches
    it (an empty selector matches nothing here)."""
    if not rs.metadata.labels:
        return []
    found = []
    for d in deployments:
        if d.metadata.namespace != rs.metadata.namespace:
            continue
        try:
            selector = selector_from_label_selector(d.spec.selector)
        except ValueError:
            continue
        if not selector.empty() and selector.matches(rs.metadata.labels):
            found.append(d)
    return found


def filter_active_replica_sets(rss: Iterable[ReplicaSet | None]) -> list[ReplicaSet]:
    """The ReplicaSets that want pods."""
    return [rs for rs in rss if rs is not None and rs.spec.replicas > 0]


def has_progress_deadline(deployment: Deployment) -> bool:
    pds = deployment.spec
    return pds.HasField("progress_deadline_seconds") and (
        pds.progress_deadline_seconds != _MAX_INT32
    )


def has_revision_history_limit(deployment: Deployment) -> bool:
    spec = deployment.spec
    return spec.HasField("revision_history_limit") and spec.revision_history_limit != _MAX_INT32


# -- counting ----------------------------------------------------------------------------


def get_replica_count_for_replica_sets(rss: Iterable[ReplicaSet | None]) -> int:
    """Sum of spec.replicas: the pods the ReplicaSets want."""
    return sum(rs.spec.replicas for rs in rss if rs is not None)


def get_actual_replica_count_for_replica_sets(rss: Iterable[ReplicaSet | None]) -> int:
    """Sum of status.replicas: the pods they have."""
    return sum(rs.status.replicas for rs in rss if rs is not None)


def get_ready_replica_count_for_replica_sets(rss: Iterable[ReplicaSet | None]) -> int:
    return sum(rs.status.ready_replicas for rs in rss if rs is not None)


def get_available_replica_count_for_replica_sets(rss: Iterable[ReplicaSet | None]) -> int:
    return sum(rs.status.available_replicas for rs in rss if rs is not None)


# -- progress ----------------------------------------------------------------------------


def deployment_complete(deployment: Deployment, new_status: DeploymentStatus) -> bool:
    """All desired replicas updated and available, no old pods left, and the
    latest generation observed."""
    replicas = deployment.spec.replicas
    return (
        new_status.updated_replicas == replicas
        and new_status.replicas == replicas
        and new_status.available_replicas == replicas
        and new_status.observed_generation >= deployment.metadata.generation
    )


def deployment_progressing(deployment: Deployment, new_status: DeploymentStatus) -> bool:
    """Whether `new_status` shows progress over the Deployment's status: more
    updated, ready or available pods, or fewer old ones."""
    old = deployment.status
    old_old_replicas = old.replicas - old.updated_replicas
    new_old_replicas = new_status.replicas - new_status.updated_replicas
    return (
        new_status.updated_replicas > old.updated_replicas
        or new_old_replicas < old_old_replicas
        or new_status.ready_replicas > old.ready_replicas
        or new_status.available_replicas > old.available_replicas
    )


def deployment_timed_out(
    deployment: Deployment, new_status: DeploymentStatus, now: Now | None = None
) -> bool:
    """Whether the last progress recorded in the Progressing condition is
    older than progressDeadlineSeconds (or the condition already says so)."""
    if not has_progress_deadline(deployment):
        return False
    condition = get_deployment_condition(new_status, DEPLOYMENT_PROGRESSING)
    if condition is None:
        return False
    # A finished rollout has nothing left to time out; a resync may run
    # before the condition of a new rollout is recorded.
    if condition.reason == NEW_RS_AVAILABLE_REASON:
        return False
    if condition.reason == TIMED_OUT_REASON:
        return True
    since = _seconds(condition.last_update_time)
    return since + deployment.spec.progress_deadline_seconds < _epoch(now)


# -- hashing -----------------------------------------------------------------------------

#: Kubernetes' rand.SafeEncodeString alphabet: no vowels, no 0/1/3 (no words).
_SAFE_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"
_FNV_OFFSET: Final = 0x811C9DC5
_FNV_PRIME: Final = 0x01000193


def compute_hash(template: PodTemplateSpec, collision_count: int | None) -> str:
    """The pod-template-hash of a template: FNV-1a (32 bits) of its
    deterministic serialization, then of the collision count (as Kubernetes
    writes it: little-endian uint32 in 8 bytes) when there is one, in
    decimal, each digit mapped through the safe alphabet."""
    h = _fnv1a(template.SerializeToString(deterministic=True), _FNV_OFFSET)
    if collision_count is not None:
        h = _fnv1a(struct.pack("<I", collision_count & 0xFFFFFFFF) + bytes(4), h)
    return safe_encode_string(str(h))


def safe_encode_string(s: str) -> str:
    """Kubernetes' rand.SafeEncodeString."""
    return "".join(_SAFE_ALPHABET[b % len(_SAFE_ALPHABET)] for b in s.encode())


def _fnv1a(data: bytes, h: int) -> int:
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h


# -- labels ------------------------------------------------------------------------------


def clone_and_add_label(labels: Mapping[str, str], key: str, value: str) -> dict[str, str]:
    return {**labels, key: value}


def clone_selector_and_add_label(selector: LabelSelector, key: str, value: str) -> LabelSelector:
    out = LabelSelector()
    out.CopyFrom(selector)
    out.match_labels[key] = value
    return out


# -- ordering (Kubernetes' sort.Interface types) -----------------------------------------


def _created(rs: ReplicaSet) -> tuple[int, int]:
    ts = rs.metadata.creation_timestamp
    return ts.seconds, ts.nanos


def _by_creation(a: ReplicaSet, b: ReplicaSet) -> int:
    """Older first; the name breaks ties."""
    ka, kb = (_created(a), a.metadata.name), (_created(b), b.metadata.name)
    return (ka > kb) - (ka < kb)


def replica_sets_by_creation_timestamp(rss: Iterable[ReplicaSet | None]) -> list[ReplicaSet]:
    """Oldest first (ReplicaSetsByCreationTimestamp), Nones dropped."""
    return sorted((rs for rs in rss if rs is not None), key=functools.cmp_to_key(_by_creation))


def replica_sets_by_size_older(rss: Iterable[ReplicaSet]) -> list[ReplicaSet]:
    """Largest first; among equals the older first (the ones to scale down)."""

    def cmp(a: ReplicaSet, b: ReplicaSet) -> int:
        if a.spec.replicas != b.spec.replicas:
            return b.spec.replicas - a.spec.replicas
        return _by_creation(a, b)

    return sorted(rss, key=functools.cmp_to_key(cmp))


def replica_sets_by_size_newer(rss: Iterable[ReplicaSet]) -> list[ReplicaSet]:
    """Largest first; among equals the newer first (the ones to scale up)."""

    def cmp(a: ReplicaSet, b: ReplicaSet) -> int:
        if a.spec.replicas != b.spec.replicas:
            return b.spec.replicas - a.spec.replicas
        return _by_creation(b, a)

    return sorted(rss, key=functools.cmp_to_key(cmp))


def replica_sets_by_revision(rss: Iterable[ReplicaSet]) -> list[ReplicaSet]:
    """Lowest revision first; creation time breaks ties and unreadable ones."""

    def cmp(a: ReplicaSet, b: ReplicaSet) -> int:
        try:
            ra, rb = revision(a), revision(b)
        except ValueError:
            return _by_creation(a, b)
        if ra == rb:
            return _by_creation(a, b)
        return -1 if ra < rb else 1

    return sorted(rss, key=functools.cmp_to_key(cmp))


# -- time --------------------------------------------------------------------------------


def _seconds(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def _epoch(now: Now | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, Timestamp):
        return _seconds(now)
    if isinstance(now, datetime):
        return now.timestamp()
    return float(now)


def _timestamp(now: Now | None) -> Timestamp:
    stamp = Timestamp()
    if now is None:
        stamp.GetCurrentTime()
    elif isinstance(now, Timestamp):
        stamp.CopyFrom(now)
    else:
        stamp.FromNanoseconds(round(_epoch(now) * 1e9))
    return stamp


def _parse_int64(text: str) -> int:
    """Go's strconv.ParseInt(text, 10, 64)."""
    if not _INT64.fullmatch(text):
        raise ValueError(f"invalid revision {text!r}: not an integer")
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"invalid revision {text!r}: out of range")
    return value
