/* it_templates: POST /apply-template renders every chat template of the pinned llama.cpp source
 * (deps/llama.cpp/models/templates/\*.jinja) byte for byte as llama-server does. The goldens,
 * golden/templates.jsonl, are llama-server's own answers (tools/chat_golden.sh), one line per
 * template and scenario; the request bodies of the scenarios are golden/template_requests.json,
 * which the script sent too. One shimmy per template (--chat-template-file T) answers every
 * scenario, under the clock the reference ran under (libfaketime preloaded, 2026-01-15 12:00:00
 * UTC, TZ=UTC: the chat module reads the process clock for templates that print today's date).
 * Where the reference refused a scenario (a template raised), shimmy must refuse it too (any
 * 4xx). Where the reference silently ignored the tools (the template does not render them: the
 * tool's description is not in its prompt), shimmy answers 400 naming "tools" instead, as issue
 * 8 asks ("never a silent ignore"): counted apart.
 *
 * Every mismatch is printed (template, scenario, first differing byte with context) and the run
 * goes on, so one run lists them all; the test fails at the end when there was any, when a
 * template the goldens list is missing, or when the folder holds another number of templates
 * than the goldens (new templates need new goldens: run tools/chat_golden.sh). */
#include "harness.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FAKE_NOW "@2026-01-15 12:00:00" /* as tools/chat_golden.sh runs the reference */
#define LIBFAKETIME "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
/* In scenario b's tool definition: absent from the reference's prompt = tools ignored. */
#define TOOL_MARK "Get the current weather in a city"
#define MAX_SCENARIOS 8
#define START_TRIES 3
#define REQUEST_TIMEOUT_MS 30000
#define CONTEXT_BYTES 48

typedef struct tally {
    const char *names[MAX_SCENARIOS]; /* scenario names, borrowed from the requests */
    const json_t *bodies[MAX_SCENARIOS];
    int n;
    int identical[MAX_SCENARIOS]; /* same prompt, byte for byte */
    int refused[MAX_SCENARIOS];   /* both refused */
    int no_tools[MAX_SCENARIOS];  /* the reference ignored the tools, shimmy said 400 tools */
    int different;                /* (template, scenario) pairs that differ */
    int missing;                  /* template files the goldens list but the folder lacks */
    char list[4096];              /* "T (s), ..." of the different ones */
} tally;

static void path_join(char *out, size_t len, const char *a, const char *b) {
    int n = snprintf(out, len, "%s/%s", a, b);
    assert_true(n > 0 && (size_t)n < len);
}

static const char *deps_dir(void) {
    static char dir[4096];
    const char *env = getenv("SHIMMY_DEPS_DIR");
    if (env != NULL && env[0] != '\0')
        return env;
    path_join(dir, sizeof dir, h_source_dir(), "deps");
    return dir;
}

static const char *templates_dir(void) {
    static char dir[4096];
    path_join(dir, sizeof dir, deps_dir(), "llama.cpp/models/templates");
    return dir;
}

/* ---- inputs ---- */

/* The scenarios of template_requests.json: [{"scenario": NAME, "body": {...}}, ...]. Returns
 * the owned array; the tally borrows names and bodies from it. */
static json_t *load_requests(tally *ty) {
    char path[4096];
    path_join(path, sizeof path, h_source_dir(), "tests/integration/golden/template_requests.json");
    json_error_t err;
    json_t *reqs = json_load_file(path, 0, &err);
    if (reqs == NULL)
        fail_msg("%s: %s (line %d)", path, err.text, err.line);
    assert_true(json_is_array(reqs) && json_array_size(reqs) > 0);
    assert_true(json_array_size(reqs) <= MAX_SCENARIOS);
    size_t i;
    json_t *r;
    json_array_foreach(reqs, i, r) {
        ty->names[i] = h_str(r, "scenario");
        ty->bodies[i] = h_obj(r, "body");
        ty->n++;
    }
    return reqs;
}

/* The lines of templates.jsonl ('#' lines are comments). Returns an owned array of objects. */
static json_t *load_goldens(void) {
    char path[4096];
    path_join(path, sizeof path, h_source_dir(), "tests/integration/golden/templates.jsonl");
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("goldens missing: %s (tools/chat_golden.sh makes them)", path);
    json_t *lines = json_array();
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        json_t *g = h_json(line);
        h_str(g, "template");
        h_str(g, "scenario");
        json_array_append_new(lines, g);
    }
    free(line);
    fclose(f);
    if (json_array_size(lines) == 0)
        fail_msg("%s holds no goldens", path);
    return lines;
}

