/*
 * net/evjson.c: events as the JSON objects of spec/api.md, written fast.
 *
 * Every event of every execution the daemon runs is serialized once, by the thread that
 * runs the event callback (net/store.c), and kept as text: the event log, long polls,
 * WebSocket frames and the journal all use those bytes. So this is on the hot path of
 * every submission. The fixed fields are written through a cursor into room reserved once
 * (their lengths are bounded and they need no escaping), the JSON values (params, output,
 * error) with rf_json_write (engine/jcs.h). Field order is fixed: execution_id, seq, ts,
 * type, parent, node, item, attempt, cached, lineage_hash, params, output, error,
 * retry_in_ms.
 */
#include <errno.h>
#include <string.h>

#include "engine/jcs.h"
#include "engine/rf.h"
#include "net/evjson.h"

int rf_json_write_str(struct rf_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";

    if (rf_buf_reserve(b, n * 6 + 2) < 0)
        return -ENOMEM;
    char *o = b->p + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
    return 0;
}

static int put_raw(struct rf_buf *b, const char *s)
{
    return rf_buf_append(b, s, strlen(s));
}

/* The fixed part of an event is written through a cursor into room reserved once: every
 * field there has a bounded length and needs no escaping (ids are Crockford base32, node
 * ids and names were checked against [A-Za-z0-9._-] by the plan, timestamps, numbers and
 * hex digits). RF_EVENT_HEAD_MAX bounds it, parent included. */
#define RF_EVENT_HEAD_MAX 640u

/* Append a string literal (its length known at compile time). */
#define CUR_LIT(o, lit) (memcpy((o), (lit), sizeof(lit) - 1), (o) += sizeof(lit) - 1)

static inline char *cur_str(char *o, const char *s)
{
    size_t n = strlen(s);

    RF_DASSERT(n <= 64);
    memcpy(o, s, n);
    return o + n;
}

static inline char *cur_u64(char *o, uint64_t v)
{
    char tmp[RF_INT_TEXT_BYTES];
    int n = rf_u64_text(v, tmp);

    memcpy(o, tmp, (size_t)n);
    return o + n;
}

static int put_json(struct rf_buf *b, const char *key, const json_t *v)
{
    int rc;

    if (put_raw(b, ",\"") < 0 || put_raw(b, key) < 0 || put_raw(b, "\":") < 0)
        return -ENOMEM;
    rc = rf_json_write(v, b);
    if (rc == -ENOMEM)
        return rc;
    return rc < 0 ? put_raw(b, "null") : 0; /* not JSON (a NaN, bad UTF-8): shown as null */
}

static char *cur_parent(char *o, const rf_event *ev)
{
    CUR_LIT(o, ",\"parent\":{\"execution_id\":\"");
    o = cur_str(o, ev->parent_exec_id);
    CUR_LIT(o, "\",\"node\":\"");
    o = cur_str(o, ev->parent_node_id ? ev->parent_node_id : "");
    *o++ = '"';
    if (ev->parent_item >= 0) {
        CUR_LIT(o, ",\"item\":");
        o = cur_u64(o, (uint64_t)ev->parent_item);
    }
    *o++ = '}';
    return o;
}

/* {"execution_id":..,"seq":..,"ts":..,"type":..[,parent][,node,item,attempt,cached]
 *  [,lineage_hash] */
static char *cur_head(char *o, const rf_event *ev)
{
    char ts[RF_TS_LEN];

    CUR_LIT(o, "{\"execution_id\":\"");
    o = cur_str(o, ev->exec_id);
    CUR_LIT(o, "\",\"seq\":");
    o = cur_u64(o, ev->seq);
    CUR_LIT(o, ",\"ts\":\"");
    o = cur_str(o, rf_fmt_ts(ev->ts_us, ts));
    CUR_LIT(o, "\",\"type\":\"");
    o = cur_str(o, rf_event_type_name(ev->type));
    *o++ = '"';
    if (ev->parent_exec_id)
        o = cur_parent(o, ev);
    if (ev->node_id) {
        CUR_LIT(o, ",\"node\":\"");
        o = cur_str(o, ev->node_id);
        *o++ = '"';
        if (ev->item >= 0) {
            CUR_LIT(o, ",\"item\":");
            o = cur_u64(o, (uint64_t)ev->item);
        }
        CUR_LIT(o, ",\"attempt\":");
        o = cur_u64(o, ev->attempt);
        if (ev->cached)
            CUR_LIT(o, ",\"cached\":true");
        else
            CUR_LIT(o, ",\"cached\":false");
    }
    if (ev->lineage_hash) {
        CUR_LIT(o, ",\"lineage_hash\":\"");
        o = cur_str(o, ev->lineage_hash);
        *o++ = '"';
    }
    return o;
}

int rf_event_write(struct rf_buf *b, const rf_event *ev)
{
    size_t len0 = b->len;
    int rc = 0;

    if (rf_buf_reserve(b, RF_EVENT_HEAD_MAX) < 0)
        return -ENOMEM;
    char *o = cur_head(b->p + b->len, ev);
    b->len = (size_t)(o - b->p);
    RF_ASSERT(b->len - len0 <= RF_EVENT_HEAD_MAX);
    if (ev->params)
        rc |= put_json(b, "params", ev->params);
    if (ev->output)
        rc |= put_json(b, "output", ev->output);
    if (ev->error)
        rc |= put_json(b, "error", ev->error);
    if (ev->type == RF_EV_NODE_RETRYING) {
        char num[24], *e = cur_u64(num, ev->retry_in_ms);
        rc |= put_raw(b, ",\"retry_in_ms\":");
        rc |= rf_buf_append(b, num, (size_t)(e - num));
    }
    rc |= put_raw(b, "}");
    if (rc) {
        b->len = len0;
        return -ENOMEM;
    }
    return 0;
}
