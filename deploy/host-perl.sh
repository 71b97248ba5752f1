#!/usr/bin/env bash
# Makes the host's perl able to run the seed's Job (job-pi.yaml:
# `perl -Mbignum=bpi -wle 'print bpi(2000)'`), which the process runtime
# runs with the host's own perl.
#
#   bash deploy/host-perl.sh
#
# Debian 12's core Math::BigInt::Calc (perl 5.36) dies in bpi() with "Can't
# use an undefined value as an ARRAY reference"; Debian's libmath-bigint-perl
# ships a newer Math::BigInt that perl prefers to the core one. This installs
# that package with apt-get when, and only when, all of these hold: perl is
# here, its bpi is broken, apt-get is here and we are root. If bpi works, or
# there is no perl, it does nothing and says nothing; if bpi is broken and it
# cannot fix it, it says how to. It never fails the caller (`make up`,
# .ci/run): a cluster without a working bpi still runs everything else.
set -uo pipefail

PACKAGE=libmath-bigint-perl
PERL="${KPY_PERL:-perl}"

say() { echo "host-perl: $*" >&2; }

bpi_works() {
    "$PERL" -Mbignum=bpi -e 'bpi(200)' >/dev/null 2>&1
}

command -v "$PERL" >/dev/null 2>&1 || exit 0
bpi_works && exit 0

if ! command -v apt-get >/dev/null 2>&1 || [[ $(id -u) != 0 ]]; then
    say "perl's bignum bpi() is broken here (Debian 12's core Math::BigInt::Calc);" \
        "the seed's job-pi.yaml will fail on the process runtime." \
        "Fix: install $PACKAGE as root (apt-get install $PACKAGE) or a newer Math::BigInt from CPAN"
    exit 0
fi

say "perl's bignum bpi() is broken here (Debian 12's core Math::BigInt::Calc):" \
    "installing $PACKAGE with apt-get..."
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends "$PACKAGE" >/dev/null 2>&1; then
    # A fresh machine has no package lists yet: fetch them once and retry.
    apt-get update -qq >/dev/null 2>&1
    if ! apt-get install -y -qq --no-install-recommends "$PACKAGE" >/dev/null; then
        say "could not install $PACKAGE (see apt-get's message above); job-pi.yaml will fail"
        exit 0
    fi
fi
if bpi_works; then
    say "installed $PACKAGE: bpi() works"
else
    say "installed $PACKAGE, but bpi() still fails: job-pi.yaml will fail"
fi
exit 0
