/*
 * net/server.c: connections on the shard rings (see net/server.h for the contract).
 *
 * One struct srv_shard per shard, touched by that shard's thread only (apart from the
 * connection count, read by metrics). Its pieces:
 *   - a listener (SO_REUSEPORT) with one multishot accept, re-armed when the kernel ends it;
 *   - a provided-buffer ring (bgid 0): every receive picks a buffer, the data is parsed in
 *     place, and the buffer goes straight back. Bytes that do not make a complete request
 *     yet are copied to the connection's `in` buffer, which then receives the rest;
 *   - the connections, on one list (the tick walks it for timeouts) and, when they have
 *     output, on the dirty list the flush hook turns into one send per connection;
 *   - a tick timer (armed while there are connections) for header, idle and linger
 *     timeouts, with a coarse clock (`now_ms`) and the Date header refreshed per second.
 *
 * A connection has at most one receive and one send in flight. Output goes to out[cur]
 * while out[cur ^ 1] is being sent; a send that completes swaps them. Past out_bytes_max
 * queued, the connection stops receiving (and so stops parsing); it reads again below half.
 * A request is dispatched when its head and its whole body are in one contiguous buffer
 * (a chunked body is decoded in place in `in`). Requests are answered in order: a parked
 * request stops parsing until it is answered. Closing: a response with Connection: close
 * is flushed, then the write side is shut down and the rest of the input drained for a
 * short linger, so the client reads the response instead of a reset; any other close
 * cancels the receive and frees the connection once its last CQE arrived.
 *
 * Memory per idle keep-alive connection: sizeof(struct rf_conn) (about 400 bytes); the
 * in/out buffers exist only while they hold bytes (out buffers up to 64 KiB are kept).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/jcs.h"
#include "net/api.h"
#include "net/server.h"
#include "net/ws.h"
#include "sched/shard.h"

#define BGID              0
#define RECV_BUF_DEFAULT  (16u << 10)
#define RECV_BUFS_DEFAULT 256u
#define OUT_KEEP_BYTES    (64u << 10) /* an out buffer this small is kept when drained */
#define LINGER_MS         1000u       /* reading after a close response, at most */
#define QUIT_CLOSE_MS     1000u       /* WebSockets' close handshake at shutdown, at most */
#define TICK_MS_MIN       10u
#define TICK_MS_MAX       1000u
#define HEADERS_CAP       1000u /* the parser's array; headers_max is checked against it */
#define PORT_WAIT_MS      3000u /* start-up: how long a port still held may be waited for */
#define PORT_RETRY_MS     50u

enum conn_state {
    C_HTTP = 0, /* reading requests */
    C_WS,       /* a WebSocket */
    C_LINGER,   /* write side shut, draining input until EOF or the linger deadline */
    C_CLOSING,  /* waiting for the last CQEs before freeing */
};

struct srv_shard;

struct rf_conn {
    struct srv_shard *ss;
    int fd;
    uint8_t state;         /* enum conn_state */
    bool recv_armed;       /* a recv is in flight */
    bool send_armed;       /* a send is in flight */
    bool cancel_sent;      /* an async cancel of the recv was issued */
    bool paused;           /* output over the bound: not receiving */
    bool dirty;            /* on the dirty list */
    bool close_after;      /* close once the output drained (Connection: close, errors) */
    bool parked;           /* a request waits for its answer */
    bool resume;           /* answered while parked: parse what is buffered, next flush */
    bool ping_sent;        /* WebSocket keep-alive ping outstanding */
    bool nobuf;            /* on the list waiting for receive buffers */
    uint64_t gen;          /* requests dispatched: rf_rctx.gen */
    uint64_t rx_ms;        /* last byte received (coarse clock) */
    uint64_t head_ms;      /* first byte of an incomplete head, or 0 */
    uint64_t linger_ms;    /* C_LINGER deadline */
    rf_op recv_op, send_op, cancel_op;
    struct rf_buf in;      /* buffered input: a partial request (or WebSocket bytes) */
    size_t in_off;         /* bytes of `in` already consumed */
    /* a chunked body being decoded in place in `in` */
    bool ck_active;
    uint32_t ck_head;      /* the head's length in `in` */
    size_t ck_raw;         /* offset of the first undecoded byte in `in` */
    size_t ck_len;         /* decoded body bytes so far, at in[ck_head] */
    struct rf_http_chunked ck;
    bool cont_sent;        /* 100 Continue sent for the current request */
    struct rf_buf out[2];
    uint32_t cur;          /* out[cur] fills; out[cur ^ 1] is being sent */
    size_t sent;           /* bytes of out[cur ^ 1] sent */
    struct rf_conn *prev, *next, *dnext, *bnext;
    void (*park_close)(void *ud);
    void *park_ud;
    struct rf_ws *ws;
    const struct rf_ws_hooks *wsh;
    void *ws_ud;
};

struct srv_shard {
    struct rf_server *srv;
    struct rf_shard *sh;
    int lfd;
    bool accepting;     /* the multishot accept should stay armed */
    bool accept_armed;
    bool quitting;
    uint64_t quit_deadline_ms; /* quitting: WebSockets still closing are cut then */
    bool tick_canceled;        /* quitting: the tick's cancel was sent */
    rf_op accept_op, tick_op, close_op;
    struct __kernel_timespec tick_ts;
    bool tick_armed;
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    char *bufs;
    uint32_t nbufs, buf_bytes;
    struct rf_conn head;          /* sentinel of all connections */
    _Atomic uint32_t nconns;      /* relaxed: owner writes, metrics read */
    struct rf_conn *dirty;        /* connections with output to send */
    struct rf_conn *nobufs;       /* connections whose recv found no buffer */
    uint64_t now_ms;
    int64_t date_s;
    char date[64];                /* "Date: ...\r\n" */
    struct rf_post stop_post;
    _Atomic uint32_t stopped;     /* accept stopped (for rf_server_stop_accepting) */
    struct rf_http_header hdrs[HEADERS_CAP];
} ;

