/*
 * tests/storage/test_journal.c: the journal (storage/journal.c), its record frame
 * (storage/jrec.c) and its reader (storage/jread.c).
 *
 * The writer runs where it runs in the daemon: on a shard's ring, as a shard service of a
 * one-shard engine; the test hands it records through rf__shard_post and waits (bounded)
 * for their waiters. What it wrote is read back with rf_jread_dir and compared byte for
 * byte. Faults are injected through rf_journal_faults (short writes, EIO on a write and
 * on an fdatasync, no space for a segment) and on disk afterwards (a torn tail, a flipped
 * byte in an acknowledged batch, a zeroed batch), each with the behaviour storage/jread.h
 * promises. Every test works in its own temporary directory, removed at the end.
 *
 * RF_TEST_CONCURRENT: the writer runs on the shard thread while the test thread waits.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/internal.h"
#include "sched/shard.h"
#include "storage/journal.h"
#include "storage/jread.h"
#include "storage/jrec.h"

#define WAIT_MS       10000
#define RECORDS_MAX   20000
#define PAYLOAD_MAX   3000u
#define SMALL_SEGMENT (1ull << 20)

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* --- the record a test writes: index i has a payload derived from i -------------------------- */

static uint32_t payload_len(uint32_t i)
{
    return (i * 2654435761u) % PAYLOAD_MAX;
}

static void payload_fill(uint32_t i, uint8_t *p, uint32_t len)
{
    for (uint32_t k = 0; k < len; k++)
        p[k] = (uint8_t)(i * 31 + k * 7);
    if (len >= 4)
        memcpy(p, &i, 4);
}

/* --- a one-shard engine whose service is a journal ------------------------------------------- */

struct waiter {
    struct rf_jwait w;
    _Atomic int res;   /* 1 while pending */
};

struct fixture {
    char dir[128];
    rf_engine *eng;
    struct rf_journal *j;
    struct rf_shard_service svc;
    struct waiter w[RECORDS_MAX];
    uint32_t next; /* records appended so far (indexes) */
};

static int svc_start(void *ud, struct rf_shard *sh)
{
    rf_journal_attach(((struct fixture *)ud)->j, sh);
    return 0;
}
static void svc_flush(void *ud, struct rf_shard *sh)
{
    (void)sh;
    rf_journal_flush(((struct fixture *)ud)->j);
}
static void svc_quit(void *ud, struct rf_shard *sh)
{
    (void)sh;
    rf_journal_quit(((struct fixture *)ud)->j);
}
static bool svc_busy(void *ud, struct rf_shard *sh)
{
    (void)sh;
    return rf_journal_busy(((struct fixture *)ud)->j);
}
static void svc_stop(void *ud, struct rf_shard *sh)
{
    (void)ud;
    (void)sh;
}

static void waiter_done(struct rf_jwait *jw, int res)
{
    struct waiter *w = rf_container_of(jw, struct waiter, w);

    atomic_store(&w->res, res);
}

