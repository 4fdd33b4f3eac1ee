/* models/discover: see discover.h. The result helpers first, then describing one file, then the
 * loose folders and MLX folders, the three stores, adapters, projectors, and disc_run that
 * strings the sources together. */
#include "models/discover.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/limits.h"
#include "core/log.h"
#include "models/names.h"

struct disc_adapter {
    char path[4096];
    char dir[4096];      /* folder it sits in */
    char stem[256];      /* lowercased file stem */
    char base_name[128]; /* general.base_model.0.name */
    char arch[64];
    bool used;
};

/* A projector met by a scan, paired with models at the end of disc_run. */
struct disc_projector {
    char path[4096];
    char dir[4096];  /* folder it sits in */
    char root[4096]; /* the folder whose models may use it: an HF snapshot or LM Studio
                      * repo (a projector at its top serves models in its subfolders), else
                      * dir */
    char stem[256];  /* lowercased file stem */
    gguf_meta meta;
};

#define OLLAMA_MODEL_MT "application/vnd.ollama.image.model"
#define OLLAMA_ADAPTER_MT "application/vnd.ollama.image.adapter"
#define OLLAMA_PROJECTOR_MT "application/vnd.ollama.image.projector"

/* ---- records ---- */

/* The "" every unset string of a record points to (never freed, never written). */
static char rec_none[1];

model_rec *model_rec_new(void) {
    model_rec *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->name = d->path = d->source = d->adapter = d->manifest = d->mmproj = d->realpath = rec_none;
    d->adapter_scale = 1.0f;
    atomic_init(&d->refs, 1);
    return d;
}

static void rec_str_free(const char *s) {
    if (s != rec_none)
        free((char *)s);
}

/* The record is const to its readers; its count is not (a published record is never written
 * otherwise). */
const model_rec *model_rec_ref(const model_rec *d) {
    atomic_fetch_add_explicit(&((model_rec *)d)->refs, 1, memory_order_relaxed);
    return d;
}

void model_rec_unref(const model_rec *d) {
    model_rec *m = (model_rec *)d;
    if (m == NULL || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    rec_str_free(m->name);
    rec_str_free(m->path);
    rec_str_free(m->source);
    rec_str_free(m->adapter);
    rec_str_free(m->manifest);
    rec_str_free(m->mmproj);
    rec_str_free(m->realpath);
    free(m);
}

/* Sets a string of a record nobody else holds to a copy of s. Returns false when out of memory
 * (the string is unchanged). */
static bool rec_set(const char **field, const char *s) {
    char *c = s[0] == '\0' ? rec_none : strdup(s);
    if (c == NULL)
        return false;
    rec_str_free(*field);
    *field = c;
    return true;
}

/* ---- the result ---- */

void disc_result_init(disc_result *r) {
    memset(r, 0, sizeof *r);
}

void disc_result_free(disc_result *r) {
    for (size_t i = 0; i < r->n_notes; i++) {
        free(r->notes[i].path);
        free(r->notes[i].why);
    }
    free(r->notes);
    for (size_t i = 0; i < r->n; i++)
        model_rec_unref(r->models[i]);
    free(r->models);
    free(r->unserved);
    free(r->adapters);
    free(r->projectors);
    memset(r, 0, sizeof *r);
}

static void note(disc_result *r, const char *path, const char *why) {
    if (r->n_notes == r->cap_notes) {
        size_t cap = r->cap_notes ? r->cap_notes * 2 : 16;
        disc_note *v = realloc(r->notes, cap * sizeof *v);
        if (v == NULL)
            return;
        r->notes = v;
        r->cap_notes = cap;
    }
    disc_note *n = &r->notes[r->n_notes];
    n->path = strdup(path);
    n->why = strdup(why);
    if (n->path == NULL || n->why == NULL) {
        free(n->path);
        free(n->why);
        return;
    }
    r->n_notes++;
}

/* The model already found for this file with this adapter ("" = none) and manifest: every
 * Ollama tag is a name users type (llama3.2:latest and llama3.2:3b often share one blob), and a
 * model made FROM another with an ADAPTER shares its base's blob, so a manifest is a model of its
 * own; any other file found twice is one model. */
static const model_rec *find_real(const disc_result *r, const char *real, const char *adapter,
                                  const char *manifest) {
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->models[i]->realpath, real) == 0 &&
            strcmp(r->models[i]->adapter, adapter) == 0 &&
            strcmp(r->models[i]->manifest, manifest) == 0)
            return r->models[i];
    return NULL;
}

static model_rec *find_name(disc_result *r, const char *name) {
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->models[i]->name, name) == 0)
            return r->models[i];
    return NULL;
}

/* Whether a model or an unserved folder already has this name. */
static bool name_taken(disc_result *r, const char *name) {
    if (find_name(r, name) != NULL)
        return true;
    for (size_t i = 0; i < r->n_unserved; i++)
        if (strcmp(r->unserved[i].name, name) == 0)
            return true;
    return false;
}

/* Gives name (a LIM_MODEL_NAME-byte buffer) a value nobody has yet: name, else name@source, else
 * name@source-2, -3... path is what the note names, verb what becomes of it ("served"). */
static void unique_name(disc_result *r, char name[LIM_MODEL_NAME], const char *path,
                        const char *source, const char *verb) {
    if (!name_taken(r, name))
        return;
    char base[LIM_MODEL_NAME], cand[LIM_MODEL_NAME];
    snprintf(base, sizeof base, "%s", name);
    snprintf(cand, sizeof cand, "%.200s@%.31s", base, source);
    for (int k = 2; name_taken(r, cand) && k < 10000; k++)
        snprintf(cand, sizeof cand, "%.200s@%.31s-%d", base, source, k);
    memcpy(name, cand, sizeof cand);
    char why[600];
    snprintf(why, sizeof why, "a model named '%s' already exists: %s as '%s'", base, verb, name);
    log_warn("%s: %s", path, why);
    note(r, path, why);
}

/* Appends d (renamed when its name is taken). Takes d. Returns false when full or out of
 * memory (d is freed). */
static bool push_model(disc_result *r, model_rec *d) {
    char name[LIM_MODEL_NAME];
    if (r->n >= LIM_REGISTRY_MODELS) {
        note(r, d->path, "too many models: skipped (see LIM_REGISTRY_MODELS)");
        model_rec_unref(d);
        return false;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        model_rec **v = realloc(r->models, cap * sizeof *v);
        if (v == NULL) {
            model_rec_unref(d);
            return false;
        }
        r->models = v;
        r->cap = cap;
    }
    snprintf(name, sizeof name, "%s", d->name);
    unique_name(r, name, d->path, d->source, "served");
    if (!rec_set(&d->name, name)) {
        model_rec_unref(d);
        return false;
    }
    r->models[r->n++] = d;
    return true;
}

