/* engine/llama_backend: backend.h on llama.cpp. The only file of shimmy that includes llama.h.
 * Owns the llama_model, the llama_context (one KV sequence per slot, not unified, so each slot
 * has exactly its own n_ctx tokens), the reusable batch, sampler chains (with the chat module's
 * lazy grammars), tokenization, and the model's chat template (engine/llama_chat.h: the model's
 * Jinja template, an override, or ChatML when it has none). */
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/limits.h"
#include "core/log.h"
#include "engine/backend.h"
#include "engine/llama_chat.h"
#include "ggml-backend.h"
#include "gpu/gpu.h"
#include "gpu/offload.h"
#include "gpu/place.h"
#include "llama.h"
#include "mtmd-helper.h"
#include "mtmd.h"
#include <webp/decode.h>

struct be_model {
    struct llama_model *model;
    struct llama_context *ctx;
    const struct llama_vocab *vocab;
    struct llama_batch batch;
    int n_batch;    /* capacity of batch, tokens */
    int n_ctx_slot; /* tokens per sequence */
    int n_parallel;
    lchat_tmpl *tmpl;    /* the chat template in use; NULL when the model's own does not parse */
    char tmpl_err[512];  /* why tmpl is NULL */
    bool has_model_tmpl; /* the model carries tokenizer.chat_template */
    char name[256];
    int64_t loaded_at;
    int layers_total;     /* offloadable layers (n_layer + 1) */
    int layers_offloaded; /* read back from the loaded model (gpu/place.h) */
    int n_devs;
    engine_device_use devs[LIM_GPU_DEVICES + 1];
    struct llama_adapter_lora *lora; /* applied to ctx; NULL = none; freed with the model */
    struct llama_context *ectx;      /* embeddings context, made on first use (engine thread) */
    struct ggml_threadpool *tp; /* CPU worker threads kept for the context's life; NULL = none */
    void (*tp_free)(struct ggml_threadpool *);
    char kv_k[8], kv_v[8], fa[8]; /* KV cache types and flash attention in use (engine.h) */
    /* the draft model (speculative decoding); NULL = none */
    struct llama_model *dmodel;
    struct llama_context *dctx;
    struct llama_batch dbatch;
    int dn_batch;       /* capacity of dbatch, tokens */
    int n_vocab;        /* the model's vocabulary size: a draft token past it is never proposed */
    char ddesc[128];    /* the draft model's description */
    mtmd_context *mtmd; /* the projector (engine_options.mmproj); NULL = text only */
};

static shimmy_err load_projector(be_model *b, const engine_options *o, int n_threads, char *err,
                                 size_t errlen);

static void attach_threadpool(be_model *b, int n_threads);

struct be_sampler {
    struct llama_sampler *chain;
    /* Output grammar, kept out of the chain: it sees only generated tokens (the prompt is not
     * JSON), and it filters the candidates before the chain picks. NULL = none. */
    struct llama_sampler *grammar;
    llama_token_data *cur; /* n_vocab candidates, reused every step */
    int n_vocab;
};

/* ---- logging: llama.cpp's messages go through core/log. llama.cpp says why a load or a
 * context failed only in its log, on the thread that called it, before returning NULL: the
 * callback keeps that thread's last error line (thread-local, because two models may load at
 * once on two threads), and the caller clears it before the call and reads it after. ---- */

static _Thread_local char last_error[512];
/* How llama.cpp resolved --flash-attn auto while this thread created a context: 1 on, 0 off,
 * -1 not said (its "Flash Attention enabled" / "not supported, set to disabled" lines). */
static _Thread_local int fa_resolved = -1;

static void on_llama_log(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        n--;
    if (n == 0)
        return;
    if (strstr(text, "Flash Attention") != NULL)
        fa_resolved = strstr(text, "not supported") != NULL ? 0 : strstr(text, "enabled") ? 1 : -1;
    if (level == GGML_LOG_LEVEL_ERROR) {
        snprintf(last_error, sizeof last_error, "%.*s", (int)n, text);
        log_warn("llama.cpp: %.*s", (int)n, text);
    } else if (level == GGML_LOG_LEVEL_WARN) {
        log_debug("llama.cpp: %.*s", (int)n, text);
    } else {
        log_debug("llama.cpp: %.*s", (int)n, text);
    }
}

shimmy_err be_global_init(const char *lib_dir, char *err, size_t errlen) {
    llama_log_set(on_llama_log, NULL);
    shimmy_err rc = gpu_init(lib_dir, err, errlen); /* backend modules: gpu/backends.c */
    if (rc != SHIMMY_OK)
        return rc;
    llama_backend_init();
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        log_debug("device %s: %s (%s)", ggml_backend_dev_name(d), ggml_backend_dev_description(d),
                  ggml_backend_reg_name(ggml_backend_dev_backend_reg(d)));
    }
    return SHIMMY_OK;
}

/* ---- loading ---- */

static int default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* ---- devices: the plan (gpu/offload.h) goes into the model parameters; the placement is read
 * back from the loaded model by evaluating one token through a probe context (gpu/place.h) ---- */

typedef struct be_devices {
    gpu_offload plan;
    ggml_backend_dev_t list[LIM_GPU_DEVICES + 1]; /* NULL-terminated */
    float split[LIM_GPU_DEVICES];                 /* llama_max_devices() entries */
} be_devices;

/* The ggml types of --cache-type-k/v, for the fit (gpu/fit.h) and the context parameters. */
static const enum ggml_type kv_ggml[KV_TYPE__COUNT] = {
    [KV_TYPE_DEFAULT] = GGML_TYPE_F16, [KV_TYPE_F32] = GGML_TYPE_F32,
    [KV_TYPE_F16] = GGML_TYPE_F16,     [KV_TYPE_BF16] = GGML_TYPE_BF16,
    [KV_TYPE_Q8_0] = GGML_TYPE_Q8_0,   [KV_TYPE_Q4_0] = GGML_TYPE_Q4_0,
    [KV_TYPE_Q4_1] = GGML_TYPE_Q4_1,   [KV_TYPE_IQ4_NL] = GGML_TYPE_IQ4_NL,
    [KV_TYPE_Q5_0] = GGML_TYPE_Q5_0,   [KV_TYPE_Q5_1] = GGML_TYPE_Q5_1,
};

static int kv_index(engine_kv_type t) {
    return t > KV_TYPE_DEFAULT && t < KV_TYPE__COUNT ? (int)t : KV_TYPE_DEFAULT;
}

static shimmy_err plan_devices(const engine_options *o, int n_parallel, be_devices *d,
                               struct llama_model_params *mp, char *err, size_t errlen) {
    gpu_offload_req r = {
        .backend = o->gpu_backend,
        .mode = o->gpu_layers_mode,
        .layers = o->gpu_layers,
        .main_gpu = o->single_gpu ? o->main_gpu : -1,
        .tensor_split = o->tensor_split,
        .ctx = {.n_ctx_slot = o->n_ctx,
                .ctx_cap = LIM_DEFAULT_CTX,
                .n_parallel = n_parallel,
                .n_ubatch = LIM_BATCH_TOKENS,
                .type_k = kv_ggml[kv_index(o->cache_type_k)],
                .type_v = kv_ggml[kv_index(o->cache_type_v)],
                .draft_path = engine_options_spec(o) == SPEC_DRAFT ? o->draft_path : NULL}};
    shimmy_err rc = gpu_offload_plan(o->path, &r, &d->plan, err, errlen);
    if (rc != SHIMMY_OK)
        return rc;
    memset(d->list, 0, sizeof d->list);
    memset(d->split, 0, sizeof d->split);
    for (int k = 0; k < d->plan.n_dev; k++) {
        d->list[k] = ggml_backend_dev_get(d->plan.dev[k]);
        d->split[k] = d->plan.split[k];
    }
    mp->devices = d->list;
    mp->n_gpu_layers = d->plan.n_gpu_layers;
    mp->split_mode = LLAMA_SPLIT_MODE_LAYER;
    mp->main_gpu = 0;
    mp->tensor_split = d->split;
    return SHIMMY_OK;
}

