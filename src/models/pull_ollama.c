/* models/pull_ollama: the Ollama registry side of shimmy pull (see pull.h): the reference forms,
 * the manifest, the blobs by digest, and Ollama's store layout (blobs/sha256-HEX,
 * manifests/HOST/NAMESPACE/NAME/TAG), so that ollama and shimmy share one store. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/limits.h"
#include "models/discover.h"
#include "models/pull_internal.h"

#define DEFAULT_HOST "registry.ollama.ai"
#define MANIFEST_ACCEPT "application/vnd.docker.distribution.manifest.v2+json"
#define MODEL_MT "application/vnd.ollama.image.model"

typedef struct oll_ref {
    char host[256], ns[128], name[128], tag[128];
} oll_ref;

static bool chars_ok(const char *s, const char *set) {
    return s[0] != '\0' && s[0] != '.' && strspn(s, set) == strlen(s);
}

#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

/* [HOST[:PORT]/][NAMESPACE/]NAME[:TAG]. */
static shimmy_err parse_ref(const char *ref, oll_ref *r, char *err, size_t errlen) {
    char tmp[1024], *part[4];
    int n = 0;
    if (pull_fmt(tmp, sizeof tmp, "%s", ref) >= (int)sizeof tmp)
        goto bad;
    for (char *s = tmp, *slash; n < 4; s = slash + 1) {
        part[n++] = s;
        if ((slash = strchr(s, '/')) == NULL)
            break;
        *slash = '\0';
    }
    if (n > 3)
        goto bad;
    char *last = part[n - 1], *colon = strrchr(last, ':');
    pull_fmt(r->tag, sizeof r->tag, "%s", colon ? colon + 1 : "latest");
    if (colon != NULL)
        *colon = '\0';
    pull_fmt(r->host, sizeof r->host, "%s", n == 3 ? part[0] : DEFAULT_HOST);
    pull_fmt(r->ns, sizeof r->ns, "%s", n >= 2 ? part[n - 2] : "library");
    if (pull_fmt(r->name, sizeof r->name, "%s", last) >= (int)sizeof r->name ||
        !chars_ok(r->host, NAME_CHARS ":") || !chars_ok(r->ns, NAME_CHARS) ||
        !chars_ok(r->name, NAME_CHARS) || !chars_ok(r->tag, NAME_CHARS))
        goto bad;
    return SHIMMY_OK;
bad:
    return err_set(err, errlen, ERR_BAD_PARAM,
                   "'%s' is not an Ollama model reference: use "
                   "NAME[:TAG], NAMESPACE/NAME[:TAG] or HOST[:PORT]/NAMESPACE/NAME[:TAG] (or "
                   "hf.co/ORG/REPO for Hugging Face)",
                   ref);
}

/* The name discovery gives the model (models/discover.h). */
static void served_name(const oll_ref *r, char *out, size_t outlen) {
    if (strcmp(r->host, DEFAULT_HOST) != 0)
        pull_fmt(out, outlen, "%s/%s/%s:%s", r->host, r->ns, r->name, r->tag);
    else if (strcmp(r->ns, "library") != 0)
        pull_fmt(out, outlen, "%s/%s:%s", r->ns, r->name, r->tag);
    else
        pull_fmt(out, outlen, "%s:%s", r->name, r->tag);
}

static bool digest_ok(const char *d) {
    return d != NULL && strncmp(d, "sha256:", 7) == 0 && strlen(d) == 71 &&
           strspn(d + 7, "0123456789abcdef") == 64;
}

static shimmy_err registry_error(long status, const char *what, const oll_ref *r, char *err,
                                 size_t errlen) {
    if (status == 404)
        return err_set(err, errlen, ERR_MODEL_NOT_FOUND,
                       "%s/%s:%s not found on %s (%s: HTTP "
                       "404)",
                       r->ns, r->name, r->tag, r->host, what);
    if (status == 401 || status == 403)
        return err_set(err, errlen, ERR_UNAUTHORIZED,
                       "%s asks for a login to pull %s/%s:%s "
                       "(HTTP %ld), which shimmy pull does not do (Ollama's signed keys); "
                       "pull it with ollama",
                       r->host, r->ns, r->name, r->tag, status);
    return err_set(err, errlen, ERR_IO, "%s answered HTTP %ld for the %s of %s/%s:%s", r->host,
                   status, what, r->ns, r->name, r->tag);
}

typedef struct oll_job {
    oll_ref ref;
    char base[600];  /* scheme://host/v2/ns/name */
    char root[4096]; /* the store */
    buf manifest;
    pull_file files[LIM_PULL_FILES];
    int n;
    const char *model_digest; /* borrowed from files */
} oll_job;

