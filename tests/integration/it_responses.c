/* Integration tests of the OpenAI Responses API over raw HTTP on the real binary with
 * stories260K: the streamed event sequence (every SSE message named after its type, the key
 * fields of each event, sequence_number 0, 1, 2, ...), and the response store: create, GET,
 * continue with previous_response_id (the second prompt holds the first turn: more input
 * tokens), DELETE, GET after DELETE, unknown ids (404 naming the param), store: false, and the
 * least recently used response dropped past SHIMMY_RESPONSES_MAX. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static json_t *create(int port, const char *extra) {
    char body[1024];
    long status;
    char *resp;
    snprintf(body, sizeof body,
             "{\"model\":\"" H_MODEL_NAME "\",\"temperature\":0,\"max_output_tokens\":8%s}", extra);
    assert_int_equal(http_post_json(port, "/v1/responses", body, &status, &resp), 0);
    if (status != 200)
        fail_msg("POST %s: %ld %s", body, status, resp);
    json_t *j = h_json(resp);
    free(resp);
    return j;
}

static void expect_404(int port, const char *method, const char *path, const char *body,
                       const char *param) {
    h_resp r;
    char msg[512];
    h_request(port, method, path, body, body != NULL ? strlen(body) : 0, 0, &r);
    h_assert_error(&r, 404, param, msg, sizeof msg);
    h_resp_free(&r);
}

static json_t *get(int port, const char *id, const char *method) {
    char path[256];
    long status;
    h_resp r;
    snprintf(path, sizeof path, "/v1/responses/%s", id);
    h_request(port, method, path, NULL, 0, 0, &r);
    status = r.status;
    if (status != 200)
        fail_msg("%s %s: %ld %s", method, path, status, r.body);
    json_t *j = h_json(r.body);
    h_resp_free(&r);
    return j;
}

/* ---- the stream ---- */

/* The SSE message names, in order (owned array of owned strings). */
static size_t event_names(const h_sse *s, char **names, size_t max) {
    size_t n = 0;
    for (const char *p = s->raw; p != NULL && n < max; p = strchr(p, '\n')) {
        p += *p == '\n';
        if (strncmp(p, "event: ", 7) == 0) {
            size_t len = strcspn(p + 7, "\n");
            names[n] = strndup(p + 7, len);
            n++;
        }
    }
    return n;
}

static void check_event(const json_t *ev, const char *name, size_t i) {
    const char *type = h_str(ev, "type");
    assert_string_equal(type, name);
    assert_int_equal(h_int(ev, "sequence_number"), (long long)i);
    if (strstr(type, "response.output_item.") == type) {
        h_int(ev, "output_index");
        h_str(h_obj(ev, "item"), "id");
    } else if (strcmp(type, "response.output_text.delta") == 0) {
        h_str(ev, "item_id");
        h_int(ev, "content_index");
        h_str(ev, "delta");
    } else if (strcmp(type, "response.output_text.done") == 0) {
        h_str(ev, "text");
    } else if (strstr(type, "response.content_part.") == type) {
        assert_string_equal(h_str(h_obj(ev, "part"), "type"), "output_text");
    } else {
        assert_string_equal(h_str(h_obj(ev, "response"), "object"), "response");
    }
}

static void test_stream_events(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    h_sse sse;
    char *names[256];
    const char *body = "{\"model\":\"" H_MODEL_NAME "\",\"input\":\"Once upon a time\","
                       "\"temperature\":0,\"max_output_tokens\":6,\"stream\":true}";
    h_stream(s->port, "/v1/responses", body, 0, 0, &sse);
    assert_int_equal(sse.status, 200);
    assert_non_null(strstr(sse.content_type, "text/event-stream"));
    size_t n = event_names(&sse, names, 256);
    assert_int_equal(n, sse.n_events);
    assert_true(n >= 9);
    static const char *const head[] = {"response.created", "response.in_progress",
                                       "response.output_item.added", "response.content_part.added"};
    static const char *const tail[] = {"response.output_text.done", "response.content_part.done",
                                       "response.output_item.done", "response.incomplete"};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(names[i], head[i]);
        assert_string_equal(names[n - 4 + i], tail[i]);
    }
    for (size_t i = 4; i < n - 4; i++)
        assert_string_equal(names[i], "response.output_text.delta");
    for (size_t i = 0; i < n; i++) {
        json_t *ev = h_json(sse.events[i]);
        check_event(ev, names[i], i);
        json_decref(ev);
        free(names[i]);
    }
    json_t *last = h_json(sse.events[n - 1]);
    assert_string_equal(h_str(h_obj(last, "response"), "status"), "incomplete");
    assert_int_equal(h_int(h_obj(h_obj(last, "response"), "usage"), "output_tokens"), 6);
    /* the streamed response is stored too: GET gives the final object */
    json_t *got = get(s->port, h_str(h_obj(last, "response"), "id"), "GET");
    assert_string_equal(h_str(got, "output_text"), h_str(h_obj(last, "response"), "output_text"));
    json_decref(got);
    json_decref(last);
    h_sse_free(&sse);
    h_pass(t);
}

