"""The async, typed client of the kpy API.

One `Client` talks to one cluster: every kind, every namespace, every verb.
Objects are the protobuf messages of `kpy.api` (a `Pod` in, a `Pod` out); the
kind is taken from the message type, so `client.get(Deployment, "web")`
returns a `Deployment`.

Failures raise the `kpy.api.errors` hierarchy (`NotFound`, `Conflict`,
`Invalid` with its field causes, `Expired`, ...), the same classes the
server raised.

Several servers (say the workers of `kpy-apiserver --workers N`) share the
calls: when every configured server is an IP address, one gRPC channel per
Client balances them per call (gRPC's `round_robin` policy, over
connections of this Client's own, not gRPC's process-wide subchannel pool),
and a server that cannot be reached is skipped until it is back. Servers
given by name are used one at a time, in order. Either way, when no server
can be reached the call is retried with jittered exponential back-off
(0.1 s doubling to 5 s) for up to `retry_timeout` seconds; a server's
verdict is never retried. Retries never write twice: a failed
call is one of three things:
- *answered*: the server sent its verdict (NotFound, Conflict, Invalid...);
  raised as is.
- *not sent*: the request certainly never reached a server. gRPC says so
  only when it fails a call without a connection ("failed to connect to all
  addresses", the channel being down when the call starts), or when an API
  server refused it before doing anything (TooManyRequests: over its
  in-flight or watch limits). Any call is sent again, a create too: to the
  next server after a connection failure; after TooManyRequests no sooner
  than the server's retry-after hint (drawn from 1 to 1.25 times it, so
  that clients shed together do not return together), within the same
  `retry_timeout`, after which TooManyRequests is raised.
- *outcome unknown*: everything else that is transient (the connection
  dropped after the request may have gone out, a server-side Unavailable or
  Timeout from etcd, a deadline): the server may have applied it.
Reads (get, list, watch), delete_collection and writes that are idempotent
(an update without a resourceVersion, merge and strategic patches, scale)
are sent again after Unavailable (a deadline is raised: the caller's time
is spent); such a write sent twice leaves what it leaves sent once, though
it may land again over a change another writer made in between, as a late
request would. The others are resolved, never blindly resent:
- create: the SDK proposes the new object's uid (request metadata
  `kpy-create-uid`, which the server uses instead of making one; nothing is
  added to the object), and for `generateName` picks the random suffix
  itself, so the name and uid are known before sending. After an unknown
  outcome it reads the object by name: its own uid there is success; another
  uid is AlreadyExists (a create never replaces, so its write did not
  happen); NotFound means it was not stored yet, and the create is sent
  again (a late original then loses to it, or it to the original, and the
  AlreadyExists that follows is resolved the same way). A generated name
  found taken by another object gets a new suffix; the uid stays. Limit:
  an object of ours deleted by someone else before the re-read looks never
  stored, and is created again.
- update with a resourceVersion: sent again (the version guards it); a
  Conflict after an unknown outcome re-reads the object, and it is success
  when the object holds what was written, else `OutcomeUnknown`.
- delete: sent again; NotFound after an unknown outcome is success when a uid
  precondition named the object, else `OutcomeUnknown` (it is gone, but this
  call may not have removed it).
- bind: sent again; the Conflict "already assigned" to the same node is
  success.
- JSON patches: `OutcomeUnknown` (applying one twice may differ from once).
`OutcomeUnknown` is a `Timeout`, Kubernetes' reason for "may have been
applied"; its message says what to check.

Security (see `kpy.client.config`): with a CA in the config every channel
is TLS, presenting the client certificate when there is one and sending
the token as `authorization: Bearer <token>` on every call. A server's
Unauthorized (no or bad credentials) is its verdict: raised at once, never
retried. A TLS handshake that fails for a reason retrying cannot fix (the
server's certificate is not signed by the configured CA, has expired, does
not name the address, or the server does not speak TLS) raises
`TLSHandshakeFailed` at once, saying which file or setting to check.

`watch` is an async context manager yielding events; it resumes by itself
from the last resource version it delivered when a stream ends, falls
behind, or its server goes away, so a caller sees every change exactly
once. Only Expired (the version is compacted: relist) ends it with an error.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import random
import secrets
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, Self, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

from kpy.api import errors
from kpy.api.authentication.v1 import TokenRequest
from kpy.api.autoscaling.v1 import Scale
from kpy.api.core.v1 import Binding, Event
from kpy.api.meta.v1 import DeleteOptions, Preconditions
from kpy.api.scheme import ResourceInfo, Scheme, scheme
from kpy.backoff import Backoff
from kpy.client.config import ClientConfig, load_config
from kpy.pki import PKIError, describe
from kpy.rpc import status
from kpy.rpc.apiserver import v1 as api

if TYPE_CHECKING:
    import builtins
    from collections.abc import AsyncIterator, Callable, Sequence
    from types import TracebackType

    from kpy.api.core.v1 import Pod

# Metadata naming the node a node agent speaks for (the API server's name for it).
NODE_METADATA: Final = "kpy-node"
# Metadata carrying the uid a create proposes for its object (see the module docstring).
CREATE_UID_METADATA: Final = "kpy-create-uid"

# Kubernetes' SimpleNameGenerator: 5 random characters after at most 58 of the prefix.
_NAME_CHARS: Final = "bcdfghjklmnpqrstvwxz2456789"
_MAX_PREFIX: Final = 58
_NAME_TRIES: Final = 16  # generated names found taken before giving up

Outcome = Literal["answered", "not sent", "unknown"]

log = logging.getLogger("kpy.client")

M = TypeVar("M", bound=Message)
EventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]
PatchType = Literal["strategic", "merge", "json"]

_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # Reconnect to a restarted server on the client's own schedule (0.1 s
    # doubling to 5 s): gRPC's default grows to 120 s, longer than a whole
    # `retry_timeout`, so a client could give up on a server that is back.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 5_000),
    # The connections are this Client's own: with gRPC's process-wide pool,
    # every Client of a process would share one connection per server.
    ("grpc.use_local_subchannel_pool", 1),
]
# One call to each ready server in turn; a server that is down is skipped.
_ROUND_ROBIN: Final = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


def channel_targets(servers: Sequence[str]) -> list[tuple[str, list[tuple[str, Any]]]]:
    """The gRPC channels a Client opens for `servers` (host:port), as
    (target, options), in failover order. Two or more servers that are all
    IPv4 (or all IPv6) addresses make one channel balancing every call over
    them (`round_robin`); otherwise (a name among them, or one server) one
    channel per server, used one at a time: gRPC cannot balance over
    several names."""
    if len(servers) > 1:
        for family in ("ipv4", "ipv6"):
            if all(_address_family(server) == family for server in servers):
                target = f"{family}:{','.join(servers)}"
                return [(target, [*_CHANNEL_OPTIONS, ("grpc.service_config", _ROUND_ROBIN)])]
    return [(server, list(_CHANNEL_OPTIONS)) for server in servers]


def _address_family(server: str) -> str:
    """ "ipv4" or "ipv6" when `server`'s host is an IP address, else ""."""
    host = server.rpartition(":")[0]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return f"ipv{ipaddress.ip_address(host).version}"
    except ValueError:
        return ""


