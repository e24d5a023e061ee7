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
#define DRAIN_BATCH    64   /* messages taken from a partition's queue at once */
#define PAUSE_AFTER_MS 2000 /* a partition with a full ring this long is paused */
#define ERR_HEADER     "x-ringflow-error"
#define SOURCE_HEADER  "x-ringflow-source"

enum kwork_kind { KW_EXEC = 1, KW_DLQ, KW_NODE };

/* What became of a message on its partition's shard (struct kmw.res). */
enum kres {
    KR_NONE = 0,
    KR_NEW,   /* a new execution, durable */
    KR_DUP,   /* its idempotency key found an execution: nothing new */
    KR_DLQ,   /* it cannot become one: dead-letter it, with why */
    KR_LATER, /* not now (the shard at its bound, the journal busy or failed): try again */
};

struct kslot {
    int64_t offset;
    bool done;
};

struct kmw;

/* Messages in order, linked through kmw.rnext; each has one owner (shard 0 or a shard). */
struct kfifo {
    struct kmw *head, *tail;
    uint32_t n;
};

struct kpart {
    char topic[RF_KAFKA_NAME_BYTES];
    int32_t partition;
    uint32_t shard; /* where its messages become executions: partition % shards */
    bool assigned, paused, dirty;
    bool revoking; /* being handed over: no new work, the rest finishes and is committed */
    uint64_t gen;
    struct kslot ring[RF_KAFKA_RING_MAX];
    uint32_t head, n;
    int64_t commit; /* the next offset to commit; -1 before the first message */
    int64_t acked;  /* the last commit the broker acknowledged (or the first offset read) */
    uint32_t out;   /* this generation's messages at their shard or the producer */
    rd_kafka_queue_t *q;    /* its own queue (not forwarded to the consumer's) */
    bool more;              /* q may hold messages not taken yet (the ring was full) */
    uint64_t full_since_ms; /* when the ring filled up (0: it is not full) */
    rd_kafka_message_t *held[DRAIN_BATCH]; /* taken from q, not placed (no memory) */
    uint32_t nheld;
    struct kfifo retry; /* back from their shard with KR_LATER (or a lost dead letter):
                           tried again, in the order they came back */
};

/* The `kafka` node's produce (and the base of a message's work): completed through post. */
struct kwork {
    struct rf_kafka *k;
    uint8_t kind;
    struct rf_post post; /* KW_NODE: to the task's shard; KW_EXEC: between shards */
    rf_task *task;       /* KW_NODE */
    rd_kafka_resp_err_t err;
    int32_t out_partition;
    int64_t out_offset;
};

/* A message's work, from its slot to its completion. Made and freed on shard 0; in between
 * it visits its partition's shard (rf__shard_post there and back), which decodes it and
 * submits the execution: so the engine's work of a Kafka-triggered execution spreads over
 * the shards the way HTTP connections do, and shard 0 keeps only the bookkeeping. */
struct kmw {
    struct kwork kw;       /* kind KW_EXEC; KW_DLQ while its dead letter is produced */
    rd_kafka_message_t *m; /* owned */
    uint32_t part, slot, shard;
    uint64_t gen;
    uint8_t res; /* enum kres */
    struct kmw *rnext;
    char why[RF_KMSG_WHY_BYTES];
};

/* Per shard, its side of the messages it submits. */
struct kshard {
    /* Messages posted to this shard and not yet posted back: its loop runs on after quit
     * while not zero, so none is stranded in its post list. Shard 0 adds, this shard
     * takes away; see dispatch() and svc_busy() for the ordering. */
    _Atomic uint32_t remote RF_ALIGNED_CL;
    /* Owned by this shard: messages the engine could not take yet (the shard at its
     * bound, the journal busy), submitted again from its flush hook, in order. */
    struct kfifo wait;
    bool quitting; /* quit ran here: nothing waits any more, it goes back to shard 0 */
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
    uint32_t inflight; /* messages at a shard or the producer (the busy hook waits for them) */
    uint64_t parked;   /* messages parked so far (retry_waiting sees one come straight back) */
    struct kshard *shards; /* [nshards] */
    uint32_t nshards;
    _Atomic uint32_t nodes; /* `kafka` node produces awaiting their reports (any shard) */
    /* A revocation waiting for its partitions' work to finish (see rebalance_cb). */
    rd_kafka_topic_partition_list_t *revoke;
    uint64_t revoke_since_ms;
    bool revoke_committing;
    /* Async commits sent and answered: their callbacks come in order, so the revocation's
     * commit is answered when commits_answered reaches revoke_commit. */
    uint64_t commits_sent, commits_answered, revoke_commit;
    bool revoke_commit_failed;
    bool closing; /* rf_kafka_free: hand partitions back at once */
    /* statistics: added relaxed from any shard, readers take snapshots */
    _Atomic uint64_t consumed, executions, duplicates, dead_letters, commits, pauses,
        events_produced, node_produced;
    _Atomic uint32_t assigned;
    _Atomic uint64_t uncommitted; /* gauge: offsets done, their commit not acknowledged */
};

