/*
 * engine/cmd/ringflow.c: the `ringflow` command-line tool: validate and run graph
 * documents in-process, with the same engine the daemon embeds (spec/api.md, "Running
 * it").
 *
 *   ringflow validate FILE [--graph SUB.json]...
 *   ringflow run FILE [--inputs JSON | --inputs @FILE] [--graph SUB.json]... [--shards N]
 *                     [--timeout-ms N] [--quiet] [--document] [--json | --live]
 *   ringflow version | --version | help | --help
 *
 * Exit status: 0 valid / succeeded; 1 invalid (validate) or failed, canceled, timed out,
 * interrupted (run); 2 usage, unreadable file, or a graph or inputs that `run` refuses;
 * 3 the engine could not run at all (io_uring unavailable, out of memory).
 *
 * Problems are printed one per line as `SOURCE: <JSON Pointer>: <code>: <message>`, SOURCE
 * being the file (or `--inputs`), an empty pointer (the document itself) written `""`.
 * `validate` prints them on stdout; `run` on stderr.
 *
 * `run` has two faces. JSON lines (stdout not a terminal, or --json): every event of the
 * execution and of its sub-executions, as spec/api.md's JSON, one per line, as they
 * happen, then `{"result": {status, output, error}}` last. Live (a terminal, or --live): a
 * few lines redrawn in place at most RUN_REDRAW_MS apart (node counts by status, the
 * running nodes, items done for mapped ones, elapsed time), then the result pretty-printed.
 * --document adds the hydrated execution document before the result.
 *
 * Threads: event callbacks run on shard threads. Callbacks of one execution never run
 * concurrently, but a sub-execution's run beside its parent's, so stdout writes are
 * serialized by a mutex. The live view is drawn by the main thread only, from counters the
 * callbacks keep with relaxed atomics. SIGINT and SIGTERM are blocked in every thread but
 * the main one (the shards inherit the mask), whose handler only sets a flag: the main
 * loop then cancels the execution and waits for it, so an interrupted run still ends with
 * its last events and its result. A second signal kills the process (SA_RESETHAND). The
 * engine is stopped before the result is printed, so no event line can follow it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "ringflow.h"

/* A graph or inputs file; the engine's own document limit (1 MiB) is reported as a problem. */
#define FILE_BYTES_MAX     (64u << 20)
#define GRAPHS_MAX         64         /* --graph files */
#define SHARDS_DEFAULT_MAX 4          /* default shards: online CPUs, at most this */
#define SHARDS_MAX         256        /* --shards */
#define TIMEOUT_MS_MAX     UINT32_MAX /* --timeout-ms, about 49 days */
#define RUN_REDRAW_MS      100        /* live view: at most ten frames a second */
#define STOP_DRAIN_MS      2000       /* engine stop after the execution ended */
#define RUNNING_SHOWN_MAX  6          /* live view: running node names listed */
#define LIVE_LINE_BYTES    1024       /* one line of the live view */
#define LIVE_COLS_DEFAULT  80         /* when the terminal width is unknown */

enum {
    EXIT_OK = 0,
    EXIT_FAIL = 1,
    EXIT_INVALID = 2,
    EXIT_ERROR = 3,
};

#define NSTATUS (RF_ST_CACHED + 1)

struct opts {
    const char *file;
    const char *inputs; /* --inputs argument as given */
    const char *graphs[GRAPHS_MAX];
    uint32_t ngraphs;
    uint32_t shards;     /* 0 = default */
    uint32_t timeout_ms; /* 0 = none */
    bool quiet, json, live, document;
};

/* What the live view shows, for the top-level execution only. One writer at a time (the
 * execution's callbacks), one reader (the main thread): every access is relaxed, the view
 * only needs each counter to be some recent value. */
struct progress {
    uint32_t n;
    _Atomic uint8_t *status;      /* per node: rf_status shown */
    _Atomic uint32_t *items_done; /* per node: item runs that ended */
    _Atomic uint32_t *items_seen; /* per node: highest item index seen + 1 */
    _Atomic uint32_t count[NSTATUS];
};

