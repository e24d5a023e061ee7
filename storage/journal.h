/*
 * storage/journal.h: one shard's journal: records appended through the shard's io_uring
 * ring, with group commit; and the reader that recovery uses.
 *
 * Files. A shard's journal is a directory of segment files named by their number,
 * `0000000001.seg`, `0000000002.seg`, ... Each segment is preallocated to segment_bytes
 * (so an fdatasync does not have to write metadata, and a full disk shows up when a
 * segment is created, not in the middle of a write), starts with a SEGMENT record, and is
 * never appended to again once the journal moved on (also not after a restart: a restarted
 * journal starts a new segment). Record frames are storage/jrec.h's.
 *
 * Group commit. Records appended during one loop iteration of the shard go into a batch
 * buffer, behind a BATCH record that says how many bytes and records the batch holds (so
 * the reader knows where every write began and ended); the service's flush hook (once
 * per iteration) writes the batch with one write,
 * linked (IOSQE_IO_LINK) to one fdatasync. The waiters of the batch's records are told
 * once the fdatasync completed, after the write completed whole: a short write is
 * continued from where it stopped, with a new fdatasync. While one batch is on its way,
 * the next one fills. With `sync` off (durability none) waiters are told as soon as the
 * write is queued, and nothing is synced.
 *
 * Failures. A failed write or fdatasync fails every waiter with that error and puts the
 * journal in a failed state for good: a failed fdatasync is never retried, because the
 * page cache can no longer be trusted to hold what was written. The owner (the daemon)
 * then stops acknowledging and restarts into recovery. A segment that cannot be created
 * for lack of space (ENOSPC, also from fallocate) fails the waiting batch and later
 * appends with -ENOSPC, and is tried again every RF_JOURNAL_RETRY_MS; nothing partial is
 * ever left behind, so the journal still recovers.
 *
 * The next segment is always prepared ahead through the ring (openat, fallocate, its
 * SEGMENT record, fdatasync, then an fsync of the directory so the new name is durable),
 * so moving on to it costs nothing on the write path.
 *
 * Threads: rf_journal_open and rf_journal_close may block (start-up and shutdown, not on a
 * running shard); everything else runs on the owning shard's thread.
 */
#ifndef RF_STORAGE_JOURNAL_H
#define RF_STORAGE_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "sched/shard.h"
#include "storage/jrec.h"

#define RF_JOURNAL_SEGMENT_BYTES (64ull << 20) /* default preallocated segment size */
#define RF_JOURNAL_BATCH_MAX     (64u << 20)   /* bytes one batch may hold */
#define RF_JOURNAL_RETRY_MS      1000u         /* between tries to create a segment */
#define RF_JOURNAL_NAME_BYTES    32u           /* "0000000001.seg" and room */

/* Errors injected on purpose (tests): the n-th operation of a kind, 1-based; 0 never. */
struct rf_journal_faults {
    uint64_t short_write_at; /* completes with half of its bytes written */
    uint64_t eio_write_at;   /* fails with -EIO */
    uint64_t eio_sync_at;    /* the fdatasync of a batch fails with -EIO */
    uint64_t enospc_at;      /* creating the n-th segment fails with -ENOSPC */
};

struct rf_journal_config {
    const char *dir;          /* this shard's directory; created (with parents) if missing */
    uint32_t shard;
    uint64_t segment_bytes;   /* 0 = RF_JOURNAL_SEGMENT_BYTES; at least 1 MiB */
    bool sync;                /* fdatasync each batch before telling its waiters */
    const struct rf_journal_faults *faults; /* NULL: none */
};

/* A waiter for one appended record: caller-owned, valid until `done` ran. res 0 durable
 * (or, without sync, written), else a negative errno. Runs on the shard's thread. */
struct rf_jwait {
    void (*done)(struct rf_jwait *w, int res);
    struct rf_jwait *next;
};

struct rf_journal_stats {
    uint64_t records, bytes;    /* appended */
    uint64_t batches, syncs;    /* writes started, fdatasyncs completed */
    uint64_t short_writes;      /* writes continued after completing short */
    uint64_t segments;          /* segments created */
    uint64_t segment_no;        /* the one written now */
    int error;                  /* 0, or the sticky failure (-EIO) */
    bool no_space;              /* the last segment creation failed with ENOSPC */
};

struct rf_journal;

/* Create the directory if needed and the first segment of this run: one past the highest
 * number found there (blocking; before the shard runs). -errno on failure. */
int rf_journal_open(const struct rf_journal_config *cfg, struct rf_journal **out);
/* Close the files and free (blocking; after the shard stopped or on a journal never
 * attached). The spare segment prepared ahead and never used is removed. */
void rf_journal_close(struct rf_journal *j);

/* Bind to the shard whose thread will run everything below (from its service start). */
void rf_journal_attach(struct rf_journal *j, struct rf_shard *sh);

/* Room for one record with a payload of `len` bytes: a pointer to write the payload at,
 * valid until rf_journal_commit (no other call in between). NULL with *err set: -EIO
 * (the journal failed), -ENOSPC (no segment could be made), -E2BIG (len over
 * RF_JREC_PAYLOAD_MAX), -EAGAIN (the batch is full while the previous one is on its way),
 * -ENOMEM. */
uint8_t *rf_journal_reserve(struct rf_journal *j, uint32_t len, int *err);
/* Seal the reserved record as `type` (its payload is exactly `len` bytes, as reserved or
 * fewer); `w` (NULL for none) is told when its batch is durable. Returns its seq. */
uint64_t rf_journal_commit(struct rf_journal *j, uint8_t type, uint32_t len, struct rf_jwait *w);

/* Tell `w` once every record committed so far is durable (with the result of the last
 * batch that holds one), in order with the records' own waiters. When nothing is left to
 * write, w->done runs before this returns (with the sticky error, if any). */
void rf_journal_notify(struct rf_journal *j, struct rf_jwait *w);
/* Start writing the filled batch if none is on its way (the service's flush hook). */
void rf_journal_flush(struct rf_journal *j);
/* Operations still in flight on the ring (the service's busy hook after quit). */
bool rf_journal_busy(const struct rf_journal *j);
/* Fail every record not yet written with -ESHUTDOWN (the service's quit hook). */
void rf_journal_quit(struct rf_journal *j);

/* 0, or the sticky failure; any thread (a relaxed read). */
int rf_journal_error(const struct rf_journal *j);
void rf_journal_stats(const struct rf_journal *j, struct rf_journal_stats *out);
/* The segment being written (its number); for ids that say where an execution starts. */
uint64_t rf_journal_segment(const struct rf_journal *j);

/* Segment file names: "%010llu.seg". */
void rf_journal_segment_name(uint64_t no, char out[RF_JOURNAL_NAME_BYTES]);

#endif /* RF_STORAGE_JOURNAL_H */
