/* it_stream: SSE streaming of /v1/completions and /v1/chat/completions: framing, the same text
 * as the non-streaming answer, role in the first chunk, finish_reason in the last, [DONE], and
 * the stream_options.include_usage chunk. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GOLDEN 8

static void assert_text(const char *what, const char *got, const char *want) {
    if (strcmp(got, want) != 0)
        fail_msg("%s:\n  got:  \"%s\"\n  want: \"%s\"", what, got, want);
}

/* Streams req (borrowed; "stream": true is added to a copy) and checks the framing. */
static void stream_req(int port, const char *path, const json_t *req, h_sse *sse) {
    json_t *r = json_deep_copy(req);
    json_object_set_new(r, "stream", json_true());
    char *body = h_dump(r);
    h_stream(port, path, body, 0, 0, sse);
    if (sse->status != 200)
        fail_msg("POST %s %s: status %ld: %s", path, body, sse->status, sse->raw);
    if (strncmp(sse->content_type, "text/event-stream", 17) != 0)
        fail_msg("streaming Content-Type is \"%s\"", sse->content_type);
    if (!sse->done || !sse->done_last)
        fail_msg("stream does not end with data: [DONE]: %s", sse->raw);
    if (sse->n_events == 0)
        fail_msg("no chunks before [DONE]");
    free(body);
    json_decref(r);
}

static const char *finish_of(const json_t *chunk) {
    json_t *f = h_get(chunk, "choices.0.finish_reason");
    return json_is_string(f) ? json_string_value(f) : NULL;
}

/* Every chunk before the last has finish_reason null; the last has want_finish. All chunks
 * share one id and carry the object type. */
static void check_chunks(const h_sse *sse, const char *object, const char *want_finish,
                         size_t n_content) {
    json_t *first = h_json(sse->events[0]);
    const char *id0 = h_str(first, "id");
    for (size_t i = 0; i < n_content; i++) {
        json_t *c = h_json(sse->events[i]);
        assert_string_equal(h_str(c, "object"), object);
        assert_string_equal(h_str(c, "model"), H_MODEL_NAME);
        assert_string_equal(h_str(c, "id"), id0);
        const char *f = finish_of(c);
        if (i + 1 < n_content && f != NULL)
            fail_msg("chunk %zu of %zu has finish_reason \"%s\": %s", i, n_content, f,
                     sse->events[i]);
        if (i + 1 == n_content && (f == NULL || strcmp(f, want_finish) != 0))
            fail_msg("last chunk has finish_reason %s, want \"%s\": %s", f ? f : "null",
                     want_finish, sse->events[i]);
        json_decref(c);
    }
    json_decref(first);
}

/* Completions: streamed deltas concatenate to the non-streamed text, which is the golden one. */
static void test_completions_stream_matches(void **state) {
    h_test *t = *state;
    h_golden g[MAX_GOLDEN];
    int n = h_golden_load(g, MAX_GOLDEN);
    h_server *s = h_start_default(t, NULL);
    for (int i = 0; i < n; i++) {
        json_t *req = h_completion_req(g[i].prompt, g[i].max_tokens);
        json_t *plain = h_post_expect(s->port, "/v1/completions", req, 200);
        h_sse sse;
        stream_req(s->port, "/v1/completions", req, &sse);
        char *text = h_sse_text(&sse);
        assert_text("streamed completion", text, json_string_value(h_get(plain, "choices.0.text")));
        assert_text("streamed completion vs golden", text, g[i].text);
        check_chunks(&sse, "text_completion", "length", sse.n_events);
        /* Without include_usage there is no usage-only chunk. */
        json_t *last = h_json(sse.events[sse.n_events - 1]);
        assert_true(json_array_size(h_arr(last, "choices")) == 1);
        json_decref(last);
        free(text);
        h_sse_free(&sse);
        json_decref(plain);
        json_decref(req);
    }
    h_pass(t);
}

/* Chat: the first chunk carries delta.role "assistant"; the text equals the non-streamed one. */
static void test_chat_stream_matches(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    json_t *req = h_chat_req("Tell me a story about a dog.", 24);
    json_t *plain = h_post_expect(s->port, "/v1/chat/completions", req, 200);
    assert_string_equal(h_str(plain, "object"), "chat.completion");
    json_t *msg = h_get(plain, "choices.0.message");
    assert_string_equal(h_str(msg, "role"), "assistant");
    const char *content = h_str(msg, "content");
    assert_true(content[0] != '\0');

    h_sse sse;
    stream_req(s->port, "/v1/chat/completions", req, &sse);
    json_t *first = h_json(sse.events[0]);
    json_t *role = h_get(first, "choices.0.delta.role");
    if (!json_is_string(role) || strcmp(json_string_value(role), "assistant") != 0)
        fail_msg("first chunk lacks delta.role \"assistant\": %s", sse.events[0]);
    json_decref(first);
    check_chunks(&sse, "chat.completion.chunk", h_str(h_get(plain, "choices.0"), "finish_reason"),
                 sse.n_events);
    char *text = h_sse_text(&sse);
    assert_text("streamed chat", text, content);
    free(text);
    h_sse_free(&sse);
    json_decref(plain);
    json_decref(req);
    h_pass(t);
}

