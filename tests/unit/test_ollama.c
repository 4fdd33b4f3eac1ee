/* Unit tests for api/ollama_wire: request parsing (defaults, options, keep_alive, format, raw,
 * system, images, tools, errors) and the NDJSON lines and final object. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <string.h>

#include "api/json_schema.h"
#include "api/ollama_wire.h"

static oll_request r;
static oll_error e;

#define PARSE_GEN(body) oll_parse_generate(body, strlen(body), NULL, &r, &e)
#define PARSE_CHAT(body) oll_parse_chat(body, strlen(body), NULL, &r, &e)

static void test_generate_defaults(void **state) {
    (void)state;
    assert_int_equal(PARSE_GEN("{\"model\":\"m\",\"prompt\":\"hi\"}"), SHIMMY_OK);
    assert_string_equal(r.model, "m");
    assert_true(r.stream);
    assert_false(r.raw);
    assert_false(r.empty);
    assert_int_equal(r.keep_ns, OLL_KEEP_UNSET);
    assert_true(r.gen.params.temperature == 0.8f);
    assert_true(r.gen.params.top_p == 0.9f);
    assert_true(r.gen.params.repeat_penalty == 1.1f);
    assert_int_equal(r.gen.params.max_tokens, -1);
    assert_null(r.gen.prompt);
    assert_int_equal(r.gen.n_messages, 1);
    assert_string_equal(r.gen.messages[0].role, "user");
    oll_request_default_system(&r, "be nice");
    assert_int_equal(r.gen.n_messages, 2);
    assert_string_equal(r.gen.messages[0].content, "be nice");
    oll_request_free(&r);

    assert_int_equal(PARSE_GEN("{\"name\":\"m\",\"prompt\":\"p\",\"raw\":true,\"stream\":false,"
                               "\"system\":\"s\"}"), SHIMMY_OK);
    assert_true(r.raw);
    assert_false(r.stream);
    assert_string_equal(r.gen.prompt, "p");
    oll_request_free(&r);

    assert_int_equal(PARSE_GEN("{\"model\":\"m\",\"system\":\"s\",\"prompt\":\"p\"}"), SHIMMY_OK);
    oll_request_default_system(&r, "ignored: the request has one");
    assert_int_equal(r.gen.n_messages, 2);
    assert_string_equal(r.gen.messages[0].content, "s");
    oll_request_free(&r);

    assert_int_equal(PARSE_GEN("{\"model\":\"m\"}"), SHIMMY_OK);
    assert_true(r.empty);
    oll_request_free(&r);
}

static void test_options(void **state) {
    (void)state;
    const char *body = "{\"model\":\"m\",\"prompt\":\"p\",\"options\":{\"num_predict\":7,"
                       "\"temperature\":0,\"top_k\":3,\"top_p\":0.5,\"min_p\":0.1,\"seed\":42,"
                       "\"repeat_penalty\":1.3,\"repeat_last_n\":8,\"stop\":[\"a\",\"b\"],"
                       "\"num_ctx\":4096,\"mirostat\":0,\"unknown_thing\":1}}";
    assert_int_equal(PARSE_GEN(body), SHIMMY_OK);
    const gen_params *p = &r.gen.params;
    assert_int_equal(p->max_tokens, 7);
    assert_true(p->temperature == 0.0f);
    assert_int_equal(p->top_k, 3);
    assert_true(p->top_p == 0.5f);
    assert_true(p->min_p == 0.1f);
    assert_true(p->has_seed);
    assert_int_equal(p->seed, 42);
    assert_true(p->repeat_penalty == 1.3f);
    assert_int_equal(p->repeat_last_n, 8);
    assert_int_equal(p->n_stop, 2);
    assert_string_equal(p->stop[1], "b");
    oll_request_free(&r);

    /* The model's params layer first, the request's options over it. */
    const char *params = "{\"stop\":[\"<|user|>\"],\"temperature\":0.2}";
    const char *b2 = "{\"model\":\"m\",\"prompt\":\"p\",\"options\":{\"temperature\":0.5}}";
    assert_int_equal(oll_parse_generate(b2, strlen(b2), params, &r, &e), SHIMMY_OK);
    assert_true(r.gen.params.temperature == 0.5f);
    assert_int_equal(r.gen.params.n_stop, 1);
    assert_string_equal(r.gen.params.stop[0], "<|user|>");
    oll_request_free(&r);

    assert_int_equal(PARSE_GEN("{\"model\":\"m\",\"options\":{\"num_predict\":-2}}"), SHIMMY_OK);
    assert_int_equal(r.gen.params.max_tokens, -1);
    oll_request_free(&r);
    assert_int_equal(PARSE_GEN("{\"model\":\"m\",\"options\":{\"top_k\":\"x\"}}"), ERR_BAD_PARAM);
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.message, "top_k"));
    assert_int_equal(PARSE_GEN("{\"model\":\"m\",\"options\":{\"top_p\":3}}"), ERR_BAD_PARAM);
}

