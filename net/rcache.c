/*
 * net/rcache.c: the result cache's remote tier on Redis (storage/cache.h has the contract,
 * net/rbridge.h the keys).
 *
 * A lookup is a small state machine in the engine's request (struct rf_rcache_req):
 *
 *   GET cache ──hit──> answer 1 (the JSON text parsed)
 *      │ miss
 *      v
 *   SET lease NX PX ──taken by us──> answer 0 (run, then store or abandon)
 *      │ held by another runner
 *      v
 *   WAIT (a ring timer: 5 ms, doubling to 100 ms) ──> GET cache again ...
 *
 * until a hit, our lease, or the deadline (the lease's length and a timeout past the first
 * wait: the holder is gone without giving the lease back, and its lease expired), when the
 * answer is "unavailable" and the node runs without a lease. Every command is on the
 * asking shard's connection, so a lookup's callbacks, timer and answer are on its shard. A
 * connection that is down answers at once; one that fails mid-lookup answers "unavailable"
 * through the NULL reply every pending command gets.
 *
 * Values are the node output's compact JSON text; a value that does not parse (written by
 * something else) is a miss. Stores and lease releases are fire and forget: a store lost
 * to a failing connection only costs a later run.
 */
#include "net/rbridge_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "engine/alloc.h"
#include "engine/jcs.h"
#include "engine/jparse.h"

#define WAIT_MS_FIRST 5u
#define WAIT_MS_MAX   100u

enum { RQ_GET = 1, RQ_LEASE, RQ_WAIT };

static uint64_t mono_ms(void)
{
    return rf_now_ns() / 1000000u;
}

/* "<prefix>:<kind>:<32 hex digits>" into out (RB_KEY_BYTES); its length. */
static size_t hex_key(const struct rf_rbridge *b, const char *kind, const uint8_t k[16],
                      char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t pn = strlen(b->cfg.prefix), kn = strlen(kind), n = 0;

    RF_ASSERT(pn + kn + 34 < RB_KEY_BYTES);
    memcpy(out, b->cfg.prefix, pn);
    n = pn;
    out[n++] = ':';
    memcpy(out + n, kind, kn);
    n += kn;
    out[n++] = ':';
    for (int i = 0; i < 16; i++) {
        out[n++] = digits[k[i] >> 4];
        out[n++] = digits[k[i] & 15];
    }
    out[n] = '\0';
    return n;
}

static void answer(struct rf_rcache_req *req, int res, json_t *value)
{
    struct rf_rbridge *b = req->bud;

    if (res == 1)
        rb_count(&b->hits, 1);
    else if (res == 0)
        rb_count(&b->misses, 1);
    else if (res != -ECANCELED)
        rb_count(&b->bypassed, 1);
    req->state = 0;
    req->done(req, res, value);
}

static int get_issue(struct rf_rcache_req *req);
static void on_wait(rf_op *op, int res, uint32_t flags);

static void on_lease(void *ud, const redisReply *r)
{
    struct rf_rcache_req *req = ud;
    struct rf_rbridge *b = req->bud;

    if (!r || r->type == REDIS_REPLY_ERROR)
        return answer(req, -EIO, NULL);
    if (r->type == REDIS_REPLY_STATUS) { /* OK: the lease is ours */
        if (req->canceled) {
            b->ops.abandon(b, req->key);
            return answer(req, -ECANCELED, NULL);
        }
        return answer(req, 0, NULL);
    }
    /* nil: another runner holds it. Wait for its result. */
    if (req->canceled)
        return answer(req, -ECANCELED, NULL);
    uint64_t now = mono_ms();
    if (!req->deadline_ms) {
        req->deadline_ms = now + req->lease_ms + b->cfg.conn.timeout_ms;
        rb_count(&b->lease_waits, 1);
    }
    if (now >= req->deadline_ms)
        return answer(req, -ETIMEDOUT, NULL);
    req->wait_ms = req->wait_ms ? RF_MIN(req->wait_ms * 2, WAIT_MS_MAX) : WAIT_MS_FIRST;
    req->state = RQ_WAIT;
    rf__shard_timer_arm(rf__cur_shard, &req->timer, &req->ts, req->wait_ms, on_wait);
}

static void on_wait(rf_op *op, int res, uint32_t flags)
{
    struct rf_rcache_req *req = rf_container_of(op, struct rf_rcache_req, timer);
    int rc;

    (void)res;
    (void)flags;
    if (req->canceled)
        return answer(req, -ECANCELED, NULL);
    if ((rc = get_issue(req)) < 0)
        answer(req, rc, NULL);
}

