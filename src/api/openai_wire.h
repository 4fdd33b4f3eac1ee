/* openai_wire: the OpenAI wire format without I/O, and its two rows of the generation path
 * (api/gen.h): POST /v1/chat/completions and POST /v1/completions. Request bodies in, an api_call
 * out (chat: the engine's chat JSON, built from the client's messages, tools, tool_choice,
 * reasoning fields; validated, 400 naming the parameter); engine events in, response bodies and
 * SSE chunks out (content, reasoning_content, tool_calls). No engine, registry or sockets here,
 * so that it is unit-tested alone and fuzzed.
 *
 * Thread-safety: every function is reentrant; a call belongs to one thread at a time. */
#ifndef SHIMMY_API_OPENAI_WIRE_H
#define SHIMMY_API_OPENAI_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "api/gen.h"
#include "api/media.h"
#include "core/limits.h"

/* What every response and chunk of one request shares. */
typedef struct oai_meta {
    bool chat;          /* chat.completion[.chunk] rather than text_completion */
    bool include_usage; /* stream: "usage":null on chunks, and a usage chunk before [DONE] */
    int64_t created;    /* unix seconds */
    char id[48];        /* "chatcmpl-<hex>" or "cmpl-<hex>" */
    char model[256];    /* model name as the client gave it */
} oai_meta;

/* The OpenAI state of a call (api_call.wire). */
typedef struct oai_wire {
    oai_meta meta;
    char *chat_json;                    /* owned: the engine's chat input, or NULL */
    char *schema;                       /* owned: response_format's JSON schema, or NULL */
    const char *stop[LIM_STOP_STRINGS]; /* borrowed from the body */
    size_t n_calls[LIM_N];              /* stream: tool calls begun so far, per choice */
    size_t text_off[LIM_N];             /* stream, completions with logprobs: bytes of each
                                         * choice's text so far (text_offset) */
    api_media media;                    /* chat: the messages' images and audio */
} oai_wire;

/* Fills m with a fresh random id and the current time. Copies model. */
void oai_meta_init(oai_meta *m, bool chat, const char *model, bool include_usage);

/* Parse the body root (borrowed; must outlive c) of POST /v1/chat/completions into c.
 * c->gen.params starts as *defaults and takes every parameter the client gave. On error returns
 * the code with err filled and nothing to free; on success free c with oai_call_free.
 * Errors: ERR_BAD_PARAM (param names the field), ERR_NOMEM. */
shimmy_err oai_parse_chat(json_t *root, const gen_params *defaults, api_call *c, api_error *err);
/* Same for POST /v1/completions (prompt instead of messages). */
shimmy_err oai_parse_completion(json_t *root, const gen_params *defaults, api_call *c,
                                api_error *err);
/* Frees c->wire. c may be zeroed. */
void oai_call_free(api_call *c);

/* {"error":{"message","type","param","code"}} from err.h's table. Appends to out. */
shimmy_err oai_error_json(const api_error *e, buf *out);

#endif
