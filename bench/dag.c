/*
 * bench/dag.c: empty-node graphs of about 1,000,000 nodes, run by ringflow and by oneTBB's
 * flow graph in the same process, on 1 and on 2 threads.
 *
 *   build/release/bench/dag [--nodes N] [--reps R] [--shapes chain,fanout,tree,wavefront]
 *                           [--threads 1,2] [--no-tbb]
 *
 * Shapes (bench/shapes.c): a linear chain, a fan-out/fan-in, a complete binary out-tree and
 * a k x k wavefront. ringflow runs each as one execution of a compiled plan of `noop`
 * nodes on an engine with T shards; the timed part is rf_submit() to rf_exec_wait()
 * returning, which includes allocating and initialising the execution's per-node state.
 * TBB runs the same DAG as continue_nodes with empty bodies in a task_arena of T threads;
 * the timed part is the sources' try_put to wait_for_all() (graph construction is not
 * timed on either side: it corresponds to plan compilation).
 *
 * For each (shape, threads) both sides do one untimed warm-up run and R timed runs; the
 * table shows the median and the spread (min, max) of ns per node, nodes/s from the
 * median, bytes per node (ringflow: plan plus execution state; TBB: heap growth while
 * building the graph), and ratio = TBB ns/node / ringflow ns/node, so > 1.0 means
 * ringflow is faster. Steals per run show the work distribution on 2 shards.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringflow.h"

#include "bench/dag_tbb.h"
#include "bench/shapes.h"

#define REPS_MAX 64

struct opts {
    uint32_t nodes;
    uint32_t reps;
    bool shapes[RF_SHAPE_COUNT];
    uint32_t threads[4];
    uint32_t nthreads;
    bool tbb;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int build_plan(rf_engine *eng, const struct rf_shape_dag *d, rf_plan **out)
{
    rf_graph *g;
    rf_diag diag;
    char id[24];
    int rc;

    rc = rf_graph_new("bench-dag", &g);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < d->n && rc >= 0; i++) {
        snprintf(id, sizeof(id), "n%u", i);
        rc = rf_graph_add_node(g, id, "noop", NULL, NULL);
    }
    for (uint32_t i = 0; i < d->n && rc >= 0; i++)
        for (uint32_t k = d->succ_off[i]; k < d->succ_off[i + 1] && rc >= 0; k++)
            rc = rf_graph_add_edge(g, i, d->succ[k]);
    if (rc >= 0) {
        rf_diag_init(&diag);
        rc = rf_plan_compile(eng, g, &diag, out);
        for (uint32_t i = 0; i < diag.count; i++)
            fprintf(stderr, "%s: %s\n", diag.items[i].pointer, diag.items[i].message);
        rf_diag_free(&diag);
    }
    rf_graph_free(g);
    return rc < 0 ? rc : 0;
}

static uint64_t total_steals(rf_engine *eng)
{
    rf_shard_stats st;
    uint64_t s = 0;

    for (uint32_t i = 0; i < rf_engine_shards(eng); i++)
        if (rf_engine_shard_stats(eng, i, &st) == 0)
            s += st.steals;
    return s;
}

/* One timed execution; returns seconds or a negative value on error. */
static double rf_once(rf_engine *eng, rf_plan *plan)
{
    rf_exec *ex;
    double t0 = now_s();
    int rc = rf_submit(eng, plan, NULL, NULL, &ex);

    if (rc < 0) {
        fprintf(stderr, "submit: %s\n", rf_strerror(rc));
        return -1;
    }
    rc = rf_exec_wait(ex, 600000);
    double t = now_s() - t0;
    if (rc < 0 || rf_exec_status(ex) != RF_ST_SUCCEEDED) {
        fprintf(stderr, "execution did not succeed: %s\n", rf_status_name(rf_exec_status(ex)));
        t = -1;
    }
    rf_exec_release(ex);
    return t;
}

struct result {
    double ns[REPS_MAX];
    double bytes_per_node;
    double steals_per_run;
    bool ok;
};

static void run_ringflow(const struct opts *o, const struct rf_shape_dag *d, uint32_t threads,
                         struct result *r)
{
    rf_config cfg = {.shards = threads, .plan_nodes_max = d->n + 1};
    rf_engine *eng = NULL;
    rf_plan *plan = NULL;

    r->ok = false;
    if (rf_engine_new(&cfg, &eng) < 0 || rf_engine_start(eng) < 0 || build_plan(eng, d, &plan) < 0)
        goto out;
    r->bytes_per_node = (double)(rf_plan_bytes(plan) + rf_plan_exec_bytes(plan)) / d->n;
    if (rf_once(eng, plan) < 0) /* warm-up: page faults, heap growth */
        goto out;
    uint64_t s0 = total_steals(eng);
    for (uint32_t k = 0; k < o->reps; k++) {
        double t = rf_once(eng, plan);
        if (t < 0)
            goto out;
        r->ns[k] = t * 1e9 / d->n;
    }
    r->steals_per_run = (double)(total_steals(eng) - s0) / o->reps;
    r->ok = true;
out:
    rf_plan_release(plan);
    if (eng) {
        rf_engine_stop(eng, 1000);
        rf_engine_free(eng);
    }
}