static void fixture_start(struct fixture *f, uint64_t segment_bytes, bool sync,
                          const struct rf_journal_faults *faults)
{
    rf_config cfg = {.shards = 1, .no_pin_threads = true, .log_level = RF_LOG_ERROR};
    struct rf_journal_config jc = {.shard = 0, .segment_bytes = segment_bytes, .sync = sync,
                                   .faults = faults};

    snprintf(f->dir, sizeof(f->dir), "/tmp/rf-journal-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    jc.dir = f->dir;
    assert_int_equal(rf_journal_open(&jc, &f->j), 0);
    assert_int_equal(rf_engine_new(&cfg, &f->eng), 0);
    f->svc = (struct rf_shard_service){.ud = f, .start = svc_start, .flush = svc_flush,
                                       .quit = svc_quit, .busy = svc_busy, .stop = svc_stop};
    assert_int_equal(rf__engine_set_service(f->eng, &f->svc), 0);
    assert_int_equal(rf_engine_start(f->eng), 0);
}

static void fixture_stop(struct fixture *f)
{
    rf_engine_stop(f->eng, 1000);
    rf_engine_free(f->eng);
    rf_journal_close(f->j);
    f->eng = NULL;
    f->j = NULL;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void fixture_free(struct fixture *f)
{
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
}

static struct fixture *fixture_new(void)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    return f;
}

/* Append records [from, from + n) on the shard; each gets a waiter. */
struct append_job {
    struct rf_post post;
    struct fixture *f;
    uint32_t from, n;
    _Atomic int failed;  /* reserve's error for the first record refused, else 0 */
    _Atomic bool ran;
};

static void append_on_shard(struct rf_post *p, struct rf_shard *sh)
{
    struct append_job *a = rf_container_of(p, struct append_job, post);
    struct fixture *f = a->f;

    (void)sh;
    for (uint32_t i = a->from; i < a->from + a->n; i++) {
        uint32_t len = payload_len(i);
        int err = 0;
        uint8_t *dst = rf_journal_reserve(f->j, len, &err);
        if (!dst) {
            atomic_store(&f->w[i].res, err);
            if (!atomic_load(&a->failed))
                atomic_store(&a->failed, err);
            continue;
        }
        payload_fill(i, dst, len);
        f->w[i].w.done = waiter_done;
        rf_journal_commit(f->j, RF_JREC_EVENTS, len, &f->w[i].w);
    }
    atomic_store(&a->ran, true);
}

/* Append n more records in `posts` posts and wait for all their waiters; returns how many
 * succeeded (the others' errors are in f->w[].res). */
static uint32_t append(struct fixture *f, uint32_t n, uint32_t posts)
{
    struct append_job *jobs = calloc(posts, sizeof(*jobs));
    uint32_t from = f->next, ok = 0;

    assert_non_null(jobs);
    assert_true(f->next + n <= RECORDS_MAX);
    for (uint32_t i = from; i < from + n; i++)
        atomic_store(&f->w[i].res, 1);
    for (uint32_t k = 0; k < posts; k++) {
        jobs[k].f = f;
        jobs[k].from = from + n / posts * k;
        jobs[k].n = k == posts - 1 ? n - n / posts * k : n / posts;
        jobs[k].post.fn = append_on_shard;
        rf__shard_post(rf__engine_shard(f->eng, 0), &jobs[k].post);
    }
    int64_t deadline = now_ms() + WAIT_MS;
    for (uint32_t i = from; i < from + n; i++) {
        while (atomic_load(&f->w[i].res) == 1) {
            assert_true(now_ms() < deadline);
            sleep_ms(1);
        }
        ok += atomic_load(&f->w[i].res) == 0;
    }
    for (uint32_t k = 0; k < posts; k++)
        while (!atomic_load(&jobs[k].ran))
            sleep_ms(1);
    f->next = from + n;
    free(jobs);
    return ok;
}

/* --- reading back -------------------------------------------------------------------------- */

struct readback {
    uint32_t n;
    uint64_t last_seq;
    uint32_t idx[RECORDS_MAX];
    uint64_t segments_seen[64];
    uint32_t nsegs;
};

static int on_record(void *ud, uint64_t segment, uint64_t offset, const struct rf_jrec *rec)
{
    struct readback *rb = ud;
    uint8_t want[PAYLOAD_MAX];
    uint32_t i;

    (void)offset;
    assert_int_equal(rec->type, RF_JREC_EVENTS);
    assert_true(rec->seq > rb->last_seq);
    rb->last_seq = rec->seq;
    if (rec->len >= 4) {
        memcpy(&i, rec->payload, 4);
    } else {
        /* A short payload: find the index by its length among the next candidates. */
        i = rb->n ? rb->idx[rb->n - 1] + 1 : 0;
        while (payload_len(i) != rec->len)
            i++;
    }
    assert_int_equal(rec->len, payload_len(i));
    payload_fill(i, want, rec->len);
    assert_memory_equal(rec->payload, want, rec->len);
    assert_true(rb->n < RECORDS_MAX);
    rb->idx[rb->n++] = i;
    if (rb->nsegs == 0 || rb->segments_seen[rb->nsegs - 1] != segment) {
        if (rb->nsegs < 64)
            rb->segments_seen[rb->nsegs++] = segment;
    }
    return 0;
}

static struct readback *read_back(const char *dir, bool repair, int want_rc,
                                  struct rf_jread_report *rep)
{
    struct readback *rb = calloc(1, sizeof(*rb));

    assert_non_null(rb);
    int rc = rf_jread_dir(dir, repair, on_record, rb, rep);
    if (rc != want_rc)
        fail_msg("rf_jread_dir: %d, want %d (%s)", rc, want_rc, rep->why);
    return rb;
}

/* The records read back are exactly the indexes [0, n) that succeeded, in order. */
static void expect_records(const struct readback *rb, const struct fixture *f, uint32_t n)
{
    uint32_t k = 0;

    for (uint32_t i = 0; i < n; i++) {
        if (atomic_load(&f->w[i].res) != 0)
            continue;
        assert_true(k < rb->n);
        assert_int_equal(rb->idx[k], i);
        k++;
    }
    assert_int_equal(k, rb->n);
}

static char *seg_path(const char *dir, uint64_t no, char *buf, size_t cap)
{
    char name[RF_JOURNAL_NAME_BYTES];

    rf_journal_segment_name(no, name);
    snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

/* --- jrec ------------------------------------------------------------------------------------ */

static void test_jrec_round_trip_and_prefixes(void **state)
{
    uint8_t rec[256], payload[100];
    struct rf_jrec out;

    (void)state;
    for (uint32_t len = 0; len < sizeof(payload); len += 7) {
        memset(rec, 0xee, sizeof(rec));
        payload_fill(len, payload, len);
        memcpy(rec + RF_JREC_HEADER_BYTES, payload, len);
        rf_jrec_seal(rec, RF_JREC_ACCEPT, 1000 + len, len);
        size_t size = rf_jrec_size(len);
        assert_int_equal(size % 8, 0);
        assert_int_equal(rf_jrec_decode(rec, size, &out), (int)size);
        assert_int_equal(out.type, RF_JREC_ACCEPT);
        assert_int_equal(out.seq, 1000 + len);
        assert_int_equal(out.len, len);
        assert_memory_equal(out.payload, payload, len);
        /* Every prefix is "more needed"; every flipped bit is "not a record". */
        for (size_t k = 0; k < size; k++)
            assert_int_equal(rf_jrec_decode(rec, k, &out), -2);
        for (size_t bit = 0; bit < size * 8; bit += 5) {
            rec[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            int rc = rf_jrec_decode(rec, size, &out);
            assert_true(rc == -1 || rc == -2 || rc == 0);
            rec[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
    }
    memset(rec, 0, sizeof(rec));
    assert_int_equal(rf_jrec_decode(rec, sizeof(rec), &out), 0);
}

static void test_jrec_fields(void **state)
{
    uint8_t buf[64];
    struct rf_jw w = {.p = buf, .cap = sizeof(buf)};
    struct rf_jrec rec = {.payload = buf};
    struct rf_jr r;
    uint8_t u8;
    uint32_t u32, n;
    uint64_t u64;
    const uint8_t *p;

    (void)state;
    rf_jw_u8(&w, 7);
    rf_jw_u32(&w, 0xdeadbeef);
    rf_jw_u64(&w, 0x0123456789abcdefull);
    rf_jw_str(&w, "hello");
    rf_jw_str(&w, NULL);
    rec.len = (uint32_t)w.n;
    rf_jr_init(&r, &rec);
    assert_int_equal(rf_jr_u8(&r, &u8), 0);
    assert_int_equal(u8, 7);
    assert_int_equal(rf_jr_u32(&r, &u32), 0);
    assert_int_equal(u32, 0xdeadbeef);
    assert_int_equal(rf_jr_u64(&r, &u64), 0);
    assert_true(u64 == 0x0123456789abcdefull);
    assert_int_equal(rf_jr_bytes(&r, &p, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(p, "hello", 5);
    assert_int_equal(rf_jr_bytes(&r, &p, &n), 0);
    assert_int_equal(n, 0);
    assert_true(rf_jr_done(&r));
    /* Past the end, and a length that runs past it, fail and stay failed. */
    assert_int_equal(rf_jr_u8(&r, &u8), -1);
    rec.len = 6; /* u8 and a string length cut short */
    rf_jr_init(&r, &rec);
    assert_int_equal(rf_jr_u8(&r, &u8), 0);
    assert_int_equal(rf_jr_bytes(&r, &p, &n), -1);
    assert_int_equal(rf_jr_u8(&r, &u8), -1);
    assert_false(rf_jr_done(&r));
}

/* --- the writer ------------------------------------------------------------------------------ */

static void test_round_trip(void **state)
{
    struct fixture *f = fixture_new();
    struct rf_journal_stats st;
    struct rf_jread_report rep;

    (void)state;
    fixture_start(f, 0, true, NULL);
    assert_int_equal(append(f, 5000, 50), 5000);
    assert_int_equal(append(f, 1, 1), 1);
    rf_journal_stats(f->j, &st);
    assert_int_equal(st.records, 5001);
    assert_true(st.batches >= 2 && st.batches <= 51); /* grouped: one per loop iteration */
    assert_int_equal(st.syncs, st.batches);
    assert_int_equal(st.error, 0);
    fixture_stop(f);
    struct readback *rb = read_back(f->dir, false, 0, &rep);
    expect_records(rb, f, f->next);
    assert_false(rep.torn);
    assert_false(rep.corrupt);
    free(rb);
    fixture_free(f);
}

/* Small segments: the journal moves on through prepared spares; a restart starts a new
 * segment after the last one. */
static void test_segments(void **state)
{
    struct fixture *f = fixture_new();
    struct rf_journal_stats st;
    struct rf_jread_report rep;

    (void)state;
    fixture_start(f, SMALL_SEGMENT, true, NULL);
    for (int k = 0; k < 8; k++)
        assert_int_equal(append(f, 1000, 4), 1000); /* ~1.5 MB per round */
    rf_journal_stats(f->j, &st);
    assert_true(st.segments >= 8);
    uint64_t last = st.segment_no;
    fixture_stop(f);
    struct readback *rb = read_back(f->dir, false, 0, &rep);
    expect_records(rb, f, f->next);
    assert_true(rb->nsegs >= 8);
    free(rb);
    /* The spare prepared ahead was removed at close; a new run starts after `last`. */
    char path[256];
    assert_int_equal(access(seg_path(f->dir, last + 1, path, sizeof(path)), F_OK), -1);
    struct rf_journal_config jc = {.dir = f->dir, .segment_bytes = SMALL_SEGMENT, .sync = true};
    struct rf_journal *j2;
    assert_int_equal(rf_journal_open(&jc, &j2), 0);
    assert_int_equal(rf_journal_segment(j2), last + 1);
    rf_journal_close(j2);
    fixture_free(f);
}

static void test_short_write_is_continued(void **state)
{
    struct fixture *f = fixture_new();
    struct rf_journal_faults faults = {.short_write_at = 2};
    struct rf_journal_stats st;
    struct rf_jread_report rep;

    (void)state;
    fixture_start(f, 0, true, &faults);
    for (int k = 0; k < 4; k++)
        assert_int_equal(append(f, 200, 1), 200);
    rf_journal_stats(f->j, &st);
    assert_int_equal(st.short_writes, 1);
    assert_int_equal(st.error, 0);
    fixture_stop(f);
    struct readback *rb = read_back(f->dir, false, 0, &rep);
    expect_records(rb, f, f->next);
    free(rb);
    fixture_free(f);
}

/* A failed write or fdatasync fails its waiters and every later append, for good. */
static void failing_journal(const struct rf_journal_faults *faults)
{
    struct fixture *f = fixture_new();
    struct rf_jread_report rep;

    fixture_start(f, 0, true, faults);
    assert_int_equal(append(f, 100, 1), 100);
    assert_int_equal(append(f, 100, 1), 0); /* the second batch fails */
    for (uint32_t i = 100; i < 200; i++)
        assert_int_equal(atomic_load(&f->w[i].res), -EIO);
    assert_int_equal(append(f, 10, 1), 0); /* refused at reserve */
    assert_int_equal(atomic_load(&f->w[205].res), -EIO);
    assert_int_equal(rf_journal_error(f->j), -EIO);
    fixture_stop(f);
    /* What was acknowledged is there; the failed batch may or may not be (it was never
     * acknowledged), but the journal reads back cleanly either way. */
    struct readback *rb = read_back(f->dir, false, 0, &rep);
    assert_true(rb->n >= 100);
    for (uint32_t k = 0; k < 100; k++)
        assert_int_equal(rb->idx[k], k);
    free(rb);
    fixture_free(f);
}

static void test_eio_on_write(void **state)
{
    struct rf_journal_faults faults = {.eio_write_at = 2};

    (void)state;
    failing_journal(&faults);
}

static void test_eio_on_fsync_never_retried(void **state)
{
    struct rf_journal_faults faults = {.eio_sync_at = 2};

    (void)state;
    failing_journal(&faults);
}

/* No room for the next segment: the batch that needs it fails with -ENOSPC, so do appends
 * until the retry (RF_JOURNAL_RETRY_MS) finds room again; nothing is lost or torn. */
static void test_no_space_for_a_segment(void **state)
{
    struct fixture *f = fixture_new();
    struct rf_journal_faults faults = {.enospc_at = 1}; /* the first spare */
    struct rf_journal_stats st;
    struct rf_jread_report rep;
    uint32_t refused = 0;

    (void)state;
    fixture_start(f, SMALL_SEGMENT, true, &faults);
    /* Fill the first segment; the batch that would need the spare is refused. */
    for (int k = 0; k < 4; k++)
        refused += 700 - append(f, 700, 1);
    assert_true(refused > 0);
    for (uint32_t i = 0; i < f->next; i++) {
        int res = atomic_load(&f->w[i].res);
        assert_true(res == 0 || res == -ENOSPC);
    }
    rf_journal_stats(f->j, &st);
    assert_int_equal(st.error, 0);
    /* The retry makes the spare: appends work again. */
    int64_t deadline = now_ms() + WAIT_MS;
    uint32_t ok = 0;
    while (ok == 0 && now_ms() < deadline) {
        sleep_ms(200);
        ok = append(f, 50, 1);
    }
    assert_int_equal(ok, 50);
    fixture_stop(f);
    struct readback *rb = read_back(f->dir, false, 0, &rep);
    expect_records(rb, f, f->next);
    assert_false(rep.torn);
    free(rb);
    fixture_free(f);
}

/* Durability none: waiters are told when the write is queued; everything reads back. */
static void test_durability_none(void **state)
{
    struct fixture *f = fixture_new();
    struct rf_journal_stats st;
    struct rf_jread_report rep;

    (void)state;
    fixture_start(f, 0, false, NULL);
    assert_int_equal(append(f, 3000, 30), 3000);
    rf_journal_stats(f->j, &st);
    assert_int_equal(st.syncs, 0);
    fixture_stop(f);
    struct readback *rb = read_back(f->dir, false, 0, &rep);
    expect_records(rb, f, f->next);
    free(rb);
    fixture_free(f);
}

/* --- damage on disk -------------------------------------------------------------------------- */

/* A journal of several batches in one segment; returns the fixture (stopped). */
static struct fixture *written(uint32_t rounds)
{
    struct fixture *f = fixture_new();

    fixture_start(f, 0, true, NULL);
    for (uint32_t k = 0; k < rounds; k++)
        assert_int_equal(append(f, 100, 1), 100);
    fixture_stop(f);
    return f;
}

/* Offsets of the batches of segment `no` (from a clean read). */
static uint32_t batch_offsets(const char *dir, uint64_t no, uint64_t *off, uint32_t max)
{
    char path[256];
    int fd = open(seg_path(dir, no, path, sizeof(path)), O_RDONLY);
    struct stat st;
    uint32_t n = 0;

    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *p = malloc((size_t)st.st_size);
    assert_int_equal(pread(fd, p, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    struct rf_jrec rec;
    size_t o = 0;
    for (;;) {
        int rc = rf_jrec_decode(p + o, (size_t)st.st_size - o, &rec);
        if (rc <= 0)
            break;
        if (rec.type == RF_JREC_BATCH && n < max)
            off[n++] = o;
        o += (size_t)rc;
    }
    free(p);
    return n;
}

static void poke(const char *dir, uint64_t no, uint64_t off, uint8_t xor_byte, size_t zero_bytes)
{
    char path[256];
    int fd = open(seg_path(dir, no, path, sizeof(path)), O_RDWR);
    uint8_t b;

    assert_true(fd >= 0);
    if (zero_bytes) {
        uint8_t *z = calloc(1, zero_bytes);
        assert_int_equal(pwrite(fd, z, zero_bytes, (off_t)off), (ssize_t)zero_bytes);
        free(z);
    } else {
        assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
        b ^= xor_byte;
        assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
    }
    close(fd);
}

/* The last write cut short (its tail never reached the disk): cut, and everything before
 * it reads back. */
static void test_torn_tail_is_cut(void **state)
{
    struct fixture *f = written(5);
    struct rf_jread_report rep;
    uint64_t off[16];
    uint64_t no = 1;

    (void)state;
    uint32_t n = batch_offsets(f->dir, no, off, 16);
    assert_int_equal(n, 5);
    /* Zero the second half of the last batch, as a crash between two pages would. */
    uint64_t end = off[4] + 8000;
    poke(f->dir, no, off[4] + 4000, 0, (size_t)(end - (off[4] + 4000)));
    struct readback *rb = read_back(f->dir, false, 0, &rep);
    assert_true(rep.torn);
    assert_int_equal(rep.torn_segment, no);
    assert_int_equal(rep.torn_offset, off[4]);
    assert_int_equal(rb->n, 400);
    for (uint32_t k = 0; k < 400; k++)
        assert_int_equal(rb->idx[k], k);
    free(rb);
    /* Cut: reading again finds a clean journal of four batches. */
    rb = read_back(f->dir, false, 0, &rep);
    assert_false(rep.torn);
    assert_int_equal(rb->n, 400);
    free(rb);
    fixture_free(f);
}

/* A flipped byte in an acknowledged batch: start-up must stop and say where; repair cuts
 * there and moves later segments aside. */
static void test_corruption_in_the_middle(void **state)
{
    struct fixture *f = written(5);
    struct rf_jread_report rep;
    uint64_t off[16];

    (void)state;
    assert_int_equal(batch_offsets(f->dir, 1, off, 16), 5);
    poke(f->dir, 1, off[1] + 100, 0x40, 0);
    struct readback *rb = read_back(f->dir, false, -EBADMSG, &rep);
    assert_true(rep.corrupt);
    assert_int_equal(rep.bad_segment, 1);
    assert_int_equal(rep.bad_offset, off[1]);
    assert_true(strlen(rep.why) > 0);
    assert_int_equal(rb->n, 100); /* the first batch was handed over before */
    free(rb);
    rb = read_back(f->dir, true, 0, &rep);
    assert_true(rep.repaired);
    assert_int_equal(rb->n, 100);
    free(rb);
    rb = read_back(f->dir, false, 0, &rep);
    assert_false(rep.corrupt);
    assert_int_equal(rb->n, 100);
    free(rb);
    fixture_free(f);
}

/* A zeroed stretch with whole batches after it is not the end of the data. */
static void test_zeroed_batch_is_corruption(void **state)
{
    struct fixture *f = written(4);
    struct rf_jread_report rep;
    uint64_t off[16];

    (void)state;
    assert_int_equal(batch_offsets(f->dir, 1, off, 16), 4);
    poke(f->dir, 1, off[1], 0, (size_t)(off[2] - off[1]));
    struct readback *rb = read_back(f->dir, false, -EBADMSG, &rep);
    assert_int_equal(rep.bad_offset, off[1]);
    free(rb);
    fixture_free(f);
}

/* Damage in a segment that is not the last one with data is corruption too. */
static void test_damage_in_an_earlier_segment(void **state)
{
    struct fixture *f = fixture_new();
    struct rf_jread_report rep;
    uint64_t off[64];

    (void)state;
    fixture_start(f, SMALL_SEGMENT, true, NULL);
    for (int k = 0; k < 4; k++)
        assert_int_equal(append(f, 1000, 4), 1000);
    fixture_stop(f);
    uint32_t n = batch_offsets(f->dir, 1, off, 64);
    assert_true(n >= 1);
    /* The last batch of segment 1, whose successors are in segment 2. */
    poke(f->dir, 1, off[n - 1] + 64, 0x01, 0);
    struct readback *rb = read_back(f->dir, false, -EBADMSG, &rep);
    assert_int_equal(rep.bad_segment, 1);
    assert_int_equal(rep.bad_offset, off[n - 1]);
    free(rb);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jrec_round_trip_and_prefixes),
        cmocka_unit_test(test_jrec_fields),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_segments),
        cmocka_unit_test(test_short_write_is_continued),
        cmocka_unit_test(test_eio_on_write),
        cmocka_unit_test(test_eio_on_fsync_never_retried),
        cmocka_unit_test(test_no_space_for_a_segment),
        cmocka_unit_test(test_durability_none),
        cmocka_unit_test(test_torn_tail_is_cut),
        cmocka_unit_test(test_corruption_in_the_middle),
        cmocka_unit_test(test_zeroed_batch_is_corruption),
        cmocka_unit_test(test_damage_in_an_earlier_segment),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
