/*
 * bench/load/engine.h: the per-thread engine of ringflow-load, shared by engine.c (the
 * ring loop, connections, HTTP) and wsmode.c (the --ws mode).
 *
 * A thread owns one io_uring ring, an array of connections, a provided-buffer ring for
 * receives and its statistics. Work is organised in "units": in HTTP mode a unit is one
 * connection; in --ws mode a unit is a subscriber pair, conns[2u] the WebSocket and
 * conns[2u + 1] the plain HTTP connection that submits the executions whose events the
 * WebSocket awaits. A unit can take a request when its connections are open and it has
 * a free slot (fewer than -d requests in flight; in --ws mode the subscriptions awaiting
 * their event count against the slots too). The closed loop issues into every free slot
 * at once; the open loop issues at the intended times, from a FIFO of units with a free
 * slot, and a request due when no slot is free waits for one (its latency still counts
 * from its intended time).
 *
 * Connection invariants:
 *   - every SQE that names a connection increments c->ops and every final CQE (one
 *     without IORING_CQE_F_MORE) decrements it; a connection in CLOSING has its fd
 *     closed and its buffers reset only when ops reaches 0, so no completion can ever
 *     find a recycled connection;
 *   - at most one send is in flight per connection: out[!fill] is the buffer being sent,
 *     out[fill] collects what was queued meanwhile; the two swap when a send completes;
 *   - at most one multishot receive is armed per connection; received bytes are parsed
 *     in place from the provided buffer, and only an incomplete tail (a partial head,
 *     chunk line or frame) is copied to the connection's carry buffer;
 *   - responses come back in request order, so c->q (a ring of at most -d requests) pops
 *     from the front; a connection that dies loses what is in its queue.
 * Everything here is touched by its own thread only.
 */
#ifndef RFL_ENGINE_H
#define RFL_ENGINE_H

#include <liburing.h>

#include "bench/load/http.h"
#include "bench/load/load.h"
#include "bench/load/ws.h"

#define RFL_RECV_BUF_BYTES       16384u /* one provided receive buffer */
#define RFL_RECV_BUFS_MIN        64u    /* provided buffers per thread, a power of two */
#define RFL_RECV_BUFS_MAX        4096u
#define RFL_SQ_ENTRIES_MAX       4096u
#define RFL_BODY_CAPTURE_MAX     65536u     /* --ws: a submission's response body */
#define RFL_WS_MESSAGE_BYTES_MAX (1u << 20) /* an event, after reassembly */
#define RFL_WS_PENDING_MAX       4096u      /* subscriptions awaiting their event, per subscriber */
#define RFL_ID_BYTES_MAX         128u       /* an execution id, NUL included */

enum rfl_conn_state {
    RFL_C_IDLE,       /* no socket; (re)connects at retry_at */
    RFL_C_CONNECTING, /* connect in flight with a linked timeout */
    RFL_C_HANDSHAKE,  /* --ws: upgrade request sent, awaiting 101 */
    RFL_C_OPEN,       /* HTTP keep-alive, or WebSocket open */
    RFL_C_CLOSING,    /* cancel issued; waits for ops == 0 */
};

enum rfl_role { RFL_ROLE_HTTP, RFL_ROLE_WS };

enum rfl_op { RFL_OP_CONNECT = 1, RFL_OP_LINK_TIMEOUT, RFL_OP_SEND, RFL_OP_RECV, RFL_OP_CANCEL };

/* One request in flight. */
struct rfl_req {
    uint64_t t_intended; /* latency counts from here (closed loop: the issue time) */
    uint64_t t_sent;     /* when it was queued on the connection; --timeout counts from here */
    bool measured;       /* intended inside the measurement window */
    bool no_body;        /* HEAD: the response has no body */
};

struct rfl_sbuf {
    uint8_t *p;
    uint32_t len, cap;
};

struct rfl_wsc; /* --ws per-WebSocket state, wsmode.c */

struct rfl_conn {
    int fd;        /* -1 without a socket; its slot in the ring's file table when th->fixed */
    uint32_t idx;  /* in th->conns */
    uint32_t unit; /* the unit it belongs to */
    uint8_t state; /* enum rfl_conn_state */
    uint8_t role;  /* enum rfl_role */
    bool recv_armed, send_busy, in_flush, close_after_send, ever_open, retry_slow;
    bool no_more;      /* the server announced Connection: close: issue nothing more */
    uint16_t ops;      /* SQEs in flight naming this connection */
    uint64_t t_state;  /* when the current state began */
    uint64_t retry_at; /* RFL_C_IDLE: earliest reconnect */
    struct rfl_sbuf out[2];
    uint8_t fill;      /* out[fill] collects; out[!fill] is being sent when send_busy */
    uint32_t sent_off; /* bytes of out[!fill] already sent */
    uint8_t *carry;    /* unparsed tail of the input, owned */
    uint32_t clen, ccap;
    struct rfl_resp resp;
    uint16_t status;   /* of the response being parsed */
    struct rfl_req *q; /* ring of depth (power of two) requests, owned */
    uint32_t qhead, qlen, qmask;
    uint8_t *body; /* --ws submit connections: captured body, owned */
    uint32_t blen;
    bool body_over;
    char ws_key[RFL_WS_KEY_LEN + 1];
    struct rfl_wsc *ws; /* RFL_ROLE_WS: owned */
};

