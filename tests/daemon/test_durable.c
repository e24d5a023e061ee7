/*
 * tests/daemon/test_durable.c: nothing accepted is ever lost. ringflowd against its own
 * journal: crashes, restarts, damaged files, a full disk and failing I/O.
 *
 * The crash test: submitter threads post executions over keep-alive connections (short
 * chains, and delays that are still running when the crash comes, some with idempotency
 * keys) and remember every id answered 202; the daemon is SIGKILLed at a random moment,
 * restarted on the same data directory, and every remembered execution must exist, reach
 * a terminal state and appear once in the listing; a remembered idempotency key must give
 * back its execution. RF_CRASH_ITERATIONS sets the number of rounds (default 4 here; `make
 * crash-test` runs 100).
 *
 * Then, one daemon per test: a graceful restart keeps everything, executions older than
 * --executions-max come back from the journal, a torn tail is cut, corruption in the
 * middle stops start-up with the segment and offset (and --repair-journal starts), a full
 * disk (a 4 MiB tmpfs) answers 507 and recovers, and injected I/O errors (--journal-faults:
 * EIO on an fdatasync, EIO on a write, short writes) behave as storage/journal.h says: a
 * failed fdatasync is never retried, the daemon restarts itself into recovery, and what
 * was acknowledged before is there after.
 *
 * RF_TEST_CONCURRENT: the submitters are threads, and the daemon's shards too.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/support/daemon.h"

#define WAIT_MS        20000
#define IDS_MAX        20000
#define SUBMITTERS     2
#define PATH_BYTES     512u
#define ITERATIONS_DEF 4

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

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* --- acknowledged submissions -------------------------------------------------------------- */

struct acked {
    pthread_mutex_t mu;
    char (*ids)[32];
    char (*keys)[32]; /* "" when submitted without an idempotency key */
    uint32_t n;
};

static struct acked *acked_new(void)
{
    struct acked *a = calloc(1, sizeof(*a));

    assert_non_null(a);
    a->ids = calloc(IDS_MAX, sizeof(*a->ids));
    a->keys = calloc(IDS_MAX, sizeof(*a->keys));
    assert_non_null(a->ids);
    assert_non_null(a->keys);
    pthread_mutex_init(&a->mu, NULL);
    return a;
}

static void acked_free(struct acked *a)
{
    pthread_mutex_destroy(&a->mu);
    free(a->ids);
    free(a->keys);
    free(a);
}

static uint32_t acked_count(struct acked *a)
{
    pthread_mutex_lock(&a->mu);
    uint32_t n = a->n;
    pthread_mutex_unlock(&a->mu);
    return n;
}

struct submitter {
    pthread_t t;
    struct rfd *d;
    struct acked *a;
    uint32_t no;
    uint32_t sent, ok;
};

