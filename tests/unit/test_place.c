/* Unit tests for gpu/place: where a model's layers are, read from the tensors a graph touches.
 * Real ggml tensors in real backend buffers: weights on the CPU, on a Vulkan device (Mesa's
 * lavapipe, named by GGML_VK_VISIBLE_DEVICES as in tests/integration/it_gpu_vulkan.c) and in its
 * pinned host memory; KV cache tensors; a view; a graph node whose sources are weights. Checks
 * the majority rule per layer, the device order (GPUs first, the CPU last), KV scaling, and that a
 * tensor seen twice counts once. The Vulkan module and lavapipe come from scripts/test-deps.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "gpu/place.h"

#define N_LAYER 4 /* blk.0 .. blk.3, and the output layer as layer 4 */

static ggml_backend_dev_t cpu_dev, vk_dev;

typedef struct side {
    struct ggml_context *ctx;
    ggml_backend_buffer_t buf;
} side;

/* A context of tensors named names[i] with sizes[i] floats, allocated in buft with usage. */
static side make_side(ggml_backend_buffer_type_t buft, enum ggml_backend_buffer_usage usage,
                      const char *const *names, const int *sizes, int n, struct ggml_tensor **out) {
    struct ggml_init_params ip = {.mem_size = ggml_tensor_overhead() * 32, .no_alloc = true};
    side s = {ggml_init(ip), NULL};
    assert_non_null(s.ctx);
    for (int i = 0; i < n; i++) {
        out[i] = ggml_new_tensor_1d(s.ctx, GGML_TYPE_F32, sizes[i]);
        ggml_set_name(out[i], names[i]);
    }
    s.buf = ggml_backend_alloc_ctx_tensors_from_buft(s.ctx, buft);
    assert_non_null(s.buf);
    ggml_backend_buffer_set_usage(s.buf, usage);
    return s;
}

static void side_free(side *s) {
    ggml_backend_buffer_free(s->buf);
    ggml_free(s->ctx);
}

static void observe_all(gpu_place *p, struct ggml_tensor **t, int n) {
    for (int i = 0; i < n; i++)
        assert_false(gpu_place_observe(t[i], true, p)); /* needs no data */
}

