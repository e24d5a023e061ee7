/*
 * net/idarch.c: the idempotency archive (net/idarch.h has the design).
 *
 * The ring holds entries in arrival order; ring[head] is the oldest, `n` are live. The
 * table maps a key's hash to its ring position + 1 (0 = empty slot) by linear probing,
 * sized to a power of two at least twice keys_max, so a probe stays short. An entry leaves
 * the table when the ring overwrites it, by backward-shift deletion (Knuth 6.4, algorithm
 * R): no tombstones, so probes never lengthen with age.
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "engine/alloc.h"
#include "engine/rf.h"
#include "net/idarch.h"

struct entry {
    XXH128_hash_t h;
    int64_t created_us;
    uint32_t version;
    uint8_t status;
    char id[RF_ID_BYTES];
};

struct rf_idarch {
    rf_spin lock; /* everything below */
    uint32_t cap, head, n;
    uint64_t mask;      /* table size - 1 */
    uint64_t keep_us;   /* 0: no age limit */
    XXH64_hash_t seed;
    struct entry *ring; /* cap */
    uint32_t *table;    /* mask + 1 slots: ring index + 1, or 0 */
};

int rf_idarch_new(uint32_t keys_max, uint64_t keep_ms, struct rf_idarch **out)
{
    struct rf_idarch *a;
    uint64_t size = 2;

    if (keys_max == 0 || keys_max > RF_IDARCH_KEYS_MAX_LIMIT)
        return -EINVAL;
    while (size < 2ull * keys_max)
        size <<= 1;
    a = rf_calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->cap = keys_max;
    a->mask = size - 1;
    a->keep_us = keep_ms * 1000;
    if (getrandom(&a->seed, sizeof(a->seed), 0) != (ssize_t)sizeof(a->seed))
        a->seed = (XXH64_hash_t)(uintptr_t)a ^ 0x9e3779b97f4a7c15ull;
    a->ring = rf_calloc(keys_max, sizeof(*a->ring));
    a->table = rf_calloc(size, sizeof(*a->table));
    if (!a->ring || !a->table) {
        rf_idarch_free(a);
        return -ENOMEM;
    }
    *out = a;
    return 0;
}

void rf_idarch_free(struct rf_idarch *a)
{
    if (!a)
        return;
    rf_free(a->ring);
    rf_free(a->table);
    rf_free(a);
}

static XXH128_hash_t key_hash(const struct rf_idarch *a, const char *graph, const char *key)
{
    XXH3_state_t s;

    XXH3_128bits_reset_withSeed(&s, a->seed);
    XXH3_128bits_update(&s, graph, strlen(graph) + 1); /* the NUL separates the two */
    XXH3_128bits_update(&s, key, strlen(key));
    return XXH3_128bits_digest(&s);
}

/* The table slot holding h, or the empty slot where it would go. */
static uint64_t probe(const struct rf_idarch *a, XXH128_hash_t h)
{
    uint64_t i = h.low64 & a->mask;

    while (a->table[i] && !XXH128_isEqual(a->ring[a->table[i] - 1].h, h))
        i = (i + 1) & a->mask;
    return i;
}

/* Empty slot i and move later members of its cluster back over the hole. */
static void table_del(struct rf_idarch *a, uint64_t i)
{
    uint64_t j = i;

    a->table[i] = 0;
    for (;;) {
        j = (j + 1) & a->mask;
        if (!a->table[j])
            return;
        uint64_t home = a->ring[a->table[j] - 1].h.low64 & a->mask;
        /* j's entry may fill the hole at i unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            a->table[i] = a->table[j];
            a->table[j] = 0;
            i = j;
        }
    }
}

static void entry_fill(struct entry *e, XXH128_hash_t h, const struct rf_idarch_hit *src)
{
    e->h = h;
    e->created_us = src->created_us;
    e->version = src->version;
    e->status = (uint8_t)src->status;
    memcpy(e->id, src->id, RF_ID_BYTES);
    e->id[RF_ID_BYTES - 1] = '\0';
}

void rf_idarch_put(struct rf_idarch *a, const char *graph, const char *key,
                   const struct rf_idarch_hit *e)
{
    XXH128_hash_t h = key_hash(a, graph, key);

    rf_spin_lock(&a->lock);
    uint64_t i = probe(a, h);
    if (a->table[i]) {
        entry_fill(&a->ring[a->table[i] - 1], h, e);
        rf_spin_unlock(&a->lock);
        return;
    }
    uint32_t pos;
    if (a->n == a->cap) { /* the oldest goes */
        pos = a->head;
        a->head = (a->head + 1) % a->cap;
        uint64_t old = probe(a, a->ring[pos].h);
        RF_ASSERT(a->table[old] == pos + 1);
        table_del(a, old);
        i = probe(a, h); /* the deletion may have moved the hole */
    } else {
        pos = (a->head + a->n) % a->cap;
        a->n++;
    }
    entry_fill(&a->ring[pos], h, e);
    a->table[i] = pos + 1;
    rf_spin_unlock(&a->lock);
}

bool rf_idarch_get(struct rf_idarch *a, const char *graph, const char *key, int64_t now_us,
                   struct rf_idarch_hit *out)
{
    XXH128_hash_t h = key_hash(a, graph, key);
    bool hit = false;

    rf_spin_lock(&a->lock);
    uint64_t i = probe(a, h);
    if (a->table[i]) {
        const struct entry *e = &a->ring[a->table[i] - 1];
        hit = !a->keep_us || now_us - e->created_us <= (int64_t)a->keep_us;
        if (hit) {
            memcpy(out->id, e->id, RF_ID_BYTES);
            out->version = e->version;
            out->status = (rf_status)e->status;
            out->created_us = e->created_us;
        }
    }
    rf_spin_unlock(&a->lock);
    return hit;
}

uint32_t rf_idarch_count(struct rf_idarch *a)
{
    rf_spin_lock(&a->lock);
    uint32_t n = a->n;
    rf_spin_unlock(&a->lock);
    return n;
}
