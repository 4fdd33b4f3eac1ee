/* Unit tests for api/openai_wire (and api/jsonw, api/gen's sinks and answer): request parsing
 * into an api_call with every parameter, the engine's chat JSON (messages, tool calls, tools,
 * tool_choice, reasoning fields) and every client error, and the exact JSON of responses and
 * SSE chunks (content, reasoning_content, tool_calls). No engine, no registry, no sockets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/json_in.h"
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

/* The body of the last call parsed (it must outlive the call) and its chat JSON, parsed. */
static json_t *last_root, *last_chat;

static shimmy_err parse_body(bool is_chat, const char *body, size_t len, api_call *c,
                             api_error *err) {
    gen_params d = test_defaults();
    json_t *root = NULL;
    api_error_clear(err);
    memset(c, 0, sizeof *c);
    shimmy_err e = api_json_load_object(body, len, &root, err->message, sizeof err->message);
    if (e != SHIMMY_OK)
        return err->code = e;
    e = is_chat ? oai_parse_chat(root, &d, c, err) : oai_parse_completion(root, &d, c, err);
    if (e != SHIMMY_OK) {
        json_decref(root);
        return e;
    }
    last_root = root;
    last_chat = c->gen.chat_json ? json_loads(c->gen.chat_json, 0, NULL) : NULL;
    return e;
}

static shimmy_err chat(const char *body, api_call *c, api_error *err) {
    return parse_body(true, body, strlen(body), c, err);
}

static shimmy_err completion(const char *body, api_call *c, api_error *err) {
    return parse_body(false, body, strlen(body), c, err);
}

static void call_free(api_call *c) {
    oai_call_free(c);
    json_decref(last_root);
    json_decref(last_chat);
    last_root = last_chat = NULL;
}

#define OW(c) ((oai_wire *)(c).wire)

/* Field key of message i of the last chat JSON, as JSON text ("null" when absent). */
static char *msg_field(size_t i, const char *key) {
    json_t *m = json_array_get(json_object_get(last_chat, "messages"), i);
    json_t *v = json_object_get(m, key);
    return v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : strdup("null");
}

static void assert_msg(size_t i, const char *key, const char *want) {
    char *got = msg_field(i, key);
    if (strcmp(got, want) != 0)
        print_error("messages[%zu].%s: got %s, want %s\n", i, key, got, want);
    assert_string_equal(got, want);
    free(got);
}

static size_t n_msgs(void) {
    return json_array_size(json_object_get(last_chat, "messages"));
}

/* ---- valid requests ---- */

