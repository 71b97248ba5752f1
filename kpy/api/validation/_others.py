"""Validation of the smaller groups: HorizontalPodAutoscaler (autoscaling/v2),
Lease (coordination.k8s.io/v1), StorageClass (storage.k8s.io/v1) and
CustomResourceDefinition (apiextensions.k8s.io/v1).

A CRD is checked for what the API server needs to serve it: its name is
`<plural>.<group>`, its names are DNS labels, exactly one version is stored,
and every version has an object schema at the root. The schema itself is not
checked for structure here.
"""

from __future__ import annotations

from typing import Any

from kpy.api import codec, names
from kpy.api.crd.schema import structural_errors
from kpy.api.validation._field import (
    Errors,
    duplicate,
    each,
    forbidden,
    immutable,
    invalid,
    invalid_raw,
    non_negative,
    not_supported,
    one_of,
    positive,
    required,
    too_long,
)
from kpy.api.validation._meta import validate_label_selector
from kpy.api.validation._quantities import value_of
from kpy.api.validation._registry import update_validators, validators

# ------------------------------------------------------------------ HorizontalPodAutoscaler

MAX_PERIOD_SECONDS = 1800
MAX_STABILIZATION_WINDOW_SECONDS = 3600
METRIC_SOURCES = {
    "Object": ("object", "object"),
    "Pods": ("pods", "pods"),
    "Resource": ("resource", "resource"),
    "ContainerResource": ("container_resource", "containerResource"),
    "External": ("external", "external"),
}
# Which target types each metric source can be compared against.
_TARGET_TYPES = {
    "Object": ("Value", "AverageValue"),
    "Pods": ("AverageValue",),
    "Resource": ("Utilization", "AverageValue"),
    "ContainerResource": ("Utilization", "AverageValue"),
    "External": ("Value", "AverageValue"),
}
_TARGET_FIELDS = {
    "Utilization": ("average_utilization", "averageUtilization"),
    "Value": ("value", "value"),
    "AverageValue": ("average_value", "averageValue"),
}


@validators("HorizontalPodAutoscaler")
def _validate_hpa(hpa: Any) -> Errors:
    spec = hpa.spec
    errs = validate_object_reference(spec.scale_target_ref, "spec.scaleTargetRef")
    if spec.HasField("min_replicas") and spec.min_replicas < 1:
        errs.append(
            invalid("spec.minReplicas", spec.min_replicas, "must be greater than or equal to 1")
        )
    if not spec.HasField("max_replicas"):
        errs.append(required("spec.maxReplicas"))
    elif spec.max_replicas < 1:
        errs.append(invalid("spec.maxReplicas", spec.max_replicas, "must be greater than 0"))
    elif spec.HasField("min_replicas") and spec.max_replicas < spec.min_replicas:
        errs.append(
            invalid(
                "spec.maxReplicas",
                spec.max_replicas,
                "must be greater than or equal to `minReplicas`",
            )
        )
    for i, metric in enumerate(spec.metrics):
        errs += _metric(metric, f"spec.metrics[{i}]")
    if spec.HasField("behavior"):
        for field, json_name in (("scale_up", "scaleUp"), ("scale_down", "scaleDown")):
            if spec.behavior.HasField(field):
                errs += _scaling_rules(getattr(spec.behavior, field), f"spec.behavior.{json_name}")
    return errs


def _path_segment(value: str, path: str) -> Errors:
    """A name that becomes one segment of a URL path."""
    if value in (".", ".."):
        return [invalid(path, value, f"may not be '{value}'")]
    return [invalid(path, value, f"may not contain '{c}'") for c in "/%" if c in value]


def validate_object_reference(ref: Any, path: str) -> Errors:
    """A CrossVersionObjectReference: kind and name required."""
    errs: Errors = []
    for field in ("kind", "name"):
        value = getattr(ref, field)
        if not value:
            errs.append(required(f"{path}.{field}"))
        else:
            errs += _path_segment(value, f"{path}.{field}")
    return errs


