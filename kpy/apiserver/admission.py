"""Mutating admission: what Kubernetes adds to an object on create, beyond
the defaults of its API types (`kpy.api.defaults`).

- Pods tolerate the `node.kubernetes.io/not-ready` and
  `node.kubernetes.io/unreachable` NoExecute taints for 300 s unless they
  already say how long (DefaultTolerationSeconds), so a pod is evicted five
  minutes after its node stops answering; they run as the `default` service
  account unless they name one.
- A Job without `manualSelector` gets a selector generated from its uid, and
  its template the matching labels (`controller-uid`, `job-name`, and their
  `batch.kubernetes.io/` forms), so two Jobs never adopt each other's pods.

Admission runs after the server has set uid and creationTimestamp, before
defaulting and validation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from kpy.api.core.v1 import Toleration

if TYPE_CHECKING:
    from google.protobuf.message import Message

NOT_READY_TAINT: Final = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT: Final = "node.kubernetes.io/unreachable"
DEFAULT_TOLERATION_SECONDS: Final = 300

_Admit = Callable[[Any], None]


def admit(obj: Message) -> None:
    """Applies the create-time admission of `obj`'s kind, in place."""
    plugin = _ON_CREATE.get(type(obj).__name__)
    if plugin is not None:
        plugin(obj)


def _tolerates(tolerations: Any, key: str) -> bool:
    """Whether some toleration already covers NoExecute taints of `key`."""
    for t in tolerations:
        key_matches = t.key == key or (not t.key and t.operator == "Exists")
        if key_matches and t.effect in ("", "NoExecute"):
            return True
    return False


def _pod(pod: Any) -> None:
    spec = pod.spec
    for key in (NOT_READY_TAINT, UNREACHABLE_TAINT):
        if not _tolerates(spec.tolerations, key):
            spec.tolerations.append(
                Toleration(
                    key=key,
                    operator="Exists",
                    effect="NoExecute",
                    toleration_seconds=DEFAULT_TOLERATION_SECONDS,
                )
            )
    if not spec.service_account_name:
        spec.service_account_name = "default"


def _job(job: Any) -> None:
    spec = job.spec
    if spec.manual_selector:
        return
    uid, name = job.metadata.uid, job.metadata.name
    generated = {
        "controller-uid": uid,
        "batch.kubernetes.io/controller-uid": uid,
        "job-name": name,
        "batch.kubernetes.io/job-name": name,
    }
    labels = spec.template.metadata.labels
    for key, value in generated.items():
        labels.setdefault(key, value)
    # As Kubernetes' generateSelector: the uid label joins whatever selector
    # was given, so a selector that does not select this Job's own pods (or a
    # template that contradicts the generated labels) fails validation.
    spec.selector.match_labels.setdefault("batch.kubernetes.io/controller-uid", uid)


_ON_CREATE: Final[dict[str, _Admit]] = {"Pod": _pod, "Job": _job}
