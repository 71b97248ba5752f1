"""Which CRDs keep the names they ask for (`kpy.api.crd.names`): the rule
every API server serves by and the controller manager reports."""

from __future__ import annotations

from kpy.api.apiextensions.v1 import CustomResourceDefinition
from kpy.api.crd.names import Conflict, name_conflicts


def crd(
    plural: str,
    kind: str,
    *,
    group: str = "a.example.com",
    short: tuple[str, ...] = (),
    created: int = 100,
    accepted: bool = False,
) -> CustomResourceDefinition:
    c = CustomResourceDefinition()
    c.metadata.name = f"{plural}.{group}"
    c.metadata.creation_timestamp.seconds = created
    c.spec.group = group
    c.spec.names.plural = plural
    c.spec.names.kind = kind
    c.spec.names.short_names.extend(short)
    if accepted:
        c.status.conditions.add(type="NamesAccepted", status="True")
    return c


def taken(reason: str, by: str, *names: str) -> Conflict:
    return Conflict(reason, "; ".join(f'"{n}" is already in use by {by}' for n in names))


CASES = [
    ("no clash", [crd("foos", "Foo"), crd("bars", "Bar")], {}),
    (
        "the same kind: the older keeps it",
        [crd("foos", "Foo", created=200), crd("foes", "Foo", created=100)],
        {
            "foos.a.example.com": taken(
                "SingularConflict", "foes.a.example.com", "foo", "Foo", "FooList"
            )
        },
    ),
    (
        "a short name that is another's plural",
        [crd("foos", "Foo"), crd("bars", "Bar", short=("foos",), created=101)],
        {"bars.a.example.com": taken("ShortNamesConflict", "foos.a.example.com", "foos")},
    ),
    (
        "accepted before beats older",
        [crd("foos", "Foo", created=100), crd("foes", "Foo", created=200, accepted=True)],
        {
            "foos.a.example.com": taken(
                "SingularConflict", "foes.a.example.com", "foo", "Foo", "FooList"
            )
        },
    ),
    (
        "the same second: by name",
        [crd("zoos", "Foo"), crd("foos", "Foo")],
        {
            "zoos.a.example.com": taken(
                "SingularConflict", "foos.a.example.com", "foo", "Foo", "FooList"
            )
        },
    ),
    (
        "a kind that is another's list kind",
        [crd("bars", "Bar"), crd("lists", "BarList", created=101)],
        {"lists.a.example.com": taken("KindConflict", "bars.a.example.com", "BarList")},
    ),
    (
        "other groups never clash",
        [crd("foos", "Foo"), crd("foos", "Foo", group="b.example.com")],
        {},
    ),
]


def test_name_conflicts() -> None:
    for name, crds, want in CASES:
        assert name_conflicts(crds) == want, name
