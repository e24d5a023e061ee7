/*
 * storage/journal.c: one shard's journal (see storage/journal.h for the contract).
 *
 * Two batch buffers: `fill` takes the records of the current loop iteration, `io` is the
 * batch whose write (and fdatasync) is on the ring. A batch is written to one segment at
 * the offset after the last complete batch; when it does not fit what is left of the
 * segment, the journal first moves to the spare segment, which is prepared ahead through
 * the ring by a small state machine (open, fallocate, SEGMENT record, fdatasync, fsync of
 * the directory). A batch's CQEs are counted down; only when both the write and its
 * fdatasync came back is the outcome decided: a short write is continued (new write and
 * new fdatasync for the rest), an error fails the journal, success tells the waiters.
 * Waiters are an intrusive singly linked list per batch, told in append order.
 *
 * Invariants: at most one write+fdatasync pair and one spare step are on the ring; `off`
 * only moves forward over bytes written whole (and synced, with sync); once `error` is
 * set no I/O is started again and every waiter is told the error.
 */
#include "storage/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/alloc.h"

#define SEGMENT_BYTES_MIN (1ull << 20)
#define BUF_BYTES_INIT    (64u << 10)
#define SEG_PAYLOAD_BYTES 28u /* shard u32, number u64, created_us u64, segment_bytes u64 */
#define BATCH_PAYLOAD_BYTES 12u /* bytes u64, records u32 */
#define BATCH_RECORD_BYTES (RF_JREC_HEADER_BYTES + 16u) /* rf_jrec_size(12) */

enum spare_state {
    SP_NONE = 0, /* nothing prepared, nothing under way */
    SP_OPEN,     /* openat on the ring */
    SP_ALLOC,    /* fallocate */
    SP_WRITE,    /* its SEGMENT record */
    SP_SYNC,     /* fdatasync of the new file */
    SP_DIRSYNC,  /* fsync of the directory */
    SP_READY,    /* prepared: the next rotation takes it */
    SP_RETRY,    /* creating it failed for lack of space: a timer before the next try */
    SP_CLEANUP,  /* closing/unlinking a failed try */
};

struct jbuf {
    uint8_t *p;
    size_t len, cap;
    struct rf_jwait *head, **tail;
    uint32_t records;
};

struct rf_journal {
    struct rf_journal_config cfg;
    struct rf_journal_faults faults;
    char dir[PATH_MAX];
    int dirfd;
    struct rf_shard *sh;

    int fd;          /* the segment being written */
    uint64_t seg_no;
    uint64_t off;    /* bytes of it written whole */
    uint64_t start;  /* bytes of its SEGMENT record: where its batches begin */
    uint64_t cap;    /* segment_bytes */

    int nfd;         /* the spare */
    uint64_t nno;
    uint8_t nstate;  /* enum spare_state */
    char nname[RF_JOURNAL_NAME_BYTES];
    uint8_t nrec[RF_JREC_HEADER_BYTES + SEG_PAYLOAD_BYTES + RF_JREC_ALIGN];
    uint32_t nrec_len;
    rf_op nop;
    struct __kernel_timespec nts;
    bool nop_armed;

    struct jbuf fill, io;
    bool io_busy;
    uint32_t io_pending; /* CQEs of the io batch still to come */
    int wres, sres;      /* their results */
    size_t io_done;      /* bytes of io written so far */
    size_t io_want;      /* bytes the write on the ring asked for */
    rf_op wop, sop;

    uint64_t seq;        /* the last record's seq */
    _Atomic int nospace; /* -ENOSPC while no segment could be made, else 0 (read by stats) */
    bool quitting;
    uint64_t nwrites, nsyncs_started, nsegs_tried; /* for faults */

    _Atomic int error;   /* sticky; relaxed: a flag others read */
    struct {
        _Atomic uint64_t records, bytes, batches, syncs, short_writes, segments, segment_no;
    } st; /* relaxed counters: the owner writes, a scrape reads */
};

static void spare_step(struct rf_journal *j);
static void rotate(struct rf_journal *j);

void rf_journal_segment_name(uint64_t no, char out[RF_JOURNAL_NAME_BYTES])
{
    snprintf(out, RF_JOURNAL_NAME_BYTES, "%010llu.seg", (unsigned long long)no);
}

