/*
 * net/api_int.h: the API's insides, shared by net/api.c (the router, graphs, executions,
 * operations) and net/apihooks.c (webhooks). Nothing else includes this.
 */
#ifndef RF_NET_API_INT_H
#define RF_NET_API_INT_H

#include <stdatomic.h>

#include "net/api.h"
#include "net/hooks.h"
#include "net/triggers.h"
#include "net/server.h"

#define RF_API_TOKEN_KEY_BYTES 16

struct rf_api {
    rf_engine *eng;
    struct rf_store *st;
    struct rf_metrics *m;
    struct rf_api_config cfg;
    struct rf_sjournal *sj;    /* the journal, or NULL (memory only) */
    struct rf_rbridge *rb;     /* Redis, or NULL */
    struct rf_hooks *hooks;    /* webhook definitions */
    struct rf_triggers *triggers; /* cron triggers, or NULL (rf_api_set_triggers) */
    struct rf_kafka *kafka;       /* the Kafka bridge, or NULL */
    _Atomic uint32_t draining; /* relaxed flag: graceful stop began */
    _Atomic uint32_t ready;    /* relaxed flag: recovery is over, requests are served */
    unsigned char token_key[RF_API_TOKEN_KEY_BYTES];
};

/* net/api.c's helpers (see there). */
bool rf__api_draining(const struct rf_api *api);
json_t *rf__api_json_body(struct rf_hreq *r, bool empty_is_object);
void rf__api_not_found(struct rf_hreq *r, const char *what, const char *name);
void rf__api_method_not_allowed(struct rf_hreq *r, const char *allow);
json_t *rf__api_diag_details(const rf_diag *d);
void rf__api_journal_refused(struct rf_rctx *x, int rc);
int rf__api_seg_name(struct rf_slice s, char *out, size_t cap);
bool rf__api_slice_eq(struct rf_slice s, const char *lit);
void rf__api_submit_plan(struct rf_api *api, struct rf_rctx *rx, rf_plan *plan, json_t *inputs,
                         const char *idem, const json_t *tags, rf_diag *d);

/* net/apidefs.c: /v1/hooks, /v1/hooks/{hook}, /v1/triggers, /v1/triggers/{name}. */
void rf__api_hooks(struct rf_api *api, struct rf_hreq *r, struct rf_slice *seg, int n);
void rf__api_triggers(struct rf_api *api, struct rf_hreq *r, struct rf_slice *seg, int n);

#endif /* RF_NET_API_INT_H */
