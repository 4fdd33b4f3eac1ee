/* Unit tests for the engine (sched + llama backend) on the real stories260K model: greedy
 * determinism, batching equivalence, prefix reuse, stop strings, max_tokens, context limits,
 * cancellation and the bounded queue. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/utf8.h"
#include "engine/engine.h"
#include "fixtures.h"

static char stories_path[4096];

typedef struct result {
    char text[8192];
    gen_status st;
    shimmy_err rc; /* how the submit and the waits went (run_to_end) */
    char err[512]; /* what went wrong, when rc is not SHIMMY_OK */
} result;

/* Monotonic milliseconds: waits end at a deadline, not after a count of wake-ups. */
static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
/* The longest a job here may take: 30 s natively, times SHIMMY_TEST_TIME_SCALE (set for the
 * emulated arm64 run in tests/CMakeLists.txt); set in main. */
static int64_t wait_ms = 30000;

static int64_t cache_mib = -1; /* --cache-ram of the next load; -1 = default */

static engine_model *load(int parallel, int ctx, int queue) {
    engine_options o;
    engine_options_default(&o);
    o.cache_ram_mib = cache_mib;
    o.path = stories_path;
    o.name = "stories";
    o.n_parallel = parallel;
    o.n_ctx = ctx;
    o.queue_max = queue;
    o.n_threads = 1; /* 2 threads spin badly when the machine is busy (see tests/integration) */
    engine_model *m = NULL;
    char err[512];
    shimmy_err e = engine_model_load(&o, &m, err, sizeof err);
    if (e != SHIMMY_OK)
        fail_msg("load failed: %s", err);
    return m;
}

/* One wait; appends every event's text to text (a raw job gives content only). */
static shimmy_err wait_text(gen_job *job, int ms, buf *text, gen_status *st) {
    gen_events ev;
    gen_events_init(&ev);
    shimmy_err e = engine_job_wait(job, ms, &ev, st);
    for (size_t i = 0; e == SHIMMY_OK && i < ev.n; i++)
        e = buf_append(text, ev.ev[i].text, ev.ev[i].len);
    gen_events_free(&ev);
    return e;
}

/* Waits (wait_ms at most) until the job has produced at least min_len bytes of text, still running.
 */
static void wait_for_text(gen_job *job, size_t min_len, buf *text, gen_status *st) {
    for (int64_t end = now_ms() + wait_ms; text->len < min_len;) {
        if (now_ms() > end)
            fail_msg("%zu bytes of text after %lld ms, %zu wanted", text->len, (long long)wait_ms,
                     min_len);
        assert_int_equal(wait_text(job, 5000, text, st), SHIMMY_OK);
        if (st->done)
            fail_msg("the job ended (finish %d) before %zu bytes of text", (int)st->finish,
                     min_len);
    }
}

/* Runs one request to its end without asserting, so that any thread may call it (a cmocka
 * assertion jumps back to the test's own thread): r->rc and r->err say how it went; a job not
 * done within wait_ms ends with ERR_TIMEOUT. */
static void run_to_end(engine_model *m, const char *prompt, const gen_params *p, result *r) {
    gen_request req = {.prompt = prompt, .params = *p};
    gen_job *job;
    memset(r, 0, sizeof *r);
    r->rc = engine_submit(m, &req, &job, r->err, sizeof r->err, NULL, 0);
    if (r->rc != SHIMMY_OK)
        return;
    buf text;
    buf_init(&text, sizeof r->text - 1);
    for (int64_t end = now_ms() + wait_ms; r->rc == SHIMMY_OK && !r->st.done;) {
        if (now_ms() > end)
            r->rc = ERR_TIMEOUT;
        else
            r->rc = wait_text(job, 5000, &text, &r->st);
    }
    if (r->rc != SHIMMY_OK)
        snprintf(r->err, sizeof r->err, "%s",
                 r->rc == ERR_TIMEOUT ? "not done within the deadline" : "a wait failed");
    snprintf(r->text, sizeof r->text, "%s", buf_str(&text));
    buf_free(&text);
    engine_job_release(job);
}

/* run_to_end, then the checks every answer passes (the test's thread only). */
static void check_run(const result *r) {
    if (r->rc != SHIMMY_OK)
        fail_msg("request failed (%d): %s", (int)r->rc, r->err);
    assert_true(utf8_valid(r->text, strlen(r->text)));
}

