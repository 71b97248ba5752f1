"""The API server process: etcd client, watch caches, registries, gRPC.

`APIServer.run` owns everything it starts: one watch cache per resource (each
one etcd watch), the etcd compactor (see `compaction`), the gRPC server, and
the etcd client. It reports the bound
port through `task_status` once the caches are loaded, the namespaces
`default` and `kube-system` exist, and the port accepts calls; cancelling
`run` stops the gRPC server (in-flight calls get a short grace), closes every
client watch and the etcd connection. Several API servers may run against
one etcd: they share nothing but etcd.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import grpc.aio

from kpy.api import errors
from kpy.api.core.v1 import Namespace
from kpy.api.scheme import Scheme, scheme
from kpy.api.unstructured import is_custom
from kpy.apiserver import admission, authentication, authorization, master_endpoints
from kpy.apiserver.audit import AuditLog, Auditor
from kpy.apiserver.compaction import DEFAULT_INTERVAL, Compactor
from kpy.apiserver.customresources import CustomResources
from kpy.apiserver.limits import Limits, RequestLimiter, WatchLimit
from kpy.apiserver.proxy import AgentConnector, NodeConnector
from kpy.apiserver.registry import NamespacesBeingDeleted, Registry
from kpy.apiserver.service import APIService, Gate, serve_on
from kpy.apiserver.service_alloc import DEFAULT_RANGES, ServiceAllocator, ServiceRanges
from kpy.apiserver.serviceaccounts import CacheLookup, TokenOptions, TokenRequests
from kpy.apiserver.watch_cache import WatchCache
from kpy.auth import bootstrap
from kpy.auth.authentication import Chain
from kpy.auth.serviceaccount import TokenIssuer
from kpy.storage import MAX_OBJECT_BYTES, Store, new_client

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from kpy.api.scheme import ResourceInfo
    from kpy.apiserver.audit import AuditOptions
    from kpy.apiserver.authentication import TLSConfig
    from kpy.apiserver.proxy import KubeletClientTLS
    from kpy.storage import ClientTLS
    from kpy.storage.encryption import EncryptionConfig

log = logging.getLogger("kpy.apiserver")

# kube-node-lease holds the agents' heartbeat Leases, as in Kubernetes.
INITIAL_NAMESPACES = ("default", "kube-system", "kube-node-lease")
_CRDS = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")


def _rbac_key(obj: Message) -> tuple[str, str, str]:
    """The registry key of a bootstrap RBAC object's kind."""
    info = scheme.for_message(type(obj))
    return (info.group, info.version, info.plural)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    etcd_endpoints: tuple[str, ...] = ("127.0.0.1:2379",)
    #: --etcd-cafile, --etcd-certfile, --etcd-keyfile (None: etcd in plaintext)
    etcd_tls: ClientTLS | None = None
    address: str = "127.0.0.1"
    port: int = 6443  # 0: any free port
    prefix: str = "/registry"
    watch_cache_capacity: int = 20_000
    watch_history_revisions: int = 10_000
    watcher_queue_size: int = 1_000  # undelivered events a watch may hold before it is closed
    bookmark_interval: float = 5.0
    watch_timeout: tuple[float, float] = (300.0, 600.0)
    compaction_interval: float = DEFAULT_INTERVAL  # seconds; 0: never compact etcd
    # One etcd request's limit: well under a client's (30 s by default), so a
    # client hears "etcd did not answer" from the server rather than timing
    # out itself without knowing which part is down.
    etcd_request_timeout: float = 10.0
    #: --default-not-ready-toleration-seconds and --default-unreachable-toleration-seconds
    admission_options: admission.AdmissionOptions = admission.DEFAULT_OPTIONS
    #: --service-cluster-ip-range and --service-node-port-range
    service_ranges: ServiceRanges = DEFAULT_RANGES
    #: --max-requests-inflight, --max-mutating-requests-inflight, --max-watches
    limits: Limits = field(default_factory=Limits)
    # Bytes one request may hold (0: no limit): room for an object at the
    # size limit plus the request around it.
    max_request_bytes: int = 4 * MAX_OBJECT_BYTES
    extra_grpc_options: tuple[tuple[str, int], ...] = field(default=())
    #: --encryption-provider-config (None: every resource stored as it is)
    encryption: EncryptionConfig | None = None
    #: --tls-cert-file, --tls-private-key-file, --client-ca-file (None: plaintext gRPC)
    tls: TLSConfig | None = None
    #: --client-ca-file and --token-auth-file's authenticators (None: every caller
    #: is let in, as anonymous)
    authenticators: Chain | None = None
    #: --authorization-mode: AlwaysAllow, Node,RBAC or RBAC (None: Node,RBAC
    #: with authenticators, AlwaysAllow without; see `kpy.apiserver.authorization`)
    authorization_mode: str | None = None
    #: --audit-policy-file and --audit-log-*: the policy and where events go
    #: (None: no audit log, as Kubernetes without a policy)
    audit: AuditOptions | None = None
    #: --service-account-issuer, --service-account-key-file,
    #: --service-account-signing-key-file, --api-audiences (None: no
    #: service account tokens issued or authenticated)
    service_accounts: TokenOptions | None = None
    #: --kubelet-certificate-authority, --kubelet-client-certificate and
    #: --kubelet-client-key: how agents are dialled (None: plaintext)
    kubelet_tls: KubeletClientTLS | None = None
    #: --token-port: a second TLS port, same handlers, that asks for no client
    #: certificate (callers bring bearer tokens); 0: any free port; None: none.
    #: With it the server also keeps the `kubernetes` Service of `default`
    #: pointing at this port (`kpy.apiserver.master_endpoints`).
    token_port: int | None = None


