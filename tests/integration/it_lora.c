/* it_lora: LoRA adapters through the real binary. tools/lora_gen writes an adapter that fits
 * stories260K (every attention and feed-forward matrix); the same greedy prompt then gives a
 * different text with the adapter (--lora, SHIMMY_BASE_GGUF + SHIMMY_LORA_GGUF, and an adapter
 * beside its base), and the base text again without it or at scale 0. A wrong adapter fails the
 * load with llama.cpp's reason. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROMPT "Once upon a time"

static void make_lora(h_test *t, const char *out) {
    char exe[4200];
    snprintf(exe, sizeof exe, "%s/lora_gen", h_tools_dir());
    const char *args[] = {h_model_path(H_MODEL_FILE), out, NULL};
    char *log;
    int rc = h_run_exe(t, exe, args, 60000, &log);
    if (rc != 0)
        fail_msg("lora_gen: exit %d: %s", rc, log);
    free(log);
}

/* Greedy raw completion of PROMPT by model on the server at port. Returns owned text. */
static char *complete(int port, const char *model) {
    char body[512];
    snprintf(body, sizeof body,
             "{\"model\":\"%s\",\"prompt\":\"" PROMPT "\",\"raw\":true,\"stream\":false,"
             "\"options\":{\"temperature\":0,\"num_predict\":24}}",
             model);
    long status;
    char *resp;
    assert_int_equal(http_post_json(port, "/api/generate", body, &status, &resp), 0);
    if (status != 200)
        fail_msg("generate %s: %ld %s", model, status, resp);
    json_t *j = h_json(resp);
    char *text = strdup(h_str(j, "response"));
    json_decref(j);
    free(resp);
    return text;
}

static void test_lora_changes_and_restores(void **state) {
    h_test *t = *state;
    char lora[4200], arg[4400], arg0[4400];
    snprintf(lora, sizeof lora, "%s/stories-lora.gguf", t->dir);
    make_lora(t, lora);
    snprintf(arg, sizeof arg, "stories260k=%s", lora);
    snprintf(arg0, sizeof arg0, "stories260k=%s:0", lora);

    const char *plain[] = {"--model", h_model_path(H_MODEL_FILE), "--threads", "1", NULL};
    h_server *s = h_start(t, plain);
    char *base = complete(s->port, H_MODEL_NAME);
    h_server_stop(s, 10000);

    const char *with[] = {"--model", h_model_path(H_MODEL_FILE), "--lora", arg, "--threads", "1",
                          NULL};
    s = h_start(t, with);
    char *adapted = complete(s->port, H_MODEL_NAME);
    h_server_stop(s, 10000);

    const char *zero[] = {"--model", h_model_path(H_MODEL_FILE), "--lora", arg0, "--threads", "1",
                          NULL};
    s = h_start(t, zero);
    char *scaled0 = complete(s->port, H_MODEL_NAME);
    h_server_stop(s, 10000);

    printf("base:    %s\nadapter: %s\nscale 0: %s\n", base, adapted, scaled0);
    assert_true(strncmp(base, ", there was a little girl named Lily", 36) == 0);
    assert_string_not_equal(adapted, base);
    assert_string_equal(scaled0, base);

    /* Removing the adapter restores the base text. */
    s = h_start(t, plain);
    char *again = complete(s->port, H_MODEL_NAME);
    assert_string_equal(again, base);
    free(base);
    free(adapted);
    free(scaled0);
    free(again);
    h_pass(t);
}

/* SHIMMY_BASE_GGUF is served with SHIMMY_LORA_GGUF; an adapter beside its base is attached. */
static void test_env_and_beside(void **state) {
    h_test *t = *state;
    char dir[4200], base[4300], lora[4300];
    snprintf(dir, sizeof dir, "%s/pair", t->dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(base, sizeof base, "%s/tiny.gguf", dir);
    assert_int_equal(symlink(h_model_path(H_MODEL_FILE), base), 0);
    snprintf(lora, sizeof lora, "%s/tiny-lora.gguf", dir);
    make_lora(t, lora);
    const char *args[] = {"--model-dirs", dir, "--threads", "1", NULL};
    h_server *s = h_start(t, args);
    char *beside = complete(s->port, "tiny");
    h_server_stop(s, 10000);

    setenv("SHIMMY_BASE_GGUF", h_model_path(H_MODEL_FILE), 1);
    setenv("SHIMMY_LORA_GGUF", lora, 1);
    const char *none[] = {"--threads", "1", NULL};
    s = h_start(t, none);
    char *env = complete(s->port, H_MODEL_NAME);
    unsetenv("SHIMMY_BASE_GGUF");
    unsetenv("SHIMMY_LORA_GGUF");
    assert_string_equal(beside, env);
    assert_true(strncmp(env, ", there was a little girl named Lily", 36) != 0);
    free(beside);
    free(env);
    h_pass(t);
}

/* An adapter that does not fit the model is refused at load, with the reason. */
static void test_wrong_adapter(void **state) {
    h_test *t = *state;
    char lora[4200], arg[4400];
    snprintf(lora, sizeof lora, "%s/tiny-lora.gguf", t->dir);
    const char *args0[] = {h_model_path("llama-2-tiny-random.gguf"), lora, NULL};
    char exe[4200], *log;
    snprintf(exe, sizeof exe, "%s/lora_gen", h_tools_dir());
    assert_int_equal(h_run_exe(t, exe, args0, 60000, &log), 0);
    free(log);
    snprintf(arg, sizeof arg, "stories260k=%s", lora);
    const char *args[] = {"serve",       "--model", h_model_path(H_MODEL_FILE),
                          "--lora",      arg,       "--bind",
                          "127.0.0.1:0", NULL};
    int rc = h_run(t, args, 60000, &log);
    if (rc != 1 || strstr(log, "LoRA") == NULL)
        fail_msg("want exit 1 naming the LoRA adapter, got %d: %s", rc, log);
    free(log);
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lora_changes_and_restores, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_env_and_beside, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_adapter, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
