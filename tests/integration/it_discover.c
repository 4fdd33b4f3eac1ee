/* it_discover: model discovery through the real binary: `shimmy list`, `shimmy discover` and
 * `shimmy probe` on a temporary HOME holding fake Hugging Face, Ollama and LM Studio stores
 * (tools/fake_stores.sh); a server that rescans on POST /v1/models/rescan; several models loaded
 * with the least recently used one unloaded past --max-loaded or --max-memory; Ollama's
 * keep_alive; MLX model folders listed with why they are not served, and refused with 501;
 * projectors paired with models shown by `shimmy list`, /api/tags, /api/show and
 * /v1/models/{id} (the capabilities only when engine_supports_media()), set by a --config
 * model section, and a bad --mmproj refused at start-up; the real vision fixture found in an HF
 * snapshot, an LM Studio repo and an Ollama manifest answers an image request in each. */
#include "harness.h"

#include "engine/engine.h"

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
    want(out, "MMPROJ");
    want(out, "vision+audio");          /* the LM Studio model's projector */
    assert_null(strstr(out, "mmproj")); /* projector files are not models */
    free(out);

    const char *disc[] = {"discover", NULL};
    assert_int_equal(h_run(t, disc, RUN_MS, &out), 0);
    want(out, "13 models found");
    want(out, "mmproj-tiny-f16.gguf: a multimodal projector (mmproj), not a model: paired with "
              "'org/tiny-vision-gguf/tiny-q8'");
    want(out, "truncated.gguf: truncated");
    want(out, "old-v1.gguf: GGUF v1");
    want(out, "orphan-lora.gguf: a LoRA adapter");
    free(out);

    /* --json: the pairing in both reports */
    const char *disc_json[] = {"discover", "--json", NULL};
    assert_int_equal(h_run(t, disc_json, RUN_MS, &out), 0);
    json_t *j = h_json(strchr(out, '{')), *m;
    size_t i;
    int paired = 0;
    json_array_foreach(h_arr(j, "models"), i, m) {
        if (strcmp(h_str(m, "name"), "lmstudio-community/tiny-gguf/tiny-random-f16") == 0) {
            want(h_str(m, "mmproj"), "/Tiny-GGUF/mmproj-Tiny-F16.gguf");
            assert_true(json_is_true(json_object_get(m, "mmproj_vision")));
            assert_true(json_is_true(json_object_get(m, "mmproj_audio")));
        }
        paired += h_str(m, "mmproj")[0] != '\0';
    }
    assert_int_equal(paired, 4); /* HF twice, LM Studio, Ollama's layer */
    json_decref(j);
    free(out);
    const char *list_json[] = {"list", "--json", NULL};
    assert_int_equal(h_run(t, list_json, RUN_MS, &out), 0);
    j = h_json(strchr(out, '['));
    json_array_foreach(j, i, m) {
        if (strcmp(h_str(m, "name"), "vision:tiny") == 0) {
            want(h_str(m, "mmproj"), "/blobs/sha256-");
            assert_true(json_is_true(json_object_get(m, "mmproj_vision")));
            assert_false(json_is_true(json_object_get(m, "mmproj_audio")));
        } else if (strcmp(h_str(m, "name"), "stories:260k") == 0) {
            assert_true(json_is_null(json_object_get(m, "mmproj")));
        }
    }
    json_decref(j);
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

    /* The same through the CLI: shimmy discover --server asks the running server to rescan. */
    snprintf(dst, sizeof dst, "%s/fresh2.gguf",
             dir); /* another file: the same one is deduplicated */
    assert_int_equal(symlink(h_model_path("llama-2-tiny-random.gguf"), dst), 0);
    char hostport[64];
    snprintf(hostport, sizeof hostport, "127.0.0.1:%d", s->port);
    const char *cli[] = {"discover", "--server", hostport, NULL};
    char *out;
    int rc = h_run(t, cli, 30000, &out);
    if (rc != 0 || strstr(out, "\"new/repo/fresh2\"") == NULL)
        fail_msg("discover --server: exit %d:\n%s", rc, out);
    free(out);
    const char *gone[] = {"discover", "--server", "127.0.0.1:1", NULL};
    rc = h_run(t, gone, 30000, &out);
    if (rc != 1 || strstr(out, "127.0.0.1:1") == NULL)
        fail_msg("discover --server to a closed port: exit %d:\n%s", rc, out);
    free(out);
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

