/*
 * sched/probe.c: find out, once at engine start, whether this kernel's io_uring can carry
 * the engine, and which set-up flags it takes. Fails with RF_EIOURING and one message on
 * stderr that names the missing piece: io_uring disabled by kernel.io_uring_disabled (or
 * a seccomp filter), an opcode the engine needs, or IORING_FEAT_NODROP.
 *
 * Ring flags are tried from best to plainest: SINGLE_ISSUER | DEFER_TASKRUN (6.1+),
 * COOP_TASKRUN | TASKRUN_FLAG (5.19+), none. IORING_OP_MSG_RING (5.18+) is optional: without
 * it, shards wake each other through their eventfds.
 */
#include "engine/rf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sched/shard.h"

static int read_disabled_sysctl(void)
{
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
    int v = 0;

    if (!f)
        return 0; /* older kernels have no such knob */
    if (fscanf(f, "%d", &v) != 1)
        v = 0;
    fclose(f);
    return v;
}

static int try_setup(struct io_uring *ring, unsigned *flags_out)
{
    static const unsigned choices[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        0,
    };
    int rc = -EINVAL;

    for (size_t i = 0; i < RF_ARRAY_LEN(choices); i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = choices[i];
        rc = io_uring_queue_init_params(8, ring, &p);
        if (rc == 0) {
            *flags_out = choices[i];
            if (!(p.features & IORING_FEAT_NODROP)) {
                io_uring_queue_exit(ring);
                return -ENOTSUP;
            }
            return 0;
        }
        if (rc != -EINVAL)
            return rc;
    }
    return rc;
}

static const struct {
    int op;
    const char *name;
} needed_ops[] = {
    {IORING_OP_NOP, "IORING_OP_NOP"},
    {IORING_OP_READ, "IORING_OP_READ"},
    {IORING_OP_TIMEOUT, "IORING_OP_TIMEOUT"},
    {IORING_OP_TIMEOUT_REMOVE, "IORING_OP_TIMEOUT_REMOVE"},
    {IORING_OP_ASYNC_CANCEL, "IORING_OP_ASYNC_CANCEL"},
};

int rf__iouring_probe(rf_engine *eng)
{
    struct io_uring ring;
    struct io_uring_probe *probe;
    unsigned flags = 0;
    int rc, disabled = read_disabled_sysctl();

    rc = try_setup(&ring, &flags);
    if (rc == -ENOTSUP) {
        rf_log_error("\"msg\":\"io_uring lacks IORING_FEAT_NODROP (Linux 5.5+ needed)\"");
        return RF_EIOURING;
    }
    if (rc < 0) {
        if (disabled)
            rf_log_error("\"msg\":\"io_uring is disabled: kernel.io_uring_disabled=%d; set it "
                         "to 0 (or 1 and add this user to kernel.io_uring_group)\",\"err\":\"%s\"",
                         disabled, rf_strerror(rc));
        else
            rf_log_error("\"msg\":\"io_uring_setup failed: io_uring is unavailable (kernel "
                         "without it, or a seccomp filter such as a container's)\",\"err\":\"%s\"",
                         rf_strerror(rc));
        return RF_EIOURING;
    }
    probe = io_uring_get_probe_ring(&ring);
    io_uring_queue_exit(&ring);
    if (!probe) {
        rf_log_error("\"msg\":\"io_uring probe failed (Linux 5.6+ needed)\"");
        return RF_EIOURING;
    }
    rc = 0;
    for (size_t i = 0; i < RF_ARRAY_LEN(needed_ops); i++) {
        if (!io_uring_opcode_supported(probe, needed_ops[i].op)) {
            rf_log_error("\"msg\":\"io_uring lacks an opcode the engine needs\",\"op\":\"%s\"",
                         needed_ops[i].name);
            rc = RF_EIOURING;
        }
    }
    eng->has_msg_ring =
        io_uring_opcode_supported(probe, IORING_OP_MSG_RING) && !eng->cfg.no_msg_ring;
    io_uring_free_probe(probe);
    eng->ring_flags = flags;
    return rc;
}
