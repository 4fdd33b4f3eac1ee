/* Unit tests for models/discover: fake Hugging Face, Ollama and LM Studio stores built in a
 * temporary HOME by tools/fake_stores.sh from the test models (real sha256 blob names, real
 * manifests), then every naming and exclusion rule; name clashes; split names; rescans through
 * the registry; MLX folders (found, never served); projectors paired with models in each store
 * layout (HF snapshot, LM Studio repo, Ollama's projector layer, a plain folder holding several)
 * and through --mmproj; and the scan's speed on a store of thousands of files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fixtures.h"
#include "models/discover.h"
#include "models/names.h"
#include "models/registry.h"

static char home[] = "/tmp/shimmy-discover-XXXXXX";

static const char *env_or(const char *k, const char *d) {
    const char *v = getenv(k);
    return v && v[0] ? v : d;
}

static int setup(void **state) {
    (void)state;
    char cmd[8192];
    if (mkdtemp(home) == NULL)
        return -1;
    snprintf(cmd, sizeof cmd, "%s/tools/fake_stores.sh %s %s %s >/dev/null",
             env_or("SHIMMY_SOURCE_DIR", "."), home,
             env_or("SHIMMY_TEST_MODELS", "../shared/models"),
             env_or("SHIMMY_TOOLS_DIR", "build/tools"));
    if (system(cmd) != 0) {
        fprintf(stderr, "test_discover: %s failed\n", cmd);
        return -1;
    }
    setenv("HOME", home, 1);
    unsetenv("HF_HOME");
    unsetenv("HF_HUB_CACHE");
    unsetenv("OLLAMA_MODELS");
    unsetenv("SHIMMY_MODEL_PATHS");
    unsetenv("SHIMMY_BASE_GGUF");
    return chdir(home);
}

static int teardown(void **state) {
    (void)state;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", home);
    return system(cmd) == 0 ? 0 : -1;
}

static const model_rec *find(const disc_result *r, const char *name) {
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->models[i]->name, name) == 0)
            return r->models[i];
    return NULL;
}

static bool noted(const disc_result *r, const char *path_part, const char *why_part) {
    for (size_t i = 0; i < r->n_notes; i++)
        if (strstr(r->notes[i].path, path_part) && strstr(r->notes[i].why, why_part))
            return true;
    return false;
}

static void test_names_split(void **state) {
    (void)state;
    int part, count;
    char out[256];
    assert_true(names_split_part("a/Qwen-7B-00001-of-00003.gguf", &part, &count));
    assert_int_equal(part, 1);
    assert_int_equal(count, 3);
    assert_false(names_split_part("a/model.gguf", &part, &count));
    assert_false(names_split_part("a/x-00004-of-00003.gguf", &part, &count));
    assert_true(names_from_path("a/Qwen-7B-00002-of-00003.gguf", out, sizeof out));
    assert_string_equal(out, "qwen-7b");
    assert_true(names_split_sibling("a/Q-00001-of-00003.gguf", 3, out, sizeof out));
    assert_string_equal(out, "a/Q-00003-of-00003.gguf");
}

static void test_stores(void **state) {
    (void)state;
    disc_config c = {0};
    disc_result r;
    char err[512];
    assert_int_equal(disc_run(&c, &r, err, sizeof err), SHIMMY_OK);
    const model_rec *d;

    /* Hugging Face: org/repo/file-stem from refs/main's snapshot, symlinks into blobs/. */
    assert_non_null(d = find(&r, "thebloke/stories-260k-gguf/stories260k"));
    assert_string_equal(d->source, "hf");
    assert_non_null(strstr(d->realpath, "/blobs/270cba1bd5109f42"));
    assert_null(find(&r, "thebloke/stories-260k-gguf/stories-old"));
    assert_non_null(d = find(&r, "org/tiny-vision-gguf/tiny-q8"));
    assert_string_equal(d->meta.quant, "F16");
    assert_null(find(&r, "org/tiny-vision-gguf/mmproj-tiny-f16"));
    /* its projector beside it; the other one states a width (4096) that is not the model's */
    assert_non_null(strstr(d->mmproj, "/snapshots/2222bbbb/mmproj-tiny-f16.gguf"));
    assert_true(d->mmproj_vision);
    assert_false(d->mmproj_audio);
    assert_true(noted(&r, "mmproj-tiny-f16.gguf",
                      "projector (mmproj), not a model: paired with "
                      "'org/tiny-vision-gguf/tiny-q8'"));
    assert_true(noted(&r, "mmproj-big-q8_0.gguf",
                      "paired with no model (it is for a model 4096 "
                      "wide"));
    assert_null(find(&r, "org/tiny-vision-gguf/mmproj-big-q8_0"));
    /* no projector in the repo: none */
    assert_string_equal(find(&r, "thebloke/stories-260k-gguf/stories260k")->mmproj, "");
    /* A split model is one model named without the suffix, sized over both parts. */
    assert_non_null(d = find(&r, "org/split-gguf/stories-split"));
    assert_int_equal(d->n_parts, 2);
    assert_true(d->size_bytes > 1185376);
    assert_non_null(strstr(d->path, "-00001-of-00002.gguf"));
    /* the projector at the snapshot's top serves the model in its Q8_0/ subfolder */
    assert_non_null(strstr(d->mmproj, "/snapshots/3333cccc/mmproj-stories-f16.gguf"));

    /* Ollama: model:tag, namespace kept off library, registry kept off ollama.com. */
    assert_non_null(d = find(&r, "stories:260k"));
    assert_string_equal(d->source, "ollama");
    assert_string_equal(d->digest,
                        "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d");
    assert_non_null(strstr(d->manifest, "manifests/registry.ollama.ai/library/stories/260k"));
    assert_string_equal(d->adapter, "");
    /* Another tag of the same blob is a name users type: served too. */
    assert_non_null(d = find(&r, "stories:latest"));
    assert_string_equal(d->digest, find(&r, "stories:260k")->digest);
    assert_non_null(d = find(&r, "stories:lora"));
    assert_non_null(strstr(d->adapter, "/blobs/sha256-"));
    assert_non_null(find(&r, "someuser/tiny:q8"));
    assert_non_null(find(&r, "hf.co/bartowski/Other-GGUF:Q8_0"));
    assert_null(find(&r, "broken:latest"));
    assert_true(noted(&r, "library/broken/latest", "no model layer"));
    /* the projector layer is the model's projector; one that is not a projector is left out */
    assert_non_null(d = find(&r, "vision:tiny"));
    assert_non_null(strstr(d->mmproj, "/.ollama/models/blobs/sha256-"));
    assert_true(d->mmproj_vision);
    assert_string_equal(find(&r, "someuser/tiny:q8")->mmproj, ""); /* the same blob, no layer */
    assert_string_equal(find(&r, "stories:260k")->mmproj, "");
    assert_non_null(d = find(&r, "vision:broken"));
    assert_string_equal(d->mmproj, "");
    assert_true(noted(&r, "library/vision/broken", "the projector layer is left out"));

    /* LM Studio: publisher/repo/file-stem; the adapter beside its base is attached. */
    assert_non_null(d = find(&r, "lmstudio-community/tiny-gguf/tiny-random-f16"));
    assert_string_equal(d->source, "lmstudio");
    assert_non_null(strstr(d->mmproj, "Tiny-GGUF/mmproj-Tiny-F16.gguf"));
    assert_true(d->mmproj_vision && d->mmproj_audio);
    assert_string_equal(find(&r, "old/repo/stories")->mmproj, "");
    assert_non_null(d = find(&r, "pub/stories-lora-gguf/stories260k"));
    assert_non_null(strstr(d->adapter, "stories260K-lora-F32.gguf"));
    assert_null(find(&r, "pub/stories-lora-gguf/stories260k-lora-f32"));
    assert_non_null(find(&r, "old/repo/stories"));
    assert_true(noted(&r, "vocab-only.gguf", "vocab-only"));
    assert_true(noted(&r, "truncated.gguf", "truncated"));
    assert_true(noted(&r, "old-v1.gguf", "v1"));
    assert_true(noted(&r, "notes.gguf", "not a GGUF"));
    assert_true(noted(&r, "orphan-lora.gguf", "adapter"));
    assert_true(noted(&r, "mmproj-Tiny-F16.gguf",
                      "paired with "
                      "'lmstudio-community/tiny-gguf/tiny-random-f16'"));
    assert_null(find(&r, "pub/broken-gguf/same-as-hf")); /* the HF file again */
    for (size_t i = 0; i < r.n; i++)
        assert_null(strstr(r.models[i]->path, "hidden"));
    /* Each broken file is reported once. */
    int truncated = 0;
    for (size_t i = 0; i < r.n_notes; i++)
        truncated += strstr(r.notes[i].path, "truncated.gguf") != NULL;
    assert_int_equal(truncated, 1);
    assert_int_equal(r.n, 13);
    disc_result_free(&r);

    /* Stores can be switched off (tests, --model only setups). */
    c.no_stores = true;
    assert_int_equal(disc_run(&c, &r, err, sizeof err), SHIMMY_OK);
    assert_int_equal(r.n, 0);
    disc_result_free(&r);
}

