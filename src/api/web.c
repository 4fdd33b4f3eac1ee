/* api/web: see web.h. The files are public (no secret in them), so /ui/ is an open path like "/";
 * the page itself asks for the API key when the server needs one. */
#include "api/web.h"

#include <string.h>
#include <strings.h>

#include "api/api_internal.h"
#include "api/api_error.h"

#ifndef SHIMMY_VERSION
#define SHIMMY_VERSION "0.0.0"
#endif

const web_asset *web_find(const char *path) {
    for (const web_asset *a = web_assets; path != NULL && a->path != NULL; a++)
        if (strcmp(a->path, path) == 0)
            return a;
    return NULL;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

const char *web_content_type(const char *path) {
    if (ends_with(path, ".js"))
        return "text/javascript; charset=utf-8";
    if (ends_with(path, ".css"))
        return "text/css; charset=utf-8";
    return "text/html; charset=utf-8";
}

static void serve(const web_asset *a, http_response *res) {
    buf_reset(&res->body);
    if (buf_append(&res->body, (const char *)a->data, a->len) != SHIMMY_OK) {
        api_error e;
        api_fail(&e, ERR_NOMEM, NULL, "out of memory");
        api_reply_error(res, &oai_chat_proto, &e);
        return;
    }
    res->content_type = web_content_type(a->path);
}

/* True when the client asks for HTML (browsers do; curl and the SDKs send * / * or JSON). */
static bool wants_html(const http_request *req) {
    const char *accept = http_request_header(req, "Accept");
    return accept != NULL && strcasestr(accept, "text/html") != NULL;
}

void web_handle_root(const http_request *req, http_response *res) {
    const web_asset *page = web_find("/");
    if (page != NULL && wants_html(req)) {
        serve(page, res);
        return;
    }
    buf_puts(&res->body,
             "{\"name\":\"shimmy\",\"version\":\"" SHIMMY_VERSION "\",\"hint\":\"OpenAI-compatible "
             "API: POST /v1/chat/completions, POST /v1/completions, GET /v1/models; "
             "status: GET /health; chat page: open / in a browser\"}");
}

void web_handle_asset(const http_request *req, http_response *res) {
    const web_asset *a = web_find(req->path);
    if (a == NULL || strcmp(a->path, "/") == 0) {
        api_error e;
        api_fail(&e, ERR_NOT_FOUND, NULL, "no such file: %.200s", req->path);
        api_reply_error(res, &oai_chat_proto, &e);
        return;
    }
    serve(a, res);
}
