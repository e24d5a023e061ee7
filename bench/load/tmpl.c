/*
 * bench/load/tmpl.c: target URLs and request templates of ringflow-load.
 *
 * A template is compiled once, in main(), into a list of segments: literal bytes and
 * three kinds of value: {{seq}} (the request's sequence number), {{rand:N}} (a uniform
 * integer in [0, N), drawn per occurrence) and the body length. Placeholders may appear in
 * the path, in -H values and in the body; any other "{{...}}" is literal text, so JSON
 * that happens to contain braces passes through untouched.
 *
 * Content-Length must match the rendered body, so when the body has placeholders the head
 * ends with a BODY_LEN segment: rfl_tmpl_render() first draws the body's random values
 * and adds up the body length (static bytes + the digits of each value), then writes the
 * head, the length and the body in one pass, straight into the connection's send buffer.
 * When the body is static its length is compiled in, and a template with no placeholder
 * at all is a single literal segment: rendering is one memcpy. max_bytes bounds a
 * rendered request (every value is at most 20 digits), which is what the engine reserves
 * before rendering.
 *
 * Everything here is pure except compile/free (which allocate the template's own copy of
 * its bytes) and the caller-owned PRNG state passed to render. Templates are read-only
 * once compiled, so all threads render from the same ones.
 */
#include "bench/load/load.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

uint64_t rfl_rand64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t rfl_rand_below(uint64_t *state, uint64_t bound)
{
    return (uint64_t)(((unsigned __int128)rfl_rand64(state) * bound) >> 64);
}

/* --- URLs ------------------------------------------------------------------------------ */

static int parse_port(const char *s, size_t n, uint16_t *port)
{
    if (n == 0 || n > 5)
        return -EINVAL;
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10u + (uint32_t)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return -EINVAL;
    *port = (uint16_t)v;
    return 0;
}

int rfl_url_parse(const char *url, char host[RFL_HOST_BYTES_MAX + 1],
                  char hosthdr[RFL_HOST_BYTES_MAX + 8], uint16_t *port,
                  char path[RFL_PATH_BYTES_MAX + 1])
{
    if (strncasecmp(url, "http://", 7) != 0)
        return -EINVAL;
    const char *a = url + 7;
    size_t alen = strcspn(a, "/?#");
    if (alen == 0 || alen > RFL_HOST_BYTES_MAX + 6)
        return -EINVAL;
    const char *hs = a, *he, *colon;
    if (*a == '[') {
        const char *rb = memchr(a, ']', alen);
        if (!rb)
            return -EINVAL;
        hs = a + 1;
        he = rb;
        colon = rb + 1 < a + alen ? rb + 1 : NULL;
        if (colon && *colon != ':')
            return -EINVAL;
    } else {
        colon = memchr(a, ':', alen);
        he = colon ? colon : a + alen;
    }
    size_t hn = (size_t)(he - hs);
    if (hn == 0 || hn > RFL_HOST_BYTES_MAX)
        return -EINVAL;
    *port = 80;
    if (colon && parse_port(colon + 1, (size_t)(a + alen - colon - 1), port) < 0)
        return -EINVAL;
    memcpy(host, hs, hn);
    host[hn] = 0;
    memcpy(hosthdr, a, alen);
    hosthdr[alen] = 0;
    const char *p = a + alen;
    if (*p == '#')
        p = "";
    size_t pn = strcspn(p, "#");
    if (pn + 1 > RFL_PATH_BYTES_MAX)
        return -EINVAL;
    if (pn == 0 || *p == '?') {
        path[0] = '/';
        memcpy(path + 1, p, pn);
        path[pn + 1] = 0;
    } else {
        memcpy(path, p, pn);
        path[pn] = 0;
    }
    return 0;
}

/* --- compiling ------------------------------------------------------------------------- */

struct builder {
    char *text;
    size_t tlen, tcap;
    struct rfl_seg segs[RFL_TMPL_SEGS_MAX];
    uint32_t nsegs;
    uint32_t nvalues; /* placeholders so far */
    int err;
};

static void b_seg(struct builder *b, struct rfl_seg s)
{
    if (b->err)
        return;
    if (b->nsegs == RFL_TMPL_SEGS_MAX) {
        b->err = -E2BIG;
        return;
    }
    b->segs[b->nsegs++] = s;
}

