"""Reflector: keeps a store in step with the API server (client-go's Reflector).

`run` lists the resource (in pages of `page_size`), hands the whole list to
`store.replace` with the list's resource version, then watches from that
version and applies each event (`add`, `update`, `delete`). The SDK's watch
already resumes from the last version it delivered when a stream ends or a
server goes away, so the reflector only has to act when the version is gone:
on Expired it lists again. Any other failure is retried after a jittered
back-off (0.8 s doubling to 30 s, reset after a minute of health), then with a
fresh list. Bookmarks advance `last_sync_resource_version` without touching
the store.

Liveness: `last_event_time` is the (monotonic) time of the last event or
bookmark received; a watch that silently stalls shows as a growing age, and
the watch itself ends every 5 to 10 minutes and resumes, so no stream lives
forever.

`run` owns everything it starts and runs until cancelled.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from google.protobuf.message import Message

from kpy.api import errors
from kpy.backoff import Backoff
from kpy.clock import Clock, RealClock

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kpy.client import ClientProtocol

log = logging.getLogger("kpy.cache.reflector")

M = TypeVar("M", bound=Message)
M_contra = TypeVar("M_contra", bound=Message, contravariant=True)


class ReflectorStore(Protocol[M_contra]):
    """What a reflector needs of the store it fills (an Indexer or a DeltaFIFO)."""

    def add(self, obj: M_contra) -> None: ...

    def update(self, obj: M_contra) -> None: ...

    def delete(self, obj: M_contra) -> None: ...

    def replace(self, objects: Sequence[M_contra], resource_version: str) -> None: ...


class Reflector(Generic[M]):
    def __init__(
        self,
        client: ClientProtocol,
        kind: type[M],
        store: ReflectorStore[M],
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        page_size: int = 500,
        clock: Clock | None = None,
        backoff: tuple[float, float] = (0.8, 30.0),
    ) -> None:
        self._client = client
        self._kind = kind
        self._store = store
        self._namespace = namespace
        self._labels = label_selector
        self._fields = field_selector
        self._page_size = page_size
        self._clock: Clock = clock if clock is not None else RealClock()
        # A list/watch that stayed healthy for a minute forgives earlier failures.
        self._backoff = Backoff(
            base=backoff[0], cap=backoff[1], jitter=(1.0, 1.5), reset_after=60.0, clock=self._clock
        )
        self.last_sync_resource_version = ""
        self.last_event_time = self._clock.now()
        self.lists = 0  # how many times the resource was listed (relists show here)
        self._what = kind.__name__

    async def run(self) -> None:
        while True:
            started = self._clock.now()
            try:
                await self._list()
                await self._watch()
            except errors.Expired as e:
                log.info(
                    "watch version expired; listing again",
                    extra={"kind": self._what, "why": str(e)},
                )
                continue
            except errors.StatusError as e:
                wait = self._backoff.next(ran_for=self._clock.now() - started)
                log.warning(
                    "list/watch failed; retrying",
                    extra={"kind": self._what, "error": str(e), "retry_in": f"{wait:.1f}s"},
                )
                await self._clock.sleep(wait)

    async def _list(self) -> None:
        items: list[M] = []
        token: str | None = None
        limit = self._page_size
        while True:
            try:
                page = await self._client.list(
                    self._kind,
                    namespace=self._namespace,
                    label_selector=self._labels,
                    field_selector=self._fields,
                    limit=limit,
                    continue_token=token,
                )
            except errors.Expired:
                if token is None:
                    raise
                # The continue token outlived etcd's history: list whole.
                items, token, limit = [], None, 0
                continue
            items.extend(page.items)
            token = page.continue_token
            if token is None:
                break
        self._store.replace(items, page.resource_version)
        self.last_sync_resource_version = page.resource_version
        self.last_event_time = self._clock.now()
        self.lists += 1

    async def _watch(self) -> None:
        watch = self._client.watch(
            self._kind,
            namespace=self._namespace,
            label_selector=self._labels,
            field_selector=self._fields,
            resource_version=self.last_sync_resource_version,
            bookmarks=True,
            timeout_seconds=random.randint(300, 600),
        )
        async with watch as events:
            async for event in events:
                self._apply(event.type, event.object)
                self.last_sync_resource_version = event.resource_version
                self.last_event_time = self._clock.now()

    def _apply(self, kind: str, obj: Any) -> None:
        if kind == "ADDED":
            self._store.add(obj)
        elif kind == "MODIFIED":
            self._store.update(obj)
        elif kind == "DELETED":
            self._store.delete(obj)
