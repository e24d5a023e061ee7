/*
 * bench/load/wsmode.c: the --ws mode of ringflow-load: submit executions, follow them on
 * a WebSocket, and measure the time from the intended submit to an awaited event.
 *
 * Each unit is a pair of connections owned by one thread: a WebSocket (upgraded on
 * --ws-path, default /v1/ws) and a plain HTTP connection. The engine issues the POSTs on
 * the HTTP connection at the open-loop rate (or, without -R, keeping -d executions
 * outstanding per pair). When a 2xx answer arrives, its JSON body is parsed with jansson
 * for "id"; the id goes into this WebSocket's pending table with the request's intended
 * time and a subscribe message goes out:
 *     {"op":"subscribe","execution_id":"<id>","after":0}
 * (after 0: the server replays what already happened, so an execution that finished
 * before the subscription arrived is still seen). Every text message is scanned for the
 * top-level "type" and "execution_id"; when the type is --ws-event (default
 * execution.succeeded) for a pending id, the latency (now - intended submit time) is
 * recorded, the entry removed and an unsubscribe sent. A terminal event of another type
 * ends the wait too and is counted in ws_other_end.
 *
 * The pending table is an open-addressing hash (linear probing, backward-shift deletion,
 * no tombstones) keyed by id, grown by doubling up to 2 * RFL_WS_PENDING_MAX slots; the
 * engine never lets a pair have more than RFL_WS_PENDING_MAX executions outstanding, so
 * a stalled server makes requests wait (their latency grows), never memory. Frames: server
 * pings are answered with pongs, fragmented messages are reassembled (bounded by
 * RFL_WS_MESSAGE_BYTES_MAX), a close frame is answered and the connection closed after
 * the answer is sent; client frames are always masked.
 */
#include "bench/load/engine.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#define RFL_WS_TABLE_MAX (2u * RFL_WS_PENDING_MAX) /* slots, a power of two */
#define RFL_WS_JSON_MAX  (RFL_ID_BYTES_MAX + 96u)  /* a subscribe or unsubscribe message */

struct rfl_pend {
    uint64_t t_intended, t_sent;
    uint32_t hash;
    bool used, measured;
    uint8_t idlen;
    char id[RFL_ID_BYTES_MAX];
};

struct rfl_wsc {
    uint8_t *msg; /* a fragmented message being reassembled, owned */
    uint32_t mlen, mcap;
    uint8_t mop;
    bool in_msg;
    bool closing;         /* a close frame arrived: ignore further input */
    struct rfl_pend *tab; /* owned */
    uint32_t tcap, tlen;
};

int rfl__ws_init(struct rfl_conn *c)
{
    c->ws = calloc(1, sizeof(*c->ws));
    return c->ws ? 0 : -ENOMEM;
}

void rfl__ws_free(struct rfl_conn *c)
{
    if (!c->ws)
        return;
    free(c->ws->msg);
    free(c->ws->tab);
    free(c->ws);
    c->ws = NULL;
}

uint32_t rfl__ws_pending(const struct rfl_conn *c)
{
    return c->ws->tlen;
}

/* --- the pending table ----------------------------------------------------------------- */

