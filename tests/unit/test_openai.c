/* Unit tests for api/openai_wire (and api/jsonw): request parsing into gen_request with every
 * parameter and every client error, and the exact JSON of responses and SSE chunks. No engine,
 * no registry, no sockets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/json_schema.h"
#include "api/jsonw.h"
#include "api/openai_wire.h"
#include "core/clock.h"

#ifndef SHIMMY_VERSION
#define SHIMMY_VERSION "0.0.0"
#endif
#define FP "\"system_fingerprint\":\"shimmy-" SHIMMY_VERSION "\""

/* Defaults with values no client sends, so that "untouched" is visible. */
static gen_params test_defaults(void) {
    gen_params p;
    memset(&p, 0, sizeof p);
    p.max_tokens = -7;
    p.temperature = 0.123f;
    p.top_p = 0.456f;
    p.top_k = 77;
    p.min_p = 0.0789f;
    p.repeat_penalty = 1.0101f;
    p.presence_penalty = 0.111f;
    p.frequency_penalty = 0.222f;
    p.repeat_last_n = 99;
    p.has_seed = false;
    p.seed = 0;
    return p;
}

static shimmy_err chat(const char *body, oai_request *r, oai_error *err) {
    gen_params d = test_defaults();
    return oai_parse_chat(body, strlen(body), &d, r, err);
}

static shimmy_err completion(const char *body, oai_request *r, oai_error *err) {
    gen_params d = test_defaults();
    return oai_parse_completion(body, strlen(body), &d, r, err);
}

/* ---- valid requests ---- */

