/*
 * sched/shard.h: a shard is one thread, pinned to one CPU, that owns one io_uring ring, one
 * mimalloc heap, one work-stealing deque of ready nodes, one inbox, a pool of tasks and the
 * executions homed on it. Everything a shard owns is touched only by its thread, except
 * the fields grouped at the end on cache lines of their own, which siblings and
 * application threads use to hand it work and wake it up.
 *
 * The loop (rf__shard_main) never blocks on anything but its ring:
 *   1. reap completions (no syscall: the CQ ring is shared memory) and dispatch each to the
 *      rf_op its user_data points at;
 *   2. drain the inbox (submissions, executions finished elsewhere);
 *   3. run up to `run_budget` ready nodes from its deque, so I/O is never starved;
 *   4. if anything waits on the ring, submit and reap in one io_uring_enter; a shard
 *      running only CPU nodes makes no syscall at all;
 *   5. with nothing to do, steal from random siblings, and failing that park in
 *      io_uring_submit_and_wait(1). Timers are ring timeouts, so the park needs no timeout.
 *
 * Parking is a Dekker hand-shake with wakers: the shard stores PARKED (seq_cst) and then
 * looks at its inbox, deques and flags once more; a waker publishes its work, then
 * (seq_cst) reads the state, and if it sees PARKED and wins the CAS to NOTIFIED it sends
 * the one wakeup: IORING_OP_MSG_RING from a sibling's ring, or a write to the shard's
 * eventfd, whose read is always pending on the ring, from any other thread.
 */
#ifndef RF_SCHED_SHARD_H
#define RF_SCHED_SHARD_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>

#include "engine/alloc.h"
#include "engine/internal.h"
#include "engine/jcs.h"
#include "engine/rf.h"
#include "sched/deque.h"
#include "sched/mq.h"

/* CQEs whose user_data is one of these are not rf_ops. */
#define RF_UD_IGNORE 0ull /* completions nobody waits for (timer removals, wake sends) */
#define RF_UD_WAKE   1ull /* a MSG_RING wakeup from a sibling */

enum rf_sleep {
    RF_AWAKE = 0,
    RF_PARKED = 1,   /* about to sleep or sleeping in io_uring_submit_and_wait */
    RF_NOTIFIED = 2, /* a waker won the right to send the one wakeup */
};

/* Messages in a shard's inbox: an execution pointer with the type in its low bits. */
enum rf_msg_type {
    RF_MSG_SUBMIT = 0, /* start this execution; you are its home */
    RF_MSG_DONE = 1,   /* this execution of yours is finished and its callbacks ran */
};
#define RF_MSG_TYPE_MASK 3ull

/* A closure handed to a shard from any thread (rf__shard_post): `fn` runs once on the
 * shard's thread, soon. Caller-owned and intrusive: it must stay valid until fn ran, and
 * may be posted again from fn on. The network server uses it to move work between shards
 * (events for a subscriber whose connection lives elsewhere, stop requests). */
struct rf_post {
    struct rf_post *pnext;
    void (*fn)(struct rf_post *p, struct rf_shard *sh);
};

/* A service living on every shard's ring beside the executions (the HTTP server, the
 * journal): added with rf__engine_set_service() before rf_engine_start(). Every hook runs
 * on the shard's thread; any may be NULL. */
struct rf_shard_service {
    void *ud;
    int (*start)(void *ud, struct rf_shard *sh);  /* before the loop; < 0 fails the start */
    void (*flush)(void *ud, struct rf_shard *sh); /* every loop iteration, before submitting */
    void (*quit)(void *ud, struct rf_shard *sh);  /* once, when the engine quits */
    bool (*busy)(void *ud, struct rf_shard *sh);  /* after quit: the loop runs while true */
    void (*stop)(void *ud, struct rf_shard *sh);  /* after the loop, before the ring goes */
};

/* One per (sender, target) pair: the MSG_RING wakeup's completion. */
struct rf_wake_op {
    rf_op op;
    struct rf_shard *to;
};

struct rf_shard_counters {
    _Atomic uint64_t nodes_run; /* all counters: owner writes relaxed, readers snapshot */
    _Atomic uint64_t steals;
    _Atomic uint64_t steal_attempts;
    _Atomic uint64_t parks;
    _Atomic uint64_t wakeups_sent;
    _Atomic uint64_t submits;
    _Atomic uint64_t cqes;
};

