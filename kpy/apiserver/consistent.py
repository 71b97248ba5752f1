"""Consistent reads from the watch cache (Kubernetes' KEP-2340).

A get or list at "latest" must see every write that finished before it
began. The cache follows etcd a little behind, so before answering from
memory the registry asks `CacheFreshness.wait`, which returns once the
cache's state is at least as new as etcd's when the call began:

1. It reads etcd's current revision R with one cheap request, shared by
   concurrent callers (`Store.fresh_revision`). A cache at or past R is
   current.
2. Otherwise, when the cache applied a change in the last `BUSY` seconds
   (its resource is being written), it waits up to `grace` seconds for the
   cache's etcd watch to deliver the writes in between: under a write load
   on the resource that is all it takes. A resource that has not changed
   for longer skips this wait: R moved with writes to other resources
   (Leases, Events: a cluster writes some all the time), which the cache
   would wait for in vain, and a read would always take `grace`.
3. A cache still behind R may be behind on nothing: R counts writes to
   every resource, and the cache only moves with its own resource's events
   (or etcd's progress notifications, seconds apart; etcd 3.5.1's
   on-demand progress request can run ahead of the watch, so it is not
   used, see docs/architecture.md "Storage"). So it reads the resource's
   `ResourceStat` at S >= R (count and newest version, one request shared
   by concurrent callers) and waits until the cache, at some version
   v <= S, holds as many objects and v >= the newest: then no write to the
   resource landed in (v, S] (any surviving put would be newer than v, a
   delete alone would lower the count), so the cache's state is etcd's at
   S. Such a proof is remembered: the cache is known current to S until it
   moves past it.

The objects answered carry the cache's own version, never R: a client
that watches from a list's version resumes from what the cache holds.
"""

from __future__ import annotations

import time
from contextlib import suppress
from typing import TYPE_CHECKING, Final

import anyio

from kpy.api.errors import Timeout

if TYPE_CHECKING:
    from kpy.api.scheme import ResourceInfo
    from kpy.apiserver.watch_cache import WatchCache
    from kpy.storage import Store

__all__ = ["BUSY", "CATCH_UP_GRACE", "CacheFreshness"]

CATCH_UP_GRACE: Final = 0.02
"""Seconds a read waits for the cache's watch to deliver recent writes
before it asks etcd whether the resource changed at all: longer than the
watch's delivery under load, short against a read's deadline."""

BUSY: Final = 0.25
"""Seconds after the cache last moved during which its resource counts as
being written, so that a read behind etcd first waits for the watch."""


class CacheFreshness:
    """When a `WatchCache` may answer a read at "latest"; see the module
    docstring. One per cache; every task of the cache's event loop may call
    `wait`."""

    def __init__(
        self,
        store: Store,
        info: ResourceInfo,
        cache: WatchCache,
        *,
        grace: float = CATCH_UP_GRACE,
    ) -> None:
        self._store = store
        self._info = info
        self._cache = cache
        self._grace = grace
        self._known = 0  # a revision the cache's state is proven current to

    def current_to(self) -> int:
        """The newest revision the cache's state is known to match."""
        return max(self._cache.resource_version, self._known)

    async def wait(self) -> None:
        """Returns once the cache's state is at least as new as etcd's when
        this was called. Unavailable when the cache has stopped, Timeout when
        it does not catch up within its `catch_up_timeout`, and the store's
        errors when etcd cannot be read."""
        cache = self._cache
        if not cache.resource_version:
            await cache.wait_until_fresh(0)  # not loaded yet (or stopped)
        busy = time.monotonic() - cache.changed_at < BUSY
        revision = await self._store.fresh_revision()
        if self.current_to() >= revision:
            return
        if busy:
            with anyio.move_on_after(self._grace), suppress(Timeout):
                await cache.wait_until_fresh(revision)
            if self.current_to() >= revision:
                return
        stat = await self._store.fresh_stat(self._info)
        while True:
            rv = cache.resource_version
            if rv >= revision:
                return
            if stat.newest <= rv and cache.statistics().objects == stat.count:
                self._known = max(self._known, stat.revision)
                return
            await cache.wait_until_fresh(rv + 1)
