/*
 * net/evjson.h: events as the JSON objects of spec/api.md (net/evjson.c).
 */
#ifndef RF_NET_EVJSON_H
#define RF_NET_EVJSON_H

#include <stddef.h>

#include "engine/jcs.h"
#include "ringflow.h"

/* Append event `ev` as JSON to b (compact, the spec's field order). -ENOMEM. */
int rf_event_write(struct rf_buf *b, const rf_event *ev);
/* Append `s` as a JSON string literal. -ENOMEM. */
int rf_json_write_str(struct rf_buf *b, const char *s, size_t n);

#endif /* RF_NET_EVJSON_H */