def _metric(metric: Any, path: str) -> Errors:
    """The metric's type names one source, and that source alone is set."""
    if not metric.type:
        return [required(f"{path}.type", "must specify a metric source type")]
    if metric.type not in METRIC_SOURCES:
        return [not_supported(f"{path}.type", metric.type, METRIC_SOURCES)]
    field, json_name = METRIC_SOURCES[metric.type]
    if metric.HasField(field):
        errs = _metric_source(metric.type, getattr(metric, field), f"{path}.{json_name}")
    else:
        detail = "must populate information for the given metric source"
        errs = [required(f"{path}.{json_name}", detail)]
    for other, (field, json_name) in METRIC_SOURCES.items():
        if other != metric.type and metric.HasField(field):
            errs.append(
                forbidden(f"{path}.{json_name}", "must populate the given metric source only")
            )
    return errs


def _metric_source(kind: str, source: Any, path: str) -> Errors:
    errs: Errors = []
    if kind in ("Resource", "ContainerResource") and not source.name:
        errs.append(required(f"{path}.name", "must specify a resource name"))
    if kind == "ContainerResource":
        if not source.container:
            errs.append(required(f"{path}.container", "must specify a container"))
        else:
            errs += each(
                f"{path}.container", source.container, names.is_dns1123_label(source.container)
            )
    if kind == "Object":
        errs += validate_object_reference(source.described_object, f"{path}.describedObject")
    if kind in ("Object", "Pods", "External"):
        errs += _metric_identifier(source.metric, f"{path}.metric")
    if not source.HasField("target"):
        return [*errs, required(f"{path}.target")]
    return errs + _metric_target(source.target, f"{path}.target", _TARGET_TYPES[kind])


def _metric_identifier(metric: Any, path: str) -> Errors:
    errs: Errors = []
    if not metric.name:
        errs.append(required(f"{path}.name", "must specify a metric name"))
    else:
        errs += _path_segment(metric.name, f"{path}.name")
    if metric.HasField("selector"):
        errs += validate_label_selector(metric.selector, f"{path}.selector")
    return errs


def _metric_target(target: Any, path: str, allowed: tuple[str, ...]) -> Errors:
    errs: Errors = []
    if not target.type:
        errs.append(required(f"{path}.type", "must specify a metric target type"))
    elif target.type not in allowed:
        errs.append(not_supported(f"{path}.type", target.type, allowed))
    else:
        field, json_name = _TARGET_FIELDS[target.type]
        if not target.HasField(field):
            errs.append(
                required(f"{path}.{json_name}", f"must be set when `type` is '{target.type}'")
            )
    for field, json_name in (("value", "value"), ("average_value", "averageValue")):
        if target.HasField(field):
            quantity = value_of(getattr(target, field))  # None: reported by syntax_errors
            if quantity is not None and quantity.sign() <= 0:
                errs.append(invalid(f"{path}.{json_name}", str(quantity), "must be positive"))
    if target.HasField("average_utilization"):
        errs += positive(f"{path}.averageUtilization", target.average_utilization)
    return errs


def _scaling_rules(rules: Any, path: str) -> Errors:
    errs: Errors = []
    if rules.HasField("stabilization_window_seconds"):
        window, wpath = rules.stabilization_window_seconds, f"{path}.stabilizationWindowSeconds"
        errs += non_negative(wpath, window)
        if window > MAX_STABILIZATION_WINDOW_SECONDS:
            errs.append(
                invalid(
                    wpath,
                    window,
                    f"must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}",
                )
            )
    if rules.HasField("select_policy"):
        errs += one_of(f"{path}.selectPolicy", rules.select_policy, ("Max", "Min", "Disabled"))
    if rules.HasField("tolerance"):
        tolerance = value_of(rules.tolerance)
        if tolerance is not None and tolerance.sign() < 0:
            errs.append(
                invalid(f"{path}.tolerance", str(tolerance), "must be greater than or equal to 0")
            )
    if not rules.policies:
        errs.append(required(f"{path}.policies", "must specify at least one Policy"))
    for i, policy in enumerate(rules.policies):
        ppath = f"{path}.policies[{i}]"
        errs += one_of(f"{ppath}.type", policy.type, ("Pods", "Percent"))
        errs += positive(f"{ppath}.value", policy.value)
        errs += positive(f"{ppath}.periodSeconds", policy.period_seconds)
        if policy.period_seconds > MAX_PERIOD_SECONDS:
            errs.append(
                invalid(
                    f"{ppath}.periodSeconds",
                    policy.period_seconds,
                    f"must be less than or equal to {MAX_PERIOD_SECONDS}",
                )
            )
    return errs


