/* openai_wire: see openai_wire.h. Parsing first (body → api_call: the shared parameters, then the
 * chat JSON for the engine), then the writers, then the two rows. */
#include "api/openai_wire.h"
#include "api/presets.h"
#include "api/json_in.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/jsonw.h"
#include "core/clock.h"
#include "http/stream.h"

#ifndef SHIMMY_VERSION
#define SHIMMY_VERSION "0.0.0"
#endif

#define STR_(x) #x
#define STR(x) STR_(x)

#define opt api_json_opt

static oai_wire *W(const api_call *c) {
    return c->wire;
}

/* ---- parsing: the parameters both endpoints share ---- */

typedef enum { NUM_FLOAT, NUM_INT } num_kind;

/* A numeric sampling parameter: JSON key, range (inclusive unless lo_open), where it goes. */
typedef struct num_param {
    const char *key;
    num_kind kind;
    double lo, hi;
    bool lo_open;
    size_t offset;     /* into gen_params: a float or an int by kind */
    const char *range; /* completes "'key' must be ..." */
} num_param;

/* max_completion_tokens comes after max_tokens so that it wins when both are given. */
static const num_param num_params[] = {
    {"temperature", NUM_FLOAT, 0, 2, false, offsetof(gen_params, temperature),
     "a number between 0 and 2"},
    {"top_p", NUM_FLOAT, 0, 1, false, offsetof(gen_params, top_p), "a number between 0 and 1"},
    {"min_p", NUM_FLOAT, 0, 1, false, offsetof(gen_params, min_p), "a number between 0 and 1"},
    {"repeat_penalty", NUM_FLOAT, 0, FLT_MAX, true, offsetof(gen_params, repeat_penalty),
     "a number greater than 0"},
    {"presence_penalty", NUM_FLOAT, -2, 2, false, offsetof(gen_params, presence_penalty),
     "a number between -2 and 2"},
    {"frequency_penalty", NUM_FLOAT, -2, 2, false, offsetof(gen_params, frequency_penalty),
     "a number between -2 and 2"},
    {"top_k", NUM_INT, 0, INT_MAX, false, offsetof(gen_params, top_k), "an integer >= 0"},
    {"repeat_last_n", NUM_INT, 0, LIM_MAX_TOKENS, false, offsetof(gen_params, repeat_last_n),
     "an integer between 0 and " STR(LIM_MAX_TOKENS)},
    {"max_tokens", NUM_INT, 1, LIM_MAX_TOKENS, false, offsetof(gen_params, max_tokens),
     "an integer between 1 and " STR(LIM_MAX_TOKENS)},
    {"max_completion_tokens", NUM_INT, 1, LIM_MAX_TOKENS, false, offsetof(gen_params, max_tokens),
     "an integer between 1 and " STR(LIM_MAX_TOKENS)},
};

/* Integers may come as 5 or 5.0; 5.5 is not an integer. */
static bool num_value(const json_t *v, num_kind kind, double *out) {
    if (json_is_integer(v)) {
        *out = (double)json_integer_value(v);
        return true;
    }
    if (!json_is_real(v))
        return false;
    *out = json_real_value(v);
    return kind == NUM_FLOAT || *out == floor(*out);
}

static shimmy_err parse_numbers(const json_t *root, gen_params *p, api_error *err) {
    for (size_t i = 0; i < sizeof num_params / sizeof num_params[0]; i++) {
        const num_param *np = &num_params[i];
        json_t *v = opt(root, np->key);
        double d;
        if (v == NULL)
            continue;
        if (!num_value(v, np->kind, &d) || d < np->lo || d > np->hi || (np->lo_open && d == np->lo))
            return api_fail(err, ERR_BAD_PARAM, np->key, "'%s' must be %s", np->key, np->range);
        if (np->kind == NUM_FLOAT)
            *(float *)((char *)p + np->offset) = (float)d;
        else
            *(int *)((char *)p + np->offset) = (int)d;
    }
    return SHIMMY_OK;
}

/* seed: any integer; -1 means "random" as in llama-server. */
static shimmy_err parse_seed(const json_t *root, gen_params *p, api_error *err) {
    json_t *v = opt(root, "seed");
    if (v == NULL)
        return SHIMMY_OK;
    if (!json_is_integer(v))
        return api_fail(err, ERR_BAD_PARAM, "seed", "'seed' must be an integer");
    json_int_t s = json_integer_value(v);
    p->has_seed = s != -1;
    p->seed = (uint32_t)(uint64_t)s;
    return SHIMMY_OK;
}

static shimmy_err parse_bool(const json_t *obj, const char *key, const char *param, bool *out,
                             api_error *err) {
    json_t *v = opt(obj, key);
    if (v == NULL)
        return SHIMMY_OK;
    if (!json_is_boolean(v))
        return api_fail(err, ERR_BAD_PARAM, param, "'%s' must be a boolean", param);
    *out = json_is_true(v);
    return SHIMMY_OK;
}

static shimmy_err parse_stream(const json_t *root, api_call *c, api_error *err) {
    shimmy_err e = parse_bool(root, "stream", "stream", &c->stream, err);
    if (e != SHIMMY_OK)
        return e;
    json_t *so = opt(root, "stream_options");
    if (so == NULL)
        return SHIMMY_OK;
    if (!json_is_object(so))
        return api_fail(err, ERR_BAD_PARAM, "stream_options", "'stream_options' must be an object");
    return parse_bool(so, "include_usage", "stream_options.include_usage",
                      &W(c)->meta.include_usage, err);
}

static shimmy_err add_stop(api_call *c, const json_t *s, const char *param, api_error *err) {
    size_t n = json_string_length(s);
    if (n == 0)
        return SHIMMY_OK; /* an empty stop string would stop at once: ignored */
    if (n > LIM_STOP_BYTES)
        return api_fail(err, ERR_BAD_PARAM, param, "'%s' is longer than %d bytes", param,
                        LIM_STOP_BYTES);
    W(c)->stop[c->gen.params.n_stop++] = json_string_value(s);
    return SHIMMY_OK;
}

