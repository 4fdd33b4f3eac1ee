/* gen_common.h: what the fixture generators (gen_model, gen_reranker, gen_vision) share: their
 * seeded random numbers (xorshift64*: the same bytes on every machine, so fixtures and the
 * goldens made from them stay stable) and checked parsing of positive integer options.
 * Single-threaded tools: the generator state is one per program. */
#ifndef SHIMMY_TOOLS_GEN_COMMON_H
#define SHIMMY_TOOLS_GEN_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

static uint64_t rng_state; /* set by the tool from its seed before the first rnd() */

/* Uniform in [-1, 1). */
static inline float rnd(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t r = rng_state * 2685821657736338717ULL;
    return (float)((double)(r >> 11) / 4503599627370496.0 - 1.0);
}

/* A whole positive decimal number in *out; -1 (and *out untouched) for anything else. */
static inline int parse_long(const char *s, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v <= 0)
        return -1;
    *out = v;
    return 0;
}

#endif
