/* it_choices: OpenAI n and log probabilities on stories260K through the real server: greedy
 * choices identical with index 0..n-1 and summed usage, seeded choices reproducible, the prompt
 * evaluated once (/health prompt_tokens_evaluated), log probabilities <= 0 with the greedy
 * token the largest of its top list. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>

static long long evaluated(int port) {
    long status = 0;
    char *body = NULL;
    assert_int_equal(http_get(port, "/health", &status, &body), 0);
    json_t *h = h_json(body);
    json_t *v = h_get(h, "models.0.prompt_tokens_evaluated");
    long long n = v ? json_integer_value(v) : -1;
    json_decref(h);
    free(body);
    return n;
}

static json_t *post(int port, const char *path, const char *body) {
    json_t *j = h_json(body);
    json_t *r = h_post_expect(port, path, j, 200);
    json_decref(j);
    return r;
}

static void test_n_greedy_and_prompt_once(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    json_decref(post(s->port, "/v1/completions",
                     "{\"model\":\"stories260k\",\"prompt\":\"x\",\"max_tokens\":1}"));
    long long before = evaluated(s->port);
    json_t *r = post(s->port, "/v1/completions",
                     "{\"model\":\"stories260k\",\"prompt\":\"Tom and Sue went to the beach. They "
                     "built a big sand castle and\",\"max_tokens\":24,\"temperature\":0,\"n\":3}");
    long long after = evaluated(s->port);
    json_t *ch = h_arr(r, "choices");
    assert_int_equal(json_array_size(ch), 3);
    long long total = 0;
    for (size_t i = 0; i < 3; i++) {
        json_t *c = json_array_get(ch, i);
        assert_int_equal(h_int(c, "index"), (long long)i);
        assert_string_equal(h_str(c, "text"), h_str(json_array_get(ch, 0), "text"));
    }
    json_t *u = h_obj(r, "usage");
    total = h_int(u, "completion_tokens");
    assert_true(total >= 3 && total == 3 * 24);
    long long p = h_int(u, "prompt_tokens");
    /* one evaluation of the prompt; each other choice re-evaluates its last token */
    assert_true(after - before <= p + 2);
    json_decref(r);
    h_pass(t);
}

static void test_n_seeded(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    const char *body = "{\"model\":\"stories260k\",\"prompt\":\"Once upon a time\",\"max_tokens\":"
                       "16,\"temperature\":1,\"seed\":42,\"n\":2}";
    json_t *a = post(s->port, "/v1/completions", body), *b = post(s->port, "/v1/completions", body);
    for (int i = 0; i < 2; i++) {
        char path[32];
        snprintf(path, sizeof path, "choices.%d.text", i);
        assert_string_equal(json_string_value(h_get(a, path)), json_string_value(h_get(b, path)));
    }
    json_decref(a);
    json_decref(b);
    h_pass(t);
}

static void test_logprobs(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    json_t *r = post(s->port, "/v1/chat/completions",
                     "{\"model\":\"stories260k\",\"messages\":[{\"role\":\"user\",\"content\":"
                     "\"Hi\"}],\"max_tokens\":8,\"temperature\":0,\"logprobs\":true,"
                     "\"top_logprobs\":3}");
    json_t *content = h_get(r, "choices.0.logprobs.content");
    assert_non_null(content);
    assert_true(json_array_size(content) >= 1);
    for (size_t i = 0; i < json_array_size(content); i++) {
        json_t *e = json_array_get(content, i), *top = h_arr(e, "top_logprobs");
        double lp = json_number_value(json_object_get(e, "logprob"));
        assert_true(lp <= 0);
        assert_int_equal(json_array_size(top), 3);
        for (size_t k = 0; k < 3; k++) {
            double v = json_number_value(json_object_get(json_array_get(top, k), "logprob"));
            assert_true(v <= 0 && v <= lp + 1e-6);
        }
        assert_string_equal(h_str(e, "token"), h_str(json_array_get(top, 0), "token"));
    }
    json_decref(r);
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_n_greedy_and_prompt_once, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_n_seeded, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_logprobs, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
