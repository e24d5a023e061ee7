/*
 * net/revents.c: live events across instances through Redis (net/rbridge.h has the
 * design; docs/redis.md the reasons).
 *
 * Out. The journal tells us (rb_publish, on the execution's home shard) once events
 * [0, n) of a record are durable; we send what is new, in calls of at most
 * RB_PUB_EVENTS_MAX events, one call per record in flight at a time, to the publish
 * script, which adds each event to the execution's stream with entry id 0-<seq> and
 * publishes it on the channel of the same name. Publishing only durable events means
 * Redis never holds an event that recovery could write differently. A record whose
 * publish fails (the connection is down) waits, retained, on the shard's retry list until
 * the connection is back; the list is bounded, and what falls off it is counted.
 *
 * In. A follower (one per WebSocket subscription to an execution that is not in this
 * instance's memory) lives on its connection's shard:
 *
 *   SUB ──confirmed──> READ ──page full──> READ ...
 *                       │  └─nothing, nothing seen──> TAIL ──no stream──> POLL ──> READ
 *                       v                                   (not_found after follow_wait)
 *                     drain buffer ──gap──> READ
 *                       v
 *                     LIVE ──gap──> READ;  the last event ──> end
 *
 * It subscribes to the channel first and reads the stream only once Redis confirmed the
 * subscription, so every event is in the read or arrives live (or both: duplicates are
 * dropped by seq). Live messages that arrive while it reads are buffered (bounded: past
 * the bound they are dropped, and the next read fetches them from the stream). The
 * channel's subscription is shared by the shard's followers of one execution. When the
 * subscriber connection drops, the channels are subscribed again once it is back and
 * every follower reads again from where it was.
 */
#include "net/rbridge_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/alloc.h"
#include "engine/jparse.h"

#define READ_COUNT      512u  /* stream entries per read */
#define BUF_MAX         4096u /* live messages buffered per follower during a read */
#define RETRY_MS        200u  /* a read that failed is tried again after this */
#define POLL_MS         250u  /* an execution not in Redis yet is looked for this often */
#define ARGV_MAX        (5u + 2u * RB_PUB_EVENTS_MAX)
#define SEQ_TEXT_BYTES  24u

static _Thread_local struct rb_shard *rb_cur; /* the calling shard's side */

static uint64_t mono_ms(void)
{
    return rf_now_ns() / 1000000u;
}

int rb_events_init(struct rb_shard *rs)
{
    rb_cur = rs;
    rs->argv = rf_malloc(ARGV_MAX * sizeof(*rs->argv));
    rs->lens = rf_malloc(ARGV_MAX * sizeof(*rs->lens));
    rs->seqbuf = rf_malloc(RB_PUB_EVENTS_MAX * SEQ_TEXT_BYTES);
    return rs->argv && rs->lens && rs->seqbuf ? 0 : -ENOMEM;
}

void rb_events_fini(struct rb_shard *rs)
{
    rf_free(rs->argv);
    rf_free(rs->lens);
    rf_free(rs->seqbuf);
    rs->argv = NULL;
    rs->lens = NULL;
    rs->seqbuf = NULL;
}

/* --- out: publishing ------------------------------------------------------------------------ */

static void pub_send(struct rb_shard *rs, struct rf_xrec *x);

static void retry_add(struct rb_shard *rs, struct rf_xrec *x)
{
    if (x->pub_listed)
        return;
    if (rs->quitting || rs->pub_retry_n >= RB_PUB_RETRY_MAX) {
        rb_count(&rs->b->unpublished, x->pub_durable - x->published);
        x->published = x->pub_durable; /* given up: a later batch starts past them */
        return;
    }
    x->pub_listed = true;
    x->pub_next = rs->pub_retry;
    rs->pub_retry = rf_xrec_retain(x);
    rs->pub_retry_n++;
}

