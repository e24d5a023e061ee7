/*
 * engine/registry.c: registered graphs, by name and version.
 *
 * rf_graph_register() parses and compiles a document outside any lock, hashes its
 * canonical form (RFC 8785 JCS, XXH3-128: the graph_hash), and then, under the write lock,
 * either finds an identical earlier version of the name (same hash: returned as it is,
 * nothing stored) or appends version n+1. Versions are immutable plans, shared by
 * reference with every execution that runs them.
 *
 * Sub-graphs: a `graph` node must name a registered graph (and version, if it gives one)
 * with a literal string, and registration refuses a version that would let a graph call
 * itself through any path: a depth-first walk from each callee over the calls of every
 * version of every graph it reaches must not come back to the name being registered.
 * Because callees must exist first and versions never change, a registry built this way
 * never holds a cycle, so the `graph` kind needs only its depth limit at run time.
 *
 * Concurrency: one pthread rwlock. Lookups (the `graph` kind on shards, the API) take it
 * shared for a binary search and a reference count increment; registration takes it
 * exclusively only to insert. Entries are kept sorted by name for lookups and listing.
 */
#include "engine/rf.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "engine/internal.h"
#include "engine/jcs.h"

#define RF_REGISTRY_NAMES_MAX   1000000u
#define RF_GRAPH_VERSIONS_MAX   65536u
#define RF_REGISTRY_WALK_MAX    100000u /* graphs visited by one recursion check */

struct rf_gentry {
    char *name;
    rf_plan **versions; /* versions[k] is version k + 1 */
    uint32_t n, cap;
};

struct rf_registry {
    pthread_rwlock_t lock;
    struct rf_gentry **ents; /* sorted by name */
    uint32_t n, cap;
};

int rf__registry_new(struct rf_registry **out)
{
    struct rf_registry *r = calloc(1, sizeof(*r));

    if (!r)
        return -ENOMEM;
    if (pthread_rwlock_init(&r->lock, NULL) != 0) {
        free(r);
        return -ENOMEM;
    }
    *out = r;
    return 0;
}

void rf__registry_free(struct rf_registry *r)
{
    if (!r)
        return;
    for (uint32_t i = 0; i < r->n; i++) {
        for (uint32_t v = 0; v < r->ents[i]->n; v++)
            rf_plan_release(r->ents[i]->versions[v]);
        free(r->ents[i]->versions);
        free(r->ents[i]->name);
        free(r->ents[i]);
    }
    free(r->ents);
    pthread_rwlock_destroy(&r->lock);
    free(r);
}

/* Index of `name`, or -(insertion point) - 1. Lock held. */
static int64_t find(const struct rf_registry *r, const char *name)
{
    uint32_t lo = 0, hi = r->n;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->ents[mid]->name, name);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(int64_t)lo - 1;
}

static struct rf_gentry *entry(const struct rf_registry *r, const char *name)
{
    int64_t k = find(r, name);
    return k >= 0 ? r->ents[k] : NULL;
}

/* --- recursion ------------------------------------------------------------------------- */

struct walk {
    const struct rf_registry *r;
    const char *target;
    const struct rf_gentry **seen;
    uint32_t nseen, cap;
};

static bool walk_seen(struct walk *w, const struct rf_gentry *e)
{
    for (uint32_t k = 0; k < w->nseen; k++)
        if (w->seen[k] == e)
            return true;
    return false;
}

