"""Versioned object storage over etcd: Kubernetes' storage.Interface.

The store keeps one object per etcd key (see `_keys`), encoded as binary
protobuf. An object's resourceVersion is the etcd mod_revision of its key:
every object the store returns carries it, and every write the store makes
is a single etcd transaction guarded by it, so a write based on a stale read
fails with Conflict instead of overwriting a change the writer never saw.

Contract for callers:
- objects passed in are never mutated; objects returned are fresh copies the
  caller owns;
- `create` ignores any resource_version on the object; `update` requires it;
- a list is a consistent snapshot at one revision (`ListResult.resource_version`),
  across all its pages; a watch from that revision continues it with no gap;
- every etcd failure surfaces as a `kpy.api.errors.StatusError` subclass;
- `fresh_revision` and `fresh_stat` answer with a read made after they were
  called, shared by concurrent callers (`kpy.storage._coalesce`): what a
  consistent read from the API server's cache waits for.
- values pass through the transformer `encryption` gives for the resource
  (identity unless an EncryptionConfiguration says otherwise, see
  `kpy.storage.encryption`) on every write and every read (get, list,
  watch); a value no configured key can read is an Internal error naming
  the object, raised by whoever decodes it (for a watch: the consumer that
  reads that event's object), never by the read that fetched it.
- `create` and `update` may carry claims: keys beside the resources (such
  as a Service's cluster IP, `ranges/serviceips/<ip>`) created in the same
  transaction as the object, each only if absent, so that a value handed
  out by one API server can never be handed out by another (ClaimTaken).

The store does no defaulting, validation or admission; that is the API
server's job. It talks to etcd through aetcd's raw gRPC stubs because the
high-level client lacks range limits, revisions and progress notifications.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import aetcd
from aetcd import rpc
from google.protobuf.message import Message

from kpy.api import errors
from kpy.storage._coalesce import Coalesced
from kpy.storage._errors import COMPACTED, FUTURE_REVISION, etcd_errors, translate
from kpy.storage._keys import ContinueToken, Keyspace, prefix_end
from kpy.storage._watch import Watch, WatchEvent
from kpy.storage.codec import Unreadable, copy, decode, encode, meta, with_version
from kpy.storage.encryption import DecryptError, EncryptionConfig, ProviderChain
from kpy.storage.etcd_tls import MEMBERS_NAME, ClientTLS, SecureClient

if TYPE_CHECKING:
    import builtins  # `list` is a method here: annotations in the class say builtins.list

    from kpy.api.meta.v1 import Preconditions
    from kpy.api.scheme import ResourceInfo

M = TypeVar("M", bound=Message)

TryUpdate = Callable[[M], M | Awaitable[M]]
"""Given a copy of the current object, returns the object to write (or raises
to abort the update). May be called several times, once per conflict."""

_MODIFIED = (
    "the object has been modified; please apply your changes to the latest version and try again"
)

# One create_many transaction at most: etcd refuses more than --max-txn-ops
# (128 by default) operations, and more than --max-request-bytes (1.5 MiB by
# default) in one request.
_TXN_OPS = 100
_TXN_BYTES = 1024 * 1024
# A result slot create_many has not filled (never returned: every slot is filled).
_NOT_WRITTEN = errors.Internal("create_many: not written")

_KEEPALIVE_OPTIONS = {
    "grpc.max_receive_message_length": -1,  # lists of large objects; etcd bounds requests
    "grpc.keepalive_time_ms": 30_000,  # notice a dead etcd under a quiet watch
    "grpc.keepalive_timeout_ms": 10_000,
    "grpc.keepalive_permit_without_calls": 0,  # etcd refuses pings without streams
}


def new_client(
    endpoints: str, *, timeout: float | None = None, tls: ClientTLS | None = None
) -> aetcd.Client:
    """An aetcd client for `endpoints` ("host:port", or several separated by
    commas: the members of one etcd cluster, tried in turn when one fails),
    with the channel options the store needs: no receive-size cap (a page of
    large objects exceeds gRPC's 4 MiB default) and keepalives that notice a
    dead connection. With `tls` (--etcd-cafile, --etcd-certfile,
    --etcd-keyfile) its one channel is TLS (see `kpy.storage.etcd_tls`).
    Not yet connected; `Store` connects it on first use, the caller closes it."""
    addresses = [e.strip() for e in endpoints.split(",") if e.strip()]
    if not addresses:
        raise ValueError("no etcd endpoint given; pass host:port")
    for address in addresses:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f'etcd endpoint "{address}" is not of the form host:port')
    host, _, port = addresses[-1].rpartition(":")
    if len(addresses) > 1:
        # aetcd dials f"{host}:{port}"; gRPC's ipv4: scheme takes a list of
        # addresses and fails over between them (pick_first).
        host = "ipv4:" + ",".join([*addresses[:-1], host])
    if tls is None:
        return aetcd.Client(host=host, port=int(port), timeout=timeout, options=_KEEPALIVE_OPTIONS)
    options: dict[str, object] = dict(_KEEPALIVE_OPTIONS)
    if len(addresses) > 1:  # one name for the channel's every member: see etcd_tls
        options["grpc.ssl_target_name_override"] = MEMBERS_NAME
    return SecureClient(tls, host=host, port=int(port), timeout=timeout, options=options)


@dataclass(frozen=True, slots=True)
class ListResult:
    """One page of a list. `resource_version` is the revision every page of
    this list was read at; `continue_token` fetches the next page (None on
    the last); `remaining` counts the objects after this page at that revision."""

    items: tuple[Message, ...]
    resource_version: int
    continue_token: str | None = None
    remaining: int = 0


@dataclass(frozen=True, slots=True)
class StoredList:
    """One page of `Store.list_stored`: as ListResult, its items stored values."""

    items: tuple[WatchEvent, ...]
    resource_version: int
    continue_token: str | None = None
    remaining: int = 0


@dataclass(frozen=True, slots=True)
class _Page:
    """One page of etcd key-values, before decoding."""

    items: tuple[Any, ...]
    resource_version: int
    continue_token: str | None = None
    remaining: int = 0


@dataclass(frozen=True, slots=True)
class ResourceStat:
    """The shape of a resource at `revision`: two states of it with the same
    count and the same newest version are the same state (any surviving
    write would show as a newer version, any delete alone as a lower count)."""

    count: int
    newest: int
    revision: int


@dataclass(frozen=True, slots=True)
class CompactionClaim:
    """The outcome of `Store.claim_compaction`. `time` is the compaction
    clock after the attempt (the version of the shared key); `revision` the
    etcd revision then; `claimed` whether this caller won the interval."""

    time: int
    revision: int
    claimed: bool


COMPACT_REV_KEY = b"compact_rev_key"
"""The key every API server's compactor shares (Kubernetes' name, outside
any prefix as there): its value is the last revision compacted to, its
version the number of compactions claimed so far."""


class ClaimTaken(errors.Conflict):
    """A create or update with claims found some of them taken: `claims`
    names those (the object itself was writable). Nothing was written."""

    def __init__(self, claims: tuple[str, ...]) -> None:
        super().__init__(f"already claimed: {', '.join(claims)}")
        self.claims = claims


FRESH_READ_SPACING = 0.002
"""Seconds between the shared reads of `fresh_revision` (and of each
resource's `fresh_stat`) while callers keep coming: at most 500 requests a
second however many consistent reads arrive. Each request costs the API
server about as much CPU as serving a get from its cache (~150-200 µs
here); unspaced, 32 gets in flight shared one among ~2, spaced among ~5-8
(API server CPU per get 290-370 µs -> 230-280 µs on this machine), for at
most 2 ms more waiting under load. A caller finding no read in flight is
not delayed (see `kpy.storage._coalesce`)."""


@dataclass(frozen=True, slots=True)
class _Written:
    """The outcome of a guarded write: the new revision when it succeeded,
    else the key's current value (None when the key is gone)."""

    revision: int = 0
    current: Any = None


class Store:
    """Versioned CRUD, list and watch of API objects in etcd. One Store may be
    shared by any number of tasks of one event loop; it holds no state
    besides the client and the shared reads of `fresh_revision` and
    `fresh_stat`."""

    def __init__(
        self,
        client: aetcd.Client,
        *,
        prefix: str = "/registry",
        request_timeout: float = 30.0,
        encryption: EncryptionConfig | None = None,
    ) -> None:
        self._client = client
        self._encryption = encryption or EncryptionConfig()
        self._chains: dict[str, ProviderChain] = {}  # by group_resource, looked up once
        self._keys = Keyspace(prefix.rstrip("/"))
        self._timeout = request_timeout
        self._revision_reads = Coalesced(self.current_revision, spacing=FRESH_READ_SPACING)
        self._stat_reads: dict[bytes, Coalesced[ResourceStat]] = {}

    # -- reads -------------------------------------------------------------

    async def get(self, info: ResourceInfo, namespace: str, name: str) -> Message:
        """The object, with its resource_version; NotFound when absent."""
        key = self._keys.object_key(info, namespace, name)
        response = await self._range(rpc.RangeRequest(key=key), _what("get", info, key))
        if not response.kvs:
            raise errors.not_found(info.group_resource, name)
        return self._decode(info, response.kvs[0])

    async def list(
        self,
        info: ResourceInfo,
        namespace: str | None = None,
        *,
        limit: int = 0,
        continue_token: str | None = None,
        resource_version: int = 0,
    ) -> ListResult:
        """Objects in key order (namespace, then name). `limit` 0 means all.
        `resource_version` 0 reads the latest state, otherwise exactly that
        revision (Expired when compacted). With `continue_token` the page is
        read at the token's revision (resource_version must then be 0); a
        token not made by this store is BadRequest."""
        page = await self._list_range(info, namespace, limit, continue_token, resource_version)
        items = tuple(self._decode(info, kv) for kv in page.items)
        return ListResult(items, page.resource_version, page.continue_token, page.remaining)

    async def list_stored(
        self,
        info: ResourceInfo,
        *,
        limit: int = 0,
        continue_token: str | None = None,
        resource_version: int = 0,
    ) -> StoredList:
        """`list` of every namespace, each object as an ADDED WatchEvent
        holding its value as stored (decrypted, not decoded): what the API
        server's cache keeps, so that an object that cannot be read (a value
        no configured key decrypts) fails only the reads of that object."""
        page = await self._list_range(info, None, limit, continue_token, resource_version)
        events = tuple(
            WatchEvent(
                "ADDED",
                kv.mod_revision,
                info=info,
                key=kv.key,
                value=self.plaintext(info, kv.key, kv.value),
            )
            for kv in page.items
        )
        return StoredList(events, page.resource_version, page.continue_token, page.remaining)

    async def _list_range(
        self,
        info: ResourceInfo,
        namespace: str | None,
        limit: int,
        continue_token: str | None,
        resource_version: int,
    ) -> _Page:
        if limit < 0 or resource_version < 0:
            raise errors.BadRequest(
                f"limit and resource_version must not be negative, got {limit}, {resource_version}"
            )
        prefix = self._keys.resource_prefix(info, namespace)
        start, revision = prefix, resource_version
        if continue_token is not None:
            if resource_version:
                raise errors.BadRequest("resource_version may not be given with a continue token")
            token = ContinueToken.decode(continue_token)
            start, revision = prefix + token.start, token.revision
        request = rpc.RangeRequest(
            key=start, range_end=prefix_end(prefix), limit=limit, revision=revision
        )
        try:
            response = await self._range(request, _what("list", info, prefix))
        except errors.Expired:
            raise _list_expired(info, revision, continue_token is not None) from None
        read_at = revision or response.header.revision
        kvs = tuple(response.kvs)
        if not response.more:
            return _Page(kvs, read_at)
        token = ContinueToken(read_at, kvs[-1].key[len(prefix) :] + b"\0")
        return _Page(kvs, read_at, token.encode(), response.count - len(kvs))

    async def stat(self, info: ResourceInfo) -> ResourceStat:
        """How many objects of the resource exist and the highest version
        among them, read at the latest revision (one small etcd request)."""
        prefix = self._keys.resource_prefix(info, None)
        request = rpc.RangeRequest(
            key=prefix,
            range_end=prefix_end(prefix),
            limit=1,
            keys_only=True,
            sort_target=rpc.RangeRequest.MOD,
            sort_order=rpc.RangeRequest.DESCEND,
        )
        response = await self._range(request, _what("stat", info, prefix))
        newest = response.kvs[0].mod_revision if response.kvs else 0
        return ResourceStat(int(response.count), int(newest), int(response.header.revision))

    async def current_revision(self) -> int:
        """The latest revision of the whole etcd keyspace."""
        key = self._keys.root.encode()
        request = rpc.RangeRequest(key=key, count_only=True)
        response = await self._range(request, "read the current revision")
        return int(response.header.revision)

    async def fresh_revision(self) -> int:
        """etcd's current revision read by a request sent after this call
        began, so it covers every write finished before then. Concurrent
        callers share requests (at most one in flight, one forming)."""
        return await self._revision_reads()

    async def fresh_stat(self, info: ResourceInfo) -> ResourceStat:
        """`stat(info)` read by a request sent after this call began;
        concurrent callers for the same resource share requests."""
        prefix = self._keys.resource_prefix(info, None)
        reads = self._stat_reads.get(prefix)
        if reads is None:
            reads = self._stat_reads[prefix] = Coalesced(
                lambda: self.stat(info), spacing=FRESH_READ_SPACING
            )
        return await reads()

    def watch(
        self,
        info: ResourceInfo,
        namespace: str | None = None,
        *,
        resource_version: int,
        progress_notify: bool = True,
    ) -> Watch:
        """Changes to the resource (in `namespace`, or all) after
        `resource_version` (0: from now), as WatchEvents; use it as
        `async with store.watch(...) as w: async for event in w:`. See
        `kpy.storage.Watch` for the delivery guarantees."""
        if resource_version < 0:
            raise errors.BadRequest(f"resource_version must not be negative: {resource_version}")
        return Watch(
            self._client,
            info,
            self._keys.resource_prefix(info, namespace),
            resource_version=resource_version,
            progress_notify=progress_notify,
            open_timeout=self._timeout,
            plaintext=lambda key, value: self.plaintext(info, key, value),
        )

    # -- writes ------------------------------------------------------------

    async def create(
        self, info: ResourceInfo, obj: M, *, claims: Mapping[str, bytes] | None = None
    ) -> M:
        """Stores a new object; AlreadyExists when the key is taken. Returns a
        copy with the resource_version of the write.

        `claims`: keys (relative to the store prefix, as `claim_key` makes
        them) written in the same transaction, each only if it does not exist
        yet, with its value (the claimant): the object and its claims are
        stored together or not at all. ClaimTaken names the claims that
        already existed (the object's key was free)."""
        m = meta(obj)
        key = self._keys.object_key(info, m.namespace, m.name)
        claimed = {self.claim_key(name): value for name, value in (claims or {}).items()}
        value = self._seal(info, key, encode(info, obj))
        txn = rpc.TxnRequest(
            compare=[_absent(k) for k in (key, *claimed)],
            success=[_put(k, v) for k, v in ((key, value), *claimed.items())],
            failure=[_keys_only(k) for k in (key, *claimed)],
        )
        response = await self._txn(txn, _what("create", info, key))
        if not response.succeeded:
            found = [bool(r.response_range.kvs) for r in response.responses]
            if found[0]:
                raise errors.already_exists(info.group_resource, m.name)
            raise ClaimTaken(self._taken(claimed, found[1:]))
        return with_version(obj, response.header.revision)

    async def create_many(
        self, info: ResourceInfo, objs: Sequence[M]
    ) -> builtins.list[M | errors.StatusError]:
        """Stores new objects of one kind, each only if its key is free, in
        as few etcd transactions as etcd's limits allow (`_TXN_OPS` keys and
        about `_TXN_BYTES` per transaction). Returns, in order, each object
        with the resource_version of its write, or its own error
        (AlreadyExists when its key was taken; a transaction etcd refused
        fails only the objects it held). The objects of one transaction share
        its revision: a watcher sees them at one resource version."""
        results: builtins.list[M | errors.StatusError] = [_NOT_WRITTEN] * len(objs)
        chunk: builtins.list[tuple[int, bytes, bytes]] = []
        size = 0
        for i, obj in enumerate(objs):
            m = meta(obj)
            key = self._keys.object_key(info, m.namespace, m.name)
            value = self._seal(info, key, encode(info, obj))
            if chunk and (len(chunk) >= _TXN_OPS or size + len(value) > _TXN_BYTES):
                await self._create_chunk(info, objs, chunk, results)
                chunk, size = [], 0
            chunk.append((i, key, value))
            size += len(key) + len(value)
        if chunk:
            await self._create_chunk(info, objs, chunk, results)
        return results

    async def _create_chunk(
        self,
        info: ResourceInfo,
        objs: Sequence[M],
        chunk: builtins.list[tuple[int, bytes, bytes]],
        results: builtins.list[M | errors.StatusError],
    ) -> None:
        """One transaction putting every key of `chunk` that is absent; a key
        found taken is AlreadyExists and the rest are tried again without it
        (each round drops at least one, so this ends)."""
        while chunk:
            txn = rpc.TxnRequest(
                compare=[_absent(key) for _, key, _ in chunk],
                success=[_put(key, value) for _, key, value in chunk],
                failure=[_keys_only(key) for _, key, _ in chunk],
            )
            what = f"create {len(chunk)} {info.group_resource}"
            try:
                response = await self._txn(txn, what)
            except errors.StatusError as e:
                for i, _, _ in chunk:
                    results[i] = e
                return
            if response.succeeded:
                for i, _, _ in chunk:
                    results[i] = with_version(objs[i], response.header.revision)
                return
            free: builtins.list[tuple[int, bytes, bytes]] = []
            for entry, found in zip(chunk, response.responses, strict=True):
                if found.response_range.kvs:
                    results[entry[0]] = errors.already_exists(
                        info.group_resource, meta(objs[entry[0]]).name
                    )
                else:
                    free.append(entry)
            chunk = free

    async def update(
        self, info: ResourceInfo, obj: M, *, claims: Mapping[str, bytes] | None = None
    ) -> M:
        """Replaces the object if its resource_version is still the stored
        one: Conflict when it is stale, NotFound when the object is gone,
        BadRequest when the object carries no resource_version. Returns a copy
        with the new resource_version. `claims`: as for `create`, written in
        the same transaction (ClaimTaken when one exists and the object was
        current)."""
        m = meta(obj)
        key = self._keys.object_key(info, m.namespace, m.name)
        value = self._seal(info, key, encode(info, obj))
        version = _parse_version(m.resource_version)
        if not claims:
            written = await self._put_if(info, key, value, version)
        else:
            written = await self._put_claiming(info, key, value, version, claims)
        if written.current is None and not written.revision:
            raise errors.not_found(info.group_resource, m.name)
        if not written.revision:
            raise errors.conflict(info.group_resource, m.name, _MODIFIED)
        return with_version(obj, written.revision)

    # -- claims --------------------------------------------------------------

    def claim_key(self, name: str) -> bytes:
        """The etcd key of the claim `name` ("ranges/serviceips/10.0.0.1"):
        under the store prefix, beside the resources. ValueError when a
        segment is empty, "." or ".." (it would change the key's shape)."""
        if any(part in ("", ".", "..") for part in name.split("/")):
            raise ValueError(f"claim name {name!r} has an empty, '.' or '..' segment")
        return f"{self._keys.root}/{name}".encode()

    async def list_claims(self, prefix: str, *, revision: int = 0) -> tuple[dict[str, bytes], int]:
        """Every claim under `prefix` ("ranges/serviceips/"), by name relative
        to it, with its value; and the revision read at (0: the latest), so
        that the objects holding them can be listed at the same revision."""
        start = self.claim_key(prefix.rstrip("/")) + b"/"
        request = rpc.RangeRequest(key=start, range_end=prefix_end(start), revision=revision)
        response = await self._range(request, f"list the claims under {prefix!r}")
        found = {kv.key[len(start) :].decode(): kv.value for kv in response.kvs}
        return found, revision or int(response.header.revision)

    async def release_claims(self, claims: Mapping[str, bytes]) -> tuple[str, ...]:
        """Deletes each claim whose value is still the one given (a claim
        since taken by another claimant is left alone); returns the names
        released."""
        released: tuple[str, ...] = ()
        for name, value in claims.items():
            key = self.claim_key(name)
            txn = rpc.TxnRequest(
                compare=[rpc.Compare(key=key, target=rpc.Compare.VALUE, value=value)],
                success=[rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key))],
            )
            response = await self._txn(txn, f"release the claim {name!r}")
            if response.succeeded:
                released += (name,)
        return released

    async def _put_claiming(
        self,
        info: ResourceInfo,
        key: bytes,
        value: bytes,
        version: int,
        claims: Mapping[str, bytes],
    ) -> _Written:
        """`_put_if`, also creating `claims` in the same transaction."""
        claimed = {self.claim_key(name): v for name, v in claims.items()}
        txn = rpc.TxnRequest(
            compare=[_mod_equals(key, version), *(_absent(k) for k in claimed)],
            success=[_put(k, v) for k, v in ((key, value), *claimed.items())],
            failure=[
                rpc.RequestOp(request_range=rpc.RangeRequest(key=key)),
                *(_keys_only(k) for k in claimed),
            ],
        )
        response = await self._txn(txn, _what("update", info, key))
        if response.succeeded:
            return _Written(revision=response.header.revision)
        kvs = response.responses[0].response_range.kvs
        if kvs and kvs[0].mod_revision == version:
            found = [bool(r.response_range.kvs) for r in response.responses[1:]]
            raise ClaimTaken(self._taken(claimed, found))
        return _Written(current=kvs[0] if kvs else None)

    def _taken(self, claimed: Mapping[bytes, bytes], found: Sequence[bool]) -> tuple[str, ...]:
        root = len(self._keys.root) + 1
        return tuple(k[root:].decode() for k, hit in zip(claimed, found, strict=True) if hit)

    async def guaranteed_update(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        try_update: TryUpdate[M],
        *,
        preconditions: Preconditions | None = None,
    ) -> M:
        """Reads the object, applies `try_update` (sync or async) to a copy and
        writes the result guarded by the version it read, re-reading and
        retrying on every conflict until a write succeeds. Preconditions are
        checked against each version read (mismatch: Conflict). When
        `try_update` returns an object equal to the current one, nothing is
        written and the current object is returned. NotFound when the object
        is absent or deleted meanwhile; exceptions of `try_update` propagate."""
        key = self._keys.object_key(info, namespace, name)
        current = cast("M", await self.get(info, namespace, name))
        while True:
            _check_preconditions(info, current, preconditions)
            proposed = await _apply(try_update, copy(current))
            _check_identity(info, proposed, namespace, name)
            version = int(meta(current).resource_version)
            if _unchanged(proposed, current):
                return current
            value = self._seal(info, key, encode(info, proposed))
            written = await self._put_if(info, key, value, version)
            if written.revision:
                return with_version(proposed, written.revision)
            if written.current is None:
                raise errors.not_found(info.group_resource, name)
            current = cast("M", self._decode(info, written.current))

    async def delete(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        *,
        preconditions: Preconditions | None = None,
    ) -> Message:
        """Removes the object and returns its last state (with its last
        resource_version). Preconditions are checked against the version that
        is deleted (mismatch: Conflict); NotFound when absent."""
        key = self._keys.object_key(info, namespace, name)
        current = await self.get(info, namespace, name)
        while True:
            _check_preconditions(info, current, preconditions)
            version = int(meta(current).resource_version)
            txn = rpc.TxnRequest(
                compare=[_mod_equals(key, version)],
                success=[rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key))],
                failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=key))],
            )
            response = await self._txn(txn, _what("delete", info, key))
            if response.succeeded:
                return current
            kvs = response.responses[0].response_range.kvs
            if not kvs:
                raise errors.not_found(info.group_resource, name)
            current = self._decode(info, kvs[0])

    async def reseal(self, info: ResourceInfo, namespace: str, name: str) -> bool:
        """Writes the object's stored value again through the resource's
        current writer (the first provider of its encryption config) when
        another one wrote it: a key rotation's rewrite. The object itself is
        unchanged, its resource_version advances (watchers see MODIFIED).
        Guarded by the version read, re-read on conflict, so a concurrent
        write is never overwritten. True when it wrote, False when the value
        was current already or the object is gone; Internal when no
        configured key reads it."""
        key = self._keys.object_key(info, namespace, name)
        chain = self._chain(info)
        response = await self._range(rpc.RangeRequest(key=key), _what("get", info, key))
        while response.kvs:
            kv = response.kvs[0]
            if chain.written_by_writer(kv.value):
                return False
            plain = self.plaintext(info, key, kv.value)
            if isinstance(plain, Unreadable):
                raise plain.error
            written = await self._put_if(info, key, chain.to_storage(key, plain), kv.mod_revision)
            if written.revision:
                return True
            response = await self._range(rpc.RangeRequest(key=key), _what("get", info, key))
        return False

    async def compact(self, revision: int) -> None:
        """Discards history older than `revision` (reads and watches from
        below it raise Expired afterwards). Compacting to a revision already
        compacted is a no-op; a revision beyond the current one is BadRequest."""
        await self._client.connect()
        request = rpc.CompactionRequest(revision=revision, physical=True)
        try:
            await self._client.kvstub.Compact(
                request, timeout=self._timeout, metadata=self._client.metadata
            )
        except rpc.AioRpcError as e:
            details = e.details() or ""
            if COMPACTED in details:
                return
            if FUTURE_REVISION in details:
                raise errors.BadRequest(
                    f"cannot compact to revision {revision}: it is beyond the current revision"
                ) from e
            raise translate(e, f"compact to revision {revision}") from e

    async def claim_compaction(self, expected_time: int, revision: int) -> CompactionClaim:
        """Kubernetes' compaction lease: if the shared key's version is still
        `expected_time` (no other compactor claimed since this one last
        looked), records `revision` in it, which bumps its version, and
        reports `claimed`; otherwise reports the key's version so the caller
        catches up. Only the claimer then compacts, so several API servers
        compact once per interval between them."""
        key = COMPACT_REV_KEY
        txn = rpc.TxnRequest(
            compare=[rpc.Compare(key=key, target=rpc.Compare.VERSION, version=expected_time)],
            success=[
                rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=str(revision).encode()))
            ],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=key))],
        )
        response = await self._txn(txn, f"claim the compaction of revision {revision}")
        current = int(response.header.revision)
        if response.succeeded:
            return CompactionClaim(expected_time + 1, current, claimed=True)
        kvs = response.responses[0].response_range.kvs
        return CompactionClaim(int(kvs[0].version) if kvs else 0, current, claimed=False)

    # -- values ------------------------------------------------------------

    def plaintext(self, info: ResourceInfo, key: bytes, value: bytes) -> bytes:
        """The encoding `value` (as etcd holds it at `key`) was made from,
        through the resource's transformer; an `Unreadable` when no
        configured provider reads it (decoding it raises Internal)."""
        try:
            return self._chain(info).from_storage(key, value)
        except DecryptError as e:
            return Unreadable(value, _undecryptable(info, key, str(e)))

    def _seal(self, info: ResourceInfo, key: bytes, data: bytes) -> bytes:
        return self._chain(info).to_storage(key, data)

    def _chain(self, info: ResourceInfo) -> ProviderChain:
        gr = info.group_resource
        chain = self._chains.get(gr)
        if chain is None:
            chain = self._chains[gr] = self._encryption.transformer(gr)
        return chain

    def _decode(self, info: ResourceInfo, kv: Any) -> Message:
        plain = self.plaintext(info, kv.key, kv.value)
        return decode(info, kv.key, plain, kv.mod_revision)

    # -- etcd calls ----------------------------------------------------------

    async def _put_if(self, info: ResourceInfo, key: bytes, value: bytes, version: int) -> _Written:
        """Puts `value` if the key's mod_revision is `version`, in one txn that
        otherwise returns the key's current value."""
        txn = rpc.TxnRequest(
            compare=[_mod_equals(key, version)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value))],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=key))],
        )
        response = await self._txn(txn, _what("update", info, key))
        if response.succeeded:
            return _Written(revision=response.header.revision)
        kvs = response.responses[0].response_range.kvs
        return _Written(current=kvs[0] if kvs else None)

    async def _range(self, request: Any, what: str) -> Any:
        await self._client.connect()
        with etcd_errors(what):
            return await self._client.kvstub.Range(
                request, timeout=self._timeout, metadata=self._client.metadata
            )

    async def _txn(self, request: Any, what: str) -> Any:
        await self._client.connect()
        with etcd_errors(what):
            return await self._client.kvstub.Txn(
                request, timeout=self._timeout, metadata=self._client.metadata
            )


