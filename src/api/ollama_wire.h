/* ollama_wire: the Ollama wire format without I/O — /api/generate, /api/chat and /api/embed
 * bodies in, gen_request out; engine results in, NDJSON lines and bodies out. Pure functions
 * (no engine, no registry, no sockets) so that they are unit-tested alone; ollama.c glues them to
 * the engine.
 *
 * Thread-safety: reentrant; a struct belongs to one thread at a time. */
#ifndef SHIMMY_API_OLLAMA_WIRE_H
#define SHIMMY_API_OLLAMA_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/limits.h"
#include "engine/engine.h"

/* A client error: the HTTP status Ollama uses and the message of {"error": message}. */
typedef struct oll_error {
    int status;
    char message[512];
} oll_error;

/* keep_alive absent: */
#define OLL_KEEP_UNSET INT64_MIN

/* A parsed /api/generate or /api/chat request. gen is ready for engine_submit; its strings borrow
 * from this struct, which must not be copied and must outlive the submit. */
typedef struct oll_request {
    gen_request gen;
    const char *model;    /* borrowed from root */
    bool chat;
    bool stream;          /* default true */
    bool raw;             /* generate: the prompt is sent as is, no template */
    bool empty;           /* no prompt / no messages: only load (or unload with keep_alive 0) */
    bool has_system;      /* the request carries a system prompt of its own */
    int64_t keep_ns;      /* keep_alive in ns (< 0 = forever), OLL_KEEP_UNSET when absent */
    /* private */
    json_t *root;
    chat_msg *msgs;       /* n + 1 (room for a default system message in front) */
    const char *stop[LIM_STOP_STRINGS];
    char **owned;         /* strings made by the parser (stop strings from params), freed */
    size_t n_owned;
    char *grammar;        /* owned GBNF made from a format schema, or NULL */
} oll_request;

/* Parses a body. defaults: the model's params layer (Ollama's "params" JSON: stop, temperature,
 * ...) applied before the request's options; may be NULL. Ollama's own defaults come first
 * (temperature 0.8, top_k 40, top_p 0.9, repeat_penalty 1.1, repeat_last_n 64). On error returns
 * the code with *err filled and nothing to free; on success free r with oll_request_free.
 * Errors: ERR_BAD_JSON, ERR_BAD_PARAM (status 400). */
shimmy_err oll_parse_generate(const char *body, size_t len, const char *defaults, oll_request *r,
                              oll_error *err);
shimmy_err oll_parse_chat(const char *body, size_t len, const char *defaults, oll_request *r,
                          oll_error *err);
/* Puts system (the model's default system prompt) in front when the request has none. Borrows
 * system, which must outlive the submit. */
void oll_request_default_system(oll_request *r, const char *system);
void oll_request_free(oll_request *r);

/* /api/embed ("input": string or array of strings), /api/embeddings ("prompt") and
 * /v1/embeddings ("input": string or array of strings). */
typedef struct oll_embed_request {
    const char *model;
    const char **texts;   /* owned array of borrowed strings */
    size_t n;
    int64_t keep_ns;
    json_t *root;
} oll_embed_request;
typedef enum { OLL_EMBED, OLL_EMBEDDINGS_LEGACY, OLL_EMBED_OPENAI } oll_embed_kind;
shimmy_err oll_parse_embed(const char *body, size_t len, oll_embed_kind kind,
                           oll_embed_request *r, oll_error *err);
void oll_embed_request_free(oll_embed_request *r);

/* keep_alive: a number of seconds or a duration string ("5m", "1h30m", "0", "-1"). */
bool oll_parse_duration(const json_t *v, int64_t *ns);

/* ---- output ---- */

/* Times for the final object, nanoseconds. */
typedef struct oll_times {
    int64_t total_ns, load_ns;
} oll_times;

/* {"error": msg}. */
shimmy_err oll_error_json(const char *msg, buf *out);
/* RFC 3339 with nanoseconds, UTC, e.g. "2024-05-01T10:00:00.123456789Z". */
void oll_timestamp(char *out, size_t outlen);
/* One streamed line: {"model","created_at","response":text,"done":false}\n (generate) or
 * {"model","created_at","message":{"role":"assistant","content":text},"done":false}\n (chat). */
shimmy_err oll_chunk(const char *model, bool chat, const char *text, size_t n, buf *out);
/* The final object (with text: the whole answer when not streaming; "" when streaming), done
 * true, done_reason, durations and counts; ndjson adds "\n". */
shimmy_err oll_final(const char *model, bool chat, const char *text, size_t n,
                     const char *done_reason, const gen_status *st, const oll_times *t,
                     bool ndjson, buf *out);

#endif
