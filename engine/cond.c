/*
 * engine/cond.c: `when` conditions (spec/graph.md, "Conditions"): a sans-I/O tokenizer, a
 * recursive-descent compiler to postfix code, and the evaluator the shards run when a node
 * becomes ready.
 *
 * Grammar, loosest first, as in C:  or := and ('||' and)*   and := eq ('&&' eq)*
 *   eq := rel (('==' | '!=') rel)*   rel := unary (('<' | '<=' | '>' | '>=') unary)*
 *   unary := '!' unary | primary     primary := literal | path | '(' or ')'
 * Binary operators are left-associative. Literals: JSON numbers (an optional leading '-';
 * an integer literal past int64 becomes a real; one that overflows a double is an error),
 * "str" or 'str' (escapes \" \' \\ \/ \b \f \n \r \t \uXXXX), true, false, null. Paths
 * are the template paths of engine/tmpl.c, written without braces. Limits: the source is at
 * most RF_EXPR_BYTES_MAX bytes and `!` / `(` nest at most RF_EXPR_DEPTH_MAX deep (diag
 * code "limit"); syntax errors get "condition_syntax" with the byte offset.
 *
 * Semantics (spec, plus the decisions it leaves open):
 *   - values keep their JSON types, no coercion: 1 == "1" is false;
 *   - `==` / `!=` compare structurally (arrays by element, objects by member set), with
 *     numbers compared by value at every depth: 1 == 1.0, [1] == [1.0]; integers and
 *     reals compare exactly (no rounding through double);
 *   - `< <= > >=` order two numbers, or two strings bytewise (UTF-8, so by code point);
 *     any other pair is not ordered: the comparison is false, and `!` of it is true;
 *   - `&&`, `||` short-circuit and yield booleans; `!` yields a boolean;
 *   - truthiness: false, null, 0, 0.0, "", [] and {} are false, all else true; a `when`
 *     is true when its value is truthy;
 *   - a path that does not resolve fails the evaluation ("template_error"), even where
 *     short-circuiting would not have needed it on another input: paths are resolved
 *     only when reached, so `inputs.a && nodes.x.output.y` reads y only when a is truthy.
 *
 * Compiled form: one block holding the code (an array of {op, arg} run by a loop over a
 * fixed stack of RF_COND_STACK_MAX values), the literals (strings decoded once) and the
 * compiled paths. Evaluation reads it only and allocates nothing, so it is safe on many
 * threads at once. rf__cond_dump() prints the code for tests and the fuzzer.
 */
#include "engine/rf.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/expr.h"

/* Operand stack of an evaluation: each `(` level holds at most one pending operand per
 * binary precedence level, and `&&` / `||` pop theirs before the right side. */
#define RF_COND_STACK_MAX    (4 * (RF_EXPR_DEPTH_MAX + 2))
#define RF_COND_EQ_DEPTH_MAX 2048 /* nesting `==` walks into, jansson's parse limit */

/* --- tokenizer (sans-I/O) --------------------------------------------------------------- */

static int lex_fail(struct rf_scan_err *e, size_t off, const char *msg, bool limit)
{
    e->off = off;
    e->msg = msg;
    e->limit = limit;
    return -1;
}

static inline bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static inline bool is_word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == '-';
}

static size_t digits(const char *s, size_t len, size_t i)
{
    while (i < len && is_digit(s[i]))
        i++;
    return i;
}

/* A JSON number at s[i]; returns the index past it or -1. */
static long lex_number(const char *s, size_t len, size_t i, struct rf_scan_err *e)
{
    size_t j = i;

    if (s[j] == '-')
        j++;
    if (j >= len || !is_digit(s[j]))
        return lex_fail(e, j, "expected a digit after '-'", false);
    j = s[j] == '0' ? j + 1 : digits(s, len, j);
    if (j < len && s[j] == '.') {
        size_t k = digits(s, len, j + 1);
        if (k == j + 1)
            return lex_fail(e, k, "expected a digit after '.' in a number", false);
        j = k;
    }
    if (j < len && (s[j] == 'e' || s[j] == 'E')) {
        size_t k = j + 1 < len && (s[j + 1] == '+' || s[j + 1] == '-') ? j + 2 : j + 1;
        size_t m = digits(s, len, k);
        if (m == k)
            return lex_fail(e, k, "expected a digit in the number's exponent", false);
        j = m;
    }
    if (j < len && (is_word_char(s[j]) || s[j] == '.'))
        return lex_fail(e, j, "unexpected character after a number", false);
    return (long)j;
}

