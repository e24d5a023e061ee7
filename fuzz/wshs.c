/*
 * fuzz/wshs.c: libFuzzer target for the WebSocket opening handshake check (net/ws.c).
 *
 * The input is a small line format (lines end at '\n'; a '\r' stays in the line): the
 * first line is "<METHOD> <minor>" (GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, anything
 * else is RF_HTTP_OTHER; the minor is the digit after the first space, 1 when there is
 * none), every later line a field "Name:value" split at the first ':' (no ':' makes a
 * field with an empty value), at most FIELDS_MAX of them. A Host field sets req.host. The
 * value keeps its spaces, so the check's own trimming is exercised too.
 *
 * Properties, each an RF_ASSERT:
 *   - the status is 0, 400, 405 or 426 and equals an independent model of RFC 6455
 *     §4.2.1 written here (its own field scan, OpenSSL's EVP_DecodeBlock for the key);
 *   - accept is written only on 0, and is then 28 base64 characters and a NUL equal to
 *     base64(SHA-1(key + GUID)) computed here through EVP_Digest and an own encoder;
 *   - the check is deterministic: a second call gives the same status and accept.
 */
#include "engine/rf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "net/http1.h"
#include "net/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FIELDS_MAX 32u
#define GUID       "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static const char *const k_methods[] = {NULL,  "GET",    "HEAD",    "POST",
                                        "PUT", "DELETE", "OPTIONS", "PATCH"};

static struct rf_slice trim(struct rf_slice s)
{
    while (s.n && (*s.p == ' ' || *s.p == '\t')) {
        s.p++;
        s.n--;
    }
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t'))
        s.n--;
    return s;
}

static bool name_is(const struct rf_http_header *h, const char *name)
{
    return h->name.n == strlen(name) && strncasecmp(h->name.p, name, h->name.n) == 0;
}

/* Fields named `name`: how many, the last one seen, and whether any lists `token`. */
static uint32_t scan(const struct rf_http_req *req, const char *name, const char *token,
                     bool *has_token, struct rf_slice *value)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < req->nheaders; i++) {
        if (!name_is(&req->headers[i], name))
            continue;
        if (n++ == 0)
            *value = req->headers[i].value;
        if (token && rf_http_has_token(req->headers[i].value, token))
            *has_token = true;
    }
    return n;
}

/* The model: the status RFC 6455 §4.2.1 and net/ws.h ask for. */
static int model(const struct rf_http_req *req)
{
    struct rf_slice v = {0}, k = {0};
    bool up = false, conn = false, unused = false;
    unsigned char out[32];

    if (req->method != RF_HTTP_GET)
        return 405;
    if (req->minor != 1)
        return 400;
    if (!req->host.p && scan(req, "host", NULL, &unused, &v) == 0)
        return 400;
    scan(req, "upgrade", "websocket", &up, &v);
    scan(req, "connection", "upgrade", &conn, &v);
    if (!up || !conn)
        return 400;
    switch (scan(req, "sec-websocket-version", NULL, &unused, &v)) {
    case 0:
        return 426;
    case 1:
        break;
    default:
        return 400;
    }
    v = trim(v);
    if (v.n != 2 || memcmp(v.p, "13", 2) != 0)
        return 426;
    if (scan(req, "sec-websocket-key", NULL, &unused, &k) != 1)
        return 400;
    k = trim(k);
    if (k.n != 24 || memcmp(k.p + 22, "==", 2) != 0 || memchr(k.p, '=', 22))
        return 400;
    for (uint32_t i = 0; i < 24; i++) /* EVP_DecodeBlock skips some whitespace: refuse it */
        if (k.p[i] == ' ' || k.p[i] == '\t' || k.p[i] == '\r' || k.p[i] == '\n')
            return 400;
    if (EVP_DecodeBlock(out, (const unsigned char *)k.p, 24) != 18)
        return 400;
    return 0;
}

