/* http/server: the HTTP front door on libmicrohttpd. Owns sockets, connections (one thread each),
 * TLS, the checks of who may talk to it (Host, Origin, API keys: http/guard), the HTTP framing
 * checks, body reading with per-route limits, route dispatch from a table, 400/401/403/404/405/
 * 413/501 answers, streaming responses and the detection of clients that went away. Knows nothing of JSON payloads beyond
 * the error body it is handed by the API layer. */
#ifndef SHIMMY_HTTP_SERVER_H
#define SHIMMY_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "http/guard.h"

typedef struct http_server http_server;
typedef struct http_conn http_conn; /* one client connection; opaque */

typedef struct http_request {
    const char *method;     /* "GET", "POST", ... */
    const char *path;       /* URL path without the query string */
    const char *body;       /* request body (NUL-terminated), "" when none */
    size_t body_len;        /* bytes */
    http_conn *conn;        /* for http_conn_gone */
    void *app;              /* the application context given to http_server_start */
} http_request;

/* Called repeatedly for a streaming response, in the connection's thread; may block (poll
 * http_conn_gone while waiting). Appends the next bytes to out. Returns 0 when more will
 * follow, 1 when this was the end (out may hold final bytes), -1 to abort the connection. */
typedef int (*http_stream_fn)(void *ctx, buf *out);
/* Called exactly once when the streaming response is finished or the client is gone. */
typedef void (*http_stream_free_fn)(void *ctx);

/* The server hands the handler a response already set to status 200, "application/json", an
 * empty body (max LIM_RESPONSE_BYTES) and no stream; the server owns and frees the body. When
 * stream is set the body is ignored, and stream_free is called exactly once whatever happens
 * (also when the response cannot be sent at all). */
typedef struct http_response {
    int status;                 /* HTTP status; 200 by default */
    const char *content_type;   /* static string; "application/json" by default */
    buf body;                   /* full body for non-streaming responses */
    int retry_after_s;          /* > 0: send Retry-After */
    http_stream_fn stream;      /* non-NULL: stream instead of body */
    void *stream_ctx;
    http_stream_free_fn stream_free;
} http_response;

/* Runs in the connection's thread; may block (poll http_conn_gone). */
typedef void (*http_handler)(const http_request *req, http_response *res);

/* Builds the error body for a status the server itself produces (404, 405, 413): the API layer
 * supplies it so that the body is in the API's own error format. Appends to out. */
typedef void (*http_error_fn)(const http_request *req, shimmy_err e, const char *msg, buf *out);

typedef struct http_route {
    const char *method;  /* exact method */
    const char *path;    /* exact path, or a prefix when it ends with '*'; first match wins.
                          * GET routes also serve HEAD; OPTIONS is answered as a CORS preflight
                          * unless routed explicitly. */
    http_handler handler;
    size_t max_body;     /* bytes; larger bodies get 413 */
} http_route;

typedef struct http_config {
    const char *host;          /* e.g. "127.0.0.1" */
    int port;                  /* 0 = any free port */
    const http_route *routes;  /* borrowed for the server's life */
    size_t n_routes;
    http_error_fn error_body;
    void *app;
    const http_trust *trust;   /* borrowed; NULL = defaults (loopback origins, no keys, no TLS) */
    const char *const *open_paths;  /* NULL-terminated exact paths served without a key (unless
                                     * trust->auth_health); NULL = none */
    const char *const *admin_paths; /* NULL-terminated exact paths that change server state: never
                                     * served to a cross-origin request, even an allowed one */
} http_config;

/* Binds and starts serving. Errors: ERR_IO with the reason (address in use, bad host, a TLS
 * certificate or key that cannot be read or does not match, with GnuTLS's words). Returns
 * owned *out. */
shimmy_err http_server_start(const http_config *cfg, http_server **out, char *err, size_t errlen);
/* Port actually bound (useful with port 0). */
int http_server_port(const http_server *s);
/* Replaces the API keys (copied; n 0: no key needed). Thread-safe: requests already checked are
 * not affected. Errors: ERR_NOMEM (the old keys stay). */
shimmy_err http_server_set_keys(http_server *s, const char *const *keys, size_t n);
/* Stops accepting, closes connections, joins threads. Takes s. */
void http_server_stop(http_server *s);

/* True when the peer has closed or reset the connection. Non-blocking; cheap (poll on the fd).
 * Valid for the whole request, streaming callbacks included (from any thread, while the request
 * lives). http_server_stop shuts connections down, so it also turns true on shutdown. */
bool http_conn_gone(http_conn *c);

/* The value of request header name (case-insensitive; borrowed, valid during the request), or
 * NULL when absent. */
const char *http_request_header(const http_request *req, const char *name);

/* True when host:port can be bound now (for --bind auto); false when something listens there
 * or the host cannot be bound at all. */
bool http_port_free(const char *host, int port);

#endif