/* A literal word or a path at s[i]. */
static long lex_word(const char *s, size_t len, size_t i, struct rf_tok *t, struct rf_scan_err *e)
{
    size_t j = i;
    struct rf_path p;
    int k;

    while (j < len && is_word_char(s[j]))
        j++;
    if (j - i == 4 && memcmp(s + i, "true", 4) == 0)
        t->kind = RF_TOK_TRUE;
    else if (j - i == 5 && memcmp(s + i, "false", 5) == 0)
        t->kind = RF_TOK_FALSE;
    else if (j - i == 4 && memcmp(s + i, "null", 4) == 0)
        t->kind = RF_TOK_NULL;
    else {
        k = rf__path_scan(s + i, len - i, &p, e);
        if (k < 0) {
            e->off += i;
            return -1;
        }
        t->kind = RF_TOK_PATH;
        j = i + (size_t)k;
    }
    t->len = j - i;
    return (long)j;
}

static long lex_string(const char *s, size_t len, size_t i, struct rf_tok *t, struct rf_scan_err *e)
{
    long b = rf__str_scan(s + i + 1, len - i - 1, s[i], e);

    if (b < 0) {
        e->off += i + 1;
        return -1;
    }
    *t = (struct rf_tok){.kind = RF_TOK_STR, .off = i + 1, .len = (size_t)b};
    return (long)(i + (size_t)b + 2);
}

/* An operator of one or two bytes at s[i]. */
static long lex_op(const char *s, size_t len, size_t i, struct rf_tok *t, struct rf_scan_err *e)
{
    char c = s[i], d = i + 1 < len ? s[i + 1] : '\0';

    t->len = 1;
    switch (c) {
    case '(':
        t->kind = RF_TOK_LPAREN;
        break;
    case ')':
        t->kind = RF_TOK_RPAREN;
        break;
    case '!':
        t->kind = d == '=' ? RF_TOK_NE : RF_TOK_NOT;
        break;
    case '<':
        t->kind = d == '=' ? RF_TOK_LE : RF_TOK_LT;
        break;
    case '>':
        t->kind = d == '=' ? RF_TOK_GE : RF_TOK_GT;
        break;
    case '=':
        if (d != '=')
            return lex_fail(e, i, "expected '==' ('=' alone is not an operator)", false);
        t->kind = RF_TOK_EQ;
        break;
    case '&':
        if (d != '&')
            return lex_fail(e, i, "expected '&&'", false);
        t->kind = RF_TOK_AND;
        break;
    case '|':
        if (d != '|')
            return lex_fail(e, i, "expected '||'", false);
        t->kind = RF_TOK_OR;
        break;
    case '{':
        return lex_fail(e, i, "conditions take paths without '{{ }}'", false);
    default:
        return lex_fail(e, i, "unexpected character: expected a value or an operator", false);
    }
    if (d == '=' && (c == '!' || c == '<' || c == '>'))
        t->len = 2;
    if (t->kind == RF_TOK_EQ || t->kind == RF_TOK_AND || t->kind == RF_TOK_OR)
        t->len = 2;
    return (long)(i + t->len);
}