static shimmy_err parse_stop(const json_t *root, api_call *c, api_error *err) {
    json_t *v = opt(root, "stop");
    char param[32];
    if (v == NULL)
        return SHIMMY_OK; /* the defaults' (a preset's, api/presets.h) stay */
    c->gen.params.n_stop = 0;
    if (json_is_string(v))
        return add_stop(c, v, "stop", err);
    if (!json_is_array(v))
        return api_fail(err, ERR_BAD_PARAM, "stop",
                        "'stop' must be a string or an array of strings");
    if (json_array_size(v) > LIM_STOP_STRINGS)
        return api_fail(err, ERR_BAD_PARAM, "stop", "'stop' may hold at most %d strings",
                        LIM_STOP_STRINGS);
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *s = json_array_get(v, i);
        snprintf(param, sizeof param, "stop[%zu]", i);
        if (!json_is_string(s))
            return api_fail(err, ERR_BAD_PARAM, param, "'%s' must be a string", param);
        shimmy_err e = add_stop(c, s, param, err);
        if (e != SHIMMY_OK)
            return e;
    }
    return SHIMMY_OK;
}

/* n: choices for the prompt, 1..LIM_N. */
static shimmy_err parse_n(const json_t *root, api_call *c, api_error *err) {
    json_t *v = opt(root, "n");
    double d;
    c->n_choices = 1;
    if (v == NULL)
        return SHIMMY_OK;
    if (!num_value(v, NUM_INT, &d) || d < 1 || d > LIM_N)
        return api_fail(err, ERR_BAD_PARAM, "n", "'n' must be an integer between 1 and %d", LIM_N);
    c->n_choices = (int)d;
    return SHIMMY_OK;
}

/* An integer count of alternatives per token, 0..LIM_TOP_LOGPROBS, under key. */
static shimmy_err parse_top(const json_t *v, const char *key, int *out, api_error *err) {
    double d;
    if (!num_value(v, NUM_INT, &d) || d < 0 || d > LIM_TOP_LOGPROBS)
        return api_fail(err, ERR_BAD_PARAM, key, "'%s' must be an integer between 0 and %d", key,
                        LIM_TOP_LOGPROBS);
    *out = (int)d;
    return SHIMMY_OK;
}

/* The parameters shared by both endpoints. */
static shimmy_err parse_common(const json_t *root, api_call *c, api_error *err) {
    shimmy_err e;
    json_t *model = json_object_get(root, "model");
    if (model == NULL || json_is_null(model))
        return api_fail(err, ERR_BAD_PARAM, "model", "'model' is required");
    if (!json_is_string(model) || json_string_length(model) == 0)
        return api_fail(err, ERR_BAD_PARAM, "model", "'model' must be a non-empty string");
    c->model = json_string_value(model);
    if ((e = parse_stream(root, c, err)) != SHIMMY_OK ||
        (e = parse_numbers(root, &c->gen.params, err)) != SHIMMY_OK ||
        (e = parse_seed(root, &c->gen.params, err)) != SHIMMY_OK ||
        (e = parse_stop(root, c, err)) != SHIMMY_OK || (e = parse_n(root, c, err)) != SHIMMY_OK)
        return e;
    return SHIMMY_OK;
}

/* prompt: a string, or an array holding exactly one string. */
static shimmy_err parse_prompt(const json_t *root, api_call *c, api_error *err) {
    json_t *p = opt(root, "prompt");
    if (p == NULL)
        return api_fail(err, ERR_BAD_PARAM, "prompt", "'prompt' is required");
    if (json_is_array(p)) {
        json_t *first = json_array_get(p, 0);
        if (json_is_integer(first) || json_is_array(first))
            return api_fail(err, ERR_BAD_PARAM, "prompt", "token id prompts are not supported");
        if (json_array_size(p) > 1)
            return api_fail(err, ERR_BAD_PARAM, "prompt", "more than one prompt is not supported");
        p = first;
    }
    if (!json_is_string(p))
        return api_fail(err, ERR_BAD_PARAM, "prompt",
                        "'prompt' must be a string or an array of one string");
    c->gen.prompt = json_string_value(p);
    return SHIMMY_OK;
}

static shimmy_err reject_completion_unsupported(const json_t *root, api_error *err) {
    json_t *v;
    double d;
    bool echo = false;
    shimmy_err e = parse_bool(root, "echo", "echo", &echo, err);
    if (e != SHIMMY_OK)
        return e;
    if (echo)
        return api_fail(err, ERR_BAD_PARAM, "echo", "echo is not supported");
    if ((v = opt(root, "best_of")) != NULL && !(num_value(v, NUM_INT, &d) && d == 1))
        return api_fail(err, ERR_BAD_PARAM, "best_of", "best_of > 1 is not supported");
    if ((v = opt(root, "suffix")) != NULL && !(json_is_string(v) && json_string_length(v) == 0))
        return api_fail(err, ERR_BAD_PARAM, "suffix", "suffix is not supported");
    return SHIMMY_OK;
}

void oai_meta_init(oai_meta *m, bool chat, const char *model, bool include_usage) {
    m->chat = chat;
    m->include_usage = include_usage;
    m->created = clock_wall_s();
    api_random_id(m->id, sizeof m->id, chat ? "chatcmpl-" : "cmpl-", 12);
    snprintf(m->model, sizeof m->model, "%s", model);
}

/* {"id":..,"object":..,"created":..,"model":..,"system_fingerprint":.., — the common head. */
static void head(jsonw *w, const oai_meta *m, const char *object) {
    jsonw_raw(w, "{\"id\":");
    jsonw_cstr(w, m->id);
    jsonw_raw(w, ",\"object\":\"");
    jsonw_raw(w, object);
    jsonw_raw(w, "\",\"created\":");
    jsonw_int(w, m->created);
    jsonw_raw(w, ",\"model\":");
    jsonw_cstr(w, m->model);
    jsonw_raw(w, ",\"system_fingerprint\":\"shimmy-" SHIMMY_VERSION "\",");
}

static void usage(jsonw *w, const gen_status *st) {
    jsonw_raw(w, "{\"prompt_tokens\":");
    jsonw_int(w, st->prompt_tokens);
    jsonw_raw(w, ",\"completion_tokens\":");
    jsonw_int(w, st->completion_tokens);
    jsonw_raw(w, ",\"total_tokens\":");
    jsonw_int(w, (int64_t)st->prompt_tokens + st->completion_tokens);
    jsonw_raw(w, ",\"prompt_tokens_details\":{\"cached_tokens\":");
    jsonw_int(w, st->cached_tokens);
    jsonw_raw(w, "}}");
}

/* ---- parsing: the chat ---- */

/* Chat features shimmy does not have: a clear 400 rather than a silent wrong answer. */
static shimmy_err reject_chat_unsupported(const json_t *root, api_error *err) {
    json_t *v;
    if ((v = opt(root, "functions")) != NULL && !(json_is_array(v) && json_array_size(v) == 0))
        return api_fail(err, ERR_BAD_PARAM, "functions",
                        "'functions' is not supported: use 'tools'");
    return SHIMMY_OK;
}

