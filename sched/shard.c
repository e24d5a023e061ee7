/*
 * sched/shard.c: the shard thread and its loop (see sched/shard.h for the shape), the
 * wakeup protocol, timers on the ring, the task pool, and the io_uring probe.
 *
 * Ring set-up prefers IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN (completions
 * run only when the owner asks, which is exactly when the loop reaps) and falls back to
 * COOP_TASKRUN, then to no flags, as the probe found. The ring is created by the shard's
 * own thread, as SINGLE_ISSUER requires.
 *
 * Invariants:
 *   - only the owner thread touches `ring`, `heap`, the task pool and the lists;
 *   - `sleep` goes AWAKE -> PARKED (owner) -> NOTIFIED (one waker) -> AWAKE (owner);
 *   - a parked shard has checked, after publishing PARKED, that its inbox and every deque
 *     were empty and no cancel or quit was pending, so no work can be stranded.
 */
#include "engine/rf.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "sched/shard.h"

_Thread_local struct rf_shard *rf__cur_shard;

#define RF_DEQUE_CAP_LOG2_INIT 12
#define RF_TASK_POOL_CHUNK     64
#define RF_STEAL_BATCH         32

static void evfd_arm(struct rf_shard *sh);

/* --- creation ------------------------------------------------------------------------ */

int rf__shard_new(rf_engine *eng, uint32_t id, int cpu, struct rf_shard **out)
{
    uint32_t per = eng->cfg.inflight_per_shard_max;
    struct rf_shard *sh;
    int rc = -ENOMEM;

    sh = aligned_alloc(RF_CACHELINE, (sizeof(*sh) + RF_CACHELINE - 1) & ~(RF_CACHELINE - 1));
    if (!sh)
        return -ENOMEM;
    memset(sh, 0, sizeof(*sh));
    sh->eng = eng;
    sh->id = id;
    sh->cpu = cpu;
    sh->evfd = -1;
    sh->rng = (eng->cfg.seed ^ (0x9E3779B97F4A7C15ull * (id + 1))) | 1;
    sh->waiting.next = sh->waiting.prev = &sh->waiting;
    sh->home.hnext = sh->home.hprev = &sh->home;
    sh->slot_base = id * per;
    sh->task_size = (sizeof(struct rf_task) + eng->task_bytes_max + 15) & ~(size_t)15;

    sh->free_slots = malloc(per * sizeof(*sh->free_slots));
    sh->wake_ops = calloc(eng->nshards, sizeof(*sh->wake_ops));
    if (!sh->free_slots || !sh->wake_ops)
        goto err_slots;
    for (uint32_t i = 0; i < per; i++)
        sh->free_slots[i] = per - 1 - i; /* pop gives 0, 1, 2, ... */
    sh->nfree_slots = per;

    rc = rf_deque_init(&sh->dq, RF_DEQUE_CAP_LOG2_INIT);
    if (rc < 0)
        goto err_dq;
    /* Each execution puts at most one SUBMIT and one DONE in its home inbox at a time,
     * and `inflight` reserves the execution's place before either is sent. */
    rc = rf_mq_init(&sh->inbox, 2 * per + 2);
    if (rc < 0)
        goto err_mq;
    sh->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (sh->evfd < 0) {
        rc = -errno;
        goto err_evfd;
    }
    *out = sh;
    return 0;

err_evfd:
    rf_mq_fini(&sh->inbox);
err_mq:
    rf_deque_fini(&sh->dq);
err_dq:
err_slots:
    free(sh->wake_ops);
    free(sh->free_slots);
    free(sh);
    return rc;
}

void rf__shard_free(struct rf_shard *sh)
{
    if (!sh)
        return;
    if (sh->evfd >= 0)
        close(sh->evfd);
    rf_mq_fini(&sh->inbox);
    rf_deque_fini(&sh->dq);
    rf_buf_free(&sh->jcs);
    free(sh->free_slots);
    free(sh->wake_ops);
    free(sh);
}

/* --- ring helpers ---------------------------------------------------------------------- */

struct io_uring_sqe *rf__shard_sqe(struct rf_shard *sh)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&sh->ring);

    if (rf_unlikely(!sqe)) {
        io_uring_submit(&sh->ring);
        atomic_fetch_add_explicit(&sh->ctr.submits, 1, memory_order_relaxed); /* stat */
        sqe = io_uring_get_sqe(&sh->ring);
    }
    return sqe;
}

