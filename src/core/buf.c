/* buf: see buf.h. */
#include "core/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(buf *b, size_t max) {
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

void buf_free(buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void buf_reset(buf *b) {
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static shimmy_err buf_reserve(buf *b, size_t extra) {
    if (extra > b->max || b->len > b->max - extra)
        return ERR_TOO_LARGE;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return SHIMMY_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap - 1 > b->max) /* not cap > max + 1: max may be SIZE_MAX */
        cap = b->max + 1;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return SHIMMY_OK;
}

shimmy_err buf_append(buf *b, const char *s, size_t n) {
    shimmy_err e = buf_reserve(b, n);
    if (e != SHIMMY_OK)
        return e;
    if (n > 0)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return SHIMMY_OK;
}

shimmy_err buf_puts(buf *b, const char *s) {
    return buf_append(b, s, strlen(s));
}

shimmy_err buf_printf(buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return ERR_INTERNAL;
    shimmy_err e = buf_reserve(b, (size_t)n);
    if (e != SHIMMY_OK)
        return e;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return SHIMMY_OK;
}

void buf_consume(buf *b, size_t n) {
    if (n >= b->len) {
        buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *buf_take(buf *b) {
    char *p = b->data;
    if (p == NULL)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
