/* Unit tests for http/server and http/stream: a real server on 127.0.0.1, an ephemeral port, a
 * small route table of test handlers, and libcurl as the client. Handlers run in server threads
 * and only record into atomics; every wait is a poll with a deadline, never a sleep asserted on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "http/server.h"
#include "http/stream.h"

#define DEADLINE_NS (5LL * 1000000000LL)

static http_server *g_srv;
static int g_port;

/* What the handlers saw. */
static atomic_int g_stream_frees;     /* stream_free calls */
static atomic_int g_stream_calls;     /* stream fn calls of the endless stream */
static atomic_int g_calls_after_free; /* stream fn calls on a stream already freed: must stay 0 */
static atomic_int g_gone_first;       /* http_conn_gone at the start of /block: 0/1, -1 unset */
static atomic_int g_gone_seen;        /* /block saw the client go: 1, timed out: 0, unset: -1 */
static atomic_int g_handler_runs;     /* handler calls of /json and /query */
static char g_seen_path[256];         /* path of the last /query* call (written before the flag) */
static atomic_int g_seen_path_set;

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls *v until it equals want or the deadline passes; returns the last value. */
static int wait_for(atomic_int *v, int want) {
    int64_t end = clock_mono_ns() + DEADLINE_NS;
    int got = atomic_load(v);
    while (got != want && clock_mono_ns() < end) {
        sleep_ms(5);
        got = atomic_load(v);
    }
    return got;
}

/* ---- handlers ---- */

static void h_json(const http_request *req, http_response *res) {
    atomic_fetch_add(&g_handler_runs, 1);
    buf_printf(&res->body, "{\"ok\":true,\"len\":%zu}", req->body_len);
}

static void h_query(const http_request *req, http_response *res) {
    snprintf(g_seen_path, sizeof g_seen_path, "%s", req->path);
    atomic_store(&g_seen_path_set, 1);
    buf_puts(&res->body, "{}");
}

static void h_echo(const http_request *req, http_response *res) {
    res->content_type = "text/plain";
    buf_append(&res->body, req->body, req->body_len);
}

static void h_busy(const http_request *req, http_response *res) {
    res->status = 503;
    res->retry_after_s = 7;
    buf_puts(&res->body, "{\"error\":\"busy\"}");
}

typedef struct test_stream {
    int n;             /* pieces produced */
    int limit;         /* pieces to produce; 0 = endless */
    atomic_bool freed; /* stream_free was called: a later stream_fn call is counted */
    struct test_stream *next;
} test_stream;

/* Every stream made, kept until the group's teardown so that a call after its stream_free is
 * seen (g_calls_after_free) instead of reading freed memory; the teardown checks the count after
 * the server has stopped, so no wait has to guess how long a wrongful call could take. */
static test_stream *g_streams;
static pthread_mutex_t g_streams_mu = PTHREAD_MUTEX_INITIALIZER;

static int stream_fn(void *ctx, buf *out) {
    test_stream *ts = ctx;
    if (atomic_load(&ts->freed)) {
        atomic_fetch_add(&g_calls_after_free, 1);
        return 1;
    }
    sleep_ms(10);
    if (ts->limit == 0) {
        if (atomic_fetch_add(&g_stream_calls, 1) % 2 == 1)
            return 0; /* nothing this time: the server must wait and ask again */
        char piece[64];
        snprintf(piece, sizeof piece, "piece %d", ts->n++);
        http_sse_data(out, piece);
        return 0;
    }
    char piece[64];
    snprintf(piece, sizeof piece, "chunk-%d;", ts->n++);
    buf_puts(out, piece);
    return ts->n >= ts->limit ? 1 : 0;
}

static void stream_free_fn(void *ctx) {
    test_stream *ts = ctx;
    if (atomic_exchange(&ts->freed, true))
        atomic_fetch_add(&g_calls_after_free, 1); /* a second free */
    atomic_fetch_add(&g_stream_frees, 1);
}