def _what(verb: str, info: ResourceInfo, key: bytes) -> str:
    return f"{verb} {info.group_resource} at {key.decode()!r}"


def _undecryptable(info: ResourceInfo, key: bytes, reason: str) -> errors.Internal:
    parts = key.decode(errors="replace").rsplit("/", 2)
    name = "/".join(parts[-2:]) if info.namespaced else parts[-1]
    return errors.Internal(
        f'{info.group_resource} "{name}": no configured key can decrypt it ({reason}); '
        "add the key it was written with to the API server's --encryption-provider-config "
        "and restart it",
        kind=info.group_resource,
        name=parts[-1],
    )


def _absent(key: bytes) -> Any:
    return rpc.Compare(key=key, target=rpc.Compare.CREATE, create_revision=0)


def _put(key: bytes, value: bytes) -> Any:
    return rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value))


def _keys_only(key: bytes) -> Any:
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=key, keys_only=True))


def _mod_equals(key: bytes, version: int) -> Any:
    return rpc.Compare(key=key, target=rpc.Compare.MOD, mod_revision=version)


def _parse_version(value: str) -> int:
    """The revision an update is based on; BadRequest unless a positive integer."""
    if not value:
        raise errors.BadRequest("metadata.resourceVersion: must be specified for an update")
    if not value.isdigit() or int(value) <= 0:
        raise errors.BadRequest(f'metadata.resourceVersion: "{value}" is not a valid version')
    return int(value)


