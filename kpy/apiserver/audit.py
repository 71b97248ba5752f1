"""The API server's audit log, as Kubernetes' auditing
(https://kubernetes.io/docs/tasks/debug/debug-cluster/audit/).

- `Policy` (`load_policy`, `parse_policy`): an `audit.k8s.io/v1` Policy,
  parsed strictly (an unknown field or level is refused naming it). Its
  rules are tried in order and the first that matches gives the level
  (None, Metadata, Request, RequestResponse); no rule matching is None.
- `request_attributes`: what a gRPC call asks, in Kubernetes' words (verb,
  group, resource, subresource, namespace, name; or a non-resource path):
  the authorizer's own `authorization.attributes_for`, so that the log and
  the authorizer judge the same request, plus the calls it does not judge.
- `Auditor.wrap` wraps a method handler: every call gets an audit ID
  (returned to the client as the trailing metadata `audit-id`, as
  Kubernetes' Audit-ID header); when it ends, an `audit.k8s.io/v1` Event
  at stage ResponseComplete is handed to the log (a stream also gets one at
  ResponseStarted, when its first message goes out: that is when gRPC sends
  its response headers). It wraps the whole guarded handler, so calls
  refused by authentication, authorization or the limits are audited too.
  `annotate` adds an annotation to the current call's event (the
  authorizer's `authorization.k8s.io/decision`).
- `AuditLog` holds events in a bounded buffer and writes them, as JSON
  lines, from its own task (`run`): recording never waits on the disk.
  A full buffer drops the event and counts it, with a warning at the 1st,
  10th, 100th... drop (as Kubernetes' batch backend). The file rotates as
  Kubernetes' (lumberjack): past `max_size_mb` it is renamed
  `NAME-<time>.EXT` and a new one opened; backups beyond `max_backups` or
  older than `max_age_days` are removed.

Secret values never reach the log: a request or response about Secrets has
no requestObject or responseObject, whatever the level (what Kubernetes'
documentation asks a policy to do, enforced here in code).
"""

from __future__ import annotations

import collections
import contextvars
import datetime
import json
import logging
import os
import sys
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import anyio
import grpc
import yaml

from kpy.api import codec, errors
from kpy.api.scheme import scheme as default_scheme
from kpy.apiserver import authentication
from kpy.apiserver.authorization import attributes_for
from kpy.auth.attributes import Attributes, UserInfo
from kpy.rpc import status

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable

    from kpy.api.scheme import ResourceInfo, Scheme

log = logging.getLogger("kpy.apiserver.audit")

__all__ = [
    "AUDIT_ID_KEY",
    "LEVELS",
    "STAGES",
    "AuditLog",
    "AuditOptions",
    "Auditor",
    "Policy",
    "PolicyError",
    "PolicyRule",
    "annotate",
    "load_policy",
    "parse_policy",
    "request_attributes",
    "trailer",
]

#: The trailing metadata carrying a call's audit ID (Kubernetes' Audit-ID header).
AUDIT_ID_KEY: Final = "audit-id"
LEVELS: Final = ("None", "Metadata", "Request", "RequestResponse")
STAGES: Final = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
_API_VERSION: Final = "audit.k8s.io/v1"
# Kubernetes' lumberjack rotates at 100 MB when no size is given.
DEFAULT_MAX_SIZE_MB: Final = 100
# Events written at once; a buffer holding this many is written without waiting.
_BATCH: Final = 1000


# -- the policy -------------------------------------------------------------------------


class PolicyError(ValueError):
    """An audit policy the server cannot run with; the message names the field."""


