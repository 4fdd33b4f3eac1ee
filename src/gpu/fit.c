/* gpu/fit: fit.h. The model side comes from the GGUF tensor table and hyper-parameters (through
 * ggml's gguf API with no_alloc: weights are never read); the placement side replicates
 * llama.cpp's layer split; fit_auto searches the largest layer count that fits. */
#include "gpu/fit.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "gguf.h"

/* ---- reading the model ---- */

/* Integer key `<arch>.<name>` (scalar, or per-layer array: element il, else the largest).
 * Returns def when absent or not an integer. */
static uint64_t kv_num(const struct gguf_context *g, const char *arch, const char *name, int il,
                       uint64_t def) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    int64_t id = gguf_find_key(g, key);
    if (id < 0)
        return def;
    switch (gguf_get_kv_type(g, id)) {
    case GGUF_TYPE_UINT32:
        return gguf_get_val_u32(g, id);
    case GGUF_TYPE_INT32:
        return (uint64_t)(gguf_get_val_i32(g, id) < 0 ? 0 : gguf_get_val_i32(g, id));
    case GGUF_TYPE_UINT64:
        return gguf_get_val_u64(g, id);
    case GGUF_TYPE_UINT16:
        return gguf_get_val_u16(g, id);
    case GGUF_TYPE_ARRAY:
        break;
    default:
        return def;
    }
    enum gguf_type at = gguf_get_arr_type(g, id);
    size_t n = gguf_get_arr_n(g, id);
    if (n == 0 || (at != GGUF_TYPE_UINT32 && at != GGUF_TYPE_INT32))
        return def;
    const uint32_t *v = gguf_get_arr_data(g, id); /* same width for both types */
    if (il >= 0 && (size_t)il < n)
        return (int32_t)v[il] < 0 && at == GGUF_TYPE_INT32 ? 0 : v[il];
    uint64_t mx = 0;
    for (size_t i = 0; i < n; i++)
        mx = v[i] > mx ? v[i] : mx;
    return mx;
}

/* "blk.12.attn_q.weight" -> 12; -1 otherwise. */
static int block_of(const char *name) {
    if (strncmp(name, "blk.", 4) != 0)
        return -1;
    char *end;
    long il = strtol(name + 4, &end, 10);
    return end != name + 4 && *end == '.' && il >= 0 && il < LIM_FIT_LAYERS ? (int)il : -1;
}

static bool is_output(const char *name) {
    return strncmp(name, "output.", 7) == 0 || strncmp(name, "output_norm.", 12) == 0;
}

static void read_weights(const struct gguf_context *g, fit_model *m) {
    uint64_t tok_embd = 0;
    bool has_output_matrix = false;
    for (int64_t t = 0; t < gguf_get_n_tensors(g); t++) {
        const char *name = gguf_get_tensor_name(g, t);
        uint64_t sz = gguf_get_tensor_size(g, t);
        int il = block_of(name);
        if (il >= 0 && il < m->n_layer) {
            m->weights[il] += sz;
        } else if (is_output(name)) {
            m->weights[m->n_layer] += sz;
            has_output_matrix |= strcmp(name, "output.weight") == 0;
        } else {
            m->input_bytes += sz;
            if (strcmp(name, "token_embd.weight") == 0)
                tok_embd = sz;
        }
    }
    /* Tied embeddings: llama.cpp gives the output layer its own copy of token_embd. */
    if (!has_output_matrix)
        m->weights[m->n_layer] += tok_embd;
}

/* Bytes of ne elements of ggml type t: ggml_row_size (type size per block of blck_size
 * elements), rounded up to whole blocks where ne is not a multiple (llama.cpp refuses such a
 * cache; the estimate need not). An unknown type counts as f16. */
static uint64_t row_bytes(int t, uint64_t ne) {
    if (t < 0 || t >= GGML_TYPE_COUNT || ggml_blck_size((enum ggml_type)t) <= 0 ||
        ggml_type_size((enum ggml_type)t) == 0)
        t = GGML_TYPE_F16;
    uint64_t blck = (uint64_t)ggml_blck_size((enum ggml_type)t);
    return (ne + blck - 1) / blck * ggml_type_size((enum ggml_type)t);
}

/* K and V for n_ctx_total cells: one row of n_embd_k_gqa elements of type_k and one of
 * n_embd_v_gqa of type_v per cell and layer, as llama_kv_cache allocates them. */
static void read_kv(const struct gguf_context *g, const char *arch, int n_ctx_total, int type_k,
                    int type_v, fit_model *m) {
    uint64_t n_embd = kv_num(g, arch, "embedding_length", -1, 0);
    for (int il = 0; il < m->n_layer; il++) {
        uint64_t n_head = kv_num(g, arch, "attention.head_count", il, 0);
        uint64_t n_head_kv = kv_num(g, arch, "attention.head_count_kv", il, n_head);
        uint64_t dk = kv_num(g, arch, "attention.key_length", -1, n_head ? n_embd / n_head : 0);
        uint64_t dv = kv_num(g, arch, "attention.value_length", -1, dk);
        m->kv[il] = (uint64_t)n_ctx_total *
                    (row_bytes(type_k, n_head_kv * dk) + row_bytes(type_v, n_head_kv * dv));
    }
}

