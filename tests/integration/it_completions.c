/* it_completions: POST /v1/completions against llama.cpp's own greedy outputs (golden/), usage
 * accounting, stop strings, seeded sampling, prefix reuse, and the /v1/models listing. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GOLDEN 8

/* POSTs a completions request and returns the parsed 200 response (owned). */
static json_t *complete(int port, json_t *req) {
    json_t *r = h_post_expect(port, "/v1/completions", req, 200);
    json_decref(req);
    return r;
}

static const char *choice_text(const json_t *r) {
    json_t *t = h_get(r, "choices.0.text");
    if (!json_is_string(t)) {
        char *d = h_dump(r);
        fail_msg("no choices[0].text in %s", d);
    }
    return json_string_value(t);
}

static const char *finish(const json_t *r) {
    json_t *f = h_get(r, "choices.0.finish_reason");
    return json_is_string(f) ? json_string_value(f) : "(not a string)";
}

static void assert_text(const char *what, const char *got, const char *want) {
    if (strcmp(got, want) != 0)
        fail_msg("%s:\n  got:  \"%s\"\n  want: \"%s\"", what, got, want);
}

/* Greedy text equals llama.cpp's for every golden case; finish "length"; usage adds up. */
static void test_golden_greedy(void **state) {
    h_test *t = *state;
    h_golden g[MAX_GOLDEN];
    int n = h_golden_load(g, MAX_GOLDEN);
    h_server *s = h_start_default(t, NULL);
    for (int i = 0; i < n; i++) {
        json_t *r = complete(s->port, h_completion_req(g[i].prompt, g[i].max_tokens));
        char what[600];
        snprintf(what, sizeof what, "greedy continuation of \"%.400s\"", g[i].prompt);
        assert_text(what, choice_text(r), g[i].text);
        assert_string_equal(finish(r), "length");
        assert_string_equal(h_str(r, "object"), "text_completion");
        assert_string_equal(h_str(r, "model"), H_MODEL_NAME);
        assert_true(h_str(r, "id")[0] != '\0');
        assert_int_equal(json_array_size(h_arr(r, "choices")), 1);
        assert_int_equal(h_int(json_array_get(h_arr(r, "choices"), 0), "index"), 0);
        json_t *u = h_obj(r, "usage");
        assert_int_equal(h_int(u, "completion_tokens"), g[i].max_tokens);
        assert_true(h_int(u, "prompt_tokens") > 0);
        assert_int_equal(h_int(u, "total_tokens"),
                         h_int(u, "prompt_tokens") + h_int(u, "completion_tokens"));
        json_decref(r);
    }
    h_pass(t);
}

/* The thread count changes nothing: two threads give (a prefix of) the golden text too. Short:
 * with more threads than free cores (ctest -j 2 on two busy cores) ggml's spinning workers make
 * each token cost up to a scheduler time slice. */
static void test_golden_two_threads(void **state) {
    h_test *t = *state;
    h_golden g[MAX_GOLDEN];
    h_golden_load(g, MAX_GOLDEN);
    const char *args[] = {"--threads", "2", NULL};
    h_server *s = h_start_default(t, args);
    json_t *r = complete(s->port, h_completion_req(g[0].prompt, 12));
    const char *text = choice_text(r);
    if (text[0] == '\0' || strncmp(text, g[0].text, strlen(text)) != 0)
        fail_msg("12 greedy tokens with 2 threads: \"%s\" is not a prefix of golden \"%s\"", text,
                 g[0].text);
    json_decref(r);
    h_pass(t);
}

/* The prompt is tokenized with BOS like llama.cpp's simple.cpp: "Once upon a time" is 5 tokens
 * there (BOS + 4), "Lily and Tom went to the" 9 (llama_perf_context_print of tools/llama_ref.sh's
 * program). */
