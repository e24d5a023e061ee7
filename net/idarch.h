/*
 * net/idarch.h: the idempotency archive, the keys of executions that have left memory.
 *
 * The spec promises that the same idempotency_key for the same graph returns the first
 * execution "within retention". The store keeps its newest executions_max finished
 * executions in memory with their keys; with a journal, older ones stay readable from disk
 * (the journal's retention window) but would lose their key. The archive keeps, for each
 * evicted execution that had a key, what the submission answer needs: the execution id,
 * the graph version, the terminal status and when it was created. Nothing else: inputs and
 * results are read from the journal by id when asked for.
 *
 * An entry is 56 bytes in a FIFO ring of `keys_max` entries, indexed by an open-addressing
 * table of 32-bit slots (at most half full): about 64 bytes per key, allocated with calloc
 * so pages are touched only as keys arrive. The key is XXH3-128 of (graph, key) under a
 * random seed chosen at start-up: a false match needs a 128-bit collision, and a client
 * cannot aim keys at one probe sequence without the seed. When the ring is full the oldest
 * key goes first; a key older than `keep_ms` is a miss. Recovery refills the archive from
 * the journal's SUMMARY records, so it survives restarts for as long as the journal does.
 *
 * Any thread: one spin lock, held for a probe; only idempotent submissions that miss in
 * memory and evictions of executions with a key take it.
 */
#ifndef RF_NET_IDARCH_H
#define RF_NET_IDARCH_H

#include <stdbool.h>
#include <stdint.h>

#include "ringflow.h"

#define RF_IDARCH_KEYS_MAX_LIMIT (1u << 28) /* keys_max above this is refused */

struct rf_idarch;

/* What the archive remembers of one execution. */
struct rf_idarch_hit {
    char id[RF_ID_BYTES];
    uint32_t version;
    rf_status status;
    int64_t created_us;
};

/* An archive of at most `keys_max` keys (1 to RF_IDARCH_KEYS_MAX_LIMIT) that forgets keys
 * older than keep_ms (0 = only the ring's size bounds them). 0, -EINVAL or -ENOMEM. */
int rf_idarch_new(uint32_t keys_max, uint64_t keep_ms, struct rf_idarch **out);
void rf_idarch_free(struct rf_idarch *a); /* NULL is a no-op */

/* Remember key `key` of graph `graph` (both borrowed, NUL-terminated) for the execution
 * described by `e` (copied). A key already present is updated in place. Any thread. */
void rf_idarch_put(struct rf_idarch *a, const char *graph, const char *key,
                   const struct rf_idarch_hit *e);

/* Look the key up; true with *out filled when it is present and younger than keep_ms
 * (now_us is the wall clock). Any thread. */
bool rf_idarch_get(struct rf_idarch *a, const char *graph, const char *key, int64_t now_us,
                   struct rf_idarch_hit *out);

/* Keys held now. Any thread. */
uint32_t rf_idarch_count(struct rf_idarch *a);

#endif
