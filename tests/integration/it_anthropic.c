/* Integration tests of the Anthropic Messages API over raw HTTP on the real binary with
 * stories260K: the whole message object; the streamed event sequence (each SSE message named
 * after its type: message_start, ping, content_block_start/delta/stop, message_delta,
 * message_stop) with its key fields and the text equal to the whole answer; stop sequences and
 * the max_tokens cut; a forced tool_use (tool_choice {type:"tool"}) whose input satisfies its
 * schema, with a tool-capable template; errors in Anthropic's shape. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define ASK "\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story.\"}]"

static json_t *post(int port, const char *body, long want) {
    long status;
    char *resp;
    assert_int_equal(http_post_json(port, "/v1/messages", body, &status, &resp), 0);
    if (status != want)
        fail_msg("POST %s: %ld, want %ld: %s", body, status, want, resp);
    json_t *j = h_json(resp);
    free(resp);
    return j;
}

/* The whole answer: a message with one text block, cut at max_tokens. */
static void test_whole(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    json_t *m = post(s->port,
                     "{\"model\":\"" H_MODEL_NAME "\",\"max_tokens\":12,"
                     "\"temperature\":0," ASK "}",
                     200);
    assert_string_equal(h_str(m, "type"), "message");
    assert_string_equal(h_str(m, "role"), "assistant");
    assert_int_equal(strncmp(h_str(m, "id"), "msg_", 4), 0);
    assert_string_equal(h_str(m, "stop_reason"), "max_tokens");
    assert_true(json_is_null(json_object_get(m, "stop_sequence")));
    json_t *block = json_array_get(h_arr(m, "content"), 0);
    assert_string_equal(h_str(block, "type"), "text");
    assert_true(strlen(h_str(block, "text")) > 0);
    assert_int_equal(h_int(h_obj(m, "usage"), "output_tokens"), 12);
    /* a stop sequence taken from that text ends the answer right before it */
    char word[64] = "";
    const char *text = h_str(block, "text");
    for (const char *p = text; *p && word[0] == '\0'; p++)
        if (p[0] >= 'a' && p[0] <= 'z' && p[1] >= 'a' && p[1] <= 'z' && p[2] >= 'a' && p[2] <= 'z')
            snprintf(word, sizeof word, "%.3s", p);
    assert_true(word[0] != '\0');
    char body[512];
    snprintf(body, sizeof body,
             "{\"model\":\"" H_MODEL_NAME "\",\"max_tokens\":12,"
             "\"temperature\":0,\"stop_sequences\":[\"%s\"]," ASK "}",
             word);
    json_t *cut = post(s->port, body, 200);
    assert_string_equal(h_str(cut, "stop_reason"), "stop_sequence");
    assert_string_equal(h_str(cut, "stop_sequence"), word);
    const char *cut_text = h_str(json_array_get(h_arr(cut, "content"), 0), "text");
    assert_int_equal(strncmp(cut_text, text, strlen(cut_text)), 0);
    assert_null(strstr(cut_text, word));
    json_decref(cut);
    json_decref(m);
    h_pass(t);
}

static size_t event_names(const h_sse *s, char **names, size_t max) {
    size_t n = 0;
    for (const char *p = s->raw; p != NULL && n < max; p = strchr(p, '\n')) {
        p += *p == '\n';
        if (strncmp(p, "event: ", 7) == 0)
            names[n++] = strndup(p + 7, strcspn(p + 7, "\n"));
    }
    return n;
}

