"""Completion indexes of an Indexed Job (Kubernetes' indexed_job_utils.go).

Lives in `kpy.controllers.job.indexes`.

- `completion_index(pod)`: the index in the pod's
  `batch.kubernetes.io/job-completion-index` annotation, or None when it is
  missing or not a non-negative number.
- `format_intervals(indexes)`: "1,3-5,7" for {1, 3, 4, 5, 7} (the form of
  `status.completedIndexes` and `status.failedIndexes`);
  `parse_intervals(text)` reads it back (ignoring what does not parse).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kpy.api.core.v1 import Pod

__all__ = [
    "COMPLETION_INDEX_ANNOTATION",
    "COMPLETION_INDEX_ENV",
    "completion_index",
    "format_intervals",
    "parse_intervals",
]

COMPLETION_INDEX_ANNOTATION: Final = "batch.kubernetes.io/job-completion-index"
COMPLETION_INDEX_ENV: Final = "JOB_COMPLETION_INDEX"


def completion_index(pod: Pod) -> int | None:
    text = pod.metadata.annotations.get(COMPLETION_INDEX_ANNOTATION, "")
    return int(text) if text.isascii() and text.isdigit() else None


def format_intervals(indexes: Iterable[int]) -> str:
    ordered = sorted(set(indexes))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def parse_intervals(text: str) -> set[int]:
    found: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            continue
        found.update(range(int(low), int(high if dash else low) + 1))
    return found
