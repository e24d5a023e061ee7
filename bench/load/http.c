/*
 * bench/load/http.c: the HTTP/1.1 response parser of ringflow-load (http.h).
 *
 * A response moves through the states below; rfl_resp_step() performs at most one event's
 * worth of work per call and reports it, so the engine's loop reads
 *     while ((ev = rfl_resp_step(...)) != MORE) { p += used; ... handle ev ... }
 *
 *   HEAD ──(head parsed)──> BODY_LEN | CHUNK_SIZE | BODY_EOF | UPGRADED
 *   BODY_LEN ──(remaining == 0)──> DONE
 *   CHUNK_SIZE ──(size > 0)──> CHUNK_DATA ──> CHUNK_CRLF ──> CHUNK_SIZE
 *   CHUNK_SIZE ──(size == 0)──> TRAILER ──(empty line)──> DONE
 *   BODY_EOF ──(rfl_resp_eof)──> DONE
 *   DONE ──(next step)──> HEAD
 *
 * Heads are scanned only once complete (the first CRLFCRLF inside the head limit), line
 * by line; the fields the client acts on are Content-Length, Transfer-Encoding,
 * Connection, Upgrade and Sec-WebSocket-Accept. Others are checked for shape (a token,
 * a colon, no leading whitespace) and skipped. Interim 1xx responses (not 101) are
 * consumed inside the same call. Every scan is bounded by the limits in http.h, so a
 * misbehaving server cannot make the caller buffer more than those bytes.
 */
#include "bench/load/http.h"

#include <string.h>

#define RFL_MIN_SZ(a, b) ((size_t)(a) < (size_t)(b) ? (size_t)(a) : (size_t)(b))

enum {
    ST_HEAD,
    ST_BODY_LEN,
    ST_CHUNK_SIZE,
    ST_CHUNK_DATA,
    ST_CHUNK_CRLF,
    ST_TRAILER,
    ST_BODY_EOF,
    ST_DONE,
    ST_UPGRADED,
};

void rfl_resp_init(struct rfl_resp *r)
{
    memset(r, 0, sizeof(*r));
    r->state = ST_HEAD;
}

bool rfl_resp_idle(const struct rfl_resp *r)
{
    return r->state == ST_HEAD || r->state == ST_DONE;
}

bool rfl_ieq(const uint8_t *a, size_t n, const char *w)
{
    size_t i = 0;
    for (; i < n && w[i]; i++) {
        uint8_t c = a[i];
        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c + 32);
        if (c != (uint8_t)w[i])
            return false;
    }
    return i == n && w[i] == 0;
}

static bool is_tchar(uint8_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
        return true;
    default:
        return false;
    }
}

static const uint8_t *find_crlf(const uint8_t *p, size_t n)
{
    const uint8_t *e = p + n;
    while (p < e) {
        const uint8_t *cr = memchr(p, '\r', (size_t)(e - p));
        if (!cr || cr + 1 >= e)
            return NULL;
        if (cr[1] == '\n')
            return cr;
        p = cr + 1;
    }
    return NULL;
}

static void trim(const uint8_t **v, size_t *n)
{
    while (*n && ((*v)[0] == ' ' || (*v)[0] == '\t')) {
        (*v)++;
        (*n)--;
    }
    while (*n && ((*v)[*n - 1] == ' ' || (*v)[*n - 1] == '\t'))
        (*n)--;
}

/* Calls fn on each comma-separated, trimmed, non-empty element of v[0..n). */
static void each_token(const uint8_t *v, size_t n, struct rfl_resp_head *h,
                       void (*fn)(const uint8_t *, size_t, struct rfl_resp_head *))
{
    while (n) {
        const uint8_t *c = memchr(v, ',', n);
        size_t len = c ? (size_t)(c - v) : n;
        const uint8_t *t = v;
        size_t tn = len;
        trim(&t, &tn);
        if (tn)
            fn(t, tn, h);
        if (!c)
            break;
        v = c + 1;
        n -= len + 1;
    }
}

static void conn_token(const uint8_t *t, size_t n, struct rfl_resp_head *h)
{
    if (rfl_ieq(t, n, "close"))
        h->close = true;
    else if (rfl_ieq(t, n, "keep-alive") && h->minor == 0)
        h->close = false;
    else if (rfl_ieq(t, n, "upgrade"))
        h->conn_upgrade = true;
}

static void te_token(const uint8_t *t, size_t n, struct rfl_resp_head *h)
{
    /* Only the final coding decides: chunked must be last. */
    h->chunked = rfl_ieq(t, n, "chunked");
}

static int parse_decimal(const uint8_t *v, size_t n, uint64_t *out)
{
    if (n == 0 || n > RFL_RESP_LEN_DIGITS_MAX)
        return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10u + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return 0;
}

