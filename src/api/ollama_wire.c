/* ollama_wire: see ollama_wire.h. Shared parsing (JSON, options, keep_alive, format, think), the
 * chat JSON, the two generation bodies, embeddings, then the writers. */
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

#include "api/jsonw.h"
#include "core/clock.h"

static oll_wire *W(const api_call *c) {
    return c->wire;
}

/* ---- shared parsing ---- */

static shimmy_err fail(api_error *err, shimmy_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Every message of this parser begins with the path of the field at fault ("messages[2].role
 * must be ...", "option top_k is ...", "input[1]: ..."), so the error's param is read from it:
 * the leading path, "options.KEY" for "option KEY", none when the message starts otherwise. */
static void param_from_message(api_error *err) {
    const char *m = err->message;
    const char *prefix = strncmp(m, "option ", 7) == 0 ? "options." : "";
    m += prefix[0] != '\0' ? 7 : 0;
    size_t n = strspn(m, "abcdefghijklmnopqrstuvwxyz_0123456789.[]");
    bool ended = m[n] == ' ' || m[n] == ':' || m[n] == '\0';
    if (n == 0 || !ended || strncmp(m, "at ", 3) == 0 || strncmp(m, "a ", 2) == 0)
        n = 0;
    snprintf(err->param, sizeof err->param, "%s%.*s", n > 0 ? prefix : "", (int)n, m);
}

static shimmy_err fail(api_error *err, shimmy_err code, const char *fmt, ...) {
    va_list ap;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->param[0] = '\0';
    if (code == ERR_BAD_PARAM)
        param_from_message(err);
    return code;
}

#define opt api_json_opt

static shimmy_err load_object(const char *body, size_t len, json_t **out, api_error *err) {
    api_error_clear(err);
    return err->code = api_json_load_object(body, len, out, err->message, sizeof err->message);
}

/* "model", or the older "name". */
static shimmy_err parse_model(const json_t *root, const char **model, api_error *err) {
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
        } units[] = {{"ns", 1},  {"us", 1e3}, {"µs", 1e3},  {"ms", 1e6},
                     {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}};
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

static shimmy_err parse_keep(const json_t *root, int64_t *ns, api_error *err) {
    json_t *v = opt(root, "keep_alive");
    *ns = REGISTRY_KEEP_DEFAULT;
    if (v != NULL && !oll_parse_duration(v, ns))
        return fail(err, ERR_BAD_PARAM,
                    "keep_alive must be a duration like \"5m\" or a number "
                    "of seconds");
    return SHIMMY_OK;
}

static shimmy_err parse_bool(const json_t *obj, const char *key, bool *out, api_error *err) {
    json_t *v = opt(obj, key);
    if (v == NULL)
        return SHIMMY_OK;
    if (!json_is_boolean(v))
        return fail(err, ERR_BAD_PARAM, "%s must be a boolean", key);
    *out = json_is_true(v);
    return SHIMMY_OK;
}

/* ---- options ---- */

typedef enum {
    OPT_FLOAT,
    OPT_INT,
    OPT_PREDICT,
    OPT_SEED,
    OPT_STOP,
    OPT_CTX,
    OPT_ACCEPTED
} opt_kind;

typedef struct opt_row {
    const char *key;
    opt_kind kind;
    double lo, hi;
    size_t offset; /* into gen_params */
} opt_row;

/* Ollama's options that shimmy maps onto sampling, and those it accepts without effect (load-time
 * settings of Ollama's runner). num_ctx reloads the model with that context (api_call.num_ctx,
 * registry_acquire_ctx). */
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
    {"num_ctx", OPT_CTX, 1, LIM_MAX_TOKENS, 0},
    {"num_keep", OPT_ACCEPTED, 0, 0, 0},
    {"typical_p", OPT_ACCEPTED, 0, 0, 0},
    {"tfs_z", OPT_ACCEPTED, 0, 0, 0},
    {"mirostat", OPT_ACCEPTED, 0, 0, 0},
    {"mirostat_tau", OPT_ACCEPTED, 0, 0, 0},
    {"mirostat_eta", OPT_ACCEPTED, 0, 0, 0},
    {"penalize_newline", OPT_ACCEPTED, 0, 0, 0},
    {"numa", OPT_ACCEPTED, 0, 0, 0},
    {"num_batch", OPT_ACCEPTED, 0, 0, 0},
    {"num_gpu", OPT_ACCEPTED, 0, 0, 0},
    {"main_gpu", OPT_ACCEPTED, 0, 0, 0},
    {"low_vram", OPT_ACCEPTED, 0, 0, 0},
    {"vocab_only", OPT_ACCEPTED, 0, 0, 0},
    {"use_mmap", OPT_ACCEPTED, 0, 0, 0},
    {"use_mlock", OPT_ACCEPTED, 0, 0, 0},
    {"num_thread", OPT_ACCEPTED, 0, 0, 0},
    {"f16_kv", OPT_ACCEPTED, 0, 0, 0},
    {"logits_all", OPT_ACCEPTED, 0, 0, 0},
    {"embedding_only", OPT_ACCEPTED, 0, 0, 0},
};

/* Where options land: sampling in p (p->stop is stop, the list the strings are added to) and
 * num_ctx in *num_ctx (NULL: num_ctx is not this caller's business). */
typedef struct opt_target {
    gen_params *p;
    const char **stop; /* LIM_STOP_STRINGS entries */
    int *num_ctx;
} opt_target;

static opt_target call_target(api_call *r) {
    return (opt_target){&r->gen.params, W(r)->stop, &r->num_ctx};
}

static shimmy_err add_stop(const opt_target *t, const char *s, api_error *err) {
    if (s[0] == '\0')
        return SHIMMY_OK;
    if (strlen(s) > LIM_STOP_BYTES)
        return fail(err, ERR_BAD_PARAM, "option stop: a string is longer than %d bytes",
                    LIM_STOP_BYTES);
    for (int i = 0; i < t->p->n_stop; i++)
        if (strcmp(t->stop[i], s) == 0)
            return SHIMMY_OK;
    if (t->p->n_stop >= LIM_STOP_STRINGS)
        return fail(err, ERR_BAD_PARAM, "option stop: at most %d strings", LIM_STOP_STRINGS);
    t->stop[t->p->n_stop++] = s;
    return SHIMMY_OK;
}

static shimmy_err opt_stop(const opt_target *t, const json_t *v, api_error *err) {
    if (json_is_string(v))
        return add_stop(t, json_string_value(v), err);
    if (!json_is_array(v))
        return fail(err, ERR_BAD_PARAM, "option stop must be an array of strings");
    t->p->n_stop = 0; /* the request's stop replaces the model's */
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *s = json_array_get(v, i);
        if (!json_is_string(s))
            return fail(err, ERR_BAD_PARAM, "option stop must be an array of strings");
        shimmy_err e = add_stop(t, json_string_value(s), err);
        if (e != SHIMMY_OK)
            return e;
    }
    return SHIMMY_OK;
}

