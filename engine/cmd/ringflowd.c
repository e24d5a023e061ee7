/*
 * engine/cmd/ringflowd.c: the daemon. Wires the configuration (net/dcfg.h), the engine,
 * the execution store, the metrics, the API and the server together, registers the graph
 * documents of --graphs-dir, and waits for SIGTERM or SIGINT.
 *
 * Start-up: every signal the daemon handles is blocked before any thread starts, so shard
 * threads never take them; the main thread alone waits in sigwait(). The data directory is
 * created and locked (flock on data-dir/LOCK) so two daemons never share it.
 *
 * Graceful stop, on the first SIGTERM or SIGINT: /readyz turns 503 and submissions 503;
 * every shard closes its listener (no new connections); in-flight executions get
 * --drain-timeout to finish, after which they are canceled (their running nodes' I/O
 * too); then every connection is closed, the shards exit, and the process exits 0. A
 * second signal during the drain exits at once with status 1 (forced).
 *
 * Exit codes: 0 after a graceful stop, 1 when start-up fails (address in use, data dir
 * locked, io_uring unavailable...), 2 for a bad flag or variable.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/internal.h"
#include "net/api.h"
#include "net/dcfg.h"
#include "net/metrics.h"
#include "net/rbridge.h"
#include "net/server.h"
#include "net/sjournal.h"
#include "net/store.h"
#include "net/kafka.h"
#include "net/triggers.h"

#define GRAPH_FILES_MAX   1024
#define GRAPH_FILE_BYTES  (1u << 20)
#define ACCEPT_STOP_WAIT_MS 2000u

extern char **environ;

struct daemon {
    struct rf_dcfg cfg;
    rf_engine *eng;
    struct rf_metrics *m;
    struct rf_store *st;
    struct rf_api *api;
    struct rf_server *srv;
    struct rf_sjournal *sj;
    struct rf_rbridge *rb;
    struct rf_triggers *triggers;
    struct rf_kafka *kafka;
    struct rf_journal_faults faults;
    int lock_fd;
};

#define FAILURE_CHECK_MS 200 /* how often the main thread looks for a failed journal */
#define REDIS_BACKOFF_MIN_MS 50u    /* first reconnect delay; doubles ... */
#define REDIS_BACKOFF_MAX_MS 2000u  /* ... up to this */
#define REDIS_PENDING_MAX    65536u /* commands in flight per connection */

/* --- the data directory -------------------------------------------------------------------- */

