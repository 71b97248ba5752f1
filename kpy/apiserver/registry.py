"""The generic registry: every verb for one resource, over the store.

One `Registry` serves one kind (Kubernetes' generic `registry.Store`). Every
write goes the same way: read the current object, build the new one from it
(server-owned metadata kept, the kind's `Strategy` applied, admission on
create, defaults, then validation of the whole result), and write it with a
compare-and-swap on the version read. Nothing is written unless every check
passed, so a refused request leaves no trace; a dry run stops right before
the write.

Reads: a get, and a list at "latest" without paging, are answered from the
watch cache once it has caught up with etcd (`kpy.apiserver.consistent`),
as are the reads before a write and a delete (a read that turns out stale
only costs a retry: the compare-and-swap refuses it, and the retry reads
etcd). Objects from the cache are shared: callers never mutate what `get`
and `list` return. Paged lists and lists at an exact version read etcd.
`get_encoded` and `list_encoded` give the same answers encoded, as a reply
carries them: from the cache, the bytes etcd stored (see
`WatchCache.get_encoded`), so a read neither decodes nor encodes the objects
it passes on.

A subresource (`kpy.apiserver.subresources`) writes through the same
`write`, with its own step that builds the new object.

Versions: an update carrying a resourceVersion is conditional (stale:
Conflict); without one, and for patches, the registry retries on conflicts
with the freshest object, like Kubernetes' unconditional updates. An update
carrying a uid must name the stored object's (Conflict otherwise), so a stale
writer cannot overwrite an object re-created under the same name.

Deletion: an object goes at once unless it has finalizers or a grace period
(pods on a node); then it gets deletionTimestamp and
deletionGracePeriodSeconds and stays until an update empties its finalizers
(grace 0) or a delete with grace 0 arrives. propagationPolicy Orphan and
Foreground are recorded as the `orphan` and `foregroundDeletion`
finalizers for the garbage collector; Background (the default) adds none.
"""

from __future__ import annotations

import logging
import math
import secrets
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol, TypeVar

import anyio
import anyio.abc
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

from kpy.api import codec, errors, patch
from kpy.apiserver import admission
from kpy.apiserver.consistent import CacheFreshness
from kpy.apiserver.replies import EncodedList, list_item
from kpy.apiserver.strategy import NamespacesBeingDeleted, strategy_for
from kpy.clock import WallClock
from kpy.storage import MAX_OBJECT_BYTES, ListResult, Store

if TYPE_CHECKING:
    import builtins  # `list` is a verb here: annotations in the class say builtins.list

    from kpy.api.authentication.v1 import TokenRequest
    from kpy.api.meta.v1 import DeleteOptions, ObjectMeta
    from kpy.api.scheme import ResourceInfo
    from kpy.api.selection import Predicate
    from kpy.apiserver.service_alloc import ServiceAllocator
    from kpy.apiserver.watch_cache import CacheWatcher, WatchCache
    from kpy.clock import Clock

log = logging.getLogger("kpy.apiserver")

M = TypeVar("M", bound=Message)
NamespaceLookup = Callable[[str], Awaitable[Message | None]]
Build = Callable[[Message, Message], Message]
"""Builds the object to store from the one a request sent and the stored one."""

__all__ = [
    "Build",
    "Deleted",
    "EncodedList",
    "NamespacesBeingDeleted",
    "Registry",
    "copy_message",
    "decode_body",
]

ORPHAN_FINALIZER: Final = "orphan"
FOREGROUND_FINALIZER: Final = "foregroundDeletion"
_POLICIES: Final = ("", "Background", "Foreground", "Orphan")
_NAME_CHARS: Final = "bcdfghjklmnpqrstvwxz2456789"
_RETRIES: Final = 16  # conflicts an unconditional write retries before giving up


def _meta(obj: Message) -> ObjectMeta:
    return obj.metadata  # type: ignore[attr-defined,no-any-return]


def copy_message(obj: M) -> M:
    """A deep copy of `obj`, which the caller may change."""
    out = type(obj)()
    out.CopyFrom(obj)
    return out


