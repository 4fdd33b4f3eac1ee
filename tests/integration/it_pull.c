/* it_pull: `shimmy pull` and `shimmy rm` against a fake Hugging Face hub and a fake Ollama
 * registry on loopback (tests/integration/fake_hub.py, started per test with its own port, work
 * folder and request log): every reference form and the file each one chooses, the hub cache and
 * Ollama store layouts that `shimmy list` then shows, split parts and the projector, a download
 * killed midway and resumed (the fake hub's log shows the Range header the second pull sent),
 * a corrupted file (checksum mismatch, nothing left), a gated repository without and with the
 * token, a full disk before (SHIMMY_PULL_FREE_BYTES) and during the download (RLIMIT_FSIZE
 * through `ulimit -f`: works as root without mounting anything), two pulls of one file at once
 * (one download), HF_HUB_OFFLINE, rm removing only what shimmy pulled, a running server's
 * POST /api/pull (stream: false) and DELETE /api/delete, and serve --pull-missing (an unknown
 * model is a 404 without it). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define COMMIT "5d3c0b1e9a8f7e6d5c4b3a29180716253443f2e1"
#define STORIES_SHA "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d"
#define STORIES_SIZE 1185376
#define RATE "150000" /* bytes per second of the slow repository: 1.2 MB in about 8 s */

static pid_t hub_pid;
static int hub_port;
static char hub_log[4200];
static char hub_dir[4200]; /* the HF cache the pulls write: HOME/.cache/huggingface/hub */

static void start_hub(h_test *t) {
    char script[4200], work[4200], portf[4200], out[4200], models[4200];
    snprintf(script, sizeof script, "%s/tests/integration/fake_hub.py", h_source_dir());
    snprintf(work, sizeof work, "%s/hubwork", t->dir);
    snprintf(portf, sizeof portf, "%s/hub.port", t->dir);
    snprintf(out, sizeof out, "%s/hub.out", t->dir);
    snprintf(hub_log, sizeof hub_log, "%s/hub.log", t->dir);
    snprintf(models, sizeof models, "%s", h_model_path(H_MODEL_FILE));
    *strrchr(models, '/') = '\0';
    hub_pid = fork();
    assert_true(hub_pid >= 0);
    if (hub_pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execlp("python3", "python3", script, "--models", models, "--tools", h_tools_dir(), "--work",
               work, "--port-file", portf, "--log", hub_log, "--rate", RATE, (char *)NULL);
        _exit(127);
    }
    int64_t end = h_now_ms() + 30000;
    FILE *f = NULL;
    while ((f = fopen(portf, "r")) == NULL && h_now_ms() < end)
        h_sleep_ms(20);
    if (f == NULL) {
        char cmd[4300];
        snprintf(cmd, sizeof cmd, "cat %s >&2", out);
        if (system(cmd) != 0)
            fprintf(stderr, "(no hub output)\n");
        fail_msg("the fake hub did not start within 30 s");
    }
    assert_int_equal(fscanf(f, "%d", &hub_port), 1);
    fclose(f);
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", hub_port);
    setenv("HF_ENDPOINT", ep, 1);
    snprintf(hub_dir, sizeof hub_dir, "%s/.cache/huggingface/hub", t->dir);
}

static int setup(void **state) {
    int rc = h_setup(state);
    static const char *const unset[] = {"HF_HOME",       "HF_HUB_CACHE",          "HF_TOKEN",
                                        "HF_TOKEN_PATH", "HF_HUB_OFFLINE",        "OLLAMA_MODELS",
                                        "XDG_DATA_HOME", "SHIMMY_PULL_FREE_BYTES"};
    for (size_t i = 0; i < sizeof unset / sizeof unset[0]; i++)
        unsetenv(unset[i]);
    if (rc == 0)
        start_hub(*state);
    return rc;
}