static void keep_placement(be_model *b, const gpu_place_dev *pd, int n) {
    b->n_devs = 0;
    for (int i = 0; i < n && b->n_devs < LIM_GPU_DEVICES + 1; i++) {
        engine_device_use *u = &b->devs[b->n_devs++];
        snprintf(u->name, sizeof u->name, "%s", pd[i].name);
        snprintf(u->backend, sizeof u->backend, "%s", pd[i].backend);
        u->layers = pd[i].layers;
        u->weight_bytes = pd[i].weights;
        u->kv_bytes = pd[i].kv;
    }
}

/* Evaluates one token in a small context whose eval callback records which device holds each
 * weight and KV tensor; runs before the real context exists, so that a model fitted tightly to
 * a device's memory still has room for it. Returns false when the probe could not run. */
static bool probe_placement(be_model *b, const struct llama_context_params *real) {
    gpu_place *pl = gpu_place_new(llama_model_n_layer(b->model));
    if (pl == NULL)
        return false;
    int n_ctx_real = (int)real->n_ctx;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 256;
    cp.n_batch = cp.n_ubatch = 1;
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = real->n_threads;
    cp.type_k = real->type_k; /* the KV cache's size on each device depends on its types */
    cp.type_v = real->type_v;
    cp.flash_attn_type = real->flash_attn_type;
    cp.no_perf = true;
    cp.cb_eval = gpu_place_observe;
    cp.cb_eval_user_data = pl;
    struct llama_context *ctx = llama_init_from_model(b->model, cp);
    bool ok = false;
    if (ctx != NULL) {
        llama_token t = llama_vocab_bos(b->vocab);
        if (t == LLAMA_TOKEN_NULL)
            t = 0;
        ok = llama_decode(ctx, llama_batch_get_one(&t, 1)) == 0;
        double scale = (double)n_ctx_real / (double)llama_n_ctx(ctx);
        llama_free(ctx);
        gpu_place_dev pd[LIM_GPU_DEVICES + 1];
        int seen = 0;
        int n = gpu_place_result(pl, scale, pd, LIM_GPU_DEVICES + 1, &b->layers_offloaded, &seen);
        ok = ok && seen == b->layers_total;
        if (ok)
            keep_placement(b, pd, n);
    }
    gpu_place_free(pl);
    return ok;
}

/* --cache-type-k/v and --flash-attn into the context parameters (llama.cpp checks them: a
 * quantized V cache without flash attention fails the context with its own message). */
static void set_kv_options(struct llama_context_params *cp, const engine_options *o) {
    if (o->cache_type_k > KV_TYPE_DEFAULT && o->cache_type_k < KV_TYPE__COUNT)
        cp->type_k = kv_ggml[o->cache_type_k];
    if (o->cache_type_v > KV_TYPE_DEFAULT && o->cache_type_v < KV_TYPE__COUNT)
        cp->type_v = kv_ggml[o->cache_type_v];
    cp->flash_attn_type = o->flash_attn == FLASH_ATTN_ON    ? LLAMA_FLASH_ATTN_TYPE_ENABLED
                          : o->flash_attn == FLASH_ATTN_OFF ? LLAMA_FLASH_ATTN_TYPE_DISABLED
                                                            : LLAMA_FLASH_ATTN_TYPE_AUTO;
}

/* What the context runs with, for engine_model_info (auto as llama.cpp resolved it). */
static void keep_kv_options(be_model *b, const engine_options *o) {
    snprintf(b->kv_k, sizeof b->kv_k, "%s", engine_kv_type_name(o->cache_type_k));
    snprintf(b->kv_v, sizeof b->kv_v, "%s", engine_kv_type_name(o->cache_type_v));
    const char *fa = engine_flash_attn_name(o->flash_attn);
    if (o->flash_attn == FLASH_ATTN_AUTO && engine_kv_type_quantized(o->cache_type_v))
        fa = "on"; /* llama.cpp turns it on for a quantized V cache */
    else if (o->flash_attn == FLASH_ATTN_AUTO && fa_resolved >= 0)
        fa = fa_resolved ? "on" : "off";
    snprintf(b->fa, sizeof b->fa, "%s", fa);
}

/* One log line per device, and a warning when the model is not where the plan put it. */
static void report_placement(const be_model *b, const be_devices *d) {
    log_info("%s: %d/%d layers on GPU devices (%s)", b->name, b->layers_offloaded, b->layers_total,
             d->plan.why);
    for (int i = 0; i < b->n_devs; i++) {
        const engine_device_use *u = &b->devs[i];
        log_info("%s: %s: %d/%d layers, weights %.1f MiB, KV cache %.1f MiB", b->name, u->name,
                 u->layers, b->layers_total, u->weight_bytes / 1048576.0, u->kv_bytes / 1048576.0);
    }
    if (d->plan.layers_total > 0 && d->plan.plan.n_gpu != b->layers_offloaded)
        log_warn("%s: %d layers were planned for the GPU devices but %d are there", b->name,
                 d->plan.plan.n_gpu, b->layers_offloaded);
}

/* The chat template: --chat-template-file text, else a --template built-in name, else the
 * model's own (ChatML when it has none). An override that does not parse fails the load; the
 * model's own template that does not parse fails only chat requests (raw prompts still work). */
static shimmy_err choose_template(be_model *b, const engine_options *o, char *err, size_t errlen) {
    b->has_model_tmpl = llama_model_chat_template(b->model, NULL) != NULL;
    char why[400];
    shimmy_err rc =
        lchat_tmpl_new(b->model, o->template_text, o->template_override, &b->tmpl, why, sizeof why);
    if (rc == SHIMMY_OK) {
        if (!b->has_model_tmpl && o->template_text == NULL && o->template_override == NULL)
            log_info("%s: the model has no chat template; chat uses ChatML", b->name);
        return SHIMMY_OK;
    }
    if (o->template_text != NULL || o->template_override != NULL)
        return err_set(err, errlen, ERR_MODEL_LOAD,
                       "the chat template given for '%s' cannot be "
                       "used: %s",
                       b->name, why);
    snprintf(b->tmpl_err, sizeof b->tmpl_err,
             "the chat template of model '%.100s' cannot be used: "
             "%.300s (serve it with --chat-template-file FILE or --template NAME)",
             b->name, why);
    log_warn("%s", b->tmpl_err);
    return SHIMMY_OK;
}

/* One adapter for the whole context: every slot of this model runs with it, so no batch ever
 * mixes slots that want different adapters (a model with another adapter is another entry). */
static shimmy_err apply_lora(be_model *b, const engine_options *o, char *err, size_t errlen) {
    if (o->lora_path == NULL || o->lora_path[0] == '\0')
        return SHIMMY_OK;
    last_error[0] = '\0';
    b->lora = llama_adapter_lora_init(b->model, o->lora_path);
    if (b->lora == NULL)
        return err_set(err, errlen, ERR_MODEL_LOAD, "cannot load LoRA adapter %s for '%s': %s",
                       o->lora_path, b->name, last_error[0] ? last_error : "llama.cpp refused it");
    float scale = o->lora_scale;
    if (llama_set_adapters_lora(b->ctx, &b->lora, 1, &scale) != 0)
        return err_set(err, errlen, ERR_MODEL_LOAD, "cannot apply LoRA adapter %s to '%s'",
                       o->lora_path, b->name);
    log_info("%s: LoRA adapter %s applied with scale %.3g", b->name, o->lora_path, scale);
    return SHIMMY_OK;
}

/* llama.cpp's load progress, handed on to the options' callback; loading goes on. */
static bool on_progress(float fraction, void *user) {
    const engine_options *o = user;
    o->progress(o->progress_ctx, fraction);
    return true;
}

/* ---- the draft model (speculative decoding) ---- */

/* Why the draft's vocabulary cannot stand for the model's (llama-server's rule,
 * common_speculative_are_compatible: same type, same BOS/EOS use and ids, sizes within 128,
 * the same text for every token from id 5); "" when it can. */
