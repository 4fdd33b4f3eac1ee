/* api/inspect: what the model sees, in llama-server's shapes, plus a "model" field to pick the
 * model (optional when one model is served).
 *   POST /apply-template  a chat-completions body -> {"prompt": "..."} (the OpenAI chat parser
 *                         reads the body, so that it renders exactly what a chat would)
 *   POST /tokenize        {"content", "add_special" (false), "parse_special" (true),
 *                         "with_pieces" (false)} -> {"tokens": [ids] | [{"id","piece"}]}
 *   POST /detokenize      {"tokens": [ids]} -> {"content": "..."}
 * Errors are OpenAI's error bodies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "api/gen.h"
#include "api/json_in.h"
#include "core/limits.h"
#include "core/utf8.h"

/* The body as a JSON object with "model" set: the one served model when the client gave none. */
static shimmy_err load_body(const http_request *req, json_t **root, api_error *err) {
    shimmy_app *app = req->app;
    char msg[256];
    if (api_json_load_object(req->body, req->body_len, root, msg, sizeof msg) != SHIMMY_OK)
        return api_fail(err, ERR_BAD_JSON, NULL, "%s", msg);
    json_t *model = api_json_opt(*root, "model");
    if (model != NULL && !json_is_string(model)) {
        json_decref(*root);
        return api_fail(err, ERR_BAD_PARAM, "model", "model must be a string");
    }
    if (model != NULL)
        return SHIMMY_OK;
    const model_rec *d = NULL;
    size_t n = registry_count(app->models);
    if (n != 1 || !registry_get(app->models, 0, &d, NULL)) {
        json_decref(*root);
        return api_fail(err, ERR_BAD_PARAM, "model",
                        "model is required: %zu models are served "
                        "(GET /v1/models lists them)",
                        n);
    }
    json_object_set_new(*root, "model", json_string(d->name));
    model_rec_unref(d);
    return SHIMMY_OK;
}

static shimmy_err acquire(const http_request *req, json_t *root, engine_model **m, api_error *err) {
    shimmy_app *app = req->app;
    const char *name = json_string_value(json_object_get(root, "model"));
    char msg[1024] = "";
    shimmy_err e = registry_acquire(app->models, name, m, msg, sizeof msg);
    return e == SHIMMY_OK ? e : api_acquire_error(&oai_chat_proto, name, e, msg, err);
}

static void reply_json(http_response *res, jsonw *w) {
    if (jsonw_end(w) != SHIMMY_OK) {
        api_error err;
        api_fail(&err, ERR_INTERNAL, NULL, "the response is over the size limit");
        api_reply_error(res, &oai_chat_proto, &err);
    }
}

/* ---- POST /apply-template ---- */

static void apply_template(const http_request *req, http_response *res, json_t *root,
                           api_error *err) {
    shimmy_app *app = req->app;
    api_call c;
    engine_model *m = NULL;
    char *prompt = NULL;
    memset(&c, 0, sizeof c);
    if (oai_chat_proto.parse(app, root, &c, err) != SHIMMY_OK)
        return;
    if (acquire(req, root, &m, err) == SHIMMY_OK) {
        char msg[512] = "", param[96] = "";
        shimmy_err e = engine_apply_template(m, c.gen.chat_json, &prompt, msg, sizeof msg, param,
                                             sizeof param);
        if (e != SHIMMY_OK)
            api_fail(err, e, param[0] ? param : NULL, "%s", msg);
        registry_release(app->models, m);
    }
    oai_chat_proto.free(&c);
    if (prompt == NULL)
        return;
    jsonw w;
    jsonw_begin(&w, &res->body);
    jsonw_raw(&w, "{\"prompt\":");
    jsonw_cstr(&w, prompt);
    jsonw_raw(&w, "}");
    reply_json(res, &w);
    free(prompt);
}

/* ---- POST /tokenize ---- */

static bool opt_bool(json_t *root, const char *key, bool def, api_error *err) {
    json_t *v = api_json_opt(root, key);
    if (v != NULL && !json_is_boolean(v))
        api_fail(err, ERR_BAD_PARAM, key, "%s must be a boolean", key);
    return v != NULL ? json_is_true(v) : def;
}

/* A piece as llama-server gives it: a string when valid UTF-8, else its bytes. */
static void piece_json(jsonw *w, const buf *p) {
    if (utf8_valid(p->data ? p->data : "", p->len)) {
        jsonw_str(w, p->data ? p->data : "", p->len);
        return;
    }
    jsonw_raw(w, "[");
    for (size_t i = 0; i < p->len; i++) {
        jsonw_raw(w, i ? "," : "");
        jsonw_int(w, (unsigned char)p->data[i]);
    }
    jsonw_raw(w, "]");
}

