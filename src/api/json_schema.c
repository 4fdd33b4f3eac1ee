/* json_schema: see json_schema.h. A recursive walk over the schema: each visit returns the name
 * of a rule (a primitive such as "string", or a rule it appended to the output); primitives used
 * are collected in a bit set and appended once at the end. Generated rule names are a hint (the
 * property name, "item", ...) plus "-" and a counter, so they are unique by construction and never
 * clash with the primitives. Rule shapes follow llama.cpp's json-schema-to-grammar. */
#include "api/json_schema.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"

const char api_json_grammar[] =
    "root   ::= object\n"
    "value  ::= object | array | string | number | (\"true\" | \"false\" | \"null\") ws\n"
    "object ::= \"{\" ws ( string \":\" ws value (\",\" ws string \":\" ws value)* )? \"}\" ws\n"
    "array  ::= \"[\" ws ( value (\",\" ws value)* )? \"]\" ws\n"
    "string ::= \"\\\"\" ( [^\"\\\\\\x7F\\x00-\\x1F] | \"\\\\\" ([\"\\\\bfnrt] | \"u\" "
    "[0-9a-fA-F]{4}) )* \"\\\"\" ws\n"
    "number ::= (\"-\"? ([0-9] | [1-9] [0-9]{0,15})) (\".\" [0-9]+)? ([eE] [-+]? [0-9] "
    "[1-9]{0,15})? ws\n"
    "ws ::= | \" \" | \"\\n\" [ \\t]{0,20}\n";

/* ---- primitive rules ---- */

enum {
    P_SPACE,
    P_CHAR,
    P_STRING,
    P_INTEGRAL,
    P_DECIMAL,
    P_NUMBER,
    P_INTEGER,
    P_BOOLEAN,
    P_NULL,
    P_VALUE,
    P_OBJECT,
    P_ARRAY,
    P__COUNT
};
#define BIT(p) (1u << (p))

typedef struct prim {
    const char *name;
    const char *body;
    unsigned deps; /* BIT()s of the primitives the body names */
} prim;

/* space: at most a newline and 20 blanks, so that a model cannot emit whitespace forever. */
static const prim prims[P__COUNT] = {
    [P_SPACE] = {"space", "| \" \" | \"\\n\" [ \\t]{0,20}", 0},
    [P_CHAR] = {"char",
                "[^\"\\\\\\x7F\\x00-\\x1F] | [\\\\] ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4})", 0},
    [P_STRING] = {"string", "\"\\\"\" char* \"\\\"\"", BIT(P_CHAR)},
    [P_INTEGRAL] = {"integral-part", "[0] | [1-9] [0-9]{0,15}", 0},
    [P_DECIMAL] = {"decimal-part", "[0-9]{1,16}", 0},
    [P_NUMBER] = {"number",
                  "\"-\"? integral-part (\".\" decimal-part)? ([eE] [-+]? integral-part)?",
                  BIT(P_INTEGRAL) | BIT(P_DECIMAL)},
    [P_INTEGER] = {"integer", "\"-\"? integral-part", BIT(P_INTEGRAL)},
    [P_BOOLEAN] = {"boolean", "\"true\" | \"false\"", 0},
    [P_NULL] = {"null", "\"null\"", 0},
    [P_VALUE] = {"value", "object | array | string | number | boolean | null",
                 BIT(P_OBJECT) | BIT(P_ARRAY) | BIT(P_STRING) | BIT(P_NUMBER) | BIT(P_BOOLEAN) |
                     BIT(P_NULL)},
    [P_OBJECT] =
        {"object",
         "\"{\" space ( string \":\" space value ( \",\" space string \":\" space value )* "
         "space )? \"}\"",
         BIT(P_SPACE) | BIT(P_STRING) | BIT(P_VALUE)},
    [P_ARRAY] = {"array", "\"[\" space ( value ( \",\" space value )* space )? \"]\"",
                 BIT(P_SPACE) | BIT(P_VALUE)},
};

/* ---- keywords ---- */

typedef enum { KW_ANNOTATION, KW_GENERAL, KW_OBJECT, KW_ARRAY, KW_STRING } kw_kind;
#define KIND(k) (1u << (k))

