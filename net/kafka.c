/*
 * net/kafka.c: the Kafka bridge (net/kafka.h has the design).
 *
 * Everything below runs on shard 0 unless it says otherwise: the io_uring reads of the two
 * eventfds, the queue drains they trigger (which is where librdkafka runs our rebalance
 * and delivery-report callbacks), the 100 ms tick (offset commits, paused partitions,
 * a safety poll), and every submission. The `kafka` kind's start runs on the task's shard
 * (rd_kafka_producev is thread-safe); its delivery report comes back on shard 0 and is
 * posted to the task's shard to complete the attempt there.
 *
 * Per assigned partition (struct kpart): a ring of the offsets in flight (each done once
 * its execution is durable or its dead letter acknowledged), the next offset to commit,
 * and the messages waiting while the partition is paused. A message's work (struct kwork)
 * names its partition by index and generation: a rebalance bumps the generation, so the
 * completion of work from a revoked assignment changes nothing.
 */
#include "net/kafka.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/internal.h"
#include "net/kmsg.h"
#include "net/sjournal.h"
#include "net/store.h"
#include "sched/shard.h"

#define TICK_MS        100u
#define DRAIN_MAX      4096 /* messages per drain; more: the drain signals itself again */
#define PEND_PAUSE     1024 /* messages waiting in a partition before it is paused */
#define ERR_HEADER     "x-ringflow-error"
#define SOURCE_HEADER  "x-ringflow-source"

enum kwork_kind { KW_EXEC = 1, KW_DLQ, KW_NODE, KW_EVENT };

struct kslot {
    int64_t offset;
    bool done;
};

struct kpart {
    char topic[RF_KAFKA_NAME_BYTES];
    int32_t partition;
    bool assigned, paused, dirty;
    bool revoking; /* being handed over: no new work, the rest finishes and is committed */
    uint64_t gen;
    struct kslot ring[RF_KAFKA_RING_MAX];
    uint32_t head, n;
    int64_t commit; /* the next offset to commit; -1 before the first message */
    rd_kafka_message_t **pend; /* waiting while paused, in offset order */
    uint32_t phead, pn, pcap;
};

/* A message's (or a produce's) work, from its start to its completion. */
struct kwork {
    struct rf_kafka *k;
    uint8_t kind;
    uint32_t part; /* index into k->parts */
    uint64_t gen;
    uint32_t slot;
    struct rf_post post;  /* KW_NODE: the completion, to the task's shard */
    rf_task *task;        /* KW_NODE */
    rd_kafka_resp_err_t err;
    int32_t out_partition;
    int64_t out_offset;
};

struct rf_kafka {
    rf_engine *eng;
    struct rf_store *st;
    struct rf_kafka_config cfg;
    struct rf_shard_service svc;
    rd_kafka_t *consumer, *producer;
    rd_kafka_queue_t *cq, *pq;
    int cfd, pfd;             /* eventfds the queues signal */
    struct rf_shard *sh;      /* shard 0 */
    rf_op cop, pop, tick;
    uint64_t cbuf, pbuf;
    struct __kernel_timespec ts;
    bool cread, pread, tick_armed, quitting, subscribed;
    _Atomic bool start_wanted; /* relaxed flag: recovery is over, subscribe */
    struct kpart *parts[RF_KAFKA_PARTITIONS_MAX];
    uint32_t nparts;
    uint32_t inflight; /* work not completed (the busy hook waits for it) */
    _Atomic uint32_t nodes; /* `kafka` node produces awaiting their reports (any shard) */
    /* A revocation waiting for its partitions' work to finish (see rebalance_cb). */
    rd_kafka_topic_partition_list_t *revoke;
    uint64_t revoke_since_ms;
    bool revoke_committing;
    bool closing; /* rf_kafka_free: hand partitions back at once */
    /* statistics: shard 0 adds relaxed, readers take snapshots */
    _Atomic uint64_t consumed, executions, duplicates, dead_letters, commits, pauses,
        events_produced, node_produced;
    _Atomic uint32_t assigned;
};

static void count(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed); /* a statistic */
}

/* --- partitions ------------------------------------------------------------------------- */

static int part_index(struct rf_kafka *k, const char *topic, int32_t partition, bool create)
{
    for (uint32_t i = 0; i < k->nparts; i++)
        if (k->parts[i]->partition == partition && strcmp(k->parts[i]->topic, topic) == 0)
            return (int)i;
    if (!create || k->nparts == RF_KAFKA_PARTITIONS_MAX)
        return -1;
    struct kpart *p = rf_calloc(1, sizeof(*p));
    if (!p)
        return -1;
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    p->partition = partition;
    p->commit = -1;
    k->parts[k->nparts] = p;
    return (int)k->nparts++;
}

