/*
 * bench/load/engine.c: one thread of ringflow-load: its io_uring ring, its connections,
 * the closed and open loops, and HTTP responses (engine.h states the invariants).
 *
 * The loop, once per iteration:
 *   1. flush: for every connection that gained work, arm its multishot receive if none
 *      is armed and start a send of everything queued if no send is in flight;
 *   2. io_uring_submit_and_wait_timeout(): one system call submits the batch and waits
 *      for a completion or the next deadline (a tick, a phase boundary, or the next
 *      intended send time of the open loop);
 *   3. reap every completion: received bytes go through the response parser in place,
 *      completed responses are recorded and (closed loop) immediately replaced by new
 *      requests rendered into the connection's send buffer; buffers go back to the
 *      provided-buffer ring in one advance;
 *   4. phases (warmup, measure, drain, done), open-loop releases, and every RFL_SCAN_NS
 *      a scan for timeouts and connections to re-establish.
 * So the per-request cost is a template render, a parse and a histogram increment, and
 * system calls are amortised over everything that happened in one iteration.
 *
 * Ring setup asks for SINGLE_ISSUER and DEFER_TASKRUN (completion work runs only when
 * this thread enters the kernel to wait, in one batch) and falls back to COOP_TASKRUN,
 * then to no flags, on kernels that refuse them. Sockets are plain blocking TCP sockets
 * with TCP_NODELAY; the ring never blocks on them.
 *
 * Accounting: a connection that dies loses its queued requests (err_lost) after the
 * caller counted why (reset, parse, write, timeout); it is re-established at once, or
 * after RFL_RETRY_NS when connecting itself failed. At the end of the window the thread
 * stops issuing, waits up to RFL_DRAIN_NS for what is outstanding, and counts the rest
 * as timeouts.
 */
#include "bench/load/engine.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define UD(c, op) (((uint64_t)(c)->idx << 8) | (uint64_t)(op))

uint64_t rfl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * RFL_NS_PER_S + (uint64_t)ts.tv_nsec;
}

static uint32_t pow2_at_least(uint32_t v)
{
    uint32_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

/* An SQE, submitting first when fewer than `need` entries are free (a linked pair must
 * not straddle a submission). */
static struct io_uring_sqe *get_sqe(struct rfl_th *th, unsigned need)
{
    if (io_uring_sq_space_left(&th->ring) < need)
        io_uring_submit(&th->ring);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&th->ring);
    RFL_ASSERT(sqe != NULL);
    return sqe;
}

/* Point an SQE prepared with c->fd at the registered file when sockets are fixed. */
static void sqe_fixed(const struct rfl_th *th, struct io_uring_sqe *sqe)
{
    if (th->fixed)
        sqe->flags |= IOSQE_FIXED_FILE;
}

/* Release c's socket: its file-table slot, or its descriptor. */
static void conn_release_fd(struct rfl_th *th, struct rfl_conn *c)
{
    if (c->fd < 0)
        return;
    if (th->fixed) {
        int none = -1;
        (void)io_uring_register_files_update(&th->ring, (unsigned)c->fd, &none, 1);
    } else {
        close(c->fd);
    }
    c->fd = -1;
}

/* --- units ----------------------------------------------------------------------------- */

static struct rfl_conn *unit_http(struct rfl_th *th, uint32_t u)
{
    return th->o->ws ? &th->conns[2 * u + 1] : &th->conns[u];
}

static bool unit_can_issue(struct rfl_th *th, uint32_t u)
{
    if (th->stopping)
        return false;
    const struct rfl_opts *o = th->o;
    if (!o->ws) {
        const struct rfl_conn *c = &th->conns[u];
        return c->state == RFL_C_OPEN && !c->no_more && c->qlen < o->depth;
    }
    const struct rfl_conn *w = &th->conns[2 * u], *h = &th->conns[2 * u + 1];
    if (w->state != RFL_C_OPEN || h->state != RFL_C_OPEN || h->no_more || h->qlen >= o->depth)
        return false;
    uint32_t busy = h->qlen + rfl__ws_pending(w);
    return busy < (o->rate > 0 ? RFL_WS_PENDING_MAX : o->depth);
}