/* ---- MLX folders: listed, never served ---- */

#define MLX_STATUS "not served: MLX engine not available in this build"
#define MLX_REASON                                                                                 \
    "the MLX engine is not available in this build; shimmy serves GGUF models "                    \
    "through llama.cpp"

/* A --model-dirs folder holding one MLX model folder, Phi-MLX. */
static void make_mlx_dir(h_test *t, char *dirs, size_t len) {
    char cmd[13000];
    snprintf(dirs, len, "%s/mlx-dir", t->dir);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/Phi-MLX && echo '{}' > %s/Phi-MLX/config.json && "
             ": > %s/Phi-MLX/weights.safetensors",
             dirs, dirs, dirs);
    assert_int_equal(system(cmd), 0);
}

static bool has_model(const json_t *arr, const char *key, const char *name) {
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m) if (strcmp(h_str(m, key), name) == 0) return true;
    return false;
}

static void test_mlx_list_discover(void **state) {
    h_test *t = *state;
    make_stores(t);
    char dirs[4200];
    make_mlx_dir(t, dirs, sizeof dirs);
    const char *list[] = {"list", "--model-dirs", dirs, NULL};
    char *out;
    setenv("SHIMMY_LOG", "error", 1);
    assert_int_equal(h_run(t, list, RUN_MS, &out), 0);
    printf("%s", out);
    want(out, "stories:260k ");
    want(out, "mlx-community/tiny-4bit: " MLX_STATUS);
    want(out, "mlx-community/qwen-tiny-mlx: " MLX_STATUS);
    want(out, "phi-mlx: " MLX_STATUS);
    want(out, "MLX-4bit");
    free(out);

    const char *list_json[] = {"list", "--json", "--model-dirs", dirs, NULL};
    assert_int_equal(h_run(t, list_json, RUN_MS, &out), 0);
    json_t *j = h_json(strchr(out, '['));
    size_t i;
    json_t *m;
    int unserved = 0;
    json_array_foreach(j, i, m) {
        if (strcmp(h_str(m, "format"), "mlx") != 0)
            continue;
        unserved++;
        assert_false(json_is_true(json_object_get(m, "served")));
        assert_string_equal(h_str(m, "status"), MLX_STATUS);
    }
    assert_int_equal(unserved, 3);
    json_decref(j);
    free(out);

    const char *disc[] = {"discover", "--json", NULL};
    assert_int_equal(h_run(t, disc, RUN_MS, &out), 0);
    unsetenv("SHIMMY_LOG");
    j = h_json(strchr(out, '{'));
    json_t *un = h_arr(j, "unserved");
    assert_int_equal(json_array_size(un), 2);
    assert_true(has_model(un, "name", "mlx-community/tiny-4bit"));
    assert_true(has_model(un, "name", "mlx-community/qwen-tiny-mlx"));
    assert_false(has_model(h_arr(j, "models"), "name", "mlx-community/tiny-4bit"));
    json_array_foreach(un, i, m) {
        assert_string_equal(h_str(m, "status"), MLX_STATUS);
        assert_string_equal(h_str(m, "format"), "mlx");
    }
    assert_string_equal(h_str(json_array_get(un, 1), "source"), "hf");
    assert_int_equal(h_int(json_array_get(un, 1), "size_bytes"), 4096);
    json_decref(j);
    free(out);

    const char *text[] = {"discover", NULL};
    assert_int_equal(h_run(t, text, RUN_MS, &out), 0);
    want(out, "13 models found");
    want(out, "2 MLX models found, not served:");
    want(out, "mlx-community/tiny-4bit (hf)");
    want(out, MLX_STATUS);
    free(out);

    const char *probe[] = {"probe", "mlx-community/tiny-4bit", NULL};
    assert_int_equal(h_run(t, probe, RUN_MS, &out), 1);
    want(out, "is an MLX model");
    free(out);
    h_pass(t);
}

