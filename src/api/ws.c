/* api/ws: WebSocket streaming, GET /ws/generate and GET /ws/chat (the predecessor's /ws/generate).
 *
 * The handshake is an ordinary route (so Host, Origin and the API key are checked by http/ before
 * it runs, as for every route: a foreign page gets 403); the handler answers 101 and the server
 * hands the socket to ws_session in a thread of its own. Framing is libwslay's. A client sends
 * one JSON text message per request, with the fields of POST /api/generate (/ws/generate) or
 * POST /v1/chat/completions (/ws/chat), and gets, through gen.c's one path with the rows below:
 *   {"type":"start","model"}                     once the job is queued
 *   {"type":"token","content","reasoning","tool_calls"}  one per batch of tokens (fields present
 *                                                when non-empty)
 *   {"type":"done","finish_reason","usage":{prompt_tokens,completion_tokens,cached_tokens},
 *    "timings":{queued_ms,prompt_ms,generation_ms,tokens_per_second[,draft_n,
 *    draft_n_accepted]}}
 *   {"type":"error","error":{"message","type","code"(HTTP status),"param"}}
 * {"type":"cancel"} stops the request in progress (its slot is freed; the answer ends with
 * {"type":"done","finish_reason":"cancelled"}); other messages sent meanwhile wait their turn
 * (at most LIM_WS_QUEUE). Requests on one socket run in turn. Pings are answered with pongs.
 * Close codes: 1007 for a message that is not JSON (after an error message), 1003 for a binary
 * message, 1008 when too many requests wait, 1009 for a message over LIM_BODY_BYTES; when the
 * server stops, the socket is shut down (the client sees 1006). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <jansson.h>
#include <wslay/wslay.h>

#include "api/api_internal.h"
#include "api/ws.h"
#include "core/limits.h"
#include "core/log.h"
#include "http/stream.h"

/* ---- the handshake (RFC 6455 4.2) ---- */