/* The compute buffer of one device for batches of n_ubatch tokens: activations (a few n_embd and
 * n_ff wide rows per token), attention scores over one slot's context, and the logits. An
 * estimate of ggml's graph allocator, erring high. */
static void read_compute(const struct gguf_context *g, const char *arch, int n_ctx_slot,
                         int n_ubatch, fit_model *m) {
    uint64_t n_embd = kv_num(g, arch, "embedding_length", -1, 0);
    uint64_t n_ff = kv_num(g, arch, "feed_forward_length", -1, 4 * n_embd);
    uint64_t n_head = kv_num(g, arch, "attention.head_count", -1, 0);
    int64_t tok = gguf_find_key(g, "tokenizer.ggml.tokens");
    uint64_t n_vocab =
        tok >= 0 && gguf_get_kv_type(g, tok) == GGUF_TYPE_ARRAY ? gguf_get_arr_n(g, tok) : 0;
    uint64_t u = (uint64_t)n_ubatch;
    m->compute_bytes = 4 * u * (8 * n_embd + 3 * n_ff + (uint64_t)n_ctx_slot * n_head + n_vocab);
}

static shimmy_err read_one(const char *path, const fit_ctx *c, fit_model *out, char *err,
                           size_t errlen) {
    memset(out, 0, sizeof *out);
    struct gguf_init_params ip = {.no_alloc = true, .ctx = NULL};
    struct gguf_context *g = gguf_init_from_file(path, ip);
    if (g == NULL)
        return err_set(err, errlen, ERR_MODEL_LOAD, "%s: cannot read the GGUF tensor table", path);
    shimmy_err rc = SHIMMY_OK;
    int64_t ka = gguf_find_key(g, "general.architecture");
    const char *arch =
        ka >= 0 && gguf_get_kv_type(g, ka) == GGUF_TYPE_STRING ? gguf_get_val_str(g, ka) : "";
    uint64_t n_layer = kv_num(g, arch, "block_count", -1, 0);
    if (n_layer > LIM_FIT_LAYERS) {
        rc = err_set(err, errlen, ERR_MODEL_LOAD, "%s: %llu layers, more than %d", path,
                     (unsigned long long)n_layer, LIM_FIT_LAYERS);
        goto out;
    }
    out->n_layer = (int)n_layer;
    uint64_t n_train = kv_num(g, arch, "context_length", -1, 0);
    out->n_ctx_slot = c->n_ctx_slot;
    if (out->n_ctx_slot <= 0)
        out->n_ctx_slot = n_train > 0 && n_train < (uint64_t)c->ctx_cap ? (int)n_train : c->ctx_cap;
    read_weights(g, out);
    read_kv(g, arch, out->n_ctx_slot * (c->n_parallel > 0 ? c->n_parallel : 1), c->type_k,
            c->type_v, out);
    read_compute(g, arch, out->n_ctx_slot, c->n_ubatch, out);
out:
    gguf_free(g);
    return rc;
}

shimmy_err fit_model_read(const char *path, const fit_ctx *c, fit_model *out, char *err,
                          size_t errlen) {
    shimmy_err rc = read_one(path, c, out, err, errlen);
    if (rc != SHIMMY_OK || c->draft_path == NULL || c->draft_path[0] == '\0')
        return rc;
    /* The draft: the same cells (engine's load_draft: n_ctx_slot x n_parallel), f16 K and V
     * (llama-server's -ctkd/-ctvd default), its own compute buffer on the same devices. */
    static _Thread_local fit_model d; /* about 16 KiB: not on the stack */
    fit_ctx dc = *c;
    dc.n_ctx_slot = out->n_ctx_slot;
    dc.type_k = dc.type_v = GGML_TYPE_F16;
    dc.draft_path = NULL;
    char derr[256];
    if (read_one(c->draft_path, &dc, &d, derr, sizeof derr) != SHIMMY_OK)
        return SHIMMY_OK;
    for (int il = 0; il <= d.n_layer; il++) {
        out->draft_weights += d.weights[il];
        out->draft_kv += d.kv[il];
    }
    out->draft_input = d.input_bytes;
    out->compute_bytes += d.compute_bytes;
    return SHIMMY_OK;
}

/* ---- placement ---- */