class TokenIssuing(Protocol):
    """What serves `serviceaccounts/token` on the ServiceAccounts registry
    (`kpy.apiserver.serviceaccounts.TokenRequests`, set by the server when
    it has a signing key)."""

    async def create(
        self, accounts: Registry, body: bytes, *, namespace: str, name: str, dry_run: bool
    ) -> TokenRequest: ...


@dataclass(frozen=True, slots=True)
class Deleted:
    """The outcome of a delete: the object's last state, and whether it is
    gone (False: it waits for finalizers or its node agent)."""

    object: Message
    deleted: bool


class Registry:
    """Every verb for one resource; see the module docstring."""

    def __init__(
        self,
        store: Store,
        info: ResourceInfo,
        *,
        cache: WatchCache,
        namespaces: NamespaceLookup,
        clock: Clock | None = None,
        deleting: NamespacesBeingDeleted,
    ) -> None:
        self.info = info
        self.cache = cache
        self._store = store
        self._freshness = CacheFreshness(store, info, cache)
        self._namespaces = namespaces
        self._clock: Clock = clock if clock is not None else WallClock()  # timestamps
        self._deleting = deleting  # one per server: namespaces writes, all read
        #: where Pod creation resolves priorityClassName (set by the server)
        self.priority_classes: admission.PriorityClasses | None = None
        #: where claims find their StorageClass: default class, resize (set by the server)
        self.storage_classes: admission.StorageClasses | None = None
        #: where Ingresses find the default IngressClass (set by the server)
        self.ingress_classes: admission.IngressClasses | None = None
        #: where pods/eviction finds PodDisruptionBudgets (set by the server)
        self.disruption_budgets: Registry | None = None
        #: issues serviceaccounts/token (set by the server when it has a signing key)
        self.token_requests: TokenIssuing | None = None
        #: where Pod creation finds its ServiceAccount (set by the server only
        #: when it issues tokens: see `admission.admit_service_account`)
        self.service_accounts: admission.ServiceAccounts | None = None
        #: the admission flags (set by the server)
        self.admission_options = admission.DEFAULT_OPTIONS
        #: writes Services with their cluster IP and node port claims (set by the server)
        self.allocator: ServiceAllocator | None = None
        #: where work outlives its request (a deletecollection past its
        #: deadline): the server's task group, cancelled when the server stops
        #: (set by the server; None: such work runs within its request)
        self.background: anyio.abc.TaskGroup | None = None
        #: the kind's rules (`kpy.apiserver.strategy`); subresources read it too
        self.strategy = strategy_for(info, deleting)
        group = f".{info.group}" if info.group else ""
        self._qualified_kind = f"{info.kind}{group}"

    # -- helpers ----------------------------------------------------------------

    def decode(self, data: bytes) -> Message:
        """The request body as this kind's message; BadRequest when it is not one."""
        return decode_body(self.info.message, data, self.info.kind)

    def now(self) -> Timestamp:
        """The registry's clock, as timestamps in objects are written."""
        return Timestamp(seconds=int(self._clock.now()))

    def invalid(self, causes: list[errors.FieldError], name: str) -> errors.Invalid:
        """Invalid for the object `name` of this kind, with `causes`."""
        return errors.Invalid(causes, kind=self._qualified_kind, name=name)

    def _check_valid(self, new: Message, old: Message | None) -> None:
        causes = self.strategy.validate(new, old)
        if causes:
            raise self.invalid(causes, _meta(new).name)
        size = new.ByteSize()
        if size > MAX_OBJECT_BYTES:
            raise errors.TooLarge(
                f'{self.info.group_resource} "{_meta(new).name}" is too large: {size} bytes '
                f"encoded, the limit is {MAX_OBJECT_BYTES}; move bulk data out of the object",
                kind=self.info.group_resource,
                name=_meta(new).name,
            )

    def _scope(self, obj: Message, namespace: str) -> None:
        """Reconciles the object's namespace with the request's: an object
        without one takes the request's, a different one is BadRequest. A
        cluster-scoped object's namespace is dropped, as Kubernetes does, so
        a manifest naming one still applies."""
        m = _meta(obj)
        if not self.info.namespaced:
            m.ClearField("namespace")
            return
        if m.namespace and namespace and m.namespace != namespace:
            raise errors.BadRequest(
                f'the namespace of the object ("{m.namespace}") does not match the namespace '
                f'of the request ("{namespace}")'
            )
        m.namespace = m.namespace or namespace or "default"

    async def _check_namespace(self, namespace: str) -> None:
        if not self.info.namespaced:
            return
        ns = await self._namespaces(namespace)
        if ns is None:
            raise errors.not_found("namespaces", namespace)
        m = _meta(ns)
        if (
            m.HasField("deletion_timestamp")
            or ns.status.phase == "Terminating"  # type: ignore[attr-defined]
            or self._deleting.seen(m.uid, self._clock.now())
        ):
            raise errors.Forbidden(
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated",
                kind="namespaces",
                name=namespace,
            )

    # -- create -----------------------------------------------------------------

    async def create(
        self, obj: Message, *, namespace: str, dry_run: bool = False, uid: str = ""
    ) -> Message:
        """`uid`: the uid the client proposes (used when it is a canonical
        UUID, else one is made), so a client can tell its own write from
        another after losing the answer; the object's own metadata.uid is
        always ignored, as Kubernetes does (a manifest copied from a live
        object must not take over its identity). The registry takes `obj`
        over and fills it in: pass one made for this call (the request's
        decoded body), not one still in use."""
        generate = await self._prepare_create(obj, namespace, uid)
        m = _meta(obj)
        if dry_run:
            # A dry run answers what the create would: AlreadyExists included.
            if await self._exists(m.namespace, m.name):
                raise errors.already_exists(self.info.group_resource, m.name)
            return obj
        for _ in range(_RETRIES):
            try:
                if self.allocator is not None:
                    return await self.allocator.create(obj)
                return await self._store.create(self.info, obj)
            except errors.AlreadyExists:
                if not generate:
                    raise
                m.name = m.generate_name + "".join(secrets.choice(_NAME_CHARS) for _ in range(5))
        raise errors.Timeout(f"could not generate a unique name from {m.generate_name!r}; retry")

    async def create_many(
        self, objs: Sequence[Message]
    ) -> builtins.list[Message | errors.StatusError]:
        """Creates every object of `objs` as `create` would (each in the
        namespace its metadata names, "default" when none), written together
        in as few etcd transactions as the store can (`Store.create_many`).
        Returns, in order, each stored object or the error that refused it:
        one refused object never keeps the others from being written. For
        kinds whose create has no side effects beyond the object itself
        (Events): a kind with an allocator's claims is refused here, and a
        generated name found taken is AlreadyExists rather than tried again.
        The registry takes the objects over, as `create` does."""
        if self.allocator is not None:
            raise errors.MethodNotAllowed(
                f"{self.info.group_resource} cannot be created in a batch: create them one by one"
            )
        results: builtins.list[Message | errors.StatusError] = [*objs]
        ready: builtins.list[int] = []
        for i, obj in enumerate(objs):
            try:
                await self._prepare_create(obj, _meta(obj).namespace, "")
            except errors.StatusError as e:
                results[i] = e
            else:
                ready.append(i)
        written = await self._store.create_many(self.info, [objs[i] for i in ready])
        for i, outcome in zip(ready, written, strict=True):
            results[i] = outcome
        return results

    async def _prepare_create(self, obj: Message, namespace: str, uid: str) -> bool:
        """Makes `obj` what `create` stores: scope, name, uid, server-owned
        metadata, admission, defaults, validation, and a live namespace.
        Returns whether its name was generated."""
        self._scope(obj, namespace)
        m = _meta(obj)
        generate = not m.name and bool(m.generate_name)
        if generate:
            m.name = m.generate_name + "".join(secrets.choice(_NAME_CHARS) for _ in range(5))
        m.uid = uid if _canonical_uuid(uid) else str(uuid.uuid4())
        m.creation_timestamp.CopyFrom(self.now())
        m.generation = 1
        for name in ("resource_version", "deletion_timestamp", "deletion_grace_period_seconds"):
            m.ClearField(name)
        self.strategy.prepare_for_create(obj)
        admission.admit(obj, self.admission_options)
        if self.service_accounts is not None:
            await admission.admit_service_account(obj, self.service_accounts)
        if self.priority_classes is not None:
            await admission.admit_priority(obj, self.priority_classes)
        if self.storage_classes is not None:
            await admission.admit_default_storage_class(obj, self.storage_classes)
        if self.ingress_classes is not None:
            await admission.admit_default_ingress_class(obj, self.ingress_classes)
        self.strategy.default(obj)
        try:
            self._check_valid(obj, None)
        except errors.Invalid as e:
            if not generate:
                raise
            raise self.invalid([_as_generate_name(c, m) for c in e.causes], m.name) from None
        await self._check_namespace(m.namespace)
        return generate

    async def _exists(self, namespace: str, name: str) -> bool:
        try:
            await self._store.get(self.info, namespace, name)
        except errors.NotFound:
            return False
        return True

    # -- reads ------------------------------------------------------------------

    async def get(self, namespace: str, name: str) -> Message:
        """The object's latest state (a consistent read from the watch
        cache); NotFound when absent. Shared: never mutate it."""
        await self._freshness.wait()
        return self._cached(namespace, name)

    async def get_encoded(self, namespace: str, name: str) -> bytes:
        """`get`'s answer in binary protobuf, as a reply carries it. For
        kinds read as stored (no read hook: every built-in kind), the watch
        cache's stored bytes with the version set, neither decoded nor
        encoded (`WatchCache.get_encoded`); a custom kind's, whose read
        defaults follow its CRD's current schema, are `get`'s object encoded."""
        if self.info.on_read is not None:
            return (await self.get(namespace, name)).SerializeToString()
        await self._freshness.wait()
        data = self.cache.get_encoded(namespace, name)
        if data is None:
            raise errors.not_found(self.info.group_resource, name)
        return data

    def _cached(self, namespace: str, name: str) -> Message:
        obj = self.cache.get(namespace, name)
        if obj is None:
            raise errors.not_found(self.info.group_resource, name)
        return self._as_read(obj)

    def _as_read(self, obj: Message) -> Message:
        """`obj` from the cache as a read from storage returns it: a custom
        kind's schema defaults are applied again (to a copy), with the CRD's
        current schema rather than the one of when the cache decoded it."""
        on_read = self.info.on_read
        if on_read is None:
            return obj
        out = copy_message(obj)
        on_read(out)
        return out

    async def _read_current(self, namespace: str, name: str, attempt: int) -> Message:
        """The object a write starts from: a consistent read from the cache
        first; etcd itself after a conflict (the cache may not have seen the
        write that won yet)."""
        if attempt == 0:
            await self._freshness.wait()
            return self._cached(namespace, name)
        return await self._store.get(self.info, namespace, name)

    async def list(
        self,
        namespace: str | None,
        predicate: Predicate,
        *,
        limit: int = 0,
        continue_token: str | None = None,
        resource_version: str = "",
    ) -> ListResult:
        """From the watch cache for resourceVersion "0" (any recent state)
        and for "" (the latest state: a consistent read) without paging;
        else from etcd: a page of the latest state, or exactly the version
        asked. The objects are shared: never mutate them."""
        if await self._from_cache(resource_version, limit, continue_token):
            items, rv = self.cache.list(namespace, None if predicate.empty else predicate)
            if self.info.on_read is not None:
                items = [self._as_read(obj) for obj in items]
            return ListResult(tuple(items), rv)
        revision = _parse_version(resource_version)
        if predicate.empty:
            return await self._store.list(
                self.info,
                namespace,
                limit=limit,
                continue_token=continue_token,
                resource_version=revision,
            )
        return await self._list_filtered(namespace, predicate, limit, continue_token, revision)

    async def list_encoded(
        self,
        namespace: str | None,
        predicate: Predicate,
        *,
        limit: int = 0,
        continue_token: str | None = None,
        resource_version: str = "",
    ) -> EncodedList:
        """`list`'s answer with every item encoded, as a reply carries it.
        What `list` serves from the cache is, for kinds read as stored, the
        stored bytes with their versions, framed already
        (`WatchCache.list_items`: only selectors decode, and only to match);
        pages, exact versions and custom kinds are `list`'s objects encoded."""
        if self.info.on_read is None and await self._from_cache(
            resource_version, limit, continue_token
        ):
            items, rv = self.cache.list_items(namespace, None if predicate.empty else predicate)
            return EncodedList(items, rv)
        result = await self.list(
            namespace,
            predicate,
            limit=limit,
            continue_token=continue_token,
            resource_version=resource_version,
        )
        return EncodedList(
            [list_item(obj.SerializeToString()) for obj in result.items],
            result.resource_version,
            result.continue_token,
            result.remaining,
        )

    async def _from_cache(
        self, resource_version: str, limit: int, continue_token: str | None
    ) -> bool:
        """Whether a list is served from the watch cache: at "0" (any recent
        state) and at "" (the latest: once the cache has caught up, which
        this waits for) without paging."""
        latest = resource_version == "" and not limit
        if (resource_version != "0" and not latest) or continue_token:
            return False
        if latest:
            await self._freshness.wait()
        return True

    async def _list_filtered(
        self,
        namespace: str | None,
        predicate: Predicate,
        limit: int,
        token: str | None,
        revision: int,
    ) -> ListResult:
        """Reads pages until `limit` objects matched (or the end), as
        Kubernetes does. A page never holds more than `limit` objects, and its
        continue token resumes right after the last one returned: when a read
        matched more than needed, the same range is read again at the same
        revision, ending at the last object wanted, so the store's token
        points past it and no match is skipped or repeated."""
        found: list[Message] = []
        while True:
            want = limit - len(found)
            page = await self._store.list(
                self.info,
                namespace,
                limit=max(want, 500) if limit else 0,
                continue_token=token,
                resource_version=0 if token else revision,
            )
            matched = [i for i, obj in enumerate(page.items) if predicate.matches(obj)]
            if limit and len(matched) > want:
                page = await self._store.list(
                    self.info,
                    namespace,
                    limit=matched[want - 1] + 1,
                    continue_token=token,
                    resource_version=0 if token else page.resource_version,
                )
                matched = matched[:want]
            revision = page.resource_version
            found.extend(page.items[i] for i in matched)
            token = page.continue_token
            if token is None or (limit and len(found) >= limit):
                return ListResult(tuple(found), revision, token, 0)

    async def watch(
        self,
        namespace: str | None,
        predicate: Predicate,
        *,
        resource_version: str,
        bookmarks: bool,
    ) -> CacheWatcher:
        initial = resource_version in ("", "0")
        if resource_version == "":
            # A watch "from now" must include every write finished before it.
            await self._freshness.wait()
        return await self.cache.watch(
            namespace=namespace,
            resource_version=0 if initial else _parse_version(resource_version),
            matches=None if predicate.empty else predicate,
            bookmarks=bookmarks,
            initial_events=initial,
        )

    # -- updates ----------------------------------------------------------------

    async def update(
        self,
        obj: Message,
        *,
        namespace: str,
        name: str,
        build: Build | None = None,
        dry_run: bool = False,
    ) -> Message:
        """Replaces the object with `obj`, as the main path does, or as `build`
        does (a subresource: `kpy.apiserver.subresources`)."""
        self._scope(obj, namespace)
        m = _meta(obj)
        if m.name != name:
            raise errors.BadRequest(
                f'the name of the object ("{m.name}") does not match the name of the request '
                f'("{name}")'
            )
        build = build or self._build_update

        def replace(current: Message) -> Message:
            # The object's uid is a precondition, as in Kubernetes: an update
            # meant for an object that was deleted and created again under
            # the same name must not overwrite its successor.
            if m.uid and m.uid != _meta(current).uid:
                raise errors.conflict(
                    self.info.group_resource,
                    name,
                    f"Precondition failed: UID in precondition: {m.uid}, "
                    f"UID in object meta: {_meta(current).uid}",
                )
            return build(copy_message(obj), current)

        return await self.write(
            m.namespace, name, replace, expected=m.resource_version, dry_run=dry_run
        )

    async def patch(
        self,
        *,
        namespace: str,
        name: str,
        patch_type: str,
        body: bytes,
        build: Build | None = None,
        view: Callable[[Message], Message] | None = None,
        message_type: type[Message] | None = None,
        dry_run: bool = False,
    ) -> Message:
        """Patches the object as the main path does, or a subresource's
        `view` of it (a message of `message_type`), written back by `build`."""
        document = patch.read_patch(patch_type, body)
        build = build or self._build_update
        shown = view or (lambda obj: obj)
        patched_type = message_type or self.info.message

        def apply(current: Message) -> Message:
            target = codec.to_dict(shown(current))
            patched = patch.apply_patch(patch_type, target, document, patched_type)
            try:
                obj = codec.from_dict(patched_type, patched)
            except errors.Invalid as e:
                raise self.invalid(e.causes, name) from None
            return build(obj, current)

        expected = ""
        if isinstance(document, dict):
            expected = str(document.get("metadata", {}).get("resourceVersion") or "")
        return await self.write(namespace, name, apply, expected=expected, dry_run=dry_run)

    def subresources(self) -> tuple[str, ...]:
        """The subresources of the kind, as discovery lists them."""
        return self.strategy.subresources()

    def _build_update(self, new: Message, current: Message) -> Message:
        m, old = _meta(new), _meta(current)
        if not m.uid:
            m.uid = old.uid
        # Kubernetes ignores changes to creationTimestamp rather than refusing them.
        m.ClearField("creation_timestamp")
        if old.HasField("creation_timestamp"):
            m.creation_timestamp.CopyFrom(old.creation_timestamp)
        # Only a delete sets these; an update carries them over unchanged.
        m.ClearField("deletion_timestamp")
        m.ClearField("deletion_grace_period_seconds")
        if old.HasField("deletion_timestamp"):
            m.deletion_timestamp.CopyFrom(old.deletion_timestamp)
        if old.HasField("deletion_grace_period_seconds"):
            m.deletion_grace_period_seconds = old.deletion_grace_period_seconds
        m.generation = old.generation
        self.strategy.prepare_for_update(new, current)
        admission.admit_update(new, current)
        self.strategy.default(new)
        if self.strategy.spec_changed(new, current):
            m.generation = old.generation + 1
        return new

    async def write(
        self,
        namespace: str,
        name: str,
        build: Callable[[Message], Message],
        *,
        expected: str,
        dry_run: bool,
    ) -> Message:
        """Read, build, validate, compare-and-swap; see the module docstring."""
        for attempt in range(_RETRIES):
            current = await self._read_current(namespace, name, attempt)
            version = _meta(current).resource_version
            if expected and expected != version:
                raise errors.conflict(self.info.group_resource, name, _STALE)
            new = build(current)
            _meta(new).resource_version = version
            if new == current:
                return current
            self._check_valid(new, current)
            if self.storage_classes is not None:
                await admission.admit_claim_resize(new, current, self.storage_classes)
            if dry_run:
                return new
            try:
                if self._finished(new):
                    return await self._remove(namespace, name, current)
                if self.allocator is not None:
                    return await self.allocator.update(new, current)
                return await self._store.update(self.info, new)
            except errors.Conflict:
                if expected:
                    raise
        raise errors.conflict(self.info.group_resource, name, _BUSY)

    def _finished(self, obj: Message) -> bool:
        """A deleting object whose last finalizer is gone and whose grace is over."""
        m = _meta(obj)
        return (
            m.HasField("deletion_timestamp")
            and not m.deletion_grace_period_seconds
            and not self.strategy.pending_finalizers(obj)
        )

    async def _remove(self, namespace: str, name: str, current: Message) -> Message:
        from kpy.api.meta.v1 import Preconditions

        m = _meta(current)
        pre = Preconditions(uid=m.uid, resource_version=m.resource_version)
        removed = await self._store.delete(self.info, namespace, name, preconditions=pre)
        if self.allocator is not None:
            await self.allocator.release(removed)
        return removed

    # -- delete -----------------------------------------------------------------

    async def delete(
        self,
        namespace: str,
        name: str,
        options: DeleteOptions,
        *,
        dry_run: bool = False,
        as_node: str = "",
    ) -> Deleted:
        """`as_node`: the node agent the caller speaks for, if any (only the
        agent of a mirror pod's node may delete it)."""
        policy = options.propagation_policy
        if policy not in _POLICIES:
            raise self.invalid(
                [
                    errors.FieldError(
                        "propagationPolicy",
                        errors.NOT_SUPPORTED,
                        f'unsupported value "{policy}": supported values: '
                        '"Background", "Foreground", "Orphan"',
                    )
                ],
                name,
            )
        if options.HasField("grace_period_seconds") and options.grace_period_seconds < 0:
            raise errors.BadRequest("gracePeriodSeconds must not be negative")
        dry_run = dry_run or "All" in options.dry_run
        for attempt in range(_RETRIES):
            current = await self._read_current(namespace, name, attempt)
            _check_preconditions(self.info, current, options)
            self.strategy.check_delete(current, as_node)
            new = self._mark_deleted(current, options)
            if dry_run or (new is not None and new == current):
                return Deleted(current if new is None else new, new is None)
            try:
                if new is None:
                    result = Deleted(await self._remove(namespace, name, current), True)
                else:
                    result = Deleted(await self._store.update(self.info, new), False)
            except errors.Conflict:
                continue
            self.strategy.after_delete(current, self._clock.now())
            return result
        raise errors.conflict(self.info.group_resource, name, _BUSY)

    def _mark_deleted(self, current: Message, options: DeleteOptions) -> Message | None:
        """The object as a pending delete leaves it, or None when it goes now."""
        grace = self.strategy.grace_period(current, options)
        new = copy_message(current)
        m = _meta(new)
        if not m.HasField("deletion_timestamp"):
            finalizer = {"Orphan": ORPHAN_FINALIZER, "Foreground": FOREGROUND_FINALIZER}.get(
                options.propagation_policy
            )
            if finalizer and finalizer not in m.finalizers:
                m.finalizers.append(finalizer)
        if grace == 0 and not self.strategy.pending_finalizers(new):
            return None
        if m.HasField("deletion_timestamp"):
            # Already going: a delete may only shorten the grace period.
            if m.deletion_grace_period_seconds and grace < m.deletion_grace_period_seconds:
                m.deletion_timestamp.seconds -= m.deletion_grace_period_seconds - grace
                m.deletion_grace_period_seconds = grace
            return new
        m.deletion_timestamp.CopyFrom(self.now())
        m.deletion_timestamp.seconds += grace
        m.deletion_grace_period_seconds = grace
        m.generation += 1
        self.strategy.mark_deleting(new)
        return new

    async def delete_collection(
        self,
        namespace: str | None,
        predicate: Predicate,
        options: DeleteOptions,
        *,
        dry_run: bool = False,
        deadline: float | None = None,
    ) -> builtins.list[Message]:
        """Deletes every matching object as `delete` would (finalizers and
        grace periods kept: such objects are marked, not removed), and
        returns their last states. Objects gone meanwhile, and mirror pods
        (only their node's agent removes them), are skipped.

        The deletes run `_COLLECTION_WORKERS` at a time, each its own guarded
        etcd write, so every object gets its own revision and its own DELETED
        event. `deadline`: seconds the caller waits. When most of it is spent
        before the work is done, the work goes on in the background until it
        is (Kubernetes does not abandon it either) and Timeout says how far it
        got; a request cancelled by its client does not stop it either."""
        listed = await self.list(namespace, predicate)
        progress = _CollectionProgress(len(listed.items))
        if self.background is None:
            return await self._delete_all(listed.items, options, dry_run, progress)
        outcome = _CollectionOutcome()
        self.background.start_soon(
            self._delete_all_into, listed.items, options, dry_run, progress, outcome
        )
        budget = math.inf if deadline is None else max(deadline * 0.9 - 0.5, 0.1)
        with anyio.move_on_after(budget):
            await outcome.done.wait()
        if not outcome.done.is_set():
            raise errors.Timeout(
                f"deleting {progress.total} {self.info.group_resource} takes longer than the "
                f"request's deadline: {progress.done} done so far; the server goes on deleting "
                "the rest: list them to follow it",
                kind=self.info.group_resource,
            )
        if outcome.error is not None:
            raise outcome.error
        return outcome.items

    async def _delete_all_into(
        self,
        items: tuple[Message, ...],
        options: DeleteOptions,
        dry_run: bool,
        progress: _CollectionProgress,
        outcome: _CollectionOutcome,
    ) -> None:
        """`_delete_all` as background work: its result (or the error that
        stopped it, also logged, since its request may be gone) goes to
        `outcome`."""
        try:
            outcome.items = await self._delete_all(items, options, dry_run, progress)
        except errors.StatusError as e:
            outcome.error = e
            log.error("deleting a collection of %s failed: %s", self.info.group_resource, e)
        finally:
            outcome.done.set()

    async def _delete_all(
        self,
        items: tuple[Message, ...],
        options: DeleteOptions,
        dry_run: bool,
        progress: _CollectionProgress,
    ) -> builtins.list[Message]:
        results: dict[int, Message] = {}
        failed: builtins.list[errors.StatusError] = []  # the first error stops the work
        todo = iter(enumerate(items))

        async def worker() -> None:
            for index, obj in todo:
                if failed:
                    return
                m = _meta(obj)
                try:
                    result = await self.delete(m.namespace, m.name, options, dry_run=dry_run)
                except errors.NotFound:
                    continue  # deleted meanwhile
                except errors.Forbidden:
                    continue  # mirror pods: only their node's agent removes them
                except errors.StatusError as e:
                    failed.append(e)
                    return
                finally:
                    progress.done += 1
                results[index] = result.object

        async with anyio.create_task_group() as tg:
            for _ in range(min(_COLLECTION_WORKERS, len(items))):
                tg.start_soon(worker)
        if failed:
            raise failed[0]
        return [results[i] for i in sorted(results)]