static shimmy_err get_manifest(pull_ctx *c, oll_job *j, char *err, size_t errlen) {
    char url[1024];
    long status;
    pull_fmt(url, sizeof url, "%s/manifests/%s", j->base, j->ref.tag);
    pull_say(c, "pulling manifest", NULL, 0, 0);
    shimmy_err e = pull_http(c, "GET", url, true, NULL, MANIFEST_ACCEPT, &j->manifest, NULL,
                             &status, err, errlen);
    if (e == SHIMMY_OK && status != 200)
        e = registry_error(status, "manifest", &j->ref, err, errlen);
    size_t n = strlen(err);
    /* a TLS handshake with a plain-HTTP server fails as libcurl's "SSL connect error" */
    if (e == ERR_IO && !c->o->insecure && strstr(err, "SSL") != NULL && n < errlen)
        pull_fmt(err + n, errlen - n, " (a registry that speaks plain HTTP needs --insecure)");
    return e;
}

static shimmy_err add_blob(oll_job *j, const json_t *l, bool *is_model, char *err, size_t errlen) {
    const char *d = json_string_value(json_object_get(l, "digest"));
    const char *mt = json_string_value(json_object_get(l, "mediaType"));
    json_int_t size = json_integer_value(json_object_get(l, "size"));
    if (!digest_ok(d) || size < 0)
        return err_set(err, errlen, ERR_IO,
                       "the manifest of %s/%s:%s has a layer without a "
                       "sha256 digest and size",
                       j->ref.ns, j->ref.name, j->ref.tag);
    if (j->n >= LIM_PULL_FILES)
        return err_set(err, errlen, ERR_IO, "the manifest has more than %d layers", LIM_PULL_FILES);
    pull_file *f = &j->files[j->n++];
    memset(f, 0, sizeof *f);
    pull_fmt(f->url, sizeof f->url, "%s/blobs/%s", j->base, d);
    pull_fmt(f->dest, sizeof f->dest, "%s/blobs/sha256-%s", j->root, d + 7);
    pull_fmt(f->tmp, sizeof f->tmp, "%s-partial", f->dest);
    pull_fmt(f->lock, sizeof f->lock, "%s-partial.lock", f->dest);
    pull_fmt(f->sha256, sizeof f->sha256, "%s", d + 7);
    pull_fmt(f->digest, sizeof f->digest, "%s", d);
    pull_fmt(f->name, sizeof f->name, "blob %s", d);
    pull_fmt(f->label, sizeof f->label, "pulling %.12s", d + 7);
    f->size = (uint64_t)size;
    *is_model = mt != NULL && strcmp(mt, MODEL_MT) == 0;
    return SHIMMY_OK;
}

static shimmy_err parse_manifest(oll_job *j, char *err, size_t errlen) {
    json_t *m = json_loads(buf_str(&j->manifest), 0, NULL);
    const json_t *layers = json_object_get(m, "layers"), *config = json_object_get(m, "config");
    shimmy_err e = SHIMMY_OK;
    bool model = false;
    if (!json_is_array(layers))
        e = err_set(err, errlen, ERR_IO, "%s sent a manifest without layers for %s/%s:%s",
                    j->ref.host, j->ref.ns, j->ref.name, j->ref.tag);
    if (e == SHIMMY_OK && json_is_object(config))
        e = add_blob(j, config, &model, err, errlen);
    for (size_t i = 0; e == SHIMMY_OK && i < json_array_size(layers); i++) {
        e = add_blob(j, json_array_get(layers, i), &model, err, errlen);
        if (model && j->model_digest == NULL)
            j->model_digest = j->files[j->n - 1].digest;
    }
    if (e == SHIMMY_OK && j->model_digest == NULL)
        e = err_set(err, errlen, ERR_BAD_PARAM, "%s/%s:%s on %s has no GGUF model layer (%s)",
                    j->ref.ns, j->ref.name, j->ref.tag, j->ref.host, MODEL_MT);
    json_decref(m);
    return e;
}