typedef struct keyword {
    const char *name;
    kw_kind kind;
} keyword;

/* Every keyword the converter accepts; any other one is an error naming it. */
static const keyword keywords[] = {
    {"title", KW_ANNOTATION},
    {"description", KW_ANNOTATION},
    {"$schema", KW_ANNOTATION},
    {"$id", KW_ANNOTATION},
    {"$comment", KW_ANNOTATION},
    {"default", KW_ANNOTATION},
    {"examples", KW_ANNOTATION},
    {"$defs", KW_ANNOTATION},
    {"definitions", KW_ANNOTATION},
    {"deprecated", KW_ANNOTATION},
    {"readOnly", KW_ANNOTATION},
    {"writeOnly", KW_ANNOTATION},
    {"type", KW_GENERAL},
    {"enum", KW_GENERAL},
    {"const", KW_GENERAL},
    {"anyOf", KW_GENERAL},
    {"oneOf", KW_GENERAL},
    {"properties", KW_OBJECT},
    {"required", KW_OBJECT},
    {"additionalProperties", KW_OBJECT},
    {"items", KW_ARRAY},
    {"minItems", KW_ARRAY},
    {"maxItems", KW_ARRAY},
    {"minLength", KW_STRING},
    {"maxLength", KW_STRING},
};

static const keyword *keyword_find(const char *name) {
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if (strcmp(keywords[i].name, name) == 0)
            return &keywords[i];
    return NULL;
}

/* ---- types ---- */

enum { T_OBJECT, T_ARRAY, T_STRING, T_NUMBER, T_INTEGER, T_BOOLEAN, T_NULL, T__COUNT };

static const char *const type_names[T__COUNT] = {"object",  "array",   "string", "number",
                                                 "integer", "boolean", "null"};

/* ---- the converter ---- */

typedef struct conv {
    buf *out;
    unsigned prims;     /* BIT()s of the primitives referenced */
    unsigned long next; /* counter that makes rule names unique */
    int depth;
    char path[256]; /* JSON pointer of the subschema being visited, for messages */
    size_t path_len;
    char *msg;
    size_t msglen;
} conv;

#define NAME_MAX_LEN 64

static shimmy_err visit(conv *c, const json_t *s, const char *name, char *ref);

static const char *where(const conv *c) {
    return c->path_len > 0 ? c->path : "the root";
}