/* SHA-1 of data (RFC 3174), for Sec-WebSocket-Accept only. */
static uint32_t rol(uint32_t x, int n) {
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const unsigned char *p) {
    uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (int i = 0; i < 80; i++) {
        uint32_t f = i < 20   ? ((b & c) | (~b & d)) + 0x5A827999u
                     : i < 40 ? (b ^ c ^ d) + 0x6ED9EBA1u
                     : i < 60 ? ((b & c) | (b & d) | (c & d)) + 0x8F1BBCDCu
                              : (b ^ c ^ d) + 0xCA62C1D6u;
        uint32_t t = rol(a, 5) + f + e + w[i];
        e = d, d = c, c = rol(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void sha1(const unsigned char *data, size_t n, unsigned char out[20]) {
    uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
    unsigned char tail[128] = {0};
    size_t full = n / 64 * 64, rest = n - full;
    for (size_t i = 0; i < full; i += 64)
        sha1_block(h, data + i);
    memcpy(tail, data + full, rest);
    tail[rest] = 0x80;
    size_t len = rest < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++)
        tail[len - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t i = 0; i < len; i += 64)
        sha1_block(h, tail + i);
    for (int i = 0; i < 20; i++)
        out[i] = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static void base64(const unsigned char *in, size_t n, char *out) {
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = '\0';
}

void ws_accept_key(const char *key, char out[29]) {
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char text[128], digest[20];
    size_t n = strlen(key);
    if (n > sizeof text - sizeof guid)
        n = sizeof text - sizeof guid;
    memcpy(text, key, n);
    memcpy(text + n, guid, sizeof guid - 1);
    sha1(text, n + sizeof guid - 1, digest);
    base64(digest, sizeof digest, out);
}

/* True when the header value (a comma-separated list) holds token, in any case. */
static bool header_has(const char *value, const char *token) {
    size_t n = strlen(token);
    for (const char *p = value; p != NULL && *p;) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, ",");
        size_t end = len;
        while (end > 0 && (p[end - 1] == ' ' || p[end - 1] == '\t'))
            end--;
        if (end == n && strncasecmp(p, token, n) == 0)
            return true;
        p += len;
    }
    return false;
}

/* ---- the rows: gen.c's writers in this protocol's shape ---- */

static shimmy_err w_start(api_call *c, api_sink *s) {
    jsonw w;
    api_frame_begin(s, &w);
    jsonw_raw(&w, "{\"type\":\"start\",\"model\":");
    jsonw_cstr(&w, c->model);
    jsonw_raw(&w, "}");
    return api_frame_end(s, &w);
}

static void w_calls(jsonw *w, const gen_events *ev) {
    bool any = false;
    for (size_t i = 0; i < ev->n; i++) {
        const gen_event *e = &ev->ev[i];
        if (e->kind != GEN_EV_TOOL)
            continue;
        jsonw_raw(w, any ? ",{\"index\":" : ",\"tool_calls\":[{\"index\":");
        any = true;
        jsonw_int(w, e->tool_index);
        if (e->tool_id != NULL)
            jsonw_raw(w, ",\"id\":"), jsonw_cstr(w, e->tool_id);
        if (e->tool_name != NULL)
            jsonw_raw(w, ",\"name\":"), jsonw_cstr(w, e->tool_name);
        jsonw_raw(w, ",\"arguments\":");
        jsonw_str(w, e->text, e->len);
        jsonw_raw(w, "}");
    }
    if (any)
        jsonw_raw(w, "]");
}

/* One message per wait: the answer text and reasoning of the batch, and tool call pieces. */
static shimmy_err w_events(api_call *c, const gen_events *ev, api_sink *s) {
    (void)c;
    api_answer a;
    api_answer_init(&a);
    shimmy_err e = api_answer_add(&a, ev);
    jsonw w;
    api_frame_begin(s, &w);
    jsonw_raw(&w, "{\"type\":\"token\"");
    if (a.content.len > 0)
        jsonw_raw(&w, ",\"content\":"), jsonw_str(&w, a.content.data, a.content.len);
    if (a.reasoning.len > 0)
        jsonw_raw(&w, ",\"reasoning\":"), jsonw_str(&w, a.reasoning.data, a.reasoning.len);
    w_calls(&w, ev);
    jsonw_raw(&w, "}");
    api_answer_free(&a);
    return e != SHIMMY_OK ? e : api_frame_end(s, &w);
}

static void w_ms(jsonw *w, const char *name, int64_t ns) {
    jsonw_raw(w, name);
    jsonw_int(w, ns / 1000000);
}

static shimmy_err w_end(api_call *c, const gen_status *st, api_sink *s) {
    (void)c;
    jsonw w;
    char tps[32];
    snprintf(tps, sizeof tps, "%.2f",
             st->gen_ns > 0 ? st->completion_tokens * 1e9 / (double)st->gen_ns : 0.0);
    api_frame_begin(s, &w);
    jsonw_raw(&w, "{\"type\":\"done\",\"finish_reason\":");
    jsonw_cstr(&w, finish_reason_str(st->finish));
    jsonw_raw(&w, ",\"usage\":{\"prompt_tokens\":");
    jsonw_int(&w, st->prompt_tokens);
    jsonw_raw(&w, ",\"completion_tokens\":");
    jsonw_int(&w, st->completion_tokens);
    jsonw_raw(&w, ",\"cached_tokens\":");
    jsonw_int(&w, st->cached_tokens);
    w_ms(&w, "},\"timings\":{\"load_ms\":", c->load_ns);
    w_ms(&w, ",\"queued_ms\":", st->queued_ns);
    w_ms(&w, ",\"prompt_ms\":", st->prompt_ns);
    w_ms(&w, ",\"generation_ms\":", st->gen_ns);
    jsonw_raw(&w, ",\"tokens_per_second\":");
    jsonw_raw(&w, tps);
    if (st->draft_tokens > 0) { /* speculative decoding, as llama-server's timings name them */
        jsonw_raw(&w, ",\"draft_n\":");
        jsonw_int(&w, st->draft_tokens);
        jsonw_raw(&w, ",\"draft_n_accepted\":");
        jsonw_int(&w, st->draft_accepted);
    }
    jsonw_raw(&w, "}}");
    return api_frame_end(s, &w);
}

static shimmy_err w_error(const api_error *e, api_sink *s) {
    const err_info *info = err_get(e->code);
    jsonw w;
    api_frame_begin(s, &w);
    jsonw_raw(&w, "{\"type\":\"error\",\"error\":{\"message\":");
    jsonw_cstr(&w, e->message[0] ? e->message : info->message);
    jsonw_raw(&w, ",\"type\":");
    jsonw_cstr(&w, info->name);
    jsonw_raw(&w, ",\"code\":");
    jsonw_int(&w, info->http_status);
    jsonw_raw(&w, ",\"param\":");
    if (e->param[0])
        jsonw_cstr(&w, e->param);
    else
        jsonw_raw(&w, "null");
    jsonw_raw(&w, "}}");
    return api_frame_end(s, &w);
}

static shimmy_err w_loaded(api_call *c, bool unloaded, api_sink *s) {
    jsonw w;
    api_frame_begin(s, &w);
    jsonw_raw(&w,
              unloaded ? "{\"type\":\"unloaded\",\"model\":" : "{\"type\":\"loaded\",\"model\":");
    jsonw_cstr(&w, c->model);
    jsonw_raw(&w, "}");
    return api_frame_end(s, &w);
}

/* Never used: every WebSocket request streams. */
static shimmy_err w_whole(api_call *c, const api_answer *a, const gen_status *st, api_sink *s) {
    (void)a;
    return w_end(c, st, s);
}

static shimmy_err parse_generate(shimmy_app *app, json_t *root, api_call *c, api_error *err) {
    shimmy_err e = oll_generate_proto.parse(app, root, c, err);
    c->stream = true;
    return e;
}

static shimmy_err parse_chat(shimmy_app *app, json_t *root, api_call *c, api_error *err) {
    shimmy_err e = oai_chat_proto.parse(app, root, c, err);
    c->stream = true;
    return e;
}

static void free_generate(api_call *c) {
    oll_generate_proto.free(c);
}
static void free_chat(api_call *c) {
    oai_chat_proto.free(c);
}

#define WS_NOT_FOUND                                                                               \
    { "model \"", "\" not found (GET /v1/models lists them)" }

/* NDJSON framing: one line per message, split again before sending (JSON has no raw newline). */
/* The two rows differ only in their parse and free. */
#define WS_ROW(parse_fn, free_fn)                                                                  \
    {                                                                                              \
        .framing = API_FRAME_NDJSON, .content_type = HTTP_NDJSON_CONTENT_TYPE,                     \
        .not_found = WS_NOT_FOUND, .parse = parse_fn, .free = free_fn, .start = w_start,           \
        .events = w_events, .end = w_end, .whole = w_whole, .loaded = w_loaded, .error = w_error,  \
    }

static const api_proto ws_generate_proto = WS_ROW(parse_generate, free_generate);
static const api_proto ws_chat_proto = WS_ROW(parse_chat, free_chat);

/* ---- a session ---- */

typedef struct ws_session {
    const api_proto *p;
    shimmy_app *app;
    char accept[32]; /* Sec-WebSocket-Accept */
    int fd;
    const char *extra; /* bytes read with the request head, not yet given to wslay */
    size_t n_extra;
    wslay_event_context_ptr ev;
    char *queue[LIM_WS_QUEUE]; /* requests waiting (owned texts) */
    int n_queued;
    bool running;             /* a request is in progress */
    bool cancel;              /* its client asked to stop it */
    bool closing;             /* a close was sent or received, or the socket failed */
    uint16_t close_code;      /* a close to send once the queued messages are out; 0 = none */
    const char *close_reason; /* static */
} ws_session;

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *out, size_t len, int flags,
                       void *user) {
    (void)flags;
    ws_session *s = user;
    if (s->n_extra > 0) {
        size_t n = len < s->n_extra ? len : s->n_extra;
        memcpy(out, s->extra, n);
        s->extra += n, s->n_extra -= n;
        return (ssize_t)n;
    }
    ssize_t n = recv(s->fd, out, len, MSG_DONTWAIT);
    if (n > 0)
        return n;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    else
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user) {
    (void)flags;
    ws_session *s = user;
    ssize_t n = send(s->fd, data, len, MSG_NOSIGNAL);
    if (n >= 0)
        return n;
    wslay_event_set_error(ctx, errno == EINTR ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static void send_text(ws_session *s, const char *text, size_t n) {
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)text, n};
    wslay_event_queue_msg(s->ev, &m);
}

