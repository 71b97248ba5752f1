"""The SDK spreads its calls over several API servers (issue 22 item 5):
which channels a Client opens for which servers, and, against two small
in-process gRPC servers, that calls alternate between them and skip one
that is down."""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
import pytest

from kpy.api import errors
from kpy.api.core.v1 import ConfigMap
from kpy.client import Client
from kpy.client.client import CREATE_UID_METADATA, _classify, channel_targets
from kpy.cluster.main import default_apiservers
from kpy.rpc.apiserver import v1 as api

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@dataclass(frozen=True)
class TargetCase:
    name: str
    servers: tuple[str, ...]
    want: list[str]  # the channel targets, in failover order
    balanced: bool  # whether the (single) channel uses round_robin


TARGET_CASES = [
    TargetCase("one address", ("127.0.0.1:6443",), ["127.0.0.1:6443"], False),
    TargetCase(
        "two IPv4 addresses: one balancing channel",
        ("127.0.0.1:6443", "127.0.0.1:6444"),
        ["ipv4:127.0.0.1:6443,127.0.0.1:6444"],
        True,
    ),
    TargetCase(
        "IPv4 on several machines",
        ("10.0.0.1:6443", "10.0.0.1:6444", "10.0.0.2:6443"),
        ["ipv4:10.0.0.1:6443,10.0.0.1:6444,10.0.0.2:6443"],
        True,
    ),
    TargetCase(
        "two IPv6 addresses",
        ("[::1]:6443", "[::1]:6444"),
        ["ipv6:[::1]:6443,[::1]:6444"],
        True,
    ),
    TargetCase(
        "a name among them: one at a time",
        ("localhost:6443", "127.0.0.1:6444"),
        ["localhost:6443", "127.0.0.1:6444"],
        False,
    ),
    TargetCase(
        "IPv4 and IPv6 mixed: one at a time",
        ("127.0.0.1:6443", "[::1]:6443"),
        ["127.0.0.1:6443", "[::1]:6443"],
        False,
    ),
]


@pytest.mark.parametrize("case", TARGET_CASES, ids=lambda c: c.name)
def test_channel_targets(case: TargetCase) -> None:
    channels = channel_targets(case.servers)
    assert [target for target, _ in channels] == case.want, case.name
    for _, options in channels:
        names = dict(options)
        assert names.get("grpc.use_local_subchannel_pool") == 1, (
            f"{case.name}: a Client's connections must be its own"
        )
        balanced = "round_robin" in str(names.get("grpc.service_config", ""))
        assert balanced == case.balanced, f"{case.name}: round_robin is {balanced}"


def test_no_server_reachable_through_a_balancing_channel_is_never_sent() -> None:
    # round_robin's words when every server is down: the call had no
    # connection to go out on, so a create may be sent again safely.
    details = (
        "connections to all backends failing; last error: UNKNOWN: ipv4:127.0.0.1:1: "
        "Failed to connect to remote host: Connection refused"
    )
    assert _classify(grpc.StatusCode.UNAVAILABLE, details, None) == "not sent"


# -- against real gRPC servers ---------------------------------------------------


class _Named:
    """An API server that answers Get with a ConfigMap named after itself
    and stores Creates (with the proposed uid) in a dict shared by all."""

    def __init__(self, name: str, stored: dict[str, ConfigMap]) -> None:
        self.name = name
        self.stored = stored

    async def get(self, request: api.GetRequest, context: Any) -> api.ObjectResponse:
        cm = ConfigMap()
        cm.metadata.name = self.name
        return api.ObjectResponse(object=cm.SerializeToString())

    async def create(self, request: api.CreateRequest, context: Any) -> api.ObjectResponse:
        cm = ConfigMap.FromString(request.object)
        cm.metadata.uid = str(dict(context.invocation_metadata() or ())[CREATE_UID_METADATA])
        cm.metadata.annotations["served-by"] = self.name
        self.stored[cm.metadata.name] = cm
        return api.ObjectResponse(object=cm.SerializeToString())

    def handler(self) -> grpc.GenericRpcHandler:
        def method(call: Any, request: Any) -> grpc.RpcMethodHandler[Any, Any]:
            return grpc.unary_unary_rpc_method_handler(
                call,
                request_deserializer=request.FromString,
                response_serializer=api.ObjectResponse.SerializeToString,
            )

        return grpc.method_handlers_generic_handler(
            "kpy.rpc.apiserver.v1.API",
            {
                "Get": method(self.get, api.GetRequest),
                "Create": method(self.create, api.CreateRequest),
            },
        )


@contextlib.asynccontextmanager
async def _server(servicer: _Named) -> AsyncIterator[tuple[grpc.aio.Server, str]]:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((servicer.handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield server, f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def test_calls_alternate_between_servers_and_skip_one_that_is_down() -> None:
    stored: dict[str, ConfigMap] = {}
    async with (
        _server(_Named("a", stored)) as (server_a, a),
        _server(_Named("b", stored)) as (_, b),
        Client([a, b], retry_timeout=5.0) as client,
    ):
        await client.get(ConfigMap, "x")  # connects
        served = Counter([(await client.get(ConfigMap, "x")).metadata.name for _ in range(20)])
        assert served == {"a": 10, "b": 10}, f"calls were not spread per call: {served}"

        await server_a.stop(None)
        served = Counter([(await client.get(ConfigMap, "x")).metadata.name for _ in range(10)])
        assert served == {"b": 10}, f"a server that is down was not skipped: {served}"

        cm = ConfigMap()
        cm.metadata.name = "after-failover"
        created = await client.create(cm)
        assert created.metadata.annotations["served-by"] == "b"
        assert stored["after-failover"].metadata.uid == created.metadata.uid


async def test_every_server_down_is_unavailable_after_the_retry_budget() -> None:
    stored: dict[str, ConfigMap] = {}
    async with (
        _server(_Named("a", stored)) as (server_a, a),
        _server(_Named("b", stored)) as (
            server_b,
            b,
        ),
    ):
        await server_a.stop(None)
        await server_b.stop(None)
        async with Client([a, b], retry_timeout=0.5) as client:
            cm = ConfigMap()
            cm.metadata.name = "nowhere"
            # never sent, so not an unknown outcome: a plain Unavailable
            with pytest.raises(errors.Unavailable) as raised:
                await client.create(cm)
            assert not isinstance(raised.value, errors.Timeout), raised.value
    assert not stored


# -- how many API servers `kpy up` starts for the SDK to balance over --------------

APISERVER_CASES = [
    ("1 core", 1, 1),
    ("2 cores: one (more gave no steady gain here)", 2, 1),
    ("4 cores", 4, 1),
    ("8 cores", 8, 2),
    ("16 cores", 16, 4),
    ("64 cores: at most 4", 64, 4),
]


@pytest.mark.parametrize(
    ("name", "cores", "want"), APISERVER_CASES, ids=[c[0] for c in APISERVER_CASES]
)
def test_kpy_up_starts_one_api_server_per_four_cores(name: str, cores: int, want: int) -> None:
    assert default_apiservers(cores) == want, name
