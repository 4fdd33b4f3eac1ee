/* anthropic_wire: see anthropic_wire.h. Parsing first (body -> api_call: the parameters, then
 * the chat JSON for the engine: system, messages and their blocks, tools, tool_choice,
 * thinking), then the writers (whole message, stream events, errors), then the rows. */
#include "api/anthropic_wire.h"
#include "api/presets.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/json_in.h"
#include "api/jsonw.h"
#include "http/stream.h"

#define opt api_json_opt

static ant_wire *W(const api_call *c) {
    return c->wire;
}

/* A 400 whose message begins with the field's path, as Anthropic words them. */
static shimmy_err bad(api_error *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static shimmy_err bad(api_error *err, const char *path, const char *fmt, ...) {
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return api_fail(err, ERR_BAD_PARAM, path, "%s: %s", path, what);
}

static shimmy_err nomem(api_error *err) {
    return api_fail(err, ERR_NOMEM, NULL, "out of memory");
}

static bool is_type(const json_t *obj, const char *type) {
    const char *t = json_string_value(json_object_get(obj, "type"));
    return t != NULL && strcmp(t, type) == 0;
}

/* ---- parsing: parameters ---- */

static shimmy_err parse_model(const json_t *root, api_call *c, api_error *err) {
    json_t *model = opt(root, "model");
    if (model == NULL)
        return bad(err, "model", "Field required");
    if (!json_is_string(model) || json_string_length(model) == 0)
        return bad(err, "model", "must be a non-empty string");
    c->model = json_string_value(model);
    return SHIMMY_OK;
}

static shimmy_err parse_sampling(const json_t *root, api_call *c, api_error *err) {
    gen_params *p = &c->gen.params;
    double t = p->temperature, tp = p->top_p, tk = p->top_k, mt = p->max_tokens;
    json_t *stream = opt(root, "stream");
    shimmy_err e;
    if (opt(root, "max_tokens") == NULL)
        return bad(err, "max_tokens", "Field required");
    if ((e = api_json_num(root, "max_tokens", "max_tokens", true, 1, LIM_MAX_TOKENS, &mt, err)) !=
            SHIMMY_OK ||
        (e = api_json_num(root, "temperature", "temperature", false, 0, 1, &t, err)) != SHIMMY_OK ||
        (e = api_json_num(root, "top_p", "top_p", false, 0, 1, &tp, err)) != SHIMMY_OK ||
        (e = api_json_num(root, "top_k", "top_k", true, 0, 1e9, &tk, err)) != SHIMMY_OK)
        return e;
    if (stream != NULL && !json_is_boolean(stream))
        return bad(err, "stream", "must be a boolean");
    c->stream = json_is_true(stream);
    p->max_tokens = (int)mt;
    p->temperature = (float)t;
    p->top_p = (float)tp;
    p->top_k = (int)tk;
    return SHIMMY_OK;
}

static shimmy_err parse_stops(const json_t *root, api_call *c, api_error *err) {
    json_t *v = opt(root, "stop_sequences");
    char path[48];
    if (v == NULL)
        return SHIMMY_OK; /* silent: the defaults' (a preset's) stay */
    c->gen.params.n_stop = 0;
    if (!json_is_array(v))
        return bad(err, "stop_sequences", "must be an array of strings");
    if (json_array_size(v) > LIM_STOP_STRINGS)
        return bad(err, "stop_sequences", "may hold at most %d strings", LIM_STOP_STRINGS);
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *s = json_array_get(v, i);
        snprintf(path, sizeof path, "stop_sequences.%zu", i);
        if (!json_is_string(s))
            return bad(err, path, "must be a string");
        if (json_string_length(s) > LIM_STOP_BYTES)
            return bad(err, path, "is longer than %d bytes", LIM_STOP_BYTES);
        if (json_string_length(s) > 0)
            W(c)->stop[c->gen.params.n_stop++] = json_string_value(s);
    }
    return SHIMMY_OK;
}

/* ---- parsing: the chat ---- */

/* system: a string or text blocks, as the first message. */
static shimmy_err parse_system(const json_t *root, json_t *msgs, api_error *err) {
    json_t *sys = opt(root, "system"), *b;
    char path[48];
    size_t i;
    if (sys == NULL)
        return SHIMMY_OK;
    if (!json_is_string(sys) && !json_is_array(sys))
        return bad(err, "system", "must be a string or an array of text blocks");
    json_array_foreach(sys, i, b) {
        snprintf(path, sizeof path, "system.%zu", i);
        if (!is_type(b, "text") || !json_is_string(json_object_get(b, "text")))
            return bad(err, path, "must be {\"type\": \"text\", \"text\": string}");
    }
    json_t *content = json_is_string(sys) ? json_incref(sys) : json_array();
    json_array_foreach(sys, i, b) json_array_append_new(
        content, json_pack("{s:s,s:O}", "type", "text", "text", json_object_get(b, "text")));
    json_array_append_new(msgs, json_pack("{s:s,s:o}", "role", "system", "content", content));
    return SHIMMY_OK;
}