/* response_format.json_schema: {"name", "schema", "strict", "description"} → the schema. */
static shimmy_err parse_json_schema(const json_t *js, api_call *c, api_error *err) {
    const json_t *schema = json_object_get(js, "schema"), *strict = json_object_get(js, "strict");
    if (!json_is_object(js))
        return api_fail(err, ERR_BAD_PARAM, "response_format.json_schema",
                        "'response_format.json_schema' must be an object with a 'schema'");
    if (strict != NULL && !json_is_boolean(strict) && !json_is_null(strict))
        return api_fail(err, ERR_BAD_PARAM, "response_format.json_schema.strict",
                        "'response_format.json_schema.strict' must be a boolean");
    if (schema == NULL || !(json_is_object(schema) || json_is_boolean(schema)))
        return api_fail(err, ERR_BAD_PARAM, "response_format.json_schema.schema",
                        "'response_format.json_schema.schema' must be a JSON schema object");
    return api_json_text(schema, &W(c)->schema, err);
}

/* response_format: text (no constraint), json_object (any JSON object: the schema {}),
 * json_schema; the engine converts the schema with llama.cpp's converter. */
static shimmy_err parse_response_format(const json_t *root, api_call *c, api_error *err) {
    json_t *v = opt(root, "response_format");
    if (v == NULL)
        return SHIMMY_OK;
    json_t *type = json_object_get(v, "type");
    if (!json_is_object(v) || !json_is_string(type))
        return api_fail(err, ERR_BAD_PARAM, "response_format",
                        "'response_format' must be an object with a string 'type'");
    const char *t = json_string_value(type);
    shimmy_err e = SHIMMY_OK;
    if (strcmp(t, "text") == 0)
        return SHIMMY_OK;
    if (strcmp(t, "json_object") == 0)
        W(c)->schema = strdup("{\"type\":\"object\"}");
    else if (strcmp(t, "json_schema") == 0)
        e = parse_json_schema(json_object_get(v, "json_schema"), c, err);
    else
        return api_fail(err, ERR_BAD_PARAM, "response_format.type",
                        "response_format type '%s' is not supported (use 'text', 'json_object' "
                        "or 'json_schema')",
                        t);
    if (e == SHIMMY_OK && W(c)->schema == NULL)
        return api_fail(err, ERR_NOMEM, NULL, "out of memory");
    c->gen.params.json_schema = W(c)->schema;
    c->schema_param = "response_format";
    return e;
}

/* The message's role as the engine gets it (developer is system), or an error. */
static shimmy_err message_role(const json_t *msg, size_t i, const char **role, api_error *err) {
    static const char *const roles[][2] = {{"system", "system"},
                                           {"user", "user"},
                                           {"assistant", "assistant"},
                                           {"developer", "system"},
                                           {"tool", "tool"}};
    char param[48];
    const char *name = json_string_value(json_object_get(msg, "role"));
    snprintf(param, sizeof param, "messages[%zu].role", i);
    if (name == NULL)
        return api_fail(err, ERR_BAD_PARAM, param, "'%s' must be a string", param);
    for (size_t k = 0; k < sizeof roles / sizeof roles[0]; k++) {
        if (strcmp(name, roles[k][0]) == 0) {
            *role = roles[k][1];
            return SHIMMY_OK;
        }
    }
    return api_fail(err, ERR_BAD_PARAM, param,
                    "'%s' must be one of system, user, assistant, "
                    "developer, tool (got '%.64s')",
                    param, name);
}

/* An image_url part: {"image_url": {"url": "data:..." | "https://..."}} (or the URL string
 * itself, as some clients send it). */
static shimmy_err image_part(const json_t *part, const char *at, api_media *media, api_error *err) {
    char param[96];
    json_t *iu = json_object_get(part, "image_url");
    json_t *url = json_is_object(iu) ? json_object_get(iu, "url") : iu;
    snprintf(param, sizeof param, "%s.image_url%s", at, json_is_object(iu) ? ".url" : "");
    if (!json_is_string(url))
        return api_fail(err, ERR_BAD_PARAM, param,
                        "'%s' must be a string (a data: URI or an "
                        "http(s) URL)",
                        param);
    return api_media_add_url(media, json_string_value(url), GEN_MEDIA_IMAGE, param, err);
}

/* An input_audio part: {"input_audio": {"data": base64, "format": "wav" | "mp3"}}. */
static shimmy_err audio_part(const json_t *part, const char *at, api_media *media, api_error *err) {
    char param[96];
    json_t *ia = json_object_get(part, "input_audio");
    json_t *data = json_object_get(ia, "data"), *format = json_object_get(ia, "format");
    snprintf(param, sizeof param, "%s.input_audio.format", at);
    if (format != NULL &&
        (!json_is_string(format) || (strcmp(json_string_value(format), "wav") != 0 &&
                                     strcmp(json_string_value(format), "mp3") != 0)))
        return api_fail(err, ERR_BAD_PARAM, param, "'%s' must be 'wav' or 'mp3'", param);
    snprintf(param, sizeof param, "%s.input_audio.data", at);
    if (!json_is_string(data))
        return api_fail(err, ERR_BAD_PARAM, param, "'%s' must be a string (base64)", param);
    return api_media_add_base64(media, json_string_value(data), json_string_length(data),
                                GEN_MEDIA_AUDIO, param, err);
}

/* Content part j of message i: text, or an image or audio clip, which goes into media and
 * becomes the media marker in the chat (the chat module's "media_marker" part). Appends the part
 * for the engine to parts. */
static shimmy_err content_part(const json_t *part, size_t i, size_t j, json_t *parts,
                               api_media *media, api_error *err) {
    char at[64], param[96];
    json_t *type = json_object_get(part, "type");
    snprintf(at, sizeof at, "messages[%zu].content[%zu]", i, j);
    if (!json_is_object(part))
        return api_fail(err, ERR_BAD_PARAM, at, "'%s' must be an object", at);
    snprintf(param, sizeof param, "%s.type", at);
    if (!json_is_string(type))
        return api_fail(err, ERR_BAD_PARAM, param, "'%s' must be a string", param);
    const char *t = json_string_value(type);
    bool image = strcmp(t, "image_url") == 0, audio = strcmp(t, "input_audio") == 0;
    if (image || audio) {
        shimmy_err e = image ? image_part(part, at, media, err) : audio_part(part, at, media, err);
        if (e == SHIMMY_OK)
            json_array_append_new(parts, json_pack("{s:s,s:s}", "type", "media_marker", "text",
                                                   engine_media_marker()));
        return e;
    }
    if (strcmp(t, "text") != 0)
        return api_fail(err, ERR_BAD_PARAM, param,
                        "content part type '%.64s' is not supported "
                        "(text, image_url, input_audio)",
                        t);
    snprintf(param, sizeof param, "%s.text", at);
    if (!json_is_string(json_object_get(part, "text")))
        return api_fail(err, ERR_BAD_PARAM, param, "'%s' must be a string", param);
    json_array_append(parts, (json_t *)part);
    return SHIMMY_OK;
}