static shimmy_err opt_one(const opt_target *t, const opt_row *row, const json_t *v,
                          api_error *err) {
    gen_params *p = t->p;
    double d = json_number_value(v);
    if (row->kind == OPT_ACCEPTED)
        return SHIMMY_OK;
    if (row->kind == OPT_STOP)
        return opt_stop(t, v, err);
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
    else if (row->kind == OPT_CTX) {
        if (t->num_ctx != NULL)
            *t->num_ctx = (int)d;
    } else
        *(int *)((char *)p + row->offset) = d < 0 ? 64 : (int)d;
    return SHIMMY_OK;
}

static shimmy_err parse_options(const opt_target *t, const json_t *opts, api_error *err) {
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
            shimmy_err e = opt_one(t, &opt_rows[i], v, err);
            if (e != SHIMMY_OK)
                return e;
            break;
        }
    }
    return SHIMMY_OK;
}

/* The params layer text as an object owned by root (so the stop strings live as long as the
 * body), or NULL when there is none or it does not parse (a broken params layer is not the
 * client's fault). */
static json_t *layer_in(json_t *root, const char *params_json) {
    if (params_json == NULL || params_json[0] == '\0')
        return NULL;
    json_t *d = json_loads(params_json, 0, NULL);
    if (!json_is_object(d)) {
        json_decref(d);
        return NULL;
    }
    return json_object_set_new(root, "\x01params", d) == 0 ? d : NULL; /* d taken either way */
}

/* The model's params layer: the same option names (stop as a list). */
static shimmy_err model_defaults(api_call *r, const char *defaults, api_error *err) {
    opt_target t = call_target(r);
    return parse_options(&t, layer_in(W(r)->root, defaults), err);
}

shimmy_err oll_lay_params(json_t *root, const char *params_json, gen_params *p, const char **stop,
                          api_error *err) {
    json_t *d = layer_in(root, params_json);
    if (d == NULL)
        return SHIMMY_OK;
    for (int i = 0; i < p->n_stop && i < LIM_STOP_STRINGS; i++)
        stop[i] = p->stop[i];
    p->stop = stop;
    opt_target t = {p, stop, NULL};
    return parse_options(&t, d, err);
}

void oll_default_params(gen_params *p) {
    gen_params_default(p);
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.9f;
    p->min_p = 0.0f;
    p->repeat_penalty = 1.1f;
    p->repeat_last_n = 64;
}

/* format: "json" → any JSON object; a schema → that schema (the engine converts it). */
static shimmy_err parse_format(const json_t *root, api_call *r, api_error *err) {
    json_t *f = opt(root, "format");
    if (f == NULL || (json_is_string(f) && json_string_length(f) == 0))
        return SHIMMY_OK;
    if (json_is_string(f) && strcmp(json_string_value(f), "json") == 0)
        W(r)->schema = strdup("{\"type\":\"object\"}");
    else if (!json_is_object(f))
        return fail(err, ERR_BAD_PARAM, "format must be \"json\" or a JSON schema object");
    else if (api_json_text(f, &W(r)->schema, err) != SHIMMY_OK)
        return err->code;
    if (W(r)->schema == NULL)
        return fail(err, ERR_NOMEM, "out of memory");
    r->gen.params.json_schema = W(r)->schema;
    return SHIMMY_OK;
}

