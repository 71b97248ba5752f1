"""`Context`: what a handler gets besides its object.

One Context is made per handler call, for one primary object. Its helpers
write through the client and tell the kind's controller what they wrote, so
that the watch event of the SDK's own write does not trigger another
reconcile of a state the operator itself just produced (the one reconcile
that matters, of any later change, still happens):

- `apply_owned(obj)`: create-or-update `obj` with this object as its
  controller owner. It reads the current one from the owned kind's informer
  (or the API when the kind is not in `owns=`), merges what the handler
  wants over it (JSON merge patch semantics: fields the handler leaves out
  are kept, lists are replaced), applies kpy's defaulting for built-in kinds
  and writes only when the result differs. An object controlled by another
  owner is never taken over (`PermanentError`).
- `set_status(obj, status)`: replaces the status through the `status`
  subresource when it differs (one write, none if equal), retrying on
  Conflict against a fresh read.
- `event(obj, type, reason, message)`: an Event for `kpyctl describe`.
- `log`: a logger whose records carry the operator, kind and key.

Objects handed to handlers come from the informer's cache and are shared:
never change one in place (the helpers take what you want as new values).
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from google.protobuf.message import Message

from kpy.api import codec, errors
from kpy.api.defaults import set_defaults
from kpy.api.patch import merge_patch
from kpy.api.scheme import scheme
from kpy.api.unstructured import is_custom

if TYPE_CHECKING:
    from collections.abc import Mapping, MutableMapping

    from kpy.api.meta.v1 import OwnerReference
    from kpy.client import ClientProtocol

__all__ = ["Context", "PermanentError"]


class PermanentError(Exception):
    """Raised by a handler when retrying cannot help until the object changes
    (an image name the operator refuses, an object it may not own). The SDK
    logs it, records a Warning event on the object, and does not retry; the
    next change of the object (or of what it owns) reconciles it again.
    Any other exception is retried with per-object exponential back-off."""


class Owner(Protocol):
    """What a Context asks of the controller that made it
    (`kpy.operator._controller.KindController`): its client, logger,
    operator and kind, its events, its owner references, its cache, and a
    note of each write."""

    client: ClientProtocol
    logger: logging.Logger
    operator: str
    kind_name: str

    def record(self, obj: Any, eventtype: str, reason: str, message: str) -> None: ...

    def owner_ref(self, owner: Any) -> OwnerReference: ...

    def cached(self, kind: type[Any], namespace: str, name: str) -> Any: ...

    def wrote(self, obj: Any) -> None: ...


M = TypeVar("M")

#: a status write that keeps conflicting is given up (and retried with back-off)
_STATUS_ATTEMPTS = 5


class _KeyedLog(logging.LoggerAdapter[logging.Logger]):
    """Adds the context's fields to every record, keeping the call's own."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


