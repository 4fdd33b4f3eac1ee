/* gpu/place: place.h. Tensors are deduplicated by address in an open-addressing set; bytes are
 * summed per (layer, device slot) in one matrix; devices get slots in the order they are met. */
#include "gpu/place.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "ggml-backend.h"
#include "ggml.h"

#define MAX_SLOTS (LIM_GPU_DEVICES + 1)

struct gpu_place {
    int n_layer;
    const void **seen; /* LIM_PLACE_SEEN_SLOTS tensor addresses */
    size_t n_seen;
    ggml_backend_dev_t slot_dev[MAX_SLOTS];
    int n_slots;
    uint64_t *w;               /* (n_layer + 1) x MAX_SLOTS weight bytes */
    uint64_t kv[MAX_SLOTS];    /* KV bytes per slot */
    uint64_t other[MAX_SLOTS]; /* weights of no layer (token embeddings) per slot */
};

gpu_place *gpu_place_new(int n_layer) {
    gpu_place *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->n_layer = n_layer < 0 ? 0 : n_layer;
    p->seen = calloc(LIM_PLACE_SEEN_SLOTS, sizeof *p->seen);
    p->w = calloc((size_t)(p->n_layer + 1) * MAX_SLOTS, sizeof *p->w);
    if (p->seen == NULL || p->w == NULL) {
        gpu_place_free(p);
        return NULL;
    }
    return p;
}

void gpu_place_free(gpu_place *p) {
    if (p == NULL)
        return;
    free(p->seen);
    free(p->w);
    free(p);
}

/* True the first time t is offered. */
static bool first_sight(gpu_place *p, const void *t) {
    if (p->n_seen >= LIM_PLACE_SEEN_SLOTS / 2)
        return false; /* full: stop counting rather than loop */
    size_t h = ((uintptr_t)t >> 4) * 0x9E3779B97F4A7C15ull;
    for (size_t i = h & (LIM_PLACE_SEEN_SLOTS - 1);; i = (i + 1) & (LIM_PLACE_SEEN_SLOTS - 1)) {
        if (p->seen[i] == t)
            return false;
        if (p->seen[i] == NULL) {
            p->seen[i] = t;
            p->n_seen++;
            return true;
        }
    }
}

/* The device whose memory holds buf; pinned host buffers of a GPU count as the CPU. */
static ggml_backend_dev_t buffer_device(ggml_backend_buffer_t buf) {
    ggml_backend_buffer_type_t bt = ggml_backend_buffer_get_type(buf);
    ggml_backend_dev_t d = ggml_backend_buft_get_device(bt);
    if (d == NULL || (ggml_backend_dev_type(d) != GGML_BACKEND_DEVICE_TYPE_CPU &&
                      ggml_backend_buft_is_host(bt) && ggml_backend_dev_host_buffer_type(d) == bt))
        return ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    return d;
}

static int slot_of(gpu_place *p, ggml_backend_dev_t d) {
    for (int s = 0; s < p->n_slots; s++)
        if (p->slot_dev[s] == d)
            return s;
    if (p->n_slots == MAX_SLOTS)
        return -1;
    p->slot_dev[p->n_slots] = d;
    return p->n_slots++;
}

/* "blk.7.ffn_up.weight" -> 7; "output.weight" -> n_layer; -1 for other weights. */
static int weight_layer(const gpu_place *p, const char *name) {
    if (strncmp(name, "blk.", 4) == 0) {
        char *end;
        long il = strtol(name + 4, &end, 10);
        return end != name + 4 && *end == '.' && il >= 0 && il < p->n_layer ? (int)il : -1;
    }
    if (strncmp(name, "output.", 7) == 0 || strncmp(name, "output_norm.", 12) == 0)
        return p->n_layer;
    return -1;
}

/* "cache_k_l3", "cache_swa_v_l12" -> true */
static bool is_kv(const char *name) {
    const char *l = strrchr(name, 'l');
    return strncmp(name, "cache_", 6) == 0 && l != NULL && l > name && l[-1] == '_' &&
           l[1] >= '0' && l[1] <= '9';
}

