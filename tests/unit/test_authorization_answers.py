"""`Authorization` keeps RBAC's answers while the policy is unchanged, and
only then: each case is a sequence of questions, some with a policy change
before them, and says what every answer is and how many of them walked the
policy (a kept answer does not)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from kpy.api import errors
from kpy.apiserver.authorization import RBAC, Authorization
from kpy.auth.attributes import Attributes, UserInfo
from kpy.auth.policy import StaticPolicy
from kpy.rpc.apiserver import v1 as api
from tests.unit.test_rbac_authorizer import binding, role, rule

if TYPE_CHECKING:
    from collections.abc import Sequence

    from google.protobuf.message import Message

JANE = UserInfo("jane", ("system:authenticated",))
JANE_IN_DEVS = UserInfo("jane", ("devs", "system:authenticated"))
JOHN = UserInfo("john", ("system:authenticated",))
ADMIN = UserInfo("admin", ("system:masters", "system:authenticated"))
GET_PODS = Attributes("get", "", "pods", "", "dev", "p")
LIST_PODS = Attributes("list", "", "pods", "", "dev", "")

READER = role("reader", rule("get", "pods"))


class CountingPolicy(StaticPolicy):
    """A StaticPolicy with a version, as the watch caches' policy has, that
    counts how often RBAC walks its cluster bindings."""

    def __init__(self, objects: Sequence[Message], version: int = 1) -> None:
        super().__init__(objects)
        self._version = version
        self.walks = 0

    def version(self) -> int:
        return self._version

    def cluster_role_bindings(self) -> Any:
        self.walks += 1
        return super().cluster_role_bindings()


@dataclass(frozen=True)
class Ask:
    user: UserInfo
    attributes: Attributes
    allowed: bool
    #: the policy the question is asked under (None: unchanged)
    policy: tuple[Message, ...] | None = None


@dataclass(frozen=True)
class Case:
    name: str
    policy: tuple[Message, ...]
    asks: list[Ask]
    walks: int
    versioned: bool = field(default=True)


CASES = [
    Case(
        "the same question twice walks the policy once",
        (READER, binding("b", "ClusterRole/reader", "User:jane")),
        [Ask(JANE, GET_PODS, True), Ask(JANE, GET_PODS, True)],
        walks=1,
    ),
    Case(
        "another user, or the same name in other groups, is asked afresh",
        (READER, binding("b", "ClusterRole/reader", "Group:devs")),
        [
            Ask(JANE_IN_DEVS, GET_PODS, True),
            Ask(JANE, GET_PODS, False),
            Ask(JOHN, GET_PODS, False),
            Ask(JANE_IN_DEVS, GET_PODS, True),
        ],
        walks=3,
    ),
    Case(
        "other attributes are asked afresh",
        (READER, binding("b", "ClusterRole/reader", "User:jane")),
        [Ask(JANE, GET_PODS, True), Ask(JANE, LIST_PODS, False), Ask(JANE, LIST_PODS, False)],
        walks=2,
    ),
    Case(
        "a new binding is heeded at once",
        (READER,),
        [
            Ask(JANE, GET_PODS, False),
            Ask(JANE, GET_PODS, True, (READER, binding("b", "ClusterRole/reader", "User:jane"))),
            Ask(JANE, GET_PODS, True),
        ],
        walks=2,
    ),
    Case(
        "a removed binding is heeded at once",
        (READER, binding("b", "ClusterRole/reader", "User:jane")),
        [Ask(JANE, GET_PODS, True), Ask(JANE, GET_PODS, False, (READER,))],
        walks=2,
    ),
    Case(
        "a policy without a version keeps no answers",
        (READER, binding("b", "ClusterRole/reader", "User:jane")),
        [Ask(JANE, GET_PODS, True), Ask(JANE, GET_PODS, True)],
        walks=2,
        versioned=False,
    ),
]


class _Unversioned(CountingPolicy):
    version = None  # type: ignore[assignment]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rbac_answers_are_kept_while_the_policy_is_unchanged(case: Case) -> None:
    kind = CountingPolicy if case.versioned else _Unversioned
    policy = kind(case.policy)
    holder = {"policy": policy}

    class Current:
        """The policy in force: a change swaps it for one a version newer."""

        def version(self) -> int:
            return holder["policy"].version()

        def __getattr__(self, name: str) -> Any:
            return getattr(holder["policy"], name)

    authorization = Authorization(RBAC, Current() if case.versioned else policy, None, {})  # type: ignore[arg-type]
    walks = 0
    for i, ask in enumerate(case.asks):
        if ask.policy is not None:
            walks += holder["policy"].walks
            holder["policy"] = kind(ask.policy, version=holder["policy"].version() + 1)
        decision = authorization.decide(ask.user, ask.attributes)
        assert decision.allowed == ask.allowed, f"{case.name}: question {i}: {decision.reason}"
    walks += holder["policy"].walks
    assert walks == case.walks, f"{case.name}: RBAC walked the policy {walks} times"


def test_the_superuser_group_is_allowed_without_walking_the_policy() -> None:
    policy = CountingPolicy([READER])
    authorization = Authorization(RBAC, policy, None, {})  # type: ignore[arg-type]
    request = api.GetRequest(ref=api.ResourceRef(version="v1", resource="secrets", name="s"))
    authorization.check("Get", request, ADMIN)
    assert policy.walks == 0
    with pytest.raises(errors.Forbidden):
        authorization.check("Get", request, JANE)
