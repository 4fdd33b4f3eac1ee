/* ollama: the handlers of Ollama's HTTP API (/api/...), of the embeddings endpoints (Ollama's
 * /api/embed and /api/embeddings, OpenAI's /v1/embeddings: one engine path) and of the model
 * rescan (POST /v1/models/rescan). Parsing and formatting are in ollama_wire; this file finds
 * the model (with its Ollama layers: system prompt, params), acquires it, submits, and answers
 * with one JSON object or an NDJSON stream. Errors are {"error": "..."} with Ollama's statuses.
 * The model is released with the request's keep_alive when the response ends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api_internal.h"
#include "core/fmt.h"
#include "api/jsonw.h"
#include "api/ollama_wire.h"
#include "core/clock.h"
#include "core/limits.h"
#include "core/log.h"
#include "http/stream.h"

#ifndef SHIMMY_VERSION
#define SHIMMY_VERSION "0.0.0"
#endif

/* ---- helpers ---- */

static void reply_error(http_response *res, int status, const char *msg) {
    api_body_ready(res);
    buf_reset(&res->body);
    res->status = status;
    res->content_type = "application/json";
    if (status == 503)
        res->retry_after_s = LIM_RETRY_AFTER_S;
    if (oll_error_json(msg, &res->body) != SHIMMY_OK)
        res->status = 500;
}

static void reply_code(http_response *res, shimmy_err e, const char *msg) {
    reply_error(res, err_get(e)->http_status, msg && msg[0] ? msg : err_get(e)->message);
}

static void reply_end(http_response *res, jsonw *w) {
    if (jsonw_end(w) != SHIMMY_OK)
        reply_error(res, 500, "the response is too large");
}

static int64_t to_registry_keep(int64_t keep_ns) {
    return keep_ns == OLL_KEEP_UNSET ? REGISTRY_KEEP_DEFAULT : keep_ns;
}


