/*
 * tests/daemon/test_hooks.c: webhooks against a real ringflowd (net/apihooks.c).
 *
 * Definitions: 201 then 200 on redefinition, every problem of a bad one named by its
 * pointer (unknown field, short secret, a template reading `inputs`, an unknown graph),
 * GET without the secrets, the list, DELETE, and all of it surviving a restart (the
 * journal). Deliveries, signed here with net/hooksig.c's signer: valid (202, the inputs
 * built from the body, a header and a query parameter), tampered body, tampered
 * timestamp, stale, from the future, wrong secret, a rotated secret (both listed), no
 * signature, a malformed one, a duplicate X-Ringflow-Delivery (200 and the first
 * execution, also after a restart), a text body, an undefined hook.
 *
 * RF_TEST_CONCURRENT: the daemon's shards are threads.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "net/hooksig.h"
#include "tests/support/daemon.h"

#define SECRET  "0123456789abcdef-first"
#define SECRET2 "fedcba9876543210-second"
#define WAIT_MS 20000

static struct rfd d;

static int up(void **state)
{
    (void)state;
    return rfd_start(&d, RF_BUILD_DIR, NULL);
}

static int down(void **state)
{
    (void)state;
    return rfd_stop(&d) == 0 ? 0 : -1;
}

/* A request with extra header lines (each ending in \r\n). */
static int request(const char *method, const char *path, const char *ctype, const char *extra,
                   const char *body, struct rfd_resp *r)
{
    char *req = NULL;
    int fd, rc = -1;

    if (asprintf(&req,
                 "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s%s%s"
                 "Content-Length: %zu\r\n\r\n%s",
                 method, path, ctype ? "Content-Type: " : "", ctype ? ctype : "",
                 ctype ? "\r\n" : "", body ? strlen(body) : 0, body ? body : "") < 0)
        return -1;
    if (extra) { /* splice the extra lines in after the Host line */
        char *with = NULL;
        char *at = strstr(req, "Connection: close\r\n");
        if (asprintf(&with, "%.*s%s%s", (int)(at - req), req, extra, at) < 0) {
            free(req);
            return -1;
        }
        free(req);
        req = with;
    }
    fd = rfd_connect(&d);
    if (fd >= 0 && rfd_send_str(fd, req) == 0)
        rc = rfd_read_resp(fd, r, 10000, false);
    rfd_close(fd);
    free(req);
    return rc;
}

static int put_hook(const char *name, const char *doc, json_t **out)
{
    char path[128];
    struct rfd_resp r;

    snprintf(path, sizeof(path), "/v1/hooks/%s", name);
    assert_int_equal(rfd_request(&d, "PUT", path, doc, &r), 0);
    int st = r.status;
    if (out)
        *out = rfd_json(&r);
    rfd_resp_free(&r);
    return st;
}

