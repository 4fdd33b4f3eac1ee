/* Unit tests for models/gguf_meta: the real test models in SHIMMY_TEST_MODELS and fixtures
 * written here with the gguf API (adapter, projector, vocab-only, odd key types), plus files
 * that are not GGUF, truncated, obsolete or missing. */
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
#include "models/gguf_meta.h"

#include "fixtures.h"

typedef struct fixture {
    const char *arch;     /* NULL: no general.architecture */
    const char *type;     /* NULL: no general.type */
    int file_type;        /* -1: no general.file_type */
    enum ggml_type wtype; /* type of the 2-D tensors */
    int n_tensors;        /* 0: vocab-only */
    bool i64_keys;        /* write <arch>.* numbers as int64 / uint16 instead of uint32 */
} fixture;

static void write_fixture(const char *path, const fixture *fx) {
    struct gguf_context *g = gguf_init_empty();
    struct ggml_init_params ip = {.mem_size = 1 << 20, .mem_buffer = NULL, .no_alloc = false};
    struct ggml_context *ctx = ggml_init(ip);
    assert_non_null(ctx);
    char key[128];
    if (fx->arch) {
        gguf_set_val_str(g, "general.architecture", fx->arch);
        snprintf(key, sizeof key, "%s.context_length", fx->arch);
        if (fx->i64_keys)
            gguf_set_val_i64(g, key, 8192);
        else
            gguf_set_val_u32(g, key, 8192);
        snprintf(key, sizeof key, "%s.block_count", fx->arch);
        if (fx->i64_keys)
            gguf_set_val_u16(g, key, 3);
        else
            gguf_set_val_u32(g, key, 3);
        snprintf(key, sizeof key, "%s.embedding_length", fx->arch);
        gguf_set_val_i32(g, key, 16);
    }
    if (fx->type)
        gguf_set_val_str(g, "general.type", fx->type);
    if (fx->file_type >= 0)
        gguf_set_val_u32(g, "general.file_type", (uint32_t)fx->file_type);
    for (int i = 0; i < fx->n_tensors; i++) {
        char name[64];
        snprintf(name, sizeof name, "blk.%d.w", i);
        struct ggml_tensor *t = ggml_new_tensor_2d(ctx, fx->wtype, 64, 4);
        memset(t->data, 0, ggml_nbytes(t));
        ggml_set_name(t, name);
        gguf_add_tensor(g, t);
    }
    if (fx->n_tensors > 0) {
        struct ggml_tensor *norm = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 64);
        memset(norm->data, 0, ggml_nbytes(norm));
        ggml_set_name(norm, "norm.weight");
        gguf_add_tensor(g, norm);
    }
    assert_true(gguf_write_to_file(g, path, false));
    gguf_free(g);
    ggml_free(ctx);
}

static void read_ok(const char *path, gguf_meta *m) {
    char err[512] = "";
    shimmy_err rc = gguf_meta_read(path, m, err, sizeof err);
    if (rc != SHIMMY_OK)
        fail_msg("gguf_meta_read(%s): %d %s", path, rc, err);
}

