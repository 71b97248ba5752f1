"""The restart back-off of crashing containers and failing image pulls.

Per key (pod uid and container name), the n-th restart waits base * 2^(n-1)
seconds after the container finished (10 s, 20 s, 40 s ... capped at
`cap`, 5 minutes), counted from the instance's exit. A container that ran
longer than `reset_after` (10 minutes) before it exited starts the series
again. Pure bookkeeping with the time passed in, so tests step time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
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
        be restarted. Asking again about the same instance gives the same
        answer; a newer instance moves the series on."""
        entry = self._entries.get(key)
        if entry is not None and entry.finished_at == finished_at:
            return finished_at + entry.delay
        ran = finished_at - started_at if started_at is not None else 0.0
        if entry is None or ran >= self.reset_after:
            delay = self.base
        else:
            delay = min(entry.delay * 2, self.cap)
        self._entries[key] = _Entry(delay, finished_at)
        return finished_at + delay

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
