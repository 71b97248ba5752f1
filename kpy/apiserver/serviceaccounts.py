"""ServiceAccount tokens in the API server: the flags, the `token`
subresource (Kubernetes' TokenRequest API, authentication.k8s.io/v1) and
the authenticator's view of the watch caches.

- `TokenOptions.load` reads `--service-account-issuer` (repeatable: the
  first names the tokens this server issues, every one is accepted),
  `--service-account-key-file` (repeatable: the keys that verify; default
  the signing key), `--service-account-signing-key-file` and
  `--api-audiences` (default: the first issuer), refusing unusable files
  with the flag and the reason.
- `create serviceaccounts/NAME/token` (`TokenRequests.create`, set on the
  ServiceAccounts registry by the server) takes a TokenRequest:
  `spec.audiences` (default the server's audiences), `spec.expirationSeconds`
  (at least 600, default 3600, shortened to 48 hours at most; the answer's
  spec and `status.expirationTimestamp` say what was issued) and
  `spec.boundObjectRef` (a Pod, whose serviceAccountName must be NAME, or a
  Secret, in the same namespace; a uid given must be the object's, else
  Conflict). A missing ServiceAccount or bound object is NotFound. The
  answer is the TokenRequest with `status.token`. A server without a
  signing key answers MethodNotAllowed, naming the flag to set. Tokens are
  logged by who, for whom and until when, never their text; the audit log
  records no body of a subresource, so tokens never reach it either.
- `CacheLookup` answers the token authenticator's existence questions
  (ServiceAccount, Pod, Secret) from the watch caches: no etcd read per
  request. A token is thus refused for the cache's delay (milliseconds)
  after its ServiceAccount was created on another API server.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

from kpy.api import errors
from kpy.api.authentication.v1 import TokenRequest
from kpy.auth.serviceaccount import (
    DEFAULT_EXPIRATION_SECONDS,
    DEFAULT_ISSUER,
    MAX_EXPIRATION_SECONDS,
    MIN_EXPIRATION_SECONDS,
    BoundObject,
    ServiceAccountTokenAuthenticator,
    TokenIssuer,
    load_signing_key,
    load_verification_keys,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from kpy.api.core.v1 import Pod, Secret, ServiceAccount
    from kpy.apiserver.registry import Registry
    from kpy.apiserver.watch_cache import WatchCache
    from kpy.auth.serviceaccount import PrivateKey, PublicKey

__all__ = [
    "SIGNING_KEY_FLAG",
    "CacheLookup",
    "TokenOptions",
    "TokenRequests",
    "request_token",
]

log = logging.getLogger("kpy.apiserver")

SIGNING_KEY_FLAG: Final = "--service-account-signing-key-file"
_KIND: Final = "TokenRequest.authentication.k8s.io"
_MAX_SECONDS: Final = 1 << 32  # Kubernetes' validation bound, before the server's cap
_BINDABLE: Final = {"Pod": "pods", "Secret": "secrets"}


@dataclass(frozen=True, slots=True)
class TokenOptions:
    """The service account flags, loaded. `keys` empty: no token
    authenticator; `signing_key` None: no tokens issued."""

    issuers: tuple[str, ...] = (DEFAULT_ISSUER,)
    keys: tuple[PublicKey, ...] = ()
    signing_key: PrivateKey | None = None
    audiences: tuple[str, ...] = ()
    max_expiration_seconds: int = MAX_EXPIRATION_SECONDS

    @classmethod
    def load(
        cls,
        *,
        issuers: Sequence[str] = (),
        key_files: Sequence[str | Path] = (),
        signing_key_file: str | Path | None = None,
        audiences: Sequence[str] = (),
    ) -> TokenOptions:
        """The options of the flags' values; ValueError naming the flag and
        the file when one cannot be used. Without --service-account-key-file
        the signing key's public half verifies (as kube-apiserver)."""
        issuers = tuple(i for i in issuers if i) or (DEFAULT_ISSUER,)
        signing_key = None
        try:
            if signing_key_file is not None:
                signing_key = load_signing_key(signing_key_file)
        except ValueError as e:
            raise ValueError(f"{SIGNING_KEY_FLAG}: {e}") from None
        try:
            keys = tuple(load_verification_keys(key_files))
        except ValueError as e:
            raise ValueError(f"--service-account-key-file: {e}") from None
        if not keys and signing_key is not None:
            keys = (signing_key.public_key(),)
        return cls(
            issuers=issuers,
            keys=keys,
            signing_key=signing_key,
            audiences=tuple(a for a in audiences if a) or issuers[:1],
        )

    def authenticator(self, lookup: CacheLookup) -> ServiceAccountTokenAuthenticator | None:
        """The token authenticator (None without verification keys)."""
        if not self.keys:
            return None
        return ServiceAccountTokenAuthenticator(self.issuers, self.keys, self.audiences, lookup)


class CacheLookup:
    """`kpy.auth.serviceaccount.ServiceAccountLookup` over the API server's
    watch caches of serviceaccounts, pods and secrets."""

    def __init__(self, accounts: WatchCache, pods: WatchCache, secrets: WatchCache) -> None:
        self._accounts = accounts
        self._pods = pods
        self._secrets = secrets

    def service_account(self, namespace: str, name: str) -> ServiceAccount | None:
        return cast("ServiceAccount | None", self._accounts.get(namespace, name))

    def pod(self, namespace: str, name: str) -> Pod | None:
        return cast("Pod | None", self._pods.get(namespace, name))

    def secret(self, namespace: str, name: str) -> Secret | None:
        return cast("Secret | None", self._secrets.get(namespace, name))