static void ready_push(struct rfl_th *th, uint32_t u)
{
    th->ready[(th->rhead + th->rlen++) & th->rmask] = u;
    th->uready[u] = 1;
}

static bool ready_pop(struct rfl_th *th, uint32_t *u)
{
    while (th->rlen) {
        uint32_t x = th->ready[th->rhead++ & th->rmask];
        th->rlen--;
        th->uready[x] = 0;
        if (unit_can_issue(th, x)) {
            *u = x;
            return true;
        }
    }
    return false;
}

void rfl__unit_wake(struct rfl_th *th, uint32_t u)
{
    if (th->o->rate > 0) {
        if (!th->uready[u] && unit_can_issue(th, u))
            ready_push(th, u);
        return;
    }
    while (unit_can_issue(th, u))
        rfl__http_issue(th, unit_http(th, u), th->now);
}

/* Open loop: the intended send time of this thread's j-th request. Thread k of T takes
 * the process-wide schedule's slots k, k + T, k + 2T, ... */
static uint64_t sched_time(const struct rfl_th *th, uint64_t j)
{
    double slot = (double)j * th->o->threads + th->arg->id;
    return th->t0 + (uint64_t)(slot * th->period_ns);
}

/* The first schedule index whose time is >= t. */
static uint64_t sched_index_at(const struct rfl_th *th, uint64_t t)
{
    if (t <= th->t0)
        return 0;
    double x = ((double)(t - th->t0) / th->period_ns - th->arg->id) / th->o->threads;
    uint64_t j = x > 0 ? (uint64_t)x : 0;
    while (j > 0 && sched_time(th, j - 1) >= t)
        j--;
    while (sched_time(th, j) < t)
        j++;
    return j;
}

static void release_due(struct rfl_th *th)
{
    th->now = rfl_now_ns();
    while (!th->stopping) {
        uint64_t t = sched_time(th, th->sched_j);
        if (t > th->now || t >= th->t_end)
            break;
        uint32_t u;
        if (!ready_pop(th, &u))
            break;
        rfl__http_issue(th, unit_http(th, u), t);
        th->sched_j++;
        if (unit_can_issue(th, u))
            ready_push(th, u);
    }
}

/* --- buffers --------------------------------------------------------------------------- */

uint8_t *rfl__sbuf_reserve(struct rfl_conn *c, size_t n)
{
    struct rfl_sbuf *b = &c->out[c->fill];
    if ((size_t)b->len + n > b->cap) {
        if ((size_t)b->len + n > RFL_SEND_BYTES_MAX)
            return NULL;
        size_t cap = RFL_MAX((size_t)b->cap * 2, 1024u);
        while (cap < (size_t)b->len + n)
            cap *= 2;
        cap = RFL_MIN(cap, (size_t)RFL_SEND_BYTES_MAX);
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            return NULL;
        b->p = p;
        b->cap = (uint32_t)cap;
    }
    return b->p + b->len;
}

void rfl__conn_flush_later(struct rfl_th *th, struct rfl_conn *c)
{
    if (c->in_flush)
        return;
    c->in_flush = true;
    th->flush[th->nflush++] = c->idx;
}

void rfl__sbuf_commit(struct rfl_th *th, struct rfl_conn *c, size_t n)
{
    c->out[c->fill].len += (uint32_t)n;
    rfl__conn_flush_later(th, c);
}

/* Append p[0..n) to c's carry buffer, bounded by what one unit of input may need. */
static int carry_add(struct rfl_conn *c, const uint8_t *p, size_t n)
{
    size_t limit = (c->role == RFL_ROLE_WS ? RFL_WS_MESSAGE_BYTES_MAX + RFL_WS_HEADER_MAX
                                           : RFL_RESP_HEAD_BYTES_MAX) +
                   RFL_RECV_BUF_BYTES;
    size_t need = (size_t)c->clen + n;
    if (need > limit)
        return -EMSGSIZE;
    if (need > c->ccap) {
        size_t cap = RFL_MAX((size_t)c->ccap * 2, 4096u);
        while (cap < need)
            cap *= 2;
        cap = RFL_MIN(cap, limit);
        uint8_t *q = realloc(c->carry, cap);
        if (!q)
            return -ENOMEM;
        c->carry = q;
        c->ccap = (uint32_t)cap;
    }
    memcpy(c->carry + c->clen, p, n);
    c->clen = (uint32_t)need;
    return 0;
}

