/* it_spec: speculative decoding (docs/SPECULATIVE.md). Greedy output is byte-identical with and
 * without it, for several requests at once, with drafts from a draft model (stories260K as its
 * own draft: nearly every draft token is kept; a random-weight draft with stories260K's
 * vocabulary from tools/gen_model: few are) and from n-grams of the slot's own text, in an
 * engine process and in-process; the counters of /health and /metrics move. Stop strings,
 * max_tokens, logprobs, n > 1 and a JSON schema's grammar go through the same verification. A draft
 * model with another vocabulary and contradictory flags are refused with their reasons. */
#include "harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_REQ 4

/* A text that repeats, for n-gram drafts to find (a "rewrite this" task in miniature). */
#define REPEAT_PROMPT                                                                              \
    "Lily had a red ball. She played with the ball in the park. Lily had a red ball. She played "  \
    "with the ball in the park. Lily had a red ball."

static const char *const prompts[N_REQ] = {"Once upon a time", REPEAT_PROMPT,
                                           "Tom had a big dog. One day", "Tell me about Lily"};
static const int max_tokens[N_REQ] = {120, 90, 100, 200};

/* Request 3: a chat whose answer a JSON schema constrains (a grammar in the sampler). */
#define SCHEMA                                                                                     \
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":"       \
    "\"integer\"}},\"required\":[\"name\",\"age\"]}"

typedef struct job {
    int port;
    const char *path;
    char *body;
    pthread_barrier_t *start;
    h_resp resp;
} job;

static void *job_run(void *arg) {
    job *j = arg;
    pthread_barrier_wait(j->start);
    h_request(j->port, "POST", j->path, j->body, strlen(j->body), 0, &j->resp);
    return NULL;
}

/* The request bodies: greedy, one with logprobs and n = 2, one with a stop string, one chat with
 * a JSON schema. */
static char *body_of(int i) {
    json_t *req = i == 3 ? h_chat_req(prompts[i], max_tokens[i])
                         : h_completion_req(prompts[i], max_tokens[i]);
    if (i == 1) {
        json_object_set_new(req, "logprobs", json_integer(2));
        json_object_set_new(req, "n", json_integer(2));
    }
    if (i == 2)
        json_object_set_new(req, "stop", json_pack("[s]", "park"));
    if (i == 3)
        json_object_set_new(req, "response_format",
                            json_pack("{s:s, s:{s:s, s:o}}", "type", "json_schema", "json_schema",
                                      "name", "person", "schema", json_loads(SCHEMA, 0, NULL)));
    char *b = h_dump(req);
    json_decref(req);
    return b;
}

/* Sends the N_REQ requests at once; returns their responses' "choices" arrays, dumped. */
static void ask_all(int port, char **out) {
    job jobs[N_REQ];
    pthread_t th[N_REQ];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, N_REQ);
    for (int i = 0; i < N_REQ; i++) {
        jobs[i] = (job){.port = port,
                        .path = i == 3 ? "/v1/chat/completions" : "/v1/completions",
                        .body = body_of(i),
                        .start = &start};
        pthread_create(&th[i], NULL, job_run, &jobs[i]);
    }
    for (int i = 0; i < N_REQ; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < N_REQ; i++) {
        if (jobs[i].resp.status != 200)
            fail_msg("request %d: status %ld: %s", i, jobs[i].resp.status, jobs[i].resp.body);
        json_t *r = h_json(jobs[i].resp.body);
        out[i] = h_dump(h_arr(r, "choices"));
        json_decref(r);
        h_resp_free(&jobs[i].resp);
        free(jobs[i].body);
    }
}

/* A growing NUL-terminated string. */
typedef struct buf_t {
    char *s;
    size_t len;
} buf_t;

static void prompt_add(buf_t *b, const char *text) {
    size_t n = strlen(text);
    char *p = realloc(b->s, b->len + n + 1);
    assert_non_null(p);
    memcpy(p + b->len, text, n + 1);
    b->s = p;
    b->len += n;
}

