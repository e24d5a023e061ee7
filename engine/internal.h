/*
 * engine/internal.h: the structures the engine (engine/) and the shard runtime (sched/)
 * share: the engine, plans, executions with their per-node state, tasks, and the event
 * queue. Nothing here is installed; applications see only the opaque types of ringflow.h.
 *
 * Memory per execution: one block, allocated by rf_submit(), holding the execution header
 * and one 16-byte rf_nstate per node. Nothing else is allocated per node on the data path:
 * ready nodes travel as 64-bit tokens (execution slot | node index) through the deques,
 * attempts that wait (async kinds, timeouts, retry back-off) borrow an rf_task from their
 * shard's pool, and events are only built when the execution has an event callback.
 *
 * Who writes what:
 *   - a plan is immutable after rf_plan_compile();
 *   - an execution's header is immutable after rf_submit() except the fields marked
 *     atomic, the event queue (its own lock) and the home-list links (home shard only);
 *   - a node's rf_nstate is written by the one shard running the node at a time: the
 *     join counter hands the node over (acq_rel), a deque or an inbox carries it between
 *     shards (release/acquire), and `status` is stored with release after `output`, so a
 *     reader that loads a terminal status with acquire sees the output.
 */
#ifndef RF_ENGINE_INTERNAL_H
#define RF_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "engine/expr.h"
#include "engine/rf.h"
#include "storage/cache.h"

struct rf_shard;

/* --- kinds -------------------------------------------------------------------------- */

struct rf_kind_ent {
    rf_kind k;     /* name points at `name` below */
    char name[65]; /* up to 64 characters and a NUL */
    uint32_t index;
};

/* --- graph builders ----------------------------------------------------------------- */

struct rf_gnode {
    char *id;
    char *kind;
    json_t *config;    /* owned reference or NULL */
    rf_node_opts opts; /* when, map and cache.version point at owned copies */
};

struct rf_graph {
    char *name;
    struct rf_gnode *nodes;
    uint32_t n, cap;
    uint64_t *edges; /* from << 32 | to */
    uint32_t m, mcap;
    json_t *inputs; /* the `inputs` declaration, owned reference or NULL */
    json_t *output; /* the `output` template, owned reference or NULL */
    json_t *doc;    /* the whole document when built by rf_graph_parse, owned or NULL */
};

/* engine/inputs.c: the `inputs` declaration of spec/graph.md. */
/* Check a declaration (borrowed) at parse time; problems go to `diag` under `pointer`
 * ("/inputs"). 0 or RF_EINVAL_GRAPH; -ENOMEM. */
int rf__inputs_decl_check(const json_t *decl, const char *pointer, rf_diag *diag);
/* Check execution inputs (borrowed; NULL = {}) against a valid declaration (borrowed; NULL
 * = anything goes). 0 and *resolved a new object with defaults filled; RF_EINPUTS with every
 * problem in `diag` at "/inputs/<name>"; -ENOMEM. */
int rf__inputs_resolve(const json_t *decl, const json_t *inputs, rf_diag *diag, json_t **resolved);

/* --- plans -------------------------------------------------------------------------- */

enum {
    RF_PN_SINK = 1u << 0,    /* no successors: its end counts toward the execution's end */
    RF_PN_TIMEOUT = 1u << 1, /* timeout_ms > 0 */
    RF_PN_SYNC = 1u << 2,    /* kind is RF_KIND_SYNC */
    RF_PN_LANG = 1u << 3,    /* x != NULL: templates, when, map or cache */
    RF_PN_MAP = 1u << 4,     /* mapped: runs once per item of x->map */
    RF_PN_CACHE = 1u << 5,   /* x->cache_ttl_s > 0 */
};

struct rf_tmpl;
struct rf_cond;

/* The graph language's per-node extras (engine/lang.c); only nodes that use it have one. */
struct rf_pnode_x {
    struct rf_tmpl *params;    /* the compiled config; NULL when the config is static */
    struct rf_cond *when;      /* NULL = none */
    struct rf_tmpl *map;       /* mapped node: its `map` template */
    uint32_t max_parallel;     /* lanes of a mapped node, 1..RF_MAX_PARALLEL_MAX */
    uint32_t cache_ttl_s;      /* 0 = no cache */
    const char *cache_version; /* "" when none; in plan->strtab */
};