static void expect_error(const char *path, shimmy_err want, const char *needle) {
    gguf_meta m;
    char err[512] = "";
    shimmy_err rc = gguf_meta_read(path, &m, err, sizeof err);
    printf("  %s -> %d \"%s\"\n", path, rc, err);
    assert_int_equal(rc, want);
    if (strstr(err, needle) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

static void test_stories260k(void **state) {
    (void)state;
    char path[4096];
    model_path("stories260K.gguf", path, sizeof path);
    gguf_meta m;
    read_ok(path, &m);
    printf("  stories260K: arch=%s quant=%s params=%llu ctx=%u layers=%u embd=%u tensors=%lld\n",
           m.arch, m.quant, (unsigned long long)m.n_params, m.n_ctx_train, m.n_layer, m.n_embd,
           (long long)m.n_tensors);
    assert_int_equal(m.version, 3);
    assert_string_equal(m.arch, "llama");
    assert_string_equal(m.quant, "F32");
    assert_int_equal(m.n_layer, 5);
    assert_int_equal(m.n_ctx_train, 2048);
    assert_int_equal(m.n_embd, 64);
    assert_int_equal(m.n_params, 292800);
    assert_int_equal(m.n_tensors, 48);
    assert_false(m.has_chat_template);
    char why[128] = "";
    assert_true(gguf_meta_is_model(&m, why, sizeof why));
}

static void test_llama2_tiny_f16(void **state) {
    (void)state;
    char path[4096];
    model_path("llama-2-tiny-random.gguf", path, sizeof path);
    gguf_meta m;
    read_ok(path, &m);
    assert_string_equal(m.arch, "llama");
    assert_string_equal(m.quant, "F16");
    assert_int_equal(m.n_layer, 1);
    assert_int_equal(m.n_embd, 8);
    assert_true(gguf_meta_is_model(&m, NULL, 0));
}

static void test_v1_refused(void **state) {
    (void)state;
    char path[4096];
    model_path("stories260K-ggufv1.gguf", path, sizeof path);
    expect_error(path, ERR_MODEL_LOAD, "GGUF v1 is obsolete");
}

static void test_not_gguf(void **state) {
    (void)state;
    char path[4096];
    tmp_path("text.gguf", path, sizeof path);
    write_text(path, "this is not a model\n");
    expect_error(path, ERR_MODEL_LOAD, "not a GGUF file");
    tmp_path("empty.gguf", path, sizeof path);
    write_text(path, "");
    expect_error(path, ERR_MODEL_LOAD, "not a GGUF file");
    tmp_path("magic-only.gguf", path, sizeof path);
    write_text(path, "GGUF");
    expect_error(path, ERR_MODEL_LOAD, "truncated");
    tmp_path("v9.gguf", path, sizeof path);
    write_bytes(path, "GGUF\x09\0\0\0\0\0\0\0\0\0\0\0", 16);
    expect_error(path, ERR_MODEL_LOAD, "unsupported GGUF version 9");
}

static void test_truncated(void **state) {
    (void)state;
    char src[4096], path[4096];
    model_path("stories260K.gguf", src, sizeof src);
    static const size_t cuts[] = {12, 100, 3000, 20000, 600000, 1185375};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        tmp_path("cut.gguf", path, sizeof path);
        copy_prefix(src, path, cuts[i]);
        expect_error(path, ERR_MODEL_LOAD, "truncated");
    }
}

static void test_missing_and_dir(void **state) {
    (void)state;
    char path[4096];
    tmp_path("no-such-file.gguf", path, sizeof path);
    expect_error(path, ERR_IO, "No such file");
    expect_error(tmp_dir, ERR_IO, "directory");
}

static void test_adapter_not_model(void **state) {
    (void)state;
    char path[4096];
    tmp_path("lora.gguf", path, sizeof path);
    fixture fx = {
        .arch = "llama", .type = "adapter", .file_type = 0, .wtype = GGML_TYPE_F32, .n_tensors = 2};
    write_fixture(path, &fx);
    gguf_meta m;
    read_ok(path, &m);
    assert_string_equal(m.type, "adapter");
    char why[128] = "";
    assert_false(gguf_meta_is_model(&m, why, sizeof why));
    assert_non_null(strstr(why, "adapter"));
}

/* A projector's keys as llama.cpp's converter writes them (tools/mtmd/clip-impl.h): what clip.cpp
 * decides the modalities from is the value of clip.has_*_encoder, not its presence. */
static void write_projector(const char *path, bool legacy) {
    struct gguf_context *g = gguf_init_empty();
    struct ggml_init_params ip = {.mem_size = 1 << 16, .mem_buffer = NULL, .no_alloc = false};
    struct ggml_context *ctx = ggml_init(ip);
    gguf_set_val_str(g, "general.architecture", "clip");
    if (legacy) { /* before general.type and clip.has_vision_encoder */
        gguf_set_val_u32(g, "clip.vision.image_size", 336);
        gguf_set_val_str(g, "clip.projector_type", "mlp");
        gguf_set_val_u32(g, "clip.vision.projection_dim", 768);
    } else {
        gguf_set_val_str(g, "general.type", "mmproj");
        gguf_set_val_bool(g, "clip.has_vision_encoder", false);
        gguf_set_val_bool(g, "clip.has_audio_encoder", true);
        gguf_set_val_u32(g, "clip.vision.image_size", 336); /* present, yet no image encoder */
        gguf_set_val_str(g, "clip.audio.projector_type", "ultravox");
        gguf_set_val_u32(g, "clip.audio.projection_dim", 2048);
    }
    struct ggml_tensor *t = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 16);
    memset(t->data, 0, ggml_nbytes(t));
    ggml_set_name(t, "mm.0.weight");
    gguf_add_tensor(g, t);
    assert_true(gguf_write_to_file(g, path, false));
    gguf_free(g);
    ggml_free(ctx);
}