static void test_mlx_not_served(void **state) {
    h_test *t = *state;
    make_stores(t);
    char dirs[4200];
    make_mlx_dir(t, dirs, sizeof dirs);
    const char *args[] = {"--threads", "1", "--model-dirs", dirs, NULL};
    h_server *s = h_start(t, args);

    /* The lists of servable models leave them out. */
    json_t *j = get_json(s->port, "/v1/models");
    assert_true(has_model(h_arr(j, "data"), "id", "stories:260k"));
    assert_false(has_model(h_arr(j, "data"), "id", "mlx-community/tiny-4bit"));
    assert_false(has_model(h_arr(j, "data"), "id", "mlx-community/qwen-tiny-mlx"));
    assert_false(has_model(h_arr(j, "data"), "id", "phi-mlx"));
    json_decref(j);
    j = get_json(s->port, "/api/tags");
    assert_true(has_model(h_arr(j, "models"), "name", "stories:260k"));
    assert_false(has_model(h_arr(j, "models"), "name", "mlx-community/tiny-4bit"));
    assert_false(has_model(h_arr(j, "models"), "name", "phi-mlx"));
    json_decref(j);

    /* OpenAI: 501, invalid_request_error, model_not_supported, the reason. */
    const char *chat = "{\"model\":\"mlx-community/tiny-4bit\",\"messages\":[{\"role\":"
                       "\"user\",\"content\":\"Hi\"}],\"max_tokens\":2}";
    h_resp r;
    char msg[2048];
    h_request(s->port, "POST", "/v1/chat/completions", chat, strlen(chat), 0, &r);
    h_assert_error(&r, 501, "model", msg, sizeof msg);
    want(msg, "model 'mlx-community/tiny-4bit' is an MLX model (");
    want(msg, "models--mlx-community--Tiny-4bit/snapshots/4444dddd): " MLX_REASON);
    j = h_json(r.body);
    assert_string_equal(h_str(h_obj(j, "error"), "type"), "invalid_request_error");
    assert_string_equal(h_str(h_obj(j, "error"), "code"), "model_not_supported");
    json_decref(j);
    h_resp_free(&r);
    h_request(s->port, "GET", "/v1/models/phi-mlx", NULL, 0, 0, &r);
    h_assert_error(&r, 501, "model", msg, sizeof msg);
    want(msg, "model 'phi-mlx' is an MLX model");
    h_resp_free(&r);

    /* Ollama: 501 {"error": ...}, for generate, chat and embed alike. */
    static const char *const ollama[][2] = {
        {"/api/generate", "{\"model\":\"mlx-community/qwen-tiny-mlx\",\"prompt\":\"Hi\"}"},
        {"/api/chat", "{\"model\":\"mlx-community/qwen-tiny-mlx:latest\",\"messages\":"
                      "[{\"role\":\"user\",\"content\":\"Hi\"}]}"},
        {"/api/embed", "{\"model\":\"mlx-community/qwen-tiny-mlx\",\"input\":\"Hi\"}"},
    };
    for (size_t k = 0; k < sizeof ollama / sizeof ollama[0]; k++) {
        long status;
        char *body;
        assert_int_equal(http_post_json(s->port, ollama[k][0], ollama[k][1], &status, &body), 0);
        if (status != 501)
            fail_msg("%s: %ld %s", ollama[k][0], status, body);
        j = h_json(body);
        want(h_str(j, "error"), "model 'mlx-community/qwen-tiny-mlx' is an MLX model (");
        want(h_str(j, "error"), "Qwen-Tiny-MLX): " MLX_REASON);
        json_decref(j);
        free(body);
    }
    /* A GGUF model next to them still answers. */
    generate(s->port, "stories:260k", NULL);
    h_pass(t);
}

/* Whether the JSON array arr holds the string s. */
static bool has_str(const json_t *arr, const char *s) {
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return true;
    }
    return false;
}

static json_t *show_model(int port, const char *name) {
    json_t *req = json_pack("{s:s}", "model", name);
    json_t *r = h_post_expect(port, "/api/show", req, 200);
    json_decref(req);
    return r;
}