/* Hot per-node data, read by every run of the node: 48 bytes. */
struct rf_pnode {
    const struct rf_kind_ent *kind;
    const json_t *config;       /* JSON null when none; the params when x->params is NULL */
    const char *id;             /* in plan->strtab */
    const struct rf_pnode_x *x; /* NULL for a node that uses no template, when, map, cache */
    uint32_t succ_off;          /* successors are plan->succ[succ_off .. succ_off + nsucc) */
    uint32_t nsucc;
    uint8_t trigger; /* rf_trigger */
    uint8_t flags;   /* RF_PN_* */
};

/* Successor entries in plan->succ: the node index in the low 30 bits, and two hints.
 * SOLE: this edge is the successor's only dep, so finishing it makes the successor ready
 *       with no atomic at all (chains, trees, the middle of a fan-out).
 * WIDE: the successor has at least RF_WIDE_DEPS deps; shards batch their decrements of its
 *       join counter (struct rf_shard's pending decrement) instead of contending on it
 *       once per dep. */
#define RF_SUCC_IDX  0x3fffffffu
#define RF_SUCC_SOLE 0x80000000u
#define RF_SUCC_WIDE 0x40000000u
#define RF_WIDE_DEPS 16
#define RF_SERVICES_MAX 8 /* shard services (the HTTP server, the journal, ...) */

/* Cold per-node data: read on retries, timeouts, events and diagnostics. */
struct rf_pnode_cold {
    const char *kind_name; /* in plan->strtab: valid even after the engine is freed */
    uint32_t timeout_ms;
    rf_retry retry;      /* defaults applied */
    bool lineage_static; /* params never change: `lineage` is their lineage hash */
    uint8_t lineage[16];
};

struct rf_plan {
    _Atomic uint32_t refs; /* executions and the application; relaxed inc, acq_rel dec */
    uint32_t n;
    uint32_t nsinks;
    uint32_t nroots;
    struct rf_pnode *nodes;
    struct rf_pnode_cold *cold;
    uint32_t *succ;
    uint32_t *join0; /* in-degree of each node: an execution's initial join counters */
    uint32_t *roots;
    char *strtab; /* name and node ids */
    const char *name;
    rf_engine *eng;
    size_t bytes;

    /* the graph language (engine/lang.c) */
    struct rf_pnode_x *xs;  /* n entries, or NULL when no node uses the language */
    struct rf_tmpl *output; /* the `output` template; NULL = sinks by id (or output_static) */
    json_t *output_static;  /* an `output` with no template */
    json_t *inputs_decl;    /* the `inputs` declaration or NULL */
    json_t *doc;            /* the document it was compiled from, or NULL */
    char **calls;           /* graph names its `graph` nodes call (literal), NULL-terminated */
    uint32_t ncalls;

    /* set once by the registry before the plan is shared */
    uint32_t version;
    char hash[33];
    int64_t created_us;
};

/* --- executions --------------------------------------------------------------------- */

/* rf_exec.ctl bits: one word so the per-node check is one load. */
enum {
    RF_CTL_CANCEL = 1u << 0,        /* cancellation requested */
    RF_CTL_FAILED = 1u << 1,        /* a node failed for good: start nothing new (fail fast) */
    RF_CTL_NODE_CANCELED = 1u << 2, /* a node ended canceled */
};

/* rf_nstate.flags */
enum {
    RF_NS_DEP_BAD = 1u << 0, /* a dep ended failed, skipped or canceled */
};

struct rf_nstate {
    _Atomic uint32_t join;     /* deps not yet terminal; the one who takes it to 0 runs it */
    _Atomic uint8_t status;    /* rf_status; release-stored after output and error */
    _Atomic uint8_t flags;     /* RF_NS_*; set by deps before their join decrement */
    _Atomic uint16_t attempts; /* attempts started; relaxed, readers want a snapshot */
    json_t *output;            /* set once before status becomes succeeded */
};