static shimmy_err run_job(pull_ctx *c, oll_job *j, const char *ref, pull_result *out, char *err,
                          size_t errlen) {
    char path[4700];
    uint64_t need = 0;
    shimmy_err e = parse_ref(ref, &j->ref, err, errlen);
    if (e != SHIMMY_OK)
        return e;
    if (!disc_ollama_dir(j->root, sizeof j->root))
        return err_set(err, errlen, ERR_IO,
                       "no HOME or OLLAMA_MODELS: nowhere to put the "
                       "Ollama store");
    pull_fmt(j->base, sizeof j->base, "%s://%s/v2/%s/%s", c->o->insecure ? "http" : "https",
             j->ref.host, j->ref.ns, j->ref.name);
    if ((e = get_manifest(c, j, err, errlen)) || (e = parse_manifest(j, err, errlen)))
        return e;
    for (int i = 0; i < j->n; i++) {
        need += pull_file_missing(&j->files[i]);
        out->bytes += j->files[i].size;
    }
    if (!pull_mkparents(j->files[0].dest))
        return err_set(err, errlen, ERR_IO, "cannot create %s/blobs: %s", j->root, strerror(errno));
    if ((e = pull_check_space(j->root, need, err, errlen)) != SHIMMY_OK)
        return e;
    for (int i = 0; i < j->n; i++)
        if ((e = pull_fetch(c, &j->files[i], err, errlen)) != SHIMMY_OK)
            return e;
    pull_say(c, "writing manifest", NULL, 0, 0);
    pull_fmt(path, sizeof path, "%s/manifests/%s/%s/%s/%s", j->root, j->ref.host, j->ref.ns,
             j->ref.name, j->ref.tag);
    if ((e = pull_write_atomic(path, buf_str(&j->manifest), j->manifest.len, err, errlen)))
        return e;
    served_name(&j->ref, out->name, sizeof out->name);
    pull_fmt(out->store, sizeof out->store, "ollama");
    pull_fmt(out->file, sizeof out->file, "%s/%s/%s:%s", j->ref.host, j->ref.ns, j->ref.name,
             j->ref.tag);
    out->n_files = j->n;
    const char *paths[1] = {path};
    return pull_ledger_add(out->name, ref, "ollama", j->root, paths, 1, err, errlen);
}

shimmy_err pull_ollama(pull_ctx *c, const char *ref, pull_result *out, char *err, size_t errlen) {
    oll_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    buf_init(&j->manifest, 4u << 20);
    shimmy_err e = run_job(c, j, ref, out, err, errlen);
    buf_free(&j->manifest);
    free(j);
    return e;
}

/* ---- removal ---- */

/* Whether a manifest under dir (recursively) names digest. */
static bool digest_used(const char *dir, const char *digest, int depth) {
    bool found = false;
    struct dirent **list;
    int n = scandir(dir, &list, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        char p[4096];
        struct stat st;
        if (!found && list[i]->d_name[0] != '.' &&
            pull_fmt(p, sizeof p, "%s/%s", dir, list[i]->d_name) < (int)sizeof p &&
            stat(p, &st) == 0) {
            if (S_ISDIR(st.st_mode) && depth < LIM_SCAN_DEPTH)
                found = digest_used(p, digest, depth + 1);
            else if (S_ISREG(st.st_mode) && st.st_size < (4 << 20)) {
                json_t *m = json_load_file(p, 0, NULL);
                char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;
                found = text != NULL && strstr(text, digest) != NULL;
                free(text);
                json_decref(m);
            }
        }
        free(list[i]);
    }
    if (n >= 0)
        free(list);
    return found;
}

shimmy_err pull_ollama_remove(const char *root, const char *const *paths, int n, char *err,
                              size_t errlen) {
    char manifests[4200];
    pull_fmt(manifests, sizeof manifests, "%s/manifests", root);
    for (int i = 0; i < n; i++) {
        if (strncmp(paths[i], manifests, strlen(manifests)) != 0)
            return err_set(err, errlen, ERR_IO, "the ledger names %s, outside %s", paths[i],
                           manifests);
        json_t *m = json_load_file(paths[i], 0, NULL);
        if (unlink(paths[i]) != 0 && errno != ENOENT) {
            json_decref(m);
            return err_set(err, errlen, ERR_IO, "cannot remove %s: %s", paths[i], strerror(errno));
        }
        const json_t *layers = json_object_get(m, "layers");
        for (size_t k = 0; k <= json_array_size(layers); k++) {
            const json_t *l = k < json_array_size(layers) ? json_array_get(layers, k)
                                                          : json_object_get(m, "config");
            const char *d = json_string_value(json_object_get(l, "digest"));
            char blob[4200];
            if (digest_ok(d) && !digest_used(manifests, d, 0) &&
                pull_fmt(blob, sizeof blob, "%s/blobs/sha256-%s", root, d + 7) < (int)sizeof blob)
                unlink(blob);
        }
        json_decref(m);
        /* empty NAME, NAMESPACE and HOST folders go too */
        char p[4096];
        pull_fmt(p, sizeof p, "%s", paths[i]);
        for (int up = 0; up < 3; up++) {
            char *s = strrchr(p, '/');
            if (s == NULL)
                break;
            *s = '\0';
            if (strcmp(p, manifests) == 0 || rmdir(p) != 0)
                break;
        }
    }
    return SHIMMY_OK;
}