/* What librdkafka writes to our eventfds: an eventfd takes 8-byte writes only (a shorter
 * one fails with EINVAL, and the wakeup is lost). */
static const uint64_t eventfd_one = 1;

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
    p->shard = (uint32_t)partition % k->nshards;
    p->commit = -1;
    k->parts[k->nparts] = p;
    return (int)k->nparts++;
}

static void kfifo_push(struct kfifo *f, struct kmw *w, bool front)
{
    w->rnext = NULL;
    if (!f->head) {
        f->head = f->tail = w;
    } else if (front) {
        w->rnext = f->head;
        f->head = w;
    } else {
        f->tail->rnext = w;
        f->tail = w;
    }
    f->n++;
}

static struct kmw *kfifo_pop(struct kfifo *f) /* f not empty */
{
    struct kmw *w = f->head;

    if ((f->head = w->rnext) == NULL)
        f->tail = NULL;
    f->n--;
    return w;
}

static void msg_free(struct kmw *w)
{
    rd_kafka_message_destroy(w->m);
    rf_free(w);
}

/* Drop what the partition holds that is not out at a shard: its next owner reads it. */
static void part_drop(struct kpart *p)
{
    for (uint32_t i = 0; i < p->nheld; i++)
        rd_kafka_message_destroy(p->held[i]);
    p->nheld = 0;
    while (p->retry.n)
        msg_free(kfifo_pop(&p->retry));
}

/* A new generation of the partition (assigned, or handed over): work of the old one that
 * comes back changes nothing. */
static void part_reset(struct kpart *p)
{
    p->gen++;
    p->paused = p->more = false;
    p->full_since_ms = 0;
    p->head = p->n = p->out = 0;
    part_drop(p);
}

