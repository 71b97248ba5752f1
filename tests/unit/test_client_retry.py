"""What the SDK concludes from a failed call, and what it counts as its own
write (see the kpy.client module docstring: retries never write twice)."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import grpc
import pytest

from kpy.api import errors
from kpy.api.core.v1 import ConfigMap
from kpy.client import Client
from kpy.client.client import (
    CREATE_UID_METADATA,
    OutcomeUnknown,
    _classify,
    _holds,
    generate_name,
)

Code = grpc.StatusCode


@dataclass(frozen=True)
class Failure:
    name: str
    code: grpc.StatusCode
    details: str
    answer: errors.StatusError | None
    want: str


CLASSIFY_CASES = [
    Failure(
        "connect refused: never sent",
        Code.UNAVAILABLE,
        "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: "
        "Failed to connect to remote host: Connection refused",
        None,
        "not sent",
    ),
    Failure("socket closed mid-call", Code.UNAVAILABLE, "Socket closed", None, "unknown"),
    Failure(
        "connection reset mid-call",
        Code.UNAVAILABLE,
        "recvmsg:Connection reset by peer",
        None,
        "unknown",
    ),
    Failure("transport deadline", Code.DEADLINE_EXCEEDED, "Deadline Exceeded", None, "unknown"),
    Failure("stream reset", Code.INTERNAL, "Received RST_STREAM", None, "unknown"),
    Failure("server went away", Code.CANCELLED, "Cancelled", None, "unknown"),
    Failure("transport refuses size", Code.RESOURCE_EXHAUSTED, "too large", None, "answered"),
    Failure(
        "server: etcd unavailable",
        Code.UNAVAILABLE,
        "",
        errors.Unavailable("etcd is unavailable"),
        "unknown",
    ),
    Failure("server: etcd timeout", Code.DEADLINE_EXCEEDED, "", errors.Timeout("t"), "unknown"),
    Failure(
        "server: too many requests",
        Code.UNAVAILABLE,
        "",
        errors.TooManyRequests("slow down"),
        "not sent",
    ),
    Failure(
        "server: a disruption budget refuses an eviction (the caller retries, not the client)",
        Code.UNAVAILABLE,
        "",
        errors.EvictionRefused("Cannot evict pod as it would violate the pod's disruption budget."),
        "answered",
    ),
    Failure("server: exists", Code.ALREADY_EXISTS, "", errors.AlreadyExists("x"), "answered"),
    Failure("server: conflict", Code.ABORTED, "", errors.Conflict("x"), "answered"),
    Failure("server: internal", Code.INTERNAL, "", errors.Internal("bug"), "answered"),
    Failure(
        "server text that looks like a connect failure is still the server's",
        Code.UNAVAILABLE,
        "failed to connect to all addresses",
        errors.Unavailable("failed to connect to all addresses"),
        "unknown",
    ),
]


def test_classify() -> None:
    for case in CLASSIFY_CASES:
        got = _classify(case.code, case.details, case.answer)
        assert got == case.want, f"{case.name}: got {got!r}, want {case.want!r}"


def _cm(**data: str) -> ConfigMap:
    cm = ConfigMap()
    cm.metadata.name = "c"
    cm.metadata.namespace = "ns"
    cm.data.update(data)
    return cm


def _stored(**data: str) -> ConfigMap:
    cm = _cm(**data)
    cm.metadata.uid = "u-1"
    cm.metadata.resource_version = "42"
    cm.metadata.creation_timestamp.seconds = 1
    return cm


HOLDS_CASES = [
    ("same data, server metadata aside", _stored(a="1"), _cm(a="1"), "", True),
    ("another writer's data", _stored(a="2"), _cm(a="1"), "", False),
    ("label changed by another writer", _stored(a="1"), _cm(a="1"), "labels", False),
]


def test_holds() -> None:
    for name, stored, sent, variant, want in HOLDS_CASES:
        if variant == "labels":
            stored.metadata.labels["x"] = "y"
        assert _holds(stored, sent, "") == want, name


def test_generate_name_follows_kubernetes() -> None:
    cases = [("short", "web-", 9), ("long prefix cut to 58", "p" * 70, 63)]
    for name, prefix, length in cases:
        got = generate_name(prefix)
        assert len(got) == length, f"{name}: {got!r}"
        assert got.startswith(prefix[:58]), f"{name}: {got!r}"
    assert generate_name("a-") != generate_name("a-")


def test_outcome_unknown_is_a_timeout() -> None:
    # Kubernetes' reason for "the request may have been applied"; callers
    # catching Timeout keep working.
    with pytest.raises(errors.Timeout):
        raise OutcomeUnknown("x")


# -- resolving a lost answer: a client whose calls follow a script -------------


class ScriptedClient(Client):
    """Answers each call with the next step of a script: a ConfigMap (the
    server's answer) or an error to raise. Records what was sent."""

    def __init__(self, script: list[ConfigMap | errors.StatusError]) -> None:
        super().__init__("127.0.0.1:1", retry_timeout=5.0)
        self.script = list(script)
        self.sent: list[tuple[str, str, str]] = []  # (method, name, proposed uid)

    async def _call(
        self,
        method: str,
        request: Any,
        metadata: tuple[tuple[str, str], ...] = (),
        *,
        idempotent: bool = True,
    ) -> Any:
        uid = dict(metadata).get(CREATE_UID_METADATA, "")
        name = request.ref.name
        if method == "Create":
            name = ConfigMap.FromString(request.object).metadata.name
        self.sent.append((method, name, uid))
        step = self.script.pop(0)
        if isinstance(step, errors.StatusError):
            raise step
        if step.metadata.uid == MINE:  # stands for the uid the client proposed
            creates = [u for m, _, u in self.sent if m == "Create"]
            step = _answer(name, creates[-1])
        return SimpleNamespace(object=step.SerializeToString(), deleted=True)


def _answer(name: str, uid: str) -> ConfigMap:
    cm = ConfigMap()
    cm.metadata.name = name
    cm.metadata.uid = uid
    return cm


LOST = OutcomeUnknown("lost")
MINE = "<the uid the client proposed>"


@dataclass(frozen=True)
class CreateCase:
    name: str
    generate: bool
    script: list[Any]  # MINE in a ConfigMap's uid stands for the proposed uid
    want: str  # "ok" or the error class name
    want_methods: list[str]


CREATE_CASES = [
    CreateCase("answered at once", False, [_answer("a", MINE)], "ok", ["Create"]),
    CreateCase(
        "lost, and stored: no second create",
        False,
        [LOST, _answer("a", MINE)],
        "ok",
        ["Create", "Get"],
    ),
    CreateCase(
        "lost, not stored: sent again",
        False,
        [LOST, errors.NotFound("no"), _answer("a", MINE)],
        "ok",
        ["Create", "Get", "Create"],
    ),
    CreateCase(
        "lost, the late original wins: AlreadyExists resolved as ours",
        False,
        [LOST, errors.NotFound("no"), errors.AlreadyExists("taken"), _answer("a", MINE)],
        "ok",
        ["Create", "Get", "Create", "Get"],
    ),
    CreateCase(
        "lost, another object holds the name",
        False,
        [LOST, _answer("a", "someone-else")],
        "AlreadyExists",
        ["Create", "Get"],
    ),
    CreateCase(
        "taken at once: no read",
        False,
        [errors.AlreadyExists("taken")],
        "AlreadyExists",
        ["Create"],
    ),
    CreateCase(
        "generated name taken: another suffix, same uid",
        True,
        [errors.AlreadyExists("taken"), _answer("g-x", MINE)],
        "ok",
        ["Create", "Create"],
    ),
    CreateCase(
        "generated name lost, then found ours",
        True,
        [LOST, _answer("g-x", MINE)],
        "ok",
        ["Create", "Get"],
    ),
    CreateCase(
        "lost, and the read fails too",
        False,
        [LOST, errors.Unavailable("down")],
        "OutcomeUnknown",
        ["Create", "Get"],
    ),
]


async def test_create_resolves_lost_answers() -> None:
    for case in CREATE_CASES:
        client = ScriptedClient(case.script)
        cm = ConfigMap()
        if case.generate:
            cm.metadata.generate_name = "g-"
        else:
            cm.metadata.name = "a"
        returned = ""
        try:
            returned = (await client.create(cm, namespace="ns")).metadata.uid
            got = "ok"
        except errors.StatusError as e:
            got = type(e).__name__
        methods = [m for m, _, _ in client.sent]
        assert got == case.want, f"{case.name}: got {got}"
        assert methods == case.want_methods, f"{case.name}: calls {methods}"
        creates = [(n, u) for m, n, u in client.sent if m == "Create"]
        assert len({u for _, u in creates}) == 1, f"{case.name}: one uid for every attempt"
        if case.generate and len(creates) > 1:
            assert creates[0][0] != creates[1][0], f"{case.name}: a new suffix"
        if got == "ok":
            assert returned == creates[0][1], f"{case.name}: returns the object it wrote"
        await client.close()


async def test_delete_resolves_lost_answers() -> None:
    from kpy.api.meta.v1 import Preconditions

    cases = [
        ("lost, gone, uid precondition: deleted", Preconditions(uid="u-1"), "ok"),
        ("lost, gone, no uid: maybe not by us", None, "OutcomeUnknown"),
    ]
    for name, pre, want in cases:
        client = ScriptedClient([LOST, errors.NotFound("gone")])
        try:
            result = await client.delete(ConfigMap, "a", namespace="ns", preconditions=pre)
            got = "ok"
            assert result.deleted, name
            assert result.object.metadata.uid == "u-1", name
        except errors.StatusError as e:
            got = type(e).__name__
        assert got == want, f"{name}: got {got}"
        assert [m for m, _, _ in client.sent] == ["Delete", "Delete"], name
        await client.close()


async def test_update_with_version_resolves_lost_answers() -> None:
    sent = _answer("a", "")
    sent.metadata.resource_version = "7"
    sent.data["k"] = "mine"
    theirs = _answer("a", "")
    theirs.data["k"] = "theirs"
    ours = _answer("a", "")
    ours.data["k"] = "mine"
    cases: list[tuple[str, list[ConfigMap | errors.StatusError], str]] = [
        ("lost, resent, applied once", [LOST, ours], "ok"),
        ("lost, conflict, the object holds our write", [LOST, errors.Conflict("c"), ours], "ok"),
        (
            "lost, conflict, another write is there",
            [LOST, errors.Conflict("c"), theirs],
            "OutcomeUnknown",
        ),
        ("conflict at once", [errors.Conflict("c")], "Conflict"),
    ]
    for name, script, want in cases:
        client = ScriptedClient(script)
        try:
            await client.update(sent)
            got = "ok"
        except errors.StatusError as e:
            got = type(e).__name__
        assert got == want, f"{name}: got {got}"
        await client.close()
