/*
 * net/triggers.h: cron triggers (spec/api.md, "cron"): definitions and the scheduler.
 *
 * A trigger is a name bound to a graph (and optionally a version), a schedule
 * (sched/cron.h, UTC), static inputs and a misfire policy. PUT /v1/triggers/{name} builds
 * one, journals its document (a DEF record beside the graph versions) and installs it once
 * durable; recovery installs them again.
 *
 * Exactly once per slot. A slot fires by submitting an execution through the normal
 * durable path with the idempotency key "cron:<trigger>:<slot unix seconds>". The key is
 * journaled with the execution's ACCEPT, so a slot fired before a crash is found again
 * (200, nothing new) if the scheduler fires it a second time, within the retention; and
 * recovery reads the newest slot of every trigger back from those keys, so the scheduler
 * resumes after it. **Decision:** the execution id stays the usual one (it tells where the
 * execution lives on disk); the slot identifies it through the key instead.
 *
 * The scheduler runs on shard 0: a ring timer ticks every RF_TRIGGERS_TICK_MS, reads the
 * clock (the wall clock, or for tests a file holding unix seconds: --cron-clock-file),
 * and fires what rf_cron_due says for each trigger, at most one batch per trigger in
 * flight. Missed slots (the daemon was down) follow the trigger's misfire policy: `skip`
 * (default) or `catch_up` (the newest RF_CRON_CATCH_UP_MAX).
 */
#ifndef RF_NET_TRIGGERS_H
#define RF_NET_TRIGGERS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ringflow.h"

#define RF_TRIGGERS_MAX      1000u /* triggers defined at once */
#define RF_TRIGGERS_TICK_MS  250u
#define RF_TRIGGER_NAME_MAX  64u

struct rf_store;
struct rf_triggers;
struct rf_ctrigger;

/* A registry and scheduler for `eng` and `st` (borrowed); clock_file borrowed (NULL or ""
 * for the wall clock). Adds its shard service: before rf_engine_start. */
int rf_triggers_new(rf_engine *eng, struct rf_store *st, const char *clock_file,
                    struct rf_triggers **out);
void rf_triggers_free(struct rf_triggers *ts); /* after rf_engine_stop; NULL is a no-op */
/* The scheduler's time, unix seconds (the wall clock, or the test's file). Any thread. */
int64_t rf_triggers_now(const struct rf_triggers *ts);
/* Start firing (after recovery: the newest slots are known). */
void rf_triggers_start(struct rf_triggers *ts);

/* Build `name` from doc {graph, version?, schedule, inputs?, misfire?} (borrowed), defined
 * at created_us (on the scheduler's clock: its slots after that fire). 0 with
 * *out (the caller's reference), RF_EINVAL_GRAPH with the problems in d, RF_ENOGRAPH,
 * -ENOMEM. */
int rf_trigger_build(struct rf_triggers *ts, const char *name, const json_t *doc,
                     int64_t created_us, rf_diag *d, struct rf_ctrigger **out);
/* Install (takes the reference; replaces an earlier one, whose last slot it inherits):
 * 0 or -ENOSPC past RF_TRIGGERS_MAX. Remove: 0 or -ENOENT. Get: retained or NULL. */
int rf_triggers_put(struct rf_triggers *ts, struct rf_ctrigger *t);
int rf_triggers_del(struct rf_triggers *ts, const char *name);
struct rf_ctrigger *rf_triggers_get(struct rf_triggers *ts, const char *name);
void rf_trigger_release(struct rf_ctrigger *t); /* NULL is a no-op */
json_t *rf_triggers_names(struct rf_triggers *ts);
bool rf_trigger_name_ok(const char *name);

/* Recovery: a definition (doc NULL: deleted), then the newest slot fired per trigger. */
void rf_triggers_load(struct rf_triggers *ts, const char *name, const char *doc,
                      size_t doc_len, int64_t created_us);
void rf_triggers_slot(struct rf_triggers *ts, const char *name, int64_t slot);

const char *rf_trigger_doc(const struct rf_ctrigger *t, size_t *len);
/* What GET shows: the document, created_at, last_fired_slot, next_fire_at, account. */
json_t *rf_trigger_view(struct rf_triggers *ts, const struct rf_ctrigger *t);

/* The idempotency key of a slot, and its parts back: "cron:<name>:<slot>". */
int rf_trigger_key(const char *name, int64_t slot, char *out, size_t cap);
bool rf_trigger_key_parse(const char *key, size_t len, char name[RF_TRIGGER_NAME_MAX + 1],
                          int64_t *slot);

#endif /* RF_NET_TRIGGERS_H */