static void capture_body(struct rfl_conn *c, const struct rfl_span *b)
{
    if (c->body_over || (size_t)c->blen + b->n > RFL_BODY_CAPTURE_MAX) {
        c->body_over = true;
        return;
    }
    if (!c->body && !(c->body = malloc(RFL_BODY_CAPTURE_MAX))) {
        c->body_over = true;
        return;
    }
    memcpy(c->body + c->blen, b->p, b->n);
    c->blen += (uint32_t)b->n;
}

/* --- connections ----------------------------------------------------------------------- */

static void conn_connect(struct rfl_th *th, struct rfl_conn *c)
{
    const struct rfl_opts *o = th->o;
    int fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        th->st->err_connect++;
        c->retry_at = th->now + RFL_RETRY_NS;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (th->fixed) {
        /* The table takes its own reference: ops skip the per-call file lookup. */
        int err = io_uring_register_files_update(&th->ring, c->idx, &fd, 1);
        close(fd);
        if (err < 0) {
            th->st->err_connect++;
            c->retry_at = th->now + RFL_RETRY_NS;
            return;
        }
        fd = (int)c->idx;
    }
    c->fd = fd;
    c->state = RFL_C_CONNECTING;
    c->t_state = th->now;
    struct io_uring_sqe *sqe = get_sqe(th, 2);
    io_uring_prep_connect(sqe, fd, (const struct sockaddr *)&o->addr, o->addrlen);
    sqe_fixed(th, sqe);
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_sqe_set_data64(sqe, UD(c, RFL_OP_CONNECT));
    sqe = io_uring_get_sqe(&th->ring);
    RFL_ASSERT(sqe != NULL);
    io_uring_prep_link_timeout(sqe, &th->connect_ts, 0);
    io_uring_sqe_set_data64(sqe, UD(c, RFL_OP_LINK_TIMEOUT));
    c->ops += 2;
}

/* The last operation of a CLOSING connection completed: recycle it. */
static void conn_closed(struct rfl_th *th, struct rfl_conn *c)
{
    conn_release_fd(th, c);
    c->out[0].len = c->out[1].len = 0;
    c->fill = 0;
    c->sent_off = 0;
    c->send_busy = c->recv_armed = c->close_after_send = c->no_more = false;
    c->clen = 0;
    c->blen = 0;
    c->body_over = false;
    rfl_resp_init(&c->resp);
    c->state = RFL_C_IDLE;
    c->retry_at = th->now + (c->retry_slow ? RFL_RETRY_NS : 0);
    if (!th->stopping && !c->retry_slow)
        conn_connect(th, c);
}

void rfl__conn_close(struct rfl_th *th, struct rfl_conn *c, bool slow)
{
    if (c->state == RFL_C_IDLE || c->state == RFL_C_CLOSING)
        return;
    if (c->qlen) {
        th->st->err_lost += c->qlen;
        th->outstanding -= c->qlen;
        c->qlen = 0;
    }
    if (c->role == RFL_ROLE_WS)
        rfl__ws_lost(th, c);
    c->state = RFL_C_CLOSING;
    c->retry_slow = slow;
    c->t_state = th->now;
    if (c->ops == 0) {
        conn_closed(th, c);
        return;
    }
    struct io_uring_sqe *sqe = get_sqe(th, 1);
    io_uring_prep_cancel_fd(
        sqe, c->fd, IORING_ASYNC_CANCEL_ALL | (th->fixed ? IORING_ASYNC_CANCEL_FD_FIXED : 0));
    io_uring_sqe_set_data64(sqe, UD(c, RFL_OP_CANCEL));
    c->ops++;
}

static bool conn_live(const struct rfl_conn *c)
{
    return c->state == RFL_C_OPEN || c->state == RFL_C_HANDSHAKE;
}

