/* Unit tests for api/ollama_wire: request parsing (defaults, options, keep_alive, format, raw and
 * the no-template raw default, system, images, tools, tool calls and results, think, errors) and
 * the NDJSON lines (thinking, content, a tool call sent whole) and final objects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/json_in.h"
#include "api/ollama_wire.h"

static api_call r;
static api_error e;
static json_t *root, *chat_in; /* the last body parsed and its chat JSON */

#define OW ((oll_wire *)r.wire)

/* Parses body with the model context m (NULL = no layers, a chat template). */
static shimmy_err parse(bool chat, const char *body, const oll_model_ctx *m) {
    static const oll_model_ctx none = {NULL, NULL, true, NULL, NULL, NULL};
    api_error_clear(&e);
    memset(&r, 0, sizeof r);
    json_decref(root);
    json_decref(chat_in);
    root = chat_in = NULL;
    shimmy_err c = api_json_load_object(body, strlen(body), &root, e.message, sizeof e.message);
    if (c != SHIMMY_OK)
        return e.code = c;
    c = chat ? oll_parse_chat(root, m ? m : &none, &r, &e)
             : oll_parse_generate(root, m ? m : &none, &r, &e);
    if (c == SHIMMY_OK && r.gen.chat_json != NULL)
        chat_in = json_loads(r.gen.chat_json, 0, NULL);
    return c;
}

#define PARSE_GEN(body) parse(false, body, NULL)
#define PARSE_CHAT(body) parse(true, body, NULL)

static void done(void) {
    oll_call_free(&r);
}

/* The chat JSON's member key (a path of object keys and array indexes, "messages.0.role"), as
 * compact JSON text; "null" when absent. */
static void assert_chat(const char *path, const char *want) {
    char key[64], *save = NULL;
    json_t *v = chat_in;
    snprintf(key, sizeof key, "%s", path);
    for (char *k = key; k != NULL && v != NULL; k = save) {
        save = strchr(k, '.');
        if (save != NULL)
            *save++ = '\0';
        v = json_is_array(v) ? json_array_get(v, (size_t)strtol(k, NULL, 10))
                             : json_object_get(v, k);
    }
    char *got = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : strdup("null");
    if (strcmp(got, want) != 0)
        print_error("%s: got %s, want %s\n", path, got, want);
    assert_string_equal(got, want);
    free(got);
}

static void test_generate_defaults(void **state) {
    (void)state;
    oll_model_ctx sys = {NULL, "be nice", true, NULL, NULL, NULL};
    assert_int_equal(parse(false, "{\"model\":\"m\",\"prompt\":\"hi\"}", &sys), SHIMMY_OK);
    assert_string_equal(r.model, "m");
    assert_true(r.stream);
    assert_false(r.load_only);
    assert_int_equal(r.keep_ns, REGISTRY_KEEP_DEFAULT);
    assert_true(r.gen.params.temperature == 0.8f);
    assert_true(r.gen.params.top_p == 0.9f);
    assert_true(r.gen.params.repeat_penalty == 1.1f);
    assert_int_equal(r.gen.params.max_tokens, -1);
    assert_null(r.gen.prompt);
    assert_chat("messages", "[{\"role\":\"system\",\"content\":\"be nice\"},{\"role\":\"user\","
                            "\"content\":\"hi\"}]");
    assert_chat("reasoning_format", "\"auto\"");
    assert_chat("enable_thinking", "null");
    done();

    /* raw: the prompt as is */
    assert_int_equal(PARSE_GEN("{\"name\":\"m\",\"prompt\":\"p\",\"raw\":true,\"stream\":false,"
                               "\"system\":\"s\"}"),
                     SHIMMY_OK);
    assert_false(r.stream);
    assert_string_equal(r.gen.prompt, "p");
    assert_null(r.gen.chat_json);
    done();

    /* a model without a chat template: the prompt as is (Ollama's {{ .Prompt }}) */
    oll_model_ctx bare = {NULL, "sys", false, NULL, NULL, NULL};
    assert_int_equal(parse(false, "{\"model\":\"m\",\"prompt\":\"p\"}", &bare), SHIMMY_OK);
    assert_string_equal(r.gen.prompt, "p");
    assert_null(r.gen.chat_json);
    done();

    /* the request's system wins over the model's */
    assert_int_equal(parse(false, "{\"model\":\"m\",\"system\":\"s\",\"prompt\":\"p\"}", &sys),
                     SHIMMY_OK);
    assert_chat("messages.0.content", "\"s\"");
    done();

    assert_int_equal(PARSE_GEN("{\"model\":\"m\"}"), SHIMMY_OK);
    assert_true(r.load_only);
    done();
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
    done();

    /* The model's params layer first, the request's options over it. */
    oll_model_ctx params = {
        "{\"stop\":[\"<|user|>\"],\"temperature\":0.2}", NULL, true, NULL, NULL, NULL};
    assert_int_equal(parse(false,
                           "{\"model\":\"m\",\"prompt\":\"p\",\"options\":"
                           "{\"temperature\":0.5}}",
                           &params),
                     SHIMMY_OK);
    assert_true(r.gen.params.temperature == 0.5f);
    assert_int_equal(r.gen.params.n_stop, 1);
    assert_string_equal(r.gen.params.stop[0], "<|user|>");
    done();

    assert_int_equal(PARSE_GEN("{\"model\":\"m\",\"options\":{\"num_predict\":-2}}"), SHIMMY_OK);
    assert_int_equal(r.gen.params.max_tokens, -1);
    done();
    assert_int_equal(PARSE_GEN("{\"model\":\"m\",\"options\":{\"top_k\":\"x\"}}"), ERR_BAD_PARAM);
    assert_int_equal(err_get(e.code)->http_status, 400);
    assert_non_null(strstr(e.message, "top_k"));
    assert_int_equal(PARSE_GEN("{\"model\":\"m\",\"options\":{\"top_p\":3}}"), ERR_BAD_PARAM);
}

