"""How etcd's gRPC failures become kpy API errors.

Every call the storage layer makes to etcd runs inside `etcd_errors(what)`,
so a caller of the store only ever sees `kpy.api.errors.StatusError`
subclasses: Unavailable when etcd cannot be reached, Timeout when it did not
answer in time, Expired for a compacted revision, TooLarge for a request etcd
refused by size, and a plain StatusError (InternalError) for anything else.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from aetcd import exceptions as aetcd_exceptions
from aetcd import rpc

from kpy.api.errors import Expired, StatusError, Timeout, TooLarge, Unavailable
from kpy.storage import etcd_tls

if TYPE_CHECKING:
    from collections.abc import Iterator

COMPACTED = "required revision has been compacted"
FUTURE_REVISION = "required revision is a future revision"


def translate(error: Any, what: str) -> StatusError:
    """The API error for a failed etcd call; `what` names the operation
    (`get configmaps "default/x"`) for the message."""
    code, details = error.code(), error.details() or ""
    if code in (rpc.StatusCode.UNAVAILABLE, rpc.StatusCode.CANCELLED):
        fix = etcd_tls.hint(details)
        return Unavailable(
            f"etcd is unavailable ({what}): {details}. "
            + (
                f"{fix[0].upper()}{fix[1:]}."
                if fix
                else "Check that etcd is running and reachable at the configured endpoint, "
                "then retry."
            )
        )
    if code == rpc.StatusCode.DEADLINE_EXCEEDED:
        return Timeout(f"etcd did not answer in time ({what}); retry, or check etcd's health")
    if code == rpc.StatusCode.OUT_OF_RANGE and COMPACTED in details:
        return Expired(f"{what}: the requested revision has been compacted; list again")
    if code == rpc.StatusCode.OUT_OF_RANGE and FUTURE_REVISION in details:
        return Timeout(f"{what}: too large resource version, etcd has not reached it yet")
    if "request is too large" in details:
        return TooLarge(f"{what}: etcd refused the request as too large")
    return StatusError(f"etcd failed ({what}): {code.name}: {details}")


@contextmanager
def etcd_errors(what: str) -> Iterator[None]:
    """Runs the body with etcd's gRPC and aetcd errors translated to API errors."""
    try:
        yield
    except rpc.AioRpcError as e:
        raise translate(e, what) from e
    except aetcd_exceptions.ClientError as e:  # raised by aetcd.Client.connect()
        raise Unavailable(
            f"cannot connect to etcd ({what}): {e}. Check the etcd endpoint, then retry."
        ) from e
