/* responses_wire: see responses_wire.h. Parsing first (body -> api_call: the parameters, then
 * the chat JSON: instructions, input items, tools, tool_choice, reasoning, text.format), then
 * the output items and the response object, then the stream's events, then the row. */
#include "api/responses_wire.h"
#include "api/presets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "api/json_in.h"
#include "api/jsonw.h"
#include "api/openai_wire.h"
#include "core/clock.h"
#include "core/limits.h"
#include "http/stream.h"

#define opt api_json_opt
#define STR_(x) #x
#define STR(x) STR_(x)

static resp_wire *W(const api_call *c) {
    return c->wire;
}

static shimmy_err bad(api_error *err, const char *param, const char *what) {
    return api_fail(err, ERR_BAD_PARAM, param, "'%s' %s", param, what);
}

static shimmy_err nomem(api_error *err) {
    return api_fail(err, ERR_NOMEM, NULL, "out of memory");
}

static const char *type_of(const json_t *obj) {
    return json_string_value(json_object_get(obj, "type"));
}

static bool streq(const char *a, const char *b) {
    return a != NULL && strcmp(a, b) == 0;
}

/* ---- parsing: parameters ---- */

static shimmy_err parse_params(const json_t *root, api_call *c, api_error *err) {
    gen_params *p = &c->gen.params;
    double t = p->temperature, tp = p->top_p, mt = p->max_tokens;
    json_t *model = opt(root, "model"), *stream = opt(root, "stream"), *v;
    shimmy_err e;
    if (model == NULL)
        return bad(err, "model", "is required");
    if (!json_is_string(model) || json_string_length(model) == 0)
        return bad(err, "model", "must be a non-empty string");
    c->model = json_string_value(model);
    if ((e = api_json_num(root, "max_output_tokens", "max_output_tokens", true, 1, LIM_MAX_TOKENS,
                          &mt, err)) != SHIMMY_OK ||
        (e = api_json_num(root, "temperature", "temperature", false, 0, 2, &t, err)) != SHIMMY_OK ||
        (e = api_json_num(root, "top_p", "top_p", false, 0, 1, &tp, err)) != SHIMMY_OK)
        return e;
    if (stream != NULL && !json_is_boolean(stream))
        return bad(err, "stream", "must be a boolean");
    if ((v = opt(root, "store")) != NULL && !json_is_boolean(v))
        return bad(err, "store", "must be a boolean");
    if ((v = opt(root, "previous_response_id")) != NULL && !json_is_string(v))
        return bad(err, "previous_response_id", "must be a string");
    c->stream = json_is_true(stream);
    p->max_tokens = (int)mt;
    p->temperature = (float)t;
    p->top_p = (float)tp;
    return SHIMMY_OK;
}

/* text.format: text, json_object ({"type":"object"}) or json_schema (its schema). */
static shimmy_err parse_format(const json_t *root, api_call *c, api_error *err) {
    json_t *text = opt(root, "text"), *f = opt(text, "format");
    const char *type = type_of(f);
    json_t *schema = json_object_get(f, "schema");
    if (f == NULL || streq(type, "text"))
        return SHIMMY_OK;
    c->schema_param = "text.format";
    if (streq(type, "json_object"))
        W(c)->schema = strdup("{\"type\":\"object\"}");
    else if (streq(type, "json_schema") && json_is_object(schema))
        W(c)->schema = json_dumps(schema, JSON_COMPACT);
    else
        return bad(err, "text.format",
                   "must be {\"type\": \"text\"}, {\"type\": "
                   "\"json_object\"} or {\"type\": \"json_schema\", \"name\", \"schema\": object}");
    if (W(c)->schema == NULL)
        return nomem(err);
    c->gen.params.json_schema = W(c)->schema;
    return SHIMMY_OK;
}

/* ---- parsing: input items into chat messages ---- */

/* The last message when it is the assistant's (function calls and reasoning join it). */
static json_t *last_assistant(json_t *msgs) {
    json_t *m = json_array_get(msgs, json_array_size(msgs) - 1);
    return streq(json_string_value(json_object_get(m, "role")), "assistant") ? m : NULL;
}

/* An input_image part: {"image_url": "data:..." | "https://..."} into media; a media marker
 * part for the engine into out. */
static shimmy_err image_part(const json_t *part, const char *p, json_t *out, api_media *media,
                             api_error *err) {
    json_t *url = json_object_get(part, "image_url");
    char param[112];
    snprintf(param, sizeof param, "%s.image_url", p);
    if (!json_is_string(url))
        return bad(err, param,
                   "must be a string (a data: URI or an http(s) URL; file_id is not "
                   "supported)");
    shimmy_err e = api_media_add_url(media, json_string_value(url), GEN_MEDIA_IMAGE, param, err);
    if (e == SHIMMY_OK)
        json_array_append_new(
            out, json_pack("{s:s,s:s}", "type", "media_marker", "text", engine_media_marker()));
    return e;
}