static void test_split_model(void **state) {
    (void)state;
    /* CPU: the token embeddings (no layer), layer 0, a tenth of layer 3 */
    const char *cpu_names[] = {"token_embd.weight",   "blk.0.attn_q.weight",
                               "blk.0.ffn_up.weight", "blk.3.attn_norm.weight",
                               "blk.9.attn_q.weight", "blk.x.weight"};
    const int cpu_sizes[] = {1000, 256, 512, 100, 50, 25};
    /* Vulkan: layers 1-2, most of layer 3, the output layer */
    const char *vk_names[] = {"blk.1.attn_q.weight", "blk.2.attn_q.weight", "blk.3.ffn_up.weight",
                              "output.weight", "output_norm.weight"};
    const int vk_sizes[] = {300, 300, 900, 700, 10};
    /* Vulkan's pinned host memory counts as the CPU */
    const char *pin_names[] = {"blk.0.ffn_down.weight"};
    const int pin_sizes[] = {64};
    const char *kv_cpu_names[] = {"cache_k_l0", "cache_v_l0"};
    const int kv_cpu_sizes[] = {128, 128};
    const char *kv_vk_names[] = {"cache_k_l1", "cache_v_l1", "cache_swa_k_l2", "attn_out-3"};
    const int kv_vk_sizes[] = {128, 128, 64, 4096}; /* the last is neither weights nor KV */
    struct ggml_tensor *cw[6], *vw[5], *pw[1], *ck[2], *vk[4];
    side s_cpu = make_side(ggml_backend_dev_buffer_type(cpu_dev), GGML_BACKEND_BUFFER_USAGE_WEIGHTS,
                           cpu_names, cpu_sizes, 6, cw);
    side s_vk = make_side(ggml_backend_dev_buffer_type(vk_dev), GGML_BACKEND_BUFFER_USAGE_WEIGHTS,
                          vk_names, vk_sizes, 5, vw);
    ggml_backend_buffer_type_t host = ggml_backend_dev_host_buffer_type(vk_dev);
    assert_non_null(host);
    side s_pin = make_side(host, GGML_BACKEND_BUFFER_USAGE_WEIGHTS, pin_names, pin_sizes, 1, pw);
    side s_kc = make_side(ggml_backend_dev_buffer_type(cpu_dev), GGML_BACKEND_BUFFER_USAGE_ANY,
                          kv_cpu_names, kv_cpu_sizes, 2, ck);
    side s_kv = make_side(ggml_backend_dev_buffer_type(vk_dev), GGML_BACKEND_BUFFER_USAGE_COMPUTE,
                          kv_vk_names, kv_vk_sizes, 4, vk);

    gpu_place *p = gpu_place_new(N_LAYER);
    assert_non_null(p);
    assert_true(gpu_place_observe(cw[0], false, p)); /* the "ask" pass records nothing */
    observe_all(p, cw, 6);
    observe_all(p, pw, 1);
    observe_all(p, ck, 2);
    observe_all(p, vk, 4);
    /* the Vulkan weights as the sources of a graph node, and one of them again through a view */
    struct ggml_init_params gp = {.mem_size = ggml_tensor_overhead() * 16 + ggml_graph_overhead(),
                                  .no_alloc = true};
    struct ggml_context *g = ggml_init(gp);
    struct ggml_tensor *sum = ggml_add(g, vw[0], vw[1]);
    struct ggml_tensor *view = ggml_view_1d(g, vw[2], 100, 0);
    struct ggml_tensor *sum2 = ggml_add(g, vw[3], ggml_view_1d(g, vw[3], 700, 0));
    assert_false(gpu_place_observe(sum, true, p));
    assert_false(gpu_place_observe(view, true, p));
    assert_false(gpu_place_observe(sum2, true, p));
    observe_all(p, &vw[2], 3); /* blk.3.ffn_up itself (already seen through its view), output* */
    observe_all(p, cw, 6);     /* everything again: counted once */

    gpu_place_dev d[4];
    int offloaded = -1, seen = -1;
    int n = gpu_place_result(p, 2.0, d, 4, &offloaded, &seen);
    assert_int_equal(n, 2);
    assert_int_equal(seen, N_LAYER + 1);
    assert_int_equal(offloaded, 4); /* blk.1, blk.2, blk.3 (900 of 1000 floats), output */

    assert_string_equal(d[0].backend, "Vulkan"); /* GPUs first */
    assert_false(d[0].is_cpu);
    assert_int_equal(d[0].layers, 4);
    assert_int_equal(d[0].weights, (300 + 300 + 900 + 700 + 10) * sizeof(float));
    assert_int_equal(d[0].kv, (128 + 128 + 64) * sizeof(float) * 2); /* scaled by 2 */
    assert_true(ggml_backend_dev_get(d[0].index) == vk_dev);

    assert_true(d[1].is_cpu); /* the CPU last */
    assert_string_equal(d[1].name, ggml_backend_dev_name(cpu_dev));
    assert_int_equal(d[1].layers, 1); /* blk.0 */
    /* token_embd and the names of no layer (blk.9 is past n_layer, blk.x no number) count as
     * weights without a layer; blk.0 includes its pinned host part */
    assert_int_equal(d[1].weights, (1000 + 256 + 512 + 100 + 50 + 25 + 64) * sizeof(float));
    assert_int_equal(d[1].kv, (128 + 128) * sizeof(float) * 2);

    assert_int_equal(gpu_place_result(p, 1.0, d, 1, &offloaded, &seen), 1); /* cap respected */
    assert_false(d[0].is_cpu);

    gpu_place_free(p);
    ggml_free(g);
    side_free(&s_cpu);
    side_free(&s_vk);
    side_free(&s_pin);
    side_free(&s_kc);
    side_free(&s_kv);
}

static void test_nothing_seen(void **state) {
    (void)state;
    gpu_place *p = gpu_place_new(N_LAYER);
    assert_non_null(p);
    gpu_place_dev d[2];
    int offloaded = -1, seen = -1;
    assert_int_equal(gpu_place_result(p, 1.0, d, 2, &offloaded, &seen), 0);
    assert_int_equal(offloaded, 0);
    assert_int_equal(seen, 0);
    gpu_place_free(p);
    gpu_place_free(NULL);
}

static int setup(void **state) {
    (void)state;
    size_t idx[LIM_GPU_DEVICES], n = 0;
    if (fixtures_lavapipe(idx, &n) != 0)
        return -1;
    vk_dev = ggml_backend_dev_get(idx[0]);
    cpu_dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    return cpu_dev != NULL ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_model),
        cmocka_unit_test(test_nothing_seen),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