static void b_text(struct builder *b, const char *s, size_t n, uint8_t part)
{
    if (b->err || n == 0)
        return;
    if (b->tlen + n > RFL_REQUEST_BYTES_MAX) {
        b->err = -E2BIG;
        return;
    }
    if (b->tlen + n > b->tcap) {
        size_t cap = RFL_MAX(b->tcap * 2, b->tlen + n + 256);
        char *t = realloc(b->text, cap);
        if (!t) {
            b->err = -ENOMEM;
            return;
        }
        b->text = t;
        b->tcap = cap;
    }
    memcpy(b->text + b->tlen, s, n);
    struct rfl_seg *last = b->nsegs ? &b->segs[b->nsegs - 1] : NULL;
    if (last && last->kind == RFL_SEG_TEXT && last->part == part)
        last->len += (uint32_t)n;
    else
        b_seg(b, (struct rfl_seg){.kind = RFL_SEG_TEXT,
                                  .part = part,
                                  .off = (uint32_t)b->tlen,
                                  .len = (uint32_t)n});
    b->tlen += n;
}

static void b_value(struct builder *b, uint8_t kind, uint64_t bound, uint8_t part)
{
    if (b->nvalues++ == RFL_TMPL_SLOTS_MAX) {
        b->err = -E2BIG;
        return;
    }
    b_seg(b, (struct rfl_seg){.kind = kind, .part = part, .bound = bound});
}

/* "{{rand:N}}" at s (n bytes available): returns its length and N, or 0. */
static size_t match_rand(const char *s, size_t n, uint64_t *bound)
{
    if (n < 10 || memcmp(s, "{{rand:", 7) != 0)
        return 0;
    uint64_t v = 0;
    size_t i = 7;
    for (; i < n && s[i] >= '0' && s[i] <= '9' && i < 7 + 18; i++)
        v = v * 10u + (uint64_t)(s[i] - '0');
    if (i == 7 || v == 0 || i + 2 > n || s[i] != '}' || s[i + 1] != '}')
        return 0;
    *bound = v;
    return i + 2;
}

/* Append s[0..n) to the builder, turning placeholders into value segments. */
static void b_scan(struct builder *b, const char *s, size_t n, uint8_t part)
{
    size_t lit = 0, i = 0;
    while (i + 1 < n) {
        if (s[i] != '{' || s[i + 1] != '{') {
            i++;
            continue;
        }
        uint64_t bound = 0;
        size_t m = 0;
        uint8_t kind = RFL_SEG_SEQ;
        if (n - i >= 7 && memcmp(s + i, "{{seq}}", 7) == 0) {
            m = 7;
        } else if ((m = match_rand(s + i, n - i, &bound)) != 0) {
            kind = RFL_SEG_RAND;
        } else {
            i++;
            continue;
        }
        b_text(b, s + lit, i - lit, part);
        b_value(b, kind, bound, part);
        i += m;
        lit = i;
    }
    b_text(b, s + lit, n - lit, part);
}

static bool has_placeholder(const char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        uint64_t bound;
        if (s[i] == '{' && s[i + 1] == '{' &&
            ((n - i >= 7 && memcmp(s + i, "{{seq}}", 7) == 0) || match_rand(s + i, n - i, &bound)))
            return true;
    }
    return false;
}

/* True when a line of headers ("Name: value\r\n"...) names the field (lower case). */
static bool headers_have(const char *headers, const char *name)
{
    size_t nn = strlen(name);
    for (const char *l = headers; *l;) {
        if (strncasecmp(l, name, nn) == 0 && l[nn] == ':')
            return true;
        const char *e = strstr(l, "\r\n");
        if (!e)
            break;
        l = e + 2;
    }
    return false;
}

static bool method_ok(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n >= sizeof(((struct rfl_tmpl *)0)->method))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((m[i] >= 'A' && m[i] <= 'Z') || m[i] == '-' || m[i] == '_'))
            return false;
    return true;
}

static void b_head(struct builder *b, const char *method, const char *path, const char *hosthdr,
                   const char *headers, bool ctype)
{
    b_text(b, method, strlen(method), 0);
    b_text(b, " ", 1, 0);
    b_scan(b, path, strlen(path), 0);
    b_text(b, " HTTP/1.1\r\n", 11, 0);
    if (!headers_have(headers, "host")) {
        b_text(b, "Host: ", 6, 0);
        b_text(b, hosthdr, strlen(hosthdr), 0);
        b_text(b, "\r\n", 2, 0);
    }
    b_scan(b, headers, strlen(headers), 0);
    if (ctype)
        b_text(b, "Content-Type: application/json\r\n", 32, 0);
}

