/* it_ops: running shimmy as a service (issue 14). GET /metrics moves by the exact amounts after
 * known requests, has histograms with buckets, _sum and _count, passes `promtool check metrics`
 * and is scraped by a real Prometheus on loopback; the request log line and X-Request-Id;
 * readiness; SIGTERM drains a long stream to its proper end (new connections refused, exit 0)
 * and past --drain-timeout ends it with an error frame; SIGHUP serves a new model file and a
 * new key. */
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* ---- small helpers ---- */

typedef struct hresp {
    long status;
    char body[1 << 20];
    size_t len;
    char request_id[128];
    int curl_code;
} hresp;

static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
    hresp *r = ud;
    size_t k = sz * n;
    size_t room = sizeof r->body - 1 - r->len;
    memcpy(r->body + r->len, p, k < room ? k : room);
    r->len += k < room ? k : room;
    r->body[r->len] = '\0';
    return k;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
    hresp *r = ud;
    size_t k = sz * n;
    if (k > 14 && strncasecmp(p, "X-Request-Id: ", 14) == 0)
        snprintf(r->request_id, sizeof r->request_id, "%.*s", (int)strcspn(p + 14, "\r\n"), p + 14);
    return k;
}

/* A request with up to two extra headers (NULL = none). Returns owned. */
static hresp *req(int port, const char *method, const char *path, const char *body, const char *h1,
                  const char *h2) {
    hresp *r = calloc(1, sizeof *r);
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");
    if (h1)
        hl = curl_slist_append(hl, h1);
    if (h2)
        hl = curl_slist_append(hl, h2);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 120000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    r->curl_code = (int)curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return r;
}

