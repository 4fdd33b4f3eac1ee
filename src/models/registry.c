/* models/registry: the served models by name (sorted array of entries under one mutex) and the
 * engine models loaded for them. A model is loaded on first acquire by exactly one caller; the
 * others wait on the entry's condition variable and share the result (model or error). Loaded
 * models stay loaded until registry_free (no eviction yet). */
#include "models/registry.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/limits.h"
#include "core/log.h"
#include "models/names.h"

/* Most models one registry holds: far above any real store, low enough that a folder of junk
 * cannot grow it without bound. (Belongs in core/limits.h as LIM_REGISTRY_MODELS.) */

typedef enum { ENTRY_IDLE, ENTRY_LOADING, ENTRY_LOADED } entry_state;

typedef struct entry {
    model_desc desc;
    char realpath[PATH_MAX];  /* canonical file path, for deduplication */
    entry_state state;
    engine_model *model;      /* owned; set when state == ENTRY_LOADED */
    int uses;                 /* acquires not yet released */
    uint64_t loads_done;      /* finished load attempts, so waiters can tell theirs ended */
    shimmy_err last_rc;       /* result of the last finished load attempt */
    char last_err[512];
    pthread_cond_t cv;        /* signalled when a load attempt finishes */
} entry;

struct registry {
    pthread_mutex_t mu;
    entry **v;                /* sorted by desc.name; entries never move or go away */
    size_t n, cap;
    engine_options defaults;  /* path/name unused */
    char *template_override;  /* owned copy of defaults.template_override */
};

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
    if (r->defaults.template_override != NULL) {
        r->template_override = strdup(r->defaults.template_override);
        if (r->template_override == NULL) {
            free(r);
            return NULL;
        }
        r->defaults.template_override = r->template_override;
    }
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

void registry_free(registry *r) {
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++) {
        if (r->v[i]->model != NULL)
            engine_model_free(r->v[i]->model);
        pthread_cond_destroy(&r->v[i]->cv);
        free(r->v[i]);
    }
    free(r->v);
    free(r->template_override);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* ---- lookup (caller holds mu) ---- */

/* Index of name, or of where it would go (with *found = false). */
static size_t find_slot(const registry *r, const char *name, bool *found) {
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->v[mid]->desc.name, name);
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

static entry *find_entry(const registry *r, const char *name) {
    bool found;
    size_t i = find_slot(r, name, &found);
    return found ? r->v[i] : NULL;
}

static const entry *find_realpath(const registry *r, const char *rp) {
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i]->realpath, rp) == 0)
            return r->v[i];
    return NULL;
}

static void copy_desc(const entry *e, model_desc *out) {
    *out = e->desc;
    out->loaded = e->state == ENTRY_LOADED;
}

/* ---- adding ---- */

/* Builds an entry for path (reads its metadata; no lock needed). Returns owned *out. */
static shimmy_err entry_make(const char *path, const char *name, const char *source, entry **out,
                             char *err, size_t errlen) {
    entry *e = calloc(1, sizeof *e);
    if (e == NULL)
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    shimmy_err rc = gguf_meta_read(path, &e->desc.meta, err, errlen);
    if (rc != SHIMMY_OK)
        goto out;
    char why[128];
    if (!gguf_meta_is_model(&e->desc.meta, why, sizeof why)) {
        rc = err_set(err, errlen, ERR_MODEL_LOAD, "%s: %s", path, why);
        goto out;
    }
    if (realpath(path, e->realpath) == NULL) {
        rc = err_set(err, errlen, ERR_IO, "%s: %s", path, strerror(errno));
        goto out;
    }
    struct stat st;
    if (stat(e->realpath, &st) != 0) {
        rc = err_set(err, errlen, ERR_IO, "%s: %s", path, strerror(errno));
        goto out;
    }
    e->desc.size_bytes = (uint64_t)st.st_size;
    if (name != NULL) {
        if (name[0] == '\0' || strlen(name) >= sizeof e->desc.name) {
            rc = err_set(err, errlen, ERR_BAD_PARAM, "%s: invalid model name", path);
            goto out;
        }
        snprintf(e->desc.name, sizeof e->desc.name, "%s", name);
    } else if (!names_from_path(path, e->desc.name, sizeof e->desc.name)) {
        rc = err_set(err, errlen, ERR_BAD_PARAM, "%s: cannot derive a model name", path);
        goto out;
    }
    if (snprintf(e->desc.path, sizeof e->desc.path, "%s", path) >= (int)sizeof e->desc.path) {
        rc = err_set(err, errlen, ERR_BAD_PARAM, "%s: path too long", path);
        goto out;
    }
    snprintf(e->desc.source, sizeof e->desc.source, "%s", source ? source : "");
    e->last_rc = SHIMMY_OK;
    pthread_cond_init(&e->cv, NULL);
out:
    if (rc != SHIMMY_OK) {
        free(e);
        e = NULL;
    }
    *out = e;
    return rc;
}

