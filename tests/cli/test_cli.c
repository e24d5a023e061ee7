/*
 * tests/cli/test_cli.c: the `ringflow` command-line tool, run as a user runs it.
 *
 * Each test forks and execs the built binary (RF_BUILD_DIR "/ringflow", from the repo
 * root), feeds it files written to a fresh temporary directory, collects its stdout and
 * stderr through pipes and its exit status, and kills it if it runs past PROC_TIMEOUT_MS.
 * What is pinned down:
 *   - version, help and usage errors (exit 2);
 *   - `validate`: a valid graph gives "FILE: valid (N nodes)" and exit 0; broken documents
 *     (malformed JSON, an empty file, duplicate ids, unknown kinds and deps, a cycle) give
 *     exit 1 and one `FILE: <pointer>: <code>: <message>` line per problem; a missing file
 *     exit 2;
 *   - `run --json`: one JSON event per line with seq 1..N without gaps for the execution,
 *     execution.queued first, the execution's terminal event last before the
 *     {"result": ...} line, which is the last line; exit 0 on success, 1 on failure
 *     (retries, skipped successors, an all_done cleanup that still runs), 1 on
 *     --timeout-ms and on SIGINT (the execution canceled, its result still printed);
 *     --quiet, --live, --document, --inputs @file, standard input;
 *   - `run` refusing its input with exit 2: invalid inputs (every problem on stderr with a
 *     pointer), malformed or non-object --inputs, a missing file, an invalid graph.
 *   - the examples/ graphs: each validates, and runs with the status examples/README.md
 *     promises.
 * The graphs of most tests use only the built-in kinds noop, delay and fail. Those that
 * need the graph language's `transform` kind, templates or `when` (the examples, the
 * --inputs defaults) say so in their name: test_lang_*.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#define RINGFLOW_BIN    RF_BUILD_DIR "/ringflow"
#define PROC_TIMEOUT_MS 20000 /* any one run of the tool */
#define ARGS_MAX        16
#define LINES_MAX       4096
#define PATH_BYTES      512
#define EXIT_ENGINE     3 /* the tool's "the engine cannot run" status */

static char tmpdir[64]; /* "/tmp/rf-cli-XXXXXX" */

/* --- running the tool -------------------------------------------------------------------- */

struct buf {
    char *p;
    size_t len, cap;
};

