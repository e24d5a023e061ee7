/*
 * storage/jread.h: reading a shard's journal back at start-up (recovery).
 *
 * The journal is read batch by batch (storage/journal.h writes every batch behind a BATCH
 * record giving its length and record count), so the reader knows exactly which writes
 * were whole. A record is handed to the caller only once its whole batch checked out.
 *
 * What can be found, and what is done:
 *   - the end of the data: a zero header, or the end of the file. Normal.
 *   - a torn tail: a batch that does not check out (a bad record, a short batch, a bad
 *     BATCH record) with no valid batch after it anywhere in the shard's journal. That is
 *     the write that was on its way when the process or machine stopped; it was never
 *     acknowledged. The segment is truncated there (the only write recovery makes) and
 *     reading ends.
 *   - corruption: a batch that does not check out with a valid batch after it (found by
 *     scanning every 8-byte offset of the rest of the segment, and the later segments).
 *     Acknowledged data is damaged: reading stops with -EBADMSG and the report names the
 *     segment and the offset, so start-up fails with a message an operator can act on.
 *     With `repair`, the segment is truncated there instead and every later segment is
 *     moved into <dir>/damaged/ (kept, not deleted), and reading ends as for a torn tail.
 * Segments that hold nothing past their SEGMENT record (a spare prepared ahead, or one
 * whose creation a crash interrupted) are skipped.
 *
 * Blocking I/O (mmap, ftruncate, rename): start-up only.
 */
#ifndef RF_STORAGE_JREAD_H
#define RF_STORAGE_JREAD_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/jrec.h"

#define RF_JREAD_WHY_BYTES 160

struct rf_jread_report {
    uint64_t segments, batches, records, bytes; /* read and handed over */
    bool torn;                  /* a torn tail was cut */
    uint64_t torn_segment, torn_offset, torn_bytes;
    bool corrupt;               /* corruption before the tail */
    uint64_t bad_segment, bad_offset;
    char why[RF_JREAD_WHY_BYTES];
    bool repaired;              /* with repair: cut there, later segments moved aside */
    uint64_t moved_segments;
};

/* Called for each record of each whole batch, in journal order (not for BATCH and SEGMENT
 * records). rec->payload is valid during the call only. A negative return stops reading
 * and is returned. */
typedef int (*rf_jread_fn)(void *ud, uint64_t segment, uint64_t offset, const struct rf_jrec *rec);

/* Read the journal in `dir` (a missing directory is an empty journal). 0, -EBADMSG on
 * corruption without repair (report filled), or another -errno. */
int rf_jread_dir(const char *dir, bool repair, rf_jread_fn fn, void *ud,
                 struct rf_jread_report *rep);

#endif /* RF_STORAGE_JREAD_H */