/* What the blocks of one message become: text parts, reasoning, tool calls, tool results. */
typedef struct turn {
    const char *role;
    json_t *parts;    /* [{type:text,text}] */
    json_t *calls;    /* assistant: tool_calls */
    json_t *results;  /* user: role "tool" messages */
    buf reasoning;    /* assistant: thinking blocks */
    api_media *media; /* the request's images */
} turn;

/* tool_result content: a string or text blocks, joined; "Error: " first when is_error. */
static shimmy_err result_text(const json_t *b, const char *path, buf *out, api_error *err) {
    json_t *content = opt(b, "content"), *is_error = opt(b, "is_error"), *part;
    size_t i;
    if (is_error != NULL && !json_is_boolean(is_error))
        return bad(err, path, "is_error must be a boolean");
    if (json_is_true(is_error))
        buf_puts(out, "Error: ");
    if (content == NULL || json_is_string(content))
        return buf_puts(out, content ? json_string_value(content) : "") == SHIMMY_OK ? SHIMMY_OK
                                                                                     : nomem(err);
    if (!json_is_array(content))
        return bad(err, path, "content must be a string or an array of text blocks");
    json_array_foreach(content, i, part) {
        if (!is_type(part, "text") || !json_is_string(json_object_get(part, "text")))
            return bad(err, path, "content.%zu: only text blocks are supported in a tool result",
                       i);
        buf_puts(out, i > 0 ? "\n" : "");
        buf_puts(out, json_string_value(json_object_get(part, "text")));
    }
    return SHIMMY_OK;
}

static shimmy_err block_tool_result(turn *t, const json_t *b, const char *path, api_error *err) {
    json_t *id = json_object_get(b, "tool_use_id");
    buf text;
    if (strcmp(t->role, "user") != 0)
        return bad(err, path, "tool_result blocks belong to user messages");
    if (!json_is_string(id))
        return bad(err, path, "tool_use_id: Field required");
    buf_init(&text, LIM_PROMPT_BYTES);
    shimmy_err e = result_text(b, path, &text, err);
    if (e == SHIMMY_OK)
        json_array_append_new(t->results,
                              json_pack("{s:s,s:O,s:s%}", "role", "tool", "tool_call_id", id,
                                        "content", buf_str(&text), text.len));
    buf_free(&text);
    return e;
}

static shimmy_err block_tool_use(turn *t, const json_t *b, const char *path, api_error *err) {
    json_t *id = json_object_get(b, "id"), *name = json_object_get(b, "name");
    json_t *input = opt(b, "input");
    if (strcmp(t->role, "assistant") != 0)
        return bad(err, path, "tool_use blocks belong to assistant messages");
    if (!json_is_string(id) || !json_is_string(name) || (input && !json_is_object(input)))
        return bad(err, path,
                   "must be {\"type\": \"tool_use\", \"id\": string, \"name\": "
                   "string, \"input\": object}");
    char *args = input ? json_dumps(input, JSON_COMPACT) : strdup("{}");
    json_t *call = args ? json_pack("{s:O,s:s,s:{s:O,s:s}}", "id", id, "type", "function",
                                    "function", "name", name, "arguments", args)
                        : NULL;
    free(args);
    if (call == NULL)
        return nomem(err);
    json_array_append_new(t->calls, call);
    return SHIMMY_OK;
}

/* An image block: {"type":"image","source":{"type":"base64","media_type","data"} or
 * {"type":"url","url"}}: into the media, and a media marker part in its place. */
static shimmy_err block_image(turn *t, const json_t *b, const char *path, api_error *err) {
    json_t *src = json_object_get(b, "source");
    const char *type = json_string_value(json_object_get(src, "type"));
    json_t *data = json_object_get(src, "data"), *url = json_object_get(src, "url");
    char param[96];
    shimmy_err e;
    if (type != NULL && strcmp(type, "base64") == 0 && json_is_string(data)) {
        snprintf(param, sizeof param, "%s.source.data", path);
        e = api_media_add_base64(t->media, json_string_value(data), json_string_length(data),
                                 GEN_MEDIA_IMAGE, param, err);
    } else if (type != NULL && strcmp(type, "url") == 0 && json_is_string(url)) {
        snprintf(param, sizeof param, "%s.source.url", path);
        e = api_media_add_url(t->media, json_string_value(url), GEN_MEDIA_IMAGE, param, err);
    } else {
        return bad(err, path,
                   "source must be {\"type\": \"base64\", \"media_type\": string, "
                   "\"data\": string} or {\"type\": \"url\", \"url\": string}");
    }
    if (e == SHIMMY_OK)
        json_array_append_new(t->parts, json_pack("{s:s,s:s}", "type", "media_marker", "text",
                                                  engine_media_marker()));
    return e;
}

