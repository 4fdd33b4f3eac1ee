/* models/registry: the served models by name (sorted array of entries under one mutex) and the
 * engine models loaded for them. A model is loaded on first acquire by exactly one caller; the
 * others wait on the entry's condition variable and share the result (model or error). Loading
 * beyond max_loaded first unloads the least recently used model nobody holds; a reaper thread
 * unloads models whose keep-alive ran out. Loads and unloads run with the mutex released (the
 * entry's state, LOADING or UNLOADING, tells the others to wait). Entries go away only in a
 * rescan, and only when idle, unused and without waiters. Beside them, the folders found in a
 * format this build cannot serve (MLX), kept only to answer a request for one with the reason.
 *
 * The lock. Every public function takes r->mu itself. Static functions named *_locked expect
 * it held and keep it. The functions below expect it held and RELEASE AND RETAKE it (each is
 * named *_unlocking); after one returns, any entry pointer other than the one it was given, and
 * any index into r->v, may be stale, and every state must be read again:
 *   wait_entry_unlocking      pthread_cond_wait on the entry's cv
 *   unload_unlocking          engine_model_free of the entry's model
 *   load_entry_unlocking      engine_model_load of the entry's model
 *   make_room_unlocking       unload_unlocking of least recently used idle models
 *   reload_for_ctx_unlocking  wait_entry_unlocking or unload_unlocking
 *   settle_unlocking          unload_unlocking (keep_alive 0) or make_room_unlocking
 *   reap_one_unlocking        unload_unlocking of an expired model
 * They are reached from registry_acquire_ctx (its loop), registry_release_keep and
 * registry_unload (settle_unlocking) and the reaper thread (reap_one_unlocking, and its own
 * timed wait). The entry they work on stays alive across the unlock because its waiters count
 * is raised (entries with waiters are never removed). on_load_progress takes mu from the
 * loading thread while load_entry_unlocking has it released.
 *
 * Records. Each entry holds a reference to its model_rec (models/discover.h), which nobody
 * writes once discovery returned it. registry_get/find/info take one more reference under mu
 * and copy the small model_status; the caller reads the record without the lock and drops the
 * reference (an atomic count) whenever it likes. A rescan swaps an entry's record only while
 * the entry is IDLE, so code that runs with mu released on a LOADING or UNLOADING entry
 * (load_entry_unlocking, unload_unlocking) may read e->rec. A request's registry calls used to
 * copy a 21 KB model_desc each under mu; now 8 bytes and a 40-byte status (docs/ARCHITECTURE.md
 * has the measurement). */
#include "models/registry.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/limits.h"
#include "core/log.h"
#include "models/names.h"
#include "models/pull.h"

typedef enum { ENTRY_IDLE, ENTRY_LOADING, ENTRY_LOADED, ENTRY_UNLOADING } entry_state;

typedef struct entry {
    const model_rec *rec; /* owned reference: what discovery found; replaced (never written)
                           * by a rescan, only while the entry is IDLE */
    entry_state state;
    engine_model *model; /* owned; set when state == ENTRY_LOADED */
    int uses;            /* acquires not yet released */
    int waiters;         /* threads waiting on cv: the entry must not go away */
    uint64_t loads_done; /* finished load attempts, so waiters can tell theirs ended */
    shimmy_err last_rc;  /* result of the last finished load attempt */
    char last_err[512];
    pthread_cond_t cv;   /* signalled when a load or unload finishes */
    uint64_t last_used;  /* registry tick of the last acquire or release (LRU) */
    int64_t keep_ns;     /* keep-alive after the last release; < 0 = forever */
    int64_t expires_ns;  /* monotonic deadline when idle and loaded; 0 = none */
    bool seen;           /* found by the current rescan */
    float load_progress; /* of the load under way, 0..1 */
    int load_crashes;    /* loads in a row whose engine process died (ADR 0005) */
    char failed[640];    /* set after LIM_LOAD_CRASHES of them: why no load is tried until
                          * a rescan; "" = not failed */
    int n_ctx;           /* context per slot the next load asks for (a request's num_ctx);
                          * 0 = the default (--ctx) */
    int ctx_slot;        /* the loaded model's context per slot, tokens */
    int ctx_want;        /* a request waits for the model to be idle to reload it with this
                          * context; 0 = none */
    uint64_t loads_ok;   /* successful loads (metrics) */
    int64_t load_ns;     /* duration of the last successful load, ns */
} entry;

/* An alias (registry_add_alias) and a per-model keep-alive (registry_set_model_keep_alive). */
typedef struct alias {
    char *alias; /* owned */
    char *model; /* owned: the served name it stands for */
} alias;
typedef struct model_keep {
    char *pattern; /* owned: a served name or an fnmatch glob */
    int64_t keep_ns;
} model_keep;

/* The remembered discovery configuration (deep copy of a disc_config). */
typedef struct saved_config {
    bool set;
    char **paths;
    int n_paths;
    char *model_dirs;
    disc_lora *loras;
    int n_loras;
    disc_mmproj *mmprojs;
    int n_mmprojs;
    bool no_stores;
} saved_config;

struct registry {
    pthread_mutex_t mu;
    entry **v; /* sorted by rec->name */
    size_t n, cap;
    engine_options defaults; /* path/name unused */
    char *template_override; /* owned copy of defaults.template_override */
    int max_loaded;
    int max_ctx;        /* largest num_ctx a request may ask for; 0 = no cap */
    uint64_t max_bytes; /* memory budget for loaded model files; 0 = none */
    int64_t default_keep_ns;
    uint64_t tick;
    saved_config cfg;
    alias *aliases; /* owned, in the order added */
    size_t n_aliases;
    model_keep *keeps; /* owned, in the order set: the last match wins */
    size_t n_keeps;
    disc_unserved *unserved; /* owned, sorted by name: found, not servable (MLX) */
    size_t n_unserved;
    pthread_mutex_t scan_mu; /* one rescan at a time */
    pthread_t reaper;
    pthread_cond_t reaper_cv;
    bool stopping;
    bool reaper_started;
    bool pull_missing; /* --pull-missing (registry_set_pull_missing) */
};