static void encode64(const unsigned char *in, size_t n, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;

    for (size_t i = 0; i < n; i += 3) {
        uint32_t w = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = abc[w >> 18 & 63];
        out[o++] = abc[w >> 12 & 63];
        out[o++] = i + 1 < n ? abc[w >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? abc[w & 63] : '=';
    }
    out[o] = '\0';
}

static void expect_accept(const struct rf_http_req *req, const char *accept)
{
    struct rf_slice k = {0};
    bool unused = false;
    char buf[24 + sizeof(GUID)], want[RF_WS_ACCEPT_LEN + 1];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    RF_ASSERT(scan(req, "sec-websocket-key", NULL, &unused, &k) == 1);
    k = trim(k);
    RF_ASSERT(k.n == 24);
    memcpy(buf, k.p, 24);
    memcpy(buf + 24, GUID, sizeof(GUID) - 1);
    RF_ASSERT(EVP_Digest(buf, 24 + sizeof(GUID) - 1, md, &mdlen, EVP_sha1(), NULL) == 1);
    RF_ASSERT(mdlen == 20);
    encode64(md, mdlen, want);
    RF_ASSERT(strlen(want) == RF_WS_ACCEPT_LEN);
    RF_ASSERT(memcmp(accept, want, RF_WS_ACCEPT_LEN + 1) == 0);
}

/* The first line: method and minor. */
static void parse_first(const char *p, size_t n, struct rf_http_req *req)
{
    const char *sp = memchr(p, ' ', n);
    size_t mlen = sp ? (size_t)(sp - p) : n;

    req->method = RF_HTTP_OTHER;
    for (int m = RF_HTTP_GET; m <= RF_HTTP_PATCH; m++)
        if (strlen(k_methods[m]) == mlen && memcmp(p, k_methods[m], mlen) == 0)
            req->method = (enum rf_http_method)m;
    req->method_s = (struct rf_slice){p, (uint32_t)mlen};
    req->minor = 1;
    if (sp && (size_t)(sp - p) + 1 < n && sp[1] >= '0' && sp[1] <= '9')
        req->minor = (uint8_t)(sp[1] - '0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rf_http_header hdrs[FIELDS_MAX];
    const char *p = (const char *)data, *end = p + size;
    struct rf_http_req req;
    char accept[RF_WS_ACCEPT_LEN + 1], again[RF_WS_ACCEPT_LEN + 1];
    int rc, want;

    memset(&req, 0, sizeof(req));
    req.headers = hdrs;
    req.content_length = -1;
    for (bool first = true; p < end; first = false) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *colon;
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        struct rf_http_header *h;

        if (first) {
            parse_first(p, n, &req);
        } else if (req.nheaders < FIELDS_MAX) {
            h = &hdrs[req.nheaders++];
            colon = memchr(p, ':', n);
            h->name = (struct rf_slice){p, (uint32_t)(colon ? (size_t)(colon - p) : n)};
            h->value = colon ? (struct rf_slice){colon + 1, (uint32_t)(n - (size_t)(colon - p) - 1)}
                             : (struct rf_slice){p + n, 0};
            if (!req.host.p && name_is(h, "host"))
                req.host = h->value;
        }
        p += n + (nl ? 1 : 0);
    }

    memset(accept, '#', sizeof(accept));
    rc = rf_ws_handshake_check(&req, accept);
    want = model(&req);
    RF_ASSERT(rc == 0 || rc == 400 || rc == 405 || rc == 426);
    RF_ASSERT(rc == want);
    if (rc == 0) {
        expect_accept(&req, accept);
    } else {
        for (size_t i = 0; i < sizeof(accept); i++)
            RF_ASSERT(accept[i] == '#');
    }
    memset(again, '#', sizeof(again));
    RF_ASSERT(rf_ws_handshake_check(&req, again) == rc);
    RF_ASSERT(memcmp(accept, again, sizeof(accept)) == 0);
    return 0;
}
