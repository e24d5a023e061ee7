#!/usr/bin/env bash
# bench/storage.sh: the benchmarks of issue 5 (durability and Redis), as a table.
#
#   (1) executions/s of POST /v1/graphs/chain3/executions (bench/graphs/chain3.json) with
#       --durability sync against none: two daemons, ringflow-load closed loop, alternating
#       runs, medians, the ratio, latency percentiles of each;
#   (2) recovery of RF_BENCH_RECOVERY_N (1,000,000) journaled executions: a daemon with
#       --durability none takes them (ringflow-load in rounds until the journal holds N),
#       is stopped with SIGTERM and started again on the same data directory; the time
#       from exec to /readyz 200, the recovery log line (read and apply times) and the
#       RSS after it are printed;
#   (3) the cache-hit path through Redis (build/release/bench/rcache: the remote tier's
#       lookups on the shard rings, all hits, JSON values of RF_BENCH_VALUE_BYTES) against
#       redis-benchmark's pipelined GETs of values of the same size, same connection count
#       and pipeline depth, against one private redis-server, alternating: target >= 0.8x.
#
# Everything runs on free loopback ports in a temporary directory and is stopped by the
# EXIT trap (TERM, then KILL after a bounded wait). Every wait is bounded.
#
# Environment (defaults in brackets):
#   RF_BENCH_PARTS         which parts [1 2 3]
#   RF_BENCH_DURATION      seconds per measured run [5]
#   RF_BENCH_REPEAT        alternating runs per comparison [3]
#   RF_BENCH_SHARDS        ringflowd --shards [nproc]
#   RF_BENCH_CONNECTIONS   ringflow-load connections for (1) [64]
#   RF_BENCH_RECOVERY_N    executions journaled for (2) [1000000]
#   RF_BENCH_RCACHE_SHARDS shards (and redis-benchmark connections) for (3) [1]
#   RF_BENCH_DEPTH         lookups in flight per shard, and redis-benchmark -P, for (3) [64]
#   RF_BENCH_VALUE_BYTES   cached value size for (3) [100]
#   RF_BENCH_BUILD         where the binaries are [build/release]
set -euo pipefail

cd "$(dirname "$0")/.."
BENCH=storage.sh
STOP_TRIES=100
# shellcheck source=bench/lib.sh
. bench/lib.sh

PARTS=${RF_BENCH_PARTS:-"1 2 3"}
DURATION=${RF_BENCH_DURATION:-5}
REPEAT=${RF_BENCH_REPEAT:-3}
SHARDS=${RF_BENCH_SHARDS:-$(nproc)}
CONNS=${RF_BENCH_CONNECTIONS:-64}
RECOVERY_N=${RF_BENCH_RECOVERY_N:-1000000}
RC_SHARDS=${RF_BENCH_RCACHE_SHARDS:-1}
DEPTH=${RF_BENCH_DEPTH:-64}
VALUE_BYTES=${RF_BENCH_VALUE_BYTES:-100}
BUILD=${RF_BENCH_BUILD:-build/release}
LOAD=$BUILD/ringflow-load
DAEMON=$BUILD/ringflowd
RCACHE=$BUILD/bench/rcache
GRAPH=bench/graphs/chain3.json
BODY='{"inputs":{"n":{{seq}}}}'

has_part() { [[ " $PARTS " == *" $1 "* ]]; }
progress() { echo "  $*" >&2; }

for t in jq curl timeout; do command -v $t >/dev/null || die "$t not found"; done
[[ -x $LOAD && -x $DAEMON ]] || die "build first: make && make bench-build"
if has_part 3; then
    [[ -x $RCACHE ]] || die "$RCACHE not found: make bench-build"
    command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null ||
        die "redis-server and redis-benchmark are needed (apt-get install redis-server)"
fi

bench_tmp

# start_daemon NAME FLAGS...: sets PORT_<NAME> and PID_<NAME>; data in $TMP/NAME.
start_daemon() {
    local name=$1 port i
    shift
    port=$(free_port)
    mkdir -p "$TMP/$name"
    "$DAEMON" --listen "127.0.0.1:$port" --shards "$SHARDS" --log-level info \
        --data-dir "$TMP/$name" "$@" >>"$TMP/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for ((i = 0; i < 600; i++)); do
        curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$port/readyz" && break
        kill -0 "$pid" 2>/dev/null || { tail -20 "$TMP/$name.log" >&2; die "$name exited"; }
        sleep 0.05
    done
    printf -v "PORT_$name" '%s' "$port"
    printf -v "PID_$name" '%s' "$pid"
    curl -sf -o /dev/null -X PUT -H 'Content-Type: application/json' --data-binary "@$GRAPH" \
        "http://127.0.0.1:$port/v1/graphs/chain3" || die "PUT chain3 on $name failed"
}

load_json() { # URL: one closed-loop run
    timeout $((DURATION + 60)) "$LOAD" --json -D "$DURATION" --warmup 1 -c "$CONNS" \
        -b "$BODY" "$1" || die "ringflow-load failed"
}


ROWS=()
row() { ROWS+=("$(printf '%-46s %18s %18s %7s  %s' "$@")"); }