static shimmy_err block(turn *t, const json_t *b, const char *path, api_error *err) {
    const char *type = json_string_value(json_object_get(b, "type"));
    if (!json_is_object(b) || type == NULL)
        return bad(err, path, "must be a content block with a string 'type'");
    if (strcmp(type, "text") == 0) {
        json_t *text = json_object_get(b, "text");
        if (!json_is_string(text))
            return bad(err, path, "text: Field required");
        json_array_append_new(t->parts, json_pack("{s:s,s:O}", "type", "text", "text", text));
        return SHIMMY_OK;
    }
    if (strcmp(type, "thinking") == 0) {
        json_t *th = json_object_get(b, "thinking");
        if (!json_is_string(th))
            return bad(err, path, "thinking: Field required");
        return buf_puts(&t->reasoning, json_string_value(th)) == SHIMMY_OK ? SHIMMY_OK : nomem(err);
    }
    if (strcmp(type, "redacted_thinking") == 0)
        return SHIMMY_OK; /* encrypted by Anthropic: nothing a local model can read */
    if (strcmp(type, "tool_use") == 0)
        return block_tool_use(t, b, path, err);
    if (strcmp(type, "tool_result") == 0)
        return block_tool_result(t, b, path, err);
    if (strcmp(type, "image") == 0)
        return block_image(t, b, path, err);
    return bad(err, path,
               "content block type '%.64s' is not supported (text, image, thinking, "
               "tool_use, tool_result)",
               type);
}

/* The turn's messages: tool results first (they answer the previous turn), then the text,
 * reasoning and calls of the message itself. */
static void turn_emit(turn *t, json_t *msgs) {
    size_t n = json_array_size(t->parts);
    json_array_extend(msgs, t->results);
    if (n == 0 && json_array_size(t->calls) == 0 && t->reasoning.len == 0)
        return;
    json_t *m = json_pack("{s:s}", "role", t->role);
    if (n == 1)
        json_object_set(m, "content", json_object_get(json_array_get(t->parts, 0), "text"));
    else if (n > 0)
        json_object_set(m, "content", t->parts);
    else /* thinking or calls only: no text (set_new: the fresh "" is the object's) */
        json_object_set_new(m, "content",
                            json_array_size(t->calls) ? json_null() : json_string(""));
    if (json_array_size(t->calls) > 0)
        json_object_set(m, "tool_calls", t->calls);
    if (t->reasoning.len > 0)
        json_object_set_new(m, "reasoning_content",
                            json_stringn(buf_str(&t->reasoning), t->reasoning.len));
    json_array_append_new(msgs, m);
}

static shimmy_err parse_message(const json_t *msg, size_t i, json_t *msgs, api_media *media,
                                api_error *err) {
    char path[64];
    const char *role = json_string_value(json_object_get(msg, "role"));
    json_t *content = json_object_get(msg, "content"), *b;
    size_t j;
    snprintf(path, sizeof path, "messages.%zu.role", i);
    if (role == NULL || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0))
        return bad(err, path, "must be \"user\" or \"assistant\"");
    snprintf(path, sizeof path, "messages.%zu.content", i);
    if (json_is_string(content)) {
        json_array_append_new(msgs, json_pack("{s:s,s:O}", "role", role, "content", content));
        return SHIMMY_OK;
    }
    if (!json_is_array(content))
        return bad(err, path, "must be a string or an array of content blocks");
    turn t = {role, json_array(), json_array(), json_array(), {0}, media};
    buf_init(&t.reasoning, LIM_PROMPT_BYTES);
    shimmy_err e = SHIMMY_OK;
    json_array_foreach(content, j, b) {
        snprintf(path, sizeof path, "messages.%zu.content.%zu", i, j);
        if ((e = block(&t, b, path, err)) != SHIMMY_OK)
            break;
    }
    if (e == SHIMMY_OK)
        turn_emit(&t, msgs);
    json_decref(t.parts);
    json_decref(t.calls);
    json_decref(t.results);
    buf_free(&t.reasoning);
    return e;
}

