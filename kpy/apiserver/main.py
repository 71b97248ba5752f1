"""`kpy-apiserver`: the API server as a process.

Prints `kpy-apiserver serving on HOST:PORT` on stdout once it accepts calls
(so a launcher can wait for that line; with `--token-port` it ends with
` (token port: PORT)`), and stops cleanly on SIGTERM or SIGINT.

`--workers N` (N > 1) runs N API servers as child processes of this one,
on `--port`, `--port`+1, ... (with `--port 0` each picks a free port), so
that the API uses N cores: Python runs one handler at a time per process.
Every worker is a whole API server over the same etcd (its own watch
cache; resource versions are etcd's revisions, so a watch resumes on any
of them); clients list every worker's address and the SDK spreads its
calls over them. This process only supervises: once every worker serves
it prints `kpy-apiserver serving on HOST:PORT (workers: HOST:PORT,...;
pids: P,...)`, naming the first worker, then every worker and its pid. A
worker that exits after it served is started again on its port (back-off
1 s doubling to 30 s), which prints `kpy-apiserver worker I (pid P)
serving on HOST:PORT`; one that fails before it ever served fails the
whole command (exit 1), as a single server that cannot start does. SIGTERM or SIGINT stops
every worker by its pid (SIGKILL after 10 s), then this process; a worker
also stops when this process dies.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from kpy import logs
from kpy._process import PARENT_PID_ENV, cancel_on_signal, exit_with_parent
from kpy.apiserver import admission, service_alloc
from kpy.apiserver.audit import AuditOptions, PolicyError, load_policy
from kpy.apiserver.authentication import TLSConfig, TLSConfigError
from kpy.apiserver.compaction import parse_interval
from kpy.apiserver.limits import DEFAULT_LIMITS, Limits
from kpy.apiserver.proxy import KubeletClientTLS
from kpy.apiserver.server import APIServer, ServerConfig
from kpy.apiserver.serviceaccounts import TokenOptions
from kpy.auth.authentication import (
    Authenticator,
    Chain,
    TokenAuthenticator,
    TokenFileError,
    X509Authenticator,
    load_token_file,
)
from kpy.backoff import Backoff
from kpy.door import TLSFileError
from kpy.storage import ClientTLS, EtcdTLSError, etcd_tls
from kpy.storage.encryption import ConfigError, EncryptionConfig, load_config

log = logging.getLogger("kpy.apiserver")

_SERVING = re.compile(r"kpy-apiserver serving on (\S+):(\d+)")
_STOP_GRACE = 10.0  # seconds a worker has to stop after SIGTERM


class WorkerFailed(OSError):
    """A worker exited before it ever served (its reason is in the log above)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kpy-apiserver", description="Serve the kpy API over gRPC, backed by etcd."
    )
    p.add_argument(
        "--etcd-servers",
        default="127.0.0.1:2379",
        help="comma-separated etcd endpoints host:port (default %(default)s)",
    )
    p.add_argument("--bind-address", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=6443, help="port to listen on; 0 picks a free one")
    p.add_argument(
        "--token-port",
        type=int,
        default=None,
        metavar="PORT",
        help="also serve TLS on this port (same address, certificate, handlers and limits) "
        "without asking for a client certificate: callers there authenticate with bearer "
        "tokens (ServiceAccount tokens, --token-auth-file), as pods do; one without a token "
        "is Unauthorized. Also keeps the Service default/kubernetes pointing here. 0 picks a "
        "free one; with --workers N, PORT, PORT+1, ... Needs TLS and a token authenticator",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="API server processes to run, on --port, --port+1, ... (default %(default)s; "
        "about one per core the API may use)",
    )
    p.add_argument("--etcd-prefix", default="/registry", help="key prefix of every object")
    for flag, text in (
        ("--etcd-cafile", "reach etcd over TLS, trusting the etcd serving certificates this "
         "CA signed (PEM)"),
        ("--etcd-certfile", "the PEM client certificate presented to etcd (signed by the CA "
         "of etcd's --trusted-ca-file); needs --etcd-keyfile"),
        ("--etcd-keyfile", "the PEM key of --etcd-certfile"),
    ):  # fmt: skip
        p.add_argument(flag, type=Path, metavar="FILE", help=text)
    p.add_argument(
        "--encryption-provider-config",
        type=Path,
        metavar="FILE",
        help="an EncryptionConfiguration (apiserver.config.k8s.io/v1): how to encrypt "
        "resources such as secrets in etcd; without it, everything is stored in plaintext",
    )
    p.add_argument(
        "--tls-cert-file",
        type=Path,
        metavar="FILE",
        help="serve TLS with this PEM certificate (chain); needs --tls-private-key-file. "
        "Without it the server speaks plaintext gRPC",
    )
    p.add_argument(
        "--tls-private-key-file", type=Path, metavar="FILE", help="the PEM key of --tls-cert-file"
    )
    p.add_argument(
        "--client-ca-file",
        type=Path,
        metavar="FILE",
        help="authenticate callers by client certificates this CA signed (user = CN, groups = "
        "O); every TLS connection must then present one. Needs --tls-cert-file",
    )
    p.add_argument(
        "--token-auth-file",
        type=Path,
        metavar="FILE",
        help="authenticate callers by bearer tokens listed in this CSV file, one "
        'token,user,uid,"group1,group2" per line',
    )
    p.add_argument(
        "--service-account-issuer",
        action="append",
        default=[],
        metavar="URL",
        help="the iss of the service account tokens this server issues (the first given) "
        "and accepts (every one given); default https://kubernetes.default.svc.cluster.local",
    )
    p.add_argument(
        "--service-account-key-file",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="PEM public (or private) keys, EC or RSA, that verify service account tokens; "
        "repeatable. Default: the --service-account-signing-key-file's public key. Needs TLS",
    )
    p.add_argument(
        "--service-account-signing-key-file",
        type=Path,
        metavar="FILE",
        help="the PEM private key (EC: ES256; RSA: RS256) that signs service account tokens "
        "(serviceaccounts/token, kpyctl create token). Needs TLS",
    )
    p.add_argument(
        "--api-audiences",
        default="",
        metavar="AUD,...",
        help="comma-separated audiences a service account token must name one of to be "
        "accepted, the first also the default of a token request's; default: the issuer",
    )
    p.add_argument(
        "--kubelet-client-certificate",
        type=Path,
        metavar="FILE",
        help="the PEM client certificate presented to node agents (logs, exec, port-forward, "
        "stats; its CN is in the agents' --authorized-clients). Needs --kubelet-client-key "
        "and --kubelet-certificate-authority",
    )
    p.add_argument(
        "--kubelet-client-key",
        type=Path,
        metavar="FILE",
        help="the PEM key of --kubelet-client-certificate",
    )
    p.add_argument(
        "--kubelet-certificate-authority",
        type=Path,
        metavar="FILE",
        help="dial node agents over TLS, checking their serving certificates (SAN: the node's "
        "address) against this CA. Without it agents are dialled in plaintext",
    )
    p.add_argument(
        "--authorization-mode",
        choices=("AlwaysAllow", "Node,RBAC", "RBAC"),
        default=None,
        metavar="MODE",
        help="who may do what: Node,RBAC (the node authorizer, then RBAC; members of "
        "system:masters may do everything), RBAC, or AlwaysAllow. Default: Node,RBAC when "
        "--client-ca-file or --token-auth-file authenticate callers, else AlwaysAllow",
    )
    p.add_argument(
        "--audit-policy-file",
        default=None,
        help="audit.k8s.io/v1 Policy (YAML) choosing what each request logs; without it "
        "nothing is audited (see docs/security.md)",
    )
    p.add_argument(
        "--audit-log-path",
        default=None,
        help="where audit events go, one JSON line each; - for standard output",
    )
    p.add_argument(
        "--audit-log-maxage",
        type=int,
        default=0,
        help="days to keep rotated audit logs; 0: no age limit (default %(default)s)",
    )
    p.add_argument(
        "--audit-log-maxbackup",
        type=int,
        default=0,
        help="rotated audit logs to keep; 0: every one (default %(default)s)",
    )
    p.add_argument(
        "--audit-log-maxsize",
        type=int,
        default=0,
        help="megabytes an audit log may reach before it is rotated; 0: 100, as Kubernetes",
    )
    p.add_argument("--watch-cache-size", type=int, default=20_000, help="events kept per resource")
    p.add_argument(
        "--watch-queue-size",
        type=int,
        default=1_000,
        help="events a watch may fall behind by before it is closed (default %(default)s)",
    )
    p.add_argument(
        "--bookmark-interval", type=float, default=5.0, help="seconds between watch bookmarks"
    )
    p.add_argument(
        "--etcd-compaction-interval",
        default="5m",
        help="how often an API server compacts etcd's history, keeping one interval of it: "
        "seconds or a duration (5m, 90s); 0 disables (default %(default)s)",
    )
    p.add_argument(
        "--etcd-request-timeout",
        type=float,
        default=10.0,
        help="seconds one etcd request may take before the call fails with Timeout "
        "(default %(default)s; keep it under clients' timeouts)",
    )
    for which in ("not-ready", "unreachable"):
        p.add_argument(
            f"--default-{which}-toleration-seconds",
            type=int,
            default=admission.DEFAULT_TOLERATION_SECONDS,
            metavar="S",
            help=f"seconds every pod tolerates the node.kubernetes.io/{which}:NoExecute taint "
            "unless it says otherwise (DefaultTolerationSeconds; default %(default)s)",
        )
    p.add_argument(
        "--service-cluster-ip-range",
        default=service_alloc.DEFAULT_CLUSTER_IP_RANGE,
        help="CIDR Services' cluster IPs come from: inside 127.0.0.0/8, or inside "
        f"{service_alloc.DOCKER_SERVICES} (the part of kpy's Docker bridge no container gets) "
        "(default %(default)s)",
    )
    p.add_argument(
        "--service-node-port-range",
        default=service_alloc.DEFAULT_NODE_PORT_RANGE,
        help="FIRST-LAST: the ports NodePort Services get (default %(default)s)",
    )
    p.add_argument(
        "--max-requests-inflight",
        type=int,
        default=DEFAULT_LIMITS.max_requests_inflight,
        metavar="N",
        help="read-only calls (get, list) served at once; more wait briefly, then get "
        "TooManyRequests with a retry-after hint; watches, logs, exec and port-forward do "
        "not count; 0: no limit (default %(default)s)",
    )
    p.add_argument(
        "--max-mutating-requests-inflight",
        type=int,
        default=DEFAULT_LIMITS.max_mutating_requests_inflight,
        metavar="N",
        help="writes served at once, as --max-requests-inflight (default %(default)s)",
    )
    p.add_argument(
        "--max-watches",
        type=int,
        default=DEFAULT_LIMITS.max_watches,
        metavar="N",
        help="watches open at once; one more gets TooManyRequests; 0: no limit "
        "(default %(default)s)",
    )
    p.add_argument("--log-level", default="INFO")
    return p


