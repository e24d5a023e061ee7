/*
 * net/hresp.c: the sans-I/O HTTP/1.1 response parser (see net/hresp.h for the contract).
 *
 * The head parser works in two steps. First it looks for the CRLF CRLF that ends the head
 * (one memmem over at most head_bytes_max bytes): without it the answer is -2, or -1 when
 * the limit is already reached or the first bytes cannot begin "HTTP/1.". Then it walks
 * the complete head once, line by line: the status line, each field line (a token, a
 * colon, OWS, a value of field-content characters, OWS), and finally the framing rules of
 * RFC 9112 §6.3 over the fields it collected (Content-Length, Transfer-Encoding,
 * Connection). Everything it returns points into the caller's buffer.
 *
 * Searching for the end first keeps the scanning loop simple and makes partial input
 * deterministic: a proper prefix of a valid head never holds the terminator, so it is -2,
 * whatever its length under the limit. The price is one memmem per call, which the client
 * pays once per received segment.
 *
 * The chunked decoder is a byte-level state machine (states below) except inside chunk
 * data, which it moves with one memmove per call. It keeps no pointer between calls: the
 * caller hands it whatever arrived, and it consumes everything (-2) or stops right after
 * the last CRLF of the body (> 0). Counters are bounded by named limits so a peer cannot
 * make it loop on an endless size line or trailer.
 */
#include "net/hresp.h"

#include <string.h>

/* --- character classes ------------------------------------------------------------------------ */

static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-content and reason-phrase bytes: HTAB, SP, VCHAR, obs-text */
static bool is_text(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static bool ieq(const char *p, size_t n, const char *lit)
{
    size_t m = strlen(lit);

    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)p[i]) != lower((unsigned char)lit[i]))
            return false;
    return true;
}

bool rf_hresp_token(const char *p, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)p[i]))
            return false;
    return true;
}

/* --- list elements (RFC 9110 §5.6.1) ---------------------------------------------------------- */

/* The next comma-separated element of v[*pos..n) with OWS trimmed (may be empty); false
 * when the list is exhausted. */
static bool list_next(const char *v, size_t n, size_t *pos, const char **el, size_t *el_len)
{
    size_t i = *pos, j;

    if (i > n)
        return false;
    j = i;
    while (j < n && v[j] != ',')
        j++;
    *pos = j + 1;
    while (i < j && is_ows((unsigned char)v[i]))
        i++;
    while (j > i && is_ows((unsigned char)v[j - 1]))
        j--;
    *el = v + i;
    *el_len = j - i;
    return true;
}

/* --- the head --------------------------------------------------------------------------------- */

