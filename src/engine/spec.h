/* engine/spec: the draft-free proposal of speculative decoding (llama-server's "ngram-simple",
 * common/ngram-map.cpp's common_ngram_simple_draft, same rule and sizes) and the names of the
 * speculation types. Pure functions over token arrays: no llama.cpp, no allocation. Internal to
 * engine/ (the scheduler, sched.c, runs drafts and verifies them). */
#ifndef SHIMMY_ENGINE_SPEC_H
#define SHIMMY_ENGINE_SPEC_H

#include <stdint.h>

/* Proposes the tokens that followed the last earlier occurrence of the current n-gram: the
 * n-gram is hist[n_hist-(n-1)..n_hist) followed by last (the token sampled, not yet in hist).
 * The search runs backwards from the newest possible match and skips position 0, as the
 * reference does. Nothing is proposed when hist holds n + m + 1 tokens or fewer, when there is
 * no match, or when fewer than n tokens follow the match. Writes at most min(m, cap) tokens to
 * out; returns their count. Borrows hist; any thread. */
int spec_ngram_draft(const int32_t *hist, int n_hist, int32_t last, int n, int m, int32_t *out,
                     int cap);

#endif