/* Message content: a string, or parts input_text/output_text (refusal as text), input_image. */
static shimmy_err item_content(const json_t *content, const char *param, json_t **out,
                               api_media *media, api_error *err) {
    json_t *part;
    size_t j;
    char p[96];
    if (json_is_string(content)) {
        *out = json_incref((json_t *)content);
        return SHIMMY_OK;
    }
    if (!json_is_array(content))
        return bad(err, param, "must be a string or an array of content parts");
    *out = json_array();
    json_array_foreach(content, j, part) {
        const char *type = type_of(part);
        json_t *text = json_object_get(part, streq(type, "refusal") ? "refusal" : "text");
        snprintf(p, sizeof p, "%s[%zu]", param, j);
        if (streq(type, "input_image")) {
            shimmy_err e = media != NULL ? image_part(part, p, *out, media, err)
                                         : bad(err, p, "input_image is not supported here");
            if (e != SHIMMY_OK) {
                json_decref(*out);
                return e;
            }
            continue;
        }
        if (!streq(type, "input_text") && !streq(type, "output_text") && !streq(type, "refusal")) {
            json_decref(*out);
            return api_fail(err, ERR_BAD_PARAM, p,
                            "content part type '%.64s' is not supported "
                            "(input_text, input_image, output_text)",
                            type ? type : "");
        }
        if (!json_is_string(text)) {
            json_decref(*out);
            return bad(err, p, "must carry its text as a string");
        }
        json_array_append_new(*out, json_pack("{s:s,s:O}", "type", "text", "text", text));
    }
    return SHIMMY_OK;
}

static shimmy_err item_message(const json_t *item, const char *param, json_t *msgs,
                               api_media *media, api_error *err) {
    const char *role = json_string_value(json_object_get(item, "role"));
    json_t *content = NULL, *prev;
    char p[96];
    snprintf(p, sizeof p, "%s.role", param);
    if (!streq(role, "user") && !streq(role, "system") && !streq(role, "developer") &&
        !streq(role, "assistant"))
        return bad(err, p, "must be \"user\", \"system\", \"developer\" or \"assistant\"");
    snprintf(p, sizeof p, "%s.content", param);
    shimmy_err e = item_content(json_object_get(item, "content"), p, &content, media, err);
    if (e != SHIMMY_OK)
        return e;
    if (streq(role, "assistant") && (prev = last_assistant(msgs)) != NULL &&
        json_object_get(prev, "tool_calls") == NULL &&
        json_string_length(json_object_get(prev, "content")) == 0) {
        json_object_set_new(prev, "content", content); /* after its reasoning item */
        return SHIMMY_OK;
    }
    json_array_append_new(msgs,
                          json_pack("{s:s,s:o}", "role", streq(role, "developer") ? "system" : role,
                                    "content", content));
    return SHIMMY_OK;
}

static shimmy_err item_call(const json_t *item, const char *param, json_t *msgs, api_error *err) {
    json_t *id = json_object_get(item, "call_id"), *name = json_object_get(item, "name");
    json_t *args = json_object_get(item, "arguments"), *m = last_assistant(msgs), *calls;
    if (!json_is_string(id) || !json_is_string(name) || !json_is_string(args))
        return bad(err, param,
                   "must be {\"type\": \"function_call\", \"call_id\": string, "
                   "\"name\": string, \"arguments\": string}");
    if (m == NULL) {
        m = json_pack("{s:s,s:n}", "role", "assistant", "content");
        json_array_append_new(msgs, m);
    }
    if ((calls = json_object_get(m, "tool_calls")) == NULL)
        json_object_set_new(m, "tool_calls", calls = json_array());
    json_array_append_new(calls, json_pack("{s:O,s:s,s:{s:O,s:O}}", "id", id, "type", "function",
                                           "function", "name", name, "arguments", args));
    return SHIMMY_OK;
}

static shimmy_err item_output(const json_t *item, const char *param, json_t *msgs, api_error *err) {
    json_t *id = json_object_get(item, "call_id"), *out = json_object_get(item, "output");
    json_t *content = NULL;
    char p[96];
    if (!json_is_string(id))
        return bad(err, param, "must carry a string 'call_id'");
    snprintf(p, sizeof p, "%s.output", param);
    shimmy_err e = item_content(out, p, &content, NULL, err);
    if (e == SHIMMY_OK)
        json_array_append_new(msgs, json_pack("{s:s,s:O,s:o}", "role", "tool", "tool_call_id", id,
                                              "content", content));
    return e;
}

/* reasoning {content: [{text}]} or {summary: [{text}]}: the assistant's reasoning_content. */
static shimmy_err item_reasoning(const json_t *item, const char *param, json_t *msgs,
                                 api_error *err) {
    json_t *parts = json_object_get(item, "content"), *part;
    buf text;
    size_t j;
    if (json_array_size(parts) == 0)
        parts = json_object_get(item, "summary");
    if (!json_is_array(parts))
        return bad(err, param, "must carry 'content' or 'summary' as an array of text parts");
    buf_init(&text, LIM_PROMPT_BYTES);
    json_array_foreach(parts, j, part) {
        const char *t = json_string_value(json_object_get(part, "text"));
        buf_puts(&text, t != NULL ? t : "");
    }
    json_t *m = last_assistant(msgs);
    if (m == NULL) {
        m = json_pack("{s:s,s:s}", "role", "assistant", "content", "");
        json_array_append_new(msgs, m);
    }
    json_object_set_new(m, "reasoning_content", json_stringn(buf_str(&text), text.len));
    buf_free(&text);
    return SHIMMY_OK;
}