struct run {
    const struct opts *o;
    rf_engine *eng;
    rf_plan *plan;
    rf_exec *ex;
    bool json_lines; /* print events as JSON lines */
    bool live;       /* draw the live view */
    pthread_mutex_t out_mu;
    bool out_broken; /* under out_mu: stdout failed (a closed pipe): stop writing */
    struct progress pg;
    uint64_t t0_ms;
    uint32_t drawn; /* live view lines on screen */
};

static volatile sig_atomic_t got_signal;

/* --- small helpers ------------------------------------------------------------------------ */

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void usage(FILE *f)
{
    fputs("usage: ringflow validate FILE [--graph SUB.json]...\n"
          "       ringflow run FILE [--inputs JSON | --inputs @FILE] [--graph SUB.json]...\n"
          "                         [--shards N] [--timeout-ms N] [--quiet] [--document]\n"
          "                         [--json | --live]\n"
          "       ringflow version\n"
          "\n"
          "validate  check a graph document (spec/graph.md); every problem is listed as\n"
          "          FILE: <JSON Pointer>: <code>: <message>\n"
          "run       run the graph once in-process and report its events and result\n"
          "\n"
          "  --inputs JSON|@FILE  execution inputs, a JSON object (default {})\n"
          "  --graph FILE         register a graph first, for `graph` nodes (repeatable)\n"
          "  --shards N           shard threads (default: online CPUs, at most 4)\n"
          "  --timeout-ms N       cancel the execution after N ms (exit 1)\n"
          "  --json               events as JSON lines, then {\"result\": ...} (default\n"
          "                       when stdout is not a terminal)\n"
          "  --live               a live progress view (default on a terminal)\n"
          "  --quiet              no events and no progress view: the result only\n"
          "  --document           print the hydrated execution document before the result\n"
          "\n"
          "FILE may be - for standard input. Exit status: 0 valid or succeeded; 1 invalid\n"
          "(validate) or failed, canceled, timed out, interrupted (run); 2 usage error,\n"
          "unreadable file, or invalid graph or inputs (run); 3 the engine cannot run.\n",
          f);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("ringflow: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(ringflow --help lists the commands and options)\n", stderr);
    return EXIT_INVALID;
}

/* A decimal in [min, max], nothing else. */
static bool parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    unsigned long long v;

    if (!s || !*s || *s == '-' || *s == '+')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* The whole of `path` ("-" = stdin) into a new NUL-terminated buffer (*buf, free()).
 * 0, or a negative errno (-EFBIG past FILE_BYTES_MAX). */
static int read_all(const char *path, char **buf, size_t *len)
{
    int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    size_t cap = 4096, n = 0;
    char *b = NULL;
    int rc = 0;

    if (fd < 0)
        return -errno;
    for (;;) {
        if (n + 1 >= cap || !b) {
            cap = b ? cap * 2 : cap;
            char *nb = realloc(b, cap);
            if (!nb) {
                rc = -ENOMEM;
                break;
            }
            b = nb;
        }
        ssize_t r = read(fd, b + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > FILE_BYTES_MAX) {
            rc = -EFBIG;
            break;
        }
    }
    if (fd != STDIN_FILENO)
        close(fd);
    if (rc < 0) {
        free(b);
        return rc;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

static void print_diag(FILE *f, const char *source, const rf_diag *d)
{
    for (uint32_t i = 0; i < d->count; i++) {
        const rf_diag_item *it = &d->items[i];
        fprintf(f, "%s: %s: %s: %s\n", source, it->pointer[0] ? it->pointer : "\"\"", it->code,
                it->message);
    }
}

/* An engine for this process: no pinning (a command shares the machine), warnings only. */
static int engine_new(uint32_t shards, rf_engine **out)
{
    rf_config cfg = {.shards = shards, .no_pin_threads = true, .log_level = RF_LOG_WARN};
    int rc = rf_engine_new(&cfg, out);

    if (rc < 0)
        fprintf(stderr, "ringflow: cannot create the engine: %s\n", rf_strerror(rc));
    return rc;
}

static uint32_t default_shards(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    if (cpus < 1)
        return 1;
    return cpus < SHARDS_DEFAULT_MAX ? (uint32_t)cpus : SHARDS_DEFAULT_MAX;
}

/* Register each --graph file. EXIT_OK, or the exit status after printing why. */
static int register_graphs(rf_engine *eng, const struct opts *o, FILE *problems, int invalid_status)
{
    for (uint32_t i = 0; i < o->ngraphs; i++) {
        rf_diag diag;
        char *buf;
        size_t len;
        bool created;
        int rc = read_all(o->graphs[i], &buf, &len);

        if (rc < 0) {
            fprintf(stderr, "ringflow: %s: %s\n", o->graphs[i], rf_strerror(rc));
            return EXIT_INVALID;
        }
        rf_diag_init(&diag);
        rc = rf_graph_register(eng, buf, len, &diag, NULL, &created);
        free(buf);
        if (rc == RF_EINVAL_GRAPH)
            print_diag(problems, o->graphs[i], &diag);
        else if (rc < 0)
            fprintf(stderr, "ringflow: %s: %s\n", o->graphs[i], rf_strerror(rc));
        rf_diag_free(&diag);
        if (rc < 0)
            return rc == RF_EINVAL_GRAPH ? invalid_status : EXIT_ERROR;
    }
    return EXIT_OK;
}

/* Read and compile the main graph. EXIT_OK and *plan, or the exit status after printing
 * the problems to `problems`. */
static int load_plan(rf_engine *eng, const char *file, FILE *problems, int invalid_status,
                     rf_plan **plan)
{
    rf_diag diag;
    char *buf;
    size_t len;
    int rc = read_all(file, &buf, &len);

    if (rc < 0) {
        fprintf(stderr, "ringflow: %s: %s\n", file,
                rc == -EFBIG ? "file too large" : rf_strerror(rc));
        return EXIT_INVALID;
    }
    rf_diag_init(&diag);
    rc = rf_plan_from_json(eng, buf, len, &diag, plan);
    free(buf);
    if (rc == RF_EINVAL_GRAPH)
        print_diag(problems, file, &diag);
    else if (rc < 0)
        fprintf(stderr, "ringflow: %s: %s\n", file, rf_strerror(rc));
    rf_diag_free(&diag);
    if (rc < 0)
        return rc == RF_EINVAL_GRAPH ? invalid_status : EXIT_ERROR;
    return EXIT_OK;
}

/* --- option parsing --------------------------------------------------------------------- */

enum {
    OPT_INPUTS = 1000,
    OPT_GRAPH,
    OPT_SHARDS,
    OPT_TIMEOUT,
    OPT_QUIET,
    OPT_JSON,
    OPT_LIVE,
    OPT_DOCUMENT,
    OPT_HELP,
};

static const struct option long_opts[] = {
    {"inputs", required_argument, NULL, OPT_INPUTS},
    {"graph", required_argument, NULL, OPT_GRAPH},
    {"shards", required_argument, NULL, OPT_SHARDS},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"json", no_argument, NULL, OPT_JSON},
    {"live", no_argument, NULL, OPT_LIVE},
    {"document", no_argument, NULL, OPT_DOCUMENT},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* A run-only option: EXIT_OK or a usage error. */
static int take_run_opt(struct opts *o, int c, const char *arg)
{
    switch (c) {
    case OPT_INPUTS:
        o->inputs = arg;
        return EXIT_OK;
    case OPT_SHARDS:
        if (!parse_u32(arg, 1, SHARDS_MAX, &o->shards))
            return usage_error("--shards wants an integer from 1 to %d, not \"%s\"", SHARDS_MAX,
                               arg);
        return EXIT_OK;
    case OPT_TIMEOUT:
        if (!parse_u32(arg, 1, TIMEOUT_MS_MAX, &o->timeout_ms))
            return usage_error("--timeout-ms wants an integer from 1 to %u, not \"%s\"",
                               TIMEOUT_MS_MAX, arg);
        return EXIT_OK;
    case OPT_QUIET:
        o->quiet = true;
        return EXIT_OK;
    case OPT_JSON:
        o->json = true;
        return EXIT_OK;
    case OPT_LIVE:
        o->live = true;
        return EXIT_OK;
    case OPT_DOCUMENT:
        o->document = true;
        return EXIT_OK;
    }
    return usage_error("unexpected option code %d", c);
}

/* Parse a command's arguments (argv[0] is the command's name). -1 for --help, else an exit
 * status (EXIT_OK to go on). `run`: the run-only options are allowed. */
static int parse_args(int argc, char **argv, bool run, struct opts *o)
{
    int c, st;

    memset(o, 0, sizeof(*o));
    optind = 1;
    opterr = 0; /* our own messages, below */
    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        if (c == 'h' || c == OPT_HELP)
            return -1;
        if (c == '?')
            return usage_error("%s: unknown option, or one missing its value: %s", argv[0],
                               argv[optind - 1]);
        if (c == OPT_GRAPH) {
            if (o->ngraphs == GRAPHS_MAX)
                return usage_error("at most %d --graph files", GRAPHS_MAX);
            o->graphs[o->ngraphs++] = optarg;
            continue;
        }
        if (!run)
            return usage_error("%s takes no %s", argv[0], argv[optind - 1]);
        st = take_run_opt(o, c, optarg);
        if (st != EXIT_OK)
            return st;
    }
    if (optind != argc - 1)
        return usage_error("%s wants exactly one FILE", argv[0]);
    if (o->json && o->live)
        return usage_error("--json and --live exclude each other");
    o->file = argv[optind];
    return EXIT_OK;
}

/* --- validate ----------------------------------------------------------------------------- */

static int cmd_validate(int argc, char **argv)
{
    struct opts o;
    rf_engine *eng = NULL;
    rf_plan *plan = NULL;
    int st = parse_args(argc, argv, false, &o);

    if (st < 0) {
        usage(stdout);
        return EXIT_OK;
    }
    if (st != EXIT_OK)
        return st;
    if (engine_new(1, &eng) < 0)
        return EXIT_ERROR;
    st = register_graphs(eng, &o, stdout, EXIT_FAIL);
    if (st == EXIT_OK)
        st = load_plan(eng, o.file, stdout, EXIT_FAIL, &plan);
    if (st == EXIT_OK)
        printf("%s: valid (%u node%s)\n", o.file, rf_plan_nodes(plan),
               rf_plan_nodes(plan) == 1 ? "" : "s");
    rf_plan_release(plan);
    rf_engine_free(eng);
    return st;
}

/* --- run: inputs ------------------------------------------------------------------------- */

/* The --inputs object (a new reference), or NULL after printing why. */
static json_t *load_inputs(const char *arg)
{
    json_error_t jerr;
    json_t *v;

    if (!arg)
        return json_object();
    if (arg[0] == '@') {
        char *buf;
        size_t len;
        int rc = read_all(arg + 1, &buf, &len);
        if (rc < 0) {
            fprintf(stderr, "ringflow: --inputs %s: %s\n", arg,
                    rc == -EFBIG ? "file too large" : rf_strerror(rc));
            return NULL;
        }
        v = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        free(buf);
    } else {
        v = json_loads(arg, JSON_REJECT_DUPLICATES, &jerr);
    }
    if (!v) {
        fprintf(stderr, "ringflow: --inputs: malformed JSON at line %d, column %d: %s\n", jerr.line,
                jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        fprintf(stderr, "ringflow: --inputs: must be a JSON object\n");
        json_decref(v);
        return NULL;
    }
    return v;
}

/* Check the inputs against the plan's declaration; EXIT_OK or EXIT_INVALID (printed). */
static int check_inputs(const rf_plan *plan, const json_t *inputs)
{
    rf_diag diag;
    json_t *resolved = NULL;
    int rc;

    rf_diag_init(&diag);
    rc = rf_inputs_check(plan, inputs, &diag, &resolved);
    if (rc == RF_EINPUTS)
        print_diag(stderr, "--inputs", &diag);
    else if (rc < 0)
        fprintf(stderr, "ringflow: --inputs: %s\n", rf_strerror(rc));
    rf_diag_free(&diag);
    json_decref(resolved);
    if (rc < 0)
        return rc == RF_EINPUTS ? EXIT_INVALID : EXIT_ERROR;
    return EXIT_OK;
}

/* --- run: progress kept by the event callback -------------------------------------------- */

static int progress_init(struct progress *pg, uint32_t n)
{
    pg->n = n;
    pg->status = calloc(n ? n : 1, sizeof(*pg->status));
    pg->items_done = calloc(n ? n : 1, sizeof(*pg->items_done));
    pg->items_seen = calloc(n ? n : 1, sizeof(*pg->items_seen));
    if (!pg->status || !pg->items_done || !pg->items_seen)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        atomic_init(&pg->status[i], RF_ST_PENDING);
        atomic_init(&pg->items_done[i], 0);
        atomic_init(&pg->items_seen[i], 0);
    }
    for (int s = 0; s < NSTATUS; s++)
        atomic_init(&pg->count[s], s == RF_ST_PENDING ? n : 0);
    return 0;
}

static void progress_free(struct progress *pg)
{
    free(pg->status);
    free(pg->items_done);
    free(pg->items_seen);
}

static rf_status node_event_status(rf_event_type t)
{
    switch (t) {
    case RF_EV_NODE_STARTED:
        return RF_ST_RUNNING;
    case RF_EV_NODE_RETRYING:
        return RF_ST_RETRYING;
    case RF_EV_NODE_SUCCEEDED:
        return RF_ST_SUCCEEDED;
    case RF_EV_NODE_CACHED:
        return RF_ST_CACHED;
    case RF_EV_NODE_FAILED:
        return RF_ST_FAILED;
    case RF_EV_NODE_SKIPPED:
        return RF_ST_SKIPPED;
    default:
        return RF_ST_CANCELED;
    }
}

/* Relaxed throughout: one writer (see struct progress), and the reader only draws. */
static void progress_set(struct progress *pg, uint32_t node, rf_status st)
{
    rf_status old = atomic_load_explicit(&pg->status[node], memory_order_relaxed);

    if (old == st)
        return;
    atomic_store_explicit(&pg->status[node], (uint8_t)st, memory_order_relaxed);
    atomic_fetch_sub_explicit(&pg->count[old], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&pg->count[st], 1, memory_order_relaxed);
}

/* A mapped node shows running from its first item event until its own terminal event. */
static void progress_item(struct progress *pg, uint32_t node, const rf_event *ev)
{
    uint32_t seen = atomic_load_explicit(&pg->items_seen[node], memory_order_relaxed);

    if ((uint64_t)ev->item + 1 > seen)
        atomic_store_explicit(&pg->items_seen[node], (uint32_t)(ev->item + 1),
                              memory_order_relaxed);
    if (ev->type != RF_EV_NODE_STARTED && ev->type != RF_EV_NODE_RETRYING)
        atomic_fetch_add_explicit(&pg->items_done[node], 1, memory_order_relaxed);
    if (!rf_status_terminal(atomic_load_explicit(&pg->status[node], memory_order_relaxed)))
        progress_set(pg, node, RF_ST_RUNNING);
}

static void progress_apply(struct progress *pg, const rf_event *ev)
{
    if (ev->node < 0 || (uint32_t)ev->node >= pg->n)
        return;
    if (ev->item >= 0)
        progress_item(pg, (uint32_t)ev->node, ev);
    else
        progress_set(pg, (uint32_t)ev->node, node_event_status(ev->type));
}

/* --- run: the event callback ------------------------------------------------------------ */

static void print_event(struct run *r, const rf_event *ev)
{
    json_t *j = rf_event_json(ev);

    if (!j)
        return;
    pthread_mutex_lock(&r->out_mu);
    if (!r->out_broken) {
        json_dumpf(j, stdout, JSON_COMPACT);
        if (fputc('\n', stdout) == EOF || fflush(stdout) != 0)
            r->out_broken = true;
    }
    pthread_mutex_unlock(&r->out_mu);
    json_decref(j);
}

static void on_event(void *ud, const rf_event *ev)
{
    struct run *r = ud;

    if (!ev->parent_exec_id) /* sub-executions' nodes are not this plan's */
        progress_apply(&r->pg, ev);
    if (r->json_lines)
        print_event(r, ev);
}

/* --- run: the live view -------------------------------------------------------------------- */

static uint32_t term_cols(void)
{
    struct winsize ws;

    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1)
        return ws.ws_col;
    return LIVE_COLS_DEFAULT;
}

struct line {
    char buf[LIVE_LINE_BYTES];
    size_t len;
};

/* Append to a live-view line; what does not fit is cut. */
__attribute__((format(printf, 2, 3))) static void line_add(struct line *l, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (l->len >= sizeof(l->buf) - 1)
        return;
    va_start(ap, fmt);
    n = vsnprintf(l->buf + l->len, sizeof(l->buf) - l->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        l->len += (size_t)n < sizeof(l->buf) - l->len ? (size_t)n : sizeof(l->buf) - 1 - l->len;
}

/* Erase the terminal line and print `l`, cut to the width so nothing wraps. */
static void line_put(struct line *l, uint32_t cols)
{
    printf("\r\x1b[2K%.*s\n", (int)(cols - 1), l->buf);
    l->len = 0;
    l->buf[0] = '\0';
}

static void live_header(struct run *r, struct line *l)
{
    uint64_t ms = mono_ms() - r->t0_ms;

    line_add(l, "%s  %s  %s  %llu.%llu s", rf_plan_name(r->plan), rf_exec_id(r->ex),
             rf_status_name(rf_exec_status(r->ex)), (unsigned long long)(ms / 1000),
             (unsigned long long)(ms % 1000 / 100));
}

static void live_counts(struct run *r, struct line *l)
{
    static const rf_status order[] = {RF_ST_PENDING, RF_ST_RUNNING, RF_ST_RETRYING, RF_ST_SUCCEEDED,
                                      RF_ST_CACHED,  RF_ST_FAILED,  RF_ST_SKIPPED,  RF_ST_CANCELED};

    const char *sep = " ";

    line_add(l, "nodes %u:", r->pg.n);
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        uint32_t c = atomic_load_explicit(&r->pg.count[order[i]], memory_order_relaxed);
        if (!c)
            continue;
        line_add(l, "%s%u %s", sep, c, rf_status_name(order[i]));
        sep = ", ";
    }
}

static void live_running(struct run *r, struct line *l)
{
    uint32_t shown = 0, more = 0;

    line_add(l, "running:");
    for (uint32_t i = 0; i < r->pg.n; i++) {
        rf_status st = atomic_load_explicit(&r->pg.status[i], memory_order_relaxed);
        if (st != RF_ST_RUNNING && st != RF_ST_RETRYING)
            continue;
        if (shown == RUNNING_SHOWN_MAX) {
            more++;
            continue;
        }
        shown++;
        uint32_t seen = atomic_load_explicit(&r->pg.items_seen[i], memory_order_relaxed);
        line_add(l, " %s", rf_plan_node_id(r->plan, i));
        if (seen)
            line_add(l, " (items: %u done, %u started)",
                     atomic_load_explicit(&r->pg.items_done[i], memory_order_relaxed), seen);
        if (st == RF_ST_RETRYING)
            line_add(l, " (retrying)");
    }
    if (more)
        line_add(l, " (+%u more)", more);
    if (!shown)
        line_add(l, " -");
}

/* Redraw the view over its previous frame. Main thread only. */
static void live_draw(struct run *r)
{
    struct line l = {.len = 0};
    uint32_t cols = term_cols();

    if (r->drawn)
        printf("\x1b[%uA", r->drawn);
    live_header(r, &l);
    line_put(&l, cols);
    live_counts(r, &l);
    line_put(&l, cols);
    live_running(r, &l);
    line_put(&l, cols);
    r->drawn = 3;
    fflush(stdout);
}

/* --- run: signals, waiting, the result ------------------------------------------------------ */

enum cancel_why {
    CANCEL_NONE = 0,
    CANCEL_TIMEOUT,
    CANCEL_SIGNAL,
};

static void on_signal(int sig)
{
    got_signal = sig;
}

/* Handlers for SIGINT and SIGTERM (once: SA_RESETHAND), SIGPIPE ignored (a closed stdout
 * is seen as a write error). */
static void signals_install(void)
{
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESETHAND};

    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Start the engine with SIGINT and SIGTERM blocked, so its threads inherit a mask that
 * leaves them to the main thread. */
static int engine_start(rf_engine *eng)
{
    sigset_t block, old;
    int rc;

    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    rc = rf_engine_start(eng);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        fprintf(stderr, "ringflow: cannot start the engine: %s\n", rf_strerror(rc));
        return EXIT_ERROR;
    }
    return EXIT_OK;
}

/* Wait for the execution's end, drawing the live view, cancelling it on a signal or at
 * --timeout-ms. Says why it canceled, if it did. */
static enum cancel_why wait_end(struct run *r)
{
    enum cancel_why why = CANCEL_NONE;
    uint32_t limit = r->o->timeout_ms;

    for (;;) {
        uint64_t ran = mono_ms() - r->t0_ms;
        uint32_t slice = RUN_REDRAW_MS;
        if (limit && why == CANCEL_NONE && ran < limit && limit - ran < slice)
            slice = (uint32_t)(limit - ran);
        if (rf_exec_wait(r->ex, slice) == 0)
            break;
        if (r->live)
            live_draw(r);
        if (why != CANCEL_NONE)
            continue;
        if (got_signal)
            why = CANCEL_SIGNAL;
        else if (limit && mono_ms() - r->t0_ms >= limit)
            why = CANCEL_TIMEOUT;
        if (why != CANCEL_NONE)
            rf_exec_cancel(r->ex);
    }
    if (r->live)
        live_draw(r);
    return why;
}