static void park(struct rf_kafka *k, struct kpart *p, struct kmw *w)
{
    kfifo_push(&p->retry, w, false);
    k->parked++;
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

/* Whether shard `id` is at its bound of executions: a message sent there now would only
 * come back KR_LATER. Relaxed: a hint; a submission past the bound is refused anyway. */
static bool shard_full(struct rf_kafka *k, uint32_t id)
{
    struct rf_shard *sh = rf__engine_shard(k->eng, id);

    return atomic_load_explicit(&sh->inflight, memory_order_relaxed) >=
           k->eng->cfg.inflight_per_shard_max;
}

/* --- dead letters ------------------------------------------------------------------------ */

/* Send w's message to the dead-letter topic with w->why; dr_cb completes it. 0, or -EAGAIN
 * (the producer's queue is full: try again later). Shard 0. */
static int dead_letter(struct rf_kafka *k, struct kmw *w)
{
    const rd_kafka_message_t *m = w->m;
    char source[RF_KAFKA_NAME_BYTES + 48];
    rd_kafka_resp_err_t err;

    snprintf(source, sizeof(source), "%s/%d/%lld", rd_kafka_topic_name(m->rkt),
             (int)m->partition, (long long)m->offset);
    w->kw.kind = KW_DLQ;
    err = rd_kafka_producev(k->producer, RD_KAFKA_V_TOPIC(k->cfg.dlq_topic),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_KEY(m->key, m->key_len),
                            RD_KAFKA_V_VALUE(m->payload, m->len),
                            RD_KAFKA_V_HEADER(ERR_HEADER, w->why, (ssize_t)strlen(w->why)),
                            RD_KAFKA_V_HEADER(SOURCE_HEADER, source, (ssize_t)strlen(source)),
                            RD_KAFKA_V_OPAQUE(&w->kw), RD_KAFKA_V_END);
    if (err)
        return -EAGAIN;
    k->inflight++;
    k->parts[w->part]->out++;
    rf_log_info("\"msg\":\"kafka message dead-lettered\",\"source\":\"%s\",\"why\":\"%s\"",
                source, w->why);
    return 0;
}

/* --- messages into executions ------------------------------------------------------------ */

static void msg_back(struct kmw *w);

static void on_back_post(struct rf_post *post, struct rf_shard *sh)
{
    (void)sh;
    msg_back(rf_container_of(post, struct kmw, kw.post));
}

/* On w's shard: its part is done (w->res says how); hand it back to shard 0. */
static void msg_return(struct kmw *w)
{
    struct rf_kafka *k = w->kw.k;

    if (w->shard == k->sh->id) {
        msg_back(w);
        return;
    }
    /* Relaxed: this shard's own count, read by its own busy hook (and by nobody else);
     * after this, w is shard 0's. */
    atomic_fetch_sub_explicit(&k->shards[w->shard].remote, 1, memory_order_relaxed);
    w->kw.post.fn = on_back_post;
    rf__shard_post(k->sh, &w->kw.post);
}

/* On w's shard: the engine could not take w yet; it waits there (at the head: it was the
 * oldest), or goes back to shard 0 once the shard quit. */
static void msg_wait(struct kmw *w, bool head)
{
    struct rf_kafka *k = w->kw.k;
    struct kshard *q = &k->shards[w->shard];

    if (q->quitting) {
        w->res = KR_LATER;
        msg_return(w);
        return;
    }
    kfifo_push(&q->wait, w, head);
}

static void msg_accepted(void *ud, struct rf_xrec *x, int res)
{
    struct kmw *w = ud;

    if (res == 0) {
        rf_xrec_release(x);
        w->res = KR_NEW;
    } else {
        /* Not durable (journal busy, no space, failed): submitted again later; the
         * idempotency key keeps it once. */
        rf_log_warn("\"msg\":\"kafka message not accepted; retried\",\"err\":\"%s\"",
                    rf_strerror(res));
        msg_wait(w, false);
        return;
    }
    msg_return(w);
}

/* On w's shard (sh): decode the message and submit its execution there. true: the
 * engine cannot take it now (the caller makes it wait); false: handled. */
static bool msg_submit(struct kmw *w, struct rf_shard *sh)
{
    struct rf_kafka *k = w->kw.k;
    const rd_kafka_message_t *m = w->m;
    char key[RF_KMSG_KEY_MAX + 1];
    struct rf_kmsg msg;
    struct rf_xrec *x;
    bool existing;
    rf_diag d;
    int rc;

    w->res = KR_DLQ;
    if (rf_kmsg_decode(m->payload, m->len, &msg, w->why) < 0)
        goto back;
    rf_plan *plan = rf_graph_get(k->eng, msg.graph, msg.version);
    if (!plan) {
        snprintf(w->why, sizeof(w->why),
                 msg.version ? "graph %s has no version %u" : "graph %s does not exist",
                 msg.graph, msg.version);
        rf_kmsg_clear(&msg);
        goto back;
    }
    if (!msg.idem[0])
        rf_kmsg_key(rd_kafka_topic_name(m->rkt), m->partition, m->offset, key);
    rf_diag_init(&d);
    struct rf_store_submit s = {.plan = plan,
                                .inputs = msg.inputs,
                                .idem = msg.idem[0] ? msg.idem : key,
                                .shard = sh->id,
                                .diag = &d,
                                .accepted = msg_accepted,
                                .accepted_ud = w};
    msg.inputs = NULL; /* the store's now */
    rc = rf_store_submit(k->st, &s, &x, &existing);
    rf_plan_release(plan);
    if (rc == 1) { /* msg_accepted completes it */
        rf_diag_free(&d);
        return false;
    }
    if (rc == 0 || rc == 2) {
        w->res = rc == 2 || existing ? KR_DUP : KR_NEW;
        if (rc == 0)
            rf_xrec_release(x);
    } else if (rc == RF_EINPUTS) {
        snprintf(w->why, sizeof(w->why), "inputs: %s",
                 d.count ? d.items[0].message : "do not match the graph");
    } else {
        rf_diag_free(&d); /* overloaded, journal busy or failed, key in progress */
        return true;
    }
    rf_diag_free(&d);
back:
    msg_return(w);
    return false;
}

/* On w's shard: submit it, unless older ones wait there (it waits behind them). */
static void msg_arrive(struct kmw *w, struct rf_shard *sh)
{
    if (w->kw.k->shards[sh->id].wait.n || msg_submit(w, sh))
        msg_wait(w, false);
}

static void on_submit_post(struct rf_post *post, struct rf_shard *sh)
{
    msg_arrive(rf_container_of(post, struct kmw, kw.post), sh);
}

/* On shard sh, every loop iteration: submit what waits while the shard has room. */
static void shard_retry(struct rf_kafka *k, struct rf_shard *sh)
{
    struct kshard *q = &k->shards[sh->id];

    while (q->wait.n && !shard_full(k, sh->id)) {
        struct kmw *w = kfifo_pop(&q->wait);
        if (msg_submit(w, sh)) {
            msg_wait(w, true);
            break;
        }
    }
}

/* Shard 0: send w to its shard (or submit it here, when that is shard 0). */
static void dispatch(struct rf_kafka *k, struct kmw *w)
{
    k->inflight++;
    k->parts[w->part]->out++;
    w->res = KR_NONE;
    if (w->shard == k->sh->id) {
        msg_arrive(w, k->sh);
        return;
    }
    /* Dekker with svc_busy on the target: either it sees our count and runs on after
     * quit until the message came back, or we see quit here and do not send. Relaxed
     * add, ordered by the seq_cst fence against the quit flag's load. */
    atomic_fetch_add_explicit(&k->shards[w->shard].remote, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&k->eng->quit, memory_order_relaxed)) {
        atomic_fetch_sub_explicit(&k->shards[w->shard].remote, 1, memory_order_relaxed);
        w->res = KR_LATER; /* the shard may have left its loop: never delivered */
        k->inflight--;
        k->parts[w->part]->out--;
        park(k, k->parts[w->part], w);
        return;
    }
    w->kw.post.fn = on_submit_post;
    rf__shard_post(rf__engine_shard(k->eng, w->shard), &w->kw.post);
}