void fit_assign(int n_layer, int n_gpu, const float *split, int n_dev, int *dev) {
    int n_all = n_layer + 1;
    if (n_gpu < 0 || n_gpu > n_all)
        n_gpu = n_all;
    /* llama.cpp: cumulative shares as float, normalized; layer il of the offloaded range goes to
     * the first device whose cumulative share exceeds (il - i_gpu_start) / act_gpu_layers. */
    float cum[LIM_GPU_DEVICES];
    float sum = 0.0f;
    bool all_zero = true;
    for (int k = 0; k < n_dev && k < LIM_GPU_DEVICES; k++)
        all_zero &= split == NULL || split[k] <= 0.0f;
    for (int k = 0; k < n_dev && k < LIM_GPU_DEVICES; k++) {
        sum += all_zero ? 1.0f : (split[k] > 0.0f ? split[k] : 0.0f);
        cum[k] = sum;
    }
    for (int k = 0; k < n_dev && k < LIM_GPU_DEVICES; k++)
        cum[k] /= sum;
    int start = n_all - n_gpu;
    int act = n_dev > 0 ? n_gpu : 0;
    for (int il = 0; il < n_all; il++) {
        if (il < start || il - start >= act) {
            dev[il] = -1;
            continue;
        }
        float x = (float)(il - start) / (float)act;
        int k = 0;
        while (k < n_dev && !(x < cum[k])) /* std::upper_bound: first cum[k] > x */
            k++;
        dev[il] = k < n_dev ? k : n_dev - 1;
    }
}

static void add_layer(fit_use *u, const fit_model *m, int il) {
    u->layers++;
    u->weights += m->weights[il];
    u->kv += m->kv[il];
}

/* The draft model: all its layers on the devices when the model has any there, split by the same
 * shares (in proportion, not layer by layer: its layers are few and small), else on the CPU. */
static void add_draft(const fit_model *m, fit_plan *p, const float *split, int n_dev) {
    if (p->n_gpu == 0 || n_dev == 0) {
        p->cpu.weights += m->draft_weights;
        p->cpu.kv += m->draft_kv;
        return;
    }
    double share[LIM_GPU_DEVICES], sum = 0.0;
    bool all_zero = true;
    for (int k = 0; k < n_dev; k++)
        all_zero &= split == NULL || split[k] <= 0.0f;
    for (int k = 0; k < n_dev; k++) {
        share[k] = all_zero ? 1.0 : (split[k] > 0.0f ? split[k] : 0.0);
        sum += share[k];
    }
    uint64_t w_left = m->draft_weights, kv_left = m->draft_kv;
    for (int k = 0; k < n_dev; k++) {
        bool last = k == n_dev - 1;
        uint64_t w = last ? w_left : (uint64_t)((double)m->draft_weights * share[k] / sum);
        uint64_t kv = last ? kv_left : (uint64_t)((double)m->draft_kv * share[k] / sum);
        p->dev[k].weights += w;
        p->dev[k].kv += kv;
        w_left -= w;
        kv_left -= kv;
    }
}

void fit_plan_for(const fit_model *m, int n_gpu, const float *split, int n_dev, fit_plan *p) {
    static _Thread_local int dev[LIM_FIT_LAYERS + 1];
    memset(p, 0, sizeof *p);
    if (n_dev > LIM_GPU_DEVICES)
        n_dev = LIM_GPU_DEVICES;
    p->n_dev = n_dev;
    fit_assign(m->n_layer, n_gpu, split, n_dev, dev);
    for (int il = 0; il <= m->n_layer; il++) {
        if (dev[il] < 0) {
            add_layer(&p->cpu, m, il);
        } else {
            add_layer(&p->dev[dev[il]], m, il);
            p->n_gpu++;
        }
    }
    p->cpu.weights += m->input_bytes + m->draft_input;
    add_draft(m, p, split, n_dev);
    for (int k = 0; k < n_dev; k++)
        if (p->dev[k].layers > 0 || p->dev[k].weights > 0)
            p->dev[k].need = p->dev[k].weights + p->dev[k].kv + m->compute_bytes;
}

uint64_t fit_margin(uint64_t mem_free) {
    uint64_t pct = mem_free / 100 * LIM_FIT_MARGIN_PCT;
    return pct > LIM_FIT_MARGIN_BYTES ? pct : LIM_FIT_MARGIN_BYTES;
}

static bool plan_fits(const fit_plan *p, const uint64_t *mem_free) {
    for (int k = 0; k < p->n_dev; k++) {
        uint64_t margin = fit_margin(mem_free[k]);
        uint64_t avail = mem_free[k] > margin ? mem_free[k] - margin : 0;
        if (p->dev[k].layers > 0 && p->dev[k].need > avail)
            return false;
    }
    return true;
}

int fit_auto(const fit_model *m, const uint64_t *mem_free, const float *split, int n_dev,
             fit_plan *p) {
    float by_free[LIM_GPU_DEVICES];
    if (n_dev > LIM_GPU_DEVICES)
        n_dev = LIM_GPU_DEVICES;
    if (split == NULL) {
        for (int k = 0; k < n_dev; k++)
            by_free[k] = (float)mem_free[k];
        split = by_free;
    }
    for (int n = m->n_layer + 1; n > 0; n--) {
        fit_plan_for(m, n, split, n_dev, p);
        if (plan_fits(p, mem_free))
            return n;
    }
    fit_plan_for(m, 0, split, n_dev, p);
    return 0;
}