struct rf_server {
    rf_engine *eng;
    struct rf_server_config cfg;
    struct rf_api *api;
    struct rf_metrics *m;
    uint16_t port;
    uint32_t n;
    struct srv_shard **ss;
    struct rf_shard_service svc;
    uint32_t tick_ms;
};

static void conn_close(struct rf_conn *c);
static void conn_detach(struct rf_conn *c);
static void conn_arm_recv(struct rf_conn *c);
static void conn_input(struct rf_conn *c, char *data, size_t len);
static void conn_drain_in(struct rf_conn *c);

/* --- clock and output ------------------------------------------------------------------ */

static uint64_t mono_ms(void)
{
    return rf_now_ns() / 1000000u;
}

static void date_refresh(struct srv_shard *ss)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec == ss->date_s)
        return;
    ss->date_s = ts.tv_sec;
    gmtime_r(&ts.tv_sec, &tm);
    strftime(ss->date, sizeof(ss->date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
}

static void mark_dirty(struct rf_conn *c)
{
    if (c->dirty || c->state == C_CLOSING)
        return;
    c->dirty = true;
    c->dnext = c->ss->dirty;
    c->ss->dirty = c;
}

static size_t out_queued(const struct rf_conn *c)
{
    return c->out[c->cur].len + (c->out[c->cur ^ 1].len - c->sent);
}

/* Append to the connection's output. Allocation failure closes the connection. */
static int conn_write(struct rf_conn *c, const void *p, size_t n)
{
    if (c->state == C_CLOSING)
        return -EPIPE;
    if (rf_buf_append(&c->out[c->cur], p, n) < 0) {
        conn_close(c);
        return -ENOMEM;
    }
    mark_dirty(c);
    return 0;
}

/* --- responses --------------------------------------------------------------------------- */

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

static bool ctx_live(const struct rf_rctx *x)
{
    return x->c && x->c->state == C_HTTP && x->c->gen == x->gen;
}

/* Append s to the head being built at *o (bounded by end). */
static char *put(char *o, const char *end, const char *s, size_t n)
{
    RF_ASSERT(o + n <= end);
    memcpy(o, s, n);
    return o + n;
}

#define PUT_LIT(o, end, lit) put(o, end, lit, sizeof(lit) - 1)

static char *put_uint(char *o, const char *end, uint64_t v)
{
    char tmp[20], *d = tmp + sizeof(tmp);

    do
        *--d = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    return put(o, end, d, (size_t)(tmp + sizeof(tmp) - d));
}

void rf_resp(struct rf_rctx *x, int status, const char *ctype, const char *headers,
             const void *body, size_t len)
{
    struct rf_conn *c = x->c;
    struct srv_shard *ss;
    char head[512], *o = head;
    const char *end = head + sizeof(head);
    const char *why = reason(status);

    if (!ctx_live(x))
        return;
    ss = c->ss;
    date_refresh(ss);
    if (!x->keep_alive)
        c->close_after = true;
    o = PUT_LIT(o, end, "HTTP/1.1 ");
    o = put_uint(o, end, (uint64_t)status);
    o = put(o, end, " ", 1);
    o = put(o, end, why, strlen(why));
    o = PUT_LIT(o, end, "\r\nServer: ringflowd\r\n");
    o = put(o, end, ss->date, strlen(ss->date));
    o = PUT_LIT(o, end, "Content-Length: ");
    o = put_uint(o, end, len);
    o = PUT_LIT(o, end, "\r\n");
    if (ctype) {
        size_t cl = strlen(ctype);
        o = PUT_LIT(o, end, "Content-Type: ");
        o = put(o, end, ctype, RF_MIN(cl, 128u));
        o = PUT_LIT(o, end, "\r\n");
    }
    if (c->close_after)
        o = PUT_LIT(o, end, "Connection: close\r\n");
    if (conn_write(c, head, (size_t)(o - head)) < 0 ||
        (headers && conn_write(c, headers, strlen(headers)) < 0) || conn_write(c, "\r\n", 2) < 0)
        return;
    if (!x->head_only && len && conn_write(c, body, len) < 0)
        return;
    rf_metrics_http(c->ss->srv->m, x->route, status, (rf_now_ns() - x->t0_ns) / 1000u);
    c->gen++; /* this context is answered: a second answer is ignored */
    if (c->parked) {
        c->parked = false;
        c->park_close = NULL;
        c->resume = true;
        mark_dirty(c);
    }
}

void rf_resp_json(struct rf_rctx *x, int status, const char *headers, json_t *body)
{
    char stack[1024];
    size_t need = json_dumpb(body, stack, sizeof(stack), JSON_COMPACT);
    char *p = stack;

    if (need > sizeof(stack)) {
        p = rf_malloc(need);
        if (!p) {
            json_decref(body);
            rf_resp(x, 500, "application/json", NULL,
                    "{\"error\":{\"code\":\"no_memory\",\"message\":\"out of memory\","
                    "\"details\":[]}}",
                    71);
            return;
        }
        json_dumpb(body, p, need, JSON_COMPACT);
    }
    json_decref(body);
    rf_resp(x, status, "application/json", headers, p, need);
    if (p != stack)
        rf_free(p);
}

void rf_resp_error(struct rf_rctx *x, int status, const char *code, const char *headers,
                   json_t *details, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *body = json_pack("{s:{s:s, s:s, s:o}}", "error", "code", code, "message", msg,
                             "details", details ? details : json_array());
    if (!body) {
        rf_resp(x, status, NULL, headers, NULL, 0);
        return;
    }
    rf_resp_json(x, status, headers, body);
}

void rf_conn_park(struct rf_rctx *x, void (*on_close)(void *ud), void *ud)
{
    struct rf_conn *c = x->c;

    RF_ASSERT(ctx_live(x));
    RF_ASSERT(!c->parked);
    c->parked = true;
    c->park_close = on_close;
    c->park_ud = ud;
}

struct rf_shard *rf_conn_shard(const struct rf_conn *c)
{
    return c->ss->sh;
}

/* A response the server makes itself, for framing errors: then the connection closes. */
static void fail_close(struct rf_conn *c, int status, enum rf_route route, const char *code,
                       const char *msg)
{
    struct rf_rctx x = {.c = c, .gen = c->gen, .t0_ns = rf_now_ns(), .route = route};

    c->close_after = true;
    rf_resp_error(&x, status, code, status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL,
                  NULL, "%s", msg);
}

/* --- WebSocket ------------------------------------------------------------------------------ */

static int ws_write(void *ud, const void *data, size_t len)
{
    return conn_write(ud, data, len);
}

static void ws_text(void *ud, const char *msg, size_t len)
{
    struct rf_conn *c = ud;

    if (c->wsh && c->state == C_WS)
        c->wsh->on_text(c->ws_ud, c, msg, len);
}

int rf_conn_ws_upgrade(struct rf_rctx *x, const char *accept, const struct rf_ws_hooks *hooks,
                       void *ud)
{
    struct rf_conn *c = x->c;
    struct rf_server *srv = c->ss->srv;
    struct rf_ws_cbs cbs = {.on_text = ws_text, .write = ws_write};
    struct rf_ws_limits lim = {.msg_bytes_max = srv->cfg.ws_msg_bytes_max};
    char head[256];
    int n, rc;

    if (!ctx_live(x))
        return -EPIPE;
    rc = rf_ws_new(true, &cbs, c, &lim, &c->ws);
    if (rc < 0)
        return rc;
    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                 accept);
    if (conn_write(c, head, (size_t)n) < 0)
        return -EPIPE;
    rf_metrics_http(srv->m, x->route, 101, (rf_now_ns() - x->t0_ns) / 1000u);
    rf_metrics_ws_conns(srv->m, 1);
    c->gen++;
    c->state = C_WS;
    c->wsh = hooks;
    c->ws_ud = ud;
    return 0;
}

