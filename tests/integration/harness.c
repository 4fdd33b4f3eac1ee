/* harness: see harness.h. */
#include "harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_DEADLINE_MS 30000
#define STOP_DEADLINE_MS 10000
#define START_TRIES 3
#define DEFAULT_TIMEOUT_MS 120000

/* ---- environment ---- */

static const char *env_or(const char *name, const char *def) {
    const char *v = getenv(name);
    return (v != NULL && v[0] != '\0') ? v : def;
}

const char *h_bin(void) {
    return env_or("SHIMMY_BIN", "build/shimmy");
}
const char *h_source_dir(void) {
    return env_or("SHIMMY_SOURCE_DIR", ".");
}
const char *h_tools_dir(void) {
    return env_or("SHIMMY_TOOLS_DIR", "build/tools");
}

const char *h_model_path(const char *file) {
    static _Thread_local char path[4096];
    const char *dir = env_or("SHIMMY_TEST_MODELS", "../shared/models");
    char rel[4096];
    snprintf(rel, sizeof rel, "%s/%s", dir, file);
    if (realpath(rel, path) == NULL)
        fail_msg("test model missing: %s (set SHIMMY_TEST_MODELS to the folder of test models): %s",
                 rel, strerror(errno));
    return path;
}

/* ---- time ---- */

int64_t h_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void h_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- fixture ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) {
    curl_global_init(CURL_GLOBAL_ALL);
}

