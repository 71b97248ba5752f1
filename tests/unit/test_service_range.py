"""Each local cluster gets its own Service range (kpy.cluster.service_range)."""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING

import pytest

from kpy.cluster import service_range

if TYPE_CHECKING:
    from pathlib import Path


def cluster_dir(tmp_path: Path, name: str, uid: str | None) -> Path:
    """A cluster directory whose cluster.json names `uid` (None: no cluster.json)."""
    directory = tmp_path / name
    directory.mkdir()
    if uid is not None:
        (directory / "cluster.json").write_text(json.dumps({"uid": uid}))
    return directory


def age(claims: Path, seconds: float) -> None:
    for path in claims.iterdir():
        then = time.time() - seconds
        os.utime(path, (then, then))


def test_two_clusters_get_different_ranges_and_keep_theirs(tmp_path: Path) -> None:
    claims = tmp_path / "claims"
    a = service_range.claim("aaaa", cluster_dir(tmp_path, "a", "aaaa"), claims)
    b = service_range.claim("bbbb", cluster_dir(tmp_path, "b", "bbbb"), claims)
    assert (a, b) == ("127.96.0.0/16", "127.97.0.0/16")
    assert service_range.claim("aaaa", tmp_path / "a", claims) == a, "a cluster keeps its range"
    service_range.release("aaaa", claims)
    assert service_range.claim("cccc", cluster_dir(tmp_path, "c", "cccc"), claims) == a


@pytest.mark.parametrize(
    ("name", "holder_uid", "seconds_old", "taken_over"),
    [
        ("live cluster", "aaaa", 1000, False),
        ("cluster gone", None, 1000, True),
        ("directory started again by another cluster", "other", 1000, True),
        ("young claim of a cluster still starting", None, 1, False),
    ],
)
def test_stale_claims_are_taken_over(
    tmp_path: Path, name: str, holder_uid: str | None, seconds_old: float, taken_over: bool
) -> None:
    claims = tmp_path / "claims"
    directory = cluster_dir(tmp_path, "a", "aaaa")
    service_range.claim("aaaa", directory, claims)
    if holder_uid != "aaaa":
        (directory / "cluster.json").unlink()
        if holder_uid is not None:
            (directory / "cluster.json").write_text(json.dumps({"uid": holder_uid}))
    age(claims, seconds_old)
    got = service_range.claim("bbbb", cluster_dir(tmp_path, "b", "bbbb"), claims)
    assert (got == "127.96.0.0/16") is taken_over, name


def test_every_range_held(tmp_path: Path) -> None:
    claims = tmp_path / "claims"
    for i in range(len(service_range.candidates())):
        service_range.claim(f"u{i}", cluster_dir(tmp_path, f"c{i}", f"u{i}"), claims)
    with pytest.raises(service_range.NoServiceRangeError, match="kpy down"):
        service_range.claim("late", cluster_dir(tmp_path, "late", "late"), claims)
    assert len(service_range.candidates()) == 32


def test_docker_pods_get_a_part_of_the_bridge_no_container_gets(tmp_path: Path) -> None:
    claims = tmp_path / "claims"
    got = service_range.claim("dddd", cluster_dir(tmp_path, "d", "dddd"), claims, docker=True)
    assert got == "172.30.128.0/20"
    again = service_range.claim("eeee", cluster_dir(tmp_path, "e", "eeee"), claims, docker=True)
    assert again == "172.30.144.0/20"
    assert len(service_range.candidates(docker=True)) == 8
