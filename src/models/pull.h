/* models/pull: gets models onto the machine, into the stores discovery scans (models/discover.h),
 * laid out as their own tools lay them out, so that every tool sees them:
 *   - Hugging Face (hf.co/ORG/REPO[:QUANT], ORG/REPO/FILE.gguf): the hub's HTTP API
 *     (/api/models/ORG/REPO/revision/main for the file list and commit, /ORG/REPO/resolve/REV/FILE
 *     for each file, redirects followed; X-Repo-Commit, X-Linked-Etag = the sha256 of an LFS file,
 *     X-Linked-Size; HF_TOKEN or ~/.cache/huggingface/token as a Bearer token; HF_ENDPOINT for a
 *     mirror; HF_HUB_OFFLINE=1 refuses) into the hub cache: models--ORG--REPO/blobs/SHA256,
 *     snapshots/COMMIT/FILE symlinks, refs/main. Every part of a split model and the repository's
 *     projector (mmproj*.gguf) come along.
 *   - Ollama registries (NAME[:TAG], NS/NAME[:TAG], HOST[:PORT]/NS/NAME[:TAG]): the registry
 *     protocol (GET /v2/NS/NAME/manifests/TAG, then /v2/NS/NAME/blobs/DIGEST) into Ollama's store:
 *     blobs/sha256-HEX, manifests/HOST/NS/NAME/TAG. https unless insecure.
 *
 * Every file is written to a temporary file beside its target and renamed into place only after
 * its sha256 and size match; an interrupted download keeps the temporary file and the next pull
 * resumes it with a Range request; a mismatch deletes it. Free space is checked against the bytes
 * still to fetch before any is fetched (SHIMMY_PULL_FREE_BYTES pretends a smaller disk, for
 * tests), and a write that fails (disk full, file size limit) deletes the temporary file. Two
 * pulls of one file take turns on a lock file: the second finds the file in place. Files already
 * in the stores are never rewritten, so a model being served is not disturbed.
 *
 * What shimmy pulled is written down in a ledger ($XDG_DATA_HOME/shimmy/pulled.jsonl, else
 * ~/.local/share/shimmy/pulled.jsonl); pull_remove removes only models listed there.
 *
 * Thread-safety: pull_model and pull_remove may run in several threads and processes at once
 * (files are locked); progress is called in the calling thread. */
#ifndef SHIMMY_PULL_H
#define SHIMMY_PULL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* One step of a pull, in Ollama's /api/pull terms. Everything borrowed for the call. */
typedef struct pull_progress {
    const char *status; /* "pulling manifest", "pulling FILE|DIGEST12", "verifying sha256
                         * digest", "writing manifest", "success", or a note ("using FILE") */
    const char *digest; /* "sha256:HEX" of the file being fetched, NULL for other steps */
    uint64_t total;     /* bytes of that file, 0 when not a file step */
    uint64_t completed; /* bytes of it on disk so far */
    double rate;        /* bytes per second over this run of the transfer, 0 = unknown */
} pull_progress;

/* Called in the pulling thread at each step and about every 200 ms during a transfer. */
typedef void (*pull_progress_fn)(void *ctx, const pull_progress *p);

typedef struct pull_options {
    bool insecure;             /* Ollama registries: plain HTTP (a private registry) */
    pull_progress_fn progress; /* NULL = none */
    void *ctx;
    volatile sig_atomic_t *abort; /* non-NULL: the pull stops (ERR_CANCELLED) soon after *abort
                                   * turns non-zero; the temporary file stays, for a resume */
} pull_options;

typedef struct pull_result {
    char name[256];   /* the name shimmy serves it under (as `shimmy list` shows it) */
    char store[16];   /* "hf" or "ollama" */
    char file[1024];  /* the model file chosen (HF: the first part), or the Ollama model */
    int n_files;      /* files in place (parts, projector, Ollama layers) */
    uint64_t bytes;   /* their total size */
    uint64_t fetched; /* bytes fetched over the network by this pull */
} pull_result;

/* Pulls ref (forms above) into its store and records it in the ledger. Errors, each with the
 * reason in err: ERR_BAD_PARAM (a reference that is none of the forms, a quantisation the
 * repository lacks, with the ones it has), ERR_MODEL_NOT_FOUND (no such repository, file, model
 * or tag; a repository without GGUF files), ERR_UNAUTHORIZED (a gated or private repository
 * without a valid token, a registry that wants a login), ERR_IO (network, HF_HUB_OFFLINE, disk
 * space, checksum mismatch: the message says which), ERR_CANCELLED. Borrows ref and o. */
shimmy_err pull_model(const char *ref, const pull_options *o, pull_result *out, char *err,
                      size_t errlen);

/* Removes a model shimmy pulled, named by its served name or the reference it was pulled by
 * (case-insensitive): its snapshot links or manifest, and the blobs nothing else in the store
 * uses. Writes the served name into removed (may be NULL). Errors: ERR_MODEL_NOT_FOUND (shimmy
 * did not pull it: nothing is touched), ERR_IO. */
shimmy_err pull_remove(const char *name, char *removed, size_t removed_len, char *err,
                       size_t errlen);

/* What kind of reference ref is: "hf", "ollama", or NULL when it is neither. */
const char *pull_ref_kind(const char *ref);

#endif