static void test_env_roots(void **state) {
    (void)state;
    char p[4200];
    disc_config c = {.no_stores = false};
    disc_result r;
    char err[512];
    /* OLLAMA_MODELS and HF_HUB_CACHE move the stores; the defaults then are not read. */
    snprintf(p, sizeof p, "%s/.ollama/models", home);
    setenv("OLLAMA_MODELS", p, 1);
    setenv("HOME", "/nonexistent", 1);
    assert_int_equal(disc_run(&c, &r, err, sizeof err), SHIMMY_OK);
    assert_non_null(find(&r, "stories:260k"));
    assert_null(find(&r, "thebloke/stories-260k-gguf/stories260k"));
    disc_result_free(&r);
    snprintf(p, sizeof p, "%s/.cache/huggingface", home);
    setenv("HF_HOME", p, 1);
    assert_int_equal(disc_run(&c, &r, err, sizeof err), SHIMMY_OK);
    assert_non_null(find(&r, "thebloke/stories-260k-gguf/stories260k"));
    disc_result_free(&r);
    unsetenv("HF_HOME");
    unsetenv("OLLAMA_MODELS");
    setenv("HOME", home, 1);
}

static void copy(const char *src, const char *dst) {
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, dst);
    assert_int_equal(system(cmd), 0);
}

