/* it_trust: who may talk to the server, and the HTTP edge (docs/SECURITY.md), on the real binary
 * over raw sockets and libcurl:
 * - a table of hostile requests, each with its exact status, error shape and connection close;
 * - browser safety by default: no CORS header without an allowed Origin, foreign origins and
 *   hosts refused, admin paths never cross-origin;
 * - API keys (flag, file re-read on SIGHUP, Bearer and x-api-key, 401 shapes, /health open);
 * - TLS with a throw-away certificate made by openssl, and a clear error for a mismatched key;
 * - a stalled chunked body is answered 408 at the idle timeout, not held;
 * - many idle connections from this process do not lock another client out. */
#include "harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- raw HTTP ---- */

typedef struct raw_resp {
    int status;      /* 0 when nothing came back */
    char head[4096]; /* status line and headers */
    char body[4096];
    bool closed;  /* the server closed the connection after answering */
    int n_status; /* status lines seen ("HTTP/1.1 " at a line start) */
} raw_resp;

static int raw_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        fail_msg("connect to %d failed", port);
    return fd;
}

/* Sends len bytes, then reads until the server closes or wait_ms pass without a byte. */
static void raw_send(int port, const char *req, size_t len, int wait_ms, raw_resp *r) {
    memset(r, 0, sizeof *r);
    int fd = raw_connect(port);
    assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
    char all[16384];
    size_t n = 0;
    int64_t deadline = h_now_ms() + wait_ms;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(deadline - h_now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        ssize_t got = recv(fd, all + n, sizeof all - 1 - n, 0);
        if (got <= 0) {
            r->closed = true;
            break;
        }
        n += (size_t)got;
        deadline = h_now_ms() + wait_ms;
    }
    close(fd);
    all[n] = '\0';
    for (const char *p = all; (p = strstr(p, "HTTP/1.1 ")) != NULL; p++)
        r->n_status += p == all || p[-1] == '\n';
    sscanf(all, "HTTP/1.1 %d", &r->status);
    const char *sep = strstr(all, "\r\n\r\n");
    size_t hl = sep ? (size_t)(sep - all) : n;
    snprintf(r->head, sizeof r->head, "%.*s", (int)hl, all);
    snprintf(r->body, sizeof r->body, "%s", sep ? sep + 4 : "");
}

static bool head_has(const raw_resp *r, const char *line) {
    return strcasestr(r->head, line) != NULL;
}

/* ---- the hostile table ---- */

enum { SHAPE_OPENAI, SHAPE_OLLAMA };

typedef struct hostile {
    const char *name;
    const char *req; /* raw bytes; "\\0" in the table is spelled as NUL_MARK */
    int status;
    int shape;       /* error body shape */
    const char *msg; /* substring of the error message */
    bool must_close;
} hostile;

#define NUL_MARK "<NUL>"
#define H "Host: localhost\r\n"
#define J "{\"model\":\"stories260k\",\"prompt\":\"Once\",\"max_tokens\":2}"
#define OAI "/v1/completions"

