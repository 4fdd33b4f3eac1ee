/* cli/list: `shimmy list` prints the models shimmy would serve, from the same sources as
 * `shimmy serve` (models/discover.h), reading only their metadata, never their weights: name,
 * source, size, architecture, quantization, parameters, trained context, what its paired
 * projector takes (MMPROJ: vision, audio) and LoRA adapter. The
 * model folders found in a format this build cannot serve (MLX) follow, each with why. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/fmt.h"
#include "core/limits.h"
#include "cli/sources.h"
#include "models/registry.h"

static void list_usage(FILE *f) {
    fprintf(f,
            "usage: shimmy list [--model PATH]... [--model-dirs DIR;DIR] [--lora M=PATH[:S]]\n"
            "                   [--mmproj [M=]PATH] [--json]\n\n"
            "Lists the models shimmy would serve, from every source shimmy searches: the files\n"
            "given with --model, the .gguf files in ./models, in the --model-dirs folders and in\n"
            "SHIMMY_MODEL_PATHS (folders separated by ';' or ':'), SHIMMY_BASE_GGUF, the Hugging\n"
            "Face cache, Ollama's store and LM Studio's folders. Reads metadata only. MLX model\n"
            "folders (config.json + *.safetensors) are listed too, marked as not served.\n\n"
            "  --model PATH         a GGUF model file (repeatable)\n"
            "  --model-dirs DIRS    folders to scan, separated by ';' or ':'\n"
            "  --lora M=PATH[:S]    apply a LoRA adapter to model M (scale S, default 1)\n"
            "  --mmproj [M=]PATH    pair a multimodal projector with model M (or the only one)\n"
            "  --json               print a JSON array instead of a table\n"
            "  --help               print this help\n");
}

typedef struct list_opts {
    cli_sources src;
    int json;
} list_opts;

/* Returns -1 when the options are fine, else the exit code to return. */
static int parse_opts(int argc, char **argv, list_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_sources_arg("list", argc, argv, &i, &o->src);
        if (r == 2)
            return 2;
        if (r == 1)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            list_usage(stdout);
            return 0;
        }
        if (strcmp(a, "--json") == 0) {
            o->json = 1;
            continue;
        }
        return cli_usage_error("list", "unknown option '%s'", a);
    }
    return -1;
}

static const char *or_dash(const char *s) {
    return s[0] ? s : "-";
}

