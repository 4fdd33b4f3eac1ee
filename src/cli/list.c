/* cli/list: `shimmy list` prints the models shimmy would serve, from the same sources as
 * `shimmy serve` (registry_add_sources), reading only their metadata, never their weights. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/limits.h"
#include "models/registry.h"

static void list_usage(FILE *f) {
    fprintf(f,
            "usage: shimmy list [--model PATH]... [--model-dirs DIR;DIR] [--json]\n\n"
            "Lists the models shimmy would serve: the files given with --model, the .gguf files\n"
            "in ./models, in the --model-dirs folders and in SHIMMY_MODEL_PATHS (folders\n"
            "separated by ';' or ':'), each with one level of subfolders.\n\n"
            "  --model PATH        a GGUF model file (repeatable)\n"
            "  --model-dirs DIRS   folders to scan, separated by ';' or ':'\n"
            "  --json              print a JSON array instead of a table\n"
            "  --help              print this help\n");
}

typedef struct list_opts {
    char *paths[LIM_MODELS];
    int n_paths;
    const char *model_dirs;
    int json;
} list_opts;

/* Returns -1 when the options are fine, else the exit code to return. */
static int parse_opts(int argc, char **argv, list_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            list_usage(stdout);
            return 0;
        }
        if (strcmp(a, "--json") == 0) {
            o->json = 1;
            continue;
        }
        if (strcmp(a, "--model") != 0 && strcmp(a, "--model-dirs") != 0)
            return cli_usage_error("list", "unknown option '%s'", a);
        if (i + 1 >= argc)
            return cli_usage_error("list", "%s needs a value", a);
        if (strcmp(a, "--model-dirs") == 0) {
            o->model_dirs = argv[++i];
        } else {
            if (o->n_paths >= LIM_MODELS)
                return cli_usage_error("list", "at most %d --model options", LIM_MODELS);
            o->paths[o->n_paths++] = argv[++i];
        }
    }
    return -1;
}

/* "1.1 MiB": binary units, one decimal above bytes. */
static void human_size(uint64_t n, char *out, size_t outlen) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(out, outlen, "%llu B", (unsigned long long)n);
    else
        snprintf(out, outlen, "%.1f %s", v, units[u]);
}

/* "292.8K", "1.2B": decimal units, as model sizes are usually quoted. */
static void human_count(uint64_t n, char *out, size_t outlen) {
    static const char *const units[] = {"", "K", "M", "B", "T"};
    double v = (double)n;
    int u = 0;
    while (v >= 1000.0 && u < 4) {
        v /= 1000.0;
        u++;
    }
    if (u == 0)
        snprintf(out, outlen, "%llu", (unsigned long long)n);
    else
        snprintf(out, outlen, "%.1f%s", v, units[u]);
}

static const char *or_dash(const char *s) { return s[0] ? s : "-"; }

static void print_table(registry *r) {
    size_t n = registry_count(r);
    int w = 4;
    model_desc d;
    for (size_t i = 0; registry_get(r, i, &d); i++)
        if ((int)strlen(d.name) > w)
            w = (int)strlen(d.name);
    printf("%-*s  %10s  %-10s  %-8s  %8s  %7s\n", w, "NAME", "SIZE", "ARCH", "QUANT", "PARAMS",
           "CTX");
    for (size_t i = 0; i < n && registry_get(r, i, &d); i++) {
        char size[32], params[32];
        human_size(d.size_bytes, size, sizeof size);
        human_count(d.meta.n_params, params, sizeof params);
        printf("%-*s  %10s  %-10s  %-8s  %8s  %7u\n", w, d.name, size, or_dash(d.meta.arch),
               or_dash(d.meta.quant), params, d.meta.n_ctx_train);
    }
}

static json_t *desc_json(const model_desc *d) {
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:I, s:i, s:i, s:i, s:b, s:i}",
                     "name", d->name, "path", d->path, "source", d->source, "size_bytes",
                     (json_int_t)d->size_bytes, "arch", d->meta.arch, "quant", d->meta.quant,
                     "display_name", d->meta.name, "params", (json_int_t)d->meta.n_params,
                     "context_length", (int)d->meta.n_ctx_train, "layers", (int)d->meta.n_layer,
                     "embedding_length", (int)d->meta.n_embd, "chat_template",
                     d->meta.has_chat_template, "gguf_version", (int)d->meta.version);
}

static int print_json(registry *r) {
    json_t *arr = json_array();
    model_desc d;
    for (size_t i = 0; arr != NULL && registry_get(r, i, &d); i++)
        json_array_append_new(arr, desc_json(&d));
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
    engine_options defaults;
    engine_options_default(&defaults);
    registry *r = registry_new(&defaults);
    if (r == NULL) {
        fprintf(stderr, "shimmy list: out of memory\n");
        return 1;
    }
    char err[1024];
    if (registry_add_sources(r, o.paths, o.n_paths, o.model_dirs, err, sizeof err) != SHIMMY_OK) {
        fprintf(stderr, "shimmy list: %s\n", err);
        registry_free(r);
        return 1;
    }
    if (o.json)
        rc = print_json(r);
    else if (registry_count(r) == 0)
        printf("no models found; add one with --model PATH or put .gguf files in ./models\n");
    else
        print_table(r);
    registry_free(r);
    return rc;
}
