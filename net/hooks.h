/*
 * net/hooks.h: webhook definitions and deliveries (spec/api.md, "Webhooks").
 *
 * A hook is a name bound to a graph (and optionally a version), an `inputs` template over
 * the delivery (`body`, `headers`, `query`: engine/expr.h's request mode), the secrets
 * any of which may sign a delivery (rotation: list the new one beside the old), and a
 * replay window. PUT /v1/hooks/{hook} builds one (rf_hook_build: every problem named by its
 * field), journals its document, and only then installs it (rf_hooks_put), so a hook
 * answered 201 survives a crash; recovery installs them again from the journal
 * (rf_hooks_load). Secrets are stored in the journal and never shown by GET.
 *
 * A delivery (POST /v1/hooks/{hook}) is checked by rf_hook_deliver: the signature first
 * (net/hooksig.h: 401 when missing, malformed, stale or not matching), then the body
 * (JSON when its Content-Type says so, else its text as a JSON string), then the inputs
 * template. The caller submits the execution through the normal durable path, with the
 * idempotency key "hook:<hook>:<delivery id>" when the sender gives a delivery id, so a
 * redelivery finds the first execution.
 *
 * Threads: the registry is read by every shard (a spin lock around a small hash table;
 * definitions are immutable and reference counted) and written by whichever shard
 * answers a PUT or DELETE.
 */
#ifndef RF_NET_HOOKS_H
#define RF_NET_HOOKS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ringflow.h"

#define RF_HOOK_NAME_BYTES_MAX   64u    /* [a-z0-9][a-z0-9._-]*, like graph names */
#define RF_HOOK_SECRETS_MAX      8u
#define RF_HOOK_SECRET_BYTES_MIN 16u
#define RF_HOOK_SECRET_BYTES_MAX 1024u
#define RF_HOOK_WINDOW_S_DEFAULT 300u
#define RF_HOOK_WINDOW_S_MAX     86400u
#define RF_HOOKS_MAX             10000u /* hooks defined at once */
#define RF_HOOK_DELIVERY_BYTES_MAX 200u /* a delivery id */

struct rf_hooks;
struct rf_hook;

int rf_hooks_new(rf_engine *eng, struct rf_hooks **out);
void rf_hooks_free(struct rf_hooks *hs); /* NULL is a no-op */

/* Is `name` a valid hook name? */
bool rf_hook_name_ok(const char *name);

/* Build hook `name` from its document `doc` (borrowed): {graph, version?, inputs, secrets,
 * replay_window_s?}. 0 with *out (one reference, the caller's), RF_EINVAL_GRAPH with the
 * problems in d (pointers into the document), RF_ENOGRAPH when the graph (version) does
 * not exist (d says which), -ENOMEM. */
int rf_hook_build(struct rf_hooks *hs, const char *name, const json_t *doc, int64_t created_us,
                  rf_diag *d, struct rf_hook **out);
/* Install h under its name (takes the caller's reference), replacing any earlier one.
 * -ENOSPC past RF_HOOKS_MAX. */
int rf_hooks_put(struct rf_hooks *hs, struct rf_hook *h);
/* Remove the hook `name`: 0 or -ENOENT. */
int rf_hooks_del(struct rf_hooks *hs, const char *name);
/* The hook `name`, retained, or NULL. */
struct rf_hook *rf_hooks_get(struct rf_hooks *hs, const char *name);
void rf_hook_release(struct rf_hook *h); /* NULL is a no-op */
/* Names of every hook, sorted, as a JSON array (a new reference). */
json_t *rf_hooks_names(struct rf_hooks *hs);

/* Recovery: a definition from the journal (doc NULL: deleted). Bad ones are logged and
 * skipped (their graph may have gone). */
void rf_hooks_load(struct rf_hooks *hs, const char *name, const char *doc, size_t doc_len,
                   int64_t created_us);

const char *rf_hook_name(const struct rf_hook *h);
/* The document as stored in the journal (secrets included): compact JSON text. */
const char *rf_hook_doc(const struct rf_hook *h, size_t *len);
int64_t rf_hook_created_us(const struct rf_hook *h);
/* What GET shows: the document without the secrets (their count instead), the name,
 * created_at, account. A new reference. */
json_t *rf_hook_view(const struct rf_hook *h);

/* A delivery's parts, all borrowed. */
struct rf_hook_delivery {
    const char *sig;        /* X-Ringflow-Signature's value, NULL when absent */
    size_t sig_len;
    const char *body;       /* the raw body */
    size_t body_len;
    bool body_is_json;      /* Content-Type application/json (or +json) */
    const json_t *headers;  /* {lowercase name: value} */
    const json_t *query;    /* {name: value} */
    int64_t now;            /* unix seconds */
};

enum {
    RF_HOOK_OK = 0,
    RF_HOOK_UNAUTHORIZED = 1, /* 401: the signature is missing, malformed, stale or wrong */
    RF_HOOK_BAD_BODY = 2,     /* 400: a JSON body that does not parse */
    RF_HOOK_BAD_INPUTS = 3,   /* 422: the inputs template did not resolve */
};

/* Check a delivery and build its inputs (*inputs a new reference on RF_HOOK_OK). The
 * result, with a reason in why (why_cap bytes) otherwise; -ENOMEM. */
int rf_hook_deliver(const struct rf_hook *h, const struct rf_hook_delivery *dv, json_t **inputs,
                    char *why, size_t why_cap);
/* The plan the hook submits to (retained), or NULL when its graph (version) is gone. */
rf_plan *rf_hook_plan(struct rf_hooks *hs, const struct rf_hook *h);

#endif /* RF_NET_HOOKS_H */
