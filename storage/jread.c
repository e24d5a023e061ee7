/*
 * storage/jread.c: reading a shard's journal back (storage/jread.h).
 *
 * Segments are mapped read-only one at a time. The tail segment (the last one with any
 * byte past its SEGMENT record) is found first, scanning backwards, because it decides
 * what a bad batch means: damage in the tail segment with nothing valid after it is a
 * torn write; damage anywhere else is corruption. Each batch is checked whole (its BATCH
 * record, then exactly `records` records ending exactly at its end) before any of its
 * records is handed over. After the data of a segment ends (a zero header), the rest of
 * the segment must be zeros: a valid batch hiding behind a zeroed stretch would otherwise
 * be skipped silently.
 */
#include "storage/jread.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/rf.h"
#include "storage/journal.h"

#define SEGMENTS_MAX (1u << 24)

struct seg {
    int fd;
    const uint8_t *p;
    size_t size;
    uint64_t no;
};

struct reader {
    const char *dir;
    bool repair;
    rf_jread_fn fn;
    void *ud;
    struct rf_jread_report *rep;
    uint64_t *nos;
    size_t n;
    uint64_t tail; /* the tail segment's number, 0 when every segment is empty */
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int list_segments(struct reader *r)
{
    DIR *d = opendir(r->dir);
    struct dirent *e;
    size_t cap = 0;

    if (!d)
        return errno == ENOENT ? 0 : -errno;
    while ((e = readdir(d))) {
        char *end;
        unsigned long long no = strtoull(e->d_name, &end, 10);
        if (end == e->d_name || strcmp(end, ".seg") != 0 || no == 0)
            continue;
        if (r->n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            uint64_t *v = ncap <= SEGMENTS_MAX ? rf_realloc(r->nos, ncap * sizeof(*v)) : NULL;
            if (!v) {
                closedir(d);
                return -ENOMEM;
            }
            r->nos = v;
            cap = ncap;
        }
        r->nos[r->n++] = no;
    }
    closedir(d);
    if (r->n)
        qsort(r->nos, r->n, sizeof(*r->nos), cmp_u64);
    return 0;
}

static int seg_open(struct reader *r, uint64_t no, bool rw, struct seg *s)
{
    char name[RF_JOURNAL_NAME_BYTES], path[PATH_MAX];
    struct stat st;

    rf_journal_segment_name(no, name);
    snprintf(path, sizeof(path), "%s/%s", r->dir, name);
    s->no = no;
    s->p = NULL;
    s->size = 0;
    s->fd = open(path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (s->fd < 0 || fstat(s->fd, &st) < 0) {
        int rc = -errno;
        if (s->fd >= 0)
            close(s->fd);
        s->fd = -1;
        return rc;
    }
    s->size = (size_t)st.st_size;
    if (s->size) {
        void *m = mmap(NULL, s->size, PROT_READ, MAP_PRIVATE, s->fd, 0);
        if (m == MAP_FAILED) {
            int rc = -errno;
            close(s->fd);
            s->fd = -1;
            return rc;
        }
        madvise(m, s->size, MADV_SEQUENTIAL);
        s->p = m;
    }
    return 0;
}

static void seg_close(struct seg *s)
{
    if (s->p)
        munmap((void *)s->p, s->size);
    if (s->fd >= 0)
        close(s->fd);
    s->p = NULL;
    s->fd = -1;
}

static bool zeros(const uint8_t *p, size_t n)
{
    static const uint8_t zero[4096];

    while (n >= sizeof(zero)) {
        if (memcmp(p, zero, sizeof(zero)) != 0)
            return false;
        p += sizeof(zero);
        n -= sizeof(zero);
    }
    return memcmp(p, zero, n) == 0;
}

/* Bytes of the SEGMENT record at the start of s, or 0 when there is none valid. */
static size_t seg_start(const struct seg *s)
{
    struct rf_jrec rec;
    int rc = s->size ? rf_jrec_decode(s->p, s->size, &rec) : 0;

    return rc > 0 && rec.type == RF_JREC_SEGMENT ? (size_t)rc : 0;
}

/* Anything past the SEGMENT record (or anything at all when there is none). */
static bool seg_has_data(const struct seg *s)
{
    size_t start = seg_start(s);

    return s->size > start && !zeros(s->p + start, s->size - start);
}

/* Find the tail segment: the last with data. */
static int find_tail(struct reader *r)
{
    for (size_t i = r->n; i-- > 0;) {
        struct seg s;
        int rc = seg_open(r, r->nos[i], false, &s);
        if (rc < 0)
            return rc;
        bool data = seg_has_data(&s);
        seg_close(&s);
        if (data) {
            r->tail = r->nos[i];
            return 0;
        }
    }
    r->tail = 0;
    return 0;
}

/* Is there a valid BATCH record anywhere in s at or after `from`? */
static bool valid_batch_after(const struct seg *s, size_t from)
{
    for (size_t off = (from + 7) & ~(size_t)7; off + RF_JREC_HEADER_BYTES <= s->size; off += 8) {
        struct rf_jrec rec;
        if (rf_jrec_decode(s->p + off, s->size - off, &rec) > 0 && rec.type == RF_JREC_BATCH)
            return true;
    }
    return false;
}

/* Check the batch at off: its size in *bytes, or a reason it is not whole. */
static const char *batch_check(const struct seg *s, size_t off, size_t *bytes, uint32_t *nrec)
{
    struct rf_jrec rec;
    struct rf_jr jr;
    uint64_t len;
    uint32_t records;
    int rc = rf_jrec_decode(s->p + off, s->size - off, &rec);

    if (rc <= 0)
        return rc == -2 ? "the batch record is cut short" : "the batch record is damaged";
    if (rec.type != RF_JREC_BATCH)
        return "a record where a batch should begin";
    rf_jr_init(&jr, &rec);
    if (rf_jr_u64(&jr, &len) < 0 || rf_jr_u32(&jr, &records) < 0 || !rf_jr_done(&jr))
        return "the batch record's payload is malformed";
    if (len < (uint64_t)rc || len > s->size - off || (len & 7))
        return "the batch reaches past the end of its segment";
    size_t p = off + (size_t)rc, end = off + (size_t)len;
    uint32_t n = 0;
    while (p < end) {
        rc = rf_jrec_decode(s->p + p, end - p, &rec);
        if (rc <= 0)
            return rc == 0 ? "zeros inside a batch" : "a damaged record inside a batch";
        if (rec.type == RF_JREC_BATCH || rec.type == RF_JREC_SEGMENT)
            return "a frame record inside a batch";
        p += (size_t)rc;
        n++;
    }
    if (n != records)
        return "the batch holds a different number of records than it says";
    *bytes = (size_t)len;
    *nrec = records;
    return NULL;
}

/* Hand over the records of the whole batch at off. */
static int batch_deliver(struct reader *r, const struct seg *s, size_t off, size_t bytes)
{
    struct rf_jrec rec;
    size_t p = off + (size_t)rf_jrec_decode(s->p + off, bytes, &rec), end = off + bytes;

    while (p < end) {
        int rc = rf_jrec_decode(s->p + p, end - p, &rec);
        RF_ASSERT(rc > 0); /* batch_check passed */
        int u = r->fn ? r->fn(r->ud, s->no, p, &rec) : 0;
        if (u < 0)
            return u;
        r->rep->records++;
        p += (size_t)rc;
    }
    r->rep->batches++;
    r->rep->bytes += bytes;
    return 0;
}

static int cut(struct reader *r, struct seg *s, size_t off)
{
    char name[RF_JOURNAL_NAME_BYTES], path[PATH_MAX];
    int fd, rc = 0;

    rf_journal_segment_name(s->no, name);
    snprintf(path, sizeof(path), "%s/%s", r->dir, name);
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)off) < 0 || fsync(fd) < 0)
        rc = -errno;
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Move every segment after `no` into dir/damaged/. */
static int move_later(struct reader *r, uint64_t no)
{
    char name[RF_JOURNAL_NAME_BYTES];
    int dfd = open(r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), ddfd = -1, rc = 0;

    if (dfd < 0)
        return -errno;
    if ((mkdirat(dfd, "damaged", 0750) < 0 && errno != EEXIST) ||
        (ddfd = openat(dfd, "damaged", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        rc = -errno;
        goto out;
    }
    for (size_t i = 0; i < r->n; i++) {
        if (r->nos[i] <= no)
            continue;
        rf_journal_segment_name(r->nos[i], name);
        if (renameat(dfd, name, ddfd, name) < 0) {
            rc = -errno;
            goto out;
        }
        r->rep->moved_segments++;
    }
    if (fsync(dfd) < 0)
        rc = -errno;
out:
    if (ddfd >= 0)
        close(ddfd);
    close(dfd);
    return rc;
}

/* A batch at off of s is not whole. Returns 1 (torn, cut: stop reading), or -EBADMSG. */
static int damaged(struct reader *r, struct seg *s, size_t off, const char *why)
{
    struct rf_jread_report *rep = r->rep;
    bool later = s->no < r->tail || valid_batch_after(s, off + 8);

    if (!later) {
        rep->torn = true;
        rep->torn_segment = s->no;
        rep->torn_offset = off;
        rep->torn_bytes = s->size - off;
        rf_log_warn("\"msg\":\"journal: torn tail cut\",\"dir\":\"%s\",\"segment\":%llu,"
                    "\"offset\":%zu,\"why\":\"%s\"",
                    r->dir, (unsigned long long)s->no, off, why);
        int rc = cut(r, s, off);
        return rc < 0 ? rc : 1;
    }
    rep->corrupt = true;
    rep->bad_segment = s->no;
    rep->bad_offset = off;
    snprintf(rep->why, sizeof(rep->why), "%s", why);
    if (!r->repair)
        return -EBADMSG;
    int rc = cut(r, s, off);
    if (rc == 0)
        rc = move_later(r, s->no);
    if (rc < 0)
        return rc;
    rep->repaired = true;
    rf_log_warn("\"msg\":\"journal repaired: data cut at the damage, later segments moved to "
                "damaged/\",\"dir\":\"%s\",\"segment\":%llu,\"offset\":%zu,\"moved\":%llu",
                r->dir, (unsigned long long)s->no, off, (unsigned long long)rep->moved_segments);
    return 1;
}

/* Read one segment. 0 go on, 1 stop (a torn tail or a repair), < 0 error. */
static int read_segment(struct reader *r, uint64_t no)
{
    struct seg s;
    int rc = seg_open(r, no, false, &s);

    if (rc < 0)
        return rc;
    r->rep->segments++;
    size_t off = seg_start(&s);
    if (off == 0 && s.size) {
        rc = seg_has_data(&s) ? damaged(r, &s, 0, "no valid segment record") : 0;
        seg_close(&s);
        return rc;
    }
    while (off + RF_JREC_HEADER_BYTES <= s.size) {
        if (zeros(s.p + off, RF_JREC_HEADER_BYTES)) {
            /* The data ends here: the rest must be zeros too. */
            if (!zeros(s.p + off, s.size - off)) {
                rc = damaged(r, &s, off, "data after the end of the data");
                break;
            }
            break;
        }
        size_t bytes = 0;
        uint32_t nrec = 0;
        const char *why = batch_check(&s, off, &bytes, &nrec);
        if (why) {
            rc = damaged(r, &s, off, why);
            break;
        }
        if ((rc = batch_deliver(r, &s, off, bytes)) < 0)
            break;
        off += bytes;
    }
    if (rc == 0 && off < s.size && off + RF_JREC_HEADER_BYTES > s.size && !zeros(s.p + off, s.size - off))
        rc = damaged(r, &s, off, "a partial header at the end of the segment");
    seg_close(&s);
    return rc;
}

int rf_jread_dir(const char *dir, bool repair, rf_jread_fn fn, void *ud,
                 struct rf_jread_report *rep)
{
    struct reader r = {.dir = dir, .repair = repair, .fn = fn, .ud = ud, .rep = rep};
    int rc;

    memset(rep, 0, sizeof(*rep));
    if ((rc = list_segments(&r)) < 0 || (rc = find_tail(&r)) < 0)
        goto out;
    for (size_t i = 0; i < r.n && r.tail && r.nos[i] <= r.tail; i++) {
        rc = read_segment(&r, r.nos[i]);
        if (rc != 0)
            break;
    }
    if (rc > 0)
        rc = 0;
out:
    rf_free(r.nos);
    return rc;
}
