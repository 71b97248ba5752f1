"""The HorizontalPodAutoscaler: `controller` (the sync loop), `replica_calculator`
(replicas from pod metrics), `normalize` (stabilisation and scaling policies)
and `metrics` (where the pod figures come from)."""

from kpy.controllers.podautoscaler.controller import (
    SYNC_PERIOD,
    HorizontalController,
    HPAOptions,
    ScaleClient,
    new_hpa_controller,
)
from kpy.controllers.podautoscaler.metrics import MetricsClient, StatsMetricsClient

__all__ = [
    "SYNC_PERIOD",
    "HPAOptions",
    "HorizontalController",
    "MetricsClient",
    "ScaleClient",
    "StatsMetricsClient",
    "new_hpa_controller",
]
