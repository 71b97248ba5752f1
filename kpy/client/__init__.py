"""The async, typed client SDK of the kpy API.

    from kpy.client import Client
    from kpy.api.core.v1 import Pod

    async with Client() as client:             # servers from ~/.kpy/config
        pod = await client.get(Pod, "web-0")
        async with client.watch(Pod, namespace="default") as events:
            async for event in events:
                ...

Errors are the `kpy.api.errors` classes (NotFound, Conflict, Invalid, ...).
"""

from kpy.client.client import Client, Deleted, ObjectList, Watch, WatchEvent
from kpy.client.config import ClientConfig, ConfigError, config_path, load_config

__all__ = [
    "Client",
    "ClientConfig",
    "ConfigError",
    "Deleted",
    "ObjectList",
    "Watch",
    "WatchEvent",
    "config_path",
    "load_config",
]
