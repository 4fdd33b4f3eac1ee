/* models/pull_hf: the Hugging Face side of shimmy pull (see pull.h): the reference forms, the
 * hub's file list, which GGUF file a repository gives, and the hub cache layout. */
#include <ctype.h>
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
#include "models/names.h"
#include "models/pull_internal.h"

/* The quantisations a repository is asked for, in order, when the reference names none: Q4_K_M
 * as Ollama and llama.cpp's -hf take, then the other 4-bit ones (smallest first), then more bits
 * (better, larger), then fewer (smaller, worse), then the unquantised ones. */
static const char *const quant_order[] = {
    "Q4_K_M", "Q4_K_S",  "IQ4_XS", "Q4_0",  "IQ4_NL", "Q4_1",   "Q5_K_M", "Q5_K_S",
    "Q5_0",   "Q5_1",    "Q6_K",   "Q8_0",  "Q3_K_L", "Q3_K_M", "IQ3_M",  "Q3_K_S",
    "IQ3_XS", "IQ3_XXS", "Q2_K",   "IQ2_M", "BF16",   "F16",    "F32",
};

typedef struct hf_ref {
    char org[128], repo[128];
    char quant[64];  /* "" = choose */
    char file[1024]; /* "" = choose */
} hf_ref;

typedef struct hf_repo {
    char commit[128];
    char **files; /* owned, sorted */
    size_t n;
} hf_repo;

static void repo_free(hf_repo *r) {
    for (size_t i = 0; i < r->n; i++)
        free(r->files[i]);
    free(r->files);
}

/* ---- environment ---- */

static void endpoint(char *out, size_t outlen) {
    const char *e = getenv("HF_ENDPOINT");
    pull_fmt(out, outlen, "%s", e != NULL && e[0] != '\0' ? e : "https://huggingface.co");
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '/')
        out[--n] = '\0';
}

static void trim(char *s) {
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    size_t k = strspn(s, " \t\r\n");
    memmove(s, s + k, strlen(s + k) + 1);
}

/* HF_TOKEN, else the token file huggingface_hub writes ($HF_TOKEN_PATH, else $HF_HOME/token,
 * else ~/.cache/huggingface/token). *where names where it came from. */
static void token(char *out, size_t outlen, const char **where) {
    const char *t = getenv("HF_TOKEN");
    char path[4096] = "";
    out[0] = '\0';
    *where = NULL;
    if (t != NULL && t[0] != '\0') {
        pull_fmt(out, outlen, "%s", t);
        trim(out);
        *where = "HF_TOKEN";
        return;
    }
    const char *tp = getenv("HF_TOKEN_PATH"), *hh = getenv("HF_HOME"), *home = getenv("HOME");
    if (tp != NULL && tp[0] != '\0')
        pull_fmt(path, sizeof path, "%s", tp);
    else if (hh != NULL && hh[0] != '\0')
        pull_fmt(path, sizeof path, "%s/token", hh);
    else if (home != NULL && home[0] != '\0')
        pull_fmt(path, sizeof path, "%s/.cache/huggingface/token", home);
    FILE *f = path[0] ? fopen(path, "r") : NULL;
    if (f == NULL)
        return;
    if (fgets(out, (int)outlen, f) == NULL)
        out[0] = '\0';
    fclose(f);
    trim(out);
    *where = out[0] ? "the token file" : NULL;
}

/* ---- the reference ---- */

static bool name_ok(const char *s) {
    return s[0] != '\0' && s[0] != '.' &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
               strlen(s);
}

/* "ORG/REPO", "ORG/REPO:QUANT" or "ORG/REPO/FILE.gguf". */
static shimmy_err parse_ref(const char *rest, hf_ref *r, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    size_t o = strcspn(rest, "/");
    if (rest[o] != '/' || o >= sizeof r->org)
        goto bad;
    memcpy(r->org, rest, o);
    const char *p = rest + o + 1;
    size_t n = strcspn(p, "/:");
    if (n >= sizeof r->repo)
        goto bad;
    memcpy(r->repo, p, n);
    if (p[n] == ':' && pull_fmt(r->quant, sizeof r->quant, "%s", p + n + 1) >= (int)sizeof r->quant)
        goto bad;
    if (p[n] == '/' && pull_fmt(r->file, sizeof r->file, "%s", p + n + 1) >= (int)sizeof r->file)
        goto bad;
    if (!name_ok(r->org) || !name_ok(r->repo) || (p[n] == ':' && !name_ok(r->quant)) ||
        (p[n] == '/' &&
         (strstr(r->file, "..") != NULL || r->file[0] == '/' || !names_is_gguf(r->file))))
        goto bad;
    return SHIMMY_OK;
bad:
    return err_set(err, errlen, ERR_BAD_PARAM,
                   "'%s' is not a Hugging Face reference: use "
                   "hf.co/ORG/REPO, hf.co/ORG/REPO:QUANT or ORG/REPO/FILE.gguf",
                   rest);
}

