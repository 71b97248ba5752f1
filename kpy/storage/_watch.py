"""One etcd watch, as an async iterator of Kubernetes-style watch events.

Each `Watch` owns one gRPC Watch stream on the client's channel (not aetcd's
shared watcher, which drops progress notifications), carrying one etcd
watch. It starts no task: events are read in the consumer's own task when it
asks for the next one, and leaving the `async with` block cancels the stream,
which makes etcd drop the watch. A Watch must be used as an async context
manager, by one consumer, and iterated at most once.

Guarantees, for a watch opened at resource version R:
- every change to a key in range with revision > R is delivered exactly
  once, in revision order; event resource versions never decrease (the
  changes of one transaction, such as `Store.create_many`'s, share its
  revision and arrive together, from one response);
- R == 0 means "from now": changes after the revision current at open;
- BOOKMARK events (from etcd progress notifications) carry a revision that
  is at least that of every event before them and lower than that of every
  event after them, so resuming from a bookmark loses nothing;
- when R has been compacted away, Expired is raised (at open or from the
  iterator) naming the compacted revision; when etcd cancels the watch or
  goes away, Unavailable is raised. Either way the consumer relists or
  re-opens from the last resource version it saw.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any, Literal, Self

from aetcd import rpc

from kpy.api.errors import Expired, Unavailable
from kpy.storage._errors import etcd_errors
from kpy.storage._keys import prefix_end
from kpy.storage.codec import decode, meta

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from google.protobuf.message import Message

    from kpy.api.scheme import ResourceInfo

EventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]


class WatchEvent:
    """One change. `object` carries `resource_version` in its metadata too.
    For DELETED it is the object's last state with resource_version set to
    the revision of the delete; for BOOKMARK it is an empty object of the kind
    whose only content is the resource_version. Shared: never mutate.

    `object` is decoded on first access (StatusError if the stored bytes do
    not parse). `value` is the stored bytes it decodes from, as etcd holds
    them once decrypted (resource_version cleared), and `key` their key; `value` is None
    for a BOOKMARK and for a delete whose previous value etcd no longer had.
    A consumer that only passes objects on can use `value` (see
    `kpy.storage.codec.versioned`) and never decode."""

    __slots__ = ("_info", "_object", "key", "resource_version", "type", "value")

    def __init__(
        self,
        type: EventType,
        resource_version: int,
        *,
        info: ResourceInfo,
        key: bytes = b"",
        value: bytes | None = None,
        obj: Message | None = None,
    ) -> None:
        if (value is None) == (obj is None):
            raise ValueError("a WatchEvent needs either its stored value or its object")
        self.type: EventType = type
        self.resource_version = resource_version
        self.key = key
        self.value = value
        self._info = info
        self._object = obj

    @property
    def object(self) -> Message:
        obj = self._object
        if obj is None:
            assert self.value is not None  # one of the two is always set
            obj = self._object = decode(self._info, self.key, self.value, self.resource_version)
        return obj

    def __repr__(self) -> str:
        return f"WatchEvent({self.type}, {self.key.decode()!r}, {self.resource_version})"


class Watch:
    """An open etcd watch over one key range; see the module docstring."""

    def __init__(
        self,
        client: Any,
        info: ResourceInfo,
        prefix: bytes,
        *,
        resource_version: int,
        progress_notify: bool,
        open_timeout: float,
        plaintext: Callable[[bytes, bytes], bytes] = lambda _key, value: value,
    ) -> None:
        self._client = client
        self._plaintext = plaintext
        self._info = info
        self._prefix = prefix
        self._start = resource_version
        self._progress_notify = progress_notify
        self._open_timeout = open_timeout
        self._call: Any = None
        self._pending: deque[WatchEvent] = deque()
        self._last = resource_version
        self._what = f"watch {info.group_resource} under {prefix.decode()!r}"

    async def __aenter__(self) -> Self:
        await self._client.connect()
        self._call = rpc.WatchStub(self._client.channel).Watch(metadata=self._client.metadata)
        try:
            async with asyncio.timeout(self._open_timeout):
                await self._create()
        except TimeoutError:
            self._call.cancel()
            raise Unavailable(
                f"{self._what}: etcd did not confirm the watch within {self._open_timeout:g} s; "
                "check that etcd is up and re-open the watch"
            ) from None
        except BaseException:
            self._call.cancel()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._call is not None:
            self._call.cancel()
            await self._call.code()  # returns once gRPC has torn the stream down

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> WatchEvent:
        if self._call is None:
            raise RuntimeError("use the watch as `async with store.watch(...) as w:`")
        while not self._pending:
            await self._receive()
        return self._pending.popleft()

    async def _create(self) -> None:
        request = rpc.WatchCreateRequest(
            key=self._prefix,
            range_end=prefix_end(self._prefix),
            start_revision=self._start + 1 if self._start else 0,
            progress_notify=self._progress_notify,
            prev_kv=True,
            fragment=True,
        )
        with etcd_errors(self._what):
            await self._call.write(rpc.WatchRequest(create_request=request))
        response, _ = await self._next_response()
        if not response.created:
            raise Unavailable(f"{self._what}: etcd did not confirm the watch; re-open it")
        self._check(response)
        if not self._start:
            self._last = response.header.revision

    async def _next_response(self) -> tuple[Any, list[Any]]:
        """One whole response: fragments of a large revision joined."""
        events: list[Any] = []
        while True:
            try:
                with etcd_errors(self._what):
                    response = await self._call.read()
            except Unavailable as e:
                raise Unavailable(
                    f"{e} Re-open the watch from resource version {self._last}."
                ) from e
            if not isinstance(response, rpc.WatchResponse):  # end of stream
                raise Unavailable(
                    f"{self._what}: etcd closed the watch stream; "
                    f"re-open it from resource version {self._last}"
                )
            events.extend(response.events)
            if not response.fragment:
                return response, events

    def _check(self, response: Any) -> None:
        if response.compact_revision:
            raise Expired(
                f"too old resource version: {self._start} (etcd has compacted up to revision "
                f"{response.compact_revision}); list again to get a current resource version",
                kind=self._info.group_resource,
            )
        if response.canceled:
            reason = response.cancel_reason or "no reason given"
            raise Unavailable(
                f"{self._what}: etcd canceled the watch ({reason}); "
                f"re-open it from resource version {self._last}"
            )

    async def _receive(self) -> None:
        response, events = await self._next_response()
        self._check(response)
        if events:
            self._pending.extend(self._convert(e) for e in events)
            self._last = self._pending[-1].resource_version
        elif not response.created and response.header.revision >= self._last:
            self._last = response.header.revision
            self._pending.append(self._bookmark(self._last))

    def _bookmark(self, revision: int) -> WatchEvent:
        obj = self._info.message()
        meta(obj).resource_version = str(revision)
        return WatchEvent("BOOKMARK", revision, info=self._info, obj=obj)

    def _convert(self, event: Any) -> WatchEvent:
        # Values are decrypted here but stay encoded: decoding is left to
        # whoever reads the object (an unreadable value fails only there).
        kv = event.kv
        revision = kv.mod_revision
        if event.type == rpc.Event.PUT:
            kind: EventType = "ADDED" if kv.create_revision == kv.mod_revision else "MODIFIED"
            value = self._plaintext(kv.key, kv.value)
            return WatchEvent(kind, revision, info=self._info, key=kv.key, value=value)
        if event.prev_kv.key:
            prev = event.prev_kv
            value = self._plaintext(prev.key, prev.value)
            return WatchEvent("DELETED", revision, info=self._info, key=prev.key, value=value)
        obj = self._from_key(kv.key, revision)
        return WatchEvent("DELETED", revision, info=self._info, key=kv.key, obj=obj)

    def _from_key(self, key: bytes, revision: int) -> Message:
        """An object naming only what the key says, for a delete whose previous
        value etcd no longer had."""
        obj = self._info.message()
        m = meta(obj)
        parts = key.decode().split("/")
        m.name = parts[-1]
        if self._info.namespaced:
            m.namespace = parts[-2]
        m.resource_version = str(revision)
        return obj
