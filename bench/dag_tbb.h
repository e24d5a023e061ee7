/*
 * bench/dag_tbb.h: the oneTBB side of bench/dag, callable from C.
 *
 * bench/dag.c (C17) times ringflow on the shapes of bench/shapes.h and, in the same
 * run, times the same rf_shape_dag as a oneTBB flow graph through this one function, so
 * the printed ringflow/TBB ratio compares like with like: same nodes, same edges, same
 * thread count, same process. The implementation is bench/dag_tbb.cc (C++17, linked
 * with `pkg-config --libs tbb`); nothing of TBB leaks through this header.
 *
 * The TBB graph is one tbb::flow::continue_node<continue_msg> per DAG node, with an
 * empty body, and one make_edge per DAG edge. Building it is not timed. The timed part
 * runs from the first source's try_put(continue_msg()) to wait_for_all() returning.
 * Bytes are what building the nodes and edges took from the allocator, measured, not
 * estimated; dag_tbb.cc's opening comment says how.
 *
 * Calls are synchronous and may come from any one thread at a time; each call builds,
 * runs and destroys its own graph and task arena.
 */
#ifndef RF_BENCH_DAG_TBB_H
#define RF_BENCH_DAG_TBB_H

#include <stddef.h>

#include "shapes.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most threads one run may ask for. */
#define RF_TBB_THREADS_MAX 256u

/* Run `dag` (borrowed) once as a oneTBB flow graph of continue_node<continue_msg> with
 * empty bodies, on `threads` threads (the caller's plus threads-1 TBB workers).
 * Stores the timed seconds in *secs and the total bytes the graph's nodes and edges
 * occupied in *bytes (divide by dag->n for bytes per node).
 * 0; -EINVAL (NULL argument, empty dag, threads outside [1, RF_TBB_THREADS_MAX]);
 * -ENOMEM; -EIO if TBB threw anything else. */
int rf_tbb_run(const struct rf_shape_dag *dag, unsigned threads, double *secs, size_t *bytes);

/* How rf_tbb_run measures bytes in this process: "mallinfo2" normally, "rss" when
 * libtbbmalloc_proxy has replaced malloc (see dag_tbb.cc). Static string. */
const char *rf_tbb_bytes_method(void);

#ifdef __cplusplus
}
#endif

#endif /* RF_BENCH_DAG_TBB_H */
