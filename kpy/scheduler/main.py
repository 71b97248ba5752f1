"""`kpy-scheduler`: the scheduler as a process.

Prints `kpy-scheduler serving explain on HOST:PORT` (the Scheduler gRPC
service), then `kpy-scheduler serving metrics on HOST:PORT`, then
`kpy-scheduler leading as IDENTITY` once it holds the Lease and schedules.
Stops cleanly on SIGTERM or SIGINT; exits with code 1 if it loses the
Lease (see kpy.component).

With `--tls-cert-file`, `--tls-private-key-file` and `--client-ca-file` the
explain service serves TLS and answers only client certificates of members
of system:masters and of the users `--authorized-clients` names (kpy.door).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kpy import component, door
from kpy.scheduler.plugins.volume_binding import DEFAULT_BIND_TIMEOUT
from kpy.scheduler.scheduler import COMPONENT, DEFAULT_SCHEDULER_NAME, LEASE_NAME, Scheduler


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kpy-scheduler", description="Assign nodes to pending pods (kpy's kube-scheduler)."
    )
    p.add_argument(
        "--scheduler-name",
        default=DEFAULT_SCHEDULER_NAME,
        help="take only pods whose spec.schedulerName is this (default %(default)s)",
    )
    p.add_argument("--bind-address", default="127.0.0.1", help="address of the explain service")
    p.add_argument(
        "--port", type=int, default=10251, help="port of the explain service; 0 picks a free one"
    )
    p.add_argument(
        "--bind-concurrency",
        type=int,
        default=64,
        metavar="N",
        help="bindings in flight at once (default %(default)s)",
    )
    p.add_argument(
        "--volume-bind-timeout",
        type=float,
        default=DEFAULT_BIND_TIMEOUT,
        metavar="SECONDS",
        help="how long a pod waits for its PersistentVolumeClaims to be bound before it "
        "is retried (VolumeBinding's bindTimeoutSeconds; default %(default)g)",
    )
    p.add_argument(
        "--percentage-of-nodes-to-score",
        type=int,
        default=0,
        metavar="PERCENT",
        help="share of the nodes to find feasible before scoring, 0..100 (kube-scheduler's "
        "percentageOfNodesToScore; default 0: adaptive, 50%% minus 1%% per 125 nodes, at "
        "least 5%% and 100 nodes; 100 scores every feasible node)",
    )
    p.add_argument(
        "--tls-cert-file",
        type=Path,
        metavar="FILE",
        help="serve the explain service over TLS with this PEM certificate; needs "
        "--tls-private-key-file and --client-ca-file. Without them it speaks plaintext to anyone",
    )
    p.add_argument(
        "--tls-private-key-file", type=Path, metavar="FILE", help="the PEM key of --tls-cert-file"
    )
    p.add_argument(
        "--client-ca-file",
        type=Path,
        metavar="FILE",
        help="with --tls-cert-file: callers of the explain service must present a client "
        "certificate this CA signed",
    )
    p.add_argument(
        "--authorized-clients",
        default="",
        metavar="USERS",
        help="with --tls-cert-file: users (client certificate CN) the explain service answers, "
        "comma-separated, besides the members of group system:masters, who always are "
        "(default: none besides them)",
    )
    component.add_flags(p, lease_name=LEASE_NAME, metrics_port=10259)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {args.port}")
    if args.bind_concurrency < 1:
        parser.error(f"--bind-concurrency must be at least 1, got {args.bind_concurrency}")
    if not args.volume_bind_timeout > 0:
        parser.error(f"--volume-bind-timeout must be positive, got {args.volume_bind_timeout:g}")
    if not 0 <= args.percentage_of_nodes_to_score <= 100:
        parser.error(
            "--percentage-of-nodes-to-score must be between 0 and 100, "
            f"got {args.percentage_of_nodes_to_score}"
        )
    try:
        explain_tls = door.ServingTLS.from_flags(
            args.tls_cert_file, args.tls_private_key_file, args.client_ca_file
        )
    except door.TLSFileError as e:
        parser.error(str(e))
    explain_clients = frozenset(u.strip() for u in args.authorized_clients.split(",") if u.strip())
    opts = component.options(parser, args)
    return component.main(
        COMPONENT,
        opts,
        lambda client: Scheduler(
            client,
            scheduler_name=args.scheduler_name,
            election=opts.election,
            metrics_host=opts.metrics_host,
            metrics_port=opts.metrics_port,
            explain_address=(args.bind_address, args.port),
            explain_tls=explain_tls,
            explain_clients=explain_clients,
            bind_concurrency=args.bind_concurrency,
            volume_bind_timeout=args.volume_bind_timeout,
            percentage_of_nodes_to_score=args.percentage_of_nodes_to_score,
            announce=lambda line: print(line, flush=True),
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
