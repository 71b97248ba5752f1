"""VolumeBinding: a pod goes only where its PersistentVolumeClaims can be
used, and its claims are bound before the pod is (kube-scheduler's
volumebinding/volume_binding.go and binder.go; kubernetes.io "Storage
Classes", volumeBindingMode).

Extension points and what each decides:

- PreFilter: a pod without claims skips the plugin. A claim that does not
  exist, or is being deleted, rejects the pod ("persistentvolumeclaim "x"
  not found"); so does an unbound claim of a class with Immediate binding
  (or of no class): the PV controller binds those, not the scheduler
  ("pod has unbound immediate PersistentVolumeClaims"), and so does an
  unbound claim whose StorageClass does not exist.
- Filter, per node: a bound claim's PersistentVolume must allow the node
  (`spec.nodeAffinity.required`), else "node(s) had volume node affinity
  conflict"; a bound claim whose volume is gone gives "node(s) unavailable
  due to one or more pvc(s) bound to non-existent pv(s)". Each unbound
  WaitForFirstConsumer claim needs, on that node, either an unbound
  PersistentVolume that fits it (class, access modes, volume mode,
  selector, capacity, node affinity; the smallest is taken, none twice) or
  a class whose provisioner can provision there (any provisioner but
  "kubernetes.io/no-provisioner", within the class's allowedTopologies);
  a claim whose `volume.kubernetes.io/selected-node` names another node
  cannot be satisfied here. Else "node(s) didn't find available persistent
  volumes to bind".
- Reserve: the chosen node's plan (volumes to bind, claims to provision)
  is taken, and its volumes and claims are assumed in the plugin's own
  books, so that the next pod (scheduled before the API catches up) does
  not take the same volume nor place a provisioned claim elsewhere.
  Unreserve gives them back.
- PreBind: each chosen volume gets its `claimRef` (the PV controller
  finishes the binding) and each claim to provision gets the
  `volume.kubernetes.io/selected-node` annotation (the provisioner makes
  the volume there); then the plugin waits, polling its listers, until
  every such claim is Bound, at most `bind_timeout` seconds (600 by
  default, as kube-scheduler's bindTimeoutSeconds). A timeout, a failed
  API call or a provisioning given up (the annotation removed) fails the
  PreBind: the scheduler unreserves and retries the pod.

Everything is read through `VolumeSource` (the scheduler implements it over
its informers and client), so the plugin stays free of the client. Its
verdicts depend on volumes and claims, not only on the node: it is marked
cluster-wide, so the equivalence cache never remembers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

import anyio

from kpy.api import errors
from kpy.api.labels import selector_from_label_selector
from kpy.api.nodeaffinity import Term, any_term_matches, parse_terms
from kpy.api.quantity import parse_quantity
from kpy.scheduler.framework import SUCCESS, Code, Status, new_status

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from kpy.api.core.v1 import PersistentVolume, PersistentVolumeClaim, Pod
    from kpy.api.quantity import Quantity
    from kpy.api.storage.v1 import StorageClass
    from kpy.scheduler.framework import CycleState, NodeInfo, PreFilterResult

__all__ = [
    "ANN_BOUND_BY_CONTROLLER",
    "ANN_SELECTED_NODE",
    "DEFAULT_BIND_TIMEOUT",
    "ERR_REASON_BIND_CONFLICT",
    "ERR_REASON_NODE_CONFLICT",
    "ERR_REASON_PV_NOT_EXIST",
    "ERR_UNBOUND_IMMEDIATE",
    "NAME",
    "NO_PROVISIONER",
    "VolumeBinding",
    "VolumeSource",
    "topology_allows",
]

NAME: Final = "VolumeBinding"

ERR_REASON_BIND_CONFLICT: Final = "node(s) didn't find available persistent volumes to bind"
ERR_REASON_NODE_CONFLICT: Final = "node(s) had volume node affinity conflict"
ERR_REASON_PV_NOT_EXIST: Final = (
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
)
ERR_UNBOUND_IMMEDIATE: Final = "pod has unbound immediate PersistentVolumeClaims"

#: The claim annotation naming the node a provisioner must make its volume on.
ANN_SELECTED_NODE: Final = "volume.kubernetes.io/selected-node"
#: What a PV gets when a controller (here the scheduler) set its claimRef.
ANN_BOUND_BY_CONTROLLER: Final = "pv.kubernetes.io/bound-by-controller"
#: The legacy class annotation, read before spec.storageClassName as Kubernetes does.
_ANN_CLASS: Final = "volume.beta.kubernetes.io/storage-class"
#: A class whose volumes are all made by hand: nothing can be provisioned.
NO_PROVISIONER: Final = "kubernetes.io/no-provisioner"
WAIT_FOR_FIRST_CONSUMER: Final = "WaitForFirstConsumer"
DEFAULT_BIND_TIMEOUT: Final = 600.0

_STATE_KEY: Final = "PreFilter" + NAME


class VolumeSource(Protocol):
    """What the plugin reads of claims, volumes and classes (informer
    caches: objects returned must not be mutated) and the two writes its
    PreBind makes. The writes raise the API's errors."""

    def claim(self, namespace: str, name: str) -> PersistentVolumeClaim | None: ...

    def volume(self, name: str) -> PersistentVolume | None: ...

    def volumes(self) -> Sequence[PersistentVolume]: ...

    def storage_class(self, name: str) -> StorageClass | None: ...

    async def bind_volume(self, volume: PersistentVolume, claim: PersistentVolumeClaim) -> None:
        """Set the volume's claimRef to the claim (an update at the volume's
        resourceVersion: Conflict if it changed meanwhile)."""
        ...

    async def select_node(self, claim: PersistentVolumeClaim, node_name: str) -> None:
        """Annotate the claim with ANN_SELECTED_NODE = node_name."""
        ...