/* think: true/false, or "low"/"medium"/"high" (thinking on, with that effort). */
static shimmy_err parse_think(const json_t *root, api_call *r, api_error *err) {
    static const char *const levels[] = {"low", "medium", "high"};
    json_t *t = opt(root, "think");
    oll_wire *w = W(r);
    if (t == NULL)
        return SHIMMY_OK;
    w->think = json_is_true(t) ? OLL_THINK_ON : OLL_THINK_OFF;
    r->need_thinking = w->think == OLL_THINK_ON;
    if (json_is_boolean(t))
        return SHIMMY_OK;
    for (size_t i = 0; json_is_string(t) && i < sizeof levels / sizeof levels[0]; i++) {
        if (strcmp(json_string_value(t), levels[i]) == 0) {
            w->think = OLL_THINK_ON;
            w->effort = levels[i];
            r->need_thinking = true;
            return SHIMMY_OK;
        }
    }
    return fail(err, ERR_BAD_PARAM, "think must be true, false, \"low\", \"medium\" or \"high\"");
}

/* logprobs (bool) and top_logprobs (0..LIM_TOP_LOGPROBS, which needs logprobs), as Ollama. */
static shimmy_err parse_logprobs(const json_t *root, api_call *r, api_error *err) {
    gen_params *p = &r->gen.params;
    shimmy_err e = parse_bool(root, "logprobs", &p->logprobs, err);
    json_t *v = opt(root, "top_logprobs");
    if (e != SHIMMY_OK || v == NULL)
        return e;
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > LIM_TOP_LOGPROBS)
        return fail(err, ERR_BAD_PARAM, "top_logprobs must be an integer from 0 to %d",
                    LIM_TOP_LOGPROBS);
    p->top_logprobs = (int)json_integer_value(v);
    if (p->top_logprobs > 0 && !p->logprobs)
        return fail(err, ERR_BAD_PARAM, "top_logprobs needs logprobs to be true");
    return SHIMMY_OK;
}

/* images: [base64, ...] of the body (where "generate") or of messages[i] (where that), into the
 * wire's media; *text becomes content (borrowed) with one media marker per image before it, as
 * Ollama puts a message's images before its text. Returns owned *text. */
static shimmy_err take_images(api_call *r, const json_t *obj, const char *where,
                              const char *content, char **text, api_error *err) {
    json_t *im = opt(obj, "images");
    bool top = strcmp(where, "generate") == 0;
    char param[96];
    *text = NULL;
    snprintf(param, sizeof param, "%s%simages", top ? "" : where, top ? "" : ".");
    if (im != NULL && !json_is_array(im))
        return api_fail(err, ERR_BAD_PARAM, param, "%s must be an array of base64 strings", param);
    size_t n = json_array_size(im), mlen = strlen(engine_media_marker());
    buf b;
    buf_init(&b, LIM_PROMPT_BYTES);
    shimmy_err e = SHIMMY_OK;
    for (size_t k = 0; k < n && e == SHIMMY_OK; k++) {
        json_t *v = json_array_get(im, k);
        snprintf(param, sizeof param, "%s%simages[%zu]", top ? "" : where, top ? "" : ".", k);
        if (!json_is_string(v))
            e = api_fail(err, ERR_BAD_PARAM, param, "%s must be a base64 string", param);
        else
            e = api_media_add_base64(&W(r)->media, json_string_value(v), json_string_length(v),
                                     GEN_MEDIA_IMAGE, param, err);
        if (e == SHIMMY_OK)
            e = buf_append(&b, engine_media_marker(), mlen);
    }
    if (e == SHIMMY_OK && content != NULL)
        e = buf_append(&b, content, strlen(content));
    if (e == SHIMMY_OK && (*text = strdup(buf_str(&b))) == NULL)
        e = fail(err, ERR_NOMEM, "out of memory");
    if (e == ERR_TOO_LARGE && err->code == SHIMMY_OK)
        e = fail(err, ERR_TOO_LARGE, "the prompt is over %u bytes", LIM_PROMPT_BYTES);
    buf_free(&b);
    r->gen.media = W(r)->media.items;
    r->gen.n_media = W(r)->media.n;
    return e;
}

/* The defaults: Ollama's, or m's; their stop strings copied into the wire's list, which the
 * model's and the request's stop replace. */
static void start_params(api_call *r, const gen_params *defaults) {
    if (defaults != NULL)
        r->gen.params = *defaults;
    else
        oll_default_params(&r->gen.params);
    for (int i = 0; i < r->gen.params.n_stop && i < LIM_STOP_STRINGS; i++)
        W(r)->stop[i] = r->gen.params.stop[i];
    r->gen.params.stop = W(r)->stop;
}

/* The presets over the params layer; their stop strings go into the wire's list like the
 * others (the request's stop replaces them). */
static void lay_presets(api_call *r, const oll_model_ctx *m) {
    if (m->presets == NULL)
        return;
    m->presets(m->presets_ctx, &r->gen.params);
    for (int i = 0; i < r->gen.params.n_stop && i < LIM_STOP_STRINGS; i++)
        W(r)->stop[i] = r->gen.params.stop[i];
    r->gen.params.stop = W(r)->stop;
}

/* What both endpoints share: model, stream, keep_alive, format, defaults (Ollama's, the
 * Modelfile's params layer, then the presets) then options. */