static void rfc3339(int64_t t, char *out, size_t outlen) {
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void details(jsonw *w, const model_desc *d) {
    char ps[32];
    fmt_count(d->meta.n_params, ps, sizeof ps);
    jsonw_raw(w, "{\"parent_model\":\"\",\"format\":\"gguf\",\"family\":");
    jsonw_cstr(w, d->meta.arch);
    jsonw_raw(w, ",\"families\":[");
    jsonw_cstr(w, d->meta.arch);
    jsonw_raw(w, "],\"parameter_size\":");
    jsonw_cstr(w, ps);
    jsonw_raw(w, ",\"quantization_level\":");
    jsonw_cstr(w, d->meta.quant);
    jsonw_raw(w, "}");
}

/* "name","model","modified_at","size","digest","details" of one model (no braces). */
static void model_fields(jsonw *w, const model_desc *d) {
    char ts[40];
    rfc3339(d->mtime, ts, sizeof ts);
    jsonw_raw(w, "\"name\":");
    jsonw_cstr(w, d->name);
    jsonw_raw(w, ",\"model\":");
    jsonw_cstr(w, d->name);
    jsonw_raw(w, ",\"modified_at\":");
    jsonw_cstr(w, ts);
    jsonw_raw(w, ",\"size\":");
    jsonw_int(w, (int64_t)d->size_bytes);
    jsonw_raw(w, ",\"digest\":");
    jsonw_cstr(w, d->digest);
    jsonw_raw(w, ",\"details\":");
    details(w, d);
}

/* Finds the model named in the body (model or name) before the full parse, for its layers. */
static bool body_model(const http_request *req, registry *reg, model_desc *d, char *name,
                       size_t namelen) {
    json_t *root = json_loadb(req->body, req->body_len, 0, NULL);
    const char *m = json_string_value(json_object_get(root, "model"));
    if (m == NULL)
        m = json_string_value(json_object_get(root, "name"));
    snprintf(name, namelen, "%s", m ? m : "");
    json_decref(root);
    return m != NULL && registry_find(reg, name, d);
}

/* 404 for an unknown model; 501 with the reason for one found in a format this build cannot
 * serve (an MLX folder). */
static void not_found(http_response *res, registry *reg, const char *name) {
    char msg[1024];
    if (registry_lookup(reg, name, msg, sizeof msg) == ERR_UNSUPPORTED) {
        reply_code(res, ERR_UNSUPPORTED, msg);
        return;
    }
    snprintf(msg, sizeof msg, "model \"%.256s\" not found, try pulling it first (shimmy serves "
             "the models on this machine: GET /api/tags lists them)", name);
    reply_error(res, 404, msg);
}

/* ---- GET /api/version, /api/tags, /api/ps; POST /api/show ---- */

void oll_handle_version(const http_request *req, http_response *res) {
    (void)req;
    api_body_ready(res);
    buf_puts(&res->body, "{\"version\":\"" SHIMMY_VERSION "\"}");
}

void oll_handle_tags(const http_request *req, http_response *res) {
    shimmy_app *app = req->app;
    model_desc d;
    jsonw w;
    api_body_ready(res);
    jsonw_begin(&w, &res->body);
    jsonw_raw(&w, "{\"models\":[");
    for (size_t i = 0; registry_get(app->models, i, &d); i++) {
        jsonw_raw(&w, i ? ",{" : "{");
        model_fields(&w, &d);
        jsonw_raw(&w, "}");
    }
    jsonw_raw(&w, "]}");
    reply_end(res, &w);
}

/* Weights and KV cache on devices other than the CPU, bytes. */
static uint64_t vram_bytes(const engine_model_info *info) {
    uint64_t n = 0;
    for (int i = 0; i < info->n_devices && i < (int)(sizeof info->devices /
                                                     sizeof info->devices[0]); i++)
        if (strcmp(info->devices[i].backend, "CPU") != 0)
            n += info->devices[i].weight_bytes + info->devices[i].kv_bytes;
    return n;
}

void oll_handle_ps(const http_request *req, http_response *res) {
    shimmy_app *app = req->app;
    model_desc d;
    engine_model_info info;
    jsonw w;
    bool first = true;
    api_body_ready(res);
    jsonw_begin(&w, &res->body);
    jsonw_raw(&w, "{\"models\":[");
    for (size_t i = 0; registry_info(app->models, i, &d, &info); i++) {
        char ts[40];
        if (!d.loaded)
            continue;
        /* Ollama's convention for "never" is a date far in the future. */
        rfc3339(d.expires_at ? d.expires_at : 10999999999LL, ts, sizeof ts);
        jsonw_raw(&w, first ? "{" : ",{");
        first = false;
        model_fields(&w, &d);
        jsonw_raw(&w, ",\"expires_at\":");
        jsonw_cstr(&w, ts);
        jsonw_raw(&w, ",\"size_vram\":");
        jsonw_int(&w, (int64_t)vram_bytes(&info));
        jsonw_raw(&w, ",\"context_length\":");
        jsonw_int(&w, info.n_ctx_slot);
        jsonw_raw(&w, ",\"active\":");
        jsonw_int(&w, d.uses);
        jsonw_raw(&w, "}");
    }
    jsonw_raw(&w, "]}");
    reply_end(res, &w);
}

/* Ollama's "parameters" text from a params layer: one "key value" line per value. */
static void params_text(jsonw *w, const char *params_json) {
    json_t *p = params_json ? json_loads(params_json, 0, NULL) : NULL;
    buf t;
    const char *key;
    json_t *v;
    buf_init(&t, 1 << 20);
    json_object_foreach(p, key, v) {
        size_t n = json_is_array(v) ? json_array_size(v) : 1;
        for (size_t i = 0; i < n; i++) {
            char *s = json_dumps(json_is_array(v) ? json_array_get(v, i) : v, JSON_ENCODE_ANY);
            buf_printf(&t, "%s%-30s %s", t.len ? "\n" : "", key, s ? s : "");
            free(s);
        }
    }
    jsonw_str(w, buf_str(&t), t.len);
    buf_free(&t);
    json_decref(p);
}

static void model_info(jsonw *w, const model_desc *d) {
    char key[160];
    jsonw_raw(w, "{\"general.architecture\":");
    jsonw_cstr(w, d->meta.arch);
    jsonw_raw(w, ",\"general.name\":");
    jsonw_cstr(w, d->meta.name);
    jsonw_raw(w, ",\"general.parameter_count\":");
    jsonw_int(w, (int64_t)d->meta.n_params);
    jsonw_raw(w, ",\"general.file_type\":");
    jsonw_cstr(w, d->meta.quant);
    static const char *const suffix[] = {"context_length", "embedding_length", "block_count"};
    const uint32_t vals[] = {d->meta.n_ctx_train, d->meta.n_embd, d->meta.n_layer};
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof key, ",\"%.64s.%s\":", d->meta.arch, suffix[i]);
        jsonw_raw(w, key);
        jsonw_int(w, vals[i]);
    }
    jsonw_raw(w, "}");
}

