/* it_gpu_vulkan: the real Vulkan backend on Mesa's software device (lavapipe), so that CI without
 * a GPU runs the GPU path: the prebuilt libggml-vulkan.so (scripts/deps.sh --gpu vulkan, run by
 * scripts/test-deps.sh) on libvulkan1 + mesa-vulkan-drivers. Nothing is skipped: a missing module
 * or driver fails the test with how to install it.
 *
 * ggml skips CPU-type Vulkan devices unless GGML_VK_VISIBLE_DEVICES names them, so:
 *  - with GGML_VK_VISIBLE_DEVICES=0 (and F16 / cooperative matrices off, as lavapipe wants),
 *    --gpu-backend vulkan --gpu-layers all puts every layer on Vulkan0 and --gpu-layers 2 exactly
 *    two, as /health reports from the loaded model; greedy output equals the CPU's;
 *  - without it, auto uses the CPU and says so, and --gpu-backend vulkan refuses to start.
 * Mesa's shader cache is shared by the tests (build/mesa-shader-cache): lavapipe compiles every
 * pipeline with LLVM the first time, which takes tens of seconds on a small machine. */
#include "harness.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_GOLDEN 8
#define COLD_DEADLINE_MS 300000 /* the first lavapipe run compiles the shaders */
#define RUN_DEADLINE_MS 60000

/* Fails unless every string of needles (NULL-terminated) is in out. */
static void assert_has_all(const char *what, const char *out, const char *const *needles) {
    for (; *needles != NULL; needles++)
        if (strstr(out, *needles) == NULL)
            fail_msg("%s: \"%s\" not in the output:\n%s", what, *needles, out);
}

/* assert_has(what, out, "needle", ...): each needle is in out. */
#define assert_has(what, out, ...) assert_has_all(what, out, (const char *[]){__VA_ARGS__, NULL})

/* Runs shimmy with args and fails unless it exits with want_rc; returns the output (owned). */
static char *run_expect(h_test *t, const char *const *args, int deadline_ms, int want_rc,
                        const char *what) {
    char *out;
    int rc = h_run(t, args, deadline_ms, &out);
    if (rc != want_rc)
        fail_msg("%s: exit %d (want %d):\n%s", what, rc, want_rc, out);
    return out;
}

static void lavapipe_on(void) {
    setenv("GGML_VK_VISIBLE_DEVICES", "0", 1);
    setenv("GGML_VK_DISABLE_F16", "1", 1);
    setenv("GGML_VK_DISABLE_COOPMAT", "1", 1);
}

static void lavapipe_off(void) {
    unsetenv("GGML_VK_VISIBLE_DEVICES");
    unsetenv("GGML_VK_DISABLE_F16");
    unsetenv("GGML_VK_DISABLE_COOPMAT");
}

/* The model's entry in /health (owned, with its parent). */
static json_t *health_model(int port, json_t **health) {
    *health = h_health(port);
    json_t *m = h_get(*health, "models.0");
    if (m == NULL || !json_is_true(json_object_get(m, "loaded"))) {
        char *d = h_dump(*health);
        fail_msg("no loaded model in /health: %s", d);
    }
    return m;
}

static const json_t *device(const json_t *m, const char *name) {
    json_t *devs = h_arr(m, "devices");
    for (size_t i = 0; i < json_array_size(devs); i++)
        if (strcmp(h_str(json_array_get(devs, i), "name"), name) == 0)
            return json_array_get(devs, i);
    return NULL;
}

/* layers on the device named `name` (0 when it is not listed). */
static long long layers_on(const json_t *m, const char *name) {
    const json_t *d = device(m, name);
    return d ? h_int(d, "layers") : 0;
}

static char *complete_text(int port, const char *prompt, int max_tokens) {
    json_t *req = h_completion_req(prompt, max_tokens);
    json_t *r = h_post_expect(port, "/v1/completions", req, 200);
    json_decref(req);
    json_t *t = h_get(r, "choices.0.text");
    assert_true(json_is_string(t));
    char *s = strdup(json_string_value(t));
    json_decref(r);
    return s;
}

/* A server with lavapipe visible and `layers` ("all" or a count) of the model on Vulkan. */
static h_server *start_on_vulkan(h_test *t, const char *layers) {
    lavapipe_on();
    const char *args[] = {
        "--gpu-backend", "vulkan", "--gpu-layers", layers, "--parallel", "1", NULL};
    return h_start_default(t, args);
}