static shimmy_err parse_common(api_call *r, const oll_model_ctx *m, api_error *err) {
    shimmy_err e;
    const char *defaults = m->params_json;
    r->stream = true;
    r->schema_param = "format";
    start_params(r, m->defaults);
    if ((e = parse_model(W(r)->root, &r->model, err)) != SHIMMY_OK ||
        (e = parse_bool(W(r)->root, "stream", &r->stream, err)) != SHIMMY_OK ||
        (e = parse_keep(W(r)->root, &r->keep_ns, err)) != SHIMMY_OK ||
        (e = parse_format(W(r)->root, r, err)) != SHIMMY_OK ||
        (e = parse_think(W(r)->root, r, err)) != SHIMMY_OK ||
        (e = parse_logprobs(W(r)->root, r, err)) != SHIMMY_OK ||
        (e = model_defaults(r, defaults, err)) != SHIMMY_OK)
        return e;
    lay_presets(r, m);
    opt_target t = call_target(r);
    if ((e = parse_options(&t, opt(W(r)->root, "options"), err)) != SHIMMY_OK)
        return e;
    return SHIMMY_OK;
}

/* ---- the chat JSON for the engine ---- */

/* {"messages": msgs, ...}: Ollama's think as enable_thinking / reasoning_effort; reasoning is
 * always split out (Ollama's thinking field). Takes msgs. */
static shimmy_err chat_json(api_call *r, json_t *msgs, const json_t *tools, api_error *err) {
    oll_wire *w = W(r);
    json_t *chat = json_pack("{s:o,s:s}", "messages", msgs, "reasoning_format", "auto");
    if (chat == NULL)
        return fail(err, ERR_NOMEM, "out of memory");
    if (tools != NULL)
        json_object_set(chat, "tools", (json_t *)tools);
    if (w->think != OLL_THINK_UNSET)
        json_object_set_new(chat, "enable_thinking", json_boolean(w->think == OLL_THINK_ON));
    if (w->effort != NULL)
        json_object_set_new(chat, "reasoning_effort", json_string(w->effort));
    shimmy_err e = api_json_text(chat, &w->chat_json, err);
    json_decref(chat);
    r->gen.chat_json = w->chat_json;
    return e;
}

static json_t *message(const char *role, const char *content) {
    return json_pack("{s:s,s:s}", "role", role, "content", content);
}

/* ---- /api/generate ---- */

static shimmy_err generate_checks(const json_t *root, api_error *err) {
    json_t *v;
    if ((v = opt(root, "template")) != NULL && !(json_is_string(v) && json_string_length(v) == 0))
        return fail(err, ERR_BAD_PARAM,
                    "template: custom Go templates are not supported; send "
                    "\"raw\": true with a prompt already formatted");
    if ((v = opt(root, "suffix")) != NULL && !(json_is_string(v) && json_string_length(v) == 0))
        return fail(err, ERR_BAD_PARAM, "suffix (fill-in-the-middle) is not supported");
    if ((v = opt(root, "context")) != NULL && !(json_is_array(v) && json_array_size(v) == 0))
        return fail(err, ERR_BAD_PARAM,
                    "context (token ids of an earlier answer) is not "
                    "supported; send the conversation with /api/chat");
    if ((v = opt(root, "prompt")) != NULL && !json_is_string(v))
        return fail(err, ERR_BAD_PARAM, "prompt must be a string");
    if ((v = opt(root, "system")) != NULL && !json_is_string(v))
        return fail(err, ERR_BAD_PARAM, "system must be a string");
    return SHIMMY_OK;
}

/* raw, or a model without a chat template (Ollama's default template is {{ .Prompt }}): the
 * prompt as is; else the chat of the system prompt (the request's, else the model's) and the
 * prompt as a user message. */
static shimmy_err generate_body(api_call *r, const oll_model_ctx *m, api_error *err) {
    const json_t *root = W(r)->root;
    bool raw = false;
    shimmy_err e;
    if ((e = parse_bool(root, "raw", &raw, err)) != SHIMMY_OK ||
        (e = generate_checks(root, err)) != SHIMMY_OK)
        return e;
    const char *prompt = json_string_value(opt(root, "prompt"));
    const char *system = json_string_value(opt(root, "system"));
    r->load_only = prompt == NULL || prompt[0] == '\0';
    if (r->load_only)
        return SHIMMY_OK;
    if ((e = take_images(r, root, "generate", prompt, &W(r)->prompt, err)) != SHIMMY_OK)
        return e;
    if (raw || !m->has_template) {
        r->gen.prompt = W(r)->prompt;
        return SHIMMY_OK;
    }
    if (system == NULL || system[0] == '\0')
        system = m->system;
    json_t *msgs = json_array();
    if (system != NULL && system[0] != '\0')
        json_array_append_new(msgs, message("system", system));
    json_array_append_new(msgs, message("user", W(r)->prompt));
    return chat_json(r, msgs, NULL, err);
}

/* ---- /api/chat ---- */

/* An assistant's tool calls [{function:{name, arguments: object}}] in the engine's shape
 * (arguments as JSON text). */