static inline void stat_add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed); /* a statistic */
}

/* --- batches ------------------------------------------------------------------------------ */

static void jbuf_init(struct jbuf *b)
{
    b->head = NULL;
    b->tail = &b->head;
    b->len = 0;
    b->records = 0;
}

/* Tell every waiter of b and empty it. Waiters may append new records (to `fill`). */
static void jbuf_finish(struct jbuf *b, int res)
{
    struct rf_jwait *w = b->head;

    jbuf_init(b);
    while (w) {
        struct rf_jwait *next = w->next;
        w->done(w, res);
        w = next;
    }
}

static void fail(struct rf_journal *j, int err)
{
    if (!atomic_load_explicit(&j->error, memory_order_relaxed)) {
        atomic_store_explicit(&j->error, err, memory_order_relaxed); /* a flag */
        rf_log_error("\"msg\":\"journal failed: not acknowledging any more\",\"shard\":%u,"
                     "\"segment\":%llu,\"err\":\"%s\"",
                     j->cfg.shard, (unsigned long long)j->seg_no, strerror(-err));
    }
    j->io_busy = false;
    jbuf_finish(&j->io, err);
    jbuf_finish(&j->fill, err);
}

/* --- the segment record --------------------------------------------------------------------- */

static void seg_record(struct rf_journal *j, uint64_t no, uint8_t *rec, uint32_t *len)
{
    struct rf_jw w = {.p = rec + RF_JREC_HEADER_BYTES, .cap = SEG_PAYLOAD_BYTES};

    rf_jw_u32(&w, j->cfg.shard);
    rf_jw_u64(&w, no);
    rf_jw_u64(&w, (uint64_t)rf_wall_us());
    rf_jw_u64(&w, j->cap);
    rf_jrec_seal(rec, RF_JREC_SEGMENT, 0, (uint32_t)w.n);
    *len = (uint32_t)rf_jrec_size((uint32_t)w.n);
}

/* --- opening (blocking, start-up) ------------------------------------------------------------ */

