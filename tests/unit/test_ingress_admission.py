"""DefaultIngressClass admission (Kubernetes'
plugin/pkg/admission/network/defaultingressclass): a new Ingress naming no
class gets the class annotated default, table by table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from kpy.api.networking.v1 import Ingress, IngressClass
from kpy.apiserver.admission import admit_default_ingress_class

if TYPE_CHECKING:
    from collections.abc import Sequence

DEFAULT = "ingressclass.kubernetes.io/is-default-class"


def ic(name: str, *, default: str | None = None, created: int = 1) -> IngressClass:
    c = IngressClass()
    c.metadata.name = name
    c.metadata.creation_timestamp.FromSeconds(created)
    if default is not None:
        c.metadata.annotations[DEFAULT] = default
    c.spec.controller = "kpy.io/ingress"
    return c


def ing(cls: str | None = None, legacy: str | None = None) -> Ingress:
    i = Ingress()
    i.metadata.name = "web"
    if cls is not None:
        i.spec.ingress_class_name = cls
    if legacy is not None:
        i.metadata.annotations["kubernetes.io/ingress.class"] = legacy
    return i


class Classes:
    def __init__(self, items: list[IngressClass]) -> None:
        self.items = items

    async def list(self) -> Sequence[IngressClass]:
        return self.items


@dataclass(frozen=True)
class Case:
    name: str
    classes: list[IngressClass]
    ingress: Ingress
    want: str | None  # the class stored; None: the field stays unset


CASES = [
    Case("no class: the default", [ic("a"), ic("kpy", default="true")], ing(), "kpy"),
    Case(
        "several defaults: the newest",
        [ic("old", default="true"), ic("new", default="true", created=5)],
        ing(),
        "new",
    ),
    Case("annotation not true: no default", [ic("a", default="false")], ing(), None),
    Case("no classes: unset", [], ing(), None),
    Case("a class named is kept", [ic("kpy", default="true")], ing("other"), "other"),
    Case("the legacy annotation is kept", [ic("kpy", default="true")], ing(legacy="nginx"), None),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_default_ingress_class(case: Case) -> None:
    obj = case.ingress
    await admit_default_ingress_class(obj, Classes(case.classes))
    got = obj.spec.ingress_class_name if obj.spec.HasField("ingress_class_name") else None
    assert got == case.want, case.name