_INITIAL_EVENTS_END: Final = "k8s.io/initial-events-end"
"""The annotation on the bookmark that ends a watch's initial ADDED events."""


class TLSHandshakeFailed(errors.Unavailable):
    """A TLS connection to an API server failed in a way that retrying
    cannot fix; the message says which file or setting to check."""


class OutcomeUnknown(errors.Timeout):
    """A write that may or may not have been applied: its answer was lost
    (the server went away, or timed out) and the SDK could not tell from the
    stored object. Read the object to see what happened."""


@dataclass(frozen=True, slots=True)
class ObjectList(Generic[M]):
    """One page of a list: `continue_token` fetches the next (None at the end)."""

    items: list[M]
    resource_version: str
    continue_token: str | None = None
    remaining_item_count: int = 0


@dataclass(frozen=True, slots=True)
class WatchEvent(Generic[M]):
    type: EventType
    object: M
    resource_version: str


@dataclass(frozen=True, slots=True)
class Deleted(Generic[M]):
    """The object's last state; `deleted` is False while it waits for
    finalizers or its node agent (it then shows a deletionTimestamp)."""

    object: M
    deleted: bool


def _ref(info: ResourceInfo, namespace: str = "", name: str = "", subresource: str = "") -> Any:
    return api.ResourceRef(
        group=info.group,
        version=info.version,
        resource=info.plural,
        namespace=namespace if info.namespaced else "",
        name=name,
        subresource=subresource,
    )


