/* jsonw: see jsonw.h. */
#include "api/jsonw.h"

#include <inttypes.h>
#include <string.h>

#include "core/utf8.h"

void jsonw_begin(jsonw *w, buf *b) {
    w->b = b;
    w->start = b->len;
    w->err = SHIMMY_OK;
}

static void put(jsonw *w, const char *s, size_t n) {
    if (w->err == SHIMMY_OK && n > 0)
        w->err = buf_append(w->b, s, n);
}

void jsonw_raw(jsonw *w, const char *s) {
    put(w, s, strlen(s));
}

/* Bytes of the valid UTF-8 character at s[0..n), or 0 when s starts with an invalid sequence. */
static size_t utf8_char_len(const unsigned char *s, size_t n) {
    size_t len = s[0] < 0xE0 ? 2 : s[0] < 0xF0 ? 3 : 4;
    if (len > n || !utf8_valid((const char *)s, len))
        return 0;
    return len;
}

static void put_escape(jsonw *w, unsigned char c) {
    static const char hex[] = "0123456789abcdef";
    char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
    size_t n = 2;
    switch (c) {
    case '"':
        esc[1] = '"';
        break;
    case '\\':
        esc[1] = '\\';
        break;
    case '\n':
        esc[1] = 'n';
        break;
    case '\r':
        esc[1] = 'r';
        break;
    case '\t':
        esc[1] = 't';
        break;
    case '\b':
        esc[1] = 'b';
        break;
    case '\f':
        esc[1] = 'f';
        break;
    default:
        memcpy(esc + 1, "u00", 3);
        esc[4] = hex[c >> 4];
        esc[5] = hex[c & 15];
        n = 6;
    }
    put(w, esc, n);
}

void jsonw_str(jsonw *w, const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t run = 0; /* start of the pending run of bytes that need no escaping */
    size_t i = 0;
    put(w, "\"", 1);
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t len = utf8_char_len(s + i, n - i);
            if (len > 0) {
                i += len;
                continue;
            }
        }
        put(w, str + run, i - run);
        if (c >= 0x80)
            put(w, "\xEF\xBF\xBD", 3); /* U+FFFD for one invalid byte */
        else
            put_escape(w, c);
        run = ++i;
    }
    put(w, str + run, n - run);
    put(w, "\"", 1);
}

void jsonw_cstr(jsonw *w, const char *s) {
    if (s == NULL)
        jsonw_raw(w, "null");
    else
        jsonw_str(w, s, strlen(s));
}

void jsonw_int(jsonw *w, int64_t v) {
    if (w->err == SHIMMY_OK)
        w->err = buf_printf(w->b, "%" PRId64, v);
}

void jsonw_bool(jsonw *w, int v) {
    jsonw_raw(w, v ? "true" : "false");
}

shimmy_err jsonw_end(jsonw *w) {
    if (w->err != SHIMMY_OK && w->b->data != NULL) {
        w->b->len = w->start;
        w->b->data[w->start] = '\0';
    }
    return w->err;
}