static shimmy_err parse_messages(const json_t *root, json_t *chat, api_media *media,
                                 api_error *err) {
    json_t *msgs = opt(root, "messages"), *out = json_array();
    size_t n = json_array_size(msgs);
    json_object_set_new(chat, "messages", out);
    shimmy_err e = parse_system(root, out, err);
    if (e != SHIMMY_OK)
        return e;
    if (msgs == NULL)
        return bad(err, "messages", "Field required");
    if (!json_is_array(msgs) || n == 0)
        return bad(err, "messages", "must be a non-empty array");
    if (n > LIM_MESSAGES)
        return bad(err, "messages", "may hold at most %d messages", LIM_MESSAGES);
    for (size_t i = 0; i < n && e == SHIMMY_OK; i++) {
        json_t *m = json_array_get(msgs, i);
        char path[32];
        snprintf(path, sizeof path, "messages.%zu", i);
        e = json_is_object(m) ? parse_message(m, i, out, media, err)
                              : bad(err, path, "must be an object");
    }
    return e;
}

/* One tool: {name, description, input_schema} (type absent or "custom"). */
static shimmy_err parse_tool(const json_t *t, size_t i, json_t *out, api_error *err) {
    char path[48];
    const char *type = json_string_value(opt(t, "type"));
    json_t *name = json_object_get(t, "name"), *desc = opt(t, "description");
    json_t *schema = json_object_get(t, "input_schema");
    snprintf(path, sizeof path, "tools.%zu", i);
    if (!json_is_object(t))
        return bad(err, path, "must be an object");
    if (type != NULL && strcmp(type, "custom") != 0)
        return bad(err, path,
                   "tool type '%.64s' is not supported (only client tools with an "
                   "input_schema)",
                   type);
    if (!json_is_string(name) || json_string_length(name) == 0)
        return bad(err, path, "name: must be a non-empty string");
    if (desc != NULL && !json_is_string(desc))
        return bad(err, path, "description: must be a string");
    if (!json_is_object(schema))
        return bad(err, path, "input_schema: Field required (a JSON schema object)");
    json_t *f = json_pack("{s:O,s:O}", "name", name, "parameters", schema);
    if (desc != NULL)
        json_object_set(f, "description", desc);
    json_array_append_new(out, json_pack("{s:s,s:o}", "type", "function", "function", f));
    return SHIMMY_OK;
}

static shimmy_err parse_tools(const json_t *root, json_t *chat, api_error *err) {
    json_t *tools = opt(root, "tools"), *out;
    if (tools == NULL)
        return SHIMMY_OK;
    if (!json_is_array(tools))
        return bad(err, "tools", "must be an array");
    out = json_array();
    json_object_set_new(chat, "tools", out);
    for (size_t i = 0; i < json_array_size(tools); i++) {
        shimmy_err e = parse_tool(json_array_get(tools, i), i, out, err);
        if (e != SHIMMY_OK)
            return e;
    }
    return SHIMMY_OK;
}

/* tool_choice {type: auto|any|tool|none, name, disable_parallel_tool_use}. */
static shimmy_err parse_tool_choice(const json_t *root, json_t *chat, api_error *err) {
    json_t *tc = opt(root, "tool_choice"), *dp;
    const char *type = json_string_value(json_object_get(tc, "type"));
    const char *name = json_string_value(json_object_get(tc, "name"));
    if (tc == NULL)
        return SHIMMY_OK;
    if (type == NULL)
        return bad(err, "tool_choice",
                   "must be {\"type\": \"auto\" | \"any\" | \"tool\" | "
                   "\"none\"}");
    if (strcmp(type, "auto") == 0 || strcmp(type, "none") == 0)
        json_object_set_new(chat, "tool_choice", json_string(type));
    else if (strcmp(type, "any") == 0 && json_array_size(json_object_get(chat, "tools")) == 0)
        return bad(err, "tool_choice", "\"any\" needs tools");
    else if (strcmp(type, "any") == 0)
        json_object_set_new(chat, "tool_choice", json_string("required"));
    else if (strcmp(type, "tool") != 0)
        return bad(err, "tool_choice.type", "must be \"auto\", \"any\", \"tool\" or \"none\"");
    else if (name == NULL || !api_tools_have(json_object_get(chat, "tools"), name))
        return bad(err, "tool_choice.name", "must name one of the tools");
    else
        json_object_set_new(
            chat, "tool_choice",
            json_pack("{s:s,s:{s:s}}", "type", "function", "function", "name", name));
    if ((dp = opt(tc, "disable_parallel_tool_use")) != NULL && !json_is_boolean(dp))
        return bad(err, "tool_choice.disable_parallel_tool_use", "must be a boolean");
    if (json_is_true(dp))
        json_object_set_new(chat, "parallel_tool_calls", json_false());
    return SHIMMY_OK;
}