int rf_conn_ws_send(struct rf_conn *c, const char *msg, size_t len)
{
    if (c->state != C_WS || rf_ws_done(c->ws))
        return -EPIPE;
    if (out_queued(c) + len > c->ss->srv->cfg.ws_out_bytes_max) {
        rf_conn_ws_close(c, 1008, "send queue full: the subscriber does not keep up");
        return -ENOBUFS;
    }
    return rf_ws_send_text(c->ws, msg, len);
}

void rf_conn_ws_close(struct rf_conn *c, uint16_t code, const char *why)
{
    if (c->state != C_WS)
        return;
    rf_ws_close(c->ws, code, why);
    c->close_after = true; /* closed once the close frame is out, if the peer is silent */
    mark_dirty(c);
}

static void ws_input(struct rf_conn *c, const char *data, size_t len)
{
    int rc = rf_ws_feed(c->ws, data, len);

    if (rc < 0 || rf_ws_done(c->ws)) {
        c->close_after = true;
        mark_dirty(c);
    }
}

/* --- requests ---------------------------------------------------------------------------- */

static void dispatch(struct rf_conn *c, const struct rf_http_req *h, const char *body,
                     size_t body_len)
{
    struct rf_hreq r = {
        .x = {.c = c,
              .gen = c->gen,
              .t0_ns = rf_now_ns(),
              .head_only = h->method == RF_HTTP_HEAD,
              .keep_alive = h->keep_alive},
        .h = h,
        .body = body,
        .body_len = body_len,
        .srv = c->ss->srv,
    };
    uint64_t gen = c->gen;

    c->head_ms = 0;
    c->cont_sent = false;
    rf_api_handle(c->ss->srv->api, &r);
    RF_ASSERT(c->gen != gen || c->parked || c->state != C_HTTP);
}

static void send_continue(struct rf_conn *c, const struct rf_http_req *h)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

    if (h->expect_continue && !c->cont_sent) {
        c->cont_sent = true;
        conn_write(c, cont, sizeof(cont) - 1);
    }
}

/* Try to handle one request at buf[0..len). Returns the bytes it used (> 0), 0 when more
 * bytes are needed (or, with *to_in, when a chunked body must be decoded in `in`), -1 when
 * the connection is failing. `in_place`: buf is c->in (a chunked body may be decoded). */
static ssize_t one_request(struct rf_conn *c, char *buf, size_t len, bool in_place, bool *to_in)
{
    struct rf_server *srv = c->ss->srv;
    struct rf_http_req h;
    int status = 400;
    int hl = rf_http_parse_request(buf, len, &srv->cfg.lim, &h, c->ss->hdrs, HEADERS_CAP,
                                   &status);

    if (hl == -2) {
        if (!c->head_ms)
            c->head_ms = c->ss->now_ms;
        return 0;
    }
    if (hl < 0) {
        fail_close(c, status, RF_ROUTE_OTHER, status == 400 ? "bad_request" : "limit",
                   status == 414   ? "the request line is longer than the limit"
                   : status == 431 ? "the request's header section is larger than the limit"
                   : status == 501 ? "unsupported Transfer-Encoding"
                   : status == 505 ? "HTTP version not supported"
                   : status == 417 ? "unsupported Expect"
                                   : "malformed HTTP request");
        return -1;
    }
    if (h.chunked) {
        if (!in_place) {
            *to_in = true;
            return 0;
        }
        return -3; /* the caller decodes */
    }
    if (h.content_length > 0) {
        if ((uint64_t)h.content_length > srv->cfg.body_bytes_max) {
            fail_close(c, 413, RF_ROUTE_OTHER, "body_too_large",
                       "the request body is larger than the limit");
            return -1;
        }
        if ((size_t)hl + (size_t)h.content_length > len) {
            c->head_ms = 0; /* the head is complete: the idle timeout watches the body */
            send_continue(c, &h);
            if (!in_place)
                *to_in = true;
            return 0;
        }
    }
    size_t blen = h.content_length > 0 ? (size_t)h.content_length : 0;
    dispatch(c, &h, buf + hl, blen);
    return (ssize_t)((size_t)hl + blen);
}

/* Decode the chunked body of the request at the start of `in` (from in_off). Returns as
 * one_request. */
