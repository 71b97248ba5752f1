"""What the node agent needs of a container runtime, in the spirit of the CRI.

A runtime runs pod sandboxes (what a pod's containers share: an IP, and for
Docker a network namespace) and containers inside them. It knows nothing of
the API: the agent translates a Pod into `PodSandboxConfig` and
`ContainerConfig` values (env already resolved, volumes already prepared as
host directories) and reads back `ContainerStatus` values.

Contract every implementation keeps:
- Ids are opaque strings, unique on this machine for the runtime's life.
- Every sandbox and container carries the labels it was created with. The
  agent puts the pod's namespace, name and uid and the container's name and
  attempt there (and marks init containers), so that after a restart `list_pod_sandboxes` and
  `list_containers` let it find what it was running: a runtime must keep
  running containers alive when the agent process exits, and report them
  again from `start()` on the next run.
- A container that exits is reported once on `events()` (kind "exited",
  with its exit code); a container that starts is reported as "started".
  The agent learns of deaths from this stream, never by polling. Events
  are kept from `start()` until `close()`, read or not: the agent starts
  the runtime, then its pod workers, then reads events, and an exit in
  between must reach it. `events()` may be called before `start()`; one
  reader takes them; `close()` ends the stream after what was kept.
  Containers that exited while no runtime watched them (the agent was
  down) are not reported: `list_containers()` after `start()` shows them
  exited. (`_events.EventStream` is this stream, shared by every runtime.)
- A sandbox that stops (its pause container died, or `stop_pod_sandbox`,
  whoever called it) is reported once on the same stream, as kind
  "sandbox_stopped" with `container_id` and `sandbox_id` its id and its
  labels (the pod's uid among them): the agent replaces a dead sandbox, as
  the kubelet does, and learns of it from this event, never by polling.
- `stop_container(id, timeout)` sends the stop signal (SIGTERM unless the
  config named another), waits up to `timeout` seconds, then kills. It
  returns when the container has exited. Stopping an exited container is a
  no-op.
- An exited container keeps its status and logs until `remove_container`:
  the agent keeps the last dead instance of each container for `logs
  --previous` and removes older ones.
- Several clusters may share a machine and a Docker engine, each with a
  node of the same name: a runtime is given its cluster's uid and its node
  name, and lists, adopts, frees and removes only what carries both.
- The configs are CRI-shaped: what a runtime needs beyond them it reads
  from their labels (the `LABEL_*` keys below) or from the sandbox's config
  (the pod's annotations), never from fields of its own here. A stopped
  sandbox has given its IP back and reports none (""). Ids a runtime does
  not know are NotFoundError, but removing one is a no-op, and listing the
  containers of one is [] (`_records.Records` does these lookups). A
  container cannot be created in a stopped sandbox (ContainerCreateError),
  and starts only once (RuntimeError_; a restart is a new container).
- Errors are `RuntimeError_` subclasses with a message a user can act on;
  `ImagePullError`, `ContainerCreateError` and `ContainerConfigError` carry
  the Kubernetes waiting reason the agent shows.
- A runtime declares in `security_fields` which securityContext fields it
  honours (names from `SECURITY_FIELDS`); the agent never gives it a
  container that asks for another (it refuses the container itself, with
  CreateContainerConfigError), so a runtime applies every setting of a
  `SecurityConfig` it is given or raises ContainerConfigError.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

# Label keys the agent sets on every sandbox and container it creates.
LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_CONTAINER_NAME = "io.kubernetes.container.name"
LABEL_CONTAINER_ATTEMPT = "io.kubernetes.container.attempt"
# "true" on a pod's init containers (absent on the others).
LABEL_CONTAINER_INIT = "io.kpy.container.init"

# The cluster of a runtime built without one (tests, benchmarks); agents
# always name theirs (kpy-agent --cluster-uid, or one derived from its root dir).
DEFAULT_CLUSTER_UID = "default"
_CLUSTER_UID = re.compile(r"[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?")


def check_cluster_uid(uid: str) -> str:
    """`uid` if it can name a cluster (it goes into Docker names and labels
    and into claim files: lower-case letters, digits, '.' and '-', 1 to 63);
    ValueError saying so otherwise."""
    if not _CLUSTER_UID.fullmatch(uid):
        raise ValueError(
            f"cluster uid {uid!r} is not valid: use 1 to 63 lower-case letters, digits, "
            "'.' or '-', starting and ending with a letter or digit"
        )
    return uid


class RuntimeError_(Exception):
    """A runtime operation failed; `reason` is the Kubernetes waiting reason
    the agent shows for the container."""

    reason = "RunContainerError"


class ImagePullError(RuntimeError_):
    """The image is not here and could not be had (or policy Never)."""

    reason = "ErrImagePull"


class ImageNeverPullError(ImagePullError):
    reason = "ErrImageNeverPull"


class ContainerCreateError(RuntimeError_):
    reason = "CreateContainerError"


class ContainerConfigError(RuntimeError_):
    """The container cannot be made as its pod asks (a security setting this
    runtime cannot apply, runAsNonRoot with an image that runs as root)."""

    reason = "CreateContainerConfigError"


class NotFoundError(RuntimeError_):
    """No sandbox or container with that id."""


@dataclass(frozen=True, slots=True)
class PodSandboxConfig:
    """What a pod's sandbox is made from; `annotations` are the pod's."""

    namespace: str
    name: str
    uid: str
    attempt: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    hostname: str = ""
    # The directory under which this pod's container logs are kept.
    log_directory: str = ""
    # The pod's securityContext.sysctls (namespaced ones: the containers
    # share the sandbox's network and IPC namespaces).
    sysctls: Mapping[str, str] = field(default_factory=dict)


class SandboxState(enum.Enum):
    READY = "ready"
    NOT_READY = "notready"


@dataclass(frozen=True, slots=True)
class PodSandbox:
    id: str
    namespace: str
    name: str
    uid: str
    ip: str
    state: SandboxState
    created_at: float
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Mount:
    host_path: str
    container_path: str
    read_only: bool = False


# The securityContext fields (pod's or container's, by their Kubernetes
# names) that ask something of a runtime; `Runtime.security_fields` is the
# subset one honours.
SECURITY_FIELDS: Final = frozenset(
    {
        "runAsUser",
        "runAsGroup",
        "runAsNonRoot",
        "supplementalGroups",
        "fsGroup",
        "allowPrivilegeEscalation",
        "privileged",
        "capabilities",
        "readOnlyRootFilesystem",
        "seccompProfile",
        "sysctls",
    }
)


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """A container's effective security settings (the CRI's
    LinuxContainerSecurityContext): the pod's securityContext with the
    container's over it, resolved by the agent. The defaults ask nothing:
    the image's user, the runtime's default capabilities and confinement.
    `run_as_non_root` has been checked by the agent already; a runtime may
    check it again against the user it would run as."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    # supplementalGroups, then fsGroup (the kubelet adds it to every container).
    supplemental_groups: Sequence[int] = ()
    run_as_non_root: bool = False
    privileged: bool = False
    capabilities_add: Sequence[str] = ()
    capabilities_drop: Sequence[str] = ()
    read_only_root_filesystem: bool = False
    # allowPrivilegeEscalation: false.
    no_new_privileges: bool = False
    # "" (the runtime's default), "RuntimeDefault" or "Unconfined".
    seccomp_profile: str = ""


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    name: str
    image: str
    attempt: int = 0
    image_pull_policy: str = "IfNotPresent"
    command: Sequence[str] = ()
    args: Sequence[str] = ()
    working_dir: str = ""
    env: Sequence[tuple[str, str]] = ()
    mounts: Sequence[Mount] = ()
    # Limits; None: unlimited.
    cpu_limit_millis: int | None = None
    memory_limit_bytes: int | None = None
    # Signal name for stop_container ("SIGTERM" unless Lifecycle.stopSignal).
    stop_signal: str = "SIGTERM"
    labels: Mapping[str, str] = field(default_factory=dict)
    # The file the container's stdout and stderr go to.
    log_path: str = ""
    security: SecurityConfig = field(default_factory=SecurityConfig)


