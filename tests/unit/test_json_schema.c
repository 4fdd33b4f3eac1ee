/* Unit tests for api/json_schema: the GBNF made from schemas (rule shapes, literal escaping,
 * declaration order, optional properties), precise errors for what is not supported, and — on the
 * real stories260K model through the engine — that llama.cpp's grammar parser accepts every
 * grammar made here and that greedy generation under it ends with JSON valid for the schema. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>

#include "api/json_schema.h"
#include "core/limits.h"
#include "engine/engine.h"

static char model_path[4096];
static engine_model *model;

/* The grammar for schema text, or NULL with the error in msg. Returns owned. */
static char *convert(const char *schema, shimmy_err *code, char *msg, size_t msglen) {
    json_error_t je;
    json_t *s = json_loads(schema, JSON_DECODE_ANY, &je);
    if (s == NULL)
        fail_msg("test schema is not JSON: %s (%s)", schema, je.text);
    buf g;
    buf_init(&g, LIM_GRAMMAR_BYTES);
    *code = json_schema_to_gbnf(s, &g, msg, msglen);
    json_decref(s);
    if (*code != SHIMMY_OK) {
        buf_free(&g);
        return NULL;
    }
    return buf_take(&g);
}

static char *convert_ok(const char *schema) {
    char msg[512];
    shimmy_err e;
    char *g = convert(schema, &e, msg, sizeof msg);
    if (g == NULL)
        fail_msg("schema %s: error %d: %s", schema, (int)e, msg);
    return g;
}

/* The body of rule name in grammar g (copied into out), or fails. */
static void rule(const char *g, const char *name, char *out, size_t outlen) {
    char head[96];
    snprintf(head, sizeof head, "%s ::= ", name);
    const char *p = g;
    while (p != NULL && strncmp(p, head, strlen(head)) != 0) {
        p = strchr(p, '\n');
        p = p != NULL ? p + 1 : NULL;
    }
    if (p == NULL || *p == '\0')
        fail_msg("rule '%s' missing in:\n%s", name, g);
    p += strlen(head);
    size_t n = strcspn(p, "\n");
    snprintf(out, outlen, "%.*s", (int)n, p);
}

static void assert_rule(const char *g, const char *name, const char *want) {
    char body[4096];
    rule(g, name, body, sizeof body);
    if (strcmp(body, want) != 0)
        fail_msg("rule %s:\n  got  %s\n  want %s\nin:\n%s", name, body, want, g);
}

static void test_required_object(void **state) {
    (void)state;
    char *g = convert_ok("{\"type\":\"object\",\"title\":\"P\",\"properties\":{\"name\":{\"type\":"
                         "\"string\",\"description\":\"d\"},\"age\":{\"type\":\"integer\"}},"
                         "\"required\":[\"name\",\"age\"],\"additionalProperties\":false}");
    assert_rule(g, "root",
                "\"{\" space \"\\\"name\\\"\" \":\" space string \",\" space "
                "\"\\\"age\\\"\" \":\" space integer space \"}\"");
    assert_rule(g, "space", "| \" \" | \"\\n\" [ \\t]{0,20}");
    assert_rule(g, "string", "\"\\\"\" char* \"\\\"\"");
    assert_rule(g, "integer", "\"-\"? integral-part");
    assert_rule(g, "integral-part", "[0] | [1-9] [0-9]{0,15}");
    assert_null(strstr(g, "number ::=")); /* only the primitives used */
    assert_null(strstr(g, "value ::="));
    free(g);
}

/* Declaration order is kept; optional properties before the first required one form an
 * "any subset, in order" prefix, later ones are ( "," kv )?. */
