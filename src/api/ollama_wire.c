/* ollama_wire: see ollama_wire.h. Shared parsing (JSON, options, keep_alive), then the three
 * request kinds, then the writers. */
#include "api/ollama_wire.h"
#include "api/json_in.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/json_schema.h"
#include "api/jsonw.h"

/* ---- shared parsing ---- */

static shimmy_err fail(oll_error *err, shimmy_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static shimmy_err fail(oll_error *err, shimmy_err code, const char *fmt, ...) {
    va_list ap;
    err->status = 400;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return code;
}

#define opt api_json_opt

static shimmy_err load_object(const char *body, size_t len, json_t **out, oll_error *err) {
    err->status = 400;
    return api_json_load_object(body, len, out, err->message, sizeof err->message);
}

/* "model", or the older "name". */
static shimmy_err parse_model(const json_t *root, const char **model, oll_error *err) {
    json_t *m = opt(root, "model");
    if (m == NULL)
        m = opt(root, "name");
    if (m == NULL)
        return fail(err, ERR_BAD_PARAM, "model is required");
    if (!json_is_string(m) || json_string_length(m) == 0)
        return fail(err, ERR_BAD_PARAM, "model must be a non-empty string");
    *model = json_string_value(m);
    return SHIMMY_OK;
}

/* Go's time.ParseDuration subset: sequences of number+unit (ns us ms s m h). */
static bool parse_go_duration(const char *s, int64_t *ns) {
    double total = 0;
    bool neg = *s == '-';
    if (*s == '-' || *s == '+')
        s++;
    if (strcmp(s, "0") == 0) {
        *ns = 0;
        return true;
    }
    if (*s == '\0')
        return false;
    while (*s) {
        char *end;
        double v = strtod(s, &end);
        if (end == s)
            return false;
        s = end;
        static const struct {
            const char *u;
            double mul;
        } units[] = {{"ns", 1}, {"us", 1e3}, {"µs", 1e3}, {"ms", 1e6}, {"s", 1e9},
                     {"m", 60e9}, {"h", 3600e9}};
        size_t k = 0;
        for (; k < sizeof units / sizeof units[0]; k++)
            if (strncmp(s, units[k].u, strlen(units[k].u)) == 0 &&
                !(units[k].u[0] == 'm' && units[k].u[1] == '\0' && s[1] == 's'))
                break;
        if (k == sizeof units / sizeof units[0])
            return false;
        total += v * units[k].mul;
        s += strlen(units[k].u);
    }
    if (!(fabs(total) < 0x1p63)) /* like Go: out of int64 range (or "inf", "nan") is invalid */
        return false;
    *ns = neg ? -1 : (int64_t)total;
    return true;
}

bool oll_parse_duration(const json_t *v, int64_t *ns) {
    if (json_is_number(v)) {
        double d = json_number_value(v);
        *ns = d < 0 ? -1 : d * 1e9 < 0x1p63 ? (int64_t)(d * 1e9) : INT64_MAX; /* saturates */
        return true;
    }
    return json_is_string(v) && parse_go_duration(json_string_value(v), ns);
}

static shimmy_err parse_keep(const json_t *root, int64_t *ns, oll_error *err) {
    json_t *v = opt(root, "keep_alive");
    *ns = OLL_KEEP_UNSET;
    if (v != NULL && !oll_parse_duration(v, ns))
        return fail(err, ERR_BAD_PARAM, "keep_alive must be a duration like \"5m\" or a number "
                    "of seconds");
    return SHIMMY_OK;
}

static shimmy_err parse_bool(const json_t *obj, const char *key, bool *out, oll_error *err) {
    json_t *v = opt(obj, key);
    if (v == NULL)
        return SHIMMY_OK;
    if (!json_is_boolean(v))
        return fail(err, ERR_BAD_PARAM, "%s must be a boolean", key);
    *out = json_is_true(v);
    return SHIMMY_OK;
}

/* ---- options ---- */

typedef enum { OPT_FLOAT, OPT_INT, OPT_PREDICT, OPT_SEED, OPT_STOP, OPT_ACCEPTED } opt_kind;

typedef struct opt_row {
    const char *key;
    opt_kind kind;
    double lo, hi;
    size_t offset; /* into gen_params */
} opt_row;

/* Ollama's options that shimmy maps onto sampling, and those it accepts without effect (load-time
 * settings of Ollama's runner; num_ctx does not resize a loaded model: the context is fixed at
 * load, --ctx). */
static const opt_row opt_rows[] = {
    {"temperature", OPT_FLOAT, 0, 100, offsetof(gen_params, temperature)},
    {"top_p", OPT_FLOAT, 0, 1, offsetof(gen_params, top_p)},
    {"min_p", OPT_FLOAT, 0, 1, offsetof(gen_params, min_p)},
    {"repeat_penalty", OPT_FLOAT, 0, FLT_MAX, offsetof(gen_params, repeat_penalty)},
    {"presence_penalty", OPT_FLOAT, -100, 100, offsetof(gen_params, presence_penalty)},
    {"frequency_penalty", OPT_FLOAT, -100, 100, offsetof(gen_params, frequency_penalty)},
    {"top_k", OPT_INT, 0, INT_MAX, offsetof(gen_params, top_k)},
    {"repeat_last_n", OPT_INT, -1, LIM_MAX_TOKENS, offsetof(gen_params, repeat_last_n)},
    {"num_predict", OPT_PREDICT, -2, LIM_MAX_TOKENS, offsetof(gen_params, max_tokens)},
    {"seed", OPT_SEED, 0, 0, 0},
    {"stop", OPT_STOP, 0, 0, 0},
    {"num_ctx", OPT_ACCEPTED, 0, 0, 0},     {"num_keep", OPT_ACCEPTED, 0, 0, 0},
    {"typical_p", OPT_ACCEPTED, 0, 0, 0},   {"tfs_z", OPT_ACCEPTED, 0, 0, 0},
    {"mirostat", OPT_ACCEPTED, 0, 0, 0},    {"mirostat_tau", OPT_ACCEPTED, 0, 0, 0},
    {"mirostat_eta", OPT_ACCEPTED, 0, 0, 0}, {"penalize_newline", OPT_ACCEPTED, 0, 0, 0},
    {"numa", OPT_ACCEPTED, 0, 0, 0},        {"num_batch", OPT_ACCEPTED, 0, 0, 0},
    {"num_gpu", OPT_ACCEPTED, 0, 0, 0},     {"main_gpu", OPT_ACCEPTED, 0, 0, 0},
    {"low_vram", OPT_ACCEPTED, 0, 0, 0},    {"vocab_only", OPT_ACCEPTED, 0, 0, 0},
    {"use_mmap", OPT_ACCEPTED, 0, 0, 0},    {"use_mlock", OPT_ACCEPTED, 0, 0, 0},
    {"num_thread", OPT_ACCEPTED, 0, 0, 0},  {"f16_kv", OPT_ACCEPTED, 0, 0, 0},
    {"logits_all", OPT_ACCEPTED, 0, 0, 0},  {"embedding_only", OPT_ACCEPTED, 0, 0, 0},
};

static shimmy_err add_stop(oll_request *r, const char *s, oll_error *err) {
    if (s[0] == '\0')
        return SHIMMY_OK;
    if (strlen(s) > LIM_STOP_BYTES)
        return fail(err, ERR_BAD_PARAM, "a stop string is longer than %d bytes", LIM_STOP_BYTES);
    for (int i = 0; i < r->gen.params.n_stop; i++)
        if (strcmp(r->stop[i], s) == 0)
            return SHIMMY_OK;
    if (r->gen.params.n_stop >= LIM_STOP_STRINGS)
        return fail(err, ERR_BAD_PARAM, "at most %d stop strings", LIM_STOP_STRINGS);
    r->stop[r->gen.params.n_stop++] = s;
    return SHIMMY_OK;
}

static shimmy_err opt_stop(oll_request *r, const json_t *v, oll_error *err) {
    if (json_is_string(v))
        return add_stop(r, json_string_value(v), err);
    if (!json_is_array(v))
        return fail(err, ERR_BAD_PARAM, "option stop must be an array of strings");
    r->gen.params.n_stop = 0; /* the request's stop replaces the model's */
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *s = json_array_get(v, i);
        if (!json_is_string(s))
            return fail(err, ERR_BAD_PARAM, "option stop must be an array of strings");
        shimmy_err e = add_stop(r, json_string_value(s), err);
        if (e != SHIMMY_OK)
            return e;
    }
    return SHIMMY_OK;
}

