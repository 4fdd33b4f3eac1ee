/* models/discover: finds every GGUF model already on the machine, without loading weights.
 *
 * Sources, in this order (the first source that finds a file names it; the same file reached
 * again through a symlink, a hard path or another store is skipped, except that every Ollama
 * manifest (tag) is a model of its own even when tags share a blob):
 *   1. the paths given with --model (source "cli"; a path that is not a usable model is an error)
 *   2. ./models, the --model-dirs folders, SHIMMY_MODEL_PATHS (';' or ':' separated) (source
 *      "dir"): .gguf files there and one level of subfolders, named by file stem
 *   3. SHIMMY_BASE_GGUF (source "env", with SHIMMY_LORA_GGUF as its adapter) and its folder
 *   4. the Hugging Face hub cache ($HF_HUB_CACHE, else $HF_HOME/hub, else
 *      ~/.cache/huggingface/hub): models--ORG--NAME/snapshots/REV/ (the revision refs/main names,
 *      else the newest), named "org/name/file-stem" (source "hf")
 *   5. Ollama's store ($OLLAMA_MODELS, else ~/.ollama/models, plus
 *      /usr/share/ollama/.ollama/models): manifests/REGISTRY/NAMESPACE/MODEL/TAG, the layer of
 *      media type application/vnd.ollama.image.model, named "model:tag" ("namespace/model:tag"
 *      when the namespace is not "library", "registry/namespace/model:tag" off ollama.com)
 *      (source "ollama"); its adapter layer is attached
 *   6. LM Studio (~/.lmstudio/models, ~/.cache/lm-studio/models): PUBLISHER/REPO/file.gguf,
 *      named "publisher/repo/file-stem" (source "lmstudio")
 *
 * MLX models (a folder holding config.json and at least one *.safetensors, and no .gguf at its
 * top level) are found too but are not servable by this build: an HF snapshot is named "org/name"
 * (models--ORG--NAME, when the snapshot served no GGUF), an LM Studio PUBLISHER/REPO folder
 * "publisher/repo", a subfolder of ./models or a --model-dirs folder by its own name (all
 * lowercased). They go into the result's unserved list, never into its models: they are listed
 * (shimmy list, shimmy discover) with why they are not served, and a request naming one fails with
 * ERR_UNSUPPORTED (models/registry.h).
 *
 * Files that are not models (LoRA adapters, projectors, vocab-only, non-GGUF, truncated, GGUF
 * v1) are never models: each broken one is reported once in the result's notes; each projector is
 * noted with the models it was paired with. A split model
 * (-00001-of-0000N.gguf) is one model loaded from its first part. An adapter (general.type =
 * adapter) beside a model that it names (general.base_model.0.name = the model's general.name)
 * or whose file stem begins with the model's stem is attached to that model. Name clashes get a
 * deterministic "@source" suffix (then "-2", "-3"...) and a note.
 *
 * Projectors (multimodal mmproj files: general.type = mmproj, or architecture clip) are paired
 * with models into model_rec.mmproj: --mmproj first; an Ollama model's projector layer
 * (application/vnd.ollama.image.projector); else the best projector beside the model (its own
 * folder; in an HF snapshot or an LM Studio repo also the snapshot's or repo's top folder; beside
 * a --model file, files named *mmproj*). Best: in the model's own folder, then a width that
 * matches (clip.*.projection_dim = the model's embedding length; a projector of general.type
 * mmproj that states another width never pairs), then the most words of the model's file name,
 * then the same quantization, then the nearest bits per weight, then the first by file name
 * (docs/MODELS.md). *
 * Bounded: folders deeper than LIM_SCAN_DEPTH, hidden folders, symlink loops (folders already
 * visited) and more than LIM_SCAN_ENTRIES directory entries are not followed.
 *
 * Thread-safety: disc_run touches only its result; it may run beside a live registry. */
#ifndef SHIMMY_DISCOVER_H
#define SHIMMY_DISCOVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/limits.h"
#include "models/gguf_meta.h"

