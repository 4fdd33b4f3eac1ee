/* Unit tests for gpu/fit: llama.cpp's layer assignment replicated (worked examples from
 * llama_model_base::load_tensors), the auto fit against fake device memory figures (one device
 * with plenty, little and too little memory; two unequal devices; --tensor-split), and the
 * model figures read from GGUF files (the real stories260K, its KV cache for each cache type
 * against llama.cpp's own figures, a draft model, and fixtures written here for tied embeddings
 * and per-layer KV head counts). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ggml.h"
#include "gguf.h"
#include "gpu/fit.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

static fit_model M; /* large: not on the stack */

/* n_layer layers of `layer` bytes weights and `kv` bytes KV, an output layer of `out` bytes. */
static void fake_model(int n_layer, uint64_t layer, uint64_t kv, uint64_t out, uint64_t compute) {
    memset(&M, 0, sizeof M);
    M.n_layer = n_layer;
    for (int il = 0; il < n_layer; il++) {
        M.weights[il] = layer;
        M.kv[il] = kv;
    }
    M.weights[n_layer] = out;
    M.compute_bytes = compute;
    M.input_bytes = 50 * MiB;
}

/* ---- fit_assign: llama.cpp's rule ---- */

static void test_assign_last_layers_first(void **state) {
    (void)state;
    int dev[6];
    float one = 1.0f;
    fit_assign(5, 2, &one, 1, dev); /* --gpu-layers 2: blk.4 and the output layer */
    int want[6] = {-1, -1, -1, -1, 0, 0};
    assert_memory_equal(dev, want, sizeof want);
    fit_assign(5, 1, &one, 1, dev); /* 1: only the output layer */
    int want1[6] = {-1, -1, -1, -1, -1, 0};
    assert_memory_equal(dev, want1, sizeof want1);
    fit_assign(5, -1, &one, 1, dev); /* all */
    for (int i = 0; i < 6; i++)
        assert_int_equal(dev[i], 0);
    fit_assign(5, 99, &one, 1, dev); /* more than there are: all */
    for (int i = 0; i < 6; i++)
        assert_int_equal(dev[i], 0);
    fit_assign(5, 0, &one, 1, dev);
    for (int i = 0; i < 6; i++)
        assert_int_equal(dev[i], -1);
    fit_assign(5, -1, NULL, 0, dev); /* no device: nothing offloaded */
    for (int i = 0; i < 6; i++)
        assert_int_equal(dev[i], -1);
}

static void test_assign_split(void **state) {
    (void)state;
    int dev[8];
    float split[2] = {3.0f, 1.0f};
    /* cumulative shares 0.75, 1.0; layer il goes to the first share > il/8 */
    fit_assign(7, -1, split, 2, dev);
    int want[8] = {0, 0, 0, 0, 0, 0, 1, 1};
    assert_memory_equal(dev, want, sizeof want);
    /* 4 of 8 offloaded: the split applies to the offloaded range only */
    fit_assign(7, 4, split, 2, dev);
    int want4[8] = {-1, -1, -1, -1, 0, 0, 0, 1};
    assert_memory_equal(dev, want4, sizeof want4);
    float zero[2] = {0, 0}; /* all zero: equal shares */
    fit_assign(7, -1, zero, 2, dev);
    int want_eq[8] = {0, 0, 0, 0, 1, 1, 1, 1};
    assert_memory_equal(dev, want_eq, sizeof want_eq);
    float only_second[2] = {0, 1};
    fit_assign(7, -1, only_second, 2, dev);
    for (int i = 0; i < 8; i++)
        assert_int_equal(dev[i], 1);
}

static void test_plan_counts(void **state) {
    (void)state;
    fake_model(5, 10 * MiB, 2 * MiB, 30 * MiB, 100 * MiB);
    float one = 1.0f;
    fit_plan p;
    fit_plan_for(&M, 2, &one, 1, &p);
    assert_int_equal(p.n_gpu, 2);
    assert_int_equal(p.dev[0].layers, 2);
    assert_int_equal(p.dev[0].weights, 40 * MiB); /* blk.4 + output */
    assert_int_equal(p.dev[0].kv, 2 * MiB);       /* the output layer has no KV */
    assert_int_equal(p.dev[0].need, 142 * MiB);   /* + compute */
    assert_int_equal(p.cpu.layers, 4);
    assert_int_equal(p.cpu.weights, 40 * MiB + 50 * MiB); /* + token embeddings */
    fit_plan_for(&M, 0, &one, 1, &p);
    assert_int_equal(p.dev[0].layers, 0);
    assert_int_equal(p.dev[0].need, 0); /* an unused device needs nothing */
}