/* Work outstanding on c: requests in flight, or subscriptions awaiting events. */
static bool conn_busy(const struct rfl_conn *c)
{
    return c->qlen > 0 || (c->role == RFL_ROLE_WS && rfl__ws_pending(c) > 0);
}

static void on_connect(struct rfl_th *th, struct rfl_conn *c, int res)
{
    if (c->state != RFL_C_CONNECTING)
        return;
    if (res < 0) {
        th->st->err_connect++;
        rfl__conn_close(th, c, true);
        return;
    }
    if (c->ever_open)
        th->st->reconnects++;
    c->ever_open = true;
    c->t_state = th->now;
    rfl__conn_flush_later(th, c);
    if (c->role == RFL_ROLE_WS) {
        c->state = RFL_C_HANDSHAKE;
        if (rfl__ws_start(th, c) < 0) {
            th->st->err_ws++;
            rfl__conn_close(th, c, true);
        }
        return;
    }
    c->state = RFL_C_OPEN;
    rfl__unit_wake(th, c->unit);
}

static void start_send(struct rfl_th *th, struct rfl_conn *c, uint32_t off)
{
    struct rfl_sbuf *b = &c->out[c->fill ^ 1];
    struct io_uring_sqe *sqe = get_sqe(th, 1);
    io_uring_prep_send(sqe, c->fd, b->p + off, b->len - off, MSG_NOSIGNAL);
    sqe_fixed(th, sqe);
    io_uring_sqe_set_data64(sqe, UD(c, RFL_OP_SEND));
    c->send_busy = true;
    c->ops++;
}

static void on_send(struct rfl_th *th, struct rfl_conn *c, int res)
{
    c->send_busy = false;
    if (!conn_live(c))
        return;
    if (res <= 0) {
        th->st->err_write++;
        rfl__conn_close(th, c, false);
        return;
    }
    struct rfl_sbuf *b = &c->out[c->fill ^ 1];
    th->st->bytes_out += (uint64_t)res;
    c->sent_off += (uint32_t)res;
    if (c->sent_off < b->len) {
        start_send(th, c, c->sent_off);
        return;
    }
    b->len = 0;
    if (c->out[c->fill].len)
        rfl__conn_flush_later(th, c);
    else if (c->close_after_send)
        rfl__conn_close(th, c, false);
}

static void arm_recv(struct rfl_th *th, struct rfl_conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(th, 1);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe_fixed(th, sqe);
    sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = 0;
    io_uring_sqe_set_data64(sqe, UD(c, RFL_OP_RECV));
    c->recv_armed = true;
    c->ops++;
}

static void flush_all(struct rfl_th *th)
{
    for (uint32_t i = 0; i < th->nflush; i++) {
        struct rfl_conn *c = &th->conns[th->flush[i]];
        c->in_flush = false;
        if (!conn_live(c))
            continue;
        if (!c->recv_armed)
            arm_recv(th, c);
        if (!c->send_busy && c->out[c->fill].len) {
            c->fill ^= 1;
            c->sent_off = 0;
            start_send(th, c, 0);
        }
    }
    th->nflush = 0;
}

/* --- HTTP responses -------------------------------------------------------------------- */

void rfl__record(struct rfl_th *th, struct rfl_hist *h, uint64_t t_intended)
{
    rfl_hist_record(h, th->now > t_intended ? th->now - t_intended : 0);
}

void rfl__http_issue(struct rfl_th *th, struct rfl_conn *c, uint64_t t_intended)
{
    const struct rfl_opts *o = th->o;
    const struct rfl_tmpl *t = &o->tmpls[o->mix[th->mix_pos]];
    if (++th->mix_pos == o->nmix)
        th->mix_pos = 0;
    uint8_t *dst = rfl__sbuf_reserve(c, t->max_bytes);
    if (!dst) { /* out of memory: main() bounded depth * request size */
        th->st->err_write++;
        rfl__conn_close(th, c, true);
        return;
    }
    uint64_t seq = th->seq_local++ * o->threads + th->arg->id;
    rfl__sbuf_commit(th, c, rfl_tmpl_render(t, seq, &th->rng, dst));
    struct rfl_req *r = &c->q[(c->qhead + c->qlen++) & c->qmask];
    r->t_intended = t_intended;
    r->t_sent = th->now;
    r->measured = t_intended >= th->t_measure && t_intended < th->t_end;
    r->no_body = t->no_body_resp;
    th->outstanding++;
    if (r->measured) {
        th->st->sent++;
        th->st->late += th->now > t_intended + RFL_LATE_NS;
    }
}