static void lease_issue(struct rf_rcache_req *req)
{
    struct rf_rbridge *b = req->bud;
    char key[RB_KEY_BYTES], px[16];
    const char *argv[6] = {"SET", key, b->token, "NX", "PX", px};
    size_t lens[6] = {3, hex_key(b, "lease", req->key, key), 32, 2, 2,
                      (size_t)snprintf(px, sizeof(px), "%u", req->lease_ms)};
    int rc;

    req->state = RQ_LEASE;
    if ((rc = rf_redis_cmd(rb_mine(b)->cmd, on_lease, req, 6, argv, lens)) < 0)
        answer(req, rc, NULL);
}

static void on_get(void *ud, const redisReply *r)
{
    struct rf_rcache_req *req = ud;

    if (!r || r->type == REDIS_REPLY_ERROR)
        return answer(req, -EIO, NULL);
    if (req->canceled)
        return answer(req, -ECANCELED, NULL);
    if (r->type == REDIS_REPLY_STRING) {
        json_t *v = rf_json_parse(r->str, r->len);
        if (v)
            return answer(req, 1, v);
    }
    lease_issue(req); /* a miss (nil, or a value that is not ours) */
}

/* GET in RESP, written here: hiredis's printf-style formatting costs more than the rest
 * of a lookup's command side. */
static int get_issue(struct rf_rcache_req *req)
{
    struct rf_rbridge *b = req->bud;
    static const char head[] = "*2\r\n$3\r\nGET\r\n$";
    char cmd[RB_KEY_BYTES + 32], len[RF_INT_TEXT_BYTES];
    char key[RB_KEY_BYTES];
    size_t kn = hex_key(b, "cache", req->key, key), n = sizeof(head) - 1;
    size_t ln = (size_t)rf_u64_text(kn, len);

    memcpy(cmd, head, n);
    memcpy(cmd + n, len, ln);
    n += ln;
    memcpy(cmd + n, "\r\n", 2);
    n += 2;
    memcpy(cmd + n, key, kn);
    n += kn;
    memcpy(cmd + n, "\r\n", 2);
    req->state = RQ_GET;
    return rf_redis_cmd_raw(rb_mine(b)->cmd, on_get, req, cmd, n + 2);
}

static int rc_fetch(void *ud, struct rf_rcache_req *req)
{
    struct rf_rbridge *b = ud;
    int rc;

    req->bud = b;
    req->canceled = false;
    req->deadline_ms = 0;
    req->wait_ms = 0;
    if ((rc = get_issue(req)) < 0) {
        rb_count(&b->bypassed, 1);
        return rc;
    }
    return -EINPROGRESS;
}

static void rc_cancel(void *ud, struct rf_rcache_req *req)
{
    (void)ud;
    if (req->canceled || !req->state)
        return;
    req->canceled = true;
    if (req->state == RQ_WAIT) /* the timer's completion answers */
        rf__shard_timer_cancel(rf__cur_shard, &req->timer);
}

static void release(struct rf_rbridge *b, struct rf_redis *c, const uint8_t k[16])
{
    char key[RB_KEY_BYTES];
    const char *argv[5] = {"EVALSHA", b->rel_sha, "1", key, b->token};
    size_t lens[5] = {7, 40, 1, hex_key(b, "lease", k, key), 32};

    (void)rf_redis_cmd(c, NULL, NULL, 5, argv, lens); /* lost: the lease expires */
}

static void rc_store(void *ud, const uint8_t k[16], const json_t *value, uint32_t ttl_s,
                     bool leased)
{
    struct rf_rbridge *b = ud;
    struct rf_redis *c = rb_mine(b)->cmd;
    char key[RB_KEY_BYTES], ex[16];
    char *text;

    if (!rf_redis_up(c))
        return;
    text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text) {
        const char *argv[5] = {"SET", key, text, "EX", ex};
        size_t lens[5] = {3, hex_key(b, "cache", k, key), strlen(text), 2,
                          (size_t)snprintf(ex, sizeof(ex), "%u", ttl_s)};
        if (rf_redis_cmd(c, NULL, NULL, 5, argv, lens) == 0)
            rb_count(&b->stores, 1);
        free(text);
    }
    if (leased)
        release(b, c, k);
}

static void rc_abandon(void *ud, const uint8_t k[16])
{
    struct rf_rbridge *b = ud;

    release(b, rb_mine(b)->cmd, k);
}

void rb_cache_ops(struct rf_rcache_ops *ops)
{
    *ops = (struct rf_rcache_ops){
        .fetch = rc_fetch, .cancel = rc_cancel, .store = rc_store, .abandon = rc_abandon};
}
