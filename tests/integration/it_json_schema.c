/* it_json_schema: structured output on the real server and stories260K. Ollama's `format:
 * {schema}` (generate, chat, streamed) and OpenAI's `response_format` json_schema constrain greedy
 * generation to JSON valid for the schema, which ends by itself (done_reason / finish_reason
 * "stop"); json_object gives a JSON object; zod's .int().min().max() (integer with minimum and
 * maximum) is accepted and the answer lies within the bounds (llama.cpp's converter, as in
 * llama-server); a schema the converter cannot use is a 400 (OpenAI: param response_format). */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* zod: z.object({ n: z.number().int().min(3).max(7) }) */
#define BOUNDED                                                                                    \
    "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":3,"              \
    "\"maximum\":7}},\"required\":[\"n\"],\"additionalProperties\":false}"

/* text is {"n": 3..7}. */
static void assert_bounded(const char *text) {
    json_t *v = h_json(text);
    json_int_t n = json_integer_value(json_object_get(v, "n"));
    if (!json_is_object(v) || json_object_size(v) != 1 ||
        !json_is_integer(json_object_get(v, "n")) || n < 3 || n > 7)
        fail_msg("not valid for the bounded schema: %s", text);
    json_decref(v);
}

#define SCHEMA                                                                                     \
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":"       \
    "\"integer\"}},\"required\":[\"name\",\"age\"]}"

/* text is {"name": string, "age": integer} and nothing else. */
static void assert_person(const char *text) {
    json_t *v = h_json(text);
    if (!json_is_object(v) || json_object_size(v) != 2 ||
        !json_is_string(json_object_get(v, "name")) || !json_is_integer(json_object_get(v, "age")))
        fail_msg("not valid for the schema: %s", text);
    json_decref(v);
}

static json_t *post(int port, const char *path, const char *body, long want) {
    long status;
    char *resp;
    assert_int_equal(http_post_json(port, path, body, &status, &resp), 0);
    if (status != want)
        fail_msg("%s: status %ld, want %ld: %s", path, status, want, resp);
    json_t *j = h_json(resp);
    free(resp);
    return j;
}

static void test_ollama_format_schema(void **state) {
    h_test *t = *state;
    int port = h_start_default(t, NULL)->port;
    const char *opts = "\"options\":{\"temperature\":0,\"num_predict\":200}";
    char body[2048];
    snprintf(body, sizeof body,
             "{\"model\":\"" H_MODEL_NAME "\",\"prompt\":\"Tom is 5 years old. "
             "His name is\",\"stream\":false,\"format\":" SCHEMA ",%s}",
             opts);
    json_t *r = post(port, "/api/generate", body, 200);
    assert_string_equal(h_str(r, "done_reason"), "stop");
    assert_person(h_str(r, "response"));
    json_decref(r);

    snprintf(body, sizeof body,
             "{\"model\":\"" H_MODEL_NAME "\",\"messages\":[{\"role\":\"user\","
             "\"content\":\"Who is Lily?\"}],\"stream\":false,\"format\":" SCHEMA ",%s}",
             opts);
    r = post(port, "/api/chat", body, 200);
    assert_string_equal(h_str(r, "done_reason"), "stop");
    assert_person(h_str(h_obj(r, "message"), "content"));
    json_decref(r);

    /* streamed: the NDJSON chunks put together are the same valid object */
    snprintf(body, sizeof body,
             "{\"model\":\"" H_MODEL_NAME "\",\"prompt\":\"Tom is 5 years old. "
             "His name is\",\"format\":" SCHEMA ",%s}",
             opts);
    long status;
    char *resp;
    assert_int_equal(http_post_json(port, "/api/generate", body, &status, &resp), 0);
    assert_int_equal(status, 200);
    char text[8192] = "";
    for (char *line = resp, *end; *line != '\0'; line = end + 1) {
        if ((end = strchr(line, '\n')) == NULL)
            fail_msg("an NDJSON line without its newline: %s", line);
        *end = '\0';
        json_t *c = h_json(line);
        strncat(text, h_str(c, "response"), sizeof text - strlen(text) - 1);
        json_decref(c);
    }
    free(resp);
    assert_person(text);

    /* integer bounds: accepted, and the answer lies within them */
    snprintf(body, sizeof body,
             "{\"model\":\"" H_MODEL_NAME "\",\"prompt\":\"Tom is\",\"stream\":false,"
             "\"format\":" BOUNDED ",%s}",
             opts);
    r = post(port, "/api/generate", body, 200);
    assert_string_equal(h_str(r, "done_reason"), "stop");
    assert_bounded(h_str(r, "response"));
    json_decref(r);

    /* a schema the converter cannot use: 400 with its reason */
    snprintf(body, sizeof body,
             "{\"model\":\"" H_MODEL_NAME "\",\"prompt\":\"x\",\"format\":{\"type\":\"foo\"}}");
    r = post(port, "/api/generate", body, 400);
    assert_non_null(strstr(h_str(r, "error"), "Unrecognized schema"));
    json_decref(r);
    h_pass(t);
}