static void run_tbb(const struct opts *o, const struct rf_shape_dag *d, uint32_t threads,
                    struct result *r)
{
    double secs;
    size_t bytes = 0;

    r->ok = false;
    if (rf_tbb_run(d, threads, &secs, &bytes) < 0) /* warm-up */
        return;
    for (uint32_t k = 0; k < o->reps; k++) {
        if (rf_tbb_run(d, threads, &secs, &bytes) < 0)
            return;
        r->ns[k] = secs * 1e9 / d->n;
    }
    r->bytes_per_node = (double)bytes / d->n;
    r->ok = true;
}

static double median(double *v, uint32_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void print_row(const char *who, const char *shape, uint32_t threads, struct result *r,
                      uint32_t reps, double *med_out)
{
    if (!r->ok) {
        printf("%-9s %-9s %2u  failed\n", shape, who, threads);
        *med_out = 0;
        return;
    }
    double med = median(r->ns, reps);
    printf("%-9s %-9s %2u %9.1f %9.1f %9.1f %10.2f %9.0f", shape, who, threads, med, r->ns[0],
           r->ns[reps - 1], 1e3 / med, r->bytes_per_node);
    *med_out = med;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    o->nodes = 1000000;
    o->reps = 5;
    o->tbb = true;
    o->nthreads = 2;
    o->threads[0] = 1;
    o->threads[1] = 2;
    for (int s = 0; s < RF_SHAPE_COUNT; s++)
        o->shapes[s] = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--nodes") == 0 && v) {
            o->nodes = (uint32_t)strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--reps") == 0 && v) {
            o->reps = (uint32_t)strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--no-tbb") == 0) {
            o->tbb = false;
        } else if (strcmp(a, "--shapes") == 0 && v) {
            char *dup = strdup(v), *save = NULL;
            memset(o->shapes, 0, sizeof(o->shapes));
            for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                enum rf_shape s;
                if (rf_shape_parse(t, &s) < 0) {
                    fprintf(stderr, "unknown shape %s\n", t);
                    free(dup);
                    return -EINVAL;
                }
                o->shapes[s] = true;
            }
            free(dup);
            i++;
        } else if (strcmp(a, "--threads") == 0 && v) {
            char *dup = strdup(v), *save = NULL;
            o->nthreads = 0;
            for (char *t = strtok_r(dup, ",", &save); t && o->nthreads < 4;
                 t = strtok_r(NULL, ",", &save))
                o->threads[o->nthreads++] = (uint32_t)strtoul(t, NULL, 10);
            free(dup);
            i++;
        } else {
            fprintf(stderr,
                    "usage: %s [--nodes N] [--reps R] [--shapes a,b] [--threads 1,2] "
                    "[--no-tbb]\n",
                    argv[0]);
            return -EINVAL;
        }
    }
    if (o->reps == 0 || o->reps > REPS_MAX || o->nodes < RF_SHAPE_NODES_MIN)
        return -EINVAL;
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    int fails = 0;

    if (parse_args(argc, argv, &o) < 0)
        return 2;
    printf("bench/dag: %u nodes per graph, %u timed runs after 1 warm-up, median and "
           "(min, max) ns per node\n",
           o.nodes, o.reps);
    printf("ratio = TBB ns/node / ringflow ns/node (> 1.0: ringflow faster); TBB bytes by %s\n\n",
           o.tbb ? rf_tbb_bytes_method() : "-");
    printf("%-9s %-9s %2s %9s %9s %9s %10s %9s %7s %10s\n", "shape", "engine", "T", "ns/node",
           "min", "max", "Mnodes/s", "bytes/nd", "ratio", "steals/run");
    for (int s = 0; s < RF_SHAPE_COUNT; s++) {
        struct rf_shape_dag d;
        if (!o.shapes[s])
            continue;
        if (rf_shape_build((enum rf_shape)s, o.nodes, &d) < 0) {
            fprintf(stderr, "cannot build %s\n", rf_shape_name((enum rf_shape)s));
            return 1;
        }
        for (uint32_t t = 0; t < o.nthreads; t++) {
            struct result rr, tr;
            double rmed, tmed = 0;
            const char *name = rf_shape_name((enum rf_shape)s);
            run_ringflow(&o, &d, o.threads[t], &rr);
            if (o.tbb)
                run_tbb(&o, &d, o.threads[t], &tr);
            print_row("ringflow", name, o.threads[t], &rr, o.reps, &rmed);
            if (rr.ok)
                printf(" %7s %10.0f\n", "", rr.steals_per_run);
            if (o.tbb) {
                print_row("tbb", name, o.threads[t], &tr, o.reps, &tmed);
                if (tr.ok && rr.ok)
                    printf(" %6.2fx\n", tmed / rmed);
                else if (tr.ok)
                    printf("\n");
            }
            fails += !rr.ok || (o.tbb && !tr.ok);
        }
        rf_shape_free(&d);
    }
    return fails ? 1 : 0;
}
