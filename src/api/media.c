/* api/media: media parts of requests into gen_media (media.h). */
#include "api/media.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "http/client.h"

static atomic_bool allow_remote;

void api_media_allow_remote(bool on) {
    atomic_store(&allow_remote, on);
}

void api_media_init(api_media *m) {
    memset(m, 0, sizeof *m);
}

void api_media_free(api_media *m) {
    for (int i = 0; i < m->n; i++)
        free(m->owned[i]);
    m->n = 0;
}

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

bool api_base64_decode(const char *in, size_t len, unsigned char *out, size_t *n) {
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    bool pad = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            pad = true;
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || pad)
            return false;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (bits >= 6) /* one lone character: not whole bytes */
        return false;
    *n = o;
    return true;
}

/* What the bytes start like: 0 an image, 1 audio, -1 neither; *name the format. */
static int sniff(const unsigned char *d, size_t n, const char **name) {
    *name = "unknown";
    if (n >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0)
        return *name = "PNG", 0;
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF)
        return *name = "JPEG", 0;
    if (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0))
        return *name = "GIF", 0;
    if (n >= 2 && d[0] == 'B' && d[1] == 'M')
        return *name = "BMP", 0;
    if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0)
        return *name = "WebP", 0;
    if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WAVE", 4) == 0)
        return *name = "WAV", 1;
    if (n >= 3 && memcmp(d, "ID3", 3) == 0)
        return *name = "MP3", 1;
    if (n >= 2 && d[0] == 0xFF && (d[1] & 0xE0) == 0xE0)
        return *name = "MP3", 1;
    if (n >= 4 && memcmp(d, "fLaC", 4) == 0)
        return *name = "FLAC", 1;
    return -1;
}

/* Takes data (owned) as the next item after checking its size and format. */
static shimmy_err add_bytes(api_media *m, unsigned char *data, size_t n, gen_media_kind kind,
                            const char *param, api_error *err) {
    const char *fmt;
    int what = sniff(data, n, &fmt);
    shimmy_err rc = SHIMMY_OK;
    if (n == 0)
        rc = api_fail(err, ERR_BAD_PARAM, param, "'%s' is empty", param);
    else if (n > LIM_MEDIA_BYTES)
        rc = api_fail(err, ERR_TOO_LARGE, param, "'%s' is %zu bytes; at most %u are accepted",
                      param, n, LIM_MEDIA_BYTES);
    else if (kind == GEN_MEDIA_IMAGE && what != 0)
        rc =
            api_fail(err, ERR_BAD_PARAM, param, "'%s' is not a PNG, JPEG, WebP, GIF or BMP image%s",
                     param, what == 1 ? " (it is audio)" : "");
    else if (kind == GEN_MEDIA_AUDIO && what != 1)
        rc = api_fail(err, ERR_BAD_PARAM, param, "'%s' is not WAV, MP3 or FLAC audio%s", param,
                      what == 0 ? " (it is an image)" : "");
    if (rc != SHIMMY_OK) {
        free(data);
        return rc;
    }
    int i = m->n++;
    m->owned[i] = data;
    snprintf(m->params[i], sizeof m->params[i], "%s", param);
    m->items[i] = (gen_media){.kind = kind, .data = data, .len = n, .param = m->params[i]};
    return SHIMMY_OK;
}

static shimmy_err room(const api_media *m, const char *param, api_error *err) {
    if (m->n >= LIM_MEDIA_PARTS)
        return api_fail(err, ERR_BAD_PARAM, param,
                        "too many images and audio clips: at most %d "
                        "per request",
                        LIM_MEDIA_PARTS);
    return SHIMMY_OK;
}

