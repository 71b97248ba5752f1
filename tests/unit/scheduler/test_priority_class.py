"""PriorityClass: its validation and defaults, and the Priority admission
step that resolves a pod's priorityClassName (Kubernetes'
plugin/pkg/admission/priority/admission_test.go and
pkg/apis/scheduling/validation/validation_test.go, in spirit)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from kpy.api import errors
from kpy.api.codec import from_dict
from kpy.api.core.v1 import Pod
from kpy.api.defaults import set_defaults
from kpy.api.scheduling.v1 import PriorityClass
from kpy.api.validation import validate, validate_update
from kpy.apiserver.admission import admit_priority, admit_update

if TYPE_CHECKING:
    from collections.abc import Sequence


def pclass(name: str, value: int, **fields: Any) -> PriorityClass:
    return from_dict(PriorityClass, {"metadata": {"name": name}, "value": value, **fields})


@dataclass
class ValidationCase:
    name: str
    pc: PriorityClass
    want: list[str] = field(default_factory=list)


VALIDATION_CASES = [
    ValidationCase("a user class", pclass("high", 1000, description="d")),
    ValidationCase("the highest user value", pclass("top", 1_000_000_000)),
    ValidationCase(
        "above the highest user value",
        pclass("too-high", 1_000_000_001),
        ["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"],
    ),
    ValidationCase("a built-in class", pclass("system-node-critical", 2_000_001_000)),
    ValidationCase(
        "a made-up system class",
        pclass("system-mine", 5),
        [
            "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved "
            "for system use only. error: system-mine is not a known system priority class"
        ],
    ),
    ValidationCase(
        "a built-in class with another value",
        pclass("system-cluster-critical", 5),
        [
            "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved "
            "for system use only. error: value of system-cluster-critical PriorityClass must be "
            "2000000000"
        ],
    ),
    ValidationCase(
        "an unknown preemption policy",
        pclass("p", 1, preemptionPolicy="Sometimes"),
        [
            'preemptionPolicy: Unsupported value: "Sometimes": supported values: '
            '"PreemptLowerPriority", "Never"'
        ],
    ),
    ValidationCase(
        "no value",
        from_dict(PriorityClass, {"metadata": {"name": "empty"}}),
        ["value: Required value"],
    ),
]


@pytest.mark.parametrize("case", VALIDATION_CASES, ids=lambda c: c.name)
def test_validation(case: ValidationCase) -> None:
    set_defaults(case.pc)
    got = [f"{e.path}: {e.detail}" for e in validate(case.pc)]
    assert got == case.want, case.name


def test_value_and_policy_are_immutable_and_policy_defaults() -> None:
    old = pclass("p", 1)
    set_defaults(old)
    assert old.preemption_policy == "PreemptLowerPriority"
    new = pclass("p", 2, preemptionPolicy="Never")
    got = [f"{e.path}: {e.detail}" for e in validate_update(new, old)]
    assert got == [
        "value: Forbidden: may not be changed in an update.",
        "preemptionPolicy: Forbidden: may not be changed in an update.",
    ]


class Classes:
    def __init__(self, *classes: PriorityClass) -> None:
        self._by_name = {pc.metadata.name: pc for pc in classes}

    async def get(self, name: str) -> PriorityClass | None:
        return self._by_name.get(name)

    async def list(self) -> Sequence[PriorityClass]:
        return list(self._by_name.values())


def ppod(**spec: Any) -> Pod:
    return from_dict(
        Pod, {"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": [], **spec}}
    )


HIGH = pclass("high", 1000, preemptionPolicy="PreemptLowerPriority")
NEVER = pclass("polite", 500, preemptionPolicy="Never")
DEFAULT_LOW = pclass("low-default", 10, globalDefault=True, preemptionPolicy="PreemptLowerPriority")
DEFAULT_LOWER = pclass("lower-default", 5, globalDefault=True)


@dataclass
class AdmitCase:
    name: str
    pod: Pod
    classes: Classes
    want: tuple[str, int, str] | None = None  # (class name, priority, policy)
    error: str = ""


ADMIT_CASES = [
    AdmitCase(
        "no class, no default: priority 0", ppod(), Classes(HIGH), ("", 0, "PreemptLowerPriority")
    ),
    AdmitCase(
        "a named class",
        ppod(priorityClassName="high"),
        Classes(HIGH),
        ("high", 1000, "PreemptLowerPriority"),
    ),
    AdmitCase(
        "a class that never preempts",
        ppod(priorityClassName="polite"),
        Classes(NEVER),
        ("polite", 500, "Never"),
    ),
    AdmitCase(
        "the global default, the lowest when two claim it",
        ppod(),
        Classes(HIGH, DEFAULT_LOW, DEFAULT_LOWER),
        ("lower-default", 5, "PreemptLowerPriority"),
    ),
    AdmitCase(
        "system-cluster-critical is built in",
        ppod(priorityClassName="system-cluster-critical"),
        Classes(),
        ("system-cluster-critical", 2_000_000_000, "PreemptLowerPriority"),
    ),
    AdmitCase(
        "system-node-critical is built in",
        ppod(priorityClassName="system-node-critical"),
        Classes(),
        ("system-node-critical", 2_000_001_000, "PreemptLowerPriority"),
    ),
    AdmitCase(
        "an unknown class is refused",
        ppod(priorityClassName="nope"),
        Classes(HIGH),
        error='pods "p" is forbidden: no PriorityClass with name nope was found',
    ),
    AdmitCase(
        "a priority that contradicts the class is refused",
        ppod(priorityClassName="high", priority=7),
        Classes(HIGH),
        error='pods "p" is forbidden: the integer value of priority (7) must not be provided in '
        "pod spec; priority admission controller computed 1000 from the given PriorityClass name",
    ),
    AdmitCase(
        "the same priority as the class is fine",
        ppod(priorityClassName="high", priority=1000),
        Classes(HIGH),
        ("high", 1000, "PreemptLowerPriority"),
    ),
    AdmitCase(
        "a policy that contradicts the class is refused",
        ppod(priorityClassName="polite", preemptionPolicy="PreemptLowerPriority"),
        Classes(NEVER),
        error='pods "p" is forbidden: the string value of PreemptionPolicy (PreemptLowerPriority) '
        "must not be provided in pod spec; priority admission controller computed Never from "
        "the given PriorityClass name",
    ),
    AdmitCase(
        "without any class the pod's own policy stands",
        ppod(preemptionPolicy="Never"),
        Classes(),
        ("", 0, "Never"),
    ),
]


@pytest.mark.parametrize("case", ADMIT_CASES, ids=lambda c: c.name)
async def test_admit_priority(case: AdmitCase) -> None:
    if case.error:
        with pytest.raises(errors.Forbidden) as refused:
            await admit_priority(case.pod, case.classes)
        assert refused.value.message == case.error, case.name
        return
    await admit_priority(case.pod, case.classes)
    spec = case.pod.spec
    assert (spec.priority_class_name, spec.priority, spec.preemption_policy) == case.want, case.name


def test_an_update_that_omits_the_priority_keeps_it() -> None:
    old = ppod(priorityClassName="high", priority=1000, preemptionPolicy="Never")
    new = ppod(priorityClassName="high")
    admit_update(new, old)
    assert (new.spec.priority, new.spec.preemption_policy) == (1000, "Never")
    changed = ppod(priorityClassName="high", priority=5)
    admit_update(changed, old)
    assert changed.spec.priority == 5, "a change is left for validation to refuse"