/* ---- fit_auto with fake memory ---- */

static void test_margin(void **state) {
    (void)state;
    assert_int_equal(fit_margin(1 * GiB), LIM_FIT_MARGIN_BYTES);
    assert_int_equal(fit_margin(0), LIM_FIT_MARGIN_BYTES);
    assert_int_equal(fit_margin(100 * GiB), 100 * GiB / 100 * LIM_FIT_MARGIN_PCT);
}

static void test_auto_one_device(void **state) {
    (void)state;
    /* 32 layers x (100 MiB + 10 MiB KV), output 200 MiB, compute 300 MiB: 4020 MiB for all */
    fake_model(32, 100 * MiB, 10 * MiB, 200 * MiB, 300 * MiB);
    fit_plan p;
    uint64_t big = 8 * GiB;
    assert_int_equal(fit_auto(&M, &big, NULL, 1, &p), 33);
    assert_int_equal(p.dev[0].need, 4020 * MiB);
    /* 2 GiB free, 256 MiB margin: 1792 MiB; output 200 + compute 300 + 110 per layer:
     * 12 layers need 1710 MiB, 13 need 1820 MiB */
    uint64_t small = 2 * GiB;
    assert_int_equal(fit_auto(&M, &small, NULL, 1, &p), 12);
    assert_int_equal(p.dev[0].layers, 12);
    assert_true(p.dev[0].need <= small - fit_margin(small));
    /* exactly at the edge: 1710 MiB available fits 12, one byte less fits 11 */
    uint64_t edge = 1710 * MiB + LIM_FIT_MARGIN_BYTES;
    assert_int_equal(fit_auto(&M, &edge, NULL, 1, &p), 12);
    edge -= 1;
    assert_int_equal(fit_auto(&M, &edge, NULL, 1, &p), 11);
    /* not even the output layer with the compute reserve */
    uint64_t tiny = 400 * MiB;
    assert_int_equal(fit_auto(&M, &tiny, NULL, 1, &p), 0);
    assert_int_equal(p.n_gpu, 0);
    assert_int_equal(p.cpu.layers, 33);
}

/* Property: the chosen count fits every device and one more layer does not. */
static void check_maximal(const uint64_t *mem, const float *split, int n_dev, int n) {
    fit_plan p;
    float by_free[LIM_GPU_DEVICES];
    for (int k = 0; k < n_dev; k++)
        by_free[k] = (float)mem[k];
    const float *s = split ? split : by_free;
    fit_plan_for(&M, n, s, n_dev, &p);
    for (int k = 0; k < n_dev; k++)
        assert_true(p.dev[k].need <= mem[k] - fit_margin(mem[k]));
    if (n == M.n_layer + 1)
        return;
    fit_plan_for(&M, n + 1, s, n_dev, &p);
    bool over = false;
    for (int k = 0; k < n_dev; k++)
        over |= p.dev[k].need > mem[k] - fit_margin(mem[k]);
    assert_true(over);
}

static void test_auto_two_devices(void **state) {
    (void)state;
    fake_model(80, 200 * MiB, 20 * MiB, 500 * MiB, 400 * MiB); /* ~18 GiB with KV */
    fit_plan p;
    uint64_t mem[2] = {24 * GiB, 8 * GiB};
    int n = fit_auto(&M, mem, NULL, 2, &p);
    assert_int_equal(n, 81); /* 24 + 8 GiB hold all of it, split 3:1 by free memory */
    assert_true(p.dev[0].layers > 2 * p.dev[1].layers);
    check_maximal(mem, NULL, 2, n);
    uint64_t less[2] = {12 * GiB, 4 * GiB};
    n = fit_auto(&M, less, NULL, 2, &p);
    assert_true(n > 0 && n < 81);
    assert_int_equal(p.dev[0].layers + p.dev[1].layers, n);
    check_maximal(less, NULL, 2, n);
    /* --tensor-split 1,1 on unequal devices: the small one limits the count */
    float even[2] = {1, 1};
    int n_even = fit_auto(&M, less, even, 2, &p);
    assert_true(n_even < n);
    check_maximal(less, even, 2, n_even);
}

