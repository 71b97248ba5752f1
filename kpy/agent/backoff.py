"""The restart back-off of crashing containers and failing image pulls.

Per key (pod uid and container name), as the kubelet's back-off:

- `restart_at`, for crashed containers: the first restart of a series is
  immediate; the n-th after that waits base * 2^(n-1) seconds after the
  instance exited (10 s, 20 s, 40 s ... capped at `cap`, 5 minutes). A
  container that ran at least `reset_after` (10 minutes) before it exited
  starts a new series, so its restart is immediate again.
- `failed_at`, for other failed attempts (an image pull): each failure
  waits, base first, then doubling up to `cap`.

Bookkeeping per key over the shared `kpy.backoff.Backoff` (one series per
key, immediate first for restarts), with the time passed in, so tests step
time.
"""

from __future__ import annotations

from dataclasses import dataclass

from kpy.backoff import Backoff as Series


@dataclass(slots=True)
class _Entry:
    series: Series
    delay: float
    finished_at: float


class Backoff:
    def __init__(self, base: float = 10.0, cap: float = 300.0, reset_after: float = 600.0) -> None:
        self.base = base
        self.cap = cap
        self.reset_after = reset_after
        self._entries: dict[str, _Entry] = {}

    def restart_at(self, key: str, started_at: float | None, finished_at: float) -> float:
        """When the instance that ran from `started_at` to `finished_at` may
        be restarted: at once the first time, then after a growing wait.
        Asking again about the same instance gives the same answer; a newer
        instance moves the series on."""
        ran = finished_at - started_at if started_at is not None else 0.0
        return self._advance(key, finished_at, immediate_first=True, ran=ran)

    def failed_at(self, key: str, at: float) -> float:
        """When an attempt that failed at `at` may be tried again: `base`
        after the first failure, then doubling. Asking again about the same
        failure gives the same answer."""
        return self._advance(key, at, immediate_first=False, ran=0.0)

    def _advance(self, key: str, finished_at: float, *, immediate_first: bool, ran: float) -> float:
        entry = self._entries.get(key)
        if entry is not None and entry.finished_at == finished_at:
            return finished_at + entry.delay
        if entry is None:
            series = Series(
                base=self.base,
                cap=self.cap,
                reset_after=self.reset_after,
                immediate_first=immediate_first,
            )
            entry = self._entries[key] = _Entry(series, 0.0, finished_at)
        entry.delay = entry.series.next(ran_for=ran)
        entry.finished_at = finished_at
        return finished_at + entry.delay

    def holding(self, key: str, now: float) -> float | None:
        """The end of the current wait for `key` if it has not passed."""
        entry = self._entries.get(key)
        if entry is None or now >= entry.finished_at + entry.delay:
            return None
        return entry.finished_at + entry.delay

    def forget(self, prefix: str) -> None:
        """Drops every key that starts with `prefix` (a pod that went)."""
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]