/* models.0.speculative.key of /health (-1 when absent). */
static long long spec_num(int port, const char *key) {
    json_t *h = h_health(port);
    char path[96];
    snprintf(path, sizeof path, "models.0.speculative.%s", key);
    json_t *v = h_get(h, path);
    long long n = json_is_integer(v) ? (long long)json_integer_value(v) : -1;
    json_decref(h);
    return n;
}

/* Serves with args, asks all, stops; the choices into out, the counters into drafted/kept. */
static void run_server(h_test *t, const char *const *args, char **out, long long *drafted,
                       long long *kept) {
    h_server *s = h_start(t, args);
    ask_all(s->port, out);
    *drafted = spec_num(s->port, "draft_tokens");
    *kept = spec_num(s->port, "accepted_tokens");
    if (*drafted > 0) { /* the Prometheus counters say the same */
        h_resp r;
        h_request(s->port, "GET", "/metrics", NULL, 0, 5000, &r);
        char want[128];
        snprintf(want, sizeof want, "shimmy_spec_draft_tokens_total{model=\"%s\"} %lld",
                 H_MODEL_NAME, *drafted);
        if (strstr(r.body, want) == NULL)
            fail_msg("/metrics lacks '%s':\n%s", want, r.body);
        snprintf(want, sizeof want, "shimmy_spec_accepted_tokens_total{model=\"%s\"} %lld",
                 H_MODEL_NAME, *kept);
        assert_non_null(strstr(r.body, want));
        h_resp_free(&r);
    }
    h_server_stop(s, 10000);
}

static void free_all(char **a) {
    for (int i = 0; i < N_REQ; i++)
        free(a[i]);
}

/* The reference: the same requests without speculation. */
static void baseline(h_test *t, char **out) {
    const char *args[] = {"--model", h_model_path(H_MODEL_FILE), "--parallel", "4", NULL};
    long long d, k;
    run_server(t, args, out, &d, &k);
    assert_int_equal(d, -1); /* no "speculative" object when it is off */
}

static bool same_field(const json_t *a, const json_t *b, const char *key) {
    json_t *x = json_object_get(a, key), *y = json_object_get(b, key);
    return x == NULL ? y == NULL : json_equal(x, y);
}

/* Whether two choices arrays are the same (when not, what differs goes into why): text, finish
 * reason and tokens byte for byte, log probabilities within 1e-2. A token's logits differ in the
 * last bits with what shares its batch (drafted tokens after it, other requests' tokens, a KV copy
 * for n = 2): its log probability moves by up to about 1.5e-3 between runs of the same server
 * without speculation, while the text cannot tell. */
static bool same_choices(const char *a_text, const char *b_text, char *why, size_t len) {
    json_t *a = h_json(a_text), *b = h_json(b_text);
    bool same = json_array_size(a) == json_array_size(b);
    snprintf(why, len, "the number of choices");
    for (size_t i = 0; same && i < json_array_size(a); i++) {
        json_t *ca = json_array_get(a, i), *cb = json_array_get(b, i);
        json_t *la = json_object_get(ca, "logprobs"), *lb = json_object_get(cb, "logprobs");
        same = same_field(ca, cb, "text") && same_field(ca, cb, "message") &&
               strcmp(h_str(ca, "finish_reason"), h_str(cb, "finish_reason")) == 0 &&
               (json_is_null(la)
                    ? json_is_null(lb)
                    : json_equal(json_object_get(la, "tokens"), json_object_get(lb, "tokens")));
        snprintf(why, len, "choice %zu: its text, message, finish reason or tokens", i);
        json_t *va = json_object_get(la, "token_logprobs"),
               *vb = json_object_get(lb, "token_logprobs");
        for (size_t k = 0; same && k < json_array_size(va); k++) {
            double x = json_number_value(json_array_get(va, k));
            double y = json_number_value(json_array_get(vb, k));
            same = x - y < 1e-2 && y - x < 1e-2;
            snprintf(why, len, "choice %zu: token %zu's logprob %.7g against %.7g", i, k, x, y);
        }
    }
    json_decref(a);
    json_decref(b);
    return same;
}