static shimmy_err bad(conv *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ERR_BAD_PARAM with "<message> (at <path>)". */
static shimmy_err bad(conv *c, const char *fmt, ...) {
    char text[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return err_set(c->msg, c->msglen, ERR_BAD_PARAM, "%s (at %s)", text, where(c));
}

/* Appends "/seg" to the path (truncated when long); returns the length to restore. */
static size_t path_push(conv *c, const char *seg) {
    size_t old = c->path_len;
    int n = snprintf(c->path + old, sizeof c->path - old, "/%s", seg);
    if (n > 0)
        c->path_len = old + (size_t)n < sizeof c->path ? old + (size_t)n : sizeof c->path - 1;
    return old;
}

static void path_pop(conv *c, size_t old) {
    c->path_len = old;
    c->path[old] = '\0';
}

/* A fresh rule name: hint with characters GBNF names lack mapped to '-', then "-N". */
static void new_name(conv *c, const char *hint, char *name) {
    char h[25];
    size_t n = 0;
    for (; hint[n] != '\0' && n < sizeof h - 1; n++) {
        char ch = hint[n];
        bool word =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        h[n] = word ? ch : '-';
    }
    h[n] = '\0';
    snprintf(name, NAME_MAX_LEN, "%s-%lu", n > 0 ? h : "p", ++c->next);
}

static void use_prim(conv *c, int p, char *ref) {
    c->prims |= BIT(p);
    snprintf(ref, NAME_MAX_LEN, "%s", prims[p].name);
}

static shimmy_err define(conv *c, const char *name, const buf *body) {
    return buf_printf(c->out, "%s ::= %s\n", name, buf_str(body));
}

/* A GBNF string literal matching the bytes s[0..n) exactly. */
static shimmy_err put_literal(buf *b, const char *s, size_t n) {
    shimmy_err e = buf_puts(b, "\"");
    for (size_t i = 0; i < n && e == SHIMMY_OK; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            e = buf_printf(b, "\\%c", ch);
        else if (ch == '\n')
            e = buf_puts(b, "\\n");
        else if (ch == '\r')
            e = buf_puts(b, "\\r");
        else if (ch == '\t')
            e = buf_puts(b, "\\t");
        else if (ch < 0x20)
            e = buf_printf(b, "\\x%02X", ch);
        else
            e = buf_append(b, (const char *)&ch, 1);
    }
    return e != SHIMMY_OK ? e : buf_puts(b, "\"");
}

/* A literal matching v's compact JSON text. */
static shimmy_err put_json_literal(buf *b, const json_t *v) {
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL)
        return ERR_NOMEM;
    shimmy_err e = put_literal(b, text, strlen(text));
    free(text);
    return e;
}

/* " ( expr ){min,max}" in GBNF; max < 0 = unbounded; nothing when max == 0. */
static shimmy_err put_repeat(buf *b, const char *expr, long min, long max) {
    if (max == 0)
        return SHIMMY_OK;
    if (min == 0 && max < 0)
        return buf_printf(b, " ( %s )*", expr);
    if (min == 1 && max < 0)
        return buf_printf(b, " ( %s )+", expr);
    if (max < 0)
        return buf_printf(b, " ( %s ){%ld,}", expr, min);
    if (min == max)
        return buf_printf(b, " ( %s ){%ld}", expr, min);
    return buf_printf(b, " ( %s ){%ld,%ld}", expr, min, max);
}

/* ---- keyword checks ---- */

/* Fails on a keyword the converter does not know; sets *kinds to the KIND()s present. */
static shimmy_err check_keywords(conv *c, const json_t *s, unsigned *kinds) {
    const char *key;
    const json_t *v;
    *kinds = 0;
    json_object_foreach((json_t *)s, key, v) {
        const keyword *k = keyword_find(key);
        if (k == NULL)
            return bad(c, "schema keyword '%s' is not supported", key);
        *kinds |= KIND(k->kind);
    }
    return SHIMMY_OK;
}

/* The first keyword of s that is not an annotation and not one of allowed (NULL-terminated). */
static const char *other_constraint(const json_t *s, const char *const *allowed) {
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)s, key, v) {
        const keyword *k = keyword_find(key);
        bool ok = k == NULL || k->kind == KW_ANNOTATION;
        for (size_t i = 0; !ok && allowed[i] != NULL; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (!ok)
            return key;
    }
    return NULL;
}

/* A count keyword: absent → *out unchanged; else an integer in 0..LIM_SCHEMA_REPEAT. */
static shimmy_err count_keyword(conv *c, const json_t *s, const char *key, long *out) {
    const json_t *v = json_object_get(s, key);
    if (v == NULL)
        return SHIMMY_OK;
    double d = json_is_number(v) ? json_number_value(v) : -1;
    if (!json_is_number(v) || d < 0 || d != floor(d))
        return bad(c, "'%s' must be an integer >= 0", key);
    if (d > LIM_SCHEMA_REPEAT)
        return bad(c, "'%s' above %d is not supported", key, LIM_SCHEMA_REPEAT);
    *out = (long)d;
    return SHIMMY_OK;
}

/* min/max pair of counts (max -1 = unbounded); min > max is unsatisfiable. */
static shimmy_err bounds(conv *c, const json_t *s, const char *kmin, const char *kmax, long *min,
                         long *max) {
    shimmy_err e;
    *min = 0;
    *max = -1;
    if ((e = count_keyword(c, s, kmin, min)) != SHIMMY_OK ||
        (e = count_keyword(c, s, kmax, max)) != SHIMMY_OK)
        return e;
    if (*max >= 0 && *min > *max)
        return bad(c, "'%s' is larger than '%s'", kmin, kmax);
    return SHIMMY_OK;
}

