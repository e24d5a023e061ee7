/*
 * engine/engine.c: the engine's life: create (configuration defaults, the kind registry),
 * start (probe io_uring, create the shards, start their threads and wait until each has
 * its ring), stop (refuse submissions, drain for a while, cancel the rest, wait for every
 * execution's last callback, then end the threads), and free.
 *
 * State moves NEW -> RUNNING -> STOPPING -> STOPPED, with seq_cst stores so rf_submit's
 * re-check after reserving an in-flight slot and the stopper's read of the counts cannot
 * both miss each other. The stopper is an application thread: it may block, and it does,
 * on a futex the home shards bump as executions finish.
 */
#include "engine/rf.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/internal.h"
#include "sched/shard.h"

#define RF_RING_ENTRIES_MAX 32768
#define RF_STOP_POLL_MS     10
/* A plan's ready nodes must fit one shard's deque (sched/deque.h). */
#define RF_PLAN_NODES_LIMIT (1u << RF_DEQUE_CAP_LOG2_MAX)

static int config_defaults(rf_config *c)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    if (c->shards == 0)
        c->shards = cpus > 0 ? (uint32_t)cpus : 1;
    if (c->ring_entries == 0)
        c->ring_entries = 1024;
    if (c->inflight_per_shard_max == 0)
        c->inflight_per_shard_max = 4096;
    if (c->plan_nodes_max == 0)
        c->plan_nodes_max = 10000;
    if (c->run_budget == 0)
        c->run_budget = 256;
    if (c->steal_attempts == 0)
        c->steal_attempts = 2 * c->shards;
    if (c->kinds_max == 0)
        c->kinds_max = 256;
    if (c->log_level == RF_LOG_DEFAULT)
        c->log_level = RF_LOG_INFO;
    if (c->seed == 0)
        c->seed = rf_now_ns() | 1;
    if (c->doc_bytes_max == 0)
        c->doc_bytes_max = 1u << 20;
    if (c->doc_depth_max == 0)
        c->doc_depth_max = 64;
    if (c->map_items_max == 0)
        c->map_items_max = 1u << 20;
    if (c->graph_depth_max == 0)
        c->graph_depth_max = 8;
    if (c->cache_bytes_max == 0)
        c->cache_bytes_max = 64ull << 20;
    if (c->cache_entries_max == 0)
        c->cache_entries_max = 65536;
    if (c->http_timeout_ms == 0)
        c->http_timeout_ms = 30000;
    if (c->http_response_bytes_max == 0)
        c->http_response_bytes_max = 8u << 20;
    if (c->http_idle_conns_max == 0)
        c->http_idle_conns_max = 64;
    if (c->map_items_max > RF_MAP_ITEMS_LIMIT)
        return -EINVAL;
    if (c->shards > RF_SHARDS_MAX || c->ring_entries > RF_RING_ENTRIES_MAX ||
        (uint64_t)c->shards * c->inflight_per_shard_max > RF_TOK_SLOT_MAX ||
        c->plan_nodes_max > RF_PLAN_NODES_LIMIT || c->log_level > RF_LOG_ERROR)
        return -EINVAL;
    return 0;
}

/* The result cache, single flight and the graph registry. */
static int lang_state_new(rf_engine *eng)
{
    struct rf_memcache_config mc = {
        .bytes_max = eng->cfg.cache_bytes_max,
        .entries_max = eng->cfg.cache_entries_max,
    };
    uint32_t stripes = rf_pow2_ceil(RF_MAX(64u, 4 * eng->cfg.shards));
    int rc;

    mc.stripes = stripes;
    rc = rf_memcache_new(&mc, &eng->cache);
    if (rc < 0)
        return rc;
    rc = rf_flight_new(stripes, &eng->flight);
    if (rc < 0)
        return rc;
    return rf__registry_new(&eng->reg);
}