shimmy_err api_media_add_base64(api_media *m, const char *b64, size_t len, gen_media_kind kind,
                                const char *param, api_error *err) {
    shimmy_err rc = room(m, param, err);
    if (rc != SHIMMY_OK)
        return rc;
    if (len / 4 * 3 > (size_t)LIM_MEDIA_BYTES + 3)
        return api_fail(err, ERR_TOO_LARGE, param,
                        "'%s' is about %zu bytes; at most %u are "
                        "accepted",
                        param, len / 4 * 3, LIM_MEDIA_BYTES);
    unsigned char *data = malloc(len / 4 * 3 + 3);
    size_t n = 0;
    if (data == NULL)
        return ERR_NOMEM;
    if (!api_base64_decode(b64, len, data, &n)) {
        free(data);
        return api_fail(err, ERR_BAD_PARAM, param, "'%s' is not valid base64", param);
    }
    return add_bytes(m, data, n, kind, param, err);
}

typedef struct fetch_ctx {
    buf body;
    bool too_big;
} fetch_ctx;

static bool on_fetch_data(void *p, const char *data, size_t n) {
    fetch_ctx *f = p;
    if (f->body.len + n > LIM_MEDIA_BYTES || buf_append(&f->body, data, n) != SHIMMY_OK) {
        f->too_big = true;
        return false;
    }
    return true;
}

static shimmy_err fetch(api_media *m, const char *url, gen_media_kind kind, const char *param,
                        api_error *err) {
    if (!atomic_load(&allow_remote))
        return api_fail(err, ERR_BAD_PARAM, param,
                        "'%s' is a remote URL, which this server does "
                        "not fetch: send the file inline as a data: URI (data:image/png;base64,"
                        "...), or start the server with --allow-remote-media",
                        param);
    fetch_ctx f = {.too_big = false};
    buf_init(&f.body, LIM_MEDIA_BYTES + 1);
    http_client_req r = {.method = "GET",
                         .url = url,
                         .connect_timeout_s = LIM_MEDIA_FETCH_S,
                         .timeout_s = LIM_MEDIA_FETCH_S,
                         .max_redirects = LIM_MEDIA_REDIRECTS,
                         .on_data = on_fetch_data,
                         .ctx = &f};
    long status = 0;
    char why[256] = "";
    shimmy_err rc = http_client_do(&r, &status, why, sizeof why);
    if (f.too_big)
        rc = api_fail(err, ERR_TOO_LARGE, param, "'%s': the file at the URL is over %u bytes",
                      param, LIM_MEDIA_BYTES);
    else if (rc != SHIMMY_OK)
        rc = api_fail(err, ERR_BAD_PARAM, param, "'%s': fetching the URL failed: %s", param, why);
    else if (status != 200)
        rc = api_fail(err, ERR_BAD_PARAM, param,
                      "'%s': fetching the URL failed with HTTP status "
                      "%ld",
                      param, status);
    if (rc != SHIMMY_OK) {
        buf_free(&f.body);
        return rc;
    }
    unsigned char *data = malloc(f.body.len ? f.body.len : 1);
    if (data == NULL) {
        buf_free(&f.body);
        return ERR_NOMEM;
    }
    memcpy(data, f.body.data, f.body.len);
    size_t n = f.body.len;
    buf_free(&f.body);
    return add_bytes(m, data, n, kind, param, err);
}

shimmy_err api_media_add_url(api_media *m, const char *url, gen_media_kind kind, const char *param,
                             api_error *err) {
    shimmy_err rc = room(m, param, err);
    if (rc != SHIMMY_OK)
        return rc;
    if (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0)
        return fetch(m, url, kind, param, err);
    if (strncasecmp(url, "data:", 5) != 0)
        return api_fail(err, ERR_BAD_PARAM, param,
                        "'%s' must be a data: URI "
                        "(data:image/png;base64,...) or an http(s) URL",
                        param);
    const char *comma = strchr(url, ',');
    if (comma == NULL || comma - url < 12 || strncasecmp(comma - 7, ";base64", 7) != 0)
        return api_fail(err, ERR_BAD_PARAM, param,
                        "'%s' must be a base64 data: URI "
                        "(data:<type>;base64,<data>)",
                        param);
    return api_media_add_base64(m, comma + 1, strlen(comma + 1), kind, param, err);
}
