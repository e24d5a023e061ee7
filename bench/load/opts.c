/*
 * bench/load/opts.c: the command line of ringflow-load (see bench/README-load.md).
 *
 *   ringflow-load [options] http://HOST[:PORT]/PATH
 *
 * Request templates come from one of two forms, never both:
 *   - the simple form: the URL's path, -m METHOD (default GET, or POST with a body),
 *     -b BODY or --body-file FILE;
 *   - --request SPEC, repeatable, used round-robin: SPEC is "[N*]METHOD PATH [BODY]",
 *     where N (1..RFL_WEIGHT_MAX) repeats the template N times in the rotation, PATH
 *     starts with '/', and BODY is the rest of the argument after one space, or "@FILE"
 *     for a file's contents. The URL then only names the server.
 * -H headers apply to every template. Paths, header values and bodies may hold {{seq}}
 * and {{rand:N}}.
 *
 * Everything is validated here, before any thread starts: numeric ranges against the
 * limits in load.h, header shapes, the target address (getaddrinfo, once), the templates
 * (compiled into opts->tmpls), and the worst-case bytes a connection may queue (depth x
 * largest rendered request <= RFL_SEND_BYTES_MAX). After rfl_opts_parse() returns 0 the
 * struct is read-only for the rest of the run.
 */
#include "bench/load/load.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <string.h>
#include <strings.h>

#define RFL_FILE_BYTES_MAX RFL_BODY_BYTES_MAX

/* What the parser gathers before building templates. */
struct raw {
    const char *url;
    const char *method;
    const char *body;
    const char *body_file;
    const char *requests[RFL_TEMPLATES_MAX];
    uint32_t nrequests;
    size_t headers_len;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: ringflow-load [options] http://HOST[:PORT]/PATH\n"
               "  -c, --connections N    connections (--ws: subscribers, 2 sockets each) [64]\n"
               "  -d, --depth N          pipelined requests in flight per connection [1]\n"
               "  -D, --duration T       measured time, e.g. 10, 2.5s, 500ms, 1m [10s]\n"
               "      --warmup T         unmeasured time before it [1s]\n"
               "  -t, --threads N        threads, one io_uring ring each [1]\n"
               "  -R, --rate R           open loop: requests/s in total, e.g. 20000 or 20k;\n"
               "                         latency counts from the intended send time [closed loop]\n"
               "  -m, --method M         method of the simple form [GET, POST with a body]\n"
               "  -H, --header 'N: v'    add a header to every request (repeatable)\n"
               "  -b, --body BODY        body of the simple form\n"
               "      --body-file FILE   body of the simple form, from a file\n"
               "  -r, --request SPEC     '[N*]METHOD PATH [BODY|@FILE]', repeatable, round-robin\n"
               "      --timeout T        per request (--ws: submit to event) [5s]\n"
               "      --connect-timeout T  connect and WebSocket handshake [5s]\n"
               "      --ws               WebSocket mode: submit with the templates, await events\n"
               "      --ws-path PATH     upgrade path [/v1/ws]\n"
               "      --ws-event TYPE    the event that ends the wait [execution.succeeded]\n"
               "      --json             print one JSON object on stdout instead of the report\n"
               "      --self-test        check the parsers and the histogram, then exit\n"
               "  Templates may hold {{seq}} (request number) and {{rand:N}} (0..N-1).\n");
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

/* "2.5", "2.5s", "500ms", "1m" -> ns, within [0, max_s]. */
static int parse_time(const char *s, double max_s, uint64_t *ns)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -EINVAL;
    if (!strcmp(end, "ms"))
        v /= 1000.0;
    else if (!strcmp(end, "m"))
        v *= 60.0;
    else if (*end && strcmp(end, "s"))
        return -EINVAL;
    if (v > max_s)
        return -EINVAL;
    *ns = (uint64_t)(v * 1e9);
    return 0;
}

static int parse_rate(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v <= 0)
        return -EINVAL;
    if (!strcmp(end, "k"))
        v *= 1e3;
    else if (!strcmp(end, "M"))
        v *= 1e6;
    else if (*end)
        return -EINVAL;
    if (v > RFL_RATE_MAX)
        return -EINVAL;
    *out = v;
    return 0;
}

