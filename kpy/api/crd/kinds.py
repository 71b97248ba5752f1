"""A CRD's kinds as kpy's processes register them: the one place that turns a
CustomResourceDefinition into the class of its kind (`kpy.api.unstructured`),
so every API server, the controller manager and the operator SDK agree on
names, scope, subresources, the storage version and selectable fields."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from kpy.api.unstructured import custom_kind

if TYPE_CHECKING:
    from collections.abc import Callable

    from kpy.api.apiextensions.v1 import CustomResourceDefinition
    from kpy.api.scheme import Scheme
    from kpy.api.unstructured import CustomObject

__all__ = ["CLEANUP_FINALIZER", "custom_kind_of", "json_path", "storage_version"]

CLEANUP_FINALIZER: Final = "customresourcecleanup.apiextensions.k8s.io"
"""The API server puts it on every new CRD; the controller manager removes
it once the CRD's objects are gone, so a CRD never goes before them."""


def json_path(text: str) -> tuple[str, ...]:
    """`.spec.replicas` as keys (CRD validation checked the form)."""
    return tuple(part for part in text.split(".") if part)


def storage_version(crd: CustomResourceDefinition) -> str:
    """The version objects are stored in ("" when none is marked)."""
    return next((v.name for v in crd.spec.versions if v.storage), "")


def custom_kind_of(
    crd: CustomResourceDefinition,
    version: str,
    *,
    on_read: Callable[[Any], None] | None = None,
    using: Scheme | None = None,
) -> type[CustomObject]:
    """The class of `crd`'s kind in `version`, registered in `using` (the
    process's scheme by default) with the names, scope and subresources the
    API servers serve it with. Call it only for a CRD whose names are
    accepted (`kpy.api.crd.names`): a conflicting CRD would take another
    CRD's names."""
    spec, n = crd.spec, crd.spec.names
    found = next((v for v in spec.versions if v.name == version), None)
    if found is None:
        raise ValueError(f"CustomResourceDefinition {crd.metadata.name} has no version {version!r}")
    return custom_kind(
        f"{spec.group}/{version}",
        n.kind,
        plural=n.plural,
        namespaced=spec.scope != "Cluster",
        short_names=tuple(n.short_names),
        singular=n.singular,
        categories=tuple(n.categories),
        status_subresource=found.subresources.HasField("status"),
        storage_version=storage_version(crd) or version,
        selectable_fields={
            f.json_path.lstrip("."): json_path(f.json_path) for f in found.selectable_fields
        },
        on_read=on_read,
        using=using,
    )