static ssize_t chunked_request(struct rf_conn *c)
{
    struct rf_server *srv = c->ss->srv;
    char *base = c->in.p + c->in_off;
    size_t avail = c->in.len - c->in_off;
    struct rf_http_req h;
    int status = 400;
    int hl = rf_http_parse_request(base, avail, &srv->cfg.lim, &h, c->ss->hdrs, HEADERS_CAP,
                                   &status);

    RF_ASSERT(hl > 0 && h.chunked);
    if (!c->ck_active) {
        c->ck_active = true;
        c->ck_head = (uint32_t)hl;
        c->ck_raw = (size_t)hl;
        c->ck_len = 0;
        c->head_ms = 0;
        rf_http_chunked_init(&c->ck, srv->cfg.body_bytes_max, &srv->cfg.lim);
        send_continue(c, &h);
    }
    size_t dlen = 0;
    int rc = rf_http_chunked_decode(&c->ck, base + c->ck_head + c->ck_len, base + c->ck_raw,
                                    avail - c->ck_raw, &dlen, &status);
    if (rc == -1) {
        c->ck_active = false;
        fail_close(c, status, RF_ROUTE_OTHER, status == 413 ? "body_too_large" : "bad_request",
                   status == 413 ? "the request body is larger than the limit"
                                 : "malformed chunked body");
        return -1;
    }
    c->ck_len += dlen;
    if (rc == -2) {
        c->ck_raw = avail;
        /* Decoded bytes moved down: drop the consumed raw tail so `in` stays small. */
        c->in.len = c->in_off + c->ck_head + c->ck_len;
        c->ck_raw = c->ck_head + c->ck_len;
        return 0;
    }
    size_t used = c->ck_raw + (size_t)rc;
    c->ck_active = false;
    /* The head's slices point into `in` before the body: still valid. */
    dispatch(c, &h, base + c->ck_head, c->ck_len);
    return (ssize_t)used;
}

/* Parse and dispatch what `buf` holds. Returns the bytes consumed; the rest (a partial
 * request) is for the caller to keep. `in_place`: buf is c->in + in_off. */
static size_t parse_loop(struct rf_conn *c, char *buf, size_t len, bool in_place, bool *to_in)
{
    size_t off = 0;

    while (off < len && c->state == C_HTTP && !c->parked && !c->close_after && !c->paused) {
        ssize_t n = in_place && c->ck_active ? -3 : one_request(c, buf + off, len - off,
                                                                  in_place, to_in);
        if (n == -3) {
            c->in_off += off; /* chunked_request works from in_off */
            off = 0;
            buf = c->in.p + c->in_off;
            len = c->in.len - c->in_off;
            n = chunked_request(c);
            /* chunked_request may have shrunk `in` */
            len = c->in.len - c->in_off;
        }
        if (n <= 0) {
            if (n < 0)
                return len; /* failing: drop the input */
            break;
        }
        off += (size_t)n;
    }
    if (c->state == C_WS && off < len) {
        ws_input(c, buf + off, len - off);
        return len;
    }
    if (in_place)
        return off;
    return off;
}

/* Keep buf[0..len) (unparsed bytes) at the end of `in`. */
static int keep_input(struct rf_conn *c, const char *buf, size_t len)
{
    struct rf_server *srv = c->ss->srv;
    size_t cap = (size_t)srv->cfg.lim.header_bytes_max + srv->cfg.body_bytes_max + 65536;

    if (c->in.len - c->in_off + len > cap) {
        fail_close(c, 413, RF_ROUTE_OTHER, "body_too_large", "too much buffered input");
        return -1;
    }
    if (c->in_off && c->in_off == c->in.len)
        c->in.len = c->in_off = 0;
    if (rf_buf_append(&c->in, buf, len) < 0) {
        conn_close(c);
        return -1;
    }
    return 0;
}