/* content: a string or text parts (passed on as they are); absent or null only for an
 * assistant (then ""; null when it carries tool calls). */
static shimmy_err message_content(const json_t *msg, size_t i, const char *role, json_t *out,
                                  api_media *media, api_error *err) {
    char param[48];
    json_t *content = opt(msg, "content");
    snprintf(param, sizeof param, "messages[%zu].content", i);
    if (content == NULL && strcmp(role, "assistant") != 0)
        return api_fail(err, ERR_BAD_PARAM, param, "'%s' is required", param);
    if (content == NULL) {
        json_t *empty = opt(msg, "tool_calls") != NULL ? json_null() : json_string("");
        json_object_set_new(out, "content", empty);
        return SHIMMY_OK;
    }
    if (!json_is_string(content) && !json_is_array(content))
        return api_fail(err, ERR_BAD_PARAM, param,
                        "'%s' must be a string or an array of content parts", param);
    if (json_is_string(content)) {
        json_object_set(out, "content", content);
        return SHIMMY_OK;
    }
    json_t *parts = json_array();
    json_object_set_new(out, "content", parts);
    for (size_t j = 0; j < json_array_size(content); j++) {
        shimmy_err e = content_part(json_array_get(content, j), i, j, parts, media, err);
        if (e != SHIMMY_OK)
            return e;
    }
    return SHIMMY_OK;
}

/* One assistant tool call: {id, type "function", function {name, arguments}}; arguments are a
 * JSON string (an object is accepted and written as text). */
static shimmy_err message_call(const json_t *tc, const char *param, json_t *calls, api_error *err) {
    json_t *f = json_object_get(tc, "function"), *id = opt(tc, "id"), *type = opt(tc, "type");
    json_t *name = json_object_get(f, "name"), *args = opt(f, "arguments");
    if (!json_is_object(tc) || !json_is_object(f) || !json_is_string(name) ||
        (id != NULL && !json_is_string(id)) ||
        (type != NULL &&
         !(json_is_string(type) && strcmp(json_string_value(type), "function") == 0)) ||
        (args != NULL && !json_is_string(args) && !json_is_object(args)))
        return api_fail(err, ERR_BAD_PARAM, param,
                        "'%s' must be {\"id\": string, \"type\": "
                        "\"function\", \"function\": {\"name\": string, \"arguments\": string}}",
                        param);
    char *text = json_is_object(args) ? json_dumps(args, JSON_COMPACT) : NULL;
    json_t *fn = json_pack("{s:O,s:s}", "name", name, "arguments",
                           text   ? text
                           : args ? json_string_value(args)
                                  : "{}");
    json_t *call = json_pack("{s:s,s:o}", "type", "function", "function", fn);
    free(text);
    if (call == NULL)
        return api_fail(err, ERR_NOMEM, NULL, "out of memory");
    if (id != NULL)
        json_object_set(call, "id", id);
    json_array_append_new(calls, call);
    return SHIMMY_OK;
}

static shimmy_err message_calls(const json_t *msg, size_t i, const char *role, json_t *out,
                                api_error *err) {
    char param[64];
    json_t *tcs = opt(msg, "tool_calls");
    snprintf(param, sizeof param, "messages[%zu].tool_calls", i);
    if (tcs == NULL)
        return SHIMMY_OK;
    if (strcmp(role, "assistant") != 0 || !json_is_array(tcs))
        return api_fail(err, ERR_BAD_PARAM, param, "'%s' must be an array, on an assistant message",
                        param);
    json_t *calls = json_array();
    json_object_set_new(out, "tool_calls", calls);
    for (size_t j = 0; j < json_array_size(tcs); j++) {
        snprintf(param, sizeof param, "messages[%zu].tool_calls[%zu]", i, j);
        shimmy_err e = message_call(json_array_get(tcs, j), param, calls, err);
        if (e != SHIMMY_OK)
            return e;
    }
    return SHIMMY_OK;
}

/* The string fields a message may carry, passed on when present. */
static shimmy_err message_strings(const json_t *msg, size_t i, json_t *out, api_error *err) {
    static const char *const keys[] = {"name", "tool_call_id", "reasoning_content"};
    char param[64];
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        json_t *v = opt(msg, keys[k]);
        snprintf(param, sizeof param, "messages[%zu].%s", i, keys[k]);
        if (v != NULL && !json_is_string(v))
            return api_fail(err, ERR_BAD_PARAM, param, "'%s' must be a string", param);
        if (v != NULL)
            json_object_set(out, keys[k], v);
    }
    return SHIMMY_OK;
}

static shimmy_err parse_message(const json_t *msg, size_t i, json_t *msgs, api_media *media,
                                api_error *err) {
    char param[48];
    const char *role = NULL;
    shimmy_err e;
    snprintf(param, sizeof param, "messages[%zu]", i);
    if (!json_is_object(msg))
        return api_fail(err, ERR_BAD_PARAM, param, "'%s' must be an object", param);
    if ((e = message_role(msg, i, &role, err)) != SHIMMY_OK)
        return e;
    json_t *out = json_pack("{s:s}", "role", role);
    if (out == NULL)
        return api_fail(err, ERR_NOMEM, NULL, "out of memory");
    json_array_append_new(msgs, out);
    if ((e = message_content(msg, i, role, out, media, err)) != SHIMMY_OK ||
        (e = message_calls(msg, i, role, out, err)) != SHIMMY_OK)
        return e;
    return message_strings(msg, i, out, err);
}