static shimmy_err message_calls(const json_t *tcs, const char *where, json_t *out, api_error *err) {
    json_t *calls = json_array();
    json_object_set_new(out, "tool_calls", calls);
    if (!json_is_array(tcs))
        return fail(err, ERR_BAD_PARAM, "%s.tool_calls must be an array", where);
    for (size_t j = 0; j < json_array_size(tcs); j++) {
        const json_t *tc = json_array_get(tcs, j), *f = json_object_get(tc, "function");
        const json_t *name = json_object_get(f, "name"), *args = opt(f, "arguments");
        if (!json_is_string(name) || (args != NULL && !json_is_object(args)))
            return fail(err, ERR_BAD_PARAM,
                        "%s.tool_calls[%zu] must be {\"function\": "
                        "{\"name\": string, \"arguments\": object}}",
                        where, j);
        char *text = args != NULL ? json_dumps(args, JSON_COMPACT) : strdup("{}");
        json_t *call = json_pack("{s:s,s:{s:O,s:s}}", "type", "function", "function", "name", name,
                                 "arguments", text ? text : "{}");
        free(text);
        if (call == NULL)
            return fail(err, ERR_NOMEM, "out of memory");
        if (json_is_string(json_object_get(tc, "id")))
            json_object_set(call, "id", json_object_get(tc, "id"));
        json_array_append_new(calls, call);
    }
    return SHIMMY_OK;
}

/* Ollama's optional string fields of a message, under the engine's names. */
static shimmy_err message_strings(const json_t *m, const char *where, json_t *out, api_error *err) {
    static const char *const keys[][2] = {
        {"thinking", "reasoning_content"}, {"tool_name", "name"}, {"tool_call_id", "tool_call_id"}};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        json_t *v = opt(m, keys[k][0]);
        if (v != NULL && !json_is_string(v))
            return fail(err, ERR_BAD_PARAM, "%s.%s must be a string", where, keys[k][0]);
        if (v != NULL && json_string_length(v) > 0)
            json_object_set(out, keys[k][1], v);
    }
    return SHIMMY_OK;
}

static shimmy_err chat_message(api_call *r, const json_t *m, size_t i, json_t *msgs,
                               api_error *err) {
    char where[48];
    snprintf(where, sizeof where, "messages[%zu]", i);
    if (!json_is_object(m))
        return fail(err, ERR_BAD_PARAM, "%s must be an object", where);
    const char *role = json_string_value(json_object_get(m, "role"));
    json_t *content = opt(m, "content"), *tcs = opt(m, "tool_calls");
    shimmy_err e;
    if (role == NULL)
        return fail(err, ERR_BAD_PARAM, "%s.role must be a string", where);
    if (strcmp(role, "system") != 0 && strcmp(role, "user") != 0 &&
        strcmp(role, "assistant") != 0 && strcmp(role, "tool") != 0)
        return fail(err, ERR_BAD_PARAM,
                    "%s.role must be system, user, assistant or tool, not "
                    "'%.64s'",
                    where, role);
    if (content != NULL && !json_is_string(content))
        return fail(err, ERR_BAD_PARAM, "%s.content must be a string", where);
    char *text;
    if ((e = take_images(r, m, where, content ? json_string_value(content) : "", &text, err)) !=
        SHIMMY_OK)
        return e;
    json_t *out = message(role, text);
    free(text);
    json_array_append_new(msgs, out);
    if (strcmp(role, "system") == 0)
        W(r)->has_system = true;
    if (tcs != NULL && (e = message_calls(tcs, where, out, err)) != SHIMMY_OK)
        return e;
    return message_strings(m, where, out, err);
}

static shimmy_err chat_body(api_call *r, const oll_model_ctx *m, api_error *err) {
    json_t *msgs = opt(W(r)->root, "messages"), *tools = opt(W(r)->root, "tools");
    size_t n_tools = 0, n = json_array_size(msgs);
    shimmy_err e = api_check_tools(tools, &n_tools, err);
    if (e != SHIMMY_OK)
        return e;
    if (msgs != NULL && !json_is_array(msgs))
        return fail(err, ERR_BAD_PARAM, "messages must be an array");
    r->load_only = n == 0;
    r->need_tools = n_tools > 0;
    if (r->load_only)
        return SHIMMY_OK;
    if (n > LIM_MESSAGES)
        return fail(err, ERR_BAD_PARAM, "messages: at most %d messages", LIM_MESSAGES);
    json_t *out = json_array();
    for (size_t i = 0; i < n && e == SHIMMY_OK; i++)
        e = chat_message(r, json_array_get(msgs, i), i, out, err);
    if (e == SHIMMY_OK && !W(r)->has_system && m->system != NULL && m->system[0] != '\0')
        json_array_insert_new(out, 0, message("system", m->system));
    if (e != SHIMMY_OK) {
        json_decref(out);
        return e;
    }
    return chat_json(r, out, n_tools > 0 ? tools : NULL, err);
}

typedef shimmy_err (*body_fn)(api_call *r, const oll_model_ctx *m, api_error *err);

