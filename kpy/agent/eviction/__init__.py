"""Node-pressure eviction, as the kubelet's eviction manager does it
(kubernetes.io "Node-pressure Eviction"): `thresholds` parses the flags,
`manager` decides (pure, on an injected clock), `observe` measures the
machine and `monitor` runs the agent's housekeeping loop."""

from kpy.agent.eviction.manager import (
    EVICTED,
    Eviction,
    EvictionManager,
    Observation,
    PodStats,
    Step,
    choose,
    rank,
)
from kpy.agent.eviction.thresholds import (
    DEFAULT_EVICTION_HARD,
    SIGNALS,
    EvictionConfig,
    Threshold,
    parse_duration,
    parse_eviction_config,
    parse_thresholds,
)

__all__ = [
    "DEFAULT_EVICTION_HARD",
    "EVICTED",
    "SIGNALS",
    "Eviction",
    "EvictionConfig",
    "EvictionManager",
    "Observation",
    "PodStats",
    "Step",
    "Threshold",
    "choose",
    "parse_duration",
    "parse_eviction_config",
    "parse_thresholds",
    "rank",
]
