/* it_concurrency: several requests at once give the same texts as one at a time; a client that
 * hangs up mid-stream frees its slot; a full queue answers 503 with Retry-After. */
#include "harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GOLDEN 8
#define N_PARALLEL 4

/* A request run in a thread: only h_request there (it never fails the test). */
typedef struct job {
    int port;
    const char *path;
    char *body;
    pthread_barrier_t *start; /* NULL = start at once */
    h_resp resp;
    int64_t ms; /* how long it took */
} job;

static void *job_run(void *arg) {
    job *j = arg;
    if (j->start != NULL)
        pthread_barrier_wait(j->start);
    int64_t t0 = h_now_ms();
    h_request(j->port, "POST", j->path, j->body, strlen(j->body), 0, &j->resp);
    j->ms = h_now_ms() - t0;
    return NULL;
}

static const char *text_of(const h_resp *r, json_t **keep) {
    if (r->status != 200)
        fail_msg("status %ld (curl %d): %s", r->status, r->curl_code, r->body);
    *keep = h_json(r->body);
    json_t *t = h_get(*keep, "choices.0.text");
    if (!json_is_string(t))
        fail_msg("no choices[0].text: %s", r->body);
    return json_string_value(t);
}

/* models[0].<key> of GET /health, or -1 when the model is not loaded yet. */
static long long health_num(int port, const char *key) {
    json_t *h = h_health(port);
    char path[64];
    snprintf(path, sizeof path, "models.0.%s", key);
    json_t *v = h_get(h, path);
    long long n = json_is_integer(v) ? (long long)json_integer_value(v) : -1;
    json_decref(h);
    return n;
}

/* Polls GET /health until models[0].key == want or the deadline; returns the last value. */
static long long health_wait(int port, const char *key, long long want, int deadline_ms) {
    int64_t end = h_now_ms() + deadline_ms;
    long long v;
    while ((v = health_num(port, key)) != want && h_now_ms() < end)
        h_sleep_ms(20);
    return v;
}

/* Four different prompts at once (greedy) give exactly the texts they give one at a time. */
static void test_parallel_equals_sequential(void **state) {
    h_test *t = *state;
    h_golden g[MAX_GOLDEN];
    int ng = h_golden_load(g, MAX_GOLDEN);
    const char *prompts[N_PARALLEL] = {g[0].prompt, g[1 % ng].prompt, g[2 % ng].prompt,
                                       "Tom had a big red ball. He"};
    const char *args[] = {"--parallel", "4", NULL};
    h_server *s = h_start_default(t, args);
    job seq[N_PARALLEL], par[N_PARALLEL];
    pthread_t th[N_PARALLEL];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, N_PARALLEL);
    for (int i = 0; i < N_PARALLEL; i++) {
        json_t *req = h_completion_req(prompts[i], 40 + 4 * i);
        seq[i] = (job){.port = s->port, .path = "/v1/completions", .body = h_dump(req)};
        par[i] = seq[i];
        par[i].start = &start;
        json_decref(req);
        job_run(&seq[i]);
    }
    for (int i = 0; i < N_PARALLEL; i++)
        pthread_create(&th[i], NULL, job_run, &par[i]);
    for (int i = 0; i < N_PARALLEL; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < N_PARALLEL; i++) {
        json_t *a, *b;
        const char *ts = text_of(&seq[i].resp, &a);
        const char *tp = text_of(&par[i].resp, &b);
        if (strcmp(ts, tp) != 0)
            fail_msg("prompt \"%s\": one at a time \"%s\", four at once \"%s\"", prompts[i], ts,
                     tp);
        /* The golden prompts: one text is a prefix of the other (max_tokens differ). */
        for (int k = 0; k < ng; k++) {
            size_t common = strlen(tp) < strlen(g[k].text) ? strlen(tp) : strlen(g[k].text);
            if (strcmp(prompts[i], g[k].prompt) == 0 && strncmp(tp, g[k].text, common) != 0)
                fail_msg("prompt \"%s\" in parallel: \"%s\" is not a prefix of golden \"%s\"",
                         prompts[i], tp, g[k].text);
        }
        json_decref(a);
        json_decref(b);
        h_resp_free(&seq[i].resp);
        h_resp_free(&par[i].resp);
        free(seq[i].body);
    }
    h_pass(t);
}

/* Streams with max_tokens far beyond what finishes quickly; hangs up after 2 chunks. With one
 * slot, the next request must then be served promptly and /health must show no active slot. */
static void test_disconnect_frees_slot(void **state) {
    h_test *t = *state;
    const char *args[] = {"--parallel", "1", "--ctx", "32768", NULL};
    h_server *s = h_start_default(t, args);
    json_t *req = h_completion_req("Once upon a time", 30000);
    json_object_set_new(req, "stream", json_true());
    char *body = h_dump(req);
    for (int round = 0; round < 2; round++) {
        h_sse sse;
        h_stream(s->port, "/v1/completions", body, 2, 0, &sse);
        if (sse.status != 200 || !sse.aborted)
            fail_msg("long stream: status %ld, %zu chunks, aborted %d: %s", sse.status,
                     sse.n_events, sse.aborted, sse.raw);
        h_sse_free(&sse);
        int64_t t0 = h_now_ms();
        long long active = health_wait(s->port, "active", 0, 5000);
        if (active != 0)
            fail_msg("round %d: /health still shows %lld active slots 5 s after the client left",
                     round, active);
        json_t *small = h_completion_req("The little dog", 8);
        char *sb = h_dump(small);
        h_resp r;
        h_request(s->port, "POST", "/v1/completions", sb, strlen(sb), 15000, &r);
        int64_t ms = h_now_ms() - t0;
        if (r.status != 200)
            fail_msg("round %d: request after a disconnect: status %ld (curl %d) after %lld ms: %s",
                     round, r.status, r.curl_code, (long long)ms, r.body);
        if (ms > 10000)
            fail_msg("round %d: request after a disconnect took %lld ms", round, (long long)ms);
        h_resp_free(&r);
        free(sb);
        json_decref(small);
    }
    assert_int_equal(health_wait(s->port, "active", 0, 5000), 0);
    free(body);
    json_decref(req);
    h_pass(t);
}

