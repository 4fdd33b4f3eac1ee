/* gpu/offload: see offload.h. */
#include "gpu/offload.h"

#include <stdio.h>
#include <string.h>

static bool all_zero(const float *v, int n) {
    for (int k = 0; v != NULL && k < n; k++)
        if (v[k] > 0.0f)
            return false;
    return true;
}

/* Shares: --tensor-split as given, else each device's free memory now (llama.cpp's default,
 * fixed here so that llama.cpp splits by the same figures the fit used). */
static void choose_split(const gpu_offload_req *r, gpu_offload *o, uint64_t *mem_free) {
    bool by_free = all_zero(r->tensor_split, o->n_dev);
    for (int k = 0; k < o->n_dev; k++) {
        gpu_device d;
        gpu_device_get(o->dev[k], &d);
        mem_free[k] = d.mem_free;
        o->split[k] = by_free ? (float)d.mem_free : r->tensor_split[k];
    }
    if (by_free && all_zero(o->split, o->n_dev)) /* no device reports memory: equal shares */
        for (int k = 0; k < o->n_dev; k++)
            o->split[k] = 1.0f;
}

static void describe_auto(const gpu_offload *o, const fit_model *m, const uint64_t *mem_free,
                          char *out, size_t len) {
    size_t off =
        (size_t)snprintf(out, len, "auto: %d of %d layers fit", o->n_gpu_layers, m->n_layer + 1);
    for (int k = 0; k < o->n_dev && off < len; k++) {
        gpu_device d;
        gpu_device_get(o->dev[k], &d);
        off +=
            (size_t)snprintf(out + off, len - off,
                             "%s %s: %.0f MiB free, %.0f MiB margin, %.0f MiB needed "
                             "(weights %.0f, KV %.0f, compute %.0f)",
                             k ? ";" : "", d.name, mem_free[k] / 1048576.0,
                             fit_margin(mem_free[k]) / 1048576.0, o->plan.dev[k].need / 1048576.0,
                             o->plan.dev[k].weights / 1048576.0, o->plan.dev[k].kv / 1048576.0,
                             o->plan.dev[k].layers ? m->compute_bytes / 1048576.0 : 0.0);
    }
}

shimmy_err gpu_offload_plan(const char *path, const gpu_offload_req *r, gpu_offload *o, char *err,
                            size_t errlen) {
    memset(o, 0, sizeof *o);
    size_t n = 0;
    shimmy_err rc = gpu_select(r->backend, o->dev, LIM_GPU_DEVICES, &n, err, errlen);
    if (rc != SHIMMY_OK)
        return rc;
    if (r->main_gpu >= 0) {
        if ((size_t)r->main_gpu >= n)
            return err_set(err, errlen, ERR_USAGE, "--main-gpu %d: only %zu device%s chosen",
                           r->main_gpu, n, n == 1 ? "" : "s");
        o->dev[0] = o->dev[r->main_gpu];
        n = 1;
    }
    o->n_dev = (int)n;
    uint64_t mem_free[LIM_GPU_DEVICES] = {0};
    choose_split(r, o, mem_free);

    static _Thread_local fit_model m; /* about 16 KiB: not on the stack */
    char ferr[256];
    bool have_model = fit_model_read(path, &r->ctx, &m, ferr, sizeof ferr) == SHIMMY_OK;
    if (have_model)
        o->layers_total = m.n_layer + 1;

    if (o->n_dev == 0) {
        o->n_gpu_layers = 0;
        snprintf(o->why, sizeof o->why, "%s",
                 r->backend == GPU_CPU ? "--gpu-backend cpu" : "no GPU device");
    } else if (r->mode == GPU_LAYERS_ALL) {
        o->n_gpu_layers = -1;
        snprintf(o->why, sizeof o->why, "--gpu-layers all");
    } else if (r->mode == GPU_LAYERS_COUNT) {
        o->n_gpu_layers = r->layers;
        snprintf(o->why, sizeof o->why, "--gpu-layers %d", r->layers);
    } else if (!have_model) {
        o->n_gpu_layers = -1; /* llama.cpp will report the file's problem itself */
        snprintf(o->why, sizeof o->why, "auto: could not size the model (%s); offloading all",
                 ferr);
    } else {
        o->n_gpu_layers = fit_auto(&m, mem_free, o->split, o->n_dev, &o->plan);
        describe_auto(o, &m, mem_free, o->why, sizeof o->why);
    }
    if (have_model)
        fit_plan_for(&m, o->n_gpu_layers, o->split, o->n_dev, &o->plan);
    return SHIMMY_OK;
}