static uint32_t id_hash(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static int pend_find(const struct rfl_wsc *w, const uint8_t *id, size_t n)
{
    if (w->tcap == 0)
        return -1;
    uint32_t mask = w->tcap - 1;
    for (uint32_t i = id_hash(id, n) & mask; w->tab[i].used; i = (i + 1) & mask)
        if (w->tab[i].idlen == n && memcmp(w->tab[i].id, id, n) == 0)
            return (int)i;
    return -1;
}

static void pend_place(struct rfl_pend *tab, uint32_t cap, const struct rfl_pend *e)
{
    uint32_t i = e->hash & (cap - 1);
    while (tab[i].used)
        i = (i + 1) & (cap - 1);
    tab[i] = *e;
}

static int pend_grow(struct rfl_wsc *w)
{
    uint32_t cap = w->tcap ? w->tcap * 2 : 16;
    if (cap > RFL_WS_TABLE_MAX)
        return -ENOSPC;
    struct rfl_pend *tab = calloc(cap, sizeof(*tab));
    if (!tab)
        return -ENOMEM;
    for (uint32_t i = 0; i < w->tcap; i++)
        if (w->tab[i].used)
            pend_place(tab, cap, &w->tab[i]);
    free(w->tab);
    w->tab = tab;
    w->tcap = cap;
    return 0;
}

static int pend_insert(struct rfl_wsc *w, const char *id, size_t n, const struct rfl_req *req)
{
    if ((w->tlen + 1) * 2 > w->tcap && pend_grow(w) < 0)
        return -ENOSPC;
    struct rfl_pend e = {.t_intended = req->t_intended,
                         .t_sent = req->t_sent,
                         .used = true,
                         .measured = req->measured,
                         .idlen = (uint8_t)n};
    memcpy(e.id, id, n);
    e.hash = id_hash((const uint8_t *)id, n);
    pend_place(w->tab, w->tcap, &e);
    w->tlen++;
    return 0;
}

/* Backward-shift deletion: later entries of the probe run move up to close the gap. */
static void pend_remove(struct rfl_wsc *w, uint32_t i)
{
    uint32_t mask = w->tcap - 1;
    for (uint32_t j = (i + 1) & mask; w->tab[j].used; j = (j + 1) & mask) {
        uint32_t k = w->tab[j].hash & mask;
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            w->tab[i] = w->tab[j];
            i = j;
        }
    }
    w->tab[i].used = false;
    w->tlen--;
}

/* --- sending --------------------------------------------------------------------------- */

static int ws_send(struct rfl_th *th, struct rfl_conn *c, uint8_t op, const void *p, size_t n)
{
    uint8_t *dst = rfl__sbuf_reserve(c, rfl_ws_frame_size(n));
    if (!dst)
        return -ENOBUFS;
    uint32_t mask = (uint32_t)rfl_rand64(&th->rng);
    rfl__sbuf_commit(th, c, rfl_ws_frame_encode(dst, op, p, n, mask));
    return 0;
}

static int ws_send_op(struct rfl_th *th, struct rfl_conn *c, const char *op, const char *id,
                      size_t n)
{
    char buf[RFL_WS_JSON_MAX];
    int k = snprintf(buf, sizeof(buf), "{\"op\":\"%s\",\"execution_id\":\"%.*s\"%s}", op, (int)n,
                     id, op[0] == 's' ? ",\"after\":0" : "");
    RFL_ASSERT(k > 0 && (size_t)k < sizeof(buf));
    return ws_send(th, c, RFL_WS_TEXT, buf, (size_t)k);
}

int rfl__ws_start(struct rfl_th *th, struct rfl_conn *c)
{
    const struct rfl_opts *o = th->o;
    uint64_t r[2] = {rfl_rand64(&th->rng), rfl_rand64(&th->rng)};
    rfl_ws_key((const uint8_t *)r, c->ws_key);
    size_t cap = strlen(o->ws_path) + strlen(o->hosthdr) + strlen(o->headers) + 192;
    char *dst = (char *)rfl__sbuf_reserve(c, cap);
    if (!dst)
        return -ENOBUFS;
    int n = snprintf(dst, cap,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     o->ws_path, o->hosthdr, c->ws_key, o->headers);
    RFL_ASSERT(n > 0 && (size_t)n < cap);
    rfl__sbuf_commit(th, c, (size_t)n);
    rfl_resp_init(&c->resp);
    return 0;
}

/* --- submissions ----------------------------------------------------------------------- */

static bool id_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_' || ch == '.' || ch == '~';
}

/* The "id" of a 202 body: URL-safe, 1..RFL_ID_BYTES_MAX-1 bytes. */
static int parse_id(const uint8_t *body, size_t n, char id[RFL_ID_BYTES_MAX], size_t *idn)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)body, n, 0, &jerr);
    if (!root)
        return -EINVAL;
    int err = -EINVAL;
    json_t *v = json_object_get(root, "id");
    size_t len = json_is_string(v) ? json_string_length(v) : 0;
    if (len == 0 || len >= RFL_ID_BYTES_MAX)
        goto out;
    const char *s = json_string_value(v);
    for (size_t i = 0; i < len; i++)
        if (!id_char(s[i]))
            goto out;
    memcpy(id, s, len);
    *idn = len;
    err = 0;
