/*
 * net/apidefs.c: the definitions of triggers: /v1/hooks (spec/api.md, "Webhooks";
 * net/hooks.h has the model) and /v1/triggers (cron; net/triggers.h).
 *
 *   GET    /v1/hooks          {hooks: [names]}
 *   PUT    /v1/hooks/{hook}   define (201) or redefine (200); answered once journaled
 *   GET    /v1/hooks/{hook}   the definition without its secrets (their count instead)
 *   DELETE /v1/hooks/{hook}   204 once the deletion is journaled
 *   POST   /v1/hooks/{hook}   a delivery: 401 unless signed, then 202 like a submission
 *                             (200 for a repeated X-Ringflow-Delivery)
 *
 *   GET    /v1/triggers           {triggers: [names]}
 *   PUT    /v1/triggers/{name}    define (201) or redefine (200); answered once journaled
 *   GET    /v1/triggers/{name}    the definition, last_fired_slot and next_fire_at
 *   DELETE /v1/triggers/{name}    204 once the deletion is journaled
 *
 * A definition goes to the journal of the shard that received it (a DEF record with the
 * graph versions, never deleted by retention) and is installed only once the record is
 * durable, as PUT /v1/graphs does; the request is parked meanwhile.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "engine/alloc.h"
#include "net/api_int.h"
#include "net/metrics.h"
#include "net/sjournal.h"
#include "net/triggers.h"
#include "net/url.h"
#include "storage/xrec.h"

#define DELIVERY_HEADER  "x-ringflow-delivery"
#define SIGNATURE_HEADER "x-ringflow-signature"

/* A PUT or DELETE parked until its DEF record is durable. */
struct pdef {
    struct rf_jwait w;
    struct rf_rctx x;
    struct rf_api *api;
    uint8_t kind;              /* RF_XDEF_HOOK or RF_XDEF_TRIGGER */
    struct rf_hook *h;         /* a hook's PUT: installed once durable */
    struct rf_ctrigger *t;     /* a trigger's PUT: installed once durable */
    char name[RF_HOOK_NAME_BYTES_MAX + 1];
    int status; /* PUT: 201 or 200 */
    bool gone;
};

static void pdef_closed(void *ud)
{
    ((struct pdef *)ud)->gone = true;
}

/* Install what a PUT built (taking its reference): its view, or NULL when full. */
static json_t *install(struct pdef *p)
{
    json_t *view;
    int rc;

    if (p->kind == RF_XDEF_HOOK) {
        view = rf_hook_view(p->h);
        rc = rf_hooks_put(p->api->hooks, p->h);
        p->h = NULL;
    } else {
        view = rf_trigger_view(p->api->triggers, p->t);
        rc = rf_triggers_put(p->api->triggers, p->t);
        p->t = NULL;
    }
    if (rc < 0) {
        json_decref(view);
        return NULL;
    }
    return view;
}

static void pdef_done(struct rf_jwait *w, int res)
{
    struct pdef *p = rf_container_of(w, struct pdef, w);

    if (res == 0 && (p->h || p->t)) {
        json_t *view = install(p);
        if (p->gone)
            json_decref(view);
        else if (!view)
            rf_resp_error(&p->x, 507, "limit", NULL, NULL, "at most %u %s", 
                          p->kind == RF_XDEF_HOOK ? RF_HOOKS_MAX : RF_TRIGGERS_MAX,
                          p->kind == RF_XDEF_HOOK ? "hooks" : "triggers");
        else
            rf_resp_json(&p->x, p->status, NULL, view);
    } else if (res == 0) {
        if (p->kind == RF_XDEF_HOOK)
            rf_hooks_del(p->api->hooks, p->name);
        else
            rf_triggers_del(p->api->triggers, p->name);
        if (!p->gone)
            rf_resp(&p->x, 204, NULL, NULL, NULL, 0);
    } else if (!p->gone) {
        rf__api_journal_refused(&p->x, res);
    }
    rf_hook_release(p->h);
    rf_trigger_release(p->t);
    rf_free(p);
}

/* Journal a definition (h or t, or neither to delete `name`) and answer once it is
 * durable. Takes the reference to h or t. */
static void def_journal(struct rf_api *api, struct rf_hreq *r, uint8_t kind, const char *name,
                        struct rf_hook *h, struct rf_ctrigger *t, int status)
{
    struct pdef *p = rf_calloc(1, sizeof(*p));
    const char *doc = NULL;
    size_t len = 0;
    int rc;