static void test_chat_minimal_keeps_defaults(void **state) {
    (void)state;
    oai_request r;
    oai_error err;
    gen_params d = test_defaults();
    assert_int_equal(chat("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                          &r, &err),
                     SHIMMY_OK);
    assert_string_equal(r.model, "m");
    assert_false(r.stream);
    assert_false(r.include_usage);
    assert_null(r.gen.prompt);
    assert_int_equal(r.gen.n_messages, 1);
    assert_string_equal(r.gen.messages[0].role, "user");
    assert_string_equal(r.gen.messages[0].content, "hi");
    assert_int_equal(r.gen.params.max_tokens, d.max_tokens);
    assert_true(r.gen.params.temperature == d.temperature);
    assert_true(r.gen.params.top_p == d.top_p);
    assert_int_equal(r.gen.params.top_k, d.top_k);
    assert_true(r.gen.params.min_p == d.min_p);
    assert_true(r.gen.params.repeat_penalty == d.repeat_penalty);
    assert_true(r.gen.params.presence_penalty == d.presence_penalty);
    assert_true(r.gen.params.frequency_penalty == d.frequency_penalty);
    assert_int_equal(r.gen.params.repeat_last_n, d.repeat_last_n);
    assert_false(r.gen.params.has_seed);
    assert_int_equal(r.gen.params.n_stop, 0);
    oai_request_free(&r);
}

static void test_chat_all_params(void **state) {
    (void)state;
    oai_request r;
    oai_error err;
    const char *body =
        "{\"model\":\"org/name:q4\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"sys\"},"
        "{\"role\":\"developer\",\"content\":\"dev\"},"
        "{\"role\":\"user\",\"content\":\"u\",\"name\":\"bob\"},"
        "{\"role\":\"assistant\",\"content\":null}],"
        "\"temperature\":0.5,\"top_p\":0.9,\"top_k\":20,\"min_p\":0.1,\"repeat_penalty\":1.1,"
        "\"presence_penalty\":-1,\"frequency_penalty\":1.5,\"seed\":42,\"max_tokens\":10,"
        "\"repeat_last_n\":32,\"stop\":[\"a\",\"\",\"bb\"],\"stream\":true,"
        "\"stream_options\":{\"include_usage\":true},\"n\":1,\"logprobs\":false,"
        "\"response_format\":{\"type\":\"text\"},\"tools\":[],\"user\":\"x\",\"whatever\":{}}";
    assert_int_equal(chat(body, &r, &err), SHIMMY_OK);
    assert_string_equal(r.model, "org/name:q4");
    assert_true(r.stream);
    assert_true(r.include_usage);
    assert_int_equal(r.gen.n_messages, 4);
    assert_string_equal(r.gen.messages[0].role, "system");
    assert_string_equal(r.gen.messages[1].role, "system");
    assert_string_equal(r.gen.messages[1].content, "dev");
    assert_string_equal(r.gen.messages[2].role, "user");
    assert_string_equal(r.gen.messages[3].role, "assistant");
    assert_string_equal(r.gen.messages[3].content, "");
    const gen_params *p = &r.gen.params;
    assert_true(p->temperature == 0.5f);
    assert_true(p->top_p == 0.9f);
    assert_int_equal(p->top_k, 20);
    assert_true(p->min_p == 0.1f);
    assert_true(p->repeat_penalty == 1.1f);
    assert_true(p->presence_penalty == -1.0f);
    assert_true(p->frequency_penalty == 1.5f);
    assert_true(p->has_seed);
    assert_int_equal(p->seed, 42);
    assert_int_equal(p->max_tokens, 10);
    assert_int_equal(p->repeat_last_n, 32);
    assert_int_equal(p->n_stop, 2);
    assert_string_equal(p->stop[0], "a");
    assert_string_equal(p->stop[1], "bb");
    oai_request_free(&r);
}

static void test_chat_max_completion_tokens_wins(void **state) {
    (void)state;
    oai_request r;
    oai_error err;
    assert_int_equal(chat("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                          "\"max_completion_tokens\":5,\"max_tokens\":9}",
                          &r, &err),
                     SHIMMY_OK);
    assert_int_equal(r.gen.params.max_tokens, 5);
    oai_request_free(&r);
}

static void test_chat_nulls_integral_reals_seed(void **state) {
    (void)state;
    oai_request r;
    oai_error err;
    gen_params d = test_defaults();
    assert_int_equal(chat("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                          "\"temperature\":null,\"stop\":null,\"stream\":null,\"n\":null,"
                          "\"stream_options\":null,\"max_tokens\":7.0,\"seed\":-1,"
                          "\"top_k\":0,\"temperature\":0}",
                          &r, &err),
                     SHIMMY_OK);
    assert_true(r.gen.params.temperature == 0.0f); /* the later duplicate wins */
    assert_int_equal(r.gen.params.max_tokens, 7);
    assert_false(r.gen.params.has_seed);
    assert_int_equal(r.gen.params.top_k, 0);
    assert_true(r.gen.params.top_p == d.top_p);
    assert_int_equal(r.gen.params.n_stop, 0);
    assert_false(r.stream);
    oai_request_free(&r);

    assert_int_equal(chat("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                          "\"seed\":4294967297,\"stop\":\"END\"}",
                          &r, &err),
                     SHIMMY_OK);
    assert_true(r.gen.params.has_seed);
    assert_int_equal(r.gen.params.seed, 1);
    assert_int_equal(r.gen.params.n_stop, 1);
    assert_string_equal(r.gen.params.stop[0], "END");
    oai_request_free(&r);
}

static void test_chat_content_parts(void **state) {
    (void)state;
    oai_request r;
    oai_error err;
    assert_int_equal(
        chat("{\"model\":\"m\",\"messages\":["
             "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"one\"}]},"
             "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
             "{\"type\":\"text\",\"text\":\"\"},{\"type\":\"text\",\"text\":\"b\\u00e9\"}]},"
             "{\"role\":\"user\",\"content\":[]}]}",
             &r, &err),
        SHIMMY_OK);
    assert_string_equal(r.gen.messages[0].content, "one");
    assert_string_equal(r.gen.messages[1].content, "a\n\nb\xc3\xa9");
    assert_string_equal(r.gen.messages[2].content, "");
    oai_request_free(&r);
}

static void test_completion_prompts(void **state) {
    (void)state;
    oai_request r;
    oai_error err;
    assert_int_equal(completion("{\"model\":\"m\",\"prompt\":\"Once\",\"max_tokens\":3,"
                                "\"stream\":true,\"echo\":false,\"logprobs\":null,"
                                "\"best_of\":1,\"suffix\":\"\"}",
                                &r, &err),
                     SHIMMY_OK);
    assert_string_equal(r.gen.prompt, "Once");
    assert_null(r.gen.messages);
    assert_int_equal(r.gen.n_messages, 0);
    assert_int_equal(r.gen.params.max_tokens, 3);
    assert_true(r.stream);
    oai_request_free(&r);

    assert_int_equal(completion("{\"model\":\"m\",\"prompt\":[\"Twice\"]}", &r, &err),
                     SHIMMY_OK);
    assert_string_equal(r.gen.prompt, "Twice");
    oai_request_free(&r);

    /* messages are not a completions parameter: ignored */
    assert_int_equal(completion("{\"model\":\"m\",\"prompt\":\"\",\"messages\":5}", &r, &err),
                     SHIMMY_OK);
    assert_string_equal(r.gen.prompt, "");
    oai_request_free(&r);
}

/* ---- client errors ---- */

typedef struct bad_case {
    bool chat;
    const char *body;
    shimmy_err code;
    const char *param;   /* "" = none */
    const char *message; /* substring of the message */
} bad_case;

#define MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]"
#define CHAT(extra) "{\"model\":\"m\"," MSGS extra "}"
#define CMPL(extra) "{\"model\":\"m\",\"prompt\":\"p\"" extra "}"

static const bad_case bad_cases[] = {
    {true, "{", ERR_BAD_JSON, "", "invalid JSON at line 1, column"},
    {true, "", ERR_BAD_JSON, "", "missing request body"},
    {true, "{\"model\":\"m\",}", ERR_BAD_JSON, "", "invalid JSON"},
    {true, CHAT("") " trailing", ERR_BAD_JSON, "", "invalid JSON"},
    {true, "[]", ERR_BAD_JSON, "", "must be a JSON object"},
    {true, "{\"model\":\"m\",\"x\":\"\\u0000\"}", ERR_BAD_JSON, "", "invalid JSON"},
    {true, "{" MSGS "}", ERR_BAD_PARAM, "model", "'model' is required"},
    {true, "{\"model\":null," MSGS "}", ERR_BAD_PARAM, "model", "'model' is required"},
    {true, "{\"model\":5," MSGS "}", ERR_BAD_PARAM, "model", "non-empty string"},
    {true, "{\"model\":\"\"," MSGS "}", ERR_BAD_PARAM, "model", "non-empty string"},
    {true, "{\"model\":\"m\"}", ERR_BAD_PARAM, "messages", "'messages' is required"},
    {true, "{\"model\":\"m\",\"messages\":[]}", ERR_BAD_PARAM, "messages", "non-empty array"},
    {true, "{\"model\":\"m\",\"messages\":\"hi\"}", ERR_BAD_PARAM, "messages", "non-empty array"},
    {true, "{\"model\":\"m\",\"messages\":[5]}", ERR_BAD_PARAM, "messages[0]", "must be an object"},
    {true, "{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}", ERR_BAD_PARAM,
     "messages[0].role", "'messages[0].role' must be a string"},
    {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"},"
           "{\"role\":\"bot\",\"content\":\"x\"}]}",
     ERR_BAD_PARAM, "messages[1].role", "must be one of system, user, assistant, developer"},
    {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}",
     ERR_BAD_PARAM, "messages[0].role", "tool messages are not supported"},
    {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}", ERR_BAD_PARAM,
     "messages[0].content", "'messages[0].content' is required"},
    {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":null}]}",
     ERR_BAD_PARAM, "messages[0].content", "is required"},
    {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}", ERR_BAD_PARAM,
     "messages[0].content", "must be a string or an array of content parts"},
    {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
           "\"text\":\"a\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]}",
     ERR_BAD_PARAM, "messages[0].content[1].type", "'image_url' is not supported"},
    {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[\"a\"]}]}",
     ERR_BAD_PARAM, "messages[0].content[0]", "must be an object"},
    {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}]}",
     ERR_BAD_PARAM, "messages[0].content[0].type", "must be a string"},
    {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}",
     ERR_BAD_PARAM, "messages[0].content[0].text", "must be a string"},
    {true, CHAT(",\"temperature\":\"hot\""), ERR_BAD_PARAM, "temperature",
     "'temperature' must be a number between 0 and 2"},
    {true, CHAT(",\"temperature\":2.5"), ERR_BAD_PARAM, "temperature", "between 0 and 2"},
    {true, CHAT(",\"temperature\":-0.1"), ERR_BAD_PARAM, "temperature", "between 0 and 2"},
    {true, CHAT(",\"top_p\":1.5"), ERR_BAD_PARAM, "top_p",
     "'top_p' must be a number between 0 and 1"},
    {true, CHAT(",\"min_p\":-1"), ERR_BAD_PARAM, "min_p", "between 0 and 1"},
    {true, CHAT(",\"repeat_penalty\":0"), ERR_BAD_PARAM, "repeat_penalty", "greater than 0"},
    {true, CHAT(",\"presence_penalty\":3"), ERR_BAD_PARAM, "presence_penalty", "between -2 and 2"},
    {true, CHAT(",\"frequency_penalty\":-2.5"), ERR_BAD_PARAM, "frequency_penalty",
     "between -2 and 2"},
    {true, CHAT(",\"top_k\":-1"), ERR_BAD_PARAM, "top_k", "'top_k' must be an integer >= 0"},
    {true, CHAT(",\"top_k\":1.5"), ERR_BAD_PARAM, "top_k", "an integer"},
    {true, CHAT(",\"repeat_last_n\":-1"), ERR_BAD_PARAM, "repeat_last_n", "an integer"},
    {true, CHAT(",\"max_tokens\":0"), ERR_BAD_PARAM, "max_tokens",
     "'max_tokens' must be an integer between 1 and 1048576"},
    {true, CHAT(",\"max_tokens\":-5"), ERR_BAD_PARAM, "max_tokens", "between 1 and"},
    {true, CHAT(",\"max_tokens\":2000000"), ERR_BAD_PARAM, "max_tokens", "between 1 and"},
    {true, CHAT(",\"max_tokens\":\"10\""), ERR_BAD_PARAM, "max_tokens", "an integer"},
    {true, CHAT(",\"max_completion_tokens\":0"), ERR_BAD_PARAM, "max_completion_tokens",
     "between 1 and"},
    {true, CHAT(",\"seed\":1.5"), ERR_BAD_PARAM, "seed", "'seed' must be an integer"},
    {true, CHAT(",\"seed\":\"x\""), ERR_BAD_PARAM, "seed", "must be an integer"},
    {true, CHAT(",\"stream\":\"yes\""), ERR_BAD_PARAM, "stream", "'stream' must be a boolean"},
    {true, CHAT(",\"stream\":1"), ERR_BAD_PARAM, "stream", "must be a boolean"},
    {true, CHAT(",\"stream_options\":5"), ERR_BAD_PARAM, "stream_options", "must be an object"},
    {true, CHAT(",\"stream_options\":{\"include_usage\":\"x\"}"), ERR_BAD_PARAM,
     "stream_options.include_usage", "must be a boolean"},
    {true, CHAT(",\"stop\":5"), ERR_BAD_PARAM, "stop", "a string or an array of strings"},
    {true, CHAT(",\"stop\":[\"a\",1]"), ERR_BAD_PARAM, "stop[1]", "'stop[1]' must be a string"},
    {true, CHAT(",\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\","
                "\"12\",\"13\",\"14\",\"15\",\"16\",\"17\"]"),
     ERR_BAD_PARAM, "stop", "at most 16 strings"},
    {true, CHAT(",\"n\":2"), ERR_BAD_PARAM, "n", "n > 1 is not supported"},
    {true, CHAT(",\"n\":0"), ERR_BAD_PARAM, "n", "'n' must be an integer >= 1"},
    {true, CHAT(",\"logprobs\":true"), ERR_BAD_PARAM, "logprobs", "logprobs are not supported"},
    {true, CHAT(",\"logprobs\":\"x\""), ERR_BAD_PARAM, "logprobs", "must be a boolean"},
    {true, CHAT(",\"top_logprobs\":2"), ERR_BAD_PARAM, "top_logprobs", "not supported"},
    {true, CHAT(",\"response_format\":{\"type\":\"xml\"}"), ERR_BAD_PARAM,
     "response_format.type", "'xml' is not supported"},
    {true, CHAT(",\"response_format\":{\"type\":\"json_schema\"}"), ERR_BAD_PARAM,
     "response_format.json_schema", "must be an object with a 'schema'"},
    {true, CHAT(",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\"}}"),
     ERR_BAD_PARAM, "response_format.json_schema.schema", "must be a JSON schema object"},
    {true, CHAT(",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":"
                "{\"type\":\"integer\",\"minimum\":0}}}"),
     ERR_BAD_PARAM, "response_format",
     "response_format.json_schema.schema: schema keyword 'minimum' is not supported (at the root)"},
    {true, CHAT(",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":"
                "{},\"strict\":\"yes\"}}"),
     ERR_BAD_PARAM, "response_format.json_schema.strict", "must be a boolean"},
    {true, CHAT(",\"response_format\":\"text\""), ERR_BAD_PARAM, "response_format",
     "must be an object"},
    {true, CHAT(",\"tools\":[{\"type\":\"function\"}]"), ERR_BAD_PARAM, "tools",
     "not supported"},
    {false, "{\"model\":\"m\"}", ERR_BAD_PARAM, "prompt", "'prompt' is required"},
    {false, "{\"prompt\":\"p\"}", ERR_BAD_PARAM, "model", "'model' is required"},
    {false, "{\"model\":\"m\",\"prompt\":[1,2,3]}", ERR_BAD_PARAM, "prompt",
     "token id prompts are not supported"},
    {false, "{\"model\":\"m\",\"prompt\":[[1,2]]}", ERR_BAD_PARAM, "prompt", "token id"},
    {false, "{\"model\":\"m\",\"prompt\":[\"a\",\"b\"]}", ERR_BAD_PARAM, "prompt",
     "more than one prompt"},
    {false, "{\"model\":\"m\",\"prompt\":[]}", ERR_BAD_PARAM, "prompt", "must be a string"},
    {false, "{\"model\":\"m\",\"prompt\":5}", ERR_BAD_PARAM, "prompt", "must be a string"},
    {false, CMPL(",\"echo\":true"), ERR_BAD_PARAM, "echo", "echo is not supported"},
    {false, CMPL(",\"logprobs\":2"), ERR_BAD_PARAM, "logprobs", "not supported"},
    {false, CMPL(",\"best_of\":2"), ERR_BAD_PARAM, "best_of", "not supported"},
    {false, CMPL(",\"suffix\":\"x\""), ERR_BAD_PARAM, "suffix", "not supported"},
    {false, CMPL(",\"temperature\":3"), ERR_BAD_PARAM, "temperature", "between 0 and 2"},
    {false, CMPL(",\"n\":3"), ERR_BAD_PARAM, "n", "n > 1 is not supported"},
};