static void test_prompt_tokens_with_bos(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    json_t *r = complete(s->port, h_completion_req("Once upon a time", 1));
    assert_int_equal(h_int(h_obj(r, "usage"), "prompt_tokens"), 5);
    json_decref(r);
    r = complete(s->port, h_completion_req("Lily and Tom went to the", 1));
    assert_int_equal(h_int(h_obj(r, "usage"), "prompt_tokens"), 9);
    assert_int_equal(h_int(h_obj(r, "usage"), "completion_tokens"), 1);
    json_decref(r);
    h_pass(t);
}

/* Plain JSON when stream is absent or false; the HTTP layer says so in Content-Type. */
static void test_non_stream_is_json(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    for (int i = 0; i < 2; i++) {
        json_t *req = h_completion_req("Once upon a time", 4);
        if (i == 1)
            json_object_set_new(req, "stream", json_false());
        char *body = h_dump(req);
        h_resp r;
        h_request(s->port, "POST", "/v1/completions", body, strlen(body), 0, &r);
        assert_int_equal(r.status, 200);
        if (strncmp(r.content_type, "application/json", 16) != 0)
            fail_msg("Content-Type \"%s\" for %s", r.content_type, body);
        if (strstr(r.body, "data:") == r.body)
            fail_msg("SSE answer to a non-streaming request: %s", r.body);
        json_decref(h_json(r.body));
        h_resp_free(&r);
        free(body);
        json_decref(req);
    }
    h_pass(t);
}

typedef struct stop_case {
    const char *stops[3]; /* NULL-terminated */
    const char *cut_at;   /* the text ends right before its first occurrence; NULL = no cut */
} stop_case;

/* Stop strings end the text right before the match (never leaking a partial match), with
 * finish_reason "stop"; a stop string that only partially matches releases the held text. */
static void test_stop_strings(void **state) {
    h_test *t = *state;
    h_golden g[MAX_GOLDEN];
    h_golden_load(g, MAX_GOLDEN);
    const h_golden *ref = &g[0]; /* ", there was a little girl named Lily. She loved to ..." */
    const stop_case cases[] = {
        {{"Lily", NULL}, "Lily"},
        {{"girl named", NULL}, "girl named"},      /* spans tokens */
        {{"zzz", "park. One", NULL}, "park. One"}, /* list form */
        {{"park", "a little", NULL}, "a little"},  /* earliest match wins */
        {{",", NULL}, ","},                        /* matches the very first token */
        {{"She loved to dance", NULL}, NULL},      /* "She loved to " occurs, never more */
        {{"Lily's mom said\nand", NULL}, NULL},    /* partial match at the very end */
    };
    h_server *s = h_start_default(t, NULL);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char want[4096];
        snprintf(want, sizeof want, "%s", ref->text);
        if (cases[c].cut_at != NULL) {
            char *at = strstr(want, cases[c].cut_at);
            assert_non_null(at);
            *at = '\0';
        }
        json_t *stops = json_array();
        for (int i = 0; cases[c].stops[i] != NULL; i++)
            json_array_append_new(stops, json_string(cases[c].stops[i]));
        json_t *req = h_completion_req(ref->prompt, ref->max_tokens);
        if (json_array_size(stops) == 1)
            json_object_set(req, "stop", json_array_get(stops, 0));
        else
            json_object_set(req, "stop", stops);
        char what[256];
        snprintf(what, sizeof what, "stop case %zu (\"%s\")", c, cases[c].stops[0]);

        json_t *r = complete(s->port, json_deep_copy(req));
        assert_text(what, choice_text(r), want);
        assert_string_equal(finish(r), cases[c].cut_at != NULL ? "stop" : "length");
        json_decref(r);

        json_object_set_new(req, "stream", json_true());
        char *body = h_dump(req);
        h_sse sse;
        h_stream(s->port, "/v1/completions", body, 0, 0, &sse);
        assert_int_equal(sse.status, 200);
        assert_true(sse.done);
        char *text = h_sse_text(&sse);
        snprintf(what, sizeof what, "streamed stop case %zu (\"%s\")", c, cases[c].stops[0]);
        assert_text(what, text, want);
        free(text);
        /* The last event carries the finish reason. */
        assert_true(sse.n_events > 0);
        json_t *last = h_json(sse.events[sse.n_events - 1]);
        assert_string_equal(finish(last), cases[c].cut_at != NULL ? "stop" : "length");
        json_decref(last);
        h_sse_free(&sse);
        free(body);
        json_decref(req);
        json_decref(stops);
    }
    h_pass(t);
}