static void draft_vocab_check(const struct llama_vocab *t, const struct llama_vocab *d, char *why,
                              size_t len) {
    why[0] = '\0';
    int nt = llama_vocab_n_tokens(t), nd = llama_vocab_n_tokens(d);
    if (llama_vocab_type(t) != llama_vocab_type(d)) {
        snprintf(why, len, "its tokenizer type differs (%d, the model's %d)",
                 (int)llama_vocab_type(d), (int)llama_vocab_type(t));
    } else if (llama_vocab_get_add_bos(t) != llama_vocab_get_add_bos(d) ||
               (llama_vocab_get_add_bos(t) && llama_vocab_bos(t) != llama_vocab_bos(d))) {
        snprintf(why, len, "its BOS token differs (%d, the model's %d)", llama_vocab_bos(d),
                 llama_vocab_bos(t));
    } else if (llama_vocab_get_add_eos(t) != llama_vocab_get_add_eos(d) ||
               (llama_vocab_get_add_eos(t) && llama_vocab_eos(t) != llama_vocab_eos(d))) {
        snprintf(why, len, "its EOS token differs (%d, the model's %d)", llama_vocab_eos(d),
                 llama_vocab_eos(t));
    } else if (nt - nd > 128 || nd - nt > 128) {
        snprintf(why, len, "its vocabulary has %d tokens, the model's %d (at most 128 apart)", nd,
                 nt);
    } else {
        for (int i = 5; i < nt && i < nd; i++)
            if (strcmp(llama_vocab_get_text(t, i), llama_vocab_get_text(d, i)) != 0) {
                snprintf(why, len, "token %d is '%.40s' there but '%.40s' in the model", i,
                         llama_vocab_get_text(d, i), llama_vocab_get_text(t, i));
                break;
            }
    }
}

/* Loads o->draft_path on the model's devices (all its layers offloaded when the model has any
 * offloaded, else on the CPU) with a context of the same sequences and length as the model's,
 * and checks its vocabulary. */
static shimmy_err load_draft(be_model *b, const engine_options *o,
                             const struct llama_model_params *tmp,
                             const struct llama_context_params *tcp, char *err, size_t errlen) {
    b->n_vocab = llama_vocab_n_tokens(b->vocab);
    if (engine_options_spec(o) != SPEC_NONE &&
        (llama_model_is_recurrent(b->model) || llama_model_is_hybrid(b->model)))
        return err_set(err, errlen, ERR_MODEL_LOAD,
                       "model '%s' keeps a recurrent state, which "
                       "cannot drop rejected draft tokens: serve it without speculative decoding "
                       "(--spec-type none)",
                       b->name);
    if (engine_options_spec(o) != SPEC_DRAFT)
        return SHIMMY_OK;
    if (o->draft_path == NULL || o->draft_path[0] == '\0')
        return err_set(err, errlen, ERR_MODEL_LOAD,
                       "model '%s': --spec-type draft-simple needs "
                       "a draft model (--model-draft PATH)",
                       b->name);
    struct llama_model_params mp = *tmp;
    mp.progress_callback = NULL;
    mp.n_gpu_layers = tmp->n_gpu_layers != 0 ? -1 : 0; /* negative: the model's are all there */
    last_error[0] = '\0';
    b->dmodel = llama_model_load_from_file(o->draft_path, mp);
    if (b->dmodel == NULL)
        return err_set(err, errlen, ERR_MODEL_LOAD, "cannot load the draft model %s for '%s': %s",
                       o->draft_path, b->name,
                       last_error[0] ? last_error
                                     : "llama.cpp refused the "
                                       "file");
    char why[256];
    draft_vocab_check(b->vocab, llama_model_get_vocab(b->dmodel), why, sizeof why);
    if (why[0] != '\0')
        return err_set(err, errlen, ERR_MODEL_LOAD,
                       "the draft model %s cannot draft for '%s': "
                       "its vocabulary is not the model's: %s",
                       o->draft_path, b->name, why);
    struct llama_context_params cp = *tcp;
    cp.n_ctx = (uint32_t)b->n_ctx_slot * (uint32_t)b->n_parallel;
    cp.type_k = cp.type_v = GGML_TYPE_F16; /* llama-server's draft default (-ctkd/-ctvd) */
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_AUTO;
    b->dctx = llama_init_from_model(b->dmodel, cp);
    if (b->dctx == NULL)
        return err_set(err, errlen, ERR_MODEL_LOAD,
                       "cannot create a context for the draft model "
                       "%s of '%s': %s",
                       o->draft_path, b->name, last_error[0] ? last_error : "out of memory?");
    if (b->tp != NULL)
        llama_attach_threadpool(b->dctx, b->tp, NULL); /* used in turn with ctx, never at once */
    b->dn_batch = (int)llama_n_batch(b->dctx);
    b->dbatch = llama_batch_init(b->dn_batch, 0, 1);
    llama_model_desc(b->dmodel, b->ddesc, sizeof b->ddesc);
    log_info("%s: draft model %s (%s) for speculative decoding", b->name, o->draft_path, b->ddesc);
    return SHIMMY_OK;
}

bool be_has_draft(const be_model *b) {
    return b->dctx != NULL;
}

/* Appends one token of sequence seq at position pos to bt (the caller keeps within its size);
 * returns its logits index when want_logits, else -1. */
static int batch_put(struct llama_batch *bt, be_token t, int pos, int seq, bool want_logits) {
    int i = bt->n_tokens++;
    bt->token[i] = t;
    bt->pos[i] = pos;
    bt->n_seq_id[i] = 1;
    bt->seq_id[i][0] = seq;
    bt->logits[i] = want_logits;
    return want_logits ? i : -1;
}

void be_draft_batch_clear(be_model *b) {
    b->dbatch.n_tokens = 0;
}

int be_draft_batch_cap(const be_model *b) {
    return b->dn_batch;
}

int be_draft_batch_add(be_model *b, be_token t, int pos, int seq, bool want_logits) {
    return batch_put(&b->dbatch, t, pos, seq, want_logits);
}

shimmy_err be_draft_decode(be_model *b, char *err, size_t errlen) {
    int32_t rc = llama_decode(b->dctx, b->dbatch);
    if (rc != 0)
        return err_set(err, errlen, ERR_INTERNAL,
                       "the draft model's llama_decode failed (code "
                       "%d) on a batch of %d tokens",
                       rc, b->dbatch.n_tokens);
    return SHIMMY_OK;
}

be_token be_draft_top(be_model *b, int idx, float *p) {
    enum { TOP = 10 };
    const float *logits = llama_get_logits_ith(b->dctx, idx);
    int n = llama_vocab_n_tokens(llama_model_get_vocab(b->dmodel)), k = 0;
    float top[TOP];
    be_token best = 0;
    for (int v = 0; v < n; v++) { /* the 10 largest logits, largest first */
        float l = logits[v];
        if (k == TOP && l <= top[TOP - 1])
            continue;
        int i = k < TOP ? k++ : TOP - 1;
        while (i > 0 && top[i - 1] < l) {
            top[i] = top[i - 1];
            i--;
        }
        top[i] = l;
        if (i == 0)
            best = v;
    }
    double sum = 0;
    for (int i = 0; i < k; i++)
        sum += exp((double)(top[i] - top[0]));
    *p = (float)(1.0 / sum);
    return best < b->n_vocab ? best : BE_TOKEN_NONE;
}

void be_draft_truncate(be_model *b, int seq, int from) {
    llama_memory_seq_rm(llama_get_memory(b->dctx), seq, from, -1);
}

/* Step 1 of be_load: the device plan into mp (gpu/offload.h), then the weights. d borrows into
 * mp (devices, tensor_split); llama.cpp copies both into the model (llama-model.cpp keeps its
 * own tensor_split), so d may live on the caller's frame. */
static shimmy_err load_weights(be_model *b, const engine_options *o, struct llama_model_params *mp,
                               be_devices *d, char *err, size_t errlen) {
    mp->progress_callback = o->progress != NULL ? on_progress : NULL;
    mp->progress_callback_user_data = (void *)o;
    shimmy_err rc = plan_devices(o, b->n_parallel, d, mp, err, errlen);
    if (rc != SHIMMY_OK)
        return rc;
    last_error[0] = '\0';
    b->model = llama_model_load_from_file(o->path, *mp);
    if (b->model == NULL)
        return err_set(err, errlen, ERR_MODEL_LOAD, "cannot load model '%s' from %s: %s", b->name,
                       o->path, last_error[0] ? last_error : "llama.cpp refused the file");
    b->vocab = llama_model_get_vocab(b->model);
    b->layers_total = llama_model_n_layer(b->model) + 1;
    return SHIMMY_OK;
}

