/* it_config: `serve --config FILE` and `shimmy config check` (docs/DEPLOY.md, ADR 0007): a
 * preset's sampling defaults apply where a request is silent (OpenAI and Ollama) and not where it
 * sets its own; a [glob] section applies; the file's server settings apply and a command-line
 * flag beats them; `config check` names the line of a bad key and a bad value; SIGHUP re-reads
 * the presets; an Ollama model's Modelfile layers give defaults on every API. max_tokens is the
 * observable default: the tiny model does not stop by itself within a few tokens of "Once upon a
 * time". */
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

/* h_post_expect of a body built in the call (json_pack), which it then frees. */
static json_t *post_new(int port, const char *path, json_t *body, long want_status) {
    json_t *r = h_post_expect(port, path, body, want_status);
    json_decref(body);
    return r;
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
    http_post_json(s->port, "/v1/completions",
                   "{\"model\":\"" H_MODEL_NAME "\",\"prompt\":\"Once\",\"max_tokens\":2}", &status,
                   &body);
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
              "max-loaded = 2\n"
              "gpu-layers = lots\n"
              "[qwen*]\n"
              "mmproj = mmproj-f16.gguf\n",
              bad, sizeof bad);
    write_cfg(t, "good.ini",
              "parallel = 2\n"
              "ctx = 1024\n"
              "cache-ram = 512\n"
              "[qwen*]\n"
              "top_p = 0.9\n"
              "gpu-layers = all\n"
              "stop = \"###\"\n"
              "[" H_MODEL_NAME "]\n"
              "mmproj = mmproj-f16.gguf\n",
              good, sizeof good);
    char *out = NULL;
    const char *args_bad[] = {"config", "check", bad, NULL};
    assert_int_equal(h_run(t, args_bad, 10000, &out), 2);
    char want[4300];
    const char *lines[] = {":3:", ":5:", ":6:", ":7:", ":9:"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        snprintf(want, sizeof want, "%s%s", bad, lines[i]);
        if (strstr(out, want) == NULL)
            fail_msg("no '%s' in:\n%s", want, out);
    }
    assert_non_null(strstr(out, "bogus-key"));
    assert_non_null(strstr(out, "hot"));
    assert_non_null(strstr(out, "mmproj needs a model's name, not the glob [qwen*]"));
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

/* Lines of the per-model keys that `config check` refuses: an alias in a glob section, one
 * name claimed by two models, a ctx out of range, a bad keep-alive, an alias in [*]. */
static void test_config_check_model_keys(void **state) {
    h_test *t = *state;
    char bad[4200], good[4200];
    write_cfg(t, "bad.ini",
              "[stories*]\n"
              "alias = tiny\n"
              "[a]\n"
              "alias = x, y\n"
              "[b]\n"
              "alias = x\n"
              "ctx = 8\n"
              "keep-alive = soon\n"
              "parallel = 0\n"
              "[*]\n"
              "alias = z\n",
              bad, sizeof bad);
    write_cfg(t, "good.ini",
              "keep-alive = 5m\n"
              "[stories260k]\n"
              "alias = tiny, small\n"
              "ctx = 512\n"
              "parallel = 2\n"
              "keep-alive = 0\n"
              "system = You are a pirate.\n"
              "system = Answer in one line.\n"
              "[qwen*]\n"
              "ctx = 8192\n",
              good, sizeof good);
    char *out = NULL;
    const char *args_bad[] = {"config", "check", bad, NULL};
    assert_int_equal(h_run(t, args_bad, 10000, &out), 2);
    char want[4300];
    const char *lines[] = {":2:", ":6:", ":7:", ":8:", ":9:", ":11:"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        snprintf(want, sizeof want, "%s%s", bad, lines[i]);
        if (strstr(out, want) == NULL)
            fail_msg("no '%s' in:\n%s", want, out);
    }
    snprintf(want, sizeof want, "%s:4:", bad);
    if (strstr(out, want) != NULL)
        fail_msg("a good line reported:\n%s", out);
    assert_non_null(strstr(out, "already model 'a''s"));
    free(out);
    const char *args_good[] = {"config", "check", good, NULL};
    int rc = h_run(t, args_good, 10000, &out);
    if (rc != 0)
        fail_msg("config check of a good file: %d\n%s", rc, out);
    free(out);
    h_pass(t);
}

