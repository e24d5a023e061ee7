/*
 * ringflow.h: the embedding API of libringflow, the only header an application includes.
 *
 * An engine (rf_engine) runs N shards: one pinned thread each, each owning an io_uring
 * ring, a mimalloc heap and a work-stealing deque of ready nodes. An application
 *
 *   1. creates an engine with rf_engine_new() and registers its node kinds,
 *   2. starts it with rf_engine_start(),
 *   3. builds graphs with rf_graph_* and compiles them into immutable plans,
 *   4. submits executions of a plan from any thread with rf_submit(), receiving their
 *      events and their completion through callbacks, cancelling them, reading them,
 *   5. stops it with rf_engine_stop() and frees it with rf_engine_free().
 *
 * Conventions, the same everywhere:
 *   - Functions returning int give 0 (or a count) on success and a negative errno on
 *     failure; domain errors are enum rf_err values below -4096, named by rf_strerror().
 *     The global errno is never part of the contract.
 *   - Every prototype says who owns what: "borrowed" (the callee keeps nothing past the
 *     call), "owned by the callee" (a reference is stolen), "copied", or "valid until" a
 *     named event. JSON values are jansson's json_t; their reference counts are atomic, so
 *     values handed to the engine may be shared with the application read-only.
 *   - Every prototype says which threads may call it. "Any thread" includes shard threads
 *     (from inside callbacks and kinds) unless it says otherwise.
 *
 * Events follow ../shared/spec/api.md: `seq` starts at 1 per execution and has no gaps;
 * callbacks of one execution never run concurrently and see events in `seq` order.
 */
#ifndef RINGFLOW_H
#define RINGFLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <liburing.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RF_VERSION_MAJOR 0
#define RF_VERSION_MINOR 1
#define RF_VERSION_PATCH 0

/* ---------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------ */

/* Domain errors, all below -4096 so they never collide with a negative errno. */
enum rf_err {
    RF_EINVAL_GRAPH = -5000, /* the graph is invalid; rf_diag lists why */
    RF_ENOKIND,              /* no node kind of that name is registered */
    RF_EKIND,                /* a kind's definition is invalid */
    RF_ESTATE,               /* the call is not allowed in the engine's current state */
    RF_EIOURING,             /* io_uring is missing a feature the engine needs */
    RF_EOVERLOAD,            /* every shard is at its in-flight bound: retry later */
    RF_ELIMIT,               /* a configured limit was reached */
    RF_EINPUTS,              /* execution inputs do not match the graph's `inputs`;
                                rf_diag lists why */
    RF_ENOGRAPH,             /* no graph (or version) of that name is registered */
};

/* A static, human-readable string for a negative errno or an rf_err. Any thread. */
const char *rf_strerror(int err);

/* A node attempt's failure, filled by a kind. `code` is a stable machine-readable word
 * (e.g. "timeout", "canceled", "http_status"); `message` is for people. `retryable`
 * tells the engine whether the node's retry policy applies (I/O errors, timeouts and
 * overload are retryable; bad configuration is not). */
#define RF_ERROR_CODE_MAX    48
#define RF_ERROR_MESSAGE_MAX 256
typedef struct rf_error {
    char code[RF_ERROR_CODE_MAX];
    char message[RF_ERROR_MESSAGE_MAX];
    bool retryable;
} rf_error;

/* Fill *err (printf-style message, truncated to fit); returns `rc` so a kind can write
 * `return rf_error_set(err, -EIO, true, "io", "read %s: %d", path, n);`. Any thread. */
