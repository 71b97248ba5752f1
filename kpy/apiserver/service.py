"""The gRPC face of the API server: requests in, registry calls, responses out.

Each handler resolves the request's ResourceRef to a `Registry`, decodes the
object bytes as the kind's message, calls the verb and encodes the answer. A
request naming a subresource goes to that subresource's handler, from the
one table in `kpy.apiserver.subresources`.
Every `StatusError` ends the call with its gRPC code and a Status in the
trailing metadata (`kpy.rpc.status`); anything else is logged with its
traceback and reported as an internal error, never a hang. A request, or an
object inside one, that does not parse is BadRequest like any other bad input
(see `serve_on`).

Before any handler runs, the `Gate` of `serve_on` authenticates the caller
when the server has authenticators (`kpy.apiserver.authentication`): a
call with no credentials, or bad ones, is Unauthorized (gRPC
UNAUTHENTICATED, message "Unauthorized") and nothing else happens; the
caller's `UserInfo` is then in `authentication.current_user` for the
handler. Next the gate applies the server's
limits (`kpy.apiserver.limits`): a request over the size limit is
RequestEntityTooLarge naming the limit, a short call waits briefly for a
seat of its priority level or is refused with TooManyRequests and a
retry-after hint, a watch over the watch limit is refused the same way. A
refused call did nothing, so any client may send it again.

Watches end normally after their timeout (5 to 10 minutes unless the client
asks for less) so that no stream lives forever; clients resume from the last
resource version they received. A watch writes the watch cache's frames as
they are: each WatchResponse is serialised once for every watcher with the
same selection, and `serve_on` registers Watch with a pass-through response
serializer so that gRPC sends those bytes without serialising again. Gets
and lists pass the cache's stored bytes on the same way
(`Registry.get_encoded`, `Registry.list_encoded`), and a list's reply joins
them rather than copying them into a message (`kpy.apiserver.replies`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
import grpc.aio
from google.protobuf.message import DecodeError

from kpy.api import errors
from kpy.api.core.v1 import Node, Pod
from kpy.api.meta.v1 import DeleteOptions
from kpy.api.selection import parse_predicate
from kpy.apiserver import audit, authentication, authorization, replies
from kpy.apiserver.limits import RequestLimiter, WatchLimit, check_batch, classify
from kpy.apiserver.proxy import NodeConnector, resolve_container
from kpy.apiserver.replies import ListReply
from kpy.apiserver.subresources import handler_for
from kpy.auth.authentication import ANONYMOUS
from kpy.auth.node import node_name_of
from kpy.rpc import status
from kpy.rpc.apiserver import v1 as api

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

    from kpy.api.scheme import ResourceInfo, Scheme
    from kpy.api.selection import Predicate
    from kpy.apiserver.audit import Auditor
    from kpy.apiserver.authorization import Authorization
    from kpy.apiserver.registry import Registry
    from kpy.auth.authentication import Chain

log = logging.getLogger("kpy.apiserver")

Context = Any  # grpc.aio.ServicerContext[request, response]; stubs are not generic-friendly

# Metadata a node agent sends to act as its node (deleting its mirror pods).
NODE_METADATA = "kpy-node"
# Metadata a client sends with a create: the uid it proposes for the object,
# so that it can recognise its own write after a failure (see kpy.client).
CREATE_UID = "kpy-create-uid"

_VERBS = ["create", "get", "list", "watch", "update", "patch", "delete", "deletecollection"]


class APIService(api.APIServicer):
    def __init__(
        self,
        registries: Mapping[tuple[str, str, str], Registry],
        scheme: Scheme,
        connector: NodeConnector,
        *,
        watch_timeout: tuple[float, float] = (300.0, 600.0),
        authorizer: Authorization | None = None,
    ) -> None:
        self._registries = registries
        self._authorizer = authorizer
        self._scheme = scheme
        self._connector = connector
        self._watch_timeout = watch_timeout

    # -- plumbing ---------------------------------------------------------------

    def _registry(self, ref: api.ResourceRef) -> Registry:
        registry = self._registries.get((ref.group, ref.version, ref.resource))
        if registry is None:
            gv = f"{ref.group}/{ref.version}" if ref.group else ref.version
            raise errors.NotFound(
                f'the server could not find the requested resource "{ref.resource}" in {gv}; '
                "list what it serves with `kpyctl api-resources`"
            )
        return registry

    def _namespace(self, registry: Registry, ref: api.ResourceRef, *, listing: bool) -> str:
        if registry.info.namespaced:
            return ref.namespace if (listing or ref.namespace) else "default"
        if ref.namespace:
            raise errors.BadRequest(
                f"{registry.info.group_resource} are cluster-scoped: give no namespace"
            )
        return ""

    def _target(self, ref: api.ResourceRef) -> tuple[Registry, str]:
        """The registry and namespace of a request about one object."""
        registry = self._registry(ref)
        return registry, self._namespace(registry, ref, listing=False)

    def _selection(self, request: Any) -> tuple[Registry, str | None, Predicate]:
        """The registry, namespace (None: all) and selectors of a list, watch
        or deletecollection request."""
        registry = self._registry(request.ref)
        namespace = self._namespace(registry, request.ref, listing=True) or None
        info = registry.info
        predicate = parse_predicate(
            info.kind, request.label_selector, request.field_selector, message=info.message
        )
        return registry, namespace, predicate

    def _name(self, ref: api.ResourceRef) -> str:
        if not ref.name:
            raise errors.BadRequest(f"{ref.resource}: a resource name is required")
        return ref.name

    async def _fail(self, context: Context, error: BaseException) -> NoReturn:
        if not isinstance(error, errors.StatusError):
            log.exception("internal error serving a request", exc_info=error)
            error = errors.Internal(f"internal error: {error!r}; see the API server's log")
        await _abort(context, error)

    # -- verbs ------------------------------------------------------------------

    async def Create(self, request: api.CreateRequest, context: Context) -> api.ObjectResponse:
        try:
            ref = request.ref
            registry, namespace = self._target(ref)
            if ref.subresource:
                written = await handler_for(registry, ref.subresource).create(
                    registry,
                    request.object,
                    namespace=namespace,
                    name=self._name(ref),
                    dry_run=request.dry_run,
                )
                return api.ObjectResponse(object=written.SerializeToString())
            obj = registry.decode(request.object)
            uid = _metadata(context, CREATE_UID)
            created = await registry.create(
                obj, namespace=namespace, dry_run=request.dry_run, uid=uid
            )
            return api.ObjectResponse(object=created.SerializeToString())
        except Exception as e:
            await self._fail(context, e)

    async def CreateEvents(
        self, request: api.CreateEventsRequest, context: Context
    ) -> api.CreateEventsResponse:
        """Many Events in one call, each answered on its own (see the
        proto): decoded, authorised (`Authorization.check_creates`),
        admitted and validated one by one, then written together
        (`Registry.create_many`). The audit log gets one entry for the call,
        annotated with how many were created and refused (see
        docs/architecture.md: one per event would cost what batching saves)."""
        try:
            check_batch("CreateEvents", len(request.events))
            registry = self._registry(api.ResourceRef(version="v1", resource="events"))
            results: list[Any] = [None] * len(request.events)
            decoded: list[tuple[int, Any]] = []
            for i, data in enumerate(request.events):
                try:
                    decoded.append((i, registry.decode(data)))
                except errors.StatusError as e:
                    results[i] = e
            if self._authorizer is not None:
                user = authentication.current_user.get()
                refusals = self._authorizer.check_creates(user, registry, [o for _, o in decoded])
                for (i, _), refused in zip(decoded, refusals, strict=True):
                    results[i] = refused
                decoded = [
                    (i, o)
                    for (i, o), refused in zip(decoded, refusals, strict=True)
                    if refused is None
                ]
            written = await registry.create_many([o for _, o in decoded])
            for (i, _), outcome in zip(decoded, written, strict=True):
                results[i] = outcome
            return _batch_response(results)
        except Exception as e:
            await self._fail(context, e)

    async def Get(self, request: api.GetRequest, context: Context) -> api.ObjectResponse:
        try:
            ref = request.ref
            registry, namespace = self._target(ref)
            name = self._name(ref)
            if ref.subresource:
                handler = handler_for(registry, ref.subresource)
                obj = await handler.get(registry, namespace=namespace, name=name)
                return api.ObjectResponse(object=obj.SerializeToString())
            # The cache's stored bytes as they are: no decode, no encode.
            return api.ObjectResponse(object=await registry.get_encoded(namespace, name))
        except Exception as e:
            await self._fail(context, e)

    async def List(  # type: ignore[override]  # answers a ListReply (see `serve_on`)
        self, request: api.ListRequest, context: Context
    ) -> ListReply:
        try:
            registry, namespace, predicate = self._selection(request)
            if request.limit < 0:
                raise errors.BadRequest("limit must not be negative")
            result = await registry.list_encoded(
                namespace,
                predicate,
                limit=request.limit,
                continue_token=getattr(request, "continue") or None,
                resource_version=request.resource_version,
            )
            return ListReply(result)
        except Exception as e:
            await self._fail(context, e)

    async def Watch(  # type: ignore[override]  # yields WatchResponses serialised already
        self, request: api.WatchRequest, context: Context
    ) -> AsyncIterator[bytes]:
        """Yields serialised WatchResponses (see `serve_on`)."""
        try:
            registry, namespace, predicate = self._selection(request)
            watcher = await registry.watch(
                namespace,
                predicate,
                resource_version=request.resource_version,
                bookmarks=request.allow_watch_bookmarks,
            )
        except Exception as e:
            await self._fail(context, e)
        timeout = float(request.timeout_seconds) or random.uniform(*self._watch_timeout)
        # One timer per stream (not per read): closing the watcher ends the
        # loop below normally, and the client resumes from its last version.
        expiry = asyncio.get_running_loop().call_later(timeout, watcher.close)
        try:
            while True:
                try:
                    # Everything queued since the last write goes in one
                    # message: a stream that waits on its client catches up
                    # in few writes.
                    response = await watcher.next_response()
                except StopAsyncIteration:
                    return
                except Exception as e:
                    await self._fail(context, e)
                yield response
        finally:
            expiry.cancel()
            watcher.close()

    async def Update(self, request: api.UpdateRequest, context: Context) -> api.ObjectResponse:
        try:
            ref = request.ref
            registry, namespace = self._target(ref)
            name = self._name(ref)
            if ref.subresource:
                updated = await handler_for(registry, ref.subresource).update(
                    registry,
                    request.object,
                    namespace=namespace,
                    name=name,
                    dry_run=request.dry_run,
                )
            else:
                updated = await registry.update(
                    registry.decode(request.object),
                    namespace=namespace,
                    name=name,
                    dry_run=request.dry_run,
                )
            return api.ObjectResponse(object=updated.SerializeToString())
        except Exception as e:
            await self._fail(context, e)

    async def Patch(self, request: api.PatchRequest, context: Context) -> api.ObjectResponse:
        try:
            ref = request.ref
            registry, namespace = self._target(ref)
            name = self._name(ref)
            if ref.subresource:
                patched = await handler_for(registry, ref.subresource).patch(
                    registry,
                    request.patch_type,
                    request.patch,
                    namespace=namespace,
                    name=name,
                    dry_run=request.dry_run,
                )
            else:
                patched = await registry.patch(
                    namespace=namespace,
                    name=name,
                    patch_type=request.patch_type,
                    body=request.patch,
                    dry_run=request.dry_run,
                )
            return api.ObjectResponse(object=patched.SerializeToString())
        except Exception as e:
            await self._fail(context, e)

    async def Delete(self, request: api.DeleteRequest, context: Context) -> api.DeleteResponse:
        try:
            ref = request.ref
            registry, namespace = self._target(ref)
            if ref.subresource:
                handler_for(registry, ref.subresource).refuse_delete(registry)
            result = await registry.delete(
                namespace, self._name(ref), request.options, as_node=_caller_node(context)
            )
            return api.DeleteResponse(
                object=result.object.SerializeToString(), deleted=result.deleted
            )
        except Exception as e:
            await self._fail(context, e)

    async def DeleteCollection(
        self, request: api.DeleteCollectionRequest, context: Context
    ) -> api.DeleteCollectionResponse:
        try:
            registry, namespace, predicate = self._selection(request)
            options = request.options if request.HasField("options") else DeleteOptions()
            deleted = await registry.delete_collection(
                namespace, predicate, options, deadline=context.time_remaining()
            )
            return api.DeleteCollectionResponse(items=[o.SerializeToString() for o in deleted])
        except Exception as e:
            await self._fail(context, e)

    # -- pods/log, pods/exec and pods/portforward ----------------------------------------

    async def _pod_and_node(self, request: api.LogRequest | api.ExecRequest) -> tuple[Pod, Node]:
        """The pod and its node; the request is told which container Kubernetes'
        rules pick, so the agent gets a name it need not resolve again."""
        ref = request.ref
        pods = self._registry(api.ResourceRef(version="v1", resource="pods"))
        pod = await pods.get(ref.namespace or "default", self._name(ref))
        assert isinstance(pod, Pod)
        request.container = resolve_container(pod, request.container)
        nodes = self._registry(api.ResourceRef(version="v1", resource="nodes"))
        node = await nodes.get("", pod.spec.node_name)
        assert isinstance(node, Node)
        return pod, node

    async def Logs(self, request: api.LogRequest, context: Context) -> AsyncIterator[api.LogChunk]:
        try:
            pod, node = await self._pod_and_node(request)
            chunks = self._connector.logs(node, pod, request)
        except Exception as e:
            await self._fail(context, e)
        try:
            async for data in chunks:
                yield api.LogChunk(data=data)
        except Exception as e:
            await self._fail(context, e)

    async def Exec(
        self, request_iterator: AsyncIterator[api.ExecRequest], context: Context
    ) -> AsyncIterator[api.ExecResponse]:
        try:
            first = await anext(request_iterator)
            pod, node = await self._pod_and_node(first)
            if not first.command:
                raise errors.BadRequest("exec needs a command to run")
            responses = self._connector.exec(node, pod, first, request_iterator)
        except Exception as e:
            await self._fail(context, e)
        try:
            async for response in responses:
                yield response
        except Exception as e:
            await self._fail(context, e)

    async def PortForward(
        self, request_iterator: AsyncIterator[api.PortForwardRequest], context: Context
    ) -> AsyncIterator[api.PortForwardResponse]:
        try:
            first = await anext(request_iterator)
            pod, node = await self._forwardable(first)
            responses = self._connector.port_forward(node, pod, first, request_iterator)
        except Exception as e:
            await self._fail(context, e)
        try:
            async for response in responses:
                yield response
        except Exception as e:
            await self._fail(context, e)

    async def _forwardable(self, request: api.PortForwardRequest) -> tuple[Pod, Node]:
        """The pod a port forward names and its node; BadRequest, in
        kubectl's words, unless the pod is Running and the port valid."""
        ref = request.ref
        pods = self._registry(api.ResourceRef(version="v1", resource="pods"))
        pod = await pods.get(ref.namespace or "default", self._name(ref))
        assert isinstance(pod, Pod)
        name = pod.metadata.name
        if pod.status.phase != "Running" or not pod.spec.node_name:
            raise errors.BadRequest(
                "unable to forward port because pod is not running. Current status="
                f"{pod.status.phase or 'Pending'}",
                name=name,
            )
        if not 0 < request.port < 65536:
            raise errors.BadRequest(
                f"cannot forward port {request.port} of pod {name}: a port is 1 to 65535",
                name=name,
            )
        nodes = self._registry(api.ResourceRef(version="v1", resource="nodes"))
        node = await nodes.get("", pod.spec.node_name)
        assert isinstance(node, Node)
        return pod, node

    async def Stats(self, request: api.StatsRequest, context: Context) -> api.StatsResponse:
        """Asks the agent of every node (or the one named) for its usage
        figures and merges them; an agent that does not answer is listed in
        `unreachable` rather than failing the whole answer."""
        try:
            nodes = self._registry(api.ResourceRef(version="v1", resource="nodes"))
            if request.node:
                found = [await nodes.get("", request.node)]
            else:
                found = list((await nodes.list(None, parse_predicate("Node"))).items)
            answers = await asyncio.gather(
                *(self._connector.stats(n, request) for n in found),  # type: ignore[arg-type]
                return_exceptions=True,
            )
            merged = api.StatsResponse()
            for node, answer in zip(found, answers, strict=True):
                if isinstance(answer, api.StatsResponse):
                    merged.pods.extend(answer.pods)
                    merged.nodes.extend(answer.nodes)
                elif isinstance(answer, Exception):
                    merged.unreachable.append(f"{_meta_name(node)}: {answer}")
                else:
                    raise answer
            return merged
        except Exception as e:
            await self._fail(context, e)

    # -- discovery ----------------------------------------------------------------

    async def Resources(
        self, request: api.ResourcesRequest, context: Context
    ) -> api.ResourcesResponse:
        return api.ResourcesResponse(
            resources=[_describe(registry) for registry in self._registries.values()]
        )

    # -- authentication -------------------------------------------------------------

    async def SelfSubjectReview(
        self, request: api.SelfSubjectReviewRequest, context: Context
    ) -> api.SelfSubjectReviewResponse:
        """The caller, as `_guard` authenticated it (anonymous on a server
        without authenticators)."""
        user = authentication.current_user.get()
        return api.SelfSubjectReviewResponse(
            username=user.name, uid=user.uid, groups=list(user.groups)
        )

    async def SelfSubjectAccessReview(
        self, request: api.AccessReviewRequest, context: Context
    ) -> api.AccessReviewResponse:
        """May the caller (or whom it impersonates) do this? (`kpyctl auth can-i`)"""
        try:
            user = authentication.current_user.get()
            return authorization.access_review(self._authorizer, user, request)
        except Exception as e:
            await self._fail(context, e)

    async def SelfSubjectRulesReview(
        self, request: api.RulesReviewRequest, context: Context
    ) -> api.RulesReviewResponse:
        """What RBAC grants the caller in a namespace (`kpyctl auth can-i --list`)."""
        try:
            user = authentication.current_user.get()
            return authorization.rules_review(self._authorizer, user, request)
        except Exception as e:
            await self._fail(context, e)