static void test_clash_and_lora_flag(void **state) {
    (void)state;
    char a[4200], b[4200], f[4300], dirs[8500], err[512];
    const char *stories = getenv("SHIMMY_TEST_MODELS");
    char src[4200];
    snprintf(src, sizeof src, "%s/stories260K.gguf", stories ? stories : "../shared/models");
    snprintf(a, sizeof a, "%s/clash-a", home);
    snprintf(b, sizeof b, "%s/clash-b", home);
    mkdir(a, 0755);
    mkdir(b, 0755);
    snprintf(f, sizeof f, "%s/Tiny.gguf", a);
    copy(src, f);
    snprintf(f, sizeof f, "%s/tiny.gguf", b);
    copy(src, f);
    snprintf(dirs, sizeof dirs, "%s;%s", a, b);
    disc_config c = {.model_dirs = dirs, .no_stores = true};
    disc_result r;
    assert_int_equal(disc_run(&c, &r, err, sizeof err), SHIMMY_OK);
    assert_int_equal(r.n, 2);
    assert_non_null(strstr(find(&r, "tiny")->path, "clash-a"));
    assert_non_null(strstr(find(&r, "tiny@dir")->path, "clash-b"));
    assert_true(noted(&r, "clash-b", "served as 'tiny@dir'"));
    disc_result_free(&r);

    /* --lora MODEL=PATH:SCALE; a wrong model or a non-adapter is an error. */
    char lora[4300];
    snprintf(lora, sizeof lora,
             "%s/.lmstudio/models/Pub/Stories-LoRA-GGUF/stories260K-lora-F32.gguf", home);
    disc_lora l = {.model = "tiny", .path = lora, .scale = 0.5f};
    c.loras = &l;
    c.n_loras = 1;
    assert_int_equal(disc_run(&c, &r, err, sizeof err), SHIMMY_OK);
    assert_string_equal(find(&r, "tiny")->adapter, lora);
    assert_true(find(&r, "tiny")->adapter_scale == 0.5f);
    disc_result_free(&r);
    l.model = "nope";
    assert_int_equal(disc_run(&c, &r, err, sizeof err), ERR_BAD_PARAM);
    assert_non_null(strstr(err, "nope"));
    disc_result_free(&r);
    l.model = "tiny";
    l.path = src;
    assert_int_equal(disc_run(&c, &r, err, sizeof err), ERR_BAD_PARAM);
    assert_non_null(strstr(err, "not a LoRA adapter"));
    disc_result_free(&r);
}