/* "type": a name or a non-empty list of names → BIT()s of T_*. */
static shimmy_err parse_type(conv *c, const json_t *t, unsigned *types) {
    *types = 0;
    size_t n = json_is_array(t) ? json_array_size(t) : 1;
    if (!json_is_string(t) && (!json_is_array(t) || n == 0))
        return bad(c, "'type' must be a type name or a non-empty array of type names");
    for (size_t i = 0; i < n; i++) {
        const json_t *name = json_is_array(t) ? json_array_get(t, i) : t;
        int found = -1;
        for (int k = 0; k < T__COUNT && json_is_string(name); k++)
            if (strcmp(json_string_value(name), type_names[k]) == 0)
                found = k;
        if (found < 0)
            return bad(c, "'type' must name object, array, string, number, integer, boolean or "
                          "null");
        *types |= BIT(found);
    }
    if (*types & BIT(T_NUMBER))
        *types &= ~BIT(T_INTEGER); /* every integer is a number */
    return SHIMMY_OK;
}

/* ---- enum / const ---- */

static bool value_has_type(const json_t *v, unsigned types) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return types & BIT(T_OBJECT);
    case JSON_ARRAY:
        return types & BIT(T_ARRAY);
    case JSON_STRING:
        return types & BIT(T_STRING);
    case JSON_INTEGER:
        return types & (BIT(T_INTEGER) | BIT(T_NUMBER));
    case JSON_REAL: {
        double d = json_real_value(v);
        return (types & BIT(T_NUMBER)) || ((types & BIT(T_INTEGER)) && d == floor(d));
    }
    case JSON_TRUE:
    case JSON_FALSE:
        return types & BIT(T_BOOLEAN);
    case JSON_NULL:
        return types & BIT(T_NULL);
    }
    return false;
}

/* name ::= "v1" | "v2" ... for the values of enum (or the one const) that have one of types. */
static shimmy_err visit_enum(conv *c, const json_t *s, unsigned types, const char *name) {
    static const char *const allowed[] = {"type", "enum", "const", NULL};
    const json_t *en = json_object_get(s, "enum"), *cst = json_object_get(s, "const");
    const char *other = other_constraint(s, allowed);
    if (en != NULL && cst != NULL)
        return bad(c, "'enum' together with 'const' is not supported");
    if (other != NULL)
        return bad(c, "'%s' together with '%s' is not supported", other, en ? "enum" : "const");
    if (en != NULL && (!json_is_array(en) || json_array_size(en) == 0))
        return bad(c, "'enum' must be a non-empty array");
    size_t n = en != NULL ? json_array_size(en) : 1, kept = 0;
    buf body;
    buf_init(&body, LIM_GRAMMAR_BYTES);
    shimmy_err e = SHIMMY_OK;
    for (size_t i = 0; i < n && e == SHIMMY_OK; i++) {
        const json_t *v = en != NULL ? json_array_get(en, i) : cst;
        if (!value_has_type(v, types))
            continue;
        if (kept++ > 0)
            e = buf_puts(&body, " | ");
        if (e == SHIMMY_OK)
            e = put_json_literal(&body, v);
    }
    if (e == SHIMMY_OK && kept == 0)
        e = bad(c, "no value of '%s' has the schema's 'type'", en ? "enum" : "const");
    if (e == SHIMMY_OK)
        e = define(c, name, &body);
    buf_free(&body);
    return e;
}

/* ---- anyOf / oneOf ---- */

static shimmy_err visit_any_of(conv *c, const json_t *s, const char *name) {
    static const char *const allowed[] = {"anyOf", "oneOf", NULL};
    const char *key = json_object_get(s, "anyOf") != NULL ? "anyOf" : "oneOf";
    const json_t *alts = json_object_get(s, key);
    const char *other = other_constraint(s, allowed);
    if (json_object_get(s, "anyOf") != NULL && json_object_get(s, "oneOf") != NULL)
        return bad(c, "'anyOf' together with 'oneOf' is not supported");
    if (other != NULL)
        return bad(c, "'%s' together with '%s' is not supported", other, key);
    if (!json_is_array(alts) || json_array_size(alts) == 0)
        return bad(c, "'%s' must be a non-empty array of schemas", key);
    buf body;
    buf_init(&body, LIM_GRAMMAR_BYTES);
    shimmy_err e = SHIMMY_OK;
    for (size_t i = 0; i < json_array_size(alts) && e == SHIMMY_OK; i++) {
        char seg[32], sub[NAME_MAX_LEN], ref[NAME_MAX_LEN];
        snprintf(seg, sizeof seg, "%s/%zu", key, i);
        size_t old = path_push(c, seg);
        new_name(c, "alt", sub);
        e = visit(c, json_array_get(alts, i), sub, ref);
        path_pop(c, old);
        if (e == SHIMMY_OK)
            e = buf_printf(&body, "%s%s", i > 0 ? " | " : "", ref);
    }
    if (e == SHIMMY_OK)
        e = define(c, name, &body);
    buf_free(&body);
    return e;
}