static long lex_one(const char *s, size_t len, size_t i, struct rf_tok *t, struct rf_scan_err *e)
{
    char c = s[i];

    t->off = i;
    if (c == '"' || c == '\'')
        return lex_string(s, len, i, t, e);
    if (c == '-' || is_digit(c)) {
        long j = lex_number(s, len, i, e);
        t->kind = RF_TOK_NUM;
        t->len = j < 0 ? 0 : (size_t)j - i;
        return j;
    }
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return lex_word(s, len, i, t, e);
    return lex_op(s, len, i, t, e);
}

int rf__cond_lex(const char *s, size_t len, struct rf_tok *toks, size_t cap, struct rf_scan_err *e)
{
    size_t i = 0, n = 0;

    for (;;) {
        long j;

        while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
            i++;
        if (n == cap || n == INT32_MAX)
            return lex_fail(e, i, "more tokens than the caller's array holds", true);
        if (i >= len) {
            toks[n++] = (struct rf_tok){.kind = RF_TOK_END, .off = len};
            return (int)n;
        }
        j = lex_one(s, len, i, &toks[n], e);
        if (j < 0)
            return -1;
        i = (size_t)j;
        n++;
    }
}

/* --- compiled form ---------------------------------------------------------------------- */

enum op {
    OP_LIT,
    OP_PATH,
    OP_NOT,
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_AND,
    OP_OR,
    OP_BOOL
};

struct cins {
    uint8_t op;   /* enum op */
    uint32_t arg; /* OP_LIT: literal; OP_PATH: path; OP_AND / OP_OR: jump target */
};

/* A value on the evaluation stack: a JSON type and its payload. */
struct cval {
    uint8_t t;       /* json_type; JSON_TRUE / JSON_FALSE for booleans */
    const json_t *j; /* JSON_OBJECT, JSON_ARRAY */
    union {
        int64_t i;
        double r;
        struct {
            const char *s;
            size_t n;
        } str;
    };
};

struct rf_cond {
    uint32_t ncode, nlits, npaths;
    uint32_t stack_max;
    struct cins *code;
    struct cval *lits;
    struct rf_cpath **paths;
    char *pool; /* decoded string literals */
};

void rf_cond_free(struct rf_cond *c)
{
    if (!c)
        return;
    for (uint32_t i = 0; i < c->npaths; i++)
        rf__cpath_free(c->paths[i]);
    rf_free(c);
}

/* One block: the struct, then code, literals, paths and the pool, each at its bound. */
static struct rf_cond *cond_alloc(const struct rf_tok *toks, int ntok)
{
    size_t ncode = 0, nlits = 0, npaths = 0, pool = 0, size;
    struct rf_cond *c;

    for (int k = 0; k < ntok; k++) {
        uint8_t kind = toks[k].kind;
        nlits += kind >= RF_TOK_NUM && kind <= RF_TOK_NULL;
        npaths += kind == RF_TOK_PATH;
        pool += kind == RF_TOK_STR ? toks[k].len : 0;
        ncode += kind == RF_TOK_AND || kind == RF_TOK_OR ? 2 : kind >= RF_TOK_NOT;
    }
    size = sizeof(*c) + ncode * sizeof(struct cins) + nlits * sizeof(struct cval) +
           npaths * sizeof(struct rf_cpath *) + pool;
    c = rf_calloc(1, size);
    if (!c)
        return NULL;
    c->code = (struct cins *)(c + 1);
    c->lits = (struct cval *)(c->code + ncode);
    c->paths = (struct rf_cpath **)(c->lits + nlits);
    c->pool = (char *)(c->paths + npaths);
    return c;
}

/* --- parser ----------------------------------------------------------------------------- */

struct parser {
    const char *s; /* the source, NUL-terminated copy */
    const struct rf_tok *toks;
    uint32_t pos;
    struct rf_cond *c;
    size_t pool_used;
    const struct rf_expr_env *env;
    const char *pointer;
    rf_diag *diag;
    unsigned depth;
    uint32_t sp;
    bool refs_failed;
};

static const char *tok_name(uint8_t kind)
{
    static const char *const names[] = {"the end",  "'('",      "')'",  "'!'",   "'&&'", "'||'",
                                        "'=='",     "'!='",     "'<'",  "'<='",  "'>'",  "'>='",
                                        "a number", "a string", "true", "false", "null", "a path"};
    return names[kind];
}

