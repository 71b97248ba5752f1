"""Which pod a `logs` or `exec` target means, as kubectl decides it.

The pod is named `NAME` or `pod/NAME` (`po/`, `pods/`); a workload
(`deploy/web`, `rs/`, `sts/`, `ds/`, `job/`, `rc/`) means one of its pods,
the running and ready one first, and `pod_name` says which on stderr when
there are several (`Found 3 pods, using pod/web-1`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

from kpy.api.core.v1 import Pod
from kpy.api.labels import selector_from_label_selector
from kpy.cli import _client
from kpy.cli._manifests import UsageError

if TYPE_CHECKING:
    from kpy.client import Client

__all__ = ["pick_pod", "pod_name"]

# Kinds whose `spec.selector` names the pods a `TYPE/NAME` means.
_WORKLOADS = (
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "ReplicationController",
)


async def pod_name(client: Client, target: str, namespace: str, err: TextIO) -> str:
    """The pod `target` means: `NAME`, `pod/NAME`, or one pod of a workload
    `TYPE/NAME` (see the module docstring). NotFound when the workload is
    missing; UsageError (`error: no pods found ...`) when it has no pods."""
    kind, slash, name = target.partition("/")
    if not slash:
        return target
    info = _client.resolve(kind)
    if info.kind == "Pod":
        return name
    if info.kind not in _WORKLOADS:
        raise UsageError(
            f"cannot find the pods of a {info.kind}: name a pod, or one of "
            "deployment, replicaset, statefulset, daemonset, job, replicationcontroller"
        )
    owner: Any = await client.get(info.message, name, namespace=namespace)
    selector = owner.spec.selector
    if info.kind == "ReplicationController":
        text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    else:
        text = str(selector_from_label_selector(selector))
    pods = (await client.list(Pod, namespace=namespace, label_selector=text)).items
    if not pods:
        raise UsageError(
            f'no pods found for {info.singular} "{name}" (selector {text}); see its status '
            f"with kpyctl describe {info.singular} {name}"
        )
    chosen = pick_pod(pods)
    if len(pods) > 1:
        err.write(f"Found {len(pods)} pods, using pod/{chosen.metadata.name}\n")
    return str(chosen.metadata.name)


def pick_pod(pods: list[Pod]) -> Pod:
    """The pod to show of several: not being deleted, scheduled, running,
    ready, then the oldest (so repeated calls agree)."""

    def rank(pod: Pod) -> tuple[bool, bool, bool, bool, int, str]:
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)
        return (
            pod.metadata.HasField("deletion_timestamp"),
            not pod.spec.node_name,
            pod.status.phase != "Running",
            not ready,
            pod.metadata.creation_timestamp.seconds,
            pod.metadata.name,
        )

    return min(pods, key=rank)