@dataclass(frozen=True, slots=True)
class GroupResources:
    """Resources of one API group ("" core); empty `resources`: all of them.
    An entry is `pods`, `pods/log`, `*`, `*/scale` or `pods/*`."""

    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One rule; an empty matcher matches everything."""

    level: str
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: tuple[str, ...] = ()
    omit_managed_fields: bool | None = None

    def matches(self, user: UserInfo, attrs: Attributes) -> bool:
        """Kubernetes' policy checker: every matcher given must match."""
        if self.users and user.name not in self.users:
            return False
        if self.user_groups and not any(g in self.user_groups for g in user.groups):
            return False
        if self.verbs and attrs.verb not in self.verbs:
            return False
        if self.namespaces or self.resources:
            return self._matches_resource(attrs)
        if self.non_resource_urls:
            return not attrs.resource_request and any(
                url == attrs.path or (url.endswith("*") and attrs.path.startswith(url[:-1]))
                for url in self.non_resource_urls
            )
        return True

    def _matches_resource(self, attrs: Attributes) -> bool:
        if not attrs.resource_request:
            return False
        if self.namespaces and attrs.namespace not in self.namespaces:
            return False
        if not self.resources:
            return True
        sub = attrs.subresource
        combined = f"{attrs.resource}/{sub}" if sub else attrs.resource
        for gr in self.resources:
            if gr.group != attrs.api_group:
                continue
            if not gr.resources:
                return True
            if gr.resource_names and attrs.name not in gr.resource_names:
                continue
            for res in gr.resources:
                if res in (combined, "*"):
                    return True
                if sub and res.startswith("*/") and res[2:] == sub:
                    return True
                if res.endswith("/*") and res[:-2] == attrs.resource:
                    return True
        return False


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[PolicyRule, ...] = ()
    omit_stages: tuple[str, ...] = ()
    omit_managed_fields: bool = False

    def level_of(self, user: UserInfo, attrs: Attributes) -> tuple[str, frozenset[str], bool]:
        """The level of a request (first matching rule; "None" when none
        does), the stages to omit, and whether to drop managedFields."""
        for rule in self.rules:
            if rule.matches(user, attrs):
                omit = frozenset(self.omit_stages) | frozenset(rule.omit_stages)
                managed = (
                    self.omit_managed_fields
                    if rule.omit_managed_fields is None
                    else rule.omit_managed_fields
                )
                return rule.level, omit, managed
        return "None", frozenset(), False


_POLICY_FIELDS: Final = {
    "apiVersion",
    "kind",
    "metadata",
    "rules",
    "omitStages",
    "omitManagedFields",
}
_RULE_FIELDS: Final = {
    "level",
    "users",
    "userGroups",
    "verbs",
    "resources",
    "namespaces",
    "nonResourceURLs",
    "omitStages",
    "omitManagedFields",
}
_GROUP_FIELDS: Final = {"group", "resources", "resourceNames"}