static void run(engine_model *m, const char *prompt, const gen_params *p, result *r) {
    run_to_end(m, prompt, p, r);
    check_run(r);
}

static gen_params greedy(int max_tokens) {
    gen_params p;
    gen_params_default(&p);
    p.temperature = 0;
    p.max_tokens = max_tokens;
    return p;
}

static void test_greedy_deterministic(void **state) {
    (void)state;
    engine_model *m = load(2, 256, 0);
    gen_params p = greedy(24);
    result a, b;
    run(m, "Once upon a time", &p, &a);
    run(m, "Once upon a time", &p, &b);
    assert_string_equal(a.text, b.text);
    assert_true(strncmp(a.text, ", there was a little girl named Lily", 36) == 0);
    assert_int_equal(a.st.finish, FINISH_LENGTH);
    assert_int_equal(a.st.completion_tokens, 24);
    assert_true(a.st.prompt_tokens >= 4);
    /* the second run reuses the prompt from the slot's cache (all but the last token) */
    assert_int_equal(b.st.cached_tokens, b.st.prompt_tokens - 1);
    engine_model_free(m);
}

/* An unrelated prompt (sharing only BOS) goes to a free slot instead of evicting a cached one. */
static void test_prefix_kept_across_unrelated(void **state) {
    (void)state;
    engine_model *m = load(2, 512, 0);
    gen_params p = greedy(4);
    char a[1024] = "", b[1024] = "";
    for (int i = 0; i < 20; i++) {
        strcat(a, "the little dog ran to the park. ");
        strcat(b, "a happy cat sat on a mat. ");
    }
    result r;
    run(m, a, &p, &r);
    run(m, b, &p, &r);
    assert_true(r.st.cached_tokens <= 1);
    run(m, a, &p, &r);
    assert_int_equal(r.st.cached_tokens, r.st.prompt_tokens - 1);
    engine_model_free(m);
}

typedef struct thread_arg {
    engine_model *m;
    const char *prompt;
    result r;
} thread_arg;

static void *run_thread(void *arg) { /* asserts nothing: the test's thread checks t->r */
    thread_arg *t = arg;
    gen_params p = greedy(32);
    run_to_end(t->m, t->prompt, &p, &t->r);
    return NULL;
}

static void test_batched_equals_sequential(void **state) {
    (void)state;
    const char *prompts[] = {"Once upon a time", "The little dog", "Tom and Sue went to the park",
                             "One day, a big bird"};
    engine_model *m = load(4, 256, 0);
    result seq[4];
    gen_params p = greedy(32);
    for (int i = 0; i < 4; i++)
        run(m, prompts[i], &p, &seq[i]);
    engine_model_free(m);
    m = load(4, 256, 0);
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){.m = m, .prompt = prompts[i]};
        assert_int_equal(pthread_create(&th[i], NULL, run_thread, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < 4; i++) {
        check_run(&args[i].r);
        assert_string_equal(args[i].r.text, seq[i].text);
    }
    engine_model_free(m);
}

static void test_stop_string(void **state) {
    (void)state;
    engine_model *m = load(1, 256, 0);
    gen_params p = greedy(40);
    result full, cut;
    run(m, "Once upon a time", &p, &full);
    const char *stops[] = {"Lily"};
    p.stop = stops;
    p.n_stop = 1;
    run(m, "Once upon a time", &p, &cut);
    const char *at = strstr(full.text, "Lily");
    assert_non_null(at);
    assert_int_equal(strlen(cut.text), (size_t)(at - full.text));
    assert_memory_equal(cut.text, full.text, strlen(cut.text));
    assert_int_equal(cut.st.finish, FINISH_STOP);
    engine_model_free(m);
}

static void test_context_limits(void **state) {
    (void)state;
    engine_model *m = load(1, 32, 0);
    char longp[2048] = "";
    for (int i = 0; i < 40; i++)
        strcat(longp, "the dog ran. ");
    gen_request req = {.prompt = longp};
    gen_params_default(&req.params);
    gen_job *job = NULL;
    char err[512];
    assert_int_equal(engine_submit(m, &req, &job, err, sizeof err, NULL, 0), ERR_CONTEXT_LENGTH);
    assert_non_null(strstr(err, "32"));
    /* generation that reaches the end of the context stops with "length" */
    gen_params p = greedy(-1);
    result r;
    run(m, "Once upon a time", &p, &r);
    assert_int_equal(r.st.finish, FINISH_LENGTH);
    assert_int_equal(r.st.prompt_tokens + r.st.completion_tokens, 32 + 1);
    engine_model_free(m);
}