/* Greedy stays greedy whatever the other samplers say. */
static void test_greedy_ignores_samplers(void **state) {
    h_test *t = *state;
    h_golden g[MAX_GOLDEN];
    h_golden_load(g, MAX_GOLDEN);
    h_server *s = h_start_default(t, NULL);
    json_t *req = h_completion_req(g[1].prompt, g[1].max_tokens);
    json_object_set_new(req, "top_k", json_integer(40));
    json_object_set_new(req, "top_p", json_real(0.9));
    json_object_set_new(req, "min_p", json_real(0.05));
    json_object_set_new(req, "seed", json_integer(7));
    json_t *r = complete(s->port, req);
    assert_text("greedy with top_k/top_p/min_p", choice_text(r), g[1].text);
    json_decref(r);
    h_pass(t);
}

static char *sampled(int port, const char *prompt, double temp, long long seed) {
    json_t *req = h_completion_req(prompt, 48);
    json_object_set_new(req, "temperature", json_real(temp));
    json_object_set_new(req, "seed", json_integer(seed));
    json_t *r = complete(port, req);
    char *text = strdup(choice_text(r));
    json_decref(r);
    return text;
}

/* Same seed and temperature: the same text; other seeds: (almost surely) another text. */
static void test_seeded_sampling(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    char *a = sampled(s->port, "Once upon a time", 0.9, 42);
    char *b = sampled(s->port, "Once upon a time", 0.9, 42);
    assert_text("same seed, same temperature", b, a);
    int differ = 0;
    for (long long seed = 1; seed <= 3; seed++) {
        char *c = sampled(s->port, "Once upon a time", 0.9, seed);
        differ += strcmp(c, a) != 0;
        free(c);
    }
    if (differ == 0)
        fail_msg("seeds 1, 2, 3 and 42 all gave \"%s\"", a);
    free(a);
    free(b);
    h_pass(t);
}

/* The same long prompt twice on one slot: the second request reuses the cached prefix (and
 * still gives the same greedy text); a longer prompt with that prefix reuses it too. */
static void test_prefix_reuse(void **state) {
    h_test *t = *state;
    h_golden g[MAX_GOLDEN];
    h_golden_load(g, MAX_GOLDEN);
    char prompt[8192], longer[9000];
    snprintf(prompt, sizeof prompt, "%s%s", g[0].prompt, g[0].text);
    snprintf(longer, sizeof longer, "%s The end.", prompt);
    const char *args[] = {"--parallel", "1", NULL};
    h_server *s = h_start_default(t, args);

    json_t *r1 = complete(s->port, h_completion_req(prompt, 8));
    json_t *u1 = h_obj(r1, "usage");
    long long pt = h_int(u1, "prompt_tokens");
    assert_true(pt > 60);
    assert_int_equal(h_int(h_obj(u1, "prompt_tokens_details"), "cached_tokens"), 0);

    json_t *r2 = complete(s->port, h_completion_req(prompt, 8));
    json_t *u2 = h_obj(r2, "usage");
    long long cached = h_int(h_obj(u2, "prompt_tokens_details"), "cached_tokens");
    if (cached <= 0 || cached > pt)
        fail_msg("second identical prompt: cached_tokens %lld of %lld", cached, pt);
    assert_int_equal(h_int(u2, "prompt_tokens"), pt);
    assert_text("text with a reused prefix", choice_text(r2), choice_text(r1));

    json_t *r3 = complete(s->port, h_completion_req(longer, 8));
    json_t *u3 = h_obj(r3, "usage");
    long long cached3 = h_int(h_obj(u3, "prompt_tokens_details"), "cached_tokens");
    if (cached3 < pt - 2 || cached3 >= h_int(u3, "prompt_tokens"))
        fail_msg("longer prompt with a cached prefix of %lld tokens: cached_tokens %lld of %lld",
                 pt, cached3, h_int(u3, "prompt_tokens"));
    json_decref(r1);
    json_decref(r2);
    json_decref(r3);
    h_pass(t);
}