int h_setup(void **state) {
    pthread_once(&curl_once, curl_init_once);
    signal(SIGPIPE, SIG_IGN);
    h_test *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -1;
    const char *tmp = env_or("TMPDIR", "/tmp");
    snprintf(t->dir, sizeof t->dir, "%s/shimmy-it-XXXXXX", tmp);
    if (mkdtemp(t->dir) == NULL) {
        fprintf(stderr, "mkdtemp %s: %s\n", t->dir, strerror(errno));
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* The first line of a sanitizer report in the server's log, or NULL. Owned by text. */
static const char *sanitizer_report(const char *text) {
    static const char *const marks[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                        "runtime error: ", NULL};
    for (int i = 0; text != NULL && marks[i] != NULL; i++) {
        const char *p = strstr(text, marks[i]);
        if (p != NULL) {
            while (p > text && p[-1] != '\n')
                p--;
            return p;
        }
    }
    return NULL;
}

int h_teardown(void **state) {
    h_test *t = *state;
    int rc = 0;
    if (t == NULL)
        return 0;
    for (int i = 0; i < t->n_servers; i++) {
        h_server *s = &t->servers[i];
        if (s->pid > 0)
            h_server_stop(s, STOP_DEADLINE_MS);
        char *text = h_server_read_log(s);
        const char *rep = sanitizer_report(text);
        bool reported = rep != NULL;
        if (reported) {
            fprintf(stderr, "sanitizer report in the log of shimmy (port %d):\n%.4000s\n", s->port,
                    rep);
            rc = -1;
        }
        free(text);
        if (!t->passed && !reported)
            h_server_print_log(s);
    }
    if (t->passed || getenv("SHIMMY_IT_KEEP") == NULL)
        nftw(t->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    else
        fprintf(stderr, "kept %s\n", t->dir);
    free(t);
    *state = NULL;
    return rc;
}

void h_pass(h_test *t) {
    t->passed = true;
}

/* ---- processes ---- */

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Forks exe with argv (argv[0] included) in dir, output to log. Returns the pid or -1. */
static pid_t spawn(const char *dir, const char *log, const char *const *argv) {
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int devnull = open("/dev/null", O_RDONLY);
    if (fd < 0 || devnull < 0 || chdir(dir) != 0)
        _exit(127);
    dup2(devnull, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    setenv("HOME", dir, 1);
    unsetenv("SHIMMY_MODEL_PATHS");
    signal(SIGPIPE, SIG_DFL);
    execv(argv[0], (char *const *)argv);
    dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* Waits up to deadline_ms for pid; SIGKILLs it past the deadline. Returns the waitpid status,
 * and *killed tells whether the deadline hit. */
static int wait_deadline(pid_t pid, int deadline_ms, bool *killed) {
    int64_t end = h_now_ms() + deadline_ms;
    int st = 0;
    *killed = false;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0 && errno != EINTR)
            return -1;
        if (h_now_ms() >= end) {
            kill(pid, SIGKILL);
            *killed = true;
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
            }
            return st;
        }
        h_sleep_ms(10);
    }
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return strdup("");
    size_t cap = 4096, len = 0;
    char *b = malloc(cap);
    size_t n;
    while (b != NULL && (n = fread(b + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *nb = realloc(b, cap * 2);
            if (nb == NULL) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (b != NULL)
        b[len] = '\0';
    return b;
}

char *h_server_read_log(const h_server *s) {
    return read_file(s->log);
}

void h_server_print_log(const h_server *s) {
    char *text = h_server_read_log(s);
    fprintf(stderr, "---- shimmy (port %d) output, %s ----\n%s---- end of shimmy output ----\n",
            s->port, s->log, text ? text : "");
    free(text);
}

static bool healthy(int port) {
    h_resp r;
    h_request(port, "GET", "/health", NULL, 0, 1000, &r);
    bool ok = r.status == 200;
    h_resp_free(&r);
    return ok;
}

/* True when process pid holds the socket listening on loopback port (Linux /proc): the answer
 * to GET /health may otherwise come from another test's server that won the same port. Also
 * true when /proc cannot tell. */
static bool owns_listener(pid_t pid, int port) {
    FILE *f = fopen("/proc/net/tcp", "r");
    if (f == NULL)
        return true;
    char line[512], want[16];
    unsigned long inode = 0;
    snprintf(want, sizeof want, ":%04X", (unsigned)port);
    while (fgets(line, sizeof line, f) != NULL) {
        char local[64], remote[64], st[8];
        unsigned long ino;
        if (sscanf(line, " %*s %63s %63s %7s %*s %*s %*s %*s %*s %lu", local, remote, st, &ino) ==
                4 &&
            strcmp(st, "0A") == 0 && strstr(local, want) != NULL &&
            strlen(strstr(local, want)) == 5) {
            inode = ino;
            break;
        }
    }
    fclose(f);
    if (inode == 0)
        return false;
    char dir[64], target[64], path[128], sock[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    snprintf(sock, sizeof sock, "socket:[%lu]", inode);
    DIR *d = opendir(dir);
    if (d == NULL)
        return true;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        snprintf(path, sizeof path, "%s/%.32s", dir, e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n > 0) {
            target[n] = '\0';
            found = strcmp(target, sock) == 0;
        }
    }
    closedir(d);
    return found;
}

/* One start attempt. Returns 1 when healthy, 0 when the process exited (retry), -1 when it
 * hung past the deadline. */
static int start_once(h_test *t, h_server *s, int attempt, const char *const *args) {
    const char *argv[H_MAX_ARGS + 8];
    char bind[64];
    int n = 0;
    s->port = free_port();
    assert_true(s->port > 0);
    snprintf(bind, sizeof bind, "127.0.0.1:%d", s->port);
    snprintf(s->log, sizeof s->log, "%s/server%d-try%d.log", t->dir, t->n_servers, attempt);
    argv[n++] = h_bin();
    argv[n++] = "serve";
    argv[n++] = "--bind";
    argv[n++] = bind;
    bool threads = false;
    for (int i = 0; args != NULL && args[i] != NULL; i++) {
        assert_true(n < H_MAX_ARGS + 6);
        threads |= strcmp(args[i], "--threads") == 0;
        argv[n++] = args[i];
    }
    if (!threads) {
        argv[n++] = "--threads";
        argv[n++] = H_THREADS;
    }
    argv[n] = NULL;
    s->exit_status = -1;
    s->pid = spawn(t->dir, s->log, argv);
    assert_true(s->pid > 0);
    int64_t end = h_now_ms() + START_DEADLINE_MS;
    while (h_now_ms() < end) {
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            s->exit_status = st;
            return 0;
        }
        if (healthy(s->port)) {
            if (owns_listener(s->pid, s->port))
                return 1;
            /* Someone else's server answered: ours will fail to bind and exit. */
        }
        h_sleep_ms(50);
    }
    return -1;
}

h_server *h_start(h_test *t, const char *const *args) {
    assert_true(t->n_servers < H_MAX_SERVERS);
    h_server *s = &t->servers[t->n_servers];
    struct stat sb;
    if (stat(h_bin(), &sb) != 0)
        fail_msg("shimmy binary missing: %s (set SHIMMY_BIN)", h_bin());
    for (int attempt = 0; attempt < START_TRIES; attempt++) {
        int r = start_once(t, s, attempt, args);
        if (r == 1) {
            t->n_servers++;
            return s;
        }
        if (r < 0) {
            t->n_servers++; /* teardown stops it and prints the log */
            fail_msg("shimmy did not answer GET /health on port %d within %d ms", s->port,
                     START_DEADLINE_MS);
        }
        fprintf(stderr, "shimmy exited during start-up (attempt %d, port %d):\n", attempt + 1,
                s->port);
        h_server_print_log(s);
    }
    fail_msg("shimmy failed to start %d times", START_TRIES);
    return NULL;
}

h_server *h_try_start(h_test *t, const char *const *args) {
    assert_true(t->n_servers < H_MAX_SERVERS);
    h_server *s = &t->servers[t->n_servers++];
    int r = start_once(t, s, 0, args);
    if (r < 0)
        fail_msg("shimmy neither answered GET /health nor exited within %d ms", START_DEADLINE_MS);
    return s;
}

h_server *h_start_default(h_test *t, const char *const *extra) {
    const char *args[H_MAX_ARGS];
    int n = 0;
    args[n++] = "--model";
    args[n++] = h_model_path(H_MODEL_FILE);
    for (int i = 0; extra != NULL && extra[i] != NULL; i++) {
        assert_true(n < H_MAX_ARGS - 1);
        args[n++] = extra[i];
    }
    args[n] = NULL;
    return h_start(t, args);
}

int h_server_stop(h_server *s, int deadline_ms) {
    if (s->pid <= 0)
        return s->exit_status;
    kill(s->pid, SIGTERM);
    bool killed;
    s->exit_status = wait_deadline(s->pid, deadline_ms, &killed);
    if (killed)
        fprintf(stderr, "shimmy (port %d) ignored SIGTERM for %d ms: killed\n", s->port,
                deadline_ms);
    s->pid = 0;
    return s->exit_status;
}

int h_run_exe(h_test *t, const char *exe, const char *const *args, int deadline_ms, char **out) {
    static int seq;
    const char *argv[H_MAX_ARGS + 2];
    int n = 0;
    argv[n++] = exe;
    for (int i = 0; args != NULL && args[i] != NULL; i++) {
        assert_true(n < H_MAX_ARGS);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    char log[4200];
    snprintf(log, sizeof log, "%s/run%d.log", t->dir, seq++);
    pid_t pid = spawn(t->dir, log, argv);
    assert_true(pid > 0);
    bool killed;
    int st = wait_deadline(pid, deadline_ms, &killed);
    *out = read_file(log);
    if (killed || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

int h_run(h_test *t, const char *const *args, int deadline_ms, char **out) {
    return h_run_exe(t, h_bin(), args, deadline_ms, out);
}

/* ---- HTTP ---- */

typedef struct growbuf {
    char *p;
    size_t len, cap;
} growbuf;

static int gb_append(growbuf *g, const char *d, size_t n) {
    if (g->len + n + 1 > g->cap) {
        size_t cap = g->cap ? g->cap : 4096;
        while (cap < g->len + n + 1)
            cap *= 2;
        char *p = realloc(g->p, cap);
        if (p == NULL)
            return -1;
        g->p = p;
        g->cap = cap;
    }
    memcpy(g->p + g->len, d, n);
    g->len += n;
    g->p[g->len] = '\0';
    return 0;
}

typedef struct hdrs {
    char content_type[256];
    char retry_after[64];
} hdrs;

static void header_value(const char *line, size_t n, const char *name, char *out, size_t outlen) {
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    const char *v = line + nl + 1;
    const char *e = line + n;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
        e--;
    size_t len = (size_t)(e - v);
    if (len >= outlen)
        len = outlen - 1;
    memcpy(out, v, len);
    out[len] = '\0';
}

static size_t on_header(char *d, size_t size, size_t nmemb, void *ud) {
    hdrs *h = ud;
    size_t n = size * nmemb;
    header_value(d, n, "Content-Type", h->content_type, sizeof h->content_type);
    header_value(d, n, "Retry-After", h->retry_after, sizeof h->retry_after);
    return n;
}

static size_t on_body(char *d, size_t size, size_t nmemb, void *ud) {
    size_t n = size * nmemb;
    return gb_append(ud, d, n) == 0 ? n : 0;
}

/* Sets up a handle for method/path/body. Returns it with *hl (free with curl_slist_free_all). */
static CURL *make_handle(int port, const char *method, const char *path, const char *body,
                         size_t len, int timeout_ms, struct curl_slist **hl) {
    char url[2048];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    if (c == NULL)
        return NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                     (long)(timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    *hl = NULL;
    if (body != NULL) {
        *hl = curl_slist_append(*hl, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    if (strcmp(method, "GET") == 0 && body == NULL)
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    else if (strcmp(method, "POST") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    else if (body == NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L), curl_easy_setopt(c, CURLOPT_POST, 1L);
    if (*hl != NULL)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hl);
    return c;
}

void h_request(int port, const char *method, const char *path, const char *body, size_t len,
               int timeout_ms, h_resp *r) {
    memset(r, 0, sizeof *r);
    growbuf g = {0};
    hdrs h = {{0}, {0}};
    struct curl_slist *hl;
    CURL *c = make_handle(port, method, path, body, len, timeout_ms, &hl);
    if (c == NULL) {
        r->curl_code = CURLE_FAILED_INIT;
        r->body = strdup("");
        return;
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &g);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    r->curl_code = (int)curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hl);
    r->body = g.p != NULL ? g.p : strdup("");
    r->len = g.len;
    memcpy(r->content_type, h.content_type, sizeof r->content_type);
    memcpy(r->retry_after, h.retry_after, sizeof r->retry_after);
}

void h_resp_free(h_resp *r) {
    free(r->body);
    r->body = NULL;
}

int http_post_json(int port, const char *path, const char *body, long *status, char **resp_body) {
    h_resp r;
    h_request(port, "POST", path, body, strlen(body), 0, &r);
    *status = r.status;
    *resp_body = r.body;
    return r.curl_code;
}

int http_get(int port, const char *path, long *status, char **resp_body) {
    h_resp r;
    h_request(port, "GET", path, NULL, 0, 0, &r);
    *status = r.status;
    *resp_body = r.body;
    return r.curl_code;
}

/* SSE reader state. */
typedef struct sse_ctx {
    h_sse *s;
    growbuf pending; /* bytes of an unfinished event */
    growbuf raw;
    int max_events;
    size_t cap_events;
} sse_ctx;

static void sse_push(sse_ctx *x, const char *payload, size_t n) {
    h_sse *s = x->s;
    if (n == 6 && memcmp(payload, "[DONE]", 6) == 0) {
        s->done = true;
        s->done_last = true;
        return;
    }
    if (s->done)
        s->done_last = false;
    if (s->n_events == x->cap_events) {
        size_t cap = x->cap_events ? x->cap_events * 2 : 64;
        char **ev = realloc(s->events, cap * sizeof *ev);
        if (ev == NULL)
            return;
        s->events = ev;
        x->cap_events = cap;
    }
    char *p = malloc(n + 1);
    if (p == NULL)
        return;
    memcpy(p, payload, n);
    p[n] = '\0';
    s->events[s->n_events++] = p;
}

/* Handles one complete event (text without the blank line). */
static void sse_event(sse_ctx *x, const char *ev, size_t n) {
    const char *p = ev, *end = ev + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *e = le;
        if (e > p && e[-1] == '\r')
            e--;
        if ((size_t)(e - p) >= 5 && memcmp(p, "data:", 5) == 0) {
            const char *v = p + 5;
            if (v < e && *v == ' ')
                v++;
            sse_push(x, v, (size_t)(e - v));
        }
        p = nl ? nl + 1 : end;
    }
}

static size_t on_sse(char *d, size_t size, size_t nmemb, void *ud) {
    sse_ctx *x = ud;
    size_t n = size * nmemb;
    if (gb_append(&x->raw, d, n) != 0 || gb_append(&x->pending, d, n) != 0)
        return 0;
    for (;;) {
        char *sep = x->pending.p ? strstr(x->pending.p, "\n\n") : NULL;
        size_t seplen = 2;
        char *sep2 = x->pending.p ? strstr(x->pending.p, "\r\n\r\n") : NULL;
        if (sep2 != NULL && (sep == NULL || sep2 < sep)) {
            sep = sep2;
            seplen = 4;
        }
        if (sep == NULL)
            break;
        size_t evlen = (size_t)(sep - x->pending.p);
        sse_event(x, x->pending.p, evlen);
        size_t rest = x->pending.len - evlen - seplen;
        memmove(x->pending.p, sep + seplen, rest + 1);
        x->pending.len = rest;
        if (x->max_events > 0 && x->s->n_events >= (size_t)x->max_events) {
            x->s->aborted = true;
            return 0; /* hang up */
        }
    }
    return n;
}

void h_stream(int port, const char *path, const char *body, int max_events, int timeout_ms,
              h_sse *s) {
    memset(s, 0, sizeof *s);
    sse_ctx x = {.s = s, .max_events = max_events};
    hdrs h = {{0}, {0}};
    struct curl_slist *hl;
    CURL *c = make_handle(port, "POST", path, body, strlen(body), timeout_ms, &hl);
    if (c == NULL) {
        s->curl_code = CURLE_FAILED_INIT;
        return;
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_sse);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    s->curl_code = (int)curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &s->status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hl);
    /* A final event without the blank line still counts. */
    if (!s->aborted && x.pending.len > 0)
        sse_event(&x, x.pending.p, x.pending.len);
    free(x.pending.p);
    s->raw = x.raw.p != NULL ? x.raw.p : strdup("");
    s->raw_len = x.raw.len;
    memcpy(s->content_type, h.content_type, sizeof s->content_type);
}

void h_sse_free(h_sse *s) {
    for (size_t i = 0; i < s->n_events; i++)
        free(s->events[i]);
    free(s->events);
    free(s->raw);
    memset(s, 0, sizeof *s);
}

/* ---- JSON ---- */

json_t *h_json(const char *text) {
    json_error_t e;
    json_t *j = json_loads(text, JSON_ALLOW_NUL, &e);
    if (j == NULL)
        fail_msg("not JSON (%s at %d): %s", e.text, e.position, text);
    return j;
}

char *h_dump(const json_t *j) {
    return json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
}

static json_t *member(const json_t *obj, const char *key) {
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (v == NULL) {
        char *d = h_dump(obj);
        fail_msg("missing \"%s\" in %s", key, d ? d : "(null)");
    }
    return v;
}

const char *h_str(const json_t *obj, const char *key) {
    json_t *v = member(obj, key);
    if (!json_is_string(v)) {
        char *d = h_dump(obj);
        fail_msg("\"%s\" is not a string in %s", key, d);
    }
    return json_string_value(v);
}

long long h_int(const json_t *obj, const char *key) {
    json_t *v = member(obj, key);
    if (!json_is_integer(v)) {
        char *d = h_dump(obj);
        fail_msg("\"%s\" is not an integer in %s", key, d);
    }
    return (long long)json_integer_value(v);
}

json_t *h_obj(const json_t *obj, const char *key) {
    json_t *v = member(obj, key);
    if (!json_is_object(v)) {
        char *d = h_dump(obj);
        fail_msg("\"%s\" is not an object in %s", key, d);
    }
    return v;
}

json_t *h_arr(const json_t *obj, const char *key) {
    json_t *v = member(obj, key);
    if (!json_is_array(v)) {
        char *d = h_dump(obj);
        fail_msg("\"%s\" is not an array in %s", key, d);
    }
    return v;
}

json_t *h_get(const json_t *j, const char *path) {
    json_t *cur = (json_t *)j;
    const char *p = path;
    while (cur != NULL && *p != '\0') {
        char tok[128];
        size_t n = strcspn(p, ".");
        if (n >= sizeof tok)
            return NULL;
        memcpy(tok, p, n);
        tok[n] = '\0';
        p += n + (p[n] == '.');
        char *end;
        long idx = strtol(tok, &end, 10);
        if (*end == '\0' && end != tok)
            cur = json_is_array(cur) ? json_array_get(cur, (size_t)idx) : NULL;
        else
            cur = json_is_object(cur) ? json_object_get(cur, tok) : NULL;
    }
    return cur;
}

json_t *h_post_expect(int port, const char *path, const json_t *j, long want_status) {
    char *body = h_dump(j);
    assert_non_null(body);
    h_resp r;
    h_request(port, "POST", path, body, strlen(body), 0, &r);
    if (r.status != want_status)
        fail_msg("POST %s %s: status %ld (curl %d), want %ld: %s", path, body, r.status,
                 r.curl_code, want_status, r.body);
    free(body);
    json_t *out = h_json(r.body);
    h_resp_free(&r);
    return out;
}

void h_assert_error(const h_resp *r, long want_status, const char *want_param, char *msg,
                    size_t msglen) {
    if (r->status != want_status)
        fail_msg("status %ld (curl %d), want %ld: %s", r->status, r->curl_code, want_status,
                 r->body);
    if (strncmp(r->content_type, "application/json", 16) != 0)
        fail_msg("error Content-Type is \"%s\", want application/json", r->content_type);
    json_t *j = h_json(r->body);
    json_t *e = h_obj(j, "error");
    const char *m = h_str(e, "message");
    if (m[0] == '\0')
        fail_msg("empty error message: %s", r->body);
    (void)h_str(e, "type");
    if (json_object_get(e, "param") == NULL || json_object_get(e, "code") == NULL)
        fail_msg("error lacks param or code: %s", r->body);
    if (want_param != NULL) {
        json_t *p = json_object_get(e, "param");
        if (!json_is_string(p) || strcmp(json_string_value(p), want_param) != 0)
            fail_msg("error.param is not \"%s\": %s", want_param, r->body);
    }
    snprintf(msg, msglen, "%s", m);
    json_decref(j);
}

json_t *h_completion_req(const char *prompt, int max_tokens) {
    return json_pack("{s:s, s:s, s:i, s:f}", "model", H_MODEL_NAME, "prompt", prompt, "max_tokens",
                     max_tokens, "temperature", 0.0);
}

json_t *h_chat_req(const char *user, int max_tokens) {
    return json_pack("{s:s, s:[{s:s, s:s}], s:i, s:f}", "model", H_MODEL_NAME, "messages", "role",
                     "user", "content", user, "max_tokens", max_tokens, "temperature", 0.0);
}

json_t *h_health(int port) {
    h_resp r;
    h_request(port, "GET", "/health", NULL, 0, 5000, &r);
    if (r.status != 200)
        fail_msg("GET /health: status %ld (curl %d): %s", r.status, r.curl_code, r.body);
    json_t *j = h_json(r.body);
    h_resp_free(&r);
    return j;
}

/* ---- golden ---- */

int h_golden_load(h_golden *out, int max) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/integration/golden/stories260K.jsonl", h_source_dir());
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("golden file missing: %s (%s)", path, strerror(errno));
    char line[16384];
    int n = 0;
    while (n < max && fgets(line, sizeof line, f) != NULL) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        json_t *j = h_json(line);
        snprintf(out[n].prompt, sizeof out[n].prompt, "%s", h_str(j, "prompt"));
        out[n].max_tokens = (int)h_int(j, "max_tokens");
        snprintf(out[n].text, sizeof out[n].text, "%s", h_str(j, "text"));
        json_decref(j);
        n++;
    }
    fclose(f);
    if (n == 0)
        fail_msg("no cases in %s", path);
    return n;
}

char *h_sse_text(const h_sse *s) {
    growbuf g = {0};
    gb_append(&g, "", 0);
    for (size_t i = 0; i < s->n_events; i++) {
        json_t *j = h_json(s->events[i]);
        json_t *t = h_get(j, "choices.0.text");
        if (!json_is_string(t))
            t = h_get(j, "choices.0.delta.content");
        if (json_is_string(t))
            gb_append(&g, json_string_value(t), json_string_length(t));
        json_decref(j);
    }
    return g.p;
}
