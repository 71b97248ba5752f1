"""ServiceAccount tokens: signed, audience- and time-bound JWTs, issued and
authenticated as Kubernetes' (pkg/serviceaccount;
<https://kubernetes.io/docs/reference/access-authn-authz/service-accounts-admin/>).

Contract:
- `TokenIssuer.issue` signs a token with the API server's private key
  (`--service-account-signing-key-file`): ES256 for an EC P-256 key (ES384,
  ES512 for P-384, P-521), RS256 for RSA, as Kubernetes picks. Claims are
  Kubernetes': `iss`, `sub` (`system:serviceaccount:<ns>:<name>`), `aud`
  (a list), `exp`, `iat`, `nbf`, `jti`, and `kubernetes.io` with
  `namespace`, `serviceaccount {name, uid}` and, for a bound token, `pod
  {name, uid}` or `secret {name, uid}`. The header's `kid` names the key
  (base64url of the SHA-256 of its public key's DER, as Kubernetes).
- `ServiceAccountTokenAuthenticator.authenticate` knows a bearer token that
  is a JWT naming one of its issuers (anything else: None, no opinion, so
  the next authenticator may know it) and, when it is valid, returns the
  user `system:serviceaccount:<ns>:<name>` (uid the ServiceAccount's) in
  `system:serviceaccounts` and `system:serviceaccounts:<ns>`. Valid means:
  signed by one of the verification keys (`--service-account-key-file`),
  an audience among the server's (`--api-audiences`), not expired at the
  injected clock's time (and not before `nbf`, with a minute's leeway for
  clocks that differ between API servers), and its ServiceAccount (and the
  Pod or Secret it is bound to) still exists with the uid in the token and
  was not deleted more than a minute ago (Kubernetes' grace). An invalid
  token authenticates no one: the reason is logged (never the token) and
  the chain answers Unauthorized.
- Existence is read through `ServiceAccountLookup`: the API server answers
  from its watch caches, never from etcd per request.
- Signature checks are remembered per token (at most 4,096), so a client
  sending the same token again costs a dictionary lookup, the time and
  existence checks, not another ECDSA verification.

Nothing here reads the network; `load_signing_key` and
`load_verification_keys` are the functions that read files.

PyJWT (with `cryptography`, already used for the PKI) does the JOSE part:
the compact encoding and ES256's raw r||s signatures are where a
hand-written JWT goes wrong, and PyJWT refuses `alg: none` and any
algorithm other than the one a key may verify.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kpy.auth.attributes import UserInfo

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from kpy.api.core.v1 import Pod, Secret, ServiceAccount
    from kpy.auth.authentication import Credentials

__all__ = [
    "DEFAULT_EXPIRATION_SECONDS",
    "DEFAULT_ISSUER",
    "MAX_EXPIRATION_SECONDS",
    "MIN_EXPIRATION_SECONDS",
    "SERVICE_ACCOUNTS_GROUP",
    "SERVICE_ACCOUNT_USER_PREFIX",
    "BoundObject",
    "IssuedToken",
    "KeyFileError",
    "PrivateKey",
    "PublicKey",
    "ServiceAccountLookup",
    "ServiceAccountTokenAuthenticator",
    "TokenIssuer",
    "TokenRefused",
    "groups_of",
    "key_id",
    "load_signing_key",
    "load_verification_keys",
    "parse_user_name",
    "user_name",
]

log = logging.getLogger("kpy.auth")

SERVICE_ACCOUNT_USER_PREFIX: Final = "system:serviceaccount:"
SERVICE_ACCOUNTS_GROUP: Final = "system:serviceaccounts"
#: --service-account-issuer's default (kubeadm's value).
DEFAULT_ISSUER: Final = "https://kubernetes.default.svc.cluster.local"
#: TokenRequest's bounds: at least 10 minutes, 1 hour by default, at most
#: 48 hours (--service-account-max-token-expiration's role).
MIN_EXPIRATION_SECONDS: Final = 600
DEFAULT_EXPIRATION_SECONDS: Final = 3600
MAX_EXPIRATION_SECONDS: Final = 48 * 3600
_CLAIMS: Final = "kubernetes.io"
# Clocks of API servers differ a little: a token is taken up to a minute
# before its nbf, and a deleted object's tokens die a minute after (as Kubernetes).
_LEEWAY: Final = 60
_REMEMBERED: Final = 4096

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def user_name(namespace: str, name: str) -> str:
    """`system:serviceaccount:<namespace>:<name>`."""
    return f"{SERVICE_ACCOUNT_USER_PREFIX}{namespace}:{name}"


def parse_user_name(user: str) -> tuple[str, str] | None:
    """(namespace, name) of a ServiceAccount's user name, or None."""
    if not user.startswith(SERVICE_ACCOUNT_USER_PREFIX):
        return None
    namespace, sep, name = user[len(SERVICE_ACCOUNT_USER_PREFIX) :].partition(":")
    if not sep or not namespace or not name or ":" in name:
        return None
    return namespace, name


