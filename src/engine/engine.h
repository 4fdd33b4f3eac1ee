/* engine: the only door to inference. Owns loaded models, their engine thread (continuous
 * batching over N slots), the bounded request queue, sampling, chat templates, prefix reuse
 * and cancellation. Nothing above this header sees llama.cpp or JSON.
 *
 * Thread-safety: every function here may be called from any thread unless stated. A job is
 * shared by its submitter and the engine thread; the submitter reads it with engine_job_wait
 * and drops it with engine_job_release. */
#ifndef SHIMMY_ENGINE_H
#define SHIMMY_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/limits.h"
#include "engine/gen_events.h"
#include "gpu/gpu.h"

typedef struct engine_model engine_model;
typedef struct gen_job gen_job;

/* Loads the backend modules (CPU variants, GPU modules) found in lib_dir. Call once at start-up
 * before loading a model. lib_dir may be NULL (then the folder of the executable + /lib). */
shimmy_err engine_global_init(const char *lib_dir, char *err, size_t errlen);

/* Engine processes (engine_options.isolate, ADR 0005): keeps one engine process started ahead
 * of need, so that a model load (the first, or the reload after a crash) finds one with its
 * libraries and backend modules already loaded; each load takes it, and the next starts
 * LIM_WARM_REFILL_DELAY_MS after the load (not during the requests that follow it). Call early,
 * before this process starts any thread (serve does, before its own start-up work, which then runs
 * at the same time): the first one is then a copy of this process (fork without exec: no second
 * exec and dynamic linking on the start-up's path); later ones are `shimmy __engine 3` started
 * afresh. A failure to start one is logged; loads then start their own. */
void engine_prestart(void);
/* Until this is called, a load that takes the warm process does not start the next one: serve
 * calls it once it reports ready, so that the next one's vfork and exec are not on its start-up's
 * path (a preload of a --model); the next one then starts LIM_WARM_REFILL_DELAY_MS later. */
void engine_prestart_release(void);
/* Ends the process engine_prestart keeps ready (waits up to 2 s, then kills it). */
void engine_prestart_stop(void);

/* Element type of the KV cache (--cache-type-k, --cache-type-v), the types llama-server
 * accepts; KV_TYPE_DEFAULT is llama.cpp's (f16). */
typedef enum engine_kv_type {
    KV_TYPE_DEFAULT = 0,
    KV_TYPE_F32,
    KV_TYPE_F16,
    KV_TYPE_BF16,
    KV_TYPE_Q8_0,
    KV_TYPE_Q4_0,
    KV_TYPE_Q4_1,
    KV_TYPE_IQ4_NL,
    KV_TYPE_Q5_0,
    KV_TYPE_Q5_1,
    KV_TYPE__COUNT
} engine_kv_type;

/* --flash-attn: auto lets llama.cpp decide per device (on where every layer's device supports
 * it); a quantized V cache needs it. */
typedef enum engine_flash_attn {
    FLASH_ATTN_AUTO = 0,
    FLASH_ATTN_ON,
    FLASH_ATTN_OFF
} engine_flash_attn;

/* Parses a cache type name ("f16", "q8_0", ...; as llama-server spells them). Returns 0, or -1. */
int engine_kv_type_parse(const char *s, engine_kv_type *out);
/* The name of t ("f16" for KV_TYPE_DEFAULT). Static. */
const char *engine_kv_type_name(engine_kv_type t);
/* Whether t is a quantized type (needs flash attention as the V cache's type). */
bool engine_kv_type_quantized(engine_kv_type t);
/* "f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1": for error messages. Static. */
const char *engine_kv_type_list(void);
/* Parses "on|off|auto" (also llama-server's 1/0, true/false, enabled/disabled). 0 or -1. */
int engine_flash_attn_parse(const char *s, engine_flash_attn *out);
const char *engine_flash_attn_name(engine_flash_attn f);

/* Speculative decoding (--spec-type; docs/SPECULATIVE.md): a draft proposes the next tokens,
 * the model evaluates them in the same step, and the output keeps every drafted token that the
 * model's own sampler would have picked (so the output is exactly what it is without it). */
typedef enum engine_spec_type {
    SPEC_NONE = 0,
    SPEC_DRAFT, /* "draft-simple": a small model with the same vocabulary (--model-draft) */
    SPEC_NGRAM, /* "ngram-simple": the continuation of the last n-gram's previous occurrence in
                 * the slot's own prompt and output (no second model) */
    SPEC__COUNT
} engine_spec_type;

