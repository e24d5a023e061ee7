/*
 * storage/xrec.c: payloads of ringflowd's journal records (storage/xrec.h).
 *
 * Every writer has a size function computed from the same fields, so the journal can
 * reserve exactly; the writers assert they filled exactly that. Decoders read with the
 * rf_jr cursor, which never reads past the payload, and then insist every byte was used.
 */
#include "storage/xrec.h"

#include <errno.h>
#include <string.h>

#include "engine/rf.h"
#include "ringflow.h"

static size_t slice_size(struct rf_xslice s)
{
    return rf_jw_bytes_size(s.n);
}

static int read_slice(struct rf_jr *r, struct rf_xslice *s)
{
    const uint8_t *p;
    uint32_t n;

    if (rf_jr_bytes(r, &p, &n) < 0)
        return -1;
    s->p = (const char *)p;
    s->n = n;
    return 0;
}

static bool id_ok(struct rf_xslice id)
{
    char buf[RF_ID_BYTES];

    if (id.n != RF_ID_BYTES - 1)
        return false;
    memcpy(buf, id.p, id.n);
    buf[id.n] = '\0';
    return rf_exec_id_parse(buf, NULL, NULL);
}

/* --- GRAPH ------------------------------------------------------------------------------- */

size_t rf_xgraph_size(const struct rf_xgraph *g)
{
    return slice_size(g->name) + 4 + 8 + slice_size(g->doc);
}

void rf_xgraph_write(uint8_t *p, const struct rf_xgraph *g)
{
    size_t size = rf_xgraph_size(g);
    struct rf_jw w = {.p = p, .cap = size};

    rf_jw_bytes(&w, g->name.p, g->name.n);
    rf_jw_u32(&w, g->version);
    rf_jw_u64(&w, (uint64_t)g->created_us);
    rf_jw_bytes(&w, g->doc.p, g->doc.n);
    RF_ASSERT(w.n == size);
}

int rf_xgraph_read(const struct rf_jrec *rec, struct rf_xgraph *out)
{
    struct rf_jr r;
    uint64_t created;

    if (rec->type != RF_JREC_GRAPH)
        return -EBADMSG;
    rf_jr_init(&r, rec);
    if (read_slice(&r, &out->name) < 0 || rf_jr_u32(&r, &out->version) < 0 ||
        rf_jr_u64(&r, &created) < 0 || read_slice(&r, &out->doc) < 0 || !rf_jr_done(&r) ||
        out->name.n == 0 || out->version == 0)
        return -EBADMSG;
    out->created_us = (int64_t)created;
    return 0;
}

/* --- DEF ----------------------------------------------------------------------------------- */

size_t rf_xdef_size(const struct rf_xdef *d)
{
    return 1 + slice_size(d->name) + 8 + slice_size(d->doc);
}

void rf_xdef_write(uint8_t *p, const struct rf_xdef *d)
{
    size_t size = rf_xdef_size(d);
    struct rf_jw w = {.p = p, .cap = size};

    rf_jw_u8(&w, d->kind);
    rf_jw_bytes(&w, d->name.p, d->name.n);
    rf_jw_u64(&w, (uint64_t)d->created_us);
    rf_jw_bytes(&w, d->doc.p, d->doc.n);
    RF_ASSERT(w.n == size);
}

int rf_xdef_read(const struct rf_jrec *rec, struct rf_xdef *out)
{
    struct rf_jr r;
    uint64_t created;

    if (rec->type != RF_JREC_DEF)
        return -EBADMSG;
    rf_jr_init(&r, rec);
    if (rf_jr_u8(&r, &out->kind) < 0 || read_slice(&r, &out->name) < 0 ||
        rf_jr_u64(&r, &created) < 0 || read_slice(&r, &out->doc) < 0 || !rf_jr_done(&r) ||
        out->name.n == 0 || (out->kind != RF_XDEF_HOOK && out->kind != RF_XDEF_TRIGGER))
        return -EBADMSG;
    out->created_us = (int64_t)created;
    return 0;
}

/* --- ACCEPT -------------------------------------------------------------------------------- */

static size_t accept_fields_size(const struct rf_xaccept *a)
{
    return slice_size(a->id) + slice_size(a->graph) + 4 + 8 + slice_size(a->idem) +
           slice_size(a->tags) + slice_size(a->inputs);
}

static void accept_fields_write(struct rf_jw *w, const struct rf_xaccept *a)
{
    rf_jw_bytes(w, a->id.p, a->id.n);
    rf_jw_bytes(w, a->graph.p, a->graph.n);
    rf_jw_u32(w, a->version);
    rf_jw_u64(w, (uint64_t)a->created_us);
    rf_jw_bytes(w, a->idem.p, a->idem.n);
    rf_jw_bytes(w, a->tags.p, a->tags.n);
    rf_jw_bytes(w, a->inputs.p, a->inputs.n);
}

static int accept_fields_read(struct rf_jr *r, struct rf_xaccept *a)
{
    uint64_t created;

    if (read_slice(r, &a->id) < 0 || read_slice(r, &a->graph) < 0 ||
        rf_jr_u32(r, &a->version) < 0 || rf_jr_u64(r, &created) < 0 ||
        read_slice(r, &a->idem) < 0 || read_slice(r, &a->tags) < 0 ||
        read_slice(r, &a->inputs) < 0 || !id_ok(a->id) || a->graph.n == 0 || a->version == 0)
        return -1;
    a->created_us = (int64_t)created;
    return 0;
}

size_t rf_xaccept_size(const struct rf_xaccept *a)
{
    return accept_fields_size(a);
}