int rf_error_set(rf_error *err, int rc, bool retryable, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* ---------------------------------------------------------------------------------------
 * Engine
 * ------------------------------------------------------------------------------------ */

typedef struct rf_engine rf_engine;

typedef enum rf_log_level {
    RF_LOG_DEFAULT = 0, /* info */
    RF_LOG_DEBUG,
    RF_LOG_INFO,
    RF_LOG_WARN,
    RF_LOG_ERROR,
} rf_log_level;

/* Engine configuration. Zero-initialize and set what you need: every zero field takes
 * the default named in its comment. Copied by rf_engine_new(). */
typedef struct rf_config {
    uint32_t shards;                 /* shard threads; 0 = online CPUs */
    bool no_pin_threads;             /* shards are pinned to the i-th allowed CPU unless set */
    bool no_msg_ring;                /* wake shards through eventfds even where
                                        IORING_OP_MSG_RING works (tests the fallback) */
    uint32_t ring_entries;           /* SQ entries per ring; 0 = 1024 */
    uint32_t inflight_per_shard_max; /* executions in flight per shard; 0 = 4096 */
    uint32_t plan_nodes_max;         /* nodes per plan; 0 = 10,000 (the spec's default) */
    uint32_t run_budget;             /* nodes a shard runs between two looks at its ring;
                                        0 = 256 */
    uint32_t steal_attempts;         /* random victims tried before parking; 0 = 2 x shards */
    uint32_t kinds_max;              /* registered kinds; 0 = 256 */
    uint64_t seed;                   /* jitter and victim selection; 0 = from the clock */
    rf_log_level log_level;          /* diagnostics on stderr, JSON lines; 0 = info.
                                        Process-wide: the last engine created sets it */
    /* Graph documents and the graph language (spec/graph.md) */
    uint32_t doc_bytes_max;     /* graph document size; 0 = 1 MiB */
    uint32_t doc_depth_max;     /* JSON nesting in a graph document; 0 = 64 */
    uint32_t map_items_max;     /* items of one mapped node run; 0 = 1,048,576, at most
                                   RF_MAP_ITEMS_LIMIT */
    uint32_t graph_depth_max;   /* sub-graph nesting (graph kind); 0 = 8 */
    /* The in-memory result cache, shared by the shards */
    uint64_t cache_bytes_max;   /* 0 = 64 MiB */
    uint64_t cache_entries_max; /* 0 = 65,536 */
    /* The http kind's client (net/hclient.c) */
    uint32_t http_timeout_ms;        /* per attempt, unless the node's timeout_ms is shorter;
                                        0 = 30,000 */
    uint32_t http_response_bytes_max; /* status line, headers and body; 0 = 8 MiB */
    uint32_t http_idle_conns_max;     /* idle keep-alive connections per shard; 0 = 64 */
} rf_config;

#define RF_MAP_ITEMS_LIMIT   (1u << 24) /* hard bound of map_items_max */
#define RF_MAX_PARALLEL_MAX  1024       /* hard bound of a node's max_parallel */

/* Create an engine (not started). `cfg` borrowed, may be NULL for all defaults.
 * Built-in kinds (noop, delay, fail) are registered already. On success *out is owned by
 * the caller and freed with rf_engine_free(). Any non-shard thread. */
int rf_engine_new(const rf_config *cfg, rf_engine **out);

/* Probe io_uring, create the shards and start their threads. Fails with RF_EIOURING and a
 * message on stderr naming what is missing (a disabled io_uring, an opcode, a setup flag).
 * Once. Any non-shard thread. */
int rf_engine_start(rf_engine *eng);

/* Stop the engine. New submissions fail with -ESHUTDOWN from the moment this is called.
 * In-flight executions are given `drain_ms` to finish; whatever is still running then is
 * canceled (its nodes' I/O canceled too) and completes as canceled, with its callbacks.
 * When this returns, every shard thread has exited and no callback will ever run again.
 * Handles (rf_exec) stay readable until released. Idempotent. Any non-shard thread; never
 * from inside a callback or a kind (that would wait for itself). */
int rf_engine_stop(rf_engine *eng, uint32_t drain_ms);

/* Free an engine (stopping it first with drain_ms 0 if it is running). Plans and exec
 * handles still held by the application stay valid until released. NULL is a no-op.
 * Any non-shard thread. */
void rf_engine_free(rf_engine *eng);

/* Number of shards (valid after rf_engine_new). Any thread. */
uint32_t rf_engine_shards(const rf_engine *eng);

/* Per-shard counters, for metrics and benchmarks. Values are racy snapshots. */
typedef struct rf_shard_stats {
    uint64_t nodes_run;      /* node attempts run on this shard */
    uint64_t steals;         /* successful steals from a sibling's deque */
    uint64_t steal_attempts; /* steal tries, successful or not */
    uint64_t parks;          /* times the shard slept in io_uring_submit_and_wait */
    uint64_t wakeups_sent;   /* wakeups this shard sent to parked siblings */
    uint64_t submits;        /* io_uring_submit* calls */
    uint64_t cqes;           /* completions reaped */
    uint64_t deque_depth;    /* ready nodes queued now (approximate) */
    uint64_t inflight;       /* executions homed here now */
} rf_shard_stats;

/* Fill *out with shard `shard`'s counters. Any thread. -EINVAL for a bad index. */
int rf_engine_shard_stats(const rf_engine *eng, uint32_t shard, rf_shard_stats *out);

/* ---------------------------------------------------------------------------------------
 * Node kinds
 *
 * A kind turns a node's params (its resolved config) into an output. Two shapes:
 *
 * Synchronous (RF_KIND_SYNC): `run` is a function from params to output that runs to
 * completion on the shard that popped the node. It must not block (no sleeping, no
 * blocking I/O, no locks held long): a shard stalled in it stalls every node queued behind
 * it. A timeout_ms on such a node cannot interrupt it; an attempt that returns after its
 * timeout counts as timed out.
 *
 * Asynchronous (RF_KIND_ASYNC): `start` begins an attempt on the running shard's ring and
 * returns; the attempt completes later with exactly one rf_task_succeed() or
 * rf_task_fail(). Such a kind
 *   MAY   take SQEs with rf_task_sqe() (user_data is set by the engine: do not change it),
 *         arm several operations, use multishot operations, keep per-attempt state in
 *         rf_task_data() (kind->task_bytes of it, zeroed), and complete from its start
 *         function or from any of its operations' callbacks;
 *   MUST  complete each attempt exactly once, and only after every operation it issued has
 *         delivered its last CQE (the rf_op and the task memory are reused afterwards);
 *         answer `cancel` by cancelling its in-flight operations (rf_task_cancel_op()) and
 *         then completing, normally with rf_task_fail(-ECANCELED);
 *   MUST NOT call io_uring_submit*, io_uring_wait*, or io_uring_cqe_seen on the ring
 *         (the shard batches submissions and reaps completions), block, keep the task or
 *         its params after completing, or touch a task from any other thread.
 * start, cancel and every operation callback run on the shard thread that owns the task.
 * The engine calls `cancel` when the execution is canceled, the attempt's timeout expires,
 * or the engine stops; at most once per attempt, and never after the attempt completed.
 * ------------------------------------------------------------------------------------ */

typedef struct rf_task rf_task;
typedef struct rf_op rf_op;

/* An io_uring operation issued by an async kind. Caller-owned (usually inside
 * rf_task_data()), it must stay valid until its last CQE was delivered to `cb`. */
typedef void (*rf_op_fn)(rf_op *op, int res, uint32_t cqe_flags);
struct rf_op {
    rf_op_fn cb;   /* called on the owning shard for each CQE of the operation */
    rf_task *task; /* the task the operation belongs to, set by rf_task_sqe() */
};

typedef enum rf_kind_type {
    RF_KIND_SYNC = 1,
    RF_KIND_ASYNC = 2,
} rf_kind_type;

/* What a synchronous kind is given. All borrowed, valid during the call. */
typedef struct rf_call {
    const json_t *params; /* the node's params (its resolved config); JSON null if none */
    const char *node_id;  /* the node's id in its graph */
    const char *exec_id;  /* the execution's id */
    uint32_t attempt;     /* 1 for the first attempt */
    uint32_t shard;       /* the shard running it */
} rf_call;

typedef struct rf_kind {
    const char *name; /* [a-z][a-z0-9_.-]{0,63}; copied at registration */
    rf_kind_type type;
    void *ud; /* passed back unchanged; owned by the application */
    /* RF_KIND_SYNC: 0 and *output (owned by the engine, NULL means JSON null) on success;
     * a negative errno or rf_err with *err filled on failure. */
    int (*run)(void *ud, const rf_call *call, json_t **output, rf_error *err);
    /* RF_KIND_ASYNC: begin the attempt; see the rules above. A negative return fails the
     * attempt at once with *err if filled (then the kind must not complete it). */
    int (*start)(void *ud, rf_task *task, rf_error *err);
    /* RF_KIND_ASYNC: cancel the attempt's in-flight operations; see the rules above. */
    void (*cancel)(void *ud, rf_task *task);
    /* Optional: check a node's config when a graph using this kind is compiled.
     * 0 or a negative value with *err filled (then compilation fails naming the node). */
    int (*validate)(void *ud, const json_t *config, rf_error *err);
    uint32_t task_bytes; /* RF_KIND_ASYNC: per-attempt state for rf_task_data(), <= 1024 */
} rf_kind;

#define RF_TASK_BYTES_MAX 1024

/* Register a kind (copied). Only between rf_engine_new() and rf_engine_start(), from the
 * thread that created the engine. -EEXIST if the name is taken, RF_EKIND if the definition
 * is invalid, RF_ELIMIT past kinds_max. */
int rf_engine_register_kind(rf_engine *eng, const rf_kind *kind);

/* --- what an async kind may call, on the task's shard thread only --- */

/* The attempt's params, node id, exec id, attempt number and shard (borrowed, valid until
 * the attempt completes). */
const rf_call *rf_task_call(const rf_task *task);
/* The kind's per-attempt state: task_bytes bytes, zeroed at start, 16-byte aligned. */
void *rf_task_data(rf_task *task);
/* The shard's ring, for io_uring_register_* lookups or probing; do not submit on it. */
struct io_uring *rf_task_ring(rf_task *task);
/* An SQE on the task's shard ring whose completion goes to `op->cb` (op->cb set here).
 * NULL when the ring is full even after flushing: fail the attempt as retryable. */
struct io_uring_sqe *rf_task_sqe(rf_task *task, rf_op *op, rf_op_fn cb);
/* Ask the kernel to cancel `op` (IORING_OP_ASYNC_CANCEL); its CQE then arrives with
 * -ECANCELED (or its natural result if it raced). 0 or -EBUSY when no SQE was free. */
int rf_task_cancel_op(rf_task *task, rf_op *op);
/* Complete the attempt successfully; `output` is owned by the engine (NULL = JSON null). */
void rf_task_succeed(rf_task *task, json_t *output);
/* Complete the attempt with a failure; `err` copied. */
void rf_task_fail(rf_task *task, const rf_error *err);

/* ---------------------------------------------------------------------------------------
 * Graphs and plans
 *
 * rf_graph is a mutable builder used by one thread; rf_plan_compile() turns it into an
 * rf_plan: immutable, reference counted, shareable by any number of executions on any
 * thread. The JSON graph document (spec/graph.md) compiles to this same plan.
 * ------------------------------------------------------------------------------------ */

typedef struct rf_graph rf_graph;
typedef struct rf_plan rf_plan;

/* Every problem found by rf_graph_parse(), rf_plan_compile() or rf_inputs_check(). */
typedef struct rf_diag_item {
    char *pointer; /* JSON Pointer to the offending place, e.g. "/nodes/3/kind" */
    char *code;    /* stable word: "duplicate_id", "cycle", "unknown_kind", ... */
    char *message; /* for people */
} rf_diag_item;

typedef struct rf_diag {
    rf_diag_item *items;
    uint32_t count;
    uint32_t cap;
} rf_diag;

void rf_diag_init(rf_diag *d);
void rf_diag_free(rf_diag *d);
/* Append an item (strings copied). -ENOMEM. */
int rf_diag_add(rf_diag *d, const char *pointer, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));