enum rfl_phase { RFL_WARMUP, RFL_MEASURE, RFL_DRAIN, RFL_DONE };

struct rfl_th {
    const struct rfl_opts *o;
    struct rfl_thread_arg *arg;
    struct rfl_stats *st;
    struct io_uring ring;
    bool ring_ok;
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    uint8_t *bufs;
    uint32_t nbufs, br_returned;
    bool fixed; /* sockets live in the ring's registered file table, slot = conn index */
    struct rfl_conn *conns;
    uint32_t nconns, nunits;
    uint32_t *flush; /* connections with work for the next submission */
    uint32_t nflush;
    uint32_t *ready; /* open loop: FIFO of units with a free slot */
    uint32_t rhead, rlen, rmask;
    uint8_t *uready;  /* per unit: in the FIFO */
    uint64_t sched_j; /* open loop: this thread's next schedule index */
    double period_ns; /* open loop: ns between two requests of the whole process */
    uint64_t now, t0, t_measure, t_end, t_drain_end, t_next_scan;
    uint8_t phase;
    bool stopping;        /* no new requests */
    uint64_t outstanding; /* requests in flight (+ --ws subscriptions awaiting their event) */
    struct __kernel_timespec connect_ts; /* --connect-timeout, for linked timeouts */
    uint64_t seq_local;
    uint64_t rng;
    uint32_t mix_pos;
};

/* Connection state helpers (engine.c), for wsmode.c. th and c borrowed throughout. */

/* Room for n more bytes in c's collecting send buffer, or NULL when it would pass
 * RFL_SEND_BYTES_MAX or memory ran out. Valid until the next reserve on c. */
uint8_t *rfl__sbuf_reserve(struct rfl_conn *c, size_t n);

/* Queue n bytes written into the reserved room; schedules a send. */
void rfl__sbuf_commit(struct rfl_th *th, struct rfl_conn *c, size_t n);

/* Put c on the flush list (a send or a receive to arm at the next submission). */
void rfl__conn_flush_later(struct rfl_th *th, struct rfl_conn *c);

/* Abandon c: account what it loses, cancel its operations, reconnect later (after
 * RFL_RETRY_NS when slow). Safe to call in any state; a no-op once CLOSING or IDLE. */
void rfl__conn_close(struct rfl_th *th, struct rfl_conn *c, bool slow);

/* Queue one request of the next template on c (an open HTTP connection with a free slot). */
void rfl__http_issue(struct rfl_th *th, struct rfl_conn *c, uint64_t t_intended);

/* A unit may have gained a free slot: closed loop fills it, open loop queues the unit. */
void rfl__unit_wake(struct rfl_th *th, uint32_t u);

/* Record a measured latency sample completed now. */
void rfl__record(struct rfl_th *th, struct rfl_hist *h, uint64_t t_intended);

/* --ws mode (wsmode.c). */

/* Allocate the WebSocket state of c; 0 or -ENOMEM. */
int rfl__ws_init(struct rfl_conn *c);
void rfl__ws_free(struct rfl_conn *c);

/* c connected: queue the upgrade request (fresh key). 0, or -ENOBUFS. */
int rfl__ws_start(struct rfl_th *th, struct rfl_conn *c);

/* Parse p[0..n) (borrowed) received on a WebSocket connection. Returns bytes consumed,
 * or -1 after closing c (protocol error, handshake failure). */
long rfl__ws_input(struct rfl_th *th, struct rfl_conn *c, const uint8_t *p, size_t n);

/* A submission's response completed on the unit's HTTP connection h. */
void rfl__ws_submitted(struct rfl_th *th, struct rfl_conn *h, const struct rfl_req *req);

/* c is being closed: its awaited subscriptions are lost; reset its WebSocket state. */
void rfl__ws_lost(struct rfl_th *th, struct rfl_conn *c);

/* Count subscriptions older than --timeout as timeouts (all of them when all is set). */
void rfl__ws_expire(struct rfl_th *th, struct rfl_conn *c, bool all);

/* Subscriptions awaiting their event on c. */
uint32_t rfl__ws_pending(const struct rfl_conn *c);

#endif
