/*
 * net/hclient.c: the `http` node kind, an HTTP/1.1 client that runs entirely on the running
 * shard's io_uring ring (docs/http-kind.md is the user's reference).
 *
 * An attempt is a small state machine in the task's data (struct hc_task):
 *
 *   start --> an idle connection for (ip, port)? --yes--------------------+
 *                 | no                                                    v
 *                 +--> SOCKET (ring, or socket(2)) --> CONNECT --> SEND --> RECV --> done
 *                        ^                                                  |
 *                        +---- once: the reused connection was stale -------+
 *                              (EPIPE, ECONNRESET or EOF before any byte)
 *
 * Exactly one I/O operation is in flight at a time, plus the attempt's timer (an io_uring
 * timeout of http_timeout_ms armed when the attempt starts). `inflight` counts the two. A
 * result (success, failure, the timer firing, the engine's cancel) sets `finishing`,
 * cancels whatever is still in flight, and the attempt completes, with rf_task_succeed or
 * rf_task_fail, only when `inflight` is back to zero, as the async-kind rules require. The
 * first result wins; later ones are dropped.
 *
 * Bytes: the request is written once into a heap buffer (rf_buf). The response lands in
 * one buffer that doubles up to http_response_bytes_max; net/hresp.c parses its head in
 * place and decodes a chunked body in place right behind the head, so the body is
 * contiguous when it is turned into JSON. Nothing is allocated per received segment.
 *
 * Connections: each shard keeps its own pool of idle keep-alive connections (struct
 * hc_shard, touched only by that shard's thread; created at registration, closed and freed
 * by rf__http_kind_free after the shards exited). A complete response that allows it
 * returns its socket to the pool; the next request to the same (ip, port) on that shard
 * takes it. A pooled socket the server closed meanwhile shows as EPIPE, ECONNRESET or EOF
 * before any response byte: the request is then sent once more on a fresh connection.
 */
#include "engine/rf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/internal.h"
#include "net/hclient.h"
#include "net/hresp.h"

#define RF_HTTP_BUF_BYTES_INIT       16384u     /* first response buffer */
#define RF_HTTP_RESPONSE_BYTES_LIMIT (1u << 30) /* hard bound of http_response_bytes_max */
#define RF_HTTP_IDLE_CONNS_LIMIT     4096u      /* hard bound of http_idle_conns_max */
#define RF_HTTP_IDLE_MS_MAX          30000u     /* older idle connections are closed, not reused */
#define RF_HTTP_INTERIM_MAX          8u         /* 1xx responses skipped before the final one */
#define RF_HTTP_FIELDS_MAX           128u       /* response header fields */
#define RF_HTTP_HEAD_BYTES_MAX       65536u     /* response head */
#define RF_HTTP_URL_SHOWN            120        /* url bytes quoted in error messages */
#define RF_HTTP_BODY_SHOWN           120        /* body bytes quoted in http_status errors */

/* --- per-shard connection pools --------------------------------------------------------------- */

struct hc_key {
    uint8_t family;
    uint8_t pad;
    uint16_t port;
    uint8_t addr[16];
};

struct hc_idle {
    struct hc_key key;
    int fd;
    uint64_t since_ns;
};

/* One per shard, on its own cache lines: only that shard's thread writes it. */
struct hc_shard {
    struct hc_idle *idle; /* oldest first; idle_max entries */
    uint32_t n;
    uint8_t socket_op; /* IORING_OP_SOCKET: 0 not probed yet, 1 usable, 2 not */
    /* Statistics: the owner writes them relaxed, rf__http_stats reads snapshots. */
    _Atomic uint64_t connects, reuses, stale_retries, idle_now;
} RF_ALIGNED_CL;

static void stat_add(_Atomic uint64_t *c, uint64_t v)
{
    /* Relaxed: a counter nobody synchronizes on; only its owner writes it. */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

static void pool_count(struct hc_shard *p)
{
    /* Relaxed: a snapshot for readers on other threads. */
    atomic_store_explicit(&p->idle_now, p->n, memory_order_relaxed);
}

struct hc_state {
    uint32_t nshards;
    uint32_t idle_max;
    uint32_t timeout_ms;
    uint32_t response_max;
    struct hc_shard *shards;
};

static void pool_close_at(struct hc_shard *p, uint32_t i)
{
    close(p->idle[i].fd);
    memmove(&p->idle[i], &p->idle[i + 1], (p->n - i - 1) * sizeof(p->idle[0]));
    p->n--;
    pool_count(p);
}

/* An idle connection to `key`, or -1. Connections idle too long are closed on the way. */
static int pool_take(struct hc_shard *p, const struct hc_key *key)
{
    uint64_t now = rf_now_ns();

    while (p->n > 0 && now - p->idle[0].since_ns > (uint64_t)RF_HTTP_IDLE_MS_MAX * 1000000u)
        pool_close_at(p, 0);
    for (uint32_t i = p->n; i-- > 0;) {
        if (memcmp(&p->idle[i].key, key, sizeof(*key)) == 0) {
            int fd = p->idle[i].fd;
            memmove(&p->idle[i], &p->idle[i + 1], (p->n - i - 1) * sizeof(p->idle[0]));
            p->n--;
            pool_count(p);
            stat_add(&p->reuses, 1);
            return fd;
        }
    }
    return -1;
}

/* Keep `fd` (owned by the pool from now on); past idle_max the oldest is closed. */
static void pool_put(struct hc_state *s, struct hc_shard *p, const struct hc_key *key, int fd)
{
    if (s->idle_max == 0) {
        close(fd);
        return;
    }
    if (p->n == s->idle_max)
        pool_close_at(p, 0);
    p->idle[p->n].key = *key;
    p->idle[p->n].fd = fd;
    p->idle[p->n].since_ns = rf_now_ns();
    p->n++;
    pool_count(p);
}

static void key_of(const struct rf_http_target *t, struct hc_key *k)
{
    memset(k, 0, sizeof(*k));
    k->family = (uint8_t)t->addr.sa.sa_family;
    k->port = t->port;
    if (t->addr.sa.sa_family == AF_INET)
        memcpy(k->addr, &t->addr.in4.sin_addr, 4);
    else
        memcpy(k->addr, &t->addr.in6.sin6_addr, 16);
}

/* --- URLs ------------------------------------------------------------------------------------- */

static int url_host(const char *h, size_t n, struct rf_http_target *t, const char **why)
{
    char tmp[INET6_ADDRSTRLEN + 1];

    if (n == 0)
        return *why = "the url has no host", -EINVAL;
    if (h[0] == '[') {
        if (n < 3 || h[n - 1] != ']' || n - 2 >= sizeof(tmp))
            return *why = "bad IPv6 literal", -EINVAL;
        memcpy(tmp, h + 1, n - 2);
        tmp[n - 2] = '\0';
        t->addr.in6.sin6_family = AF_INET6;
        t->addr_len = sizeof(t->addr.in6);
        if (inet_pton(AF_INET6, tmp, &t->addr.in6.sin6_addr) != 1)
            return *why = "bad IPv6 literal (zone ids are not supported)", -EINVAL;
        return 0;
    }
    t->addr.in4.sin_family = AF_INET;
    t->addr_len = sizeof(t->addr.in4);
    if (n == 9 && strncasecmp(h, "localhost", 9) == 0) {
        t->addr.in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return 0;
    }
    if (n < sizeof(tmp)) {
        memcpy(tmp, h, n);
        tmp[n] = '\0';
        if (inet_pton(AF_INET, tmp, &t->addr.in4.sin_addr) == 1)
            return 0;
    }
    return *why = "the host must be an IPv4 address, an [IPv6] literal or localhost "
                  "(host names are not resolved in v1)",
           -EINVAL;
}

static int url_port(const char *p, size_t n, struct rf_http_target *t, const char **why)
{
    uint32_t v = 0;

    t->port = 80;
    if (n == 0)
        return 0; /* "host:" means the default port (RFC 3986 §3.2.3) */
    if (n > 5)
        return *why = "bad port", -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return *why = "bad port", -EINVAL;
        v = v * 10 + (uint32_t)(p[i] - '0');
    }
    if (v == 0 || v > 65535)
        return *why = "the port must be from 1 to 65535", -EINVAL;
    t->port = (uint16_t)v;
    t->port_explicit = v != 80;
    return 0;
}

