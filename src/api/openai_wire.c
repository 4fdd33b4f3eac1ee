/* openai_wire: see openai_wire.h. Parsing first (body → oai_request), then the writers. */
#include "api/openai_wire.h"
#include "api/json_in.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "api/json_schema.h"
#include "api/jsonw.h"
#include "core/clock.h"

#ifndef SHIMMY_VERSION
#define SHIMMY_VERSION "0.0.0"
#endif

#define STR_(x) #x
#define STR(x) STR_(x)

/* ---- parsing ---- */

static shimmy_err fail(oai_error *err, shimmy_err code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static shimmy_err fail(oai_error *err, shimmy_err code, const char *param, const char *fmt, ...) {
    va_list ap;
    err->code = code;
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return code;
}

#define opt api_json_opt

static shimmy_err load_object(const char *body, size_t len, json_t **out, oai_error *err) {
    err->code = api_json_load_object(body, len, out, err->message, sizeof err->message);
    err->param[0] = '\0';
    return err->code;
}

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
    {"max_completion_tokens", NUM_INT, 1, LIM_MAX_TOKENS, false,
     offsetof(gen_params, max_tokens), "an integer between 1 and " STR(LIM_MAX_TOKENS)},
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

static shimmy_err parse_numbers(const json_t *root, gen_params *p, oai_error *err) {
    for (size_t i = 0; i < sizeof num_params / sizeof num_params[0]; i++) {
        const num_param *np = &num_params[i];
        json_t *v = opt(root, np->key);
        double d;
        if (v == NULL)
            continue;
        if (!num_value(v, np->kind, &d) || d < np->lo || d > np->hi ||
            (np->lo_open && d == np->lo))
            return fail(err, ERR_BAD_PARAM, np->key, "'%s' must be %s", np->key, np->range);
        if (np->kind == NUM_FLOAT)
            *(float *)((char *)p + np->offset) = (float)d;
        else
            *(int *)((char *)p + np->offset) = (int)d;
    }
    return SHIMMY_OK;
}

/* seed: any integer; -1 means "random" as in llama-server. */
static shimmy_err parse_seed(const json_t *root, gen_params *p, oai_error *err) {
    json_t *v = opt(root, "seed");
    if (v == NULL)
        return SHIMMY_OK;
    if (!json_is_integer(v))
        return fail(err, ERR_BAD_PARAM, "seed", "'seed' must be an integer");
    json_int_t s = json_integer_value(v);
    p->has_seed = s != -1;
    p->seed = (uint32_t)(uint64_t)s;
    return SHIMMY_OK;
}

static shimmy_err parse_bool(const json_t *obj, const char *key, const char *param, bool *out,
                             oai_error *err) {
    json_t *v = opt(obj, key);
    if (v == NULL)
        return SHIMMY_OK;
    if (!json_is_boolean(v))
        return fail(err, ERR_BAD_PARAM, param, "'%s' must be a boolean", param);
    *out = json_is_true(v);
    return SHIMMY_OK;
}

static shimmy_err parse_stream(const json_t *root, oai_request *r, oai_error *err) {
    shimmy_err e = parse_bool(root, "stream", "stream", &r->stream, err);
    if (e != SHIMMY_OK)
        return e;
    json_t *so = opt(root, "stream_options");
    if (so == NULL)
        return SHIMMY_OK;
    if (!json_is_object(so))
        return fail(err, ERR_BAD_PARAM, "stream_options", "'stream_options' must be an object");
    return parse_bool(so, "include_usage", "stream_options.include_usage", &r->include_usage,
                      err);
}

static shimmy_err add_stop(oai_request *r, const json_t *s, const char *param, oai_error *err) {
    size_t n = json_string_length(s);
    if (n == 0)
        return SHIMMY_OK; /* an empty stop string would stop at once: ignored */
    if (n > LIM_STOP_BYTES)
        return fail(err, ERR_BAD_PARAM, param, "'%s' is longer than %d bytes", param,
                    LIM_STOP_BYTES);
    r->stop[r->gen.params.n_stop++] = json_string_value(s);
    return SHIMMY_OK;
}

static shimmy_err parse_stop(const json_t *root, oai_request *r, oai_error *err) {
    json_t *v = opt(root, "stop");
    char param[32];
    r->gen.params.stop = r->stop;
    r->gen.params.n_stop = 0;
    if (v == NULL)
        return SHIMMY_OK;
    if (json_is_string(v))
        return add_stop(r, v, "stop", err);
    if (!json_is_array(v))
        return fail(err, ERR_BAD_PARAM, "stop", "'stop' must be a string or an array of strings");
    if (json_array_size(v) > LIM_STOP_STRINGS)
        return fail(err, ERR_BAD_PARAM, "stop", "'stop' may hold at most %d strings",
                    LIM_STOP_STRINGS);
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *s = json_array_get(v, i);
        snprintf(param, sizeof param, "stop[%zu]", i);
        if (!json_is_string(s))
            return fail(err, ERR_BAD_PARAM, param, "'%s' must be a string", param);
        shimmy_err e = add_stop(r, s, param, err);
        if (e != SHIMMY_OK)
            return e;
    }
    return SHIMMY_OK;
}