static void show_body(jsonw *w, const model_desc *d, const disc_ollama_layers *l) {
    char *gguf_tmpl = NULL;
    if (l->template_text == NULL)
        gguf_meta_read_str(d->path, "tokenizer.chat_template", &gguf_tmpl);
    buf mf;
    buf_init(&mf, 1 << 20);
    buf_printf(&mf, "# Modelfile generated by shimmy for %s\nFROM %s\n", d->name, d->path);
    if (d->adapter[0])
        buf_printf(&mf, "ADAPTER %s\n", d->adapter);
    jsonw_raw(w, "{\"license\":");
    jsonw_cstr(w, l->license_text ? l->license_text : "");
    jsonw_raw(w, ",\"modelfile\":");
    jsonw_str(w, buf_str(&mf), mf.len);
    jsonw_raw(w, ",\"parameters\":");
    params_text(w, l->params_json);
    jsonw_raw(w, ",\"template\":");
    jsonw_cstr(w, l->template_text ? l->template_text : gguf_tmpl ? gguf_tmpl : "");
    if (l->system_text) {
        jsonw_raw(w, ",\"system\":");
        jsonw_cstr(w, l->system_text);
    }
    jsonw_raw(w, ",\"details\":");
    details(w, d);
    jsonw_raw(w, ",\"model_info\":");
    model_info(w, d);
    jsonw_raw(w, d->meta.is_embedding ? ",\"capabilities\":[\"embedding\"]"
                                      : ",\"capabilities\":[\"completion\"]");
    char ts[40];
    rfc3339(d->mtime, ts, sizeof ts);
    jsonw_raw(w, ",\"modified_at\":");
    jsonw_cstr(w, ts);
    jsonw_raw(w, "}");
    buf_free(&mf);
    free(gguf_tmpl);
}

void oll_handle_show(const http_request *req, http_response *res) {
    shimmy_app *app = req->app;
    model_desc d;
    char name[256];
    json_t *root = json_loadb(req->body, req->body_len, 0, NULL);
    bool ok = json_is_object(root);
    json_decref(root);
    if (!ok) {
        reply_error(res, 400, "the request body must be a JSON object with \"model\"");
        return;
    }
    if (!body_model(req, app->models, &d, name, sizeof name)) {
        if (name[0] == '\0')
            reply_error(res, 400, "model is required");
        else
            not_found(res, app->models, name);
        return;
    }
    disc_ollama_layers l;
    memset(&l, 0, sizeof l);
    if (d.manifest[0])
        disc_ollama_read_layers(d.manifest, &l);
    jsonw w;
    api_body_ready(res);
    jsonw_begin(&w, &res->body);
    show_body(&w, &d, &l);
    reply_end(res, &w);
    disc_ollama_layers_free(&l);
}

/* ---- the model management shimmy leaves to the tools that own the stores ---- */

void oll_handle_unsupported(const http_request *req, http_response *res) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s %s is not supported: shimmy serves the models already on this "
             "machine and does not download, create, copy or delete models; use ollama, "
             "huggingface-cli or LM Studio for that, then POST /v1/models/rescan",
             req->method, req->path);
    reply_error(res, 501, msg);
}

/* ---- POST /v1/models/rescan ---- */

static void name_list(jsonw *w, const char *key, char **names, size_t n) {
    jsonw_raw(w, key);
    for (size_t i = 0; i < n; i++) {
        jsonw_raw(w, i ? "," : "");
        jsonw_cstr(w, names[i]);
    }
    jsonw_raw(w, "]");
}

void oll_handle_rescan(const http_request *req, http_response *res) {
    shimmy_app *app = req->app;
    registry_changes ch;
    char err[512];
    if (registry_rescan(app->models, &ch, err, sizeof err) != SHIMMY_OK) {
        reply_error(res, 500, err);
        return;
    }
    jsonw w;
    api_body_ready(res);
    jsonw_begin(&w, &res->body);
    jsonw_raw(&w, "{\"models\":");
    jsonw_int(&w, (int64_t)ch.total);
    name_list(&w, ",\"added\":[", ch.added, ch.n_added);
    name_list(&w, ",\"removed\":[", ch.removed, ch.n_removed);
    jsonw_raw(&w, ",\"skipped\":[");
    for (size_t i = 0; i < ch.n_notes; i++) {
        jsonw_raw(&w, i ? ",{\"path\":" : "{\"path\":");
        jsonw_cstr(&w, ch.notes[i].path);
        jsonw_raw(&w, ",\"reason\":");
        jsonw_cstr(&w, ch.notes[i].why);
        jsonw_raw(&w, "}");
    }
    jsonw_raw(&w, "]}");
    reply_end(res, &w);
    registry_changes_free(&ch);
}