static void assert_same(char *const *want, char *const *got, const char *what) {
    char why[256];
    for (int i = 0; i < N_REQ; i++)
        if (!same_choices(want[i], got[i], why, sizeof why)) {
            fprintf(stderr, "without: %s\nwith:    %s\n", want[i], got[i]);
            fail_msg("%s: request %d differs from the run without speculation: %s", what, i, why);
        }
}

/* stories260K drafting for itself: the outputs match, nearly all drafts are kept; in an engine
 * process and in-process. */
static void test_draft_self(void **state) {
    h_test *t = *state;
    char *want[N_REQ], *got[N_REQ];
    baseline(t, want);
    char model[4200];
    snprintf(model, sizeof model, "%s", h_model_path(H_MODEL_FILE));
    for (int in_process = 0; in_process < 2; in_process++) {
        const char *args[] = {"--model",
                              model,
                              "--parallel",
                              "4",
                              "--model-draft",
                              model,
                              "--draft-max",
                              "4",
                              in_process ? "--in-process" : NULL,
                              NULL};
        long long d, k;
        run_server(t, args, got, &d, &k);
        fprintf(stderr, "self draft (%s): %lld drafted, %lld kept\n",
                in_process ? "in-process" : "engine process", d, k);
        assert_same(want, got, "draft model (itself)");
        assert_true(d > 50);
        /* The greedy draft is the greedy model on the three plain requests; the JSON answer's
         * drafts ignore its grammar (as llama-server's do) and are mostly rejected. */
        assert_true(k * 2 > d);
        free_all(got);
    }
    free_all(want);
    h_pass(t);
}

/* A random-weight draft with the same vocabulary: the outputs still match, few drafts kept. */
static void test_draft_random(void **state) {
    h_test *t = *state;
    char *want[N_REQ], *got[N_REQ];
    baseline(t, want);
    char draft[4300], exe[4200];
    snprintf(draft, sizeof draft, "%s/random-draft.gguf", t->dir);
    snprintf(exe, sizeof exe, "%s/gen_model", h_tools_dir());
    const char *gen[] = {draft,
                         "--vocab-from",
                         h_model_path(H_MODEL_FILE),
                         "--layers",
                         "1",
                         "--embd",
                         "32",
                         "--ff",
                         "64",
                         "--heads",
                         "4",
                         "--kv-heads",
                         "4",
                         "--ctx",
                         "2048",
                         "--type",
                         "f32",
                         "--seed",
                         "7",
                         NULL};
    char *out = NULL;
    if (h_run_exe(t, exe, gen, 60000, &out) != 0)
        fail_msg("gen_model failed: %s", out);
    free(out);
    char model[4200];
    snprintf(model, sizeof model, "%s", h_model_path(H_MODEL_FILE));
    const char *args[] = {
        "--model", model, "--parallel", "4", "--model-draft", "stories260k=" /* per model */, NULL};
    char per[4400];
    snprintf(per, sizeof per, "stories260k=%s", draft);
    args[5] = per;
    long long d, k;
    run_server(t, args, got, &d, &k);
    fprintf(stderr, "random draft: %lld drafted, %lld kept\n", d, k);
    assert_same(want, got, "random draft model");
    assert_true(d > 50);
    assert_true(k * 2 < d);
    free_all(got);
    free_all(want);
    h_pass(t);
}

/* n-gram drafts from the slot's own text: the outputs match and drafts are kept (the repeated
 * passage); in an engine process and in-process. */
static void test_ngram(void **state) {
    h_test *t = *state;
    char *want[N_REQ], *got[N_REQ];
    baseline(t, want);
    char model[4200];
    snprintf(model, sizeof model, "%s", h_model_path(H_MODEL_FILE));
    for (int in_process = 0; in_process < 2; in_process++) {
        const char *args[] = {"--model",
                              model,
                              "--parallel",
                              "4",
                              "--spec-type",
                              "ngram-simple",
                              "--spec-ngram-simple-size-n",
                              "3",
                              "--spec-ngram-simple-size-m",
                              "8",
                              in_process ? "--in-process" : NULL,
                              NULL};
        long long d, k;
        run_server(t, args, got, &d, &k);
        fprintf(stderr, "ngram-simple (%s): %lld drafted, %lld kept\n",
                in_process ? "in-process" : "engine process", d, k);
        assert_same(want, got, "ngram-simple");
        assert_true(d > 0);
        assert_true(k > 0);
        free_all(got);
    }
    free_all(want);
    h_pass(t);
}