/* Inserts e in name order. ERR_BAD_PARAM for a name or file already present. Takes e on
 * success. *dup_file tells a duplicate file (same realpath) from a duplicate name. */
static shimmy_err insert_entry(registry *r, entry *e, bool *dup_file, char *err, size_t errlen) {
    shimmy_err rc = SHIMMY_OK;
    *dup_file = false;
    pthread_mutex_lock(&r->mu);
    const entry *same = find_realpath(r, e->realpath);
    bool found;
    size_t at = find_slot(r, e->desc.name, &found);
    if (same != NULL) {
        *dup_file = true;
        rc = err_set(err, errlen, ERR_BAD_PARAM, "%s: already added as '%s'", e->desc.path,
                     same->desc.name);
    } else if (found) {
        rc = err_set(err, errlen, ERR_BAD_PARAM, "%s: a model named '%s' already exists (%s)",
                     e->desc.path, e->desc.name, r->v[at]->desc.path);
    } else if (r->n >= LIM_REGISTRY_MODELS) {
        rc = err_set(err, errlen, ERR_BAD_PARAM, "%s: too many models (%d)", e->desc.path,
                     LIM_REGISTRY_MODELS);
    } else if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        entry **v = realloc(r->v, cap * sizeof *v);
        if (v == NULL)
            rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        else {
            r->v = v;
            r->cap = cap;
        }
    }
    if (rc == SHIMMY_OK) {
        memmove(&r->v[at + 1], &r->v[at], (r->n - at) * sizeof *r->v);
        r->v[at] = e;
        r->n++;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

static void entry_drop(entry *e) {
    pthread_cond_destroy(&e->cv);
    free(e);
}

/* registry_add, telling the caller whether a failure was only "this file is already here". */
static shimmy_err add_file(registry *r, const char *path, const char *name, const char *source,
                           bool *dup_file, char *err, size_t errlen) {
    entry *e;
    *dup_file = false;
    shimmy_err rc = entry_make(path, name, source, &e, err, errlen);
    if (rc != SHIMMY_OK)
        return rc;
    rc = insert_entry(r, e, dup_file, err, errlen);
    if (rc != SHIMMY_OK)
        entry_drop(e);
    return rc;
}

shimmy_err registry_add(registry *r, const char *path, const char *name, const char *source,
                        char *err, size_t errlen) {
    bool dup_file;
    return add_file(r, path, name, source, &dup_file, err, errlen);
}

static int skip_hidden(const struct dirent *d) { return d->d_name[0] != '.'; }

static int scan_dir(registry *r, const char *dir, const char *source, int depth) {
    struct dirent **list;
    int n = scandir(dir, &list, skip_hidden, alphasort);
    if (n < 0) {
        if (errno != ENOENT || depth > 0)
            log_warn("cannot read model folder %s: %s", dir, strerror(errno));
        return 0;
    }
    int added = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        if (snprintf(path, sizeof path, "%s/%s", dir, list[i]->d_name) >= (int)sizeof path ||
            stat(path, &st) != 0) {
            free(list[i]);
            continue;
        }
        if (S_ISDIR(st.st_mode) && depth == 0) {
            added += scan_dir(r, path, source, depth + 1);
        } else if (S_ISREG(st.st_mode) && names_is_gguf(path)) {
            char err[512];
            bool dup_file;
            if (add_file(r, path, NULL, source, &dup_file, err, sizeof err) == SHIMMY_OK)
                added++;
            else if (dup_file)
                log_debug("skipping %s", err);
            else
                log_warn("skipping %s", err);
        }
        free(list[i]);
    }
    free(list);
    return added;
}

int registry_add_dir(registry *r, const char *dir, const char *source) {
    return scan_dir(r, dir, source, 0);
}

/* Adds every folder in a list separated by ';' or ':'. */
static int add_dir_list(registry *r, const char *list, const char *source) {
    int added = 0;
    const char *p = list;
    while (p != NULL && *p != '\0') {
        size_t len = strcspn(p, ";:");
        if (len > 0 && len < 4096) {
            char dir[4096];
            memcpy(dir, p, len);
            dir[len] = '\0';
            added += registry_add_dir(r, dir, source);
        }
        p += len;
        if (*p != '\0')
            p++;
    }
    return added;
}

