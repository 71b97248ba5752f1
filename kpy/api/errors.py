"""The one hierarchy of API errors.

Every failure that a user or a component can act on is a `StatusError` with a
`reason` (Kubernetes' StatusReason), an HTTP-like `code`, and for Invalid the
list of field causes. Storage raises them, the API server maps each reason to
one gRPC status code, and the client SDK raises the same classes again, so a
caller catches `NotFound` or `Conflict` the same way on either side of the
wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field: `path` is the field path
    (`spec.template.spec.containers[0].image`), `reason` is Kubernetes'
    cause type (FieldValueRequired, FieldValueInvalid, ...), `detail` says why."""

    path: str
    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.detail}" if self.path else self.detail


# Kubernetes' field error types (CauseType), used as FieldError.reason.
REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
DUPLICATE = "FieldValueDuplicate"
FORBIDDEN = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"
UNKNOWN_FIELD = "FieldValueUnknown"  # strict decoding: a field the schema lacks


class StatusError(Exception):
    """Base of every API error. `reason` and `code` follow Kubernetes' Status."""

    reason: ClassVar[str] = "InternalError"
    code: ClassVar[int] = 500

    def __init__(self, message: str, *, kind: str = "", name: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.name = name

    def __str__(self) -> str:
        return self.message


class BadRequest(StatusError):
    reason = "BadRequest"
    code = 400


class NotFound(StatusError):
    reason = "NotFound"
    code = 404


class AlreadyExists(StatusError):
    reason = "AlreadyExists"
    code = 409


class Conflict(StatusError):
    """An update carried a stale resourceVersion (or a precondition failed):
    read the object again, apply the change to it, and retry."""

    reason = "Conflict"
    code = 409


class Unauthorized(StatusError):
    """The caller could not be authenticated: no credentials, or ones the
    server does not accept (HTTP 401). Sending the call again with the same
    credentials cannot help: fix them (the kpy config's `token`, or
    `client-certificate` and `client-key`)."""

    reason = "Unauthorized"
    code = 401


class Forbidden(StatusError):
    reason = "Forbidden"
    code = 403


class Expired(StatusError):
    """The requested resourceVersion has been compacted away: relist."""

    reason = "Expired"
    code = 410


class Timeout(StatusError):
    reason = "Timeout"
    code = 504


class TooLarge(StatusError):
    reason = "RequestEntityTooLarge"
    code = 413


class TooManyRequests(StatusError):
    """The server shed this request or closed this watch because the client
    could not keep up; retry (a watch resumes from the last version it saw).
    `retry_after_seconds` (0: none given) is the server's hint of when to
    send it again, as Kubernetes' Retry-After header."""

    reason = "TooManyRequests"
    code = 429

    def __init__(
        self, message: str, *, kind: str = "", name: str = "", retry_after_seconds: int = 0
    ) -> None:
        super().__init__(message, kind=kind, name=name)
        self.retry_after_seconds = retry_after_seconds


class EvictionRefused(TooManyRequests):
    """An eviction that would break a PodDisruptionBudget (429, reason
    TooManyRequests, as Kubernetes answers it). Unlike a shed request it is
    not sent again by the client: the budget allows no disruption now; try
    again once the budget's pods are healthy (`kpyctl drain` retries every
    5 s). `causes` hold the budget's own words (cause reason
    `DisruptionBudget`)."""

    def __init__(
        self,
        message: str,
        *,
        kind: str = "",
        name: str = "",
        causes: list[FieldError] | None = None,
    ) -> None:
        super().__init__(message, kind=kind, name=name)
        self.causes = list(causes or [])


# The cause reason of an EvictionRefused (Kubernetes' DisruptionBudgetCause).
DISRUPTION_BUDGET = "DisruptionBudget"


class MethodNotAllowed(StatusError):
    """The verb or subresource is not served for this resource."""

    reason = "MethodNotAllowed"
    code = 405


class Internal(StatusError):
    """The server failed in a way the request did not cause."""


class Unavailable(StatusError):
    """The storage or server behind the request cannot be reached right now."""

    reason = "ServiceUnavailable"
    code = 503


class Invalid(StatusError):
    """The object failed decoding, defaulting or validation; `causes` lists
    every problem with its field path."""

    reason = "Invalid"
    code = 422

    def __init__(self, causes: list[FieldError], *, kind: str = "", name: str = "") -> None:
        self.causes = list(causes)
        lines = "; ".join(str(c) for c in self.causes)
        if kind:
            what = f'{kind} "{name}"' if name else kind
            lines = f"{what} is invalid: {lines}"
        super().__init__(lines, kind=kind, name=name)


def not_found(kind: str, name: str) -> NotFound:
    return NotFound(f'{kind} "{name}" not found', kind=kind, name=name)


def already_exists(kind: str, name: str) -> AlreadyExists:
    return AlreadyExists(f'{kind} "{name}" already exists', kind=kind, name=name)


def conflict(kind: str, name: str, why: str) -> Conflict:
    return Conflict(
        f'Operation cannot be fulfilled on {kind} "{name}": {why}', kind=kind, name=name
    )
