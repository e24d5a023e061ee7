/*
 * net/hooks.c: webhook definitions and deliveries (net/hooks.h has the contract).
 *
 * The registry is a chained hash table of RF_HOOKS_BUCKETS buckets under one spin lock:
 * lookups are one per delivery and writes one per PUT or DELETE, so there is nothing to
 * shard. A definition is immutable once built (its compiled template, its secrets, its
 * document text) and reference counted, so a delivery holds the one it found while a PUT
 * replaces it.
 */
#include "net/hooks.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "engine/alloc.h"
#include "engine/expr.h"
#include "engine/jcs.h"
#include "engine/rf.h"
#include "net/hooksig.h"

#define RF_HOOKS_BUCKETS 256u
#define ACCOUNT          "default"

struct rf_hook {
    _Atomic uint32_t refs; /* the registry's and every holder's */
    struct rf_hook *next;  /* in its bucket, under the registry's lock */
    char name[RF_HOOK_NAME_BYTES_MAX + 1];
    char graph[65];
    uint32_t version; /* 0: the latest */
    uint32_t window_s;
    uint32_t nsecrets;
    char *secrets[RF_HOOK_SECRETS_MAX];
    size_t secret_lens[RF_HOOK_SECRETS_MAX];
    json_t *inputs;          /* the template as written */
    struct rf_tmpl *tmpl;    /* compiled, or NULL: inputs has no template */
    char *doc;               /* the stored document (compact JSON, secrets included) */
    size_t doc_len;
    int64_t created_us;
};

struct rf_hooks {
    rf_engine *eng;
    rf_spin lock; /* everything below */
    struct rf_hook *buckets[RF_HOOKS_BUCKETS];
    uint32_t n;
};

int rf_hooks_new(rf_engine *eng, struct rf_hooks **out)
{
    struct rf_hooks *hs = rf_calloc(1, sizeof(*hs));

    if (!hs)
        return -ENOMEM;
    hs->eng = eng;
    *out = hs;
    return 0;
}

void rf_hooks_free(struct rf_hooks *hs)
{
    if (!hs)
        return;
    for (uint32_t b = 0; b < RF_HOOKS_BUCKETS; b++)
        for (struct rf_hook *h = hs->buckets[b], *next; h; h = next) {
            next = h->next;
            rf_hook_release(h);
        }
    rf_free(hs);
}

bool rf_hook_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > RF_HOOK_NAME_BYTES_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (i > 0 && (c == '.' || c == '_' || c == '-'));
        if (!ok)
            return false;
    }
    return true;
}

