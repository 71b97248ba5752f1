"""The generic registry: every verb for one resource, over the store.

One `Registry` serves one kind (Kubernetes' generic `registry.Store`). Every
write goes the same way: read the current object, build the new one from it
(server-owned metadata kept, the kind's `Strategy` applied, admission on
create, defaults, then validation of the whole result), and write it with a
compare-and-swap on the version read. Nothing is written unless every check
passed, so a refused request leaves no trace; a dry run stops right before
the write.

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

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

import anyio
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

from kpy.api import codec, errors
from kpy.api.autoscaling.v1 import Scale
from kpy.api.core.v1 import Binding, PodCondition
from kpy.api.defaults import set_defaults
from kpy.api.labels import selector_from_label_selector, selector_from_set
from kpy.api.validation import validate, validate_update
from kpy.apiserver import admission, patch
from kpy.apiserver.strategy import strategy_for
from kpy.storage import MAX_OBJECT_BYTES, ListResult, Store

if TYPE_CHECKING:
    import builtins  # `list` is a verb here: annotations in the class say builtins.list

    from kpy.api.meta.v1 import DeleteOptions, ObjectMeta
    from kpy.api.scheme import ResourceInfo
    from kpy.api.selection import Predicate
    from kpy.apiserver.watch_cache import CacheWatcher, WatchCache

log = logging.getLogger("kpy.apiserver")

M = TypeVar("M", bound=Message)
NamespaceLookup = Callable[[str], Awaitable[Message | None]]
Clock = Callable[[], float]

ORPHAN_FINALIZER: Final = "orphan"
FOREGROUND_FINALIZER: Final = "foregroundDeletion"
_POLICIES: Final = ("", "Background", "Foreground", "Orphan")
_NAME_CHARS: Final = "bcdfghjklmnpqrstvwxz2456789"
_RETRIES: Final = 16  # conflicts an unconditional write retries before giving up


def _meta(obj: Message) -> ObjectMeta:
    return obj.metadata  # type: ignore[attr-defined,no-any-return]


def _copy(obj: M) -> M:
    out = type(obj)()
    out.CopyFrom(obj)
    return out


class NamespacesBeingDeleted:
    """The uids of namespaces whose delete this process wrote, for `ttl`
    seconds: long enough for every watch cache to have seen it.

    Namespace lookups read a watch cache, which may not show a delete that
    was just written; without this record a create arriving right after the
    delete could land in a namespace being terminated (Kubernetes'
    NamespaceLifecycle admission keeps the same record for the same reason).
    Keyed by uid, so a namespace re-created under the same name is not
    mistaken for the old one. A delete written by another API server is seen
    once this server's cache has it."""

    def __init__(self, ttl: float = 30.0) -> None:
        self._ttl = ttl
        self._until: dict[str, float] = {}

    def add(self, uid: str, now: float) -> None:
        self._until[uid] = now + self._ttl

    def seen(self, uid: str, now: float) -> bool:
        for expired in [u for u, until in self._until.items() if until <= now]:
            del self._until[expired]
        return uid in self._until


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
        clock: Clock = time.time,
        deleting: NamespacesBeingDeleted,
    ) -> None:
        self.info = info
        self.cache = cache
        self._store = store
        self._namespaces = namespaces
        self._clock = clock
        self._deleting = deleting  # one per server: namespaces writes, all read
        #: where Pod creation resolves priorityClassName (set by the server)
        self.priority_classes: admission.PriorityClasses | None = None
        self._strategy = strategy_for(info.kind)
        group = f".{info.group}" if info.group else ""
        self._qualified_kind = f"{info.kind}{group}"

    # -- helpers ----------------------------------------------------------------

    def decode(self, data: bytes) -> Message:
        """The request body as this kind's message; BadRequest when it is not one."""
        return decode_body(self.info.message, data, self.info.kind)

    def _now(self) -> Timestamp:
        return Timestamp(seconds=int(self._clock()))

    def _invalid(self, causes: list[errors.FieldError], name: str) -> errors.Invalid:
        return errors.Invalid(causes, kind=self._qualified_kind, name=name)

    def _check_valid(self, new: Message, old: Message | None) -> None:
        causes = validate(new) if old is None else validate_update(new, old)
        if causes:
            raise self._invalid(causes, _meta(new).name)
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
            or self._deleting.seen(m.uid, self._clock())
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
        object must not take over its identity)."""
        obj = _copy(obj)
        self._scope(obj, namespace)
        m = _meta(obj)
        generate = not m.name and bool(m.generate_name)
        if generate:
            m.name = m.generate_name + "".join(secrets.choice(_NAME_CHARS) for _ in range(5))
        m.uid = uid if _canonical_uuid(uid) else str(uuid.uuid4())
        m.creation_timestamp.CopyFrom(self._now())
        m.generation = 1
        for field in ("resource_version", "deletion_timestamp", "deletion_grace_period_seconds"):
            m.ClearField(field)
        self._strategy.prepare_for_create(obj)
        admission.admit(obj)
        if self.priority_classes is not None:
            await admission.admit_priority(obj, self.priority_classes)
        set_defaults(obj)
        try:
            self._check_valid(obj, None)
        except errors.Invalid as e:
            if not generate:
                raise
            raise self._invalid([_as_generate_name(c, m) for c in e.causes], m.name) from None
        await self._check_namespace(m.namespace)
        if dry_run:
            # A dry run answers what the create would: AlreadyExists included.
            if await self._exists(m.namespace, m.name):
                raise errors.already_exists(self.info.group_resource, m.name)
            return obj
        for _ in range(_RETRIES):
            try:
                return await self._store.create(self.info, obj)
            except errors.AlreadyExists:
                if not generate:
                    raise
                m.name = m.generate_name + "".join(secrets.choice(_NAME_CHARS) for _ in range(5))
        raise errors.Timeout(f"could not generate a unique name from {m.generate_name!r}; retry")

    async def _exists(self, namespace: str, name: str) -> bool:
        try:
            await self._store.get(self.info, namespace, name)
        except errors.NotFound:
            return False
        return True

    # -- reads ------------------------------------------------------------------

    async def get(self, namespace: str, name: str) -> Message:
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
        """From the watch cache for resourceVersion "0" (any recent state),
        else from etcd: the latest state, or exactly the version asked."""
        if resource_version == "0" and not continue_token:
            items, rv = self.cache.list(namespace, None if predicate.empty else predicate)
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
            await self._cache_consistent()
        return await self.cache.watch(
            namespace=namespace,
            resource_version=0 if initial else _parse_version(resource_version),
            matches=None if predicate.empty else predicate,
            bookmarks=bookmarks,
            initial_events=initial,
        )

    async def _cache_consistent(self) -> None:
        """Returns once the watch cache holds the latest state of the resource,
        so that a watch "from now" (resourceVersion "") includes every write
        that finished before it. A cache that already holds as many objects as
        etcd, with the same newest version, is current; otherwise it is
        behind on writes its etcd watch is about to deliver, and we wait."""
        stat = await self._store.stat(self.info)
        if self.cache.resource_version >= stat.revision:
            return
        objects, _ = self.cache.list()
        newest = max((int(_meta(o).resource_version) for o in objects), default=0)
        if len(objects) != stat.count or newest != stat.newest:
            await self.cache.wait_until_fresh(stat.revision)

    # -- updates ----------------------------------------------------------------

    async def update(
        self,
        obj: Message,
        *,
        namespace: str,
        name: str,
        subresource: str = "",
        dry_run: bool = False,
    ) -> Message:
        self._scope(obj, namespace)
        m = _meta(obj)
        if m.name != name:
            raise errors.BadRequest(
                f'the name of the object ("{m.name}") does not match the name of the request '
                f'("{name}")'
            )
        build = self._builder(subresource)

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
            return build(_copy(obj), current)

        return await self._write(
            m.namespace, name, replace, expected=m.resource_version, dry_run=dry_run
        )

    async def patch(
        self,
        *,
        namespace: str,
        name: str,
        patch_type: str,
        body: bytes,
        subresource: str = "",
        dry_run: bool = False,
    ) -> Message:
        document = _parse_patch(patch_type, body)
        build = self._builder(subresource)
        view = self.scale_of if subresource == "scale" else (lambda obj: obj)
        message_type: type[Message] = Scale if subresource == "scale" else self.info.message

        def apply(current: Message) -> Message:
            patched = _apply_patch(patch_type, codec.to_dict(view(current)), document, message_type)
            try:
                obj = codec.from_dict(message_type, patched)
            except errors.Invalid as e:
                raise self._invalid(e.causes, name) from None
            return build(obj, current)

        expected = ""
        if isinstance(document, dict):
            expected = str(document.get("metadata", {}).get("resourceVersion") or "")
        return await self._write(namespace, name, apply, expected=expected, dry_run=dry_run)

    def subresources(self) -> builtins.list[str]:
        found = []
        if self._strategy.status_subresource:
            found.append("status")
        if self._strategy.scalable:
            found.append("scale")
        if self.info.kind == "Pod":
            found += ["binding", "log", "exec"]
        if self.info.kind == "Namespace":
            found.append("finalize")
        return found

    def _builder(self, subresource: str) -> Callable[[Message, Message], Message]:
        builders: dict[str, Callable[[Message, Message], Message]] = {"": self._build_update}
        if self._strategy.status_subresource:
            builders["status"] = self._build_status
        if self._strategy.scalable:
            builders["scale"] = self._build_scale
        if self.info.kind == "Namespace":
            builders["finalize"] = self._build_finalize
        try:
            return builders[subresource]
        except KeyError:
            raise _no_subresource(self.info, subresource) from None

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
        self._strategy.prepare_for_update(new, current)
        admission.admit_update(new, current)
        set_defaults(new)
        if self._strategy.spec_changed(new, current):
            m.generation = old.generation + 1
        return new

    def _build_status(self, new: Message, current: Message) -> Message:
        out = _copy(current)
        status = new.status  # type: ignore[attr-defined]
        out.status.CopyFrom(status)  # type: ignore[attr-defined]
        set_defaults(out)
        return out

    def _build_finalize(self, new: Message, current: Message) -> Message:
        out = _copy(current)
        del out.spec.finalizers[:]  # type: ignore[attr-defined]
        out.spec.finalizers.extend(new.spec.finalizers)  # type: ignore[attr-defined]
        return out

    def _build_scale(self, scale: Message, current: Message) -> Message:
        if not isinstance(scale, Scale):
            raise errors.BadRequest("the scale subresource takes an autoscaling/v1 Scale")
        out = _copy(current)
        out.spec.replicas = scale.spec.replicas  # type: ignore[attr-defined]
        if self._strategy.spec_changed(out, current):
            _meta(out).generation = _meta(current).generation + 1
        return out

    async def _write(
        self,
        namespace: str,
        name: str,
        build: Callable[[Message], Message],
        *,
        expected: str,
        dry_run: bool,
    ) -> Message:
        """Read, build, validate, compare-and-swap; see the module docstring."""
        for _ in range(_RETRIES):
            current = await self._store.get(self.info, namespace, name)
            version = _meta(current).resource_version
            if expected and expected != version:
                raise errors.conflict(self.info.group_resource, name, _STALE)
            new = build(current)
            _meta(new).resource_version = version
            if new == current:
                return current
            self._check_valid(new, current)
            if dry_run:
                return new
            try:
                if self._finished(new):
                    return await self._remove(namespace, name, current)
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
            and not self._strategy.pending_finalizers(obj)
        )

    async def _remove(self, namespace: str, name: str, current: Message) -> Message:
        from kpy.api.meta.v1 import Preconditions

        m = _meta(current)
        pre = Preconditions(uid=m.uid, resource_version=m.resource_version)
        return await self._store.delete(self.info, namespace, name, preconditions=pre)

    # -- subresources -----------------------------------------------------------

    def scale_of(self, obj: Message) -> Scale:
        if not self._strategy.scalable:
            raise _no_subresource(self.info, "scale")
        m = _meta(obj)
        scale = Scale()
        scale.metadata.name = m.name
        scale.metadata.namespace = m.namespace
        scale.metadata.uid = m.uid
        scale.metadata.resource_version = m.resource_version
        scale.metadata.creation_timestamp.CopyFrom(m.creation_timestamp)
        spec, status = obj.spec, obj.status  # type: ignore[attr-defined]
        scale.spec.replicas = spec.replicas
        scale.status.replicas = status.replicas
        if self.info.kind == "ReplicationController":
            scale.status.selector = str(selector_from_set(dict(spec.selector)))
        else:
            scale.status.selector = str(selector_from_label_selector(spec.selector))
        return scale

    async def get_scale(self, namespace: str, name: str) -> Scale:
        return self.scale_of(await self.get(namespace, name))

    async def update_scale(
        self, scale: Scale, *, namespace: str, name: str, dry_run: bool = False
    ) -> Scale:
        if scale.metadata.name and scale.metadata.name != name:
            raise errors.BadRequest(f'the Scale names "{scale.metadata.name}", not "{name}"')
        obj = await self._write(
            namespace,
            name,
            lambda current: self._build_scale(scale, current),
            expected=scale.metadata.resource_version,
            dry_run=dry_run,
        )
        return self.scale_of(obj)

    async def bind(
        self, binding: Binding, *, namespace: str, name: str, dry_run: bool = False
    ) -> Message:
        """pods/binding: sets spec.nodeName once and marks the pod scheduled."""
        if self.info.kind != "Pod":
            raise _no_subresource(self.info, "binding")
        target = binding.target
        if target.kind not in ("", "Node") or not target.name:
            raise self._invalid(
                [errors.FieldError("target", errors.INVALID, "must name a Node")], name
            )
        if binding.metadata.name and binding.metadata.name != name:
            raise errors.BadRequest(
                f'the Binding names pod "{binding.metadata.name}", not "{name}"'
            )

        def assign(current: Any) -> Message:
            pod = current
            if pod.metadata.HasField("deletion_timestamp"):
                raise errors.conflict(
                    "pods", name, "the pod is being deleted, cannot be assigned to a host"
                )
            if pod.spec.node_name:
                raise errors.conflict(
                    "pods", name, f'pod {name} is already assigned to node "{pod.spec.node_name}"'
                )
            out = _copy(pod)
            out.spec.node_name = target.name
            _set_scheduled(out, self._now())
            return out  # type: ignore[no-any-return]

        return await self._write(
            namespace,
            name,
            assign,
            expected=binding.metadata.resource_version,
            dry_run=dry_run,
        )

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
            raise self._invalid(
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
        for _ in range(_RETRIES):
            current = await self._store.get(self.info, namespace, name)
            _check_preconditions(self.info, current, options)
            self._strategy.check_delete(current, as_node)
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
            if self.info.kind == "Namespace":
                self._deleting.add(_meta(current).uid, self._clock())
            return result
        raise errors.conflict(self.info.group_resource, name, _BUSY)

    def _mark_deleted(self, current: Message, options: DeleteOptions) -> Message | None:
        """The object as a pending delete leaves it, or None when it goes now."""
        grace = self._strategy.grace_period(current, options)
        new = _copy(current)
        m = _meta(new)
        if not m.HasField("deletion_timestamp"):
            finalizer = {"Orphan": ORPHAN_FINALIZER, "Foreground": FOREGROUND_FINALIZER}.get(
                options.propagation_policy
            )
            if finalizer and finalizer not in m.finalizers:
                m.finalizers.append(finalizer)
        if grace == 0 and not self._strategy.pending_finalizers(new):
            return None
        if m.HasField("deletion_timestamp"):
            # Already going: a delete may only shorten the grace period.
            if m.deletion_grace_period_seconds and grace < m.deletion_grace_period_seconds:
                m.deletion_timestamp.seconds -= m.deletion_grace_period_seconds - grace
                m.deletion_grace_period_seconds = grace
            return new
        m.deletion_timestamp.CopyFrom(self._now())
        m.deletion_timestamp.seconds += grace
        m.deletion_grace_period_seconds = grace
        m.generation += 1
        self._strategy.mark_deleting(new)
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
        work = asyncio.ensure_future(self._delete_all(listed.items, options, dry_run, progress))
        _BACKGROUND.add(work)
        work.add_done_callback(self._background_done)
        budget = None if deadline is None else max(deadline * 0.9 - 0.5, 0.1)
        try:
            done: builtins.list[Message] = await asyncio.wait_for(asyncio.shield(work), budget)
        except TimeoutError:
            raise errors.Timeout(
                f"deleting {progress.total} {self.info.group_resource} takes longer than the "
                f"request's deadline: {progress.done} done so far; the server goes on deleting "
                "the rest: list them to follow it",
                kind=self.info.group_resource,
            ) from None
        return done

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

    def _background_done(self, work: asyncio.Future[builtins.list[Message]]) -> None:
        _BACKGROUND.discard(work)
        if not work.cancelled() and work.exception() is not None:
            log.error(
                "deleting a collection of %s failed: %s",
                self.info.group_resource,
                work.exception(),
            )


@dataclass(slots=True)
class _CollectionProgress:
    total: int
    done: int = 0


_COLLECTION_WORKERS: Final = 32
"""Deletes of one deletecollection in flight at once: enough to keep etcd's
pipeline full (it batches concurrent writes into one disk sync)."""

_BACKGROUND: set[asyncio.Future[Any]] = set()
"""Collections being deleted after their request ended; held here so that
they run to the end (the event loop keeps only weak references)."""


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


def _no_subresource(info: ResourceInfo, subresource: str) -> errors.MethodNotAllowed:
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


def _parse_patch(patch_type: str, body: bytes) -> Any:
    if patch_type not in ("merge", "strategic", "json"):
        raise errors.BadRequest(
            f'unsupported patch type "{patch_type}": use "merge", "strategic" or "json"'
        )
    try:
        document = patch.parse_body(body)
    except patch.PatchTooLarge as e:
        raise errors.TooLarge(str(e)) from None
    except patch.PatchError as e:
        raise errors.BadRequest(str(e)) from None
    want = list if patch_type == "json" else dict
    if not isinstance(document, want):
        shape = "a list of operations" if patch_type == "json" else "a JSON object"
        raise errors.BadRequest(f"a {patch_type} patch must be {shape}")
    return document


def _apply_patch(patch_type: str, target: Any, document: Any, message_type: type[Message]) -> Any:
    try:
        if patch_type == "merge":
            return patch.merge_patch(target, document)
        if patch_type == "json":
            return patch.json_patch(target, document)
        return patch.strategic_merge_patch(target, document, message_type)
    except patch.PatchTooLarge as e:
        raise errors.TooLarge(f"the patch cannot be applied: {e}") from None
    except patch.PatchError as e:
        raise errors.BadRequest(f"the patch cannot be applied: {e}") from None


def _set_scheduled(pod: Any, now: Timestamp) -> None:
    for condition in pod.status.conditions:
        if condition.type == "PodScheduled":
            if condition.status != "True":
                condition.status = "True"
                condition.last_transition_time.CopyFrom(now)
            condition.ClearField("reason")
            condition.ClearField("message")
            return
    pod.status.conditions.append(
        PodCondition(type="PodScheduled", status="True", last_transition_time=now)
    )