/* The value of the sample whose line starts with series (name{labels} exactly); -1 when absent. */
static double sample(const char *text, const char *series) {
    size_t n = strlen(series);
    for (const char *p = text; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return -1;
}

static char *metrics(int port) {
    hresp *r = req(port, "GET", "/metrics", NULL, NULL, NULL);
    assert_int_equal(r->status, 200);
    char *s = strdup(r->body);
    free(r);
    return s;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

/* Waits for pid to exit (deadline_ms); returns its wait status, or -1 at the deadline. */
static int wait_exit(pid_t pid, int deadline_ms) {
    int64_t end = h_now_ms() + deadline_ms;
    int st;
    while (h_now_ms() < end) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st;
        h_sleep_ms(20);
    }
    return -1;
}

#define MODEL_SERIES(name) name "{model=\"" H_MODEL_NAME "\"}"

/* ---- metrics ---- */

static void test_metrics_counts(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    char *before = metrics(s->port);
    double ok0 = sample(
        before, "shimmy_requests_total{route=\"/v1/completions\",api=\"openai\",status=\"200\"}");
    double gen0 = sample(before, MODEL_SERIES("shimmy_generated_tokens_total"));
    double pr0 = sample(before, MODEL_SERIES("shimmy_prompt_tokens_total"));
    double tt0 = sample(before, MODEL_SERIES("shimmy_time_to_first_token_seconds_count"));
    double nf0 = sample(
        before, "shimmy_requests_total{route=\"/v1/completions\",api=\"openai\",status=\"404\"}");
    int prompt = 0, gen = 0;
    for (int i = 0; i < 2; i++) {
        hresp *r =
            req(s->port, "POST", "/v1/completions",
                "{\"model\":\"" H_MODEL_NAME "\",\"prompt\":\"Once upon a time\","
                "\"max_tokens\":7,\"temperature\":0}",
                i == 0 ? "X-Request-Id: it-ops-42" : "X-Request-Id: bad id with spaces", NULL);
        assert_int_equal(r->status, 200);
        if (i == 0)
            assert_string_equal(r->request_id, "it-ops-42");
        else
            assert_int_equal(strlen(r->request_id), 16); /* replaced by the server's own */
        json_t *j = h_json(r->body);
        prompt += (int)h_int(h_obj(j, "usage"), "prompt_tokens");
        gen += (int)h_int(h_obj(j, "usage"), "completion_tokens");
        json_decref(j);
        free(r);
    }
    hresp *r = req(s->port, "POST", "/v1/completions",
                   "{\"model\":\"no-such-model\",\"prompt\":\"x\",\"max_tokens\":2}", NULL, NULL);
    assert_int_equal(r->status, 404);
    free(r);
    char *after = metrics(s->port);
    assert_true(
        sample(after,
               "shimmy_requests_total{route=\"/v1/completions\",api=\"openai\",status=\"200\"}") ==
        (ok0 < 0 ? 0 : ok0) + 2);
    assert_true(
        sample(after,
               "shimmy_requests_total{route=\"/v1/completions\",api=\"openai\",status=\"404\"}") ==
        (nf0 < 0 ? 0 : nf0) + 1);
    assert_true(sample(after, MODEL_SERIES("shimmy_generated_tokens_total")) ==
                (gen0 < 0 ? 0 : gen0) + gen);
    assert_true(sample(after, MODEL_SERIES("shimmy_prompt_tokens_total")) ==
                (pr0 < 0 ? 0 : pr0) + prompt);
    double count = sample(after, MODEL_SERIES("shimmy_time_to_first_token_seconds_count"));
    assert_true(count == (tt0 < 0 ? 0 : tt0) + 2);
    /* buckets, _sum and _count: +Inf equals _count, buckets never decrease */
    assert_true(sample(after, "shimmy_time_to_first_token_seconds_bucket{model=\"" H_MODEL_NAME
                              "\",le=\"+Inf\"}") == count);
    assert_true(sample(after, MODEL_SERIES("shimmy_time_to_first_token_seconds_sum")) > 0);
    assert_true(sample(after, "shimmy_time_to_first_token_seconds_bucket{model=\"" H_MODEL_NAME
                              "\",le=\"60\"}") <= count);
    assert_true(sample(after, "shimmy_request_duration_seconds_count{route=\"/v1/completions\"}") >=
                3);
    assert_true(sample(after, MODEL_SERIES("shimmy_kv_cache_cells")) > 0);
    assert_true(sample(after, MODEL_SERIES("shimmy_slots")) == 4);
    assert_true(sample(after, "shimmy_models_loaded") == 1);
    assert_true(sample(after, "process_resident_memory_bytes") > 0);
    assert_null(strstr(after, "no-such-model")); /* unknown names never become labels */

    /* promtool check metrics */
    char path[4200], cmd[8600];
    snprintf(path, sizeof path, "%s/metrics.txt", t->dir);
    write_file(path, after);
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s'", path);
    char *out = NULL;
    const char *args[] = {"-c", cmd, NULL};
    int rc = h_run_exe(t, "/bin/sh", args, 30000, &out);
    if (rc != 0)
        fprintf(stderr, "promtool: %s\n", out);
    assert_int_equal(rc, 0);
    free(out);

    /* the request log line, never a prompt */
    h_sleep_ms(100);
    char *log = h_server_read_log(s);
    assert_non_null(strstr(log, "request id=it-ops-42 method=POST path=/v1/completions status=200 "
                                "model=" H_MODEL_NAME));
    assert_null(strstr(log, "Once upon a time"));
    free(log);
    free(before);
    free(after);
    h_pass(t);
}

/* A real Prometheus scrapes /metrics once: `up` is 1 and shimmy's series arrive. */
static void test_prometheus_scrape(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    int pport = free_port();
    char cfg[4200], data[4200], text[512];
    snprintf(cfg, sizeof cfg, "%s/prometheus.yml", t->dir);
    snprintf(data, sizeof data, "%s/tsdb", t->dir);
    snprintf(text, sizeof text,
             "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
             "scrape_configs:\n  - job_name: shimmy\n    static_configs:\n"
             "      - targets: ['127.0.0.1:%d']\n",
             s->port);
    write_file(cfg, text);
    char listen[64], cfg_arg[4300], data_arg[4300];
    snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", pport);
    snprintf(cfg_arg, sizeof cfg_arg, "--config.file=%s", cfg);
    snprintf(data_arg, sizeof data_arg, "--storage.tsdb.path=%s", data);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char logp[4300];
        snprintf(logp, sizeof logp, "%s/prometheus.log", t->dir);
        FILE *lf = freopen(logp, "w", stderr);
        (void)lf;
        execlp("prometheus", "prometheus", cfg_arg, data_arg, listen, (char *)NULL);
        _exit(127);
    }
    bool up = false, series = false;
    int64_t deadline = h_now_ms() + 40000;
    while (h_now_ms() < deadline && !(up && series)) {
        h_sleep_ms(500);
        hresp *r =
            req(pport, "GET", "/api/v1/query?query=up%7Bjob%3D%22shimmy%22%7D", NULL, NULL, NULL);
        up = r->status == 200 && strstr(r->body, "\"value\":[") != NULL &&
             strstr(r->body, ",\"1\"]") != NULL;
        free(r);
        r = req(pport, "GET", "/api/v1/query?query=shimmy_models_loaded", NULL, NULL, NULL);
        series = r->status == 200 && strstr(r->body, ",\"1\"]") != NULL;
        free(r);
    }
    kill(pid, SIGTERM);
    if (wait_exit(pid, 10000) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    assert_true(up);
    assert_true(series);
    h_pass(t);
}

/* ---- readiness and drain ---- */

typedef struct stream_arg {
    int port;
    const char *body;
    h_sse sse;
} stream_arg;

static void *stream_thread(void *p) {
    stream_arg *a = p;
    h_stream(a->port, "/v1/completions", a->body, 0, 180000, &a->sse);
    return NULL;
}

/* Waits until a slot is busy (the stream is generating). */
static void wait_busy(int port) {
    int64_t deadline = h_now_ms() + 30000;
    for (;;) {
        char *m = metrics(port);
        double busy = sample(m, MODEL_SERIES("shimmy_slots_busy"));
        free(m);
        if (busy >= 1)
            return;
        assert_true(h_now_ms() < deadline);
        h_sleep_ms(20);
    }
}

static void test_drain_finishes_stream(void **state) {
    h_test *t = *state;
    const char *extra[] = {"--parallel", "1", "--drain-timeout", "120s", NULL};
    h_server *s = h_start_default(t, extra);
    hresp *r = req(s->port, "GET", "/health?ready=1", NULL, NULL, NULL);
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(r->body, "\"ready\":true"));
    free(r);
    stream_arg a = {.port = s->port,
                    .body = "{\"model\":\"" H_MODEL_NAME "\",\"prompt\":\"Once upon a time\","
                            "\"max_tokens\":400,\"temperature\":0,\"stream\":true}"};
    pthread_t th;
    pthread_create(&th, NULL, stream_thread, &a);
    wait_busy(s->port);
    kill(s->pid, SIGTERM);
    h_sleep_ms(200);
    /* new connections are refused while the stream goes on */
    r = req(s->port, "GET", "/health", NULL, NULL, NULL);
    assert_int_equal(r->curl_code, CURLE_COULDNT_CONNECT);
    free(r);
    pthread_join(th, NULL);
    assert_int_equal(a.sse.status, 200);
    assert_true(a.sse.done); /* [DONE]: the stream ended properly */
    json_t *last = h_json(a.sse.events[a.sse.n_events - 1]);
    json_t *fr = h_get(last, "choices.0.finish_reason");
    assert_true(json_is_string(fr));
    json_decref(last);
    int st = wait_exit(s->pid, 20000);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    s->pid = 0;
    char *log = h_server_read_log(s);
    assert_non_null(strstr(log, "drained: exiting"));
    free(log);
    h_sse_free(&a.sse);
    h_pass(t);
}