static void test_registry_rescan(void **state) {
    (void)state;
    engine_options o;
    memset(&o, 0, sizeof o);
    registry *reg = registry_new(&o);
    disc_config c = {0};
    registry_changes ch;
    char err[512], p[4300];
    assert_int_equal(registry_discover(reg, &c, &ch, err, sizeof err), SHIMMY_OK);
    assert_int_equal(ch.n_added, 13);
    assert_int_equal(ch.total, 13);
    assert_true(ch.n_notes >= 8);
    registry_changes_free(&ch);
    /* ":latest" may be left out or given. */
    snprintf(p, sizeof p, "%s/.ollama/models/manifests/registry.ollama.ai/someuser/tiny/q8", home);
    char q[4300];
    snprintf(q, sizeof q, "%s/.ollama/models/manifests/registry.ollama.ai/someuser/tiny/latest",
             home);
    assert_int_equal(rename(p, q), 0);
    assert_int_equal(registry_rescan(reg, &ch, err, sizeof err), SHIMMY_OK);
    assert_int_equal(ch.n_added, 1);
    assert_string_equal(ch.added[0], "someuser/tiny:latest");
    assert_int_equal(ch.n_removed, 1);
    assert_string_equal(ch.removed[0], "someuser/tiny:q8");
    registry_changes_free(&ch);
    assert_true(registry_find(reg, "someuser/tiny", NULL, NULL));
    assert_true(registry_find(reg, "someuser/tiny:latest", NULL, NULL));
    assert_int_equal(rename(q, p), 0);
    registry_free(reg);
}

static void sh(const char *fmt, const char *dir) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, fmt, dir, dir, dir, dir);
    assert_int_equal(system(cmd), 0);
}

static const disc_unserved *find_unserved(const disc_result *r, const char *name) {
    for (size_t i = 0; i < r->n_unserved; i++)
        if (strcmp(r->unserved[i].name, name) == 0)
            return &r->unserved[i];
    return NULL;
}

/* The entry named name; fails the test when there is none. */
static const disc_unserved *get_unserved(const disc_result *r, const char *name) {
    static const disc_unserved none;
    const disc_unserved *u = find_unserved(r, name);
    if (u == NULL)
        fail_msg("no MLX folder named '%s'", name);
    return u != NULL ? u : &none;
}