# --- what PreFilter learns of the pod's claims ---


@dataclass(frozen=True, slots=True)
class _Volume:
    """A PersistentVolume with what matching reads of it, parsed once."""

    pv: PersistentVolume
    terms: tuple[Term, ...] | None  # None: no required node affinity
    capacity: Quantity | None

    @property
    def name(self) -> str:
        return self.pv.metadata.name

    def allows(self, labels: Mapping[str, str], node_name: str) -> bool:
        return self.terms is None or any_term_matches(self.terms, labels, node_name)


@dataclass(frozen=True, slots=True)
class _Unbound:
    """An unbound WaitForFirstConsumer claim and its class."""

    claim: PersistentVolumeClaim
    storage_class: StorageClass
    request: Quantity | None

    @property
    def key(self) -> str:
        return _claim_key(self.claim)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What binding the pod's claims on one node takes."""

    matches: tuple[tuple[PersistentVolumeClaim, PersistentVolume], ...] = ()
    provisions: tuple[PersistentVolumeClaim, ...] = ()


@dataclass(slots=True)
class _PodClaims:
    """The CycleState value: the pod's claims sorted by what they need."""

    #: bound claims' volumes (None: the claim names a volume that is gone)
    bound: list[tuple[PersistentVolumeClaim, _Volume | None]] = field(default_factory=list)
    to_bind: list[_Unbound] = field(default_factory=list)
    #: unbound volumes that may serve to_bind, smallest first
    candidates: list[_Volume] = field(default_factory=list)
    #: Filter's plan per feasible node; Reserve takes the chosen node's
    plans: dict[str, _Plan] = field(default_factory=dict)
    reserved: _Plan | None = None
    #: the chosen node's labels (Reserve), to check provisioned volumes against
    node_labels: Mapping[str, str] | None = None


