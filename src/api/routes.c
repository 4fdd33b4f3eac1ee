/* routes: the route table of the HTTP API, the error bodies, and the small GET endpoints
 * (/v1/models, /v1/models/{id}, /health; the chat page at / and /ui/ is web.c's). The generation
 * endpoints are rows of gen.c's path. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "api/anthropic_wire.h"
#include "api/api_internal.h"
#include "api/jsonw.h"
#include "api/metrics.h"
#include "api/ollama_wire.h"
#include "api/openai_wire.h"
#include "api/web.h"
#include "api/ws.h"
#include "core/clock.h"
#include "core/limits.h"

#ifndef SHIMMY_VERSION
#define SHIMMY_VERSION "0.0.0"
#endif

/* Bodies of GET requests: none expected; a little slack for clients that send "{}". */

/* ---- helpers ---- */

/* Ollama's clients get Ollama's {"error": "..."} under /api/, Anthropic's theirs under
 * /v1/messages, everyone else OpenAI's. */
void api_error_body(const http_request *req, shimmy_err e, const char *msg, buf *out) {
    api_error ae;
    api_error_clear(&ae);
    ae.code = e;
    snprintf(ae.message, sizeof ae.message, "%s", msg != NULL ? msg : "");
    if (req != NULL && req->path != NULL && strncmp(req->path, "/api/", 5) == 0)
        oll_error_json(&ae, out);
    else if (req != NULL && req->path != NULL && strncmp(req->path, "/v1/messages", 12) == 0)
        ant_error_json(&ae, out);
    else
        oai_error_json(&ae, out);
}

static void reply_error(http_response *res, shimmy_err e, const char *msg) {
    api_error ae;
    api_fail(&ae, e, NULL, "%s", msg);
    api_reply_error(res, &oai_chat_proto, &ae);
}

static void reply_json_end(http_response *res, jsonw *w) {
    shimmy_err e = jsonw_end(w);
    if (e != SHIMMY_OK)
        reply_error(res, e, "the response is too large");
}

/* ---- /v1/models ---- */

/* The file's modification time stands for "created" (no better date is known). */
static int64_t model_created(const model_rec *d) {
    struct stat sb;
    return stat(d->path, &sb) == 0 ? (int64_t)sb.st_mtime : 0;
}

/* The aliases of the model served as name (--alias, a --config section's alias key), as
 * llama-server lists its --alias names: "aliases":[...] on the model's own entry. */
static void model_aliases(jsonw *w, registry *reg, const char *name) {
    char alias[256], model[256];
    const model_rec *d = NULL;
    int n = 0;
    jsonw_raw(w, ",\"aliases\":[");
    for (size_t i = 0; registry_alias_get(reg, i, alias, sizeof alias, model, sizeof model); i++) {
        d = NULL; /* registry_find is not called for another model's alias */
        if (strcmp(model, name) == 0 && registry_find(reg, alias, &d, NULL) &&
            strcmp(d->name, name) == 0) {
            jsonw_raw(w, n++ ? "," : "");
            jsonw_cstr(w, alias);
        }
        model_rec_unref(d);
    }
    jsonw_raw(w, "]");
}

/* OpenAI's fields, then shimmy's (docs/API.md): aliases, input_modalities ("text", and
 * "image"/"audio" when the paired projector takes them and the engine serves them) and
 * projector (the paired projector's file name, or null). */
static void model_object(jsonw *w, registry *reg, const model_rec *d) {
    bool media = engine_supports_media();
    const char *proj = strrchr(d->mmproj, '/');
    jsonw_raw(w, "{\"id\":");
    jsonw_cstr(w, d->name);
    jsonw_raw(w, ",\"object\":\"model\",\"created\":");
    jsonw_int(w, model_created(d));
    jsonw_raw(w, ",\"owned_by\":\"shimmy\"");
    model_aliases(w, reg, d->name);
    jsonw_raw(w, ",\"input_modalities\":[\"text\"");
    jsonw_raw(w, media && d->mmproj_vision ? ",\"image\"" : "");
    jsonw_raw(w, media && d->mmproj_audio ? ",\"audio\"" : "");
    jsonw_raw(w, "],\"projector\":");
    if (d->mmproj[0] != '\0')
        jsonw_cstr(w, proj != NULL ? proj + 1 : d->mmproj);
    else
        jsonw_raw(w, "null");
    jsonw_raw(w, "}");
}