static void test_bad_requests(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        oai_request r;
        oai_error err;
        shimmy_err e = c->chat ? chat(c->body, &r, &err) : completion(c->body, &r, &err);
        if (e != c->code || strcmp(err.param, c->param) != 0 ||
            strstr(err.message, c->message) == NULL) {
            print_error("case %zu (%s): got %d param '%s' message '%s'\n", i, c->body, (int)e,
                        err.param, err.message);
            fail();
        }
        assert_int_equal(err.code, c->code);
    }
}

/* response_format: text → none, json_object → the generic grammar, json_schema → its own. */
static void test_response_format(void **state) {
    (void)state;
    oai_request r;
    oai_error err;
    assert_int_equal(chat(CHAT(",\"response_format\":{\"type\":\"text\"}"), &r, &err), SHIMMY_OK);
    assert_null(r.gen.params.grammar);
    oai_request_free(&r);
    assert_int_equal(chat(CHAT(",\"response_format\":{\"type\":\"json_object\"}"), &r, &err),
                     SHIMMY_OK);
    assert_ptr_equal(r.gen.params.grammar, api_json_grammar);
    oai_request_free(&r);
    assert_int_equal(chat(CHAT(",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
                               "{\"name\":\"n\",\"strict\":true,\"schema\":{\"type\":"
                               "\"object\",\"properties\":{\"ok\":{\"type\":\"boolean\"}},"
                               "\"required\":[\"ok\"],\"additionalProperties\":false}}}"),
                          &r, &err),
                     SHIMMY_OK);
    assert_non_null(r.grammar);
    assert_ptr_equal(r.gen.params.grammar, r.grammar);
    assert_non_null(strstr(r.grammar, "root ::= \"{\" space \"\\\"ok\\\"\" \":\" space boolean "
                                      "space \"}\"\n"));
    oai_request_free(&r);
}

