"""API errors across the wire (`kpy.rpc.status`): what the server sends for a
`StatusError` comes back on the client as the same error, and a bare gRPC
failure (no Status from a kpy server) still becomes a typed error that says
what to do."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest

from kpy.api import errors
from kpy.api.errors import FieldError
from kpy.rpc import status


@dataclass(frozen=True)
class ErrorCase:
    name: str
    error: errors.StatusError
    code: grpc.StatusCode


def _invalid() -> errors.Invalid:
    return errors.Invalid(
        [
            FieldError("metadata.name", errors.REQUIRED, "name or generateName is required"),
            FieldError("spec.replicas", errors.INVALID, "must be greater than or equal to 0"),
            FieldError("spec.template.spec.containers[0].image", errors.REQUIRED, "required"),
        ],
        kind="Deployment",
        name="web",
    )


ERROR_CASES = [
    ErrorCase(
        "bad request",
        errors.BadRequest("limit must not be negative"),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    ErrorCase("not found", errors.not_found("pods", "web-0"), grpc.StatusCode.NOT_FOUND),
    ErrorCase(
        "already exists", errors.already_exists("pods", "web-0"), grpc.StatusCode.ALREADY_EXISTS
    ),
    ErrorCase(
        "conflict",
        errors.conflict("deployments.apps", "web", "the object has been modified"),
        grpc.StatusCode.ABORTED,
    ),
    ErrorCase("unauthorized", errors.Unauthorized("Unauthorized"), grpc.StatusCode.UNAUTHENTICATED),
    ErrorCase(
        "forbidden",
        errors.Forbidden(
            'namespace "kube-system" cannot be deleted', kind="namespaces", name="kube-system"
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    ),
    ErrorCase(
        "expired",
        errors.Expired(
            "too old resource version: 5 (oldest available is 90); list again", kind="pods"
        ),
        grpc.StatusCode.OUT_OF_RANGE,
    ),
    ErrorCase(
        "too large",
        errors.TooLarge(
            "the object is 2000000 bytes; the limit is 1572864", kind="configmaps", name="big"
        ),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ),
    ErrorCase(
        "timeout",
        errors.Timeout("too large resource version: 900", kind="pods"),
        grpc.StatusCode.DEADLINE_EXCEEDED,
    ),
    ErrorCase(
        "too many requests",
        errors.TooManyRequests("watch of pods closed: the client fell behind", kind="pods"),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ),
    ErrorCase(
        "eviction refused by a disruption budget",
        errors.EvictionRefused(
            "Cannot evict pod as it would violate the pod's disruption budget.",
            kind="poddisruptionbudgets",
            name="web",
            causes=[
                FieldError(
                    "",
                    errors.DISRUPTION_BUDGET,
                    "The disruption budget web needs 2 healthy pods and has 2 currently",
                )
            ],
        ),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ),
    ErrorCase(
        "unavailable",
        errors.Unavailable("etcd cannot be reached; retry"),
        grpc.StatusCode.UNAVAILABLE,
    ),
    ErrorCase(
        "method not allowed",
        errors.MethodNotAllowed("delete is not supported on pods/status"),
        grpc.StatusCode.UNIMPLEMENTED,
    ),
    ErrorCase(
        "internal",
        errors.Internal("internal error: boom; see the API server's log"),
        grpc.StatusCode.INTERNAL,
    ),
    ErrorCase("invalid", _invalid(), grpc.StatusCode.INVALID_ARGUMENT),
    ErrorCase(
        "invalid without kind",
        errors.Invalid([FieldError("", errors.INVALID, "the object is not a valid Pod")]),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
]


def test_every_error_class_has_a_case() -> None:
    """A new StatusError subclass must get a code and a case here."""

    def subclasses(cls: type[errors.StatusError]) -> set[type[errors.StatusError]]:
        found = set()
        for sub in cls.__subclasses__():
            if sub.__module__ == errors.__name__:
                found |= {sub} | subclasses(sub)
        return found

    covered = {type(case.error) for case in ERROR_CASES}
    assert subclasses(errors.StatusError) <= covered


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
def test_error_round_trip(case: ErrorCase) -> None:
    error = case.error
    code = status.code_for(error)
    assert code == case.code, case.name
    metadata = status.trailing_metadata(error)
    assert [key for key, _ in metadata] == [status.STATUS_KEY], case.name

    back = status.from_grpc(code, error.message, metadata)

    assert type(back) is type(error), case.name
    assert (back.message, back.kind, back.name) == (error.message, error.kind, error.name), (
        case.name
    )
    assert (back.reason, back.code) == (error.reason, error.code), case.name
    assert str(back) == str(error), case.name
    if isinstance(error, errors.Invalid | errors.EvictionRefused):
        assert isinstance(back, errors.Invalid | errors.EvictionRefused)
        assert back.causes == error.causes, case.name


def test_status_is_kubernetes_shaped() -> None:
    s = status.to_status(_invalid())
    assert (s.api_version, s.kind, s.status) == ("v1", "Status", "Failure")
    assert (s.reason, s.code) == ("Invalid", 422)
    assert (s.details.kind, s.details.name) == ("Deployment", "web")
    assert [(c.field, c.reason) for c in s.details.causes] == [
        ("metadata.name", "FieldValueRequired"),
        ("spec.replicas", "FieldValueInvalid"),
        ("spec.template.spec.containers[0].image", "FieldValueRequired"),
    ]


def test_grpc_metadata_object() -> None:
    """The client hands over what `AioRpcError.trailing_metadata()` returns."""
    error = errors.not_found("pods", "web-0")
    metadata = grpc.aio.Metadata(("other", "x"), *status.trailing_metadata(error))
    back = status.from_grpc(grpc.StatusCode.NOT_FOUND, "ignored", metadata)
    assert isinstance(back, errors.NotFound)
    assert back.message == 'pods "web-0" not found'


@dataclass(frozen=True)
class BareCase:
    name: str
    code: grpc.StatusCode
    details: str | None
    error: type[errors.StatusError]
    says: tuple[str, ...]  # the message contains each


BARE_CASES = [
    BareCase(
        "unavailable",
        grpc.StatusCode.UNAVAILABLE,
        "failed to connect to all addresses",
        errors.Unavailable,
        ("failed to connect to all addresses", "cannot be reached", "check that it runs and retry"),
    ),
    BareCase(
        "unavailable without details",
        grpc.StatusCode.UNAVAILABLE,
        None,
        errors.Unavailable,
        ("unavailable", "retry"),
    ),
    BareCase(
        "deadline",
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "Deadline Exceeded",
        errors.Timeout,
        ("Deadline Exceeded", "retry", "timeout"),
    ),
    BareCase(
        "not found",
        grpc.StatusCode.NOT_FOUND,
        "no such method",
        errors.NotFound,
        ("no such method",),
    ),
    BareCase(
        "out of range", grpc.StatusCode.OUT_OF_RANGE, "compacted", errors.Expired, ("compacted",)
    ),
    BareCase(
        "unimplemented",
        grpc.StatusCode.UNIMPLEMENTED,
        "Method not found!",
        errors.MethodNotAllowed,
        ("Method not found!",),
    ),
    BareCase(
        "too large",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "message larger than max",
        errors.TooLarge,
        ("larger",),
    ),
    BareCase(
        "unknown",
        grpc.StatusCode.UNKNOWN,
        "Exception calling application",
        errors.Internal,
        ("Exception",),
    ),
    BareCase("cancelled", grpc.StatusCode.CANCELLED, None, errors.Internal, ("cancelled",)),
    BareCase(
        "internal",
        grpc.StatusCode.INTERNAL,
        "stream terminated",
        errors.Internal,
        ("stream terminated",),
    ),
]


@pytest.mark.parametrize("case", BARE_CASES, ids=lambda c: c.name)
def test_status_without_metadata(case: BareCase) -> None:
    error = status.from_grpc(case.code, case.details, ())
    assert type(error) is case.error, case.name
    for text in case.says:
        assert text in error.message, (case.name, error.message)
    assert (error.kind, error.name) == ("", ""), case.name


def test_unreadable_status_falls_back_to_the_code() -> None:
    metadata = ((status.STATUS_KEY, b"\xff\xff not a Status"),)
    error = status.from_grpc(grpc.StatusCode.UNAVAILABLE, "proxy said no", metadata)
    assert isinstance(error, errors.Unavailable)
    assert "proxy said no" in error.message


def test_unknown_reason_is_internal() -> None:
    s = status.to_status(errors.NotFound("gone"))
    s.reason = "SomethingNew"
    metadata = ((status.STATUS_KEY, s.SerializeToString()),)
    error = status.from_grpc(grpc.StatusCode.INTERNAL, "x", metadata)
    assert type(error) is errors.Internal
    assert error.message == "gone"


def test_lone_surrogates_travel_as_escapes() -> None:
    """An error quoting JSON's "\\ud800" could not be encoded: the server
    failed to answer at all (found by the codec fuzzer)."""
    error = errors.Invalid(
        [errors.FieldError("data[\ud800]", errors.INVALID, "bad \udc00")], kind="ConfigMap"
    )
    decoded = status.from_status(
        status.Status.FromString(status.to_status(error).SerializeToString())
    )
    assert isinstance(decoded, errors.Invalid)
    assert decoded.causes == [errors.FieldError("data[\\ud800]", errors.INVALID, "bad \\udc00")]
    assert "data[\\ud800]" in decoded.message
