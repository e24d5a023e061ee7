/*
 * engine/rf.h: the internal common header every ringflow source file includes first.
 *
 * It holds what is too small to be a module: assertions that stay on in every build
 * (RF_ASSERT logs file:line and aborts; RF_DASSERT only in debug and sanitizer builds,
 * for hot paths), branch hints, the cache-line size used to pad shared state, the
 * diagnostic logger (JSON lines on stderr, filtered by level), a monotonic and a wall
 * clock, and a small fast PRNG for jitter and victim selection.
 *
 * Nothing here allocates or takes a lock, so any thread may use any of it, including
 * shard threads on the data path. The public API lives in include/ringflow.h; this
 * header is never installed.
 */
#ifndef RF_RF_H
#define RF_RF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "ringflow.h"

#define RF_CACHELINE  64
#define RF_ALIGNED_CL __attribute__((aligned(RF_CACHELINE)))

#define rf_likely(x)   __builtin_expect(!!(x), 1)
#define rf_unlikely(x) __builtin_expect(!!(x), 0)

#define RF_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define RF_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define RF_MAX(a, b)    ((a) > (b) ? (a) : (b))

#define rf_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Log the failed condition with its place and abort. Never returns. */
__attribute__((noreturn, cold)) void rf__assert_fail(const char *cond, const char *file, int line,
                                                     const char *func);

/* Always on: for invariants whose violation means memory is already wrong. */
#define RF_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (rf_unlikely(!(cond)))                                                                  \
            rf__assert_fail(#cond, __FILE__, __LINE__, __func__);                                  \
    } while (0)

/* Debug and sanitizer builds only (RF_DEBUG is set by MODE=debug|asan|tsan). */
#ifdef RF_DEBUG
#define RF_DASSERT(cond) RF_ASSERT(cond)
#else
#define RF_DASSERT(cond) ((void)0)
#endif

/* ThreadSanitizer annotations for synchronization it cannot see (inline-assembly atomics
 * in Concurrency Kit). No-ops in every other build. */
#if defined(__SANITIZE_THREAD__)
#define RF_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RF_TSAN 1
#endif
#endif
#ifdef RF_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define RF_TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#define RF_TSAN_RELEASE(p) __tsan_release((void *)(p))
#else
#define RF_TSAN_ACQUIRE(p) ((void)(p))
#define RF_TSAN_RELEASE(p) ((void)(p))
#endif

/* --- a test-and-test-and-set spin lock, for critical sections of a few pointer swaps --- */

#define RF_SPINS_BEFORE_YIELD 1024u /* pause-spins before a waiter yields to a preempted holder */

typedef _Atomic uint32_t rf_spin; /* 0 free, 1 held; zero-initialized = free */

static inline void rf_spin_lock(rf_spin *l)
{
    uint32_t spins = 0;

    for (;;) {
        /* Acquire: the critical section sees every write of the previous holder. */
        if (!atomic_exchange_explicit(l, 1, memory_order_acquire))
            return;
        /* Relaxed: only a hint that the lock may be free; the exchange above decides. */
        while (atomic_load_explicit(l, memory_order_relaxed)) {
            if (++spins % RF_SPINS_BEFORE_YIELD == 0)
                sched_yield(); /* the holder was preempted: let it run */
            else
                __builtin_ia32_pause();
        }
    }
}

static inline void rf_spin_unlock(rf_spin *l)
{
    /* Release: publishes the critical section's writes to the next holder. */
    atomic_store_explicit(l, 0, memory_order_release);
}

/* --- logging: one JSON object per line on stderr --- */

extern rf_log_level rf__log_level;
extern bool rf__log_text; /* "ts level fields" lines instead of JSON objects */

void rf__log(rf_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define rf_log_debug(...)                                                                          \
    do {                                                                                           \
        if (rf__log_level <= RF_LOG_DEBUG)                                                         \
            rf__log(RF_LOG_DEBUG, __VA_ARGS__);                                                    \
    } while (0)
#define rf_log_info(...)  rf__log(RF_LOG_INFO, __VA_ARGS__)
#define rf_log_warn(...)  rf__log(RF_LOG_WARN, __VA_ARGS__)
#define rf_log_error(...) rf__log(RF_LOG_ERROR, __VA_ARGS__)

/* --- clocks --- */

static inline uint64_t rf_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int64_t rf_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Format `us` (microseconds since the epoch) as RFC 3339 UTC with microseconds,
 * "2026-11-22T12:00:00.123456Z": 27 bytes plus NUL. Returns `buf`. */
#define RF_TS_LEN 28
char *rf_fmt_ts(int64_t us, char buf[RF_TS_LEN]);

/* --- xorshift64*: per-thread state, never shared --- */

static inline uint64_t rf_rand_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, n) for n > 0 (Lemire's multiply-shift; bias below 2^-32 for n < 2^32). */
static inline uint32_t rf_rand_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(((rf_rand_next(s) >> 32) * (uint64_t)n) >> 32);
}

/* Round up to a power of two (v >= 1, v <= 2^31). */
static inline uint32_t rf_pow2_ceil(uint32_t v)
{
    return v <= 1 ? 1 : 1u << (32 - __builtin_clz(v - 1));
}

#endif /* RF_RF_H */