static void test_chat_minimal_keeps_defaults(void **state) {
    (void)state;
    api_call r;
    api_error err;
    gen_params d = test_defaults();
    assert_int_equal(
        chat("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r, &err),
        SHIMMY_OK);
    assert_string_equal(r.model, "m");
    assert_false(r.stream);
    assert_false(OW(r)->meta.include_usage);
    assert_null(r.gen.prompt);
    assert_string_equal(r.gen.chat_json, "{\"messages\":[{\"role\":\"user\",\"content\":"
                                         "\"hi\"}]}");
    assert_null(r.gen.params.json_schema);
    assert_false(r.need_tools);
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
    call_free(&r);
}

static void test_chat_all_params(void **state) {
    (void)state;
    api_call r;
    api_error err;
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
    assert_true(OW(r)->meta.include_usage);
    assert_int_equal(n_msgs(), 4);
    assert_msg(0, "role", "\"system\"");
    assert_msg(1, "role", "\"system\"");
    assert_msg(1, "content", "\"dev\"");
    assert_msg(2, "role", "\"user\"");
    assert_msg(2, "name", "\"bob\"");
    assert_msg(3, "role", "\"assistant\"");
    assert_msg(3, "content", "\"\"");
    assert_false(r.need_tools); /* tools: [] */
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
    call_free(&r);
}

static void test_chat_max_completion_tokens_wins(void **state) {
    (void)state;
    api_call r;
    api_error err;
    assert_int_equal(chat("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                          "\"max_completion_tokens\":5,\"max_tokens\":9}",
                          &r, &err),
                     SHIMMY_OK);
    assert_int_equal(r.gen.params.max_tokens, 5);
    call_free(&r);
}

static void test_chat_nulls_integral_reals_seed(void **state) {
    (void)state;
    api_call r;
    api_error err;
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
    call_free(&r);

    assert_int_equal(chat("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                          "\"seed\":4294967297,\"stop\":\"END\"}",
                          &r, &err),
                     SHIMMY_OK);
    assert_true(r.gen.params.has_seed);
    assert_int_equal(r.gen.params.seed, 1);
    assert_int_equal(r.gen.params.n_stop, 1);
    assert_string_equal(r.gen.params.stop[0], "END");
    call_free(&r);
}

static void test_chat_content_parts(void **state) {
    (void)state;
    api_call r;
    api_error err;
    assert_int_equal(
        chat("{\"model\":\"m\",\"messages\":["
             "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"one\"}]},"
             "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
             "{\"type\":\"text\",\"text\":\"\"},{\"type\":\"text\",\"text\":\"b\\u00e9\"}]},"
             "{\"role\":\"user\",\"content\":[]}]}",
             &r, &err),
        SHIMMY_OK);
    /* text parts pass to the engine as they are (the template joins them as llama-server) */
    assert_msg(0, "content", "[{\"type\":\"text\",\"text\":\"one\"}]");
    assert_msg(1, "content",
               "[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\","
               "\"text\":\"\"},{\"type\":\"text\",\"text\":\"b\xc3\xa9\"}]");
    assert_msg(2, "content", "[]");
    call_free(&r);
}

static void test_completion_prompts(void **state) {
    (void)state;
    api_call r;
    api_error err;
    assert_int_equal(completion("{\"model\":\"m\",\"prompt\":\"Once\",\"max_tokens\":3,"
                                "\"stream\":true,\"echo\":false,\"logprobs\":null,"
                                "\"best_of\":1,\"suffix\":\"\"}",
                                &r, &err),
                     SHIMMY_OK);
    assert_string_equal(r.gen.prompt, "Once");
    assert_null(r.gen.chat_json);
    assert_int_equal(r.gen.params.max_tokens, 3);
    assert_true(r.stream);
    call_free(&r);

    assert_int_equal(completion("{\"model\":\"m\",\"prompt\":[\"Twice\"]}", &r, &err), SHIMMY_OK);
    assert_string_equal(r.gen.prompt, "Twice");
    call_free(&r);

    /* messages are not a completions parameter: ignored */
    assert_int_equal(completion("{\"model\":\"m\",\"prompt\":\"\",\"messages\":5}", &r, &err),
                     SHIMMY_OK);
    assert_string_equal(r.gen.prompt, "");
    call_free(&r);
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
#define TOOL_F "{\"type\":\"function\",\"function\":{\"name\":\"f\"}}"

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
    {true,
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"},"
     "{\"role\":\"bot\",\"content\":\"x\"}]}",
     ERR_BAD_PARAM, "messages[1].role", "must be one of system, user, assistant, developer"},
    {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"function\",\"content\":\"x\"}]}",
     ERR_BAD_PARAM, "messages[0].role", "must be one of system, user, assistant, developer, tool"},
    {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"tool\"}]}", ERR_BAD_PARAM,
     "messages[0].content", "is required"},
    {true,
     "{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"content\":\"x\","
     "\"tool_call_id\":5}]}",
     ERR_BAD_PARAM, "messages[0].tool_call_id", "must be a string"},
    {true,
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\","
     "\"tool_calls\":[]}]}",
     ERR_BAD_PARAM, "messages[0].tool_calls", "on an assistant message"},
    {true,
     "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":"
     "[{\"type\":\"function\",\"function\":{\"arguments\":\"{}\"}}]}]}",
     ERR_BAD_PARAM, "messages[0].tool_calls[0]", "\"name\": string"},
    {true,
     "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":"
     "[{\"type\":\"web\",\"function\":{\"name\":\"f\"}}]}]}",
     ERR_BAD_PARAM, "messages[0].tool_calls[0]", "must be"},
    {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}", ERR_BAD_PARAM,
     "messages[0].content", "'messages[0].content' is required"},
    {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":null}]}", ERR_BAD_PARAM,
     "messages[0].content", "is required"},
    {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}", ERR_BAD_PARAM,
     "messages[0].content", "must be a string or an array of content parts"},
    {true,
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
     "\"text\":\"a\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]}",
     ERR_BAD_PARAM, "messages[0].content[1].image_url.url", "must be a data: URI"},
    {true,
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"video\"}]}]}",
     ERR_BAD_PARAM, "messages[0].content[0].type",
     "'video' is not supported (text, image_url, "
     "input_audio)"},
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
    {true,
     CHAT(",\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\","
          "\"12\",\"13\",\"14\",\"15\",\"16\",\"17\"]"),
     ERR_BAD_PARAM, "stop", "at most 16 strings"},
    {true, CHAT(",\"n\":17"), ERR_BAD_PARAM, "n", "'n' must be an integer between 1 and 16"},
    {true, CHAT(",\"n\":0"), ERR_BAD_PARAM, "n", "'n' must be an integer between 1 and 16"},
    {true, CHAT(",\"logprobs\":true,\"top_logprobs\":21"), ERR_BAD_PARAM, "top_logprobs",
     "'top_logprobs' must be an integer between 0 and 20"},
    {true, CHAT(",\"logprobs\":\"x\""), ERR_BAD_PARAM, "logprobs", "must be a boolean"},
    {true, CHAT(",\"top_logprobs\":2"), ERR_BAD_PARAM, "top_logprobs",
     "needs 'logprobs' to be true"},
    {true, CHAT(",\"response_format\":{\"type\":\"xml\"}"), ERR_BAD_PARAM, "response_format.type",
     "'xml' is not supported"},
    {true, CHAT(",\"response_format\":{\"type\":\"json_schema\"}"), ERR_BAD_PARAM,
     "response_format.json_schema", "must be an object with a 'schema'"},
    {true, CHAT(",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\"}}"),
     ERR_BAD_PARAM, "response_format.json_schema.schema", "must be a JSON schema object"},
    {true,
     CHAT(",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":"
          "{},\"strict\":\"yes\"}}"),
     ERR_BAD_PARAM, "response_format.json_schema.strict", "must be a boolean"},
    {true, CHAT(",\"response_format\":\"text\""), ERR_BAD_PARAM, "response_format",
     "must be an object"},
    {true, CHAT(",\"tools\":[{\"type\":\"function\"}]"), ERR_BAD_PARAM, "tools[0].function",
     "must be an object"},
    {true, CHAT(",\"tools\":{}"), ERR_BAD_PARAM, "tools", "must be an array"},
    {true, CHAT(",\"tools\":[{\"type\":\"retrieval\",\"function\":{\"name\":\"f\"}}]"),
     ERR_BAD_PARAM, "tools[0].type", "must be \"function\""},
    {true, CHAT(",\"tools\":[" TOOL_F ",{\"type\":\"function\",\"function\":{\"name\":\"\"}}]"),
     ERR_BAD_PARAM, "tools[1].function.name", "non-empty string"},
    {true,
     CHAT(",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
          "\"parameters\":[]}}]"),
     ERR_BAD_PARAM, "tools[0].function.parameters", "JSON schema object"},
    {true, CHAT(",\"tools\":[" TOOL_F "],\"tool_choice\":\"always\""), ERR_BAD_PARAM, "tool_choice",
     "'tool_choice' must be"},
    {true,
     CHAT(",\"tools\":[" TOOL_F "],\"tool_choice\":{\"type\":\"function\","
          "\"function\":{\"name\":\"g\"}}"),
     ERR_BAD_PARAM, "tool_choice", "names the function 'g', which is not in 'tools'"},
    {true, CHAT(",\"parallel_tool_calls\":\"yes\""), ERR_BAD_PARAM, "parallel_tool_calls",
     "must be a boolean"},
    {true, CHAT(",\"reasoning_format\":\"think\""), ERR_BAD_PARAM, "reasoning_format",
     "must be \"none\", \"auto\""},
    {true, CHAT(",\"reasoning_effort\":3"), ERR_BAD_PARAM, "reasoning_effort", "must be a string"},
    {true, CHAT(",\"chat_template_kwargs\":[]"), ERR_BAD_PARAM, "chat_template_kwargs",
     "must be an object"},
    {true, CHAT(",\"functions\":[{\"name\":\"f\"}]"), ERR_BAD_PARAM, "functions", "use 'tools'"},
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
    {false, CMPL(",\"logprobs\":-1"), ERR_BAD_PARAM, "logprobs", "between 0 and 20"},
    {false, CMPL(",\"best_of\":2"), ERR_BAD_PARAM, "best_of", "not supported"},
    {false, CMPL(",\"suffix\":\"x\""), ERR_BAD_PARAM, "suffix", "not supported"},
    {false, CMPL(",\"temperature\":3"), ERR_BAD_PARAM, "temperature", "between 0 and 2"},
    {false, CMPL(",\"n\":17"), ERR_BAD_PARAM, "n", "between 1 and 16"},
};

