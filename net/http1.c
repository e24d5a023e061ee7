/*
 * net/http1.c: HTTP/1.1 request heads and chunked bodies, parsed from bytes (sans I/O).
 *
 * rf_http_parse_request() makes one pass over the head. Each step scans a run of bytes
 * of one class (token, target, field value) with a table lookup or, on x86-64, 16 bytes
 * at a time with SSE2, and stops at the first byte that ends the run; the byte that
 * stopped it decides what comes next. Every scan is bounded by a window: the bytes
 * present, cut at the limit that applies (line_bytes_max for the request line,
 * header_bytes_max for the head). A scan that runs into the window's end returns -2 when
 * the window was the end of the input and the limit's status when it was the limit, so
 * a peer trickling an endless line is refused as soon as it passes the limit, and the
 * parser never looks at a byte past buf + len nor at more than the limits' worth.
 *
 * Field lines are checked as they complete, in order: syntax first, then the framing
 * fields (Host, Content-Length, Transfer-Encoding, Connection, Expect) are recognised
 * by length and a case-insensitive compare and folded into a small struct head. What
 * needs the whole head (Host missing, Content-Length with Transfer-Encoding, the final
 * coding, Expect) is decided after the empty line. Because each decision depends only
 * on bytes before the point where it is made, any prefix of an input gives -2 or the
 * same answer as the whole input: the server may call again with more bytes and never
 * sees a different verdict.
 *
 * The chunked decoder is a byte-wise state machine (one byte of framing at a time, chunk
 * data moved in blocks with memmove), so splitting its input anywhere gives the same
 * result. It writes data at or before the byte it reads, which makes in-place decoding
 * safe. Callers: net/server.c (both), fuzz/http1.c, tests/net/test_http1.c.
 */
#include "engine/rf.h"

#include "net/http1.h"

#include <limits.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* --- byte classes ------------------------------------------------------------------------ */

enum {
    C_TOKEN = 1,  /* tchar (RFC 9110 §5.6.2) */
    C_VALUE = 2,  /* field-vchar, SP, HTAB, obs-text: allowed inside a field value */
    C_TARGET = 4, /* visible ASCII except '#': allowed in a request-target */
    C_HOST = 8,   /* unreserved, sub-delims, '%', ':', '[', ']': allowed in uri-host[:port] */
    C_HEX = 16,   /* HEXDIG */
};

static const uint8_t ctab[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  2,  0,  0,  0,  0,  0,  0,  /* 00 */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 10 */
    2,  15, 6,  3,  15, 15, 15, 15, 14, 14, 15, 15, 14, 15, 15, 6,  /* 20 */
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 14, 14, 6,  14, 6,  6,  /* 30 */
    6,  31, 31, 31, 31, 31, 31, 15, 15, 15, 15, 15, 15, 15, 15, 15, /* 40 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 6,  14, 7,  15, /* 50 */
    7,  31, 31, 31, 31, 31, 31, 15, 15, 15, 15, 15, 15, 15, 15, 15, /* 60 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 6,  7,  6,  15, 0,  /* 70 */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 80 */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 90 */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* a0 */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* b0 */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* c0 */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* d0 */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* e0 */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* f0 */
};

#define IS(c, cls) (ctab[(uint8_t)(c)] & (cls))
#define IS_OWS(c)  ((c) == ' ' || (c) == '\t')

/* The head window is capped so that head lengths and leading CRLFs always fit an int. */
#define HEAD_BYTES_CAP ((uint32_t)INT_MAX - 8u)
/* Leading empty lines (CRLF) skipped before the request line (RFC 9112 §2.2). */
#define LEADING_CRLF_MAX 2

static inline char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

static bool ieq_n(const char *a, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ascii_lower(a[i]) != ascii_lower(lit[i]))
            return false;
    return true;
}

bool rf_http_slice_ieq(struct rf_slice s, const char *lit)
{
    size_t n = strlen(lit);

    return s.n == n && ieq_n(s.p, lit, n);
}

