/* Unit tests for engine/textout and core/utf8: whole UTF-8 characters, held-back stop strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/utf8.h"
#include "engine/textout.h"

/* Feeds pieces one by one; returns the concatenated output and checks every emitted part is
 * valid UTF-8 on its own. */
static bool feed_all(textout *t, const char *const *pieces, int n, buf *all) {
    bool stopped = false;
    for (int i = 0; i < n && !stopped; i++) {
        buf part;
        buf_init(&part, 1 << 20);
        stopped = textout_feed(t, pieces[i], strlen(pieces[i]), &part);
        assert_true(utf8_valid(buf_str(&part), part.len));
        buf_append(all, buf_str(&part), part.len);
        buf_free(&part);
    }
    if (!stopped)
        textout_flush(t, all);
    return stopped;
}

static void test_utf8_prefix(void **state) {
    (void)state;
    assert_int_equal(utf8_complete_prefix("ab", 2), 2);
    assert_int_equal(utf8_complete_prefix("a\xC3", 2), 1);
    assert_int_equal(utf8_complete_prefix("a\xE2\x82", 3), 1);
    assert_int_equal(utf8_complete_prefix("a\xE2\x82\xAC", 4), 4);
    assert_int_equal(utf8_complete_prefix("\xF0\x9F\x98", 3), 0);
    assert_true(utf8_valid("\xF0\x9F\x98\x80", 4));
    assert_false(utf8_valid("\xED\xA0\x80", 3)); /* surrogate */
    assert_false(utf8_valid("\xC0\xAF", 2));     /* overlong */
}

static void test_split_character(void **state) {
    (void)state;
    textout t;
    textout_init(&t);
    textout_reset(&t, NULL, 0);
    const char *pieces[] = {"caf", "\xC3", "\xA9", " \xF0\x9F", "\x98", "\x80!"};
    buf all;
    buf_init(&all, 1 << 20);
    assert_false(feed_all(&t, pieces, 6, &all));
    assert_string_equal(buf_str(&all), "caf\xC3\xA9 \xF0\x9F\x98\x80!");
    buf_free(&all);
    textout_free(&t);
}

static void test_stop_across_pieces(void **state) {
    (void)state;
    textout t;
    textout_init(&t);
    const char *stops[] = {"", "named"};
    textout_reset(&t, stops, 2);
    const char *pieces[] = {"a girl na", "m", "ed Lily"};
    buf all;
    buf_init(&all, 1 << 20);
    buf first;
    buf_init(&first, 1 << 20);
    /* the partial match "na" is held back, never sent */
    assert_false(textout_feed(&t, pieces[0], strlen(pieces[0]), &first));
    assert_string_equal(buf_str(&first), "a girl ");
    buf_free(&first);
    assert_false(textout_feed(&t, pieces[1], 1, &all));
    assert_int_equal(all.len, 0);
    assert_true(textout_feed(&t, pieces[2], strlen(pieces[2]), &all));
    assert_int_equal(all.len, 0);
    buf_free(&all);
    textout_free(&t);
}

static void test_false_partial_released(void **state) {
    (void)state;
    textout t;
    textout_init(&t);
    const char *stops[] = {"STOP"};
    textout_reset(&t, stops, 1);
    const char *pieces[] = {"go ST", "AY here"};
    buf all;
    buf_init(&all, 1 << 20);
    assert_false(feed_all(&t, pieces, 2, &all));
    assert_string_equal(buf_str(&all), "go STAY here");
    buf_free(&all);
    textout_free(&t);
}

static void test_earliest_stop_wins(void **state) {
    (void)state;
    textout t;
    textout_init(&t);
    const char *stops[] = {"world", "lo w"};
    textout_reset(&t, stops, 2);
    const char *pieces[] = {"hello world"};
    buf all;
    buf_init(&all, 1 << 20);
    assert_true(feed_all(&t, pieces, 1, &all));
    assert_string_equal(buf_str(&all), "hel");
    buf_free(&all);
    textout_free(&t);
}

static void test_invalid_bytes_replaced(void **state) {
    (void)state;
    buf out;
    buf_init(&out, 1 << 20);
    assert_int_equal(utf8_append_sanitized(&out,
                                           "a\xFF"
                                           "b\xC3",
                                           4),
                     SHIMMY_OK);
    assert_string_equal(buf_str(&out), "a\xEF\xBF\xBD"
                                       "b\xEF\xBF\xBD");
    buf_free(&out);
    /* unfinished character at the end of generation becomes U+FFFD */
    textout t;
    textout_init(&t);
    textout_reset(&t, NULL, 0);
    const char *pieces[] = {"x\xE2\x82"};
    buf all;
    buf_init(&all, 1 << 20);
    feed_all(&t, pieces, 1, &all);
    assert_true(utf8_valid(buf_str(&all), all.len));
    assert_memory_equal(buf_str(&all), "x\xEF\xBF\xBD", 4);
    buf_free(&all);
    textout_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_prefix),        cmocka_unit_test(test_split_character),
        cmocka_unit_test(test_stop_across_pieces), cmocka_unit_test(test_false_partial_released),
        cmocka_unit_test(test_earliest_stop_wins), cmocka_unit_test(test_invalid_bytes_replaced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