static void handle_models(const http_request *req, http_response *res) {
    shimmy_app *app = req->app;
    const model_rec *d = NULL;
    jsonw w;
    jsonw_begin(&w, &res->body);
    jsonw_raw(&w, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; registry_get(app->models, i, &d, NULL); i++) {
        if (i > 0)
            jsonw_raw(&w, ",");
        model_object(&w, app->models, d);
        model_rec_unref(d);
    }
    jsonw_raw(&w, "]}");
    reply_json_end(res, &w);
}

/* GET /v1/models/{id}: the id is the rest of the path and may hold '/' and ':'. */
static void handle_model(const http_request *req, http_response *res) {
    shimmy_app *app = req->app;
    const char *id = strstr(req->path, "/models/");
    const model_rec *d = NULL;
    jsonw w;
    id = id != NULL ? id + strlen("/models/") : "";
    if (!registry_find(app->models, id, &d, NULL)) {
        char msg[1024];
        api_error ae;
        shimmy_err e = registry_lookup(app->models, id, msg, sizeof msg); /* MLX: 501 */
        api_acquire_error(&oai_chat_proto, id, e, msg, &ae);
        api_reply_error(res, &oai_chat_proto, &ae);
        return;
    }
    jsonw_begin(&w, &res->body);
    model_object(&w, app->models, d);
    model_rec_unref(d);
    reply_json_end(res, &w);
}

/* ---- /health ---- */

/* Where a loaded model is, as the engine read it back from the model (docs/GPU.md). */
static void health_model_devices(jsonw *w, const engine_model_info *info) {
    jsonw_raw(w, ",\"layers_total\":");
    jsonw_int(w, info->layers_total);
    jsonw_raw(w, ",\"layers_offloaded\":");
    jsonw_int(w, info->layers_offloaded);
    jsonw_raw(w, ",\"devices\":[");
    for (int i = 0; i < info->n_devices; i++) {
        const engine_device_use *d = &info->devices[i];
        jsonw_raw(w, i > 0 ? ",{\"name\":" : "{\"name\":");
        jsonw_cstr(w, d->name);
        jsonw_raw(w, ",\"backend\":");
        jsonw_cstr(w, d->backend);
        jsonw_raw(w, ",\"layers\":");
        jsonw_int(w, d->layers);
        jsonw_raw(w, ",\"weight_bytes\":");
        jsonw_int(w, (int64_t)d->weight_bytes);
        jsonw_raw(w, ",\"kv_bytes\":");
        jsonw_int(w, (int64_t)d->kv_bytes);
        jsonw_raw(w, "}");
    }
    jsonw_raw(w, "]");
    if (info->cache_type_k[0] != '\0') { /* what the KV cache runs with (--cache-type-k/v) */
        jsonw_raw(w, ",\"cache_type_k\":");
        jsonw_cstr(w, info->cache_type_k);
        jsonw_raw(w, ",\"cache_type_v\":");
        jsonw_cstr(w, info->cache_type_v);
        jsonw_raw(w, ",\"flash_attn\":");
        jsonw_cstr(w, info->flash_attn);
    }
}

