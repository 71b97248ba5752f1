"""What controllers, the cache machinery and the scheduler need of a client.

`ClientProtocol` is shaped by its consumers (the workload controllers, the
garbage collector, the namespace controller, Reflector, LeaderElector,
EventBroadcaster and the scheduler), not by everything `Client` offers:
logs, exec and stats are left out because none of them uses those; the
namespace controller reads discovery for the kinds CRDs add. Two classes
satisfy it, and mypy checks both:

- `kpy.client.Client`, the gRPC client of a real API server;
- `kpy.client.fake.FakeClient`, objects in memory with the server's
  defaulting, validation and resourceVersion rules, recording every action
  (DESIGN.md, decision 9).

Contract, for both: objects passed in are never mutated (the client works
on a copy); objects returned are the caller's to keep and change. Failures
raise the `kpy.api.errors` hierarchy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from google.protobuf.message import Message

if TYPE_CHECKING:
    import builtins
    from collections.abc import AsyncIterator, Sequence
    from types import TracebackType

    from kpy.api.authentication.v1 import TokenRequest
    from kpy.api.core.v1 import Pod
    from kpy.api.meta.v1 import Preconditions
    from kpy.client.client import Deleted, ObjectList, PatchType, WatchEvent
    from kpy.rpc.apiserver import v1 as api

__all__ = ["ClientProtocol", "WatchStream"]

M = TypeVar("M", bound=Message)


class WatchStream(Protocol[M]):
    """A watch: `async with client.watch(Pod) as events: async for event in
    events:`. Closing it (or leaving the `async with`) ends the iteration."""

    async def __aenter__(self) -> AsyncIterator[WatchEvent[M]]: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def close(self) -> None: ...


class ClientProtocol(Protocol):
    """See the module docstring. The kind is the message type, as in `Client`."""

    @property
    def namespace(self) -> str:
        """The default namespace, used when a call names none."""
        ...

    async def create(self, obj: M, *, namespace: str | None = None, dry_run: bool = False) -> M: ...

    async def get(self, kind: type[M], name: str, *, namespace: str | None = None) -> M: ...

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
    ) -> ObjectList[M]: ...

    async def update(self, obj: M, *, subresource: str = "", dry_run: bool = False) -> M: ...

    async def update_status(self, obj: M, *, dry_run: bool = False) -> M: ...

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
    ) -> M: ...

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
    ) -> Deleted[M]: ...

    async def delete_collection(
        self,
        kind: type[M],
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
    ) -> builtins.list[M]: ...

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
    ) -> WatchStream[M]: ...

    async def bind(
        self, name: str, node: str, *, namespace: str | None = None, resource_version: str = ""
    ) -> Any: ...

    async def evict(
        self,
        name: str,
        *,
        namespace: str | None = None,
        grace_period_seconds: int | None = None,
        dry_run: bool = False,
    ) -> None: ...

    async def request_token(
        self,
        namespace: str,
        name: str,
        *,
        audiences: Sequence[str] = (),
        expiration_seconds: int | None = None,
        bound_pod: Pod | None = None,
    ) -> TokenRequest: ...

    async def resources(self) -> builtins.list[api.APIResource]: ...
