"""The iptables backend of kpy-proxy (kube-proxy's iptables mode).

Every chain is kpy's own and carries the cluster's identity, `KPY-<id>-`
with `<id>` the first 8 hex digits of the cluster uid, so that several kpy
clusters (and Docker, and anything else) share the machine's tables and
each touches its chains only:

- nat `KPY-<id>-SVC`: `-d <cluster IP> --dport <port>` and `-d <node IP>
  --dport <node port>` of every port with ready endpoints jump to that
  port's `KPY-<id>-S-<hash>`, which picks an endpoint chain with the
  `statistic --mode random --probability 1/n` ladder (1/n, 1/(n-1), ...,
  the last unconditional), after `recent --rcheck` rules when the Service
  has ClientIP affinity; `KPY-<id>-E-<hash>` DNATs to the endpoint (and
  `recent --set`s the client). Jumped to from nat OUTPUT (the host and
  process-runtime pods) and PREROUTING (Docker containers).
- nat `KPY-<id>-POST`, from POSTROUTING: MASQUERADE of the packets an
  endpoint chain marked because they come from that very endpoint
  (hairpin: a container reaching itself through its Service) or from a
  loopback address (the host's `127.0.0.1:<node port>`; the bridge must
  allow such sources, see kpy.proxy.hairpin). Loopback endpoints need none.
- filter `KPY-<id>-FW`, from OUTPUT, FORWARD and INPUT: REJECT of every
  port with no ready endpoint, so a connection is refused at once.

The nodes of one cluster that share a machine (`kpy up --nodes 2`) share
these chains: their proxies write the same rules. When one of them stops it
removes them; the others put them back at their next sync (at once for a
proxy the supervisor restarts, else within the resync period).

`render` is pure: the `iptables-restore --noflush` text that makes the
kernel's chains of this cluster exactly the rule set (a chain declared in
that input is flushed first; chains of ours no longer wanted are flushed
and deleted; missing jumps from the built-in chains are inserted); it is
applied in one transaction. `cleanup_text` removes the jumps and chains of
one cluster, by name, from `iptables-save` output; `cleanup(uid)` does so.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kpy.proxy.rules import ServicePortRule

log = logging.getLogger("kpy.proxy.iptables")

MASQ_MARK: Final = "0x10000/0x10000"  # one bit of its own: not kube-proxy's 0x4000
TABLES: Final = ("nat", "filter")
# (table, built-in chain, our chain suffix): the jumps into our chains.
JUMPS: Final = (
    ("nat", "OUTPUT", "SVC"),
    ("nat", "PREROUTING", "SVC"),
    ("nat", "POSTROUTING", "POST"),
    ("filter", "OUTPUT", "FW"),
    ("filter", "FORWARD", "FW"),
    ("filter", "INPUT", "FW"),
)
_TIMEOUT: Final = 10.0


class IptablesError(RuntimeError):
    """iptables failed; the message quotes it."""


def chain_prefix(cluster_uid: str) -> str:
    """`KPY-<first 8 hex of the uid>-`: the names of this cluster's chains."""
    ident = re.sub(r"[^0-9a-fA-F]", "", cluster_uid)[:8].upper()
    if len(ident) < 8:
        ident = hashlib.sha256(cluster_uid.encode()).hexdigest()[:8].upper()
    return f"KPY-{ident}-"


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10].upper()


@dataclass(frozen=True, slots=True)
class Tables:
    """Our part of `iptables-save`: the chains of this cluster, and the
    rules of the built-in chains that jump to them, by table."""

    chains: dict[str, set[str]]
    jumps: dict[str, list[str]]  # table -> "-A CHAIN ... -j KPY-..." lines


def parse_save(text: str, prefix: str) -> Tables:
    """This cluster's chains and jump rules in `iptables-save` output."""
    chains: dict[str, set[str]] = {t: set() for t in TABLES}
    jumps: dict[str, list[str]] = {t: [] for t in TABLES}
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            chains.setdefault(table, set())
            jumps.setdefault(table, [])
        elif line.startswith(":" + prefix):
            chains[table].add(line[1:].split()[0])
        elif (
            line.startswith("-A ")
            and f"-j {prefix}" in line
            and not line.split()[1].startswith(prefix)
        ):
            jumps[table].append(line)
    return Tables(chains, jumps)


