/* http/client: the few outgoing HTTP requests shimmy makes itself (shimmy discover --server,
 * shimmy run talking to a running server), through libcurl, which is loaded (dlopen) on the first
 * request: a process that makes none never maps it. Errors of every call include ERR_IO "cannot
 * load libcurl: ..." when libcurl.so.4 is missing. */
#ifndef SHIMMY_HTTP_CLIENT_H
#define SHIMMY_HTTP_CLIENT_H

#include <signal.h>
#include <stdbool.h>

#include "core/buf.h"
#include "core/err.h"

/* POSTs body (may be NULL) to url and appends the response body to resp; *status gets the HTTP
 * status. Errors: ERR_IO with libcurl's reason in err (cannot resolve, connect, time out after
 * timeout_s seconds). Borrows everything. */
shimmy_err http_client_post(const char *url, const char *body, int timeout_s, buf *resp,
                            long *status, char *err, size_t errlen);

/* Gets each piece of a response body as it arrives (borrowed for the call); returns false to stop
 * the transfer (ERR_CANCELLED). */
typedef bool (*http_client_data_fn)(void *ctx, const char *data, size_t n);

typedef struct http_client_req {
    const char *method; /* "GET" or "POST" */
    const char *url;
    const char *body;            /* POST body (JSON), or NULL */
    const char *bearer;          /* API key sent as "Authorization: Bearer", or NULL */
    int connect_timeout_s;       /* 0 = libcurl's default */
    int timeout_s;               /* the whole transfer; 0 = none (a long stream) */
    int max_redirects;           /* redirects followed (to http(s) URLs only); 0 = none: a
                                  * redirect is the answer (its status) */
    http_client_data_fn on_data; /* NULL: the body is dropped */
    void *ctx;
    volatile sig_atomic_t *abort; /* non-NULL: the transfer stops (connection closed) soon after
                                   * *abort turns non-zero (a signal handler may set it) */
} http_client_req;

/* Sends r, streaming the response body to r->on_data; *status gets the HTTP status. Errors:
 * ERR_IO with libcurl's reason (cannot connect, timed out), ERR_CANCELLED (aborted by *abort or
 * on_data). Borrows everything; blocks the calling thread. */
shimmy_err http_client_do(const http_client_req *r, long *status, char *err, size_t errlen);

#endif
