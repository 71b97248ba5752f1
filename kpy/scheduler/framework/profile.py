"""Which plugins one scheduler name runs, in order, per extension point
(the KubeSchedulerProfile of kube-scheduler's configuration).

The framework knows plugins only through a Profile; the one place that
names the in-tree plugins is `kpy.scheduler.profiles.default_profile`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from kpy.scheduler.framework.interface import (
    BindPlugin,
    FilterPlugin,
    PostFilterPlugin,
    PreBindPlugin,
    PreFilterPlugin,
    PreScorePlugin,
    ReservePlugin,
    ScorePlugin,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kpy.scheduler.framework.interface import Plugin

__all__ = ["DEFAULT_SCHEDULER_NAME", "Profile"]

DEFAULT_SCHEDULER_NAME: Final = "default-scheduler"


@dataclass(frozen=True, slots=True)
class Profile:
    """The plugins one scheduler name runs, in order, per extension point;
    score weights by plugin name (default 1); and kube-scheduler's
    percentageOfNodesToScore (0 = adaptive)."""

    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    pre_filter: tuple[PreFilterPlugin, ...] = ()
    filter: tuple[FilterPlugin, ...] = ()
    post_filter: tuple[PostFilterPlugin, ...] = ()
    pre_score: tuple[PreScorePlugin, ...] = ()
    score: tuple[ScorePlugin, ...] = ()
    reserve: tuple[ReservePlugin, ...] = ()
    pre_bind: tuple[PreBindPlugin, ...] = ()
    bind: tuple[BindPlugin, ...] = ()
    score_weights: Mapping[str, int] = field(default_factory=dict)
    percentage_of_nodes_to_score: int = 0
    #: reuse node verdicts across pods of one class (framework/equivalence.py);
    #: plugins marked `cluster_wide` (they look beyond one node) are left out of it.
    equivalence_cache: bool = False

    def __post_init__(self) -> None:
        for point, plugins in (
            ("preFilter", self.pre_filter),
            ("filter", self.filter),
            ("postFilter", self.post_filter),
            ("preScore", self.pre_score),
            ("score", self.score),
            ("reserve", self.reserve),
            ("preBind", self.pre_bind),
            ("bind", self.bind),
        ):
            names = [p.name for p in plugins]
            if len(set(names)) != len(names):
                raise ValueError(f"profile {self.scheduler_name!r}: {point} lists a plugin twice")
        for name, weight in self.score_weights.items():
            if weight <= 0:
                raise ValueError(
                    f"profile {self.scheduler_name!r}: score weight of {name} must be positive"
                )
        if not 0 <= self.percentage_of_nodes_to_score <= 100:
            raise ValueError("percentage_of_nodes_to_score must be within 0..100")

    @classmethod
    def of(
        cls,
        *plugins: Plugin,
        weights: Mapping[str, int] | None = None,
        scheduler_name: str = DEFAULT_SCHEDULER_NAME,
        percentage_of_nodes_to_score: int = 0,
        equivalence_cache: bool = False,
    ) -> Profile:
        """Each plugin at every extension point it implements, in the order
        given (kube-scheduler's multiPoint)."""
        return cls(
            scheduler_name=scheduler_name,
            pre_filter=tuple(p for p in plugins if isinstance(p, PreFilterPlugin)),
            filter=tuple(p for p in plugins if isinstance(p, FilterPlugin)),
            post_filter=tuple(p for p in plugins if isinstance(p, PostFilterPlugin)),
            pre_score=tuple(p for p in plugins if isinstance(p, PreScorePlugin)),
            score=tuple(p for p in plugins if isinstance(p, ScorePlugin)),
            reserve=tuple(p for p in plugins if isinstance(p, ReservePlugin)),
            pre_bind=tuple(p for p in plugins if isinstance(p, PreBindPlugin)),
            bind=tuple(p for p in plugins if isinstance(p, BindPlugin)),
            score_weights=dict(weights or {}),
            percentage_of_nodes_to_score=percentage_of_nodes_to_score,
            equivalence_cache=equivalence_cache,
        )

    def weight(self, plugin_name: str) -> int:
        return self.score_weights.get(plugin_name, 1)
