/* api/ws: WebSocket streaming (GET /ws/generate, GET /ws/chat); the protocol is described at the
 * top of ws.c and in docs/API.md. */
#ifndef SHIMMY_API_WS_H
#define SHIMMY_API_WS_H

#include "api/api.h"

/* The handshakes: 101 and a session in a thread of its own, or 400 saying what is missing. */
void ws_handle_generate(const http_request *req, http_response *res);
void ws_handle_chat(const http_request *req, http_response *res);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2): base64(SHA-1(key + GUID)),
 * 28 characters and a NUL into out. */
void ws_accept_key(const char *key, char out[29]);

#endif
