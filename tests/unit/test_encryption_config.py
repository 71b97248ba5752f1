"""Encryption at rest (kpy.storage.encryption): the EncryptionConfiguration
parser and the value transformers, as tables; and the store's error for a
value no configured key reads."""

from __future__ import annotations

import base64
import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from kpy.api import errors
from kpy.api.scheme import scheme
from kpy.cluster.rotate import _flags, next_key_name
from kpy.storage.codec import Unreadable, decode
from kpy.storage.encryption import (
    AESGCM_PREFIX,
    AESGCMKey,
    ConfigError,
    DecryptError,
    Identity,
    Key,
    ProviderChain,
    config_keys,
    load_config,
    parse_config,
    render_config,
    write_private,
)
from kpy.storage.store import _undecryptable

if TYPE_CHECKING:
    from pathlib import Path

K1 = base64.b64encode(b"1" * 32).decode()
K2 = base64.b64encode(b"2" * 32).decode()


def config(providers: str, resources: str = "[secrets]", extra: str = "") -> str:
    return (
        "apiVersion: apiserver.config.k8s.io/v1\n"
        "kind: EncryptionConfiguration\n"
        f"{extra}"
        "resources:\n"
        f"- resources: {resources}\n"
        f"  providers: {providers}\n"
    )


AESGCM_THEN_IDENTITY = f"[{{aesgcm: {{keys: [{{name: key1, secret: {K1}}}]}}}}, {{identity: {{}}}}]"


@dataclass(frozen=True)
class ParseCase:
    name: str
    text: str
    error: str = ""  # a part of the ConfigError's message; "" means accepted
    writer: str = ""  # accepted: the name of the provider that writes secrets


PARSE_CASES = [
    ParseCase("aesgcm then identity", config(AESGCM_THEN_IDENTITY), writer='aesgcm key "key1"'),
    ParseCase(
        "identity then aesgcm",
        config(f"[{{identity: {{}}}}, {{aesgcm: {{keys: [{{name: a, secret: {K1}}}]}}}}]"),
        writer="identity",
    ),
    ParseCase("identity with no body", config("[{identity: }]"), writer="identity"),
    ParseCase(
        "two keys: the first writes",
        config(
            f"[{{aesgcm: {{keys: [{{name: new, secret: {K2}}}, {{name: old, secret: {K1}}}]}}}}]"
        ),
        writer='aesgcm key "new"',
    ),
    ParseCase(
        "wrong apiVersion",
        config(AESGCM_THEN_IDENTITY).replace("/v1", "/v2"),
        "apiVersion: must be",
    ),
    ParseCase(
        "wrong kind", config(AESGCM_THEN_IDENTITY).replace("kind: E", "kind: X"), "kind: must be"
    ),
    ParseCase(
        "unknown top-level field",
        config(AESGCM_THEN_IDENTITY, extra="foo: 1\n"),
        "foo: unknown field",
    ),
    ParseCase(
        "unknown field in a key",
        config(f"[{{aesgcm: {{keys: [{{name: a, secret: {K1}, size: 32}}]}}}}]"),
        "resources[0].providers[0].aesgcm.keys[0].size: unknown field",
    ),
    ParseCase(
        "unknown field in aesgcm",
        config(f"[{{aesgcm: {{keys: [{{name: a, secret: {K1}}}], cache: 1}}}}]"),
        "resources[0].providers[0].aesgcm.cache: unknown field",
    ),
    ParseCase(
        "unknown field in identity",
        config("[{identity: {x: 1}}]"),
        "providers[0].identity.x: unknown field",
    ),
    ParseCase(
        "key of 16 bytes",
        config(
            f"[{{aesgcm: {{keys: [{{name: a, secret: {base64.b64encode(b'1' * 16).decode()}}}]}}}}]"
        ),
        "keys[0].secret: must be 32 bytes once base64-decoded (AES-256), got 16",
    ),
    ParseCase(
        "bad base64",
        config("[{aesgcm: {keys: [{name: a, secret: 'not base64!'}]}}]"),
        "keys[0].secret: not valid base64",
    ),
    ParseCase(
        "missing secret", config("[{aesgcm: {keys: [{name: a}]}}]"), "keys[0].secret: required"
    ),
    ParseCase(
        "missing name",
        config(f"[{{aesgcm: {{keys: [{{secret: {K1}}}]}}}}]"),
        "keys[0].name: required",
    ),
    ParseCase(
        "name with a colon",
        config(f"[{{aesgcm: {{keys: [{{name: 'a:b', secret: {K1}}}]}}}}]"),
        "may not contain ':'",
    ),
    ParseCase(
        "duplicate key name",
        config(f"[{{aesgcm: {{keys: [{{name: a, secret: {K1}}}, {{name: a, secret: {K2}}}]}}}}]"),
        "keys[1].name: 'a' is used twice",
    ),
    ParseCase(
        "no keys", config("[{aesgcm: {keys: []}}]"), "aesgcm.keys: required, a non-empty list"
    ),
    ParseCase(
        "unsupported provider aescbc",
        config(f"[{{aescbc: {{keys: [{{name: a, secret: {K1}}}]}}}}]"),
        "providers[0].aescbc: provider not supported by kpy",
    ),
    ParseCase(
        "unsupported provider kms",
        config("[{kms: {name: x}}]"),
        "providers[0].kms: provider not supported",
    ),
    ParseCase("unknown provider", config("[{rot13: {}}]"), "providers[0].rot13: unknown provider"),
    ParseCase(
        "two providers in one item",
        config(f"[{{identity: {{}}, aesgcm: {{keys: [{{name: a, secret: {K1}}}]}}}}]"),
        "providers[0]: must name exactly one provider",
    ),
    ParseCase("no providers", config("[]"), "resources[0].providers: required"),
    ParseCase(
        "no resources",
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n",
        "resources: required",
    ),
    ParseCase(
        "resource listed twice",
        config(AESGCM_THEN_IDENTITY, resources="[secrets, secrets]"),
        "resources[0].resources[1]: 'secrets' is listed more than once",
    ),
    ParseCase("not YAML", "a: [", "not valid YAML"),
    ParseCase("not a mapping", "[1, 2]", "the document: must be a mapping"),
]