/* n: only one choice per request. */
static shimmy_err parse_n(const json_t *root, oai_error *err) {
    json_t *v = opt(root, "n");
    double d;
    if (v == NULL)
        return SHIMMY_OK;
    if (!num_value(v, NUM_INT, &d) || d < 1)
        return fail(err, ERR_BAD_PARAM, "n", "'n' must be an integer >= 1");
    if (d > 1)
        return fail(err, ERR_BAD_PARAM, "n", "n > 1 is not supported");
    return SHIMMY_OK;
}

/* The parameters shared by both endpoints. */
static shimmy_err parse_common(const json_t *root, oai_request *r, oai_error *err) {
    shimmy_err e;
    json_t *model = json_object_get(root, "model");
    if (model == NULL || json_is_null(model))
        return fail(err, ERR_BAD_PARAM, "model", "'model' is required");
    if (!json_is_string(model) || json_string_length(model) == 0)
        return fail(err, ERR_BAD_PARAM, "model", "'model' must be a non-empty string");
    r->model = json_string_value(model);
    if ((e = parse_stream(root, r, err)) != SHIMMY_OK ||
        (e = parse_numbers(root, &r->gen.params, err)) != SHIMMY_OK ||
        (e = parse_seed(root, &r->gen.params, err)) != SHIMMY_OK ||
        (e = parse_stop(root, r, err)) != SHIMMY_OK || (e = parse_n(root, err)) != SHIMMY_OK)
        return e;
    return SHIMMY_OK;
}

/* Chat features shimmy does not have yet: a clear 400 rather than a silent wrong answer. */
static shimmy_err reject_chat_unsupported(const json_t *root, oai_error *err) {
    json_t *v;
    bool logprobs = false;
    shimmy_err e = parse_bool(root, "logprobs", "logprobs", &logprobs, err);
    if (e != SHIMMY_OK)
        return e;
    if (logprobs)
        return fail(err, ERR_BAD_PARAM, "logprobs", "logprobs are not supported");
    if ((v = opt(root, "top_logprobs")) != NULL &&
        !(json_is_integer(v) && json_integer_value(v) == 0))
        return fail(err, ERR_BAD_PARAM, "top_logprobs", "top_logprobs is not supported");
    if ((v = opt(root, "tools")) != NULL && !(json_is_array(v) && json_array_size(v) == 0))
        return fail(err, ERR_BAD_PARAM, "tools", "tools (function calling) are not supported");
    if ((v = opt(root, "functions")) != NULL && !(json_is_array(v) && json_array_size(v) == 0))
        return fail(err, ERR_BAD_PARAM, "functions", "functions are not supported");
    return SHIMMY_OK;
}

/* response_format.json_schema: {"name", "schema", "strict", "description"} → r->grammar. */
static shimmy_err parse_json_schema(const json_t *js, oai_request *r, oai_error *err) {
    const json_t *schema = json_object_get(js, "schema"), *strict = json_object_get(js, "strict");
    if (!json_is_object(js))
        return fail(err, ERR_BAD_PARAM, "response_format.json_schema",
                    "'response_format.json_schema' must be an object with a 'schema'");
    if (strict != NULL && !json_is_boolean(strict) && !json_is_null(strict))
        return fail(err, ERR_BAD_PARAM, "response_format.json_schema.strict",
                    "'response_format.json_schema.strict' must be a boolean");
    if (schema == NULL || !(json_is_object(schema) || json_is_boolean(schema)))
        return fail(err, ERR_BAD_PARAM, "response_format.json_schema.schema",
                    "'response_format.json_schema.schema' must be a JSON schema object");
    char msg[400];
    buf g;
    buf_init(&g, LIM_GRAMMAR_BYTES);
    shimmy_err e = json_schema_to_gbnf(schema, &g, msg, sizeof msg);
    if (e != SHIMMY_OK) {
        buf_free(&g);
        return fail(err, e, "response_format", "response_format.json_schema.schema: %s", msg);
    }
    r->grammar = buf_take(&g);
    r->gen.params.grammar = r->grammar;
    return SHIMMY_OK;
}

