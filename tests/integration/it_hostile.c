/* it_hostile: the table of hostile requests (tests/integration/hostile.jsonl) against the real
 * binary over raw sockets: malformed JSON of many kinds, wrong types and values for the fields of
 * every endpoint of both APIs (OpenAI and the llama-server-style routes, Ollama), unusable JSON
 * schemas, oversized values, deep nesting, unknown models, routes and methods, header abuse and
 * bad framing, Host and Origin checks, API keys.
 *
 * One case per line of the table:
 *   area, name           for the report
 *   server               "key": the server started with --api-key sk-test-1 (default: none)
 *   raw                  the whole request, sent as it is; or
 *   method, path, headers, body
 *                        sent as "METHOD PATH HTTP/1.1", Host: localhost, the headers, and for a
 *                        body Content-Type: application/json and its Content-Length, then
 *                        Connection: close
 *   pad, pad_n           "@@" in raw, path or body stands for pad repeated pad_n times
 *   status               the exact status; 0: the connection is closed without an answer
 *   shape                "openai": {"error":{"message","type","param","code"}};
 *                        "ollama": {"error":"..."}; "ok": a JSON answer without "error";
 *                        "library": libmicrohttpd's own answer (docs/SECURITY.md), status only
 *   msg                  a part of the error message
 *   param                OpenAI's error.param (null or the name)
 *   cors                 the Access-Control-Allow-Origin the answer carries (an allowed page's
 *                        Origin); without it the answer must carry none
 *   bug                  a known bug (what goes wrong): skipped unless SHIMMY_HOSTILE_BUGS=1
 * Strings stand for bytes: every character of raw, path, headers and body is one byte (U+0000 to
 * U+00FF), so the table can hold invalid UTF-8, NULs and control bytes.
 *
 * Besides the status and body every answer is checked for: one status line, JSON's content type,
 * the CORS header exactly when the table names one, WWW-Authenticate on a 401, Allow on a 405,
 * Connection: close and a closed connection after a framing error (400 bad_request, 501). All
 * failures are listed together. Afterwards both servers must still answer /health. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define HOSTILE_KEY "sk-test-1"
/* Longest wait for an answer to one case; every case is answered in milliseconds. */
#define CASE_DEADLINE_MS 5000
/* Largest request the table builds (the over-the-limit body is 8 MiB and a bit). */
#define REQ_MAX (10u * 1024u * 1024u)

/* ---- bytes ---- */

typedef struct bytes {
    char *data; /* owned */
    size_t len, cap;
} bytes;

