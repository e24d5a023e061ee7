/*
 * net/hclient.h: the pieces of the `http` node kind's client (net/hclient.c) that are pure
 * functions, exposed so tests can pin them down without a network: URL parsing and request
 * building. The kind itself is registered through rf__http_kind_register() (declared in
 * engine/internal.h); users read docs/http-kind.md.
 *
 * URLs are `http://host[:port][/path][?query][#fragment]` with host an IPv4 dotted quad, an
 * IPv6 literal in brackets, or `localhost` (127.0.0.1). No name is ever looked up: a
 * blocking getaddrinfo() on a shard thread would stall every node queued behind it, and DNS
 * on the ring is future work. The fragment is never sent; bytes of the path and query that
 * may not appear in a request line are percent-encoded when the request is written.
 */
#ifndef RF_NET_HCLIENT_H
#define RF_NET_HCLIENT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "engine/jcs.h"
#include "ringflow.h"

#define RF_HTTP_URL_BYTES_MAX          8192u /* the url as given */
#define RF_HTTP_METHOD_BYTES_MAX       32u   /* a method token */
#define RF_HTTP_HEADERS_MAX            64u   /* fields in a node's `headers` */
#define RF_HTTP_HEADER_NAME_BYTES_MAX  256u
#define RF_HTTP_HEADER_VALUE_BYTES_MAX 8192u
#define RF_HTTP_REQUEST_BYTES_MAX      (16u << 20) /* request head and body */
#define RF_HTTP_OK_RANGES_MAX          16u         /* ranges in a list-form `ok_status` */
#define RF_HTTP_USER_AGENT             "ringflow/0.1"

union rf_http_addr {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
};

/* A parsed url. Slices are borrowed from the url string. */
struct rf_http_target {
    union rf_http_addr addr; /* where to connect */
    socklen_t addr_len;
    uint16_t port;      /* 80 unless given */
    bool port_explicit; /* the url named a port other than 80 */
    bool path_slash;    /* the request target needs a '/' the url lacks ("http://h?q") */
    const char *host;   /* as written, IPv6 brackets included */
    uint32_t host_len;
    const char *path; /* path and query as written, no fragment; may be empty */
    uint32_t path_len;
};

/* Parse url[0..len) (borrowed) into *t. 0, or -EINVAL with *why a static message. */
int rf__http_url_parse(const char *url, size_t len, struct rf_http_target *t, const char **why);

/* Write the request for `params` (a node's resolved config, borrowed, already checked) to
 * `out` (appended; owned by the caller): request line, Host, User-Agent, the node's
 * headers, Content-Type and Content-Length when there is a body, Connection: keep-alive,
 * then the body. 0; or a negative errno with *err filled ("request_too_large", or
 * "overload" when out of memory). */
int rf__http_request_build(const json_t *params, const struct rf_http_target *t, struct rf_buf *out,
                           rf_error *err);

/* Per-shard connection counters of the http kind (metrics, tests). Racy snapshots. */
struct rf_http_stats {
    uint64_t connects;      /* fresh connections opened */
    uint64_t reuses;        /* requests sent on a pooled connection */
    uint64_t stale_retries; /* pooled connections found closed, request sent again */
    uint64_t idle;          /* idle connections pooled now */
};

/* Fill *out for shard `shard`. -EINVAL for a bad index or an engine without the kind.
 * Any thread, once rf_engine_new returned. */
int rf__http_stats(const rf_engine *eng, uint32_t shard, struct rf_http_stats *out);

/* Open sockets with socket(2) instead of IORING_OP_SOCKET on every shard, as on a kernel
 * without it (tests the fallback). Only between rf_engine_new and rf_engine_start, from the
 * creating thread. -EINVAL without the kind. */
int rf__http_use_socket_syscall(rf_engine *eng);

#endif /* RF_NET_HCLIENT_H */