struct proc {
    pid_t pid;
    int fd[2]; /* stdout, stderr; -1 once closed */
    struct buf out, err;
    int status; /* exit code, or 128 + signal */
    uint64_t deadline_ms;
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void buf_add(struct buf *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Start the tool with `args` (NULL-terminated, without argv[0]); `in` is its stdin (NULL:
 * /dev/null). */
static void proc_start(struct proc *p, const char *const *args, const char *in)
{
    int po[2], pe[2], pi[2];
    const char *argv[ARGS_MAX + 2] = {"ringflow"};

    memset(p, 0, sizeof(*p));
    for (int i = 0; args[i]; i++) {
        assert_true(i < ARGS_MAX);
        argv[i + 1] = args[i];
    }
    assert_int_equal(pipe2(po, O_CLOEXEC), 0);
    assert_int_equal(pipe2(pe, O_CLOEXEC), 0);
    assert_int_equal(pipe2(pi, O_CLOEXEC), 0);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        dup2(pi[0], STDIN_FILENO);
        dup2(po[1], STDOUT_FILENO);
        dup2(pe[1], STDERR_FILENO);
        execv(RINGFLOW_BIN, (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", RINGFLOW_BIN, strerror(errno));
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    close(pi[0]);
    if (in) /* small texts only: they fit in the pipe */
        assert_int_equal(write(pi[1], in, strlen(in)), (ssize_t)strlen(in));
    close(pi[1]);
    p->fd[0] = po[0];
    p->fd[1] = pe[0];
    p->deadline_ms = now_ms() + PROC_TIMEOUT_MS;
}

/* Read what is there within `wait_ms`; false once both pipes are closed. */
static bool proc_pump(struct proc *p, int wait_ms)
{
    struct pollfd pfd[2] = {{.fd = p->fd[0], .events = POLLIN}, {.fd = p->fd[1], .events = POLLIN}};
    char chunk[4096];

    if (p->fd[0] < 0 && p->fd[1] < 0)
        return false;
    if (poll(pfd, 2, wait_ms) <= 0)
        return true;
    for (int i = 0; i < 2; i++) {
        if (p->fd[i] < 0 || !pfd[i].revents)
            continue;
        ssize_t n = read(p->fd[i], chunk, sizeof(chunk));
        if (n > 0) {
            buf_add(i == 0 ? &p->out : &p->err, chunk, (size_t)n);
        } else if (n == 0 || errno != EINTR) {
            close(p->fd[i]);
            p->fd[i] = -1;
        }
    }
    return true;
}

static void proc_kill_on_deadline(struct proc *p)
{
    if (now_ms() < p->deadline_ms)
        return;
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    fail_msg("ringflow ran past %d ms; stdout:\n%s\nstderr:\n%s", PROC_TIMEOUT_MS,
             p->out.p ? p->out.p : "", p->err.p ? p->err.p : "");
}

/* Pump until stdout holds `needle`; false if the tool closed its output first. */
static bool proc_wait_for(struct proc *p, const char *needle)
{
    while (!p->out.p || !strstr(p->out.p, needle)) {
        proc_kill_on_deadline(p);
        if (!proc_pump(p, 50))
            return false;
    }
    return true;
}

static void proc_finish(struct proc *p)
{
    int ws;

    while (proc_pump(p, 50))
        proc_kill_on_deadline(p);
    for (;;) {
        pid_t r = waitpid(p->pid, &ws, WNOHANG);
        assert_true(r >= 0);
        if (r == p->pid)
            break;
        proc_kill_on_deadline(p);
        usleep(10000);
    }
    p->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    if (!p->out.p)
        buf_add(&p->out, "", 0);
    if (!p->err.p)
        buf_add(&p->err, "", 0);
}

static void proc_free(struct proc *p)
{
    free(p->out.p);
    free(p->err.p);
}

/* Run the tool to its end with up to ARGS_MAX arguments, NULL-terminated. */
static void run_tool(struct proc *p, const char *in, ...)
{
    const char *args[ARGS_MAX + 1];
    va_list ap;
    int n = 0;

    va_start(ap, in);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL;) {
        assert_true(n < ARGS_MAX);
        args[n++] = a;
    }
    va_end(ap);
    args[n] = NULL;
    proc_start(p, args, in);
    proc_finish(p);
}

static void expect_status(const struct proc *p, int want)
{
    if (p->status != want)
        fail_msg("exit status %d, want %d; stdout:\n%s\nstderr:\n%s", p->status, want, p->out.p,
                 p->err.p);
}

/* A run that could not start the engine here (no io_uring) skips loudly. */
static void skip_without_engine(const struct proc *p)
{
    if (p->status == EXIT_ENGINE && strstr(p->err.p, "cannot start the engine")) {
        fprintf(stderr, "SKIP: the engine cannot start here: %s", p->err.p);
        skip();
    }
}

/* --- files ------------------------------------------------------------------------------ */

/* Write `text` to tmpdir/name; the path is returned in a static slot (8 in rotation). */
static const char *tmp_file(const char *name, const char *text)
{
    static char paths[8][PATH_BYTES];
    static int next;
    char *path = paths[next++ % 8];
    FILE *f;

    snprintf(path, PATH_BYTES, "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    return path;
}

static int group_setup(void **state)
{
    struct stat st;

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/rf-cli-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    if (stat(RINGFLOW_BIN, &st) != 0) {
        fprintf(stderr, "%s is missing: build it first (make tools)\n", RINGFLOW_BIN);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char path[PATH_BYTES * 2];

    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(tmpdir);
    return 0;
}

/* --- reading the output ------------------------------------------------------------------ */

struct lines {
    json_t *v[LINES_MAX];
    size_t n;
};

/* Every stdout line parsed as JSON (a line that is not JSON fails the test). */
static void parse_lines(const struct proc *p, struct lines *ls)
{
    const char *s = p->out.p;

    ls->n = 0;
    while (*s) {
        const char *nl = strchr(s, '\n');
        json_error_t je;
        assert_non_null(nl); /* every line is terminated */
        assert_true(ls->n < LINES_MAX);
        json_t *v = json_loadb(s, (size_t)(nl - s), 0, &je);
        if (!v)
            fail_msg("stdout line %zu is not JSON (%s): %.*s", ls->n + 1, je.text, (int)(nl - s),
                     s);
        ls->v[ls->n++] = v;
        s = nl + 1;
    }
}

static void lines_free(struct lines *ls)
{
    for (size_t i = 0; i < ls->n; i++)
        json_decref(ls->v[i]);
    ls->n = 0;
}

static const char *str_of(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Check the event stream and the result line; returns the result object (borrowed). The
 * events of the top-level execution (the first line's) have seq 1..N, queued first and
 * their terminal event last; the result line is the last line, after a {"document": ...}
 * line if the run had --document. */
static json_t *check_stream(struct lines *ls, const char *want_status)
{
    const char *exec_id;
    json_int_t seq = 0;
    const char *last_type = NULL;
    char want_last[64];
    size_t nev = ls->n - 1;

    assert_true(ls->n >= 2);
    if (json_object_get(ls->v[nev - 1], "document")) {
        assert_int_equal(json_object_size(ls->v[nev - 1]), 1);
        nev--;
    }
    exec_id = str_of(ls->v[0], "execution_id");
    assert_non_null(exec_id);
    assert_string_equal(str_of(ls->v[0], "type"), "execution.queued");
    for (size_t i = 0; i < nev; i++) {
        json_t *ev = ls->v[i];
        assert_null(json_object_get(ev, "result"));
        assert_non_null(str_of(ev, "ts"));
        if (strcmp(str_of(ev, "execution_id"), exec_id) != 0)
            continue; /* a sub-execution's */
        assert_int_equal(json_integer_value(json_object_get(ev, "seq")), ++seq);
        last_type = str_of(ev, "type");
    }
    snprintf(want_last, sizeof(want_last), "execution.%s", want_status);
    assert_non_null(last_type);
    assert_string_equal(last_type, want_last);
    json_t *res = json_object_get(ls->v[ls->n - 1], "result");
    assert_true(json_is_object(res));
    assert_int_equal(json_object_size(ls->v[ls->n - 1]), 1);
    assert_string_equal(str_of(res, "status"), want_status);
    assert_non_null(json_object_get(res, "output"));
    assert_non_null(json_object_get(res, "error"));
    return res;
}

/* How many events of `type` (and node `node`, unless NULL) the stream holds. */
static int count_events(const struct lines *ls, const char *type, const char *node)
{
    int n = 0;

    for (size_t i = 0; i < ls->n; i++) {
        const char *t = str_of(ls->v[i], "type"), *id = str_of(ls->v[i], "node");
        if (t && strcmp(t, type) == 0 && (!node || (id && strcmp(id, node) == 0)))
            n++;
    }
    return n;
}

/* Lines of `text` that start with `prefix`; each such line must have the problem form
 * "<prefix><pointer>: <code>: <message>" with a pointer that is "" or starts with "/". */
static int problem_lines(const char *text, const char *prefix)
{
    size_t plen = strlen(prefix);
    int n = 0;

    for (const char *s = text; *s;) {
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);
        if (len > plen && strncmp(s, prefix, plen) == 0) {
            const char *ptr = s + plen;
            const char *c1 = memmem(ptr, len - plen, ": ", 2);
            assert_non_null(c1);
            assert_true(ptr[0] == '/' || strncmp(ptr, "\"\": ", 4) == 0);
            const char *c2 = memmem(c1 + 2, len - (size_t)(c1 + 2 - s), ": ", 2);
            assert_non_null(c2); /* code, then message */
            assert_true(c2 > c1 + 2);
            n++;
        }
        s += len + (nl ? 1 : 0);
    }
    return n;
}

/* --- graphs of built-in kinds ----------------------------------------------------------- */

static const char *const G_OK = "{\"name\": \"cli-ok\", \"nodes\": ["
                                "{\"id\": \"a\", \"kind\": \"noop\"},"
                                "{\"id\": \"b\", \"kind\": \"delay\", \"deps\": [\"a\"],"
                                " \"config\": {\"ms\": 20}},"
                                "{\"id\": \"c\", \"kind\": \"delay\", \"deps\": [\"a\"],"
                                " \"config\": {\"ms\": 5}},"
                                "{\"id\": \"d\", \"kind\": \"noop\", \"deps\": [\"b\", \"c\"]}]}";

static const char *const G_FAIL =
    "{\"name\": \"cli-fail\", \"nodes\": ["
    "{\"id\": \"a\", \"kind\": \"noop\"},"
    "{\"id\": \"flaky\", \"kind\": \"fail\", \"deps\": [\"a\"],"
    " \"config\": {\"message\": \"down\", \"code\": \"unavailable\", \"retryable\": true},"
    " \"retry\": {\"max_attempts\": 2, \"backoff_ms\": 5, \"max_backoff_ms\": 10}},"
    "{\"id\": \"after\", \"kind\": \"noop\", \"deps\": [\"flaky\"]},"
    "{\"id\": \"cleanup\", \"kind\": \"noop\", \"deps\": [\"flaky\"], \"trigger\": \"all_done\"}]}";

static const char *const G_SLOW = "{\"name\": \"cli-slow\", \"nodes\": ["
                                  "{\"id\": \"wait\", \"kind\": \"delay\","
                                  " \"config\": {\"ms\": 60000}}]}";

static const char *const G_INPUTS =
    "{\"name\": \"cli-inputs\","
    " \"inputs\": {\"n\": {\"type\": \"integer\", \"required\": true},"
    "             \"tag\": {\"type\": \"string\", \"default\": \"x\"}},"
    " \"nodes\": [{\"id\": \"a\", \"kind\": \"noop\"}]}";

/* --- tests: version, help, usage -------------------------------------------------------- */

static void test_version_and_help(void **state)
{
    struct proc p;
    char want[64];

    run_tool(&p, NULL, "version", NULL);
    expect_status(&p, 0);
    snprintf(want, sizeof(want), "ringflow %d.%d.%d\n", 0, 1, 0);
    assert_string_equal(p.out.p, want);
    proc_free(&p);

    run_tool(&p, NULL, "--help", NULL);
    expect_status(&p, 0);
    assert_non_null(strstr(p.out.p, "usage: ringflow validate FILE"));
    assert_non_null(strstr(p.out.p, "--timeout-ms"));
    proc_free(&p);

    run_tool(&p, NULL, "run", "--help", NULL);
    expect_status(&p, 0);
    assert_non_null(strstr(p.out.p, "usage:"));
    proc_free(&p);
}

static void test_usage_errors(void **state)
{
    static const char *const cases[][6] = {
        {NULL},
        {"frobnicate", NULL},
        {"validate", NULL},
        {"validate", "a.json", "b.json", NULL},
        {"validate", "--inputs", "{}", NULL}, /* a run option */
        {"run", NULL},
        {"run", "x.json", "--shards", "0", NULL},
        {"run", "x.json", "--shards", "many", NULL},
        {"run", "x.json", "--timeout-ms", "-5", NULL},
        {"run", "x.json", "--json", "--live", NULL},
        {"run", "x.json", "--no-such-option", NULL},
        {"run", "x.json", "--inputs", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct proc p;
        proc_start(&p, cases[i], NULL);
        proc_finish(&p);
        expect_status(&p, 2);
        assert_true(p.err.len > 0); /* it says why */
        assert_int_equal(p.out.len, 0);
        proc_free(&p);
    }
}

/* --- tests: validate --------------------------------------------------------------------- */

static void test_validate_valid(void **state)
{
    const char *path = tmp_file("ok.json", G_OK);
    char want[PATH_BYTES + 32];
    struct proc p;

    run_tool(&p, NULL, "validate", path, NULL);
    expect_status(&p, 0);
    snprintf(want, sizeof(want), "%s: valid (4 nodes)\n", path);
    assert_string_equal(p.out.p, want);
    proc_free(&p);

    /* "-" reads standard input */
    run_tool(&p, G_OK, "validate", "-", NULL);
    expect_status(&p, 0);
    assert_string_equal(p.out.p, "-: valid (4 nodes)\n");
    proc_free(&p);
}

/* A broken document: exit 1, at least `min_lines` problem lines, each `want` code among
 * them, and nothing else on stdout. */
static void expect_invalid(const char *name, const char *doc, int min_lines,
                           const char *const *want, size_t nwant)
{
    const char *path = tmp_file(name, doc);
    char prefix[PATH_BYTES + 4];
    struct proc p;

    run_tool(&p, NULL, "validate", path, NULL);
    expect_status(&p, 1);
    snprintf(prefix, sizeof(prefix), "%s: ", path);
    int n = problem_lines(p.out.p, prefix);
    if (n < min_lines)
        fail_msg("%s: %d problem lines, want at least %d:\n%s", name, n, min_lines, p.out.p);
    for (const char *s = p.out.p; *s; s = strchr(s, '\n') + 1)
        assert_int_equal(strncmp(s, prefix, strlen(prefix)), 0); /* only problem lines */
    for (size_t i = 0; i < nwant; i++)
        if (!strstr(p.out.p, want[i]))
            fail_msg("%s: no \"%s\" in:\n%s", name, want[i], p.out.p);
    proc_free(&p);
}

static void test_validate_broken(void **state)
{
    static const char *const w_malformed[] = {"\"\": "};
    expect_invalid("malformed.json", "{\"name\": \"x\", \"nodes\": [", 1, w_malformed, 1);
    expect_invalid("empty.json", "", 1, w_malformed, 1);

    static const char *const w_many[] = {
        "/nodes/1/id: duplicate_id: ", "/nodes/2/kind: unknown_kind: ",
        "/nodes/3/kind: unknown_kind: "};
    expect_invalid("many.json",
                   "{\"name\": \"many\", \"nodes\": ["
                   "{\"id\": \"a\", \"kind\": \"noop\"},"
                   "{\"id\": \"a\", \"kind\": \"noop\"},"
                   "{\"id\": \"b\", \"kind\": \"no-such-kind\"},"
                   "{\"id\": \"c\", \"kind\": \"nor-this\", \"deps\": [\"a\"]}]}",
                   3, w_many, 3);

    static const char *const w_shape[] = {"/nodes/1/deps/0: unknown_dep: ", "/nodes/0/"};
    expect_invalid("shape.json",
                   "{\"name\": \"shape\", \"nodes\": ["
                   "{\"id\": \"a\", \"kind\": \"noop\", \"retry\": {\"max_attempts\": \"3\"}},"
                   "{\"id\": \"b\", \"kind\": \"noop\", \"deps\": [\"nowhere\"]}]}",
                   2, w_shape, 2);

    static const char *const w_cycle[] = {": cycle: "};
    expect_invalid("cycle.json",
                   "{\"name\": \"cycle\", \"nodes\": ["
                   "{\"id\": \"a\", \"kind\": \"noop\", \"deps\": [\"b\"]},"
                   "{\"id\": \"b\", \"kind\": \"noop\", \"deps\": [\"a\"]}]}",
                   1, w_cycle, 1);

    static const char *const w_config[] = {"/nodes/0", "invalid_config"};
    expect_invalid("config.json",
                   "{\"name\": \"config\", \"nodes\": ["
                   "{\"id\": \"d\", \"kind\": \"delay\", \"config\": {\"seconds\": 1}}]}",
                   1, w_config, 2);
}

static void test_validate_missing_file(void **state)
{
    struct proc p;

    run_tool(&p, NULL, "validate", "/nonexistent/graph.json", NULL);
    expect_status(&p, 2);
    assert_non_null(strstr(p.err.p, "/nonexistent/graph.json"));
    assert_int_equal(p.out.len, 0);
    proc_free(&p);
}

/* --- tests: run ---------------------------------------------------------------------------- */

static void test_run_json_lines(void **state)
{
    const char *path = tmp_file("run-ok.json", G_OK);
    struct lines ls;
    struct proc p;

    run_tool(&p, NULL, "run", path, "--json", NULL);
    skip_without_engine(&p);
    expect_status(&p, 0);
    parse_lines(&p, &ls);
    json_t *res = check_stream(&ls, "succeeded");
    assert_true(json_is_null(json_object_get(res, "error")));
    /* the default output: the sinks' outputs by id */
    json_t *want = json_pack("{s:n}", "d");
    assert_true(json_equal(json_object_get(res, "output"), want));
    json_decref(want);
    static const char *const ids[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(count_events(&ls, "node.started", ids[i]), 1);
        assert_int_equal(count_events(&ls, "node.succeeded", ids[i]), 1);
    }
    assert_int_equal(count_events(&ls, "execution.started", NULL), 1);
    assert_int_equal(ls.n, 1 + 1 + 8 + 1 + 1); /* queued, started, 8 node events, end, result */
    lines_free(&ls);
    proc_free(&p);

    /* not a terminal: JSON lines without --json, on any shard count */
    run_tool(&p, NULL, "run", path, "--shards", "2", NULL);
    expect_status(&p, 0);
    parse_lines(&p, &ls);
    check_stream(&ls, "succeeded");
    lines_free(&ls);
    proc_free(&p);
}

static void test_run_failure(void **state)
{
    const char *path = tmp_file("run-fail.json", G_FAIL);
    struct lines ls;
    struct proc p;

    run_tool(&p, NULL, "run", path, "--json", NULL);
    skip_without_engine(&p);
    expect_status(&p, 1);
    parse_lines(&p, &ls);
    json_t *res = check_stream(&ls, "failed");
    json_t *err = json_object_get(res, "error");
    assert_true(json_is_object(err));
    assert_string_equal(str_of(err, "code"), "node_failed");
    assert_string_equal(str_of(err, "message"), "down");
    assert_string_equal(str_of(err, "node"), "flaky");
    assert_true(json_is_null(json_object_get(res, "output")));
    assert_int_equal(count_events(&ls, "node.started", "flaky"), 2);
    assert_int_equal(count_events(&ls, "node.retrying", "flaky"), 1);
    assert_int_equal(count_events(&ls, "node.failed", "flaky"), 1);
    assert_int_equal(count_events(&ls, "node.skipped", "after"), 1);
    assert_int_equal(count_events(&ls, "node.succeeded", "cleanup"), 1);
    lines_free(&ls);
    proc_free(&p);
}

static void test_run_quiet_and_live(void **state)
{
    const char *path = tmp_file("run-quiet.json", G_OK);
    struct lines ls;
    struct proc p;

    run_tool(&p, NULL, "run", path, "--json", "--quiet", NULL);
    skip_without_engine(&p);
    expect_status(&p, 0);
    parse_lines(&p, &ls);
    assert_int_equal(ls.n, 1);
    assert_string_equal(str_of(json_object_get(ls.v[0], "result"), "status"), "succeeded");
    lines_free(&ls);
    proc_free(&p);

    /* the live view, forced on a pipe: redrawn lines, then the result pretty-printed */
    run_tool(&p, NULL, "run", path, "--live", NULL);
    expect_status(&p, 0);
    assert_non_null(strstr(p.out.p, "\x1b[2K"));
    assert_non_null(strstr(p.out.p, "cli-ok"));
    assert_non_null(strstr(p.out.p, "nodes 4: 4 succeeded"));
    const char *r = strstr(p.out.p, "result:\n{");
    assert_non_null(r);
    json_t *res = json_loads(r + strlen("result:\n"), 0, NULL);
    assert_non_null(res);
    assert_string_equal(str_of(res, "status"), "succeeded");
    json_decref(res);
    proc_free(&p);
}

static void test_run_timeout(void **state)
{
    const char *path = tmp_file("run-slow.json", G_SLOW);
    struct lines ls;
    struct proc p;
    uint64_t t0 = now_ms();

    run_tool(&p, NULL, "run", path, "--json", "--timeout-ms", "200", NULL);
    skip_without_engine(&p);
    expect_status(&p, 1);
    assert_true(now_ms() - t0 < 10000); /* the 60 s delay was canceled */
    assert_non_null(strstr(p.err.p, "--timeout-ms 200"));
    parse_lines(&p, &ls);
    check_stream(&ls, "canceled");
    assert_int_equal(count_events(&ls, "node.canceled", "wait"), 1);
    lines_free(&ls);
    proc_free(&p);
}

static void test_run_sigint(void **state)
{
    const char *path = tmp_file("run-int.json", G_SLOW);
    const char *args[] = {"run", path, "--json", NULL};
    struct lines ls;
    struct proc p;

    proc_start(&p, args, NULL);
    if (!proc_wait_for(&p, "\"node.started\"")) {
        proc_finish(&p);
        skip_without_engine(&p);
        fail_msg("no node.started before the end; stderr:\n%s", p.err.p);
    }
    uint64_t t0 = now_ms();
    assert_int_equal(kill(p.pid, SIGINT), 0);
    proc_finish(&p);
    assert_true(now_ms() - t0 < 10000);
    expect_status(&p, 1);
    assert_non_null(strstr(p.err.p, "interrupted"));
    parse_lines(&p, &ls);
    check_stream(&ls, "canceled");
    lines_free(&ls);
    proc_free(&p);
}

static void test_run_refuses_input(void **state)
{
    const char *graph = tmp_file("run-inputs.json", G_INPUTS);
    const char *broken = tmp_file("run-broken.json", "{\"name\": \"x\", \"nodes\": [{}]}");
    const char *bad_inputs_file = tmp_file("bad-inputs.json", "{\"n\": ");
    char at_bad[PATH_BYTES + 1];
    struct proc p;

    snprintf(at_bad, sizeof(at_bad), "@%s", bad_inputs_file);
    /* invalid inputs: a missing required input, then a wrong type and an unknown one */
    run_tool(&p, NULL, "run", graph, "--json", NULL);
    skip_without_engine(&p);
    expect_status(&p, 2);
    assert_true(problem_lines(p.err.p, "--inputs: ") >= 1);
    assert_non_null(strstr(p.err.p, "--inputs: /inputs/n: "));
    assert_int_equal(p.out.len, 0); /* nothing ran */
    proc_free(&p);
    run_tool(&p, NULL, "run", graph, "--inputs", "{\"n\": \"three\", \"tag\": 4}", NULL);
    expect_status(&p, 2);
    assert_true(problem_lines(p.err.p, "--inputs: ") >= 2);
    assert_non_null(strstr(p.err.p, "--inputs: /inputs/n: "));
    assert_non_null(strstr(p.err.p, "--inputs: /inputs/tag: "));
    proc_free(&p);

    /* malformed or non-object --inputs, an unreadable @file */
    static const char *const bad[] = {"{\"n\": 1", "[1, 2]", "3", "@/nonexistent/inputs.json"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        run_tool(&p, NULL, "run", graph, "--inputs", bad[i], NULL);
        expect_status(&p, 2);
        assert_non_null(strstr(p.err.p, "--inputs"));
        assert_int_equal(p.out.len, 0);
        proc_free(&p);
    }
    run_tool(&p, NULL, "run", graph, "--inputs", at_bad, NULL);
    expect_status(&p, 2);
    assert_non_null(strstr(p.err.p, "malformed JSON"));
    proc_free(&p);

    /* a missing file, an invalid graph (its problems on stderr) */
    run_tool(&p, NULL, "run", "/nonexistent/graph.json", NULL);
    expect_status(&p, 2);
    proc_free(&p);
    run_tool(&p, NULL, "run", broken, "--json", NULL);
    expect_status(&p, 2);
    char prefix[PATH_BYTES + 4];
    snprintf(prefix, sizeof(prefix), "%s: ", broken);
    assert_true(problem_lines(p.err.p, prefix) >= 2); /* no id, no kind */
    assert_int_equal(p.out.len, 0);
    proc_free(&p);
}

static void test_run_inputs_accepted(void **state)
{
    const char *graph = tmp_file("run-inputs-ok.json", G_INPUTS);
    const char *inputs = tmp_file("inputs.json", "{\"n\": 3}");
    char at[PATH_BYTES + 1];
    struct lines ls;
    struct proc p;

    snprintf(at, sizeof(at), "@%s", inputs);
    run_tool(&p, NULL, "run", graph, "--inputs", at, "--json", NULL);
    skip_without_engine(&p);
    expect_status(&p, 0);
    parse_lines(&p, &ls);
    check_stream(&ls, "succeeded");
    lines_free(&ls);
    proc_free(&p);
}

static void test_run_document(void **state)
{
    const char *path = tmp_file("run-doc.json", G_FAIL);
    struct lines ls;
    struct proc p;

    run_tool(&p, NULL, "run", path, "--json", "--document", NULL);
    skip_without_engine(&p);
    expect_status(&p, 1);
    parse_lines(&p, &ls);
    check_stream(&ls, "failed");
    json_t *doc = json_object_get(ls.v[ls.n - 2], "document");
    if (!doc)
        fail_msg("no document line before the result; stderr:\n%s", p.err.p);
    assert_string_equal(str_of(doc, "id"), str_of(ls.v[0], "execution_id"));
    assert_string_equal(str_of(doc, "graph"), "cli-fail");
    assert_string_equal(str_of(doc, "status"), "failed");
    assert_non_null(str_of(doc, "finished_at"));
    json_t *nodes = json_object_get(doc, "nodes");
    assert_string_equal(str_of(json_object_get(nodes, "a"), "status"), "succeeded");
    assert_string_equal(str_of(json_object_get(nodes, "flaky"), "status"), "failed");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(nodes, "flaky"), "attempts")), 2);
    assert_string_equal(str_of(json_object_get(nodes, "after"), "status"), "skipped");
    assert_string_equal(str_of(json_object_get(nodes, "cleanup"), "status"), "succeeded");
    lines_free(&ls);
    proc_free(&p);
}

/* --- tests: the examples (they need the graph language: transform, templates, when, map) -- */

struct example {
    const char *file;
    int status;
    const char *result_status;
};

static const struct example examples[] = {
    {"examples/hello.json", 0, "succeeded"},          {"examples/fanout-map.json", 0, "succeeded"},
    {"examples/retry-and-cleanup.json", 1, "failed"}, {"examples/conditional.json", 0, "succeeded"},
    {"examples/cached.json", 0, "succeeded"},
};

static void test_lang_examples_validate_and_run(void **state)
{
    for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++) {
        const struct example *e = &examples[i];
        struct lines ls;
        struct proc p;

        run_tool(&p, NULL, "validate", e->file, NULL);
        expect_status(&p, 0);
        assert_non_null(strstr(p.out.p, ": valid ("));
        proc_free(&p);
        run_tool(&p, NULL, "run", e->file, "--json", NULL);
        skip_without_engine(&p);
        expect_status(&p, e->status);
        parse_lines(&p, &ls);
        check_stream(&ls, e->result_status);
        lines_free(&ls);
        proc_free(&p);
    }
}

/* hello.json's declared default, then an input given. */
static void test_lang_hello_output(void **state)
{
    struct lines ls;
    struct proc p;

    run_tool(&p, NULL, "run", "examples/hello.json", "--json", "--quiet", NULL);
    skip_without_engine(&p);
    expect_status(&p, 0);
    parse_lines(&p, &ls);
    assert_int_equal(ls.n, 1);
    json_t *want = json_pack("{s:s}", "message", "hello, world");
    assert_true(json_equal(json_object_get(json_object_get(ls.v[0], "result"), "output"), want));
    json_decref(want);
    lines_free(&ls);
    proc_free(&p);

    run_tool(&p, NULL, "run", "examples/hello.json", "--json", "--quiet", "--inputs",
             "{\"who\": \"ringflow\"}", NULL);
    expect_status(&p, 0);
    parse_lines(&p, &ls);
    want = json_pack("{s:s}", "message", "hello, ringflow");
    assert_true(json_equal(json_object_get(json_object_get(ls.v[0], "result"), "output"), want));
    json_decref(want);
    lines_free(&ls);
    proc_free(&p);
}

/* cached.json: the second identical node is served from the cache, same lineage hash. */
static void test_lang_cached_example(void **state)
{
    struct lines ls;
    struct proc p;

    run_tool(&p, NULL, "run", "examples/cached.json", "--json", NULL);
    skip_without_engine(&p);
    expect_status(&p, 0);
    parse_lines(&p, &ls);
    check_stream(&ls, "succeeded");
    assert_int_equal(count_events(&ls, "node.succeeded", "expensive"), 1);
    assert_int_equal(count_events(&ls, "node.cached", "expensive_again"), 1);
    const char *h1 = NULL, *h2 = NULL;
    for (size_t i = 0; i < ls.n; i++) {
        const char *t = str_of(ls.v[i], "type");
        if (t && strcmp(t, "node.succeeded") == 0 &&
            strcmp(str_of(ls.v[i], "node"), "expensive") == 0)
            h1 = str_of(ls.v[i], "lineage_hash");
        if (t && strcmp(t, "node.cached") == 0)
            h2 = str_of(ls.v[i], "lineage_hash");
    }
    assert_non_null(h1);
    assert_non_null(h2);
    assert_string_equal(h1, h2);
    lines_free(&ls);
    proc_free(&p);
}

/* fanout-map.json with --document: the mapped nodes' items in the hydrated document. */
static void test_lang_fanout_document(void **state)
{
    struct lines ls;
    struct proc p;

    run_tool(&p, NULL, "run", "examples/fanout-map.json", "--json", "--document", NULL);
    skip_without_engine(&p);
    expect_status(&p, 0);
    parse_lines(&p, &ls);
    json_t *res = check_stream(&ls, "succeeded");
    assert_int_equal(count_events(&ls, "node.succeeded", "throttle"), 7); /* 6 items, itself */
    json_t *doc = json_object_get(ls.v[ls.n - 2], "document");
    assert_non_null(doc);
    assert_true(json_equal(json_object_get(doc, "output"), json_object_get(res, "output")));
    static const char *const mapped[] = {"throttle", "line"};
    for (int m = 0; m < 2; m++) {
        json_t *node = json_object_get(json_object_get(doc, "nodes"), mapped[m]);
        json_t *items = json_object_get(node, "items");
        assert_string_equal(str_of(node, "status"), "succeeded");
        assert_int_equal(json_array_size(items), 6);
        for (size_t i = 0; i < 6; i++) {
            json_t *it = json_array_get(items, i);
            assert_string_equal(str_of(it, "status"), "succeeded");
            assert_int_equal(json_integer_value(json_object_get(it, "attempts")), 1);
            assert_non_null(str_of(it, "lineage_hash"));
            assert_non_null(str_of(it, "started_at"));
            assert_non_null(str_of(it, "finished_at"));
        }
    }
    json_t *line = json_object_get(json_object_get(doc, "nodes"), "line");
    json_t *item5 = json_array_get(json_object_get(line, "items"), 5);
    assert_string_equal(str_of(json_object_get(item5, "output"), "label"), "7 x lime");
    assert_true(json_equal(json_object_get(item5, "output"),
                           json_array_get(json_object_get(line, "output"), 5)));
    assert_null(
        json_object_get(json_object_get(json_object_get(doc, "nodes"), "summary"), "items"));
    lines_free(&ls);
    proc_free(&p);
}

/* --graph registers sub-graphs for `graph` nodes: their executions' events come in the
 * same stream, each with its own gap-free seq and a `parent` naming the top execution. */
static void test_lang_subgraph(void **state)
{
    const char *sub =
        tmp_file("sub.json", "{\"name\": \"sub\","
                             " \"inputs\": {\"x\": {\"type\": \"integer\"}},"
                             " \"nodes\": [{\"id\": \"echo\", \"kind\": \"transform\","
                             " \"config\": {\"output\": \"{{inputs.x}}\"}}],"
                             " \"output\": \"{{nodes.echo.output}}\"}");
    const char *top = tmp_file("top.json", "{\"name\": \"top\", \"nodes\": ["
                                           "{\"id\": \"fan\", \"kind\": \"graph\","
                                           " \"map\": \"{{inputs.xs}}\","
                                           " \"config\": {\"name\": \"sub\","
                                           " \"inputs\": {\"x\": \"{{item}}\"}}}],"
                                           " \"inputs\": {\"xs\": {\"type\": \"array\","
                                           " \"default\": [3, 4, 5]}}}");
    const char *bad_sub = tmp_file("bad-sub.json", "{\"name\": \"sub\", \"nodes\": 3}");
    struct lines ls;
    struct proc p;

    run_tool(&p, NULL, "run", top, "--graph", sub, "--json", NULL);
    skip_without_engine(&p);
    expect_status(&p, 0);
    parse_lines(&p, &ls);
    json_t *res = check_stream(&ls, "succeeded");
    json_t *want = json_pack("{s:[i,i,i]}", "fan", 3, 4, 5);
    assert_true(json_equal(json_object_get(res, "output"), want));
    json_decref(want);
    const char *top_id = str_of(ls.v[0], "execution_id");
    int subs_done = 0;
    for (size_t i = 0; i + 1 < ls.n; i++) {
        json_t *parent = json_object_get(ls.v[i], "parent");
        if (strcmp(str_of(ls.v[i], "execution_id"), top_id) == 0) {
            assert_null(parent);
            continue;
        }
        assert_string_equal(str_of(parent, "execution_id"), top_id);
        assert_string_equal(str_of(parent, "node"), "fan");
        if (strcmp(str_of(ls.v[i], "type"), "execution.succeeded") == 0)
            subs_done++;
    }
    assert_int_equal(subs_done, 3);
    lines_free(&ls);
    proc_free(&p);

    /* without the sub-graph registered, the items fail */
    run_tool(&p, NULL, "run", top, "--json", "--quiet", NULL);
    expect_status(&p, 1);
    proc_free(&p);

    /* an invalid sub-graph: its problems, under its own name */
    char prefix[PATH_BYTES + 4];
    snprintf(prefix, sizeof(prefix), "%s: ", bad_sub);
    run_tool(&p, NULL, "validate", top, "--graph", bad_sub, NULL);
    expect_status(&p, 1);
    assert_true(problem_lines(p.out.p, prefix) >= 1);
    proc_free(&p);
    run_tool(&p, NULL, "run", top, "--graph", bad_sub, NULL);
    expect_status(&p, 2);
    assert_true(problem_lines(p.err.p, prefix) >= 1);
    proc_free(&p);
}

/* conditional.json: the default mode takes the fast path and skips the slow one. */
static void test_lang_conditional_example(void **state)
{
    struct lines ls;
    struct proc p;

    run_tool(&p, NULL, "run", "examples/conditional.json", "--json", NULL);
    skip_without_engine(&p);
    expect_status(&p, 0);
    parse_lines(&p, &ls);
    check_stream(&ls, "succeeded");
    assert_int_equal(count_events(&ls, "node.succeeded", "fast_path"), 1);
    assert_int_equal(count_events(&ls, "node.skipped", "slow_path"), 1);
    assert_int_equal(count_events(&ls, "node.succeeded", "report"), 1);
    lines_free(&ls);
    proc_free(&p);

    run_tool(&p, NULL, "run", "examples/conditional.json", "--json", "--inputs",
             "{\"mode\": \"slow\"}", NULL);
    expect_status(&p, 0);
    parse_lines(&p, &ls);
    assert_int_equal(count_events(&ls, "node.skipped", "fast_path"), 1);
    assert_int_equal(count_events(&ls, "node.succeeded", "slow_path"), 1);
    assert_int_equal(count_events(&ls, "node.succeeded", "report"), 1);
    lines_free(&ls);
    proc_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_and_help),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_validate_valid),
        cmocka_unit_test(test_validate_broken),
        cmocka_unit_test(test_validate_missing_file),
        cmocka_unit_test(test_run_json_lines),
        cmocka_unit_test(test_run_failure),
        cmocka_unit_test(test_run_quiet_and_live),
        cmocka_unit_test(test_run_timeout),
        cmocka_unit_test(test_run_sigint),
        cmocka_unit_test(test_run_refuses_input),
        cmocka_unit_test(test_run_inputs_accepted),
        cmocka_unit_test(test_run_document),
        cmocka_unit_test(test_lang_examples_validate_and_run),
        cmocka_unit_test(test_lang_hello_output),
        cmocka_unit_test(test_lang_cached_example),
        cmocka_unit_test(test_lang_conditional_example),
        cmocka_unit_test(test_lang_fanout_document),
        cmocka_unit_test(test_lang_subgraph),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