/* One field line [p, e) (no CRLF). te: set when Transfer-Encoding was seen. */
static int parse_field(const uint8_t *p, const uint8_t *e, struct rfl_resp_head *h, bool *te)
{
    const uint8_t *colon = memchr(p, ':', (size_t)(e - p));
    if (!colon || colon == p)
        return -1;
    for (const uint8_t *q = p; q < colon; q++)
        if (!is_tchar(*q))
            return -1;
    size_t nn = (size_t)(colon - p);
    const uint8_t *v = colon + 1;
    size_t vn = (size_t)(e - v);
    trim(&v, &vn);
    switch (nn) { /* the length first: most fields are none of these */
    case 14:
        if (!rfl_ieq(p, nn, "content-length"))
            break;
        if (h->has_len || parse_decimal(v, vn, &h->content_length) < 0)
            return -1;
        h->has_len = true;
        break;
    case 17:
        if (rfl_ieq(p, nn, "transfer-encoding")) {
            *te = true;
            each_token(v, vn, h, te_token);
        }
        break;
    case 10:
        if (rfl_ieq(p, nn, "connection"))
            each_token(v, vn, h, conn_token);
        break;
    case 7:
        if (rfl_ieq(p, nn, "upgrade"))
            h->upgrade_ws = rfl_ieq(v, vn, "websocket");
        break;
    case 20:
        if (rfl_ieq(p, nn, "sec-websocket-accept")) {
            h->ws_accept.p = v;
            h->ws_accept.n = vn;
        }
        break;
    default:
        break;
    }
    return 0;
}

/* "HTTP/1.x SSS[ reason]" in [p, e). */
static int parse_status_line(const uint8_t *p, const uint8_t *e, struct rfl_resp_head *h)
{
    if (e - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1'))
        return -1;
    if (p[8] != ' ')
        return -1;
    uint16_t s = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        s = (uint16_t)(s * 10u + (uint16_t)(p[i] - '0'));
    }
    if (s < 100 || (e - p > 12 && p[12] != ' '))
        return -1;
    h->minor = (uint8_t)(p[7] - '0');
    h->status = s;
    h->close = h->minor == 0; /* 1.0 closes unless keep-alive is named */
    return 0;
}

/* Parse the complete head [p, p + len) (len includes the final CRLFCRLF). */
static int parse_head(const uint8_t *p, size_t len, struct rfl_resp_head *h)
{
    memset(h, 0, sizeof(*h));
    const uint8_t *end = p + len - 2; /* the empty line's CRLF */
    const uint8_t *eol = find_crlf(p, (size_t)(end - p));
    if (!eol || parse_status_line(p, eol, h) < 0)
        return -1;
    bool te = false;
    for (const uint8_t *q = eol + 2; q < end;) {
        const uint8_t *e = find_crlf(q, (size_t)(end + 2 - q));
        if (!e || q[0] == ' ' || q[0] == '\t' || parse_field(q, e, h, &te) < 0)
            return -1;
        q = e + 2;
    }
    if (te && h->has_len)
        return -1;
    if (te && !h->chunked)
        h->close = true; /* a body without chunked framing runs to the close */
    return 0;
}

/* Choose the body framing after a final head. */
static void enter_body(struct rfl_resp *r, struct rfl_resp_head *h, bool no_body)
{
    r->close = h->close;
    r->remaining = 0;
    r->trailer_bytes = 0;
    if (h->status == 101) {
        r->state = ST_UPGRADED;
    } else if (no_body || h->status == 204 || h->status == 304) {
        r->state = ST_BODY_LEN;
    } else if (h->chunked) {
        r->state = ST_CHUNK_SIZE;
    } else if (h->has_len) {
        r->state = ST_BODY_LEN;
        r->remaining = h->content_length;
    } else {
        r->state = ST_BODY_EOF;
        r->close = true;
    }
}

static int step_head(struct rfl_resp *r, const uint8_t *p, size_t n, bool no_body, size_t *used,
                     struct rfl_resp_head *head)
{
    size_t off = 0;
    for (;;) {
        size_t scan = RFL_MIN_SZ(n - off, RFL_RESP_HEAD_BYTES_MAX);
        const uint8_t *e = memmem(p + off, scan, "\r\n\r\n", 4);
        if (!e) {
            *used = off;
            return scan >= RFL_RESP_HEAD_BYTES_MAX ? RFL_RESP_ERR : RFL_RESP_MORE;
        }
        size_t len = (size_t)(e + 4 - (p + off));
        if (parse_head(p + off, len, head) < 0)
            return RFL_RESP_ERR;
        off += len;
        if (head->status >= 200 || head->status == 101) {
            enter_body(r, head, no_body);
            *used = off;
            return RFL_RESP_HEAD;
        }
        /* Interim 1xx: skip it and parse the final head that follows. */
    }
}

