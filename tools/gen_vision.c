/* gen_vision: writes a tiny LLaVA-style vision projector (an mmproj GGUF that llama.cpp's libmtmd
 * loads: projector type "mlp", a CLIP ViT encoder) with random seeded weights, for the
 * image-input tests. Paired with a text model from gen_model whose --embd equals --text-embd.
 *
 * Shape (the smallest clip.cpp accepts for this projector type): images are resized to
 * --image-size pixels square and cut into patch-size patches, so 28/14 gives 4 patches and each
 * image becomes 4 embeddings (tokens) in the text model. The encoder has --layers blocks of
 * width --embd; LLaVA uses the second-to-last block's output, so 2 blocks run 1.
 *
 * --qwen2vl writes Qwen2-VL's projector instead (type "qwen2vl_merger": a ViT with 2-D rotary
 * positions over two patch convolutions, then 2x2 patches merged into one token by a two-layer
 * MLP), for a text model of gen_model --arch qwen2vl: libmtmd places its image tokens by M-RoPE
 * (a grid of nx by ny tokens takes max(nx, ny) positions). clip.cpp resizes an image to a multiple
 * of 28 pixels with at least 8 tokens (8 x 28 x 28 pixels), so a 32x32 image becomes 3x3 tokens
 * at 3 positions and a 40x20 one 4x2 tokens at 4.
 *
 * --audio writes an audio projector instead (type "qwen2a", Qwen2-Audio's: a Whisper encoder of
 * --layers blocks over --mel mel bins, 2x pooled, then one linear layer): libmtmd pads a clip to
 * Whisper's 30 s, so each clip becomes 750 tokens.
 *
 * usage: gen_vision OUT.gguf [--text-embd 64] [--embd 32] [--ff 64] [--heads 2] [--layers 2]
 *                    [--image-size 28] [--patch-size 14] [--seed 1] [--audio [--mel 16]]
 *                    [--qwen2vl] */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "gguf.h"

#include "gen_common.h"

typedef struct vshape {
    long text_embd, embd, ff, heads, layers, image_size, patch_size, seed, mel;
    int audio, qwen2vl;
} vshape;

/* Adds an F32 tensor of up to 4 dimensions (ne[i] == 0 ends the list) holding bias + scale *
 * U(-1,1). */