class ContainerState(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ContainerStatus:
    id: str
    sandbox_id: str
    name: str
    attempt: int
    image: str
    state: ContainerState
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    # "OOMKilled", "Error", "Completed" once exited; "" before.
    reason: str = ""
    message: str = ""
    image_id: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    log_path: str = ""


@dataclass(frozen=True, slots=True)
class ContainerEvent:
    container_id: str
    sandbox_id: str
    kind: str  # "started" | "exited" | "sandbox_stopped"
    exit_code: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExecOutput:
    """One piece of an exec's output: data on stdout (1) or stderr (2), or
    the final message with `exit_code` set."""

    stream: int = 1
    data: bytes = b""
    exit_code: int | None = None


@dataclass(frozen=True, slots=True)
class ContainerStats:
    container_id: str
    timestamp: float
    # Cumulative CPU time used, in nanoseconds; the agent derives a rate.
    cpu_usage_ns: int
    memory_bytes: int


class Runtime(Protocol):
    """A container runtime; see the module docstring for the contract."""

    name: str
    # The SECURITY_FIELDS this runtime applies (see the module docstring).
    security_fields: frozenset[str]

    async def start(self) -> None:
        """Connect, and recover sandboxes and containers a previous agent
        left running."""

    async def close(self) -> None:
        """Release connections and tasks; containers keep running."""

    async def pull_image(self, image: str, policy: str) -> str:
        """Make `image` available per `policy` (Always, IfNotPresent,
        Never); returns the image id. Raises ImagePullError."""

    async def image_user(self, image: str) -> str | None:
        """The user a container of `image` (already pulled) runs as unless
        told otherwise, as "uid", "name", "uid:gid" or "" (root); None when
        this runtime cannot tell (the agent then does not check runAsNonRoot
        against the image)."""

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> PodSandbox: ...

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        """Stop every container of the sandbox (killing them) and release
        what the sandbox holds, such as its IP."""

    async def remove_pod_sandbox(self, sandbox_id: str) -> None: ...

    async def list_pod_sandboxes(self) -> list[PodSandbox]: ...

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandbox:
        """The sandbox as the runtime sees it now (NotFoundError if gone)."""

    async def create_container(
        self, sandbox_id: str, config: ContainerConfig, sandbox: PodSandboxConfig
    ) -> str: ...

    async def start_container(self, container_id: str) -> None: ...

    # `timeout` is the CRI's grace period, not a deadline on the call.
    async def stop_container(self, container_id: str, timeout: float) -> None:  # noqa: ASYNC109
        ...

    async def remove_container(self, container_id: str) -> None: ...

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        """Every container, or those of one sandbox ([] for an unknown one)."""

    async def container_status(self, container_id: str) -> ContainerStatus: ...

    def exec(
        self,
        container_id: str,
        command: Sequence[str],
        *,
        stdin: AsyncIterator[bytes] | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[ExecOutput]:
        """Run `command` in the container; yields output as it comes and
        ends with an ExecOutput carrying the exit code. A timeout kills the
        command and raises TimeoutError."""

    def logs(
        self, container_id: str, *, follow: bool = False, tail_lines: int = 0
    ) -> AsyncIterator[bytes]:
        """The container's output (stdout and stderr interleaved as
        written); with `follow`, keeps yielding until the container exits."""

    async def stats(self, container_id: str) -> ContainerStats: ...

    def events(self) -> AsyncIterator[ContainerEvent]:
        """Started and exited events for every container, kept from
        `start()` until `close()` (see the module docstring); one reader."""