static void http_done(struct rfl_th *th, struct rfl_conn *c)
{
    struct rfl_req req = c->q[c->qhead & c->qmask];
    c->qhead++;
    c->qlen--;
    th->outstanding--;
    if (th->o->ws) {
        rfl__ws_submitted(th, c, &req);
    } else if (req.measured) {
        struct rfl_stats *st = th->st;
        rfl__record(th, &st->lat, req.t_intended);
        st->status[RFL_MIN(c->status, RFL_STATUS_SLOTS - 1)]++;
        st->completed++;
        st->completed_window += th->now < th->t_end;
    }
    rfl__unit_wake(th, c->unit);
}

/* Parse responses from p[0..n). Returns bytes consumed, or -1 once c was closed. */
static long http_input(struct rfl_th *th, struct rfl_conn *c, const uint8_t *p, size_t n)
{
    size_t off = 0;
    for (;;) {
        struct rfl_resp_head head;
        struct rfl_span body;
        size_t used;
        bool no_body = c->qlen && c->q[c->qhead & c->qmask].no_body;
        int ev = rfl_resp_step(&c->resp, p + off, n - off, no_body, &used, &head, &body);
        if (ev == RFL_RESP_ERR)
            goto bad;
        off += used;
        if (ev == RFL_RESP_MORE)
            return (long)off;
        if (ev == RFL_RESP_HEAD) {
            if (c->qlen == 0 || head.status == 101)
                goto bad; /* an answer nobody asked for, or an upgrade */
            c->status = head.status;
            c->no_more |= head.close;
            c->blen = 0;
            c->body_over = false;
        } else if (ev == RFL_RESP_BODY) {
            if (th->o->ws)
                capture_body(c, &body);
        } else {
            http_done(th, c);
            if (c->resp.close) {
                rfl__conn_close(th, c, false);
                return -1;
            }
        }
    }
bad:
    th->st->err_parse++;
    rfl__conn_close(th, c, false);
    return -1;
}

static long conn_parse(struct rfl_th *th, struct rfl_conn *c, const uint8_t *p, size_t n)
{
    return c->role == RFL_ROLE_WS ? rfl__ws_input(th, c, p, n) : http_input(th, c, p, n);
}

static void conn_input(struct rfl_th *th, struct rfl_conn *c, const uint8_t *p, size_t n)
{
    long used;
    if (c->clen == 0) {
        used = conn_parse(th, c, p, n);
        if (used < 0)
            return;
        if ((size_t)used < n && carry_add(c, p + used, n - (size_t)used) < 0)
            goto overflow;
        return;
    }
    if (carry_add(c, p, n) < 0)
        goto overflow;
    used = conn_parse(th, c, c->carry, c->clen);
    if (used < 0)
        return;
    memmove(c->carry, c->carry + used, c->clen - (size_t)used);
    c->clen -= (uint32_t)used;
    return;
overflow:
    th->st->err_parse++;
    rfl__conn_close(th, c, false);
}

static void on_eof(struct rfl_th *th, struct rfl_conn *c, int res)
{
    if (res == 0 && c->role == RFL_ROLE_HTTP && c->clen == 0 &&
        rfl_resp_eof(&c->resp) == RFL_RESP_DONE && c->qlen) {
        http_done(th, c); /* a body that ran to the close */
        if (!conn_live(c))
            return;
    }
    if (conn_busy(c))
        th->st->err_reset++;
    rfl__conn_close(th, c, false);
}

