/*
 * bench/shapes.h: the graph shapes bench/dag runs, defined once for both sides.
 *
 * bench/dag compares ringflow against oneTBB's flow graph on the same four DAGs. So
 * that neither side can be given an easier graph, the shapes are built here, as plain
 * data, and each side translates the same rf_shape_dag into its own graph: bench/dag.c
 * into a ringflow plan, bench/dag_tbb.cc into tbb::flow::continue_nodes.
 *
 * A shape is a DAG in CSR form. Invariants every built shape keeps:
 *   - nodes are 0..n-1, numbered in a topological order: every edge goes from a lower
 *     index to a higher one, so node 0 is always a source;
 *   - succ[succ_off[i] .. succ_off[i+1]) are the successors of node i, succ_off[n] == m;
 *   - ndeps[i] is the in-degree of node i (the number of edges into it); sources have 0;
 *   - m fits in 32 bits, because the offsets are uint32_t.
 *
 * The shapes, for n_target nodes (1,000,000 in bench/dag by default):
 *   chain      n = n_target; i -> i+1. No parallelism: pure per-node overhead.
 *   fanout     n = n_target; 0 -> 1..n-2 -> n-1. One wide fork and one wide join.
 *   tree       n = n_target; complete binary out-tree, children 2i+1 and 2i+2, the last
 *              level possibly partial. Parallelism doubles per level.
 *   wavefront  k = round(sqrt(n_target)), n = k*k; (i,j) = i*k+j depends on (i-1,j) and
 *              (i,j-1). Diagonal waves, two dependencies per node.
 *
 * rf_shape_build is called once per shape before anything is timed; it is not thread
 * safe with respect to its `out`, and the arrays it returns are owned by the caller,
 * freed with rf_shape_free. Pure C, no dependency on the engine.
 */
#ifndef RF_BENCH_SHAPES_H
#define RF_BENCH_SHAPES_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Accepted n_target range: at least one node between fork and join for fanout; at most
 * 2^28 nodes so that every shape's edge count (<= 2n) fits the uint32_t offsets. */
#define RF_SHAPE_NODES_MIN 3u
#define RF_SHAPE_NODES_MAX (1u << 28)

enum rf_shape {
    RF_SHAPE_CHAIN,
    RF_SHAPE_FANOUT,
    RF_SHAPE_TREE,
    RF_SHAPE_WAVEFRONT,
    RF_SHAPE_COUNT
};

/* A shape as a DAG in CSR form: nodes 0..n-1 numbered in a topological order. */
struct rf_shape_dag {
    uint32_t n;         /* nodes */
    uint64_t m;         /* edges */
    uint32_t *succ_off; /* n+1 offsets into succ */
    uint32_t *succ;     /* m successor indices */
    uint32_t *ndeps;    /* n in-degrees */
};

/* "chain", "fanout", "tree", "wavefront"; "?" for a value out of range. Static string. */
const char *rf_shape_name(enum rf_shape s);

/* Name (borrowed) to shape. 0, or -EINVAL for an unknown name; *out untouched then. */
int rf_shape_parse(const char *name, enum rf_shape *out);

/* Build shape `s` with about `n_target` nodes (exact counts above) into *out (caller
 * owned; its arrays are owned by the caller afterwards, freed with rf_shape_free).
 * 0, -EINVAL (unknown shape, n_target outside [RF_SHAPE_NODES_MIN, RF_SHAPE_NODES_MAX]),
 * or -ENOMEM. On failure *out is zeroed. */
int rf_shape_build(enum rf_shape s, uint32_t n_target, struct rf_shape_dag *out);

/* Free the arrays of a built (or zeroed) shape and zero it. NULL is a no-op. */
void rf_shape_free(struct rf_shape_dag *d);

#ifdef __cplusplus
}
#endif

#endif /* RF_BENCH_SHAPES_H */
