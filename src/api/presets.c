/* api/presets: per-model default sampling parameters from the --config file (presets.h). */
#include "api/presets.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/ollama_wire.h"
#include "core/err.h"
#include "core/limits.h"
#include "core/log.h"
#include "models/discover.h"
#include "models/registry.h"

/* Fields a preset may set (bits of preset.set). */
enum {
    P_TEMPERATURE = 1 << 0,
    P_TOP_P = 1 << 1,
    P_TOP_K = 1 << 2,
    P_MIN_P = 1 << 3,
    P_REPEAT_PENALTY = 1 << 4,
    P_REPEAT_LAST_N = 1 << 5,
    P_PRESENCE = 1 << 6,
    P_FREQUENCY = 1 << 7,
    P_MAX_TOKENS = 1 << 8,
    P_SEED = 1 << 9,
    P_STOP = 1 << 10,
    P_SYSTEM = 1 << 11,
};

typedef struct preset {
    char *pattern;                      /* owned: "*", a name or a glob */
    unsigned set;                       /* P_* bits */
    gen_params v;                       /* the values of the set fields */
    char *stop_text[LIM_STOP_STRINGS];  /* owned */
    const char *stop[LIM_STOP_STRINGS]; /* v.stop points here */
    char *system;                       /* owned: the system prompt's lines, or NULL */
} preset;

struct api_presets {
    preset *v; /* owned; v[0] is "*" */
    size_t n;
    api_presets *prev; /* replaced presets, kept until exit */
};

/* A sampling key: its bit, its kind and bounds. */
typedef enum { K_FLOAT, K_INT, K_STOP, K_TEXT } key_kind;
typedef struct key_def {
    const char *name;
    unsigned bit;
    key_kind kind;
    double lo, hi;
} key_def;

static const key_def keys[] = {
    {"temperature", P_TEMPERATURE, K_FLOAT, 0, 100},
    {"top-p", P_TOP_P, K_FLOAT, 0, 1},
    {"top-k", P_TOP_K, K_INT, 0, 1 << 20},
    {"min-p", P_MIN_P, K_FLOAT, 0, 1},
    {"repeat-penalty", P_REPEAT_PENALTY, K_FLOAT, 0, 100},
    {"repeat-last-n", P_REPEAT_LAST_N, K_INT, -1, 1 << 20},
    {"presence-penalty", P_PRESENCE, K_FLOAT, -2, 2},
    {"frequency-penalty", P_FREQUENCY, K_FLOAT, -2, 2},
    {"max-tokens", P_MAX_TOKENS, K_INT, -1, LIM_MAX_TOKENS},
    {"seed", P_SEED, K_INT, 0, 4294967295.0},
    {"stop", P_STOP, K_STOP, 1, LIM_STOP_BYTES},
    {"system", P_SYSTEM, K_TEXT, 0, LIM_CONFIG_BYTES},
};

static const key_def *key_find(const char *key) {
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(keys[i].name, key) == 0)
            return &keys[i];
    return NULL;
}

/* A whole number or decimal within the key's bounds. Returns 0, or -1. */
static int parse_number(const key_def *k, const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || !isfinite(v) || v < k->lo || v > k->hi)
        return -1;
    if (k->kind == K_INT && v != floor(v))
        return -1;
    *out = v;
    return 0;
}

int api_preset_check(const char *key, const char *value, char *err, size_t errlen) {
    const key_def *k = key_find(key);
    double v;
    if (k == NULL)
        return 0;
    if (k->kind == K_TEXT)
        return 1; /* any text; the file's size bounds it */
    if (k->kind == K_STOP) {
        size_t n = strlen(value);
        if (n >= 1 && n <= LIM_STOP_BYTES)
            return 1;
        err_set(err, errlen, ERR_BAD_PARAM,
                "stop wants a string of 1 to %d bytes (repeat the "
                "key for more)",
                LIM_STOP_BYTES);
        return -1;
    }
    if (parse_number(k, value, &v) == 0)
        return 1;
    err_set(err, errlen, ERR_BAD_PARAM, "%s wants %s from %g to %g, not '%s'", key,
            k->kind == K_INT ? "an integer" : "a number", k->lo, k->hi, value);
    return -1;
}

static void set_number(preset *p, unsigned bit, double v) {
    switch (bit) {
    case P_TEMPERATURE:
        p->v.temperature = (float)v;
        break;
    case P_TOP_P:
        p->v.top_p = (float)v;
        break;
    case P_TOP_K:
        p->v.top_k = (int)v;
        break;
    case P_MIN_P:
        p->v.min_p = (float)v;
        break;
    case P_REPEAT_PENALTY:
        p->v.repeat_penalty = (float)v;
        break;
    case P_REPEAT_LAST_N:
        p->v.repeat_last_n = (int)v;
        break;
    case P_PRESENCE:
        p->v.presence_penalty = (float)v;
        break;
    case P_FREQUENCY:
        p->v.frequency_penalty = (float)v;
        break;
    case P_MAX_TOKENS:
        p->v.max_tokens = (int)v;
        break;
    default:
        p->v.has_seed = true, p->v.seed = (uint32_t)v;
        break;
    }
}