async def _serve(config: ServerConfig) -> None:
    server = APIServer(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_on_signal, tg.cancel_scope)
        port = await tg.start(server.run)
        tokens = f" (token port: {server.token_port})" if server.token_port else ""
        print(f"kpy-apiserver serving on {config.address}:{port}{tokens}", flush=True)


def _check_token_port(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--token-port needs TLS and a token authenticator (else it would
    serve anonymous callers), and ports apart from --port's (exit 2)."""
    port = args.token_port
    if port is None:
        return
    if not 0 <= port <= 65535 or (port and port + args.workers - 1 > 65535):
        parser.error(f"--token-port must be between 0 and 65535 (for every worker), got {port}")
    if args.tls_cert_file is None:
        parser.error(
            "--token-port needs TLS (tokens must not cross the network in plaintext): give "
            "--tls-cert-file and --tls-private-key-file"
        )
    if (
        args.token_auth_file is None
        and not args.service_account_key_file
        and args.service_account_signing_key_file is None
    ):
        parser.error(
            "--token-port serves bearer-token callers: give --service-account-key-file (or "
            "--service-account-signing-key-file) or --token-auth-file"
        )
    if port and args.port and abs(port - args.port) < args.workers:
        parser.error(
            f"--token-port {port} overlaps the ports of --port {args.port} "
            f"(with --workers {args.workers}); choose ports apart"
        )


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Rejects values the server cannot run with, naming the flag (exit 2)."""
    positive = {
        "--watch-cache-size": args.watch_cache_size,
        "--watch-queue-size": args.watch_queue_size,
        "--bookmark-interval": args.bookmark_interval,
        "--etcd-request-timeout": args.etcd_request_timeout,
    }
    for flag, value in positive.items():
        if not value > 0:
            parser.error(f"{flag} must be positive, got {value}")
    for flag, seconds in (
        ("--default-not-ready-toleration-seconds", args.default_not_ready_toleration_seconds),
        ("--default-unreachable-toleration-seconds", args.default_unreachable_toleration_seconds),
    ):
        if seconds < 0:
            parser.error(f"{flag} must not be negative, got {seconds}")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {args.port}")
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    for flag in ("--max-requests-inflight", "--max-mutating-requests-inflight", "--max-watches"):
        if getattr(args, flag[2:].replace("-", "_")) < 0:
            parser.error(f"{flag} must not be negative (0: no limit)")
    if args.port and args.port + args.workers - 1 > 65535:
        parser.error(
            f"--workers {args.workers} from --port {args.port} needs ports up to "
            f"{args.port + args.workers - 1}, past 65535; choose a lower --port"
        )
    try:
        parse_interval(args.etcd_compaction_interval)
    except ValueError as e:
        parser.error(f"--etcd-compaction-interval: {e}")
    for flag, parse in (
        ("--service-cluster-ip-range", service_alloc.parse_cluster_ip_range),
        ("--service-node-port-range", service_alloc.parse_node_port_range),
    ):
        try:
            parse(getattr(args, flag[2:].replace("-", "_")))
        except ValueError as e:
            parser.error(f"{flag}: {e}")


def _encryption(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> EncryptionConfig | None:
    """The --encryption-provider-config, refused at start (exit 2) when it
    is not one the server can run with, naming the field and why."""
    if args.encryption_provider_config is None:
        return None
    try:
        return load_config(args.encryption_provider_config)
    except ConfigError as e:
        parser.error(f"--encryption-provider-config: {e}")


def _security(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[TLSConfig | None, Chain | None]:
    """The TLS files and the authenticator chain the flags ask for, refused
    at start (exit 2) naming the flag and file when unusable."""
    tls = None
    if (args.tls_cert_file is None) != (args.tls_private_key_file is None):
        parser.error("--tls-cert-file and --tls-private-key-file go together: give both")
    if args.client_ca_file is not None and args.tls_cert_file is None:
        parser.error("--client-ca-file needs TLS: give --tls-cert-file and --tls-private-key-file")
    if args.token_auth_file is not None and args.tls_cert_file is None:
        parser.error(
            "--token-auth-file needs TLS (tokens must not cross the network in plaintext): "
            "give --tls-cert-file and --tls-private-key-file"
        )
    authenticators: list[Authenticator] = []
    try:
        if args.tls_cert_file is not None:
            tls = TLSConfig.load(args.tls_cert_file, args.tls_private_key_file, args.client_ca_file)
        if args.client_ca_file is not None:
            authenticators.append(X509Authenticator())
        if args.token_auth_file is not None:
            tokens = load_token_file(args.token_auth_file)
            authenticators.append(TokenAuthenticator(tokens))
    except TLSConfigError as e:
        parser.error(str(e))
    except TokenFileError as e:
        parser.error(f"--token-auth-file: {e}")
    return tls, Chain(authenticators) if authenticators else None


def _kubelet_tls(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> KubeletClientTLS | None:
    """How agents are dialled (`kpy.apiserver.proxy`), refused at start
    (exit 2) naming the flag and file when unusable."""
    try:
        return KubeletClientTLS.from_flags(
            args.kubelet_certificate_authority,
            args.kubelet_client_certificate,
            args.kubelet_client_key,
        )
    except TLSFileError as e:
        parser.error(str(e))


def _service_accounts(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> TokenOptions | None:
    """The service account token flags, loaded (None when none is given);
    refused at start (exit 2) naming the flag and the file."""
    given = args.service_account_key_file or args.service_account_signing_key_file is not None
    if not given:
        if args.service_account_issuer or args.api_audiences:
            parser.error(
                "--service-account-issuer and --api-audiences need --service-account-key-file "
                "or --service-account-signing-key-file"
            )
        return None
    if args.tls_cert_file is None:
        parser.error(
            "service account tokens need TLS (tokens must not cross the network in plaintext): "
            "give --tls-cert-file and --tls-private-key-file"
        )
    try:
        return TokenOptions.load(
            issuers=args.service_account_issuer,
            key_files=args.service_account_key_file,
            signing_key_file=args.service_account_signing_key_file,
            audiences=[a.strip() for a in args.api_audiences.split(",")],
        )
    except ValueError as e:
        parser.error(str(e))


def _etcd_tls(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ClientTLS | None:
    """--etcd-cafile, --etcd-certfile and --etcd-keyfile, read at start; and
    a handshake with each etcd endpoint, so that a server and an etcd that
    disagree about TLS stop here (exit 2, naming the flag to fix) rather
    than retry forever. An etcd not answering yet is waited for as ever."""
    try:
        tls = ClientTLS.load(args.etcd_cafile, args.etcd_certfile, args.etcd_keyfile)
        etcd_tls.check([e.strip() for e in args.etcd_servers.split(",") if e.strip()], tls)
    except EtcdTLSError as e:
        parser.error(str(e))
    return tls


def _audit(parser: argparse.ArgumentParser, args: argparse.Namespace) -> AuditOptions | None:
    """The audit policy and log the flags ask for (None: no audit log),
    refused at start (exit 2) naming the flag, and the policy's field."""
    for flag in ("--audit-log-maxage", "--audit-log-maxbackup", "--audit-log-maxsize"):
        if getattr(args, flag[2:].replace("-", "_")) < 0:
            parser.error(f"{flag} must not be negative")
    if args.audit_policy_file is None:
        if args.audit_log_path is not None:
            print(
                "kpy-apiserver: --audit-log-path without --audit-policy-file: nothing is "
                "audited (as Kubernetes); give a policy, e.g. deploy/audit-policy.yaml",
                file=sys.stderr,
            )
        return None
    if args.audit_log_path is None:
        parser.error(
            "--audit-policy-file needs --audit-log-path (a file, or - for standard output)"
        )
    if args.workers > 1 and args.audit_log_path != "-":
        parser.error(
            f"--audit-log-path {args.audit_log_path} with --workers {args.workers}: workers "
            "cannot share one rotated file; use --audit-log-path - (each worker's lines go "
            "to the supervisor's standard output) or --workers 1"
        )
    try:
        policy = load_policy(args.audit_policy_file)
    except PolicyError as e:
        parser.error(f"--audit-policy-file: {e}")
    return AuditOptions(
        policy=policy,
        path=args.audit_log_path,
        max_age_days=args.audit_log_maxage,
        max_backups=args.audit_log_maxbackup,
        max_size_mb=args.audit_log_maxsize,
    )


def main(argv: list[str] | None = None) -> int:
    exit_with_parent()
    parser = _parser()
    args = parser.parse_args(argv)
    _check(parser, args)
    encryption = _encryption(parser, args)
    tls, authenticators = _security(parser, args)
    service_accounts = _service_accounts(parser, args)
    _check_token_port(parser, args)
    kubelet_tls = _kubelet_tls(parser, args)
    audit_options = _audit(parser, args)
    etcd_client_tls = _etcd_tls(parser, args)
    logs.configure(args.log_level)
    if args.workers > 1:
        return _supervise(sys.argv[1:] if argv is None else argv, args)
    endpoints = tuple(e.strip() for e in args.etcd_servers.split(",") if e.strip())
    config = ServerConfig(
        etcd_endpoints=endpoints,
        etcd_tls=etcd_client_tls,
        address=args.bind_address,
        port=args.port,
        prefix=args.etcd_prefix,
        watch_cache_capacity=args.watch_cache_size,
        watcher_queue_size=args.watch_queue_size,
        bookmark_interval=args.bookmark_interval,
        compaction_interval=parse_interval(args.etcd_compaction_interval),
        etcd_request_timeout=args.etcd_request_timeout,
        encryption=encryption,
        tls=tls,
        token_port=args.token_port,
        kubelet_tls=kubelet_tls,
        authenticators=authenticators,
        service_accounts=service_accounts,
        authorization_mode=args.authorization_mode,
        audit=audit_options,
        limits=Limits(
            max_requests_inflight=args.max_requests_inflight,
            max_mutating_requests_inflight=args.max_mutating_requests_inflight,
            max_watches=args.max_watches,
        ),
        service_ranges=service_alloc.ServiceRanges(
            service_alloc.parse_cluster_ip_range(args.service_cluster_ip_range),
            service_alloc.parse_node_port_range(args.service_node_port_range),
        ),
        admission_options=admission.AdmissionOptions(
            not_ready_toleration_seconds=args.default_not_ready_toleration_seconds,
            unreachable_toleration_seconds=args.default_unreachable_toleration_seconds,
        ),
    )
    failed: list[OSError] = []
    try:
        anyio.run(_serve, config)
    except* OSError as group:  # raised inside the server's task group
        failed = _leaves(group)
    for e in failed:
        print(f"kpy-apiserver: {e}", file=sys.stderr)
    return 1 if failed else 0


def _supervise(argv: list[str], args: argparse.Namespace) -> int:
    """Runs `args.workers` workers until SIGTERM or SIGINT (see the module
    docstring); 1 when one could not start."""
    failed: list[OSError] = []
    try:
        anyio.run(_run_workers, argv, args.port, args.workers, args.token_port or 0)
    except* WorkerFailed as group:
        failed = _leaves(group)
    for e in failed:
        print(f"kpy-apiserver: {e}", file=sys.stderr)
    return 1 if failed else 0


async def _run_workers(argv: list[str], port: int, workers: int, token_port: int = 0) -> None:
    started: list[tuple[str, int]] = [("", 0)] * workers  # (address, pid) of each worker
    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_on_signal, tg.cancel_scope)

        async def start(i: int) -> None:
            started[i] = await tg.start(
                _worker, i + 1, argv, port + i if port else 0, token_port + i if token_port else 0
            )

        async with anyio.create_task_group() as starting:  # all at once: each takes seconds
            for i in range(workers):
                starting.start_soon(start, i)
        # One line: a launcher reading lines as they come cannot miss part of it.
        addresses = ",".join(address for address, _ in started)
        pids = ",".join(str(pid) for _, pid in started)
        print(
            f"kpy-apiserver serving on {started[0][0]} (workers: {addresses}; pids: {pids})",
            flush=True,
        )


