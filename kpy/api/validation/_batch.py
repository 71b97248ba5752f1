"""Validation of batch/v1: Job and CronJob.

A Job's pods run to completion, so its template's restartPolicy is OnFailure
or Never. Its selector is optional: the API server generates one from the
Job's uid when the user gives none; one that is given must match the
template. A CronJob's job template is validated as a Job spec at
`spec.jobTemplate.spec`, without a selector (each Job gets its own).
"""

from __future__ import annotations

import functools
import zoneinfo
from typing import Any

from kpy.api import cron, names
from kpy.api.labels import selector_from_label_selector
from kpy.api.validation._apps import optional_non_negative, validate_template_labels
from kpy.api.validation._core import validate_pod_template_spec
from kpy.api.validation._field import (
    Errors,
    duplicate,
    each,
    forbidden,
    immutable,
    invalid,
    not_supported,
    one_of,
    positive,
    required,
)
from kpy.api.validation._meta import validate_annotations, validate_label_selector, validate_labels
from kpy.api.validation._registry import update_validators, validators

MAX_INDEXED_COMPLETIONS = 100_000
MAX_CRON_JOB_NAME = 52  # the Jobs it creates append "-<11 digits>" to a DNS label
_JOB_COUNTS = (
    ("parallelism", "parallelism"),
    ("completions", "completions"),
    ("backoff_limit", "backoffLimit"),
    ("backoff_limit_per_index", "backoffLimitPerIndex"),
    ("max_failed_indexes", "maxFailedIndexes"),
    ("ttl_seconds_after_finished", "ttlSecondsAfterFinished"),
)
_JOB_IMMUTABLE = (
    ("selector", "selector"),
    ("completion_mode", "completionMode"),
    ("pod_failure_policy", "podFailurePolicy"),
    ("success_policy", "successPolicy"),
    ("backoff_limit_per_index", "backoffLimitPerIndex"),
    ("managed_by", "managedBy"),
)
_FAILURE_ACTIONS = ("FailJob", "FailIndex", "Ignore", "Count")


# ------------------------------------------------------------------ Job


@validators("Job")
def _validate_job(job: Any) -> Errors:
    spec = job.spec
    errs = validate_job_spec(spec, "spec")
    if spec.HasField("selector"):
        selector_errs = validate_label_selector(spec.selector, "spec.selector")
        if not selector_errs:
            selector = selector_from_label_selector(spec.selector)
            selector_errs = validate_template_labels(selector, spec.template, "spec.template")
        errs += selector_errs
    return errs


def validate_job_spec(spec: Any, path: str) -> Errors:
    """Everything in a JobSpec but its selector."""
    errs = optional_non_negative(spec, _JOB_COUNTS, path)
    if spec.HasField("active_deadline_seconds"):
        errs += positive(f"{path}.activeDeadlineSeconds", spec.active_deadline_seconds)
    if spec.HasField("pod_replacement_policy"):
        errs += one_of(
            f"{path}.podReplacementPolicy",
            spec.pod_replacement_policy,
            ("TerminatingOrFailed", "Failed"),
        )
    errs += _completion_mode(spec, path)
    errs += _pod_failure_policy(spec, path)
    errs += _success_policy(spec, path)
    if not spec.HasField("template"):
        return [*errs, required(f"{path}.template")]
    return errs + validate_pod_template_spec(
        spec.template, f"{path}.template", restart_policies=("OnFailure", "Never")
    )


def _completion_mode(spec: Any, path: str) -> Errors:
    errs: Errors = []
    if spec.HasField("completion_mode"):
        errs += one_of(f"{path}.completionMode", spec.completion_mode, ("NonIndexed", "Indexed"))
    if spec.completion_mode != "Indexed":
        return errs + [
            forbidden(f"{path}.{json_name}", "requires indexed completion mode")
            for field, json_name in (
                ("backoff_limit_per_index", "backoffLimitPerIndex"),
                ("max_failed_indexes", "maxFailedIndexes"),
            )
            if spec.HasField(field)
        ]
    if not spec.HasField("completions"):
        errs.append(required(f"{path}.completions", "when completion mode is Indexed"))
    limit = (
        f"must be less than or equal to {MAX_INDEXED_COMPLETIONS} when completion mode is Indexed"
    )
    for field in ("completions", "parallelism"):
        if getattr(spec, field) > MAX_INDEXED_COMPLETIONS:
            errs.append(invalid(f"{path}.{field}", getattr(spec, field), limit))
    if spec.HasField("max_failed_indexes") and not spec.HasField("backoff_limit_per_index"):
        errs.append(required(f"{path}.backoffLimitPerIndex", "when maxFailedIndexes is specified"))
    return errs