/* Appends value to *text as a line of its own (a repeated system key makes a prompt of several
 * lines). Returns -1 when out of memory, else 0. */
static int text_append(char **text, const char *value) {
    size_t old = *text != NULL ? strlen(*text) : 0, n = strlen(value);
    char *t = realloc(*text, old + (old > 0) + n + 1);
    if (t == NULL)
        return -1;
    if (old > 0)
        t[old++] = '\n';
    memcpy(t + old, value, n + 1);
    *text = t;
    return 0;
}

/* Sets key on p when it is a good sampling key. Returns -1 when out of memory, else 0. */
static int preset_set(preset *p, const char *key, const char *value) {
    const key_def *k = key_find(key);
    double v;
    if (k == NULL || api_preset_check(key, value, NULL, 0) != 1)
        return 0;
    p->set |= k->bit;
    if (k->kind == K_TEXT)
        return text_append(&p->system, value);
    if (k->kind != K_STOP) {
        if (parse_number(k, value, &v) == 0)
            set_number(p, k->bit, v);
        return 0;
    }
    if (p->v.n_stop >= LIM_STOP_STRINGS)
        return 0;
    if ((p->stop_text[p->v.n_stop] = strdup(value)) == NULL)
        return -1;
    p->stop[p->v.n_stop] = p->stop_text[p->v.n_stop];
    p->v.n_stop++;
    p->v.stop = p->stop;
    return 0;
}

static void preset_free(preset *p) {
    for (int i = 0; i < p->v.n_stop; i++)
        free(p->stop_text[i]);
    free(p->system);
    free(p->pattern);
}

/* The preset of ini section s (-1 and "*" share v[0]). */
static preset *preset_of(api_presets *ps, const ini_file *f, int s) {
    return s < 0 || strcmp(f->sections[s].name, "*") == 0 ? &ps->v[0] : &ps->v[s + 1];
}

api_presets *api_presets_from_ini(const ini_file *f) {
    api_presets *ps = calloc(1, sizeof *ps);
    if (ps == NULL || (ps->v = calloc(f->n_sections + 1, sizeof *ps->v)) == NULL)
        goto oom;
    ps->n = f->n_sections + 1;
    for (size_t i = 0; i < ps->n; i++)
        if ((ps->v[i].pattern = strdup(i == 0 ? "*" : f->sections[i - 1].name)) == NULL)
            goto oom;
    for (size_t i = 0; i < f->n_items; i++)
        if (preset_set(preset_of(ps, f, f->items[i].section), f->items[i].key, f->items[i].value) !=
            0)
            goto oom;
    return ps;
oom:
    api_presets_free(ps);
    return NULL;
}

size_t api_presets_count(const api_presets *p) {
    size_t n = 0;
    for (size_t i = 0; p != NULL && i < p->n; i++)
        n += p->v[i].set != 0;
    return n;
}

void api_presets_free(api_presets *p) {
    if (p == NULL)
        return;
    for (size_t i = 0; p->v != NULL && i < p->n; i++)
        preset_free(&p->v[i]);
    free(p->v);
    free(p);
}

void api_presets_install(shimmy_app *app, api_presets *next) {
    api_presets *old = atomic_exchange(&app->presets, next);
    if (next != NULL)
        next->prev = old;
    else
        api_presets_free(old); /* only at start-up/exit paths: nothing borrows it yet */
}

void api_presets_retire_all(shimmy_app *app) {
    api_presets *p = atomic_exchange(&app->presets, NULL);
    while (p != NULL) {
        api_presets *prev = p->prev;
        api_presets_free(p);
        p = prev;
    }
}

/* Lays the fields p sets over out. */
static void preset_over(const preset *p, gen_params *out) {
    const gen_params *v = &p->v;
    unsigned s = p->set;
    out->temperature = s & P_TEMPERATURE ? v->temperature : out->temperature;
    out->top_p = s & P_TOP_P ? v->top_p : out->top_p;
    out->top_k = s & P_TOP_K ? v->top_k : out->top_k;
    out->min_p = s & P_MIN_P ? v->min_p : out->min_p;
    out->repeat_penalty = s & P_REPEAT_PENALTY ? v->repeat_penalty : out->repeat_penalty;
    out->repeat_last_n = s & P_REPEAT_LAST_N ? v->repeat_last_n : out->repeat_last_n;
    out->presence_penalty = s & P_PRESENCE ? v->presence_penalty : out->presence_penalty;
    out->frequency_penalty = s & P_FREQUENCY ? v->frequency_penalty : out->frequency_penalty;
    out->max_tokens = s & P_MAX_TOKENS ? v->max_tokens : out->max_tokens;
    if (s & P_SEED) {
        out->has_seed = true;
        out->seed = v->seed;
    }
    if (s & P_STOP) {
        out->stop = v->stop;
        out->n_stop = v->n_stop;
    }
}