static void test_cancel_frees_slot(void **state) {
    (void)state;
    engine_model *m = load(1, 2048, 0);
    gen_request req = {.prompt = "Once upon a time"};
    req.params = greedy(-1);
    gen_job *job;
    char err[512];
    assert_int_equal(engine_submit(m, &req, &job, err, sizeof err, NULL, 0), SHIMMY_OK);
    buf text;
    buf_init(&text, 1 << 20);
    gen_status st;
    wait_for_text(job, 20, &text, &st);
    engine_job_release(job); /* the client went away */
    buf_free(&text);
    gen_params p = greedy(8);
    result r;
    run(m, "The little dog", &p, &r); /* the only slot must be free again */
    assert_int_equal(r.st.completion_tokens, 8);
    engine_model_free(m);
}

static void test_queue_full(void **state) {
    (void)state;
    engine_model *m = load(1, 2048, 1);
    gen_request req = {.prompt = "Once upon a time"};
    req.params = greedy(-1);
    gen_job *a, *b, *c = NULL;
    char err[512];
    assert_int_equal(engine_submit(m, &req, &a, err, sizeof err, NULL, 0), SHIMMY_OK);
    buf text;
    buf_init(&text, 1 << 20);
    gen_status st;
    wait_for_text(a, 1, &text, &st); /* a is on the slot now */
    assert_int_equal(engine_submit(m, &req, &b, err, sizeof err, NULL, 0), SHIMMY_OK); /* waits */
    assert_int_equal(engine_submit(m, &req, &c, err, sizeof err, NULL, 0), ERR_OVERLOADED);
    engine_job_release(a);
    engine_job_release(b);
    buf_free(&text);
    engine_model_free(m);
}

static void test_seed(void **state) {
    (void)state;
    engine_model *m = load(2, 256, 0);
    gen_params p;
    gen_params_default(&p);
    p.temperature = 1.0f;
    p.max_tokens = 24;
    p.has_seed = true;
    p.seed = 42;
    result a, b, c;
    run(m, "Once upon a time", &p, &a);
    run(m, "Once upon a time", &p, &b);
    assert_string_equal(a.text, b.text);
    p.seed = 43;
    run(m, "Once upon a time", &p, &c);
    assert_string_not_equal(a.text, c.text);
    engine_model_free(m);
}

