/* models/registry: the set of models shimmy serves, by name, and the ones loaded now.
 * Knows names, paths and metadata (from discovery); loads a model through the engine on first
 * use, once, even when several requests ask at the same moment. A model in use (acquired and not
 * yet released) is never unloaded.
 *
 * Thread-safety: all functions are safe to call from any thread. */
#ifndef SHIMMY_REGISTRY_H
#define SHIMMY_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "engine/engine.h"
#include "models/gguf_meta.h"

typedef struct registry registry;

typedef struct model_desc {
    char name[256];        /* served name: lowercased file stem (see models/names) */
    char path[4096];       /* GGUF file */
    char source[32];       /* "cli", "dir" */
    uint64_t size_bytes;   /* file size */
    gguf_meta meta;        /* metadata read without loading weights */
    bool loaded;           /* in memory now */
} model_desc;

/* Creates an empty registry; models are loaded with a copy of *defaults (path/name ignored).
 * Returns owned. */
registry *registry_new(const engine_options *defaults);
/* Unloads every model and frees the registry. Takes r. */
void registry_free(registry *r);

/* Adds the GGUF file at path under name (NULL = derived from the file name). Reads its metadata.
 * Errors: ERR_IO (unreadable), ERR_MODEL_LOAD (not a usable GGUF model, with the reason),
 * ERR_BAD_PARAM (duplicate name). */
shimmy_err registry_add(registry *r, const char *path, const char *name, const char *source,
                        char *err, size_t errlen);
/* Adds every *.gguf model file in dir (not recursive beyond one level of subfolders). Files that
 * are not models are skipped with a warning. Returns the number added. A missing dir adds 0. */
int registry_add_dir(registry *r, const char *dir, const char *source);

/* Adds the models shimmy serves, in this order: each of model_paths (source "cli"; an explicit
 * path that is not a usable model is an error, with the reason in err; the same file given twice
 * is added once), then ./models, then the folders in model_dirs, then those in the environment
 * variable SHIMMY_MODEL_PATHS (source "dir"; lists separated by ';' or ':'; non-models and name
 * clashes are skipped with a warning, files already added are skipped). model_dirs may be NULL.
 * Borrows everything. Errors: those of registry_add for the first bad explicit path. */
shimmy_err registry_add_sources(registry *r, char *const *model_paths, int n_paths,
                                const char *model_dirs, char *err, size_t errlen);

size_t registry_count(registry *r);
/* Copies entry i (0-based, sorted by name) into *out. Returns false when i is out of range. */
bool registry_get(registry *r, size_t i, model_desc *out);
/* Like registry_get, and when the model is loaded also fills *info (else info is untouched);
 * never loads anything. */
bool registry_info(registry *r, size_t i, model_desc *desc, engine_model_info *info);
/* Finds by name. Returns false when unknown. */
bool registry_find(registry *r, const char *name, model_desc *out);

/* Returns the loaded model for name, loading it on first use; the caller must registry_release
 * it. Errors: ERR_MODEL_NOT_FOUND, ERR_MODEL_LOAD (message from the engine). */
shimmy_err registry_acquire(registry *r, const char *name, engine_model **out, char *err,
                            size_t errlen);
void registry_release(registry *r, engine_model *m);

/* Loads name now (used at start-up for models given with --model). */
shimmy_err registry_preload(registry *r, const char *name, char *err, size_t errlen);

#endif
