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
 *   lineage/http       rf_lineage of an http node's config (6 fields, 247 canonical bytes);
 *                      item = node run hashed, so per_item is the cost per run
 *   lineage/large_xxh3 the peer: plain XXH3-128 over the canonical bytes of a 1.37 MB
 *                      array of records (bytes/s), measured first
 *   lineage/large      rf_lineage of that array (canonicalize + hash), bytes/s;
 *                      `vs_xxh3` = its rate as a fraction of the peer's in this run
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

#include <chrono>
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

/* --- lineage hash ------------------------------------------------------------------------- */

/* Parameter sets, built on first use and freed at exit by the destructor (main() stays
 * as it is). The XXH3 peer stores its rate so lineage/large can report the ratio. */
struct LineageSets {
    rf_bm_lineage *http = nullptr;
    rf_bm_lineage *large = nullptr;
    double xxh3_bytes_per_s = 0; /* lineage/large_xxh3's last measured rate */
    ~LineageSets()
    {
        rf_bm_lineage_free(http);
        rf_bm_lineage_free(large);
    }
} g_lineage;

rf_bm_lineage *lineage_set(benchmark::State &state, rf_bm_lineage *&slot,
                           enum rf_bm_lineage_shape shape)
{
    if (!slot && rf_bm_lineage_new(shape, &slot) < 0) {
        state.SkipWithError("cannot build the lineage params");
        slot = nullptr;
    }
    return slot;
}

void lineage_http(benchmark::State &state)
{
    rf_bm_lineage *l = lineage_set(state, g_lineage.http, RF_BM_LINEAGE_HTTP);
    uint64_t sum = 0;

    if (!l)
        return;
    for (auto _ : state)
        sum += rf_bm_lineage_hash(l, kBatch);
    benchmark::DoNotOptimize(sum);
    uint64_t items = static_cast<uint64_t>(state.iterations()) * kBatch;
    set_rate(state, items); /* per_item: ns per node run hashed */
    state.SetBytesProcessed(static_cast<int64_t>(items * rf_bm_lineage_jcs_bytes(l)));
    state.counters["jcs_bytes"] = static_cast<double>(rf_bm_lineage_jcs_bytes(l));
}

/* One pass over the large set per iteration, timed on the wall clock here as well, so the
 * two large benchmarks can be compared. Returns bytes per second. */
template <typename F> double lineage_large_loop(benchmark::State &state, rf_bm_lineage *l, F pass)
{
    uint64_t sum = 0;
    auto t0 = std::chrono::steady_clock::now();

    for (auto _ : state)
        sum += pass(l);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    benchmark::DoNotOptimize(sum);
    uint64_t bytes = static_cast<uint64_t>(state.iterations()) * rf_bm_lineage_jcs_bytes(l);
    state.SetBytesProcessed(static_cast<int64_t>(bytes));
    state.counters["jcs_bytes"] = static_cast<double>(rf_bm_lineage_jcs_bytes(l));
    return s > 0 ? static_cast<double>(bytes) / s : 0;
}

void lineage_large_xxh3(benchmark::State &state)
{
    rf_bm_lineage *l = lineage_set(state, g_lineage.large, RF_BM_LINEAGE_LARGE);

    if (l)
        g_lineage.xxh3_bytes_per_s =
            lineage_large_loop(state, l, [](rf_bm_lineage *x) { return rf_bm_lineage_xxh3(x, 1); });
}

void lineage_large(benchmark::State &state)
{
    rf_bm_lineage *l = lineage_set(state, g_lineage.large, RF_BM_LINEAGE_LARGE);

    if (!l)
        return;
    double bps =
        lineage_large_loop(state, l, [](rf_bm_lineage *x) { return rf_bm_lineage_hash(x, 1); });
    /* vs_xxh3: this rate as a fraction of plain XXH3-128 over the same bytes, this run */
    if (g_lineage.xxh3_bytes_per_s > 0)
        state.counters["vs_xxh3"] = bps / g_lineage.xxh3_bytes_per_s;
}

/* --- template resolution ----------------------------------------------------------------- */

/* The compiled config, built on first use and freed at exit by the destructor. The deep
 * copy peer stores its time per item so tmpl/resolve can report the ratio. */