/* Whether preset q applies to model (NULL: only "*" does). */
static bool preset_matches(const preset *q, const char *model) {
    return strcmp(q->pattern, "*") == 0 || (model != NULL && (strcmp(q->pattern, model) == 0 ||
                                                              fnmatch(q->pattern, model, 0) == 0));
}

void api_presets_apply(const api_presets *p, const char *model, gen_params *out) {
    for (size_t i = 0; p != NULL && i < p->n; i++)
        if (p->v[i].set != 0 && preset_matches(&p->v[i], model))
            preset_over(&p->v[i], out);
}

const char *api_presets_system(const api_presets *p, const char *model) {
    const char *sys = NULL;
    for (size_t i = 0; p != NULL && i < p->n; i++)
        if ((p->v[i].set & P_SYSTEM) && preset_matches(&p->v[i], model))
            sys = p->v[i].system;
    return sys;
}

const char *api_model_served_name(shimmy_app *app, const char *name, char *out, size_t len) {
    const model_rec *d = NULL;
    if (name == NULL || app == NULL || app->models == NULL ||
        !registry_find(app->models, name, &d, NULL))
        return name;
    snprintf(out, len, "%s", d->name);
    model_rec_unref(d);
    return out;
}

/* The Ollama layers of the model served as model (the params and system layers of its
 * manifest), read into *l; false when it has none. */
static bool modelfile_layers(shimmy_app *app, const char *model, disc_ollama_layers *l) {
    const model_rec *d = NULL;
    memset(l, 0, sizeof *l);
    if (model == NULL || app->models == NULL || !registry_find(app->models, model, &d, NULL))
        return false;
    bool ok = d->manifest[0] != '\0' && disc_ollama_read_layers(d->manifest, l);
    model_rec_unref(d);
    return ok;
}

void api_gen_defaults(shimmy_app *app, json_t *root, const gen_params *base, gen_params *out,
                      const char **stop) {
    char served[256];
    disc_ollama_layers l;
    api_error err;
    if (base != NULL)
        *out = *base;
    else
        gen_params_default(out);
    if (app == NULL)
        return;
    const char *model = json_string_value(json_object_get(root, "model"));
    model = api_model_served_name(app, model, served, sizeof served);
    if (modelfile_layers(app, model, &l)) {
        gen_params before = *out;
        if (oll_lay_params(root, l.params_json, out, stop, &err) != SHIMMY_OK) {
            log_warn("model %s: its Modelfile parameters are not used: %s", model, err.message);
            *out = before;
        }
        disc_ollama_layers_free(&l);
    }
    api_presets_apply(atomic_load(&app->presets), model, out);
}

/* Whether chat (the engine's chat JSON) opens with a system message. */
static bool opens_with_system(const json_t *chat) {
    json_t *first = json_array_get(json_object_get(chat, "messages"), 0);
    const char *role = json_string_value(json_object_get(first, "role"));
    return role != NULL && strcmp(role, "system") == 0;
}

char *api_presets_add_system(shimmy_app *app, const char *model, const char *chat_json) {
    char served[256];
    if (app == NULL || chat_json == NULL)
        return NULL;
    json_t *chat = json_loads(chat_json, 0, NULL);
    json_t *msgs = json_object_get(chat, "messages");
    if (!json_is_array(msgs) || opens_with_system(chat)) { /* nothing to add: no file read */
        json_decref(chat);
        return NULL;
    }
    model = api_model_served_name(app, model, served, sizeof served);
    disc_ollama_layers l = {0};
    const char *sys = api_presets_system(atomic_load(&app->presets), model);
    if (sys == NULL && modelfile_layers(app, model, &l))
        sys = l.system_text; /* the Modelfile's SYSTEM, as Ollama gives it on every API */
    char *out = NULL;
    if (sys != NULL && sys[0] != '\0' &&
        json_array_insert_new(msgs, 0, json_pack("{s:s,s:s}", "role", "system", "content", sys)) ==
            0)
        out = json_dumps(chat, JSON_COMPACT);
    json_decref(chat);
    disc_ollama_layers_free(&l);
    return out;
}
