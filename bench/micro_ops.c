/*
 * bench/micro_ops.c: the operations bench/micro times, in C (interface in micro_ops.h).
 *
 * This file is compiled by the generic C rule, with the library's flags and -O level, so
 * the deque and queue functions inlined here are the same code the shard loop inlines.
 * Each timed function is one batch of work with a result the caller consumes; the loops
 * are kept plain (no extra atomics, no branches beyond the operation's own) so that what
 * a profiler such as callgrind attributes to rf_bm_deque_push_pop is the deque itself.
 *
 * Helper threads. The contended benchmarks need a second thread on the other end: a
 * thief on the deque, a consumer on the queue. They are started and joined here with
 * pthreads, because only C code may touch the structures. Each helper spins (with a CPU
 * pause) rather than sleeps, as a shard thread with work nearby would; on the 2-core
 * machines this runs on, the benchmark thread and the helper then own one core each.
 * Stopping is bounded: the thief stops at a flag; the consumer stops once it has popped
 * exactly the count the producer reports having pushed, so no message is left behind.
 *
 * The engine functions go through include/ringflow.h only, like an application would:
 * one execution per rf_bm_run, submitted from the benchmark thread and waited for with
 * rf_exec_wait, so each one crosses the inbox, wakes a parked shard, runs in the shard
 * loop and wakes the waiter. Plans are compiled once, outside any timing.
 */
#include "engine/rf.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/micro_ops.h"
#include "sched/deque.h"
#include "sched/mq.h"

/* Initial deque array, as log2 slots: small, so the fills exercise growth once. */
#define RF_BM_DEQUE_CAP_LOG2 6
/* How long rf_bm_run waits for one execution, and how long stop drains. */
#define RF_BM_WAIT_MS  10000u
#define RF_BM_DRAIN_MS 1000u
/* An engine's nodes per plan: room for the 10,000-node shapes and bigger. */
#define RF_BM_PLAN_NODES_MAX (1u << 20)
/* Node ids are "n" and a decimal index. */
#define RF_BM_NODE_ID_BYTES 16

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void *alloc_cl(size_t size)
{
    size_t rounded = (size + RF_CACHELINE - 1) & ~(size_t)(RF_CACHELINE - 1);
    void *p = aligned_alloc(RF_CACHELINE, rounded);

    if (p)
        memset(p, 0, rounded);
    return p;
}

/* --- deque ------------------------------------------------------------------------------ */

struct rf_bm_deque {
    struct rf_deque dq; /* cache-line aligned inside */
    pthread_t thief;
    bool thief_running;   /* benchmark thread only */
    uint64_t thief_taken; /* written by the thief before it exits; read after join */
    RF_ALIGNED_CL _Atomic bool stop;
};

rf_bm_deque *rf_bm_deque_new(void)
{
    rf_bm_deque *q = alloc_cl(sizeof(*q));

    if (!q)
        return NULL;
    if (rf_deque_init(&q->dq, RF_BM_DEQUE_CAP_LOG2) < 0) {
        free(q);
        return NULL;
    }
    return q;
}

void rf_bm_deque_free(rf_bm_deque *q)
{
    if (!q)
        return;
    RF_ASSERT(!q->thief_running);
    rf_deque_fini(&q->dq);
    free(q);
}

uint64_t rf_bm_deque_push_pop(rf_bm_deque *q, uint32_t batch)
{
    uint64_t n = 0, item;

    for (uint32_t i = 0; i < batch; i++) {
        int rc = rf_deque_push_owner(&q->dq, i);
        RF_ASSERT(rc == 0);
    }
    while (rf_deque_pop_owner(&q->dq, &item))
        n++;
    return n;
}

int rf_bm_deque_fill(rf_bm_deque *q, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        int rc = rf_deque_push_owner(&q->dq, i);
        if (rc < 0)
            return rc;
    }
    return 0;
}

uint64_t rf_bm_deque_steal_n(rf_bm_deque *q, uint32_t n)
{
    uint64_t taken = 0, item;

    for (uint32_t i = 0; i < n; i++) {
        int rc = rf_deque_steal(&q->dq, &item);
        if (rc == 0)
            break;
        taken += rc == 1;
    }
    return taken;
}

