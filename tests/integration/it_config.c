/* it_config: `serve --config FILE` and `shimmy config check` (docs/DEPLOY.md, ADR 0007): a
 * preset's sampling defaults apply where a request is silent (OpenAI and Ollama) and not where it
 * sets its own; a [glob] section applies; the file's server settings apply and a command-line
 * flag beats them; `config check` names the line of a bad key and a bad value; SIGHUP re-reads
 * the presets. max_tokens is the observable default: the tiny model does not stop by itself
 * within a few tokens of "Once upon a time". */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* Writes text to dir/name through a rename, so that a reader never sees half a file. */
static void write_cfg(h_test *t, const char *name, const char *text, char *path, size_t len) {
    char tmp[4300];
    snprintf(path, len, "%s/%s", t->dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0);
}

static h_server *start_with(h_test *t, const char *cfg) {
    const char *extra[] = {"--config", cfg, NULL};
    return h_start_default(t, extra);
}

/* completion_tokens of a /v1/completions (chat = false) or /v1/chat/completions request;
 * max_tokens < 0 = the request does not set it. */
static long long oai_tokens(int port, bool chat, int max_tokens, const char *model) {
    json_t *j = chat ? h_chat_req("Once upon a time", max_tokens)
                     : h_completion_req("Once upon a time", max_tokens);
    if (max_tokens < 0)
        json_object_del(j, "max_tokens");
    if (model != NULL)
        json_object_set_new(j, "model", json_string(model));
    json_t *r = h_post_expect(port, chat ? "/v1/chat/completions" : "/v1/completions", j, 200);
    long long n = h_int(h_obj(r, "usage"), "completion_tokens");
    json_decref(j);
    json_decref(r);
    return n;
}

/* eval_count of a non-streamed Ollama /api/generate; num_predict < 0 = not set. */
static long long ollama_tokens(int port, int num_predict) {
    json_t *j = json_pack("{s:s, s:s, s:b, s:{s:i}}", "model", H_MODEL_NAME, "prompt",
                          "Once upon a time", "stream", 0, "options", "temperature", 0);
    if (num_predict >= 0)
        json_object_set_new(h_obj(j, "options"), "num_predict", json_integer(num_predict));
    json_t *r = h_post_expect(port, "/api/generate", j, 200);
    long long n = h_int(r, "eval_count");
    json_decref(j);
    json_decref(r);
    return n;
}

static void test_preset_defaults(void **state) {
    h_test *t = *state;
    char cfg[4200];
    write_cfg(t, "config.ini",
              "[*]\n"
              "parallel = 1\n"
              "temperature = 0\n"
              "\n"
              "[" H_MODEL_NAME "]\n"
              "max-tokens = 3\n",
              cfg, sizeof cfg);
    h_server *s = start_with(t, cfg);
    assert_int_equal(oai_tokens(s->port, false, -1, NULL), 3); /* silent: the preset */
    assert_int_equal(oai_tokens(s->port, false, 6, NULL), 6);  /* its own wins */
    assert_int_equal(oai_tokens(s->port, true, -1, NULL), 3);
    assert_int_equal(oai_tokens(s->port, true, 5, NULL), 5);
    assert_int_equal(ollama_tokens(s->port, -1), 3);
    assert_int_equal(ollama_tokens(s->port, 5), 5);
    h_pass(t);
}

static void test_glob_section(void **state) {
    h_test *t = *state;
    char cfg[4200];
    write_cfg(t, "config.ini",
              "[stories*]\n"
              "max_tokens = 4\n"
              "gpu-backend = cpu\n"
              "[qwen*]\n"
              "max-tokens = 9\n",
              cfg, sizeof cfg);
    h_server *s = start_with(t, cfg);
    assert_int_equal(oai_tokens(s->port, false, -1, NULL), 4);
    assert_int_equal(ollama_tokens(s->port, -1), 4);
    h_pass(t);
}

/* The file's api-key applies (a server setting from [*]); its bind loses to the harness's
 * --bind (port 1 would not even start). */
