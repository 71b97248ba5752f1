"""Which Ingresses kpy-ingress serves (`kpy.ingress.serves`): those of its
IngressClasses, and classless ones while one of its classes is default."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kpy.api.networking.v1 import Ingress, IngressClass
from kpy.ingress import CONTROLLER_NAME, serves

DEFAULT = "ingressclass.kubernetes.io/is-default-class"


def ic(name: str, controller: str = CONTROLLER_NAME, *, default: bool = False) -> IngressClass:
    c = IngressClass()
    c.metadata.name = name
    c.spec.controller = controller
    if default:
        c.metadata.annotations[DEFAULT] = "true"
    return c


def ing(cls: str | None = None, legacy: str | None = None) -> Ingress:
    i = Ingress()
    i.metadata.name = "web"
    if cls is not None:
        i.spec.ingress_class_name = cls
    if legacy is not None:
        i.metadata.annotations["kubernetes.io/ingress.class"] = legacy
    return i


@dataclass(frozen=True)
class Case:
    name: str
    ingress: Ingress
    classes: list[IngressClass]
    want: bool


CASES = [
    Case("its class", ing("kpy"), [ic("kpy")], True),
    Case("another controller's class", ing("nginx"), [ic("nginx", "k8s.io/ingress-nginx")], False),
    Case("a class that does not exist", ing("gone"), [ic("kpy")], False),
    Case("classless, its class default", ing(), [ic("kpy", default=True)], True),
    Case("classless, no default", ing(), [ic("kpy")], False),
    Case(
        "classless, another controller's default",
        ing(),
        [ic("kpy"), ic("nginx", "k8s.io/ingress-nginx", default=True)],
        False,
    ),
    Case("legacy annotation naming its class", ing(legacy="kpy"), [ic("kpy")], True),
    Case(
        "legacy annotation naming another",
        ing(legacy="nginx"),
        [ic("kpy", default=True)],
        False,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_serves(case: Case) -> None:
    assert serves(case.ingress, case.classes, CONTROLLER_NAME) is case.want, case.name