/* Parses llama-server's --spec-type names ("none", "draft-simple", "ngram-simple"; also
 * "draft", "ngram"). Returns 0, or -1. */
int engine_spec_type_parse(const char *s, engine_spec_type *out);
/* "none", "draft-simple", "ngram-simple". Static. */
const char *engine_spec_type_name(engine_spec_type t);
struct engine_options;
/* The speculation o asks for: its spec_type, or draft-simple when it names a draft model and no
 * type (--model-draft alone). */
engine_spec_type engine_options_spec(const struct engine_options *o);

/* A per-model engine choice (--gpu-backend NAME=B, --gpu-layers NAME=N, --ctx NAME=N,
 * --parallel NAME=N, ...; a --config model section): applied over the defaults when the model
 * named `model` is loaded. */
typedef struct model_gpu_override {
    const char *model; /* served name; borrowed */
    bool set_backend;
    gpu_backend backend;
    bool set_layers;
    gpu_layers_mode layers_mode;
    int layers;
    bool set_cache_k, set_cache_v, set_flash_attn; /* --cache-type-k NAME=T, ... */
    engine_kv_type cache_k, cache_v;
    engine_flash_attn flash_attn;
    const char *draft_path; /* --model-draft NAME=PATH; NULL = not set; borrowed */
    int n_ctx;              /* --ctx NAME=N: context per slot; 0 = not set */
    int n_parallel;         /* --parallel NAME=N: slots; 0 = not set */
} model_gpu_override;

/* A per-model chat template (--chat-template-file NAME=FILE): Jinja text. */
typedef struct model_template_override {
    const char *model; /* served name; borrowed */
    const char *text;  /* Jinja source; borrowed for the process */
} model_template_override;

typedef struct engine_options {
    const char *path;              /* GGUF file; borrowed during load */
    const char *name;              /* name the model is served under; copied */
    int n_parallel;                /* slots; 0 = LIM_DEFAULT_PARALLEL */
    int n_ctx;                     /* tokens of context per slot; 0 = trained, capped at 4096 */
    int n_threads;                 /* CPU threads; 0 = number of cores */
    const char *template_override; /* llama.cpp built-in template name (--template: "llama2",
                                    * "chatml", ...), rendered without Jinja; NULL = model's */
    const char *template_text;     /* Jinja chat template (--chat-template-file), wins over the
                                    * model's and template_override; borrowed for the process */
    int queue_max;                 /* waiting requests before 503; 0 = LIM_QUEUE_DEPTH */
    const char *lora_path;         /* LoRA adapter applied to every slot (GGUF); NULL = none;
                                    * borrowed during load */
    float lora_scale;              /* its scale; 0 with lora_path set means 0 (no effect) */
    /* Devices (docs/GPU.md). All zero = auto backend, auto layers, layer split by free memory. */
    gpu_backend gpu_backend; /* whose devices to offload to */
    gpu_layers_mode gpu_layers_mode;
    int gpu_layers;                      /* layers to offload when mode is GPU_LAYERS_COUNT */
    bool single_gpu;                     /* whole model on chosen device main_gpu (no split) */
    int main_gpu;                        /* index among the chosen devices, when single_gpu */
    float tensor_split[LIM_GPU_DEVICES]; /* share of layers per chosen device; all 0 = by free
                                            memory */
    const char *rpc_servers;             /* HOST:PORT,...: llama.cpp RPC servers added to the device
                                            registry at start-up (engine_start); borrowed; NULL = none */
    engine_kv_type cache_type_k;         /* KV cache element types (--cache-type-k/v) */
    engine_kv_type cache_type_v;
    engine_flash_attn flash_attn; /* --flash-attn */
    /* Speculative decoding (docs/SPECULATIVE.md); all zero = off. */
    engine_spec_type spec_type;          /* SPEC_DRAFT whenever draft_path is set */
    const char *draft_path;              /* --model-draft: GGUF of the draft model; borrowed */
    int draft_max;                       /* tokens a draft model proposes per step; 0 = default */
    int draft_min;                       /* a shorter draft model proposal is not tried; 0 = any */
    float draft_p_min;                   /* the draft model stops below this probability of its
                                          * best token (among its 10 best); 0 = never */
    int ngram_n;                         /* ngram-simple: tokens matched; 0 = default */
    int ngram_m;                         /* ngram-simple: tokens proposed at most; 0 = default */
    const model_gpu_override *overrides; /* per-model device choices; borrowed for the process */
    int n_overrides;
    /* Called while the weights load with the fraction done (0..1), from the loading thread (or,
     * isolated, the thread that waits for the engine process); NULL = none. */
    void (*progress)(void *ctx, float fraction);
    void *progress_ctx;
    bool isolate;          /* run the model's engine in a child process of its own (ADR
                            * 0005; serve's default); false = in this process */
    int64_t cache_ram_mib; /* host-RAM prompt cache of each loaded model (--cache-ram),
                            * MiB; 0 = off; < 0 = LIM_CACHE_RAM_MIB */
    const model_template_override *templates; /* per-model templates; borrowed for the process */
    int n_templates;
    const char *mmproj; /* multimodal projector GGUF (image/audio encoder, loaded with
                         * llama.cpp's libmtmd); NULL = none (text only); borrowed
                         * during load */
} engine_options;