/* Contradictory flags, a missing draft file, an unknown type, and a draft model whose
 * vocabulary is not the model's are refused with their reasons. */
static void test_refusals(void **state) {
    h_test *t = *state;
    char *out;
    char model[4200], other[4200];
    snprintf(model, sizeof model, "%s", h_model_path(H_MODEL_FILE));
    snprintf(other, sizeof other, "%s", h_model_path("llama-2-tiny-random.gguf"));
    const char *no_draft[] = {"serve", "--model", model, "--spec-type", "draft-simple", NULL};
    assert_int_equal(h_run(t, no_draft, 10000, &out), 1); /* checked as the engine starts */
    assert_non_null(strstr(out, "--spec-type draft-simple needs a draft model"));
    free(out);
    const char *both[] = {"serve",        "--model",       model, "--spec-type",
                          "ngram-simple", "--model-draft", model, NULL};
    assert_int_equal(h_run(t, both, 10000, &out), 1);
    assert_non_null(strstr(out, "does not use a draft model"));
    free(out);
    const char *missing[] = {"serve", "--model-draft", "/nonexistent/draft.gguf", NULL};
    assert_int_equal(h_run(t, missing, 10000, &out), 2);
    assert_non_null(strstr(out, "--model-draft: cannot read /nonexistent/draft.gguf"));
    free(out);
    const char *type[] = {"serve", "--spec-type", "eagle", NULL};
    assert_int_equal(h_run(t, type, 10000, &out), 2);
    assert_non_null(strstr(out, "--spec-type wants none, draft-simple or ngram-simple"));
    free(out);
    const char *vocab[] = {"generate",      H_MODEL_NAME, "--model",  model,
                           "--model-draft", other,        "--prompt", "Once",
                           "--max-tokens",  "2",          NULL};
    assert_int_equal(h_run(t, vocab, 30000, &out), 1);
    if (strstr(out, "cannot draft for 'stories260k': its vocabulary is not the model's") == NULL)
        fail_msg("a draft with another vocabulary: want the reason:\n%s", out);
    free(out);
    h_pass(t);
}

/* models.0.key of /health, polled until it equals want or the deadline; returns the last. */
static long long health_wait(int port, const char *key, long long want, int deadline_ms) {
    int64_t end = h_now_ms() + deadline_ms;
    long long v;
    for (;;) {
        json_t *h = h_health(port);
        char path[64];
        snprintf(path, sizeof path, "models.0.%s", key);
        json_t *j = h_get(h, path);
        v = json_is_integer(j) ? (long long)json_integer_value(j) : -1;
        json_decref(h);
        if (v == want || h_now_ms() >= end)
            return v;
        h_sleep_ms(20);
    }
}

/* A draft model given per model in a --config section (it beats a global --spec-type); a client
 * that hangs up mid-stream frees its speculating slot, and the next request is answered as
 * before. */
static void test_config_and_cancel(void **state) {
    h_test *t = *state;
    char model[4200], cfg[4300];
    snprintf(model, sizeof model, "%s", h_model_path(H_MODEL_FILE));
    snprintf(cfg, sizeof cfg, "%s/shimmy.ini", t->dir);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fprintf(f, "[%s]\nmodel-draft = %s\n", H_MODEL_NAME, model);
    fclose(f);
    /* the model's own draft beats the global type (ADR 0009) */
    const char *args[] = {"--model", model,         "--parallel",   "2", "--config",
                          cfg,       "--spec-type", "ngram-simple", NULL};
    h_server *s = h_start(t, args);
    json_t *req = h_completion_req(prompts[0], max_tokens[0]);
    json_t *before = h_post_expect(s->port, "/v1/completions", req, 200);
    json_t *h = h_health(s->port);
    assert_string_equal(json_string_value(h_get(h, "models.0.speculative.type")), "draft-simple");
    json_decref(h);
    /* hang up after two events of a long streamed answer */
    json_t *longreq = h_completion_req(prompts[1], 400);
    json_object_set_new(longreq, "stream", json_true());
    char *body = h_dump(longreq);
    h_sse sse;
    h_stream(s->port, "/v1/completions", body, 2, 0, &sse);
    assert_true(sse.aborted);
    h_sse_free(&sse);
    free(body);
    json_decref(longreq);
    assert_int_equal(health_wait(s->port, "active", 0, 5000), 0);
    json_t *after = h_post_expect(s->port, "/v1/completions", req, 200);
    assert_string_equal(json_string_value(h_get(before, "choices.0.text")),
                        json_string_value(h_get(after, "choices.0.text")));
    json_decref(before);
    json_decref(after);
    json_decref(req);
    h_server_stop(s, 10000);
    h_pass(t);
}