int rf__http_url_parse(const char *url, size_t len, struct rf_http_target *t, const char **why)
{
    size_t i = 7, a, hend;
    int rc;

    memset(t, 0, sizeof(*t));
    if (len > RF_HTTP_URL_BYTES_MAX)
        return *why = "the url is too long", -EINVAL;
    if (memchr(url, '\0', len))
        return *why = "the url holds a NUL byte", -EINVAL;
    if (len >= 8 && strncasecmp(url, "https://", 8) == 0)
        return *why = "https is not supported in v1 (http:// only)", -EINVAL;
    if (len < 7 || strncasecmp(url, "http://", 7) != 0)
        return *why = "the url must start with http://", -EINVAL;
    for (a = i; a < len && url[a] != '/' && url[a] != '?' && url[a] != '#'; a++)
        if (url[a] == '@')
            return *why = "user info in the url is not supported", -EINVAL;
    /* authority is url[i..a): host, then an optional :port after the last ']' */
    hend = a;
    for (size_t k = a; k-- > i;) {
        if (url[k] == ']')
            break;
        if (url[k] == ':') {
            hend = k;
            break;
        }
    }
    t->host = url + i;
    t->host_len = (uint32_t)(hend - i);
    rc = url_host(url + i, hend - i, t, why);
    if (rc == 0)
        rc = url_port(url + hend + 1, hend < a ? a - hend - 1 : 0, t, why);
    if (rc < 0)
        return rc;
    if (t->addr.sa.sa_family == AF_INET)
        t->addr.in4.sin_port = htons(t->port);
    else
        t->addr.in6.sin6_port = htons(t->port);
    t->path = url + a;
    for (i = a; i < len && url[i] != '#'; i++)
        ;
    t->path_len = (uint32_t)(i - a);
    t->path_slash = t->path_len == 0 || t->path[0] != '/';
    return 0;
}

/* --- config checks (compile time: templates skipped; run time: everything) -------------------- */

static bool is_template(const json_t *v)
{
    return json_is_string(v) && strstr(json_string_value(v), "{{") != NULL;
}

static bool skip(const json_t *v, bool resolved)
{
    return !resolved && is_template(v);
}

static int check_method(const json_t *v, bool resolved, const char *code, rf_error *err)
{
    if (skip(v, resolved))
        return 0;
    if (!json_is_string(v) || json_string_length(v) > RF_HTTP_METHOD_BYTES_MAX ||
        !rf_hresp_token(json_string_value(v), json_string_length(v)))
        return rf_error_set(err, -EINVAL, false, code,
                            "http: \"method\" must be a token of at most %u characters "
                            "(GET, POST, ...)",
                            RF_HTTP_METHOD_BYTES_MAX);
    return 0;
}

/* `t` (may be NULL) receives the parsed url when the url has no template. */
static int check_url(const json_t *v, bool resolved, struct rf_http_target *t, rf_error *err)
{
    struct rf_http_target tmp;
    const char *s = json_string_value(v), *tpl, *why = NULL;

    if (!s)
        return rf_error_set(err, -EINVAL, false, "bad_url", "http: \"url\" must be a string");
    if (!resolved && (tpl = strstr(s, "{{")) != NULL) {
        size_t k = RF_MIN((size_t)(tpl - s), (size_t)7);
        if (strncasecmp(s, "http://", k) != 0)
            return rf_error_set(err, -EINVAL, false, "bad_url",
                                "http: \"url\" must start with http:// (https is not "
                                "supported in v1)");
        return 0;
    }
    if (rf__http_url_parse(s, json_string_length(v), t ? t : &tmp, &why) < 0)
        return rf_error_set(err, -EINVAL, false, "bad_url", "http: \"url\": %s", why);
    return 0;
}