static int add_tensor(struct gguf_context *g, struct ggml_context *meta, const char *name,
                      const int64_t ne[4], float scale, float bias) {
    int nd = 0;
    while (nd < 4 && ne[nd] > 0)
        nd++;
    struct ggml_tensor *t = ggml_new_tensor(meta, GGML_TYPE_F32, nd, ne);
    ggml_set_name(t, name);
    size_t n = (size_t)ggml_nelements(t);
    float *f = malloc(n * sizeof *f);
    if (f == NULL) {
        fprintf(stderr, "gen_vision: out of memory for %s\n", name);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        f[i] = bias + scale * rnd();
    t->data = f; /* freed by free_tensor_data after the write */
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

/* The keys every projector shares: the general ones and the encoder's (kind "vision" or
 * "audio") shape. */
static struct gguf_context *header(const vshape *s, const char *kind, const char *name,
                                   const char *type, float eps) {
    struct gguf_context *g = gguf_init_empty();
    char key[96];
    gguf_set_val_str(g, "general.architecture", "clip");
    gguf_set_val_str(g, "general.name", name);
    gguf_set_val_str(g, "general.type", "mmproj");
    gguf_set_val_u32(g, "general.file_type", 0);
    gguf_set_val_str(g, "clip.projector_type", type);
    snprintf(key, sizeof key, "clip.has_%s_encoder", kind);
    gguf_set_val_bool(g, key, true);
    if (strcmp(kind, "vision") == 0)
        gguf_set_val_bool(g, "clip.use_gelu", true);
#define U32(suffix, v)                                                                             \
    snprintf(key, sizeof key, "clip.%s." suffix, kind);                                            \
    gguf_set_val_u32(g, key, (uint32_t)(v))
    U32("embedding_length", s->embd);
    U32("feed_forward_length", s->ff);
    U32("block_count", s->layers);
    U32("projection_dim", s->text_embd);
    U32("attention.head_count", s->heads);
#undef U32
    snprintf(key, sizeof key, "clip.%s.attention.layer_norm_epsilon", kind);
    gguf_set_val_f32(g, key, eps);
    if (strcmp(kind, "vision") == 0) {
        gguf_set_val_u32(g, "clip.vision.image_size", (uint32_t)s->image_size);
        gguf_set_val_u32(g, "clip.vision.patch_size", (uint32_t)s->patch_size);
        static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
        static const float std_[3] = {0.26862954f, 0.26130258f, 0.27577711f};
        gguf_set_arr_data(g, "clip.vision.image_mean", GGUF_TYPE_FLOAT32, mean, 3);
        gguf_set_arr_data(g, "clip.vision.image_std", GGUF_TYPE_FLOAT32, std_, 3);
    }
    return g;
}

/* A tensor context with room for the encoder's tensors. */
static struct ggml_context *meta_new(const vshape *s) {
    size_t n_tensors = 10 + 16 * (size_t)s->layers;
    struct ggml_init_params mp = {
        .mem_size = ggml_tensor_overhead() * (n_tensors + 8), .mem_buffer = NULL, .no_alloc = true};
    return ggml_init(mp);
}

/* The encoder's blocks, named PREFIX.blk.N.*: pre-norm attention and a GELU MLP (Whisper's key
 * projection has no bias: key_bias 0). */
static int encoder_blocks(struct gguf_context *g, struct ggml_context *meta, const char *prefix,
                          const vshape *s, int key_bias) {
    int64_t e = s->embd, ff = s->ff;
    float w = 0.1f;
    int rc = 0;
    for (long l = 0; l < s->layers && rc == 0; l++) {
        char name[64];
#define L(suffix, a, b, scale, bias)                                                               \
    snprintf(name, sizeof name, "%s.blk.%ld." suffix, prefix, l);                                  \
    rc |= add_tensor(g, meta, name, (const int64_t[4]){a, b, 0, 0}, scale, bias)
        L("ln1.weight", e, 0, 0.1f, 1.0f);
        L("ln1.bias", e, 0, w, 0);
        L("attn_q.weight", e, e, w, 0);
        L("attn_q.bias", e, 0, w, 0);
        L("attn_k.weight", e, e, w, 0);
        if (key_bias) {
            L("attn_k.bias", e, 0, w, 0);
        }
        L("attn_v.weight", e, e, w, 0);
        L("attn_v.bias", e, 0, w, 0);
        L("attn_out.weight", e, e, w, 0);
        L("attn_out.bias", e, 0, w, 0);
        L("ln2.weight", e, 0, 0.1f, 1.0f);
        L("ln2.bias", e, 0, w, 0);
        L("ffn_up.weight", e, ff, w, 0);
        L("ffn_up.bias", ff, 0, w, 0);
        L("ffn_down.weight", ff, e, w, 0);
        L("ffn_down.bias", e, 0, w, 0);
#undef L
    }
    return rc;
}

/* Writes g to out (unless rc says a tensor failed) and frees g and meta. Returns 0 or 1. */
static int finish(struct gguf_context *g, struct ggml_context *meta, const char *out, int rc) {
    if (rc == 0 && !gguf_write_to_file(g, out, false)) {
        fprintf(stderr, "gen_vision: cannot write %s\n", out);
        rc = 1;
    }
    gguf_free(g);
    free_tensor_data(meta);
    ggml_free(meta);
    return rc ? 1 : 0;
}

#define T(name, a, b, c, d, scale, bias)                                                           \
    rc |= add_tensor(g, meta, name, (const int64_t[4]){a, b, c, d}, scale, bias)

static int write_projector(const char *out, const vshape *s) {
    struct gguf_context *g =
        header(s, "vision", "shimmy random-weight vision projector", "mlp", 1e-5f);
    struct ggml_context *meta = meta_new(s);
    long side = s->image_size / s->patch_size;
    int64_t e = s->embd, te = s->text_embd, ps = s->patch_size;
    float w = 0.1f;
    int rc = 0;
    T("v.patch_embd.weight", ps, ps, 3, e, w, 0); /* conv kernel: KW, KH, C_in, C_out */
    T("v.patch_embd.bias", e, 0, 0, 0, w, 0);
    T("v.class_embd", e, 0, 0, 0, w, 0);
    T("v.position_embd.weight", e, side * side + 1, 0, 0, w, 0);
    T("v.pre_ln.weight", e, 0, 0, 0, 0.1f, 1.0f);
    T("v.pre_ln.bias", e, 0, 0, 0, w, 0);
    rc |= encoder_blocks(g, meta, "v", s, 1);
    /* The LLaVA projector: mm.0 (embd -> text_embd), GELU, mm.2 (text_embd -> text_embd). The
     * text model's embeddings are ~0.02 in size (gen_model): the image embeddings are kept of the
     * same order so that they move the answer without drowning it. */
    T("mm.0.weight", e, te, 0, 0, w, 0);
    T("mm.0.bias", te, 0, 0, 0, w, 0);
    T("mm.2.weight", te, te, 0, 0, w, 0);
    T("mm.2.bias", te, 0, 0, 0, w, 0);
    return finish(g, meta, out, rc);
}

/* The audio projector (--audio): Whisper encoder + Qwen2-Audio's linear projector. */
static int write_audio(const char *out, const vshape *s) {
    struct gguf_context *g =
        header(s, "audio", "shimmy random-weight audio projector", "qwen2a", 1e-5f);
    gguf_set_val_u32(g, "clip.audio.num_mel_bins", (uint32_t)s->mel);
    struct ggml_context *meta = meta_new(s);
    int64_t e = s->embd, te = s->text_embd;
    float w = 0.1f;
    int rc = 0;
    T("a.conv1d.1.weight", 3, s->mel, e, 0, w, 0); /* kernel, C_in, C_out */
    T("a.conv1d.1.bias", 1, e, 0, 0, w, 0);
    T("a.conv1d.2.weight", 3, e, e, 0, w, 0);
    T("a.conv1d.2.bias", 1, e, 0, 0, w, 0);
    T("a.position_embd.weight", e, 1500, 0, 0, w, 0); /* 30 s of 20 ms frames */
    rc |= encoder_blocks(g, meta, "a", s, 0);
    T("a.post_ln.weight", e, 0, 0, 0, 0.1f, 1.0f);
    T("a.post_ln.bias", e, 0, 0, 0, w, 0);
    T("mm.a.fc.weight", e, te, 0, 0, w, 0);
    T("mm.a.fc.bias", te, 0, 0, 0, w, 0);
    return finish(g, meta, out, rc);
}

/* Qwen2-VL's projector (--qwen2vl): clip.cpp's clip_graph_qwen2vl. */
static int write_qwen2vl(const char *out, const vshape *s) {
    struct gguf_context *g =
        header(s, "vision", "shimmy random-weight Qwen2-VL projector", "qwen2vl_merger", 1e-6f);
    struct ggml_context *meta = meta_new(s);
    int64_t e = s->embd, te = s->text_embd, ps = s->patch_size;
    float w = 0.1f;
    int rc = 0;
    /* two convolutions over the same image (Qwen2-VL's temporal patch of 2 frames, split) */
    T("v.patch_embd.weight", ps, ps, 3, e, w, 0);
    T("v.patch_embd.weight.1", ps, ps, 3, e, w, 0);
    rc |= encoder_blocks(g, meta, "v", s, 1);
    /* the merger: a LayerNorm, then 4 patches (4 x embd) -> 4 x embd -> GELU -> text_embd */
    T("v.post_ln.weight", e, 0, 0, 0, 0.1f, 1.0f);
    T("v.post_ln.bias", e, 0, 0, 0, w, 0);
    T("mm.0.weight", 4 * e, 4 * e, 0, 0, w, 0);
    T("mm.0.bias", 4 * e, 0, 0, 0, w, 0);
    T("mm.2.weight", 4 * e, te, 0, 0, w, 0);
    T("mm.2.bias", te, 0, 0, 0, w, 0);
    return finish(g, meta, out, rc);
}
#undef T

int main(int argc, char **argv) {
    vshape s = {.text_embd = 64,
                .embd = 32,
                .ff = 64,
                .heads = 2,
                .layers = 2,
                .image_size = 28,
                .mel = 16,
                .patch_size = 14,
                .seed = 1};
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long *num = strcmp(a, "--text-embd") == 0    ? &s.text_embd
                    : strcmp(a, "--embd") == 0       ? &s.embd
                    : strcmp(a, "--ff") == 0         ? &s.ff
                    : strcmp(a, "--heads") == 0      ? &s.heads
                    : strcmp(a, "--layers") == 0     ? &s.layers
                    : strcmp(a, "--image-size") == 0 ? &s.image_size
                    : strcmp(a, "--patch-size") == 0 ? &s.patch_size
                    : strcmp(a, "--seed") == 0       ? &s.seed
                    : strcmp(a, "--mel") == 0        ? &s.mel
                                                     : NULL;
        if (num != NULL) {
            if (v == NULL || parse_long(v, num) != 0) {
                fprintf(stderr, "gen_vision: %s wants a positive integer\n", a);
                return 2;
            }
            i++;
        } else if (strcmp(a, "--audio") == 0) {
            s.audio = 1;
        } else if (strcmp(a, "--qwen2vl") == 0) {
            s.qwen2vl = 1;
        } else if (a[0] != '-' && out == NULL) {
            out = a;
        } else {
            fprintf(stderr, "usage: gen_vision OUT.gguf [--text-embd N] [--embd N] [--ff N] "
                            "[--heads N] [--layers N] [--image-size N] [--patch-size N] [--seed N] "
                            "[--audio [--mel N] | --qwen2vl]\n");
            return 2;
        }
    }
    if (out == NULL || s.embd % s.heads != 0 || s.image_size % s.patch_size != 0) {
        fprintf(stderr, "gen_vision: OUT is required; embd %% heads and image-size %% patch-size "
                        "must be 0\n");
        return 2;
    }
    rng_state = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)s.seed * 0x2545F4914F6CDD1DULL);
    if (s.qwen2vl && s.embd / s.heads % 4 != 0) {
        fprintf(stderr, "gen_vision: --qwen2vl wants a head size (embd / heads) divisible by 4\n");
        return 2;
    }
    if (s.audio)
        return write_audio(out, &s);
    return s.qwen2vl ? write_qwen2vl(out, &s) : write_projector(out, &s);
}
