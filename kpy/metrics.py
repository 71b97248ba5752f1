"""Prometheus metrics for kpy's components, and the endpoint that serves them.

`Metrics` owns one registry per process (never the global one, so two
components in one test process do not collide):

- work queues, read from their `statistics()` at scrape time, with
  client-go's metric names: `workqueue_depth`, `workqueue_adds_total`,
  `workqueue_retries_total`, `workqueue_unfinished_work` (keys being
  processed), labelled by queue `name`;
- `workqueue_work_duration_seconds{name}`: how long each sync took;
- `kpy_controller_syncs_total{controller,result}` (result: success, error);
- `kpy_leader{component}`: 1 while this process leads, else 0.

`serve(metrics, host, port)` answers `GET /metrics` (text exposition format)
and `GET /healthz` on a small asyncio HTTP/1.0 server; it never blocks the
event loop and owns no thread.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

import anyio
import anyio.abc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from kpy.cache.workqueue import QueueStatistics

log = logging.getLogger("kpy.metrics")

__all__ = ["Metrics", "serve"]

_SYNC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _Measured(Protocol):
    def statistics(self) -> QueueStatistics: ...


class Metrics:
    """See the module docstring."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._queues: dict[str, _Measured] = {}
        self.registry.register(_QueueCollector(self._queues))
        self.work_duration = Histogram(
            "workqueue_work_duration_seconds",
            "How long processing one key took.",
            ["name"],
            buckets=_SYNC_BUCKETS,
            registry=self.registry,
        )
        self.syncs = Counter(
            "kpy_controller_syncs",
            "Syncs by controller and result.",
            ["controller", "result"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "kpy_leader",
            "1 while this process holds its component's lease.",
            ["component"],
            registry=self.registry,
        )

    def counter(self, name: str, documentation: str, labels: list[str]) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)

    def histogram(
        self,
        name: str,
        documentation: str,
        labels: list[str],
        buckets: tuple[float, ...] = _SYNC_BUCKETS,
    ) -> Histogram:
        return Histogram(name, documentation, labels, buckets=buckets, registry=self.registry)

    def add_gauge_source(
        self, name: str, documentation: str, label: str, source: Callable[[], Mapping[str, float]]
    ) -> None:
        """A gauge read from `source()` at scrape time, one sample per key."""
        self.registry.register(_GaugeSource(name, documentation, label, source))

    def add_counter_source(
        self, name: str, documentation: str, label: str, source: Callable[[], Mapping[str, float]]
    ) -> None:
        """A counter read from `source()` at scrape time, one sample per key
        (exposed as `<name>_total`)."""
        self.registry.register(_GaugeSource(name, documentation, label, source, counter=True))

    def add_queue(self, name: str, queue: _Measured) -> None:
        self._queues[name] = queue

    def observe_sync(self, controller: str, seconds: float, ok: bool) -> None:
        self.work_duration.labels(controller).observe(seconds)
        self.syncs.labels(controller, "success" if ok else "error").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _GaugeSource:
    def __init__(
        self,
        name: str,
        documentation: str,
        label: str,
        source: Callable[[], Mapping[str, float]],
        *,
        counter: bool = False,
    ) -> None:
        self._args = (name, documentation)
        self._label = label
        self._source = source
        self._family = CounterMetricFamily if counter else GaugeMetricFamily

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = self._family(*self._args, labels=[self._label])
        for key, value in sorted(self._source().items()):
            family.add_metric([key], value)
        yield family


class _QueueCollector:
    def __init__(self, queues: dict[str, _Measured]) -> None:
        self._queues = queues

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("workqueue_depth", "Keys waiting for a worker.", labels=["name"])
        busy = GaugeMetricFamily(
            "workqueue_unfinished_work", "Keys being processed.", labels=["name"]
        )
        adds = CounterMetricFamily("workqueue_adds", "Keys added.", labels=["name"])
        retries = CounterMetricFamily(
            "workqueue_retries", "Keys re-added after a failure.", labels=["name"]
        )
        for name, queue in sorted(self._queues.items()):
            s = queue.statistics()
            depth.add_metric([name], s.depth)
            busy.add_metric([name], s.processing)
            adds.add_metric([name], s.adds)
            retries.add_metric([name], s.retries)
        yield from (depth, busy, adds, retries)


async def serve(
    metrics: Metrics,
    host: str,
    port: int,
    *,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serves until cancelled; reports the bound port through task_status."""
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    bound = listener.extra(anyio.abc.SocketAttribute.local_port)
    task_status.started(bound)
    log.info("serving metrics", extra={"address": f"{host}:{bound}"})

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            with anyio.move_on_after(10):
                request = b""
                while b"\r\n\r\n" not in request and len(request) < 16_384:
                    try:
                        request += await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        return
                await stream.send(_respond(metrics, request))

    async with listener:
        await listener.serve(handle)


def _respond(metrics: Metrics, request: bytes) -> bytes:
    line = request.split(b"\r\n", 1)[0].split()
    path = line[1].split(b"?", 1)[0] if len(line) >= 2 else b""
    if line[:1] != [b"GET"]:
        status, kind, body = "405 Method Not Allowed", "text/plain", b"only GET\n"
    elif path == b"/metrics":
        status, kind, body = "200 OK", CONTENT_TYPE_LATEST, metrics.exposition()
    elif path == b"/healthz":
        status, kind, body = "200 OK", "text/plain", b"ok\n"
    else:
        status, kind, body = "404 Not Found", "text/plain", b"try /metrics or /healthz\n"
    head = f"HTTP/1.0 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body