void rf_hook_release(struct rf_hook *h)
{
    /* acq_rel: the last holder sees every other holder's reads done before freeing. */
    if (!h || atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (uint32_t i = 0; i < h->nsecrets; i++) {
        OPENSSL_cleanse(h->secrets[i], h->secret_lens[i]); /* not left in freed memory */
        rf_free(h->secrets[i]);
    }
    rf_tmpl_free(h->tmpl);
    json_decref(h->inputs);
    rf_free(h->doc);
    rf_free(h);
}

/* --- building --------------------------------------------------------------------------- */

static int secrets_of(struct rf_hook *h, const json_t *v, rf_diag *d)
{
    size_t i;
    json_t *s;

    if (!json_is_array(v) || json_array_size(v) == 0 ||
        json_array_size(v) > RF_HOOK_SECRETS_MAX)
        return rf_diag_add(d, "/secrets", "type", "secrets must be an array of 1 to %u strings",
                           RF_HOOK_SECRETS_MAX);
    json_array_foreach(v, i, s) {
        size_t n = json_string_length(s);
        char ptr[32];
        snprintf(ptr, sizeof(ptr), "/secrets/%zu", i);
        if (!json_is_string(s) || n < RF_HOOK_SECRET_BYTES_MIN || n > RF_HOOK_SECRET_BYTES_MAX) {
            rf_diag_add(d, ptr, "type", "a secret is a string of %u to %u bytes",
                        RF_HOOK_SECRET_BYTES_MIN, RF_HOOK_SECRET_BYTES_MAX);
            continue;
        }
        if (!(h->secrets[h->nsecrets] = rf_malloc(n)))
            return -ENOMEM;
        memcpy(h->secrets[h->nsecrets], json_string_value(s), n);
        h->secret_lens[h->nsecrets++] = n;
    }
    return 0;
}

/* The document's fields into h; problems into d. */
static int fields_of(struct rf_hook *h, const json_t *doc, rf_diag *d)
{
    const char *k;
    json_t *v;
    bool has_graph = false, has_secrets = false;
    int rc = 0;

    json_object_foreach((json_t *)doc, k, v) {
        char ptr[80];
        snprintf(ptr, sizeof(ptr), "/%.64s", k);
        if (strcmp(k, "graph") == 0) {
            has_graph = true;
            if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 64)
                rf_diag_add(d, ptr, "type", "graph must be a graph name");
            else
                snprintf(h->graph, sizeof(h->graph), "%s", json_string_value(v));
        } else if (strcmp(k, "version") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > UINT32_MAX)
                rf_diag_add(d, ptr, "type", "version must be a positive integer");
            else
                h->version = (uint32_t)json_integer_value(v);
        } else if (strcmp(k, "inputs") == 0) {
            if (!json_is_object(v))
                rf_diag_add(d, ptr, "type", "inputs must be an object (a template over body, "
                                            "headers and query)");
            else
                h->inputs = json_incref(v);
        } else if (strcmp(k, "secrets") == 0) {
            has_secrets = true;
            if ((rc = secrets_of(h, v, d)) < 0)
                return rc;
        } else if (strcmp(k, "replay_window_s") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > RF_HOOK_WINDOW_S_MAX)
                rf_diag_add(d, ptr, "type", "replay_window_s must be an integer from 1 to %u",
                            RF_HOOK_WINDOW_S_MAX);
            else
                h->window_s = (uint32_t)json_integer_value(v);
        } else {
            rf_diag_add(d, ptr, "unknown_field",
                        "unknown field \"%.64s\" (graph, version, inputs, secrets, "
                        "replay_window_s)",
                        k);
        }
    }
    if (!has_graph)
        rf_diag_add(d, "/graph", "required", "graph is required");
    if (!has_secrets)
        rf_diag_add(d, "/secrets", "required", "secrets is required (at least one)");
    return 0;
}

/* The stored document: the fields as given, in a fixed order, defaults filled in. */
static int doc_of(struct rf_hook *h)
{
    json_t *secrets = json_array(), *o;
    char *text;

    for (uint32_t i = 0; secrets && i < h->nsecrets; i++)
        json_array_append_new(secrets, json_stringn(h->secrets[i], h->secret_lens[i]));
    o = json_pack("{s:s, s:O, s:o, s:I}", "graph", h->graph, "inputs", h->inputs, "secrets",
                  secrets, "replay_window_s", (json_int_t)h->window_s);
    if (o && h->version)
        json_object_set_new(o, "version", json_integer(h->version));
    text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!text)
        return -ENOMEM;
    h->doc_len = strlen(text);
    h->doc = rf_malloc(h->doc_len + 1);
    if (h->doc)
        memcpy(h->doc, text, h->doc_len + 1);
    OPENSSL_cleanse(text, h->doc_len);
    free(text);
    return h->doc ? 0 : -ENOMEM;
}

