/*
 * bench/shapes.c: builds the four bench/dag shapes as CSR DAGs (see shapes.h).
 *
 * Building is three steps, the same for every shape:
 *   1. size: the exact node count n and edge count m follow from the shape and n_target
 *      alone (shape_size), so each array is allocated once, at its final size;
 *   2. fill: one small function per shape writes succ_off and succ, visiting nodes in
 *      index order, which keeps every node's successor list sorted and ascending;
 *   3. in-degrees: one shared pass over succ counts ndeps (shape_count_deps), so no
 *      shape can get its ndeps out of step with its edges.
 *
 * Each fill function ends with its cursor equal to m; RF_SHAPE_CHECK makes a mismatch
 * abort in every build rather than hand a torn graph to a benchmark. The shapes are
 * built before any timing, so nothing here is on a hot path; clarity wins.
 *
 * The wavefront side is round(sqrt(n_target)), computed in integers so that the bench
 * needs no libm: k = floor(sqrt(n)), plus one when n > k*k + k (that is, n is past
 * (k + 1/2)^2).
 */
#include "shapes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Always on, like RF_ASSERT in engine/rf.h; this file does not depend on the engine. */
#define RF_SHAPE_CHECK(cond)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, __func__, #cond); \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const char *const shape_names[RF_SHAPE_COUNT] = {
    [RF_SHAPE_CHAIN] = "chain",
    [RF_SHAPE_FANOUT] = "fanout",
    [RF_SHAPE_TREE] = "tree",
    [RF_SHAPE_WAVEFRONT] = "wavefront",
};

const char *rf_shape_name(enum rf_shape s)
{
    if ((unsigned)s >= RF_SHAPE_COUNT)
        return "?";
    return shape_names[s];
}

int rf_shape_parse(const char *name, enum rf_shape *out)
{
    if (name == NULL || out == NULL)
        return -EINVAL;
    for (unsigned s = 0; s < RF_SHAPE_COUNT; s++) {
        if (strcmp(name, shape_names[s]) == 0) {
            *out = (enum rf_shape)s;
            return 0;
        }
    }
    return -EINVAL;
}

/* round(sqrt(n)) in integers: floor by Newton's method, then round half up. */
static uint32_t isqrt_round(uint32_t n)
{
    uint64_t x = n;
    uint64_t y = (x + 1) / 2;

    while (y < x) {
        x = y;
        y = (x + n / x) / 2;
    }
    if ((uint64_t)n > x * x + x)
        x++;
    return (uint32_t)x;
}

/* Exact node and edge counts of shape s for n_target; k is the wavefront side (else 0). */
static void shape_size(enum rf_shape s, uint32_t n_target, uint32_t *n, uint64_t *m, uint32_t *k)
{
    *n = n_target;
    *k = 0;
    switch (s) {
    case RF_SHAPE_CHAIN:
    case RF_SHAPE_TREE:
        *m = (uint64_t)n_target - 1;
        break;
    case RF_SHAPE_FANOUT:
        *m = 2 * ((uint64_t)n_target - 2);
        break;
    case RF_SHAPE_WAVEFRONT:
    default:
        *k = isqrt_round(n_target);
        *n = *k * *k;
        *m = 2 * (uint64_t)*k * (*k - 1);
        break;
    }
}

static void shape_fill_chain(struct rf_shape_dag *d)
{
    uint32_t e = 0;

    for (uint32_t i = 0; i < d->n; i++) {
        d->succ_off[i] = e;
        if (i + 1 < d->n)
            d->succ[e++] = i + 1;
    }
    d->succ_off[d->n] = e;
    RF_SHAPE_CHECK(e == d->m);
}

static void shape_fill_fanout(struct rf_shape_dag *d)
{
    uint32_t last = d->n - 1;
    uint32_t e = 0;

    d->succ_off[0] = 0;
    for (uint32_t i = 1; i < last; i++)
        d->succ[e++] = i;
    for (uint32_t i = 1; i < last; i++) {
        d->succ_off[i] = e;
        d->succ[e++] = last;
    }
    d->succ_off[last] = e;
    d->succ_off[d->n] = e;
    RF_SHAPE_CHECK(e == d->m);
}