/* An event as queued: small, no JSON built. Payloads are read at delivery time from the
 * execution (outputs, params) except the error, which the record owns a reference to. */
struct rf_evrec {
    uint64_t seq;
    int64_t ts_us;
    uint8_t type; /* rf_event_type, or RF_EVREC_DONE */
    bool has_lineage;
    uint32_t node;
    int32_t item; /* -1 unless an item of a mapped node */
    uint32_t attempt;
    uint32_t retry_in_ms;
    json_t *data; /* owned or NULL: params (node.started), output (node.succeeded,
                     node.cached), error (node.retrying, node.failed) */
    uint8_t lineage[16];
};

#define RF_EVREC_DONE 0xff /* not an event: run the done callback, then release the exec */

struct rf_evq {
    _Atomic uint32_t lock; /* test-and-test-and-set spin lock: held for an append only */
    bool delivering;       /* under lock: a thread is running the callbacks */
    uint64_t seq;          /* under lock: last seq given */
    struct rf_evrec *buf;  /* under lock: pending records */
    uint32_t len, cap;
    struct rf_evrec *spare; /* the deliverer's batch; swapped with buf under lock */
    uint32_t spare_cap;
};

#define RF_SHARDS_MAX 1024 /* shard threads of one engine */
#define RF_EXEC_ID_LEN 27 /* 26 Crockford base32 characters and a NUL */

/* A mapped node's run (engine/map.c): items are claimed by `nlanes` lanes, each a token in
 * the deques that runs one item at a time; the last lane to retire ends the node. */
struct rf_lane {
    uint32_t item; /* the item this lane runs, or UINT32_MAX between items */
    uint8_t phase; /* RF_PHASE_* of that item */
    bool leader;   /* it leads the single flight of its lineage hash */
    bool has_lineage;
    bool rlease;    /* holds the remote cache's lease on its lineage hash */
    int8_t rres;    /* RF_PHASE_FETCH: the remote answer */
    json_t *rvalue; /* RF_PHASE_FETCH: a remote hit's output, owned */
    json_t *params; /* the item's resolved params, owned; NULL = the node's config */
    uint8_t lineage[16];
};

struct rf_item {
    json_t *val;       /* output when succeeded/cached, error when failed; owned */
    uint16_t attempts; /* written by the lane running the item */
    uint8_t status;    /* rf_status; RF_ST_PENDING until the item ends */
};

struct rf_mapst {
    json_t *arr; /* the resolved array, owned */
    uint32_t n, nlanes;
    _Atomic uint32_t next;       /* next item to claim; relaxed fetch_add */
    _Atomic uint32_t lanes_live; /* lanes not retired; acq_rel, the last ends the node */
    _Atomic uint32_t stop;       /* an item failed or was canceled: claim no more */
    _Atomic int32_t failed_item; /* first item that failed for good, or -1 */
    struct rf_item *items;       /* n entries */
    struct rf_lane lanes[];      /* nlanes entries */
};

/* Phases of a node (or item) run that uses the graph language. */
enum {
    RF_PHASE_NEW = 0, /* `when` and params not evaluated yet */
    RF_PHASE_PARAMS,  /* params resolved: look the cache up next */
    RF_PHASE_RUN,     /* attempts run (a retry comes back here) */
    RF_PHASE_FETCH,   /* the remote cache answered: rres and rvalue hold its answer */
};

/* Per-node state of the graph language, allocated for an execution on first need. Written
 * by the shard that owns the node at the time, like rf_nstate. */
struct rf_naux {
    json_t *params;       /* resolved params, owned; NULL = the node's config */
    struct rf_mapst *map; /* mapped node */
    uint8_t phase;        /* RF_PHASE_* */
    bool leader;          /* leads the single flight of `lineage` */
    bool has_lineage;
    bool rlease;          /* holds the remote cache's lease on `lineage` */
    int8_t rres;          /* RF_PHASE_FETCH: the remote answer (storage/cache.h) */
    json_t *rvalue;       /* RF_PHASE_FETCH: a remote hit's output, owned */
    uint8_t lineage[16];
};