out:
    json_decref(root);
    return err;
}

void rfl__ws_submitted(struct rfl_th *th, struct rfl_conn *h, const struct rfl_req *req)
{
    struct rfl_stats *st = th->st;
    if (req->measured) {
        rfl__record(th, &st->post_lat, req->t_intended);
        st->status[RFL_MIN(h->status, RFL_STATUS_SLOTS - 1)]++;
    }
    if (h->status < 200 || h->status > 299)
        return;
    struct rfl_conn *w = &th->conns[2 * h->unit];
    char id[RFL_ID_BYTES_MAX];
    size_t idn = 0;
    if (h->body_over || parse_id(h->body, h->blen, id, &idn) < 0) {
        st->err_parse++;
        return;
    }
    if (w->state != RFL_C_OPEN || pend_find(w->ws, (const uint8_t *)id, idn) >= 0 ||
        pend_insert(w->ws, id, idn, req) < 0) {
        st->err_lost++; /* its WebSocket went away, or a duplicate id */
        return;
    }
    th->outstanding++;
    if (ws_send_op(th, w, "subscribe", id, idn) < 0) {
        st->err_ws++;
        rfl__conn_close(th, w, false);
    }
}

/* --- receiving ------------------------------------------------------------------------- */

static bool is_terminal(const struct rfl_span *t)
{
    return rfl_ieq(t->p, t->n, "execution.succeeded") || rfl_ieq(t->p, t->n, "execution.failed") ||
           rfl_ieq(t->p, t->n, "execution.canceled");
}

static void on_event(struct rfl_th *th, struct rfl_conn *c, const uint8_t *p, size_t n)
{
    static const char *const keys[] = {"type", "execution_id"};
    struct rfl_span v[2];
    struct rfl_stats *st = th->st;
    if (rfl_json_top_strings(p, n, keys, 2, v) < 0) {
        st->err_parse++;
        return;
    }
    if (!v[0].p || !v[1].p)
        return; /* not an event (an acknowledgement or an error message) */
    st->events += th->now >= th->t_measure && th->now < th->t_end;
    int i = pend_find(c->ws, v[1].p, v[1].n);
    if (i < 0)
        return;
    bool match = v[0].n == strlen(th->o->ws_event) && !memcmp(v[0].p, th->o->ws_event, v[0].n);
    if (!match && !is_terminal(&v[0]))
        return;
    struct rfl_pend *e = &c->ws->tab[i];
    if (!match) {
        st->ws_other_end += e->measured;
    } else if (e->measured) {
        rfl__record(th, &st->lat, e->t_intended);
        st->completed++;
        st->completed_window += th->now < th->t_end;
    }
    (void)ws_send_op(th, c, "unsubscribe", e->id, e->idlen); /* hygiene; may be dropped */
    pend_remove(c->ws, (uint32_t)i);
    th->outstanding--;
    rfl__unit_wake(th, c->unit);
}

/* Data frames: deliver whole messages, reassembling fragments. -1 on a protocol error. */
static int on_data(struct rfl_th *th, struct rfl_conn *c, const struct rfl_ws_frame *f)
{
    struct rfl_wsc *w = c->ws;
    if (f->opcode != RFL_WS_CONT && !w->in_msg && f->fin) {
        if (f->opcode == RFL_WS_TEXT)
            on_event(th, c, f->payload, (size_t)f->len);
        return 0;
    }
    if ((f->opcode == RFL_WS_CONT) != w->in_msg)
        return -1; /* a continuation with nothing to continue, or a new message inside one */
    if (!w->in_msg) {
        w->in_msg = true;
        w->mop = f->opcode;
        w->mlen = 0;
    }
    size_t need = (size_t)w->mlen + f->len;
    if (need > RFL_WS_MESSAGE_BYTES_MAX)
        return -1;
    if (need > w->mcap) {
        size_t cap = RFL_MIN(RFL_MAX(need, (size_t)w->mcap * 2), (size_t)RFL_WS_MESSAGE_BYTES_MAX);
        uint8_t *m = realloc(w->msg, cap);
        if (!m)
            return -1;
        w->msg = m;
        w->mcap = (uint32_t)cap;
    }
    memcpy(w->msg + w->mlen, f->payload, (size_t)f->len);
    w->mlen = (uint32_t)need;
    if (f->fin) {
        w->in_msg = false;
        if (w->mop == RFL_WS_TEXT)
            on_event(th, c, w->msg, w->mlen);
    }
    return 0;
}