static void test_chat_render(void **state) {
    (void)state;
    engine_model *m = load(1, 256, 0);
    char *out = NULL, err[256], param[64];
    assert_int_equal(engine_apply_template(m,
                                           "{\"messages\":[{\"role\":\"system\",\"content\":"
                                           "\"Be kind.\"},{\"role\":\"user\",\"content\":\"Hi\"}]}",
                                           &out, err, sizeof err, param, sizeof param),
                     SHIMMY_OK);
    /* stories260K has no template: ChatML */
    assert_string_equal(out,
                        "<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                        "<|im_start|>assistant\n");
    free(out);
    /* a final assistant message is continued (llama-server's prefill) */
    assert_int_equal(engine_apply_template(m,
                                           "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},"
                                           "{\"role\":\"assistant\",\"content\":\"Hello the\"}]}",
                                           &out, err, sizeof err, param, sizeof param),
                     SHIMMY_OK);
    assert_string_equal(out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello the");
    free(out);
    /* ChatML cannot express tools: a 400 naming tools, never a silent ignore */
    assert_int_equal(
        engine_apply_template(m,
                              "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                              "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
                              "\"f\",\"parameters\":{\"type\":\"object\"}}}]}",
                              &out, err, sizeof err, param, sizeof param),
        ERR_BAD_PARAM);
    assert_string_equal(param, "tools");
    engine_model_free(m);
}

/* ---- tool calls on stories260K with a tool-capable template ---- */

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    buf b;
    buf_init(&b, 1 << 20);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    return buf_take(&b);
}

static engine_model *load_with_template(const char *file) {
    char path[1024];
    const char *src = getenv("SHIMMY_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/deps/llama.cpp/models/templates/%s", src ? src : ".", file);
    static char *text;
    free(text);
    text = read_file(path);
    engine_options o;
    engine_options_default(&o);
    o.path = stories_path;
    o.n_parallel = 1;
    o.n_ctx = 2048;
    o.n_threads = 1;
    o.template_text = text;
    engine_model *m = NULL;
    char err[512];
    if (engine_model_load(&o, &m, err, sizeof err) != SHIMMY_OK)
        fail_msg("load failed: %s", err);
    return m;
}

typedef struct call_result {
    gen_status st;
    int n_calls;
    char name[64];
    char args[512];
    char content[1024];
} call_result;

static void run_chat(engine_model *m, const char *chat, call_result *r) {
    gen_request req = {.chat_json = chat};
    req.params = greedy(200);
    gen_job *job;
    char err[512], param[64];
    if (engine_submit(m, &req, &job, err, sizeof err, param, sizeof param) != SHIMMY_OK)
        fail_msg("submit failed (%s): %s", param, err);
    gen_events ev;
    gen_events_init(&ev);
    memset(r, 0, sizeof *r);
    buf args, content;
    buf_init(&args, 1 << 16);
    buf_init(&content, 1 << 16);
    int64_t end = now_ms() + wait_ms;
    do {
        if (now_ms() > end)
            fail_msg("not done after %lld ms", (long long)wait_ms);
        assert_int_equal(engine_job_wait(job, 5000, &ev, &r->st), SHIMMY_OK);
        for (size_t i = 0; i < ev.n; i++) {
            const gen_event *e = &ev.ev[i];
            if (e->kind == GEN_EV_CONTENT)
                buf_append(&content, e->text, e->len);
            if (e->kind != GEN_EV_TOOL)
                continue;
            if (e->tool_name != NULL) {
                assert_int_equal(e->tool_index, r->n_calls); /* calls announced in order */
                assert_non_null(e->tool_id);
                r->n_calls++;
                snprintf(r->name, sizeof r->name, "%s", e->tool_name);
            }
            if (e->tool_index == 0)
                buf_append(&args, e->text, e->len);
        }
    } while (!r->st.done);
    snprintf(r->args, sizeof r->args, "%s", buf_str(&args));
    snprintf(r->content, sizeof r->content, "%s", buf_str(&content));
    buf_free(&args);
    buf_free(&content);
    gen_events_free(&ev);
    engine_job_release(job);
}

#define WEATHER_TOOLS                                                                              \
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"parameters\":"        \
    "{\"type\":\"object\",\"properties\":{\"zone\":{\"enum\":[\"UTC\",\"CET\"]}},\"required\":"    \
    "[\"zone\"]}}},{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":"  \
    "{\"type\":\"object\",\"properties\":{\"city\":{\"enum\":[\"Paris\",\"London\"]},\"days\":"    \
    "{\"type\":\"integer\",\"minimum\":1,\"maximum\":7}},\"required\":[\"city\",\"days\"]}}}]"

/* The arguments are one JSON object that satisfies the schema of get_weather. */
static void assert_weather_args(const char *args) {
    json_error_t je;
    json_t *a = json_loads(args, 0, &je);
    if (!json_is_object(a))
        fail_msg("arguments are not a JSON object: %s", args);
    const char *city = json_string_value(json_object_get(a, "city"));
    json_int_t days = json_integer_value(json_object_get(a, "days"));
    assert_non_null(city);
    assert_true(strcmp(city, "Paris") == 0 || strcmp(city, "London") == 0);
    assert_true(json_is_integer(json_object_get(a, "days")) && days >= 1 && days <= 7);
    assert_int_equal(json_object_size(a), 2);
    json_decref(a);
}

/* tool_choice required and a named function: a valid call at once, even from a tiny model (the
 * reference lets it ramble first and ignores the name). */
static void test_tool_choice_enforced(void **state) {
    (void)state;
    engine_model *m = load_with_template("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja");
    call_result r;
    run_chat(m,
             "{\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"}],"
             "\"parallel_tool_calls\":false,\"tool_choice\":{\"type\":\"function\",\"function\":"
             "{\"name\":\"get_weather\"}}," WEATHER_TOOLS "}",
             &r);
    assert_int_equal(r.st.finish, FINISH_TOOL_CALLS);
    assert_int_equal(r.n_calls, 1);
    assert_string_equal(r.name, "get_weather");
    assert_string_equal(r.content, "");
    assert_weather_args(r.args);
    run_chat(m,
             "{\"messages\":[{\"role\":\"user\",\"content\":\"Time?\"}],\"tool_choice\":"
             "\"required\",\"parallel_tool_calls\":false," WEATHER_TOOLS "}",
             &r);
    assert_int_equal(r.st.finish, FINISH_TOOL_CALLS);
    assert_int_equal(r.n_calls, 1);
    assert_string_equal(r.content, "");
    /* a named function that is not among the tools */
    gen_request req = {.chat_json = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                                    "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":"
                                    "\"nope\"}}," WEATHER_TOOLS "}"};
    req.params = greedy(8);
    gen_job *job;
    char err[256], param[64];
    assert_int_equal(engine_submit(m, &req, &job, err, sizeof err, param, sizeof param),
                     ERR_BAD_PARAM);
    assert_string_equal(param, "tool_choice");
    engine_model_free(m);
}