/* A sub-execution's link to its parent (graph kind). */
struct rf_parent {
    char exec_id[RF_EXEC_ID_LEN];
    char node_id[65];
    int64_t item;
    uint32_t depth; /* 1 for a child of a top-level execution */
};

struct rf_exec {
    /* immutable after submit */
    rf_engine *eng;
    rf_plan *plan;
    json_t *inputs;
    rf_callbacks cb;
    uint32_t flags;           /* RF_SUBMIT_* */
    struct rf_parent *parent; /* owned, NULL for a top-level execution */
    struct rf_xdoc *doc;      /* RF_SUBMIT_DOCUMENT: the hydrated document */
    json_t *tags;             /* owned or NULL */
    int64_t created_us;
    uint32_t home;
    uint32_t slot; /* global slot, set by the home shard before any node runs */
    char id[RF_EXEC_ID_LEN];
    uint8_t *replay;       /* resumed: per node its recorded status + 1, 0 to run it; owned */
    uint64_t events_before; /* resumed: events emitted in an earlier life */
    _Atomic uint8_t held;  /* RF_SUBMIT_HELD: 1 until started (0) or abandoned (2) */

    /* shared, written by any shard running its nodes */
    _Atomic uint32_t refs RF_ALIGNED_CL; /* handles plus the engine's own reference */
    _Atomic uint32_t ctl;                /* RF_CTL_* */
    _Atomic uint32_t sinks_left;         /* sinks not yet terminal; 0 = nodes all done */
    _Atomic int32_t first_failed;        /* node index of the first failure, or -1 */
    _Atomic uint8_t status;              /* rf_status of the execution */
    _Atomic uint32_t done;               /* futex word: 0 running, 2 running and waited
                                            for, 1 once callbacks are all done */
    _Atomic(json_t **) errs;             /* per-node last error, allocated at first failure */
    _Atomic uint32_t has_outputs;        /* some node stored an output: free must scan */
    _Atomic(struct rf_naux *) aux;       /* per-node language state, allocated on first need */
    int64_t started_us, finished_us;     /* written by the home/finishing shard */
    json_t *error;                       /* {code, message, node} once failed */
    json_t *output;                      /* the execution's output once succeeded */

    struct rf_evq evq;

    /* home shard only */
    struct rf_exec *hnext, *hprev;

    struct rf_nstate ns[]; /* plan->n entries */
};

/* Token = global execution slot (24 bits) | node index (40 bits). A lane of a mapped node
 * sets RF_TOK_LANE and its lane number above the node index (plans have < 2^28 nodes). */
#define RF_TOK_LANE       (1ull << 39)
#define RF_TOK_LANE_SHIFT 28
#define RF_TOK_IDX_MASK   ((1u << RF_TOK_LANE_SHIFT) - 1)
#define RF_NO_LANE        UINT32_MAX
#define RF_TOK_NODE_BITS  40
#define RF_TOK_SLOT_MAX   (1u << 24)
static inline uint64_t rf_tok(uint32_t slot, uint32_t node)
{
    return ((uint64_t)slot << RF_TOK_NODE_BITS) | node;
}
static inline uint32_t rf_tok_slot(uint64_t t)
{
    return (uint32_t)(t >> RF_TOK_NODE_BITS);
}
static inline uint32_t rf_tok_node(uint64_t t)
{
    return (uint32_t)(t & ((1ull << RF_TOK_NODE_BITS) - 1));
}
#define RF_TOK_NONE UINT64_MAX

/* The token of a run: node `node`, or one of its lanes (lane != RF_NO_LANE). */
static inline uint64_t rf_tok_run(uint32_t slot, uint32_t node, uint32_t lane)
{
    if (lane == RF_NO_LANE)
        return rf_tok(slot, node);
    return rf_tok(slot, node) | RF_TOK_LANE | ((uint64_t)lane << RF_TOK_LANE_SHIFT);
}

/* --- tasks: an attempt or a back-off that waits on the ring --------------------------- */

