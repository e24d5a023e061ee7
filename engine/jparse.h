/*
 * engine/jparse.h: a fast, strict JSON text parser that builds jansson values.
 *
 * jansson's json_loadb reads through a character stream with one-character lookahead and
 * ungets; a 100-byte object costs about 2 us. Where the engine parses JSON on a hot path
 * (a cache hit from Redis, a live event from another instance) this parser does the same
 * in a fraction of that: one pass over the bytes, recursive descent, slices handed to
 * jansson's *_nocheck constructors, a stack buffer for strings with escapes.
 *
 * It accepts exactly what json_loadb(text, len, JSON_DECODE_ANY) accepts, and builds an
 * equal value (fuzz/jparse.c checks both against each other): RFC 8259 with any value at
 * the top; whitespace around; strings of valid UTF-8 without control characters, escapes
 * including surrogate pairs, no NUL (\u0000) anywhere; integers that fit int64 become
 * integers (more digits: an error, as jansson says "too big integer"), other numbers reals
 * (an overflow to infinity is an error); a repeated object key keeps its last value;
 * nesting deeper than RF_JPARSE_DEPTH_MAX (jansson's 2048) is an error.
 *
 * Sans-I/O, allocation only through jansson, any thread.
 */
#ifndef RF_ENGINE_JPARSE_H
#define RF_ENGINE_JPARSE_H

#include <stddef.h>

#include <jansson.h>

#define RF_JPARSE_DEPTH_MAX 2048u

/* Parse text[0, len) (borrowed). The value (a new reference owned by the caller), or NULL
 * when the text is not one JSON value (or memory ran out). */
json_t *rf_json_parse(const char *text, size_t len);

#endif /* RF_ENGINE_JPARSE_H */