/* The loaded model's slots and context per slot, from /health. */
static void loaded_shape(int port, long long *slots, long long *n_ctx) {
    json_t *h = h_health(port);
    json_t *m = h_get(h, "models.0");
    assert_non_null(m);
    assert_true(json_is_true(json_object_get(m, "loaded")));
    *slots = h_int(m, "slots");
    *n_ctx = h_int(m, "n_ctx");
    json_decref(h);
}

/* ctx and parallel per model: a glob section's apply at load; a command-line MODEL= flag beats
 * the file's; a ctx above the trained context (2048 for stories260K) is cut to it, with a log
 * line. */
static void test_model_ctx_parallel(void **state) {
    h_test *t = *state;
    char cfg[4200];
    long long slots, n_ctx;
    write_cfg(t, "config.ini",
              "parallel = 4\n"
              "[stories*]\n"
              "ctx = 256\n"
              "parallel = 2\n",
              cfg, sizeof cfg);
    h_server *s = start_with(t, cfg);
    loaded_shape(s->port, &slots, &n_ctx);
    assert_int_equal(slots, 2);
    assert_int_equal(n_ctx, 256);
    assert_int_equal(h_server_stop(s, 10000), 0);

    write_cfg(t, "big.ini", "[" H_MODEL_NAME "]\nctx = 100000\nparallel = 2\n", cfg, sizeof cfg);
    const char *extra[] = {"--config", cfg, "--parallel", H_MODEL_NAME "=3", NULL};
    s = h_start_default(t, extra);
    loaded_shape(s->port, &slots, &n_ctx);
    assert_int_equal(slots, 3);
    assert_int_equal(n_ctx, 2048);
    char *log = h_server_read_log(s);
    if (strstr(log, "ctx 100000 is above its trained context (2048)") == NULL)
        fail_msg("no clamp line in:\n%s", log);
    free(log);
    h_pass(t);
}

/* GET path, parsed (owned); fails unless 200. */
static json_t *get_json(int port, const char *path) {
    long status;
    char *body = NULL;
    assert_int_equal(http_get(port, path, &status, &body), 0);
    if (status != 200)
        fail_msg("GET %s: %ld %s", path, status, body);
    json_t *j = h_json(body);
    free(body);
    return j;
}

static long post_status(int port, const char *path, json_t *j) {
    long status;
    char *body = NULL, *text = h_dump(j);
    http_post_json(port, path, text, &status, &body);
    free(text);
    free(body);
    json_decref(j);
    return status;
}

/* Aliases: served on every API, listed as llama-server (/v1/models "aliases") and Ollama (an
 * /api/tags entry per name, with the model's digest) list them, with their model's presets. */
static void test_aliases(void **state) {
    h_test *t = *state;
    char cfg[4200];
    write_cfg(t, "config.ini",
              "temperature = 0\n"
              "[" H_MODEL_NAME "]\n"
              "alias = tiny, small\n"
              "max-tokens = 3\n",
              cfg, sizeof cfg);
    h_server *s = start_with(t, cfg);
    json_t *m = get_json(s->port, "/v1/models");
    char *aliases = h_dump(h_get(m, "data.0.aliases"));
    assert_string_equal(aliases, "[\"tiny\",\"small\"]");
    free(aliases);
    assert_null(h_get(m, "data.1"));
    json_decref(m);
    m = get_json(s->port, "/v1/models/tiny");
    assert_string_equal(h_str(m, "id"), H_MODEL_NAME);
    json_decref(m);
    m = get_json(s->port, "/api/tags");
    const char *digest = h_str(h_get(m, "models.0"), "digest");
    assert_string_equal(h_str(h_get(m, "models.1"), "name"), "tiny");
    assert_string_equal(h_str(h_get(m, "models.2"), "name"), "small");
    assert_string_equal(h_str(h_get(m, "models.2"), "digest"), digest);
    json_decref(m);
    /* the model's presets through its alias */
    assert_int_equal(oai_tokens(s->port, false, -1, "tiny"), 3);
    assert_int_equal(oai_tokens(s->port, true, -1, "small:latest"), 3);
    json_t *j = post_new(s->port, "/api/chat",
                         json_pack("{s:s,s:b,s:[{s:s,s:s}]}", "model", "small", "stream", 0,
                                   "messages", "role", "user", "content", "Once"),
                         200);
    assert_int_equal(h_int(j, "eval_count"), 3);
    json_decref(j);
    j = post_new(s->port, "/v1/messages",
                 json_pack("{s:s,s:i,s:[{s:s,s:s}]}", "model", "tiny", "max_tokens", 2, "messages",
                           "role", "user", "content", "Once"),
                 200);
    assert_string_equal(h_str(j, "model"), "tiny");
    json_decref(j);
    j = post_new(s->port, "/v1/responses", json_pack("{s:s,s:s}", "model", "tiny", "input", "Once"),
                 200);
    assert_int_equal(h_int(h_obj(j, "usage"), "output_tokens"), 3);
    json_decref(j);
    assert_int_equal(post_status(s->port, "/v1/chat/completions",
                                 json_pack("{s:s,s:[{s:s,s:s}]}", "model", "huge", "messages",
                                           "role", "user", "content", "Once")),
                     404);
    h_pass(t);
}