/* A non-streaming client that gives up (times out) also frees its slot. */
static void test_disconnect_non_stream(void **state) {
    h_test *t = *state;
    const char *args[] = {"--parallel", "1", "--ctx", "32768", NULL};
    h_server *s = h_start_default(t, args);
    json_t *req = h_completion_req("Once upon a time", 30000);
    char *body = h_dump(req);
    h_resp r;
    h_request(s->port, "POST", "/v1/completions", body, strlen(body), 1000, &r);
    if (r.status != 0)
        fail_msg("a 30000-token request finished within 1 s (status %ld): the test needs a "
                 "longer generation",
                 r.status);
    h_resp_free(&r);
    long long active = health_wait(s->port, "active", 0, 5000);
    if (active != 0)
        fail_msg("/health still shows %lld active slots 5 s after the client left", active);
    json_t *small = h_completion_req("The little dog", 8);
    json_decref(h_post_expect(s->port, "/v1/completions", small, 200));
    json_decref(small);
    free(body);
    json_decref(req);
    h_pass(t);
}

/* A client hanging up on one slot does not disturb the request generating on the other. */
static void test_cancel_isolated(void **state) {
    h_test *t = *state;
    h_golden g[MAX_GOLDEN];
    h_golden_load(g, MAX_GOLDEN);
    const char *args[] = {"--parallel", "2", "--ctx", "32768", NULL};
    h_server *s = h_start_default(t, args);
    json_t *lreq = h_completion_req("The little dog", 30000);
    json_object_set_new(lreq, "stream", json_true());
    char *lbody = h_dump(lreq);
    json_t *greq = h_completion_req(g[0].prompt, g[0].max_tokens);
    for (int round = 0; round < 3; round++) {
        static job gj;
        static pthread_t th;
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, 2);
        gj = (job){
            .port = s->port, .path = "/v1/completions", .body = h_dump(greq), .start = &start};
        pthread_create(&th, NULL, job_run, &gj);
        pthread_barrier_wait(&start);
        h_sse sse;
        h_stream(s->port, "/v1/completions", lbody, 2, 0, &sse);
        pthread_join(th, NULL);
        pthread_barrier_destroy(&start);
        assert_true(sse.aborted);
        h_sse_free(&sse);
        json_t *keep;
        const char *text = text_of(&gj.resp, &keep);
        if (strcmp(text, g[0].text) != 0)
            fail_msg("round %d: next to a cancelled stream: \"%s\", want golden \"%s\"", round,
                     text, g[0].text);
        json_decref(keep);
        h_resp_free(&gj.resp);
        free(gj.body);
    }
    assert_int_equal(health_wait(s->port, "active", 0, 5000), 0);
    free(lbody);
    json_decref(lreq);
    json_decref(greq);
    h_pass(t);
}

/* One slot and a queue of one: with one request generating and one waiting, a third gets 503
 * with Retry-After and an OpenAI error body; once the slot is free, requests succeed again. */
static void test_overload_503(void **state) {
    h_test *t = *state;
    const char *args[] = {"--parallel", "1", "--queue", "1", "--ctx", "32768", NULL};
    h_server *s = h_start_default(t, args);
    json_t *req = h_completion_req("Once upon a time", 30000);
    /* static: a failed assertion leaves the threads running past this frame */
    static job hold[2];
    static pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        hold[i] = (job){.port = s->port, .path = "/v1/completions", .body = h_dump(req)};
        pthread_create(&th[i], NULL, job_run, &hold[i]);
        long long v = health_wait(s->port, i == 0 ? "active" : "queued", 1, 10000);
        if (v != 1)
            fail_msg("/health: %s is %lld, want 1 after %d long requests",
                     i == 0 ? "active" : "queued", v, i + 1);
    }
    json_t *small = h_completion_req("The little dog", 4);
    char *sb = h_dump(small);
    h_resp r;
    h_request(s->port, "POST", "/v1/completions", sb, strlen(sb), 10000, &r);
    char msg[1024];
    h_assert_error(&r, 503, NULL, msg, sizeof msg);
    if (r.retry_after[0] == '\0' || strtol(r.retry_after, NULL, 10) <= 0)
        fail_msg("503 without a positive Retry-After (\"%s\")", r.retry_after);
    h_resp_free(&r);
    /* Streaming requests are refused the same way, before any SSE. */
    json_object_set_new(small, "stream", json_true());
    free(sb);
    sb = h_dump(small);
    h_request(s->port, "POST", "/v1/completions", sb, strlen(sb), 10000, &r);
    h_assert_error(&r, 503, NULL, msg, sizeof msg);
    h_resp_free(&r);

    h_server_stop(s, 10000);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        h_resp_free(&hold[i].resp);
        free(hold[i].body);
    }
    free(sb);
    json_decref(small);
    json_decref(req);
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parallel_equals_sequential, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_frees_slot, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_non_stream, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_isolated, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_overload_503, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