/* First byte of [p, end) that is a CTL or DEL (HTAB included: the caller steps over it). */
static inline const char *scan_value(const char *p, const char *end)
{
#ifdef __SSE2__
    const __m128i flip = _mm_set1_epi8((char)0x80);
    const __m128i below = _mm_set1_epi8((char)(0x20 ^ 0x80));
    const __m128i del = _mm_set1_epi8(0x7f);

    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* unsigned v < 0x20, as a signed compare after flipping the top bit */
        __m128i ctl = _mm_cmplt_epi8(_mm_xor_si128(v, flip), below);
        int m = _mm_movemask_epi8(_mm_or_si128(ctl, _mm_cmpeq_epi8(v, del)));

        if (m)
            return p + __builtin_ctz((unsigned)m);
        p += 16;
    }
#endif
    while (p < end && (uint8_t)*p >= 0x20 && *p != 0x7f)
        p++;
    return p;
}

/* First byte of [p, end) outside 0x21-0x7E, or a '#'. */
static inline const char *scan_target(const char *p, const char *end)
{
#ifdef __SSE2__
    const __m128i shift = _mm_set1_epi8(0x5f); /* 0x21..0x7E -> 0x80..0xDD (-128..-35) */
    const __m128i top = _mm_set1_epi8(-35);
    const __m128i hash = _mm_set1_epi8('#');

    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i out = _mm_cmpgt_epi8(_mm_add_epi8(v, shift), top);
        int m = _mm_movemask_epi8(_mm_or_si128(out, _mm_cmpeq_epi8(v, hash)));

        if (m)
            return p + __builtin_ctz((unsigned)m);
        p += 16;
    }
#endif
    while (p < end && IS(*p, C_TARGET))
        p++;
    return p;
}

static inline const char *scan_token(const char *p, const char *end)
{
    while (p < end && IS(*p, C_TOKEN))
        p++;
    return p;
}

void rf_http_limits_default(struct rf_http_limits *lim)
{
    lim->line_bytes_max = RF_HTTP_LINE_BYTES_DEFAULT;
    lim->header_bytes_max = RF_HTTP_HEADER_BYTES_DEFAULT;
    lim->headers_max = RF_HTTP_HEADERS_DEFAULT;
}

/* --- the request head ------------------------------------------------------------------- */

/* Parse state that is not part of the result. */
struct head {
    const char *start; /* the first byte of the method */
    size_t avail;      /* bytes from start to the end of the input */
    uint32_t line_max, head_max, fields_max;
    bool host_seen, cl_seen, te_seen, chunked_seen, chunked_dup, last_chunked, other_coding;
    bool conn_close, conn_keep_alive, expect_bad;
};

#define FAIL(st)                                                                                   \
    do {                                                                                           \
        *status = (st);                                                                            \
        return -1;                                                                                 \
    } while (0)

/* Skip up to LEADING_CRLF_MAX empty lines; a further one, or a bare CR/LF, is a 400. */
static int skip_empty_lines(const char *buf, size_t len, size_t *off, int *status)
{
    size_t o = 0;

    for (int k = 0; k <= LEADING_CRLF_MAX; k++) {
        if (o >= len)
            return -2;
        if (buf[o] == '\n')
            FAIL(400);
        if (buf[o] != '\r')
            break;
        if (k == LEADING_CRLF_MAX)
            FAIL(400);
        if (o + 1 >= len)
            return -2;
        if (buf[o + 1] != '\n')
            FAIL(400);
        o += 2;
    }
    *off = o;
    return 0;
}

static enum rf_http_method method_of(const char *m, uint32_t n)
{
    switch (n) {
    case 3:
        if (memcmp(m, "GET", 3) == 0)
            return RF_HTTP_GET;
        if (memcmp(m, "PUT", 3) == 0)
            return RF_HTTP_PUT;
        break;
    case 4:
        if (memcmp(m, "POST", 4) == 0)
            return RF_HTTP_POST;
        if (memcmp(m, "HEAD", 4) == 0)
            return RF_HTTP_HEAD;
        break;
    case 5:
        if (memcmp(m, "PATCH", 5) == 0)
            return RF_HTTP_PATCH;
        break;
    case 6:
        if (memcmp(m, "DELETE", 6) == 0)
            return RF_HTTP_DELETE;
        break;
    case 7:
        if (memcmp(m, "OPTIONS", 7) == 0)
            return RF_HTTP_OPTIONS;
        break;
    }
    return RF_HTTP_OTHER;
}