static void bytes_put(bytes *b, const char *p, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->data = realloc(b->data, cap);
        assert_non_null(b->data);
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void bytes_puts(bytes *b, const char *s) {
    bytes_put(b, s, strlen(s));
}

/* The table's string (UTF-8 from jansson, each code point one byte) as bytes, with "@@" replaced
 * by pad_n copies of pad. */
static void bytes_put_table(bytes *b, const json_t *s, const bytes *pad, long long pad_n) {
    const unsigned char *p = (const unsigned char *)json_string_value(s);
    size_t n = json_string_length(s);
    for (size_t i = 0; i < n;) {
        if (pad_n > 0 && i + 1 < n && p[i] == '@' && p[i + 1] == '@') {
            for (long long k = 0; k < pad_n; k++)
                bytes_put(b, pad->data, pad->len);
            i += 2;
            continue;
        }
        unsigned cp = p[i];
        if (cp >= 0x80) { /* U+0080..U+00FF: two bytes of UTF-8 */
            assert_true(i + 1 < n && (cp & 0xe0) == 0xc0 && cp <= 0xc3);
            cp = ((cp & 0x1f) << 6) | (p[i + 1] & 0x3f);
            i += 2;
        } else {
            i++;
        }
        char c = (char)cp;
        bytes_put(b, &c, 1);
    }
}

/* ---- one case ---- */

typedef struct hcase {
    const json_t *j; /* the table's line, borrowed */
    const char *area, *name, *shape, *msg, *bug;
    int status;
    bool key_server;
} hcase;

static const char *opt_str(const json_t *j, const char *key) {
    return json_string_value(json_object_get(j, key));
}

static void case_read(const json_t *j, hcase *c) {
    memset(c, 0, sizeof *c);
    c->j = j;
    c->area = h_str(j, "area");
    c->name = h_str(j, "name");
    c->shape = h_str(j, "shape");
    c->status = (int)h_int(j, "status");
    c->msg = opt_str(j, "msg");
    c->bug = opt_str(j, "bug");
    const char *srv = opt_str(j, "server");
    c->key_server = srv != NULL && strcmp(srv, "key") == 0;
}

/* The request bytes of a case. */
static void case_request(const hcase *c, bytes *req) {
    bytes pad = {0};
    long long pad_n = 0;
    if (json_object_get(c->j, "pad") != NULL) {
        bytes_put_table(&pad, json_object_get(c->j, "pad"), NULL, 0);
        pad_n = h_int(c->j, "pad_n");
    }
    const json_t *raw = json_object_get(c->j, "raw");
    if (raw != NULL) {
        bytes_put_table(req, raw, &pad, pad_n);
        free(pad.data);
        return;
    }
    bytes body = {0};
    const json_t *jb = json_object_get(c->j, "body");
    if (jb != NULL)
        bytes_put_table(&body, jb, &pad, pad_n);
    bytes_puts(req, h_str(c->j, "method"));
    bytes_puts(req, " ");
    bytes_put_table(req, json_object_get(c->j, "path"), &pad, pad_n);
    bytes_puts(req, " HTTP/1.1\r\nHost: localhost\r\n");
    if (json_object_get(c->j, "headers") != NULL)
        bytes_put_table(req, json_object_get(c->j, "headers"), NULL, 0);
    if (jb != NULL) {
        char cl[96];
        snprintf(cl, sizeof cl, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                 body.len);
        bytes_puts(req, cl);
    }
    bytes_puts(req, "Connection: close\r\n\r\n");
    if (body.len > 0)
        bytes_put(req, body.data, body.len);
    free(body.data);
    free(pad.data);
    assert_true(req->len <= REQ_MAX);
}

/* ---- raw HTTP ---- */

typedef struct answer {
    int status;   /* 0 when nothing came back */
    bytes all;    /* everything received */
    size_t head;  /* length of the head (up to the blank line), all.len when none */
    bool closed;  /* the server closed the connection */
    int n_status; /* status lines at a line start */
} answer;

static int connect_port(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        fail_msg("connect to %d: %s", port, strerror(errno));
    return fd;
}

/* True once the head and Content-Length bytes of body have arrived. */
static bool answer_complete(answer *a) {
    const char *sep = strstr(a->all.data, "\r\n\r\n");
    if (sep == NULL)
        return false;
    a->head = (size_t)(sep - a->all.data) + 4;
    const char *cl = strcasestr(a->all.data, "\r\nContent-Length:");
    if (cl == NULL || cl > sep)
        return false; /* read to the close */
    char *end = NULL;
    unsigned long long n = strtoull(cl + 17, &end, 10);
    return end != cl + 17 && a->all.len >= a->head + n;
}

/* Sends the request (what the server takes of it) and reads the answer: to the close, or the
 * head and its Content-Length, or the deadline. */
static void exchange(int port, const bytes *req, answer *a) {
    memset(a, 0, sizeof *a);
    bytes_put(&a->all, "", 0);
    int fd = connect_port(port);
    int64_t deadline = h_now_ms() + CASE_DEADLINE_MS;
    size_t off = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN | (off < req->len ? POLLOUT : 0)};
        int left = (int)(deadline - h_now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        if (p.revents & POLLIN) {
            char chunk[16384];
            ssize_t got = recv(fd, chunk, sizeof chunk, 0);
            if (got <= 0) {
                a->closed = true;
                break;
            }
            bytes_put(&a->all, chunk, (size_t)got);
            if (answer_complete(a))
                break;
        } else if (p.revents & POLLOUT) {
            ssize_t sent = send(fd, req->data + off, req->len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                off = req->len; /* the server stopped reading: take its answer */
            else if (sent > 0)
                off += (size_t)sent;
        } else if (p.revents & (POLLHUP | POLLERR)) {
            a->closed = true;
            break;
        }
    }
    if (!a->closed) { /* did it close right after answering? */
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char byte;
        a->closed = poll(&p, 1, 200) > 0 && recv(fd, &byte, 1, 0) <= 0;
    }
    close(fd);
    if (a->head == 0)
        a->head = a->all.len;
    for (const char *p = a->all.data; (p = strstr(p, "HTTP/1.1 ")) != NULL; p++)
        a->n_status += p == a->all.data || p[-1] == '\n';
    sscanf(a->all.data, "HTTP/1.1 %d", &a->status);
}

/* The head holds this header line (case-insensitive, "Name: value" prefix). */
static bool head_has(const answer *a, const char *line) {
    char *head = strndup(a->all.data, a->head);
    assert_non_null(head);
    bool has = strcasestr(head, line) != NULL;
    free(head);
    return has;
}

/* ---- checks ---- */

typedef struct report {
    int failed;
    bytes text;
} report;

static void failf(report *r, const hcase *c, const char *fmt, ...) {
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    char head[2300];
    snprintf(head, sizeof head, "  [%s] %s: %s\n", c->area, c->name, line);
    bytes_puts(&r->text, head);
    r->failed++;
}

/* The error body's message and shape; false (with a failure) when the shape is wrong. */
static bool check_error_body(const hcase *c, json_t *body, report *r) {
    json_t *e = json_object_get(body, "error");
    const char *msg = NULL;
    if (strcmp(c->shape, "ollama") == 0) {
        if (!json_is_string(e) || json_object_size(body) != 1) {
            failf(r, c, "not Ollama's {\"error\": \"...\"}");
            return false;
        }
        msg = json_string_value(e);
    } else {
        const json_t *param = json_object_get(e, "param");
        if (!json_is_object(e) || !json_is_string(json_object_get(e, "message")) ||
            !json_is_string(json_object_get(e, "type")) || param == NULL ||
            !(json_is_null(param) || json_is_string(param)) || json_object_get(e, "code") == NULL) {
            failf(r, c, "not OpenAI's {\"error\": {message, type, param, code}}");
            return false;
        }
        msg = json_string_value(json_object_get(e, "message"));
        const json_t *want = json_object_get(c->j, "param");
        if (want != NULL && !json_equal(param, (json_t *)want)) {
            char *got = json_dumps(param, JSON_ENCODE_ANY);
            char *exp = json_dumps(want, JSON_ENCODE_ANY);
            failf(r, c, "param %s, want %s", got, exp);
            free(got);
            free(exp);
        }
    }
    if (c->msg != NULL && strstr(msg, c->msg) == NULL)
        failf(r, c, "message '%s' lacks '%s'", msg, c->msg);
    return true;
}

static void check_headers(const hcase *c, const answer *a, report *r) {
    if (a->n_status != 1)
        failf(r, c, "%d status lines in one answer", a->n_status);
    if (!head_has(a, "\r\nContent-Type: application/json"))
        failf(r, c, "no Content-Type: application/json");
    const char *cors = opt_str(c->j, "cors");
    char want[512];
    snprintf(want, sizeof want, "\r\nAccess-Control-Allow-Origin: %s\r\n", cors ? cors : "");
    if (cors == NULL && head_has(a, "\r\nAccess-Control-Allow-Origin"))
        failf(r, c, "a CORS header for a request without an allowed Origin");
    else if (cors != NULL && !head_has(a, want))
        failf(r, c, "no Access-Control-Allow-Origin: %s", cors);
    if (c->status == 401 && !head_has(a, "\r\nWWW-Authenticate: Bearer"))
        failf(r, c, "401 without WWW-Authenticate: Bearer");
    if (c->status == 405 && !head_has(a, "\r\nAllow: "))
        failf(r, c, "405 without Allow");
}

static void check_case(const hcase *c, const answer *a, report *r) {
    if (a->status != c->status) {
        failf(r, c, "status %d, want %d: %.300s", a->status, c->status,
              a->all.data + (a->head < a->all.len ? a->head : 0));
        return;
    }
    if (c->status == 0) {
        if (!a->closed)
            failf(r, c, "not closed");
        return;
    }
    if (strcmp(c->shape, "library") == 0)
        return; /* libmicrohttpd's page; 0.9.75 may write its head twice (docs/SECURITY.md) */
    check_headers(c, a, r);
    json_error_t je;
    json_t *body = json_loadb(a->all.data + a->head, a->all.len - a->head, 0, &je);
    if (!json_is_object(body)) {
        failf(r, c, "body is not a JSON object: %.200s", a->all.data + a->head);
        json_decref(body);
        return;
    }
    if (strcmp(c->shape, "ok") == 0) {
        if (json_object_get(body, "error") != NULL)
            failf(r, c, "an error in a 200 answer");
    } else if (check_error_body(c, body, r)) {
        const char *code =
            json_string_value(json_object_get(json_object_get(body, "error"), "code"));
        bool framing = c->status == 501 || (code != NULL && strcmp(code, "bad_request") == 0);
        if (framing && (!a->closed || !head_has(a, "\r\nConnection: close")))
            failf(r, c, "connection not closed after a framing error");
    }
    json_decref(body);
}

/* ---- the table ---- */

/* Loads the table: an owned array of its lines. */
static json_t *table_load(void) {
    char path[4200];
    snprintf(path, sizeof path, "%s/tests/integration/hostile.jsonl", h_source_dir());
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    json_t *all = json_array();
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int no = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        no++;
        if (n <= 1 || line[0] == '#')
            continue;
        json_error_t je;
        json_t *j = json_loadb(line, (size_t)n, JSON_ALLOW_NUL, &je);
        if (!json_is_object(j))
            fail_msg("%s:%d: %s", path, no, je.text);
        json_array_append_new(all, j);
    }
    free(line);
    fclose(f);
    return all;
}

