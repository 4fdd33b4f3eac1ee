/* it_rpc: a model across two llama.cpp RPC servers on loopback (`shimmy rpc-server`, the RPC
 * module built from the pinned source by scripts/build-rpc.sh, run by scripts/test-deps.sh).
 * Nothing is skipped: a missing module fails the test with how to build it.
 *
 *  - stories260K served with --rpc A,B --gpu-backend rpc --gpu-layers all --tensor-split 1,1:
 *    /health shows its layers on RPC0 and RPC1 (both > 0, all 6 offloaded), and the greedy
 *    output of every golden prompt equals llama.cpp's on the CPU;
 *  - one RPC server killed (SIGKILL) during a streamed generation: ggml aborts the model's engine
 *    process, the stream ends with an engine_crashed error naming the cause, the server keeps
 *    answering, and the next request is served by a fresh engine process on what is left (the
 *    other RPC server and the CPU), with the golden text;
 *  - rpc-server refuses a non-loopback address without --i-know-this-is-unauthenticated, and
 *    serve refuses an unreachable --rpc server before it starts. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define RPC_START_MS 20000
#define N_RPC 2

static pid_t rpc_pid[N_RPC];
static int rpc_port[N_RPC];

/* A loopback port that was free a moment ago. */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        fail_msg("cannot find a free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

static bool can_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void print_file(const char *path) {
    FILE *f = fopen(path, "r");
    char line[512];
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        fputs(line, stderr);
    if (f != NULL)
        fclose(f);
}

/* Starts `shimmy rpc-server --bind 127.0.0.1:PORT --threads 1` with its output in t->dir and
 * waits until it accepts connections. */
static void start_rpc(h_test *t, int i) {
    char bind[64], log[PATH_MAX + 32];
    rpc_port[i] = free_port();
    snprintf(bind, sizeof bind, "127.0.0.1:%d", rpc_port[i]);
    snprintf(log, sizeof log, "%s/rpc%d.log", t->dir, i);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(h_bin(), "shimmy", "rpc-server", "--bind", bind, "--threads", "1", (char *)NULL);
        _exit(127);
    }
    rpc_pid[i] = pid;
    int64_t deadline = h_now_ms() + RPC_START_MS;
    while (!can_connect(rpc_port[i])) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid || h_now_ms() > deadline) {
            rpc_pid[i] = 0;
            print_file(log);
            fail_msg("rpc-server on %s did not start (is the RPC module built? "
                     "scripts/build-rpc.sh, run by scripts/test-deps.sh)",
                     bind);
        }
        h_sleep_ms(20);
    }
}

static void kill_rpc(int i) {
    if (rpc_pid[i] > 0) {
        kill(rpc_pid[i], SIGKILL);
        waitpid(rpc_pid[i], NULL, 0);
        rpc_pid[i] = 0;
    }
}

static int teardown(void **state) {
    h_test *t = *state;
    for (int i = 0; i < N_RPC; i++) {
        if (!t->passed) {
            char log[PATH_MAX + 32];
            snprintf(log, sizeof log, "%s/rpc%d.log", t->dir, i);
            fprintf(stderr, "---- rpc-server %d ----\n", i);
            print_file(log);
        }
        kill_rpc(i);
    }
    return h_teardown(state);
}

/* `serve --rpc A,B` with the model's layers split evenly over the two servers. */
static h_server *start_split(h_test *t) {
    static char list[64];
    for (int i = 0; i < N_RPC; i++)
        start_rpc(t, i);
    snprintf(list, sizeof list, "127.0.0.1:%d,127.0.0.1:%d", rpc_port[0], rpc_port[1]);
    const char *args[] = {"--model",
                          h_model_path(H_MODEL_FILE),
                          "--rpc",
                          list,
                          "--gpu-backend",
                          "rpc",
                          "--gpu-layers",
                          "all",
                          "--tensor-split",
                          "1,1",
                          "--parallel",
                          "1",
                          NULL};
    return h_start(t, args);
}

/* Layers on device `name` of the model in /health (0 when it is not listed). */
static long long layers_on(const json_t *m, const char *name) {
    json_t *devs = h_arr(m, "devices");
    for (size_t i = 0; i < json_array_size(devs); i++)
        if (strcmp(h_str(json_array_get(devs, i), "name"), name) == 0)
            return h_int(json_array_get(devs, i), "layers");
    return 0;
}

static void assert_goldens(int port) {
    h_golden g[8];
    int n = h_golden_load(g, 8);
    for (int i = 0; i < n; i++) {
        json_t *req = h_completion_req(g[i].prompt, g[i].max_tokens);
        json_t *resp = h_post_expect(port, "/v1/completions", req, 200);
        const char *text = json_string_value(h_get(resp, "choices.0.text"));
        if (text == NULL || strcmp(text, g[i].text) != 0)
            fail_msg("golden %d (%s) over RPC: got \"%s\", want \"%s\"", i, g[i].prompt,
                     text ? text : "(none)", g[i].text);
        json_decref(req);
        json_decref(resp);
    }
}

