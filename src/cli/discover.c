/* cli/discover: `shimmy discover` runs model discovery (models/discover.h) and reports what it
 * found per source and every file it skipped, with the reason. With --server it asks a running
 * shimmy to rescan (POST /v1/models/rescan) and prints what changed there. Also the source
 * options shared with list and probe (cli/sources.h) and --lora and --mmproj parsing. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "http/client.h"
#include "cli/sources.h"
#include "core/log.h"

/* ---- shared source options ---- */

int cli_parse_lora(const char *cmd, char *arg, disc_lora *out) {
    char *eq = strchr(arg, '=');
    if (eq == NULL || eq == arg || eq[1] == '\0')
        return cli_usage_error(cmd, "--lora wants MODEL=PATH[:SCALE], not '%s'", arg);
    *eq = '\0';
    out->model = arg;
    out->path = eq + 1;
    out->scale = 1.0f;
    char *colon = strrchr(eq + 1, ':');
    double scale;
    if (colon != NULL && cli_parse_float(colon + 1, -100.0, 100.0, &scale) == 0) {
        *colon = '\0';
        out->scale = (float)scale;
    }
    if (out->path[0] == '\0')
        return cli_usage_error(cmd, "--lora: the adapter path is empty");
    return 0;
}

const char *cli_mmproj_label(const model_rec *d) {
    if (d->mmproj[0] == '\0')
        return "-";
    if (d->mmproj_vision)
        return d->mmproj_audio ? "vision+audio" : "vision";
    return d->mmproj_audio ? "audio" : "yes";
}

int cli_parse_mmproj(const char *cmd, char *arg, disc_mmproj *out) {
    char *eq = strchr(arg, '=');
    struct stat st;
    out->model = NULL;
    out->path = arg;
    if (eq != NULL && stat(arg, &st) != 0) {
        if (eq == arg || eq[1] == '\0')
            return cli_usage_error(cmd, "--mmproj wants PATH or MODEL=PATH, not '%s'", arg);
        *eq = '\0';
        out->model = arg;
        out->path = eq + 1;
    }
    if (out->path[0] == '\0')
        return cli_usage_error(cmd, "--mmproj: the projector path is empty");
    return 0;
}

static int sources_mmproj(const char *cmd, char *v, cli_sources *s) {
    if (s->n_mmprojs >= LIM_MODELS)
        return cli_usage_error(cmd, "at most %d --mmproj options", LIM_MODELS);
    if (cli_parse_mmproj(cmd, v, &s->mmprojs[s->n_mmprojs]) != 0)
        return 2;
    s->n_mmprojs++;
    return 1;
}

int cli_sources_arg(const char *cmd, int argc, char **argv, int *i, cli_sources *s) {
    const char *a = argv[*i];
    if (strcmp(a, "--model") != 0 && strcmp(a, "--model-dirs") != 0 && strcmp(a, "--lora") != 0 &&
        strcmp(a, "--mmproj") != 0)
        return 0;
    if (*i + 1 >= argc)
        return cli_usage_error(cmd, "%s needs a value", a);
    char *v = argv[++*i];
    if (strcmp(a, "--model-dirs") == 0) {
        s->model_dirs = v;
        return 1;
    }
    if (strcmp(a, "--mmproj") == 0)
        return sources_mmproj(cmd, v, s);
    if ((strcmp(a, "--model") == 0 ? s->n_paths : s->n_loras) >= LIM_MODELS)
        return cli_usage_error(cmd, "at most %d %s options", LIM_MODELS, a);
    if (strcmp(a, "--model") == 0) {
        s->paths[s->n_paths++] = v;
        return 1;
    }
    if (cli_parse_lora(cmd, v, &s->loras[s->n_loras]) != 0)
        return 2;
    s->n_loras++;
    return 1;
}

void cli_sources_config(const cli_sources *s, disc_config *c) {
    memset(c, 0, sizeof *c);
    c->model_paths = s->paths;
    c->n_paths = s->n_paths;
    c->model_dirs = s->model_dirs;
    c->loras = s->loras;
    c->n_loras = s->n_loras;
    c->mmprojs = s->mmprojs;
    c->n_mmprojs = s->n_mmprojs;
}

registry *cli_sources_registry(const char *cmd, const cli_sources *s, const engine_options *eng,
                               registry_changes *ch) {
    engine_options defaults;
    engine_options_default(&defaults);
    registry *r = registry_new(eng ? eng : &defaults);
    if (r == NULL) {
        fprintf(stderr, "shimmy %s: out of memory\n", cmd);
        return NULL;
    }
    disc_config c;
    char err[1024];
    cli_sources_config(s, &c);
    if (registry_discover(r, &c, ch, err, sizeof err) != SHIMMY_OK) {
        fprintf(stderr, "shimmy %s: %s\n", cmd, err);
        registry_free(r);
        return NULL;
    }
    return r;
}

/* ---- shimmy discover ---- */

static void discover_usage(FILE *f) {
    fprintf(f,
            "usage: shimmy discover [--model PATH]... [--model-dirs DIRS] [--lora M=PATH[:S]]\n"
            "                       [--mmproj [M=]PATH] [--json] [--server HOST:PORT]\n\n"
            "Scans every place shimmy finds models (--model files, ./models, --model-dirs,\n"
            "SHIMMY_MODEL_PATHS, SHIMMY_BASE_GGUF, the Hugging Face cache, Ollama's store, LM\n"
            "Studio's folders) and reports the models per source and each file skipped, with the\n"
            "reason (a projector: the models it is paired with), and the MLX model folders found\n"
            "that this build does not serve. With --server, asks that running shimmy to rescan\n"
            "and prints what changed.\n\n"
            "  --json              print the report as JSON\n"
            "  --server HOST:PORT  rescan a running server (POST /v1/models/rescan)\n"
            "  --help              print this help\n");
}

