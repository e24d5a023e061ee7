/*
 * net/redis.c: a hiredis async connection driven by a shard's io_uring ring (net/redis.h
 * has the design).
 *
 * Two objects. struct rf_redis is the owner's handle: configuration, state, back-off, the
 * ring of pending commands (callback, argument, issue time, in reply order) and the tick
 * timer. struct rconn is one connect attempt: the hiredis context and its two poll
 * operations. hiredis frees its context whenever the connection fails (in the middle of a
 * read, a write or a connect), calling our cleanup hook first; the rconn then detaches from
 * the handle and cancels its polls, and is freed by the last poll completion. So a new
 * connection never shares an operation with an old one, and no completion ever finds
 * freed memory.
 *
 * Pending commands: hiredis runs callbacks in reply order, and every command we issue
 * passes the same shim and the handle as its privdata; the shim pops the oldest pending
 * entry and calls it. The entries' issue times give the timeout of the oldest.
 */
#include "net/redis.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#include <hiredis/async.h>

#include "engine/alloc.h"
#include "engine/rf.h"

#define PEND_INIT 64u

enum rstate {
    R_DOWN = 0,   /* waiting for the next try */
    R_CONNECTING, /* connect(2) in progress */
    R_UP,
    R_CLOSED, /* rf_redis_close: no more tries */
};

struct pend {
    rf_redis_cb cb;
    void *ud;
    uint64_t t_ms;
};

struct rconn;

struct rf_redis {
    struct rf_shard *sh;
    struct rf_redis_config cfg;
    struct rf_redis_hooks hooks;
    bool subscriber;
    enum rstate state;
    struct rconn *conn; /* the current attempt, or NULL */
    uint64_t since_ms;  /* R_CONNECTING: started; R_DOWN: when to try again */
    uint32_t backoff_ms;
    bool want_write;    /* hiredis has bytes to write; the flush writes them */
    bool flushing;      /* inside rf_redis_flush: a new addWrite needs a POLLOUT */
    /* pending commands, in reply order: a ring of pcap entries */
    struct pend *pend;
    uint32_t phead, pn, pcap;
    /* the tick */
    rf_op tick;
    struct __kernel_timespec ts;
    bool tick_armed, tick_removing;
    uint32_t nconns; /* rconns not freed yet: their polls may still complete */
    /* counters: the owner writes them relaxed; metrics read snapshots */
    _Atomic uint64_t n_commands, n_replies, n_failed, n_connects, n_connect_failures, n_drops,
        n_timeouts;
};

struct rconn {
    struct rf_redis *r; /* NULL once hiredis let go of the context */
    struct rf_redis *owner; /* always: counts us until our last completion */
    redisAsyncContext *ac;
    rf_op pin, pout;
    uint8_t inflight; /* poll SQEs whose completion is still due */
    bool pin_armed, pout_armed;
};

static void tick_arm(struct rf_redis *r);
static void try_connect(struct rf_redis *r);

