/* api: the HTTP APIs (OpenAI-compatible now). Turns JSON into engine requests and engine events
 * into JSON; owns the route table and the error bodies. */
#ifndef SHIMMY_API_H
#define SHIMMY_API_H

#include <stddef.h>
#include <stdint.h>

#include "http/server.h"
#include "models/registry.h"

typedef struct shimmy_app {
    registry *models;   /* borrowed */
    int64_t started_ns; /* monotonic clock at start-up (core/clock.h) */
} shimmy_app;

/* The route table (static storage). */
const http_route *api_routes(size_t *n);
/* NULL-terminated path lists for http_config (static storage): paths served without an API key,
 * and paths that change the server (never cross-origin). */
const char *const *api_open_paths(void);
const char *const *api_admin_paths(void);
/* Error body in OpenAI's format for errors the HTTP layer produces itself. */
void api_error_body(const http_request *req, shimmy_err e, const char *msg, buf *out);

#endif
