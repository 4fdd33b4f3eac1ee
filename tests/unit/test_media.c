/* Unit tests for api/media: base64 (standard, URL-safe, padding, whitespace, garbage), data: URIs,
 * the formats taken (WebP too) and refused (TIFF, audio as an image, an image as audio), the size
 * and count limits, remote URLs refused without --allow-remote-media; and the OpenAI wire turning
 * image parts into media and media_marker parts of the engine's chat JSON. */
/* cmocka.h needs these first */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/media.h"
#include "api/openai_wire.h"

/* 1x1 PNG, and the start of GIF, JPEG, WAV files */
#define PNG_B64                                                                                    \
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+"                                \
    "M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

static void test_base64(void **state) {
    (void)state;
    unsigned char out[64];
    size_t n;
    assert_true(api_base64_decode("aGVsbG8=", 8, out, &n));
    assert_int_equal(n, 5);
    assert_memory_equal(out, "hello", 5);
    assert_true(api_base64_decode("aGVsbG8", 7, out, &n)); /* padding optional */
    assert_int_equal(n, 5);
    assert_true(api_base64_decode("aG Vs\nbG8=", 10, out, &n)); /* whitespace skipped */
    assert_int_equal(n, 5);
    assert_true(api_base64_decode("-_8=", 4, out, &n)); /* URL-safe alphabet */
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(out[1], 0xff);
    assert_false(api_base64_decode("a*b=", 4, out, &n));
    assert_false(api_base64_decode("aGk=aGk=", 8, out, &n)); /* data after padding */
    assert_false(api_base64_decode("a", 1, out, &n));        /* not whole bytes */
}

static void expect(shimmy_err got, const api_error *e, shimmy_err want, const char *needle) {
    assert_int_equal(got, want);
    if (needle != NULL && strstr(e->message, needle) == NULL)
        fail_msg("message '%s' lacks '%s'", e->message, needle);
}

static void test_add(void **state) {
    (void)state;
    api_media m;
    api_error e;
    api_media_init(&m);
    api_error_clear(&e);
    assert_int_equal(
        api_media_add_url(&m, "data:image/png;base64," PNG_B64, GEN_MEDIA_IMAGE, "p0", &e),
        SHIMMY_OK);
    assert_int_equal(m.n, 1);
    assert_int_equal(m.items[0].kind, GEN_MEDIA_IMAGE);
    assert_int_equal(m.items[0].len, 70);
    assert_memory_equal(m.items[0].data, "\x89PNG", 4);
    assert_string_equal(m.items[0].param, "p0");
    assert_int_equal(api_media_add_base64(&m, PNG_B64, strlen(PNG_B64), GEN_MEDIA_IMAGE, "p1", &e),
                     SHIMMY_OK);
    expect(api_media_add_url(&m, "data:image/png," PNG_B64, GEN_MEDIA_IMAGE, "x", &e), &e,
           ERR_BAD_PARAM, "base64 data: URI");
    expect(api_media_add_url(&m, "file:///etc/passwd", GEN_MEDIA_IMAGE, "x", &e), &e, ERR_BAD_PARAM,
           "data: URI");
    expect(api_media_add_url(&m, "https://example.com/a.png", GEN_MEDIA_IMAGE, "x", &e), &e,
           ERR_BAD_PARAM, "--allow-remote-media");
    assert_int_equal(api_media_add_url(&m,
                                       "data:image/webp;base64,UklGRhYAAABXRUJQVlA4IAoAAAAQ"
                                       "AAAAAAAA",
                                       GEN_MEDIA_IMAGE, "w", &e),
                     SHIMMY_OK);
    expect(api_media_add_url(&m, "data:image/tiff;base64,SUkqAAgAAAA=", GEN_MEDIA_IMAGE, "x", &e),
           &e, ERR_BAD_PARAM, "is not a PNG, JPEG, WebP, GIF or BMP image");
    expect(api_media_add_base64(&m, "UklGRiQAAABXQVZFZm10IA==", 24, GEN_MEDIA_IMAGE, "x", &e), &e,
           ERR_BAD_PARAM, "(it is audio)");
    expect(api_media_add_base64(&m, PNG_B64, strlen(PNG_B64), GEN_MEDIA_AUDIO, "x", &e), &e,
           ERR_BAD_PARAM, "(it is an image)");
    expect(api_media_add_base64(&m, "", 0, GEN_MEDIA_IMAGE, "x", &e), &e, ERR_BAD_PARAM, "empty");
    assert_string_equal(e.param, "x");
    assert_int_equal(m.n, 3); /* the refused ones were not added */
    /* too large: 9 MiB of base64 decodes past LIM_MEDIA_BYTES */
    size_t big = 9u << 20;
    char *b = malloc(big + 1);
    memset(b, 'A', big);
    b[big] = '\0';
    expect(api_media_add_base64(&m, b, big, GEN_MEDIA_IMAGE, "big", &e), &e, ERR_TOO_LARGE,
           "at most");
    free(b);
    /* too many */
    while (m.n < LIM_MEDIA_PARTS)
        assert_int_equal(
            api_media_add_base64(&m, PNG_B64, strlen(PNG_B64), GEN_MEDIA_IMAGE, "p", &e),
            SHIMMY_OK);
    expect(api_media_add_base64(&m, PNG_B64, strlen(PNG_B64), GEN_MEDIA_IMAGE, "p", &e), &e,
           ERR_BAD_PARAM, "at most 16");
    api_media_free(&m);
}

static void test_openai_parts(void **state) {
    (void)state;
    json_error_t je;
    json_t *root = json_loads(
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
        "\"text\":\"look\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;"
        "base64," PNG_B64 "\"}},{\"type\":\"text\",\"text\":\"what?\"}]}]}",
        0, &je);
    assert_non_null(root);
    gen_params d;
    gen_params_default(&d);
    api_call c;
    api_error e;
    assert_int_equal(oai_parse_chat(root, &d, &c, &e), SHIMMY_OK);
    assert_int_equal(c.gen.n_media, 1);
    assert_int_equal(c.gen.media[0].len, 70);
    assert_string_equal(c.gen.media[0].param, "messages[0].content[1].image_url.url");
    json_t *chat = json_loads(c.gen.chat_json, 0, &je);
    json_t *parts =
        json_object_get(json_array_get(json_object_get(chat, "messages"), 0), "content");
    assert_int_equal(json_array_size(parts), 3);
    json_t *mk = json_array_get(parts, 1);
    assert_string_equal(json_string_value(json_object_get(mk, "type")), "media_marker");
    assert_string_equal(json_string_value(json_object_get(mk, "text")), engine_media_marker());
    assert_non_null(strstr(engine_media_marker(), "<__media_"));
    json_decref(chat);
    oai_call_free(&c);
    json_decref(root);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_openai_parts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
