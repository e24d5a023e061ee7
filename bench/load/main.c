/*
 * bench/load/main.c: ringflow-load's main(): options, threads, signals, the report.
 *
 * The process does the slow, one-time work before the clock starts: parse and validate
 * the options, resolve the target, compile the templates, raise the open-file limit to
 * what the connections need. It then picks a common start time t0, starts one thread per
 * --threads (each builds its own ring and connections and runs until its drain ends),
 * joins them, merges their statistics and prints the report, as text or one JSON object.
 *
 * Units (connections, or subscriber pairs in --ws mode) are split as evenly as possible,
 * the first threads taking one more when the division is not exact; the open-loop
 * schedule is interleaved across threads (engine.c), so the process as a whole sends at
 * the --rate asked for whatever the split.
 *
 * SIGINT and SIGTERM end the measurement early: the threads see rfl_interrupted on their
 * next iteration, close the window at that moment, drain and report; a second signal
 * kills the process (SA_RESETHAND).
 *
 * Exit status: 0 a run that completed requests, 1 setup failure, 2 usage error, 3 a run
 * in which nothing completed (so scripts notice a dead target).
 */
#include "bench/load/load.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

atomic_bool rfl_interrupted;

void rfl_assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "ringflow-load: assertion failed: %s (%s:%d)\n", cond, file, line);
    abort();
}

static void on_signal(int sig)
{
    (void)sig;
    atomic_store_explicit(&rfl_interrupted, true, memory_order_relaxed); /* a flag, no data */
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = (int)SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Sockets plus rings, buffers and stdio. */
static int raise_nofile(const struct rfl_opts *o)
{
    rlim_t need = (rlim_t)(o->ws ? o->conns * 2 : o->conns) + 2u * o->threads + 64u;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -errno;
    if (rl.rlim_cur >= need)
        return 0;
    if (rl.rlim_max < need && rl.rlim_max != RLIM_INFINITY) {
        fprintf(stderr, "ringflow-load: need %llu open files, the hard limit is %llu\n",
                (unsigned long long)need, (unsigned long long)rl.rlim_max);
        return -EMFILE;
    }
    rl.rlim_cur = need;
    return setrlimit(RLIMIT_NOFILE, &rl) < 0 ? -errno : 0;
}

/* Start the threads, wait for them, merge into *total. Returns 0 or a negative errno. */
static int run(const struct rfl_opts *o, struct rfl_stats *total, uint64_t *window_ns)
{
    uint32_t n = o->threads;
    struct rfl_thread_arg *args = calloc(n, sizeof(*args));
    struct rfl_stats *stats = calloc(n, sizeof(*stats));
    pthread_t *tids = calloc(n, sizeof(*tids));
    int err = args && stats && tids ? 0 : -ENOMEM;
    uint32_t started = 0;
    uint64_t t0 = rfl_now_ns();
    for (uint32_t i = 0; !err && i < n; i++) {
        rfl_hist_init(&stats[i].lat);
        rfl_hist_init(&stats[i].post_lat);
        args[i] = (struct rfl_thread_arg){.opts = o,
                                          .id = i,
                                          .t0 = t0,
                                          .stats = &stats[i],
                                          .units = o->conns / n + (i < o->conns % n)};
        err = -pthread_create(&tids[i], NULL, rfl_thread_main, &args[i]);
        started += !err;
    }
    if (err)
        atomic_store_explicit(&rfl_interrupted, true, memory_order_relaxed); /* stop the rest */
    *window_ns = 0;
    for (uint32_t i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
        if (args[i].err && !err) {
            err = args[i].err;
            fprintf(stderr, "ringflow-load: thread %u setup: %s\n", i, strerror(-err));
        }
        rfl_stats_merge(total, &stats[i]);
        *window_ns = RFL_MAX(*window_ns, args[i].measured_ns);
    }
    free(args);
    free(stats);
    free(tids);
    return err;
}

int main(int argc, char **argv)
{
    static struct rfl_opts opts;
    bool self_test = false;
    int rc = rfl_opts_parse(argc, argv, &opts, &self_test);
    if (rc != 0 || self_test) {
        rfl_opts_free(&opts);
        if (self_test)
            return rfl_self_test();
        return rc > 0 ? 0 : 2;
    }
    int status = 1;
    struct rfl_stats *total = calloc(1, sizeof(*total));
    if (!total || raise_nofile(&opts) < 0)
        goto out;
    rfl_hist_init(&total->lat);
    rfl_hist_init(&total->post_lat);
    install_signals();
    uint64_t window_ns = 0;
    int err = run(&opts, total, &window_ns);
    if (err < 0) {
        fprintf(stderr, "ringflow-load: %s\n", strerror(-err));
        goto out;
    }
    const char *url = argv[argc - 1];
    if (opts.json)
        err = rfl_report_json(stdout, url, &opts, total, window_ns);
    else
        rfl_report_text(stdout, url, &opts, total, window_ns);
    status = err < 0 ? 1 : total->completed ? 0 : 3;
out:
    free(total);
    rfl_opts_free(&opts);
    return status;
}
