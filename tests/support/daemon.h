/*
 * tests/support/daemon.h: the integration-test harness around a real ringflowd process.
 *
 * A test starts the daemon built in its own mode (the build dir is an argument: tests pass
 * RF_BUILD_DIR) on a free loopback port with a fresh temporary data directory, talks to it
 * over plain blocking sockets, and stops it with SIGTERM. Everything waits with a deadline:
 * no call in this file can block a test forever. The daemon's stderr and stdout go to
 * <dir>/log; rfd_stop (and rfd_wait_exit) print that log and fail when it holds a
 * sanitizer report, so an ASan or UBSan finding in the daemon fails the test that caused it.
 *
 * HTTP responses are read by a small client that knows Content-Length and chunked bodies;
 * bytes read past one response stay in a per-fd buffer (a static table indexed by fd,
 * cleared by rfd_close) so pipelined responses come out one at a time. The WebSocket client
 * drives net/ws.h in client mode over the same blocking socket.
 *
 * Threads: distinct fds may be used from distinct threads at once; one fd (or one rfd_ws)
 * belongs to one thread at a time. rfd_start / rfd_stop change process state (fork, wait).
 */
#ifndef RF_TESTS_SUPPORT_DAEMON_H
#define RF_TESTS_SUPPORT_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

struct rf_ws;

/* Most extra flags rfd_start passes through. */
#define RFD_EXTRA_MAX 64
/* The head of one response kept by rfd_read_resp (NUL included). */
#define RFD_HEAD_BYTES 16384

struct rfd {
    pid_t pid;     /* 0 once the daemon was reaped */
    uint16_t port; /* the loopback port it listens on */
    char dir[256]; /* its temporary data directory; <dir>/log holds its stderr */
};

/*
 * Start <build_dir>/ringflowd (build_dir borrowed, e.g. RF_BUILD_DIR) on 127.0.0.1 at a
 * free port, with --data-dir <fresh mkdtemp dir> --graphs-dir tests/daemon/graphs
 * --log-level warn --shards 2 --no-pin and then the NULL-terminated `extra` flags
 * (borrowed; NULL for none; later flags win). Retries up to 5 times on "address in use".
 * Waits (10 s in all) until GET /healthz answers 200 and every tests/daemon/graphs/<g>.json
 * is registered (GET /v1/graphs/<g> answers 200). 0, or -1 with the log on stderr and
 * nothing left running.
 */
int rfd_start(struct rfd *d, const char *build_dir, const char *const *extra);
/* A loopback port nothing listens on now (bind 127.0.0.1:0, then close): 0 or -1. */
int rfd_free_port(uint16_t *port);
/*
 * SIGTERM, wait up to 20 s for the exit (then SIGKILL and -1), check the log for sanitizer
 * reports (then print it and return -1), remove the temp dir. Returns WEXITSTATUS, or -1
 * (killed by a signal, timed out, sanitizer report). When d->pid is 0 (the test reaped the
 * daemon itself, see rfd_wait_exit) only the log check and the removal are done: 0 or -1.
 * Safe to call twice (the second call does nothing and returns -1).
 */
int rfd_stop(struct rfd *d);
/* How many rfd_stop calls returned -1 so far. A test binary adds it to its failures:
 * cmocka does not count a failed group teardown, where most rfd_stop calls happen. */
int rfd_failures(void);
/*
 * Wait up to timeout_ms for the daemon to exit (the test sent it a signal itself); on exit
 * d->pid becomes 0. Returns WEXITSTATUS, -2 on timeout (still running), -1 when killed by a
 * signal or on error. The log is checked later by rfd_stop.
 */
int rfd_wait_exit(struct rfd *d, int timeout_ms);
/* Start the daemon again after it exited or was killed (d->pid 0), on the same port and
 * data directory, with `extra` flags (borrowed). 0 ready; 1 it exited during start-up
 * (*exit_status, may be NULL, gets its status); -1 not ready in time (then killed). */
int rfd_restart(struct rfd *d, const char *build_dir, const char *const *extra, int *exit_status);
/* SIGKILL and reap (a crash). */
void rfd_kill(struct rfd *d);
/* The daemon's resident set in KiB (VmRSS of /proc/<pid>/status), or -1. */
long rfd_rss_kib(const struct rfd *d);
/* The daemon's log so far (malloc'd, NUL-terminated; caller frees), or NULL. */
char *rfd_log(const struct rfd *d);

/* A connected blocking TCP socket to the daemon with 5 s SO_RCVTIMEO/SO_SNDTIMEO and
 * TCP_NODELAY, or -1. Close it with rfd_close. */
int rfd_connect(const struct rfd *d);
int rfd_send_all(int fd, const void *p, size_t n); /* 0 or -1 (p borrowed) */
int rfd_send_str(int fd, const char *s);           /* 0 or -1 (s borrowed) */