static void test_openai_response_format(void **state) {
    h_test *t = *state;
    int port = h_start_default(t, NULL)->port;
    json_t *req = h_chat_req("Tell me about Lily", 200);
    json_object_set_new(req, "response_format",
                        json_pack("{s:s, s:{s:s, s:b, s:o}}", "type", "json_schema", "json_schema",
                                  "name", "person", "strict", 1, "schema",
                                  json_loads(SCHEMA, 0, NULL)));
    json_t *r = h_post_expect(port, "/v1/chat/completions", req, 200);
    assert_string_equal(json_string_value(h_get(r, "choices.0.finish_reason")), "stop");
    assert_person(json_string_value(h_get(r, "choices.0.message.content")));
    json_decref(r);

    /* streamed */
    json_object_set_new(req, "stream", json_true());
    char *body = h_dump(req);
    h_sse s;
    h_stream(port, "/v1/chat/completions", body, 0, 0, &s);
    assert_int_equal(s.status, 200);
    char *text = h_sse_text(&s);
    assert_person(text);
    free(text);
    h_sse_free(&s);
    free(body);
    json_decref(req);

    /* json_object: the generic grammar, so the answer is an object (llama.cpp's grammar lets a
     * little whitespace come first: room for it) */
    req = h_chat_req("Tell me about Lily", 64);
    json_object_set_new(req, "response_format", json_pack("{s:s}", "type", "json_object"));
    r = h_post_expect(port, "/v1/chat/completions", req, 200);
    assert_int_equal(json_string_value(h_get(r, "choices.0.message.content"))[0], '{');
    json_decref(r);
    json_decref(req);

    /* integer bounds (zod's .int().min().max()): accepted, the answer within them */
    req = h_chat_req("Tell me a number", 60);
    json_object_set_new(req, "response_format",
                        json_pack("{s:s, s:{s:s, s:o}}", "type", "json_schema", "json_schema",
                                  "name", "n", "schema", json_loads(BOUNDED, 0, NULL)));
    r = h_post_expect(port, "/v1/chat/completions", req, 200);
    assert_string_equal(json_string_value(h_get(r, "choices.0.finish_reason")), "stop");
    assert_bounded(json_string_value(h_get(r, "choices.0.message.content")));
    json_decref(r);
    json_decref(req);

    /* a schema the converter cannot use: 400, param response_format, its reason */
    req = h_chat_req("x", 4);
    json_object_set_new(req, "response_format",
                        json_pack("{s:s, s:{s:{s:s}}}", "type", "json_schema", "json_schema",
                                  "schema", "$ref", "#/nope"));
    body = h_dump(req);
    h_resp hr;
    h_request(port, "POST", "/v1/chat/completions", body, strlen(body), 0, &hr);
    char msg[512];
    h_assert_error(&hr, 400, "response_format", msg, sizeof msg);
    assert_non_null(strstr(msg, "#/nope"));
    h_resp_free(&hr);
    free(body);
    json_decref(req);
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ollama_format_schema, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_openai_response_format, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
