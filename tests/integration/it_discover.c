/* it_discover: model discovery through the real binary: `shimmy list`, `shimmy discover` and
 * `shimmy probe` on a temporary HOME holding fake Hugging Face, Ollama and LM Studio stores
 * (tools/fake_stores.sh); a server that rescans on POST /v1/models/rescan; several models loaded
 * with the least recently used one unloaded past --max-loaded or --max-memory; Ollama's
 * keep_alive. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RUN_MS 60000

static void make_stores(h_test *t) {
    char script[4200];
    snprintf(script, sizeof script, "%s/tools/fake_stores.sh", h_source_dir());
    char models[4200];
    snprintf(models, sizeof models, "%s", h_model_path(H_MODEL_FILE));
    *strrchr(models, '/') = '\0';
    const char *args[] = {t->dir, models, h_tools_dir(), NULL};
    char *out;
    int rc = h_run_exe(t, script, args, RUN_MS, &out);
    if (rc != 0)
        fail_msg("fake_stores.sh: exit %d: %s", rc, out);
    free(out);
}

static void want(const char *out, const char *s) {
    if (strstr(out, s) == NULL)
        fail_msg("\"%s\" missing from:\n%s", s, out);
}

static void test_list_discover_probe(void **state) {
    h_test *t = *state;
    make_stores(t);
    const char *list[] = {"list", NULL};
    char *out;
    setenv("SHIMMY_LOG", "error", 1); /* the table alone: skipped files are warnings */
    assert_int_equal(h_run(t, list, RUN_MS, &out), 0);
    unsetenv("SHIMMY_LOG");
    printf("%s", out);
    want(out, "SOURCE");
    want(out, "ADAPTER");
    want(out, "stories:260k ");
    want(out, "someuser/tiny:q8");
    want(out, "thebloke/stories-260k-gguf/stories260k");
    want(out, "org/split-gguf/stories-split");
    want(out, "pub/stories-lora-gguf/stories260k");
    want(out, "stories260K-lora-F32.gguf");
    assert_null(strstr(out, "mmproj"));
    free(out);

    const char *disc[] = {"discover", NULL};
    assert_int_equal(h_run(t, disc, RUN_MS, &out), 0);
    want(out, "11 models found");
    want(out, "truncated.gguf: truncated");
    want(out, "old-v1.gguf: GGUF v1");
    want(out, "orphan-lora.gguf: a LoRA adapter");
    free(out);

    const char *probe[] = {"probe", "stories:lora", NULL};
    assert_int_equal(h_run(t, probe, RUN_MS, &out), 0);
    want(out, "stories:lora: OK");
    want(out, "load:");
    free(out);
    const char *bad[] = {"probe", "nope", NULL};
    assert_int_equal(h_run(t, bad, RUN_MS, &out), 1);
    want(out, "no model named 'nope'");
    free(out);
    h_pass(t);
}

static json_t *get_json(int port, const char *path) {
    long status;
    char *body;
    assert_int_equal(http_get(port, path, &status, &body), 0);
    assert_int_equal(status, 200);
    json_t *j = h_json(body);
    free(body);
    return j;
}

static bool loaded(int port, const char *name) {
    json_t *ps = get_json(port, "/api/ps");
    bool found = false;
    json_t *models = h_arr(ps, "models"), *m;
    size_t i;
    json_array_foreach(models, i, m) found |= strcmp(h_str(m, "name"), name) == 0;
    json_decref(ps);
    return found;
}

static void generate(int port, const char *model, const char *keep) {
    char body[512];
    snprintf(body, sizeof body,
             "{\"model\":\"%s\",\"prompt\":\"Hi\",\"stream\":false,%s\"options\":"
             "{\"num_predict\":2}}",
             model, keep ? keep : "");
    long status;
    char *resp;
    assert_int_equal(http_post_json(port, "/api/generate", body, &status, &resp), 0);
    if (status != 200)
        fail_msg("generate %s: %ld %s", model, status, resp);
    free(resp);
}

static void test_rescan_lru_keep_alive(void **state) {
    h_test *t = *state;
    make_stores(t);
    const char *args[] = {"--max-loaded", "1", "--threads", "1", NULL};
    h_server *s = h_start(t, args);

    /* LRU: with --max-loaded 1 the second model unloads the first. */
    generate(s->port, "stories:260k", NULL);
    assert_true(loaded(s->port, "stories:260k"));
    generate(s->port, "someuser/tiny:q8", NULL);
    assert_true(loaded(s->port, "someuser/tiny:q8"));
    assert_false(loaded(s->port, "stories:260k"));

    /* keep_alive: 1s then gone; 0 unloads at once. */
    generate(s->port, "stories:260k", "\"keep_alive\":\"1s\",");
    assert_true(loaded(s->port, "stories:260k"));
    int64_t end = h_now_ms() + 5000;
    while (loaded(s->port, "stories:260k") && h_now_ms() < end)
        h_sleep_ms(100);
    assert_false(loaded(s->port, "stories:260k"));
    generate(s->port, "someuser/tiny:q8", "\"keep_alive\":0,");
    assert_false(loaded(s->port, "someuser/tiny:q8"));

    /* A new file appears: POST /v1/models/rescan adds it without a restart. */
    char dir[4200], dst[4300];
    snprintf(dir, sizeof dir, "%s/.lmstudio/models/New/Repo", t->dir);
    assert_int_equal(system((snprintf(dst, sizeof dst, "mkdir -p %s", dir), dst)), 0);
    snprintf(dst, sizeof dst, "%s/fresh.gguf", dir);
    assert_int_equal(symlink(h_model_path(H_MODEL_FILE), dst), 0);
    h_resp r;
    h_request(s->port, "POST", "/v1/models/rescan", "", 0, 0, &r);
    assert_int_equal(r.status, 200);
    json_t *j = h_json(r.body);
    const char *added = json_string_value(json_array_get(h_arr(j, "added"), 0));
    assert_non_null(added);
    assert_string_equal(added, "new/repo/fresh");
    json_decref(j);
    h_resp_free(&r);
    generate(s->port, "new/repo/fresh", NULL);
    h_pass(t);
}

/* --max-memory: two models whose files do not fit together are not loaded together. */
static void test_memory_budget(void **state) {
    h_test *t = *state;
    make_stores(t);
    const char *args[] = {"--max-loaded", "4", "--max-memory", "2M", "--threads", "1", NULL};
    h_server *s = h_start(t, args);
    generate(s->port, "stories:260k", NULL);
    generate(s->port, "thebloke/stories-260k-gguf/stories260k", NULL); /* 1.1 + 1.1 MiB > 2 */
    assert_false(loaded(s->port, "stories:260k"));
    assert_true(loaded(s->port, "thebloke/stories-260k-gguf/stories260k"));
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_discover_probe, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_rescan_lru_keep_alive, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_memory_budget, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