static int mkdirs(const char *path)
{
    char tmp[RF_DCFG_PATH_BYTES];

    snprintf(tmp, sizeof(tmp), "%s", path);
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

static int data_dir_lock(struct daemon *d)
{
    char path[RF_DCFG_PATH_BYTES + 8];
    int rc = mkdirs(d->cfg.data_dir);

    if (rc < 0) {
        rf_log_error("\"msg\":\"cannot create the data directory\",\"path\":\"%s\",\"err\":\"%s\"",
                     d->cfg.data_dir, strerror(-rc));
        return rc;
    }
    snprintf(path, sizeof(path), "%s/LOCK", d->cfg.data_dir);
    d->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (d->lock_fd < 0 || flock(d->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        rc = -errno;
        rf_log_error("\"msg\":\"the data directory is in use by another ringflowd\","
                     "\"path\":\"%s\",\"err\":\"%s\"",
                     d->cfg.data_dir, strerror(-rc));
        return rc;
    }
    return 0;
}

/* --- graph documents from --graphs-dir ------------------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;

    if (!f)
        return NULL;
    buf = malloc(GRAPH_FILE_BYTES + 1);
    if (buf) {
        *len = fread(buf, 1, GRAPH_FILE_BYTES + 1, f);
        if (*len > GRAPH_FILE_BYTES || ferror(f)) {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Register one file; 1 registered, 0 not yet (a sub-graph it calls may come later),
 * -1 invalid for good. */
static int register_one(struct daemon *d, const char *path, bool last_pass)
{
    size_t len = 0;
    char *text = read_file(path, &len);
    rf_diag diag;
    rf_plan *p = NULL;
    bool created;
    int rc;

    if (!text) {
        rf_log_error("\"msg\":\"cannot read graph file\",\"path\":\"%s\"", path);
        return -1;
    }
    rf_diag_init(&diag);
    rc = rf_graph_register(d->eng, text, len, &diag, &p, &created);
    free(text);
    if (rc == 0 && created && d->sj && (rc = rf_sjournal_graph_wait(d->sj, p, 30000)) < 0) {
        rf_log_error("\"msg\":\"cannot journal a graph file\",\"path\":\"%s\",\"err\":\"%s\"",
                     path, strerror(-rc));
        rf_plan_release(p);
        rf_diag_free(&diag);
        return -1;
    }
    if (rc == 0) {
        rf_log_info("\"msg\":\"graph registered\",\"path\":\"%s\",\"graph\":\"%s\","
                    "\"version\":%u",
                    path, rf_plan_name(p), rf_plan_version(p));
        rf_plan_release(p);
        rf_diag_free(&diag);
        return 1;
    }
    bool retry = false;
    for (uint32_t i = 0; i < diag.count; i++)
        retry |= strcmp(diag.items[i].code, "unknown_graph") == 0;
    if (last_pass || !retry)
        for (uint32_t i = 0; i < diag.count; i++)
            rf_log_error("\"msg\":\"invalid graph file\",\"path\":\"%s\",\"pointer\":\"%s\","
                         "\"code\":\"%s\"",
                         path, diag.items[i].pointer, diag.items[i].code);
    rf_diag_free(&diag);
    return retry && !last_pass ? 0 : -1;
}

/* Register every *.json of the directory, in passes so that callees come before callers. */
static int register_dir(struct daemon *d)
{
    const char *dir = d->cfg.graphs_dir;
    char *names[GRAPH_FILES_MAX];
    int state[GRAPH_FILES_MAX] = {0};
    uint32_t n = 0, bad = 0;
    struct dirent *e;
    DIR *dp = opendir(dir);

    if (!dp) {
        rf_log_error("\"msg\":\"cannot open --graphs-dir\",\"path\":\"%s\",\"err\":\"%s\"", dir,
                     strerror(errno));
        return -errno;
    }
    while ((e = readdir(dp)) && n < GRAPH_FILES_MAX) {
        size_t l = strlen(e->d_name);
        if (l > 5 && strcmp(e->d_name + l - 5, ".json") == 0 && e->d_name[0] != '.' &&
            asprintf(&names[n], "%s/%s", dir, e->d_name) > 0)
            n++;
    }
    closedir(dp);
    qsort(names, n, sizeof(names[0]), name_cmp);
    for (bool progress = true; progress;) {
        progress = false;
        for (uint32_t i = 0; i < n; i++)
            if (state[i] == 0 && (state[i] = register_one(d, names[i], false)) == 1)
                progress = true;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (state[i] == 0)
            state[i] = register_one(d, names[i], true);
        bad += state[i] < 0;
        free(names[i]);
    }
    return bad ? -EINVAL : 0;
}

/* --- wiring --------------------------------------------------------------------------------- */

static void engine_config(const struct rf_dcfg *c, rf_config *ec)
{
    memset(ec, 0, sizeof(*ec));
    ec->shards = c->shards;
    ec->no_pin_threads = c->no_pin;
    ec->ring_entries = c->ring_entries;
    ec->inflight_per_shard_max = c->inflight_per_shard;
    ec->log_level = (rf_log_level)c->log_level;
    ec->cache_bytes_max = c->cache_bytes_max;
    ec->cache_entries_max = c->cache_entries_max;
    ec->http_timeout_ms = c->http_timeout_ms;
    ec->http_response_bytes_max = c->http_response_max;
}

static void server_config(const struct rf_dcfg *c, struct rf_server_config *sc)
{
    memset(sc, 0, sizeof(*sc));
    sc->host = c->listen_host;
    sc->port = c->listen_port;
    sc->lim.line_bytes_max = c->request_line_max;
    sc->lim.header_bytes_max = c->header_bytes_max;
    sc->lim.headers_max = c->headers_max;
    sc->body_bytes_max = c->body_max;
    sc->header_timeout_ms = c->header_timeout_ms;
    sc->idle_timeout_ms = c->idle_timeout_ms;
    sc->conns_max = c->conns_per_shard_max;
    sc->out_bytes_max = c->out_queue_max;
    sc->ws_out_bytes_max = c->ws_queue_max;
    sc->ws_msg_bytes_max = c->ws_msg_max;
}


/* --journal-faults "eio_sync=3,short_write=2": testing only. */
static int parse_faults(const char *spec, struct rf_journal_faults *f)
{
    char buf[RF_DCFG_URL_BYTES], *save = NULL;

    memset(f, 0, sizeof(*f));
    snprintf(buf, sizeof(buf), "%s", spec);
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        char *end;
        if (!eq)
            return -EINVAL;
        *eq = '\0';
        unsigned long long n = strtoull(eq + 1, &end, 10);
        if (*end || n == 0)
            return -EINVAL;
        if (strcmp(tok, "short_write") == 0)
            f->short_write_at = n;
        else if (strcmp(tok, "eio_write") == 0)
            f->eio_write_at = n;
        else if (strcmp(tok, "eio_sync") == 0)
            f->eio_sync_at = n;
        else if (strcmp(tok, "enospc") == 0)
            f->enospc_at = n;
        else
            return -EINVAL;
    }
    return 0;
}

static int journal_open(struct daemon *d)
{
    char dir[RF_DCFG_PATH_BYTES + 16];
    struct rf_sjournal_config jc = {.dir = dir,
                                    .sync = d->cfg.durability_sync,
                                    .segment_bytes = d->cfg.journal_segment_bytes,
                                    .repair = d->cfg.repair_journal,
                                    .retention_ms = d->cfg.retention_s * 1000};
    int rc;

    if (d->cfg.journal_faults[0]) {
        if (parse_faults(d->cfg.journal_faults, &d->faults) < 0) {
            rf_log_error("\"msg\":\"bad --journal-faults\",\"spec\":\"%s\"",
                         d->cfg.journal_faults);
            return -EINVAL;
        }
        jc.faults = &d->faults;
    }
    snprintf(dir, sizeof(dir), "%s/journal", d->cfg.data_dir);
    rc = rf_sjournal_open(d->st, d->eng, &jc, &d->sj);
    if (rc < 0) {
        rf_log_error("\"msg\":\"cannot open the journal\",\"dir\":\"%s\",\"err\":\"%s\"",
                     dir, rc == -EBADMSG ? "corrupted (see above)" : strerror(-rc));
        return rc;
    }
    rf_api_set_journal(d->api, d->sj);
    return 0;
}

/* The Redis host as a numeric address: resolved once, here, before the shards run (the
 * shards never resolve names). */
static int redis_host(const char *host, char *out, size_t cap)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);

    if (rc != 0 || !res) {
        rf_log_error("\"msg\":\"cannot resolve the Redis host\",\"host\":\"%s\","
                     "\"err\":\"%s\"",
                     host, gai_strerror(rc));
        return -EINVAL;
    }
    const void *a = res->ai_family == AF_INET6
                        ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                        : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
    inet_ntop(res->ai_family, a, out, (socklen_t)cap);
    freeaddrinfo(res);
    return 0;
}

