/* Unit tests for core/buf: appends up to the maximum fixed at creation and not one byte past it
 * (the buf unchanged after a refused append), the NUL terminator, printf, consume, take, reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

static void test_empty(void **state) {
    (void)state;
    buf b;
    buf_init(&b, 16);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_str(&b), "");
    assert_int_equal(buf_append(&b, "", 0), SHIMMY_OK); /* an empty append still terminates */
    assert_non_null(b.data);
    assert_string_equal(buf_str(&b), "");
    buf_free(&b);
    assert_null(b.data);
}

static void test_append_to_max(void **state) {
    (void)state;
    buf b;
    buf_init(&b, 8);
    assert_int_equal(buf_append(&b, "abcd", 4), SHIMMY_OK);
    assert_int_equal(buf_append(&b, "efgh", 4), SHIMMY_OK); /* exactly max */
    assert_int_equal(b.len, 8);
    assert_string_equal(buf_str(&b), "abcdefgh");
    assert_int_equal(b.cap, 9); /* never more than max + 1 allocated */
    assert_int_equal(buf_append(&b, "i", 1), ERR_TOO_LARGE);
    assert_int_equal(b.len, 8); /* unchanged */
    assert_string_equal(buf_str(&b), "abcdefgh");
    assert_int_equal(buf_append(&b, "", 0), SHIMMY_OK); /* nothing more still fits */
    buf_free(&b);
}

static void test_refused_append_leaves_buf(void **state) {
    (void)state;
    buf b;
    buf_init(&b, 10);
    assert_int_equal(buf_puts(&b, "hello"), SHIMMY_OK);
    assert_int_equal(buf_puts(&b, "world!"), ERR_TOO_LARGE); /* 11 > 10 */
    assert_int_equal(b.len, 5);
    assert_string_equal(buf_str(&b), "hello");
    assert_int_equal(buf_append(&b, "x", SIZE_MAX), ERR_TOO_LARGE); /* no overflow in the check */
    assert_int_equal(b.len, 5);
    buf_free(&b);
}

static void test_growth_keeps_content(void **state) {
    (void)state;
    buf b;
    buf_init(&b, 1 << 20);
    char piece[100];
    memset(piece, 'x', sizeof piece);
    for (int i = 0; i < 1000; i++) {
        piece[0] = (char)('a' + i % 26);
        assert_int_equal(buf_append(&b, piece, sizeof piece), SHIMMY_OK);
    }
    assert_int_equal(b.len, 100000);
    assert_int_equal(strlen(buf_str(&b)), 100000);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(b.data[i * 100], 'a' + i % 26);
    buf_free(&b);
}

static void test_unbounded_max(void **state) {
    (void)state;
    buf b;
    buf_init(&b, SIZE_MAX); /* "no maximum": the cap clamp must not wrap */
    assert_int_equal(buf_puts(&b, "abc"), SHIMMY_OK);
    assert_true(b.cap >= 4);
    assert_string_equal(buf_str(&b), "abc");
    buf_free(&b);
}

static void test_printf(void **state) {
    (void)state;
    buf b;
    buf_init(&b, 12);
    assert_int_equal(buf_printf(&b, "%d-%s", 42, "ab"), SHIMMY_OK);
    assert_string_equal(buf_str(&b), "42-ab");
    assert_int_equal(buf_printf(&b, "%s", "1234567"), SHIMMY_OK); /* 12: exactly max */
    assert_string_equal(buf_str(&b), "42-ab1234567");
    assert_int_equal(buf_printf(&b, "%c", 'z'), ERR_TOO_LARGE);
    assert_string_equal(buf_str(&b), "42-ab1234567");
    assert_int_equal(buf_printf(&b, "%s", ""), SHIMMY_OK);
    buf_free(&b);
}

static void test_consume(void **state) {
    (void)state;
    buf b;
    buf_init(&b, 64);
    buf_consume(&b, 0); /* on an empty buf: nothing */
    assert_int_equal(buf_puts(&b, "line one\nline two\n"), SHIMMY_OK);
    buf_consume(&b, 9);
    assert_string_equal(buf_str(&b), "line two\n");
    assert_int_equal(b.len, 9);
    buf_consume(&b, 9); /* all of it */
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_str(&b), "");
    assert_int_equal(buf_puts(&b, "again"), SHIMMY_OK); /* the memory is reused */
    assert_string_equal(buf_str(&b), "again");
    buf_free(&b);
}

static void test_reset_and_take(void **state) {
    (void)state;
    buf b;
    buf_init(&b, 64);
    assert_int_equal(buf_puts(&b, "some text"), SHIMMY_OK);
    size_t cap = b.cap;
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap); /* memory kept */
    assert_string_equal(buf_str(&b), "");
    assert_int_equal(buf_puts(&b, "kept"), SHIMMY_OK);
    char *p = buf_take(&b);
    assert_string_equal(p, "kept");
    assert_null(b.data); /* ownership gone */
    assert_int_equal(b.len, 0);
    free(p);
    p = buf_take(&b); /* an empty buf gives an owned "" */
    assert_non_null(p);
    assert_string_equal(p, "");
    free(p);
    assert_int_equal(buf_puts(&b, "reusable"), SHIMMY_OK);
    assert_string_equal(buf_str(&b), "reusable");
    buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_append_to_max),
        cmocka_unit_test(test_refused_append_leaves_buf),
        cmocka_unit_test(test_growth_keeps_content),
        cmocka_unit_test(test_unbounded_max),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_consume),
        cmocka_unit_test(test_reset_and_take),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