static shimmy_err opt_one(oll_request *r, const opt_row *row, const json_t *v, oll_error *err) {
    gen_params *p = &r->gen.params;
    double d = json_number_value(v);
    if (row->kind == OPT_ACCEPTED)
        return SHIMMY_OK;
    if (row->kind == OPT_STOP)
        return opt_stop(r, v, err);
    if (!json_is_number(v))
        return fail(err, ERR_BAD_PARAM, "option %s must be a number", row->key);
    if (row->kind == OPT_SEED) {
        p->has_seed = d >= 0;
        p->seed = (uint32_t)(int64_t)d;
        return SHIMMY_OK;
    }
    if (d < row->lo || d > row->hi || (row->kind != OPT_FLOAT && d != floor(d)))
        return fail(err, ERR_BAD_PARAM, "option %s is out of range (%g)", row->key, d);
    if (row->kind == OPT_FLOAT)
        *(float *)((char *)p + row->offset) = (float)d;
    else if (row->kind == OPT_PREDICT)
        p->max_tokens = d > 0 ? (int)d : -1; /* -1 infinite, -2 fill the context */
    else
        *(int *)((char *)p + row->offset) = d < 0 ? 64 : (int)d;
    return SHIMMY_OK;
}

static shimmy_err parse_options(oll_request *r, const json_t *opts, oll_error *err) {
    const char *key;
    json_t *v;
    if (opts == NULL)
        return SHIMMY_OK;
    if (!json_is_object(opts))
        return fail(err, ERR_BAD_PARAM, "options must be an object");
    json_object_foreach((json_t *)opts, key, v) {
        if (json_is_null(v))
            continue;
        for (size_t i = 0; i < sizeof opt_rows / sizeof opt_rows[0]; i++) {
            if (strcmp(key, opt_rows[i].key) != 0)
                continue;
            shimmy_err e = opt_one(r, &opt_rows[i], v, err);
            if (e != SHIMMY_OK)
                return e;
            break;
        }
    }
    return SHIMMY_OK;
}

