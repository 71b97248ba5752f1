"""Small builders for scheduler tests, in the spirit of Kubernetes'
pkg/scheduler/testing wrappers (st.MakePod(), st.MakeNode())."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpy.api.core.v1 import (
    Affinity,
    Container,
    ContainerPort,
    Node,
    NodeAffinity,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    NodeSpec,
    NodeStatus,
    Pod,
    PodSpec,
    PreferredSchedulingTerm,
    ResourceRequirements,
    Taint,
    Toleration,
)
from kpy.api.meta.v1 import ObjectMeta, Quantity

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


def quantities(values: Mapping[str, str] | None) -> dict[str, Quantity]:
    return {name: Quantity(string=value) for name, value in (values or {}).items()}


def container(
    requests: Mapping[str, str] | None = None,
    *,
    ports: Iterable[ContainerPort] = (),
    restart_policy: str | None = None,
    name: str = "c",
) -> Container:
    c = Container(name=name, ports=list(ports))
    if requests is not None:
        c.resources.CopyFrom(ResourceRequirements(requests=quantities(requests)))
    if restart_policy is not None:
        c.restart_policy = restart_policy
    return c


def sidecar(requests: Mapping[str, str] | None = None, **kwargs: object) -> Container:
    """An init container with restartPolicy Always."""
    return container(requests, restart_policy="Always", **kwargs)  # type: ignore[arg-type]


def host_port(spec: str) -> ContainerPort:
    """A host port from "PROTO/IP/PORT", as Kubernetes' nodeports tests write them."""
    protocol, ip, port = spec.split("/")
    return ContainerPort(
        protocol=protocol, host_ip=ip, host_port=int(port), container_port=int(port)
    )


def pod(
    *containers: Container,
    init: Iterable[Container] = (),
    name: str = "",
    namespace: str = "default",
    uid: str = "",
    node_name: str = "",
    node_selector: Mapping[str, str] | None = None,
    affinity: Affinity | None = None,
    tolerations: Iterable[Toleration] = (),
    overhead: Mapping[str, str] | None = None,
    pod_requests: Mapping[str, str] | None = None,
) -> Pod:
    spec = PodSpec(
        containers=list(containers),
        init_containers=list(init),
        node_selector=dict(node_selector or {}),
        tolerations=list(tolerations),
        overhead=quantities(overhead),
    )
    if node_name:
        spec.node_name = node_name
    if affinity is not None:
        spec.affinity.CopyFrom(affinity)
    if pod_requests is not None:
        spec.resources.CopyFrom(ResourceRequirements(requests=quantities(pod_requests)))
    meta = ObjectMeta(name=name, namespace=namespace if name else "", uid=uid)
    return Pod(metadata=meta, spec=spec)


def requests_pod(*requests: Mapping[str, str], **kwargs: object) -> Pod:
    """A pod with one container per request map (st.MakePod().Req(...)...)."""
    return pod(*(container(r) for r in requests), **kwargs)  # type: ignore[arg-type]


def node(
    name: str = "",
    *,
    labels: Mapping[str, str] | None = None,
    allocatable: Mapping[str, str] | None = None,
    capacity: Mapping[str, str] | None = None,
    taints: Iterable[Taint] = (),
    unschedulable: bool = False,
) -> Node:
    status = NodeStatus(allocatable=quantities(allocatable), capacity=quantities(capacity))
    spec = NodeSpec(taints=list(taints))
    if unschedulable:
        spec.unschedulable = True
    return Node(metadata=ObjectMeta(name=name, labels=dict(labels or {})), spec=spec, status=status)


def taint(key: str, value: str, effect: str) -> Taint:
    return Taint(key=key, value=value, effect=effect)


def toleration(key: str = "", operator: str = "", value: str = "", effect: str = "") -> Toleration:
    t = Toleration(key=key, value=value, effect=effect)
    if operator:
        t.operator = operator
    return t


def req(key: str, operator: str, *values: str) -> NodeSelectorRequirement:
    return NodeSelectorRequirement(key=key, operator=operator, values=list(values))


def term(
    *expressions: NodeSelectorRequirement, fields: Iterable[NodeSelectorRequirement] = ()
) -> NodeSelectorTerm:
    return NodeSelectorTerm(match_expressions=list(expressions), match_fields=list(fields))


def required(*terms: NodeSelectorTerm) -> Affinity:
    """Required node affinity with these terms (possibly none)."""
    return Affinity(
        node_affinity=NodeAffinity(
            required_during_scheduling_ignored_during_execution=NodeSelector(
                node_selector_terms=list(terms)
            )
        )
    )


def preferred(*weighted: tuple[int, NodeSelectorTerm]) -> Affinity:
    return Affinity(
        node_affinity=NodeAffinity(
            preferred_during_scheduling_ignored_during_execution=[
                PreferredSchedulingTerm(weight=w, preference=t) for w, t in weighted
            ]
        )
    )
