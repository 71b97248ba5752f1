"""Taints and tolerations: whether a toleration matches a taint (Kubernetes'
v1 Toleration.ToleratesTaint and component-helpers' taint helpers).

Pure logic over plain tuples, shared by the scheduler's TaintToleration and
NodeUnschedulable plugins and by the controllers that must agree with them
(taint eviction, DaemonSets), which may not import the scheduler.

- A toleration matches a taint when its effect is empty or equal, its key is
  empty or equal, and its operator is Exists, or Equal (the default) with an
  equal value. So an empty key with Exists tolerates every taint. Other
  operators tolerate nothing (Gt/Lt are behind an alpha feature gate in
  Kubernetes, off by default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from kpy.api.core.v1 import Pod, Taint, Toleration

__all__ = [
    "NO_EXECUTE",
    "NO_SCHEDULE",
    "PREFER_NO_SCHEDULE",
    "TaintKey",
    "TolerationKey",
    "find_untolerated_taint",
    "pod_toleration_keys",
    "taint_key",
    "tolerated",
    "tolerates",
    "toleration_key",
]

NO_SCHEDULE: Final = "NoSchedule"
NO_EXECUTE: Final = "NoExecute"
PREFER_NO_SCHEDULE: Final = "PreferNoSchedule"


class TaintKey(NamedTuple):
    key: str
    value: str
    effect: str


class TolerationKey(NamedTuple):
    key: str
    operator: str
    value: str
    effect: str


def taint_key(taint: Taint) -> TaintKey:
    return TaintKey(taint.key, taint.value, taint.effect)


def toleration_key(toleration: Toleration) -> TolerationKey:
    return TolerationKey(toleration.key, toleration.operator, toleration.value, toleration.effect)


def pod_toleration_keys(pod: Pod) -> tuple[TolerationKey, ...]:
    return tuple(toleration_key(t) for t in pod.spec.tolerations)


def tolerates(toleration: TolerationKey, taint: TaintKey) -> bool:
    """Kubernetes' Toleration.ToleratesTaint."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    operator = toleration.operator
    if operator in ("", "Equal"):
        return toleration.value == taint.value
    return operator == "Exists"


def tolerated(tolerations: Iterable[TolerationKey], taint: TaintKey) -> bool:
    """Whether any of `tolerations` tolerates `taint`."""
    return any(tolerates(t, taint) for t in tolerations)


def find_untolerated_taint(
    taints: Iterable[TaintKey],
    tolerations: Iterable[TolerationKey],
    include: Callable[[TaintKey], bool] = lambda _t: True,
) -> TaintKey | None:
    """The first taint (in the node's order) that `include` selects and no
    toleration tolerates, or None (component-helpers' FindMatchingUntoleratedTaint)."""
    tolerations = tuple(tolerations)
    for taint in taints:
        if include(taint) and not tolerated(tolerations, taint):
            return taint
    return None