static void tokens_json(jsonw *w, engine_model *m, const int32_t *t, size_t n, bool pieces) {
    buf p;
    buf_init(&p, 1 << 16);
    jsonw_raw(w, "{\"tokens\":[");
    for (size_t i = 0; i < n; i++) {
        jsonw_raw(w, i ? "," : "");
        if (!pieces) {
            jsonw_int(w, t[i]);
            continue;
        }
        buf_reset(&p);
        engine_token_piece(m, t[i], &p);
        jsonw_raw(w, "{\"id\":");
        jsonw_int(w, t[i]);
        jsonw_raw(w, ",\"piece\":");
        piece_json(w, &p);
        jsonw_raw(w, "}");
    }
    jsonw_raw(w, "]}");
    buf_free(&p);
}

static void tokenize(const http_request *req, http_response *res, json_t *root, api_error *err) {
    shimmy_app *app = req->app;
    json_t *content = api_json_opt(root, "content");
    bool add_special = opt_bool(root, "add_special", false, err);
    bool parse_special = opt_bool(root, "parse_special", true, err);
    bool pieces = opt_bool(root, "with_pieces", false, err);
    if (err->code != SHIMMY_OK)
        return;
    if (content != NULL && !json_is_string(content)) {
        api_fail(err, ERR_BAD_PARAM, "content", "content must be a string");
        return;
    }
    engine_model *m;
    if (acquire(req, root, &m, err) != SHIMMY_OK)
        return;
    int32_t *t = NULL;
    size_t n = 0;
    char msg[256] = "";
    shimmy_err e = content == NULL ? SHIMMY_OK
                                   : engine_tokenize(m, json_string_value(content), add_special,
                                                     parse_special, &t, &n, msg, sizeof msg);
    if (e != SHIMMY_OK) {
        api_fail(err, e, "content", "%s", msg);
    } else {
        jsonw w;
        jsonw_begin(&w, &res->body);
        tokens_json(&w, m, t, n, pieces);
        reply_json(res, &w);
    }
    free(t);
    registry_release(app->models, m);
}

/* ---- POST /detokenize ---- */

static void detokenize(const http_request *req, http_response *res, json_t *root, api_error *err) {
    shimmy_app *app = req->app;
    json_t *tokens = api_json_opt(root, "tokens"), *v;
    size_t n = tokens != NULL ? json_array_size(tokens) : 0, i;
    if (tokens != NULL && !json_is_array(tokens)) {
        api_fail(err, ERR_BAD_PARAM, "tokens", "tokens must be an array of token ids");
        return;
    }
    int32_t *t = malloc((n ? n : 1) * sizeof *t);
    if (t == NULL) {
        api_fail(err, ERR_NOMEM, NULL, "out of memory");
        return;
    }
    json_array_foreach(tokens, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
            api_fail(err, ERR_BAD_PARAM, "tokens", "tokens[%zu] is not a token id", i);
            free(t);
            return;
        }
        t[i] = (int32_t)json_integer_value(v);
    }
    engine_model *m;
    if (acquire(req, root, &m, err) == SHIMMY_OK) {
        buf text;
        char msg[256] = "";
        buf_init(&text, LIM_RESPONSE_BYTES);
        shimmy_err e = engine_detokenize(m, t, n, &text, msg, sizeof msg);
        if (e != SHIMMY_OK) {
            api_fail(err, e, "tokens", "%s", msg);
        } else {
            jsonw w;
            jsonw_begin(&w, &res->body);
            jsonw_raw(&w, "{\"content\":");
            jsonw_str(&w, buf_str(&text), text.len);
            jsonw_raw(&w, "}");
            reply_json(res, &w);
        }
        buf_free(&text);
        registry_release(app->models, m);
    }
    free(t);
}

/* ---- the handlers ---- */

typedef void (*inspect_fn)(const http_request *, http_response *, json_t *, api_error *);

static void serve(const http_request *req, http_response *res, inspect_fn fn) {
    api_error err;
    json_t *root = NULL;
    api_error_clear(&err);
    if (load_body(req, &root, &err) == SHIMMY_OK) {
        fn(req, res, root, &err);
        json_decref(root);
    }
    if (err.code != SHIMMY_OK)
        api_reply_error(res, &oai_chat_proto, &err);
}

void api_handle_apply_template(const http_request *req, http_response *res) {
    serve(req, res, apply_template);
}

void api_handle_tokenize(const http_request *req, http_response *res) {
    serve(req, res, tokenize);
}

void api_handle_detokenize(const http_request *req, http_response *res) {
    serve(req, res, detokenize);
}
