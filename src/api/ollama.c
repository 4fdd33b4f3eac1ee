/* ollama: Ollama's HTTP API (/api/...) around the generation path: the rows of /api/generate and
 * /api/chat (api/gen.h; their parse adds the model's Ollama layers: system prompt, params, and
 * whether it has a chat template), the model listings and /api/show (template in use and its
 * capabilities), the embeddings endpoints (Ollama's /api/embed and /api/embeddings, OpenAI's
 * /v1/embeddings: one engine path) and the model rescan (POST /v1/models/rescan). A model paired
 * with a projector shows it as Ollama does: "clip" among its families, /api/show's
 * projector_info, and "vision"/"audio" capabilities (only when engine_supports_media()). Parsing
 * and formatting are in ollama_wire. Errors are {"error": "..."} with the statuses of core/err.c.
 * POST /api/pull and DELETE /api/delete: models/pull.h. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api_internal.h"
#include "api/json_in.h"
#include "api/jsonw.h"
#include "api/ollama_wire.h"
#include "api/openai_wire.h"
#include "api/presets.h"
#include "core/clock.h"
#include "core/fmt.h"
#include "core/limits.h"
#include "core/log.h"
#include "http/stream.h"
#include "models/pull.h"

#ifndef SHIMMY_VERSION
#define SHIMMY_VERSION "0.0.0"
#endif

/* ---- helpers ---- */

