/* engine/textout: see textout.h. */
#include "engine/textout.h"

#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/utf8.h"

void textout_init(textout *t) {
    buf_init(&t->pending, LIM_RESPONSE_BYTES);
    t->stops = NULL;
    t->n_stop = 0;
    t->stopped = false;
    t->matched = NULL;
}

static void free_stops(textout *t) {
    for (int i = 0; i < t->n_stop; i++)
        free(t->stops[i]);
    free(t->stops);
    t->stops = NULL;
    t->n_stop = 0;
}

shimmy_err textout_reset(textout *t, const char *const *stops, int n_stop) {
    buf_reset(&t->pending);
    free_stops(t);
    t->stopped = false;
    t->matched = NULL;
    if (n_stop <= 0)
        return SHIMMY_OK;
    t->stops = calloc((size_t)n_stop, sizeof *t->stops);
    if (t->stops == NULL)
        return ERR_NOMEM;
    for (int i = 0; i < n_stop; i++) {
        if (stops[i] == NULL || stops[i][0] == '\0')
            continue;
        t->stops[t->n_stop] = strdup(stops[i]);
        if (t->stops[t->n_stop] == NULL)
            return ERR_NOMEM;
        t->n_stop++;
    }
    return SHIMMY_OK;
}

void textout_free(textout *t) {
    free_stops(t);
    buf_free(&t->pending);
}

/* Length of the valid UTF-8 character at s[0..n), or 0 when the bytes there are invalid. */
static size_t valid_char_len(const char *s, size_t n) {
    for (size_t l = 1; l <= 4 && l <= n; l++)
        if (utf8_valid(s, l))
            return l;
    return 0;
}

shimmy_err utf8_append_sanitized(buf *out, const char *s, size_t n) {
    if (utf8_valid(s, n))
        return buf_append(out, s, n);
    size_t run = 0; /* start of the current valid run */
    size_t i = 0;
    while (i < n) {
        size_t l = valid_char_len(s + i, n - i);
        if (l > 0) {
            i += l;
            continue;
        }
        shimmy_err e = buf_append(out, s + run, i - run);
        if (e == SHIMMY_OK)
            e = buf_append(out, "\xEF\xBF\xBD", 3);
        if (e != SHIMMY_OK)
            return e;
        run = ++i;
    }
    return buf_append(out, s + run, n - run);
}

/* Earliest position of any stop string in s[0..n), or -1; *len gets its length. */
static long find_stop(const textout *t, const char *s, size_t n, int *which) {
    long best = -1;
    for (int i = 0; i < t->n_stop; i++) {
        const char *hit = memmem(s, n, t->stops[i], strlen(t->stops[i]));
        if (hit != NULL && (best < 0 || hit - s < best)) {
            best = hit - s;
            *which = i;
        }
    }
    return best;
}

/* Length of the longest suffix of s[0..n) that is a proper prefix of some stop string. */
static size_t partial_stop_len(const textout *t, const char *s, size_t n) {
    size_t best = 0;
    for (int i = 0; i < t->n_stop; i++) {
        size_t sl = strlen(t->stops[i]);
        size_t max = sl - 1 < n ? sl - 1 : n;
        for (size_t k = max; k > best; k--)
            if (memcmp(s + n - k, t->stops[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

bool textout_feed(textout *t, const char *piece, size_t n, buf *out) {
    if (t->stopped)
        return true;
    if (buf_append(&t->pending, piece, n) != SHIMMY_OK) {
        /* a response this long is over the limit: end it as if stopped */
        textout_flush(t, out);
        t->stopped = true;
        return true;
    }
    const char *s = t->pending.data;
    size_t len = t->pending.len;
    int which = -1;
    long at = find_stop(t, s, len, &which);
    if (at >= 0) {
        utf8_append_sanitized(out, s, (size_t)at);
        buf_reset(&t->pending);
        t->stopped = true;
        t->matched = t->stops[which];
        return true;
    }
    size_t safe = len - partial_stop_len(t, s, len);
    safe = utf8_complete_prefix(s, safe);
    if (safe > 0) {
        utf8_append_sanitized(out, s, safe);
        buf_consume(&t->pending, safe);
    }
    return false;
}

void textout_flush(textout *t, buf *out) {
    if (t->pending.len > 0)
        utf8_append_sanitized(out, t->pending.data, t->pending.len);
    buf_reset(&t->pending);
}