@pytest.mark.parametrize("case", PARSE_CASES, ids=lambda c: c.name)
def test_parse_config(case: ParseCase) -> None:
    if case.error:
        with pytest.raises(ConfigError) as raised:
            parse_config(case.text)
        assert case.error in str(raised.value), f"{case.name}: {raised.value}"
        return
    parsed = parse_config(case.text)
    assert parsed.transformer("secrets").writer.name == case.writer, case.name
    assert parsed.transformer("configmaps").writer.name == "identity", case.name


@dataclass(frozen=True)
class MatchCase:
    name: str
    pattern: str
    resource: str
    encrypted: bool


MATCH_CASES = [
    MatchCase("exact core", "secrets", "secrets", True),
    MatchCase("other core resource", "secrets", "configmaps", False),
    MatchCase("exact grouped", "deployments.apps", "deployments.apps", True),
    MatchCase("group wildcard", "*.apps", "deployments.apps", True),
    MatchCase("group wildcard, other group", "*.apps", "jobs.batch", False),
    MatchCase("core wildcard", "*.", "configmaps", True),
    MatchCase("core wildcard, grouped", "*.", "deployments.apps", False),
    MatchCase("everything", "*.*", "jobs.batch", True),
]


@pytest.mark.parametrize("case", MATCH_CASES, ids=lambda c: c.name)
def test_resource_patterns(case: MatchCase) -> None:
    parsed = parse_config(config(AESGCM_THEN_IDENTITY, resources=f"['{case.pattern}']"))
    assert parsed.encrypts(case.resource) == case.encrypted, case.name


def key(name: str, secret: bytes) -> AESGCMKey:
    return AESGCMKey(name, secret)


OLD = key("old", b"o" * 32)
NEW = key("new", b"n" * 32)
OTHER_SECRET_SAME_NAME = key("old", b"x" * 32)
SECRET_KEY = b"/registry/secrets/default/db"
OTHER_KEY = b"/registry/secrets/default/web"
DATA = b"\x0a\x02db password=hunter2"


def tamper(value: bytes) -> bytes:
    return value[:-1] + bytes([value[-1] ^ 1])


def relabel(value: bytes) -> bytes:
    """The value as if sealed under key name "new" (the prefix rewritten)."""
    return value.replace(b":old:", b":new:", 1)


@dataclass(frozen=True)
class RoundTrip:
    name: str
    writer: ProviderChain
    reader: ProviderChain
    change: str = ""  # tamper | move | relabel
    error: str = ""  # a part of the DecryptError; "" means DATA reads back
    prefix: bytes = AESGCM_PREFIX + b"old:"