/* path = [p, p+n) up to the first '?', query after it. */
static void split_path_query(struct rf_http_req *req, const char *p, uint32_t n)
{
    const char *q = memchr(p, '?', n);

    if (!q) {
        req->path = (struct rf_slice){p, n};
        req->query = (struct rf_slice){p + n, 0};
        return;
    }
    req->path = (struct rf_slice){p, (uint32_t)(q - p)};
    req->query = (struct rf_slice){q + 1, (uint32_t)(n - (uint32_t)(q - p) - 1)};
}

static bool all_host_chars(const char *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (!IS(p[i], C_HOST))
            return false;
    return true;
}

/* The request-target's form (RFC 9112 §3.2): origin-form, "*" for OPTIONS, or absolute-form
 * with an http/https scheme, a non-empty authority without userinfo. Returns 0 or 400. */
static int split_target(struct rf_http_req *req)
{
    static const char root[] = "/";
    const char *t = req->target.p, *e = t + req->target.n, *a, *q;
    uint32_t skip = 0;

    req->authority = (struct rf_slice){t, 0};
    if (t[0] == '/') {
        split_path_query(req, t, req->target.n);
        return 0;
    }
    if (req->target.n == 1 && t[0] == '*') {
        if (req->method != RF_HTTP_OPTIONS)
            return 400;
        req->path = req->target;
        req->query = (struct rf_slice){e, 0};
        return 0;
    }
    if (req->target.n >= 7 && ieq_n(t, "http://", 7))
        skip = 7;
    else if (req->target.n >= 8 && ieq_n(t, "https://", 8))
        skip = 8;
    if (!skip)
        return 400;
    a = t + skip;
    for (q = a; q < e && *q != '/' && *q != '?';)
        q++;
    if (q == a || !all_host_chars(a, (uint32_t)(q - a)))
        return 400; /* empty host, userinfo ('@'), or a byte no authority holds */
    req->authority = (struct rf_slice){a, (uint32_t)(q - a)};
    req->host = req->authority; /* RFC 9112 §3.2.2: it replaces the Host field */
    if (q < e && *q == '/') {
        split_path_query(req, q, (uint32_t)(e - q));
        return 0;
    }
    req->path = (struct rf_slice){root, 1};
    req->query = q < e ? (struct rf_slice){q + 1, (uint32_t)(e - q - 1)} : (struct rf_slice){e, 0};
    return 0;
}