/* Post over one keep-alive connection until it breaks (the crash). */
static void *submit_loop(void *arg)
{
    struct submitter *s = arg;
    int fd = rfd_connect(s->d);
    char req[1024], body[256], key[32];

    if (fd < 0)
        return NULL;
    for (uint32_t i = 0; acked_count(s->a) < IDS_MAX - 64; i++) {
        const char *graph = i % 3 == 2 ? "slow" : "chain3";
        key[0] = '\0';
        if (i % 3 == 2)
            snprintf(body, sizeof(body), "{\"inputs\": {\"ms\": %u}}", 200 + i % 5 * 100);
        else if (i % 5 == 0) {
            snprintf(key, sizeof(key), "k-%u-%u-%u", s->no, (unsigned)getpid(), i);
            snprintf(body, sizeof(body), "{\"inputs\": {\"n\": %u}, \"idempotency_key\": \"%s\"}",
                     i, key);
        } else
            snprintf(body, sizeof(body), "{\"inputs\": {\"n\": %u}}", i);
        snprintf(req, sizeof(req),
                 "POST /v1/graphs/%s/executions HTTP/1.1\r\nHost: x\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                 graph, strlen(body), body);
        struct rfd_resp r;
        if (rfd_send_str(fd, req) < 0 || rfd_read_resp(fd, &r, 5000, false) < 0)
            break;
        s->sent++;
        if (r.status == 202) {
            json_t *j = rfd_json(&r);
            const char *id = jstr(j, "id");
            if (id) {
                pthread_mutex_lock(&s->a->mu);
                snprintf(s->a->ids[s->a->n], sizeof(*s->a->ids), "%s", id);
                snprintf(s->a->keys[s->a->n], sizeof(*s->a->keys), "%s", key);
                s->a->n++;
                pthread_mutex_unlock(&s->a->mu);
                s->ok++;
            }
            json_decref(j);
        }
        rfd_resp_free(&r);
    }
    rfd_close(fd);
    return NULL;
}

/* Wait for a terminal result of id; its status. */
static char *terminal_status(struct rfd *d, const char *id)
{
    char path[PATH_BYTES];
    int64_t deadline = now_ms() + WAIT_MS;
    struct rfd_resp r;

    snprintf(path, sizeof(path), "/v1/executions/%s/result?wait_ms=2000", id);
    for (;;) {
        if (rfd_request(d, "GET", path, NULL, &r) != 0)
            fail_msg("GET %s failed", path);
        if (r.status == 200) {
            json_t *j = rfd_json(&r);
            char *st = strdup(jstr(j, "status"));
            json_decref(j);
            rfd_resp_free(&r);
            return st;
        }
        if (r.status != 202)
            fail_msg("execution %s after the restart: %d %s", id, r.status, r.body);
        rfd_resp_free(&r);
        if (now_ms() > deadline)
            fail_msg("execution %s not terminal after %d ms", id, WAIT_MS);
    }
}

/* Every acknowledged execution exists, ends, and is listed once. */
static void check_acked(struct rfd *d, const struct acked *a)
{
    for (uint32_t i = 0; i < a->n; i++) {
        char *st = terminal_status(d, a->ids[i]);
        assert_true(strcmp(st, "succeeded") == 0 || strcmp(st, "canceled") == 0 ||
                    strcmp(st, "failed") == 0);
        free(st);
    }
    /* The listing, page by page: no id twice. */
    json_t *seen = json_object();
    char path[PATH_BYTES], next[64] = "";
    for (int pages = 0; pages < 1000; pages++) {
        struct rfd_resp r;
        snprintf(path, sizeof(path), "/v1/executions?limit=500%s%s", next[0] ? "&after=" : "",
                 next);
        assert_int_equal(rfd_request(d, "GET", path, NULL, &r), 0);
        assert_int_equal(r.status, 200);
        json_t *j = rfd_json(&r);
        rfd_resp_free(&r);
        size_t k;
        json_t *e;
        json_array_foreach(json_object_get(j, "executions"), k, e) {
            const char *id = jstr(e, "id");
            if (json_object_get(seen, id))
                fail_msg("execution %s listed twice", id);
            json_object_set_new(seen, id, json_true());
        }
        const char *nx = jstr(j, "next");
        snprintf(next, sizeof(next), "%s", nx ? nx : "");
        json_decref(j);
        if (!next[0])
            break;
    }
    json_decref(seen);
}

/* A remembered idempotency key gives back its execution (200). */
static void check_keys(struct rfd *d, const struct acked *a)
{
    uint32_t checked = 0;

    for (uint32_t i = 0; i < a->n && checked < 20; i++) {
        if (!a->keys[i][0])
            continue;
        char body[256];
        struct rfd_resp r;
        snprintf(body, sizeof(body), "{\"inputs\": {\"n\": 0}, \"idempotency_key\": \"%s\"}",
                 a->keys[i]);
        assert_int_equal(rfd_request(d, "POST", "/v1/graphs/chain3/executions", body, &r), 0);
        if (r.status != 200)
            fail_msg("key %s: %d %s", a->keys[i], r.status, r.body);
        json_t *j = rfd_json(&r);
        assert_string_equal(jstr(j, "id"), a->ids[i]);
        json_decref(j);
        rfd_resp_free(&r);
        checked++;
    }
}

static int iterations(void)
{
    const char *s = getenv("RF_CRASH_ITERATIONS");
    int n = s ? atoi(s) : ITERATIONS_DEF;

    return n > 0 ? n : ITERATIONS_DEF;
}

/* --- the crash test ----------------------------------------------------------------------- */

static void test_crash_loop(void **state)
{
    struct rfd d;
    struct acked *a = acked_new();
    int rounds = iterations();
    uint64_t rng = (uint64_t)now_ms() | 1;

    (void)state;
    assert_int_equal(rfd_start(&d, RF_BUILD_DIR, NULL), 0);
    for (int round = 0; round < rounds; round++) {
        struct submitter s[SUBMITTERS];
        for (uint32_t k = 0; k < SUBMITTERS; k++) {
            s[k] = (struct submitter){.d = &d, .a = a, .no = (uint32_t)round * 10 + k};
            assert_int_equal(pthread_create(&s[k].t, NULL, submit_loop, &s[k]), 0);
        }
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        sleep_ms(100 + (int)(rng >> 33) % 400);
        rfd_kill(&d);
        for (uint32_t k = 0; k < SUBMITTERS; k++)
            pthread_join(s[k].t, NULL);
        int st = 0;
        int rc = rfd_restart(&d, RF_BUILD_DIR, NULL, &st);
        if (rc != 0)
            fail_msg("round %d: the daemon did not come back (rc %d, status %d)", round, rc, st);
        check_acked(&d, a);
    }
    print_message("crash test: %d rounds, %u executions acknowledged, all found\n", rounds, a->n);
    check_keys(&d, a);
    assert_int_equal(rfd_stop(&d), 0);
    acked_free(a);
}

/* --- one daemon per test ------------------------------------------------------------------ */

static char *submit(struct rfd *d, const char *graph, const char *inputs)
{
    char *id = rfd_submit(d, graph, inputs);

    assert_non_null(id);
    return id;
}

static void test_graceful_restart_keeps_everything(void **state)
{
    struct rfd d;
    char *ids[10];

    (void)state;
    assert_int_equal(rfd_start(&d, RF_BUILD_DIR, NULL), 0);
    /* A graph registered over the API comes back with its version. */
    struct rfd_resp r;
    assert_int_equal(rfd_request(&d, "PUT", "/v1/graphs/mine",
                                 "{\"nodes\": [{\"id\": \"a\", \"kind\": \"noop\"}]}", &r),
                     0);
    assert_int_equal(r.status, 201);
    rfd_resp_free(&r);
    for (int i = 0; i < 10; i++)
        ids[i] = submit(&d, i % 2 ? "chain3" : "mine", "{}");
    for (int i = 0; i < 10; i++)
        free(terminal_status(&d, ids[i]));
    kill(d.pid, SIGTERM);
    assert_int_equal(rfd_wait_exit(&d, WAIT_MS), 0);
    assert_int_equal(rfd_restart(&d, RF_BUILD_DIR, NULL, NULL), 0);
    for (int i = 0; i < 10; i++) {
        char *st = terminal_status(&d, ids[i]);
        assert_string_equal(st, "succeeded");
        free(st);
        free(ids[i]);
    }
    assert_int_equal(rfd_request(&d, "GET", "/v1/graphs/mine", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    rfd_resp_free(&r);
    assert_int_equal(rfd_stop(&d), 0);
}

/* Executions past --executions-max leave memory and are read back from the journal. */
static void test_old_executions_from_disk(void **state)
{
    static const char *const flags[] = {"--executions-max", "5", NULL};
    struct rfd d;
    char *first, path[PATH_BYTES];

    (void)state;
    assert_int_equal(rfd_start(&d, RF_BUILD_DIR, flags), 0);
    first = submit(&d, "chain3", "{\"n\": 77}");
    free(terminal_status(&d, first));
    for (int i = 0; i < 30; i++) {
        char *id = submit(&d, "chain3", "{\"n\": 1}");
        free(terminal_status(&d, id));
        free(id);
    }
    /* Not in memory any more (the listing holds 5), yet every endpoint answers. */
    snprintf(path, sizeof(path), "/v1/executions/%s/result", first);
    struct rfd_resp r;
    assert_int_equal(rfd_request(&d, "GET", path, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *j = rfd_json(&r);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "output"), "n")), 77);
    json_decref(j);
    rfd_resp_free(&r);
    snprintf(path, sizeof(path), "/v1/executions/%s/events", first);
    assert_int_equal(rfd_request(&d, "GET", path, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    j = rfd_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "events")), 9);
    json_decref(j);
    rfd_resp_free(&r);
    snprintf(path, sizeof(path), "/v1/executions/%s", first);
    assert_int_equal(rfd_request(&d, "GET", path, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    rfd_resp_free(&r);
    /* An id of the right shape that never existed: 404, not a hang. */
    assert_int_equal(rfd_request(&d, "GET", "/v1/executions/01m96vjpda000g000004j7sx0z", NULL, &r),
                     0);
    assert_int_equal(r.status, 404);
    rfd_resp_free(&r);
    free(first);
    assert_int_equal(rfd_stop(&d), 0);
}

/* Submit chain3 with idempotency key `key`; the answer's status code and id. */
static char *submit_key(struct rfd *d, const char *key, int *code, char *status, size_t n)
{
    char body[256];
    struct rfd_resp r;

    snprintf(body, sizeof(body), "{\"inputs\": {\"n\": 5}, \"idempotency_key\": \"%s\"}", key);
    assert_int_equal(rfd_request(d, "POST", "/v1/graphs/chain3/executions", body, &r), 0);
    *code = r.status;
    json_t *j = rfd_json(&r);
    char *id = strdup(jstr(j, "id"));
    snprintf(status, n, "%s", jstr(j, "status"));
    json_decref(j);
    rfd_resp_free(&r);
    return id;
}

/* An idempotency key outlives its execution's place in memory, and a restart: the
 * repeat still gets 200 and the first execution, for as long as the journal keeps it. */
static void test_idempotency_beyond_memory(void **state)
{
    static const char *const flags[] = {"--executions-max", "3", NULL};
    char st[32];
    struct rfd d;
    int code;

    (void)state;
    assert_int_equal(rfd_start(&d, RF_BUILD_DIR, flags), 0);
    char *first = submit_key(&d, "order-1", &code, st, sizeof(st));
    assert_int_equal(code, 202);
    free(terminal_status(&d, first));
    for (int i = 0; i < 12; i++) {
        char *id = submit(&d, "chain3", "{\"n\": 1}");
        free(terminal_status(&d, id));
        free(id);
    }
    char *again = submit_key(&d, "order-1", &code, st, sizeof(st));
    assert_int_equal(code, 200);
    assert_string_equal(again, first);
    assert_string_equal(st, "succeeded");
    free(again);
    kill(d.pid, SIGTERM);
    assert_int_equal(rfd_wait_exit(&d, WAIT_MS), 0);
    assert_int_equal(rfd_restart(&d, RF_BUILD_DIR, flags, NULL), 0);
    again = submit_key(&d, "order-1", &code, st, sizeof(st));
    assert_int_equal(code, 200);
    assert_string_equal(again, first);
    free(again);
    /* Another key is another execution. */
    again = submit_key(&d, "order-2", &code, st, sizeof(st));
    assert_int_equal(code, 202);
    assert_string_not_equal(again, first);
    free(again);
    free(first);
    assert_int_equal(rfd_stop(&d), 0);
}

/* The segment files of shard `shard` (numbers, sorted), in d's data dir. */
static uint32_t segments(const struct rfd *d, uint32_t shard, uint64_t *out, uint32_t max)
{
    char path[PATH_BYTES];
    uint32_t n = 0;

    snprintf(path, sizeof(path), "%s/journal/%u", d->dir, shard);
    DIR *dp = opendir(path);
    struct dirent *e;
    assert_non_null(dp);
    while ((e = readdir(dp)) && n < max) {
        char *end;
        unsigned long long v = strtoull(e->d_name, &end, 10);
        if (end != e->d_name && strcmp(end, ".seg") == 0)
            out[n++] = v;
    }
    closedir(dp);
    for (uint32_t i = 1; i < n; i++)
        for (uint32_t k = i; k > 0 && out[k - 1] > out[k]; k--) {
            uint64_t t = out[k];
            out[k] = out[k - 1];
            out[k - 1] = t;
        }
    return n;
}

static int open_segment(const struct rfd *d, uint32_t shard, uint64_t no)
{
    char path[PATH_BYTES];

    snprintf(path, sizeof(path), "%s/journal/%u/%010llu.seg", d->dir, shard,
             (unsigned long long)no);
    return open(path, O_RDWR);
}

/* Bytes written in a segment: up to the first 24 zero bytes at an 8-byte boundary. */
static off_t data_end(int fd)
{
    uint8_t buf[1 << 16];
    off_t off = 0;

    for (;;) {
        ssize_t n = pread(fd, buf, sizeof(buf), off);
        if (n <= 0)
            return off;
        for (ssize_t i = 0; i + 24 <= n; i += 8) {
            bool zero = true;
            for (int k = 0; k < 24 && zero; k++)
                zero = buf[i + k] == 0;
            if (zero)
                return off + i;
        }
        off += n - 24;
    }
}

/* A crash in the middle of a write: the daemon starts, cuts it, and loses nothing that was
 * acknowledged. */
static void test_torn_tail(void **state)
{
    struct rfd d;
    char *ids[6];
    uint64_t segs[16];

    (void)state;
    assert_int_equal(rfd_start(&d, RF_BUILD_DIR, NULL), 0);
    for (int i = 0; i < 6; i++) {
        ids[i] = submit(&d, "chain3", "{}");
        free(terminal_status(&d, ids[i]));
    }
    rfd_kill(&d);
    /* Append half a batch to the end of shard 0's data, as a cut write would leave it. */
    uint32_t n = segments(&d, 0, segs, 16);
    assert_true(n >= 1);
    int fd = open_segment(&d, 0, segs[0]);
    assert_true(fd >= 0);
    off_t end = data_end(fd);
    uint8_t junk[300];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 7 + 1);
    junk[8] = 200; /* a plausible length */
    assert_int_equal(pwrite(fd, junk, sizeof(junk), end), (ssize_t)sizeof(junk));
    close(fd);
    assert_int_equal(rfd_restart(&d, RF_BUILD_DIR, NULL, NULL), 0);
    char *log = rfd_log(&d);
    assert_non_null(strstr(log, "torn tail cut"));
    free(log);
    for (int i = 0; i < 6; i++) {
        char *st = terminal_status(&d, ids[i]);
        assert_string_equal(st, "succeeded");
        free(st);
        free(ids[i]);
    }
    assert_int_equal(rfd_stop(&d), 0);
}

/* Damage before the tail: refuse to start, naming segment and offset; --repair-journal
 * starts. */
static void test_corruption_stops_start(void **state)
{
    static const char *const repair[] = {"--repair-journal", NULL};
    struct rfd d;
    uint64_t segs[16];
    int st = 0;

    (void)state;
    assert_int_equal(rfd_start(&d, RF_BUILD_DIR, NULL), 0);
    for (int i = 0; i < 20; i++) {
        char *id = submit(&d, "chain3", "{}");
        free(terminal_status(&d, id));
        free(id);
    }
    rfd_kill(&d);
    /* Flip a byte inside the first batch of shard 0 or 1, whichever holds data after it. */
    bool flipped = false;
    for (uint32_t shard = 0; shard < 2 && !flipped; shard++) {
        uint32_t n = segments(&d, shard, segs, 16);
        for (uint32_t k = 0; k < n && !flipped; k++) {
            int fd = open_segment(&d, shard, segs[k]);
            off_t end = data_end(fd);
            if (end > 4000) { /* segment record (64) + more than one batch */
                uint8_t b;
                assert_int_equal(pread(fd, &b, 1, 100), 1);
                b ^= 0x10;
                assert_int_equal(pwrite(fd, &b, 1, 100), 1);
                flipped = true;
            }
            close(fd);
        }
    }
    assert_true(flipped);
    assert_int_equal(rfd_restart(&d, RF_BUILD_DIR, NULL, &st), 1);
    assert_int_equal(st, 1);
    char *log = rfd_log(&d);
    assert_non_null(strstr(log, "journal corrupted"));
    assert_non_null(strstr(log, "\"segment\":"));
    assert_non_null(strstr(log, "\"offset\":"));
    free(log);
    assert_int_equal(rfd_restart(&d, RF_BUILD_DIR, repair, NULL), 0);
    log = rfd_log(&d);
    assert_non_null(strstr(log, "journal repaired"));
    free(log);
    assert_int_equal(rfd_stop(&d), 0);
}

/* A 4 MiB tmpfs fills up: submissions get 507 (never a lost 202), /readyz says so, and the
 * journal recovers. */
static void test_full_disk(void **state)
{
    char mnt[] = "/tmp/rf-full-XXXXXX";
    struct rfd d;
    struct acked *a = acked_new();
    uint32_t full = 0;

    (void)state;
    assert_non_null(mkdtemp(mnt));
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=4m") != 0) {
        rmdir(mnt);
        acked_free(a);
        skip(); /* needs CAP_SYS_ADMIN: said loudly by cmocka */
    }
    const char *flags[] = {"--data-dir", mnt, "--journal-segment-size", "1MiB", NULL};
    assert_int_equal(rfd_start(&d, RF_BUILD_DIR, flags), 0);
    for (int i = 0; i < 3000 && full < 20; i++) {
        struct rfd_resp r;
        assert_int_equal(rfd_request(&d, "POST", "/v1/graphs/chain3/executions",
                                     "{\"inputs\": {\"n\": 5}}", &r),
                         0);
        if (r.status == 202) {
            json_t *j = rfd_json(&r);
            snprintf(a->ids[a->n++], sizeof(*a->ids), "%s", jstr(j, "id"));
            json_decref(j);
        } else {
            if (r.status != 507)
                fail_msg("a full disk answered %d %s", r.status, r.body);
            full++;
        }
        rfd_resp_free(&r);
    }
    assert_true(full > 0);
    struct rfd_resp r;
    assert_int_equal(rfd_request(&d, "GET", "/readyz", NULL, &r), 0);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "storage_full"));
    rfd_resp_free(&r);
    print_message("full disk: %u accepted, then 507\n", a->n);
    rfd_kill(&d);
    assert_int_equal(rfd_restart(&d, RF_BUILD_DIR, flags, NULL), 0);
    check_acked(&d, a);
    assert_int_equal(rfd_stop(&d), 0);
    umount(mnt);
    rmdir(mnt);
    acked_free(a);
}

