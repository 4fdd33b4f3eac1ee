/* models/registry: the set of models shimmy serves, by name (and alias), and the ones loaded
 * now. Knows names, paths and metadata (from discovery); loads a model through the engine on
 * first use, once, even when several requests ask at the same moment. A model in use (acquired
 * and not yet released) is never unloaded. Past the most loaded models (registry_set_max_loaded,
 * default LIM_DEFAULT_MAX_LOADED) the least recently used idle model is unloaded; each model
 * also unloads after its keep-alive (Ollama's keep_alive: a duration, 0 = after the request,
 * negative = never), checked by a background thread four times a second.
 *
 * Thread-safety: all functions are safe to call from any thread. */
#ifndef SHIMMY_REGISTRY_H
#define SHIMMY_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "engine/engine.h"
#include "models/discover.h"
#include "models/gguf_meta.h"

typedef struct registry registry;

/* What discovery found for a model is its model_rec (models/discover.h), shared by reference;
 * what the registry knows of its load state is a model_status, copied (a few dozen bytes). */
typedef struct model_status {
    bool loaded;         /* in memory now */
    bool loading;        /* a load is under way now */
    int uses;            /* requests holding it now */
    float load_progress; /* of that load, 0..1 (llama.cpp's count of tensors read) */
    int64_t expires_at;  /* unix seconds when keep_alive unloads it, 0 = never */
    uint64_t loads;      /* successful loads so far */
    int64_t load_ns;     /* how long the last successful load took, ns; 0 = none yet */
} model_status;

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

/* Adds the models shimmy serves, in this order: each of model_paths (source "cli"; an explicit
 * path that is not a usable model is an error, with the reason in err; the same file given twice
 * is added once), then ./models, then the folders in model_dirs, then those in the environment
 * variable SHIMMY_MODEL_PATHS (source "dir"; lists separated by ';' or ':'; non-models and name
 * clashes are skipped with a warning, files already added are skipped). model_dirs may be NULL.
 * Borrows everything. Errors: those of registry_add for the first bad explicit path. */
shimmy_err registry_add_sources(registry *r, char *const *model_paths, int n_paths,
                                const char *model_dirs, char *err, size_t errlen);

/* Runs discovery (models/discover.h) with *c and makes the registry hold what it found;
 * remembers c (deep copy) for registry_rescan. The first call's errors are disc_run's.
 * ch (may be NULL) receives what changed; free it with registry_changes_free. */
typedef struct registry_changes {
    char **added; /* owned names */
    size_t n_added;
    char **removed; /* owned names */
    size_t n_removed;
    disc_note *notes; /* owned: files skipped and names changed, with why */
    size_t n_notes;
    size_t total; /* models served after the scan */
} registry_changes;
shimmy_err registry_discover(registry *r, const disc_config *c, registry_changes *ch, char *err,
                             size_t errlen);
/* Unloads failed models (engine_model_info.failed: no more tries until a rescan), then runs
 * discovery again with the remembered configuration: new files are added, vanished ones that
 * are not loaded are removed (a loaded one stays until it is unloaded). */
shimmy_err registry_rescan(registry *r, registry_changes *ch, char *err, size_t errlen);
void registry_changes_free(registry_changes *ch);

/* Most models loaded at once (>= 1; default LIM_DEFAULT_MAX_LOADED). */
void registry_set_max_loaded(registry *r, int n);
/* Memory budget: loading a model whose file would take the loaded files past bytes first unloads
 * idle models, least recently used first (0 = no budget, the default). */
void registry_set_memory_budget(registry *r, uint64_t bytes);
/* Keep-alive used when a release does not give one: ns, < 0 = forever (the default). */
void registry_set_keep_alive(registry *r, int64_t keep_ns);

/* Keep-alive for the models named pattern (a served name or an fnmatch glob; --keep-alive
 * MODEL=DUR, a --config section's keep-alive): used instead of registry_set_keep_alive's when a
 * release gives none; the last matching call wins. Copies pattern. Errors: ERR_NOMEM,
 * ERR_BAD_PARAM past LIM_MODELS of them. */
shimmy_err registry_set_model_keep_alive(registry *r, const char *pattern, int64_t keep_ns);

/* Another name for the model served as model (--alias MODEL=NAME, a --config section's alias
 * key): every lookup below (find, lookup, acquire, unload, template) resolves it, after the
 * served names (a served model of the same name wins). Copies both. Errors: ERR_BAD_PARAM when
 * alias equals model or is already another model's alias, or past LIM_MODELS aliases;
 * ERR_NOMEM; each with a message in err. */
shimmy_err registry_add_alias(registry *r, const char *alias, const char *model, char *err,
                              size_t errlen);
size_t registry_alias_count(registry *r);
/* Copies alias i (in the order added) and the name it stands for. Returns false when i is out
 * of range. */
bool registry_alias_get(registry *r, size_t i, char *alias, size_t alias_len, char *model,
                        size_t model_len);

