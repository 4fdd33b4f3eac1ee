/* http/server: the HTTP front door on libmicrohttpd (see server.h).
 *
 * Contract:
 * - One thread per connection (MHD_USE_THREAD_PER_CONNECTION), so handlers and stream functions
 *   may block. Connections are capped at LIM_CONNECTIONS (LIM_CONNECTIONS_PER_IP per address) and
 *   time out after LIM_CONN_TIMEOUT_S idle seconds. MHD's own errors go to core/log.
 * - We bind the listening socket ourselves (getaddrinfo: IPv4, IPv6, names such as "localhost",
 *   IPv4 preferred when a name has both) and hand it to MHD, so that bind errors read
 *   "host:port: reason" and port 0 reports the port actually bound.
 * - Each request gets a req_ctx in MHD's con_cls: the route, the body and the http_conn. The
 *   req_ctx is reference counted: MHD's completion callback drops one reference and a streaming
 *   response holds another, so the http_conn stays valid through every stream callback.
 * - Dispatch: routes are tried in table order; a route path ending in '*' is a prefix. A path
 *   with no route for the method gets 405 with Allow; no path at all gets 404; OPTIONS on a known
 *   path gets a CORS preflight answer (204) unless the table routes OPTIONS itself. HEAD is
 *   served by GET routes (MHD drops the body). Every response carries
 *   Access-Control-Allow-Origin: *.
 * - Bodies: a request that will be refused (no route: 404, wrong method: 405, Content-Length
 *   over the route's max_body: 413) is answered before its body when there is no body, the client
 *   waits for "100 Continue", or the body is far too large; otherwise the body is read and
 *   dropped first, so that the client can read its answer (see HTTP_DISCARD_BYTES). A body that
 *   grows past max_body while arriving (chunked) is dropped the same way and answered 413; past
 *   max_body + HTTP_DISCARD_BYTES the connection is cut.
 * - Streaming: the reader calls the handler's stream function for more bytes whenever the
 *   pending bytes are drained (after a call that produced nothing it first waits up to
 *   LIM_DISCONNECT_POLL_MS for a hang-up, so a non-blocking function does not spin, and ends the
 *   stream if the client is gone); the MHD free callback calls stream_free exactly once, whether
 * the stream completed, failed, or the client went away. If no response object could be made,
 *   stream_free is called directly, still exactly once. */
#include "http/server.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "core/limits.h"
#include "core/log.h"

/* Bytes past a route's max_body that we read and drop before cutting the connection. Reading
 * the rest of a modestly oversized body lets a client that sends it regardless (no "Expect:
 * 100-continue") read its 413 cleanly; closing with unread bytes would reset the connection and
 * can destroy the answer. Bounded, so that nobody uploads forever. */
#define HTTP_DISCARD_BYTES (1024u * 1024u)
/* Longest Access-Control-Request-Headers value echoed back in a preflight answer. */
#define HTTP_CORS_HEADERS_MAX 1024
/* Allowed request headers when the preflight does not name any. */
#define HTTP_CORS_DEFAULT_HEADERS "Content-Type, Authorization"

struct http_server {
    struct MHD_Daemon *daemon;
    http_config cfg; /* copy; routes borrowed */
    int port;        /* bound port */
};

struct http_conn {
    struct MHD_Connection *mc; /* valid while the request lives */
    int fd;                    /* the connection's socket, -1 when unknown */
};

typedef struct req_ctx {
    atomic_int refs; /* MHD's con_cls + a streaming response */
    http_conn conn;
    const http_route *route; /* route for this method and path; NULL when none */
    bool path_known;         /* some route has this path */
    bool answered;           /* a response was queued */
    buf body;                /* max = route->max_body */
    shimmy_err late;         /* refused (404, 405, 413), answered once the body is read */
    uint64_t discarded;      /* bytes of an oversized body read and dropped, for the cut-off */
} req_ctx;