typedef enum rf_trigger {
    RF_TRIGGER_ALL_SUCCEEDED = 0, /* run when every dep succeeded (or was cached) */
    RF_TRIGGER_ALL_DONE = 1,      /* run once every dep is terminal, whatever the outcome */
} rf_trigger;

typedef struct rf_retry {
    uint32_t max_attempts;   /* 0 = 1 (no retry) */
    uint32_t backoff_ms;     /* first delay cap; 0 = 100 */
    uint32_t max_backoff_ms; /* delay cap; 0 = 10,000 */
} rf_retry;

/* Memoization by lineage hash (spec/graph.md, "Lineage hash"). */
typedef struct rf_cache_opts {
    uint32_t ttl_s;      /* 0 = no cache */
    const char *version; /* NULL = "" */
} rf_cache_opts;

/* Per-node settings; zero-initialize. Copied by rf_graph_add_node() (strings too). */
typedef struct rf_node_opts {
    rf_trigger trigger;
    uint32_t timeout_ms; /* per attempt; 0 = none */
    rf_retry retry;
    const char *when;      /* condition (spec/graph.md, "Conditions"); NULL = none */
    const char *map;       /* template that resolves to an array; NULL = not mapped */
    uint32_t max_parallel; /* items running at once for a mapped node; 0 = 64 */
    rf_cache_opts cache;
} rf_node_opts;

