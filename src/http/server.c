/* http/server: the HTTP front door on libmicrohttpd (see server.h).
 *
 * Contract:
 * - One thread per connection (MHD_USE_THREAD_PER_CONNECTION), so handlers and stream functions
 *   may block. MHD's own errors go to core/log. Plain HTTP, or HTTPS through MHD's GnuTLS support
 *   when the trust settings name a certificate and key.
 * - Connections: our own table (accept policy + connection notifications) caps them at
 *   LIM_CONNECTIONS, LIM_CONNECTIONS_PER_IP per address. At a cap a new connection shuts down the
 *   least recently used idle connection (no request in flight) instead of being refused, so idle
 *   keep-alive connections cannot lock other clients out. A connection silent on the wire for
 *   LIM_IDLE_TIMEOUT_S is closed; the timer restarts whenever a handler or a stream function
 *   returns, so time spent generating never counts.
 * - We bind the listening socket ourselves (getaddrinfo: IPv4, IPv6, names such as "localhost",
 *   IPv4 preferred when a name has both) and hand it to MHD, so that bind errors read
 *   "host:port: reason" and port 0 reports the port actually bound.
 * - Each request gets a req_ctx in MHD's con_cls (made when the request line is read, so that
 *   the raw request target can be checked): the route, the body and the http_conn. The
 *   req_ctx is reference counted: MHD's completion callback drops one reference and a streaming
 *   response holds another, so the http_conn stays valid through every stream callback.
 * - Checks before any route runs, in order: framing (a NUL, control byte or space in the request
 *   target, control bytes in headers, white space before a header's colon, a missing or
 *   repeated Host, a repeated Origin, differing Content-Length headers, Content-Length with
 *   Transfer-Encoding: 400; a Transfer-Encoding other than chunked: 501; all answered at once
 *   with Connection: close), Host (403 unless it names this server: DNS rebinding), Origin (403
 *   for a foreign origin, and for any cross-origin request to an admin path), API key (401 with
 *   WWW-Authenticate: Bearer, except the open paths). See http/guard.h and docs/SECURITY.md.
 * - Dispatch: routes are tried in table order; a route path ending in '*' is a prefix. A path
 *   with no route for the method gets 405 with Allow; no path at all gets 404; OPTIONS on a known
 *   path gets a CORS preflight answer (204) unless the table routes OPTIONS itself. HEAD is
 *   served by GET routes (MHD drops the body). CORS headers (the request's Origin echoed, Vary:
 *   Origin) are sent only to allowed origins; never "*".
 * - Bodies: a request that will be refused (401, 403, 404, 405, Content-Length over the route's
 *   max_body: 413) is answered before its body when there is no body, the client
 *   waits for "100 Continue", or the body is far too large; otherwise the body is read and
 *   dropped first, so that the client can read its answer (see LIM_DISCARD_BYTES). A body that
 *   grows past max_body while arriving (chunked) is dropped the same way and answered 413; past
 *   max_body + LIM_DISCARD_BYTES the 413 is written straight to the socket (plain HTTP: MHD
 *   cannot queue an answer in the middle of a body) and the connection is cut. A request that
 *   stalls past the idle timeout gets a 408 the same way.
 * - Streaming: the reader calls the handler's stream function for more bytes whenever the
 *   pending bytes are drained (after a call that produced nothing it first waits up to
 *   LIM_DISCONNECT_POLL_MS for a hang-up, so a non-blocking function does not spin, and ends the
 *   stream if the client is gone); the MHD free callback calls stream_free exactly once, whether
 * the stream completed, failed, or the client went away. If no response object could be made,
 *   stream_free is called directly, still exactly once. */
#include "http/server.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "core/clock.h"
#include "core/limits.h"
#include "core/log.h"

/* STR(LIM_X): a limit as a string literal. */
#define STR_(x) #x
#define STR(x) STR_(x)
/* Allowed request headers when the preflight does not name any. */
#define HTTP_CORS_DEFAULT_HEADERS "Content-Type, Authorization"

/* Slots of the connection table. */
#define HTTP_CONN_SLOTS (LIM_CONNECTIONS + LIM_CONNECTIONS_SLACK)

/* One open connection, for the caps and the eviction of idle ones. Guarded by conns_lock. */
typedef struct conn_slot {
    bool used;
    bool evicting; /* shut down by us, not yet closed by MHD */
    int fd;
    int family;           /* AF_INET or AF_INET6 */
    unsigned char ip[16]; /* client address (IPv4 in the first 4 bytes) */
    int busy;             /* requests in flight */
    int64_t last_ns;      /* monotonic time of the last request's start or end, or the accept */
} conn_slot;

struct http_server {
    struct MHD_Daemon *daemon;
    http_config cfg;  /* copy; routes borrowed */
    http_trust trust; /* copy of *cfg.trust (zero when none); strings borrowed */
    int port;         /* bound port */
    bool tls;
    char *tls_cert; /* PEM text, owned, alive while the daemon runs */
    char *tls_key;
    pthread_mutex_t keys_lock;
    guard_keys keys; /* owned; n 0 = no key needed */
    pthread_mutex_t conns_lock;
    conn_slot conns[HTTP_CONN_SLOTS];
    bool starting; /* MHD log lines are kept in start_log while starting */
    char start_log[512];
    int upgraded[HTTP_CONN_SLOTS]; /* sockets of connections handed over (101), -1 = none;
                                    * guarded by conns_lock */
    atomic_bool draining;          /* http_server_drain was called */
    int listen_fd;                 /* the listening socket, -1 once closed by a drain */
    pthread_mutex_t drain_lock;
};

