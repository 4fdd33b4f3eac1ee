/* lora_gen: writes a LoRA adapter (GGUF, as llama.cpp's convert_lora_to_gguf.py does) that fits
 * a given base model, for tests of adapters: general.type = adapter, adapter.type = lora,
 * adapter.lora.alpha, and for every attention and feed-forward matrix W of the base (ggml shape
 * [n_in, n_out]) a pair "W.lora_a" [n_in, rank] and "W.lora_b" [rank, n_out] of F32 values drawn
 * from a fixed-seed generator, large enough to change greedy output.
 *
 *   lora_gen BASE.gguf OUT.gguf [--rank R] [--alpha A] [--amp X] [--seed S] [--base-name NAME]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "gguf.h"

static const char *const targets[] = {".attn_q.weight",      ".attn_k.weight",   ".attn_v.weight",
                                      ".attn_output.weight", ".ffn_gate.weight", ".ffn_up.weight",
                                      ".ffn_down.weight"};

static int is_target(const char *name) {
    if (strncmp(name, "blk.", 4) != 0)
        return 0;
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        size_t k = strlen(targets[i]);
        if (n > k && strcmp(name + n - k, targets[i]) == 0)
            return 1;
    }
    return 0;
}

static uint64_t rng_state;
static float rnd(float amp) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    double u = (double)(rng_state >> 11) / (double)(1ULL << 53);
    return (float)((u * 2.0 - 1.0) * amp);
}

static struct ggml_tensor *rand_tensor(struct ggml_context *ctx, const char *name, int64_t ne0,
                                       int64_t ne1, float amp) {
    struct ggml_tensor *t = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, ne0, ne1);
    ggml_set_name(t, name);
    float *d = t->data;
    for (int64_t i = 0; i < ne0 * ne1; i++)
        d[i] = rnd(amp);
    return t;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: lora_gen BASE.gguf OUT.gguf [--rank R] [--alpha A] [--amp X] "
                        "[--seed S] [--base-name NAME]\n");
        return 2;
    }
    int rank = 4;
    float alpha = 4.0f, amp = 0.5f;
    const char *base_name = NULL;
    rng_state = 42;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--rank") == 0)
            rank = (int)strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--alpha") == 0)
            alpha = strtof(argv[i + 1], NULL);
        else if (strcmp(argv[i], "--amp") == 0)
            amp = strtof(argv[i + 1], NULL);
        else if (strcmp(argv[i], "--seed") == 0)
            rng_state = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--base-name") == 0)
            base_name = argv[i + 1];
        else {
            fprintf(stderr, "lora_gen: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    struct gguf_init_params gp = {.no_alloc = true, .ctx = NULL};
    struct gguf_context *base = gguf_init_from_file(argv[1], gp);
    if (base == NULL || rank < 1) {
        fprintf(stderr, "lora_gen: cannot read %s\n", argv[1]);
        return 1;
    }
    int64_t arch_id = gguf_find_key(base, "general.architecture");
    const char *arch = arch_id >= 0 ? gguf_get_val_str(base, arch_id) : "llama";
    struct ggml_init_params ip = {.mem_size = 256u << 20, .mem_buffer = NULL, .no_alloc = false};
    struct ggml_context *ctx = ggml_init(ip);
    struct gguf_context *g = gguf_init_empty();
    gguf_set_val_str(g, "general.architecture", arch);
    gguf_set_val_str(g, "general.type", "adapter");
    gguf_set_val_str(g, "adapter.type", "lora");
    gguf_set_val_f32(g, "adapter.lora.alpha", alpha);
    if (base_name != NULL)
        gguf_set_val_str(g, "general.base_model.0.name", base_name);
    int pairs = 0;
    for (int64_t i = 0; i < gguf_get_n_tensors(base); i++) {
        const char *name = gguf_get_tensor_name(base, i);
        const int64_t *ne = gguf_get_tensor_ne(base, i);
        if (!is_target(name) || ne[1] <= 1)
            continue;
        char an[GGML_MAX_NAME], bn[GGML_MAX_NAME];
        snprintf(an, sizeof an, "%s.lora_a", name);
        snprintf(bn, sizeof bn, "%s.lora_b", name);
        gguf_add_tensor(g, rand_tensor(ctx, an, ne[0], rank, amp));
        gguf_add_tensor(g, rand_tensor(ctx, bn, rank, ne[1], amp));
        pairs++;
    }
    int rc = 0;
    if (pairs == 0 || !gguf_write_to_file(g, argv[2], false)) {
        fprintf(stderr, "lora_gen: %s\n", pairs ? "cannot write the adapter" : "no target tensors");
        rc = 1;
    }
    gguf_free(g);
    gguf_free(base);
    ggml_free(ctx);
    return rc;
}