uint64_t rf_bm_deque_size(const rf_bm_deque *q)
{
    return rf_deque_size_approx(&q->dq);
}

static void *thief_main(void *arg)
{
    rf_bm_deque *q = arg;
    uint64_t taken = 0, item;

    /* Relaxed: the flag only ends the loop; the join orders everything else. */
    while (!atomic_load_explicit(&q->stop, memory_order_relaxed)) {
        if (rf_deque_steal(&q->dq, &item) == 1)
            taken++;
        else
            cpu_relax();
    }
    q->thief_taken = taken;
    return NULL;
}

int rf_bm_deque_thief_start(rf_bm_deque *q)
{
    RF_ASSERT(!q->thief_running);
    /* Relaxed: pthread_create orders it before the thief's first load. */
    atomic_store_explicit(&q->stop, false, memory_order_relaxed);
    q->thief_taken = 0;
    int rc = pthread_create(&q->thief, NULL, thief_main, q);
    if (rc != 0)
        return -rc;
    q->thief_running = true;
    return 0;
}

uint64_t rf_bm_deque_thief_stop(rf_bm_deque *q)
{
    if (!q->thief_running)
        return 0;
    /* Relaxed: see thief_main. */
    atomic_store_explicit(&q->stop, true, memory_order_relaxed);
    pthread_join(q->thief, NULL);
    q->thief_running = false;
    return q->thief_taken;
}

/* --- message queue --------------------------------------------------------------------- */

struct rf_bm_mq {
    struct rf_mq mq;
    pthread_t consumer;
    bool consumer_running; /* producer thread only */
    uint64_t produced;     /* producer thread only */
    uint64_t popped;       /* written by the consumer before it exits; read after join */
    /* UINT64_MAX while running; the produced count once stopping. */
    RF_ALIGNED_CL _Atomic uint64_t target;
};

rf_bm_mq *rf_bm_mq_new(uint32_t capacity)
{
    rf_bm_mq *q = alloc_cl(sizeof(*q));

    if (!q)
        return NULL;
    if (rf_mq_init(&q->mq, capacity) < 0) {
        free(q);
        return NULL;
    }
    return q;
}

void rf_bm_mq_free(rf_bm_mq *q)
{
    if (!q)
        return;
    RF_ASSERT(!q->consumer_running);
    rf_mq_fini(&q->mq);
    free(q);
}

uint64_t rf_bm_mq_push_pop(rf_bm_mq *q, uint32_t batch)
{
    uint64_t n = 0;
    void *m;

    for (uint32_t i = 0; i < batch; i++) {
        bool ok = rf_mq_push_mpsc(&q->mq, (void *)(uintptr_t)(i + 1));
        RF_ASSERT(ok);
    }
    while (rf_mq_pop_sc(&q->mq, &m))
        n++;
    return n;
}

static void *consumer_main(void *arg)
{
    rf_bm_mq *q = arg;
    uint64_t popped = 0;
    void *m;

    for (;;) {
        if (rf_mq_pop_sc(&q->mq, &m)) {
            popped++;
            continue;
        }
        /* Relaxed: the target is set after the producer's last push, and ck_ring's
         * fences make those pushes visible to our pops; we only stop at the count. */
        if (popped >= atomic_load_explicit(&q->target, memory_order_relaxed))
            break;
        cpu_relax();
    }
    q->popped = popped;
    return NULL;
}

int rf_bm_mq_consumer_start(rf_bm_mq *q)
{
    RF_ASSERT(!q->consumer_running);
    q->produced = 0;
    q->popped = 0;
    /* Relaxed: pthread_create orders it before the consumer's first load. */
    atomic_store_explicit(&q->target, UINT64_MAX, memory_order_relaxed);
    int rc = pthread_create(&q->consumer, NULL, consumer_main, q);
    if (rc != 0)
        return -rc;
    q->consumer_running = true;
    return 0;
}

uint64_t rf_bm_mq_produce(rf_bm_mq *q, uint32_t batch)
{
    uint64_t full = 0;

    for (uint32_t i = 0; i < batch; i++) {
        void *msg = (void *)(uintptr_t)(++q->produced);
        while (!rf_mq_push_mpsc(&q->mq, msg)) {
            full++;
            cpu_relax();
        }
    }
    return full;
}