/* Prompt tokens of one request on each API, with the request's system prompt (NULL = none). */
static long long prompt_tokens(int port, const char *api, const char *system) {
    json_t *j, *r;
    long long n;
    json_t *msgs = json_pack("[{s:s,s:s}]", "role", "user", "content", "Once upon a time");
    if (strcmp(api, "anthropic") == 0) {
        j = json_pack("{s:s,s:i,s:o}", "model", H_MODEL_NAME, "max_tokens", 1, "messages", msgs);
        if (system != NULL)
            json_object_set_new(j, "system", json_string(system));
        r = h_post_expect(port, "/v1/messages", j, 200);
        n = h_int(h_obj(r, "usage"), "input_tokens") +
            h_int(h_obj(r, "usage"), "cache_read_input_tokens");
    } else if (strcmp(api, "responses") == 0) {
        j = json_pack("{s:s,s:i,s:s}", "model", H_MODEL_NAME, "max_output_tokens", 1, "input",
                      "Once upon a time");
        if (system != NULL)
            json_object_set_new(j, "instructions", json_string(system));
        json_decref(msgs);
        r = h_post_expect(port, "/v1/responses", j, 200);
        n = h_int(h_obj(r, "usage"), "input_tokens");
    } else {
        bool oll = strcmp(api, "ollama") == 0;
        if (system != NULL)
            json_array_insert_new(msgs, 0,
                                  json_pack("{s:s,s:s}", "role", "system", "content", system));
        j = oll ? json_pack("{s:s,s:b,s:{s:i},s:o}", "model", H_MODEL_NAME, "stream", 0, "options",
                            "num_predict", 1, "messages", msgs)
                : json_pack("{s:s,s:i,s:o}", "model", H_MODEL_NAME, "max_tokens", 1, "messages",
                            msgs);
        r = h_post_expect(port, oll ? "/api/chat" : "/v1/chat/completions", j, 200);
        n = oll ? h_int(r, "prompt_eval_count") : h_int(h_obj(r, "usage"), "prompt_tokens");
    }
    json_decref(j);
    json_decref(r);
    return n;
}

/* A section's system prompt is the first message when the request has none (Ollama's rule for
 * a Modelfile's SYSTEM), on every API: the prompt is then as long as with the same system
 * message sent by the request; a request's own system message replaces it (a shorter one makes
 * a shorter prompt). */
static void test_system_prompt(void **state) {
    h_test *t = *state;
    char cfg[4200];
    write_cfg(t, "config.ini",
              "[" H_MODEL_NAME "]\n"
              "system = You are a pirate who tells long stories.\n",
              cfg, sizeof cfg);
    h_server *s = start_with(t, cfg);
    const char *apis[] = {"openai", "ollama", "anthropic", "responses"};
    for (size_t i = 0; i < sizeof apis / sizeof apis[0]; i++) {
        long long silent = prompt_tokens(s->port, apis[i], NULL);
        long long same =
            prompt_tokens(s->port, apis[i], "You are a pirate who tells long stories.");
        long long own = prompt_tokens(s->port, apis[i], "Be brief.");
        if (silent != same || own >= same)
            fail_msg("%s: prompt tokens: silent %lld, the preset's text sent %lld, a short "
                     "system %lld",
                     apis[i], silent, same, own);
    }
    h_pass(t);
}