def load_policy(path: str | Path) -> Policy:
    """The policy in the YAML file `path`; PolicyError naming the file and
    field when it cannot be read or is not a valid policy."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise PolicyError(f"cannot read the audit policy {path}: {e.strerror}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PolicyError(f"{path}: not valid YAML: {e}") from e
    try:
        return parse_policy(data)
    except PolicyError as e:
        raise PolicyError(f"{path}: {e}") from e


def parse_policy(data: Any) -> Policy:
    """A Policy from its parsed YAML; PolicyError naming the field at fault."""
    if not isinstance(data, dict):
        raise PolicyError("an audit policy is a mapping with apiVersion, kind and rules")
    _known(data, _POLICY_FIELDS, "")
    if data.get("apiVersion") != _API_VERSION:
        raise PolicyError(f"apiVersion: must be {_API_VERSION}, got {data.get('apiVersion')!r}")
    if data.get("kind") != "Policy":
        raise PolicyError(f"kind: must be Policy, got {data.get('kind')!r}")
    rules_data = data.get("rules")
    if not isinstance(rules_data, list) or not rules_data:
        raise PolicyError("rules: a policy needs a list of at least one rule")
    rules = tuple(_rule(r, f"rules[{i}]") for i, r in enumerate(rules_data))
    return Policy(
        rules=rules,
        omit_stages=_stages(data.get("omitStages"), "omitStages"),
        omit_managed_fields=_bool(data.get("omitManagedFields"), "omitManagedFields") or False,
    )


def _known(data: dict[str, Any], fields: set[str], path: str) -> None:
    for key in data:
        if key not in fields:
            where = f"{path}.{key}" if path else str(key)
            raise PolicyError(
                f"{where}: unknown field; the fields here are {', '.join(sorted(fields))}"
            )


def _strings(value: Any, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{path}: must be a list of strings")
    return tuple(value)


def _bool(value: Any, path: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise PolicyError(f"{path}: must be true or false")


def _stages(value: Any, path: str) -> tuple[str, ...]:
    stages = _strings(value, path)
    for i, stage in enumerate(stages):
        if stage not in STAGES:
            raise PolicyError(
                f"{path}[{i}]: unknown stage {stage!r}; the stages are {', '.join(STAGES)}"
            )
    return stages


def _rule(data: Any, path: str) -> PolicyRule:
    if not isinstance(data, dict):
        raise PolicyError(f"{path}: a rule is a mapping with a level")
    _known(data, _RULE_FIELDS, path)
    level = data.get("level")
    if level not in LEVELS:
        raise PolicyError(
            f"{path}.level: unknown level {level!r}; the levels are {', '.join(LEVELS)}"
        )
    urls = _strings(data.get("nonResourceURLs"), f"{path}.nonResourceURLs")
    resources_data = data.get("resources")
    if resources_data is not None and not isinstance(resources_data, list):
        raise PolicyError(f"{path}.resources: must be a list of {{group, resources}}")
    resources = tuple(
        _group(g, f"{path}.resources[{i}]") for i, g in enumerate(resources_data or ())
    )
    namespaces = _strings(data.get("namespaces"), f"{path}.namespaces")
    if urls and (resources or namespaces):
        raise PolicyError(
            f"{path}.nonResourceURLs: a rule matches resources or non-resource URLs, "
            "not both: split it in two rules"
        )
    for i, url in enumerate(urls):
        if not url.startswith("/") and url != "*":
            raise PolicyError(f"{path}.nonResourceURLs[{i}]: {url!r} must start with /")
    return PolicyRule(
        level=level,
        users=_strings(data.get("users"), f"{path}.users"),
        user_groups=_strings(data.get("userGroups"), f"{path}.userGroups"),
        verbs=_strings(data.get("verbs"), f"{path}.verbs"),
        resources=resources,
        namespaces=namespaces,
        non_resource_urls=urls,
        omit_stages=_stages(data.get("omitStages"), f"{path}.omitStages"),
        omit_managed_fields=_bool(data.get("omitManagedFields"), f"{path}.omitManagedFields"),
    )


def _group(data: Any, path: str) -> GroupResources:
    if not isinstance(data, dict):
        raise PolicyError(f"{path}: must be a mapping with group and resources")
    _known(data, _GROUP_FIELDS, path)
    group = data.get("group", "")
    if not isinstance(group, str):
        raise PolicyError(f'{path}.group: must be a string ("" for the core group)')
    return GroupResources(
        group=group,
        resources=_strings(data.get("resources"), f"{path}.resources"),
        resource_names=_strings(data.get("resourceNames"), f"{path}.resourceNames"),
    )


# -- what a call asks -----------------------------------------------------------------

# Calls that need no permission, so `attributes_for` gives them none: what
# Kubernetes' request info says of them.
_OPEN: Final = {
    "SelfSubjectReview": ("authentication.k8s.io", "selfsubjectreviews"),
    "SelfSubjectAccessReview": ("authorization.k8s.io", "selfsubjectaccessreviews"),
    "SelfSubjectRulesReview": ("authorization.k8s.io", "selfsubjectrulesreviews"),
}


def request_attributes(
    method: str, request: Any, namespaced: Callable[[str, str], bool]
) -> Attributes:
    """What a call to `method` with `request` asks, as Kubernetes' request
    attributes: the authorizer's (`authorization.attributes_for`, one
    answer for both), and for the calls it does not judge the review's
    resource or, for discovery, the non-resource path `/apis`. A request
    that did not parse is the non-resource path `/<method>`."""
    if method in _OPEN:
        group, resource = _OPEN[method]
        return Attributes(verb="create", api_group=group, resource=resource)
    if method == "Resources":
        return Attributes.non_resource("get", "/apis")
    try:
        found = attributes_for(method, request, namespaced)
    except (AttributeError, errors.StatusError):  # no ref: malformed, or a stream not begun
        found = None
    if found is None:
        return Attributes.non_resource("get", f"/{method}")
    return found.attributes


# Request fields that are query parameters of Kubernetes' URL, by their names there.
_QUERY: Final = {
    "label_selector": "labelSelector",
    "field_selector": "fieldSelector",
    "resource_version": "resourceVersion",
    "continue": "continue",
    "limit": "limit",
    "timeout_seconds": "timeoutSeconds",
    "allow_watch_bookmarks": "allowWatchBookmarks",
    "container": "container",
    "follow": "follow",
    "previous": "previous",
    "tail_lines": "tailLines",
    "since_seconds": "sinceSeconds",
    "timestamps": "timestamps",
    "command": "command",
    "stdin": "stdin",
    "tty": "tty",
    "port": "ports",
    "dry_run": "dryRun",
}


def request_uri(method: str, request: Any, attrs: Attributes, version: str) -> str:
    """A kube-like path for the call (`/api/v1/namespaces/dev/pods/web`,
    `/apis/apps/v1/deployments?watch=true`), with its options as the query."""
    if not attrs.resource_request:
        return attrs.path
    base = f"/apis/{attrs.api_group}/{version}" if attrs.api_group else f"/api/{version}"
    parts = [base]
    if attrs.namespace:
        parts.append(f"namespaces/{attrs.namespace}")
    parts.append(attrs.resource)
    if attrs.name and attrs.verb not in ("list", "watch", "deletecollection"):
        parts.append(attrs.name)
    if attrs.subresource:
        parts.append(attrs.subresource)
    path = "/".join(parts)
    query: list[tuple[str, str]] = [("watch", "true")] if method == "Watch" else []
    # Only the fields set, in field order: a get has none to look at.
    for field_, value in request.ListFields() if hasattr(request, "ListFields") else ():
        key = _QUERY.get(field_.name)
        if key is None:
            continue
        if field_.name == "command":
            query.extend((key, str(c)) for c in value)
        elif field_.name == "dry_run":
            query.append((key, "All"))
        elif value is True:
            query.append((key, "true"))
        else:
            query.append((key, str(value)))
    return f"{path}?{urllib.parse.urlencode(query)}" if query else path


# -- events ------------------------------------------------------------------------

_annotations: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "kpy_audit_annotations", default=None
)
_audit_id: contextvars.ContextVar[str] = contextvars.ContextVar("kpy_audit_id", default="")


def annotate(key: str, value: str) -> None:
    """Adds an annotation to the audit event of the call being served (the
    authorizer's `authorization.k8s.io/decision` and `.../reason`); nothing
    when the call is not audited."""
    annotations = _annotations.get()
    if annotations is not None:
        annotations[key] = value


def trailer() -> tuple[tuple[str, str], ...]:
    """The trailing metadata naming the current call's audit ID (none when
    the server audits nothing): a failed call's status carries it too."""
    audit_id = _audit_id.get()
    return ((AUDIT_ID_KEY, audit_id),) if audit_id else ()


