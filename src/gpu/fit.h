/* gpu/fit: where a model's layers go, computed in C before llama.cpp loads anything.
 *
 * Layers are numbered as llama.cpp numbers them for offloading: 0..n_layer-1 are the repeating
 * blocks (blk.N.*), n_layer is the output layer (output norm + output matrix), so a model has
 * n_layer + 1 offloadable layers. With n_gpu layers offloaded, the LAST n_gpu of them go to the
 * devices (the output layer first), split over the devices in proportion to `split` (each
 * device's free memory, or --tensor-split): exactly llama.cpp's LLAMA_SPLIT_MODE_LAYER rule in
 * llama_model_base::load_tensors, replicated in fit_assign. The token embeddings always stay on
 * the CPU.
 *
 * `--gpu-layers auto` is fit_auto: the largest n_gpu for which every device holds its layers'
 * weights (GGUF tensor sizes), their KV cache (K and V of the chosen cache types, sized as
 * llama.cpp sizes them with ggml_row_size, for the whole context of every slot), the draft model
 * of speculative decoding when there is one, and a compute reserve, within its free memory less a
 * safety margin. llama.cpp's own fitting
 * (common_fit_params) is C++ only and not in its C API, hence this estimate.
 *
 * Pure functions over plain numbers (fit_model_read aside), so tests feed fake device memory. */
#ifndef SHIMMY_GPU_FIT_H
#define SHIMMY_GPU_FIT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/limits.h"
#include "gpu/gpu.h"

typedef struct fit_model {
    int n_layer;                          /* repeating layers */
    uint64_t weights[LIM_FIT_LAYERS + 1]; /* bytes per layer; [n_layer] = output layer */
    uint64_t kv[LIM_FIT_LAYERS + 1];      /* KV cache bytes per layer for the whole context */
    uint64_t input_bytes;                 /* token embeddings etc., always on the CPU */
    uint64_t compute_bytes;               /* compute buffer reserve per device used */
    int n_ctx_slot;                       /* tokens per slot the figures are for */
    /* The draft model (fit_ctx.draft_path), all of whose layers go to the devices whenever the
     * model has any layer there (engine's load_draft), else to the CPU: */
    uint64_t draft_weights; /* its offloadable layers' weights (output layer included) */
    uint64_t draft_kv;      /* its f16 K and V cache for the same context */
    uint64_t draft_input;   /* its token embeddings etc., always on the CPU */
} fit_model;

/* The context a model will get, as the engine will create it. */
typedef struct fit_ctx {
    int n_ctx_slot; /* tokens per slot; 0 = the trained context capped at ctx_cap */
    int ctx_cap;    /* tokens */
    int n_parallel; /* slots (each with its own n_ctx_slot cells of KV cache) */
    int n_ubatch;   /* tokens per compute batch */
    int type_k;     /* enum ggml_type of the K cache cells (llama.cpp's default GGML_TYPE_F16) */
    int type_v;     /* enum ggml_type of the V cache cells; an unknown type counts as f16 */
    const char *draft_path; /* the draft model (--model-draft), f16 KV; NULL = none. An unreadable
                               draft counts as nothing: its load reports the file's problem */
} fit_ctx;

/* Reads path's tensor table and hyper-parameters (no weights) and fills *out for context c.
 * Borrows path. Errors: ERR_MODEL_LOAD (not readable as GGUF, too many layers) with the reason. */
shimmy_err fit_model_read(const char *path, const fit_ctx *c, fit_model *out, char *err,
                          size_t errlen);

/* llama.cpp's layer assignment: for each of the n_layer + 1 layers, the device index (0..n_dev-1)
 * or -1 for the CPU, when n_gpu layers are offloaded (n_gpu < 0 = all) and split[k] is device k's
 * share (any non-negative scale; all zero = equal shares). Writes n_layer + 1 entries to dev. */
void fit_assign(int n_layer, int n_gpu, const float *split, int n_dev, int *dev);

typedef struct fit_use {
    int layers;       /* layers placed here */
    uint64_t weights; /* bytes of their weights */
    uint64_t kv;      /* bytes of their KV cache */
    uint64_t need;    /* weights + kv + compute reserve (0 when no layer is here) */
} fit_use;

typedef struct fit_plan {
    int n_gpu; /* layers offloaded */
    int n_dev;
    fit_use dev[LIM_GPU_DEVICES]; /* per device, in split order */
    fit_use cpu;                  /* what stays on the CPU (input layer included in weights) */
} fit_plan;

/* The plan for n_gpu offloaded layers (n_gpu < 0 = all). */
void fit_plan_for(const fit_model *m, int n_gpu, const float *split, int n_dev, fit_plan *p);

/* Bytes of device memory that must stay free on a device with mem_free bytes free. */
uint64_t fit_margin(uint64_t mem_free);

/* `--gpu-layers auto`: the largest n_gpu whose plan fits every device (need <= free - margin),
 * 0 when not even the output layer fits. split = NULL splits by free memory (llama.cpp's
 * default). Fills *p with the chosen plan and returns n_gpu. */
int fit_auto(const fit_model *m, const uint64_t *mem_free, const float *split, int n_dev,
             fit_plan *p);

#endif
