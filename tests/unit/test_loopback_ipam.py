"""The IPAMs: which address comes next, who holds it, and giving it back
(LoopbackIPAM on disk; NodeRangeIPAM, the simulated runtime's, in memory)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from kpy.agent.runtime import _ipam
from kpy.agent.runtime._ipam import AddressExhaustedError, Claim, LoopbackIPAM, NodeRangeIPAM

if TYPE_CHECKING:
    from pathlib import Path


def _range(first: str, last: str) -> list[str]:
    start, end = int(ipaddress.IPv4Address(first)), int(ipaddress.IPv4Address(last))
    return [str(ipaddress.IPv4Address(v)) for v in range(start, end + 1)]


@dataclass(frozen=True)
class AllocationCase:
    name: str
    claimed_by_others: list[str]
    want: str
    other_files: tuple[str, ...] = ()


ALLOCATION_CASES = [
    AllocationCase("empty directory starts at 127.1.0.1", [], "127.1.0.1"),
    AllocationCase("next after a taken address", ["127.1.0.1"], "127.1.0.2"),
    AllocationCase("a gap is reused", ["127.1.0.1", "127.1.0.3"], "127.1.0.2"),
    AllocationCase(
        "skips .255 and .0 at the end of a /24",
        _range("127.1.0.1", "127.1.0.254"),
        "127.1.1.1",
    ),
    AllocationCase(
        "files that are not addresses are ignored",
        [],
        "127.1.0.1",
        other_files=("README", ".hidden"),
    ),
]


@pytest.mark.parametrize("case", ALLOCATION_CASES, ids=lambda c: c.name)
def test_allocate_picks_the_lowest_free_address(tmp_path: Path, case: AllocationCase) -> None:
    other = LoopbackIPAM(tmp_path, "other-node")
    for ip in case.claimed_by_others:
        (tmp_path / ip).write_text("other-node\nsandbox-x\n")
    for name in case.other_files:
        (tmp_path / name).write_text("not a claim\n")
    ipam = LoopbackIPAM(tmp_path, "node-a")

    got = ipam.allocate("sandbox-1")

    assert got == case.want, case.name
    assert ipam.claim(got) == Claim("node-a", "sandbox-1"), case.name
    assert other.claim(got) == Claim("node-a", "sandbox-1"), case.name


@pytest.mark.parametrize(
    ("ip", "assignable"),
    [
        ("127.0.0.1", False),  # 127.0.0.0/16 belongs to everything else on the host
        ("127.0.255.254", False),
        ("127.1.0.0", False),
        ("127.1.0.1", True),
        ("127.1.0.254", True),
        ("127.1.0.255", False),
        ("127.1.255.1", True),
        ("127.255.255.254", True),
        ("127.255.255.255", False),
        ("127.95.255.254", True),
        ("127.96.0.10", False),  # 127.96.0.0/11: Service cluster IPs
        ("127.127.255.254", False),
        ("127.128.0.1", True),
        ("128.0.0.1", False),
        ("10.0.0.1", False),
    ],
)
def test_is_assignable(ip: str, assignable: bool) -> None:
    assert _ipam.is_assignable(ipaddress.IPv4Address(ip)) is assignable, ip


def test_candidates_cross_octet_boundaries() -> None:
    start = ipaddress.IPv4Address("127.1.255.253")
    got = [str(ip) for _, ip in zip(range(4), _ipam.candidates(start), strict=False)]
    assert got == ["127.1.255.253", "127.1.255.254", "127.2.0.1", "127.2.0.2"]


def test_candidates_skip_the_service_ranges() -> None:
    start = ipaddress.IPv4Address("127.95.255.254")
    got = [str(ip) for _, ip in zip(range(2), _ipam.candidates(start), strict=False)]
    assert got == ["127.95.255.254", "127.128.0.1"]


def test_two_node_names_sharing_a_directory_never_share_an_address(tmp_path: Path) -> None:
    a, b = LoopbackIPAM(tmp_path, "node-a"), LoopbackIPAM(tmp_path, "node-b")
    got = [(a if i % 2 else b).allocate(f"sandbox-{i}") for i in range(20)]

    assert len(set(got)) == 20
    owners = {ip: claim.node_name for ip, claim in a.claims().items()}
    assert owners == {ip: ("node-a" if i % 2 else "node-b") for i, ip in enumerate(got)}


def test_release_gives_back_only_this_nodes_address(tmp_path: Path) -> None:
    a, b = LoopbackIPAM(tmp_path, "node-a"), LoopbackIPAM(tmp_path, "node-b")
    mine, theirs = a.allocate("s1"), b.allocate("s2")

    a.release(mine)
    a.release(theirs)
    a.release("127.1.9.9")  # never claimed: nothing to do

    assert a.claim(mine) is None
    assert a.claim(theirs) == Claim("node-b", "s2")
    assert a.allocate("s3") == mine, "a released address is handed out again"


def test_reclaim_releases_this_nodes_claims_that_are_not_live(tmp_path: Path) -> None:
    a, b = LoopbackIPAM(tmp_path, "node-a"), LoopbackIPAM(tmp_path, "node-b")
    live, dead1, dead2 = a.allocate("s1"), a.allocate("s2"), a.allocate("s3")
    theirs = b.allocate("s4")
    # A crash inside allocate() leaves its temporary claim behind.
    stale = tmp_path / ".claim.12345.deadbeef"
    stale.write_text("node-a\ns5\n")
    foreign_stale = tmp_path / ".claim.999.cafe"
    foreign_stale.write_text("node-b\ns6\n")

    released = a.reclaim([live])

    assert sorted(released) == sorted([dead1, dead2])
    assert set(a.claims()) == {live, theirs}
    assert not stale.exists()
    assert foreign_stale.exists(), "another node's temporary claim is not ours to remove"


def test_reclaim_without_a_directory_releases_nothing(tmp_path: Path) -> None:
    assert LoopbackIPAM(tmp_path / "missing", "node-a").reclaim([]) == []


def test_allocate_raises_when_every_address_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Shrink the range so that exhausting it takes three claims, not millions.
    monkeypatch.setattr(_ipam, "LAST", ipaddress.IPv4Address("127.1.0.3"))
    ipam = LoopbackIPAM(tmp_path, "node-a")
    for i in range(3):
        ipam.allocate(f"s{i}")

    with pytest.raises(AddressExhaustedError, match=r"no free loopback address for sandbox s9"):
        ipam.allocate("s9")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary claim kept"


def test_node_name_must_be_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="node_name"):
        LoopbackIPAM(tmp_path, "a\nb")


@dataclass(frozen=True)
class ClusterCase:
    name: str
    claim_text: str  # the file's content, as another agent wrote it
    released: bool  # whether node-a of cluster c1 may free it


CLUSTER_CASES = [
    ClusterCase("this node of this cluster", "node-a\ns1\nc1\n", True),
    ClusterCase("the same node name in another cluster", "node-a\ns1\nc2\n", False),
    ClusterCase("another node of this cluster", "node-b\ns1\nc1\n", False),
    ClusterCase("a claim from before cluster uids", "node-a\ns1\n", False),
]


@pytest.mark.parametrize("case", CLUSTER_CASES, ids=lambda c: c.name)
def test_only_this_clusters_claims_are_released_or_reclaimed(
    tmp_path: Path, case: ClusterCase
) -> None:
    ipam = LoopbackIPAM(tmp_path, "node-a", "c1")
    (tmp_path / "127.1.0.1").write_text(case.claim_text)
    (tmp_path / "127.1.0.2").write_text(case.claim_text)

    ipam.release("127.1.0.1")
    reclaimed = ipam.reclaim([])

    assert (ipam.claim("127.1.0.1") is None) is case.released, case.name
    assert reclaimed == (["127.1.0.2"] if case.released else []), case.name
    assert ipam.allocate("s9") == ("127.1.0.1" if case.released else "127.1.0.3"), case.name


def test_a_claim_names_its_cluster(tmp_path: Path) -> None:
    a1, a2 = LoopbackIPAM(tmp_path, "node-a", "c1"), LoopbackIPAM(tmp_path, "node-a", "c2")

    first, second = a1.allocate("s1"), a2.allocate("s2")

    assert first != second, "two clusters' kpy-node-1 never share an address"
    assert a1.claims() == {first: Claim("node-a", "s1", "c1"), second: Claim("node-a", "s2", "c2")}


# -- NodeRangeIPAM ------------------------------------------------------------------


@dataclass(frozen=True)
class RangeCase:
    name: str
    # Steps: "allocate", "release <ip>" or "reclaim <ip>,<ip>"; then what the
    # next allocation gives.
    steps: tuple[str, ...]
    want_next: str


RANGE_CASES = [
    RangeCase("starts at host 1", (), "0.1"),
    RangeCase("next-fit after the last given", ("allocate", "allocate"), "0.3"),
    RangeCase("a released address waits its turn", ("allocate", "allocate", "release 0.1"), "0.3"),
    RangeCase(
        "reclaim keeps only the live addresses",
        ("allocate", "allocate", "allocate", "reclaim 0.2"),
        "0.4",
    ),
    RangeCase("after a restart, live addresses are skipped", ("reclaim 0.1,0.2",), "0.3"),
]


@pytest.mark.parametrize("case", RANGE_CASES, ids=lambda c: c.name)
def test_node_range_allocation(case: RangeCase) -> None:
    prefix = NodeRangeIPAM("node-a").allocate("first").rsplit(".", 2)[0]  # "10.x"
    ipam = NodeRangeIPAM("node-a")
    for step in case.steps:
        verb, _, arg = step.partition(" ")
        if verb == "allocate":
            ipam.allocate("s")
        elif verb == "release":
            ipam.release(f"{prefix}.{arg}")
        else:
            ipam.reclaim(f"{prefix}.{ip}" for ip in arg.split(","))
    assert ipam.allocate("next") == f"{prefix}.{case.want_next}", case.name


def test_node_range_reclaim_returns_what_it_freed() -> None:
    ipam = NodeRangeIPAM("node-a")
    ips = [ipam.allocate(f"s{i}") for i in range(3)]
    assert ipam.reclaim([ips[1]]) == [ips[0], ips[2]]


def test_node_range_exhaustion_says_what_to_do() -> None:
    ipam = NodeRangeIPAM("node-a")
    prefix = ipam.allocate("first").rsplit(".", 2)[0]
    ipam.reclaim(f"{prefix}.{host >> 8}.{host & 255}" for host in range(1, 65535))
    with pytest.raises(AddressExhaustedError, match=r"no free sandbox IP .* stop some pods"):
        ipam.allocate("one-too-many")
