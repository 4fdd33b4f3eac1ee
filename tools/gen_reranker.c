/* gen_reranker: writes a small random-weight reranker GGUF (BERT architecture, pooling type
 * rank, a classification head cls + cls.output with one label) for the rerank tests. The
 * tokenizer (every tokenizer.* key) is copied from a real vocabulary GGUF, e.g. llama.cpp's
 * models/ggml-vocab-bert-bge.gguf (the WordPiece vocabulary of bge-reranker). The weights come
 * from a seeded generator: the same options always write the same file, so scores computed by
 * llama-server on it once (tests/integration/golden/rerank.json) hold for every later build.
 *
 * usage: gen_reranker OUT.gguf --vocab-from GGUF [--layers 2] [--embd 32] [--ff 64]
 *                     [--heads 2] [--ctx 512] [--seed 1] */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "gguf.h"

#include "gen_common.h"

typedef struct shape {
    long layers, embd, ff, heads, ctx, seed;
} shape;

/* Adds an F32 tensor (1-D when ne1 == 1) of bias + scale * uniform(-1, 1) values. The data is
 * freed by free_tensor_data after the write. */
static int add_tensor(struct gguf_context *g, struct ggml_context *meta, const char *name,
                      int64_t ne0, int64_t ne1, float scale, float bias) {
    struct ggml_tensor *t = ne1 == 1 ? ggml_new_tensor_1d(meta, GGML_TYPE_F32, ne0)
                                     : ggml_new_tensor_2d(meta, GGML_TYPE_F32, ne0, ne1);
    ggml_set_name(t, name);
    size_t n = (size_t)(ne0 * ne1);
    float *f = malloc(n * sizeof *f);
    if (f == NULL) {
        fprintf(stderr, "gen_reranker: out of memory for %s\n", name);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        f[i] = bias + scale * rnd();
    t->data = f;
    gguf_add_tensor(g, t);
    return 0;
}

/* Copies the tokenizer keys of src into g. */
static void copy_tokenizer(struct gguf_context *g, const struct gguf_context *src) {
    struct gguf_context *all = gguf_init_empty();
    gguf_set_kv(all, src);
    for (int64_t i = gguf_get_n_kv(all) - 1; i >= 0; i--) {
        const char *k = gguf_get_key(all, i);
        if (strncmp(k, "tokenizer.", 10) != 0)
            gguf_remove_key(all, k);
    }
    gguf_set_kv(g, all);
    gguf_free(all);
}

static void set_keys(struct gguf_context *g, const shape *s, int64_t n_vocab) {
    gguf_set_val_str(g, "general.architecture", "bert");
    gguf_set_val_str(g, "general.name", "shimmy random-weight reranker fixture");
    gguf_set_val_str(g, "general.type", "model");
    gguf_set_val_u32(g, "general.file_type", 0); /* F32 */
    gguf_set_val_u32(g, "bert.context_length", (uint32_t)s->ctx);
    gguf_set_val_u32(g, "bert.embedding_length", (uint32_t)s->embd);
    gguf_set_val_u32(g, "bert.block_count", (uint32_t)s->layers);
    gguf_set_val_u32(g, "bert.feed_forward_length", (uint32_t)s->ff);
    gguf_set_val_u32(g, "bert.attention.head_count", (uint32_t)s->heads);
    gguf_set_val_f32(g, "bert.attention.layer_norm_epsilon", 1e-12f);
    gguf_set_val_bool(g, "bert.attention.causal", false);
    gguf_set_val_u32(g, "bert.pooling_type", 4); /* LLAMA_POOLING_TYPE_RANK */
    gguf_set_val_u32(g, "bert.vocab_size", (uint32_t)n_vocab);
    const char *labels[] = {"LABEL_0"};
    gguf_set_arr_str(g, "bert.classifier.output_labels", labels, 1);
    if (gguf_find_key(g, "tokenizer.ggml.token_type_count") < 0)
        gguf_set_val_u32(g, "tokenizer.ggml.token_type_count", 2);
}

static int add_tensors(struct gguf_context *g, struct ggml_context *meta, const shape *s,
                       int64_t n_vocab) {
    const float w = 0.2f, n = 0.1f;
    int rc = 0;
    rc |= add_tensor(g, meta, "token_embd.weight", s->embd, n_vocab, w, 0);
    rc |= add_tensor(g, meta, "token_types.weight", s->embd, 2, w, 0);
    rc |= add_tensor(g, meta, "position_embd.weight", s->embd, s->ctx, w, 0);
    rc |= add_tensor(g, meta, "token_embd_norm.weight", s->embd, 1, n, 1.0f);
    rc |= add_tensor(g, meta, "token_embd_norm.bias", s->embd, 1, n, 0);
    for (long l = 0; l < s->layers && rc == 0; l++) {
        char name[64];
#define T(suffix, ne0, ne1, scale, bias)                                                           \
    snprintf(name, sizeof name, "blk.%ld." suffix, l);                                             \
    rc |= add_tensor(g, meta, name, ne0, ne1, scale, bias)
        T("attn_q.weight", s->embd, s->embd, w, 0);
        T("attn_k.weight", s->embd, s->embd, w, 0);
        T("attn_v.weight", s->embd, s->embd, w, 0);
        T("attn_output.weight", s->embd, s->embd, w, 0);
        T("attn_output_norm.weight", s->embd, 1, n, 1.0f);
        T("attn_output_norm.bias", s->embd, 1, n, 0);
        T("ffn_up.weight", s->embd, s->ff, w, 0);
        T("ffn_down.weight", s->ff, s->embd, w, 0);
        T("layer_output_norm.weight", s->embd, 1, n, 1.0f);
        T("layer_output_norm.bias", s->embd, 1, n, 0);
#undef T
    }
    rc |= add_tensor(g, meta, "cls.weight", s->embd, s->embd, 1.0f, 0);
    rc |= add_tensor(g, meta, "cls.bias", s->embd, 1, 0.5f, 0);
    rc |= add_tensor(g, meta, "cls.output.weight", s->embd, 1, 1.0f, 0);
    rc |= add_tensor(g, meta, "cls.output.bias", 1, 1, 0.5f, 0);
    return rc;
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
        fprintf(stderr, "gen_reranker: cannot read %s\n", vocab_from);
        return 1;
    }
    int64_t vk = gguf_find_key(src, "tokenizer.ggml.tokens");
    if (vk < 0) {
        fprintf(stderr, "gen_reranker: %s has no tokenizer.ggml.tokens\n", vocab_from);
        gguf_free(src);
        return 1;
    }
    int64_t n_vocab = (int64_t)gguf_get_arr_n(src, vk);
    struct gguf_context *g = gguf_init_empty();
    copy_tokenizer(g, src);
    set_keys(g, s, n_vocab);
    size_t n_tensors = 9 + 10 * (size_t)s->layers;
    struct ggml_init_params mp = {
        .mem_size = ggml_tensor_overhead() * (n_tensors + 8), .mem_buffer = NULL, .no_alloc = true};
    struct ggml_context *meta = ggml_init(mp);
    int rc = add_tensors(g, meta, s, n_vocab);
    if (rc == 0 && !gguf_write_to_file(g, out, false)) {
        fprintf(stderr, "gen_reranker: cannot write %s\n", out);
        rc = 1;
    }
    gguf_free(g);
    gguf_free(src);
    free_tensor_data(meta);
    ggml_free(meta);
    return rc ? 1 : 0;
}