void rf_xaccept_write(uint8_t *p, const struct rf_xaccept *a)
{
    size_t size = rf_xaccept_size(a);
    struct rf_jw w = {.p = p, .cap = size};

    accept_fields_write(&w, a);
    RF_ASSERT(w.n == size);
}

int rf_xaccept_read(const struct rf_jrec *rec, struct rf_xaccept *out)
{
    struct rf_jr r;

    if (rec->type != RF_JREC_ACCEPT)
        return -EBADMSG;
    rf_jr_init(&r, rec);
    if (accept_fields_read(&r, out) < 0 || !rf_jr_done(&r))
        return -EBADMSG;
    return 0;
}

/* --- event lists ---------------------------------------------------------------------------- */

static size_t events_size(uint32_t n, rf_xevent_at at, void *ud)
{
    size_t size = 4 + 4;

    for (uint32_t k = 0; k < n; k++)
        size += slice_size(at(ud, k));
    return size;
}

/* u32 count, u32 bytes of what follows, then the texts. */
static void events_write(struct rf_jw *w, uint32_t n, rf_xevent_at at, void *ud)
{
    size_t bytes = events_size(n, at, ud) - 8;

    rf_jw_u32(w, n);
    rf_jw_u32(w, (uint32_t)bytes);
    for (uint32_t k = 0; k < n; k++) {
        struct rf_xslice t = at(ud, k);
        rf_jw_bytes(w, t.p, t.n);
    }
}

static int events_read(struct rf_jr *r, uint32_t *n, const uint8_t **events, uint32_t *bytes)
{
    uint32_t cur = 0, k = 0;
    struct rf_xslice t;

    if (rf_jr_u32(r, n) < 0 || rf_jr_u32(r, bytes) < 0 || *n > RF_XREC_EVENTS_MAX ||
        r->n - r->off < *bytes)
        return -1;
    *events = r->p + r->off;
    /* Check the list now, so iterating it later cannot fail. */
    while (rf_xevents_next(*events, *bytes, &cur, &t))
        k++;
    if (k != *n || cur != *bytes)
        return -1;
    r->off += *bytes;
    return 0;
}

bool rf_xevents_next(const uint8_t *events, uint32_t bytes, uint32_t *cursor,
                     struct rf_xslice *text)
{
    uint32_t c = *cursor, len;

    if (c >= bytes || bytes - c < 4)
        return false;
    len = (uint32_t)events[c] | (uint32_t)events[c + 1] << 8 | (uint32_t)events[c + 2] << 16 |
          (uint32_t)events[c + 3] << 24; /* little-endian, as rf_jw_bytes wrote it */
    if (bytes - c - 4 < len)
        return false;
    text->p = (const char *)events + c + 4;
    text->n = len;
    *cursor = c + 4 + len;
    return true;
}

/* --- EVENTS ------------------------------------------------------------------------------- */

size_t rf_xevents_size(struct rf_xslice id, uint32_t n, rf_xevent_at at, void *ud)
{
    return slice_size(id) + 8 + events_size(n, at, ud);
}

void rf_xevents_write(uint8_t *p, struct rf_xslice id, uint64_t first_seq, uint32_t n,
                      rf_xevent_at at, void *ud)
{
    size_t size = rf_xevents_size(id, n, at, ud);
    struct rf_jw w = {.p = p, .cap = size};

    rf_jw_bytes(&w, id.p, id.n);
    rf_jw_u64(&w, first_seq);
    events_write(&w, n, at, ud);
    RF_ASSERT(w.n == size);
}

int rf_xevents_read(const struct rf_jrec *rec, struct rf_xevents *out)
{
    struct rf_jr r;

    if (rec->type != RF_JREC_EVENTS)
        return -EBADMSG;
    rf_jr_init(&r, rec);
    if (read_slice(&r, &out->id) < 0 || rf_jr_u64(&r, &out->first_seq) < 0 ||
        events_read(&r, &out->nevents, &out->events, &out->events_bytes) < 0 ||
        !rf_jr_done(&r) || !id_ok(out->id) || out->first_seq == 0)
        return -EBADMSG;
    return 0;
}

/* --- SUMMARY ------------------------------------------------------------------------------ */

size_t rf_xsummary_size(const struct rf_xsummary *s, uint32_t n, rf_xevent_at at, void *ud)
{
    return accept_fields_size(&s->a) + 1 + slice_size(s->output) + slice_size(s->error) +
           events_size(n, at, ud);
}

void rf_xsummary_write(uint8_t *p, const struct rf_xsummary *s, uint32_t n, rf_xevent_at at,
                       void *ud)
{
    size_t size = rf_xsummary_size(s, n, at, ud);
    struct rf_jw w = {.p = p, .cap = size};

    accept_fields_write(&w, &s->a);
    rf_jw_u8(&w, s->status);
    rf_jw_bytes(&w, s->output.p, s->output.n);
    rf_jw_bytes(&w, s->error.p, s->error.n);
    events_write(&w, n, at, ud);
    RF_ASSERT(w.n == size);
}

int rf_xsummary_read(const struct rf_jrec *rec, struct rf_xsummary *out)
{
    struct rf_jr r;

    if (rec->type != RF_JREC_SUMMARY)
        return -EBADMSG;
    rf_jr_init(&r, rec);
    if (accept_fields_read(&r, &out->a) < 0 || rf_jr_u8(&r, &out->status) < 0 ||
        read_slice(&r, &out->output) < 0 || read_slice(&r, &out->error) < 0 ||
        events_read(&r, &out->nevents, &out->events, &out->events_bytes) < 0 ||
        !rf_jr_done(&r) || !rf_status_terminal((rf_status)out->status))
        return -EBADMSG;
    return 0;
}
