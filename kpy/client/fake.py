"""An in-memory client for testing controllers (client-go's fake clientset).

`FakeClient` satisfies `kpy.client.protocol.ClientProtocol`, so a controller
built for the real `Client` runs on it unchanged, with no etcd and no
server. Tests seed objects with `add`, run a controller's `sync`, and assert
on `actions` (what the controller did), as Kubernetes' controller tests do.

What it keeps of the API server, because controllers depend on it:
- objects keyed by (kind, namespace, name); `resourceVersion` is one global
  counter bumped by every write, like etcd's revision; an update or patch
  carrying a stale resourceVersion (or another object's uid) is Conflict;
- create sets uid, creationTimestamp, generation 1 and resourceVersion,
  fills `generateName` (suffixes are deterministic: `-bcdfb`, `-bcdfc`, ...),
  clears the status of kinds written through a status subresource, runs the
  real defaulting (`kpy.api.defaults`) and validation (`kpy.api.validation`),
  and refuses a taken name with AlreadyExists;
- update keeps server-owned metadata and the stored status, and bumps
  generation only when the spec changed; the status subresource writes only
  the status; an update that changes nothing writes nothing;
- delete honours preconditions, finalizers (the object gets a
  deletionTimestamp and stays until an update empties them), the Orphan
  and Foreground policies (recorded as finalizers) and the grace period of
  pods bound to a node;
- list and watch filter by namespace, label and field selectors with the
  server's own `kpy.api.selection`; a watch replays every change after its
  resourceVersion (from "": ADDED for each current object first), so
  informers run on a FakeClient;
- request_token answers a TokenRequest with a fake token
  (`fake-token-<n>-<namespace>-<name>`) once the ServiceAccount (and a
  bound pod, same uid) is stored, with the server's expiration rules;
- patch: merge patches (RFC 7386), JSON patches and strategic merge patches
  through the same pure functions as the server (`kpy.api.patch`), with
  its bounds and its errors.

Simplified, on purpose: namespaces need not exist and are never terminating;
no admission (default tolerations, priority classes, Job selectors); list
returns one page whatever `limit` says; the history never compacts (no
Expired); no bookmarks; `dry_run` validates and returns without storing;
object size limits are not checked; custom kinds (kpy.api.unstructured) have
no CRD schema here, so their fields are neither defaulted nor validated (only
their metadata is checked).

Recording: every call appends an `Action` to `actions`, reads included
(`writes()` leaves them out, as tests usually want). Reactors (client-go's
`PrependReactor`) see the action before the in-memory store does: one may
raise to make the call fail, return an object to answer in its place (get,
create, update, patch, delete, bind; list, watch and delete-collection only
take failures), or return None to let the call proceed.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Generic, Self, TypeVar

import anyio
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from kpy.api import codec, defaults, errors, names, validation
from kpy.api.authentication.v1 import TokenRequest
from kpy.api.core.v1 import Pod, PodCondition, ServiceAccount
from kpy.api.patch import apply_patch, read_patch
from kpy.api.scheme import ResourceInfo, Scheme, scheme
from kpy.api.selection import Predicate, parse_predicate
from kpy.api.unstructured import is_custom
from kpy.client.client import Deleted, ObjectList, PatchType, WatchEvent
from kpy.rpc.apiserver import v1 as api

if TYPE_CHECKING:
    import builtins
    from collections.abc import Sequence
    from types import TracebackType

    from kpy.api.core.v1 import Event
    from kpy.api.meta.v1 import ObjectMeta, Preconditions

__all__ = ["READ_VERBS", "Action", "FakeClient", "Reaction"]

M = TypeVar("M", bound=Message)

READ_VERBS: Final = frozenset({"get", "list", "watch"})

Reaction = Callable[["Action"], Message | None]
"""A reactor's answer to an action: raise to fail the call, return an object
to answer in the store's place, or None to let the store handle it."""

_NAME_CHARS: Final = "bcdfghjklmnpqrstvwxz2456789"
_STALE: Final = (
    "the object has been modified; please apply your changes to the latest version and try again"
)
_POLICY_FINALIZERS: Final = {"Orphan": "orphan", "Foreground": "foregroundDeletion"}


