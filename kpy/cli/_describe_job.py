"""A Job and a CronJob as `kubectl describe` (1.3x) shows them, as rows for
describe's tabwriter (kpy.cli._printers.tabulate with padding 2).

Contracts:
- Pure: the object is read, never mutated. The pod template's rows are
  passed in (describe.py's one pod-template printer, shared with the other
  workloads); events are the caller's, appended after these rows.
- `job_rows(job, template)`: Name, Namespace, Selector, Labels,
  Annotations, Controlled By, then, each only when set as in kubectl:
  Parallelism, Completions (`<unset>` if unset), Completion Mode, Suspend,
  Backoff Limit, TTL Seconds After Finished, Start Time, Completed At,
  Duration, Active Deadline Seconds; then `Pods Statuses:  N Active (N
  Ready) / N Succeeded / N Failed` (without `(N Ready)` when the status has
  no ready count), Completed Indexes for an Indexed Job (cut after 50
  characters at a comma, with `...`), and the Pod Template.
- `cron_job_rows(cj, template)`: Name, Namespace, Labels, Annotations,
  Schedule, Concurrency Policy, Suspend (`True`/`False`/`<unset>`), the
  Successful and Failed Job History Limits and Starting Deadline Seconds
  (`<unset>` when unset), then the job template's Selector, Parallelism,
  Completions (each `<unset>` when unset) and Active Deadline Seconds, the
  Pod Template, Last Schedule Time (`<unset>` before the first) and Active
  Jobs (names, comma-separated, or `<none>`).
- Times are kubectl's RFC 1123 with a numeric zone, in local time.
"""

from __future__ import annotations

from typing import Any

from kpy.api import labels
from kpy.cli import _describe_pod, _printers

__all__ = ["COMPLETED_INDEXES_LIMIT", "Rows", "cron_job_rows", "job_rows"]

Rows = list[list[str]]
UNSET = "<unset>"
# kubectl cuts a long completedIndexes list at the first comma past this.
COMPLETED_INDEXES_LIMIT = 50


def job_rows(job: Any, template: Rows) -> Rows:
    """A Job's description up to its events (see the module docstring)."""
    spec, status = job.spec, job.status
    rows = _header(job)
    rows.insert(2, ["Selector:", _selector(spec.selector) if spec.HasField("selector") else ""])
    controller = next((r for r in job.metadata.owner_references if r.controller), None)
    if controller is not None:
        rows.append(["Controlled By:", f"{controller.kind}/{controller.name}"])
    if spec.HasField("parallelism"):
        rows.append(["Parallelism:", str(spec.parallelism)])
    rows.append(["Completions:", str(spec.completions) if spec.HasField("completions") else UNSET])
    if spec.HasField("completion_mode"):
        rows.append(["Completion Mode:", spec.completion_mode])
    if spec.HasField("suspend"):
        rows.append(["Suspend:", str(spec.suspend).lower()])
    if spec.HasField("backoff_limit"):
        rows.append(["Backoff Limit:", str(spec.backoff_limit)])
    if spec.HasField("ttl_seconds_after_finished"):
        rows.append(["TTL Seconds After Finished:", str(spec.ttl_seconds_after_finished)])
    started = _printers.seconds_of(status.start_time) if status.HasField("start_time") else None
    finished = (
        _printers.seconds_of(status.completion_time) if status.HasField("completion_time") else None
    )
    if started is not None:
        rows.append(["Start Time:", _describe_pod.timestamp(status.start_time)])
    if finished is not None:
        rows.append(["Completed At:", _describe_pod.timestamp(status.completion_time)])
    if started is not None and finished is not None:
        rows.append(["Duration:", _printers.human_duration(finished - started)])
    if spec.HasField("active_deadline_seconds"):
        rows.append(["Active Deadline Seconds:", f"{spec.active_deadline_seconds}s"])
    rows.append(["Pods Statuses:", pods_statuses(status)])
    if spec.completion_mode == "Indexed":
        rows.append(["Completed Indexes:", cap_indexes(status.completed_indexes)])
    return rows + template


def pods_statuses(status: Any) -> str:
    """`N Active (N Ready) / N Succeeded / N Failed`; without the ready
    count when the status has none, as kubectl prints it."""
    ready = f" ({status.ready} Ready)" if status.HasField("ready") else ""
    return f"{status.active} Active{ready} / {status.succeeded} Succeeded / {status.failed} Failed"


def cap_indexes(indexes: str, limit: int = COMPLETED_INDEXES_LIMIT) -> str:
    """kubectl's capIndexesListOrNone: `<none>` when empty, else the list
    cut at the first comma at or past `limit` characters, with `...`."""
    if not indexes:
        return _printers.NONE
    comma = indexes.find(",", limit)
    return indexes if comma < 0 else indexes[: comma + 1] + "..."


def cron_job_rows(cj: Any, template: Rows) -> Rows:
    """A CronJob's description up to its events (see the module docstring)."""
    spec, status = cj.spec, cj.status
    job_spec = spec.job_template.spec
    rows = _header(cj)
    rows += [
        ["Schedule:", spec.schedule],
        ["Concurrency Policy:", spec.concurrency_policy],
        ["Suspend:", str(spec.suspend) if spec.HasField("suspend") else UNSET],
        ["Successful Job History Limit:", _optional(spec, "successful_jobs_history_limit")],
        ["Failed Job History Limit:", _optional(spec, "failed_jobs_history_limit")],
        ["Starting Deadline Seconds:", _optional(spec, "starting_deadline_seconds", "s")],
        [
            "Selector:",
            _selector(job_spec.selector) if job_spec.HasField("selector") else UNSET,
        ],
        ["Parallelism:", _optional(job_spec, "parallelism")],
        ["Completions:", _optional(job_spec, "completions")],
    ]
    if job_spec.HasField("active_deadline_seconds"):
        rows.append(["Active Deadline Seconds:", f"{job_spec.active_deadline_seconds}s"])
    rows += template
    last = (
        _describe_pod.timestamp(status.last_schedule_time)
        if status.HasField("last_schedule_time")
        else UNSET
    )
    rows.append(["Last Schedule Time:", last])
    rows.append(["Active Jobs:", ", ".join(r.name for r in status.active) or _printers.NONE])
    return rows


def _header(obj: Any) -> Rows:
    m = obj.metadata
    rows = [["Name:", m.name], ["Namespace:", m.namespace]]
    rows += _describe_pod.labels_rows("Labels:", dict(m.labels), "=")
    rows += _describe_pod.annotations_rows("Annotations:", dict(m.annotations))
    return rows


def _selector(selector: Any) -> str:
    """metav1.LabelSelectorAsSelector's text, or kubectl's message when the
    selector does not parse."""
    try:
        return str(labels.selector_from_label_selector(selector))
    except ValueError as e:
        return f"Failed to get selector: {e}"


def _optional(message: Any, field: str, unit: str = "") -> str:
    return f"{getattr(message, field)}{unit}" if message.HasField(field) else UNSET