typedef struct stream_state {
    req_ctx *rc; /* one reference */
    http_stream_fn fn;
    void *ctx;
    http_stream_free_fn free_fn;
    buf pending; /* bytes produced by fn, not yet given to MHD */
    size_t off;  /* bytes of pending already given */
    bool done;   /* fn returned 1 */
} stream_state;

/* ---- connections ---- */

/* True when the peer has closed or reset the connection; waits up to timeout_ms for that (a
 * readable socket does not end the wait: only hang-up and errors are polled for). */
static bool conn_gone_wait(http_conn *c, int timeout_ms) {
    if (c == NULL || c->fd < 0)
        return false;
    struct pollfd p = {.fd = c->fd, .events = POLLRDHUP};
    if (poll(&p, 1, timeout_ms) <= 0)
        return false;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
        return true;
    if (!(p.revents & POLLRDHUP))
        return false;
    /* The peer shut its side. Bytes still queued (a pipelined request) mean it may yet read our
     * answer; no bytes means the close is all there is. */
    char byte;
    ssize_t n = recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return true;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

/* ---- per-request context ---- */

static req_ctx *req_new(struct MHD_Connection *mc) {
    req_ctx *rc = calloc(1, sizeof *rc);
    if (rc == NULL)
        return NULL;
    atomic_init(&rc->refs, 1);
    rc->conn.mc = mc;
    rc->conn.fd = -1;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci != NULL)
        rc->conn.fd = ci->connect_fd;
    buf_init(&rc->body, 0);
    return rc;
}

static void req_unref(req_ctx *rc) {
    if (rc == NULL || atomic_fetch_sub(&rc->refs, 1) != 1)
        return;
    buf_free(&rc->body);
    free(rc);
}

/* ---- routing ---- */

static bool route_path_match(const char *pattern, const char *path) {
    size_t n = strlen(pattern);
    if (n > 0 && pattern[n - 1] == '*')
        return strncmp(pattern, path, n - 1) == 0;
    return strcmp(pattern, path) == 0;
}

static bool route_method_match(const char *route_method, const char *method) {
    if (strcmp(route_method, method) == 0)
        return true;
    return strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0;
}

/* Finds the route for method and path; *path_known tells whether any route has the path. */
static const http_route *route_find(const http_config *cfg, const char *method, const char *path,
                                    bool *path_known) {
    *path_known = false;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const http_route *r = &cfg->routes[i];
        if (!route_path_match(r->path, path))
            continue;
        *path_known = true;
        if (route_method_match(r->method, method))
            return r;
    }
    return NULL;
}

static bool allow_has(const buf *allow, const char *method) {
    const char *s = buf_str(allow);
    size_t n = strlen(method);
    while (*s) {
        if (strncmp(s, method, n) == 0 && (s[n] == ',' || s[n] == '\0'))
            return true;
        const char *comma = strchr(s, ',');
        if (comma == NULL)
            break;
        s = comma + 1;
        while (*s == ' ')
            s++;
    }
    return false;
}

static shimmy_err allow_add(buf *allow, const char *method) {
    if (allow_has(allow, method))
        return SHIMMY_OK;
    if (allow->len > 0) {
        shimmy_err e = buf_puts(allow, ", ");
        if (e != SHIMMY_OK)
            return e;
    }
    return buf_puts(allow, method);
}

/* The methods served on path, as an Allow header value ("GET, HEAD, OPTIONS"). */
static shimmy_err route_allow(const http_config *cfg, const char *path, buf *allow) {
    shimmy_err e = SHIMMY_OK;
    for (size_t i = 0; i < cfg->n_routes && e == SHIMMY_OK; i++) {
        const http_route *r = &cfg->routes[i];
        if (!route_path_match(r->path, path))
            continue;
        e = allow_add(allow, r->method);
        if (e == SHIMMY_OK && strcmp(r->method, "GET") == 0)
            e = allow_add(allow, "HEAD");
    }
    if (e == SHIMMY_OK)
        e = allow_add(allow, "OPTIONS");
    return e;
}

/* ---- responses ---- */