    if (!p) {
        rf_hook_release(h);
        rf_trigger_release(t);
        return rf_resp_error(&r->x, 500, "no_memory", NULL, NULL, "out of memory");
    }
    p->api = api;
    p->x = r->x;
    p->kind = kind;
    p->h = h;
    p->t = t;
    p->status = status;
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->w.done = pdef_done;
    if (!api->sj) { /* no journal (an embedding without one): in memory only */
        pdef_done(&p->w, 0);
        return;
    }
    if (h)
        doc = rf_hook_doc(h, &len);
    else if (t)
        doc = rf_trigger_doc(t, &len);
    int64_t created = kind == RF_XDEF_TRIGGER && t ? rf_triggers_now(api->triggers) * 1000000
                                                   : rf_wall_us();
    rc = rf_sjournal_def(api->sj, kind, name, doc, len, created, &p->w);
    if (rc < 0) {
        rf_hook_release(p->h);
        rf_trigger_release(p->t);
        rf_free(p);
        return rf__api_journal_refused(&r->x, rc);
    }
    rf_conn_park(&p->x, pdef_closed, p);
}

static void hook_put(struct rf_api *api, struct rf_hreq *r, const char *name)
{
    struct rf_hook *h = NULL, *old;
    json_t *body;
    rf_diag d;
    int rc;

    if (!rf_hook_name_ok(name))
        return rf_resp_error(&r->x, 400, "invalid_name", NULL, NULL,
                             "a hook name is 1 to %u of [a-z0-9._-], starting with a letter or "
                             "digit",
                             RF_HOOK_NAME_BYTES_MAX);
    if (!(body = rf__api_json_body(r, false)))
        return;
    rf_diag_init(&d);
    rc = rf_hook_build(api->hooks, name, body, rf_wall_us(), &d, &h);
    if (rc == RF_ENOGRAPH)
        rf_resp_error(&r->x, 422, "unknown_graph", NULL, rf__api_diag_details(&d), "%s",
                      d.items[0].message);
    else if (rc == RF_EINVAL_GRAPH)
        rf_resp_error(&r->x, 422, "invalid_hook", NULL, rf__api_diag_details(&d),
                      "the hook has %u problem(s)", d.count);
    else if (rc < 0)
        rf_resp_error(&r->x, 500, "no_memory", NULL, NULL, "out of memory");
    rf_diag_free(&d);
    json_decref(body);
    if (rc < 0)
        return;
    old = rf_hooks_get(api->hooks, name);
    def_journal(api, r, RF_XDEF_HOOK, name, h, NULL, old ? 200 : 201);
    rf_hook_release(old);
}

static void hook_get(struct rf_api *api, struct rf_hreq *r, const char *name)
{
    struct rf_hook *h = rf_hooks_get(api->hooks, name);

    if (!h)
        return rf__api_not_found(r, "hook", name);
    rf_resp_json(&r->x, 200, NULL, rf_hook_view(h));
    rf_hook_release(h);
}

static void hook_del(struct rf_api *api, struct rf_hreq *r, const char *name)
{
    struct rf_hook *h = rf_hooks_get(api->hooks, name);

    if (!h)
        return rf__api_not_found(r, "hook", name);
    rf_hook_release(h);
    def_journal(api, r, RF_XDEF_HOOK, name, NULL, NULL, 204);
}

/* --- deliveries ------------------------------------------------------------------------------ */

static bool is_json_type(const struct rf_http_header *ct)
{
    if (!ct)
        return false;
    const char *p = ct->value.p;
    size_t n = ct->value.n;
    const char *semi = memchr(p, ';', n);
    if (semi)
        n = (size_t)(semi - p);
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    return (n == 16 && strncasecmp(p, "application/json", 16) == 0) ||
           (n > 5 && strncasecmp(p + n - 5, "+json", 5) == 0);
}

/* The delivery's headers as {lowercase name: value}; repeated ones joined with ", ". */
static json_t *headers_json(const struct rf_http_req *h)
{
    json_t *o = json_object();

    for (uint32_t i = 0; o && i < h->nheaders; i++) {
        const struct rf_http_header *f = &h->headers[i];
        char name[128];
        size_t n = RF_MIN(f->name.n, sizeof(name) - 1);
        for (size_t k = 0; k < n; k++)
            name[k] = (char)(f->name.p[k] >= 'A' && f->name.p[k] <= 'Z' ? f->name.p[k] + 32
                                                                         : f->name.p[k]);
        name[n] = '\0';
        json_t *old = json_object_get(o, name);
        json_t *v = old ? json_sprintf("%s, %.*s", json_string_value(old), (int)f->value.n,
                                       f->value.p)
                        : json_stringn(f->value.p, f->value.n);
        if (v)
            json_object_set_new(o, name, v); /* a value that is not UTF-8 is left out */
    }
    return o;
}