def render(rules: Iterable[ServicePortRule], prefix: str, current: Tables) -> str:
    """The `iptables-restore --noflush` input that makes this cluster's
    chains exactly `rules` (see the module docstring); `current` is what the
    tables hold now (parse_save)."""
    svc, post, fw = f"{prefix}SVC", f"{prefix}POST", f"{prefix}FW"
    nat_chains: dict[str, list[str]] = {svc: [], post: []}
    filter_rules: list[str] = []
    post_rules = nat_chains[post]
    post_rules.append(f"-A {post} -m mark --mark {MASQ_MARK} -j MASQUERADE")
    for rule in rules:
        proto = rule.protocol.lower()
        comment = f'-m comment --comment "{rule.key}"'
        targets = [(rule.cluster_ip, rule.port)]
        if rule.node_port:
            targets.append((rule.node_ip, rule.node_port))
        if not rule.endpoints:
            for ip, port in targets:
                filter_rules.append(
                    f"-A {fw} -d {ip}/32 -p {proto} -m {proto} --dport {port} {comment} "
                    "-j REJECT --reject-with icmp-port-unreachable"
                )
            continue
        service_chain = f"{prefix}S-{_hash(rule.key)}"
        for ip, port in targets:
            nat_chains[svc].append(
                f"-A {svc} -d {ip}/32 -p {proto} -m {proto} --dport {port} {comment} "
                f"-j {service_chain}"
            )
        ladder: list[str] = []
        endpoint_chains = [(f"{prefix}E-{_hash(rule.key + '>' + e)}", e) for e in rule.endpoints]
        if rule.affinity_seconds is not None:
            for chain, _ in endpoint_chains:
                ladder.append(
                    f"-A {service_chain} -m recent --name {chain} --mask 255.255.255.255 "
                    f"--rsource --rcheck --seconds {rule.affinity_seconds} --reap -j {chain}"
                )
        n = len(endpoint_chains)
        for i, (chain, endpoint) in enumerate(endpoint_chains):
            if i < n - 1:
                probability = f"{1 / (n - i):.10f}"
                ladder.append(
                    f"-A {service_chain} -m statistic --mode random --probability {probability} "
                    f"-j {chain}"
                )
            else:
                ladder.append(f"-A {service_chain} -j {chain}")
            ip = endpoint.rpartition(":")[0]
            lines = []
            if not ip.startswith("127."):
                for source in (f"{ip}/32", "127.0.0.0/8"):  # hairpin; the host's 127.x
                    lines.append(f"-A {chain} -s {source} -j MARK --set-xmark {MASQ_MARK}")
            recent = ""
            if rule.affinity_seconds is not None:
                recent = f"-m recent --name {chain} --mask 255.255.255.255 --rsource --set "
            lines.append(
                f"-A {chain} -p {proto} -m {proto} {recent}-j DNAT --to-destination {endpoint}"
            )
            nat_chains[chain] = lines
        nat_chains[service_chain] = ladder
    wanted = {"nat": nat_chains, "filter": {fw: filter_rules}}
    out: list[str] = []
    for table in TABLES:
        chains = wanted[table]
        stale = sorted(current.chains.get(table, set()) - set(chains))
        out.append(f"*{table}")
        out += [f":{name} - [0:0]" for name in [*chains, *stale]]
        present = {f"{j.split()[1]} {j.split()[-1]}" for j in current.jumps.get(table, [])}
        for jtable, builtin, suffix in JUMPS:
            if jtable == table and f"{builtin} {prefix}{suffix}" not in present:
                out.append(f"-I {builtin} 1 -j {prefix}{suffix}")
        for lines in chains.values():
            out += lines
        out += [f"-X {name}" for name in stale]
        out.append("COMMIT")
    return "\n".join(out) + "\n"


def cleanup_text(current: Tables) -> str:
    """The `iptables-restore --noflush` input that deletes the jumps into
    this cluster's chains, then the chains; "" if there are none."""
    out: list[str] = []
    for table in TABLES:
        chains = sorted(current.chains.get(table, set()))
        jumps = current.jumps.get(table, [])
        if not chains and not jumps:
            continue
        out.append(f"*{table}")
        out += [f":{name} - [0:0]" for name in chains]  # declared: flushed
        out += ["-D " + line.removeprefix("-A ") for line in jumps]
        out += [f"-X {name}" for name in chains]
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


def save() -> str:
    """`iptables-save` of the nat and filter tables."""
    return "".join(_run(["iptables-save", "-t", table]) for table in TABLES)


def restore(text: str) -> None:
    """Applies `text` with `iptables-restore --noflush` (one transaction per table)."""
    _run(["iptables-restore", "--noflush"], text)


def cleanup(cluster_uid: str, attempts: int = 3) -> bool:
    """Removes this cluster's jumps and chains, by name; whether any were
    there. The proxies of one cluster's nodes share the chains and may stop
    at once: a removal that fails because another proxy removed part of
    them first is read again and retried. IptablesError if iptables fails
    while chains remain."""
    removed = False
    for attempt in range(attempts):
        text = cleanup_text(parse_save(save(), chain_prefix(cluster_uid)))
        if not text:
            return removed
        removed = True
        try:
            restore(text)
        except IptablesError:
            if attempt == attempts - 1:
                raise
            continue
        return True
    return removed


def unavailable() -> str:
    """Why the iptables mode cannot run here, or "" if it can: the commands
    are there and may change the nat table (probed with a chain of our own,
    created and deleted)."""
    for tool in ("iptables", "iptables-save", "iptables-restore"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = f"KPY-PROBE-{os.getpid()}"
    rule = f"-A {probe} -m statistic --mode random --probability 0.5 -j RETURN"
    try:
        restore(f"*nat\n:{probe} - [0:0]\n{rule}\nCOMMIT\n")
        restore(f"*nat\n:{probe} - [0:0]\n-X {probe}\nCOMMIT\n")
    except IptablesError as e:
        return str(e)
    return ""


def _run(argv: list[str], stdin: str | None = None) -> str:
    try:
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise IptablesError(f"{argv[0]} failed: {e}") from None
    if done.returncode != 0:
        raise IptablesError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout
