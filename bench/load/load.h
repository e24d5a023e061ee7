/*
 * bench/load/load.h: what every file of ringflow-load shares: limits, options, request
 * templates, per-thread statistics, and the entry points that cross files.
 *
 * ringflow-load is a load generator for ringflowd (and any HTTP/1.1 server): one process,
 * one thread per --threads, each thread with its own io_uring ring that carries every
 * socket operation (connect, send, multishot recv). It drives a closed loop (-c
 * connections, -d requests pipelined on each) or an open loop (-R requests/s, latency
 * measured from the intended send time), and a WebSocket mode that measures the time
 * from submitting an execution to receiving one of its events. It is a client: it never
 * links libringflow; its small response parser, WebSocket framing and templates live
 * here, in bench/load/. Names use the prefix rfl_ (ringflow-load), macros RFL_.
 *
 * Files:
 *   main.c    options, thread start and join, the merged report (text and --json)
 *   tmpl.c    URLs and request templates ({{seq}}, {{rand:N}}), rendering
 *   hist.c    the log-bucketed latency histogram (2 significant digits, ns to 60 s)
 *   http.c    the sans-I/O HTTP/1.1 response parser (status line, Content-Length,
 *             chunked, keep-alive, upgrade)
 *   ws.c      sans-I/O WebSocket pieces: handshake key and accept, frame codec, and a
 *             top-level JSON string scanner for events
 *   engine.c  the per-thread ring loop, connections, buffers, HTTP closed and open loop
 *   wsmode.c  the --ws mode: submissions, subscriptions, events, the pending table
 *   selftest.c  --self-test: known-answer and split-input checks of the pure parts
 *
 * Invariants shared by all: the options and templates are built once by main() before any
 * thread starts and are read-only afterwards; every thread owns its ring, connections and
 * struct rfl_stats, and main() merges the stats only after joining the threads. So nothing
 * here is shared mutable state except the interrupt flag (one atomic).
 */
#ifndef RFL_LOAD_H
#define RFL_LOAD_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "bench/load/hist.h"

/* --- assertions: always on (the tool does not link libringflow's rf__assert_fail) ------ */

__attribute__((noreturn, cold)) void rfl_assert_fail(const char *cond, const char *file, int line);

#define RFL_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (__builtin_expect(!(cond), 0))                                                          \
            rfl_assert_fail(#cond, __FILE__, __LINE__);                                            \
    } while (0)

#define RFL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define RFL_MAX(a, b) ((a) > (b) ? (a) : (b))

/* --- limits (units in the names) ------------------------------------------------------- */

#define RFL_THREADS_MAX        64u
#define RFL_CONNS_MAX          65536u      /* sockets per process; --ws uses 2 per subscriber */
#define RFL_DEPTH_MAX          1024u       /* pipelined requests per connection */
#define RFL_TEMPLATES_MAX      64u         /* --request templates */
#define RFL_WEIGHT_MAX         100u        /* N in --request 'N*METHOD ...' */
#define RFL_HEADERS_MAX        64u         /* -H options */
#define RFL_HEADER_BYTES_MAX   8192u       /* one -H option */
#define RFL_PATH_BYTES_MAX     8192u       /* a request path */
#define RFL_HOST_BYTES_MAX     255u        /* host in the URL */
#define RFL_BODY_BYTES_MAX     (1u << 20)  /* a body before substitution */
#define RFL_REQUEST_BYTES_MAX  (4u << 20)  /* one rendered request, head and body */
#define RFL_SEND_BYTES_MAX     (64u << 20) /* queued, unsent bytes on one connection */
#define RFL_DURATION_S_MAX     86400.0
#define RFL_RATE_MAX           1e8 /* requests/s */
#define RFL_TIMEOUT_S_MAX      3600.0
#define RFL_STATUS_SLOTS       601u /* status codes 0..599; slot 600 counts the rest */
#define RFL_WS_EVENT_BYTES_MAX 128u /* --ws-event */
#define RFL_WS_PATH_BYTES_MAX  1024u

/* Times, in nanoseconds of CLOCK_MONOTONIC. */
#define RFL_NS_PER_S       1000000000ull
#define RFL_LATE_NS        1000000ull    /* open loop: "late" = sent > 1 ms after intended */
#define RFL_DRAIN_NS       2000000000ull /* after the run: wait this long for answers */
#define RFL_RETRY_NS       100000000ull  /* reconnect delay after a failed connect */
#define RFL_TICK_NS        10000000ull   /* the loop wakes at least this often */
#define RFL_SCAN_NS        50000000ull   /* timeout scans of connections and subscriptions */
#define RFL_CONNECT_NS_DEF 5000000000ull /* --connect-timeout default */
#define RFL_TIMEOUT_NS_DEF 5000000000ull /* --timeout default */