static void in_compact(struct rf_conn *c)
{
    if (c->in_off == c->in.len) {
        c->in.len = c->in_off = 0;
        if (c->in.cap > OUT_KEEP_BYTES)
            rf_buf_free(&c->in);
        return;
    }
    if (c->in_off && !c->ck_active) {
        memmove(c->in.p, c->in.p + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
}

/* Parse what `in` holds. */
static void conn_drain_in(struct rf_conn *c)
{
    bool to_in = false;
    size_t used;

    if (c->in.len == c->in_off)
        return;
    if (c->state == C_WS) {
        size_t n = c->in.len - c->in_off;
        c->in_off = c->in.len;
        ws_input(c, c->in.p + c->in.len - n, n);
        in_compact(c);
        return;
    }
    used = parse_loop(c, c->in.p + c->in_off, c->in.len - c->in_off, true, &to_in);
    if (c->state == C_CLOSING)
        return;
    c->in_off += used;
    if (c->in_off > c->in.len)
        c->in_off = c->in.len;
    in_compact(c);
}

static void conn_input(struct rf_conn *c, char *data, size_t len)
{
    bool to_in = false;

    c->rx_ms = c->ss->now_ms;
    c->ping_sent = false;
    if (c->state == C_LINGER)
        return; /* drained and dropped */
    if (c->state == C_WS && c->in.len == c->in_off) {
        ws_input(c, data, len);
        return;
    }
    if (c->in.len > c->in_off || c->parked || c->paused || c->close_after) {
        if (c->close_after)
            return; /* nothing more will be answered */
        if (keep_input(c, data, len) == 0 && !c->parked && !c->paused)
            conn_drain_in(c);
        return;
    }
    size_t used = parse_loop(c, data, len, false, &to_in);
    if (c->state == C_CLOSING || c->close_after)
        return;
    /* The rest is a partial request, a chunked one to decode in `in`, or WebSocket bytes
     * that followed the upgrade. */
    if (used < len && keep_input(c, data + used, len - used) == 0 && (to_in || c->state == C_WS))
        conn_drain_in(c);
}

/* --- the ring: receive, send, close ------------------------------------------------------ */

static void buf_return(struct srv_shard *ss, uint32_t bid)
{
    io_uring_buf_ring_add(ss->br, ss->bufs + (size_t)bid * ss->buf_bytes, ss->buf_bytes,
                          (unsigned short)bid, io_uring_buf_ring_mask(ss->nbufs), 0);
    io_uring_buf_ring_advance(ss->br, 1);
}

static void conn_free(struct rf_conn *c)
{
    struct srv_shard *ss = c->ss;

    RF_ASSERT(!c->recv_armed && !c->send_armed && !c->cancel_sent);
    c->prev->next = c->next;
    c->next->prev = c->prev;
    if (c->nobuf) {
        for (struct rf_conn **pp = &ss->nobufs; *pp; pp = &(*pp)->bnext)
            if (*pp == c) {
                *pp = c->bnext;
                break;
            }
    }
    if (c->dirty) {
        for (struct rf_conn **pp = &ss->dirty; *pp; pp = &(*pp)->dnext)
            if (*pp == c) {
                *pp = c->dnext;
                break;
            }
    }
    close(c->fd);
    rf_buf_free(&c->in);
    rf_buf_free(&c->out[0]);
    rf_buf_free(&c->out[1]);
    rf_ws_free(c->ws);
    /* Relaxed: a count for metrics and the quit check, written by this thread only. */
    atomic_fetch_sub_explicit(&ss->nconns, 1, memory_order_relaxed);
    rf_free(c);
}

static void conn_maybe_free(struct rf_conn *c)
{
    if (c->state == C_CLOSING && !c->recv_armed && !c->send_armed && !c->cancel_sent)
        conn_free(c);
}

static void cancel_cqe(rf_op *op, int res, uint32_t flags)
{
    struct rf_conn *c = rf_container_of(op, struct rf_conn, cancel_op);

    (void)res;
    (void)flags;
    c->cancel_sent = false;
    conn_maybe_free(c);
}

static void conn_close(struct rf_conn *c)
{
    struct srv_shard *ss = c->ss;
    struct io_uring_sqe *sqe;

    if (c->state == C_CLOSING)
        return;
    conn_detach(c);
    c->state = C_CLOSING;
    c->gen++;
    if (c->recv_armed && !c->cancel_sent && (sqe = rf__shard_sqe(ss->sh)) != NULL) {
        io_uring_prep_cancel(sqe, &c->recv_op, 0);
        c->cancel_op.cb = cancel_cqe;
        io_uring_sqe_set_data(sqe, &c->cancel_op);
        c->cancel_sent = true;
    }
    conn_maybe_free(c);
}

static void recv_cqe(rf_op *op, int res, uint32_t flags)
{
    struct rf_conn *c = rf_container_of(op, struct rf_conn, recv_op);
    struct srv_shard *ss = c->ss;

    c->recv_armed = false;
    if (flags & IORING_CQE_F_BUFFER) {
        uint32_t bid = flags >> IORING_CQE_BUFFER_SHIFT;
        if (res > 0 && c->state != C_CLOSING)
            conn_input(c, ss->bufs + (size_t)bid * ss->buf_bytes, (size_t)res);
        buf_return(ss, bid);
    }
    if (c->state == C_CLOSING) {
        conn_maybe_free(c);
        return;
    }
    if (res == -ENOBUFS) {
        if (!c->nobuf) {
            c->nobuf = true;
            c->bnext = ss->nobufs;
            ss->nobufs = c;
        }
        return;
    }
    if (res <= 0) {
        if (res == 0 && c->state == C_HTTP && (c->in.len > c->in_off) && !c->parked)
            fail_close(c, 400, RF_ROUTE_OTHER, "bad_request", "incomplete request");
        conn_close(c);
        return;
    }
    conn_arm_recv(c);
}

static void conn_arm_recv(struct rf_conn *c)
{
    struct io_uring_sqe *sqe;

    if (c->recv_armed || c->state == C_CLOSING || c->paused)
        return;
    sqe = rf__shard_sqe(c->ss->sh);
    if (!sqe) {
        conn_close(c);
        return;
    }
    io_uring_prep_recv(sqe, c->fd, NULL, c->ss->buf_bytes, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    c->recv_op.cb = recv_cqe;
    io_uring_sqe_set_data(sqe, &c->recv_op);
    c->recv_armed = true;
}

static void send_start(struct rf_conn *c);

/* The API lets go of the connection: WebSocket hooks and a parked request. */
static void conn_detach(struct rf_conn *c)
{
    if (c->state == C_WS) {
        rf_metrics_ws_conns(c->ss->srv->m, -1);
        if (c->wsh)
            c->wsh->on_close(c->ws_ud, c);
        c->wsh = NULL;
    }
    if (c->parked && c->park_close) {
        c->parked = false;
        c->park_close(c->park_ud);
        c->park_close = NULL;
    }
}

static void linger_start(struct rf_conn *c)
{
    conn_detach(c);
    shutdown(c->fd, SHUT_WR);
    c->state = C_LINGER;
    c->linger_ms = c->ss->now_ms + LINGER_MS;
    c->paused = false;
    conn_arm_recv(c);
}

static void send_cqe(rf_op *op, int res, uint32_t flags)
{
    struct rf_conn *c = rf_container_of(op, struct rf_conn, send_op);
    struct rf_buf *b = &c->out[c->cur ^ 1];

    (void)flags;
    c->send_armed = false;
    if (c->state == C_CLOSING) {
        conn_maybe_free(c);
        return;
    }
    if (res < 0) {
        conn_close(c);
        return;
    }
    c->sent += (size_t)res;
    if (c->sent < b->len) {
        send_start(c); /* a short send: the rest of the same buffer */
        return;
    }
    b->len = 0;
    c->sent = 0;
    if (b->cap > OUT_KEEP_BYTES)
        rf_buf_free(b);
    if (c->out[c->cur].len) {
        mark_dirty(c);
        return;
    }
    if (c->paused && out_queued(c) < c->ss->srv->cfg.out_bytes_max / 2) {
        c->paused = false;
        conn_arm_recv(c);
        mark_dirty(c); /* parse what waited in `in` */
        c->resume = true;
    }
    if (c->close_after && !c->parked && c->state != C_LINGER)
        linger_start(c);
}

static void send_start(struct rf_conn *c)
{
    struct rf_buf *b = &c->out[c->cur ^ 1];
    struct io_uring_sqe *sqe = rf__shard_sqe(c->ss->sh);

    if (!sqe) {
        conn_close(c);
        return;
    }
    io_uring_prep_send(sqe, c->fd, b->p + c->sent, b->len - c->sent, MSG_NOSIGNAL);
    c->send_op.cb = send_cqe;
    io_uring_sqe_set_data(sqe, &c->send_op);
    c->send_armed = true;
}

/* One connection's turn in the flush: resume parsing, send, or finish closing. */
static void conn_flush(struct rf_conn *c)
{
    struct rf_server *srv = c->ss->srv;

    if (c->resume && !c->parked) {
        c->resume = false;
        conn_drain_in(c);
        if (c->state == C_CLOSING)
            return;
    }
    if (!c->send_armed && c->out[c->cur].len) {
        c->cur ^= 1;
        c->sent = 0;
        send_start(c);
    }
    if (c->state == C_CLOSING)
        return;
    if (!c->paused && out_queued(c) > srv->cfg.out_bytes_max && c->state == C_HTTP)
        c->paused = true; /* stop receiving: the recv is not re-armed */
    if (!c->send_armed && !c->out[c->cur].len && c->close_after && !c->parked &&
        c->state != C_LINGER)
        linger_start(c);
}

/* --- accept, tick, service hooks --------------------------------------------------------- */

static void tick_arm(struct srv_shard *ss);

static void accept_cqe(rf_op *op, int res, uint32_t flags);

static void accept_arm(struct srv_shard *ss)
{
    struct io_uring_sqe *sqe;

    if (ss->accept_armed || !ss->accepting)
        return;
    sqe = rf__shard_sqe(ss->sh);
    RF_ASSERT(sqe);
    io_uring_prep_multishot_accept(sqe, ss->lfd, NULL, NULL, SOCK_CLOEXEC);
    ss->accept_op.cb = accept_cqe;
    io_uring_sqe_set_data(sqe, &ss->accept_op);
    ss->accept_armed = true;
}

static void conn_new(struct srv_shard *ss, int fd)
{
    struct rf_server *srv = ss->srv;
    struct rf_conn *c;
    int one = 1;

    /* Relaxed: this thread is the only writer. */
    if (atomic_load_explicit(&ss->nconns, memory_order_relaxed) >= srv->cfg.conns_max ||
        ss->quitting || !(c = rf_calloc(1, sizeof(*c)))) {
        close(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->ss = ss;
    c->fd = fd;
    c->rx_ms = ss->now_ms = mono_ms();
    c->next = &ss->head;
    c->prev = ss->head.prev;
    ss->head.prev->next = c;
    ss->head.prev = c;
    atomic_fetch_add_explicit(&ss->nconns, 1, memory_order_relaxed); /* see above */
    conn_arm_recv(c);
    tick_arm(ss);
}

static void accept_cqe(rf_op *op, int res, uint32_t flags)
{
    struct srv_shard *ss = rf_container_of(op, struct srv_shard, accept_op);

    if (res >= 0)
        conn_new(ss, res);
    else if (res != -ECANCELED && res != -EINVAL && res != -EBADF)
        rf_log_warn("\"msg\":\"accept failed\",\"shard\":%u,\"err\":\"%s\"", ss->sh->id,
                    strerror(-res));
    if (!(flags & IORING_CQE_F_MORE)) {
        ss->accept_armed = false;
        if (res == -ECANCELED || !ss->accepting) {
            if (ss->lfd >= 0) {
                close(ss->lfd);
                ss->lfd = -1;
            }
            /* Release: the stopper's acquire load sees the listener closed. */
            atomic_store_explicit(&ss->stopped, 1, memory_order_release);
            return;
        }
        accept_arm(ss);
    }
}

static void conn_tick(struct rf_conn *c, uint64_t now)
{
    const struct rf_server_config *cfg = &c->ss->srv->cfg;

    switch (c->state) {
    case C_LINGER:
        if (now >= c->linger_ms)
            conn_close(c);
        return;
    case C_WS:
        if (now - c->rx_ms < cfg->idle_timeout_ms)
            return;
        if (c->ping_sent) {
            rf_conn_ws_close(c, 1001, "idle");
            c->ping_sent = false;
            c->rx_ms = now; /* one more period for the close handshake, then closed */
            return;
        }
        rf_ws_ping(c->ws, "rf", 2);
        c->ping_sent = true;
        c->rx_ms = now;
        mark_dirty(c);
        return;
    case C_HTTP:
        if (c->parked || c->close_after)
            return;
        if (c->head_ms && now - c->head_ms >= cfg->header_timeout_ms) {
            fail_close(c, 408, RF_ROUTE_OTHER, "timeout",
                       "the request head did not arrive in time");
            return;
        }
        if (now - c->rx_ms >= cfg->idle_timeout_ms) {
            if (c->in.len > c->in_off)
                fail_close(c, 408, RF_ROUTE_OTHER, "timeout", "the request did not arrive in time");
            else
                conn_close(c);
        }
        return;
    default:
        return;
    }
}

static void tick_cqe(rf_op *op, int res, uint32_t flags)
{
    struct srv_shard *ss = rf_container_of(op, struct srv_shard, tick_op);
    uint64_t now = mono_ms();

    (void)res;
    (void)flags;
    ss->tick_armed = false;
    ss->now_ms = now;
    for (struct rf_conn *c = ss->head.next, *next; c != &ss->head; c = next) {
        next = c->next;
        if (ss->quitting && now >= ss->quit_deadline_ms)
            conn_close(c); /* the close handshake did not finish in time */
        else
            conn_tick(c, now);
    }
    tick_arm(ss);
}

static void tick_arm(struct srv_shard *ss)
{
    if (ss->tick_armed || ss->head.next == &ss->head)
        return;
    ss->tick_armed = true;
    rf__shard_timer_arm(ss->sh, &ss->tick_op, &ss->tick_ts, ss->srv->tick_ms, tick_cqe);
}

static int buf_ring_init(struct srv_shard *ss)
{
    struct io_uring_buf_reg reg = {0};
    int rc;

    ss->br_bytes = ss->nbufs * sizeof(struct io_uring_buf);
    ss->br = mmap(NULL, ss->br_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (ss->br == MAP_FAILED) {
        ss->br = NULL;
        return -ENOMEM;
    }
    ss->bufs = rf_malloc((size_t)ss->nbufs * ss->buf_bytes);
    if (!ss->bufs)
        return -ENOMEM;
    reg.ring_addr = (uint64_t)(uintptr_t)ss->br;
    reg.ring_entries = ss->nbufs;
    reg.bgid = BGID;
    rc = io_uring_register_buf_ring(&ss->sh->ring, &reg, 0);
    if (rc < 0)
        return rc;
    io_uring_buf_ring_init(ss->br);
    for (uint32_t i = 0; i < ss->nbufs; i++)
        io_uring_buf_ring_add(ss->br, ss->bufs + (size_t)i * ss->buf_bytes, ss->buf_bytes,
                              (unsigned short)i, io_uring_buf_ring_mask(ss->nbufs), (int)i);
    io_uring_buf_ring_advance(ss->br, (int)ss->nbufs);
    return 0;
}

static int svc_start(void *ud, struct rf_shard *sh)
{
    struct rf_server *srv = ud;
    struct srv_shard *ss = srv->ss[sh->id];
    int rc;

    ss->sh = sh;
    ss->now_ms = mono_ms();
    rc = buf_ring_init(ss);
    if (rc < 0) {
        rf_log_error("\"msg\":\"cannot register receive buffers\",\"shard\":%u,\"err\":\"%s\"",
                     sh->id, strerror(-rc));
        return rc;
    }
    ss->accepting = true;
    accept_arm(ss);
    return 0;
}

static void svc_flush(void *ud, struct rf_shard *sh)
{
    struct rf_server *srv = ud;
    struct srv_shard *ss = srv->ss[sh->id];

    while (ss->nobufs) {
        struct rf_conn *c = ss->nobufs;
        ss->nobufs = c->bnext;
        c->nobuf = false;
        conn_arm_recv(c);
    }
    while (ss->dirty) {
        struct rf_conn *c = ss->dirty;
        ss->dirty = c->dnext;
        c->dirty = false;
        conn_flush(c);
    }
}

static void svc_quit(void *ud, struct rf_shard *sh)
{
    struct rf_server *srv = ud;
    struct srv_shard *ss = srv->ss[sh->id];
    struct io_uring_sqe *sqe;

    ss->quitting = true;
    ss->accepting = false;
    if (ss->accept_armed && (sqe = rf__shard_sqe(sh)) != NULL) {
        io_uring_prep_cancel(sqe, &ss->accept_op, 0);
        io_uring_sqe_set_data64(sqe, RF_UD_IGNORE);
    }
    /* WebSockets get a close frame, 1001 "going away", and QUIT_CLOSE_MS to read it
     * (the tick cuts what is left then); everything else closes at once. */
    ss->now_ms = mono_ms();
    ss->quit_deadline_ms = ss->now_ms + QUIT_CLOSE_MS;
    for (struct rf_conn *c = ss->head.next, *next; c != &ss->head; c = next) {
        next = c->next;
        if (c->state == C_WS && !rf_ws_done(c->ws))
            rf_conn_ws_close(c, 1001, "server shutting down");
        else
            conn_close(c);
    }
    tick_arm(ss); /* for the deadline; svc_busy cancels it once the last one is gone */
}

static bool svc_busy(void *ud, struct rf_shard *sh)
{
    struct rf_server *srv = ud;
    struct srv_shard *ss = srv->ss[sh->id];

    if (ss->dirty || ss->nobufs)
        svc_flush(ud, sh);
    if (ss->head.next == &ss->head && ss->tick_armed && !ss->tick_canceled) {
        ss->tick_canceled = true; /* nothing left to time: do not wait for the tick */
        rf__shard_timer_cancel(sh, &ss->tick_op);
    }
    return ss->head.next != &ss->head || ss->accept_armed || ss->tick_armed;
}

static void svc_stop(void *ud, struct rf_shard *sh)
{
    struct rf_server *srv = ud;
    struct srv_shard *ss = srv->ss[sh->id];

    if (ss->br)
        io_uring_unregister_buf_ring(&sh->ring, BGID);
    rf_store_thread_exit();
}

/* --- the server -------------------------------------------------------------------------- */

static int addr_of(const struct rf_server_config *cfg, uint16_t port,
                   struct sockaddr_storage *sa, socklen_t *salen)
{
    const char *host = strcmp(cfg->host, "localhost") == 0 ? "127.0.0.1" : cfg->host;

    memset(sa, 0, sizeof(*sa));
    if (inet_pton(AF_INET, host, &((struct sockaddr_in *)sa)->sin_addr) == 1) {
        struct sockaddr_in *a = (struct sockaddr_in *)sa;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        *salen = sizeof(*a);
    } else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)sa)->sin6_addr) == 1) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)sa;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        *salen = sizeof(*a);
    } else {
        return -EINVAL;
    }
    return 0;
}

