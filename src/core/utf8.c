/* utf8: see utf8.h. */
#include "core/utf8.h"

static int seq_len(unsigned char c) {
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return 2;
    if (c >= 0xE0 && c <= 0xEF)
        return 3;
    if (c >= 0xF0 && c <= 0xF4)
        return 4;
    return 0; /* continuation or invalid lead byte */
}

size_t utf8_complete_prefix(const char *s, size_t n) {
    /* Look back at most 3 bytes for a lead byte whose sequence runs past the end. */
    size_t back = n < 4 ? n : 4;
    for (size_t i = 1; i <= back; i++) {
        unsigned char c = (unsigned char)s[n - i];
        if ((c & 0xC0) == 0x80)
            continue; /* continuation byte: keep looking for the lead */
        int len = seq_len(c);
        if (len > (int)i)
            return n - i; /* lead byte of a sequence that is not finished yet */
        return n;
    }
    return n;
}

bool utf8_valid(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        int len = seq_len(c);
        if (len == 0 || i + (size_t)len > n)
            return false;
        for (int k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
        if (len == 3) {
            if (c == 0xE0 && s[i + 1] < 0xA0)
                return false; /* overlong */
            if (c == 0xED && s[i + 1] >= 0xA0)
                return false; /* surrogate */
        } else if (len == 4) {
            if (c == 0xF0 && s[i + 1] < 0x90)
                return false; /* overlong */
            if (c == 0xF4 && s[i + 1] >= 0x90)
                return false; /* > U+10FFFF */
        }
        i += (size_t)len;
    }
    return true;
}
