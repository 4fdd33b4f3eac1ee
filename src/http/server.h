/* http/server: the HTTP front door on libmicrohttpd. Owns sockets, connections (one thread each),
 * TLS, the checks of who may talk to it (Host, Origin, API keys: http/guard), the HTTP framing
 * checks, body reading with per-route limits, route dispatch from a table, 400/401/403/404/405/
 * 413/501 answers, streaming responses and the detection of clients that went away. Knows nothing
 * of JSON payloads beyond the error body it is handed by the API layer. */
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

/* What a handler notes about its request, for the request log and the metrics (http_done).
 * Written by the handler and its stream function (the connection's thread); read once the
 * request has ended. Starts zeroed. */
typedef struct http_note {
    char model[128];     /* model name as asked; "" = none */
    bool model_served;   /* the model was found and loaded (bounds the metrics' labels) */
    const char *api;     /* static protocol name ("openai", "ollama", ...); NULL = none */
    int prompt_tokens;   /* tokens of the rendered prompt */
    int cached_tokens;   /* of those, reused from the KV cache */
    int output_tokens;   /* tokens generated */
    int64_t first_ns;    /* monotonic: first generated token; 0 = none */
    int64_t gen_end_ns;  /* monotonic: generation finished; 0 = did not */
    const char *outcome; /* static: "stop", "length", "error", "cancelled", ...; NULL = none */
} http_note;

typedef struct http_request {
    const char *method;     /* "GET", "POST", ... */
    const char *path;       /* URL path without the query string */
    const char *body;       /* request body (NUL-terminated), "" when none */
    size_t body_len;        /* bytes */
    http_conn *conn;        /* for http_conn_gone and http_request_arg */
    void *app;              /* the application context given to http_server_start */
    http_note *note;        /* the request's note (NULL for the error bodies of refusals) */
    const char *request_id; /* X-Request-Id (the client's when well formed, else made here) */
} http_request;

/* A finished request, as handed to http_config.on_done. Everything borrowed for the call. */
typedef struct http_done {
    const char *method;
    const char *route; /* the route table's path pattern; NULL = no route (404, refusals) */
    const char *path;  /* the path (at most 255 bytes of it) */
    int status;        /* HTTP status sent; 0 = none could be sent */
    const char *request_id;
    const char *client; /* client address ("127.0.0.1", "::1") */
    int64_t start_ns;   /* monotonic: request line read */
    int64_t end_ns;     /* monotonic: response ended (last byte queued, or the cut) */
    const http_note *note;
} http_done;

/* Called once per request that got a route or a refusal, in a connection thread, after its
 * response ended. app is http_config.app. */
typedef void (*http_done_fn)(void *app, const http_done *d);

/* Called repeatedly for a streaming response, in the connection's thread; may block (poll
 * http_conn_gone while waiting). Appends the next bytes to out. Returns 0 when more will
 * follow, 1 when this was the end (out may hold final bytes), -1 to abort the connection. */
typedef int (*http_stream_fn)(void *ctx, buf *out);
/* Called exactly once when the streaming response is finished or the client is gone. */
typedef void (*http_stream_free_fn)(void *ctx);
/* A connection handed over after "101 Switching Protocols" (WebSocket): runs in a thread of its
 * own with the connection's socket fd (blocking; not to be closed) and extra, the bytes that came
 * after the request head (borrowed for the call); returns when done, and the server closes the
 * connection (http_server_stop shuts the socket down first). Called exactly once: with fd -1 when
 * the switch could not be made, only to free ctx. */
typedef void (*http_upgrade_fn)(void *ctx, int fd, const char *extra, size_t n_extra);

/* The server hands the handler a response already set to status 200, "application/json", an
 * empty body (max LIM_RESPONSE_BYTES) and no stream; the server owns and frees the body. When
 * stream is set the body is ignored, and stream_free is called exactly once whatever happens
 * (also when the response cannot be sent at all). */
typedef struct http_response {
    int status;               /* HTTP status; 200 by default */
    const char *content_type; /* static string; "application/json" by default */
    buf body;                 /* full body for non-streaming responses */
    int retry_after_s;        /* > 0: send Retry-After */
    http_stream_fn stream;    /* non-NULL: stream instead of body */
    void *stream_ctx;
    http_stream_free_fn stream_free;
    http_upgrade_fn upgrade; /* non-NULL: answer 101 and hand the connection over */
    void *upgrade_ctx;
    const char *upgrade_headers[6]; /* name, value, ... (NULL-ended) sent with the 101; borrowed
                                     * until the handler returns */
} http_response;

/* Runs in the connection's thread; may block (poll http_conn_gone). */
typedef void (*http_handler)(const http_request *req, http_response *res);

/* Builds the error body for a status the server itself produces (404, 405, 413): the API layer
 * supplies it so that the body is in the API's own error format. Appends to out. */
typedef void (*http_error_fn)(const http_request *req, shimmy_err e, const char *msg, buf *out);

typedef struct http_route {
    const char *method; /* exact method */
    const char *path;   /* exact path, or a prefix when it ends with '*'; first match wins.
                         * GET routes also serve HEAD; OPTIONS is answered as a CORS preflight
                         * unless routed explicitly. */
    http_handler handler;
    size_t max_body; /* bytes; larger bodies get 413 */
} http_route;

typedef struct http_config {
    const char *host;         /* e.g. "127.0.0.1" */
    int port;                 /* 0 = any free port */
    const http_route *routes; /* borrowed for the server's life */
    size_t n_routes;
    http_error_fn error_body;
    void *app;
    const http_trust *trust; /* borrowed; NULL = defaults (loopback origins, no keys, no TLS) */
    const char *const *open_paths;  /* NULL-terminated exact paths served without a key (unless
                                     * trust->auth_health); NULL = none */
    const char *const *admin_paths; /* NULL-terminated exact paths that change server state: never
                                     * served to a cross-origin request, even an allowed one */
    http_done_fn on_done;           /* NULL = none */
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
/* Begins a drain: the listening socket is closed (new connections are refused by the kernel),
 * and a new request on an open keep-alive connection is answered 503 "the server is shutting
 * down" with Connection: close. Requests in flight go on. Thread-safe; idempotent. */
void http_server_drain(http_server *s);
/* Requests in flight now (read, routed and not yet answered to the end). Thread-safe. */
int http_server_inflight(http_server *s);
/* Stops accepting, closes connections, joins threads. Takes s. */
void http_server_stop(http_server *s);

/* The value of query argument name of the request (borrowed, valid during the request), or
 * NULL when absent. */
const char *http_request_arg(const http_request *req, const char *name);

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