/* --- request templates (tmpl.c) -------------------------------------------------------- */

#define RFL_TMPL_SLOTS_MAX 32u   /* {{seq}} and {{rand:N}} occurrences in one template */
#define RFL_TMPL_SEGS_MAX  128u  /* literal and placeholder segments in one template */
#define RFL_MIX_SLOTS_MAX  1024u /* sum of template weights */
#define RFL_DIGITS_U64     20u   /* decimal digits of UINT64_MAX */

enum rfl_seg_kind { RFL_SEG_TEXT, RFL_SEG_SEQ, RFL_SEG_RAND, RFL_SEG_BODY_LEN };

/* A piece of a request: literal text (off/len into the template's bytes) or a value. */
struct rfl_seg {
    uint8_t kind;   /* enum rfl_seg_kind */
    uint8_t part;   /* 0 head, 1 body */
    uint32_t off;   /* RFL_SEG_TEXT: offset into text */
    uint32_t len;   /* RFL_SEG_TEXT: length */
    uint64_t bound; /* RFL_SEG_RAND: N of {{rand:N}} */
};

/* One compiled request: head segments, an optional RFL_SEG_BODY_LEN, body segments. A
 * template without placeholders is one literal segment: rendering is one memcpy. */
struct rfl_tmpl {
    char method[16];
    char *text;           /* owned: literal bytes the segments point into */
    struct rfl_seg *segs; /* owned */
    uint32_t nsegs;
    uint32_t nbody_rand;  /* RFL_SEG_RAND segments in the body */
    uint32_t body_static; /* body bytes that are not placeholders */
    uint32_t max_bytes;   /* upper bound of one rendered request */
    bool no_body_resp;    /* HEAD: the response has no body whatever it says */
    bool has_body_len;    /* the body varies: Content-Length is rendered per request */
};

/* Parse "http://host[:port][/path]" (borrowed). Writes host (NUL-terminated, brackets
 * of an IPv6 literal removed), the Host header value, port and path (default "/").
 * Returns 0 or -EINVAL. Pure. */
int rfl_url_parse(const char *url, char host[RFL_HOST_BYTES_MAX + 1],
                  char hosthdr[RFL_HOST_BYTES_MAX + 8], uint16_t *port,
                  char path[RFL_PATH_BYTES_MAX + 1]);

/* Compile one request (all arguments borrowed, copied into *t). headers: "Name: value\r\n"
 * lines, may be empty. Adds Content-Type: application/json when the body is non-empty and
 * the headers carry no Content-Type; Content-Length whenever there is a body or the
 * method is POST, PUT or PATCH. Returns 0, -EINVAL (bad method, bad placeholder) or
 * -E2BIG (over RFL_TMPL_* or RFL_REQUEST_BYTES_MAX); on error *t holds nothing to free. */
int rfl_tmpl_compile(struct rfl_tmpl *t, const char *method, const char *path, const char *hosthdr,
                     const char *headers, const char *body, size_t body_len);

/* Free what rfl_tmpl_compile allocated; *t may be zeroed or compiled. */
void rfl_tmpl_free(struct rfl_tmpl *t);

/* Render one request into out (caller-owned, at least t->max_bytes bytes) with seq for
 * every {{seq}} and a fresh draw from *rng for each {{rand:N}}. Returns the length. */
size_t rfl_tmpl_render(const struct rfl_tmpl *t, uint64_t seq, uint64_t *rng, uint8_t *out);

/* splitmix64 step: the generator for {{rand:N}}, masks and keys. Not cryptographic. */
uint64_t rfl_rand64(uint64_t *state);

/* A uniform integer in [0, bound) (bound > 0), by 128-bit multiply (bias < bound/2^64). */
uint64_t rfl_rand_below(uint64_t *state, uint64_t bound);

/* --- options (main.c builds them, read-only afterwards) -------------------------------- */