/* Greedy continuations of the golden prompts from gpu and from a CPU-only server are identical. */
static void assert_same_as_cpu(h_test *t, const h_server *gpu, const char *what) {
    const char *cpu_args[] = {"--gpu-backend", "cpu", "--parallel", "1", NULL};
    h_server *cpu = h_start_default(t, cpu_args);
    h_golden g[MAX_GOLDEN];
    int n = h_golden_load(g, MAX_GOLDEN);
    for (int i = 0; i < n; i++) {
        char *a = complete_text(cpu->port, g[i].prompt, g[i].max_tokens);
        char *b = complete_text(gpu->port, g[i].prompt, g[i].max_tokens);
        if (strcmp(a, b) != 0)
            fail_msg("%s: greedy continuation of \"%.200s\" differs:\n  CPU:    \"%s\"\n  "
                     "Vulkan: \"%s\"",
                     what, g[i].prompt, a, b);
        free(a);
        free(b);
    }
}

/* gpu-info sees lavapipe as Vulkan0 once GGML_VK_VISIBLE_DEVICES names it, and a one-off
 * generate fills Mesa's shader cache so that the servers below start within their deadline. */
static void test_gpu_info_and_warm_up(void **state) {
    h_test *t = *state;
    lavapipe_on();
    const char *info[] = {"gpu-info", NULL};
    char *out = run_expect(t, info, RUN_DEADLINE_MS, 0, "gpu-info");
    assert_has("gpu-info", out, "libggml-vulkan.so", "loaded: Vulkan, 1 device", "Vulkan0",
               "auto uses Vulkan0");
    free(out);
    const char *gen[] = {"generate",
                         h_model_path(H_MODEL_FILE),
                         "--prompt",
                         "Once upon a time",
                         "--max-tokens",
                         "8",
                         "--temperature",
                         "0",
                         "--gpu-backend",
                         "vulkan",
                         "--gpu-layers",
                         "all",
                         NULL};
    int64_t t0 = h_now_ms();
    out = run_expect(t, gen, COLD_DEADLINE_MS, 0, "generate on Vulkan");
    assert_has("generate", out, "Vulkan0: 6/6 layers");
    fprintf(stderr, "first Vulkan generate (shader cache warm-up): %lld ms\n",
            (long long)(h_now_ms() - t0));
    free(out);
    h_pass(t);
}

/* --gpu-layers all: every layer on Vulkan0, and the same greedy text as the CPU. */
static void test_all_layers_on_vulkan(void **state) {
    h_test *t = *state;
    h_server *gpu = start_on_vulkan(t, "all");
    json_t *health;
    json_t *m = health_model(gpu->port, &health);
    assert_int_equal(h_int(m, "layers_total"), 6);
    assert_int_equal(h_int(m, "layers_offloaded"), 6);
    const json_t *v = device(m, "Vulkan0");
    if (v == NULL) {
        char *d = h_dump(m);
        fail_msg("no Vulkan0 in /health: %s", d);
    }
    assert_string_equal(h_str(v, "backend"), "Vulkan");
    assert_int_equal(h_int(v, "layers"), 6);
    assert_true(h_int(v, "weight_bytes") > 900000); /* all but the token embeddings */
    assert_true(h_int(v, "kv_bytes") > 0);
    assert_int_equal(layers_on(m, "CPU"), 0);
    json_decref(health);
    assert_same_as_cpu(t, gpu, "--gpu-layers all");
    h_pass(t);
}

/* --gpu-layers 2: exactly two layers (the last block and the output layer) on Vulkan0. */
static void test_two_layers(void **state) {
    h_test *t = *state;
    h_server *gpu = start_on_vulkan(t, "2");
    json_t *health;
    json_t *m = health_model(gpu->port, &health);
    assert_int_equal(h_int(m, "layers_offloaded"), 2);
    assert_int_equal(layers_on(m, "Vulkan0"), 2);
    assert_int_equal(layers_on(m, "CPU"), 4);
    /* one of the two has a KV cache: a fifth of the model's, the rest is on the CPU */
    long long kv_gpu = h_int(device(m, "Vulkan0"), "kv_bytes");
    long long kv_cpu = h_int(device(m, "CPU"), "kv_bytes");
    assert_int_equal(kv_cpu, 4 * kv_gpu);
    json_decref(health);
    assert_same_as_cpu(t, gpu, "--gpu-layers 2");
    h_pass(t);
}

/* Per-model choices win over the defaults: with two models served, --gpu-layers 1 for all and
 * --gpu-layers stories260k=2 put 2 layers of stories260k and 1 of the other on Vulkan0. */