static int teardown(void **state) {
    if (hub_pid > 0) {
        kill(hub_pid, SIGTERM);
        waitpid(hub_pid, NULL, 0);
        hub_pid = 0;
    }
    return h_teardown(state);
}

/* ---- helpers ---- */

/* Runs `shimmy pull ARGS...`; returns the exit code, *out owned. */
static int pull(h_test *t, char **out, const char *a, const char *b) {
    const char *args[] = {"pull", a, b, NULL};
    int rc = h_run(t, args, 60000, out);
    fprintf(stderr, "--- shimmy pull %s %s -> %d\n%s", a, b ? b : "", rc, *out);
    return rc;
}

static void expect_pull(h_test *t, const char *ref, const char *want_note, const char *want_name) {
    char *out;
    assert_int_equal(pull(t, &out, ref, NULL), 0);
    assert_non_null(strstr(out, want_note));
    char served[600];
    snprintf(served, sizeof served, "serve it as '%s'", want_name);
    assert_non_null(strstr(out, served));
    free(out);
}

static void expect_fail(h_test *t, const char *ref, const char *extra, const char *want) {
    char *out;
    assert_int_equal(pull(t, &out, ref, extra), 1);
    if (strstr(out, want) == NULL)
        fail_msg("expected '%s' in: %s", want, out);
    free(out);
}

static char *hf_path(const char *repo, const char *rest) {
    static char p[8192];
    snprintf(p, sizeof p, "%s/models--%s/%s", hub_dir, repo, rest);
    return p;
}

