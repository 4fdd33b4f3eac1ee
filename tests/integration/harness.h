/* harness: the integration tests' side of the real build/shimmy. Starts the binary on a free
 * loopback port in its own temporary folder, waits for GET /health, captures its output, stops
 * it; speaks HTTP to it with libcurl (plain requests and an SSE reader that can hang up early);
 * loads the golden outputs; small jansson helpers.
 *
 * Every test gets its own h_test (cmocka state, made by h_setup and freed by h_teardown): its own
 * mkdtemp folder and its own servers, so nothing depends on test order. A test ends with
 * h_pass(t); when h_teardown finds a test that did not get there (a failed assertion jumped out),
 * it prints the servers' captured stderr.
 *
 * Environment: SHIMMY_BIN (default build/shimmy), SHIMMY_TEST_MODELS (default ../shared/models),
 * SHIMMY_SOURCE_DIR (default .), SHIMMY_TOOLS_DIR (default build/tools). Missing models fail the
 * test loudly; nothing is skipped.
 *
 * Thread-safety: the HTTP helpers may be called from several threads at once (curl_global_init
 * runs in h_setup); the server functions only from the test's own thread. */
#ifndef SHIMMY_IT_HARNESS_H
#define SHIMMY_IT_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#define H_MAX_SERVERS 4
#define H_MAX_ARGS 32

/* Model served by every test that names none, and the name it is served under. */
#define H_MODEL_FILE "stories260K.gguf"
#define H_MODEL_NAME "stories260k"

typedef struct h_server {
    pid_t pid;       /* 0 when not running */
    int port;        /* loopback port it listens on */
    char log[4200];  /* file with its stdout and stderr */
    int exit_status; /* waitpid status after h_server_stop; -1 before */
} h_server;

typedef struct h_test {
    char dir[4096]; /* the test's own mkdtemp folder */
    h_server servers[H_MAX_SERVERS];
    int n_servers;
    bool passed; /* set by h_pass */
} h_test;

/* cmocka group helpers: h_setup makes the h_test (in *state), h_teardown stops its servers,
 * prints their logs when the test failed, and removes the folder. In a sanitizer build
 * (make test-asan) the teardown also fails the test when a server's log holds an ASan, LSan or
 * UBSan report: the server's own (at its exit) or one of its engine processes' (their stderr is
 * copied to the server's). */
int h_setup(void **state);
int h_teardown(void **state);
/* Marks the test as having reached its end. */
void h_pass(h_test *t);

/* Monotonic milliseconds. */
int64_t h_now_ms(void);
/* Sleeps ms milliseconds (for polling loops that have a deadline). */
void h_sleep_ms(int ms);

/* Absolute path of a test model (SHIMMY_TEST_MODELS/file); fails the test when missing.
 * Returns a pointer to static storage valid until the next call from the same thread. */
const char *h_model_path(const char *file);
/* SHIMMY_BIN, SHIMMY_SOURCE_DIR, SHIMMY_TOOLS_DIR with their defaults. */
const char *h_bin(void);
const char *h_source_dir(void);
const char *h_tools_dir(void);

/* Threads the servers use unless the args name --threads: the test models are tiny, and ctest
 * runs test programs side by side on few cores, where ggml's spinning worker threads slow
 * generation down by orders of magnitude when cores are oversubscribed. */
#define H_THREADS "1"

/* Starts `shimmy serve --bind 127.0.0.1:PORT ARGS... [--threads H_THREADS]` (args:
 * NULL-terminated, e.g. "--model", path, "--parallel", "1", NULL) in t->dir with HOME there
 * too, and waits up to 30 s for
 * GET /health to answer 200. Tries up to 3 ports when the server exits during start-up. Fails
 * the test (with the server's log) when it never becomes healthy. Returns the server. */
h_server *h_start(h_test *t, const char *const *args);
/* One start attempt without retries, for servers that may refuse to start: returns the server
 * once healthy, or with pid 0 and exit_status set when it exited within the deadline. */
h_server *h_try_start(h_test *t, const char *const *args);
/* h_start with just --model H_MODEL_FILE plus the extra args (NULL-terminated; may be NULL). */
h_server *h_start_default(h_test *t, const char *const *extra);
/* SIGTERM, then SIGKILL after deadline_ms. Returns the waitpid status. */
int h_server_stop(h_server *s, int deadline_ms);
/* Prints the server's captured output to stderr. */
void h_server_print_log(const h_server *s);
/* Reads the captured output (owned, NUL-terminated; free it). */
char *h_server_read_log(const h_server *s);