uint64_t rf_bm_mq_consumer_stop(rf_bm_mq *q)
{
    if (!q->consumer_running)
        return 0;
    /* Relaxed: see consumer_main; the consumer drains to this count and exits. */
    atomic_store_explicit(&q->target, q->produced, memory_order_relaxed);
    pthread_join(q->consumer, NULL);
    q->consumer_running = false;
    RF_ASSERT(q->popped == q->produced);
    return q->popped;
}

/* --- engine ----------------------------------------------------------------------------- */

struct rf_bm_engine {
    rf_engine *eng;
};

struct rf_bm_plan {
    rf_plan *plan;
    uint32_t n;
};

int rf_bm_engine_new(uint32_t shards, rf_bm_engine **out)
{
    rf_config cfg = {
        .shards = shards,
        .no_pin_threads = true,
        .plan_nodes_max = RF_BM_PLAN_NODES_MAX,
        .log_level = RF_LOG_WARN, /* keep info lines out of the benchmark table */
    };
    rf_bm_engine *e = calloc(1, sizeof(*e));
    int rc = -ENOMEM;

    if (!e)
        return -ENOMEM;
    rc = rf_engine_new(&cfg, &e->eng);
    if (rc < 0)
        goto err_new;
    rc = rf_engine_start(e->eng);
    if (rc < 0)
        goto err_start;
    *out = e;
    return 0;

err_start:
    rf_engine_free(e->eng);
err_new:
    free(e);
    return rc;
}

void rf_bm_engine_free(rf_bm_engine *e)
{
    if (!e)
        return;
    rf_engine_stop(e->eng, RF_BM_DRAIN_MS);
    rf_engine_free(e->eng);
    free(e);
}

static uint64_t sum_stats(const rf_bm_engine *e, size_t field)
{
    uint64_t sum = 0;

    for (uint32_t s = 0; s < rf_engine_shards(e->eng); s++) {
        rf_shard_stats st;
        if (rf_engine_shard_stats(e->eng, s, &st) == 0)
            sum += *(const uint64_t *)((const char *)&st + field);
    }
    return sum;
}

uint64_t rf_bm_engine_steals(const rf_bm_engine *e)
{
    return sum_stats(e, offsetof(rf_shard_stats, steals));
}

uint64_t rf_bm_engine_nodes_run(const rf_bm_engine *e)
{
    return sum_stats(e, offsetof(rf_shard_stats, nodes_run));
}

static int add_edges(rf_graph *g, enum rf_bm_shape shape, uint32_t n)
{
    int rc = 0;

    if (shape == RF_BM_SHAPE_CHAIN) {
        for (uint32_t i = 0; i + 1 < n && rc == 0; i++)
            rc = rf_graph_add_edge(g, i, i + 1);
        return rc;
    }
    for (uint32_t i = 1; i + 1 < n && rc == 0; i++) {
        rc = rf_graph_add_edge(g, 0, i);
        if (rc == 0)
            rc = rf_graph_add_edge(g, i, n - 1);
    }
    return rc;
}

static void print_diag(const rf_diag *d)
{
    for (uint32_t i = 0; i < d->count; i++)
        fprintf(stderr, "bench/micro: plan: %s: %s: %s\n", d->items[i].pointer, d->items[i].code,
                d->items[i].message);
}

int rf_bm_plan_new(rf_bm_engine *e, enum rf_bm_shape shape, uint32_t n, rf_bm_plan **out)
{
    char name[32], id[RF_BM_NODE_ID_BYTES];
    rf_bm_plan *p;
    rf_graph *g;
    rf_diag diag;
    int rc;

    if (n == 0 || (shape == RF_BM_SHAPE_FANOUT && n < 3) || n > RF_BM_PLAN_NODES_MAX)
        return -EINVAL;
    p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    snprintf(name, sizeof(name), "bm-%s-%u", rf_bm_shape_name(shape), n);
    rc = rf_graph_new(name, &g);
    if (rc < 0)
        goto err_graph;
    for (uint32_t i = 0; i < n && rc >= 0; i++) {
        snprintf(id, sizeof(id), "n%u", i);
        rc = rf_graph_add_node(g, id, "noop", NULL, NULL);
    }
    if (rc >= 0)
        rc = add_edges(g, shape, n);
    if (rc < 0)
        goto err_build;
    rf_diag_init(&diag);
    rc = rf_plan_compile(e->eng, g, &diag, &p->plan);
    print_diag(&diag);
    rf_diag_free(&diag);
    if (rc < 0)
        goto err_build;
    rf_graph_free(g);
    p->n = n;
    *out = p;
    return 0;

err_build:
    rf_graph_free(g);
err_graph:
    free(p);
    return rc;
}

