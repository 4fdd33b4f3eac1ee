/* api/gen: the one generation path of every protocol. Parse the body once, acquire the model,
 * submit to the engine, then either wait for the whole answer (polling for a vanished client) or
 * stream it, and release the job and the model when the response ends. A protocol (OpenAI chat,
 * OpenAI completions, Ollama generate, Ollama chat, Anthropic Messages, OpenAI Responses)
 * is one api_proto row: how to parse its body into an api_call and how to write its chunks,
 * whole answer and errors. Framing (SSE, NDJSON) is done here through http/stream.c.
 *
 * Thread-safety: a request's api_call, api_sink and api_answer belong to its connection thread;
 * the rows are static and shared read-only. */
#ifndef SHIMMY_API_GEN_H
#define SHIMMY_API_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "api/api.h"
#include "api/api_error.h"
#include "api/jsonw.h"
#include "core/buf.h"
#include "engine/engine.h"
#include "models/registry.h"

/* ---- output: frames into a buf ---- */

typedef enum {
    API_FRAME_NONE,  /* a whole body: the JSON as is */
    API_FRAME_SSE,   /* text/event-stream: data: JSON\n\n */
    API_FRAME_NDJSON /* application/x-ndjson: JSON\n */
} api_framing;

typedef struct api_sink {
    buf *out; /* borrowed: where whole frames go */
    api_framing framing;
    buf scratch; /* one frame's JSON before framing; owned, reused */
} api_sink;

/* Sets up s over out (borrowed). Free with api_sink_free. */
void api_sink_init(api_sink *s, buf *out, api_framing framing);
void api_sink_free(api_sink *s);
/* Starts one frame: w writes its JSON into the sink's scratch. */
void api_frame_begin(api_sink *s, jsonw *w);
/* Ends the frame begun with api_frame_begin and appends it, framed, to out. On error (the JSON or
 * the frame did not fit) out is unchanged. */
shimmy_err api_frame_end(api_sink *s, jsonw *w);
/* Like api_frame_end, with an SSE event name (borrowed; NULL = none) for protocols whose events
 * are named ("event: message_start"). Other framings ignore the name. */
shimmy_err api_frame_end_event(api_sink *s, jsonw *w, const char *event);
/* Appends a frame of literal text (SSE's "[DONE]"). */
shimmy_err api_frame_text(api_sink *s, const char *text);

/* ---- the whole answer ---- */

typedef struct api_tool_call {
    char *id;   /* owned; "" when the engine gave none */
    char *name; /* owned */
    buf args;   /* arguments JSON text, as the pieces arrived */
} api_tool_call;

/* One log-probability record (a GEN_EV_LOGPROB or, top set, GEN_EV_LOGPROB_TOP event). */
typedef struct api_logprob {
    bool top; /* an alternative of the last sampled token */
    float logprob;
    size_t off, len; /* the token's text: api_answer.lp_text.data + off, len bytes */
} api_logprob;

/* What a job produced, accumulated over its waits: answer text, reasoning, tool calls, and the
 * log probabilities when asked for. */
typedef struct api_answer {
    buf content;
    buf reasoning;
    api_tool_call *calls; /* owned, n_calls of them */
    size_t n_calls;
    api_logprob *lps; /* owned, n_lps of them, in order */
    size_t n_lps, cap_lps;
    buf lp_text;
} api_answer;

void api_answer_init(api_answer *a);
void api_answer_free(api_answer *a);
/* Appends the events of one wait (borrows ev). Errors: ERR_TOO_LARGE (past
 * LIM_RESPONSE_BYTES), ERR_NOMEM. */
shimmy_err api_answer_add(api_answer *a, const gen_events *ev);
/* The answer's log probabilities as OpenAI's and Ollama's array: [{token, logprob, bytes,
 * top_logprobs:[{token, logprob, bytes}]}] (a record's alternatives follow it). */
void api_write_logprobs(jsonw *w, const api_answer *a);
/* Appends one event. */
shimmy_err api_answer_add_event(api_answer *a, const gen_event *e);

/* ---- one request ---- */

/* A parsed request, filled by the protocol's parse; gen.c fills the times. */
typedef struct api_call {
    const char *model; /* borrowed from the body's JSON */
    gen_request gen;   /* ready for engine_submit; borrows from wire and the JSON */
    bool stream;
    bool load_only;           /* nothing to generate: load the model (or unload: keep_ns 0) */
    int64_t keep_ns;          /* keep-alive for registry_release_keep (REGISTRY_KEEP_DEFAULT) */
    int num_ctx;              /* context per slot asked for (Ollama's options.num_ctx): the model
                               * is reloaded with it when it differs; 0 = as loaded */
    bool need_tools;          /* tools given: the template must express them (400 "tools") */
    bool need_thinking;       /* thinking asked for: the template must think (400 "think") */
    const char *schema_param; /* the parameter that carried gen.params.json_schema */
    void *wire;               /* the protocol's own state; owned, freed by its row's free */
    int64_t t0_ns;            /* monotonic: request arrival */
    int64_t load_ns;          /* time to acquire the model */
    int prompt_tokens;        /* stream: tokens of the rendered prompt, filled by gen.c once the
                               * job is queued and before the row's start writer runs */
    int n_choices;            /* answers to generate for the prompt (OpenAI's n), each its own job
                               * (seeds seed..seed+n-1 when a seed is given); 0 = 1. A row
                               * that sets it above 1 has finish and whole_n */
    int choice;               /* set by gen.c: the choice (0-based) whose events the row's
                               * events, finish or end writer is given */
} api_call;