static void test_bad_stop_too_long(void **state) {
    (void)state;
    char body[1024];
    char stop[LIM_STOP_BYTES + 2];
    oai_request r;
    oai_error err;
    memset(stop, 'x', sizeof stop - 1);
    stop[sizeof stop - 1] = '\0';
    snprintf(body, sizeof body, CHAT(",\"stop\":[\"ok\",\"%s\"]"), stop);
    assert_int_equal(chat(body, &r, &err), ERR_BAD_PARAM);
    assert_string_equal(err.param, "stop[1]");
    assert_non_null(strstr(err.message, "longer than 256 bytes"));
    stop[LIM_STOP_BYTES] = '\0'; /* exactly the limit is fine */
    snprintf(body, sizeof body, CHAT(",\"stop\":\"%s\""), stop);
    assert_int_equal(chat(body, &r, &err), SHIMMY_OK);
    assert_int_equal(r.gen.params.n_stop, 1);
    oai_request_free(&r);
}

static void test_bad_too_deep(void **state) {
    (void)state;
    char body[512];
    oai_request r;
    oai_error err;
    size_t n = 0;
    n += (size_t)snprintf(body, sizeof body, "{\"model\":\"m\",\"x\":");
    for (int i = 0; i < LIM_JSON_DEPTH + 1; i++)
        body[n++] = '[';
    for (int i = 0; i < LIM_JSON_DEPTH + 1; i++)
        body[n++] = ']';
    body[n++] = '}';
    body[n] = '\0';
    assert_int_equal(chat(body, &r, &err), ERR_BAD_JSON);
    assert_non_null(strstr(err.message, "nested deeper than 64"));
    /* brackets inside strings do not count */
    char ok[512];
    snprintf(ok, sizeof ok, CHAT(",\"x\":\"%s\""),
             "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[");
    assert_int_equal(chat(ok, &r, &err), SHIMMY_OK);
    oai_request_free(&r);
}

