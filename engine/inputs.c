/*
 * engine/inputs.c: the `inputs` declaration of a graph (../shared/spec/graph.md) and the
 * check of an execution's inputs against it.
 *
 * A declaration is an object from input name to {type, required, default, description}.
 * rf__inputs_decl_check() runs when a document is parsed (engine/gdoc.c), and when a plan
 * is compiled from a builder whose declaration came from the embedding API: it reports
 * every problem of the declaration at once, under the JSON Pointer the caller names
 * ("/inputs"). rf__inputs_resolve() runs at submission
 * (rf_inputs_check, rf_submit): it turns the caller's inputs into the execution's inputs,
 * a new object holding every declared input that was given or has a default, and reports
 * every problem at "/inputs/<name>" so that a bad submission is a 4xx and never a failed
 * execution.
 *
 * Decisions (docs/graphs.md, "Inputs"):
 *   - `type` defaults to "any"; `integer` accepts a JSON integer or a number written with
 *     a fraction or exponent whose value is a whole number of magnitude at most 2^53, and
 *     stores the latter as an integer, so templates see 3 and not 3.0;
 *   - an input may be required or have a default, not both (the default could never
 *     apply: the declaration is refused rather than left ambiguous);
 *   - null is a value like any other: it only satisfies `any`;
 *   - inputs that are not declared are refused ("unknown_input"), as Argo and Flyte refuse
 *     unknown parameters; with no declaration at all every object is accepted as it is.
 *
 * Both functions are pure over their JSON arguments (borrowed); nothing is kept.
 */
#include "engine/rf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/internal.h"

#define RF_INPUTS_DECL_MAX   1024               /* inputs one graph may declare */
#define RF_INPUT_NAME_MAX    64                 /* characters of an input name */
#define RF_INPUT_SHOWN_BYTES 80                 /* bytes of a name quoted in a message */
#define RF_INPUT_MSG_BYTES   384                /* one diagnostic message */
#define RF_INPUT_INT_EXACT   9007199254740992.0 /* 2^53: larger reals are not exact integers */

enum input_type {
    IT_ANY,
    IT_STRING,
    IT_NUMBER,
    IT_INTEGER,
    IT_BOOLEAN,
    IT_OBJECT,
    IT_ARRAY,
    IT_COUNT,
};

static const char *const type_names[IT_COUNT] = {
    "any", "string", "number", "integer", "boolean", "object", "array",
};

/* "must be <article> <type>" */
static const char *const type_phrases[IT_COUNT] = {
    "any value", "a string", "a number", "an integer", "a boolean", "an object", "an array",
};

static const char *const decl_fields[] = {"type", "required", "default", "description"};

/* --- reporting -------------------------------------------------------------------------- */

struct report {
    rf_diag *diag;     /* may be NULL: problems are still counted */
    uint32_t problems; /* items reported */
    int err;           /* -ENOMEM once an item could not be recorded */
};

static void vreport(struct report *r, const char *pointer, const char *code, const char *fmt,
                    va_list ap)
{
    char msg[RF_INPUT_MSG_BYTES];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    r->problems++;
    if (!pointer || rf_diag_add(r->diag, pointer, code, "%s", msg) < 0)
        r->err = -ENOMEM;
}