static shimmy_err parse(json_t *root, const oll_model_ctx *m, api_call *r, api_error *err,
                        bool chat, body_fn fn) {
    memset(r, 0, sizeof *r);
    api_error_clear(err);
    oll_wire *w = calloc(1, sizeof *w);
    if (w == NULL)
        return fail(err, ERR_NOMEM, "out of memory");
    r->wire = w;
    w->root = root;
    w->chat = chat;
    api_answer_init(&w->calls);
    api_answer_init(&w->lps);
    shimmy_err e = parse_common(r, m, err);
    if (e == SHIMMY_OK)
        e = fn(r, m, err);
    if (e != SHIMMY_OK)
        oll_call_free(r);
    return e;
}

shimmy_err oll_parse_generate(json_t *root, const oll_model_ctx *m, api_call *c, api_error *err) {
    return parse(root, m, c, err, false, generate_body);
}

shimmy_err oll_parse_chat(json_t *root, const oll_model_ctx *m, api_call *c, api_error *err) {
    return parse(root, m, c, err, true, chat_body);
}

void oll_call_free(api_call *c) {
    oll_wire *w = c->wire;
    if (w != NULL) {
        free(w->chat_json);
        free(w->schema);
        api_answer_free(&w->calls);
        api_answer_free(&w->lps);
        api_media_free(&w->media);
        free(w->prompt);
        free(w);
    }
    c->wire = NULL;
}

/* ---- embeddings ---- */

/* Token ids of arr (integers in [0, INT32_MAX]) appended to r->tokens; false when one is not. */
static bool embed_ids(oll_embed_request *r, const json_t *arr, size_t *at) {
    for (size_t k = 0; k < json_array_size(arr); k++) {
        const json_t *t = json_array_get(arr, k);
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) > INT32_MAX)
            return false;
        r->tokens[(*at)++] = (int32_t)json_integer_value(t);
    }
    return true;
}

static bool all_integers(const json_t *arr) {
    for (size_t k = 0; k < json_array_size(arr); k++)
        if (!json_is_integer(json_array_get(arr, k)))
            return false;
    return json_array_size(arr) > 0;
}

/* Counts the token ids of in (a token array, or an array holding token arrays). */
static size_t count_ids(const json_t *in) {
    size_t n = 0;
    if (all_integers(in))
        return json_array_size(in);
    for (size_t i = 0; i < json_array_size(in); i++)
        if (json_is_array(json_array_get(in, i)))
            n += json_array_size(json_array_get(in, i));
    return n;
}

/* One input t (a string or a token array) into r->inputs[r->n]. */
static shimmy_err embed_one(oll_embed_request *r, const json_t *t, const char *path, size_t *at,
                            api_error *err) {
    engine_embed_input *in = &r->inputs[r->n];
    if (json_is_string(t)) {
        if (json_string_length(t) == 0)
            return fail(err, ERR_BAD_PARAM, "%s: an input is empty", path);
        in->text = json_string_value(t);
    } else if (json_is_array(t)) {
        in->tokens = r->tokens + *at;
        in->n_tokens = json_array_size(t);
        if (in->n_tokens == 0)
            return fail(err, ERR_BAD_PARAM, "%s: an input is empty", path);
        if (!embed_ids(r, t, at))
            return fail(err, ERR_BAD_PARAM, "%s must be an array of token ids (integers >= 0)",
                        path);
    } else {
        return fail(err, ERR_BAD_PARAM,
                    "%s must be a string, an array of strings, an array of "
                    "token ids or an array of token id arrays",
                    path);
    }
    r->n++;
    return SHIMMY_OK;
}

/* input: a string, an array of strings, an array of token ids (one input) or an array of token
 * id arrays (several), as OpenAI's embeddings take it. */
static shimmy_err embed_inputs(oll_embed_request *r, const json_t *in, const char *key,
                               api_error *err) {
    if (in == NULL)
        return fail(err, ERR_BAD_PARAM, "%s is required", key);
    bool one = !json_is_array(in) || all_integers(in);
    size_t n = one ? 1 : json_array_size(in);
    if (json_is_array(in) && json_array_size(in) == 0)
        return fail(err, ERR_BAD_PARAM, "%s must not be empty", key);
    if (n > LIM_MESSAGES)
        return fail(err, ERR_BAD_PARAM, "%s holds more than %d inputs", key, LIM_MESSAGES);
    size_t n_ids = json_is_array(in) ? count_ids(in) : 0, at = 0;
    r->inputs = calloc(n, sizeof *r->inputs);
    r->tokens = malloc((n_ids ? n_ids : 1) * sizeof *r->tokens);
    if (r->inputs == NULL || r->tokens == NULL)
        return fail(err, ERR_NOMEM, "out of memory");
    shimmy_err e = SHIMMY_OK;
    for (size_t i = 0; i < n && e == SHIMMY_OK; i++) {
        char path[48];
        if (one)
            snprintf(path, sizeof path, "%s", key);
        else
            snprintf(path, sizeof path, "%s[%zu]", key, i);
        e = embed_one(r, one ? in : json_array_get(in, i), path, &at, err);
    }
    return e;
}

/* OpenAI's encoding_format ("float" or "base64") and dimensions; Ollama's dimensions and
 * truncate. */