static const hostile hostile_cases[] = {
    {"TE gzip", "POST " OAI " HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\n\r\n" J, 501,
     SHAPE_OPENAI, "Transfer-Encoding 'gzip' is not supported", true},
    {"TE xchunked",
     "POST " OAI " HTTP/1.1\r\n" H "Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n", 501,
     SHAPE_OPENAI, "'xchunked'", true},
    {"TE gzip, ollama", "POST /api/generate HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\n\r\n", 501,
     SHAPE_OLLAMA, "not supported", true},
    {"TE twice",
     "POST " OAI " HTTP/1.1\r\n" H
     "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     501, SHAPE_OPENAI, "Transfer-Encoding", true},
    {"CL differ", "POST " OAI " HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 54\r\n\r\n" J,
     400, SHAPE_OPENAI, "Content-Length headers that differ", true},
    {"CL + TE",
     "POST " OAI " HTTP/1.1\r\n" H "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
     "0\r\n\r\n",
     400, SHAPE_OPENAI, "both Content-Length and Transfer-Encoding", true},
    {"NUL in target", "GET /health" NUL_MARK "x HTTP/1.1\r\n" H "\r\n", 400, SHAPE_OPENAI,
     "request target", true},
    {"NUL in target, ollama", "GET /api/tags" NUL_MARK " HTTP/1.1\r\n" H "\r\n", 400, SHAPE_OLLAMA,
     "request target", true},
    {"control byte in target", "GET /he\x01lth HTTP/1.1\r\n" H "\r\n", 400, SHAPE_OPENAI,
     "request target", true},
    {"space in target", "GET /health x HTTP/1.1\r\n" H "\r\n", 400, SHAPE_OPENAI, "request target",
     true},
    {"control byte in header", "GET /health HTTP/1.1\r\n" H "X-A: a\x01z\r\n\r\n", 400,
     SHAPE_OPENAI, "header 'X-A' holds a control character", true},
    {"no Host", "GET /health HTTP/1.1\r\n\r\n", 400, SHAPE_OPENAI, "without a Host header", true},
    {"two Hosts", "GET /health HTTP/1.1\r\n" H "Host: other\r\n\r\n", 400, SHAPE_OPENAI,
     "more than one Host", true},
    {"foreign Host", "GET /v1/models HTTP/1.1\r\nHost: evil.example\r\n\r\n", 403, SHAPE_OPENAI,
     "Host 'evil.example' is not allowed", false},
    {"foreign Host, port", "GET /api/tags HTTP/1.1\r\nHost: evil.example:11435\r\n\r\n", 403,
     SHAPE_OLLAMA, "is not allowed", false},
    {"foreign Host on health", "GET /health HTTP/1.1\r\nHost: rebind.attacker.test\r\n\r\n", 403,
     SHAPE_OPENAI, "not allowed", false},
    {"cross-site text/plain POST",
     "POST " OAI " HTTP/1.1\r\n" H "Origin: http://evil.example\r\n"
     "Content-Type: text/plain\r\nContent-Length: 54\r\n\r\n" J,
     403, SHAPE_OPENAI, "cross-origin request from 'http://evil.example' refused", false},
    {"cross-site ollama POST",
     "POST /api/generate HTTP/1.1\r\n" H "Origin: https://evil.example\r\n"
     "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}",
     403, SHAPE_OLLAMA, "cross-origin request", false},
    {"cross-site rescan",
     "POST /v1/models/rescan HTTP/1.1\r\n" H "Origin: http://evil.example\r\n"
     "Content-Length: 0\r\n\r\n",
     403, SHAPE_OPENAI, "cross-origin", false},
    {"allowed origin, admin path",
     "POST /v1/models/rescan HTTP/1.1\r\n" H
     "Origin: http://localhost:3000\r\nContent-Length: 0\r\n\r\n",
     403, SHAPE_OPENAI, "takes no cross-origin request", false},
    {"null origin", "GET /v1/models HTTP/1.1\r\n" H "Origin: null\r\n\r\n", 403, SHAPE_OPENAI,
     "cross-origin", false},
    {"Sec-Fetch-Site cross-site",
     "GET /v1/models HTTP/1.1\r\n" H "Sec-Fetch-Site: cross-site\r\n\r\n", 403, SHAPE_OPENAI,
     "cross-site request refused", false},
    {"preflight, foreign",
     "OPTIONS " OAI " HTTP/1.1\r\n" H "Origin: http://evil.example\r\n"
     "Access-Control-Request-Method: POST\r\n\r\n",
     403, SHAPE_OPENAI, "cross-origin", false},
    {"lookalike origin",
     "GET /v1/models HTTP/1.1\r\n" H "Origin: http://localhost.evil.example\r\n\r\n", 403,
     SHAPE_OPENAI, "cross-origin", false},
    {"unknown route", "GET /nope HTTP/1.1\r\n" H "\r\n", 404, SHAPE_OPENAI, "", false},
    {"unknown ollama route", "GET /api/nope HTTP/1.1\r\n" H "\r\n", 404, SHAPE_OLLAMA, "", false},
    {"wrong method", "DELETE " OAI " HTTP/1.1\r\n" H "\r\n", 405, SHAPE_OPENAI, "", false},
    {"CL over limit",
     "POST " OAI " HTTP/1.1\r\n" H "Content-Length: 99999999\r\n"
     "Expect: 100-continue\r\n\r\n",
     413, SHAPE_OPENAI, "", false},
};

/* The table's request with NUL_MARK turned into a NUL byte. Returns the length. */
static size_t hostile_bytes(const char *req, char *out, size_t outlen) {
    size_t n = 0;
    for (const char *p = req; *p && n + 1 < outlen;) {
        if (strncmp(p, NUL_MARK, strlen(NUL_MARK)) == 0) {
            out[n++] = '\0';
            p += strlen(NUL_MARK);
        } else
            out[n++] = *p++;
    }
    return n;
}

static void check_shape(const hostile *c, const raw_resp *r) {
    json_t *j = h_json(r->body);
    const char *msg;
    if (c->shape == SHAPE_OLLAMA) {
        msg = h_str(j, "error");
    } else {
        json_t *e = h_obj(j, "error");
        msg = h_str(e, "message");
        h_str(e, "type");
        assert_non_null(json_object_get(e, "code"));
    }
    if (strstr(msg, c->msg) == NULL)
        fail_msg("%s: message '%s' lacks '%s'", c->name, msg, c->msg);
    json_decref(j);
}

static void test_hostile_table(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    size_t n = sizeof hostile_cases / sizeof hostile_cases[0];
    for (size_t i = 0; i < n; i++) {
        const hostile *c = &hostile_cases[i];
        char req[4096];
        size_t len = hostile_bytes(c->req, req, sizeof req);
        raw_resp r;
        raw_send(s->port, req, len, c->must_close ? 5000 : 300, &r);
        if (r.status != c->status)
            fail_msg("%s: status %d, want %d\n%s\n\n%s", c->name, r.status, c->status, r.head,
                     r.body);
        if (r.n_status != 1)
            fail_msg("%s: %d status lines in one answer", c->name, r.n_status);
        if (!head_has(&r, "Content-Type: application/json"))
            fail_msg("%s: not JSON:\n%s", c->name, r.head);
        check_shape(c, &r);
        if (c->must_close && (!r.closed || !head_has(&r, "Connection: close")))
            fail_msg("%s: connection not closed after a framing error", c->name);
        if (head_has(&r, "Access-Control-Allow-Origin"))
            fail_msg("%s: CORS header on a refusal:\n%s", c->name, r.head);
    }
    printf("hostile cases: %zu\n", n);
    h_pass(t);
}

/* ---- browser safety ---- */

static void test_cors_defaults(void **state) {
    h_test *t = *state;
    h_server *s =
        h_start_default(t, (const char *const[]){"--cors-origin", "https://app.example", NULL});
    raw_resp r;
    const char *plain = "GET /v1/models HTTP/1.1\r\n" H "Connection: close\r\n\r\n";
    raw_send(s->port, plain, strlen(plain), 2000, &r);
    assert_int_equal(r.status, 200);
    assert_false(head_has(&r, "Access-Control-Allow-Origin")); /* no Origin: no CORS at all */

    const char *lo = "GET /v1/models HTTP/1.1\r\n" H "Origin: http://localhost:5173\r\n"
                     "Connection: close\r\n\r\n";
    raw_send(s->port, lo, strlen(lo), 2000, &r);
    assert_int_equal(r.status, 200);
    assert_true(head_has(&r, "Access-Control-Allow-Origin: http://localhost:5173"));
    assert_true(head_has(&r, "Vary: Origin"));

    const char *pre = "OPTIONS /v1/chat/completions HTTP/1.1\r\n" H
                      "Origin: https://app.example\r\nAccess-Control-Request-Method: POST\r\n"
                      "Access-Control-Request-Headers: content-type, authorization\r\n\r\n";
    raw_send(s->port, pre, strlen(pre), 2000, &r);
    assert_int_equal(r.status, 204);
    assert_true(head_has(&r, "Access-Control-Allow-Origin: https://app.example"));
    assert_false(head_has(&r, "Access-Control-Allow-Origin: *"));

    /* An IP literal or localhost as Host is fine (rebinding always carries a DNS name). */
    const char *ip = "GET /health HTTP/1.1\r\nHost: 127.0.0.1:1\r\nConnection: close\r\n\r\n";
    raw_send(s->port, ip, strlen(ip), 2000, &r);
    assert_int_equal(r.status, 200);
    h_pass(t);
}

static void test_allowed_host(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, (const char *const[]){"--allowed-host", "box.lan", NULL});
    raw_resp r;
    const char *ok = "GET /health HTTP/1.1\r\nHost: BOX.lan:8080\r\nConnection: close\r\n\r\n";
    raw_send(s->port, ok, strlen(ok), 2000, &r);
    assert_int_equal(r.status, 200);
    const char *no = "GET /health HTTP/1.1\r\nHost: other.lan\r\nConnection: close\r\n\r\n";
    raw_send(s->port, no, strlen(no), 2000, &r);
    assert_int_equal(r.status, 403);
    h_pass(t);
}

