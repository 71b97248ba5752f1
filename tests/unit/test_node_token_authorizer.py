"""A node's service account tokens (kpy.auth.node): the node authorizer lets
a node `create serviceaccounts/token` only for a ServiceAccount that a pod
bound to it runs as, and NodeRestriction (`admit_token_request`, and the
API server's chain in kpy.apiserver.authorization) admits the request only
when the token is bound to such a pod, by name and uid."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kpy.api import errors
from kpy.api.authentication.v1 import TokenRequest
from kpy.api.core.v1 import PersistentVolumeClaim, Pod
from kpy.api.scheme import scheme
from kpy.apiserver.authorization import Authorization
from kpy.auth import bootstrap
from kpy.auth.attributes import Attributes, UserInfo
from kpy.auth.node import NodeAuthorizer, References, admit_token_request, references_of
from kpy.auth.policy import StaticPolicy
from kpy.rpc.apiserver import v1 as api

NODE_A = UserInfo("system:node:node-a", ("system:nodes", "system:authenticated"))
NODE_B = UserInfo("system:node:node-b", ("system:nodes", "system:authenticated"))
JANE = UserInfo("jane", ("system:authenticated",))


def _pod(name: str, node: str, account: str, uid: str) -> Pod:
    pod = Pod()
    pod.metadata.namespace, pod.metadata.name, pod.metadata.uid = "dev", name, uid
    pod.spec.node_name = node
    pod.spec.service_account_name = account
    return pod


@dataclass
class Graph:
    pods: list[Pod]

    def pod(self, namespace: str, name: str) -> Pod | None:
        for p in self.pods:
            if (p.metadata.namespace, p.metadata.name) == (namespace, name):
                return p
        return None

    def references_on(self, node: str) -> References:
        return references_of(p for p in self.pods if p.spec.node_name == node)

    def claim(self, namespace: str, name: str) -> PersistentVolumeClaim | None:
        return None


GRAPH = Graph(
    [
        _pod("web-a", "node-a", "robot", "uid-web-a"),
        _pod("web-b", "node-b", "builder", "uid-web-b"),
        _pod("pending", "", "waiting", "uid-pending"),
    ]
)


def _token(
    verb: str = "create", name: str = "robot", sub: str = "token", ns: str = "dev"
) -> Attributes:
    return Attributes(verb, "", "serviceaccounts", sub, ns, name)


# (case, user, attributes, expected: True/False/None = no opinion)
AUTHORIZER_CASES: list[tuple[str, UserInfo, Attributes, bool | None]] = [
    ("a token for its pod's service account", NODE_A, _token(), True),
    ("a token for another node's pod's account", NODE_A, _token(name="builder"), False),
    ("the same name in another namespace", NODE_A, _token(ns="prod"), False),
    ("an account only a pending pod uses", NODE_A, _token(name="waiting"), False),
    ("an account no pod uses", NODE_A, _token(name="nobody"), False),
    ("get its pod's service account", NODE_A, _token(verb="get", sub=""), False),
    ("create a service account", NODE_A, _token(sub=""), False),
    ("tokens without a name", NODE_A, _token(name=""), False),
    ("node-b for its own pod's account", NODE_B, _token(name="builder"), True),
    ("not a node: RBAC decides", JANE, _token(), None),
]


def test_node_authorizer_tokens() -> None:
    authorizer = NodeAuthorizer(GRAPH)
    for case, user, attributes, want in AUTHORIZER_CASES:
        decision = authorizer.authorize(user, attributes)
        got = None if decision is None else decision.allowed
        assert got is want, f"{case}: got {decision}"


def test_refusal_says_why() -> None:
    decision = NodeAuthorizer(GRAPH).authorize(NODE_A, _token(name="builder"))
    assert decision is not None
    assert decision.reason.endswith(
        'no relationship found between node "node-a" and this object (serviceaccount dev/builder)'
    )
    decision = NodeAuthorizer(GRAPH).authorize(NODE_A, _token(verb="get", sub=""))
    assert decision is not None
    assert decision.reason.endswith("can only create tokens for individual service accounts")


def _request(kind: str = "Pod", name: str = "web-a", uid: str = "uid-web-a") -> TokenRequest:
    request = TokenRequest()
    if kind:
        ref = request.spec.bound_object_ref
        ref.kind, ref.api_version, ref.name, ref.uid = kind, "v1", name, uid
    return request


# (case, user, request, refusal: "" admitted)
ADMISSION_CASES: list[tuple[str, UserInfo, TokenRequest, str]] = [
    ("bound to its own pod", NODE_A, _request(), ""),
    ("not bound", NODE_A, _request(kind=""), "node requested token not bound to a pod"),
    (
        "bound to a secret",
        NODE_A,
        _request(kind="Secret"),
        "node requested token not bound to a pod",
    ),
    (
        "bound to its pod without a uid",
        NODE_A,
        _request(uid=""),
        "node requested token with a pod binding without a uid",
    ),
    (
        "bound to its pod's old uid",
        NODE_A,
        _request(uid="old"),
        "the UID in the bound object reference (old) does not match the UID in record. "
        "The object might have been deleted and then recreated",
    ),
    (
        "bound to another node's pod",
        NODE_A,
        _request(name="web-b", uid="uid-web-b"),
        "node requested token bound to a pod scheduled on a different node",
    ),
    ("bound to a pod that does not exist", NODE_A, _request(name="gone"), 'pod "gone" not found'),
    ("not a node: nothing to check", JANE, _request(kind=""), ""),
]


def test_admit_token_request() -> None:
    for case, user, request, want in ADMISSION_CASES:
        assert admit_token_request(user, "dev", request, GRAPH) == want, case


@dataclass
class FakeRegistry:
    info: object

    def decode(self, data: bytes) -> object:
        return self.info.message.FromString(data)  # type: ignore[attr-defined]


def _chain() -> Authorization:
    registries = {(i.group, i.version, i.plural): FakeRegistry(i) for i in scheme.all()}
    return Authorization("Node,RBAC", StaticPolicy(bootstrap.policy()), GRAPH, registries)  # type: ignore[arg-type]


def _create(name: str, request: TokenRequest) -> api.CreateRequest:
    ref = api.ResourceRef(
        version="v1", resource="serviceaccounts", namespace="dev", name=name, subresource="token"
    )
    return api.CreateRequest(ref=ref, object=request.SerializeToString())


def test_chain_admits_a_nodes_token_only_bound_to_its_pod() -> None:
    chain = _chain()
    chain.check("Create", _create("robot", _request()), NODE_A)  # allowed and admitted
    with pytest.raises(errors.Forbidden) as refused:
        chain.check("Create", _create("robot", _request(kind="")), NODE_A)
    assert refused.value.message == (
        'serviceaccounts "robot" is forbidden: node requested token not bound to a pod'
    )
    with pytest.raises(errors.Forbidden) as refused:
        chain.check("Create", _create("builder", _request("Pod", "web-b", "uid-web-b")), NODE_A)
    assert "no relationship found between node" in refused.value.message