/* SO_REUSEPORT lets every shard bind the same port, but it would also let a second
 * ringflowd (same user) join the group and silently take part of the connections. So the
 * port is first bound once without it: if anything holds the port, start-up fails with
 * -EADDRINUSE. (The window between this probe and the shards' binds is a few syscalls.) */
static int port_free(const struct rf_server_config *cfg)
{
    struct sockaddr_storage sa;
    socklen_t salen;
    int fd, one = 1, rc;

    if ((rc = addr_of(cfg, cfg->port, &sa, &salen)) < 0)
        return rc;
    fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* TIME_WAIT is fine */
    rc = bind(fd, (struct sockaddr *)&sa, salen) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

static int listen_on(const struct rf_server_config *cfg, uint16_t port, int *out)
{
    struct sockaddr_storage sa;
    socklen_t salen;
    int fd, one = 1, rc;

    if ((rc = addr_of(cfg, port, &sa, &salen)) < 0)
        return rc;
    fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&sa, salen) < 0 || listen(fd, 4096) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    *out = fd;
    return 0;
}

static uint16_t bound_port(int fd)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);

    if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        return 0;
    if (sa.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&sa)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
}

static void config_defaults(struct rf_server_config *c)
{
    if (!c->lim.line_bytes_max || !c->lim.header_bytes_max || !c->lim.headers_max)
        rf_http_limits_default(&c->lim);
    if (c->lim.headers_max > HEADERS_CAP)
        c->lim.headers_max = HEADERS_CAP;
    if (!c->body_bytes_max)
        c->body_bytes_max = 1u << 20;
    if (!c->header_timeout_ms)
        c->header_timeout_ms = 10000;
    if (!c->idle_timeout_ms)
        c->idle_timeout_ms = 60000;
    if (!c->conns_max)
        c->conns_max = 10000;
    if (!c->out_bytes_max)
        c->out_bytes_max = 4u << 20;
    if (!c->ws_out_bytes_max)
        c->ws_out_bytes_max = 1u << 20;
    if (!c->ws_msg_bytes_max)
        c->ws_msg_bytes_max = 64u << 10;
    if (!c->recv_buf_bytes)
        c->recv_buf_bytes = RECV_BUF_DEFAULT;
    if (!c->recv_bufs || (c->recv_bufs & (c->recv_bufs - 1)) || c->recv_bufs > 32768)
        c->recv_bufs = RECV_BUFS_DEFAULT;
}