void rf_bm_plan_free(rf_bm_plan *p)
{
    if (!p)
        return;
    rf_plan_release(p->plan);
    free(p);
}

uint32_t rf_bm_plan_nodes(const rf_bm_plan *p)
{
    return p->n;
}

int rf_bm_run(rf_bm_engine *e, rf_bm_plan *p)
{
    rf_exec *ex;
    int rc = rf_submit(e->eng, p->plan, NULL, NULL, &ex);

    if (rc < 0)
        return rc;
    rc = rf_exec_wait(ex, RF_BM_WAIT_MS);
    if (rc == 0 && rf_exec_status(ex) != RF_ST_SUCCEEDED)
        rc = -EPROTO;
    rf_exec_release(ex);
    return rc;
}

const char *rf_bm_shape_name(enum rf_bm_shape s)
{
    return s == RF_BM_SHAPE_CHAIN ? "chain" : s == RF_BM_SHAPE_FANOUT ? "fanout" : "?";
}

const char *rf_bm_strerror(int rc)
{
    return rf_strerror(rc);
}

/* --- lineage hash (engine/jcs.h) --------------------------------------------------------- */

/* Included here, with the section that uses them, so this section stands on its own. */
#include <xxhash.h>

#include "engine/jcs.h"

/* The large parameter set grows until its canonical form reaches this many bytes. */
#define RF_BM_LINEAGE_LARGE_BYTES (1u << 20)
/* Text of one generated string value in the large set. */
#define RF_BM_LINEAGE_NAME_BYTES 64

/* An http node's config as a graph holds it: six fields, about 200 canonical bytes, one
 * real (the fast shortest-digits path), member order not canonical. */
static const char rf_bm_http_params[] =
    "{\"url\":\"http://127.0.0.1:9000/orders/42/lines\",\"method\":\"POST\","
    "\"headers\":{\"x-request-id\":\"7f3e2a\",\"content-type\":\"application/json\","
    "\"accept\":\"application/json\"},\"body\":{\"sku\":\"A-1234\",\"qty\":3,\"price\":19.99},"
    "\"ok_status\":[200,299],\"timeout_ms\":2000}";

struct rf_bm_lineage {
    json_t *params;
    struct rf_buf scratch; /* rf_lineage's, reused across calls as a shard would */
    struct rf_buf jcs;     /* JCS(params), hashed by the XXH3 peer */
};

/* An array of records (strings, integers, reals, literals) of >= 1 MiB canonical. */
static json_t *lineage_large_params(void)
{
    json_t *a = json_array();
    size_t bytes = 2;

    for (uint32_t i = 0; a && bytes < RF_BM_LINEAGE_LARGE_BYTES; i++) {
        char name[RF_BM_LINEAGE_NAME_BYTES];
        snprintf(name, sizeof(name), "item-%u with a \"quoted\" word and caf\xc3\xa9", i);
        json_t *o = json_pack("{s:i,s:s,s:f,s:[s,s],s:b,s:i}", "id", (json_int_t)i, "name", name,
                              "price", i * 0.25 + 0.5, "tags", "blue", "large", "stock",
                              (int)(i & 1), "warehouse", (json_int_t)(i % 17));
        if (!o || json_array_append_new(a, o) < 0) {
            json_decref(a);
            return NULL;
        }
        bytes += 100; /* estimate; the caller measures the real size */
    }
    return a;
}

