/*
 * bench/micro.cc: micro-benchmarks of the scheduler's parts and of one engine round trip,
 * on Google Benchmark.
 *
 * This file is a thin C++ shell. Everything timed is C in bench/micro_ops.c, reached
 * through the plain interface of bench/micro_ops.h, because the deque and queue headers
 * are C17 atomics that C++ cannot include. Here we only choose batch sizes, start and
 * stop helpers outside the timed loop, and report rates.
 *
 * Every benchmark reports items/s (SetItemsProcessed) and a `per_item` counter, the
 * inverse rate: seconds per item, printed with an SI prefix (e.g. "2.5n" = 2.5 ns).
 *   deque/push_pop     owner pushes 64 then pops 64 (LIFO); item = one push + one pop
 *   deque/steal        steals from a pre-filled deque on one thread (uncontended CAS)
 *   deque/contended    the owner's push_pop while a thief thread steals nonstop;
 *                      `stolen` = the fraction of items the thief got
 *   mq/push_pop        rf_mq push_mpsc 64 then pop_sc 64 on one thread
 *   mq/spsc_pair       this thread produces, a consumer thread pops: messages/s;
 *                      `full` = pushes per message that found the queue full
 *   engine/roundtrip   rf_submit of a 1-node noop plan + rf_exec_wait: submit -> inbox
 *                      -> wake a parked shard -> run -> futex wake; item = execution
 *   engine/chain       one execution of a 10,000-node noop chain per iteration, 1 shard;
 *                      item = node, so per_item is the shard loop's cost per node
 *   engine/fanout      1 root -> 9,998 -> 1 sink on 2 shards, so the idle shard steals;
 *                      `steals` = successful steals per execution
 * The contended and engine benchmarks involve two threads and sleeping, so they are
 * timed in real time, not the benchmark thread's CPU time. The uncontended numbers are
 * the peers the contended ones should be read against, measured in the same run.
 *
 * Engines (1 and 2 shards, unpinned, plan_nodes_max 2^20) and plans are made on first
 * use, so a --benchmark_filter that skips the engine group starts no shard threads
 * (callgrind runs the deque group alone). main() stops and frees them after the last
 * benchmark ran.
 */
#include "bench/micro_ops.h"

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>