/* Fields the client writes itself: framing and connection management. */
static bool header_reserved(const char *name, size_t n)
{
    static const char *const names[] = {"content-length", "transfer-encoding", "connection",
                                        "keep-alive",     "upgrade",           "te",
                                        "trailer",        "proxy-connection"};
    for (size_t i = 0; i < RF_ARRAY_LEN(names); i++)
        if (strlen(names[i]) == n && strncasecmp(names[i], name, n) == 0)
            return true;
    return false;
}

static int check_header(const char *name, size_t nlen, const json_t *v, bool resolved,
                        rf_error *err)
{
    if (nlen > RF_HTTP_HEADER_NAME_BYTES_MAX || !rf_hresp_token(name, nlen))
        return rf_error_set(err, -EINVAL, false, "bad_header",
                            "http: header name \"%.*s\" is not a token", rf__utf8_shown(name, 64),
                            name);
    if (header_reserved(name, nlen))
        return rf_error_set(err, -EINVAL, false, "bad_header",
                            "http: header \"%.*s\" is written by the client itself", (int)nlen,
                            name);
    if (skip(v, resolved) || json_is_number(v) || json_is_boolean(v))
        return 0;
    if (!json_is_string(v))
        return rf_error_set(err, -EINVAL, false, "bad_header",
                            "http: header \"%.*s\" must be a string", (int)nlen, name);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n > RF_HTTP_HEADER_VALUE_BYTES_MAX || memchr(s, '\r', n) || memchr(s, '\n', n) ||
        memchr(s, '\0', n))
        return rf_error_set(err, -EINVAL, false, "bad_header",
                            "http: header \"%.*s\" holds CR, LF or NUL, or is over %u bytes",
                            (int)nlen, name, RF_HTTP_HEADER_VALUE_BYTES_MAX);
    return 0;
}