struct rfl_opts {
    char host[RFL_HOST_BYTES_MAX + 1];
    char hosthdr[RFL_HOST_BYTES_MAX + 8];
    uint16_t port;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    uint32_t conns; /* sockets in HTTP mode; subscribers (pairs) in --ws mode */
    uint32_t depth;
    uint32_t threads;
    uint64_t duration_ns, warmup_ns, timeout_ns, connect_timeout_ns;
    double rate; /* requests/s in total; 0 = closed loop */
    bool ws;
    bool json;
    char ws_path[RFL_WS_PATH_BYTES_MAX + 1];
    char ws_event[RFL_WS_EVENT_BYTES_MAX + 1];
    char *headers; /* owned: the -H lines, "Name: value\r\n" each */
    struct rfl_tmpl tmpls[RFL_TEMPLATES_MAX];
    uint32_t ntmpls;
    uint16_t mix[RFL_MIX_SLOTS_MAX]; /* template index per round-robin slot */
    uint32_t nmix;
    uint32_t req_bytes_max; /* max of tmpls[].max_bytes */
};

/* Parse the command line into *o (argv borrowed; everything needed is copied). Returns 0
 * (*self_test set when --self-test was given: nothing else is parsed), 1 when --help was
 * printed, or a negative errno after printing the problem to stderr. Free with
 * rfl_opts_free in every case. */
int rfl_opts_parse(int argc, char **argv, struct rfl_opts *o, bool *self_test);
void rfl_opts_free(struct rfl_opts *o);

/* --- statistics (one per thread, merged by main) --------------------------------------- */

struct rfl_stats {
    uint64_t completed;        /* measured responses (--ws: measured awaited events) */
    uint64_t completed_window; /* of those, completed before the end of the window */
    uint64_t sent;             /* measured requests sent (--ws: executions submitted) */
    uint64_t status[RFL_STATUS_SLOTS];
    uint64_t err_connect;  /* failed connection attempts (incl. connect timeouts) */
    uint64_t err_reset;    /* connections that died (EOF, RST) with work outstanding */
    uint64_t err_lost;     /* requests or subscriptions lost with their connection */
    uint64_t err_timeout;  /* requests (--ws: executions) that hit --timeout or the drain */
    uint64_t err_parse;    /* responses or frames that broke framing */
    uint64_t err_write;    /* failed sends */
    uint64_t err_ws;       /* handshake failures, close frames, WebSocket protocol errors */
    uint64_t reconnects;   /* connections established again after one was lost */
    uint64_t late;         /* open loop: measured requests sent > 1 ms after intended */
    uint64_t unsent;       /* open loop: intended inside the window, never sent */
    uint64_t events;       /* --ws: event frames received inside the window */
    uint64_t ws_other_end; /* --ws: measured executions that ended without the event */
    uint64_t bytes_in, bytes_out;
    struct rfl_hist lat;      /* response latency (--ws: submit to event) */
    struct rfl_hist post_lat; /* --ws: the POST round trip */
};

/* Add src into dst (both borrowed). */
void rfl_stats_merge(struct rfl_stats *dst, const struct rfl_stats *src);

/* The human report (to f) and the --json object (one line to f), for a merged run whose
 * measured window lasted window_ns. All arguments borrowed. rfl_report_json returns 0 or
 * -ENOMEM. */
void rfl_report_text(FILE *f, const char *url, const struct rfl_opts *o, const struct rfl_stats *s,
                     uint64_t window_ns);
int rfl_report_json(FILE *f, const char *url, const struct rfl_opts *o, const struct rfl_stats *s,
                    uint64_t window_ns);

/* --- the run --------------------------------------------------------------------------- */

/* What one thread gets: its share of the connections and its slot in the schedule. */
struct rfl_thread_arg {
    const struct rfl_opts *opts; /* borrowed, read-only */
    uint32_t id;                 /* 0..threads-1 */
    uint32_t units;              /* connections (HTTP) or subscribers (--ws) it owns */
    uint64_t t0;                 /* common start, CLOCK_MONOTONIC ns */
    struct rfl_stats *stats;     /* borrowed, zeroed; written only by this thread */
    uint64_t measured_ns;        /* out: the measured window as this thread saw it */
    int err;                     /* out: 0 or a negative errno from setup */
};

/* Thread body (pthread start routine): runs one ring until the end of the run. */
void *rfl_thread_main(void *arg);

/* Set by SIGINT/SIGTERM: threads end the window early and drain. */
extern atomic_bool rfl_interrupted;

/* CLOCK_MONOTONIC in ns. */
uint64_t rfl_now_ns(void);

/* --self-test: returns 0 when every check passed, 1 otherwise (prints what failed). */
int rfl_self_test(void);

#endif