static const char *base_of(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* "MLX", or "MLX-4bit" for a quantized one. */
static void unserved_quant(const disc_unserved *u, char *out, size_t outlen) {
    if (u->bits > 0)
        snprintf(out, outlen, "MLX-%dbit", u->bits);
    else
        snprintf(out, outlen, "MLX");
}

/* The unserved rows (same columns, PARAMS and CTX unknown), then each one's status. */
static void print_unserved(registry *r, int w) {
    disc_unserved u;
    for (size_t i = 0; registry_get_unserved(r, i, &u); i++) {
        char size[32], quant[24];
        fmt_bytes(u.size_bytes, size, sizeof size);
        unserved_quant(&u, quant, sizeof quant);
        printf("%-*s  %-8s  %10s  %-10s  %-8s  %8s  %7s  %-12s  %s\n", w, u.name, u.source, size,
               u.arch[0] ? u.arch : "MLX", quant, "-", "-", "-", "-");
    }
    for (size_t i = 0; registry_get_unserved(r, i, &u); i++)
        printf("%s: %s\n", u.name, disc_unserved_status(&u));
}

static void print_table(registry *r) {
    size_t n = registry_count(r);
    int w = 4;
    const model_rec *d = NULL;
    disc_unserved u;
    for (size_t i = 0; registry_get(r, i, &d, NULL); i++) {
        if ((int)strlen(d->name) > w)
            w = (int)strlen(d->name);
        model_rec_unref(d);
    }
    for (size_t i = 0; registry_get_unserved(r, i, &u); i++)
        if ((int)strlen(u.name) > w)
            w = (int)strlen(u.name);
    printf("%-*s  %-8s  %10s  %-10s  %-8s  %8s  %7s  %-12s  %s\n", w, "NAME", "SOURCE", "SIZE",
           "ARCH", "QUANT", "PARAMS", "CTX", "MMPROJ", "ADAPTER");
    bool paired = false;
    for (size_t i = 0; i < n && registry_get(r, i, &d, NULL); i++) {
        char size[32], params[32];
        fmt_bytes(d->size_bytes, size, sizeof size);
        fmt_count(d->meta.n_params, params, sizeof params);
        const char *ad = d->adapter[0] ? base_of(d->adapter) : "-";
        /* an Ollama blob: its digest's first 12 digits, as ollama prints them */
        int adw = strncmp(ad, "sha256-", 7) == 0 ? 19 : (int)strlen(ad);
        printf("%-*s  %-8s  %10s  %-10s  %-8s  %8s  %7u  %-12s  %.*s\n", w, d->name, d->source,
               size, or_dash(d->meta.arch), or_dash(d->meta.quant), params, d->meta.n_ctx_train,
               cli_mmproj_label(d), adw, ad);
        paired |= d->mmproj[0] != '\0';
        model_rec_unref(d);
    }
    print_unserved(r, w);
    if (paired && !engine_supports_media())
        printf("MMPROJ: the paired projector's inputs; this build's engine does not take images "
               "or audio yet, so they are served as text models\n");
}

static json_t *desc_json(const model_rec *d) {
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:I, s:i, s:i, s:i, s:b, s:i}", "name", d->name,
        "path", d->path, "source", d->source, "size_bytes", (json_int_t)d->size_bytes, "arch",
        d->meta.arch, "quant", d->meta.quant, "display_name", d->meta.name, "params",
        (json_int_t)d->meta.n_params, "context_length", (int)d->meta.n_ctx_train, "layers",
        (int)d->meta.n_layer, "embedding_length", (int)d->meta.n_embd, "chat_template",
        d->meta.has_chat_template, "gguf_version", (int)d->meta.version);
    if (j != NULL) {
        json_object_set_new(j, "adapter", d->adapter[0] ? json_string(d->adapter) : json_null());
        json_object_set_new(j, "adapter_scale", json_real(d->adapter_scale));
        json_object_set_new(j, "mmproj", d->mmproj[0] ? json_string(d->mmproj) : json_null());
        json_object_set_new(j, "mmproj_vision", json_boolean(d->mmproj_vision));
        json_object_set_new(j, "mmproj_audio", json_boolean(d->mmproj_audio));
        json_object_set_new(j, "parts", json_integer(d->n_parts));
        json_object_set_new(j, "digest", json_string(d->digest));
        json_object_set_new(j, "format", json_string("gguf"));
        json_object_set_new(j, "served", json_true());
    }
    return j;
}

/* An unserved folder: what is known of it, served false and the status. */
static json_t *unserved_json(const disc_unserved *u) {
    char quant[24];
    unserved_quant(u, quant, sizeof quant);
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:b, s:s}", "name", u->name, "path",
                     u->path, "source", u->source, "size_bytes", (json_int_t)u->size_bytes, "arch",
                     u->arch, "quant", quant, "format", u->format, "served", 0, "status",
                     disc_unserved_status(u));
}

static int print_json(registry *r) {
    json_t *arr = json_array();
    const model_rec *d = NULL;
    disc_unserved u;
    for (size_t i = 0; arr != NULL && registry_get(r, i, &d, NULL); i++) {
        json_array_append_new(arr, desc_json(d));
        model_rec_unref(d);
    }
    for (size_t i = 0; arr != NULL && registry_get_unserved(r, i, &u); i++)
        json_array_append_new(arr, unserved_json(&u));
    char *s = arr ? json_dumps(arr, JSON_INDENT(2)) : NULL;
    json_decref(arr);
    if (s == NULL) {
        fprintf(stderr, "shimmy list: out of memory\n");
        return 1;
    }
    printf("%s\n", s);
    free(s);
    return 0;
}

int cli_list(int argc, char **argv) {
    list_opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_opts(argc, argv, &o);
    if (rc >= 0)
        return rc;
    rc = 0;
    registry *r = cli_sources_registry("list", &o.src, NULL, NULL);
    if (r == NULL)
        return 1;
    if (o.json)
        rc = print_json(r);
    else if (registry_count(r) == 0 && registry_unserved_count(r) == 0)
        printf("no models found; add one with --model PATH or put .gguf files in ./models\n");
    else
        print_table(r);
    registry_free(r);
    return rc;
}