static shimmy_err parse_messages(const json_t *root, json_t *chat, api_media *media,
                                 api_error *err) {
    json_t *msgs = opt(root, "messages");
    if (msgs == NULL)
        return api_fail(err, ERR_BAD_PARAM, "messages", "'messages' is required");
    size_t n = json_array_size(msgs);
    if (!json_is_array(msgs) || n == 0)
        return api_fail(err, ERR_BAD_PARAM, "messages", "'messages' must be a non-empty array");
    if (n > LIM_MESSAGES)
        return api_fail(err, ERR_BAD_PARAM, "messages", "'messages' may hold at most %d messages",
                        LIM_MESSAGES);
    json_t *out = json_array();
    json_object_set_new(chat, "messages", out);
    for (size_t i = 0; i < n; i++) {
        shimmy_err e = parse_message(json_array_get(msgs, i), i, out, media, err);
        if (e != SHIMMY_OK)
            return e;
    }
    return SHIMMY_OK;
}

/* tool_choice: "none", "auto", "required", or {"type":"function","function":{"name"}} naming
 * one of the tools. */
static shimmy_err check_tool_choice(const json_t *root, const json_t *v, api_error *err) {
    const char *s = json_string_value(v);
    if (s != NULL &&
        (strcmp(s, "none") == 0 || strcmp(s, "auto") == 0 || strcmp(s, "required") == 0))
        return SHIMMY_OK;
    const char *name = json_string_value(json_object_get(json_object_get(v, "function"), "name"));
    if (name == NULL)
        return api_fail(err, ERR_BAD_PARAM, "tool_choice",
                        "'tool_choice' must be \"none\", "
                        "\"auto\", \"required\" or {\"type\": \"function\", \"function\": "
                        "{\"name\": string}}");
    if (!api_tools_have(opt(root, "tools"), name))
        return api_fail(err, ERR_BAD_PARAM, "tool_choice",
                        "'tool_choice' names the function '%.64s', which is not in 'tools'", name);
    return SHIMMY_OK;
}

static shimmy_err check_bool(const json_t *root, const json_t *v, const char *key, api_error *err) {
    (void)root;
    if (!json_is_boolean(v))
        return api_fail(err, ERR_BAD_PARAM, key, "'%s' must be a boolean", key);
    return SHIMMY_OK;
}

static shimmy_err check_string(const json_t *root, const json_t *v, const char *key,
                               api_error *err) {
    (void)root;
    if (!json_is_string(v))
        return api_fail(err, ERR_BAD_PARAM, key, "'%s' must be a string", key);
    return SHIMMY_OK;
}

static shimmy_err check_object(const json_t *root, const json_t *v, const char *key,
                               api_error *err) {
    (void)root;
    if (!json_is_object(v))
        return api_fail(err, ERR_BAD_PARAM, key, "'%s' must be an object", key);
    return SHIMMY_OK;
}

static shimmy_err check_reasoning_format(const json_t *root, const json_t *v, const char *key,
                                         api_error *err) {
    static const char *const ok[] = {"none", "auto", "deepseek", "deepseek-legacy"};
    const char *s = json_string_value(v);
    for (size_t i = 0; s != NULL && i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(s, ok[i]) == 0)
            return SHIMMY_OK;
    (void)root;
    return api_fail(err, ERR_BAD_PARAM, key,
                    "'%s' must be \"none\", \"auto\", \"deepseek\" or \"deepseek-legacy\"", key);
}

static shimmy_err check_tool_choice_row(const json_t *root, const json_t *v, const char *key,
                                        api_error *err) {
    (void)key;
    return check_tool_choice(root, v, err);
}

static shimmy_err check_tools_row(const json_t *root, const json_t *v, const char *key,
                                  api_error *err) {
    size_t n;
    (void)root, (void)key;
    return api_check_tools(v, &n, err);
}

/* The request fields the engine's chat JSON takes as they are, once checked. */
static const struct {
    const char *key;
    shimmy_err (*check)(const json_t *root, const json_t *v, const char *key, api_error *err);
} chat_fields[] = {
    {"tools", check_tools_row},
    {"tool_choice", check_tool_choice_row},
    {"parallel_tool_calls", check_bool},
    {"reasoning_format", check_reasoning_format},
    {"reasoning_effort", check_string},
    {"chat_template_kwargs", check_object},
    {"add_generation_prompt", check_bool},
    {"continue_final_message", check_bool},
};

static shimmy_err pass_fields(const json_t *root, json_t *chat, api_error *err) {
    for (size_t i = 0; i < sizeof chat_fields / sizeof chat_fields[0]; i++) {
        json_t *v = opt(root, chat_fields[i].key);
        if (v == NULL)
            continue;
        shimmy_err e = chat_fields[i].check(root, v, chat_fields[i].key, err);
        if (e != SHIMMY_OK)
            return e;
        json_object_set(chat, chat_fields[i].key, v);
    }
    return SHIMMY_OK;
}

/* Tools the template must be able to express: given, and not turned off by tool_choice. */
static bool tools_used(const json_t *root) {
    const char *choice = json_string_value(opt(root, "tool_choice"));
    return json_array_size(opt(root, "tools")) > 0 &&
           !(choice != NULL && strcmp(choice, "none") == 0);
}

/* logprobs: true with top_logprobs 0..LIM_TOP_LOGPROBS (which needs logprobs, as OpenAI). */
static shimmy_err parse_chat_logprobs(const json_t *root, api_call *c, api_error *err) {
    gen_params *p = &c->gen.params;
    shimmy_err e = parse_bool(root, "logprobs", "logprobs", &p->logprobs, err);
    json_t *v = opt(root, "top_logprobs");
    if (e != SHIMMY_OK || v == NULL)
        return e;
    if ((e = parse_top(v, "top_logprobs", &p->top_logprobs, err)) != SHIMMY_OK)
        return e;
    if (!p->logprobs && p->top_logprobs > 0)
        return api_fail(err, ERR_BAD_PARAM, "top_logprobs",
                        "'top_logprobs' needs 'logprobs' to be true");
    return SHIMMY_OK;
}

static shimmy_err parse_chat_body(const json_t *root, api_call *c, api_error *err) {
    json_t *chat = json_object();
    shimmy_err e = chat != NULL ? SHIMMY_OK : api_fail(err, ERR_NOMEM, NULL, "out of memory");
    if (e == SHIMMY_OK && (e = reject_chat_unsupported(root, err)) == SHIMMY_OK &&
        (e = parse_chat_logprobs(root, c, err)) == SHIMMY_OK &&
        (e = parse_response_format(root, c, err)) == SHIMMY_OK &&
        (e = parse_messages(root, chat, &W(c)->media, err)) == SHIMMY_OK &&
        (e = pass_fields(root, chat, err)) == SHIMMY_OK)
        e = api_json_text(chat, &W(c)->chat_json, err);
    json_decref(chat);
    c->gen.chat_json = W(c)->chat_json;
    c->gen.media = W(c)->media.items;
    c->gen.n_media = W(c)->media.n;
    c->need_tools = tools_used(root);
    return e;
}

