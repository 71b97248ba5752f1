"""ServiceAccount tokens as pure logic (kpy.auth.serviceaccount): the claims
an issued token carries, and what the authenticator makes of tokens that
are valid, expired, for another audience or issuer, signed by another key,
or naming objects that are gone, on an injected clock."""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kpy.api.core.v1 import Pod, Secret, ServiceAccount
from kpy.apiserver.serviceaccounts import TokenOptions
from kpy.auth.attributes import UserInfo
from kpy.auth.authentication import Chain, Credentials, TokenAuthenticator
from kpy.auth.serviceaccount import (
    DEFAULT_ISSUER,
    BoundObject,
    KeyFileError,
    PrivateKey,
    ServiceAccountTokenAuthenticator,
    TokenIssuer,
    key_id,
    load_signing_key,
    load_verification_keys,
    parse_user_name,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

ISSUER = "https://kpy.test"
T0 = 1_800_000_000.0
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SA_UID = "11111111-1111-1111-1111-111111111111"
POD_UID = "22222222-2222-2222-2222-222222222222"
SECRET_UID = "33333333-3333-3333-3333-333333333333"


def _object(message: type[Any], name: str, uid: str, deleted_at: float | None = None) -> Any:
    obj = message()
    obj.metadata.name, obj.metadata.namespace, obj.metadata.uid = name, "dev", uid
    if deleted_at is not None:
        obj.metadata.deletion_timestamp.seconds = int(deleted_at)
    return obj


@dataclass
class Objects:
    """A `ServiceAccountLookup` over dictionaries."""

    accounts: dict[str, ServiceAccount] = field(default_factory=dict)
    pods: dict[str, Pod] = field(default_factory=dict)
    secrets: dict[str, Secret] = field(default_factory=dict)

    def service_account(self, namespace: str, name: str) -> ServiceAccount | None:
        return self.accounts.get(name) if namespace == "dev" else None

    def pod(self, namespace: str, name: str) -> Pod | None:
        return self.pods.get(name) if namespace == "dev" else None

    def secret(self, namespace: str, name: str) -> Secret | None:
        return self.secrets.get(name) if namespace == "dev" else None


def _world() -> Objects:
    return Objects(
        {"robot": _object(ServiceAccount, "robot", SA_UID)},
        {"web": _object(Pod, "web", POD_UID)},
        {"creds": _object(Secret, "creds", SECRET_UID)},
    )


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header = jwt.get_unverified_header(token)
    return header, jwt.decode(token, options={"verify_signature": False})


ISSUED: list[tuple[str, PrivateKey, BoundObject | None, str, dict[str, Any]]] = [
    (
        "EC key, unbound: ES256",
        EC_KEY,
        None,
        "ES256",
        {"namespace": "dev", "serviceaccount": {"name": "robot", "uid": SA_UID}},
    ),
    (
        "RSA key, bound to a pod: RS256",
        RSA_KEY,
        BoundObject("Pod", "web", POD_UID),
        "RS256",
        {
            "namespace": "dev",
            "serviceaccount": {"name": "robot", "uid": SA_UID},
            "pod": {"name": "web", "uid": POD_UID},
        },
    ),
    (
        "bound to a secret",
        EC_KEY,
        BoundObject("Secret", "creds", SECRET_UID),
        "ES256",
        {
            "namespace": "dev",
            "serviceaccount": {"name": "robot", "uid": SA_UID},
            "secret": {"name": "creds", "uid": SECRET_UID},
        },
    ),
]


def test_issued_token_carries_kubernetes_claims() -> None:
    for name, key, bound, alg, private in ISSUED:
        _check_issued(name, key, bound, alg, private)


def _check_issued(
    name: str, key: PrivateKey, bound: BoundObject | None, alg: str, private: dict[str, Any]
) -> None:
    issuer = TokenIssuer(ISSUER, key, clock=lambda: T0)
    issued = issuer.issue(
        namespace="dev",
        name="robot",
        uid=SA_UID,
        audiences=["api", "vault"],
        expiration_seconds=3600,
        bound=bound,
    )
    header, claims = _claims(issued.token)
    assert header["alg"] == alg, name
    assert header["kid"] == key_id(key.public_key()), name
    assert claims["iss"] == ISSUER, name
    assert claims["sub"] == "system:serviceaccount:dev:robot", name
    assert claims["aud"] == ["api", "vault"], name
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (T0, T0, T0 + 3600), name
    assert claims["kubernetes.io"] == private, name
    assert claims["jti"], name
    assert issued.expires == T0 + 3600, name


def test_key_id_is_kubernetes_sha256_of_the_public_der() -> None:
    der = EC_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import hashlib

    expected = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")
    assert key_id(EC_KEY.public_key()) == expected


# -- the authenticator ---------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    # changes the world, the clock, or makes the token, before authenticating
    token: Callable[[TokenIssuer], str] = lambda issuer: _issue(issuer)
    world: Callable[[Objects], None] = lambda objects: None
    advance: float = 0.0
    audiences: tuple[str, ...] = ("api",)
    keys: tuple[PrivateKey, ...] = (EC_KEY,)
    # the user, None when refused; `logged`: a word of the logged reason
    user: UserInfo | None = None
    logged: str = ""


ROBOT = UserInfo(
    "system:serviceaccount:dev:robot",
    ("system:serviceaccounts", "system:serviceaccounts:dev"),
    uid=SA_UID,
)


def _issue(
    issuer: TokenIssuer,
    audiences: tuple[str, ...] = ("api",),
    bound: BoundObject | None = None,
    uid: str = SA_UID,
) -> str:
    return issuer.issue(
        namespace="dev",
        name="robot",
        uid=uid,
        audiences=audiences,
        expiration_seconds=3600,
        bound=bound,
    ).token


def _forged_none(issuer: TokenIssuer) -> str:
    """The claims of a real token, re-signed with `alg: none`."""
    _, claims = _claims(_issue(issuer))

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


def _pod_bound(issuer: TokenIssuer) -> str:
    return _issue(issuer, bound=BoundObject("Pod", "web", POD_UID))


def _remove(kind: str, name: str) -> Callable[[Objects], None]:
    return lambda objects: getattr(objects, kind).pop(name)


def _replace(kind: str, name: str, message: type[Any], **kwargs: Any) -> Callable[[Objects], None]:
    def change(objects: Objects) -> None:
        getattr(objects, kind)[name] = _object(message, name, **kwargs)

    return change


CASES = [
    Case("a valid token is its service account", user=ROBOT),
    Case("valid one second before it expires", advance=3599, user=ROBOT),
    Case("expired at exp", advance=3600, logged="expired"),
    Case("long expired", advance=10 * 86400, logged="expired"),
    Case(
        "another audience than the server's",
        token=lambda i: _issue(i, audiences=("vault",)),
        logged="audiences",
    ),
    Case(
        "one of several audiences is the server's",
        token=lambda i: _issue(i, audiences=("vault", "api")),
        user=ROBOT,
    ),
    Case(
        "another issuer's token: no opinion, nothing logged",
        token=lambda i: _issue(TokenIssuer("https://elsewhere", EC_KEY, clock=lambda: T0)),
    ),
    Case(
        "signed by a key the server does not trust",
        token=lambda i: _issue(TokenIssuer(ISSUER, OTHER_EC_KEY, clock=lambda: T0)),
        logged="not signed",
    ),
    Case(
        "an old key still in the verification set (rotation)",
        token=lambda i: _issue(TokenIssuer(ISSUER, OTHER_EC_KEY, clock=lambda: T0)),
        keys=(EC_KEY, OTHER_EC_KEY),
        user=ROBOT,
    ),
    Case(
        "an RSA key among EC keys",
        token=lambda i: _issue(TokenIssuer(ISSUER, RSA_KEY, clock=lambda: T0)),
        keys=(EC_KEY, RSA_KEY),
        user=ROBOT,
    ),
    Case("alg none is refused", token=_forged_none, logged="does not verify"),
    Case(
        "issued in the future beyond a minute's leeway",
        token=lambda i: _issue(TokenIssuer(ISSUER, EC_KEY, clock=lambda: T0 + 120)),
        logged="not valid before",
    ),
    Case(
        "issued within a minute's clock skew",
        token=lambda i: _issue(TokenIssuer(ISSUER, EC_KEY, clock=lambda: T0 + 30)),
        user=ROBOT,
    ),
    Case("its service account deleted", world=_remove("accounts", "robot"), logged="not exist"),
    Case(
        "its service account created again (another uid)",
        world=_replace("accounts", "robot", ServiceAccount, uid="another"),
        logged="uid",
    ),
    Case(
        "its service account deleted more than a minute ago, still terminating",
        world=_replace("accounts", "robot", ServiceAccount, uid=SA_UID, deleted_at=T0 - 61),
        logged="being deleted",
    ),
    Case(
        "its service account terminating since less than a minute",
        world=_replace("accounts", "robot", ServiceAccount, uid=SA_UID, deleted_at=T0 - 30),
        user=ROBOT,
    ),
    Case("bound to a pod that exists", token=_pod_bound, user=ROBOT),
    Case(
        "bound to a pod that is gone",
        token=_pod_bound,
        world=_remove("pods", "web"),
        logged="Pod dev/web",
    ),
    Case(
        "bound to a pod created again under its name",
        token=_pod_bound,
        world=_replace("pods", "web", Pod, uid="another"),
        logged="uid",
    ),
    Case(
        "bound to a secret that is gone",
        token=lambda i: _issue(i, bound=BoundObject("Secret", "creds", SECRET_UID)),
        world=_remove("secrets", "creds"),
        logged="Secret dev/creds",
    ),
    Case("a static token is not a JWT: no opinion", token=lambda i: "alice-token"),
]


def test_authenticator(caplog: pytest.LogCaptureFixture) -> None:
    for case in CASES:
        caplog.clear()
        _check_case(case, caplog)


def _check_case(case: Case, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    issuer = TokenIssuer(ISSUER, EC_KEY, clock=clock)
    token = case.token(issuer)
    objects = _world()
    case.world(objects)
    authenticator = ServiceAccountTokenAuthenticator(
        [ISSUER], [k.public_key() for k in case.keys], case.audiences, objects, clock=clock
    )
    clock.now += case.advance
    with caplog.at_level(logging.INFO, logger="kpy.auth"):
        got = authenticator.authenticate(Credentials(token=token))
    assert got == case.user, case.name
    refusals = [r for r in caplog.records if r.getMessage() == "service account token refused"]
    if case.logged:
        assert len(refusals) == 1, case.name
        assert case.logged in refusals[0].reason, (case.name, refusals[0].reason)  # type: ignore[attr-defined]
        assert token not in caplog.text, f"{case.name}: the token was logged"
    else:
        assert not refusals, case.name


def test_a_remembered_token_is_still_checked_for_expiry_and_existence() -> None:
    clock = Clock()
    token = _issue(TokenIssuer(ISSUER, EC_KEY, clock=clock))
    objects = _world()
    authenticator = ServiceAccountTokenAuthenticator(
        [ISSUER], [EC_KEY.public_key()], ["api"], objects, clock=clock
    )
    assert authenticator.authenticate(Credentials(token=token)) == ROBOT
    objects.accounts.pop("robot")
    assert authenticator.authenticate(Credentials(token=token)) is None
    objects.accounts["robot"] = _object(ServiceAccount, "robot", SA_UID)
    assert authenticator.authenticate(Credentials(token=token)) == ROBOT
    clock.now += 3600
    assert authenticator.authenticate(Credentials(token=token)) is None


def test_chain_x509_static_then_service_account_tokens() -> None:
    clock = Clock()
    token = _issue(TokenIssuer(ISSUER, EC_KEY, clock=clock))
    accounts = ServiceAccountTokenAuthenticator(
        [ISSUER], [EC_KEY.public_key()], ["api"], _world(), clock=clock
    )
    chain = Chain([TokenAuthenticator({"alice-token": UserInfo("alice", ())}), accounts])
    user = chain.authenticate(Credentials(token=token))
    assert user.name == "system:serviceaccount:dev:robot"
    assert user.groups == (
        "system:serviceaccounts",
        "system:serviceaccounts:dev",
        "system:authenticated",
    )
    assert chain.authenticate(Credentials(token="alice-token")).name == "alice"


USER_NAMES = [
    ("system:serviceaccount:dev:robot", ("dev", "robot")),
    ("system:serviceaccount:dev", None),
    ("system:serviceaccount::robot", None),
    ("system:serviceaccount:dev:a:b", None),
    ("jane", None),
]


def test_parse_user_name() -> None:
    for user, expected in USER_NAMES:
        assert parse_user_name(user) == expected, user


# -- key files and the flags' options ---------------------------------------------------------


def _pem(key: Any, private: bool) -> bytes:
    if private:
        return bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


KEY_FILES: list[tuple[str, bytes, int | str]] = [
    ("a public key", _pem(EC_KEY, False), 1),
    ("a private key's public half", _pem(EC_KEY, True), 1),
    ("two keys in one file", _pem(EC_KEY, False) + _pem(RSA_KEY, False), 2),
    ("no PEM at all", b"hello", "holds no PEM public or private key"),
    (
        "a broken PEM block",
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        "does not parse",
    ),
]


def test_load_verification_keys(tmp_path: Path) -> None:
    path = tmp_path / "sa.pub"
    for name, data, expected in KEY_FILES:
        path.write_bytes(data)
        if isinstance(expected, int):
            assert len(load_verification_keys([path])) == expected, name
            continue
        with pytest.raises(KeyFileError) as failed:
            load_verification_keys([path])
        assert expected in str(failed.value), name
        assert str(path) in str(failed.value), name


def test_signing_key_must_be_a_private_key(tmp_path: Path) -> None:
    path = tmp_path / "sa.key"
    path.write_bytes(_pem(EC_KEY, False))
    with pytest.raises(KeyFileError, match="no unencrypted PEM private key"):
        load_signing_key(path)
    with pytest.raises(KeyFileError, match="cannot read"):
        load_signing_key(tmp_path / "missing.key")
    path.write_bytes(_pem(RSA_KEY, True))
    assert isinstance(load_signing_key(path), rsa.RSAPrivateKey)


def test_options_default_as_kube_apiserver(tmp_path: Path) -> None:
    key = tmp_path / "sa.key"
    key.write_bytes(_pem(EC_KEY, True))
    options = TokenOptions.load(signing_key_file=key)
    assert options.issuers == (DEFAULT_ISSUER,)
    assert options.audiences == (DEFAULT_ISSUER,)  # --api-audiences: the issuer
    assert [key_id(k) for k in options.keys] == [key_id(EC_KEY.public_key())]  # verifies its own
    options = TokenOptions.load(
        issuers=["https://a", "https://b"], key_files=[key], audiences=["x", "y"]
    )
    assert (options.issuers, options.audiences, options.signing_key) == (
        ("https://a", "https://b"),
        ("x", "y"),
        None,
    )
    with pytest.raises(ValueError, match="--service-account-signing-key-file: cannot read"):
        TokenOptions.load(signing_key_file=tmp_path / "nope")
