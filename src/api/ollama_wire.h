/* ollama_wire: the Ollama wire format without I/O. /api/generate and /api/chat bodies in, an
 * api_call out (a raw prompt, or the engine's chat JSON: messages with tool calls and tool
 * results, tools, think); engine events in, NDJSON lines and bodies out (content, thinking, tool
 * calls with arguments as objects, a streamed call sent whole). Also /api/embed bodies. Pure
 * functions (no engine, no registry, no sockets) so that they are unit-tested alone; ollama.c
 * adds the model's layers and makes the rows of the generation path (api/gen.h).
 *
 * Thread-safety: reentrant; a call belongs to one thread at a time. */
#ifndef SHIMMY_API_OLLAMA_WIRE_H
#define SHIMMY_API_OLLAMA_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "api/gen.h"
#include "api/media.h"
#include "core/limits.h"

typedef enum { OLL_THINK_UNSET, OLL_THINK_OFF, OLL_THINK_ON } oll_think;

/* The Ollama state of a call (api_call.wire). */
typedef struct oll_wire {
    json_t *root;    /* the body; borrowed */
    bool chat;       /* /api/chat rather than /api/generate */
    bool has_system; /* the request carries a system message */
    oll_think think;
    const char *effort;                 /* think "low"/"medium"/"high", or NULL; static */
    char *chat_json;                    /* owned: the engine's chat input, or NULL */
    char *schema;                       /* owned: format's JSON schema, or NULL */
    const char *stop[LIM_STOP_STRINGS]; /* borrowed from the body */
    api_answer calls;                   /* stream: the tool calls so far */
    api_answer lps;                     /* stream: one wait's log probabilities */
    size_t sent;                        /* stream: calls already sent */
    api_media media;                    /* the images of the request */
    char *prompt;                       /* owned: generate's prompt with its images' markers */
} oll_wire;

/* What the parser needs to know of the model (from its Ollama layers and its template). */
typedef struct oll_model_ctx {
    const char *params_json;    /* Ollama's params layer (stop, temperature, ...), or NULL */
    const char *system;         /* the model's default system prompt, or NULL */
    bool has_template;          /* a chat template (the model's or an override): else
                                 * /api/generate sends the prompt as is */
    const gen_params *defaults; /* the defaults to start from; NULL = Ollama's */
    /* Lays the --config presets over p after the params layer (the operator's file beats the
     * Modelfile, as a --chat-template-file beats the model's template) and before the request's
     * options; NULL = none. Stop strings it sets must outlive the call. */
    void (*presets)(const void *ctx, gen_params *p);
    const void *presets_ctx;
} oll_model_ctx;

/* Lays a Modelfile's params layer (params_json: Ollama's option names; NULL or "" = none) over
 * p, for another protocol's defaults: the layer is parsed into an object owned by root (it
 * outlives the call), p's stop strings move into stop (LIM_STOP_STRINGS entries, the caller's:
 * p->stop points there afterwards when the layer parsed) and the layer's are added; num_ctx is
 * left out (a load setting). A layer that is not a JSON object is skipped. Returns SHIMMY_OK, or
 * ERR_BAD_PARAM (err filled) for a value out of range, with p partly laid. */
shimmy_err oll_lay_params(json_t *root, const char *params_json, gen_params *p, const char **stop,
                          api_error *err);

/* Ollama's own sampling defaults (temperature 0.8, top_k 40, top_p 0.9, repeat_penalty 1.1,
 * repeat_last_n 64). */
void oll_default_params(gen_params *p);

/* Parses the body root (borrowed; must outlive c; the params layer is added to it). Ollama's
 * defaults come first (temperature 0.8, top_k 40, top_p 0.9, repeat_penalty 1.1,
 * repeat_last_n 64), then m's params layer, then m's presets, then the request's options. On error
 * returns the code with err filled and nothing to free; on success free c with oll_call_free.
 * Errors: ERR_BAD_PARAM, ERR_NOMEM. */
shimmy_err oll_parse_generate(json_t *root, const oll_model_ctx *m, api_call *c, api_error *err);
shimmy_err oll_parse_chat(json_t *root, const oll_model_ctx *m, api_call *c, api_error *err);
/* Frees c->wire. c may be zeroed. */
void oll_call_free(api_call *c);

/* /api/embed and /v1/embeddings ("input") and /api/embeddings ("prompt"): a string, an array of
 * strings, an array of token ids (one input) or an array of token id arrays. */
typedef struct oll_embed_request {
    const char *model;
    engine_embed_input *inputs; /* owned array: texts borrowed from root, ids from tokens */
    int32_t *tokens;            /* owned: the ids of every token-id input, back to back */
    size_t n;
    int dimensions;  /* "dimensions": keep the first N values, normalised again; 0 = all */
    bool base64;     /* OpenAI "encoding_format": "base64" (little-endian float32) */
    bool truncate;   /* cut an input longer than the context (Ollama; its default true);
                      * false (always for OpenAI): a 400 */
    int num_ctx;     /* Ollama options.num_ctx; 0 = none */
    int64_t keep_ns; /* REGISTRY_KEEP_DEFAULT when absent */
    json_t *root;
} oll_embed_request;
typedef enum { OLL_EMBED, OLL_EMBEDDINGS_LEGACY, OLL_EMBED_OPENAI } oll_embed_kind;
shimmy_err oll_parse_embed(const char *body, size_t len, oll_embed_kind kind, oll_embed_request *r,
                           api_error *err);
void oll_embed_request_free(oll_embed_request *r);

/* keep_alive: a number of seconds or a duration string ("5m", "1h30m", "0", "-1"). */
bool oll_parse_duration(const json_t *v, int64_t *ns);

/* ---- output: the writers of the rows (api_proto) ---- */

/* {"error": message}. Appends to out. */
shimmy_err oll_error_json(const api_error *e, buf *out);
/* RFC 3339 with nanoseconds, UTC, e.g. "2024-05-01T10:00:00.123456789Z". */
void oll_timestamp(char *out, size_t outlen);
/* Streaming: nothing to open; a line per content or thinking event ({"model","created_at",
 * "response"|"message",...,"done":false}); a tool call in one line when it is whole; the final
 * object (done true, done_reason, durations, counts). */
shimmy_err oll_start(api_call *c, api_sink *s);
shimmy_err oll_events(api_call *c, const gen_events *ev, api_sink *s);
shimmy_err oll_end(api_call *c, const gen_status *st, api_sink *s);
/* The whole answer in the final object. */
shimmy_err oll_whole(api_call *c, const api_answer *a, const gen_status *st, api_sink *s);
/* done_reason "load" or "unload". */
shimmy_err oll_loaded(api_call *c, bool unloaded, api_sink *s);
shimmy_err oll_write_error(const api_error *e, api_sink *s);

#endif