void rf__shard_timer_arm(struct rf_shard *sh, rf_op *op, struct __kernel_timespec *ts, uint64_t ms,
                         rf_op_fn cb)
{
    struct io_uring_sqe *sqe = rf__shard_sqe(sh);

    RF_ASSERT(sqe != NULL);
    ts->tv_sec = (long long)(ms / 1000);
    ts->tv_nsec = (long long)(ms % 1000) * 1000000;
    op->cb = cb;
    io_uring_prep_timeout(sqe, ts, 0, 0);
    io_uring_sqe_set_data(sqe, op);
}

void rf__shard_timer_cancel(struct rf_shard *sh, rf_op *op)
{
    struct io_uring_sqe *sqe = rf__shard_sqe(sh);

    RF_ASSERT(sqe != NULL);
    io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)op, 0);
    io_uring_sqe_set_data64(sqe, RF_UD_IGNORE);
}

/* --- task pool ------------------------------------------------------------------------ */

/* Chunks of RF_TASK_POOL_CHUNK tasks from the shard's heap; the first 16 bytes of a chunk
 * link it into task_chunks, so the pool is freed whole when the thread ends. */
static int task_pool_grow(struct rf_shard *sh)
{
    char *chunk = rf_heap_malloc(sh->heap, 16 + sh->task_size * RF_TASK_POOL_CHUNK);

    if (!chunk)
        return -ENOMEM;
    *(void **)chunk = sh->task_chunks;
    sh->task_chunks = chunk;
    for (uint32_t i = 0; i < RF_TASK_POOL_CHUNK; i++) {
        struct rf_task *t = (struct rf_task *)(chunk + 16 + i * sh->task_size);
        t->next = sh->task_free;
        sh->task_free = t;
    }
    return 0;
}

struct rf_task *rf__task_get(struct rf_shard *sh)
{
    struct rf_task *t;

    if (!sh->task_free && task_pool_grow(sh) < 0)
        return NULL;
    t = sh->task_free;
    sh->task_free = t->next;
    memset(t, 0, sh->task_size);
    t->sh = sh;
    t->lane = RF_NO_LANE;
    sh->tasks_out++;
    return t;
}

void rf__task_put(struct rf_shard *sh, struct rf_task *t)
{
    RF_DASSERT(t->sh == sh);
    RF_ASSERT(sh->tasks_out > 0);
    sh->tasks_out--;
    t->next = sh->task_free;
    sh->task_free = t;
}

/* --- messages and wakeups --------------------------------------------------------------- */

void rf__shard_push(struct rf_shard *sh, uint64_t tok)
{
    int rc = rf_deque_push_owner(&sh->dq, tok);

    /* The deque holds the ready nodes of the executions in flight, at most
     * 2^RF_DEQUE_CAP_LOG2_MAX (the engine refuses plans larger than that); failing to grow
     * it means memory is exhausted, which leaves no correct way on. */
    if (rf_unlikely(rc < 0)) {
        rf_log_error("\"msg\":\"ready-node deque cannot grow\",\"shard\":%u,\"depth\":%zu", sh->id,
                     rf_deque_size_approx(&sh->dq));
        RF_ASSERT(rc == 0);
    }
}

void rf__shard_flush_pending(struct rf_shard *sh)
{
    uint32_t n = sh->pend_n;
    struct rf_exec *ex = sh->pend_ex;
    uint32_t s = sh->pend_node;

    if (!n)
        return;
    sh->pend_n = 0;
    sh->pend_ex = NULL;
    /* acq_rel: as a plain decrement, n deps at once. After it `ex` may be gone unless we
     * are the one making `s` ready. */
    if (atomic_fetch_sub_explicit(&ex->ns[s].join, n, memory_order_acq_rel) != n)
        return;
    atomic_store_explicit(&ex->ns[s].status, RF_ST_READY, memory_order_relaxed); /* snapshot */
    rf__shard_push(sh, rf_tok(ex->slot, s));
}

static void evfd_poke(struct rf_shard *to)
{
    uint64_t one = 1;
    ssize_t n = write(to->evfd, &one, sizeof(one));
    RF_ASSERT(n == (ssize_t)sizeof(one) || errno == EAGAIN); /* EAGAIN: already set */
}

/* A MSG_RING that failed (the target's CQ overflowing, no memory) must not strand its
 * target in NOTIFIED, where no other waker may try: fall back to its eventfd. */