/* The model's params layer: the same option names (stop as a list). Kept alive in r->owned. */
static shimmy_err model_defaults(oll_request *r, const char *defaults, oll_error *err) {
    if (defaults == NULL || defaults[0] == '\0')
        return SHIMMY_OK;
    json_t *d = json_loads(defaults, 0, NULL);
    if (!json_is_object(d)) {
        json_decref(d);
        return SHIMMY_OK; /* a broken params layer is not the client's fault */
    }
    json_object_set_new(r->root, "\x01params", d); /* owned by root from here */
    return parse_options(r, d, err);
}

static void ollama_defaults(gen_params *p) {
    gen_params_default(p);
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.9f;
    p->min_p = 0.0f;
    p->repeat_penalty = 1.1f;
    p->repeat_last_n = 64;
}

/* format: "json" → the generic JSON grammar; a schema → its grammar (owned by r). */
static shimmy_err parse_format(const json_t *root, oll_request *r, oll_error *err) {
    json_t *f = opt(root, "format");
    if (f == NULL || (json_is_string(f) && json_string_length(f) == 0))
        return SHIMMY_OK;
    if (json_is_string(f) && strcmp(json_string_value(f), "json") == 0) {
        r->gen.params.grammar = api_json_grammar;
        return SHIMMY_OK;
    }
    if (!json_is_object(f))
        return fail(err, ERR_BAD_PARAM, "format must be \"json\" or a JSON schema object");
    char msg[400];
    buf g;
    buf_init(&g, LIM_GRAMMAR_BYTES);
    shimmy_err e = json_schema_to_gbnf(f, &g, msg, sizeof msg);
    if (e != SHIMMY_OK) {
        buf_free(&g);
        return fail(err, e, "format: %s", msg);
    }
    r->grammar = buf_take(&g);
    r->gen.params.grammar = r->grammar;
    return SHIMMY_OK;
}

static shimmy_err reject_images(const json_t *obj, const char *where, oll_error *err) {
    json_t *im = opt(obj, "images");
    if (im != NULL && !(json_is_array(im) && json_array_size(im) == 0))
        return fail(err, ERR_BAD_PARAM, "%s: images are not supported: the model has no vision "
                    "support in shimmy", where);
    return SHIMMY_OK;
}

