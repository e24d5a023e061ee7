#!/usr/bin/env bash
# bench/compare.sh: the HTTP and WebSocket comparisons of issue 4, in one go, as a table.
#
#   (1) ringflow-load vs wrk, both against a private nginx that answers 202 {"ok":true}
#       (-t1 -c64 for wrk, -c64 -d1 for ringflow-load, one nginx per worker count in
#       RF_BENCH_NGINX_WORKERS): the load generator must drive at least as much;
#   (2) ringflowd GET /healthz vs that nginx (with as many workers as ringflowd shards),
#       both driven by ringflow-load;
#   (3) POST /v1/graphs/chain3/executions (bench/graphs/chain3.json, three transforms,
#       {"inputs":{"n":{{seq}}}}) vs nginx answering the same POST: target >= 0.7x;
#   (4) --ws mode at RF_BENCH_WS_RATE executions/s: submit-to-execution.succeeded
#       p99, target < 1 ms.
# Each pair of figures is measured alternately RF_BENCH_REPEAT times and the
# medians are compared, because this kind of machine is noisy: read the ratios.
#
# Everything started here (nginx, ringflowd) listens on free loopback ports, lives in a
# temporary directory, and is stopped by the EXIT trap whatever happens (TERM, then KILL
# after a bounded wait). Every wait is bounded. Missing tools or binaries are reported
# before anything starts. Run from anywhere; paths are relative to the repository root.
#
# Environment (defaults in brackets; not RINGFLOW_*, which ringflowd reads as its flags and
# refuses when it does not know them):
#   RF_BENCH_DURATION        seconds measured per run [5]
#   RF_BENCH_WARMUP          seconds of warmup per ringflow-load run [1]
#   RF_BENCH_REPEAT          alternating runs per comparison [3]
#   RF_BENCH_PARTS           which comparisons [1 2 3 4]
#   RF_BENCH_CONNECTIONS     connections for (1)-(3) [64]
#   RF_BENCH_NGINX_WORKERS   worker counts for (1) [1 2]
#   RF_BENCH_SHARDS          ringflowd --shards, and nginx workers for (2)-(3) [nproc]
#   RF_BENCH_WS_RATE         executions/s for (4) [10000]
#   RF_BENCH_WS_SUBSCRIBERS  WebSocket subscribers for (4) [16]
#   RF_BENCH_LOAD_THREADS    ringflow-load --threads for (2)-(4) [1]
#   RF_BENCH_RINGFLOWD_FLAGS                extra ringflowd flags, e.g. "--durability none" []
#   RF_BENCH_BUILD                 where the binaries are [build/release]
set -euo pipefail

cd "$(dirname "$0")/.."
BENCH=compare.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

DURATION=${RF_BENCH_DURATION:-5}
WARMUP=${RF_BENCH_WARMUP:-1}
REPEAT=${RF_BENCH_REPEAT:-3}
PARTS=${RF_BENCH_PARTS:-"1 2 3 4"}
CONNS=${RF_BENCH_CONNECTIONS:-64}
NGINX_WORKERS=${RF_BENCH_NGINX_WORKERS:-"1 2"}
SHARDS=${RF_BENCH_SHARDS:-$(nproc)}
WS_RATE=${RF_BENCH_WS_RATE:-10000}
WS_SUBS=${RF_BENCH_WS_SUBSCRIBERS:-16}
LOAD_THREADS=${RF_BENCH_LOAD_THREADS:-1}
RF_BENCH_RINGFLOWD_FLAGS=${RF_BENCH_RINGFLOWD_FLAGS:-}
BUILD=${RF_BENCH_BUILD:-build/release}
LOAD=$BUILD/ringflow-load
DAEMON=$BUILD/ringflowd
GRAPH=bench/graphs/chain3.json
BODY='{"inputs":{"n":{{seq}}}}'