/* ---- the file list ---- */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static shimmy_err parse_listing(const char *text, hf_repo *r, char *err, size_t errlen) {
    json_t *j = json_loads(text, 0, NULL);
    const char *sha = json_string_value(json_object_get(j, "sha"));
    const json_t *sib = json_object_get(j, "siblings");
    shimmy_err e = SHIMMY_OK;
    if (sha == NULL || !json_is_array(sib) || !name_ok(sha)) {
        e = err_set(err, errlen, ERR_IO, "the hub's answer has no commit and file list");
        goto out;
    }
    pull_fmt(r->commit, sizeof r->commit, "%s", sha);
    r->files = calloc(json_array_size(sib) + 1, sizeof *r->files);
    for (size_t i = 0; r->files != NULL && i < json_array_size(sib); i++) {
        const char *f = json_string_value(json_object_get(json_array_get(sib, i), "rfilename"));
        if (f != NULL && (r->files[r->n] = strdup(f)) != NULL)
            r->n++;
    }
    if (r->files == NULL)
        e = err_set(err, errlen, ERR_NOMEM, "out of memory");
    else
        qsort(r->files, r->n, sizeof *r->files, cmp_str);
out:
    json_decref(j);
    return e;
}

/* The hub's error for a repository or file request, made into shimmy's. */
static shimmy_err hub_error(long status, const pull_headers *h, const hf_ref *ref, const char *ep,
                            char *err, size_t errlen) {
    char tok[512];
    const char *where;
    token(tok, sizeof tok, &where);
    const char *msg = h->error_message[0] ? h->error_message : "";
    if (strcmp(h->error_code, "GatedRepo") == 0 ||
        ((status == 401 || status == 403) && strcmp(h->error_code, "RepositoryNotFound") != 0)) {
        if (where == NULL)
            return err_set(err, errlen, ERR_UNAUTHORIZED,
                           "%s/%s is gated or private and no "
                           "token was sent: accept its terms on the hub, then set HF_TOKEN (or "
                           "log in with `hf auth login`) (the hub said: HTTP %ld %s)",
                           ref->org, ref->repo, status, msg);
        return err_set(err, errlen, ERR_UNAUTHORIZED,
                       "%s/%s is gated or private and the token "
                       "from %s has no access to it (the hub said: HTTP %ld %s)",
                       ref->org, ref->repo, where, status, msg);
    }
    if (status == 404 || strcmp(h->error_code, "RepositoryNotFound") == 0 ||
        strcmp(h->error_code, "EntryNotFound") == 0)
        return err_set(err, errlen, ERR_MODEL_NOT_FOUND, "%s/%s%s%s not found on %s%s", ref->org,
                       ref->repo, ref->file[0] ? "/" : "", ref->file, ep,
                       where == NULL ? " (a private repository needs HF_TOKEN)" : "");
    return err_set(err, errlen, ERR_IO, "%s answered HTTP %ld %s for %s/%s", ep, status, msg,
                   ref->org, ref->repo);
}

static shimmy_err list_repo(pull_ctx *c, const hf_ref *ref, const char *ep, const char *tok,
                            hf_repo *r, char *err, size_t errlen) {
    char url[1024];
    buf body;
    pull_headers h;
    long status;
    pull_fmt(url, sizeof url, "%s/api/models/%s/%s/revision/main", ep, ref->org, ref->repo);
    buf_init(&body, 16u << 20);
    pull_say(c, "pulling manifest", NULL, 0, 0);
    shimmy_err e =
        pull_http(c, "GET", url, true, tok, "application/json", &body, &h, &status, err, errlen);
    if (e == SHIMMY_OK && status != 200)
        e = hub_error(status, &h, ref, ep, err, errlen);
    if (e == SHIMMY_OK)
        e = parse_listing(buf_str(&body), r, err, errlen);
    buf_free(&body);
    return e;
}