static void wake_cqe(rf_op *op, int res, uint32_t flags)
{
    struct rf_wake_op *w = rf_container_of(op, struct rf_wake_op, op);

    (void)flags;
    if (res < 0)
        evfd_poke(w->to);
}

/* Submitted at once, not with the sender's batch: the target may be the only idle shard
 * while the sender runs a whole budget of long nodes. One syscall per real wakeup, as the
 * eventfd write costs. */
static void send_wakeup(struct rf_shard *from, struct rf_shard *to)
{
    struct io_uring_sqe *sqe;

    if (from && from->eng->has_msg_ring && (sqe = rf__shard_sqe(from)) != NULL) {
        struct rf_wake_op *w = &from->wake_ops[to->id];
        w->op.cb = wake_cqe;
        w->to = to;
        io_uring_prep_msg_ring(sqe, to->ring.ring_fd, 0, RF_UD_WAKE, 0);
        io_uring_sqe_set_data(sqe, &w->op);
        io_uring_submit(&from->ring);
        atomic_fetch_add_explicit(&from->ctr.submits, 1, memory_order_relaxed); /* stat */
    } else {
        evfd_poke(to);
    }
    if (from)
        atomic_fetch_add_explicit(&from->ctr.wakeups_sent, 1, memory_order_relaxed); /* stat */
}

void rf__shard_wake(struct rf_shard *sh)
{
    uint32_t expect = RF_PARKED;

    /* Dekker with park(): our work was published before this fence; the parking shard
     * stores PARKED then re-checks. One of us sees the other. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&sh->sleep, memory_order_relaxed) != RF_PARKED)
        return;
    /* One waker wins the right to send; acq_rel is enough, the fence above ordered us. */
    if (atomic_compare_exchange_strong_explicit(&sh->sleep, &expect, RF_NOTIFIED,
                                                memory_order_acq_rel, memory_order_relaxed))
        send_wakeup(rf__cur_shard != sh ? rf__cur_shard : NULL, sh);
}

void rf__shard_wake_sibling(struct rf_shard *self)
{
    rf_engine *eng = self->eng;
    uint32_t n = eng->nshards;
    uint32_t start;

    /* seq_cst: our deque push (a release store of bottom) must be visible before we read
     * who is parked, or a sibling parking right now and we could miss each other. Once
     * per batch of pushes, not per node. */
    atomic_thread_fence(memory_order_seq_cst);
    /* Relaxed after the fence: a stale count only costs a missed or a useless scan. */
    if (atomic_load_explicit(&eng->nparked, memory_order_relaxed) == 0)
        return;
    start = rf_rand_below(&self->rng, n);
    for (uint32_t k = 0; k < n; k++) {
        struct rf_shard *s = eng->shards[(start + k) % n];
        /* Relaxed peek; rf__shard_wake does the ordered check. */
        if (s != self && atomic_load_explicit(&s->sleep, memory_order_relaxed) == RF_PARKED) {
            rf__shard_wake(s);
            return;
        }
    }
}

bool rf__shard_send(struct rf_shard *to, struct rf_exec *ex, enum rf_msg_type type)
{
    RF_DASSERT(((uintptr_t)ex & RF_MSG_TYPE_MASK) == 0);
    if (!rf_mq_push_mpsc(&to->inbox, (void *)((uintptr_t)ex | type)))
        return false;
    if (to != rf__cur_shard)
        rf__shard_wake(to);
    return true;
}

void rf__shard_task_wake(struct rf_task *t)
{
    struct rf_shard *sh = t->sh;
    /* Relaxed: the CAS below publishes. */
    struct rf_task *head = atomic_load_explicit(&sh->woken, memory_order_relaxed);

    do
        t->wnext = head;
    /* Release: the owner's acquire exchange sees what we wrote before waking the task. */
    while (!atomic_compare_exchange_weak_explicit(&sh->woken, &head, t, memory_order_release,
                                                  memory_order_relaxed));
    if (sh != rf__cur_shard)
        rf__shard_wake(sh);
}

void rf__shard_post(struct rf_shard *sh, struct rf_post *p)
{
    /* Relaxed: the CAS below publishes. */
    struct rf_post *head = atomic_load_explicit(&sh->posted, memory_order_relaxed);

    do
        p->pnext = head;
    /* Release: the owner's acquire exchange sees what the poster wrote before posting. */
    while (!atomic_compare_exchange_weak_explicit(&sh->posted, &head, p, memory_order_release,
                                                  memory_order_relaxed));
    if (sh != rf__cur_shard)
        rf__shard_wake(sh);
}