static int syntax(struct parser *p, const char *expected)
{
    const struct rf_tok *t = &p->toks[p->pos];
    size_t off = t->off - (t->kind == RF_TOK_STR); /* a string starts at its quote */
    int rc = rf_diag_add(p->diag, p->pointer, "condition_syntax",
                         "at byte %zu: expected %s, found %s", off, expected, tok_name(t->kind));
    return rc < 0 ? rc : RF_EINVAL_GRAPH;
}

static uint32_t emit(struct parser *p, enum op op, uint32_t arg)
{
    struct rf_cond *c = p->c;

    if (op == OP_LIT || op == OP_PATH)
        p->sp++;
    else if (op != OP_NOT && op != OP_BOOL)
        p->sp--; /* a binary operator, or the pop of && / || going on */
    c->stack_max = RF_MAX(c->stack_max, p->sp);
    c->code[c->ncode] = (struct cins){.op = (uint8_t)op, .arg = arg};
    return c->ncode++;
}

/* A number literal: int64 when it has no fraction or exponent and fits, else a double. */
static int number_lit(struct parser *p, const struct rf_tok *t, struct cval *v)
{
    const char *s = p->s + t->off;
    char *end;

    if (!memchr(s, '.', t->len) && !memchr(s, 'e', t->len) && !memchr(s, 'E', t->len)) {
        errno = 0;
        long long i = strtoll(s, &end, 10);
        if (errno == 0) {
            RF_ASSERT(end == s + t->len);
            *v = (struct cval){.t = JSON_INTEGER, .i = i};
            return 0;
        }
    }
    double r = strtod(s, &end);
    RF_ASSERT(end == s + t->len);
    if (isinf(r)) {
        int rc = rf_diag_add(p->diag, p->pointer, "condition_syntax",
                             "at byte %zu: number out of range", t->off);
        return rc < 0 ? rc : RF_EINVAL_GRAPH;
    }
    *v = (struct cval){.t = JSON_REAL, .r = r};
    return 0;
}

static int literal(struct parser *p, const struct rf_tok *t)
{
    struct cval *v = &p->c->lits[p->c->nlits];
    int rc = 0;

    switch (t->kind) {
    case RF_TOK_NUM:
        rc = number_lit(p, t, v);
        break;
    case RF_TOK_STR:
        v->t = JSON_STRING;
        v->str.s = p->c->pool + p->pool_used;
        v->str.n = rf__str_unescape(p->s + t->off, t->len, p->c->pool + p->pool_used);
        p->pool_used += v->str.n;
        break;
    default:
        v->t = t->kind == RF_TOK_TRUE    ? JSON_TRUE
               : t->kind == RF_TOK_FALSE ? JSON_FALSE
                                         : JSON_NULL;
    }
    if (rc == 0)
        emit(p, OP_LIT, p->c->nlits++);
    return rc;
}

/* A path: compiled, its reference checked; a bad reference is diagnosed and parsing goes
 * on, so that every problem is listed. */
static int path(struct parser *p, const struct rf_tok *t)
{
    struct rf_scan_err e;
    struct rf_path ps;
    struct rf_cpath *cp = NULL;
    int rc = rf__path_scan(p->s + t->off, t->len, &ps, &e);

    RF_ASSERT(rc == (int)t->len);
    rc = rf__cpath_compile(p->s + t->off, t->len, &ps, p->env, p->pointer, p->diag, &cp);
    if (rc == -ENOMEM)
        return rc;
    p->refs_failed |= rc < 0;
    p->c->paths[p->c->npaths] = cp;
    emit(p, OP_PATH, p->c->npaths++);
    return 0;
}

static int parse_or(struct parser *p);

