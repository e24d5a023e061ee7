/*
 * net/server.h: the HTTP/1.1 and WebSocket server on the shard rings.
 *
 * Every shard accepts on a listener of its own (SO_REUSEPORT, so the kernel spreads
 * connections), with one multishot accept; receives into a ring of provided buffers shared
 * by its connections; parses with the sans-I/O parser of net/http1.h; hands each complete
 * request to the API (net/api.h) on the same thread; and sends each connection's output of
 * a loop iteration with one send, from the service's flush hook. A connection lives and
 * dies on the shard that accepted it.
 *
 * The API answers a request with rf_resp*() on the request's context (struct rf_rctx),
 * at once or later: rf_conn_park() stops the connection from reading further requests
 * (responses keep request order) until the parked request is answered, and calls back if
 * the connection closes first. rf_conn_ws_upgrade() turns the connection into a WebSocket
 * whose text messages go to the API's hooks.
 *
 * Limits (struct rf_server_config): request line, header block and count, body, header and
 * idle timeouts, connections per shard, queued output per connection (past it the server
 * stops reading from that connection), and a WebSocket's send queue (past it: close 1008).
 */
#ifndef RF_NET_SERVER_H
#define RF_NET_SERVER_H

#include <jansson.h>
#include <stdint.h>

#include "engine/internal.h"
#include "net/http1.h"
#include "net/metrics.h"

struct rf_server_config {
    const char *host;             /* numeric IPv4/IPv6 or "localhost"; borrowed during new */
    uint16_t port;                /* 0: any free port (rf_server_port tells) */
    struct rf_http_limits lim;    /* request line (414), header block and fields (431) */
    uint64_t body_bytes_max;      /* 413 */
    uint32_t header_timeout_ms;   /* first byte of a head to its end: 408 and close */
    uint32_t idle_timeout_ms;     /* no byte received and nothing pending: close */
    uint32_t conns_max;           /* per shard; more are closed at accept */
    uint64_t out_bytes_max;       /* queued output per connection before reading stops */
    uint64_t ws_out_bytes_max;    /* a WebSocket's queued output: past it close 1008 */
    uint32_t ws_msg_bytes_max;    /* largest WebSocket message received: 1009 */
    uint32_t recv_buf_bytes;      /* size of each provided receive buffer; 0 = 16 KiB */
    uint32_t recv_bufs;           /* provided buffers per shard (power of 2); 0 = 256 */
};

struct rf_server;
struct rf_conn;
struct rf_api;

/* A request's context: enough to answer it, now or after parking. Copy it to park. */
struct rf_rctx {
    struct rf_conn *c;
    uint64_t gen;        /* the connection's request number: guards stale answers */
    uint64_t t0_ns;      /* head parsed */
    enum rf_route route; /* set by the router, for metrics */
    bool head_only;      /* HEAD: headers without the body */
    bool keep_alive;
};

struct rf_hreq {
    struct rf_rctx x;
    const struct rf_http_req *h; /* borrowed: valid during the handler call only */
    const char *body;            /* the decoded body, valid during the call only */
    size_t body_len;
    struct rf_server *srv;
};

/* Bind one listener per shard of `eng` (not started yet) and install the server as the
 * engine's service. `api` and `m` borrowed (outlive the server). Errors: bind/listen
 * failures as negative errno (e.g. -EADDRINUSE), -EINVAL for a bad host. */
int rf_server_new(rf_engine *eng, const struct rf_server_config *cfg, struct rf_api *api,
                  struct rf_metrics *m, struct rf_server **out);
/* The bound port. */
uint16_t rf_server_port(const struct rf_server *srv);
/* Stop accepting new connections on every shard (listeners closed); existing ones go on.
 * Any non-shard thread; returns once every shard did it or after `wait_ms`. */
void rf_server_stop_accepting(struct rf_server *srv, uint32_t wait_ms);
/* After rf_engine_stop (the shards closed every connection when they quit). */
void rf_server_free(struct rf_server *srv);
/* Connections open now, all shards (racy snapshot). */
uint64_t rf_server_conns(const struct rf_server *srv);

/* --- answering (on the connection's shard) --- */

/* Write a complete response. `headers`: extra header lines, each ending in CRLF, or NULL.
 * A stale context (the connection closed or moved on) is ignored. */
void rf_resp(struct rf_rctx *x, int status, const char *ctype, const char *headers,
             const void *body, size_t len);
/* A JSON response; `body` stolen. */
void rf_resp_json(struct rf_rctx *x, int status, const char *headers, json_t *body);
/* {"error": {"code", "message", "details"}}; `details` stolen (NULL = []). */
void rf_resp_error(struct rf_rctx *x, int status, const char *code, const char *headers,
                   json_t *details, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Park the request: the connection reads no further request until rf_resp* answers x.
 * If the connection closes first, on_close(ud) runs (then x must not be answered). */
void rf_conn_park(struct rf_rctx *x, void (*on_close)(void *ud), void *ud);

/* --- WebSocket --- */

struct rf_ws_hooks {
    void (*on_text)(void *ud, struct rf_conn *c, const char *msg, size_t len);
    void (*on_close)(void *ud, struct rf_conn *c); /* the connection is going away */
};
/* Answer 101 with `accept` and switch the connection to WebSocket. hooks borrowed. */
int rf_conn_ws_upgrade(struct rf_rctx *x, const char *accept, const struct rf_ws_hooks *hooks,
                       void *ud);
/* Send one text message. -EPIPE when the socket is closing; when the queued output passes
 * ws_out_bytes_max the connection is closed with 1008 and -ENOBUFS returned. */
int rf_conn_ws_send(struct rf_conn *c, const char *msg, size_t len);
void rf_conn_ws_close(struct rf_conn *c, uint16_t code, const char *reason);
/* The shard the connection lives on. */
struct rf_shard *rf_conn_shard(const struct rf_conn *c);

#endif /* RF_NET_SERVER_H */
