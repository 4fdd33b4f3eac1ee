/* it_chat: POST /v1/chat/completions renders the conversation with the model's chat template
 * (llama.cpp's built-in implementation), ChatML when the model has none, or the --template
 * override; the greedy answer equals /v1/completions on the rendered text (both tokenized with
 * BOS, like llama-server). Template models are made with build/tools/gguf_gen --copy-from. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOKENS 24

/* google/gemma-7b-it's template: llama.cpp detects it by "<start_of_turn>". */
static const char gemma_template[] =
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not "
    "supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}"
    "{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";

typedef struct msg {
    const char *role, *content;
} msg;

static json_t *chat_req(const char *model, const msg *m, size_t n) {
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr,
                              json_pack("{s:s, s:s}", "role", m[i].role, "content", m[i].content));
    return json_pack("{s:s, s:o, s:i, s:f}", "model", model, "messages", arr, "max_tokens",
                     MAX_TOKENS, "temperature", 0.0);
}

/* Chat answer vs completions on the rendered prompt: same text, same prompt token count. */
static void assert_chat_is(int port, const char *model, const msg *m, size_t n,
                           const char *rendered) {
    json_t *req = chat_req(model, m, n);
    json_t *chat = h_post_expect(port, "/v1/chat/completions", req, 200);
    json_decref(req);
    assert_string_equal(h_str(chat, "object"), "chat.completion");
    assert_string_equal(h_str(chat, "model"), model);
    json_t *message = h_get(chat, "choices.0.message");
    assert_string_equal(h_str(message, "role"), "assistant");
    const char *content = h_str(message, "content");
    assert_string_equal(h_str(h_get(chat, "choices.0"), "finish_reason"), "length");
    json_t *u = h_obj(chat, "usage");
    assert_int_equal(h_int(u, "completion_tokens"), MAX_TOKENS);

    req = h_completion_req(rendered, MAX_TOKENS);
    json_object_set_new(req, "model", json_string(model));
    json_t *comp = h_post_expect(port, "/v1/completions", req, 200);
    json_decref(req);
    const char *want = json_string_value(h_get(comp, "choices.0.text"));
    if (strcmp(content, want) != 0)
        fail_msg("chat answer differs from the completion of the rendered prompt \"%s\":\n"
                 "  chat:       \"%s\"\n  completion: \"%s\"",
                 rendered, content, want);
    long long pc = h_int(u, "prompt_tokens");
    long long pp = h_int(h_obj(comp, "usage"), "prompt_tokens");
    if (pc != pp)
        fail_msg("chat prompt_tokens %lld, completion of the rendered prompt %lld (\"%s\")", pc, pp,
                 rendered);
    json_decref(comp);
    json_decref(chat);
}

/* stories260K has no chat template: ChatML. */
static void test_chatml_fallback(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    const msg one[] = {{"user", "Tell me a story."}};
    assert_chat_is(s->port, H_MODEL_NAME, one, 1,
                   "<|im_start|>user\nTell me a story.<|im_end|>\n<|im_start|>assistant\n");
    const msg turns[] = {{"system", "You tell stories."},
                         {"user", "Who is Lily?"},
                         {"assistant", "Lily is a girl."},
                         {"user", "What does she like?"}};
    assert_chat_is(s->port, H_MODEL_NAME, turns, 4,
                   "<|im_start|>system\nYou tell stories.<|im_end|>\n"
                   "<|im_start|>user\nWho is Lily?<|im_end|>\n"
                   "<|im_start|>assistant\nLily is a girl.<|im_end|>\n"
                   "<|im_start|>user\nWhat does she like?<|im_end|>\n"
                   "<|im_start|>assistant\n");
    h_pass(t);
}

/* Makes DIR/tmpl-gemma.gguf: stories260K with gemma's chat template. Returns its path. */
static const char *make_template_model(h_test *t, char *path, size_t len) {
    char tool[4096];
    snprintf(tool, sizeof tool, "%s/gguf_gen", h_tools_dir());
    snprintf(path, len, "%s/tmpl-gemma.gguf", t->dir);
    const char *args[] = {
        path, "--copy-from", h_model_path(H_MODEL_FILE), "--chat-template", gemma_template, NULL};
    char *out;
    int rc = h_run_exe(t, tool, args, 30000, &out);
    if (rc != 0)
        fail_msg("%s failed (exit %d): %s", tool, rc, out);
    free(out);
    return path;
}

/* A model with a chat template that llama.cpp knows: rendered with it. */
static void test_model_template(void **state) {
    h_test *t = *state;
    char path[4200];
    const char *args[] = {"--model", make_template_model(t, path, sizeof path), NULL};
    h_server *s = h_start(t, args);
    const msg one[] = {{"user", "Tell me a story."}};
    assert_chat_is(s->port, "tmpl-gemma", one, 1,
                   "<start_of_turn>user\nTell me a story.<end_of_turn>\n<start_of_turn>model\n");
    const msg turns[] = {{"user", "Who is Lily?"},
                         {"assistant", "Lily is a girl."},
                         {"user", "What does she like?"}};
    assert_chat_is(s->port, "tmpl-gemma", turns, 3,
                   "<start_of_turn>user\nWho is Lily?<end_of_turn>\n"
                   "<start_of_turn>model\nLily is a girl.<end_of_turn>\n"
                   "<start_of_turn>user\nWhat does she like?<end_of_turn>\n"
                   "<start_of_turn>model\n");
    h_pass(t);
}

/* --template chatml wins over the model's own template. */
static void test_template_override(void **state) {
    h_test *t = *state;
    char path[4200];
    const char *args[] = {"--model", make_template_model(t, path, sizeof path), "--template",
                          "chatml", NULL};
    h_server *s = h_start(t, args);
    const msg one[] = {{"user", "Tell me a story."}};
    assert_chat_is(s->port, "tmpl-gemma", one, 1,
                   "<|im_start|>user\nTell me a story.<|im_end|>\n<|im_start|>assistant\n");
    h_pass(t);
}

/* Content given as an array of text parts is joined like a plain string. */
static void test_content_parts(void **state) {
    h_test *t = *state;
    h_server *s = h_start_default(t, NULL);
    json_t *req = json_pack("{s:s, s:[{s:s, s:[{s:s, s:s}]}], s:i, s:f}", "model", H_MODEL_NAME,
                            "messages", "role", "user", "content", "type", "text", "text",
                            "Tell me a story.", "max_tokens", MAX_TOKENS, "temperature", 0.0);
    json_t *a = h_post_expect(s->port, "/v1/chat/completions", req, 200);
    json_decref(req);
    req = h_chat_req("Tell me a story.", MAX_TOKENS);
    json_t *b = h_post_expect(s->port, "/v1/chat/completions", req, 200);
    json_decref(req);
    assert_string_equal(json_string_value(h_get(a, "choices.0.message.content")),
                        json_string_value(h_get(b, "choices.0.message.content")));
    json_decref(a);
    json_decref(b);
    h_pass(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chatml_fallback, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_model_template, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_template_override, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_content_parts, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