def _batch_response(results: list[Any]) -> api.CreateEventsResponse:
    """The answer to a batched create whose outcomes, in order, are
    `results` (each a stored object or a StatusError); the call's audit
    entry is annotated with the counts."""
    response = api.CreateEventsResponse()
    failed = 0
    for outcome in results:
        item = response.results.add()
        if isinstance(outcome, errors.StatusError):
            failed += 1
            item.status.CopyFrom(status.to_status(outcome))
        else:
            item.object = outcome.SerializeToString()
    audit.annotate("kpy.io/batch", f"{len(results) - failed} created, {failed} refused")
    return response


def _caller_node(context: Context) -> str:
    """The node the caller is: the authenticated `system:node:<name>` when
    the server authenticates callers (an authenticated caller's `kpy-node`
    metadata is ignored); otherwise the node an agent says it speaks for
    (metadata `kpy-node`), which guards against mistakes, not attacks."""
    user = authentication.current_user.get()
    if user != ANONYMOUS:
        return node_name_of(user)
    for key, value in context.invocation_metadata() or ():
        if key == NODE_METADATA:
            return str(value)
    return ""


def _metadata(context: Context, key: str) -> str:
    """The value of request metadata `key` ("" when absent)."""
    for k, value in context.invocation_metadata() or ():
        if k == key:
            return str(value)
    return ""