static bool golden_has_template(const json_t *goldens, const char *name) {
    size_t i;
    json_t *g;
    json_array_foreach(goldens, i, g) {
        if (strcmp(h_str(g, "template"), name) == 0)
            return true;
    }
    return false;
}

static bool is_template_file(const char *name) {
    size_t n = strlen(name);
    return n > 6 && strcmp(name + n - 6, ".jinja") == 0;
}

/* Number of distinct templates the goldens name. */
static int golden_template_count(const json_t *goldens) {
    int n = 0;
    for (size_t i = 0; i < json_array_size(goldens); i++) {
        const char *name = h_str(json_array_get(goldens, i), "template");
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(h_str(json_array_get(goldens, j), "template"), name) == 0;
        n += !seen;
    }
    return n;
}

/* Counts the *.jinja files of the templates folder, printing those without goldens. */
static int folder_template_count(const json_t *goldens) {
    DIR *d = opendir(templates_dir());
    if (d == NULL)
        fail_msg("templates folder missing: %s (run scripts/deps.sh)", templates_dir());
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!is_template_file(e->d_name))
            continue;
        n++;
        if (!golden_has_template(goldens, e->d_name))
            fprintf(stderr, "NO GOLDEN %s: run tools/chat_golden.sh\n", e->d_name);
    }
    closedir(d);
    return n;
}

/* ---- one template ---- */

static void tally_different(tally *ty, const char *tmpl, const char *scenario) {
    size_t len = strlen(ty->list);
    snprintf(ty->list + len, sizeof ty->list - len, "%s%s (%s)", len ? ", " : "", tmpl, scenario);
    ty->different++;
}

/* Prints bytes [from, to) of s escaped, on one line. */
static void print_escaped(const char *s, size_t from, size_t to) {
    for (size_t i = from; i < to; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            fputs("\\n", stderr);
        else if (c == '\t')
            fputs("\\t", stderr);
        else if (c == '\\')
            fputs("\\\\", stderr);
        else if (c < 0x20 || c == 0x7f)
            fprintf(stderr, "\\x%02x", c);
        else
            fputc(c, stderr);
    }
}

/* Prints "  label "..." the bytes [from, to) of s, quoted and escaped, with ... where cut. */
static void print_part(const char *label, const char *s, size_t len, size_t from, size_t to) {
    fprintf(stderr, "  %-14s%s\"", label, from > 0 ? "..." : "");
    print_escaped(s, from, to);
    fprintf(stderr, "\"%s\n", to < len ? "..." : "");
}

static bool utf8_cont(const char *s, size_t i) {
    return ((unsigned char)s[i] & 0xC0) == 0x80;
}

/* i moved back to the first byte of the UTF-8 character it is in (s is NUL-terminated). */
static size_t utf8_start(const char *s, size_t i) {
    while (i > 0 && utf8_cont(s, i))
        i--;
    return i;
}

/* Where a context of CONTEXT_BYTES after at ends in s (len bytes), on a character boundary. */
static size_t context_end(const char *s, size_t len, size_t at) {
    return len - at > CONTEXT_BYTES ? utf8_start(s, at + CONTEXT_BYTES) : len;
}

/* True when got equals want byte for byte; else prints where they part, cutting the context
 * between characters (both are NUL-terminated). */
static bool same_prompt(const char *tmpl, const char *scenario, const char *want, size_t wlen,
                        const char *got, size_t glen) {
    size_t at = 0;
    while (at < wlen && at < glen && want[at] == got[at])
        at++;
    if (at == wlen && at == glen)
        return true;
    fprintf(stderr,
            "DIFFERENT %s (%s): first difference at byte %zu (llama-server %zu bytes, "
            "shimmy %zu)\n",
            tmpl, scenario, at, wlen, glen);
    size_t split = utf8_start(want, at); /* the bytes before at are the same in both */
    size_t from = split > CONTEXT_BYTES ? split - CONTEXT_BYTES : 0;
    while (from < split && utf8_cont(want, from))
        from++;
    print_part("both:", want, split, from, split);
    print_part("llama-server:", want, wlen, split, context_end(want, wlen, split));
    print_part("shimmy:", got, glen, split, context_end(got, glen, split));
    return false;
}

static const json_t *scenario_body_of(const json_t *g);