/* A new, empty graph named `name` (copied). Owned by the caller; rf_graph_free(). */
int rf_graph_new(const char *name, rf_graph **out);
void rf_graph_free(rf_graph *g);

/* Add a node. `id` and `kind` copied; `config` borrowed (a reference is taken; NULL = no
 * config); `opts` copied, NULL for defaults. Returns the node's index (>= 0), or a
 * negative errno. Problems with the id or kind are reported by rf_plan_compile(), all at
 * once, so building never has to stop half-way. */
int rf_graph_add_node(rf_graph *g, const char *id, const char *kind, json_t *config,
                      const rf_node_opts *opts);

/* Add the edge from -> to (to runs after from). Indices from rf_graph_add_node(). A
 * repeated edge is kept once. -EINVAL for an index out of range. */
int rf_graph_add_edge(rf_graph *g, uint32_t from, uint32_t to);

/* Index of the node named `id`, or -ENOENT. */
int rf_graph_find(const rf_graph *g, const char *id);

/* The graph's `inputs` declaration (spec/graph.md) and `output` template; borrowed (a
 * reference is taken), NULL to clear. Checked by rf_plan_compile(). */
int rf_graph_set_inputs(rf_graph *g, json_t *decl);
int rf_graph_set_output(rf_graph *g, json_t *output);

