"""Where the HPA's pod figures come from: the resource metrics the node
agents report through the API server's Stats call (the path `kpyctl top`
uses, as metrics.k8s.io serves `kubectl top`).

`MetricsClient` is what the controller needs (tests give it a fake);
`StatsMetricsClient` answers it from anything with the SDK's
`stats(namespace=...)` (a `kpy.client.Client`).

Contract of `pod_metrics(namespace, resource)`: one `PodMetric` per pod of
the namespace that reported figures, keyed by pod name: the sum of its
containers' usage in milli-units (CPU millicores, rounded up as Kubernetes'
MilliValue; memory in thousandths of a byte), stamped with the time the
answer arrived and the window the agents average CPU over. Pods whose node
did not answer are simply absent (the calculator treats them as missing).
An unknown resource raises `MetricsError`.

One Stats answer per namespace is reused for `max_age` seconds (as
metrics-server serves its last scrape): the agents measure CPU since their
previous sample, so HPAs of one namespace, or the CPU and memory metrics of
one HPA, asking back to back would otherwise get a window of milliseconds.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final, Protocol

from kpy.controllers.podautoscaler.replica_calculator import MetricsError, PodMetric

if TYPE_CHECKING:
    from collections.abc import Callable

    from kpy.rpc.apiserver.v1 import StatsResponse

__all__ = ["MAX_AGE", "METRIC_WINDOW", "MetricsClient", "StatsClient", "StatsMetricsClient"]

#: Seconds of CPU usage one figure averages: the agent measures since its
#: previous sample, which the HPA's own 15 s resync keeps about this long.
METRIC_WINDOW: Final = 15.0
#: Seconds one namespace's Stats answer is reused.
MAX_AGE: Final = 5.0
_NANO_PER_MILLI: Final = 1_000_000


class MetricsClient(Protocol):
    async def pod_metrics(self, namespace: str, resource: str) -> dict[str, PodMetric]:
        """See the module docstring."""
        ...


class StatsClient(Protocol):
    async def stats(
        self, *, namespace: str = "", node: str = "", nodes: bool = False
    ) -> StatsResponse: ...


class StatsMetricsClient:
    """`MetricsClient` over the API server's Stats call."""

    def __init__(
        self,
        client: StatsClient,
        *,
        now: Callable[[], float] = time.time,
        max_age: float = MAX_AGE,
    ) -> None:
        self._client = client
        self._now = now
        self._max_age = max_age
        #: namespace -> (when it arrived, the answer); one entry per namespace asked.
        self._answers: dict[str, tuple[float, StatsResponse]] = {}

    async def pod_metrics(self, namespace: str, resource: str) -> dict[str, PodMetric]:
        if resource not in ("cpu", "memory"):
            raise MetricsError(
                f'resource metric "{resource}" is not reported by the node agents;'
                ' use "cpu" or "memory"'
            )
        stamp, answer = await self._answer(namespace)
        out: dict[str, PodMetric] = {}
        for pod in answer.pods:
            if pod.namespace != namespace:
                continue
            if resource == "cpu":
                value = sum(-(-c.cpu_nanocores // _NANO_PER_MILLI) for c in pod.containers)
            else:
                value = sum(c.memory_bytes for c in pod.containers) * 1000
            out[pod.name] = PodMetric(value, stamp, METRIC_WINDOW)
        return out

    async def _answer(self, namespace: str) -> tuple[float, StatsResponse]:
        cached = self._answers.get(namespace)
        if cached is not None and self._now() - cached[0] < self._max_age:
            return cached
        now = self._now()
        # Stale answers go, so namespaces no longer asked about hold nothing.
        self._answers = {k: v for k, v in self._answers.items() if now - v[0] < self._max_age}
        answer = await self._client.stats(namespace=namespace)
        fresh = (self._now(), answer)
        self._answers[namespace] = fresh
        return fresh