/* Compares shimmy's answer r to golden g. Returns 1 identical, 2 refused alike, 3 tools refused
 * where the reference ignored them, 0 different. */
static int judge(const json_t *g, const h_resp *r) {
    const char *tmpl = h_str(g, "template"), *scenario = h_str(g, "scenario");
    json_t *want = json_object_get(g, "prompt");
    if (want == NULL) {
        if (r->status >= 400 && r->status < 500)
            return 2;
        fprintf(stderr,
                "DIFFERENT %s (%s): llama-server refused (%lld: %s), shimmy answered "
                "%ld: %.300s\n",
                tmpl, scenario, h_int(g, "status"), h_str(g, "error"), r->status, r->body);
        return 0;
    }
    assert_true(json_is_string(want));
    if (r->status == 400 && strstr(r->body, "\"param\":\"tools\"") != NULL &&
        json_object_get(scenario_body_of(g), "tools") != NULL &&
        strstr(json_string_value(want), TOOL_MARK) == NULL)
        return 3;
    if (r->status != 200) {
        fprintf(stderr, "DIFFERENT %s (%s): shimmy answered %ld: %.300s\n", tmpl, scenario,
                r->status, r->body);
        return 0;
    }
    json_t *ans = json_loadb(r->body, r->len, 0, NULL);
    json_t *got = json_object_get(ans, "prompt");
    int verdict = 0;
    if (!json_is_string(got))
        fprintf(stderr, "DIFFERENT %s (%s): no \"prompt\" string in shimmy's answer: %.300s\n",
                tmpl, scenario, r->body);
    else
        verdict = same_prompt(tmpl, scenario, json_string_value(want), json_string_length(want),
                              json_string_value(got), json_string_length(got));
    json_decref(ans);
    return verdict;
}

static const tally *the_tally; /* for judge: the scenarios' bodies */

static const json_t *scenario_body(const tally *ty, const char *scenario);

static const json_t *scenario_body_of(const json_t *g) {
    return scenario_body(the_tally, h_str(g, "scenario"));
}

static const json_t *scenario_body(const tally *ty, const char *scenario) {
    for (int i = 0; i < ty->n; i++)
        if (strcmp(ty->names[i], scenario) == 0)
            return ty->bodies[i];
    fail_msg("goldens name scenario \"%s\", which template_requests.json lacks", scenario);
    return NULL;
}

static int scenario_index(const tally *ty, const char *scenario) {
    for (int i = 0; i < ty->n; i++)
        if (strcmp(ty->names[i], scenario) == 0)
            return i;
    return -1;
}

/* Starts shimmy on template path; NULL when it exits during start-up every time. */
static h_server *start_with(h_test *t, const char *path) {
    const char *args[] = {"--model", h_model_path(H_MODEL_FILE), "--chat-template-file", path,
                          NULL};
    for (int i = 0; i < START_TRIES; i++) {
        h_server *s = h_try_start(t, args);
        if (s->pid > 0)
            return s;
    }
    return NULL;
}

/* POSTs golden g's scenario to s and tallies the verdict. */
static void check_one(tally *ty, int port, const json_t *g) {
    const char *tmpl = h_str(g, "template"), *scenario = h_str(g, "scenario");
    char *body = h_dump(scenario_body(ty, scenario));
    h_resp r;
    h_request(port, "POST", "/apply-template", body, strlen(body), REQUEST_TIMEOUT_MS, &r);
    free(body);
    int v = judge(g, &r);
    int k = scenario_index(ty, scenario);
    static const char *const verdicts[] = {"DIFFERENT", "identical", "refused like the reference",
                                           "tools refused (the reference ignores them)"};
    printf("%-55s %s: %s\n", tmpl, scenario, verdicts[v]); /* the per-template table */
    if (v == 1)
        ty->identical[k]++;
    else if (v == 2)
        ty->refused[k]++;
    else if (v == 3)
        ty->no_tools[k]++;
    else
        tally_different(ty, tmpl, scenario);
    h_resp_free(&r);
}

/* Stops t's servers, printing the last one's log when shimmy never started, and frees their
 * slots for the next template (their logs are overwritten then). */
static void stop_servers(h_test *t, bool print_log) {
    if (print_log && t->n_servers > 0)
        h_server_print_log(&t->servers[t->n_servers - 1]);
    for (int i = 0; i < t->n_servers; i++)
        h_server_stop(&t->servers[i], 10000);
    t->n_servers = 0;
}