static int redis_open(struct daemon *d)
{
    struct rf_rbridge_config rc = {.conn = {.timeout_ms = d->cfg.redis_timeout_ms,
                                            .backoff_min_ms = REDIS_BACKOFF_MIN_MS,
                                            .backoff_max_ms = REDIS_BACKOFF_MAX_MS,
                                            .pending_max = REDIS_PENDING_MAX},
                                   .events_ttl_s = (uint32_t)d->cfg.redis_events_ttl_s};
    struct rf_dcfg_addr a;
    int err;

    if (!d->cfg.redis_url[0])
        return 0;
    if (rf_dcfg_redis_url(d->cfg.redis_url, &a, &rc.conn.db) < 0 ||
        redis_host(a.host, rc.conn.host, sizeof(rc.conn.host)) < 0)
        return -EINVAL;
    rc.conn.port = a.port;
    snprintf(rc.prefix, sizeof(rc.prefix), "%s", d->cfg.redis_prefix);
    if ((err = rf_rbridge_new(d->eng, d->sj, &rc, &d->rb)) < 0) {
        rf_log_error("\"msg\":\"cannot set up Redis\",\"err\":\"%s\"", strerror(-err));
        return err;
    }
    rf_api_set_redis(d->api, d->rb);
    rf_log_info("\"msg\":\"redis\",\"host\":\"%s\",\"port\":%u,\"db\":%u,\"prefix\":\"%s\"",
                rc.conn.host, rc.conn.port, rc.conn.db, rc.prefix);
    return 0;
}

