"""Validation of what every object shares: metadata, labels, selectors."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from kpy.api import names
from kpy.api.validation._field import (
    Errors,
    each,
    forbidden,
    immutable,
    invalid,
    not_supported,
    required,
    too_long,
)

NameCheck = Callable[[str], list[str]]

TOTAL_ANNOTATION_SIZE = 256 * 1024
_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def validate_object_meta(meta: Any, *, namespaced: bool, name_check: NameCheck) -> Errors:
    """name (or generateName), namespace presence, labels, annotations,
    ownerReferences and finalizers."""
    errs: Errors = []
    if meta.name:
        errs += each("metadata.name", meta.name, name_check(meta.name))
    elif meta.generate_name:
        # generateName gets 5 random characters appended: check the prefix.
        prefix = meta.generate_name.rstrip("-") or meta.generate_name
        errs += each("metadata.generateName", meta.generate_name, name_check(prefix))
    else:
        errs.append(required("metadata.name", "name or generateName is required"))
    if namespaced:
        if meta.namespace:
            errs += each(
                "metadata.namespace", meta.namespace, names.is_dns1123_label(meta.namespace)
            )
    elif meta.namespace:
        errs.append(forbidden("metadata.namespace", "not allowed on this type"))
    errs += validate_labels(meta.labels, "metadata.labels")
    errs += validate_annotations(meta.annotations, "metadata.annotations")
    for i, ref in enumerate(meta.owner_references):
        errs += _owner_reference(ref, f"metadata.ownerReferences[{i}]")
    if sum(1 for ref in meta.owner_references if ref.controller) > 1:
        errs.append(
            invalid(
                "metadata.ownerReferences",
                len(meta.owner_references),
                "Only one reference can have Controller set to true",
            )
        )
    for i, finalizer in enumerate(meta.finalizers):
        errs += each(f"metadata.finalizers[{i}]", finalizer, names.is_qualified_name(finalizer))
    errs += _non_negative_meta(meta)
    return errs


def _non_negative_meta(meta: Any) -> Errors:
    if meta.HasField("generation") and meta.generation < 0:
        return [
            invalid("metadata.generation", meta.generation, "must be greater than or equal to 0")
        ]
    return []


def _owner_reference(ref: Any, path: str) -> Errors:
    errs: Errors = []
    if not ref.api_version:
        errs.append(required(f"{path}.apiVersion", "version must not be empty"))
    if not ref.kind:
        errs.append(required(f"{path}.kind", "kind must not be empty"))
    if not ref.name:
        errs.append(required(f"{path}.name", "name must not be empty"))
    if not ref.uid:
        errs.append(required(f"{path}.uid", "uid must not be empty"))
    return errs


def validate_labels(labels: Mapping[str, str], path: str) -> Errors:
    errs: Errors = []
    for key, value in labels.items():
        if _valid_label(key, value):
            continue
        errs += each(f"{path}", key, names.is_qualified_name(key))
        errs += each(f"{path}[{key}]", value, names.is_valid_label_value(value))
    return errs


@functools.lru_cache(maxsize=8192)
def _valid_label(key: str, value: str) -> bool:
    """Whether a label passes both checks. Cached: the same labels come back
    on object after object (every pod of a Deployment carries its template's)."""
    return not names.is_qualified_name(key) and not names.is_valid_label_value(value)


def validate_annotations(annotations: Mapping[str, str], path: str) -> Errors:
    errs: Errors = []
    total = 0
    for key, value in annotations.items():
        errs += each(path, key, names.is_qualified_name(key.lower()))
        total += len(key) + len(value)
    if total > TOTAL_ANNOTATION_SIZE:
        errs.append(too_long(path, TOTAL_ANNOTATION_SIZE))
    return errs


def validate_label_selector(selector: Any, path: str) -> Errors:
    """A LabelSelector message: valid keys, values and operators."""
    errs = validate_labels(selector.match_labels, f"{path}.matchLabels")
    for i, req in enumerate(selector.match_expressions):
        rpath = f"{path}.matchExpressions[{i}]"
        errs += each(f"{rpath}.key", req.key, names.is_qualified_name(req.key))
        if req.operator in ("In", "NotIn"):
            if not req.values:
                errs.append(
                    required(
                        f"{rpath}.values", "must be specified when `operator` is 'In' or 'NotIn'"
                    )
                )
        elif req.operator in ("Exists", "DoesNotExist"):
            if req.values:
                errs.append(
                    forbidden(
                        f"{rpath}.values",
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    )
                )
        else:
            errs.append(not_supported(f"{rpath}.operator", req.operator, _SELECTOR_OPERATORS))
        for j, value in enumerate(req.values):
            errs += each(f"{rpath}.values[{j}]", value, names.is_valid_label_value(value))
    return errs


def validate_object_meta_update(new: Any, old: Any) -> Errors:
    """What may not change once an object exists."""
    errs: Errors = []
    for field, path in (
        ("name", "metadata.name"),
        ("namespace", "metadata.namespace"),
        ("uid", "metadata.uid"),
    ):
        if getattr(old, field) and getattr(new, field) != getattr(old, field):
            errs.append(immutable(path))
    if old.HasField("creation_timestamp") and new.creation_timestamp != old.creation_timestamp:
        errs.append(immutable("metadata.creationTimestamp"))
    if old.HasField("deletion_timestamp") and new.deletion_timestamp != old.deletion_timestamp:
        errs.append(immutable("metadata.deletionTimestamp"))
    if old.HasField("deletion_timestamp"):
        added = [f for f in new.finalizers if f not in old.finalizers]
        if added:
            errs.append(
                forbidden(
                    "metadata.finalizers",
                    "no new finalizers can be added if the object is being deleted, "
                    f"found new finalizers {added}",
                )
            )
    return errs