/* What both endpoints share: model, stream, keep_alive, format, defaults then options. */
static shimmy_err parse_common(oll_request *r, const char *defaults, oll_error *err) {
    shimmy_err e;
    r->stream = true;
    ollama_defaults(&r->gen.params);
    r->gen.params.stop = r->stop;
    if ((e = parse_model(r->root, &r->model, err)) != SHIMMY_OK ||
        (e = parse_bool(r->root, "stream", &r->stream, err)) != SHIMMY_OK ||
        (e = parse_keep(r->root, &r->keep_ns, err)) != SHIMMY_OK ||
        (e = parse_format(r->root, r, err)) != SHIMMY_OK ||
        (e = model_defaults(r, defaults, err)) != SHIMMY_OK ||
        (e = parse_options(r, opt(r->root, "options"), err)) != SHIMMY_OK)
        return e;
    return SHIMMY_OK;
}

/* ---- /api/generate ---- */

static shimmy_err generate_body(oll_request *r, oll_error *err) {
    const json_t *root = r->root;
    json_t *v;
    shimmy_err e;
    if ((e = parse_bool(root, "raw", &r->raw, err)) != SHIMMY_OK ||
        (e = reject_images(root, "generate", err)) != SHIMMY_OK)
        return e;
    if ((v = opt(root, "template")) != NULL && !(json_is_string(v) && json_string_length(v) == 0))
        return fail(err, ERR_BAD_PARAM, "template: custom Go templates are not supported; send "
                    "\"raw\": true with a prompt already formatted");
    if ((v = opt(root, "suffix")) != NULL && !(json_is_string(v) && json_string_length(v) == 0))
        return fail(err, ERR_BAD_PARAM, "suffix (fill-in-the-middle) is not supported");
    if ((v = opt(root, "context")) != NULL && !(json_is_array(v) && json_array_size(v) == 0))
        return fail(err, ERR_BAD_PARAM, "context (token ids of an earlier answer) is not "
                    "supported; send the conversation with /api/chat");
    json_t *prompt = opt(root, "prompt"), *system = opt(root, "system");
    if (prompt != NULL && !json_is_string(prompt))
        return fail(err, ERR_BAD_PARAM, "prompt must be a string");
    if (system != NULL && !json_is_string(system))
        return fail(err, ERR_BAD_PARAM, "system must be a string");
    r->empty = prompt == NULL || json_string_length(prompt) == 0;
    if (r->empty)
        return SHIMMY_OK;
    if (r->raw) {
        r->gen.prompt = json_string_value(prompt);
        return SHIMMY_OK;
    }
    r->msgs = calloc(3, sizeof *r->msgs);
    if (r->msgs == NULL)
        return fail(err, ERR_NOMEM, "out of memory");
    size_t n = 1; /* slot 0 stays free for a default system prompt */
    if (system != NULL && json_string_length(system) > 0) {
        r->msgs[n++] = (chat_msg){"system", json_string_value(system)};
        r->has_system = true;
    }
    r->msgs[n++] = (chat_msg){"user", json_string_value(prompt)};
    r->gen.messages = r->msgs + 1;
    r->gen.n_messages = n - 1;
    return SHIMMY_OK;
}

/* ---- /api/chat ---- */

static shimmy_err chat_message(oll_request *r, const json_t *m, size_t i, chat_msg *out,
                               oll_error *err) {
    char where[48];
    snprintf(where, sizeof where, "messages[%zu]", i);
    if (!json_is_object(m))
        return fail(err, ERR_BAD_PARAM, "%s must be an object", where);
    const char *role = json_string_value(json_object_get(m, "role"));
    json_t *content = opt(m, "content");
    shimmy_err e = reject_images(m, where, err);
    if (e != SHIMMY_OK)
        return e;
    if (role == NULL)
        return fail(err, ERR_BAD_PARAM, "%s.role must be a string", where);
    if (strcmp(role, "tool") == 0 || opt(m, "tool_calls") != NULL)
        return fail(err, ERR_BAD_PARAM, "%s: tool messages and tool calls are not supported",
                    where);
    if (strcmp(role, "system") != 0 && strcmp(role, "user") != 0 &&
        strcmp(role, "assistant") != 0)
        return fail(err, ERR_BAD_PARAM, "%s.role must be system, user or assistant, not '%.64s'",
                    where, role);
    if (content != NULL && !json_is_string(content))
        return fail(err, ERR_BAD_PARAM, "%s.content must be a string", where);
    out->role = role;
    out->content = content ? json_string_value(content) : "";
    if (strcmp(role, "system") == 0)
        r->has_system = true;
    return SHIMMY_OK;
}

