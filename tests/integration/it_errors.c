/* it_errors: every error the API promises, each with an OpenAI error body
 * {"error":{"message","type","param","code"}}: 400 (malformed JSON, wrong types, out of range,
 * n out of range, context too long), 404 (unknown model, unknown route), 405, 413. 503 lives in
 * it_concurrency. */
#include "harness.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void post_raw(int port, const char *path, const char *body, h_resp *r) {
    h_request(port, "POST", path, body, strlen(body), 0, r);
}

/* method path with body (len bytes; NULL: none) gets an OpenAI error with status want_status. */
static void expect_error(int port, const char *method, const char *path, const char *body,
                         size_t len, long want_status) {
    h_resp r;
    char msg[1024];
    h_request(port, method, path, body, len, 0, &r);
    h_assert_error(&r, want_status, NULL, msg, sizeof msg);
    h_resp_free(&r);
}

/* After the errors the server still completes. */
static void assert_still_serves(const h_server *s) {
    json_t *req = h_completion_req("Once", 2);
    json_t *ok = h_post_expect(s->port, "/v1/completions", req, 200);
    json_decref(ok);
    json_decref(req);
}

typedef struct bad_case {
    const char *path;
    const char *body;
    long status;
    const char *param; /* NULL: not checked */
} bad_case;

#define M "\"model\":\"stories260k\""
#define P M ",\"prompt\":\"Once upon a time\",\"max_tokens\":4"
#define C M ",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":4"

static void test_bad_requests(void **state) {
    h_test *t = *state;
    static const bad_case cases[] = {
        {"/v1/completions", "{\"model\":", 400, NULL},
        {"/v1/completions", "not json at all", 400, NULL},
        {"/v1/completions", "", 400, NULL},
        {"/v1/completions", "[1,2,3]", 400, NULL},
        {"/v1/chat/completions", "{" M ",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}", 400,
         NULL},
        {"/v1/completions", "{" P ",\"temperature\":\"hot\"}", 400, "temperature"},
        {"/v1/completions", "{" P ",\"temperature\":5}", 400, "temperature"},
        {"/v1/completions", "{" P ",\"temperature\":-1}", 400, "temperature"},
        {"/v1/chat/completions", "{" C ",\"temperature\":\"hot\"}", 400, "temperature"},
        {"/v1/chat/completions", "{" C ",\"temperature\":5}", 400, "temperature"},
        {"/v1/completions", "{" P ",\"top_p\":1.5}", 400, "top_p"},
        {"/v1/completions", "{" P ",\"top_k\":-1}", 400, "top_k"},
        {"/v1/completions", "{" P ",\"top_k\":\"many\"}", 400, "top_k"},
        {"/v1/completions", "{" P ",\"min_p\":2}", 400, "min_p"},
        {"/v1/completions", "{" P ",\"presence_penalty\":3}", 400, "presence_penalty"},
        {"/v1/completions", "{" P ",\"frequency_penalty\":-3}", 400, "frequency_penalty"},
        {"/v1/completions", "{" M ",\"prompt\":\"x\",\"max_tokens\":0}", 400, "max_tokens"},
        {"/v1/completions", "{" M ",\"prompt\":\"x\",\"max_tokens\":-5}", 400, "max_tokens"},
        {"/v1/completions", "{" M ",\"prompt\":\"x\",\"max_tokens\":\"ten\"}", 400, "max_tokens"},
        {"/v1/completions", "{" P ",\"seed\":\"abc\"}", 400, "seed"},
        {"/v1/completions", "{" P ",\"stream\":\"yes\"}", 400, "stream"},
        {"/v1/completions", "{" P ",\"stop\":42}", 400, "stop"},
        {"/v1/completions", "{" P ",\"n\":17}", 400, "n"},
        {"/v1/chat/completions", "{" C ",\"n\":0}", 400, "n"},
        {"/v1/completions", "{" M ",\"max_tokens\":4}", 400, "prompt"},
        {"/v1/completions", "{" M ",\"prompt\":42}", 400, "prompt"},
        {"/v1/completions", "{\"prompt\":\"x\"}", 400, "model"},
        {"/v1/chat/completions", "{" M "}", 400, "messages"},
        {"/v1/chat/completions", "{" M ",\"messages\":[]}", 400, "messages"},
        {"/v1/chat/completions", "{" M ",\"messages\":\"hi\"}", 400, "messages"},
        {"/v1/chat/completions", "{" M ",\"messages\":[{\"role\":\"user\"}]}", 400, NULL},
        {"/v1/chat/completions", "{" M ",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}",
         400, NULL},
        {"/v1/completions", "{\"model\":\"no-such-model\",\"prompt\":\"x\"}", 404, "model"},
        {"/v1/chat/completions",
         "{\"model\":\"no-such-model\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 404,
         "model"},
    };
    h_server *s = h_start_default(t, NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        h_resp r;
        char msg[1024];
        post_raw(s->port, cases[i].path, cases[i].body, &r);
        print_message("case %zu: %s %s -> %ld %s\n", i, cases[i].path, cases[i].body, r.status,
                      r.body);
        h_assert_error(&r, cases[i].status, cases[i].param, msg, sizeof msg);
        if (cases[i].status == 404) {
            json_t *j = h_json(r.body);
            json_t *code = h_get(j, "error.code");
            if (!json_is_string(code) || strcmp(json_string_value(code), "model_not_found") != 0)
                fail_msg("unknown model: error.code is not \"model_not_found\": %s", r.body);
            json_decref(j);
        }
        h_resp_free(&r);
    }
    /* The server survived all of that. */
    assert_still_serves(s);
    h_pass(t);
}