/* Step 2: the context parameters: n_parallel sequences of *n_ctx tokens each (--ctx, else the
 * trained context capped at LIM_DEFAULT_CTX), the batch, threads and KV cache options. */
static void context_params(const be_model *b, const engine_options *o,
                           struct llama_context_params *cp, int *n_ctx) {
    int n_train = llama_model_n_ctx_train(b->model);
    *n_ctx = o->n_ctx > 0 ? o->n_ctx : (n_train < LIM_DEFAULT_CTX ? n_train : LIM_DEFAULT_CTX);
    if (*n_ctx <= 0)
        *n_ctx = LIM_DEFAULT_CTX;
    *cp = llama_context_default_params();
    cp->n_ctx = (uint32_t)*n_ctx * (uint32_t)b->n_parallel;
    cp->n_seq_max = (uint32_t)b->n_parallel;
    cp->kv_unified = false;
    cp->n_batch = LIM_BATCH_TOKENS;
    cp->n_ubatch = LIM_BATCH_TOKENS;
    cp->n_threads = o->n_threads > 0 ? o->n_threads : default_threads();
    cp->n_threads_batch = cp->n_threads;
    cp->no_perf = true;
    set_kv_options(cp, o);
}

/* Step 3: where the layers went (read back through a probe context), then the context itself,
 * its threadpool and the reusable batch. */
static shimmy_err create_context(be_model *b, const engine_options *o,
                                 const struct llama_context_params *cp, int n_ctx,
                                 const be_devices *d, char *err, size_t errlen) {
    if (!probe_placement(b, cp))
        log_warn("%s: could not read the layer placement back from the model", b->name);
    fa_resolved = -1;
    b->ctx = llama_init_from_model(b->model, *cp);
    keep_kv_options(b, o);
    if (b->ctx == NULL)
        return err_set(err, errlen, ERR_MODEL_LOAD,
                       "cannot create a context for '%s' (%d slots x %d tokens): %s", b->name,
                       b->n_parallel, n_ctx, last_error[0] ? last_error : "out of memory?");
    report_placement(b, d);
    attach_threadpool(b, cp->n_threads);
    b->n_ctx_slot = (int)llama_n_ctx_seq(b->ctx);
    if (b->n_ctx_slot > n_ctx)
        b->n_ctx_slot = n_ctx;
    b->n_batch = (int)llama_n_batch(b->ctx);
    b->batch = llama_batch_init(b->n_batch, 0, 1);
    return SHIMMY_OK;
}

shimmy_err be_load(const engine_options *o, be_model **out, char *err, size_t errlen) {
    be_model *b = calloc(1, sizeof *b);
    if (b == NULL)
        return ERR_NOMEM;
    snprintf(b->name, sizeof b->name, "%s", o->name ? o->name : o->path);
    b->n_parallel = o->n_parallel > 0 ? o->n_parallel : LIM_DEFAULT_PARALLEL;
    struct llama_model_params mp = llama_model_default_params();
    struct llama_context_params cp;
    be_devices devs;
    int n_ctx;
    shimmy_err rc = load_weights(b, o, &mp, &devs, err, errlen);
    if (rc == SHIMMY_OK) {
        context_params(b, o, &cp, &n_ctx);
        rc = create_context(b, o, &cp, n_ctx, &devs, err, errlen);
    }
    if (rc == SHIMMY_OK)
        rc = apply_lora(b, o, err, errlen);
    if (rc == SHIMMY_OK)
        rc = choose_template(b, o, err, errlen);
    if (rc == SHIMMY_OK)
        rc = load_draft(b, o, &mp, &cp, err, errlen);
    if (rc == SHIMMY_OK)
        rc = load_projector(b, o, cp.n_threads, err, errlen);
    if (rc != SHIMMY_OK) {
        be_free(b);
        return rc;
    }
    b->loaded_at = clock_wall_s();
    *out = b;
    return SHIMMY_OK;
}

/* Attaches a persistent CPU threadpool to the context, as llama.cpp's own tools do: without it
 * every llama_decode starts and joins its worker threads, which costs more than the whole step
 * on a small model. The functions live in the CPU backend module, found through its registry. */
static void attach_threadpool(be_model *b, int n_threads) {
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (cpu == NULL || n_threads <= 1)
        return;
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(cpu);
    struct ggml_threadpool *(*tp_new)(struct ggml_threadpool_params *) =
        (struct ggml_threadpool * (*)(struct ggml_threadpool_params *))
            ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_new");
    b->tp_free = (void (*)(struct ggml_threadpool *))ggml_backend_reg_get_proc_address(
        reg, "ggml_threadpool_free");
    if (tp_new == NULL || b->tp_free == NULL)
        return;
    struct ggml_threadpool_params tpp = ggml_threadpool_params_default(n_threads);
    b->tp = tp_new(&tpp);
    if (b->tp == NULL) {
        log_warn("%s: no persistent CPU threadpool (%d threads); decoding starts threads each step",
                 b->name, n_threads);
        return;
    }
    llama_attach_threadpool(b->ctx, b->tp, NULL);
}

void be_free(be_model *b) {
    if (b == NULL)
        return;
    if (b->dbatch.token != NULL)
        llama_batch_free(b->dbatch);
    if (b->dctx != NULL)
        llama_free(b->dctx);
    if (b->dmodel != NULL)
        llama_model_free(b->dmodel);
    if (b->mtmd != NULL)
        mtmd_free(b->mtmd);
    if (b->batch.token != NULL)
        llama_batch_free(b->batch);
    if (b->ectx != NULL)
        llama_free(b->ectx);
    if (b->ctx != NULL)
        llama_free(b->ctx);
    if (b->tp != NULL)
        b->tp_free(b->tp);
    lchat_tmpl_free(b->tmpl);
    if (b->model != NULL)
        llama_model_free(b->model);
    free(b);
}

int be_n_ctx_slot(const be_model *b) {
    return b->n_ctx_slot;
}
int be_n_batch(const be_model *b) {
    return b->n_batch;
}

void be_fill_info(const be_model *b, engine_model_info *info) {
    snprintf(info->name, sizeof info->name, "%s", b->name);
    llama_model_desc(b->model, info->desc, sizeof info->desc);
    info->n_ctx_train = llama_model_n_ctx_train(b->model);
    info->n_ctx_slot = b->n_ctx_slot;
    info->n_parallel = b->n_parallel;
    info->n_vocab = llama_vocab_n_tokens(b->vocab);
    info->n_params = llama_model_n_params(b->model);
    info->size_bytes = llama_model_size(b->model);
    info->has_chat_template = b->has_model_tmpl;
    info->loaded_at = b->loaded_at;
    info->layers_total = b->layers_total;
    info->layers_offloaded = b->layers_offloaded;
    info->n_devices = b->n_devs;
    memcpy(info->devices, b->devs, sizeof b->devs);
    info->reranker = be_is_rank(b);
    snprintf(info->cache_type_k, sizeof info->cache_type_k, "%s", b->kv_k);
    snprintf(info->cache_type_v, sizeof info->cache_type_v, "%s", b->kv_v);
    snprintf(info->flash_attn, sizeof info->flash_attn, "%s", b->fa);
    snprintf(info->draft_desc, sizeof info->draft_desc, "%s", b->ddesc);
    info->vision = be_media_supported(b, GEN_MEDIA_IMAGE);
    info->audio = be_media_supported(b, GEN_MEDIA_AUDIO);
}

/* ---- text ---- */

int be_tokenize(const be_model *b, const char *text, size_t len, be_token *out, int cap) {
    if (len > INT_MAX)
        return -1;
    int n = llama_tokenize(b->vocab, text, (int32_t)len, out, cap, true, true);
    if (n < 0)
        return -n <= cap ? -1 : -n; /* too small: report the count needed */
    llama_token bos = llama_vocab_bos(b->vocab);
    if (n >= 2 && bos != LLAMA_TOKEN_NULL && out[0] == bos && out[1] == bos) {
        memmove(out, out + 1, (size_t)(n - 1) * sizeof *out); /* the template already had BOS */
        n--;
    }
    return n;
}