static uint64_t mono_ms(void)
{
    struct timespec ts;

    /* Coarse (a few ms, from the vDSO without a clock read): timeouts are 10 ms and up. */
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void count(_Atomic uint64_t *c)
{
    /* Relaxed: a statistic, read as a snapshot. */
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* --- polls ------------------------------------------------------------------------------- */

static void rconn_maybe_free(struct rconn *c)
{
    if (!c->r && !c->inflight) {
        c->owner->nconns--;
        rf_free(c);
    }
}

static void poll_arm(struct rconn *c, rf_op *op, rf_op_fn fn, unsigned events)
{
    struct io_uring_sqe *sqe = rf__shard_sqe(c->r->sh);

    op->cb = fn;
    op->task = NULL;
    io_uring_prep_poll_add(sqe, c->ac->c.fd, events);
    io_uring_sqe_set_data(sqe, op);
    c->inflight++;
}

static void poll_remove(struct rf_shard *sh, rf_op *op)
{
    struct io_uring_sqe *sqe = rf__shard_sqe(sh);

    io_uring_prep_poll_remove(sqe, (__u64)(uintptr_t)op);
    io_uring_sqe_set_data64(sqe, RF_UD_IGNORE);
}

static void on_pin(rf_op *op, int res, uint32_t flags)
{
    struct rconn *c = rf_container_of(op, struct rconn, pin);

    (void)flags;
    c->inflight--;
    c->pin_armed = false;
    if (!c->r) {
        rconn_maybe_free(c);
        return;
    }
    (void)res; /* an error shows in the read: hiredis reports it */
    redisAsyncHandleRead(c->ac); /* may free the context: cleanup detaches c */
}

static void on_pout(rf_op *op, int res, uint32_t flags)
{
    struct rconn *c = rf_container_of(op, struct rconn, pout);

    (void)flags;
    (void)res;
    c->inflight--;
    c->pout_armed = false;
    if (!c->r) {
        rconn_maybe_free(c);
        return;
    }
    redisAsyncHandleWrite(c->ac); /* completes a connect, or writes the rest */
}

/* --- the hiredis event hooks -------------------------------------------------------------- */

static void ev_add_read(void *data)
{
    struct rconn *c = data;

    if (c->r && !c->pin_armed) {
        c->pin_armed = true;
        poll_arm(c, &c->pin, on_pin, POLLIN);
    }
}

static void ev_del_read(void *data)
{
    (void)data; /* the one-shot poll ends by itself; a stray completion reads nothing */
}

static void ev_add_write(void *data)
{
    struct rconn *c = data;
    struct rf_redis *r = c->r;

    if (!r)
        return;
    if (r->state == R_UP && !r->flushing) {
        r->want_write = true; /* the flush writes this iteration's commands at once */
        return;
    }
    if (!c->pout_armed) {
        c->pout_armed = true;
        poll_arm(c, &c->pout, on_pout, POLLOUT);
    }
}

static void ev_del_write(void *data)
{
    struct rconn *c = data;

    if (c->r)
        c->r->want_write = false;
}

/* hiredis is about to free the context: detach, cancel the polls, schedule a retry. */
static void ev_cleanup(void *data)
{
    struct rconn *c = data;
    struct rf_redis *r = c->r;

    if (!r)
        return;
    if (c->pin_armed)
        poll_remove(r->sh, &c->pin);
    if (c->pout_armed)
        poll_remove(r->sh, &c->pout);
    c->r = NULL;
    c->ac = NULL;
    r->conn = NULL;
    r->want_write = false;
    RF_ASSERT(r->pn == 0); /* hiredis failed every pending callback before this */
    bool was_up = r->state == R_UP;
    if (r->state != R_CLOSED) {
        r->state = R_DOWN;
        uint64_t jitter = r->sh->rng % (r->backoff_ms / 2 + 1);
        r->sh->rng = r->sh->rng * 6364136223846793005ull + 1442695040888963407ull;
        r->since_ms = mono_ms() + r->backoff_ms / 2 + jitter;
        r->backoff_ms = r->backoff_ms * 2 > r->cfg.backoff_max_ms ? r->cfg.backoff_max_ms
                                                                   : r->backoff_ms * 2;
        tick_arm(r);
    }
    rconn_maybe_free(c);
    if (was_up) {
        count(&r->n_drops);
        if (r->hooks.on_down)
            r->hooks.on_down(r->hooks.ud);
    }
}

/* --- commands ---------------------------------------------------------------------------- */

static void pend_pop(struct rf_redis *r, struct pend *out)
{
    RF_ASSERT(r->pn > 0);
    *out = r->pend[r->phead];
    r->phead = (r->phead + 1) & (r->pcap - 1);
    r->pn--;
}

/* Every command's callback: the oldest pending entry is this reply's. */
static void shim(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct rf_redis *r = privdata;
    struct pend p;

    (void)ac;
    pend_pop(r, &p);
    count(reply ? &r->n_replies : &r->n_failed);
    if (p.cb)
        p.cb(p.ud, reply);
}

static int pend_push(struct rf_redis *r, rf_redis_cb cb, void *ud)
{
    if (r->pn == r->pcap) {
        if (r->pcap >= r->cfg.pending_max)
            return -ENOBUFS;
        struct pend *np = rf_malloc(2 * (size_t)r->pcap * sizeof(*np));
        if (!np)
            return -ENOMEM;
        for (uint32_t k = 0; k < r->pn; k++)
            np[k] = r->pend[(r->phead + k) & (r->pcap - 1)];
        rf_free(r->pend);
        r->pend = np;
        r->phead = 0;
        r->pcap *= 2;
    }
    r->pend[(r->phead + r->pn) & (r->pcap - 1)] = (struct pend){cb, ud, mono_ms()};
    r->pn++;
    return 0;
}

/* Undo the newest push (hiredis refused the command). */
static void pend_unpush(struct rf_redis *r)
{
    RF_ASSERT(r->pn > 0);
    r->pn--;
}

/* Queue a command whatever the state (connecting: SELECT goes first). */
static int issue(struct rf_redis *r, rf_redis_cb cb, void *ud, int argc, const char **argv,
                 const size_t *lens, const char *raw, size_t raw_len)
{
    int rc, hrc;

    if (!r->conn)
        return -ENOTCONN;
    if ((rc = pend_push(r, cb, ud)) < 0)
        return rc;
    hrc = raw ? redisAsyncFormattedCommand(r->conn->ac, shim, r, raw, raw_len)
              : redisAsyncCommandArgv(r->conn->ac, shim, r, argc, argv, lens);
    if (hrc != REDIS_OK) { /* the context is disconnecting */
        pend_unpush(r);
        return -ENOTCONN;
    }
    count(&r->n_commands);
    tick_arm(r); /* something is pending: watch its time */
    return 0;
}

int rf_redis_cmd(struct rf_redis *r, rf_redis_cb cb, void *ud, int argc, const char **argv,
                 const size_t *lens)
{
    if (r->state != R_UP || r->subscriber)
        return -ENOTCONN;
    return issue(r, cb, ud, argc, argv, lens, NULL, 0);
}

int rf_redis_cmd_raw(struct rf_redis *r, rf_redis_cb cb, void *ud, const char *cmd, size_t len)
{
    if (r->state != R_UP || r->subscriber)
        return -ENOTCONN;
    return issue(r, cb, ud, 0, NULL, NULL, cmd, len);
}

/* Subscriber replies: messages and confirmations go to the hooks; the NULLs of a lost
 * connection are dropped (the owner learns of the loss through on_down). */
static void sub_shim(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct rf_redis *r = privdata;
    const redisReply *m = reply;

    (void)ac;
    if (!m || m->type != REDIS_REPLY_ARRAY || m->elements != 3 ||
        m->element[0]->type != REDIS_REPLY_STRING || m->element[1]->type != REDIS_REPLY_STRING)
        return;
    count(&r->n_replies);
    const char *kind = m->element[0]->str;
    if (strcmp(kind, "message") == 0 && m->element[2]->type == REDIS_REPLY_STRING) {
        if (r->hooks.on_message)
            r->hooks.on_message(r->hooks.ud, m->element[1]->str, m->element[1]->len,
                                m->element[2]->str, m->element[2]->len);
    } else if (strcmp(kind, "subscribe") == 0) {
        if (r->hooks.on_subscribed)
            r->hooks.on_subscribed(r->hooks.ud, m->element[1]->str, m->element[1]->len);
    }
}

static int sub_cmd(struct rf_redis *r, const char *verb, const char *channel, size_t len)
{
    const char *argv[2] = {verb, channel};
    size_t lens[2] = {strlen(verb), len};

    if (r->state != R_UP || !r->subscriber)
        return -ENOTCONN;
    if (redisAsyncCommandArgv(r->conn->ac, sub_shim, r, 2, argv, lens) != REDIS_OK)
        return -ENOMEM;
    count(&r->n_commands);
    return 0;
}

int rf_redis_subscribe(struct rf_redis *r, const char *channel, size_t len)
{
    return sub_cmd(r, "SUBSCRIBE", channel, len);
}

int rf_redis_unsubscribe(struct rf_redis *r, const char *channel, size_t len)
{
    return sub_cmd(r, "UNSUBSCRIBE", channel, len);
}

void rf_redis_flush(struct rf_redis *r)
{
    if (!r->want_write || !r->conn)
        return;
    r->want_write = false;
    r->flushing = true;
    redisAsyncHandleWrite(r->conn->ac); /* may fail and free the context */
    r->flushing = false;
}

/* --- connecting ---------------------------------------------------------------------------- */

static void up(struct rf_redis *r)
{
    r->state = R_UP;
    r->backoff_ms = r->cfg.backoff_min_ms;
    count(&r->n_connects);
    if (r->hooks.on_up)
        r->hooks.on_up(r->hooks.ud);
}

static void on_selected(void *ud, const redisReply *reply)
{
    struct rf_redis *r = ud;

    if (!reply)
        return; /* the connection went: cleanup handles it */
    if (reply->type == REDIS_REPLY_ERROR) {
        rf_log_error("\"msg\":\"redis: SELECT failed\",\"db\":%u,\"err\":\"%.100s\"",
                     r->cfg.db, reply->str);
        redisAsyncDisconnect(r->conn->ac); /* in a callback: hiredis defers it */
        return;
    }
    up(r);
}

/* Connected: up at once, or once the db is selected (SELECT is an ordinary command, so a
 * subscriber selects before it subscribes: the same URL means the same everywhere). */
static void on_connect(const redisAsyncContext *ac, int status)
{
    struct rconn *c = ac->ev.data;
    struct rf_redis *r = c->r;
    char db[16];

    if (!r)
        return;
    if (status != REDIS_OK) {
        count(&r->n_connect_failures); /* hiredis frees the context next: cleanup retries */
        return;
    }
    if (r->cfg.db == 0) {
        up(r);
        return;
    }
    const char *argv[2] = {"SELECT", db};
    size_t lens[2] = {6, (size_t)snprintf(db, sizeof(db), "%u", r->cfg.db)};
    (void)issue(r, on_selected, r, 2, argv, lens, NULL, 0); /* failing, the connect times out */
}

static void try_connect(struct rf_redis *r)
{
    struct rconn *c = rf_calloc(1, sizeof(*c));
    redisAsyncContext *ac;

    r->state = R_CONNECTING;
    r->since_ms = mono_ms();
    ac = c ? redisAsyncConnect(r->cfg.host, r->cfg.port) : NULL;
    if (!ac || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        rf_free(c);
        count(&r->n_connect_failures);
        r->state = R_DOWN;
        r->since_ms = mono_ms() + r->backoff_ms;
        r->backoff_ms = r->backoff_ms * 2 > r->cfg.backoff_max_ms ? r->cfg.backoff_max_ms
                                                                   : r->backoff_ms * 2;
        tick_arm(r);
        return;
    }
    c->r = r;
    c->owner = r;
    c->ac = ac;
    r->conn = c;
    r->nconns++;
    ac->ev.data = c;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect); /* arms the POLLOUT that sees it done */
    tick_arm(r);
}

/* --- the tick ------------------------------------------------------------------------------- */

static uint32_t tick_ms(const struct rf_redis *r)
{
    uint32_t t = r->cfg.timeout_ms / 4;

    return t < 5 ? 5 : t > 100 ? 100 : t;
}

static void on_tick(rf_op *op, int res, uint32_t flags)
{
    struct rf_redis *r = rf_container_of(op, struct rf_redis, tick);
    uint64_t now = mono_ms();

    (void)res;
    (void)flags;
    r->tick_armed = false;
    r->tick_removing = false;
    switch (r->state) {
    case R_CLOSED:
        return;
    case R_DOWN:
        if (now >= r->since_ms)
            try_connect(r);
        break;
    case R_CONNECTING:
        if (now - r->since_ms > r->cfg.timeout_ms) {
            count(&r->n_timeouts);
            count(&r->n_connect_failures);
            redisAsyncFree(r->conn->ac); /* cleanup schedules the retry */
        }
        break;
    case R_UP:
        if (r->pn && now - r->pend[r->phead].t_ms > r->cfg.timeout_ms) {
            count(&r->n_timeouts);
            rf_log_warn("\"msg\":\"redis: no reply in time, reconnecting\",\"host\":\"%s\","
                        "\"port\":%u,\"timeout_ms\":%u,\"pending\":%u",
                        r->cfg.host, r->cfg.port, r->cfg.timeout_ms, r->pn);
            redisAsyncFree(r->conn->ac);
        }
        break;
    }
    tick_arm(r);
}

/* Armed while there is something to watch: a connect, a retry, a pending command. */
static void tick_arm(struct rf_redis *r)
{
    if (r->tick_armed || r->state == R_CLOSED)
        return;
    if (r->state == R_UP && r->pn == 0)
        return;
    r->tick_armed = true;
    rf__shard_timer_arm(r->sh, &r->tick, &r->ts, tick_ms(r), on_tick);
}

/* --- the handle ------------------------------------------------------------------------------ */

int rf_redis_new(struct rf_shard *sh, const struct rf_redis_config *cfg,
                 const struct rf_redis_hooks *hooks, bool subscriber, struct rf_redis **out)
{
    struct rf_redis *r;

    RF_ASSERT(rf__cur_shard == sh);
    if (!cfg->host[0] || !cfg->port || !cfg->timeout_ms || !cfg->backoff_min_ms ||
        cfg->backoff_max_ms < cfg->backoff_min_ms || cfg->pending_max < PEND_INIT ||
        cfg->pending_max > RF_REDIS_PENDING_LIMIT)
        return -EINVAL;
    r = rf_calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->pend = rf_malloc(PEND_INIT * sizeof(*r->pend));
    if (!r->pend) {
        rf_free(r);
        return -ENOMEM;
    }
    r->pcap = PEND_INIT;
    r->sh = sh;
    r->cfg = *cfg;
    if (hooks)
        r->hooks = *hooks;
    r->subscriber = subscriber;
    r->backoff_ms = cfg->backoff_min_ms;
    try_connect(r);
    *out = r;
    return 0;
}

void rf_redis_close(struct rf_redis *r)
{
    bool was_up = r->state == R_UP;

    r->state = R_CLOSED;
    if (r->conn)
        redisAsyncFree(r->conn->ac); /* pending callbacks get NULL; cleanup detaches */
    if (r->tick_armed && !r->tick_removing) {
        r->tick_removing = true;
        rf__shard_timer_cancel(r->sh, &r->tick);
    }
    if (was_up && r->hooks.on_down)
        r->hooks.on_down(r->hooks.ud);
}

bool rf_redis_busy(const struct rf_redis *r)
{
    return r->tick_armed || r->nconns;
}

void rf_redis_free(struct rf_redis *r)
{
    if (!r)
        return;
    RF_ASSERT(!rf_redis_busy(r));
    rf_free(r->pend);
    rf_free(r);
}

bool rf_redis_up(const struct rf_redis *r)
{
    return r->state == R_UP;
}

uint32_t rf_redis_pending(const struct rf_redis *r)
{
    return r->pn;
}

void rf_redis_counters(const struct rf_redis *r, struct rf_redis_counters *out)
{
    /* Relaxed: snapshots of statistics. */
    out->commands = atomic_load_explicit(&r->n_commands, memory_order_relaxed);
    out->replies = atomic_load_explicit(&r->n_replies, memory_order_relaxed);
    out->failed = atomic_load_explicit(&r->n_failed, memory_order_relaxed);
    out->connects = atomic_load_explicit(&r->n_connects, memory_order_relaxed);
    out->connect_failures = atomic_load_explicit(&r->n_connect_failures, memory_order_relaxed);
    out->drops = atomic_load_explicit(&r->n_drops, memory_order_relaxed);
    out->timeouts = atomic_load_explicit(&r->n_timeouts, memory_order_relaxed);
}