/* Slot figures of a loaded model. */
static void health_model_info(jsonw *w, const engine_model_info *info) {
    jsonw_raw(w, ",\"slots\":");
    jsonw_int(w, info->n_parallel);
    jsonw_raw(w, ",\"active\":");
    jsonw_int(w, info->active_slots);
    jsonw_raw(w, ",\"queued\":");
    jsonw_int(w, info->queued);
    jsonw_raw(w, ",\"n_ctx\":");
    jsonw_int(w, info->n_ctx_slot);
    jsonw_raw(w, ",\"engine_pid\":");
    jsonw_int(w, info->pid);
    jsonw_raw(w, ",\"engine_crashes\":");
    jsonw_int(w, info->crashes);
    jsonw_raw(w, ",\"failed\":");
    jsonw_bool(w, info->failed);
    if (info->last_crash[0]) {
        jsonw_raw(w, ",\"last_crash\":");
        jsonw_cstr(w, info->last_crash);
    }
    jsonw_raw(w, ",\"prompt_tokens_evaluated\":");
    jsonw_int(w, info->prompt_tokens_evaluated);
    jsonw_raw(w, ",\"kv_copies\":");
    jsonw_int(w, info->kv_copies);
    jsonw_raw(w, ",\"prompt_cache\":{\"budget_bytes\":");
    jsonw_int(w, (int64_t)info->cache.budget);
    jsonw_raw(w, ",\"bytes\":");
    jsonw_int(w, (int64_t)info->cache.bytes);
    jsonw_raw(w, ",\"entries\":");
    jsonw_int(w, info->cache.entries);
    jsonw_raw(w, ",\"saves\":");
    jsonw_int(w, (int64_t)info->cache.saves);
    jsonw_raw(w, ",\"restores\":");
    jsonw_int(w, (int64_t)info->cache.restores);
    jsonw_raw(w, ",\"max_stall_ms\":");
    jsonw_int(w, info->cache.max_stall_ns / 1000000);
    jsonw_raw(w, "}");
    if (info->spec_type[0] != '\0' && strcmp(info->spec_type, "none") != 0) {
        jsonw_raw(w, ",\"speculative\":{\"type\":"); /* docs/SPECULATIVE.md */
        jsonw_cstr(w, info->spec_type);
        if (info->draft_desc[0] != '\0') {
            jsonw_raw(w, ",\"draft_model\":");
            jsonw_cstr(w, info->draft_desc);
        }
        jsonw_raw(w, ",\"draft_tokens\":");
        jsonw_int(w, info->spec_drafted);
        jsonw_raw(w, ",\"accepted_tokens\":");
        jsonw_int(w, info->spec_accepted);
        jsonw_raw(w, ",\"verify_steps\":");
        jsonw_int(w, info->spec_steps);
        char rate[64];
        snprintf(rate, sizeof rate, ",\"acceptance\":%.4f}",
                 info->spec_drafted > 0 ? (double)info->spec_accepted / (double)info->spec_drafted
                                        : 0.0);
        jsonw_raw(w, rate);
    }
    health_model_devices(w, info);
}

/* Readiness (GET /health?ready=1): "ok", or why not: "starting" (models named with --model
 * still loading), "draining" (SIGTERM), "failed" (a --model model's engine died at load 3
 * times). */
static const char *health_state(shimmy_app *app) {
    const model_rec *d = NULL;
    model_status st;
    engine_model_info info;
    if (!atomic_load(&app->ready))
        return atomic_load(&app->draining) ? "draining" : "starting";
    for (size_t i = 0; registry_info(app->models, i, &d, &st, &info); i++) {
        bool failed = strcmp(d->source, "cli") == 0 && st.loaded && info.failed;
        model_rec_unref(d);
        if (failed)
            return "failed";
    }
    return "ok";
}

static bool want_ready(const http_request *req) {
    const char *v = http_request_arg(req, "ready");
    return v != NULL && strcmp(v, "0") != 0 && strcmp(v, "false") != 0;
}