shimmy_err be_render(const be_model *b, const char *chat_json, const char *json_schema,
                     int64_t now_s, bool generate, lchat_render *out, char *err, size_t errlen,
                     char *param, size_t paramlen) {
    if (b->tmpl == NULL) {
        memset(out, 0, sizeof *out);
        snprintf(param, paramlen, "model");
        return err_set(err, errlen, ERR_UNSUPPORTED, "%s", b->tmpl_err);
    }
    return lchat_render_chat(b->tmpl, b->model, chat_json, json_schema, now_s, generate, out, err,
                             errlen, param, paramlen);
}

shimmy_err be_template(const be_model *b, char **source, engine_tmpl_caps *caps) {
    memset(caps, 0, sizeof *caps);
    if (b->tmpl != NULL)
        lchat_tmpl_caps(b->tmpl, caps);
    *source = strdup(b->tmpl != NULL ? lchat_tmpl_source(b->tmpl) : "");
    return *source != NULL ? SHIMMY_OK : ERR_NOMEM;
}

int be_tokenize_ex(const be_model *b, const char *text, size_t len, bool add_special,
                   bool parse_special, be_token *out, int cap) {
    if (len > INT_MAX)
        return -1;
    int n = llama_tokenize(b->vocab, text, (int32_t)len, out, cap, add_special, parse_special);
    if (n < 0)
        return -n <= cap ? -1 : -n;
    return n;
}

bool be_token_valid(const be_model *b, be_token t) {
    return t >= 0 && t < llama_vocab_n_tokens(b->vocab);
}

shimmy_err be_piece(const be_model *b, be_token t, bool special, buf *out) {
    char small[128];
    int n = llama_token_to_piece(b->vocab, t, small, sizeof small, 0, special);
    if (n >= 0)
        return buf_append(out, small, (size_t)n);
    char *big = malloc((size_t)-n);
    if (big == NULL)
        return ERR_NOMEM;
    int m = llama_token_to_piece(b->vocab, t, big, -n, 0, special);
    shimmy_err e = m >= 0 ? buf_append(out, big, (size_t)m) : ERR_INTERNAL;
    free(big);
    return e;
}

shimmy_err be_detokenize(const be_model *b, const be_token *t, int n, buf *out) {
    int cap = n * 8 + 64;
    for (int attempt = 0; attempt < 2; attempt++) {
        char *tmp = malloc((size_t)cap);
        if (tmp == NULL)
            return ERR_NOMEM;
        int m = llama_detokenize(b->vocab, t, n, tmp, cap, false, true);
        if (m >= 0) {
            shimmy_err e = buf_append(out, tmp, (size_t)m);
            free(tmp);
            return e;
        }
        free(tmp);
        cap = -m + 1;
    }
    return ERR_INTERNAL;
}

bool be_is_eog(const be_model *b, be_token t) {
    return llama_vocab_is_eog(b->vocab, t);
}

/* ---- batches ---- */

void be_batch_clear(be_model *b) {
    b->batch.n_tokens = 0;
}

int be_batch_add(be_model *b, be_token t, int pos, int seq, bool want_logits) {
    return batch_put(&b->batch, t, pos, seq, want_logits);
}

int be_batch_size(const be_model *b) {
    return b->batch.n_tokens;
}

shimmy_err be_decode(be_model *b, char *err, size_t errlen) {
    int32_t rc = llama_decode(b->ctx, b->batch);
    if (rc != 0)
        return err_set(err, errlen, ERR_INTERNAL,
                       "llama_decode failed (code %d) on a batch of %d tokens", rc,
                       b->batch.n_tokens);
    return SHIMMY_OK;
}

void be_seq_truncate(be_model *b, int seq, int from) {
    llama_memory_seq_rm(llama_get_memory(b->ctx), seq, from, -1);
}

bool be_seq_copy(be_model *b, int src, int dst, int n) {
    llama_memory_t mem = llama_get_memory(b->ctx);
    llama_memory_seq_rm(mem, dst, -1, -1);
    llama_memory_seq_cp(mem, src, dst, -1, -1);
    if (llama_memory_seq_rm(mem, dst, n, -1))
        return true;
    llama_memory_seq_rm(mem, dst, -1, -1);
    return false;
}

shimmy_err be_seq_save(be_model *b, int seq, void **data, size_t *size) {
    size_t n = llama_state_seq_get_size(b->ctx, seq);
    *data = NULL;
    *size = 0;
    if (n == 0)
        return ERR_INTERNAL;
    uint8_t *d = malloc(n);
    if (d == NULL)
        return ERR_NOMEM;
    if (llama_state_seq_get_data(b->ctx, d, n, seq) != n) {
        free(d);
        return ERR_INTERNAL;
    }
    *data = d;
    *size = n;
    return SHIMMY_OK;
}

shimmy_err be_seq_restore(be_model *b, int seq, const void *data, size_t size) {
    be_seq_truncate(b, seq, 0);
    if (llama_state_seq_set_data(b->ctx, data, size, seq) != size) {
        be_seq_truncate(b, seq, 0);
        return ERR_INTERNAL;
    }
    return SHIMMY_OK;
}

/* ---- sampling ---- */

be_sampler *be_sampler_new(const be_model *b, const gen_params *p, const lchat_render *g,
                           uint32_t seed) {
    be_sampler *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    struct llama_sampler_chain_params cp = llama_sampler_chain_default_params();
    cp.no_perf = true;
    s->chain = llama_sampler_chain_init(cp);
    if (s->chain == NULL) {
        free(s);
        return NULL;
    }
    /* Same order as llama.cpp's common sampler: penalties, top-k, top-p, min-p, temperature. */
    if (p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f)
        llama_sampler_chain_add(
            s->chain, llama_sampler_init_penalties(llama_vocab_n_tokens(b->vocab), p->repeat_last_n,
                                                   p->repeat_penalty, p->frequency_penalty,
                                                   p->presence_penalty));
    if (g != NULL && g->grammar != NULL) {
        s->n_vocab = llama_vocab_n_tokens(b->vocab);
        s->grammar = lchat_grammar_sampler(b->vocab, g);
        s->cur = malloc((size_t)s->n_vocab * sizeof *s->cur);
        if (s->grammar == NULL || s->cur == NULL) {
            be_sampler_free(s);
            return NULL;
        }
    }
    if (p->temperature <= 0.0f) {
        llama_sampler_chain_add(s->chain, llama_sampler_init_greedy());
        return s;
    }
    if (p->top_k > 0)
        llama_sampler_chain_add(s->chain, llama_sampler_init_top_k(p->top_k));
    if (p->top_p < 1.0f)
        llama_sampler_chain_add(s->chain, llama_sampler_init_top_p(p->top_p, 1));
    if (p->min_p > 0.0f)
        llama_sampler_chain_add(s->chain, llama_sampler_init_min_p(p->min_p, 1));
    llama_sampler_chain_add(s->chain, llama_sampler_init_temp(p->temperature));
    llama_sampler_chain_add(s->chain, llama_sampler_init_dist(seed));
    return s;
}

bool be_grammar_ok(const be_model *b, const lchat_render *g) {
    struct llama_sampler *s = lchat_grammar_sampler(b->vocab, g);
    if (s == NULL)
        return false;
    /* A whole (not lazy) grammar must allow some first token: one that allows none comes from a
     * schema no value can meet, and is better refused now than after the answer began. */
    bool any = g->grammar_lazy;
    int n = llama_vocab_n_tokens(b->vocab);
    llama_token_data *cur = any ? NULL : malloc((size_t)n * sizeof *cur);
    if (cur != NULL) {
        for (int t = 0; t < n; t++)
            cur[t] = (llama_token_data){t, 0.0f, 0.0f};
        llama_token_data_array arr = {cur, (size_t)n, -1, false};
        llama_sampler_apply(s, &arr);
        for (size_t i = 0; i < arr.size && !any; i++)
            any = arr.data[i].logit != -INFINITY;
        free(cur);
    }
    llama_sampler_free(s);
    return any || (!g->grammar_lazy && cur == NULL); /* out of memory: let sampling decide */
}

/* ---- embeddings ---- */

int be_n_embd(const be_model *b) {
    return llama_model_n_embd(b->model);
}

