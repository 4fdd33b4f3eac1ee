/* gpu/place: where a loaded model's layers really are, read from the model itself rather than
 * trusted from the computation in fit.c. llama.cpp's C API does not say which device got which
 * layer, but every tensor of a computation graph carries the buffer it lives in, and every buffer
 * its buffer type and device. The engine evaluates one token through a probe context whose eval
 * callback is gpu_place_observe; each weight and KV cache tensor the graph touches is attributed
 * to its layer (blk.N.* = layer N, output.* / output_norm.* = layer n_layer, cache_*_lN = KV of
 * layer N) and to its device. A layer counts on the device that holds most of its weight bytes.
 *
 * Thread-safety: one gpu_place belongs to one thread (the one running the probe). */
#ifndef SHIMMY_GPU_PLACE_H
#define SHIMMY_GPU_PLACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpu/gpu.h"

struct ggml_tensor;
typedef struct gpu_place gpu_place;

/* A model with n_layer repeating layers. Returns owned (free with gpu_place_free), NULL when out
 * of memory. */
gpu_place *gpu_place_new(int n_layer);
void gpu_place_free(gpu_place *p);

/* ggml_backend_sched_eval_callback: records t and its sources; returns false (needs no data). */
bool gpu_place_observe(struct ggml_tensor *t, bool ask, void *p);

typedef struct gpu_place_dev {
    size_t index;     /* registry index */
    char name[64];    /* "Vulkan0", "CPU" */
    char backend[32]; /* "Vulkan", "CPU" */
    bool is_cpu;
    int layers;       /* layers counted here */
    uint64_t weights; /* weight bytes here (the input layer's included) */
    uint64_t kv;      /* KV cache bytes here, scaled by kv_scale */
} gpu_place_dev;

/* The observed placement: devices that hold anything, non-CPU devices first in registry order,
 * the CPU last. KV bytes are multiplied by kv_scale (the real context's cells over the probe's).
 * Writes up to cap entries and returns their count; *offloaded = layers on non-CPU devices;
 * *seen = layers whose weights were observed (n_layer + 1 when the probe saw the whole model). */
int gpu_place_result(const gpu_place *p, double kv_scale, gpu_place_dev *out, int cap,
                     int *offloaded, int *seen);

#endif