static void handle_health(const http_request *req, http_response *res) {
    shimmy_app *app = req->app;
    const model_rec *d = NULL;
    model_status st;
    engine_model_info info;
    jsonw w;
    const char *state = health_state(app);
    if (want_ready(req) && strcmp(state, "ok") != 0) {
        res->status = 503;
        res->retry_after_s = LIM_RETRY_AFTER_S;
    }
    jsonw_begin(&w, &res->body);
    jsonw_raw(&w, "{\"status\":");
    jsonw_cstr(&w, state);
    jsonw_raw(&w, ",\"ready\":");
    jsonw_bool(&w, strcmp(state, "ok") == 0);
    jsonw_raw(&w, ",\"version\":\"" SHIMMY_VERSION "\",\"uptime_s\":");
    jsonw_int(&w, (clock_mono_ns() - app->started_ns) / 1000000000);
    jsonw_raw(&w, ",\"models\":[");
    for (size_t i = 0; registry_info(app->models, i, &d, &st, &info); i++) {
        jsonw_raw(&w, i > 0 ? ",{\"name\":" : "{\"name\":");
        jsonw_cstr(&w, d->name);
        model_rec_unref(d);
        jsonw_raw(&w, ",\"loaded\":");
        jsonw_bool(&w, st.loaded);
        if (st.loading) {
            char pct[32];
            snprintf(pct, sizeof pct, ",\"load_progress\":%.3f", (double)st.load_progress);
            jsonw_raw(&w, ",\"loading\":true");
            jsonw_raw(&w, pct);
        }
        if (st.loaded)
            health_model_info(&w, &info);
        jsonw_raw(&w, "}");
    }
    jsonw_raw(&w, "]}");
    reply_json_end(res, &w);
}

/* ---- the generation endpoints: one path (gen.c), a row per protocol ---- */

static void serve_oai_chat(const http_request *req, http_response *res) {
    api_gen_serve(req, res, &oai_chat_proto);
}

static void serve_oai_completion(const http_request *req, http_response *res) {
    api_gen_serve(req, res, &oai_completion_proto);
}

static void serve_oll_generate(const http_request *req, http_response *res) {
    api_gen_serve(req, res, &oll_generate_proto);
}

static void serve_oll_chat(const http_request *req, http_response *res) {
    api_gen_serve(req, res, &oll_chat_proto);
}

static void serve_ant_messages(const http_request *req, http_response *res) {
    api_gen_serve(req, res, &ant_messages_proto);
}

static void serve_responses(const http_request *req, http_response *res) {
    api_gen_serve(req, res, &resp_proto);
}

static void serve_ant_count(const http_request *req, http_response *res) {
    api_count_serve(req, res, &ant_count_proto);
}

/* ---- the table ---- */