/* The embeddings context: the model's own pooling, or mean pooling when it has none (a
 * generative model), all tokens of a text in one micro-batch. */
static shimmy_err embed_ctx(be_model *b, char *err, size_t errlen) {
    if (b->ectx != NULL)
        return SHIMMY_OK;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)b->n_ctx_slot;
    cp.n_batch = cp.n_ubatch = (uint32_t)b->n_ctx_slot;
    cp.n_seq_max = 1;
    cp.embeddings = true;
    cp.no_perf = true;
    cp.n_threads = cp.n_threads_batch = default_threads();
    for (int attempt = 0; attempt < 2 && b->ectx == NULL; attempt++) {
        cp.pooling_type = attempt == 0 ? LLAMA_POOLING_TYPE_UNSPECIFIED : LLAMA_POOLING_TYPE_MEAN;
        b->ectx = llama_init_from_model(b->model, cp);
        if (b->ectx != NULL && llama_pooling_type(b->ectx) == LLAMA_POOLING_TYPE_NONE) {
            llama_free(b->ectx);
            b->ectx = NULL;
        }
    }
    if (b->ectx == NULL)
        return err_set(err, errlen, ERR_INTERNAL, "cannot create an embeddings context for '%s'",
                       b->name);
    return SHIMMY_OK;
}

/* Evaluates tokens[0..n) as one sequence in the embeddings context; *pooled = the sequence's
 * pooled output (n_embd floats, or n_cls_out for rank pooling), valid until the next call. */
static shimmy_err embed_eval(be_model *b, const be_token *tokens, int n, const float **pooled,
                             char *err, size_t errlen) {
    shimmy_err rc = embed_ctx(b, err, errlen);
    if (rc != SHIMMY_OK)
        return rc;
    if (n > b->n_ctx_slot)
        return err_set(err, errlen, ERR_CONTEXT_LENGTH,
                       "the input has %d tokens but the "
                       "context of model '%s' holds %d",
                       n, b->name, b->n_ctx_slot);
    llama_memory_clear(llama_get_memory(b->ectx), true);
    struct llama_batch bt = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        bt.token[i] = tokens[i];
        bt.pos[i] = i;
        bt.n_seq_id[i] = 1;
        bt.seq_id[i][0] = 0;
        bt.logits[i] = true;
    }
    bt.n_tokens = n;
    bool enc = llama_model_has_encoder(b->model) && !llama_model_has_decoder(b->model);
    int32_t r = enc ? llama_encode(b->ectx, bt) : llama_decode(b->ectx, bt);
    llama_batch_free(bt);
    *pooled = r == 0 ? llama_get_embeddings_seq(b->ectx, 0) : NULL;
    if (*pooled == NULL)
        return err_set(err, errlen, ERR_INTERNAL, "computing the embedding failed (code %d)", r);
    return SHIMMY_OK;
}

shimmy_err be_embed(be_model *b, const be_token *tokens, int n, float *out, char *err,
                    size_t errlen) {
    const float *e = NULL;
    shimmy_err rc = embed_eval(b, tokens, n, &e, err, errlen);
    if (rc != SHIMMY_OK)
        return rc;
    int d = llama_model_n_embd(b->model);
    double norm = 0;
    for (int i = 0; i < d; i++)
        norm += (double)e[i] * e[i];
    norm = norm > 0 ? sqrt(norm) : 1.0;
    for (int i = 0; i < d; i++)
        out[i] = (float)(e[i] / norm);
    return SHIMMY_OK;
}

/* ---- reranking ---- */

bool be_is_rank(const be_model *b) {
    char arch[64], key[128], val[16];
    if (llama_model_meta_val_str(b->model, "general.architecture", arch, sizeof arch) < 0)
        return false;
    snprintf(key, sizeof key, "%s.pooling_type", arch);
    return llama_model_meta_val_str(b->model, key, val, sizeof val) >= 0 &&
           strtol(val, NULL, 10) == LLAMA_POOLING_TYPE_RANK;
}

/* Appends the tokens of text (no special tokens added or parsed) at out[*n]; false when they
 * do not fit cap. */
static bool push_text(const be_model *b, const char *text, be_token *out, int *n, int cap) {
    size_t len = strlen(text);
    if (len > INT_MAX)
        return false;
    int k = llama_tokenize(b->vocab, text, (int32_t)len, out + *n, cap - *n, false, false);
    if (k < 0)
        return false;
    *n += k;
    return true;
}

static bool push_tok(be_token t, be_token *out, int *n, int cap) {
    if (*n >= cap)
        return false;
    out[(*n)++] = t;
    return true;
}

/* The model's "rerank" template with {query} and {document} replaced; owned, NULL = none. */
static char *rerank_prompt(const be_model *b, const char *query, const char *doc) {
    const char *t = llama_model_chat_template(b->model, "rerank");
    if (t == NULL)
        return NULL;
    buf out;
    buf_init(&out, LIM_BODY_BYTES * 2);
    while (*t != '\0') {
        const char *q = strstr(t, "{query}"), *d = strstr(t, "{document}");
        const char *at = q && (!d || q < d) ? q : d;
        if (at == NULL) {
            buf_puts(&out, t);
            break;
        }
        const char *with = at == q ? query : doc;
        buf_append(&out, t, (size_t)(at - t));
        buf_puts(&out, with);
        t = at + (at == q ? strlen("{query}") : strlen("{document}"));
    }
    if (buf_append(&out, "", 1) != SHIMMY_OK) {
        buf_free(&out);
        return NULL;
    }
    return buf_take(&out);
}

int be_rerank_tokens(const be_model *b, const char *query, const char *doc, be_token *out,
                     int cap) {
    char *prompt = rerank_prompt(b, query, doc);
    if (prompt != NULL) {
        int n = be_tokenize_ex(b, prompt, strlen(prompt), false, true, out, cap);
        free(prompt);
        return n;
    }
    const struct llama_vocab *v = b->vocab;
    llama_token eos = llama_vocab_eos(v);
    if (eos == LLAMA_TOKEN_NULL)
        eos = llama_vocab_sep(v);
    int n = 0;
    bool ok = (!llama_vocab_get_add_bos(v) || push_tok(llama_vocab_bos(v), out, &n, cap)) &&
              push_text(b, query, out, &n, cap) &&
              (!llama_vocab_get_add_eos(v) || push_tok(eos, out, &n, cap)) &&
              (!llama_vocab_get_add_sep(v) || push_tok(llama_vocab_sep(v), out, &n, cap)) &&
              push_text(b, doc, out, &n, cap) &&
              (!llama_vocab_get_add_eos(v) || push_tok(eos, out, &n, cap));
    return ok ? n : cap + 1;
}

shimmy_err be_rank(be_model *b, const be_token *tokens, int n, float *score, char *err,
                   size_t errlen) {
    const float *e = NULL;
    shimmy_err rc = embed_eval(b, tokens, n, &e, err, errlen);
    if (rc == SHIMMY_OK)
        *score = e[0];
    return rc;
}

void be_sampler_free(be_sampler *s) {
    if (s == NULL)
        return;
    llama_sampler_free(s->chain);
    if (s->grammar != NULL)
        llama_sampler_free(s->grammar);
    free(s->cur);
    free(s);
}

void be_sampler_accept(be_sampler *s, be_token t) {
    llama_sampler_accept(s->chain, t);
}

/* With a grammar: candidates from the logits, the grammar masks them, the chain picks; both
 * accept the pick (as llama.cpp's common sampler does). */
static be_token sample_grammar(be_model *b, be_sampler *s, int idx) {
    const float *logits = llama_get_logits_ith(b->ctx, idx);
    for (int t = 0; t < s->n_vocab; t++)
        s->cur[t] = (llama_token_data){t, logits[t], 0.0f};
    llama_token_data_array arr = {s->cur, (size_t)s->n_vocab, -1, false};
    llama_sampler_apply(s->grammar, &arr);
    bool any = false;
    for (size_t i = 0; i < arr.size && !any; i++)
        any = arr.data[i].logit != -INFINITY;
    if (!any)
        return BE_TOKEN_NONE; /* no token continues the grammar (an unsatisfiable schema) */
    llama_sampler_apply(s->chain, &arr);
    llama_token t = arr.selected >= 0 ? arr.data[arr.selected].id : llama_vocab_eos(b->vocab);
    if (!lchat_grammar_accept(s->grammar, t))
        return BE_TOKEN_NONE;
    llama_sampler_accept(s->chain, t);
    return t;
}

