"""API errors on the wire: one gRPC status code per kind of error.

A failed call carries the gRPC code below and, in the trailing metadata key
`kpy-status-bin`, the error as a serialized `kpy.api.meta.v1.Status` (reason,
message, code, and for Invalid every field cause). The server turns a
`StatusError` into both with `to_status`; the client SDK turns them back into
the same `StatusError` subclass with `from_status`, so `except NotFound:`
reads the same on either side of the wire. TooManyRequests (RESOURCE_EXHAUSTED,
HTTP 429) carries its retry-after hint in the Status's
`details.retry_after_seconds` and in the trailing metadata `retry-after`.
A status without the metadata (a transport failure, a proxy) is mapped from
its gRPC code alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import grpc
from google.protobuf.message import DecodeError

from kpy.api import errors
from kpy.api.meta.v1 import Status, StatusCause, StatusDetails

if TYPE_CHECKING:
    from collections.abc import Iterable

STATUS_KEY: Final = "kpy-status-bin"
# Trailing metadata of a TooManyRequests: seconds to wait before sending the
# call again (HTTP's Retry-After; the Status holds it too, for the SDK).
RETRY_AFTER_KEY: Final = "retry-after"

_CODE: Final[dict[str, grpc.StatusCode]] = {
    errors.BadRequest.reason: grpc.StatusCode.INVALID_ARGUMENT,
    errors.Invalid.reason: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound.reason: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists.reason: grpc.StatusCode.ALREADY_EXISTS,
    errors.Conflict.reason: grpc.StatusCode.ABORTED,
    errors.Unauthorized.reason: grpc.StatusCode.UNAUTHENTICATED,
    errors.Forbidden.reason: grpc.StatusCode.PERMISSION_DENIED,
    errors.Expired.reason: grpc.StatusCode.OUT_OF_RANGE,
    errors.TooLarge.reason: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Timeout.reason: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.TooManyRequests.reason: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable.reason: grpc.StatusCode.UNAVAILABLE,
    errors.MethodNotAllowed.reason: grpc.StatusCode.UNIMPLEMENTED,
    errors.StatusError.reason: grpc.StatusCode.INTERNAL,
}

_CLASS_BY_REASON: Final[dict[str, type[errors.StatusError]]] = {
    cls.reason: cls
    for cls in (
        errors.BadRequest,
        errors.NotFound,
        errors.AlreadyExists,
        errors.Conflict,
        errors.Unauthorized,
        errors.Forbidden,
        errors.Expired,
        errors.TooLarge,
        errors.Timeout,
        errors.TooManyRequests,
        errors.Unavailable,
        errors.MethodNotAllowed,
        errors.Internal,
    )
}

# Without a Status in the metadata: what the transport's own codes mean.
_CLASS_BY_CODE: Final[dict[grpc.StatusCode, type[errors.StatusError]]] = {
    grpc.StatusCode.INVALID_ARGUMENT: errors.BadRequest,
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
    grpc.StatusCode.ABORTED: errors.Conflict,
    grpc.StatusCode.UNAUTHENTICATED: errors.Unauthorized,
    grpc.StatusCode.PERMISSION_DENIED: errors.Forbidden,
    grpc.StatusCode.OUT_OF_RANGE: errors.Expired,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.TooLarge,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.Timeout,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
    grpc.StatusCode.UNIMPLEMENTED: errors.MethodNotAllowed,
}

# What to do about a transport failure, appended to its message.
_HINTS: Final[dict[type[errors.StatusError], str]] = {
    errors.Unavailable: "the API server cannot be reached; check that it runs and retry",
    errors.Timeout: "no answer within the client's timeout; retry, or raise `timeout` "
    "in the kpy config",
    errors.TooLarge: "the request is larger than the server accepts; send a smaller object",
}


def code_for(error: errors.StatusError) -> grpc.StatusCode:
    """The gRPC code an error travels with."""
    return _CODE.get(error.reason, grpc.StatusCode.INTERNAL)


def wire_text(text: str) -> str:
    """`text` as UTF-8 can carry it: an error that quotes bad input may hold
    lone surrogates (JSON's "\\ud800"), which protobuf and gRPC refuse to
    encode; they travel as backslash escapes instead."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def to_status(error: errors.StatusError) -> Status:
    """The Status message describing `error` (Kubernetes' metav1.Status)."""
    details = StatusDetails(name=wire_text(error.name), kind=wire_text(error.kind))
    if isinstance(error, errors.TooManyRequests) and error.retry_after_seconds > 0:
        details.retry_after_seconds = error.retry_after_seconds
    if isinstance(error, errors.Invalid | errors.EvictionRefused):
        details.causes.extend(
            StatusCause(reason=c.reason, message=wire_text(c.detail), field=wire_text(c.path))
            for c in error.causes
        )
    return Status(
        api_version="v1",
        kind="Status",
        status="Failure",
        message=wire_text(error.message),
        reason=error.reason,
        code=error.code,
        details=details,
    )


def trailing_metadata(error: errors.StatusError) -> tuple[tuple[str, str | bytes], ...]:
    """The Status of `error`, and for a TooManyRequests with a hint the
    `retry-after` seconds, for clients that read no Status."""
    status = (STATUS_KEY, to_status(error).SerializeToString())
    if isinstance(error, errors.TooManyRequests) and error.retry_after_seconds > 0:
        return (status, (RETRY_AFTER_KEY, str(error.retry_after_seconds)))
    return (status,)


def from_status(status: Status) -> errors.StatusError:
    """The typed error a Status describes."""
    kind, name = status.details.kind, status.details.name
    if status.reason == errors.Invalid.reason:
        causes = [errors.FieldError(c.field, c.reason, c.message) for c in status.details.causes]
        invalid = errors.Invalid(causes, kind=kind, name=name)
        invalid.message = status.message or invalid.message
        return invalid
    if status.reason == errors.TooManyRequests.reason and any(
        c.reason == errors.DISRUPTION_BUDGET for c in status.details.causes
    ):
        causes = [errors.FieldError(c.field, c.reason, c.message) for c in status.details.causes]
        return errors.EvictionRefused(status.message, kind=kind, name=name, causes=causes)
    if status.reason == errors.TooManyRequests.reason:
        return errors.TooManyRequests(
            status.message,
            kind=kind,
            name=name,
            retry_after_seconds=status.details.retry_after_seconds,
        )
    cls = _CLASS_BY_REASON.get(status.reason, errors.Internal)
    return cls(status.message, kind=kind, name=name)


def from_grpc(
    code: grpc.StatusCode, details: str | None, metadata: Iterable[tuple[str, str | bytes]]
) -> errors.StatusError:
    """The typed error of a failed call: from its Status when the server sent
    one, else from the gRPC code (a transport failure)."""
    for key, value in metadata or ():
        if key == STATUS_KEY and isinstance(value, bytes):
            try:
                return from_status(Status.FromString(value))
            except DecodeError:  # not our server's Status: judge by the code
                break
    cls = _CLASS_BY_CODE.get(code, errors.Internal)
    text = details or code.name.lower().replace("_", " ")
    hint = _HINTS.get(cls)
    return cls(f"{text}: {hint}" if hint else text)