/* include_usage: one extra chunk before [DONE] with empty choices and the usage numbers; the
 * content chunks carry "usage": null or none. */
static void test_include_usage(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    const char *paths[] = {"/v1/completions", "/v1/chat/completions"};
    for (int p = 0; p < 2; p++) {
        json_t *req =
            p == 0 ? h_completion_req("Once upon a time", 12) : h_chat_req("Once upon a time", 12);
        json_object_set_new(req, "stream_options", json_pack("{s:b}", "include_usage", 1));
        h_sse sse;
        stream_req(s->port, paths[p], req, &sse);
        assert_true(sse.n_events >= 2);
        json_t *last = h_json(sse.events[sse.n_events - 1]);
        if (json_array_size(h_arr(last, "choices")) != 0)
            fail_msg("%s: usage chunk has choices: %s", paths[p], sse.events[sse.n_events - 1]);
        json_t *u = h_obj(last, "usage");
        assert_int_equal(h_int(u, "completion_tokens"), 12);
        assert_true(h_int(u, "prompt_tokens") > 0);
        assert_int_equal(h_int(u, "total_tokens"),
                         h_int(u, "prompt_tokens") + h_int(u, "completion_tokens"));
        (void)h_int(h_obj(u, "prompt_tokens_details"), "cached_tokens");
        json_decref(last);
        check_chunks(&sse, p == 0 ? "text_completion" : "chat.completion.chunk", "length",
                     sse.n_events - 1);
        for (size_t i = 0; i + 1 < sse.n_events; i++) {
            json_t *c = h_json(sse.events[i]);
            json_t *cu = json_object_get(c, "usage");
            if (cu != NULL && !json_is_null(cu))
                fail_msg("%s: content chunk %zu carries usage: %s", paths[p], i, sse.events[i]);
            json_decref(c);
        }
        h_sse_free(&sse);
        json_decref(req);
    }
    h_pass(t);
}

/* SSE framing: every event is exactly "data: <json>\n\n". */
static void test_sse_framing(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    json_t *req = h_completion_req("The little dog", 8);
    h_sse sse;
    stream_req(s->port, "/v1/completions", req, &sse);
    const char *p = sse.raw;
    size_t events = 0;
    while (*p != '\0') {
        if (strncmp(p, "data: ", 6) != 0)
            fail_msg("event %zu does not start with \"data: \": %s", events, p);
        const char *end = strstr(p, "\n\n");
        if (end == NULL)
            fail_msg("event %zu is not terminated by a blank line: %s", events, p);
        p = end + 2;
        events++;
    }
    assert_int_equal(events, sse.n_events + 1); /* + [DONE] */
    h_sse_free(&sse);
    json_decref(req);
    h_pass(t);
}

/* Multi-byte UTF-8 with the real Llama-2 vocabulary (random weights: byte-fallback tokens come
 * up): every chunk is valid JSON holding whole characters (jansson rejects broken UTF-8), and the
 * chunks add up to the plain answer, greedy and sampled. */
static void test_utf8_stream(void **state) {
    h_test *t = *state;
    const char *args[] = {"--model", h_model_path("llama-2-tiny-random.gguf"), NULL};
    h_server *s = h_start(t, args);
    const char *prompts[] = {"\xc3\x9c"
                             "ber na\xc3\xafve caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac "
                             "\xf0\x9f\x99\x82",
                             "Once upon a time"};
    for (int p = 0; p < 2; p++) {
        for (int seed = 0; seed < 4; seed++) {
            json_t *req = h_completion_req(prompts[p], 160);
            json_object_set_new(req, "model", json_string("llama-2-tiny-random"));
            if (seed > 0) {
                json_object_set_new(req, "temperature", json_real(1.0));
                json_object_set_new(req, "seed", json_integer(seed));
            }
            json_t *plain = h_post_expect(s->port, "/v1/completions", req, 200);
            const char *want = json_string_value(h_get(plain, "choices.0.text"));
            assert_non_null(want);
            h_sse sse;
            stream_req(s->port, "/v1/completions", req, &sse);
            char *text = h_sse_text(&sse); /* parses every chunk */
            assert_text("streamed UTF-8 text", text, want);
            free(text);
            h_sse_free(&sse);
            json_decref(plain);
            json_decref(req);
        }
    }
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_completions_stream_matches, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_chat_stream_matches, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_include_usage, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_sse_framing, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_utf8_stream, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