enum rf_task_state {
    RF_TASK_ATTEMPT = 1, /* an async kind's attempt is in flight */
    RF_TASK_BACKOFF,     /* waiting for the retry timer */
    RF_TASK_FLIGHT,      /* waiting for an identical run in flight (single flight) */
    RF_TASK_REMOTE,      /* waiting for the remote cache (storage/cache.h rf_rcache_ops) */
};

struct rf_task {
    rf_call call;
    struct rf_exec *ex;
    struct rf_shard *sh;
    struct rf_task *next, *prev; /* the shard's list of waiting tasks */
    uint32_t node;
    uint32_t lane;                    /* RF_NO_LANE, or the lane of a mapped node's item */
    uint64_t tok;                     /* the token that resumes the run (retry, single flight) */
    struct rf_task *wnext;            /* in the owner's woken stack (rf__shard_task_wake) */
    void (*woken)(struct rf_task *t); /* run on the owner shard once woken */
    struct rf_flight_waiter fw;       /* RF_TASK_FLIGHT: queued behind the flight of `key` */
    struct rf_rcache_req rreq;        /* RF_TASK_REMOTE: the lookup of `key` */
    uint8_t key[16];
    uint8_t state;       /* enum rf_task_state */
    bool timer_armed;    /* timeout or back-off timer awaiting its CQE */
    bool timed_out;      /* the attempt's timeout fired */
    bool cancel_sent;    /* kind->cancel called or back-off timer removed */
    bool timer_removing; /* a timeout_remove for `timer` is queued */
    bool completed;      /* the kind completed the attempt; result below */
    int result;          /* 0 or the failure */
    json_t *output;      /* owned until handed to the node */
    rf_op timer;         /* the timeout / back-off timer */
    struct __kernel_timespec ts;
    rf_error err;
    _Alignas(16) unsigned char data[]; /* kind->task_bytes */
};

/* --- the engine --------------------------------------------------------------------- */

enum rf_engine_state {
    RF_ENG_NEW = 0,
    RF_ENG_RUNNING,
    RF_ENG_STOPPING,
    RF_ENG_STOPPED,
};

struct rf_engine {
    rf_config cfg;
    uint32_t nshards;
    struct rf_shard **shards;
    struct rf_exec **ex_table; /* nshards * inflight_per_shard_max: slot -> execution */
    struct rf_kind_ent *kinds;
    uint32_t nkinds;
    uint32_t task_bytes_max;         /* largest kind->task_bytes: sizes the task pools */
    bool has_msg_ring;               /* IORING_OP_MSG_RING usable for shard-to-shard wakeups */
    unsigned ring_flags;             /* setup flags the probe settled on */
    uint64_t instance;               /* random, for execution ids */
    struct rf_cache *cache;          /* the result cache (memory backend by default) */
    struct rf_flight *flight;        /* single flight of cached runs */
    const struct rf_rcache_ops *remote; /* the remote cache tier, or NULL */
    void *remote_ud;
    struct rf_registry *reg;         /* registered graphs (engine/registry.c) */
    _Atomic uint64_t flights_joined; /* runs that waited for a flight; relaxed stat */
    void *http_state;                /* the http kind's per-shard pools (net/hclient.c) */
    const struct rf_shard_service *svcs[RF_SERVICES_MAX]; /* on every shard's ring, in order */
    uint32_t nsvcs;

    _Atomic uint32_t state RF_ALIGNED_CL;      /* enum rf_engine_state; seq_cst transitions */
    _Atomic uint32_t rr RF_ALIGNED_CL;         /* round robin for submissions; relaxed */
    _Atomic uint32_t nparked RF_ALIGNED_CL;    /* shards parked now; relaxed hint for wakers */
    _Atomic uint32_t cancel_all RF_ALIGNED_CL; /* stop: shards cancel every home execution */
    _Atomic uint32_t quit;                     /* stop: shard threads exit their loops */
    _Atomic uint32_t stop_word;                /* futex the stopper sleeps on */

    pthread_mutex_t start_mu; /* start-up hand-shake with the shard threads only */
    pthread_cond_t start_cv;
    uint32_t started;
    int start_err;
};