# ------------------------------------------------------------------ Lease


@validators("Lease")
def _validate_lease(lease: Any) -> Errors:
    spec = lease.spec
    errs: Errors = []
    if spec.HasField("lease_duration_seconds"):
        errs += positive("spec.leaseDurationSeconds", spec.lease_duration_seconds)
    if spec.HasField("lease_transitions"):
        errs += non_negative("spec.leaseTransitions", spec.lease_transitions)
    if spec.strategy:
        errs += each("spec.strategy", spec.strategy, names.is_qualified_name(spec.strategy))
    elif spec.preferred_holder:
        errs.append(forbidden("spec.preferredHolder", "may only be set if strategy is set"))
    return errs


# ------------------------------------------------------------------ StorageClass

MAX_PARAMETERS = 512
MAX_PARAMETERS_SIZE = 256 * 1024


@validators("StorageClass")
def _validate_storage_class(sc: Any) -> Errors:
    errs: Errors = []
    if not sc.provisioner:
        errs.append(required("provisioner"))
    else:
        errs += each("provisioner", sc.provisioner, names.is_qualified_name(sc.provisioner.lower()))
    if len(sc.parameters) > MAX_PARAMETERS:
        errs.append(
            invalid(
                "parameters",
                len(sc.parameters),
                f"may not have more than {MAX_PARAMETERS} parameters",
            )
        )
    if "" in sc.parameters:
        errs.append(invalid("parameters", "", "field can not be empty."))
    if sum(len(k) + len(v) for k, v in sc.parameters.items()) > MAX_PARAMETERS_SIZE:
        errs.append(too_long("parameters", MAX_PARAMETERS_SIZE))
    if sc.HasField("reclaim_policy"):
        errs += one_of("reclaimPolicy", sc.reclaim_policy, ("Delete", "Retain"))
    if sc.HasField("volume_binding_mode"):
        errs += one_of(
            "volumeBindingMode", sc.volume_binding_mode, ("Immediate", "WaitForFirstConsumer")
        )
    return errs


@update_validators("StorageClass")
def _validate_storage_class_update(new: Any, old: Any) -> Errors:
    """Provisioned volumes were made with these settings: none may change."""
    errs: Errors = []
    if dict(new.parameters) != dict(old.parameters):
        errs.append(forbidden("parameters", "updates to parameters are forbidden."))
    for field, json_name in (("provisioner", "provisioner"), ("reclaim_policy", "reclaimPolicy")):
        if getattr(new, field) != getattr(old, field):
            errs.append(forbidden(json_name, f"updates to {json_name} are forbidden."))
    if new.volume_binding_mode != old.volume_binding_mode:
        errs.append(immutable("volumeBindingMode"))
    return errs


# ------------------------------------------------------------------ CustomResourceDefinition

CRD_SCOPES = ("Cluster", "Namespaced")


@validators("CustomResourceDefinition")
def _validate_crd(crd: Any) -> Errors:
    spec = crd.spec
    errs: Errors = []
    expected = f"{spec.names.plural}.{spec.group}"
    if crd.metadata.name and crd.metadata.name != expected:
        errs.append(
            invalid("metadata.name", crd.metadata.name, 'must be spec.names.plural+"."+spec.group')
        )
    if not spec.group:
        errs.append(required("spec.group"))
    else:
        errs += each("spec.group", spec.group, names.is_dns1123_subdomain(spec.group))
        if "." not in spec.group:
            errs.append(
                invalid("spec.group", spec.group, "should be a domain with at least one dot")
            )
    if not spec.scope:
        errs.append(required("spec.scope"))
    else:
        errs += one_of("spec.scope", spec.scope, CRD_SCOPES)
    errs += _crd_names(spec.names, "spec.names")
    errs += _crd_versions(spec.versions, "spec.versions")
    if spec.HasField("conversion") and spec.conversion.HasField("strategy"):
        errs += one_of("spec.conversion.strategy", spec.conversion.strategy, ("None", "Webhook"))
    return errs


