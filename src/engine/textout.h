/* engine/textout: turns a slot's stream of token pieces into text that is safe to send.
 * - never splits a UTF-8 character (bytes of an unfinished character are held back);
 * - never sends bytes that might be the start of a stop string (held back until decided);
 * - ends the text right before the first stop string found;
 * - output is always valid UTF-8 (invalid bytes become U+FFFD).
 * Pure and single-threaded: one per slot, reused across requests (allocates only when a
 * request brings longer text than any before). */
#ifndef SHIMMY_TEXTOUT_H
#define SHIMMY_TEXTOUT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

typedef struct textout {
    buf pending;  /* bytes received but not yet sent */
    char **stops; /* owned copies of the stop strings */
    int n_stop;
    bool stopped;        /* a stop string was found; further input is ignored */
    const char *matched; /* the stop string found (one of stops), or NULL */
} textout;

void textout_init(textout *t);
/* Starts a new request: clears pending text and copies the stop strings (borrows stops; empty
 * strings are ignored). Returns ERR_NOMEM on allocation failure. */
shimmy_err textout_reset(textout *t, const char *const *stops, int n_stop);
/* Feeds one piece; appends the text that is now safe to send to out. Returns true when a stop
 * string was found (out then holds everything before it; the request should end). */
bool textout_feed(textout *t, const char *piece, size_t n, buf *out);
/* End of generation without a stop string: appends what is still held back (unfinished UTF-8
 * becomes U+FFFD). */
void textout_flush(textout *t, buf *out);
void textout_free(textout *t);

/* Appends s[0..n) to out with every invalid UTF-8 sequence replaced by U+FFFD. */
shimmy_err utf8_append_sanitized(buf *out, const char *s, size_t n);

#endif