/* thinking {type: enabled, budget_tokens} | {type: disabled}: the template's thinking switch
 * (the budget is checked, not enforced). */
static shimmy_err parse_thinking(const json_t *root, api_call *c, json_t *chat, api_error *err) {
    json_t *th = opt(root, "thinking");
    const char *type = json_string_value(json_object_get(th, "type"));
    double budget = 0;
    if (th == NULL)
        return SHIMMY_OK;
    if (type != NULL && strcmp(type, "disabled") == 0) {
        json_object_set_new(chat, "enable_thinking", json_false());
        return SHIMMY_OK;
    }
    if (type == NULL || (strcmp(type, "enabled") != 0 && strcmp(type, "adaptive") != 0))
        return bad(err, "thinking.type", "must be \"enabled\" or \"disabled\"");
    shimmy_err e = api_json_num(th, "budget_tokens", "thinking.budget_tokens", true, 1,
                                LIM_MAX_TOKENS, &budget, err);
    if (e != SHIMMY_OK)
        return e;
    json_object_set_new(chat, "enable_thinking", json_true());
    c->need_thinking = true;
    return SHIMMY_OK;
}

static bool tools_used(const json_t *chat) {
    const char *choice = json_string_value(json_object_get(chat, "tool_choice"));
    return json_array_size(json_object_get(chat, "tools")) > 0 &&
           !(choice != NULL && strcmp(choice, "none") == 0);
}

static shimmy_err parse_chat(const json_t *root, api_call *c, api_error *err) {
    json_t *chat = json_object();
    shimmy_err e = chat != NULL ? SHIMMY_OK : nomem(err);
    if (e == SHIMMY_OK && (e = parse_messages(root, chat, &W(c)->media, err)) == SHIMMY_OK &&
        (e = parse_tools(root, chat, err)) == SHIMMY_OK &&
        (e = parse_tool_choice(root, chat, err)) == SHIMMY_OK &&
        (e = parse_thinking(root, c, chat, err)) == SHIMMY_OK)
        e = api_json_text(chat, &W(c)->chat_json, err);
    c->gen.chat_json = W(c)->chat_json;
    c->gen.media = W(c)->media.items;
    c->gen.n_media = W(c)->media.n;
    c->need_tools = tools_used(chat);
    json_decref(chat);
    return e;
}

static shimmy_err parse(json_t *root, const gen_params *defaults, api_call *c, api_error *err,
                        bool count) {
    shimmy_err e;
    memset(c, 0, sizeof *c);
    api_error_clear(err);
    c->keep_ns = REGISTRY_KEEP_DEFAULT;
    c->gen.params = *defaults;
    if ((c->wire = calloc(1, sizeof(ant_wire))) == NULL)
        return nomem(err);
    api_stops_own(&c->gen.params, W(c)->stop);
    if ((e = parse_model(root, c, err)) != SHIMMY_OK ||
        (!count && (e = parse_sampling(root, c, err)) != SHIMMY_OK) ||
        (!count && (e = parse_stops(root, c, err)) != SHIMMY_OK) ||
        (e = parse_chat(root, c, err)) != SHIMMY_OK) {
        ant_call_free(c);
        return e;
    }
    api_random_id(W(c)->id, sizeof W(c)->id, "msg_", 12);
    snprintf(W(c)->model, sizeof W(c)->model, "%s", c->model);
    return SHIMMY_OK;
}

shimmy_err ant_parse_messages(json_t *root, const gen_params *defaults, api_call *c,
                              api_error *err) {
    return parse(root, defaults, c, err, false);
}

shimmy_err ant_parse_count(json_t *root, api_call *c, api_error *err) {
    gen_params d;
    gen_params_default(&d);
    return parse(root, &d, c, err, true);
}

void ant_call_free(api_call *c) {
    ant_wire *w = c->wire;
    if (w != NULL) {
        free(w->chat_json);
        api_media_free(&w->media);
        free(w);
    }
    c->wire = NULL;
}

/* ---- writers ---- */

/* Anthropic's error types by status class. */
static const char *error_type(shimmy_err code) {
    switch (code) {
    case ERR_UNAUTHORIZED:
        return "authentication_error";
    case ERR_FORBIDDEN:
        return "permission_error";
    case ERR_MODEL_NOT_FOUND:
    case ERR_NOT_FOUND:
        return "not_found_error";
    case ERR_TOO_LARGE:
        return "request_too_large";
    case ERR_OVERLOADED:
        return "overloaded_error";
    default:
        return err_get(code)->http_status < 500 ? "invalid_request_error" : "api_error";
    }
}

