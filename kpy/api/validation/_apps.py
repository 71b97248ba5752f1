"""Validation of the workload controllers: apps/v1 (ReplicaSet, Deployment,
StatefulSet, DaemonSet, ControllerRevision) and core/v1 ReplicationController.

Every controller shares one contract, checked by `validate_selector` and
`validate_controller_template`: a selector that is present, non-empty and
well-formed, and a pod template whose labels it matches (otherwise the
controller would create pods it cannot see and create them forever). Pods of
these controllers run forever, so their restartPolicy must be Always and they
may not set activeDeadlineSeconds. The batch kinds reuse the selector and
template-matching helpers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kpy.api import intstr, names
from kpy.api.labels import labels_to_string, selector_from_label_selector
from kpy.api.validation._core import validate_pod_template_spec, validate_pvc_spec
from kpy.api.validation._field import (
    Errors,
    duplicate,
    each,
    forbidden,
    immutable,
    invalid,
    non_negative,
    not_supported,
    one_of,
    required,
)
from kpy.api.validation._meta import validate_annotations, validate_label_selector, validate_labels
from kpy.api.validation._registry import NAME_CHECKS, update_validators, validators

if TYPE_CHECKING:
    from kpy.api.labels import Selector

# Pod names are `<set>-<ordinal>` and double as hostnames: a DNS label.
NAME_CHECKS["StatefulSet"] = names.is_dns1123_label

_SELECTOR_MISMATCH = "`selector` does not match template `labels`"
_STATEFUL_SET_MUTABLE = (
    "replicas",
    "ordinals",
    "template",
    "update_strategy",
    "revision_history_limit",
    "persistent_volume_claim_retention_policy",
    "min_ready_seconds",
)


# ------------------------------------------------------------------ shared


def validate_selector(spec: Any, path: str, kind: str) -> tuple[Selector | None, Errors]:
    """A controller's required, non-empty LabelSelector at `path`; returns it
    parsed when it is well-formed (None otherwise) with its errors."""
    if not spec.HasField("selector"):
        return None, [required(path)]
    errs = validate_label_selector(spec.selector, path)
    if not spec.selector.match_labels and not spec.selector.match_expressions:
        errs.append(invalid(path, {}, f"empty selector is invalid for {kind.lower()}"))
    if errs:
        return None, errs
    try:
        return selector_from_label_selector(spec.selector), errs
    except ValueError:  # already reported by validate_label_selector
        return None, errs


def validate_template_labels(selector: Selector | None, template: Any, path: str) -> Errors:
    """The template at `path` carries labels that `selector` matches."""
    if selector is None or selector.empty():
        return []
    labels = template.metadata.labels
    if selector.matches(labels):
        return []
    return [invalid(f"{path}.metadata.labels", labels_to_string(labels), _SELECTOR_MISMATCH)]


def validate_controller_template(
    spec: Any, path: str, selector: Selector | None, kind: str
) -> Errors:
    """spec.template of a controller whose pods run forever."""
    if not spec.HasField("template"):
        return [required(path)]
    template = spec.template
    errs = validate_template_labels(selector, template, path)
    errs += validate_pod_template_spec(template, path, restart_policies=("Always",))
    if template.spec.HasField("active_deadline_seconds"):
        errs.append(
            forbidden(
                f"{path}.spec.activeDeadlineSeconds",
                f"activeDeadlineSeconds in {kind} is not Supported",
            )
        )
    return errs


def optional_non_negative(msg: Any, fields: tuple[tuple[str, str], ...], path: str) -> Errors:
    """Each of `fields` (name, JSON name) that is set on `msg` is >= 0."""
    errs: Errors = []
    for field, json_name in fields:
        if msg.HasField(field):
            errs += non_negative(f"{path}.{json_name}", getattr(msg, field))
    return errs


_COUNTS = (
    ("replicas", "replicas"),
    ("min_ready_seconds", "minReadySeconds"),
    ("revision_history_limit", "revisionHistoryLimit"),
)


def _counts(spec: Any, path: str) -> Errors:
    """replicas, minReadySeconds, revisionHistoryLimit: >= 0 where the kind has them."""
    fields = tuple(f for f in _COUNTS if f[0] in spec.DESCRIPTOR.fields_by_name)
    return optional_non_negative(spec, fields, path)


def _controller_spec(spec: Any, kind: str) -> Errors:
    selector, errs = validate_selector(spec, "spec.selector", kind)
    errs += validate_controller_template(spec, "spec.template", selector, kind)
    return _counts(spec, "spec") + errs


def _selector_immutable(new: Any, old: Any) -> Errors:
    if new.spec.selector != old.spec.selector:
        return [immutable("spec.selector")]
    return []


# ------------------------------------------------------------ int or percent


def int_or_percent(value: Any, path: str) -> tuple[int | None, Errors]:
    """An IntOrString that must be a non-negative integer or a percentage.
    Returns its number (the percent for "25%"), None when it is malformed."""
    kind = value.WhichOneof("value")
    if kind == "str_val":
        problems = names.is_percent(value.str_val)
        if problems:
            return None, each(path, value.str_val, problems)
        return int(value.str_val[:-1]), []
    number = value.int_val if kind == "int_val" else 0
    return number, non_negative(path, number)


def _not_over_100_percent(value: Any, number: int | None, path: str) -> Errors:
    if value.WhichOneof("value") == "str_val" and number is not None and number > 100:
        return [invalid(path, value.str_val, "must not be greater than 100%")]
    return []


# ------------------------------------------------------------ ReplicaSet


@validators("ReplicaSet")
def _validate_replica_set(rs: Any) -> Errors:
    return _controller_spec(rs.spec, "ReplicaSet")


@update_validators("ReplicaSet")
def _validate_replica_set_update(new: Any, old: Any) -> Errors:
    return _selector_immutable(new, old)


@validators("ReplicationController")
def _validate_replication_controller(rc: Any) -> Errors:
    """A ReplicaSet whose selector is a plain label map (which may change)."""
    spec = rc.spec
    selector_errs = validate_labels(spec.selector, "spec.selector")
    if not spec.selector:
        selector_errs.append(required("spec.selector"))
    errs = _counts(spec, "spec") + selector_errs
    if not spec.HasField("template"):
        return [*errs, required("spec.template")]
    template = spec.template
    labels = template.metadata.labels
    if not selector_errs and any(labels.get(k) != v for k, v in spec.selector.items()):
        errs.append(
            invalid("spec.template.metadata.labels", labels_to_string(labels), _SELECTOR_MISMATCH)
        )
    errs += validate_pod_template_spec(template, "spec.template", restart_policies=("Always",))
    if template.spec.HasField("active_deadline_seconds"):
        errs.append(
            forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                "activeDeadlineSeconds in ReplicationController is not Supported",
            )
        )
    return errs


# ------------------------------------------------------------ Deployment


@validators("Deployment")
def _validate_deployment(deploy: Any) -> Errors:
    spec = deploy.spec
    errs = _controller_spec(spec, "Deployment")
    errs += _deployment_strategy(spec.strategy, "spec.strategy")
    if spec.HasField("progress_deadline_seconds"):
        deadline = spec.progress_deadline_seconds
        errs += non_negative("spec.progressDeadlineSeconds", deadline)
        if deadline <= spec.min_ready_seconds:
            errs.append(
                invalid(
                    "spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"
                )
            )
    if spec.HasField("pod_replacement_policy"):
        errs += one_of(
            "spec.podReplacementPolicy",
            spec.pod_replacement_policy,
            ("TerminationStarted", "TerminationComplete"),
        )
    return errs


def _deployment_strategy(strategy: Any, path: str) -> Errors:
    if strategy.type == "Recreate":
        if strategy.HasField("rolling_update"):
            return [
                forbidden(
                    f"{path}.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                )
            ]
        return []
    if strategy.type == "RollingUpdate":
        if not strategy.HasField("rolling_update"):
            return [required(f"{path}.rollingUpdate", "this should be defaulted and never be nil")]
        return _rolling_update_deployment(strategy.rolling_update, f"{path}.rollingUpdate")
    return [not_supported(f"{path}.type", strategy.type, ("Recreate", "RollingUpdate"))]


def _rolling_update_deployment(rolling: Any, path: str) -> Errors:
    unavailable, errs = int_or_percent(rolling.max_unavailable, f"{path}.maxUnavailable")
    surge, surge_errs = int_or_percent(rolling.max_surge, f"{path}.maxSurge")
    errs += surge_errs
    if unavailable == 0 and surge == 0:
        errs.append(
            invalid(
                f"{path}.maxUnavailable",
                intstr.to_python(rolling.max_unavailable),
                "may not be 0 when `maxSurge` is 0",
            )
        )
    errs += _not_over_100_percent(rolling.max_unavailable, unavailable, f"{path}.maxUnavailable")
    return errs


@update_validators("Deployment")
def _validate_deployment_update(new: Any, old: Any) -> Errors:
    return _selector_immutable(new, old)


# ------------------------------------------------------------ StatefulSet


@validators("StatefulSet")
def _validate_stateful_set(sts: Any) -> Errors:
    spec = sts.spec
    errs: Errors = []
    if not spec.pod_management_policy:
        errs.append(required("spec.podManagementPolicy"))
    else:
        errs += one_of(
            "spec.podManagementPolicy", spec.pod_management_policy, ("OrderedReady", "Parallel")
        )
    errs += _stateful_set_strategy(spec.update_strategy, "spec.updateStrategy")
    policy = spec.persistent_volume_claim_retention_policy
    path = "spec.persistentVolumeClaimRetentionPolicy"
    for field, json_name in (("when_deleted", "whenDeleted"), ("when_scaled", "whenScaled")):
        if policy.HasField(field):
            errs += one_of(f"{path}.{json_name}", getattr(policy, field), ("Retain", "Delete"))
    if spec.HasField("ordinals"):
        errs += optional_non_negative(spec.ordinals, (("start", "start"),), "spec.ordinals")
    if spec.service_name:
        errs += each(
            "spec.serviceName", spec.service_name, names.is_dns1123_label(spec.service_name)
        )
    errs += _claim_templates(spec.volume_claim_templates, "spec.volumeClaimTemplates")
    return errs + _controller_spec(_with_claim_volumes(spec), "StatefulSet")


def _stateful_set_strategy(strategy: Any, path: str) -> Errors:
    if not strategy.type:
        return [required(f"{path}.type")]
    if strategy.type == "OnDelete":
        if strategy.HasField("rolling_update"):
            return [
                forbidden(
                    f"{path}.rollingUpdate", "only allowed for updateStrategy 'RollingUpdate'"
                )
            ]
        return []
    if strategy.type != "RollingUpdate":
        return [not_supported(f"{path}.type", strategy.type, ("RollingUpdate", "OnDelete"))]
    rolling, rpath = strategy.rolling_update, f"{path}.rollingUpdate"
    errs = optional_non_negative(rolling, (("partition", "partition"),), rpath)
    if rolling.HasField("max_unavailable"):
        value, upath = rolling.max_unavailable, f"{rpath}.maxUnavailable"
        number, num_errs = int_or_percent(value, upath)
        errs += num_errs
        if number == 0:
            errs.append(invalid(upath, intstr.to_python(value), "cannot be 0"))
        errs += _not_over_100_percent(value, number, upath)
    return errs


def _claim_templates(claims: Any, path: str) -> Errors:
    errs: Errors = []
    seen: set[str] = set()
    for i, claim in enumerate(claims):
        cpath = f"{path}[{i}]"
        name = claim.metadata.name
        if not name:
            errs.append(required(f"{cpath}.metadata.name"))
        else:
            errs += each(f"{cpath}.metadata.name", name, names.is_dns1123_label(name))
            if name in seen:
                errs.append(duplicate(f"{cpath}.metadata.name", name))
            seen.add(name)
        errs += validate_labels(claim.metadata.labels, f"{cpath}.metadata.labels")
        errs += validate_annotations(claim.metadata.annotations, f"{cpath}.metadata.annotations")
        errs += validate_pvc_spec(claim.spec, f"{cpath}.spec")
    return errs


def _with_claim_volumes(spec: Any) -> Any:
    """A copy of `spec` whose template has a volume for each claim template,
    as the pods will: containers may mount claims by name."""
    if not spec.volume_claim_templates or not spec.HasField("template"):
        return spec
    copy = type(spec)()
    copy.CopyFrom(spec)
    volumes = copy.template.spec.volumes
    existing = {v.name for v in volumes}
    for claim in spec.volume_claim_templates:
        name = claim.metadata.name
        if name and name not in existing and not names.is_dns1123_label(name):
            volumes.add(name=name).persistent_volume_claim.claim_name = name
            existing.add(name)
    return copy


@update_validators("StatefulSet")
def _validate_stateful_set_update(new: Any, old: Any) -> Errors:
    new_rest, old_rest = type(new.spec)(), type(old.spec)()
    new_rest.CopyFrom(new.spec)
    old_rest.CopyFrom(old.spec)
    for field in _STATEFUL_SET_MUTABLE:
        new_rest.ClearField(field)
        old_rest.ClearField(field)
    if new_rest != old_rest:
        return [
            forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', "
                "'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', "
                "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are "
                "forbidden",
            )
        ]
    return []


# ------------------------------------------------------------ DaemonSet


@validators("DaemonSet")
def _validate_daemon_set(ds: Any) -> Errors:
    spec = ds.spec
    errs = _controller_spec(spec, "DaemonSet")
    return errs + _daemon_set_strategy(spec.update_strategy, "spec.updateStrategy")


def _daemon_set_strategy(strategy: Any, path: str) -> Errors:
    if strategy.type == "OnDelete":
        return []
    if strategy.type != "RollingUpdate":
        return [not_supported(f"{path}.type", strategy.type, ("RollingUpdate", "OnDelete"))]
    if not strategy.HasField("rolling_update"):
        return [required(f"{path}.rollingUpdate")]
    rolling, rpath = strategy.rolling_update, f"{path}.rollingUpdate"
    errs: Errors = []
    numbers: dict[str, int | None] = {}
    for field, json_name in (("max_unavailable", "maxUnavailable"), ("max_surge", "maxSurge")):
        value, fpath = getattr(rolling, field), f"{rpath}.{json_name}"
        number, num_errs = int_or_percent(value, fpath)
        errs += num_errs + _not_over_100_percent(value, number, fpath)
        numbers[field] = number
    unavailable, surge = numbers["max_unavailable"], numbers["max_surge"]
    if unavailable and surge:
        errs.append(
            invalid(
                f"{rpath}.maxSurge",
                intstr.to_python(rolling.max_surge),
                "may not be set when maxUnavailable is non-zero",
            )
        )
    elif unavailable == 0 and surge == 0:
        errs.append(required(f"{rpath}.maxUnavailable", "cannot be 0 when maxSurge is 0"))
    return errs


@update_validators("DaemonSet")
def _validate_daemon_set_update(new: Any, old: Any) -> Errors:
    return _selector_immutable(new, old)


# ------------------------------------------------------------ ControllerRevision


@validators("ControllerRevision")
def _validate_controller_revision(revision: Any) -> Errors:
    errs: Errors = []
    if not revision.HasField("data"):
        errs.append(required("data", "data is mandatory"))
    if revision.HasField("revision"):
        errs += non_negative("revision", revision.revision)
    return errs


@update_validators("ControllerRevision")
def _validate_controller_revision_update(new: Any, old: Any) -> Errors:
    # The revision number may change: the history code renumbers a revision
    # that a rollback brings back. The snapshot itself never changes.
    if new.HasField("data") != old.HasField("data") or new.data != old.data:
        return [immutable("data")]
    return []