int rf_hook_build(struct rf_hooks *hs, const char *name, const json_t *doc, int64_t created_us,
                  rf_diag *d, struct rf_hook **out)
{
    struct rf_hook *h = rf_calloc(1, sizeof(*h));
    struct rf_expr_env env = {.request = true};
    rf_plan *p = NULL;
    int rc;

    if (!h)
        return -ENOMEM;
    atomic_init(&h->refs, 1);
    snprintf(h->name, sizeof(h->name), "%s", name);
    h->window_s = RF_HOOK_WINDOW_S_DEFAULT;
    h->created_us = created_us;
    if (!json_is_object(doc)) {
        rc = rf_diag_add(d, "", "type", "a hook is a JSON object");
        goto fail;
    }
    if ((rc = fields_of(h, doc, d)) < 0)
        goto fail;
    if (!h->inputs && !(h->inputs = json_object())) {
        rc = -ENOMEM;
        goto fail;
    }
    if ((rc = rf_tmpl_compile(h->inputs, "/inputs", &env, d, &h->tmpl)) < 0 &&
        rc != RF_EINVAL_GRAPH)
        goto fail;
    if (d->count) {
        rc = RF_EINVAL_GRAPH;
        goto fail;
    }
    if (!(p = rf_graph_get(hs->eng, h->graph, h->version))) {
        rf_diag_add(d, h->version ? "/version" : "/graph", "not_found",
                    h->version ? "graph %s has no version %u" : "graph %s does not exist",
                    h->graph, h->version);
        rc = RF_ENOGRAPH;
        goto fail;
    }
    rf_plan_release(p);
    if ((rc = doc_of(h)) < 0)
        goto fail;
    *out = h;
    return 0;
fail:
    rf_hook_release(h);
    return rc;
}

/* --- the registry ------------------------------------------------------------------------- */

static struct rf_hook **slot(struct rf_hooks *hs, const char *name)
{
    uint32_t b = 2166136261u;

    for (const char *s = name; *s; s++)
        b = (b ^ (uint8_t)*s) * 16777619u;
    struct rf_hook **pp = &hs->buckets[b & (RF_HOOKS_BUCKETS - 1)];
    while (*pp && strcmp((*pp)->name, name) != 0)
        pp = &(*pp)->next;
    return pp;
}

int rf_hooks_put(struct rf_hooks *hs, struct rf_hook *h)
{
    struct rf_hook *old;

    rf_spin_lock(&hs->lock);
    struct rf_hook **pp = slot(hs, h->name);
    old = *pp;
    if (!old && hs->n == RF_HOOKS_MAX) {
        rf_spin_unlock(&hs->lock);
        rf_hook_release(h);
        return -ENOSPC;
    }
    h->next = old ? old->next : NULL;
    *pp = h;
    hs->n += !old;
    rf_spin_unlock(&hs->lock);
    rf_hook_release(old);
    return 0;
}

int rf_hooks_del(struct rf_hooks *hs, const char *name)
{
    struct rf_hook *old;

    rf_spin_lock(&hs->lock);
    struct rf_hook **pp = slot(hs, name);
    old = *pp;
    if (old) {
        *pp = old->next;
        hs->n--;
    }
    rf_spin_unlock(&hs->lock);
    rf_hook_release(old);
    return old ? 0 : -ENOENT;
}

struct rf_hook *rf_hooks_get(struct rf_hooks *hs, const char *name)
{
    struct rf_hook *h;