struct rf_shard {
    /* --- owner thread only --- */
    struct io_uring ring;
    rf_engine *eng;
    uint32_t id;
    int cpu;                   /* pinned CPU or -1 */
    uint64_t rng;              /* victims and jitter */
    rf_heap *heap;             /* created by the thread itself */
    struct rf_task *task_free; /* pool of idle tasks (linked through next) */
    void *task_chunks;         /* the pool's chunks, linked through their first word */
    size_t task_size;
    uint32_t tasks_out;     /* tasks taken from the pool and not yet returned */
    struct rf_task waiting; /* sentinel of the list of waiting tasks */
    uint64_t seen_cancel_epoch;
    struct rf_exec home;  /* sentinel of the list of executions homed here */
    struct rf_exec *startq, *startq_tail; /* submitted, not started yet (through hnext) */
    uint32_t *free_slots; /* stack of free local slot numbers */
    uint32_t nfree_slots;
    uint32_t slot_base;      /* this shard's first global slot */
    struct rf_exec *pend_ex; /* a batched join decrement not yet applied (RF_SUCC_WIDE) */
    uint32_t pend_node;
    uint32_t pend_n;
    bool ring_ok;
    bool canceled_all;
    struct rf_wake_op *wake_ops; /* nshards entries, indexed by target */
    int evfd;                    /* eventfd for wakeups from threads without a ring */
    uint64_t evbuf;              /* the pending eventfd read lands here */
    rf_op evop;
    pthread_t thread;
    struct rf_buf jcs; /* scratch for lineage hashing (JCS of params) */
    uint32_t svc_started; /* services whose start hook succeeded (the first n) */
    bool svc_quitted;     /* the services' quit hooks ran */
    struct rf_shard_counters ctr;

    /* --- shared with thieves: the deque pads its own top and bottom --- */
    struct rf_deque dq;

    /* --- shared with every thread that hands this shard work --- */
    struct rf_mq inbox RF_ALIGNED_CL;
    _Atomic uint32_t sleep RF_ALIGNED_CL;        /* enum rf_sleep */
    _Atomic uint64_t cancel_epoch RF_ALIGNED_CL; /* bumped by rf_exec_cancel: scan tasks */
    _Atomic uint32_t inflight RF_ALIGNED_CL;     /* executions homed here, reserved */
    _Atomic(struct rf_task *) woken RF_ALIGNED_CL; /* Treiber stack of tasks to resume */
    _Atomic(struct rf_post *) posted RF_ALIGNED_CL; /* Treiber stack of posted closures */
};

/* The shard whose thread is calling, or NULL on any other thread. */
extern _Thread_local struct rf_shard *rf__cur_shard;

int rf__shard_new(rf_engine *eng, uint32_t id, int cpu, struct rf_shard **out);
void rf__shard_free(struct rf_shard *sh);
void *rf__shard_main(void *arg);

/* Wake `sh` if it is parked; at most one wakeup per park. Any thread. */
void rf__shard_wake(struct rf_shard *sh);
/* Wake one parked sibling of `self`, if any (surplus work). Shard thread. */
void rf__shard_wake_sibling(struct rf_shard *self);

/* An SQE on the owner's ring, flushing the SQ once if it is full. Owner thread. */
struct io_uring_sqe *rf__shard_sqe(struct rf_shard *sh);
/* Arm a relative timeout on the owner's ring; `op->cb` gets -ETIME when it fires. */
void rf__shard_timer_arm(struct rf_shard *sh, rf_op *op, struct __kernel_timespec *ts, uint64_t ms,
                         rf_op_fn cb);
/* Remove an armed timeout; its CQE then arrives with -ECANCELED (or -ETIME if it raced). */
void rf__shard_timer_cancel(struct rf_shard *sh, rf_op *op);

/* Task pool; owner thread. */
struct rf_task *rf__task_get(struct rf_shard *sh);
void rf__task_put(struct rf_shard *sh, struct rf_task *t);

/* Apply the batched join decrement, if any; may push the node it makes ready. Owner. */
void rf__shard_flush_pending(struct rf_shard *sh);

/* Push a ready token on the owner's deque (aborts only if memory is exhausted). */
void rf__shard_push(struct rf_shard *sh, uint64_t tok);

/* Resume task `t` on its owner shard: t->woken(t) runs there soon. Any thread. */
void rf__shard_task_wake(struct rf_task *t);

/* Run p->fn on shard `sh`'s thread soon (oldest first among posts). Any thread. */
void rf__shard_post(struct rf_shard *sh, struct rf_post *p);


/* Hand a message to shard `to`'s inbox and wake it. Any thread. False when full. */
bool rf__shard_send(struct rf_shard *to, struct rf_exec *ex, enum rf_msg_type type);

/* io_uring probe: 0, or RF_EIOURING after printing what is missing. */
int rf__iouring_probe(rf_engine *eng);

#endif /* RF_SCHED_SHARD_H */