static void test_bad_too_many_messages(void **state) {
    (void)state;
    buf b;
    oai_request r;
    oai_error err;
    buf_init(&b, 1u << 20);
    assert_int_equal(buf_puts(&b, "{\"model\":\"m\",\"messages\":["), SHIMMY_OK);
    for (int i = 0; i <= LIM_MESSAGES; i++)
        assert_int_equal(buf_puts(&b, i ? ",{\"role\":\"user\",\"content\":\"x\"}"
                                        : "{\"role\":\"user\",\"content\":\"x\"}"),
                         SHIMMY_OK);
    assert_int_equal(buf_puts(&b, "]}"), SHIMMY_OK);
    gen_params d = test_defaults();
    assert_int_equal(oai_parse_chat(b.data, b.len, &d, &r, &err), ERR_BAD_PARAM);
    assert_string_equal(err.param, "messages");
    buf_free(&b);
}

/* ---- writers ---- */

static oai_meta test_meta(bool chat_obj, bool include_usage) {
    oai_meta m;
    memset(&m, 0, sizeof m);
    m.chat = chat_obj;
    m.include_usage = include_usage;
    m.created = 123;
    snprintf(m.id, sizeof m.id, "%s", chat_obj ? "chatcmpl-abc" : "cmpl-abc");
    snprintf(m.model, sizeof m.model, "org/m:q4");
    return m;
}