@dataclass(slots=True)
class _CollectionProgress:
    total: int
    done: int = 0


@dataclass(slots=True)
class _CollectionOutcome:
    done: anyio.Event = field(default_factory=anyio.Event)
    items: builtins.list[Message] = field(default_factory=list)
    error: errors.StatusError | None = None


_COLLECTION_WORKERS: Final = 32
"""Deletes of one deletecollection in flight at once: enough to keep etcd's
pipeline full (it batches concurrent writes into one disk sync)."""


_STALE: Final = (
    "the object has been modified; please apply your changes to the latest version and try again"
)
_BUSY: Final = "the object is being changed too often to apply this change; retry"


def decode_body(message_type: type[M], data: bytes, kind: str) -> M:
    """`data` parsed as `message_type`; BadRequest naming `kind` when it is
    not a valid encoding of it (a malformed request, never an internal error)."""
    try:
        return message_type.FromString(data)
    except DecodeError as e:
        raise errors.BadRequest(f"the request body is not a valid {kind} message: {e}") from None


def _as_generate_name(cause: errors.FieldError, m: ObjectMeta) -> errors.FieldError:
    """A problem with a generated name is a problem with the prefix the user
    wrote: report it on metadata.generateName, quoting the prefix."""
    if cause.path != "metadata.name":
        return cause
    detail = cause.detail.replace(f'"{m.name}"', f'"{m.generate_name}"')
    return errors.FieldError("metadata.generateName", cause.reason, detail)


def _canonical_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _parse_version(value: str) -> int:
    if not value:
        return 0
    if not value.isdigit():
        raise errors.BadRequest(f'resourceVersion "{value}" is not a valid version')
    return int(value)


def no_subresource(info: ResourceInfo, subresource: str) -> errors.MethodNotAllowed:
    return errors.MethodNotAllowed(
        f"{info.group_resource} has no {subresource!r} subresource",
        kind=info.group_resource,
    )


def _check_preconditions(info: ResourceInfo, current: Message, options: DeleteOptions) -> None:
    if not options.HasField("preconditions"):
        return
    pre, m = options.preconditions, _meta(current)
    for label, want, have in (
        ("UID", pre.uid if pre.HasField("uid") else None, m.uid),
        (
            "ResourceVersion",
            pre.resource_version if pre.HasField("resource_version") else None,
            m.resource_version,
        ),
    ):
        if want is not None and want != have:
            raise errors.conflict(
                info.group_resource,
                m.name,
                f"Precondition failed: {label} in precondition: {want}, "
                f"{label} in object meta: {have}",
            )
