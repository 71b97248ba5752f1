"""The service account tokens of a node's pods, as the kubelet's token
manager (pkg/kubelet/token) gets and refreshes them for projected
`serviceAccountToken` volume sources.

    tokens = TokenManager(client, wake=lambda uid: ...)
    await tg.start(tokens.run)
    tokens.track(pod)                   # a pod arrived: get its tokens
    tokens.token(pod, projection)       # volumes' lookup: the token's bytes
    await tokens.wait_for_pod(uid)
    tokens.untrack(uid)                 # the pod is gone: stop refreshing

Contract:

- For each distinct (audience, expirationSeconds) among a tracked pod's
  serviceAccountToken projections, one refresher task asks for a token of
  the pod's ServiceAccount (`spec.serviceAccountName`, `default` when
  unset) bound to the pod (`Client.request_token`), keeps it, and asks for
  a new one before 80% of its lifetime has passed, or 24 hours, whichever
  is first, less a jitter of up to 10 s (the kubelet's rule: a token is
  always replaced well before it expires, and tokens of many pods are not
  all renewed at the same instant).
- Every refresher of a pod lives in that pod's cancel scope, inside the
  manager's task group: `untrack(uid)` cancels them, so no request is made
  for a pod that is gone; cancelling `run` ends them all.
- A token got (first, or a new one) wakes the pod (`wake(uid)`), whose
  sync re-renders its projected volumes: the file is replaced atomically,
  as the other projected files (`volumes.write_atomically`).
- A request that fails is retried after a back-off (1 s doubling to 60 s).
  Meanwhile a token still valid is kept; without one, `token` raises
  `VolumeError` naming the failure ("failed to fetch token: ..."), so the
  volume is not ready and the pod waits with a FailedMount event, as the
  kubelet's. The first answer, good or bad, wakes the pod.
- `wait_for_pod(uid)` returns once every token of the pod has had its first
  answer, or after `sync_timeout` seconds.
- Times are the injected clock's (a wall clock: tokens' expiration times
  are wall times); tests step a `FakeClock`.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import anyio
import anyio.abc

from kpy.agent.volumes import VolumeError
from kpy.api import errors
from kpy.backoff import Backoff
from kpy.clock import WallClock

if TYPE_CHECKING:
    from collections.abc import Callable

    from kpy.api.core.v1 import Pod, ServiceAccountTokenProjection
    from kpy.client import ClientProtocol
    from kpy.clock import Clock

__all__ = ["TokenKey", "TokenManager", "TokenStatistics", "refresh_at", "token_keys"]

log = logging.getLogger("kpy.agent")

#: A token is replaced once this share of its lifetime has passed.
REFRESH_SHARE: Final = 0.8
#: ... or once it is this old, whatever its lifetime (the kubelet's maxTTL).
MAX_AGE: Final = 24 * 3600.0
#: At most this much earlier, drawn per token (the kubelet's maxJitter).
MAX_JITTER: Final = 10.0
#: The API server's default lifetime, for a projection that names none.
DEFAULT_EXPIRATION_SECONDS: Final = 3600
SYNC_TIMEOUT: Final = 5.0


@dataclass(frozen=True, slots=True, order=True)
class TokenKey:
    """One token a pod needs: for whom, and for how long."""

    audience: str
    expiration_seconds: int


def token_keys(pod: Pod) -> set[TokenKey]:
    """The tokens the pod's projected volumes ask for."""
    keys = set()
    for volume in pod.spec.volumes:
        if not volume.HasField("projected"):
            continue
        for source in volume.projected.sources:
            if source.HasField("service_account_token"):
                keys.add(_key(source.service_account_token))
    return keys


def _key(projection: ServiceAccountTokenProjection) -> TokenKey:
    seconds = (
        projection.expiration_seconds
        if projection.HasField("expiration_seconds")
        else DEFAULT_EXPIRATION_SECONDS
    )
    return TokenKey(projection.audience, seconds)


def refresh_at(issued: float, expires: float, jitter: float = 0.0) -> float:
    """When a token got at `issued` and valid until `expires` is to be
    replaced (see the module docstring); `jitter` seconds earlier."""
    lifetime = max(0.0, expires - issued)
    return min(issued + REFRESH_SHARE * lifetime, issued + MAX_AGE) - jitter


@dataclass(frozen=True, slots=True)
class TokenStatistics:
    pods: int  # pods with tokens
    tokens: int  # refreshers running
    ready: int  # of which hold a valid token


@dataclass(eq=False, slots=True)
class _Token:
    """One refresher's state."""

    token: bytes = b""
    expires: float = 0.0
    error: str = ""  # the last failure, while no token is held
    answered: anyio.Event = field(default_factory=anyio.Event)


@dataclass(eq=False, slots=True)
class _PodTokens:
    scope: anyio.CancelScope
    tokens: dict[TokenKey, _Token] = field(default_factory=dict)