/* --- services ---------------------------------------------------------------------------- */

/* A service may leave any hook NULL: it has nothing to do there. */

static void svcs_flush(struct rf_shard *sh)
{
    for (uint32_t i = 0; i < sh->svc_started; i++)
        if (sh->eng->svcs[i]->flush)
            sh->eng->svcs[i]->flush(sh->eng->svcs[i]->ud, sh);
}

static void svcs_quit(struct rf_shard *sh)
{
    for (uint32_t i = 0; i < sh->svc_started; i++)
        if (sh->eng->svcs[i]->quit)
            sh->eng->svcs[i]->quit(sh->eng->svcs[i]->ud, sh);
}

static bool svcs_busy(struct rf_shard *sh)
{
    bool busy = false;

    for (uint32_t i = 0; i < sh->svc_started; i++)
        if (sh->eng->svcs[i]->busy)
            busy |= sh->eng->svcs[i]->busy(sh->eng->svcs[i]->ud, sh);
    return busy;
}

static int svcs_start(struct rf_shard *sh)
{
    for (uint32_t i = 0; i < sh->eng->nsvcs; i++) {
        int rc = sh->eng->svcs[i]->start ? sh->eng->svcs[i]->start(sh->eng->svcs[i]->ud, sh) : 0;
        if (rc < 0)
            return rc;
        sh->svc_started = i + 1;
    }
    return 0;
}

static void svcs_stop(struct rf_shard *sh)
{
    while (sh->svc_started) {
        const struct rf_shard_service *svc = sh->eng->svcs[--sh->svc_started];
        if (svc->stop)
            svc->stop(svc->ud, sh);
    }
}

/* Run the posted closures, oldest first. */
static void drain_posted(struct rf_shard *sh)
{
    struct rf_post *p, *rev = NULL;

    /* Relaxed peek first: the common case is an empty stack and no RMW. */
    if (!atomic_load_explicit(&sh->posted, memory_order_relaxed))
        return;
    /* Acquire: pairs with the posters' release CAS. */
    p = atomic_exchange_explicit(&sh->posted, NULL, memory_order_acquire);
    while (p) {
        struct rf_post *next = p->pnext;
        p->pnext = rev;
        rev = p;
        p = next;
    }
    while (rev) {
        struct rf_post *next = rev->pnext;
        rev->fn(rev, sh);
        rev = next;
    }
}

/* Run the woken tasks' continuations, oldest first. */
static void drain_woken(struct rf_shard *sh)
{
    struct rf_task *t, *rev = NULL;

    /* Relaxed peek first: the common case is an empty stack and no RMW. */
    if (!atomic_load_explicit(&sh->woken, memory_order_relaxed))
        return;
    /* Acquire: pairs with the wakers' release CAS. */
    t = atomic_exchange_explicit(&sh->woken, NULL, memory_order_acquire);
    while (t) {
        struct rf_task *next = t->wnext;
        t->wnext = rev;
        rev = t;
        t = next;
    }
    while (rev) {
        struct rf_task *next = rev->wnext;
        rev->woken(rev);
        rev = next;
    }
}

/* --- completions ------------------------------------------------------------------------- */

static void evfd_cqe(rf_op *op, int res, uint32_t flags)
{
    struct rf_shard *sh = rf_container_of(op, struct rf_shard, evop);

    (void)res;
    (void)flags;
    if (!atomic_load_explicit(&sh->eng->quit, memory_order_relaxed)) /* flag only */
        evfd_arm(sh);
}

static void evfd_arm(struct rf_shard *sh)
{
    struct io_uring_sqe *sqe = rf__shard_sqe(sh);

    RF_ASSERT(sqe != NULL);
    sh->evop.cb = evfd_cqe;
    io_uring_prep_read(sqe, sh->evfd, &sh->evbuf, sizeof(sh->evbuf), 0);
    io_uring_sqe_set_data(sqe, &sh->evop);
}