/* ---- arrays and strings ---- */

static shimmy_err visit_array(conv *c, const json_t *s, const char *name) {
    char item[NAME_MAX_LEN], rep[NAME_MAX_LEN + 16];
    long min, max;
    shimmy_err e = bounds(c, s, "minItems", "maxItems", &min, &max);
    if (e != SHIMMY_OK)
        return e;
    const json_t *items = json_object_get(s, "items");
    if (items == NULL) {
        use_prim(c, P_VALUE, item);
    } else {
        char sub[NAME_MAX_LEN];
        size_t old = path_push(c, "items");
        new_name(c, "item", sub);
        e = visit(c, items, sub, item);
        path_pop(c, old);
        if (e != SHIMMY_OK)
            return e;
    }
    c->prims |= BIT(P_SPACE);
    snprintf(rep, sizeof rep, "\",\" space %s", item);
    buf body;
    buf_init(&body, LIM_GRAMMAR_BYTES);
    if (max == 0)
        e = buf_puts(&body, "\"[\" space \"]\"");
    else if (min == 0)
        e = buf_printf(&body, "\"[\" space ( %s", item);
    else
        e = buf_printf(&body, "\"[\" space %s", item);
    if (e == SHIMMY_OK && max != 0)
        e = put_repeat(&body, rep, min > 0 ? min - 1 : 0, max > 0 ? max - 1 : max);
    if (e == SHIMMY_OK && max != 0)
        e = buf_puts(&body, min == 0 ? " space )? \"]\"" : " space \"]\"");
    if (e == SHIMMY_OK)
        e = define(c, name, &body);
    buf_free(&body);
    return e;
}

static shimmy_err visit_string(conv *c, const json_t *s, const char *name, char *ref) {
    long min, max;
    shimmy_err e = bounds(c, s, "minLength", "maxLength", &min, &max);
    if (e != SHIMMY_OK)
        return e;
    if (min == 0 && max < 0) {
        use_prim(c, P_STRING, ref);
        return SHIMMY_OK;
    }
    c->prims |= BIT(P_CHAR);
    buf body;
    buf_init(&body, LIM_GRAMMAR_BYTES);
    e = buf_puts(&body, "\"\\\"\"");
    if (e == SHIMMY_OK)
        e = put_repeat(&body, "char", min, max);
    if (e == SHIMMY_OK)
        e = buf_puts(&body, " \"\\\"\"");
    if (e == SHIMMY_OK)
        e = define(c, name, &body);
    buf_free(&body);
    snprintf(ref, NAME_MAX_LEN, "%s", name);
    return e;
}

/* ---- objects ---- */

typedef struct prop {
    const char *key;
    bool required;
    char ref[NAME_MAX_LEN];
} prop;

/* "\"key\"" ":" space ref */
static shimmy_err put_kv(buf *b, const prop *p) {
    json_t *k = json_string(p->key);
    if (k == NULL)
        return ERR_NOMEM;
    shimmy_err e = put_json_literal(b, k);
    json_decref(k);
    return e != SHIMMY_OK ? e : buf_printf(b, " \":\" space %s", p->ref);
}

/* The optional properties in front of the first required one (or all, when none is): any subset
 * in order, the first one present without a comma. rest-j ::= ( "," space kv_j )? rest-(j+1). */