/* Parse a graph document (spec/graph.md; `json` borrowed, `len` bytes, not necessarily
 * NUL-terminated) into a new builder owned by the caller. On RF_EINVAL_GRAPH every
 * document-level problem is in `diag`: malformed JSON (line and column), unknown fields,
 * bad names, ids and types, unknown deps, the inputs declaration, limits (document bytes,
 * nesting depth). Problems only compilation can see (kinds, templates, cycles) come from
 * rf_plan_compile(). `eng` supplies the limits. Any thread. */
int rf_graph_parse(rf_engine *eng, const char *json, size_t len, rf_diag *diag,
                   rf_graph **out);

/* Compile `g` (borrowed) against the engine's kinds into a new plan owned by the caller.
 * On RF_EINVAL_GRAPH every problem found is appended to `diag` (may be NULL): bad ids,
 * duplicate ids, unknown kinds, self edges, cycles (naming the nodes on one), kind config
 * errors, too many nodes. Nothing invalid is ever compiled. Any non-shard thread or a
 * shard thread; the engine need not be started. */
int rf_plan_compile(rf_engine *eng, const rf_graph *g, rf_diag *diag, rf_plan **out);

/* Parse and compile a document in one step (not registered). */
int rf_plan_from_json(rf_engine *eng, const char *json, size_t len, rf_diag *diag,
                      rf_plan **out);

/* Register a document under its name: a new version (n+1) when its content differs from
 * every earlier version of that name, else the existing version (*created false).
 * "Content" is the document's canonical form (RFC 8785) minus nothing: any change,
 * description included, makes a version. Fails with RF_EINVAL_GRAPH and `diag` like
 * rf_plan_from_json(), also when a `graph` node would make a graph call itself through
 * any path. On success *out is a reference owned by the caller (may be NULL if not
 * wanted). Any non-shard thread. */
int rf_graph_register(rf_engine *eng, const char *json, size_t len, rf_diag *diag,
                      rf_plan **out, bool *created);