static int step_chunk_size(struct rfl_resp *r, const uint8_t *p, size_t n, size_t *used)
{
    size_t scan = RFL_MIN_SZ(n, RFL_RESP_CHUNK_LINE_MAX);
    const uint8_t *e = find_crlf(p, scan);
    if (!e)
        return scan >= RFL_RESP_CHUNK_LINE_MAX ? RFL_RESP_ERR : RFL_RESP_MORE;
    uint64_t size = 0;
    size_t i = 0;
    for (; p + i < e; i++) {
        uint8_t c = p[i];
        int d = c >= '0' && c <= '9'                     ? c - '0'
                : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10
                                                         : -1;
        if (d < 0)
            break;
        if (i >= RFL_RESP_CHUNK_DIGITS_MAX)
            return RFL_RESP_ERR;
        size = size * 16u + (uint64_t)d;
    }
    if (i == 0 || (p + i < e && p[i] != ';' && p[i] != ' ' && p[i] != '\t'))
        return RFL_RESP_ERR;
    *used = (size_t)(e + 2 - p);
    r->remaining = size;
    r->state = size ? ST_CHUNK_DATA : ST_TRAILER;
    return RFL_RESP_MORE;
}

static int step_trailer(struct rfl_resp *r, const uint8_t *p, size_t n, size_t *used)
{
    if (n < 2)
        return RFL_RESP_MORE;
    if (p[0] == '\r' && p[1] == '\n') {
        *used = 2;
        r->state = ST_DONE;
        return RFL_RESP_DONE;
    }
    size_t budget = RFL_RESP_HEAD_BYTES_MAX - r->trailer_bytes;
    size_t scan = RFL_MIN_SZ(n, budget);
    const uint8_t *e = find_crlf(p, scan);
    if (!e)
        return scan >= budget ? RFL_RESP_ERR : RFL_RESP_MORE;
    if (p[0] == ' ' || p[0] == '\t' || !memchr(p, ':', (size_t)(e - p)))
        return RFL_RESP_ERR;
    *used = (size_t)(e + 2 - p);
    r->trailer_bytes += (uint32_t)*used;
    return RFL_RESP_MORE;
}

/* Body bytes under a length (Content-Length or the current chunk). */
static int step_counted(struct rfl_resp *r, const uint8_t *p, size_t n, size_t *used,
                        struct rfl_span *body)
{
    if (r->remaining == 0) {
        if (r->state == ST_CHUNK_DATA) {
            r->state = ST_CHUNK_CRLF;
            return RFL_RESP_MORE;
        }
        r->state = ST_DONE;
        return RFL_RESP_DONE;
    }
    if (n == 0)
        return RFL_RESP_MORE;
    size_t k = n < r->remaining ? n : (size_t)r->remaining;
    r->remaining -= k;
    body->p = p;
    body->n = k;
    *used = k;
    if (r->remaining == 0 && r->state == ST_CHUNK_DATA)
        r->state = ST_CHUNK_CRLF;
    return RFL_RESP_BODY;
}

int rfl_resp_step(struct rfl_resp *r, const uint8_t *p, size_t n, bool no_body, size_t *used,
                  struct rfl_resp_head *head, struct rfl_span *body)
{
    *used = 0;
    for (;;) {
        size_t u = 0;
        int ev;
        switch (r->state) {
        case ST_DONE:
            r->state = ST_HEAD;
            /* fallthrough */
        case ST_HEAD:
            ev = step_head(r, p, n, no_body, &u, head);
            break;
        case ST_BODY_LEN:
        case ST_CHUNK_DATA:
            ev = step_counted(r, p, n, &u, body);
            break;
        case ST_CHUNK_SIZE:
            ev = step_chunk_size(r, p, n, &u);
            break;
        case ST_CHUNK_CRLF:
            if (n < 2)
                return RFL_RESP_MORE;
            if (p[0] != '\r' || p[1] != '\n')
                return RFL_RESP_ERR;
            u = 2;
            r->state = ST_CHUNK_SIZE;
            ev = RFL_RESP_MORE;
            break;
        case ST_TRAILER:
            ev = step_trailer(r, p, n, &u);
            break;
        case ST_BODY_EOF:
            if (n == 0)
                return RFL_RESP_MORE;
            body->p = p;
            body->n = n;
            *used += n;
            return RFL_RESP_BODY;
        default:
            return RFL_RESP_ERR;
        }
        if (ev == RFL_RESP_ERR)
            return ev;
        *used += u;
        p += u;
        n -= u;
        /* Framing consumed without an event: keep going while it made progress. */
        if (ev != RFL_RESP_MORE || u == 0)
            return ev;
    }
}

int rfl_resp_eof(struct rfl_resp *r)
{
    if (r->state == ST_BODY_EOF) {
        r->state = ST_DONE;
        return RFL_RESP_DONE;
    }
    return rfl_resp_idle(r) ? RFL_RESP_MORE : RFL_RESP_ERR;
}