static void test_optional_properties(void **state) {
    (void)state;
    char *g = convert_ok("{\"properties\":{\"a\":{\"type\":\"boolean\"},\"b\":{\"type\":\"null\"},"
                         "\"c\":{\"type\":\"number\"},\"d\":{\"type\":\"string\"}},"
                         "\"required\":[\"c\"]}");
    assert_rule(g, "root",
                "\"{\" space ( ( \"\\\"a\\\"\" \":\" space boolean rest-5 | "
                "\"\\\"b\\\"\" \":\" space null ) \",\" space )? \"\\\"c\\\"\" \":\" "
                "space number ( \",\" space \"\\\"d\\\"\" \":\" space string )? "
                "space \"}\"");
    assert_rule(g, "rest-5", "( \",\" space \"\\\"b\\\"\" \":\" space null )?");
    free(g);
    g = convert_ok(
        "{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\"},\"y\":{\"type\":"
        "\"integer\"},\"z\":{\"type\":\"integer\"}}}");
    assert_rule(g, "root",
                "\"{\" space ( ( \"\\\"x\\\"\" \":\" space integer rest-4 | "
                "\"\\\"y\\\"\" \":\" space integer rest-5 | \"\\\"z\\\"\" \":\" space "
                "integer ) space )? \"}\"");
    assert_rule(g, "rest-4", "( \",\" space \"\\\"y\\\"\" \":\" space integer )? rest-5");
    assert_rule(g, "rest-5", "( \",\" space \"\\\"z\\\"\" \":\" space integer )?");
    free(g);
    g = convert_ok("{\"type\":\"object\",\"properties\":{}}");
    assert_rule(g, "root", "\"{\" space \"}\"");
    free(g);
}

/* enum/const literals are the compact JSON text, escaped for GBNF. */
static void test_enum_literals(void **state) {
    (void)state;
    char *g = convert_ok("{\"enum\":[\"a\\\"b\",\"back\\\\slash\",\"new\\nline\",\"\\u00e9\",1,"
                         "2.5,true,null,[1,\"x\"],{\"k\":{}}]}");
    assert_rule(g, "root",
                "\"\\\"a\\\\\\\"b\\\"\" | \"\\\"back\\\\\\\\slash\\\"\" | "
                "\"\\\"new\\\\nline\\\"\" | \"\\\"\xc3\xa9\\\"\" | \"1\" | \"2.5\" | "
                "\"true\" | \"null\" | \"[1,\\\"x\\\"]\" | \"{\\\"k\\\":{}}\"");
    free(g);
    /* with a type, the values of other types are left out */
    g = convert_ok("{\"type\":\"string\",\"enum\":[\"x\",1,\"y\"]}");
    assert_rule(g, "root", "\"\\\"x\\\"\" | \"\\\"y\\\"\"");
    free(g);
    g = convert_ok("{\"const\":\"only\"}");
    assert_rule(g, "root", "\"\\\"only\\\"\"");
    free(g);
}

static void test_arrays_strings_types(void **state) {
    (void)state;
    char *g = convert_ok("{\"type\":\"array\",\"items\":{\"type\":\"string\",\"minLength\":1,"
                         "\"maxLength\":8},\"minItems\":1,\"maxItems\":3}");
    assert_rule(g, "root", "\"[\" space item-1 ( \",\" space item-1 ){0,2} space \"]\"");
    assert_rule(g, "item-1", "\"\\\"\" ( char ){1,8} \"\\\"\"");
    free(g);
    g = convert_ok("{\"type\":\"array\",\"maxItems\":2}");
    assert_rule(g, "root", "\"[\" space ( value ( \",\" space value ){0,1} space )? \"]\"");
    assert_non_null(strstr(g, "\nvalue ::= object | array | string | number | boolean | null\n"));
    free(g);
    g = convert_ok("{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":2}");
    assert_rule(g, "root", "\"[\" space integer ( \",\" space integer )+ space \"]\"");
    free(g);
    g = convert_ok("{\"type\":\"array\",\"maxItems\":0}");
    assert_rule(g, "root", "\"[\" space \"]\"");
    free(g);
    g = convert_ok("{\"type\":[\"string\",\"null\"],\"maxLength\":3}");
    assert_rule(g, "root", "string-1 | null");
    assert_rule(g, "string-1", "\"\\\"\" ( char ){0,3} \"\\\"\"");
    free(g);
    g = convert_ok("{\"type\":[\"integer\",\"number\"]}"); /* integer is a number */
    assert_rule(g, "root", "number");
    free(g);
    g = convert_ok("true");
    assert_rule(g, "root", "value");
    free(g);
    g = convert_ok("{\"description\":\"anything\"}");
    assert_rule(g, "root", "value");
    free(g);
}