struct http_conn {
    struct MHD_Connection *mc; /* valid while the request lives */
    int fd;                    /* the connection's socket, -1 when unknown */
};

typedef struct req_ctx {
    atomic_int refs;  /* MHD's con_cls + a streaming response */
    http_server *srv; /* borrowed: for the on_done record */
    http_conn conn;
    const http_route *route; /* route for this method and path; NULL when none */
    bool path_known;         /* some route has this path */
    bool begun;              /* the first handler call happened */
    bool bad_target;         /* the raw request target holds a NUL, control byte or space */
    bool busy;               /* counted as in flight on the connection's slot */
    bool answered;           /* a response was queued */
    bool close;              /* answer with Connection: close */
    buf body;                /* max = route->max_body */
    shimmy_err late;         /* refused (401, 403, 404, 405, 413), answered once the body is read */
    char late_msg[LIM_REFUSAL_MSG_BYTES]; /* its message ("" = the table's) */
    char path[256];              /* start of the path, for the error shape of raw answers */
    char cors[LIM_ORIGIN_BYTES]; /* origin to echo in Access-Control-Allow-Origin, "" = none */
    uint64_t discarded;          /* bytes of an oversized body read and dropped, for the cut-off */
    int status;                  /* HTTP status queued; 0 = none yet */
    int64_t start_ns;            /* monotonic: request line read */
    char id[LIM_REQUEST_ID_BYTES + 1]; /* X-Request-Id */
    char client[INET6_ADDRSTRLEN];     /* client address */
    http_note note;                    /* filled by the handler */
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

/* ---- the connection table ---- */

/* The client address of addr as a table key. False for other families. */
static bool addr_key(const struct sockaddr *addr, int *family, unsigned char ip[16]) {
    memset(ip, 0, 16);
    if (addr == NULL)
        return false;
    *family = addr->sa_family;
    if (addr->sa_family == AF_INET) {
        memcpy(ip, &((const struct sockaddr_in *)(const void *)addr)->sin_addr, 4);
        return true;
    }
    if (addr->sa_family == AF_INET6) {
        memcpy(ip, &((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr, 16);
        return true;
    }
    return false;
}

static bool slot_live(const conn_slot *c) {
    return c->used && !c->evicting;
}

static bool slot_same_ip(const conn_slot *c, int family, const unsigned char ip[16]) {
    return c->family == family && memcmp(c->ip, ip, 16) == 0;
}

/* Shuts down the least recently used idle connection (of that address when ip is not NULL);
 * its thread then sees the hang-up and MHD closes it. Caller holds conns_lock. False when
 * every candidate has a request in flight. */
static bool evict_idle(http_server *s, int family, const unsigned char *ip) {
    conn_slot *lru = NULL;
    for (size_t i = 0; i < HTTP_CONN_SLOTS; i++) {
        conn_slot *c = &s->conns[i];
        if (!slot_live(c) || c->busy > 0 || c->fd < 0 ||
            (ip != NULL && !slot_same_ip(c, family, ip)))
            continue;
        if (lru == NULL || c->last_ns < lru->last_ns)
            lru = c;
    }
    if (lru == NULL)
        return false;
    lru->evicting = true;
    shutdown(lru->fd, SHUT_RDWR);
    return true;
}

/* MHD's accept policy: admits a connection, making room by evicting an idle one at a cap. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
    (void)addrlen;
    http_server *s = cls;
    int family = 0;
    unsigned char ip[16];
    bool keyed = addr_key(addr, &family, ip);
    pthread_mutex_lock(&s->conns_lock);
    size_t total = 0, same = 0, free_slots = 0;
    for (size_t i = 0; i < HTTP_CONN_SLOTS; i++) {
        const conn_slot *c = &s->conns[i];
        free_slots += !c->used;
        if (!slot_live(c))
            continue;
        total++;
        same += keyed && slot_same_ip(c, family, ip);
    }
    bool ok = free_slots > 0;
    if (ok && same >= LIM_CONNECTIONS_PER_IP)
        ok = evict_idle(s, family, ip);
    else if (ok && total >= LIM_CONNECTIONS)
        ok = evict_idle(s, 0, NULL);
    pthread_mutex_unlock(&s->conns_lock);
    if (!ok)
        log_warn("http: connection refused: %zu connections open, every one busy", total);
    return ok ? MHD_YES : MHD_NO;
}

static void conn_started(http_server *s, struct MHD_Connection *mc, void **socket_context) {
    const union MHD_ConnectionInfo *fdi =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *ai =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    pthread_mutex_lock(&s->conns_lock);
    for (size_t i = 0; i < HTTP_CONN_SLOTS; i++) {
        conn_slot *c = &s->conns[i];
        if (c->used)
            continue;
        memset(c, 0, sizeof *c);
        c->used = true;
        c->fd = fdi != NULL ? fdi->connect_fd : -1;
        addr_key(ai != NULL ? ai->client_addr : NULL, &c->family, c->ip);
        c->last_ns = clock_mono_ns();
        *socket_context = c;
        break;
    }
    pthread_mutex_unlock(&s->conns_lock);
}

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    http_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_started(s, mc, socket_context);
        return;
    }
    conn_slot *c = *socket_context;
    if (c == NULL)
        return;
    pthread_mutex_lock(&s->conns_lock);
    c->used = false;
    pthread_mutex_unlock(&s->conns_lock);
    *socket_context = NULL;
}

/* Marks the connection's slot as having one more (delta 1) or one less (-1) request in flight. */
static void conn_busy(http_server *s, struct MHD_Connection *mc, int delta) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_slot *c = ci != NULL ? ci->socket_context : NULL;
    if (c == NULL)
        return;
    pthread_mutex_lock(&s->conns_lock);
    c->busy += delta;
    c->last_ns = clock_mono_ns();
    pthread_mutex_unlock(&s->conns_lock);
}

/* Restarts the connection's idle timer (MHD restarts it when the timeout is set from 0). Called
 * from the connection's own thread after a handler or stream function returns. */
static void conn_touch(struct MHD_Connection *mc) {
    MHD_set_connection_option(mc, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    MHD_set_connection_option(mc, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)LIM_IDLE_TIMEOUT_S);
}

/* ---- per-request context ---- */

/* The client's address as text into out ("" when unknown). */
static void client_text(struct MHD_Connection *mc, char *out, size_t outlen) {
    const union MHD_ConnectionInfo *ai =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *a = ai != NULL ? ai->client_addr : NULL;
    out[0] = '\0';
    if (a != NULL && a->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)a)->sin_addr, out,
                  (socklen_t)outlen);
    else if (a != NULL && a->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)a)->sin6_addr, out,
                  (socklen_t)outlen);
}