/* Appends u (renamed when its name is taken). Returns false when full or out of memory. */
static bool push_unserved(disc_result *r, disc_unserved *u) {
    if (r->n_unserved >= LIM_REGISTRY_MODELS) {
        note(r, u->path, "too many models: skipped (see LIM_REGISTRY_MODELS)");
        return false;
    }
    if (r->n_unserved == r->cap_unserved) {
        size_t cap = r->cap_unserved ? r->cap_unserved * 2 : 8;
        disc_unserved *v = realloc(r->unserved, cap * sizeof *v);
        if (v == NULL)
            return false;
        r->unserved = v;
        r->cap_unserved = cap;
    }
    unique_name(r, u->name, u->path, u->source, "listed");
    r->unserved[r->n_unserved++] = *u;
    return true;
}

/* The folder of path into dir ("." when it has none). */
static void dir_of(const char *path, char *dir, size_t dirlen) {
    snprintf(dir, dirlen, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL)
        *slash = '\0';
    else
        snprintf(dir, dirlen, ".");
}

static void push_adapter(disc_result *r, const char *path, const gguf_meta *m) {
    if (r->n_adapters == r->cap_adapters) {
        size_t cap = r->cap_adapters ? r->cap_adapters * 2 : 8;
        disc_adapter *v = realloc(r->adapters, cap * sizeof *v);
        if (v == NULL)
            return;
        r->adapters = v;
        r->cap_adapters = cap;
    }
    disc_adapter *a = &r->adapters[r->n_adapters++];
    memset(a, 0, sizeof *a);
    snprintf(a->path, sizeof a->path, "%s", path);
    dir_of(path, a->dir, sizeof a->dir);
    names_from_path(path, a->stem, sizeof a->stem);
    snprintf(a->base_name, sizeof a->base_name, "%s", m->base_name);
    snprintf(a->arch, sizeof a->arch, "%s", m->arch);
}

/* Remembers a projector found at path (once per path); root as in disc_projector, NULL = its
 * own folder. */
static void push_projector(disc_result *r, const char *path, const char *root, const gguf_meta *m) {
    for (size_t i = 0; i < r->n_projectors; i++)
        if (strcmp(r->projectors[i].path, path) == 0)
            return;
    if (r->n_projectors == r->cap_projectors) {
        size_t cap = r->cap_projectors ? r->cap_projectors * 2 : 8;
        disc_projector *v = realloc(r->projectors, cap * sizeof *v);
        if (v == NULL)
            return;
        r->projectors = v;
        r->cap_projectors = cap;
    }
    disc_projector *p = &r->projectors[r->n_projectors++];
    memset(p, 0, sizeof *p);
    snprintf(p->path, sizeof p->path, "%s", path);
    dir_of(path, p->dir, sizeof p->dir);
    snprintf(p->root, sizeof p->root, "%s", root != NULL ? root : p->dir);
    names_from_path(path, p->stem, sizeof p->stem);
    p->meta = *m;
}

/* ---- one file ---- */