/* Shard 0: w is back (from its shard, or its dead letter from the producer): no longer
 * out. Its partition, or NULL when that was revoked meanwhile (w is freed: the next owner
 * reads the message again). */
static struct kpart *msg_home(struct kmw *w)
{
    struct rf_kafka *k = w->kw.k;
    struct kpart *p = w->part < k->nparts ? k->parts[w->part] : NULL;

    k->inflight--;
    if (!p || p->gen != w->gen || !p->assigned) {
        msg_free(w);
        return NULL;
    }
    p->out--;
    return p;
}

/* Shard 0: w came back from its shard with its outcome. */
static void msg_back(struct kmw *w)
{
    struct rf_kafka *k = w->kw.k;
    struct kpart *p;

    if (w->res == KR_NEW || w->res == KR_DUP) /* made (or found) whatever happens next */
        count(w->res == KR_NEW ? &k->executions : &k->duplicates);
    if (!(p = msg_home(w)))
        return;
    switch (w->res) {
    case KR_NEW:
    case KR_DUP:
        slot_done(p, w->slot);
        msg_free(w);
        return;
    case KR_DLQ:
        if (!p->revoking && !k->quitting && dead_letter(k, w) == 0)
            return;
        break;
    default: break;
    }
    if (p->revoking) {
        msg_free(w); /* not done: the commit stops before it, its next owner reads it */
        return;
    }
    park(k, p, w);
}