/* One model as discovery describes it. A scan builds each record; once disc_run has returned
 * it, it never changes: the registry holds one reference per served model and hands out more
 * (registry_get/find/info), so a request copies a pointer, not the record. Every string is
 * owned by the record, never NULL, "" when absent. The load state is the registry's
 * (model_status in models/registry.h). Thread-safety: a published record may be read and its
 * references taken and dropped from any thread. */
typedef struct model_rec {
    const char *name;     /* served name (see the naming rules above), < LIM_MODEL_NAME bytes */
    const char *path;     /* GGUF file (first part of a split model) */
    const char *source;   /* "cli", "dir", "env", "hf", "ollama", "lmstudio" */
    uint64_t size_bytes;  /* file size, all parts of a split model */
    gguf_meta meta;       /* metadata read without loading weights (n_params of all parts) */
    int n_parts;          /* 1, or the part count of a split model */
    char digest[72];      /* Ollama: the model blob's sha256 hex; else a hex id of path, size
                           * and modification time (stable while the file is unchanged) */
    int64_t mtime;        /* file modification time, unix seconds */
    const char *adapter;  /* LoRA adapter applied to this model, "" = none */
    float adapter_scale;  /* its scale (1 = as trained) */
    const char *manifest; /* Ollama: the manifest file (template/system/params layers), "" */
    const char *mmproj;   /* multimodal projector (mmproj GGUF) paired with this model, "" =
                           * none: --mmproj, else found beside it (see docs/MODELS.md) */
    bool mmproj_vision;   /* that projector has an image encoder (clip.has_vision_encoder) */
    bool mmproj_audio;    /* that projector has an audio encoder (clip.has_audio_encoder) */
    const char *realpath; /* canonical path of path, for deduplication */
    atomic_int refs;      /* private: model_rec_ref / model_rec_unref */
} model_rec;

/* A new empty record (every string "", one reference: returns owned), or NULL (out of memory).
 * For discovery and tests; fill it with disc_describe. */
model_rec *model_rec_new(void);
/* One more reference to d (the caller owns it: model_rec_unref it). Returns d. Any thread. */
const model_rec *model_rec_ref(const model_rec *d);
/* Drops one reference (d may be NULL); the last one frees the record. Any thread. */
void model_rec_unref(const model_rec *d);

/* Something a scan wants the user to know: a file skipped (with why) or a renamed clash. */
typedef struct disc_note {
    char *path; /* owned */
    char *why;  /* owned */
} disc_note;

/* A model folder in a format this build finds but cannot serve (today: MLX). Never loaded. */
typedef struct disc_unserved {
    char name[LIM_MODEL_NAME]; /* the name a request would use (same naming rules as models) */
    char path[4096];           /* the folder */
    char source[32];           /* "dir", "hf", "lmstudio" */
    char format[16];           /* "mlx" */
    char arch[64];             /* config.json's model_type, "" when absent */
    int bits;                  /* config.json's quantization.bits, 0 when not quantized/absent */
    uint64_t size_bytes;       /* the *.safetensors files in the folder */
    char realpath[4096];       /* canonical path of the folder, for deduplication */
} disc_unserved;

typedef struct disc_adapter disc_adapter;     /* private */
typedef struct disc_projector disc_projector; /* private */

typedef struct disc_result {
    model_rec **models; /* owned array of owned references, in discovery order */
    size_t n, cap;
    disc_note *notes; /* owned array */
    size_t n_notes, cap_notes;
    disc_unserved *unserved; /* owned array: found, not servable by this build */
    size_t n_unserved, cap_unserved;
    /* private */
    disc_adapter *adapters; /* adapters seen, attached by disc_run at the end */
    size_t n_adapters, cap_adapters;
    disc_projector *projectors; /* projectors seen, paired by disc_run at the end */
    size_t n_projectors, cap_projectors;
    size_t entries; /* directory entries looked at, bounded by LIM_SCAN_ENTRIES */
} disc_result;