static void on_recv(struct rfl_th *th, struct rfl_conn *c, const struct io_uring_cqe *cqe)
{
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (!more)
        c->recv_armed = false;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        uint32_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        uint8_t *buf = th->bufs + (size_t)bid * RFL_RECV_BUF_BYTES;
        if (cqe->res > 0 && conn_live(c)) {
            th->now = rfl_now_ns();
            th->st->bytes_in += (uint64_t)cqe->res;
            conn_input(th, c, buf, (size_t)cqe->res);
        }
        io_uring_buf_ring_add(th->br, buf, RFL_RECV_BUF_BYTES, (unsigned short)bid,
                              io_uring_buf_ring_mask(th->nbufs), (int)th->br_returned++);
        if (cqe->res > 0) {
            if (!more && conn_live(c))
                rfl__conn_flush_later(th, c);
            return;
        }
    }
    if (!conn_live(c))
        return;
    if (cqe->res == -ENOBUFS || (cqe->res > 0 && !more)) {
        rfl__conn_flush_later(th, c); /* re-arm once buffers are back */
        return;
    }
    on_eof(th, c, cqe->res);
}

static void dispatch(struct rfl_th *th, const struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    RFL_ASSERT((ud >> 8) < th->nconns);
    struct rfl_conn *c = &th->conns[ud >> 8];
    switch (ud & 0xff) {
    case RFL_OP_CONNECT:
        on_connect(th, c, cqe->res);
        break;
    case RFL_OP_SEND:
        on_send(th, c, cqe->res);
        break;
    case RFL_OP_RECV:
        on_recv(th, c, cqe);
        break;
    default: /* link timeouts and cancels: only the op count matters */
        break;
    }
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        RFL_ASSERT(c->ops > 0);
        c->ops--;
    }
    if (c->state == RFL_C_CLOSING && c->ops == 0)
        conn_closed(th, c);
}

static void reap(struct rfl_th *th)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&th->ring, head, cqe)
    {
        dispatch(th, cqe);
        n++;
    }
    io_uring_cq_advance(&th->ring, n);
    if (th->br_returned) {
        io_uring_buf_ring_advance(th->br, (int)th->br_returned);
        th->br_returned = 0;
    }
}

/* --- timeouts and phases --------------------------------------------------------------- */

static void expire_requests(struct rfl_th *th, struct rfl_conn *c)
{
    th->st->err_timeout += c->qlen;
    th->outstanding -= c->qlen;
    c->qlen = 0;
}

static void scan(struct rfl_th *th)
{
    const struct rfl_opts *o = th->o;
    for (uint32_t i = 0; i < th->nconns; i++) {
        struct rfl_conn *c = &th->conns[i];
        if (c->state == RFL_C_IDLE && !th->stopping && th->now >= c->retry_at) {
            conn_connect(th, c);
        } else if (c->state == RFL_C_HANDSHAKE && th->now - c->t_state > o->connect_timeout_ns) {
            th->st->err_ws++;
            rfl__conn_close(th, c, true);
        } else if (c->state == RFL_C_OPEN) {
            if (c->qlen && th->now - c->q[c->qhead & c->qmask].t_sent > o->timeout_ns) {
                expire_requests(th, c);
                rfl__conn_close(th, c, false);
            } else if (c->role == RFL_ROLE_WS) {
                rfl__ws_expire(th, c, false);
            }
        }
    }
}

static void enter_drain(struct rfl_th *th)
{
    th->phase = RFL_DRAIN;
    th->stopping = true;
    th->t_drain_end = th->now + RFL_DRAIN_NS;
    if (th->o->rate > 0) {
        uint64_t j_end = sched_index_at(th, th->t_end);
        uint64_t j_from = RFL_MAX(th->sched_j, sched_index_at(th, th->t_measure));
        if (j_end > j_from)
            th->st->unsent += j_end - j_from;
    }
}

static void finish(struct rfl_th *th)
{
    for (uint32_t i = 0; i < th->nconns; i++) {
        struct rfl_conn *c = &th->conns[i];
        expire_requests(th, c);
        if (c->role == RFL_ROLE_WS)
            rfl__ws_expire(th, c, true);
    }
    th->phase = RFL_DONE;
}