static void reply_error(http_response *res, shimmy_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* {"error": "..."} with the status of code. */
static void reply_error(http_response *res, shimmy_err code, const char *fmt, ...) {
    api_error e;
    va_list ap;
    api_error_clear(&e);
    e.code = code;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    api_reply_error(res, &oll_chat_proto, &e);
}

static void reply_end(http_response *res, jsonw *w) {
    if (jsonw_end(w) != SHIMMY_OK)
        reply_error(res, ERR_INTERNAL, "the response is too large");
}

static void rfc3339(int64_t t, char *out, size_t outlen) {
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void details(jsonw *w, const model_rec *d) {
    char ps[32];
    fmt_count(d->meta.n_params, ps, sizeof ps);
    jsonw_raw(w, "{\"parent_model\":\"\",\"format\":\"gguf\",\"family\":");
    jsonw_cstr(w, d->meta.arch);
    jsonw_raw(w, ",\"families\":[");
    jsonw_cstr(w, d->meta.arch);
    jsonw_raw(w, d->mmproj[0] ? ",\"clip\"" : ""); /* as Ollama lists a projector's model */
    jsonw_raw(w, "],\"parameter_size\":");
    jsonw_cstr(w, ps);
    jsonw_raw(w, ",\"quantization_level\":");
    jsonw_cstr(w, d->meta.quant);
    jsonw_raw(w, "}");
}

/* "name","model","modified_at","size","digest","details" of one model listed as name (its own,
 * or an alias) (no braces). */
static void model_fields(jsonw *w, const model_rec *d, const char *name) {
    char ts[40];
    rfc3339(d->mtime, ts, sizeof ts);
    jsonw_raw(w, "\"name\":");
    jsonw_cstr(w, name);
    jsonw_raw(w, ",\"model\":");
    jsonw_cstr(w, name);
    jsonw_raw(w, ",\"modified_at\":");
    jsonw_cstr(w, ts);
    jsonw_raw(w, ",\"size\":");
    jsonw_int(w, (int64_t)d->size_bytes);
    jsonw_raw(w, ",\"digest\":");
    jsonw_cstr(w, d->digest);
    jsonw_raw(w, ",\"details\":");
    details(w, d);
}

/* The model a body names ("model", or the older "name"); NULL when none. Borrowed from root. */
static const char *body_model(const json_t *root) {
    const char *m = json_string_value(json_object_get(root, "model"));
    return m != NULL ? m : json_string_value(json_object_get(root, "name"));
}

/* 404 for an unknown model; 501 with the reason for one found in a format this build cannot
 * serve (an MLX folder). */
static void not_found(http_response *res, registry *reg, const char *name) {
    api_error e;
    char msg[1024];
    api_error_clear(&e);
    shimmy_err code = registry_lookup(reg, name, msg, sizeof msg);
    api_acquire_error(&oll_chat_proto, name, code, msg, &e);
    api_reply_error(res, &oll_chat_proto, &e);
}

/* ---- GET /api/version, /api/tags, /api/ps; POST /api/show ---- */

void oll_handle_version(const http_request *req, http_response *res) {
    (void)req;
    buf_puts(&res->body, "{\"version\":\"" SHIMMY_VERSION "\"}");
}

void oll_handle_tags(const http_request *req, http_response *res) {
    shimmy_app *app = req->app;
    const model_rec *d = NULL;
    jsonw w;
    jsonw_begin(&w, &res->body);
    jsonw_raw(&w, "{\"models\":[");
    size_t n = 0;
    for (; registry_get(app->models, n, &d, NULL); n++) {
        jsonw_raw(&w, n ? ",{" : "{");
        model_fields(&w, d, d->name);
        jsonw_raw(&w, "}");
        model_rec_unref(d);
    }
    /* An alias is listed as a model of its own with its model's digest and details, as a copy
     * made by `ollama cp` is; one that a served name hides or whose model is gone is not. */
    char name[256], model[256];
    for (size_t i = 0; registry_alias_get(app->models, i, name, sizeof name, model, sizeof model);
         i++) {
        bool listed = registry_find(app->models, name, &d, NULL) && strcmp(d->name, model) == 0;
        if (listed) {
            jsonw_raw(&w, n++ ? ",{" : "{");
            model_fields(&w, d, name);
            jsonw_raw(&w, "}");
        }
        model_rec_unref(d);
    }
    jsonw_raw(&w, "]}");
    reply_end(res, &w);
}

/* Weights and KV cache on devices other than the CPU, bytes. */
static uint64_t vram_bytes(const engine_model_info *info) {
    uint64_t n = 0;
    for (int i = 0;
         i < info->n_devices && i < (int)(sizeof info->devices / sizeof info->devices[0]); i++)
        if (strcmp(info->devices[i].backend, "CPU") != 0)
            n += info->devices[i].weight_bytes + info->devices[i].kv_bytes;
    return n;
}

void oll_handle_ps(const http_request *req, http_response *res) {
    shimmy_app *app = req->app;
    const model_rec *d = NULL;
    model_status st;
    engine_model_info info;
    jsonw w;
    bool first = true;
    jsonw_begin(&w, &res->body);
    jsonw_raw(&w, "{\"models\":[");
    for (size_t i = 0; registry_info(app->models, i, &d, &st, &info); i++) {
        char ts[40];
        if (!st.loaded) {
            model_rec_unref(d);
            continue;
        }
        /* Ollama's convention for "never" is a date far in the future. */
        rfc3339(st.expires_at ? st.expires_at : 10999999999LL, ts, sizeof ts);
        jsonw_raw(&w, first ? "{" : ",{");
        first = false;
        model_fields(&w, d, d->name);
        model_rec_unref(d);
        jsonw_raw(&w, ",\"expires_at\":");
        jsonw_cstr(&w, ts);
        jsonw_raw(&w, ",\"size_vram\":");
        jsonw_int(&w, (int64_t)vram_bytes(&info));
        jsonw_raw(&w, ",\"context_length\":");
        jsonw_int(&w, info.n_ctx_slot);
        jsonw_raw(&w, ",\"active\":");
        jsonw_int(&w, st.uses);
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
    buf_init(&t, LIM_LAYER_BYTES);
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

static void model_info(jsonw *w, const model_rec *d) {
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

/* The template in use and what it can do, without loading the model. */
typedef struct show_tmpl {
    char *source; /* owned */
    engine_tmpl_caps caps;
} show_tmpl;

static void show_template(registry *reg, const char *name, show_tmpl *t) {
    registry_tmpl_from from = REGISTRY_TMPL_CHATML;
    char err[256];
    memset(t, 0, sizeof *t);
    if (registry_template_source(reg, name, &t->source, &from) != SHIMMY_OK)
        return;
    /* a built-in name is rendered without Jinja: neither tools nor thinking */
    if (from != REGISTRY_TMPL_BUILTIN)
        engine_template_caps(from == REGISTRY_TMPL_CHATML ? NULL : t->source, &t->caps, err,
                             sizeof err);
}

static void capabilities(jsonw *w, const model_rec *d, const engine_tmpl_caps *caps) {
    if (d->meta.is_embedding) {
        jsonw_raw(w, ",\"capabilities\":[\"embedding\"]");
        return;
    }
    jsonw_raw(w, ",\"capabilities\":[\"completion\"");
    jsonw_raw(w, caps->tools ? ",\"tools\"" : "");
    jsonw_raw(w, caps->thinking ? ",\"thinking\"" : "");
    /* the one gate: a pairing alone does not make a request with an image work */
    jsonw_raw(w, d->mmproj_vision && engine_supports_media() ? ",\"vision\"" : "");
    jsonw_raw(w, d->mmproj_audio && engine_supports_media() ? ",\"audio\"" : "");
    jsonw_raw(w, "]");
}

/* Ollama's projector_info: the projector's own metadata (read again here: it is small). */
static void projector_info(jsonw *w, const model_rec *d) {
    gguf_meta m;
    char err[600];
    if (d->mmproj[0] == '\0' || gguf_meta_read(d->mmproj, &m, err, sizeof err) != SHIMMY_OK)
        return;
    jsonw_raw(w, ",\"projector_info\":{\"general.architecture\":");
    jsonw_cstr(w, m.arch);
    jsonw_raw(w, ",\"general.parameter_count\":");
    jsonw_int(w, (int64_t)m.n_params);
    jsonw_raw(w, ",\"general.file_type\":");
    jsonw_cstr(w, m.quant);
    jsonw_raw(w, ",\"clip.projector_type\":");
    jsonw_cstr(w, m.proj_type);
    jsonw_raw(w, m.has_vision ? ",\"clip.has_vision_encoder\":true"
                              : ",\"clip.has_vision_encoder\":false");
    jsonw_raw(w, m.has_audio ? ",\"clip.has_audio_encoder\":true"
                             : ",\"clip.has_audio_encoder\":false");
    if (m.proj_dim != 0) {
        jsonw_raw(w, m.has_vision ? ",\"clip.vision.projection_dim\":"
                                  : ",\"clip.audio.projection_dim\":");
        jsonw_int(w, m.proj_dim);
    }
    jsonw_raw(w, "}");
}

static void show_body(jsonw *w, const model_rec *d, const disc_ollama_layers *l,
                      const show_tmpl *t) {
    buf mf;
    buf_init(&mf, LIM_LAYER_BYTES);
    buf_printf(&mf, "# Modelfile generated by shimmy for %s\nFROM %s\n", d->name, d->path);
    if (d->mmproj[0])
        buf_printf(&mf, "FROM %s\n", d->mmproj); /* Ollama writes a projector as a second FROM */
    if (d->adapter[0])
        buf_printf(&mf, "ADAPTER %s\n", d->adapter);
    jsonw_raw(w, "{\"license\":");
    jsonw_cstr(w, l->license_text ? l->license_text : "");
    jsonw_raw(w, ",\"modelfile\":");
    jsonw_str(w, buf_str(&mf), mf.len);
    jsonw_raw(w, ",\"parameters\":");
    params_text(w, l->params_json);
    jsonw_raw(w, ",\"template\":");
    jsonw_cstr(w, t->source ? t->source : "");
    if (l->system_text) {
        jsonw_raw(w, ",\"system\":");
        jsonw_cstr(w, l->system_text);
    }
    jsonw_raw(w, ",\"details\":");
    details(w, d);
    jsonw_raw(w, ",\"model_info\":");
    model_info(w, d);
    capabilities(w, d, &t->caps);
    projector_info(w, d);
    char ts[40];
    rfc3339(d->mtime, ts, sizeof ts);
    jsonw_raw(w, ",\"modified_at\":");
    jsonw_cstr(w, ts);
    jsonw_raw(w, "}");
    buf_free(&mf);
}

void oll_handle_show(const http_request *req, http_response *res) {
    shimmy_app *app = req->app;
    const model_rec *d = NULL;
    json_t *root = NULL;
    char msg[256];
    if (api_json_load_object(req->body, req->body_len, &root, msg, sizeof msg) != SHIMMY_OK) {
        reply_error(res, ERR_BAD_JSON, "%s", msg);
        return;
    }
    const char *name = body_model(root);
    if (name == NULL || name[0] == '\0')
        reply_error(res, ERR_BAD_PARAM, "model is required");
    else if (!registry_find(app->models, name, &d, NULL))
        not_found(res, app->models, name);
    else {
        disc_ollama_layers l;
        show_tmpl t;
        jsonw w;
        memset(&l, 0, sizeof l);
        if (d->manifest[0])
            disc_ollama_read_layers(d->manifest, &l);
        show_template(app->models, name, &t);
        jsonw_begin(&w, &res->body);
        show_body(&w, d, &l, &t);
        reply_end(res, &w);
        free(t.source);
        disc_ollama_layers_free(&l);
    }
    model_rec_unref(d);
    json_decref(root);
}

/* ---- the model management shimmy leaves to the tools that own the stores ---- */

void oll_handle_unsupported(const http_request *req, http_response *res) {
    char msg[512];
    snprintf(msg, sizeof msg,
             "%s %s is not supported: shimmy pulls models (POST /api/pull) and "
             "deletes what it pulled (DELETE /api/delete), but does not push, create or copy "
             "models; use ollama for that, then POST /v1/models/rescan",
             req->method, req->path);
    reply_error(res, ERR_NOT_IMPLEMENTED, "%s", msg);
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
        reply_error(res, ERR_IO, "%s", err);
        return;
    }
    jsonw w;
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

/* ---- /api/generate and /api/chat: rows of the generation path ---- */

/* oll_model_ctx.presets: the presets of one served name. */
typedef struct lay_ctx {
    const api_presets *presets;
    const char *model;
} lay_ctx;

static void lay(const void *ctx, gen_params *p) {
    const lay_ctx *lc = ctx;
    api_presets_apply(lc->presets, lc->model, p);
}

/* Parses a body with the model's Ollama layers (params, system prompt) and, for /api/generate,
 * whether it has a chat template. An unknown model parses without layers; the acquire answers
 * 404. */
static shimmy_err parse_row(shimmy_app *app, json_t *root, api_call *c, api_error *err, bool chat) {
    const model_rec *d = NULL;
    disc_ollama_layers l;
    oll_model_ctx m = {0};
    const char *name = body_model(root);
    memset(&l, 0, sizeof l);
    bool found = name != NULL && registry_find(app->models, name, &d, NULL);
    const api_presets *presets = atomic_load(&app->presets);
    const char *sys = found ? api_presets_system(presets, d->name) : NULL;
    if (found && d->manifest[0])
        disc_ollama_read_layers(d->manifest, &l);
    lay_ctx lc = {presets, found ? d->name : name};
    m.presets = lay;
    m.presets_ctx = &lc;
    m.params_json = l.params_json;
    m.system = sys != NULL ? sys : l.system_text; /* the presets' beats the Modelfile's SYSTEM */
    if (found && !chat)
        m.has_template = registry_has_template(app->models, name);
    shimmy_err e = chat ? oll_parse_chat(root, &m, c, err) : oll_parse_generate(root, &m, c, err);
    disc_ollama_layers_free(&l);
    model_rec_unref(d);
    return e;
}

static shimmy_err parse_generate(shimmy_app *app, json_t *root, api_call *c, api_error *err) {
    return parse_row(app, root, c, err, false);
}

static shimmy_err parse_chat(shimmy_app *app, json_t *root, api_call *c, api_error *err) {
    return parse_row(app, root, c, err, true);
}

#define OLL_NOT_FOUND                                                                              \
    {                                                                                              \
        "model \"", "\" not found, try pulling it first (shimmy serves the models on this "        \
                    "machine: GET /api/tags lists them)"                                           \
    }

/* The two rows differ only in their parse. */
#define OLL_ROW(parse_fn)                                                                          \
    {                                                                                              \
        .framing = API_FRAME_NDJSON, .content_type = HTTP_NDJSON_CONTENT_TYPE,                     \
        .not_found = OLL_NOT_FOUND, .parse = parse_fn, .free = oll_call_free, .start = oll_start,  \
        .events = oll_events, .end = oll_end, .whole = oll_whole, .loaded = oll_loaded,            \
        .error = oll_write_error,                                                                  \
    }

const api_proto oll_generate_proto = OLL_ROW(parse_generate);
const api_proto oll_chat_proto = OLL_ROW(parse_chat);

/* ---- embeddings ---- */

typedef struct embed_times {
    int64_t total_ns, load_ns;
} embed_times;

static void write_vec(jsonw *w, const float *v, int n) {
    char num[32];
    jsonw_raw(w, "[");
    for (int i = 0; i < n; i++) {
        snprintf(num, sizeof num, i ? ",%.9g" : "%.9g", (double)v[i]);
        jsonw_raw(w, num);
    }
    jsonw_raw(w, "]");
}

/* v as OpenAI's encoding_format "base64": the little-endian float32 bytes, base64, quoted. */
static void write_base64(jsonw *w, const float *v, int n) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char bytes[3];
    char quad[5] = "";
    size_t total = (size_t)n * 4, have = 0;
    jsonw_raw(w, "\"");
    for (size_t i = 0; i < total; i++) {
        uint32_t u;
        memcpy(&u, &v[i / 4], 4);
        bytes[have++] = (unsigned char)(u >> (8 * (i % 4))); /* little-endian on any host */
        if (have < 3 && i + 1 < total)
            continue;
        uint32_t x = (uint32_t)bytes[0] << 16 | (have > 1 ? (uint32_t)bytes[1] << 8 : 0) |
                     (have > 2 ? bytes[2] : 0);
        quad[0] = abc[x >> 18 & 63];
        quad[1] = abc[x >> 12 & 63];
        quad[2] = have > 1 ? abc[x >> 6 & 63] : '=';
        quad[3] = have > 2 ? abc[x & 63] : '=';
        jsonw_raw(w, quad);
        have = 0;
    }
    jsonw_raw(w, "\"");
}

static void write_openai(jsonw *w, const oll_embed_request *r, const float *v, int dim,
                         int n_tokens) {
    jsonw_raw(w, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < r->n; i++) {
        jsonw_raw(w, i ? ",{\"object\":\"embedding\",\"index\":"
                       : "{\"object\":\"embedding\",\"index\":");
        jsonw_int(w, (int64_t)i);
        jsonw_raw(w, ",\"embedding\":");
        (r->base64 ? write_base64 : write_vec)(w, v + i * (size_t)dim, dim);
        jsonw_raw(w, "}");
    }
    jsonw_raw(w, "],\"model\":");
    jsonw_cstr(w, r->model);
    jsonw_raw(w, ",\"usage\":{\"prompt_tokens\":");
    jsonw_int(w, n_tokens);
    jsonw_raw(w, ",\"total_tokens\":");
    jsonw_int(w, n_tokens);
    jsonw_raw(w, "}}");
}

static void embed_reply(jsonw *w, oll_embed_kind kind, const oll_embed_request *r, const float *v,
                        int dim, int n_tokens, const embed_times *t) {
    if (kind == OLL_EMBEDDINGS_LEGACY) {
        jsonw_raw(w, "{\"embedding\":");
        write_vec(w, v, dim);
        jsonw_raw(w, "}");
        return;
    }
    if (kind == OLL_EMBED_OPENAI) {
        write_openai(w, r, v, dim, n_tokens);
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

/* dimensions: each of the n rows of v (dim floats) keeps its first dims values, normalised
 * again, packed in place (rows of dims floats). A 400 naming dimensions when it is larger than
 * the model's size. */
static shimmy_err cut_dims(float *v, size_t n, int dim, int dims, api_error *err) {
    if (dims > dim)
        return api_fail(err, ERR_BAD_PARAM, "dimensions",
                        "dimensions %d is larger than the "
                        "model's embedding size %d",
                        dims, dim);
    for (size_t i = 0; i < n; i++) {
        float *row = v + i * (size_t)dims;
        memmove(row, v + i * (size_t)dim, (size_t)dims * sizeof *v);
        double norm = 0;
        for (int k = 0; k < dims; k++)
            norm += (double)row[k] * row[k];
        norm = norm > 0 ? sqrt(norm) : 1.0;
        for (int k = 0; k < dims; k++)
            row[k] = (float)(row[k] / norm);
    }
    return SHIMMY_OK;
}

static void embed(const http_request *req, http_response *res, oll_embed_kind kind) {
    shimmy_app *app = req->app;
    const api_proto *p = kind == OLL_EMBED_OPENAI ? &oai_chat_proto : &oll_chat_proto;
    int64_t t0 = clock_mono_ns();
    oll_embed_request r;
    api_error ae;
    if (oll_parse_embed(req->body, req->body_len, kind, &r, &ae) != SHIMMY_OK) {
        api_reply_error(res, p, &ae);
        return;
    }
    engine_model *m = NULL;
    char err[1024] = "";
    float *v = NULL;
    int dim = 0, n_tokens = 0;
    shimmy_err e = api_acquire_kind(app->models, p, r.model, false, r.num_ctx, &m, &ae);
    int64_t load_ns = clock_mono_ns() - t0;
    if (e == SHIMMY_OK && (e = engine_embed_inputs(m, r.inputs, r.n, r.truncate, &v, &dim,
                                                   &n_tokens, err, sizeof err)) != SHIMMY_OK)
        api_fail(&ae, e,
                 e == ERR_BAD_PARAM || e == ERR_CONTEXT_LENGTH
                     ? (kind == OLL_EMBEDDINGS_LEGACY ? "prompt" : "input")
                     : NULL,
                 "%s", err);
    if (e == SHIMMY_OK && r.dimensions > 0 &&
        (e = cut_dims(v, r.n, dim, r.dimensions, &ae)) == SHIMMY_OK)
        dim = r.dimensions;
    if (e == SHIMMY_OK) {
        embed_times t = {clock_mono_ns() - t0, load_ns};
        jsonw w;
        jsonw_begin(&w, &res->body);
        embed_reply(&w, kind, &r, v, dim, n_tokens, &t);
        reply_end(res, &w);
    } else {
        api_reply_error(res, p, &ae);
    }
    if (m != NULL)
        registry_release_keep(app->models, m, r.keep_ns);
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

/* ---- POST /api/pull and DELETE /api/delete (models/pull.h) ---- */

/* A pull running for one request: its thread runs pull_model and appends NDJSON lines to out;
 * the connection's stream function sends them. */
typedef struct pull_job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    buf out;                     /* lines not yet sent (guarded by mu) */
    bool done;                   /* the thread has written its last line (guarded by mu) */
    volatile sig_atomic_t abort; /* the client went away */
    char ref[1024];
    bool insecure;
    shimmy_app *app;
    http_conn *conn;
    pthread_t thread;
} pull_job;

static void pull_line(pull_job *j, json_t *obj) {
    char *s = json_dumps(obj, JSON_COMPACT);
    pthread_mutex_lock(&j->mu);
    if (s != NULL)
        http_ndjson_line(&j->out, s, strlen(s));
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    free(s);
    json_decref(obj);
}

/* Ollama's progress object: status, and for a file digest, total, completed. */
static void pull_progress_line(void *ctx, const pull_progress *p) {
    if (strcmp(p->status, "success") == 0)
        return; /* said by pull_thread once the rescan has made the model servable */
    json_t *o = json_pack("{s:s}", "status", p->status);
    if (p->digest != NULL)
        json_object_set_new(o, "digest", json_string(p->digest));
    if (p->total > 0) {
        json_object_set_new(o, "total", json_integer((json_int_t)p->total));
        json_object_set_new(o, "completed", json_integer((json_int_t)p->completed));
    }
    pull_line(ctx, o);
}

/* Makes a pulled model servable at once. */
static void pull_rescan(shimmy_app *app) {
    char err[512];
    if (registry_rescan(app->models, NULL, err, sizeof err) != SHIMMY_OK)
        log_warn("rescan after a pull: %s", err);
}

static void *pull_thread(void *arg) {
    pull_job *j = arg;
    pull_options o = {
        .insecure = j->insecure, .progress = pull_progress_line, .ctx = j, .abort = &j->abort};
    pull_result r;
    char err[2048];
    shimmy_err e = pull_model(j->ref, &o, &r, err, sizeof err);
    /* "success" only after the rescan: a client that lists the models when it reads it finds
     * the new one; an error ends the stream Ollama's way */
    if (e == SHIMMY_OK) {
        pull_rescan(j->app);
        pull_line(j, json_pack("{s:s}", "status", "success"));
    } else
        pull_line(j, json_pack("{s:s}", "error", err));
    pthread_mutex_lock(&j->mu);
    j->done = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

static int pull_stream(void *ctx, buf *out) {
    pull_job *j = ctx;
    int rc = 0;
    pthread_mutex_lock(&j->mu);
    while (j->out.len == 0 && !j->done && !http_conn_gone(j->conn)) {
        struct timespec until = clock_deadline_ms(LIM_DISCONNECT_POLL_MS);
        pthread_cond_timedwait(&j->cv, &j->mu, &until);
    }
    if (j->out.len > 0) {
        if (buf_append(out, j->out.data, j->out.len) != SHIMMY_OK)
            rc = -1;
        buf_reset(&j->out);
    } else if (j->done)
        rc = 1;
    else
        rc = -1; /* the client went away */
    pthread_mutex_unlock(&j->mu);
    return rc;
}

static void pull_free(void *ctx) {
    pull_job *j = ctx;
    j->abort = 1; /* the download stops; its temporary file stays for a resume */
    pthread_join(j->thread, NULL);
    buf_free(&j->out);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/* The model named by an /api/pull or /api/delete body ("model", or the older "name"). */
static const char *body_name(const json_t *root) {
    const char *m = json_string_value(json_object_get(root, "model"));
    return m != NULL ? m : json_string_value(json_object_get(root, "name"));
}

static void pull_once(const http_request *req, http_response *res, const char *ref, bool insecure) {
    pull_options o = {.insecure = insecure};
    pull_result r;
    char err[2048];
    shimmy_err e = pull_model(ref, &o, &r, err, sizeof err);
    if (e == ERR_UNAUTHORIZED)
        e = ERR_FORBIDDEN; /* the hub's token, not this server's key: no 401 to the client */
    if (e != SHIMMY_OK) {
        reply_error(res, e, "%s", err);
        return;
    }
    pull_rescan(req->app);
    buf_puts(&res->body, "{\"status\":\"success\"}");
}

void oll_handle_pull(const http_request *req, http_response *res) {
    json_t *root = json_loads(req->body, 0, NULL);
    const char *ref = body_name(root);
    const json_t *stream = json_object_get(root, "stream");
    bool insecure = json_is_true(json_object_get(root, "insecure"));
    if (ref == NULL || ref[0] == '\0') {
        reply_error(res, ERR_BAD_PARAM, "the body needs \"model\": the model to pull");
    } else if (pull_ref_kind(ref) == NULL) {
        reply_error(res, ERR_BAD_PARAM,
                    "'%.200s' is not a model reference: use "
                    "hf.co/ORG/REPO[:QUANT], ORG/REPO/FILE.gguf, NAME[:TAG] or "
                    "HOST[:PORT]/NAMESPACE/NAME[:TAG]",
                    ref);
    } else if (json_is_false(stream)) {
        pull_once(req, res, ref, insecure);
    } else {
        pull_job *j = calloc(1, sizeof *j);
        if (j == NULL || snprintf(j->ref, sizeof j->ref, "%s", ref) >= (int)sizeof j->ref) {
            free(j);
            reply_error(res, j ? ERR_BAD_PARAM : ERR_NOMEM, "cannot pull '%.200s'", ref);
            json_decref(root);
            return;
        }
        pthread_mutex_init(&j->mu, NULL);
        pthread_cond_init(&j->cv, NULL);
        buf_init(&j->out, LIM_RESPONSE_BYTES);
        j->insecure = insecure;
        j->app = req->app;
        j->conn = req->conn;
        if (pthread_create(&j->thread, NULL, pull_thread, j) != 0) {
            buf_free(&j->out);
            free(j);
            reply_error(res, ERR_INTERNAL, "cannot start the pull");
        } else {
            res->content_type = HTTP_NDJSON_CONTENT_TYPE;
            res->stream = pull_stream;
            res->stream_ctx = j;
            res->stream_free = pull_free;
        }
    }
    json_decref(root);
}

void oll_handle_delete(const http_request *req, http_response *res) {
    shimmy_app *app = req->app;
    json_t *root = json_loads(req->body, 0, NULL);
    const char *name = body_name(root);
    char err[2048], removed[256];
    model_status st;
    if (name == NULL || name[0] == '\0')
        reply_error(res, ERR_BAD_PARAM, "the body needs \"model\": the model to delete");
    else if (pull_remove(name, removed, sizeof removed, err, sizeof err) == SHIMMY_OK) {
        /* unloaded once its running requests end (the file stays open until then): a request
         * that just ended may still hold it for a moment, so wait a little before the rescan
         * drops it (a model still generating stays listed until a later rescan) */
        registry_unload(app->models, removed);
        int64_t end = clock_mono_ns() + (int64_t)LIM_DELETE_WAIT_MS * 1000000;
        while (registry_find(app->models, removed, NULL, &st) && (st.loaded || st.uses > 0) &&
               clock_mono_ns() < end) {
            struct timespec pause = {.tv_sec = 0, .tv_nsec = 10 * 1000000};
            nanosleep(&pause, NULL);
        }
        pull_rescan(app);
    } else if (registry_find(app->models, name, NULL, NULL))
        reply_error(res, ERR_FORBIDDEN,
                    "model '%s' was not pulled by shimmy, which deletes only "
                    "what it pulled; remove it with the tool that put it there",
                    name);
    else
        reply_error(res, ERR_MODEL_NOT_FOUND, "model '%s' not found", name);
    json_decref(root);
}
