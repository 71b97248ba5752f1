"""Container runtimes for the node agent; `base` states the interface.

`docker`, `process` and `simulated` implement it on one core: `_records`
(sandboxes and containers by id, the JSON form of configs), `_events` (the
event stream), `_exec` (exec deadlines and stdin), `_statefile` (atomic JSON
files) and `_ipam` (sandbox IPs; its machine-wide claim directory,
`DEFAULT_IP_DIR`, is public: `kpy up` and the agent's flags name it; so
are the `SERVICE_RANGES` it never hands out, where `kpy up` picks each
cluster's Service range).
"""

from kpy.agent.runtime._ipam import DEFAULT_IP_DIR, SERVICE_RANGES
from kpy.agent.runtime.base import (
    LABEL_CONTAINER_ATTEMPT,
    LABEL_CONTAINER_INIT,
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    SECURITY_FIELDS,
    ContainerConfig,
    ContainerConfigError,
    ContainerCreateError,
    ContainerEvent,
    ContainerState,
    ContainerStats,
    ContainerStatus,
    ExecOutput,
    ImageNeverPullError,
    ImagePullError,
    Mount,
    NotFoundError,
    PodSandbox,
    PodSandboxConfig,
    Runtime,
    RuntimeError_,
    SandboxState,
    SecurityConfig,
)

__all__ = [
    "DEFAULT_IP_DIR",
    "LABEL_CONTAINER_ATTEMPT",
    "LABEL_CONTAINER_INIT",
    "LABEL_CONTAINER_NAME",
    "LABEL_POD_NAME",
    "LABEL_POD_NAMESPACE",
    "LABEL_POD_UID",
    "SECURITY_FIELDS",
    "SERVICE_RANGES",
    "ContainerConfig",
    "ContainerConfigError",
    "ContainerCreateError",
    "ContainerEvent",
    "ContainerState",
    "ContainerStats",
    "ContainerStatus",
    "ExecOutput",
    "ImageNeverPullError",
    "ImagePullError",
    "Mount",
    "NotFoundError",
    "PodSandbox",
    "PodSandboxConfig",
    "Runtime",
    "RuntimeError_",
    "SandboxState",
    "SecurityConfig",
]