/* The n-th fdatasync (or write) fails: its submissions get 503, nothing later is
 * acknowledged, the daemon restarts itself into recovery, and everything acknowledged
 * before is there. */
static void failing_io(const char *fault)
{
    const char *flags[] = {"--journal-faults", fault, NULL};
    struct rfd d;
    struct acked *a = acked_new();
    uint32_t refused = 0;
    pid_t pid;

    assert_int_equal(rfd_start(&d, RF_BUILD_DIR, flags), 0);
    pid = d.pid;
    for (int i = 0; i < 40; i++) {
        struct rfd_resp r;
        if (rfd_request(&d, "POST", "/v1/graphs/chain3/executions", "{}", &r) != 0) {
            sleep_ms(50); /* restarting */
            continue;
        }
        if (r.status == 202) {
            json_t *j = rfd_json(&r);
            snprintf(a->ids[a->n++], sizeof(*a->ids), "%s", jstr(j, "id"));
            json_decref(j);
        } else {
            if (r.status != 503)
                fail_msg("%s: answered %d %s", fault, r.status, r.body);
            refused++;
        }
        rfd_resp_free(&r);
        sleep_ms(10);
    }
    assert_true(refused > 0);
    /* The same process (re-executed), ready again. */
    int64_t deadline = now_ms() + WAIT_MS;
    for (;;) {
        struct rfd_resp r;
        if (rfd_request(&d, "GET", "/readyz", NULL, &r) == 0) {
            int st = r.status;
            rfd_resp_free(&r);
            if (st == 200)
                break;
        }
        assert_true(now_ms() < deadline);
        sleep_ms(50);
    }
    assert_int_equal(d.pid, pid);
    char *log = rfd_log(&d);
    assert_non_null(strstr(log, "restarting into recovery"));
    free(log);
    check_acked(&d, a);
    print_message("%s: %u acknowledged and found after the restart, %u refused\n", fault, a->n,
                  refused);
    assert_int_equal(rfd_stop(&d), 0);
    acked_free(a);
}