static int nest(struct parser *p)
{
    if (p->depth < RF_EXPR_DEPTH_MAX) {
        p->depth++;
        return 0;
    }
    int rc =
        rf_diag_add(p->diag, p->pointer, "limit", "at byte %zu: '!' and '(' nested deeper than %d",
                    p->toks[p->pos].off, RF_EXPR_DEPTH_MAX);
    return rc < 0 ? rc : RF_EINVAL_GRAPH;
}

static int parse_primary(struct parser *p)
{
    const struct rf_tok *t = &p->toks[p->pos];
    int rc;

    if (t->kind == RF_TOK_PATH) {
        p->pos++;
        return path(p, t);
    }
    if (t->kind >= RF_TOK_NUM && t->kind <= RF_TOK_NULL) {
        p->pos++;
        return literal(p, t);
    }
    if (t->kind != RF_TOK_LPAREN)
        return syntax(p, "a value (a literal, a path, '(' or '!')");
    if ((rc = nest(p)) < 0)
        return rc;
    p->pos++;
    if ((rc = parse_or(p)) < 0)
        return rc;
    if (p->toks[p->pos].kind != RF_TOK_RPAREN)
        return syntax(p, "')' or an operator");
    p->pos++;
    p->depth--;
    return 0;
}

static int parse_unary(struct parser *p)
{
    int rc;

    if (p->toks[p->pos].kind != RF_TOK_NOT)
        return parse_primary(p);
    if ((rc = nest(p)) < 0)
        return rc;
    p->pos++;
    if ((rc = parse_unary(p)) < 0)
        return rc;
    emit(p, OP_NOT, 0);
    p->depth--;
    return 0;
}

/* A left-associative level: operand (op operand)*, tokens [lo, hi] mapping to ops. */
static int parse_binary(struct parser *p, int (*operand)(struct parser *), uint8_t lo, uint8_t hi,
                        enum op first)
{
    int rc = operand(p);

    while (rc == 0 && p->toks[p->pos].kind >= lo && p->toks[p->pos].kind <= hi) {
        enum op op = (enum op)(first + (p->toks[p->pos].kind - lo));
        p->pos++;
        rc = operand(p);
        if (rc == 0)
            emit(p, op, 0);
    }
    return rc;
}

static int parse_rel(struct parser *p)
{
    return parse_binary(p, parse_unary, RF_TOK_LT, RF_TOK_GE, OP_LT);
}

static int parse_eq(struct parser *p)
{
    return parse_binary(p, parse_rel, RF_TOK_EQ, RF_TOK_NE, OP_EQ);
}

/* `&&` and `||`: operand (op operand)*, each op a conditional jump past its right side. */
static int parse_logic(struct parser *p, int (*operand)(struct parser *), uint8_t tok, enum op op)
{
    int rc = operand(p);

    while (rc == 0 && p->toks[p->pos].kind == tok) {
        p->pos++;
        uint32_t jump = emit(p, op, 0);
        rc = operand(p);
        if (rc == 0) {
            emit(p, OP_BOOL, 0);
            p->c->code[jump].arg = p->c->ncode;
        }
    }
    return rc;
}

static int parse_and(struct parser *p)
{
    return parse_logic(p, parse_eq, RF_TOK_AND, OP_AND);
}

static int parse_or(struct parser *p)
{
    return parse_logic(p, parse_and, RF_TOK_OR, OP_OR);
}

/* --- compile ---------------------------------------------------------------------------- */

static int diag_lex(const struct rf_scan_err *e, const char *pointer, rf_diag *diag)
{
    int rc = rf_diag_add(diag, pointer, e->limit ? "limit" : "condition_syntax", "at byte %zu: %s",
                         e->off, e->msg);
    return rc < 0 ? rc : RF_EINVAL_GRAPH;
}