static void report(struct report *r, const char *pointer, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report(struct report *r, const char *pointer, const char *code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(r, pointer, code, fmt, ap);
    va_end(ap);
}

/* A problem at `base`/`key` (the key escaped). */
static void report_at(struct report *r, const char *base, const char *key, const char *code,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void report_at(struct report *r, const char *base, const char *key, const char *code,
                      const char *fmt, ...)
{
    char *ptr = rf__ptr_child(base, key);
    va_list ap;

    va_start(ap, fmt);
    vreport(r, ptr, code, fmt, ap);
    va_end(ap);
    rf_free(ptr);
}

static int shown(const char *s)
{
    return rf__utf8_shown(s, RF_INPUT_SHOWN_BYTES);
}

static const char *json_phrase(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

/* --- types ------------------------------------------------------------------------------ */

static int type_parse(const char *s)
{
    for (int t = 0; t < IT_COUNT; t++)
        if (strcmp(s, type_names[t]) == 0)
            return t;
    return -1;
}

/* A real that is a whole number small enough to be exact in a double. */
static bool real_is_integer(const json_t *v)
{
    double x = json_real_value(v);

    /* Bounded first, so the conversion is defined; no libm needed. */
    return x >= -RF_INPUT_INT_EXACT && x <= RF_INPUT_INT_EXACT && x == (double)(long long)x;
}

static bool value_is(enum input_type t, const json_t *v)
{
    switch (t) {
    case IT_ANY:
        return true;
    case IT_STRING:
        return json_is_string(v);
    case IT_NUMBER:
        return json_is_number(v);
    case IT_INTEGER:
        return json_is_integer(v) || (json_is_real(v) && real_is_integer(v));
    case IT_BOOLEAN:
        return json_is_boolean(v);
    case IT_OBJECT:
        return json_is_object(v);
    case IT_ARRAY:
        return json_is_array(v);
    case IT_COUNT:
        break;
    }
    return false;
}

/* The declared type of a checked input spec; "any" when absent (or, defensively, unknown). */
static enum input_type spec_type(const json_t *spec)
{
    const json_t *t = json_object_get(spec, "type");
    int k = json_is_string(t) ? type_parse(json_string_value(t)) : IT_ANY;

    return k < 0 ? IT_ANY : (enum input_type)k;
}

static bool input_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > RF_INPUT_NAME_MAX)
        return false;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* --- the declaration -------------------------------------------------------------------- */

static void check_spec_fields(const json_t *spec, const char *ptr, struct report *r)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)spec, key, v)
    {
        bool known = false;
        for (size_t i = 0; i < RF_ARRAY_LEN(decl_fields) && !known; i++)
            known = strcmp(key, decl_fields[i]) == 0;
        if (known)
            continue;
        report_at(r, ptr, key, "unknown_field",
                  "unknown field \"%.*s\" (an input has type, required, default, description)",
                  shown(key), key);
    }
}

/* One declared input, at pointer `ptr` ("/inputs/<name>"). */
static void check_spec(const char *name, const json_t *spec, const char *ptr, struct report *r)
{
    const json_t *type, *req, *def, *desc;
    int t = IT_ANY;

    if (!input_name_ok(name))
        report(r, ptr, "bad_name", "input name \"%.*s\" must match [A-Za-z_][A-Za-z0-9_-]{0,63}",
               shown(name), name);
    if (!json_is_object(spec)) {
        report(r, ptr, "type", "input \"%.*s\" must be declared by an object, not %s", shown(name),
               name, json_phrase(spec));
        return;
    }
    check_spec_fields(spec, ptr, r);
    type = json_object_get(spec, "type");
    req = json_object_get(spec, "required");
    def = json_object_get(spec, "default");
    desc = json_object_get(spec, "description");
    if (type && !json_is_string(type)) {
        report_at(r, ptr, "type", "type", "type must be a string, not %s", json_phrase(type));
        t = -1;
    } else if (type && (t = type_parse(json_string_value(type))) < 0) {
        report_at(
            r, ptr, "type", "bad_type",
            "type \"%.*s\" is not one of string, number, integer, boolean, object, array, any",
            shown(json_string_value(type)), json_string_value(type));
    }
    if (req && !json_is_boolean(req))
        report_at(r, ptr, "required", "type", "required must be a boolean, not %s",
                  json_phrase(req));
    if (desc && !json_is_string(desc))
        report_at(r, ptr, "description", "type", "description must be a string, not %s",
                  json_phrase(desc));
    if (def && t >= 0 && !value_is((enum input_type)t, def))
        report_at(r, ptr, "default", "bad_default",
                  "the default of input \"%.*s\" must be %s, not %s", shown(name), name,
                  type_phrases[t], json_phrase(def));
    if (def && json_is_true(req))
        report_at(r, ptr, "default", "invalid",
                  "input \"%.*s\" is required and has a default; drop one of them", shown(name),
                  name);
}