static shimmy_err put_optional_prefix(conv *c, const prop *ps, size_t f, buf *body) {
    char(*rest)[NAME_MAX_LEN] = calloc(f + 1, sizeof *rest);
    if (rest == NULL)
        return ERR_NOMEM;
    for (size_t j = 1; j < f; j++)
        new_name(c, "rest", rest[j]);
    shimmy_err e = SHIMMY_OK;
    buf r;
    buf_init(&r, LIM_GRAMMAR_BYTES);
    for (size_t j = 1; j < f && e == SHIMMY_OK; j++) {
        buf_reset(&r);
        e = buf_puts(&r, "( \",\" space ");
        if (e == SHIMMY_OK)
            e = put_kv(&r, &ps[j]);
        if (e == SHIMMY_OK)
            e = buf_printf(&r, " )?%s%s", j + 1 < f ? " " : "", j + 1 < f ? rest[j + 1] : "");
        if (e == SHIMMY_OK)
            e = define(c, rest[j], &r);
    }
    for (size_t i = 0; i < f && e == SHIMMY_OK; i++) {
        e = buf_puts(body, i == 0 ? "( " : " | ");
        if (e == SHIMMY_OK)
            e = put_kv(body, &ps[i]);
        if (e == SHIMMY_OK && i + 1 < f)
            e = buf_printf(body, " %s", rest[i + 1]);
    }
    if (e == SHIMMY_OK)
        e = buf_puts(body, " )");
    buf_free(&r);
    free(rest);
    return e;
}

/* "{" space [optional prefix ","] kv_f then ("," kv) or ( "," kv )? for the rest, space "}". */
static shimmy_err put_object_body(conv *c, const prop *ps, size_t n, buf *body) {
    size_t f = 0;
    while (f < n && !ps[f].required)
        f++;
    c->prims |= BIT(P_SPACE);
    shimmy_err e = buf_puts(body, "\"{\" space ");
    if (e == SHIMMY_OK && n == 0)
        return buf_puts(body, "\"}\"");
    if (e == SHIMMY_OK && f > 0)
        e = buf_puts(body, "( ");
    if (e == SHIMMY_OK && f > 0)
        e = put_optional_prefix(c, ps, f, body);
    if (e == SHIMMY_OK && f > 0)
        e = buf_puts(body, f < n ? " \",\" space )? " : " space )? \"}\"");
    if (f == n)
        return e;
    if (e == SHIMMY_OK)
        e = put_kv(body, &ps[f]);
    for (size_t i = f + 1; i < n && e == SHIMMY_OK; i++) {
        e = buf_puts(body, ps[i].required ? " \",\" space " : " ( \",\" space ");
        if (e == SHIMMY_OK)
            e = put_kv(body, &ps[i]);
        if (e == SHIMMY_OK && !ps[i].required)
            e = buf_puts(body, " )?");
    }
    return e != SHIMMY_OK ? e : buf_puts(body, " space \"}\"");
}

/* Fills ps from "properties" (declaration order) and "required"; visits each property. */
static shimmy_err object_props(conv *c, const json_t *props, const json_t *req, prop *ps) {
    const char *key;
    const json_t *v;
    size_t i = 0;
    json_object_foreach((json_t *)props, key, v) {
        char name[NAME_MAX_LEN];
        ps[i].key = key;
        size_t old = path_push(c, "properties"), old2 = path_push(c, key);
        new_name(c, key, name);
        shimmy_err e = visit(c, v, name, ps[i].ref);
        path_pop(c, old2);
        path_pop(c, old);
        if (e != SHIMMY_OK)
            return e;
        i++;
    }
    for (size_t r = 0; r < json_array_size(req); r++) {
        const json_t *k = json_array_get(req, r);
        if (!json_is_string(k))
            return bad(c, "'required' must be an array of strings");
        size_t j = 0;
        while (j < i && strcmp(ps[j].key, json_string_value(k)) != 0)
            j++;
        if (j == i)
            return bad(c, "required property '%s' is not in 'properties'", json_string_value(k));
        ps[j].required = true;
    }
    return SHIMMY_OK;
}

