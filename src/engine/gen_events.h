/* engine/gen_events: the plain types that the engine hands out and llama_chat.cpp fills: the
 * events of a generation and a chat template's capabilities. Part of engine.h's interface (kept
 * in its own header so that the C++ edge can include it without the rest of engine.h).
 * Thread-safety: see engine.h. */
#ifndef SHIMMY_ENGINE_GEN_EVENTS_H
#define SHIMMY_ENGINE_GEN_EVENTS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a job produced since the last wait, in order: answer text, reasoning text, and tool calls
 * (a call's first event carries its id and name; later ones pieces of its arguments, JSON text
 * that concatenates to the whole arguments object). A raw (non-chat) job and a chat whose model
 * neither thinks nor calls tools produce content only.
 * A job that asked for log probabilities (gen_params.logprobs) also gets, after the text events
 * of a wait, one GEN_EV_LOGPROB per token generated since the last wait (text: the token's piece,
 * special tokens as their text; logprob) each followed by its GEN_EV_LOGPROB_TOP alternatives,
 * most likely first (gen_params.top_logprobs of them). The end-of-generation token has none. */
typedef enum {
    GEN_EV_CONTENT,
    GEN_EV_REASONING,
    GEN_EV_TOOL,
    GEN_EV_LOGPROB,
    GEN_EV_LOGPROB_TOP
} gen_event_kind;

typedef struct gen_event {
    gen_event_kind kind;
    int tool_index;        /* GEN_EV_TOOL: which call, 0-based */
    const char *tool_id;   /* GEN_EV_TOOL: set on the call's first event, else NULL */
    const char *tool_name; /* likewise */
    const char *text;      /* the text, or the piece of arguments; valid until the next wait */
    size_t len;
    float logprob; /* GEN_EV_LOGPROB[_TOP]: natural log of the token's probability, <= 0 */
    /* private: offsets into gen_events.strings while the events are being added */
    size_t off_id, off_name, off_text;
} gen_event;

/* The events of one wait. Owned by the caller, reused across waits (engine_job_wait clears it).
 * Not thread-safe. */
typedef struct gen_events {
    gen_event *ev;
    size_t n, cap;
    buf strings; /* storage behind the events' strings */
} gen_events;

void gen_events_init(gen_events *e);
void gen_events_free(gen_events *e);

/* What a chat template can express, from its Jinja source alone (no model needed). */
typedef struct engine_tmpl_caps {
    bool tools;    /* renders tool definitions and calls */
    bool thinking; /* has a thinking switch or reasoning tags */
} engine_tmpl_caps;

#ifdef __cplusplus
}
#endif

#endif