/* Unknown routes: 404; known routes with the wrong method: 405; both with an error body. */
static void test_routes(void **state) {
    h_test *t = *state;
    static const struct {
        const char *method, *path, *body; /* body NULL: none */
        long status;
    } cases[] = {
        {"GET", "/v1/nope", NULL, 404},
        {"POST", "/v2/chat/completions", "{}", 404},
        {"GET", "/v1/chat/completions", NULL, 405},
        {"GET", "/v1/completions", NULL, 405},
        {"DELETE", "/v1/models", NULL, 405},
        {"POST", "/health", "{}", 405},
    };
    h_server *s = h_start_default(t, NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        print_message("%s %s\n", cases[i].method, cases[i].path);
        const char *body = cases[i].body;
        expect_error(s->port, cases[i].method, cases[i].path, body, body ? strlen(body) : 0,
                     cases[i].status);
    }
    h_pass(t);
}

/* A 9 MiB body is refused with 413 (the limit is 8 MiB); an 8 MiB - 1 KiB body is read (and
 * refused for what it says, not for its size). */
static void test_body_too_large(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    size_t big = 9u << 20;
    char *body = malloc(big + 1);
    assert_non_null(body);
    /* Valid JSON throughout, so only the size can be the reason. */
    const char *head = "{\"model\":\"stories260k\",\"max_tokens\":1,\"prompt\":\"";
    size_t hl = strlen(head);
    memcpy(body, head, hl);
    memset(body + hl, 'a', big - hl - 2);
    memcpy(body + big - 2, "\"}", 3);
    expect_error(s->port, "POST", "/v1/completions", body, big, 413);
    expect_error(s->port, "POST", "/v1/chat/completions", body, big, 413);

    size_t under = (8u << 20) - 1024;
    memcpy(body + under - 2, "\"}", 3);
    h_resp r;
    h_request(s->port, "POST", "/v1/completions", body, under, 0, &r);
    if (r.status == 413)
        fail_msg("a body of %zu bytes (under 8 MiB) got 413", under);
    h_resp_free(&r);
    free(body);
    assert_still_serves(s);
    h_pass(t);
}

/* Collects the integers in text. */
static int numbers_in(const char *text, long *out, int max) {
    int n = 0;
    for (const char *p = text; *p != '\0' && n < max;) {
        if (isdigit((unsigned char)*p)) {
            char *end;
            out[n++] = strtol(p, &end, 10);
            p = end;
        } else {
            p++;
        }
    }
    return n;
}

/* A prompt longer than the slot context: 400 whose message gives both numbers; the server
 * then still works. */
static void test_context_too_long(void **state) {
    h_test *t = *state;
    const char *args[] = {"--ctx", "64", NULL};
    h_server *s = h_start_default(t, args);
    char prompt[4096] = "";
    for (int i = 0; i < 20; i++)
        strncat(prompt, "Once upon a time there was a dog. ", sizeof prompt - strlen(prompt) - 1);
    for (int chat = 0; chat < 2; chat++) {
        json_t *req = chat ? h_chat_req(prompt, 4) : h_completion_req(prompt, 4);
        char *body = h_dump(req);
        h_resp r;
        char msg[1024];
        const char *path = chat ? "/v1/chat/completions" : "/v1/completions";
        post_raw(s->port, path, body, &r);
        h_assert_error(&r, 400, NULL, msg, sizeof msg);
        long nums[16];
        int n = numbers_in(msg, nums, 16);
        int has_ctx = 0, has_prompt = 0;
        for (int i = 0; i < n; i++) {
            has_ctx |= nums[i] == 64;
            has_prompt |= nums[i] > 64 && nums[i] < 1000;
        }
        if (!has_ctx || !has_prompt)
            fail_msg("%s: context error message lacks the context (64) or the prompt's token "
                     "count: \"%s\"",
                     path, msg);
        h_resp_free(&r);
        free(body);
        json_decref(req);
    }
    assert_still_serves(s);
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_requests, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_routes, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_body_too_large, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_context_too_long, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