/* An MLX folder holds config.json and *.safetensors at its top level, and no .gguf. */
static void test_mlx_detect(void **state) {
    (void)state;
    char d[1024];
    uint64_t size = 0;
    snprintf(d, sizeof d, "%s/mlx-detect", home);
    sh("mkdir -p %s/both %s/config-only %s/tensors-only %s/with-gguf", d);
    sh("echo '{}' > %s/both/config.json && head -c 100 /dev/zero > %s/both/a.safetensors && "
       "head -c 20 /dev/zero > %s/both/b.SAFETENSORS && : > %s/both/README.md",
       d);
    sh("echo '{}' > %s/config-only/config.json && : > %s/config-only/tokenizer.json && "
       "mkdir -p %s/config-only/sub && : > %s/config-only/sub/model.safetensors",
       d);
    sh(": > %s/tensors-only/model.safetensors && : > %s/tensors-only/config.yaml && "
       ": > %s/tensors-only/x && : > %s/tensors-only/y",
       d);
    sh("echo '{}' > %s/with-gguf/config.json && : > %s/with-gguf/model.safetensors && "
       ": > %s/with-gguf/model.gguf && : > %s/with-gguf/x",
       d);
    char p[1100];
    snprintf(p, sizeof p, "%s/both", d);
    assert_true(disc_is_mlx_dir(p, &size));
    assert_int_equal(size, 120);
    snprintf(p, sizeof p, "%s/config-only", d);
    assert_false(disc_is_mlx_dir(p, NULL)); /* safetensors only in a subfolder */
    snprintf(p, sizeof p, "%s/tensors-only", d);
    assert_false(disc_is_mlx_dir(p, NULL));
    snprintf(p, sizeof p, "%s/with-gguf", d);
    assert_false(disc_is_mlx_dir(p, NULL)); /* the GGUF is served instead */
    snprintf(p, sizeof p, "%s/nonexistent", d);
    assert_false(disc_is_mlx_dir(p, NULL));

    /* A loose folder: each MLX subfolder, named by the folder, never a model; names are unique
     * across models and MLX folders. */
    const char *stories = env_or("SHIMMY_TEST_MODELS", "../shared/models");
    char cmd[9000];
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/Tiny && cp %s/stories260K.gguf %s/tiny.gguf && "
             "cp -r %s/both/. %s/Tiny/",
             d, stories, d, d, d);
    assert_int_equal(system(cmd), 0);
    disc_config c = {.model_dirs = d, .no_stores = true};
    disc_result r;
    char err[512];
    assert_int_equal(disc_run(&c, &r, err, sizeof err), SHIMMY_OK);
    assert_int_equal(r.n, 1);
    assert_non_null(find(&r, "tiny"));
    assert_int_equal(r.n_unserved, 2);
    const disc_unserved *u;
    u = get_unserved(&r, "both");
    assert_string_equal(u->source, "dir");
    assert_string_equal(u->format, "mlx");
    assert_int_equal(u->size_bytes, 120);
    assert_non_null(strstr(disc_unserved_status(u), "MLX engine not available"));
    u = get_unserved(&r, "tiny@dir");
    assert_non_null(strstr(u->path, "/Tiny"));
    assert_null(find_unserved(&r, "config-only"));
    assert_null(find_unserved(&r, "tensors-only"));
    assert_null(find_unserved(&r, "with-gguf"));
    disc_result_free(&r);
    sh("rm -rf %s", d);
}

/* The stores' MLX folders: HF "org/name" and LM Studio "publisher/repo"; requests for them fail
 * with ERR_UNSUPPORTED and the reason, and the registry never lists them as models. */