class VolumeBinding:
    """See the module docstring. `bind_timeout` bounds PreBind's wait for
    the claims to be Bound; `poll_interval` is how often it looks."""

    name = NAME
    #: verdicts depend on volumes and claims, which no NodeInfo generation tracks
    cluster_wide = True

    def __init__(
        self,
        source: VolumeSource,
        *,
        bind_timeout: float = DEFAULT_BIND_TIMEOUT,
        poll_interval: float = 0.5,
    ) -> None:
        self._source = source
        self._bind_timeout = bind_timeout
        self._poll_interval = poll_interval
        # The plugin's assume cache: volume name -> claim key it is promised
        # to, and claim key -> node it is to be provisioned on, from Reserve
        # until the API shows the binding (or Unreserve).
        self._assumed_volumes: dict[str, str] = {}
        self._assumed_nodes: dict[str, str] = {}

    # --- PreFilter ---

    def pre_filter(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status]:
        del nodes
        names = _claim_names(pod)
        if not names:
            return None, new_status(Code.SKIP)
        namespace = pod.metadata.namespace
        claims: _PodClaims | Status = self._read_claims(namespace, names)
        if isinstance(claims, Status):
            return None, claims
        if claims.to_bind:
            claims.candidates = self._candidates(claims.to_bind)
        state.write(_STATE_KEY, claims)
        return None, SUCCESS

    def _read_claims(
        self, namespace: str, names: Iterable[tuple[str, bool]]
    ) -> _PodClaims | Status:
        out = _PodClaims()
        immediate = False
        for name, ephemeral in names:
            claim = self._source.claim(namespace, name)
            if claim is None:
                if ephemeral:
                    msg = (
                        "waiting for ephemeral volume controller to create the "
                        f'persistentvolumeclaim "{name}"'
                    )
                else:
                    msg = f'persistentvolumeclaim "{name}" not found'
                return new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, msg)
            if claim.metadata.HasField("deletion_timestamp"):
                msg = f'persistentvolumeclaim "{name}" is being deleted'
                return new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, msg)
            if claim.spec.volume_name:
                pv = self._source.volume(claim.spec.volume_name)
                out.bound.append((claim, _volume(pv) if pv is not None else None))
                continue
            class_name = _claim_class(claim)
            storage_class = self._source.storage_class(class_name) if class_name else None
            if class_name and storage_class is None:
                msg = (
                    f'storageclass.storage.k8s.io "{class_name}" not found (asked for by '
                    f'persistentvolumeclaim "{name}")'
                )
                return new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, msg)
            if storage_class is None or storage_class.volume_binding_mode != (
                WAIT_FOR_FIRST_CONSUMER
            ):
                immediate = True
                continue
            out.to_bind.append(_Unbound(claim, storage_class, _request(claim)))
        if immediate:
            return new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_UNBOUND_IMMEDIATE)
        return out

    def _candidates(self, to_bind: Sequence[_Unbound]) -> list[_Volume]:
        """Unbound volumes of the classes asked for (or pre-bound to one of
        the claims, or assumed for one), smallest first."""
        classes = {_claim_class(u.claim) for u in to_bind}
        keys = {u.key for u in to_bind}
        found: list[_Volume] = []
        for pv in self._source.volumes():
            if pv.metadata.HasField("deletion_timestamp") or _pv_class(pv) not in classes:
                continue
            promised = self._assumed_volumes.get(pv.metadata.name)
            if promised is not None and promised not in keys:
                continue
            if pv.spec.HasField("claim_ref") and _ref_key(pv) not in keys:
                continue
            found.append(_volume(pv))
        found.sort(key=_size_order)
        return found

    # --- Filter ---

    def filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status:
        claims = state.get(_STATE_KEY)
        if not isinstance(claims, _PodClaims):
            _, status = self.pre_filter(state, pod, ())
            if status.code:
                return SUCCESS if status.is_skip() else status
            claims = state.read(_STATE_KEY)
            assert isinstance(claims, _PodClaims)
        reasons: list[str] = []
        for _, volume in claims.bound:
            if volume is None:
                reasons.append(ERR_REASON_PV_NOT_EXIST)
                break
            if not volume.allows(node_info.labels, node_info.name):
                reasons.append(ERR_REASON_NODE_CONFLICT)
                break
        plan = self._plan(claims, node_info) if claims.to_bind else _Plan()
        if plan is None:
            reasons.append(ERR_REASON_BIND_CONFLICT)
        if reasons:
            return new_status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, *reasons)
        assert plan is not None
        claims.plans[node_info.name] = plan
        return SUCCESS

    def _plan(self, claims: _PodClaims, node_info: NodeInfo) -> _Plan | None:
        """How the unbound claims would be bound on this node; None if one cannot be."""
        taken: set[str] = set()
        matches: list[tuple[PersistentVolumeClaim, PersistentVolume]] = []
        provisions: list[PersistentVolumeClaim] = []
        for unbound in claims.to_bind:
            claim = unbound.claim
            selected = claim.metadata.annotations.get(ANN_SELECTED_NODE) or (
                self._assumed_nodes.get(unbound.key)
            )
            if selected:
                # Provisioning on a node is under way: the claim goes nowhere else.
                if selected != node_info.name:
                    return None
                provisions.append(claim)
                continue
            volume = self._match(unbound, claims.candidates, node_info, taken)
            if volume is not None:
                taken.add(volume.name)
                matches.append((claim, volume.pv))
            elif _can_provision(unbound.storage_class, node_info.labels):
                provisions.append(claim)
            else:
                return None
        return _Plan(tuple(matches), tuple(provisions))

    def _match(
        self,
        unbound: _Unbound,
        candidates: Sequence[_Volume],
        node_info: NodeInfo,
        taken: set[str],
    ) -> _Volume | None:
        """The smallest candidate that fits the claim on this node; a volume
        pre-bound (or assumed) to the claim wins if it fits the node."""
        key, best = unbound.key, None
        for volume in candidates:
            if volume.name in taken or not volume.allows(node_info.labels, node_info.name):
                continue
            if _ref_key(volume.pv) == key or self._assumed_volumes.get(volume.name) == key:
                return volume
            if best is None and _fits(unbound, volume):
                best = volume
        return best

    # --- Reserve / Unreserve ---

    def reserve(self, state: CycleState, pod: Pod, node_name: str) -> Status:
        claims = state.get(_STATE_KEY)
        if not isinstance(claims, _PodClaims) or not claims.to_bind:
            return SUCCESS
        node_info = next((n for n in state.all_nodes if n.name == node_name), None)
        plan = claims.plans.get(node_name)
        if plan is None and node_info is not None:
            plan = self._plan(claims, node_info)
        if plan is None:
            return new_status(Code.UNSCHEDULABLE, ERR_REASON_BIND_CONFLICT)
        for claim, pv in plan.matches:
            self._assumed_volumes[pv.metadata.name] = _claim_key(claim)
        for claim in plan.provisions:
            self._assumed_nodes[_claim_key(claim)] = node_name
        claims.reserved = plan
        claims.node_labels = node_info.labels if node_info is not None else None
        return SUCCESS

    def unreserve(self, state: CycleState, pod: Pod, node_name: str) -> None:
        claims = state.get(_STATE_KEY)
        if isinstance(claims, _PodClaims) and claims.reserved is not None:
            self._forget(claims.reserved)
            claims.reserved = None

    def _forget(self, plan: _Plan) -> None:
        for claim, pv in plan.matches:
            if self._assumed_volumes.get(pv.metadata.name) == _claim_key(claim):
                del self._assumed_volumes[pv.metadata.name]
        for claim in plan.provisions:
            self._assumed_nodes.pop(_claim_key(claim), None)

    # --- PreBind ---

    async def pre_bind(self, state: CycleState, pod: Pod, node_name: str) -> Status:
        claims = state.get(_STATE_KEY)
        if not isinstance(claims, _PodClaims) or claims.reserved is None:
            return SUCCESS
        plan = claims.reserved
        try:
            for claim, pv in plan.matches:
                await self._source.bind_volume(pv, claim)
            for claim in plan.provisions:
                if claim.metadata.annotations.get(ANN_SELECTED_NODE) != node_name:
                    await self._source.select_node(claim, node_name)
        except errors.StatusError as e:
            return new_status(Code.ERROR, f"binding volumes: {e}")
        with anyio.move_on_after(self._bind_timeout):
            while True:
                status = self._check_bindings(plan, node_name, claims.node_labels)
                if status is not None:
                    if status.is_success():
                        self._forget(plan)
                        claims.reserved = None
                    return status
                await anyio.sleep(self._poll_interval)
        return new_status(
            Code.ERROR,
            f"binding volumes: timed out waiting for the condition (claims not Bound within "
            f"{self._bind_timeout:g}s: {', '.join(self._unbound_names(plan))})",
        )

    def _check_bindings(
        self, plan: _Plan, node_name: str, plan_labels: Mapping[str, str] | None
    ) -> Status | None:
        """SUCCESS when every claim of the plan is Bound to a volume that
        allows the node, a failure when that can no longer happen, None
        while waiting."""
        done = True
        provisioned = {_claim_key(c) for c in plan.provisions}
        for claim in (*(c for c, _ in plan.matches), *plan.provisions):
            name, key = claim.metadata.name, _claim_key(claim)
            current = self._source.claim(claim.metadata.namespace, name)
            if current is None or current.metadata.uid != claim.metadata.uid:
                return new_status(Code.ERROR, f'persistentvolumeclaim "{name}" was deleted')
            if key in provisioned and not current.metadata.annotations.get(ANN_SELECTED_NODE):
                # The provisioner gave up on this node and reset the annotation.
                msg = f'selectedNode annotation reset for persistentvolumeclaim "{name}"'
                return new_status(Code.UNSCHEDULABLE, msg)
            if current.status.phase != "Bound" or not current.spec.volume_name:
                done = False
                continue
            pv = self._source.volume(current.spec.volume_name)
            if pv is None:
                done = False
                continue
            labels = plan_labels
            if labels is not None and not _volume(pv).allows(labels, node_name):
                msg = (
                    f'persistentvolume "{pv.metadata.name}" bound to persistentvolumeclaim '
                    f'"{name}" does not allow node "{node_name}"'
                )
                return new_status(Code.UNSCHEDULABLE, msg)
        return SUCCESS if done else None

    def _unbound_names(self, plan: _Plan) -> list[str]:
        out: list[str] = []
        for claim in (*(c for c, _ in plan.matches), *plan.provisions):
            current = self._source.claim(claim.metadata.namespace, claim.metadata.name)
            if current is None or current.status.phase != "Bound":
                out.append(claim.metadata.name)
        return out