int rf_server_new(rf_engine *eng, const struct rf_server_config *cfg, struct rf_api *api,
                  struct rf_metrics *m, struct rf_server **out)
{
    struct rf_server *srv = rf_calloc(1, sizeof(*srv));
    uint32_t t;
    int rc = -ENOMEM;

    if (!srv)
        return -ENOMEM;
    srv->eng = eng;
    srv->cfg = *cfg;
    config_defaults(&srv->cfg);
    srv->api = api;
    srv->m = m;
    srv->n = rf_engine_shards(eng);
    t = RF_MIN(srv->cfg.header_timeout_ms, srv->cfg.idle_timeout_ms) / 4;
    srv->tick_ms = RF_MAX(TICK_MS_MIN, RF_MIN(TICK_MS_MAX, t));
    srv->ss = rf_calloc(srv->n, sizeof(*srv->ss));
    if (!srv->ss)
        goto err;
    srv->port = cfg->port;
    /* A process that just died may still hold the port for a moment: its io_uring rings
     * are torn down by the kernel after the process is gone, and a ring's pending accept
     * keeps the listener open until then. A restart after a crash waits for that. */
    for (uint32_t waited = 0; srv->port; waited += PORT_RETRY_MS) {
        rc = port_free(&srv->cfg);
        if (rc != -EADDRINUSE || waited >= PORT_WAIT_MS)
            break;
        usleep(PORT_RETRY_MS * 1000);
    }
    if (srv->port && rc < 0)
        goto err;
    rc = -ENOMEM;
    for (uint32_t i = 0; i < srv->n; i++) {
        struct srv_shard *ss = rf_zalloc_aligned(sizeof(*ss), RF_CACHELINE);
        if (!ss)
            goto err;
        srv->ss[i] = ss;
        ss->srv = srv;
        ss->lfd = -1;
        ss->head.next = ss->head.prev = &ss->head;
        ss->nbufs = srv->cfg.recv_bufs;
        ss->buf_bytes = srv->cfg.recv_buf_bytes;
        rc = listen_on(&srv->cfg, srv->port, &ss->lfd);
        if (rc < 0)
            goto err;
        if (srv->port == 0)
            srv->port = bound_port(ss->lfd); /* the others join the first's port */
    }
    srv->svc = (struct rf_shard_service){.ud = srv,
                                         .start = svc_start,
                                         .flush = svc_flush,
                                         .quit = svc_quit,
                                         .busy = svc_busy,
                                         .stop = svc_stop};
    rc = rf__engine_set_service(eng, &srv->svc);
    if (rc < 0)
        goto err;
    *out = srv;
    return 0;
err:
    rf_server_free(srv);
    return rc;
}