void engine_options_default(engine_options *o);

/* The start-up of a command that loads models (after engine_prestart when o->isolate): loads the
 * backend modules, checks o's GPU choices (--rpc servers reached, --gpu-backend and each model's
 * has a device, --main-gpu is one of them) and writes what they use into note (one line: "auto
 * uses the CPU only: ..."). With o->isolate and a warm engine process, both happen in that
 * process and this one loads no backend module (the server keeps none of their memory or start-up
 * time; docs/adr/0005); otherwise (or when no engine process could start) here, with
 * engine_global_init. Errors: the module loading's (ERR_INTERNAL: no CPU module), ERR_MODEL_LOAD
 * or ERR_USAGE with what was asked, what was found instead and why; ERR_ENGINE_CRASHED when the
 * warm engine process died meanwhile (with how and its last log line). Not thread-safe: once, at
 * start-up. */
shimmy_err engine_start(const engine_options *o, char *note, size_t notelen, char *err,
                        size_t errlen);
/* Whether a per-model override's model (a served name, or an fnmatch glob from a --config
 * section) applies to the model served as name. */
bool engine_name_matches(const char *pattern, const char *name);
/* Applies the overrides in o that name `name` or a glob matching it (the last one given wins
 * per field), GPU choices and templates (a per-model template becomes template_text). */
void engine_options_for_model(engine_options *o, const char *name);

/* Whether this build's engine takes images and audio (a model's paired projector loaded with
 * libmtmd, engine_options.mmproj). The one gate for the "vision"/"audio" capabilities the API
 * reports (/api/show, /v1/models/{id}): until it is true, a pairing found by discovery is shown
 * but no capability is claimed. Static; thread-safe. */
bool engine_supports_media(void);

/* Loads the model and starts its engine thread. On error returns the code and a message in err
 * (ERR_MODEL_LOAD with the file and llama.cpp's reason). Returns owned *out. */
shimmy_err engine_model_load(const engine_options *o, engine_model **out, char *err, size_t errlen);
/* Stops the engine thread (cancelling running jobs) and frees the model. Takes m. */
void engine_model_free(engine_model *m);

/* Where a loaded model is: one device, as read back from the loaded model (gpu/place.h). */
typedef struct engine_device_use {
    char name[64];         /* "Vulkan0", "CUDA0", "CPU" */
    char backend[32];      /* "Vulkan", "CUDA", "CPU" */
    int layers;            /* layers whose weights are here */
    uint64_t weight_bytes; /* weights here, bytes */
    uint64_t kv_bytes;     /* KV cache here, bytes */
} engine_device_use;

/* The host-RAM prompt cache of a loaded model. */
typedef struct engine_cache_stats {
    uint64_t budget;      /* bytes; 0 = off */
    uint64_t bytes;       /* held now */
    int entries;          /* saved prompts held now */
    uint64_t saves;       /* slot states saved so far */
    uint64_t restores;    /* saved states put back into a slot so far */
    int64_t max_stall_ns; /* longest save or restore (the engine thread waits for it) */
} engine_cache_stats;