/* ---- which files ---- */

/* Whether q appears in file as a word of its own (not inside IQ4_XS when q is Q4_XS). */
static bool has_quant(const char *file, const char *q) {
    size_t k = strlen(q);
    for (const char *p = file; (p = strcasestr(p, q)) != NULL; p++) {
        bool before = p == file || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
        bool after = !(isalnum((unsigned char)p[k]) || p[k] == '_');
        if (before && after)
            return true;
    }
    return false;
}

static bool is_projector(const char *file) {
    const char *b = strrchr(file, '/');
    return strcasestr(b ? b + 1 : file, "mmproj") != NULL;
}

/* A model file a reference may name: GGUF, no projector, the first part of a split. */
static bool is_candidate(const char *file) {
    int part, count;
    if (!names_is_gguf(file) || is_projector(file))
        return false;
    return !names_split_part(file, &part, &count) || part == 1;
}

static const char *pick_quant(const hf_repo *r, const char *q) {
    for (size_t i = 0; i < r->n; i++)
        if (is_candidate(r->files[i]) && has_quant(r->files[i], q))
            return r->files[i];
    return NULL;
}

static void list_candidates(const hf_repo *r, char *out, size_t outlen) {
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->n && len + 1 < outlen; i++)
        if (is_candidate(r->files[i])) {
            int n = pull_fmt(out + len, outlen - len, "%s%s", len ? ", " : "", r->files[i]);
            len += n > 0 ? (size_t)n : 0;
        }
    if (len >= outlen)
        pull_fmt(out + outlen - 5, 5, "...");
}

static bool in_repo(const hf_repo *r, const char *file) {
    return bsearch(&file, r->files, r->n, sizeof *r->files, cmp_str) != NULL;
}

/* The model file the reference names (its first part), with *why saying how it was chosen. */
static shimmy_err choose_model(const hf_repo *r, const hf_ref *ref, const char **file,
                               const char **why, char *err, size_t errlen) {
    char list[1500];
    *why = ref->file[0] ? "named" : ref->quant;
    if (ref->file[0] != '\0') {
        *file = in_repo(r, ref->file) ? ref->file : NULL;
        return *file ? SHIMMY_OK
                     : err_set(err, errlen, ERR_MODEL_NOT_FOUND,
                               "%s/%s has no file "
                               "%s at commit %s",
                               ref->org, ref->repo, ref->file, r->commit);
    }
    list_candidates(r, list, sizeof list);
    if (list[0] == '\0')
        return err_set(err, errlen, ERR_MODEL_NOT_FOUND,
                       "%s/%s has no GGUF model file (%zu "
                       "files, none a .gguf model)",
                       ref->org, ref->repo, r->n);
    if (ref->quant[0] != '\0') {
        *file = pick_quant(r, ref->quant);
        return *file ? SHIMMY_OK
                     : err_set(err, errlen, ERR_BAD_PARAM,
                               "%s/%s has no %s file; "
                               "its GGUF files: %s",
                               ref->org, ref->repo, ref->quant, list);
    }
    for (size_t i = 0; i < sizeof quant_order / sizeof quant_order[0]; i++)
        if ((*file = pick_quant(r, quant_order[i])) != NULL) {
            *why = quant_order[i];
            return SHIMMY_OK;
        }
    for (size_t i = 0; i < r->n; i++)
        if (is_candidate(r->files[i])) {
            *file = r->files[i];
            *why = "the only kind of GGUF file it has";
            return SHIMMY_OK;
        }
    return ERR_INTERNAL; /* list was not empty */
}

/* The repository's projector: an F16 one first, then BF16, F32, Q8_0, else the first. */
static const char *choose_projector(const hf_repo *r) {
    static const char *const pref[] = {"F16", "BF16", "F32", "Q8_0"};
    for (size_t k = 0; k < sizeof pref / sizeof pref[0]; k++)
        for (size_t i = 0; i < r->n; i++)
            if (names_is_gguf(r->files[i]) && is_projector(r->files[i]) &&
                has_quant(r->files[i], pref[k]))
                return r->files[i];
    for (size_t i = 0; i < r->n; i++)
        if (names_is_gguf(r->files[i]) && is_projector(r->files[i]))
            return r->files[i];
    return NULL;
}

/* Every file to fetch: the model's parts, then the projector. Entries borrow r's strings or are
 * written into names. */
