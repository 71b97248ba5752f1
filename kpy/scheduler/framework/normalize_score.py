"""kube-scheduler's `framework/plugins/helper/normalize_score.go`: the
NormalizeScore most Score plugins share."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpy.scheduler.framework.status import SUCCESS

if TYPE_CHECKING:
    from kpy.scheduler.framework.interface import NodeScore
    from kpy.scheduler.framework.status import Status

__all__ = ["default_normalize_score"]


def _go_div(a: int, b: int) -> int:
    # Go's integer division truncates toward zero; Python's floors.
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def default_normalize_score(max_priority: int, reverse: bool, scores: list[NodeScore]) -> Status:
    """Scale scores so the highest becomes `max_priority` (and, if `reverse`,
    flip them), as Kubernetes' helper.DefaultNormalizeScore does."""
    max_count = max((s.score for s in scores), default=0)
    if max_count <= 0:
        if reverse:
            for s in scores:
                s.score = max_priority
        return SUCCESS
    for s in scores:
        score = _go_div(max_priority * s.score, max_count)
        s.score = max_priority - score if reverse else score
    return SUCCESS