static void test_per_model_layers(void **state) {
    h_test *t = *state;
    lavapipe_on();
    char tiny[PATH_MAX]; /* h_model_path returns a buffer that its next call reuses */
    snprintf(tiny, sizeof tiny, "%s", h_model_path("llama-2-tiny-random.gguf"));
    const char *args[] = {"--model", tiny,           "--gpu-backend", "vulkan",     "--gpu-layers",
                          "1",       "--gpu-layers", "stories260k=2", "--parallel", "1",
                          NULL};
    h_server *gpu = h_start_default(t, args);
    json_t *health = h_health(gpu->port);
    json_t *models = h_arr(health, "models");
    int seen = 0;
    for (size_t i = 0; i < json_array_size(models); i++) {
        const json_t *m = json_array_get(models, i);
        long long want = strcmp(h_str(m, "name"), "stories260k") == 0 ? 2 : 1;
        assert_true(json_is_true(json_object_get(m, "loaded")));
        assert_int_equal(h_int(m, "layers_offloaded"), want);
        assert_int_equal(layers_on(m, "Vulkan0"), want);
        seen++;
    }
    assert_int_equal(seen, 2);
    json_decref(health);
    h_pass(t);
}

/* Auto with lavapipe visible: the tiny model fits, so every layer goes to Vulkan0. */
static void test_auto_fits_all(void **state) {
    h_test *t = *state;
    lavapipe_on();
    h_server *s = h_start_default(t, NULL);
    json_t *health;
    json_t *m = health_model(s->port, &health);
    assert_int_equal(h_int(m, "layers_offloaded"), 6);
    assert_int_equal(layers_on(m, "Vulkan0"), 6);
    json_decref(health);
    char *log = h_server_read_log(s);
    assert_has("auto log", log, "auto: 6 of 6 layers fit");
    free(log);
    h_pass(t);
}

/* Without GGML_VK_VISIBLE_DEVICES ggml ignores lavapipe (a CPU-type Vulkan device): auto runs
 * on the CPU and says why; a forced Vulkan backend refuses to start. */
static void test_without_variable(void **state) {
    h_test *t = *state;
    lavapipe_off();
    h_server *s = h_start_default(t, NULL);
    json_t *health;
    json_t *m = health_model(s->port, &health);
    assert_int_equal(h_int(m, "layers_offloaded"), 0);
    assert_int_equal(layers_on(m, "CPU"), 6);
    assert_null(device(m, "Vulkan0"));
    json_decref(health);
    char *log = h_server_read_log(s);
    assert_has("auto log", log, "auto uses the CPU only", "GGML_VK_VISIBLE_DEVICES");
    free(log);

    const char *info[] = {"gpu-info", NULL};
    char *out = run_expect(t, info, RUN_DEADLINE_MS, 0, "gpu-info");
    /* no GPU device node: the module is not loaded at all (docs/adr/0006); with one, it loads
     * and finds no usable device */
    if (access("/dev/dri", F_OK) == 0 || access("/dev/nvidiactl", F_OK) == 0)
        assert_has("gpu-info", out, "loaded: Vulkan, 0 devices", "auto uses the CPU only");
    else
        assert_has("gpu-info", out, "libggml-vulkan.so", "not loaded: skipped: no GPU device node",
                   "auto uses the CPU only", "GGML_VK_VISIBLE_DEVICES");
    free(out);

    const char *args[] = {"serve",
                          "--bind",
                          "127.0.0.1:0",
                          "--gpu-backend",
                          "vulkan",
                          "--model",
                          h_model_path(H_MODEL_FILE),
                          NULL};
    out = run_expect(t, args, RUN_DEADLINE_MS, 1, "--gpu-backend vulkan without a usable device");
    assert_has("forced vulkan", out, "no Vulkan device", "GGML_VK_VISIBLE_DEVICES",
               "devices found instead: CPU");
    free(out);
    h_pass(t);
}

/* The module must be there: installing it is part of the test set-up, never a reason to skip. */
static int check_installed(void **state) {
    (void)state;
    char tmp[PATH_MAX], module[PATH_MAX + 32], cache[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s", h_bin());
    char *bindir = dirname(tmp);
    snprintf(module, sizeof module, "%s/lib/libggml-vulkan.so", bindir);
    if (access(module, R_OK) != 0) {
        fprintf(stderr,
                "it_gpu_vulkan: %s is missing: run scripts/deps.sh --gpu vulkan (make "
                "test does) and build again\n",
                module);
        return -1;
    }
    snprintf(cache, sizeof cache, "%s/mesa-shader-cache", bindir);
    setenv("MESA_SHADER_CACHE_DIR", cache, 1);
    return 0;
}

int main(void) {
    unsetenv("SHIMMY_GPU_BACKEND");
    unsetenv("SHIMMY_BACKEND_DIR");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gpu_info_and_warm_up, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_all_layers_on_vulkan, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_two_layers, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_per_model_layers, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_auto_fits_all, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_without_variable, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, check_installed, NULL);
}