/* One frame. Returns 0, or -1 when c is closed or closing. */
static int on_frame(struct rfl_th *th, struct rfl_conn *c, const struct rfl_ws_frame *f)
{
    switch (f->opcode) {
    case RFL_WS_PING:
        if (ws_send(th, c, RFL_WS_PONG, f->payload, (size_t)f->len) < 0)
            goto broken;
        return 0;
    case RFL_WS_PONG:
        return 0;
    case RFL_WS_CLOSE:
        if (!th->stopping)
            th->st->err_ws++;
        c->ws->closing = true;
        if (ws_send(th, c, RFL_WS_CLOSE, f->payload, f->len >= 2 ? 2 : 0) < 0)
            goto broken;
        c->close_after_send = true;
        return -1;
    default:
        if (on_data(th, c, f) < 0)
            goto broken;
        return 0;
    }
broken:
    th->st->err_ws++;
    rfl__conn_close(th, c, false);
    return -1;
}

/* The 101 answer. Returns bytes consumed (0: incomplete), or -1 after closing c. */
static long handshake_input(struct rfl_th *th, struct rfl_conn *c, const uint8_t *p, size_t n)
{
    struct rfl_resp_head head;
    struct rfl_span body;
    size_t used;
    int ev = rfl_resp_step(&c->resp, p, n, false, &used, &head, &body);
    if (ev == RFL_RESP_MORE)
        return 0;
    if (ev != RFL_RESP_HEAD || !rfl_ws_handshake_ok(&head, c->ws_key)) {
        th->st->err_ws++;
        rfl__conn_close(th, c, true);
        return -1;
    }
    c->state = RFL_C_OPEN;
    c->ws->in_msg = false;
    c->ws->closing = false;
    rfl__unit_wake(th, c->unit);
    return (long)used;
}

long rfl__ws_input(struct rfl_th *th, struct rfl_conn *c, const uint8_t *p, size_t n)
{
    size_t off = 0;
    if (c->ws->closing)
        return (long)n;
    if (c->state == RFL_C_HANDSHAKE) {
        long k = handshake_input(th, c, p, n);
        if (k <= 0)
            return k;
        off = (size_t)k;
    }
    while (off < n) {
        struct rfl_ws_frame f;
        long k = rfl_ws_frame_parse(p + off, n - off, RFL_WS_MESSAGE_BYTES_MAX, &f);
        if (k == RFL_WS_PARTIAL)
            break;
        if (k < 0) {
            th->st->err_ws++;
            rfl__conn_close(th, c, false);
            return -1;
        }
        off += (size_t)k;
        if (on_frame(th, c, &f) < 0)
            return -1;
    }
    return (long)off;
}

/* --- loss and timeouts ----------------------------------------------------------------- */

void rfl__ws_lost(struct rfl_th *th, struct rfl_conn *c)
{
    struct rfl_wsc *w = c->ws;
    th->st->err_lost += w->tlen;
    th->outstanding -= w->tlen;
    if (w->tab)
        memset(w->tab, 0, (size_t)w->tcap * sizeof(*w->tab));
    w->tlen = 0;
    w->in_msg = false;
    w->closing = false;
}

void rfl__ws_expire(struct rfl_th *th, struct rfl_conn *c, bool all)
{
    struct rfl_wsc *w = c->ws;
    uint32_t before = w->tlen;
    for (uint32_t i = 0; i < w->tcap && w->tlen;) {
        struct rfl_pend *e = &w->tab[i];
        if (!e->used || (!all && th->now - e->t_sent <= th->o->timeout_ns)) {
            i++;
            continue;
        }
        th->st->err_timeout++;
        th->outstanding--;
        if (!all)
            (void)ws_send_op(th, c, "unsubscribe", e->id, e->idlen);
        pend_remove(w, i); /* an entry may have moved into i: look at i again */
    }
    if (!all && w->tlen < before)
        rfl__unit_wake(th, c->unit);
}