static shimmy_err embed_format(oll_embed_request *r, oll_embed_kind kind, api_error *err) {
    json_t *fmt = opt(r->root, "encoding_format");
    double dims = 0, num_ctx = 0;
    shimmy_err e;
    if (kind == OLL_EMBED_OPENAI && fmt != NULL) {
        const char *f = json_string_value(fmt);
        if (f == NULL || (strcmp(f, "float") != 0 && strcmp(f, "base64") != 0))
            return fail(err, ERR_BAD_PARAM, "encoding_format must be \"float\" or \"base64\"");
        r->base64 = strcmp(f, "base64") == 0;
    }
    if ((e = api_json_num(r->root, "dimensions", "dimensions", true, 1, INT32_MAX, &dims, err)) !=
        SHIMMY_OK)
        return e;
    r->dimensions = (int)dims;
    r->truncate = kind != OLL_EMBED_OPENAI;
    if (kind != OLL_EMBED_OPENAI && (e = parse_bool(r->root, "truncate", &r->truncate, err)))
        return e;
    const json_t *opts = opt(r->root, "options");
    if (kind != OLL_EMBED_OPENAI && opts != NULL && !json_is_object(opts))
        return fail(err, ERR_BAD_PARAM, "options must be an object");
    if (kind != OLL_EMBED_OPENAI && (e = api_json_num(opts, "num_ctx", "options.num_ctx", true, 1,
                                                      LIM_MAX_TOKENS, &num_ctx, err)) != SHIMMY_OK)
        return e;
    r->num_ctx = (int)num_ctx;
    return SHIMMY_OK;
}

shimmy_err oll_parse_embed(const char *body, size_t len, oll_embed_kind kind, oll_embed_request *r,
                           api_error *err) {
    memset(r, 0, sizeof *r);
    shimmy_err e = load_object(body, len, &r->root, err);
    if (e != SHIMMY_OK)
        return e;
    const char *key = kind == OLL_EMBEDDINGS_LEGACY ? "prompt" : "input";
    if ((e = parse_model(r->root, &r->model, err)) != SHIMMY_OK ||
        (e = parse_keep(r->root, &r->keep_ns, err)) != SHIMMY_OK ||
        (e = embed_format(r, kind, err)) != SHIMMY_OK)
        goto out;
    e = embed_inputs(r, opt(r->root, key), key, err);
out:
    if (e != SHIMMY_OK)
        oll_embed_request_free(r);
    return e;
}

void oll_embed_request_free(oll_embed_request *r) {
    free(r->inputs);
    free(r->tokens);
    json_decref(r->root);
    memset(r, 0, sizeof *r);
}

/* ---- writers ---- */

void oll_timestamp(char *out, size_t outlen) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%s.%09ldZ", date, ts.tv_nsec);
}

static void error_obj(jsonw *w, const api_error *e) {
    jsonw_raw(w, "{\"error\":");
    jsonw_cstr(w, api_error_message(e));
    jsonw_raw(w, "}");
}

shimmy_err oll_error_json(const api_error *e, buf *out) {
    jsonw w;
    jsonw_begin(&w, out);
    error_obj(&w, e);
    return jsonw_end(&w);
}

shimmy_err oll_write_error(const api_error *e, api_sink *s) {
    jsonw w;
    api_frame_begin(s, &w);
    error_obj(&w, e);
    return api_frame_end(s, &w);
}

static void head(jsonw *w, const char *model) {
    char ts[48];
    oll_timestamp(ts, sizeof ts);
    jsonw_raw(w, "{\"model\":");
    jsonw_cstr(w, model);
    jsonw_raw(w, ",\"created_at\":");
    jsonw_cstr(w, ts);
}

/* A call's arguments as an object: the JSON text parsed, or the text as a string when it does
 * not parse (never dropped). */
static void arguments(jsonw *w, const buf *args) {
    json_t *v = json_loadb(buf_str(args), args->len, 0, NULL);
    char *text = v != NULL ? json_dumps(v, JSON_COMPACT) : NULL;
    if (text != NULL)
        jsonw_raw(w, text);
    else
        jsonw_str(w, buf_str(args), args->len);
    free(text);
    json_decref(v);
}

static void tool_calls(jsonw *w, const api_tool_call *calls, size_t n) {
    jsonw_raw(w, ",\"tool_calls\":[");
    for (size_t i = 0; i < n; i++) {
        jsonw_raw(w, i > 0 ? ",{\"function\":{\"name\":" : "{\"function\":{\"name\":");
        jsonw_cstr(w, calls[i].name);
        jsonw_raw(w, ",\"arguments\":");
        arguments(w, &calls[i].args);
        jsonw_raw(w, "}}");
    }
    jsonw_raw(w, "]");
}

/* What one object says: text, thinking (omitted when empty), tool calls, log probabilities. */
typedef struct oll_part {
    const char *text, *thinking;
    size_t n_text, n_thinking;
    const api_tool_call *calls;
    size_t n_calls;
    const api_answer *lps; /* its log probabilities, or NULL */
} oll_part;