/* Anthropic and Responses take the sampling presets too: a preset stop string ends an
 * Anthropic message (stop_sequence), a request's stop_sequences replace it; a preset
 * max-tokens bounds a Responses answer unless max_output_tokens is given. Greedy text of the
 * tiny model with no system prompt: "\"Here?\" Asked Jack." */
static void test_presets_anthropic_responses(void **state) {
    h_test *t = *state;
    char cfg[4200];
    write_cfg(t, "config.ini",
              "temperature = 0\n"
              "[" H_MODEL_NAME "]\n"
              "stop = Jack\n"
              "max-tokens = 3\n",
              cfg, sizeof cfg);
    h_server *s = start_with(t, cfg);
    json_t *j = post_new(s->port, "/v1/messages",
                         json_pack("{s:s,s:i,s:[{s:s,s:s}]}", "model", H_MODEL_NAME, "max_tokens",
                                   20, "messages", "role", "user", "content", "Once upon a time"),
                         200);
    assert_string_equal(h_str(j, "stop_reason"), "stop_sequence");
    assert_string_equal(h_str(j, "stop_sequence"), "Jack");
    json_decref(j);
    j = post_new(s->port, "/v1/messages",
                 json_pack("{s:s,s:i,s:[s],s:[{s:s,s:s}]}", "model", H_MODEL_NAME, "max_tokens", 20,
                           "stop_sequences", "zzz", "messages", "role", "user", "content",
                           "Once upon a time"),
                 200);
    assert_string_equal(h_str(j, "stop_reason"), "max_tokens");
    json_decref(j);
    j = post_new(s->port, "/v1/responses",
                 json_pack("{s:s,s:s}", "model", H_MODEL_NAME, "input", "Once upon a time"), 200);
    assert_int_equal(h_int(h_obj(j, "usage"), "output_tokens"), 3);
    json_decref(j);
    j = post_new(s->port, "/v1/responses",
                 json_pack("{s:s,s:i,s:s}", "model", H_MODEL_NAME, "max_output_tokens", 5, "input",
                           "Once upon a time"),
                 200);
    assert_int_equal(h_int(h_obj(j, "usage"), "output_tokens"), 5);
    json_decref(j);
    h_pass(t);
}

/* Whether /api/ps lists the model. */
static bool ps_loaded(int port) {
    json_t *j = get_json(port, "/api/ps");
    bool loaded = h_get(j, "models.0") != NULL;
    json_decref(j);
    return loaded;
}

/* keep-alive per model: a section's 0 unloads the model after each request that gives none; a
 * request's own keep_alive wins. */
static void test_model_keep_alive(void **state) {
    h_test *t = *state;
    char cfg[4200];
    write_cfg(t, "config.ini", "keep-alive = 1h\n[stories*]\nkeep-alive = 0\n", cfg, sizeof cfg);
    h_server *s = start_with(t, cfg);
    assert_int_equal(oai_tokens(s->port, false, 2, NULL), 2);
    int64_t deadline = h_now_ms() + 10000;
    while (ps_loaded(s->port)) {
        assert_true(h_now_ms() < deadline);
        h_sleep_ms(20);
    }
    json_t *j =
        post_new(s->port, "/api/generate",
                 json_pack("{s:s,s:s,s:b,s:s,s:{s:i}}", "model", H_MODEL_NAME, "prompt", "Once",
                           "stream", 0, "keep_alive", "1h", "options", "num_predict", 2),
                 200);
    json_decref(j);
    assert_true(ps_loaded(s->port));
    h_pass(t);
}

/* Two Ollama-store copies of the test model in t's HOME: plain:latest with a params layer (stop
 * "Jack", num_predict 3, temperature 0) and sys:latest with a system layer. */
