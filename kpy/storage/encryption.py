"""Encryption at rest: Kubernetes' EncryptionConfiguration and the value
transformers it describes.

A `Transformer` turns the encoding of an object into the value etcd stores
(`to_storage`) and back (`from_storage`). `ProviderChain` is the one made of
an EncryptionConfiguration's providers for a resource, as Kubernetes does:
- the first provider writes; every provider reads, so values written
  before encryption was turned on (identity) and values sealed with an
  older key still read after a new key is put first;
- `aesgcm` seals with AES-GCM (a 32-byte key, a random 12-byte nonce per
  write): the value is `k8s:enc:aesgcm:v1:<keyname>:` + nonce + ciphertext,
  authenticated with the key name and the etcd key, so that a value copied
  under another key (or to another key name) does not decrypt;
- `identity` stores the encoding as it is.
A value no provider reads raises `DecryptError` with the reason; the store
turns it into an Internal error naming the object.

`load_config` / `parse_config` read the YAML file of
`kpy-apiserver --encryption-provider-config` strictly: an unknown field, a
key of the wrong length, bad base64 or an unsupported provider is a
`ConfigError` naming the field and the reason, so that a mistyped config is
refused at start rather than silently leaving Secrets in plaintext.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"
ENCRYPTED = b"k8s:enc:"
"""Every encrypted value starts with this (Kubernetes' marker)."""
AESGCM_PREFIX = b"k8s:enc:aesgcm:v1:"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12


class DecryptError(Exception):
    """No configured provider reads a stored value; the message says why."""


class ConfigError(ValueError):
    """The encryption config is refused; the message names the field."""


class Transformer(Protocol):
    """What the store needs of a transformer: `key` is the etcd key."""

    def to_storage(self, key: bytes, data: bytes) -> bytes: ...

    def from_storage(self, key: bytes, value: bytes) -> bytes:
        """The data `value` was made from; DecryptError when unreadable."""
        ...


class Provider(Protocol):
    """One provider of a chain. `prefix` marks the values it wrote; `seal`
    writes, `open` reads a value that starts with `prefix`."""

    name: str  # for messages: "aesgcm key \"key1\"", "identity"
    prefix: bytes

    def seal(self, key: bytes, data: bytes) -> bytes: ...

    def open(self, key: bytes, value: bytes) -> bytes: ...


class Identity:
    """The `identity` provider: values are stored as they are."""

    name = "identity"
    prefix = b""

    def seal(self, key: bytes, data: bytes) -> bytes:
        return data

    def open(self, key: bytes, value: bytes) -> bytes:
        if value.startswith(ENCRYPTED):
            raise DecryptError("the value is encrypted and identity does not decrypt")
        return value


class AESGCMKey:
    """One key of an `aesgcm` provider. `nonces` gives each write's nonce
    (random; a test may inject its own)."""

    def __init__(
        self, key_name: str, secret: bytes, *, nonces: Callable[[int], bytes] = os.urandom
    ) -> None:
        if len(secret) != KEY_BYTES:
            raise ValueError(f"an aesgcm key must be {KEY_BYTES} bytes, got {len(secret)}")
        self.key_name = key_name
        self.name = f'aesgcm key "{key_name}"'
        self.prefix = AESGCM_PREFIX + key_name.encode() + b":"
        self._aead = AESGCM(secret)
        self._nonces = nonces

    def _associated(self, key: bytes) -> bytes:
        # The key name and the etcd key: a value moved to another etcd key,
        # or relabelled with another key name, fails authentication.
        return self.key_name.encode() + b"\0" + key

    def seal(self, key: bytes, data: bytes) -> bytes:
        nonce = self._nonces(NONCE_BYTES)
        return self.prefix + nonce + self._aead.encrypt(nonce, data, self._associated(key))

    def open(self, key: bytes, value: bytes) -> bytes:
        body = value[len(self.prefix) :]
        nonce, sealed = body[:NONCE_BYTES], body[NONCE_BYTES:]
        if len(nonce) < NONCE_BYTES:
            raise DecryptError(f"the value is too short to have been sealed by {self.name}")
        try:
            return self._aead.decrypt(nonce, sealed, self._associated(key))
        except InvalidTag:
            raise DecryptError(
                f"{self.name} does not authenticate it (tampered with, or written "
                "under another etcd key)"
            ) from None


@dataclass(frozen=True, slots=True)
class ProviderChain:
    """The providers of one resource, in order; see the module docstring."""

    providers: tuple[Provider, ...]

    def __post_init__(self) -> None:
        if not self.providers:
            raise ValueError("a provider chain needs at least one provider")

    @property
    def writer(self) -> Provider:
        return self.providers[0]

    def to_storage(self, key: bytes, data: bytes) -> bytes:
        return self.writer.seal(key, data)

    def written_by_writer(self, value: bytes) -> bool:
        """Whether `value` was sealed by the current writer (a rotation's
        rewrite leaves it alone)."""
        prefix = self.writer.prefix
        return value.startswith(prefix) if prefix else not value.startswith(ENCRYPTED)

    def from_storage(self, key: bytes, value: bytes) -> bytes:
        for provider in self.providers:
            if provider.prefix and value.startswith(provider.prefix):
                return provider.open(key, value)
        if value.startswith(AESGCM_PREFIX):
            name = value[len(AESGCM_PREFIX) :].split(b":", 1)[0].decode(errors="replace")
            raise DecryptError(f'it was sealed with aesgcm key "{name}", which is not configured')
        if value.startswith(ENCRYPTED):
            raise DecryptError("it was sealed by a provider that is not configured")
        for provider in self.providers:
            if not provider.prefix:  # identity reads what no key claims
                return provider.open(key, value)
        raise DecryptError("it is not encrypted and identity is not among the providers")


IDENTITY = ProviderChain((Identity(),))


@dataclass(frozen=True, slots=True)
class EncryptionConfig:
    """The transformer of each resource, as the config lists them;
    `transformer` gives identity for any resource it does not list."""

    rules: tuple[tuple[str, ProviderChain], ...] = ()
    path: str = ""

    def transformer(self, group_resource: str) -> ProviderChain:
        """The chain for `group_resource` ("secrets", "deployments.apps"):
        the first rule that matches it, exactly or by wildcard ("*.apps",
        "*." for the core group, "*.*")."""
        _plural, _, group = group_resource.partition(".")
        for pattern, chain in self.rules:
            p_plural, _, p_group = pattern.partition(".")
            if pattern == group_resource or (p_plural == "*" and p_group in ("*", group)):
                return chain
        return IDENTITY

    def encrypts(self, group_resource: str) -> bool:
        return not isinstance(self.transformer(group_resource).writer, Identity)


# -- the config file ---------------------------------------------------------------


def load_config(path: Path) -> EncryptionConfig:
    """The config in the file at `path`; ConfigError (naming the file) when
    it cannot be read or is refused."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read the encryption config {path}: {e.strerror}") from None
    try:
        config = parse_config(text)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return EncryptionConfig(config.rules, str(path))


def parse_config(text: str) -> EncryptionConfig:
    """The EncryptionConfiguration in `text` (YAML or JSON); ConfigError
    naming the first field refused and why."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML: {e}") from None
    top = _fields(doc, "", {"apiVersion", "kind", "resources"})
    if top.get("apiVersion") != API_VERSION:
        raise ConfigError(f'apiVersion: must be "{API_VERSION}", got {top.get("apiVersion")!r}')
    if top.get("kind") != KIND:
        raise ConfigError(f'kind: must be "{KIND}", got {top.get("kind")!r}')
    rules: list[tuple[str, ProviderChain]] = []
    seen: set[str] = set()
    for i, entry in enumerate(_list(top.get("resources"), "resources")):
        where = f"resources[{i}]"
        fields = _fields(entry, where, {"resources", "providers"})
        names = _list(fields.get("resources"), f"{where}.resources")
        chain = _chain(_list(fields.get("providers"), f"{where}.providers"), f"{where}.providers")
        for j, name in enumerate(names):
            resource = _resource_name(name, f"{where}.resources[{j}]")
            if resource in seen:
                raise ConfigError(
                    f"{where}.resources[{j}]: {resource!r} is listed more than once; "
                    "list each resource once"
                )
            seen.add(resource)
            rules.append((resource, chain))
    return EncryptionConfig(tuple(rules))


