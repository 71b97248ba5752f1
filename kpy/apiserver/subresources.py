"""Subresources: one handler per name, routed from one table.

A request naming a subresource (`pods/binding`, `deployments/scale`, ...)
goes to `handler_for(registry, name)`: the handler in `SUBRESOURCES`, if the
kind's strategy lists that subresource, else MethodNotAllowed ("<resource>
has no '<name>' subresource"). A handler serves the verbs it overrides;
every other verb, and delete always, is MethodNotAllowed ("<verb> is not
supported on <resource>/<name>"). Writes go through the registry's one write path (read,
build, validate, compare-and-swap), so a subresource write is checked as
any other; a handler only says how the new object is built from the body
and the stored object, and what the subresource shows of it.

- status (get, update, patch): writes only the status;
- scale (get, update, patch): an autoscaling/v1 Scale view of the replicas
  and selector (`ScalableStrategy`); writes only `spec.replicas`;
- finalize (update, patch): writes only a namespace's `spec.finalizers`;
- binding (create): sets a pod's `spec.nodeName` once and marks it
  scheduled;
- eviction (create): deletes a pod unless that would break its
  PodDisruptionBudget (`kpy.apiserver.eviction`);
- token (create): a ServiceAccount's TokenRequest, answered with a signed
  token (`kpy.apiserver.serviceaccounts`);
- log and exec: listed for discovery; the streaming Logs and Exec RPCs
  serve them, so no verb here does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Final, NoReturn

from kpy.api import errors
from kpy.api.autoscaling.v1 import Scale
from kpy.api.core.v1 import Binding, PodCondition
from kpy.apiserver.eviction import evict
from kpy.apiserver.registry import copy_message, decode_body, no_subresource
from kpy.apiserver.serviceaccounts import request_token
from kpy.apiserver.strategy import ScalableStrategy

if TYPE_CHECKING:
    from google.protobuf.message import Message
    from google.protobuf.timestamp_pb2 import Timestamp

    from kpy.apiserver.registry import Registry


class Subresource:
    """The verbs of one subresource; each verb not overridden refuses."""

    name: ClassVar[str]

    def _unsupported(self, verb: str, registry: Registry) -> errors.MethodNotAllowed:
        return errors.MethodNotAllowed(
            f"{verb} is not supported on {registry.info.plural}/{self.name}",
            kind=registry.info.group_resource,
        )

    async def get(self, registry: Registry, *, namespace: str, name: str) -> Message:
        raise self._unsupported("get", registry)

    def refuse_delete(self, registry: Registry) -> NoReturn:
        """No subresource is deleted: an object goes by a delete of itself."""
        raise self._unsupported("delete", registry)

    async def create(
        self, registry: Registry, body: bytes, *, namespace: str, name: str, dry_run: bool
    ) -> Message:
        raise self._unsupported("create", registry)

    async def update(
        self, registry: Registry, body: bytes, *, namespace: str, name: str, dry_run: bool
    ) -> Message:
        raise self._unsupported("update", registry)

    async def patch(
        self,
        registry: Registry,
        patch_type: str,
        body: bytes,
        *,
        namespace: str,
        name: str,
        dry_run: bool,
    ) -> Message:
        raise self._unsupported("patch", registry)


class _PartOfObject(Subresource):
    """A subresource whose body is the whole object, of which the write
    keeps only a part (`build`)."""

    def build(self, registry: Registry, new: Message, current: Message) -> Message:
        raise NotImplementedError

    async def update(
        self, registry: Registry, body: bytes, *, namespace: str, name: str, dry_run: bool
    ) -> Message:
        return await registry.update(
            registry.decode(body),
            namespace=namespace,
            name=name,
            build=lambda new, current: self.build(registry, new, current),
            dry_run=dry_run,
        )

    async def patch(
        self,
        registry: Registry,
        patch_type: str,
        body: bytes,
        *,
        namespace: str,
        name: str,
        dry_run: bool,
    ) -> Message:
        return await registry.patch(
            namespace=namespace,
            name=name,
            patch_type=patch_type,
            body=body,
            build=lambda new, current: self.build(registry, new, current),
            dry_run=dry_run,
        )


class Status(_PartOfObject):
    name = "status"

    async def get(self, registry: Registry, *, namespace: str, name: str) -> Message:
        return await registry.get(namespace, name)

    def build(self, registry: Registry, new: Message, current: Message) -> Message:
        out = copy_message(current)
        registry.strategy.take_status(out, new)
        registry.strategy.default(out)
        return out


class Finalize(_PartOfObject):
    name = "finalize"

    def build(self, registry: Registry, new: Message, current: Message) -> Message:
        out = copy_message(current)
        del out.spec.finalizers[:]  # type: ignore[attr-defined]
        out.spec.finalizers.extend(new.spec.finalizers)  # type: ignore[attr-defined]
        return out


class ScaleSubresource(Subresource):
    name = "scale"

    @staticmethod
    def _strategy(registry: Registry) -> ScalableStrategy:
        strategy = registry.strategy
        if not isinstance(strategy, ScalableStrategy):
            raise no_subresource(registry.info, "scale")
        return strategy

    def view(self, registry: Registry, obj: Any) -> Scale:
        """The Scale that shows `obj`'s replicas and selector."""
        m = obj.metadata
        scale = Scale()
        scale.metadata.name = m.name
        scale.metadata.namespace = m.namespace
        scale.metadata.uid = m.uid
        scale.metadata.resource_version = m.resource_version
        scale.metadata.creation_timestamp.CopyFrom(m.creation_timestamp)
        strategy = self._strategy(registry)
        scale.spec.replicas, scale.status.replicas = strategy.replicas(obj)
        scale.status.selector = strategy.scale_selector(obj)
        return scale

    def build(self, registry: Registry, scale: Message, current: Message) -> Message:
        if not isinstance(scale, Scale):
            raise errors.BadRequest("the scale subresource takes an autoscaling/v1 Scale")
        out = copy_message(current)
        self._strategy(registry).set_replicas(out, scale.spec.replicas)
        if registry.strategy.spec_changed(out, current):
            out.metadata.generation = current.metadata.generation + 1  # type: ignore[attr-defined]
        return out

    async def get(self, registry: Registry, *, namespace: str, name: str) -> Message:
        return self.view(registry, await registry.get(namespace, name))

    async def update(
        self, registry: Registry, body: bytes, *, namespace: str, name: str, dry_run: bool
    ) -> Message:
        scale = decode_body(Scale, body, "autoscaling/v1 Scale")
        if scale.metadata.name and scale.metadata.name != name:
            raise errors.BadRequest(f'the Scale names "{scale.metadata.name}", not "{name}"')
        obj = await registry.write(
            namespace,
            name,
            lambda current: self.build(registry, scale, current),
            expected=scale.metadata.resource_version,
            dry_run=dry_run,
        )
        return self.view(registry, obj)

    async def patch(
        self,
        registry: Registry,
        patch_type: str,
        body: bytes,
        *,
        namespace: str,
        name: str,
        dry_run: bool,
    ) -> Message:
        patched = await registry.patch(
            namespace=namespace,
            name=name,
            patch_type=patch_type,
            body=body,
            view=lambda obj: self.view(registry, obj),
            message_type=Scale,
            build=lambda new, current: self.build(registry, new, current),
            dry_run=dry_run,
        )
        return self.view(registry, patched)