static void pend_drop(struct kpart *p)
{
    for (uint32_t i = 0; i < p->pn; i++)
        rd_kafka_message_destroy(p->pend[(p->phead + i) % p->pcap]);
    p->phead = p->pn = 0;
}

static int pend_push(struct kpart *p, rd_kafka_message_t *m)
{
    if (p->pn == p->pcap) {
        uint32_t cap = p->pcap ? p->pcap * 2 : 64;
        rd_kafka_message_t **v = rf_malloc(cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        for (uint32_t i = 0; i < p->pn; i++)
            v[i] = p->pend[(p->phead + i) % p->pcap];
        rf_free(p->pend);
        p->pend = v;
        p->pcap = cap;
        p->phead = 0;
    }
    p->pend[(p->phead + p->pn++) % p->pcap] = m;
    return 0;
}

static void set_paused(struct rf_kafka *k, struct kpart *p, bool paused)
{
    rd_kafka_topic_partition_list_t *l;

    if (p->paused == paused)
        return;
    p->paused = paused;
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
    if (paused) {
        rd_kafka_pause_partitions(k->consumer, l);
        count(&k->pauses);
    } else {
        rd_kafka_resume_partitions(k->consumer, l);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* The message at `offset` is done: advance the commit point over the done prefix. */
static void slot_done(struct kpart *p, uint32_t slot)
{
    p->ring[slot].done = true;
    while (p->n && p->ring[p->head].done) {
        p->commit = p->ring[p->head].offset + 1;
        p->head = (p->head + 1) % RF_KAFKA_RING_MAX;
        p->n--;
        p->dirty = true;
    }
}

static struct kwork *work_new(struct rf_kafka *k, uint8_t kind, uint32_t part, uint32_t slot)
{
    struct kwork *w = rf_calloc(1, sizeof(*w));

    if (w) {
        *w = (struct kwork){.k = k, .kind = kind, .part = part, .slot = slot};
        w->gen = part < k->nparts ? k->parts[part]->gen : 0;
        k->inflight++;
    }
    return w;
}

/* A message's work is over (durable, or dead-lettered). */
static void work_done(struct kwork *w)
{
    struct rf_kafka *k = w->k;

    if (w->part < k->nparts && k->parts[w->part]->gen == w->gen &&
        k->parts[w->part]->assigned)
        slot_done(k->parts[w->part], w->slot);
    k->inflight--;
    rf_free(w);
}

/* --- dead letters ------------------------------------------------------------------------ */

/* Send m to the dead-letter topic with `why`; its slot is done once acknowledged. 0, or
 * -EAGAIN (the producer's queue is full: try again later). */
static int dead_letter(struct rf_kafka *k, uint32_t part, uint32_t slot,
                       const rd_kafka_message_t *m, const char *why)
{
    char source[RF_KAFKA_NAME_BYTES + 48];
    struct kwork *w = work_new(k, KW_DLQ, part, slot);
    rd_kafka_resp_err_t err;

    if (!w)
        return -EAGAIN;
    snprintf(source, sizeof(source), "%s/%d/%lld", rd_kafka_topic_name(m->rkt),
             (int)m->partition, (long long)m->offset);
    err = rd_kafka_producev(k->producer, RD_KAFKA_V_TOPIC(k->cfg.dlq_topic),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_KEY(m->key, m->key_len),
                            RD_KAFKA_V_VALUE(m->payload, m->len),
                            RD_KAFKA_V_HEADER(ERR_HEADER, why, (ssize_t)strlen(why)),
                            RD_KAFKA_V_HEADER(SOURCE_HEADER, source, (ssize_t)strlen(source)),
                            RD_KAFKA_V_OPAQUE(w), RD_KAFKA_V_END);
    if (err) {
        k->inflight--;
        rf_free(w);
        return -EAGAIN;
    }
    rf_log_info("\"msg\":\"kafka message dead-lettered\",\"source\":\"%s\",\"why\":\"%s\"",
                source, why);
    count(&k->dead_letters);
    return 0;
}

/* --- messages into executions ------------------------------------------------------------ */

static void exec_accepted(void *ud, struct rf_xrec *x, int res)
{
    struct kwork *w = ud;

    if (res == 0) {
        count(&w->k->executions);
        rf_xrec_release(x);
        work_done(w);
        return;
    }
    /* Not durable: the offset is not committed; the message comes again after a restart
     * or a rebalance, and its idempotency key makes it once. */
    rf_log_warn("\"msg\":\"kafka message not accepted\",\"err\":\"%s\"", rf_strerror(res));
    w->k->inflight--;
    rf_free(w);
}

/* Submit (or dead-letter) one message. 1 done with it (m is the caller's to destroy), 0 not
 * now (keep it: the partition pauses). */
static int process(struct rf_kafka *k, uint32_t part, const rd_kafka_message_t *m)
{
    struct kpart *p = k->parts[part];
    char why[RF_KMSG_WHY_BYTES], key[RF_KMSG_KEY_MAX + 1];
    struct rf_kmsg msg;
    struct rf_xrec *x;
    bool existing;
    rf_diag d;
    int rc;

    if (p->n == RF_KAFKA_RING_MAX)
        return 0;
    uint32_t slot = (p->head + p->n) % RF_KAFKA_RING_MAX;
    p->ring[slot] = (struct kslot){m->offset, false};
    p->n++;
    if (p->commit < 0)
        p->commit = m->offset;
    if (rf_kmsg_decode(m->payload, m->len, &msg, why) < 0)
        goto dlq;
    rf_plan *plan = rf_graph_get(k->eng, msg.graph, msg.version);
    if (!plan) {
        snprintf(why, sizeof(why), msg.version ? "graph %s has no version %u"
                                               : "graph %s does not exist",
                 msg.graph, msg.version);
        rf_kmsg_clear(&msg);
        goto dlq;
    }
    if (!msg.idem[0])
        rf_kmsg_key(rd_kafka_topic_name(m->rkt), m->partition, m->offset, key);
    struct kwork *w = work_new(k, KW_EXEC, part, slot);
    if (!w) {
        rf_plan_release(plan);
        rf_kmsg_clear(&msg);
        goto later;
    }
    rf_diag_init(&d);
    struct rf_store_submit s = {.plan = plan,
                                .inputs = msg.inputs,
                                .idem = msg.idem[0] ? msg.idem : key,
                                .shard = k->sh->id,
                                .diag = &d,
                                .accepted = exec_accepted,
                                .accepted_ud = w};
    msg.inputs = NULL; /* the store's now */
    rc = rf_store_submit(k->st, &s, &x, &existing);
    rf_plan_release(plan);
    if (rc == 1) { /* exec_accepted completes it */
        rf_diag_free(&d);
        return 1;
    }
    if (rc == 0 || rc == 2) {
        count(rc == 2 || existing ? &k->duplicates : &k->executions);
        if (rc == 0)
            rf_xrec_release(x);
        rf_diag_free(&d);
        work_done(w);
        return 1;
    }
    k->inflight--;
    rf_free(w);
    if (rc == RF_EINPUTS) {
        snprintf(why, sizeof(why), "inputs: %s",
                 d.count ? d.items[0].message : "do not match the graph");
        rf_diag_free(&d);
        goto dlq;
    }
    rf_diag_free(&d);
    goto later; /* overloaded, journal busy or failed, key in progress: not now */
dlq:
    if (dead_letter(k, part, slot, m, why) == 0)
        return 1;
later:
    p->n--; /* the slot was the newest: give it back */
    return 0;
}

static void on_message(struct rf_kafka *k, rd_kafka_message_t *m)
{
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            rf_log_warn("\"msg\":\"kafka consumer\",\"err\":\"%s\"", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return;
    }
    count(&k->consumed);
    int part = part_index(k, rd_kafka_topic_name(m->rkt), m->partition, false);
    if (part < 0 || !k->parts[part]->assigned || k->parts[part]->revoking) {
        rd_kafka_message_destroy(m); /* revoked meanwhile: its next owner reads it */
        return;
    }
    struct kpart *p = k->parts[part];
    if (p->pn || !process(k, (uint32_t)part, m)) {
        /* Not now (the engine is at its bound, the journal busy): it waits, in order, and
         * is tried again every loop iteration. Pausing the partition (which drops what
         * librdkafka fetched ahead) waits until a backlog has built up. */
        if (pend_push(p, m) < 0) {
            rd_kafka_message_destroy(m); /* no memory: redelivered after a rebalance */
            return;
        }
        if (p->pn >= PEND_PAUSE)
            set_paused(k, p, true);
        return;
    }
    rd_kafka_message_destroy(m);
}

/* Retry what paused partitions hold; resume those that emptied. */
static void retry_paused(struct rf_kafka *k)
{
    /* Relaxed: a hint; a submission past the bound is refused anyway, and tried again. */
    if (atomic_load_explicit(&k->sh->inflight, memory_order_relaxed) >=
        k->eng->cfg.inflight_per_shard_max)
        return; /* no room yet: do not decode what would be refused */
    for (uint32_t i = 0; i < k->nparts; i++) {
        struct kpart *p = k->parts[i];
        if (!p->assigned || p->revoking || !p->pn)
            continue;
        while (p->pn && process(k, i, p->pend[p->phead])) {
            rd_kafka_message_destroy(p->pend[p->phead]);
            p->phead = (p->phead + 1) % p->pcap;
            p->pn--;
        }
        if (!p->pn)
            set_paused(k, p, false);
    }
}

/* --- commits and rebalances ---------------------------------------------------------------- */

static void commit_dirty(struct rf_kafka *k)
{
    rd_kafka_topic_partition_list_t *l = NULL;

    for (uint32_t i = 0; i < k->nparts; i++) {
        struct kpart *p = k->parts[i];
        if (!p->dirty || !p->assigned || p->commit < 0)
            continue;
        if (!l)
            l = rd_kafka_topic_partition_list_new(8);
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->commit;
        p->dirty = false;
    }
    if (l) {
        rd_kafka_commit(k->consumer, l, 1); /* async: its result comes to offset_commit_cb */
        count(&k->commits);
        rd_kafka_topic_partition_list_destroy(l);
    }
}

#define REVOKE_WAIT_MS 5000 /* work of revoked partitions not done by then is left */

/* Hand the revoked partitions over: unassign. */
static void revoke_finish(struct rf_kafka *k, rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        int ix = part_index(k, parts->elems[i].topic, parts->elems[i].partition, false);
        if (ix < 0)
            continue;
        struct kpart *p = k->parts[ix];
        p->gen++;
        p->assigned = p->revoking = p->paused = false;
        p->head = p->n = 0;
        pend_drop(p);
    }
    rd_kafka_assign(k->consumer, NULL);
    rf_log_info("\"msg\":\"kafka partitions handed over\",\"count\":%d", parts->cnt);
}

/* A revocation under way: once its partitions' work is done (or waited long enough),
 * commit their offsets; commit_cb then finishes it. */
static void revoke_step(struct rf_kafka *k)
{
    bool busy = false;

    if (!k->revoke || k->revoke_committing)
        return;
    for (uint32_t i = 0; i < k->nparts; i++)
        busy |= k->parts[i]->revoking && k->parts[i]->n;
    if (busy && rf_now_ns() / 1000000 - k->revoke_since_ms < REVOKE_WAIT_MS)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (uint32_t i = 0; i < k->nparts; i++) {
        struct kpart *p = k->parts[i];
        if (p->revoking && p->commit >= 0)
            rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->commit;
    }
    if (l->cnt) {
        k->revoke_committing = true;
        rd_kafka_commit(k->consumer, l, 1); /* commit_cb finishes the revocation */
        count(&k->commits);
    } else {
        revoke_finish(k, k->revoke);
        rd_kafka_topic_partition_list_destroy(k->revoke);
        k->revoke = NULL;
    }
    rd_kafka_topic_partition_list_destroy(l);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct rf_kafka *k = opaque;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < parts->cnt; i++) {
            int ix = part_index(k, parts->elems[i].topic, parts->elems[i].partition, true);
            if (ix < 0)
                continue;
            struct kpart *p = k->parts[ix];
            p->gen++;
            p->assigned = true;
            p->paused = false;
            p->head = p->n = 0;
            p->commit = -1;
            p->dirty = false;
            pend_drop(p);
        }
        rd_kafka_assign(rk, parts);
        rf_log_info("\"msg\":\"kafka partitions assigned\",\"count\":%d", parts->cnt);
    } else if (k->closing) {
        revoke_finish(k, parts);
    } else {
        /* Eager rebalance: nobody gets these partitions before we call rd_kafka_assign,
         * which librdkafka lets us do later. So the messages already submitted finish and
         * their offsets are committed first (revoke_step, from the tick), and the next
         * owner starts after them: it reads none of them again. */
        for (int i = 0; i < parts->cnt; i++) {
            int ix = part_index(k, parts->elems[i].topic, parts->elems[i].partition, false);
            if (ix < 0)
                continue;
            struct kpart *p = k->parts[ix];
            p->revoking = true;
            pend_drop(p); /* not submitted: the next owner reads them */
        }
        if (k->revoke)
            rd_kafka_topic_partition_list_destroy(k->revoke);
        k->revoke = rd_kafka_topic_partition_list_copy(parts);
        k->revoke_since_ms = rf_now_ns() / 1000000;
        k->revoke_committing = false;
        rf_log_info("\"msg\":\"kafka partitions revoked; finishing their work\",\"count\":%d",
                    parts->cnt);
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < k->nparts; i++)
        n += k->parts[i]->assigned;
    atomic_store_explicit(&k->assigned, n, memory_order_relaxed); /* a gauge */
}