/* Closes after the messages already queued (wslay sends control frames first). */
static void send_close(ws_session *s, uint16_t code, const char *reason) {
    if (s->close_code == 0)
        s->close_code = code, s->close_reason = reason;
}

/* Sends what is queued; then the pending close, once nothing else waits. */
static void flush(ws_session *s) {
    if (wslay_event_want_write(s->ev) && wslay_event_send(s->ev) != 0)
        s->closing = true;
    if (s->close_code != 0 && !s->closing && wslay_event_get_queued_msg_count(s->ev) == 0) {
        wslay_event_queue_close(s->ev, s->close_code, (const uint8_t *)s->close_reason,
                                strlen(s->close_reason));
        s->closing = true;
        if (wslay_event_send(s->ev) != 0)
            wslay_event_shutdown_write(s->ev);
    }
}

/* An error message of our own (before gen.c: the message itself is wrong). */
static void send_error(ws_session *s, shimmy_err code, const char *msg) {
    buf out;
    api_sink sink;
    api_error e;
    buf_init(&out, 64 * 1024);
    api_sink_init(&sink, &out, API_FRAME_NONE);
    api_fail(&e, code, NULL, "%s", msg);
    if (w_error(&e, &sink) == SHIMMY_OK)
        send_text(s, out.data, out.len);
    api_sink_free(&sink);
    buf_free(&out);
}