static void test_mlx_stores(void **state) {
    (void)state;
    disc_config c = {0};
    disc_result r;
    char err[1024];
    assert_int_equal(disc_run(&c, &r, err, sizeof err), SHIMMY_OK);
    const disc_unserved *u;
    assert_int_equal(r.n_unserved, 2);
    u = get_unserved(&r, "mlx-community/tiny-4bit");
    assert_string_equal(u->source, "hf");
    assert_non_null(strstr(u->path, "models--mlx-community--Tiny-4bit/snapshots/4444dddd"));
    assert_string_equal(u->arch, "llama");
    assert_int_equal(u->bits, 4);
    assert_int_equal(u->size_bytes, 4096);
    u = get_unserved(&r, "mlx-community/qwen-tiny-mlx");
    assert_string_equal(u->source, "lmstudio");
    assert_string_equal(u->arch, "qwen2");
    assert_int_equal(u->bits, 0);
    assert_int_equal(u->size_bytes, 4096);
    assert_int_equal(r.n, 13);
    disc_result_free(&r);

    engine_options o;
    memset(&o, 0, sizeof o);
    registry *reg = registry_new(&o);
    engine_model *m = NULL;
    assert_int_equal(registry_discover(reg, &c, NULL, err, sizeof err), SHIMMY_OK);
    assert_int_equal(registry_count(reg), 13);
    assert_int_equal(registry_unserved_count(reg), 2);
    disc_unserved got;
    assert_true(registry_get_unserved(reg, 0, &got));
    assert_string_equal(got.name, "mlx-community/qwen-tiny-mlx"); /* sorted by name */
    assert_false(registry_get_unserved(reg, 2, &got));
    assert_false(registry_find(reg, "mlx-community/tiny-4bit", NULL, NULL));
    assert_int_equal(registry_acquire(reg, "mlx-community/tiny-4bit", &m, err, sizeof err),
                     ERR_UNSUPPORTED);
    assert_null(m);
    assert_non_null(strstr(err, "model 'mlx-community/tiny-4bit' is an MLX model ("));
    assert_non_null(strstr(err, "/snapshots/4444dddd): the MLX engine is not available in this "
                                "build; shimmy serves GGUF models through llama.cpp"));
    assert_int_equal(registry_lookup(reg, "mlx-community/qwen-tiny-mlx:latest", err, sizeof err),
                     ERR_UNSUPPORTED);
    assert_int_equal(registry_lookup(reg, "nope", err, sizeof err), ERR_MODEL_NOT_FOUND);
    assert_int_equal(registry_lookup(reg, "stories:260k", err, sizeof err), SHIMMY_OK);
    assert_int_equal(err_get(ERR_UNSUPPORTED)->http_status, 501);
    assert_string_equal(err_get(ERR_UNSUPPORTED)->openai_code, "model_not_supported");
    assert_string_equal(err_get(ERR_UNSUPPORTED)->openai_type, "invalid_request_error");
    registry_free(reg);
}

/* tools/gguf_gen ARGS (a projector's or a model's metadata) into a test folder. */
static void gen(const char *args) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "cd %s && %s/gguf_gen %s >/dev/null", home,
             env_or("SHIMMY_TOOLS_DIR", "build/tools"), args);
    assert_int_equal(system(cmd), 0);
}

static const model_rec *get(const disc_result *r, const char *name) {
    static const model_rec none = {.name = "",
                                   .path = "",
                                   .source = "",
                                   .adapter = "",
                                   .manifest = "",
                                   .mmproj = "",
                                   .realpath = ""};
    const model_rec *d = find(r, name);
    if (d == NULL)
        fail_msg("no model named '%s'", name);
    return d != NULL ? d : &none;
}

/* The file name of d's projector ("" = none). */
static const char *proj_file(const model_rec *d) {
    const char *slash = strrchr(d->mmproj, '/');
    return slash != NULL ? slash + 1 : d->mmproj;
}

/* A plain model folder holding several projectors: the width decides first (a projector of
 * another width never pairs), then the words of the file name, then the quantization (the same,
 * else the nearest bits per weight). */