_PROVIDERS = {"aesgcm", "identity"}
_UNSUPPORTED = {"aescbc", "secretbox", "kms"}


def _chain(items: Sequence[Any], where: str) -> ProviderChain:
    providers: list[Provider] = []
    key_names: set[str] = set()
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(f"{at}: must name exactly one provider (aesgcm or identity)")
        ((kind, body),) = item.items()
        if kind in _UNSUPPORTED:
            raise ConfigError(
                f"{at}.{kind}: provider not supported by kpy; use aesgcm (or identity)"
            )
        if kind not in _PROVIDERS:
            raise ConfigError(f"{at}.{kind}: unknown provider; use aesgcm or identity")
        if kind == "identity":
            _fields(body if body is not None else {}, f"{at}.identity", set())
            providers.append(Identity())
            continue
        keys = _list(_fields(body, f"{at}.aesgcm", {"keys"}).get("keys"), f"{at}.aesgcm.keys")
        for j, key in enumerate(keys):
            provider = _aesgcm_key(key, f"{at}.aesgcm.keys[{j}]")
            if provider.key_name in key_names:
                raise ConfigError(
                    f"{at}.aesgcm.keys[{j}].name: {provider.key_name!r} is used twice; "
                    "give every key its own name"
                )
            key_names.add(provider.key_name)
            providers.append(provider)
    return ProviderChain(tuple(providers))