static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    struct rf_kafka *k = opaque;

    (void)rk;
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        rf_log_warn("\"msg\":\"kafka offset commit failed; sent again\",\"err\":\"%s\"",
                    rd_kafka_err2str(err));
    /* A partition whose commit failed is committed again at the next tick: a commit lost
     * to a broker outage would otherwise leave its offset behind until new messages came. */
    for (int i = 0; offsets && i < offsets->cnt; i++) {
        if (!err && !offsets->elems[i].err)
            continue;
        int ix = part_index(k, offsets->elems[i].topic, offsets->elems[i].partition, false);
        if (ix >= 0 && k->parts[ix]->assigned && !k->parts[ix]->revoking)
            k->parts[ix]->dirty = true;
    }
    if (k->revoke && k->revoke_committing) { /* the revocation's commit: hand over now */
        revoke_finish(k, k->revoke);
        rd_kafka_topic_partition_list_destroy(k->revoke);
        k->revoke = NULL;
        k->revoke_committing = false;
    }
}

/* --- the producer's delivery reports -------------------------------------------------------- */

static void node_complete(struct rf_post *post, struct rf_shard *sh);

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct kwork *w = m->_private;

    (void)rk;
    (void)opaque;
    if (!w)
        return; /* an event: fire and forget */
    switch (w->kind) {
    case KW_DLQ:
        if (m->err)
            rf_log_error("\"msg\":\"kafka dead letter lost\",\"err\":\"%s\"",
                         rd_kafka_err2str(m->err));
        work_done(w);
        break;
    case KW_NODE:
        w->err = m->err;
        w->out_partition = m->partition;
        w->out_offset = m->offset;
        /* Release: the report's fields reach the task's shard before the count drops. */
        atomic_fetch_sub_explicit(&w->k->nodes, 1, memory_order_release);
        w->post.fn = node_complete;
        rf__shard_post(w->task->sh, &w->post);
        break;
    default: break;
    }
}