typedef struct engine_model_info {
    char name[256];
    char desc[128];                  /* llama.cpp's one-line description (arch, size, type) */
    int n_ctx_train;                 /* trained context, tokens */
    int n_ctx_slot;                  /* context per slot, tokens */
    int n_parallel;                  /* slots */
    int n_vocab;                     /* vocabulary size */
    uint64_t n_params;               /* parameters */
    uint64_t size_bytes;             /* weights, bytes */
    bool has_chat_template;          /* model carries tokenizer.chat_template */
    int active_slots;                /* slots busy now */
    int queued;                      /* requests waiting now */
    int kv_cells;                    /* KV cache cells, all slots (n_parallel x n_ctx_slot) */
    int kv_cells_used;               /* of those, holding tokens now (as of the last engine step) */
    int64_t prompt_tokens_evaluated; /* prompt tokens computed since load (not reused from a
                                      * slot's cache or copied from another slot's) */
    int64_t kv_copies;               /* prompts begun from a copy of another slot's KV cache */
    int64_t loaded_at;               /* unix seconds */
    int layers_total;                /* offloadable layers: repeating layers + the output layer */
    int layers_offloaded;            /* of those, on devices other than the CPU */
    int n_devices;                   /* entries of devices: GPUs in registry order, then the CPU */
    engine_device_use devices[LIM_GPU_DEVICES + 1];
    engine_cache_stats cache;
    /* the engine process (isolate): */
    int pid;              /* 0 = in this process, or none alive now */
    int crashes;          /* times it died */
    bool failed;          /* died at load or first decode 3 times in a row: no more tries */
    char last_crash[384]; /* how it last died and its last log line; "" = never */
    bool reranker;        /* pooling type rank: serves engine_rerank, not generation */
    char cache_type_k[8]; /* KV cache element types in use: "f16", "q8_0", ... */
    char cache_type_v[8];
    char flash_attn[8];    /* "on" or "off" as llama.cpp resolved it; "auto" when unknown */
    char spec_type[16];    /* speculative decoding in use: "none", "draft-simple", ... */
    char draft_desc[128];  /* the draft model's description; "" = none */
    int64_t spec_drafted;  /* tokens proposed by drafts since load */
    int64_t spec_accepted; /* of those, tokens the model's sampler picked (kept) */
    int64_t spec_steps;    /* slot steps that verified a draft */
    bool vision;           /* a projector is loaded and takes images */
    bool audio;            /* a projector is loaded and takes audio */
} engine_model_info;

void engine_model_get_info(engine_model *m, engine_model_info *info);

/* ---- requests ---- */

typedef struct gen_params {
    int max_tokens;          /* tokens to generate; -1 = until the context is full */
    float temperature;       /* 0 = greedy */
    float top_p;             /* 1 = off */
    int top_k;               /* 0 = off */
    float min_p;             /* 0 = off */
    float repeat_penalty;    /* 1 = off */
    float presence_penalty;  /* 0 = off */
    float frequency_penalty; /* 0 = off */
    int repeat_last_n;       /* tokens the penalties look back over */
    bool has_seed;
    uint32_t seed;
    const char *const *stop; /* stop strings; borrowed during submit (copied) */
    int n_stop;
    const char *grammar;     /* GBNF the output must match (start rule "root"); NULL = none;
                              * borrowed during submit (copied) */
    const char *json_schema; /* JSON schema (JSON text) the output must match, converted to a
                              * grammar by llama.cpp's own converter; NULL = none; borrowed
                              * during submit. Not together with grammar. */
    bool logprobs;           /* hand out each generated token's log probability (gen_events.h):
                              * of the model's own distribution at that step (its logits' softmax
                              * at temperature 1, before penalties, grammar and truncation) */
    int top_logprobs;        /* and that many most likely alternatives, 0..LIM_TOP_LOGPROBS */
} gen_params;

void gen_params_default(gen_params *p);

/* A chat request crosses into the engine in the shape llama.cpp's chat module reads, which is
 * OpenAI's chat-completions shape (docs/adr/0004-chat-module.md): one JSON object text with
 *   "messages"              array (required): role, content (string, null or text parts),
 *                           tool_calls [{id,type,function:{name,arguments(string)}}],
 *                           tool_call_id, name / tool_name, reasoning_content
 *   "tools"                 array of {"type":"function","function":{name,description,parameters}}
 *   "tool_choice"           "auto" | "none" | "required" | {"type":"function","function":{name}}
 *   "parallel_tool_calls"   bool
 *   "reasoning_format"      "none" | "auto" | "deepseek" | "deepseek-legacy"
 *   "reasoning_effort"      string ("none" turns thinking off)
 *   "enable_thinking"       bool (shimmy's: Ollama's think)
 *   "chat_template_kwargs"  object
 *   "add_generation_prompt", "continue_final_message"
 * The API layer builds it from its own wire format; the engine checks it (ERR_BAD_PARAM naming
 * the field). */