/* Puts (t, l) into top[0..*n) (most likely first, at most cap) when it belongs there. */
static void top_insert(be_logprob *top, int *n, int cap, be_token t, float l) {
    if (*n == cap && l <= top[cap - 1].logprob)
        return;
    int i = *n < cap ? (*n)++ : cap - 1;
    while (i > 0 && top[i - 1].logprob < l) {
        top[i] = top[i - 1];
        i--;
    }
    top[i] = (be_logprob){t, l};
}

void be_logprobs(be_model *b, int idx, be_token t, int n_top, be_logprob *out) {
    const float *logits = llama_get_logits_ith(b->ctx, idx);
    int n_vocab = llama_vocab_n_tokens(b->vocab), n = 0;
    float max = -INFINITY;
    for (int v = 0; v < n_vocab; v++)
        max = logits[v] > max ? logits[v] : max;
    double sum = 0;
    for (int v = 0; v < n_vocab; v++)
        sum += exp((double)(logits[v] - max));
    float lse = max + (float)log(sum);
    out[0] = (be_logprob){t, logits[t] - lse};
    for (int v = 0; v < n_vocab && n_top > 0; v++)
        top_insert(out + 1, &n, n_top, v, logits[v] - lse);
    for (int i = 0; i <= n; i++)
        out[i].logprob = out[i].logprob > 0 ? 0 : out[i].logprob; /* rounding of the largest */
}

be_token be_sample(be_model *b, be_sampler *s, int idx) {
    if (s->grammar != NULL)
        return sample_grammar(b, s, idx);
    return llama_sampler_sample(s->chain, b->ctx, idx);
}

/* ---- media: llama.cpp's libmtmd ----
 * The projector is loaded beside the text model. A prompt with media is tokenized by
 * mtmd_tokenize (thread-safe: the HTTP threads do it, as llama-server's do), which cuts it into
 * text chunks and image/audio chunks; the text chunks' tokens and a placeholder run per media
 * chunk make the job's token array, so that the scheduler's prefix reuse, KV copies and the
 * prompt cache work on media unchanged. The engine thread evaluates a media chunk when the
 * prompt reaches it (be_media_eval). A chunk takes n_pos positions for its n_tokens tokens: the
 * same count, except for images of M-RoPE models (Qwen2-VL, Qwen2.5-VL, Qwen3-VL), whose grid of
 * nx by ny tokens takes max(nx, ny) positions (be_media_pos: llama-server's pos_next). */

struct be_media {
    mtmd_input_chunks *chunks;
    int n; /* media chunks */
    struct be_media_span {
        int start, len;                /* prompt token indexes: the first, the count */
        int n_pos;                     /* positions it takes in the sequence (libmtmd's) */
        const mtmd_input_chunk *chunk; /* borrowed from chunks */
    } * spans;
};

/* stb_image's header check (compiled into libmtmd's helper): the size an image claims, read
 * before its pixels are decoded. */
extern int stbi_info_from_memory(const unsigned char *buffer, int len, int *x, int *y, int *comp);

static void on_mtmd_log(enum ggml_log_level level, const char *text, void *user) {
    on_llama_log(level, text, user);
}

static shimmy_err load_projector(be_model *b, const engine_options *o, int n_threads, char *err,
                                 size_t errlen) {
    if (o->mmproj == NULL || o->mmproj[0] == '\0')
        return SHIMMY_OK;
    mtmd_log_set(on_mtmd_log, NULL);
    mtmd_helper_log_set(on_mtmd_log, NULL);
    struct mtmd_context_params mp = mtmd_context_params_default();
    mp.use_gpu = b->layers_offloaded > 0;
    mp.n_threads = n_threads;
    mp.print_timings = false;
    mp.media_marker = engine_media_marker();
    mp.warmup = false;
    last_error[0] = '\0';
    b->mtmd = mtmd_init_from_file(o->mmproj, b->model, mp);
    if (b->mtmd == NULL)
        return err_set(err, errlen, ERR_MODEL_LOAD,
                       "cannot load the projector of model '%s' "
                       "from %s: %s",
                       b->name, o->mmproj, last_error[0] ? last_error : "libmtmd refused the file");
    log_info("%s: projector %s loaded (%s%s%s)", b->name, o->mmproj,
             mtmd_support_vision(b->mtmd) ? "images" : "",
             mtmd_support_vision(b->mtmd) && mtmd_support_audio(b->mtmd) ? ", " : "",
             mtmd_support_audio(b->mtmd) ? "audio" : "");
    return SHIMMY_OK;
}

bool be_media_supported(const be_model *b, gen_media_kind kind) {
    if (b->mtmd == NULL)
        return false;
    return kind == GEN_MEDIA_AUDIO ? mtmd_support_audio(b->mtmd) : mtmd_support_vision(b->mtmd);
}

static const char *kind_plural(gen_media_kind k) {
    return k == GEN_MEDIA_AUDIO ? "audio" : "images";
}

static bool is_webp(const gen_media *m) {
    return m->len >= 12 && memcmp(m->data, "RIFF", 4) == 0 && memcmp(m->data + 8, "WEBP", 4) == 0;
}

/* A WebP image through libwebp (libmtmd's helper would need an ffmpeg binary), with the id the
 * helper gives other images' bitmaps (a hash of the file's bytes: prefix reuse tells images
 * apart by it). Returns NULL when it does not decode. */
static mtmd_bitmap *decode_webp(const gen_media *m) {
    int w = 0, h = 0;
    uint8_t *rgb = WebPDecodeRGB(m->data, m->len, &w, &h);
    if (rgb == NULL)
        return NULL;
    mtmd_bitmap *bm = mtmd_bitmap_init((uint32_t)w, (uint32_t)h, rgb);
    WebPFree(rgb);
    uint64_t hash = 14695981039346656037ULL; /* FNV-1a 64 */
    for (size_t i = 0; i < m->len; i++)
        hash = (hash ^ m->data[i]) * 1099511628211ULL;
    char id[32];
    snprintf(id, sizeof id, "webp-%016llx", (unsigned long long)hash);
    if (bm != NULL)
        mtmd_bitmap_set_id(bm, id);
    return bm;
}

/* Decodes media item m into a bitmap. Returns owned *out. */
static shimmy_err decode_media(const be_model *b, const gen_media *m, mtmd_bitmap **out, char *err,
                               size_t errlen, char *param, size_t paramlen) {
    *out = NULL;
    snprintf(param, paramlen, "%s", m->param ? m->param : "");
    if (!be_media_supported(b, m->kind))
        return err_set(err, errlen, ERR_BAD_PARAM, "model %s does not support %s%s", b->name,
                       kind_plural(m->kind),
                       b->mtmd == NULL ? " (it has no projector: "
                                         "give one with --mmproj)"
                                       : "");
    if (m->len > LIM_MEDIA_BYTES || m->len > INT_MAX)
        return err_set(err, errlen, ERR_TOO_LARGE, "%s is %zu bytes; at most %u are accepted",
                       m->param, m->len, LIM_MEDIA_BYTES);
    int x = 0, y = 0, comp = 0;
    bool webp = m->kind == GEN_MEDIA_IMAGE && is_webp(m);
    bool sized = webp ? WebPGetInfo(m->data, m->len, &x, &y) != 0
                      : m->kind == GEN_MEDIA_IMAGE &&
                            stbi_info_from_memory(m->data, (int)m->len, &x, &y, &comp) != 0;
    if (sized && (uint64_t)x * (uint64_t)y > LIM_MEDIA_PIXELS)
        return err_set(err, errlen, ERR_TOO_LARGE,
                       "%s is an image of %d x %d pixels; at most %u "
                       "pixels are accepted",
                       m->param, x, y, LIM_MEDIA_PIXELS);
    struct mtmd_helper_bitmap_wrapper w = {0};
    if (webp)
        w.bitmap = decode_webp(m);
    else
        w = mtmd_helper_bitmap_init_from_buf(b->mtmd, m->data, m->len, false,
                                             mtmd_helper_init_opt_default());
    if (w.bitmap == NULL)
        return err_set(err, errlen, ERR_BAD_PARAM, "%s could not be decoded as %s", m->param,
                       m->kind == GEN_MEDIA_AUDIO ? "audio (WAV, MP3 or FLAC)"
                                                  : "an image (PNG, JPEG, WebP, GIF or BMP)");
    if (mtmd_bitmap_is_audio(w.bitmap) != (m->kind == GEN_MEDIA_AUDIO)) {
        mtmd_bitmap_free(w.bitmap);
        return err_set(err, errlen, ERR_BAD_PARAM, "%s holds %s, not %s", m->param,
                       m->kind == GEN_MEDIA_AUDIO ? "an image" : "audio",
                       m->kind == GEN_MEDIA_AUDIO ? "audio" : "an image");
    }
    *out = w.bitmap;
    param[0] = '\0';
    return SHIMMY_OK;
}