/* The stream: names and types agree, blocks open and close, the text equals the whole one. */
static void test_stream(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    const char *whole_body = "{\"model\":\"" H_MODEL_NAME "\",\"max_tokens\":10,"
                             "\"temperature\":0," ASK "}";
    json_t *whole = post(s->port, whole_body, 200);
    h_sse sse;
    char *names[128];
    h_stream(s->port, "/v1/messages",
             "{\"model\":\"" H_MODEL_NAME "\",\"max_tokens\":10,"
             "\"temperature\":0,\"stream\":true," ASK "}",
             0, 0, &sse);
    assert_int_equal(sse.status, 200);
    size_t n = event_names(&sse, names, 128);
    assert_int_equal(n, sse.n_events);
    assert_true(n >= 7);
    assert_string_equal(names[0], "message_start");
    assert_string_equal(names[1], "ping");
    assert_string_equal(names[2], "content_block_start");
    assert_string_equal(names[n - 3], "content_block_stop");
    assert_string_equal(names[n - 2], "message_delta");
    assert_string_equal(names[n - 1], "message_stop");
    char text[4096] = "";
    for (size_t i = 0; i < n; i++) {
        json_t *ev = h_json(sse.events[i]);
        assert_string_equal(h_str(ev, "type"), names[i]);
        if (strcmp(names[i], "content_block_delta") == 0) {
            json_t *d = h_obj(ev, "delta");
            assert_string_equal(h_str(d, "type"), "text_delta");
            strncat(text, h_str(d, "text"), sizeof text - strlen(text) - 1);
        } else if (strcmp(names[i], "message_start") == 0) {
            assert_string_equal(h_str(h_obj(ev, "message"), "role"), "assistant");
        } else if (strcmp(names[i], "message_delta") == 0) {
            assert_string_equal(h_str(h_obj(ev, "delta"), "stop_reason"), "max_tokens");
            assert_int_equal(h_int(h_obj(ev, "usage"), "output_tokens"), 10);
        }
        json_decref(ev);
        free(names[i]);
    }
    assert_string_equal(text, h_str(json_array_get(h_arr(whole, "content"), 0), "text"));
    h_sse_free(&sse);
    json_decref(whole);
    h_pass(t);
}

/* tool_choice {type:"tool"} with Hermes 2 Pro's template: a tool_use block whose input meets
 * the schema (an enum and a bounded integer, so that a tiny model's arguments end). */
static void test_forced_tool(void **state) {
    h_test *t = *state;
    char tmpl[4400];
    snprintf(tmpl, sizeof tmpl,
             "%s/deps/llama.cpp/models/templates/"
             "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja",
             h_source_dir());
    const char *args[] = {"--chat-template-file", tmpl, NULL};
    h_server *s = h_start_default(t, args);
    json_t *m = post(
        s->port,
        "{\"model\":\"" H_MODEL_NAME "\",\"max_tokens\":200,\"temperature\":0," ASK ","
        "\"tools\":[{\"name\":\"get_weather\",\"description\":\"the weather\",\"input_schema\":"
        "{\"type\":\"object\",\"properties\":{\"city\":{\"enum\":[\"Paris\",\"London\"]},"
        "\"days\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":7}},\"required\":[\"city\","
        "\"days\"]}}],\"tool_choice\":{\"type\":\"tool\",\"name\":\"get_weather\"}}",
        200);
    assert_string_equal(h_str(m, "stop_reason"), "tool_use");
    json_t *block = NULL, *b;
    size_t i;
    json_array_foreach(h_arr(m, "content"), i, b) {
        if (strcmp(h_str(b, "type"), "tool_use") == 0)
            block = b;
    }
    assert_non_null(block);
    assert_string_equal(h_str(block, "name"), "get_weather");
    json_t *input = h_obj(block, "input");
    const char *city = h_str(input, "city");
    assert_true(strcmp(city, "Paris") == 0 || strcmp(city, "London") == 0);
    long long days = h_int(input, "days");
    assert_true(days >= 1 && days <= 7);
    json_decref(m);
    h_pass(t);
}

/* Errors: Anthropic's {"type":"error","error":{"type","message"}} with the right status. */
static void test_errors(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    json_t *e = post(s->port, "{\"model\":\"" H_MODEL_NAME "\"," ASK "}", 400);
    assert_string_equal(h_str(e, "type"), "error");
    assert_string_equal(h_str(h_obj(e, "error"), "type"), "invalid_request_error");
    assert_non_null(strstr(h_str(h_obj(e, "error"), "message"), "max_tokens"));
    json_decref(e);
    e = post(s->port, "{\"model\":\"nope\",\"max_tokens\":4," ASK "}", 404);
    assert_string_equal(h_str(h_obj(e, "error"), "type"), "not_found_error");
    json_decref(e);
    e = post(s->port, "{\"model\":\"" H_MODEL_NAME "\",\"max_tokens\":4,\"messages\":\"x\"}", 400);
    assert_string_equal(h_str(h_obj(e, "error"), "type"), "invalid_request_error");
    json_decref(e);
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_whole, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_stream, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_forced_tool, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_errors, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