/* response_format: text (no constraint), json_object (any JSON object), json_schema. */
static shimmy_err parse_response_format(const json_t *root, oai_request *r, oai_error *err) {
    json_t *v = opt(root, "response_format");
    if (v == NULL)
        return SHIMMY_OK;
    json_t *type = json_object_get(v, "type");
    if (!json_is_object(v) || !json_is_string(type))
        return fail(err, ERR_BAD_PARAM, "response_format",
                    "'response_format' must be an object with a string 'type'");
    const char *t = json_string_value(type);
    if (strcmp(t, "text") == 0)
        return SHIMMY_OK;
    if (strcmp(t, "json_object") == 0) {
        r->gen.params.grammar = api_json_grammar;
        return SHIMMY_OK;
    }
    if (strcmp(t, "json_schema") == 0)
        return parse_json_schema(json_object_get(v, "json_schema"), r, err);
    return fail(err, ERR_BAD_PARAM, "response_format.type",
                "response_format type '%s' is not supported (use 'text', 'json_object' or "
                "'json_schema')", t);
}

typedef struct role_map {
    const char *name;
    const char *as; /* role handed to the engine */
} role_map;

static const role_map roles[] = {
    {"system", "system"},
    {"user", "user"},
    {"assistant", "assistant"},
    {"developer", "system"},
};

static shimmy_err parse_role(const json_t *msg, size_t i, chat_msg *out, oai_error *err) {
    char param[48];
    json_t *role = json_object_get(msg, "role");
    snprintf(param, sizeof param, "messages[%zu].role", i);
    if (!json_is_string(role))
        return fail(err, ERR_BAD_PARAM, param, "'%s' must be a string", param);
    const char *name = json_string_value(role);
    for (size_t k = 0; k < sizeof roles / sizeof roles[0]; k++) {
        if (strcmp(name, roles[k].name) == 0) {
            out->role = roles[k].as;
            return SHIMMY_OK;
        }
    }
    if (strcmp(name, "tool") == 0 || strcmp(name, "function") == 0)
        return fail(err, ERR_BAD_PARAM, param, "'%s': %s messages are not supported", param,
                    name);
    return fail(err, ERR_BAD_PARAM, param,
                "'%s' must be one of system, user, assistant, developer (got '%.64s')", param,
                name);
}

/* The text of content part j of message i, or an error naming the part. */
static shimmy_err part_text(const json_t *part, size_t i, size_t j, const json_t **text,
                            oai_error *err) {
    char param[80];
    json_t *type = json_object_get(part, "type");
    snprintf(param, sizeof param, "messages[%zu].content[%zu]", i, j);
    if (!json_is_object(part))
        return fail(err, ERR_BAD_PARAM, param, "'%s' must be an object", param);
    snprintf(param, sizeof param, "messages[%zu].content[%zu].type", i, j);
    if (!json_is_string(type))
        return fail(err, ERR_BAD_PARAM, param, "'%s' must be a string", param);
    if (strcmp(json_string_value(type), "text") != 0)
        return fail(err, ERR_BAD_PARAM, param, "content part type '%.64s' is not supported "
                    "(only 'text')", json_string_value(type));
    *text = json_object_get(part, "text");
    snprintf(param, sizeof param, "messages[%zu].content[%zu].text", i, j);
    if (!json_is_string(*text))
        return fail(err, ERR_BAD_PARAM, param, "'%s' must be a string", param);
    return SHIMMY_OK;
}

