"""The async, typed client SDK of the kpy API.

    from kpy.client import Client
    from kpy.api.core.v1 import Pod

    async with Client() as client:             # servers from ~/.kpy/config
        pod = await client.get(Pod, "web-0")
        async with client.watch(Pod, namespace="default") as events:
            async for event in events:
                ...

Errors are the `kpy.api.errors` classes (NotFound, Conflict, Invalid, ...),
and `OutcomeUnknown` (a Timeout) for a write whose answer was lost.

Code that only needs what controllers use types its client as
`ClientProtocol`, which `Client` and the in-memory `kpy.client.fake.FakeClient`
(for tests) both satisfy.
"""

from kpy.client.client import Client, Deleted, ObjectList, OutcomeUnknown, Watch, WatchEvent
from kpy.client.config import (
    ClientConfig,
    ConfigError,
    TLSCredentials,
    config_path,
    load_config,
)
from kpy.client.protocol import ClientProtocol, WatchStream

__all__ = [
    "Client",
    "ClientConfig",
    "ClientProtocol",
    "ConfigError",
    "Deleted",
    "ObjectList",
    "OutcomeUnknown",
    "TLSCredentials",
    "Watch",
    "WatchEvent",
    "WatchStream",
    "config_path",
    "load_config",
]