/* ---- /api/generate and /api/chat ---- */

typedef struct oll_gen {
    registry *reg;          /* borrowed */
    engine_model *model;    /* acquired; released in gen_free */
    gen_job *job;           /* owned */
    http_conn *conn;        /* borrowed */
    char name[256];         /* model name as the client gave it */
    bool chat;
    int64_t keep_ns;
    int64_t t_start;        /* ns, monotonic: request arrival */
    int64_t load_ns;
    buf text;               /* one wait's text; reused */
    bool ended;
} oll_gen;

static const char *done_reason(const gen_status *st) {
    return st->finish == FINISH_LENGTH ? "length" : "stop";
}


static void gen_free(void *ctx) {
    oll_gen *g = ctx;
    if (!g->ended)
        engine_job_cancel(g->job);
    engine_job_release(g->job);
    registry_release_keep(g->reg, g->model, to_registry_keep(g->keep_ns));
    buf_free(&g->text);
    free(g);
}

static int stream_end(oll_gen *g, const gen_status *st, buf *out) {
    const char *msg = NULL;
    g->ended = true;
    if (api_job_error(st, &msg) != SHIMMY_OK) {
        size_t at = out->len;
        if (oll_error_json(msg ? msg : "generation failed", out) != SHIMMY_OK)
            return -1;
        return buf_puts(out, "\n") == SHIMMY_OK || out->len > at ? 1 : -1;
    }
    oll_times t = {.total_ns = clock_mono_ns() - g->t_start, .load_ns = g->load_ns};
    return oll_final(g->name, g->chat, "", 0, done_reason(st), st, &t, true, out) == SHIMMY_OK
               ? 1
               : -1;
}

static int stream_next(void *ctx, buf *out) {
    oll_gen *g = ctx;
    size_t start = out->len;
    gen_status st;
    if (g->ended)
        return 1;
    for (;;) {
        if (http_conn_gone(g->conn))
            return -1;
        buf_reset(&g->text);
        if (engine_job_wait(g->job, LIM_DISCONNECT_POLL_MS, &g->text, &st) != SHIMMY_OK) {
            g->ended = true;
            return oll_error_json("the engine could not deliver the text", out) == SHIMMY_OK &&
                           buf_puts(out, "\n") == SHIMMY_OK
                       ? 1
                       : -1;
        }
        if (g->text.len > 0 &&
            oll_chunk(g->name, g->chat, g->text.data, g->text.len, out) != SHIMMY_OK)
            return -1;
        if (st.done)
            return stream_end(g, &st, out);
        if (out->len > start)
            return 0;
    }
}

static void reply_whole(const http_request *req, http_response *res, oll_gen *g) {
    buf all;
    gen_status st;
    const char *msg = NULL;
    shimmy_err e = SHIMMY_OK;
    buf_init(&all, LIM_RESPONSE_BYTES);
    memset(&st, 0, sizeof st);
    while (e == SHIMMY_OK && !st.done) {
        e = engine_job_wait(g->job, LIM_DISCONNECT_POLL_MS, &all, &st);
        if (e == SHIMMY_OK && !st.done && http_conn_gone(req->conn))
            e = ERR_CANCELLED;
    }
    if (e != SHIMMY_OK) {
        reply_code(res, e == ERR_TOO_LARGE ? ERR_INTERNAL : e,
                   e == ERR_TOO_LARGE ? "the response is over the size limit" : NULL);
    } else if ((e = api_job_error(&st, &msg)) != SHIMMY_OK) {
        reply_code(res, e, msg);
    } else {
        oll_times t = {.total_ns = clock_mono_ns() - g->t_start, .load_ns = g->load_ns};
        api_body_ready(res);
        if (oll_final(g->name, g->chat, buf_str(&all), all.len, done_reason(&st), &st, &t, false,
                      &res->body) != SHIMMY_OK)
            reply_error(res, 500, "the response is too large");
    }
    g->ended = true;
    buf_free(&all);
}