/* --- the rings: eventfds and the tick ------------------------------------------------------- */

static void arm_read(struct rf_kafka *k, rf_op *op, int fd, uint64_t *buf, rf_op_fn fn)
{
    struct io_uring_sqe *sqe = rf__shard_sqe(k->sh);

    op->cb = fn;
    io_uring_prep_read(sqe, fd, buf, sizeof(*buf), 0);
    io_uring_sqe_set_data(sqe, op);
}

/* Messages, rebalances and commit results: rd_kafka_consumer_poll serves them all (its
 * callbacks run here, on shard 0). The queue signals its eventfd only when it turns
 * non-empty, so a drain empties it, or signals the eventfd itself to come back. */
static void drain_consumer(struct rf_kafka *k)
{
    uint64_t one = 1;

    for (int i = 0; i < DRAIN_MAX; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k->consumer, 0);
        if (!m)
            return;
        on_message(k, m);
    }
    if (write(k->cfd, &one, sizeof(one)) < 0)
        rf_log_warn("\"msg\":\"kafka: eventfd write failed\"");
}

static void on_cfd(rf_op *op, int res, uint32_t flags)
{
    struct rf_kafka *k = rf_container_of(op, struct rf_kafka, cop);

    (void)res;
    (void)flags;
    k->cread = false;
    if (k->quitting)
        return;
    drain_consumer(k);
    k->cread = true;
    arm_read(k, &k->cop, k->cfd, &k->cbuf, on_cfd);
}