static void *reaper_main(void *arg);

registry *registry_new(const engine_options *defaults) {
    registry *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    if (defaults != NULL)
        r->defaults = *defaults;
    else
        engine_options_default(&r->defaults);
    r->defaults.path = NULL;
    r->defaults.name = NULL;
    r->defaults.lora_path = NULL;
    if (r->defaults.template_override != NULL) {
        r->template_override = strdup(r->defaults.template_override);
        if (r->template_override == NULL) {
            free(r);
            return NULL;
        }
        r->defaults.template_override = r->template_override;
    }
    r->max_loaded = LIM_DEFAULT_MAX_LOADED;
    r->default_keep_ns = -1;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->scan_mu, NULL);
    pthread_cond_init(&r->reaper_cv, NULL);
    r->reaper_started = pthread_create(&r->reaper, NULL, reaper_main, r) == 0;
    return r;
}

static void saved_config_free(saved_config *c) {
    for (int i = 0; i < c->n_paths; i++)
        free(c->paths[i]);
    free(c->paths);
    free(c->model_dirs);
    for (int i = 0; i < c->n_loras; i++) {
        free((char *)c->loras[i].model);
        free((char *)c->loras[i].path);
    }
    free(c->loras);
    for (int i = 0; i < c->n_mmprojs; i++) {
        free((char *)c->mmprojs[i].model);
        free((char *)c->mmprojs[i].path);
    }
    free(c->mmprojs);
    memset(c, 0, sizeof *c);
}

static void entry_drop(entry *e) {
    model_rec_unref(e->rec);
    pthread_cond_destroy(&e->cv);
    free(e);
}