class Client:
    """See the module docstring. Use as `async with Client(...) as client:`
    or call `close()`; one Client may be shared by any number of tasks."""

    def __init__(
        self,
        servers: str | list[str] | tuple[str, ...] | ClientConfig | None = None,
        *,
        retry_timeout: float = 30.0,
        using: Scheme = scheme,
    ) -> None:
        if isinstance(servers, ClientConfig):
            self.config = servers
        else:
            self.config = load_config(servers=servers) if servers else load_config()
        self.retry_timeout = retry_timeout
        self._scheme = using
        self._targets = channel_targets(self.config.servers)
        self._credentials = _channel_credentials(self.config)
        if self._credentials is not None:
            self._targets = [_with_tls_name(t, options) for t, options in self._targets]
        self._channels: list[grpc.aio.Channel | None] = [None] * len(self._targets)
        self._stubs: list[api.APIAsyncStub | None] = [None] * len(self._targets)
        self._current = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        channels, self._channels = self._channels, [None] * len(self._channels)
        self._stubs = [None] * len(self._stubs)
        for channel in channels:
            if channel is not None:
                await channel.close()

    @property
    def namespace(self) -> str:
        """The default namespace of the configuration."""
        return self.config.namespace

    # -- transport ----------------------------------------------------------------

    def _stub(self) -> api.APIAsyncStub:
        index = self._current
        stub = self._stubs[index]
        if stub is None:
            target, options = self._targets[index]
            if self._credentials is None:
                channel = grpc.aio.insecure_channel(target, options=options)
            else:
                channel = grpc.aio.secure_channel(target, self._credentials, options=options)
            self._channels[index] = channel
            stub = self._stubs[index] = api.APIStub(channel)
        return stub

    def _fail_over(self, failed: int | None = None) -> None:
        """Moves to the next server; with `failed` (the index a call used),
        only if no other call moved already, so that many calls failing
        together move once instead of back and forth."""
        if failed is not None and failed != self._current:
            return
        if len(self._channels) > 1:  # a balancing channel skips dead servers by itself
            self._current = (self._current + 1) % len(self._channels)
            log.info("switching API server", extra={"server": self._targets[self._current][0]})

    async def _call(
        self,
        method: str,
        request: Any,
        metadata: tuple[tuple[str, str], ...] = (),
        *,
        idempotent: bool = True,
    ) -> Any:
        """One call, sent again after failures that allow it (see the module
        docstring). A call that is not `idempotent` is sent again only when it
        certainly never reached a server; an unknown outcome raises
        `OutcomeUnknown` for the verb to resolve."""
        backoff = _retry_backoff(self.retry_timeout)
        while True:
            server = self._current
            try:
                rpc = getattr(self._stub(), method)
                return await rpc(request, timeout=self.config.timeout, metadata=metadata or None)
            except grpc.aio.AioRpcError as e:
                error = await self._retry_or_raise(e, backoff, server, idempotent=idempotent)
                if error is not None:
                    raise error from None

    async def _retry_or_raise(
        self, e: grpc.aio.AioRpcError, backoff: Backoff, server: int, *, idempotent: bool
    ) -> errors.StatusError | None:
        """None when the call should be tried again (after sleeping), else the
        error to raise. `server`: the index of the server the call went to."""
        error = status.from_grpc(e.code(), e.details(), e.trailing_metadata() or ())
        answered = _from_server(e)
        if not answered and (failed := _tls_failure(e, self.config)) is not None:
            return failed
        outcome = _classify(e.code(), e.details() or "", error if answered else None)
        if outcome == "answered":
            return error
        if not answered and e.code() == grpc.StatusCode.UNAVAILABLE:
            self._fail_over(server)
        if outcome == "unknown" and not idempotent:
            return _outcome_unknown(error)
        if outcome == "unknown" and e.code() != grpc.StatusCode.UNAVAILABLE:
            return error  # a deadline: the caller's time is spent
        if not await backoff.sleep(at_least=_retry_after(error)):
            return _closed_hint(error, e, self.config)
        return None

    async def _stream(
        self, method: str, request: Callable[[], Any], *, replayable: bool = True
    ) -> AsyncIterator[Any]:
        """The responses of a server-streaming call. A call that fails to
        reach its server before any response is tried on the next server,
        with back-off, as unary calls are; an error the server itself sent
        is raised at once."""
        backoff = _retry_backoff(self.retry_timeout)
        while True:
            call = getattr(self._stub(), method)(request())
            answered = False
            try:
                async for response in call:
                    answered = True
                    yield response
                return
            except grpc.aio.AioRpcError as e:
                error = status.from_grpc(e.code(), e.details(), e.trailing_metadata() or ())
                unreached = e.code() == grpc.StatusCode.UNAVAILABLE and not _from_server(e)
                if unreached and (failed := _tls_failure(e, self.config)) is not None:
                    raise failed from None
                if answered or not replayable or not unreached:
                    raise error from None
                self._fail_over()
                if not await backoff.sleep():
                    raise _closed_hint(error, e, self.config) from None
            finally:
                call.cancel()

    # -- verbs ----------------------------------------------------------------------

    def info(self, kind: type[Message]) -> ResourceInfo:
        return self._scheme.for_message(kind)

    async def create(self, obj: M, *, namespace: str | None = None, dry_run: bool = False) -> M:
        """Stores a new object. With `generateName` (and no name) the client
        picks the name's random suffix, another one while a name is taken.
        Never creates twice; see the module docstring for how a lost answer
        is resolved."""
        info = self.info(type(obj))
        ns = namespace or obj.metadata.namespace or self.namespace  # type: ignore[attr-defined]
        if dry_run:  # writes nothing: any failure may be sent again
            request = api.CreateRequest(
                ref=_ref(info, ns), object=obj.SerializeToString(), dry_run=True
            )
            return type(obj).FromString((await self._call("Create", request)).object)
        obj = _copy(obj)
        m = obj.metadata  # type: ignore[attr-defined]
        generate = not m.name and bool(m.generate_name)
        uid = str(uuid.uuid4())
        for _ in range(_NAME_TRIES if generate else 1):
            if generate:
                m.name = generate_name(m.generate_name)
            try:
                return await self._create_once(info, ns, obj, uid)
            except errors.AlreadyExists:
                if not generate:
                    raise
            except errors.Invalid as e:
                if not generate:
                    raise
                raise _as_generate_name(e, m.name, m.generate_name) from None
        raise errors.AlreadyExists(
            f"{info.group_resource}: {_NAME_TRIES} names generated from {m.generate_name!r} "
            "were all taken; retry, or choose another generateName",
            kind=info.group_resource,
        )

    async def _create_once(self, info: ResourceInfo, namespace: str, obj: M, uid: str) -> M:
        """Creates `obj` under its name with the proposed `uid`, resolving
        lost answers by reading the name (see the module docstring)."""
        name = obj.metadata.name  # type: ignore[attr-defined]
        request = api.CreateRequest(ref=_ref(info, namespace), object=obj.SerializeToString())
        metadata = ((CREATE_UID_METADATA, uid),)
        backoff = _retry_backoff(self.retry_timeout)
        lost: OutcomeUnknown | None = None  # the last lost answer, once there was one
        while True:
            try:
                response = await self._call("Create", request, metadata, idempotent=False)
                return type(obj).FromString(response.object)
            except OutcomeUnknown as e:
                lost = e
            except errors.AlreadyExists:
                if lost is None:
                    raise  # nothing of ours was ever in doubt: the name was taken
            try:
                stored = await self.get(type(obj), name, namespace=namespace)
            except errors.NotFound:
                pass  # not stored (yet): send it again
            except (errors.Unavailable, errors.Timeout):
                raise _outcome_unknown(lost, f'create {info.group_resource} "{name}"') from None
            else:
                if stored.metadata.uid == uid:  # type: ignore[attr-defined]
                    return stored
                raise errors.already_exists(info.group_resource, name)
            log.info(
                "create outcome unknown; sending it again",
                extra={"resource": info.plural, "object": name, "error": str(lost)},
            )
            if not await backoff.sleep():
                raise _outcome_unknown(lost, f'create {info.group_resource} "{name}"') from None

    async def create_events(
        self, events: Sequence[Event]
    ) -> builtins.list[Event | errors.StatusError]:
        """Creates Events in one call (the API server's CreateEvents), each
        in the namespace its metadata names: returns, in order, each Event
        as stored or the error that refused it alone (one refused never
        fails the others). Raises only when the call as a whole failed (the
        server unreachable, the batch over its limit: TooLarge). A call
        whose answer was lost is sent again: an Event it had written comes
        back AlreadyExists."""
        request = api.CreateEventsRequest(events=[e.SerializeToString() for e in events])
        response = await self._call("CreateEvents", request)
        return [
            status.from_status(r.status) if r.HasField("status") else Event.FromString(r.object)
            for r in response.results
        ]

    async def get(self, kind: type[M], name: str, *, namespace: str | None = None) -> M:
        info = self.info(kind)
        request = api.GetRequest(ref=_ref(info, namespace or self.namespace, name))
        response = await self._call("Get", request)
        return kind.FromString(response.object)

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
        """Objects of `kind` in `namespace` (None: every namespace)."""
        info = self.info(kind)
        request = api.ListRequest(
            ref=_ref(info, namespace or ""),
            label_selector=label_selector,
            field_selector=field_selector,
            limit=limit,
            resource_version=resource_version,
            **{"continue": continue_token or ""},
        )
        response = await self._call("List", request)
        return ObjectList(
            [kind.FromString(item) for item in response.items],
            response.resource_version,
            getattr(response, "continue") or None,
            response.remaining_item_count,
        )

    async def update(self, obj: M, *, subresource: str = "", dry_run: bool = False) -> M:
        """Replaces the object; Conflict when its resourceVersion is stale
        (an object without one overwrites unconditionally)."""
        info = self.info(type(obj))
        m = obj.metadata  # type: ignore[attr-defined]
        namespace = m.namespace or self.namespace
        request = api.UpdateRequest(
            ref=_ref(info, namespace, m.name, subresource),
            object=obj.SerializeToString(),
            dry_run=dry_run,
        )
        if dry_run or not m.resource_version:  # idempotent: the same replace again
            return type(obj).FromString((await self._call("Update", request)).object)
        backoff = _retry_backoff(self.retry_timeout)
        lost: OutcomeUnknown | None = None
        while True:
            try:
                response = await self._call("Update", request, idempotent=False)
                return type(obj).FromString(response.object)
            except OutcomeUnknown as e:
                lost = e
            except errors.Conflict:
                if lost is None:
                    raise
                # ours, or another writer's: the object tells
                stored = await self.get(type(obj), m.name, namespace=namespace)
                if _holds(stored, obj, subresource):
                    return stored
                what = f'update {info.group_resource} "{m.name}"'
                raise _outcome_unknown(lost, what) from None
            if not await backoff.sleep():
                raise _outcome_unknown(lost, f'update {info.group_resource} "{m.name}"') from None

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
        body = patch if isinstance(patch, bytes) else _json(patch)
        request = api.PatchRequest(
            ref=_ref(self.info(kind), namespace or self.namespace, name, subresource),
            patch_type=patch_type,
            patch=body,
            dry_run=dry_run,
        )
        # Merge and strategic patches give the same result applied twice;
        # a JSON patch (an "add" to a list, say) may not.
        response = await self._call("Patch", request, idempotent=patch_type != "json")
        return kind.FromString(response.object)

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
        """`as_node`: for node agents, the node they speak for (only it may
        delete its mirror pods)."""
        options = _delete_options(grace_period_seconds, propagation_policy, preconditions, dry_run)
        request = api.DeleteRequest(
            ref=_ref(self.info(kind), namespace or self.namespace, name), options=options
        )
        metadata = ((NODE_METADATA, as_node),) if as_node else ()
        backoff = _retry_backoff(self.retry_timeout)
        lost: OutcomeUnknown | None = None
        while True:
            try:
                response = await self._call("Delete", request, metadata, idempotent=dry_run)
                return Deleted(kind.FromString(response.object), response.deleted)
            except OutcomeUnknown as e:
                lost = e
            except errors.NotFound:
                if lost is None:
                    raise
                what = f'delete {request.ref.resource} "{name}"'
                if preconditions is None or not preconditions.HasField("uid"):
                    raise _outcome_unknown(
                        lost, what, "it is gone, but maybe not by this call"
                    ) from None
                gone = kind()
                gone.metadata.name = name  # type: ignore[attr-defined]
                gone.metadata.namespace = request.ref.namespace  # type: ignore[attr-defined]
                gone.metadata.uid = preconditions.uid  # type: ignore[attr-defined]
                return Deleted(gone, True)
            if not await backoff.sleep():
                raise _outcome_unknown(lost, f'delete {request.ref.resource} "{name}"') from None

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
        options = _delete_options(grace_period_seconds, propagation_policy, None, False)
        request = api.DeleteCollectionRequest(
            ref=_ref(self.info(kind), namespace or ""),
            label_selector=label_selector,
            field_selector=field_selector,
            options=options,
        )
        response = await self._call("DeleteCollection", request)
        return [kind.FromString(item) for item in response.items]

    # -- subresources ---------------------------------------------------------------

    async def get_scale(
        self, kind: type[Message], name: str, *, namespace: str | None = None
    ) -> Scale:
        request = api.GetRequest(
            ref=_ref(self.info(kind), namespace or self.namespace, name, "scale")
        )
        return Scale.FromString((await self._call("Get", request)).object)

    async def update_scale(
        self, kind: type[Message], scale: Scale, *, namespace: str | None = None
    ) -> Scale:
        ns = namespace or scale.metadata.namespace or self.namespace
        request = api.UpdateRequest(
            ref=_ref(self.info(kind), ns, scale.metadata.name, "scale"),
            object=scale.SerializeToString(),
        )
        return Scale.FromString((await self._call("Update", request)).object)

    async def scale(
        self, kind: type[Message], name: str, replicas: int, *, namespace: str | None = None
    ) -> Scale:
        """Sets the replicas of a Deployment, ReplicaSet or StatefulSet."""
        body = _json({"spec": {"replicas": replicas}})
        request = api.PatchRequest(
            ref=_ref(self.info(kind), namespace or self.namespace, name, "scale"),
            patch_type="merge",
            patch=body,
        )
        return Scale.FromString((await self._call("Patch", request)).object)

    async def bind(
        self, name: str, node: str, *, namespace: str | None = None, resource_version: str = ""
    ) -> Any:
        """Assigns a pod to a node (the scheduler's pods/binding); Conflict if
        the pod is already assigned. Returns the updated Pod."""
        from kpy.api.core.v1 import Pod

        binding = Binding()
        binding.metadata.name = name
        binding.metadata.resource_version = resource_version
        binding.target.kind = "Node"
        binding.target.name = node
        namespace = namespace or self.namespace
        request = api.CreateRequest(
            ref=_ref(self.info(Pod), namespace, name, "binding"),
            object=binding.SerializeToString(),
        )
        backoff = _retry_backoff(self.retry_timeout)
        lost: OutcomeUnknown | None = None
        while True:
            try:
                return Pod.FromString(
                    (await self._call("Create", request, idempotent=False)).object
                )
            except OutcomeUnknown as e:
                lost = e
            except errors.Conflict:
                if lost is None:
                    raise
                pod = await self.get(Pod, name, namespace=namespace)
                if pod.spec.node_name == node:
                    return pod  # our binding, or one to the same node
                raise
            if not await backoff.sleep():
                raise _outcome_unknown(lost, f'bind pod "{name}"') from None

    async def evict(
        self,
        name: str,
        *,
        namespace: str | None = None,
        grace_period_seconds: int | None = None,
        dry_run: bool = False,
    ) -> None:
        """Deletes a pod through pods/eviction (policy/v1 Eviction), which
        refuses with `errors.EvictionRefused` (429) while the pod's
        PodDisruptionBudget allows no disruption; that refusal is not sent
        again here, the caller decides when to ask again. A lost answer is
        resolved by reading the pod: gone or terminating means evicted."""
        from kpy.api.core.v1 import Pod
        from kpy.api.policy.v1 import Eviction

        namespace = namespace or self.namespace
        eviction = Eviction()
        eviction.metadata.name = name
        eviction.metadata.namespace = namespace
        eviction.delete_options.CopyFrom(_delete_options(grace_period_seconds, None, None, dry_run))
        request = api.CreateRequest(
            ref=_ref(self.info(Pod), namespace, name, "eviction"),
            object=eviction.SerializeToString(),
            dry_run=dry_run,
        )
        backoff = _retry_backoff(self.retry_timeout)
        while True:
            try:
                await self._call("Create", request, idempotent=dry_run)
                return
            except OutcomeUnknown as e:
                lost = e
            try:
                pod = await self.get(Pod, name, namespace=namespace)
            except errors.NotFound:
                return
            if pod.metadata.HasField("deletion_timestamp"):
                return
            if not await backoff.sleep():
                raise _outcome_unknown(lost, f'evict pod "{name}"') from None

    async def request_token(
        self,
        namespace: str,
        name: str,
        *,
        audiences: Sequence[str] = (),
        expiration_seconds: int | None = None,
        bound_pod: Pod | None = None,
    ) -> TokenRequest:
        """A token of ServiceAccount `namespace/name` (`create
        serviceaccounts/NAME/token`, Kubernetes' TokenRequest): for
        `audiences` (empty: the server's --api-audiences), valid
        `expiration_seconds` (None: the server's default, an hour; at least
        600; the server may shorten it), bound to `bound_pod` (by name and
        uid: the token stops working when that pod goes). The token is in
        `status.token`, its end in `status.expirationTimestamp`. NotFound
        when the ServiceAccount (or the pod) does not exist."""
        request = TokenRequest()
        request.spec.audiences.extend(audiences)
        if expiration_seconds is not None:
            request.spec.expiration_seconds = expiration_seconds
        if bound_pod is not None:
            ref = request.spec.bound_object_ref
            ref.kind, ref.api_version = "Pod", "v1"
            ref.name, ref.uid = bound_pod.metadata.name, bound_pod.metadata.uid
        return await self.create_token(namespace, name, request)

    async def create_token(self, namespace: str, name: str, request: TokenRequest) -> TokenRequest:
        """Sends `request` as it is to serviceaccounts/NAME/token (any
        bound object: a Pod or a Secret) and returns the answered
        TokenRequest. A lost answer is asked again: each call only issues
        a new token."""
        from kpy.api.core.v1 import ServiceAccount

        call = api.CreateRequest(
            ref=_ref(self.info(ServiceAccount), namespace, name, "token"),
            object=request.SerializeToString(),
        )
        return TokenRequest.FromString((await self._call("Create", call)).object)

    async def whoami(self) -> api.SelfSubjectReviewResponse:
        """Who the server takes this client to be: user name, uid and
        groups (Kubernetes' SelfSubjectReview; `kpyctl auth whoami`)."""
        response: api.SelfSubjectReviewResponse = await self._call(
            "SelfSubjectReview", api.SelfSubjectReviewRequest()
        )
        return response

    async def access_review(self, request: api.AccessReviewRequest) -> api.AccessReviewResponse:
        """May this client (or the user `request.impersonate` names) do
        what `request` describes? (SelfSubjectAccessReview; `kpyctl auth
        can-i`.) Impersonating needs the `impersonate` verb on that user
        and those groups, else Forbidden."""
        response: api.AccessReviewResponse = await self._call("SelfSubjectAccessReview", request)
        return response

    async def rules_review(self, request: api.RulesReviewRequest) -> api.RulesReviewResponse:
        """What RBAC lets this client (or whom it impersonates) do in a
        namespace (SelfSubjectRulesReview; `kpyctl auth can-i --list`)."""
        response: api.RulesReviewResponse = await self._call("SelfSubjectRulesReview", request)
        return response

    async def resources(self) -> builtins.list[api.APIResource]:
        response = await self._call("Resources", api.ResourcesRequest())
        return list(response.resources)

    async def logs(
        self,
        name: str,
        *,
        namespace: str | None = None,
        container: str = "",
        follow: bool = False,
        previous: bool = False,
        tail_lines: int = 0,
    ) -> AsyncIterator[bytes]:
        from kpy.api.core.v1 import Pod

        request = api.LogRequest(
            ref=_ref(self.info(Pod), namespace or self.namespace, name, "log"),
            container=container,
            follow=follow,
            previous=previous,
            tail_lines=tail_lines,
        )
        async for chunk in self._stream("Logs", lambda: request):
            yield chunk.data

    async def exec(
        self,
        name: str,
        command: builtins.list[str],
        *,
        namespace: str | None = None,
        container: str = "",
        stdin: AsyncIterator[bytes] | None = None,
    ) -> AsyncIterator[api.ExecResponse]:
        """Runs `command` in a container of pod `name`; yields its output as
        it comes, and last a response with `exit_code` set."""
        from kpy.api.core.v1 import Pod

        first = api.ExecRequest(
            ref=_ref(self.info(Pod), namespace or self.namespace, name, "exec"),
            container=container,
            command=command,
            stdin=stdin is not None,
        )

        async def requests() -> AsyncIterator[api.ExecRequest]:
            yield first
            if stdin is not None:
                async for data in stdin:
                    yield api.ExecRequest(stdin_data=data)
                yield api.ExecRequest(stdin_closed=True)

        # A stream that never reached a server is opened again on the next
        # one; with stdin, only while none of it has been sent.
        async for response in self._stream("Exec", requests, replayable=stdin is None):
            yield response

    async def port_forward(
        self,
        name: str,
        port: int,
        data: AsyncIterator[bytes],
        *,
        namespace: str | None = None,
    ) -> AsyncIterator[bytes]:
        """One TCP connection to `port` of pod `name`, through the API server
        and the agent of the pod's node: sends the chunks of `data` (its end
        half-closes the connection) and yields what the pod sends until its
        side closes. A failure to connect (the pod not Running, nothing
        listening) is raised as the server's error, BadRequest. Never
        replayed on another server: `data` may have been read."""
        from kpy.api.core.v1 import Pod

        first = api.PortForwardRequest(
            ref=_ref(self.info(Pod), namespace or self.namespace, name, "portforward"), port=port
        )

        async def requests() -> AsyncIterator[api.PortForwardRequest]:
            yield first
            async for chunk in data:
                yield api.PortForwardRequest(data=chunk)

        async for response in self._stream("PortForward", requests, replayable=False):
            yield response.data

    async def stats(
        self, *, namespace: str = "", node: str = "", nodes: bool = False
    ) -> api.StatsResponse:
        """Usage figures of pods (in `namespace`, "" for all) and nodes, as
        the node agents report them."""
        request = api.StatsRequest(namespace=namespace, node=node, nodes=nodes)
        response: api.StatsResponse = await self._call("Stats", request)
        return response

    # -- watch ------------------------------------------------------------------------

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
    ) -> Watch[M]:
        """Changes to objects of `kind` in `namespace` (None: every namespace)
        after `resource_version` ("": an ADDED event per current object
        first). Use as `async with client.watch(Pod) as events: async for
        event in events:`; see `Watch` for what it guarantees.
        `timeout_seconds` bounds each stream (0: the server's 5 to 10
        minutes); the watch resumes after it, so it never ends by itself."""
        request = api.WatchRequest(
            ref=_ref(self.info(kind), namespace or ""),
            label_selector=label_selector,
            field_selector=field_selector,
            resource_version=resource_version,
            allow_watch_bookmarks=bookmarks,
            timeout_seconds=timeout_seconds,
        )
        return Watch(self, kind, request)


