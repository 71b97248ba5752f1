"""The API server's storage admission: the default StorageClass given to a
new claim (DefaultStorageClass) and the resize check on an update
(PersistentVolumeClaimResize), table by table, with the classes given."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from kpy.api import codec, errors
from kpy.api.core.v1 import PersistentVolumeClaim
from kpy.api.storage.v1 import StorageClass
from kpy.apiserver.admission import admit_claim_resize, admit_default_storage_class

if TYPE_CHECKING:
    from collections.abc import Sequence

NOW = 1_700_000_000
REFUSED = (
    'persistentvolumeclaims "data" is forbidden: only dynamically provisioned pvc can be '
    "resized and the storageclass that provisions the pvc must support resize"
)


def sc(name: str, *, default: bool = False, created: int = 0, expand: bool | None = None) -> Any:
    body: dict[str, Any] = {"metadata": {"name": name}, "provisioner": "kpy.io/local-path"}
    if default:
        body["metadata"]["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
    if expand is not None:
        body["allowVolumeExpansion"] = expand
    out = codec.from_dict(StorageClass, body)
    out.metadata.creation_timestamp.FromSeconds(NOW + created)
    return out


def pvc(*, cls: str | None = None, size: str = "1Gi") -> PersistentVolumeClaim:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }
    if cls is not None:
        spec["storageClassName"] = cls
    body = {"metadata": {"name": "data", "namespace": "default"}, "spec": spec}
    made: PersistentVolumeClaim = codec.from_dict(PersistentVolumeClaim, body)
    return made


@dataclass
class Classes:
    items: list[StorageClass] = field(default_factory=list)

    async def get(self, name: str) -> StorageClass | None:
        return next((c for c in self.items if c.metadata.name == name), None)

    async def list(self) -> Sequence[StorageClass]:
        return self.items


@dataclass(frozen=True)
class DefaultCase:
    name: str
    classes: list[Any]
    claim: PersistentVolumeClaim
    want: str | None  # the class stored; None: the field stays unset


DEFAULT_CASES = [
    DefaultCase("no class set: the default", [sc("a"), sc("b", default=True)], pvc(), "b"),
    DefaultCase(
        "several defaults: the newest",
        [sc("old", default=True), sc("new", default=True, created=5)],
        pvc(),
        "new",
    ),
    DefaultCase("no default class: unset", [sc("a")], pvc(), None),
    DefaultCase("a class named is kept", [sc("b", default=True)], pvc(cls="a"), "a"),
    DefaultCase("an empty class asks for none", [sc("b", default=True)], pvc(cls=""), ""),
]


@pytest.mark.parametrize("case", DEFAULT_CASES, ids=lambda c: c.name)
async def test_default_storage_class(case: DefaultCase) -> None:
    claim = case.claim
    await admit_default_storage_class(claim, Classes(case.classes))
    got = claim.spec.storage_class_name if claim.spec.HasField("storage_class_name") else None
    assert got == case.want, f"{case.name}: {got!r}"


@dataclass(frozen=True)
class ResizeCase:
    name: str
    classes: list[Any]
    old: PersistentVolumeClaim
    new: PersistentVolumeClaim
    refused: bool


RESIZE_CASES = [
    ResizeCase(
        "growing with an expandable class",
        [sc("fast", expand=True)],
        pvc(cls="fast"),
        pvc(cls="fast", size="2Gi"),
        False,
    ),
    ResizeCase(
        "growing when the class does not allow it",
        [sc("fast", expand=False)],
        pvc(cls="fast"),
        pvc(cls="fast", size="2Gi"),
        True,
    ),
    ResizeCase(
        "growing when the class says nothing",
        [sc("fast")],
        pvc(cls="fast"),
        pvc(cls="fast", size="2Gi"),
        True,
    ),
    ResizeCase("growing without a class", [], pvc(cls=""), pvc(cls="", size="2Gi"), True),
    ResizeCase("the same size, written otherwise", [], pvc(size="1Gi"), pvc(size="1024Mi"), False),
    ResizeCase("not a resize", [], pvc(cls="a"), pvc(cls="a"), False),
]


@pytest.mark.parametrize("case", RESIZE_CASES, ids=lambda c: c.name)
async def test_claim_resize(case: ResizeCase) -> None:
    check = admit_claim_resize(case.new, case.old, Classes(case.classes))
    if case.refused:
        with pytest.raises(errors.Forbidden) as refused:
            await check
        assert str(refused.value).endswith(REFUSED), f"{case.name}: {refused.value}"
    else:
        await check