static int parse_all(struct parser *p)
{
    int rc = parse_or(p);

    if (rc == 0 && p->toks[p->pos].kind != RF_TOK_END)
        rc = syntax(p, "an operator or the end of the condition");
    if (rc == 0 && p->refs_failed)
        rc = RF_EINVAL_GRAPH;
    if (rc == 0 && p->c->stack_max > RF_COND_STACK_MAX) {
        rc = rf_diag_add(p->diag, p->pointer, "limit", "needs more than %d stack slots",
                         RF_COND_STACK_MAX);
        rc = rc < 0 ? rc : RF_EINVAL_GRAPH;
    }
    RF_ASSERT(rc < 0 || p->sp == 1);
    return rc;
}

int rf_cond_compile(const char *src, size_t len, const char *pointer, const struct rf_expr_env *env,
                    rf_diag *diag, struct rf_cond **out)
{
    struct parser p = {.env = env, .pointer = pointer ? pointer : "", .diag = diag};
    struct rf_scan_err e;
    struct rf_tok *toks;
    char *copy;
    int n, rc;

    *out = NULL;
    if (len > RF_EXPR_BYTES_MAX) {
        rc = rf_diag_add(diag, p.pointer, "limit", "condition longer than %d bytes",
                         RF_EXPR_BYTES_MAX);
        return rc < 0 ? rc : RF_EINVAL_GRAPH;
    }
    toks = rf_malloc((len + 1) * sizeof(*toks) + len + 1);
    if (!toks)
        return -ENOMEM;
    copy = (char *)(toks + len + 1); /* NUL-terminated, for strtod */
    memcpy(copy, src, len);
    copy[len] = '\0';
    n = rf__cond_lex(copy, len, toks, len + 1, &e);
    if (n < 0) {
        rc = diag_lex(&e, p.pointer, diag);
        goto out;
    }
    p.s = copy;
    p.toks = toks;
    p.c = cond_alloc(toks, n);
    rc = p.c ? parse_all(&p) : -ENOMEM;
    if (rc == 0) {
        *out = p.c;
        p.c = NULL;
    }
    rf_cond_free(p.c);
out:
    rf_free(toks);
    return rc;
}

/* --- evaluation ------------------------------------------------------------------------- */

static bool truthy(const struct cval *v)
{
    switch (v->t) {
    case JSON_TRUE:
        return true;
    case JSON_INTEGER:
        return v->i != 0;
    case JSON_REAL:
        return v->r != 0.0;
    case JSON_STRING:
        return v->str.n != 0;
    case JSON_OBJECT:
        return json_object_size(v->j) != 0;
    case JSON_ARRAY:
        return json_array_size(v->j) != 0;
    default:
        return false; /* false, null */
    }
}

static struct cval from_json(const json_t *j)
{
    struct cval v = {.t = (uint8_t)json_typeof(j), .j = j};

    if (v.t == JSON_INTEGER)
        v.i = json_integer_value(j);
    else if (v.t == JSON_REAL)
        v.r = json_real_value(j);
    else if (v.t == JSON_STRING)
        v.str.s = json_string_value(j), v.str.n = json_string_length(j);
    return v;
}

/* int64 against double, exactly: -1, 0, 1. */
static int cmp_int_real(int64_t i, double r)
{
    int64_t t;

    if (r >= 9223372036854775808.0)
        return -1;
    if (r < -9223372036854775808.0)
        return 1;
    t = (int64_t)r; /* exact: |r| < 2^63, truncation toward zero */
    if (i != t)
        return i < t ? -1 : 1;
    return r > (double)t ? -1 : r < (double)t ? 1 : 0;
}

static int cmp_num(const struct cval *a, const struct cval *b)
{
    if (a->t == JSON_INTEGER && b->t == JSON_INTEGER)
        return (a->i > b->i) - (a->i < b->i);
    if (a->t == JSON_REAL && b->t == JSON_REAL)
        return (a->r > b->r) - (a->r < b->r);
    if (a->t == JSON_INTEGER)
        return cmp_int_real(a->i, b->r);
    return -cmp_int_real(b->i, a->r);
}

static int cmp_str(const struct cval *a, const struct cval *b)
{
    int c = memcmp(a->str.s, b->str.s, RF_MIN(a->str.n, b->str.n));

    if (c)
        return c < 0 ? -1 : 1;
    return (a->str.n > b->str.n) - (a->str.n < b->str.n);
}