# --- helpers ---


def _claim_names(pod: Pod) -> list[tuple[str, bool]]:
    """(claim name, from an ephemeral volume?) for each claim the pod uses."""
    out: list[tuple[str, bool]] = []
    for volume in pod.spec.volumes:
        if volume.HasField("persistent_volume_claim"):
            out.append((volume.persistent_volume_claim.claim_name, False))
        elif volume.HasField("ephemeral"):
            out.append((f"{pod.metadata.name}-{volume.name}", True))
    return out


def _claim_key(claim: PersistentVolumeClaim) -> str:
    return f"{claim.metadata.namespace}/{claim.metadata.name}"


def _ref_key(pv: PersistentVolume) -> str:
    ref = pv.spec.claim_ref
    return f"{ref.namespace}/{ref.name}" if pv.spec.HasField("claim_ref") else ""


def _claim_class(claim: PersistentVolumeClaim) -> str:
    """Kubernetes' GetPersistentVolumeClaimClass: the beta annotation, else
    spec.storageClassName, else "" (no class)."""
    return claim.metadata.annotations.get(_ANN_CLASS) or claim.spec.storage_class_name


def _pv_class(pv: PersistentVolume) -> str:
    return pv.metadata.annotations.get(_ANN_CLASS) or pv.spec.storage_class_name