static shimmy_err input_item(const json_t *item, const char *base, size_t i, json_t *msgs,
                             api_media *media, api_error *err) {
    char param[64];
    const char *type = type_of(item);
    snprintf(param, sizeof param, "%s[%zu]", base, i);
    if (!json_is_object(item))
        return bad(err, param, "must be an object");
    if (type == NULL || streq(type, "message"))
        return item_message(item, param, msgs, media, err);
    if (streq(type, "function_call"))
        return item_call(item, param, msgs, err);
    if (streq(type, "function_call_output"))
        return item_output(item, param, msgs, err);
    if (streq(type, "reasoning"))
        return item_reasoning(item, param, msgs, err);
    if (streq(type, "item_reference"))
        return bad(err, param,
                   "is not supported: continue a stored response with 'previous_response_id', "
                   "or send the items themselves");
    return api_fail(err, ERR_BAD_PARAM, param,
                    "input item type '%.64s' is not supported "
                    "(message, function_call, function_call_output, reasoning)",
                    type);
}

/* The stored conversation of previous_response_id (if any) into rw->conv. */
static shimmy_err conv_previous(const json_t *root, resp_wire *rw, api_error *err) {
    const char *id = json_string_value(opt(root, "previous_response_id"));
    char *items = NULL;
    if (id == NULL)
        return SHIMMY_OK;
    if (rw->store == NULL || strlen(id) >= sizeof rw->prev ||
        !resp_store_get(rw->store, id, NULL, &items))
        return api_fail(err, ERR_NOT_FOUND, "previous_response_id",
                        "Previous response with id '%.64s' not found.", id);
    rw->conv = json_loads(items, 0, NULL);
    free(items);
    if (!json_is_array(rw->conv))
        return nomem(err);
    snprintf(rw->prev, sizeof rw->prev, "%s", id);
    return SHIMMY_OK;
}

/* This request's input appended to rw->conv (a string is one user message). */
static shimmy_err conv_input(const json_t *input, resp_wire *rw, api_error *err) {
    if (rw->conv == NULL && (rw->conv = json_array()) == NULL)
        return nomem(err);
    if (json_is_string(input))
        return json_array_append_new(rw->conv, json_pack("{s:s,s:s,s:O}", "type", "message", "role",
                                                         "user", "content", input)) == 0
                   ? SHIMMY_OK
                   : nomem(err);
    if (!json_is_array(input) || json_array_size(input) == 0)
        return bad(err, "input", "must be a string or a non-empty array of items");
    if (json_array_size(rw->conv) + json_array_size(input) > LIM_MESSAGES)
        return bad(err, "input",
                   "holds more items (with the previous response's) than the limit (" STR(
                       LIM_MESSAGES) ")");
    return json_array_extend(rw->conv, (json_t *)input) == 0 ? SHIMMY_OK : nomem(err);
}

/* The conversation's items as chat messages: the stored ones named after
 * previous_response_id, this input's after input[i]. */
static shimmy_err conv_messages(resp_wire *rw, size_t n_input, json_t *msgs, api_error *err) {
    size_t n = json_array_size(rw->conv), n_prev = n - n_input;
    for (size_t i = 0; i < n; i++) {
        shimmy_err e =
            input_item(json_array_get(rw->conv, i), i < n_prev ? "previous_response_id" : "input",
                       i < n_prev ? i : i - n_prev, msgs, &rw->media, err);
        if (e != SHIMMY_OK)
            return e;
    }
    return SHIMMY_OK;
}

static shimmy_err parse_input(const json_t *root, resp_wire *rw, json_t *chat, api_error *err) {
    json_t *input = opt(root, "input"), *ins = opt(root, "instructions"), *msgs = json_array();
    shimmy_err e;
    json_object_set_new(chat, "messages", msgs);
    if (ins != NULL && !json_is_string(ins))
        return bad(err, "instructions", "must be a string");
    if (ins != NULL)
        json_array_append_new(msgs, json_pack("{s:s,s:O}", "role", "system", "content", ins));
    if (input == NULL)
        return bad(err, "input", "is required");
    if ((e = conv_previous(root, rw, err)) != SHIMMY_OK ||
        (e = conv_input(input, rw, err)) != SHIMMY_OK)
        return e;
    return conv_messages(rw, json_is_string(input) ? 1 : json_array_size(input), msgs, err);
}

/* ---- parsing: tools ---- */