/* ---- reading GGUF ---- */

static char models_dir[3072];
static char tmp_dir[] = "/tmp/shimmy-fit-XXXXXX";

static void test_read_stories(void **state) {
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/stories260K.gguf", models_dir);
    if (access(path, R_OK) != 0)
        fail_msg("missing test model %s (set SHIMMY_TEST_MODELS)", path);
    fit_ctx c = {.n_ctx_slot = 256,
                 .ctx_cap = 4096,
                 .n_parallel = 2,
                 .n_ubatch = 512,
                 .type_k = GGML_TYPE_F16,
                 .type_v = GGML_TYPE_F16};
    char err[512];
    assert_int_equal(fit_model_read(path, &c, &M, err, sizeof err), SHIMMY_OK);
    assert_int_equal(M.n_layer, 5);
    /* output.weight 64x512 f32 + output_norm 64 f32 */
    assert_int_equal(M.weights[5], 64 * 512 * 4 + 64 * 4);
    /* 512 cells x 4 KV heads x (8 + 8) dims x 2 bytes */
    for (int il = 0; il < 5; il++) {
        assert_int_equal(M.kv[il], 512 * 4 * 16 * 2);
        assert_true(M.weights[il] > 0 && M.weights[il] == M.weights[0]);
    }
    assert_int_equal(M.input_bytes, 64 * 512 * 4); /* token_embd */
    assert_true(M.compute_bytes > 0);
    /* n_ctx_slot 0: the trained context (2048) under the cap */
    c.n_ctx_slot = 0;
    assert_int_equal(fit_model_read(path, &c, &M, err, sizeof err), SHIMMY_OK);
    assert_int_equal(M.n_ctx_slot, 2048);
    c.ctx_cap = 1024;
    assert_int_equal(fit_model_read(path, &c, &M, err, sizeof err), SHIMMY_OK);
    assert_int_equal(M.n_ctx_slot, 1024);
}

static void stories_path(char *path, size_t len) {
    snprintf(path, len, "%s/stories260K.gguf", models_dir);
    if (access(path, R_OK) != 0)
        fail_msg("missing test model %s (set SHIMMY_TEST_MODELS)", path);
}

static uint64_t kv_total(void) {
    uint64_t t = 0;
    for (int il = 0; il < M.n_layer; il++)
        t += M.kv[il];
    return t;
}

/* --cache-type-k/v: stories260K has 4 KV heads of 8 dims, so one 32-element row of K and one of
 * V per cell and layer: f16 64 bytes, q8_0 one block of 34, q4_0 one block of 18, f32 128. At the
 * trained context (2048 cells) the totals are those llama.cpp itself allocates (its
 * llama_kv_cache log and /health's kv_bytes: 1 310 720 for f16, 1 003 520 for q8_0 K). */