static bool is_num(const struct cval *v)
{
    return v->t == JSON_INTEGER || v->t == JSON_REAL;
}

static int eq_val(const struct cval *a, const struct cval *b, unsigned depth);

/* Arrays and objects, member by member. 1, 0, or -1 past RF_COND_EQ_DEPTH_MAX. */
static int eq_container(const json_t *a, const json_t *b, unsigned depth)
{
    const char *key;
    size_t klen, i;
    json_t *va;

    if (depth == RF_COND_EQ_DEPTH_MAX)
        return -1;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (i = 0; i < json_array_size(a); i++) {
            struct cval x = from_json(json_array_get(a, i)), y = from_json(json_array_get(b, i));
            int r = eq_val(&x, &y, depth + 1);
            if (r != 1)
                return r;
        }
        return 1;
    }
    if (json_object_size(a) != json_object_size(b))
        return 0;
    json_object_keylen_foreach((json_t *)a, key, klen, va)
    {
        const json_t *vb = json_object_getn(b, key, klen);
        if (!vb)
            return 0;
        struct cval x = from_json(va), y = from_json(vb);
        int r = eq_val(&x, &y, depth + 1);
        if (r != 1)
            return r;
    }
    return 1;
}

static int eq_val(const struct cval *a, const struct cval *b, unsigned depth)
{
    if (is_num(a) && is_num(b))
        return cmp_num(a, b) == 0;
    if (a->t != b->t)
        return 0;
    switch (a->t) {
    case JSON_STRING:
        return cmp_str(a, b) == 0;
    case JSON_OBJECT:
    case JSON_ARRAY:
        return a->j == b->j ? 1 : eq_container(a->j, b->j, depth);
    default:
        return 1; /* true, false, null */
    }
}

/* `< <= > >=` (ops in that order from OP_LT): false unless both are numbers or strings. */
static bool order(enum op op, const struct cval *a, const struct cval *b)
{
    int c;

    if (is_num(a) && is_num(b))
        c = cmp_num(a, b);
    else if (a->t == JSON_STRING && b->t == JSON_STRING)
        c = cmp_str(a, b);
    else
        return false;
    switch (op) {
    case OP_LT:
        return c < 0;
    case OP_LE:
        return c <= 0;
    case OP_GT:
        return c > 0;
    default:
        return c >= 0;
    }
}

static struct cval boolean(bool b)
{
    return (struct cval){.t = b ? JSON_TRUE : JSON_FALSE};
}

static int push_path(const struct rf_cpath *cp, const struct rf_scope *sc, struct cval *v,
                     rf_error *err)
{
    struct rf_xval x;
    int rc = rf__cpath_resolve(cp, sc, &x, err);

    if (rc < 0)
        return rc;
    if (x.json)
        *v = from_json(x.json);
    else if (x.is_int)
        *v = (struct cval){.t = JSON_INTEGER, .i = x.i};
    else
        *v = (struct cval){.t = JSON_STRING, .str = {x.str, x.len}};
    return 0;
}

/* `==` / `!=` on the two top values, leaving the result. */
static int do_eq(enum op op, struct cval *st, uint32_t *sp, rf_error *err)
{
    int r = eq_val(&st[*sp - 2], &st[*sp - 1], 0);

    if (r < 0)
        return rf_error_set(err, RF_EINVAL_GRAPH, false, "template_error",
                            "'==' on values nested deeper than %d levels", RF_COND_EQ_DEPTH_MAX);
    (*sp)--;
    st[*sp - 1] = boolean((r == 1) == (op == OP_EQ));
    return 0;
}