/* A registered version (version 0 = the latest), retained for the caller; NULL when there
 * is none. Any thread. */
rf_plan *rf_graph_get(rf_engine *eng, const char *name, uint32_t version);

/* Call fn for each registered name with its latest version and its number of versions,
 * in name order, until fn returns non-zero (which is returned). The plan is borrowed for
 * the call. Any non-shard thread. */
int rf_graph_foreach(rf_engine *eng, int (*fn)(void *ud, const rf_plan *latest), void *ud);

/* Check `inputs` (borrowed) against the plan's `inputs` declaration: types, required
 * inputs, defaults. 0 and *resolved (a new object owned by the caller, defaults filled);
 * RF_EINPUTS with every problem in `diag` (pointers like "/inputs/limit"). Any thread. */
int rf_inputs_check(const rf_plan *p, const json_t *inputs, rf_diag *diag, json_t **resolved);

/* Reference counting; any thread. rf_plan_release(NULL) is a no-op. */
rf_plan *rf_plan_retain(rf_plan *p);
void rf_plan_release(rf_plan *p);

uint32_t rf_plan_nodes(const rf_plan *p);
const char *rf_plan_name(const rf_plan *p); /* valid while the plan is */
const char *rf_plan_node_id(const rf_plan *p, uint32_t node);
const char *rf_plan_node_kind(const rf_plan *p, uint32_t node);
/* Registered plans: version (0 when not registered), graph_hash (32 hex digits of
 * XXH3-128 over the canonical document), the document itself (borrowed; NULL for a plan
 * built without one), and registration time. */
uint32_t rf_plan_version(const rf_plan *p);
const char *rf_plan_hash(const rf_plan *p);
const json_t *rf_plan_document(const rf_plan *p);
int64_t rf_plan_created_us(const rf_plan *p);
/* Bytes the plan occupies, and bytes an execution of it needs beyond its fixed header. */
size_t rf_plan_bytes(const rf_plan *p);
size_t rf_plan_exec_bytes(const rf_plan *p);

/* ---------------------------------------------------------------------------------------
 * Executions and events
 * ------------------------------------------------------------------------------------ */

typedef struct rf_exec rf_exec;

typedef enum rf_status {
    RF_ST_PENDING = 0, /* node: waiting for deps */
    RF_ST_QUEUED,      /* execution: accepted, not started */
    RF_ST_READY,       /* node: deps done, waiting for a shard */
    RF_ST_RUNNING,
    RF_ST_RETRYING, /* node: between attempts */
    RF_ST_SUCCEEDED,
    RF_ST_FAILED,
    RF_ST_CANCELED,
    RF_ST_SKIPPED, /* node */
    RF_ST_CACHED,  /* node: output served from the cache */
} rf_status;

/* "pending", "queued", ... as in the spec. */
const char *rf_status_name(rf_status st);
static inline bool rf_status_terminal(rf_status st)
{
    return st >= RF_ST_SUCCEEDED;
}

typedef enum rf_event_type {
    RF_EV_EXECUTION_QUEUED,
    RF_EV_EXECUTION_STARTED,
    RF_EV_NODE_STARTED,
    RF_EV_NODE_RETRYING,
    RF_EV_NODE_SUCCEEDED,
    RF_EV_NODE_CACHED,
    RF_EV_NODE_FAILED,
    RF_EV_NODE_SKIPPED,
    RF_EV_NODE_CANCELED,
    RF_EV_EXECUTION_SUCCEEDED,
    RF_EV_EXECUTION_FAILED,
    RF_EV_EXECUTION_CANCELED,
} rf_event_type;

/* "execution.queued", "node.started", ... as in the spec. */
const char *rf_event_type_name(rf_event_type t);

