#!/bin/sh
# scripts/deps.sh: install the Debian packages ringflow needs, and nothing else.
#
# The one place that knows the package list. `make` runs it (through the
# .deps stamp) before the first build; run it by hand after a pull that changes
# the list. It checks every package with dpkg-query first, so a machine that has
# everything pays one fork per package and no apt call. Missing packages are
# installed with apt-get when we are root; otherwise the exact command is printed
# and the script fails, because building on without them would only fail later
# with a worse message.
#
#   scripts/deps.sh          install what is missing (root) or print the command
#   scripts/deps.sh --check  exit 1 if anything is missing, install nothing
#   scripts/deps.sh --bench  also the peers bench/compare.sh measures against (nginx, wrk)
set -eu

PKGS="build-essential g++ pkg-config make
liburing-dev libwslay-dev libhiredis-dev librdkafka-dev libmimalloc-dev
libxxhash-dev libck-dev libjansson-dev libssl-dev
libcmocka-dev libbenchmark-dev libtbb-dev
clang libclang-rt-14-dev libfuzzer-14-dev
redis-server kcat curl valgrind"
# Only for `make bench-compare`; nginx-light's package starts no server here (no systemd),
# and compare.sh runs its own on a free loopback port.
BENCH_PKGS="nginx-light wrk jq"
if [ "${1:-}" = "--bench" ]; then
    PKGS="$PKGS $BENCH_PKGS"
fi

missing=""
for p in $PKGS; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = "installed" ] || missing="$missing $p"
done

if [ -z "$missing" ]; then
    exit 0
fi
if [ "${1:-}" = "--check" ]; then
    echo "ringflow: missing Debian packages:$missing" >&2
    exit 1
fi

cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "ringflow: missing Debian packages. Run as root:" >&2
    echo "  apt-get update && $cmd" >&2
    exit 1
fi
echo "ringflow: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh image has empty package lists; an update is cheap next to a failed install.
apt-get update -qq
# shellcheck disable=SC2086
$cmd