static void modelfile_store(h_test *t) {
    static const char script[] =
        "set -e; home=$1; m=$2\n"
        "om=$home/.ollama/models; lib=$om/manifests/registry.ollama.ai/library\n"
        "mkdir -p $om/blobs $lib/plain $lib/sys\n"
        "hm=$(sha256sum $m | cut -d' ' -f1); cp $m $om/blobs/sha256-$hm\n"
        "printf '{\"stop\":[\"Jack\"],\"num_predict\":3,\"temperature\":0}' > $home/p\n"
        "printf 'You are a pirate who tells long stories.' > $home/s\n"
        "hp=$(sha256sum $home/p | cut -d' ' -f1); mv $home/p $om/blobs/sha256-$hp\n"
        "hs=$(sha256sum $home/s | cut -d' ' -f1); mv $home/s $om/blobs/sha256-$hs\n"
        "layer() { printf '{\"mediaType\":\"application/vnd.ollama.image.%s\","
        "\"digest\":\"sha256:%s\"}' $1 $2; }\n"
        "printf '{\"schemaVersion\":2,\"layers\":[%s,%s]}' \"$(layer model $hm)\" "
        "\"$(layer params $hp)\" > $lib/plain/latest\n"
        "printf '{\"schemaVersion\":2,\"layers\":[%s,%s]}' \"$(layer model $hm)\" "
        "\"$(layer system $hs)\" > $lib/sys/latest\n";
    char *out;
    const char *args[] = {"-c", script, "sh", t->dir, h_model_path(H_MODEL_FILE), NULL};
    int rc = h_run_exe(t, "/bin/sh", args, 20000, &out);
    if (rc != 0)
        fail_msg("Ollama store: exit %d: %s", rc, out);
    free(out);
}

/* An Ollama model's Modelfile (its params and system layers) gives the defaults on every API,
 * as in Ollama, under the request's own fields: the stop string "Jack" ends an OpenAI chat and a
 * Responses answer, num_predict bounds an OpenAI completion that gives no max_tokens, a request's
 * own stop and max_tokens replace them, and the SYSTEM layer is the first message of an OpenAI
 * chat that has none (its prompt is as long as with the same system message sent). */
static void test_modelfile_every_api(void **state) {
    h_test *t = *state;
    modelfile_store(t);
    const char *args[] = {NULL};
    h_server *s = h_start(t, args);
    json_t *j = post_new(s->port, "/v1/chat/completions",
                         json_pack("{s:s,s:i,s:[{s:s,s:s}]}", "model", "plain", "max_tokens", 20,
                                   "messages", "role", "user", "content", "Once upon a time"),
                         200);
    assert_string_equal(json_string_value(h_get(j, "choices.0.finish_reason")), "stop");
    assert_null(strstr(json_string_value(h_get(j, "choices.0.message.content")), "Jack"));
    json_decref(j);
    j = post_new(s->port, "/v1/chat/completions",
                 json_pack("{s:s,s:i,s:s,s:[{s:s,s:s}]}", "model", "plain", "max_tokens", 20,
                           "stop", "zzz", "messages", "role", "user", "content",
                           "Once upon a time"),
                 200);
    assert_string_equal(json_string_value(h_get(j, "choices.0.finish_reason")), "length");
    json_decref(j);
    j = post_new(s->port, "/v1/completions",
                 json_pack("{s:s,s:s}", "model", "plain", "prompt", "Once upon a time"), 200);
    assert_int_equal(h_int(h_obj(j, "usage"), "completion_tokens"), 3);
    json_decref(j);
    j = post_new(s->port, "/v1/responses",
                 json_pack("{s:s,s:i,s:s}", "model", "plain", "max_output_tokens", 20, "input",
                           "Once upon a time"),
                 200);
    assert_string_equal(h_str(j, "status"), "completed");
    assert_null(strstr(json_string_value(h_get(j, "output.0.content.0.text")), "Jack"));
    json_decref(j);
    long long silent = 0, same = 0;
    for (int i = 0; i < 2; i++) {
        json_t *msgs = json_pack("[{s:s,s:s}]", "role", "user", "content", "Hi");
        if (i == 1)
            json_array_insert_new(msgs, 0,
                                  json_pack("{s:s,s:s}", "role", "system", "content",
                                            "You are a pirate who tells long stories."));
        j = post_new(s->port, "/v1/chat/completions",
                     json_pack("{s:s,s:i,s:o}", "model", "sys", "max_tokens", 1, "messages", msgs),
                     200);
        *(i == 0 ? &silent : &same) = h_int(h_obj(j, "usage"), "prompt_tokens");
        json_decref(j);
    }
    if (silent != same)
        fail_msg("prompt tokens: with the Modelfile's SYSTEM %lld, the same text sent %lld", silent,
                 same);
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
        cmocka_unit_test_setup_teardown(test_config_check_model_keys, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_model_ctx_parallel, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_aliases, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_system_prompt, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_presets_anthropic_responses, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_model_keep_alive, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_sighup_rereads_presets, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_modelfile_every_api, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