static bool is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static long long size_of(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

/* Files in dir whose name ends with suffix. */
static int count_suffix(const char *dir, const char *suffix) {
    char cmd[4400], line[64];
    snprintf(cmd, sizeof cmd, "find '%s' -name '*%s' 2>/dev/null | wc -l", dir, suffix);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p != NULL && fgets(line, sizeof line, p) != NULL)
        n = (int)strtol(line, NULL, 10);
    if (p != NULL)
        pclose(p);
    return n;
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return strdup("");
    char *s = calloc(1, 1 << 22);
    size_t n = fread(s, 1, (1 << 22) - 1, f);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* Requests in the hub's log whose JSON line holds every one of a and b (b may be NULL). */
static int hub_count(const char *a, const char *b) {
    char *log = read_text(hub_log);
    int n = 0;
    for (char *line = log, *nl; *line != '\0'; line = nl + 1) {
        if ((nl = strchr(line, '\n')) == NULL)
            nl = line + strlen(line) - 1;
        else
            *nl = '\0';
        if (strstr(line, a) != NULL && (b == NULL || strstr(line, b) != NULL))
            n++;
    }
    free(log);
    return n;
}

static char *list_models(h_test *t) {
    const char *args[] = {"list", NULL};
    char *out;
    assert_int_equal(h_run(t, args, 60000, &out), 0);
    return out;
}

/* Starts `shimmy pull ref` without waiting; output to log. */
static pid_t pull_async(h_test *t, const char *ref, const char *log) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || chdir(t->dir) != 0)
            _exit(127);
        dup2(fd, 1);
        dup2(fd, 2);
        setenv("HOME", t->dir, 1);
        execl(h_bin(), h_bin(), "pull", ref, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid, int deadline_ms) {
    int64_t end = h_now_ms() + deadline_ms;
    int st;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (h_now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        h_sleep_ms(20);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- tests ---- */

/* Every Hugging Face reference form, the file each chooses, the cache layout, `shimmy list`. */
static void test_hf_forms(void **state) {
    h_test *t = *state;
    expect_pull(t, "hf.co/test/Stories-GGUF", "using stories-Q4_K_M.gguf (chosen: Q4_K_M)",
                "test/stories-gguf/stories-q4_k_m");
    /* the standard layout: blob by sha256, snapshot link, refs/main */
    assert_true(is_file(hf_path("test--Stories-GGUF", "blobs/" STORIES_SHA)));
    char link[4096];
    ssize_t n = readlink(hf_path("test--Stories-GGUF", "snapshots/" COMMIT "/stories-Q4_K_M.gguf"),
                         link, sizeof link - 1);
    assert_true(n > 0);
    link[n] = '\0';
    assert_string_equal(link, "../../blobs/" STORIES_SHA);
    char *ref = read_text(hf_path("test--Stories-GGUF", "refs/main"));
    assert_string_equal(ref, COMMIT);
    free(ref);
    assert_int_equal(count_suffix(hub_dir, ".incomplete"), 0);

    expect_pull(t, "hf.co/test/Stories-GGUF:q8_0", "using stories-Q8_0.gguf (q8_0)",
                "test/stories-gguf/stories-q8_0");
    expect_pull(t, "huggingface.co/test/Stories-GGUF:iq4_xs", "using stories-IQ4_XS.gguf",
                "test/stories-gguf/stories-iq4_xs");
    /* the file form, of a file already here: nothing fetched */
    char *out;
    assert_int_equal(pull(t, &out, "test/Stories-GGUF/stories-Q8_0.gguf", NULL), 0);
    assert_non_null(strstr(out, "using stories-Q8_0.gguf (named)"));
    assert_non_null(strstr(out, "0 fetched now"));
    free(out);
    /* no Q4_K_M: the next in the order */
    expect_pull(t, "hf.co/test/NoDefault-GGUF", "using model-Q4_0.gguf (chosen: Q4_0)",
                "test/nodefault-gguf/model-q4_0");
    expect_fail(t, "hf.co/test/Stories-GGUF:Q5_K_M", NULL,
                "test/Stories-GGUF has no Q5_K_M file; its GGUF files: stories-IQ4_XS.gguf, "
                "stories-Q4_K_M.gguf, stories-Q8_0.gguf");
    expect_fail(t, "hf.co/test/Nope-GGUF", NULL, "test/Nope-GGUF not found on http://127.0.0.1:");
    expect_fail(t, "test/Stories-GGUF/absent.gguf", NULL, "has no file absent.gguf");
    expect_fail(t, "hf.co/a", NULL, "is not a Hugging Face reference");

    char *list = list_models(t);
    fprintf(stderr, "%s", list);
    for (const char *m = "test/stories-gguf/stories-q4_k_m\0test/stories-gguf/stories-q8_0\0"
                         "test/stories-gguf/stories-iq4_xs\0test/nodefault-gguf/model-q4_0\0";
         *m; m += strlen(m) + 1)
        if (strstr(list, m) == NULL)
            fail_msg("%s missing from shimmy list", m);
    free(list);

    setenv("HF_HUB_OFFLINE", "1", 1);
    expect_fail(t, "hf.co/test/Split-GGUF", NULL,
                "HF_HUB_OFFLINE=1: shimmy pull does not use "
                "the network");
    unsetenv("HF_HUB_OFFLINE");
    h_pass(t);
}

/* A split model: every part and the projector; served once, from its first part. */
static void test_split_projector(void **state) {
    h_test *t = *state;
    expect_pull(t, "hf.co/test/Split-GGUF", "all 3 parts, projector mmproj-stories-f16.gguf",
                "test/split-gguf/stories-split");
    for (int k = 1; k <= 3; k++) {
        char f[200];
        snprintf(f, sizeof f, "snapshots/" COMMIT "/stories-split-0000%d-of-00003.gguf", k);
        assert_true(is_file(hf_path("test--Split-GGUF", f)));
    }
    assert_true(
        is_file(hf_path("test--Split-GGUF", "snapshots/" COMMIT "/mmproj-stories-f16.gguf")));
    char *list = list_models(t);
    assert_non_null(strstr(list, "test/split-gguf/stories-split "));
    assert_null(strstr(list, "mmproj-stories-f16 "));
    free(list);
    h_pass(t);
}

/* Killed midway, then resumed: the second request asks for the rest with Range. */
static void test_resume(void **state) {
    h_test *t = *state;
    char log[4200], tmp[8300];
    snprintf(log, sizeof log, "%s/slow1.log", t->dir);
    snprintf(tmp, sizeof tmp, "%s", hf_path("test--Slow-GGUF", "blobs/" STORIES_SHA ".incomplete"));
    pid_t pid = pull_async(t, "hf.co/test/Slow-GGUF", log);
    int64_t end = h_now_ms() + 30000;
    while (size_of(tmp) < 200000 && h_now_ms() < end)
        h_sleep_ms(20);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    long long have = size_of(tmp);
    fprintf(stderr, "killed the first pull with %lld of %d bytes on disk\n", have, STORIES_SIZE);
    assert_true(have >= 200000 && have < STORIES_SIZE);
    assert_false(is_file(hf_path("test--Slow-GGUF", "blobs/" STORIES_SHA)));
    assert_int_equal(hub_count("/cdn/test/Slow-GGUF/", "\"range\": null"), 1);

    char *out;
    assert_int_equal(pull(t, &out, "hf.co/test/Slow-GGUF", NULL), 0);
    char want[200];
    snprintf(want, sizeof want, "resuming at %lld", have);
    assert_non_null(strstr(out, want));
    free(out);
    char range[100];
    snprintf(range, sizeof range, "\"range\": \"bytes=%lld-\"", have);
    int seen = hub_count("/cdn/test/Slow-GGUF/", range);
    fprintf(stderr, "the hub saw %d request(s) with %s\n", seen, range);
    assert_int_equal(seen, 1);
    /* whole and verified (pull checks the sha256; the size says the bytes were not doubled) */
    assert_int_equal(size_of(hf_path("test--Slow-GGUF", "blobs/" STORIES_SHA)), STORIES_SIZE);
    assert_false(is_file(tmp));
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", hf_path("test--Slow-GGUF", "blobs/" STORIES_SHA),
             h_model_path(H_MODEL_FILE));
    assert_int_equal(system(cmd), 0);
    h_pass(t);
}

/* Bytes that do not match the sha256: an error that says so, and no file at all. */
static void test_corrupt(void **state) {
    h_test *t = *state;
    expect_fail(t, "hf.co/test/Corrupt-GGUF", NULL,
                "checksum mismatch for stories-Q4_K_M.gguf: expected sha256 " STORIES_SHA);
    assert_int_equal(count_suffix(hub_dir, ".gguf"), 0);
    assert_int_equal(count_suffix(hub_dir, ".incomplete"), 0);
    assert_false(is_file(hf_path("test--Corrupt-GGUF", "blobs/" STORIES_SHA)));
    char *list = list_models(t);
    assert_null(strstr(list, "corrupt"));
    free(list);
    h_pass(t);
}

/* A gated repository: no token, a wrong one, then the token file huggingface_hub writes. */
static void test_gated(void **state) {
    h_test *t = *state;
    expect_fail(t, "hf.co/test/Gated-GGUF", NULL,
                "test/Gated-GGUF is gated or private and no "
                "token was sent: accept its terms on the hub, then set HF_TOKEN");
    setenv("HF_TOKEN", "hf_wrong", 1);
    expect_fail(t, "hf.co/test/Gated-GGUF", NULL, "the token from HF_TOKEN has no access to it");
    unsetenv("HF_TOKEN");
    char tok[4200];
    snprintf(tok, sizeof tok, "%s/.cache", t->dir);
    mkdir(tok, 0755);
    snprintf(tok, sizeof tok, "%s/.cache/huggingface", t->dir);
    mkdir(tok, 0755);
    snprintf(tok, sizeof tok, "%s/.cache/huggingface/token", t->dir);
    FILE *f = fopen(tok, "w");
    assert_non_null(f);
    fputs("hf_test_token\n", f);
    fclose(f);
    expect_pull(t, "hf.co/test/Gated-GGUF", "using stories-Q4_K_M.gguf",
                "test/gated-gguf/stories-q4_k_m");
    assert_true(hub_count("/test/Gated-GGUF/resolve/", "Bearer hf_test_token") >= 1);
    h_pass(t);
}

/* Too little space before the download, and a write that fails during it. */
static void test_disk_full(void **state) {
    h_test *t = *state;
    setenv("SHIMMY_PULL_FREE_BYTES", "1000", 1);
    expect_fail(t, "hf.co/test/Stories-GGUF", NULL,
                "the pull needs 1.1 MiB more, 1000 B free; "
                "nothing was downloaded");
    unsetenv("SHIMMY_PULL_FREE_BYTES");
    assert_int_equal(hub_count("/cdn/", NULL), 0);
    /* during: a file size limit below the model's size (dash: 512-byte blocks, bash: 1024) */
    const char *args[] = {"-c", "ulimit -f 1000 && exec \"$0\" pull hf.co/test/Stories-GGUF",
                          h_bin(), NULL};
    char *out;
    int rc = h_run_exe(t, "/bin/sh", args, 60000, &out);
    fprintf(stderr, "--- pull under ulimit -f 1000 -> %d\n%s", rc, out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "disk full writing "));
    assert_non_null(strstr(out, "File too large; the partial file was deleted"));
    free(out);
    assert_int_equal(count_suffix(hub_dir, ".incomplete"), 0);
    assert_false(is_file(hf_path("test--Stories-GGUF", "blobs/" STORIES_SHA)));
    h_pass(t);
}