static req_ctx *req_new(http_server *s, struct MHD_Connection *mc) {
    req_ctx *rc = calloc(1, sizeof *rc);
    if (rc == NULL)
        return NULL;
    atomic_init(&rc->refs, 1);
    rc->srv = s;
    rc->conn.mc = mc;
    rc->conn.fd = -1;
    rc->start_ns = clock_mono_ns();
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci != NULL)
        rc->conn.fd = ci->connect_fd;
    client_text(mc, rc->client, sizeof rc->client);
    buf_init(&rc->body, 0);
    return rc;
}

/* Hands the finished request to cfg.on_done (requests that reached the request handler). */
static void req_record(req_ctx *rc) {
    const http_server *s = rc->srv;
    if (s == NULL || s->cfg.on_done == NULL || !rc->begun)
        return;
    http_done d = {.route = rc->route != NULL ? rc->route->path : NULL,
                   .path = rc->path,
                   .status = rc->status,
                   .request_id = rc->id,
                   .client = rc->client,
                   .start_ns = rc->start_ns,
                   .end_ns = clock_mono_ns(),
                   .note = &rc->note};
    d.method = rc->route != NULL ? rc->route->method : "";
    s->cfg.on_done(s->cfg.app, &d);
}

static void req_unref(req_ctx *rc) {
    if (rc == NULL || atomic_fetch_sub(&rc->refs, 1) != 1)
        return;
    req_record(rc);
    buf_free(&rc->body);
    free(rc);
}

/* A client's X-Request-Id is kept when it is 1 to LIM_REQUEST_ID_BYTES of [A-Za-z0-9._:-]. */
static bool request_id_ok(const char *v) {
    size_t n = v != NULL ? strlen(v) : 0;
    if (n == 0 || n > LIM_REQUEST_ID_BYTES)
        return false;
    return strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") == n;
}

/* The request's id: the client's when well formed, else 16 random hex digits. */
static void request_id(struct MHD_Connection *mc, req_ctx *rc) {
    const char *v = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "X-Request-Id");
    if (request_id_ok(v)) {
        snprintf(rc->id, sizeof rc->id, "%s", v);
        return;
    }
    static atomic_uint_fast64_t counter;
    uint64_t x = 0;
    if (getrandom(&x, sizeof x, GRND_NONBLOCK) != (ssize_t)sizeof x)
        x = (uint64_t)clock_mono_ns() ^ (atomic_fetch_add(&counter, 1) << 40);
    snprintf(rc->id, sizeof rc->id, "%016llx", (unsigned long long)x);
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

/* Queues r with the common headers (CORS for an allowed origin, Connection: close after a
 * framing error), then drops our reference to it. */