/* One event. Everything borrowed, valid during the callback only. */
typedef struct rf_event {
    uint64_t seq;  /* 1, 2, 3, ... per execution, no gaps */
    int64_t ts_us; /* CLOCK_REALTIME, microseconds since the epoch */
    rf_event_type type;
    const char *exec_id;
    int32_t node;             /* node index, -1 for execution events */
    const char *node_id;      /* NULL for execution events */
    int64_t item;             /* item of a mapped node, -1 otherwise */
    uint32_t attempt;         /* node events: 1-based attempt; 0 otherwise */
    uint32_t retry_in_ms;     /* node.retrying */
    bool cached;              /* node.cached */
    const char *lineage_hash; /* 32 hex digits, or NULL when not computed */
    const json_t *params;     /* node.started */
    const json_t *output;     /* node.succeeded, node.cached, execution.succeeded */
    const json_t *error;      /* {code, message}: node.retrying, node.failed,
                                 execution.failed */
    /* A sub-execution (graph kind): the parent's id, node and item (-1), else NULL. */
    const char *parent_exec_id;
    const char *parent_node_id;
    int64_t parent_item;
} rf_event;

/* The event as the spec's JSON object (a new reference owned by the caller), or NULL on
 * allocation failure. Any thread. */
json_t *rf_event_json(const rf_event *ev);

/* Callbacks of one execution run on shard threads, never two at once, events in seq
 * order, `done` after the last event. They must not block and must not call
 * rf_engine_stop(). The rf_exec passed to `done` is borrowed (retain it to keep it). */
typedef struct rf_callbacks {
    void (*event)(void *ud, const rf_event *ev); /* NULL: no events are built at all */
    void (*done)(void *ud, rf_exec *ex);         /* NULL: none */
    void *ud;
} rf_callbacks;

#define RF_SUBMIT_SHARD    0x1u /* home the execution on opts->shard */
#define RF_SUBMIT_DOCUMENT 0x2u /* keep the hydrated document (rf_exec_document) */
#define RF_SUBMIT_HELD     0x4u /* accepted (checked, reserved, given its id) but started only
                                   by rf_exec_start, or dropped by rf_exec_abandon: so the
                                   caller can make it durable first */

/* A node that already ended in an earlier life of the execution (recovery). */
typedef struct rf_resume_node {
    uint32_t node;        /* index in the plan */
    rf_status status;     /* terminal: succeeded, cached, failed, skipped or canceled */
    uint32_t attempts;
    const json_t *output; /* succeeded or cached: borrowed (a reference is taken) */
    const json_t *error;  /* failed: {code, message}, borrowed (a reference is taken) */
} rf_resume_node;

/* Continue an execution from what its journal says (RF_SUBMIT with opts->resume): the
 * recorded nodes are not run again, their outcomes feed their successors as if they had
 * just ended, and no event is emitted for them; everything else runs (a node that was
 * running when the earlier life ended runs again: effects are at least once). Events
 * continue after the `events` already emitted. */
typedef struct rf_resume {
    const rf_resume_node *nodes;
    uint32_t n;
    uint64_t events;    /* events emitted before (their seqs were 1..events) */
    int64_t started_us; /* when it first started; 0 if it never did */
} rf_resume;

typedef struct rf_submit_opts {
    const rf_callbacks *callbacks; /* copied; NULL for none */
    uint32_t flags;                /* RF_SUBMIT_* */
    uint32_t shard;                /* with RF_SUBMIT_SHARD; else the engine picks one */
    rf_diag *diag;                 /* RF_EINPUTS: every problem with the inputs; may be NULL */
    const json_t *tags;            /* borrowed (a reference is taken); shown in the document */
    const char *id;                /* NULL: a new id; else this one (rf_exec_id_valid), which
                                      the caller keeps unique (copied) */
    int64_t created_us;            /* with id: its original creation time; 0 = now */
    const rf_resume *resume;       /* NULL, or continue an execution (copied) */
} rf_submit_opts;

#define RF_ID_BYTES 27 /* an execution id: 26 characters and a NUL */

/* An execution id: 48 bits of milliseconds since the epoch then the 80 bits of `tail`, in
 * 26 lowercase Crockford base32 characters; ids sort by creation time. With tail NULL the
 * 80 bits are random (what rf_submit uses). */
void rf_exec_id_make(int64_t created_us, const uint8_t *tail, char out[RF_ID_BYTES]);
/* True for 26 characters of [0-9a-hjkmnp-tv-z] whose first is 0-7 (128 bits); then *ms and
 * tail (80 bits, may be NULL) are what rf_exec_id_make encoded. */