static void on_pfd(rf_op *op, int res, uint32_t flags)
{
    struct rf_kafka *k = rf_container_of(op, struct rf_kafka, pop);

    (void)res;
    (void)flags;
    k->pread = false;
    rd_kafka_poll(k->producer, 0); /* delivery reports */
    if (k->quitting && !k->inflight && !atomic_load_explicit(&k->nodes, memory_order_acquire))
        return; /* acquire: as in svc_busy */
    k->pread = true;
    arm_read(k, &k->pop, k->pfd, &k->pbuf, on_pfd);
}

static void on_tick(rf_op *op, int res, uint32_t flags)
{
    struct rf_kafka *k = rf_container_of(op, struct rf_kafka, tick);

    (void)res;
    (void)flags;
    k->tick_armed = false;
    if (k->quitting)
        return;
    if (!k->subscribed && atomic_load_explicit(&k->start_wanted, memory_order_relaxed)) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, k->cfg.topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t err = rd_kafka_subscribe(k->consumer, l);
        rd_kafka_topic_partition_list_destroy(l);
        if (err)
            rf_log_error("\"msg\":\"kafka subscribe failed\",\"topic\":\"%s\",\"err\":\"%s\"",
                         k->cfg.topic, rd_kafka_err2str(err));
        k->subscribed = true;
    }
    retry_paused(k);
    drain_consumer(k); /* a safety net: the queue's signal is edge-triggered */
    revoke_step(k);
    rd_kafka_poll(k->producer, 0);
    commit_dirty(k);
    k->tick_armed = true;
    rf__shard_timer_arm(k->sh, &k->tick, &k->ts, TICK_MS, on_tick);
}

/* --- the shard service ------------------------------------------------------------------------ */