/* The /v1-less aliases serve clients whose base URL lacks /v1 (llama-server accepts both). */
static const http_route routes[] = {
    {"POST", "/v1/chat/completions", serve_oai_chat, LIM_BODY_BYTES},
    {"POST", "/v1/completions", serve_oai_completion, LIM_BODY_BYTES},
    {"POST", "/v1/embeddings", oll_handle_v1_embeddings, LIM_BODY_BYTES},
    {"POST", "/v1/models/rescan", oll_handle_rescan, LIM_GET_BODY_BYTES},
    {"POST", "/v1/rerank", api_handle_rerank, LIM_BODY_BYTES},
    {"POST", "/rerank", api_handle_rerank, LIM_BODY_BYTES},
    {"GET", "/v1/models", handle_models, LIM_GET_BODY_BYTES},
    {"GET", "/v1/models/*", handle_model, LIM_GET_BODY_BYTES},
    {"POST", "/v1/messages", serve_ant_messages, LIM_BODY_BYTES},
    {"POST", "/v1/messages/count_tokens", serve_ant_count, LIM_BODY_BYTES},
    {"POST", "/v1/responses", serve_responses, LIM_BODY_BYTES},
    {"POST", "/responses", serve_responses, LIM_BODY_BYTES},
    {"GET", "/v1/responses/*", resp_handle_get, LIM_GET_BODY_BYTES},
    {"DELETE", "/v1/responses/*", resp_handle_delete, LIM_GET_BODY_BYTES},
    {"GET", "/responses/*", resp_handle_get, LIM_GET_BODY_BYTES},
    {"DELETE", "/responses/*", resp_handle_delete, LIM_GET_BODY_BYTES},
    {"POST", "/chat/completions", serve_oai_chat, LIM_BODY_BYTES},
    {"POST", "/completions", serve_oai_completion, LIM_BODY_BYTES},
    {"GET", "/models", handle_models, LIM_GET_BODY_BYTES},
    {"GET", "/models/*", handle_model, LIM_GET_BODY_BYTES},
    {"GET", "/health", handle_health, LIM_GET_BODY_BYTES},
    {"POST", "/apply-template", api_handle_apply_template, LIM_BODY_BYTES},
    {"POST", "/tokenize", api_handle_tokenize, LIM_BODY_BYTES},
    {"POST", "/detokenize", api_handle_detokenize, LIM_BODY_BYTES},
    {"GET", "/v1/health", handle_health, LIM_GET_BODY_BYTES},
    {"GET", "/metrics", api_handle_metrics, LIM_GET_BODY_BYTES},
    {"POST", "/embeddings", oll_handle_v1_embeddings, LIM_BODY_BYTES},
    /* Ollama's API */
    {"GET", "/api/version", oll_handle_version, LIM_GET_BODY_BYTES},
    {"GET", "/api/tags", oll_handle_tags, LIM_GET_BODY_BYTES},
    {"POST", "/api/show", oll_handle_show, LIM_BODY_BYTES},
    {"GET", "/api/ps", oll_handle_ps, LIM_GET_BODY_BYTES},
    {"POST", "/api/generate", serve_oll_generate, LIM_BODY_BYTES},
    {"POST", "/api/chat", serve_oll_chat, LIM_BODY_BYTES},
    {"POST", "/api/embed", oll_handle_embed, LIM_BODY_BYTES},
    {"POST", "/api/embeddings", oll_handle_embeddings, LIM_BODY_BYTES},
    {"POST", "/api/pull", oll_handle_pull, LIM_GET_BODY_BYTES},
    {"POST", "/api/push", oll_handle_unsupported, LIM_BODY_BYTES},
    {"POST", "/api/create", oll_handle_unsupported, LIM_BODY_BYTES},
    {"POST", "/api/copy", oll_handle_unsupported, LIM_BODY_BYTES},
    {"DELETE", "/api/delete", oll_handle_delete, LIM_GET_BODY_BYTES},
    {"POST", "/api/blobs/*", oll_handle_unsupported, LIM_BODY_BYTES},
    {"HEAD", "/api/blobs/*", oll_handle_unsupported, LIM_GET_BODY_BYTES},
    {"GET", "/", web_handle_root, LIM_GET_BODY_BYTES},
    {"GET", "/ui/*", web_handle_asset, LIM_GET_BODY_BYTES},
    {"GET", "/ws/generate", ws_handle_generate, LIM_GET_BODY_BYTES},
    {"GET", "/ws/chat", ws_handle_chat, LIM_GET_BODY_BYTES},
};

const http_route *api_routes(size_t *n) {
    *n = sizeof routes / sizeof routes[0];
    return routes;
}

/* ---- trust (http/guard, docs/SECURITY.md) ---- */

/* Served without an API key unless --auth-health: liveness checks, and the chat page's files (a
 * browser sends no key when it loads them; the page asks for it before calling the API). */
static const char *const open_paths[] = {"/",       "/ui/app.js", "/ui/style.css",
                                         "/health", "/v1/health", NULL};
/* Change the server's state: never served to a cross-origin request, even an allowed one. */
static const char *const admin_paths[] = {
    "/v1/models/rescan", "/api/pull", "/api/push", "/api/create", "/api/copy", "/api/delete", NULL};

const char *const *api_open_paths(void) {
    return open_paths;
}

const char *const *api_admin_paths(void) {
    return admin_paths;
}