static void test_bad_requests(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        api_call r;
        api_error err;
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

/* response_format: text → none, json_object → any object, json_schema → the schema as it is
 * (the engine converts it: minimum, maximum, pattern, $ref are llama.cpp's to handle). */
static void test_response_format(void **state) {
    (void)state;
    api_call r;
    api_error err;
    assert_int_equal(chat(CHAT(",\"response_format\":{\"type\":\"text\"}"), &r, &err), SHIMMY_OK);
    assert_null(r.gen.params.json_schema);
    call_free(&r);
    assert_int_equal(chat(CHAT(",\"response_format\":{\"type\":\"json_object\"}"), &r, &err),
                     SHIMMY_OK);
    assert_string_equal(r.gen.params.json_schema, "{\"type\":\"object\"}");
    assert_string_equal(r.schema_param, "response_format");
    call_free(&r);
    assert_int_equal(chat(CHAT(",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
                               "{\"name\":\"n\",\"strict\":true,\"schema\":{\"type\":"
                               "\"integer\",\"minimum\":1,\"maximum\":9}}}"),
                          &r, &err),
                     SHIMMY_OK);
    assert_string_equal(r.gen.params.json_schema,
                        "{\"type\":\"integer\",\"minimum\":1,\"maximum\":9}");
    call_free(&r);
}

/* Tools, tool_choice and the reasoning fields pass to the engine as the client sent them;
 * assistant tool calls and tool results become the engine's messages. */
static void test_chat_tools(void **state) {
    (void)state;
    api_call r;
    api_error err;
    const char *body =
        "{\"model\":\"m\",\"messages\":["
        "{\"role\":\"user\",\"content\":\"weather?\"},"
        "{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"hm\","
        "\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
        "\"get\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},"
        "{\"function\":{\"name\":\"get\",\"arguments\":{\"city\":\"Rome\"}}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"sunny\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get\",\"description\":"
        "\"d\",\"parameters\":{\"type\":\"object\"}}}],"
        "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get\"}},"
        "\"parallel_tool_calls\":false,\"reasoning_format\":\"deepseek\","
        "\"reasoning_effort\":\"low\",\"chat_template_kwargs\":{\"enable_thinking\":false},"
        "\"add_generation_prompt\":true}";
    assert_int_equal(chat(body, &r, &err), SHIMMY_OK);
    assert_true(r.need_tools);
    assert_msg(1, "content", "null");
    assert_msg(1, "reasoning_content", "\"hm\"");
    assert_msg(1, "tool_calls",
               "[{\"type\":\"function\",\"function\":{\"name\":\"get\",\"arguments\":"
               "\"{\\\"city\\\":\\\"Paris\\\"}\"},\"id\":\"call_1\"},{\"type\":\"function\","
               "\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"city\\\":\\\"Rome\\\"}\"}}]");
    assert_msg(2, "role", "\"tool\"");
    assert_msg(2, "tool_call_id", "\"call_1\"");
    static const char *const passed[][2] = {
        {"tool_choice", "{\"type\":\"function\",\"function\":{\"name\":\"get\"}}"},
        {"parallel_tool_calls", "false"},
        {"reasoning_format", "\"deepseek\""},
        {"reasoning_effort", "\"low\""},
        {"chat_template_kwargs", "{\"enable_thinking\":false}"},
        {"add_generation_prompt", "true"},
    };
    for (size_t i = 0; i < sizeof passed / sizeof passed[0]; i++) {
        char *v =
            json_dumps(json_object_get(last_chat, passed[i][0]), JSON_ENCODE_ANY | JSON_COMPACT);
        assert_non_null(v);
        assert_string_equal(v, passed[i][1]);
        free(v);
    }
    assert_int_equal(json_array_size(json_object_get(last_chat, "tools")), 1);
    call_free(&r);
    /* tool_choice none: the template need not express tools */
    assert_int_equal(chat(CHAT(",\"tools\":[" TOOL_F "],\"tool_choice\":\"none\""), &r, &err),
                     SHIMMY_OK);
    assert_false(r.need_tools);
    call_free(&r);
}

static void test_bad_stop_too_long(void **state) {
    (void)state;
    char body[1024];
    char stop[LIM_STOP_BYTES + 2];
    api_call r;
    api_error err;
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
    call_free(&r);
}

static void test_bad_too_deep(void **state) {
    (void)state;
    char body[512];
    api_call r;
    api_error err;
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
    call_free(&r);
}

static void test_bad_too_many_messages(void **state) {
    (void)state;
    buf b;
    api_call r;
    api_error err;
    buf_init(&b, 1u << 20);
    assert_int_equal(buf_puts(&b, "{\"model\":\"m\",\"messages\":["), SHIMMY_OK);
    for (int i = 0; i <= LIM_MESSAGES; i++)
        assert_int_equal(buf_puts(&b, i ? ",{\"role\":\"user\",\"content\":\"x\"}"
                                        : "{\"role\":\"user\",\"content\":\"x\"}"),
                         SHIMMY_OK);
    assert_int_equal(buf_puts(&b, "]}"), SHIMMY_OK);
    assert_int_equal(parse_body(true, b.data, b.len, &r, &err), ERR_BAD_PARAM);
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

#define HEAD_CHUNK                                                                                 \
    "{\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion.chunk\","                               \
    "\"created\":123,"                                                                             \
    "\"model\":\"org/m:q4\"," FP ","
#define HEAD_TEXT                                                                                  \
    "{\"id\":\"cmpl-abc\",\"object\":\"text_completion\",\"created\":123,"                         \
    "\"model\":\"org/m:q4\"," FP ","
#define USAGE                                                                                      \
    "{\"prompt_tokens\":10,\"completion_tokens\":3,\"total_tokens\":13,"                           \
    "\"prompt_tokens_details\":{\"cached_tokens\":4}}"

/* A call of the writers' tests: wire w with test_meta. */
static api_call test_call(oai_wire *w, bool chat_obj, bool include_usage) {
    api_call c;
    memset(&c, 0, sizeof c);
    memset(w, 0, sizeof *w);
    w->meta = test_meta(chat_obj, include_usage);
    c.wire = w;
    c.model = "org/m:q4";
    return c;
}

static gen_event ev(gen_event_kind k, int index, const char *id, const char *name,
                    const char *text) {
    gen_event e = {.kind = k,
                   .tool_index = index,
                   .tool_id = id,
                   .tool_name = name,
                   .text = text,
                   .len = strlen(text)};
    return e;
}

static gen_events evs(gen_event *v, size_t n) {
    gen_events e;
    memset(&e, 0, sizeof e);
    e.ev = v;
    e.n = n;
    return e;
}

/* Runs a row writer into b (framing f) and checks it wrote want. */
#define WRITES(f, b, call, want)                                                                   \
    do {                                                                                           \
        api_sink s_;                                                                               \
        buf_reset(b);                                                                              \
        api_sink_init(&s_, (b), (f));                                                              \
        assert_int_equal((call), SHIMMY_OK);                                                       \
        api_sink_free(&s_);                                                                        \
        assert_string_equal(buf_str(b), (want));                                                   \
    } while (0)
#define SINK (&s_)

static void test_error_json(void **state) {
    (void)state;
    buf b;
    api_error e;
    buf_init(&b, 4096);
    api_fail(&e, ERR_BAD_PARAM, "temperature", "'temperature' must be x");
    WRITES(API_FRAME_NONE, &b, oai_chat_proto.error(&e, SINK),
           "{\"error\":{\"message\":\"'temperature' must be x\",\"type\":"
           "\"invalid_request_error\",\"param\":\"temperature\",\"code\":\"invalid_value\"}}");
    api_error_clear(&e);
    e.code = ERR_OVERLOADED;
    WRITES(API_FRAME_NONE, &b, oai_chat_proto.error(&e, SINK),
           "{\"error\":{\"message\":\"server is overloaded, retry later\",\"type\":"
           "\"server_error\",\"param\":null,\"code\":\"server_overloaded\"}}");
    api_fail(&e, ERR_USAGE, NULL, "a \"q\"");
    WRITES(API_FRAME_NONE, &b, oai_chat_proto.error(&e, SINK),
           "{\"error\":{\"message\":\"a \\\"q\\\"\",\"type\":"
           "\"invalid_request_error\",\"param\":null,\"code\":null}}");
    api_fail(&e, ERR_INTERNAL, NULL, "boom");
    WRITES(API_FRAME_SSE, &b, oai_chat_proto.error(&e, SINK),
           "data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\",\"param\":null,"
           "\"code\":\"internal_error\"}}\n\n");
    buf_free(&b);
}

static shimmy_err answer_of(api_answer *a, gen_event *v, size_t n) {
    gen_events e = evs(v, n);
    api_answer_init(a);
    return api_answer_add(a, &e);
}

static void test_response_chat(void **state) {
    (void)state;
    buf b;
    oai_wire w;
    api_call c = test_call(&w, true, false);
    gen_status st = test_status();
    api_answer a;
    gen_event v[] = {ev(GEN_EV_CONTENT, 0, NULL, NULL, "Hi \"you\"\n")};
    buf_init(&b, 4096);
    assert_int_equal(answer_of(&a, v, 1), SHIMMY_OK);
    WRITES(API_FRAME_NONE, &b, oai_chat_proto.whole(&c, &a, &st, SINK),
           "{\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion\",\"created\":123,"
           "\"model\":\"org/m:q4\"," FP ",\"choices\":[{\"index\":0,\"message\":{"
           "\"role\":\"assistant\",\"content\":\"Hi \\\"you\\\"\\n\"},\"logprobs\":"
           "null,\"finish_reason\":\"stop\"}],\"usage\":" USAGE "}");
    api_answer_free(&a);
    buf_free(&b);
}

/* Only calls: content null, tool_calls with string arguments, finish_reason tool_calls. */
static void test_response_chat_tools(void **state) {
    (void)state;
    buf b;
    oai_wire w;
    api_call c = test_call(&w, true, false);
    gen_status st = test_status();
    api_answer a;
    gen_event v[] = {ev(GEN_EV_REASONING, 0, NULL, NULL, "think"),
                     ev(GEN_EV_TOOL, 0, "call_x", "get", "{\"city\":"),
                     ev(GEN_EV_TOOL, 0, NULL, NULL, "\"Paris\"}"),
                     ev(GEN_EV_TOOL, 1, "call_y", "put", "{}")};
    st.finish = FINISH_TOOL_CALLS;
    buf_init(&b, 4096);
    assert_int_equal(answer_of(&a, v, 4), SHIMMY_OK);
    assert_int_equal(a.n_calls, 2);
    WRITES(API_FRAME_NONE, &b, oai_chat_proto.whole(&c, &a, &st, SINK),
           "{\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion\",\"created\":123,"
           "\"model\":\"org/m:q4\"," FP ",\"choices\":[{\"index\":0,\"message\":{"
           "\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"think\","
           "\"tool_calls\":[{\"id\":\"call_x\",\"type\":\"function\",\"function\":{\"name\":"
           "\"get\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},{\"id\":\"call_y\",\"type\":"
           "\"function\",\"function\":{\"name\":\"put\",\"arguments\":\"{}\"}}]},"
           "\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],\"usage\":" USAGE "}");
    api_answer_free(&a);
    buf_free(&b);
}

static void test_response_completion(void **state) {
    (void)state;
    buf b;
    oai_wire w;
    api_call c = test_call(&w, false, true);
    gen_status st = test_status();
    api_answer a;
    gen_event v[] = {ev(GEN_EV_CONTENT, 0, NULL, NULL, "abc")};
    st.finish = FINISH_LENGTH;
    buf_init(&b, 4096);
    assert_int_equal(answer_of(&a, v, 1), SHIMMY_OK);
    WRITES(API_FRAME_NONE, &b, oai_completion_proto.whole(&c, &a, &st, SINK),
           "{\"id\":\"cmpl-abc\",\"object\":\"text_completion\",\"created\":123,"
           "\"model\":\"org/m:q4\"," FP ",\"choices\":[{\"text\":\"abc\",\"index\":0,"
           "\"logprobs\":null,\"finish_reason\":\"length\"}],\"usage\":" USAGE "}");
    api_answer_free(&a);
    buf_free(&b);
}

#define DELTA(d, f)                                                                                \
    "data: " HEAD_CHUNK "\"choices\":[{\"index\":0,\"delta\":{" d "},"                             \
    "\"logprobs\":null,\"finish_reason\":" f "}]}\n\n"

static void test_sse_chat(void **state) {
    (void)state;
    buf b;
    oai_wire w;
    api_call c = test_call(&w, true, false);
    gen_status st = test_status();
    gen_event v[] = {ev(GEN_EV_CONTENT, 0, NULL, NULL, "Hel")};
    gen_events e = evs(v, 1);
    buf_init(&b, 4096);
    WRITES(API_FRAME_SSE, &b, oai_chat_proto.start(&c, SINK),
           DELTA("\"role\":\"assistant\",\"content\":\"\"", "null"));
    WRITES(API_FRAME_SSE, &b, oai_chat_proto.events(&c, &e, SINK),
           DELTA("\"content\":\"Hel\"", "null"));
    WRITES(API_FRAME_SSE, &b, oai_chat_proto.end(&c, &st, SINK),
           DELTA("", "\"stop\"") "data: [DONE]\n\n");
    buf_free(&b);
}

/* Streamed calls: index; id, type, name in a call's first delta; arguments in pieces. */
static void test_sse_chat_tools(void **state) {
    (void)state;
    buf b;
    oai_wire w;
    api_call c = test_call(&w, true, false);
    gen_status st = test_status();
    gen_event v[] = {ev(GEN_EV_REASONING, 0, NULL, NULL, "hm"),
                     ev(GEN_EV_TOOL, 0, "call_x", "get", "{\"a\""),
                     ev(GEN_EV_TOOL, 0, NULL, NULL, ":1}")};
    gen_events e = evs(v, 3);
    buf_init(&b, 8192);
    WRITES(API_FRAME_SSE, &b, oai_chat_proto.events(&c, &e, SINK),
           DELTA("\"reasoning_content\":\"hm\"", "null")
               DELTA("\"tool_calls\":[{\"index\":0,\"id\":\"call_x\",\"type\":\"function\","
                     "\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"a\\\"\"}}]",
                     "null")
                   DELTA("\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]",
                         "null"));
    WRITES(API_FRAME_SSE, &b, oai_chat_proto.end(&c, &st, SINK),
           DELTA("", "\"tool_calls\"") "data: [DONE]\n\n");
    /* a call without an id from the engine gets one */
    v[1].tool_id = NULL;
    e = evs(v + 1, 1);
    api_sink s;
    buf_reset(&b);
    api_sink_init(&s, &b, API_FRAME_SSE);
    assert_int_equal(oai_chat_proto.events(&c, &e, &s), SHIMMY_OK);
    api_sink_free(&s);
    assert_non_null(strstr(buf_str(&b), "\"id\":\"call_"));
    buf_free(&b);
}

static void test_sse_chat_usage(void **state) {
    (void)state;
    buf b;
    oai_wire w;
    api_call c = test_call(&w, true, true);
    gen_status st = test_status();
    gen_event v[] = {ev(GEN_EV_CONTENT, 0, NULL, NULL, "x")};
    gen_events e = evs(v, 1);
    buf_init(&b, 8192);
    WRITES(API_FRAME_SSE, &b, oai_chat_proto.events(&c, &e, SINK),
           "data: " HEAD_CHUNK "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},"
           "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n");
    WRITES(API_FRAME_SSE, &b, oai_chat_proto.end(&c, &st, SINK),
           "data: " HEAD_CHUNK "\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
           "\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"
           "data: " HEAD_CHUNK "\"choices\":[],\"usage\":" USAGE "}\n\n"
           "data: [DONE]\n\n");
    assert_sse_json(buf_str(&b));
    buf_free(&b);
}

static void test_sse_completion(void **state) {
    (void)state;
    buf b;
    oai_wire w;
    api_call c = test_call(&w, false, false);
    gen_status st = test_status();
    gen_event v[] = {ev(GEN_EV_CONTENT, 0, NULL, NULL, "tok")};
    gen_events e = evs(v, 1);
    buf_init(&b, 4096);
    WRITES(API_FRAME_SSE, &b, oai_completion_proto.start(&c, SINK), ""); /* no role chunk */
    WRITES(API_FRAME_SSE, &b, oai_completion_proto.events(&c, &e, SINK),
           "data: " HEAD_TEXT "\"choices\":[{\"text\":\"tok\","
           "\"index\":0,\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    WRITES(API_FRAME_SSE, &b, oai_completion_proto.end(&c, &st, SINK),
           "data: " HEAD_TEXT "\"choices\":[{\"text\":\"\","
           "\"index\":0,\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
    buf_free(&b);
}

static gen_event lpev(gen_event_kind k, const char *text, float lp) {
    gen_event e = ev(k, 0, NULL, NULL, text);
    e.logprob = lp;
    return e;
}

/* Whole answers with log probabilities: chat's content list, completions' four arrays. */
static void test_response_logprobs(void **state) {
    (void)state;
    buf b;
    oai_wire w;
    api_call c = test_call(&w, true, false);
    gen_status st = test_status();
    api_answer a;
    gen_event v[] = {ev(GEN_EV_CONTENT, 0, NULL, NULL, "Hi!"),
                     lpev(GEN_EV_LOGPROB, "Hi", -0.5f),
                     lpev(GEN_EV_LOGPROB_TOP, "Hi", -0.5f),
                     lpev(GEN_EV_LOGPROB_TOP, "Ho", -1.25f),
                     lpev(GEN_EV_LOGPROB, "!", -2),
                     lpev(GEN_EV_LOGPROB_TOP, "!", -2),
                     lpev(GEN_EV_LOGPROB_TOP, ".", -3)};
    c.gen.params.logprobs = true;
    c.gen.params.top_logprobs = 2;
    buf_init(&b, 8192);
    assert_int_equal(answer_of(&a, v, 7), SHIMMY_OK);
    WRITES(API_FRAME_NONE, &b, oai_chat_proto.whole(&c, &a, &st, SINK),
           "{\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion\",\"created\":123,"
           "\"model\":\"org/m:q4\"," FP ",\"choices\":[{\"index\":0,\"message\":{\"role\":"
           "\"assistant\",\"content\":\"Hi!\"},\"logprobs\":{\"content\":["
           "{\"token\":\"Hi\",\"logprob\":-0.5,\"bytes\":[72,105],\"top_logprobs\":["
           "{\"token\":\"Hi\",\"logprob\":-0.5,\"bytes\":[72,105]},"
           "{\"token\":\"Ho\",\"logprob\":-1.25,\"bytes\":[72,111]}]},"
           "{\"token\":\"!\",\"logprob\":-2,\"bytes\":[33],\"top_logprobs\":["
           "{\"token\":\"!\",\"logprob\":-2,\"bytes\":[33]},"
           "{\"token\":\".\",\"logprob\":-3,\"bytes\":[46]}]}],\"refusal\":null},"
           "\"finish_reason\":\"stop\"}],\"usage\":" USAGE "}");
    c = test_call(&w, false, false);
    c.gen.params.logprobs = true;
    c.gen.params.top_logprobs = 2;
    WRITES(API_FRAME_NONE, &b, oai_completion_proto.whole(&c, &a, &st, SINK),
           "{\"id\":\"cmpl-abc\",\"object\":\"text_completion\",\"created\":123,"
           "\"model\":\"org/m:q4\"," FP ",\"choices\":[{\"text\":\"Hi!\",\"index\":0,"
           "\"logprobs\":{\"tokens\":[\"Hi\",\"!\"],\"token_logprobs\":[-0.5,-2],"
           "\"top_logprobs\":[{\"Hi\":-0.5,\"Ho\":-1.25},{\"!\":-2,\".\":-3}],"
           "\"text_offset\":[0,2]},\"finish_reason\":\"stop\"}],\"usage\":" USAGE "}");
    api_answer_free(&a);
    buf_free(&b);
}

/* n choices: whole answers list them with their index and the summed usage; streamed chunks
 * carry the choice's index, finish per choice, then usage once. */
static void test_n_choices(void **state) {
    (void)state;
    buf b;
    oai_wire w;
    api_call c = test_call(&w, false, true);
    gen_status st[2] = {test_status(), test_status()}, sum = test_status();
    api_answer a[2];
    gen_event v0[] = {ev(GEN_EV_CONTENT, 0, NULL, NULL, "a")};
    gen_event v1[] = {ev(GEN_EV_CONTENT, 0, NULL, NULL, "b")};
    st[1].finish = FINISH_LENGTH;
    sum.completion_tokens = 6;
    c.n_choices = 2;
    buf_init(&b, 8192);
    assert_int_equal(answer_of(&a[0], v0, 1), SHIMMY_OK);
    assert_int_equal(answer_of(&a[1], v1, 1), SHIMMY_OK);
    WRITES(API_FRAME_NONE, &b, oai_completion_proto.whole_n(&c, a, st, 2, &sum, SINK),
           "{\"id\":\"cmpl-abc\",\"object\":\"text_completion\",\"created\":123,"
           "\"model\":\"org/m:q4\"," FP ",\"choices\":[{\"text\":\"a\",\"index\":0,"
           "\"logprobs\":null,\"finish_reason\":\"stop\"},{\"text\":\"b\",\"index\":1,"
           "\"logprobs\":null,\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":10,"
           "\"completion_tokens\":6,\"total_tokens\":16,\"prompt_tokens_details\":"
           "{\"cached_tokens\":4}}}");
    gen_events e1 = evs(v1, 1);
    c.choice = 1;
    WRITES(API_FRAME_SSE, &b, oai_completion_proto.events(&c, &e1, SINK),
           "data: " HEAD_TEXT "\"choices\":[{\"text\":\"b\",\"index\":1,\"logprobs\":null,"
           "\"finish_reason\":null}],\"usage\":null}\n\n");
    WRITES(API_FRAME_SSE, &b, oai_completion_proto.finish(&c, &st[1], SINK),
           "data: " HEAD_TEXT "\"choices\":[{\"text\":\"\",\"index\":1,\"logprobs\":null,"
           "\"finish_reason\":\"length\"}],\"usage\":null}\n\n");
    c.choice = -1;
    buf_reset(&b);
    {
        api_sink s_;
        api_sink_init(&s_, &b, API_FRAME_SSE);
        assert_int_equal(oai_completion_proto.end(&c, &sum, &s_), SHIMMY_OK);
        api_sink_free(&s_);
    }
    assert_null(strstr(buf_str(&b), "finish_reason"));
    assert_non_null(strstr(buf_str(&b), "\"completion_tokens\":6"));
    assert_non_null(strstr(buf_str(&b), "data: [DONE]"));
    api_answer_free(&a[0]);
    api_answer_free(&a[1]);
    buf_free(&b);
}

/* A streamed chat delta carries the wait's log probabilities; a wait with log probabilities
 * and no text gets an empty delta. */
static void test_sse_logprobs(void **state) {
    (void)state;
    buf b;
    oai_wire w;
    api_call c = test_call(&w, true, false);
    gen_event v[] = {ev(GEN_EV_CONTENT, 0, NULL, NULL, "Hi"), lpev(GEN_EV_LOGPROB, "Hi", -0.5f)};
    gen_events e = evs(v, 2), only = evs(v + 1, 1);
    c.gen.params.logprobs = true;
    c.choice = 2;
    buf_init(&b, 8192);
    WRITES(API_FRAME_SSE, &b, oai_chat_proto.events(&c, &e, SINK),
           "data: " HEAD_CHUNK "\"choices\":[{\"index\":2,\"delta\":{\"content\":\"Hi\"},"
           "\"logprobs\":{\"content\":[{\"token\":\"Hi\",\"logprob\":-0.5,\"bytes\":[72,105],"
           "\"top_logprobs\":[]}],\"refusal\":null},\"finish_reason\":null}]}\n\n");
    WRITES(API_FRAME_SSE, &b, oai_chat_proto.events(&c, &only, SINK),
           "data: " HEAD_CHUNK "\"choices\":[{\"index\":2,\"delta\":{},"
           "\"logprobs\":{\"content\":[{\"token\":\"Hi\",\"logprob\":-0.5,\"bytes\":[72,105],"
           "\"top_logprobs\":[]}],\"refusal\":null},\"finish_reason\":null}]}\n\n");
    assert_sse_json(buf_str(&b));
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
    oai_wire w;
    api_call c = test_call(&w, true, false);
    gen_event v[] = {ev(GEN_EV_CONTENT, 0, NULL, NULL, "x")};
    gen_events e = evs(v, 1);
    api_sink s;
    api_error err;
    buf_init(&b, 64);
    assert_int_equal(buf_puts(&b, "keep"), SHIMMY_OK);
    api_sink_init(&s, &b, API_FRAME_SSE);
    assert_int_equal(oai_chat_proto.events(&c, &e, &s), ERR_TOO_LARGE);
    assert_string_equal(buf_str(&b), "keep");
    api_fail(&err, ERR_INTERNAL, NULL, "a long message that does not fit");
    assert_int_equal(oai_chat_proto.error(&err, &s), ERR_TOO_LARGE);
    assert_string_equal(buf_str(&b), "keep");
    api_sink_free(&s);
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
        cmocka_unit_test(test_chat_tools),
        cmocka_unit_test(test_bad_stop_too_long),
        cmocka_unit_test(test_bad_too_deep),
        cmocka_unit_test(test_bad_too_many_messages),
        cmocka_unit_test(test_error_json),
        cmocka_unit_test(test_response_chat),
        cmocka_unit_test(test_response_chat_tools),
        cmocka_unit_test(test_response_completion),
        cmocka_unit_test(test_sse_chat),
        cmocka_unit_test(test_sse_chat_tools),
        cmocka_unit_test(test_sse_chat_usage),
        cmocka_unit_test(test_sse_completion),
        cmocka_unit_test(test_escaping_and_utf8),
        cmocka_unit_test(test_response_logprobs),
        cmocka_unit_test(test_n_choices),
        cmocka_unit_test(test_sse_logprobs),
        cmocka_unit_test(test_writer_rolls_back_on_overflow),
        cmocka_unit_test(test_meta_init),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