/* No "properties": any keys, values of additionalProperties (false: only {}). */
static shimmy_err visit_free_object(conv *c, const json_t *add, const char *name, char *ref) {
    if (add == NULL || json_is_true(add) || (json_is_object(add) && json_object_size(add) == 0)) {
        use_prim(c, P_OBJECT, ref);
        return SHIMMY_OK;
    }
    snprintf(ref, NAME_MAX_LEN, "%s", name);
    buf body;
    buf_init(&body, LIM_GRAMMAR_BYTES);
    shimmy_err e;
    c->prims |= BIT(P_SPACE);
    if (json_is_false(add)) {
        e = buf_puts(&body, "\"{\" space \"}\"");
    } else {
        char sub[NAME_MAX_LEN], val[NAME_MAX_LEN];
        size_t old = path_push(c, "additionalProperties");
        new_name(c, "value", sub);
        e = visit(c, add, sub, val);
        path_pop(c, old);
        c->prims |= BIT(P_STRING);
        if (e == SHIMMY_OK)
            e = buf_printf(&body,
                           "\"{\" space ( string \":\" space %s ( \",\" space string "
                           "\":\" space %s )* space )? \"}\"",
                           val, val);
    }
    if (e == SHIMMY_OK)
        e = define(c, name, &body);
    buf_free(&body);
    return e;
}

static shimmy_err visit_object(conv *c, const json_t *s, const char *name, char *ref) {
    const json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
    const json_t *add = json_object_get(s, "additionalProperties");
    if (props != NULL && !json_is_object(props))
        return bad(c, "'properties' must be an object");
    if (req != NULL && !json_is_array(req))
        return bad(c, "'required' must be an array of strings");
    if (add != NULL && !json_is_object(add) && !json_is_boolean(add))
        return bad(c, "'additionalProperties' must be a schema or a boolean");
    if (props == NULL && json_array_size(req) > 0)
        return bad(c, "required property '%s' is not in 'properties'",
                   json_is_string(json_array_get(req, 0))
                       ? json_string_value(json_array_get(req, 0))
                       : "?");
    if (props == NULL)
        return visit_free_object(c, add, name, ref);
    /* With properties, additionalProperties only widens: extra properties are never generated. */
    size_t n = json_object_size(props);
    prop *ps = calloc(n + 1, sizeof *ps);
    if (ps == NULL)
        return ERR_NOMEM;
    buf body;
    buf_init(&body, LIM_GRAMMAR_BYTES);
    shimmy_err e = object_props(c, props, req, ps);
    if (e == SHIMMY_OK)
        e = put_object_body(c, ps, n, &body);
    if (e == SHIMMY_OK)
        e = define(c, name, &body);
    buf_free(&body);
    free(ps);
    snprintf(ref, NAME_MAX_LEN, "%s", name);
    return e;
}

/* ---- dispatch ---- */

static shimmy_err visit_type(conv *c, const json_t *s, int type, const char *name, char *ref) {
    switch (type) {
    case T_OBJECT:
        return visit_object(c, s, name, ref);
    case T_ARRAY:
        snprintf(ref, NAME_MAX_LEN, "%s", name);
        return visit_array(c, s, name);
    case T_STRING:
        return visit_string(c, s, name, ref);
    case T_NUMBER:
        use_prim(c, P_NUMBER, ref);
        return SHIMMY_OK;
    case T_INTEGER:
        use_prim(c, P_INTEGER, ref);
        return SHIMMY_OK;
    case T_BOOLEAN:
        use_prim(c, P_BOOLEAN, ref);
        return SHIMMY_OK;
    default:
        use_prim(c, P_NULL, ref);
        return SHIMMY_OK;
    }
}

/* Several types: name ::= one rule per type, as alternatives. */
static shimmy_err visit_types(conv *c, const json_t *s, unsigned types, const char *name,
                              char *ref) {
    int count = 0, only = 0;
    for (int t = 0; t < T__COUNT; t++)
        if (types & BIT(t)) {
            count++;
            only = t;
        }
    if (count == 1)
        return visit_type(c, s, only, name, ref);
    buf body;
    buf_init(&body, LIM_GRAMMAR_BYTES);
    shimmy_err e = SHIMMY_OK;
    for (int t = 0; t < T__COUNT && e == SHIMMY_OK; t++) {
        char sub[NAME_MAX_LEN], r[NAME_MAX_LEN];
        if (!(types & BIT(t)))
            continue;
        new_name(c, type_names[t], sub);
        e = visit_type(c, s, t, sub, r);
        if (e == SHIMMY_OK)
            e = buf_printf(&body, "%s%s", body.len > 0 ? " | " : "", r);
    }
    if (e == SHIMMY_OK)
        e = define(c, name, &body);
    buf_free(&body);
    snprintf(ref, NAME_MAX_LEN, "%s", name);
    return e;
}