def _quantity(values: Mapping[str, object]) -> Quantity | None:
    q = values.get("storage")
    text = getattr(q, "string", None)
    if not text:
        return None
    try:
        return parse_quantity(text)
    except ValueError:
        return None


def _request(claim: PersistentVolumeClaim) -> Quantity | None:
    return _quantity(claim.spec.resources.requests)


def _volume(pv: PersistentVolume) -> _Volume:
    terms: tuple[Term, ...] | None = None
    affinity = pv.spec.node_affinity
    if pv.spec.HasField("node_affinity") and affinity.HasField("required"):
        terms = parse_terms(affinity.required.node_selector_terms)
    return _Volume(pv, terms, _quantity(pv.spec.capacity))


def _size_order(volume: _Volume) -> tuple[int, int, str]:
    # Volumes with no readable capacity last: they fit no claim that asks for some.
    capacity = volume.capacity
    return (capacity is None, capacity.value() if capacity is not None else 0, volume.name)


def _fits(unbound: _Unbound, volume: _Volume) -> bool:
    """Whether an unbound, unclaimed volume serves the claim (the PV
    controller's FindMatchingVolume, less the node, which the caller checked)."""
    claim, pv = unbound.claim, volume.pv
    if pv.spec.HasField("claim_ref"):
        return False
    if _pv_class(pv) != _claim_class(claim):
        return False
    if (pv.spec.volume_mode or "Filesystem") != (claim.spec.volume_mode or "Filesystem"):
        return False
    if not set(claim.spec.access_modes) <= set(pv.spec.access_modes):
        return False
    if claim.spec.HasField("selector"):
        try:
            selector = selector_from_label_selector(claim.spec.selector)
        except ValueError:
            return False
        if not selector.matches(pv.metadata.labels):
            return False
    if unbound.request is None:
        return True
    return volume.capacity is not None and volume.capacity >= unbound.request


def _can_provision(storage_class: StorageClass, labels: Mapping[str, str]) -> bool:
    provisioner = storage_class.provisioner
    if not provisioner or provisioner == NO_PROVISIONER:
        return False
    return topology_allows(_allowed_topologies(storage_class), labels)


def _allowed_topologies(storage_class: StorageClass) -> list[list[tuple[str, tuple[str, ...]]]]:
    """The class's allowedTopologies as terms of (key, values) pairs; empty
    when the API does not carry the field (kpy's StorageClass may not)."""
    terms = getattr(storage_class, "allowed_topologies", ())
    return [[(e.key, tuple(e.values)) for e in term.match_label_expressions] for term in terms]


def topology_allows(
    terms: Sequence[Sequence[tuple[str, Sequence[str]]]], labels: Mapping[str, str]
) -> bool:
    """Kubernetes' MatchTopologySelectorTerms: no terms allow every node;
    terms are OR'ed, a term's expressions AND'ed, each wanting the node's
    label to be one of its values."""
    if not terms:
        return True
    return any(all(labels.get(key) in values for key, values in term) for term in terms if term)