static int check_headers(const json_t *v, bool resolved, const char *code, rf_error *err)
{
    if (!json_is_object(v) || json_object_size(v) > RF_HTTP_HEADERS_MAX)
        return rf_error_set(err, -EINVAL, false, code,
                            "http: \"headers\" must be an object of at most %u string values",
                            RF_HTTP_HEADERS_MAX);
    for (void *it = json_object_iter((json_t *)v); it;
         it = json_object_iter_next((json_t *)v, it)) {
        int rc = check_header(json_object_iter_key(it), json_object_iter_key_len(it),
                              json_object_iter_value(it), resolved, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static bool code_ok(const json_t *v, bool resolved)
{
    return skip(v, resolved) ||
           (json_is_integer(v) && json_integer_value(v) >= 100 && json_integer_value(v) <= 999);
}

static bool range_ok(const json_t *v, bool resolved)
{
    const json_t *lo = json_array_get(v, 0), *hi = json_array_get(v, 1);

    if (skip(v, resolved))
        return true;
    if (!json_is_array(v) || json_array_size(v) != 2 || !code_ok(lo, resolved) ||
        !code_ok(hi, resolved))
        return false;
    return !json_is_integer(lo) || !json_is_integer(hi) ||
           json_integer_value(lo) <= json_integer_value(hi);
}

/* ok_status: 200 | [lo, hi] | [[lo, hi], ...]. A list of bare codes is refused, so that
 * [200, 204] can only mean the range. */
static int check_ok_status(const json_t *v, bool resolved, const char *code, rf_error *err)
{
    size_t n = json_array_size(v);

    if (code_ok(v, resolved) || range_ok(v, resolved))
        return 0;
    if (json_is_array(v) && n >= 1 && n <= RF_HTTP_OK_RANGES_MAX &&
        json_is_array(json_array_get(v, 0))) {
        bool all = true;
        for (size_t i = 0; i < n; i++)
            all = all && range_ok(json_array_get(v, i), resolved);
        if (all)
            return 0;
    }
    return rf_error_set(err, -EINVAL, false, code,
                        "http: \"ok_status\" must be a status (200), a range [lo, hi] or a list "
                        "of at most %u ranges [[200, 299], [404, 404]], codes 100 to 999",
                        RF_HTTP_OK_RANGES_MAX);
}

static int check_config(const json_t *c, bool resolved, struct rf_http_target *t, rf_error *err)
{
    const char *code = resolved ? "invalid_params" : "invalid_config";
    const char *key;
    json_t *v;
    int rc = 0;

    if (!json_is_object(c))
        return rf_error_set(err, -EINVAL, false, code,
                            "http: config must be an object {\"url\": \"http://...\", ...}");
    json_object_foreach((json_t *)c, key, v)
    {
        if (strcmp(key, "method") == 0)
            rc = check_method(v, resolved, code, err);
        else if (strcmp(key, "url") == 0)
            rc = check_url(v, resolved, t, err);
        else if (strcmp(key, "headers") == 0)
            rc = check_headers(v, resolved, code, err);
        else if (strcmp(key, "ok_status") == 0)
            rc = check_ok_status(v, resolved, code, err);
        else if (strcmp(key, "body") != 0)
            rc = rf_error_set(err, -EINVAL, false, code, "http: unknown field \"%s\"", key);
        if (rc < 0)
            return rc;
    }
    if (!json_object_get(c, "url"))
        return rf_error_set(err, -EINVAL, false, code, "http: \"url\" is required");
    return 0;
}

static int http_validate(void *ud, const json_t *config, rf_error *err)
{
    (void)ud;
    return check_config(config, false, NULL, err);
}

/* --- the request ------------------------------------------------------------------------------ */

static int dump_cb(const char *p, size_t n, void *data)
{
    return rf_buf_append(data, p, n) < 0 ? -1 : 0;
}

static int buf_str(struct rf_buf *b, const char *s)
{
    return rf_buf_append(b, s, strlen(s));
}

/* The request target: path and query, with bytes a request line cannot carry encoded. */
static int put_target(struct rf_buf *b, const struct rf_http_target *t)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = t->path_slash ? rf_buf_append(b, "/", 1) : 0;

    for (uint32_t i = 0; i < t->path_len && rc == 0; i++) {
        unsigned char c = (unsigned char)t->path[i];
        if (c <= 0x20 || c >= 0x7f || strchr("\"<>\\^`{|}", c)) {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = rf_buf_append(b, e, 3);
        } else {
            rc = rf_buf_append(b, &t->path[i], 1);
        }
    }
    return rc;
}

static bool has_header(const json_t *headers, const char *name)
{
    for (void *it = json_object_iter((json_t *)headers); it;
         it = json_object_iter_next((json_t *)headers, it))
        if (json_object_iter_key_len(it) == strlen(name) &&
            strcasecmp(json_object_iter_key(it), name) == 0)
            return true;
    return false;
}

/* Host (unless given), User-Agent (unless given) and the node's own headers. */
static int put_headers(struct rf_buf *b, const json_t *headers, const struct rf_http_target *t)
{
    char port[16];
    int rc = 0;

    if (!has_header(headers, "host")) {
        snprintf(port, sizeof(port), ":%u", t->port);
        rc |= buf_str(b, "Host: ");
        rc |= rf_buf_append(b, t->host, t->host_len);
        rc |= t->port_explicit ? buf_str(b, port) : 0;
        rc |= buf_str(b, "\r\n");
    }
    if (!has_header(headers, "user-agent"))
        rc |= buf_str(b, "User-Agent: " RF_HTTP_USER_AGENT "\r\n");
    for (void *it = json_object_iter((json_t *)headers); it && rc == 0;
         it = json_object_iter_next((json_t *)headers, it)) {
        const json_t *v = json_object_iter_value(it);
        rc |= rf_buf_append(b, json_object_iter_key(it), json_object_iter_key_len(it));
        rc |= buf_str(b, ": ");
        if (json_is_string(v))
            rc |= rf_buf_append(b, json_string_value(v), json_string_length(v));
        else
            rc |=
                json_dump_callback(v, dump_cb, b, JSON_COMPACT | JSON_ENCODE_ANY) < 0 ? -ENOMEM : 0;
        rc |= buf_str(b, "\r\n");
    }
    return rc < 0 ? -ENOMEM : 0;
}

/* The body's bytes into `body` and its default Content-Type; NULL type: no body. */
static int body_bytes(const json_t *v, struct rf_buf *body, const char **type)
{
    *type = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        *type = "text/plain; charset=utf-8";
        return rf_buf_append(body, json_string_value(v), json_string_length(v)) < 0 ? -ENOMEM : 0;
    }
    *type = "application/json";
    return json_dump_callback(v, dump_cb, body, JSON_COMPACT | JSON_ENCODE_ANY) < 0 ? -ENOMEM : 0;
}

int rf__http_request_build(const json_t *params, const struct rf_http_target *t, struct rf_buf *b,
                           rf_error *err)
{
    const char *method = json_string_value(json_object_get(params, "method"));
    const json_t *headers = json_object_get(params, "headers");
    struct rf_buf body = {0};
    const char *type;
    char cl[48];
    int rc;

    method = method ? method : "GET";
    rc = body_bytes(json_object_get(params, "body"), &body, &type);
    rc |= buf_str(b, method) | rf_buf_append(b, " ", 1) | put_target(b, t);
    rc |= buf_str(b, " HTTP/1.1\r\n") | put_headers(b, headers, t);
    if (type && !has_header(headers, "content-type"))
        rc |= buf_str(b, "Content-Type: ") | buf_str(b, type) | buf_str(b, "\r\n");
    if (type || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
        strcmp(method, "PATCH") == 0) {
        snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", body.len);
        rc |= buf_str(b, cl);
    }
    rc |= buf_str(b, "Connection: keep-alive\r\n\r\n");
    /* Every step above fails only with -ENOMEM; OR-ing them keeps that. */
    if (rc == 0 && b->len + body.len > RF_HTTP_REQUEST_BYTES_MAX)
        rc = rf_error_set(err, -EMSGSIZE, false, "request_too_large",
                          "http: the request would be %zu bytes, over %u", b->len + body.len,
                          RF_HTTP_REQUEST_BYTES_MAX);
    else if (rc == 0)
        rc = rf_buf_append(b, body.p, body.len);
    else
        rc = -ENOMEM;
    if (rc == -ENOMEM)
        rf_error_set(err, -ENOMEM, true, "overload", "http: out of memory writing the request");
    rf_buf_free(&body);
    return rc;
}

/* --- the attempt ------------------------------------------------------------------------------ */

enum { HC_SOCKET = 1, HC_CONNECT, HC_SEND, HC_RECV };

struct hc_task {
    rf_op io;    /* the one I/O operation in flight */
    rf_op timer; /* the attempt's timeout */
    struct __kernel_timespec ts;
    rf_task *task;
    struct hc_state *s;
    struct hc_shard *pool;
    const char *method, *url; /* borrowed from the params, for messages */
    struct rf_http_target t;
    struct hc_key key;
    struct rf_buf req;
    size_t sent;
    char *buf; /* the response: head, then the body (decoded in place when chunked) */
    uint32_t cap, len;
    uint32_t head_len, body_len;
    uint64_t content_length;
    struct rf_hresp_chunked ch;
    int fd;
    uint16_t status;
    uint8_t phase, framing, interim, inflight;
    bool io_busy, timer_busy, finishing, failed;
    bool reused, got_bytes, head_done, keep_alive, extra, head_req;
    json_t *out;
    rf_error *err; /* owned; set once failed (NULL: no memory for it, report that) */
};

_Static_assert(sizeof(struct hc_task) <= RF_TASK_BYTES_MAX, "hc_task must fit the task data");

/* The failure reported when there was no memory to describe the real one. */
static const rf_error hc_oom_error = {
    .code = "overload",
    .message = "http: out of memory while failing the request",
    .retryable = true,
};

/*
 * Every step below returns 0 when it issued its operation (or needs more bytes) and -1 when
 * it ended the attempt (hc_fail). Until the attempt finishes its timer is in flight, so
 * ending it never completes the task from inside a step: the timer's CQE, or the I/O's,
 * does. A step that returned -1 must still not touch the attempt again.
 */
static void hc_io_cqe(rf_op *op, int res, uint32_t flags);
static int hc_open(struct hc_task *st);

static void hc_maybe_complete(struct hc_task *st)
{
    rf_task *task = st->task;

    if (st->inflight > 0)
        return;
    if (st->fd >= 0)
        close(st->fd);
    rf_buf_free(&st->req);
    rf_free(st->buf);
    if (st->failed) {
        rf_error err = st->err ? *st->err : hc_oom_error;
        rf_free(st->err);
        rf_task_fail(task, &err);
    } else {
        rf_task_succeed(task, st->out);
    }
}

/* A result is in: cancel what is in flight and complete once it all came back. */
static void hc_finish(struct hc_task *st)
{
    st->finishing = true;
    /* Without an SQE for the cancel, shutting the socket down ends a send or recv too. */
    if (st->io_busy && rf_task_cancel_op(st->task, &st->io) < 0 && st->fd >= 0)
        shutdown(st->fd, SHUT_RDWR);
    /* Without one for the timer, it runs out within http_timeout_ms. */
    if (st->timer_busy)
        (void)rf_task_cancel_op(st->task, &st->timer);
    hc_maybe_complete(st);
}

/* Fail the attempt unless a result is in already (the first one wins). Returns -1. */
__attribute__((format(printf, 5, 6))) static int hc_fail(struct hc_task *st, int rc, bool retryable,
                                                         const char *code, const char *fmt, ...)
{
    char msg[RF_ERROR_MESSAGE_MAX];
    va_list ap;

    if (st->finishing)
        return -1;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    st->err = rf_malloc(sizeof(*st->err));
    if (st->err)
        rf_error_set(st->err, rc, retryable, code, "%s %.*s: %s", st->method,
                     rf__utf8_shown(st->url, RF_HTTP_URL_SHOWN), st->url, msg);
    st->failed = true;
    json_decref(st->out);
    st->out = NULL;
    hc_finish(st);
    return -1;
}

static int hc_fail_busy(struct hc_task *st)
{
    return hc_fail(st, -EBUSY, true, "overload", "the submission queue is full");
}

static struct io_uring_sqe *hc_sqe(struct hc_task *st, uint8_t phase)
{
    struct io_uring_sqe *sqe = rf_task_sqe(st->task, &st->io, hc_io_cqe);

    if (!sqe)
        return NULL;
    st->phase = phase;
    st->io_busy = true;
    st->inflight++;
    return sqe;
}

static int hc_connect(struct hc_task *st)
{
    struct io_uring_sqe *sqe;
    int one = 1;

    /* A plain, never-blocking setsockopt: a request written in two segments must not wait
     * for the ACK of the first (Nagle and delayed ACKs). */
    (void)setsockopt(st->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sqe = hc_sqe(st, HC_CONNECT);
    if (!sqe)
        return hc_fail_busy(st);
    io_uring_prep_connect(sqe, st->fd, &st->t.addr.sa, st->t.addr_len);
    return 0;
}

static int hc_send(struct hc_task *st)
{
    struct io_uring_sqe *sqe = hc_sqe(st, HC_SEND);

    if (!sqe)
        return hc_fail_busy(st);
    io_uring_prep_send(sqe, st->fd, st->req.p + st->sent, st->req.len - st->sent, MSG_NOSIGNAL);
    return 0;
}

/* Room for at least one more byte: the buffer doubles up to the response limit. */
static int hc_room(struct hc_task *st)
{
    uint32_t max = st->s->response_max, cap;
    char *p;

    if (st->len < st->cap)
        return 0;
    if (st->cap >= max)
        return -EMSGSIZE;
    if (st->cap == 0)
        cap = RF_MIN(RF_HTTP_BUF_BYTES_INIT, max);
    else
        cap = st->cap > max / 2 ? max : st->cap * 2;
    p = rf_realloc(st->buf, cap);
    if (!p)
        return -ENOMEM;
    st->buf = p;
    st->cap = cap;
    return 0;
}

static int hc_recv(struct hc_task *st)
{
    struct io_uring_sqe *sqe;
    int rc = hc_room(st);

    if (rc == -EMSGSIZE)
        return hc_fail(st, rc, false, "response_too_large",
                       "the response is larger than %u bytes (http_response_bytes_max)",
                       st->s->response_max);
    if (rc < 0)
        return hc_fail(st, rc, true, "overload", "out of memory for the response");
    sqe = hc_sqe(st, HC_RECV);
    if (!sqe)
        return hc_fail_busy(st);
    io_uring_prep_recv(sqe, st->fd, st->buf + st->len, st->cap - st->len, 0);
    return 0;
}

/* A fresh connection: IORING_OP_SOCKET where the kernel has it, else socket(2), which never
 * blocks. The probe runs once per shard. */
static int hc_open(struct hc_task *st)
{
    struct hc_shard *p = st->pool;
    int fd;

    st->reused = false;
    stat_add(&p->connects, 1);
    if (p->socket_op == 0) {
        struct io_uring_probe *pr = io_uring_get_probe_ring(rf_task_ring(st->task));
        p->socket_op = pr && io_uring_opcode_supported(pr, IORING_OP_SOCKET) ? 1 : 2;
        if (pr)
            io_uring_free_probe(pr);
    }
    if (p->socket_op == 1) {
        struct io_uring_sqe *sqe = hc_sqe(st, HC_SOCKET);
        if (!sqe)
            return hc_fail_busy(st);
        io_uring_prep_socket(sqe, st->t.addr.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP,
                             0);
        return 0;
    }
    fd = socket(st->t.addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        return hc_fail(st, -errno, true, "io_error", "socket: %s", rf_strerror(-errno));
    st->fd = fd;
    return hc_connect(st);
}

/* A pooled connection the server closed while it sat idle is not an error: start over, once,
 * on a fresh connection (no response byte came, so the server did not answer it). True when
 * that is what happened; *rc is then the step's result. */
static bool hc_stale(struct hc_task *st, int res, int *rc)
{
    if (!st->reused || st->got_bytes ||
        !(res == 0 || res == -EPIPE || res == -ECONNRESET || res == -ECONNABORTED))
        return false;
    close(st->fd);
    st->fd = -1;
    st->sent = 0;
    st->len = 0;
    stat_add(&st->pool->stale_retries, 1);
    *rc = hc_open(st);
    return true;
}

/* --- the response ----------------------------------------------------------------------------- */

static int hc_parse_head(struct hc_task *st, uint32_t len, struct rf_hresp_field *fields,
                         struct rf_hresp_head *h)
{
    struct rf_hresp_limits lim = {.head_bytes_max = RF_HTTP_HEAD_BYTES_MAX,
                                  .fields_max = RF_HTTP_FIELDS_MAX};

    return rf_hresp_parse_head(st->buf, len, st->head_req ? RF_HRESP_HEAD_REQUEST : 0, &lim, fields,
                               RF_HTTP_FIELDS_MAX, h);
}

/* Make room for a body of known length in one step. */
static int hc_body_room(struct hc_task *st, uint64_t content_length)
{
    uint32_t want;
    char *p;

    if (content_length > st->s->response_max - st->head_len)
        return hc_fail(st, -EMSGSIZE, false, "response_too_large",
                       "Content-Length %llu is over the %u bytes allowed "
                       "(http_response_bytes_max)",
                       (unsigned long long)content_length, st->s->response_max);
    want = st->head_len + (uint32_t)content_length;
    if (want <= st->cap)
        return 0;
    p = rf_realloc(st->buf, want);
    if (!p)
        return hc_fail(st, -ENOMEM, true, "overload", "out of memory for the response");
    st->buf = p;
    st->cap = want;
    return 0;
}

/* The head is in buf[0..len)? 1 parsed, 0 more bytes needed, -1 failed. Interim (1xx)
 * responses are dropped here. */
static int hc_head(struct hc_task *st)
{
    struct rf_hresp_field fields[RF_HTTP_FIELDS_MAX];
    struct rf_hresp_head h;
    int rc;

    for (;;) {
        rc = hc_parse_head(st, st->len, fields, &h);
        if (rc == -2)
            return 0;
        if (rc < 0)
            return hc_fail(st, -EBADMSG, false, "bad_response",
                           "malformed response head (or over %u bytes or %u fields)",
                           RF_HTTP_HEAD_BYTES_MAX, RF_HTTP_FIELDS_MAX);
        if (h.status >= 200)
            break;
        if (h.status == 101 || ++st->interim > RF_HTTP_INTERIM_MAX)
            return hc_fail(st, -EBADMSG, false, "bad_response", "unexpected status %u", h.status);
        memmove(st->buf, st->buf + rc, st->len - (uint32_t)rc);
        st->len -= (uint32_t)rc;
    }
    st->head_done = true;
    st->head_len = (uint32_t)rc;
    st->status = h.status;
    st->framing = h.framing;
    st->keep_alive = h.keep_alive;
    st->content_length = h.content_length;
    st->ch.body_bytes_max = st->s->response_max - st->head_len;
    if (h.framing == RF_HRESP_BODY_LENGTH && hc_body_room(st, h.content_length) < 0)
        return -1;
    return 1;
}

static int hc_chunked(struct hc_task *st)
{
    char *p = st->buf + st->head_len + st->body_len;
    size_t n = st->len - st->head_len - st->body_len, out;
    int rc = rf_hresp_chunked_decode(&st->ch, p, p, n, &out);

    st->body_len += (uint32_t)out;
    st->len = st->head_len + st->body_len;
    if (rc == -2)
        return 0;
    if (rc == -1 && st->ch.too_large)
        return hc_fail(st, -EMSGSIZE, false, "response_too_large",
                       "the chunked body is over the %u bytes allowed (http_response_bytes_max)",
                       st->s->response_max);
    if (rc == -1)
        return hc_fail(st, -EBADMSG, false, "bad_response", "malformed chunked body");
    st->extra = (size_t)rc < n;
    return 1;
}

/* Body bytes after the head: 1 complete, 0 more needed, -1 failed. */
static int hc_body(struct hc_task *st)
{
    uint32_t after = st->len - st->head_len;

    switch (st->framing) {
    case RF_HRESP_BODY_NONE:
        st->extra = after > 0;
        return 1;
    case RF_HRESP_BODY_LENGTH:
        if (after < st->content_length)
            return 0;
        st->body_len = (uint32_t)st->content_length;
        st->extra = after > st->content_length;
        return 1;
    case RF_HRESP_BODY_CLOSE:
        st->body_len = after;
        return 0;
    default:
        return hc_chunked(st);
    }
}

/* A field value as a JSON string: UTF-8 as is, anything else read as ISO-8859-1. */
static json_t *field_string(const char *v, size_t n)
{
    struct rf_buf b = {0};
    json_t *s;

    if (rf_hresp_utf8_valid(v, n))
        return json_stringn_nocheck(v, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        char u[2] = {(char)(0xc0 | c >> 6), (char)(0x80 | (c & 0x3f))};
        if ((c < 0x80 ? rf_buf_append(&b, &v[i], 1) : rf_buf_append(&b, u, 2)) < 0) {
            rf_buf_free(&b);
            return NULL;
        }
    }
    s = json_stringn_nocheck(b.p, b.len);
    rf_buf_free(&b);
    return s;
}

/* Lower-cased names (in place: `base` is the buffer the head was parsed from); repeated
 * fields joined with ", " (RFC 9110 §5.3). NULL when out of memory. */
static json_t *headers_json(char *base, const struct rf_hresp_head *h)
{
    json_t *o = json_object();

    for (uint32_t i = 0; o && i < h->nfields; i++) {
        const struct rf_hresp_field *f = &h->fields[i];
        char *name = base + (f->name - base);
        json_t *prev, *v;
        for (uint32_t k = 0; k < f->name_len; k++)
            name[k] = (char)((name[k] >= 'A' && name[k] <= 'Z') ? name[k] + 32 : name[k]);
        prev = json_object_getn(o, name, f->name_len);
        v = field_string(f->value, f->value_len);
        if (v && prev) {
            json_t *j = json_sprintf("%s, %s", json_string_value(prev), json_string_value(v));
            json_decref(v);
            v = j;
        }
        if (!v || json_object_setn_new_nocheck(o, name, f->name_len, v) < 0) {
            json_decref(o);
            o = NULL;
        }
    }
    return o;
}

/* The body as JSON: parsed when the Content-Type says JSON, else a UTF-8 string. NULL when
 * the attempt failed (bad_json, bad_body) or memory ran out (st->failed not set). */
static json_t *body_json(struct hc_task *st, const struct rf_hresp_head *h)
{
    uint32_t from = 0;
    const struct rf_hresp_field *ct = rf_hresp_field_next(h, "content-type", &from);
    const char *b = st->buf + st->head_len;
    json_error_t je;
    json_t *v;

    if (ct && rf_hresp_is_json_type(ct->value, ct->value_len)) {
        if (st->body_len == 0)
            return json_null();
        v = json_loadb(b, st->body_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (!v)
            hc_fail(st, -EBADMSG, false, "bad_json",
                    "status %u, the %.*s body is not JSON: %s (line %d, column %d)", st->status,
                    (int)RF_MIN(ct->value_len, 64u), ct->value, je.text, je.line, je.column);
        return v;
    }
    if (!rf_hresp_utf8_valid(b, st->body_len)) {
        hc_fail(st, -EBADMSG, false, "bad_body", "status %u, the body is not UTF-8 text (%u bytes)",
                st->status, st->body_len);
        return NULL;
    }
    return json_stringn_nocheck(b, st->body_len);
}

static bool status_in(const json_t *range, int status)
{
    if (json_is_integer(range))
        return json_integer_value(range) == status;
    return json_integer_value(json_array_get(range, 0)) <= status &&
           status <= json_integer_value(json_array_get(range, 1));
}

/* ok_status was checked when the attempt started. */
static bool status_ok(const json_t *ok, int status)
{
    if (!ok)
        return status >= 200 && status <= 299;
    if (json_is_array(ok) && json_is_array(json_array_get(ok, 0))) {
        for (size_t i = 0; i < json_array_size(ok); i++)
            if (status_in(json_array_get(ok, i), status))
                return true;
        return false;
    }
    return status_in(ok, status);
}

/* Bytes of s[0..n) to quote, at most `max`, never splitting a UTF-8 sequence. */
static int shown(const char *s, size_t n, size_t max)
{
    size_t k = RF_MIN(n, max);

    while (k > 0 && k < n && ((unsigned char)s[k] & 0xc0) == 0x80)
        k--;
    return (int)k;
}

static int hc_status_error(struct hc_task *st, const struct rf_hresp_head *h)
{
    const char *b = st->buf + st->head_len;
    int n = rf_hresp_utf8_valid(b, st->body_len) ? shown(b, st->body_len, RF_HTTP_BODY_SHOWN) : 0;

    return hc_fail(st, -EIO, st->status >= 500 || st->status == 429, "http_status",
                   "status %u %.*s%s%.*s", st->status, shown(h->reason, h->reason_len, 64),
                   h->reason, n > 0 ? ": " : "", n, b);
}

/* The whole response is in: the output or the error, and the connection back to the pool. */
static int hc_response_done(struct hc_task *st)
{
    struct rf_hresp_field fields[RF_HTTP_FIELDS_MAX];
    struct rf_hresp_head h;
    const json_t *params = rf_task_call(st->task)->params;
    int rc = hc_parse_head(st, st->head_len, fields, &h);
    json_t *body, *headers;

    RF_ASSERT(rc == (int)st->head_len); /* the same bytes parsed before */
    if (st->keep_alive && !st->extra && st->framing != RF_HRESP_BODY_CLOSE) {
        pool_put(st->s, st->pool, &st->key, st->fd);
        st->fd = -1;
    }
    if (!status_ok(json_object_get(params, "ok_status"), st->status))
        return hc_status_error(st, &h);
    body = body_json(st, &h);
    if (!body)
        return st->failed ? -1 : hc_fail(st, -ENOMEM, true, "overload", "out of memory");
    headers = headers_json(st->buf, &h);
    st->out = json_pack("{s:i, s:o, s:o}", "status", (int)st->status, "headers",
                        headers ? headers : json_null(), "body", body);
    if (!headers || !st->out)
        return hc_fail(st, -ENOMEM, true, "overload", "out of memory");
    hc_finish(st);
    return 0;
}

/* --- completions ------------------------------------------------------------------------------ */

static int hc_on_recv(struct hc_task *st, int res)
{
    int rc;

    if (res < 0 || (res == 0 && !(st->head_done && st->framing == RF_HRESP_BODY_CLOSE))) {
        if (hc_stale(st, res, &rc))
            return rc;
        if (res == 0)
            return hc_fail(st, -EPIPE, true, "io_error",
                           "the connection closed before the response was complete");
        return hc_fail(st, res, true, "io_error", "recv: %s", rf_strerror(res));
    }
    if (res == 0)
        return hc_response_done(st); /* the end of a close-delimited body */
    st->got_bytes = true;
    st->len += (uint32_t)res;
    if (!st->head_done) {
        rc = hc_head(st);
        if (rc <= 0)
            return rc == 0 ? hc_recv(st) : -1;
    }
    rc = hc_body(st);
    if (rc <= 0)
        return rc == 0 ? hc_recv(st) : -1;
    return hc_response_done(st);
}

static int hc_on_io(struct hc_task *st, int res)
{
    int rc;

    switch (st->phase) {
    case HC_SOCKET:
        if (res < 0)
            return hc_fail(st, res, true, "io_error", "socket: %s", rf_strerror(res));
        st->fd = res;
        return hc_connect(st);
    case HC_CONNECT:
        if (res < 0)
            return hc_fail(st, res, true, "connect_failed", "connect: %s", rf_strerror(res));
        return hc_send(st);
    case HC_SEND:
        if (res < 0 && hc_stale(st, res, &rc))
            return rc;
        if (res < 0)
            return hc_fail(st, res, true, "io_error", "send: %s", rf_strerror(res));
        st->sent += (size_t)res;
        return st->sent < st->req.len ? hc_send(st) : hc_recv(st);
    default:
        return hc_on_recv(st, res);
    }
}

static void hc_io_cqe(rf_op *op, int res, uint32_t flags)
{
    struct hc_task *st = rf_container_of(op, struct hc_task, io);

    (void)flags;
    st->io_busy = false;
    st->inflight--;
    if (!st->finishing) {
        (void)hc_on_io(st, res);
        return;
    }
    if (st->phase == HC_SOCKET && res >= 0)
        close(res);
    hc_maybe_complete(st);
}

static void hc_timer_cqe(rf_op *op, int res, uint32_t flags)
{
    struct hc_task *st = rf_container_of(op, struct hc_task, timer);

    (void)flags;
    st->timer_busy = false;
    st->inflight--;
    if (st->finishing)
        hc_maybe_complete(st);
    else if (res == -ETIME)
        hc_fail(st, -ETIMEDOUT, true, "timeout",
                "no complete response within %u ms (http_timeout_ms)", st->s->timeout_ms);
    else
        hc_fail(st, res, true, "io_error", "timer: %s", rf_strerror(res));
}

/* --- the kind --------------------------------------------------------------------------------- */

static int http_start(void *ud, rf_task *task, rf_error *err)
{
    rf_engine *eng = ud;
    struct hc_state *s = eng->http_state;
    struct hc_task *st = rf_task_data(task);
    const rf_call *call = rf_task_call(task);
    struct io_uring_sqe *sqe;
    int rc;

    RF_ASSERT(call->shard < s->nshards);
    st->task = task;
    st->s = s;
    st->pool = &s->shards[call->shard];
    st->fd = -1;
    rc = check_config(call->params, true, &st->t, err);
    if (rc < 0)
        return rc;
    st->method = json_string_value(json_object_get(call->params, "method"));
    st->method = st->method ? st->method : "GET";
    st->url = json_string_value(json_object_get(call->params, "url"));
    st->head_req = strcmp(st->method, "HEAD") == 0;
    key_of(&st->t, &st->key);
    rc = rf__http_request_build(call->params, &st->t, &st->req, err);
    if (rc < 0)
        goto err_req;
    sqe = rf_task_sqe(task, &st->timer, hc_timer_cqe);
    if (!sqe) {
        rc = rf_error_set(err, -EBUSY, true, "overload", "http: the submission queue is full");
        goto err_req;
    }
    st->ts.tv_sec = s->timeout_ms / 1000;
    st->ts.tv_nsec = (long long)(s->timeout_ms % 1000) * 1000000;
    io_uring_prep_timeout(sqe, &st->ts, 0, 0);
    st->timer_busy = true;
    st->inflight = 1;
    /* From here on the attempt ends through its operations, never through a return value. */
    st->fd = pool_take(st->pool, &st->key);
    st->reused = st->fd >= 0;
    (void)(st->reused ? hc_send(st) : hc_open(st));
    return 0;

err_req:
    rf_buf_free(&st->req);
    return rc;
}

static void http_cancel(void *ud, rf_task *task)
{
    (void)ud;
    (void)hc_fail(rf_task_data(task), -ECANCELED, false, "canceled", "canceled");
}

int rf__http_kind_register(rf_engine *eng)
{
    const rf_config *c = &eng->cfg;
    struct hc_state *s = rf_calloc(1, sizeof(*s));
    rf_kind k = {.name = "http",
                 .type = RF_KIND_ASYNC,
                 .ud = eng,
                 .start = http_start,
                 .cancel = http_cancel,
                 .validate = http_validate,
                 .task_bytes = sizeof(struct hc_task)};
    int rc = -ENOMEM;

    if (!s)
        return -ENOMEM;
    /* rf_engine_shards() is not set yet when the built-in kinds register; the configured
     * count (defaults applied) is. */
    s->nshards = c->shards;
    s->idle_max = RF_MIN(c->http_idle_conns_max, RF_HTTP_IDLE_CONNS_LIMIT);
    s->timeout_ms = c->http_timeout_ms;
    s->response_max = RF_MIN(c->http_response_bytes_max, RF_HTTP_RESPONSE_BYTES_LIMIT);
    s->shards = rf_zalloc_aligned((size_t)s->nshards * sizeof(*s->shards), RF_CACHELINE);
    if (!s->shards)
        goto err;
    for (uint32_t i = 0; i < s->nshards; i++) {
        s->shards[i].idle = rf_calloc(s->idle_max ? s->idle_max : 1, sizeof(struct hc_idle));
        if (!s->shards[i].idle)
            goto err;
    }
    eng->http_state = s;
    rc = rf_engine_register_kind(eng, &k);
    if (rc < 0)
        goto err;
    return 0;

err:
    eng->http_state = NULL;
    for (uint32_t i = 0; s->shards && i < s->nshards; i++)
        rf_free(s->shards[i].idle);
    rf_free(s->shards);
    rf_free(s);
    return rc;
}

int rf__http_stats(const rf_engine *eng, uint32_t shard, struct rf_http_stats *out)
{
    const struct hc_state *s = eng ? eng->http_state : NULL;
    struct hc_shard *p;

    if (!s || !out || shard >= s->nshards)
        return -EINVAL;
    p = &s->shards[shard];
    /* Relaxed: racy snapshots of counters only their shard writes. */
    out->connects = atomic_load_explicit(&p->connects, memory_order_relaxed);
    out->reuses = atomic_load_explicit(&p->reuses, memory_order_relaxed);
    out->stale_retries = atomic_load_explicit(&p->stale_retries, memory_order_relaxed);
    out->idle = atomic_load_explicit(&p->idle_now, memory_order_relaxed);
    return 0;
}

int rf__http_use_socket_syscall(rf_engine *eng)
{
    struct hc_state *s = eng ? eng->http_state : NULL;

    if (!s)
        return -EINVAL;
    for (uint32_t i = 0; i < s->nshards; i++)
        s->shards[i].socket_op = 2; /* read by the shard threads after they start */
    return 0;
}

void rf__http_kind_free(rf_engine *eng)
{
    struct hc_state *s = eng ? eng->http_state : NULL;

    if (!s)
        return;
    for (uint32_t i = 0; i < s->nshards; i++) {
        struct hc_shard *p = &s->shards[i];
        for (uint32_t k = 0; k < p->n; k++)
            close(p->idle[k].fd);
        rf_free(p->idle);
    }
    rf_free(s->shards);
    rf_free(s);
    eng->http_state = NULL;
}