/* {status, output, error} of the ended execution; a new reference or NULL. */
static json_t *result_json(rf_exec *ex)
{
    json_t *out = rf_exec_output(ex);
    const json_t *err = rf_exec_error(ex);

    return json_pack("{s:s, s:o, s:O}", "status", rf_status_name(rf_exec_status(ex)), "output",
                     out ? out : json_null(), "error", err ? (json_t *)err : json_null());
}

/* Print `v` under `key`: one compact line {"key": v}, or `key:` and v indented. */
static void print_final_value(bool json_mode, const char *key, json_t *v)
{
    if (json_mode) {
        json_t *wrap = json_pack("{s:O}", key, v);
        if (wrap)
            json_dumpf(wrap, stdout, JSON_COMPACT);
        json_decref(wrap);
    } else {
        printf("%s:\n", key);
        json_dumpf(v, stdout, JSON_INDENT(2));
    }
    fputc('\n', stdout);
}

/* Print the document (with --document) and the result; the exit status. */
static int finish(struct run *r, enum cancel_why why, bool json_mode)
{
    rf_status st = rf_exec_status(r->ex);
    json_t *res = result_json(r->ex);

    if (st == RF_ST_SUCCEEDED) /* it ended before the cancel could take */
        why = CANCEL_NONE;
    if (why == CANCEL_TIMEOUT)
        fprintf(stderr, "ringflow: --timeout-ms %u reached: the execution was canceled\n",
                r->o->timeout_ms);
    else if (why == CANCEL_SIGNAL)
        fprintf(stderr, "ringflow: interrupted: the execution was canceled\n");
    if (r->o->document) {
        json_t *doc = rf_exec_document(r->ex);
        if (doc)
            print_final_value(json_mode, "document", doc);
        else
            fprintf(stderr, "ringflow: the execution document is not available\n");
        json_decref(doc);
    }
    if (res)
        print_final_value(json_mode, "result", res);
    else
        fprintf(stderr, "ringflow: out of memory building the result\n");
    json_decref(res);
    if (fflush(stdout) != 0)
        fprintf(stderr, "ringflow: writing the result: %s\n", strerror(errno));
    return st == RF_ST_SUCCEEDED ? EXIT_OK : EXIT_FAIL;
}

