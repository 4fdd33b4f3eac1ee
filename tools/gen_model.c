/* gen_model: writes a llama-architecture GGUF of any shape with random weights, for benchmarks
 * and tests that need realistic sizes. The tokenizer (and every other key) is copied from a real
 * GGUF (e.g. ../shared/models/llama-2-tiny-random.gguf: the 32k Llama-2 vocabulary); the shape
 * keys are then set from the options. The output is gibberish but costs exactly what a trained
 * model of the same shape costs to run.
 *
 * usage: gen_model OUT.gguf --vocab-from GGUF [--layers 16] [--embd 1024] [--ff 2816]
 *                  [--heads 16] [--kv-heads 16] [--ctx 4096] [--type f16|q8_0|f32] [--seed 1]
 *                  [--broken] [--chat-template JINJA] [--arch llama|qwen2vl] [--qk-scale 0.02]
 * --arch qwen2vl writes Qwen2-VL's text model (the same tensors; its rope takes M-RoPE positions,
 * rope.dimension_sections splitting each head's rotary pairs between time, height and width as
 * Qwen2-VL's 16/24/24 of 64 do), for the M-RoPE vision fixture (tools/gen_vision.c --qwen2vl).
 * --qk-scale sets the size of the query and key weights (the others are 0.02): at 0.02 attention
 * is nearly uniform, so token positions barely move the answer; a larger one makes them matter
 * (the M-RoPE fixture, whose test must tell right positions from wrong ones).
 * --broken allows a head count that the KV head count does not divide: a fixture for the engine
 * isolation tests (llama.cpp loads it, then aborts at its first decode). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "gguf.h"

#include "gen_common.h"

typedef struct shape {
    long layers, embd, ff, heads, kv_heads, ctx, seed;
    enum ggml_type type;
    const char *chat_template; /* tokenizer.chat_template, or NULL to keep the source's */
    const char *arch;          /* general.architecture: llama or qwen2vl */
    float qk_scale;            /* attn_q and attn_k weights: scale * U(-1, 1) */
} shape;

