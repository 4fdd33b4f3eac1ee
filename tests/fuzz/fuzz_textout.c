/* fuzz_textout: the streaming text path (engine/textout.h, core/utf8.h).
 * Input: byte 0 is a separator, byte 1 mod 4 the number of stop strings; the rest, split at each
 * separator byte, gives those stop strings first and then the token pieces fed one by one.
 * Checked against a reference computed on the whole text at once:
 *   - the output is valid UTF-8;
 *   - it equals the sanitized text before the first stop string (the whole text when none);
 *   - a stop is reported iff a stop string occurs;
 *   - utf8_complete_prefix holds back at most 3 bytes, and nothing of valid UTF-8. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "engine/textout.h"

#define MAX_STOPS 3

static void check(bool ok) {
    if (!ok)
        abort();
}

static void check_utf8(const char *s, size_t n) {
    size_t p = utf8_complete_prefix(s, n);
    check(p <= n && n - p <= 3);
    if (utf8_valid(s, n))
        check(p == n);
}

/* Earliest end of text before any stop string in s[0..n), or n; *hit when one was found. */
static size_t ref_stop(char *const *stops, int n_stop, const char *s, size_t n, bool *hit) {
    size_t best = n;
    *hit = false;
    for (int i = 0; i < n_stop; i++) {
        size_t sl = strlen(stops[i]);
        if (sl == 0)
            continue;
        const char *at = memmem(s, n, stops[i], sl);
        if (at != NULL && (size_t)(at - s) <= best) {
            best = (size_t)(at - s);
            *hit = true;
        }
    }
    return best;
}

static textout t;
static bool t_ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    if (!t_ready) { /* one per process, reused across inputs as a slot reuses it */
        textout_init(&t);
        t_ready = true;
    }
    const char sep = (char)data[0];
    int want_stops = data[1] % (MAX_STOPS + 1);
    const char *p = (const char *)data + 2, *end = (const char *)data + size;

    char *stops[MAX_STOPS];
    int n_stop = 0;
    buf whole, out, ref;
    buf_init(&whole, 1u << 20);
    buf_init(&out, 1u << 22);
    buf_init(&ref, 1u << 22);
    /* stop strings: NUL-terminated copies (textout copies them with strdup) */
    while (n_stop < want_stops && p < end) {
        const char *q = memchr(p, sep, (size_t)(end - p));
        size_t n = q ? (size_t)(q - p) : (size_t)(end - p);
        stops[n_stop] = strndup(p, n);
        check(stops[n_stop] != NULL);
        n_stop++;
        p += n + (q ? 1 : 0);
    }
    check(textout_reset(&t, (const char *const *)stops, n_stop) == SHIMMY_OK);

    bool stopped = false;
    while (p < end) {
        const char *q = memchr(p, sep, (size_t)(end - p));
        size_t n = q ? (size_t)(q - p) : (size_t)(end - p);
        check_utf8(p, n);
        if (!stopped)
            check(buf_append(&whole, p, n) == SHIMMY_OK);
        if (textout_feed(&t, p, n, &out))
            stopped = true;
        p += n + (q ? 1 : 0);
    }
    if (!stopped)
        textout_flush(&t, &out);

    bool hit;
    size_t keep = ref_stop(stops, n_stop, buf_str(&whole), whole.len, &hit);
    check(hit == stopped);
    check(utf8_append_sanitized(&ref, buf_str(&whole), keep) == SHIMMY_OK);
    check(utf8_valid(buf_str(&out), out.len));
    check(out.len == ref.len && memcmp(buf_str(&out), buf_str(&ref), out.len) == 0);

    for (int i = 0; i < n_stop; i++)
        free(stops[i]);
    buf_free(&whole);
    buf_free(&out);
    buf_free(&ref);
    return 0;
}