class APIServer:
    def __init__(
        self,
        config: ServerConfig,
        *,
        using: Scheme = scheme,
        connector: NodeConnector | None = None,
    ) -> None:
        self.config = config
        self._scheme = using
        self._connector = connector or AgentConnector(config.kubelet_tls)
        self.port = 0
        #: the token port bound (`ServerConfig.token_port`), once serving; 0: none
        self.token_port = 0
        #: the limits every call passes (`kpy.apiserver.limits`), once serving
        self.gate: Gate | None = None
        #: the audit log's writer (`kpy.apiserver.audit`), run by `run` with the server
        self.audit_log: AuditLog | None = None

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        cfg = self.config
        if cfg.token_port is not None and cfg.tls is None:
            raise ValueError("token_port needs tls: tokens must not cross the network in plaintext")
        client = new_client(",".join(cfg.etcd_endpoints), tls=cfg.etcd_tls)
        try:
            store = Store(
                client,
                prefix=cfg.prefix,
                request_timeout=cfg.etcd_request_timeout,
                encryption=cfg.encryption,
            )
            async with anyio.create_task_group() as tg:
                registries = await self._start_caches(store, tg)
                if cfg.compaction_interval > 0:
                    tg.start_soon(Compactor(store, cfg.compaction_interval).run)
                await self._ensure_namespaces(registries[("", "v1", "namespaces")])
                services = registries.get(("", "v1", "services"))
                if services is not None and services.allocator is not None:
                    await services.allocator.repair()
                classes = registries.get(("scheduling.k8s.io", "v1", "priorityclasses"))
                if classes is not None:
                    await admission.ensure_system_priority_classes(classes.create)
                if ("rbac.authorization.k8s.io", "v1", "clusterroles") in registries:
                    await bootstrap.ensure_policy(
                        lambda obj: registries[_rbac_key(obj)].create(obj, namespace="")
                    )
                if cfg.audit is not None:
                    # Started first and cancelled last (with the task group,
                    # after the gRPC server stopped): it writes what is left.
                    self.audit_log = AuditLog(cfg.audit)
                    await tg.start(self.audit_log.run)
                server = self._grpc_server(registries)
                self.port = _listen(server, cfg.address, cfg.port, cfg.tls)
                if cfg.token_port is not None and cfg.tls is not None:
                    # The same serving certificate, no client CA: gRPC then
                    # does not ask for a certificate on this port.
                    tokens_only = dataclasses.replace(cfg.tls, client_ca_pem=None)
                    self.token_port = _listen(
                        server, cfg.address, cfg.token_port, tokens_only, flag="--token-port"
                    )
                await server.start()
                log.info("serving", extra={"address": f"{cfg.address}:{self.port}"})
                reconciler = None
                if self.token_port:
                    log.info(
                        "serving bearer-token callers",
                        extra={"address": f"{cfg.address}:{self.token_port}"},
                    )
                    reconciler = master_endpoints.Reconciler(
                        registries,
                        master_endpoints.advertised(cfg.address),
                        self.token_port,
                        cfg.service_ranges,
                    )
                    tg.start_soon(reconciler.run)
                task_status.started(self.port)
                try:
                    await anyio.sleep_forever()
                finally:
                    with anyio.CancelScope(shield=True):
                        if reconciler is not None:  # pods stop being sent here
                            await reconciler.withdraw(store)
                        await server.stop(grace=1.0)
                        await self._connector.close()
                    tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await client.close()

    async def _start_caches(
        self, store: Store, tg: anyio.abc.TaskGroup
    ) -> dict[tuple[str, str, str], Registry]:
        cfg = self.config
        registries: dict[tuple[str, str, str], Registry] = {}
        namespace_cache: list[WatchCache] = []

        async def lookup_namespace(name: str) -> Message | None:
            cached = namespace_cache[0].get("", name)
            if cached is not None:
                return cached
            try:  # the cache may not have seen a namespace created just now
                return await store.get(namespaces_info, "", name)
            except errors.NotFound:
                return None

        namespaces_info = self._scheme.resolve("namespaces")
        deleting = NamespacesBeingDeleted()

        def new_registry(info: ResourceInfo) -> Registry:
            cache = WatchCache(
                store,
                info,
                capacity=cfg.watch_cache_capacity,
                history_revisions=cfg.watch_history_revisions,
                bookmark_interval=cfg.bookmark_interval,
                watcher_queue_size=cfg.watcher_queue_size,
            )
            if info is namespaces_info:
                namespace_cache.append(cache)
            registry = Registry(
                store, info, cache=cache, namespaces=lookup_namespace, deleting=deleting
            )
            registry.background = tg
            return registry

        for info in self._scheme.all():
            if not is_custom(info.message):  # those come and go with their CRDs
                registries[(info.group, info.version, info.plural)] = new_registry(info)
        classes = registries.get(("scheduling.k8s.io", "v1", "priorityclasses"))
        if classes is not None:
            stored = admission.StoredPriorityClasses(store, classes.info, classes.cache)
            registries[("", "v1", "pods")].priority_classes = stored
        storage_classes = registries.get(("storage.k8s.io", "v1", "storageclasses"))
        claims = registries.get(("", "v1", "persistentvolumeclaims"))
        if storage_classes is not None and claims is not None:
            claims.storage_classes = admission.StoredStorageClasses(
                store, storage_classes.info, storage_classes.cache
            )
        ingress_classes = registries.get(("networking.k8s.io", "v1", "ingressclasses"))
        ingresses = registries.get(("networking.k8s.io", "v1", "ingresses"))
        if ingress_classes is not None and ingresses is not None:
            ingresses.ingress_classes = admission.StoredIngressClasses(ingress_classes.cache)
        services = registries.get(("", "v1", "services"))
        if services is not None:
            services.allocator = ServiceAllocator(store, services.info, cfg.service_ranges)
        pods = registries.get(("", "v1", "pods"))
        if pods is not None:
            pods.admission_options = cfg.admission_options
            pods.disruption_budgets = registries.get(("policy", "v1", "poddisruptionbudgets"))
        accounts = registries.get(("", "v1", "serviceaccounts"))
        tokens = cfg.service_accounts
        if accounts is not None and tokens is not None and tokens.signing_key is not None:
            accounts.token_requests = TokenRequests(
                TokenIssuer(tokens.issuers[0], tokens.signing_key),
                tokens.audiences,
                lambda resource: registries.get(("", "v1", resource)),
                max_expiration_seconds=tokens.max_expiration_seconds,
            )
        if pods is not None and accounts is not None and accounts.token_requests is not None:
            # ServiceAccount admission only where pods can get their tokens.
            pods.service_accounts = admission.StoredServiceAccounts(
                store, accounts.info, accounts.cache
            )
        async with anyio.create_task_group() as starting:
            for registry in registries.values():
                starting.start_soon(tg.start, registry.cache.run)
        crds = registries[_CRDS]
        custom = CustomResources(crds.cache, registries, self._scheme, new_registry, deleting)
        await tg.start(custom.run)
        return registries

    async def _ensure_namespaces(self, namespaces: Registry) -> None:
        for name in INITIAL_NAMESPACES:
            ns = Namespace()
            ns.metadata.name = name
            with contextlib.suppress(errors.AlreadyExists):
                await namespaces.create(ns, namespace="")

    def _grpc_server(self, registries: dict[tuple[str, str, str], Registry]) -> grpc.aio.Server:
        cfg = self.config
        limit = cfg.max_request_bytes
        options = [
            # The service refuses a request over max_request_bytes with
            # TooLarge naming the limit; gRPC's own, higher, limit only caps
            # what a client can make the server buffer (past it the client
            # sees a bare RESOURCE_EXHAUSTED, which the SDK reports as TooLarge).
            ("grpc.max_receive_message_length", 4 * limit if limit else -1),
            ("grpc.max_send_message_length", -1),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
            # gRPC's default SO_REUSEPORT would let a second server share a
            # busy port and split the clients between the two, silently.
            ("grpc.so_reuseport", 0),
            *cfg.extra_grpc_options,
        ]
        server = grpc.aio.server(options=options)
        authenticators = self._authenticators(registries)
        mode = cfg.authorization_mode or authorization.default_mode(authenticators is not None)
        authorizer = (
            None
            if mode == authorization.ALWAYS_ALLOW
            else authorization.Authorization.over_caches(mode, registries)
        )
        service = APIService(
            registries,
            self._scheme,
            self._connector,
            watch_timeout=cfg.watch_timeout,
            authorizer=authorizer,
        )
        self.gate = gate = Gate(
            requests=RequestLimiter(cfg.limits),
            watches=WatchLimit(cfg.limits.max_watches, retry_after=cfg.limits.retry_after),
            max_request_bytes=limit,
            authenticators=authenticators,
            authorizer=authorizer,
            auditor=None if self.audit_log is None else self._auditor(self.audit_log),
        )
        serve_on(server, service, gate)
        return server

    def _authenticators(self, registries: dict[tuple[str, str, str], Registry]) -> Chain | None:
        """The configured chain (x509, static tokens), then, with
        verification keys, the service account tokens' authenticator over
        the watch caches."""
        cfg = self.config
        tokens = cfg.service_accounts
        if tokens is None:
            return cfg.authenticators

        def cache(resource: str) -> WatchCache:
            return registries[("", "v1", resource)].cache

        lookup = CacheLookup(cache("serviceaccounts"), cache("pods"), cache("secrets"))
        found = tokens.authenticator(lookup)
        if found is None:
            return cfg.authenticators
        earlier = cfg.authenticators.authenticators if cfg.authenticators is not None else ()
        return Chain((*earlier, found))

    def _auditor(self, audit_log: AuditLog) -> Auditor:
        return Auditor(audit_log.options.policy, audit_log.record, using=self._scheme)


def _listen(
    server: grpc.aio.Server,
    address: str,
    port: int,
    tls: TLSConfig | None,
    *,
    flag: str = "--port",
) -> int:
    """Binds `server` to address:port (with TLS when `tls` is set) and
    returns the port bound; OSError naming `flag` when it cannot (the port
    is taken, the address is not local)."""
    try:
        if tls is None:
            bound = server.add_insecure_port(f"{address}:{port}")
        else:
            credentials = authentication.server_credentials(tls)
            bound = server.add_secure_port(f"{address}:{port}", credentials)
    except RuntimeError:  # grpc raises it when no address could be bound
        bound = 0
    if not bound:
        raise OSError(
            f"cannot listen on {address}:{port}; is another server using the port? "
            f"pick another with {flag} (0: any free port)"
        )
    return bound