/* Content parts joined with "\n"; a single part is borrowed, several are joined into *joined. */
static shimmy_err parse_parts(const json_t *parts, size_t i, const char **out, char **joined,
                              oai_error *err) {
    size_t n = json_array_size(parts), total = 0;
    const json_t *text = NULL;
    shimmy_err e;
    for (size_t j = 0; j < n; j++) {
        if ((e = part_text(json_array_get(parts, j), i, j, &text, err)) != SHIMMY_OK)
            return e;
        total += json_string_length(text) + 1;
    }
    if (n <= 1) {
        *out = n == 1 ? json_string_value(text) : "";
        return SHIMMY_OK;
    }
    char *s = malloc(total), *p = s;
    if (s == NULL)
        return fail(err, ERR_NOMEM, NULL, "out of memory");
    for (size_t j = 0; j < n; j++) {
        text = json_object_get(json_array_get(parts, j), "text");
        if (j > 0)
            *p++ = '\n';
        memcpy(p, json_string_value(text), json_string_length(text));
        p += json_string_length(text);
    }
    *p = '\0';
    *joined = s;
    *out = s;
    return SHIMMY_OK;
}

static shimmy_err parse_message(const json_t *msg, size_t i, oai_request *r, oai_error *err) {
    char param[48];
    chat_msg *out = &r->msgs[i];
    shimmy_err e;
    snprintf(param, sizeof param, "messages[%zu]", i);
    if (!json_is_object(msg))
        return fail(err, ERR_BAD_PARAM, param, "'%s' must be an object", param);
    if ((e = parse_role(msg, i, out, err)) != SHIMMY_OK)
        return e;
    json_t *content = opt(msg, "content");
    snprintf(param, sizeof param, "messages[%zu].content", i);
    if (content == NULL) {
        if (strcmp(out->role, "assistant") != 0)
            return fail(err, ERR_BAD_PARAM, param, "'%s' is required", param);
        out->content = "";
        return SHIMMY_OK;
    }
    if (json_is_string(content)) {
        out->content = json_string_value(content);
        return SHIMMY_OK;
    }
    if (json_is_array(content))
        return parse_parts(content, i, &out->content, &r->joined[i], err);
    return fail(err, ERR_BAD_PARAM, param,
                "'%s' must be a string or an array of content parts", param);
}

static shimmy_err parse_messages(const json_t *root, oai_request *r, oai_error *err) {
    json_t *msgs = opt(root, "messages");
    if (msgs == NULL)
        return fail(err, ERR_BAD_PARAM, "messages", "'messages' is required");
    size_t n = json_array_size(msgs);
    if (!json_is_array(msgs) || n == 0)
        return fail(err, ERR_BAD_PARAM, "messages", "'messages' must be a non-empty array");
    if (n > LIM_MESSAGES)
        return fail(err, ERR_BAD_PARAM, "messages", "'messages' may hold at most %d messages",
                    LIM_MESSAGES);
    r->msgs = calloc(n, sizeof *r->msgs);
    r->joined = calloc(n, sizeof *r->joined);
    if (r->msgs == NULL || r->joined == NULL)
        return fail(err, ERR_NOMEM, NULL, "out of memory");
    r->gen.messages = r->msgs;
    r->gen.n_messages = n; /* set before parsing so that oai_request_free sees every joined */
    for (size_t i = 0; i < n; i++) {
        shimmy_err e = parse_message(json_array_get(msgs, i), i, r, err);
        if (e != SHIMMY_OK)
            return e;
    }
    return SHIMMY_OK;
}

/* prompt: a string, or an array holding exactly one string. */
static shimmy_err parse_prompt(const json_t *root, oai_request *r, oai_error *err) {
    json_t *p = opt(root, "prompt");
    if (p == NULL)
        return fail(err, ERR_BAD_PARAM, "prompt", "'prompt' is required");
    if (json_is_array(p)) {
        json_t *first = json_array_get(p, 0);
        if (json_is_integer(first) || json_is_array(first))
            return fail(err, ERR_BAD_PARAM, "prompt", "token id prompts are not supported");
        if (json_array_size(p) > 1)
            return fail(err, ERR_BAD_PARAM, "prompt", "more than one prompt is not supported");
        p = first;
    }
    if (!json_is_string(p))
        return fail(err, ERR_BAD_PARAM, "prompt",
                    "'prompt' must be a string or an array of one string");
    r->gen.prompt = json_string_value(p);
    return SHIMMY_OK;
}

