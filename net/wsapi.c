/*
 * net/wsapi.c: WebSocket subscriptions to executions' events.
 *
 * A WebSocket connection (struct wsconn) holds up to subs_max subscriptions. Each is a
 * watcher of one execution record (net/store.h) living on the connection's shard: when
 * the record changes, the store posts the subscription to this shard and `sub_notify`
 * writes every event past the last one sent, one text frame each, in seq order, then
 * ends the subscription after the execution's last event. So replay and live are one
 * path: subscribing with `after` = n first sends n+1 .. the newest, then whatever comes,
 * with no gap and no duplicate.
 *
 * Client messages (text frames, JSON objects):
 *   {"op": "subscribe", "execution_id": "...", "after": 0}
 *   {"op": "unsubscribe", "execution_id": "..."}
 * A bad message gets an error frame {"error": {"code", "message"}} and the connection
 * stays open; protocol violations are closed by the WebSocket layer (1002, 1007, 1009).
 * A subscriber whose queued output passes the server's bound is closed with 1008
 * (net/server.c); its subscriptions end with the connection.
 *
 * An execution this instance does not hold in memory is followed through Redis when the
 * daemon has it (net/rbridge.h): the subscription is then a follower on this shard, fed
 * from the execution's Redis stream and channel, with the same frames, order and end.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/alloc.h"
#include "net/url.h"
#include "net/ws.h"
#include "net/wsapi.h"

#define SEND_BATCH 64u /* event pointers copied per store call */

struct wsconn;

struct sub {
    struct rf_watch w;       /* a local execution's watcher */
    struct rf_rfollow *rf;   /* or a follower through Redis */
    struct wsconn *wc;
    struct sub *prev, *next;
    uint64_t sent; /* events sent: the next one is seq sent + 1 */
    bool ending;   /* unwatched; waiting for dispose */
    char id[RF_ID_BYTES];
};

struct wsconn {
    struct rf_store *st;
    struct rf_rbridge *rb;
    struct rf_conn *c;
    struct sub *subs;
    uint32_t nsubs, subs_max;
    uint32_t live;  /* subscriptions not disposed yet */
    bool closed;    /* the connection went away */
};

static void wsconn_maybe_free(struct wsconn *wc)
{
    if (wc->closed && wc->live == 0)
        rf_free(wc);
}

static void send_error(struct wsconn *wc, const char *code, const char *id, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));

static void send_error(struct wsconn *wc, const char *code, const char *id, const char *fmt,
                       ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
    if (o && id)
        json_object_set_new(o, "execution_id", json_string(id));
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (text)
        rf_conn_ws_send(wc->c, text, strlen(text));
    free(text);
    json_decref(o);
}

static void sub_unlink(struct sub *s)
{
    struct wsconn *wc = s->wc;

    s->ending = true;
    if (s->prev)
        s->prev->next = s->next;
    else
        wc->subs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    wc->nsubs--;
}

/* A follower's subscription ends at once (its follower never calls back after this). */
static void rsub_free(struct sub *s)
{
    struct wsconn *wc = s->wc;

    rf_free(s);
    wc->live--;
    wsconn_maybe_free(wc);
}

static void sub_end(struct sub *s)
{
    if (s->ending)
        return;
    sub_unlink(s);
    if (s->rf) {
        rf_rbridge_unfollow(s->rf);
        rsub_free(s);
        return;
    }
    rf_store_unwatch(&s->w);
}

static void sub_dispose(struct rf_watch *w)
{
    struct sub *s = rf_container_of(w, struct sub, w);
    struct wsconn *wc = s->wc;

    rf_free(s);
    wc->live--;
    wsconn_maybe_free(wc);
}

static void sub_notify(struct rf_watch *w)
{
    struct sub *s = rf_container_of(w, struct sub, w);
    const struct rf_evt *ev[SEND_BATCH];
    bool done = false;
    uint32_t n;

    if (s->ending || s->wc->closed)
        return;
    do {
        n = rf_store_events(w->x, s->sent, ev, SEND_BATCH, &done);
        for (uint32_t i = 0; i < n; i++) {
            if (rf_conn_ws_send(s->wc->c, ev[i]->s, ev[i]->len) < 0)
                return; /* closing (1008 or gone): the connection's end frees us */
            s->sent++;
        }
    } while (n == SEND_BATCH);
    if (done)
        sub_end(s); /* the execution's last event went out */
}