void registry_free(registry *r) {
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    pthread_cond_broadcast(&r->reaper_cv);
    pthread_mutex_unlock(&r->mu);
    if (r->reaper_started)
        pthread_join(r->reaper, NULL);
    for (size_t i = 0; i < r->n; i++) {
        if (r->v[i]->model != NULL)
            engine_model_free(r->v[i]->model);
        entry_drop(r->v[i]);
    }
    free(r->v);
    for (size_t i = 0; i < r->n_aliases; i++) {
        free(r->aliases[i].alias);
        free(r->aliases[i].model);
    }
    free(r->aliases);
    for (size_t i = 0; i < r->n_keeps; i++)
        free(r->keeps[i].pattern);
    free(r->keeps);
    free(r->unserved);
    free(r->template_override);
    saved_config_free(&r->cfg);
    pthread_cond_destroy(&r->reaper_cv);
    pthread_mutex_destroy(&r->scan_mu);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void registry_set_max_loaded(registry *r, int n) {
    pthread_mutex_lock(&r->mu);
    r->max_loaded = n < 1 ? 1 : n;
    pthread_mutex_unlock(&r->mu);
}

void registry_set_max_ctx(registry *r, int n) {
    pthread_mutex_lock(&r->mu);
    r->max_ctx = n > 0 ? n : 0;
    pthread_mutex_unlock(&r->mu);
}

void registry_set_memory_budget(registry *r, uint64_t bytes) {
    pthread_mutex_lock(&r->mu);
    r->max_bytes = bytes;
    pthread_mutex_unlock(&r->mu);
}

void registry_set_keep_alive(registry *r, int64_t keep_ns) {
    pthread_mutex_lock(&r->mu);
    r->default_keep_ns = keep_ns;
    pthread_mutex_unlock(&r->mu);
}

/* Appends one per-model keep-alive (caller holds mu). */
static shimmy_err keep_push(registry *r, const char *pattern, int64_t keep_ns) {
    if (r->n_keeps >= LIM_MODELS)
        return ERR_BAD_PARAM;
    model_keep *v = realloc(r->keeps, (r->n_keeps + 1) * sizeof *v);
    if (v == NULL)
        return ERR_NOMEM;
    r->keeps = v;
    v[r->n_keeps].pattern = strdup(pattern);
    if (v[r->n_keeps].pattern == NULL)
        return ERR_NOMEM;
    v[r->n_keeps++].keep_ns = keep_ns;
    return SHIMMY_OK;
}

shimmy_err registry_set_model_keep_alive(registry *r, const char *pattern, int64_t keep_ns) {
    pthread_mutex_lock(&r->mu);
    shimmy_err rc = keep_push(r, pattern, keep_ns);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* The alias entry named name, or NULL (caller holds mu). */
static const alias *find_alias(const registry *r, const char *name) {
    for (size_t i = 0; i < r->n_aliases; i++)
        if (strcmp(r->aliases[i].alias, name) == 0)
            return &r->aliases[i];
    return NULL;
}

shimmy_err registry_add_alias(registry *r, const char *name, const char *model, char *err,
                              size_t errlen) {
    if (strcmp(name, model) == 0)
        return err_set(err, errlen, ERR_BAD_PARAM, "alias '%s' is the model's own name", name);
    pthread_mutex_lock(&r->mu);
    const alias *a = find_alias(r, name);
    shimmy_err rc = SHIMMY_OK;
    alias *v = NULL;
    if (a != NULL && strcmp(a->model, model) != 0)
        rc = err_set(err, errlen, ERR_BAD_PARAM, "alias '%s' is already model '%s''s", name,
                     a->model);
    else if (a == NULL && r->n_aliases >= LIM_MODELS)
        rc = err_set(err, errlen, ERR_BAD_PARAM, "at most %d aliases", LIM_MODELS);
    else if (a == NULL && (v = realloc(r->aliases, (r->n_aliases + 1) * sizeof *v)) == NULL)
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
    if (v != NULL) {
        r->aliases = v;
        v[r->n_aliases] = (alias){strdup(name), strdup(model)};
        if (v[r->n_aliases].alias == NULL || v[r->n_aliases].model == NULL) {
            free(v[r->n_aliases].alias);
            free(v[r->n_aliases].model);
            rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        } else {
            r->n_aliases++;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

size_t registry_alias_count(registry *r) {
    pthread_mutex_lock(&r->mu);
    size_t n = r->n_aliases;
    pthread_mutex_unlock(&r->mu);
    return n;
}

bool registry_alias_get(registry *r, size_t i, char *name, size_t name_len, char *model,
                        size_t model_len) {
    pthread_mutex_lock(&r->mu);
    bool ok = i < r->n_aliases;
    if (ok) {
        snprintf(name, name_len, "%s", r->aliases[i].alias);
        snprintf(model, model_len, "%s", r->aliases[i].model);
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

/* ---- lookup (caller holds mu) ---- */

/* Index of name, or of where it would go (with *found = false). */
static size_t find_slot(const registry *r, const char *name, bool *found) {
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->v[mid]->rec->name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static entry *find_exact(const registry *r, const char *name) {
    bool found;
    size_t i = find_slot(r, name, &found);
    return found ? r->v[i] : NULL;
}

/* name, else name without ":latest", else name + ":latest" (Ollama's default tag). */
static entry *find_served(const registry *r, const char *name) {
    entry *e = find_exact(r, name);
    if (e != NULL || strlen(name) > 240)
        return e;
    char alt[256];
    size_t n = strlen(name);
    if (n > 7 && strcmp(name + n - 7, ":latest") == 0) {
        snprintf(alt, sizeof alt, "%.*s", (int)(n - 7), name);
        return find_exact(r, alt);
    }
    if (strchr(name, ':') == NULL) {
        snprintf(alt, sizeof alt, "%s:latest", name);
        return find_exact(r, alt);
    }
    return NULL;
}

/* A served name (find_served), else an alias (itself or without ":latest") of one. */
static entry *find_entry(const registry *r, const char *name) {
    entry *e = find_served(r, name);
    if (e != NULL)
        return e;
    const alias *a = find_alias(r, name);
    size_t n = strlen(name);
    if (a == NULL && n > 7 && n < 256 && strcmp(name + n - 7, ":latest") == 0) {
        char base[256];
        snprintf(base, sizeof base, "%.*s", (int)(n - 7), name);
        a = find_alias(r, base);
    }
    return a != NULL ? find_served(r, a->model) : NULL;
}

static bool same_model(const entry *e, const model_rec *d) {
    return strcmp(e->rec->realpath, d->realpath) == 0 && strcmp(e->rec->adapter, d->adapter) == 0 &&
           strcmp(e->rec->manifest, d->manifest) == 0;
}

/* The entry for the same model (see discover.c's find_real). */
static const entry *find_realpath(const registry *r, const model_rec *d) {
    for (size_t i = 0; i < r->n; i++)
        if (same_model(r->v[i], d))
            return r->v[i];
    return NULL;
}

static int64_t expires_wall(const entry *e) {
    if (e->state != ENTRY_LOADED || e->expires_ns == 0)
        return 0;
    return clock_wall_s() + (e->expires_ns - clock_mono_ns()) / 1000000000;
}

/* What registry_get/find/info hand out for e: a reference to its record (rec may be NULL) and
 * its load state (st may be NULL). Caller holds mu. */
static void read_entry(const entry *e, const model_rec **rec, model_status *st) {
    if (rec != NULL)
        *rec = model_rec_ref(e->rec);
    if (st == NULL)
        return;
    st->loaded = e->state == ENTRY_LOADED;
    st->loading = e->state == ENTRY_LOADING;
    st->uses = e->uses;
    st->load_progress = e->load_progress;
    st->expires_at = expires_wall(e);
    st->loads = e->loads_ok;
    st->load_ns = e->load_ns;
}

/* ---- adding ---- */

/* A new idle entry holding a reference to d. */
static entry *entry_new(const model_rec *d) {
    entry *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->rec = model_rec_ref(d);
    e->last_rc = SHIMMY_OK;
    e->keep_ns = INT64_MIN; /* the registry's default */
    pthread_cond_init(&e->cv, NULL);
    return e;
}

/* Inserts e in name order (caller holds mu). ERR_BAD_PARAM for a name or file already present.
 * Takes e on success. *dup_file tells a duplicate file (same realpath) from a duplicate name. */
static shimmy_err insert_locked(registry *r, entry *e, bool *dup_file, char *err, size_t errlen) {
    *dup_file = false;
    const entry *same = find_realpath(r, e->rec);
    bool found;
    size_t at = find_slot(r, e->rec->name, &found);
    if (same != NULL) {
        *dup_file = true;
        return err_set(err, errlen, ERR_BAD_PARAM, "%s: already added as '%s'", e->rec->path,
                       same->rec->name);
    }
    if (found)
        return err_set(err, errlen, ERR_BAD_PARAM, "%s: a model named '%s' already exists (%s)",
                       e->rec->path, e->rec->name, r->v[at]->rec->path);
    if (r->n >= LIM_REGISTRY_MODELS)
        return err_set(err, errlen, ERR_BAD_PARAM, "%s: too many models (%d)", e->rec->path,
                       LIM_REGISTRY_MODELS);
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        entry **v = realloc(r->v, cap * sizeof *v);
        if (v == NULL)
            return err_set(err, errlen, ERR_NOMEM, "out of memory");
        r->v = v;
        r->cap = cap;
    }
    memmove(&r->v[at + 1], &r->v[at], (r->n - at) * sizeof *r->v);
    r->v[at] = e;
    r->n++;
    return SHIMMY_OK;
}

static shimmy_err insert_rec(registry *r, const model_rec *d, bool *dup_file, char *err,
                             size_t errlen) {
    entry *e = entry_new(d);
    if (e == NULL)
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    pthread_mutex_lock(&r->mu);
    shimmy_err rc = insert_locked(r, e, dup_file, err, errlen);
    pthread_mutex_unlock(&r->mu);
    if (rc != SHIMMY_OK)
        entry_drop(e);
    return rc;
}

shimmy_err registry_add(registry *r, const char *path, const char *name, const char *source,
                        char *err, size_t errlen) {
    model_rec *d = model_rec_new();
    bool dup_file;
    if (d == NULL)
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    shimmy_err rc = disc_describe(path, name, source, d, err, errlen);
    if (rc == SHIMMY_OK)
        rc = insert_rec(r, d, &dup_file, err, errlen);
    model_rec_unref(d);
    return rc;
}

shimmy_err registry_add_sources(registry *r, char *const *model_paths, int n_paths,
                                const char *model_dirs, char *err, size_t errlen) {
    disc_config c = {.model_paths = model_paths, .n_paths = n_paths, .model_dirs = model_dirs};
    return registry_discover(r, &c, NULL, err, errlen);
}

/* ---- discovery and rescans ---- */

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

/* The --mmproj pairings (model NULL = the default model) into s. */
static shimmy_err save_mmprojs(saved_config *s, const disc_config *c) {
    s->mmprojs = calloc((size_t)c->n_mmprojs + 1, sizeof *s->mmprojs);
    if (s->mmprojs == NULL)
        return ERR_NOMEM;
    for (int i = 0; i < c->n_mmprojs; i++) {
        s->mmprojs[i].model = dup_or_null(c->mmprojs[i].model);
        s->mmprojs[i].path = strdup(c->mmprojs[i].path);
        s->n_mmprojs++;
        if ((c->mmprojs[i].model != NULL && s->mmprojs[i].model == NULL) ||
            s->mmprojs[i].path == NULL)
            return ERR_NOMEM;
    }
    return SHIMMY_OK;
}

static shimmy_err save_config(saved_config *s, const disc_config *c) {
    saved_config_free(s);
    s->set = true;
    s->no_stores = c->no_stores;
    s->model_dirs = dup_or_null(c->model_dirs);
    s->paths = calloc((size_t)c->n_paths + 1, sizeof *s->paths);
    s->loras = calloc((size_t)c->n_loras + 1, sizeof *s->loras);
    if (s->paths == NULL || s->loras == NULL)
        return ERR_NOMEM;
    for (int i = 0; i < c->n_paths; i++)
        if ((s->paths[s->n_paths++] = strdup(c->model_paths[i])) == NULL)
            return ERR_NOMEM;
    for (int i = 0; i < c->n_loras; i++) {
        s->loras[i].model = strdup(c->loras[i].model);
        s->loras[i].path = strdup(c->loras[i].path);
        s->loras[i].scale = c->loras[i].scale;
        s->n_loras++;
        if (s->loras[i].model == NULL || s->loras[i].path == NULL)
            return ERR_NOMEM;
    }
    return save_mmprojs(s, c);
}

static void saved_to_config(const saved_config *s, disc_config *c) {
    memset(c, 0, sizeof *c);
    c->model_paths = s->paths;
    c->n_paths = s->n_paths;
    c->model_dirs = s->model_dirs;
    c->loras = s->loras;
    c->n_loras = s->n_loras;
    c->mmprojs = s->mmprojs;
    c->n_mmprojs = s->n_mmprojs;
    c->no_stores = s->no_stores;
}

static void push_name(char ***v, size_t *n, const char *name) {
    char **nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (nv == NULL)
        return;
    *v = nv;
    if ((nv[*n] = strdup(name)) != NULL)
        (*n)++;
}

static bool entry_removable(const entry *e) {
    return e->state == ENTRY_IDLE && e->uses == 0 && e->waiters == 0;
}

static void remove_at(registry *r, size_t i) {
    entry_drop(r->v[i]);
    memmove(&r->v[i], &r->v[i + 1], (r->n - i - 1) * sizeof *r->v);
    r->n--;
}

/* Pass 1: entries that discovery found again under the same name (caller holds mu). */
static void mark_seen(registry *r, const disc_result *res, bool *matched) {
    for (size_t i = 0; i < r->n; i++)
        r->v[i]->seen = false;
    for (size_t i = 0; i < res->n; i++) {
        entry *e = find_exact(r, res->models[i]->name);
        matched[i] = e != NULL && same_model(e, res->models[i]);
        if (matched[i]) {
            e->seen = true;
            if (e->state == ENTRY_IDLE) { /* metadata may have changed */
                model_rec_unref(e->rec);
                e->rec = model_rec_ref(res->models[i]);
            }
        }
    }
}

/* Pass 2: entries not found again go away, unless loaded or in use. */
static void drop_unseen(registry *r, registry_changes *ch) {
    for (size_t i = r->n; i-- > 0;) {
        if (r->v[i]->seen)
            continue;
        if (!entry_removable(r->v[i])) {
            log_info("model '%s' is gone from disk; it stays until unloaded", r->v[i]->rec->name);
            continue;
        }
        push_name(&ch->removed, &ch->n_removed, r->v[i]->rec->name);
        remove_at(r, i);
    }
}

/* Pass 3: the new models. */
static void add_new(registry *r, const model_rec *d, registry_changes *ch) {
    entry *ne = entry_new(d);
    bool dup_file;
    char err[600];
    if (ne == NULL)
        return;
    if (insert_locked(r, ne, &dup_file, err, sizeof err) != SHIMMY_OK) {
        entry_drop(ne);
        log_warn("skipping %s", err);
        return;
    }
    ne->seen = true;
    push_name(&ch->added, &ch->n_added, d->name);
}

static int unserved_cmp(const void *a, const void *b) {
    return strcmp(((const disc_unserved *)a)->name, ((const disc_unserved *)b)->name);
}

/* The unserved folders: res's list replaces ours (caller holds mu; takes res's array). */
static void take_unserved(registry *r, disc_result *res) {
    free(r->unserved);
    r->unserved = res->unserved;
    r->n_unserved = res->n_unserved;
    res->unserved = NULL;
    res->n_unserved = res->cap_unserved = 0;
    if (r->n_unserved > 1)
        qsort(r->unserved, r->n_unserved, sizeof *r->unserved, unserved_cmp);
}

static void sync_result(registry *r, disc_result *res, registry_changes *ch) {
    bool *matched = calloc(res->n + 1, sizeof *matched);
    if (matched == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    take_unserved(r, res);
    mark_seen(r, res, matched);
    drop_unseen(r, ch);
    for (size_t i = 0; i < res->n; i++)
        if (!matched[i])
            add_new(r, res->models[i], ch);
    ch->total = r->n;
    pthread_mutex_unlock(&r->mu);
    free(matched);
}

/* Moves res's notes into ch. */
static void take_notes(disc_result *res, registry_changes *ch) {
    ch->notes = res->notes;
    ch->n_notes = res->n_notes;
    res->notes = NULL;
    res->n_notes = res->cap_notes = 0;
}

static shimmy_err run_scan(registry *r, const disc_config *c, registry_changes *ch, char *err,
                           size_t errlen) {
    disc_result res;
    shimmy_err rc = disc_run(c, &res, err, errlen);
    if (rc == SHIMMY_OK) {
        sync_result(r, &res, ch);
        take_notes(&res, ch);
    }
    disc_result_free(&res);
    return rc;
}

shimmy_err registry_discover(registry *r, const disc_config *c, registry_changes *ch, char *err,
                             size_t errlen) {
    registry_changes local;
    memset(&local, 0, sizeof local);
    pthread_mutex_lock(&r->scan_mu);
    shimmy_err rc = save_config(&r->cfg, c);
    if (rc == SHIMMY_OK)
        rc = run_scan(r, c, &local, err, errlen);
    else
        err_set(err, errlen, rc, "out of memory");
    pthread_mutex_unlock(&r->scan_mu);
    if (ch != NULL)
        *ch = local;
    else
        registry_changes_free(&local);
    return rc;
}

/* Models whose engine failed (its process died at load or first decode too often in a row,
 * ADR 0005) are unloaded, so that their next request tries afresh. */
static void unload_failed(registry *r) {
    const model_rec *d = NULL;
    model_status st;
    engine_model_info info;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++) {
        r->v[i]->failed[0] = '\0';
        r->v[i]->load_crashes = 0;
    }
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; registry_info(r, i, &d, &st, &info); i++) {
        if (st.loaded && info.failed) {
            log_info("%s: unloading the failed model so that it is loaded afresh", d->name);
            registry_unload(r, d->name);
        }
        model_rec_unref(d);
    }
}

shimmy_err registry_rescan(registry *r, registry_changes *ch, char *err, size_t errlen) {
    registry_changes local;
    disc_config c;
    unload_failed(r);
    memset(&local, 0, sizeof local);
    pthread_mutex_lock(&r->scan_mu);
    saved_to_config(&r->cfg, &c);
    shimmy_err rc = run_scan(r, &c, &local, err, errlen);
    pthread_mutex_unlock(&r->scan_mu);
    if (ch != NULL)
        *ch = local;
    else
        registry_changes_free(&local);
    return rc;
}

void registry_changes_free(registry_changes *ch) {
    for (size_t i = 0; i < ch->n_added; i++)
        free(ch->added[i]);
    for (size_t i = 0; i < ch->n_removed; i++)
        free(ch->removed[i]);
    for (size_t i = 0; i < ch->n_notes; i++) {
        free(ch->notes[i].path);
        free(ch->notes[i].why);
    }
    free(ch->added);
    free(ch->removed);
    free(ch->notes);
    memset(ch, 0, sizeof *ch);
}

/* ---- queries ---- */

size_t registry_count(registry *r) {
    pthread_mutex_lock(&r->mu);
    size_t n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

bool registry_get(registry *r, size_t i, const model_rec **rec, model_status *st) {
    return registry_info(r, i, rec, st, NULL);
}

bool registry_info(registry *r, size_t i, const model_rec **rec, model_status *st,
                   engine_model_info *info) {
    pthread_mutex_lock(&r->mu);
    bool ok = i < r->n;
    if (rec != NULL)
        *rec = NULL;
    if (ok) {
        read_entry(r->v[i], rec, st);
        /* engine_model_get_info only takes the engine's own lock: safe under ours */
        if (r->v[i]->state == ENTRY_LOADED && info != NULL)
            engine_model_get_info(r->v[i]->model, info);
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

bool registry_find(registry *r, const char *name, const model_rec **rec, model_status *st) {
    pthread_mutex_lock(&r->mu);
    const entry *e = find_entry(r, name);
    if (rec != NULL)
        *rec = NULL;
    if (e != NULL)
        read_entry(e, rec, st);
    pthread_mutex_unlock(&r->mu);
    return e != NULL;
}

/* The unserved entry for name (exact, else without a trailing ":latest"), or NULL (caller holds
 * mu). */
static const disc_unserved *find_unserved(const registry *r, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i < r->n_unserved; i++) {
        const char *u = r->unserved[i].name;
        if (strcmp(u, name) == 0 || (n > 7 && strcmp(name + n - 7, ":latest") == 0 &&
                                     strlen(u) == n - 7 && strncmp(u, name, n - 7) == 0))
            return &r->unserved[i];
    }
    return NULL;
}

/* ERR_UNSUPPORTED with the reason when name is an unserved folder, else ERR_MODEL_NOT_FOUND
 * (caller holds mu). */
static shimmy_err missing_locked(const registry *r, const char *name, char *err, size_t errlen) {
    const disc_unserved *u = find_unserved(r, name);
    if (u != NULL)
        return err_set(err, errlen, ERR_UNSUPPORTED,
                       "model '%s' is an MLX model (%s): the MLX "
                       "engine is not available in this build; shimmy serves GGUF models "
                       "through llama.cpp",
                       u->name, u->path);
    return err_set(err, errlen, ERR_MODEL_NOT_FOUND, "model '%s' not found", name);
}

size_t registry_unserved_count(registry *r) {
    pthread_mutex_lock(&r->mu);
    size_t n = r->n_unserved;
    pthread_mutex_unlock(&r->mu);
    return n;
}

bool registry_get_unserved(registry *r, size_t i, disc_unserved *out) {
    pthread_mutex_lock(&r->mu);
    bool ok = i < r->n_unserved;
    if (ok)
        *out = r->unserved[i];
    pthread_mutex_unlock(&r->mu);
    return ok;
}

shimmy_err registry_lookup(registry *r, const char *name, char *err, size_t errlen) {
    pthread_mutex_lock(&r->mu);
    shimmy_err rc = find_entry(r, name) != NULL ? SHIMMY_OK : missing_locked(r, name, err, errlen);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* ---- loading and unloading (caller holds mu) ---- */

/* A load's progress: kept on the entry for /health, then handed to the caller's callback (the
 * terminal's bar). Runs in the loading thread, mu not held. */
typedef struct load_watch {
    registry *r;
    entry *e;
    void (*user)(void *ctx, float fraction);
    void *user_ctx;
} load_watch;

static void on_load_progress(void *ctx, float fraction) {
    load_watch *w = ctx;
    pthread_mutex_lock(&w->r->mu);
    w->e->load_progress = fraction;
    pthread_mutex_unlock(&w->r->mu);
    if (w->user != NULL)
        w->user(w->user_ctx, fraction);
}

static void wait_entry_unlocking(registry *r, entry *e) {
    e->waiters++;
    pthread_cond_wait(&e->cv, &r->mu);
    e->waiters--;
}

/* Unloads e's model with mu released; e is LOADED and unused. */
static void unload_unlocking(registry *r, entry *e, const char *why) {
    engine_model *m = e->model;
    e->state = ENTRY_UNLOADING;
    e->model = NULL;
    e->expires_ns = 0;
    e->waiters++; /* keeps e alive across the unlock */
    pthread_mutex_unlock(&r->mu);
    log_info("unloading model '%s' (%s)", e->rec->name, why);
    engine_model_free(m);
    pthread_mutex_lock(&r->mu);
    e->waiters--;
    e->state = ENTRY_IDLE;
    pthread_cond_broadcast(&e->cv);
}

static int loaded_locked(const registry *r) {
    int n = 0;
    for (size_t i = 0; i < r->n; i++)
        n += r->v[i]->state == ENTRY_LOADED || r->v[i]->state == ENTRY_LOADING ||
             r->v[i]->state == ENTRY_UNLOADING;
    return n;
}

/* The least recently used loaded model that nobody holds, or NULL. */
static entry *lru_idle(const registry *r, const entry *except) {
    entry *best = NULL;
    for (size_t i = 0; i < r->n; i++) {
        entry *e = r->v[i];
        if (e != except && e->state == ENTRY_LOADED && e->uses == 0 &&
            (best == NULL || e->last_used < best->last_used))
            best = e;
    }
    return best;
}

/* Bytes of the models loaded or loading, by file size (the weights; the KV cache comes on top
 * and is bounded by --ctx and --parallel). */
static uint64_t loaded_bytes(const registry *r) {
    uint64_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i]->state != ENTRY_IDLE)
            n += r->v[i]->rec->size_bytes;
    return n;
}

static bool over_limits(const registry *r, int limit) {
    return loaded_locked(r) > limit || (r->max_bytes > 0 && loaded_bytes(r) > r->max_bytes);
}

/* Unloads idle models, least recently used first, until at most limit models are loaded and
 * their files fit the memory budget (not counting except). */
static void make_room_unlocking(registry *r, int limit, const entry *except) {
    while (over_limits(r, limit)) {
        entry *victim = lru_idle(r, except);
        if (victim == NULL) {
            if (loaded_locked(r) > 1)
                log_warn("%d models (%llu MiB) are loaded and all are in use: --max-loaded %d / "
                         "--max-memory are exceeded until one is free",
                         loaded_locked(r), (unsigned long long)(loaded_bytes(r) >> 20),
                         r->max_loaded);
            return;
        }
        unload_unlocking(r, victim, "least recently used, over --max-loaded or --max-memory");
    }
}

/* A per-model context (--ctx MODEL=N, a --config section's ctx) above the model's trained
 * context or --max-ctx is cut to it, with a log line, rather than refused: one glob section may
 * cover models trained for different lengths, and only the file says which (caller holds mu). */
static void clamp_model_ctx(const registry *r, const entry *e, engine_options *o) {
    int cap = (int)e->rec->meta.n_ctx_train;
    const char *why = "its trained context";
    if (o->n_ctx == r->defaults.n_ctx)
        return; /* not a per-model setting */
    if (r->max_ctx > 0 && (cap <= 0 || r->max_ctx < cap)) {
        cap = r->max_ctx;
        why = "--max-ctx";
    }
    if (cap > 0 && o->n_ctx > cap) {
        log_warn("model '%s': its ctx %d is above %s (%d): loading it with %d", e->rec->name,
                 o->n_ctx, why, cap, cap);
        o->n_ctx = cap;
    }
}

/* Loads e's model with mu released; the caller set e->state = ENTRY_LOADING. Returns with mu
 * held, e's state final for this attempt, and the waiters woken. */
static shimmy_err load_entry_unlocking(registry *r, entry *e, char *err, size_t errlen) {
    const model_rec *d = e->rec; /* stays: a rescan replaces the record of IDLE entries only */
    engine_options o = r->defaults;
    o.path = d->path;
    o.name = d->name;
    engine_options_for_model(&o, d->name);
    clamp_model_ctx(r, e, &o);
    if (e->n_ctx > 0)
        o.n_ctx = e->n_ctx;
    if (d->adapter[0] != '\0') {
        o.lora_path = d->adapter;
        o.lora_scale = d->adapter_scale;
    }
    if (d->mmproj[0] != '\0')
        o.mmproj = d->mmproj;
    load_watch watch = {r, e, o.progress, o.progress_ctx};
    o.progress = on_load_progress;
    o.progress_ctx = &watch;
    e->load_progress = 0;
    e->waiters++;
    pthread_mutex_unlock(&r->mu);
    engine_model *m = NULL;
    char msg[sizeof e->last_err] = "";
    log_debug("loading model '%s' from %s", e->rec->name, e->rec->path);
    int64_t t0 = clock_mono_ns();
    shimmy_err rc = engine_model_load(&o, &m, msg, sizeof msg);
    int64_t took = clock_mono_ns() - t0;
    engine_model_info info = {.n_ctx_slot = 0};
    if (rc == SHIMMY_OK)
        engine_model_get_info(m, &info);
    if (rc != SHIMMY_OK && msg[0] == '\0')
        err_set(msg, sizeof msg, rc, "%s: %s", e->rec->path, err_get(rc)->message);
    pthread_mutex_lock(&r->mu);
    e->waiters--;
    e->last_rc = rc;
    snprintf(e->last_err, sizeof e->last_err, "%s", msg);
    e->loads_done++;
    e->load_crashes = rc == ERR_ENGINE_CRASHED ? e->load_crashes + 1 : 0;
    if (e->load_crashes >= LIM_LOAD_CRASHES)
        snprintf(e->failed, sizeof e->failed,
                 "model '%.128s' is failed: its engine process died "
                 "%d times in a row while loading (%.300s); rescan (POST /v1/models/rescan) or "
                 "replace the file to try again",
                 e->rec->name, e->load_crashes, msg);
    if (rc == SHIMMY_OK) {
        e->model = m;
        e->state = ENTRY_LOADED;
        e->loads_ok++;
        e->load_ns = took;
        e->ctx_slot = info.n_ctx_slot;
    } else {
        e->state = ENTRY_IDLE;
        err_set(err, errlen, rc, "%s", msg);
    }
    pthread_cond_broadcast(&e->cv);
    return rc;
}

/* A loaded e and a request's num_ctx n (0 = any): true when e may serve it as loaded. */
static bool ctx_fits(const entry *e, int n) {
    return n == 0 || n == e->n_ctx || n == e->ctx_slot;
}

/* e is LOADED with another context than n: unloads it when idle (the next turn of the loop loads
 * it with n), else marks that a reload waits and waits for a release. *mine: this thread set
 * ctx_want. */
static void reload_for_ctx_unlocking(registry *r, entry *e, int n, bool *mine) {
    if (e->uses > 0) {
        e->ctx_want = n;
        *mine = true;
        wait_entry_unlocking(r, e);
        return;
    }
    e->ctx_want = 0;
    *mine = false;
    log_info("model '%s': a request asks for a context of %d tokens (loaded: %d)", e->rec->name, n,
             e->ctx_slot);
    unload_unlocking(r, e, "reloading with the context a request asked for (num_ctx)");
    e->n_ctx = n;
}

static shimmy_err acquire_ctx(registry *r, const char *name, int n_ctx, engine_model **out,
                              char *err, size_t errlen) {
    *out = NULL;
    pthread_mutex_lock(&r->mu);
    entry *e = find_entry(r, name);
    shimmy_err rc = SHIMMY_OK;
    bool mine = false;
    if (e == NULL) {
        rc = missing_locked(r, name, err, errlen);
        goto out;
    }
    if (n_ctx > 0 && r->max_ctx > 0 && n_ctx > r->max_ctx) {
        rc = err_set(err, errlen, ERR_BAD_PARAM,
                     "num_ctx %d is above the largest context this "
                     "server allows (--max-ctx %d)",
                     n_ctx, r->max_ctx);
        goto out;
    }
    for (;;) {
        if (e->state == ENTRY_LOADING) {
            uint64_t seen = e->loads_done;
            while (e->state == ENTRY_LOADING)
                wait_entry_unlocking(r, e);
            /* The load we waited for failed: share its error rather than retrying at once. */
            if (e->state == ENTRY_IDLE && e->loads_done != seen && e->last_rc != SHIMMY_OK) {
                rc = err_set(err, errlen, e->last_rc, "%s", e->last_err);
                goto out;
            }
            continue;
        }
        if (e->state == ENTRY_UNLOADING) {
            wait_entry_unlocking(r, e);
            continue;
        }
        if (e->state == ENTRY_IDLE && e->failed[0] != '\0') {
            rc = err_set(err, errlen, ERR_MODEL_LOAD, "%s", e->failed);
            goto out;
        }
        if (e->state == ENTRY_IDLE) {
            e->n_ctx = n_ctx;
            e->state = ENTRY_LOADING;
            make_room_unlocking(r, r->max_loaded, e);
            rc = load_entry_unlocking(r, e, err, errlen);
            if (rc != SHIMMY_OK)
                goto out;
            continue;
        }
        if (e->ctx_want != 0 && !mine) { /* a reload waits: requests after it wait too */
            wait_entry_unlocking(r, e);
            continue;
        }
        if (!ctx_fits(e, n_ctx)) {
            reload_for_ctx_unlocking(r, e, n_ctx, &mine);
            continue;
        }
        break; /* LOADED */
    }
    if (mine)
        e->ctx_want = 0;
    e->uses++;
    e->last_used = ++r->tick;
    e->expires_ns = 0;
    *out = e->model;
out:
    if (e != NULL && mine && e->ctx_want != 0 && rc != SHIMMY_OK)
        e->ctx_want = 0;
    if (e != NULL)
        pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void registry_set_pull_missing(registry *r, bool on) {
    r->pull_missing = on;
}

/* --pull-missing: pulls name (no lock held: a download takes long), rescans, and acquires the
 * model the pull put in place under its served name. */
static shimmy_err pull_then_acquire(registry *r, const char *name, int n_ctx, engine_model **out,
                                    char *err, size_t errlen) {
    pull_options o = {.insecure = false};
    pull_result pr;
    log_info("--pull-missing: pulling '%s'", name);
    char why[2048];
    shimmy_err e = pull_model(name, &o, &pr, why, sizeof why);
    if (e == ERR_UNAUTHORIZED)
        e = ERR_FORBIDDEN; /* the hub's token, not this server's key: no 401 to the client */
    if (e != SHIMMY_OK)
        return err_set(err, errlen, e,
                       REGISTRY_PULL_FAILED "model '%s' is not here and pulling "
                                            "it failed: %s",
                       name, why);
    log_info("--pull-missing: pulled '%s' as '%s'", name, pr.name);
    if ((e = registry_rescan(r, NULL, err, errlen)) != SHIMMY_OK)
        return e;
    return acquire_ctx(r, pr.name, n_ctx, out, err, errlen);
}

shimmy_err registry_acquire_ctx(registry *r, const char *name, int n_ctx, engine_model **out,
                                char *err, size_t errlen) {
    shimmy_err e = acquire_ctx(r, name, n_ctx, out, err, errlen);
    if (e == ERR_MODEL_NOT_FOUND && r->pull_missing && pull_ref_kind(name) != NULL)
        e = pull_then_acquire(r, name, n_ctx, out, err, errlen);
    return e;
}

shimmy_err registry_acquire(registry *r, const char *name, engine_model **out, char *err,
                            size_t errlen) {
    return registry_acquire_ctx(r, name, 0, out, err, errlen);
}

static entry *entry_of_model(const registry *r, const engine_model *m) {
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i]->model == m && r->v[i]->state == ENTRY_LOADED)
            return r->v[i];
    return NULL;
}

/* The keep-alive of e when no release gave one: its name's (the last matching
 * registry_set_model_keep_alive), else the registry's (caller holds mu). */
static int64_t default_keep(const registry *r, const entry *e) {
    for (size_t i = r->n_keeps; i-- > 0;)
        if (engine_name_matches(r->keeps[i].pattern, e->rec->name))
            return r->keeps[i].keep_ns;
    return r->default_keep_ns;
}

/* Applies e's keep-alive now that nobody holds it (caller holds mu). */
static void settle_unlocking(registry *r, entry *e) {
    int64_t keep = e->keep_ns != INT64_MIN ? e->keep_ns : default_keep(r, e);
    if (e->uses > 0 || e->state != ENTRY_LOADED)
        return;
    if (keep == 0) {
        unload_unlocking(r, e, "keep_alive 0");
        return;
    }
    int64_t now = clock_mono_ns();
    e->expires_ns = keep <= 0 ? 0 : keep > INT64_MAX - now ? INT64_MAX : now + keep;
    make_room_unlocking(r, r->max_loaded, NULL);
}

void registry_release_keep(registry *r, engine_model *m, int64_t keep_ns) {
    if (m == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    entry *e = entry_of_model(r, m);
    if (e != NULL && e->uses > 0) {
        e->uses--;
        if (e->uses == 0)
            pthread_cond_broadcast(&e->cv); /* a reload for num_ctx may wait for this */
        e->last_used = ++r->tick;
        if (keep_ns != REGISTRY_KEEP_DEFAULT)
            e->keep_ns = keep_ns;
        settle_unlocking(r, e);
    }
    pthread_mutex_unlock(&r->mu);
}

void registry_release(registry *r, engine_model *m) {
    registry_release_keep(r, m, REGISTRY_KEEP_DEFAULT);
}

shimmy_err registry_unload(registry *r, const char *name) {
    pthread_mutex_lock(&r->mu);
    entry *e = find_entry(r, name);
    if (e == NULL) {
        pthread_mutex_unlock(&r->mu);
        return ERR_MODEL_NOT_FOUND;
    }
    e->keep_ns = 0;
    settle_unlocking(r, e);
    pthread_mutex_unlock(&r->mu);
    return SHIMMY_OK;
}

/* llama.cpp's fallback (CHATML_TEMPLATE_SRC in common/chat.cpp). */
static const char chatml_src[] =
    "{%- for message in messages -%}\n"
    "  {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "  {{- '<|im_start|>assistant\n' -}}\n"
    "{%- endif -%}";

/* name's record (a reference, NULL when unknown) and its engine options. */
static const model_rec *rec_and_options(registry *r, const char *name, engine_options *o) {
    const model_rec *d = NULL;
    pthread_mutex_lock(&r->mu);
    const entry *e = find_entry(r, name);
    *o = r->defaults;
    if (e != NULL) {
        d = model_rec_ref(e->rec);
        engine_options_for_model(o, d->name);
    }
    pthread_mutex_unlock(&r->mu);
    return d;
}

bool registry_has_template(registry *r, const char *name) {
    engine_options o;
    const model_rec *d = rec_and_options(r, name, &o);
    bool has = d != NULL && (o.template_text != NULL || o.template_override != NULL ||
                             d->meta.has_chat_template);
    model_rec_unref(d);
    return has;
}

shimmy_err registry_template_source(registry *r, const char *name, char **source,
                                    registry_tmpl_from *from) {
    engine_options o;
    const model_rec *d = rec_and_options(r, name, &o);
    *source = NULL;
    if (d == NULL)
        return ERR_MODEL_NOT_FOUND;
    if (o.template_text != NULL) {
        *from = REGISTRY_TMPL_FILE;
        *source = strdup(o.template_text);
    } else if (o.template_override != NULL) {
        *from = REGISTRY_TMPL_BUILTIN;
        *source = strdup(o.template_override);
    } else if (gguf_meta_read_str(d->path, "tokenizer.chat_template", source)) {
        *from = REGISTRY_TMPL_GGUF;
    } else {
        *from = REGISTRY_TMPL_CHATML;
        *source = strdup(chatml_src);
    }
    model_rec_unref(d);
    return *source != NULL ? SHIMMY_OK : ERR_NOMEM;
}

shimmy_err registry_preload(registry *r, const char *name, char *err, size_t errlen) {
    engine_model *m;
    shimmy_err rc = registry_acquire(r, name, &m, err, errlen);
    if (rc == SHIMMY_OK)
        registry_release(r, m);
    return rc;
}

/* ---- keep-alive ---- */

/* Unloads one expired idle model; returns whether it did (caller holds mu). */
static bool reap_one_unlocking(registry *r) {
    int64_t now = clock_mono_ns();
    for (size_t i = 0; i < r->n; i++) {
        entry *e = r->v[i];
        if (e->state == ENTRY_LOADED && e->uses == 0 && e->expires_ns != 0 &&
            e->expires_ns <= now) {
            unload_unlocking(r, e, "keep_alive expired");
            return true;
        }
    }
    return false;
}

static void *reaper_main(void *arg) {
    registry *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_nsec += 250000000L; /* four checks a second: keep_alive is in seconds */
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&r->reaper_cv, &r->mu, &dl);
        while (!r->stopping && reap_one_unlocking(r))
            ;
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}
