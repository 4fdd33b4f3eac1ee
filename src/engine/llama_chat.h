/* engine/llama_chat: the C face of llama.cpp's chat module (common/chat*.cpp, the Jinja engine
 * in common/jinja, json-schema-to-grammar), compiled from the pinned source (scripts/build-chat.sh)
 * and called only through this header. llama_chat.cpp is the only C++ file of shimmy (ADR 0004).
 *
 * What it does: renders a chat (OpenAI chat-completions JSON, see gen_request in engine.h) with a
 * model's Jinja template exactly as llama-server does, and returns what generation needs (the
 * prompt, the tool-call or schema grammar with its lazy triggers, tokens to keep visible, extra
 * stop strings) plus a parser that splits the generated text into answer, reasoning and tool
 * calls, incrementally, as llama-server streams them.
 *
 * Internal to engine/. No C++ exception crosses this header: every error is a shimmy_err with a
 * message (and, for request errors, the request field at fault).
 *
 * Thread-safety: a template is immutable after lchat_tmpl_new and may be used from any thread;
 * a render result and a parser belong to one thread at a time. */
#ifndef SHIMMY_ENGINE_LLAMA_CHAT_H
#define SHIMMY_ENGINE_LLAMA_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "engine/gen_events.h"

#ifdef __cplusplus
extern "C" {
#endif

struct llama_model;
struct llama_vocab;
struct llama_sampler;
typedef struct lchat_tmpl lchat_tmpl;
typedef struct lchat_parser lchat_parser;

/* A model's chat template. jinja: Jinja source that replaces the model's (--chat-template-file);
 * builtin: one of llama.cpp's built-in template names (--template), rendered without Jinja;
 * both NULL: the model's own tokenizer.chat_template (its "tool_use" variant when present), or
 * ChatML when it has none. model may be NULL (then BOS/EOS are empty: for capability checks).
 * Returns owned *out. Errors: ERR_BAD_PARAM (the template does not parse, or an unknown built-in
 * name), with llama.cpp's message. */
shimmy_err lchat_tmpl_new(const struct llama_model *model, const char *jinja, const char *builtin,
                          lchat_tmpl **out, char *err, size_t errlen);
void lchat_tmpl_free(lchat_tmpl *t);
/* The template source in use (the built-in name when rendered without Jinja); borrowed from t. */
const char *lchat_tmpl_source(const lchat_tmpl *t);
void lchat_tmpl_caps(const lchat_tmpl *t, engine_tmpl_caps *out);

/* What one chat request renders to. Every pointer is owned by the struct (lchat_render_free). */
typedef struct lchat_render {
    char *prompt;            /* the text to tokenize (special tokens as text) */
    char *grammar;           /* GBNF the output must match (start "root"), or NULL */
    bool grammar_lazy;       /* the grammar applies only from a trigger on */
    char **trigger_patterns; /* regexes (llama_sampler_init_grammar_lazy_patterns) */
    int n_trigger_patterns;
    int32_t *trigger_tokens; /* tokens that trigger the grammar */
    int n_trigger_tokens;
    int32_t *prefill_tokens; /* fed to a non-lazy grammar before sampling (the part of the
                                answer the template already wrote); may be empty */
    int n_prefill_tokens;
    int32_t *preserved_tokens; /* special tokens generated text must show (tool-call tags) */
    int n_preserved_tokens;
    char **stops; /* extra stop strings of the format */
    int n_stops;
    lchat_parser *parser; /* splits the output; NULL for a raw prompt */
} lchat_render;

/* Renders chat_json (gen_request.chat_json) with t. json_schema (may be NULL): the answer must
 * match it. now_s: the time templates see (unix seconds). model: for tokenizing triggers and
 * preserved tokens. generate: the answer will be generated and read, so tools need a call
 * format llama.cpp can read (false: only the prompt is wanted, as /apply-template: tools are
 * rendered wherever the template renders them, as llama-server does). Errors: ERR_BAD_PARAM with
 * the message and the field at fault in param
 * ("messages", "tools", "tool_choice", "response_format", ...), ERR_UNSUPPORTED never. On error
 * *out is empty. */
shimmy_err lchat_render_chat(const lchat_tmpl *t, const struct llama_model *model,
                             const char *chat_json, const char *json_schema, int64_t now_s,
                             bool generate, lchat_render *out, char *err, size_t errlen,
                             char *param, size_t paramlen);
/* For a raw prompt with a JSON schema: only the grammar (out->grammar). */
shimmy_err lchat_schema_grammar(const char *json_schema, char **gbnf, char *err, size_t errlen);
/* The output grammar of r as a llama.cpp sampler: lazy (from a trigger on) or whole, after the
 * prefill tokens. vocab: struct llama_vocab. Returns owned, NULL when the grammar does not parse
 * or the prefill does not match it. */
struct llama_sampler *lchat_grammar_sampler(const struct llama_vocab *vocab, const lchat_render *r);
/* Feeds token t to a grammar sampler made by lchat_grammar_sampler. False when the grammar
 * refuses it (llama.cpp throws there; the exception ends here). */
bool lchat_grammar_accept(struct llama_sampler *grammar, int32_t t);
/* Frees what r owns (the parser too, unless taken: set r->parser NULL first). */
void lchat_render_free(lchat_render *r);

/* Feeds the whole generated text so far (text[0..n), the same prefix as before plus what is new)
 * and appends to ev what changed since the previous call: answer and reasoning text, tool calls
 * (id and name first, then argument pieces). partial false: the text is complete (the final
 * parse). A text the format cannot parse in the final call keeps what was already sent and
 * returns the rest as answer text. Errors: ERR_NOMEM, ERR_TOO_LARGE (ev's buffer). */
shimmy_err lchat_parser_feed(lchat_parser *p, const char *text, size_t n, bool partial,
                             gen_events *ev);
/* The reference's own reading of a whole answer (llama.cpp's common_chat_parse, not partial) as
 * one OpenAI assistant message JSON text {"role","content","reasoning_content","tool_calls"};
 * for tests and debugging: lchat_parser_feed must agree with it. Does not change p's state.
 * Returns owned *json. Errors: ERR_BAD_PARAM (the text does not match the format, message in
 * err), ERR_NOMEM. */
shimmy_err lchat_parse_whole(const lchat_parser *p, const char *text, size_t n, char **json,
                             char *err, size_t errlen);
/* Forgets what was fed: the next lchat_parser_feed starts a new answer to the same request, as a
 * parser fresh from lchat_render_chat would (new tool call ids). For tests that read many answers
 * without rendering the request again. */
void lchat_parser_reset(lchat_parser *p);
/* Tool calls in the answer parsed so far. */
int lchat_parser_n_tool_calls(const lchat_parser *p);
void lchat_parser_free(lchat_parser *p);

/* events.c: appends one event to ev (copies id, name and text[0..len); consecutive text of one
 * kind becomes one event); used by the scheduler for raw text too. Errors: ERR_NOMEM,
 * ERR_TOO_LARGE (then ev is unchanged). */
shimmy_err gen_events_add(gen_events *ev, gen_event_kind kind, int tool_index, const char *id,
                          const char *name, const char *text, size_t len);
/* Appends a GEN_EV_LOGPROB or GEN_EV_LOGPROB_TOP event (never merged with its neighbours):
 * the token's text[0..len) and its log probability. Errors as gen_events_add. */
shimmy_err gen_events_add_lp(gen_events *ev, gen_event_kind kind, const char *text, size_t len,
                             float logprob);
/* Appends copies of src's events (not sealed) to dst. Errors as gen_events_add. */
shimmy_err gen_events_append(gen_events *dst, const gen_events *src);
/* Empties ev for the next wait. */
void gen_events_clear(gen_events *ev);
/* Points the events' strings into ev->strings; call when the list is complete. */
void gen_events_seal(gen_events *ev);

#ifdef __cplusplus
}
#endif

#endif