/* Dispatch every CQE in the ring; no syscall. Returns how many. */
static unsigned reap(struct rf_shard *sh)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;

    io_uring_for_each_cqe(&sh->ring, head, cqe)
    {
        uint64_t ud = cqe->user_data;
        n++;
        if (ud > RF_UD_WAKE) {
            rf_op *op = (rf_op *)(uintptr_t)ud;
            /* The callback may queue SQEs but never reaps: the head we advance below
             * is still ours. */
            op->cb(op, cqe->res, cqe->flags);
        }
    }
    if (n) {
        io_uring_cq_advance(&sh->ring, n);
        atomic_fetch_add_explicit(&sh->ctr.cqes, n, memory_order_relaxed); /* stat */
    }
    return n;
}

/* --- the loop ---------------------------------------------------------------------------- */

static void drain_inbox(struct rf_shard *sh)
{
    void *m;

    while (rf_mq_pop_sc(&sh->inbox, &m)) {
        uintptr_t v = (uintptr_t)m;
        struct rf_exec *ex = (struct rf_exec *)(v & ~(uintptr_t)RF_MSG_TYPE_MASK);
        switch (v & RF_MSG_TYPE_MASK) {
        case RF_MSG_SUBMIT:
            /* Queued, started by start_some(): see there. */
            ex->hnext = NULL;
            if (sh->startq_tail)
                sh->startq_tail->hnext = ex;
            else
                sh->startq = ex;
            sh->startq_tail = ex;
            break;
        case RF_MSG_DONE:
            rf__exec_done_home(sh, ex);
            break;
        default:
            RF_ASSERT(!"unknown message");
        }
    }
}

/* Start up to run_budget queued executions, once the deque is empty. The owner pops its
 * deque LIFO, so the roots of a new execution would run before the older executions'
 * queued nodes; under a steady stream of submissions (and no thief to take the old end,
 * as on one shard) an old node could wait until the stream stopped. Starting new work only
 * once the ready work of the started executions has drained bounds every node's wait to
 * one batch and finishes executions in about the order they came; the queue is only held
 * back while there is other work to do. */
static void start_some(struct rf_shard *sh)
{
    uint32_t batch = sh->eng->cfg.run_budget;

    if (rf_deque_size_approx(&sh->dq) != 0)
        return;
    while (sh->startq && batch--) {
        struct rf_exec *ex = sh->startq;
        sh->startq = ex->hnext;
        if (!sh->startq)
            sh->startq_tail = NULL;
        rf__exec_start(sh, ex);
    }
}

static void check_cancels(struct rf_shard *sh)
{
    /* Acquire: pairs with the release bump in rf_exec_cancel, so the execution's
     * RF_CTL_CANCEL bit is visible when we scan. */
    uint64_t ep = atomic_load_explicit(&sh->cancel_epoch, memory_order_acquire);

    if (ep != sh->seen_cancel_epoch) {
        sh->seen_cancel_epoch = ep;
        rf__tasks_cancel_scan(sh);
    }
    /* Acquire: pairs with the stopper's release store; the walk then sees its state. */
    if (!sh->canceled_all && atomic_load_explicit(&sh->eng->cancel_all, memory_order_acquire)) {
        sh->canceled_all = true;
        rf__exec_cancel_home_all(sh);
    }
}

/* Run up to `budget` nodes; the node a finishing node makes ready runs next without a
 * round trip through the deque. Returns the number run. */
static uint32_t run_ready(struct rf_shard *sh, uint32_t budget)
{
    uint64_t tok = RF_TOK_NONE;
    uint32_t n = 0;

    while (n < budget) {
        if (tok == RF_TOK_NONE && !rf_deque_pop_owner(&sh->dq, &tok))
            break;
        tok = rf__run_token(sh, tok);
        n++;
    }
    if (tok != RF_TOK_NONE)
        rf__shard_push(sh, tok);
    /* Batched decrements never outlive a run: nothing can wait on them while we park. */
    rf__shard_flush_pending(sh);
    if (n)
        atomic_fetch_add_explicit(&sh->ctr.nodes_run, n, memory_order_relaxed); /* stat */
    return n;
}