static int kafka_open(struct daemon *d)
{
    struct rf_kafka_config kc = {.produce_timeout_ms = d->cfg.http_timeout_ms};

    if (!d->cfg.kafka_brokers[0])
        return 0;
    snprintf(kc.brokers, sizeof(kc.brokers), "%s", d->cfg.kafka_brokers);
    snprintf(kc.topic, sizeof(kc.topic), "%s", d->cfg.kafka_topic);
    snprintf(kc.group, sizeof(kc.group), "%s", d->cfg.kafka_group);
    snprintf(kc.dlq_topic, sizeof(kc.dlq_topic), "%s", d->cfg.kafka_dlq_topic);
    snprintf(kc.events_topic, sizeof(kc.events_topic), "%s", d->cfg.kafka_events_topic);
    snprintf(kc.debug, sizeof(kc.debug), "%s", d->cfg.kafka_debug);
    kc.partition_inflight = d->cfg.kafka_partition_inflight;
    int rc = rf_kafka_new(d->eng, d->st, d->sj, &kc, &d->kafka);
    if (rc == 0)
        rf_api_set_kafka(d->api, d->kafka);
    if (rc == 0)
        rf_log_info("\"msg\":\"kafka\",\"brokers\":\"%s\",\"topic\":\"%s\",\"group\":\"%s\"",
                    kc.brokers, kc.topic, kc.group);
    return rc;
}

static int start(struct daemon *d)
{
    struct rf_server_config sc;
    struct rf_store_config stc = {0};
    struct rf_api_config ac = {0};
    rf_config ec;
    int rc;

    engine_config(&d->cfg, &ec);
    if ((rc = rf_engine_new(&ec, &d->eng)) < 0) {
        rf_log_error("\"msg\":\"bad engine configuration\",\"err\":\"%s\"", rf_strerror(rc));
        return rc;
    }
    stc.executions_max = d->cfg.executions_max;
    stc.events_max = d->cfg.events_per_execution_max;
    stc.inflight_max = rf_engine_shards(d->eng) * d->cfg.inflight_per_shard;
    stc.idem_keys_max = d->cfg.idempotency_keys_max; /* the daemon always has a journal */
    stc.idem_keep_ms = d->cfg.retention_s * 1000;
    ac.long_poll_max_ms = d->cfg.long_poll_max_ms;
    server_config(&d->cfg, &sc);
    if ((rc = rf_metrics_new(d->eng, &d->m)) < 0 ||
        (rc = rf_store_new(d->eng, &stc, d->m, &d->st)) < 0 ||
        (rc = rf_api_new(d->eng, d->st, d->m, &ac, &d->api)) < 0)
        return rc;
    if ((rc = rf_server_new(d->eng, &sc, d->api, d->m, &d->srv)) < 0) {
        rf_log_error("\"msg\":\"cannot listen\",\"host\":\"%s\",\"port\":%u,\"err\":\"%s\"",
                     d->cfg.listen_host, d->cfg.listen_port, strerror(-rc));
        return rc;
    }
    if ((rc = journal_open(d)) < 0 || (rc = redis_open(d)) < 0)
        return rc;
    if ((rc = rf_triggers_new(d->eng, d->st, d->cfg.cron_clock_file, &d->triggers)) < 0 ||
        (rc = kafka_open(d)) < 0)
        return rc;
    rf_api_set_triggers(d->api, d->triggers);
    if ((rc = rf_engine_start(d->eng)) < 0) {
        rf_log_error("\"msg\":\"cannot start the shards\",\"err\":\"%s\"", rf_strerror(rc));
        return rc;
    }
    if ((rc = rf_sjournal_apply_graphs(d->sj)) < 0) {
        rf_log_error("\"msg\":\"recovery failed\",\"err\":\"%s\"", rf_strerror(rc));
        return rc;
    }
    return 0;
}

static void cron_slot(void *ud, const char *name, int64_t slot)
{
    rf_triggers_slot(ud, name, slot);
}

/* After the graph files: executions of their versions can come back. */
static int recover_executions(struct daemon *d)
{
    int rc = rf_sjournal_apply(d->sj, NULL);

    if (rc < 0)
        rf_log_error("\"msg\":\"recovery failed\",\"err\":\"%s\"", rf_strerror(rc));
    return rc;
}

static void teardown(struct daemon *d)
{
    if (d->eng)
        rf_engine_stop(d->eng, 0);
    rf_sjournal_free(d->sj);
    d->sj = NULL;
    rf_rbridge_free(d->rb);
    d->rb = NULL;
    rf_triggers_free(d->triggers);
    d->triggers = NULL;
    rf_kafka_free(d->kafka);
    d->kafka = NULL;
    rf_server_free(d->srv);
    rf_store_free(d->st);
    rf_api_free(d->api);
    rf_metrics_free(d->m);
    rf_engine_free(d->eng);
    if (d->lock_fd >= 0)
        close(d->lock_fd);
    d->lock_fd = -1;
}