/* Two pulls of one file at once: both succeed, the file crosses the network once. */
static void test_concurrent(void **state) {
    h_test *t = *state;
    char l1[4200], l2[4200];
    snprintf(l1, sizeof l1, "%s/c1.log", t->dir);
    snprintf(l2, sizeof l2, "%s/c2.log", t->dir);
    pid_t a = pull_async(t, "hf.co/test/Slow-GGUF", l1);
    pid_t b = pull_async(t, "hf.co/test/Slow-GGUF:Q4_K_M", l2);
    int ra = wait_exit(a, 90000), rb = wait_exit(b, 90000);
    char *oa = read_text(l1), *ob = read_text(l2);
    fprintf(stderr, "--- first (%d):\n%s--- second (%d):\n%s", ra, oa, rb, ob);
    assert_int_equal(ra, 0);
    assert_int_equal(rb, 0);
    assert_true(strstr(oa, "waiting for another pull of stories-Q4_K_M.gguf") != NULL ||
                strstr(ob, "waiting for another pull of stories-Q4_K_M.gguf") != NULL);
    free(oa);
    free(ob);
    assert_int_equal(hub_count("/cdn/test/Slow-GGUF/", NULL), 1);
    assert_int_equal(size_of(hf_path("test--Slow-GGUF", "blobs/" STORIES_SHA)), STORIES_SIZE);
    h_pass(t);
}

