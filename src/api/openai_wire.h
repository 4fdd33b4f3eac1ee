/* openai_wire: the OpenAI wire format without I/O — request bodies in, gen_request out; engine
 * results in, response bodies and SSE chunks out. Pure functions (no engine, no registry, no
 * sockets), so that they are unit-tested alone and fuzzed; the handlers in openai.c glue them to
 * the engine.
 *
 * Thread-safety: every function is reentrant; a struct belongs to one thread at a time. */
#ifndef SHIMMY_API_OPENAI_WIRE_H
#define SHIMMY_API_OPENAI_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/limits.h"
#include "engine/engine.h"

/* A client error: code (for the HTTP status and the error type), the parameter at fault ("" =
 * none, e.g. "messages[2].content[0].type") and the message. */
typedef struct oai_error {
    shimmy_err code;
    char param[96];
    char message[512];
} oai_error;

/* A parsed request. gen is ready for engine_submit; its strings borrow from this struct, which
 * must therefore not be copied (gen.params.stop points into it) and must outlive the submit. */
typedef struct oai_request {
    gen_request gen;
    const char *model;  /* borrowed from root */
    bool stream;        /* default false */
    bool include_usage; /* stream_options.include_usage; default false */
    /* private */
    json_t *root;
    chat_msg *msgs;
    char **joined; /* per message: owned text joined from content parts, or NULL */
    char *grammar; /* owned GBNF made from response_format's json_schema, or NULL */
    const char *stop[LIM_STOP_STRINGS];
} oai_request;

/* Parse the body of POST /v1/chat/completions (body[0..len), need not be NUL-terminated).
 * gen.params starts as *defaults (gen_params_default) and takes every parameter the client gave.
 * On error returns the code with *err filled and nothing to free; on success the caller frees r
 * with oai_request_free. Errors: ERR_BAD_JSON (with line and column), ERR_BAD_PARAM. */
shimmy_err oai_parse_chat(const char *body, size_t len, const gen_params *defaults,
                          oai_request *r, oai_error *err);
/* Same for POST /v1/completions (prompt instead of messages). */
shimmy_err oai_parse_completion(const char *body, size_t len, const gen_params *defaults,
                                oai_request *r, oai_error *err);
void oai_request_free(oai_request *r);

/* ---- responses ---- */

/* What every response and chunk of one request shares. */
typedef struct oai_meta {
    bool chat;          /* chat.completion[.chunk] rather than text_completion */
    bool include_usage; /* stream: "usage":null on chunks, and a usage chunk before [DONE] */
    int64_t created;    /* unix seconds */
    char id[48];        /* "chatcmpl-<hex>" or "cmpl-<hex>" */
    char model[256];    /* model name as the client gave it */
} oai_meta;

/* Fills m with a fresh random id and the current time. Copies model. */
void oai_meta_init(oai_meta *m, bool chat, const char *model, bool include_usage);

/* Each function below appends to out and returns SHIMMY_OK, or ERR_TOO_LARGE/ERR_NOMEM from the
 * buf (then out is unchanged). text[0..n) may hold invalid UTF-8 (replaced by U+FFFD). */

/* {"error":{"message","type","param","code"}} from err.h's table; msg NULL = the table's
 * message, param NULL or "" = null. */
shimmy_err oai_error_json(shimmy_err e, const char *msg, const char *param, buf *out);
/* The whole non-streaming body: chat.completion or text_completion with usage. finish is
 * finish_reason_str()'s "stop" or "length". */
shimmy_err oai_response(const oai_meta *m, const char *text, size_t n, const char *finish,
                        const gen_status *st, buf *out);

/* SSE: `data: {json}\n\n` lines of a streaming response, in this order: oai_sse_first (chat:
 * delta {role:"assistant",content:""}; nothing for completions), oai_sse_text per piece of text,
 * oai_sse_finish, oai_sse_usage when m->include_usage, oai_sse_done. */
shimmy_err oai_sse_first(const oai_meta *m, buf *out);
shimmy_err oai_sse_text(const oai_meta *m, const char *text, size_t n, buf *out);
shimmy_err oai_sse_finish(const oai_meta *m, const char *finish, buf *out);
shimmy_err oai_sse_usage(const oai_meta *m, const gen_status *st, buf *out);
shimmy_err oai_sse_done(buf *out);
/* `data: {"error":{...}}\n\n`: an error after the stream has started. */
shimmy_err oai_sse_error(shimmy_err e, const char *msg, buf *out);

#endif