/* Without "type", the type-specific keywords present imply it; none → any value. */
static unsigned implied_types(unsigned kinds) {
    unsigned t = 0;
    if (kinds & KIND(KW_OBJECT))
        t |= BIT(T_OBJECT);
    if (kinds & KIND(KW_ARRAY))
        t |= BIT(T_ARRAY);
    if (kinds & KIND(KW_STRING))
        t |= BIT(T_STRING);
    return t;
}

static shimmy_err visit_object_schema(conv *c, const json_t *s, const char *name, char *ref) {
    unsigned kinds, types = (1u << T__COUNT) - 1;
    shimmy_err e = check_keywords(c, s, &kinds);
    const json_t *type = json_object_get(s, "type");
    if (e == SHIMMY_OK && type != NULL)
        e = parse_type(c, type, &types);
    if (e != SHIMMY_OK)
        return e;
    if (json_object_get(s, "enum") != NULL || json_object_get(s, "const") != NULL) {
        snprintf(ref, NAME_MAX_LEN, "%s", name);
        return visit_enum(c, s, types, name);
    }
    if (json_object_get(s, "anyOf") != NULL || json_object_get(s, "oneOf") != NULL) {
        snprintf(ref, NAME_MAX_LEN, "%s", name);
        return visit_any_of(c, s, name);
    }
    if (type == NULL)
        types = implied_types(kinds);
    if (types == 0) {
        use_prim(c, P_VALUE, ref);
        return SHIMMY_OK;
    }
    return visit_types(c, s, types, name, ref);
}

/* Defines rule name (or returns a primitive) for schema s; writes the rule to use into ref. */
static shimmy_err visit(conv *c, const json_t *s, const char *name, char *ref) {
    if (++c->depth > LIM_JSON_DEPTH)
        return bad(c, "the schema nests deeper than %d levels", LIM_JSON_DEPTH);
    shimmy_err e = SHIMMY_OK;
    if (json_is_true(s))
        use_prim(c, P_VALUE, ref);
    else if (json_is_false(s))
        e = bad(c, "the schema false accepts no value");
    else if (!json_is_object(s))
        e = bad(c, "a schema must be an object or a boolean");
    else
        e = visit_object_schema(c, s, name, ref);
    c->depth--;
    return e;
}

/* The primitives referenced, with everything they name, one rule each. */
static shimmy_err put_prims(conv *c) {
    unsigned set = c->prims, before;
    do {
        before = set;
        for (int p = 0; p < P__COUNT; p++)
            if (set & BIT(p))
                set |= prims[p].deps;
    } while (set != before);
    shimmy_err e = SHIMMY_OK;
    for (int p = 0; p < P__COUNT && e == SHIMMY_OK; p++)
        if (set & BIT(p))
            e = buf_printf(c->out, "%s ::= %s\n", prims[p].name, prims[p].body);
    return e;
}

/* The primitives come first: llama.cpp's parser counts a name seen for the first time inside a
 * repeated group as one more rule to copy, and caps copies at 2000. */
shimmy_err json_schema_to_gbnf(const json_t *schema, buf *out, char *msg, size_t msglen) {
    buf rules;
    buf_init(&rules, LIM_GRAMMAR_BYTES);
    conv c = {.out = &rules, .msg = msg, .msglen = msglen};
    char ref[NAME_MAX_LEN];
    if (msg != NULL && msglen > 0)
        msg[0] = '\0';
    shimmy_err e = visit(&c, schema, "root", ref);
    if (e == SHIMMY_OK && strcmp(ref, "root") != 0)
        e = buf_printf(&rules, "root ::= %s\n", ref);
    c.out = out;
    if (e == SHIMMY_OK)
        e = put_prims(&c);
    if (e == SHIMMY_OK)
        e = buf_append(out, buf_str(&rules), rules.len);
    buf_free(&rules);
    if (e == ERR_TOO_LARGE)
        return err_set(msg, msglen, ERR_BAD_PARAM,
                       "the schema makes a grammar larger than %u "
                       "bytes",
                       (unsigned)LIM_GRAMMAR_BYTES);
    if (e == ERR_NOMEM)
        return err_set(msg, msglen, ERR_NOMEM, "out of memory");
    return e;
}
