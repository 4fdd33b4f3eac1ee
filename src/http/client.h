/* http/client: the few outgoing HTTP requests shimmy makes itself (shimmy discover --server),
 * through libcurl. */
#ifndef SHIMMY_HTTP_CLIENT_H
#define SHIMMY_HTTP_CLIENT_H

#include "core/buf.h"
#include "core/err.h"

/* POSTs body (may be NULL) to url and appends the response body to resp; *status gets the HTTP
 * status. Errors: ERR_IO with libcurl's reason in err (cannot resolve, connect, time out after
 * timeout_s seconds). Borrows everything. */
shimmy_err http_client_post(const char *url, const char *body, int timeout_s, buf *resp,
                            long *status, char *err, size_t errlen);

#endif