static struct sub *sub_find(struct wsconn *wc, const char *id)
{
    for (struct sub *s = wc->subs; s; s = s->next)
        if (strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

static struct sub *sub_new(struct wsconn *wc, const char *id, uint64_t after)
{
    struct sub *s = rf_calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->wc = wc;
    s->sent = after;
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->next = wc->subs;
    if (wc->subs)
        wc->subs->prev = s;
    wc->subs = s;
    wc->nsubs++;
    wc->live++;
    return s;
}

/* --- following through Redis -------------------------------------------------------------- */

static int rsub_event(void *ud, const char *text, size_t len)
{
    struct sub *s = ud;

    if (!s->wc->closed && rf_conn_ws_send(s->wc->c, text, len) == 0)
        s->sent++;
    return 0; /* a closing connection ends its subscriptions itself (ws_closed) */
}

static void rsub_end(void *ud, const char *code)
{
    struct sub *s = ud;

    if (code && !s->wc->closed)
        send_error(s->wc, code, s->id,
                   strcmp(code, "not_found") == 0 ? "execution %s does not exist"
                                                  : "execution %s: the server is stopping",
                   s->id);
    sub_unlink(s);
    rsub_free(s);
}

static int subscribe_remote(struct wsconn *wc, const char *id, uint64_t after)
{
    struct sub *s = sub_new(wc, id, after);
    int rc;

    if (!s) {
        send_error(wc, "no_memory", id, "out of memory");
        return -ENOMEM;
    }
    struct rf_rfollow_hooks hk = {.ud = s, .event = rsub_event, .end = rsub_end};
    rc = rf_rbridge_follow(wc->rb, id, after, &hk, &s->rf);
    if (rc < 0) {
        sub_unlink(s);
        rsub_free(s);
        send_error(wc, "unavailable", id,
                   "execution %s is not on this instance, and Redis, which would find it, is "
                   "not connected",
                   id);
        return rc;
    }
    return 0;
}

static int subscribe(struct wsconn *wc, const char *id, uint64_t after)
{
    struct rf_xrec *x;
    struct sub *s;

    if (sub_find(wc, id)) {
        send_error(wc, "already_subscribed", id, "already subscribed to %s", id);
        return -EEXIST;
    }
    if (wc->nsubs >= wc->subs_max) {
        send_error(wc, "limit", id, "at most %u subscriptions per connection", wc->subs_max);
        return -E2BIG;
    }
    x = rf_store_get(wc->st, id);
    if (!x) {
        if (wc->rb)
            return subscribe_remote(wc, id, after);
        send_error(wc, "not_found", id, "execution %s does not exist", id);
        return -ENOENT;
    }
    s = sub_new(wc, id, after);
    if (!s) {
        rf_xrec_release(x);
        send_error(wc, "no_memory", id, "out of memory");
        return -ENOMEM;
    }
    s->w.sh = rf_conn_shard(wc->c);
    s->w.notify = sub_notify;
    s->w.dispose = sub_dispose;
    rf_store_watch(x, &s->w); /* posts once: replay starts from that post */
    rf_xrec_release(x);
    return 0;
}

static bool id_ok(const char *id)
{
    return strlen(id) == RF_EXEC_ID_LEN - 1;
}

static void on_message(struct wsconn *wc, json_t *m)
{
    const char *op = json_string_value(json_object_get(m, "op"));
    json_t *jid = json_object_get(m, "execution_id");
    json_t *jafter = json_object_get(m, "after");
    const char *id = json_string_value(jid);
    struct sub *s;

    if (!op)
        return send_error(wc, "bad_message", NULL, "field op: a string is required");
    if (!id || !id_ok(id))
        return send_error(wc, "bad_message", NULL,
                          "field execution_id: an execution id (26 characters) is required");
    if (strcmp(op, "subscribe") == 0) {
        if (jafter && (!json_is_integer(jafter) || json_integer_value(jafter) < 0))
            return send_error(wc, "bad_message", id,
                              "field after: a non-negative integer is required");
        subscribe(wc, id, jafter ? (uint64_t)json_integer_value(jafter) : 0);
    } else if (strcmp(op, "unsubscribe") == 0) {
        if (!(s = sub_find(wc, id)))
            return send_error(wc, "not_subscribed", id, "not subscribed to %s", id);
        sub_end(s);
    } else {
        send_error(wc, "bad_message", id, "field op: \"%.32s\" is not subscribe or unsubscribe",
                   op);
    }
}

static void ws_text(void *ud, struct rf_conn *c, const char *msg, size_t len)
{
    struct wsconn *wc = ud;
    json_error_t jerr;
    json_t *m = json_loadb(msg, len, JSON_REJECT_DUPLICATES, &jerr);

    (void)c;
    if (!m || !json_is_object(m)) {
        send_error(wc, "bad_message", NULL, "a JSON object is required (column %d: %s)",
                   m ? 0 : jerr.column, m ? "not an object" : jerr.text);
        json_decref(m);
        return;
    }
    on_message(wc, m);
    json_decref(m);
}

static void ws_closed(void *ud, struct rf_conn *c)
{
    struct wsconn *wc = ud;

    (void)c;
    wc->closed = true;
    wc->live++; /* a disposal inside the loop must not free wc under us */
    while (wc->subs)
        sub_end(wc->subs);
    wc->live--;
    wsconn_maybe_free(wc);
}

static const struct rf_ws_hooks hooks = {.on_text = ws_text, .on_close = ws_closed};

void rf_wsapi_upgrade(rf_engine *eng, struct rf_store *st, struct rf_rbridge *rb,
                      struct rf_hreq *r, uint32_t subs_max)
{
    char accept[RF_WS_ACCEPT_LEN + 1], id[RF_EXEC_ID_LEN + 8], abuf[24];
    uint64_t after = 0;
    struct rf_xrec *x = NULL;
    struct wsconn *wc;
    int status, n;

    (void)eng;
    status = rf_ws_handshake_check(r->h, accept);
    if (status == 405)
        return rf_resp_error(&r->x, 405, "method_not_allowed", "Allow: GET\r\n", NULL,
                             "a WebSocket upgrade must be a GET");
    if (status == 426)
        return rf_resp_error(&r->x, 426, "upgrade_required", "Sec-WebSocket-Version: 13\r\n",
                             NULL, "Sec-WebSocket-Version must be 13");
    if (status)
        return rf_resp_error(&r->x, 400, "bad_handshake", NULL, NULL,
                             "not a valid WebSocket upgrade (RFC 6455 4.2.1)");
    n = rf_query_get(r->h->query, "execution_id", id, sizeof(id));
    bool remote = false, want = n >= 0;
    if (n >= 0) {
        if (!id_ok(id) || (!(x = rf_store_get(st, id)) && !rb))
            return rf_resp_error(&r->x, 404, "not_found", NULL, NULL,
                                 "execution %s does not exist", id);
        remote = !x; /* followed through Redis: a frame tells if it does not exist */
        n = rf_query_get(r->h->query, "after", abuf, sizeof(abuf));
        if (n >= 0 && rf_parse_u64((struct rf_slice){abuf, (uint32_t)n}, UINT32_MAX, &after)) {
            rf_xrec_release(x);
            return rf_resp_error(&r->x, 400, "bad_query", NULL, NULL,
                                 "query parameter after: must be a non-negative integer");
        }
    } else if (n != -ENOENT) {
        return rf_resp_error(&r->x, 400, "bad_query", NULL, NULL,
                             "query parameter execution_id: not an execution id");
    }
    wc = rf_calloc(1, sizeof(*wc));
    if (!wc || rf_conn_ws_upgrade(&r->x, accept, &hooks, wc) < 0) {
        rf_free(wc);
        rf_xrec_release(x);
        return rf_resp_error(&r->x, 500, "no_memory", NULL, NULL, "out of memory");
    }
    wc->st = st;
    wc->rb = rb;
    wc->c = r->x.c;
    wc->subs_max = subs_max;
    if (x) {
        subscribe(wc, x->id, after);
        rf_xrec_release(x);
    } else if (want && remote) {
        subscribe_remote(wc, id, after);
    }
}