@dataclass(frozen=True, slots=True)
class Action:
    """One call made on a FakeClient (client-go's Action).

    `verb` is the client's: get, list, watch, create, create-events,
    update, patch, delete, delete-collection; a bind is a create of the pod's `binding`
    subresource (its `object` the node's name), and update_status an update
    of `status`. `object` is a copy of what the caller sent (create,
    update), `patch` the parsed patch document."""

    verb: str
    kind: str
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    object: Any = None
    patch: Any = None
    patch_type: str = ""

    def matches(self, verb: str, kind: str) -> bool:
        """Whether this is `verb` on `kind` ("*" matches any)."""
        return verb in ("*", self.verb) and kind in ("*", self.kind)

    def __str__(self) -> str:
        """`verb Kind namespace/name (subresource)`; a create by generateName
        shows the prefix and `*` for the name the store picks."""
        name = self.name
        if not name and self.verb == "create" and self.object is not None:
            prefix = getattr(getattr(self.object, "metadata", None), "generate_name", "")
            name = f"{prefix}*" if prefix else ""
        where = f"{self.namespace}/{name}" if self.namespace else name
        sub = f" ({self.subresource})" if self.subresource else ""
        return f"{self.verb} {self.kind} {where}{sub}".rstrip()


@dataclass(slots=True)
class _Reactor:
    verb: str
    kind: str
    reaction: Reaction


@dataclass(frozen=True, slots=True)
class _Change:
    revision: int
    kind: str
    type: str  # ADDED, MODIFIED, DELETED
    object: Any