static shimmy_err chat_body(oll_request *r, oll_error *err) {
    json_t *msgs = opt(r->root, "messages"), *tools = opt(r->root, "tools");
    if (tools != NULL && !(json_is_array(tools) && json_array_size(tools) == 0))
        return fail(err, ERR_BAD_PARAM, "tools (function calling) are not supported");
    if (msgs != NULL && !json_is_array(msgs))
        return fail(err, ERR_BAD_PARAM, "messages must be an array");
    size_t n = json_array_size(msgs);
    r->empty = n == 0;
    if (r->empty)
        return SHIMMY_OK;
    if (n > LIM_MESSAGES)
        return fail(err, ERR_BAD_PARAM, "at most %d messages", LIM_MESSAGES);
    r->msgs = calloc(n + 1, sizeof *r->msgs);
    if (r->msgs == NULL)
        return fail(err, ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        shimmy_err e = chat_message(r, json_array_get(msgs, i), i, &r->msgs[i + 1], err);
        if (e != SHIMMY_OK)
            return e;
    }
    r->gen.messages = r->msgs + 1;
    r->gen.n_messages = n;
    return SHIMMY_OK;
}

typedef shimmy_err (*body_fn)(oll_request *r, oll_error *err);

static shimmy_err parse(const char *body, size_t len, const char *defaults, oll_request *r,
                        oll_error *err, bool chat, body_fn fn) {
    memset(r, 0, sizeof *r);
    err->status = 0;
    err->message[0] = '\0';
    r->chat = chat;
    shimmy_err e = load_object(body, len, &r->root, err);
    if (e != SHIMMY_OK)
        return e;
    if ((e = parse_common(r, defaults, err)) != SHIMMY_OK || (e = fn(r, err)) != SHIMMY_OK) {
        oll_request_free(r);
        return e;
    }
    return SHIMMY_OK;
}

shimmy_err oll_parse_generate(const char *body, size_t len, const char *defaults, oll_request *r,
                              oll_error *err) {
    return parse(body, len, defaults, r, err, false, generate_body);
}

shimmy_err oll_parse_chat(const char *body, size_t len, const char *defaults, oll_request *r,
                          oll_error *err) {
    return parse(body, len, defaults, r, err, true, chat_body);
}

void oll_request_default_system(oll_request *r, const char *system) {
    if (system == NULL || system[0] == '\0' || r->has_system || r->msgs == NULL ||
        r->gen.messages != r->msgs + 1)
        return;
    r->msgs[0] = (chat_msg){"system", system};
    r->gen.messages = r->msgs;
    r->gen.n_messages++;
}

void oll_request_free(oll_request *r) {
    for (size_t i = 0; i < r->n_owned; i++)
        free(r->owned[i]);
    free(r->owned);
    free(r->grammar);
    free(r->msgs);
    json_decref(r->root);
    memset(r, 0, sizeof *r);
}

/* ---- embeddings ---- */

static shimmy_err embed_texts(oll_embed_request *r, const json_t *in, const char *key,
                              oll_error *err) {
    if (in == NULL)
        return fail(err, ERR_BAD_PARAM, "%s is required", key);
    size_t n = json_is_array(in) ? json_array_size(in) : 1;
    if (json_is_array(in) && n == 0)
        return fail(err, ERR_BAD_PARAM, "%s must not be empty", key);
    if (n > LIM_MESSAGES)
        return fail(err, ERR_BAD_PARAM, "%s holds more than %d texts", key, LIM_MESSAGES);
    r->texts = calloc(n, sizeof *r->texts);
    if (r->texts == NULL)
        return fail(err, ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_is_array(in) ? json_array_get(in, i) : in;
        if (json_is_integer(t) || json_is_array(t))
            return fail(err, ERR_BAD_PARAM, "%s: token id inputs are not supported", key);
        if (!json_is_string(t))
            return fail(err, ERR_BAD_PARAM, "%s must be a string or an array of strings", key);
        if (json_string_length(t) == 0)
            return fail(err, ERR_BAD_PARAM, "%s: an input is empty", key);
        r->texts[r->n++] = json_string_value(t);
    }
    return SHIMMY_OK;
}