int ant_status(shimmy_err code) {
    return code == ERR_OVERLOADED ? 529 : err_get(code)->http_status;
}

static void error_obj(jsonw *w, const api_error *e) {
    jsonw_raw(w, "{\"type\":\"error\",\"error\":{\"type\":");
    jsonw_cstr(w, error_type(e->code));
    jsonw_raw(w, ",\"message\":");
    jsonw_cstr(w, api_error_message(e));
    jsonw_raw(w, "}}");
}

shimmy_err ant_error_json(const api_error *e, buf *out) {
    jsonw w;
    jsonw_begin(&w, out);
    error_obj(&w, e);
    return jsonw_end(&w);
}

/* Whole or streamed: the body, or an "error" event. */
static shimmy_err write_error(const api_error *e, api_sink *s) {
    jsonw w;
    api_frame_begin(s, &w);
    error_obj(&w, e);
    return api_frame_end_event(s, &w, "error");
}

/* The request's stop sequence that ended the answer, or NULL (the engine reports the stop
 * string it met, which may also be one of the chat format's own). */
static const char *matched_stop(api_call *c, const gen_status *st) {
    for (int i = 0; st->stop_word[0] != '\0' && i < c->gen.params.n_stop; i++)
        if (strcmp(c->gen.params.stop[i], st->stop_word) == 0)
            return c->gen.params.stop[i];
    return NULL;
}

static const char *stop_reason(api_call *c, const gen_status *st, bool tools) {
    if (st->finish == FINISH_LENGTH)
        return "max_tokens";
    if (st->finish == FINISH_TOOL_CALLS || tools)
        return "tool_use";
    return matched_stop(c, st) != NULL ? "stop_sequence" : "end_turn";
}

/* "stop_reason":...,"stop_sequence":... */
static void stop_fields(jsonw *w, api_call *c, const gen_status *st, bool tools) {
    jsonw_raw(w, "\"stop_reason\":");
    jsonw_cstr(w, stop_reason(c, st, tools));
    jsonw_raw(w, ",\"stop_sequence\":");
    jsonw_cstr(w, matched_stop(c, st));
}