static void start_stream(http_response *res, int limit, const char *ct) {
    test_stream *ts = calloc(1, sizeof *ts);
    assert_non_null(ts);
    ts->limit = limit;
    pthread_mutex_lock(&g_streams_mu);
    ts->next = g_streams;
    g_streams = ts;
    pthread_mutex_unlock(&g_streams_mu);
    res->content_type = ct;
    res->stream = stream_fn;
    res->stream_ctx = ts;
    res->stream_free = stream_free_fn;
}

static void h_stream5(const http_request *req, http_response *res) {
    start_stream(res, 5, "text/plain");
}

static void h_stream_endless(const http_request *req, http_response *res) {
    start_stream(res, 0, HTTP_SSE_CONTENT_TYPE);
}

/* Blocks until the client goes away (or 5 s), recording what http_conn_gone said. */
static void h_block(const http_request *req, http_response *res) {
    atomic_store(&g_gone_first, http_conn_gone(req->conn) ? 1 : 0);
    int64_t end = clock_mono_ns() + DEADLINE_NS;
    bool gone = false;
    while (!gone && clock_mono_ns() < end) {
        sleep_ms(10);
        gone = http_conn_gone(req->conn);
    }
    atomic_store(&g_gone_seen, gone ? 1 : 0);
    buf_puts(&res->body, "{}");
}

static void error_body(const http_request *req, shimmy_err e, const char *msg, buf *out) {
    buf_printf(out, "{\"test_error\":\"%s\",\"path\":\"%s\"}", err_get(e)->name, req->path);
}

static const http_route routes[] = {
    {"GET", "/json", h_json, 0},
    {"POST", "/json", h_json, 1024},
    {"POST", "/echo", h_echo, 64 * 1024},
    {"GET", "/query*", h_query, 0},
    {"GET", "/busy", h_busy, 0},
    {"GET", "/stream5", h_stream5, 0},
    {"GET", "/endless", h_stream_endless, 0},
    {"GET", "/block", h_block, 0},
    {"POST", "/post-only", h_json, 16},
};

/* ---- client ---- */

typedef struct reply {
    long status;
    char body[8192];
    size_t body_len;
    char headers[4096];
    size_t headers_len;
    int abort_after; /* > 0: fail the transfer after this many body callbacks */
    int body_calls;
    CURLcode rc;
} reply;

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    reply *r = ud;
    size_t len = size * n;
    r->body_calls++;
    if (r->abort_after > 0 && r->body_calls >= r->abort_after)
        return 0;
    size_t room = sizeof r->body - 1 - r->body_len;
    size_t k = len < room ? len : room;
    memcpy(r->body + r->body_len, p, k);
    r->body_len += k;
    r->body[r->body_len] = '\0';
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    reply *r = ud;
    size_t len = size * n;
    size_t room = sizeof r->headers - 1 - r->headers_len;
    size_t k = len < room ? len : room;
    memcpy(r->headers + r->headers_len, p, k);
    r->headers_len += k;
    r->headers[r->headers_len] = '\0';
    return len;
}

/* Returns the value of header name (case-insensitive) into out, or false. */
static bool header(const reply *r, const char *name, char *out, size_t outlen) {
    size_t n = strlen(name);
    for (const char *line = r->headers; *line;) {
        const char *eol = strstr(line, "\r\n");
        size_t ll = eol ? (size_t)(eol - line) : strlen(line);
        if (ll > n && strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            size_t vl = ll - (size_t)(v - line);
            if (vl >= outlen)
                vl = outlen - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return true;
        }
        if (!eol)
            break;
        line = eol + 2;
    }
    return false;
}

static void request_ex(const char *method, const char *path, const char *body, size_t body_len,
                       struct curl_slist *hdrs, long timeout_ms, reply *r) {
    char url[4096];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", g_port, path);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    if (hdrs != NULL)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    r->rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(c);
}

static void request(const char *method, const char *path, const char *body, reply *r) {
    request_ex(method, path, body, body ? strlen(body) : 0, NULL, 0, r);
}

