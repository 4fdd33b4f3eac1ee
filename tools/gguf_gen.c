/* gguf_gen: writes GGUF fixtures for tests with ggml's gguf API.
 *
 *   gguf_gen OUT.gguf [--copy-from MODEL.gguf] [--chat-template TEXT | --chat-template-file F]
 *            [--type adapter|model|mmproj] [--arch NAME] [--no-tensors] [--name NAME]
 *            [--file-type N] [--proj-dim N] [--modality vision|audio|both]
 *
 * With --copy-from, every key-value pair and tensor (with its data) of MODEL is copied and the
 * options (--arch, --type, --name, --file-type, the template) override or add keys (e.g. a chat
 * template on stories260K makes a chat-capable test model). Without it, a small synthetic file is
 * written: a LoRA adapter (--type adapter), a vocab-only file (--no-tensors), a multimodal
 * projector's metadata (--type mmproj: the clip.* keys llama.cpp's converter writes, with
 * --modality (vision), --proj-dim (the text model's width it states; default none) and --file-type
 * (llama_ftype number: 0 F32, 1 F16, 7 Q8_0...)), or a tiny "model" that carries metadata but is
 * not loadable. None of these loads. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "gguf.h"

typedef struct opts {
    const char *out;
    const char *copy_from;
    const char *chat_template;
    const char *chat_template_file;
    const char *type;
    const char *arch;
    const char *name;
    const char *file_type;
    const char *proj_dim;
    const char *modality;
    bool no_tensors;
} opts;

static int usage(FILE *f, int rc) {
    fprintf(f, "usage: gguf_gen OUT.gguf [--copy-from MODEL.gguf] [--chat-template TEXT | "
               "--chat-template-file F]\n"
               "                [--type adapter|model|mmproj] [--arch NAME] [--no-tensors] "
               "[--name NAME]\n"
               "                [--file-type N] [--proj-dim N] [--modality vision|audio|both]\n");
    return rc;
}

/* Returns 0, or an exit code for bad usage. */
static int parse_args(int argc, char **argv, opts *o) {
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **val = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout, 0);
            exit(0);
        } else if (strcmp(a, "--no-tensors") == 0) {
            o->no_tensors = true;
            continue;
        } else if (strcmp(a, "--copy-from") == 0) {
            val = &o->copy_from;
        } else if (strcmp(a, "--chat-template") == 0) {
            val = &o->chat_template;
        } else if (strcmp(a, "--chat-template-file") == 0) {
            val = &o->chat_template_file;
        } else if (strcmp(a, "--type") == 0) {
            val = &o->type;
        } else if (strcmp(a, "--arch") == 0) {
            val = &o->arch;
        } else if (strcmp(a, "--name") == 0) {
            val = &o->name;
        } else if (strcmp(a, "--file-type") == 0) {
            val = &o->file_type;
        } else if (strcmp(a, "--proj-dim") == 0) {
            val = &o->proj_dim;
        } else if (strcmp(a, "--modality") == 0) {
            val = &o->modality;
        } else if (a[0] == '-') {
            fprintf(stderr, "gguf_gen: unknown option %s\n", a);
            return usage(stderr, 2);
        } else if (o->out == NULL) {
            o->out = a;
            continue;
        } else {
            fprintf(stderr, "gguf_gen: unexpected argument %s\n", a);
            return usage(stderr, 2);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "gguf_gen: %s needs a value\n", a);
            return usage(stderr, 2);
        }
        *val = argv[++i];
    }
    if (o->out == NULL)
        return usage(stderr, 2);
    if (o->chat_template != NULL && o->chat_template_file != NULL) {
        fprintf(stderr, "gguf_gen: give --chat-template or --chat-template-file, not both\n");
        return 2;
    }
    return 0;
}