class TokenManager:
    """The tokens of the tracked pods; see the module docstring."""

    def __init__(
        self,
        client: ClientProtocol,
        wake: Callable[[str], None],
        *,
        clock: Clock | None = None,
        sync_timeout: float = SYNC_TIMEOUT,
        retry: tuple[float, float] = (1.0, 60.0),
        jitter: Callable[[], float] = lambda: random.uniform(0.0, MAX_JITTER),
    ) -> None:
        self._client = client
        self._wake = wake
        self._clock: Clock = clock if clock is not None else WallClock()
        self._sync_timeout = sync_timeout
        self._retry = retry
        self._jitter = jitter
        self._pods: dict[str, _PodTokens] = {}
        self._tg: anyio.abc.TaskGroup | None = None

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Hosts every refresher until cancelled."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                self._tg = None

    def statistics(self) -> TokenStatistics:
        now = self._clock.now()
        held = [t for p in self._pods.values() for t in p.tokens.values()]
        return TokenStatistics(
            pods=len(self._pods),
            tokens=len(held),
            ready=sum(1 for t in held if t.token and t.expires > now),
        )

    # -- the pods ------------------------------------------------------------------

    def track(self, pod: Pod) -> None:
        """Starts getting the pod's tokens, once per uid (a pod's volumes
        never change); a pod that needs none costs nothing."""
        if self._tg is None:
            raise RuntimeError("TokenManager.run() is not running")
        uid = pod.metadata.uid
        if uid in self._pods:
            return
        keys = token_keys(pod)
        if not keys:
            return
        entry = self._pods[uid] = _PodTokens(anyio.CancelScope())
        for key in sorted(keys):
            entry.tokens[key] = _Token()
        self._tg.start_soon(self._run_pod, pod, entry, name=f"tokens of pod {uid}")

    def untrack(self, uid: str) -> None:
        """The pod is gone: its refreshers stop and its tokens are forgotten."""
        entry = self._pods.pop(uid, None)
        if entry is not None:
            entry.scope.cancel()

    async def wait_for_pod(self, uid: str) -> None:
        """Returns once each token of the pod had its first answer, or after
        the sync timeout; at once for a pod without tokens."""
        entry = self._pods.get(uid)
        if entry is None:
            return
        with anyio.move_on_after(self._sync_timeout):
            for token in list(entry.tokens.values()):
                await token.answered.wait()

    def token(self, pod: Pod, projection: ServiceAccountTokenProjection) -> bytes:
        """The token for `projection` of `pod`, valid now; VolumeError
        saying why when there is none (not got yet, or the request failed)."""
        entry = self._pods.get(pod.metadata.uid)
        held = entry.tokens.get(_key(projection)) if entry is not None else None
        if held is None:
            raise VolumeError("failed to fetch token: the pod's tokens are not being requested")
        if held.token and held.expires > self._clock.now():
            return held.token
        if held.error:
            raise VolumeError(f"failed to fetch token: {held.error}")
        raise VolumeError(
            "failed to fetch token: no answer from the API server yet; the agent keeps asking"
        )

    # -- one pod's refreshers ------------------------------------------------------

    async def _run_pod(self, pod: Pod, entry: _PodTokens) -> None:
        with entry.scope:
            async with anyio.create_task_group() as tg:
                for key, held in entry.tokens.items():
                    tg.start_soon(self._refresh, pod, key, held)

    async def _refresh(self, pod: Pod, key: TokenKey, held: _Token) -> None:
        low, high = self._retry
        backoff = Backoff(base=low, cap=high, jitter=(1.0, 1.2), clock=self._clock)
        while True:
            if await self._request(pod, key, held):
                backoff.reset()
                now = self._clock.now()
                # Never sooner than a retry: a token that looks expired on
                # arrival (clocks apart) must not make a busy loop.
                await self._clock.sleep_until(
                    max(refresh_at(now, held.expires, self._jitter()), now + low)
                )
            else:
                await self._clock.sleep(backoff.next())

    async def _request(self, pod: Pod, key: TokenKey, held: _Token) -> bool:
        """One request; whether it got a token."""
        m = pod.metadata
        account = pod.spec.service_account_name or "default"
        try:
            answer = await self._client.request_token(
                m.namespace,
                account,
                audiences=(key.audience,) if key.audience else (),
                expiration_seconds=key.expiration_seconds,
                bound_pod=pod,
            )
        except errors.StatusError as e:
            first = not held.answered.is_set()
            held.error = f"{e}"
            held.answered.set()
            log.warning(
                "cannot get a service account token; retrying",
                extra={
                    "pod": f"{m.namespace}/{m.name}",
                    "serviceaccount": account,
                    "error": str(e),
                },
            )
            if first:
                self._wake(m.uid)
            return False
        held.token = answer.status.token.encode()
        held.expires = float(answer.status.expiration_timestamp.seconds)
        held.error = ""
        held.answered.set()
        self._wake(m.uid)
        return True