/* ---- keys ---- */

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* GET path with optional extra header line (e.g. "Authorization: Bearer k"). */
static int get_with(int port, const char *path, const char *hdr, raw_resp *r) {
    char req[1024];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\n" H "%s%sConnection: close\r\n\r\n", path,
             hdr ? hdr : "", hdr ? "\r\n" : "");
    raw_send(port, req, strlen(req), 3000, r);
    return r->status;
}

static void test_keys(void **state) {
    h_test *t = *state;
    char keyfile[4200];
    snprintf(keyfile, sizeof keyfile, "%s/keys.txt", t->dir);
    write_file(keyfile, "# team keys\n  file-key-1  \n\n");
    h_server *s = h_start_default(
        t, (const char *const[]){"--api-key", "flag-key", "--api-key-file", keyfile, NULL});
    raw_resp r;
    assert_int_equal(get_with(s->port, "/v1/models", NULL, &r), 401);
    assert_true(head_has(&r, "WWW-Authenticate: Bearer"));
    json_t *j = h_json(r.body);
    assert_string_equal(h_str(h_obj(j, "error"), "code"), "invalid_api_key");
    json_decref(j);
    assert_int_equal(get_with(s->port, "/api/tags", NULL, &r), 401);
    j = h_json(r.body);
    assert_non_null(strstr(h_str(j, "error"), "missing API key"));
    json_decref(j);
    assert_int_equal(get_with(s->port, "/api/tags", "Authorization: Bearer wrong", &r), 401);
    assert_non_null(strstr(r.body, "invalid API key"));
    assert_int_equal(get_with(s->port, "/v1/models", "Authorization: Bearer flag-key", &r), 200);
    assert_int_equal(get_with(s->port, "/v1/models", "x-api-key: file-key-1", &r), 200);
    assert_int_equal(get_with(s->port, "/v1/models", "Authorization: Basic flag-key", &r), 401);
    assert_int_equal(get_with(s->port, "/health", NULL, &r), 200); /* open without --auth-health */

    /* SIGHUP re-reads the file: the new key works, the old one stops, the flag key stays. */
    write_file(keyfile, "file-key-2\n");
    kill(s->pid, SIGHUP);
    int64_t deadline = h_now_ms() + 10000;
    while (get_with(s->port, "/v1/models", "x-api-key: file-key-2", &r) != 200 &&
           h_now_ms() < deadline)
        h_sleep_ms(50);
    assert_int_equal(r.status, 200);
    assert_int_equal(get_with(s->port, "/v1/models", "x-api-key: file-key-1", &r), 401);
    assert_int_equal(get_with(s->port, "/v1/models", "Authorization: Bearer flag-key", &r), 200);
    /* A file with more keys than LIM_TRUST_VALUES leaves room for is refused, never cut: on
     * SIGHUP the previous keys stay; at start-up serve exits 2. */
    char many[64 * 16 + 1] = "";
    for (int i = 0; i < 64; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "many-key-%02d\n", i);
    write_file(keyfile, many);
    kill(s->pid, SIGHUP);
    deadline = h_now_ms() + 10000;
    char *log = NULL;
    for (;;) {
        log = h_server_read_log(s);
        if (strstr(log, "keeping the previous API keys") != NULL)
            break;
        free(log);
        assert_true(h_now_ms() < deadline);
        h_sleep_ms(50);
    }
    assert_non_null(strstr(log, "64 keys; at most 63"));
    assert_int_equal(get_with(s->port, "/v1/models", "x-api-key: file-key-2", &r), 200);
    assert_int_equal(get_with(s->port, "/v1/models", "x-api-key: many-key-00", &r), 401);
    assert_null(strstr(log, "file-key")); /* keys are never logged */
    assert_null(strstr(log, "flag-key"));
    assert_null(strstr(log, "many-key"));
    free(log);
    char *out = NULL;
    const char *refused[] = {"serve", "--api-key", "flag-key",    "--api-key-file",
                             keyfile, "--bind",    "127.0.0.1:0", NULL};
    assert_int_equal(h_run(t, refused, 10000, &out), 2);
    assert_non_null(strstr(out, "64 keys; at most 63"));
    free(out);
    h_pass(t);
}