async def _worker(
    number: int,
    argv: list[str],
    port: int,
    token_port: int = 0,
    *,
    task_status: anyio.abc.TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Runs worker `number` on `port` (0: a free one, then kept for its
    restarts), started again whenever it exits; `task_status` gets its
    HOST:PORT and pid once it first serves. WorkerFailed if it exits
    before that."""
    backoff = Backoff(base=1.0, cap=30.0, reset_after=60.0)
    served = False
    while True:
        # argparse keeps the last of a repeated flag: these override the parent's
        command = [sys.executable, "-m", "kpy.apiserver.main", *argv]
        command += ["--workers", "1", "--port", str(port)]
        if "--token-port" in argv or any(a.startswith("--token-port=") for a in argv):
            command += ["--token-port", str(token_port)]
        env = {**os.environ, PARENT_PID_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1"}
        began = time.monotonic()
        process = await anyio.open_process(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=None, env=env
        )
        try:
            assert process.stdout is not None
            lines = BufferedByteReceiveStream(process.stdout)
            while True:
                try:
                    line = (await lines.receive_until(b"\n", 65536)).decode(errors="replace")
                except (anyio.IncompleteRead, anyio.EndOfStream):
                    break
                match = _SERVING.search(line)
                if match is None:
                    print(line, flush=True)
                    continue
                port = int(match.group(2))
                address = f"{match.group(1)}:{port}"
                if served:
                    print(
                        f"kpy-apiserver worker {number} (pid {process.pid}) serving on {address}",
                        flush=True,
                    )
                else:
                    log.info(
                        "API server worker serving",
                        extra={"worker": number, "pid": process.pid, "address": address},
                    )
                    served = True
                    task_status.started((address, process.pid))
            code = await process.wait()
        finally:
            with anyio.CancelScope(shield=True):
                await _stop(process)
        if not served:
            raise WorkerFailed(f"worker {number} exited with code {code} before it served")
        delay = backoff.next(ran_for=time.monotonic() - began)
        log.warning(
            "API server worker exited; starting it again",
            extra={"worker": number, "pid": process.pid, "code": code, "in_seconds": delay},
        )
        await anyio.sleep(delay)


async def _stop(process: anyio.abc.Process) -> None:
    """SIGTERM to the worker's pid, SIGKILL after the grace; reaps it."""
    if process.returncode is None:
        process.terminate()
        with anyio.move_on_after(_STOP_GRACE):
            await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()
    await process.aclose()


def _leaves(group: BaseExceptionGroup[OSError]) -> list[OSError]:
    out: list[OSError] = []
    for e in group.exceptions:
        out.extend(_leaves(e) if isinstance(e, BaseExceptionGroup) else [e])
    return out


if __name__ == "__main__":
    sys.exit(main())
