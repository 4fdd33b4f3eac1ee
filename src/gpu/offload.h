/* gpu/offload: the offload decision for one model load, made before llama.cpp sees the file:
 * which devices (gpu_select), in which proportions (--tensor-split, else free memory), and how
 * many layers (--gpu-layers N|all, or auto = fit_auto). The engine passes the result to
 * llama.cpp as model parameters, so that what llama.cpp does is exactly what was planned; the
 * engine then reads the real placement back (gpu/place.h) and reports that.
 * Thread-safety: any thread, after gpu_init. */
#ifndef SHIMMY_GPU_OFFLOAD_H
#define SHIMMY_GPU_OFFLOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "gpu/fit.h"
#include "gpu/gpu.h"

typedef struct gpu_offload_req {
    gpu_backend backend;
    gpu_layers_mode mode;
    int layers;                /* when mode is GPU_LAYERS_COUNT */
    int main_gpu;              /* -1 = split over every chosen device; k = only the
                                  k-th chosen device */
    const float *tensor_split; /* LIM_GPU_DEVICES shares, or NULL / all 0 = by free
                                  memory */
    fit_ctx ctx;               /* the context the model will get */
} gpu_offload_req;

typedef struct gpu_offload {
    size_t dev[LIM_GPU_DEVICES]; /* registry indices, in split order */
    int n_dev;
    float split[LIM_GPU_DEVICES]; /* shares for llama.cpp's tensor_split */
    int n_gpu_layers;             /* for llama_model_params.n_gpu_layers */
    int layers_total;             /* n_layer + 1, 0 when the GGUF could not be read */
    fit_plan plan;                /* expected placement (valid when layers_total > 0) */
    char why[512];                /* how the layer count was chosen, one line */
} gpu_offload;

/* Plans the load of path. Errors: those of gpu_select (a named backend without a device), and
 * ERR_USAGE for main_gpu past the chosen devices. Borrows everything. */
shimmy_err gpu_offload_plan(const char *path, const gpu_offload_req *r, gpu_offload *out, char *err,
                            size_t errlen);

#endif