static shimmy_err reject_completion_unsupported(const json_t *root, oai_error *err) {
    json_t *v;
    double d;
    bool echo = false;
    shimmy_err e = parse_bool(root, "echo", "echo", &echo, err);
    if (e != SHIMMY_OK)
        return e;
    if (echo)
        return fail(err, ERR_BAD_PARAM, "echo", "echo is not supported");
    if ((v = opt(root, "logprobs")) != NULL && !(num_value(v, NUM_INT, &d) && d == 0))
        return fail(err, ERR_BAD_PARAM, "logprobs", "logprobs are not supported");
    if ((v = opt(root, "best_of")) != NULL && !(num_value(v, NUM_INT, &d) && d == 1))
        return fail(err, ERR_BAD_PARAM, "best_of", "best_of > 1 is not supported");
    if ((v = opt(root, "suffix")) != NULL && !(json_is_string(v) && json_string_length(v) == 0))
        return fail(err, ERR_BAD_PARAM, "suffix", "suffix is not supported");
    return SHIMMY_OK;
}

typedef shimmy_err (*parse_fn)(const json_t *root, oai_request *r, oai_error *err);

static shimmy_err parse_chat_body(const json_t *root, oai_request *r, oai_error *err) {
    shimmy_err e = reject_chat_unsupported(root, err);
    if (e == SHIMMY_OK)
        e = parse_response_format(root, r, err);
    return e != SHIMMY_OK ? e : parse_messages(root, r, err);
}

static shimmy_err parse_completion_body(const json_t *root, oai_request *r, oai_error *err) {
    shimmy_err e = reject_completion_unsupported(root, err);
    return e != SHIMMY_OK ? e : parse_prompt(root, r, err);
}

static shimmy_err parse(const char *body, size_t len, const gen_params *defaults,
                        oai_request *r, oai_error *err, parse_fn endpoint) {
    shimmy_err e;
    memset(r, 0, sizeof *r);
    r->gen.params = *defaults;
    err->code = SHIMMY_OK;
    err->param[0] = err->message[0] = '\0';
    if ((e = load_object(body, len, &r->root, err)) != SHIMMY_OK)
        return e;
    if ((e = parse_common(r->root, r, err)) != SHIMMY_OK ||
        (e = endpoint(r->root, r, err)) != SHIMMY_OK) {
        oai_request_free(r);
        return e;
    }
    return SHIMMY_OK;
}

shimmy_err oai_parse_chat(const char *body, size_t len, const gen_params *defaults,
                          oai_request *r, oai_error *err) {
    return parse(body, len, defaults, r, err, parse_chat_body);
}

shimmy_err oai_parse_completion(const char *body, size_t len, const gen_params *defaults,
                                oai_request *r, oai_error *err) {
    return parse(body, len, defaults, r, err, parse_completion_body);
}

void oai_request_free(oai_request *r) {
    if (r->joined != NULL)
        for (size_t i = 0; i < r->gen.n_messages; i++)
            free(r->joined[i]);
    free(r->joined);
    free(r->msgs);
    free(r->grammar);
    json_decref(r->root);
    memset(r, 0, sizeof *r);
}

/* ---- writers ---- */

static void random_hex(char *out, size_t nbytes) {
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16];
    if (nbytes > sizeof raw)
        nbytes = sizeof raw;
    if (getrandom(raw, nbytes, GRND_NONBLOCK) != (ssize_t)nbytes) {
        /* no entropy yet (early boot): ids need only be unique, not secret */
        uint64_t x = (uint64_t)clock_mono_ns() ^ (uint64_t)(uintptr_t)out;
        for (size_t i = 0; i < nbytes; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            raw[i] = (unsigned char)x;
        }
    }
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * nbytes] = '\0';
}

void oai_meta_init(oai_meta *m, bool chat, const char *model, bool include_usage) {
    char hex[33];
    random_hex(hex, 12);
    m->chat = chat;
    m->include_usage = include_usage;
    m->created = clock_wall_s();
    snprintf(m->id, sizeof m->id, "%s%s", chat ? "chatcmpl-" : "cmpl-", hex);
    snprintf(m->model, sizeof m->model, "%s", model);
}

