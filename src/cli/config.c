/* cli/config: the --config file of `serve` (docs/DEPLOY.md, ADR 0007) and `shimmy config check`.
 * The file is INI (core/ini.h); its keys are serve's own long flag names: `[*]` (and the lines
 * before any header) may hold any serve flag, a model section (a served name or an fnmatch glob)
 * the per-model flags (engine settings, ctx, parallel, keep-alive, alias), and both the
 * presets of api/presets.h (sampling defaults, system prompt). Values go through
 * serve's own flag parser, so the file and the command line share one set of rules. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/presets.h"
#include "cli/cli.h"
#include "core/ini.h"

/* serve flags that take MODEL=VALUE, so that a model section may set them. */
static const char *const per_model[] = {"gpu-backend",  "gpu-layers",  "cache-type-k",
                                        "cache-type-v", "flash-attn",  "chat-template-file",
                                        "lora",         "model-draft", "ctx",
                                        "parallel",     "keep-alive",  "alias",
                                        "mmproj",       NULL};

static bool is_per_model(const char *key) {
    for (size_t i = 0; per_model[i] != NULL; i++)
        if (strcmp(per_model[i], key) == 0)
            return true;
    return false;
}

static bool is_glob(const char *s) {
    return strpbrk(s, "*?[") != NULL;
}

/* One item: a sampling key is checked here, a flag handed to fn. Returns 0, or 1 after
 * reporting an error. */
static int walk_item(const char *path, const ini_file *f, const ini_item *it, cli_config_flag_fn fn,
                     void *ud) {
    char err[256], where[512], arg[4096];
    const char *sec = ini_item_section(f, it);
    bool global = strcmp(sec, "*") == 0;
    snprintf(where, sizeof where, "%s:%d", path, it->line);
    int s = api_preset_check(it->key, it->value, err, sizeof err);
    if (s != 0) {
        if (s < 0)
            fprintf(stderr, "%s: %s\n", where, err);
        return s < 0;
    }
    if (!cli_serve_has_flag(it->key)) {
        fprintf(stderr,
                "%s: unknown key '%s' (keys are serve's flag names and the sampling "
                "defaults: docs/DEPLOY.md)\n",
                where, it->key);
        return 1;
    }
    if (strcmp(it->key, "config") == 0) {
        fprintf(stderr, "%s: 'config' cannot be set in a config file\n", where);
        return 1;
    }
    if (!global && !is_per_model(it->key)) {
        fprintf(stderr, "%s: '%s' is a server setting: put it in [*], not in [%s]\n", where,
                it->key, sec);
        return 1;
    }
    if (!global &&
        (strcmp(it->key, "lora") == 0 || strcmp(it->key, "alias") == 0 ||
         strcmp(it->key, "mmproj") == 0) &&
        is_glob(sec)) {
        fprintf(stderr, "%s: %s needs a model's name, not the glob [%s]\n", where, it->key, sec);
        return 1;
    }
    if (global && strcmp(it->key, "alias") == 0) {
        fprintf(stderr, "%s: alias belongs in the section of the model it names\n", where);
        return 1;
    }
    if (global)
        snprintf(arg, sizeof arg, "%s", it->value);
    else
        snprintf(arg, sizeof arg, "%s=%s", sec, it->value);
    cli_usage_where(where);
    int rc = fn(ud, it->key, arg);
    cli_usage_where(NULL);
    return rc != 0;
}

int cli_config_walk(const char *path, const ini_file *f, cli_config_flag_fn fn, void *ud) {
    int errors = 0;
    for (size_t i = 0; i < f->n_items; i++)
        errors += walk_item(path, f, &f->items[i], fn, ud);
    return errors;
}

static void report(void *ud, int line, const char *msg) {
    fprintf(stderr, "%s:%d: %s\n", (const char *)ud, line, msg);
}

int cli_config_read(const char *path, ini_file *out) {
    char err[512];
    char *text = NULL;
    memset(out, 0, sizeof *out);
    if (ini_read_file(path, &text, err, sizeof err) != SHIMMY_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int n = ini_parse(text, out, report, (void *)path);
    free(text);
    if (n < 0)
        fprintf(stderr, "%s: out of memory\n", path);
    return n < 0 ? 1 : n;
}

const char *cli_config_default_path(char *path, size_t len) {
    const char *home = getenv("HOME");
    const char *xdg = getenv("XDG_CONFIG_HOME");
    if (xdg != NULL && xdg[0] != '\0')
        snprintf(path, len, "%s/shimmy/config.ini", xdg);
    else if (home != NULL && home[0] != '\0')
        snprintf(path, len, "%s/.config/shimmy/config.ini", home);
    else
        return NULL;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    fclose(f);
    return path;
}

static const char config_help[] =
    "usage: shimmy config check FILE\n"
    "\n"
    "Checks a serve --config file: prints each error as FILE:LINE: message (unknown key, bad\n"
    "value, unknown section syntax) and exits 2 when there is one, 0 when the file is good.\n";

int cli_config(int argc, char **argv) {
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(config_help, stdout);
        return 0;
    }
    if (argc != 3 || strcmp(argv[1], "check") != 0)
        return cli_usage_error("config", "want 'config check FILE'");
    ini_file f;
    int errors = cli_config_read(argv[2], &f);
    errors += cli_config_walk(argv[2], &f, cli_serve_check_flag, NULL);
    ini_free(&f);
    if (errors != 0) {
        fprintf(stderr, "%s: %d error%s\n", argv[2], errors, errors == 1 ? "" : "s");
        return 2;
    }
    printf("%s: ok\n", argv[2]);
    return 0;
}