    rf_spin_lock(&hs->lock);
    h = *slot(hs, name);
    if (h) /* Relaxed: the lock orders it against the registry's release. */
        atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
    rf_spin_unlock(&hs->lock);
    return h;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *rf_hooks_names(struct rf_hooks *hs)
{
    json_t *a = json_array();
    const char **v;
    uint32_t n = 0;

    rf_spin_lock(&hs->lock);
    v = rf_malloc((hs->n ? hs->n : 1) * sizeof(*v));
    for (uint32_t b = 0; v && b < RF_HOOKS_BUCKETS; b++)
        for (struct rf_hook *h = hs->buckets[b]; h; h = h->next)
            v[n++] = h->name;
    if (v && n)
        qsort(v, n, sizeof(*v), cmp_str);
    for (uint32_t i = 0; a && v && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    rf_spin_unlock(&hs->lock);
    rf_free(v);
    return a;
}

void rf_hooks_load(struct rf_hooks *hs, const char *name, const char *doc, size_t doc_len,
                   int64_t created_us)
{
    struct rf_hook *h = NULL;
    json_t *j;
    rf_diag d;

    if (!doc) {
        rf_hooks_del(hs, name);
        return;
    }
    rf_diag_init(&d);
    j = json_loadb(doc, doc_len, 0, NULL);
    int rc = j ? rf_hook_build(hs, name, j, created_us, &d, &h) : RF_EINVAL_GRAPH;
    if (rc == 0)
        rc = rf_hooks_put(hs, h);
    if (rc < 0)
        rf_log_warn("\"msg\":\"webhook not restored\",\"hook\":\"%s\",\"why\":\"%s\"",
                    name, d.count ? d.items[0].message : rf_strerror(rc));
    json_decref(j);
    rf_diag_free(&d);
}

/* --- reading a hook ------------------------------------------------------------------------ */

const char *rf_hook_name(const struct rf_hook *h)
{
    return h->name;
}

const char *rf_hook_doc(const struct rf_hook *h, size_t *len)
{
    *len = h->doc_len;
    return h->doc;
}

int64_t rf_hook_created_us(const struct rf_hook *h)
{
    return h->created_us;
}

json_t *rf_hook_view(const struct rf_hook *h)
{
    char ts[RF_TS_LEN];
    json_t *o = json_pack("{s:s, s:s, s:O, s:i, s:i, s:s, s:s}", "name", h->name, "graph",
                          h->graph, "inputs", h->inputs, "secrets", (json_int_t)h->nsecrets,
                          "replay_window_s", (json_int_t)h->window_s, "created_at",
                          rf_fmt_ts(h->created_us, ts), "account", ACCOUNT);

    if (o && h->version)
        json_object_set_new(o, "version", json_integer(h->version));
    return o;
}

rf_plan *rf_hook_plan(struct rf_hooks *hs, const struct rf_hook *h)
{
    return rf_graph_get(hs->eng, h->graph, h->version);
}

/* --- deliveries ----------------------------------------------------------------------------- */

static int why_set(char *why, size_t cap, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int why_set(char *why, size_t cap, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return rc;
}

int rf_hook_deliver(const struct rf_hook *h, const struct rf_hook_delivery *dv, json_t **inputs,
                    char *why, size_t why_cap)
{
    struct rf_hooksig sig;
    char reason[128];
    json_t *body = NULL;
    rf_error err = {0};
    int rc;

    if (!dv->sig)
        return why_set(why, why_cap, RF_HOOK_UNAUTHORIZED, "X-Ringflow-Signature is missing");
    if (rf_hooksig_parse(dv->sig, dv->sig_len, &sig, reason, sizeof(reason)) < 0)
        return why_set(why, why_cap, RF_HOOK_UNAUTHORIZED, "X-Ringflow-Signature: %s", reason);
    switch (rf_hooksig_check(&sig, dv->body, dv->body_len, (const char *const *)h->secrets,
                             h->secret_lens, h->nsecrets, dv->now, h->window_s)) {
    case RF_HOOKSIG_STALE:
        return why_set(why, why_cap, RF_HOOK_UNAUTHORIZED,
                       "the signature's timestamp is outside the replay window of %u s",
                       h->window_s);
    case RF_HOOKSIG_MISMATCH:
        return why_set(why, why_cap, RF_HOOK_UNAUTHORIZED,
                       "the signature does not match the body with any secret of this hook");
    default:
        break;
    }
    if (dv->body_is_json) {
        json_error_t je;
        body = dv->body_len ? json_loadb(dv->body, dv->body_len, JSON_DECODE_ANY, &je) : NULL;
        if (dv->body_len && !body)
            return why_set(why, why_cap, RF_HOOK_BAD_BODY, "body: line %d, column %d: %s",
                           je.line, je.column, je.text);
    } else if (dv->body_len) {
        body = json_stringn(dv->body, dv->body_len);
        if (!body)
            return why_set(why, why_cap, RF_HOOK_BAD_BODY, "the body is not UTF-8 text");
    }
    if (!h->tmpl) {
        *inputs = json_deep_copy(h->inputs);
        rc = *inputs ? RF_HOOK_OK : -ENOMEM;
    } else {
        struct rf_scope sc = {.body = body, .headers = dv->headers, .query = dv->query};
        rc = rf_tmpl_eval(h->tmpl, &sc, inputs, &err);
        if (rc == RF_EINVAL_GRAPH)
            rc = why_set(why, why_cap, RF_HOOK_BAD_INPUTS, "inputs: %s", err.message);
        else if (rc < 0)
            rc = -ENOMEM;
        else
            rc = RF_HOOK_OK;
    }
    json_decref(body);
    return rc;
}