static void test_read_kv_types(void **state) {
    (void)state;
    char path[4096], err[512];
    stories_path(path, sizeof path);
    fit_ctx c = {.n_ctx_slot = 2048,
                 .ctx_cap = 4096,
                 .n_parallel = 1,
                 .n_ubatch = 512,
                 .type_k = GGML_TYPE_F16,
                 .type_v = GGML_TYPE_F16};
    assert_int_equal(fit_model_read(path, &c, &M, err, sizeof err), SHIMMY_OK);
    uint64_t f16 = kv_total();
    assert_int_equal(f16, 1310720);
    fit_plan p;
    fit_plan_for(&M, -1, NULL, 1, &p);
    uint64_t need_f16 = p.dev[0].need;

    c.type_k = GGML_TYPE_Q8_0;
    assert_int_equal(fit_model_read(path, &c, &M, err, sizeof err), SHIMMY_OK);
    uint64_t q8 = kv_total();
    assert_int_equal(q8, 1003520);
    assert_int_equal(f16 - q8, 2048ull * 5 * (64 - 34)); /* K only */
    fit_plan_for(&M, -1, NULL, 1, &p);
    assert_int_equal(need_f16 - p.dev[0].need, f16 - q8);

    c.type_k = GGML_TYPE_Q4_0;
    assert_int_equal(fit_model_read(path, &c, &M, err, sizeof err), SHIMMY_OK);
    uint64_t q4 = kv_total();
    assert_int_equal(f16 - q4, 2048ull * 5 * (64 - 18));
    assert_true(q4 < q8);

    c.type_v = GGML_TYPE_Q4_0; /* both */
    assert_int_equal(fit_model_read(path, &c, &M, err, sizeof err), SHIMMY_OK);
    assert_int_equal(kv_total(), 2048ull * 5 * (18 + 18));

    c.type_k = c.type_v = GGML_TYPE_F32;
    assert_int_equal(fit_model_read(path, &c, &M, err, sizeof err), SHIMMY_OK);
    assert_int_equal(kv_total(), 2 * f16);

    c.type_k = c.type_v = GGML_TYPE_COUNT + 5; /* unknown: f16 */
    assert_int_equal(fit_model_read(path, &c, &M, err, sizeof err), SHIMMY_OK);
    assert_int_equal(kv_total(), f16);
}

/* --model-draft: the draft's weights and f16 KV go with the model's offloaded layers (all of
 * them, to the devices, whatever the model's KV types), or to the CPU when none is offloaded.
 * stories260K drafts for itself here. */
static void test_read_draft(void **state) {
    (void)state;
    char path[4096], err[512];
    stories_path(path, sizeof path);
    fit_ctx c = {.n_ctx_slot = 256,
                 .ctx_cap = 4096,
                 .n_parallel = 2,
                 .n_ubatch = 512,
                 .type_k = GGML_TYPE_Q8_0,
                 .type_v = GGML_TYPE_F16};
    assert_int_equal(fit_model_read(path, &c, &M, err, sizeof err), SHIMMY_OK);
    uint64_t weights = 0, kv = kv_total(), compute = M.compute_bytes;
    for (int il = 0; il <= M.n_layer; il++)
        weights += M.weights[il];
    assert_int_equal(M.draft_weights, 0);
    fit_plan alone;
    fit_plan_for(&M, 2, NULL, 1, &alone);

    c.draft_path = path;
    assert_int_equal(fit_model_read(path, &c, &M, err, sizeof err), SHIMMY_OK);
    assert_int_equal(M.draft_weights, weights);
    assert_int_equal(M.draft_kv, 512ull * 5 * (64 + 64)); /* f16 though the model's K is q8_0 */
    assert_true(M.draft_kv > kv);
    assert_int_equal(M.draft_input, M.input_bytes);
    assert_int_equal(M.compute_bytes, 2 * compute);
    fit_plan p;
    fit_plan_for(&M, 2, NULL, 1, &p); /* 2 of the model's layers: all of the draft's */
    assert_int_equal(p.dev[0].weights, alone.dev[0].weights + weights);
    assert_int_equal(p.dev[0].kv, alone.dev[0].kv + M.draft_kv);
    assert_int_equal(p.cpu.weights, alone.cpu.weights + M.draft_input);
    fit_plan_for(&M, 0, NULL, 1, &p); /* none offloaded: the draft on the CPU too */
    assert_int_equal(p.dev[0].need, 0);
    assert_int_equal(p.cpu.kv, kv + M.draft_kv);
    float split[2] = {3.0f, 1.0f}; /* two devices: the draft by the same shares */
    fit_plan_for(&M, -1, split, 2, &p);
    uint64_t dw = p.dev[0].weights + p.dev[1].weights;
    assert_int_equal(dw, weights + M.draft_weights);

    c.draft_path = "/nonexistent/draft.gguf"; /* unreadable: counts as nothing */
    assert_int_equal(fit_model_read(path, &c, &M, err, sizeof err), SHIMMY_OK);
    assert_int_equal(M.draft_weights + M.draft_kv + M.draft_input, 0);
}

static struct ggml_tensor *add_tensor(struct ggml_context *g, struct gguf_context *gg,
                                      const char *name, int64_t ne0, int64_t ne1) {
    struct ggml_tensor *t = ggml_new_tensor_2d(g, GGML_TYPE_F32, ne0, ne1);
    ggml_set_name(t, name);
    gguf_add_tensor(gg, t);
    return t;
}