/* usage: input_tokens leaves out the prompt prefix read from the cache, as Anthropic counts. */
static void usage(jsonw *w, int prompt, int cached, int output) {
    jsonw_raw(w, "{\"input_tokens\":");
    jsonw_int(w, prompt - cached);
    jsonw_raw(w, ",\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":");
    jsonw_int(w, cached);
    jsonw_raw(w, ",\"output_tokens\":");
    jsonw_int(w, output);
    jsonw_raw(w, "}");
}

/* A tool call's id: the engine's, else a fresh "toolu_<hex>" in id[0..n). */
static const char *tool_id(const char *given, char *id, size_t n) {
    if (given != NULL && given[0] != '\0')
        return given;
    api_random_id(id, n, "toolu_", 12);
    return id;
}

/* input: the arguments as an object ({} when the model wrote something else). */
static void tool_input(jsonw *w, const buf *args) {
    json_t *v = json_loadb(buf_str(args), args->len, 0, NULL);
    char *text = json_is_object(v) ? json_dumps(v, JSON_COMPACT) : NULL;
    jsonw_raw(w, text != NULL ? text : "{}");
    free(text);
    json_decref(v);
}

static void content_blocks(jsonw *w, const api_answer *a) {
    const char *sep = "";
    char id[48];
    if (a->reasoning.len > 0) {
        jsonw_raw(w, "{\"type\":\"thinking\",\"thinking\":");
        jsonw_str(w, buf_str(&a->reasoning), a->reasoning.len);
        jsonw_raw(w, ",\"signature\":\"\"}");
        sep = ",";
    }
    if (a->content.len > 0) {
        jsonw_raw(w, sep);
        jsonw_raw(w, "{\"type\":\"text\",\"text\":");
        jsonw_str(w, buf_str(&a->content), a->content.len);
        jsonw_raw(w, "}");
        sep = ",";
    }
    for (size_t i = 0; i < a->n_calls; i++) {
        jsonw_raw(w, sep);
        jsonw_raw(w, "{\"type\":\"tool_use\",\"id\":");
        jsonw_cstr(w, tool_id(a->calls[i].id, id, sizeof id));
        jsonw_raw(w, ",\"name\":");
        jsonw_cstr(w, a->calls[i].name);
        jsonw_raw(w, ",\"input\":");
        tool_input(w, &a->calls[i].args);
        jsonw_raw(w, "}");
        sep = ",";
    }
}

/* {"id","type":"message","role","model","content":[ — the head of a message object. */
static void message_head(jsonw *w, const ant_wire *aw) {
    jsonw_raw(w, "{\"id\":");
    jsonw_cstr(w, aw->id);
    jsonw_raw(w, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    jsonw_cstr(w, aw->model);
    jsonw_raw(w, ",\"content\":[");
}

static shimmy_err whole(api_call *c, const api_answer *a, const gen_status *st, api_sink *s) {
    jsonw w;
    api_frame_begin(s, &w);
    message_head(&w, W(c));
    content_blocks(&w, a);
    jsonw_raw(&w, "],");
    stop_fields(&w, c, st, a->n_calls > 0);
    jsonw_raw(&w, ",\"usage\":");
    usage(&w, st->prompt_tokens, st->cached_tokens, st->completion_tokens);
    jsonw_raw(&w, "}");
    return api_frame_end(s, &w);
}

/* ---- the stream ---- */

static shimmy_err ping(api_call *c, api_sink *s) {
    jsonw w;
    (void)c;
    api_frame_begin(s, &w);
    jsonw_raw(&w, "{\"type\":\"ping\"}");
    return api_frame_end_event(s, &w, "ping");
}

/* message_start (the message with no content; the prompt's size), then a ping as Anthropic. */
static shimmy_err start(api_call *c, api_sink *s) {
    jsonw w;
    api_frame_begin(s, &w);
    jsonw_raw(&w, "{\"type\":\"message_start\",\"message\":");
    message_head(&w, W(c));
    jsonw_raw(&w, "],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":");
    usage(&w, c->prompt_tokens, 0, 0);
    jsonw_raw(&w, "}}");
    shimmy_err e = api_frame_end_event(s, &w, "message_start");
    return e == SHIMMY_OK ? ping(c, s) : e;
}

/* {"type":"content_block_delta","index":N,"delta":{"type":<type>,<key>:<text>}} */
static shimmy_err block_delta(ant_wire *aw, const char *type, const char *key, const char *text,
                              size_t len, api_sink *s) {
    jsonw w;
    api_frame_begin(s, &w);
    jsonw_raw(&w, "{\"type\":\"content_block_delta\",\"index\":");
    jsonw_int(&w, aw->n_blocks - 1);
    jsonw_raw(&w, ",\"delta\":{\"type\":\"");
    jsonw_raw(&w, type);
    jsonw_raw(&w, "\",\"");
    jsonw_raw(&w, key);
    jsonw_raw(&w, "\":");
    jsonw_str(&w, text, len);
    jsonw_raw(&w, "}}");
    return api_frame_end_event(s, &w, "content_block_delta");
}

/* Ends the open block (a thinking block first gets its empty signature, as clients expect). */
static shimmy_err block_stop(ant_wire *aw, api_sink *s) {
    jsonw w;
    shimmy_err e = SHIMMY_OK;
    if (aw->open == ANT_BLOCK_NONE)
        return SHIMMY_OK;
    if (aw->open == ANT_BLOCK_THINKING)
        e = block_delta(aw, "signature_delta", "signature", "", 0, s);
    if (e != SHIMMY_OK)
        return e;
    api_frame_begin(s, &w);
    jsonw_raw(&w, "{\"type\":\"content_block_stop\",\"index\":");
    jsonw_int(&w, aw->n_blocks - 1);
    jsonw_raw(&w, "}");
    aw->open = ANT_BLOCK_NONE;
    return api_frame_end_event(s, &w, "content_block_stop");
}

static shimmy_err block_start(ant_wire *aw, const gen_event *e, ant_block kind, api_sink *s) {
    jsonw w;
    char id[48];
    api_frame_begin(s, &w);
    jsonw_raw(&w, "{\"type\":\"content_block_start\",\"index\":");
    jsonw_int(&w, aw->n_blocks);
    if (kind == ANT_BLOCK_THINKING) {
        jsonw_raw(&w, ",\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\","
                      "\"signature\":\"\"}}");
    } else if (kind == ANT_BLOCK_TEXT) {
        jsonw_raw(&w, ",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}");
    } else {
        jsonw_raw(&w, ",\"content_block\":{\"type\":\"tool_use\",\"id\":");
        jsonw_cstr(&w, tool_id(e->tool_id, id, sizeof id));
        jsonw_raw(&w, ",\"name\":");
        jsonw_cstr(&w, e->tool_name != NULL ? e->tool_name : "");
        jsonw_raw(&w, ",\"input\":{}}}");
        aw->any_tool = true;
    }
    aw->open = kind;
    aw->open_tool = e->tool_index;
    aw->n_blocks++;
    return api_frame_end_event(s, &w, "content_block_start");
}

/* One event: a new block when its kind (or tool call) differs from the open one, then its
 * delta. Blocks are sequential: the open one stops before the next starts. */
static shimmy_err event(ant_wire *aw, const gen_event *e, api_sink *s) {
    ant_block kind = e->kind == GEN_EV_REASONING ? ANT_BLOCK_THINKING
                     : e->kind == GEN_EV_TOOL    ? ANT_BLOCK_TOOL
                                                 : ANT_BLOCK_TEXT;
    bool new_call =
        kind == ANT_BLOCK_TOOL && (e->tool_name != NULL || aw->open_tool != e->tool_index);
    shimmy_err r = SHIMMY_OK;
    if (e->len == 0 && kind != ANT_BLOCK_TOOL)
        return SHIMMY_OK;
    if (aw->open != kind || new_call) {
        if ((r = block_stop(aw, s)) != SHIMMY_OK || (r = block_start(aw, e, kind, s)) != SHIMMY_OK)
            return r;
    }
    if (e->len == 0)
        return SHIMMY_OK;
    if (kind == ANT_BLOCK_THINKING)
        return block_delta(aw, "thinking_delta", "thinking", e->text, e->len, s);
    if (kind == ANT_BLOCK_TEXT)
        return block_delta(aw, "text_delta", "text", e->text, e->len, s);
    return block_delta(aw, "input_json_delta", "partial_json", e->text, e->len, s);
}

static shimmy_err events(api_call *c, const gen_events *ev, api_sink *s) {
    for (size_t i = 0; i < ev->n; i++) {
        shimmy_err e = event(W(c), &ev->ev[i], s);
        if (e != SHIMMY_OK)
            return e;
    }
    return SHIMMY_OK;
}

/* The open block's stop, message_delta (stop_reason, the whole usage) and message_stop. */
static shimmy_err end(api_call *c, const gen_status *st, api_sink *s) {
    jsonw w;
    shimmy_err e = block_stop(W(c), s);
    if (e != SHIMMY_OK)
        return e;
    api_frame_begin(s, &w);
    jsonw_raw(&w, "{\"type\":\"message_delta\",\"delta\":{");
    stop_fields(&w, c, st, W(c)->any_tool);
    jsonw_raw(&w, "},\"usage\":");
    usage(&w, st->prompt_tokens, st->cached_tokens, st->completion_tokens);
    jsonw_raw(&w, "}");
    if ((e = api_frame_end_event(s, &w, "message_delta")) != SHIMMY_OK)
        return e;
    api_frame_begin(s, &w);
    jsonw_raw(&w, "{\"type\":\"message_stop\"}");
    return api_frame_end_event(s, &w, "message_stop");
}

static shimmy_err counted(api_call *c, int n_tokens, api_sink *s) {
    jsonw w;
    (void)c;
    api_frame_begin(s, &w);
    jsonw_raw(&w, "{\"input_tokens\":");
    jsonw_int(&w, n_tokens);
    jsonw_raw(&w, "}");
    return api_frame_end(s, &w);
}

/* ---- the rows ---- */

static shimmy_err parse_messages_row(shimmy_app *app, json_t *root, api_call *c, api_error *err) {
    gen_params d;
    const char *stop[LIM_STOP_STRINGS];
    api_gen_defaults(app, root, NULL, &d, stop);
    return ant_parse_messages(root, &d, c, err);
}

static shimmy_err parse_count_row(shimmy_app *app, json_t *root, api_call *c, api_error *err) {
    (void)app;
    return ant_parse_count(root, c, err);
}

#define ANT_NOT_FOUND                                                                              \
    { "model: ", " (GET /v1/models lists the models)" }

const api_proto ant_messages_proto = {
    .framing = API_FRAME_SSE,
    .content_type = HTTP_SSE_CONTENT_TYPE,
    .not_found = ANT_NOT_FOUND,
    .parse = parse_messages_row,
    .free = ant_call_free,
    .start = start,
    .events = events,
    .end = end,
    .whole = whole,
    .error = write_error,
    .status = ant_status,
    .idle = ping,
};

const api_proto ant_count_proto = {
    .framing = API_FRAME_NONE,
    .content_type = "application/json",
    .not_found = ANT_NOT_FOUND,
    .parse = parse_count_row,
    .free = ant_call_free,
    .error = write_error,
    .status = ant_status,
    .counted = counted,
};