static void test_projector_modalities(void **state) {
    (void)state;
    char path[4096];
    gguf_meta m;
    tmp_path("audio-mmproj.gguf", path, sizeof path);
    write_projector(path, false);
    read_ok(path, &m);
    assert_true(gguf_meta_is_projector(&m));
    assert_false(gguf_meta_is_model(&m, NULL, 0));
    assert_false(m.has_vision);
    assert_true(m.has_audio);
    assert_string_equal(m.proj_type, "ultravox");
    assert_int_equal(m.proj_dim, 2048);
    tmp_path("legacy-mmproj.gguf", path, sizeof path);
    write_projector(path, true);
    read_ok(path, &m);
    assert_true(gguf_meta_is_projector(&m));
    assert_true(m.has_vision);
    assert_false(m.has_audio);
    assert_string_equal(m.proj_type, "mlp");
    assert_int_equal(m.proj_dim, 768);
}

static void test_projector_and_vocab_only(void **state) {
    (void)state;
    char path[4096], why[128];
    gguf_meta m;
    tmp_path("mmproj.gguf", path, sizeof path);
    fixture clip = {
        .arch = "clip", .type = "model", .file_type = 1, .wtype = GGML_TYPE_F16, .n_tensors = 2};
    write_fixture(path, &clip);
    read_ok(path, &m);
    assert_false(gguf_meta_is_model(&m, why, sizeof why));
    assert_non_null(strstr(why, "projector"));

    tmp_path("vocab.gguf", path, sizeof path);
    fixture vocab = {.arch = "llama", .file_type = 0, .wtype = GGML_TYPE_F32, .n_tensors = 0};
    write_fixture(path, &vocab);
    read_ok(path, &m);
    assert_int_equal(m.n_tensors, 0);
    assert_int_equal(m.n_params, 0);
    assert_false(gguf_meta_is_model(&m, why, sizeof why));
    assert_non_null(strstr(why, "vocab-only"));
}

static void test_quant_names(void **state) {
    (void)state;
    char path[4096];
    gguf_meta m;
    tmp_path("q.gguf", path, sizeof path);
    /* general.file_type wins over the tensors: 15 is LLAMA_FTYPE_MOSTLY_Q4_K_M. */
    fixture fx = {.arch = "llama", .file_type = 15, .wtype = GGML_TYPE_F32, .n_tensors = 2};
    write_fixture(path, &fx);
    read_ok(path, &m);
    assert_string_equal(m.quant, "Q4_K_M");
    /* With the LLAMA_FTYPE_GUESSED flag. */
    fx.file_type = 1024 + 7;
    write_fixture(path, &fx);
    read_ok(path, &m);
    assert_string_equal(m.quant, "Q8_0");
    /* No file_type: the type of the matrices, not of the 1-D F32 norm. */
    fx.file_type = -1;
    fx.wtype = GGML_TYPE_Q8_0;
    write_fixture(path, &fx);
    read_ok(path, &m);
    assert_string_equal(m.quant, "Q8_0");
    assert_int_equal(m.n_params, 2 * 64 * 4 + 64);
    fx.wtype = GGML_TYPE_F16;
    write_fixture(path, &fx);
    read_ok(path, &m);
    assert_string_equal(m.quant, "F16");
}

static void test_integer_key_types(void **state) {
    (void)state;
    char path[4096];
    gguf_meta m;
    tmp_path("ints.gguf", path, sizeof path);
    fixture fx = {.arch = "qwen2",
                  .type = "model",
                  .file_type = 1,
                  .wtype = GGML_TYPE_F16,
                  .n_tensors = 1,
                  .i64_keys = true};
    write_fixture(path, &fx);
    read_ok(path, &m);
    assert_string_equal(m.arch, "qwen2");
    assert_int_equal(m.n_ctx_train, 8192);
    assert_int_equal(m.n_layer, 3);
    assert_int_equal(m.n_embd, 16);
    assert_true(gguf_meta_is_model(&m, NULL, 0));
}

static int setup(void **state) {
    (void)state;
    return fixtures_setup("shimmy-gguf-meta");
}

static int teardown(void **state) {
    (void)state;
    return fixtures_teardown();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories260k),
        cmocka_unit_test(test_llama2_tiny_f16),
        cmocka_unit_test(test_v1_refused),
        cmocka_unit_test(test_not_gguf),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_missing_and_dir),
        cmocka_unit_test(test_adapter_not_model),
        cmocka_unit_test(test_projector_and_vocab_only),
        cmocka_unit_test(test_projector_modalities),
        cmocka_unit_test(test_quant_names),
        cmocka_unit_test(test_integer_key_types),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