/* {type: "function", name, description, parameters, strict} -> the chat's function tool. */
static shimmy_err parse_tool(const json_t *t, size_t i, json_t *out, api_error *err) {
    char param[48];
    json_t *name = json_object_get(t, "name"), *desc = opt(t, "description");
    json_t *params = opt(t, "parameters");
    snprintf(param, sizeof param, "tools[%zu]", i);
    if (!json_is_object(t))
        return bad(err, param, "must be an object");
    if (!streq(type_of(t), "function"))
        return api_fail(err, ERR_BAD_PARAM, param,
                        "tool type '%.64s' is not supported (only "
                        "\"function\")",
                        type_of(t) ? type_of(t) : "");
    if (!json_is_string(name) || json_string_length(name) == 0 ||
        (desc != NULL && !json_is_string(desc)) || (params != NULL && !json_is_object(params)))
        return bad(err, param,
                   "must be {\"type\": \"function\", \"name\": string, "
                   "\"description\": string, \"parameters\": object}");
    json_t *f = json_pack("{s:O}", "name", name);
    if (desc != NULL)
        json_object_set(f, "description", desc);
    json_object_set_new(f, "parameters", params ? json_incref(params) : json_object());
    json_array_append_new(out, json_pack("{s:s,s:o}", "type", "function", "function", f));
    return SHIMMY_OK;
}

static shimmy_err parse_tools(const json_t *root, json_t *chat, api_error *err) {
    json_t *tools = opt(root, "tools"), *out;
    if (tools == NULL)
        return SHIMMY_OK;
    if (!json_is_array(tools))
        return bad(err, "tools", "must be an array");
    json_object_set_new(chat, "tools", out = json_array());
    for (size_t i = 0; i < json_array_size(tools); i++) {
        shimmy_err e = parse_tool(json_array_get(tools, i), i, out, err);
        if (e != SHIMMY_OK)
            return e;
    }
    return SHIMMY_OK;
}

/* tool_choice "auto" | "none" | "required" | {type: "function", name}; parallel_tool_calls. */
static shimmy_err parse_choice(const json_t *root, json_t *chat, api_error *err) {
    json_t *tc = opt(root, "tool_choice"), *par = opt(root, "parallel_tool_calls");
    const char *s = json_string_value(tc), *name = json_string_value(json_object_get(tc, "name"));
    if (par != NULL && !json_is_boolean(par))
        return bad(err, "parallel_tool_calls", "must be a boolean");
    if (par != NULL)
        json_object_set(chat, "parallel_tool_calls", par);
    if (tc == NULL)
        return SHIMMY_OK;
    if (streq(s, "auto") || streq(s, "none") || streq(s, "required")) {
        json_object_set(chat, "tool_choice", tc);
        return SHIMMY_OK;
    }
    if (!streq(type_of(tc), "function") || name == NULL)
        return bad(err, "tool_choice",
                   "must be \"auto\", \"none\", \"required\" or "
                   "{\"type\": \"function\", \"name\": string}");
    if (!api_tools_have(json_object_get(chat, "tools"), name))
        return api_fail(err, ERR_BAD_PARAM, "tool_choice",
                        "'tool_choice' names the function "
                        "'%.64s', which is not in 'tools'",
                        name);
    json_object_set_new(chat, "tool_choice",
                        json_pack("{s:s,s:{s:s}}", "type", "function", "function", "name", name));
    return SHIMMY_OK;
}

static shimmy_err parse_reasoning(const json_t *root, json_t *chat, api_error *err) {
    json_t *r = opt(root, "reasoning"), *effort = opt(r, "effort");
    if (r != NULL && !json_is_object(r))
        return bad(err, "reasoning", "must be an object");
    if (effort != NULL && !json_is_string(effort))
        return bad(err, "reasoning.effort", "must be a string");
    if (effort != NULL)
        json_object_set(chat, "reasoning_effort", effort);
    return SHIMMY_OK;
}

static bool tools_used(const json_t *chat) {
    const char *choice = json_string_value(json_object_get(chat, "tool_choice"));
    return json_array_size(json_object_get(chat, "tools")) > 0 && !streq(choice, "none");
}

static shimmy_err parse_chat(const json_t *root, api_call *c, api_error *err) {
    json_t *chat = json_object();
    shimmy_err e = chat != NULL ? SHIMMY_OK : nomem(err);
    if (e == SHIMMY_OK && (e = parse_input(root, W(c), chat, err)) == SHIMMY_OK &&
        (e = parse_tools(root, chat, err)) == SHIMMY_OK &&
        (e = parse_choice(root, chat, err)) == SHIMMY_OK &&
        (e = parse_reasoning(root, chat, err)) == SHIMMY_OK)
        e = api_json_text(chat, &W(c)->chat_json, err);
    c->gen.chat_json = W(c)->chat_json;
    c->gen.media = W(c)->media.items;
    c->gen.n_media = W(c)->media.n;
    c->need_tools = tools_used(chat);
    json_decref(chat);
    return e;
}

shimmy_err resp_parse(json_t *root, const gen_params *defaults, api_call *c, api_error *err) {
    return resp_parse_store(root, defaults, NULL, c, err);
}