/* Layers split over both servers; greedy output equals the CPU golden. */
static void test_split(void **state) {
    h_test *t = *state;
    h_server *s = start_split(t);
    assert_goldens(s->port); /* loads the model */
    json_t *h = h_health(s->port);
    json_t *m = h_get(h, "models.0");
    char *dump = h_dump(m);
    if (h_int(m, "layers_offloaded") != 6 || layers_on(m, "RPC0") < 1 || layers_on(m, "RPC1") < 1 ||
        layers_on(m, "RPC0") + layers_on(m, "RPC1") != 6)
        fail_msg("want 6 layers over RPC0 and RPC1: %s", dump);
    free(dump);
    json_decref(h);
    h_pass(t);
}

typedef struct stream_arg {
    int port;
    _Atomic size_t got; /* body bytes received so far */
    char body[1 << 20]; /* the stream, truncated at its size */
    int64_t ended_ms;
} stream_arg;

static size_t on_body(char *p, size_t size, size_t n, void *user) {
    stream_arg *a = user;
    size_t len = size * n, at = a->got;
    size_t keep = at + len < sizeof a->body - 1 ? len : sizeof a->body - 1 - at;
    memcpy(a->body + at, p, keep);
    a->body[at + keep] = '\0';
    a->got = at + keep;
    return len;
}

/* Streams a long greedy completion; a->got tells the test when text has been shown. */
static void *run_stream(void *p) {
    stream_arg *a = p;
    char url[64], req[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/completions", a->port);
    snprintf(req, sizeof req,
             "{\"model\":\"%s\",\"prompt\":\"Once upon a time\","
             "\"max_tokens\":100000,\"temperature\":0,\"stream\":true}",
             H_MODEL_NAME);
    CURL *c = curl_easy_init();
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_perform(c);
    curl_slist_free_all(hd);
    curl_easy_cleanup(c);
    a->ended_ms = h_now_ms();
    return NULL;
}

/* One RPC server dies mid-generation: the request ends with a clear error, the server stays up,
 * the next request is served on what is left. */
static void test_kill_one(void **state) {
    h_test *t = *state;
    h_server *s = start_split(t);
    assert_goldens(s->port);
    stream_arg *a = calloc(1, sizeof *a);
    a->port = s->port;
    pthread_t th;
    pthread_create(&th, NULL, run_stream, a);
    int64_t deadline = h_now_ms() + 20000;
    while (a->got == 0) { /* text shown: the request cannot be resubmitted silently */
        if (h_now_ms() > deadline)
            fail_msg("the generation never started");
        h_sleep_ms(2);
    }
    int64_t killed = h_now_ms();
    kill_rpc(1);
    json_decref(h_health(s->port)); /* the server answers while its engine process dies */
    pthread_join(th, NULL);
    const char *last = strrchr(a->body, '{') ? strstr(a->body, "data: {\"error\"") : NULL;
    fprintf(stderr, "stream ended %lld ms after the kill (%zu bytes); error event: %s\n",
            (long long)(a->ended_ms - killed), (size_t)a->got, last ? last : "(none)");
    if (a->ended_ms - killed > 5000)
        fail_msg("the stream ended %lld ms after the kill", (long long)(a->ended_ms - killed));
    assert_non_null(last);
    assert_non_null(strstr(last, "engine_crashed"));
    assert_non_null(strstr(last, "Remote RPC server crashed"));
    assert_null(strstr(a->body, "[DONE]"));
    free(a);

    assert_goldens(s->port); /* a fresh engine process, on RPC0 and the CPU */
    json_t *h = h_health(s->port);
    json_t *m = h_get(h, "models.0");
    char *dump = h_dump(m);
    fprintf(stderr, "after the kill: %s\n", dump);
    if (layers_on(m, "RPC1") != 0 || h_int(m, "engine_crashes") < 1 ||
        strstr(h_str(m, "last_crash"), "signal") == NULL)
        fail_msg("want the model reloaded without RPC1 and the crash recorded: %s", dump);
    free(dump);
    json_decref(h);
    char *log = h_server_read_log(s);
    if (strstr(log, "left out") == NULL)
        fail_msg("no 'left out' line for the dead RPC server in the log:\n%s", log);
    free(log);
    h_pass(t);
}

/* Refusals: a public address without the flag; an unreachable server at start-up. */
static void test_refusals(void **state) {
    h_test *t = *state;
    char *out;
    const char *pub[] = {"rpc-server", "--bind", "0.0.0.0:1", NULL};
    assert_int_equal(h_run(t, pub, 10000, &out), 2);
    assert_non_null(strstr(out, "--i-know-this-is-unauthenticated"));
    free(out);
    char dead[64];
    snprintf(dead, sizeof dead, "127.0.0.1:%d", free_port());
    const char *args[] = {"serve", "--bind", "127.0.0.1:0", "--model", h_model_path(H_MODEL_FILE),
                          "--rpc", dead,     NULL};
    assert_int_equal(h_run(t, args, 20000, &out), 1);
    if (strstr(out, "cannot reach the RPC server") == NULL)
        fail_msg("serve with an unreachable --rpc server:\n%s", out);
    free(out);
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refusals, h_setup, teardown),
        cmocka_unit_test_setup_teardown(test_split, h_setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_one, h_setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