/* The answers of llama.cpp's own llama-server with the same flags (golden/spec.jsonl, made by
 * golden/make_spec_golden.sh): an 800-token prompt, without speculation, with the model drafting
 * for itself and with n-grams. The draft model's answer differs from the one without: at its
 * 14th token the two best tokens are 0.010 apart in log probability, and the verification batch
 * moves the logits enough to swap them; llama-server's does the same, and shimmy's answer equals
 * its byte for byte. The n-gram drafts are llama-server's too (the same counts). */
static void test_reference(void **state) {
    h_test *t = *state;
    char path[4300], model[4200], line[16384];
    snprintf(path, sizeof path, "%s/tests/integration/golden/spec.jsonl", h_source_dir());
    snprintf(model, sizeof model, "%s", h_model_path(H_MODEL_FILE));
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("golden file missing: %s", path);
    int n = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (line[0] != '{')
            continue;
        json_t *g = h_json(line);
        const char *spec = h_str(g, "spec");
        const char *args[] = {"--model", model, "--parallel", "1",  "--ctx", "2048", NULL,
                              NULL,      NULL,  NULL,         NULL, NULL,    NULL};
        if (strcmp(spec, "draft-simple") == 0) {
            const char *more[] = {"--spec-type",        spec, "--model-draft", model,
                                  "--spec-draft-n-max", "4"};
            memcpy(&args[6], more, sizeof more);
        } else if (strcmp(spec, "ngram-simple") == 0) {
            const char *more[] = {"--spec-type",
                                  spec,
                                  "--spec-ngram-simple-size-n",
                                  "2",
                                  "--spec-ngram-simple-size-m",
                                  "4"};
            memcpy(&args[6], more, sizeof more);
        }
        h_server *s = h_start(t, args);
        buf_t prompt = {0};
        for (long long k = 0; k < h_int(g, "reps"); k++)
            prompt_add(&prompt, h_str(g, "passage"));
        json_t *req = h_completion_req(prompt.s, (int)h_int(g, "max_tokens"));
        json_t *r = h_post_expect(s->port, "/v1/completions", req, 200);
        const char *got = json_string_value(h_get(r, "choices.0.text"));
        if (strcmp(got, h_str(g, "text")) != 0)
            fail_msg("%s: llama-server answered\n%s\nshimmy\n%s", spec, h_str(g, "text"), got);
        long long d = spec_num(s->port, "draft_tokens"), k = spec_num(s->port, "accepted_tokens");
        fprintf(stderr, "%s: drafted/kept shimmy %lld/%lld, llama-server %lld/%lld\n", spec, d, k,
                h_int(g, "draft_n"), h_int(g, "draft_n_accepted"));
        if (strcmp(spec, "ngram-simple") == 0) {
            assert_int_equal(d, h_int(g, "draft_n"));
            assert_int_equal(k, h_int(g, "draft_n_accepted"));
        } else if (strcmp(spec, "draft-simple") == 0) {
            assert_true(d > 0 && k * 10 >= d * 9);
        }
        free(prompt.s);
        json_decref(r);
        json_decref(req);
        json_decref(g);
        h_server_stop(s, 10000);
        n++;
    }
    fclose(f);
    assert_int_equal(n, 3);
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_draft_self, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_draft_random, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_ngram, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_config_and_cancel, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_reference, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_refusals, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