static void on_pub(void *ud, const redisReply *r)
{
    struct rf_xrec *x = ud;
    struct rb_shard *rs = rb_cur;
    uint32_t to = x->pub_sending;

    rs->pub_inflight--;
    x->pub_sending = 0;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (r)
            rf_log_warn("\"msg\":\"redis: publishing events failed\",\"execution_id\":\"%s\","
                        "\"err\":\"%.120s\"",
                        x->id, r->str);
        retry_add(rs, x);
    } else {
        if (r->type == REDIS_REPLY_INTEGER && r->integer > 0)
            rb_count(&rs->b->published, (uint64_t)r->integer);
        x->published = to;
        pub_send(rs, x);
    }
    rf_xrec_release(x); /* the call's */
}

/* Send x's durable events not published yet, if no call for x is in flight. */
static void pub_send(struct rb_shard *rs, struct rf_xrec *x)
{
    struct rf_rbridge *b = rs->b;
    char key[RB_KEY_BYTES], ttl[16];
    uint32_t from = x->published, n;
    int argc = 0;

    if (x->pub_sending || from >= x->pub_durable)
        return;
    if (!rf_redis_up(rs->cmd))
        return retry_add(rs, x);
    n = RF_MIN(x->pub_durable - from, RB_PUB_EVENTS_MAX);
    rs->argv[argc] = "EVALSHA", rs->lens[argc++] = 7;
    rs->argv[argc] = b->pub_sha, rs->lens[argc++] = 40;
    rs->argv[argc] = "1", rs->lens[argc++] = 1;
    rs->argv[argc] = key, rs->lens[argc++] = rb_key(b, "events", x->id, RF_ID_BYTES - 1, key);
    rs->argv[argc] = ttl;
    rs->lens[argc++] = (size_t)snprintf(ttl, sizeof(ttl), "%u", b->cfg.events_ttl_s);
    rf_spin_lock(&x->lock);
    for (uint32_t k = 0; k < n; k++) {
        const struct rf_evt *ev = x->ev[from + k]; /* texts never move while x is held */
        char *seq = rs->seqbuf + k * SEQ_TEXT_BYTES;
        rs->argv[argc] = seq;
        rs->lens[argc++] = (size_t)snprintf(seq, SEQ_TEXT_BYTES, "%u", from + k + 1);
        rs->argv[argc] = ev->s;
        rs->lens[argc++] = ev->len;
    }
    rf_spin_unlock(&x->lock);
    if (rf_redis_cmd(rs->cmd, on_pub, x, argc, rs->argv, rs->lens) < 0)
        return retry_add(rs, x);
    x->pub_sending = from + n;
    rs->pub_inflight++;
    rf_xrec_retain(x); /* the call's */
}

void rb_publish(void *ud, struct rf_xrec *x, uint32_t nev, bool recovered)
{
    struct rb_shard *rs = rb_mine(ud);

    /* A recovered execution older than a stream lives: its stream is gone, leave it so. */
    if (recovered && rf_wall_us() - x->created_us > (int64_t)rs->b->cfg.events_ttl_s * 1000000)
        return;
    if (nev > x->pub_durable)
        x->pub_durable = nev;
    pub_send(rs, x);
}

void rb_events_cmd_up(struct rb_shard *rs)
{
    struct rf_xrec *x = rs->pub_retry;

    rs->pub_retry = NULL;
    rs->pub_retry_n = 0;
    while (x) {
        struct rf_xrec *next = x->pub_next;
        x->pub_listed = false;
        pub_send(rs, x);
        rf_xrec_release(x); /* the list's */
        x = next;
    }
}

/* --- in: following ------------------------------------------------------------------------------- */

enum { F_SUB = 1, F_READ, F_TAIL, F_POLL, F_LIVE };

struct fmsg {
    uint64_t seq;
    uint32_t len;
    bool last;
    char text[];
};