/* Runs the shimmy binary with args (NULL-terminated, without argv[0]) in t->dir and waits up to
 * deadline_ms. Returns owned combined stdout+stderr in *out and the exit code (or -1 when it
 * was killed at the deadline or by a signal). */
int h_run(h_test *t, const char *const *args, int deadline_ms, char **out);
/* Same for any executable path. */
int h_run_exe(h_test *t, const char *exe, const char *const *args, int deadline_ms, char **out);

/* ---- HTTP ---- */

typedef struct h_resp {
    long status; /* HTTP status; 0 when the request failed */
    char *body;  /* owned, NUL-terminated ("" when none) */
    size_t len;
    char content_type[256]; /* Content-Type header, "" when absent */
    char retry_after[64];   /* Retry-After header, "" when absent */
    int curl_code;          /* CURLcode */
} h_resp;

/* Any request. body may be NULL (no body); len is its length. timeout_ms 0 = 120 s. */
void h_request(int port, const char *method, const char *path, const char *body, size_t len,
               int timeout_ms, h_resp *r);
void h_resp_free(h_resp *r);

/* The brief forms: return the curl code; *status and owned *resp_body filled. */
int http_post_json(int port, const char *path, const char *body, long *status, char **resp_body);
int http_get(int port, const char *path, long *status, char **resp_body);

typedef struct h_sse {
    long status;
    char content_type[256];
    char **events; /* payloads of the `data:` lines, in order, owned */
    size_t n_events;
    bool done;      /* "[DONE]" was received (it is not in events) */
    bool done_last; /* nothing came after [DONE] */
    bool aborted;   /* the reader hung up after max_events */
    char *raw;      /* everything received, owned */
    size_t raw_len;
    int curl_code;
} h_sse;

/* POSTs body and reads the SSE stream. max_events > 0: hang up after that many data events.
 * timeout_ms 0 = 120 s. */
void h_stream(int port, const char *path, const char *body, int max_events, int timeout_ms,
              h_sse *s);
void h_sse_free(h_sse *s);

/* ---- JSON ---- */

/* Parses text; fails the test (showing the text) when it is not JSON. Returns owned. */
json_t *h_json(const char *text);
/* Serializes j compactly. Returns owned. */
char *h_dump(const json_t *j);
/* Object member lookups that fail the test when missing or of the wrong type. */
const char *h_str(const json_t *obj, const char *key);
long long h_int(const json_t *obj, const char *key);
json_t *h_obj(const json_t *obj, const char *key);
json_t *h_arr(const json_t *obj, const char *key);
/* Path lookup like "choices.0.message.content" (numbers index arrays); NULL when absent. */
json_t *h_get(const json_t *j, const char *path);

/* POSTs the JSON j (borrowed) to path; fails the test unless the status is want_status; returns
 * the parsed owned response. */
json_t *h_post_expect(int port, const char *path, const json_t *j, long want_status);

/* Asserts an OpenAI error body with status want_status and Content-Type application/json:
 * error.message (non-empty string), error.type (string), error.param and error.code present.
 * want_param: NULL = don't check, else the expected param. Copies the message into msg. */
void h_assert_error(const h_resp *r, long want_status, const char *want_param, char *msg,
                    size_t msglen);

/* Request bodies (owned): {"model": H_MODEL_NAME, "prompt"|"messages": [user], "max_tokens",
 * "temperature": 0}. Add members with json_object_set_new. */
json_t *h_completion_req(const char *prompt, int max_tokens);
json_t *h_chat_req(const char *user, int max_tokens);

/* GET /health parsed (owned); fails unless 200. */
json_t *h_health(int port);

/* ---- golden outputs ---- */

typedef struct h_golden {
    char prompt[512];
    int max_tokens;
    char text[4096];
} h_golden;

/* Loads tests/integration/golden/stories260K.jsonl. Returns the number of cases (fails the test
 * when the file is missing or empty). */
int h_golden_load(h_golden *out, int max);

/* Concatenates the streamed text deltas of a completions or chat stream (choices[0].text or
 * choices[0].delta.content) into an owned string. Fails on an event that is not JSON. */
char *h_sse_text(const h_sse *s);

#endif
