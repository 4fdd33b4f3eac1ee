/* anthropic_wire: the Anthropic Messages API without I/O, and its two rows of the generation
 * path (api/gen.h): POST /v1/messages and POST /v1/messages/count_tokens. Request bodies in, an
 * api_call out (the engine's chat JSON in OpenAI's shape, built from system, messages with their
 * content blocks, tools, tool_choice, thinking; validated, 400 naming the field as Anthropic
 * does: "messages.0.content.1.type: ..."); engine events in, Anthropic's message object and its
 * named SSE events out (message_start, content_block_start/delta/stop, message_delta,
 * message_stop, ping, error). No engine, registry or sockets here: unit-tested alone.
 *
 * Thread-safety: every function is reentrant; a call belongs to one thread at a time. */
#ifndef SHIMMY_API_ANTHROPIC_WIRE_H
#define SHIMMY_API_ANTHROPIC_WIRE_H

#include <stdbool.h>

#include <jansson.h>

#include "api/gen.h"
#include "api/media.h"
#include "core/limits.h"

/* The content block a stream has open. */
typedef enum { ANT_BLOCK_NONE, ANT_BLOCK_THINKING, ANT_BLOCK_TEXT, ANT_BLOCK_TOOL } ant_block;

/* The Anthropic state of a call (api_call.wire). */
typedef struct ant_wire {
    char id[48];                        /* "msg_<hex>" */
    char model[256];                    /* as the client gave it */
    char *chat_json;                    /* owned: the engine's chat input */
    const char *stop[LIM_STOP_STRINGS]; /* borrowed from the body */
    ant_block open;                     /* stream: the block being written */
    int open_tool;                      /* stream: its tool index when open is ANT_BLOCK_TOOL */
    int n_blocks;                       /* stream: blocks begun so far (the next index) */
    bool any_tool;                      /* stream: a tool_use block was written */
    api_media media;                    /* the messages' images */
} ant_wire;

/* Parses the body root (borrowed; must outlive c) of POST /v1/messages into c: c->gen.params
 * starts as *defaults. max_tokens is required (400 "max_tokens: Field required", as Anthropic).
 * On error returns the code with err filled and nothing to free; on success free c with
 * ant_call_free. Errors: ERR_BAD_PARAM, ERR_NOMEM. */
shimmy_err ant_parse_messages(json_t *root, const gen_params *defaults, api_call *c,
                              api_error *err);
/* Same for POST /v1/messages/count_tokens (no max_tokens, no sampling, no stream). */
shimmy_err ant_parse_count(json_t *root, api_call *c, api_error *err);
/* Frees c->wire. c may be zeroed. */
void ant_call_free(api_call *c);

/* {"type":"error","error":{"type","message"}} with Anthropic's error type for e->code. Appends
 * to out (the HTTP layer's own errors on /v1/messages). */
shimmy_err ant_error_json(const api_error *e, buf *out);
/* Anthropic's HTTP status for code: err.h's, except 529 for a full queue (overloaded_error). */
int ant_status(shimmy_err code);

#endif
