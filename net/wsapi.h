/*
 * net/wsapi.h: GET /v1/ws, the live stream of spec/api.md: the upgrade, then per
 * connection a set of subscriptions (one per execution), fed from the execution store.
 */
#ifndef RF_NET_WSAPI_H
#define RF_NET_WSAPI_H

#include "net/rbridge.h"
#include "net/server.h"
#include "net/store.h"

/* Check the handshake and the initial subscription (?execution_id=&after=), answer 101
 * and start streaming; or answer the error (400, 404, 405, 426). An execution this
 * instance does not hold is followed through Redis when `rb` (borrowed, may be NULL) is
 * given, else it is 404. Shard thread. */
void rf_wsapi_upgrade(rf_engine *eng, struct rf_store *st, struct rf_rbridge *rb,
                      struct rf_hreq *r, uint32_t subs_max);

#endif /* RF_NET_WSAPI_H */