/* "HTTP/" DIGIT "." DIGIT CRLF at v (10 bytes present): 0, 400 or 505. */
static int check_version(const char *v, struct rf_http_req *req)
{
    if (memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[8] != '\r' || v[9] != '\n')
        return 400;
    if (v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9')
        return 400;
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return 505;
    req->minor = (uint8_t)(v[7] - '0');
    return 0;
}

/* method SP request-target SP HTTP-version CRLF; *next set past the CRLF. */
static int parse_request_line(struct head *h, struct rf_http_req *req, const char **next,
                              int *status)
{
    const char *s = h->start, *p, *t, *end;
    int st;

    end = s + RF_MIN(h->avail, (size_t)RF_MIN(h->line_max, h->head_max));
    p = scan_token(s, end);
    if (p == end)
        goto more;
    if (*p != ' ' || p == s)
        FAIL(400);
    req->method_s = (struct rf_slice){s, (uint32_t)(p - s)};
    req->method = method_of(s, req->method_s.n);
    t = ++p;
    p = scan_target(p, end);
    if (p == end)
        goto more;
    if (*p != ' ' || p == t)
        FAIL(400);
    req->target = (struct rf_slice){t, (uint32_t)(p - t)};
    p++;
    if (end - p < 10)
        goto more;
    if ((st = check_version(p, req)) != 0)
        FAIL(st);
    if ((st = split_target(req)) != 0)
        FAIL(st);
    *next = p + 10;
    return 0;
more:
    if (h->avail >= h->line_max && h->line_max <= h->head_max)
        FAIL(414);
    if (h->avail >= h->head_max)
        FAIL(431);
    return -2;
}

/* Transfer-Encoding elements, folded in order into h. Returns 0 or 400. */
static int on_transfer_encoding(struct head *h, struct rf_slice v)
{
    const char *p = v.p, *e = v.p + v.n, *a;
    bool chunked;

    h->te_seen = true;
    for (;;) {
        while (p < e && IS_OWS(*p))
            p++;
        if (p == e)
            return 0;
        if (*p == ',') { /* an empty element: ignored (RFC 9110 §5.6.1.2) */
            p++;
            continue;
        }
        a = p;
        p = scan_token(p, e);
        if (p == a)
            return 400;
        chunked = p - a == 7 && ieq_n(a, "chunked", 7);
        while (p < e && IS_OWS(*p))
            p++;
        if (p < e && *p == ';') { /* transfer-parameters: chunked takes none */
            if (chunked)
                return 400;
            p = memchr(p, ',', (size_t)(e - p));
            p = p ? p : e;
        } else if (p < e && *p != ',') {
            return 400;
        }
        h->chunked_dup |= chunked && h->chunked_seen;
        h->chunked_seen |= chunked;
        h->other_coding |= !chunked;
        h->last_chunked = chunked;
        if (p < e)
            p++;
    }
}

static int on_content_length(struct head *h, struct rf_http_req *req, struct rf_slice v)
{
    int64_t n = 0;

    if (h->cl_seen || v.n == 0 || v.n > RF_HTTP_CONTENT_LENGTH_DIGITS_MAX)
        return 400;
    for (uint32_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return 400;
        n = n * 10 + (v.p[i] - '0');
    }
    h->cl_seen = true;
    req->content_length = n;
    return 0;
}

/* Fold one complete field line into h/req: 0 or the status of the error. */
static int on_field(struct head *h, struct rf_http_req *req, const struct rf_http_header *f)
{
    struct rf_slice v = f->value;

    switch (f->name.n) {
    case 4:
        if (!ieq_n(f->name.p, "host", 4))
            return 0;
        if (h->host_seen || !all_host_chars(v.p, v.n))
            return 400;
        h->host_seen = true;
        if (req->authority.n == 0)
            req->host = v;
        return 0;
    case 6:
        if (ieq_n(f->name.p, "expect", 6)) {
            if (rf_http_slice_ieq(v, "100-continue"))
                req->expect_continue = req->minor == 1;
            else
                h->expect_bad = true;
        }
        return 0;
    case 10:
        if (ieq_n(f->name.p, "connection", 10)) {
            h->conn_close |= rf_http_has_token(v, "close");
            h->conn_keep_alive |= rf_http_has_token(v, "keep-alive");
            req->conn_upgrade |= rf_http_has_token(v, "upgrade");
        }
        return 0;
    case 14:
        return ieq_n(f->name.p, "content-length", 14) ? on_content_length(h, req, v) : 0;
    case 17:
        if (!ieq_n(f->name.p, "transfer-encoding", 17))
            return 0;
        return req->minor == 0 ? 400 : on_transfer_encoding(h, v);
    }
    return 0;
}

/* Field lines up to and including the empty line; *next set past it. */
static int parse_fields(struct head *h, struct rf_http_req *req, const char *p, const char **next,
                        int *status)
{
    const char *end = h->start + RF_MIN(h->avail, (size_t)h->head_max);
    const char *name, *v, *ve, *q;
    struct rf_http_header *f;
    int st;

    for (;;) {
        if (p == end)
            goto more;
        if (*p == '\r') {
            if (end - p < 2)
                goto more;
            if (p[1] != '\n')
                FAIL(400);
            *next = p + 2;
            return 0;
        }
        if (req->nheaders == h->fields_max)
            FAIL(431);
        name = p;
        p = scan_token(p, end);
        if (p == end)
            goto more;
        if (*p != ':' || p == name)
            FAIL(400); /* obs-fold, space before the colon, a CTL, an empty name */
        for (q = p + 1; q < end && IS_OWS(*q);)
            q++;
        v = q;
        for (;;) {
            q = scan_value(q, end);
            if (q == end)
                goto more;
            if (*q != '\t')
                break;
            q++;
        }
        if (*q != '\r')
            FAIL(400);
        if (end - q < 2)
            goto more;
        if (q[1] != '\n')
            FAIL(400);
        for (ve = q; ve > v && IS_OWS(ve[-1]);)
            ve--;
        f = &req->headers[req->nheaders++];
        f->name = (struct rf_slice){name, (uint32_t)(p - name)};
        f->value = (struct rf_slice){v, (uint32_t)(ve - v)};
        if ((st = on_field(h, req, f)) != 0)
            FAIL(st);
        p = q + 2;
    }
more:
    if (h->avail >= h->head_max)
        FAIL(431);
    return -2;
}

/* The checks that need the whole head: 0 or the status. */
static int finish_head(struct head *h, struct rf_http_req *req)
{
    if (req->minor == 1 && !h->host_seen)
        return 400;
    if (h->cl_seen && h->te_seen)
        return 400;
    if (h->te_seen) {
        if (h->chunked_dup || !h->last_chunked)
            return 400;
        if (h->other_coding)
            return 501;
        req->chunked = true;
    }
    if (h->expect_bad)
        return 417;
    if (req->minor == 1)
        req->keep_alive = !h->conn_close;
    else
        req->keep_alive = h->conn_keep_alive && !h->conn_close;
    return 0;
}

int rf_http_parse_request(const char *buf, size_t len, const struct rf_http_limits *lim,
                          struct rf_http_req *req, struct rf_http_header *hdrs, uint32_t hdrs_cap,
                          int *status)
{
    struct rf_http_limits def;
    struct head h = {0};
    const char *line_end, *head_end;
    size_t off;
    int rc, st;

    if (!lim) {
        rf_http_limits_default(&def);
        lim = &def;
    }
    if ((rc = skip_empty_lines(buf, len, &off, status)) != 0)
        return rc;
    h.start = buf + off;
    h.avail = len - off;
    h.line_max = lim->line_bytes_max;
    h.head_max = RF_MIN(lim->header_bytes_max, HEAD_BYTES_CAP);
    h.fields_max = RF_MIN(lim->headers_max, hdrs_cap);
    memset(req, 0, sizeof(*req));
    req->headers = hdrs;
    req->content_length = -1;
    if ((rc = parse_request_line(&h, req, &line_end, status)) != 0)
        return rc;
    if ((rc = parse_fields(&h, req, line_end, &head_end, status)) != 0)
        return rc;
    if ((st = finish_head(&h, req)) != 0)
        FAIL(st);
    req->head_bytes = (uint32_t)(head_end - buf);
    return (int)req->head_bytes;
}

const struct rf_http_header *rf_http_header_next(const struct rf_http_req *req, const char *name,
                                                 uint32_t *from)
{
    for (uint32_t i = *from; i < req->nheaders; i++) {
        if (rf_http_slice_ieq(req->headers[i].name, name)) {
            *from = i + 1;
            return &req->headers[i];
        }
    }
    return NULL;
}

const struct rf_http_header *rf_http_header_get(const struct rf_http_req *req, const char *name)
{
    uint32_t from = 0;

    return rf_http_header_next(req, name, &from);
}

bool rf_http_has_token(struct rf_slice v, const char *token)
{
    const char *p = v.p, *e = v.p + v.n;
    size_t tn = strlen(token);

    while (p < e) {
        const char *c = memchr(p, ',', (size_t)(e - p)), *a = p, *b = c ? c : e;

        while (a < b && IS_OWS(*a))
            a++;
        while (b > a && IS_OWS(b[-1]))
            b--;
        if (b > a && (size_t)(b - a) == tn && ieq_n(a, token, tn))
            return true;
        if (!c)
            break;
        p = c + 1;
    }
    return false;
}

/* --- chunked bodies ---------------------------------------------------------------------- */

enum chunk_state {
    S_SIZE0,   /* the first hex digit of a chunk size */
    S_SIZE,    /* more digits, an extension, or CR */
    S_EXT,     /* chunk extensions, ext_state says where */
    S_SIZE_LF, /* LF ending a chunk-size line */
    S_DATA,    /* chunk_left data bytes */
    S_DATA_CR, /* CRLF after the data */
    S_DATA_LF,
    S_TR_LINE, /* start of a trailer line (or of the final CRLF) */
    S_TR_NAME,
    S_TR_VALUE,
    S_TR_VALUE_LF,
    S_TR_END_LF, /* LF of the final CRLF */
    S_DONE,
    S_FAILED,
};

/* chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ( token / quoted-string ) ] ) */
enum ext_state {
    X_BWS,      /* whitespace before ';' */
    X_NAME_BWS, /* after ';', before the name */
    X_NAME,
    X_NAME_WS, /* whitespace after the name: '=' or ';' next */
    X_VAL_BWS, /* after '=' */
    X_VAL_TOK,
    X_QS,
    X_QS_ESC,
    X_AFTER_QS,
};

/* Done with a framing byte: 0 go on, 1 the body is complete, else the error status. */
#define CH_MORE 0
#define CH_DONE 1

void rf_http_chunked_init(struct rf_http_chunked *d, uint64_t body_bytes_max,
                          const struct rf_http_limits *lim)
{
    struct rf_http_limits def;

    if (!lim) {
        rf_http_limits_default(&def);
        lim = &def;
    }
    memset(d, 0, sizeof(*d));
    d->body_bytes_max = body_bytes_max;
    d->trailer_bytes_max = lim->header_bytes_max;
    d->trailer_fields_max = lim->headers_max;
    d->state = S_SIZE0;
}

/* Move to a state and go on (for the one-line transitions below). */
static inline int to_state(struct rf_http_chunked *d, uint8_t state)
{
    d->state = state;
    return CH_MORE;
}

static inline int to_ext(struct rf_http_chunked *d, uint8_t ext_state)
{
    d->ext_state = ext_state;
    return CH_MORE;
}

static int hex_value(uint8_t c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

static int size_digit(struct rf_http_chunked *d, uint8_t c)
{
    if (++d->digits > RF_HTTP_CHUNK_SIZE_DIGITS_MAX)
        return 400;
    d->chunk_left = d->chunk_left << 4 | (uint64_t)hex_value(c);
    if (d->chunk_left > d->body_bytes_max - d->body_bytes)
        return 413; /* announced: refuse before the data arrives */
    return CH_MORE;
}

static int ext_next(struct rf_http_chunked *d, uint8_t c, bool ws, bool tok)
{
    switch (d->ext_state) {
    case X_BWS:
        return ws ? CH_MORE : c == ';' ? to_ext(d, X_NAME_BWS) : 400;
    case X_NAME_BWS:
        return ws ? CH_MORE : tok ? to_ext(d, X_NAME) : 400;
    case X_NAME:
    case X_NAME_WS:
        if (tok && d->ext_state == X_NAME)
            return CH_MORE;
        if (ws)
            return to_ext(d, X_NAME_WS);
        if (c == '=')
            return to_ext(d, X_VAL_BWS);
        return c == ';' ? to_ext(d, X_NAME_BWS) : 400;
    case X_VAL_BWS:
        if (ws)
            return CH_MORE;
        if (c == '"')
            return to_ext(d, X_QS);
        return tok ? to_ext(d, X_VAL_TOK) : 400;
    case X_VAL_TOK:
    case X_AFTER_QS:
        if (tok && d->ext_state == X_VAL_TOK)
            return CH_MORE;
        if (ws)
            return to_ext(d, X_BWS);
        return c == ';' ? to_ext(d, X_NAME_BWS) : 400;
    case X_QS:
        if (c == '"')
            return to_ext(d, X_AFTER_QS);
        if (c == '\\')
            return to_ext(d, X_QS_ESC);
        return IS(c, C_VALUE) ? CH_MORE : 400;
    case X_QS_ESC:
        return IS(c, C_VALUE) ? to_ext(d, X_QS) : 400;
    }
    return 400;
}

/* One byte of a chunk extension. A CR ends the line where a complete extension ends. */
static int ext_byte(struct rf_http_chunked *d, uint8_t c)
{
    if (c == '\r') {
        if (d->ext_state != X_NAME && d->ext_state != X_VAL_TOK && d->ext_state != X_AFTER_QS)
            return 400;
        d->state = S_SIZE_LF;
        return CH_MORE;
    }
    if (++d->ext_bytes > RF_HTTP_CHUNK_EXT_BYTES_MAX)
        return 400;
    return ext_next(d, c, IS_OWS(c), IS(c, C_TOKEN) != 0);
}

/* One byte of the trailer section: field lines (syntax-checked, dropped) and CRLF. */
static int trailer_byte(struct rf_http_chunked *d, uint8_t c)
{
    if (++d->trailer_bytes > d->trailer_bytes_max)
        return 400;
    switch (d->state) {
    case S_TR_LINE:
        if (c == '\r')
            return to_state(d, S_TR_END_LF);
        if (!IS(c, C_TOKEN) || ++d->trailer_fields > d->trailer_fields_max)
            return 400;
        return to_state(d, S_TR_NAME);
    case S_TR_NAME:
        if (IS(c, C_TOKEN))
            return CH_MORE;
        return c == ':' ? to_state(d, S_TR_VALUE) : 400;
    case S_TR_VALUE:
        if (c == '\r')
            return to_state(d, S_TR_VALUE_LF);
        return IS(c, C_VALUE) ? CH_MORE : 400;
    case S_TR_VALUE_LF:
        return c == '\n' ? to_state(d, S_TR_LINE) : 400;
    case S_TR_END_LF:
        if (c != '\n')
            return 400;
        d->state = S_DONE;
        return CH_DONE;
    }
    return 400;
}

/* One framing byte (anything but chunk data). */
static int chunk_byte(struct rf_http_chunked *d, uint8_t c)
{
    switch (d->state) {
    case S_SIZE0:
        if (!IS(c, C_HEX))
            return 400; /* empty, signed or garbage size */
        d->chunk_left = 0;
        d->digits = 0;
        d->ext_bytes = 0;
        d->state = S_SIZE;
        return size_digit(d, c);
    case S_SIZE:
        if (IS(c, C_HEX))
            return size_digit(d, c);
        if (c == '\r')
            return to_state(d, S_SIZE_LF);
        d->state = S_EXT;
        d->ext_state = X_BWS;
        return ext_byte(d, c);
    case S_EXT:
        return ext_byte(d, c);
    case S_SIZE_LF:
        if (c != '\n')
            return 400;
        if (d->chunk_left == 0)
            return to_state(d, S_TR_LINE);
        d->body_bytes += d->chunk_left;
        return to_state(d, S_DATA);
    case S_DATA_CR:
        return c == '\r' ? to_state(d, S_DATA_LF) : 400;
    case S_DATA_LF:
        return c == '\n' ? to_state(d, S_SIZE0) : 400;
    }
    return trailer_byte(d, c);
}

int rf_http_chunked_decode(struct rf_http_chunked *d, char *dst, const char *src, size_t len,
                           size_t *dst_len, int *status)
{
    size_t i = 0, out = 0;
    int st;

    RF_ASSERT(len <= INT_MAX);
    RF_ASSERT(d->state != S_DONE);
    *dst_len = 0;
    if (d->state == S_FAILED)
        FAIL(d->status);
    while (i < len) {
        if (d->state == S_DATA) {
            size_t n = (size_t)RF_MIN((uint64_t)(len - i), d->chunk_left);

            if (dst + out != src + i)
                memmove(dst + out, src + i, n);
            out += n;
            i += n;
            d->chunk_left -= n;
            if (d->chunk_left == 0)
                d->state = S_DATA_CR;
            continue;
        }
        st = chunk_byte(d, (uint8_t)src[i++]);
        if (st == CH_MORE)
            continue;
        *dst_len = out;
        if (st == CH_DONE)
            return (int)i;
        d->state = S_FAILED;
        d->status = (uint16_t)st;
        FAIL(st);
    }
    *dst_len = out;
    return -2;
}