def _timestamp(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _source_ip(peer: str) -> str:
    """The address of a gRPC peer string (`ipv4:127.0.0.1:5000`, `ipv6:[::1]:5000`)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    return peer


def _is_secret(attrs: Attributes) -> bool:
    return attrs.api_group == "" and attrs.resource == "secrets"


def _response_status(error: errors.StatusError | None, code: int) -> dict[str, Any]:
    if error is None:
        return {"metadata": {}, "code": code}
    return {
        "metadata": {},
        "status": "Failure",
        "message": error.message,
        "reason": error.reason,
        "code": error.code,
    }


@dataclass(slots=True)
class _Call:
    """What an event needs of one call, gathered as it is served."""

    method: str
    audit_id: str
    received: datetime.datetime
    source_ip: str
    user_agent: str
    annotations: dict[str, str]
    request: Any = None
    user: UserInfo = field(default_factory=lambda: authentication.current_user.get())
    level: tuple[str, frozenset[str], bool] | None = None


class Auditor:
    """Audits calls by `policy` into `sink` (an `AuditLog`'s `record`)."""

    def __init__(
        self,
        policy: Policy,
        sink: Callable[[dict[str, Any]], None],
        *,
        using: Scheme = default_scheme,
        now: Callable[[], datetime.datetime] = _now,
    ) -> None:
        self.policy = policy
        self._sink = sink
        self._scheme = using
        self._now = now
        self._infos: dict[tuple[str, str], ResourceInfo] = {}

    def _info(self, group: str, resource: str) -> ResourceInfo | None:
        key = (group, resource)
        info = self._infos.get(key)
        if info is None:  # custom kinds come and go: look again on a miss
            self._infos = {(i.group, i.plural): i for i in self._scheme.all()}
            info = self._infos.get(key)
        return info

    def _namespaced(self, group: str, resource: str) -> bool:
        info = self._info(group, resource)
        return True if info is None else info.namespaced

    def attributes(self, method: str, request: Any) -> Attributes:
        return request_attributes(method, request, self._namespaced)

    def event(
        self,
        call: _Call,
        stage: str,
        *,
        error: errors.StatusError | None = None,
        response: Any = None,
    ) -> dict[str, Any] | None:
        """The event of `call` at `stage` (None when the policy logs no
        event for it); `error` is how it failed, `response` what it answered."""
        request = call.request
        attrs = self.attributes(call.method, request)
        if call.level is None:
            call.level = self.policy.level_of(call.user, attrs)
        level, omit, no_managed = call.level
        if level == "None" or stage in omit:
            return None
        ref = getattr(request, "ref", None)
        version = (ref.version if ref is not None else "") or "v1"
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": _API_VERSION,
            "level": level,
            "auditID": call.audit_id,
            "stage": stage,
            "requestURI": request_uri(call.method, request, attrs, version),
            "verb": attrs.verb,
            "user": _user(call.user),
            "sourceIPs": [call.source_ip],
        }
        if call.user_agent:
            event["userAgent"] = call.user_agent
        obj: Any = None
        if attrs.resource_request:
            name = attrs.name
            if not name and call.method == "Create":
                obj = self._decode(attrs, request.object)
                name = _name_of(obj)
            object_ref: dict[str, str] = {"resource": attrs.resource}
            for key, value in (
                ("namespace", attrs.namespace),
                ("name", name),
                ("apiGroup", attrs.api_group),
                ("apiVersion", version),
                ("subresource", attrs.subresource),
            ):
                if value:
                    object_ref[key] = value
            event["objectRef"] = object_ref
        if stage == "ResponseStarted":
            event["responseStatus"] = _response_status(None, 200)
        else:
            code = 201 if call.method == "Create" and error is None else 200
            event["responseStatus"] = _response_status(error, code)
        secret = _is_secret(attrs)
        if level in ("Request", "RequestResponse") and not secret:
            body = self._request_object(call.method, attrs, request, obj)
            if body is not None:
                event["requestObject"] = _trim(body, no_managed)
        if level == "RequestResponse" and not secret and response is not None:
            body = self._response_object(attrs, response, version)
            if body is not None:
                event["responseObject"] = _trim(body, no_managed)
        event["requestReceivedTimestamp"] = _timestamp(call.received)
        event["stageTimestamp"] = _timestamp(self._now())
        if call.annotations:
            event["annotations"] = dict(call.annotations)
        return event

    def _decode(self, attrs: Attributes, data: bytes) -> Any:
        info = self._info(attrs.api_group, attrs.resource)
        if info is None or attrs.subresource:
            return None
        try:
            return info.message.FromString(data)
        except Exception:  # a body the handler refused; the event still says who and what
            return None

    def _body(self, obj: Any) -> Any:
        if obj is None:
            return None
        try:
            body = codec.encode_object(obj, using=self._scheme)
        except Exception:
            body = codec.to_dict(obj)
        if isinstance(body, dict) and body.get("kind") == "Secret":
            return None  # whatever route a Secret took, its values stay out
        return body

    def _request_object(self, method: str, attrs: Attributes, request: Any, obj: Any) -> Any:
        if method in ("Create", "Update"):
            return self._body(obj if obj is not None else self._decode(attrs, request.object))
        if method == "Patch":
            try:
                return json.loads(request.patch)
            except ValueError:
                return None
        if method in ("Delete", "DeleteCollection") and request.HasField("options"):
            return codec.to_dict(request.options)
        return None

    def _response_object(self, attrs: Attributes, response: Any, version: str) -> Any:
        if hasattr(response, "items") and attrs.verb in ("list", "deletecollection"):
            info = self._info(attrs.api_group, attrs.resource)
            items = [self._body(self._decode(attrs, item)) for item in response.items]
            out: dict[str, Any] = {
                "kind": f"{info.kind}List" if info else "List",
                "apiVersion": info.api_version if info else version,
                "metadata": {},
                "items": [i for i in items if i is not None],
            }
            if getattr(response, "resource_version", ""):
                out["metadata"]["resourceVersion"] = response.resource_version
            return out
        data = getattr(response, "object", None)
        if isinstance(data, bytes) and data:
            return self._body(self._decode(attrs, data))
        return None

    def wrap(self, method: str, handler: Any) -> Any:
        """`handler` (a grpc.RpcMethodHandler), audited."""
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=self._unary(method, handler.unary_unary))
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=self._stream(method, handler.unary_stream))
        if handler.stream_stream is not None:
            return handler._replace(stream_stream=self._bidi(method, handler.stream_stream))
        return handler

    def _begin(self, method: str, request: Any, context: Any) -> _Call:
        audit_id = str(uuid.uuid4())
        _audit_id.set(audit_id)
        annotations: dict[str, str] = {}
        _annotations.set(annotations)
        agent = ""
        for key, value in context.invocation_metadata() or ():
            if key == "user-agent":
                agent = str(value)
                break
        context.set_trailing_metadata(((AUDIT_ID_KEY, audit_id),))
        return _Call(
            method=method,
            audit_id=audit_id,
            received=self._now(),
            source_ip=_source_ip(context.peer() or ""),
            user_agent=agent,
            annotations=annotations,
            request=request,
        )

    def _emit(self, call: _Call, stage: str, **kw: Any) -> None:
        call.user = authentication.current_user.get()
        try:
            event = self.event(call, stage, **kw)
        except Exception:  # auditing must never fail the call it describes
            log.exception("cannot build an audit event", extra={"method": call.method})
            return
        if event is not None:
            self._sink(event)

    def _unary(self, method: str, inner: Any) -> Any:
        async def audited(request: Any, context: Any) -> Any:
            call = self._begin(method, request, context)
            try:
                response = await inner(request, context)
            except BaseException as e:
                self._emit(call, "ResponseComplete", error=_failure(e, context))
                raise
            self._emit(call, "ResponseComplete", response=response)
            return response

        return audited

    def _stream(self, method: str, inner: Any) -> Any:
        async def audited(request: Any, context: Any) -> AsyncIterator[Any]:
            call = self._begin(method, request, context)
            async for response in self._streamed(call, inner(request, context), context):
                yield response

        return audited

    def _bidi(self, method: str, inner: Any) -> Any:
        async def audited(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
            call = self._begin(method, None, context)

            async def first_noted() -> AsyncIterator[Any]:
                async for request in requests:
                    if call.request is None:
                        call.request = request
                    yield request

            async for response in self._streamed(call, inner(first_noted(), context), context):
                yield response

        return audited

    async def _streamed(
        self, call: _Call, responses: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[Any]:
        started = False
        error: errors.StatusError | None = None
        try:
            async for response in responses:
                if not started:
                    started = True
                    self._emit(call, "ResponseStarted")
                yield response
        except BaseException as e:
            error = _failure(e, context)
            raise
        finally:
            self._emit(call, "ResponseComplete", error=error)


def _failure(e: BaseException, context: Any) -> errors.StatusError | None:
    """How a call that raised `e` failed, as the client hears it; None for
    a client that went away (the call did what it did: 200, as Kubernetes)."""
    if isinstance(e, errors.StatusError):
        return e
    code = None
    try:
        code = context.code()
    except Exception:  # a context without a status yet
        code = None
    if code is None or code == 0:
        if isinstance(e, (GeneratorExit, anyio.get_cancelled_exc_class())):
            return None
        return errors.Internal(f"internal error: {e!r}")
    grpc_code = code if isinstance(code, grpc.StatusCode) else _grpc_code(code)
    return status.from_grpc(grpc_code, context.details(), context.trailing_metadata() or ())


def _grpc_code(value: int) -> Any:
    for c in grpc.StatusCode:
        if c.value[0] == value:
            return c
    return grpc.StatusCode.UNKNOWN


def _user(user: UserInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"username": user.name}
    if user.uid:
        out["uid"] = user.uid
    if user.groups:
        out["groups"] = list(user.groups)
    return out


def _name_of(obj: Any) -> str:
    try:
        return str(obj.metadata.name) if obj is not None else ""
    except AttributeError:
        return ""


def _trim(body: Any, no_managed: bool) -> Any:
    if no_managed and isinstance(body, dict):
        meta = body.get("metadata")
        if isinstance(meta, dict) and "managedFields" in meta:
            body = {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return body


# -- the log -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditOptions:
    """--audit-policy-file's policy and the --audit-log-* flags."""

    policy: Policy
    path: str  # "-": standard output
    max_age_days: int = 0  # 0: keep backups whatever their age
    max_backups: int = 0  # 0: keep every backup (within max_age_days)
    max_size_mb: int = 0  # 0: DEFAULT_MAX_SIZE_MB, as Kubernetes
    buffer_size: int = 10_000
    batch_wait: float = 0.1  # seconds an event may wait for others to be written with


class AuditLog:
    """Events in a bounded buffer, written as JSON lines by `run`."""

    def __init__(self, options: AuditOptions, *, now: Callable[[], datetime.datetime] = _now):
        self.options = options
        self._buffer: collections.deque[dict[str, Any]] = collections.deque()
        self._wake = anyio.Event()
        self._now = now
        self.dropped = 0
        self._file: Any = None
        self._size = 0

    def record(self, event: dict[str, Any]) -> None:
        """Queues `event` for writing; never waits. A full buffer drops it."""
        if len(self._buffer) >= self.options.buffer_size:
            self.dropped += 1
            if _is_power_of_ten(self.dropped):
                log.warning(
                    "the audit buffer is full; audit events dropped",
                    extra={"dropped": self.dropped, "buffer": self.options.buffer_size},
                )
            return
        self._buffer.append(event)
        self._wake.set()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Writes events until cancelled, then writes what is left and closes
        the file. The file is opened first: a path that cannot be written
        fails here, at start."""
        await anyio.to_thread.run_sync(self._open)
        task_status.started()
        try:
            while True:
                await self._wake.wait()
                # Gather a batch (Kubernetes' batch backend waits too): one
                # write, and one thread hop, for many requests, not each.
                if len(self._buffer) < _BATCH:
                    await anyio.sleep(self.options.batch_wait)
                self._wake = anyio.Event()
                await self._flush()
        finally:
            with anyio.CancelScope(shield=True):
                await self._flush()
                await anyio.to_thread.run_sync(self._close)

    async def _flush(self) -> None:
        while self._buffer:
            try:
                # The thread takes the batch: a flush cancelled before the
                # thread starts leaves it in the buffer for the final flush.
                await anyio.to_thread.run_sync(self._write_pending)
            except OSError as e:
                log.error(
                    "cannot write the audit log", extra={"path": self.options.path, "error": str(e)}
                )

    def _open(self) -> None:
        if self.options.path == "-":
            return
        path = Path(self.options.path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115  (closed by _close)
        except OSError as e:
            raise OSError(
                f"--audit-log-path {path}: cannot open it for writing ({e.strerror}); "
                "choose a writable path, or - for standard output"
            ) from e
        self._size = self._file.tell()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _write_pending(self) -> None:
        batch: list[dict[str, Any]] = []
        while self._buffer and len(batch) < _BATCH:
            batch.append(self._buffer.popleft())
        self._write(batch)

    def _write(self, events: Iterable[dict[str, Any]]) -> None:
        text = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events)
        if self.options.path == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        data_size = len(text.encode())
        limit = (self.options.max_size_mb or DEFAULT_MAX_SIZE_MB) * 1024 * 1024
        if self._size and self._size + data_size > limit:
            self._rotate()
        self._file.write(text)
        self._file.flush()
        self._size += data_size

    def _rotate(self) -> None:
        """Renames the file `NAME-<time>.EXT` (lumberjack's form), opens a
        new one and removes backups past max_backups or max_age_days."""
        self._close()
        path = Path(self.options.path)
        stamp = self._now().strftime("%Y-%m-%dT%H-%M-%S.%f")[:-3]
        backup = path.with_name(f"{path.stem}-{stamp}{path.suffix}")
        os.replace(path, backup)
        self._open()
        self._remove_old_backups()

    def backups(self) -> list[Path]:
        """The rotated files, newest first."""
        path = Path(self.options.path)
        prefix = f"{path.stem}-"
        found = [
            p
            for p in path.parent.glob(f"{prefix}*{path.suffix}")
            if p != path and _backup_time(p, prefix, path.suffix) is not None
        ]
        return sorted(found, key=lambda p: _backup_time(p, prefix, path.suffix) or "", reverse=True)

    def _remove_old_backups(self) -> None:
        path = Path(self.options.path)
        prefix = f"{path.stem}-"
        keep = self.backups()
        doomed: list[Path] = []
        if self.options.max_backups:
            doomed += keep[self.options.max_backups :]
            keep = keep[: self.options.max_backups]
        if self.options.max_age_days:
            cutoff = self._now() - datetime.timedelta(days=self.options.max_age_days)
            for p in keep:
                stamp = _backup_time(p, prefix, path.suffix)
                if stamp is not None and stamp < cutoff.strftime("%Y-%m-%dT%H-%M-%S.%f")[:-3]:
                    doomed.append(p)
        for p in doomed:
            try:
                p.unlink()
            except OSError as e:
                log.warning(
                    "cannot remove an old audit log", extra={"path": str(p), "error": str(e)}
                )


def _backup_time(p: Path, prefix: str, suffix: str) -> str | None:
    stamp = p.name[len(prefix) : len(p.name) - len(suffix)] if suffix else p.name[len(prefix) :]
    try:
        datetime.datetime.strptime(stamp, "%Y-%m-%dT%H-%M-%S.%f")
    except ValueError:
        return None
    return stamp


def _is_power_of_ten(n: int) -> bool:
    while n >= 10 and n % 10 == 0:
        n //= 10
    return n == 1