/* request_ex with one extra request header line (e.g. "Expect:" to drop curl's default). */
static void request_hdr(const char *method, const char *path, const char *body, size_t body_len,
                        const char *header_line, reply *r) {
    struct curl_slist *h = curl_slist_append(NULL, header_line);
    assert_non_null(h);
    request_ex(method, path, body, body_len, h, 0, r);
    curl_slist_free_all(h);
}

/* n bytes of fill (owned). */
static char *filled(size_t n, char fill) {
    char *p = malloc(n);
    assert_non_null(p);
    memset(p, fill, n);
    return p;
}

/* Asserts that r has the header name with exactly the value want. */
static void assert_header(const reply *r, const char *name, const char *want) {
    char v[256];
    if (!header(r, name, v, sizeof v))
        fail_msg("no %s header in:\n%s", name, r->headers);
    assert_string_equal(v, want);
}

static void assert_no_header(const reply *r, const char *name) {
    char v[256];
    if (header(r, name, v, sizeof v))
        fail_msg("unexpected %s: %s", name, v);
}

/* Asserts status and the body error_body() writes for the error named err at path. */
static void assert_test_error(const reply *r, long status, const char *err, const char *path) {
    char want[512];
    snprintf(want, sizeof want, "{\"test_error\":\"%s\",\"path\":\"%s\"}", err, path);
    assert_int_equal(r->status, status);
    assert_string_equal(r->body, want);
}

/* ---- fixtures ---- */

static int setup(void **state) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    http_config cfg = {.host = "127.0.0.1",
                       .routes = routes,
                       .n_routes = sizeof routes / sizeof routes[0],
                       .error_body = error_body};
    char err[256] = "";
    if (http_server_start(&cfg, &g_srv, err, sizeof err) != SHIMMY_OK) {
        fprintf(stderr, "server start: %s\n", err);
        return -1;
    }
    g_port = http_server_port(g_srv);
    return g_port > 0 ? 0 : -1;
}

static int teardown(void **state) {
    http_server_stop(g_srv);
    curl_global_cleanup();
    int after = atomic_load(&g_calls_after_free);
    while (g_streams != NULL) {
        test_stream *ts = g_streams;
        g_streams = ts->next;
        free(ts);
    }
    if (after != 0)
        fprintf(stderr, "a stream was called (or freed) %d time(s) after its stream_free\n", after);
    return after == 0 ? 0 : -1;
}

/* ---- tests ---- */

static void test_json_200(void **state) {
    reply r = {0};
    request("GET", "/json", NULL, &r);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"ok\":true,\"len\":0}");
    assert_header(&r, "Content-Type", "application/json");
    assert_no_header(&r, "Access-Control-Allow-Origin"); /* no Origin, no CORS (SECURITY.md) */
    assert_no_header(&r, "Retry-After");
}

static void test_post_body(void **state) {
    reply r = {0};
    request("POST", "/json", "{\"a\":1}", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"ok\":true,\"len\":7}");

    /* A body in several pieces arrives whole. */
    size_t n = 40000;
    char *big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    reply e = {0};
    request_ex("POST", "/echo", big, n, NULL, 0, &e);
    assert_int_equal(e.status, 200);
    assert_int_equal(e.body_len, sizeof e.body - 1); /* reply buffer is smaller: truncated */
    assert_memory_equal(e.body, big, e.body_len);
    free(big);
}

static void test_404(void **state) {
    reply r = {0};
    request("GET", "/nope", NULL, &r);
    assert_test_error(&r, 404, "not_found", "/nope");
    assert_no_header(&r, "Access-Control-Allow-Origin");

    /* With a body the client sends regardless (no "Expect: 100-continue"): still a clean 404,
     * and 405 likewise. */
    size_t n = 512u * 1024u;
    char *big = filled(n, '\0');
    reply b = {0}, m = {0};
    request_hdr("POST", "/nope", big, n, "Expect:", &b);
    request_hdr("POST", "/busy", big, n, "Expect:", &m);
    free(big);
    assert_test_error(&b, 404, "not_found", "/nope");
    assert_int_equal(m.status, 405);

    /* A path longer than any route (and than the server's path buffer): 404, not a prefix hit. */
    char longpath[3000] = "/query";
    memset(longpath + 6, 'a', sizeof longpath - 7);
    longpath[sizeof longpath - 1] = '\0';
    reply l = {0};
    request("GET", longpath, NULL, &l);
    assert_int_equal(l.status, 404);
}

