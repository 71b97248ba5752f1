"""etcd compaction from the API server, as kube-apiserver does it.

etcd keeps every revision until someone compacts; kpy runs etcd with its own
auto-compaction off, so the API servers do it (`--etcd-compaction-interval`,
5 minutes by default, 0 disables).

Contract:
- Every `interval` seconds a `Compactor` tries to claim the interval through
  a compare-and-swap on one shared key (`Store.claim_compaction`: the key's
  version is a logical clock). Of several API servers on one etcd, only the
  one whose clock is current wins; the others learn the new clock and try
  again next interval, so one compaction happens per interval between them,
  and when the winner dies another takes over within two intervals.
- The winner compacts to the revision it saw at its previous tick, never to
  the current one: one interval of history stays for watch caches and
  clients resuming watches. The first tick (nothing seen yet) compacts
  nothing.
- Failures (etcd unreachable) are logged and retried at the next tick; the
  loop ends only when cancelled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from kpy.api import errors

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from kpy.storage import Store

log = logging.getLogger("kpy.apiserver.compaction")

DEFAULT_INTERVAL = 300.0  # seconds; Kubernetes' DefaultCompactInterval


@dataclass(slots=True)
class CompactorStatistics:
    ticks: int = 0
    claimed: int = 0
    compacted_to: int = 0  # the last revision this compactor compacted to (0: none)
    failures: int = 0


class Compactor:
    """See the module docstring. `sleep` is injected for tests."""

    def __init__(
        self,
        store: Store,
        interval: float = DEFAULT_INTERVAL,
        *,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"the compaction interval must be positive, got {interval}")
        self._store = store
        self._interval = interval
        self._sleep = sleep
        self._time = 0  # the shared clock as this compactor last saw it
        self._revision = 0  # the revision seen at the previous tick
        self.statistics = CompactorStatistics()

    async def run(self) -> None:
        while True:
            await self._sleep(self._interval)
            await self.tick()

    async def tick(self) -> None:
        """One interval's attempt: claim, and if won, compact to the
        revision of the previous tick."""
        stats = self.statistics
        stats.ticks += 1
        try:
            claim = await self._store.claim_compaction(self._time, self._revision)
            previous, self._time, self._revision = self._revision, claim.time, claim.revision
            if not claim.claimed or not previous:
                return
            stats.claimed += 1
            await self._store.compact(previous)
            stats.compacted_to = previous
            log.info("compacted etcd to revision %d", previous)
        except errors.StatusError as e:
            stats.failures += 1
            log.warning("etcd compaction failed, retrying in %.0fs: %s", self._interval, e)


def parse_interval(text: str) -> float:
    """Seconds from `--etcd-compaction-interval`: a number of seconds, or a
    duration such as "5m", "90s", "1h" (Kubernetes' spelling); 0 disables.
    ValueError naming the accepted forms otherwise."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    value = text.strip()
    scale = units.get(value[-1:], 0.0)
    number = value[:-1] if scale else value
    try:
        seconds = float(number) * (scale or 1.0)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(
            f'"{text}" is not a compaction interval: give seconds (300) or a duration '
            "(5m, 90s, 1h); 0 disables compaction"
        )
    return seconds