/* Add a service (sched/shard.h) to every shard; borrowed until rf_engine_free. Only
 * between rf_engine_new and rf_engine_start. Services start and flush in the order they
 * were added and stop in the reverse order. -EBUSY once the engine runs, -ENOSPC past
 * RF_SERVICES_MAX. */
struct rf_shard_service;
int rf__engine_set_service(rf_engine *eng, const struct rf_shard_service *svc);
/* Add the remote cache tier (storage/cache.h; ops and ud borrowed until rf_engine_free).
 * Only between rf_engine_new and rf_engine_start. -EBUSY once the engine runs. */
int rf__engine_set_remote_cache(rf_engine *eng, const struct rf_rcache_ops *ops, void *ud);
/* rf_graph_register with the version's creation time given (a journal's replay); 0 is
 * now. */
int rf__graph_register_at(rf_engine *eng, const char *json, size_t len, int64_t created_us,
                          rf_diag *diag, rf_plan **out, bool *created);
/* The shard `i` (valid after rf_engine_start until rf_engine_free). */
struct rf_shard *rf__engine_shard(rf_engine *eng, uint32_t i);

/* engine/event.c: an RFC 3339 UTC time with microseconds ("...T12:00:00.123456Z") to
 * microseconds since the epoch; and the inverse of rf_event_json(): *ev borrows from `o`
 * (valid while o is), `node` is the index of o's "node" (-1 for execution events).
 * 0 or -EINVAL. */
int rf__ts_parse(const char *s, int64_t *us);
int rf__event_from_json(const json_t *o, int32_t node, rf_event *ev);

/* net/hclient.c: the http kind. Register (from rf__register_builtin_kinds) allocates
 * eng->http_state; free closes pooled connections and frees it (after the shards stopped). */
int rf__http_kind_register(rf_engine *eng);
void rf__http_kind_free(rf_engine *eng);

/* engine/exec.c */
struct rf_naux *rf__aux_get(struct rf_exec *ex);
uint64_t rf__node_finish(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, rf_status st);
uint64_t rf__node_fail_now(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, rf_error *err);
uint64_t rf__attempt_start(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, uint32_t lane);
/* The lineage hash of a run (a node, or the item its lane runs), or NULL if not computed. */
const uint8_t *rf__run_lineage(struct rf_exec *ex, uint32_t i, uint32_t lane);
/* Emit a node event for a run; `data` (params, output or error) is stolen. */
void rf__run_emit(struct rf_exec *ex, uint32_t i, uint32_t lane, uint8_t type, uint32_t retry_in_ms,
                  json_t *data);
/* The node event that ends a run in terminal status `st`. */
static inline uint8_t rf__ev_of_status(rf_status st)
{
    static const uint8_t ev_of[] = {
        [RF_ST_SUCCEEDED] = RF_EV_NODE_SUCCEEDED, [RF_ST_FAILED] = RF_EV_NODE_FAILED,
        [RF_ST_CANCELED] = RF_EV_NODE_CANCELED,   [RF_ST_SKIPPED] = RF_EV_NODE_SKIPPED,
        [RF_ST_CACHED] = RF_EV_NODE_CACHED,
    };
    return ev_of[st];
}
void rf__task_link(struct rf_shard *sh, struct rf_task *t);
void rf__task_unlink(struct rf_task *t);
void rf__scope_fill(struct rf_scope *sc, const struct rf_exec *ex, const json_t *item,
                    int64_t index);
int rf__submit(rf_engine *eng, rf_plan *plan, json_t *inputs, const rf_submit_opts *opts,
               const struct rf_parent *parent, rf_exec **out);

/* engine/lrun.c: runs that use the graph language (when, params, cache, map) */
uint64_t rf__node_begin(struct rf_shard *sh, struct rf_exec *ex, uint32_t i);
uint64_t rf__lane_run(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, uint32_t lane);
/* An item's run ended: `val` (owned) is its output when succeeded, NULL otherwise (the
 * error was stored in the item). Returns the lane's next token. */