/* ---- the store ---- */

static void test_store(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    char extra[512], path[256];
    json_t *first = create(s->port, ",\"input\":\"Once upon a time\"");
    const char *id = h_str(first, "id");
    json_t *got = get(s->port, id, "GET");
    char *a = h_dump(first), *b = h_dump(got);
    assert_string_equal(a, b); /* the response object as created */
    free(a);
    free(b);
    json_decref(got);

    snprintf(extra, sizeof extra, ",\"previous_response_id\":\"%s\",\"input\":\"And then?\"", id);
    json_t *second = create(s->port, extra);
    json_t *alone = create(s->port, ",\"input\":\"And then?\"");
    long long in1 = h_int(h_obj(first, "usage"), "input_tokens");
    long long in2 = h_int(h_obj(second, "usage"), "input_tokens");
    long long in_alone = h_int(h_obj(alone, "usage"), "input_tokens");
    /* the first turn (its input and its answer) comes before the new input */
    assert_true(in2 >= in1 + in_alone + h_int(h_obj(first, "usage"), "output_tokens") - 4);
    json_decref(alone);

    json_t *del = get(s->port, id, "DELETE");
    assert_string_equal(h_str(del, "id"), id);
    assert_string_equal(h_str(del, "object"), "response.deleted");
    assert_true(json_is_true(json_object_get(del, "deleted")));
    json_decref(del);
    snprintf(path, sizeof path, "/v1/responses/%s", id);
    expect_404(s->port, "GET", path, NULL, "response_id");
    expect_404(s->port, "DELETE", path, NULL, "response_id");
    snprintf(path, sizeof path, "/responses/%s", h_str(second, "id"));
    h_resp r;
    h_request(s->port, "GET", path, NULL, 0, 0, &r);
    assert_int_equal(r.status, 200); /* the /v1-less alias */
    h_resp_free(&r);
    snprintf(extra, sizeof extra,
             "{\"model\":\"" H_MODEL_NAME "\",\"previous_response_id\":\"%s\",\"input\":\"x\"}",
             id);
    expect_404(s->port, "POST", "/v1/responses", extra, "previous_response_id");

    json_t *unstored = create(s->port, ",\"input\":\"x\",\"store\":false");
    snprintf(path, sizeof path, "/v1/responses/%s", h_str(unstored, "id"));
    expect_404(s->port, "GET", path, NULL, "response_id");
    json_decref(unstored);
    json_decref(second);
    json_decref(first);
    h_pass(t);
}

static void test_store_lru(void **state) {
    h_test *t = *state;
    setenv("SHIMMY_RESPONSES_MAX", "2", 1);
    h_server *s = h_start_default(t, NULL);
    unsetenv("SHIMMY_RESPONSES_MAX");
    char path[256];
    json_t *r[3];
    for (int i = 0; i < 3; i++) {
        r[i] = create(s->port, ",\"input\":\"Once\"");
        if (i == 1) /* touch the first: the second is now the least recently used */
            json_decref(get(s->port, h_str(r[0], "id"), "GET"));
    }
    json_decref(get(s->port, h_str(r[0], "id"), "GET"));
    json_decref(get(s->port, h_str(r[2], "id"), "GET"));
    snprintf(path, sizeof path, "/v1/responses/%s", h_str(r[1], "id"));
    expect_404(s->port, "GET", path, NULL, "response_id");
    for (int i = 0; i < 3; i++)
        json_decref(r[i]);
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stream_events, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_store, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_store_lru, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