static void b_body(struct builder *b, struct rfl_tmpl *t, const char *body, size_t body_len,
                   bool framed)
{
    if (!framed) {
        b_text(b, "\r\n", 2, 0);
        return;
    }
    if (!has_placeholder(body, body_len)) {
        char len[48];
        int k = snprintf(len, sizeof(len), "Content-Length: %zu\r\n\r\n", body_len);
        b_text(b, len, (size_t)k, 0);
        b_text(b, body, body_len, 0);
        return;
    }
    t->has_body_len = true;
    b_text(b, "Content-Length: ", 16, 0);
    b_value(b, RFL_SEG_BODY_LEN, 0, 0);
    b_text(b, "\r\n\r\n", 4, 0);
    uint32_t first = b->nsegs;
    b_scan(b, body, body_len, 1);
    for (uint32_t i = first; i < b->nsegs; i++) {
        if (b->segs[i].kind == RFL_SEG_TEXT)
            t->body_static += b->segs[i].len;
        else
            t->nbody_rand += b->segs[i].kind == RFL_SEG_RAND;
    }
}

int rfl_tmpl_compile(struct rfl_tmpl *t, const char *method, const char *path, const char *hosthdr,
                     const char *headers, const char *body, size_t body_len)
{
    memset(t, 0, sizeof(*t));
    if (!method_ok(method) || path[0] != '/' || headers_have(headers, "content-length") ||
        headers_have(headers, "transfer-encoding"))
        return -EINVAL;
    bool bodied = body_len > 0 || !strcmp(method, "POST") || !strcmp(method, "PUT") ||
                  !strcmp(method, "PATCH");
    struct builder b = {0};
    b_head(&b, method, path, hosthdr, headers,
           body_len > 0 && !headers_have(headers, "content-type"));
    b_body(&b, t, body, body_len, bodied);
    size_t max = b.tlen + (size_t)b.nvalues * RFL_DIGITS_U64;
    if (!b.err && max > RFL_REQUEST_BYTES_MAX)
        b.err = -E2BIG;
    if (!b.err) {
        t->segs = malloc(b.nsegs * sizeof(*t->segs));
        if (!t->segs)
            b.err = -ENOMEM;
    }
    if (b.err) {
        free(b.text);
        memset(t, 0, sizeof(*t));
        return b.err;
    }
    memcpy(t->segs, b.segs, b.nsegs * sizeof(*t->segs));
    t->nsegs = b.nsegs;
    t->text = b.text;
    t->max_bytes = (uint32_t)max;
    t->no_body_resp = !strcmp(method, "HEAD");
    snprintf(t->method, sizeof(t->method), "%s", method);
    return 0;
}

void rfl_tmpl_free(struct rfl_tmpl *t)
{
    free(t->text);
    free(t->segs);
    memset(t, 0, sizeof(*t));
}

/* --- rendering ------------------------------------------------------------------------- */

static size_t dec_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

static size_t put_dec(uint8_t *o, uint64_t v)
{
    size_t n = dec_len(v);
    for (size_t i = n; i-- > 0; v /= 10)
        o[i] = (uint8_t)('0' + v % 10);
    return n;
}

size_t rfl_tmpl_render(const struct rfl_tmpl *t, uint64_t seq, uint64_t *rng, uint8_t *out)
{
    uint64_t drawn[RFL_TMPL_SLOTS_MAX];
    size_t ndrawn = 0, used = 0, body_len = t->body_static;
    if (t->has_body_len) {
        size_t seq_len = dec_len(seq);
        for (uint32_t i = 0; i < t->nsegs; i++) {
            const struct rfl_seg *s = &t->segs[i];
            if (s->part != 1 || s->kind == RFL_SEG_TEXT)
                continue;
            if (s->kind == RFL_SEG_SEQ) {
                body_len += seq_len;
            } else {
                drawn[ndrawn] = rfl_rand_below(rng, s->bound);
                body_len += dec_len(drawn[ndrawn++]);
            }
        }
    }
    uint8_t *o = out;
    for (uint32_t i = 0; i < t->nsegs; i++) {
        const struct rfl_seg *s = &t->segs[i];
        switch (s->kind) {
        case RFL_SEG_TEXT:
            memcpy(o, t->text + s->off, s->len);
            o += s->len;
            break;
        case RFL_SEG_SEQ:
            o += put_dec(o, seq);
            break;
        case RFL_SEG_RAND:
            o += put_dec(o, s->part == 1 ? drawn[used++] : rfl_rand_below(rng, s->bound));
            break;
        default:
            o += put_dec(o, body_len);
            break;
        }
    }
    RFL_ASSERT((size_t)(o - out) <= t->max_bytes);
    return (size_t)(o - out);
}