/* Shard 0: a dead letter's delivery report. */
static void dlq_done(struct kmw *w, rd_kafka_resp_err_t err)
{
    struct rf_kafka *k = w->kw.k;
    struct kpart *p;

    w->kw.kind = KW_EXEC;
    if (!(p = msg_home(w)))
        return;
    if (err) {
        /* Not written: the offset must not be committed past it. Sent again later. */
        rf_log_error("\"msg\":\"kafka dead letter not acknowledged; sent again\","
                     "\"err\":\"%s\"", rd_kafka_err2str(err));
        if (p->revoking)
            msg_free(w);
        else
            park(k, p, w);
        return;
    }
    count(&k->dead_letters);
    slot_done(p, w->slot);
    msg_free(w);
}

/* Give m a slot in its partition and send it to its shard. 1 taken (m is the work's now),
 * 0 not now (the ring is full: the caller keeps m). */
static int process(struct rf_kafka *k, uint32_t part, rd_kafka_message_t *m)
{
    struct kpart *p = k->parts[part];
    struct kmw *w;

    if (p->n >= k->cfg.partition_inflight || !(w = rf_malloc(sizeof(*w))))
        return 0;
    uint32_t slot = (p->head + p->n) % RF_KAFKA_RING_MAX;
    p->ring[slot] = (struct kslot){m->offset, false};
    p->n++;
    if (p->commit < 0)
        p->commit = p->acked = m->offset;
    w->kw = (struct kwork){.k = k, .kind = KW_EXEC};
    w->m = m;
    w->part = part;
    w->slot = slot;
    w->shard = p->shard;
    w->gen = p->gen;
    w->why[0] = '\0';
    dispatch(k, w);
    return 1;
}

/* One message taken from partition part's queue. 1 placed (or an error event, dropped),
 * 0 not (no memory: the caller holds it and tries again first). */
static int take(struct rf_kafka *k, uint32_t part, rd_kafka_message_t *m)
{
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            rf_log_warn("\"msg\":\"kafka consumer\",\"err\":\"%s\"", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return 1;
    }
    if (!process(k, part, m))
        return 0;
    count(&k->consumed);
    return 1;
}

/* Take what the partition's queue holds while its ring has room. Back-pressure is simply
 * not taking: the messages stay in librdkafka's queue, whose fetcher stops at
 * queued.min.messages, and nothing fetched is thrown away (rd_kafka_pause_partitions
 * would drop the queue; see part_stalled). */
static void part_drain(struct rf_kafka *k, uint32_t i)
{
    struct kpart *p = k->parts[i];
    rd_kafka_message_t *batch[DRAIN_BATCH];
    uint32_t taken = 0, h = 0;

    if (!p->q || !p->assigned || p->revoking)
        return;
    while (h < p->nheld && p->n < k->cfg.partition_inflight && take(k, i, p->held[h]))
        h++;
    memmove(p->held, p->held + h, (p->nheld - h) * sizeof(p->held[0]));
    p->nheld -= h;
    p->more = p->nheld > 0;
    while (!p->nheld && p->n < k->cfg.partition_inflight) {
        if (taken >= DRAIN_MAX) {
            p->more = true; /* enough for one iteration: the rest at the next */
            return;
        }
        uint32_t room = k->cfg.partition_inflight - p->n;
        size_t want = room < DRAIN_BATCH ? room : DRAIN_BATCH;
        ssize_t n = rd_kafka_consume_batch_queue(p->q, 0, batch, want);
        for (ssize_t j = 0; j < n; j++) {
            if (!take(k, i, batch[j])) { /* no memory: hold the rest, in order */
                p->nheld = (uint32_t)(n - j);
                memcpy(p->held, batch + j, p->nheld * sizeof(batch[0]));
                p->more = true;
                return;
            }
        }
        if (n <= 0 || (size_t)n < want)
            return; /* empty: its queue signals the eventfd when something comes */
        taken += (uint32_t)n;
    }
    p->more = true;
    if (p->n >= k->cfg.partition_inflight && !p->full_since_ms)
        p->full_since_ms = rf_now_ns() / 1000000;
}

/* A message on the consumer's queue: never expected, every assigned partition has its own
 * queue (rebalance_cb). Dropped, loudly: the partition's next owner reads it again. */