struct rfd_resp {
    int status;                /* e.g. 200; 100 for an interim 100 Continue */
    char head[RFD_HEAD_BYTES]; /* status line and fields, through the blank line, NUL-ended */
    size_t head_len;           /* bytes of head, without the NUL */
    char *body;                /* malloc'd, NUL-terminated (empty when there is none) */
    size_t body_len;           /* bytes of body, without the NUL */
};
/*
 * Read exactly one response from fd: a Content-Length or chunked body (decoded), none for
 * HEAD (head_only), 1xx, 204 and 304, and to end of stream when neither length is given.
 * At most timeout_ms in all. r is overwritten (a previous body must have been freed); on
 * -1, r->body is NULL. 0 or -1.
 */
int rfd_read_resp(int fd, struct rfd_resp *r, int timeout_ms, bool head_only);
void rfd_resp_free(struct rfd_resp *r); /* frees body; safe twice */
/* The value of the first field `name` (case-insensitive), trimmed, copied into buf (cap
 * bytes, NUL-terminated, truncated) and returned; NULL when absent. */
const char *rfd_header(const struct rfd_resp *r, const char *name, char *buf, size_t cap);
/* True when the server closed the connection within timeout_ms: read returns 0 or
 * ECONNRESET, after discarding any bytes still pending (buffered or on the socket). */
bool rfd_wait_closed(int fd, int timeout_ms);
/* Close fd and forget its buffered bytes; negative fd is a no-op. */
void rfd_close(int fd);

/*
 * One request on a fresh connection (Connection: close): method, path, body (JSON text,
 * NULL for none; else sent with Content-Type: application/json and Content-Length), then
 * the response within 10 s (no body read for HEAD). All borrowed. 0 or -1; on 0 free r.
 */
int rfd_request(const struct rfd *d, const char *method, const char *path, const char *body,
                struct rfd_resp *r);
/* The parsed body (new reference; caller decrefs) or NULL. */
json_t *rfd_json(const struct rfd_resp *r);
/* POST /v1/graphs/<g>/executions with {"inputs": inputs_json} (inputs_json: JSON text,
 * NULL for {}); on 202 or 200 returns the execution id (malloc'd; caller frees), else
 * NULL (the response is printed to stderr). */
char *rfd_submit(const struct rfd *d, const char *g, const char *inputs_json);

struct rfd_ws {
    int fd;
    struct rf_ws *ws;
    char **msgs; /* received text messages not yet returned, msgs[head..nmsgs) */
    size_t nmsgs, cap, head;
    bool closed;         /* the connection ended (close handshake done, EOF or error) */
    uint16_t close_code; /* the close code the server sent (1005 none), 0 when none came */
};
/* Connect and upgrade on path (borrowed, e.g. "/v1/ws?execution_id=..."): 101 with the
 * right Sec-WebSocket-Accept. 0, or -1 (w left closed, nothing to free). */
int rfd_ws_open(const struct rfd *d, const char *path, struct rfd_ws *w);
/* Send one text message (copied). 0 or -1. */
int rfd_ws_send(struct rfd_ws *w, const char *text);
/* Next text message (malloc'd, NUL-terminated; caller frees) within timeout_ms, or NULL:
 * then w->closed and w->close_code say whether and how the server closed. */
char *rfd_ws_recv(struct rfd_ws *w, int timeout_ms);
/* Close handshake (code 1000, waiting at most 1 s for the server's close), then free
 * everything and close the socket. Safe on a w that failed to open. */
void rfd_ws_close(struct rfd_ws *w);

/* Honour RF_TEST_FILTER and RF_TEST_SKIP (cmocka patterns: '*' and '?') so one test of a
 * binary can be run alone, or left out, while debugging:
 * RF_TEST_FILTER=test_cancel build/release/tests/daemon/test_api. */
void rfd_test_filter(void);

/* Raw frames, for what the client above never sends (pings, broken frames) and to see
 * every frame the server sends. rfd_ws_open_raw: handshake on path, then the socket
 * (close with rfd_close), or -1. */
int rfd_ws_open_raw(const struct rfd *d, const char *path);
/* One frame: first_byte is FIN|RSV|opcode as sent (e.g. 0x81 a final text frame, 0x89 a
 * ping); masked with a fixed key when `masked` (clients must mask). 0 or -1. */
int rfd_ws_send_frame(int fd, unsigned first_byte, bool masked, const void *p, size_t n);
#define RFD_FRAME_MAX (1u << 24)
struct rfd_frame {
    bool fin;
    unsigned opcode;     /* 1 text, 2 binary, 8 close, 9 ping, 10 pong */
    char *data;          /* malloc'd, NUL-terminated; caller frees */
    size_t len;
    uint16_t close_code; /* for a close frame with a code, else 0 */
};
/* The next frame within timeout_ms: 0, or -1 (timeout, end of stream, or a frame that is
 * not a server's). */
int rfd_ws_read_frame(int fd, struct rfd_frame *f, int timeout_ms);

#endif /* RF_TESTS_SUPPORT_DAEMON_H */