def _dns1035(value: str, path: str, *, required_: bool = False) -> Errors:
    if not value:
        return [required(path)] if required_ else []
    return each(path, value, names.is_dns1035_label(value))


def _crd_names(crd_names: Any, path: str) -> Errors:
    errs = _dns1035(crd_names.plural, f"{path}.plural", required_=True)
    errs += _dns1035(crd_names.singular, f"{path}.singular")
    for i, short in enumerate(crd_names.short_names):
        errs += _dns1035(short, f"{path}.shortNames[{i}]")
    for field, json_name in (("kind", "kind"), ("list_kind", "listKind")):
        value = getattr(crd_names, field)
        if not value:
            if field == "kind":
                errs.append(required(f"{path}.kind"))
            continue
        problems = names.is_dns1035_label(value.lower())
        if problems:
            errs.append(
                invalid(
                    f"{path}.{json_name}",
                    value,
                    "may have mixed case, but should otherwise match: " + ",".join(problems),
                )
            )
    if crd_names.kind and crd_names.kind == crd_names.list_kind:
        errs.append(
            invalid(
                f"{path}.listKind", crd_names.list_kind, "kind and listKind may not be the same"
            )
        )
    return errs


def _crd_versions(versions: Any, path: str) -> Errors:
    if not versions:
        return [required(path, "must have exactly one version marked as storage version")]
    errs: Errors = []
    seen: set[str] = set()
    for i, version in enumerate(versions):
        vpath = f"{path}[{i}]"
        errs += _dns1035(version.name, f"{vpath}.name", required_=True)
        if version.name in seen:
            errs.append(duplicate(f"{vpath}.name", version.name))
        seen.add(version.name)
        errs += _crd_schema(version, f"{vpath}.schema.openAPIV3Schema")
        if version.subresources.HasField("scale"):
            errs += _crd_scale(version.subresources.scale, f"{vpath}.subresources.scale")
    if sum(1 for v in versions if v.storage) != 1:
        errs.append(invalid_raw(path, "must have exactly one version marked as storage version"))
    return errs


def _crd_schema(version: Any, path: str) -> Errors:
    if not version.schema.HasField("open_apiv3_schema"):
        return [required(path, "schemas are required")]
    # Every reason the schema is not structural, or its CEL rules or defaults are bad.
    return structural_errors(codec.to_dict(version.schema.open_apiv3_schema), path)


def _crd_scale(scale: Any, path: str) -> Errors:
    """JSON paths of the scale subresource: replicas in .spec and .status."""
    errs: Errors = []
    for field, json_name, prefixes in (
        ("spec_replicas_path", "specReplicasPath", (".spec.",)),
        ("status_replicas_path", "statusReplicasPath", (".status.",)),
        ("label_selector_path", "labelSelectorPath", (".spec.", ".status.")),
    ):
        value = getattr(scale, field)
        if not value:
            if field != "label_selector_path":
                errs.append(required(f"{path}.{json_name}"))
        elif not value.startswith(prefixes):
            under = " or ".join(p.rstrip(".") for p in prefixes)
            errs.append(
                invalid(f"{path}.{json_name}", value, f"should be a json path under {under}")
            )
    return errs


@update_validators("CustomResourceDefinition")
def _validate_crd_update(new: Any, old: Any) -> Errors:
    errs: Errors = []
    for field in ("group", "scope"):
        if getattr(old.spec, field) and getattr(new.spec, field) != getattr(old.spec, field):
            errs.append(immutable(f"spec.{field}"))
    return errs