static void phase_update(struct rfl_th *th)
{
    if (th->phase < RFL_DRAIN &&
        atomic_load_explicit(&rfl_interrupted, memory_order_relaxed)) { /* a flag, no data */
        th->t_measure = RFL_MIN(th->t_measure, th->now);
        th->t_end = RFL_MIN(th->t_end, th->now);
    }
    if (th->phase == RFL_WARMUP && th->now >= th->t_measure)
        th->phase = RFL_MEASURE;
    if (th->phase == RFL_MEASURE && th->now >= th->t_end)
        enter_drain(th);
    if (th->phase == RFL_DRAIN && (th->outstanding == 0 || th->now >= th->t_drain_end))
        finish(th);
}

static uint64_t next_deadline(struct rfl_th *th)
{
    uint64_t d = th->now + RFL_TICK_NS;
    uint64_t edge = th->phase == RFL_WARMUP    ? th->t_measure
                    : th->phase == RFL_MEASURE ? th->t_end
                                               : th->t_drain_end;
    d = RFL_MIN(d, edge);
    if (th->o->rate > 0 && !th->stopping && th->rlen)
        d = RFL_MIN(d, sched_time(th, th->sched_j));
    return d;
}

static void wait_events(struct rfl_th *th)
{
    th->now = rfl_now_ns();
    uint64_t d = next_deadline(th);
    uint64_t wait = d > th->now ? d - th->now : 0;
    struct __kernel_timespec ts = {.tv_sec = (long long)(wait / RFL_NS_PER_S),
                                   .tv_nsec = (long long)(wait % RFL_NS_PER_S)};
    struct io_uring_cqe *cqe;
    /* -ETIME (deadline), -EINTR and a busy CQ are all answered by reaping and looping. */
    (void)io_uring_submit_and_wait_timeout(&th->ring, &cqe, 1, &ts, NULL);
    th->now = rfl_now_ns();
}

static void thread_loop(struct rfl_th *th)
{
    th->now = rfl_now_ns();
    for (uint32_t i = 0; i < th->nconns; i++)
        conn_connect(th, &th->conns[i]);
    while (th->phase != RFL_DONE) {
        flush_all(th);
        wait_events(th);
        reap(th);
        phase_update(th);
        if (th->o->rate > 0)
            release_due(th);
        if (th->now >= th->t_next_scan) {
            scan(th);
            th->t_next_scan = th->now + RFL_SCAN_NS;
        }
    }
}

/* --- setup and teardown ---------------------------------------------------------------- */