def _pod_failure_policy(spec: Any, path: str) -> Errors:
    if not spec.HasField("pod_failure_policy"):
        return []
    errs: Errors = []
    restart = spec.template.spec.restart_policy
    if spec.HasField("template") and restart != "Never":
        errs.append(
            invalid(
                f"{path}.template.spec.restartPolicy",
                restart,
                'only "Never" is supported when podFailurePolicy is specified',
            )
        )
    for i, rule in enumerate(spec.pod_failure_policy.rules):
        errs += _pod_failure_rule(rule, f"{path}.podFailurePolicy.rules[{i}]", spec)
    return errs


def _pod_failure_rule(rule: Any, rpath: str, spec: Any) -> Errors:
    errs = one_of(f"{rpath}.action", rule.action, _FAILURE_ACTIONS)
    if rule.action == "FailIndex" and not spec.HasField("backoff_limit_per_index"):
        errs.append(forbidden(f"{rpath}.action", "requires the backoffLimitPerIndex to be set"))
    has_codes, has_conditions = rule.HasField("on_exit_codes"), bool(rule.on_pod_conditions)
    if has_codes and has_conditions:
        errs.append(
            forbidden(rpath, "specifying both OnExitCodes and OnPodConditions is not supported")
        )
    elif not has_codes and not has_conditions:
        errs.append(
            required(rpath, "specifying one of OnExitCodes and OnPodConditions is required")
        )
    if has_codes:
        errs += _on_exit_codes(rule.on_exit_codes, f"{rpath}.onExitCodes")
    for j, pattern in enumerate(rule.on_pod_conditions):
        ppath = f"{rpath}.onPodConditions[{j}]"
        if not pattern.type:
            errs.append(required(f"{ppath}.type"))
        else:
            errs += each(f"{ppath}.type", pattern.type, names.is_qualified_name(pattern.type))
        errs += one_of(f"{ppath}.status", pattern.status, ("True", "False", "Unknown"))
    return errs


def _on_exit_codes(req: Any, path: str) -> Errors:
    errs = one_of(f"{path}.operator", req.operator, ("In", "NotIn"))
    if req.container_name:
        errs += each(
            f"{path}.containerName", req.container_name, names.is_dns1123_label(req.container_name)
        )
    if not req.values:
        errs.append(required(f"{path}.values", "at least one value is required"))
    seen: set[int] = set()
    for i, code in enumerate(req.values):
        if code in seen:
            errs.append(duplicate(f"{path}.values[{i}]", code))
        seen.add(code)
        if code == 0 and req.operator == "In":
            errs.append(invalid(f"{path}.values[{i}]", code, "must not be 0 for the In operator"))
    return errs


def _success_policy(spec: Any, path: str) -> Errors:
    if not spec.HasField("success_policy"):
        return []
    spath = f"{path}.successPolicy"
    if spec.completion_mode != "Indexed":
        return [forbidden(spath, "requires indexed completion mode")]
    if not spec.success_policy.rules:
        return [
            required(
                f"{spath}.rules",
                "at least one rule must be specified when the successPolicy is specified",
            )
        ]
    errs: Errors = []
    completions = spec.completions
    for i, rule in enumerate(spec.success_policy.rules):
        rpath = f"{spath}.rules[{i}]"
        if not rule.HasField("succeeded_indexes") and not rule.HasField("succeeded_count"):
            errs.append(
                required(
                    rpath, "at least one of succeededCount or succeededIndexes must be specified"
                )
            )
        if rule.HasField("succeeded_count"):
            count, cpath = rule.succeeded_count, f"{rpath}.succeededCount"
            if count < 0:
                errs.append(invalid(cpath, count, "must be greater than or equal to 0"))
            elif count > completions:
                errs.append(invalid(cpath, count, "must be less than or equal to completions"))
        if rule.HasField("succeeded_indexes"):
            problem = index_intervals_problem(rule.succeeded_indexes, completions)
            if problem:
                errs.append(invalid(f"{rpath}.succeededIndexes", rule.succeeded_indexes, problem))
    return errs


def index_intervals_problem(text: str, completions: int) -> str:
    """What is wrong with an interval list such as "1,3-5,7" of indexes below
    `completions` (ascending, not overlapping); "" when nothing is."""
    previous = -1
    for part in text.split(","):
        low_text, dash, high_text = part.partition("-")
        if not low_text.isdigit() or (dash and not high_text.isdigit()):
            return f'error parsing "{part}": must be a number or a range such as "3-5"'
        low = int(low_text)
        high = int(high_text) if dash else low
        if low > high:
            return f"range {part} must be ordered"
        if low <= previous:
            return "intervals must be ordered and may not overlap"
        if high >= completions:
            return f"too large: index {high} must be less than completions ({completions})"
        previous = high
    return ""