class Watch(Generic[M]):
    """A resuming watch; see `Client.watch`. Read it from one task.

    Contract: every change after the starting version arrives once, in
    resource-version order. `resource_version` is the resume point: the
    version of the last event or bookmark received. A watch from "" (or "0")
    holds its initial ADDED events back until the server marks their end
    (a bookmark annotated `k8s.io/initial-events-end`), so a stream that
    breaks during them is restarted without delivering any twice; only then
    does the resume point move. A stream that ends, is shed because the
    reader fell behind or refused over the server's watch limit
    (TooManyRequests: re-opened no sooner than its retry-after hint) or
    loses its server (Unavailable;
    a server that cannot be reached is left for the next configured one) is
    re-opened from the resume point with back-off; one outage may last
    `retry_timeout` seconds before its error is raised. Expired (the version
    is compacted: list, then watch from the list's version) and errors about
    the request itself end the watch. A cancelled read loses nothing: the
    next read re-opens the stream. Bookmarks are delivered only if asked
    for, but always advance the resume point."""

    def __init__(self, client: Client, kind: type[M], request: Any) -> None:
        self._client = client
        self._kind = kind
        self._request = request
        self._bookmarks = request.allow_watch_bookmarks
        self._request.allow_watch_bookmarks = True
        self._call: Any = None
        self._pending: deque[WatchEvent[M]] = deque()
        # the initial ADDED events, until their end; None once they are delivered
        self._initial: list[WatchEvent[M]] | None = (
            [] if request.resource_version in ("", "0") else None
        )
        self._closed = False
        self.resource_version: str = request.resource_version
        self.reconnects = 0

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
        """Ends the watch; idempotent. Iteration then stops."""
        self._closed = True
        self._drop_call()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> WatchEvent[M]:
        while not self._pending:
            if self._closed:
                raise StopAsyncIteration
            await self._receive()
        return self._pending.popleft()

    async def _receive(self) -> None:
        """Reads until there is an event to deliver or the watch is closed."""
        backoff = _retry_backoff(self._client.retry_timeout)
        while not self._pending and not self._closed:
            if self._call is None:
                self._open()
            try:
                response = await self._call.read()
            except asyncio.CancelledError:
                # grpc cancels the call with the read: re-open on the next read
                self._drop_call()
                task = asyncio.current_task()
                if self._closed and task is not None and not task.cancelling():
                    return  # close() from another task, not a cancellation of ours
                raise
            except grpc.aio.AioRpcError as e:
                self._drop_call()
                await self._recover(e, backoff)
                continue
            if response is grpc.aio.EOF:  # the server's timeout: resume
                self._drop_call()
                self.reconnects += 1
                continue
            backoff = _retry_backoff(self._client.retry_timeout)  # each outage gets the budget
            self._accept(response)

    def _open(self) -> None:
        self._request.resource_version = self.resource_version
        if self._initial is not None:
            self._initial = []  # the new stream sends them all again
        self._call = self._client._stub().Watch(self._request)

    def _drop_call(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            call.cancel()

    async def _recover(self, e: grpc.aio.AioRpcError, backoff: Backoff) -> None:
        """Returns when the stream should be re-opened (after a back-off);
        raises the error that ends the watch."""
        error = status.from_grpc(e.code(), e.details(), e.trailing_metadata() or ())
        answered = _from_server(e)
        code = e.code()
        resumable = (
            code == grpc.StatusCode.UNAVAILABLE  # Unavailable, no server
            # fell behind, or over the server's watch limit (after its hint)
            or (answered and isinstance(error, errors.TooManyRequests))
            # the server's cache has not reached our version yet
            or (answered and isinstance(error, errors.Timeout))
            # the server went away mid-stream (a local cancel raises CancelledError)
            or (code == grpc.StatusCode.CANCELLED and not answered)
        )
        if not answered and (failed := _tls_failure(e, self._client.config)) is not None:
            raise failed from None
        if not resumable:
            raise error from None
        if not answered:
            self._client._fail_over()
        if not await backoff.sleep(at_least=_retry_after(error)):
            raise error from None
        self.reconnects += 1
        log.debug(
            "resuming a watch",
            extra={"resource": self._request.ref.resource, "from": self.resource_version},
        )

    def _accept(self, response: Any) -> None:
        for event in response.events:
            if self._initial is not None:
                self._accept_initial(event)
                continue
            self.resource_version = event.resource_version
            if event.type == "BOOKMARK" and not self._bookmarks:
                continue
            obj = self._kind.FromString(event.object)
            self._pending.append(WatchEvent(event.type, obj, event.resource_version))

    def _accept_initial(self, event: Any) -> None:
        assert self._initial is not None
        obj = self._kind.FromString(event.object)
        if event.type != "BOOKMARK":
            self._initial.append(WatchEvent(event.type, obj, event.resource_version))
            return
        annotations = obj.metadata.annotations  # type: ignore[attr-defined]
        if annotations.get(_INITIAL_EVENTS_END) != "true":
            return
        self._pending.extend(self._initial)
        self._initial = None
        self.resource_version = event.resource_version
        if self._bookmarks:
            self._pending.append(WatchEvent("BOOKMARK", obj, event.resource_version))


def _channel_credentials(config: ClientConfig) -> grpc.ChannelCredentials | None:
    """TLS with the config's CA (and client certificate), and its token as
    call credentials; None for plaintext (no CA)."""
    tls = config.tls
    if tls is None:
        return None
    credentials = grpc.ssl_channel_credentials(tls.ca_pem, tls.key_pem, tls.cert_pem)
    if config.token_file:
        reader = TokenFile(config.token_file, config.token)
        token = grpc.metadata_call_credentials(reader, name="token-file")
        credentials = grpc.composite_channel_credentials(credentials, token)
    elif config.token:
        token = grpc.access_token_call_credentials(config.token)  # authorization: Bearer
        credentials = grpc.composite_channel_credentials(credentials, token)
    return credentials


class TokenFile(grpc.AuthMetadataPlugin):
    """`authorization: Bearer <token>` from a token file, read again when
    the file changes (its inode, size or modification time: a projected
    ServiceAccount token is replaced by a rename before it expires). A file
    that cannot be read, or holds no token, keeps the last token sent:
    the server's Unauthorized then says it is stale. gRPC calls it from
    its own thread before every call; a stat is all it costs."""

    def __init__(self, path: str, token: str) -> None:
        self._path = path
        self._token = token
        self._seen: tuple[int, int, int] | None = None
        self._lock = threading.Lock()

    def current(self) -> str:
        """The token to send now."""
        with self._lock:
            try:
                st = os.stat(self._path)
                seen = (st.st_ino, st.st_size, st.st_mtime_ns)
                if seen != self._seen:
                    with open(self._path, encoding="utf-8", errors="replace") as f:
                        text = f.read().strip()
                    if text and not any(c.isspace() for c in text):
                        self._token = text
                    self._seen = seen
            except OSError as e:
                log.warning(
                    "cannot read the token file; sending the last token",
                    extra={"path": self._path, "error": e.strerror},
                )
            return self._token

    def __call__(
        self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback
    ) -> None:
        callback((("authorization", f"Bearer {self.current()}"),), None)


def _with_tls_name(
    target: str, options: list[tuple[str, Any]]
) -> tuple[str, list[tuple[str, Any]]]:
    """A balancing target (`ipv4:a:1,b:2`) checks every server's certificate
    against the first server's host: gRPC would check the whole list."""
    if not target.startswith(("ipv4:", "ipv6:")):
        return target, options
    first = target.partition(":")[2].split(",")[0]
    host = first.rpartition(":")[0].strip("[]")
    return target, [*options, ("grpc.ssl_target_name_override", host)]


def _tls_failure(e: grpc.aio.AioRpcError, config: ClientConfig) -> TLSHandshakeFailed | None:
    """The TLS handshake failures retrying cannot fix, as errors that say
    what to check; None for any other failure."""
    details = e.details() or ""
    where = _config_name(config)
    tls = config.tls
    if tls is not None and "WRONG_VERSION_NUMBER" in details:
        return TLSHandshakeFailed(
            f"the API server at {', '.join(config.servers)} does not speak TLS: remove "
            f"certificate-authority (and the credentials) from {where}, or start "
            "kpy-apiserver with --tls-cert-file and --tls-private-key-file"
        )
    if tls is None or ("CERTIFICATE_VERIFY_FAILED" not in details and "Hostname" not in details):
        return None
    if "expired" in details:
        return TLSHandshakeFailed(
            "certificate verify failed: the API server's certificate has expired; issue it "
            "a new one (kpy.pki.issue_server) and restart the server"
        )
    if "Hostname" in details:
        return TLSHandshakeFailed(
            f"certificate verify failed: the API server's certificate does not name the "
            f"address {config.servers[0]}; connect by an address its certificate lists, or "
            "issue it a certificate for this one"
        )
    return TLSHandshakeFailed(
        "certificate verify failed: the API server's certificate is not signed by the CA in "
        f"{tls.ca_source or 'the certificate-authority'}; check that the certificate-authority "
        f"of {where} is this cluster's CA"
    )


def _closed_hint(
    error: errors.StatusError, e: grpc.aio.AioRpcError, config: ClientConfig
) -> errors.StatusError:
    """`error`, with what to check when the server kept closing the
    connection before any answer: its TLS handshake refused us (a server
    that wants TLS reached without it, or a client certificate it does not
    accept). gRPC's client cannot tell those apart from a server going away,
    so this is said only once retrying is over."""
    if e.code() != grpc.StatusCode.UNAVAILABLE or "Socket closed" not in (e.details() or ""):
        return error
    where = _config_name(config)
    servers = ", ".join(config.servers)
    if config.tls is None:
        hint = (
            f"the API server at {servers} closed the connection before answering: if it "
            "serves TLS, set certificate-authority (and client-certificate and client-key, "
            f"or token) in {where}"
        )
    elif config.tls.cert_pem is None:
        hint = (
            f"the API server at {servers} closed the connection during the TLS handshake: "
            f"it may require a client certificate; set client-certificate and client-key in "
            f"{where}, or, to authenticate with a token, use the server's --token-port"
        )
    else:
        hint = (
            f"the API server at {servers} closed the connection during the TLS handshake: "
            f"it refused the client certificate {config.tls.cert_source}"
            f"{_expiry(config.tls.cert_pem)}; use one signed by the server's --client-ca-file"
        )
    return TLSHandshakeFailed(hint)


def _config_name(config: ClientConfig) -> str:
    return f"the kpy config {config.source}" if config.source else "the kpy config"


def _expiry(cert_pem: bytes) -> str:
    """ " (expired at T)" when the certificate has expired, else ""."""
    try:
        info = describe(cert_pem)
    except PKIError:
        return " (not a readable certificate)"
    if info.expired():
        return f" (it expired at {info.not_after:%Y-%m-%d %H:%M:%S} UTC)"
    return ""


def _retry_backoff(budget: float) -> Backoff:
    """The client's retries: jittered exponential back-off, 0.1 s doubling to
    5 s, each wait drawn from half to all of it, within `budget` seconds."""
    return Backoff(base=0.1, cap=5.0, jitter=(0.5, 1.0), budget=budget)


_RETRY_AFTER_JITTER: Final = (1.0, 1.25)


def _retry_after(error: errors.StatusError) -> float:
    """Seconds to wait before sending a call the server shed: its
    retry-after hint, jittered upwards (never sooner than it asked); 0 for
    any other error."""
    if not isinstance(error, errors.TooManyRequests) or error.retry_after_seconds <= 0:
        return 0.0
    return error.retry_after_seconds * random.uniform(*_RETRY_AFTER_JITTER)


def _from_server(e: grpc.aio.AioRpcError) -> bool:
    """Whether the failure was answered by an API server (it carries a Status)."""
    return any(key == status.STATUS_KEY for key, _ in (e.trailing_metadata() or ()))


def _json(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value).encode()


def _delete_options(
    grace: int | None, policy: str | None, preconditions: Preconditions | None, dry_run: bool
) -> DeleteOptions:
    options = DeleteOptions()
    if grace is not None:
        options.grace_period_seconds = grace
    if policy:
        options.propagation_policy = policy
    if preconditions is not None:
        options.preconditions.CopyFrom(preconditions)
    if dry_run:
        options.dry_run.append("All")
    return options


_NOT_SENT_DETAILS: Final = (
    # gRPC fails a call this way only when no connection could carry it
    # (pick_first, then round_robin over several servers)
    "failed to connect to all addresses",
    "connections to all backends failing",
    "DNS resolution failed",
)
_UNKNOWN_CODES: Final = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
    }
)