uint64_t rf__item_finish(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, uint32_t lane,
                         rf_status st, json_t *val);
void rf__cache_after_node(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, rf_status st);
void rf__flight_task_cancel(struct rf_shard *sh, struct rf_task *t);
void rf__remote_task_cancel(struct rf_shard *sh, struct rf_task *t);
void rf__map_free(struct rf_mapst *ms);

static inline bool rf__events_on(const struct rf_exec *ex)
{
    return ex->cb.event != NULL || ex->doc != NULL;
}
void rf__exec_start(struct rf_shard *sh, struct rf_exec *ex);
uint64_t rf__run_token(struct rf_shard *sh, uint64_t tok);
void rf__exec_done_home(struct rf_shard *sh, struct rf_exec *ex);
void rf__exec_cancel_home_all(struct rf_shard *sh);
void rf__tasks_cancel_scan(struct rf_shard *sh);
void rf__task_timer_cqe(rf_op *op, int res, uint32_t flags);
void rf__exec_free(struct rf_exec *ex);

/* engine/event.c */
void rf__evq_emit(struct rf_exec *ex, uint8_t type, uint32_t node, uint32_t attempt,
                  uint32_t retry_in_ms, json_t *data);
/* Append a record (copied; its `data` reference is stolen). */
void rf__evq_push(struct rf_exec *ex, struct rf_evrec *r);
void rf__evq_fini(struct rf_evq *q);
void rf__evq_done(struct rf_exec *ex);
json_t *rf__error_json(const rf_error *err, const char *node_id);

/* engine/lang.c: compiling the graph language into a plan */
struct rf_lang_build {
    struct rf_pnode_x *xs; /* n entries, zeroed, or NULL */
    uint64_t *edges;       /* implicit edges (ref -> node), from << 32 | to */
    char **edge_ptrs;      /* the JSON Pointer of the reference that made each edge */
    uint32_t m, mcap;
    struct rf_tmpl *output;
};
/* Compile templates, conditions, maps, cache blocks and the output template of `g`;
 * problems to `diag` (and *bad = 1). -ENOMEM. */
int rf__lang_compile(rf_engine *eng, const rf_graph *g, struct rf_lang_build *lb, rf_diag *diag,
                     int *bad);
/* After Kahn: report the references that point at a node not upstream (its edge is on or
 * behind a cycle). indeg[] is what Kahn left. */
void rf__lang_report_refs(const rf_graph *g, const struct rf_lang_build *lb, const uint32_t *indeg,
                          rf_diag *diag);
void rf__lang_build_free(struct rf_lang_build *lb, uint32_t n);
void rf__pnode_x_free(struct rf_pnode_x *xs, uint32_t n);
bool rf__pnode_x_used(const struct rf_pnode_x *x); /* anything of the language set */
/* Lineage hashes of nodes whose params are static; calls of `graph` nodes. -ENOMEM. */
int rf__lang_finish_plan(rf_plan *p, const rf_graph *g);

/* engine/registry.c: registered graphs by name and version */
struct rf_registry;
int rf__registry_new(struct rf_registry **out);
void rf__registry_free(struct rf_registry *reg); /* NULL is a no-op */

/* engine/subgraph.c: the `graph` kind */
int rf__register_graph_kind(rf_engine *eng);

/* engine/kinds.c */
int rf__register_builtin_kinds(rf_engine *eng);
const struct rf_kind_ent *rf__kind_find(const rf_engine *eng, const char *name);

/* engine/util.c */
void rf__futex_wait(_Atomic uint32_t *word, uint32_t expect, uint32_t timeout_ms);
void rf__futex_wake_all(_Atomic uint32_t *word);
/* `base` + "/" + `key`, the key escaped as RFC 6901 says (~ as ~0, / as ~1); rf_free() it.
 * NULL when out of memory. */
char *rf__ptr_child(const char *base, const char *key);
/* Bytes of `s` to quote in a message: at most `max`, never splitting a UTF-8 sequence. */
int rf__utf8_shown(const char *s, size_t max);

#endif /* RF_ENGINE_INTERNAL_H */
