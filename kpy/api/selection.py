"""Which objects a list or watch selects: label selector + field selector.

Field selectors work on a small set of fields per kind, as in Kubernetes:
every kind offers `metadata.name` and `metadata.namespace`; pods add
`spec.nodeName`, `status.phase` and a few more; see `_KIND_FIELDS`. A
selector naming any other field is refused (BadRequest naming the field and
the supported ones) rather than silently matching nothing. `Predicate` is
what the API server filters with, and what a client can filter a cache with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from kpy.api import errors, fields, labels

if TYPE_CHECKING:
    from google.protobuf.message import Message

_Getter = Callable[[Any], str]


def _bool(value: bool) -> str:
    return "true" if value else "false"


_KIND_FIELDS: Final[dict[str, dict[str, _Getter]]] = {
    "Pod": {
        "spec.nodeName": lambda o: o.spec.node_name,
        "spec.restartPolicy": lambda o: o.spec.restart_policy,
        "spec.schedulerName": lambda o: o.spec.scheduler_name,
        "spec.serviceAccountName": lambda o: o.spec.service_account_name,
        "spec.hostNetwork": lambda o: _bool(o.spec.host_network),
        "status.phase": lambda o: o.status.phase,
        "status.podIP": lambda o: o.status.pod_ip,
        "status.nominatedNodeName": lambda o: o.status.nominated_node_name,
    },
    "Node": {"spec.unschedulable": lambda o: _bool(o.spec.unschedulable)},
    "Namespace": {"status.phase": lambda o: o.status.phase},
    "Secret": {"type": lambda o: o.type},
    "ReplicaSet": {"status.replicas": lambda o: str(o.status.replicas)},
    "ReplicationController": {"status.replicas": lambda o: str(o.status.replicas)},
    "Job": {"status.successful": lambda o: str(o.status.succeeded)},
    "Event": {
        "involvedObject.kind": lambda o: o.involved_object.kind,
        "involvedObject.namespace": lambda o: o.involved_object.namespace,
        "involvedObject.name": lambda o: o.involved_object.name,
        "involvedObject.uid": lambda o: o.involved_object.uid,
        "involvedObject.apiVersion": lambda o: o.involved_object.api_version,
        "involvedObject.fieldPath": lambda o: o.involved_object.field_path,
        "reason": lambda o: o.reason,
        "type": lambda o: o.type,
    },
}

_META_FIELDS: Final[dict[str, _Getter]] = {
    "metadata.name": lambda o: o.metadata.name,
    "metadata.namespace": lambda o: o.metadata.namespace,
}


def _json_getter(path: tuple[str, ...]) -> _Getter:
    """Reads a custom object's field at `path` as a field selector compares
    it: "" when absent, booleans as true/false."""

    def get(obj: Any) -> str:
        value: Any = obj.content
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return ""
            value = value[key]
        if isinstance(value, bool):
            return _bool(value)
        return "" if value is None else str(value)

    return get


def _getters(kind: str, message: type | None) -> dict[str, _Getter]:
    """The field getters of `kind`; a custom kind's class (see
    `kpy.api.unstructured`) brings its own selectable fields instead of a
    built-in kind's of the same name."""
    custom = getattr(message, "selectable_fields", None)
    if custom is not None:
        return {**_META_FIELDS, **{name: _json_getter(path) for name, path in custom.items()}}
    return {**_META_FIELDS, **_KIND_FIELDS.get(kind, {})}


def supported_fields(kind: str, message: type | None = None) -> list[str]:
    """The field names a field selector may use for `kind`."""
    return list(_getters(kind, message))


def object_fields(obj: Message) -> dict[str, str]:
    """The selectable fields of `obj` and their values."""
    getters = _getters(type(obj).__name__, type(obj))
    return {name: get(obj) for name, get in getters.items()}


@dataclass(frozen=True, slots=True)
class Predicate:
    """A label selector and a field selector, both of which must match.
    `field_getters` holds only the fields the selector names, so matching
    reads nothing else."""

    label: labels.Selector
    field: fields.FieldSelector
    field_getters: Mapping[str, _Getter]

    @property
    def empty(self) -> bool:
        return self.label.empty() and self.field.empty()

    def matches(self, obj: Message) -> bool:
        if not self.label.empty() and not self.label.matches(obj.metadata.labels):  # type: ignore[attr-defined]
            return False
        if self.field.empty():
            return True
        values = {name: get(obj) for name, get in self.field_getters.items()}
        return self.field.matches(values)

    def __call__(self, obj: Message) -> bool:
        return self.matches(obj)


MAX_SELECTOR_LENGTH: Final = 64 * 1024
"""The longest selector a list or watch may carry. Parsing is linear but not
free (tens of microseconds per term), and an API server parses on its event
loop: kube-apiserver is bounded by its 1 MiB request-header limit; real
selectors are a few hundred characters at most."""


def parse_predicate(
    kind: str, label_selector: str = "", field_selector: str = "", *, message: type | None = None
) -> Predicate:
    """Parses both selectors for a list or watch of `kind` (held in
    `message`, which a custom kind needs); BadRequest when either does not
    parse, is longer than `MAX_SELECTOR_LENGTH`, or names a field `kind`
    cannot be selected by."""
    for which, text in (("labelSelector", label_selector), ("fieldSelector", field_selector)):
        if len(text) > MAX_SELECTOR_LENGTH:
            raise errors.BadRequest(
                f"{which} is {len(text)} characters long, more than the {MAX_SELECTOR_LENGTH} "
                "kpy parses; select by fewer or shorter terms"
            )
    try:
        label = labels.parse_selector(label_selector)
    except ValueError as e:
        raise errors.BadRequest(f"unable to parse labelSelector: {e}") from None
    try:
        field = fields.parse_field_selector(field_selector)
    except ValueError as e:
        raise errors.BadRequest(f"unable to parse fieldSelector: {e}") from None
    getters = _getters(kind, message)
    used: dict[str, _Getter] = {}
    for term in field.terms:
        if term.field not in getters:
            supported = ", ".join(getters)
            raise errors.BadRequest(
                f'field label not supported for {kind}: "{term.field}" (supported: {supported})'
            )
        used[term.field] = getters[term.field]
    return Predicate(label, field, used)