struct rbchan {
    struct rbchan *next;   /* in the bucket */
    struct rf_rfollow *fs; /* its followers (through cnext) */
    bool subscribed;       /* SUBSCRIBE sent on the current connection */
    bool confirmed;        /* and confirmed */
    uint32_t len;
    char name[RB_KEY_BYTES];
};

struct rf_rfollow {
    struct rb_shard *rs;
    struct rbchan *ch;
    struct rf_rfollow *cnext;
    struct rf_rfollow_hooks h;
    char id[RF_ID_BYTES];
    uint64_t sent;       /* the last seq handed to the hook */
    uint8_t state;       /* F_* */
    bool reread;         /* the channel was (re)confirmed during a read: read once more */
    bool seen;           /* the stream existed, or an event was delivered */
    bool dead;           /* ended or unfollowed: no hook runs any more */
    bool timer_armed;
    uint32_t ops;        /* replies and timer completions still due */
    uint64_t started_ms;
    struct fmsg **buf;   /* buffered live messages, by seq */
    uint32_t nbuf, bufcap;
    rf_op timer;
    struct __kernel_timespec ts;
};

static uint32_t chan_bucket(const char *name, size_t len)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)name[i]) * 16777619u;
    return h & (RB_CHAN_BUCKETS - 1);
}

static struct rbchan **chan_slot(struct rb_shard *rs, const char *name, size_t len)
{
    struct rbchan **pp = &rs->chans[chan_bucket(name, len)];

    while (*pp && ((*pp)->len != len || memcmp((*pp)->name, name, len) != 0))
        pp = &(*pp)->next;
    return pp;
}

static void f_maybe_free(struct rf_rfollow *f)
{
    if (!f->dead || f->ops)
        return;
    f->rs->nfollow_mem--;
    rf_free(f);
}

static void buf_clear(struct rf_rfollow *f)
{
    for (uint32_t k = 0; k < f->nbuf; k++)
        rf_free(f->buf[k]);
    rf_free(f->buf);
    f->buf = NULL;
    f->nbuf = f->bufcap = 0;
}

/* The follower goes: out of its channel (unsubscribed when it was the last), no hooks. */
static void f_kill(struct rf_rfollow *f)
{
    struct rb_shard *rs = f->rs;
    struct rbchan *ch = f->ch;

    if (f->dead)
        return;
    f->dead = true;
    rs->nfollow--;
    for (struct rf_rfollow **pp = &ch->fs; *pp; pp = &(*pp)->cnext)
        if (*pp == f) {
            *pp = f->cnext;
            break;
        }
    if (!ch->fs) {
        struct rbchan **cp = chan_slot(rs, ch->name, ch->len);
        *cp = ch->next;
        if (ch->subscribed && rf_redis_up(rs->sub))
            (void)rf_redis_unsubscribe(rs->sub, ch->name, ch->len);
        rf_free(ch);
    }
    buf_clear(f);
    if (f->timer_armed)
        rf__shard_timer_cancel(rs->sh, &f->timer); /* its completion is still counted */
    f_maybe_free(f);
}

static void f_end(struct rf_rfollow *f, const char *code)
{
    if (f->dead)
        return;
    f->h.end(f->h.ud, code);
    f_kill(f);
}

/* An event's seq and whether it is the execution's last. false: not one of ours. */
static bool parse_event(const char *text, size_t len, uint64_t *seq, bool *last)
{
    json_t *o = rf_json_parse(text, len);
    json_t *js = json_object_get(o, "seq");
    const char *type = json_string_value(json_object_get(o, "type"));
    bool ok = json_is_integer(js) && json_integer_value(js) > 0 && type;

    if (ok) {
        *seq = (uint64_t)json_integer_value(js);
        *last = strcmp(type, "execution.succeeded") == 0 ||
                strcmp(type, "execution.failed") == 0 || strcmp(type, "execution.canceled") == 0;
    }
    json_decref(o);
    return ok;
}