/* Returns the whole file as an owned NUL-terminated string, or NULL. */
static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *s = NULL;
    size_t len = 0, cap = 0, n;
    char chunk[4096];
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            char *t = realloc(s, cap);
            if (t == NULL) {
                free(s);
                fclose(f);
                return NULL;
            }
            s = t;
        }
        memcpy(s + len, chunk, n);
        len += n;
    }
    fclose(f);
    if (s == NULL)
        s = calloc(1, 1);
    else
        s[len] = '\0';
    return s;
}

static struct ggml_tensor *new_f32(struct ggml_context *ctx, const char *name, int64_t ne0,
                                   int64_t ne1) {
    struct ggml_tensor *t = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, ne0, ne1);
    ggml_set_name(t, name);
    float *d = t->data;
    for (int64_t i = 0; i < ne0 * ne1; i++)
        d[i] = (float)((i % 17) - 8) / 64.0f;
    return t;
}

/* A number option (0 when absent); exits on a bad one. */
static uint32_t num_opt(const char *name, const char *v) {
    if (v == NULL)
        return 0;
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (*v == '\0' || *end != '\0' || n > 1u << 20) {
        fprintf(stderr, "gguf_gen: %s wants a number, not '%s'\n", name, v);
        exit(2);
    }
    return (uint32_t)n;
}

/* The projector keys of llama.cpp's tools/mtmd/clip-impl.h, as its converter writes them. */
static void fill_projector(struct gguf_context *g, const opts *o) {
    const char *mod = o->modality ? o->modality : "vision";
    bool vision = strcmp(mod, "vision") == 0 || strcmp(mod, "both") == 0;
    bool audio = strcmp(mod, "audio") == 0 || strcmp(mod, "both") == 0;
    uint32_t dim = num_opt("--proj-dim", o->proj_dim);
    if (!vision && !audio) {
        fprintf(stderr, "gguf_gen: --modality wants vision, audio or both, not '%s'\n", mod);
        exit(2);
    }
    gguf_set_val_bool(g, "clip.has_vision_encoder", vision);
    gguf_set_val_bool(g, "clip.has_audio_encoder", audio);
    if (vision && audio) {
        gguf_set_val_str(g, "clip.vision.projector_type", "qwen2.5o");
        gguf_set_val_str(g, "clip.audio.projector_type", "qwen2.5o");
    } else {
        gguf_set_val_str(g, "clip.projector_type", vision ? "gemma3" : "ultravox");
    }
    if (vision) {
        gguf_set_val_u32(g, "clip.vision.image_size", 32);
        gguf_set_val_u32(g, "clip.vision.patch_size", 8);
        if (dim)
            gguf_set_val_u32(g, "clip.vision.projection_dim", dim);
    }
    if (audio && dim)
        gguf_set_val_u32(g, "clip.audio.projection_dim", dim);
}