int rf__inputs_decl_check(const json_t *decl, const char *pointer, rf_diag *diag)
{
    struct report r = {.diag = diag};
    const char *name;
    json_t *spec;

    if (!pointer)
        pointer = "/inputs";
    if (!json_is_object(decl)) {
        report(&r, pointer, "type", "inputs must be an object, not %s",
               decl ? json_phrase(decl) : "nothing");
    } else if (json_object_size(decl) > RF_INPUTS_DECL_MAX) {
        report(&r, pointer, "limit", "%zu inputs are declared; the limit is %d",
               json_object_size(decl), RF_INPUTS_DECL_MAX);
    } else {
        json_object_foreach((json_t *)decl, name, spec)
        {
            char *ptr = rf__ptr_child(pointer, name);
            if (ptr)
                check_spec(name, spec, ptr, &r);
            else
                r.err = -ENOMEM;
            rf_free(ptr);
        }
    }
    if (r.err)
        return r.err;
    return r.problems ? RF_EINVAL_GRAPH : 0;
}

/* --- execution inputs ------------------------------------------------------------------- */

/* One declared input: copy it (or its default) into `res`, or report why not. */
static void resolve_one(const char *name, const json_t *spec, const json_t *inputs, json_t *res,
                        struct report *r)
{
    const json_t *v = inputs ? json_object_get(inputs, name) : NULL;
    enum input_type t = spec_type(spec);
    json_t *out;

    if (!v) {
        const json_t *def = json_object_get(spec, "default");
        if (json_is_true(json_object_get(spec, "required"))) {
            report_at(r, "/inputs", name, "required", "input \"%.*s\" is required", shown(name),
                      name);
            return;
        }
        if (!def)
            return; /* optional, no default: absent from the execution's inputs */
        out = json_deep_copy(def);
    } else if (!value_is(t, v)) {
        report_at(r, "/inputs", name, "type", "input \"%.*s\" must be %s, not %s", shown(name),
                  name, type_phrases[t], json_phrase(v));
        return;
    } else if (t == IT_INTEGER && json_is_real(v)) {
        out = json_integer((json_int_t)json_real_value(v));
    } else {
        out = json_incref((json_t *)v);
    }
    if (!out || json_object_set_new(res, name, out) < 0)
        r->err = -ENOMEM;
}

/* Report every given input the declaration does not name. */
static void reject_unknown(const json_t *decl, const json_t *inputs, struct report *r)
{
    const char *name;
    json_t *v;

    json_object_foreach((json_t *)inputs, name, v)
    {
        if (json_object_get(decl, name))
            continue;
        report_at(r, "/inputs", name, "unknown_input", "the graph declares no input named \"%.*s\"",
                  shown(name), name);
    }
}

int rf__inputs_resolve(const json_t *decl, const json_t *inputs, rf_diag *diag, json_t **resolved)
{
    struct report r = {.diag = diag};
    const char *name;
    json_t *spec, *res;

    if (!resolved)
        return -EINVAL;
    if (inputs && !json_is_object(inputs)) {
        report(&r, "/inputs", "type", "inputs must be an object, not %s", json_phrase(inputs));
        return r.err ? r.err : RF_EINPUTS;
    }
    res = json_object();
    if (!res)
        return -ENOMEM;
    if (!decl) {
        if (inputs && json_object_update(res, (json_t *)inputs) < 0)
            r.err = -ENOMEM;
    } else {
        json_object_foreach((json_t *)decl, name, spec) resolve_one(name, spec, inputs, res, &r);
        if (inputs)
            reject_unknown(decl, inputs, &r);
    }
    if (r.err || r.problems) {
        json_decref(res);
        return r.err ? r.err : RF_EINPUTS;
    }
    *resolved = res;
    return 0;
}