class Context:
    """See the module docstring. `obj` is the primary object as the handler
    was given it; `key` its "namespace/name"."""

    __slots__ = ("_controller", "client", "key", "log", "obj")

    def __init__(self, controller: Owner, key: str, obj: Any) -> None:
        self._controller = controller
        self.client: ClientProtocol = controller.client
        self.key = key
        self.obj = obj
        self.log = _KeyedLog(
            controller.logger,
            {"operator": controller.operator, "kind": controller.kind_name, "key": key},
        )

    # -- events ---------------------------------------------------------------------

    def event(self, obj: Any, type: str, reason: str, message: str) -> None:
        """Records an Event about `obj` ("Normal" or "Warning"); never blocks."""
        self._controller.record(obj, type, reason, message)

    # -- owned objects --------------------------------------------------------------

    async def apply_owned(self, desired: M) -> M:
        """Creates or updates `desired` (see the module docstring) and returns
        the object as stored. `desired` is not changed; its namespace
        defaults to the owner's."""
        owner = self.obj
        kind = type(desired)
        info = scheme.for_message(kind)  # type: ignore[arg-type]
        name = desired.metadata.name  # type: ignore[attr-defined]
        if not name:
            raise PermanentError(f"apply_owned: a {info.kind} needs metadata.name")
        namespace = ""
        if info.namespaced:
            namespace = desired.metadata.namespace or owner.metadata.namespace  # type: ignore[attr-defined]
        ref = self._controller.owner_ref(owner)
        existing = self._controller.cached(kind, namespace, name)
        if existing is None:
            new = _copy(desired)
            new.metadata.namespace = namespace  # type: ignore[attr-defined]
            del new.metadata.owner_references[:]  # type: ignore[attr-defined]
            new.metadata.owner_references.append(ref)  # type: ignore[attr-defined]
            try:
                created = await self.client.create(new)  # type: ignore[type-var]
            except errors.AlreadyExists:
                # the informer has not seen it yet: compare with the stored one
                existing = await self.client.get(kind, name, namespace=namespace or None)
            else:
                self._controller.wrote(created)
                return created
        controller = next((r for r in existing.metadata.owner_references if r.controller), None)
        if controller is not None and controller.uid != ref.uid:
            raise PermanentError(
                f"{info.kind} {namespace}/{name} is controlled by {controller.kind} "
                f"{controller.name}; {self._controller.kind_name} {self.key} will not take it "
                "over: rename one of them or delete that object"
            )
        merged = _merged(existing, desired, ref)
        if merged == existing:
            return existing  # type: ignore[no-any-return]
        updated = await self.client.update(merged)
        self._controller.wrote(updated)
        return updated  # type: ignore[no-any-return]

    # -- status ---------------------------------------------------------------------

    async def set_status(self, obj: M, status: Mapping[str, Any] | Message) -> M:
        """Makes `status` the status of `obj` through the status subresource,
        unless it already is (then nothing is written). On Conflict it reads
        the object again and retries, a few times, then raises (the
        reconcile is retried with back-off). Returns the stored object."""
        new = _with_status(obj, status)
        if new is None:
            return obj
        for attempt in range(_STATUS_ATTEMPTS):
            try:
                updated = await self.client.update_status(new)  # type: ignore[type-var]
            except errors.Conflict:
                if attempt == _STATUS_ATTEMPTS - 1:
                    raise
                m = obj.metadata  # type: ignore[attr-defined]
                fresh = await self.client.get(type(obj), m.name, namespace=m.namespace or None)  # type: ignore[type-var]
                if fresh.metadata.uid != m.uid:  # type: ignore[attr-defined]
                    raise
                new = _with_status(fresh, status) or fresh
                continue
            # Written on the object this reconcile read: its echo needs no
            # reconcile. After a retry the object had changed under us, so
            # the change's own event must still reconcile it.
            if attempt == 0:
                self._controller.wrote(updated)
            return updated
        raise AssertionError("unreachable")


def _copy(obj: M) -> M:
    out = type(obj)()
    out.CopyFrom(obj)  # type: ignore[attr-defined]
    return out


def _with_status(obj: M, status: Mapping[str, Any] | Message) -> M | None:
    """A copy of `obj` with `status`, or None when `obj` already has it.
    Only the status is copied: the rest is shared with `obj`, read-only."""
    if is_custom(type(obj)):
        want = codec.to_dict(status) if isinstance(status, Message) else dict(status)
        if obj.get("status") == want:  # type: ignore[attr-defined]
            return None
        out = type(obj)()
        out.metadata = obj.metadata  # type: ignore[attr-defined]
        out.content = {**obj.content, "status": copy.deepcopy(want)}  # type: ignore[attr-defined]
        return out
    current = obj.status  # type: ignore[attr-defined]
    wanted = status if isinstance(status, Message) else codec.from_dict(type(current), status)
    if wanted == current:
        return None
    out = _copy(obj)
    out.status.CopyFrom(wanted)  # type: ignore[attr-defined]
    return out


def _merged(existing: Any, desired: Any, ref: OwnerReference) -> Any:
    """`desired` merged over `existing` with `ref` as the controller
    reference, defaulted as the server would."""
    want = codec.to_dict(desired)
    meta = want.setdefault("metadata", {})
    meta.pop("namespace", None)
    refs = [r for r in existing.metadata.owner_references if r.uid != ref.uid]
    meta["ownerReferences"] = [codec.to_dict(r) for r in [*refs, ref]]
    merged = codec.from_dict(type(existing), merge_patch(codec.to_dict(existing), want))
    if not is_custom(type(merged)):
        set_defaults(merged)
    return merged