/* Hand one event to the hook. false when the follower is gone after it. */
static bool deliver(struct rf_rfollow *f, uint64_t seq, const char *text, size_t len, bool last)
{
    f->sent = seq;
    f->seen = true;
    if (f->h.event(f->h.ud, text, len) < 0) {
        f_kill(f);
        return false;
    }
    if (last) {
        f_end(f, NULL);
        return false;
    }
    return true;
}

static void buffer(struct rf_rfollow *f, uint64_t seq, const char *text, size_t len, bool last)
{
    uint32_t at = f->nbuf;
    struct fmsg *m;

    if (f->nbuf == BUF_MAX)
        return; /* the next read fetches it from the stream */
    while (at > 0 && f->buf[at - 1]->seq >= seq) {
        if (f->buf[at - 1]->seq == seq)
            return; /* already held */
        at--;
    }
    if (f->nbuf == f->bufcap) {
        uint32_t cap = f->bufcap ? f->bufcap * 2 : 16;
        struct fmsg **nb = rf_realloc(f->buf, cap * sizeof(*nb));
        if (!nb)
            return;
        f->buf = nb;
        f->bufcap = cap;
    }
    if (!(m = rf_malloc(sizeof(*m) + len)))
        return;
    m->seq = seq;
    m->len = (uint32_t)len;
    m->last = last;
    memcpy(m->text, text, len);
    if (at < f->nbuf)
        memmove(f->buf + at + 1, f->buf + at, (f->nbuf - at) * sizeof(*f->buf));
    f->buf[at] = m;
    f->nbuf++;
}

static void read_start(struct rf_rfollow *f);

static void on_timer(rf_op *op, int res, uint32_t flags)
{
    struct rf_rfollow *f = rf_container_of(op, struct rf_rfollow, timer);

    (void)res;
    (void)flags;
    f->ops--;
    f->timer_armed = false;
    if (f->dead)
        return f_maybe_free(f);
    read_start(f);
}

static void poll_later(struct rf_rfollow *f, uint32_t ms)
{
    f->state = F_POLL;
    f->timer_armed = true;
    f->ops++;
    rf__shard_timer_arm(f->rs->sh, &f->timer, &f->ts, ms, on_timer);
}

/* After a read: the buffered messages that follow on, then live (or read again on a gap).
 * Each message leaves the buffer before it is delivered: a delivery may end f. */
static void drain(struct rf_rfollow *f)
{
    while (f->nbuf && f->buf[0]->seq <= f->sent + 1) {
        struct fmsg *m = f->buf[0];
        f->nbuf--;
        memmove(f->buf, f->buf + 1, f->nbuf * sizeof(*f->buf));
        bool go = m->seq != f->sent + 1 || deliver(f, m->seq, m->text, m->len, m->last);
        rf_free(m);
        if (!go)
            return; /* f is gone */
    }
    if (f->nbuf) /* a gap before the next buffered one: it is in the stream */
        return read_start(f);
    f->state = f->ch->confirmed ? F_LIVE : F_SUB;
}

static void on_tail(void *ud, const redisReply *r)
{
    struct rf_rfollow *f = ud;
    uint64_t seq = 0;
    bool last = false;

    f->ops--;
    if (f->dead)
        return f_maybe_free(f);
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return poll_later(f, RETRY_MS);
    if (r->elements == 0) { /* no stream (yet) */
        if (mono_ms() - f->started_ms >= f->rs->b->cfg.follow_wait_ms)
            return f_end(f, "not_found");
        return poll_later(f, POLL_MS);
    }
    const redisReply *e = r->element[0];
    if (e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
        e->element[1]->type == REDIS_REPLY_ARRAY && e->element[1]->elements == 2) {
        const redisReply *t = e->element[1]->element[1];
        if (t->type == REDIS_REPLY_STRING)
            (void)parse_event(t->str, t->len, &seq, &last);
    }
    f->seen = true;
    if (seq > f->sent)
        return read_start(f); /* added since the read */
    if (last)
        return f_end(f, NULL); /* finished before `after`: nothing more will come */
    drain(f);
}

