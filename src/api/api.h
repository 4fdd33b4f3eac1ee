/* api: the HTTP APIs: OpenAI (chat, completions, embeddings, Responses), Ollama, Anthropic
 * Messages, the shimmy WebSocket, /metrics and /health. Turns JSON into engine requests and
 * engine events into JSON (one generation path, gen.c, with a row per protocol); owns the route
 * table and the error bodies. */
#ifndef SHIMMY_API_H
#define SHIMMY_API_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/server.h"
#include "models/registry.h"

struct api_presets;

typedef struct shimmy_app {
    registry *models;     /* borrowed */
    int64_t started_ns;   /* monotonic clock at start-up (core/clock.h) */
    atomic_bool ready;    /* start-up done and not draining: GET /health?ready=1 answers 200 */
    atomic_bool draining; /* SIGTERM/SIGINT received: finishing what runs, taking nothing new */
    atomic_bool stopping; /* the drain timed out: generations still running end with an error */
    bool no_metrics;      /* --no-metrics: GET /metrics is 404 */
    struct api_presets *_Atomic presets; /* --config: per-model defaults; NULL = none;
                                          * swapped on SIGHUP (api/presets.h) */
    struct resp_store *responses;        /* owned by serve: the Responses API's store of finished
                                          * responses (api/resp_store.h); NULL = nothing stored */
} shimmy_app;

/* The route table (static storage). */
const http_route *api_routes(size_t *n);
/* NULL-terminated path lists for http_config (static storage): paths served without an API key,
 * and paths that change the server (never cross-origin). */
const char *const *api_open_paths(void);
const char *const *api_admin_paths(void);
/* http_config.on_done: counts the finished request in the metrics and writes its log line
 * (api/metrics.c). app is the shimmy_app. */
void api_request_done(void *app, const http_done *d);
/* Error body in OpenAI's format for errors the HTTP layer produces itself. */
void api_error_body(const http_request *req, shimmy_err e, const char *msg, buf *out);

#endif