/* "message":{...} (chat) or "response" and "thinking" (generate). */
static void part_fields(jsonw *w, bool chat, const oll_part *p) {
    jsonw_raw(w, chat ? ",\"message\":{\"role\":\"assistant\",\"content\":" : ",\"response\":");
    jsonw_str(w, p->text, p->n_text);
    if (p->n_thinking > 0) {
        jsonw_raw(w, ",\"thinking\":");
        jsonw_str(w, p->thinking, p->n_thinking);
    }
    if (chat && p->n_calls > 0)
        tool_calls(w, p->calls, p->n_calls);
    if (chat)
        jsonw_raw(w, "}");
    if (p->lps != NULL && p->lps->n_lps > 0) {
        jsonw_raw(w, ",\"logprobs\":");
        api_write_logprobs(w, p->lps);
    }
}

static shimmy_err chunk(const api_call *c, const oll_part *p, api_sink *s) {
    jsonw w;
    api_frame_begin(s, &w);
    head(&w, c->model);
    part_fields(&w, W(c)->chat, p);
    jsonw_raw(&w, ",\"done\":false}");
    return api_frame_end(s, &w);
}

shimmy_err oll_start(api_call *c, api_sink *s) {
    (void)c, (void)s;
    return SHIMMY_OK;
}

/* The calls not sent yet whose index is below upto (all: SIZE_MAX), in one chunk, as Ollama
 * streams a call whole. */
static shimmy_err send_calls(api_call *c, size_t upto, api_sink *s) {
    oll_wire *w = W(c);
    size_t end = upto < w->calls.n_calls ? upto : w->calls.n_calls;
    if (end <= w->sent)
        return SHIMMY_OK;
    oll_part p = {"", NULL, 0, 0, w->calls.calls + w->sent, end - w->sent, NULL};
    w->sent = end;
    return chunk(c, &p, s);
}

static shimmy_err event(api_call *c, const gen_event *e, api_sink *s) {
    oll_part p = {"", NULL, 0, 0, NULL, 0, NULL};
    if (e->kind == GEN_EV_LOGPROB || e->kind == GEN_EV_LOGPROB_TOP)
        return api_answer_add_event(&W(c)->lps, e); /* sent after the wait's text */
    if (e->kind == GEN_EV_TOOL) {
        shimmy_err r = api_answer_add_event(&W(c)->calls, e);
        /* a call is whole when the next one begins */
        return r == SHIMMY_OK ? send_calls(c, (size_t)e->tool_index, s) : r;
    }
    if (e->kind == GEN_EV_REASONING) {
        p.thinking = e->text;
        p.n_thinking = e->len;
    } else {
        p.text = e->text;
        p.n_text = e->len;
    }
    return chunk(c, &p, s);
}

shimmy_err oll_events(api_call *c, const gen_events *ev, api_sink *s) {
    api_answer *lps = &W(c)->lps;
    for (size_t i = 0; i < ev->n; i++) {
        shimmy_err e = event(c, &ev->ev[i], s);
        if (e != SHIMMY_OK)
            return e;
    }
    if (lps->n_lps == 0)
        return SHIMMY_OK;
    oll_part p = {"", NULL, 0, 0, NULL, 0, lps};
    shimmy_err e = chunk(c, &p, s);
    api_answer_free(lps);
    api_answer_init(lps);
    return e;
}

static void field(jsonw *w, const char *name, int64_t v) {
    jsonw_raw(w, ",\"");
    jsonw_raw(w, name);
    jsonw_raw(w, "\":");
    jsonw_int(w, v);
}

/* The final object: done, done_reason, durations and counts (st NULL: a load or unload). */
static shimmy_err final(const api_call *c, const oll_part *p, const char *reason,
                        const gen_status *st, api_sink *s) {
    jsonw w;
    api_frame_begin(s, &w);
    head(&w, c->model);
    part_fields(&w, W(c)->chat, p);
    jsonw_raw(&w, ",\"done\":true,\"done_reason\":");
    jsonw_cstr(&w, reason);
    field(&w, "total_duration", clock_mono_ns() - c->t0_ns);
    field(&w, "load_duration", c->load_ns);
    if (st != NULL) {
        field(&w, "prompt_eval_count", st->prompt_tokens);
        field(&w, "prompt_eval_duration", st->prompt_ns);
        field(&w, "eval_count", st->completion_tokens);
        field(&w, "eval_duration", st->gen_ns);
    }
    jsonw_raw(&w, "}");
    return api_frame_end(s, &w);
}

static const char *done_reason(const gen_status *st) {
    return st->finish == FINISH_LENGTH ? "length" : "stop";
}

shimmy_err oll_end(api_call *c, const gen_status *st, api_sink *s) {
    oll_part p = {"", NULL, 0, 0, NULL, 0, NULL};
    shimmy_err e = send_calls(c, SIZE_MAX, s);
    return e == SHIMMY_OK ? final(c, &p, done_reason(st), st, s) : e;
}

shimmy_err oll_whole(api_call *c, const api_answer *a, const gen_status *st, api_sink *s) {
    oll_part p = {buf_str(&a->content),
                  buf_str(&a->reasoning),
                  a->content.len,
                  a->reasoning.len,
                  a->calls,
                  a->n_calls,
                  a};
    return final(c, &p, done_reason(st), st, s);
}

shimmy_err oll_loaded(api_call *c, bool unloaded, api_sink *s) {
    oll_part p = {"", NULL, 0, 0, NULL, 0, NULL};
    return final(c, &p, unloaded ? "unload" : "load", NULL, s);
}
