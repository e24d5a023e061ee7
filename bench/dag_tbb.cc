/*
 * bench/dag_tbb.cc: the whole oneTBB side of bench/dag (interface in dag_tbb.h).
 *
 * One rf_tbb_run builds an rf_shape_dag as a tbb::flow::graph, one
 * continue_node<continue_msg> per node with an empty body and one make_edge per edge,
 * runs it once and destroys it. Everything happens inside arena.execute() on a
 * tbb::task_arena of `threads` slots, because a flow graph attaches to the arena it is
 * constructed in and spawns all its tasks there: that is what fixes the thread count.
 * Timed: from the first source's try_put(continue_msg()) to wait_for_all() returning.
 * Not timed: building, collecting the sources, tearing down.
 *
 * How bytes are measured. We sample the allocator just after the (empty) graph object
 * is made and again after the last make_edge; the difference is *bytes. In oneTBB
 * 2021.8 everything a node and an edge own comes from global operator new, i.e. glibc
 * malloc: the node array (one block we allocate and placement-construct into, so there
 * is no per-node header of ours), the two function_body_leaf copies each continue_node
 * news (my_body, my_init_body), and one std::list node per edge in the predecessor's
 * successor_cache (std::allocator). TBB's own allocator (r1::cache_aligned_allocate,
 * the small-object pool), which libtbb routes to libtbbmalloc.so.2 when it finds it (it
 * does on Debian), serves only the graph's task_group_context, made before the first
 * sample, and the run's tasks, made after the second, so glibc sees all of the graph.
 * The sample is mallinfo2(): uordblks (bytes in use in every malloc arena, chunk
 * headers included) plus hblkhd (bytes in mmap'd chunks; the node array is one).
 * (Chunks parked in glibc's per-thread tcache count as in use, so reuse of them can
 * hide at most a few KiB: noise against a million nodes.)
 * If libtbbmalloc_proxy has replaced malloc itself (LD_PRELOAD), mallinfo2 no longer
 * sees the heap; then the sample is the resident set (/proc/self/statm), which is
 * coarser (whole pages; memory the allocator cached from an earlier run is reused
 * without growing it, so later runs may read low). rf_tbb_bytes_method() says which.
 *
 * Errors: TBB reports failure by throwing; rf_tbb_run catches everything at the C
 * boundary and turns it into a negative errno, so no exception ever reaches C.
 */
#include "dag_tbb.h"

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <new>
#include <vector>

#include <dlfcn.h>
#include <malloc.h>
#include <unistd.h>

#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/task_arena.h>

namespace
{

using rf_tbb_node = tbb::flow::continue_node<tbb::flow::continue_msg>;
using rf_tbb_clock = std::chrono::steady_clock;

struct rf_tbb_result {
    double secs = 0.0;
    size_t bytes = 0;
};

/* The empty body: a continue_node's body maps the trigger to its output message. */
struct rf_tbb_empty_body {
    tbb::flow::continue_msg operator()(const tbb::flow::continue_msg &m) const
    {
        return m;
    }
};

/* The nodes of one graph in one block: placement-constructed in index order, destroyed
 * in reverse. Declared after the graph it belongs to, so the graph outlives them. */
class rf_tbb_nodes
{
  public:
    explicit rf_tbb_nodes(uint32_t n) : base_(alloc_.allocate(n)), cap_(n)
    {
    }
    ~rf_tbb_nodes()
    {
        while (built_ > 0)
            base_[--built_].~rf_tbb_node();
        alloc_.deallocate(base_, cap_);
    }
    rf_tbb_nodes(const rf_tbb_nodes &) = delete;
    rf_tbb_nodes &operator=(const rf_tbb_nodes &) = delete;

    void add(tbb::flow::graph &g)
    {
        new (&base_[built_]) rf_tbb_node(g, rf_tbb_empty_body());
        built_++;
    }
    rf_tbb_node &operator[](uint32_t i)
    {
        return base_[i];
    }

  private:
    std::allocator<rf_tbb_node> alloc_;
    rf_tbb_node *base_;
    uint32_t cap_;
    uint32_t built_ = 0;
};

/* True when libtbbmalloc_proxy (which exports this marker) has replaced malloc. */
bool rf_tbb_malloc_proxied()
{
    static const bool proxied = dlsym(RTLD_DEFAULT, "__TBB_malloc_proxy") != nullptr;
    return proxied;
}

size_t rf_tbb_rss_bytes()
{
    unsigned long size = 0, resident = 0;
    FILE *f = std::fopen("/proc/self/statm", "r");

    if (f == nullptr)
        return 0;
    if (std::fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    std::fclose(f);
    return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

/* The allocator sample described in the opening comment. */
size_t rf_tbb_heap_bytes()
{
    if (rf_tbb_malloc_proxied())
        return rf_tbb_rss_bytes();
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

void rf_tbb_build(const rf_shape_dag &d, tbb::flow::graph &g, rf_tbb_nodes &nodes)
{
    for (uint32_t v = 0; v < d.n; v++)
        nodes.add(g);
    for (uint32_t v = 0; v < d.n; v++) {
        for (uint32_t e = d.succ_off[v]; e < d.succ_off[v + 1]; e++)
            tbb::flow::make_edge(nodes[v], nodes[d.succ[e]]);
    }
}

/* Build, measure, run once; called inside the arena so the graph attaches to it. */
void rf_tbb_run_in_arena(const rf_shape_dag &d, rf_tbb_result &r)
{
    tbb::flow::graph g;
    size_t before = rf_tbb_heap_bytes();
    rf_tbb_nodes nodes(d.n);

    rf_tbb_build(d, g, nodes);
    size_t after = rf_tbb_heap_bytes();
    r.bytes = after > before ? after - before : 0;

    std::vector<uint32_t> sources;
    for (uint32_t v = 0; v < d.n; v++) {
        if (d.ndeps[v] == 0)
            sources.push_back(v);
    }

    rf_tbb_clock::time_point t0 = rf_tbb_clock::now();
    for (uint32_t v : sources)
        nodes[v].try_put(tbb::flow::continue_msg());
    g.wait_for_all();
    rf_tbb_clock::time_point t1 = rf_tbb_clock::now();
    r.secs = std::chrono::duration<double>(t1 - t0).count();
}

} // namespace

extern "C" int rf_tbb_run(const struct rf_shape_dag *dag, unsigned threads, double *secs,
                          size_t *bytes)
{
    if (dag == nullptr || secs == nullptr || bytes == nullptr)
        return -EINVAL;
    if (dag->n == 0 || dag->succ_off == nullptr || dag->ndeps == nullptr)
        return -EINVAL;
    if (threads < 1 || threads > RF_TBB_THREADS_MAX)
        return -EINVAL;

    try {
        tbb::task_arena arena(static_cast<int>(threads));
        rf_tbb_result r;

        arena.execute([&] { rf_tbb_run_in_arena(*dag, r); });
        *secs = r.secs;
        *bytes = r.bytes;
        return 0;
    } catch (const std::bad_alloc &) {
        return -ENOMEM;
    } catch (...) {
        return -EIO;
    }
}

extern "C" const char *rf_tbb_bytes_method(void)
{
    return rf_tbb_malloc_proxied() ? "rss" : "mallinfo2";
}