static bool try_steal(struct rf_shard *sh)
{
    rf_engine *eng = sh->eng;
    uint32_t n = eng->nshards;
    uint64_t tok;

    if (n < 2)
        return false;
    for (uint32_t a = 0; a < eng->cfg.steal_attempts; a++) {
        uint32_t v = rf_rand_below(&sh->rng, n - 1);
        struct rf_shard *victim = eng->shards[v >= sh->id ? v + 1 : v];
        atomic_fetch_add_explicit(&sh->ctr.steal_attempts, 1, memory_order_relaxed); /* stat */
        if (rf_deque_steal(&victim->dq, &tok) != 1)
            continue;
        /* Take up to half of what is left (at most RF_STEAL_BATCH): one trip across
         * the machine buys a run of nodes, and batched decrements then stay batched. */
        uint32_t got = 1, want = (uint32_t)RF_MIN(rf_deque_size_approx(&victim->dq) / 2,
                                                  (size_t)RF_STEAL_BATCH - 1);
        rf__shard_push(sh, tok);
        while (got <= want && rf_deque_steal(&victim->dq, &tok) == 1) {
            rf__shard_push(sh, tok);
            got++;
        }
        atomic_fetch_add_explicit(&sh->ctr.steals, got, memory_order_relaxed); /* stat */
        /* The victim may have more: let another idle sibling come too. */
        if (rf_deque_size_approx(&victim->dq) > 1)
            rf__shard_wake_sibling(sh);
        return true;
    }
    return false;
}

static bool work_visible(struct rf_shard *sh)
{
    rf_engine *eng = sh->eng;

    if (rf_mq_size(&sh->inbox) || rf_deque_size_approx(&sh->dq) || sh->startq)
        return true;
    /* Acquire: pairs with rf__shard_task_wake's release CAS. */
    if (atomic_load_explicit(&sh->woken, memory_order_acquire))
        return true;
    /* Acquire: pairs with rf__shard_post's release CAS. */
    if (atomic_load_explicit(&sh->posted, memory_order_acquire))
        return true;
    /* Acquire loads: see the flags set before a wakeup was attempted. */
    if (atomic_load_explicit(&sh->cancel_epoch, memory_order_acquire) != sh->seen_cancel_epoch)
        return true;
    /* Acquire: as above. Once the service quit, its remaining work is CQEs: park for them. */
    if (atomic_load_explicit(&eng->quit, memory_order_acquire) && !sh->svc_quitted)
        return true;
    if (!sh->canceled_all && atomic_load_explicit(&eng->cancel_all, memory_order_acquire))
        return true;
    for (uint32_t i = 0; i < eng->nshards; i++)
        if (eng->shards[i] != sh && rf_deque_size_approx(&eng->shards[i]->dq))
            return true;
    return false;
}

static void park(struct rf_shard *sh)
{
    rf_engine *eng = sh->eng;

    /* seq_cst store: the Dekker half that pairs with the fence in rf__shard_wake. */
    atomic_store_explicit(&sh->sleep, RF_PARKED, memory_order_seq_cst);
    atomic_fetch_add_explicit(&eng->nparked, 1, memory_order_relaxed); /* hint only */
    /* seq_cst: the re-check below must not move before the PARKED store. */
    atomic_thread_fence(memory_order_seq_cst);
    if (!work_visible(sh)) {
        atomic_fetch_add_explicit(&sh->ctr.parks, 1, memory_order_relaxed);   /* stat */
        atomic_fetch_add_explicit(&sh->ctr.submits, 1, memory_order_relaxed); /* stat */
        int rc = io_uring_submit_and_wait(&sh->ring, 1);
        RF_ASSERT(rc >= 0 || rc == -EINTR || rc == -ETIME || rc == -EBUSY);
    }
    atomic_fetch_sub_explicit(&eng->nparked, 1, memory_order_relaxed); /* hint only */
    /* Relaxed: NOTIFIED or PARKED both end here; the wakeup's CQE (if any) is reaped
     * next and is harmless. */
    atomic_store_explicit(&sh->sleep, RF_AWAKE, memory_order_relaxed);
}