static void tail_start(struct rf_rfollow *f)
{
    const char *argv[5] = {"XREVRANGE", f->ch->name, "+", "-", "COUNT"};
    const char *av[6] = {argv[0], argv[1], argv[2], argv[3], argv[4], "1"};
    size_t lens[6] = {9, f->ch->len, 1, 1, 5, 1};

    f->state = F_TAIL;
    if (rf_redis_cmd(f->rs->cmd, on_tail, f, 6, av, lens) < 0)
        return poll_later(f, RETRY_MS);
    f->ops++;
}

static bool entry_event(const redisReply *e, uint64_t *seq, const char **text, size_t *len)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY ||
        e->element[1]->elements != 2 || e->element[1]->element[1]->type != REDIS_REPLY_STRING)
        return false;
    const char *id = e->element[0]->str;
    if (strncmp(id, "0-", 2) != 0)
        return false;
    *seq = strtoull(id + 2, NULL, 10);
    *text = e->element[1]->element[1]->str;
    *len = e->element[1]->element[1]->len;
    return *seq > 0;
}

static void on_range(void *ud, const redisReply *r)
{
    struct rf_rfollow *f = ud;

    f->ops--;
    if (f->dead)
        return f_maybe_free(f);
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return poll_later(f, RETRY_MS);
    for (size_t k = 0; k < r->elements; k++) {
        uint64_t seq, s2;
        const char *text;
        size_t len;
        bool last = false;
        if (!entry_event(r->element[k], &seq, &text, &len) || seq <= f->sent)
            continue;
        (void)parse_event(text, len, &s2, &last);
        /* seq > sent + 1 would be a hole in the stream (trimmed): deliver what is there */
        if (!deliver(f, seq, text, len, last))
            return;
    }
    if (r->elements == READ_COUNT || f->reread) {
        f->reread = false;
        return read_start(f); /* the next page, or what came before a new confirmation */
    }
    if (!f->seen)
        return tail_start(f);
    drain(f);
}

static void read_start(struct rf_rfollow *f)
{
    char from[SEQ_TEXT_BYTES + 2], count[16];
    const char *argv[6] = {"XRANGE", f->ch->name, from, "+", "COUNT", count};
    size_t lens[6] = {6, f->ch->len, (size_t)snprintf(from, sizeof(from), "0-%llu",
                                                      (unsigned long long)(f->sent + 1)),
                      1, 5, (size_t)snprintf(count, sizeof(count), "%u", READ_COUNT)};

    f->state = F_READ;
    f->reread = false;
    if (rf_redis_cmd(f->rs->cmd, on_range, f, 6, argv, lens) < 0)
        return poll_later(f, RETRY_MS);
    f->ops++;
}

/* A live message on a channel this shard follows. */
static void live(struct rf_rfollow *f, uint64_t seq, const char *text, size_t len, bool last)
{
    if (seq <= f->sent)
        return;
    if (f->state != F_LIVE) {
        buffer(f, seq, text, len, last);
        return;
    }
    if (seq == f->sent + 1) {
        deliver(f, seq, text, len, last);
        return;
    }
    buffer(f, seq, text, len, last); /* a gap: what is missing is in the stream */
    read_start(f);
}

void rb_events_message(void *ud, const char *ch, size_t ch_len, const char *msg, size_t len)
{
    struct rb_shard *rs = ud;
    struct rbchan *c = *chan_slot(rs, ch, ch_len);
    uint64_t seq;
    bool last;

    if (!c || !parse_event(msg, len, &seq, &last))
        return;
    for (struct rf_rfollow *f = c->fs, *next; f; f = next) {
        next = f->cnext; /* f may end and leave the channel (which then goes with the last) */
        bool lastf = !next;
        live(f, seq, msg, len, last);
        if (lastf)
            break; /* the channel may be freed now */
    }
}