int rf_cond_eval(const struct rf_cond *c, const struct rf_scope *sc, bool *out, rf_error *err)
{
    struct cval st[RF_COND_STACK_MAX];
    uint32_t sp = 0;
    int rc = 0;

    RF_ASSERT(c->stack_max <= RF_COND_STACK_MAX);
    for (uint32_t pc = 0; pc < c->ncode && rc == 0; pc++) {
        const struct cins in = c->code[pc];
        switch ((enum op)in.op) {
        case OP_LIT:
            st[sp++] = c->lits[in.arg];
            break;
        case OP_PATH:
            rc = push_path(c->paths[in.arg], sc, &st[sp++], err);
            break;
        case OP_NOT:
            st[sp - 1] = boolean(!truthy(&st[sp - 1]));
            break;
        case OP_BOOL:
            st[sp - 1] = boolean(truthy(&st[sp - 1]));
            break;
        case OP_EQ:
        case OP_NE:
            rc = do_eq((enum op)in.op, st, &sp, err);
            break;
        case OP_AND:
        case OP_OR:
            if (truthy(&st[sp - 1]) == (in.op == OP_OR)) {
                st[sp - 1] = boolean(in.op == OP_OR);
                pc = in.arg - 1; /* the loop's pc++ lands on the target */
            } else {
                sp--;
            }
            break;
        default:
            sp--;
            st[sp - 1] = boolean(order((enum op)in.op, &st[sp - 1], &st[sp]));
        }
    }
    if (rc < 0)
        return rc;
    RF_DASSERT(sp == 1);
    *out = truthy(&st[0]);
    return 0;
}

/* --- dump ------------------------------------------------------------------------------- */

struct out {
    char *buf;
    size_t cap, n;
};

static void put(struct out *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++, o->n++)
        if (o->n + 1 < o->cap)
            o->buf[o->n] = s[i];
}

static void put_str(struct out *o, const struct cval *v)
{
    char esc[8];

    put(o, "\"", 1);
    for (size_t i = 0; i < v->str.n; i++) {
        unsigned char ch = (unsigned char)v->str.s[i];
        if (ch == '"' || ch == '\\')
            put(o, (const char[]){'\\', (char)ch}, 2);
        else if (ch < 0x20)
            put(o, esc, (size_t)snprintf(esc, sizeof(esc), "\\u%04x", ch));
        else
            put(o, (const char *)&ch, 1);
    }
    put(o, "\"", 1);
}

static void put_lit(struct out *o, const struct cval *v)
{
    char num[40];

    switch (v->t) {
    case JSON_INTEGER:
        put(o, num, (size_t)snprintf(num, sizeof(num), "%" PRId64, v->i));
        break;
    case JSON_REAL:
        put(o, num, (size_t)snprintf(num, sizeof(num), "%.17g", v->r));
        break;
    case JSON_STRING:
        put_str(o, v);
        break;
    default:
        put(o,
            v->t == JSON_TRUE    ? "true"
            : v->t == JSON_FALSE ? "false"
                                 : "null",
            v->t == JSON_FALSE ? 5 : 4);
    }
}

size_t rf__cond_dump(const struct rf_cond *c, char *buf, size_t cap)
{
    static const char *const ops[] = {"",   "",  "!",  "==", "!=", "<",
                                      "<=", ">", ">=", "&&", "||", "bool"};
    struct out o = {.buf = buf, .cap = cap};
    char jump[16];

    for (uint32_t pc = 0; pc < c->ncode; pc++) {
        const struct cins *in = &c->code[pc];
        if (pc)
            put(&o, " ", 1);
        if (in->op == OP_LIT)
            put_lit(&o, &c->lits[in->arg]);
        else if (in->op == OP_PATH)
            put(&o, rf__cpath_text(c->paths[in->arg]), strlen(rf__cpath_text(c->paths[in->arg])));
        else
            put(&o, ops[in->op], strlen(ops[in->op]));
        if (in->op == OP_AND || in->op == OP_OR)
            put(&o, jump, (size_t)snprintf(jump, sizeof(jump), ">%" PRIu32, in->arg));
    }
    if (cap)
        buf[RF_MIN(o.n, cap - 1)] = '\0';
    return o.n;
}
