/* models/gguf_meta: reads a GGUF file's metadata (never its weights) through ggml's gguf API. */
#ifndef SHIMMY_GGUF_META_H
#define SHIMMY_GGUF_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct gguf_meta {
    uint32_t version;       /* GGUF version */
    char arch[64];          /* general.architecture, "" if absent */
    char type[32];          /* general.type ("model", "adapter", ...), "" if absent */
    char name[128];         /* general.name, "" if absent */
    char quant[32];         /* e.g. "Q4_K_M", "F16": general.file_type, else the tensors' type */
    uint64_t n_params;      /* sum of tensor element counts */
    uint32_t n_ctx_train;   /* <arch>.context_length, 0 if absent */
    uint32_t n_layer;       /* <arch>.block_count, 0 if absent */
    uint32_t n_embd;        /* <arch>.embedding_length, 0 if absent */
    bool has_chat_template; /* tokenizer.chat_template present */
    int64_t n_tensors;
    char base_name[128];  /* adapters: general.base_model.0.name, "" if absent */
    float lora_alpha;     /* adapters: adapter.lora.alpha, 0 if absent */
    uint32_t split_count; /* split.count of a split model's part, 0 = not split */
    uint32_t split_no;    /* split.no: this part's index, 0-based */
    bool has_vision;      /* projectors: an image encoder (clip.has_vision_encoder true;
                           * files older than that key: clip.vision.image_size present) */
    bool has_audio;       /* projectors: an audio encoder (clip.has_audio_encoder true) */
    char proj_type[32];   /* projectors: clip.projector_type, else clip.vision.projector_type,
                           * else clip.audio.projector_type ("gemma3", "qwen2.5vl"...) */
    uint32_t proj_dim;    /* projectors: clip.vision.projection_dim, else
                           * clip.audio.projection_dim; 0 if absent. llama.cpp's converter
                           * writes the text model's embedding width there */
    bool is_embedding;    /* a non-causal embedding model (e.g. bert, nomic-bert) */
    bool is_reranker;     /* <arch>.pooling_type is rank (4): a reranker (bge-reranker,
                           * Qwen3-Reranker), served by /v1/rerank only */
} gguf_meta;

/* Reads path's metadata into *out (zeroed first). Borrows path. Errors: ERR_IO (cannot open/read,
 * a directory), ERR_MODEL_LOAD (not GGUF, truncated or corrupt, unsupported version such as v1),
 * each with the path and the reason in err. Thread-safe. */
shimmy_err gguf_meta_read(const char *path, gguf_meta *out, char *err, size_t errlen);

/* True when the metadata describes a servable model; false for a LoRA adapter, a multimodal
 * projector (mmproj/clip), a vocab-only file (no tensors) or one without an architecture, with
 * the reason in why (may be NULL). */
bool gguf_meta_is_model(const gguf_meta *m, char *why, size_t whylen);

/* True when the metadata describes a multimodal projector (general.type = mmproj, or
 * general.architecture = clip in files written before general.type). */
bool gguf_meta_is_projector(const gguf_meta *m);

/* Reads the string value of key from path's metadata into out (owned by the caller, malloc'd,
 * NUL-terminated). Returns false (and *out = NULL) when absent, not a string or unreadable.
 * Used for large values (tokenizer.chat_template) that gguf_meta does not keep. */
bool gguf_meta_read_str(const char *path, const char *key, char **out);

#endif