part1() {
    local i a="" b="" s n sl nl
    echo "(1) POST chain3 executions: --durability sync vs none, $SHARDS shard(s)" >&2
    start_daemon sync --durability sync
    start_daemon none --durability none
    for ((i = 0; i < REPEAT; i++)); do
        s=$(load_json "http://127.0.0.1:$PORT_sync/v1/graphs/chain3/executions")
        n=$(load_json "http://127.0.0.1:$PORT_none/v1/graphs/chain3/executions")
        a+=" $(jq -r .rps <<<"$s")"
        b+=" $(jq -r .rps <<<"$n")"
        sl="p50 $(jq -r .latency_us.p50 <<<"$s") p99 $(jq -r .latency_us.p99 <<<"$s") us"
        nl="p50 $(jq -r .latency_us.p50 <<<"$n") p99 $(jq -r .latency_us.p99 <<<"$n") us"
        progress "sync $(jq -r .rps <<<"$s")/s ($sl)  none $(jq -r .rps <<<"$n")/s ($nl)"
    done
    a=$(median <<<"$a")
    b=$(median <<<"$b")
    row "(1) executions/s, durability sync vs none" "$(printf '%.0f/s' "$a")" \
        "$(printf '%.0f/s' "$b")" "$(ratio "$a" "$b")" "(sync / none)"
    row "    latency sync (last run)" "$sl" "" "" ""
    row "    latency none (last run)" "$nl" "" "" ""
    stop_pid "$PID_sync"
    stop_pid "$PID_none"
}

part2() {
    local total=0 out ok t0 t1 rss line i
    echo "(2) recovery of $RECOVERY_N journaled executions" >&2
    start_daemon rec --durability none --executions-max 20000
    for ((i = 0; i < 200 && total < RECOVERY_N; i++)); do
        out=$(timeout 120 "$LOAD" --json -D 10 --warmup 0 -c "$CONNS" -b "$BODY" \
            "http://127.0.0.1:$PORT_rec/v1/graphs/chain3/executions") || die "load failed"
        ok=$(jq -r '.status."202" // 0' <<<"$out")
        total=$((total + ok))
        progress "journaled $total"
    done
    stop_pid "$PID_rec"
    local du
    du=$(du -sh "$TMP/rec/journal" | cut -f1)
    t0=$(date +%s%N)
    "$DAEMON" --listen "127.0.0.1:$PORT_rec" --shards "$SHARDS" --log-level info \
        --data-dir "$TMP/rec" --durability none --executions-max 20000 >>"$TMP/rec.log" 2>&1 &
    PID_rec=$!
    PIDS+=("$PID_rec")
    for ((i = 0; i < 6000; i++)); do
        curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$PORT_rec/readyz" && break
        kill -0 "$PID_rec" 2>/dev/null || die "the daemon died during recovery"
        sleep 0.02
    done
    t1=$(date +%s%N)
    rss=$(awk '/VmRSS/ { print $2 }' "/proc/$PID_rec/status")
    line=$(grep '"msg":"recovered"' "$TMP/rec.log" | tail -1)
    row "(2) recovery, $total executions ($du journal)" \
        "$(awk -v t=$((t1 - t0)) 'BEGIN { printf "%.2f s to ready", t / 1e9 }')" \
        "$(jq -r '"read \(.read_ms) ms, apply \(.apply_ms) ms"' <<<"$line")" "" \
        "RSS after: $((rss / 1024)) MiB"
    stop_pid "$PID_rec"
}

part3() {
    local port pid i a="" b="" o r
    echo "(3) Redis cache-hit path vs redis-benchmark GET -P $DEPTH -c $RC_SHARDS" >&2
    port=$(free_port)
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$TMP" --logfile "$TMP/redis.log" &
    pid=$!
    PIDS+=("$pid")
    for ((i = 0; i < 100; i++)); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.05
    done
    # The peer's keys exist before it reads them: SET every key of its space once.
    redis-benchmark -p "$port" -t set -n 100000 -r 100000 -d "$VALUE_BYTES" -P "$DEPTH" \
        -c "$RC_SHARDS" -q >/dev/null 2>&1
    for ((i = 0; i < REPEAT; i++)); do
        o=$("$RCACHE" --json --redis "redis://127.0.0.1:$port" --shards "$RC_SHARDS" \
            --depth "$DEPTH" --keys 100000 --value-bytes "$VALUE_BYTES" --seconds "$DURATION")
        r=$(redis-benchmark -p "$port" -t get -n $((DURATION * 300000)) -r 100000 \
            -P "$DEPTH" -c "$RC_SHARDS" --csv 2>/dev/null | awk -F'"' '/"GET"/ { print $4 }')
        a+=" $(jq -r .lookups_per_s <<<"$o")"
        b+=" $r"
        progress "ringflow $(jq -r .lookups_per_s <<<"$o")/s (p50 $(jq -r .latency_us.p50 <<<"$o")" \
            "p99 $(jq -r .latency_us.p99 <<<"$o") us, $(jq -r .errors <<<"$o") errors)" \
            " redis-benchmark $r/s"
    done
    a=$(median <<<"$a")
    b=$(median <<<"$b")
    row "(3) cache hits via Redis vs redis-benchmark GET" "$(printf '%.0f/s' "$a")" \
        "$(printf '%.0f/s' "$b")" "$(ratio "$a" "$b")" \
        "target >= 0.80: $(awk -v r="$(ratio "$a" "$b")" 'BEGIN { print (r >= 0.8) ? "yes" : "NO" }')"
    stop_pid "$pid"
}

STAT0=$(head -n 1 /proc/stat)
if has_part 1; then part1; fi
if has_part 2; then part2; fi
if has_part 3; then part3; fi
STAT1=$(head -n 1 /proc/stat)

printf '\n%-46s %18s %18s %7s  %s\n' "benchmark (medians of $REPEAT)" "ringflow" "peer" "ratio" \
    "note"
for r in "${ROWS[@]}"; do echo "$r"; done
awk -v a="$STAT0" -v b="$STAT1" 'BEGIN { n = split(a, x); split(b, y); t = 0
    for (i = 2; i <= n; i++) t += y[i] - x[i]
    printf "CPU time stolen by the hypervisor during the runs: %.0f %%\n",
        (t > 0 ? 100 * (y[9] - x[9]) / t : 0) }'