static void test_keep_alive(void **state) {
    (void)state;
    static const struct {
        const char *v;
        int64_t ns;
    } cases[] = {{"\"5m\"", 300000000000LL}, {"\"1h30m\"", 5400000000000LL},
                 {"\"250ms\"", 250000000LL}, {"0", 0},
                 {"\"0\"", 0},               {"-1", -1},
                 {"\"-1m\"", -1},            {"30", 30000000000LL},
                 /* past int64 nanoseconds: saturates (found by fuzz_ollama, was UB) */
                 {"1e300", INT64_MAX},         {"9300000000", INT64_MAX}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"model\":\"m\",\"keep_alive\":%s}", cases[i].v);
        assert_int_equal(PARSE_GEN(body), SHIMMY_OK);
        assert_int_equal(r.keep_ns, cases[i].ns);
        oll_request_free(&r);
    }
    assert_int_equal(PARSE_GEN("{\"model\":\"m\",\"keep_alive\":\"soon\"}"), ERR_BAD_PARAM);
    /* durations Go's time.ParseDuration rejects as out of range (found by fuzz_ollama, was UB) */
    static const char *const invalid[] = {"\"1h2222222222222222222222230m\"", "\"3000000h\"",
                                          "\"infh\"", "\"nanm\"", "\"1h-1e300h\""};
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"model\":\"m\",\"keep_alive\":%s}", invalid[i]);
        assert_int_equal(PARSE_GEN(body), ERR_BAD_PARAM);
    }
}

static void test_format_and_rejections(void **state) {
    (void)state;
    assert_int_equal(PARSE_GEN("{\"model\":\"m\",\"prompt\":\"p\",\"format\":\"json\"}"),
                     SHIMMY_OK);
    assert_ptr_equal(r.gen.params.grammar, api_json_grammar);
    oll_request_free(&r);
    /* a schema: its own grammar, owned by the request */
    assert_int_equal(PARSE_GEN("{\"model\":\"m\",\"format\":{\"type\":\"object\",\"properties\":"
                               "{\"n\":{\"type\":\"integer\"}},\"required\":[\"n\"]}}"),
                     SHIMMY_OK);
    assert_non_null(r.gen.params.grammar);
    assert_ptr_equal(r.gen.params.grammar, r.grammar);
    assert_non_null(strstr(r.grammar, "root ::= \"{\" space \"\\\"n\\\"\" \":\" space integer"));
    oll_request_free(&r);
    assert_int_equal(PARSE_GEN("{\"model\":\"m\",\"format\":{\"type\":\"object\",\"properties\":"
                               "{\"n\":{\"type\":\"string\",\"pattern\":\"^a\"}}}}"),
                     ERR_BAD_PARAM);
    assert_string_equal(e.message, "format: schema keyword 'pattern' is not supported (at "
                                   "/properties/n)");
    assert_int_equal(PARSE_GEN("{\"model\":\"m\",\"format\":5}"), ERR_BAD_PARAM);
    assert_non_null(strstr(e.message, "JSON schema object"));
    assert_int_equal(PARSE_GEN("{\"model\":\"m\",\"prompt\":\"p\",\"images\":[\"aGk=\"]}"),
                     ERR_BAD_PARAM);
    assert_non_null(strstr(e.message, "images"));
    assert_int_equal(PARSE_GEN("{\"model\":\"m\",\"template\":\"{{ .Prompt }}\"}"), ERR_BAD_PARAM);
    assert_int_equal(PARSE_GEN("{\"model\":\"m\",\"suffix\":\"x\"}"), ERR_BAD_PARAM);
    assert_int_equal(PARSE_GEN("{\"prompt\":\"p\"}"), ERR_BAD_PARAM);
    assert_string_equal(e.message, "model is required");
    assert_int_equal(PARSE_GEN("{nope"), ERR_BAD_JSON);
    assert_int_equal(PARSE_CHAT("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                                "\"content\":\"x\",\"images\":[\"aGk=\"]}]}"), ERR_BAD_PARAM);
    assert_int_equal(PARSE_CHAT("{\"model\":\"m\",\"messages\":[],\"tools\":[{}]}"),
                     ERR_BAD_PARAM);
    assert_int_equal(PARSE_CHAT("{\"model\":\"m\",\"messages\":[{\"role\":\"wizard\"}]}"),
                     ERR_BAD_PARAM);
}

