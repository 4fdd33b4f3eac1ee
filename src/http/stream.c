/* http/stream: SSE and NDJSON framing (see stream.h). Each function appends a whole frame or,
 * on error, restores the buf's length so that a half frame never reaches the client. */
#include "http/stream.h"

#include <string.h>

static void stream_rollback(buf *out, size_t len) {
    out->len = len;
    if (out->data)
        out->data[len] = '\0';
}

/* Appends data[0..n) with every CR and LF replaced by a space. */
static shimmy_err stream_append_flat(buf *out, const char *data, size_t n) {
    size_t start = out->len;
    shimmy_err e = buf_append(out, data, n);
    if (e != SHIMMY_OK)
        return e;
    for (size_t i = start; i < out->len; i++)
        if (out->data[i] == '\r' || out->data[i] == '\n')
            out->data[i] = ' ';
    return SHIMMY_OK;
}

/* Appends "data: <line>\n" for each line of data[0..n), so that a client joining the lines with
 * "\n" gets data back exactly (a trailing line break gives a last, empty data line). */
static shimmy_err stream_sse_lines(buf *out, const char *data, size_t n) {
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < n && data[j] != '\r' && data[j] != '\n')
            j++;
        shimmy_err e = buf_puts(out, "data: ");
        if (e == SHIMMY_OK)
            e = buf_append(out, data + i, j - i);
        if (e == SHIMMY_OK)
            e = buf_puts(out, "\n");
        if (e != SHIMMY_OK || j == n)
            return e;
        if (data[j] == '\r' && j + 1 < n && data[j + 1] == '\n')
            j++;
        i = j + 1;
    }
}

shimmy_err http_sse_event(buf *out, const char *event, const char *data, size_t n) {
    size_t len = out->len;
    shimmy_err e = SHIMMY_OK;
    if (event != NULL) {
        e = buf_puts(out, "event: ");
        if (e == SHIMMY_OK)
            e = stream_append_flat(out, event, strlen(event));
        if (e == SHIMMY_OK)
            e = buf_puts(out, "\n");
        if (e != SHIMMY_OK)
            goto out;
    }
    e = stream_sse_lines(out, data, n);
    if (e == SHIMMY_OK)
        e = buf_puts(out, "\n");
out:
    if (e != SHIMMY_OK)
        stream_rollback(out, len);
    return e;
}

shimmy_err http_sse_data(buf *out, const char *data) {
    return http_sse_event(out, NULL, data, strlen(data));
}

shimmy_err http_sse_comment(buf *out, const char *text) {
    size_t len = out->len;
    shimmy_err e = buf_puts(out, ": ");
    if (e == SHIMMY_OK)
        e = stream_append_flat(out, text, strlen(text));
    if (e == SHIMMY_OK)
        e = buf_puts(out, "\n\n");
    if (e != SHIMMY_OK)
        stream_rollback(out, len);
    return e;
}

shimmy_err http_ndjson_line(buf *out, const char *data, size_t n) {
    size_t len = out->len;
    shimmy_err e = stream_append_flat(out, data, n);
    if (e == SHIMMY_OK)
        e = buf_puts(out, "\n");
    if (e != SHIMMY_OK)
        stream_rollback(out, len);
    return e;
}