/* POST a delivery signed with `secret` at time t; its status, the body in *out. */
static int deliver(const char *hook, const char *body, const char *secret, int64_t t,
                   const char *delivery, const char *query, json_t **out)
{
    char sig[256], extra[512], path[256];
    struct rfd_resp r;
    int n = 0;

    extra[0] = 0;
    if (secret) {
        assert_true(rf_hooksig_sign(secret, strlen(secret), t, body, strlen(body), sig,
                                    sizeof(sig)) > 0);
        n += snprintf(extra + n, sizeof(extra) - n, "X-Ringflow-Signature: %s\r\n", sig);
    }
    if (delivery)
        n += snprintf(extra + n, sizeof(extra) - n, "X-Ringflow-Delivery: %s\r\n", delivery);
    snprintf(extra + n, sizeof(extra) - n, "X-Shop: acme\r\n");
    snprintf(path, sizeof(path), "/v1/hooks/%s%s%s", hook, query ? "?" : "", query ? query : "");
    assert_int_equal(request("POST", path, "application/json", extra, body, &r), 0);
    int st = r.status;
    if (out)
        *out = rfd_json(&r);
    rfd_resp_free(&r);
    return st;
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static json_t *result_of(const char *id)
{
    char path[128];
    struct rfd_resp r;

    snprintf(path, sizeof(path), "/v1/executions/%s/result?wait_ms=5000", id);
    assert_int_equal(rfd_request(&d, "GET", path, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *j = rfd_json(&r);
    rfd_resp_free(&r);
    return j;
}

static const char *code_of(const json_t *err)
{
    return json_string_value(json_object_get(json_object_get(err, "error"), "code"));
}

static const char *const ORDER_HOOK =
    "{\"graph\": \"chain3\", \"inputs\": {\"n\": \"{{body.order.qty}}\"},"
    " \"secrets\": [\"" SECRET "\"]}";

static void test_definitions(void **state)
{
    json_t *j;

    (void)state;
    assert_int_equal(put_hook("orders", ORDER_HOOK, &j), 201);
    assert_string_equal(json_string_value(json_object_get(j, "graph")), "chain3");
    assert_int_equal(json_integer_value(json_object_get(j, "secrets")), 1); /* a count */
    char *shown = json_dumps(j, 0);
    assert_null(strstr(shown, SECRET));
    free(shown);
    json_decref(j);
    assert_int_equal(put_hook("orders", ORDER_HOOK, NULL), 200);
    /* every problem, by pointer */
    assert_int_equal(put_hook("bad",
                              "{\"graph\": \"chain3\", \"inputs\": {\"x\": \"{{inputs.n}}\"},"
                              " \"secrets\": [\"short\"], \"color\": 1}",
                              &j),
                     422);
    assert_string_equal(code_of(j), "invalid_hook");
    char *text = json_dumps(j, 0);
    assert_non_null(strstr(text, "/secrets/0"));
    assert_non_null(strstr(text, "/inputs/x"));
    assert_non_null(strstr(text, "/color"));
    free(text);
    json_decref(j);
    assert_int_equal(put_hook("bad2", "{\"graph\": \"nope\", \"secrets\": [\"" SECRET "\"]}", &j),
                     422);
    assert_string_equal(code_of(j), "unknown_graph");
    json_decref(j);
    assert_int_equal(put_hook("Bad!", ORDER_HOOK, NULL), 400);
    assert_int_equal(put_hook("gone", ORDER_HOOK, NULL), 201);
    struct rfd_resp r;
    assert_int_equal(rfd_request(&d, "DELETE", "/v1/hooks/gone", NULL, &r), 0);
    assert_int_equal(r.status, 204);
    rfd_resp_free(&r);
    assert_int_equal(rfd_request(&d, "GET", "/v1/hooks/gone", NULL, &r), 0);
    assert_int_equal(r.status, 404);
    rfd_resp_free(&r);
    assert_int_equal(rfd_request(&d, "GET", "/v1/hooks", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"orders\""));
    assert_null(strstr(r.body, "\"gone\""));
    rfd_resp_free(&r);
}

static void test_deliveries(void **state)
{
    const char *body = "{\"order\": {\"qty\": 3}}";
    json_t *j;

    (void)state;
    assert_int_equal(put_hook("orders", ORDER_HOOK, NULL), 200);
    assert_int_equal(deliver("orders", body, SECRET, now_s(), NULL, NULL, &j), 202);
    json_t *res = result_of(json_string_value(json_object_get(j, "id")));
    assert_string_equal(json_string_value(json_object_get(res, "status")), "succeeded");
    json_decref(res);
    json_decref(j);
    /* refusals, each 401 with a reason */
    assert_int_equal(deliver("orders", body, "wrong-secret-entirely", now_s(), NULL, NULL, &j),
                     401);
    assert_string_equal(code_of(j), "unauthorized");
    json_decref(j);
    assert_int_equal(deliver("orders", body, NULL, 0, NULL, NULL, NULL), 401);
    assert_int_equal(deliver("orders", body, SECRET, now_s() - 301, NULL, NULL, NULL), 401);
    assert_int_equal(deliver("orders", body, SECRET, now_s() + 301, NULL, NULL, NULL), 401);
    /* a tampered body: signed one, sent another */
    char sig[256], extra[400];
    struct rfd_resp r;
    rf_hooksig_sign(SECRET, strlen(SECRET), now_s(), body, strlen(body), sig, sizeof(sig));
    snprintf(extra, sizeof(extra), "X-Ringflow-Signature: %s\r\n", sig);
    assert_int_equal(request("POST", "/v1/hooks/orders", "application/json", extra,
                             "{\"order\": {\"qty\": 300}}", &r),
                     0);
    assert_int_equal(r.status, 401);
    rfd_resp_free(&r);
    /* a tampered timestamp: the same v1 with another t */
    char *v1 = strstr(sig, "v1=");
    snprintf(extra, sizeof(extra), "X-Ringflow-Signature: t=%lld,%s\r\n", (long long)now_s() - 1,
             v1);
    assert_int_equal(request("POST", "/v1/hooks/orders", "application/json", extra, body, &r), 0);
    assert_int_equal(r.status, 401);
    rfd_resp_free(&r);
    snprintf(extra, sizeof(extra), "X-Ringflow-Signature: t=abc,v1=00\r\n");
    assert_int_equal(request("POST", "/v1/hooks/orders", "application/json", extra, body, &r), 0);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.body, "X-Ringflow-Signature:"));
    rfd_resp_free(&r);
    assert_int_equal(deliver("nohook", body, SECRET, now_s(), NULL, NULL, NULL), 404);
}

static void test_rotation(void **state)
{
    const char *body = "{\"order\": {\"qty\": 1}}";

    (void)state;
    assert_int_equal(put_hook("rot",
                              "{\"graph\": \"chain3\", \"inputs\": {\"n\": "
                              "\"{{body.order.qty}}\"}, \"secrets\": [\"" SECRET
                              "\", \"" SECRET2 "\"]}",
                              NULL),
                     201);
    assert_int_equal(deliver("rot", body, SECRET, now_s(), NULL, NULL, NULL), 202);
    assert_int_equal(deliver("rot", body, SECRET2, now_s(), NULL, NULL, NULL), 202);
    /* the old secret retired */
    assert_int_equal(put_hook("rot",
                              "{\"graph\": \"chain3\", \"inputs\": {\"n\": "
                              "\"{{body.order.qty}}\"}, \"secrets\": [\"" SECRET2 "\"]}",
                              NULL),
                     200);
    assert_int_equal(deliver("rot", body, SECRET, now_s(), NULL, NULL, NULL), 401);
    assert_int_equal(deliver("rot", body, SECRET2, now_s(), NULL, NULL, NULL), 202);
}

static char *first_id;

static void test_duplicate_delivery(void **state)
{
    const char *body = "{\"order\": {\"qty\": 7}}";
    json_t *a, *b;

    (void)state;
    assert_int_equal(deliver("orders", body, SECRET, now_s(), "dlv-42", NULL, &a), 202);
    assert_int_equal(deliver("orders", body, SECRET, now_s(), "dlv-42", NULL, &b), 200);
    assert_string_equal(json_string_value(json_object_get(a, "id")),
                        json_string_value(json_object_get(b, "id")));
    first_id = strdup(json_string_value(json_object_get(a, "id")));
    json_decref(a);
    json_decref(b);
    assert_int_equal(deliver("orders", body, SECRET, now_s(), "dlv-43", NULL, NULL), 202);
}

static void test_request_parts(void **state)
{
    json_t *j;

    (void)state;
    /* headers and query reach the template */
    struct rfd_resp r;
    assert_int_equal(rfd_request(&d, "PUT", "/v1/graphs/echo",
                                 "{\"inputs\": {\"tag\": {\"type\": \"string\"}}, \"nodes\": "
                                 "[{\"id\": \"t\", \"kind\": \"transform\", \"config\": "
                                 "{\"output\": \"{{inputs.tag}}\"}}], \"output\": "
                                 "\"{{nodes.t.output}}\"}",
                                 &r),
                     0);
    assert_int_equal(r.status, 201);
    rfd_resp_free(&r);
    assert_int_equal(put_hook("parts",
                              "{\"graph\": \"echo\", \"inputs\": {\"tag\": "
                              "\"{{headers.x-shop}}/{{query.src}}\"}, \"secrets\": [\"" SECRET
                              "\"]}",
                              NULL),
                     201);
    assert_int_equal(deliver("parts", "{}", SECRET, now_s(), NULL, "src=a%20b", &j), 202);
    json_t *res = result_of(json_string_value(json_object_get(j, "id")));
    assert_string_equal(json_string_value(json_object_get(res, "output")), "acme/a b");
    json_decref(res);
    json_decref(j);
    /* a template that does not resolve: 422 */
    assert_int_equal(put_hook("needs",
                              "{\"graph\": \"chain3\", \"inputs\": {\"n\": \"{{body.n}}\"},"
                              " \"secrets\": [\"" SECRET "\"]}",
                              NULL),
                     201);
    assert_int_equal(deliver("needs", "{}", SECRET, now_s(), NULL, NULL, &j), 422);
    assert_string_equal(code_of(j), "invalid_inputs");
    json_decref(j);
    /* a broken JSON body (signed as it is): 400 */
    assert_int_equal(deliver("needs", "{nope", SECRET, now_s(), NULL, NULL, &j), 400);
    json_decref(j);
}

/* Definitions and delivery ids survive a restart. */
static void test_restart(void **state)
{
    const char *body = "{\"order\": {\"qty\": 7}}";
    json_t *j;

    (void)state;
    kill(d.pid, SIGTERM);
    assert_int_equal(rfd_wait_exit(&d, WAIT_MS), 0);
    assert_int_equal(rfd_restart(&d, RF_BUILD_DIR, NULL, NULL), 0);
    struct rfd_resp r;
    assert_int_equal(rfd_request(&d, "GET", "/v1/hooks/orders", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    rfd_resp_free(&r);
    assert_int_equal(rfd_request(&d, "GET", "/v1/hooks/gone", NULL, &r), 0);
    assert_int_equal(r.status, 404); /* its deletion came back too */
    rfd_resp_free(&r);
    assert_int_equal(deliver("orders", body, SECRET, now_s(), "dlv-42", NULL, &j), 200);
    assert_string_equal(json_string_value(json_object_get(j, "id")), first_id);
    json_decref(j);
    assert_int_equal(deliver("rot", body, SECRET, now_s(), NULL, NULL, NULL), 401);
    assert_int_equal(deliver("rot", body, SECRET2, now_s(), NULL, NULL, NULL), 202);
    free(first_id);
}

int main(void)
{
    rfd_test_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_definitions),    cmocka_unit_test(test_deliveries),
        cmocka_unit_test(test_rotation),       cmocka_unit_test(test_duplicate_delivery),
        cmocka_unit_test(test_request_parts),  cmocka_unit_test(test_restart),
    };
    int failed = cmocka_run_group_tests_name("hooks", tests, up, down);

    return failed || rfd_failures() ? 1 : 0;
}