int main(int argc, char **argv) {
    shape s = {.layers = 2, .embd = 32, .ff = 64, .heads = 2, .ctx = 512, .seed = 1};
    const char *out = NULL, *vocab = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long *num = strcmp(a, "--layers") == 0  ? &s.layers
                    : strcmp(a, "--embd") == 0  ? &s.embd
                    : strcmp(a, "--ff") == 0    ? &s.ff
                    : strcmp(a, "--heads") == 0 ? &s.heads
                    : strcmp(a, "--ctx") == 0   ? &s.ctx
                    : strcmp(a, "--seed") == 0  ? &s.seed
                                                : NULL;
        if (num != NULL) {
            if (v == NULL || parse_long(v, num) != 0) {
                fprintf(stderr, "gen_reranker: %s wants a positive integer\n", a);
                return 2;
            }
            i++;
        } else if (strcmp(a, "--vocab-from") == 0 && v != NULL) {
            vocab = v;
            i++;
        } else if (a[0] != '-' && out == NULL) {
            out = a;
        } else {
            fprintf(stderr, "usage: gen_reranker OUT.gguf --vocab-from GGUF [--layers N] "
                            "[--embd N] [--ff N] [--heads N] [--ctx N] [--seed N]\n");
            return 2;
        }
    }
    if (out == NULL || vocab == NULL || s.embd % s.heads != 0) {
        fprintf(stderr, "gen_reranker: OUT and --vocab-from are required; embd %% heads must "
                        "be 0\n");
        return 2;
    }
    rng_state = 0x9E3779B97F4A7C15ULL ^ (uint64_t)s.seed;
    return write_model(out, vocab, &s);
}