int rf_bm_lineage_new(enum rf_bm_lineage_shape shape, rf_bm_lineage **out)
{
    rf_bm_lineage *l = calloc(1, sizeof(*l));
    int rc = -ENOMEM;

    if (!l)
        return -ENOMEM;
    if (shape == RF_BM_LINEAGE_HTTP)
        l->params = json_loads(rf_bm_http_params, 0, NULL);
    else
        l->params = lineage_large_params();
    if (!l->params)
        goto err;
    if ((rc = rf_jcs_write(l->params, &l->jcs)) < 0)
        goto err;
    *out = l;
    return 0;
err:
    rf_bm_lineage_free(l);
    return rc;
}

void rf_bm_lineage_free(rf_bm_lineage *l)
{
    if (!l)
        return;
    json_decref(l->params);
    rf_buf_free(&l->scratch);
    rf_buf_free(&l->jcs);
    free(l);
}

uint64_t rf_bm_lineage_jcs_bytes(const rf_bm_lineage *l)
{
    return l->jcs.len;
}

uint64_t rf_bm_lineage_hash(rf_bm_lineage *l, uint32_t n)
{
    uint64_t sum = 0;

    for (uint32_t i = 0; i < n; i++) {
        uint8_t h[16];
        int rc = rf_lineage("http", "1", l->params, &l->scratch, h);
        RF_ASSERT(rc == 0);
        sum += h[0];
    }
    return sum;
}

uint64_t rf_bm_lineage_xxh3(rf_bm_lineage *l, uint32_t n)
{
    uint64_t sum = 0;

    for (uint32_t i = 0; i < n; i++)
        sum += XXH3_128bits(l->jcs.p, l->jcs.len).low64;
    return sum;
}

/* --- template resolution (engine/expr.h) ------------------------------------------------- */

/* Included here, with the section that uses it, so this section stands on its own. */
#include "engine/expr.h"

/* An http node's config as a graph holds it: 7 fields, 3 templates, nested static parts. */
static const char rf_bm_tmpl_config[] =
    "{\"method\":\"POST\",\"url\":\"http://127.0.0.1:9000/orders/{{inputs.order_id}}/lines\","
    "\"headers\":{\"content-type\":\"application/json\",\"x-source\":\"ringflow\"},"
    "\"body\":{\"lines\":\"{{nodes.fetch.output.body.lines}}\",\"limit\":\"{{inputs.limit}}\","
    "\"currency\":\"EUR\"},\"timeout_ms\":2000,\"ok_status\":[200,299],\"follow\":false}";

struct rf_bm_tmpl {
    json_t *config, *inputs, *fetch;
    struct rf_tmpl *tmpl;
    struct rf_scope sc;
};

static int tmpl_node_index(void *ud, const char *id, size_t len)
{
    (void)ud;
    return len == 5 && memcmp(id, "fetch", 5) == 0 ? 0 : -1;
}

static const json_t *tmpl_node_output(const void *ud, uint32_t node)
{
    const rf_bm_tmpl *t = ud;

    return node == 0 ? t->fetch : NULL;
}

void rf_bm_tmpl_free(rf_bm_tmpl *t)
{
    if (!t)
        return;
    rf_tmpl_free(t->tmpl);
    json_decref(t->config);
    json_decref(t->inputs);
    json_decref(t->fetch);
    free(t);
}

int rf_bm_tmpl_new(rf_bm_tmpl **out)
{
    struct rf_expr_env env = {.node_index = tmpl_node_index};
    rf_bm_tmpl *t = calloc(1, sizeof(*t));
    rf_diag d;
    int rc = -ENOMEM;

    *out = NULL;
    if (!t)
        return rc;
    rf_diag_init(&d);
    t->config = json_loads(rf_bm_tmpl_config, 0, NULL);
    t->inputs = json_loads("{\"order_id\":\"o-123456\",\"limit\":10}", 0, NULL);
    t->fetch = json_loads("{\"status\":200,\"body\":{\"lines\":[{\"sku\":\"A-1\",\"cents\":250},"
                          "{\"sku\":\"B-2\",\"cents\":990},{\"sku\":\"C-3\",\"cents\":15}]}}",
                          0, NULL);
    if (t->config && t->inputs && t->fetch)
        rc = rf_tmpl_compile(t->config, "/nodes/1/config", &env, &d, &t->tmpl);
    if (rc == 0 && !t->tmpl)
        rc = -EINVAL; /* the config must hold templates */
    print_diag(&d);
    rf_diag_free(&d);
    if (rc < 0) {
        rf_bm_tmpl_free(t);
        return rc;
    }
    t->sc = (struct rf_scope){.inputs = t->inputs,
                              .node_output = tmpl_node_output,
                              .ud = t,
                              .exec_id = "01JBENCH",
                              .graph = "bench",
                              .version = 1};
    *out = t;
    return 0;
}