static void test_keep_alive(void **state) {
    (void)state;
    static const struct {
        const char *v;
        int64_t ns;
    } cases[] = {{"\"5m\"", 300000000000LL},
                 {"\"1h30m\"", 5400000000000LL},
                 {"\"250ms\"", 250000000LL},
                 {"0", 0},
                 {"\"0\"", 0},
                 {"-1", -1},
                 {"\"-1m\"", -1},
                 {"30", 30000000000LL},
                 /* past int64 nanoseconds: saturates (found by fuzz_ollama, was UB) */
                 {"1e300", INT64_MAX},
                 {"9300000000", INT64_MAX}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"model\":\"m\",\"keep_alive\":%s}", cases[i].v);
        assert_int_equal(PARSE_GEN(body), SHIMMY_OK);
        assert_int_equal(r.keep_ns, cases[i].ns);
        done();
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
    assert_string_equal(r.gen.params.json_schema, "{\"type\":\"object\"}");
    assert_string_equal(r.schema_param, "format");
    done();
    /* a schema passes as it is: the engine converts it (pattern, minimum and all) */
    assert_int_equal(PARSE_GEN("{\"model\":\"m\",\"format\":{\"type\":\"object\",\"properties\":"
                               "{\"n\":{\"type\":\"integer\",\"minimum\":1}}}}"),
                     SHIMMY_OK);
    assert_string_equal(r.gen.params.json_schema, "{\"type\":\"object\",\"properties\":{\"n\":"
                                                  "{\"type\":\"integer\",\"minimum\":1}}}");
    done();
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
                                "\"content\":\"x\",\"images\":[\"aGk=\"]}]}"),
                     ERR_BAD_PARAM);
    assert_int_equal(PARSE_CHAT("{\"model\":\"m\",\"messages\":[],\"tools\":[{}]}"), ERR_BAD_PARAM);
    assert_non_null(strstr(e.message, "tools[0].type"));
    assert_int_equal(PARSE_CHAT("{\"model\":\"m\",\"messages\":[{\"role\":\"wizard\"}]}"),
                     ERR_BAD_PARAM);
    assert_int_equal(PARSE_CHAT("{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\","
                                "\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":"
                                "\"{}\"}}]}]}"),
                     ERR_BAD_PARAM);
    assert_non_null(strstr(e.message, "messages[0].tool_calls[0]"));
    assert_int_equal(PARSE_CHAT("{\"model\":\"m\",\"think\":\"max\"}"), ERR_BAD_PARAM);
    assert_non_null(strstr(e.message, "think must be"));
}