/* An image or audio clip of a request: the encoded file (PNG, JPEG, GIF, BMP; WAV, MP3) as the
 * client sent it, decoded by the engine. Its place in the prompt is the media marker
 * (engine_media_marker) in the chat content or the raw prompt: the i-th marker is media[i]. */
typedef enum { GEN_MEDIA_IMAGE = 0, GEN_MEDIA_AUDIO = 1 } gen_media_kind;

typedef struct gen_media {
    gen_media_kind kind;
    const unsigned char *data; /* borrowed during submit */
    size_t len;                /* bytes, at most LIM_MEDIA_BYTES */
    const char *param;         /* the request field it came from, for errors
                                * ("messages[0].content[1]"); borrowed during submit */
} gen_media;

typedef struct gen_request {
    const char *prompt;    /* raw prompt (completions, Ollama raw); NULL for chat */
    const char *chat_json; /* chat input (above); rendered with the model's template; borrowed
                            * during submit */
    gen_params params;
    const gen_media *media; /* images and audio, in marker order; borrowed during submit */
    int n_media;            /* at most LIM_MEDIA_PARTS */
} gen_request;

/* The text that marks where a media item goes in a chat message's content (as a part
 * {"type":"media_marker","text":MARKER}) or in a raw prompt. Random per server run (a client
 * cannot write it by chance or on purpose); engine processes get it with their load options.
 * Static. Set up by
 * engine_global_init, which must run first (before threads). */
const char *engine_media_marker(void);

typedef enum {
    FINISH_NONE = 0,
    FINISH_STOP,
    FINISH_LENGTH,
    FINISH_CANCELLED,
    FINISH_ERROR,
    FINISH_TOOL_CALLS /* stopped, and the answer holds tool calls */
} finish_reason;

const char *finish_reason_str(finish_reason f);

typedef struct gen_status {
    bool done;             /* no more text will come */
    finish_reason finish;  /* valid when done */
    int prompt_tokens;     /* tokens in the prompt */
    int cached_tokens;     /* prompt tokens reused from the slot's KV cache */
    int completion_tokens; /* tokens generated so far */
    int64_t queued_ns;     /* time waiting for a slot */
    int64_t prompt_ns;     /* time evaluating the prompt */
    int64_t gen_ns;        /* time generating */
    shimmy_err error;      /* set when finish == FINISH_ERROR */
    char errmsg[512];
    char stop_word[257]; /* the stop string that ended the answer (a request's or the chat
                          * format's); "" when it ended otherwise */
    int draft_tokens;    /* speculative decoding: tokens drafted for this request */
    int draft_accepted;  /* of those, tokens kept */
} gen_status;

/* Renders (chat) and tokenizes the request, checks that it fits the slot context, and queues it.
 * Media items are decoded and cut into the prompt at their markers (image and audio tokens count
 * in prompt_tokens and take part in prefix reuse: the same image is the same tokens).
 * Returns owned *out (release with engine_job_release). Errors: ERR_CONTEXT_LENGTH (message gives
 * both numbers), ERR_OVERLOADED (queue full), ERR_BAD_PARAM (with the field at fault in param,
 * e.g. "tools", "messages", "response_format"; "" when none; a media item the model cannot take
 * ("model NAME does not support images"), that does not decode, or whose count differs from the
 * markers'), ERR_TOO_LARGE (an image over LIM_MEDIA_PIXELS), ERR_UNSUPPORTED (the model's own
 * chat template does not parse; the message says how to override it), ERR_NOMEM. Borrows req.
 * Templates that print today's date read the process clock (local time). */
shimmy_err engine_submit(engine_model *m, const gen_request *req, gen_job **out, char *err,
                         size_t errlen, char *param, size_t paramlen);

/* Waits up to timeout_ms for news (0: takes what is there without waiting). Replaces ev with what
 * was produced since the last call (whole UTF-8 characters, stop strings removed, tool calls and
 * reasoning split out) and fills st. The last wait (st->done) parses the whole answer and ends with
 * finish FINISH_TOOL_CALLS when it holds calls. One thread waits on a job. Returns SHIMMY_OK, or
 * ERR_TOO_LARGE/ERR_NOMEM when ev could not hold the news. */
shimmy_err engine_job_wait(gen_job *job, int timeout_ms, gen_events *ev, gen_status *st);

/* Asks the engine to stop the job within a step; its slot is freed. */
void engine_job_cancel(gen_job *job);

/* Drops the submitter's reference (cancels the job if it is still running). Takes job. */
void engine_job_release(gen_job *job);