def groups_of(namespace: str) -> tuple[str, str]:
    """The groups every ServiceAccount of `namespace` is in."""
    return SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{namespace}"


# -- keys ------------------------------------------------------------------------------


class KeyFileError(ValueError):
    """A key file the server cannot use; the message names the file and why."""


def load_signing_key(path: str | Path) -> PrivateKey:
    """The PEM private key (EC or RSA) at `path`; KeyFileError otherwise."""
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise KeyFileError(
            f"{path} holds no unencrypted PEM private key ({e}); give the sa.key that "
            "kpy up (or `openssl ecparam -genkey -name prime256v1 -noout`) wrote"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise KeyFileError(f"{path}: a {type(key).__name__} cannot sign tokens; use EC or RSA")
    _algorithm(key.public_key(), str(path))
    return key


def load_verification_keys(paths: Iterable[str | Path]) -> list[PublicKey]:
    """Every public key of the PEM files at `paths`: public keys, and the
    public halves of private keys (a file may hold several, as Kubernetes'
    --service-account-key-file); KeyFileError naming a file without one."""
    keys: list[PublicKey] = []
    for path in paths:
        found = _public_keys(_read(path), str(path))
        if not found:
            raise KeyFileError(
                f"{path} holds no PEM public or private key (EC or RSA); give the sa.pub "
                "that kpy up wrote, or the signing key itself"
            )
        keys.extend(found)
    return keys


def _read(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise KeyFileError(f"cannot read {path}: {e.strerror}") from None


def _public_keys(data: bytes, source: str) -> list[PublicKey]:
    keys: list[PublicKey] = []
    for block in _pem_blocks(data):
        key: Any
        try:
            if b"PRIVATE KEY-----" in block.split(b"\n", 1)[0]:
                key = serialization.load_pem_private_key(block, password=None).public_key()
            elif b"PUBLIC KEY-----" in block.split(b"\n", 1)[0]:
                key = serialization.load_pem_public_key(block)
            else:
                continue  # certificates and the like verify nothing here
        except (ValueError, TypeError) as e:
            raise KeyFileError(f"{source}: a PEM block does not parse: {e}") from None
        if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise KeyFileError(f"{source}: a {type(key).__name__} verifies no tokens")
        _algorithm(key, source)
        keys.append(key)
    return keys


def _pem_blocks(data: bytes) -> list[bytes]:
    blocks, current = [], []
    for line in data.splitlines():
        if line.startswith(b"-----BEGIN"):
            current = [line]
        elif current:
            current.append(line)
            if line.startswith(b"-----END"):
                blocks.append(b"\n".join(current) + b"\n")
                current = []
    return blocks


def _algorithm(key: PublicKey, source: str = "the key") -> str:
    """The JWS algorithm a key signs with (Kubernetes' choice)."""
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    by_curve = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
    found = by_curve.get(key.curve.name)
    if found is None:
        raise KeyFileError(f"{source}: curve {key.curve.name} is not one of P-256, P-384, P-521")
    return found


def key_id(key: PublicKey) -> str:
    """The `kid` of tokens `key` verifies: base64url (unpadded) of the
    SHA-256 of its DER SubjectPublicKeyInfo, as Kubernetes computes it."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


# -- issuing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BoundObject:
    """The object a token is bound to: `kind` Pod or Secret."""

    kind: str
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A signed token and when it expires (seconds since the epoch)."""

    token: str
    expires: int


class TokenIssuer:
    """Signs ServiceAccount tokens as `issuer` with `key`; `clock` gives the
    time in seconds since the epoch (injected for tests)."""

    def __init__(
        self, issuer: str, key: PrivateKey, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.issuer = issuer
        self._key = key
        self._algorithm = _algorithm(key.public_key())
        self._kid = key_id(key.public_key())
        self._clock = clock

    def issue(
        self,
        *,
        namespace: str,
        name: str,
        uid: str,
        audiences: Sequence[str],
        expiration_seconds: int,
        bound: BoundObject | None = None,
    ) -> IssuedToken:
        """A token for ServiceAccount `namespace/name` (its `uid`), valid for
        `audiences` from now for `expiration_seconds`, bound to `bound`."""
        now = int(self._clock())
        private: dict[str, Any] = {
            "namespace": namespace,
            "serviceaccount": {"name": name, "uid": uid},
        }
        if bound is not None:
            private[bound.kind.lower()] = {"name": bound.name, "uid": bound.uid}
        claims = {
            "iss": self.issuer,
            "sub": user_name(namespace, name),
            "aud": list(audiences),
            "exp": now + expiration_seconds,
            "iat": now,
            "nbf": now,
            "jti": str(uuid.uuid4()),
            _CLAIMS: private,
        }
        token = jwt.encode(claims, self._key, algorithm=self._algorithm, headers={"kid": self._kid})
        return IssuedToken(token, now + expiration_seconds)


# -- authenticating --------------------------------------------------------------------


class ServiceAccountLookup(Protocol):
    """Where the authenticator finds the objects a token names (the API
    server's watch caches); None when there is no such object."""

    def service_account(self, namespace: str, name: str) -> ServiceAccount | None: ...

    def pod(self, namespace: str, name: str) -> Pod | None: ...

    def secret(self, namespace: str, name: str) -> Secret | None: ...


class TokenRefused(Exception):
    """Why a token of ours is not valid (logged, never told to the caller)."""


@dataclass(frozen=True, slots=True)
class _Verified:
    """What a token's signature vouches for."""

    claims: dict[str, Any]
    namespace: str
    name: str
    uid: str


class ServiceAccountTokenAuthenticator:
    """See the module contract. `issuers`: the tokens it knows (the first
    --service-account-issuer and any more given); `keys`: the verification
    keys; `audiences`: --api-audiences; `clock` seconds since the epoch."""

    def __init__(
        self,
        issuers: Sequence[str],
        keys: Sequence[PublicKey],
        audiences: Sequence[str],
        lookup: ServiceAccountLookup,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not keys:
            raise ValueError("a service account token authenticator needs verification keys")
        self._issuers = frozenset(issuers)
        self._keys = [(key_id(k), k, _algorithm(k)) for k in keys]
        self._audiences = frozenset(audiences)
        self._lookup = lookup
        self._clock = clock
        self._verified: OrderedDict[str, _Verified] = OrderedDict()

    def authenticate(self, credentials: Credentials) -> UserInfo | None:
        token = credentials.token
        if not token or token.count(".") != 2:
            return None
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None  # not a JWT: another authenticator's
        if unverified.get("iss") not in self._issuers:
            return None  # another issuer's token: not ours to judge
        try:
            return self.validate(token)
        except TokenRefused as e:
            log.info(
                "service account token refused",
                extra={"subject": str(unverified.get("sub", "")), "reason": str(e)},
            )
            return None

    def validate(self, token: str) -> UserInfo:
        """The user of a token of ours; TokenRefused saying why it is not valid."""
        verified = self._verified.get(token)
        if verified is None:
            verified = self._verify(token)
            self._verified[token] = verified
            if len(self._verified) > _REMEMBERED:
                self._verified.popitem(last=False)
        else:
            self._verified.move_to_end(token)
        claims = verified.claims
        now = self._clock()
        if now >= claims["exp"]:
            raise TokenRefused(f"the token expired at {claims['exp']} (now {int(now)})")
        if now + _LEEWAY < claims.get("nbf", 0):
            raise TokenRefused(f"the token is not valid before {claims['nbf']}")
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if not self._audiences.intersection(audiences):
            raise TokenRefused(
                f"the token's audiences {audiences} are none of the server's "
                f"{sorted(self._audiences)} (--api-audiences)"
            )
        self._check_exists(verified, claims[_CLAIMS], now)
        namespace = verified.namespace
        return UserInfo(user_name(namespace, verified.name), groups_of(namespace), uid=verified.uid)

    def _verify(self, token: str) -> _Verified:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise TokenRefused(f"malformed token header: {e}") from None
        kid = header.get("kid")
        candidates = [k for k in self._keys if k[0] == kid] or self._keys
        claims: dict[str, Any] | None = None
        for _, key, algorithm in candidates:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[algorithm],
                    options={
                        "verify_aud": False,  # checked by validate, against the server's list
                        "verify_exp": False,  # checked by validate, on the injected clock
                        "verify_nbf": False,
                        "verify_iat": False,
                        "require": ["exp", "sub", "aud"],
                    },
                )
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as e:
                if isinstance(e, jwt.InvalidAlgorithmError) and len(candidates) > 1:
                    continue  # signed with another key's algorithm
                raise TokenRefused(f"the token does not verify: {e}") from None
        if claims is None:
            raise TokenRefused("the token is not signed by any --service-account-key-file key")
        return _private_claims(claims)

    def _check_exists(self, verified: _Verified, private: dict[str, Any], now: float) -> None:
        namespace = verified.namespace
        account = self._lookup.service_account(namespace, verified.name)
        _check_object("ServiceAccount", namespace, verified.name, verified.uid, account, now)
        for kind, find in (("pod", self._lookup.pod), ("secret", self._lookup.secret)):
            ref = private.get(kind)
            if isinstance(ref, dict):
                name, uid = str(ref.get("name", "")), str(ref.get("uid", ""))
                found = find(namespace, name)
                _check_object(kind.capitalize(), namespace, name, uid, found, now)


def _private_claims(claims: dict[str, Any]) -> _Verified:
    private = claims.get(_CLAIMS)
    if not isinstance(private, dict):
        raise TokenRefused(f"the token has no {_CLAIMS} claims")
    account = private.get("serviceaccount")
    namespace = private.get("namespace")
    if not isinstance(account, dict) or not isinstance(namespace, str):
        raise TokenRefused(f"the token's {_CLAIMS} claims name no service account")
    name, uid = str(account.get("name", "")), str(account.get("uid", ""))
    for claim in ("exp", "nbf"):
        if not isinstance(claims.get(claim, 0), int | float):
            raise TokenRefused(f"the token's {claim} is not a number")
    aud = claims.get("aud")
    if not isinstance(aud, str | list):
        raise TokenRefused("the token's aud is neither a string nor a list")
    if claims.get("sub") != user_name(namespace, name):
        raise TokenRefused(f"the token's subject {claims.get('sub')!r} is not its service account")
    return _Verified(claims, namespace, name, uid)


def _check_object(kind: str, namespace: str, name: str, uid: str, obj: Any, now: float) -> None:
    """TokenRefused unless `obj` exists with `uid` and was not deleted more
    than a minute ago."""
    if obj is None:
        raise TokenRefused(f"{kind} {namespace}/{name} the token names does not exist")
    if obj.metadata.uid != uid:
        raise TokenRefused(
            f"{kind} {namespace}/{name} has uid {obj.metadata.uid}, not the token's {uid} "
            "(deleted and created again)"
        )
    meta = obj.metadata
    if meta.HasField("deletion_timestamp") and meta.deletion_timestamp.seconds + _LEEWAY < now:
        raise TokenRefused(f"{kind} {namespace}/{name} is being deleted")