shimmy_err oai_error_json(shimmy_err e, const char *msg, const char *param, buf *out) {
    const err_info *ei = err_get(e);
    jsonw w;
    jsonw_begin(&w, out);
    jsonw_raw(&w, "{\"error\":{\"message\":");
    jsonw_cstr(&w, msg != NULL && msg[0] != '\0' ? msg : ei->message);
    jsonw_raw(&w, ",\"type\":");
    jsonw_cstr(&w, ei->openai_type ? ei->openai_type : "server_error");
    jsonw_raw(&w, ",\"param\":");
    jsonw_cstr(&w, param != NULL && param[0] != '\0' ? param : NULL);
    jsonw_raw(&w, ",\"code\":");
    jsonw_cstr(&w, ei->openai_code);
    jsonw_raw(&w, "}}");
    return jsonw_end(&w);
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

shimmy_err oai_response(const oai_meta *m, const char *text, size_t n, const char *finish,
                        const gen_status *st, buf *out) {
    jsonw w;
    jsonw_begin(&w, out);
    head(&w, m, m->chat ? "chat.completion" : "text_completion");
    if (m->chat) {
        jsonw_raw(&w, "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
        jsonw_str(&w, text, n);
        jsonw_raw(&w, "},\"logprobs\":null,\"finish_reason\":");
    } else {
        jsonw_raw(&w, "\"choices\":[{\"text\":");
        jsonw_str(&w, text, n);
        jsonw_raw(&w, ",\"index\":0,\"logprobs\":null,\"finish_reason\":");
    }
    jsonw_cstr(&w, finish);
    jsonw_raw(&w, "}],\"usage\":");
    usage(&w, st);
    jsonw_raw(&w, "}");
    return jsonw_end(&w);
}

/* One choice chunk. chat: delta is the raw JSON of the delta object minus its content, and
 * content (when non-NULL) is appended as "content". completions: content is the text. */
static shimmy_err chunk(const oai_meta *m, const char *delta, const char *content, size_t n,
                        const char *finish, buf *out) {
    jsonw w;
    jsonw_begin(&w, out);
    jsonw_raw(&w, "data: ");
    head(&w, m, m->chat ? "chat.completion.chunk" : "text_completion");
    if (m->chat) {
        jsonw_raw(&w, "\"choices\":[{\"index\":0,\"delta\":{");
        jsonw_raw(&w, delta);
        if (content != NULL) {
            jsonw_raw(&w, "\"content\":");
            jsonw_str(&w, content, n);
        }
        jsonw_raw(&w, "},\"logprobs\":null,\"finish_reason\":");
    } else {
        jsonw_raw(&w, "\"choices\":[{\"text\":");
        jsonw_str(&w, content != NULL ? content : "", content != NULL ? n : 0);
        jsonw_raw(&w, ",\"index\":0,\"logprobs\":null,\"finish_reason\":");
    }
    jsonw_cstr(&w, finish);
    jsonw_raw(&w, m->include_usage ? "}],\"usage\":null}\n\n" : "}]}\n\n");
    return jsonw_end(&w);
}

shimmy_err oai_sse_first(const oai_meta *m, buf *out) {
    if (!m->chat)
        return SHIMMY_OK;
    return chunk(m, "\"role\":\"assistant\",", "", 0, NULL, out);
}

shimmy_err oai_sse_text(const oai_meta *m, const char *text, size_t n, buf *out) {
    return chunk(m, "", text, n, NULL, out);
}

shimmy_err oai_sse_finish(const oai_meta *m, const char *finish, buf *out) {
    return chunk(m, "", NULL, 0, finish, out);
}

shimmy_err oai_sse_usage(const oai_meta *m, const gen_status *st, buf *out) {
    jsonw w;
    jsonw_begin(&w, out);
    jsonw_raw(&w, "data: ");
    head(&w, m, m->chat ? "chat.completion.chunk" : "text_completion");
    jsonw_raw(&w, "\"choices\":[],\"usage\":");
    usage(&w, st);
    jsonw_raw(&w, "}\n\n");
    return jsonw_end(&w);
}

shimmy_err oai_sse_done(buf *out) { return buf_puts(out, "data: [DONE]\n\n"); }

shimmy_err oai_sse_error(shimmy_err e, const char *msg, buf *out) {
    size_t start = out->len;
    shimmy_err r = buf_puts(out, "data: ");
    if (r == SHIMMY_OK)
        r = oai_error_json(e, msg, NULL, out);
    if (r == SHIMMY_OK)
        r = buf_puts(out, "\n\n");
    if (r != SHIMMY_OK && out->data != NULL) {
        out->len = start;
        out->data[start] = '\0';
    }
    return r;
}