/* An Ollama registry: the store layout, the name, the failures; rm of what was pulled only. */
static void test_ollama(void **state) {
    h_test *t = *state;
    char ref[200], name[200], manifest[4400], blob[4400];
    snprintf(ref, sizeof ref, "127.0.0.1:%d/library/stories", hub_port);
    snprintf(name, sizeof name, "127.0.0.1:%d/library/stories:latest", hub_port);
    snprintf(manifest, sizeof manifest,
             "%s/.ollama/models/manifests/127.0.0.1:%d/library/"
             "stories/latest",
             t->dir, hub_port);
    snprintf(blob, sizeof blob, "%s/.ollama/models/blobs/sha256-" STORIES_SHA, t->dir);
    expect_fail(t, ref, NULL, "(a registry that speaks plain HTTP needs --insecure)");
    char *out;
    assert_int_equal(pull(t, &out, ref, "--insecure"), 0);
    assert_non_null(strstr(out, "pulling manifest"));
    assert_non_null(strstr(out, "pulling 270cba1bd510"));
    assert_non_null(strstr(out, "writing manifest"));
    free(out);
    assert_true(is_file(manifest));
    assert_int_equal(size_of(blob), STORIES_SIZE);
    char *list = list_models(t);
    assert_non_null(strstr(list, name));
    free(list);
    char bad[200];
    snprintf(bad, sizeof bad, "127.0.0.1:%d/library/nope:7b", hub_port);
    expect_fail(t, bad, "--insecure", "library/nope:7b not found on 127.0.0.1:");
    snprintf(bad, sizeof bad, "127.0.0.1:%d/private/secret", hub_port);
    expect_fail(t, bad, "--insecure", "asks for a login to pull private/secret:latest");
    const char *bad_args[] = {"pull", "bad name!", NULL};
    assert_int_equal(h_run(t, bad_args, 30000, &out), 2);
    assert_non_null(strstr(out, "'bad name!' is not a model reference"));
    free(out);

    /* rm: only what shimmy pulled */
    const char *rm_other[] = {"rm", "someone/else:latest", NULL};
    assert_int_equal(h_run(t, rm_other, 30000, &out), 1);
    assert_non_null(strstr(out, "'someone/else:latest' was not pulled by shimmy"));
    free(out);
    const char *rm[] = {"rm", name, NULL};
    assert_int_equal(h_run(t, rm, 30000, &out), 0);
    assert_non_null(strstr(out, "removed"));
    free(out);
    assert_false(is_file(manifest));
    assert_false(is_file(blob));
    list = list_models(t);
    assert_null(strstr(list, name));
    free(list);
    h_pass(t);
}

