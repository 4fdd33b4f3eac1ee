/* utf8: byte-level UTF-8 helpers for streaming token text safely. */
#ifndef SHIMMY_UTF8_H
#define SHIMMY_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the longest prefix of s[0..n) that does not end inside an incomplete multi-byte
 * sequence. Invalid bytes count as complete (they are passed on, never held forever). */
size_t utf8_complete_prefix(const char *s, size_t n);

/* True when s[0..n) is entirely valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool utf8_valid(const char *s, size_t n);

#endif
