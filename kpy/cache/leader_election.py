"""Leader election over a Lease object (client-go's leaderelection).

Several replicas of a component run `LeaderElector.run(lead)`; at most one
runs `lead` at a time. The leader holds the Lease `namespace/name` by
writing its identity and renewing `renewTime`; every write is a
compare-and-swap on the Lease's resourceVersion, so two candidates never both
believe they took it.

Timing (defaults as Kubernetes: lease 15 s, renew deadline 10 s, retry 2 s):
- a candidate takes the Lease only once it has seen the same holder record
  unchanged for `lease_duration`, measured on its own clock (so clocks of
  different machines need not agree);
- the leader tries to renew every `retry_period`; if it has not renewed for
  `renew_deadline` it stops leading: `lead` is cancelled and `run` returns.
  Because renew_deadline < lease_duration, a leader that cannot renew stops
  before any other candidate can take over.
- on a clean stop (`run` cancelled, or `lead` returned) the leader releases
  the Lease (holder cleared), so a spare takes over at its next retry.

`run` owns every task it starts; cancelling it stops leading.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
from google.protobuf.timestamp_pb2 import Timestamp

from kpy.api import errors
from kpy.api.coordination.v1 import Lease
from kpy.clock import Clock, RealClock

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from kpy.client import ClientProtocol

log = logging.getLogger("kpy.leader_election")


@dataclass(frozen=True, slots=True)
class LeaderElectionConfig:
    name: str
    identity: str
    namespace: str = "kube-system"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    release_on_cancel: bool = True
    clock: Clock = field(default_factory=RealClock)

    def __post_init__(self) -> None:
        if not self.renew_deadline < self.lease_duration:
            raise ValueError("renew_deadline must be shorter than lease_duration")
        if not self.retry_period < self.renew_deadline:
            raise ValueError("retry_period must be shorter than renew_deadline")
        if not self.identity:
            raise ValueError("identity must not be empty")


class LeaderElector:
    """See the module docstring."""

    def __init__(self, client: ClientProtocol, config: LeaderElectionConfig) -> None:
        self._client = client
        self.config = config
        self._observed: Lease | None = None
        self._observed_at = 0.0
        self._leading = False

    @property
    def is_leader(self) -> bool:
        return self._leading

    @property
    def leader(self) -> str:
        """The holder this candidate last saw ("" if none)."""
        return self._observed.spec.holder_identity if self._observed is not None else ""

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Waits to become leader, runs `lead` while leading; returns when
        leadership is lost or `lead` returns."""
        cfg = self.config
        # Retrying on a period is the protocol (as client-go), not polling for
        # a change a watch could deliver: expiry is measured by our own clock.
        while True:
            if await self._try_acquire_or_renew():
                break
            await anyio.sleep(cfg.retry_period * random.uniform(1.0, 1.2))
        self._leading = True
        log.info("became leader", extra={"lease": cfg.name, "identity": cfg.identity})
        try:
            async with anyio.create_task_group() as tg:

                async def lead_then_stop() -> None:
                    await lead()
                    tg.cancel_scope.cancel()

                tg.start_soon(lead_then_stop)
                await self._renew_until_lost()
                tg.cancel_scope.cancel()
        finally:
            self._leading = False
            log.info("stopped leading", extra={"lease": cfg.name, "identity": cfg.identity})
            if cfg.release_on_cancel:
                with anyio.CancelScope(shield=True), anyio.move_on_after(cfg.retry_period):
                    await self._release()

    async def _renew_until_lost(self) -> None:
        cfg = self.config
        last_renew = cfg.clock.now()
        while True:
            await anyio.sleep(cfg.retry_period)
            with anyio.move_on_after(max(0.0, last_renew + cfg.renew_deadline - cfg.clock.now())):
                while True:
                    if await self._try_acquire_or_renew():
                        break
                    await anyio.sleep(cfg.retry_period / 4)
                last_renew = cfg.clock.now()
                continue
            log.warning(
                "failed to renew the lease within the renew deadline",
                extra={"lease": cfg.name, "identity": cfg.identity},
            )
            return

    def _now(self) -> Timestamp:
        stamp = Timestamp()
        stamp.FromNanoseconds(time.time_ns())
        return stamp

    async def _try_acquire_or_renew(self) -> bool:
        """One attempt; True when this candidate holds the Lease afterwards."""
        cfg = self.config
        try:
            current = await self._client.get(Lease, cfg.name, namespace=cfg.namespace)
        except errors.NotFound:
            return await self._create()
        except errors.StatusError as e:
            log.warning("cannot read the lease", extra={"lease": cfg.name, "error": str(e)})
            return False
        self._observe(current)
        spec = current.spec
        held_by_other = spec.holder_identity not in ("", cfg.identity)
        if held_by_other and self._observed_at + cfg.lease_duration > cfg.clock.now():
            return False
        new = Lease()
        new.CopyFrom(current)
        if spec.holder_identity != cfg.identity:
            new.spec.acquire_time.CopyFrom(self._now())
            new.spec.lease_transitions = spec.lease_transitions + (1 if spec.holder_identity else 0)
        new.spec.holder_identity = cfg.identity
        new.spec.lease_duration_seconds = max(1, round(cfg.lease_duration))
        new.spec.renew_time.CopyFrom(self._now())
        try:
            updated = await self._client.update(new)
        except errors.StatusError as e:  # Conflict: someone else wrote first
            log.debug("lease update failed", extra={"lease": cfg.name, "error": str(e)})
            return False
        self._observe(updated)
        return True

    async def _create(self) -> bool:
        cfg = self.config
        lease = Lease()
        lease.metadata.name = cfg.name
        lease.metadata.namespace = cfg.namespace
        lease.spec.holder_identity = cfg.identity
        lease.spec.lease_duration_seconds = max(1, round(cfg.lease_duration))
        lease.spec.acquire_time.CopyFrom(self._now())
        lease.spec.renew_time.CopyFrom(self._now())
        lease.spec.lease_transitions = 0
        try:
            created = await self._client.create(lease)
        except errors.StatusError:
            return False
        self._observe(created)
        return True

    def _observe(self, lease: Lease) -> None:
        """Remembers when this candidate first saw the current holder record."""
        previous = self._observed
        if previous is None or previous.spec != lease.spec:
            self._observed_at = self.config.clock.now()
        self._observed = lease

    async def _release(self) -> None:
        if self._observed is None or self._observed.spec.holder_identity != self.config.identity:
            return
        lease = Lease()
        lease.CopyFrom(self._observed)
        lease.spec.holder_identity = ""
        lease.spec.lease_duration_seconds = 1
        lease.spec.renew_time.CopyFrom(self._now())
        try:
            self._observe(await self._client.update(lease))
        except errors.StatusError as e:
            log.info(
                "could not release the lease", extra={"lease": self.config.name, "error": str(e)}
            )