/* Empty prompt / messages: load the model (done_reason "load"), or unload it with keep_alive 0
 * (done_reason "unload"), as Ollama does for `ollama run` and `ollama stop`. */
static void load_or_unload(const http_request *req, http_response *res, const oll_request *r,
                           int64_t t0) {
    shimmy_app *app = req->app;
    oll_times t = {0};
    const char *reason = "load";
    if (r->keep_ns == 0) {
        registry_unload(app->models, r->model);
        reason = "unload";
    } else {
        engine_model *m;
        char err[1024];
        shimmy_err e = registry_acquire(app->models, r->model, &m, err, sizeof err);
        if (e != SHIMMY_OK) {
            reply_code(res, e, err);
            return;
        }
        t.load_ns = clock_mono_ns() - t0;
        registry_release_keep(app->models, m, to_registry_keep(r->keep_ns));
    }
    t.total_ns = clock_mono_ns() - t0;
    api_body_ready(res);
    if (oll_final(r->model, r->chat, "", 0, reason, NULL, &t, false, &res->body) != SHIMMY_OK)
        reply_error(res, 500, "out of memory");
}

/* Acquires, submits and hands over to the stream or the whole reply. */
static void run(const http_request *req, http_response *res, oll_request *r, int64_t t0) {
    shimmy_app *app = req->app;
    char err[1024] = "";
    oll_gen *g = calloc(1, sizeof *g);
    if (g == NULL) {
        reply_error(res, 500, "out of memory");
        return;
    }
    shimmy_err e = registry_acquire(app->models, r->model, &g->model, err, sizeof err);
    if (e != SHIMMY_OK) {
        reply_code(res, e, err);
        free(g);
        return;
    }
    g->load_ns = clock_mono_ns() - t0;
    e = engine_submit(g->model, &r->gen, &g->job, err, sizeof err);
    if (e != SHIMMY_OK) {
        registry_release_keep(app->models, g->model, to_registry_keep(r->keep_ns));
        reply_code(res, e, err);
        free(g);
        return;
    }
    g->reg = app->models;
    g->conn = req->conn;
    g->chat = r->chat;
    g->keep_ns = r->keep_ns;
    g->t_start = t0;
    snprintf(g->name, sizeof g->name, "%s", r->model);
    buf_init(&g->text, LIM_RESPONSE_BYTES);
    if (!r->stream) {
        reply_whole(req, res, g);
        gen_free(g);
        return;
    }
    res->status = 200;
    res->content_type = HTTP_NDJSON_CONTENT_TYPE;
    res->stream = stream_next;
    res->stream_ctx = g;
    res->stream_free = gen_free;
}

static void handle(const http_request *req, http_response *res, bool chat) {
    shimmy_app *app = req->app;
    int64_t t0 = clock_mono_ns();
    model_desc d;
    char name[256];
    disc_ollama_layers l;
    oll_request r;
    oll_error oe;
    memset(&l, 0, sizeof l);
    bool found = body_model(req, app->models, &d, name, sizeof name);
    if (found && d.manifest[0])
        disc_ollama_read_layers(d.manifest, &l);
    shimmy_err e = chat ? oll_parse_chat(req->body, req->body_len, l.params_json, &r, &oe)
                        : oll_parse_generate(req->body, req->body_len, l.params_json, &r, &oe);
    if (e != SHIMMY_OK) {
        reply_error(res, oe.status ? oe.status : 400, oe.message);
    } else if (!found) {
        not_found(res, app->models, r.model);
    } else {
        oll_request_default_system(&r, l.system_text);
        if (r.empty)
            load_or_unload(req, res, &r, t0);
        else
            run(req, res, &r, t0);
    }
    if (e == SHIMMY_OK)
        oll_request_free(&r);
    disc_ollama_layers_free(&l);
}

void oll_handle_generate(const http_request *req, http_response *res) {
    handle(req, res, false);
}

void oll_handle_chat(const http_request *req, http_response *res) { handle(req, res, true); }

/* ---- embeddings ---- */

static void write_vec(jsonw *w, const float *v, int n) {
    char num[32];
    jsonw_raw(w, "[");
    for (int i = 0; i < n; i++) {
        snprintf(num, sizeof num, i ? ",%.9g" : "%.9g", (double)v[i]);
        jsonw_raw(w, num);
    }
    jsonw_raw(w, "]");
}