static void test_any_of_nested_free_objects(void **state) {
    (void)state;
    char *g = convert_ok("{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"object\",\"properties\":"
                         "{\"in\":{\"type\":\"object\",\"properties\":{\"x\":{\"oneOf\":[{\"type\":"
                         "\"boolean\"},{\"const\":0}]}},\"required\":[\"x\"]}},\"required\":"
                         "[\"in\"]}],\"title\":\"t\"}");
    assert_rule(g, "root", "integer | alt-2");
    assert_rule(g, "alt-2", "\"{\" space \"\\\"in\\\"\" \":\" space in-3 space \"}\"");
    assert_rule(g, "in-3", "\"{\" space \"\\\"x\\\"\" \":\" space x-4 space \"}\"");
    assert_rule(g, "x-4", "boolean | alt-6");
    assert_rule(g, "alt-6", "\"0\"");
    free(g);
    g = convert_ok("{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}");
    assert_rule(g, "root",
                "\"{\" space ( string \":\" space integer ( \",\" space string \":\" "
                "space integer )* space )? \"}\"");
    free(g);
    g = convert_ok("{\"type\":\"object\",\"additionalProperties\":false}");
    assert_rule(g, "root", "\"{\" space \"}\"");
    free(g);
    g = convert_ok("{\"type\":\"object\"}");
    assert_rule(g, "root", "object");
    free(g);
    /* property names that GBNF rule names cannot hold */
    g = convert_ok("{\"type\":\"object\",\"properties\":{\"a b/\\u00e9\":{\"type\":\"string\","
                   "\"maxLength\":2}},\"required\":[\"a b/\\u00e9\"]}");
    assert_rule(g, "a-b----1", "\"\\\"\" ( char ){0,2} \"\\\"\"");
    assert_rule(g, "root", "\"{\" space \"\\\"a b/\xc3\xa9\\\"\" \":\" space a-b----1 space \"}\"");
    free(g);
}

typedef struct bad_case {
    const char *schema;
    const char *message; /* the whole message */
} bad_case;

static const bad_case bad_cases[] = {
    {"{\"$ref\":\"#/$defs/x\"}", "schema keyword '$ref' is not supported (at the root)"},
    {"{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"string\",\"pattern\":\"^a\"}}}",
     "schema keyword 'pattern' is not supported (at /properties/n)"},
    {"{\"type\":\"string\",\"format\":\"date\"}",
     "schema keyword 'format' is not supported (at the root)"},
    {"{\"type\":\"object\",\"patternProperties\":{}}",
     "schema keyword 'patternProperties' is not supported (at the root)"},
    {"{\"allOf\":[{}]}", "schema keyword 'allOf' is not supported (at the root)"},
    {"{\"if\":{},\"then\":{}}", "schema keyword 'if' is not supported (at the root)"},
    {"{\"type\":\"array\",\"items\":{\"type\":\"number\",\"minimum\":0}}",
     "schema keyword 'minimum' is not supported (at /items)"},
    {"{\"anyOf\":[{\"type\":\"null\"},{\"not\":{}}]}",
     "schema keyword 'not' is not supported (at /anyOf/1)"},
    {"{\"type\":\"array\",\"uniqueItems\":true}",
     "schema keyword 'uniqueItems' is not supported (at the root)"},
    {"{\"type\":\"strung\"}",
     "'type' must name object, array, string, number, integer, boolean or null (at the root)"},
    {"{\"type\":[]}",
     "'type' must be a type name or a non-empty array of type names (at the root)"},
    {"{\"enum\":[]}", "'enum' must be a non-empty array (at the root)"},
    {"{\"type\":\"integer\",\"enum\":[\"a\"]}",
     "no value of 'enum' has the schema's 'type' (at the root)"},
    {"{\"enum\":[1],\"maxLength\":3}",
     "'maxLength' together with 'enum' is not supported (at the root)"},
    {"{\"type\":\"string\",\"anyOf\":[{}]}",
     "'type' together with 'anyOf' is not supported (at the root)"},
    {"{\"oneOf\":[]}", "'oneOf' must be a non-empty array of schemas (at the root)"},
    {"{\"properties\":{\"a\":{}},\"required\":[\"b\"]}",
     "required property 'b' is not in 'properties' (at the root)"},
    {"{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}",
     "'minItems' is larger than 'maxItems' (at the root)"},
    {"{\"type\":\"string\",\"maxLength\":-1}", "'maxLength' must be an integer >= 0 (at the root)"},
    {"{\"type\":\"string\",\"maxLength\":100000}",
     "'maxLength' above 1000 is not supported (at the root)"},
    {"{\"type\":\"array\",\"items\":false}", "the schema false accepts no value (at /items)"},
    {"{\"properties\":{\"a\":5}}", "a schema must be an object or a boolean (at /properties/a)"},
    {"{\"properties\":[]}", "'properties' must be an object (at the root)"},
};