static int svc_start(void *ud, struct rf_shard *sh)
{
    struct rf_kafka *k = ud;

    if (sh->id != 0)
        return 0;
    k->sh = sh;
    k->cread = k->pread = k->tick_armed = true;
    arm_read(k, &k->cop, k->cfd, &k->cbuf, on_cfd);
    arm_read(k, &k->pop, k->pfd, &k->pbuf, on_pfd);
    rf__shard_timer_arm(sh, &k->tick, &k->ts, TICK_MS, on_tick);
    return 0;
}

static void svc_quit(void *ud, struct rf_shard *sh)
{
    struct rf_kafka *k = ud;
    uint64_t one = 1;

    if (sh->id != 0)
        return;
    k->quitting = true;
    commit_dirty(k);
    if (k->tick_armed)
        rf__shard_timer_cancel(sh, &k->tick);
    /* Wake the pending reads so they end. */
    if (write(k->cfd, &one, sizeof(one)) < 0 || write(k->pfd, &one, sizeof(one)) < 0)
        rf_log_warn("\"msg\":\"kafka: eventfd write failed at stop\"");
}

static void svc_flush(void *ud, struct rf_shard *sh)
{
    struct rf_kafka *k = ud;

    if (sh->id == 0 && !k->quitting)
        retry_paused(k); /* the executions that finished this iteration made room */
}

static bool svc_busy(void *ud, struct rf_shard *sh)
{
    struct rf_kafka *k = ud;

    if (sh->id != 0)
        return false;
    if (k->inflight || atomic_load_explicit(&k->nodes, memory_order_relaxed)) /* a hint */
        rd_kafka_poll(k->producer, 0);
    /* Acquire: pairs with the report's release; a node's completion is posted by then. */
    return k->cread || k->pread || k->tick_armed || k->inflight ||
           atomic_load_explicit(&k->nodes, memory_order_acquire);
}

/* --- events out ---------------------------------------------------------------------------------- */

static void publish(void *ud, struct rf_xrec *x, uint32_t nev, bool recovered)
{
    struct rf_kafka *k = ud;

    if (recovered) /* produced before the stop, or lost with it: see docs/kafka.md */
        return;
    rf_spin_lock(&x->lock);
    for (uint32_t i = x->kproduced; i < nev && i < x->nev; i++) {
        const struct rf_evt *ev = x->ev[i];
        if (rd_kafka_producev(k->producer, RD_KAFKA_V_TOPIC(k->cfg.events_topic),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_KEY(x->id, RF_ID_BYTES - 1),
                              RD_KAFKA_V_VALUE((void *)ev->s, ev->len), RD_KAFKA_V_END) != 0)
            break; /* the queue is full: the next batch of this execution sends the rest */
        x->kproduced = i + 1;
        count(&k->events_produced);
    }
    rf_spin_unlock(&x->lock);
}

/* --- the `kafka` node kind ------------------------------------------------------------------------ */

/* A `kafka` node's attempt: its produce's work, in the task's data. */
struct knode {
    struct kwork w;
};

static void node_complete(struct rf_post *post, struct rf_shard *sh)
{
    struct kwork *w = rf_container_of(post, struct kwork, post);
    rf_task *task = w->task;
    rf_error err;

    (void)sh;
    if (!w->err) {
        count(&w->k->node_produced);
        rf_task_succeed(task, json_pack("{s:i, s:I}", "partition", (int)w->out_partition,
                                        "offset", (json_int_t)w->out_offset));
        return;
    }
    bool retry = w->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT ||
                 w->err == RD_KAFKA_RESP_ERR__QUEUE_FULL ||
                 w->err == RD_KAFKA_RESP_ERR__TRANSPORT ||
                 w->err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
                 w->err == RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS ||
                 w->err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
                 w->err == RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT;
    rf_error_set(&err, -EIO, retry, "kafka", "produce: %s", rd_kafka_err2str(w->err));
    rf_task_fail(task, &err);
}

static int knode_validate(void *ud, const json_t *config, rf_error *err)
{
    (void)ud;
    if (!json_is_object(config) || !json_is_string(json_object_get(config, "topic")))
        return rf_error_set(err, -EINVAL, false, "bad_config",
                            "kafka: config needs \"topic\", a string (and \"value\")");
    return 0;
}

