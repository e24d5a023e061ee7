# bench/lib.sh: what the benchmark scripts share. Sourced, not run, after `cd` to the
# project root and with BENCH set to the script's name (for messages):
#
#   die MSG...        print "<BENCH>: MSG" on stderr and exit 1
#   bench_tmp         make $TMP (/tmp/ringflow-<BENCH>.XXXXXX) and $PIDS; at exit, every
#                     pid in PIDS is stopped (stop_pid) and TMP removed
#   stop_pid PID      TERM, up to STOP_TRIES polls 0.1 s apart (default 50), then KILL; reaped
#   free_port         a loopback port below the ephemeral range that nothing accepts on
#   median            the median of the numbers on stdin (0 for none)
#   ratio A B         A / B to two decimals, or n/a
# shellcheck shell=bash

STOP_TRIES=${STOP_TRIES:-50}

die() {
    echo "$BENCH: $*" >&2
    exit 1
}

stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < STOP_TRIES; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

bench_cleanup() {
    local rc=$? pid
    trap - EXIT
    for pid in "${PIDS[@]}"; do
        stop_pid "$pid"
    done
    rm -rf "$TMP"
    exit "$rc"
}

bench_tmp() {
    TMP=$(mktemp -d "/tmp/ringflow-$BENCH.XXXXXX")
    PIDS=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

free_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    die "no free loopback port found"
}

median() {
    tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print 0; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
}