class BindingSubresource(Subresource):
    """pods/binding: sets spec.nodeName once and marks the pod scheduled."""

    name = "binding"

    async def create(
        self, registry: Registry, body: bytes, *, namespace: str, name: str, dry_run: bool
    ) -> Message:
        binding = decode_body(Binding, body, "Binding")
        target = binding.target
        if target.kind not in ("", "Node") or not target.name:
            raise registry.invalid(
                [errors.FieldError("target", errors.INVALID, "must name a Node")], name
            )
        if binding.metadata.name and binding.metadata.name != name:
            raise errors.BadRequest(
                f'the Binding names pod "{binding.metadata.name}", not "{name}"'
            )

        def assign(pod: Any) -> Message:
            if pod.metadata.HasField("deletion_timestamp"):
                raise errors.conflict(
                    "pods", name, "the pod is being deleted, cannot be assigned to a host"
                )
            if pod.spec.node_name:
                raise errors.conflict(
                    "pods", name, f'pod {name} is already assigned to node "{pod.spec.node_name}"'
                )
            out = copy_message(pod)
            out.spec.node_name = target.name
            _set_scheduled(out, registry.now())
            return out  # type: ignore[no-any-return]

        return await registry.write(
            namespace, name, assign, expected=binding.metadata.resource_version, dry_run=dry_run
        )


def _set_scheduled(pod: Any, now: Timestamp) -> None:
    for condition in pod.status.conditions:
        if condition.type == "PodScheduled":
            if condition.status != "True":
                condition.status = "True"
                condition.last_transition_time.CopyFrom(now)
            condition.ClearField("reason")
            condition.ClearField("message")
            return
    pod.status.conditions.append(
        PodCondition(type="PodScheduled", status="True", last_transition_time=now)
    )


class EvictionSubresource(Subresource):
    """pods/eviction: a delete that respects disruption budgets."""

    name = "eviction"

    async def create(
        self, registry: Registry, body: bytes, *, namespace: str, name: str, dry_run: bool
    ) -> Message:
        return await evict(registry, body, namespace=namespace, name=name, dry_run=dry_run)


class TokenSubresource(Subresource):
    """serviceaccounts/token: a TokenRequest, answered with a signed token."""

    name = "token"

    async def create(
        self, registry: Registry, body: bytes, *, namespace: str, name: str, dry_run: bool
    ) -> Message:
        return await request_token(registry, body, namespace=namespace, name=name, dry_run=dry_run)


class Log(Subresource):
    """pods/log: served by the streaming Logs RPC; listed here so that
    discovery and routing know it."""

    name = "log"


class Exec(Subresource):
    """pods/exec: served by the streaming Exec RPC; listed here so that
    discovery and routing know it."""

    name = "exec"


SUBRESOURCES: Final[dict[str, Subresource]] = {
    handler.name: handler
    for handler in (
        Status(),
        ScaleSubresource(),
        Finalize(),
        BindingSubresource(),
        EvictionSubresource(),
        TokenSubresource(),
        Log(),
        Exec(),
    )
}
"""Every subresource the server knows, by name."""


def handler_for(registry: Registry, name: str) -> Subresource:
    """The handler of `name` on `registry`'s kind; MethodNotAllowed when the
    kind has no such subresource."""
    handler = SUBRESOURCES.get(name)
    if handler is None or name not in registry.strategy.subresources():
        raise no_subresource(registry.info, name)
    return handler