static gen_status test_status(void) {
    gen_status st;
    memset(&st, 0, sizeof st);
    st.done = true;
    st.finish = FINISH_STOP;
    st.prompt_tokens = 10;
    st.cached_tokens = 4;
    st.completion_tokens = 3;
    return st;
}

/* Checks that every `data: ` line but [DONE] carries valid JSON. */
static void assert_sse_json(const char *s) {
    while ((s = strstr(s, "data: ")) != NULL) {
        s += 6;
        const char *end = strstr(s, "\n\n");
        assert_non_null(end);
        if (strncmp(s, "[DONE]", 6) != 0) {
            json_error_t je;
            json_t *j = json_loadb(s, (size_t)(end - s), 0, &je);
            if (j == NULL)
                print_error("bad JSON: %.*s (%s)\n", (int)(end - s), s, je.text);
            assert_non_null(j);
            json_decref(j);
        }
        s = end + 2;
    }
}

#define HEAD_CHUNK "{\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion.chunk\"," \
                   "\"created\":123," \
                   "\"model\":\"org/m:q4\"," FP ","
#define HEAD_TEXT "{\"id\":\"cmpl-abc\",\"object\":\"text_completion\",\"created\":123," \
                  "\"model\":\"org/m:q4\"," FP ","
#define USAGE "{\"prompt_tokens\":10,\"completion_tokens\":3,\"total_tokens\":13," \
              "\"prompt_tokens_details\":{\"cached_tokens\":4}}"

static void test_error_json(void **state) {
    (void)state;
    buf b;
    buf_init(&b, 4096);
    assert_int_equal(oai_error_json(ERR_BAD_PARAM, "'temperature' must be x", "temperature", &b),
                     SHIMMY_OK);
    assert_string_equal(buf_str(&b),
                        "{\"error\":{\"message\":\"'temperature' must be x\",\"type\":"
                        "\"invalid_request_error\",\"param\":\"temperature\",\"code\":"
                        "\"invalid_value\"}}");
    buf_reset(&b);
    assert_int_equal(oai_error_json(ERR_OVERLOADED, NULL, NULL, &b), SHIMMY_OK);
    assert_string_equal(buf_str(&b),
                        "{\"error\":{\"message\":\"server is overloaded, retry later\",\"type\":"
                        "\"server_error\",\"param\":null,\"code\":\"server_overloaded\"}}");
    buf_reset(&b);
    assert_int_equal(oai_error_json(ERR_USAGE, "a \"q\"", "", &b), SHIMMY_OK);
    assert_string_equal(buf_str(&b), "{\"error\":{\"message\":\"a \\\"q\\\"\",\"type\":"
                                     "\"invalid_request_error\",\"param\":null,\"code\":null}}");
    buf_reset(&b);
    assert_int_equal(oai_sse_error(ERR_INTERNAL, "boom", &b), SHIMMY_OK);
    assert_string_equal(buf_str(&b), "data: {\"error\":{\"message\":\"boom\",\"type\":"
                                     "\"server_error\",\"param\":null,\"code\":"
                                     "\"internal_error\"}}\n\n");
    buf_free(&b);
}