/* ---- stalled and oversized bodies ---- */

static void test_stalled_chunk(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    const char *req = "POST " OAI " HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
                      "FFFFFFFFFFFFFFFF\r\nabc";
    int64_t t0 = h_now_ms();
    raw_resp r;
    raw_send(s->port, req, strlen(req), 20000, &r);
    int64_t took = h_now_ms() - t0;
    printf("stalled chunk of 2^64-1 bytes: %d after %lld ms\n", r.status, (long long)took);
    assert_int_equal(r.status, 408);
    assert_true(r.closed);
    assert_true(took < 15000);
    h_pass(t);
}

static void test_chunked_over_limit(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    int fd = raw_connect(s->port);
    const char *head = "POST " OAI " HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n";
    assert_true(send(fd, head, strlen(head), MSG_NOSIGNAL) > 0);
    static char chunk[65536 + 16];
    int hl = snprintf(chunk, sizeof chunk, "10000\r\n");
    memset(chunk + hl, 'a', 65536);
    memcpy(chunk + hl + 65536, "\r\n", 2);
    size_t clen = (size_t)hl + 65536 + 2;
    /* 8 MiB limit + 1 MiB slack: 10 MiB gets past both; stop sending when the server answers. */
    char got[4096] = "";
    ssize_t n = 0;
    for (int i = 0; i < 160 && n <= 0; i++) {
        if (send(fd, chunk, clen, MSG_NOSIGNAL) < 0)
            break;
        n = recv(fd, got, sizeof got - 1, MSG_DONTWAIT);
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (n <= 0 && poll(&p, 1, 5000) > 0)
        n = recv(fd, got, sizeof got - 1, 0);
    close(fd);
    assert_true(n > 0);
    got[n] = '\0';
    if (strncmp(got, "HTTP/1.1 413", 12) != 0)
        fail_msg("chunked body over the limit: %s", got);
    h_pass(t);
}

/* ---- idle connections ---- */

#define IDLE_CONNS 600 /* past LIM_CONNECTIONS (512) and LIM_CONNECTIONS_PER_IP (256) */

static void test_idle_lockout(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    static int fds[IDLE_CONNS];
    const char *req = "GET /health HTTP/1.1\r\n" H "\r\n";
    int opened = 0;
    for (int i = 0; i < IDLE_CONNS; i++) {
        fds[i] = raw_connect(s->port);
        if (send(fds[i], req, strlen(req), MSG_NOSIGNAL) > 0)
            opened++;
    }
    h_sleep_ms(300); /* let them answer and fall idle */
    int64_t t0 = h_now_ms();
    long status = 0;
    char *body = NULL;
    http_get(s->port, "/health", &status, &body);
    int64_t took = h_now_ms() - t0;
    free(body);
    printf("%d idle keep-alive connections from this process; another client: %ld in %lld ms\n",
           opened, status, (long long)took);
    for (int i = 0; i < IDLE_CONNS; i++)
        close(fds[i]);
    assert_int_equal(status, 200);
    assert_true(took < 5000);
    h_pass(t);
}

/* ---- TLS ---- */

static int pick_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static size_t sink(char *p, size_t sz, size_t n, void *ud) {
    (void)p, (void)ud;
    return sz * n;
}

/* GET https://127.0.0.1:port/health without verifying the certificate. */
static long https_health(int port) {
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/health", port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

/* Starts shimmy serve with args (NULL-terminated, after --bind and --threads) on its own port,
 * registered with the test so that teardown stops it; does not wait for it. */
static h_server *spawn_server(h_test *t, const char *const *args) {
    assert_true(t->n_servers < H_MAX_SERVERS);
    h_server *s = &t->servers[t->n_servers];
    memset(s, 0, sizeof *s);
    s->exit_status = -1;
    s->port = pick_port();
    int idx = t->n_servers;
    char log[sizeof s->log];
    snprintf(log, sizeof log, "%.4000s/server%d.log", t->dir, idx);
    memcpy(s->log, log, sizeof log);
    char bind[64];
    snprintf(bind, sizeof bind, "127.0.0.1:%d", s->port);
    const char *argv[H_MAX_ARGS + 8];
    int n = 0;
    argv[n++] = h_bin();
    argv[n++] = "serve";
    argv[n++] = "--bind";
    argv[n++] = bind;
    argv[n++] = "--threads";
    argv[n++] = H_THREADS;
    for (int i = 0; args[i] != NULL && n < H_MAX_ARGS + 7; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        if (freopen(s->log, "w", stdout) != NULL)
            dup2(fileno(stdout), 2);
        execv(h_bin(), (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    t->n_servers++;
    return s;
}

static void test_auth_health(void **state) {
    h_test *t = *state;
    setenv("SHIMMY_API_KEY", "env-key", 1);
    h_server *s = spawn_server(
        t, (const char *const[]){"--model", h_model_path(H_MODEL_FILE), "--auth-health", NULL});
    unsetenv("SHIMMY_API_KEY");
    raw_resp r = {0};
    int64_t deadline = h_now_ms() + 30000;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bool up = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if ((up && get_with(s->port, "/health", "Authorization: Bearer env-key", &r) == 200) ||
            h_now_ms() > deadline)
            break;
        h_sleep_ms(100);
    }
    assert_int_equal(r.status, 200);
    assert_int_equal(get_with(s->port, "/health", NULL, &r), 401);
    assert_int_equal(get_with(s->port, "/", NULL, &r), 401);
    h_pass(t);
}

static void make_cert(h_test *t, const char *name, char *crt, char *key, size_t len) {
    snprintf(crt, len, "%s/%s.crt", t->dir, name);
    snprintf(key, len, "%s/%s.key", t->dir, name);
    char *out = NULL;
    int rc = h_run_exe(t, "/usr/bin/openssl",
                       (const char *const[]){"req", "-x509", "-newkey", "rsa:2048", "-nodes",
                                             "-keyout", key, "-out", crt, "-days", "1", "-subj",
                                             "/CN=localhost", NULL},
                       60000, &out);
    if (rc != 0)
        fail_msg("openssl: %s", out);
    free(out);
}

static void test_tls(void **state) {
    h_test *t = *state;
    char crt[4200], key[4200], crt2[4200], key2[4200];
    make_cert(t, "a", crt, key, sizeof crt);
    make_cert(t, "b", crt2, key2, sizeof crt2);

    /* A key that does not match the certificate: a clear start-up error. */
    char *out = NULL;
    int rc = h_run(t,
                   (const char *const[]){"serve", "--bind", "127.0.0.1:0", "--tls-cert", crt,
                                         "--tls-key", key2, NULL},
                   30000, &out);
    printf("mismatched key: exit %d: %s", rc, out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "cannot start the HTTPS server"));
    free(out);
    rc = h_run(t, (const char *const[]){"serve", "--tls-cert", crt, NULL}, 30000, &out);
    assert_int_equal(rc, 2);
    free(out);

    /* A good pair: HTTPS answers, plain HTTP on the same port does not get a 200. */
    h_server *s = spawn_server(t, (const char *const[]){"--tls-cert", crt, "--tls-key", key, NULL});
    long status = 0;
    int64_t deadline = h_now_ms() + 30000;
    while ((status = https_health(s->port)) != 200 && h_now_ms() < deadline)
        h_sleep_ms(100);
    assert_int_equal(status, 200);
    raw_resp r;
    const char *plain = "GET /health HTTP/1.1\r\n" H "\r\n";
    raw_send(s->port, plain, strlen(plain), 2000, &r);
    assert_int_not_equal(r.status, 200);
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hostile_table, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_cors_defaults, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_allowed_host, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_keys, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_auth_health, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_stalled_chunk, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_chunked_over_limit, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_idle_lockout, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_tls, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