def _list_expired(info: ResourceInfo, revision: int, paged: bool) -> errors.Expired:
    if paged:
        message = (
            f"the continue token for {info.group_resource} is too old to display a consistent "
            f"list result (revision {revision} has been compacted); start a new list without it"
        )
    else:
        message = f"too old resource version: {revision} (compacted); list again without it"
    return errors.Expired(message, kind=info.group_resource)


def _check_preconditions(
    info: ResourceInfo, current: Message, preconditions: Preconditions | None
) -> None:
    if preconditions is None:
        return
    m = meta(current)
    checks = []
    if preconditions.HasField("uid"):
        checks.append(("UID", preconditions.uid, m.uid))
    if preconditions.HasField("resource_version"):
        checks.append(("ResourceVersion", preconditions.resource_version, m.resource_version))
    for label, want, have in checks:
        if want != have:
            why = (
                f"Precondition failed: {label} in precondition: {want}, "
                f"{label} in object meta: {have}"
            )
            raise errors.conflict(info.group_resource, m.name, why)


def _check_identity(info: ResourceInfo, obj: Message, namespace: str, name: str) -> None:
    m = meta(obj)
    if m.name != name or m.namespace != namespace:
        raise errors.BadRequest(
            f'{info.group_resource} "{name}": an update may not change metadata.name '
            f'or metadata.namespace (got "{m.namespace}/{m.name}")'
        )


def _unchanged(proposed: Message, current: Message) -> bool:
    same = copy(proposed)
    meta(same).resource_version = meta(current).resource_version
    return same == current


async def _apply(try_update: TryUpdate[M], current: M) -> M:
    result = try_update(current)
    if inspect.isawaitable(result):
        return await result
    return result