READY_TRIES=100     # readiness polls, 0.1 s apart: at most 10 s
STOP_TRIES=50       # polls after TERM before KILL: at most 5 s
RUN_SLACK=30        # seconds a single run may exceed its duration before it is killed

has_part() {
    [[ " $PARTS " == *" $1 "* ]]
}

# --- prerequisites, before anything starts ------------------------------------------------

need_tool() {
    command -v "$1" >/dev/null 2>&1 || die "$1 not found ($2)"
}

need_tool jq "apt-get install -y jq"
need_tool curl "apt-get install -y curl"
need_tool timeout "coreutils"
[[ -x $LOAD ]] || die "$LOAD not found: build it first (make)"
[[ "$DURATION" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "RF_BENCH_DURATION must be a number of seconds"
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || die "RF_BENCH_REPEAT must be a positive integer"
if has_part 1 || has_part 2 || has_part 3; then
    need_tool nginx "apt-get install -y nginx-light"
fi
if has_part 1; then
    need_tool wrk "apt-get install -y wrk"
fi
if has_part 2 || has_part 3 || has_part 4; then
    [[ -x $DAEMON ]] || die "$DAEMON not found: parts 2-4 need the daemon (build it with make," \
        "or run part 1 alone: RF_BENCH_PARTS=1 $0)"
    [[ -f $GRAPH ]] || die "$GRAPH not found"
fi

# --- processes we own -----------------------------------------------------------------------

bench_tmp

forget_pid() {
    local keep=() pid
    for pid in "${PIDS[@]}"; do
        [[ $pid == "$1" ]] || keep+=("$pid")
    done
    PIDS=("${keep[@]}")
}

# wait_ready URL PID LOG: poll URL until it answers 2xx, PID dies, or READY_TRIES run out.
wait_ready() {
    local url=$1 pid=$2 log=$3 i
    for ((i = 0; i < READY_TRIES; i++)); do
        if curl -sf -o /dev/null --max-time 1 "$url"; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$log" >&2 || true
            die "the server behind $url exited during startup (log above)"
        fi
        sleep 0.1
    done
    tail -n 20 "$log" >&2 || true
    die "$url not ready after $((READY_TRIES / 10)) s"
}

NGINX_PID=
NGINX_PORT=
start_nginx() {
    local workers=$1 dir=$TMP/nginx-$1
    mkdir -p "$dir"
    NGINX_PORT=$(free_port)
    cat >"$dir/nginx.conf" <<EOF
worker_processes $workers;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    default_type application/json;
    client_body_temp_path $dir/body;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / { return 202 '{"ok":true}'; }
    }
}
EOF
    nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stdout.log" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    wait_ready "http://127.0.0.1:$NGINX_PORT/" "$NGINX_PID" "$dir/error.log"
}

stop_nginx() {
    stop_pid "$NGINX_PID"
    forget_pid "$NGINX_PID"
    NGINX_PID=
}

