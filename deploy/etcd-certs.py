"""Makes etcd's CA and certificates for deploy/'s three machines.

    /opt/kpy/.venv/bin/python /opt/kpy/deploy/etcd-certs.py --out ./etcd-pki \\
        etcd-1=10.0.0.1 etcd-2=10.0.0.2 etcd-3=10.0.0.3

writes, as kubeadm's `init phase certs etcd-*` (kpy.cluster.etcd_certs):

    ca.crt ca.key                       etcd's own CA (10 years)
    etcd-N/server.crt .key              member N's serving certificate (its address,
                                        its name, localhost, 127.0.0.1)
    etcd-N/peer.crt .key                member N towards the other members
    apiserver-etcd-client.crt .key      the API servers' client certificate

Files that exist are kept (run it again with one more member to add it).
deploy/README.md says which file goes to which machine. Keep ca.key off
the machines: only this directory needs it, to make more certificates.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kpy.cluster.etcd_certs import EtcdCertError, Machine, for_machines
from kpy.pki import PKIError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Make etcd's CA and certificates for deploy/.")
    p.add_argument("--out", type=Path, required=True, help="directory to write them to")
    p.add_argument("members", nargs="+", metavar="NAME=ADDRESS", help="each etcd member")
    args = p.parse_args(argv)
    machines = []
    for word in args.members:
        name, eq, address = word.partition("=")
        if not (name and eq and address):
            p.error(f"{word!r}: give each member as NAME=ADDRESS, e.g. etcd-1=10.0.0.1")
        machines.append(Machine(name, address))
    try:
        written = for_machines(args.out, machines)
    except (EtcdCertError, PKIError) as e:
        print(f"etcd-certs: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"every file was already in {args.out}; nothing written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
