/* models/pull_internal: what pull.c (the HTTP transfers, verified and resumable file downloads,
 * the ledger) shares with the two protocols, pull_hf.c and pull_ollama.c. Not for other
 * modules. */
#ifndef SHIMMY_PULL_INTERNAL_H
#define SHIMMY_PULL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "models/pull.h"

/* One pull in progress. */
typedef struct pull_ctx {
    const pull_options *o; /* borrowed */
    uint64_t fetched;      /* bytes received into files by this pull */
} pull_ctx;

/* The response headers a pull reads (of the last response when redirects were followed). */
typedef struct pull_headers {
    char repo_commit[128];   /* X-Repo-Commit */
    char linked_etag[160];   /* X-Linked-Etag, quotes and W/ removed */
    char etag[160];          /* ETag, same */
    uint64_t linked_size;    /* X-Linked-Size, 0 = absent */
    uint64_t content_length; /* Content-Length, 0 = absent */
    char error_code[64];     /* X-Error-Code (the hub's: GatedRepo, RepositoryNotFound, ...) */
    char error_message[512]; /* X-Error-Message */
    char content_range[128]; /* Content-Range */
    char location[2048];     /* Location (with follow off) */
} pull_headers;

/* A metadata request: method "GET" or "HEAD" to url, redirects followed when follow, with the
 * Bearer token (may be NULL) and Accept header (may be NULL); the body (at most 16 MiB) appended
 * to body (may be NULL for HEAD). Errors: ERR_IO (cannot connect, with libcurl's words),
 * ERR_CANCELLED. The HTTP status is the caller's to judge. */
shimmy_err pull_http(pull_ctx *c, const char *method, const char *url, bool follow,
                     const char *bearer, const char *accept, buf *body, pull_headers *h,
                     long *status, char *err, size_t errlen);

/* One file to fetch into a store. */
typedef struct pull_file {
    char url[4096];     /* GET; redirects followed */
    const char *bearer; /* Authorization: Bearer, or NULL */
    char dest[4096];    /* final path */
    char tmp[4096];     /* temporary file beside it (kept when a transfer breaks: resume) */
    char lock[4096];    /* lock file taken while the file is fetched */
    char sha256[65];    /* expected sha256 hex; "" = unknown (then not verified) */
    uint64_t size;      /* expected bytes; 0 = unknown */
    char name[600];     /* the file as users know it (HF: its name; Ollama: its digest) */
    char label[700];    /* the progress status: "pulling FILE" */
    char digest[80];    /* the progress digest: "sha256:HEX", or "" */
} pull_file;

/* Bytes of f still to fetch (size minus what its temporary file holds; 0 when in place). */
uint64_t pull_file_missing(const pull_file *f);

/* Fails with ERR_IO "not enough disk space" when dir's file system has fewer than need bytes
 * free (SHIMMY_PULL_FREE_BYTES caps the free bytes, for tests). */
shimmy_err pull_check_space(const char *dir, uint64_t need, char *err, size_t errlen);

/* Fetches f into f->dest unless it is there already: lock, resume the temporary file with a
 * Range request, verify sha256 and size, rename. Errors: ERR_IO (network: the temporary file is
 * kept; disk full, checksum or size mismatch: it is deleted), ERR_UNAUTHORIZED (401/403, with
 * the server's reason), ERR_MODEL_NOT_FOUND (404), ERR_CANCELLED (temporary file kept). */
shimmy_err pull_fetch(pull_ctx *c, pull_file *f, char *err, size_t errlen);

/* snprintf for the paths and names pulls put together: callers check the result (>= outlen:
 * cut) where a cut matters, as with snprintf. */
int pull_fmt(char *out, size_t outlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Reports one step (digest may be NULL). */
void pull_say(pull_ctx *c, const char *status, const char *digest, uint64_t total,
              uint64_t completed);

/* mkdir -p for the folder that will hold path (its parent). Returns false on failure. */
bool pull_mkparents(const char *path);
/* Writes data to path through a temporary file and rename. Errors: ERR_IO. */
shimmy_err pull_write_atomic(const char *path, const char *data, size_t len, char *err,
                             size_t errlen);
/* Makes path a symlink to target, replacing what is there atomically. Errors: ERR_IO. */
shimmy_err pull_symlink(const char *target, const char *path, char *err, size_t errlen);

/* Adds a record to the ledger: the served name, the reference, the store ("hf"/"ollama"), the
 * store's folder and the files that make the model visible there (snapshot links, manifest).
 * Errors: ERR_IO. */
shimmy_err pull_ledger_add(const char *name, const char *ref, const char *store, const char *root,
                           const char *const *paths, int n_paths, char *err, size_t errlen);

/* The two protocols. ref without its "hf.co/" prefix for HF. */
shimmy_err pull_hf(pull_ctx *c, const char *ref, pull_result *out, char *err, size_t errlen);
shimmy_err pull_ollama(pull_ctx *c, const char *ref, pull_result *out, char *err, size_t errlen);
/* Removes what a ledger record lists and the blobs nothing else uses. */
shimmy_err pull_hf_remove(const char *root, const char *const *paths, int n, char *err,
                          size_t errlen);
shimmy_err pull_ollama_remove(const char *root, const char *const *paths, int n, char *err,
                              size_t errlen);

#endif
