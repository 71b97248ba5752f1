"""kube-scheduler's `framework/plugins/helper/normalize_score.go`: the
NormalizeScore most Score plugins share."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from kpy.scheduler.framework.status import SUCCESS

if TYPE_CHECKING:
    from kpy.scheduler.framework.interface import NodeScore
    from kpy.scheduler.framework.node_table import IntArray
    from kpy.scheduler.framework.status import Status

__all__ = ["default_normalize_score", "default_normalize_table"]


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


def default_normalize_table(max_priority: int, reverse: bool, scores: IntArray) -> IntArray:
    """`default_normalize_score` over an array of raw scores, returning the
    normalized ones (scores at or below zero stay as they are unless
    reversed, as there; Go's truncating division is floor for the
    non-negative scores this is meant for, checked)."""
    max_count = int(scores.max()) if len(scores) else 0
    if max_count <= 0:
        return np.full(len(scores), max_priority, np.int64) if reverse else scores
    if int(scores.min()) < 0:
        raise ValueError("default_normalize_table: negative scores need Go's division")
    normalized = max_priority * scores // max_count
    return max_priority - normalized if reverse else normalized