static int print_json(registry *r, const registry_changes *ch) {
    json_t *o = json_object(), *models = json_array(), *skipped = json_array();
    json_t *unserved = json_array();
    const model_rec *d = NULL;
    disc_unserved u;
    for (size_t i = 0; registry_get(r, i, &d, NULL); i++) {
        json_array_append_new(models, json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:b}", "name", d->name,
                                                "source", d->source, "path", d->path, "adapter",
                                                d->adapter, "mmproj", d->mmproj, "mmproj_vision",
                                                d->mmproj_vision, "mmproj_audio", d->mmproj_audio));
        model_rec_unref(d);
    }
    for (size_t i = 0; i < ch->n_notes; i++)
        json_array_append_new(
            skipped, json_pack("{s:s,s:s}", "path", ch->notes[i].path, "reason", ch->notes[i].why));
    for (size_t i = 0; registry_get_unserved(r, i, &u); i++)
        json_array_append_new(unserved, json_pack("{s:s,s:s,s:s,s:s,s:I,s:s}", "name", u.name,
                                                  "source", u.source, "path", u.path, "format",
                                                  u.format, "size_bytes", (json_int_t)u.size_bytes,
                                                  "status", disc_unserved_status(&u)));
    json_object_set_new(o, "models", models);
    json_object_set_new(o, "unserved", unserved);
    json_object_set_new(o, "skipped", skipped);
    char *s = json_dumps(o, JSON_INDENT(2));
    json_decref(o);
    if (s == NULL)
        return 1;
    printf("%s\n", s);
    free(s);
    return 0;
}

static void print_text(registry *r, const registry_changes *ch) {
    static const char *const sources[] = {"cli", "dir", "env", "hf", "ollama", "lmstudio"};
    const model_rec *d = NULL;
    printf("%zu models found\n", registry_count(r));
    for (size_t k = 0; k < sizeof sources / sizeof sources[0]; k++) {
        int n = 0;
        for (size_t i = 0; registry_get(r, i, &d, NULL); i++) {
            n += strcmp(d->source, sources[k]) == 0;
            model_rec_unref(d);
        }
        if (n > 0)
            printf("  %-9s %d\n", sources[k], n);
    }
    for (size_t i = 0; registry_get(r, i, &d, NULL); i++) {
        printf("  + %s (%s) %s%s%s%s%s%s%s\n", d->name, d->source, d->path,
               d->adapter[0] ? " + adapter " : "", d->adapter, d->mmproj[0] ? " + mmproj " : "",
               d->mmproj, d->mmproj[0] ? " " : "", d->mmproj[0] ? cli_mmproj_label(d) : "");
        model_rec_unref(d);
    }
    disc_unserved u;
    size_t nu = registry_unserved_count(r);
    if (nu > 0)
        printf("%zu MLX model%s found, not served:\n", nu, nu == 1 ? "" : "s");
    for (size_t i = 0; registry_get_unserved(r, i, &u); i++)
        printf("  ! %s (%s) %s: %s\n", u.name, u.source, u.path, disc_unserved_status(&u));
    if (ch->n_notes > 0)
        printf("%zu files skipped or renamed:\n", ch->n_notes);
    for (size_t i = 0; i < ch->n_notes; i++)
        printf("  - %s: %s\n", ch->notes[i].path, ch->notes[i].why);
}

/* POSTs /v1/models/rescan to a running server and prints its answer. */
static int rescan_server(const char *hostport) {
    if (strchr(hostport, ':') == NULL)
        return cli_usage_error("discover", "--server wants HOST:PORT");
    char url[512], err[512];
    snprintf(url, sizeof url, "http://%s/v1/models/rescan", hostport);
    buf resp;
    buf_init(&resp, 16u << 20);
    long status = 0;
    shimmy_err e = http_client_post(url, NULL, 60, &resp, &status, err, sizeof err);
    if (e != SHIMMY_OK)
        fprintf(stderr, "shimmy discover: %s\n", err);
    else
        printf("%s\n", buf_str(&resp));
    buf_free(&resp);
    return e == SHIMMY_OK && status == 200 ? 0 : 1;
}

int cli_discover(int argc, char **argv) {
    cli_sources s;
    memset(&s, 0, sizeof s);
    int json = 0;
    const char *server = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cli_sources_arg("discover", argc, argv, &i, &s);
        if (r == 2)
            return 2;
        if (r == 1)
            continue;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            discover_usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--server") == 0 && i + 1 < argc)
            server = argv[++i];
        else
            return cli_usage_error("discover", "unknown option '%s'", argv[i]);
    }
    if (server != NULL)
        return rescan_server(server);
    registry_changes ch;
    memset(&ch, 0, sizeof ch);
    registry *r = cli_sources_registry("discover", &s, NULL, &ch);
    if (r == NULL)
        return 1;
    int rc = 0;
    if (json)
        rc = print_json(r, &ch);
    else
        print_text(r, &ch);
    registry_changes_free(&ch);
    registry_free(r);
    return rc;
}