static int knode_start(void *ud, rf_task *task, rf_error *err)
{
    struct rf_kafka *k = ud;
    struct knode *n = rf_task_data(task);
    const json_t *p = rf_task_call(task)->params;
    const char *topic = json_string_value(json_object_get(p, "topic"));
    const json_t *key = json_object_get(p, "key"), *value = json_object_get(p, "value");
    const json_t *headers = json_object_get(p, "headers");
    rd_kafka_headers_t *hs = NULL;
    char *text;

    if (!topic || !topic[0])
        return rf_error_set(err, -EINVAL, false, "bad_params", "kafka: topic must be a string");
    if (key && !json_is_null(key) && !json_is_string(key))
        return rf_error_set(err, -EINVAL, false, "bad_params", "kafka: key must be a string");
    if (headers && !json_is_object(headers))
        return rf_error_set(err, -EINVAL, false, "bad_params",
                            "kafka: headers must be an object of strings");
    text = value ? json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (value && !text)
        return rf_error_set(err, -ENOMEM, true, "no_memory", "kafka: out of memory");
    if (headers && json_object_size(headers)) {
        const char *hk;
        json_t *hv;
        hs = rd_kafka_headers_new(json_object_size(headers));
        json_object_foreach((json_t *)headers, hk, hv) if (json_is_string(hv))
            rd_kafka_header_add(hs, hk, -1, json_string_value(hv), -1);
    }
    n->w = (struct kwork){.k = k, .kind = KW_NODE, .task = task};
    /* Relaxed: the producer's queue orders the report after this. */
    atomic_fetch_add_explicit(&k->nodes, 1, memory_order_relaxed);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        k->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(json_string_value(key), key && json_is_string(key)
                                                   ? json_string_length(key)
                                                   : 0),
        RD_KAFKA_V_VALUE(text, text ? strlen(text) : 0),
        RD_KAFKA_V_HEADERS(hs), RD_KAFKA_V_OPAQUE(&n->w), RD_KAFKA_V_END);
    free(text);
    if (e) {
        atomic_fetch_sub_explicit(&k->nodes, 1, memory_order_relaxed); /* never produced */
        if (hs)
            rd_kafka_headers_destroy(hs); /* not taken on failure */
        return rf_error_set(err, -EAGAIN, e == RD_KAFKA_RESP_ERR__QUEUE_FULL, "kafka",
                            "produce: %s", rd_kafka_err2str(e));
    }
    return 0;
}

static void knode_cancel(void *ud, rf_task *task)
{
    (void)ud;
    (void)task; /* a produce cannot be taken back: its report comes within the timeout */
}

/* --- setup ------------------------------------------------------------------------------------- */

static int conf_set(rd_kafka_conf_t *c, const char *k, const char *v, char *err, size_t n)
{
    return rd_kafka_conf_set(c, k, v, err, n) == RD_KAFKA_CONF_OK ? 0 : -EINVAL;
}

static int make_consumer(struct rf_kafka *k, char *err, size_t n)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();

    if (conf_set(c, "bootstrap.servers", k->cfg.brokers, err, n) < 0 ||
        conf_set(c, "group.id", k->cfg.group, err, n) < 0 ||
        conf_set(c, "enable.auto.commit", "false", err, n) < 0 ||
        conf_set(c, "enable.auto.offset.store", "false", err, n) < 0 ||
        conf_set(c, "auto.offset.reset", "earliest", err, n) < 0 ||
        conf_set(c, "enable.partition.eof", "false", err, n) < 0 ||
        /* A crashed instance's partitions move on after 10 s, not the default 45 s. */
        conf_set(c, "session.timeout.ms", "10000", err, n) < 0 ||
        conf_set(c, "heartbeat.interval.ms", "2000", err, n) < 0 ||
        conf_set(c, "log_level", "3", err, n) < 0) {
        rd_kafka_conf_destroy(c);
        return -EINVAL;
    }
    rd_kafka_conf_set_opaque(c, k);
    rd_kafka_conf_set_rebalance_cb(c, rebalance_cb);
    rd_kafka_conf_set_offset_commit_cb(c, commit_cb);
    if (!(k->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, n))) {
        rd_kafka_conf_destroy(c);
        return -EINVAL;
    }
    rd_kafka_poll_set_consumer(k->consumer);
    k->cq = rd_kafka_queue_get_consumer(k->consumer);
    return k->cq ? 0 : -EINVAL;
}

static int make_producer(struct rf_kafka *k, char *err, size_t n)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char timeout[16];

    snprintf(timeout, sizeof(timeout), "%u", k->cfg.produce_timeout_ms);
    if (conf_set(c, "bootstrap.servers", k->cfg.brokers, err, n) < 0 ||
        conf_set(c, "enable.idempotence", "true", err, n) < 0 ||
        conf_set(c, "acks", "all", err, n) < 0 ||
        conf_set(c, "linger.ms", "1", err, n) < 0 ||
        conf_set(c, "message.timeout.ms", timeout, err, n) < 0 ||
        conf_set(c, "log_level", "3", err, n) < 0) {
        rd_kafka_conf_destroy(c);
        return -EINVAL;
    }
    rd_kafka_conf_set_opaque(c, k);
    rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
    if (!(k->producer = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, n))) {
        rd_kafka_conf_destroy(c);
        return -EINVAL;
    }
    k->pq = rd_kafka_queue_get_main(k->producer);
    return k->pq ? 0 : -EINVAL;
}