class TokenRequests:
    """Issues tokens for the ServiceAccounts registry (see the module
    docstring) with `issuer`; `objects` finds the registry of a bound
    object's resource (pods, secrets)."""

    def __init__(
        self,
        issuer: TokenIssuer,
        audiences: Sequence[str],
        objects: Callable[[str], Registry | None],
        *,
        max_expiration_seconds: int = MAX_EXPIRATION_SECONDS,
    ) -> None:
        self.issuer = issuer
        self._audiences = tuple(audiences)
        self._objects = objects
        self._max_expiration = max_expiration_seconds

    async def create(
        self, accounts: Registry, body: bytes, *, namespace: str, name: str, dry_run: bool
    ) -> TokenRequest:
        request = _decode(body)
        spec = request.spec
        _validate(request, name)
        account: Any = await accounts.get(namespace, name)
        bound = None
        if spec.HasField("bound_object_ref"):
            bound = await self._bound(namespace, name, spec)
        seconds = spec.expiration_seconds if spec.HasField("expiration_seconds") else 0
        seconds = min(seconds or DEFAULT_EXPIRATION_SECONDS, self._max_expiration)
        audiences = list(spec.audiences) or list(self._audiences)
        out = TokenRequest()
        out.metadata.name = name
        out.metadata.namespace = namespace
        out.metadata.creation_timestamp.CopyFrom(accounts.now())
        out.spec.audiences.extend(audiences)
        out.spec.expiration_seconds = seconds
        if bound is not None:
            ref = out.spec.bound_object_ref
            ref.kind, ref.api_version, ref.name, ref.uid = bound.kind, "v1", bound.name, bound.uid
        if dry_run:
            return out
        issued = self.issuer.issue(
            namespace=namespace,
            name=name,
            uid=account.metadata.uid,
            audiences=audiences,
            expiration_seconds=seconds,
            bound=bound,
        )
        out.status.token = issued.token
        out.status.expiration_timestamp.seconds = issued.expires
        log.info(
            "service account token issued",
            extra={
                "serviceaccount": f"{namespace}/{name}",
                "audiences": ",".join(audiences),
                "bound": f"{bound.kind}/{bound.name}" if bound else "",
                "expires": issued.expires,
            },
        )
        return out

    async def _bound(self, namespace: str, account: str, spec: Any) -> BoundObject:
        """The object spec.boundObjectRef names, checked (see the module docstring)."""
        ref = spec.bound_object_ref
        resource = _BINDABLE[ref.kind]  # _validate allowed only these kinds
        registry = self._objects(resource)
        if registry is None:
            raise errors.Internal(f"this API server serves no {resource} to bind a token to")
        obj: Any = await registry.get(namespace, ref.name)
        if ref.kind == "Pod" and obj.spec.service_account_name != account:
            raise errors.BadRequest(
                f'cannot bind token for serviceaccount "{account}" to pod running with '
                f'different serviceaccount name ("{obj.spec.service_account_name}")'
            )
        if ref.uid and ref.uid != obj.metadata.uid:
            raise errors.conflict(
                resource,
                ref.name,
                f"the UID in the bound object reference ({ref.uid}) does not match the UID in "
                f"record ({obj.metadata.uid}). The object might have been deleted and then "
                "recreated",
            )
        return BoundObject(ref.kind, ref.name, obj.metadata.uid)


async def request_token(
    accounts: Registry, body: bytes, *, namespace: str, name: str, dry_run: bool
) -> TokenRequest:
    """Serves `create serviceaccounts/NAME/token` on the ServiceAccounts
    registry (see the module docstring)."""
    requests = accounts.token_requests
    if requests is None:
        raise _no_signer(accounts)
    return await requests.create(accounts, body, namespace=namespace, name=name, dry_run=dry_run)


def _no_signer(accounts: Registry) -> errors.MethodNotAllowed:
    return errors.MethodNotAllowed(
        "this API server issues no service account tokens: it was started without "
        f"{SIGNING_KEY_FLAG}; start kpy-apiserver with {SIGNING_KEY_FLAG} FILE (the "
        "private key, e.g. pki/sa.key) to serve serviceaccounts/token",
        kind=accounts.info.group_resource,
    )


def _decode(body: bytes) -> TokenRequest:
    try:
        return TokenRequest.FromString(body)
    except Exception as e:  # DecodeError: a malformed request, never an internal error
        raise errors.BadRequest(
            f"the request body is not a valid authentication.k8s.io/v1 TokenRequest: {e}"
        ) from None


def _validate(request: TokenRequest, name: str) -> None:
    """Invalid (or BadRequest, for a kind that cannot be bound) in
    Kubernetes' words."""
    spec = request.spec
    causes = []
    if spec.HasField("expiration_seconds"):
        seconds = spec.expiration_seconds
        if seconds < MIN_EXPIRATION_SECONDS:
            causes.append(
                errors.FieldError(
                    "spec.expirationSeconds",
                    errors.INVALID,
                    f"Invalid value: {seconds}: may not specify a duration less than 10 minutes",
                )
            )
        elif seconds > _MAX_SECONDS:
            causes.append(
                errors.FieldError(
                    "spec.expirationSeconds",
                    errors.INVALID,
                    f"Invalid value: {seconds}: may not specify a duration larger than 2^32 "
                    "seconds",
                )
            )
    if spec.HasField("bound_object_ref"):
        ref = spec.bound_object_ref
        if ref.kind not in _BINDABLE or ref.api_version not in ("", "v1"):
            version = ref.api_version or "v1"
            raise errors.BadRequest(
                f'cannot bind token to object of type "{version}, Kind={ref.kind}": '
                "a token binds to a Pod or a Secret"
            )
        if not ref.name:
            causes.append(
                errors.FieldError(
                    "spec.boundObjectRef.name", errors.REQUIRED, "Required value: the object's name"
                )
            )
    if causes:
        raise errors.Invalid(causes, kind=_KIND, name=name)