shimmy_err resp_parse_store(json_t *root, const gen_params *defaults, resp_store *store,
                            api_call *c, api_error *err) {
    shimmy_err e;
    memset(c, 0, sizeof *c);
    api_error_clear(err);
    c->keep_ns = REGISTRY_KEEP_DEFAULT;
    c->gen.params = *defaults;
    if ((c->wire = calloc(1, sizeof(resp_wire))) == NULL)
        return nomem(err);
    api_stops_own(&c->gen.params, W(c)->stop);
    W(c)->store = store;
    if ((e = parse_params(root, c, err)) != SHIMMY_OK ||
        (e = parse_format(root, c, err)) != SHIMMY_OK ||
        (e = parse_chat(root, c, err)) != SHIMMY_OK) {
        resp_call_free(c);
        return e;
    }
    if (json_is_false(opt(root, "store")))
        W(c)->store = NULL;
    api_random_id(W(c)->id, sizeof W(c)->id, "resp_", 16);
    snprintf(W(c)->model, sizeof W(c)->model, "%s", c->model);
    W(c)->created = clock_wall_s();
    return SHIMMY_OK;
}

void resp_call_free(api_call *c) {
    resp_wire *w = c->wire;
    if (w != NULL) {
        for (size_t i = 0; i < w->n_items; i++) {
            free(w->items[i].name);
            buf_free(&w->items[i].text);
        }
        free(w->items);
        free(w->chat_json);
        free(w->schema);
        api_media_free(&w->media);
        json_decref(w->conv);
        free(w);
    }
    c->wire = NULL;
}

/* ---- output items ---- */

/* Appends a new item of kind (a call takes the engine's id and name). NULL when out of
 * memory. */
static resp_item *item_add(resp_wire *rw, resp_kind kind, int tool_index, const char *call_id,
                           const char *name) {
    static const char *const prefix[] = {"rs_", "msg_", "fc_"};
    resp_item *v = realloc(rw->items, (rw->n_items + 1) * sizeof *v);
    if (v == NULL)
        return NULL;
    rw->items = v;
    resp_item *it = &v[rw->n_items++];
    memset(it, 0, sizeof *it);
    it->kind = kind;
    it->tool_index = tool_index;
    api_random_id(it->id, sizeof it->id, prefix[kind], 12);
    if (call_id != NULL && call_id[0] != '\0')
        snprintf(it->call_id, sizeof it->call_id, "%s", call_id);
    else
        api_random_id(it->call_id, sizeof it->call_id, "call_", 12);
    it->name = strdup(name != NULL ? name : "");
    buf_init(&it->text, LIM_RESPONSE_BYTES);
    return it->name != NULL ? it : NULL;
}

/* The whole answer's items: reasoning, the message, then the calls. */
static shimmy_err items_from_answer(resp_wire *rw, const api_answer *a) {
    resp_item *it;
    shimmy_err e = SHIMMY_OK;
    if (a->reasoning.len > 0 && (it = item_add(rw, RESP_REASONING, 0, NULL, NULL)) != NULL)
        e = buf_append(&it->text, buf_str(&a->reasoning), a->reasoning.len);
    if (e == SHIMMY_OK && a->content.len > 0 &&
        (it = item_add(rw, RESP_MESSAGE, 0, NULL, NULL)) != NULL)
        e = buf_append(&it->text, buf_str(&a->content), a->content.len);
    for (size_t i = 0; e == SHIMMY_OK && i < a->n_calls; i++)
        if ((it = item_add(rw, RESP_CALL, (int)i, a->calls[i].id, a->calls[i].name)) != NULL)
            e = buf_append(&it->text, buf_str(&a->calls[i].args), a->calls[i].args.len);
    return e;
}

static void text_part(jsonw *w, const resp_item *it, bool with_text) {
    jsonw_raw(w, it->kind == RESP_REASONING ? "{\"type\":\"reasoning_text\",\"text\":"
                                            : "{\"type\":\"output_text\",\"text\":");
    jsonw_str(w, with_text ? buf_str(&it->text) : "", with_text ? it->text.len : 0);
    jsonw_raw(w, it->kind == RESP_REASONING ? "}" : ",\"annotations\":[],\"logprobs\":[]}");
}

/* An output item; done = completed with its text, else in progress and empty. */
static void item_json(jsonw *w, const resp_item *it, bool done) {
    static const char *const type[] = {"reasoning", "message", "function_call"};
    jsonw_raw(w, "{\"id\":");
    jsonw_cstr(w, it->id);
    jsonw_raw(w, ",\"type\":\"");
    jsonw_raw(w, type[it->kind]);
    jsonw_raw(w, done ? "\",\"status\":\"completed\"" : "\",\"status\":\"in_progress\"");
    if (it->kind == RESP_CALL) {
        jsonw_raw(w, ",\"call_id\":");
        jsonw_cstr(w, it->call_id);
        jsonw_raw(w, ",\"name\":");
        jsonw_cstr(w, it->name);
        jsonw_raw(w, ",\"arguments\":");
        jsonw_str(w, done ? buf_str(&it->text) : "", done ? it->text.len : 0);
        jsonw_raw(w, "}");
        return;
    }
    jsonw_raw(w, it->kind == RESP_MESSAGE ? ",\"role\":\"assistant\",\"content\":["
                                          : ",\"summary\":[],\"content\":[");
    if (done)
        text_part(w, it, true);
    jsonw_raw(w, "]}");
}