shimmy_err registry_add_sources(registry *r, char *const *model_paths, int n_paths,
                                const char *model_dirs, char *err, size_t errlen) {
    for (int i = 0; i < n_paths; i++) {
        bool dup_file;
        shimmy_err rc = add_file(r, model_paths[i], NULL, "cli", &dup_file, err, errlen);
        if (rc != SHIMMY_OK && !dup_file)
            return rc;
    }
    registry_add_dir(r, "./models", "dir");
    add_dir_list(r, model_dirs, "dir");
    add_dir_list(r, getenv("SHIMMY_MODEL_PATHS"), "dir");
    return SHIMMY_OK;
}

/* ---- queries ---- */

size_t registry_count(registry *r) {
    pthread_mutex_lock(&r->mu);
    size_t n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

bool registry_get(registry *r, size_t i, model_desc *out) {
    pthread_mutex_lock(&r->mu);
    bool ok = i < r->n;
    if (ok)
        copy_desc(r->v[i], out);
    pthread_mutex_unlock(&r->mu);
    return ok;
}

bool registry_info(registry *r, size_t i, model_desc *desc, engine_model_info *info) {
    pthread_mutex_lock(&r->mu);
    bool ok = i < r->n;
    if (ok) {
        copy_desc(r->v[i], desc);
        /* engine_model_get_info only takes the engine's own lock: safe under ours */
        if (r->v[i]->state == ENTRY_LOADED && info != NULL)
            engine_model_get_info(r->v[i]->model, info);
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

bool registry_find(registry *r, const char *name, model_desc *out) {
    pthread_mutex_lock(&r->mu);
    const entry *e = find_entry(r, name);
    if (e != NULL && out != NULL)
        copy_desc(e, out);
    pthread_mutex_unlock(&r->mu);
    return e != NULL;
}

/* ---- loading ---- */

/* Loads e's model with mu released; the caller set e->state = ENTRY_LOADING. Returns with mu
 * held, e's state final for this attempt, and the waiters woken. */
static shimmy_err load_entry(registry *r, entry *e, char *err, size_t errlen) {
    engine_options o = r->defaults;
    o.path = e->desc.path;
    o.name = e->desc.name;
    pthread_mutex_unlock(&r->mu);
    engine_model *m = NULL;
    char msg[sizeof e->last_err] = "";
    log_debug("loading model '%s' from %s", e->desc.name, e->desc.path);
    shimmy_err rc = engine_model_load(&o, &m, msg, sizeof msg);
    if (rc != SHIMMY_OK && msg[0] == '\0')
        err_set(msg, sizeof msg, rc, "%s: %s", e->desc.path, err_get(rc)->message);
    pthread_mutex_lock(&r->mu);
    e->last_rc = rc;
    snprintf(e->last_err, sizeof e->last_err, "%s", msg);
    e->loads_done++;
    if (rc == SHIMMY_OK) {
        e->model = m;
        e->state = ENTRY_LOADED;
    } else {
        e->state = ENTRY_IDLE;
        err_set(err, errlen, rc, "%s", msg);
    }
    pthread_cond_broadcast(&e->cv);
    return rc;
}

shimmy_err registry_acquire(registry *r, const char *name, engine_model **out, char *err,
                            size_t errlen) {
    *out = NULL;
    pthread_mutex_lock(&r->mu);
    entry *e = find_entry(r, name);
    shimmy_err rc = SHIMMY_OK;
    if (e == NULL) {
        rc = err_set(err, errlen, ERR_MODEL_NOT_FOUND, "model '%s' not found", name);
        goto out;
    }
    if (e->state == ENTRY_LOADING) {
        uint64_t seen = e->loads_done;
        while (e->state == ENTRY_LOADING)
            pthread_cond_wait(&e->cv, &r->mu);
        /* The load we waited for failed: share its error rather than retrying at once. */
        if (e->state == ENTRY_IDLE && e->loads_done != seen && e->last_rc != SHIMMY_OK) {
            rc = err_set(err, errlen, e->last_rc, "%s", e->last_err);
            goto out;
        }
    }
    if (e->state == ENTRY_IDLE) {
        e->state = ENTRY_LOADING;
        rc = load_entry(r, e, err, errlen);
        if (rc != SHIMMY_OK)
            goto out;
    }
    e->uses++;
    *out = e->model;
out:
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void registry_release(registry *r, engine_model *m) {
    if (m == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++) {
        if (r->v[i]->model == m && r->v[i]->uses > 0) {
            r->v[i]->uses--;
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
}

shimmy_err registry_preload(registry *r, const char *name, char *err, size_t errlen) {
    engine_model *m;
    shimmy_err rc = registry_acquire(r, name, &m, err, errlen);
    if (rc == SHIMMY_OK)
        registry_release(r, m);
    return rc;
}
