/* it_kv_cache: --cache-type-k/v and --flash-attn (llama-server's names), through the engine
 * process into llama.cpp's context: a q8_0 K cache loads and answers, /health reports the types
 * in use, and the KV bytes it reports shrink (q8_0: 34 bytes per 32 values against f16's 64).
 * stories260K's heads have 8 values, which a 32-value block does not divide, so flash attention
 * (which needs that for a quantized cache) is off here and llama.cpp's own refusal with it on is
 * checked too; bad values are refused with the valid list, and a quantized V cache without flash
 * attention with llama-server's reason. The tiny model's greedy text changes with q8_0 (8-value
 * heads quantize badly): the test checks that it answers, not that it matches. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long long kv_bytes(const json_t *m) {
    long long n = 0;
    json_t *devs = h_arr(m, "devices");
    for (size_t i = 0; i < json_array_size(devs); i++)
        n += h_int(json_array_get(devs, i), "kv_bytes");
    return n;
}

/* Serves with extra args, answers one greedy completion, returns the model's /health entry. */
static json_t *serve_and_ask(h_test *t, const char *const *extra, char **text) {
    h_server *s = h_start_default(t, extra);
    json_t *req = h_completion_req("Once upon a time", 16);
    json_t *resp = h_post_expect(s->port, "/v1/completions", req, 200);
    const char *got = json_string_value(h_get(resp, "choices.0.text"));
    assert_non_null(got);
    assert_true(strlen(got) > 0);
    *text = strdup(got);
    json_decref(req);
    json_decref(resp);
    json_t *h = h_health(s->port);
    json_t *m = json_deep_copy(h_get(h, "models.0"));
    json_decref(h);
    h_server_stop(s, 10000);
    return m;
}

static void test_q8_0_k_cache(void **state) {
    h_test *t = *state;
    char *f16_text, *q8_text;
    const char *f16[] = {"--parallel", "1", "--flash-attn", "off", NULL};
    json_t *a = serve_and_ask(t, f16, &f16_text);
    const char *q8[] = {"--parallel", "1", "--flash-attn", "off", "--cache-type-k", "q8_0", NULL};
    json_t *b = serve_and_ask(t, q8, &q8_text);
    assert_string_equal(h_str(a, "cache_type_k"), "f16");
    assert_string_equal(h_str(a, "flash_attn"), "off");
    assert_string_equal(h_str(b, "cache_type_k"), "q8_0");
    assert_string_equal(h_str(b, "cache_type_v"), "f16");
    long long ka = kv_bytes(a), kb = kv_bytes(b);
    fprintf(stderr, "KV bytes: f16 %lld, q8_0 K %lld; text f16 \"%s\", q8_0 \"%s\"\n", ka, kb,
            f16_text, q8_text);
    /* K is half of the cache: q8_0 takes 34/64 of f16's bytes for it */
    assert_true(kb < ka);
    assert_true(kb * 64 >= ka / 2 * 64 + ka / 2 * 34 - 64 &&
                kb * 64 <= ka / 2 * 64 + ka / 2 * 34 + 64);
    assert_memory_equal(f16_text, q8_text, 10); /* ", there was": the first tokens agree */
    free(f16_text);
    free(q8_text);
    json_decref(a);
    json_decref(b);
    h_pass(t);
}

/* Per model, and llama.cpp's refusal (flash attention on, 8-value heads) comes out as the load
 * error of that model. */
static void test_per_model_and_refusals(void **state) {
    h_test *t = *state;
    char *text;
    const char *per[] = {
        "--parallel",       "1", "--flash-attn", "stories260k=off", "--cache-type-k",
        "stories260k=q4_0", NULL};
    json_t *m = serve_and_ask(t, per, &text);
    assert_string_equal(h_str(m, "cache_type_k"), "q4_0");
    assert_string_equal(h_str(m, "flash_attn"), "off");
    free(text);
    json_decref(m);

    char *out;
    const char *bad[] = {"serve", "--cache-type-k", "q9", NULL};
    assert_int_equal(h_run(t, bad, 10000, &out), 2);
    assert_non_null(strstr(out, "unsupported cache type 'q9'; valid types: f32, f16, bf16, q8_0, "
                                "q4_0, q4_1, iq4_nl, q5_0, q5_1"));
    free(out);
    const char *fa[] = {"serve", "--flash-attn", "maybe", NULL};
    assert_int_equal(h_run(t, fa, 10000, &out), 2);
    assert_non_null(strstr(out, "--flash-attn wants on, off or auto"));
    free(out);
    const char *qv[] = {
        "serve", "--model", h_model_path(H_MODEL_FILE), "--cache-type-v", "q8_0", "--flash-attn",
        "off",   NULL};
    assert_int_equal(h_run(t, qv, 10000, &out), 1);
    assert_non_null(strstr(out, "a quantized V cache requires flash attention"));
    free(out);
    const char *fa_on[] = {
        "generate",     H_MODEL_NAME,   "--model", h_model_path(H_MODEL_FILE), "--prompt",
        "Once",         "--max-tokens", "2",       "--cache-type-k",           "q8_0",
        "--flash-attn", "on",           NULL};
    h_run(t, fa_on, 20000, &out);
    if (strstr(out, "does not divide n_embd_head_k") == NULL)
        fail_msg("q8_0 K with flash attention on 8-value heads: want llama.cpp's reason:\n%s", out);
    free(out);
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_q8_0_k_cache, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_per_model_and_refusals, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