static void test_drain_timeout_error_frame(void **state) {
    h_test *t = *state;
    const char *extra[] = {"--parallel", "1", "--ctx", "4096", "--drain-timeout", "300ms", NULL};
    h_server *s = h_start_default(t, extra);
    stream_arg a = {.port = s->port,
                    .body = "{\"model\":\"" H_MODEL_NAME "\",\"prompt\":\"Once upon a time\","
                            "\"max_tokens\":4000,\"temperature\":0,\"stream\":true}"};
    pthread_t th;
    pthread_create(&th, NULL, stream_thread, &a);
    wait_busy(s->port);
    kill(s->pid, SIGTERM);
    pthread_join(th, NULL);
    assert_int_equal(a.sse.status, 200);
    assert_true(a.sse.n_events > 0);
    const char *lastev = a.sse.events[a.sse.n_events - 1];
    assert_non_null(strstr(lastev, "server_shutting_down"));
    int st = wait_exit(s->pid, 20000);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    s->pid = 0;
    h_sse_free(&a.sse);
    h_pass(t);
}

/* ---- SIGHUP ---- */

static bool models_has(int port, const char *key_hdr, const char *name, long *status) {
    hresp *r = req(port, "GET", "/v1/models", NULL, key_hdr, NULL);
    *status = r->status;
    bool has = r->status == 200 && strstr(r->body, name) != NULL;
    free(r);
    return has;
}

static void test_sighup_model_and_key(void **state) {
    h_test *t = *state;
    char dir[4200], keys[4200], model[4300], cmd[9000];
    snprintf(dir, sizeof dir, "%s/store", t->dir);
    snprintf(keys, sizeof keys, "%s/keys", t->dir);
    mkdir(dir, 0700);
    write_file(keys, "old-key\n");
    const char *extra[] = {"--model-dirs", dir, "--api-key-file", keys, NULL};
    h_server *s = h_start_default(t, extra);
    long st;
    assert_false(models_has(s->port, "Authorization: Bearer old-key", "hupmodel", &st));
    assert_int_equal(st, 200);
    snprintf(model, sizeof model, "%s/hupmodel.gguf", dir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", h_model_path(H_MODEL_FILE), model);
    assert_int_equal(system(cmd), 0);
    write_file(keys, "new-key\n");
    kill(s->pid, SIGHUP);
    int64_t deadline = h_now_ms() + 15000;
    while (!models_has(s->port, "Authorization: Bearer new-key", "hupmodel", &st)) {
        assert_true(h_now_ms() < deadline);
        h_sleep_ms(50);
    }
    models_has(s->port, "Authorization: Bearer old-key", "hupmodel", &st);
    assert_int_equal(st, 401);
    hresp *r = req(s->port, "POST", "/v1/completions",
                   "{\"model\":\"hupmodel\",\"prompt\":\"Once\",\"max_tokens\":3}",
                   "Authorization: Bearer new-key", NULL);
    assert_int_equal(r->status, 200);
    free(r);
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics_counts, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_prometheus_scrape, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_drain_finishes_stream, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_drain_timeout_error_frame, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_sighup_model_and_key, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