/* --- run ------------------------------------------------------------------------------------ */

static int submit(struct run *r, json_t *inputs)
{
    /* No callback when nothing is shown: the engine then builds no events at all. */
    rf_callbacks cb = {.event = r->json_lines || r->live ? on_event : NULL, .ud = r};
    rf_submit_opts so = {
        .callbacks = &cb,
        .flags = r->o->document ? RF_SUBMIT_DOCUMENT : 0,
    };
    rf_diag diag;
    int rc;

    rf_diag_init(&diag);
    so.diag = &diag;
    rc = rf_submit(r->eng, r->plan, json_incref(inputs), &so, &r->ex);
    if (rc == RF_EINPUTS)
        print_diag(stderr, "--inputs", &diag);
    else if (rc < 0)
        fprintf(stderr, "ringflow: cannot submit the execution: %s\n", rf_strerror(rc));
    rf_diag_free(&diag);
    if (rc < 0)
        return rc == RF_EINPUTS ? EXIT_INVALID : EXIT_ERROR;
    return EXIT_OK;
}

/* Everything up to a plan and checked inputs; nothing runs yet. */
static int run_prepare(struct run *r, const json_t *inputs)
{
    int st;

    if (engine_new(r->o->shards ? r->o->shards : default_shards(), &r->eng) < 0)
        return EXIT_ERROR;
    st = register_graphs(r->eng, r->o, stderr, EXIT_INVALID);
    if (st == EXIT_OK)
        st = load_plan(r->eng, r->o->file, stderr, EXIT_INVALID, &r->plan);
    if (st == EXIT_OK)
        st = check_inputs(r->plan, inputs);
    if (st == EXIT_OK && progress_init(&r->pg, rf_plan_nodes(r->plan)) < 0) {
        fprintf(stderr, "ringflow: out of memory\n");
        st = EXIT_ERROR;
    }
    return st;
}

static int run_execute(struct run *r, json_t *inputs)
{
    bool json_mode = r->o->json || (!r->o->live && !isatty(STDOUT_FILENO));
    enum cancel_why why;
    int st;

    r->json_lines = json_mode && !r->o->quiet;
    r->live = !json_mode && !r->o->quiet;
    signals_install();
    st = engine_start(r->eng);
    if (st == EXIT_OK) {
        r->t0_ms = mono_ms();
        st = submit(r, inputs);
    }
    if (st != EXIT_OK)
        return st;
    why = wait_end(r);
    /* After this no callback runs again: the result is the last line. */
    rf_engine_stop(r->eng, STOP_DRAIN_MS);
    return finish(r, why, json_mode);
}

static int cmd_run(int argc, char **argv)
{
    struct opts o;
    struct run r = {.o = &o};
    json_t *inputs;
    int st = parse_args(argc, argv, true, &o);

    if (st < 0) {
        usage(stdout);
        return EXIT_OK;
    }
    if (st != EXIT_OK)
        return st;
    inputs = load_inputs(o.inputs);
    if (!inputs)
        return EXIT_INVALID;
    pthread_mutex_init(&r.out_mu, NULL);
    st = run_prepare(&r, inputs);
    if (st == EXIT_OK)
        st = run_execute(&r, inputs);
    rf_engine_free(r.eng); /* stops it if still running: no callback after this */
    rf_exec_release(r.ex);
    rf_plan_release(r.plan);
    progress_free(&r.pg);
    pthread_mutex_destroy(&r.out_mu);
    json_decref(inputs);
    return st;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;

    if (!cmd) {
        usage(stderr);
        return EXIT_INVALID;
    }
    if (strcmp(cmd, "validate") == 0)
        return cmd_validate(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("ringflow %d.%d.%d\n", RF_VERSION_MAJOR, RF_VERSION_MINOR, RF_VERSION_PATCH);
        return EXIT_OK;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    return usage_error("unknown command \"%s\"", cmd);
}