static void test_chat(void **state) {
    (void)state;
    assert_int_equal(PARSE_CHAT("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                                "\"a\"},{\"role\":\"assistant\",\"content\":\"b\"},{\"role\":"
                                "\"user\",\"content\":\"c\"}]}"), SHIMMY_OK);
    assert_int_equal(r.gen.n_messages, 3);
    oll_request_default_system(&r, "sys");
    assert_int_equal(r.gen.n_messages, 4);
    assert_string_equal(r.gen.messages[0].role, "system");
    assert_string_equal(r.gen.messages[3].content, "c");
    oll_request_free(&r);
    assert_int_equal(PARSE_CHAT("{\"model\":\"m\"}"), SHIMMY_OK);
    assert_true(r.empty);
    oll_request_free(&r);
}

static void test_embed_parse(void **state) {
    (void)state;
    oll_embed_request er;
    const char *b = "{\"model\":\"m\",\"input\":[\"a\",\"b\"]}";
    assert_int_equal(oll_parse_embed(b, strlen(b), OLL_EMBED, &er, &e), SHIMMY_OK);
    assert_int_equal(er.n, 2);
    oll_embed_request_free(&er);
    b = "{\"model\":\"m\",\"prompt\":\"a\"}";
    assert_int_equal(oll_parse_embed(b, strlen(b), OLL_EMBEDDINGS_LEGACY, &er, &e), SHIMMY_OK);
    assert_int_equal(er.n, 1);
    oll_embed_request_free(&er);
    b = "{\"model\":\"m\",\"input\":[1,2]}";
    assert_int_equal(oll_parse_embed(b, strlen(b), OLL_EMBED_OPENAI, &er, &e), ERR_BAD_PARAM);
    b = "{\"model\":\"m\",\"input\":\"a\",\"encoding_format\":\"base64\"}";
    assert_int_equal(oll_parse_embed(b, strlen(b), OLL_EMBED_OPENAI, &er, &e), ERR_BAD_PARAM);
}

static void test_writers(void **state) {
    (void)state;
    buf out;
    buf_init(&out, 1 << 20);
    assert_int_equal(oll_chunk("m", true, "hé", 3, &out), SHIMMY_OK);
    assert_int_equal(out.data[out.len - 1], '\n');
    json_t *j = json_loads(out.data, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "message"),
                                                           "content")), "hé");
    assert_true(json_is_false(json_object_get(j, "done")));
    const char *ts = json_string_value(json_object_get(j, "created_at"));
    assert_int_equal(strlen(ts), 30);
    assert_int_equal(ts[29], 'Z');
    json_decref(j);
    buf_reset(&out);
    gen_status st = {.prompt_tokens = 5, .completion_tokens = 7, .prompt_ns = 11, .gen_ns = 13};
    oll_times t = {.total_ns = 100, .load_ns = 3};
    assert_int_equal(oll_final("m", false, "text", 4, "length", &st, &t, false, &out), SHIMMY_OK);
    j = json_loads(out.data, 0, NULL);
    assert_non_null(j);
    assert_true(json_is_true(json_object_get(j, "done")));
    assert_string_equal(json_string_value(json_object_get(j, "done_reason")), "length");
    assert_string_equal(json_string_value(json_object_get(j, "response")), "text");
    assert_int_equal(json_integer_value(json_object_get(j, "total_duration")), 100);
    assert_int_equal(json_integer_value(json_object_get(j, "load_duration")), 3);
    assert_int_equal(json_integer_value(json_object_get(j, "prompt_eval_count")), 5);
    assert_int_equal(json_integer_value(json_object_get(j, "prompt_eval_duration")), 11);
    assert_int_equal(json_integer_value(json_object_get(j, "eval_count")), 7);
    assert_int_equal(json_integer_value(json_object_get(j, "eval_duration")), 13);
    json_decref(j);
    buf_reset(&out);
    assert_int_equal(oll_error_json("bad \"x\"", &out), SHIMMY_OK);
    assert_string_equal(out.data, "{\"error\":\"bad \\\"x\\\"\"}");
    buf_free(&out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_defaults), cmocka_unit_test(test_options),
        cmocka_unit_test(test_keep_alive),        cmocka_unit_test(test_format_and_rejections),
        cmocka_unit_test(test_chat),              cmocka_unit_test(test_embed_parse),
        cmocka_unit_test(test_writers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
