"""networking.k8s.io: Ingress and IngressClass, and the facts about them
that admission, validation and kpy-ingress share."""

from __future__ import annotations

from typing import Final

__all__ = [
    "DEFAULT_CLASS_ANNOTATION",
    "PATH_TYPES",
    "PATH_TYPE_EXACT",
    "PATH_TYPE_IMPLEMENTATION_SPECIFIC",
    "PATH_TYPE_PREFIX",
    "is_default_class",
]

#: An IngressClass annotated "true" is the class of Ingresses naming none.
DEFAULT_CLASS_ANNOTATION: Final = "ingressclass.kubernetes.io/is-default-class"

PATH_TYPE_EXACT: Final = "Exact"
PATH_TYPE_PREFIX: Final = "Prefix"
PATH_TYPE_IMPLEMENTATION_SPECIFIC: Final = "ImplementationSpecific"
PATH_TYPES: Final = (PATH_TYPE_EXACT, PATH_TYPE_PREFIX, PATH_TYPE_IMPLEMENTATION_SPECIFIC)


def is_default_class(annotations: object) -> bool:
    """Whether an IngressClass's annotations make it the default class."""
    get = getattr(annotations, "get", None)
    return get is not None and get(DEFAULT_CLASS_ANNOTATION, "") == "true"