shimmy_err oll_parse_embed(const char *body, size_t len, oll_embed_kind kind,
                           oll_embed_request *r, oll_error *err) {
    memset(r, 0, sizeof *r);
    shimmy_err e = load_object(body, len, &r->root, err);
    if (e != SHIMMY_OK)
        return e;
    const char *key = kind == OLL_EMBEDDINGS_LEGACY ? "prompt" : "input";
    json_t *fmt = opt(r->root, "encoding_format");
    if ((e = parse_model(r->root, &r->model, err)) != SHIMMY_OK ||
        (e = parse_keep(r->root, &r->keep_ns, err)) != SHIMMY_OK)
        goto out;
    if (kind == OLL_EMBED_OPENAI && fmt != NULL &&
        !(json_is_string(fmt) && strcmp(json_string_value(fmt), "float") == 0)) {
        e = fail(err, ERR_BAD_PARAM, "encoding_format: only \"float\" is supported");
        goto out;
    }
    e = embed_texts(r, opt(r->root, key), key, err);
out:
    if (e != SHIMMY_OK)
        oll_embed_request_free(r);
    return e;
}

void oll_embed_request_free(oll_embed_request *r) {
    free(r->texts);
    json_decref(r->root);
    memset(r, 0, sizeof *r);
}

/* ---- writers ---- */

shimmy_err oll_error_json(const char *msg, buf *out) {
    jsonw w;
    jsonw_begin(&w, out);
    jsonw_raw(&w, "{\"error\":");
    jsonw_cstr(&w, msg);
    jsonw_raw(&w, "}");
    return jsonw_end(&w);
}

void oll_timestamp(char *out, size_t outlen) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%s.%09ldZ", date, ts.tv_nsec);
}

static void head(jsonw *w, const char *model) {
    char ts[48];
    oll_timestamp(ts, sizeof ts);
    jsonw_raw(w, "{\"model\":");
    jsonw_cstr(w, model);
    jsonw_raw(w, ",\"created_at\":");
    jsonw_cstr(w, ts);
}

static void text_field(jsonw *w, bool chat, const char *text, size_t n) {
    if (chat) {
        jsonw_raw(w, ",\"message\":{\"role\":\"assistant\",\"content\":");
        jsonw_str(w, text, n);
        jsonw_raw(w, "}");
    } else {
        jsonw_raw(w, ",\"response\":");
        jsonw_str(w, text, n);
    }
}

shimmy_err oll_chunk(const char *model, bool chat, const char *text, size_t n, buf *out) {
    jsonw w;
    jsonw_begin(&w, out);
    head(&w, model);
    text_field(&w, chat, text, n);
    jsonw_raw(&w, ",\"done\":false}\n");
    return jsonw_end(&w);
}

static void field(jsonw *w, const char *name, int64_t v) {
    jsonw_raw(w, ",\"");
    jsonw_raw(w, name);
    jsonw_raw(w, "\":");
    jsonw_int(w, v);
}

shimmy_err oll_final(const char *model, bool chat, const char *text, size_t n,
                     const char *done_reason, const gen_status *st, const oll_times *t,
                     bool ndjson, buf *out) {
    jsonw w;
    jsonw_begin(&w, out);
    head(&w, model);
    text_field(&w, chat, text, n);
    jsonw_raw(&w, ",\"done\":true,\"done_reason\":");
    jsonw_cstr(&w, done_reason);
    field(&w, "total_duration", t->total_ns);
    field(&w, "load_duration", t->load_ns);
    if (st != NULL) {
        field(&w, "prompt_eval_count", st->prompt_tokens);
        field(&w, "prompt_eval_duration", st->prompt_ns);
        field(&w, "eval_count", st->completion_tokens);
        field(&w, "eval_duration", st->gen_ns);
    }
    jsonw_raw(&w, ndjson ? "}\n" : "}");
    return jsonw_end(&w);
}