static bool add_header(struct MHD_Response *r, const char *name, const char *value) {
    if (MHD_add_response_header(r, name, value) == MHD_YES)
        return true;
    log_warn("http: cannot add header %s", name);
    return false;
}

/* Queues r with the common headers, then drops our reference to it. */
static enum MHD_Result queue(struct MHD_Connection *mc, int status, struct MHD_Response *r) {
    add_header(r, "Access-Control-Allow-Origin", "*");
    enum MHD_Result ret = MHD_queue_response(mc, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Response from body, taking its memory (body is left empty). NULL on allocation failure. */
static struct MHD_Response *response_from_buf(buf *body) {
    size_t len = body->len;
    char *data = buf_take(body);
    if (data == NULL)
        return NULL;
    struct MHD_Response *r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (r == NULL)
        free(data);
    return r;
}

/* Answers with an error the server produces itself; the body comes from cfg->error_body. */
static enum MHD_Result send_error(const http_server *s, struct MHD_Connection *mc, req_ctx *rc,
                                  const char *method, const char *path, shimmy_err e,
                                  const char *allow) {
    const err_info *info = err_get(e);
    http_request req = {method, path, "", 0, rc ? &rc->conn : NULL, s->cfg.app};
    buf body;
    buf_init(&body, LIM_RESPONSE_BYTES);
    if (s->cfg.error_body != NULL)
        s->cfg.error_body(&req, e, info->message, &body);
    else
        (void)buf_printf(&body, "{\"error\":{\"message\":\"%s\",\"type\":\"%s\"}}", info->message,
                         info->name);
    struct MHD_Response *r = response_from_buf(&body);
    buf_free(&body);
    if (r == NULL)
        return MHD_NO;
    add_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (allow != NULL)
        add_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    return queue(mc, info->http_status, r);
}

static enum MHD_Result send_error_405(const http_server *s, struct MHD_Connection *mc, req_ctx *rc,
                                      const char *method, const char *path) {
    buf allow;
    buf_init(&allow, HTTP_CORS_HEADERS_MAX);
    enum MHD_Result ret = MHD_NO;
    if (route_allow(&s->cfg, path, &allow) != SHIMMY_OK)
        goto out;
    ret = send_error(s, mc, rc, method, path, ERR_METHOD, buf_str(&allow));
out:
    buf_free(&allow);
    return ret;
}

/* True when v is a plausible header list (token characters, commas, spaces). */
static bool cors_headers_ok(const char *v) {
    if (strlen(v) > HTTP_CORS_HEADERS_MAX)
        return false;
    for (const char *p = v; *p; p++)
        if (!(*p == ',' || *p == ' ' || *p == '-' || *p == '_' || *p == '.' ||
              (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return false;
    return true;
}

/* CORS preflight: 204 with the methods of the path and the headers the browser asks for (SDKs
 * send their own X- headers, so a fixed list would block them; Origin is "*" anyway). */
static enum MHD_Result send_preflight(const http_server *s, struct MHD_Connection *mc,
                                      const char *path) {
    buf allow;
    buf_init(&allow, HTTP_CORS_HEADERS_MAX);
    enum MHD_Result ret = MHD_NO;
    struct MHD_Response *r = NULL;
    if (route_allow(&s->cfg, path, &allow) != SHIMMY_OK)
        goto out;
    r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        goto out;
    const char *req_headers =
        MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Access-Control-Request-Headers");
    if (req_headers == NULL || req_headers[0] == '\0' || !cors_headers_ok(req_headers))
        req_headers = HTTP_CORS_DEFAULT_HEADERS;
    add_header(r, MHD_HTTP_HEADER_ALLOW, buf_str(&allow));
    add_header(r, "Access-Control-Allow-Methods", buf_str(&allow));
    add_header(r, "Access-Control-Allow-Headers", req_headers);
    add_header(r, "Access-Control-Max-Age", "86400");
    ret = queue(mc, MHD_HTTP_NO_CONTENT, r);
out:
    buf_free(&allow);
    return ret;
}

/* ---- streaming ---- */

static ssize_t stream_read(void *cls, uint64_t pos, char *dst, size_t max) {
    (void)pos;
    stream_state *st = cls;
    for (;;) {
        if (st->off < st->pending.len) {
            size_t n = st->pending.len - st->off;
            if (n > max)
                n = max;
            memcpy(dst, st->pending.data + st->off, n);
            st->off += n;
            if (st->off == st->pending.len) {
                buf_reset(&st->pending);
                st->off = 0;
            }
            return (ssize_t)n;
        }
        if (st->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        int rc = st->fn(st->ctx, &st->pending);
        if (rc < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (rc > 0)
            st->done = true;
        else if (st->pending.len == 0 && conn_gone_wait(&st->rc->conn, LIM_DISCONNECT_POLL_MS))
            return MHD_CONTENT_READER_END_WITH_ERROR; /* nothing to send, nobody to send to */
    }
}

static void stream_release(void *cls) {
    stream_state *st = cls;
    if (st->free_fn != NULL)
        st->free_fn(st->ctx);
    buf_free(&st->pending);
    req_unref(st->rc);
    free(st);
}

/* Builds the streaming response; takes res's stream context (stream_free is called exactly once,
 * here on failure or later from MHD's free callback). */
static struct MHD_Response *response_stream(req_ctx *rc, http_response *res) {
    stream_state *st = calloc(1, sizeof *st);
    if (st == NULL) {
        if (res->stream_free != NULL)
            res->stream_free(res->stream_ctx);
        return NULL;
    }
    atomic_fetch_add(&rc->refs, 1);
    st->rc = rc;
    st->fn = res->stream;
    st->ctx = res->stream_ctx;
    st->free_fn = res->stream_free;
    buf_init(&st->pending, LIM_RESPONSE_BYTES);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
                                                               stream_read, st, stream_release);
    if (r == NULL)
        stream_release(st);
    return r;
}

/* ---- dispatch ---- */

static enum MHD_Result send_handler_response(struct MHD_Connection *mc, req_ctx *rc,
                                             http_response *res) {
    struct MHD_Response *r = res->stream ? response_stream(rc, res) : response_from_buf(&res->body);
    if (r == NULL)
        return MHD_NO;
    const char *ct = res->content_type ? res->content_type : "application/json";
    add_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ct);
    if (res->stream) {
        add_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        if (strncasecmp(ct, "text/event-stream", 17) == 0)
            add_header(r, "X-Accel-Buffering", "no");
    }
    if (res->retry_after_s > 0) {
        char v[24];
        snprintf(v, sizeof v, "%d", res->retry_after_s);
        add_header(r, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    int status = res->status > 0 ? res->status : 200;
    return queue(mc, status, r);
}

static enum MHD_Result dispatch(const http_server *s, struct MHD_Connection *mc, req_ctx *rc,
                                const char *method, const char *path) {
    http_request req = {method, path, buf_str(&rc->body), rc->body.len, &rc->conn, s->cfg.app};
    http_response res = {.status = 200, .content_type = "application/json"};
    buf_init(&res.body, LIM_RESPONSE_BYTES);
    rc->route->handler(&req, &res);
    enum MHD_Result ret = send_handler_response(mc, rc, &res);
    buf_free(&res.body);
    return ret;
}

/* The Content-Length, 0 when absent (malformed values are left to MHD, which rejects them). */
static uint64_t content_length(struct MHD_Connection *mc) {
    const char *v =
        MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (v == NULL)
        return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno == ERANGE)
        return UINT64_MAX;
    return end == v ? 0 : (uint64_t)n;
}

static bool expects_continue(struct MHD_Connection *mc) {
    const char *v = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
    return v != NULL && strcasecmp(v, "100-continue") == 0;
}

/* Most body bytes read before the connection is cut (max_body 0 for requests without a route). */
static uint64_t read_limit(const req_ctx *rc) {
    return (uint64_t)(rc->route ? rc->route->max_body : 0) + HTTP_DISCARD_BYTES;
}

static enum MHD_Result answer_error(const http_server *s, struct MHD_Connection *mc, req_ctx *rc,
                                    const char *method, const char *path, shimmy_err e) {
    if (e == ERR_METHOD)
        return send_error_405(s, mc, rc, method, path);
    return send_error(s, mc, rc, method, path ? path : "", e, NULL);
}

/* The error for a request that no route takes, or SHIMMY_OK; path NULL: longer than any route. */
static shimmy_err request_route(const http_server *s, req_ctx *rc, const char *method,
                                const char *path) {
    if (path == NULL)
        return ERR_NOT_FOUND;
    rc->route = route_find(&s->cfg, method, path, &rc->path_known);
    if (rc->route == NULL)
        return rc->path_known ? ERR_METHOD : ERR_NOT_FOUND;
    return SHIMMY_OK;
}

/* First call for a request: route it; answer what can be answered before the body. An error
 * for a request with a body is answered at once when the client waits for "100 Continue" or the
 * body is far too large; otherwise after the body has been read and dropped. */
static enum MHD_Result request_begin(const http_server *s, struct MHD_Connection *mc,
                                     const char *method, const char *path, void **con_cls) {
    req_ctx *rc = req_new(mc);
    if (rc == NULL)
        return MHD_NO;
    *con_cls = rc;
    shimmy_err e = request_route(s, rc, method, path);
    if (e == ERR_METHOD && strcmp(method, "OPTIONS") == 0) {
        rc->answered = true;
        return send_preflight(s, mc, path);
    }
    rc->body.max = rc->route ? rc->route->max_body : 0;
    uint64_t len = content_length(mc);
    if (e == SHIMMY_OK && len > rc->body.max)
        e = ERR_TOO_LARGE;
    if (e == SHIMMY_OK)
        return MHD_YES;
    bool has_body = len > 0 || MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
                                                           MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (has_body && !expects_continue(mc) && len <= read_limit(rc)) {
        rc->late = e; /* read and drop the body, then answer */
        return MHD_YES;
    }
    rc->answered = true;
    return answer_error(s, mc, rc, method, path, e);
}

/* A piece of the body: keep it, or drop it once the request is to be refused. */
static enum MHD_Result request_upload(req_ctx *rc, const char *data, size_t *size) {
    size_t n = *size;
    *size = 0;
    if (rc->late == SHIMMY_OK) {
        shimmy_err e = buf_append(&rc->body, data, n);
        if (e == SHIMMY_OK)
            return MHD_YES;
        if (e != ERR_TOO_LARGE)
            return MHD_NO;
        rc->late = ERR_TOO_LARGE;
        n += rc->body.len;
        buf_free(&rc->body);
    }
    rc->discarded += n;
    if (rc->discarded > read_limit(rc)) {
        log_warn("http: refused request body over %llu bytes, closing the connection",
                 (unsigned long long)read_limit(rc));
        return MHD_NO;
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)version;
    const http_server *s = cls;
    char buf_path[2048]; /* no route is near this long; longer paths are answered 404 */
    size_t plen = strcspn(url, "?");
    const char *path = NULL;
    if (plen < sizeof buf_path) {
        memcpy(buf_path, url, plen);
        buf_path[plen] = '\0';
        path = buf_path;
    }

    req_ctx *rc = *con_cls;
    if (rc == NULL)
        return request_begin(s, mc, method, path, con_cls);
    if (rc->answered) {
        *upload_data_size = 0; /* MHD does not read on after an early answer; be safe anyway */
        return MHD_YES;
    }
    if (*upload_data_size > 0)
        return request_upload(rc, upload_data, upload_data_size);
    rc->answered = true;
    if (rc->late != SHIMMY_OK)
        return answer_error(s, mc, rc, method, path, rc->late);
    return dispatch(s, mc, rc, method, path);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)mc, (void)toe;
    req_unref(*con_cls);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_warn("http: %s", msg);
}

/* ---- sockets ---- */

/* host without the brackets of "[::1]", into out. */
static void host_unbracket(const char *host, char *out, size_t outlen) {
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, host, n);
    out[n] = '\0';
}

/* "host:port" or "[v6]:port" for messages. */
static void host_port_text(const char *host, int port, char *out, size_t outlen) {
    if (strchr(host, ':') != NULL)
        snprintf(out, outlen, "[%s]:%d", host, port);
    else
        snprintf(out, outlen, "%s:%d", host, port);
}

static shimmy_err resolve(const char *host, int port, struct addrinfo **res, char *err,
                          size_t errlen) {
    char where[300];
    host_port_text(host, port, where, sizeof where);
    if (port < 0 || port > 65535)
        return err_set(err, errlen, ERR_IO, "%s: invalid port", where);
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    int rc = getaddrinfo(host, service, &hints, res);
    if (rc != 0)
        return err_set(err, errlen, ERR_IO, "%s: %s", where,
                       rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    return SHIMMY_OK;
}

/* Binds (and with backlog > 0 listens on) one address; returns the fd or -1 with errno set. */
static int bind_one(const struct addrinfo *ai, int backlog) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -1;
    int one = 1;
    bool ok = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
              bind(fd, ai->ai_addr, ai->ai_addrlen) == 0;
    if (ok && backlog > 0) {
        int fl = fcntl(fd, F_GETFL);
        ok = listen(fd, backlog) == 0 && fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0;
    }
    if (!ok) {
        int saved = errno;
        close(fd);
        errno = saved;
        fd = -1;
    }
    return fd;
}

/* Binds the first address that works, IPv4 ones first ("localhost" clients often hard-code
 * 127.0.0.1, while clients that resolve the name try both families). */
static int bind_host(const char *host, int port, int backlog, char *err, size_t errlen) {
    char h[256];
    host_unbracket(host && host[0] ? host : "127.0.0.1", h, sizeof h);
    struct addrinfo *res = NULL;
    if (resolve(h, port, &res, err, errlen) != SHIMMY_OK)
        return -1;
    int fd = -1, last_errno = EADDRNOTAVAIL;
    for (int pass = 0; pass < 2 && fd < 0; pass++) {
        for (const struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
            if ((ai->ai_family == AF_INET) != (pass == 0))
                continue;
            fd = bind_one(ai, backlog);
            if (fd < 0)
                last_errno = errno;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        char where[300];
        host_port_text(h, port, where, sizeof where);
        err_set(err, errlen, ERR_IO, "%s: %s", where, strerror(last_errno));
    }
    return fd;
}

static int socket_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

/* ---- public ---- */

shimmy_err http_server_start(const http_config *cfg, http_server **out, char *err, size_t errlen) {
    shimmy_err e = SHIMMY_OK;
    *out = NULL;
    http_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    s->cfg = *cfg;
    int fd = bind_host(cfg->host, cfg->port, SOMAXCONN, err, errlen);
    if (fd < 0) {
        e = ERR_IO;
        goto out;
    }
    s->port = socket_port(fd);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)LIM_CONNECTIONS, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)LIM_CONNECTIONS_PER_IP, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)LIM_CONN_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (s->daemon == NULL) {
        /* MHD closes a listen socket it was handed, also when it fails to start. */
        char where[300];
        host_port_text(cfg->host && cfg->host[0] ? cfg->host : "127.0.0.1", s->port, where,
                       sizeof where);
        e = err_set(err, errlen, ERR_IO, "%s: cannot start the HTTP server", where);
        goto out;
    }
    *out = s;
    s = NULL;
out:
    free(s);
    return e;
}

int http_server_port(const http_server *s) {
    return s->port;
}

void http_server_stop(http_server *s) {
    if (s == NULL)
        return;
    if (s->daemon != NULL)
        MHD_stop_daemon(s->daemon);
    free(s);
}

bool http_conn_gone(http_conn *c) {
    return conn_gone_wait(c, 0);
}

bool http_port_free(const char *host, int port) {
    int fd = bind_host(host, port, 0, NULL, 0);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}