static void shape_fill_tree(struct rf_shape_dag *d)
{
    uint32_t e = 0;

    for (uint32_t i = 0; i < d->n; i++) {
        uint64_t left = 2 * (uint64_t)i + 1;

        d->succ_off[i] = e;
        if (left < d->n)
            d->succ[e++] = (uint32_t)left;
        if (left + 1 < d->n)
            d->succ[e++] = (uint32_t)(left + 1);
    }
    d->succ_off[d->n] = e;
    RF_SHAPE_CHECK(e == d->m);
}

/* Node (i,j) = i*k+j; its successors are (i+1,j) and (i,j+1). */
static void shape_fill_wavefront(struct rf_shape_dag *d, uint32_t k)
{
    uint32_t e = 0;

    for (uint32_t i = 0; i < k; i++) {
        for (uint32_t j = 0; j < k; j++) {
            uint32_t v = i * k + j;

            d->succ_off[v] = e;
            if (j + 1 < k)
                d->succ[e++] = v + 1;
            if (i + 1 < k)
                d->succ[e++] = v + k;
        }
    }
    d->succ_off[d->n] = e;
    RF_SHAPE_CHECK(e == d->m);
}

/* In-degrees from the edges, checking the topological numbering on the way. */
static void shape_count_deps(struct rf_shape_dag *d)
{
    memset(d->ndeps, 0, (size_t)d->n * sizeof(*d->ndeps));
    for (uint32_t v = 0; v < d->n; v++) {
        for (uint32_t e = d->succ_off[v]; e < d->succ_off[v + 1]; e++) {
            RF_SHAPE_CHECK(d->succ[e] > v);
            RF_SHAPE_CHECK(d->succ[e] < d->n);
            d->ndeps[d->succ[e]]++;
        }
    }
}

static int shape_alloc(struct rf_shape_dag *d, uint32_t n, uint64_t m)
{
    d->n = n;
    d->m = m;
    d->succ_off = malloc(((size_t)n + 1) * sizeof(*d->succ_off));
    d->succ = malloc((m ? (size_t)m : 1) * sizeof(*d->succ));
    d->ndeps = malloc((size_t)n * sizeof(*d->ndeps));
    if (d->succ_off == NULL || d->succ == NULL || d->ndeps == NULL) {
        rf_shape_free(d);
        return -ENOMEM;
    }
    return 0;
}

int rf_shape_build(enum rf_shape s, uint32_t n_target, struct rf_shape_dag *out)
{
    uint32_t n, k;
    uint64_t m;
    int rc;

    if (out == NULL)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    if ((unsigned)s >= RF_SHAPE_COUNT)
        return -EINVAL;
    if (n_target < RF_SHAPE_NODES_MIN || n_target > RF_SHAPE_NODES_MAX)
        return -EINVAL;

    shape_size(s, n_target, &n, &m, &k);
    RF_SHAPE_CHECK(m <= UINT32_MAX);
    rc = shape_alloc(out, n, m);
    if (rc < 0)
        return rc;

    switch (s) {
    case RF_SHAPE_CHAIN:
        shape_fill_chain(out);
        break;
    case RF_SHAPE_FANOUT:
        shape_fill_fanout(out);
        break;
    case RF_SHAPE_TREE:
        shape_fill_tree(out);
        break;
    case RF_SHAPE_WAVEFRONT:
    default:
        shape_fill_wavefront(out, k);
        break;
    }
    shape_count_deps(out);
    return 0;
}

void rf_shape_free(struct rf_shape_dag *d)
{
    if (d == NULL)
        return;
    free(d->succ_off);
    free(d->succ);
    free(d->ndeps);
    memset(d, 0, sizeof(*d));
}