static int ring_init(struct rfl_th *th, uint32_t sq)
{
    static const unsigned flag_sets[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int err = -EINVAL;
    for (size_t i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = flag_sets[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = sq * 4;
        err = io_uring_queue_init_params(sq, &th->ring, &p);
        if (err != -EINVAL)
            break;
    }
    if (err < 0)
        return err;
    th->ring_ok = true;
    /* Optimisations, fine without: the ring's own fd and the sockets registered. */
    (void)io_uring_register_ring_fd(&th->ring);
    th->fixed = io_uring_register_files_sparse(&th->ring, th->nconns) == 0;
    return 0;
}

static int bufs_init(struct rfl_th *th)
{
    th->nbufs =
        pow2_at_least(RFL_MIN(RFL_MAX(th->nconns * 2, RFL_RECV_BUFS_MIN), RFL_RECV_BUFS_MAX));
    th->br_bytes = (size_t)th->nbufs * sizeof(struct io_uring_buf);
    void *br = mmap(NULL, th->br_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (br == MAP_FAILED)
        return -ENOMEM;
    th->br = br;
    th->bufs = malloc((size_t)th->nbufs * RFL_RECV_BUF_BYTES);
    if (!th->bufs)
        return -ENOMEM;
    io_uring_buf_ring_init(th->br);
    struct io_uring_buf_reg reg = {.ring_addr = (uintptr_t)br, .ring_entries = th->nbufs};
    int err = io_uring_register_buf_ring(&th->ring, &reg, 0);
    if (err < 0)
        return err;
    for (uint32_t i = 0; i < th->nbufs; i++)
        io_uring_buf_ring_add(th->br, th->bufs + (size_t)i * RFL_RECV_BUF_BYTES, RFL_RECV_BUF_BYTES,
                              (unsigned short)i, io_uring_buf_ring_mask(th->nbufs), (int)i);
    io_uring_buf_ring_advance(th->br, (int)th->nbufs);
    return 0;
}

static int conns_init(struct rfl_th *th)
{
    const struct rfl_opts *o = th->o;
    uint32_t qcap = pow2_at_least(o->depth);
    th->conns = calloc(th->nconns, sizeof(*th->conns));
    th->flush = calloc(th->nconns, sizeof(*th->flush));
    th->rmask = pow2_at_least(th->nunits) - 1;
    th->ready = calloc((size_t)th->rmask + 1, sizeof(*th->ready));
    th->uready = calloc(th->nunits, 1);
    if (!th->conns || !th->flush || !th->ready || !th->uready)
        return -ENOMEM;
    for (uint32_t i = 0; i < th->nconns; i++) {
        struct rfl_conn *c = &th->conns[i];
        c->fd = -1;
        c->idx = i;
        c->unit = o->ws ? i / 2 : i;
        c->role = o->ws && i % 2 == 0 ? RFL_ROLE_WS : RFL_ROLE_HTTP;
        c->qmask = qcap - 1;
        rfl_resp_init(&c->resp);
        if (c->role == RFL_ROLE_HTTP && !(c->q = calloc(qcap, sizeof(*c->q))))
            return -ENOMEM;
        if (c->role == RFL_ROLE_WS && rfl__ws_init(c) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int th_setup(struct rfl_th *th, struct rfl_thread_arg *a)
{
    const struct rfl_opts *o = a->opts;
    th->o = o;
    th->arg = a;
    th->st = a->stats;
    th->nunits = a->units;
    th->nconns = o->ws ? a->units * 2 : a->units;
    th->t0 = a->t0;
    th->t_measure = a->t0 + o->warmup_ns;
    th->t_end = th->t_measure + o->duration_ns;
    th->t_next_scan = a->t0 + RFL_SCAN_NS;
    th->period_ns = o->rate > 0 ? 1e9 / o->rate : 0;
    th->connect_ts.tv_sec = (long long)(o->connect_timeout_ns / RFL_NS_PER_S);
    th->connect_ts.tv_nsec = (long long)(o->connect_timeout_ns % RFL_NS_PER_S);
    if (getrandom(&th->rng, sizeof(th->rng), 0) != sizeof(th->rng))
        th->rng = rfl_now_ns() ^ ((uint64_t)a->id << 32);
    int err = conns_init(th);
    if (err < 0)
        return err;
    err = ring_init(th,
                    pow2_at_least(RFL_MIN(RFL_MAX(th->nconns * 2 + 16, 64u), RFL_SQ_ENTRIES_MAX)));
    if (err < 0)
        return err;
    return bufs_init(th);
}

static void th_teardown(struct rfl_th *th)
{
    for (uint32_t i = 0; th->conns && i < th->nconns; i++)
        if (!th->fixed && th->conns[i].fd >= 0)
            close(th->conns[i].fd);
    if (th->ring_ok)
        io_uring_queue_exit(&th->ring); /* cancels what is in flight, drops fixed files */
    for (uint32_t i = 0; th->conns && i < th->nconns; i++) {
        struct rfl_conn *c = &th->conns[i];
        free(c->out[0].p);
        free(c->out[1].p);
        free(c->carry);
        free(c->q);
        free(c->body);
        if (c->role == RFL_ROLE_WS)
            rfl__ws_free(c);
    }
    if (th->br)
        munmap(th->br, th->br_bytes);
    free(th->bufs);
    free(th->conns);
    free(th->flush);
    free(th->ready);
    free(th->uready);
}

void *rfl_thread_main(void *arg)
{
    struct rfl_thread_arg *a = arg;
    struct rfl_th th;
    memset(&th, 0, sizeof(th));
    /* The open loop sleeps until each intended send time: the default 50 us of timer slack
     * would be added to every request's latency. Best effort. */
    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    a->err = th_setup(&th, a);
    if (a->err == 0)
        thread_loop(&th);
    else /* the other threads stop early too: the run is void */
        atomic_store_explicit(&rfl_interrupted, true, memory_order_relaxed);
    a->measured_ns = th.t_end > th.t_measure ? th.t_end - th.t_measure : 0;
    th_teardown(&th);
    return NULL;
}