@dataclass(slots=True)
class FakeClient:
    """See the module docstring. `now` gives wall-clock seconds for
    creationTimestamp and deletionTimestamp."""

    namespace: str = "default"
    now: Callable[[], float] = time.time
    using: Scheme = scheme
    actions: list[Action] = field(default_factory=list)
    _reactors: list[_Reactor] = field(default_factory=list)
    _objects: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    _changes: list[_Change] = field(default_factory=list)
    _revision: int = 0
    _names: int = 0
    _uids: int = 0
    _tokens: int = 0
    _changed: anyio.Event | None = None

    # -- for tests ----------------------------------------------------------------------

    def add(self, *objects: Message) -> list[Any]:
        """Stores objects as they are (no defaulting, validation or action),
        as client-go's tracker does with the objects a fake clientset starts
        with; an object without a resourceVersion gets the next one. Returns
        the stored copies: put those in listers, so that the versions match."""
        stored = []
        for obj in objects:
            out = _copy(obj)
            m = _meta(out)
            if not m.resource_version:
                self._revision += 1
                m.resource_version = str(self._revision)
            else:
                self._revision = max(self._revision, int(m.resource_version))
            self._put(out, "ADDED")
            stored.append(_copy(out))
        return stored

    def stored(self, kind: type[M], name: str, namespace: str = "default") -> M | None:
        """The stored object, read without recording an action."""
        obj = self._objects.get(self._key(self._info(kind), namespace, name))
        return None if obj is None else _copy(obj)

    def stored_list(self, kind: type[M], namespace: str | None = None) -> builtins.list[M]:
        """Every stored object of `kind` (in `namespace`), without an action."""
        info = self._info(kind)
        return [
            _copy(obj)
            for (k, ns, _), obj in sorted(self._objects.items())
            if k == info.kind and (not namespace or ns == namespace)
        ]

    def writes(self) -> builtins.list[Action]:
        """The actions that are not reads (get, list, watch)."""
        return [a for a in self.actions if a.verb not in READ_VERBS]

    def clear_actions(self) -> None:
        self.actions.clear()

    def prepend_reactor(self, verb: str, kind: str, reaction: Reaction) -> None:
        """Runs `reaction` on every `verb` of `kind` ("*" for any), before the
        reactors added earlier and before the store."""
        self._reactors.insert(0, _Reactor(verb, kind, reaction))

    def fail(self, verb: str, kind: str, error: Exception) -> None:
        """Makes every `verb` of `kind` raise `error` (a reactor)."""

        def reaction(_action: Action) -> Message | None:
            raise error

        self.prepend_reactor(verb, kind, reaction)

    # -- the verbs ----------------------------------------------------------------------

    async def create(self, obj: M, *, namespace: str | None = None, dry_run: bool = False) -> M:
        info = self._info(type(obj))
        new = _copy(obj)
        m = _meta(new)
        self._scope(info, m, namespace)
        answer = self._react(Action("create", info.kind, m.namespace, m.name, object=_copy(obj)))
        if answer is not None:
            return answer  # type: ignore[no-any-return]
        generate = not m.name and bool(m.generate_name)
        if generate:
            m.name = self._generated_name(m.generate_name)
        self._uids += 1
        m.uid = str(uuid.UUID(int=self._uids))
        m.creation_timestamp.CopyFrom(self._timestamp())
        m.generation = 1
        for name in ("resource_version", "deletion_timestamp", "deletion_grace_period_seconds"):
            m.ClearField(name)
        _prepare_for_create(info, new)
        _set_defaults(new)
        causes = _validate(new)
        if causes:
            if generate:
                causes = [_as_generate_name(c, m) for c in causes]
            raise errors.Invalid(causes, kind=_qualified(info), name=m.name)
        if self._key(info, m.namespace, m.name) in self._objects:
            raise errors.already_exists(info.group_resource, m.name)
        if dry_run:
            return new
        self._revision += 1
        m.resource_version = str(self._revision)
        self._put(new, "ADDED")
        return _copy(new)

    async def create_events(
        self, events: Sequence[Event]
    ) -> builtins.list[Event | errors.StatusError]:
        """As `Client.create_events`: one `create-events` action (its
        `object` the list of Events sent; a reactor's answer, or exception,
        is the whole call's), then each Event created as `create` does, its
        own error in its place."""
        answer = self._react(Action("create-events", "Event", object=[_copy(e) for e in events]))
        if answer is not None:
            return answer  # type: ignore[no-any-return]
        out: builtins.list[Event | errors.StatusError] = []
        for event in events:
            try:
                out.append(await self.create(event))
            except errors.StatusError as e:
                out.append(e)
        return out

    async def get(self, kind: type[M], name: str, *, namespace: str | None = None) -> M:
        info = self._info(kind)
        ns = self._namespace_of(info, namespace)
        answer = self._react(Action("get", info.kind, ns, name))
        if answer is not None:
            return answer  # type: ignore[no-any-return]
        return _copy(self._current(info, ns, name))  # type: ignore[no-any-return]

    async def list(
        self,
        kind: type[M],
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str | None = None,
        resource_version: str = "",
    ) -> ObjectList[M]:
        """Every matching object in one page (`limit` is not honoured)."""
        info = self._info(kind)
        self._react(Action("list", info.kind, namespace or ""))
        predicate = parse_predicate(info.kind, label_selector, field_selector, message=info.message)
        namespace = namespace if info.namespaced else None
        items = [
            _copy(obj)
            for (k, ns, _), obj in sorted(self._objects.items())
            if k == info.kind and (not namespace or ns == namespace) and predicate.matches(obj)
        ]
        return ObjectList(items, str(self._revision))

    async def update(self, obj: M, *, subresource: str = "", dry_run: bool = False) -> M:
        info = self._info(type(obj))
        new = _copy(obj)
        m = _meta(new)
        self._scope(info, m, None)
        action = Action("update", info.kind, m.namespace, m.name, subresource, object=_copy(obj))
        answer = self._react(action)
        if answer is not None:
            return answer  # type: ignore[no-any-return]
        current = self._current(info, m.namespace, m.name)
        if m.uid and m.uid != _meta(current).uid:
            raise errors.conflict(
                info.group_resource,
                m.name,
                f"Precondition failed: UID in precondition: {m.uid}, "
                f"UID in object meta: {_meta(current).uid}",
            )
        if m.resource_version and m.resource_version != _meta(current).resource_version:
            raise errors.conflict(info.group_resource, m.name, _STALE)
        built = self._build(info, subresource, new, current)
        return self._write(info, built, current, dry_run)  # type: ignore[no-any-return]

    async def update_status(self, obj: M, *, dry_run: bool = False) -> M:
        return await self.update(obj, subresource="status", dry_run=dry_run)

    async def patch(
        self,
        kind: type[M],
        name: str,
        patch: dict[str, Any] | builtins.list[Any] | str | bytes,
        *,
        namespace: str | None = None,
        patch_type: PatchType = "strategic",
        subresource: str = "",
        dry_run: bool = False,
    ) -> M:
        info = self._info(kind)
        ns = self._namespace_of(info, namespace)
        document = json.loads(patch) if isinstance(patch, str | bytes) else patch
        action = Action(
            "patch", info.kind, ns, name, subresource, patch=document, patch_type=patch_type
        )
        answer = self._react(action)
        if answer is not None:
            return answer  # type: ignore[no-any-return]
        if isinstance(patch, str | bytes):
            body = patch.encode() if isinstance(patch, str) else patch
        else:
            body = json.dumps(patch).encode()
        document = read_patch(patch_type, body)
        current = self._current(info, ns, name)
        if isinstance(document, dict):
            expected = str(document.get("metadata", {}).get("resourceVersion") or "")
            if expected and expected != _meta(current).resource_version:
                raise errors.conflict(info.group_resource, name, _STALE)
        patched = apply_patch(patch_type, codec.to_dict(current), document, info.message)
        try:
            new = codec.from_dict(info.message, patched)
        except errors.Invalid as e:
            raise errors.Invalid(e.causes, kind=_qualified(info), name=name) from None
        built = self._build(info, subresource, new, current)
        return self._write(info, built, current, dry_run)  # type: ignore[no-any-return]

    async def delete(
        self,
        kind: type[M],
        name: str,
        *,
        namespace: str | None = None,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        preconditions: Preconditions | None = None,
        dry_run: bool = False,
        as_node: str = "",
    ) -> Deleted[M]:
        info = self._info(kind)
        ns = self._namespace_of(info, namespace)
        answer = self._react(Action("delete", info.kind, ns, name))
        if answer is not None:
            return Deleted(answer, True)
        return self._delete(
            info, ns, name, grace_period_seconds, propagation_policy, preconditions, dry_run
        )

    async def delete_collection(
        self,
        kind: type[M],
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
    ) -> builtins.list[M]:
        """Deletes every match as `delete` would; one action for all."""
        info = self._info(kind)
        self._react(Action("delete-collection", info.kind, namespace or ""))
        predicate = parse_predicate(info.kind, label_selector, field_selector, message=info.message)
        namespace = namespace if info.namespaced else None
        matches = [
            (ns, name)
            for (k, ns, name), obj in sorted(self._objects.items())
            if k == info.kind and (not namespace or ns == namespace) and predicate.matches(obj)
        ]
        return [
            self._delete(
                info, ns, name, grace_period_seconds, propagation_policy, None, False
            ).object
            for ns, name in matches
        ]

    def watch(
        self,
        kind: type[M],
        *,
        namespace: str | None = None,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
        bookmarks: bool = True,
        timeout_seconds: int = 0,
    ) -> FakeWatch[M]:
        """Every change after `resource_version` ("" or "0": an ADDED event
        per current object first); see `FakeWatch`."""
        info = self._info(kind)
        self._react(Action("watch", info.kind, namespace or ""))
        predicate = parse_predicate(info.kind, label_selector, field_selector, message=info.message)
        namespace = namespace if info.namespaced else None
        return FakeWatch(self, info, namespace or "", predicate, resource_version)

    async def bind(
        self, name: str, node: str, *, namespace: str | None = None, resource_version: str = ""
    ) -> Any:
        """pods/binding: sets spec.nodeName once and marks the pod scheduled."""
        info = self._info(Pod)
        ns = self._namespace_of(info, namespace)
        answer = self._react(Action("create", info.kind, ns, name, "binding", object=node))
        if answer is not None:
            return answer
        current = self._current(info, ns, name)
        if resource_version and resource_version != current.metadata.resource_version:
            raise errors.conflict("pods", name, _STALE)
        if current.metadata.HasField("deletion_timestamp"):
            raise errors.conflict(
                "pods", name, "the pod is being deleted, cannot be assigned to a host"
            )
        if current.spec.node_name:
            raise errors.conflict(
                "pods", name, f'pod {name} is already assigned to node "{current.spec.node_name}"'
            )
        pod = _copy(current)
        pod.spec.node_name = node
        scheduled = next((c for c in pod.status.conditions if c.type == "PodScheduled"), None)
        if scheduled is None:
            pod.status.conditions.append(
                PodCondition(
                    type="PodScheduled", status="True", last_transition_time=self._timestamp()
                )
            )
        else:
            scheduled.status = "True"
        return self._write(info, pod, current, False)

    async def evict(
        self,
        name: str,
        *,
        namespace: str | None = None,
        grace_period_seconds: int | None = None,
        dry_run: bool = False,
    ) -> None:
        """pods/eviction without disruption budgets: the pod is deleted as
        `delete` would. A reactor on ("create", "Pod") sees the action (with
        subresource "eviction") first, and may raise `errors.EvictionRefused`
        to stand in for a budget."""
        info = self._info(Pod)
        ns = self._namespace_of(info, namespace)
        answer = self._react(Action("create", info.kind, ns, name, "eviction"))
        if answer is not None:
            return
        self._delete(info, ns, name, grace_period_seconds, None, None, dry_run)

    async def request_token(
        self,
        namespace: str,
        name: str,
        *,
        audiences: Sequence[str] = (),
        expiration_seconds: int | None = None,
        bound_pod: Pod | None = None,
    ) -> TokenRequest:
        """As `Client.request_token`, answered here: one action, a create
        of ServiceAccount `token` (its `object` the TokenRequest sent; a
        reactor may answer with another TokenRequest, or raise). The
        ServiceAccount must be stored (NotFound otherwise), a bound pod too,
        with the same uid (Conflict otherwise); expiration_seconds below 600
        is Invalid, unset is 3600, above 48 hours is cut to 48 hours, as the
        server does. `status.token` is `fake-token-<n>-<namespace>-<name>`
        (a new n for every call; audiences default to `kpy-fake`), expiring
        `expiration_seconds` after `now()`."""
        request = TokenRequest()
        request.metadata.name, request.metadata.namespace = name, namespace
        request.spec.audiences.extend(audiences)
        if expiration_seconds is not None:
            request.spec.expiration_seconds = expiration_seconds
        if bound_pod is not None:
            ref = request.spec.bound_object_ref
            ref.kind, ref.api_version = "Pod", "v1"
            ref.name, ref.uid = bound_pod.metadata.name, bound_pod.metadata.uid
        action = Action("create", "ServiceAccount", namespace, name, "token", object=_copy(request))
        answer = self._react(action)
        if answer is not None:
            return answer  # type: ignore[no-any-return]
        self._current(self._info(ServiceAccount), namespace, name)
        if bound_pod is not None:
            pod = self._current(self._info(Pod), namespace, bound_pod.metadata.name)
            if pod.metadata.uid != bound_pod.metadata.uid:
                raise errors.conflict(
                    "pods",
                    bound_pod.metadata.name,
                    "the UID in the bound object reference "
                    f"({bound_pod.metadata.uid}) does not match the UID in record",
                )
        seconds = 3600 if expiration_seconds is None else expiration_seconds
        if seconds < 600:
            raise errors.Invalid(
                [
                    errors.FieldError(
                        "spec.expirationSeconds",
                        errors.INVALID,
                        f"Invalid value: {seconds}: may not specify a duration less than 10 "
                        "minutes",
                    )
                ],
                kind="TokenRequest.authentication.k8s.io",
                name=name,
            )
        seconds = min(seconds, 48 * 3600)
        self._tokens += 1
        out = _copy(request)
        if not out.spec.audiences:
            out.spec.audiences.append("kpy-fake")
        out.spec.expiration_seconds = seconds
        out.status.token = f"fake-token-{self._tokens}-{namespace}-{name}"
        out.status.expiration_timestamp.seconds = int(self.now()) + seconds
        return out

    async def resources(self) -> builtins.list[api.APIResource]:
        """Discovery: every kind of the fake's scheme, custom ones included
        (as a server lists them once their CRDs are served)."""
        self._react(Action("list", "APIResource", ""))
        return [
            api.APIResource(
                group=info.group,
                version=info.version,
                kind=info.kind,
                resource=info.plural,
                namespaced=info.namespaced,
                short_names=list(info.short_names),
                subresources=["status"] if info.status_subresource else [],
                singular_name=info.singular,
                categories=list(info.categories),
            )
            for info in self.using.all()
        ]

    # -- the store ----------------------------------------------------------------------

    def _info(self, kind: type[Message]) -> ResourceInfo:
        return self.using.for_message(kind)

    @staticmethod
    def _key(info: ResourceInfo, namespace: str, name: str) -> tuple[str, str, str]:
        return (info.kind, namespace if info.namespaced else "", name)

    def _namespace_of(self, info: ResourceInfo, namespace: str | None) -> str:
        return (namespace or self.namespace) if info.namespaced else ""

    def _scope(self, info: ResourceInfo, m: ObjectMeta, namespace: str | None) -> None:
        if not info.namespaced:
            m.ClearField("namespace")
            return
        if m.namespace and namespace and m.namespace != namespace:
            raise errors.BadRequest(
                f'the namespace of the object ("{m.namespace}") does not match the namespace '
                f'of the request ("{namespace}")'
            )
        m.namespace = m.namespace or namespace or self.namespace

    def _current(self, info: ResourceInfo, namespace: str, name: str) -> Any:
        obj = self._objects.get(self._key(info, namespace, name))
        if obj is None:
            raise errors.not_found(info.group_resource, name)
        return obj

    def _timestamp(self) -> Timestamp:
        return Timestamp(seconds=int(self.now()))

    def _generated_name(self, prefix: str) -> str:
        """The next of a deterministic series of 5-character suffixes, so a
        test can name the pods a controller creates."""
        self._names += 1
        n, suffix = self._names, ""
        for _ in range(5):
            n, digit = divmod(n, len(_NAME_CHARS))
            suffix = _NAME_CHARS[digit] + suffix
        return prefix[:58] + suffix

    def _react(self, action: Action) -> Any:
        """Records `action` and runs the reactors that match it."""
        self.actions.append(action)
        for reactor in list(self._reactors):
            if action.matches(reactor.verb, reactor.kind):
                answer = reactor.reaction(action)
                if answer is not None:
                    return answer
        return None

    def _build(self, info: ResourceInfo, subresource: str, new: Any, current: Any) -> Any:
        """The object an update of `subresource` leaves, before validation."""
        if subresource == "status" and info.status_subresource:
            out = _copy(current)
            _copy_status(out, new)
            return _set_defaults(out)
        if subresource == "finalize" and info.kind == "Namespace":
            out = _copy(current)
            del out.spec.finalizers[:]
            out.spec.finalizers.extend(new.spec.finalizers)
            return out
        if subresource:
            raise errors.MethodNotAllowed(
                f"{info.group_resource} has no {subresource!r} subresource",
                kind=info.group_resource,
            )
        m, old = _meta(new), _meta(current)
        m.uid = m.uid or old.uid
        # Only create sets these and only delete changes them: carried over as stored.
        for name in ("creation_timestamp", "deletion_timestamp"):
            m.ClearField(name)
            if old.HasField(name):
                getattr(m, name).CopyFrom(getattr(old, name))
        m.ClearField("deletion_grace_period_seconds")
        if old.HasField("deletion_grace_period_seconds"):
            m.deletion_grace_period_seconds = old.deletion_grace_period_seconds
        m.generation = old.generation
        if info.status_subresource:
            if current.HasField("status"):
                _copy_status(new, current)
            else:
                new.ClearField("status")
        if info.kind == "Namespace":
            del new.spec.finalizers[:]
            new.spec.finalizers.extend(current.spec.finalizers)
        _set_defaults(new)
        if _spec_changed(new, current):
            m.generation = old.generation + 1
        return new

    def _write(self, info: ResourceInfo, new: Any, current: Any, dry_run: bool) -> Any:
        """Validates and stores `new` over `current`; a deleting object whose
        finalizers are gone (and grace over) is removed."""
        m = _meta(new)
        m.resource_version = _meta(current).resource_version
        if new == current:
            return _copy(current)
        causes = _validate_update(new, current)
        if causes:
            raise errors.Invalid(causes, kind=_qualified(info), name=m.name)
        if dry_run:
            return new
        self._revision += 1
        m.resource_version = str(self._revision)
        finished = m.HasField("deletion_timestamp") and not m.deletion_grace_period_seconds
        if finished and not _pending_finalizers(info, new):
            self._remove(new)
            return _copy(new)
        self._put(new, "MODIFIED")
        return _copy(new)

    def _delete(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        grace_period_seconds: int | None,
        policy: str | None,
        preconditions: Preconditions | None,
        dry_run: bool,
    ) -> Deleted[Any]:
        current = self._current(info, namespace, name)
        cm = _meta(current)
        if preconditions is not None:
            for label, present, want, have in (
                ("UID", preconditions.HasField("uid"), preconditions.uid, cm.uid),
                (
                    "ResourceVersion",
                    preconditions.HasField("resource_version"),
                    preconditions.resource_version,
                    cm.resource_version,
                ),
            ):
                if present and want != have:
                    raise errors.conflict(
                        info.group_resource,
                        name,
                        f"Precondition failed: {label} in precondition: {want}, "
                        f"{label} in object meta: {have}",
                    )
        new = _copy(current)
        m = _meta(new)
        finalizer = _POLICY_FINALIZERS.get(policy or "")
        if not m.HasField("deletion_timestamp") and finalizer and finalizer not in m.finalizers:
            m.finalizers.append(finalizer)
        grace = _grace_period(info, current, grace_period_seconds)
        if grace == 0 and not _pending_finalizers(info, new):
            if not dry_run:
                self._revision += 1
                m.resource_version = str(self._revision)
                self._remove(new)
            return Deleted(_copy(new), True)
        if m.HasField("deletion_timestamp"):
            if m.deletion_grace_period_seconds and grace < m.deletion_grace_period_seconds:
                m.deletion_timestamp.seconds -= m.deletion_grace_period_seconds - grace
                m.deletion_grace_period_seconds = grace
        else:
            m.deletion_timestamp.CopyFrom(self._timestamp())
            m.deletion_timestamp.seconds += grace
            m.deletion_grace_period_seconds = grace
            m.generation += 1
            if info.kind == "Namespace":
                new.status.phase = "Terminating"
        if new == current or dry_run:
            return Deleted(_copy(new), False)
        self._revision += 1
        m.resource_version = str(self._revision)
        self._put(new, "MODIFIED")
        return Deleted(_copy(new), False)

    def _put(self, obj: Any, event: str) -> None:
        info = self._info(type(obj))
        m = _meta(obj)
        self._objects[self._key(info, m.namespace, m.name)] = obj
        self._notify(_Change(int(m.resource_version), info.kind, event, _copy(obj)))

    def _remove(self, obj: Any) -> None:
        info = self._info(type(obj))
        m = _meta(obj)
        del self._objects[self._key(info, m.namespace, m.name)]
        self._notify(_Change(int(m.resource_version), info.kind, "DELETED", _copy(obj)))

    def _notify(self, change: _Change) -> None:
        self._changes.append(change)
        self._wake()

    def _wake(self) -> None:
        """Wakes every watch waiting for a change (or for its close)."""
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _wait_for_change(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()


class FakeWatch(Generic[M]):
    """A watch on a FakeClient's changes (satisfies `WatchStream`). Read it
    from one task; it ends only when closed."""

    def __init__(
        self,
        client: FakeClient,
        info: ResourceInfo,
        namespace: str,
        predicate: Predicate,
        resource_version: str,
    ) -> None:
        self._client = client
        self._info = info
        self._namespace = namespace
        self._predicate = predicate
        self._pending: list[WatchEvent[M]] = []
        self._closed = False
        if resource_version in ("", "0"):
            # Now's objects as ADDED, then every change after now.
            self._cursor = len(client._changes)
            for (kind, ns, _), obj in sorted(client._objects.items()):
                if kind == info.kind and self._wanted(ns, obj):
                    self._pending.append(
                        WatchEvent("ADDED", _copy(obj), _meta(obj).resource_version)
                    )
        else:
            after = int(resource_version)
            self._cursor = next(
                (i for i, c in enumerate(client._changes) if c.revision > after),
                len(client._changes),
            )

    def _wanted(self, namespace: str, obj: Any) -> bool:
        return (not self._namespace or namespace == self._namespace) and self._predicate.matches(
            obj
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        self._client._wake()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> WatchEvent[M]:
        while not self._pending:
            if self._closed:
                raise StopAsyncIteration
            changes = self._client._changes
            while self._cursor < len(changes):
                change = changes[self._cursor]
                self._cursor += 1
                obj = change.object
                if change.kind == self._info.kind and self._wanted(_meta(obj).namespace, obj):
                    self._pending.append(
                        WatchEvent(change.type, _copy(obj), str(change.revision))  # type: ignore[arg-type]
                    )
            if not self._pending:
                await self._client._wait_for_change()
        return self._pending.pop(0)


# -- what the API server decides, kept as small as controllers need ------------------------

# A custom kind's fields are defaulted and checked by its CRD's schema on the
# server; the fake has no schema, so it defaults nothing and checks metadata.


def _set_defaults(obj: M) -> M:
    return obj if is_custom(type(obj)) else defaults.set_defaults(obj)


def _validate(obj: Any) -> validation.Errors:
    if is_custom(type(obj)):
        namespaced = scheme.for_message(type(obj)).namespaced
        return validation.validate_object_meta(
            obj.metadata, namespaced=namespaced, name_check=names.is_dns1123_subdomain
        )
    return validation.validate(obj)


def _validate_update(new: Any, old: Any) -> validation.Errors:
    if is_custom(type(new)):
        return _validate(new) + validation.validate_object_meta_update(new.metadata, old.metadata)
    return validation.validate_update(new, old)


def _copy_status(dst: Any, src: Any) -> None:
    """dst's status becomes src's (a custom kind's is JSON, not a message)."""
    if is_custom(type(dst)):
        dst["status"] = copy.deepcopy(src.get("status", {}))
    else:
        dst.status.CopyFrom(src.status)


def _prepare_for_create(info: ResourceInfo, obj: Any) -> None:
    """kpy.apiserver.strategy's prepare_for_create, for the common kinds."""
    if info.kind == "Node":
        return
    if info.status_subresource and obj.HasField("status"):
        obj.ClearField("status")
    if info.kind in ("Pod", "PersistentVolumeClaim", "PersistentVolume"):
        obj.status.phase = "Pending"
    elif info.kind == "Namespace":
        obj.status.phase = "Active"
        if "kubernetes" not in obj.spec.finalizers:
            obj.spec.finalizers.append("kubernetes")


def _spec_changed(new: Message, old: Message) -> bool:
    if "spec" in new.DESCRIPTOR.fields_by_name:
        return bool(new.spec != old.spec)  # type: ignore[attr-defined]
    return any(
        getattr(new, f.name) != getattr(old, f.name)
        for f in new.DESCRIPTOR.fields
        if f.name not in ("metadata", "status")
    )


def _grace_period(info: ResourceInfo, obj: Any, requested: int | None) -> int:
    """Pods on a node wait for their agent; everything else goes at once."""
    if info.kind != "Pod":
        return 0
    if not obj.spec.node_name or obj.status.phase in ("Succeeded", "Failed"):
        return 0
    if requested is not None:
        return max(0, requested)
    if obj.spec.HasField("termination_grace_period_seconds"):
        return max(0, int(obj.spec.termination_grace_period_seconds))
    return 30


def _pending_finalizers(info: ResourceInfo, obj: Any) -> bool:
    if obj.metadata.finalizers:
        return True
    return info.kind == "Namespace" and bool(obj.spec.finalizers)


def _qualified(info: ResourceInfo) -> str:
    return f"{info.kind}.{info.group}" if info.group else info.kind


def _as_generate_name(cause: errors.FieldError, m: ObjectMeta) -> errors.FieldError:
    if cause.path != "metadata.name":
        return cause
    detail = cause.detail.replace(f'"{m.name}"', f'"{m.generate_name}"')
    return errors.FieldError("metadata.generateName", cause.reason, detail)


def _meta(obj: Any) -> ObjectMeta:
    return obj.metadata  # type: ignore[no-any-return]


def _copy(obj: M) -> M:
    out = type(obj)()
    out.CopyFrom(obj)
    return out


if TYPE_CHECKING:
    from kpy.client.client import Client
    from kpy.client.protocol import ClientProtocol

    def _both_satisfy_the_protocol(real: Client, fake: FakeClient) -> list[ClientProtocol]:
        """Never called: mypy checks here that both clients are ClientProtocols."""
        return [real, fake]