/* The placeholder id of a media chunk: from its id (libmtmd's helper sets the SHA-256 of the
 * file's bytes), FNV-1a folded to 30 bits, below BE_TOKEN_MEDIA. */
static be_token media_token(const mtmd_input_chunk *c) {
    const char *id = mtmd_input_chunk_get_id(c);
    uint32_t h = 2166136261u;
    for (const char *p = id ? id : ""; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return BE_TOKEN_MEDIA - (be_token)(h & 0x3fffffff);
}

/* Lays the chunks out as tokens and spans. */
static shimmy_err media_layout(const be_model *b, be_media *md, be_token **tokens, int *n_tokens,
                               char *err, size_t errlen) {
    size_t nc = mtmd_input_chunks_size(md->chunks), total = 0;
    for (size_t i = 0; i < nc; i++) {
        const mtmd_input_chunk *c = mtmd_input_chunks_get(md->chunks, i);
        total += mtmd_input_chunk_get_n_tokens(c);
        if (mtmd_input_chunk_get_type(c) != MTMD_INPUT_CHUNK_TYPE_TEXT)
            md->n++;
    }
    if (total > INT_MAX / 2)
        return err_set(err, errlen, ERR_TOO_LARGE, "the prompt is too long");
    *tokens = malloc((total + 1) * sizeof **tokens);
    md->spans = calloc((size_t)md->n + 1, sizeof *md->spans);
    if (*tokens == NULL || md->spans == NULL)
        return ERR_NOMEM;
    int n = 0, k = 0;
    llama_token bos = llama_vocab_bos(b->vocab);
    for (size_t i = 0; i < nc; i++) {
        const mtmd_input_chunk *c = mtmd_input_chunks_get(md->chunks, i);
        if (mtmd_input_chunk_get_type(c) == MTMD_INPUT_CHUNK_TYPE_TEXT) {
            size_t nt = 0;
            const llama_token *t = mtmd_input_chunk_get_tokens_text(c, &nt);
            for (size_t q = 0; q < nt; q++) {
                if (n == 1 && (*tokens)[0] == bos && t[q] == bos && bos != LLAMA_TOKEN_NULL)
                    continue; /* the template already had BOS (be_tokenize) */
                (*tokens)[n++] = t[q];
            }
            continue;
        }
        int len = (int)mtmd_input_chunk_get_n_tokens(c);
        be_token v = media_token(c);
        md->spans[k] = (struct be_media_span){
            .start = n, .len = len, .n_pos = (int)mtmd_input_chunk_get_n_pos(c), .chunk = c};
        k++;
        for (int q = 0; q < len; q++)
            (*tokens)[n++] = v;
    }
    *n_tokens = n;
    return SHIMMY_OK;
}

/* Occurrences of the media marker in text (the chat template may leave some out). */
static int count_markers(const char *text) {
    const char *mk = engine_media_marker();
    size_t len = strlen(mk);
    int n = 0;
    for (const char *p = strstr(text, mk); p != NULL; p = strstr(p + len, mk))
        n++;
    return n;
}

shimmy_err be_tokenize_media(const be_model *b, const char *text, const gen_media *media,
                             int n_media, be_token **tokens, int *n_tokens, be_media **out,
                             char *err, size_t errlen, char *param, size_t paramlen) {
    *tokens = NULL;
    *out = NULL;
    mtmd_bitmap *bm[LIM_MEDIA_PARTS] = {0};
    shimmy_err rc = SHIMMY_OK;
    if (n_media > LIM_MEDIA_PARTS)
        return err_set(err, errlen, ERR_BAD_PARAM,
                       "%d images or audio clips; at most %d per "
                       "request",
                       n_media, LIM_MEDIA_PARTS);
    int got = 0;
    for (; got < n_media && rc == SHIMMY_OK; got++)
        rc = decode_media(b, &media[got], &bm[got], err, errlen, param, paramlen);
    be_media *md = NULL;
    if (rc == SHIMMY_OK && (md = calloc(1, sizeof *md)) == NULL)
        rc = ERR_NOMEM;
    if (rc == SHIMMY_OK && (md->chunks = mtmd_input_chunks_init()) == NULL)
        rc = ERR_NOMEM;
    int n_markers = rc == SHIMMY_OK ? count_markers(text) : n_media;
    if (n_markers < n_media) { /* only a chat loses them: a raw prompt gets every marker */
        snprintf(param, paramlen, "messages");
        rc = err_set(err, errlen, ERR_BAD_PARAM,
                     "%d of the %d images or audio clips given are in the prompt: model %s's "
                     "chat rendering left the others out (a final assistant message, which the "
                     "answer continues, keeps only its text): put images and audio in an "
                     "earlier message, such as the user's",
                     n_markers, n_media, b->name);
    }
    if (rc == SHIMMY_OK) {
        mtmd_input_text in = {
            .text = text, .text_len = strlen(text), .add_special = true, .parse_special = true};
        int32_t r = mtmd_tokenize(b->mtmd, md->chunks, &in, (const mtmd_bitmap *const *)bm,
                                  (size_t)n_media);
        if (r == 1)
            rc = err_set(err, errlen, ERR_BAD_PARAM,
                         "the prompt has a different number of media "
                         "markers than the %d images or audio clips given",
                         n_media);
        else if (r != 0)
            rc = err_set(err, errlen, ERR_BAD_PARAM,
                         "an image or audio clip could not be "
                         "preprocessed for model %s (libmtmd error %d)",
                         b->name, r);
    }
    if (rc == SHIMMY_OK)
        rc = media_layout(b, md, tokens, n_tokens, err, errlen);
    for (int i = 0; i < got; i++)
        if (bm[i] != NULL)
            mtmd_bitmap_free(bm[i]);
    if (rc != SHIMMY_OK) {
        be_media_free(md);
        free(*tokens);
        *tokens = NULL;
        return rc;
    }
    *out = md;
    return SHIMMY_OK;
}

int be_media_at(const be_media *md, int pos, int *start, int *len) {
    for (int i = 0; md != NULL && i < md->n; i++) {
        const struct be_media_span *sp = &md->spans[i];
        if (pos >= sp->start && pos < sp->start + sp->len) {
            *start = sp->start;
            *len = sp->len;
            return i;
        }
    }
    return -1;
}

int be_media_pos(const be_media *md, int idx) {
    int pos = idx;
    for (int i = 0; md != NULL && i < md->n; i++) {
        const struct be_media_span *sp = &md->spans[i];
        if (sp->start + sp->len <= idx)
            pos -= sp->len - sp->n_pos;
    }
    return pos;
}

shimmy_err be_media_eval(be_model *b, const be_media *md, int idx, int seq, int pos, char *err,
                         size_t errlen) {
    llama_pos end = 0;
    int32_t r = mtmd_helper_eval_chunk_single(b->mtmd, b->ctx, md->spans[idx].chunk, pos, seq,
                                              b->n_batch, false, &end);
    if (r != 0)
        return err_set(err, errlen, ERR_INTERNAL,
                       "encoding an image or audio clip failed "
                       "(libmtmd error %d)",
                       r);
    return SHIMMY_OK;
}

void be_media_free(be_media *md) {
    if (md == NULL)
        return;
    if (md->chunks != NULL)
        mtmd_input_chunks_free(md->chunks);
    free(md->spans);
    free(md);
}