static void test_405_allow(void **state) {
    reply r = {0};
    request("GET", "/post-only", NULL, &r);
    assert_test_error(&r, 405, "method_not_allowed", "/post-only");
    assert_header(&r, "Allow", "POST, OPTIONS");

    reply d = {0};
    request("DELETE", "/json", NULL, &d);
    assert_int_equal(d.status, 405);
    assert_header(&d, "Allow", "GET, HEAD, POST, OPTIONS");
}

static void test_413(void **state) {
    /* Content-Length over the limit, client waits for 100 Continue: answered before the body. */
    char body[2048];
    memset(body, 'x', sizeof body);
    reply r = {0};
    request_hdr("POST", "/json", body, sizeof body, "Expect: 100-continue", &r);
    assert_test_error(&r, 413, "too_large", "/json");

    /* Chunked upload (no Content-Length) that grows past the limit while arriving. */
    reply c = {0};
    request_hdr("POST", "/json", body, sizeof body, "Transfer-Encoding: chunked", &c);
    assert_test_error(&c, 413, "too_large", "/json");

    /* The same without "Expect: 100-continue": the client sends the body anyway, and a large one
     * cannot fit the socket buffers, but the 413 still arrives. */
    size_t n = 1024u * 1024u;
    char *big = filled(n, '\0');
    reply b = {0}, s = {0};
    request_hdr("POST", "/json", big, n, "Expect:", &b);
    request_hdr("POST", "/json", body, sizeof body, "Expect:", &s);
    free(big);
    assert_int_equal(b.status, 413);
    assert_int_equal(s.status, 413);

    /* Exactly at the limit is fine. */
    reply ok = {0};
    request_ex("POST", "/json", body, 1024, NULL, 0, &ok);
    assert_int_equal(ok.status, 200);
}

static void test_413_endless_upload_cut(void **state) {
    /* A chunked upload far past the limit is cut off instead of read forever. */
    size_t n = 4u * 1024u * 1024u;
    char *big = filled(n, 'y');
    reply r = {0};
    request_hdr("POST", "/post-only", big, n, "Transfer-Encoding: chunked", &r);
    free(big);
    /* Either the 413 made it before the cut, or the transfer failed; never a 200. */
    assert_true(r.status == 413 || r.rc != CURLE_OK);
    assert_true(r.status != 200);
}

static void test_stream_whole(void **state) {
    int frees = atomic_load(&g_stream_frees);
    reply r = {0};
    request("GET", "/stream5", NULL, &r);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "chunk-0;chunk-1;chunk-2;chunk-3;chunk-4;");
    assert_header(&r, "Transfer-Encoding", "chunked");
    assert_header(&r, "Cache-Control", "no-cache");
    assert_no_header(&r, "X-Accel-Buffering");
    assert_int_equal(wait_for(&g_stream_frees, frees + 1), frees + 1);
}

static void test_stream_client_abort(void **state) {
    int frees = atomic_load(&g_stream_frees);
    reply r = {.abort_after = 2};
    request("GET", "/endless", NULL, &r);
    assert_int_equal(r.rc, CURLE_WRITE_ERROR);
    assert_int_equal(r.status, 200);
    assert_header(&r, "Content-Type", "text/event-stream");
    assert_header(&r, "X-Accel-Buffering", "no");
    assert_int_equal(wait_for(&g_stream_frees, frees + 1), frees + 1);
    /* The stream stopped: a call or a second free after this one is counted in
     * g_calls_after_free, which the group's teardown checks once the server has stopped. */
    assert_int_equal(atomic_load(&g_calls_after_free), 0);
}