/* The query's parameters as {name: value} (decoded, '+' as space; the last of a repeated
 * one; one that does not decode or is not UTF-8 is left out). */
static json_t *query_json(struct rf_slice q)
{
    json_t *o = json_object();
    struct rf_query_it it;
    struct rf_slice k, v;

    rf_query_begin(&it, q);
    while (o && rf_query_next(&it, &k, &v) == 1) {
        char kb[256], vb[1024];
        int kn = rf_url_decode(k.p, k.n, true, kb, sizeof(kb));
        int vn = rf_url_decode(v.p, v.n, true, vb, sizeof(vb));
        if (kn <= 0 || vn < 0)
            continue;
        json_t *jv = json_stringn(vb, (size_t)vn);
        json_t *jk = json_stringn(kb, (size_t)kn); /* is the key UTF-8? */
        if (jv && jk)
            json_object_set_new(o, kb, jv);
        else
            json_decref(jv);
        json_decref(jk);
    }
    return o;
}

static void hook_post(struct rf_api *api, struct rf_hreq *r, const char *name)
{
    const struct rf_http_header *sig = rf_http_header_get(r->h, SIGNATURE_HEADER);
    const struct rf_http_header *dlv = rf_http_header_get(r->h, DELIVERY_HEADER);
    struct rf_hook *h;
    json_t *inputs = NULL, *headers = NULL, *query = NULL, *tags = NULL;
    char why[256], idem[RF_HOOK_NAME_BYTES_MAX + RF_HOOK_DELIVERY_BYTES_MAX + 8];
    rf_diag d;
    int rc;

    r->x.route = RF_ROUTE_HOOK_DELIVERY;
    if (rf__api_draining(api))
        return rf_resp_error(&r->x, 503, "stopping", "Retry-After: 5\r\n", NULL,
                             "the server is stopping");
    if (!(h = rf_hooks_get(api->hooks, name)))
        return rf__api_not_found(r, "hook", name);
    if (dlv && (dlv->value.n == 0 || dlv->value.n > RF_HOOK_DELIVERY_BYTES_MAX)) {
        rf_hook_release(h);
        return rf_resp_error(&r->x, 400, "bad_request", NULL, NULL,
                             "X-Ringflow-Delivery must be 1 to %u bytes",
                             RF_HOOK_DELIVERY_BYTES_MAX);
    }
    headers = headers_json(r->h);
    query = query_json(r->h->query);
    struct rf_hook_delivery dv = {.sig = sig ? sig->value.p : NULL,
                                  .sig_len = sig ? sig->value.n : 0,
                                  .body = r->body,
                                  .body_len = r->body_len,
                                  .body_is_json =
                                      is_json_type(rf_http_header_get(r->h, "content-type")),
                                  .headers = headers,
                                  .query = query,
                                  .now = rf_wall_us() / 1000000};
    rc = rf_hook_deliver(h, &dv, &inputs, why, sizeof(why));
    json_decref(headers);
    json_decref(query);
    switch (rc) {
    case RF_HOOK_OK: break;
    case RF_HOOK_UNAUTHORIZED:
        rf_resp_error(&r->x, 401, "unauthorized", NULL, NULL, "%s", why);
        goto out;
    case RF_HOOK_BAD_BODY:
        rf_resp_error(&r->x, 400, "malformed_json", NULL, NULL, "%s", why);
        goto out;
    case RF_HOOK_BAD_INPUTS:
        rf_resp_error(&r->x, 422, "invalid_inputs", NULL, NULL, "%s", why);
        goto out;
    default:
        rf_resp_error(&r->x, 500, "no_memory", NULL, NULL, "out of memory");
        goto out;
    }
    rf_plan *plan = rf_hook_plan(api->hooks, h);
    if (!plan) {
        json_decref(inputs);
        rf_resp_error(&r->x, 404, "not_found", NULL, NULL,
                      "the graph of hook %s is not registered any more", name);
        goto out;
    }
    if (dlv)
        snprintf(idem, sizeof(idem), "hook:%s:%.*s", name, (int)dlv->value.n, dlv->value.p);
    tags = json_pack("[s+]", "hook:", name);
    rf_diag_init(&d);
    rf__api_submit_plan(api, &r->x, plan, inputs, dlv ? idem : NULL, tags, &d);
    rf_diag_free(&d);
    json_decref(tags);
out:
    rf_hook_release(h);
}

/* --- cron triggers ------------------------------------------------------------------------ */