static int parse_status_line(const char *p, const char *le, struct rf_hresp_head *out)
{
    size_t n = (size_t)(le - p);

    if (n < 12 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
        return -1;
    for (int i = 9; i < 12; i++)
        if (p[i] < '0' || p[i] > '9')
            return -1;
    if (p[9] == '0')
        return -1;
    out->minor = (uint8_t)(p[7] - '0');
    out->status = (uint16_t)((p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0'));
    out->reason = p + n;
    out->reason_len = 0;
    if (n == 12)
        return 0;
    if (p[12] != ' ')
        return -1;
    for (size_t i = 13; i < n; i++)
        if (!is_text((unsigned char)p[i]))
            return -1;
    out->reason = p + 13;
    out->reason_len = (uint32_t)(n - 13);
    return 0;
}

static int parse_field(const char *p, const char *le, struct rf_hresp_field *f)
{
    const char *q = p, *v, *ve;

    while (q < le && is_tchar((unsigned char)*q))
        q++;
    if (q == p || q == le || *q != ':')
        return -1; /* empty name, obs-fold, space before the colon, no colon */
    f->name = p;
    f->name_len = (uint32_t)(q - p);
    v = q + 1;
    while (v < le && is_ows((unsigned char)*v))
        v++;
    for (const char *c = v; c < le; c++)
        if (!is_text((unsigned char)*c))
            return -1;
    ve = le;
    while (ve > v && is_ows((unsigned char)ve[-1]))
        ve--;
    f->value = v;
    f->value_len = (uint32_t)(ve - v);
    return 0;
}

/* One Content-Length field: a list of identical decimals; *cl is set or must match. */
static int content_length(const struct rf_hresp_field *f, bool *seen, uint64_t *cl)
{
    size_t pos = 0, n;
    const char *el;

    while (list_next(f->value, f->value_len, &pos, &el, &n)) {
        uint64_t v = 0;
        if (n == 0 || n > RF_HRESP_CONTENT_LENGTH_DIGITS_MAX)
            return -1;
        for (size_t i = 0; i < n; i++) {
            if (el[i] < '0' || el[i] > '9')
                return -1;
            v = v * 10 + (uint64_t)(el[i] - '0');
        }
        if (*seen && v != *cl)
            return -1;
        *seen = true;
        *cl = v;
    }
    return 0;
}

/* Transfer-Encoding: every non-empty element counts; only "chunked" is accepted. */
static int transfer_codings(const struct rf_hresp_field *f, uint32_t *chunked)
{
    size_t pos = 0, n;
    const char *el;

    while (list_next(f->value, f->value_len, &pos, &el, &n)) {
        if (n == 0)
            continue;
        if (!ieq(el, n, "chunked"))
            return -1;
        (*chunked)++;
    }
    return 0;
}

static void connection_tokens(const struct rf_hresp_field *f, bool *close, bool *ka)
{
    size_t pos = 0, n;
    const char *el;

    while (list_next(f->value, f->value_len, &pos, &el, &n)) {
        if (ieq(el, n, "close"))
            *close = true;
        else if (ieq(el, n, "keep-alive"))
            *ka = true;
    }
}

/* RFC 9112 §6.3: how the body is delimited, and whether the connection survives it. */
static int head_framing(struct rf_hresp_head *h, unsigned flags)
{
    bool has_cl = false, close = false, ka = false, te = false;
    uint32_t chunked = 0;
    uint64_t cl = 0;

    for (uint32_t i = 0; i < h->nfields; i++) {
        const struct rf_hresp_field *f = &h->fields[i];
        if (ieq(f->name, f->name_len, "content-length")) {
            if (content_length(f, &has_cl, &cl) < 0)
                return -1;
        } else if (ieq(f->name, f->name_len, "transfer-encoding")) {
            te = true;
            if (transfer_codings(f, &chunked) < 0)
                return -1;
        } else if (ieq(f->name, f->name_len, "connection")) {
            connection_tokens(f, &close, &ka);
        }
    }
    if (te && (h->minor == 0 || chunked != 1))
        return -1; /* TE in HTTP/1.0, no coding, or chunked twice */
    h->keep_alive = !close && (h->minor == 1 || ka);
    h->content_length = 0;
    if ((flags & RF_HRESP_HEAD_REQUEST) || h->status < 200 || h->status == 204 ||
        h->status == 304) {
        h->framing = RF_HRESP_BODY_NONE;
    } else if (te) {
        h->framing = RF_HRESP_BODY_CHUNKED;
        if (has_cl)
            h->keep_alive = false; /* RFC 9112 §6.3: close after such a message */
    } else if (has_cl) {
        h->framing = RF_HRESP_BODY_LENGTH;
        h->content_length = cl;
    } else {
        h->framing = RF_HRESP_BODY_CLOSE;
        h->keep_alive = false;
    }
    return 0;
}

int rf_hresp_parse_head(const char *buf, size_t len, unsigned flags,
                        const struct rf_hresp_limits *lim, struct rf_hresp_field *fields,
                        uint32_t fields_cap, struct rf_hresp_head *out)
{
    uint32_t head_max = RF_HRESP_HEAD_BYTES_DEFAULT, fmax = RF_HRESP_FIELDS_DEFAULT;
    const char *end, *le, *p;
    size_t scan;

    if (lim && lim->head_bytes_max)
        head_max = lim->head_bytes_max < RF_HRESP_HEAD_BYTES_LIMIT ? lim->head_bytes_max
                                                                   : RF_HRESP_HEAD_BYTES_LIMIT;
    if (lim && lim->fields_max)
        fmax = lim->fields_max;
    if (fields_cap < fmax)
        fmax = fields_cap;
    if (len == 0)
        return -2;
    if (memcmp(buf, "HTTP/1.", len < 7 ? len : 7) != 0)
        return -1;
    scan = len < head_max ? len : head_max;
    end = memmem(buf, scan, "\r\n\r\n", 4);
    if (!end)
        return len >= head_max ? -1 : -2;
    le = memchr(buf, '\r', (size_t)(end - buf) + 1);
    if (le[1] != '\n' || parse_status_line(buf, le, out) < 0)
        return -1;
    out->fields = fields;
    out->nfields = 0;
    for (p = le + 2; p < end + 2; p = le + 2) {
        le = memchr(p, '\r', (size_t)(end - p) + 1);
        if (le[1] != '\n' || out->nfields >= fmax)
            return -1;
        if (parse_field(p, le, &fields[out->nfields]) < 0)
            return -1;
        out->nfields++;
    }
    if (head_framing(out, flags) < 0)
        return -1;
    out->head_bytes = (uint32_t)(end + 4 - buf);
    return (int)out->head_bytes;
}

const struct rf_hresp_field *rf_hresp_field_next(const struct rf_hresp_head *h, const char *name,
                                                 uint32_t *from)
{
    for (uint32_t i = *from; i < h->nfields; i++) {
        if (ieq(h->fields[i].name, h->fields[i].name_len, name)) {
            *from = i + 1;
            return &h->fields[i];
        }
    }
    *from = h->nfields;
    return NULL;
}

/* --- the chunked body ------------------------------------------------------------------------- */

enum {
    CH_SIZE0 = 0, /* expecting the first hex digit of a chunk size */
    CH_SIZE,      /* more digits, an extension, or CR */
    CH_EXT,       /* chunk extensions up to CR */
    CH_SIZE_LF,   /* LF after the size line */
    CH_DATA,      /* `left` data bytes to go */
    CH_DATA_CR,   /* CR after the data */
    CH_DATA_LF,   /* LF after the data */
    CH_TR_START,  /* a trailer line, or the final CR */
    CH_TR_LINE,   /* inside a trailer line */
    CH_TR_LF,     /* LF after a trailer line */
    CH_END_LF,    /* the final LF */
    CH_DONE,
    CH_ERR,
};

static int ch_fail(struct rf_hresp_chunked *d, bool too_large)
{
    d->state = CH_ERR;
    d->too_large = too_large;
    return -1;
}

/* One byte of a size line (digits, extensions, its CRLF). 0 or -1. */
static int ch_size_byte(struct rf_hresp_chunked *d, unsigned char c)
{
    int hv = hex_value(c);

    switch (d->state) {
    case CH_SIZE0:
        if (hv < 0)
            return ch_fail(d, false);
        d->left = (uint64_t)hv;
        d->digits = 1;
        d->line_bytes = 0;
        d->state = CH_SIZE;
        break;
    case CH_SIZE:
        if (hv >= 0) {
            if (d->digits >= RF_HRESP_CHUNK_SIZE_DIGITS_MAX)
                return ch_fail(d, false);
            d->left = d->left << 4 | (uint64_t)hv;
            d->digits++;
        } else if (c == '\r') {
            d->state = CH_SIZE_LF;
        } else if (c == ';' || is_ows(c)) {
            d->state = CH_EXT;
            d->line_bytes = 1;
        } else {
            return ch_fail(d, false);
        }
        break;
    case CH_EXT:
        if (c == '\r')
            d->state = CH_SIZE_LF;
        else if (!is_text(c) || ++d->line_bytes > RF_HRESP_CHUNK_LINE_BYTES_MAX)
            return ch_fail(d, false);
        break;
    default: /* CH_SIZE_LF */
        if (c != '\n')
            return ch_fail(d, false);
        d->body_bytes =
            d->body_bytes + d->left < d->body_bytes ? UINT64_MAX : d->body_bytes + d->left;
        d->state = d->left ? CH_DATA : CH_TR_START;
        return 0;
    }
    if (d->body_bytes_max && d->left > d->body_bytes_max - d->body_bytes)
        return ch_fail(d, true);
    return 0;
}

/* One byte after data or of the trailer section. 0, 1 when the body ended, or -1. */
static int ch_frame_byte(struct rf_hresp_chunked *d, unsigned char c)
{
    if (d->state >= CH_TR_START && ++d->trailer_bytes > RF_HRESP_TRAILER_BYTES_MAX)
        return ch_fail(d, false);
    switch (d->state) {
    case CH_DATA_CR:
        d->state = CH_DATA_LF;
        return c == '\r' ? 0 : ch_fail(d, false);
    case CH_DATA_LF:
        d->state = CH_SIZE0;
        return c == '\n' ? 0 : ch_fail(d, false);
    case CH_TR_START:
        if (c == '\r')
            d->state = CH_END_LF;
        else if (is_tchar(c))
            d->state = CH_TR_LINE; /* a field name starts; no obs-fold */
        else
            return ch_fail(d, false);
        return 0;
    case CH_TR_LINE:
        if (c == '\r')
            d->state = CH_TR_LF;
        else if (!is_text(c))
            return ch_fail(d, false);
        return 0;
    case CH_TR_LF:
        d->state = CH_TR_START;
        return c == '\n' ? 0 : ch_fail(d, false);
    default: /* CH_END_LF */
        if (c != '\n')
            return ch_fail(d, false);
        d->state = CH_DONE;
        return 1;
    }
}

int rf_hresp_chunked_decode(struct rf_hresp_chunked *d, char *dst, const char *src, size_t len,
                            size_t *dst_len)
{
    size_t i = 0, out = 0;
    int rc;

    *dst_len = 0;
    if (len > RF_HRESP_FEED_BYTES_MAX || d->state >= CH_DONE)
        return ch_fail(d, false);
    while (i < len) {
        if (d->state == CH_DATA) {
            size_t n = len - i;
            if (n > d->left)
                n = (size_t)d->left;
            memmove(dst + out, src + i, n);
            out += n;
            i += n;
            d->left -= n;
            if (d->left == 0)
                d->state = CH_DATA_CR;
            continue;
        }
        if (d->state <= CH_SIZE_LF)
            rc = ch_size_byte(d, (unsigned char)src[i]);
        else
            rc = ch_frame_byte(d, (unsigned char)src[i]);
        i++;
        if (rc < 0 || rc == 1) {
            *dst_len = out;
            return rc < 0 ? -1 : (int)i;
        }
    }
    *dst_len = out;
    return -2;
}

/* --- UTF-8 and media types -------------------------------------------------------------------- */

bool rf_hresp_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        unsigned char c = p[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            k = 1, cp = c & 0x1f, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef)
            k = 2, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4)
            k = 3, cp = c & 0x07, min = 0x10000;
        else
            return false;
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

bool rf_hresp_is_json_type(const char *v, size_t n)
{
    size_t i = 0, j, slash;

    while (i < n && is_ows((unsigned char)v[i]))
        i++;
    j = i;
    while (j < n && v[j] != ';')
        j++;
    while (j > i && is_ows((unsigned char)v[j - 1]))
        j--;
    for (slash = i; slash < j && v[slash] != '/'; slash++)
        ;
    if (slash == j || !rf_hresp_token(v + i, slash - i) ||
        !rf_hresp_token(v + slash + 1, j - slash - 1))
        return false;
    if (ieq(v + i, slash - i, "application") && ieq(v + slash + 1, j - slash - 1, "json"))
        return true;
    return j - slash - 1 > 5 && ieq(v + j - 5, 5, "+json");
}