int rf_kafka_new(rf_engine *eng, struct rf_store *st, struct rf_sjournal *sj,
                 const struct rf_kafka_config *cfg, struct rf_kafka **out)
{
    struct rf_kafka *k = rf_zalloc_aligned(sizeof(*k), RF_CACHELINE);
    char err[512] = "";
    int rc;

    if (!k)
        return -ENOMEM;
    k->eng = eng;
    k->st = st;
    k->cfg = *cfg;
    if (!k->cfg.produce_timeout_ms)
        k->cfg.produce_timeout_ms = 30000;
    k->cfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    k->pfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (k->cfd < 0 || k->pfd < 0 || (rc = make_consumer(k, err, sizeof(err))) < 0 ||
        (rc = make_producer(k, err, sizeof(err))) < 0) {
        rf_log_error("\"msg\":\"kafka setup failed\",\"err\":\"%s\"", err);
        rf_kafka_free(k);
        return -EINVAL;
    }
    static const char one[1] = {1};
    rd_kafka_queue_io_event_enable(k->cq, k->cfd, one, sizeof(one));
    rd_kafka_queue_io_event_enable(k->pq, k->pfd, one, sizeof(one));
    k->svc = (struct rf_shard_service){
        .ud = k, .start = svc_start, .flush = svc_flush, .quit = svc_quit, .busy = svc_busy};
    rf_kind kind = {.name = "kafka",
                    .type = RF_KIND_ASYNC,
                    .ud = k,
                    .start = knode_start,
                    .cancel = knode_cancel,
                    .validate = knode_validate,
                    .task_bytes = sizeof(struct knode)};
    if ((rc = rf__engine_set_service(eng, &k->svc)) < 0 ||
        (rc = rf_engine_register_kind(eng, &kind)) < 0 ||
        (sj && k->cfg.events_topic[0] && (rc = rf_sjournal_set_publisher(sj, publish, k)) < 0)) {
        rf_log_error("\"msg\":\"kafka setup failed\",\"err\":\"%s\"", rf_strerror(rc));
        rf_kafka_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

void rf_kafka_start(struct rf_kafka *k)
{
    atomic_store_explicit(&k->start_wanted, true, memory_order_relaxed); /* a flag */
}

void rf_kafka_free(struct rf_kafka *k)
{
    if (!k)
        return;
    if (k->cq)
        rd_kafka_queue_destroy(k->cq);
    if (k->pq)
        rd_kafka_queue_destroy(k->pq);
    if (k->consumer) {
        /* The engine is stopped: everything accepted is durable. Commit it (blocking is
         * fine here), then leave the group at once. */
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
        for (uint32_t i = 0; i < k->nparts; i++)
            if (k->parts[i]->assigned && k->parts[i]->commit >= 0)
                rd_kafka_topic_partition_list_add(l, k->parts[i]->topic,
                                                  k->parts[i]->partition)
                    ->offset = k->parts[i]->commit;
        if (l->cnt)
            rd_kafka_commit(k->consumer, l, 0);
        rd_kafka_topic_partition_list_destroy(l);
        k->closing = true;
        if (k->revoke) {
            rd_kafka_assign(k->consumer, NULL);
            rd_kafka_topic_partition_list_destroy(k->revoke);
            k->revoke = NULL;
        }
        rd_kafka_consumer_close(k->consumer);
        rd_kafka_destroy(k->consumer);
    }
    if (k->producer) {
        rd_kafka_flush(k->producer, 2000);
        rd_kafka_destroy(k->producer);
    }
    for (uint32_t i = 0; i < k->nparts; i++) {
        pend_drop(k->parts[i]);
        rf_free(k->parts[i]->pend);
        rf_free(k->parts[i]);
    }
    if (k->cfd >= 0)
        close(k->cfd);
    if (k->pfd >= 0)
        close(k->pfd);
    rf_free(k);
}

void rf_kafka_stats(const struct rf_kafka *k, struct rf_kafka_stats *out)
{
    /* Relaxed: snapshots of statistics. */
    out->consumed = atomic_load_explicit(&k->consumed, memory_order_relaxed);
    out->executions = atomic_load_explicit(&k->executions, memory_order_relaxed);
    out->duplicates = atomic_load_explicit(&k->duplicates, memory_order_relaxed);
    out->dead_letters = atomic_load_explicit(&k->dead_letters, memory_order_relaxed);
    out->commits = atomic_load_explicit(&k->commits, memory_order_relaxed);
    out->pauses = atomic_load_explicit(&k->pauses, memory_order_relaxed);
    out->events_produced = atomic_load_explicit(&k->events_produced, memory_order_relaxed);
    out->node_produced = atomic_load_explicit(&k->node_produced, memory_order_relaxed);
    out->partitions = atomic_load_explicit(&k->assigned, memory_order_relaxed);
}