static void trigger_put(struct rf_api *api, struct rf_hreq *r, const char *name)
{
    struct rf_ctrigger *t = NULL, *old;
    json_t *body;
    rf_diag d;
    int rc;

    if (!rf_trigger_name_ok(name))
        return rf_resp_error(&r->x, 400, "invalid_name", NULL, NULL,
                             "a trigger name is 1 to %u of [a-z0-9._-], starting with a letter "
                             "or digit",
                             RF_TRIGGER_NAME_MAX);
    if (!(body = rf__api_json_body(r, false)))
        return;
    rf_diag_init(&d);
    rc = rf_trigger_build(api->triggers, name, body, rf_triggers_now(api->triggers) * 1000000,
                          &d, &t);
    if (rc == RF_ENOGRAPH)
        rf_resp_error(&r->x, 422, "unknown_graph", NULL, rf__api_diag_details(&d), "%s",
                      d.items[0].message);
    else if (rc == RF_EINVAL_GRAPH)
        rf_resp_error(&r->x, 422, "invalid_trigger", NULL, rf__api_diag_details(&d),
                      "the trigger has %u problem(s)", d.count);
    else if (rc < 0)
        rf_resp_error(&r->x, 500, "no_memory", NULL, NULL, "out of memory");
    rf_diag_free(&d);
    json_decref(body);
    if (rc < 0)
        return;
    old = rf_triggers_get(api->triggers, name);
    def_journal(api, r, RF_XDEF_TRIGGER, name, NULL, t, old ? 200 : 201);
    rf_trigger_release(old);
}

void rf__api_triggers(struct rf_api *api, struct rf_hreq *r, struct rf_slice *seg, int n)
{
    char name[RF_TRIGGER_NAME_MAX + 1];
    struct rf_ctrigger *t;

    if (!api->triggers)
        return rf_resp_error(&r->x, 404, "not_found", NULL, NULL, "no cron triggers here");
    if (n == 2) {
        r->x.route = RF_ROUTE_TRIGGERS;
        if (r->h->method != RF_HTTP_GET && r->h->method != RF_HTTP_HEAD)
            return rf__api_method_not_allowed(r, "GET, HEAD");
        return rf_resp_json(&r->x, 200, NULL,
                            json_pack("{s:o}", "triggers", rf_triggers_names(api->triggers)));
    }
    if (n != 3 || rf__api_seg_name(seg[2], name, sizeof(name)) < 0)
        return rf_resp_error(&r->x, 404, "not_found", NULL, NULL, "no such resource");
    r->x.route = RF_ROUTE_TRIGGER;
    switch (r->h->method) {
    case RF_HTTP_PUT: return trigger_put(api, r, name);
    case RF_HTTP_GET:
    case RF_HTTP_HEAD:
        if (!(t = rf_triggers_get(api->triggers, name)))
            return rf__api_not_found(r, "trigger", name);
        rf_resp_json(&r->x, 200, NULL, rf_trigger_view(api->triggers, t));
        rf_trigger_release(t);
        return;
    case RF_HTTP_DELETE:
        if (!(t = rf_triggers_get(api->triggers, name)))
            return rf__api_not_found(r, "trigger", name);
        rf_trigger_release(t);
        return def_journal(api, r, RF_XDEF_TRIGGER, name, NULL, NULL, 204);
    default: return rf__api_method_not_allowed(r, "GET, HEAD, PUT, DELETE");
    }
}

void rf__api_hooks(struct rf_api *api, struct rf_hreq *r, struct rf_slice *seg, int n)
{
    char name[RF_HOOK_NAME_BYTES_MAX + 1];

    if (n == 2) {
        r->x.route = RF_ROUTE_HOOKS;
        if (r->h->method != RF_HTTP_GET && r->h->method != RF_HTTP_HEAD)
            return rf__api_method_not_allowed(r, "GET, HEAD");
        return rf_resp_json(&r->x, 200, NULL,
                            json_pack("{s:o}", "hooks", rf_hooks_names(api->hooks)));
    }
    if (n != 3 || rf__api_seg_name(seg[2], name, sizeof(name)) < 0)
        return rf_resp_error(&r->x, 404, "not_found", NULL, NULL, "no such resource");
    r->x.route = RF_ROUTE_HOOK;
    switch (r->h->method) {
    case RF_HTTP_PUT: return hook_put(api, r, name);
    case RF_HTTP_GET:
    case RF_HTTP_HEAD: return hook_get(api, r, name);
    case RF_HTTP_DELETE: return hook_del(api, r, name);
    case RF_HTTP_POST: return hook_post(api, r, name);
    default: return rf__api_method_not_allowed(r, "GET, HEAD, PUT, POST, DELETE");
    }
}
