/* responses_wire: the OpenAI Responses API without I/O, and its row of the generation path
 * (api/gen.h): POST /v1/responses. Request bodies in, an api_call out (the engine's chat JSON
 * built from instructions and input items: messages, function_call, function_call_output,
 * reasoning; tools in the flat function shape, tool_choice, reasoning.effort, text.format as a
 * JSON schema; validated, 400 naming the parameter); engine events in, the response object and
 * its SSE events out (response.created ... response.completed / response.incomplete, each with
 * its sequence_number). No engine, registry or sockets here: unit-tested alone.
 *
 * Thread-safety: every function is reentrant; a call belongs to one thread at a time. */
#ifndef SHIMMY_API_RESPONSES_WIRE_H
#define SHIMMY_API_RESPONSES_WIRE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "api/gen.h"
#include "api/media.h"
#include "api/resp_store.h"

typedef enum { RESP_REASONING, RESP_MESSAGE, RESP_CALL } resp_kind;

/* One output item: its text (message, reasoning) or arguments (function call). */
typedef struct resp_item {
    resp_kind kind;
    int tool_index;   /* RESP_CALL: the engine's call index */
    char id[48];      /* "rs_...", "msg_...", "fc_..." */
    char call_id[96]; /* RESP_CALL: the engine's id, else "call_..." */
    char *name;       /* RESP_CALL: owned */
    buf text;
} resp_item;

/* The Responses state of a call (api_call.wire). */
typedef struct resp_wire {
    char id[48];      /* "resp_<hex>" */
    char model[256];  /* as the client gave it */
    int64_t created;  /* unix seconds */
    char *chat_json;  /* owned: the engine's chat input */
    char *schema;     /* owned: text.format's JSON schema, or NULL */
    int64_t seq;      /* stream: the next sequence_number */
    resp_item *items; /* owned: the output items so far, in order */
    size_t n_items;
    bool open;         /* stream: the last item has not had its done events */
    json_t *conv;      /* owned: the conversation's input items (the previous response's
                        * stored items, then this input's), stored with the output items */
    resp_store *store; /* borrowed: where the answer is kept (store: true), or NULL */
    char prev[48];     /* previous_response_id, "" when none */
    api_media media;   /* the conversation's images */
    const char *stop[LIM_STOP_STRINGS]; /* the defaults' (presets, Modelfile): the API has none */
} resp_wire;

/* Parses the body root (borrowed; must outlive c) of POST /v1/responses into c: c->gen.params
 * starts as *defaults. On error returns the code with err filled and nothing to free; on
 * success free c with resp_call_free. Errors: ERR_BAD_PARAM (param names the field),
 * ERR_NOMEM. */
shimmy_err resp_parse(json_t *root, const gen_params *defaults, api_call *c, api_error *err);
/* resp_parse with a store (borrowed, may be NULL; it must outlive c): previous_response_id is
 * looked up there (unknown: ERR_NOT_FOUND naming "previous_response_id"), and the finished
 * answer is kept there unless the body says store: false. */
shimmy_err resp_parse_store(json_t *root, const gen_params *defaults, resp_store *store,
                            api_call *c, api_error *err);
/* Frees c->wire. c may be zeroed. */
void resp_call_free(api_call *c);

#endif
