"""Controller expectations (Kubernetes' pkg/controller ControllerExpectations
and UIDTrackingControllerExpectations).

A controller that creates or deletes N pods for a key records that it
*expects* N creations (or deletions) to come back through its informer. Until
they have, its informer's view is behind its own writes, so `sync(key)` must
not act on it: `satisfied(key)` says whether it may. Informer handlers call
`creation_observed(key)` / `deletion_observed(key, pod_key)` as the events
arrive; a create or delete that failed lowers the expectation at once.

Contract:
- A key with no record is satisfied (first sync, or after `delete(key)`).
- A record is satisfied once both counts reached zero or below, or once it
  is older than `ttl` (5 minutes, as Kubernetes): an event lost for good must
  not wedge the controller forever.
- Deletions are tracked per pod key (`expect_deletions(key, pod_keys)`), so a
  pod that is observed deleted twice (a graceful delete, then the removal)
  counts once.
- Callers drop a key's record with `delete(key)` when the owner goes; no
  state outlives its key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from kpy.clock import Clock, RealClock

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["EXPECTATIONS_TTL", "ControllerExpectations"]

EXPECTATIONS_TTL: Final = 300.0


@dataclass(slots=True)
class _Record:
    adds: int
    deletes: set[str]
    stamp: float

    def fulfilled(self) -> bool:
        return self.adds <= 0 and not self.deletes


class ControllerExpectations:
    """See the module docstring. Keys are the owner's "namespace/name"."""

    def __init__(self, *, clock: Clock | None = None, ttl: float = EXPECTATIONS_TTL) -> None:
        self._clock = clock or RealClock()
        self._ttl = ttl
        self._records: dict[str, _Record] = {}

    def satisfied(self, key: str) -> bool:
        record = self._records.get(key)
        if record is None:
            return True
        return record.fulfilled() or self._clock.now() - record.stamp > self._ttl

    def expect_creations(self, key: str, count: int) -> None:
        """Replaces the key's record with `count` creations to come."""
        self._records[key] = _Record(adds=count, deletes=set(), stamp=self._clock.now())

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        """Replaces the key's record with the deletion of these pods to come."""
        self._records[key] = _Record(adds=0, deletes=set(pod_keys), stamp=self._clock.now())

    def creation_observed(self, key: str) -> None:
        """One expected pod appeared in the informer (or its create failed)."""
        record = self._records.get(key)
        if record is not None:
            record.adds -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        """The pod was seen deleted (or its delete failed); idempotent per pod."""
        record = self._records.get(key)
        if record is not None:
            record.deletes.discard(pod_key)

    def lower_creations(self, key: str, count: int) -> None:
        """`count` creations that will never be observed (they failed or were skipped)."""
        record = self._records.get(key)
        if record is not None:
            record.adds -= count

    def pending(self, key: str) -> tuple[int, int]:
        """(creations, deletions) still expected; (0, 0) without a record."""
        record = self._records.get(key)
        if record is None:
            return (0, 0)
        return (max(record.adds, 0), len(record.deletes))

    def delete(self, key: str) -> None:
        self._records.pop(key, None)

    def __len__(self) -> int:
        return len(self._records)