typedef struct area_count {
    const char *area;
    int n;
} area_count;

static void count_area(area_count *counts, int *n_areas, const char *area) {
    for (int i = 0; i < *n_areas; i++)
        if (strcmp(counts[i].area, area) == 0) {
            counts[i].n++;
            return;
        }
    if (*n_areas < 32)
        counts[(*n_areas)++] = (area_count){area, 1};
}

static bool server_alive(h_server *s) {
    return s->pid > 0 && waitpid(s->pid, NULL, WNOHANG) == 0;
}

/* Stops the server and fails unless it exited 0 without a sanitizer report in its output (the
 * ASan build, make test-asan: a leak or an error after the last request shows only there). */
static void stop_clean(h_server *s) {
    int st = h_server_stop(s, 10000);
    char *log = h_server_read_log(s);
    const char *const marks[] = {"AddressSanitizer", "LeakSanitizer", "runtime error:", NULL};
    for (int i = 0; marks[i] != NULL; i++)
        if (strstr(log, marks[i]) != NULL)
            fail_msg("server on port %d: %s in its output:\n%s", s->port, marks[i], log);
    free(log);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("server on port %d: exit status %d after SIGTERM", s->port, st);
}

static void test_hostile_table(void **state) {
    h_test *t = *state;
    h_server *open = h_start_default(t, NULL);
    h_server *keyed = h_start_default(t, (const char *const[]){"--api-key", HOSTILE_KEY, NULL});
    bool run_bugs = getenv("SHIMMY_HOSTILE_BUGS") != NULL;
    json_t *table = table_load();
    report r = {0};
    bytes_put(&r.text, "", 0);
    area_count counts[32];
    int n_areas = 0, run = 0, skipped = 0;
    for (size_t i = 0; i < json_array_size(table); i++) {
        hcase c;
        case_read(json_array_get(table, i), &c);
        count_area(counts, &n_areas, c.area);
        if (c.bug != NULL && !run_bugs) {
            printf("known bug, skipped: [%s] %s: %s\n", c.area, c.name, c.bug);
            skipped++;
            continue;
        }
        h_server *s = c.key_server ? keyed : open;
        if (!server_alive(s))
            fail_msg("the server died before [%s] %s:\n%s", c.area, c.name, r.text.data);
        bytes req = {0};
        case_request(&c, &req);
        answer a;
        exchange(s->port, &req, &a);
        check_case(&c, &a, &r);
        free(req.data);
        free(a.all.data);
        run++;
    }
    printf("hostile cases: %zu (%d run, %d known bugs skipped)\n", json_array_size(table), run,
           skipped);
    for (int i = 0; i < n_areas; i++)
        printf("  %-20s %d\n", counts[i].area, counts[i].n);
    json_decref(table);
    if (r.failed > 0)
        fail_msg("%d checks failed:\n%s", r.failed, r.text.data);
    free(r.text.data);
    /* Both servers lived through it, still answer, and stop cleanly. */
    json_decref(h_health(open->port));
    json_decref(h_health(keyed->port));
    stop_clean(open);
    stop_clean(keyed);
    h_pass(t);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hostile_table, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