namespace
{

constexpr uint32_t kBatch = 64;           /* items per call into micro_ops.c */
constexpr uint32_t kStealFill = 1u << 16; /* deque/steal refills this many when empty */
constexpr uint32_t kMqCapacity = 4096;    /* slots; the pair's producer spins when full */
constexpr uint32_t kPlanNodes = 10000;    /* the spec's default plan bound */

void set_rate(benchmark::State &state, uint64_t items)
{
    state.SetItemsProcessed(static_cast<int64_t>(items));
    state.counters["per_item"] = benchmark::Counter(
        static_cast<double>(items), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

/* --- engines and plans, made once ---------------------------------------------------------- */

struct Engines {
    rf_bm_engine *eng[3] = {nullptr, nullptr, nullptr}; /* by shard count, 1 and 2 */
    rf_bm_plan *single = nullptr;                       /* 1 node, on eng[1] */
    rf_bm_plan *chain = nullptr;                        /* kPlanNodes, on eng[1] */
    rf_bm_plan *fanout = nullptr;                       /* kPlanNodes, on eng[2] */
} g_engines;

rf_bm_engine *engine(benchmark::State &state, uint32_t shards)
{
    rf_bm_engine *&e = g_engines.eng[shards];

    if (!e) {
        int rc = rf_bm_engine_new(shards, &e);
        if (rc < 0) {
            state.SkipWithError(rf_bm_strerror(rc));
            e = nullptr;
        }
    }
    return e;
}

rf_bm_plan *plan(benchmark::State &state, rf_bm_plan *&slot, rf_bm_engine *e,
                 enum rf_bm_shape shape, uint32_t n)
{
    if (e && !slot) {
        int rc = rf_bm_plan_new(e, shape, n, &slot);
        if (rc < 0) {
            state.SkipWithError(rf_bm_strerror(rc));
            slot = nullptr;
        }
    }
    return slot;
}

void engines_free()
{
    rf_bm_plan_free(g_engines.single);
    rf_bm_plan_free(g_engines.chain);
    rf_bm_plan_free(g_engines.fanout);
    for (rf_bm_engine *e : g_engines.eng)
        rf_bm_engine_free(e);
    g_engines = Engines{};
}

/* Run `p` once per iteration; items are nodes. Returns false after reporting an error. */
bool run_loop(benchmark::State &state, rf_bm_engine *e, rf_bm_plan *p)
{
    for (auto _ : state) {
        int rc = rf_bm_run(e, p);
        if (rc < 0) {
            state.SkipWithError(rf_bm_strerror(rc));
            return false;
        }
    }
    set_rate(state, state.iterations() * rf_bm_plan_nodes(p));
    return true;
}

/* --- deque ------------------------------------------------------------------------------- */

void deque_push_pop(benchmark::State &state)
{
    rf_bm_deque *q = rf_bm_deque_new();
    uint64_t popped = 0;

    if (!q) {
        state.SkipWithError("out of memory");
        return;
    }
    for (auto _ : state)
        popped += rf_bm_deque_push_pop(q, kBatch);
    benchmark::DoNotOptimize(popped);
    set_rate(state, popped);
    rf_bm_deque_free(q);
}

void deque_steal(benchmark::State &state)
{
    rf_bm_deque *q = rf_bm_deque_new();
    uint64_t taken = 0;

    if (!q || rf_bm_deque_fill(q, kStealFill) < 0) {
        state.SkipWithError("out of memory");
        rf_bm_deque_free(q);
        return;
    }
    for (auto _ : state) {
        uint64_t n = rf_bm_deque_steal_n(q, kBatch);
        taken += n;
        if (n < kBatch) { /* empty: refill, untimed (once per kStealFill items) */
            state.PauseTiming();
            (void)rf_bm_deque_fill(q, kStealFill);
            state.ResumeTiming();
        }
    }
    set_rate(state, taken);
    rf_bm_deque_free(q);
}

void deque_contended(benchmark::State &state)
{
    rf_bm_deque *q = rf_bm_deque_new();
    uint64_t popped = 0;

    if (!q || rf_bm_deque_thief_start(q) < 0) {
        state.SkipWithError("cannot start the thief");
        rf_bm_deque_free(q);
        return;
    }
    for (auto _ : state)
        popped += rf_bm_deque_push_pop(q, kBatch);
    uint64_t stolen = rf_bm_deque_thief_stop(q);
    uint64_t items = static_cast<uint64_t>(state.iterations()) * kBatch;
    set_rate(state, items);
    state.counters["stolen"] = items ? static_cast<double>(stolen) / items : 0.0;
    benchmark::DoNotOptimize(popped);
    rf_bm_deque_free(q);
}

/* --- message queue ------------------------------------------------------------------------- */

void mq_push_pop(benchmark::State &state)
{
    rf_bm_mq *q = rf_bm_mq_new(kMqCapacity);
    uint64_t popped = 0;

    if (!q) {
        state.SkipWithError("out of memory");
        return;
    }
    for (auto _ : state)
        popped += rf_bm_mq_push_pop(q, kBatch);
    benchmark::DoNotOptimize(popped);
    set_rate(state, popped);
    rf_bm_mq_free(q);
}

void mq_spsc_pair(benchmark::State &state)
{
    rf_bm_mq *q = rf_bm_mq_new(kMqCapacity);
    uint64_t full = 0;

    if (!q || rf_bm_mq_consumer_start(q) < 0) {
        state.SkipWithError("cannot start the consumer");
        rf_bm_mq_free(q);
        return;
    }
    for (auto _ : state)
        full += rf_bm_mq_produce(q, kBatch);
    uint64_t popped = rf_bm_mq_consumer_stop(q);
    set_rate(state, popped);
    state.counters["full"] = popped ? static_cast<double>(full) / popped : 0.0;
    rf_bm_mq_free(q);
}

/* --- engine round trips -------------------------------------------------------------------- */

void engine_roundtrip(benchmark::State &state)
{
    rf_bm_engine *e = engine(state, 1);
    rf_bm_plan *p = plan(state, g_engines.single, e, RF_BM_SHAPE_CHAIN, 1);

    if (p)
        run_loop(state, e, p);
}

void engine_chain(benchmark::State &state)
{
    rf_bm_engine *e = engine(state, 1);
    rf_bm_plan *p = plan(state, g_engines.chain, e, RF_BM_SHAPE_CHAIN, kPlanNodes);

    if (p)
        run_loop(state, e, p);
}

void engine_fanout(benchmark::State &state)
{
    rf_bm_engine *e = engine(state, 2);
    rf_bm_plan *p = plan(state, g_engines.fanout, e, RF_BM_SHAPE_FANOUT, kPlanNodes);

    if (!p)
        return;
    uint64_t steals0 = rf_bm_engine_steals(e);
    if (run_loop(state, e, p) && state.iterations() > 0)
        state.counters["steals"] =
            static_cast<double>(rf_bm_engine_steals(e) - steals0) / state.iterations();
}

} // namespace

BENCHMARK(deque_push_pop)->Name("deque/push_pop");
BENCHMARK(deque_steal)->Name("deque/steal");
BENCHMARK(deque_contended)->Name("deque/contended")->UseRealTime();
BENCHMARK(mq_push_pop)->Name("mq/push_pop");
BENCHMARK(mq_spsc_pair)->Name("mq/spsc_pair")->UseRealTime();
BENCHMARK(engine_roundtrip)->Name("engine/roundtrip")->UseRealTime();
BENCHMARK(engine_chain)->Name("engine/chain")->UseRealTime();
BENCHMARK(engine_fanout)->Name("engine/fanout")->UseRealTime();

int main(int argc, char **argv)
{
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    engines_free();
    return 0;
}