size_t registry_count(registry *r);
/* Entry i (0-based, sorted by name): *rec (rec may be NULL) is a reference to its record
 * (returns owned: model_rec_unref it; NULL when i is out of range), *st (may be NULL) its load
 * state now. Returns false when i is out of range. */
bool registry_get(registry *r, size_t i, const model_rec **rec, model_status *st);
/* Like registry_get, and when the model is loaded also fills *info (else info is untouched);
 * never loads anything. */
bool registry_info(registry *r, size_t i, const model_rec **rec, model_status *st,
                   engine_model_info *info);
/* Finds by name or alias (a trailing ":latest" may be given or left out), as registry_get.
 * Returns false (and *rec = NULL) when unknown. */
bool registry_find(registry *r, const char *name, const model_rec **rec, model_status *st);

/* Model folders discovery found in a format this build cannot serve (MLX): never in
 * registry_count/get/find, which list what is served. Sorted by name; replaced by each scan. */
size_t registry_unserved_count(registry *r);
/* Copies unserved entry i (0-based) into *out. Returns false when i is out of range. */
bool registry_get_unserved(registry *r, size_t i, disc_unserved *out);
/* Whether name can be served, without loading anything: SHIMMY_OK; ERR_UNSUPPORTED when it names
 * an unserved folder ("model 'NAME' is an MLX model (PATH): ..." in err); ERR_MODEL_NOT_FOUND. */
shimmy_err registry_lookup(registry *r, const char *name, char *err, size_t errlen);

/* Returns the loaded model for name, loading it on first use; the caller must registry_release
 * it. Errors: ERR_MODEL_NOT_FOUND, ERR_UNSUPPORTED (an MLX model: see registry_lookup),
 * ERR_MODEL_LOAD (message from the engine). */
shimmy_err registry_acquire(registry *r, const char *name, engine_model **out, char *err,
                            size_t errlen);
/* registry_acquire for a request that asks for a context of n_ctx tokens per slot (Ollama's
 * options.num_ctx; 0 = any): a model loaded with another context is reloaded with n_ctx once
 * nobody uses it (the caller waits for the running requests; requests that come meanwhile wait
 * behind it), and a model not loaded is loaded with it. Requests without num_ctx use the model
 * as loaded. Errors: those of registry_acquire, and ERR_BAD_PARAM when n_ctx is above
 * registry_set_max_ctx's cap (the message gives both numbers). */
shimmy_err registry_acquire_ctx(registry *r, const char *name, int n_ctx, engine_model **out,
                                char *err, size_t errlen);
/* Largest num_ctx registry_acquire_ctx accepts (--max-ctx); 0 = no cap (the default). */
void registry_set_max_ctx(registry *r, int n);
void registry_release(registry *r, engine_model *m);
#define REGISTRY_KEEP_DEFAULT INT64_MIN
/* Releases m and sets its keep-alive: keep_ns < 0 = stay loaded, 0 = unload now when nobody else
 * holds it, > 0 = unload that long after the last release; REGISTRY_KEEP_DEFAULT = as before. */
void registry_release_keep(registry *r, engine_model *m, int64_t keep_ns);
/* --pull-missing: an acquire of a name that is not here and reads as a model reference
 * (models/pull.h) pulls it (blocking the caller), rescans and acquires what was pulled; a pull
 * that fails is the acquire's error. Default off: unknown names are ERR_MODEL_NOT_FOUND. Set
 * before serving. */
void registry_set_pull_missing(registry *r, bool on);
/* How the message of an acquire that pulled, and failed, begins (the API keeps that message). */
#define REGISTRY_PULL_FAILED "--pull-missing: "
/* Unloads name now when nobody holds it, else as soon as the last holder releases it. Errors:
 * ERR_MODEL_NOT_FOUND. */
shimmy_err registry_unload(registry *r, const char *name);

/* Where the chat template of a model comes from, in the order the engine picks it. */
typedef enum {
    REGISTRY_TMPL_FILE,    /* --chat-template-file (per model or global): Jinja text */
    REGISTRY_TMPL_BUILTIN, /* --template NAME: one of llama.cpp's built-in names */
    REGISTRY_TMPL_GGUF,    /* the model's tokenizer.chat_template */
    REGISTRY_TMPL_CHATML   /* none: the ChatML fallback (chat only) */
} registry_tmpl_from;
/* The chat template the model name is rendered with, without loading it: returns owned *source
 * (the Jinja text; the name for REGISTRY_TMPL_BUILTIN; llama.cpp's ChatML text for
 * REGISTRY_TMPL_CHATML) and where it came from. Reads the GGUF file's metadata. Errors:
 * ERR_MODEL_NOT_FOUND, ERR_NOMEM. */
shimmy_err registry_template_source(registry *r, const char *name, char **source,
                                    registry_tmpl_from *from);
/* Whether registry_template_source would find a template other than the ChatML fallback, from
 * the options and the metadata read at discovery (no file read: a request path may ask). False
 * for an unknown name. */
bool registry_has_template(registry *r, const char *name);

/* Loads name now (used at start-up for models given with --model). */
shimmy_err registry_preload(registry *r, const char *name, char *err, size_t errlen);

#endif