int64_t rf_bm_tmpl_resolve(rf_bm_tmpl *t, uint32_t n)
{
    int64_t members = 0;

    for (uint32_t i = 0; i < n; i++) {
        json_t *params;
        rf_error err;
        int rc = rf_tmpl_eval(t->tmpl, &t->sc, &params, &err);
        if (rc < 0)
            return rc;
        members += (int64_t)json_object_size(params);
        json_decref(params);
    }
    return members;
}

int64_t rf_bm_tmpl_deep_copy(rf_bm_tmpl *t, uint32_t n)
{
    int64_t members = 0;

    for (uint32_t i = 0; i < n; i++) {
        json_t *copy = json_deep_copy(t->config);
        if (!copy)
            return -ENOMEM;
        members += (int64_t)json_object_size(copy);
        json_decref(copy);
    }
    return members;
}

/* --- webhook signatures ---------------------------------------------------------------------- */

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "net/hooksig.h"

#define BM_SECRET1 "0123456789abcdef-retired"
#define BM_SECRET2 "fedcba9876543210-current"

struct rf_bm_hooksig {
    char *body, *signed_text;
    size_t body_len, signed_len;
    char header[256];
    int64_t t;
};

int rf_bm_hooksig_new(uint32_t body_bytes, rf_bm_hooksig **out)
{
    rf_bm_hooksig *h = calloc(1, sizeof(*h));

    if (!h || !(h->body = malloc(body_bytes + 1)) ||
        !(h->signed_text = malloc(body_bytes + 32))) {
        rf_bm_hooksig_free(h);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < body_bytes; i++)
        h->body[i] = (char)('a' + i % 26);
    h->body_len = body_bytes;
    h->t = 1800000000;
    if (rf_hooksig_sign(BM_SECRET2, strlen(BM_SECRET2), h->t, h->body, h->body_len, h->header,
                        sizeof(h->header)) < 0) {
        rf_bm_hooksig_free(h);
        return -ENOMEM;
    }
    h->signed_len = (size_t)sprintf(h->signed_text, "%lld.", (long long)h->t);
    memcpy(h->signed_text + h->signed_len, h->body, body_bytes);
    h->signed_len += body_bytes;
    *out = h;
    return 0;
}

void rf_bm_hooksig_free(rf_bm_hooksig *h)
{
    if (!h)
        return;
    free(h->body);
    free(h->signed_text);
    free(h);
}

uint64_t rf_bm_hooksig_verify(rf_bm_hooksig *h, uint32_t n)
{
    const char *secrets[2] = {BM_SECRET1, BM_SECRET2};
    size_t lens[2] = {strlen(BM_SECRET1), strlen(BM_SECRET2)};
    uint64_t ok = 0;

    for (uint32_t i = 0; i < n; i++) {
        struct rf_hooksig sig;
        char why[64];
        if (rf_hooksig_parse(h->header, strlen(h->header), &sig, why, sizeof(why)) == 0 &&
            rf_hooksig_check(&sig, h->body, h->body_len, secrets, lens, 2, h->t, 300) ==
                RF_HOOKSIG_OK)
            ok++;
    }
    return ok;
}

uint64_t rf_bm_hooksig_hmac(rf_bm_hooksig *h, uint32_t n)
{
    unsigned char m[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    uint64_t sum = 0;

    for (uint32_t i = 0; i < n; i++) {
        HMAC(EVP_sha256(), BM_SECRET2, (int)strlen(BM_SECRET2),
             (const unsigned char *)h->signed_text, h->signed_len, m, &len);
        sum += m[0] + len;
    }
    return sum;
}