static bool is_cancel(const char *text, size_t n) {
    json_t *root = json_loadb(text, n, 0, NULL);
    const char *type = json_string_value(json_object_get(root, "type"));
    bool cancel = type != NULL && strcmp(type, "cancel") == 0;
    json_decref(root);
    return cancel;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *m,
                   void *user) {
    (void)ctx;
    ws_session *s = user;
    if (m->opcode == WSLAY_CONNECTION_CLOSE) {
        s->closing = true;
        return;
    }
    if (m->opcode == WSLAY_BINARY_FRAME) {
        send_error(s, ERR_BAD_JSON, "binary messages are not taken: send JSON text");
        send_close(s, WSLAY_CODE_UNSUPPORTED_DATA, "binary message");
        return;
    }
    if (m->opcode != WSLAY_TEXT_FRAME)
        return; /* ping and pong: wslay answers pings itself */
    if (is_cancel((const char *)m->msg, m->msg_length)) {
        s->cancel = s->running; /* nothing running: nothing to cancel */
        return;
    }
    char *text = s->n_queued < LIM_WS_QUEUE ? strndup((const char *)m->msg, m->msg_length) : NULL;
    if (text == NULL) {
        send_error(s, ERR_OVERLOADED, "too many requests waiting on this socket");
        send_close(s, WSLAY_CODE_POLICY_VIOLATION, "too many requests");
        return;
    }
    s->queue[s->n_queued++] = text;
}

/* Reads and writes what the socket allows, waiting up to timeout_ms for it. */
static void pump(ws_session *s, int timeout_ms) {
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    if (wslay_event_want_write(s->ev))
        p.events |= POLLOUT;
    if (s->n_extra > 0)
        timeout_ms = 0;
    int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno != EINTR)
        s->closing = true;
    if ((s->n_extra > 0 || (r > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)))) &&
        wslay_event_recv(s->ev) != 0)
        s->closing = true;
    flush(s);
    if (!wslay_event_want_read(s->ev) && !wslay_event_want_write(s->ev))
        s->closing = true;
}

/* gen.c's stop: reads the socket for a cancel while the request waits for the engine. */
static bool session_stop(void *ctx) {
    ws_session *s = ctx;
    pump(s, 0);
    return s->cancel || s->closing;
}

/* Sends each line of out as one message. */
static void send_lines(ws_session *s, buf *out) {
    const char *p = buf_str(out);
    while (*p) {
        size_t n = strcspn(p, "\n");
        if (n > 0)
            send_text(s, p, n);
        p += n + (p[n] == '\n');
    }
    buf_reset(out);
}

static void run_stream(ws_session *s, http_response *res) {
    buf out;
    buf_init(&out, LIM_RESPONSE_BYTES);
    int rc = 0;
    while (rc == 0) {
        rc = res->stream(res->stream_ctx, &out);
        send_lines(s, &out);
        pump(s, 0);
    }
    res->stream_free(res->stream_ctx);
    if (rc < 0 && s->cancel && !s->closing) {
        static const char done[] = "{\"type\":\"done\",\"finish_reason\":\"cancelled\"}";
        send_text(s, done, sizeof done - 1);
    }
    buf_free(&out);
}