/* "Name: value" -> appended to o->headers as "Name: value\r\n". */
static int add_header(struct rfl_opts *o, struct raw *r, const char *h, uint32_t *nheaders)
{
    size_t n = strlen(h);
    const char *colon = strchr(h, ':');
    if (!colon || colon == h || n > RFL_HEADER_BYTES_MAX || *nheaders == RFL_HEADERS_MAX ||
        strpbrk(h, "\r\n"))
        return -EINVAL;
    for (const char *p = h; p < colon; p++)
        if (*p <= ' ' || *p >= 127 || strchr("\"(),/:;<=>?@[\\]{}", *p))
            return -EINVAL;
    char *hs = realloc(o->headers, r->headers_len + n + 3);
    if (!hs)
        return -ENOMEM;
    o->headers = hs;
    memcpy(hs + r->headers_len, h, n);
    memcpy(hs + r->headers_len + n, "\r\n", 3);
    r->headers_len += n + 2;
    (*nheaders)++;
    return 0;
}

/* Read a whole file (at most RFL_FILE_BYTES_MAX) into a new buffer. */
static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    char *buf = malloc(RFL_FILE_BYTES_MAX + 1);
    int err = buf ? 0 : -ENOMEM;
    size_t n = buf ? fread(buf, 1, RFL_FILE_BYTES_MAX + 1, f) : 0;
    if (!err && ferror(f))
        err = -EIO;
    if (!err && n > RFL_FILE_BYTES_MAX)
        err = -E2BIG;
    fclose(f);
    if (err) {
        free(buf);
        return err;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

static int add_tmpl(struct rfl_opts *o, const char *method, const char *path, const char *body,
                    size_t body_len, uint32_t weight)
{
    if (o->ntmpls == RFL_TEMPLATES_MAX || o->nmix + weight > RFL_MIX_SLOTS_MAX)
        return -E2BIG;
    struct rfl_tmpl *t = &o->tmpls[o->ntmpls];
    int err = rfl_tmpl_compile(t, method, path, o->hosthdr, o->headers, body ? body : "", body_len);
    if (err < 0)
        return err;
    for (uint32_t i = 0; i < weight; i++)
        o->mix[o->nmix++] = (uint16_t)o->ntmpls;
    o->req_bytes_max = RFL_MAX(o->req_bytes_max, t->max_bytes);
    o->ntmpls++;
    return 0;
}

/* "[N*]METHOD PATH [BODY|@FILE]" */
static int add_request_spec(struct rfl_opts *o, const char *spec)
{
    uint32_t weight = 1;
    const char *star = strchr(spec, '*'), *sp = strchr(spec, ' ');
    if (star && (!sp || star < sp)) {
        char num[16];
        size_t n = (size_t)(star - spec);
        if (n == 0 || n >= sizeof(num))
            return -EINVAL;
        memcpy(num, spec, n);
        num[n] = 0;
        if (parse_u32(num, 1, RFL_WEIGHT_MAX, &weight) < 0)
            return -EINVAL;
        spec = star + 1;
    }
    char method[16], path[RFL_PATH_BYTES_MAX + 1];
    size_t mn = strcspn(spec, " ");
    if (mn == 0 || mn >= sizeof(method) || spec[mn] != ' ')
        return -EINVAL;
    memcpy(method, spec, mn);
    method[mn] = 0;
    const char *p = spec + mn + 1;
    size_t pn = strcspn(p, " ");
    if (pn == 0 || pn > RFL_PATH_BYTES_MAX)
        return -EINVAL;
    memcpy(path, p, pn);
    path[pn] = 0;
    const char *body = p[pn] ? p + pn + 1 : "";
    char *file = NULL;
    size_t blen = strlen(body);
    if (body[0] == '@') {
        int err = read_file(body + 1, &file, &blen);
        if (err < 0)
            return err;
        body = file;
    }
    int err = blen > RFL_BODY_BYTES_MAX ? -E2BIG : add_tmpl(o, method, path, body, blen, weight);
    free(file);
    return err;
}

static int resolve(struct rfl_opts *o)
{
    char port[8];
    snprintf(port, sizeof(port), "%u", o->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(o->host, port, &hints, &res);
    if (rc != 0 || !res) {
        fprintf(stderr, "ringflow-load: cannot resolve %s: %s\n", o->host, gai_strerror(rc));
        return -EINVAL;
    }
    memcpy(&o->addr, res->ai_addr, res->ai_addrlen);
    o->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int build_templates(struct rfl_opts *o, const struct raw *r, const char *url_path)
{
    if (r->nrequests) {
        if (r->method || r->body || r->body_file) {
            fprintf(stderr, "ringflow-load: use either -m/-b/--body-file or --request\n");
            return -EINVAL;
        }
        for (uint32_t i = 0; i < r->nrequests; i++) {
            int err = add_request_spec(o, r->requests[i]);
            if (err < 0) {
                fprintf(stderr, "ringflow-load: bad --request '%s': %s\n", r->requests[i],
                        strerror(-err));
                return err;
            }
        }
        return 0;
    }
    char *file = NULL;
    const char *body = r->body;
    size_t blen = body ? strlen(body) : 0;
    int err = 0;
    if (r->body && r->body_file)
        err = -EINVAL;
    else if (r->body_file)
        err = read_file(r->body_file, &file, &blen);
    if (!err && file)
        body = file;
    if (!err && blen > RFL_BODY_BYTES_MAX)
        err = -E2BIG;
    const char *method = r->method ? r->method : (body ? "POST" : "GET");
    if (!err)
        err = add_tmpl(o, method, url_path, body, blen, 1);
    if (err < 0)
        fprintf(stderr, "ringflow-load: bad request (method, path, body or headers): %s\n",
                strerror(-err));
    free(file);
    return err;
}

enum {
    OPT_BODY_FILE = 256,
    OPT_WARMUP,
    OPT_TIMEOUT,
    OPT_CONNECT_TIMEOUT,
    OPT_WS,
    OPT_WS_PATH,
    OPT_WS_EVENT,
    OPT_JSON,
    OPT_SELF_TEST,
};

static const struct option long_opts[] = {
    {"connections", required_argument, NULL, 'c'},
    {"depth", required_argument, NULL, 'd'},
    {"duration", required_argument, NULL, 'D'},
    {"threads", required_argument, NULL, 't'},
    {"rate", required_argument, NULL, 'R'},
    {"method", required_argument, NULL, 'm'},
    {"header", required_argument, NULL, 'H'},
    {"body", required_argument, NULL, 'b'},
    {"request", required_argument, NULL, 'r'},
    {"body-file", required_argument, NULL, OPT_BODY_FILE},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"ws", no_argument, NULL, OPT_WS},
    {"ws-path", required_argument, NULL, OPT_WS_PATH},
    {"ws-event", required_argument, NULL, OPT_WS_EVENT},
    {"json", no_argument, NULL, OPT_JSON},
    {"self-test", no_argument, NULL, OPT_SELF_TEST},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const char *opt_name(int ch)
{
    for (const struct option *lo = long_opts; lo->name; lo++)
        if (lo->val == ch)
            return lo->name;
    return "?";
}

static int copy_str(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= cap)
        return -EINVAL;
    memcpy(dst, s, n + 1);
    return 0;
}

/* One option; 0, or -EINVAL with the reason printed by the caller. */
static int parse_one(int ch, const char *arg, struct rfl_opts *o, struct raw *r, uint32_t *nh)
{
    switch (ch) {
    case 'c':
        return parse_u32(arg, 1, RFL_CONNS_MAX, &o->conns);
    case 'd':
        return parse_u32(arg, 1, RFL_DEPTH_MAX, &o->depth);
    case 'D':
        return parse_time(arg, RFL_DURATION_S_MAX, &o->duration_ns);
    case 't':
        return parse_u32(arg, 1, RFL_THREADS_MAX, &o->threads);
    case 'R':
        return parse_rate(arg, &o->rate);
    case 'm':
        r->method = arg;
        return 0;
    case 'H':
        return add_header(o, r, arg, nh);
    case 'b':
        r->body = arg;
        return 0;
    case 'r':
        if (r->nrequests == RFL_TEMPLATES_MAX)
            return -E2BIG;
        r->requests[r->nrequests++] = arg;
        return 0;
    case OPT_BODY_FILE:
        r->body_file = arg;
        return 0;
    case OPT_WARMUP:
        return parse_time(arg, RFL_DURATION_S_MAX, &o->warmup_ns);
    case OPT_TIMEOUT:
        return parse_time(arg, RFL_TIMEOUT_S_MAX, &o->timeout_ns);
    case OPT_CONNECT_TIMEOUT:
        return parse_time(arg, RFL_TIMEOUT_S_MAX, &o->connect_timeout_ns);
    case OPT_WS:
        o->ws = true;
        return 0;
    case OPT_WS_PATH:
        return arg[0] == '/' ? copy_str(o->ws_path, sizeof(o->ws_path), arg) : -EINVAL;
    case OPT_WS_EVENT:
        return copy_str(o->ws_event, sizeof(o->ws_event), arg);
    case OPT_JSON:
        o->json = true;
        return 0;
    default:
        return -EINVAL;
    }
}

static void defaults(struct rfl_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->conns = 64;
    o->depth = 1;
    o->threads = 1;
    o->duration_ns = 10 * RFL_NS_PER_S;
    o->warmup_ns = RFL_NS_PER_S;
    o->timeout_ns = RFL_TIMEOUT_NS_DEF;
    o->connect_timeout_ns = RFL_CONNECT_NS_DEF;
    strcpy(o->ws_path, "/v1/ws");
    strcpy(o->ws_event, "execution.succeeded");
}

/* Cross-option checks once everything is known. */
static int check(struct rfl_opts *o)
{
    uint32_t sockets = o->ws ? o->conns * 2 : o->conns;
    const char *why = NULL;
    if (o->duration_ns == 0)
        why = "--duration must be > 0";
    else if (o->timeout_ns == 0 || o->connect_timeout_ns < RFL_NS_PER_S / 1000)
        why = "timeouts must be >= 1 ms";
    else if (sockets > RFL_CONNS_MAX)
        why = "too many connections";
    else if (o->threads > o->conns)
        why = "--threads must be <= connections";
    else if ((uint64_t)o->depth * o->req_bytes_max > RFL_SEND_BYTES_MAX)
        why = "--depth x request size is over the per-connection send limit (64 MiB)";
    if (why) {
        fprintf(stderr, "ringflow-load: %s\n", why);
        return -EINVAL;
    }
    return 0;
}

int rfl_opts_parse(int argc, char **argv, struct rfl_opts *o, bool *self_test)
{
    struct raw r = {0};
    uint32_t nheaders = 0;
    int ch;
    defaults(o);
    *self_test = false;
    o->headers = calloc(1, 1);
    if (!o->headers)
        return -ENOMEM;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:d:D:t:R:m:H:b:r:h", long_opts, NULL)) != -1) {
        if (ch == 'h') {
            usage(stdout);
            return 1;
        }
        if (ch == OPT_SELF_TEST) {
            *self_test = true;
            return 0;
        }
        if (ch == '?' || parse_one(ch, optarg, o, &r, &nheaders) < 0) {
            if (ch != '?')
                fprintf(stderr, "ringflow-load: bad value for --%s: '%s'\n", opt_name(ch),
                        optarg ? optarg : "");
            usage(stderr);
            return -EINVAL;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return -EINVAL;
    }
    char path[RFL_PATH_BYTES_MAX + 1];
    if (rfl_url_parse(argv[optind], o->host, o->hosthdr, &o->port, path) < 0) {
        fprintf(stderr, "ringflow-load: bad URL '%s' (want http://HOST[:PORT]/PATH)\n",
                argv[optind]);
        return -EINVAL;
    }
    int err = resolve(o);
    if (!err)
        err = build_templates(o, &r, path);
    if (!err)
        err = check(o);
    return err;
}

void rfl_opts_free(struct rfl_opts *o)
{
    for (uint32_t i = 0; i < o->ntmpls; i++)
        rfl_tmpl_free(&o->tmpls[i]);
    free(o->headers);
    o->headers = NULL;
    o->ntmpls = 0;
}