static void test_eio_on_fsync(void **state)
{
    (void)state;
    failing_io("eio_sync=6");
}

static void test_eio_on_write(void **state)
{
    (void)state;
    failing_io("eio_write=6");
}

static void test_short_writes(void **state)
{
    static const char *const flags[] = {"--journal-faults", "short_write=2", NULL};
    struct rfd d;
    char *ids[10];

    (void)state;
    assert_int_equal(rfd_start(&d, RF_BUILD_DIR, flags), 0);
    for (int i = 0; i < 10; i++)
        ids[i] = submit(&d, "chain3", "{}");
    rfd_kill(&d);
    assert_int_equal(rfd_restart(&d, RF_BUILD_DIR, NULL, NULL), 0);
    for (int i = 0; i < 10; i++) {
        char *st = terminal_status(&d, ids[i]);
        assert_string_equal(st, "succeeded");
        free(st);
        free(ids[i]);
    }
    assert_int_equal(rfd_stop(&d), 0);
}

static void test_durability_none(void **state)
{
    static const char *const flags[] = {"--durability", "none", NULL};
    struct rfd d;
    char *ids[10];

    (void)state;
    assert_int_equal(rfd_start(&d, RF_BUILD_DIR, flags), 0);
    for (int i = 0; i < 10; i++)
        ids[i] = submit(&d, "chain3", "{}");
    for (int i = 0; i < 10; i++)
        free(terminal_status(&d, ids[i]));
    /* A process crash keeps the page cache: nothing is lost even without fdatasync. */
    rfd_kill(&d);
    assert_int_equal(rfd_restart(&d, RF_BUILD_DIR, flags, NULL), 0);
    for (int i = 0; i < 10; i++) {
        free(terminal_status(&d, ids[i]));
        free(ids[i]);
    }
    assert_int_equal(rfd_stop(&d), 0);
}