uint16_t rf_server_port(const struct rf_server *srv)
{
    return srv->port;
}

uint64_t rf_server_conns(const struct rf_server *srv)
{
    uint64_t n = 0;

    for (uint32_t i = 0; i < srv->n; i++)
        n += atomic_load_explicit(&srv->ss[i]->nconns, memory_order_relaxed); /* snapshot */
    return n;
}

static void stop_post(struct rf_post *p, struct rf_shard *sh)
{
    struct srv_shard *ss = rf_container_of(p, struct srv_shard, stop_post);
    struct io_uring_sqe *sqe;

    ss->accepting = false;
    if (ss->accept_armed && (sqe = rf__shard_sqe(sh)) != NULL) {
        io_uring_prep_cancel(sqe, &ss->accept_op, 0);
        io_uring_sqe_set_data64(sqe, RF_UD_IGNORE);
    } else if (!ss->accept_armed) {
        if (ss->lfd >= 0) {
            close(ss->lfd);
            ss->lfd = -1;
        }
        /* Release: as in accept_cqe. */
        atomic_store_explicit(&ss->stopped, 1, memory_order_release);
    }
}

void rf_server_stop_accepting(struct rf_server *srv, uint32_t wait_ms)
{
    uint64_t deadline = mono_ms() + wait_ms;

    for (uint32_t i = 0; i < srv->n; i++) {
        srv->ss[i]->stop_post.fn = stop_post;
        rf__shard_post(rf__engine_shard(srv->eng, i), &srv->ss[i]->stop_post);
    }
    for (uint32_t i = 0; i < srv->n; i++)
        /* Acquire: pairs with the shard's release store. */
        while (!atomic_load_explicit(&srv->ss[i]->stopped, memory_order_acquire) &&
               mono_ms() < deadline) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
}

void rf_server_free(struct rf_server *srv)
{
    if (!srv)
        return;
    for (uint32_t i = 0; srv->ss && i < srv->n; i++) {
        struct srv_shard *ss = srv->ss[i];
        if (!ss)
            continue;
        RF_ASSERT(ss->head.next == &ss->head);
        if (ss->lfd >= 0)
            close(ss->lfd);
        if (ss->br)
            munmap(ss->br, ss->br_bytes);
        rf_free(ss->bufs);
        rf_free(ss);
    }
    rf_free(srv->ss);
    rf_free(srv);
}
