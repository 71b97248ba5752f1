"""A pod's securityContext as a runtime is asked to apply it.

`container_security` resolves a container's effective settings with
Kubernetes' precedence (its `DetermineEffectiveSecurityContext`):

- runAsUser, runAsGroup, runAsNonRoot and seccompProfile: the container's
  when it sets them, else the pod's;
- supplementalGroups, fsGroup and sysctls: the pod's only (fsGroup joins
  every container's supplementary groups, as the kubelet adds it);
- privileged, capabilities, readOnlyRootFilesystem, allowPrivilegeEscalation:
  the container's only.

`refusal` says why a container cannot be created on a runtime (a field the
runtime does not declare in `security_fields`, a Localhost seccomp profile,
which no kpy runtime loads), and `verify_run_as_non_root` is the kubelet's
runAsNonRoot check, word for word. Both return a message for the
container's CreateContainerConfigError waiting state, or "" when it may be
created. Everything here is pure: the agent passes the pod, the container
and what the runtime said of its image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from kpy.agent.runtime import SecurityConfig

if TYPE_CHECKING:
    from kpy.api.core.v1 import Container, Pod, PodSecurityContext, SecurityContext


# The fields a container's securityContext overrides in the pod's.
_Shared = Literal["run_as_user", "run_as_group", "run_as_non_root"]


@dataclass(frozen=True, slots=True)
class Requested:
    """A securityContext field that asks something of the runtime: its name
    (one of `SECURITY_FIELDS`) and its path in the pod."""

    field: str
    path: str


def container_security(pod: Pod, c: Container) -> SecurityConfig:
    """The effective settings of container `c` of `pod` (module docstring)."""
    psc, csc = pod.spec.security_context, c.security_context
    groups = list(psc.supplemental_groups)
    if psc.HasField("fs_group") and psc.fs_group not in groups:
        groups.append(psc.fs_group)
    seccomp = csc.seccomp_profile if csc.HasField("seccomp_profile") else psc.seccomp_profile
    return SecurityConfig(
        run_as_user=_either(csc, psc, "run_as_user"),
        run_as_group=_either(csc, psc, "run_as_group"),
        supplemental_groups=tuple(groups),
        run_as_non_root=bool(_either(csc, psc, "run_as_non_root")),
        privileged=csc.privileged,
        capabilities_add=tuple(csc.capabilities.add),
        capabilities_drop=tuple(csc.capabilities.drop),
        read_only_root_filesystem=csc.read_only_root_filesystem,
        no_new_privileges=(
            csc.HasField("allow_privilege_escalation") and not csc.allow_privilege_escalation
        ),
        seccomp_profile=seccomp.type,
    )


def requested(pod: Pod, c: Container, container_path: str) -> list[Requested]:
    """The fields of the pod's and `c`'s securityContext that ask something
    of the runtime (an "off" or default value asks nothing), each at the
    path where it is set (the container's overrides the pod's)."""
    psc, csc = pod.spec.security_context, c.security_context
    pod_at, c_at = "spec.securityContext", f"{container_path}.securityContext"
    found: list[Requested] = []

    shared: tuple[tuple[str, _Shared], ...] = (
        ("runAsUser", "run_as_user"),
        ("runAsGroup", "run_as_group"),
        ("runAsNonRoot", "run_as_non_root"),
    )
    for name, field in shared:
        value = _either(csc, psc, field)
        if value is not None and value is not False:
            at = c_at if csc.HasField(field) else pod_at
            found.append(Requested(name, f"{at}.{name}"))
    if psc.supplemental_groups:
        found.append(Requested("supplementalGroups", f"{pod_at}.supplementalGroups"))
    if psc.HasField("fs_group"):
        found.append(Requested("fsGroup", f"{pod_at}.fsGroup"))
    if psc.sysctls:
        found.append(Requested("sysctls", f"{pod_at}.sysctls"))
    if csc.HasField("allow_privilege_escalation") and not csc.allow_privilege_escalation:
        found.append(Requested("allowPrivilegeEscalation", f"{c_at}.allowPrivilegeEscalation"))
    if csc.privileged:
        found.append(Requested("privileged", f"{c_at}.privileged"))
    if csc.capabilities.add or csc.capabilities.drop:
        found.append(Requested("capabilities", f"{c_at}.capabilities"))
    if csc.read_only_root_filesystem:
        found.append(Requested("readOnlyRootFilesystem", f"{c_at}.readOnlyRootFilesystem"))
    if container_security(pod, c).seccomp_profile:
        at = c_at if csc.HasField("seccomp_profile") else pod_at
        found.append(Requested("seccompProfile", f"{at}.seccompProfile"))
    return found


def refusal(
    pod: Pod, c: Container, container_path: str, runtime: str, honoured: frozenset[str]
) -> str:
    """Why container `c` cannot be created on the runtime named `runtime`,
    which applies the fields `honoured`; "" if it can."""
    for asked in requested(pod, c, container_path):
        if asked.field not in honoured:
            return (
                f"{asked.path}: not supported by kpy's {runtime} runtime; run it on a Docker "
                "node, or remove the field"
            )
    if container_security(pod, c).seccomp_profile == "Localhost":
        at = container_path if c.security_context.HasField("seccomp_profile") else "spec"
        path = f"{at}.securityContext.seccompProfile"
        return (
            f"{path}: type Localhost is not supported by kpy's runtimes; use RuntimeDefault "
            "or Unconfined"
        )
    return ""


def verify_run_as_non_root(
    pod: Pod, c: Container, security: SecurityConfig, image_user: str | None
) -> str:
    """The kubelet's runAsNonRoot check of container `c` whose image runs as
    `image_user` ("" for root, None when the runtime cannot tell: not
    checked); the error message, or "" when the container may run."""
    if not security.run_as_non_root:
        return ""
    m = pod.metadata
    where = f'(pod: "{m.name}_{m.namespace}({m.uid})", container: {c.name})'
    if security.run_as_user is not None:
        if security.run_as_user == 0:
            return f"container's runAsUser breaks non-root policy {where}"
        return ""
    if image_user is None:
        return ""
    # Docker's and the CRI's form: "user", "uid", "user:group", "uid:gid".
    user = image_user.split(":", 1)[0]
    if user and not user.isdigit():
        return (
            f"container has runAsNonRoot and image has non-numeric user ({user}), cannot "
            f"verify user is non-root {where}"
        )
    if not user or int(user) == 0:
        return f"container has runAsNonRoot and image will run as root {where}"
    return ""


def _either(csc: SecurityContext, psc: PodSecurityContext, field: _Shared) -> int | bool | None:
    """The container's value of `field` if it sets it, else the pod's, else None."""
    for sc in (csc, psc):
        if sc.HasField(field):
            value: int | bool = getattr(sc, field)
            return value
    return None