static void test_unsupported_and_bad(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        char msg[512];
        shimmy_err e;
        char *g = convert(bad_cases[i].schema, &e, msg, sizeof msg);
        if (g != NULL || e != ERR_BAD_PARAM || strcmp(msg, bad_cases[i].message) != 0)
            fail_msg("case %zu %s: got %d '%s'", i, bad_cases[i].schema, (int)e, msg);
    }
}

static void test_limits(void **state) {
    (void)state;
    char msg[512];
    shimmy_err e;
    /* nesting deeper than LIM_JSON_DEPTH */
    buf s;
    buf_init(&s, 1u << 20);
    for (int i = 0; i < LIM_JSON_DEPTH + 1; i++)
        assert_int_equal(buf_puts(&s, "{\"type\":\"array\",\"items\":"), SHIMMY_OK);
    assert_int_equal(buf_puts(&s, "{}"), SHIMMY_OK);
    for (int i = 0; i < LIM_JSON_DEPTH + 1; i++)
        assert_int_equal(buf_puts(&s, "}"), SHIMMY_OK);
    json_t *j = json_loads(buf_str(&s), 0, NULL);
    assert_non_null(j);
    buf g;
    buf_init(&g, LIM_GRAMMAR_BYTES);
    assert_int_equal(json_schema_to_gbnf(j, &g, msg, sizeof msg), ERR_BAD_PARAM);
    assert_non_null(strstr(msg, "nests deeper than 64 levels"));
    json_decref(j);
    buf_free(&g);
    /* a grammar over LIM_GRAMMAR_BYTES */
    buf_reset(&s);
    assert_int_equal(buf_puts(&s, "{\"enum\":["), SHIMMY_OK);
    for (unsigned i = 0; i * 20 < LIM_GRAMMAR_BYTES + 1000; i++)
        assert_int_equal(buf_printf(&s, "%s\"value number %u\"", i ? "," : "", i), SHIMMY_OK);
    assert_int_equal(buf_puts(&s, "]}"), SHIMMY_OK);
    char *out = convert(buf_str(&s), &e, msg, sizeof msg);
    assert_null(out);
    assert_int_equal(e, ERR_BAD_PARAM);
    assert_string_equal(msg, "the schema makes a grammar larger than 262144 bytes");
    buf_free(&s);
}

/* ---- through the engine ---- */

/* Every grammar made by the tests above parses in llama.cpp (a bad one fails the submit). */
static const char *const parse_cases[] = {
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":"
    "\"integer\"}},\"required\":[\"name\",\"age\"]}",
    "{\"properties\":{\"a\":{\"type\":\"boolean\"},\"b\":{\"type\":\"null\"},\"c\":{\"type\":"
    "\"number\"},\"d\":{\"type\":\"string\"}},\"required\":[\"c\"]}",
    "{\"type\":\"object\",\"properties\":{\"x\":{},\"y\":{},\"z\":{}}}",
    "{\"type\":\"object\",\"properties\":{}}",
    "{\"enum\":[\"a\\\"b\",\"back\\\\slash\",\"new\\nline\",\"\\u00e9\",\"\\u0001\",1,2.5,true,"
    "null,[1,\"x\"],{\"k\":{}}]}",
    "{\"type\":\"array\",\"items\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":8},"
    "\"minItems\":1,\"maxItems\":3}",
    "{\"type\":\"array\",\"maxItems\":2}",
    "{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":2}",
    "{\"type\":\"array\",\"maxItems\":0}",
    "{\"type\":[\"string\",\"null\"],\"maxLength\":3}",
    "{\"type\":\"string\",\"minLength\":1000}",
    "{\"type\":\"array\",\"minItems\":1000,\"maxItems\":1000}",
    "{\"type\":\"string\",\"minLength\":3,\"maxLength\":1000}",
    "{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"object\",\"properties\":{\"in\":{\"type\":"
    "\"object\",\"properties\":{\"x\":{\"oneOf\":[{\"type\":\"boolean\"},{\"const\":0}]}},"
    "\"required\":[\"x\"]}},\"required\":[\"in\"]}]}",
    "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}",
    "{\"type\":\"object\",\"additionalProperties\":false}",
    "{\"type\":\"object\",\"properties\":{\"a b/\\u00e9\":{\"type\":\"string\"}}}",
    "{}",
};

