"""deploy/host-perl.sh, which `make up` and .ci/run call: it installs
libmath-bigint-perl only where the host perl's bpi() is broken and apt-get
and root are at hand, says nothing when there is nothing to do, and never
fails its caller. Each case runs the script with a PATH of fakes (perl,
apt-get, id) that record what they were asked."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "host-perl.sh"

# A perl whose bpi works once the package is "installed" (a marker file).
FAKE_PERL = """#!/bin/sh
[ -e "{d}/installed" ] && exit 0
[ -e "{d}/works" ] && exit 0
echo "Can't use an undefined value as an ARRAY reference" >&2
exit 255
"""
# apt-get: `install` succeeds (marking the package installed) unless
# {d}/no-lists exists and `update` has not run yet.
FAKE_APT = """#!/bin/sh
echo "$@" >> "{d}/apt.log"
case "$1" in
update) /bin/rm -f "{d}/no-lists"; exit 0 ;;
install) [ -e "{d}/no-lists" ] && exit 100; /usr/bin/touch "{d}/installed"; exit 0 ;;
esac
"""
FAKE_ID = """#!/bin/sh
echo {uid}
"""


@dataclass(frozen=True)
class Case:
    name: str
    perl: bool = True
    bpi_works: bool = False
    apt: bool = True
    uid: int = 0
    no_lists: bool = False
    apt_calls: tuple[str, ...] = ()
    says: tuple[str, ...] = ()  # each of these is in stderr; () means stderr is empty


INSTALL = "install -y -qq --no-install-recommends libmath-bigint-perl"
CASES = [
    Case("bpi works: nothing done, nothing said", bpi_works=True),
    Case("no perl at all: nothing done, nothing said", perl=False),
    Case(
        "broken, root, apt-get: installs the package",
        apt_calls=(INSTALL,),
        says=("installing libmath-bigint-perl", "installed libmath-bigint-perl: bpi() works"),
    ),
    Case(
        "broken on a fresh machine: fetches the package lists once",
        no_lists=True,
        apt_calls=(INSTALL, "update -qq", INSTALL),
        says=("installed libmath-bigint-perl: bpi() works",),
    ),
    Case(
        "broken, not root: says how to fix it, installs nothing",
        uid=1000,
        says=("bpi() is broken", "apt-get install libmath-bigint-perl"),
    ),
    Case(
        "broken, no apt-get: says how to fix it, still succeeds",
        apt=False,
        says=("bpi() is broken", "CPAN"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_host_perl(case: Case, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fakes = {"id": FAKE_ID.format(uid=case.uid)}
    if case.perl:
        fakes["perl"] = FAKE_PERL.format(d=tmp_path)
    if case.apt:
        fakes["apt-get"] = FAKE_APT.format(d=tmp_path)
    for name, text in fakes.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    if case.bpi_works:
        (tmp_path / "works").touch()
    if case.no_lists:
        (tmp_path / "no-lists").touch()

    done = subprocess.run(
        ["/bin/bash", str(SCRIPT)],
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert done.returncode == 0, f"{case.name}: exit {done.returncode}: {done.stderr}"
    log = tmp_path / "apt.log"
    calls = tuple(log.read_text().splitlines()) if log.exists() else ()
    assert calls == case.apt_calls, f"{case.name}: apt-get calls {calls}"
    if not case.says:
        assert done.stderr == "", f"{case.name}: said {done.stderr!r}"
    for words in case.says:
        assert words in done.stderr, f"{case.name}: no {words!r} in {done.stderr!r}"