/* Moves the defaults' stop strings (p->stop: a caller's array, api_gen_defaults) into own, the
 * call's LIM_STOP_STRINGS entries, so that the call outlives the array; the strings themselves
 * stay borrowed (from the body or the presets). */
void api_stops_own(gen_params *p, const char **own);

/* A fresh id: prefix then 2*nbytes hex digits (nbytes <= 16), written into out[0..n). Unique,
 * not secret. */
void api_random_id(char *out, size_t n, const char *prefix, size_t nbytes);

/* A protocol: a row of writers. Every writer appends to the sink and returns SHIMMY_OK or the
 * buf's error (ERR_TOO_LARGE/ERR_NOMEM). */
typedef struct api_proto {
    api_framing framing;      /* of a streamed answer */
    const char *content_type; /* of a streamed answer */
    const char *not_found[2]; /* message around the model name for an unknown model */
    /* Fills c (from zero) from the body's JSON object root (borrowed; it outlives c). On error
     * returns the code with err filled and nothing to free. */
    shimmy_err (*parse)(shimmy_app *app, json_t *root, api_call *c, api_error *err);
    void (*free)(api_call *c);
    /* Streaming: the opening frame (may write nothing), the frames of one wait's events, and the
     * end of a job that finished without error. */
    shimmy_err (*start)(api_call *c, api_sink *s);
    shimmy_err (*events)(api_call *c, const gen_events *ev, api_sink *s);
    shimmy_err (*end)(api_call *c, const gen_status *st, api_sink *s);
    /* The whole answer as one body. */
    shimmy_err (*whole)(api_call *c, const api_answer *a, const gen_status *st, api_sink *s);
    /* The answer to a load_only call (unloaded: keep_ns was 0); NULL when never load_only. */
    shimmy_err (*loaded)(api_call *c, bool unloaded, api_sink *s);
    /* An error as a whole body or, through a streaming sink, as a frame of the stream. */
    shimmy_err (*error)(const api_error *e, api_sink *s);
    /* Optional (NULL = the default in brackets). The HTTP status of an error [err.h's table]. */
    int (*status)(shimmy_err code);
    /* An error after the stream began, with the call's state [error]. */
    shimmy_err (*stream_error)(api_call *c, const api_error *e, api_sink *s);
    /* A keep-alive frame when the stream was silent for LIM_STREAM_IDLE_MS (a long prompt)
     * [nothing]. */
    shimmy_err (*idle)(api_call *c, api_sink *s);
    /* The answer of api_count_serve: the rendered prompt holds n_tokens [no count route]. */
    shimmy_err (*counted)(api_call *c, int n_tokens, api_sink *s);
    /* n_choices > 1, streaming: the end of choice c->choice (its status st); end then follows
     * once, after the last choice, with the choices' summed status and c->choice -1. */
    shimmy_err (*finish)(api_call *c, const gen_status *st, api_sink *s);
    /* n_choices > 1: the whole answer of n choices a[i] with st[i], and their sum (prompt
     * tokens counted once, completion tokens of every choice). */
    shimmy_err (*whole_n)(api_call *c, const api_answer *a, const gen_status *st, int n,
                          const gen_status *sum, api_sink *s);
} api_proto;

/* Serves a generation request with protocol p: the whole path from body to response. */
void api_gen_serve(const http_request *req, http_response *res, const api_proto *p);
/* Polled (in the waiting thread, every LIM_DISCONNECT_POLL_MS) while a request waits for the
 * engine: true stops it (the job is cancelled; a stream function returns -1). */
typedef bool (*api_stop_fn)(void *ctx);
/* api_gen_serve for a caller that is not an HTTP connection (a WebSocket session: req->conn
 * NULL): stop, not the connection's hang-up, ends the request early. */
void api_gen_serve_stop(const http_request *req, http_response *res, const api_proto *p,
                        api_stop_fn stop, void *stop_ctx);
/* Serves a token count with protocol p: parse, acquire, render the chat as engine_submit would,
 * tokenize, and answer with p->counted. */
void api_count_serve(const http_request *req, http_response *res, const api_proto *p);
/* Answers res with e in p's error shape and the status of e->code (503 adds Retry-After). */
void api_reply_error(http_response *res, const api_proto *p, const api_error *e);
/* Fills err with the error of a model that could not be acquired (unknown: p's message naming
 * it, param "model"). Returns err->code. */
shimmy_err api_acquire_error(const api_proto *p, const char *name, shimmy_err e, const char *msg,
                             api_error *err);

/* Acquires the model name for a generation (rerank false) or a rerank (true), with the context
 * num_ctx (registry_acquire_ctx; 0 = as loaded). A reranker asked to generate, or another
 * model asked to rerank, is a 400 naming the model (param "model"), known from discovery
 * without loading anything. Returns the code with err filled as api_acquire_error does. */
shimmy_err api_acquire_kind(registry *reg, const api_proto *p, const char *name, bool rerank,
                            int num_ctx, engine_model **out, api_error *err);

/* The rows (openai_wire.c, ollama.c, anthropic_wire.c, responses_wire.c). */
extern const api_proto oai_chat_proto;
extern const api_proto oai_completion_proto;
extern const api_proto oll_generate_proto;
extern const api_proto oll_chat_proto;
extern const api_proto ant_messages_proto;
extern const api_proto ant_count_proto;
extern const api_proto resp_proto;

#endif
