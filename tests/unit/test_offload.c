/* Unit tests for gpu/offload: the offload plan of a model load (devices, shares, layer count and
 * its reason) on the real stories260K file, with the CPU and with a real Vulkan device: Mesa's
 * software one (lavapipe), which ggml lists once GGML_VK_VISIBLE_DEVICES names it, as
 * tests/integration/it_gpu_vulkan.c does. The Vulkan module and lavapipe come from
 * scripts/test-deps.sh (make test); without them the set-up fails and says so. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "gpu/offload.h"

static char stories[4096 + 32];

static gpu_offload_req req(gpu_backend b, gpu_layers_mode mode, int layers) {
    gpu_offload_req r = {
        .backend = b,
        .mode = mode,
        .layers = layers,
        .main_gpu = -1,
        .ctx = {.n_ctx_slot = 256, .ctx_cap = 4096, .n_parallel = 1, .n_ubatch = 512}};
    return r;
}

static void plan_ok(const gpu_offload_req *r, const char *path, gpu_offload *o) {
    char err[1024] = "";
    shimmy_err rc = gpu_offload_plan(path, r, o, err, sizeof err);
    if (rc != SHIMMY_OK)
        fail_msg("gpu_offload_plan: %d %s", (int)rc, err);
}

/* stories260K: 5 repeating layers and the output layer. */
#define STORIES_LAYERS 6

static void test_cpu_backend(void **state) {
    (void)state;
    gpu_offload_req r = req(GPU_CPU, GPU_LAYERS_ALL, 0); /* the layer mode does not matter */
    gpu_offload o;
    plan_ok(&r, stories, &o);
    assert_int_equal(o.n_dev, 0);
    assert_int_equal(o.n_gpu_layers, 0);
    assert_string_equal(o.why, "--gpu-backend cpu");
    assert_int_equal(o.layers_total, STORIES_LAYERS);
    assert_int_equal(o.plan.n_gpu, 0);
    assert_int_equal(o.plan.cpu.layers, STORIES_LAYERS);
    assert_true(o.plan.cpu.weights > 0 && o.plan.cpu.kv > 0);
}

static void test_all_layers(void **state) {
    (void)state;
    gpu_offload_req r = req(GPU_VULKAN, GPU_LAYERS_ALL, 0);
    gpu_offload o;
    plan_ok(&r, stories, &o);
    assert_int_equal(o.n_dev, 1);
    gpu_device d;
    assert_true(gpu_device_get(o.dev[0], &d));
    assert_string_equal(d.backend, "Vulkan");
    assert_int_equal(o.n_gpu_layers, -1); /* llama.cpp's "all" */
    assert_string_equal(o.why, "--gpu-layers all");
    assert_true(o.split[0] > 0.0f); /* by free memory, or an equal share when none is reported */
    assert_int_equal(o.plan.dev[0].layers, STORIES_LAYERS);
    assert_int_equal(o.plan.cpu.layers, 0);
}

static void test_layer_count(void **state) {
    (void)state;
    gpu_offload_req r = req(GPU_VULKAN, GPU_LAYERS_COUNT, 2);
    gpu_offload o;
    plan_ok(&r, stories, &o);
    assert_int_equal(o.n_gpu_layers, 2);
    assert_string_equal(o.why, "--gpu-layers 2");
    assert_int_equal(o.plan.n_gpu, 2);
    assert_int_equal(o.plan.dev[0].layers, 2); /* the last layers go first (llama.cpp's order) */
    assert_int_equal(o.plan.cpu.layers, STORIES_LAYERS - 2);
}