/* The second signal during a drain cuts it short. */
static void *second_signal(void *arg)
{
    sigset_t *set = arg;
    int sig;

    if (sigwait(set, &sig) == 0) {
        rf_log_warn("\"msg\":\"second signal: canceling in-flight work now\",\"signal\":%d",
                    sig);
        _exit(1); /* forced: the shards stop with the process */
    }
    return NULL;
}

/* The arguments of the restart into recovery: the same, but without --journal-faults
 * (injected faults are for the first run only, not for the restart they cause). */
static void restart_args(int argc, char **argv)
{
    int out = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--journal-faults") == 0) {
            i++; /* and its value */
            continue;
        }
        if (strncmp(argv[i], "--journal-faults=", 17) == 0)
            continue;
        argv[out++] = argv[i];
    }
    argv[out] = NULL;
    unsetenv("RINGFLOW_JOURNAL_FAULTS");
}

static void graceful_stop(struct daemon *d, sigset_t *set, int sig)
{
    pthread_t t;
    int64_t t0 = rf_wall_us();

    rf_log_info("\"msg\":\"stopping\",\"signal\":%d,\"drain_timeout_ms\":%u", sig,
                d->cfg.drain_timeout_ms);
    pthread_create(&t, NULL, second_signal, set);
    pthread_detach(t);
    rf_api_set_draining(d->api);
    rf_server_stop_accepting(d->srv, ACCEPT_STOP_WAIT_MS);
    rf_engine_stop(d->eng, d->cfg.drain_timeout_ms);
    rf_log_info("\"msg\":\"stopped\",\"ms\":%ld", (long)((rf_wall_us() - t0) / 1000));
}

int main(int argc, char **argv)
{
    struct daemon d = {.lock_fd = -1};
    char err[512];
    sigset_t set;
    int sig, rc;

    rc = rf_dcfg_parse(&d.cfg, argc, argv, environ, stdout, err, sizeof(err));
    if (rc == 1)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "ringflowd: %s (see ringflowd --help)\n", err);
        return 2;
    }
    rf__log_text = d.cfg.log_text;
    rf__log_level = (rf_log_level)d.cfg.log_level;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (data_dir_lock(&d) < 0 || start(&d) < 0) {
        teardown(&d);
        return 1;
    }
    if (d.cfg.graphs_dir[0] && register_dir(&d) < 0)
        rf_log_warn("\"msg\":\"some graph files were not registered (see above)\"");
    rf_sjournal_defs(d.sj, rf_api_load_def, d.api); /* hooks and triggers, before executions */
    rf_sjournal_cron_slots(d.sj, cron_slot, d.triggers);
    if (recover_executions(&d) < 0) {
        teardown(&d);
        return 1;
    }
    rf_triggers_start(d.triggers);
    if (d.kafka)
        rf_kafka_start(d.kafka);
    rf_api_set_ready(d.api);
    json_t *cj = rf_dcfg_json(&d.cfg);
    char *cs = cj ? json_dumps(cj, JSON_COMPACT) : NULL;
    rf_log_info("\"msg\":\"listening\",\"addr\":\"%s\",\"port\":%u,\"shards\":%u,"
                "\"storage\":\"journal\",\"config\":%s",
                d.cfg.listen_host, rf_server_port(d.srv), rf_engine_shards(d.eng),
                cs ? cs : "null");
    free(cs);
    json_decref(cj);
    struct timespec tick = {.tv_sec = 0, .tv_nsec = FAILURE_CHECK_MS * 1000000L};
    int failed = 0;
    for (;;) {
        sig = sigtimedwait(&set, NULL, &tick);
        if (sig > 0)
            break;
        if ((failed = rf_sjournal_failed(d.sj)) != 0)
            break;
    }
    if (failed) {
        /* The journal can no longer be trusted (a failed write or fdatasync is never
         * retried): stop at once and start again, which recovers from what is on disk. */
        rf_log_error("\"msg\":\"journal failed: restarting into recovery\",\"err\":\"%s\"",
                     strerror(-failed));
        rf_api_set_draining(d.api);
        rf_server_stop_accepting(d.srv, ACCEPT_STOP_WAIT_MS);
        rf_engine_stop(d.eng, 0);
        teardown(&d);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        restart_args(argc, argv);
        execv("/proc/self/exe", argv);
        rf_log_error("\"msg\":\"cannot restart\",\"err\":\"%s\"", strerror(errno));
        return 1;
    }
    graceful_stop(&d, &set, sig);
    teardown(&d);
    return 0;
}