/* A raw prompt with a JSON schema (integer bounds, as zod's .int().min().max() writes them). */
static void test_json_schema_bounds(void **state) {
    (void)state;
    engine_model *m = load(1, 512, 0);
    gen_request req = {.prompt = "Once upon a time"};
    req.params = greedy(60);
    req.params.json_schema = "{\"type\":\"object\",\"properties\":{\"age\":{\"type\":\"integer\","
                             "\"minimum\":3,\"maximum\":9}},\"required\":[\"age\"],"
                             "\"additionalProperties\":false}";
    result r = {.rc = SHIMMY_OK}; /* r.st.done false: the loop below waits for the end */
    gen_job *job;
    char err[256], param[64];
    assert_int_equal(engine_submit(m, &req, &job, err, sizeof err, param, sizeof param), SHIMMY_OK);
    buf text;
    buf_init(&text, 1 << 16);
    for (int64_t end = now_ms() + wait_ms; !r.st.done;) {
        if (now_ms() > end)
            fail_msg("not done after %lld ms: %s", (long long)wait_ms, buf_str(&text));
        assert_int_equal(wait_text(job, 5000, &text, &r.st), SHIMMY_OK);
    }
    engine_job_release(job);
    /* the grammar closes the object and ends the answer: a stop, well before max_tokens */
    assert_int_equal(r.st.finish, FINISH_STOP);
    assert_int_equal(r.st.error, SHIMMY_OK);
    assert_true(r.st.completion_tokens > 0 && r.st.completion_tokens < 60);
    json_t *v = json_loads(buf_str(&text), 0, NULL);
    if (!json_is_object(v))
        fail_msg("not a JSON object: %s", buf_str(&text));
    json_int_t age = json_integer_value(json_object_get(v, "age"));
    assert_true(age >= 3 && age <= 9);
    json_decref(v);
    buf_free(&text);
    req.params.json_schema =
        "{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"#/nowhere\"}}}";
    assert_int_equal(engine_submit(m, &req, &job, err, sizeof err, param, sizeof param),
                     ERR_BAD_PARAM);
    assert_string_equal(param, "response_format");
    engine_model_free(m);
}

/* ---- the host-RAM prompt cache ---- */

/* Turn k of conversation c: a growing transcript, as agents send it. */
static void transcript(int c, int k, char *out, size_t len) {
    static const char *const openers[] = {"Once upon a time", "The little dog", "Lily and Tom",
                                          "In the big park"};
    int n = snprintf(out, len, "%s", openers[c % 4]);
    for (int i = 0; i < k && n > 0 && (size_t)n < len; i++)
        n += snprintf(out + n, len - (size_t)n, " went to see the %s friend number %d and said hi.",
                      i % 2 ? "old" : "new", i);
}

/* A conversation evicted from the only slot by another comes back with its previous turns
 * cached, and the same greedy text as without the cache. */
static void test_cache_restores_evicted(void **state) {
    (void)state;
    char p[4096];
    gen_params g = greedy(16);
    result with[3], without;
    cache_mib = 64;
    engine_model *m = load(1, 1024, 0);
    transcript(0, 3, p, sizeof p);
    run(m, p, &g, &with[0]);
    transcript(1, 3, p, sizeof p);
    run(m, p, &g, &with[1]); /* evicts conversation 0 from the slot: saved */
    transcript(0, 4, p, sizeof p);
    run(m, p, &g, &with[2]); /* conversation 0 again: restored */
    engine_model_info info;
    engine_model_get_info(m, &info);
    assert_true(info.cache.saves >= 1);
    assert_int_equal(info.cache.restores, 1);
    assert_true(info.cache.bytes <= info.cache.budget);
    /* everything of turn 3 but the last token is in the restored state */
    assert_true(with[2].st.cached_tokens >= with[0].st.prompt_tokens - 1);
    engine_model_free(m);
    cache_mib = 0; /* off: the same text, nothing cached */
    m = load(1, 1024, 0);
    transcript(0, 4, p, sizeof p);
    run(m, p, &g, &without);
    engine_model_get_info(m, &info);
    assert_int_equal(info.cache.saves, 0);
    assert_int_equal(info.cache.budget, 0);
    assert_string_equal(with[2].text, without.text);
    engine_model_free(m);
    cache_mib = -1;
}