static json_t *find_tag(const json_t *tags, const char *name) {
    size_t i;
    json_t *m;
    json_array_foreach(h_arr(tags, "models"), i, m) {
        if (strcmp(h_str(m, "name"), name) == 0)
            return m;
    }
    fail_msg("no model '%s' in /api/tags", name);
    return NULL;
}

static void test_projector_api(void **state) {
    h_test *t = *state;
    make_stores(t);
    char proj[4200], gen[4200], cfg[4300];
    snprintf(proj, sizeof proj, "%s/audio-mmproj.gguf", t->dir);
    snprintf(gen, sizeof gen, "%s/gguf_gen", h_tools_dir());
    const char *gargs[] = {proj,         "--type", "mmproj",     "--arch", "clip",
                           "--modality", "audio",  "--proj-dim", "64",     NULL};
    char *out;
    assert_int_equal(h_run_exe(t, gen, gargs, RUN_MS, &out), 0);
    free(out);
    /* a bad --mmproj stops serve at start-up, saying why */
    const char *bad[] = {"serve",
                         "--bind",
                         "127.0.0.1:0",
                         "--model",
                         h_model_path(H_MODEL_FILE),
                         "--mmproj",
                         "/nonexistent/mmproj.gguf",
                         NULL};
    assert_int_not_equal(h_run(t, bad, RUN_MS, &out), 0);
    want(out, "--mmproj /nonexistent/mmproj.gguf: No such file or directory");
    free(out);
    /* a --config model section's mmproj key pairs it */
    snprintf(cfg, sizeof cfg, "%s/shimmy.ini", t->dir);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fprintf(f, "[stories:260k]\nmmproj = %s\n", proj);
    assert_int_equal(fclose(f), 0);
    const char *args[] = {"--config", cfg, NULL};
    h_server *s = h_start(t, args);
    bool media = engine_supports_media();

    /* /api/tags: Ollama lists a projector's model with "clip" among its families */
    json_t *j = get_json(s->port, "/api/tags");
    assert_true(has_str(h_arr(h_obj(find_tag(j, "vision:tiny"), "details"), "families"), "clip"));
    assert_true(has_str(h_arr(h_obj(find_tag(j, "stories:260k"), "details"), "families"), "clip"));
    json_t *fam = h_arr(h_obj(find_tag(j, "stories:latest"), "details"), "families");
    assert_int_equal(json_array_size(fam), 1);
    assert_false(has_str(fam, "clip"));
    json_decref(j);

    /* /api/show: projector_info; the capabilities only when the engine takes media */
    j = show_model(s->port, "vision:tiny");
    json_t *pi = h_obj(j, "projector_info");
    assert_string_equal(h_str(pi, "general.architecture"), "clip");
    assert_true(json_is_true(json_object_get(pi, "clip.has_vision_encoder")));
    assert_true(json_is_false(json_object_get(pi, "clip.has_audio_encoder")));
    assert_int_equal(h_int(pi, "clip.vision.projection_dim"), 8);
    assert_true(has_str(h_arr(j, "capabilities"), "completion"));
    assert_int_equal(has_str(h_arr(j, "capabilities"), "vision"), media);
    assert_false(has_str(h_arr(j, "capabilities"), "audio"));
    want(h_str(j, "modelfile"), "\nFROM ");
    json_decref(j);
    j = show_model(s->port, "lmstudio-community/tiny-gguf/tiny-random-f16");
    assert_int_equal(has_str(h_arr(j, "capabilities"), "vision"), media);
    assert_int_equal(has_str(h_arr(j, "capabilities"), "audio"), media);
    json_decref(j);
    j = show_model(s->port, "stories:260k");
    pi = h_obj(j, "projector_info");
    assert_true(json_is_true(json_object_get(pi, "clip.has_audio_encoder")));
    assert_false(has_str(h_arr(j, "capabilities"), "vision"));
    assert_int_equal(has_str(h_arr(j, "capabilities"), "audio"), media);
    json_decref(j);
    j = show_model(s->port, "stories:latest");
    assert_null(json_object_get(j, "projector_info"));
    assert_false(has_str(h_arr(j, "capabilities"), "vision"));
    json_decref(j);

    /* /v1/models/{id}: shimmy's input_modalities and projector */
    j = get_json(s->port, "/v1/models/vision:tiny");
    want(h_str(j, "projector"), "sha256-");
    assert_true(has_str(h_arr(j, "input_modalities"), "text"));
    assert_int_equal(has_str(h_arr(j, "input_modalities"), "image"), media);
    json_decref(j);
    j = get_json(s->port, "/v1/models/stories:latest");
    assert_true(json_is_null(json_object_get(j, "projector")));
    assert_int_equal(json_array_size(h_arr(j, "input_modalities")), 1);
    json_decref(j);
    j = get_json(s->port, "/v1/models/stories:260k");
    assert_string_equal(h_str(j, "projector"), "audio-mmproj.gguf");
    json_decref(j);
    /* a rescan keeps the pairings of --mmproj and the config file */
    long status;
    char *body;
    assert_int_equal(http_post_json(s->port, "/v1/models/rescan", "{}", &status, &body), 0);
    assert_int_equal(status, 200);
    free(body);
    j = get_json(s->port, "/v1/models/stories:260k");
    assert_string_equal(h_str(j, "projector"), "audio-mmproj.gguf");
    json_decref(j);
    h_pass(t);
}