/* Every golden of template tmpl (the lines from index first on), on one shimmy of its own. */
static void check_template(h_test *t, tally *ty, const json_t *goldens, size_t first) {
    const char *tmpl = h_str(json_array_get(goldens, first), "template");
    char path[4096];
    path_join(path, sizeof path, templates_dir(), tmpl);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "MISSING %s: the goldens list it, %s lacks it\n", tmpl, templates_dir());
        ty->missing++;
        return;
    }
    h_server *s = start_with(t, path);
    for (size_t i = first; i < json_array_size(goldens); i++) {
        const json_t *g = json_array_get(goldens, i);
        if (strcmp(h_str(g, "template"), tmpl) != 0)
            continue;
        if (s != NULL) {
            check_one(ty, s->port, g);
            continue;
        }
        fprintf(stderr, "DIFFERENT %s (%s): shimmy did not start with this template\n", tmpl,
                h_str(g, "scenario"));
        tally_different(ty, tmpl, h_str(g, "scenario"));
    }
    stop_servers(t, s == NULL);
}

static void print_summary(const tally *ty, int n_templates) {
    fprintf(stderr, "templates:");
    for (int i = 0; i < ty->n; i++)
        fprintf(stderr, " %d identical (%s),", ty->identical[i], ty->names[i]);
    for (int i = 0; i < ty->n; i++)
        if (ty->refused[i] > 0)
            fprintf(stderr, " %d refused like the reference (%s),", ty->refused[i], ty->names[i]);
    for (int i = 0; i < ty->n; i++)
        if (ty->no_tools[i] > 0)
            fprintf(stderr, " %d refused tools the reference ignores (%s),", ty->no_tools[i],
                    ty->names[i]);
    fprintf(stderr, " %d different, %d missing; of %d templates\n", ty->different, ty->missing,
            n_templates);
    if (ty->different > 0)
        fprintf(stderr, "different: %s\n", ty->list);
}

static void test_templates(void **state) {
    h_test *t = *state;
    if (access(LIBFAKETIME, R_OK) != 0)
        fail_msg("%s is missing: apt-get install faketime (scripts/test-deps.sh does)",
                 LIBFAKETIME);
    setenv("LD_PRELOAD", LIBFAKETIME, 1);
    /* an ASan build (make test-asan) refuses to start when a preloaded library comes before its
     * runtime; libfaketime replaces only clock functions, none that ASan intercepts */
    const char *asan = getenv("ASAN_OPTIONS");
    char asan_opts[1024];
    snprintf(asan_opts, sizeof asan_opts, "%s%sverify_asan_link_order=0", asan ? asan : "",
             asan && asan[0] ? ":" : "");
    setenv("ASAN_OPTIONS", asan_opts, 1);
    setenv("FAKETIME", FAKE_NOW, 1);
    setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1", 1);
    setenv("TZ", "UTC", 1);
    tally ty;
    memset(&ty, 0, sizeof ty);
    the_tally = &ty;
    json_t *reqs = load_requests(&ty);
    json_t *goldens = load_goldens();
    int n_golden = golden_template_count(goldens);
    int n_folder = folder_template_count(goldens);
    if ((size_t)n_golden * (size_t)ty.n != json_array_size(goldens))
        fail_msg("templates.jsonl: %zu lines for %d templates and %d scenarios: remake it with "
                 "tools/chat_golden.sh",
                 json_array_size(goldens), n_golden, ty.n);
    for (size_t i = 0; i < json_array_size(goldens); i++) {
        const char *tmpl = h_str(json_array_get(goldens, i), "template");
        bool done = false;
        for (size_t j = 0; j < i && !done; j++)
            done = strcmp(h_str(json_array_get(goldens, j), "template"), tmpl) == 0;
        if (!done)
            check_template(t, &ty, goldens, i);
    }
    print_summary(&ty, n_golden);
    if (n_folder != n_golden)
        fail_msg("%s holds %d templates, the goldens %d: remake them with tools/chat_golden.sh",
                 templates_dir(), n_folder, n_golden);
    if (ty.missing > 0)
        fail_msg("%d template(s) the goldens list are missing from %s", ty.missing,
                 templates_dir());
    if (ty.different > 0)
        fail_msg("%d (template, scenario) pair(s) render differently from llama-server",
                 ty.different);
    json_decref(goldens);
    json_decref(reqs);
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_templates, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