static void stray_message(rd_kafka_message_t *m)
{
    if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        rf_log_warn("\"msg\":\"kafka consumer\",\"err\":\"%s\"", rd_kafka_message_errstr(m));
    else if (!m->err)
        rf_log_error("\"msg\":\"kafka message on the consumer queue dropped\","
                     "\"partition\":%d,\"offset\":%lld",
                     (int)m->partition, (long long)m->offset);
    rd_kafka_message_destroy(m);
}

/* Shard 0: try again what waits here: the messages that came back KR_LATER (sent after
 * quit) or whose dead letter could not be produced; then take more from the partitions
 * whose queue was left non-empty; resume partitions that have room again. */
static void retry_waiting(struct rf_kafka *k)
{
    for (uint32_t i = 0; i < k->nparts; i++) {
        struct kpart *p = k->parts[i];
        if (!p->assigned || p->revoking)
            continue;
        /* At most one pass over what is parked now; stop once one comes straight back. */
        for (uint32_t budget = p->retry.n; budget && p->retry.n; budget--) {
            uint64_t parked = k->parked;
            struct kmw *w = kfifo_pop(&p->retry);
            if (w->res == KR_DLQ) {
                if (dead_letter(k, w) < 0) {
                    park(k, p, w);
                    break;
                }
                continue;
            }
            dispatch(k, w);
            if (k->parked != parked)
                break;
        }
        if (p->n < k->cfg.partition_inflight) { /* progress: a slot was freed */
            p->full_since_ms = 0;
            if (p->paused) {
                set_paused(k, p, false);
                p->more = true;
            }
        }
        if (p->more && p->n < k->cfg.partition_inflight)
            part_drain(k, i);
    }
}

/* From the tick: a partition whose ring stayed full for PAUSE_AFTER_MS, none of its
 * messages done meanwhile (the engine is stalled: the journal out of space, executions
 * not finishing), is paused, which stops its fetches and lets librdkafka drop what it
 * prefetched; it resumes as soon as one is done. */
static void part_stalled(struct rf_kafka *k)
{
    uint64_t now = rf_now_ns() / 1000000;

    for (uint32_t i = 0; i < k->nparts; i++) {
        struct kpart *p = k->parts[i];
        if (p->assigned && !p->revoking && !p->paused && p->full_since_ms &&
            now - p->full_since_ms >= PAUSE_AFTER_MS)
            set_paused(k, p, true);
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
        if (rd_kafka_commit(k->consumer, l, 1) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            k->commits_sent++; /* async: its result comes to commit_cb */
        } else {
            for (int i = 0; i < l->cnt; i++) /* not sent: again at the next tick */
                k->parts[part_index(k, l->elems[i].topic, l->elems[i].partition, false)]
                    ->dirty = true;
        }
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
        part_reset(p);
        p->assigned = p->revoking = false;
    }
    rd_kafka_assign(k->consumer, NULL);
    rf_log_info("\"msg\":\"kafka partitions handed over\",\"count\":%d", parts->cnt);
}

/* A revocation under way: once its partitions' work is done (or waited long enough),
 * commit their offsets; commit_cb then finishes it, or, the commit having failed, has it
 * sent again here until REVOKE_WAIT_MS from the revocation. (Kafka accepts commits while
 * a group prepares its rebalance; librdkafka's mock cluster does not, so there the
 * partitions are handed over uncommitted after the wait: see docs/kafka.md.) */
static void revoke_done(struct rf_kafka *k)
{
    revoke_finish(k, k->revoke);
    rd_kafka_topic_partition_list_destroy(k->revoke);
    k->revoke = NULL;
    k->revoke_committing = k->revoke_commit_failed = false;
}