DAEMON_PID=
DAEMON_PORT=
start_daemon() {
    local dir=$TMP/ringflowd
    mkdir -p "$dir/data"
    DAEMON_PORT=$(free_port)
    # shellcheck disable=SC2086 # RF_BENCH_RINGFLOWD_FLAGS is a list of flags
    "$DAEMON" --listen "127.0.0.1:$DAEMON_PORT" --shards "$SHARDS" --log-level warn \
        --data-dir "$dir/data" $RF_BENCH_RINGFLOWD_FLAGS >"$dir/log" 2>&1 &
    DAEMON_PID=$!
    PIDS+=("$DAEMON_PID")
    wait_ready "http://127.0.0.1:$DAEMON_PORT/healthz" "$DAEMON_PID" "$dir/log"
    local out
    out=$(curl -sS --max-time 10 -w '\n%{http_code}' -X PUT -H 'Content-Type: application/json' \
        --data-binary "@$GRAPH" \
        "http://127.0.0.1:$DAEMON_PORT/v1/graphs/chain3") || die "PUT /v1/graphs/chain3 failed"
    [[ ${out##*$'\n'} == 20[01] ]] || die "PUT /v1/graphs/chain3 answered: $out"
}

# --- measuring ------------------------------------------------------------------------------

# load ARGS...: one ringflow-load run, its JSON object on stdout.
load() {
    local out
    out=$(timeout $((${DURATION%.*} + ${WARMUP%.*} + RUN_SLACK)) \
        "$LOAD" --json -D "$DURATION" --warmup "$WARMUP" "$@") ||
        die "ringflow-load $* failed (status $?)"
    echo "$out"
}

# Problems worth a note beside a figure: errors, and statuses outside 2xx.
load_notes() {
    jq -r '[(.errors | to_entries[] | select(.value > 0) | "\(.key) \(.value)"),
            (.status | to_entries[] | select((.key | test("^2")) | not) | "status \(.key): \(.value)")]
           | join(", ")' <<<"$1"
}

notes() {
    local n
    n=$(load_notes "$1")
    echo "${n:+ ($n)}"
}

wrk_rps() {
    local out
    out=$(timeout $((${DURATION%.*} + RUN_SLACK)) wrk -t1 -c"$CONNS" -d"${DURATION}s" "$1") ||
        die "wrk failed"
    awk '/^Requests\/sec:/ { print $2 }' <<<"$out"
}

progress() {
    echo "  $*" >&2
}

ROWS=()
row() { # name subject peer ratio target verdict
    ROWS+=("$(printf '%-44s %16s %16s %7s  %-10s %s' "$@")")
}

verdict() { # value op limit
    awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
        ok = (op == ">=") ? (v >= l) : (v < l); print ok ? "yes" : "NO" }'
}

part1() {
    local w i a b rl wk
    for w in $NGINX_WORKERS; do
        echo "(1) ringflow-load vs wrk, nginx with $w worker(s)" >&2
        start_nginx "$w"
        a=""
        b=""
        for ((i = 0; i < REPEAT; i++)); do
            rl=$(load -c "$CONNS" -d 1 "http://127.0.0.1:$NGINX_PORT/")
            a+=" $(jq -r .rps <<<"$rl")"
            wk=$(wrk_rps "http://127.0.0.1:$NGINX_PORT/")
            b+=" $wk"
            progress "ringflow-load $(jq -r .rps <<<"$rl") req/s$(notes "$rl")  wrk $wk req/s"
        done
        stop_nginx
        a=$(median <<<"$a")
        b=$(median <<<"$b")
        row "(1) ringflow-load vs wrk, nginx x$w" "$(printf '%.0f req/s' "$a")" \
            "$(printf '%.0f req/s' "$b")" "$(ratio "$a" "$b")" ">= 1.00" \
            "$(verdict "$(ratio "$a" "$b")" ">=" 1)"
    done
}

# compare_daemon NAME TARGET_RATIO DAEMON_ARGS -- NGINX_ARGS: alternate, medians, a row.
compare_daemon() {
    local name=$1 target=$2 i a="" b="" d n
    shift 2
    local dargs=() nargs=()
    while [[ $1 != -- ]]; do dargs+=("$1"); shift; done
    shift
    nargs=("$@")
    for ((i = 0; i < REPEAT; i++)); do
        d=$(load -c "$CONNS" -t "$LOAD_THREADS" "${dargs[@]}")
        n=$(load -c "$CONNS" -t "$LOAD_THREADS" "${nargs[@]}")
        a+=" $(jq -r .rps <<<"$d")"
        b+=" $(jq -r .rps <<<"$n")"
        progress "ringflowd $(jq -r .rps <<<"$d") req/s$(notes "$d")  nginx $(jq -r .rps <<<"$n") req/s$(notes "$n")"
    done
    a=$(median <<<"$a")
    b=$(median <<<"$b")
    row "$name" "$(printf '%.0f req/s' "$a")" "$(printf '%.0f req/s' "$b")" "$(ratio "$a" "$b")" \
        "${target:+>= $target}" "${target:+$(verdict "$(ratio "$a" "$b")" ">=" "$target")}"
}

part2() {
    echo "(2) ringflowd GET /healthz vs nginx x$SHARDS" >&2
    compare_daemon "(2) ringflowd GET /healthz vs nginx" "" \
        "http://127.0.0.1:$DAEMON_PORT/healthz" -- "http://127.0.0.1:$NGINX_PORT/healthz"
}

part3() {
    echo "(3) POST /v1/graphs/chain3/executions vs nginx x$SHARDS" >&2
    compare_daemon "(3) POST chain3 executions vs nginx" 0.70 \
        -b "$BODY" "http://127.0.0.1:$DAEMON_PORT/v1/graphs/chain3/executions" -- \
        -b "$BODY" "http://127.0.0.1:$NGINX_PORT/v1/graphs/chain3/executions"
}

part4() {
    local i out p99s="" eps="" xps=""
    echo "(4) WebSocket: $WS_RATE executions/s, submit to execution.succeeded" >&2
    for ((i = 0; i < REPEAT; i++)); do
        out=$(load --ws -c "$WS_SUBS" -t "$LOAD_THREADS" -R "$WS_RATE" -b "$BODY" \
            "http://127.0.0.1:$DAEMON_PORT/v1/graphs/chain3/executions")
        p99s+=" $(jq -r '.latency_us."p99"' <<<"$out")"
        xps+=" $(jq -r .rps <<<"$out")"
        eps+=" $(jq -r .ws.events_per_s <<<"$out")"
        progress "p99 $(jq -r '.latency_us."p99"' <<<"$out") us, p50 $(jq -r .latency_us.p50 <<<"$out") us," \
            "$(jq -r .rps <<<"$out") executions/s, $(jq -r .ws.events_per_s <<<"$out") events/s," \
            "late $(jq -r .late <<<"$out")$(notes "$out")"
    done
    local p99 x e
    p99=$(median <<<"$p99s")
    x=$(median <<<"$xps")
    e=$(median <<<"$eps")
    row "(4) WS submit->succeeded p99 @ $WS_RATE/s" "$(printf '%.0f us' "$p99")" \
        "$(printf '%.0f exec/s' "$x")" "" "< 1000 us" "$(verdict "$p99" "<" 1000)"
    row "    events received" "$(printf '%.0f ev/s' "$e")" "" "" "" ""
}

# The share of CPU time the hypervisor took from this machine since the last call (the
# "steal" column of /proc/stat): figures measured while it is high say little.
STAT_LAST=""
steal_pct() {
    local now
    now=$(head -n 1 /proc/stat)
    if [[ -n $STAT_LAST ]]; then
        awk -v a="$STAT_LAST" -v b="$now" 'BEGIN {
            n = split(a, x); split(b, y); t = 0
            for (i = 2; i <= n; i++) t += y[i] - x[i]
            printf "%.0f", (t > 0 ? 100 * (y[9] - x[9]) / t : 0) }'
    fi
    STAT_LAST=$now
}
steal_pct >/dev/null

echo "compare.sh: $DURATION s per run (+$WARMUP s warmup for ringflow-load), $REPEAT alternating runs," \
    "parts: $PARTS" >&2
if has_part 1; then
    part1
fi
if has_part 2 || has_part 3 || has_part 4; then
    start_daemon
fi
if has_part 2 || has_part 3; then
    start_nginx "$SHARDS"
    if has_part 2; then part2; fi
    if has_part 3; then part3; fi
    stop_nginx
fi
if has_part 4; then
    part4
fi

printf '\n%-44s %16s %16s %7s  %-10s %s\n' "comparison (medians of $REPEAT)" "subject" "peer" \
    "ratio" "target" "met"
for r in "${ROWS[@]}"; do
    echo "$r"
done
echo "CPU time stolen by the hypervisor during the runs: $(steal_pct) %"