def _changed(new: Any, old: Any, field: str) -> bool:
    return bool(
        new.HasField(field) != old.HasField(field) or getattr(new, field) != getattr(old, field)
    )


@update_validators("Job")
def _validate_job_update(new: Any, old: Any) -> Errors:
    """The selector and the shape of the Job never change; the template and
    completions only while the Job is suspended (no pods run then), and an
    Indexed Job's completions together with its parallelism (elastic)."""
    spec, old_spec = new.spec, old.spec
    errs = [
        immutable(f"spec.{json_name}")
        for field, json_name in _JOB_IMMUTABLE
        if _changed(spec, old_spec, field)
    ]
    suspended = old_spec.suspend
    if _changed(spec, old_spec, "template") and not suspended:
        errs.append(immutable("spec.template"))
    if _changed(spec, old_spec, "completions") and not suspended:
        elastic = spec.completion_mode == "Indexed" and old_spec.HasField("completions")
        if not elastic:
            errs.append(immutable("spec.completions"))
        elif spec.completions != spec.parallelism:
            errs.append(
                invalid(
                    "spec.completions",
                    spec.completions,
                    "can only be modified in tandem with spec.parallelism",
                )
            )
    return errs


# ------------------------------------------------------------------ CronJob


@validators("CronJob")
def _validate_cron_job(cj: Any) -> Errors:
    spec = cj.spec
    errs: Errors = []
    if len(cj.metadata.name) > MAX_CRON_JOB_NAME:
        errs.append(
            invalid(
                "metadata.name",
                cj.metadata.name,
                f"must be no more than {MAX_CRON_JOB_NAME} characters",
            )
        )
    errs += validate_schedule(spec.schedule, "spec.schedule", time_zone=_time_zone_of(spec))
    if spec.HasField("time_zone"):
        errs += validate_time_zone(spec.time_zone, "spec.timeZone")
    if not spec.concurrency_policy:
        errs.append(required("spec.concurrencyPolicy"))
    else:
        errs += one_of(
            "spec.concurrencyPolicy", spec.concurrency_policy, ("Allow", "Forbid", "Replace")
        )
    errs += optional_non_negative(
        spec,
        (
            ("starting_deadline_seconds", "startingDeadlineSeconds"),
            ("successful_jobs_history_limit", "successfulJobsHistoryLimit"),
            ("failed_jobs_history_limit", "failedJobsHistoryLimit"),
        ),
        "spec",
    )
    return errs + _job_template(spec.job_template, "spec.jobTemplate")


def validate_schedule(
    schedule: str, path: str, *, allow_tz: bool = False, time_zone: str | None = None
) -> Errors:
    """A schedule Kubernetes accepts. A `TZ=`/`CRON_TZ=` prefix is refused
    unless `allow_tz` (Kubernetes allows it only on an update of a CronJob
    stored with one, which kpy never had: its checks always refuse it), and
    then still refused beside a `spec.timeZone`."""
    if not schedule:
        return [required(path)]
    errs: Errors = []
    try:
        cron.parse(schedule)
    except cron.CronError as exc:
        errs.append(invalid(path, schedule, str(exc)))
    if allow_tz and "TZ" in schedule and time_zone is not None:
        errs.append(
            invalid(path, schedule, "cannot use both timeZone field and TZ or CRON_TZ in schedule")
        )
    elif not allow_tz and "TZ" in schedule:
        errs.append(
            invalid(
                path, schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
            )
        )
    return errs


def _time_zone_of(spec: Any) -> str | None:
    return str(spec.time_zone) if spec.HasField("time_zone") else None


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_time_zone(zone: str, path: str) -> Errors:
    """An IANA time zone name known to this host's tz database."""
    if not zone:
        return [invalid(path, zone, "timeZone must be nil or non-empty string")]
    if zone.lower() in ("local", "localtime"):
        return [
            invalid(
                path,
                zone,
                "timeZone must be an explicit time zone as defined in "
                "https://www.iana.org/time-zones",
            )
        ]
    if zone not in _time_zones():
        return [invalid(path, zone, f"unknown time zone {zone}")]
    return []


def _job_template(template: Any, path: str) -> Errors:
    errs = validate_labels(template.metadata.labels, f"{path}.metadata.labels")
    errs += validate_annotations(template.metadata.annotations, f"{path}.metadata.annotations")
    spec, spec_path = template.spec, f"{path}.spec"
    errs += validate_job_spec(spec, spec_path)
    if spec.HasField("selector"):
        errs.append(forbidden(f"{spec_path}.selector", "`selector` will be auto-generated"))
    if spec.manual_selector:
        errs.append(not_supported(f"{spec_path}.manualSelector", True, ("nil", "false")))
    return errs
