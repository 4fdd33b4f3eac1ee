/* it_isolation: each model's engine runs in a child process (ADR 0005), so llama.cpp aborting
 * ends only that model's requests. Fault injection: SIGKILL, SIGSEGV and SIGABRT to the child
 * (its pid is in /health) during a whole request and during streams on the OpenAI and Ollama
 * APIs; queued requests are retried on a fresh child; a model file that aborts llama.cpp at
 * load is marked failed after three tries while the other model keeps serving; a hundred
 * crashes leave no zombie, no descriptor and no memory behind. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include "harness.h"

/* The engine pid /health shows for the first model; 0 when none is alive. */
static int engine_pid(int port, const char *model) {
    json_t *h = h_health(port);
    int pid = 0;
    json_t *models = h_arr(h, "models"), *m;
    size_t i;
    json_array_foreach(models, i, m) {
        if (strcmp(h_str(m, "name"), model) == 0 &&
            json_is_integer(json_object_get(m, "engine_pid")))
            pid = (int)json_integer_value(json_object_get(m, "engine_pid"));
    }
    json_decref(h);
    return pid;
}

static long long health_field(int port, const char *model, const char *key) {
    json_t *h = h_health(port);
    long long v = -1;
    json_t *models = h_arr(h, "models"), *m;
    size_t i;
    json_array_foreach(models, i, m) {
        if (strcmp(h_str(m, "name"), model) == 0 && json_is_integer(json_object_get(m, key)))
            v = json_integer_value(json_object_get(m, key));
    }
    json_decref(h);
    return v;
}

/* Waits until /health shows `active` slots busy on the model. */
static void wait_active(int port, int active) {
    int64_t deadline = h_now_ms() + 20000;
    while (health_field(port, H_MODEL_NAME, "active") < active) {
        if (h_now_ms() > deadline)
            fail_msg("the model never had %d busy slots", active);
        h_sleep_ms(10);
    }
}

typedef struct req_arg {
    int port;
    const char *path;
    char *body;
    bool stream;
    h_resp r;
    h_sse s;
    int64_t ended_ms;
} req_arg;

static void *run_req(void *p) {
    req_arg *a = p;
    if (a->stream && strncmp(a->path, "/v1/", 4) == 0)
        h_stream(a->port, a->path, a->body, 0, 60000, &a->s);
    else
        h_request(a->port, "POST", a->path, a->body, strlen(a->body), 60000, &a->r);
    a->ended_ms = h_now_ms();
    return NULL;
}

static char *long_body(bool stream, bool ollama) {
    char *b = malloc(512);
    if (ollama)
        snprintf(b, 512,
                 "{\"model\":\"%s\",\"prompt\":\"Once upon a time\",\"stream\":%s,"
                 "\"options\":{\"temperature\":0,\"num_predict\":4000}}",
                 H_MODEL_NAME, stream ? "true" : "false");
    else
        snprintf(b, 512,
                 "{\"model\":\"%s\",\"prompt\":\"Once upon a time\",\"max_tokens\":4000,"
                 "\"temperature\":0,\"stream\":%s}",
                 H_MODEL_NAME, stream ? "true" : "false");
    return b;
}

/* The greedy golden text comes back from the next request (a fresh child). */
static void assert_golden(int port) {
    h_golden g[4];
    assert_true(h_golden_load(g, 4) >= 1);
    json_t *req = h_completion_req(g[0].prompt, g[0].max_tokens);
    json_t *resp = h_post_expect(port, "/v1/completions", req, 200);
    assert_string_equal(json_string_value(h_get(resp, "choices.0.text")), g[0].text);
    json_decref(req);
    json_decref(resp);
}

/* A whole request, an OpenAI stream and an Ollama stream are in flight when the child gets sig:
 * each ends with the crash error within 2 s; /health answers throughout. */