static void run(const char *grammar, const char *prompt, int max_tokens, char *text, size_t textlen,
                gen_status *st) {
    gen_request req = {.prompt = prompt};
    gen_params_default(&req.params);
    req.params.temperature = 0;
    req.params.max_tokens = max_tokens;
    req.params.grammar = grammar;
    gen_job *job;
    char err[512];
    shimmy_err e = engine_submit(model, &req, &job, err, sizeof err);
    if (e != SHIMMY_OK)
        fail_msg("submit failed (%d): %s\ngrammar:\n%s", (int)e, err, grammar);
    buf out;
    buf_init(&out, textlen - 1);
    do {
        assert_int_equal(engine_job_wait(job, 10000, &out, st), SHIMMY_OK);
    } while (!st->done);
    snprintf(text, textlen, "%s", buf_str(&out));
    buf_free(&out);
    engine_job_release(job);
}

static void test_llama_parses_every_grammar(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        char *g = convert_ok(parse_cases[i]), text[256];
        gen_status st;
        run(g, "Once upon a time", 2, text, sizeof text, &st);
        free(g);
    }
}

static size_t utf8_chars(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* v is valid for s, in the subset the converter supports (plus: no undeclared properties). */
static bool valid(const json_t *v, const json_t *s) {
    if (json_is_true(s))
        return true;
    const json_t *t = json_object_get(s, "type"), *en = json_object_get(s, "enum"), *x;
    const json_t *any = json_object_get(s, "anyOf");
    if ((x = json_object_get(s, "const")) != NULL)
        return json_equal(v, x);
    if (en != NULL) {
        for (size_t i = 0; i < json_array_size(en); i++)
            if (json_equal(v, json_array_get(en, i)))
                return true;
        return false;
    }
    if (any != NULL) {
        for (size_t i = 0; i < json_array_size(any); i++)
            if (valid(v, json_array_get(any, i)))
                return true;
        return false;
    }
    if (json_is_array(t)) {
        for (size_t i = 0; i < json_array_size(t); i++) {
            json_t *one = json_deep_copy(s);
            json_object_set(one, "type", json_array_get(t, i));
            bool ok = valid(v, one);
            json_decref(one);
            if (ok)
                return true;
        }
        return false;
    }
    const char *type = json_string_value(t);
    if (type == NULL)
        return true;
    if (strcmp(type, "string") == 0) {
        json_int_t min = json_integer_value(json_object_get(s, "minLength"));
        const json_t *max = json_object_get(s, "maxLength");
        size_t n = json_is_string(v) ? utf8_chars(json_string_value(v)) : 0;
        return json_is_string(v) && (json_int_t)n >= min &&
               (max == NULL || (json_int_t)n <= json_integer_value(max));
    }
    if (strcmp(type, "integer") == 0)
        return json_is_integer(v);
    if (strcmp(type, "number") == 0)
        return json_is_number(v);
    if (strcmp(type, "boolean") == 0)
        return json_is_boolean(v);
    if (strcmp(type, "null") == 0)
        return json_is_null(v);
    if (strcmp(type, "array") == 0) {
        const json_t *items = json_object_get(s, "items"), *max = json_object_get(s, "maxItems");
        size_t n = json_array_size(v);
        if (!json_is_array(v) ||
            (json_int_t)n < json_integer_value(json_object_get(s, "minItems")) ||
            (max != NULL && (json_int_t)n > json_integer_value(max)))
            return false;
        for (size_t i = 0; i < n; i++)
            if (items != NULL && !valid(json_array_get(v, i), items))
                return false;
        return true;
    }
    const json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
    const char *key;
    json_t *val;
    if (!json_is_object(v))
        return false;
    for (size_t i = 0; i < json_array_size(req); i++)
        if (json_object_get(v, json_string_value(json_array_get(req, i))) == NULL)
            return false;
    json_object_foreach((json_t *)v, key, val) {
        const json_t *ps = json_object_get(props, key);
        if (props != NULL && (ps == NULL || !valid(val, ps)))
            return false;
    }
    return true;
}

typedef struct gen_case {
    const char *prompt;
    const char *schema;
} gen_case;

static const gen_case gen_cases[] = {
    {"Tom is 5 years old. His name is",
     "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":"
     "\"integer\"}},\"required\":[\"name\",\"age\"],\"additionalProperties\":false}"},
    {"Once upon a time",
     "{\"type\":\"array\",\"items\":{\"enum\":[\"red\",\"green\",\"blue\"]},\"minItems\":2,"
     "\"maxItems\":4}"},
    {"Once upon a time",
     "{\"type\":\"object\",\"properties\":{\"ok\":{\"type\":\"boolean\"},\"tags\":{\"type\":"
     "\"array\",\"items\":{\"type\":\"string\",\"maxLength\":8},\"maxItems\":3},\"n\":{\"type\":"
     "[\"number\",\"null\"]},\"inner\":{\"type\":\"object\",\"properties\":{\"x\":{\"const\":1}},"
     "\"required\":[\"x\"]}},\"required\":[\"ok\",\"inner\"]}"},
    {"Lily said",
     "{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\",\"minLength\":2,\"maxLength\":4}]}"},
    {"The dog",
     "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"maxLength\":6},\"b\":"
     "{\"type\":\"integer\"}}}"},
};

/* Greedy generation under the grammar stops by itself (EOS once the value is complete) with
 * JSON that is valid for the schema. */
static void test_generation_is_valid(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof gen_cases / sizeof gen_cases[0]; i++) {
        char *g = convert_ok(gen_cases[i].schema), text[4096];
        gen_status st;
        run(g, gen_cases[i].prompt, 200, text, sizeof text, &st);
        print_message("schema %s\n  -> %s\n", gen_cases[i].schema, text);
        if (st.finish != FINISH_STOP)
            fail_msg("case %zu did not finish by itself (finish %d): %s", i, (int)st.finish, text);
        json_error_t je;
        json_t *v = json_loads(text, JSON_DECODE_ANY, &je),
               *s = json_loads(gen_cases[i].schema, 0, NULL);
        if (v == NULL)
            fail_msg("case %zu: not JSON (%s): %s", i, je.text, text);
        if (!valid(v, s))
            fail_msg("case %zu: %s does not match %s", i, text, gen_cases[i].schema);
        json_decref(v);
        json_decref(s);
        free(g);
    }
}

