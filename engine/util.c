/*
 * engine/util.c: the small things every module uses: the assertion handler, the JSON-line
 * logger, RFC 3339 timestamps, error strings, rf_error filling, state and event names,
 * and futex waits for the few places an application thread blocks (rf_exec_wait,
 * rf_engine_stop). Shard threads never call the futex wait.
 */
#include "engine/rf.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/internal.h"

rf_log_level rf__log_level = RF_LOG_INFO;

void rf__assert_fail(const char *cond, const char *file, int line, const char *func)
{
    fprintf(stderr, "ringflow: assertion failed: %s (%s:%d, %s)\n", cond, file, line, func);
    fflush(stderr);
    abort();
}

static const char *const level_names[] = {"info", "debug", "info", "warn", "error"};

bool rf__log_text;

void rf__log(rf_log_level lvl, const char *fmt, ...)
{
    char ts[RF_TS_LEN];
    char line[1024];
    va_list ap;
    int n;

    if (lvl < rf__log_level)
        return;
    if (rf__log_text)
        n = snprintf(line, sizeof(line), "%s %-5s ", rf_fmt_ts(rf_wall_us(), ts),
                     level_names[lvl]);
    else
        n = snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",",
                     rf_fmt_ts(rf_wall_us(), ts), level_names[lvl]);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 3)
        n = (int)sizeof(line) - 3;
    if (!rf__log_text)
        line[n++] = '}';
    line[n++] = '\n';
    /* One write per line so lines from several threads never interleave. */
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

/* The formatted seconds of the last call on this thread: timestamps of one second share
 * them, so most calls format only the microseconds. */
static _Thread_local struct {
    time_t secs;
    char head[21]; /* "YYYY-MM-DDTHH:MM:SS." */
    bool valid;
} ts_cache;

char *rf_fmt_ts(int64_t us, char buf[RF_TS_LEN])
{
    time_t secs = (time_t)(us / 1000000);
    long frac = (long)(us % 1000000);
    struct tm tm;

    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    if (!ts_cache.valid || ts_cache.secs != secs) {
        char tmp[32];
        gmtime_r(&secs, &tm);
        snprintf(tmp, sizeof(tmp), "%04u-%02u-%02uT%02u:%02u:%02u.",
                 (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u,
                 (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u,
                 (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u);
        memcpy(ts_cache.head, tmp, 20);
        ts_cache.secs = secs;
        ts_cache.valid = true;
    }
    memcpy(buf, ts_cache.head, 20);
    for (int i = 25; i >= 20; i--) {
        buf[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    buf[26] = 'Z';
    buf[27] = '\0';
    return buf;
}

const char *rf_strerror(int err)
{
    switch (err) {
    case RF_EINVAL_GRAPH:
        return "invalid graph";
    case RF_ENOKIND:
        return "no such node kind";
    case RF_EKIND:
        return "invalid node kind";
    case RF_ESTATE:
        return "not allowed in the engine's current state";
    case RF_EIOURING:
        return "io_uring is unavailable or lacks a needed feature";
    case RF_EOVERLOAD:
        return "overloaded: every shard is at its in-flight bound";
    case RF_ELIMIT:
        return "limit reached";
    default:
        break;
    }
    if (err < 0 && err > -4096)
        return strerrordesc_np(-err) ? strerrordesc_np(-err) : "unknown error";
    return err == 0 ? "success" : "unknown error";
}

int rf_error_set(rf_error *err, int rc, bool retryable, const char *code, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return rc;
    snprintf(err->code, sizeof(err->code), "%s", code ? code : "error");
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    err->retryable = retryable;
    return rc;
}

static const char *const status_names[] = {
    [RF_ST_PENDING] = "pending", [RF_ST_QUEUED] = "queued",     [RF_ST_READY] = "ready",
    [RF_ST_RUNNING] = "running", [RF_ST_RETRYING] = "retrying", [RF_ST_SUCCEEDED] = "succeeded",
    [RF_ST_FAILED] = "failed",   [RF_ST_CANCELED] = "canceled", [RF_ST_SKIPPED] = "skipped",
    [RF_ST_CACHED] = "cached",
};

const char *rf_status_name(rf_status st)
{
    if ((unsigned)st >= RF_ARRAY_LEN(status_names))
        return "unknown";
    return status_names[st];
}

static const char *const event_names[] = {
    [RF_EV_EXECUTION_QUEUED] = "execution.queued",
    [RF_EV_EXECUTION_STARTED] = "execution.started",
    [RF_EV_NODE_STARTED] = "node.started",
    [RF_EV_NODE_RETRYING] = "node.retrying",
    [RF_EV_NODE_SUCCEEDED] = "node.succeeded",
    [RF_EV_NODE_CACHED] = "node.cached",
    [RF_EV_NODE_FAILED] = "node.failed",
    [RF_EV_NODE_SKIPPED] = "node.skipped",
    [RF_EV_NODE_CANCELED] = "node.canceled",
    [RF_EV_EXECUTION_SUCCEEDED] = "execution.succeeded",
    [RF_EV_EXECUTION_FAILED] = "execution.failed",
    [RF_EV_EXECUTION_CANCELED] = "execution.canceled",
};

const char *rf_event_type_name(rf_event_type t)
{
    if ((unsigned)t >= RF_ARRAY_LEN(event_names))
        return "unknown";
    return event_names[t];
}

void rf__futex_wait(_Atomic uint32_t *word, uint32_t expect, uint32_t timeout_ms)
{
    struct timespec ts = {
        .tv_sec = timeout_ms / 1000,
        .tv_nsec = (long)(timeout_ms % 1000) * 1000000,
    };
    /* EAGAIN (value changed), EINTR and ETIMEDOUT all mean: look again. */
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expect, &ts, NULL, 0);
}

void rf__futex_wake_all(_Atomic uint32_t *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* --- JSON Pointers and quoted strings in messages ----------------------------------------- */

char *rf__ptr_child(const char *base, const char *key)
{
    size_t blen = strlen(base), klen = strlen(key);
    char *p = rf_malloc(blen + 2 * klen + 2), *w;

    if (!p)
        return NULL;
    memcpy(p, base, blen);
    w = p + blen;
    *w++ = '/';
    for (const char *k = key; *k; k++) {
        if (*k == '~' || *k == '/') {
            *w++ = '~';
            *w++ = *k == '~' ? '0' : '1';
        } else {
            *w++ = *k;
        }
    }
    *w = '\0';
    return p;
}

int rf__utf8_shown(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);

    if (n <= max)
        return (int)n;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    return (int)n;
}
