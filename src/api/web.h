/* api/web: the chat page at "/" and its files under /ui/, embedded in the binary at build time
 * (src/web/embed.cmake turns src/web into a table of byte arrays). */
#ifndef SHIMMY_API_WEB_H
#define SHIMMY_API_WEB_H

#include <stddef.h>

#include "api/api.h"

typedef struct web_asset {
    const char *path;          /* URL path ("/", "/ui/app.js"); NULL ends the table */
    const unsigned char *data; /* the file's bytes (static) */
    size_t len;                /* bytes */
} web_asset;

/* The generated table (build dir's web_assets.c), ended by a NULL path. */
extern const web_asset web_assets[];

/* The asset at path, or NULL. */
const web_asset *web_find(const char *path);
/* The content type for an asset path, from its suffix (static string). */
const char *web_content_type(const char *path);

/* GET /: the page for a browser (Accept names text/html), else the JSON hint that API clients
 * have always had. GET /ui/...: the page's files. */
void web_handle_root(const http_request *req, http_response *res);
void web_handle_asset(const http_request *req, http_response *res);

#endif