static void test_chat(void **state) {
    (void)state;
    oll_model_ctx sys = {NULL, "sys", true, NULL, NULL, NULL};
    assert_int_equal(parse(true,
                           "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                           "\"a\"},{\"role\":\"assistant\",\"content\":\"b\"},{\"role\":"
                           "\"user\",\"content\":\"c\"}]}",
                           &sys),
                     SHIMMY_OK);
    assert_chat("messages.0", "{\"role\":\"system\",\"content\":\"sys\"}");
    assert_chat("messages.3.content", "\"c\"");
    assert_false(r.need_tools);
    assert_false(r.need_thinking);
    done();
    assert_int_equal(PARSE_CHAT("{\"model\":\"m\"}"), SHIMMY_OK);
    assert_true(r.load_only);
    done();
}

/* Tools, an assistant's calls (arguments an object → JSON text), a tool result (tool_name →
 * name), thinking history, and think. */
static void test_chat_tools_think(void **state) {
    (void)state;
    const char *body =
        "{\"model\":\"m\",\"think\":\"high\",\"messages\":["
        "{\"role\":\"user\",\"content\":\"weather?\"},"
        "{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"hm\",\"tool_calls\":"
        "[{\"function\":{\"name\":\"get\",\"arguments\":{\"city\":\"Paris\"}}}]},"
        "{\"role\":\"tool\",\"tool_name\":\"get\",\"content\":\"sunny\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get\",\"parameters\":"
        "{\"type\":\"object\"}}}]}";
    assert_int_equal(PARSE_CHAT(body), SHIMMY_OK);
    assert_true(r.need_tools);
    assert_true(r.need_thinking);
    assert_chat("messages.1.tool_calls", "[{\"type\":\"function\",\"function\":{\"name\":\"get\","
                                         "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]");
    assert_chat("messages.1.reasoning_content", "\"hm\"");
    assert_chat("messages.2", "{\"role\":\"tool\",\"content\":\"sunny\",\"name\":\"get\"}");
    assert_chat("tools.0.function.name", "\"get\"");
    assert_chat("enable_thinking", "true");
    assert_chat("reasoning_effort", "\"high\"");
    done();
    assert_int_equal(PARSE_CHAT("{\"model\":\"m\",\"think\":false,\"messages\":[{\"role\":"
                                "\"user\",\"content\":\"x\"}]}"),
                     SHIMMY_OK);
    assert_false(r.need_thinking);
    assert_chat("enable_thinking", "false");
    done();
    assert_int_equal(PARSE_GEN("{\"model\":\"m\",\"think\":true,\"prompt\":\"x\"}"), SHIMMY_OK);
    assert_true(r.need_thinking);
    assert_chat("enable_thinking", "true");
    done();
}