struct TmplSet {
    rf_bm_tmpl *t = nullptr;
    double copy_s_per_item = 0; /* tmpl/deep_copy's last measured time per copy */
    ~TmplSet()
    {
        rf_bm_tmpl_free(t);
    }
} g_tmpl;

rf_bm_tmpl *tmpl_set(benchmark::State &state)
{
    if (!g_tmpl.t) {
        int rc = rf_bm_tmpl_new(&g_tmpl.t);
        if (rc < 0) {
            state.SkipWithError(rf_bm_strerror(rc));
            g_tmpl.t = nullptr;
        }
    }
    return g_tmpl.t;
}

/* kBatch operations per iteration; returns wall seconds per operation, or -1 on error. */
template <typename F> double tmpl_loop(benchmark::State &state, rf_bm_tmpl *t, F batch)
{
    int64_t members = 0;
    auto t0 = std::chrono::steady_clock::now();

    for (auto _ : state) {
        int64_t m = batch(t);
        if (m < 0) {
            state.SkipWithError(rf_bm_strerror(static_cast<int>(m)));
            return -1;
        }
        members += m;
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    benchmark::DoNotOptimize(members);
    uint64_t items = static_cast<uint64_t>(state.iterations()) * kBatch;
    set_rate(state, items); /* per_item: ns per resolution (or per copy) */
    return items ? s / static_cast<double>(items) : -1;
}

void tmpl_deep_copy(benchmark::State &state)
{
    rf_bm_tmpl *t = tmpl_set(state);

    if (t)
        g_tmpl.copy_s_per_item =
            tmpl_loop(state, t, [](rf_bm_tmpl *x) { return rf_bm_tmpl_deep_copy(x, kBatch); });
}

void tmpl_resolve(benchmark::State &state)
{
    rf_bm_tmpl *t = tmpl_set(state);

    if (!t)
        return;
    double s = tmpl_loop(state, t, [](rf_bm_tmpl *x) { return rf_bm_tmpl_resolve(x, kBatch); });
    /* vs_copy: time per resolution over time per json_deep_copy of the config, this run */
    if (s > 0 && g_tmpl.copy_s_per_item > 0)
        state.counters["vs_copy"] = s / g_tmpl.copy_s_per_item;
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
BENCHMARK(lineage_http)->Name("lineage/http");
/* The peer first: lineage/large reads its rate. */
BENCHMARK(lineage_large_xxh3)->Name("lineage/large_xxh3")->UseRealTime();
BENCHMARK(lineage_large)->Name("lineage/large")->UseRealTime();
/* The peer first: tmpl/resolve reads its time. */
BENCHMARK(tmpl_deep_copy)->Name("tmpl/deep_copy")->UseRealTime();
BENCHMARK(tmpl_resolve)->Name("tmpl/resolve")->UseRealTime();

/* --- webhook signatures ------------------------------------------------------------------ */

void hooksig(benchmark::State &state, bool peer)
{
    rf_bm_hooksig *h = nullptr;
    uint64_t sum = 0;
    const uint32_t batch = 16;

    if (rf_bm_hooksig_new(static_cast<uint32_t>(state.range(0)), &h) < 0) {
        state.SkipWithError("no memory");
        return;
    }
    for (auto _ : state)
        sum += peer ? rf_bm_hooksig_hmac(h, batch) : rf_bm_hooksig_verify(h, batch);
    benchmark::DoNotOptimize(sum);
    uint64_t items = static_cast<uint64_t>(state.iterations()) * batch;
    set_rate(state, items); /* per_item: ns per delivery */
    state.SetBytesProcessed(static_cast<int64_t>(items) * state.range(0));
    rf_bm_hooksig_free(h);
}

void hooksig_verify(benchmark::State &state)
{
    hooksig(state, false);
}

void hooksig_hmac(benchmark::State &state)
{
    hooksig(state, true);
}

/* The peer first: one bare HMAC with the matching secret, the floor of any verification. */
BENCHMARK(hooksig_hmac)->Name("hooksig/hmac_one")->Arg(256)->Arg(4096)->Arg(65536);
BENCHMARK(hooksig_verify)->Name("hooksig/verify_two_secrets")->Arg(256)->Arg(4096)->Arg(65536);

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