/* ---- the response object ---- */

static void usage(jsonw *w, const gen_status *st) {
    jsonw_raw(w, "{\"input_tokens\":");
    jsonw_int(w, st->prompt_tokens);
    jsonw_raw(w, ",\"input_tokens_details\":{\"cached_tokens\":");
    jsonw_int(w, st->cached_tokens);
    jsonw_raw(w, "},\"output_tokens\":");
    jsonw_int(w, st->completion_tokens);
    jsonw_raw(w, ",\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":");
    jsonw_int(w, (int64_t)st->prompt_tokens + st->completion_tokens);
    jsonw_raw(w, "}");
}

/* The message items' text, joined (the SDKs' output_text). */
static void output_text(jsonw *w, const resp_wire *rw) {
    buf all;
    buf_init(&all, LIM_RESPONSE_BYTES);
    for (size_t i = 0; i < rw->n_items; i++)
        if (rw->items[i].kind == RESP_MESSAGE)
            buf_append(&all, buf_str(&rw->items[i].text), rw->items[i].text.len);
    jsonw_str(w, buf_str(&all), all.len);
    buf_free(&all);
}

/* The response: status "in_progress" (no output, no usage: st NULL), "completed",
 * "incomplete" (cut at max_output_tokens) or "failed" (e). */
static void response_json(jsonw *w, const resp_wire *rw, const gen_status *st, const api_error *e) {
    bool cut = st != NULL && st->finish == FINISH_LENGTH;
    jsonw_raw(w, "{\"id\":");
    jsonw_cstr(w, rw->id);
    jsonw_raw(w, ",\"object\":\"response\",\"created_at\":");
    jsonw_int(w, rw->created);
    jsonw_raw(w, ",\"status\":");
    jsonw_cstr(w, e != NULL    ? "failed"
                  : st == NULL ? "in_progress"
                  : cut        ? "incomplete"
                               : "completed");
    jsonw_raw(w, ",\"error\":");
    if (e != NULL) {
        jsonw_raw(w, "{\"code\":");
        jsonw_cstr(w,
                   err_get(e->code)->openai_code ? err_get(e->code)->openai_code : "server_error");
        jsonw_raw(w, ",\"message\":");
        jsonw_cstr(w, api_error_message(e));
        jsonw_raw(w, "}");
    } else {
        jsonw_raw(w, "null");
    }
    jsonw_raw(w, cut ? ",\"incomplete_details\":{\"reason\":\"max_output_tokens\"},\"model\":"
                     : ",\"incomplete_details\":null,\"model\":");
    jsonw_cstr(w, rw->model);
    jsonw_raw(w, ",\"output\":[");
    for (size_t i = 0; st != NULL && i < rw->n_items; i++) {
        jsonw_raw(w, i > 0 ? "," : "");
        item_json(w, &rw->items[i], true);
    }
    jsonw_raw(w, "],\"output_text\":");
    output_text(w, rw);
    jsonw_raw(w, ",\"usage\":");
    if (st != NULL)
        usage(w, st);
    else
        jsonw_raw(w, "null");
    jsonw_raw(w, "}");
}

/* ---- the store ---- */

/* The conversation as stored: its input items, then the output items in their input shape. */
static shimmy_err conv_json(jsonw *w, const resp_wire *rw) {
    char *in = json_dumps(rw->conv, JSON_COMPACT);
    size_t n = in != NULL ? strlen(in) : 0;
    if (n < 2) {
        free(in);
        return ERR_NOMEM;
    }
    in[n - 1] = '\0'; /* "[item,...": the array without its ']' */
    jsonw_raw(w, in);
    free(in);
    for (size_t i = 0; i < rw->n_items; i++) {
        jsonw_raw(w, n > 2 || i > 0 ? "," : "");
        item_json(w, &rw->items[i], true);
    }
    jsonw_raw(w, "]");
    return SHIMMY_OK;
}

/* Keeps the finished response in the store (store: true and a server store). A response that
 * cannot be kept is answered anyway: a later GET or previous_response_id is a 404. */
static void keep(const resp_wire *rw, const gen_status *st) {
    buf r, items;
    jsonw w;
    if (rw->store == NULL || rw->conv == NULL)
        return;
    buf_init(&r, LIM_RESP_STORE_BYTES);
    buf_init(&items, LIM_RESP_STORE_BYTES);
    jsonw_begin(&w, &r);
    response_json(&w, rw, st, NULL);
    shimmy_err e = jsonw_end(&w);
    if (e == SHIMMY_OK) {
        jsonw_begin(&w, &items);
        e = conv_json(&w, rw);
        if (jsonw_end(&w) != SHIMMY_OK)
            e = ERR_TOO_LARGE;
    }
    if (e == SHIMMY_OK)
        resp_store_put(rw->store, rw->id, buf_str(&r), r.len, buf_str(&items), items.len);
    buf_free(&r);
    buf_free(&items);
}

static shimmy_err whole(api_call *c, const api_answer *a, const gen_status *st, api_sink *s) {
    jsonw w;
    shimmy_err e = items_from_answer(W(c), a);
    if (e != SHIMMY_OK)
        return e;
    api_frame_begin(s, &w);
    response_json(&w, W(c), st, NULL);
    e = api_frame_end(s, &w);
    if (e == SHIMMY_OK)
        keep(W(c), st);
    return e;
}

/* Errors before the stream are OpenAI's {"error": {...}}. */
static shimmy_err write_error(const api_error *e, api_sink *s) {
    return oai_chat_proto.error(e, s);
}

/* ---- the stream ---- */

/* Begins event `type`: {"type":type,"sequence_number":N — the caller adds the rest and "}". */
static void ev_open(jsonw *w, resp_wire *rw, api_sink *s, const char *type) {
    api_frame_begin(s, w);
    jsonw_raw(w, "{\"type\":\"");
    jsonw_raw(w, type);
    jsonw_raw(w, "\",\"sequence_number\":");
    jsonw_int(w, rw->seq++);
}

static shimmy_err ev_close(jsonw *w, api_sink *s, const char *type) {
    jsonw_raw(w, "}");
    return api_frame_end_event(s, w, type);
}

/* An event carrying the response: created, in_progress, completed, incomplete, failed. */
static shimmy_err ev_response(resp_wire *rw, api_sink *s, const char *type, const gen_status *st,
                              const api_error *e) {
    jsonw w;
    ev_open(&w, rw, s, type);
    jsonw_raw(&w, ",\"response\":");
    response_json(&w, rw, st, e);
    return ev_close(&w, s, type);
}

/* ,"item_id":..,"output_index":N[,"content_index":0] */
static void ev_where(jsonw *w, const resp_wire *rw, bool content) {
    const resp_item *it = &rw->items[rw->n_items - 1];
    jsonw_raw(w, ",\"item_id\":");
    jsonw_cstr(w, it->id);
    jsonw_raw(w, ",\"output_index\":");
    jsonw_int(w, (int64_t)rw->n_items - 1);
    if (content)
        jsonw_raw(w, ",\"content_index\":0");
}

static shimmy_err ev_item(resp_wire *rw, api_sink *s, const char *type, bool done) {
    jsonw w;
    ev_open(&w, rw, s, type);
    jsonw_raw(&w, ",\"output_index\":");
    jsonw_int(&w, (int64_t)rw->n_items - 1);
    jsonw_raw(&w, ",\"item\":");
    item_json(&w, &rw->items[rw->n_items - 1], done);
    return ev_close(&w, s, type);
}

static shimmy_err ev_part(resp_wire *rw, api_sink *s, const char *type, bool done) {
    jsonw w;
    ev_open(&w, rw, s, type);
    ev_where(&w, rw, true);
    jsonw_raw(&w, ",\"part\":");
    text_part(&w, &rw->items[rw->n_items - 1], done);
    return ev_close(&w, s, type);
}

/* A delta, or the done event with the whole text (key "text" or "arguments"). */
static shimmy_err ev_text(resp_wire *rw, api_sink *s, const char *type, const char *key,
                          const char *text, size_t len) {
    const resp_item *it = &rw->items[rw->n_items - 1];
    jsonw w;
    ev_open(&w, rw, s, type);
    ev_where(&w, rw, it->kind != RESP_CALL);
    jsonw_raw(&w, ",\"");
    jsonw_raw(&w, key);
    jsonw_raw(&w, "\":");
    jsonw_str(&w, text, len);
    if (it->kind == RESP_MESSAGE)
        jsonw_raw(&w, ",\"logprobs\":[]");
    return ev_close(&w, s, type);
}

static const char *const delta_type[] = {"response.reasoning_text.delta",
                                         "response.output_text.delta",
                                         "response.function_call_arguments.delta"};
static const char *const done_type[] = {"response.reasoning_text.done", "response.output_text.done",
                                        "response.function_call_arguments.done"};

/* The done events of the open item: its text, its part, the item. */
static shimmy_err item_close(resp_wire *rw, api_sink *s) {
    const resp_item *it;
    shimmy_err e;
    if (!rw->open)
        return SHIMMY_OK;
    rw->open = false;
    it = &rw->items[rw->n_items - 1];
    e = ev_text(rw, s, done_type[it->kind], it->kind == RESP_CALL ? "arguments" : "text",
                buf_str(&it->text), it->text.len);
    if (e == SHIMMY_OK && it->kind != RESP_CALL)
        e = ev_part(rw, s, "response.content_part.done", true);
    return e == SHIMMY_OK ? ev_item(rw, s, "response.output_item.done", true) : e;
}

static shimmy_err item_open(resp_wire *rw, const gen_event *e, resp_kind kind, api_sink *s) {
    shimmy_err r = item_close(rw, s);
    if (r != SHIMMY_OK)
        return r;
    if (item_add(rw, kind, e->tool_index, e->tool_id, e->tool_name) == NULL)
        return ERR_NOMEM;
    rw->open = true;
    r = ev_item(rw, s, "response.output_item.added", false);
    if (r == SHIMMY_OK && kind != RESP_CALL)
        r = ev_part(rw, s, "response.content_part.added", false);
    return r;
}

static shimmy_err event(resp_wire *rw, const gen_event *e, api_sink *s) {
    resp_kind kind = e->kind == GEN_EV_REASONING ? RESP_REASONING
                     : e->kind == GEN_EV_TOOL    ? RESP_CALL
                                                 : RESP_MESSAGE;
    const resp_item *last = rw->n_items > 0 ? &rw->items[rw->n_items - 1] : NULL;
    bool same = rw->open && last->kind == kind &&
                (kind != RESP_CALL || (e->tool_name == NULL && last->tool_index == e->tool_index));
    shimmy_err r = SHIMMY_OK;
    if (e->len == 0 && kind != RESP_CALL)
        return SHIMMY_OK;
    if (!same && (r = item_open(rw, e, kind, s)) != SHIMMY_OK)
        return r;
    if (e->len == 0)
        return SHIMMY_OK;
    r = buf_append(&rw->items[rw->n_items - 1].text, e->text, e->len);
    return r == SHIMMY_OK ? ev_text(rw, s, delta_type[kind], "delta", e->text, e->len) : r;
}

static shimmy_err events(api_call *c, const gen_events *ev, api_sink *s) {
    for (size_t i = 0; i < ev->n; i++) {
        shimmy_err e = event(W(c), &ev->ev[i], s);
        if (e != SHIMMY_OK)
            return e;
    }
    return SHIMMY_OK;
}

static shimmy_err start(api_call *c, api_sink *s) {
    shimmy_err e = ev_response(W(c), s, "response.created", NULL, NULL);
    return e == SHIMMY_OK ? ev_response(W(c), s, "response.in_progress", NULL, NULL) : e;
}

static shimmy_err end(api_call *c, const gen_status *st, api_sink *s) {
    shimmy_err e = item_close(W(c), s);
    if (e != SHIMMY_OK)
        return e;
    e = ev_response(W(c), s,
                    st->finish == FINISH_LENGTH ? "response.incomplete" : "response.completed", st,
                    NULL);
    if (e == SHIMMY_OK)
        keep(W(c), st);
    return e;
}

static shimmy_err stream_error(api_call *c, const api_error *e, api_sink *s) {
    return ev_response(W(c), s, "response.failed", NULL, e);
}

/* ---- the row ---- */

static shimmy_err parse_row(shimmy_app *app, json_t *root, api_call *c, api_error *err) {
    gen_params d;
    const char *stop[LIM_STOP_STRINGS];
    api_gen_defaults(app, root, NULL, &d, stop);
    return resp_parse_store(root, &d, app != NULL ? app->responses : NULL, c, err);
}

const api_proto resp_proto = {
    .framing = API_FRAME_SSE,
    .content_type = HTTP_SSE_CONTENT_TYPE,
    .not_found = {"The model '", "' does not exist (GET /v1/models lists the models)"},
    .parse = parse_row,
    .free = resp_call_free,
    .start = start,
    .events = events,
    .end = end,
    .whole = whole,
    .error = write_error,
    .stream_error = stream_error,
};

/* ---- GET and DELETE /v1/responses/{id} ---- */

/* The id: the rest of the path after "/responses/". */
static const char *path_id(const http_request *req) {
    const char *id = strstr(req->path, "/responses/");
    return id != NULL ? id + strlen("/responses/") : "";
}

static void reply_not_found(http_response *res, const char *id) {
    api_error ae;
    api_fail(&ae, ERR_NOT_FOUND, "response_id", "Response with id '%.64s' not found.", id);
    api_reply_error(res, &resp_proto, &ae);
}

void resp_handle_get(const http_request *req, http_response *res) {
    shimmy_app *app = req->app;
    const char *id = path_id(req);
    char *text = NULL;
    if (app->responses == NULL || !resp_store_get(app->responses, id, &text, NULL)) {
        reply_not_found(res, id);
        return;
    }
    if (buf_puts(&res->body, text) != SHIMMY_OK) {
        api_error ae;
        api_fail(&ae, ERR_NOMEM, NULL, "out of memory");
        api_reply_error(res, &resp_proto, &ae);
    }
    free(text);
}

void resp_handle_delete(const http_request *req, http_response *res) {
    shimmy_app *app = req->app;
    const char *id = path_id(req);
    jsonw w;
    if (app->responses == NULL || !resp_store_delete(app->responses, id)) {
        reply_not_found(res, id);
        return;
    }
    jsonw_begin(&w, &res->body);
    jsonw_raw(&w, "{\"id\":");
    jsonw_cstr(&w, id);
    jsonw_raw(&w, ",\"object\":\"response.deleted\",\"deleted\":true}");
    jsonw_end(&w);
}