/* rm on the HF cache, by the references as typed: each removes its link and blob,
 * the last one the repository's folder; a model another tool put there is never touched. */
static void test_rm_hf(void **state) {
    h_test *t = *state;
    char *out;
    char other[4400];
    snprintf(other, sizeof other, "%s/models--x--Other-GGUF/snapshots/abc", hub_dir);
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s' '%s/other.gguf'", other,
             h_model_path(H_MODEL_FILE), other);
    assert_int_equal(system(cmd), 0);
    expect_pull(t, "hf.co/test/Stories-GGUF", "Q4_K_M", "test/stories-gguf/stories-q4_k_m");
    expect_pull(t, "test/Stories-GGUF/stories-Q8_0.gguf", "named",
                "test/stories-gguf/stories-q8_0");
    const char *rm1[] = {"rm", "hf.co/test/Stories-GGUF", NULL}; /* by the reference */
    assert_int_equal(h_run(t, rm1, 30000, &out), 0);
    assert_non_null(strstr(out, "removed test/stories-gguf/stories-q4_k_m"));
    free(out);
    assert_false(is_file(hf_path("test--Stories-GGUF", "blobs/" STORIES_SHA)));
    assert_true(is_file(hf_path("test--Stories-GGUF", "snapshots/" COMMIT "/stories-Q8_0.gguf")));
    /* by the reference as typed (no hf.co/) */
    const char *rm2[] = {"rm", "test/Stories-GGUF/stories-Q8_0.gguf", "x/other-gguf/other", NULL};
    assert_int_equal(h_run(t, rm2, 30000, &out), 1);
    assert_non_null(strstr(out, "removed test/stories-gguf/stories-q8_0"));
    assert_non_null(strstr(out, "'x/other-gguf/other' was not pulled by shimmy"));
    free(out);
    struct stat st;
    assert_int_not_equal(stat(hf_path("test--Stories-GGUF", ""), &st), 0); /* the repo is gone */
    snprintf(cmd, sizeof cmd, "%s/other.gguf", other);
    assert_true(is_file(cmd));
    h_pass(t);
}