/* ---- the real vision fixture, found in each store ---- */

/* BUILD/fixtures/NAME from make fixtures, else written into the test's folder by the same
 * generators with the same arguments (tools/fixtures.sh). */
static void vision_fixture(h_test *t, const char *name, char *p, size_t len) {
    struct stat st;
    snprintf(p, len, "%s/../fixtures/%s", h_tools_dir(), name);
    if (stat(p, &st) == 0)
        return;
    snprintf(p, len, "%s/%s", t->dir, name);
    char exe[4200], vocab[4200], *log;
    int rc;
    if (strcmp(name, "vision-model.gguf") == 0) {
        static const char chatml[] =
            "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
            "message['content'] + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}"
            "{{ '<|im_start|>assistant\\n' }}{% endif %}";
        snprintf(exe, sizeof exe, "%s/gen_model", h_tools_dir());
        snprintf(vocab, sizeof vocab, "%s/deps/llama.cpp/models/ggml-vocab-llama-spm.gguf",
                 h_source_dir());
        const char *args[] = {
            p,     "--vocab-from", vocab, "--layers",        "2",    "--embd", "64",   "--ff",
            "128", "--heads",      "4",   "--kv-heads",      "4",    "--ctx",  "2048", "--type",
            "f32", "--seed",       "2",   "--chat-template", chatml, NULL};
        rc = h_run_exe(t, exe, args, RUN_MS, &log);
    } else {
        snprintf(exe, sizeof exe, "%s/gen_vision", h_tools_dir());
        const char *args[] = {p, "--text-embd", "64", "--seed", "2", NULL};
        rc = h_run_exe(t, exe, args, RUN_MS, &log);
    }
    if (rc != 0)
        fail_msg("%s: exit %d: %s", exe, rc, log);
    free(log);
}

/* The model and its projector as an HF snapshot, an LM Studio repo and an Ollama manifest
 * with a projector layer, in t's HOME; each a copy (one file reached twice is one model). */
