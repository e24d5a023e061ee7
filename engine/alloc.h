/*
 * engine/alloc.h: the engine's allocator, in one place.
 *
 * Release and debug builds use mimalloc: per-shard heaps (mi_heap_t) for what a shard
 * allocates for itself (its task pool), and mimalloc's thread-safe free for blocks that end
 * their life on another thread (an execution allocated by the submitting thread and freed
 * by its home shard, an error array allocated by whichever shard failed first). mimalloc
 * returns such blocks to their owning heap through its own lock-free delayed-free lists.
 *
 * Sanitizer builds (RF_SYSTEM_ALLOC, set by MODE=asan|tsan) use the C library's allocator
 * instead: ASan can only find overflows and leaks in blocks it allocated itself, and TSan
 * only knows that a free on one thread happens before the reuse of that memory on another
 * when it intercepts both (mimalloc's atomics are not instrumented, so every cross-thread
 * free would be reported as a race). The shard heap is then a no-op handle.
 */
#ifndef RF_ENGINE_ALLOC_H
#define RF_ENGINE_ALLOC_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef RF_SYSTEM_ALLOC

typedef struct rf_heap rf_heap;

static inline void *rf_malloc(size_t n)
{
    return malloc(n);
}
static inline void *rf_calloc(size_t c, size_t n)
{
    return calloc(c, n);
}
static inline void *rf_realloc(void *p, size_t n)
{
    return realloc(p, n);
}
static inline void rf_free(void *p)
{
    free(p);
}
/* Zeroed, `align` a power of two. */
static inline void *rf_zalloc_aligned(size_t n, size_t align)
{
    void *p = aligned_alloc(align, (n + align - 1) & ~(align - 1));
    if (p)
        memset(p, 0, n);
    return p;
}
static inline rf_heap *rf_heap_new(void)
{
    return (rf_heap *)(uintptr_t)1; /* no heap: a non-NULL token */
}
static inline void rf_heap_delete(rf_heap *h)
{
    (void)h;
}
static inline void *rf_heap_malloc(rf_heap *h, size_t n)
{
    (void)h;
    return malloc(n);
}

#else

#include <mimalloc.h>

typedef mi_heap_t rf_heap;

static inline void *rf_malloc(size_t n)
{
    return mi_malloc(n);
}
static inline void *rf_calloc(size_t c, size_t n)
{
    return mi_calloc(c, n);
}
static inline void *rf_realloc(void *p, size_t n)
{
    return mi_realloc(p, n);
}
static inline void rf_free(void *p)
{
    mi_free(p);
}
static inline void *rf_zalloc_aligned(size_t n, size_t align)
{
    return mi_zalloc_aligned(n, align);
}
static inline rf_heap *rf_heap_new(void)
{
    return mi_heap_new();
}
/* Blocks still allocated migrate to the default heap (they stay valid). */
static inline void rf_heap_delete(rf_heap *h)
{
    mi_heap_delete(h);
}
static inline void *rf_heap_malloc(rf_heap *h, size_t n)
{
    return mi_heap_malloc(h, n);
}

#endif

/* A copy of the NUL-terminated `s`, freed with rf_free; NULL on allocation failure. */
static inline char *rf_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = (char *)rf_malloc(n);

    if (p)
        memcpy(p, s, n);
    return p;
}

#endif /* RF_ENGINE_ALLOC_H */
