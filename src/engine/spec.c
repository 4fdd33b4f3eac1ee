/* engine/spec: spec.h, and engine.h's speculation type names (llama-server's --spec-type). */
#include <string.h>
#include <strings.h>

#include "engine/engine.h"
#include "engine/spec.h"

static const char *const spec_names[SPEC__COUNT] = {
    [SPEC_NONE] = "none", [SPEC_DRAFT] = "draft-simple", [SPEC_NGRAM] = "ngram-simple"};

int engine_spec_type_parse(const char *s, engine_spec_type *out) {
    if (s == NULL)
        return -1;
    for (int t = 0; t < SPEC__COUNT; t++)
        if (strcasecmp(s, spec_names[t]) == 0) {
            *out = (engine_spec_type)t;
            return 0;
        }
    if (strcasecmp(s, "draft") == 0 || strcasecmp(s, "ngram") == 0) {
        *out = strcasecmp(s, "draft") == 0 ? SPEC_DRAFT : SPEC_NGRAM;
        return 0;
    }
    return -1;
}

const char *engine_spec_type_name(engine_spec_type t) {
    return t >= 0 && t < SPEC__COUNT ? spec_names[t] : "?";
}

engine_spec_type engine_options_spec(const engine_options *o) {
    if (o->spec_type == SPEC_NONE && o->draft_path != NULL && o->draft_path[0] != '\0')
        return SPEC_DRAFT;
    return o->spec_type;
}

/* Whether hist[at..at+n-1) followed by last equals the n-gram ending the history. */
static int ngram_at(const int32_t *hist, int n_hist, int32_t last, int n, int at) {
    for (int k = 0; k < n - 1; k++)
        if (hist[at + k] != hist[n_hist - (n - 1) + k])
            return 0;
    return hist[at + n - 1] == last;
}

int spec_ngram_draft(const int32_t *hist, int n_hist, int32_t last, int n, int m, int32_t *out,
                     int cap) {
    if (n < 1 || m < 1 || cap < 1 || n_hist <= n + m + 1)
        return 0;
    int match = 0; /* 0 = none: position 0 is never taken, as in the reference */
    for (int j = n_hist - n - 1; j > 0 && match == 0; j--)
        if (ngram_at(hist, n_hist, last, n, j))
            match = j;
    if (match == 0)
        return 0;
    int copy = n_hist - (match + n);
    copy = copy < m ? copy : m;
    if (copy < n)
        return 0;
    copy = copy < cap ? copy : cap;
    memcpy(out, hist + match + n, (size_t)copy * sizeof *out);
    return copy;
}
