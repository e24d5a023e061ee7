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
 * How bytes are measured. In oneTBB 2021.8 everything a node and an edge own comes from
 * the global operator new: the node array (one block we allocate and placement-construct
 * into), the two function_body_leaf copies each continue_node news, and one std::list node
 * per edge in the predecessor's successor_cache. TBB's own allocator serves only the
 * graph's task_group_context (made before the first sample) and the run's tasks (after the
 * second). This file replaces the global operator new and delete with versions that count
 * the usable size of every live block, and *bytes is the count's growth from just after
 * the empty graph exists to just after the last make_edge: exact, whatever malloc is (the
 * process runs with mimalloc in place of malloc, because libringflow links it, so
 * mallinfo2() sees nothing and the resident set is blind to reused pages).
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

/* Live bytes handed out by operator new in this process (usable sizes). */
std::atomic<size_t> rf_tbb_live_bytes{0};

size_t rf_tbb_heap_bytes()
{
    return rf_tbb_live_bytes.load(std::memory_order_relaxed); /* a counter, no ordering */
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
    return "counted operator new";
}

/* --- counting global operator new / delete (see the opening comment) ---------------------- */

void *operator new(std::size_t n)
{
    void *p = std::malloc(n ? n : 1);
    if (p == nullptr)
        throw std::bad_alloc();
    rf_tbb_live_bytes.fetch_add(malloc_usable_size(p), std::memory_order_relaxed); /* count */
    return p;
}

/* GCC sees free() of a block that operator new returned; in a replacement pair that is
 * exactly right (the new above got it from malloc). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void *p) noexcept
{
    if (p == nullptr)
        return;
    rf_tbb_live_bytes.fetch_sub(malloc_usable_size(p), std::memory_order_relaxed); /* count */
    std::free(p);
}
#pragma GCC diagnostic pop

void operator delete(void *p, std::size_t) noexcept
{
    operator delete(p);
}