/* One request: gen.c's path with this socket's stop. */
static void run_request(ws_session *s, char *text) {
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (!json_is_object(root)) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s", root == NULL ? jerr.text : "the request must be an object");
        json_decref(root);
        send_error(s, ERR_BAD_JSON, msg);
        send_close(s, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA, "malformed JSON");
        return;
    }
    json_decref(root);
    http_request req = {
        .method = "POST", .path = "/ws", .body = text, .body_len = strlen(text), .app = s->app};
    http_response res = {.status = 200, .content_type = "application/json"};
    buf_init(&res.body, LIM_RESPONSE_BYTES);
    s->running = true;
    s->cancel = false;
    api_gen_serve_stop(&req, &res, s->p, session_stop, s);
    if (res.stream != NULL)
        run_stream(s, &res);
    else
        send_lines(s, &res.body);
    s->running = false;
    buf_free(&res.body);
}

static void session_loop(ws_session *s) {
    while (!s->closing || wslay_event_want_write(s->ev)) {
        if (s->n_queued > 0 && !s->closing && s->close_code == 0) {
            char *text = s->queue[0];
            memmove(s->queue, s->queue + 1, (size_t)--s->n_queued * sizeof s->queue[0]);
            run_request(s, text);
            free(text);
            continue;
        }
        pump(s, s->close_code != 0 && !s->closing ? 0 : LIM_WS_IDLE_POLL_MS);
        if (s->closing && !wslay_event_want_write(s->ev))
            break;
    }
}

/* http/'s upgrade function: the session, in its own thread. */
static void ws_run(void *ctx, int fd, const char *extra, size_t n_extra) {
    ws_session *s = ctx;
    struct wslay_event_callbacks cb = {on_recv, on_send, NULL, NULL, NULL, NULL, on_msg};
    if (fd >= 0 && wslay_event_context_server_init(&s->ev, &cb, s) == 0) {
        struct timeval tv = {LIM_WS_SEND_TIMEOUT_S, 0};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        s->fd = fd, s->extra = extra, s->n_extra = n_extra;
        wslay_event_config_set_max_recv_msg_length(s->ev, LIM_BODY_BYTES);
        session_loop(s);
        wslay_event_context_free(s->ev);
    }
    for (int i = 0; i < s->n_queued; i++)
        free(s->queue[i]);
    free(s);
}

/* ---- the routes ---- */

/* The handshake's checks: 400 (426 for a plain GET) with the reason, or the session. */
static void handshake(const http_request *req, http_response *res, const api_proto *p) {
    const char *upgrade = http_request_header(req, "Upgrade");
    const char *conn = http_request_header(req, "Connection");
    const char *version = http_request_header(req, "Sec-WebSocket-Version");
    const char *key = http_request_header(req, "Sec-WebSocket-Key");
    api_error e;
    api_error_clear(&e);
    if (upgrade == NULL || !header_has(upgrade, "websocket") || conn == NULL ||
        !header_has(conn, "upgrade"))
        api_fail(&e, ERR_BAD_REQUEST, NULL,
                 "this is a WebSocket endpoint: send Upgrade: websocket");
    else if (version == NULL || strcmp(version, "13") != 0)
        api_fail(&e, ERR_BAD_REQUEST, NULL, "Sec-WebSocket-Version must be 13");
    else if (key == NULL || strlen(key) != 24)
        api_fail(&e, ERR_BAD_REQUEST, NULL, "Sec-WebSocket-Key must be 16 bytes in base64");
    ws_session *s = e.code == SHIMMY_OK ? calloc(1, sizeof *s) : NULL;
    if (s == NULL) {
        if (e.code == SHIMMY_OK)
            api_fail(&e, ERR_NOMEM, NULL, "out of memory");
        api_reply_error(res, &oai_chat_proto, &e);
        return;
    }
    s->p = p;
    s->app = req->app;
    ws_accept_key(key, s->accept);
    res->upgrade = ws_run;
    res->upgrade_ctx = s;
    res->upgrade_headers[0] = "Upgrade";
    res->upgrade_headers[1] = "websocket";
    res->upgrade_headers[2] = "Sec-WebSocket-Accept";
    res->upgrade_headers[3] = s->accept;
}

void ws_handle_generate(const http_request *req, http_response *res) {
    handshake(req, res, &ws_generate_proto);
}

void ws_handle_chat(const http_request *req, http_response *res) {
    handshake(req, res, &ws_chat_proto);
}