static void lang_state_free(rf_engine *eng)
{
    if (eng->cache)
        eng->cache->ops->free(eng->cache);
    rf_flight_free(eng->flight);
    rf__registry_free(eng->reg);
    eng->cache = NULL;
    eng->flight = NULL;
    eng->reg = NULL;
}

void rf_engine_cache_stats(rf_engine *eng, rf_cache_counters *out)
{
    struct rf_cache_stats st = {0};

    memset(out, 0, sizeof(*out));
    eng->cache->ops->stats(eng->cache, &st);
    out->hits = st.hits;
    out->misses = st.misses;
    out->puts = st.puts;
    out->evictions = st.evictions;
    out->expirations = st.expirations;
    out->entries = st.entries;
    out->bytes = st.bytes;
    /* Relaxed: a statistic. */
    out->flights_joined = atomic_load_explicit(&eng->flights_joined, memory_order_relaxed);
}

int rf_engine_new(const rf_config *cfg, rf_engine **out)
{
    rf_engine *eng;
    int rc;

    eng = aligned_alloc(RF_CACHELINE,
                        (sizeof(*eng) + RF_CACHELINE - 1) & ~(size_t)(RF_CACHELINE - 1));
    if (!eng)
        return -ENOMEM;
    memset(eng, 0, sizeof(*eng));
    if (cfg)
        eng->cfg = *cfg;
    rc = config_defaults(&eng->cfg);
    if (rc < 0)
        goto err_cfg;
    rf__log_level = eng->cfg.log_level;
    rc = -ENOMEM;
    eng->kinds = calloc(eng->cfg.kinds_max, sizeof(*eng->kinds));
    if (!eng->kinds)
        goto err_cfg;
    pthread_mutex_init(&eng->start_mu, NULL);
    pthread_cond_init(&eng->start_cv, NULL);
    eng->nshards = eng->cfg.shards;
    rc = rf__register_builtin_kinds(eng);
    if (rc < 0)
        goto err_kinds;
    rc = lang_state_new(eng);
    if (rc < 0)
        goto err_lang;
    *out = eng;
    return 0;

err_lang:
    lang_state_free(eng);
err_kinds:
    rf__http_kind_free(eng);
    pthread_cond_destroy(&eng->start_cv);
    pthread_mutex_destroy(&eng->start_mu);
    free(eng->kinds);
err_cfg:
    free(eng);
    return rc;
}

uint32_t rf_engine_shards(const rf_engine *eng)
{
    return eng->nshards;
}

/* The i-th CPU this process may run on, cycling; -1 when pinning is off. */
static int cpu_for(const rf_engine *eng, uint32_t i)
{
    cpu_set_t set;
    int count, k = 0;

    if (eng->cfg.no_pin_threads || sched_getaffinity(0, sizeof(set), &set) < 0)
        return -1;
    count = CPU_COUNT(&set);
    if (count <= 0)
        return -1;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &set))
            continue;
        if (k++ == (int)(i % (uint32_t)count))
            return cpu;
    }
    return -1;
}

static void shards_free(rf_engine *eng)
{
    for (uint32_t i = 0; eng->shards && i < eng->nshards; i++)
        rf__shard_free(eng->shards[i]);
    free(eng->shards);
    eng->shards = NULL;
    free(eng->ex_table);
    eng->ex_table = NULL;
}