bool rf_exec_id_parse(const char *id, uint64_t *ms, uint8_t tail[10]);

/* Submit an execution of `plan` (retained by the execution) with `inputs` (owned by the
 * callee; NULL = {}). The inputs are checked against the plan's declaration first
 * (RF_EINPUTS, with opts->diag filled; nothing runs). On success *out is a handle owned by
 * the caller (rf_exec_release). Fails with RF_EOVERLOAD when every shard is at its
 * in-flight bound (back-pressure: try again later), -ESHUTDOWN when stopping, RF_ESTATE
 * before start. Any thread. */
int rf_submit(rf_engine *eng, rf_plan *plan, json_t *inputs, const rf_submit_opts *opts,
              rf_exec **out);

/* Request cancellation: nodes not yet started become canceled, running nodes have their
 * I/O canceled, and the execution completes as canceled (unless it already finished).
 * Idempotent; returns 0 at once without waiting. Any thread. */
int rf_exec_cancel(rf_exec *ex);

/* A held execution (RF_SUBMIT_HELD): start it now. -EINVAL when it is not held (any
 * more). Any thread. */
int rf_exec_start(rf_exec *ex);
/* A held execution: drop it without running anything; no event, no callback; its status
 * becomes canceled and its reservation is released. -EINVAL when it is not held. */
int rf_exec_abandon(rf_exec *ex);

rf_exec *rf_exec_retain(rf_exec *ex);
void rf_exec_release(rf_exec *ex); /* any thread; NULL is a no-op */

/* Reading an execution; any thread. Values are snapshots; they stop changing once the
 * execution is terminal. Borrowed pointers stay valid as long as the handle is held. */
const char *rf_exec_id(const rf_exec *ex);
rf_plan *rf_exec_plan(const rf_exec *ex); /* borrowed */
rf_status rf_exec_status(const rf_exec *ex);
uint32_t rf_exec_shard(const rf_exec *ex); /* home shard */
const json_t *rf_exec_inputs(const rf_exec *ex);

typedef struct rf_node_info {
    rf_status status;
    uint32_t attempts;
    const json_t *output; /* when succeeded; NULL otherwise */
    const json_t *error;  /* {code, message} of the last failed attempt, or NULL */
} rf_node_info;

/* A node's state. -EINVAL for a bad index. The output and error are only filled once the
 * node is terminal (reading them earlier would race with the shard writing them). */
int rf_exec_node(const rf_exec *ex, uint32_t node, rf_node_info *out);

/* Once terminal: the execution's error ({code, message, node}) or NULL. */
const json_t *rf_exec_error(const rf_exec *ex);
/* Once succeeded: the execution's output (the plan's `output` template resolved, or by
 * default the outputs of its sink nodes by id), a new reference owned by the caller;
 * NULL before the end or when the execution did not succeed. */
json_t *rf_exec_output(const rf_exec *ex);

/* The hydrated execution document of spec/api.md (`id`, `graph`, `version`, `status`,
 * `inputs`, `output`, `error`, `tags`, times, and `nodes` with each node's `status`,
 * `kind`, `lineage_hash`, `attempts`, `params`, `output`, `error`, `cached`, times and
 * `items` for mapped nodes), built from the execution's events as they happen: a snapshot,
 * a new reference owned by the caller. Requires RF_SUBMIT_DOCUMENT at submission (NULL
 * otherwise). Any thread. */
json_t *rf_exec_document(const rf_exec *ex);

/* Result cache counters (the engine's in-memory cache). Any thread. */
typedef struct rf_cache_counters {
    uint64_t hits, misses, puts, evictions, expirations, entries, bytes;
    uint64_t flights_joined; /* runs that waited for an identical run in flight */
} rf_cache_counters;
void rf_engine_cache_stats(rf_engine *eng, rf_cache_counters *out);

/* Block the calling (non-shard) thread until the execution is terminal and its callbacks
 * have all run, or `timeout_ms` passed (0 = do not wait). 0 when done, -ETIMEDOUT
 * otherwise. */
int rf_exec_wait(rf_exec *ex, uint32_t timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* RINGFLOW_H */
