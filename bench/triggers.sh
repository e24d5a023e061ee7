#!/usr/bin/env bash
# bench/triggers.sh: executions/s triggered through Kafka against through HTTP, same graph,
# same daemon, same run (issue 6).
#
#   (1) RF_BENCH_KAFKA_N messages ({"graph":"chain3","inputs":{"n":<i>}}) are produced with
#       kcat into the trigger topic of librdkafka's mock cluster (tests/tools/kmock, 4
#       partitions) before ringflowd starts; then ringflowd consumes them: executions/s
#       from the first execution to the last (read from /metrics), each one journaled and
#       its offset committed, as in production;
#   (2) ringflow-load posts the same graph over HTTP to the same daemon, closed loop,
#       RF_BENCH_CONNECTIONS connections, RF_BENCH_DURATION seconds.
# Repeated RF_BENCH_REPEAT times (a fresh daemon and topic each), medians and the ratio.
#
# Environment: RF_BENCH_KAFKA_N [200000], RF_BENCH_DURATION [5], RF_BENCH_REPEAT [3],
# RF_BENCH_CONNECTIONS [64], RF_BENCH_SHARDS [nproc], RF_BENCH_RINGFLOWD_FLAGS [],
# RF_BENCH_BUILD [build/release].
set -euo pipefail

cd "$(dirname "$0")/.."
BENCH=triggers.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

N=${RF_BENCH_KAFKA_N:-200000}
DURATION=${RF_BENCH_DURATION:-5}
REPEAT=${RF_BENCH_REPEAT:-3}
CONNS=${RF_BENCH_CONNECTIONS:-64}
SHARDS=${RF_BENCH_SHARDS:-$(nproc)}
FLAGS=${RF_BENCH_RINGFLOWD_FLAGS:-}
BUILD=${RF_BENCH_BUILD:-build/release}
KMOCK=$BUILD/tests/tools/kmock

for t in kcat jq curl timeout; do command -v $t >/dev/null || die "$t not found"; done
[[ -x $BUILD/ringflowd && -x $BUILD/ringflow-load && -x $KMOCK ]] ||
    die "build first: make && make $KMOCK"

bench_tmp

metric() { # PORT NAME-PREFIX
    { curl -s --max-time 2 "http://127.0.0.1:$1/metrics" || true; } |
        awk -v m="$2" 'index($0, m) == 1 { print $2; exit }'
}

# Keyed (key TAB value) so the partitioner spreads them evenly: the mock cluster keeps at
# most 5 MB per partition and drops the oldest beyond that.
seq 0 $((N - 1)) | awk '{ printf "k%d\t{\"graph\":\"chain3\",\"inputs\":{\"n\":%d}}\n", $1, $1 }' >"$TMP/msgs"
K="" H=""
for ((r = 0; r < REPEAT; r++)); do
    mkfifo "$TMP/ctl$r"
    "$KMOCK" 1 ringflow.executions:4 ringflow.executions.dlq:1 <"$TMP/ctl$r" >"$TMP/boot$r" 2>/dev/null &
    PIDS+=($!)
    exec 7>"$TMP/ctl$r"
    for ((i = 0; i < 50; i++)); do [[ -s $TMP/boot$r ]] && break; sleep 0.1; done
    B=$(head -1 "$TMP/boot$r")
    timeout 300 kcat -P -q -b "$B" -t ringflow.executions -K $'\t' -l "$TMP/msgs" || die "kcat failed"
    port=$(free_port)
    # shellcheck disable=SC2086
    "$BUILD/ringflowd" --listen "127.0.0.1:$port" --shards "$SHARDS" --log-level warn \
        --data-dir "$TMP/d$r" --graphs-dir bench/graphs --kafka-brokers "$B" $FLAGS \
        >"$TMP/log$r" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    t0="" c=0
    for ((i = 0; i < 6000; i++)); do
        c=$(metric "$port" 'ringflow_kafka_messages_total{outcome="execution"}')
        c=${c:-0}
        now=$(date +%s.%N)
        if [[ -z $t0 && $c != 0 ]]; then t0=$now; c0=$c; fi
        [[ $c -ge $N ]] && break
        sleep 0.05
    done
    if [[ $c -lt $N ]]; then
        curl -s --max-time 2 "http://127.0.0.1:$port/metrics" | grep kafka >&2 || true
        tail -20 "$TMP/log$r" >&2
        [[ -z ${RF_BENCH_KEEP_LOG:-} ]] || cp "$TMP/log$r" "$RF_BENCH_KEEP_LOG"
        die "only $c of $N messages became executions"
    fi
    k=$(awk -v n=$((N - c0)) -v a="$t0" -v b="$now" 'BEGIN { printf "%.0f", n / (b - a) }')
    out=$(timeout $((DURATION + 60)) "$BUILD/ringflow-load" --json -D "$DURATION" --warmup 1 \
        -c "$CONNS" -b '{"inputs":{"n":{{seq}}}}' \
        "http://127.0.0.1:$port/v1/graphs/chain3/executions")
    h=$(jq -r .rps <<<"$out")
    echo "  run $((r + 1)): kafka $k executions/s ($N messages), http $h executions/s" \
        "(p50 $(jq -r .latency_us.p50 <<<"$out") us, p99 $(jq -r .latency_us.p99 <<<"$out") us)" >&2
    K+=" $k"
    H+=" $h"
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    exec 7>&-
done
k=$(median <<<"$K")
h=$(median <<<"$H")
printf '\n%-48s %14s %14s %7s\n' "executions/s (medians of $REPEAT)" "kafka" "http" "ratio"
printf '%-48s %14.0f %14.0f %7s\n' "chain3, $SHARDS shard(s) ${FLAGS:-(defaults)}" "$k" "$h" \
    "$(ratio "$k" "$h")"
