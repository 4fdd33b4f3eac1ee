/* jsonw: a small JSON writer that appends to a core/buf without building a tree. Used for every
 * response body and SSE chunk of the API layer, so that producing a chunk costs no allocation
 * once the output buf has grown. Strings are escaped as JSON requires, and bytes that are not
 * valid UTF-8 become U+FFFD (the engine passes invalid bytes on rather than holding them).
 *
 * A writer records the first error and ignores the calls after it; jsonw_end returns that error
 * and then leaves the buf as it was at jsonw_begin. Not thread-safe: one writer per buf. */
#ifndef SHIMMY_API_JSONW_H
#define SHIMMY_API_JSONW_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

typedef struct jsonw {
    buf *b;       /* borrowed */
    size_t start; /* b->len at jsonw_begin, restored on error */
    shimmy_err err;
} jsonw;

void jsonw_begin(jsonw *w, buf *b);
/* Appends trusted JSON text (literal keys, punctuation) as is. */
void jsonw_raw(jsonw *w, const char *s);
/* Appends s[0..n) as a quoted, escaped JSON string. */
void jsonw_str(jsonw *w, const char *s, size_t n);
/* Appends the NUL-terminated s as a JSON string, or null when s is NULL. */
void jsonw_cstr(jsonw *w, const char *s);
void jsonw_int(jsonw *w, int64_t v);
void jsonw_bool(jsonw *w, int v);
/* Returns the first error (SHIMMY_OK when none); on error the buf is back to its start. */
shimmy_err jsonw_end(jsonw *w);

#endif