/* A running server: POST /api/pull (stream: false) makes the model servable at once; DELETE
 * /api/delete removes it; an unknown model stays a 404 (no download on request). */
static void test_server(void **state) {
    h_test *t = *state;
    const char *args[] = {"--model", h_model_path(H_MODEL_FILE), NULL};
    h_server *s = h_start(t, args);
    char body[400], name[200];
    snprintf(name, sizeof name, "127.0.0.1:%d/library/stories:latest", hub_port);
    h_resp r;
    snprintf(body, sizeof body, "{\"model\":\"%s\"}", name);
    h_request(s->port, "POST", "/api/generate", body, strlen(body), 0, &r);
    assert_int_equal(r.status, 404);
    h_resp_free(&r);
    snprintf(body, sizeof body, "{\"model\":\"%s\",\"insecure\":true,\"stream\":false}", name);
    h_request(s->port, "POST", "/api/pull", body, strlen(body), 60000, &r);
    fprintf(stderr, "/api/pull: %ld %s\n", r.status, r.body);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"success\"}");
    h_resp_free(&r);
    long st;
    char *tags;
    assert_int_equal(http_get(s->port, "/api/tags", &st, &tags), 0);
    assert_non_null(strstr(tags, name));
    free(tags);
    snprintf(body, sizeof body,
             "{\"model\":\"%s\",\"prompt\":\"Once upon a time\",\"stream\":"
             "false,\"options\":{\"num_predict\":4,\"temperature\":0}}",
             name);
    h_request(s->port, "POST", "/api/generate", body, strlen(body), 0, &r);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    snprintf(body, sizeof body, "{\"model\":\"%s\"}", name);
    h_request(s->port, "DELETE", "/api/delete", body, strlen(body), 0, &r);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    assert_int_equal(http_get(s->port, "/api/tags", &st, &tags), 0);
    assert_null(strstr(tags, name));
    free(tags);
    h_request(s->port, "DELETE", "/api/delete", body, strlen(body), 0, &r);
    assert_int_equal(r.status, 404);
    h_resp_free(&r);
    snprintf(body, sizeof body, "{\"model\":\"%s\"}", H_MODEL_NAME);
    h_request(s->port, "DELETE", "/api/delete", body, strlen(body), 0, &r);
    assert_int_equal(r.status, 403);
    assert_non_null(strstr(r.body, "not pulled by shimmy"));
    h_resp_free(&r);
    h_pass(t);
}

/* serve --pull-missing: a request naming a model that is not here pulls it, then answers. */
static void test_pull_missing(void **state) {
    h_test *t = *state;
    const char *args[] = {"--model", h_model_path(H_MODEL_FILE), "--pull-missing", NULL};
    h_server *s = h_start(t, args);
    const char *body = "{\"model\":\"hf.co/test/Stories-GGUF:Q8_0\",\"prompt\":\"Hi\","
                       "\"stream\":false,\"options\":{\"num_predict\":2}}";
    h_resp r;
    h_request(s->port, "POST", "/api/generate", body, strlen(body), 60000, &r);
    fprintf(stderr, "generate with a missing model: %ld %s\n", r.status, r.body);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    long st;
    char *tags;
    assert_int_equal(http_get(s->port, "/api/tags", &st, &tags), 0);
    assert_non_null(strstr(tags, "test/stories-gguf/stories-q8_0"));
    free(tags);
    body = "{\"model\":\"hf.co/test/Nope-GGUF\",\"prompt\":\"Hi\",\"stream\":false}";
    h_request(s->port, "POST", "/api/generate", body, strlen(body), 60000, &r);
    fprintf(stderr, "generate with a model the hub lacks: %ld %s\n", r.status, r.body);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "test/Nope-GGUF not found on http://127.0.0.1:"));
    h_resp_free(&r);
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hf_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_projector, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ollama, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rm_hf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_missing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