def _meta_name(obj: Any) -> str:
    return str(obj.metadata.name)


def _describe(registry: Registry) -> api.APIResource:
    info: ResourceInfo = registry.info
    return api.APIResource(
        group=info.group,
        version=info.version,
        kind=info.kind,
        resource=info.plural,
        namespaced=info.namespaced,
        short_names=list(info.short_names),
        verbs=_VERBS,
        subresources=list(registry.subresources()),
        singular_name=info.singular,
        categories=list(info.categories),
    )


@dataclass(frozen=True, slots=True)
class Gate:
    """What every call passes before its handler: `authenticators` know
    the caller (None: anyone may call, as `ANONYMOUS`), `authorizer` decides
    what it may do (None: everything, AlwaysAllow), a request over
    `max_request_bytes` (0: no limit) is refused with TooLarge, a short call
    waits for a seat of `requests` (see `kpy.apiserver.limits`), a watch
    counts against `watches`. None: no limit."""

    requests: RequestLimiter | None = None
    watches: WatchLimit | None = None
    max_request_bytes: int = 0
    authenticators: Chain | None = None
    authorizer: Authorization | None = None
    #: audits every call, outermost, so refusals are audited too (None: no audit log)
    auditor: Auditor | None = None


def serve_on(server: grpc.aio.Server, service: APIService, gate: Gate | None = None) -> None:
    """Registers `service` on `server`, every method guarded by `_guard`
    (and `gate`'s limits); Watch sends the bytes its handler yields as they
    are (`_preserialised`), List joins its `ListReply` (`replies.serialise`)."""
    gate = gate or Gate()
    recorder = _Recorder()
    api.add_APIServicer_to_server(service, recorder)  # type: ignore[arg-type]
    if not recorder.handlers:
        raise RuntimeError("the generated gRPC code registered no method handlers")
    handlers = dict(recorder.handlers)
    handlers["Watch"] = handlers["Watch"]._replace(response_serializer=_preserialised)
    handlers["List"] = handlers["List"]._replace(response_serializer=replies.serialise)
    guarded = {method: _guard(method, handler, gate) for method, handler in handlers.items()}
    if gate.auditor is not None:
        guarded = {method: gate.auditor.wrap(method, h) for method, h in guarded.items()}
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(recorder.service, guarded),)
    )
    server.add_registered_method_handlers(recorder.service, guarded)