static int mkdirs(const char *path)
{
    char tmp[PATH_MAX];

    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* The highest segment number in dir (0 when none). */
static uint64_t last_segment(int dirfd)
{
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *e;
    uint64_t max = 0;

    if (!d) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    while ((e = readdir(d))) {
        char *end;
        unsigned long long n = strtoull(e->d_name, &end, 10);
        if (end != e->d_name && strcmp(end, ".seg") == 0 && n > max)
            max = n;
    }
    closedir(d);
    return max;
}

static int write_all(int fd, const void *p, size_t n, off_t off)
{
    while (n) {
        ssize_t w = pwrite(fd, p, n, off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p = (const char *)p + w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

/* Create segment `no` synchronously: the first one of a run. */
static int create_now(struct rf_journal *j, uint64_t no)
{
    char name[RF_JOURNAL_NAME_BYTES];
    uint8_t rec[sizeof(j->nrec)];
    uint32_t len;
    int fd, rc;

    rf_journal_segment_name(no, name);
    fd = openat(j->dirfd, name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    seg_record(j, no, rec, &len);
    if ((rc = -posix_fallocate(fd, 0, (off_t)j->cap)) < 0 || (rc = write_all(fd, rec, len, 0)) < 0 ||
        (fdatasync(fd) < 0 && (rc = -errno) < 0) || (fsync(j->dirfd) < 0 && (rc = -errno) < 0)) {
        close(fd);
        unlinkat(j->dirfd, name, 0);
        return rc;
    }
    j->fd = fd;
    j->seg_no = no;
    j->off = j->start = len;
    stat_add(&j->st.segments, 1);
    atomic_store_explicit(&j->st.segment_no, no, memory_order_relaxed); /* a statistic */
    return 0;
}

int rf_journal_open(const struct rf_journal_config *cfg, struct rf_journal **out)
{
    struct rf_journal *j = rf_calloc(1, sizeof(*j));
    int rc;

    if (!j)
        return -ENOMEM;
    j->cfg = *cfg;
    if (cfg->faults)
        j->faults = *cfg->faults;
    j->cap = cfg->segment_bytes ? cfg->segment_bytes : RF_JOURNAL_SEGMENT_BYTES;
    if (j->cap < SEGMENT_BYTES_MIN)
        j->cap = SEGMENT_BYTES_MIN;
    j->fd = j->nfd = j->dirfd = -1;
    jbuf_init(&j->fill);
    jbuf_init(&j->io);
    if (snprintf(j->dir, sizeof(j->dir), "%s", cfg->dir) >= (int)sizeof(j->dir)) {
        rc = -ENAMETOOLONG;
        goto err;
    }
    j->cfg.dir = j->dir;
    if ((rc = mkdirs(j->dir)) < 0)
        goto err;
    j->dirfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->dirfd < 0) {
        rc = -errno;
        goto err;
    }
    uint64_t last = last_segment(j->dirfd);
    if ((rc = create_now(j, last + 1)) < 0) {
        if (rc != -ENOSPC && rc != -EDQUOT)
            goto err;
        /* No room for this run's first segment: start refusing with -ENOSPC (the journal
         * read back fine; it is writing that must wait) and keep trying through the ring. */
        rf_log_warn("\"msg\":\"journal: no space for a new segment at start-up; submissions "
                    "get 507 until there is\",\"shard\":%u,\"dir\":\"%s\"",
                    cfg->shard, j->dir);
        j->seg_no = last;
        j->nospace = -ENOSPC;
    }
    *out = j;
    return 0;
err:
    rf_journal_close(j);
    return rc;
}

void rf_journal_close(struct rf_journal *j)
{
    if (!j)
        return;
    RF_ASSERT(!j->io_busy && !j->nop_armed);
    if (j->nfd >= 0) {
        close(j->nfd); /* a spare never used: nothing of value in it */
        unlinkat(j->dirfd, j->nname, 0);
    }
    if (j->fd >= 0)
        close(j->fd);
    if (j->dirfd >= 0)
        close(j->dirfd);
    jbuf_finish(&j->fill, -ESHUTDOWN);
    rf_free(j->fill.p);
    rf_free(j->io.p);
    rf_free(j);
}

void rf_journal_attach(struct rf_journal *j, struct rf_shard *sh)
{
    j->sh = sh;
    spare_step(j);
}

/* --- the spare segment, through the ring ------------------------------------------------------ */

static void spare_cqe(rf_op *op, int res, uint32_t flags);

static void spare_submit(struct rf_journal *j, struct io_uring_sqe *sqe)
{
    j->nop.cb = spare_cqe;
    io_uring_sqe_set_data(sqe, &j->nop);
    j->nop_armed = true;
}

/* Start the spare's next step for its current state. */
static void spare_step(struct rf_journal *j)
{
    struct io_uring_sqe *sqe;

    if (atomic_load_explicit(&j->error, memory_order_relaxed) || j->nop_armed)
        return;
    switch (j->nstate) {
    case SP_NONE:
        if (j->quitting)
            return;
        j->nno = j->seg_no + 1;
        rf_journal_segment_name(j->nno, j->nname);
        sqe = rf__shard_sqe(j->sh);
        io_uring_prep_openat(sqe, j->dirfd, j->nname, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC,
                             0640);
        j->nstate = SP_OPEN;
        break;
    case SP_ALLOC:
        sqe = rf__shard_sqe(j->sh);
        io_uring_prep_fallocate(sqe, j->nfd, 0, 0, (off_t)j->cap);
        break;
    case SP_WRITE:
        seg_record(j, j->nno, j->nrec, &j->nrec_len);
        sqe = rf__shard_sqe(j->sh);
        io_uring_prep_write(sqe, j->nfd, j->nrec, j->nrec_len, 0);
        break;
    case SP_SYNC:
        sqe = rf__shard_sqe(j->sh);
        io_uring_prep_fsync(sqe, j->nfd, IORING_FSYNC_DATASYNC);
        break;
    case SP_DIRSYNC:
        sqe = rf__shard_sqe(j->sh);
        io_uring_prep_fsync(sqe, j->dirfd, 0);
        break;
    default:
        return;
    }
    RF_ASSERT(sqe != NULL);
    spare_submit(j, sqe);
}

static void spare_retry_later(struct rf_journal *j, int err)
{
    if (j->quitting) { /* no more tries: what could not be written stays unwritten */
        j->nospace = -ENOSPC;
        if (j->nfd >= 0) {
            close(j->nfd);
            unlinkat(j->dirfd, j->nname, 0);
            j->nfd = -1;
        }
        j->nstate = SP_NONE;
        return;
    }
    if (err == -ENOSPC && !j->nospace)
        rf_log_warn("\"msg\":\"journal: no space for a new segment; submissions get 507 until "
                    "there is\",\"shard\":%u,\"dir\":\"%s\"",
                    j->cfg.shard, j->dir);
    j->nospace = -ENOSPC;
    if (j->nfd >= 0) {
        close(j->nfd);
        unlinkat(j->dirfd, j->nname, 0); /* a few syscalls on a failure path only */
        j->nfd = -1;
    }
    j->nstate = SP_RETRY;
    j->nop.cb = spare_cqe;
    j->nop_armed = true;
    rf__shard_timer_arm(j->sh, &j->nop, &j->nts, RF_JOURNAL_RETRY_MS, spare_cqe);
}

static void spare_cqe(rf_op *op, int res, uint32_t flags)
{
    struct rf_journal *j = rf_container_of(op, struct rf_journal, nop);

    (void)flags;
    j->nop_armed = false;
    if (atomic_load_explicit(&j->error, memory_order_relaxed))
        return;
    switch (j->nstate) {
    case SP_OPEN:
        if (res < 0)
            return fail(j, res);
        j->nfd = res;
        j->nstate = SP_ALLOC;
        if (j->faults.enospc_at && ++j->nsegs_tried == j->faults.enospc_at)
            res = -ENOSPC, j->faults.enospc_at = 0;
        else
            break;
        /* fall through: the injected failure */
    case SP_ALLOC:
        if (res == -ENOSPC || res == -EDQUOT)
            return spare_retry_later(j, -ENOSPC);
        if (res < 0)
            return fail(j, res);
        j->nstate = SP_WRITE;
        break;
    case SP_WRITE:
        if (res != (int)j->nrec_len)
            return res == -ENOSPC ? spare_retry_later(j, -ENOSPC) : fail(j, res < 0 ? res : -EIO);
        j->nstate = SP_SYNC;
        break;
    case SP_SYNC:
        if (res < 0)
            return fail(j, res);
        j->nstate = SP_DIRSYNC;
        break;
    case SP_DIRSYNC:
        if (res < 0)
            return fail(j, res);
        j->nstate = SP_READY;
        if (j->nospace)
            rf_log_info("\"msg\":\"journal: space again\",\"shard\":%u", j->cfg.shard);
        j->nospace = 0;
        if (j->fd < 0)
            rotate(j); /* there was no segment at all: this one is the first */
        return;
    case SP_RETRY:
        j->nstate = SP_NONE;
        break;
    default:
        return;
    }
    spare_step(j);
}

/* Move on to the prepared spare. */
static void rotate(struct rf_journal *j)
{
    struct io_uring_sqe *sqe = rf__shard_sqe(j->sh);

    RF_ASSERT(j->nstate == SP_READY);
    RF_ASSERT(sqe != NULL);
    if (j->fd >= 0)
        io_uring_prep_close(sqe, j->fd);
    else
        io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, RF_UD_IGNORE);
    j->fd = j->nfd;
    j->seg_no = j->nno;
    j->off = j->start = j->nrec_len;
    j->nfd = -1;
    j->nstate = SP_NONE;
    stat_add(&j->st.segments, 1);
    atomic_store_explicit(&j->st.segment_no, j->seg_no, memory_order_relaxed); /* a statistic */
    spare_step(j);
}

/* --- appending ------------------------------------------------------------------------------- */

uint8_t *rf_journal_reserve(struct rf_journal *j, uint32_t len, int *err)
{
    struct jbuf *b = &j->fill;
    int e = atomic_load_explicit(&j->error, memory_order_relaxed);
    size_t size = rf_jrec_size(len);

    if (e || (e = j->nospace) != 0) {
        *err = e;
        return NULL;
    }
    if (len > RF_JREC_PAYLOAD_MAX) {
        *err = -E2BIG;
        return NULL;
    }
    if (b->len + size > RF_JOURNAL_BATCH_MAX && b->len) {
        *err = -EAGAIN;
        return NULL;
    }
    if (b->len == 0)
        size += BATCH_RECORD_BYTES; /* the batch opens with its BATCH record */
    if (b->cap - b->len < size) {
        size_t cap = b->cap ? b->cap : BUF_BYTES_INIT;
        while (cap - b->len < size)
            cap *= 2;
        uint8_t *p = rf_realloc(b->p, cap);
        if (!p) {
            *err = -ENOMEM;
            return NULL;
        }
        b->p = p;
        b->cap = cap;
    }
    if (b->len == 0)
        b->len = BATCH_RECORD_BYTES; /* sealed by rf_journal_flush */
    return b->p + b->len + RF_JREC_HEADER_BYTES;
}

uint64_t rf_journal_commit(struct rf_journal *j, uint8_t type, uint32_t len, struct rf_jwait *w)
{
    struct jbuf *b = &j->fill;
    size_t size = rf_jrec_size(len);

    RF_ASSERT(b->cap - b->len >= size);
    rf_jrec_seal(b->p + b->len, type, ++j->seq, len);
    b->len += size;
    b->records++;
    if (w) {
        w->next = NULL;
        *b->tail = w;
        b->tail = &w->next;
    }
    stat_add(&j->st.records, 1);
    stat_add(&j->st.bytes, size);
    return j->seq;
}

void rf_journal_notify(struct rf_journal *j, struct rf_jwait *w)
{
    /* Relaxed: a flag set on the owner thread, which this is. */
    int err = atomic_load_explicit(&j->error, memory_order_relaxed);
    struct jbuf *b = j->fill.records ? &j->fill : j->io_busy ? &j->io : NULL;

    if (err || !b) {
        w->done(w, err);
        return;
    }
    w->next = NULL;
    *b->tail = w;
    b->tail = &w->next;
}

/* --- writing ------------------------------------------------------------------------------- */

static void write_cqe(rf_op *op, int res, uint32_t flags);
static void sync_cqe(rf_op *op, int res, uint32_t flags);

/* Write what is left of the io batch, and fdatasync it. */
static void io_submit(struct rf_journal *j)
{
    struct io_uring_sqe *w = rf__shard_sqe(j->sh), *s = NULL;

    RF_ASSERT(w != NULL);
    j->io_want = j->io.len - j->io_done;
    io_uring_prep_write(w, j->fd, j->io.p + j->io_done, (unsigned)j->io_want,
                        j->off + j->io_done);
    j->wop.cb = write_cqe;
    io_uring_sqe_set_data(w, &j->wop);
    j->io_pending = 1;
    j->wres = j->sres = 0;
    j->nwrites++;
    if (j->cfg.sync) {
        w->flags |= IOSQE_IO_LINK; /* the fdatasync runs only after the write succeeded */
        s = rf__shard_sqe(j->sh);
        RF_ASSERT(s != NULL);
        io_uring_prep_fsync(s, j->fd, IORING_FSYNC_DATASYNC);
        j->sop.cb = sync_cqe;
        io_uring_sqe_set_data(s, &j->sop);
        j->io_pending = 2;
        j->nsyncs_started++;
    }
    stat_add(&j->st.batches, 1);
}

/* Both CQEs of the batch came back: decide. */
static void io_settle(struct rf_journal *j)
{
    int wres = j->wres;

    if (j->faults.eio_write_at && j->nwrites == j->faults.eio_write_at)
        wres = -EIO, j->faults.eio_write_at = 0;
    else if (j->faults.short_write_at && j->nwrites == j->faults.short_write_at && wres > 1)
        wres /= 2, j->faults.short_write_at = 0;
    if (wres < 0)
        return fail(j, wres);
    if ((size_t)wres < j->io_want) {
        /* Short: continue from there, with an fdatasync of its own. */
        j->io_done += (size_t)wres;
        stat_add(&j->st.short_writes, 1);
        return io_submit(j);
    }
    if (j->cfg.sync) {
        int sres = j->sres;
        if (j->faults.eio_sync_at && j->nsyncs_started == j->faults.eio_sync_at)
            sres = -EIO, j->faults.eio_sync_at = 0;
        if (sres < 0)
            return fail(j, sres); /* never retried: the page cache cannot be trusted now */
        stat_add(&j->st.syncs, 1);
    }
    j->off += j->io.len;
    j->io_busy = false;
    j->io_done = 0;
    jbuf_finish(&j->io, 0); /* with sync off its waiters were told at submission */
}

/* One of the batch's two CQEs came back; the last one decides. */
static void io_one(struct rf_journal *j)
{
    RF_ASSERT(j->io_pending > 0);
    if (--j->io_pending == 0 && !atomic_load_explicit(&j->error, memory_order_relaxed))
        io_settle(j);
}

static void write_cqe(rf_op *op, int res, uint32_t flags)
{
    struct rf_journal *j = rf_container_of(op, struct rf_journal, wop);

    (void)flags;
    j->wres = res;
    io_one(j);
}

static void sync_cqe(rf_op *op, int res, uint32_t flags)
{
    struct rf_journal *j = rf_container_of(op, struct rf_journal, sop);

    (void)flags;
    j->sres = res; /* -ECANCELED when the write before it failed or came back short */
    io_one(j);
}

void rf_journal_flush(struct rf_journal *j)
{
    if (j->io_busy || j->fill.len == 0 || atomic_load_explicit(&j->error, memory_order_relaxed))
        return;
    if (j->off + j->fill.len > j->cap && j->off > j->start) {
        if (j->nstate != SP_READY) {
            if (j->nospace) /* no segment to go to: this batch cannot be written */
                jbuf_finish(&j->fill, j->nospace);
            spare_step(j);
            return;
        }
        rotate(j);
    }
    /* The BATCH record at the front: how far this write reaches. */
    struct rf_jw bw = {.p = j->fill.p + RF_JREC_HEADER_BYTES, .cap = BATCH_PAYLOAD_BYTES};
    rf_jw_u64(&bw, j->fill.len);
    rf_jw_u32(&bw, j->fill.records);
    rf_jrec_seal(j->fill.p, RF_JREC_BATCH, 0, BATCH_PAYLOAD_BYTES);
    struct jbuf t = j->io;
    j->io = j->fill;
    j->io.tail = j->io.head ? j->io.tail : &j->io.head;
    j->fill = t;
    jbuf_init(&j->fill);
    j->io_busy = true;
    j->io_done = 0;
    io_submit(j);
    if (!j->cfg.sync) {
        /* Durability none: acknowledged once queued. The bytes stay in `io` until written. */
        struct rf_jwait *w = j->io.head;
        j->io.head = NULL;
        j->io.tail = &j->io.head;
        while (w) {
            struct rf_jwait *next = w->next;
            w->done(w, 0);
            w = next;
        }
    }
}

bool rf_journal_busy(const struct rf_journal *j)
{
    if (atomic_load_explicit(&j->error, memory_order_relaxed))
        return j->io_pending > 0 || j->nop_armed;
    return j->io_busy || j->fill.len > 0 || j->nop_armed;
}

void rf_journal_quit(struct rf_journal *j)
{
    j->quitting = true;
    if (j->nstate == SP_RETRY && j->nop_armed)
        rf__shard_timer_cancel(j->sh, &j->nop);
    if (j->nospace && j->fill.len)
        jbuf_finish(&j->fill, j->nospace);
}

int rf_journal_error(const struct rf_journal *j)
{
    return atomic_load_explicit(&j->error, memory_order_relaxed); /* a flag */
}

uint64_t rf_journal_segment(const struct rf_journal *j)
{
    return j->seg_no;
}

void rf_journal_stats(const struct rf_journal *j, struct rf_journal_stats *out)
{
    /* Relaxed snapshots of counters the owner writes. */
    out->records = atomic_load_explicit(&j->st.records, memory_order_relaxed);
    out->bytes = atomic_load_explicit(&j->st.bytes, memory_order_relaxed);
    out->batches = atomic_load_explicit(&j->st.batches, memory_order_relaxed);
    out->syncs = atomic_load_explicit(&j->st.syncs, memory_order_relaxed);
    out->short_writes = atomic_load_explicit(&j->st.short_writes, memory_order_relaxed);
    out->segments = atomic_load_explicit(&j->st.segments, memory_order_relaxed);
    out->segment_no = atomic_load_explicit(&j->st.segment_no, memory_order_relaxed);
    out->error = atomic_load_explicit(&j->error, memory_order_relaxed);
    out->no_space = j->nospace != 0; /* a racy read of a flag: fine for a stat */
}