static void crash_with(h_test *t, int sig) {
    const char *args[] = {"--model", h_model_path(H_MODEL_FILE), "--parallel", "3", NULL};
    h_server *s = h_start(t, args);
    req_arg a[3] = {
        {.port = s->port, .path = "/v1/completions", .body = long_body(false, false)},
        {.port = s->port,
         .path = "/v1/completions",
         .body = long_body(true, false),
         .stream = true},
        {.port = s->port, .path = "/api/generate", .body = long_body(true, true), .stream = true},
    };
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, run_req, &a[i]);
    wait_active(s->port, 3);
    int pid = engine_pid(s->port, H_MODEL_NAME);
    assert_true(pid > 0);
    int64_t killed = h_now_ms();
    assert_int_equal(kill(pid, sig), 0);
    json_decref(h_health(s->port)); /* the server answers while its child dies */
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++)
        if (a[i].ended_ms - killed > 2000)
            fail_msg("request %d ended %lld ms after the kill", i,
                     (long long)(a[i].ended_ms - killed));
    char msg[512];
    h_assert_error(&a[0].r, 503, NULL, msg, sizeof msg);
    assert_non_null(strstr(a[0].r.body, "engine_crashed"));
    assert_non_null(strstr(msg, "signal"));
    /* /health counts a slot busy from the moment the job takes it: the kill may come before its
     * first token, so the error event may be the stream's only one */
    assert_true(a[1].s.n_events >= 1);
    assert_non_null(strstr(a[1].s.events[a[1].s.n_events - 1], "engine_crashed")); /* last event */
    assert_false(a[1].s.done);
    assert_int_equal(a[2].r.status, 200); /* Ollama: the status went out with the first line */
    const char *last = strrchr(a[2].r.body, '{');
    assert_non_null(last);
    assert_non_null(strstr(last, "\"error\""));
    for (int i = 0; i < 3; i++) {
        free(a[i].body);
        h_resp_free(&a[i].r);
        h_sse_free(&a[i].s);
    }
    assert_int_equal(health_field(s->port, H_MODEL_NAME, "engine_crashes"), 1);
    assert_golden(s->port);
    assert_true(engine_pid(s->port, H_MODEL_NAME) > 0);
    h_pass(t);
}

static void test_sigkill(void **state) {
    crash_with(*state, SIGKILL);
}
/* In an ASan build (make test-asan) the engine process would catch the SIGSEGV itself and
 * spend seconds symbolizing a report before it exits: it gets the signal as a plain build does. */
static void test_sigsegv(void **state) {
    const char *was = getenv("ASAN_OPTIONS");
    char *saved = was != NULL ? strdup(was) : NULL;
    if (saved != NULL) {
        char opts[1024];
        snprintf(opts, sizeof opts, "%s:handle_segv=0", saved);
        setenv("ASAN_OPTIONS", opts, 1);
    }
    crash_with(*state, SIGSEGV);
    if (saved != NULL)
        setenv("ASAN_OPTIONS", saved, 1);
    free(saved);
}
static void test_sigabrt(void **state) {
    crash_with(*state, SIGABRT);
}

/* One slot busy, two requests queued behind it: the busy one fails, the queued ones are
 * resubmitted to a fresh child and answer the golden text. */
static void test_queued_retried(void **state) {
    h_test *t = *state;
    const char *args[] = {"--model", h_model_path(H_MODEL_FILE), "--parallel", "1", NULL};
    h_server *s = h_start(t, args);
    h_golden g[4];
    assert_true(h_golden_load(g, 4) >= 1);
    json_t *q = h_completion_req(g[0].prompt, g[0].max_tokens);
    req_arg a[3] = {{.port = s->port,
                     .path = "/v1/completions",
                     .body = long_body(true, false),
                     .stream = true}};
    for (int i = 1; i < 3; i++)
        a[i] = (req_arg){.port = s->port, .path = "/v1/completions", .body = h_dump(q)};
    pthread_t th[3];
    pthread_create(&th[0], NULL, run_req, &a[0]);
    wait_active(s->port, 1);
    for (int i = 1; i < 3; i++)
        pthread_create(&th[i], NULL, run_req, &a[i]);
    int64_t deadline = h_now_ms() + 20000;
    while (health_field(s->port, H_MODEL_NAME, "queued") < 2 && h_now_ms() < deadline)
        h_sleep_ms(10);
    assert_int_equal(health_field(s->port, H_MODEL_NAME, "queued"), 2);
    assert_int_equal(kill(engine_pid(s->port, H_MODEL_NAME), SIGKILL), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_non_null(strstr(a[0].s.events[a[0].s.n_events - 1], "engine_crashed"));
    for (int i = 1; i < 3; i++) {
        assert_int_equal(a[i].r.status, 200);
        json_t *r = h_json(a[i].r.body);
        assert_string_equal(json_string_value(h_get(r, "choices.0.text")), g[0].text);
        json_decref(r);
    }
    for (int i = 0; i < 3; i++) {
        free(a[i].body);
        h_resp_free(&a[i].r);
        h_sse_free(&a[i].s);
    }
    json_decref(q);
    h_pass(t);
}

/* A model file that aborts llama.cpp while loading: the server survives, says why, marks the
 * model failed after three tries (no more tries until a rescan), and serves the other model. */
static void test_aborting_model(void **state) {
    h_test *t = *state;
    char dir[4200], path[4300], exe[4200];
    snprintf(dir, sizeof dir, "%s/models", t->dir);
    snprintf(path, sizeof path, "%s/broken.gguf", dir);
    snprintf(exe, sizeof exe, "%s/gen_model", h_tools_dir());
    char mk[4400];
    snprintf(mk, sizeof mk, "mkdir -p '%s'", dir);
    assert_int_equal(system(mk), 0);
    const char *gen[] = {path,
                         "--vocab-from",
                         h_model_path("llama-2-tiny-random.gguf"),
                         "--layers",
                         "1",
                         "--embd",
                         "64",
                         "--ff",
                         "64",
                         "--heads",
                         "8",
                         "--kv-heads",
                         "3",
                         "--type",
                         "f32",
                         "--broken",
                         NULL};
    char *out = NULL;
    if (h_run_exe(t, exe, gen, 60000, &out) != 0)
        fail_msg("gen_model failed: %s", out);
    free(out);
    const char *args[] = {"--model", h_model_path(H_MODEL_FILE), "--model-dirs", dir, NULL};
    h_server *s = h_start(t, args);
    const char *body = "{\"model\":\"broken\",\"prompt\":\"hi\",\"max_tokens\":4}";
    char msg[512];
    for (int i = 0; i < 3; i++) {
        h_resp r;
        h_request(s->port, "POST", "/v1/completions", body, strlen(body), 60000, &r);
        h_assert_error(&r, 503, NULL, msg, sizeof msg);
        assert_non_null(strstr(msg, "while loading"));
        assert_non_null(strstr(msg, "GGML_ASSERT"));
        h_resp_free(&r);
        assert_golden(s->port); /* the other model is served meanwhile */
    }
    h_resp r;
    int64_t t0 = h_now_ms();
    h_request(s->port, "POST", "/v1/completions", body, strlen(body), 60000, &r);
    h_assert_error(&r, 500, NULL, msg, sizeof msg);
    assert_non_null(strstr(msg, "is failed"));
    assert_true(h_now_ms() - t0 < 1000); /* no fourth try */
    h_resp_free(&r);
    h_request(s->port, "POST", "/v1/models/rescan", "", 0, 60000, &r);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    h_request(s->port, "POST", "/v1/completions", body, strlen(body), 60000, &r);
    h_assert_error(&r, 503, NULL, msg, sizeof msg); /* tried again after the rescan */
    h_resp_free(&r);
    h_pass(t);
}

static int count_fds(int pid) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/fd", pid);
    DIR *d = opendir(p);
    int n = 0;
    while (d != NULL && readdir(d) != NULL)
        n++;
    if (d != NULL)
        closedir(d);
    return n;
}