/* logprobs: N (0..LIM_TOP_LOGPROBS): each token's log probability and N alternatives. */
static shimmy_err parse_completion_logprobs(const json_t *root, api_call *c, api_error *err) {
    json_t *v = opt(root, "logprobs");
    if (v == NULL)
        return SHIMMY_OK;
    c->gen.params.logprobs = true;
    return parse_top(v, "logprobs", &c->gen.params.top_logprobs, err);
}

static shimmy_err parse_completion_body(const json_t *root, api_call *c, api_error *err) {
    shimmy_err e = reject_completion_unsupported(root, err);
    if (e == SHIMMY_OK)
        e = parse_completion_logprobs(root, c, err);
    return e != SHIMMY_OK ? e : parse_prompt(root, c, err);
}

typedef shimmy_err (*parse_fn)(const json_t *root, api_call *c, api_error *err);

static shimmy_err parse(json_t *root, const gen_params *defaults, api_call *c, api_error *err,
                        bool chat, parse_fn endpoint) {
    shimmy_err e;
    memset(c, 0, sizeof *c);
    c->keep_ns = REGISTRY_KEEP_DEFAULT;
    c->gen.params = *defaults;
    api_error_clear(err);
    if ((c->wire = calloc(1, sizeof(oai_wire))) == NULL)
        return api_fail(err, ERR_NOMEM, NULL, "out of memory");
    api_stops_own(&c->gen.params, W(c)->stop);
    if ((e = parse_common(root, c, err)) != SHIMMY_OK ||
        (e = endpoint(root, c, err)) != SHIMMY_OK) {
        oai_call_free(c);
        return e;
    }
    oai_meta_init(&W(c)->meta, chat, c->model, W(c)->meta.include_usage);
    return SHIMMY_OK;
}

shimmy_err oai_parse_chat(json_t *root, const gen_params *defaults, api_call *c, api_error *err) {
    return parse(root, defaults, c, err, true, parse_chat_body);
}

shimmy_err oai_parse_completion(json_t *root, const gen_params *defaults, api_call *c,
                                api_error *err) {
    return parse(root, defaults, c, err, false, parse_completion_body);
}

void oai_call_free(api_call *c) {
    oai_wire *w = c->wire;
    if (w != NULL) {
        free(w->chat_json);
        free(w->schema);
        api_media_free(&w->media);
        free(w);
    }
    c->wire = NULL;
}

/* ---- writers ---- */

static void error_obj(jsonw *w, const api_error *e) {
    const err_info *ei = err_get(e->code);
    jsonw_raw(w, "{\"error\":{\"message\":");
    jsonw_cstr(w, api_error_message(e));
    jsonw_raw(w, ",\"type\":");
    jsonw_cstr(w, ei->openai_type ? ei->openai_type : "server_error");
    jsonw_raw(w, ",\"param\":");
    jsonw_cstr(w, e->param[0] != '\0' ? e->param : NULL);
    jsonw_raw(w, ",\"code\":");
    jsonw_cstr(w, ei->openai_code);
    jsonw_raw(w, "}}");
}

shimmy_err oai_error_json(const api_error *e, buf *out) {
    jsonw w;
    jsonw_begin(&w, out);
    error_obj(&w, e);
    return jsonw_end(&w);
}

static shimmy_err write_error(const api_error *e, api_sink *s) {
    jsonw w;
    api_frame_begin(s, &w);
    error_obj(&w, e);
    return api_frame_end(s, &w);
}

/* finish_reason as llama-server: length at the token limit, else tool_calls when the answer
 * holds calls, else stop. */
static const char *finish_str(const gen_status *st, size_t n_calls) {
    if (st->finish == FINISH_LENGTH)
        return "length";
    return st->finish == FINISH_TOOL_CALLS || n_calls > 0 ? "tool_calls" : "stop";
}

/* A tool call's id: the engine's, else a fresh "call_<hex>" (written into id[0..n)). */
static const char *call_id(const char *given, char *id, size_t n) {
    if (given != NULL && given[0] != '\0')
        return given;
    api_random_id(id, n, "call_", 12);
    return id;
}

static void tool_call_obj(jsonw *w, const api_tool_call *tc) {
    char id[48];
    jsonw_raw(w, "{\"id\":");
    jsonw_cstr(w, call_id(tc->id, id, sizeof id));
    jsonw_raw(w, ",\"type\":\"function\",\"function\":{\"name\":");
    jsonw_cstr(w, tc->name);
    jsonw_raw(w, ",\"arguments\":");
    jsonw_str(w, buf_str(&tc->args), tc->args.len);
    jsonw_raw(w, "}}");
}

/* The assistant message of a whole chat answer: content null when there are only calls. */
static void message_obj(jsonw *w, const api_answer *a) {
    jsonw_raw(w, "{\"role\":\"assistant\",\"content\":");
    if (a->content.len == 0 && a->n_calls > 0)
        jsonw_raw(w, "null");
    else
        jsonw_str(w, buf_str(&a->content), a->content.len);
    if (a->reasoning.len > 0) {
        jsonw_raw(w, ",\"reasoning_content\":");
        jsonw_str(w, buf_str(&a->reasoning), a->reasoning.len);
    }
    if (a->n_calls > 0) {
        jsonw_raw(w, ",\"tool_calls\":[");
        for (size_t i = 0; i < a->n_calls; i++) {
            jsonw_raw(w, i > 0 ? "," : "");
            tool_call_obj(w, &a->calls[i]);
        }
        jsonw_raw(w, "]");
    }
    jsonw_raw(w, "}");
}

/* ---- log probabilities ---- */

static void lp_num(jsonw *w, float v) {
    char num[32];
    snprintf(num, sizeof num, "%.7g", isfinite(v) ? (double)v : -1e30);
    jsonw_raw(w, num);
}

static const char *lp_text(const api_answer *a, const api_logprob *l) {
    return a->lp_text.data + l->off;
}

/* {"token":..,"logprob":..,"bytes":[..] — left open for top_logprobs. */
/* Chat: {"content":[{token, logprob, bytes, top_logprobs:[...]}],"refusal":null}, or null when
 * none were asked for. */
static void chat_logprobs(jsonw *w, const api_answer *a, bool asked) {
    if (!asked) {
        jsonw_raw(w, "null");
        return;
    }
    jsonw_raw(w, "{\"content\":");
    api_write_logprobs(w, a);
    jsonw_raw(w, ",\"refusal\":null}");
}