/* Embeddings: one vector per text, pooled over its tokens (the model's pooling, mean for a model
 * that has none) and L2-normalised, computed in the model's engine thread between generation
 * steps (blocks the caller until done). Returns owned *out: n rows of *n_embd floats; *n_tokens
 * = tokens over all texts. Errors: ERR_CONTEXT_LENGTH (a text longer than the context),
 * ERR_BAD_PARAM (empty text), ERR_INTERNAL (llama.cpp failed), ERR_NOMEM. Borrows texts. */
shimmy_err engine_embed(engine_model *m, const char *const *texts, size_t n, float **out,
                        int *n_embd, int *n_tokens, char *err, size_t errlen);

/* One input of engine_embed_inputs: a text, or token ids taken as they are. */
typedef struct engine_embed_input {
    const char *text;      /* tokenized as engine_embed does; NULL when tokens is used */
    const int32_t *tokens; /* token ids (each checked against the vocabulary); borrowed */
    size_t n_tokens;
} engine_embed_input;

/* engine_embed for texts and token-id inputs. truncate: an input longer than the context keeps
 * its first tokens that fit (Ollama's truncate) instead of failing with ERR_CONTEXT_LENGTH.
 * Errors as engine_embed, and ERR_BAD_PARAM for a token id outside the vocabulary (the message
 * names the input). Borrows in. */
shimmy_err engine_embed_inputs(engine_model *m, const engine_embed_input *in, size_t n,
                               bool truncate, float **out, int *n_embd, int *n_tokens, char *err,
                               size_t errlen);

/* Reranking on a model whose pooling is rank (engine_model_info.reranker: bge-reranker,
 * Qwen3-Reranker): the relevance score of each document to query, as llama-server's /rerank
 * computes it (the pair formatted by the model's "rerank" template, else BOS query EOS SEP
 * document EOS; the score is the rank head's first output, unnormalised). Computed in the
 * engine thread between generation steps; blocks the caller. Returns owned *scores (n floats);
 * *n_tokens = tokens over all pairs. Errors: ERR_BAD_PARAM (not a reranker: the message names
 * the model), ERR_CONTEXT_LENGTH (a pair longer than the context: the message names the
 * document), ERR_INTERNAL, ERR_NOMEM. Borrows query and docs. */
shimmy_err engine_rerank(engine_model *m, const char *query, const char *const *docs, size_t n,
                         float **scores, int *n_tokens, char *err, size_t errlen);

/* ---- what the model sees ---- */

/* The prompt a chat request (gen_request.chat_json) renders to, as llama-server's
 * POST /apply-template. Returns owned *out. Errors: ERR_BAD_PARAM (param as engine_submit). */
shimmy_err engine_apply_template(engine_model *m, const char *chat_json, char **out, char *err,
                                 size_t errlen, char *param, size_t paramlen);

/* The prompt tokens engine_submit would count for req (gen_status.prompt_tokens: its rendered
 * chat or prompt, each media item as the tokens its projector gives it), without running it;
 * no context-length check. Errors as engine_submit's (ERR_BAD_PARAM with param for a media item
 * or a template error). */
shimmy_err engine_count(engine_model *m, const gen_request *req, int *n, char *err, size_t errlen,
                        char *param, size_t paramlen);

/* Tokenizes text (add_special: BOS/EOS as the model wants; parse_special: special tokens written
 * as text become those tokens). Returns owned *out with *n tokens. */
shimmy_err engine_tokenize(engine_model *m, const char *text, bool add_special, bool parse_special,
                           int32_t **out, size_t *n, char *err, size_t errlen);
/* Appends the text of token t (special tokens as their text) to out. ERR_BAD_PARAM when t is
 * not in the vocabulary. */
shimmy_err engine_token_piece(engine_model *m, int32_t t, buf *out);
/* Appends the text of tokens[0..n) as llama.cpp detokenizes it (special tokens rendered). */
shimmy_err engine_detokenize(engine_model *m, const int32_t *tokens, size_t n, buf *out, char *err,
                             size_t errlen);

/* source NULL or "" = the ChatML fallback. Errors: ERR_BAD_PARAM (does not parse, message). */
shimmy_err engine_template_caps(const char *source, engine_tmpl_caps *out, char *err,
                                size_t errlen);
/* The template source a loaded model uses (the override, the model's, or ChatML), and its caps.
 * Returns owned *source. */
shimmy_err engine_model_template(engine_model *m, char **source, engine_tmpl_caps *caps);

#endif