def _preserialised(response: bytes) -> bytes:
    """The response serializer of Watch, whose handler yields WatchResponses
    serialised already (by the watch cache, once per group of watchers)."""
    return response


# -- requests that do not parse -------------------------------------------------------
#
# gRPC decodes a request before any handler runs, and answers one that does not
# parse with UNKNOWN and no Status: to the SDK, an internal error. Malformed
# input is the caller's fault, so every method decodes leniently instead and
# its handler answers BadRequest (INVALID_ARGUMENT with a Status) like any
# other bad request.


class _Recorder:
    """Stands in for a server to collect what the generated code registers."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass  # the same handlers arrive through add_registered_method_handlers

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self.service = service
        self.handlers = dict(handlers)


@dataclass(frozen=True, slots=True)
class _Malformed:
    """What a request that does not parse, or is too large, decodes to."""

    error: errors.StatusError


def _lenient(
    method: str, decode: Callable[[bytes], Any], max_bytes: int = 0
) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        if max_bytes and len(data) > max_bytes:
            return _Malformed(
                errors.TooLarge(
                    f"the {method} request is {len(data)} bytes; the API server accepts at "
                    f"most {max_bytes} bytes per request: make the "
                    "object smaller (large data belongs in a volume, not in the API)"
                )
            )
        try:
            return decode(data)
        except DecodeError as e:
            return _Malformed(
                errors.BadRequest(f"the {method} request is not a valid message: {e}")
            )

    return parse


async def _authenticate(method: str, context: Context, chain: Chain | None) -> None:
    """Sets `current_user` to the caller; aborts the call with
    Unauthorized when the authenticators know it not."""
    try:
        user = authentication.authenticate(chain, context)
    except errors.Unauthorized as e:
        presented = authentication.credentials_of(context)
        log.info(
            "unauthenticated call refused",
            extra={
                "method": method,
                "peer": context.peer(),
                "certificate": presented.certificate_pem is not None,
                "token": bool(presented.token),
            },
        )
        await _abort(context, e)
    authentication.current_user.set(user)


async def _authorize(
    method: str, request: Any, context: Context, authorizer: Authorization | None
) -> None:
    """Aborts the call with Forbidden unless the authenticated caller may
    make it (`kpy.apiserver.authorization`); no-op without an authorizer."""
    if authorizer is None:
        return
    try:
        authorizer.check(method, request, authentication.current_user.get())
    except errors.StatusError as e:
        await _abort(context, e)


async def _prepend(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """`first`, then what `rest` yields."""
    yield first
    async for item in rest:
        yield item


async def _abort(context: Context, error: errors.StatusError) -> NoReturn:
    await context.abort(
        status.code_for(error),
        status.wire_text(error.message),
        # abort replaces the trailing metadata, the audit-id set earlier too
        status.trailing_metadata(error) + audit.trailer(),
    )
    raise AssertionError("unreachable")  # abort raises


def _guard(method: str, handler: Any, gate: Gate) -> Any:
    """`handler` (a grpc.RpcMethodHandler) for an authenticated caller
    only (when `gate.authenticators` is set; see `_authenticate`), decoding
    leniently: a malformed request, or a malformed message of a request
    stream, is BadRequest; one over the size limit is TooLarge. A short call holds a seat of
    `gate.requests` while its handler runs, a watch one of `gate.watches`;
    a call refused a seat is TooManyRequests and never reaches its handler."""
    parse = _lenient(method, handler.request_deserializer, gate.max_request_bytes)
    limiter = gate.requests
    chain = gate.authenticators
    authorizer = gate.authorizer
    if handler.unary_unary is not None:
        unary = handler.unary_unary

        async def unary_unary(request: Any, context: Context) -> Any:
            await _authenticate(method, context, chain)
            if isinstance(request, _Malformed):
                await _abort(context, request.error)
            await _authorize(method, request, context, authorizer)
            kind = classify(method, getattr(request, "ref", None)) if limiter else None
            if limiter is None or kind is None:
                return await unary(request, context)
            seat = limiter.try_acquire(kind)
            if seat is None:
                try:
                    seat = await limiter.acquire(kind)
                except errors.TooManyRequests as e:
                    await _abort(context, e)
            try:
                return await unary(request, context)
            finally:
                seat.release()

        return handler._replace(request_deserializer=parse, unary_unary=unary_unary)
    if handler.unary_stream is not None:
        stream = handler.unary_stream
        watches = gate.watches if method == "Watch" else None

        async def unary_stream(request: Any, context: Context) -> AsyncIterator[Any]:
            await _authenticate(method, context, chain)
            if isinstance(request, _Malformed):
                await _abort(context, request.error)
            await _authorize(method, request, context, authorizer)
            if watches is None:
                async for response in stream(request, context):
                    yield response
                return
            try:
                watches.enter()
            except errors.TooManyRequests as e:
                await _abort(context, e)
            try:
                async for response in stream(request, context):
                    yield response
            finally:
                watches.leave()

        return handler._replace(request_deserializer=parse, unary_stream=unary_stream)
    if handler.stream_stream is not None:
        bidi = handler.stream_stream

        async def checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
            async for request in requests:
                if isinstance(request, _Malformed):
                    raise request.error
                yield request

        async def stream_stream(
            requests: AsyncIterator[Any], context: Context
        ) -> AsyncIterator[Any]:
            await _authenticate(method, context, chain)
            if authorizer is not None:
                # The first message names the pod: authorise on it, then
                # hand the handler the whole stream.
                try:
                    first = await anext(aiter(checked(requests)), None)
                except errors.StatusError as e:
                    await _abort(context, e)
                if first is None:
                    return
                await _authorize(method, first, context, authorizer)
                requests = _prepend(first, requests)
            async for response in bidi(checked(requests), context):
                yield response

        return handler._replace(request_deserializer=parse, stream_stream=stream_stream)
    raise TypeError(f"{method}: client-streaming methods are not served")