static void revoke_step(struct rf_kafka *k)
{
    bool busy = false;

    if (!k->revoke || k->revoke_committing)
        return;
    bool late = rf_now_ns() / 1000000 - k->revoke_since_ms >= REVOKE_WAIT_MS;
    for (uint32_t i = 0; i < k->nparts; i++)
        busy |= k->parts[i]->revoking && k->parts[i]->out;
    if (busy && !late)
        return;
    if (k->revoke_commit_failed && late) {
        rf_log_warn("\"msg\":\"kafka partitions handed over with their offsets not "
                    "committed: their next owner may run some messages again\"");
        revoke_done(k);
        return;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (uint32_t i = 0; i < k->nparts; i++) {
        struct kpart *p = k->parts[i];
        if (p->revoking && p->commit >= 0)
            rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->commit;
    }
    if (!l->cnt) {
        revoke_done(k);
    } else if (rd_kafka_commit(k->consumer, l, 1) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        k->revoke_commit_failed = true; /* not sent: again at the next tick */
    } else { /* commit_cb finishes the revocation */
        k->revoke_committing = true;
        k->revoke_commit = ++k->commits_sent;
        count(&k->commits);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Give the partition its own queue, before it is assigned: librdkafka's fetcher fills it
 * instead of the consumer's (an application forward, which librdkafka keeps), and it
 * signals the consumer's eventfd when it turns non-empty. */
static void part_queue(struct rf_kafka *k, struct kpart *p)
{
    if (p->q)
        rd_kafka_queue_destroy(p->q);
    p->q = rd_kafka_queue_get_partition(k->consumer, p->topic, p->partition);
    if (!p->q) {
        rf_log_error("\"msg\":\"kafka: no queue for a partition; its messages are not "
                     "consumed here\",\"partition\":%d", (int)p->partition);
        return;
    }
    rd_kafka_queue_forward(p->q, NULL);
    rd_kafka_queue_io_event_enable(p->q, k->cfd, &eventfd_one, sizeof(eventfd_one));
    p->more = true;
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
            part_reset(p);
            p->assigned = true;
            p->commit = p->acked = -1;
            p->dirty = false;
            part_queue(k, p);
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
            part_drop(p); /* not submitted, or not done: the next owner reads them */
        }
        if (k->revoke)
            rd_kafka_topic_partition_list_destroy(k->revoke);
        k->revoke = rd_kafka_topic_partition_list_copy(parts);
        k->revoke_since_ms = rf_now_ns() / 1000000;
        k->revoke_committing = k->revoke_commit_failed = false;
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
    bool failed = err && err != RD_KAFKA_RESP_ERR__NO_OFFSET;

    (void)rk;
    k->commits_answered++;
    if (failed)
        rf_log_warn("\"msg\":\"kafka offset commit failed; sent again\",\"err\":\"%s\"",
                    rd_kafka_err2str(err));
    /* A partition whose commit failed is committed again at the next tick: a commit lost
     * to a broker outage would otherwise leave its offset behind until new messages came. */
    for (int i = 0; offsets && i < offsets->cnt; i++) {
        if (!err && !offsets->elems[i].err)
            continue;
        if (!err) {
            failed = true;
            rf_log_warn("\"msg\":\"kafka offset commit failed; sent again\",\"partition\":%d,"
                        "\"err\":\"%s\"", (int)offsets->elems[i].partition,
                        rd_kafka_err2str(offsets->elems[i].err));
        }
        int ix = part_index(k, offsets->elems[i].topic, offsets->elems[i].partition, false);
        if (ix >= 0 && k->parts[ix]->assigned && !k->parts[ix]->revoking)
            k->parts[ix]->dirty = true;
    }
    for (int i = 0; !err && offsets && i < offsets->cnt; i++) {
        int ix = part_index(k, offsets->elems[i].topic, offsets->elems[i].partition, false);
        if (ix >= 0 && !offsets->elems[i].err && k->parts[ix]->assigned &&
            offsets->elems[i].offset > k->parts[ix]->acked)
            k->parts[ix]->acked = offsets->elems[i].offset;
    }
    if (!k->revoke || !k->revoke_committing || k->commits_answered < k->revoke_commit)
        return; /* not the revocation's commit */
    k->revoke_committing = false;
    if (failed)
        k->revoke_commit_failed = true; /* revoke_step sends it again, or gives up */
    else
        revoke_done(k);
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
        dlq_done(rf_container_of(w, struct kmw, kw), m->err);
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

/* Rebalances and commit results: rd_kafka_consumer_poll serves them (its callbacks run
 * here, on shard 0); then messages, from each partition's queue. Every queue signals the
 * one eventfd only when it turns non-empty, so a drain empties the consumer's queue (or
 * signals the eventfd itself to come back), and a partition's queue left non-empty is
 * marked (kpart.more) and drained again from the flush hook once its ring has room. */
static void drain_consumer(struct rf_kafka *k)
{
    uint64_t one = 1;
    int i;

    for (i = 0; i < DRAIN_MAX; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k->consumer, 0);
        if (!m)
            break;
        stray_message(m);
    }
    for (uint32_t j = 0; j < k->nparts; j++)
        part_drain(k, j);
    if (i == DRAIN_MAX && write(k->cfd, &one, sizeof(one)) < 0)
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
    retry_waiting(k);
    part_stalled(k);
    drain_consumer(k); /* a safety net: the queues' signals are edge-triggered */
    revoke_step(k);
    rd_kafka_poll(k->producer, 0);
    commit_dirty(k);
    uint64_t lag = 0;
    for (uint32_t i = 0; i < k->nparts; i++)
        if (k->parts[i]->assigned && k->parts[i]->commit > k->parts[i]->acked)
            lag += (uint64_t)(k->parts[i]->commit - k->parts[i]->acked);
    atomic_store_explicit(&k->uncommitted, lag, memory_order_relaxed); /* a gauge */
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

    /* What waits here goes back to shard 0, which drops it (never committed). */
    struct kshard *q = &k->shards[sh->id];
    q->quitting = true;
    while (q->wait.n) {
        struct kmw *w = kfifo_pop(&q->wait);
        w->res = KR_LATER;
        msg_return(w);
    }
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

    shard_retry(k, sh); /* the executions that finished this iteration made room */
    if (sh->id == 0 && !k->quitting)
        retry_waiting(k);
}

static bool svc_busy(void *ud, struct rf_shard *sh)
{
    struct rf_kafka *k = ud;

    if (sh->id != 0) {
        /* The other half of dispatch's Dekker: quit is set (we saw it before this hook
         * ran); the fence orders that before reading our count. */
        atomic_thread_fence(memory_order_seq_cst);
        return atomic_load_explicit(&k->shards[sh->id].remote, memory_order_relaxed) != 0;
    }
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
        /* A broker back from an outage is reconnected within a second, not ten: commits
         * wait for the coordinator's connection. */
        conf_set(c, "reconnect.backoff.max.ms", "1000", err, n) < 0 ||
        conf_set(c, "log_level", "3", err, n) < 0) {
        rd_kafka_conf_destroy(c);
        return -EINVAL;
    }
    /* --kafka-debug: librdkafka's own debug contexts ("fetch,cgrp", ...) on stderr. */
    if (k->cfg.debug[0] && (conf_set(c, "debug", k->cfg.debug, err, n) < 0 ||
                            conf_set(c, "log_level", "7", err, n) < 0)) {
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
    k->nshards = eng->nshards;
    k->shards = rf_zalloc_aligned(k->nshards * sizeof(*k->shards), RF_CACHELINE);
    if (!k->shards) {
        rf_free(k);
        return -ENOMEM;
    }
    if (!k->cfg.produce_timeout_ms)
        k->cfg.produce_timeout_ms = 30000;
    if (!k->cfg.partition_inflight || k->cfg.partition_inflight > RF_KAFKA_RING_MAX)
        k->cfg.partition_inflight = RF_KAFKA_RING_MAX;
    k->cfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    k->pfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (k->cfd < 0 || k->pfd < 0 || (rc = make_consumer(k, err, sizeof(err))) < 0 ||
        (rc = make_producer(k, err, sizeof(err))) < 0) {
        rf_log_error("\"msg\":\"kafka setup failed\",\"err\":\"%s\"", err);
        rf_kafka_free(k);
        return -EINVAL;
    }
    rd_kafka_queue_io_event_enable(k->cq, k->cfd, &eventfd_one, sizeof(eventfd_one));
    rd_kafka_queue_io_event_enable(k->pq, k->pfd, &eventfd_one, sizeof(eventfd_one));
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
        part_drop(k->parts[i]);
        if (k->parts[i]->q)
            rd_kafka_queue_destroy(k->parts[i]->q);
        rf_free(k->parts[i]);
    }
    if (k->cfd >= 0)
        close(k->cfd);
    if (k->pfd >= 0)
        close(k->pfd);
    rf_free(k->shards);
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
    out->uncommitted = atomic_load_explicit(&k->uncommitted, memory_order_relaxed);
}