static void test_response_chat(void **state) {
    (void)state;
    buf b;
    oai_meta m = test_meta(true, false);
    gen_status st = test_status();
    buf_init(&b, 4096);
    assert_int_equal(oai_response(&m, "Hi \"you\"\n", 9, "stop", &st, &b), SHIMMY_OK);
    assert_string_equal(buf_str(&b),
                        "{\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion\",\"created\":123,"
                        "\"model\":\"org/m:q4\"," FP ",\"choices\":[{\"index\":0,\"message\":{"
                        "\"role\":\"assistant\",\"content\":\"Hi \\\"you\\\"\\n\"},\"logprobs\":"
                        "null,\"finish_reason\":\"stop\"}],\"usage\":" USAGE "}");
    buf_free(&b);
}

static void test_response_completion(void **state) {
    (void)state;
    buf b;
    oai_meta m = test_meta(false, true);
    gen_status st = test_status();
    buf_init(&b, 4096);
    assert_int_equal(oai_response(&m, "abc", 3, "length", &st, &b), SHIMMY_OK);
    assert_string_equal(buf_str(&b),
                        "{\"id\":\"cmpl-abc\",\"object\":\"text_completion\",\"created\":123,"
                        "\"model\":\"org/m:q4\"," FP ",\"choices\":[{\"text\":\"abc\",\"index\":0,"
                        "\"logprobs\":null,\"finish_reason\":\"length\"}],\"usage\":" USAGE "}");
    buf_free(&b);
}

static void test_sse_chat(void **state) {
    (void)state;
    buf b;
    oai_meta m = test_meta(true, false);
    buf_init(&b, 4096);
    assert_int_equal(oai_sse_first(&m, &b), SHIMMY_OK);
    assert_string_equal(buf_str(&b), "data: " HEAD_CHUNK "\"choices\":[{\"index\":0,\"delta\":{"
                                     "\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,"
                                     "\"finish_reason\":null}]}\n\n");
    buf_reset(&b);
    assert_int_equal(oai_sse_text(&m, "Hel", 3, &b), SHIMMY_OK);
    assert_string_equal(buf_str(&b), "data: " HEAD_CHUNK "\"choices\":[{\"index\":0,\"delta\":{"
                                     "\"content\":\"Hel\"},\"logprobs\":null,"
                                     "\"finish_reason\":null}]}\n\n");
    buf_reset(&b);
    assert_int_equal(oai_sse_finish(&m, "stop", &b), SHIMMY_OK);
    assert_string_equal(buf_str(&b), "data: " HEAD_CHUNK "\"choices\":[{\"index\":0,\"delta\":{},"
                                     "\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\n");
    buf_reset(&b);
    assert_int_equal(oai_sse_done(&b), SHIMMY_OK);
    assert_string_equal(buf_str(&b), "data: [DONE]\n\n");
    buf_free(&b);
}

static void test_sse_chat_usage(void **state) {
    (void)state;
    buf b;
    oai_meta m = test_meta(true, true);
    gen_status st = test_status();
    buf_init(&b, 8192);
    assert_int_equal(oai_sse_text(&m, "x", 1, &b), SHIMMY_OK);
    assert_string_equal(buf_str(&b), "data: " HEAD_CHUNK "\"choices\":[{\"index\":0,\"delta\":{"
                                     "\"content\":\"x\"},\"logprobs\":null,"
                                     "\"finish_reason\":null}],\"usage\":null}\n\n");
    buf_reset(&b);
    assert_int_equal(oai_sse_usage(&m, &st, &b), SHIMMY_OK);
    assert_string_equal(buf_str(&b),
                        "data: " HEAD_CHUNK "\"choices\":[],\"usage\":" USAGE "}\n\n");
    /* a whole stream in one buf: every line is JSON */
    buf_reset(&b);
    assert_int_equal(oai_sse_first(&m, &b), SHIMMY_OK);
    assert_int_equal(oai_sse_text(&m, "a\tb", 3, &b), SHIMMY_OK);
    assert_int_equal(oai_sse_finish(&m, "length", &b), SHIMMY_OK);
    assert_int_equal(oai_sse_usage(&m, &st, &b), SHIMMY_OK);
    assert_int_equal(oai_sse_done(&b), SHIMMY_OK);
    assert_sse_json(buf_str(&b));
    buf_free(&b);
}