static void record(gpu_place *p, const struct ggml_tensor *t) {
    if (t == NULL)
        return;
    if (t->view_src != NULL)
        t = t->view_src;
    if (t->buffer == NULL || !first_sight(p, t))
        return;
    bool weights = ggml_backend_buffer_get_usage(t->buffer) == GGML_BACKEND_BUFFER_USAGE_WEIGHTS;
    bool kv = !weights && is_kv(t->name);
    if (!weights && !kv)
        return;
    int s = slot_of(p, buffer_device(t->buffer));
    if (s < 0)
        return;
    uint64_t bytes = ggml_nbytes(t);
    if (kv) {
        p->kv[s] += bytes;
        return;
    }
    int il = weight_layer(p, t->name);
    if (il < 0)
        p->other[s] += bytes;
    else
        p->w[(size_t)il * MAX_SLOTS + (size_t)s] += bytes;
}

bool gpu_place_observe(struct ggml_tensor *t, bool ask, void *ud) {
    gpu_place *p = ud;
    if (!ask)
        return true;
    record(p, t);
    for (int i = 0; i < GGML_MAX_SRC; i++)
        record(p, t->src[i]);
    return false;
}

static size_t dev_registry_index(ggml_backend_dev_t d) {
    for (size_t i = 0; i < ggml_backend_dev_count(); i++)
        if (ggml_backend_dev_get(i) == d)
            return i;
    return (size_t)-1;
}

static void fill_dev(const gpu_place *p, int s, const int *layers, double kv_scale,
                     gpu_place_dev *o) {
    ggml_backend_dev_t d = p->slot_dev[s];
    memset(o, 0, sizeof *o);
    o->index = dev_registry_index(d);
    snprintf(o->name, sizeof o->name, "%s", ggml_backend_dev_name(d));
    snprintf(o->backend, sizeof o->backend, "%s",
             ggml_backend_reg_name(ggml_backend_dev_backend_reg(d)));
    o->is_cpu = ggml_backend_dev_type(d) == GGML_BACKEND_DEVICE_TYPE_CPU;
    o->layers = layers[s];
    o->weights = p->other[s];
    for (int il = 0; il <= p->n_layer; il++)
        o->weights += p->w[(size_t)il * MAX_SLOTS + (size_t)s];
    o->kv = (uint64_t)((double)p->kv[s] * kv_scale + 0.5);
}

int gpu_place_result(const gpu_place *p, double kv_scale, gpu_place_dev *out, int cap,
                     int *offloaded, int *seen) {
    int layers[MAX_SLOTS] = {0};
    *offloaded = 0;
    *seen = 0;
    for (int il = 0; il <= p->n_layer; il++) {
        const uint64_t *row = &p->w[(size_t)il * MAX_SLOTS];
        int best = -1;
        for (int s = 0; s < p->n_slots; s++)
            if (row[s] > 0 && (best < 0 || row[s] > row[best]))
                best = s;
        if (best < 0)
            continue;
        layers[best]++;
        (*seen)++;
        if (ggml_backend_dev_type(p->slot_dev[best]) != GGML_BACKEND_DEVICE_TYPE_CPU)
            (*offloaded)++;
    }
    /* Non-CPU devices in registry order, then the CPU. */
    int order[MAX_SLOTS], n = 0;
    for (int s = 0; s < p->n_slots; s++)
        if (ggml_backend_dev_type(p->slot_dev[s]) != GGML_BACKEND_DEVICE_TYPE_CPU)
            order[n++] = s;
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && dev_registry_index(p->slot_dev[order[b]]) <
                                     dev_registry_index(p->slot_dev[order[b - 1]]);
             b--) {
            int tmp = order[b];
            order[b] = order[b - 1];
            order[b - 1] = tmp;
        }
    for (int s = 0; s < p->n_slots; s++)
        if (ggml_backend_dev_type(p->slot_dev[s]) == GGML_BACKEND_DEVICE_TYPE_CPU)
            order[n++] = s;
    int k = 0;
    for (int i = 0; i < n && k < cap; i++)
        fill_dev(p, order[i], layers, kv_scale, &out[k++]);
    return k;
}