static void loop(struct rf_shard *sh)
{
    rf_engine *eng = sh->eng;
    uint32_t budget = eng->cfg.run_budget;
    bool svc = sh->svc_started > 0;

    for (;;) {
        reap(sh);
        drain_inbox(sh);
        drain_woken(sh);
        drain_posted(sh);
        check_cancels(sh);
        if (svc && (sh->startq || rf_deque_size_approx(&sh->dq))) {
            /* Nodes are about to run for a while: send what the completions above
             * produced (responses) first, so peers are not kept waiting for the run. */
            svcs_flush(sh);
            if (io_uring_sq_ready(&sh->ring)) {
                atomic_fetch_add_explicit(&sh->ctr.submits, 1, memory_order_relaxed); /* stat */
                io_uring_submit(&sh->ring);
            }
        }
        start_some(sh);
        uint32_t ran = run_ready(sh, budget);
        bool waiting = sh->tasks_out > 0 || svc;
        if (svc)
            svcs_flush(sh);
        if (io_uring_sq_ready(&sh->ring) || (ran && waiting)) {
            /* One enter per batch submits our SQEs and, with DEFER_TASKRUN, runs the
             * completions that are ready so the next reap sees them. */
            atomic_fetch_add_explicit(&sh->ctr.submits, 1, memory_order_relaxed); /* stat */
            io_uring_submit_and_get_events(&sh->ring);
        }
        if (ran)
            continue;
        if (try_steal(sh))
            continue;
        /* Acquire: the stop sequence's writes happen before we exit. */
        if (atomic_load_explicit(&eng->quit, memory_order_acquire) && sh->tasks_out == 0 &&
            sh->home.hnext == &sh->home && !sh->startq) {
            if (svc && !sh->svc_quitted) {
                sh->svc_quitted = true;
                svcs_quit(sh);
                continue;
            }
            if (!svc || !svcs_busy(sh))
                break;
        }
        if (io_uring_cq_ready(&sh->ring))
            continue;
        park(sh);
    }
}

static int pin(struct rf_shard *sh)
{
    cpu_set_t set;

    if (sh->cpu < 0)
        return 0;
    CPU_ZERO(&set);
    CPU_SET(sh->cpu, &set);
    return -pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static int ring_init(struct rf_shard *sh)
{
    rf_engine *eng = sh->eng;
    struct io_uring_params p;
    int rc;

    memset(&p, 0, sizeof(p));
    p.flags = eng->ring_flags;
    rc = io_uring_queue_init_params(eng->cfg.ring_entries, &sh->ring, &p);
    if (rc < 0)
        return rc;
    sh->ring_ok = true;
    /* Registering the ring fd saves an fget per enter; optional. */
    (void)io_uring_register_ring_fd(&sh->ring);
    evfd_arm(sh);
    io_uring_submit(&sh->ring);
    return 0;
}

static void started(struct rf_shard *sh, int rc)
{
    rf_engine *eng = sh->eng;

    pthread_mutex_lock(&eng->start_mu);
    if (rc < 0 && eng->start_err == 0)
        eng->start_err = rc;
    eng->started++;
    pthread_cond_broadcast(&eng->start_cv);
    pthread_mutex_unlock(&eng->start_mu);
}

/* Wait until the engine says go (all shards up) or quit (one failed). */
static bool wait_go(struct rf_shard *sh)
{
    rf_engine *eng = sh->eng;
    bool go;

    pthread_mutex_lock(&eng->start_mu);
    while (eng->started != UINT32_MAX && !atomic_load(&eng->quit))
        pthread_cond_wait(&eng->start_cv, &eng->start_mu);
    go = eng->started == UINT32_MAX;
    pthread_mutex_unlock(&eng->start_mu);
    return go;
}

void *rf__shard_main(void *arg)
{
    struct rf_shard *sh = arg;
    char name[16];
    int rc;

    rf__cur_shard = sh;
    snprintf(name, sizeof(name), "rf-shard-%u", sh->id);
    pthread_setname_np(pthread_self(), name);
    rc = pin(sh);
    if (rc < 0)
        rf_log_warn("\"msg\":\"cannot pin shard\",\"shard\":%u,\"cpu\":%d,\"err\":\"%s\"", sh->id,
                    sh->cpu, rf_strerror(rc));
    sh->heap = rf_heap_new();
    rc = sh->heap ? ring_init(sh) : -ENOMEM;
    if (rc == 0)
        rc = svcs_start(sh);
    started(sh, rc);
    if (rc == 0 && wait_go(sh))
        loop(sh);
    svcs_stop(sh);
    if (sh->ring_ok)
        io_uring_queue_exit(&sh->ring);
    sh->ring_ok = false;
    RF_ASSERT(sh->tasks_out == 0);
    while (sh->task_chunks) {
        void *next = *(void **)sh->task_chunks;
        rf_free(sh->task_chunks);
        sh->task_chunks = next;
    }
    sh->task_free = NULL;
    if (sh->heap)
        rf_heap_delete(sh->heap);
    sh->heap = NULL;
    rf__cur_shard = NULL;
    return NULL;
}