static enum MHD_Result queue(struct MHD_Connection *mc, req_ctx *rc, int status,
                             struct MHD_Response *r) {
    if (rc != NULL) {
        rc->status = status;
        if (rc->id[0] != '\0')
            add_header(r, "X-Request-Id", rc->id);
    }
    if (rc != NULL && rc->cors[0] != '\0') {
        add_header(r, "Access-Control-Allow-Origin", rc->cors);
        add_header(r, "Vary", "Origin");
    }
    if (rc != NULL && rc->close)
        add_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
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

/* The error body for e with msg (NULL or "": the table's message), in the API's format. */
static void error_body(const http_server *s, req_ctx *rc, const char *method, const char *path,
                       shimmy_err e, const char *msg, buf *body) {
    const err_info *info = err_get(e);
    http_request req = {method, path, "", 0, rc ? &rc->conn : NULL, s->cfg.app, NULL, NULL};
    if (msg == NULL || msg[0] == '\0')
        msg = info->message;
    if (s->cfg.error_body != NULL)
        s->cfg.error_body(&req, e, msg, body);
    else
        (void)buf_printf(body, "{\"error\":{\"message\":\"%s\",\"type\":\"%s\"}}", info->message,
                         info->name);
}

/* Answers with an error the server produces itself; the body comes from cfg->error_body.
 * hdr/hdr_value: one extra header (Allow, WWW-Authenticate) or NULL. */
static enum MHD_Result send_error(const http_server *s, struct MHD_Connection *mc, req_ctx *rc,
                                  const char *method, const char *path, shimmy_err e,
                                  const char *msg, const char *hdr, const char *hdr_value) {
    buf body;
    buf_init(&body, LIM_RESPONSE_BYTES);
    error_body(s, rc, method, path, e, msg, &body);
    struct MHD_Response *r = response_from_buf(&body);
    buf_free(&body);
    if (r == NULL)
        return MHD_NO;
    add_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (hdr != NULL)
        add_header(r, hdr, hdr_value);
    return queue(mc, rc, err_get(e)->http_status, r);
}

/* Writes an error answer straight to the socket, for the cases where MHD cannot queue one (in
 * the middle of a request body; a request that stalled past the idle timeout) and is about to
 * close the connection. Plain HTTP only (under TLS the bytes would have to be encrypted). */
static void send_raw_error(const http_server *s, req_ctx *rc, shimmy_err e, const char *msg) {
    if (s->tls || rc == NULL || rc->conn.fd < 0)
        return;
    buf body;
    buf_init(&body, 64 * 1024);
    error_body(s, rc, "", rc->path, e, msg, &body);
    int status = err_get(e)->http_status;
    const char *reason = MHD_get_reason_phrase_for((unsigned)status);
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n%s%s%s\r\n",
                     status, reason, body.len, rc->cors[0] ? "Access-Control-Allow-Origin: " : "",
                     rc->cors, rc->cors[0] ? "\r\nVary: Origin\r\n" : "");
    if (n > 0 && (size_t)n < sizeof head &&
        send(rc->conn.fd, head, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) == n && body.len > 0)
        (void)send(rc->conn.fd, body.data, body.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    buf_free(&body);
    rc->status = status;
    rc->answered = true;
}

static enum MHD_Result send_error_405(const http_server *s, struct MHD_Connection *mc, req_ctx *rc,
                                      const char *method, const char *path) {
    buf allow;
    buf_init(&allow, LIM_CORS_HEADERS_BYTES);
    enum MHD_Result ret = MHD_NO;
    if (route_allow(&s->cfg, path, &allow) != SHIMMY_OK)
        goto out;
    ret = send_error(s, mc, rc, method, path, ERR_METHOD, NULL, MHD_HTTP_HEADER_ALLOW,
                     buf_str(&allow));
out:
    buf_free(&allow);
    return ret;
}

/* True when v is a plausible header list (token characters, commas, spaces). */
static bool cors_headers_ok(const char *v) {
    if (strlen(v) > LIM_CORS_HEADERS_BYTES)
        return false;
    for (const char *p = v; *p; p++)
        if (!(*p == ',' || *p == ' ' || *p == '-' || *p == '_' || *p == '.' ||
              (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return false;
    return true;
}

/* CORS preflight of an allowed origin (a foreign one got 403 before): 204 with the methods of
 * the path and the headers the browser asks for (SDKs send their own X- headers, so a fixed list
 * would block them; the origin itself is what is checked). */
static enum MHD_Result send_preflight(const http_server *s, struct MHD_Connection *mc, req_ctx *rc,
                                      const char *path) {
    buf allow;
    buf_init(&allow, LIM_CORS_HEADERS_BYTES);
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
    ret = queue(mc, rc, MHD_HTTP_NO_CONTENT, r);
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
        conn_touch(st->rc->conn.mc); /* waiting for tokens is not idling */
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

/* ---- upgrades (101 Switching Protocols) ---- */

typedef struct upgrade_run {
    http_server *srv;
    http_upgrade_fn fn;
    void *ctx;
    int fd;
    char *extra; /* owned */
    size_t n_extra;
    struct MHD_UpgradeResponseHandle *urh;
} upgrade_run;

/* Notes fd as handed over (add) or done; false when the table is full. */
static bool upgraded_track(http_server *s, int fd, bool add) {
    bool ok = false;
    pthread_mutex_lock(&s->conns_lock);
    for (size_t i = 0; i < HTTP_CONN_SLOTS && !ok; i++)
        if (s->upgraded[i] == (add ? -1 : fd))
            s->upgraded[i] = add ? fd : -1, ok = true;
    pthread_mutex_unlock(&s->conns_lock);
    return ok;
}

static void *upgrade_thread(void *arg) {
    upgrade_run *u = arg;
    bool tracked = upgraded_track(u->srv, u->fd, true);
    u->fn(u->ctx, tracked ? u->fd : -1, u->extra, u->n_extra);
    if (tracked)
        upgraded_track(u->srv, u->fd, false);
    MHD_upgrade_action(u->urh, MHD_UPGRADE_ACTION_CLOSE);
    free(u->extra);
    free(u);
    return NULL;
}

/* MHD's upgrade callback: the session runs in a thread of its own. */
static void on_upgrade(void *cls, struct MHD_Connection *mc, void *req_cls, const char *extra_in,
                       size_t extra_in_size, MHD_socket sock,
                       struct MHD_UpgradeResponseHandle *urh) {
    (void)mc, (void)req_cls;
    upgrade_run *u = cls;
    pthread_t t;
    pthread_attr_t attr;
    u->fd = sock;
    u->urh = urh;
    u->extra = malloc(extra_in_size + 1);
    if (u->extra != NULL && extra_in_size > 0)
        memcpy(u->extra, extra_in, extra_in_size);
    u->n_extra = u->extra != NULL ? extra_in_size : 0;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, upgrade_thread, u) != 0) {
        u->fn(u->ctx, -1, NULL, 0);
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        free(u->extra);
        free(u);
    }
    pthread_attr_destroy(&attr);
}

static struct MHD_Response *response_upgrade(req_ctx *rc, http_response *res) {
    upgrade_run *u = calloc(1, sizeof *u);
    struct MHD_Response *r = NULL;
    if (u != NULL) {
        *u = (upgrade_run){.srv = rc->srv, .fn = res->upgrade, .ctx = res->upgrade_ctx};
        r = MHD_create_response_for_upgrade(on_upgrade, u);
    }
    if (r == NULL) {
        res->upgrade(res->upgrade_ctx, -1, NULL, 0);
        free(u);
        return NULL;
    }
    for (int i = 0; i + 1 < 6 && res->upgrade_headers[i] != NULL; i += 2)
        add_header(r, res->upgrade_headers[i], res->upgrade_headers[i + 1]);
    return r;
}

static enum MHD_Result send_handler_response(struct MHD_Connection *mc, req_ctx *rc,
                                             http_response *res) {
    if (res->upgrade != NULL) {
        struct MHD_Response *u = response_upgrade(rc, res);
        return u != NULL ? queue(mc, rc, MHD_HTTP_SWITCHING_PROTOCOLS, u) : MHD_NO;
    }
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
    return queue(mc, rc, status, r);
}

static enum MHD_Result dispatch(const http_server *s, struct MHD_Connection *mc, req_ctx *rc,
                                const char *method, const char *path) {
    http_request req = {method,    path,       buf_str(&rc->body), rc->body.len,
                        &rc->conn, s->cfg.app, &rc->note,          rc->id};
    http_response res = {.status = 200, .content_type = "application/json"};
    buf_init(&res.body, LIM_RESPONSE_BYTES);
    rc->route->handler(&req, &res);
    conn_touch(mc); /* the time the handler took is not idle time */
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
    return (uint64_t)(rc->route ? rc->route->max_body : 0) + LIM_DISCARD_BYTES;
}

static enum MHD_Result answer_error(const http_server *s, struct MHD_Connection *mc, req_ctx *rc,
                                    const char *method, const char *path, shimmy_err e,
                                    const char *msg) {
    if (e == ERR_METHOD)
        return send_error_405(s, mc, rc, method, path);
    const char *hdr = e == ERR_UNAUTHORIZED ? "WWW-Authenticate" : NULL;
    return send_error(s, mc, rc, method, path ? path : "", e, msg, hdr, "Bearer");
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

/* ---- framing checks ---- */

/* What the header scan found. */
typedef struct hdr_scan {
    int n_host, n_cl, n_te, n_origin;
    const char *cl;      /* first Content-Length value */
    bool cl_differ;      /* a later Content-Length differs from the first */
    const char *te;      /* first Transfer-Encoding value */
    const char *ctl;     /* name of a header holding a control byte, or NULL */
    const char *ws_name; /* a header name holding white space ("X-A : b"), or NULL */
} hdr_scan;

static bool has_ctl(const char *v) {
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return true;
    return false;
}

static enum MHD_Result hdr_visit(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value) {
    (void)kind;
    hdr_scan *h = cls;
    if (value == NULL)
        value = "";
    if (h->ctl == NULL && (has_ctl(key) || has_ctl(value)))
        h->ctl = key;
    if (h->ws_name == NULL && key[strcspn(key, " \t")] != '\0')
        h->ws_name = key;
    if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0)
        h->n_host++;
    else if (strcasecmp(key, MHD_HTTP_HEADER_ORIGIN) == 0)
        h->n_origin++;
    else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (h->n_cl++ == 0)
            h->cl = value;
        else if (strcmp(h->cl, value) != 0)
            h->cl_differ = true;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0 && h->n_te++ == 0)
        h->te = value;
    return MHD_YES;
}

/* Request framing that MHD 0.9.x lets through and that could smuggle or hang a request: 400 or
 * 501 with the reason in msg, or SHIMMY_OK. */
static shimmy_err check_framing(struct MHD_Connection *mc, const req_ctx *rc, const char *version,
                                char *msg, size_t msglen) {
    if (rc->bad_target)
        return err_set(msg, msglen, ERR_BAD_REQUEST,
                       "the request target holds a NUL, control character or space");
    hdr_scan h = {0};
    MHD_get_connection_values(mc, MHD_HEADER_KIND, hdr_visit, &h);
    if (h.ctl != NULL)
        return err_set(msg, msglen, ERR_BAD_REQUEST, "header '%.64s' holds a control character",
                       h.ctl);
    if (h.ws_name != NULL) /* RFC 9112 5.1: "Transfer-Encoding : chunked" smuggles */
        return err_set(msg, msglen, ERR_BAD_REQUEST,
                       "white space between the header name '%.64s' and its colon", h.ws_name);
    if (h.n_host > 1)
        return err_set(msg, msglen, ERR_BAD_REQUEST, "more than one Host header");
    if (h.n_origin > 1) /* the Origin check reads one; a browser never sends two */
        return err_set(msg, msglen, ERR_BAD_REQUEST, "more than one Origin header");
    if (h.n_host == 0 && version != NULL && strcmp(version, MHD_HTTP_VERSION_1_1) == 0)
        return err_set(msg, msglen, ERR_BAD_REQUEST, "HTTP/1.1 request without a Host header");
    if (h.cl_differ)
        return err_set(msg, msglen, ERR_BAD_REQUEST, "Content-Length headers that differ");
    if (h.n_te > 0 && h.n_cl > 0)
        return err_set(msg, msglen, ERR_BAD_REQUEST,
                       "both Content-Length and Transfer-Encoding: send one of them");
    if (h.n_te > 1 || (h.te != NULL && strcasecmp(h.te, "chunked") != 0))
        return err_set(msg, msglen, ERR_NOT_IMPLEMENTED,
                       "Transfer-Encoding '%.64s' is not supported: send the body with "
                       "Content-Length or Transfer-Encoding: chunked",
                       h.te != NULL ? h.te : "");
    return SHIMMY_OK;
}

/* ---- trust checks ---- */

static const char *header(struct MHD_Connection *mc, const char *name) {
    return MHD_lookup_connection_value(mc, MHD_HEADER_KIND, name);
}

static bool path_listed(const char *const *list, const char *path) {
    for (size_t i = 0; list != NULL && path != NULL && list[i] != NULL; i++)
        if (strcmp(list[i], path) == 0)
            return true;
    return false;
}

/* Host (DNS rebinding) and Origin (cross-site pages): 403 with the reason, or SHIMMY_OK; sets
 * rc->cors for an allowed origin. */
static shimmy_err check_origin(const http_server *s, struct MHD_Connection *mc, req_ctx *rc,
                               const char *path, char *msg, size_t msglen) {
    const char *host = header(mc, MHD_HTTP_HEADER_HOST);
    if (host != NULL && !guard_host_ok(&s->trust, host, s->cfg.host))
        return err_set(msg, msglen, ERR_FORBIDDEN,
                       "Host '%.128s' is not allowed: serve that name with --allowed-host", host);
    const char *origin = header(mc, MHD_HTTP_HEADER_ORIGIN);
    guard_origin o = guard_origin_check(&s->trust, origin, host, s->tls);
    if (o == GUARD_ORIGIN_FOREIGN)
        return err_set(msg, msglen, ERR_FORBIDDEN,
                       "cross-origin request from '%.128s' refused: allow it with --cors-origin",
                       origin);
    const char *site = header(mc, "Sec-Fetch-Site");
    if (o == GUARD_ORIGIN_NONE && site != NULL && strcasecmp(site, "cross-site") == 0)
        return err_set(msg, msglen, ERR_FORBIDDEN, "cross-site request refused");
    if (o == GUARD_ORIGIN_ALLOWED && path_listed(s->cfg.admin_paths, path))
        return err_set(msg, msglen, ERR_FORBIDDEN,
                       "%.128s changes the server and takes no cross-origin request", path);
    if ((o == GUARD_ORIGIN_ALLOWED || o == GUARD_ORIGIN_SAME) && strlen(origin) < sizeof rc->cors)
        snprintf(rc->cors, sizeof rc->cors, "%s", origin);
    return SHIMMY_OK;
}

/* The API key: 401 with the reason, or SHIMMY_OK (also when no key is configured, and for the
 * open paths unless --auth-health). */
static shimmy_err check_key(http_server *s, struct MHD_Connection *mc, const char *path, char *msg,
                            size_t msglen) {
    if (!s->trust.auth_health && path_listed(s->cfg.open_paths, path))
        return SHIMMY_OK;
    pthread_mutex_lock(&s->keys_lock);
    bool need = s->keys.n > 0;
    const char *key =
        guard_presented_key(header(mc, MHD_HTTP_HEADER_AUTHORIZATION), header(mc, "x-api-key"));
    bool ok = !need || guard_key_ok((const char *const *)s->keys.keys, s->keys.n, key);
    pthread_mutex_unlock(&s->keys_lock);
    if (ok)
        return SHIMMY_OK;
    if (key == NULL)
        return err_set(msg, msglen, ERR_UNAUTHORIZED,
                       "missing API key: send the header 'Authorization: Bearer KEY'");
    return err_set(msg, msglen, ERR_UNAUTHORIZED, "invalid API key");
}

/* ---- requests ---- */

/* Every check in order; SHIMMY_OK when the request may go to its route. OPTIONS preflights of a
 * known path come back as ERR_METHOD with *preflight set. */
static shimmy_err request_check(http_server *s, struct MHD_Connection *mc, req_ctx *rc,
                                const char *method, const char *path, const char *version,
                                bool *preflight, char *msg, size_t msglen) {
    shimmy_err e = check_framing(mc, rc, version, msg, msglen);
    if (e == SHIMMY_OK && atomic_load(&s->draining))
        e = err_set(msg, msglen, ERR_SHUTTING_DOWN, "the server is shutting down");
    if (e != SHIMMY_OK) {
        rc->close = true;
        return e;
    }
    e = check_origin(s, mc, rc, path, msg, msglen);
    if (e != SHIMMY_OK)
        return e;
    e = request_route(s, rc, method, path);
    if (e == ERR_METHOD && strcmp(method, "OPTIONS") == 0) {
        *preflight = true;
        return e;
    }
    shimmy_err ek = check_key(s, mc, path, msg, msglen);
    if (ek != SHIMMY_OK)
        return ek;
    if (e != SHIMMY_OK)
        msg[0] = '\0';
    return e;
}

/* First call for a request: check and route it; answer what can be answered before the body.
 * A framing error is answered at once (the body cannot be trusted). Another error for a request
 * with a body is answered at once when the client waits for "100 Continue" or the body is far
 * too large; otherwise after the body has been read and dropped. */
static enum MHD_Result request_begin(http_server *s, struct MHD_Connection *mc, const char *method,
                                     const char *path, const char *version, void **con_cls) {
    req_ctx *rc = *con_cls;
    if (rc == NULL && (rc = req_new(s, mc)) == NULL)
        return MHD_NO;
    *con_cls = rc;
    rc->begun = true;
    rc->busy = true;
    conn_busy(s, mc, 1);
    request_id(mc, rc);
    size_t pn = path != NULL ? strnlen(path, sizeof rc->path - 1) : 0;
    memcpy(rc->path, path != NULL ? path : "", pn);
    rc->path[pn] = '\0';
    char msg[LIM_REFUSAL_MSG_BYTES] = "";
    bool preflight = false;
    shimmy_err e = request_check(s, mc, rc, method, path, version, &preflight, msg, sizeof msg);
    if (preflight) {
        rc->answered = true;
        return send_preflight(s, mc, rc, path);
    }
    rc->body.max = rc->route ? rc->route->max_body : 0;
    uint64_t len = content_length(mc);
    if (e == SHIMMY_OK && len > rc->body.max)
        e = ERR_TOO_LARGE;
    if (e == SHIMMY_OK)
        return MHD_YES;
    bool has_body = len > 0 || header(mc, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
    if (has_body && !rc->close && !expects_continue(mc) && len <= read_limit(rc)) {
        rc->late = e; /* read and drop the body, then answer */
        snprintf(rc->late_msg, sizeof rc->late_msg, "%s", msg);
        return MHD_YES;
    }
    rc->answered = true;
    return answer_error(s, mc, rc, method, path, e, msg);
}

/* A piece of the body: keep it, or drop it once the request is to be refused. */
static enum MHD_Result request_upload(const http_server *s, req_ctx *rc, const char *data,
                                      size_t *size) {
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
        send_raw_error(s, rc, rc->late, rc->late_msg);
        return MHD_NO;
    }
    return MHD_YES;
}

/* MHD's URI log callback: runs once the request line is read, before MHD unescapes the target
 * or splits off the query; makes the request's req_ctx (it becomes con_cls). MHD cuts the target
 * at a NUL byte, so a target whose NUL is not the one MHD put before the version is refused. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *mc) {
    req_ctx *rc = req_new(cls, mc);
    if (rc == NULL)
        return NULL;
    size_t n = uri != NULL ? strlen(uri) : 0;
    bool ok = n > 0;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)uri[i] > 0x20 && (unsigned char)uri[i] != 0x7f;
    /* The version MHD accepted is exactly "HTTP/d.d" right after the target's end. */
    ok = ok && strncmp(uri + n + 1, "HTTP/", 5) == 0 && strlen(uri + n + 1) == 8;
    rc->bad_target = !ok;
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    http_server *s = cls;
    char buf_path[2048]; /* no route is near this long; longer paths are answered 404 */
    size_t plen = strcspn(url, "?");
    const char *path = NULL;
    if (plen < sizeof buf_path) {
        memcpy(buf_path, url, plen);
        buf_path[plen] = '\0';
        path = buf_path;
    }

    req_ctx *rc = *con_cls;
    if (rc == NULL || !rc->begun)
        return request_begin(s, mc, method, path, version, con_cls);
    if (rc->answered) {
        *upload_data_size = 0; /* MHD does not read on after an early answer; be safe anyway */
        return MHD_YES;
    }
    if (*upload_data_size > 0)
        return request_upload(s, rc, upload_data, upload_data_size);
    rc->answered = true;
    if (rc->late != SHIMMY_OK)
        return answer_error(s, mc, rc, method, path, rc->late, rc->late_msg);
    return dispatch(s, mc, rc, method, path);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    http_server *s = cls;
    req_ctx *rc = *con_cls;
    if (rc != NULL && toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED && !rc->answered)
        send_raw_error(s, rc, ERR_TIMEOUT,
                       "the request stalled: nothing arrived for " STR(LIM_IDLE_TIMEOUT_S) " s");
    if (rc != NULL && rc->busy)
        conn_busy(s, mc, -1);
    req_unref(rc);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    http_server *s = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    if (s != NULL && s->starting && n > 0 && s->start_log[0] == '\0') /* the first says why */
        snprintf(s->start_log, sizeof s->start_log, "%s", msg);
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

/* ---- TLS and keys ---- */

/* Reads a PEM file into *out (owned, NUL-terminated). */
static shimmy_err read_pem(const char *what, const char *path, char **out, char *err,
                           size_t errlen) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return err_set(err, errlen, ERR_IO, "%s %s: %s", what, path, strerror(errno));
    buf b;
    buf_init(&b, 1024u * 1024u); /* a certificate chain is a few KiB */
    char chunk[4096];
    size_t n;
    shimmy_err e = SHIMMY_OK;
    while (e == SHIMMY_OK && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        e = buf_append(&b, chunk, n);
    bool bad = ferror(f) != 0;
    fclose(f);
    if (e == SHIMMY_OK && !bad && strstr(buf_str(&b), "-----BEGIN ") == NULL)
        e = err_set(err, errlen, ERR_IO, "%s %s: not a PEM file (no -----BEGIN line)", what, path);
    else if (e != SHIMMY_OK || bad)
        e = err_set(err, errlen, ERR_IO, "%s %s: %s", what, path,
                    e == ERR_TOO_LARGE ? "larger than 1 MiB" : "read error");
    if (e == SHIMMY_OK)
        *out = buf_take(&b);
    buf_free(&b);
    return e;
}

static shimmy_err tls_load(http_server *s, char *err, size_t errlen) {
    const http_trust *t = &s->trust;
    if (t->tls_cert == NULL && t->tls_key == NULL)
        return SHIMMY_OK;
    if (t->tls_cert == NULL || t->tls_key == NULL)
        return err_set(err, errlen, ERR_USAGE, "TLS needs both a certificate and a key");
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return err_set(err, errlen, ERR_IO, "this libmicrohttpd was built without TLS (GnuTLS)");
    shimmy_err e = read_pem("TLS certificate", t->tls_cert, &s->tls_cert, err, errlen);
    if (e == SHIMMY_OK)
        e = read_pem("TLS key", t->tls_key, &s->tls_key, err, errlen);
    s->tls = e == SHIMMY_OK;
    return e;
}

shimmy_err http_server_set_keys(http_server *s, const char *const *keys, size_t n) {
    guard_keys k = {calloc(n > 0 ? n : 1, sizeof(char *)), 0};
    if (k.keys == NULL)
        return ERR_NOMEM;
    for (; k.n < n; k.n++) {
        if ((k.keys[k.n] = strdup(keys[k.n])) == NULL) {
            guard_keys_free(&k);
            return ERR_NOMEM;
        }
    }
    pthread_mutex_lock(&s->keys_lock);
    guard_keys old = s->keys;
    s->keys = k;
    pthread_mutex_unlock(&s->keys_lock);
    guard_keys_free(&old);
    return SHIMMY_OK;
}

/* ---- public ---- */

static void server_free(http_server *s) {
    if (s == NULL)
        return;
    guard_keys_free(&s->keys);
    pthread_mutex_destroy(&s->keys_lock);
    pthread_mutex_destroy(&s->conns_lock);
    pthread_mutex_destroy(&s->drain_lock);
    free(s->tls_cert);
    free(s->tls_key);
    free(s);
}

static struct MHD_Daemon *daemon_start(http_server *s, int fd) {
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key},
        {MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert},
        {MHD_OPTION_END, 0, NULL},
    };
    if (!s->tls)
        tls_opts[0].option = MHD_OPTION_END;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_ALLOW_UPGRADE |
                     (s->tls ? MHD_USE_TLS : 0);
    s->starting = true;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, on_accept, s, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(LIM_CONNECTIONS + LIM_CONNECTIONS_SLACK), MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)LIM_IDLE_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
    s->starting = false;
    return d;
}