/* An explicit adapter: --lora MODEL=PATH[:SCALE]. */
typedef struct disc_lora {
    const char *model; /* served name; borrowed */
    const char *path;  /* borrowed */
    float scale;
} disc_lora;

/* An explicit projector: --mmproj [MODEL=]PATH (or a model section's mmproj key). */
typedef struct disc_mmproj {
    const char *model; /* served name; NULL = the model given with --model, or the only
                        * model; borrowed */
    const char *path;  /* borrowed */
} disc_mmproj;

typedef struct disc_config {
    char *const *model_paths; /* --model, borrowed */
    int n_paths;
    const char *model_dirs; /* --model-dirs, ';' or ':' separated; may be NULL */
    const disc_lora *loras; /* --lora; borrowed */
    int n_loras;
    const disc_mmproj *mmprojs; /* --mmproj; borrowed */
    int n_mmprojs;
    bool no_stores; /* skip the HF / Ollama / LM Studio stores (and the env base) */
} disc_config;

/* Runs every source of c into *out (initialised here; free with disc_result_free, also on
 * error). Errors: those of a --model path that is not a usable model (ERR_IO, ERR_MODEL_LOAD),
 * ERR_BAD_PARAM for a --lora naming an unknown model or a bad adapter file, for a --mmproj
 * naming an unknown model, naming none when several are served, or a file that is not a
 * projector (ERR_IO when it cannot be read), ERR_NOMEM; each with the reason in err. Borrows c. */
shimmy_err disc_run(const disc_config *c, disc_result *out, char *err, size_t errlen);

/* Scans one loose folder (and one level of subfolders) into out (which may already hold
 * models: files found before are skipped). Returns the number of models added. */
int disc_scan_dir(disc_result *out, const char *dir, const char *source);
/* The stores, one at a time (root = the store's folder); used by disc_run and by tests. */
int disc_scan_hf(disc_result *out, const char *hub_dir);
int disc_scan_ollama(disc_result *out, const char *models_dir);
int disc_scan_lmstudio(disc_result *out, const char *models_dir);

/* The store folders discovery scans, by the rules above (shimmy pull writes into them): the HF
 * hub cache and the user's Ollama store. Return false when no folder can be named (no HOME). */
bool disc_hf_hub_dir(char *out, size_t outlen);
bool disc_ollama_dir(char *out, size_t outlen);

/* Reads one model file (or the first part of a split model) into d (a record from
 * model_rec_new that nobody else holds), named name (NULL = from the file stem). On
 * ERR_MODEL_LOAD d->meta is what was read (an adapter's, a projector's). Errors: ERR_IO,
 * ERR_MODEL_LOAD (not a model, with the reason), ERR_BAD_PARAM (name or path too long),
 * ERR_NOMEM. Borrows path, name, source. */
shimmy_err disc_describe(const char *path, const char *name, const char *source, model_rec *d,
                         char *err, size_t errlen);

/* Whether dir is an MLX model folder: it holds config.json and at least one *.safetensors (its
 * top level only) and no .gguf file. On true, *size_bytes (may be NULL) is the safetensors'
 * total size. Reads at most LIM_SCAN_ENTRIES entries; never reads the weights. Borrows dir. */
bool disc_is_mlx_dir(const char *dir, uint64_t *size_bytes);

/* Why u is not served, for users: "not served: MLX engine not available in this build".
 * Returns a static string. */
const char *disc_unserved_status(const disc_unserved *u);

void disc_result_init(disc_result *r);
void disc_result_free(disc_result *r);

/* The Ollama layers of a manifest, for /api/show and chat defaults: the text of the template,
 * system and params layers (each owned, NULL when absent) and whether it has a projector.
 * Returns false when the manifest cannot be read. */
typedef struct disc_ollama_layers {
    char *template_text;
    char *system_text;
    char *params_json;
    char *license_text;
    bool has_projector;
} disc_ollama_layers;
bool disc_ollama_read_layers(const char *manifest, disc_ollama_layers *out);
void disc_ollama_layers_free(disc_ollama_layers *l);

#endif
