/* Unit tests for engine/spec: the ngram-simple proposal, checked against the rule of llama.cpp's
 * common_ngram_simple_draft (common/ngram-map.cpp) on hand-made histories, and the speculation
 * type names of --spec-type. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "engine/spec.h"

/* A repeated phrase: the n-gram ending the history occurred before, and what followed it is
 * proposed, at most m tokens, at most cap. */
static void test_ngram_repeat(void **state) {
    (void)state;
    /* 1 .. 12 then 1 2 3 and last = 4: with n = 3 the pattern is 2 3 4 */
    int32_t h[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 1, 2, 3};
    int32_t out[64];
    int n = spec_ngram_draft(h, 15, 4, 3, 5, out, 64);
    /* pattern 2 3 4 at position 1: proposes h[4..9) = 5 6 7 8 9 */
    assert_int_equal(n, 5);
    int32_t want[] = {5, 6, 7, 8, 9};
    assert_memory_equal(out, want, sizeof want);
    /* cap below m cuts the proposal */
    assert_int_equal(spec_ngram_draft(h, 15, 4, 3, 5, out, 2), 2);
    assert_memory_equal(out, want, 2 * sizeof *out);
}

/* The newest earlier occurrence wins (the search runs backwards). */
static void test_ngram_newest_match(void **state) {
    (void)state;
    int32_t h[] = {0, 7, 8, 1, 1, 1, 0, 7, 8, 2, 2, 2, 9, 9, 9, 9, 0, 7};
    int32_t out[8];
    int n = spec_ngram_draft(h, 18, 8, 3, 3, out, 8);
    assert_int_equal(n, 3);
    int32_t want[] = {2, 2, 2};
    assert_memory_equal(out, want, sizeof want);
}

/* No proposal: history too short (n + m + 1 or fewer), no match, a match only at position 0
 * (never taken, as in the reference), or fewer than n tokens after the match. */
static void test_ngram_none(void **state) {
    (void)state;
    int32_t out[8];
    int32_t shortest[] = {1, 2, 3, 1, 2};
    assert_int_equal(spec_ngram_draft(shortest, 5, 3, 2, 2, out, 8), 0);
    int32_t nomatch[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    assert_int_equal(spec_ngram_draft(nomatch, 10, 11, 2, 3, out, 8), 0);
    int32_t at0[] = {5, 6, 1, 2, 3, 4, 7, 8, 9, 5};
    assert_int_equal(spec_ngram_draft(at0, 10, 6, 2, 3, out, 8), 0);
    /* pattern "9 4 7" at 3 (n = 3): 3 tokens follow, m = 1 proposes fewer than n: none */
    int32_t tail[] = {1, 2, 3, 9, 4, 7, 8, 9, 4};
    assert_int_equal(spec_ngram_draft(tail, 9, 7, 3, 1, out, 8), 0);
    /* pattern "4 7" at 4 (n = 2), m = 2: proposes 8 9 */
    assert_int_equal(spec_ngram_draft(tail, 9, 7, 2, 2, out, 8), 2);
    assert_int_equal(out[0], 8);
    assert_int_equal(out[1], 9);
    assert_int_equal(spec_ngram_draft(nomatch, 10, 11, 0, 3, out, 8), 0);
    assert_int_equal(spec_ngram_draft(nomatch, 0, 1, 1, 1, out, 8), 0);
}

static void test_names(void **state) {
    (void)state;
    engine_spec_type t = SPEC_NONE;
    assert_int_equal(engine_spec_type_parse("ngram-simple", &t), 0);
    assert_int_equal(t, SPEC_NGRAM);
    assert_int_equal(engine_spec_type_parse("draft-simple", &t), 0);
    assert_int_equal(t, SPEC_DRAFT);
    assert_int_equal(engine_spec_type_parse("none", &t), 0);
    assert_int_equal(t, SPEC_NONE);
    assert_int_equal(engine_spec_type_parse("ngram-mod", &t), -1);
    assert_string_equal(engine_spec_type_name(SPEC_NGRAM), "ngram-simple");
    engine_options o;
    engine_options_default(&o);
    assert_int_equal(engine_options_spec(&o), SPEC_NONE);
    o.draft_path = "draft.gguf";
    assert_int_equal(engine_options_spec(&o), SPEC_DRAFT);
    o.spec_type = SPEC_NGRAM;
    assert_int_equal(engine_options_spec(&o), SPEC_NGRAM);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ngram_repeat),
        cmocka_unit_test(test_ngram_newest_match),
        cmocka_unit_test(test_ngram_none),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