static void test_auto_fits_all(void **state) {
    (void)state;
    gpu_offload_req r = req(GPU_VULKAN, GPU_LAYERS_AUTO, 0);
    gpu_offload o;
    plan_ok(&r, stories, &o);
    /* a 1 MiB model fits in any device that reports memory */
    gpu_device d;
    assert_true(gpu_device_get(o.dev[0], &d));
    if (d.mem_free < (512ull << 20))
        fail_msg("%s reports %llu bytes free: too little to test the fit", d.name,
                 (unsigned long long)d.mem_free);
    assert_int_equal(o.n_gpu_layers, STORIES_LAYERS);
    char want[64];
    snprintf(want, sizeof want, "auto: %d of %d layers fit", STORIES_LAYERS, STORIES_LAYERS);
    assert_true(strncmp(o.why, want, strlen(want)) == 0);
    assert_non_null(strstr(o.why, d.name)); /* each device's figures follow */
    assert_true(o.plan.dev[0].need > o.plan.dev[0].weights);
}

static void test_tensor_split_as_given(void **state) {
    (void)state;
    float shares[LIM_GPU_DEVICES] = {3.0f};
    gpu_offload_req r = req(GPU_VULKAN, GPU_LAYERS_ALL, 0);
    r.tensor_split = shares;
    gpu_offload o;
    plan_ok(&r, stories, &o);
    assert_true(o.split[0] == 3.0f);
}

static void test_main_gpu(void **state) {
    (void)state;
    gpu_offload_req r = req(GPU_VULKAN, GPU_LAYERS_ALL, 0);
    r.main_gpu = 0;
    gpu_offload o;
    plan_ok(&r, stories, &o);
    assert_int_equal(o.n_dev, 1);
    r.main_gpu = 1; /* past the one chosen device */
    char err[256] = "";
    assert_int_equal(gpu_offload_plan(stories, &r, &o, err, sizeof err), ERR_USAGE);
    assert_string_equal(err, "--main-gpu 1: only 1 device chosen");
    r = req(GPU_CPU, GPU_LAYERS_AUTO, 0);
    r.main_gpu = 0; /* the CPU backend chooses none */
    assert_int_equal(gpu_offload_plan(stories, &r, &o, err, sizeof err), ERR_USAGE);
    assert_string_equal(err, "--main-gpu 0: only 0 devices chosen");
}

static void test_unreadable_model(void **state) {
    (void)state;
    char path[4096];
    tmp_path("not-a-model.gguf", path, sizeof path);
    write_text(path, "not GGUF");
    gpu_offload_req r = req(GPU_VULKAN, GPU_LAYERS_AUTO, 0);
    gpu_offload o;
    plan_ok(&r, path, &o); /* llama.cpp reports the file's problem at load */
    assert_int_equal(o.layers_total, 0);
    assert_int_equal(o.n_gpu_layers, -1);
    assert_non_null(strstr(o.why, "auto: could not size the model"));
    assert_non_null(strstr(o.why, "offloading all"));
}

static void test_backend_without_device(void **state) {
    (void)state;
    gpu_offload_req r = req(GPU_METAL, GPU_LAYERS_AUTO, 0); /* no Metal module on Linux */
    gpu_offload o;
    char err[1024] = "";
    assert_int_equal(gpu_offload_plan(stories, &r, &o, err, sizeof err), ERR_MODEL_LOAD);
    assert_non_null(strstr(err, "Metal"));
}

static int setup(void **state) {
    (void)state;
    if (fixtures_setup("test_offload") != 0)
        return -1;
    snprintf(stories, sizeof stories, "%s/stories260K.gguf", models_dir);
    size_t idx[LIM_GPU_DEVICES], n = 0;
    return fixtures_lavapipe(idx, &n);
}

static int teardown(void **state) {
    (void)state;
    return fixtures_teardown();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_backend),           cmocka_unit_test(test_all_layers),
        cmocka_unit_test(test_layer_count),           cmocka_unit_test(test_auto_fits_all),
        cmocka_unit_test(test_tensor_split_as_given), cmocka_unit_test(test_main_gpu),
        cmocka_unit_test(test_unreadable_model),      cmocka_unit_test(test_backend_without_device),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