/* Segments past --retention are deleted, and their executions are gone (404); a running
 * execution keeps the segments it needs, and ends normally. */
static void test_retention(void **state)
{
    static const char *const flags[] = {"--retention", "1s", "--journal-segment-size", "1MiB",
                                        "--executions-max", "100", NULL};
    struct rfd d;
    uint64_t segs[256];
    char *first, *running, *last = NULL;

    (void)state;
    assert_int_equal(rfd_start(&d, RF_BUILD_DIR, flags), 0);
    running = submit(&d, "slow", "{\"ms\": 4000}");
    first = submit(&d, "chain3", "{}");
    free(terminal_status(&d, first));
    /* About 2.5 KiB of journal per execution: a few segments per shard. */
    for (int i = 0; i < 1500; i++) {
        free(last);
        last = submit(&d, "chain3", "{}");
    }
    free(terminal_status(&d, last));
    uint32_t before = segments(&d, 0, segs, 256) + segments(&d, 1, segs, 256);
    /* The window passes while the slow one still runs: nothing it needs may go. */
    sleep_ms(2500);
    char *st = terminal_status(&d, running);
    assert_string_equal(st, "succeeded");
    free(st);
    int64_t deadline = now_ms() + WAIT_MS;
    uint32_t after;
    for (;;) {
        sleep_ms(300);
        after = segments(&d, 0, segs, 256) + segments(&d, 1, segs, 256);
        if (after < before || now_ms() > deadline)
            break;
    }
    print_message("retention: %u segments before, %u after\n", before, after);
    assert_true(after < before);
    /* The oldest finished execution is gone with its segment; the newest is not. */
    char path[PATH_BYTES];
    struct rfd_resp r;
    snprintf(path, sizeof(path), "/v1/executions/%s", first);
    deadline = now_ms() + WAIT_MS;
    for (;;) { /* it may still be among the newest kept in memory for a moment: wait */
        assert_int_equal(rfd_request(&d, "GET", path, NULL, &r), 0);
        int code = r.status;
        rfd_resp_free(&r);
        if (code == 404)
            break;
        assert_true(now_ms() < deadline);
        for (int i = 0; i < 200; i++)
            free(submit(&d, "chain3", "{}")); /* push it out of memory */
    }
    st = terminal_status(&d, last);
    free(st);
    free(first);
    free(running);
    free(last);
    assert_int_equal(rfd_stop(&d), 0);
}


int main(void)
{
    rfd_test_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_loop),
        cmocka_unit_test(test_graceful_restart_keeps_everything),
        cmocka_unit_test(test_old_executions_from_disk),
        cmocka_unit_test(test_idempotency_beyond_memory),
        cmocka_unit_test(test_torn_tail),
        cmocka_unit_test(test_corruption_stops_start),
        cmocka_unit_test(test_full_disk),
        cmocka_unit_test(test_eio_on_fsync),
        cmocka_unit_test(test_eio_on_write),
        cmocka_unit_test(test_short_writes),
        cmocka_unit_test(test_durability_none),
        cmocka_unit_test(test_retention),
    };
    int failed = cmocka_run_group_tests_name("durable", tests, NULL, NULL);

    return failed || rfd_failures() ? 1 : 0;
}