ROUND_TRIPS = [
    RoundTrip("round trip", ProviderChain((OLD,)), ProviderChain((OLD,))),
    RoundTrip(
        "identity writes plaintext",
        ProviderChain((Identity(), OLD)),
        ProviderChain((Identity(),)),
        prefix=DATA,
    ),
    RoundTrip(
        "plaintext reads after encryption is turned on",
        ProviderChain((Identity(),)),
        ProviderChain((OLD, Identity())),
        prefix=DATA,
    ),
    RoundTrip(
        "plaintext without identity",
        ProviderChain((Identity(),)),
        ProviderChain((OLD,)),
        error="not encrypted and identity is not among the providers",
        prefix=DATA,
    ),
    RoundTrip(
        "an older key still reads after a new one is put first",
        ProviderChain((OLD,)),
        ProviderChain((NEW, OLD, Identity())),
    ),
    RoundTrip(
        "the first key writes",
        ProviderChain((NEW, OLD)),
        ProviderChain((OLD, NEW)),
        prefix=AESGCM_PREFIX + b"new:",
    ),
    RoundTrip(
        "a removed key",
        ProviderChain((OLD,)),
        ProviderChain((NEW, Identity())),
        error='sealed with aesgcm key "old", which is not configured',
    ),
    RoundTrip(
        "identity does not read ciphertext",
        ProviderChain((OLD,)),
        ProviderChain((Identity(),)),
        error='aesgcm key "old", which is not configured',
    ),
    RoundTrip(
        "wrong key under the same name",
        ProviderChain((OLD,)),
        ProviderChain((OTHER_SECRET_SAME_NAME,)),
        error='aesgcm key "old" does not authenticate it',
    ),
    RoundTrip(
        "tampered value",
        ProviderChain((OLD,)),
        ProviderChain((OLD,)),
        change="tamper",
        error="does not authenticate it",
    ),
    RoundTrip(
        "value moved to another etcd key",
        ProviderChain((OLD,)),
        ProviderChain((OLD,)),
        change="move",
        error="does not authenticate it",
    ),
    RoundTrip(
        "value relabelled with another key name",
        ProviderChain((OLD,)),
        ProviderChain((NEW, OLD)),
        change="relabel",
        error='aesgcm key "new" does not authenticate it',
    ),
]


@pytest.mark.parametrize("case", ROUND_TRIPS, ids=lambda c: c.name)
def test_transformer(case: RoundTrip) -> None:
    value = case.writer.to_storage(SECRET_KEY, DATA)
    assert value.startswith(case.prefix), f"{case.name}: {value[:40]!r}"
    if value.startswith(AESGCM_PREFIX):
        assert b"hunter2" not in value, case.name
    read_at = SECRET_KEY
    if case.change == "tamper":
        value = tamper(value)
    elif case.change == "move":
        read_at = OTHER_KEY
    elif case.change == "relabel":
        value = relabel(value)
    if case.error:
        with pytest.raises(DecryptError) as raised:
            case.reader.from_storage(read_at, value)
        assert case.error in str(raised.value), f"{case.name}: {raised.value}"
    else:
        assert case.reader.from_storage(read_at, value) == DATA, case.name


def test_every_write_has_its_own_nonce() -> None:
    chain = ProviderChain((OLD,))
    assert chain.to_storage(SECRET_KEY, DATA) != chain.to_storage(SECRET_KEY, DATA)


def test_unreadable_value_is_an_internal_error_naming_the_object() -> None:
    info = scheme.resolve("secrets")
    error = _undecryptable(info, SECRET_KEY, 'it was sealed with aesgcm key "old"')
    with pytest.raises(errors.Internal) as raised:
        decode(info, SECRET_KEY, Unreadable(b"k8s:enc:aesgcm:v1:old:xx", error), 5)
    message = str(raised.value)
    assert 'secrets "default/db": no configured key can decrypt it' in message
    assert "--encryption-provider-config" in message


def test_rendered_config_round_trips(tmp_path: Path) -> None:
    keys = [Key.generate("key2"), Key.generate("key1")]
    path = tmp_path / "encryption-config.yaml"
    write_private(path, render_config(keys))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = load_config(path)
    assert loaded.transformer("secrets").writer.name == 'aesgcm key "key2"'
    assert config_keys(path.read_text()) == (keys, ["secrets"])


def test_load_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "enc.yaml"
    path.write_text(config("[{rot13: {}}]"))
    with pytest.raises(ConfigError, match=r"enc\.yaml: resources\[0\]\.providers\[0\]\.rot13"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read the encryption config"):
        load_config(tmp_path / "missing.yaml")


@dataclass(frozen=True)
class KeyNameCase:
    name: str
    existing: tuple[str, ...]
    want: str


KEY_NAME_CASES = [
    KeyNameCase("first rotation", ("key1",), "key2"),
    KeyNameCase("after a gap", ("key3", "key1"), "key4"),
    KeyNameCase("names of the user's own", ("prod", "2024"), "key1"),
    KeyNameCase("mixed", ("prod", "key7"), "key8"),
]


@pytest.mark.parametrize("case", KEY_NAME_CASES, ids=lambda c: c.name)
def test_next_key_name(case: KeyNameCase) -> None:
    keys = [Key(n, K1) for n in case.existing]
    assert next_key_name(keys) == case.want, case.name


def test_api_server_flags_are_read_from_its_command_line() -> None:
    argv = ("python", "-m", "kpy.apiserver.main", "--etcd-servers", "127.0.0.1:1", "--port",
            "6443", "--encryption-provider-config=/c/enc.yaml")  # fmt: skip
    assert _flags(argv) == {
        "--etcd-servers": "127.0.0.1:1",
        "--port": "6443",
        "--encryption-provider-config": "/c/enc.yaml",
    }