/* Tied embeddings (no output.weight) and a per-layer KV head count array. */
static void test_read_fixture(void **state) {
    (void)state;
    struct ggml_init_params ip = {.mem_size = 1 << 20, .mem_buffer = NULL, .no_alloc = false};
    struct ggml_context *g = ggml_init(ip);
    struct gguf_context *gg = gguf_init_empty();
    gguf_set_val_str(gg, "general.architecture", "llama");
    gguf_set_val_u32(gg, "llama.block_count", 2);
    gguf_set_val_u32(gg, "llama.embedding_length", 32);
    gguf_set_val_u32(gg, "llama.attention.head_count", 4);
    int32_t kv_heads[2] = {4, 1};
    gguf_set_arr_data(gg, "llama.attention.head_count_kv", GGUF_TYPE_INT32, kv_heads, 2);
    add_tensor(g, gg, "token_embd.weight", 32, 100);
    add_tensor(g, gg, "output_norm.weight", 32, 1);
    add_tensor(g, gg, "blk.0.attn_q.weight", 32, 32);
    add_tensor(g, gg, "blk.1.attn_q.weight", 32, 32);
    add_tensor(g, gg, "blk.1.ffn_up.weight", 32, 64);
    char path[256];
    snprintf(path, sizeof path, "%s/tied.gguf", tmp_dir);
    assert_true(gguf_write_to_file(gg, path, false));
    gguf_free(gg);
    ggml_free(g);

    fit_ctx c = {.n_ctx_slot = 100,
                 .ctx_cap = 4096,
                 .n_parallel = 1,
                 .n_ubatch = 8,
                 .type_k = GGML_TYPE_F16,
                 .type_v = GGML_TYPE_F16};
    char err[512];
    assert_int_equal(fit_model_read(path, &c, &M, err, sizeof err), SHIMMY_OK);
    assert_int_equal(M.n_layer, 2);
    assert_int_equal(M.weights[0], 32 * 32 * 4);
    assert_int_equal(M.weights[1], 32 * 32 * 4 + 32 * 64 * 4);
    /* the output layer gets its own copy of token_embd */
    assert_int_equal(M.weights[2], 32 * 4 + 32 * 100 * 4);
    /* head dim 8: layer 0 has 4 KV heads, layer 1 one */
    assert_int_equal(M.kv[0], 100 * 4 * 16 * 2);
    assert_int_equal(M.kv[1], 100 * 1 * 16 * 2);
    unlink(path);
}

static void test_read_errors(void **state) {
    (void)state;
    char path[256], err[512];
    snprintf(path, sizeof path, "%s/not.gguf", tmp_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not a gguf file", f);
    fclose(f);
    fit_ctx c = {.n_ctx_slot = 100,
                 .ctx_cap = 4096,
                 .n_parallel = 1,
                 .n_ubatch = 8,
                 .type_k = GGML_TYPE_F16,
                 .type_v = GGML_TYPE_F16};
    assert_int_equal(fit_model_read(path, &c, &M, err, sizeof err), ERR_MODEL_LOAD);
    assert_non_null(strstr(err, path));
    unlink(path);
    assert_int_equal(fit_model_read("/nonexistent/x.gguf", &c, &M, err, sizeof err),
                     ERR_MODEL_LOAD);
}

static int setup(void **state) {
    (void)state;
    const char *env = getenv("SHIMMY_TEST_MODELS");
    snprintf(models_dir, sizeof models_dir, "%s", env ? env : "../shared/models");
    return mkdtemp(tmp_dir) != NULL ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    rmdir(tmp_dir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_assign_last_layers_first),
        cmocka_unit_test(test_assign_split),
        cmocka_unit_test(test_plan_counts),
        cmocka_unit_test(test_margin),
        cmocka_unit_test(test_auto_one_device),
        cmocka_unit_test(test_auto_two_devices),
        cmocka_unit_test(test_read_stories),
        cmocka_unit_test(test_read_kv_types),
        cmocka_unit_test(test_read_draft),
        cmocka_unit_test(test_read_fixture),
        cmocka_unit_test(test_read_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