/* FNV-1a 64 over the canonical path, size and mtime: an id that changes with the file. */
static void file_digest(const model_rec *d, char *out, size_t outlen) {
    uint64_t h = 1469598103934665603ULL;
    const unsigned char *p = (const unsigned char *)d->realpath;
    for (; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    uint64_t extra[2] = {d->size_bytes, (uint64_t)d->mtime};
    const unsigned char *e = (const unsigned char *)extra;
    for (size_t i = 0; i < sizeof extra; i++)
        h = (h ^ e[i]) * 1099511628211ULL;
    snprintf(out, outlen, "%016llx", (unsigned long long)h);
}

/* Adds the other parts of a split model: their sizes and parameter counts. */
static shimmy_err add_split_parts(const char *path, model_rec *d, char *err, size_t errlen) {
    int part, count;
    if (!names_split_part(path, &part, &count) || count <= 1)
        return SHIMMY_OK;
    if (part != 1)
        return err_set(err, errlen, ERR_MODEL_LOAD,
                       "%s: part %d of a split model (the first "
                       "part is the model)",
                       path, part);
    for (int k = 2; k <= count; k++) {
        char p[4096];
        gguf_meta m;
        struct stat st;
        if (!names_split_sibling(path, k, p, sizeof p) || stat(p, &st) != 0)
            return err_set(err, errlen, ERR_MODEL_LOAD,
                           "%s: split model part %d of %d is "
                           "missing",
                           path, k, count);
        shimmy_err rc = gguf_meta_read(p, &m, err, errlen);
        if (rc != SHIMMY_OK)
            return rc;
        d->size_bytes += (uint64_t)st.st_size;
        d->meta.n_params += m.n_params;
    }
    d->n_parts = count;
    return SHIMMY_OK;
}

static shimmy_err set_name(const char *path, const char *name, model_rec *d, char *err,
                           size_t errlen) {
    char stem[LIM_MODEL_NAME];
    if (name != NULL && (name[0] == '\0' || strlen(name) >= LIM_MODEL_NAME))
        return err_set(err, errlen, ERR_BAD_PARAM, "%s: invalid model name", path);
    if (name == NULL && !names_from_path(path, stem, sizeof stem))
        return err_set(err, errlen, ERR_BAD_PARAM, "%s: cannot derive a model name", path);
    if (!rec_set(&d->name, name != NULL ? name : stem))
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    return SHIMMY_OK;
}

/* d's canonical path, size and modification time. */
static shimmy_err stat_file(const char *path, model_rec *d, char *err, size_t errlen) {
    char real[PATH_MAX];
    struct stat st;
    if (realpath(path, real) == NULL || stat(real, &st) != 0)
        return err_set(err, errlen, ERR_IO, "%s: %s", path, strerror(errno));
    if (!rec_set(&d->realpath, real))
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    d->size_bytes = (uint64_t)st.st_size;
    d->mtime = (int64_t)st.st_mtime;
    d->n_parts = 1;
    return SHIMMY_OK;
}

shimmy_err disc_describe(const char *path, const char *name, const char *source, model_rec *d,
                         char *err, size_t errlen) {
    shimmy_err rc = gguf_meta_read(path, &d->meta, err, errlen);
    if (rc != SHIMMY_OK)
        return rc;
    char why[128];
    if (!gguf_meta_is_model(&d->meta, why, sizeof why))
        return err_set(err, errlen, ERR_MODEL_LOAD, "%s: %s", path, why);
    if ((rc = stat_file(path, d, err, errlen)) != SHIMMY_OK ||
        (rc = add_split_parts(path, d, err, errlen)) != SHIMMY_OK ||
        (rc = set_name(path, name, d, err, errlen)) != SHIMMY_OK)
        return rc;
    if (strlen(path) >= PATH_MAX)
        return err_set(err, errlen, ERR_BAD_PARAM, "%s: path too long", path);
    if (!rec_set(&d->path, path) || !rec_set(&d->source, source ? source : ""))
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    d->adapter_scale = 1.0f;
    file_digest(d, d->digest, sizeof d->digest);
    return SHIMMY_OK;
}

/* err without the "PATH: " it starts with. */
static const char *after_path(const char *err, const char *path) {
    const char *why = strncmp(err, path, strlen(path)) == 0 ? err + strlen(path) : err;
    while (*why == ':' || *why == ' ')
        why++;
    return why;
}

/* A .gguf file met by a scan: a model is added, an adapter or a projector remembered (root: see
 * disc_projector), anything else noted. */
static bool consider_file(disc_result *r, const char *path, const char *name, const char *source,
                          const char *root) {
    int part, count;
    if (names_split_part(path, &part, &count) && part > 1)
        return false; /* a later part: the first part stands for the model */
    char real[PATH_MAX];
    if (realpath(path, real) != NULL && find_real(r, real, "", "") != NULL)
        return false; /* already found through an earlier source */
    model_rec *d = model_rec_new();
    char err[600];
    if (d == NULL)
        return false;
    shimmy_err rc = disc_describe(path, name, source, d, err, sizeof err);
    if (rc == SHIMMY_OK)
        return push_model(r, d);
    if (strcmp(d->meta.type, "adapter") == 0)
        push_adapter(r, path, &d->meta);
    else if (rc == ERR_MODEL_LOAD && gguf_meta_is_projector(&d->meta))
        push_projector(r, path, root, &d->meta); /* noted with its pairing by disc_run */
    else {
        log_warn("skipping %s", err);
        note(r, path, after_path(err, path));
    }
    model_rec_unref(d);
    return false;
}

/* ---- walking folders ---- */

static int skip_hidden(const struct dirent *e) {
    return e->d_name[0] != '.';
}

/* Lists dir's visible entries in name order; NULL (n = 0) when it cannot be read or the scan is
 * over its entry budget. */
static struct dirent **list_dir(disc_result *r, const char *dir, int *n) {
    struct dirent **list = NULL;
    *n = 0;
    if (r->entries >= LIM_SCAN_ENTRIES)
        return NULL;
    int k = scandir(dir, &list, skip_hidden, alphasort);
    if (k < 0)
        return NULL;
    r->entries += (size_t)k;
    if (r->entries > LIM_SCAN_ENTRIES)
        log_warn("model scan stopped after %d folder entries (in %s)", LIM_SCAN_ENTRIES, dir);
    *n = k;
    return list;
}

static void free_list(struct dirent **list, int n) {
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static bool join(char *out, size_t outlen, const char *a, const char *b) {
    return snprintf(out, outlen, "%s/%s", a, b) < (int)outlen;
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Folders already walked in this scan, by device and inode: symlink loops end here. */
typedef struct visited {
    dev_t dev[256];
    ino_t ino[256];
    int n;
} visited;

static bool first_visit(visited *v, const char *dir) {
    struct stat st;
    if (stat(dir, &st) != 0)
        return false;
    for (int i = 0; i < v->n; i++)
        if (v->dev[i] == st.st_dev && v->ino[i] == st.st_ino)
            return false;
    if (v->n < 256) {
        v->dev[v->n] = st.st_dev;
        v->ino[v->n] = st.st_ino;
        v->n++;
    }
    return true;
}

/* Calls on_file for every .gguf file under dir, at most max_depth folders down. */
typedef void (*file_fn)(disc_result *r, const char *path, void *ctx);

static void walk(disc_result *r, const char *dir, int depth, int max_depth, visited *v,
                 file_fn on_file, void *ctx) {
    int n;
    if (depth > LIM_SCAN_DEPTH || !first_visit(v, dir))
        return;
    struct dirent **list = list_dir(r, dir, &n);
    for (int i = 0; i < n; i++) {
        char path[4096];
        if (!join(path, sizeof path, dir, list[i]->d_name))
            continue;
        if (is_dir(path)) {
            if (depth < max_depth)
                walk(r, path, depth + 1, max_depth, v, on_file, ctx);
        } else if (names_is_gguf(path)) {
            on_file(r, path, ctx);
        }
    }
    free_list(list, n);
}

typedef struct dir_ctx {
    const char *source;
    int added;
} dir_ctx;

static void dir_file(disc_result *r, const char *path, void *ctx) {
    dir_ctx *c = ctx;
    if (consider_file(r, path, NULL, c->source, NULL))
        c->added++;
}

/* ---- MLX folders (found, listed, not served) ---- */

static bool ends_with_ci(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcasecmp(s + n - k, suffix) == 0;
}

bool disc_is_mlx_dir(const char *dir, uint64_t *size_bytes) {
    DIR *d = opendir(dir);
    if (d == NULL)
        return false;
    bool config = false, gguf = false;
    int tensors = 0;
    uint64_t size = 0;
    struct dirent *e;
    for (int seen = 0; (e = readdir(d)) != NULL && seen < LIM_SCAN_ENTRIES; seen++) {
        char path[4096];
        struct stat st;
        if (e->d_name[0] == '.' || !join(path, sizeof path, dir, e->d_name) ||
            stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (strcmp(e->d_name, "config.json") == 0)
            config = true;
        else if (names_is_gguf(e->d_name))
            gguf = true;
        else if (ends_with_ci(e->d_name, ".safetensors")) {
            tensors++;
            size += (uint64_t)st.st_size;
        }
    }
    closedir(d);
    if (!config || tensors == 0 || gguf)
        return false;
    if (size_bytes != NULL)
        *size_bytes = size;
    return true;
}

const char *disc_unserved_status(const disc_unserved *u) {
    (void)u; /* MLX is the only format found and not served today */
    return "not served: MLX engine not available in this build";
}

/* config.json's model_type and quantization.bits, when it is small, readable JSON. */
static void mlx_config(const char *dir, disc_unserved *u) {
    char path[4096];
    struct stat st;
    if (!join(path, sizeof path, dir, "config.json") || stat(path, &st) != 0 ||
        st.st_size > LIM_MLX_CONFIG_BYTES)
        return;
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    const char *type = json_string_value(json_object_get(root, "model_type"));
    json_t *bits = json_object_get(json_object_get(root, "quantization"), "bits");
    if (type != NULL)
        snprintf(u->arch, sizeof u->arch, "%s", type);
    if (json_is_integer(bits) && json_integer_value(bits) > 0 && json_integer_value(bits) <= 64)
        u->bits = (int)json_integer_value(bits);
    json_decref(root);
}

/* dir, when it is an MLX folder not found before, becomes an unserved entry named name. */
static bool consider_mlx(disc_result *r, const char *dir, const char *name, const char *source) {
    disc_unserved u;
    memset(&u, 0, sizeof u);
    if (!disc_is_mlx_dir(dir, &u.size_bytes) || realpath(dir, u.realpath) == NULL)
        return false;
    for (size_t i = 0; i < r->n_unserved; i++)
        if (strcmp(r->unserved[i].realpath, u.realpath) == 0)
            return false; /* the same folder through another store or a link */
    if (name[0] == '\0' || strlen(name) >= sizeof u.name ||
        snprintf(u.path, sizeof u.path, "%s", dir) >= (int)sizeof u.path) {
        note(r, dir, "an MLX model folder whose name or path is too long");
        return false;
    }
    snprintf(u.name, sizeof u.name, "%s", name);
    names_lower(u.name);
    snprintf(u.source, sizeof u.source, "%s", source);
    snprintf(u.format, sizeof u.format, "mlx");
    mlx_config(dir, &u);
    log_info("%s: MLX model '%s' %s", dir, u.name, disc_unserved_status(&u));
    return push_unserved(r, &u);
}

/* The folder itself and each of its subfolders, named by the folder's own name. */
static void scan_dir_mlx(disc_result *r, const char *dir, const char *source) {
    const char *base = strrchr(dir, '/');
    consider_mlx(r, dir, base != NULL ? base + 1 : dir, source);
    int n;
    struct dirent **list = list_dir(r, dir, &n);
    for (int i = 0; i < n; i++) {
        char path[4096];
        if (join(path, sizeof path, dir, list[i]->d_name) && is_dir(path))
            consider_mlx(r, path, list[i]->d_name, source);
    }
    free_list(list, n);
}

int disc_scan_dir(disc_result *r, const char *dir, const char *source) {
    visited v = {.n = 0};
    dir_ctx c = {.source = source, .added = 0};
    walk(r, dir, 0, 1, &v, dir_file, &c);
    scan_dir_mlx(r, dir, source);
    return c.added;
}

static int scan_dir_list(disc_result *r, const char *list, const char *source) {
    int added = 0;
    const char *p = list;
    while (p != NULL && *p != '\0') {
        size_t len = strcspn(p, ";:");
        if (len > 0 && len < 4096) {
            char dir[4096];
            memcpy(dir, p, len);
            dir[len] = '\0';
            added += disc_scan_dir(r, dir, source);
        }
        p += len;
        if (*p != '\0')
            p++;
    }
    return added;
}

/* ---- Hugging Face hub cache ---- */

/* "models--ORG--NAME" → "org/name". Returns false for other folders (datasets--, spaces--). */
static bool hf_repo_name(const char *folder, char *out, size_t outlen) {
    if (strncmp(folder, "models--", 8) != 0)
        return false;
    const char *rest = folder + 8;
    const char *sep = strstr(rest, "--");
    if (sep == NULL || sep == rest || sep[2] == '\0')
        return false;
    if (snprintf(out, outlen, "%.*s/%s", (int)(sep - rest), rest, sep + 2) >= (int)outlen)
        return false;
    names_lower(out);
    return true;
}

/* The snapshot to serve: the one refs/main names, else the most recently modified. */
static bool hf_snapshot(disc_result *r, const char *repo_dir, char *out, size_t outlen) {
    char ref[4096], rev[128] = "";
    if (join(ref, sizeof ref, repo_dir, "refs/main")) {
        FILE *f = fopen(ref, "r");
        if (f != NULL) {
            if (fgets(rev, sizeof rev, f) == NULL)
                rev[0] = '\0';
            fclose(f);
            rev[strcspn(rev, "\r\n")] = '\0';
        }
    }
    char snaps[4096];
    if (!join(snaps, sizeof snaps, repo_dir, "snapshots"))
        return false;
    if (rev[0] != '\0' && strchr(rev, '/') == NULL && join(out, outlen, snaps, rev) && is_dir(out))
        return true;
    int n;
    struct dirent **list = list_dir(r, snaps, &n);
    int64_t best = -1;
    for (int i = 0; i < n; i++) {
        char p[4096];
        struct stat st;
        if (join(p, sizeof p, snaps, list[i]->d_name) && stat(p, &st) == 0 && S_ISDIR(st.st_mode) &&
            (int64_t)st.st_mtime > best) {
            best = (int64_t)st.st_mtime;
            snprintf(out, outlen, "%s", p);
        }
    }
    free_list(list, n);
    return best >= 0;
}

typedef struct named_ctx {
    const char *prefix; /* "org/name" */
    const char *source;
    const char *root; /* the snapshot or repo folder walked */
    int added;
    int gguf; /* .gguf files met, models or not */
} named_ctx;

/* prefix + "/" + file stem, lowercased. */
static void named_file(disc_result *r, const char *path, void *ctx) {
    named_ctx *c = ctx;
    char stem[256], name[600];
    c->gguf++;
    if (!names_from_path(path, stem, sizeof stem))
        return;
    snprintf(name, sizeof name, "%s/%s", c->prefix, stem);
    names_lower(name);
    if (strlen(name) >= LIM_MODEL_NAME) {
        note(r, path, "name too long");
        return;
    }
    if (consider_file(r, path, name, c->source, c->root))
        c->added++;
}

int disc_scan_hf(disc_result *r, const char *hub_dir) {
    int n, added = 0;
    struct dirent **list = list_dir(r, hub_dir, &n);
    for (int i = 0; i < n; i++) {
        char repo[256], repo_dir[4096], snap[4096];
        if (!hf_repo_name(list[i]->d_name, repo, sizeof repo) ||
            !join(repo_dir, sizeof repo_dir, hub_dir, list[i]->d_name) ||
            !hf_snapshot(r, repo_dir, snap, sizeof snap))
            continue;
        visited v = {.n = 0};
        named_ctx c = {.prefix = repo, .source = "hf", .root = snap, .added = 0, .gguf = 0};
        walk(r, snap, 0, 3, &v, named_file, &c);
        added += c.added;
        if (c.gguf == 0)
            consider_mlx(r, snap, repo, "hf");
    }
    free_list(list, n);
    return added;
}

/* ---- LM Studio ---- */

int disc_scan_lmstudio(disc_result *r, const char *models_dir) {
    int np, added = 0;
    struct dirent **pubs = list_dir(r, models_dir, &np);
    for (int i = 0; i < np; i++) {
        char pub_dir[4096];
        int nr;
        if (!join(pub_dir, sizeof pub_dir, models_dir, pubs[i]->d_name) || !is_dir(pub_dir))
            continue;
        struct dirent **repos = list_dir(r, pub_dir, &nr);
        for (int j = 0; j < nr; j++) {
            char repo_dir[4096], prefix[600];
            if (!join(repo_dir, sizeof repo_dir, pub_dir, repos[j]->d_name) || !is_dir(repo_dir))
                continue;
            snprintf(prefix, sizeof prefix, "%s/%s", pubs[i]->d_name, repos[j]->d_name);
            names_lower(prefix);
            visited v = {.n = 0};
            named_ctx c = {
                .prefix = prefix, .source = "lmstudio", .root = repo_dir, .added = 0, .gguf = 0};
            walk(r, repo_dir, 0, 1, &v, named_file, &c);
            added += c.added;
            if (c.gguf == 0)
                consider_mlx(r, repo_dir, prefix, "lmstudio");
        }
        free_list(repos, nr);
    }
    free_list(pubs, np);
    return added;
}

/* ---- Ollama ---- */

/* "sha256:HEX" → models_dir/blobs/sha256-HEX. */
static bool ollama_blob(const char *models_dir, const char *digest, char *out, size_t outlen) {
    if (strncmp(digest, "sha256:", 7) != 0 || strlen(digest) != 7 + 64 ||
        strspn(digest + 7, "0123456789abcdef") != 64)
        return false;
    return snprintf(out, outlen, "%s/blobs/sha256-%s", models_dir, digest + 7) < (int)outlen;
}

static json_t *load_manifest(const char *path) {
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (root != NULL && !json_is_object(root)) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* The digest of the first layer of media type mt, or NULL. Borrowed from root. */
static const char *layer_digest(const json_t *root, const char *mt) {
    const json_t *layers = json_object_get(root, "layers");
    for (size_t i = 0; i < json_array_size(layers); i++) {
        const json_t *l = json_array_get(layers, i);
        const char *t = json_string_value(json_object_get(l, "mediaType"));
        if (t != NULL && strcmp(t, mt) == 0)
            return json_string_value(json_object_get(l, "digest"));
    }
    return NULL;
}

/* model:tag, namespace/model:tag, or registry/namespace/model:tag. */
static void ollama_name(const char *reg, const char *ns, const char *model, const char *tag,
                        char *out, size_t outlen) {
    int n;
    if (strcmp(reg, "registry.ollama.ai") != 0)
        n = snprintf(out, outlen, "%s/%s/%s:%s", reg, ns, model, tag);
    else if (strcmp(ns, "library") != 0)
        n = snprintf(out, outlen, "%s/%s:%s", ns, model, tag);
    else
        n = snprintf(out, outlen, "%s:%s", model, tag);
    if (n < 0 || (size_t)n >= outlen)
        out[0] = '\0';
}

/* The manifest's projector layer (its first, as Ollama's /api/show reads it) paired with d; a
 * layer that is not a readable projector is noted and left out. */
static void ollama_projector(disc_result *r, const char *models_dir, const json_t *root,
                             const char *manifest, model_rec *d) {
    const char *pd = layer_digest(root, OLLAMA_PROJECTOR_MT);
    char blob[4096], err[600], why[sizeof err + LIM_MODEL_NAME + 64]; /* err and the name whole */
    gguf_meta m = {0};
    if (pd == NULL)
        return;
    err[0] = '\0';
    if (!ollama_blob(models_dir, pd, blob, sizeof blob))
        snprintf(err, sizeof err, "bad digest '%.100s'", pd);
    else if (gguf_meta_read(blob, &m, err, sizeof err) == SHIMMY_OK &&
             !gguf_meta_is_projector(&m)) /* a failed read says why in err */
        snprintf(err, sizeof err, "%.400s: not a multimodal projector (general.type '%s')", blob,
                 m.type);
    if (err[0] == '\0' && !rec_set(&d->mmproj, blob))
        snprintf(err, sizeof err, "out of memory");
    if (err[0] == '\0') {
        d->mmproj_vision = m.has_vision;
        d->mmproj_audio = m.has_audio;
        return;
    }
    snprintf(why, sizeof why, "the projector layer is left out (%s): '%s' is served text-only", err,
             d->name);
    log_warn("%s: %s", manifest, why);
    note(r, manifest, why);
}

/* One manifest: its model layer becomes a model (with its adapter and projector layers). */
static bool ollama_manifest(disc_result *r, const char *models_dir, const char *manifest,
                            const char *name) {
    json_t *root = load_manifest(manifest);
    char blob[4096], err[600] = "";
    const char *digest = root ? layer_digest(root, OLLAMA_MODEL_MT) : NULL;
    bool added = false;
    if (root == NULL)
        note(r, manifest, "not a readable Ollama manifest (JSON)");
    else if (digest == NULL || !ollama_blob(models_dir, digest, blob, sizeof blob))
        note(r, manifest, "the manifest has no model layer");
    else {
        model_rec *d = model_rec_new();
        char real[PATH_MAX], adapter[4096] = "";
        const char *ad = layer_digest(root, OLLAMA_ADAPTER_MT);
        const model_rec *same;
        if (ad != NULL && !ollama_blob(models_dir, ad, adapter, sizeof adapter))
            adapter[0] = '\0';
        if (realpath(blob, real) != NULL &&
            (same = find_real(r, real, adapter, manifest)) != NULL) {
            char why[600];
            snprintf(why, sizeof why, "the same model file as '%s': served under that name",
                     same->name);
            note(r, manifest, why);
            model_rec_unref(d);
            json_decref(root);
            return false;
        }
        if (d == NULL || disc_describe(blob, name, "ollama", d, err, sizeof err) != SHIMMY_OK ||
            !rec_set(&d->manifest, manifest) || !rec_set(&d->adapter, adapter)) {
            if (d == NULL || err[0] == '\0')
                snprintf(err, sizeof err, "out of memory");
            log_warn("skipping Ollama model %s: %s", name, err);
            note(r, manifest, err);
            model_rec_unref(d);
        } else {
            snprintf(d->digest, sizeof d->digest, "%s", digest + 7);
            ollama_projector(r, models_dir, root, manifest, d);
            added = push_model(r, d);
        }
    }
    json_decref(root);
    return added;
}

/* manifests/REGISTRY/NAMESPACE/MODEL/TAG, each level listed in name order. */
int disc_scan_ollama(disc_result *r, const char *models_dir) {
    char lv[5][4096];
    const char *part[4];
    int n[4], added = 0;
    struct dirent **l[4];
    if (!join(lv[0], sizeof lv[0], models_dir, "manifests"))
        return 0;
    l[0] = list_dir(r, lv[0], &n[0]);
    for (int a = 0; a < n[0]; a++) {
        part[0] = l[0][a]->d_name;
        if (!join(lv[1], sizeof lv[1], lv[0], part[0]) || !is_dir(lv[1]))
            continue;
        l[1] = list_dir(r, lv[1], &n[1]);
        for (int b = 0; b < n[1]; b++) {
            part[1] = l[1][b]->d_name;
            if (!join(lv[2], sizeof lv[2], lv[1], part[1]) || !is_dir(lv[2]))
                continue;
            l[2] = list_dir(r, lv[2], &n[2]);
            for (int c = 0; c < n[2]; c++) {
                part[2] = l[2][c]->d_name;
                if (!join(lv[3], sizeof lv[3], lv[2], part[2]) || !is_dir(lv[3]))
                    continue;
                l[3] = list_dir(r, lv[3], &n[3]);
                for (int d = 0; d < n[3]; d++) {
                    char name[600];
                    part[3] = l[3][d]->d_name;
                    if (!join(lv[4], sizeof lv[4], lv[3], part[3]) || is_dir(lv[4]))
                        continue;
                    ollama_name(part[0], part[1], part[2], part[3], name, sizeof name);
                    if (name[0] != '\0' && strlen(name) < LIM_MODEL_NAME &&
                        ollama_manifest(r, models_dir, lv[4], name))
                        added++;
                }
                free_list(l[3], n[3]);
            }
            free_list(l[2], n[2]);
        }
        free_list(l[1], n[1]);
    }
    free_list(l[0], n[0]);
    return added;
}

static char *read_small(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = LIM_LAYER_BYTES;
    char *s = malloc(cap + 1);
    size_t n = s ? fread(s, 1, cap, f) : 0;
    fclose(f);
    if (s != NULL)
        s[n] = '\0';
    return s;
}

bool disc_ollama_read_layers(const char *manifest, disc_ollama_layers *out) {
    memset(out, 0, sizeof *out);
    json_t *root = load_manifest(manifest);
    if (root == NULL)
        return false;
    /* models_dir is two levels above "manifests" */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", manifest);
    char *m = strstr(dir, "/manifests/");
    if (m == NULL) {
        json_decref(root);
        return false;
    }
    *m = '\0';
    static const struct {
        const char *mt;
        size_t off;
    } layers[] = {
        {"application/vnd.ollama.image.template", offsetof(disc_ollama_layers, template_text)},
        {"application/vnd.ollama.image.system", offsetof(disc_ollama_layers, system_text)},
        {"application/vnd.ollama.image.params", offsetof(disc_ollama_layers, params_json)},
        {"application/vnd.ollama.image.license", offsetof(disc_ollama_layers, license_text)},
    };
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
        const char *dg = layer_digest(root, layers[i].mt);
        char blob[4096];
        if (dg != NULL && ollama_blob(dir, dg, blob, sizeof blob))
            *(char **)((char *)out + layers[i].off) = read_small(blob);
    }
    out->has_projector = layer_digest(root, OLLAMA_PROJECTOR_MT) != NULL;
    json_decref(root);
    return true;
}

void disc_ollama_layers_free(disc_ollama_layers *l) {
    free(l->template_text);
    free(l->system_text);
    free(l->params_json);
    free(l->license_text);
    memset(l, 0, sizeof *l);
}

/* ---- adapters beside their base ---- */

static bool same_dir(const char *path, const char *dir) {
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && path[n] == '/' && strchr(path + n + 1, '/') == NULL;
}

/* The model in a's folder that a names, else the one with the longest stem a's stem starts
 * with. */
static model_rec *adapter_base(disc_result *r, const disc_adapter *a) {
    model_rec *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < r->n; i++) {
        model_rec *d = r->models[i];
        char stem[256];
        if (!same_dir(d->path, a->dir) || d->adapter[0] != '\0' ||
            (a->arch[0] && strcmp(a->arch, d->meta.arch) != 0))
            continue;
        if (a->base_name[0] && strcasecmp(a->base_name, d->meta.name) == 0)
            return d;
        if (names_from_path(d->path, stem, sizeof stem) &&
            strncmp(a->stem, stem, strlen(stem)) == 0 && strlen(stem) > best_len) {
            best = d;
            best_len = strlen(stem);
        }
    }
    return best;
}

static void attach_adapters(disc_result *r) {
    for (size_t i = 0; i < r->n_adapters; i++) {
        disc_adapter *a = &r->adapters[i];
        model_rec *d = adapter_base(r, a);
        if (d == NULL) {
            note(r, a->path,
                 "a LoRA adapter (general.type = adapter) with no base model "
                 "beside it that it names or whose file stem it starts with");
            continue;
        }
        if (!rec_set(&d->adapter, a->path)) {
            log_warn("adapter %s: out of memory", a->path);
            continue;
        }
        d->adapter_scale = 1.0f;
        log_info("adapter %s attached to model '%s'", a->path, d->name);
    }
    r->n_adapters = 0;
}

/* ---- projectors beside their models ---- */

/* Whether path lies under dir (at any depth). */
static bool under_dir(const char *path, const char *dir) {
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/* The bits per weight a quantization name stands for: "Q4_K_M" 4, "F16" 16, "Q8_0" 8 (the first
 * number in it, as llama.cpp's -hf picks an mmproj); 0 when it has none. */
static int quant_bits(const char *quant) {
    const char *p = quant + strcspn(quant, "0123456789");
    int bits = 0;
    for (; *p >= '0' && *p <= '9' && bits < 1000; p++)
        bits = bits * 10 + (*p - '0');
    return bits;
}

/* Whether word is one of the '-', '_', '.' or ' ' separated words of s (both lowercase). */
static bool has_word(const char *s, const char *word, size_t len) {
    while (*s != '\0') {
        size_t n = strcspn(s, "-_. ");
        if (n == len && strncmp(s, word, len) == 0)
            return true;
        s += n;
        s += *s != '\0';
    }
    return false;
}

/* How many words of the model's file stem (its quantization's words left out) the projector's
 * stem holds: "gemma-3-4b-it-q4_k_m" and "mmproj-gemma-3-4b-it-f16" share 4. */
static int shared_words(const char *model_stem, const char *quant, const char *proj_stem) {
    char q[32];
    snprintf(q, sizeof q, "%s", quant);
    names_lower(q);
    int n = 0;
    for (const char *w = model_stem; *w != '\0';) {
        size_t len = strcspn(w, "-_. ");
        if (len > 0 && !has_word(q, w, len) && has_word(proj_stem, w, len))
            n++;
        w += len;
        w += *w != '\0';
    }
    return n;
}

/* How well p fits d, compared field by field (higher is better, but bits_gap lower). */
typedef struct proj_fit {
    int place;      /* 2 in the model's folder, 1 in a folder above it (in its snapshot/repo) */
    int width;      /* 1 the stated width is the model's, 0 not stated */
    int words;      /* shared_words */
    int same_quant; /* 1 the same quantization as the model */
    int bits_gap;   /* |bits per weight of p - of d| */
} proj_fit;

/* Whether p may serve d, and how well (*f). A projector written by llama.cpp's converter
 * (general.type mmproj) states the text model's width: another width would fail the load. */
static bool projector_fits(const model_rec *d, const disc_projector *p, proj_fit *f) {
    char stem[256];
    memset(f, 0, sizeof *f);
    if (same_dir(d->path, p->dir))
        f->place = 2;
    else if (under_dir(d->path, p->dir) &&
             (strcmp(p->dir, p->root) == 0 || under_dir(p->dir, p->root)))
        f->place = 1;
    else
        return false;
    if (p->meta.proj_dim != 0 && d->meta.n_embd != 0) {
        if (p->meta.proj_dim == d->meta.n_embd)
            f->width = 1;
        else if (strcmp(p->meta.type, "mmproj") == 0)
            return false;
    }
    if (names_from_path(d->path, stem, sizeof stem))
        f->words = shared_words(stem, d->meta.quant, p->stem);
    f->same_quant = d->meta.quant[0] != '\0' && strcasecmp(d->meta.quant, p->meta.quant) == 0;
    f->bits_gap = abs(quant_bits(p->meta.quant) - quant_bits(d->meta.quant));
    return true;
}

/* Whether a fits better than b. */
static bool fit_better(const proj_fit *a, const proj_fit *b) {
    if (a->place != b->place)
        return a->place > b->place;
    if (a->width != b->width)
        return a->width > b->width;
    if (a->words != b->words)
        return a->words > b->words;
    if (a->same_quant != b->same_quant)
        return a->same_quant > b->same_quant;
    return a->bits_gap < b->bits_gap;
}

/* Pairs d with the projector at path. Returns false when out of memory (d is unchanged). */
static bool set_projector(model_rec *d, const char *path, const gguf_meta *m) {
    if (!rec_set(&d->mmproj, path))
        return false;
    d->mmproj_vision = m->has_vision;
    d->mmproj_audio = m->has_audio;
    return true;
}

/* The best projector for d among those seen (ties: the first by path), NULL when none fits. */
static const disc_projector *best_projector(const disc_result *r, const model_rec *d) {
    const disc_projector *best = NULL;
    proj_fit bf = {0}, f;
    for (size_t i = 0; i < r->n_projectors; i++) {
        const disc_projector *p = &r->projectors[i];
        if (!projector_fits(d, p, &f))
            continue;
        if (best == NULL || fit_better(&f, &bf) ||
            (!fit_better(&bf, &f) && strcmp(p->path, best->path) < 0)) {
            best = p;
            bf = f;
        }
    }
    return best;
}

/* Beside a --model (or SHIMMY_BASE_GGUF) file, whose folder no scan walked: the projectors
 * named *mmproj* (only those: that folder may hold many large files). */
static void cli_projectors(disc_result *r, const char *model_path) {
    char dir[4096];
    int n;
    dir_of(model_path, dir, sizeof dir);
    struct dirent **list = list_dir(r, dir, &n);
    for (int i = 0; i < n; i++) {
        char path[4096], err[600];
        gguf_meta m;
        if (strcasestr(list[i]->d_name, "mmproj") == NULL || !names_is_gguf(list[i]->d_name) ||
            !join(path, sizeof path, dir, list[i]->d_name) || is_dir(path))
            continue;
        if (gguf_meta_read(path, &m, err, sizeof err) != SHIMMY_OK)
            note(r, path, after_path(err, path));
        else if (gguf_meta_is_projector(&m))
            push_projector(r, path, NULL, &m);
    }
    free_list(list, n);
}

/* Every model with no projector yet (Ollama's come from their manifest) gets its best one. */
static void pair_projectors(disc_result *r) {
    for (size_t i = 0; i < r->n; i++) {
        const model_rec *d = r->models[i];
        if (strcmp(d->source, "cli") == 0 || strcmp(d->source, "env") == 0)
            cli_projectors(r, d->path);
    }
    for (size_t i = 0; i < r->n; i++) {
        model_rec *d = r->models[i];
        if (d->mmproj[0] != '\0' || d->manifest[0] != '\0')
            continue;
        const disc_projector *p = best_projector(r, d);
        if (p != NULL && set_projector(d, p->path, &p->meta))
            log_info("projector %s paired with model '%s'", p->path, d->name);
        else if (p != NULL)
            log_warn("projector %s: out of memory", p->path);
    }
}

/* Why p serves no model: none beside it, another fits better, or its width is no one's. */
static const char *unpaired_why(const disc_result *r, const disc_projector *p, char *buf,
                                size_t len) {
    proj_fit f;
    for (size_t k = 0; k < r->n; k++)
        if (projector_fits(r->models[k], p, &f))
            return "another projector fits each model beside it better";
    if (p->meta.proj_dim == 0 || strcmp(p->meta.type, "mmproj") != 0)
        return "none beside it";
    snprintf(buf, len, "it is for a model %u wide and none beside it is", p->meta.proj_dim);
    return buf;
}

/* Each projector seen, noted once with the models that use it. */
static void note_projectors(disc_result *r) {
    static const char what[] = "a multimodal projector (mmproj), not a model: paired with";
    for (size_t i = 0; i < r->n_projectors; i++) {
        const disc_projector *p = &r->projectors[i];
        const char *first = NULL;
        size_t users = 0;
        char why[700], buf[128];
        for (size_t k = 0; k < r->n; k++)
            if (strcmp(r->models[k]->mmproj, p->path) == 0 && users++ == 0)
                first = r->models[k]->name;
        if (users == 0)
            snprintf(why, sizeof why, "%s no model (%s; see --mmproj)", what,
                     unpaired_why(r, p, buf, sizeof buf));
        else if (users == 1)
            snprintf(why, sizeof why, "%s '%s'", what, first);
        else
            snprintf(why, sizeof why, "%s '%s' and %zu more", what, first, users - 1);
        note(r, p->path, why);
    }
    r->n_projectors = 0;
}

/* ---- explicit projectors ---- */

/* The model a --mmproj without a name is for: the one --model file, else the only model. */
static model_rec *default_model(disc_result *r, const disc_config *c, const char *path, char *err,
                                size_t errlen) {
    char real[PATH_MAX];
    if (c->n_paths == 1 && realpath(c->model_paths[0], real) != NULL)
        for (size_t i = 0; i < r->n; i++)
            if (strcmp(r->models[i]->realpath, real) == 0)
                return r->models[i];
    if (r->n == 1)
        return r->models[0];
    err_set(err, errlen, ERR_BAD_PARAM,
            "--mmproj %s: name the model it is for (--mmproj "
            "NAME=%s): %zu models are served",
            path, path, r->n);
    return NULL;
}

static shimmy_err check_projector(const char *path, gguf_meta *m, char *err, size_t errlen) {
    char why[700];
    shimmy_err rc = gguf_meta_read(path, m, why, sizeof why);
    if (rc != SHIMMY_OK)
        return err_set(err, errlen, rc, "--mmproj %s", why);
    if (!gguf_meta_is_projector(m))
        return err_set(err, errlen, ERR_BAD_PARAM,
                       "--mmproj %s: not a multimodal projector "
                       "(general.type '%s', architecture '%s'; a projector has general.type "
                       "mmproj)",
                       path, m->type, m->arch);
    return SHIMMY_OK;
}

static shimmy_err apply_mmprojs(disc_result *r, const disc_config *c, char *err, size_t errlen) {
    for (int i = 0; i < c->n_mmprojs; i++) {
        const disc_mmproj *x = &c->mmprojs[i];
        model_rec *d =
            x->model != NULL ? find_name(r, x->model) : default_model(r, c, x->path, err, errlen);
        gguf_meta m;
        if (d == NULL && x->model == NULL)
            return ERR_BAD_PARAM;
        if (d == NULL)
            return err_set(err, errlen, ERR_BAD_PARAM, "--mmproj %s=%s: no model named '%s'",
                           x->model, x->path, x->model);
        shimmy_err rc = check_projector(x->path, &m, err, errlen);
        if (rc != SHIMMY_OK)
            return rc;
        if (m.proj_dim != 0 && d->meta.n_embd != 0 && m.proj_dim != d->meta.n_embd)
            log_warn("--mmproj %s: a projector for a model %u wide, but '%s' is %u wide: loading "
                     "it may fail",
                     x->path, m.proj_dim, d->name, d->meta.n_embd);
        if (!set_projector(d, x->path, &m))
            return err_set(err, errlen, ERR_NOMEM, "out of memory");
    }
    return SHIMMY_OK;
}

/* ---- explicit adapters ---- */

static shimmy_err check_adapter(const char *path, char *err, size_t errlen) {
    gguf_meta m;
    shimmy_err rc = gguf_meta_read(path, &m, err, errlen);
    if (rc != SHIMMY_OK)
        return rc;
    if (strcmp(m.type, "adapter") != 0)
        return err_set(err, errlen, ERR_BAD_PARAM,
                       "%s: not a LoRA adapter (general.type is "
                       "'%s', not 'adapter')",
                       path, m.type);
    return SHIMMY_OK;
}

static shimmy_err apply_loras(disc_result *r, const disc_config *c, char *err, size_t errlen) {
    for (int i = 0; i < c->n_loras; i++) {
        const disc_lora *l = &c->loras[i];
        model_rec *d = find_name(r, l->model);
        if (d == NULL)
            return err_set(err, errlen, ERR_BAD_PARAM, "--lora %s=%s: no model named '%s'",
                           l->model, l->path, l->model);
        shimmy_err rc = check_adapter(l->path, err, errlen);
        if (rc != SHIMMY_OK)
            return rc;
        if (!rec_set(&d->adapter, l->path))
            return err_set(err, errlen, ERR_NOMEM, "out of memory");
        d->adapter_scale = l->scale;
    }
    return SHIMMY_OK;
}

/* SHIMMY_BASE_GGUF is served (source "env") with SHIMMY_LORA_GGUF as its adapter. */
static shimmy_err env_base(disc_result *r, char *err, size_t errlen) {
    const char *base = getenv("SHIMMY_BASE_GGUF");
    const char *lora = getenv("SHIMMY_LORA_GGUF");
    if (base == NULL || base[0] == '\0')
        return SHIMMY_OK;
    char real[PATH_MAX];
    model_rec *d = NULL;
    if (realpath(base, real) != NULL)
        for (size_t i = 0; i < r->n && d == NULL; i++)
            if (strcmp(r->models[i]->realpath, real) == 0)
                d = r->models[i];
    if (d == NULL) {
        consider_file(r, base, NULL, "env", NULL);
        d = realpath(base, real) != NULL && r->n > 0 &&
                    strcmp(r->models[r->n - 1]->realpath, real) == 0
                ? r->models[r->n - 1]
                : NULL;
    }
    if (d == NULL)
        return SHIMMY_OK; /* noted by consider_file */
    if (lora != NULL && lora[0] != '\0') {
        shimmy_err rc = check_adapter(lora, err, errlen);
        if (rc != SHIMMY_OK)
            return rc;
        if (!rec_set(&d->adapter, lora))
            return err_set(err, errlen, ERR_NOMEM, "out of memory");
        d->adapter_scale = 1.0f;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", base);
    char *slash = strrchr(dir, '/');
    if (slash != NULL) {
        *slash = '\0';
        disc_scan_dir(r, dir, "dir");
    }
    return SHIMMY_OK;
}

/* ---- all sources ---- */

static shimmy_err explicit_paths(disc_result *r, const disc_config *c, char *err, size_t errlen) {
    for (int i = 0; i < c->n_paths; i++) {
        const char *p = c->model_paths[i];
        char real[PATH_MAX];
        if (realpath(p, real) != NULL && find_real(r, real, "", "") != NULL)
            continue;
        model_rec *d = model_rec_new();
        if (d == NULL)
            return err_set(err, errlen, ERR_NOMEM, "out of memory");
        shimmy_err rc = disc_describe(p, NULL, "cli", d, err, errlen);
        if (rc != SHIMMY_OK) {
            model_rec_unref(d);
            return rc;
        }
        if (!push_model(r, d))
            return err_set(err, errlen, ERR_NOMEM, "%s: cannot add the model", p);
    }
    return SHIMMY_OK;
}

/* dir = $var, else $HOME/rel (NULL when neither is set). */
static bool env_dir(const char *var, const char *rel, char *out, size_t outlen) {
    const char *v = var ? getenv(var) : NULL;
    if (v != NULL && v[0] != '\0')
        return snprintf(out, outlen, "%s", v) < (int)outlen;
    const char *home = getenv("HOME");
    if (home == NULL || home[0] == '\0' || rel == NULL)
        return false;
    return snprintf(out, outlen, "%s/%s", home, rel) < (int)outlen;
}

bool disc_hf_hub_dir(char *out, size_t outlen) {
    const char *hf_home = getenv("HF_HOME");
    if (env_dir("HF_HUB_CACHE", NULL, out, outlen))
        return true;
    if (hf_home != NULL && hf_home[0] != '\0')
        return join(out, outlen, hf_home, "hub");
    return env_dir(NULL, ".cache/huggingface/hub", out, outlen);
}

bool disc_ollama_dir(char *out, size_t outlen) {
    return env_dir("OLLAMA_MODELS", ".ollama/models", out, outlen);
}

static void scan_stores(disc_result *r) {
    char d[4096];
    if (disc_hf_hub_dir(d, sizeof d))
        disc_scan_hf(r, d);
    if (disc_ollama_dir(d, sizeof d))
        disc_scan_ollama(r, d);
    disc_scan_ollama(r, "/usr/share/ollama/.ollama/models");
    if (env_dir(NULL, ".lmstudio/models", d, sizeof d))
        disc_scan_lmstudio(r, d);
    if (env_dir(NULL, ".cache/lm-studio/models", d, sizeof d))
        disc_scan_lmstudio(r, d);
}

shimmy_err disc_run(const disc_config *c, disc_result *out, char *err, size_t errlen) {
    disc_result_init(out);
    shimmy_err rc = explicit_paths(out, c, err, errlen);
    if (rc != SHIMMY_OK)
        return rc;
    disc_scan_dir(out, "./models", "dir");
    scan_dir_list(out, c->model_dirs, "dir");
    scan_dir_list(out, getenv("SHIMMY_MODEL_PATHS"), "dir");
    if (!c->no_stores) {
        if ((rc = env_base(out, err, errlen)) != SHIMMY_OK)
            return rc;
        scan_stores(out);
    }
    attach_adapters(out);
    pair_projectors(out);
    rc = apply_mmprojs(out, c, err, errlen);
    note_projectors(out);
    if (rc != SHIMMY_OK)
        return rc;
    return apply_loras(out, c, err, errlen);
}