/* One array of the completions shape: the tokens' texts, logprobs or offsets (*off: bytes of
 * the choice's text before the first one, advanced past them). */
typedef enum { CL_TOKENS, CL_LOGPROBS, CL_OFFSETS } cl_field;

static void completion_array(jsonw *w, const api_answer *a, cl_field f, size_t *off) {
    bool first = true;
    jsonw_raw(w, "[");
    for (size_t i = 0; i < a->n_lps; i++) {
        const api_logprob *l = &a->lps[i];
        if (l->top)
            continue;
        jsonw_raw(w, first ? "" : ",");
        first = false;
        if (f == CL_TOKENS)
            jsonw_str(w, lp_text(a, l), l->len);
        else if (f == CL_LOGPROBS)
            lp_num(w, l->logprob);
        else {
            jsonw_int(w, (int64_t)*off);
            *off += l->len;
        }
    }
    jsonw_raw(w, "]");
}

/* top_logprobs: one {token: logprob} object per token. */
static void completion_tops(jsonw *w, const api_answer *a) {
    jsonw_raw(w, "[");
    for (size_t i = 0; i < a->n_lps; i++) {
        const api_logprob *l = &a->lps[i];
        if (!l->top) {
            jsonw_raw(w, i > 0 ? "}," : "");
            jsonw_raw(w, "{");
            continue;
        }
        jsonw_raw(w, i > 0 && a->lps[i - 1].top ? "," : "");
        jsonw_str(w, lp_text(a, l), l->len);
        jsonw_raw(w, ":");
        lp_num(w, l->logprob);
    }
    jsonw_raw(w, a->n_lps > 0 ? "}]" : "]");
}

/* Completions: {tokens, token_logprobs, top_logprobs, text_offset}, or null. */
static void completion_logprobs(jsonw *w, const api_answer *a, bool asked, size_t *off) {
    if (!asked) {
        jsonw_raw(w, "null");
        return;
    }
    jsonw_raw(w, "{\"tokens\":");
    completion_array(w, a, CL_TOKENS, off);
    jsonw_raw(w, ",\"token_logprobs\":");
    completion_array(w, a, CL_LOGPROBS, off);
    jsonw_raw(w, ",\"top_logprobs\":");
    completion_tops(w, a);
    jsonw_raw(w, ",\"text_offset\":");
    completion_array(w, a, CL_OFFSETS, off);
    jsonw_raw(w, "}");
}

/* ---- whole answers ---- */

/* choices[i] of a whole answer. */
static void choice_obj(jsonw *w, api_call *c, int i, const api_answer *a, const gen_status *st) {
    const oai_meta *m = &W(c)->meta;
    bool asked = c->gen.params.logprobs;
    size_t off = 0;
    if (m->chat) {
        jsonw_raw(w, "{\"index\":");
        jsonw_int(w, i);
        jsonw_raw(w, ",\"message\":");
        message_obj(w, a);
        jsonw_raw(w, ",\"logprobs\":");
        chat_logprobs(w, a, asked);
    } else {
        jsonw_raw(w, "{\"text\":");
        jsonw_str(w, buf_str(&a->content), a->content.len);
        jsonw_raw(w, ",\"index\":");
        jsonw_int(w, i);
        jsonw_raw(w, ",\"logprobs\":");
        completion_logprobs(w, a, asked, &off);
    }
    jsonw_raw(w, ",\"finish_reason\":");
    jsonw_cstr(w, finish_str(st, a->n_calls));
    jsonw_raw(w, "}");
}

static shimmy_err whole_n(api_call *c, const api_answer *a, const gen_status *st, int n,
                          const gen_status *sum, api_sink *s) {
    const oai_meta *m = &W(c)->meta;
    jsonw w;
    api_frame_begin(s, &w);
    head(&w, m, m->chat ? "chat.completion" : "text_completion");
    jsonw_raw(&w, "\"choices\":[");
    for (int i = 0; i < n; i++) {
        jsonw_raw(&w, i > 0 ? "," : "");
        choice_obj(&w, c, i, &a[i], &st[i]);
    }
    jsonw_raw(&w, "],\"usage\":");
    usage(&w, sum);
    jsonw_raw(&w, "}");
    return api_frame_end(s, &w);
}

static shimmy_err whole(api_call *c, const api_answer *a, const gen_status *st, api_sink *s) {
    return whole_n(c, a, st, 1, st, s);
}

/* ---- streams ---- */

/* A chunk: the caller writes the delta's members (chat) or the text string (completions)
 * between chunk_open and chunk_close. */
static void chunk_open(jsonw *w, const api_call *c) {
    const oai_meta *m = &W(c)->meta;
    head(w, m, m->chat ? "chat.completion.chunk" : "text_completion");
    if (m->chat) {
        jsonw_raw(w, "\"choices\":[{\"index\":");
        jsonw_int(w, c->choice);
        jsonw_raw(w, ",\"delta\":{");
    } else {
        jsonw_raw(w, "\"choices\":[{\"text\":");
    }
}

/* Closes the chunk with the log probabilities of lp (NULL: none in this chunk). */
static shimmy_err chunk_close_lp(api_sink *s, jsonw *w, api_call *c, const char *finish,
                                 const api_answer *lp) {
    const oai_meta *m = &W(c)->meta;
    oai_wire *ow = W(c);
    if (m->chat) {
        jsonw_raw(w, "},\"logprobs\":");
        chat_logprobs(w, lp, lp != NULL);
    } else {
        jsonw_raw(w, ",\"index\":");
        jsonw_int(w, c->choice);
        jsonw_raw(w, ",\"logprobs\":");
        completion_logprobs(w, lp, lp != NULL, &ow->text_off[c->choice < 0 ? 0 : c->choice]);
    }
    jsonw_raw(w, ",\"finish_reason\":");
    jsonw_cstr(w, finish);
    jsonw_raw(w, m->include_usage ? "}],\"usage\":null}" : "}]}");
    return api_frame_end(s, w);
}

static shimmy_err chunk_close(api_sink *s, jsonw *w, api_call *c, const char *finish) {
    return chunk_close_lp(s, w, c, finish, NULL);
}