static void vision_stores(h_test *t) {
    char model[4300], proj[4300], *out;
    vision_fixture(t, "vision-model.gguf", model, sizeof model);
    vision_fixture(t, "vision-mmproj.gguf", proj, sizeof proj);
    static const char script[] =
        "set -e; home=$1; m=$2; p=$3\n"
        "hf=$home/.cache/huggingface/hub/models--Org--Tiny-VLM-GGUF\n"
        "mkdir -p $hf/snapshots/abc $hf/refs && printf abc > $hf/refs/main\n"
        "cp $m $hf/snapshots/abc/tiny-vlm-F32.gguf\n"
        "cp $p $hf/snapshots/abc/mmproj-tiny-vlm-F32.gguf\n"
        "lms=$home/.lmstudio/models/pub/Tiny-VLM-GGUF; mkdir -p $lms\n"
        "cp $m $lms/tiny-vlm-F32.gguf; cp $p $lms/mmproj-tiny-vlm-F32.gguf\n"
        "om=$home/.ollama/models; man=$om/manifests/registry.ollama.ai/library/tinyvlm\n"
        "mkdir -p $om/blobs $man\n"
        "hm=$(sha256sum $m | cut -d' ' -f1); hp=$(sha256sum $p | cut -d' ' -f1)\n"
        "cp $m $om/blobs/sha256-$hm; cp $p $om/blobs/sha256-$hp\n"
        "printf '{\"schemaVersion\":2,\"layers\":[{\"mediaType\":"
        "\"application/vnd.ollama.image.model\",\"digest\":\"sha256:%s\"},{\"mediaType\":"
        "\"application/vnd.ollama.image.projector\",\"digest\":\"sha256:%s\"}]}' $hm $hp "
        "> $man/latest\n";
    const char *args[] = {"-c", script, "sh", t->dir, model, proj, NULL};
    int rc = h_run_exe(t, "/bin/sh", args, RUN_MS, &out);
    if (rc != 0)
        fail_msg("vision stores: exit %d: %s", rc, out);
    free(out);
}

/* prompt_eval_count of a non-streamed /api/chat on model, with the test image or without. */
static long long chat_prompt_tokens(int port, const char *model, const char *image_b64) {
    json_t *req = json_pack("{s:s, s:[{s:s, s:s}], s:b, s:{s:i, s:f}}", "model", model, "messages",
                            "role", "user", "content", "What is in the picture?", "stream", 0,
                            "options", "num_predict", 2, "temperature", 0.0);
    if (image_b64 != NULL)
        json_object_set_new(json_array_get(h_arr(req, "messages"), 0), "images",
                            json_pack("[s]", image_b64));
    json_t *r = h_post_expect(port, "/api/chat", req, 200);
    long long n = h_int(r, "prompt_eval_count");
    json_decref(req);
    json_decref(r);
    return n;
}

/* Base64 of tests/data/vision/pattern.png. Owned. */
static char *pattern_b64(void) {
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char path[4300];
    snprintf(path, sizeof path, "%s/tests/data/vision/pattern.png", h_source_dir());
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot read %s", path);
    unsigned char d[65536];
    size_t n = fread(d, 1, sizeof d, f);
    fclose(f);
    char *o = malloc(n / 3 * 4 + 8), *p = o;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) |
                     (i + 2 < n ? d[i + 2] : 0);
        *p++ = a[v >> 18 & 63];
        *p++ = a[v >> 12 & 63];
        *p++ = i + 1 < n ? a[v >> 6 & 63] : '=';
        *p++ = i + 2 < n ? a[v & 63] : '=';
    }
    *p = '\0';
    return o;
}

/* The projector found beside the model in each store layout is the one the engine loads: an
 * image request to each answers, its image counted in the prompt. */
static void test_vision_found_in_stores(void **state) {
    h_test *t = *state;
    vision_stores(t);
    const char *args[] = {"--ctx", "256", "--parallel", "1", NULL};
    h_server *s = h_start(t, args);
    static const char *const names[] = {"org/tiny-vlm-gguf/tiny-vlm-f32",
                                        "pub/tiny-vlm-gguf/tiny-vlm-f32", "tinyvlm:latest"};
    char *img = pattern_b64();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        json_t *j = show_model(s->port, names[i]);
        assert_true(has_str(h_arr(j, "capabilities"), "vision"));
        assert_string_equal(h_str(h_obj(j, "projector_info"), "general.architecture"), "clip");
        json_decref(j);
        long long text = chat_prompt_tokens(s->port, names[i], NULL);
        long long with = chat_prompt_tokens(s->port, names[i], img);
        printf("%s: prompt %lld tokens, %lld with the image\n", names[i], text, with);
        assert_true(with >= text + 4); /* gen_vision: 4 tokens per image */
    }
    free(img);
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_discover_probe, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_rescan_lru_keep_alive, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_memory_budget, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_mlx_list_discover, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_mlx_not_served, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_projector_api, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_vision_found_in_stores, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