static void embed_reply(jsonw *w, oll_embed_kind kind, const oll_embed_request *r,
                        const float *v, int dim, int n_tokens, const oll_times *t) {
    if (kind == OLL_EMBEDDINGS_LEGACY) {
        jsonw_raw(w, "{\"embedding\":");
        write_vec(w, v, dim);
        jsonw_raw(w, "}");
        return;
    }
    if (kind == OLL_EMBED_OPENAI) {
        jsonw_raw(w, "{\"object\":\"list\",\"data\":[");
        for (size_t i = 0; i < r->n; i++) {
            jsonw_raw(w, i ? ",{\"object\":\"embedding\",\"index\":"
                           : "{\"object\":\"embedding\",\"index\":");
            jsonw_int(w, (int64_t)i);
            jsonw_raw(w, ",\"embedding\":");
            write_vec(w, v + i * (size_t)dim, dim);
            jsonw_raw(w, "}");
        }
        jsonw_raw(w, "],\"model\":");
        jsonw_cstr(w, r->model);
        jsonw_raw(w, ",\"usage\":{\"prompt_tokens\":");
        jsonw_int(w, n_tokens);
        jsonw_raw(w, ",\"total_tokens\":");
        jsonw_int(w, n_tokens);
        jsonw_raw(w, "}}");
        return;
    }
    jsonw_raw(w, "{\"model\":");
    jsonw_cstr(w, r->model);
    jsonw_raw(w, ",\"embeddings\":[");
    for (size_t i = 0; i < r->n; i++) {
        jsonw_raw(w, i ? "," : "");
        write_vec(w, v + i * (size_t)dim, dim);
    }
    jsonw_raw(w, "],\"total_duration\":");
    jsonw_int(w, t->total_ns);
    jsonw_raw(w, ",\"load_duration\":");
    jsonw_int(w, t->load_ns);
    jsonw_raw(w, ",\"prompt_eval_count\":");
    jsonw_int(w, n_tokens);
    jsonw_raw(w, "}");
}

static void embed_error(http_response *res, oll_embed_kind kind, shimmy_err e, const char *msg,
                        const char *param) {
    if (kind == OLL_EMBED_OPENAI)
        api_reply_error(res, e, msg, param);
    else
        reply_code(res, e, msg);
}

static void embed(const http_request *req, http_response *res, oll_embed_kind kind) {
    shimmy_app *app = req->app;
    int64_t t0 = clock_mono_ns();
    oll_embed_request r;
    oll_error oe;
    if (oll_parse_embed(req->body, req->body_len, kind, &r, &oe) != SHIMMY_OK) {
        if (kind == OLL_EMBED_OPENAI)
            api_reply_error(res, ERR_BAD_PARAM, oe.message, NULL);
        else
            reply_error(res, oe.status, oe.message);
        return;
    }
    engine_model *m = NULL;
    char err[1024];
    float *v = NULL;
    int dim = 0, n_tokens = 0;
    shimmy_err e = registry_acquire(app->models, r.model, &m, err, sizeof err);
    int64_t load_ns = clock_mono_ns() - t0;
    if (e == ERR_MODEL_NOT_FOUND && kind != OLL_EMBED_OPENAI)
        not_found(res, app->models, r.model);
    else if (e != SHIMMY_OK)
        embed_error(res, kind, e, err, e == ERR_MODEL_NOT_FOUND ? "model" : NULL);
    else if ((e = engine_embed(m, r.texts, r.n, &v, &dim, &n_tokens, err, sizeof err)) !=
             SHIMMY_OK)
        embed_error(res, kind, e, err, "input");
    if (e == SHIMMY_OK) {
        oll_times t = {.total_ns = clock_mono_ns() - t0, .load_ns = load_ns};
        jsonw w;
        api_body_ready(res);
        jsonw_begin(&w, &res->body);
        embed_reply(&w, kind, &r, v, dim, n_tokens, &t);
        reply_end(res, &w);
    }
    if (m != NULL)
        registry_release_keep(app->models, m, to_registry_keep(r.keep_ns));
    free(v);
    oll_embed_request_free(&r);
}

void oll_handle_embed(const http_request *req, http_response *res) {
    embed(req, res, OLL_EMBED);
}

void oll_handle_embeddings(const http_request *req, http_response *res) {
    embed(req, res, OLL_EMBEDDINGS_LEGACY);
}

void oll_handle_v1_embeddings(const http_request *req, http_response *res) {
    embed(req, res, OLL_EMBED_OPENAI);
}
