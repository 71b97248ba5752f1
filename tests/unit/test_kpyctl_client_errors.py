"""Which part is down: kpyctl tells an API server it cannot reach from an
API server that answers that its storage (etcd) is unavailable."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest

from kpy.api import errors
from kpy.cli._client import answered_by_server, server_error_message, unavailable_message
from kpy.rpc import status

ETCD_DOWN = (
    "etcd is unavailable (get configmaps at '/registry/core/v1/configmaps/default/x'): "
    "connection refused. Check that etcd is running and reachable at the configured "
    "endpoint, then retry."
)


def _raised(error: errors.StatusError, *, from_server: bool) -> errors.StatusError:
    """`error` raised as the client raises it: while handling the gRPC failure,
    which carries the server's Status when a server sent it."""
    trailing = grpc.aio.Metadata()
    if from_server:
        trailing.add(status.STATUS_KEY, status.to_status(error).SerializeToString())
    rpc_error = grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), trailing)
    try:
        try:
            raise rpc_error
        except grpc.aio.AioRpcError:
            raise error from None
    except errors.StatusError as e:
        return e


CASES = [
    (
        "no API server answers",
        _raised(
            errors.Unavailable("connection refused: the API server cannot be reached"),
            from_server=False,
        ),
        False,
        "error: cannot reach the API server at 127.0.0.1:6443: connection refused: the API "
        "server cannot be reached\nIs the cluster running? Start one with 'kpy up', or point "
        "--server (or ~/.kpy/config) at a running kpy-apiserver.\n",
    ),
    (
        "the API server answers that etcd is down",
        _raised(errors.Unavailable(ETCD_DOWN), from_server=True),
        True,
        f"Error from server (ServiceUnavailable): {ETCD_DOWN}\n"
        "The API server at 127.0.0.1:6443 is up, but its storage (etcd) is unavailable: "
        "start etcd again ('kpy status' shows which processes of a local cluster run), "
        "then retry.\n",
    ),
    (
        "the API server answers it is not ready",
        _raised(
            errors.Unavailable("the watch cache of pods is not ready yet; retry shortly"),
            from_server=True,
        ),
        True,
        "Error from server (ServiceUnavailable): the watch cache of pods is not ready yet; "
        "retry shortly\n",
    ),
    (
        "an error never sent",
        errors.Unavailable("made here"),
        False,
        "error: cannot reach the API server at 127.0.0.1:6443: made here\nIs the cluster "
        "running? Start one with 'kpy up', or point --server (or ~/.kpy/config) at a running "
        "kpy-apiserver.\n",
    ),
]


@pytest.mark.parametrize(("name", "error", "answered", "message"), CASES, ids=[c[0] for c in CASES])
def test_unavailable_names_the_part_that_is_down(
    name: str, error: errors.StatusError, answered: bool, message: str
) -> None:
    assert answered_by_server(error) is answered, name
    assert isinstance(error, errors.Unavailable)
    assert unavailable_message(error, "127.0.0.1:6443") == message, name


STORAGE_HINT = (
    "The API server at 127.0.0.1:6443 is up, but its storage (etcd) is unavailable: "
    "start etcd again ('kpy status' shows which processes of a local cluster run), then retry.\n"
)
SERVER_ERRORS = [
    (
        "not found",
        errors.NotFound('pods "x" not found'),
        'Error from server (NotFound): pods "x" not found\n',
    ),
    (
        "etcd too slow",
        errors.Timeout("etcd did not answer in time (get pods); retry, or check etcd's health"),
        "Error from server (Timeout): etcd did not answer in time (get pods); retry, or check "
        "etcd's health\n" + STORAGE_HINT,
    ),
    (
        "a write lost to etcd being down",
        errors.Timeout(f"create pods: the outcome is unknown ({ETCD_DOWN})"),
        f"Error from server (Timeout): create pods: the outcome is unknown ({ETCD_DOWN})\n"
        + STORAGE_HINT,
    ),
]


@pytest.mark.parametrize(
    ("name", "error", "message"), SERVER_ERRORS, ids=[c[0] for c in SERVER_ERRORS]
)
def test_server_errors_name_storage_when_it_is_down(
    name: str, error: errors.StatusError, message: str
) -> None:
    assert server_error_message(error, "127.0.0.1:6443") == message, name