static void test_flags_beat_file(void **state) {
    h_test *t = *state;
    char cfg[4200];
    write_cfg(t, "config.ini",
              "bind = 127.0.0.1:1\n"
              "api-key = file-key\n",
              cfg, sizeof cfg);
    h_server *s = start_with(t, cfg);
    long status;
    char *body = NULL;
    http_post_json(s->port, "/v1/completions", "{\"model\":\"" H_MODEL_NAME
                   "\",\"prompt\":\"Once\",\"max_tokens\":2}", &status, &body);
    assert_int_equal(status, 401);
    free(body);
    h_pass(t);
}

static void test_config_check(void **state) {
    h_test *t = *state;
    char bad[4200], good[4200];
    write_cfg(t, "bad.ini",
              "# presets\n"
              "[*]\n"
              "bogus-key = 1\n"
              "[" H_MODEL_NAME "]\n"
              "temperature = hot\n"
              "parallel = 2\n"
              "gpu-layers = lots\n",
              bad, sizeof bad);
    write_cfg(t, "good.ini",
              "parallel = 2\n"
              "ctx = 1024\n"
              "cache-ram = 512\n"
              "[qwen*]\n"
              "top_p = 0.9\n"
              "gpu-layers = all\n"
              "stop = \"###\"\n",
              good, sizeof good);
    char *out = NULL;
    const char *args_bad[] = {"config", "check", bad, NULL};
    assert_int_equal(h_run(t, args_bad, 10000, &out), 2);
    char want[4300];
    const char *lines[] = {":3:", ":5:", ":6:", ":7:"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        snprintf(want, sizeof want, "%s%s", bad, lines[i]);
        if (strstr(out, want) == NULL)
            fail_msg("no '%s' in:\n%s", want, out);
    }
    assert_non_null(strstr(out, "bogus-key"));
    assert_non_null(strstr(out, "hot"));
    free(out);
    const char *args_good[] = {"config", "check", good, NULL};
    int rc = h_run(t, args_good, 10000, &out);
    if (rc != 0)
        fail_msg("config check of a good file: %d\n%s", rc, out);
    free(out);
    /* serve refuses the bad file, naming the line */
    const char *serve_bad[] = {"serve", "--config", bad, "--bind", "127.0.0.1:0", NULL};
    assert_int_equal(h_run(t, serve_bad, 10000, &out), 2);
    snprintf(want, sizeof want, "%s:3:", bad);
    assert_non_null(strstr(out, want));
    free(out);
    h_pass(t);
}

static void test_sighup_rereads_presets(void **state) {
    h_test *t = *state;
    char cfg[4200];
    write_cfg(t, "config.ini", "[" H_MODEL_NAME "]\nmax-tokens = 3\n", cfg, sizeof cfg);
    h_server *s = start_with(t, cfg);
    assert_int_equal(oai_tokens(s->port, false, -1, NULL), 3);
    write_cfg(t, "config.ini", "[" H_MODEL_NAME "]\nmax-tokens = 5\n", cfg, sizeof cfg);
    kill(s->pid, SIGHUP);
    int64_t deadline = h_now_ms() + 15000;
    while (oai_tokens(s->port, false, -1, NULL) != 5) {
        assert_true(h_now_ms() < deadline);
        h_sleep_ms(50);
    }
    /* a bad value keeps the presets that were */
    write_cfg(t, "config.ini", "[" H_MODEL_NAME "]\nmax-tokens = many\n", cfg, sizeof cfg);
    kill(s->pid, SIGHUP);
    deadline = h_now_ms() + 15000;
    char *log = NULL;
    for (;;) {
        log = h_server_read_log(s);
        if (strstr(log, "keeping the previous presets") != NULL)
            break;
        free(log);
        assert_true(h_now_ms() < deadline);
        h_sleep_ms(50);
    }
    free(log);
    assert_int_equal(oai_tokens(s->port, false, -1, NULL), 5);
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_preset_defaults, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_glob_section, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_flags_beat_file, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_config_check, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_sighup_rereads_presets, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