/* The role chunk of every choice. */
static shimmy_err start(api_call *c, api_sink *s) {
    const oai_meta *m = &W(c)->meta;
    jsonw w;
    shimmy_err e = SHIMMY_OK;
    if (!m->chat)
        return SHIMMY_OK;
    int n = c->n_choices > 1 ? c->n_choices : 1;
    for (c->choice = 0; c->choice < n && e == SHIMMY_OK; c->choice++) {
        api_frame_begin(s, &w);
        chunk_open(&w, c);
        jsonw_raw(&w, "\"role\":\"assistant\",\"content\":\"\"");
        e = chunk_close(s, &w, c, NULL);
    }
    c->choice = 0;
    return e;
}

/* delta.tool_calls[0]: index; id, type and name on a call's first event; an arguments piece. */
static void tool_delta(jsonw *w, oai_wire *ow, int choice, const gen_event *e) {
    char id[48];
    jsonw_raw(w, "\"tool_calls\":[{\"index\":");
    jsonw_int(w, e->tool_index);
    if (e->tool_name != NULL) {
        ow->n_calls[choice < 0 ? 0 : choice]++;
        jsonw_raw(w, ",\"id\":");
        jsonw_cstr(w, call_id(e->tool_id, id, sizeof id));
        jsonw_raw(w, ",\"type\":\"function\",\"function\":{\"name\":");
        jsonw_cstr(w, e->tool_name);
        jsonw_raw(w, ",\"arguments\":");
    } else {
        jsonw_raw(w, ",\"function\":{\"arguments\":");
    }
    jsonw_str(w, e->text, e->len);
    jsonw_raw(w, "}}]");
}

/* One text event as a chunk (e NULL: an empty delta, to carry log probabilities alone). */
static shimmy_err event(api_call *c, const gen_event *e, api_sink *s, const api_answer *lp) {
    const oai_meta *m = &W(c)->meta;
    jsonw w;
    api_frame_begin(s, &w);
    chunk_open(&w, c);
    if (!m->chat)
        jsonw_str(&w, e ? e->text : "", e ? e->len : 0);
    else if (e != NULL && e->kind == GEN_EV_TOOL)
        tool_delta(&w, W(c), c->choice, e);
    else if (e != NULL) {
        jsonw_raw(&w, e->kind == GEN_EV_REASONING ? "\"reasoning_content\":" : "\"content\":");
        jsonw_str(&w, e->text, e->len);
    }
    return chunk_close_lp(s, &w, c, NULL, lp);
}

static bool is_lp(const gen_event *e) {
    return e->kind == GEN_EV_LOGPROB || e->kind == GEN_EV_LOGPROB_TOP;
}

/* Whether event i is a text event this protocol writes (a raw prompt has no reasoning or
 * calls). */
static bool written(const api_call *c, const gen_event *e) {
    return !is_lp(e) && (W(c)->meta.chat || e->kind == GEN_EV_CONTENT);
}

/* The chunks of one wait: one per text event; the wait's log probabilities ride on its last
 * text chunk (or on an empty delta when the wait had none: text held back, reasoning). */
static shimmy_err events(api_call *c, const gen_events *ev, api_sink *s) {
    api_answer lp;
    size_t last = ev->n;
    shimmy_err e = SHIMMY_OK;
    api_answer_init(&lp);
    for (size_t i = 0; i < ev->n; i++) {
        if (is_lp(&ev->ev[i]))
            e = e == SHIMMY_OK ? api_answer_add_event(&lp, &ev->ev[i]) : e;
        else if (written(c, &ev->ev[i]))
            last = i;
    }
    const api_answer *with = c->gen.params.logprobs ? &lp : NULL;
    for (size_t i = 0; i < ev->n && e == SHIMMY_OK; i++)
        if (written(c, &ev->ev[i]))
            e = event(c, &ev->ev[i], s, i == last ? with : NULL);
    if (e == SHIMMY_OK && last == ev->n && lp.n_lps > 0)
        e = event(c, NULL, s, with);
    api_answer_free(&lp);
    return e;
}

static shimmy_err usage_chunk(const oai_meta *m, const gen_status *st, api_sink *s) {
    jsonw w;
    api_frame_begin(s, &w);
    head(&w, m, m->chat ? "chat.completion.chunk" : "text_completion");
    jsonw_raw(&w, "\"choices\":[],\"usage\":");
    usage(&w, st);
    jsonw_raw(&w, "}");
    return api_frame_end(s, &w);
}

/* The finish chunk of choice c->choice. */
static shimmy_err finish(api_call *c, const gen_status *st, api_sink *s) {
    jsonw w;
    api_frame_begin(s, &w);
    chunk_open(&w, c);
    if (!W(c)->meta.chat)
        jsonw_raw(&w, "\"\"");
    return chunk_close(s, &w, c, finish_str(st, W(c)->n_calls[c->choice < 0 ? 0 : c->choice]));
}

/* The finish chunk (one choice; with n the choices' were written already), the usage chunk
 * when asked for, and [DONE]. */
static shimmy_err end(api_call *c, const gen_status *st, api_sink *s) {
    const oai_meta *m = &W(c)->meta;
    shimmy_err e = c->n_choices > 1 ? SHIMMY_OK : finish(c, st, s);
    if (e == SHIMMY_OK && m->include_usage)
        e = usage_chunk(m, st, s);
    return e == SHIMMY_OK ? api_frame_text(s, "[DONE]") : e;
}

/* ---- the rows ---- */

static shimmy_err parse_chat_row(shimmy_app *app, json_t *root, api_call *c, api_error *err) {
    gen_params d;
    const char *stop[LIM_STOP_STRINGS];
    api_gen_defaults(app, root, NULL, &d, stop);
    return oai_parse_chat(root, &d, c, err);
}

static shimmy_err parse_completion_row(shimmy_app *app, json_t *root, api_call *c, api_error *err) {
    gen_params d;
    const char *stop[LIM_STOP_STRINGS];
    api_gen_defaults(app, root, NULL, &d, stop);
    return oai_parse_completion(root, &d, c, err);
}

#define OAI_NOT_FOUND                                                                              \
    { "The model '", "' does not exist (GET /v1/models lists the models)" }

/* The two rows differ only in their parse. */
#define OAI_ROW(parse_fn)                                                                          \
    {                                                                                              \
        .framing = API_FRAME_SSE, .content_type = HTTP_SSE_CONTENT_TYPE,                           \
        .not_found = OAI_NOT_FOUND, .parse = parse_fn, .free = oai_call_free, .start = start,      \
        .events = events, .end = end, .whole = whole, .error = write_error, .finish = finish,      \
        .whole_n = whole_n,                                                                        \
    }

const api_proto oai_chat_proto = OAI_ROW(parse_chat_row);
const api_proto oai_completion_proto = OAI_ROW(parse_completion_row);