static int load_model(void **state) {
    (void)state;
    engine_options o;
    engine_options_default(&o);
    o.path = model_path;
    o.name = "stories";
    o.n_parallel = 1;
    o.n_ctx = 512;
    o.n_threads = 1;
    char err[512];
    if (engine_model_load(&o, &model, err, sizeof err) != SHIMMY_OK) {
        fprintf(stderr, "load failed: %s\n", err);
        return -1;
    }
    return 0;
}

static int free_model(void **state) {
    (void)state;
    engine_model_free(model);
    return 0;
}

int main(void) {
    const char *dir = getenv("SHIMMY_TEST_MODELS");
    snprintf(model_path, sizeof model_path, "%s/stories260K.gguf", dir ? dir : "../shared/models");
    char err[512];
    if (engine_global_init(NULL, err, sizeof err) != SHIMMY_OK) {
        fprintf(stderr, "engine_global_init: %s\n", err);
        return 1;
    }
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_required_object),
        cmocka_unit_test(test_optional_properties),
        cmocka_unit_test(test_enum_literals),
        cmocka_unit_test(test_arrays_strings_types),
        cmocka_unit_test(test_any_of_nested_free_objects),
        cmocka_unit_test(test_unsupported_and_bad),
        cmocka_unit_test(test_limits),
    };
    const struct CMUnitTest engine[] = {
        cmocka_unit_test(test_llama_parses_every_grammar),
        cmocka_unit_test(test_generation_is_valid),
    };
    int failed = cmocka_run_group_tests_name("json_schema", pure, NULL, NULL);
    return failed +
           cmocka_run_group_tests_name("json_schema_engine", engine, load_model, free_model);
}
