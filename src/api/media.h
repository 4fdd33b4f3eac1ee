/* api/media: the images and audio clips of one request, taken from the forms the APIs send them
 * in (data: URIs, bare base64, http(s) URLs when the server allows remote media) and decoded to
 * the files' bytes for the engine (engine.h's gen_media). Each wire file finds its protocol's
 * media parts, adds them here in prompt order and puts engine_media_marker() where each goes.
 * The engine decodes the files (libmtmd) and answers for what is in them.
 *
 * Thread-safety: an api_media belongs to one request's thread; api_media_allow_remote is set
 * once at start-up. */
#ifndef SHIMMY_API_MEDIA_H
#define SHIMMY_API_MEDIA_H

#include <stdbool.h>
#include <stddef.h>

#include "api/api_error.h"
#include "core/limits.h"
#include "engine/engine.h"

typedef struct api_media {
    gen_media items[LIM_MEDIA_PARTS]; /* in prompt order; data owned (below) */
    unsigned char *owned[LIM_MEDIA_PARTS];
    char params[LIM_MEDIA_PARTS][96]; /* the items' fields, for the engine's errors */
    int n;
} api_media;

void api_media_init(api_media *m);
void api_media_free(api_media *m);

/* serve --allow-remote-media: http(s) image URLs are fetched (libcurl, LIM_MEDIA_FETCH_S,
 * LIM_MEDIA_BYTES, up to LIM_MEDIA_REDIRECTS redirects to http(s) URLs). Off by default: a server
 * that fetches what clients name can be made to reach hosts the clients cannot. */
void api_media_allow_remote(bool on);

/* Adds the file a URL holds: "data:<mime>;base64,<data>", or http(s)://... when remote media is
 * allowed. param names the field in errors ("messages[0].content[1].image_url.url"; copied).
 * Errors (err filled): ERR_BAD_PARAM (more than LIM_MEDIA_PARTS, not a data: URI or not base64,
 * an unsupported format, a remote URL without --allow-remote-media, a fetch that failed),
 * ERR_TOO_LARGE (over LIM_MEDIA_BYTES), ERR_NOMEM. */
shimmy_err api_media_add_url(api_media *m, const char *url, gen_media_kind kind, const char *param,
                             api_error *err);
/* Adds a file given as bare base64 text (Ollama's images, Anthropic's base64 source). Errors as
 * api_media_add_url. */
shimmy_err api_media_add_base64(api_media *m, const char *b64, size_t len, gen_media_kind kind,
                                const char *param, api_error *err);

/* Decodes base64 (standard or URL-safe alphabet, padding optional, whitespace skipped) into
 * out[0..*n); out must hold len * 3 / 4 + 3 bytes. Returns false on a character outside the
 * alphabet or a stray padding. */
bool api_base64_decode(const char *in, size_t len, unsigned char *out, size_t *n);

#endif
