/*
 * net/sjournal_int.h: the insides of net/sjournal.c (writing, the shard service, graphs,
 * old executions, retention) shared with net/srecover.c (reading the journals back at
 * start-up and applying them). Nothing else includes this.
 */
#ifndef RF_NET_SJOURNAL_INT_H
#define RF_NET_SJOURNAL_INT_H

#include <pthread.h>

#include "net/sjournal.h"
#include "net/store_int.h"
#include "net/triggers.h"
#include "storage/xrec.h"

#define SHARD_DIRS_MAX   1024u
#define LOOKUPS_MAX      4096u /* queued lookups; more get -EBUSY */
/* Tell the publisher again about x, a finished execution recovered into memory. */
struct rf_xrec;
void rf__sj_republish(struct rf_sjournal *sj, struct rf_xrec *x);

#define RF_NAME_BYTES_MAX 64u   /* a graph name: [a-z0-9][a-z0-9._-]{0,63} */
#define GRAPH_SEGMENT_BYTES (1ull << 20) /* graph journals are small and never expire */
#define RETENTION_CHECK_MS 60000u        /* the reader thread looks for expired segments */

struct sj_shard {
    struct rf_sjournal *sj;
    struct rf_journal *j;     /* executions: subject to retention */
    struct rf_journal *gj;    /* graph versions: kept for good */
    uint32_t id;
    struct rf_xrec *pending;  /* records with journal work (through jnext), owner only */
    struct rf_evt **evs;      /* scratch: event pointers of one record */
    uint32_t evcap;
    uint64_t seg_seen;        /* the journal's segment when last looked at */
    struct pubbatch *pb;      /* records whose events went into this iteration's batch */
} RF_ALIGNED_CL;

/* Records with events in one batch, told to the publisher once the batch is durable. */
struct pubbatch {
    struct rf_jwait w;
    struct rf_sjournal *sj;
    uint32_t n, cap;
    struct pubitem {
        struct rf_xrec *x; /* a reference */
        uint32_t nev;      /* events [0, nev) are in the journal */
    } items[];
};

/* --- recovery state --------------------------------------------------------------------- */

struct rgraph {
    char *name, *doc;
    size_t doc_len;
    uint32_t version;
    int64_t created_us;
};

struct rdef {
    uint8_t kind;  /* RF_XDEF_* */
    char *name, *doc;
    size_t doc_len; /* 0: deleted */
    int64_t created_us;
    uint32_t order; /* its place in the journals' reading */
};

struct rexec {
    char id[RF_ID_BYTES];
    char *graph, *idem, *tags, *inputs;
    size_t tags_len, inputs_len;
    uint32_t version;
    int64_t created_us;
    char **ev;              /* event texts, seq 1.. */
    uint32_t *evlen;
    uint32_t nev, evcap;
    struct rexec *hnext;    /* hash chain */
    struct rexec *onext;    /* creation order */
};

struct rsum {
    uint8_t *payload;       /* a SUMMARY's payload, copied */
    uint32_t len;
};

struct recovery {
    struct rgraph *graphs;
    uint32_t ngraphs, gcap;
    struct rdef *defs;
    uint32_t ndefs, dcap;
    struct rslot { char name[RF_TRIGGER_NAME_MAX + 1]; int64_t slot; } *slots;
    uint32_t nslots; /* at most RF_TRIGGERS_MAX */
    struct rexec **table;   /* unfinished, by id */
    uint32_t nbuckets;
    struct rexec *first, *last; /* unfinished in creation order (for resuming) */
    uint64_t nopen;
    struct rsum *ring;      /* the newest finished */
    uint32_t ring_cap, ring_n, ring_head;
    uint64_t done_total;
    struct rf_idarch *arch;  /* the store's idempotency archive, or NULL */
    bool graphs_applied;
    struct rf_sjournal_report rep;
};

struct rf_sjournal {
    struct rf_store *st;
    rf_engine *eng;
    struct rf_sjournal_config cfg;
    rf_sjournal_publish_fn publish[2]; /* Redis, Kafka: the first npub */
    void *publish_ud[2];
    uint32_t npub;
    char dir[PATH_MAX - 256]; /* room left for /<shard>/<segment> */
    uint32_t n;
    struct sj_shard **sh;
    struct rf_shard_service svc;
    struct recovery *rec;
    _Atomic uint32_t applied;
    _Atomic uint32_t resuming; /* resume jobs posted and not finished (apply waits) */

    /* the reader of old executions */
    pthread_t reader;
    bool reader_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct rf_sjlookup *queue, **qtail;
    uint32_t queued;
    bool stop;
};

/* net/sjournal.c */
bool rf__sj_id_where(const char *id, uint32_t *shard, uint64_t *seg);
int rf__sj_append_accept(struct sj_shard *ss, struct rf_xrec *x, const json_t *inputs,
                         struct rf_jwait *w);
int rf__sj_append_events(struct sj_shard *ss, struct rf_xrec *x, uint32_t from, uint32_t n);
int rf__sj_shard_dirs(const char *dir, uint32_t *out, uint32_t *n);
void *rf__sj_reader_main(void *arg);

/* net/srecover.c */
int rf__sj_recover_read(struct rf_sjournal *sj, uint32_t ring_cap);
void rf__sj_recovery_free(struct recovery *rc);
/* A record rebuilt from a SUMMARY (one reference, not indexed), or NULL. */
struct rf_xrec *rf__sj_summary_record(struct rf_sjournal *sj, const struct rf_xsummary *s);
/* Index a record rebuilt from the journal, with its idempotency key. */
void rf__sj_publish(struct rf_sjournal *sj, struct rf_xrec *x);
char *rf__sj_dup_slice(struct rf_xslice s);

#endif /* RF_NET_SJOURNAL_INT_H */
