/*
 * engine/xdoc.h: the hydrated execution document of ../shared/spec/api.md, kept up to date
 * from the execution's event stream.
 *
 * The engine feeds every event of an execution submitted with RF_SUBMIT_DOCUMENT to
 * rf__xdoc_apply(), in seq order, from the one thread delivering that execution's events
 * at a time. Any thread may take a snapshot (a deep copy) at any moment. The document:
 *
 *   {id, graph, version, status, inputs, output, error, tags, created_at, started_at,
 *    finished_at, parent?: {execution_id, node, item?},
 *    nodes: {<node id>: {status, kind, lineage_hash, attempts, params, output, error,
 *                        cached, started_at, finished_at, items?}}}
 *
 * `items` (mapped nodes only) is an array in item order whose entries have the same
 * per-run fields as a node (status, lineage_hash, attempts, params, output, error, cached,
 * started_at, finished_at). Times are RFC 3339 UTC with microseconds or null.
 */
#ifndef RF_ENGINE_XDOC_H
#define RF_ENGINE_XDOC_H

#include <jansson.h>

#include "ringflow.h"

struct rf_xdoc;

/* A document for execution `exec_id` of plan `p` (borrowed: read now, not kept), with
 * `inputs` and `tags` (borrowed; references taken; tags NULL = {}), every node pending.
 * NULL on allocation failure. */
struct rf_xdoc *rf__xdoc_new(const rf_plan *p, const char *exec_id, const json_t *inputs,
                             const json_t *tags, int64_t created_us);

/* Apply one event (borrowed). Events of one execution arrive in seq order from one thread
 * at a time. A mapped node's `items` array grows to cover the highest item seen. */
void rf__xdoc_apply(struct rf_xdoc *d, const rf_event *ev);

/* A deep copy of the document now, owned by the caller; NULL on allocation failure. Any
 * thread, concurrently with rf__xdoc_apply (a short spin lock orders the two). */
json_t *rf__xdoc_snapshot(struct rf_xdoc *d);

void rf__xdoc_free(struct rf_xdoc *d); /* NULL is a no-op */

#endif /* RF_ENGINE_XDOC_H */