static void test_conn_gone(void **state) {
    atomic_store(&g_gone_first, -1);
    atomic_store(&g_gone_seen, -1);
    reply r = {0};
    request_ex("GET", "/block", NULL, 0, NULL, 300, &r); /* client gives up after 300 ms */
    assert_int_equal(r.rc, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(wait_for(&g_gone_seen, 1), 1);
    assert_int_equal(atomic_load(&g_gone_first), 0);
}

static void test_retry_after(void **state) {
    reply r = {0};
    request("GET", "/busy", NULL, &r);
    assert_int_equal(r.status, 503);
    assert_header(&r, "Retry-After", "7");
}

static void test_query_stripped(void **state) {
    atomic_store(&g_seen_path_set, 0);
    reply r = {0};
    request("GET", "/query/sub?x=1&y=%20", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(wait_for(&g_seen_path_set, 1), 1);
    assert_string_equal(g_seen_path, "/query/sub");

    reply j = {0};
    request("GET", "/json?verbose=1", NULL, &j);
    assert_int_equal(j.status, 200);
}

static void test_options_preflight(void **state) {
    /* A page on localhost is allowed by default; its origin is echoed, never "*". */
    struct curl_slist *h = curl_slist_append(NULL, "Origin: http://localhost:5173");
    h = curl_slist_append(h, "Access-Control-Request-Method: POST");
    h = curl_slist_append(h, "Access-Control-Request-Headers: content-type, x-stainless-os");
    reply r = {0};
    request_ex("OPTIONS", "/json", NULL, 0, h, 0, &r);
    assert_int_equal(r.status, 204);
    assert_header(&r, "Access-Control-Allow-Origin", "http://localhost:5173");
    assert_header(&r, "Vary", "Origin");
    assert_header(&r, "Access-Control-Allow-Methods", "GET, HEAD, POST, OPTIONS");
    assert_header(&r, "Access-Control-Allow-Headers", "content-type, x-stainless-os");
    curl_slist_free_all(h);

    reply d = {0};
    request("OPTIONS", "/busy", NULL, &d);
    assert_int_equal(d.status, 204);
    assert_header(&d, "Access-Control-Allow-Headers", "Content-Type, Authorization");

    reply n = {0};
    request("OPTIONS", "/nope", NULL, &n);
    assert_int_equal(n.status, 404);

    /* Any other site: 403 before any work. */
    struct curl_slist *f = curl_slist_append(NULL, "Origin: http://example.com");
    f = curl_slist_append(f, "Access-Control-Request-Method: POST");
    reply x = {0};
    request_ex("OPTIONS", "/json", NULL, 0, f, 0, &x);
    assert_int_equal(x.status, 403);
    assert_no_header(&x, "Access-Control-Allow-Origin");
    curl_slist_free_all(f);
}

static void test_head(void **state) {
    reply r = {0};
    request("HEAD", "/json", NULL, &r);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
}

static void test_bind_errors(void **state) {
    http_config cfg = {.host = "127.0.0.1",
                       .port = g_port,
                       .routes = routes,
                       .n_routes = 1,
                       .error_body = error_body};
    http_server *s = NULL;
    char err[256] = "";
    assert_int_equal(http_server_start(&cfg, &s, err, sizeof err), ERR_IO);
    assert_null(s);
    char want[128];
    snprintf(want, sizeof want, "127.0.0.1:%d: Address already in use", g_port);
    assert_string_equal(err, want);
    assert_false(http_port_free("127.0.0.1", g_port));

    cfg.host = "no-such-host.invalid";
    cfg.port = 0;
    err[0] = '\0';
    assert_int_equal(http_server_start(&cfg, &s, err, sizeof err), ERR_IO);
    assert_non_null(strstr(err, "no-such-host.invalid:0: "));
}

static void test_hosts(void **state) {
    const char *hosts[] = {"localhost", "::1", "[::1]", "0.0.0.0"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        http_config cfg = {
            .host = hosts[i], .routes = routes, .n_routes = 1, .error_body = error_body};
        http_server *s = NULL;
        char err[256] = "";
        shimmy_err e = http_server_start(&cfg, &s, err, sizeof err);
        if (e != SHIMMY_OK && strchr(hosts[i], ':') != NULL) {
            print_message("skipping %s (no IPv6 here: %s)\n", hosts[i], err);
            continue;
        }
        assert_int_equal(e, SHIMMY_OK);
        int port = http_server_port(s);
        assert_true(port > 0);
        assert_false(http_port_free(hosts[i], port));
        http_server_stop(s);
        /* Stopped: the port can be bound again. */
        assert_true(http_port_free(hosts[i], port));
    }
}

typedef struct client_arg {
    int port;
    long status;
    CURLcode rc;
} client_arg;

static void *client_block(void *p) {
    client_arg *a = p;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/block", a->port);
    CURL *c = curl_easy_init();
    if (c == NULL)
        return NULL;
    reply r = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    a->rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
    curl_easy_cleanup(c);
    return NULL;
}

/* Stopping the server while a handler blocks: the handler sees the connection gone, returns,
 * and stop returns well before the client's own timeout. */
static void test_stop_unblocks(void **state) {
    http_config cfg = {.host = "127.0.0.1",
                       .routes = routes,
                       .n_routes = sizeof routes / sizeof routes[0],
                       .error_body = error_body};
    http_server *s = NULL;
    char err[256] = "";
    assert_int_equal(http_server_start(&cfg, &s, err, sizeof err), SHIMMY_OK);
    atomic_store(&g_gone_first, -1);
    atomic_store(&g_gone_seen, -1);
    client_arg a = {.port = http_server_port(s)};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, client_block, &a), 0);
    assert_int_equal(wait_for(&g_gone_first, 0), 0);
    int64_t t0 = clock_mono_ns();
    http_server_stop(s);
    int64_t took_ms = (clock_mono_ns() - t0) / 1000000;
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&g_gone_seen), 1);
    assert_true(took_ms < 4000);
}