/* Adds a 2-D (or 1-D when ne1 == 1) tensor of random values with scale, stored as type. */
static int add_tensor(struct gguf_context *g, struct ggml_context *meta, const char *name,
                      int64_t ne0, int64_t ne1, enum ggml_type type, float scale, float bias) {
    struct ggml_tensor *t =
        ne1 == 1 ? ggml_new_tensor_1d(meta, type, ne0) : ggml_new_tensor_2d(meta, type, ne0, ne1);
    ggml_set_name(t, name);
    size_t n = (size_t)(ne0 * ne1);
    float *f = malloc(n * sizeof *f);
    void *data = malloc(ggml_nbytes(t));
    if (f == NULL || data == NULL) {
        fprintf(stderr, "gen_model: out of memory for %s\n", name);
        free(f);
        free(data);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        f[i] = bias + scale * rnd();
    if (type == GGML_TYPE_F32)
        memcpy(data, f, n * sizeof *f);
    else if (type == GGML_TYPE_F16)
        ggml_fp32_to_fp16_row(f, data, (int64_t)n);
    else
        ggml_quantize_chunk(type, f, data, 0, ne1, ne0, NULL);
    free(f);
    t->data = data; /* freed by free_tensor_data after the write */
    gguf_add_tensor(g, t);
    return 0;
}

/* Frees the tensor data that add_tensor attached to every tensor of meta. */
static void free_tensor_data(struct ggml_context *meta) {
    for (struct ggml_tensor *t = ggml_get_first_tensor(meta); t != NULL;
         t = ggml_get_next_tensor(meta, t)) {
        free(t->data);
        t->data = NULL;
    }
}

static int write_model(const char *out, const char *vocab_from, const shape *s) {
    struct gguf_init_params ip = {.no_alloc = true, .ctx = NULL};
    struct gguf_context *src = gguf_init_from_file(vocab_from, ip);
    if (src == NULL) {
        fprintf(stderr, "gen_model: cannot read %s\n", vocab_from);
        return 1;
    }
    int64_t vk = gguf_find_key(src, "tokenizer.ggml.tokens");
    if (vk < 0) {
        fprintf(stderr, "gen_model: %s has no tokenizer.ggml.tokens\n", vocab_from);
        gguf_free(src);
        return 1;
    }
    int64_t n_vocab = (int64_t)gguf_get_arr_n(src, vk);
    struct gguf_context *g = gguf_init_empty();
    gguf_set_kv(g, src);
    gguf_set_val_str(g, "general.architecture", s->arch);
    gguf_set_val_str(g, "general.name", "shimmy random-weight benchmark model");
    gguf_set_val_str(g, "general.type", "model");
    char key[96];
#define KEY(suffix) (snprintf(key, sizeof key, "%s." suffix, s->arch), key)
    gguf_set_val_u32(g, KEY("context_length"), (uint32_t)s->ctx);
    gguf_set_val_u32(g, KEY("embedding_length"), (uint32_t)s->embd);
    gguf_set_val_u32(g, KEY("block_count"), (uint32_t)s->layers);
    gguf_set_val_u32(g, KEY("feed_forward_length"), (uint32_t)s->ff);
    gguf_set_val_u32(g, KEY("attention.head_count"), (uint32_t)s->heads);
    gguf_set_val_u32(g, KEY("attention.head_count_kv"), (uint32_t)s->kv_heads);
    gguf_set_val_u32(g, KEY("rope.dimension_count"), (uint32_t)(s->embd / s->heads));
    gguf_set_val_f32(g, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
    gguf_set_val_f32(g, KEY("rope.freq_base"), 10000.0f);
    gguf_set_val_u32(g, KEY("vocab_size"), (uint32_t)n_vocab);
    if (strcmp(s->arch, "qwen2vl") == 0) {
        /* the head's rotary pairs (head/2) split 1/4 time, 3/8 height, 3/8 width, as Qwen2-VL */
        int32_t pairs = (int32_t)(s->embd / s->heads / 2), t = pairs / 4;
        int32_t sect[4] = {t, (pairs - t) / 2, pairs - t - (pairs - t) / 2, 0};
        gguf_set_arr_data(g, KEY("rope.dimension_sections"), GGUF_TYPE_INT32, sect, 4);
    }
#undef KEY
    if (s->chat_template != NULL)
        gguf_set_val_str(g, "tokenizer.chat_template", s->chat_template);
    /* llama_ftype: 0 = F32, 1 = F16, 7 = Q8_0 */
    gguf_set_val_u32(g, "general.file_type",
                     s->type == GGML_TYPE_F32   ? 0
                     : s->type == GGML_TYPE_F16 ? 1
                                                : 7);

    size_t n_tensors = 3 + 9 * (size_t)s->layers;
    struct ggml_init_params mp = {
        .mem_size = ggml_tensor_overhead() * (n_tensors + 8), .mem_buffer = NULL, .no_alloc = true};
    struct ggml_context *meta = ggml_init(mp);
    int64_t kv = s->embd / s->heads * s->kv_heads;
    float w = 0.02f;
    int rc = 0;
    rc |= add_tensor(g, meta, "token_embd.weight", s->embd, n_vocab, s->type, w, 0);
    rc |= add_tensor(g, meta, "output_norm.weight", s->embd, 1, GGML_TYPE_F32, 0.1f, 1.0f);
    rc |= add_tensor(g, meta, "output.weight", s->embd, n_vocab, s->type, w, 0);
    for (long l = 0; l < s->layers && rc == 0; l++) {
        char name[64];
#define T(suffix, ne0, ne1, type, scale, bias)                                                     \
    snprintf(name, sizeof name, "blk.%ld." suffix, l);                                             \
    rc |= add_tensor(g, meta, name, ne0, ne1, type, scale, bias)
        T("attn_norm.weight", s->embd, 1, GGML_TYPE_F32, 0.1f, 1.0f);
        T("attn_q.weight", s->embd, s->embd, s->type, s->qk_scale, 0);
        T("attn_k.weight", s->embd, kv, s->type, s->qk_scale, 0);
        T("attn_v.weight", s->embd, kv, s->type, w, 0);
        T("attn_output.weight", s->embd, s->embd, s->type, w, 0);
        T("ffn_norm.weight", s->embd, 1, GGML_TYPE_F32, 0.1f, 1.0f);
        T("ffn_gate.weight", s->embd, s->ff, s->type, w, 0);
        T("ffn_up.weight", s->embd, s->ff, s->type, w, 0);
        T("ffn_down.weight", s->ff, s->embd, s->type, w, 0);
#undef T
    }
    if (rc == 0 && !gguf_write_to_file(g, out, false)) {
        fprintf(stderr, "gen_model: cannot write %s\n", out);
        rc = 1;
    }
    gguf_free(g);
    gguf_free(src);
    free_tensor_data(meta);
    ggml_free(meta);
    return rc ? 1 : 0;
}

int main(int argc, char **argv) {
    shape s = {.layers = 16,
               .embd = 1024,
               .ff = 2816,
               .heads = 16,
               .kv_heads = 16,
               .ctx = 4096,
               .seed = 1,
               .type = GGML_TYPE_F16,
               .arch = "llama",
               .qk_scale = 0.02f};
    const char *out = NULL, *vocab = NULL;
    int broken = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long *num = strcmp(a, "--layers") == 0     ? &s.layers
                    : strcmp(a, "--embd") == 0     ? &s.embd
                    : strcmp(a, "--ff") == 0       ? &s.ff
                    : strcmp(a, "--heads") == 0    ? &s.heads
                    : strcmp(a, "--kv-heads") == 0 ? &s.kv_heads
                    : strcmp(a, "--ctx") == 0      ? &s.ctx
                    : strcmp(a, "--seed") == 0     ? &s.seed
                                                   : NULL;
        if (num != NULL) {
            if (v == NULL || parse_long(v, num) != 0) {
                fprintf(stderr, "gen_model: %s wants a positive integer\n", a);
                return 2;
            }
            i++;
        } else if (strcmp(a, "--type") == 0 && v != NULL) {
            s.type = strcmp(v, "f32") == 0    ? GGML_TYPE_F32
                     : strcmp(v, "f16") == 0  ? GGML_TYPE_F16
                     : strcmp(v, "q8_0") == 0 ? GGML_TYPE_Q8_0
                                              : GGML_TYPE_COUNT;
            if (s.type == GGML_TYPE_COUNT) {
                fprintf(stderr, "gen_model: --type is f32, f16 or q8_0\n");
                return 2;
            }
            i++;
        } else if (strcmp(a, "--broken") == 0) {
            broken = 1;
        } else if (strcmp(a, "--chat-template") == 0 && v != NULL) {
            s.chat_template = v;
            i++;
        } else if (strcmp(a, "--qk-scale") == 0 && v != NULL) {
            char *end;
            errno = 0;
            s.qk_scale = strtof(v, &end);
            if (errno != 0 || end == v || *end != '\0' || !(s.qk_scale > 0)) {
                fprintf(stderr, "gen_model: --qk-scale wants a positive number\n");
                return 2;
            }
            i++;
        } else if (strcmp(a, "--arch") == 0 && v != NULL) {
            if (strcmp(v, "llama") != 0 && strcmp(v, "qwen2vl") != 0) {
                fprintf(stderr, "gen_model: --arch is llama or qwen2vl\n");
                return 2;
            }
            s.arch = v;
            i++;
        } else if (strcmp(a, "--vocab-from") == 0 && v != NULL) {
            vocab = v;
            i++;
        } else if (a[0] != '-' && out == NULL) {
            out = a;
        } else {
            fprintf(stderr, "usage: gen_model OUT.gguf --vocab-from GGUF [--layers N] [--embd N] "
                            "[--ff N] [--heads N] [--kv-heads N] [--ctx N] [--type f16|q8_0|f32] "
                            "[--chat-template JINJA] [--arch llama|qwen2vl] [--qk-scale F]\n");
            return 2;
        }
    }
    if (out == NULL || vocab == NULL || s.embd % s.heads != 0 ||
        (s.heads % s.kv_heads != 0 && !broken)) {
        fprintf(stderr, "gen_model: OUT and --vocab-from are required; embd %% heads and heads %% "
                        "kv-heads must be 0\n");
        return 2;
    }
    rng_state = 0x9E3779B97F4A7C15ULL ^ (uint64_t)s.seed;
    return write_model(out, vocab, &s);
}