def _classify(code: grpc.StatusCode, details: str, answer: errors.StatusError | None) -> Outcome:
    """What a failed call says about its request: "answered" (the server's
    verdict), "not sent" (certainly not applied) or "unknown" (may have been
    applied). `answer` is the error the API server sent, None when the
    failure came from the transport. When unsure: unknown."""
    if answer is not None:
        if isinstance(answer, errors.EvictionRefused):
            return "answered"  # a budget's verdict: the caller decides when to ask again
        if isinstance(answer, errors.TooManyRequests):
            return "not sent"  # refused before any work
        if isinstance(answer, errors.Unavailable | errors.Timeout):
            return "unknown"  # etcd's trouble mid-write: the write may have landed
        return "answered"
    if code == grpc.StatusCode.UNAVAILABLE and any(d in details for d in _NOT_SENT_DETAILS):
        return "not sent"
    if code in _UNKNOWN_CODES:
        return "unknown"
    return "answered"


def _outcome_unknown(
    error: errors.StatusError | None, what: str = "", now: str = ""
) -> OutcomeUnknown:
    cause = f"{error}" if error is not None else "the answer was lost"
    head = f"{what}: " if what else ""
    state = f"; {now}" if now else ""
    return OutcomeUnknown(
        f"{head}the outcome is unknown, the request may or may not have been applied "
        f"({cause}){state}; read the object to see its state before trying again",
        kind=error.kind if error is not None else "",
        name=error.name if error is not None else "",
    )