static void test_embed_parse(void **state) {
    (void)state;
    oll_embed_request er;
    api_error_clear(&e);
    const char *b = "{\"model\":\"m\",\"input\":[\"a\",\"b\"]}";
    assert_int_equal(oll_parse_embed(b, strlen(b), OLL_EMBED, &er, &e), SHIMMY_OK);
    assert_int_equal(er.n, 2);
    oll_embed_request_free(&er);
    b = "{\"model\":\"m\",\"prompt\":\"a\"}";
    assert_int_equal(oll_parse_embed(b, strlen(b), OLL_EMBEDDINGS_LEGACY, &er, &e), SHIMMY_OK);
    assert_int_equal(er.n, 1);
    oll_embed_request_free(&er);
    /* token ids: one input of ids, or several */
    b = "{\"model\":\"m\",\"input\":[1,2]}";
    assert_int_equal(oll_parse_embed(b, strlen(b), OLL_EMBED_OPENAI, &er, &e), SHIMMY_OK);
    assert_int_equal(er.n, 1);
    assert_null(er.inputs[0].text);
    assert_int_equal(er.inputs[0].n_tokens, 2);
    assert_int_equal(er.inputs[0].tokens[1], 2);
    assert_false(er.truncate); /* OpenAI: too long is a 400 */
    oll_embed_request_free(&er);
    b = "{\"model\":\"m\",\"input\":[[5],[6,7,8]],\"encoding_format\":\"base64\","
        "\"dimensions\":2}";
    assert_int_equal(oll_parse_embed(b, strlen(b), OLL_EMBED_OPENAI, &er, &e), SHIMMY_OK);
    assert_int_equal(er.n, 2);
    assert_int_equal(er.inputs[1].n_tokens, 3);
    assert_int_equal(er.inputs[1].tokens[0], 6);
    assert_true(er.base64);
    assert_int_equal(er.dimensions, 2);
    oll_embed_request_free(&er);
    b = "{\"model\":\"m\",\"input\":\"a\",\"truncate\":false,\"options\":{\"num_ctx\":128}}";
    assert_int_equal(oll_parse_embed(b, strlen(b), OLL_EMBED, &er, &e), SHIMMY_OK);
    assert_false(er.truncate);
    assert_int_equal(er.num_ctx, 128);
    oll_embed_request_free(&er);
    b = "{\"model\":\"m\",\"input\":\"a\"}";
    assert_int_equal(oll_parse_embed(b, strlen(b), OLL_EMBED, &er, &e), SHIMMY_OK);
    assert_true(er.truncate); /* Ollama's default */
    oll_embed_request_free(&er);
    /* refusals name the field */
    static const struct {
        const char *body, *param;
    } bad[] = {
        {"{\"model\":\"m\",\"input\":\"a\",\"encoding_format\":\"int8\"}", "encoding_format"},
        {"{\"model\":\"m\",\"input\":\"a\",\"dimensions\":0}", "dimensions"},
        {"{\"model\":\"m\",\"input\":\"a\",\"dimensions\":\"8\"}", "dimensions"},
        {"{\"model\":\"m\",\"input\":[\"a\",[1,-2]]}", "input[1]"},
        {"{\"model\":\"m\",\"input\":[\"a\",{}]}", "input[1]"},
        {"{\"model\":\"m\",\"input\":[\"a\",\"\"]}", "input[1]"},
        {"{\"model\":\"m\",\"input\":[]}", "input"},
        {"{\"model\":\"m\"}", "input"},
        {"{\"input\":\"a\"}", "model"},
        {"{\"model\":\"m\",\"input\":\"a\",\"keep_alive\":\"soon\"}", "keep_alive"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        b = bad[i].body;
        assert_int_equal(oll_parse_embed(b, strlen(b), OLL_EMBED_OPENAI, &er, &e), ERR_BAD_PARAM);
        assert_string_equal(e.param, bad[i].param);
    }
    b = "{\"model\":\"m\",\"input\":\"a\",\"truncate\":1}";
    assert_int_equal(oll_parse_embed(b, strlen(b), OLL_EMBED, &er, &e), ERR_BAD_PARAM);
    assert_string_equal(e.param, "truncate");
    b = "{\"model\":\"m\",\"input\":\"a\",\"options\":{\"num_ctx\":0}}";
    assert_int_equal(oll_parse_embed(b, strlen(b), OLL_EMBED, &er, &e), ERR_BAD_PARAM);
    assert_string_equal(e.param, "options.num_ctx");
}

static gen_event ev(gen_event_kind k, int index, const char *id, const char *name,
                    const char *text) {
    gen_event x = {.kind = k,
                   .tool_index = index,
                   .tool_id = id,
                   .tool_name = name,
                   .text = text,
                   .len = strlen(text)};
    return x;
}

/* Each NDJSON line of out, parsed; n of them. Returns owned values. */
static size_t lines(const buf *out, json_t **v, size_t max) {
    size_t n = 0;
    const char *s = buf_str(out);
    while (*s != '\0' && n < max) {
        const char *end = strchr(s, '\n');
        assert_non_null(end);
        v[n] = json_loadb(s, (size_t)(end - s), 0, NULL);
        assert_non_null(v[n]);
        n++;
        s = end + 1;
    }
    return n;
}

static const char *msg_str(json_t *line, const char *key) {
    return json_string_value(json_object_get(json_object_get(line, "message"), key));
}

static void test_writers(void **state) {
    (void)state;
    buf out;
    api_sink s;
    json_t *v[8];
    buf_init(&out, 1 << 20);
    api_sink_init(&s, &out, API_FRAME_NDJSON);
    assert_int_equal(PARSE_CHAT("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                                "\"x\"}]}"),
                     SHIMMY_OK);
    gen_event list[] = {
        ev(GEN_EV_REASONING, 0, NULL, NULL, "hm"), ev(GEN_EV_CONTENT, 0, NULL, NULL, "h\xc3\xa9"),
        ev(GEN_EV_TOOL, 0, "c0", "get", "{\"a\":"), ev(GEN_EV_TOOL, 0, NULL, NULL, "1}"),
        ev(GEN_EV_TOOL, 1, "c1", "put", "not json")};
    gen_events evs = {.ev = list, .n = 5};
    assert_int_equal(oll_events(&r, &evs, &s), SHIMMY_OK);
    /* thinking, content, and the first call once the second began */
    assert_int_equal(lines(&out, v, 8), 3);
    assert_string_equal(msg_str(v[0], "thinking"), "hm");
    assert_string_equal(msg_str(v[0], "content"), "");
    assert_string_equal(msg_str(v[1], "content"), "h\xc3\xa9");
    assert_true(json_is_false(json_object_get(v[1], "done")));
    const char *ts = json_string_value(json_object_get(v[1], "created_at"));
    assert_int_equal(strlen(ts), 30);
    assert_int_equal(ts[29], 'Z');
    char *calls =
        json_dumps(json_object_get(json_object_get(v[2], "message"), "tool_calls"), JSON_COMPACT);
    assert_string_equal(calls, "[{\"function\":{\"name\":\"get\",\"arguments\":{\"a\":1}}}]");
    free(calls);
    for (size_t i = 0; i < 3; i++)
        json_decref(v[i]);
    /* the end: the last call (arguments that do not parse stay a string), then the final */
    buf_reset(&out);
    gen_status st = {.done = true,
                     .finish = FINISH_STOP,
                     .prompt_tokens = 5,
                     .completion_tokens = 7,
                     .prompt_ns = 11,
                     .gen_ns = 13};
    r.load_ns = 3;
    assert_int_equal(oll_end(&r, &st, &s), SHIMMY_OK);
    assert_int_equal(lines(&out, v, 8), 2);
    calls =
        json_dumps(json_object_get(json_object_get(v[0], "message"), "tool_calls"), JSON_COMPACT);
    assert_string_equal(calls, "[{\"function\":{\"name\":\"put\",\"arguments\":\"not json\"}}]");
    free(calls);
    assert_true(json_is_true(json_object_get(v[1], "done")));
    assert_string_equal(json_string_value(json_object_get(v[1], "done_reason")), "stop");
    assert_int_equal(json_integer_value(json_object_get(v[1], "load_duration")), 3);
    assert_true(json_integer_value(json_object_get(v[1], "total_duration")) > 0);
    assert_int_equal(json_integer_value(json_object_get(v[1], "prompt_eval_count")), 5);
    assert_int_equal(json_integer_value(json_object_get(v[1], "prompt_eval_duration")), 11);
    assert_int_equal(json_integer_value(json_object_get(v[1], "eval_count")), 7);
    assert_int_equal(json_integer_value(json_object_get(v[1], "eval_duration")), 13);
    json_decref(v[0]);
    json_decref(v[1]);
    api_sink_free(&s);
    done();
    buf_free(&out);
}

/* The whole answer: generate has response and thinking; chat has the calls. */
static void test_whole_and_errors(void **state) {
    (void)state;
    buf out;
    api_sink s;
    api_answer a;
    gen_event list[] = {ev(GEN_EV_REASONING, 0, NULL, NULL, "hm"),
                        ev(GEN_EV_CONTENT, 0, NULL, NULL, "text")};
    gen_events evs = {.ev = list, .n = 2};
    gen_status st = {.done = true, .finish = FINISH_LENGTH};
    buf_init(&out, 1 << 20);
    api_sink_init(&s, &out, API_FRAME_NONE);
    api_answer_init(&a);
    assert_int_equal(api_answer_add(&a, &evs), SHIMMY_OK);
    assert_int_equal(PARSE_GEN("{\"model\":\"m\",\"prompt\":\"x\"}"), SHIMMY_OK);
    assert_int_equal(oll_whole(&r, &a, &st, &s), SHIMMY_OK);
    json_t *j = json_loads(buf_str(&out), 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "response")), "text");
    assert_string_equal(json_string_value(json_object_get(j, "thinking")), "hm");
    assert_string_equal(json_string_value(json_object_get(j, "done_reason")), "length");
    json_decref(j);
    done();
    buf_reset(&out);
    api_fail(&e, ERR_BAD_PARAM, "think", "\"m\" does not support thinking");
    assert_int_equal(oll_write_error(&e, &s), SHIMMY_OK);
    assert_string_equal(buf_str(&out), "{\"error\":\"\\\"m\\\" does not support thinking\"}");
    api_answer_free(&a);
    api_sink_free(&s);
    buf_free(&out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_defaults),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_format_and_rejections),
        cmocka_unit_test(test_chat),
        cmocka_unit_test(test_chat_tools_think),
        cmocka_unit_test(test_embed_parse),
        cmocka_unit_test(test_writers),
        cmocka_unit_test(test_whole_and_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    json_decref(root);
    json_decref(chat_in);
    return rc;
}