/* A flood of distinct prompts keeps the cache within its budget. */
static void test_cache_budget(void **state) {
    (void)state;
    char p[4096];
    gen_params g = greedy(2);
    result r;
    cache_mib = 1;
    engine_model *m = load(1, 512, 0);
    engine_model_info info;
    for (int i = 0; i < 24; i++) {
        snprintf(p, sizeof p, "Prompt number %d is about a cat named %c%c.", i, 'A' + i % 26,
                 'a' + (i * 7) % 26);
        run(m, p, &g, &r);
        engine_model_get_info(m, &info);
        assert_true(info.cache.bytes <= (1u << 20));
    }
    assert_true(info.cache.saves >= 20);
    assert_true(info.cache.entries >= 1);
    engine_model_free(m);
    cache_mib = -1;
}

typedef struct conv_arg {
    engine_model *m;
    int conv;
    result r[4];
} conv_arg;

static void *conversation(void *p) { /* asserts nothing: the test's thread checks a->r */
    conv_arg *a = p;
    char t[4096];
    gen_params g = greedy(12);
    for (int k = 0; k < 4; k++) {
        transcript(a->conv, k + 1, t, sizeof t);
        run_to_end(a->m, t, &g, &a->r[k]);
    }
    return NULL;
}

/* Four conversations on two slots at once (saves and restores while other slots stream): each
 * turn's text equals the same turn run alone on a model without the cache. */
static void test_cache_concurrent(void **state) {
    (void)state;
    cache_mib = 64;
    engine_model *m = load(2, 1024, 0);
    conv_arg a[4];
    pthread_t th[4];
    for (int c = 0; c < 4; c++) {
        a[c] = (conv_arg){.m = m, .conv = c};
        assert_int_equal(pthread_create(&th[c], NULL, conversation, &a[c]), 0);
    }
    for (int c = 0; c < 4; c++)
        assert_int_equal(pthread_join(th[c], NULL), 0);
    engine_model_info info;
    engine_model_get_info(m, &info);
    engine_model_free(m);
    cache_mib = 0;
    m = load(1, 1024, 0);
    char t[4096];
    gen_params g = greedy(12);
    for (int c = 0; c < 4; c++)
        for (int k = 0; k < 4; k++) {
            result alone;
            transcript(c, k + 1, t, sizeof t);
            run(m, t, &g, &alone);
            check_run(&a[c].r[k]);
            assert_string_equal(a[c].r[k].text, alone.text);
        }
    engine_model_free(m);
    cache_mib = -1;
    print_message("cache: %llu saves, %llu restores, longest stall %.2f ms\n",
                  (unsigned long long)info.cache.saves, (unsigned long long)info.cache.restores,
                  (double)info.cache.max_stall_ns / 1e6);
}

int main(void) {
    const char *dir = getenv("SHIMMY_TEST_MODELS");
    snprintf(stories_path, sizeof stories_path, "%s/stories260K.gguf",
             dir ? dir : "../shared/models");
    FILE *f = fopen(stories_path, "rb");
    if (f == NULL) {
        fprintf(stderr, "test model missing: %s (set SHIMMY_TEST_MODELS)\n", stories_path);
        return 1;
    }
    fclose(f);
    wait_ms = (int64_t)(30000 * fixtures_time_scale());
    char err[512];
    if (engine_global_init(NULL, err, sizeof err) != SHIMMY_OK) {
        fprintf(stderr, "engine_global_init: %s\n", err);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_deterministic),
        cmocka_unit_test(test_batched_equals_sequential),
        cmocka_unit_test(test_stop_string),
        cmocka_unit_test(test_context_limits),
        cmocka_unit_test(test_cancel_frees_slot),
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_seed),
        cmocka_unit_test(test_prefix_kept_across_unrelated),
        cmocka_unit_test(test_chat_render),
        cmocka_unit_test(test_tool_choice_enforced),
        cmocka_unit_test(test_json_schema_bounds),
        cmocka_unit_test(test_cache_restores_evicted),
        cmocka_unit_test(test_cache_budget),
        cmocka_unit_test(test_cache_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