static void test_sse_completion(void **state) {
    (void)state;
    buf b;
    oai_meta m = test_meta(false, false);
    buf_init(&b, 4096);
    assert_int_equal(oai_sse_first(&m, &b), SHIMMY_OK);
    assert_int_equal(b.len, 0); /* no role chunk for text completions */
    assert_int_equal(oai_sse_text(&m, "tok", 3, &b), SHIMMY_OK);
    assert_string_equal(buf_str(&b), "data: " HEAD_TEXT "\"choices\":[{\"text\":\"tok\","
                                     "\"index\":0,\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    buf_reset(&b);
    assert_int_equal(oai_sse_finish(&m, "stop", &b), SHIMMY_OK);
    assert_string_equal(buf_str(&b), "data: " HEAD_TEXT "\"choices\":[{\"text\":\"\","
                                     "\"index\":0,\"logprobs\":null,\"finish_reason\":\"stop\"}]}"
                                     "\n\n");
    buf_free(&b);
}

static void test_escaping_and_utf8(void **state) {
    (void)state;
    buf b;
    jsonw w;
    buf_init(&b, 4096);
    jsonw_begin(&w, &b);
    static const char in[] = "a\"b\\c\n\r\t\b\f\x01\x1f\x7f/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    jsonw_str(&w, in, sizeof in - 1);
    assert_int_equal(jsonw_end(&w), SHIMMY_OK);
    assert_string_equal(buf_str(&b), "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f\x7f/"
                                     "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    /* invalid bytes, a truncated sequence, an overlong, a surrogate: each bad byte -> U+FFFD */
    buf_reset(&b);
    jsonw_begin(&w, &b);
    jsonw_str(&w, "x\xffy\xe2\x82", 5);
    jsonw_str(&w, "\xc0\xaf", 2);
    jsonw_str(&w, "\xed\xa0\x80", 3);
    assert_int_equal(jsonw_end(&w), SHIMMY_OK);
    assert_string_equal(buf_str(&b), "\"x\xef\xbf\xbdy\xef\xbf\xbd\xef\xbf\xbd\""
                                     "\"\xef\xbf\xbd\xef\xbf\xbd\""
                                     "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    /* embedded NUL is escaped */
    buf_reset(&b);
    jsonw_begin(&w, &b);
    jsonw_str(&w, "a\0b", 3);
    assert_int_equal(jsonw_end(&w), SHIMMY_OK);
    assert_string_equal(buf_str(&b), "\"a\\u0000b\"");
    buf_free(&b);
}

static void test_writer_rolls_back_on_overflow(void **state) {
    (void)state;
    buf b;
    oai_meta m = test_meta(true, false);
    buf_init(&b, 64);
    assert_int_equal(buf_puts(&b, "keep"), SHIMMY_OK);
    assert_int_equal(oai_sse_text(&m, "x", 1, &b), ERR_TOO_LARGE);
    assert_string_equal(buf_str(&b), "keep");
    assert_int_equal(oai_sse_error(ERR_INTERNAL, "a long message that does not fit", &b),
                     ERR_TOO_LARGE);
    assert_string_equal(buf_str(&b), "keep");
    buf_free(&b);
}

static void test_meta_init(void **state) {
    (void)state;
    oai_meta a, c;
    oai_meta_init(&a, true, "m", true);
    oai_meta_init(&c, false, "n", false);
    assert_int_equal(strncmp(a.id, "chatcmpl-", 9), 0);
    assert_int_equal(strlen(a.id), 9 + 24);
    assert_int_equal(strspn(a.id + 9, "0123456789abcdef"), 24);
    assert_int_equal(strncmp(c.id, "cmpl-", 5), 0);
    assert_string_not_equal(a.id + 9, c.id + 5);
    assert_true(a.chat && a.include_usage && !c.chat && !c.include_usage);
    assert_string_equal(a.model, "m");
    assert_true(a.created > 1600000000 && a.created <= clock_wall_s());
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_minimal_keeps_defaults),
        cmocka_unit_test(test_chat_all_params),
        cmocka_unit_test(test_chat_max_completion_tokens_wins),
        cmocka_unit_test(test_chat_nulls_integral_reals_seed),
        cmocka_unit_test(test_chat_content_parts),
        cmocka_unit_test(test_completion_prompts),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_response_format),
        cmocka_unit_test(test_bad_stop_too_long),
        cmocka_unit_test(test_bad_too_deep),
        cmocka_unit_test(test_bad_too_many_messages),
        cmocka_unit_test(test_error_json),
        cmocka_unit_test(test_response_chat),
        cmocka_unit_test(test_response_completion),
        cmocka_unit_test(test_sse_chat),
        cmocka_unit_test(test_sse_chat_usage),
        cmocka_unit_test(test_sse_completion),
        cmocka_unit_test(test_escaping_and_utf8),
        cmocka_unit_test(test_writer_rolls_back_on_overflow),
        cmocka_unit_test(test_meta_init),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