/* Synthetic content: metadata for the requested kind and a few small F32 tensors. */
static void fill_synthetic(struct gguf_context *g, struct ggml_context *ctx, const opts *o) {
    const char *arch = o->arch ? o->arch : "llama";
    const char *type = o->type ? o->type : "model";
    char key[128];
    gguf_set_val_str(g, "general.architecture", arch);
    gguf_set_val_str(g, "general.type", type);
    gguf_set_val_u32(g, "general.file_type", num_opt("--file-type", o->file_type));
    snprintf(key, sizeof key, "%s.context_length", arch);
    gguf_set_val_u32(g, key, 128);
    snprintf(key, sizeof key, "%s.block_count", arch);
    gguf_set_val_u32(g, key, 1);
    snprintf(key, sizeof key, "%s.embedding_length", arch);
    gguf_set_val_u32(g, key, 8);
    if (strcmp(type, "adapter") == 0) {
        gguf_set_val_str(g, "adapter.type", "lora");
        gguf_set_val_f32(g, "adapter.lora.alpha", 16.0f);
    }
    if (strcmp(type, "mmproj") == 0)
        fill_projector(g, o);
    const char *tokens[] = {"<unk>", "<s>", "</s>", "a", "b"};
    gguf_set_val_str(g, "tokenizer.ggml.model", "llama");
    gguf_set_arr_str(g, "tokenizer.ggml.tokens", tokens, sizeof tokens / sizeof tokens[0]);
    if (o->no_tensors)
        return;
    if (strcmp(type, "mmproj") == 0) {
        gguf_add_tensor(g, new_f32(ctx, "v.patch_embd.weight", 8, 8));
        gguf_add_tensor(g, new_f32(ctx, "mm.input_projection.weight", 8, 8));
    } else if (strcmp(type, "adapter") == 0) {
        gguf_add_tensor(g, new_f32(ctx, "blk.0.attn_q.weight.lora_a", 8, 2));
        gguf_add_tensor(g, new_f32(ctx, "blk.0.attn_q.weight.lora_b", 2, 8));
    } else {
        gguf_add_tensor(g, new_f32(ctx, "token_embd.weight", 8, 5));
        gguf_add_tensor(g, new_f32(ctx, "blk.0.attn_q.weight", 8, 8));
        gguf_add_tensor(g, new_f32(ctx, "output_norm.weight", 8, 1));
    }
}

static void copy_tensors(struct gguf_context *g, const struct gguf_context *src,
                         struct ggml_context *src_ctx) {
    for (int64_t i = 0; i < gguf_get_n_tensors(src); i++) {
        struct ggml_tensor *t = ggml_get_tensor(src_ctx, gguf_get_tensor_name(src, i));
        if (t != NULL)
            gguf_add_tensor(g, t);
    }
}

static int apply_overrides(struct gguf_context *g, const opts *o) {
    if (o->arch)
        gguf_set_val_str(g, "general.architecture", o->arch);
    if (o->type)
        gguf_set_val_str(g, "general.type", o->type);
    if (o->name)
        gguf_set_val_str(g, "general.name", o->name);
    if (o->file_type)
        gguf_set_val_u32(g, "general.file_type", num_opt("--file-type", o->file_type));
    if (o->chat_template)
        gguf_set_val_str(g, "tokenizer.chat_template", o->chat_template);
    if (o->chat_template_file) {
        char *t = read_text(o->chat_template_file);
        if (t == NULL) {
            fprintf(stderr, "gguf_gen: cannot read %s\n", o->chat_template_file);
            return 1;
        }
        gguf_set_val_str(g, "tokenizer.chat_template", t);
        free(t);
    }
    return 0;
}

int main(int argc, char **argv) {
    opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc;
    struct gguf_context *src = NULL;
    struct ggml_context *src_ctx = NULL;
    struct ggml_context *ctx = NULL;
    struct gguf_context *g = gguf_init_empty();
    rc = 1;
    if (o.copy_from != NULL) {
        struct gguf_init_params p = {.no_alloc = false, .ctx = &src_ctx};
        src = gguf_init_from_file(o.copy_from, p);
        if (src == NULL) {
            fprintf(stderr, "gguf_gen: cannot read GGUF file %s\n", o.copy_from);
            goto out;
        }
        gguf_set_kv(g, src);
        if (!o.no_tensors)
            copy_tensors(g, src, src_ctx);
    } else {
        struct ggml_init_params ip = {.mem_size = 1 << 20, .mem_buffer = NULL, .no_alloc = false};
        ctx = ggml_init(ip);
        fill_synthetic(g, ctx, &o);
    }
    if (apply_overrides(g, &o) != 0)
        goto out;
    if (!gguf_write_to_file(g, o.out, false)) {
        fprintf(stderr, "gguf_gen: cannot write %s\n", o.out);
        goto out;
    }
    rc = 0;
out:
    gguf_free(g);
    if (src)
        gguf_free(src);
    if (src_ctx)
        ggml_free(src_ctx);
    if (ctx)
        ggml_free(ctx);
    return rc;
}
