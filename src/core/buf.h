/* buf: a growable byte buffer with a hard maximum fixed at creation (curl's dynbuf).
 * The content is always NUL-terminated. Not thread-safe: one owner at a time. */
#ifndef SHIMMY_BUF_H
#define SHIMMY_BUF_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

typedef struct buf {
    char *data; /* owned; NULL until the first append */
    size_t len; /* bytes used, excluding the NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* most bytes it may ever hold */
} buf;

void buf_init(buf *b, size_t max);
/* Frees the memory; the buf may be reused after buf_init. */
void buf_free(buf *b);
/* Empties the buf, keeping its memory. */
void buf_reset(buf *b);
/* Appends n bytes (borrows s). ERR_TOO_LARGE past max, ERR_NOMEM on allocation failure;
 * on error the buf is unchanged. */
shimmy_err buf_append(buf *b, const char *s, size_t n);
shimmy_err buf_puts(buf *b, const char *s);
shimmy_err buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Removes the first n bytes (n <= len). */
void buf_consume(buf *b, size_t n);
/* Returns the data and gives up ownership (returns owned, caller frees); the buf is empty. */
char *buf_take(buf *b);
static inline const char *buf_str(const buf *b) {
    return b->data ? b->data : "";
}

#endif
