"""An in-process kpy API server for one test: on the session's real etcd,
on a free port, under a key prefix of its own (so no other server sees its
objects), with no compaction; stopped when the block ends."""

from __future__ import annotations

import contextlib
import uuid
from typing import TYPE_CHECKING, Any

import anyio

from kpy.apiserver.server import APIServer, ServerConfig

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from kpy.storage import EtcdServer


@contextlib.asynccontextmanager
async def serving(etcd_server: EtcdServer, name: str, **fields: Any) -> AsyncIterator[APIServer]:
    """An API server on `ServerConfig(**fields)` (`prefix` defaults to
    `/<name>-<random>`), running until the block ends; its `port` is bound."""
    fields.setdefault("prefix", f"/{name}-{uuid.uuid4().hex[:8]}")
    config = ServerConfig(
        etcd_endpoints=(etcd_server.endpoint,), port=0, compaction_interval=0, **fields
    )
    server = APIServer(config)
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()