def _aesgcm_key(item: Any, at: str) -> AESGCMKey:
    fields = _fields(item, at, {"name", "secret"})
    name, secret = fields.get("name"), fields.get("secret")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{at}.name: required, a non-empty string")
    if ":" in name:
        raise ConfigError(f"{at}.name: {name!r} may not contain ':'")
    if not isinstance(secret, str) or not secret:
        raise ConfigError(f"{at}.secret: required, {KEY_BYTES} random bytes in base64")
    try:
        raw = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            f"{at}.secret: not valid base64; make one with `head -c {KEY_BYTES} /dev/urandom "
            "| base64`"
        ) from None
    if len(raw) != KEY_BYTES:
        raise ConfigError(
            f"{at}.secret: must be {KEY_BYTES} bytes once base64-decoded (AES-256), got {len(raw)}"
        )
    return AESGCMKey(name, raw)


def _resource_name(name: Any, at: str) -> str:
    if not isinstance(name, str) or not name or name != name.strip().lower():
        raise ConfigError(f'{at}: must be a lower-case resource name such as "secrets"')
    return name


def _fields(value: Any, where: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where or 'the document'}: must be a mapping")
    for name in value:
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            field = f"{where}.{name}" if where else str(name)
            raise ConfigError(f"{field}: unknown field (known fields: {known})")
    return value


def _list(value: Any, where: str) -> Sequence[Any]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: required, a non-empty list")
    return value


# -- writing one -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Key:
    """An aesgcm key as the config file holds it."""

    name: str
    secret: str  # base64

    @classmethod
    def generate(cls, name: str) -> Key:
        return cls(name, base64.b64encode(os.urandom(KEY_BYTES)).decode())


def render_config(keys: Sequence[Key], resources: Sequence[str] = ("secrets",)) -> str:
    """An EncryptionConfiguration sealing `resources` with `keys[0]`,
    reading with every key and with identity (values written before)."""
    doc = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "resources": [
            {
                "resources": list(resources),
                "providers": [
                    {"aesgcm": {"keys": [{"name": k.name, "secret": k.secret} for k in keys]}},
                    {"identity": {}},
                ],
            }
        ],
    }
    return yaml.safe_dump(doc, sort_keys=False)


def config_keys(text: str) -> tuple[list[Key], list[str]]:
    """The aesgcm keys (in order) and the resources of a config that
    `render_config` wrote (one rule); ConfigError otherwise."""
    parse_config(text)  # refuse what the API server would refuse
    doc = yaml.safe_load(text)
    rules = doc["resources"]
    if len(rules) != 1:
        raise ConfigError("resources: kpy rotates configs of one rule only; edit it by hand")
    keys = [
        Key(k["name"], k["secret"])
        for p in rules[0]["providers"]
        if "aesgcm" in p
        for k in p["aesgcm"]["keys"]
    ]
    return keys, list(rules[0]["resources"])


def write_private(path: Path, text: str) -> None:
    """Writes `text` to `path` readable by its owner only (0600), replacing
    it atomically: a reader sees the old file or the new, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