def generate_name(prefix: str) -> str:
    """A name from `generateName`, as the API server would make it."""
    return prefix[:_MAX_PREFIX] + "".join(secrets.choice(_NAME_CHARS) for _ in range(5))


def _as_generate_name(e: errors.Invalid, name: str, prefix: str) -> errors.Invalid:
    """A refused generated name is a problem with the prefix the user wrote:
    reported on metadata.generateName, as the server does for names it makes."""
    causes = [
        errors.FieldError("metadata.generateName", c.reason, c.detail.replace(name, prefix))
        if c.path == "metadata.name"
        else c
        for c in e.causes
    ]
    return errors.Invalid(causes, kind=e.kind, name=prefix)


_SERVER_OWNED = ("resource_version", "generation", "creation_timestamp", "managed_fields")


def _holds(stored: Message, sent: Message, subresource: str) -> bool:
    """Whether `stored` holds what an update of `subresource` with `sent`
    wrote: the status for "status", else everything but the status and the
    metadata the server owns. Defaults the server filled in make this False
    (the caller then reports an unknown outcome, never a false success)."""
    a, b = _copy(stored), _copy(sent)
    if subresource == "status":
        return a.status == b.status  # type: ignore[attr-defined,no-any-return]
    for obj in (a, b):
        if "status" in obj.DESCRIPTOR.fields_by_name:
            obj.ClearField("status")
        m = obj.metadata  # type: ignore[attr-defined]
        for field in _SERVER_OWNED:
            if field in m.DESCRIPTOR.fields_by_name:
                m.ClearField(field)
    if not b.metadata.uid:  # type: ignore[attr-defined]
        for obj in (a, b):
            obj.metadata.ClearField("uid")  # type: ignore[attr-defined]
    return a == b


def _copy(obj: M) -> M:
    out = type(obj)()
    out.CopyFrom(obj)
    return out