void rb_events_subscribed(void *ud, const char *ch, size_t ch_len)
{
    struct rb_shard *rs = ud;
    struct rbchan *c = *chan_slot(rs, ch, ch_len);

    if (!c || c->confirmed)
        return;
    c->confirmed = true;
    for (struct rf_rfollow *f = c->fs, *next; f; f = next) {
        next = f->cnext;
        bool lastf = !next;
        if (f->state == F_SUB || f->state == F_LIVE)
            read_start(f);
        else if (f->state == F_READ || f->state == F_TAIL)
            f->reread = true;
        if (lastf)
            break;
    }
}

static void chan_subscribe(struct rb_shard *rs, struct rbchan *c)
{
    if (rf_redis_subscribe(rs->sub, c->name, c->len) == 0)
        c->subscribed = true;
}

void rb_events_sub_up(struct rb_shard *rs)
{
    for (uint32_t i = 0; i < RB_CHAN_BUCKETS; i++)
        for (struct rbchan *c = rs->chans[i]; c; c = c->next)
            chan_subscribe(rs, c);
}

void rb_events_sub_down(struct rb_shard *rs)
{
    for (uint32_t i = 0; i < RB_CHAN_BUCKETS; i++)
        for (struct rbchan *c = rs->chans[i]; c; c = c->next) {
            c->subscribed = c->confirmed = false;
            for (struct rf_rfollow *f = c->fs; f; f = f->cnext)
                if (f->state == F_LIVE)
                    f->state = F_SUB; /* read again once subscribed again */
        }
}

int rf_rbridge_follow(struct rf_rbridge *b, const char *id, uint64_t after,
                      const struct rf_rfollow_hooks *hooks, struct rf_rfollow **out)
{
    struct rb_shard *rs = rb_mine(b);
    char name[RB_KEY_BYTES];
    size_t len = rb_key(b, "events", id, strlen(id), name);
    struct rbchan **cp, *c;
    struct rf_rfollow *f;

    if (rs->quitting || !rf_redis_up(rs->sub) || !rf_redis_up(rs->cmd))
        return -ENOTCONN;
    if (!(f = rf_calloc(1, sizeof(*f))))
        return -ENOMEM;
    cp = chan_slot(rs, name, len);
    if (!(c = *cp)) {
        if (!(c = rf_calloc(1, sizeof(*c)))) {
            rf_free(f);
            return -ENOMEM;
        }
        memcpy(c->name, name, len + 1);
        c->len = (uint32_t)len;
        *cp = c;
        chan_subscribe(rs, c);
    }
    f->rs = rs;
    f->ch = c;
    f->h = *hooks;
    snprintf(f->id, sizeof(f->id), "%s", id);
    f->sent = after;
    f->started_ms = mono_ms();
    f->cnext = c->fs;
    c->fs = f;
    rs->nfollow++;
    rs->nfollow_mem++;
    rb_count(&b->follows, 1);
    if (c->confirmed)
        read_start(f);
    else
        f->state = F_SUB;
    *out = f;
    return 0;
}

void rf_rbridge_unfollow(struct rf_rfollow *f)
{
    f_kill(f);
}

void rb_events_quit(struct rb_shard *rs)
{
    struct rf_xrec *x = rs->pub_retry;

    for (uint32_t i = 0; i < RB_CHAN_BUCKETS; i++)
        while (rs->chans[i]) /* the last follower frees the channel */
            f_end(rs->chans[i]->fs, "unavailable");
    rs->pub_retry = NULL;
    rs->pub_retry_n = 0;
    while (x) {
        struct rf_xrec *next = x->pub_next;
        x->pub_listed = false;
        rb_count(&rs->b->unpublished, x->pub_durable - x->published);
        rf_xrec_release(x);
        x = next;
    }
}