static void test_stream_framing(void **state) {
    buf b;
    buf_init(&b, 1024);
    assert_int_equal(http_sse_data(&b, "{\"a\":1}"), SHIMMY_OK);
    assert_string_equal(buf_str(&b), "data: {\"a\":1}\n\n");
    buf_reset(&b);
    assert_int_equal(http_sse_event(&b, "done", "x\ny\r\nz\n", 7), SHIMMY_OK);
    assert_string_equal(buf_str(&b), "event: done\ndata: x\ndata: y\ndata: z\ndata: \n\n");
    buf_reset(&b);
    assert_int_equal(http_sse_comment(&b, "ping"), SHIMMY_OK);
    assert_string_equal(buf_str(&b), ": ping\n\n");
    buf_reset(&b);
    assert_int_equal(http_ndjson_line(&b, "{\"a\":\n1}", 8), SHIMMY_OK);
    assert_string_equal(buf_str(&b), "{\"a\": 1}\n");
    buf_free(&b);

    /* A frame that does not fit leaves the buf as it was. */
    buf_init(&b, 16);
    assert_int_equal(http_sse_data(&b, "12345"), SHIMMY_OK);
    assert_int_equal(http_sse_data(&b, "too long for the rest"), ERR_TOO_LARGE);
    assert_string_equal(buf_str(&b), "data: 12345\n\n");
    buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_200),
        cmocka_unit_test(test_post_body),
        cmocka_unit_test(test_404),
        cmocka_unit_test(test_405_allow),
        cmocka_unit_test(test_413),
        cmocka_unit_test(test_413_endless_upload_cut),
        cmocka_unit_test(test_stream_whole),
        cmocka_unit_test(test_stream_client_abort),
        cmocka_unit_test(test_conn_gone),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_query_stripped),
        cmocka_unit_test(test_options_preflight),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_bind_errors),
        cmocka_unit_test(test_hosts),
        cmocka_unit_test(test_stop_unblocks),
        cmocka_unit_test(test_stream_framing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
