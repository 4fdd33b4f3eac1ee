/* http/stream: framing for streamed responses, Server-Sent Events (text/event-stream, OpenAI)
 * and NDJSON (application/x-ndjson, Ollama). Pure functions over a buf: they append one complete
 * frame or nothing (on error the buf is unchanged). Thread-safe as far as the buf is. */
#ifndef SHIMMY_HTTP_STREAM_H
#define SHIMMY_HTTP_STREAM_H

#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

#define HTTP_SSE_CONTENT_TYPE "text/event-stream"
#define HTTP_NDJSON_CONTENT_TYPE "application/x-ndjson"

/* Appends an SSE event: "event: <event>\n" when event is non-NULL, then one "data: " line per
 * line of data[0..n) (CR, LF and CRLF all split lines, as the SSE spec reads them), then the
 * blank line that ends the event. Borrows event and data. Errors: ERR_TOO_LARGE, ERR_NOMEM. */
shimmy_err http_sse_event(buf *out, const char *event, const char *data, size_t n);
/* http_sse_event(out, NULL, data, strlen(data)). */
shimmy_err http_sse_data(buf *out, const char *data);
/* Appends an SSE comment (": <text>\n\n"), which clients ignore: a keep-alive. text must not
 * contain line breaks (they are replaced by spaces). */
shimmy_err http_sse_comment(buf *out, const char *text);
/* Appends one NDJSON line: data[0..n) followed by "\n". Line breaks inside data (there are none
 * in compact JSON) are replaced by spaces so that the framing holds. */
shimmy_err http_ndjson_line(buf *out, const char *data, size_t n);

#endif