static void test_projector_folder(void **state) {
    (void)state;
    char cmd[9000], dirs[4200], err[1024];
    const char *models = env_or("SHIMMY_TEST_MODELS", "../shared/models");
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/vis %s/vis2 && cp %s/llama-2-tiny-random.gguf "
             "%s/vis/tiny.gguf",
             home, home, models, home);
    assert_int_equal(system(cmd), 0);
    /* stories260K (64 wide) as Q8_0, F16 and Q4_K_M by their metadata */
    snprintf(cmd, sizeof cmd, "--copy-from %s/stories260K.gguf", models);
    char a[9200];
    snprintf(a, sizeof a, "vis/stories-Q8_0.gguf %s --file-type 7", cmd);
    gen(a);
    snprintf(a, sizeof a, "vis/stories-F16.gguf %s --file-type 1", cmd);
    gen(a);
    snprintf(a, sizeof a, "vis/stories-Q4_K_M.gguf %s --file-type 15", cmd);
    gen(a);
    gen("vis/mmproj-model-f16.gguf --type mmproj --arch clip --file-type 1 --proj-dim 64");
    gen("vis/mmproj-model-Q8_0.gguf --type mmproj --arch clip --file-type 7 --proj-dim 64");
    gen("vis/mmproj-model-f32.gguf --type mmproj --arch clip --file-type 0 --proj-dim 64");
    gen("vis/mmproj-other-Q8_0.gguf --type mmproj --arch clip --file-type 7 --proj-dim 2048");
    /* names: the projector sharing more words of the model's name wins over the quantization */
    snprintf(a, sizeof a, "vis2/gemma-a-Q8_0.gguf %s --file-type 7", cmd);
    gen(a);
    gen("vis2/mmproj-gemma-a-f16.gguf --type mmproj --arch clip --file-type 1 --proj-dim 64");
    gen("vis2/mmproj-gemma-b-Q8_0.gguf --type mmproj --arch clip --file-type 7 --proj-dim 64");
    gen("vis2/mmproj-audio-f16.gguf --type mmproj --arch clip --file-type 1 --modality audio");
    snprintf(dirs, sizeof dirs, "%s/vis;%s/vis2", home, home);
    disc_config c = {.model_dirs = dirs, .no_stores = true};
    disc_result r;
    assert_int_equal(disc_run(&c, &r, err, sizeof err), SHIMMY_OK);
    assert_int_equal(r.n, 5); /* projectors are never models */
    assert_string_equal(proj_file(get(&r, "stories-q8_0")), "mmproj-model-Q8_0.gguf");
    assert_string_equal(proj_file(get(&r, "stories-f16")), "mmproj-model-f16.gguf");
    assert_string_equal(proj_file(get(&r, "stories-q4_k_m")), "mmproj-model-Q8_0.gguf"); /* 4: 8 */
    assert_string_equal(proj_file(get(&r, "tiny")), ""); /* 8 wide: none is */
    assert_string_equal(proj_file(get(&r, "gemma-a-q8_0")), "mmproj-gemma-a-f16.gguf");
    assert_true(get(&r, "gemma-a-q8_0")->mmproj_vision);
    assert_true(noted(&r, "mmproj-model-f32.gguf",
                      "paired with no model (another projector "
                      "fits each model beside it better"));
    assert_true(noted(&r, "mmproj-model-Q8_0.gguf", "paired with 'stories-q4_k_m' and 1 more"));
    assert_true(noted(&r, "mmproj-other-Q8_0.gguf", "it is for a model 2048 wide"));
    disc_result_free(&r);

    /* --mmproj NAME=PATH wins over the projector found beside the model */
    char audio[4200];
    snprintf(audio, sizeof audio, "%s/vis2/mmproj-audio-f16.gguf", home);
    disc_mmproj x = {.model = "stories-f16", .path = audio};
    c.mmprojs = &x;
    c.n_mmprojs = 1;
    assert_int_equal(disc_run(&c, &r, err, sizeof err), SHIMMY_OK);
    assert_string_equal(get(&r, "stories-f16")->mmproj, audio);
    assert_false(get(&r, "stories-f16")->mmproj_vision);
    assert_true(get(&r, "stories-f16")->mmproj_audio);
    assert_true(noted(&r, "mmproj-audio-f16.gguf", "paired with 'stories-f16'"));
    disc_result_free(&r);
    /* errors: an unknown model, no name with several models, not a projector, no file */
    x.model = "nope";
    assert_int_equal(disc_run(&c, &r, err, sizeof err), ERR_BAD_PARAM);
    assert_non_null(strstr(err, "no model named 'nope'"));
    disc_result_free(&r);
    x.model = NULL;
    assert_int_equal(disc_run(&c, &r, err, sizeof err), ERR_BAD_PARAM);
    assert_non_null(strstr(err, "name the model it is for (--mmproj NAME="));
    assert_non_null(strstr(err, "5 models are served"));
    disc_result_free(&r);
    char model[4200];
    snprintf(model, sizeof model, "%s/vis/tiny.gguf", home);
    x.model = "tiny";
    x.path = model;
    assert_int_equal(disc_run(&c, &r, err, sizeof err), ERR_BAD_PARAM);
    assert_non_null(strstr(err, "tiny.gguf: not a multimodal projector"));
    disc_result_free(&r);
    x.path = "/nonexistent/mmproj.gguf";
    assert_int_equal(disc_run(&c, &r, err, sizeof err), ERR_IO);
    assert_non_null(strstr(err, "--mmproj /nonexistent/mmproj.gguf: No such file"));
    disc_result_free(&r);

    /* --model FILE: the *mmproj* files beside it are looked at (the folder is not scanned);
     * --mmproj PATH without a name is for that model */
    char *paths[] = {model};
    disc_config one = {.model_paths = paths, .n_paths = 1, .no_stores = true};
    snprintf(cmd, sizeof cmd, "%s/vis/stories-F16.gguf", home);
    paths[0] = cmd;
    assert_int_equal(disc_run(&one, &r, err, sizeof err), SHIMMY_OK);
    assert_int_equal(r.n, 1);
    assert_string_equal(proj_file(get(&r, "stories-f16")), "mmproj-model-f16.gguf");
    disc_result_free(&r);
    x.model = NULL;
    x.path = audio;
    one.mmprojs = &x;
    one.n_mmprojs = 1;
    assert_int_equal(disc_run(&one, &r, err, sizeof err), SHIMMY_OK);
    assert_string_equal(get(&r, "stories-f16")->mmproj, audio);
    disc_result_free(&r);
    sh("rm -rf %s/vis %s/vis2", home);
}

/* A store of thousands of files (most not models) is scanned well under a second. */
static void test_big_store_fast(void **state) {
    (void)state;
    char dir[4300], cmd[9000];
    snprintf(dir, sizeof dir, "%s/big", home);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/hub && cd %s/hub && for r in $(seq 1 200); do "
             "d=models--org--repo$r/snapshots/abc; mkdir -p $d/sub; "
             "for f in $(seq 1 20); do : > $d/sub/file$f.safetensors; done; "
             ": > $d/config.json; done",
             dir, dir);
    assert_int_equal(system(cmd), 0);
    disc_result r;
    disc_result_init(&r);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    snprintf(cmd, sizeof cmd, "%s/hub", dir);
    disc_scan_hf(&r, cmd);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_int_equal(r.n, 0);
    assert_true(s < 0.5 * fixtures_time_scale());
    disc_result_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_split),      cmocka_unit_test(test_stores),
        cmocka_unit_test(test_env_roots),        cmocka_unit_test(test_clash_and_lora_flag),
        cmocka_unit_test(test_registry_rescan),  cmocka_unit_test(test_big_store_fast),
        cmocka_unit_test(test_mlx_detect),       cmocka_unit_test(test_mlx_stores),
        cmocka_unit_test(test_projector_folder),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