static long rss_kib(int pid) {
    char p[64], line[256];
    long kib = -1;
    snprintf(p, sizeof p, "/proc/%d/status", pid);
    FILE *f = fopen(p, "r");
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    if (f != NULL)
        fclose(f);
    return kib;
}

/* Children of pid that are zombies. */
static int zombies(int pid) {
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char p[300], stat[512];
        snprintf(p, sizeof p, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(p, "r");
        if (f == NULL)
            continue;
        int ppid = 0;
        char st = 0;
        if (fgets(stat, sizeof stat, f) != NULL) {
            const char *rp = strrchr(stat, ')');
            if (rp != NULL && sscanf(rp + 1, " %c %d", &st, &ppid) != 2)
                ppid = 0;
        }
        fclose(f);
        n += ppid == pid && st == 'Z';
    }
    if (d != NULL)
        closedir(d);
    return n;
}

/* A hundred crashes in a row: no zombie, no descriptor, no memory left behind. */
static void test_hundred_crashes(void **state) {
    h_test *t = *state;
    const char *args[] = {"--model", h_model_path(H_MODEL_FILE), NULL};
    h_server *s = h_start(t, args);
    int fds0 = 0;
    long rss10 = 0;
    for (int i = 0; i < 100; i++) {
        assert_golden(s->port); /* loads a child when the last one died */
        int pid = engine_pid(s->port, H_MODEL_NAME);
        assert_true(pid > 0);
        assert_int_equal(kill(pid, SIGKILL), 0);
        int64_t deadline = h_now_ms() + 5000;
        while (health_field(s->port, H_MODEL_NAME, "engine_crashes") < i + 1) {
            if (h_now_ms() > deadline)
                fail_msg("crash %d was not seen", i + 1);
            h_sleep_ms(5);
        }
        if (i == 9) {
            fds0 = count_fds(s->pid);
            rss10 = rss_kib(s->pid);
        }
    }
    assert_int_equal(zombies(s->pid), 0);
    int fds = count_fds(s->pid);
    long rss = rss_kib(s->pid);
    print_message("after 100 crashes: %d descriptors (%d after 10), RSS %ld KiB (%ld after 10)\n",
                  fds, fds0, rss, rss10);
    assert_true(fds <= fds0 + 2);
    /* an ASan build (make test-asan sets ASAN_OPTIONS) holds freed memory in its quarantine, so
     * its RSS grows without a leak: there LeakSanitizer checks the server at exit instead */
    if (getenv("ASAN_OPTIONS") == NULL)
        assert_true(rss <= rss10 + 4096);
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sigkill, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_sigsegv, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_sigabrt, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_queued_retried, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_aborting_model, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_hundred_crashes, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