shimmy_err http_server_start(const http_config *cfg, http_server **out, char *err, size_t errlen) {
    shimmy_err e = SHIMMY_OK;
    *out = NULL;
    http_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    pthread_mutex_init(&s->keys_lock, NULL);
    pthread_mutex_init(&s->conns_lock, NULL);
    for (size_t i = 0; i < HTTP_CONN_SLOTS; i++)
        s->upgraded[i] = -1;
    pthread_mutex_init(&s->drain_lock, NULL);
    atomic_init(&s->draining, false);
    s->cfg = *cfg;
    if (cfg->trust != NULL)
        s->trust = *cfg->trust;
    if (http_server_set_keys(s, s->trust.keys, s->trust.n_keys) != SHIMMY_OK) {
        e = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((e = tls_load(s, err, errlen)) != SHIMMY_OK)
        goto out;
    int fd = bind_host(cfg->host, cfg->port, SOMAXCONN, err, errlen);
    if (fd < 0) {
        e = ERR_IO;
        goto out;
    }
    s->port = socket_port(fd);
    s->listen_fd = fd;
    s->daemon = daemon_start(s, fd);
    if (s->daemon == NULL) {
        /* MHD closes a listen socket it was handed, also when it fails to start. */
        char where[300];
        host_port_text(cfg->host && cfg->host[0] ? cfg->host : "127.0.0.1", s->port, where,
                       sizeof where);
        e = err_set(err, errlen, ERR_IO, "%s: cannot start the HTTP%s server%s%s", where,
                    s->tls ? "S" : "", s->start_log[0] ? ": " : "", s->start_log);
        goto out;
    }
    *out = s;
    s = NULL;
out:
    server_free(s);
    return e;
}

int http_server_port(const http_server *s) {
    return s->port;
}

void http_server_drain(http_server *s) {
    atomic_store(&s->draining, true);
    pthread_mutex_lock(&s->drain_lock);
    if (s->listen_fd >= 0) {
        MHD_socket fd = MHD_quiesce_daemon(s->daemon); /* MHD stops polling it; ours to close */
        close(fd != MHD_INVALID_SOCKET ? fd : s->listen_fd);
        s->listen_fd = -1;
    }
    pthread_mutex_unlock(&s->drain_lock);
}

int http_server_inflight(http_server *s) {
    int n = 0;
    pthread_mutex_lock(&s->conns_lock);
    for (size_t i = 0; i < HTTP_CONN_SLOTS; i++)
        if (s->conns[i].used)
            n += s->conns[i].busy;
    pthread_mutex_unlock(&s->conns_lock);
    return n;
}

const char *http_request_arg(const http_request *req, const char *name) {
    if (req->conn == NULL || req->conn->mc == NULL)
        return NULL;
    return MHD_lookup_connection_value(req->conn->mc, MHD_GET_ARGUMENT_KIND, name);
}

/* Shuts down the sockets of handed-over connections and waits (bounded) for their sessions. */
static void upgraded_stop(http_server *s) {
    for (int tries = 0; tries < 200; tries++) {
        int live = 0;
        pthread_mutex_lock(&s->conns_lock);
        for (size_t i = 0; i < HTTP_CONN_SLOTS; i++)
            if (s->upgraded[i] >= 0)
                shutdown(s->upgraded[i], SHUT_RDWR), live++;
        pthread_mutex_unlock(&s->conns_lock);
        if (live == 0)
            return;
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL); /* a session ends within one poll of its socket */
    }
}

void http_server_stop(http_server *s) {
    if (s == NULL)
        return;
    if (s->daemon != NULL)
        upgraded_stop(s);
    if (s->daemon != NULL)
        MHD_stop_daemon(s->daemon);
    server_free(s);
}

bool http_conn_gone(http_conn *c) {
    return conn_gone_wait(c, 0);
}

const char *http_request_header(const http_request *req, const char *name) {
    if (req == NULL || req->conn == NULL || req->conn->mc == NULL)
        return NULL;
    return MHD_lookup_connection_value(req->conn->mc, MHD_HEADER_KIND, name);
}

bool http_port_free(const char *host, int port) {
    int fd = bind_host(host, port, 0, NULL, 0);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}