/* 1 when `name` reaches w->target through calls, 0 when not, -ENOMEM / RF_ELIMIT. */
static int walk_from(struct walk *w, const char *name)
{
    const struct rf_gentry *e;

    if (strcmp(name, w->target) == 0)
        return 1;
    e = entry(w->r, name);
    if (!e || walk_seen(w, e))
        return 0;
    if (w->nseen == RF_REGISTRY_WALK_MAX)
        return RF_ELIMIT;
    if (w->nseen == w->cap) {
        uint32_t cap = w->cap ? w->cap * 2 : 16;
        const struct rf_gentry **s = realloc(w->seen, cap * sizeof(*s));
        if (!s)
            return -ENOMEM;
        w->seen = s;
        w->cap = cap;
    }
    w->seen[w->nseen++] = e;
    for (uint32_t v = 0; v < e->n; v++) {
        const rf_plan *p = e->versions[v];
        for (uint32_t c = 0; c < p->ncalls; c++) {
            int rc = walk_from(w, p->calls[c]);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

/* Every literal call of `p` must exist and must not lead back to p's name. Lock held. */
static int check_calls(const struct rf_registry *r, const rf_plan *p, rf_diag *diag)
{
    struct walk w = {.r = r, .target = p->name};
    int bad = 0;

    for (uint32_t i = 0; i < p->n; i++) {
        const json_t *cfg = p->nodes[i].config;
        const char *name = json_string_value(json_object_get(cfg, "name"));
        json_int_t ver = json_integer_value(json_object_get(cfg, "version"));
        const struct rf_gentry *e;
        char ptr[48];
        int rc;

        if (strcmp(p->cold[i].kind_name, "graph") != 0 || !name)
            continue;
        snprintf(ptr, sizeof(ptr), "/nodes/%u/config/name", i);
        e = entry(r, name);
        if (strcmp(name, p->name) == 0) {
            rf_diag_add(diag, ptr, "recursive_graph", "graph \"%.80s\" calls itself", name);
            bad = 1;
            continue;
        }
        if (!e || (ver > 0 && (uint64_t)ver > e->n)) {
            rf_diag_add(diag, ptr, "unknown_graph",
                        "no graph \"%.80s\"%s is registered (register it before its callers)",
                        name, ver > 0 ? " of that version" : "");
            bad = 1;
            continue;
        }
        w.nseen = 0;
        rc = walk_from(&w, name);
        if (rc < 0) {
            free(w.seen);
            return rc;
        }
        if (rc == 1) {
            rf_diag_add(diag, ptr, "recursive_graph",
                        "graph \"%.80s\" calls \"%.80s\", which leads back to \"%.80s\"",
                        p->name, name, p->name);
            bad = 1;
        }
    }
    free(w.seen);
    return bad ? RF_EINVAL_GRAPH : 0;
}

/* --- registration ------------------------------------------------------------------------ */

static int doc_hash(const json_t *doc, char out[33])
{
    struct rf_buf b = {0};
    uint8_t h[16];
    int rc = rf_jcs_write(doc, &b);

    if (rc == 0) {
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, XXH3_128bits(b.p, b.len));
        memcpy(h, c.digest, 16);
        rf_hex128(h, out);
    }
    rf_buf_free(&b);
    return rc;
}

static struct rf_gentry *entry_insert(struct rf_registry *r, const char *name, int64_t at)
{
    struct rf_gentry *e;
    uint32_t pos = (uint32_t)(-at - 1);

    if (r->n == RF_REGISTRY_NAMES_MAX)
        return NULL;
    if (r->n == r->cap) {
        uint32_t cap = r->cap ? r->cap * 2 : 16;
        struct rf_gentry **ents = realloc(r->ents, cap * sizeof(*ents));
        if (!ents)
            return NULL;
        r->ents = ents;
        r->cap = cap;
    }
    e = calloc(1, sizeof(*e));
    if (!e || !(e->name = strdup(name))) {
        free(e);
        return NULL;
    }
    memmove(r->ents + pos + 1, r->ents + pos, (r->n - pos) * sizeof(*r->ents));
    r->ents[pos] = e;
    r->n++;
    return e;
}

static int version_append(struct rf_gentry *e, rf_plan *p, int64_t created_us)
{
    if (e->n == RF_GRAPH_VERSIONS_MAX)
        return RF_ELIMIT;
    if (e->n == e->cap) {
        uint32_t cap = e->cap ? e->cap * 2 : 4;
        rf_plan **v = realloc(e->versions, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        e->versions = v;
        e->cap = cap;
    }
    p->version = e->n + 1;
    p->created_us = created_us ? created_us : rf_wall_us();
    e->versions[e->n++] = rf_plan_retain(p);
    return 0;
}

/* Under the write lock: an identical version, or a new one. */
static int register_locked(struct rf_registry *r, rf_plan *p, int64_t created_us, rf_diag *diag,
                           rf_plan **found)
{
    int64_t k = find(r, p->name);
    struct rf_gentry *e = k >= 0 ? r->ents[k] : NULL;
    int rc;

    for (uint32_t v = 0; e && v < e->n; v++) {
        if (strcmp(e->versions[v]->hash, p->hash) == 0) {
            *found = rf_plan_retain(e->versions[v]);
            return 0;
        }
    }
    rc = check_calls(r, p, diag);
    if (rc < 0)
        return rc;
    if (!e && !(e = entry_insert(r, p->name, k)))
        return r->n == RF_REGISTRY_NAMES_MAX ? RF_ELIMIT : -ENOMEM;
    return version_append(e, p, created_us);
}

int rf_graph_register(rf_engine *eng, const char *json, size_t len, rf_diag *diag,
                      rf_plan **out, bool *created)
{
    return rf__graph_register_at(eng, json, len, 0, diag, out, created);
}

int rf__graph_register_at(rf_engine *eng, const char *json, size_t len, int64_t created_us,
                          rf_diag *diag, rf_plan **out, bool *created)
{
    struct rf_registry *r = eng ? eng->reg : NULL;
    rf_plan *p = NULL, *found = NULL;
    int rc;

    if (!r || !json)
        return -EINVAL;
    rc = rf_plan_from_json(eng, json, len, diag, &p);
    if (rc < 0)
        return rc;
    rc = doc_hash(p->doc, p->hash);
    if (rc < 0)
        goto out;
    pthread_rwlock_wrlock(&r->lock);
    rc = register_locked(r, p, created_us, diag, &found);
    pthread_rwlock_unlock(&r->lock);
    if (rc < 0)
        goto out;
    if (created)
        *created = found == NULL;
    if (found) {
        rf_plan_release(p);
        p = found;
    }
    if (out) {
        *out = p;
        p = NULL;
    }
out:
    rf_plan_release(p);
    return rc;
}

rf_plan *rf_graph_get(rf_engine *eng, const char *name, uint32_t version)
{
    struct rf_registry *r = eng->reg;
    const struct rf_gentry *e;
    rf_plan *p = NULL;

    pthread_rwlock_rdlock(&r->lock);
    e = entry(r, name);
    if (e && e->n && version <= e->n)
        p = rf_plan_retain(e->versions[version ? version - 1 : e->n - 1]);
    pthread_rwlock_unlock(&r->lock);
    return p;
}

int rf_graph_foreach(rf_engine *eng, int (*fn)(void *ud, const rf_plan *latest), void *ud)
{
    struct rf_registry *r = eng->reg;
    int rc = 0;

    pthread_rwlock_rdlock(&r->lock);
    for (uint32_t i = 0; i < r->n && rc == 0; i++)
        rc = fn(ud, r->ents[i]->versions[r->ents[i]->n - 1]);
    pthread_rwlock_unlock(&r->lock);
    return rc;
}