static shimmy_err file_set(const hf_repo *r, const char *model, char names[][1024], int *n,
                           char *err, size_t errlen) {
    int part, count;
    *n = 0;
    if (names_split_part(model, &part, &count)) {
        if (count > LIM_PULL_FILES - 1)
            return err_set(err, errlen, ERR_BAD_PARAM,
                           "%s is split into %d parts, more than "
                           "the %d shimmy pulls",
                           model, count, LIM_PULL_FILES - 1);
        for (int k = 1; k <= count; k++) {
            if (!names_split_sibling(model, k, names[*n], sizeof names[0]) ||
                !in_repo(r, names[*n]))
                return err_set(err, errlen, ERR_MODEL_NOT_FOUND,
                               "part %d of %d of %s is not in "
                               "the repository",
                               k, count, model);
            (*n)++;
        }
    } else
        pull_fmt(names[(*n)++], sizeof names[0], "%s", model);
    const char *proj = is_projector(model) ? NULL : choose_projector(r);
    if (proj != NULL)
        pull_fmt(names[(*n)++], sizeof names[0], "%s", proj);
    return SHIMMY_OK;
}

/* ---- the cache ---- */

static bool is_sha256(const char *s) {
    return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

/* HEAD on the file's resolve URL: its blob name (the LFS sha256), size and commit. */
static shimmy_err describe_file(pull_ctx *c, const hf_ref *ref, const char *ep, const char *tok,
                                const hf_repo *r, const char *name, const char *repo_dir,
                                const char *locks, pull_file *f, char *err, size_t errlen) {
    pull_headers h;
    long status;
    memset(f, 0, sizeof *f);
    pull_fmt(f->url, sizeof f->url, "%s/%s/%s/resolve/%s/%s", ep, ref->org, ref->repo, r->commit,
             name);
    shimmy_err e = pull_http(c, "HEAD", f->url, false, tok, NULL, NULL, &h, &status, err, errlen);
    if (e != SHIMMY_OK)
        return e;
    if (status >= 400) {
        hf_ref one = *ref;
        pull_fmt(one.file, sizeof one.file, "%s", name);
        return hub_error(status, &h, &one, ep, err, errlen);
    }
    const char *etag = h.linked_etag[0] ? h.linked_etag : h.etag;
    if (etag[0] == '\0' || !name_ok(etag))
        return err_set(err, errlen, ERR_IO, "%s: the hub sent no usable ETag", f->url);
    if (is_sha256(etag))
        pull_fmt(f->sha256, sizeof f->sha256, "%s", etag);
    f->size = h.linked_size ? h.linked_size : h.content_length;
    f->bearer = tok;
    pull_fmt(f->dest, sizeof f->dest, "%s/blobs/%s", repo_dir, etag);
    pull_fmt(f->tmp, sizeof f->tmp, "%s.incomplete", f->dest);
    pull_fmt(f->lock, sizeof f->lock, "%s/%s.lock", locks, etag);
    pull_fmt(f->name, sizeof f->name, "%s", name);
    pull_fmt(f->label, sizeof f->label, "pulling %s", name);
    if (f->sha256[0] != '\0')
        pull_fmt(f->digest, sizeof f->digest, "sha256:%s", f->sha256);
    return SHIMMY_OK;
}

/* snapshots/COMMIT/NAME → ../../blobs/ETAG (one more ../ per folder in NAME). */
static shimmy_err link_file(const char *repo_dir, const char *commit, const char *name,
                            const pull_file *f, char *link, size_t linklen, char *err,
                            size_t errlen) {
    char target[4096] = "../../";
    size_t len = strlen(target);
    for (const char *s = name; *s && len + 3 < sizeof target; s++)
        if (*s == '/') {
            memcpy(target + len, "../", 4);
            len += 3;
        }
    pull_fmt(target + len, sizeof target - len, "blobs/%s", strrchr(f->dest, '/') + 1);
    if (pull_fmt(link, linklen, "%s/snapshots/%s/%s", repo_dir, commit, name) >= (int)linklen)
        return err_set(err, errlen, ERR_IO, "path too long: %s", name);
    return pull_symlink(target, link, err, errlen);
}

typedef struct hf_job {
    hf_ref ref;
    char ep[1024], tok[512], hub[4096], repo_dir[4096], locks[4096];
    hf_repo repo;
    char names[LIM_PULL_FILES][1024];
    pull_file files[LIM_PULL_FILES];
    int n;
} hf_job;

static shimmy_err fetch_all(pull_ctx *c, hf_job *j, pull_result *out, char *err, size_t errlen) {
    uint64_t need = 0;
    shimmy_err e;
    for (int i = 0; i < j->n; i++) {
        e = describe_file(c, &j->ref, j->ep, j->tok[0] ? j->tok : NULL, &j->repo, j->names[i],
                          j->repo_dir, j->locks, &j->files[i], err, errlen);
        if (e != SHIMMY_OK)
            return e;
        need += pull_file_missing(&j->files[i]);
        out->bytes += j->files[i].size;
    }
    if (!pull_mkparents(j->files[0].dest))
        return err_set(err, errlen, ERR_IO, "cannot create %s/blobs: %s", j->repo_dir,
                       strerror(errno));
    if ((e = pull_check_space(j->repo_dir, need, err, errlen)) != SHIMMY_OK)
        return e;
    for (int i = 0; i < j->n; i++)
        if ((e = pull_fetch(c, &j->files[i], err, errlen)) != SHIMMY_OK)
            return e;
    return SHIMMY_OK;
}

/* The links, refs/main, the ledger. */
static shimmy_err publish(pull_ctx *c, hf_job *j, const char *ref_text, pull_result *out, char *err,
                          size_t errlen) {
    char links[LIM_PULL_FILES][4096], path[4200], stem[256];
    const char *paths[LIM_PULL_FILES];
    shimmy_err e;
    for (int i = 0; i < j->n; i++) {
        e = link_file(j->repo_dir, j->repo.commit, j->names[i], &j->files[i], links[i],
                      sizeof links[i], err, errlen);
        if (e != SHIMMY_OK)
            return e;
        paths[i] = links[i];
    }
    pull_fmt(path, sizeof path, "%s/refs/main", j->repo_dir);
    e = pull_write_atomic(path, j->repo.commit, strlen(j->repo.commit), err, errlen);
    if (e != SHIMMY_OK)
        return e;
    names_from_path(j->names[0], stem, sizeof stem);
    pull_fmt(out->name, sizeof out->name, "%s/%s/%s", j->ref.org, j->ref.repo, stem);
    names_lower(out->name);
    pull_fmt(out->store, sizeof out->store, "hf");
    pull_fmt(out->file, sizeof out->file, "%s", j->names[0]);
    out->n_files = j->n;
    (void)c;
    return pull_ledger_add(out->name, ref_text, "hf", j->hub, paths, j->n, err, errlen);
}

static shimmy_err run_job(pull_ctx *c, hf_job *j, const char *rest, pull_result *out, char *err,
                          size_t errlen) {
    const char *where, *model, *why;
    char note[1400], ref_text[1100];
    shimmy_err e = parse_ref(rest, &j->ref, err, errlen);
    if (e != SHIMMY_OK)
        return e;
    const char *off = getenv("HF_HUB_OFFLINE");
    if (off != NULL && off[0] != '\0' && strcmp(off, "0") != 0)
        return err_set(err, errlen, ERR_IO,
                       "HF_HUB_OFFLINE=%s: shimmy pull does not use the "
                       "network (unset it to download %s/%s)",
                       off, j->ref.org, j->ref.repo);
    if (!disc_hf_hub_dir(j->hub, sizeof j->hub))
        return err_set(err, errlen, ERR_IO,
                       "no HOME, HF_HOME or HF_HUB_CACHE: nowhere to put "
                       "the hub cache");
    endpoint(j->ep, sizeof j->ep);
    token(j->tok, sizeof j->tok, &where);
    pull_fmt(j->repo_dir, sizeof j->repo_dir, "%s/models--%s--%s", j->hub, j->ref.org, j->ref.repo);
    pull_fmt(j->locks, sizeof j->locks, "%s/.locks/models--%s--%s", j->hub, j->ref.org,
             j->ref.repo);
    if ((e = list_repo(c, &j->ref, j->ep, j->tok[0] ? j->tok : NULL, &j->repo, err, errlen)) ||
        (e = choose_model(&j->repo, &j->ref, &model, &why, err, errlen)) ||
        (e = file_set(&j->repo, model, j->names, &j->n, err, errlen)))
        return e;
    const char *last = j->names[j->n - 1];
    bool proj = is_projector(last) && strcmp(last, model) != 0;
    int parts = proj ? j->n - 1 : j->n;
    char extra[1200] = "";
    if (parts > 1)
        pull_fmt(extra, sizeof extra, ", all %d parts", parts);
    if (proj)
        pull_fmt(extra + strlen(extra), sizeof extra - strlen(extra), ", projector %s", last);
    pull_fmt(note, sizeof note, "using %s (%s%s) at commit %.12s%s", model,
             strcmp(why, "named") == 0 || j->ref.quant[0] ? "" : "chosen: ", why, j->repo.commit,
             extra);
    pull_say(c, note, NULL, 0, 0);
    pull_fmt(ref_text, sizeof ref_text, "hf.co/%s", rest);
    if ((e = fetch_all(c, j, out, err, errlen)) != SHIMMY_OK)
        return e;
    return publish(c, j, ref_text, out, err, errlen);
}

shimmy_err pull_hf(pull_ctx *c, const char *rest, pull_result *out, char *err, size_t errlen) {
    hf_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    shimmy_err e = run_job(c, j, rest, out, err, errlen);
    repo_free(&j->repo);
    free(j);
    return e;
}

/* ---- removal ---- */

/* Whether any link under dir (recursively) resolves to real. */
static bool linked_from(const char *dir, const char *real, int depth) {
    char p[4096], r[4096];
    bool found = false;
    struct dirent **list;
    int n = scandir(dir, &list, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (!found && strcmp(list[i]->d_name, ".") != 0 && strcmp(list[i]->d_name, "..") != 0 &&
            pull_fmt(p, sizeof p, "%s/%s", dir, list[i]->d_name) < (int)sizeof p &&
            lstat(p, &st) == 0) {
            if (S_ISDIR(st.st_mode) && depth < LIM_SCAN_DEPTH)
                found = linked_from(p, real, depth + 1);
            else if (S_ISLNK(st.st_mode) && realpath(p, r) != NULL && strcmp(r, real) == 0)
                found = true;
        }
        free(list[i]);
    }
    if (n >= 0)
        free(list);
    return found;
}

/* Removes folders from path's parent up to stop while they are empty. */
static void prune_dirs(const char *path, const char *stop) {
    char p[4096];
    pull_fmt(p, sizeof p, "%s", path);
    char *s;
    while ((s = strrchr(p, '/')) != NULL) {
        *s = '\0';
        if (strcmp(p, stop) == 0 || strlen(p) <= strlen(stop) || rmdir(p) != 0)
            break;
    }
}

/* Removes a whole models--ORG--REPO folder once no snapshot is left in it. */
static void remove_tree(const char *dir) {
    struct dirent **list;
    int n = scandir(dir, &list, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        char p[4096];
        struct stat st;
        if (strcmp(list[i]->d_name, ".") != 0 && strcmp(list[i]->d_name, "..") != 0 &&
            pull_fmt(p, sizeof p, "%s/%s", dir, list[i]->d_name) < (int)sizeof p &&
            lstat(p, &st) == 0) {
            if (S_ISDIR(st.st_mode))
                remove_tree(p);
            else
                unlink(p);
        }
        free(list[i]);
    }
    if (n >= 0)
        free(list);
    rmdir(dir);
}

shimmy_err pull_hf_remove(const char *root, const char *const *paths, int n, char *err,
                          size_t errlen) {
    char repo_dir[4096] = "";
    for (int i = 0; i < n; i++) {
        char real[4096];
        const char *snap = strstr(paths[i], "/snapshots/");
        if (strncmp(paths[i], root, strlen(root)) != 0 || snap == NULL)
            return err_set(err, errlen, ERR_IO, "the ledger names %s, outside %s", paths[i], root);
        pull_fmt(repo_dir, sizeof repo_dir, "%.*s", (int)(snap - paths[i]), paths[i]);
        bool have_blob = realpath(paths[i], real) != NULL;
        if (unlink(paths[i]) != 0 && errno != ENOENT)
            return err_set(err, errlen, ERR_IO, "cannot remove %s: %s", paths[i], strerror(errno));
        char snaps[4200];
        pull_fmt(snaps, sizeof snaps, "%s/snapshots", repo_dir);
        if (have_blob && !linked_from(snaps, real, 0))
            unlink(real);
        prune_dirs(paths[i], snaps);
    }
    char snaps[4200];
    pull_fmt(snaps, sizeof snaps, "%s/snapshots", repo_dir);
    if (repo_dir[0] != '\0' && rmdir(snaps) == 0)
        remove_tree(repo_dir);
    return SHIMMY_OK;
}