static int shards_create(rf_engine *eng)
{
    size_t slots = (size_t)eng->nshards * eng->cfg.inflight_per_shard_max;

    eng->shards = calloc(eng->nshards, sizeof(*eng->shards));
    eng->ex_table = calloc(slots, sizeof(*eng->ex_table));
    if (!eng->shards || !eng->ex_table)
        return -ENOMEM;
    for (uint32_t i = 0; i < eng->nshards; i++) {
        int rc = rf__shard_new(eng, i, cpu_for(eng, i), &eng->shards[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Start the threads, wait until each reported; then say go, or quit on any failure. */
static int threads_start(rf_engine *eng)
{
    uint32_t launched = 0;
    int rc = 0;

    for (; launched < eng->nshards; launched++) {
        struct rf_shard *sh = eng->shards[launched];
        rc = -pthread_create(&sh->thread, NULL, rf__shard_main, sh);
        if (rc < 0)
            break;
    }
    pthread_mutex_lock(&eng->start_mu);
    while (eng->started < launched)
        pthread_cond_wait(&eng->start_cv, &eng->start_mu);
    if (rc == 0)
        rc = eng->start_err;
    if (rc == 0)
        eng->started = UINT32_MAX; /* go */
    else
        atomic_store(&eng->quit, 1);
    pthread_cond_broadcast(&eng->start_cv);
    pthread_mutex_unlock(&eng->start_mu);
    if (rc < 0)
        for (uint32_t i = 0; i < launched; i++)
            pthread_join(eng->shards[i]->thread, NULL);
    return rc;
}

int rf__engine_set_service(rf_engine *eng, const struct rf_shard_service *svc)
{
    if (!eng || !svc)
        return -EINVAL;
    /* seq_cst load: a plain look at the state, no ordering needed beyond it. */
    if (atomic_load(&eng->state) != RF_ENG_NEW)
        return -EBUSY;
    if (eng->nsvcs == RF_SERVICES_MAX)
        return -ENOSPC;
    eng->svcs[eng->nsvcs++] = svc;
    return 0;
}

int rf__engine_set_remote_cache(rf_engine *eng, const struct rf_rcache_ops *ops, void *ud)
{
    if (!eng || !ops)
        return -EINVAL;
    /* seq_cst load: a plain look at the state, no ordering needed beyond it. */
    if (atomic_load(&eng->state) != RF_ENG_NEW)
        return -EBUSY;
    eng->remote = ops;
    eng->remote_ud = ud;
    return 0;
}

struct rf_shard *rf__engine_shard(rf_engine *eng, uint32_t i)
{
    RF_ASSERT(i < eng->nshards);
    return eng->shards[i];
}

int rf_engine_start(rf_engine *eng)
{
    int rc;

    if (!eng)
        return -EINVAL;
    if (atomic_load(&eng->state) != RF_ENG_NEW || eng->shards)
        return RF_ESTATE;
    rc = rf__iouring_probe(eng);
    if (rc < 0)
        return rc;
    rc = shards_create(eng);
    if (rc < 0)
        goto err;
    rc = threads_start(eng);
    if (rc < 0) {
        rf_log_error("\"msg\":\"shard start failed\",\"err\":\"%s\"", rf_strerror(rc));
        goto err;
    }
    atomic_store(&eng->state, RF_ENG_RUNNING); /* seq_cst: see rf_submit */
    rf_log_debug("\"msg\":\"engine started\",\"shards\":%u,\"msg_ring\":%s", eng->nshards,
                 eng->has_msg_ring ? "true" : "false");
    return 0;
err:
    shards_free(eng);
    atomic_store(&eng->quit, 0);
    eng->started = 0;
    eng->start_err = 0;
    return rc;
}

static uint64_t inflight_total(const rf_engine *eng)
{
    uint64_t n = 0;

    for (uint32_t i = 0; i < eng->nshards; i++)
        /* seq_cst: the Dekker half against rf_submit's reservation (see reserve_shard). */
        n += atomic_load_explicit(&eng->shards[i]->inflight, memory_order_seq_cst);
    return n;
}

static void wake_all(rf_engine *eng)
{
    for (uint32_t i = 0; i < eng->nshards; i++)
        rf__shard_wake(eng->shards[i]);
}

/* Wait until nothing is in flight or `deadline_ns` (0 = forever). */
static bool wait_drained(rf_engine *eng, uint64_t deadline_ns)
{
    uint64_t warn_at = rf_now_ns() + 5000000000ull;

    for (;;) {
        uint32_t word = atomic_load_explicit(&eng->stop_word, memory_order_acquire);
        if (inflight_total(eng) == 0)
            return true;
        uint64_t now = rf_now_ns();
        if (deadline_ns && now >= deadline_ns)
            return false;
        if (!deadline_ns && now >= warn_at) {
            rf_log_warn("\"msg\":\"stop waiting for executions to finish\",\"inflight\":%llu",
                        (unsigned long long)inflight_total(eng));
            warn_at = now + 5000000000ull;
        }
        rf__futex_wait(&eng->stop_word, word, RF_STOP_POLL_MS);
    }
}

int rf_engine_stop(rf_engine *eng, uint32_t drain_ms)
{
    uint32_t st;

    if (!eng)
        return -EINVAL;
    if (rf__cur_shard)
        return RF_ESTATE; /* from a callback it would wait for itself */
    st = atomic_load(&eng->state);
    if (st == RF_ENG_NEW) {
        atomic_store(&eng->state, RF_ENG_STOPPED);
        return 0;
    }
    /* seq_cst CAS: one stopper wins; the others wait for it to finish. */
    uint32_t running = RF_ENG_RUNNING;
    if (!atomic_compare_exchange_strong(&eng->state, &running, RF_ENG_STOPPING)) {
        while (atomic_load(&eng->state) == RF_ENG_STOPPING)
            rf__futex_wait(&eng->stop_word, atomic_load(&eng->stop_word), RF_STOP_POLL_MS);
        return 0;
    }
    if (!wait_drained(eng, rf_now_ns() + (uint64_t)drain_ms * 1000000u)) {
        /* Release: shards acquire it and then cancel every execution they home. */
        atomic_store_explicit(&eng->cancel_all, 1, memory_order_release);
        wake_all(eng);
        wait_drained(eng, 0);
    }
    /* Release: shards that see quit see everything above. */
    atomic_store_explicit(&eng->quit, 1, memory_order_release);
    wake_all(eng);
    for (uint32_t i = 0; i < eng->nshards; i++)
        pthread_join(eng->shards[i]->thread, NULL);
    atomic_store(&eng->state, RF_ENG_STOPPED);
    return 0;
}

void rf_engine_free(rf_engine *eng)
{
    if (!eng)
        return;
    rf_engine_stop(eng, 0);
    shards_free(eng);
    rf__http_kind_free(eng);
    lang_state_free(eng);
    pthread_cond_destroy(&eng->start_cv);
    pthread_mutex_destroy(&eng->start_mu);
    free(eng->kinds);
    free(eng);
}

int rf_engine_shard_stats(const rf_engine *eng, uint32_t shard, rf_shard_stats *out)
{
    const struct rf_shard *sh;

    if (!eng || !out || shard >= eng->nshards || !eng->shards)
        return -EINVAL;
    sh = eng->shards[shard];
    /* Relaxed snapshots of counters only their owner writes. */
    out->nodes_run = atomic_load_explicit(&sh->ctr.nodes_run, memory_order_relaxed);
    out->steals = atomic_load_explicit(&sh->ctr.steals, memory_order_relaxed);
    out->steal_attempts = atomic_load_explicit(&sh->ctr.steal_attempts, memory_order_relaxed);
    out->parks = atomic_load_explicit(&sh->ctr.parks, memory_order_relaxed);
    out->wakeups_sent = atomic_load_explicit(&sh->ctr.wakeups_sent, memory_order_relaxed);
    out->submits = atomic_load_explicit(&sh->ctr.submits, memory_order_relaxed);
    out->cqes = atomic_load_explicit(&sh->ctr.cqes, memory_order_relaxed);
    out->deque_depth = rf_deque_size_approx(&sh->dq);
    out->inflight = atomic_load_explicit(&sh->inflight, memory_order_relaxed);
    return 0;
}