/* A prompt that nearly fills the context: generation stops at the context's end with
 * finish_reason "length", plain and streamed alike. */
static void test_context_fills(void **state) {
    h_test *t = *state;
    const char *args[] = {"--ctx", "64", NULL};
    h_server *s = h_start_default(t, args);
    char prompt[1024] = "";
    for (int i = 0; i < 6; i++)
        strncat(prompt, "Once upon a time there was a dog. ", sizeof prompt - strlen(prompt) - 1);
    json_t *req = h_completion_req(prompt, 100);
    json_t *r = h_post_expect(s->port, "/v1/completions", req, 200);
    json_t *u = h_obj(r, "usage");
    long long pt = h_int(u, "prompt_tokens"), ct = h_int(u, "completion_tokens");
    if (pt >= 64 || ct < 1 || pt + ct > 65)
        fail_msg("ctx 64: prompt_tokens %lld, completion_tokens %lld", pt, ct);
    assert_string_equal(finish(r), "length");
    json_object_set_new(req, "stream", json_true());
    char *body = h_dump(req);
    h_sse sse;
    h_stream(s->port, "/v1/completions", body, 0, 0, &sse);
    assert_int_equal(sse.status, 200);
    assert_true(sse.done && sse.n_events > 0);
    char *text = h_sse_text(&sse);
    assert_text("streamed up to the context's end", text, choice_text(r));
    json_t *last = h_json(sse.events[sse.n_events - 1]);
    assert_string_equal(finish(last), "length");
    json_decref(last);
    free(text);
    h_sse_free(&sse);
    free(body);
    json_decref(r);
    json_decref(req);
    h_pass(t);
}

/* GET /v1/models and /v1/models/{id}; GET /health answers JSON. */
static void test_models_endpoints(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    h_resp r;
    h_request(s->port, "GET", "/v1/models", NULL, 0, 0, &r);
    assert_int_equal(r.status, 200);
    json_t *j = h_json(r.body);
    assert_string_equal(h_str(j, "object"), "list");
    json_t *data = h_arr(j, "data");
    assert_int_equal(json_array_size(data), 1);
    assert_string_equal(h_str(json_array_get(data, 0), "id"), H_MODEL_NAME);
    assert_string_equal(h_str(json_array_get(data, 0), "object"), "model");
    json_decref(j);
    h_resp_free(&r);

    h_request(s->port, "GET", "/v1/models/" H_MODEL_NAME, NULL, 0, 0, &r);
    assert_int_equal(r.status, 200);
    j = h_json(r.body);
    assert_string_equal(h_str(j, "id"), H_MODEL_NAME);
    assert_string_equal(h_str(j, "object"), "model");
    json_decref(j);
    h_resp_free(&r);

    char msg[1024];
    h_request(s->port, "GET", "/v1/models/nope", NULL, 0, 0, &r);
    h_assert_error(&r, 404, NULL, msg, sizeof msg);
    h_resp_free(&r);

    json_decref(h_health(s->port));
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_golden_greedy, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_golden_two_threads, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_prompt_tokens_with_bos, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_non_stream_is_json, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_stop_strings, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_greedy_ignores_samplers, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_seeded_sampling, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_prefix_reuse, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_context_fills, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_models_endpoints, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
